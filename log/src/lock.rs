//! The writer lock: one writer per log directory, enforced by the kernel.
//!
//! `File::try_lock` takes an exclusive advisory lock (`flock`) on `<dir>/lock`; the kernel
//! drops it when the process dies, so there is no stale-lock cleanup and no probe-then-unlink
//! race. The holder writes its pid into the file so a second writer can name it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::OpenError;

/// File name of the lock inside the log directory.
pub const LOCK_FILE_NAME: &str = "lock";

/// A held writer lock; released when dropped.
#[derive(Debug)]
pub(crate) struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Takes the lock of `dir` or says who holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<Self, OpenError> {
        let path: PathBuf = dir.join(LOCK_FILE_NAME);
        let io = |source| OpenError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path)
                    .ok()
                    .map(|text| text.trim().to_owned())
                    .filter(|text| !text.is_empty())
                    .unwrap_or_else(|| "unknown".to_owned());
                return Err(OpenError::Locked { path, holder });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        file.set_len(0).map_err(io)?;
        write!(file, "pid {}", std::process::id()).map_err(io)?;
        Ok(WriterLock { _file: file })
    }
}
