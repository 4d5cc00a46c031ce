//! relay install agy (being written).
