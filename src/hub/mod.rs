//! The hub daemon: one per data dir, the single writer of its log.
//!
//! - [`core`]: the core task, owner of state and log writer (data flow: connection →
//!   `CoreInput` → core → events → `apply` → commit → replies and pushes).
//! - [`commands`]: what the core does for each request, one file per domain.
//! - [`spawn`]: connect to a data dir's hub, starting it if none runs.
//! - [`session`]: one connection's loop (frames in, replies and pushes out, deadlines).
//! - [`queue`]: what the core queues for a connection, and the byte budgets of those queues.
//! - [`preauth`]: the byte budget of a WebSocket connection before it authenticates.
//! - [`rate`]: token buckets (sends per identity, new identities per local user).
//! - [`settings`]: `<data dir>/relay.toml`, the flags and the defaults, and where each came from.
//! - [`log_files`]: the hub's and the sessions' log files, rotated by size.
//! - [`limits`]: named bounds and defaults.
//! - [`retention`]: which old segments `--retain` lets the core delete.
//! - [`snapshot_worker`]: periodic snapshots, encoded and written off the core thread by a
//!   worker that follows the log with its own state.
//! - [`clock`]: monotonic record timestamps and warnings about wall-clock jumps.

pub mod clock;
pub mod commands;
mod commit;
pub mod core;
pub mod daemon;
#[doc(hidden)]
pub mod fuzzing;
pub mod limits;
pub mod link_host;
pub mod log_files;
pub mod preauth;
pub mod queue;
pub mod rate;
pub mod retention;
pub mod session;
pub mod settings;
pub mod snapshot_worker;
pub mod spawn;
#[cfg(test)]
mod storage_tests;
