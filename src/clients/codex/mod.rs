//! Codex CLI.
//!
//! - [`app_server`]: delivery through the app-server control socket (`turn/start`).
//! - [`install`]: `relay install codex` / `relay uninstall codex`.

pub mod app_server;
pub mod install;
