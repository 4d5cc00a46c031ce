//! copilot.

pub mod install;
