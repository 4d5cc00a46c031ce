//! relay install opencode (being written).
