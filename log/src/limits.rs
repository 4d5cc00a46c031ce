//! Named limits and defaults of the log. Every bound the log enforces lives here.
//!
//! Relations between the constants are checked at compile time below, so changing one
//! cannot silently break record alignment.

use crate::format::{RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};

/// Records start on this boundary so rkyv can read payloads in place from the mapping.
pub const RECORD_ALIGNMENT_BYTES: usize = 16;

/// Times a reader lists and opens the segments again when a segment it listed is gone before
/// it could open it: a writer's retention deletes old segments while `relay log …` reads.
/// Each deletion takes one segment, so a few attempts outlast any burst of them.
pub const READER_OPEN_ATTEMPTS: u32 = 8;

/// Default size a segment is allocated with before the log rolls to a new one.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;

/// Smallest segment size a [`crate::LogConfig`] accepts; smaller sizes only make sense in tests,
/// and even there a segment must hold its header and one small record.
pub const SEGMENT_BYTES_MIN: u64 = 4096;

/// Largest segment size a [`crate::LogConfig`] accepts. Positions inside a segment are stored
/// as `u32` in the sparse index, so a segment must stay below 4 GiB.
pub const SEGMENT_BYTES_MAX: u64 = 1 << 31;

/// Largest payload one record may carry, in bytes. A bigger append is rejected with
/// [`crate::WriteError::PayloadTooLarge`] and writes nothing.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 16 << 20;

/// The sparse index gets one entry per this many bytes of records (and one for the first
/// record of every segment), so a lookup scans at most about this many bytes.
pub const INDEX_INTERVAL_BYTES: u64 = 4096;

/// The checkpoint is rewritten after a `strict` commit once it lags the committed end by this
/// many records, at the first `strict` commit after a roll, and on [`crate::LogWriter::sync`]
/// and close.
pub const CHECKPOINT_INTERVAL_RECORDS: u64 = 4096;

/// Most bytes the search for a valid record after damage reads (see `witness.rs`): the rest
/// of the damaged segment and the later segments, up to this many bytes. Past it the damage
/// is taken as a torn tail. Twice the largest segment, so a whole damaged segment and the
/// start of the next are always searched.
pub const WITNESS_SCAN_BYTES_MAX: u64 = 2 * SEGMENT_BYTES_MAX;

const _: () = assert!(RECORD_HEADER_BYTES.is_multiple_of(RECORD_ALIGNMENT_BYTES));
const _: () = assert!(SEGMENT_HEADER_BYTES.is_multiple_of(RECORD_ALIGNMENT_BYTES));
const _: () = assert!(SEGMENT_BYTES_MIN as usize > SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES);
const _: () =
    assert!(RECORD_PAYLOAD_BYTES_MAX as u64 + (RECORD_HEADER_BYTES as u64) < SEGMENT_BYTES_MAX);
