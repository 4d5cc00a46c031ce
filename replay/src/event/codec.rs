//! Turns events into record payloads and back: [`encode`] and [`decode`].
//!
//! Decoding treats every payload as untrusted (it may come from another hub or a damaged disk):
//! it only ever uses rkyv's validated access, never the unchecked path, and it never panics on
//! arbitrary bytes. Validation is not an integrity check; the log's CRC is.

use rkyv::util::AlignedVec;

use crate::event::{Event, EventKind, decode_v1_payload, encode_payload_into};
use crate::limits::PAYLOAD_ALIGNMENT_BYTES;

/// An encoded event: the two header fields the log stores beside the payload, and the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// [`EventKind::number`] of the event.
    pub kind: u16,
    /// Schema version the payload is written with.
    pub schema_version: u16,
    /// The exact rkyv bytes (the archive root sits at the end, so no padding may follow).
    pub payload: Vec<u8>,
}

/// Why a payload could not be decoded into an [`Event`].
///
/// During replay of our own log this means damage or a bug: `relay replay` reports the offset.
/// For an imported record it means the peer sent something we cannot read: the import is
/// rejected.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The record header names a kind number no [`EventKind`] has (written by a newer hub, or
    /// damage).
    #[error("unknown event kind {kind} (schema version {schema_version})")]
    UnknownKind {
        /// The kind number found.
        kind: u16,
        /// The schema version found.
        schema_version: u16,
    },
    /// The kind is known but this schema version is not (written by a newer hub, or damage).
    #[error("unknown schema version {schema_version} for event kind {kind}")]
    UnknownSchemaVersion {
        /// The kind number found.
        kind: u16,
        /// The schema version found.
        schema_version: u16,
    },
    /// The bytes are not a valid archive of that kind and version.
    #[error("invalid payload for event kind {kind} schema version {schema_version}: {reason}")]
    InvalidPayload {
        /// The kind number.
        kind: u16,
        /// The schema version.
        schema_version: u16,
        /// rkyv's description of what failed validation.
        reason: String,
    },
}

/// Encodes `event` with its kind's current schema version.
///
/// Equal events give equal bytes. [`encode_into`] does the same into a buffer that is kept
/// (the hub's core encodes every event it appends that way, with no allocation).
///
/// # Panics
///
/// Only if the payload exceeds the 2 GiB that 32-bit rkyv offsets can address; the hub's frame
/// limit keeps every event far below that.
pub fn encode(event: &Event) -> Encoded {
    let mut buffer = AlignedVec::new();
    let (kind, schema_version) = encode_into(event, &mut buffer);
    Encoded {
        kind,
        schema_version,
        payload: buffer.into_vec(),
    }
}

/// The buffer [`encode_into`] writes a payload into (16-byte aligned, as rkyv reads it).
pub type EncodeBuffer = AlignedVec<PAYLOAD_ALIGNMENT_BYTES>;

/// Encodes `event` into `buffer`, replacing what it held, and returns the event's kind number
/// and schema version (the header fields of [`Encoded`]); the payload is then `&buffer[..]`.
/// The buffer keeps its capacity, so encoding the next event of a similar size allocates
/// nothing.
///
/// # Panics
///
/// As [`encode`].
pub fn encode_into(event: &Event, buffer: &mut EncodeBuffer) -> (u16, u16) {
    buffer.clear();
    let kind = event.kind();
    encode_payload_into(event, buffer)
        .expect("invariant: an event payload is far below rkyv's 2 GiB offset limit");
    (kind.number(), kind.current_schema_version())
}

/// Decodes a record payload of `kind` at `schema_version` into an owned [`Event`], upcasting old
/// versions.
///
/// The log hands out 16-byte aligned slices; an unaligned slice is copied into an aligned buffer
/// first, so any slice works.
///
/// # Errors
///
/// [`DecodeError::UnknownKind`], [`DecodeError::UnknownSchemaVersion`] or
/// [`DecodeError::InvalidPayload`], each carrying the kind and version.
pub fn decode(kind: u16, schema_version: u16, payload: &[u8]) -> Result<Event, DecodeError> {
    let event_kind = EventKind::from_number(kind).ok_or(DecodeError::UnknownKind {
        kind,
        schema_version,
    })?;
    if schema_version != 1 {
        return Err(DecodeError::UnknownSchemaVersion {
            kind,
            schema_version,
        });
    }
    let invalid = |error: rkyv::rancor::Error| DecodeError::InvalidPayload {
        kind,
        schema_version,
        reason: error.to_string(),
    };
    if (payload.as_ptr() as usize).is_multiple_of(PAYLOAD_ALIGNMENT_BYTES) {
        decode_v1_payload(event_kind, payload).map_err(invalid)
    } else {
        let mut aligned = AlignedVec::<PAYLOAD_ALIGNMENT_BYTES>::with_capacity(payload.len());
        aligned.extend_from_slice(payload);
        decode_v1_payload(event_kind, &aligned).map_err(invalid)
    }
}
