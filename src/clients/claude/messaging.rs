//! Delivery through Claude Code's messaging socket.
