//! The read-only handle: inspection and replay of a log, also while a writer appends to it.
//!
//! A reader never changes a file. It sees records as the writer's mapping publishes them;
//! a record being written fails its CRC and simply is not visible yet. Damage below the
//! durable checkpoint is reported as [`Corruption`]; damage above it ends the readable log.

use std::path::Path;

use crate::checkpoint::read_checkpoint;
use crate::error::{Corruption, OpenError, ReadError, open_io};
use crate::limits::READER_OPEN_ATTEMPTS;
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
        let mut attempt = 1;
        loop {
            match LogReader::open_once(dir) {
                Err(OpenError::Io { path, source })
                    if source.kind() == std::io::ErrorKind::NotFound
                        && path.extension().is_some_and(|ext| ext == "seg")
                        && attempt < READER_OPEN_ATTEMPTS =>
                {
                    // Retention deleted it after the listing: list again.
                    attempt += 1;
                }
                opened => return opened,
            }
        }
    }

    /// [`LogReader::open`] once, from one listing of the directory.
    fn open_once(dir: &Path) -> Result<Self, OpenError> {
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
    /// The index each segment built or loaded so far is kept when the segment is still there
    /// with the same length, so a reader that follows the log (`relay log tail --follow`)
    /// seeks from the last index entry it has instead of walking the active segment again:
    /// an index is only a hint, and an entry that no longer leads to a valid record with its
    /// offset is ignored (see `docs/log-format.md`, "Sparse index file").
    ///
    /// # Errors
    /// As [`LogReader::open`].
    pub fn refresh(&mut self) -> Result<(), OpenError> {
        let mut fresh = LogReader::open(&self.set.dir)?;
        if fresh.log_id == self.log_id {
            for segment in &mut fresh.set.segments {
                let kept = self.set.segments.iter_mut().find(|old| {
                    old.base_offset == segment.base_offset && old.map.len() == segment.map.len()
                });
                if let Some(index) = kept.and_then(|old| old.index.take()) {
                    let _ = segment.index.set(index);
                }
            }
        }
        *self = fresh;
        Ok(())
    }

    /// The offset from which the last `count` records of the log start (the first retained
    /// offset if it holds fewer). Walks only the records from
    /// `max(durable offset, last segment's base offset) - count` on, not the whole log: at
    /// most `count` records plus those above the checkpoint or in the last segment, whichever
    /// are fewer.
    ///
    /// # Errors
    /// [`ReadError::Corrupt`] if the walk meets corruption.
    pub fn tail_start(&self, count: u64) -> Result<u64, ReadError> {
        let first = self.first_offset();
        let last_base = self
            .set
            .segments
            .last()
            .map_or(first, |segment| segment.base_offset);
        // The log ends at or past both the checkpoint and the last segment's base offset.
        let known_end = self.durable_offset.max(last_base);
        let walk_from = known_end.saturating_sub(count).max(first);
        let mut iter = self.iter_from(walk_from)?;
        for record in iter.by_ref() {
            record?;
        }
        Ok(iter.next_offset().saturating_sub(count).max(walk_from))
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

#[cfg(test)]
mod tests {
    use crate::{LogConfig, LogWriter, NewRecord};

    use super::*;

    fn append(log: &mut LogWriter, count: u64) {
        for _ in 0..count {
            let record = NewRecord {
                timestamp_us: 1,
                kind: 1,
                schema_version: 1,
                origin_hub: 0,
                payload: &[7; 40],
            };
            log.append(&record).expect("append");
        }
        log.commit().expect("commit");
    }

    #[test]
    fn tail_start_names_the_last_records_across_segments_and_short_logs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            segment_bytes: crate::limits::SEGMENT_BYTES_MIN,
            ..LogConfig::default()
        };
        let mut log = LogWriter::open(dir.path(), config).expect("open");
        append(&mut log, 3);
        let reader = LogReader::open(dir.path()).expect("reader");
        assert_eq!(reader.tail_start(10).expect("tail"), 0, "fewer than asked");
        append(&mut log, 500);
        let reader = LogReader::open(dir.path()).expect("reader");
        assert!(reader.segments().len() > 3, "the log spans segments");
        for count in [0, 1, 10, 100, 503, 1000] {
            let expected = 503u64.saturating_sub(count);
            assert_eq!(
                reader.tail_start(count).expect("tail"),
                expected,
                "count {count}"
            );
        }
    }

    #[test]
    fn refresh_keeps_the_index_a_segment_built_and_sees_new_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = LogWriter::open(dir.path(), LogConfig::default()).expect("open");
        append(&mut log, 200);
        let mut reader = LogReader::open(dir.path()).expect("reader");
        assert_eq!(reader.iter_from(150).expect("iter").count(), 50);
        assert!(
            reader.set.segments[0].index.get().is_some(),
            "built by the walk"
        );
        append(&mut log, 10);
        reader.refresh().expect("refresh");
        assert!(
            reader.set.segments[0].index.get().is_some(),
            "kept across the refresh"
        );
        let offsets: Vec<u64> = reader
            .iter_from(195)
            .expect("iter")
            .map(|record| record.expect("record").offset)
            .collect();
        assert_eq!(offsets, (195..210).collect::<Vec<u64>>());
    }
}
