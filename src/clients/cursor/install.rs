//! relay install cursor (being written).
