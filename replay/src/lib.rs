//! Relay events, projections and snapshots (filled in by the replay issue).
