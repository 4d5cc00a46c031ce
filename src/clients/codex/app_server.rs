//! Codex app-server client (being written).
