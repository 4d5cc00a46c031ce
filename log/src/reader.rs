//! The read-only handle: inspection and replay of a log, also while a writer appends to it.
//!
//! A reader never changes a file. It sees records as the writer's mapping publishes them;
//! a record being written fails its CRC and simply is not visible yet. Damage below the
//! durable checkpoint is reported as [`Corruption`]; damage above it ends the readable log.

use std::path::Path;

use crate::checkpoint::read_checkpoint;
use crate::error::{Corruption, OpenError, ReadError, open_io};
use crate::segment::Record;
use crate::set::{LogIter, SegmentInfo, SegmentSet, VerifyReport, open_read_only};

/// A read-only view of a log directory.
#[derive(Debug)]
pub struct LogReader {
    set: SegmentSet,
    durable_offset: u64,
    log_id: u128,
    payload_format_flags: u8,
}

impl LogReader {
    /// Opens the log in `dir` for reading. Takes no lock: works while a writer runs.
    ///
    /// # Errors
    /// [`OpenError::NotFound`] if `dir` holds no log; [`OpenError::Corrupt`] if a segment
    /// header below the checkpoint is damaged, or a damaged header above it is followed by a
    /// valid segment; [`OpenError::FormatFlags`] if the segments disagree on their payload
    /// format flags; [`OpenError::Io`] for file-system failures.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        let checkpoint = read_checkpoint(dir).map_err(open_io(dir))?;
        let durable_offset = checkpoint.map_or(0, |checkpoint| checkpoint.durable_offset);
        let found = open_read_only(
            dir,
            checkpoint.map(|checkpoint| checkpoint.log_id),
            durable_offset,
        )?;
        let segments = found.segments;
        let payload_format_flags = found.payload_format_flags.unwrap_or(0);
        let Some(log_id) = found.log_id else {
            return Err(OpenError::NotFound {
                path: dir.to_owned(),
            });
        };
        let set = SegmentSet {
            dir: dir.to_owned(),
            segments,
            active_index: None,
        };
        Ok(LogReader {
            set,
            durable_offset,
            log_id,
            payload_format_flags,
        })
    }

    /// Picks up segments and checkpoint changes made by a writer since opening.
    ///
    /// # Errors
    /// As [`LogReader::open`].
    pub fn refresh(&mut self) -> Result<(), OpenError> {
        *self = LogReader::open(&self.set.dir)?;
        Ok(())
    }

    /// The record at `offset`, fully checked.
    ///
    /// # Errors
    /// [`ReadError::OutOfRange`] past the visible end or below the first retained offset;
    /// [`ReadError::Corrupt`] if it or a record before it in its index interval is damaged
    /// below the checkpoint.
    pub fn read(&self, offset: u64) -> Result<Record<'_>, ReadError> {
        self.set.read(offset, None, self.durable_offset)
    }

    /// Iterates the records from `offset` to the visible end.
    ///
    /// # Errors
    /// [`ReadError::OutOfRange`] if `offset` is below the first retained offset.
    pub fn iter_from(&self, offset: u64) -> Result<LogIter<'_>, ReadError> {
        self.set.iter_from(offset, None, self.durable_offset)
    }

    /// Checks every record of the log: CRC, offsets, lengths, padding, segment continuity.
    ///
    /// # Errors
    /// The first [`Corruption`]: damage below the checkpoint, a missing or overlapping
    /// segment, or damage above the checkpoint that a valid record follows (not a torn tail).
    pub fn verify(&self) -> Result<VerifyReport, Corruption> {
        self.set.verify(None, self.durable_offset)
    }

    /// First retained offset.
    pub fn first_offset(&self) -> u64 {
        self.set.first_offset()
    }

    /// Every record below this offset was durable when the reader opened.
    pub fn durable_offset(&self) -> u64 {
        self.durable_offset
    }

    /// The payload format flags every segment header carries (checked equal on open).
    /// Callers that decode payloads in place compare them with what they can read.
    pub fn payload_format_flags(&self) -> u8 {
        self.payload_format_flags
    }

    /// The log id fixed at creation.
    pub fn log_id(&self) -> u128 {
        self.log_id
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.set.infos()
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.set.dir
    }
}

impl LogReader {
    /// The mapped bytes of every segment (for the memcpy baseline of the benchmark).
    pub(crate) fn mapped_segments(&self) -> impl Iterator<Item = &[u8]> {
        self.set.segments.iter().map(|segment| segment.map.bytes())
    }
}
