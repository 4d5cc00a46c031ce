//! One segment file: its mapping, its header, the record walk and the sparse index.
//!
//! Everything here treats the mapped bytes as untrusted: a step over a record checks the
//! length bound, the CRC, the stored offset and the padding before handing out a payload.
//! Whether a failed step is a torn tail or corruption is decided by the caller, which knows
//! the checkpoint.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Corruption, DamageKind};
use crate::format::{
    INDEX_ENTRY_BYTES, INDEX_HEADER_BYTES, INDEX_MAGIC, RECORD_HEADER_BYTES, RecordHeader,
    SEGMENT_HEADER_BYTES, padded_len, read_u32, read_u64, record_crc,
};
use crate::limits::{INDEX_INTERVAL_BYTES, RECORD_PAYLOAD_BYTES_MAX};
use crate::mmap::Map;

/// One record, borrowed from the mapping. The payload is 16-byte aligned and exactly
/// `payload_len` bytes long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The record's offset.
    pub offset: u64,
    /// Microseconds since the Unix epoch, as given by the appender.
    pub timestamp_us: u64,
    /// Payload kind (opaque to the log).
    pub kind: u16,
    /// Payload schema version (opaque to the log).
    pub schema_version: u16,
    /// Origin hub id (opaque to the log).
    pub origin_hub: u128,
    /// The exact payload bytes.
    pub payload: &'a [u8],
}

/// The outcome of looking at the bytes where the next record should start.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    /// A valid record; the next one starts at `next_position`.
    Record {
        record: Record<'a>,
        next_position: u64,
    },
    /// No record here: a zeroed header or no room left for a header.
    End,
    /// Something is here, but it is not a valid record with the expected offset.
    Damaged(DamageKind),
}

/// A sparse index entry: the record with `offset` starts at byte `position`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub(crate) offset: u64,
    pub(crate) position: u64,
}

/// A mapped segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    pub(crate) map: Map,
    /// Loaded or built on first use for segments this handle does not write.
    pub(crate) index: OnceLock<Vec<IndexEntry>>,
}

impl Segment {
    /// Walks one record at `position`, expecting it to carry `expected_offset`.
    pub(crate) fn step(&self, position: u64, expected_offset: u64) -> Step<'_> {
        step(self.map.bytes(), position, expected_offset)
    }

    /// Names the damage at `position` as a [`Corruption`].
    pub(crate) fn corruption(&self, offset: u64, position: u64, kind: DamageKind) -> Corruption {
        Corruption::new(self.path.clone(), offset, position, kind)
    }

    /// The index entries of this segment, loading the `.idx` file or scanning on first use.
    pub(crate) fn sealed_index(&self) -> &[IndexEntry] {
        self.index.get_or_init(|| {
            let index_path = self.path.with_extension("idx");
            match std::fs::read(&index_path) {
                Ok(bytes) => match decode_index(&bytes, self.base_offset, self.map.len()) {
                    Some(entries) => return entries,
                    None => {
                        tracing::warn!(segment = %index_path.display(), "ignored damaged index");
                    }
                },
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(segment = %index_path.display(), %error, "ignored unreadable index");
                }
            }
            build_index(self.map.bytes(), self.base_offset)
        })
    }

    /// The position to start scanning from to reach `offset`, using `entries` but checking
    /// the entry against the record it points at: an entry that does not lead to a valid
    /// record with its offset is ignored and the scan starts at the first record.
    pub(crate) fn seek_position(&self, entries: &[IndexEntry], offset: u64) -> (u64, u64) {
        let start = (SEGMENT_HEADER_BYTES as u64, self.base_offset);
        let slot = entries.partition_point(|entry| entry.offset <= offset);
        let Some(entry) = slot.checked_sub(1).and_then(|index| entries.get(index)) else {
            return start;
        };
        match self.step(entry.position, entry.offset) {
            Step::Record { .. } => (entry.position, entry.offset),
            _ => {
                tracing::warn!(
                    segment = %self.path.display(),
                    offset = entry.offset,
                    "index entry does not match the segment; scanning instead"
                );
                start
            }
        }
    }
}

/// Checks the record at `position` of `bytes`, which must carry `expected_offset`.
pub(crate) fn step(bytes: &[u8], position: u64, expected_offset: u64) -> Step<'_> {
    let Ok(start) = usize::try_from(position) else {
        return Step::End;
    };
    let Some(header_bytes) = start
        .checked_add(RECORD_HEADER_BYTES)
        .and_then(|end| bytes.get(start..end))
        .and_then(|slice| <&[u8; RECORD_HEADER_BYTES]>::try_from(slice).ok())
    else {
        return Step::End;
    };
    if header_bytes.iter().all(|&byte| byte == 0) {
        return Step::End;
    }
    let header = RecordHeader::decode(header_bytes);
    let payload_len = header.payload_len as usize;
    let payload_start = start + RECORD_HEADER_BYTES;
    let record_end = payload_start + padded_len(payload_len);
    if payload_len > RECORD_PAYLOAD_BYTES_MAX || record_end > bytes.len() {
        return Step::Damaged(DamageKind::BadLength);
    }
    let payload = &bytes[payload_start..payload_start + payload_len];
    if record_crc(header_bytes, payload) != header.crc {
        return Step::Damaged(DamageKind::BadChecksum);
    }
    if header.offset != expected_offset {
        return Step::Damaged(DamageKind::BadOffset {
            found: header.offset,
        });
    }
    if bytes[payload_start + payload_len..record_end]
        .iter()
        .any(|&byte| byte != 0)
    {
        return Step::Damaged(DamageKind::BadPadding);
    }
    // The last offset is never written (it would have no next one), so every walk may add
    // one to the offset of a record it accepted.
    if header.offset == u64::MAX {
        return Step::Damaged(DamageKind::OffsetOverflow);
    }
    Step::Record {
        record: Record {
            offset: header.offset,
            timestamp_us: header.timestamp_us,
            kind: header.kind,
            schema_version: header.schema_version,
            origin_hub: header.origin_hub,
            payload,
        },
        next_position: record_end as u64,
    }
}

/// Whether a record at `position` earns an index entry after the last one.
pub(crate) fn wants_index_entry(entries: &[IndexEntry], position: u64) -> bool {
    entries
        .last()
        .is_none_or(|last| position - last.position >= INDEX_INTERVAL_BYTES)
}

/// Builds an index by walking the valid records from the start of the segment.
pub(crate) fn build_index(bytes: &[u8], base_offset: u64) -> Vec<IndexEntry> {
    let mut entries = Vec::new();
    let mut position = SEGMENT_HEADER_BYTES as u64;
    let mut offset = base_offset;
    // Bounded: every step advances `position` by at least one record header.
    while let Step::Record { next_position, .. } = step(bytes, position, offset) {
        if wants_index_entry(&entries, position) {
            entries.push(IndexEntry { offset, position });
        }
        position = next_position;
        offset += 1;
    }
    entries
}

/// Encodes an index file (see `docs/log-format.md`).
pub(crate) fn encode_index(base_offset: u64, entries: &[IndexEntry]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(INDEX_HEADER_BYTES + entries.len() * INDEX_ENTRY_BYTES);
    bytes.extend_from_slice(&INDEX_MAGIC);
    bytes.extend_from_slice(&base_offset.to_le_bytes());
    bytes.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&[0u8; 4]);
    for entry in entries {
        let delta = u32::try_from(entry.offset - base_offset).unwrap_or(u32::MAX);
        bytes.extend_from_slice(&delta.to_le_bytes());
        bytes.extend_from_slice(&(entry.position as u32).to_le_bytes());
    }
    let crc = crc32fast::hash(&bytes[INDEX_HEADER_BYTES..]) ^ crc32fast::hash(&bytes[..20]);
    bytes[20..24].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Decodes and checks an index file; `None` if anything is off.
pub(crate) fn decode_index(
    bytes: &[u8],
    base_offset: u64,
    segment_len: u64,
) -> Option<Vec<IndexEntry>> {
    if bytes.len() < INDEX_HEADER_BYTES || bytes[0..8] != INDEX_MAGIC {
        return None;
    }
    let count = read_u32(bytes, 16) as usize;
    if read_u64(bytes, 8) != base_offset
        || bytes.len() != INDEX_HEADER_BYTES + count.checked_mul(INDEX_ENTRY_BYTES)?
    {
        return None;
    }
    let crc = crc32fast::hash(&bytes[INDEX_HEADER_BYTES..]) ^ crc32fast::hash(&bytes[..20]);
    if crc != read_u32(bytes, 20) {
        return None;
    }
    let mut entries: Vec<IndexEntry> = Vec::with_capacity(count);
    for chunk in bytes[INDEX_HEADER_BYTES..].chunks_exact(INDEX_ENTRY_BYTES) {
        let entry = IndexEntry {
            offset: base_offset.checked_add(u64::from(read_u32(chunk, 0)))?,
            position: u64::from(read_u32(chunk, 4)),
        };
        let ordered = entries
            .last()
            .is_none_or(|last| entry.offset > last.offset && entry.position > last.position);
        if !ordered || entry.position < SEGMENT_HEADER_BYTES as u64 || entry.position >= segment_len
        {
            return None;
        }
        entries.push(entry);
    }
    Some(entries)
}

/// Writes the `.idx` file of a sealed segment. It is not synced: a torn index fails its
/// checks on load and is rebuilt by a scan.
pub(crate) fn write_index(segment_path: &Path, base_offset: u64, entries: &[IndexEntry]) {
    let index_path = segment_path.with_extension("idx");
    if let Err(error) = std::fs::write(&index_path, encode_index(base_offset, entries)) {
        tracing::warn!(segment = %index_path.display(), %error, "could not write index");
    }
}
