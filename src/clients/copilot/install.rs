//! relay install copilot (being written).
