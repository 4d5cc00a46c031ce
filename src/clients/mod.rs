//! One delivery adapter and one installer per assistant.
//!
//! - [`claude`]: Claude Code: its native messaging socket (the push path that reaches the model)
//!   and `relay install claude`.
//! - [`codex`]: Codex CLI: `turn/start` through the app-server control socket.
//! - [`opencode`], [`copilot`]: the plugin and the extension Relay installs; they reach the
//!   session through [`endpoint`] (via `relay deliver`).
//! - [`gemini`], [`cursor`]: hooks (`relay hook …`) that hand pending messages over at the end
//!   of a turn, also through [`endpoint`].
//! - [`agy`]: Antigravity, pull only.
//! - [`endpoint`]: the session's delivery socket, its line protocol and how a hook or plugin
//!   finds its own session (`docs/delivery.md`).
//!
//! Architecture invariant: nothing here knows MCP or the hub's internals; an adapter takes a
//! message already framed as text and reports what became of it.

pub mod agy;
pub mod claude;
pub mod codex;
pub mod copilot;
pub mod cursor;
pub mod endpoint;
pub mod gemini;
pub mod install;
pub mod opencode;
