//! Relay log.
