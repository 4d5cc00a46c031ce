//! Memory maps of segment files: the only module of the workspace allowed to use `unsafe`.
//!
//! Soundness rests on one rule the rest of the crate keeps: a segment file is never truncated
//! while it exists. Space is reserved with `fallocate` when a segment is created or grown,
//! recovery zeroes a torn tail instead of shrinking the file, and retention unlinks whole
//! files (an unlinked file stays mapped until the last map is dropped). So no mapped page
//! ever lies past the end of its file, and touching the mapping cannot raise SIGBUS for a
//! missing page.

#![expect(
    unsafe_code,
    reason = "mapping files is unsafe in Rust; this is the one module that does it"
)]

use std::fs::File;
use std::io;

use memmap2::{Mmap, MmapMut, MmapOptions};

/// A mapping of the first `len` bytes of a segment file.
#[derive(Debug)]
pub(crate) enum Map {
    /// A zero-length file: nothing to map.
    Empty,
    /// A read-only shared mapping.
    Read(Mmap),
    /// A writable shared mapping, held only by the log writer for its active segment.
    Write(MmapMut),
}

impl Map {
    /// Maps `len` bytes of `file` read-only.
    pub(crate) fn read(file: &File, len: u64) -> io::Result<Map> {
        if len == 0 {
            return Ok(Map::Empty);
        }
        let len = usize::try_from(len).map_err(io::Error::other)?;
        // SAFETY: `len` is at most the file's length, read by the caller just before, and
        // segment files are never truncated (module doc), so every mapped page stays backed.
        // Other processes may append into the mapped range concurrently; readers treat every
        // byte as untrusted and check CRC and structure before using it.
        let map = unsafe { MmapOptions::new().len(len).map(file)? };
        Ok(Map::Read(map))
    }

    /// Maps `len` bytes of `file` for writing. The caller must hold the log's lock.
    pub(crate) fn write(file: &File, len: u64) -> io::Result<Map> {
        if len == 0 {
            return Ok(Map::Empty);
        }
        let len = usize::try_from(len).map_err(io::Error::other)?;
        // SAFETY: as in `read`; in addition the log's exclusive lock guarantees this process
        // is the only writer, so no other writable mapping of the file exists.
        let map = unsafe { MmapOptions::new().len(len).map_mut(file)? };
        Ok(Map::Write(map))
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Map::Empty => &[],
            Map::Read(map) => map,
            Map::Write(map) => map,
        }
    }

    /// The mapped bytes for writing, if this is a writable mapping.
    pub(crate) fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        match self {
            Map::Write(map) => Some(map),
            Map::Empty | Map::Read(_) => None,
        }
    }

    /// Writes `len` bytes at `position` back to the file and waits for the disk (`msync`).
    pub(crate) fn sync_range(&self, position: usize, len: usize) -> io::Result<()> {
        match self {
            Map::Write(map) if len > 0 => map.flush_range(position, len),
            _ => Ok(()),
        }
    }

    /// Mapped length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.bytes().len() as u64
    }
}
