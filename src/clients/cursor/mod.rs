//! cursor.

pub mod hook;
pub mod install;
