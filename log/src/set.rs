//! The ordered set of mapped segments of one log, and the record walk across them.
//!
//! Shared by [`crate::LogReader`] and [`crate::LogWriter`]. A walk that meets damage decides
//! between "end of the readable log" and [`Corruption`] with one threshold, `corrupt_below`:
//! damage at an offset below it is corruption. The writer passes its next offset (everything
//! it holds was verified or written by it); a reader passes the durable checkpoint.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Corruption, DamageKind, OpenError, ReadError, open_io};
use crate::format::{HeaderDamage, SEGMENT_HEADER_BYTES, SegmentHeader, parse_segment_file_name};
use crate::mmap::Map;
use crate::segment::{IndexEntry, Record, Segment, Step};
use crate::witness::{DamageAt, find_witness};

/// Size and place of one segment, for `relay log info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The segment file.
    pub path: PathBuf,
    /// Offset of its first record.
    pub base_offset: u64,
    /// Size of the file (reserved space included), in bytes.
    pub file_bytes: u64,
}

/// What a full verification found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Number of segments.
    pub segment_count: usize,
    /// Number of valid records, all checked.
    pub record_count: u64,
    /// Bytes of records (headers, payloads, padding).
    pub record_bytes: u64,
    /// First offset in the log.
    pub first_offset: u64,
    /// Offset after the last valid record.
    pub next_offset: u64,
    /// Damage met above the checkpoint: a torn tail a writer would cut on its next open.
    pub torn_tail: Option<Corruption>,
}

#[derive(Debug)]
pub(crate) struct SegmentSet {
    pub(crate) dir: PathBuf,
    pub(crate) segments: Vec<Segment>,
    /// The writer's in-memory index of its active (last) segment, if this set has a writer.
    pub(crate) active_index: Option<Vec<IndexEntry>>,
}

/// Lists the segment files of `dir`, sorted by base offset.
pub(crate) fn list_segment_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, OpenError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(open_io(dir))? {
        let entry = entry.map_err(open_io(dir))?;
        let name = entry.file_name();
        if let Some(base_offset) = name.to_str().and_then(parse_segment_file_name) {
            files.push((base_offset, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Opens and maps one segment file and checks its header.
pub(crate) fn open_segment(
    path: &Path,
    base_offset: u64,
    writable: bool,
) -> Result<(Segment, Result<SegmentHeader, HeaderDamage>), OpenError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(writable)
        .open(path)
        .map_err(open_io(path))?;
    let len = file.metadata().map_err(open_io(path))?.len();
    let map = if writable {
        Map::write(&file, len)
    } else {
        Map::read(&file, len)
    };
    let map = map.map_err(open_io(path))?;
    let header = SegmentHeader::decode(map.bytes());
    let segment = Segment {
        base_offset,
        path: path.to_owned(),
        file,
        map,
        index: OnceLock::new(),
    };
    Ok((segment, header))
}

/// Checks a decoded header against the log it should belong to.
pub(crate) fn check_header(
    segment: &Segment,
    header: Result<SegmentHeader, HeaderDamage>,
    log_id: Option<u128>,
) -> Result<SegmentHeader, DamageKind> {
    let header = header.map_err(|damage| match damage {
        HeaderDamage::Unsupported => DamageKind::UnsupportedFormat,
        HeaderDamage::Short | HeaderDamage::BadMagic | HeaderDamage::BadChecksum => {
            DamageKind::SegmentHeader
        }
    })?;
    if header.base_offset != segment.base_offset || log_id.is_some_and(|id| id != header.log_id) {
        return Err(DamageKind::SegmentIdentity);
    }
    Ok(header)
}

impl SegmentSet {
    pub(crate) fn first_offset(&self) -> u64 {
        self.segments
            .first()
            .map_or(0, |segment| segment.base_offset)
    }

    pub(crate) fn infos(&self) -> Vec<SegmentInfo> {
        self.segments
            .iter()
            .map(|segment| SegmentInfo {
                path: segment.path.clone(),
                base_offset: segment.base_offset,
                file_bytes: segment.map.len(),
            })
            .collect()
    }

    fn index_of(&self, segment_index: usize) -> &[IndexEntry] {
        match &self.active_index {
            Some(entries) if segment_index + 1 == self.segments.len() => entries,
            _ => self.segments[segment_index].sealed_index(),
        }
    }

    /// A walk over the records from `offset` on.
    pub(crate) fn iter_from(
        &self,
        offset: u64,
        end: Option<u64>,
        corrupt_below: u64,
    ) -> Result<LogIter<'_>, ReadError> {
        let first = self.first_offset();
        if offset < first || self.segments.is_empty() {
            return Err(ReadError::OutOfRange {
                offset,
                first,
                next: end.unwrap_or(first),
            });
        }
        let segment_index = self
            .segments
            .partition_point(|segment| segment.base_offset <= offset)
            - 1;
        let segment = &self.segments[segment_index];
        let (position, start_offset) = segment.seek_position(self.index_of(segment_index), offset);
        Ok(LogIter {
            set: self,
            segment_index,
            position,
            offset: start_offset,
            skip_below: offset,
            end,
            corrupt_below,
            finished: false,
            torn_tail: None,
            thorough: false,
        })
    }

    pub(crate) fn read(
        &self,
        offset: u64,
        end: Option<u64>,
        corrupt_below: u64,
    ) -> Result<Record<'_>, ReadError> {
        let out_of_range = || ReadError::OutOfRange {
            offset,
            first: self.first_offset(),
            next: end.unwrap_or(offset),
        };
        if end.is_some_and(|end| offset >= end) {
            return Err(out_of_range());
        }
        match self.iter_from(offset, end, corrupt_below)?.next() {
            Some(Ok(record)) => Ok(record),
            Some(Err(corruption)) => Err(ReadError::Corrupt(corruption)),
            None => Err(out_of_range()),
        }
    }

    pub(crate) fn verify(
        &self,
        end: Option<u64>,
        corrupt_below: u64,
    ) -> Result<VerifyReport, Corruption> {
        let mut report = VerifyReport {
            segment_count: self.segments.len(),
            first_offset: self.first_offset(),
            next_offset: self.first_offset(),
            ..VerifyReport::default()
        };
        if self.segments.is_empty() {
            return Ok(report);
        }
        let mut iter = match self.iter_from(self.first_offset(), end, corrupt_below) {
            Ok(iter) => iter,
            Err(ReadError::Corrupt(corruption)) => return Err(corruption),
            Err(ReadError::OutOfRange { .. }) => return Ok(report),
        };
        iter.thorough = true;
        for record in iter.by_ref() {
            let record = record?;
            report.record_count += 1;
            report.record_bytes += crate::format::record_bytes(record.payload.len());
            report.next_offset = record.offset + 1;
        }
        report.torn_tail = iter.torn_tail;
        Ok(report)
    }
}

/// An iterator over records in offset order; yields an error once and stops at corruption.
#[derive(Debug)]
pub struct LogIter<'a> {
    set: &'a SegmentSet,
    segment_index: usize,
    position: u64,
    offset: u64,
    skip_below: u64,
    end: Option<u64>,
    corrupt_below: u64,
    finished: bool,
    torn_tail: Option<Corruption>,
    /// Also search for a valid record after a zeroed header at the end of the last segment
    /// (a full verification does; a plain walk would pay a scan of the reserved space at
    /// every end).
    thorough: bool,
}

impl<'a> LogIter<'a> {
    /// Makes the walk search past a zeroed header at the end of the log for valid records, as
    /// [`crate::LogReader::verify`] does: a hole followed by records is reported as
    /// corruption instead of ending the walk. Costs one scan of the rest of the last segment
    /// when the walk reaches the end.
    pub fn thorough(mut self) -> Self {
        self.thorough = true;
        self
    }

    /// The offset the next record would have.
    pub fn next_offset(&self) -> u64 {
        self.offset
    }

    /// Damage above the checkpoint where the walk stopped, if any: an unrecovered torn tail
    /// (seen by readers of a log whose writer crashed and has not reopened yet), or a record
    /// a live writer is still writing.
    pub fn torn_tail(&self) -> Option<&Corruption> {
        self.torn_tail.as_ref()
    }

    fn stop(&mut self, kind: DamageKind) -> Option<Result<Record<'a>, Corruption>> {
        self.finished = true;
        let segment = &self.set.segments[self.segment_index];
        let mut corruption = segment.corruption(self.offset, self.position, kind);
        // Two segments claiming the same offsets is never a torn write, wherever it is.
        let overlap = matches!(kind, DamageKind::SegmentOverlap { .. });
        if self.offset < self.corrupt_below || overlap {
            return Some(Err(corruption));
        }
        if kind == DamageKind::Zeroed && !self.thorough {
            return None;
        }
        let damage = DamageAt {
            segment_index: self.segment_index,
            position: self.position,
            offset: self.offset,
        };
        // A reader has no later files beyond its segments; an I/O failure in the search only
        // means no witness was found.
        if let Ok(Some(witness)) = find_witness(&self.set.segments, damage, &[], None) {
            // A live writer may have completed the record while the search ran: look again.
            if let Step::Record { .. } = segment.step(self.position, self.offset) {
                self.finished = false;
                return self.next();
            }
            corruption.followed_by = Some(witness);
            return Some(Err(corruption));
        }
        if kind != DamageKind::Zeroed {
            self.torn_tail = Some(corruption);
        }
        None
    }
}

impl<'a> Iterator for LogIter<'a> {
    type Item = Result<Record<'a>, Corruption>;

    fn next(&mut self) -> Option<Self::Item> {
        // Bounded: each pass either returns, advances `position` by a whole record, or moves
        // to the next segment.
        loop {
            if self.finished || self.end.is_some_and(|end| self.offset >= end) {
                return None;
            }
            let segment = &self.set.segments[self.segment_index];
            match segment.step(self.position, self.offset) {
                Step::Record {
                    record,
                    next_position,
                } => {
                    self.position = next_position;
                    // `step` never accepts a record at `u64::MAX`.
                    self.offset += 1;
                    if record.offset >= self.skip_below {
                        return Some(Ok(record));
                    }
                }
                Step::End => match self.set.segments.get(self.segment_index + 1) {
                    Some(next) if next.base_offset == self.offset => {
                        self.segment_index += 1;
                        self.position = SEGMENT_HEADER_BYTES as u64;
                    }
                    Some(next) if next.base_offset < self.offset => {
                        let next_base_offset = next.base_offset;
                        return self.stop(DamageKind::SegmentOverlap { next_base_offset });
                    }
                    Some(next) => {
                        let next_base_offset = next.base_offset;
                        return self.stop(DamageKind::MissingRecords { next_base_offset });
                    }
                    None => return self.stop(DamageKind::Zeroed),
                },
                Step::Damaged(kind) => return self.stop(kind),
            }
        }
    }
}

/// Opens the files of `dir` read-only, checking headers against the first one (or `log_id`).
/// Damage in a header whose segment starts at or above `corrupt_below` ends the list there
/// (an unrecovered torn tail); below it, it is corruption.
///
/// Every segment must carry the payload format flags of the first one
/// ([`OpenError::FormatFlags`] otherwise). A damaged header above `corrupt_below` that is
/// followed by a later segment with a valid record is corruption too (not a torn roll).
pub(crate) fn open_read_only(
    dir: &Path,
    mut log_id: Option<u128>,
    corrupt_below: u64,
) -> Result<ReadOnlySegments, OpenError> {
    let mut segments: Vec<Segment> = Vec::new();
    let mut payload_format_flags = None;
    let files = list_segment_files(dir)?;
    for (index, (base_offset, path)) in files.iter().enumerate() {
        let (segment, header) = open_segment(path, *base_offset, false)?;
        match check_header(&segment, header, log_id) {
            Ok(header) => {
                log_id = Some(header.log_id);
                let expected = *payload_format_flags.get_or_insert(header.payload_format_flags);
                if header.payload_format_flags != expected {
                    return Err(OpenError::FormatFlags {
                        segment: path.clone(),
                        expected,
                        found: header.payload_format_flags,
                    });
                }
            }
            Err(kind) if *base_offset < corrupt_below => {
                return Err(segment.corruption(*base_offset, 0, kind).into());
            }
            Err(kind) => {
                let damage_index = segments.len();
                segments.push(segment);
                let damage = DamageAt {
                    segment_index: damage_index,
                    position: 0,
                    offset: *base_offset,
                };
                let witness = find_witness(&segments, damage, &files[index + 1..], log_id)?;
                if let Some(witness) = witness {
                    let mut corruption = segments[damage_index].corruption(*base_offset, 0, kind);
                    corruption.followed_by = Some(witness);
                    return Err(corruption.into());
                }
                segments.pop();
                break;
            }
        }
        segments.push(segment);
    }
    Ok(ReadOnlySegments {
        segments,
        log_id,
        payload_format_flags,
    })
}

/// What [`open_read_only`] found.
#[derive(Debug)]
pub(crate) struct ReadOnlySegments {
    pub(crate) segments: Vec<Segment>,
    pub(crate) log_id: Option<u128>,
    pub(crate) payload_format_flags: Option<u8>,
}
