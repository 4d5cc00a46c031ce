//! `relay`: the hub daemon, the client protocol, the MCP channel and the command line.
//!
//! The truth is the log (`relay-log`); every piece of state is a projection of it
//! (`relay-replay`). This crate holds everything that talks to the outside world.
//!
//! - [`bench`]: benchmarks spanning crates (`relay bench replay`).
//! - [`cli`]: one file per subcommand; `main.rs` only dispatches.
//! - [`clients`]: one delivery adapter and one installer per assistant.
//! - [`data_dir`]: where a hub keeps its files.
//! - [`federation`]: links between hubs (config, Noise link, link frames).
//! - [`mcp`]: `relay mcp`, the per-session MCP server (the only user of rmcp).
//! - [`protocol`]: the client wire protocol, sans-IO: framing, JSON-RPC, methods, error codes.
//! - [`snapshots`]: the snapshot files of the projection.

pub mod bench;
pub mod cli;
pub mod client;
pub mod clients;
pub mod data_dir;
pub mod federation;
pub mod hub;
pub mod mcp;
pub mod protocol;
pub mod snapshots;
