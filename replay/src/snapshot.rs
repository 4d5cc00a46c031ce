//! Snapshots: the whole [`State`] at an offset, so start-up does not replay the log from zero.
//!
//! Layout (little-endian), 32-byte header then body:
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `RLYSNAP\0` |
//! | 8..10 | format version ([`SNAPSHOT_FORMAT_VERSION`]) |
//! | 10..12 | reserved, zero |
//! | 12..16 | CRC32 of bytes 16.. (header tail and body) |
//! | 16..24 | next offset: the first record not folded into the state |
//! | 24..32 | body length in bytes |
//! | 32.. | body: the `State` archived with rkyv (same format flags as the log) |
//!
//! rkyv is used for the body because it is already how events are stored, reads back without a
//! parser (validation plus one deserialize pass), and writes equal bytes for equal states since
//! every collection in `State` is ordered and rkyv zeroes padding. A snapshot is a cache, not a
//! frozen format: when its version or layout does not match this build, decoding fails and the hub
//! rebuilds from the log. This module does no I/O; the caller reads and writes the file.

use rkyv::util::AlignedVec;

use crate::limits::PAYLOAD_ALIGNMENT_BYTES;
use crate::state::State;

/// The first eight bytes of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"RLYSNAP\0";

/// Snapshot format version written by this build. Bump it whenever `State`'s layout changes.
/// Version 4: mailboxes keep every unread message (by sequence) and a refusal record, and group
/// memberships count missed messages.
pub const SNAPSHOT_FORMAT_VERSION: u16 = 4;

/// Header length in bytes; the body starts right after, on a 16-byte boundary.
pub const SNAPSHOT_HEADER_BYTES: usize = 32;

const _: () = assert!(SNAPSHOT_HEADER_BYTES.is_multiple_of(PAYLOAD_ALIGNMENT_BYTES));

/// Why a snapshot could not be read. In every case the caller rebuilds the state from the log
/// (and may write a fresh snapshot); a snapshot is never needed for correctness.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// Fewer bytes than a header, or than the header says the body has (a torn write).
    #[error("snapshot truncated: {found} bytes, expected {expected}")]
    Truncated {
        /// Bytes needed.
        expected: usize,
        /// Bytes found.
        found: usize,
    },
    /// The file does not start with [`SNAPSHOT_MAGIC`].
    #[error("not a snapshot (bad magic)")]
    BadMagic,
    /// Written by a build with another snapshot format version.
    #[error("snapshot format version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion {
        /// The version found.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// The CRC does not match: the file is damaged.
    #[error("snapshot checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// CRC stored in the header.
        stored: u32,
        /// CRC of the bytes found.
        computed: u32,
    },
    /// The body passed the CRC but is not a valid archived `State` (a layout change without a
    /// version bump).
    #[error("snapshot body is invalid: {reason}")]
    InvalidBody {
        /// rkyv's description of what failed.
        reason: String,
    },
}

/// Serializes `state`, which holds every record before `next_offset`.
///
/// Equal states and offsets give equal bytes.
///
/// # Panics
///
/// Only if the state exceeds the 2 GiB that 32-bit rkyv offsets can address; the limits in
/// `limits.rs` keep it far below that.
pub fn snapshot_encode(state: &State, next_offset: u64) -> Vec<u8> {
    let body = rkyv::to_bytes::<rkyv::rancor::Error>(state)
        .expect("invariant: a state within its limits is far below rkyv's 2 GiB offset limit");
    let mut bytes = Vec::with_capacity(SNAPSHOT_HEADER_BYTES + body.len());
    bytes.extend_from_slice(&SNAPSHOT_MAGIC);
    bytes.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&next_offset.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&body);
    let crc = crc32fast::hash(&bytes[16..]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Reads a snapshot back: the state and the offset of the first record to apply after it.
///
/// # Errors
///
/// A [`SnapshotError`] when the bytes are truncated, not a snapshot, of another version, damaged,
/// or not a valid state. Never panics, whatever the bytes.
pub fn snapshot_decode(bytes: &[u8]) -> Result<(State, u64), SnapshotError> {
    let header = bytes
        .get(..SNAPSHOT_HEADER_BYTES)
        .ok_or(SnapshotError::Truncated {
            expected: SNAPSHOT_HEADER_BYTES,
            found: bytes.len(),
        })?;
    if header[..8] != SNAPSHOT_MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let version = u16::from_le_bytes([header[8], header[9]]);
    if version != SNAPSHOT_FORMAT_VERSION {
        return Err(SnapshotError::UnsupportedVersion {
            found: version,
            supported: SNAPSHOT_FORMAT_VERSION,
        });
    }
    let stored = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    let next_offset = read_u64(&header[16..24]);
    let body_bytes = usize::try_from(read_u64(&header[24..32])).unwrap_or(usize::MAX);
    let expected = SNAPSHOT_HEADER_BYTES.saturating_add(body_bytes);
    if bytes.len() < expected {
        return Err(SnapshotError::Truncated {
            expected,
            found: bytes.len(),
        });
    }
    let computed = crc32fast::hash(&bytes[16..expected]);
    if computed != stored {
        return Err(SnapshotError::ChecksumMismatch { stored, computed });
    }
    let body = &bytes[SNAPSHOT_HEADER_BYTES..expected];
    // rkyv needs the body aligned; a buffer from the allocator usually is (the header is 32
    // bytes), so the copy is only a fallback.
    let copy;
    let body = if (body.as_ptr() as usize).is_multiple_of(PAYLOAD_ALIGNMENT_BYTES) {
        body
    } else {
        let mut aligned = AlignedVec::<PAYLOAD_ALIGNMENT_BYTES>::with_capacity(body_bytes);
        aligned.extend_from_slice(body);
        copy = aligned;
        &copy[..]
    };
    let invalid = |error: rkyv::rancor::Error| SnapshotError::InvalidBody {
        reason: error.to_string(),
    };
    let archived =
        rkyv::access::<rkyv::Archived<State>, rkyv::rancor::Error>(body).map_err(invalid)?;
    let state = rkyv::deserialize::<State, rkyv::rancor::Error>(archived).map_err(invalid)?;
    Ok((state, next_offset))
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut array = [0; 8];
    array.copy_from_slice(bytes);
    u64::from_le_bytes(array)
}
