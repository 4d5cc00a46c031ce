//! The data directory: default location and the paths inside it.
//!
//! `~/.relay` unless `--data-dir` or `RELAY_HOME` says otherwise. Created with mode 0700:
//! it holds the log, the socket and the WebSocket token.

use std::path::{Path, PathBuf};

/// Environment variable that overrides the default data directory (`--data-dir` wins).
pub const RELAY_HOME_ENV: &str = "RELAY_HOME";

/// The data directory to use when none is given: `$RELAY_HOME`, else `$HOME/.relay`.
pub fn default_data_dir() -> PathBuf {
    if let Some(home) = std::env::var_os(RELAY_HOME_ENV).filter(|value| !value.is_empty()) {
        return PathBuf::from(home);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".relay")
}

/// The log directory inside a data directory.
pub fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("log")
}

/// Creates the data directory with mode 0700 if it does not exist yet.
///
/// # Errors
/// File-system failures.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}
