//! Benchmarks that need more than one crate: `relay bench replay` (log + projections) and
//! `relay bench hub` (a real hub process over its socket), `relay bench mcp` (the MCP channel
//! beside the hub alone), `relay bench memory` (a real hub's memory per idle session and per
//! queued message).
//!
//! They print figures beside a raw baseline measured in the same run and assert nothing
//! about time. `relay bench log` lives in `relay-log` (only `log/` may sync and map files).

pub mod hub;
pub mod mcp;
pub mod memory;
pub mod replay;
