//! Memory maps of segment files (and of [`ImmutableFile`]s): the only module of the workspace
//! allowed to use `unsafe`.
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
use std::sync::Arc;

use memmap2::{Mmap, MmapOptions, MmapRaw};

/// A mapping of the first `len` bytes of a segment file.
#[derive(Debug)]
pub(crate) enum Map {
    /// A zero-length file: nothing to map.
    Empty,
    /// A read-only shared mapping.
    Read(Mmap),
    /// A writable shared mapping of the log writer's active segment. It is shared (`Arc`)
    /// only with a sync running on another thread ([`Map::share`]), which reads nothing but
    /// bytes the writer no longer writes: everything appended before that sync began.
    Write(Arc<MmapRaw>),
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
        // A raw mapping creates no Rust reference by itself: slices are made per call below,
        // over the bytes each call needs, so a sync on another thread and the writer's
        // appends never hold overlapping references. The log's exclusive lock guarantees
        // this process is the only writer of the file.
        let map = MmapOptions::new().len(len).map_raw(file)?;
        Ok(Map::Write(Arc::new(map)))
    }

    /// Another handle on the same writable mapping, for a sync that runs on another thread
    /// while the writer goes on appending; `None` for a read-only or empty map. The mapping
    /// stays valid until the last handle is dropped, even if the writer remaps or deletes
    /// the segment meanwhile.
    pub(crate) fn share(&self) -> Option<Map> {
        match self {
            Map::Write(map) => Some(Map::Write(Arc::clone(map))),
            Map::Empty | Map::Read(_) => None,
        }
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Map::Empty => &[],
            Map::Read(map) => map,
            // SAFETY: the pointer and length describe a live mapping (held by `self`) whose
            // pages stay backed (module doc). Writes go through `write_at` and `zero`, which
            // take `&mut self`, so no write through this handle happens while the slice
            // lives; a shared handle on another thread (`share`) only ever reads bytes that
            // are no longer written (the writer appends past them).
            Map::Write(map) => unsafe { std::slice::from_raw_parts(map.as_ptr(), map.len()) },
        }
    }

    /// `len` bytes from `position`, clamped to the mapping; for a sync on another thread,
    /// which must not make a slice of the bytes the writer is still appending to.
    pub(crate) fn range(&self, position: usize, len: usize) -> &[u8] {
        match self {
            Map::Empty => &[],
            Map::Read(map) => {
                let start = position.min(map.len());
                let end = position.saturating_add(len).min(map.len());
                &map[start..end]
            }
            Map::Write(map) => {
                let start = position.min(map.len());
                let end = position.saturating_add(len).min(map.len());
                // SAFETY: `start..end` lies inside the live mapping; see `bytes` for why no
                // write overlaps it while the slice lives.
                unsafe { std::slice::from_raw_parts(map.as_ptr().add(start), end - start) }
            }
        }
    }

    /// True for a writable mapping.
    pub(crate) fn is_writable(&self) -> bool {
        matches!(self, Map::Write(_))
    }

    /// Copies `data` to `position`; `false` (nothing written) for a read-only mapping or a
    /// range outside it.
    pub(crate) fn write_at(&mut self, position: usize, data: &[u8]) -> bool {
        let Map::Write(map) = self else {
            return false;
        };
        if position
            .checked_add(data.len())
            .is_none_or(|end| end > map.len())
        {
            return false;
        }
        // SAFETY: the range is inside the live mapping (checked above). `&mut self` means no
        // slice made by this handle lives; the writer only ever writes past the bytes a
        // shared handle's sync reads, so no other reference overlaps the written bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                map.as_mut_ptr().add(position),
                data.len(),
            );
        }
        true
    }

    /// Zeroes `len` bytes from `position`; `false` as for [`Map::write_at`].
    pub(crate) fn zero(&mut self, position: usize, len: usize) -> bool {
        let Map::Write(map) = self else {
            return false;
        };
        if position.checked_add(len).is_none_or(|end| end > map.len()) {
            return false;
        }
        // SAFETY: as in `write_at`.
        unsafe {
            std::ptr::write_bytes(map.as_mut_ptr().add(position), 0, len);
        }
        true
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
        match self {
            Map::Empty => 0,
            Map::Read(map) => map.len() as u64,
            Map::Write(map) => map.len() as u64,
        }
    }
}

/// The whole of a file that is written once, synced and renamed into place, and never
/// written or truncated after (a replacement gets a new name): mapped read-only and
/// prefaulted, so reading it costs no copy out of the page cache. The projection's snapshots
/// are such files.
#[derive(Debug)]
pub struct ImmutableFile(Map);

impl ImmutableFile {
    /// Maps the file at `path`; an empty file maps to no bytes.
    ///
    /// # Errors
    /// The file cannot be opened, measured or mapped.
    pub fn open(path: &std::path::Path) -> io::Result<ImmutableFile> {
        let file = File::open(path)?;
        let len = usize::try_from(file.metadata()?.len()).map_err(io::Error::other)?;
        if len == 0 {
            return Ok(ImmutableFile(Map::Empty));
        }
        // SAFETY: `len` is the file's length, and the files this type is for are never
        // written or truncated once they have their name (type doc), so every mapped page
        // stays backed and unchanged. Their bytes are still untrusted: callers check them.
        let map = unsafe { MmapOptions::new().len(len).populate().map(&file)? };
        Ok(ImmutableFile(Map::Read(map)))
    }
}

impl std::ops::Deref for ImmutableFile {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0.bytes()
    }
}
