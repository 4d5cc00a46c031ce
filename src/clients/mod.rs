//! One delivery adapter and one installer per assistant.
//!
//! - [`claude`]: Claude Code: its native messaging socket (the push path that reaches the model)
//!   and `relay install claude`.
//!
//! Architecture invariant: nothing here knows MCP or the hub's internals; an adapter takes a
//! message already framed as text and reports what became of it.

pub mod claude;
