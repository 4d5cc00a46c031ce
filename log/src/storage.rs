//! The storage seam: the few calls of the writer that make data durable or take disk space.
//!
//! [`LogWriter`](crate::LogWriter) reserves and grows segment files, maps them, syncs byte
//! ranges of the mapping, syncs files and the directory, and writes the checkpoint, all
//! through a [`Storage`]. [`RealStorage`] does the real calls and is what
//! [`LogWriter::open`](crate::LogWriter::open) uses. Tests pass their own implementation to
//! [`LogWriter::open_with_storage`](crate::LogWriter::open_with_storage) to fail a call
//! ([`FaultyStorage`]) or to record what a power cut would keep. Writes into the mapping
//! itself are plain memory stores and do not pass through here.
//!
//! Not part of the stable API: the seam exists for fault injection.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use crate::mmap::Map;

/// The durability and space calls of the writer. Every method has the real behaviour as its
/// default, so an implementation overrides only what it wants to fail or observe.
pub trait Storage: fmt::Debug + Send + Sync {
    /// Reserves `bytes` of real disk space for `file` (`fallocate`, or writing zeros where
    /// the file system has none), so writes through the mapping never meet a hole.
    ///
    /// # Errors
    /// The OS error; `ENOSPC` becomes [`crate::WriteError::NoSpace`].
    fn reserve(&self, file: &File, path: &Path, bytes: u64) -> io::Result<()> {
        let _ = path;
        reserve_real(file, bytes)
    }

    /// Asked before a segment file is mapped for writing (`mmap`); the real implementation
    /// allows it.
    ///
    /// # Errors
    /// An error refuses the mapping.
    fn map(&self, path: &Path, len: u64) -> io::Result<()> {
        let _ = (path, len);
        Ok(())
    }

    /// Writes a byte range of a mapping back to its file and waits for the disk (`msync`).
    ///
    /// # Errors
    /// The OS error.
    fn sync_range(&self, range: SyncRange<'_>) -> io::Result<()> {
        range.sync()
    }

    /// Syncs the data of a whole file (`fdatasync`).
    ///
    /// # Errors
    /// The OS error.
    fn sync_file(&self, file: &File, path: &Path) -> io::Result<()> {
        let _ = path;
        file.sync_data()
    }

    /// Syncs a directory, making created and removed names durable (`fsync` of the dir).
    ///
    /// # Errors
    /// The OS error.
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    /// Writes one checkpoint slot at `position` and syncs the file (`pwrite` + `fdatasync`).
    ///
    /// # Errors
    /// The OS error.
    fn write_checkpoint(
        &self,
        file: &File,
        path: &Path,
        slot: &[u8],
        position: u64,
    ) -> io::Result<()> {
        let _ = path;
        file.write_all_at(slot, position)?;
        file.sync_data()
    }
}

/// The real calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealStorage;

impl Storage for RealStorage {}

/// A range of a writable mapping to sync, handed to [`Storage::sync_range`].
#[derive(Debug)]
pub struct SyncRange<'a> {
    pub(crate) path: &'a Path,
    pub(crate) map: &'a Map,
    pub(crate) position: usize,
    pub(crate) len: usize,
}

impl SyncRange<'_> {
    /// The segment file.
    pub fn path(&self) -> &Path {
        self.path
    }

    /// First byte of the range (page aligned).
    pub fn position(&self) -> usize {
        self.position
    }

    /// Length of the range in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty range.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes being synced, as the mapping holds them now.
    pub fn bytes(&self) -> &[u8] {
        self.map.range(self.position, self.len)
    }

    /// Does the real sync (`msync`).
    ///
    /// # Errors
    /// The OS error.
    pub fn sync(self) -> io::Result<()> {
        self.map.sync_range(self.position, self.len)
    }
}

/// The calls [`FaultyStorage`] can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageCall {
    /// [`Storage::reserve`].
    Reserve,
    /// [`Storage::map`].
    Map,
    /// [`Storage::sync_range`].
    SyncRange,
    /// [`Storage::sync_file`].
    SyncFile,
    /// [`Storage::sync_dir`].
    SyncDir,
    /// [`Storage::write_checkpoint`].
    WriteCheckpoint,
}

/// Real storage that fails chosen calls: each armed fault fails the matching calls with the
/// given OS error (`errno`) until it is cleared.
#[derive(Debug, Default)]
pub struct FaultyStorage {
    faults: Mutex<Vec<(StorageCall, i32)>>,
    calls: Mutex<Vec<StorageCall>>,
}

impl FaultyStorage {
    /// Storage that fails nothing yet.
    pub fn new() -> Self {
        FaultyStorage::default()
    }

    /// Fails every later `call` with the OS error `errno` (e.g. `libc::ENOSPC` = 28,
    /// `EIO` = 5) until [`FaultyStorage::clear`].
    pub fn fail(&self, call: StorageCall, errno: i32) {
        if let Ok(mut faults) = self.faults.lock() {
            faults.push((call, errno));
        }
    }

    /// Removes every armed fault.
    pub fn clear(&self) {
        if let Ok(mut faults) = self.faults.lock() {
            faults.clear();
        }
    }

    /// How many times `call` failed so far.
    pub fn failures(&self, call: StorageCall) -> usize {
        self.calls.lock().map_or(0, |calls| {
            calls.iter().filter(|made| **made == call).count()
        })
    }

    fn check(&self, call: StorageCall) -> io::Result<()> {
        let errno = self
            .faults
            .lock()
            .ok()
            .and_then(|faults| faults.iter().find(|(armed, _)| *armed == call).map(|f| f.1));
        match errno {
            Some(errno) => {
                if let Ok(mut calls) = self.calls.lock() {
                    calls.push(call);
                }
                Err(io::Error::from_raw_os_error(errno))
            }
            None => Ok(()),
        }
    }
}

impl Storage for FaultyStorage {
    fn reserve(&self, file: &File, path: &Path, bytes: u64) -> io::Result<()> {
        self.check(StorageCall::Reserve)?;
        RealStorage.reserve(file, path, bytes)
    }

    fn map(&self, path: &Path, len: u64) -> io::Result<()> {
        self.check(StorageCall::Map)?;
        RealStorage.map(path, len)
    }

    fn sync_range(&self, range: SyncRange<'_>) -> io::Result<()> {
        self.check(StorageCall::SyncRange)?;
        range.sync()
    }

    fn sync_file(&self, file: &File, path: &Path) -> io::Result<()> {
        self.check(StorageCall::SyncFile)?;
        RealStorage.sync_file(file, path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(StorageCall::SyncDir)?;
        RealStorage.sync_dir(dir)
    }

    fn write_checkpoint(
        &self,
        file: &File,
        path: &Path,
        slot: &[u8],
        position: u64,
    ) -> io::Result<()> {
        self.check(StorageCall::WriteCheckpoint)?;
        RealStorage.write_checkpoint(file, path, slot, position)
    }
}

/// `fallocate`, falling back to writing zeros where the file system has none.
fn reserve_real(file: &File, bytes: u64) -> io::Result<()> {
    use rustix::fs::{FallocateFlags, fallocate};
    match fallocate(file, FallocateFlags::empty(), 0, bytes) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP) => reserve_by_writing(file, bytes),
        Err(errno) => Err(errno.into()),
    }
}

/// Size of the zero buffer the fallback reservation writes with.
const RESERVE_CHUNK_BYTES: usize = 1 << 20;

fn reserve_by_writing(file: &File, bytes: u64) -> io::Result<()> {
    let current = file.metadata()?.len();
    let zeros = vec![0u8; RESERVE_CHUNK_BYTES];
    let mut position = current;
    // Bounded: each pass writes at least one byte towards `bytes`.
    while position < bytes {
        let len = (bytes - position).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..len], position)?;
        position += len as u64;
    }
    Ok(())
}
