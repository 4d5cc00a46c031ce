//! The session delivery socket (being written).
