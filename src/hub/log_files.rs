//! The log files in `<data dir>/logs/`: `hub.log` (the hub's tracing), `hub.out` (a spawned
//! hub's stdout and stderr) and `mcp.log` (every `relay mcp` of the data dir), each rotated
//! by size: past [`LOG_FILE_BYTES_MAX`] the file becomes `<name>.1`, an earlier `<name>.1`
//! becomes `<name>.2`, and so on up to [`LOG_FILES_KEPT`]; the oldest is deleted.
//!
//! [`RotatingFile`] rotates while it writes (`hub.log`, `mcp.log`). Several `relay mcp`
//! processes append to one `mcp.log`, so it checks the file by its path, not only its own
//! byte count: whoever sees the file full rotates it, and a writer whose file was rotated by
//! another process reopens the new one. `hub.out` is a spawned hub's inherited stdout, which
//! cannot be reopened: it is rotated before each spawn ([`rotate_if_full`]).
//!
//! Files are created 0600. A rotation that fails (a full disk, say) leaves the file growing
//! rather than losing log lines.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// Size in bytes past which a log file is rotated.
pub const LOG_FILE_BYTES_MAX: u64 = 16 << 20;

/// Rotated files kept beside the current one (`hub.log.1` … `hub.log.3`); at most
/// `(LOG_FILES_KEPT + 1) * LOG_FILE_BYTES_MAX` bytes per log, plus one line.
pub const LOG_FILES_KEPT: usize = 3;

/// Bytes a [`RotatingFile`] writes between two looks at its file's size on disk.
const CHECK_EVERY_BYTES: u64 = 64 << 10;

/// `path` with `.n` appended.
pub fn rotated_path(path: &Path, index: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

/// Rotates `path` if it holds [`LOG_FILE_BYTES_MAX`] bytes or more; whether it did.
///
/// # Errors
/// A rename failed (the file is then left as it was, or partly shifted; nothing is deleted
/// but the oldest).
pub fn rotate_if_full(path: &Path) -> io::Result<bool> {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.len() >= LOG_FILE_BYTES_MAX => {}
        Ok(_) => return Ok(false),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    }
    rotate(path)?;
    Ok(true)
}

fn rotate(path: &Path) -> io::Result<()> {
    let oldest = rotated_path(path, LOG_FILES_KEPT);
    match std::fs::remove_file(&oldest) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    for index in (1..LOG_FILES_KEPT).rev() {
        match std::fs::rename(rotated_path(path, index), rotated_path(path, index + 1)) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    std::fs::rename(path, rotated_path(path, 1))
}

/// Opens `path` for appending, mode 0600.
///
/// # Errors
/// The file cannot be opened.
pub fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// An append-only log file that rotates itself by size (see the module doc).
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    /// Bytes written since the file's size on disk was last looked at.
    unchecked_bytes: u64,
}

impl RotatingFile {
    /// Opens (creating, 0600) `path`, rotating it first if it is full.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open(path: &Path) -> io::Result<RotatingFile> {
        // A failed rotation leaves the file growing: logging goes on.
        let _ = rotate_if_full(path);
        Ok(RotatingFile {
            path: path.to_owned(),
            file: open_append(path)?,
            unchecked_bytes: 0,
        })
    }

    /// Rotates if the file on disk is full, and follows a rotation made by another process.
    fn check(&mut self) {
        self.unchecked_bytes = 0;
        let on_disk = std::fs::metadata(&self.path);
        let ours = self.file.metadata();
        let rotated_by_other = match (&on_disk, &ours) {
            (Ok(disk), Ok(ours)) => disk.ino() != ours.ino() || disk.dev() != ours.dev(),
            (Err(_), _) => true,
            _ => false,
        };
        let full = on_disk
            .as_ref()
            .is_ok_and(|disk| disk.len() >= LOG_FILE_BYTES_MAX);
        if full && rotate(&self.path).is_err() {
            return;
        }
        if (full || rotated_by_other)
            && let Ok(file) = open_append(&self.path)
        {
            self.file = file;
        }
    }
}

impl Write for RotatingFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.unchecked_bytes >= CHECK_EVERY_BYTES {
            self.check();
        }
        let written = self.file.write(bytes)?;
        self.unchecked_bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_rotates_and_only_log_files_kept_old_ones_stay() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("hub.log");
        let line = vec![b'x'; 1 << 20];
        let mut file = RotatingFile::open(&path).expect("open");
        for _ in 0..(LOG_FILE_BYTES_MAX >> 20) * (LOG_FILES_KEPT as u64 + 3) {
            file.write_all(&line).expect("write");
        }
        for index in 1..=LOG_FILES_KEPT {
            let rotated = std::fs::metadata(rotated_path(&path, index)).expect("a rotated file");
            assert!(
                rotated.len() >= LOG_FILE_BYTES_MAX,
                "{index}: {}",
                rotated.len()
            );
            assert!(rotated.len() <= LOG_FILE_BYTES_MAX + CHECK_EVERY_BYTES + (1 << 20));
        }
        assert!(!rotated_path(&path, LOG_FILES_KEPT + 1).exists());
        assert!(std::fs::metadata(&path).expect("current").len() <= LOG_FILE_BYTES_MAX);
    }

    #[test]
    fn a_file_below_the_limit_is_not_rotated() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("hub.out");
        std::fs::write(&path, b"one line\n").expect("write");
        assert!(!rotate_if_full(&path).expect("checked"));
        assert!(!rotated_path(&path, 1).exists());
    }
}
