//! The hub daemon: one per data dir, the single writer of its log.
//!
//! - [`core`]: the core task, owner of state and log writer (data flow: connection →
//!   `CoreInput` → core → events → `apply` → commit → replies and pushes).
//! - [`commands`]: what the core does for each request, one file per domain.
//! - [`spawn`]: connect to a data dir's hub, starting it if none runs.
//! - [`rate`]: per-session send rate limit.
//! - [`limits`]: named bounds and defaults.

pub mod commands;
pub mod core;
pub mod daemon;
#[doc(hidden)]
pub mod fuzzing;
pub mod limits;
pub mod rate;
pub mod session;
pub mod spawn;
