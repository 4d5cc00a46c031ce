//! relay install gemini (being written).
