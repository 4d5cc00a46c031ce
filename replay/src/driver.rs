//! The replay driver: folds records from the log into a [`State`], checking every one.
//!
//! Used by the hub at start-up (snapshot + tail) and by `relay replay` / `relay log`. It reads
//! records through `relay-log`'s iterators (which check CRC and structure), decodes each
//! payload with validation, and applies it. Damage, an undecodable payload and an event that
//! does not fit the state are all errors naming the offset; nothing is skipped.

use relay_log::{Corruption, Record};

use crate::apply::{ApplyError, RecordMeta, apply};
use crate::event::Event;
use crate::event::codec::{DecodeError, decode};
use crate::state::State;

/// rkyv format flags Relay's payloads use, stored in every segment header: bit 0
/// little-endian, bit 1 aligned primitives, bit 2 32-bit relative pointers.
pub const RKYV_FORMAT_FLAGS: u8 = 0b111;

/// Where a replay stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Until {
    /// At the end of the readable log.
    #[default]
    End,
    /// After the record with this offset.
    Offset(u64),
    /// Before the first record stamped later than this many microseconds since the epoch.
    TimeUs(u64),
}

impl Until {
    fn includes(&self, record: &Record<'_>) -> bool {
        match *self {
            Until::End => true,
            Until::Offset(offset) => record.offset <= offset,
            Until::TimeUs(time_us) => record.timestamp_us <= time_us,
        }
    }
}

/// Why a replay stopped short.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The log is damaged at or below its checkpoint.
    #[error(transparent)]
    Corrupt(#[from] Corruption),
    /// A record's payload does not decode as its kind and schema version.
    #[error("record at offset {offset} does not decode: {source}")]
    Decode {
        /// The record's offset.
        offset: u64,
        /// Why decoding failed.
        source: DecodeError,
    },
    /// A record's event does not fit the state built so far.
    #[error("record at offset {offset} ({kind}) does not apply: {source}")]
    Apply {
        /// The record's offset.
        offset: u64,
        /// The event's kind name.
        kind: &'static str,
        /// Why it does not apply.
        source: ApplyError,
    },
}

impl ReplayError {
    /// The offset of the record the replay stopped at.
    pub fn offset(&self) -> u64 {
        match self {
            ReplayError::Corrupt(corruption) => corruption.offset,
            ReplayError::Decode { offset, .. } | ReplayError::Apply { offset, .. } => *offset,
        }
    }
}

/// What a replay covered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Records decoded and applied.
    pub records: u64,
    /// Payload bytes decoded.
    pub payload_bytes: u64,
    /// The offset after the last record applied.
    pub next_offset: u64,
}

/// Decodes one record into its event.
///
/// # Errors
/// [`ReplayError::Decode`] naming the record's offset.
pub fn decode_record(record: &Record<'_>) -> Result<Event, ReplayError> {
    decode(record.kind, record.schema_version, record.payload).map_err(|source| {
        ReplayError::Decode {
            offset: record.offset,
            source,
        }
    })
}

/// Folds `records` into `state` until `until`, calling `observe` with every record and its
/// event after it applied. Records below `state.next_offset()` are skipped (they are in the
/// state already, e.g. from a snapshot).
///
/// # Errors
/// The first damaged record, undecodable payload or event that does not apply.
pub fn replay_into<'a>(
    state: &mut State,
    records: impl Iterator<Item = Result<Record<'a>, Corruption>>,
    until: Until,
    mut observe: impl FnMut(&Record<'a>, &Event),
) -> Result<ReplayStats, ReplayError> {
    let mut stats = ReplayStats {
        next_offset: state.next_offset(),
        ..ReplayStats::default()
    };
    for record in records {
        let record = record?;
        if record.offset < state.next_offset() {
            continue;
        }
        if !until.includes(&record) {
            break;
        }
        let event = decode_record(&record)?;
        let meta = RecordMeta {
            offset: record.offset,
            timestamp_us: record.timestamp_us,
            origin_hub: record.origin_hub,
        };
        apply(state, meta, &event).map_err(|source| ReplayError::Apply {
            offset: record.offset,
            kind: event.kind().name(),
            source,
        })?;
        stats.records += 1;
        stats.payload_bytes += record.payload.len() as u64;
        stats.next_offset = record.offset + 1;
        observe(&record, &event);
    }
    Ok(stats)
}
