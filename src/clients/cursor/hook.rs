//! relay hook cursor (being written).
