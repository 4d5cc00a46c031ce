//! relay hook gemini (being written).
