//! The replay driver: folds records from the log into a [`State`], checking every one.
//!
//! Used by the hub at start-up (snapshot + tail) and by `relay replay` / `relay log`. It reads
//! records through `relay-log`'s iterators (which check CRC and structure), decodes each
//! payload with validation, and applies it. Damage, an undecodable payload and an event that
//! does not fit the state are all errors naming the offset; nothing is skipped but the records
//! of a batch that a crash cut short (`batch_started` without its `batch_ended`), which apply
//! all or none (`docs/log-format.md`).

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
    /// Batch markers out of order: a `batch_started` inside a batch, a `batch_ended` outside
    /// one, or an end whose count is not the batch's. The hub never writes these: damage or
    /// a bug.
    #[error("record at offset {offset} breaks a batch: {reason}")]
    Batch {
        /// The marker's offset.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

impl ReplayError {
    /// The offset of the record the replay stopped at.
    pub fn offset(&self) -> u64 {
        match self {
            ReplayError::Corrupt(corruption) => corruption.offset,
            ReplayError::Decode { offset, .. }
            | ReplayError::Apply { offset, .. }
            | ReplayError::Batch { offset, .. } => *offset,
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
    /// Records of batches a restart cut short (a `hub_started` came before their
    /// `batch_ended`): never applied.
    pub records_discarded: u64,
    /// Records of a batch still open where the replay stopped (the end of the log, or
    /// `until`): not applied; the next replay from [`ReplayStats::next_offset`] reads them
    /// again.
    pub records_held: u64,
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
/// Batches (`batch_started` … `batch_ended`, one command's events) apply all or none: their
/// records are held until the end marker, then applied in order. A batch still open where the
/// replay stops is not applied ([`ReplayStats::records_held`]); one that a `hub_started`
/// interrupts was cut short by a crash and is discarded ([`ReplayStats::records_discarded`]).
///
/// # Errors
/// The first damaged record, undecodable payload, event that does not apply, or batch marker
/// out of order.
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
    let mut batch: Option<Vec<(Record<'a>, Event)>> = None;
    for record in records {
        let record = record?;
        if record.offset < state.next_offset() {
            continue;
        }
        if !until.includes(&record) {
            break;
        }
        let event = decode_record(&record)?;
        match (&event, batch.as_mut()) {
            (Event::BatchStarted(_), None) => batch = Some(vec![(record, event)]),
            (Event::BatchStarted(_), Some(_)) => {
                return Err(batch_error(&record, "a batch_started inside a batch"));
            }
            (Event::BatchEnded(ended), Some(held)) => {
                if held.len() != ended.event_count as usize + 1 {
                    let reason = format!(
                        "batch_ended counts {} records, the batch has {}",
                        ended.event_count,
                        held.len() - 1
                    );
                    return Err(batch_error(&record, &reason));
                }
                for (held_record, held_event) in batch.take().into_iter().flatten() {
                    apply_record(state, &mut stats, &held_record, &held_event, &mut observe)?;
                }
                apply_record(state, &mut stats, &record, &event, &mut observe)?;
            }
            (Event::BatchEnded(_), None) => {
                return Err(batch_error(&record, "a batch_ended outside a batch"));
            }
            (Event::HubStarted(_), Some(held)) => {
                stats.records_discarded += held.len() as u64;
                batch = None;
                apply_record(state, &mut stats, &record, &event, &mut observe)?;
            }
            (_, Some(held)) => held.push((record, event)),
            (_, None) => apply_record(state, &mut stats, &record, &event, &mut observe)?,
        }
    }
    stats.records_held = batch.map_or(0, |held| held.len() as u64);
    Ok(stats)
}

/// Applies one record's event and counts it.
fn apply_record<'a>(
    state: &mut State,
    stats: &mut ReplayStats,
    record: &Record<'a>,
    event: &Event,
    observe: &mut impl FnMut(&Record<'a>, &Event),
) -> Result<(), ReplayError> {
    let meta = RecordMeta {
        offset: record.offset,
        timestamp_us: record.timestamp_us,
        origin_hub: record.origin_hub,
    };
    apply(state, meta, event).map_err(|source| ReplayError::Apply {
        offset: record.offset,
        kind: event.kind().name(),
        source,
    })?;
    stats.records += 1;
    stats.payload_bytes += record.payload.len() as u64;
    stats.next_offset = record.offset + 1;
    observe(record, event);
    Ok(())
}

fn batch_error(record: &Record<'_>, reason: &str) -> ReplayError {
    ReplayError::Batch {
        offset: record.offset,
        reason: reason.to_owned(),
    }
}
