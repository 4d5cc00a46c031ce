//! Claude Code.
//!
//! - [`messaging`]: delivery through Claude Code's messaging socket
//!   (`CLAUDE_CODE_MESSAGING_SOCKET`), with receipts on a reply socket.
//! - [`install`]: `relay install claude` / `relay uninstall claude`.

pub mod install;
pub mod messaging;
