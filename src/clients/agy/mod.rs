//! agy.

pub mod install;
