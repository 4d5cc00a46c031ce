//! gemini.

pub mod hook;
pub mod install;
