//! opencode.

pub mod install;
