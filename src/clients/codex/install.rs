//! relay install codex (being written).
