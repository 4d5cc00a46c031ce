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

/// Records a replay decodes on its own thread before it hands decoding to a second one: a
/// short replay (the tail after a snapshot, an audit of a few records) never starts a thread.
pub const REPLAY_INLINE_RECORDS: u64 = 4096;

/// Records per chunk the decoding thread hands to the applying one.
pub const DECODE_CHUNK_RECORDS: usize = 256;

/// How a replay splits its work between the calling thread and a decoding one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pipeline {
    /// Records decoded on the calling thread before the decoding thread starts: `0` starts it
    /// at once, `u64::MAX` never.
    pub inline_records: u64,
    /// Records per chunk handed from the decoding thread to the applying one (at least 1).
    pub chunk_records: usize,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            inline_records: REPLAY_INLINE_RECORDS,
            chunk_records: DECODE_CHUNK_RECORDS,
        }
    }
}

/// A chunk also ends once its payloads reach this many bytes, so a run of large records
/// (up to `RECORD_PAYLOAD_BYTES_MAX`, 16 MiB, each) is handed over a few at a time.
pub const DECODE_CHUNK_BYTES: usize = 4 << 20;

/// Chunks the decoding thread may run ahead of the apply. With [`DECODE_CHUNK_BYTES`] this
/// bounds what a long replay holds in decoded events: the chunks in the channel, the one being
/// applied and the one being filled, each under 4 MiB of payload plus its last record.
pub const DECODE_AHEAD_CHUNKS: usize = 4;

/// Folds `records` into `state` until `until`, calling `observe` with every record and its
/// event after it applied. Records below `state.next_offset()` are skipped (they are in the
/// state already, e.g. from a snapshot).
///
/// Batches (`batch_started` … `batch_ended`, one command's events) apply all or none: their
/// records are held until the end marker, then applied in order. A batch still open where the
/// replay stops is not applied ([`ReplayStats::records_held`]); one that a `hub_started`
/// interrupts was cut short by a crash and is discarded ([`ReplayStats::records_discarded`]).
///
/// After the first [`REPLAY_INLINE_RECORDS`] records, reading, CRC checks and decoding move
/// to a second thread that runs a few chunks ahead, while this thread applies, in log order,
/// and calls `observe`. The outcome is the same as one thread's: the same records, the same
/// first error. The reader stops where one thread would (after the first record past
/// `until`), but after an error it may have read up to [`DECODE_AHEAD_CHUNKS`] chunks further.
///
/// # Errors
/// The first damaged record, undecodable payload, event that does not apply, or batch marker
/// out of order.
pub fn replay_into<'a, I>(
    state: &mut State,
    records: I,
    until: Until,
    observe: impl FnMut(&Record<'a>, &Event),
) -> Result<ReplayStats, ReplayError>
where
    I: Iterator<Item = Result<Record<'a>, Corruption>> + Send,
{
    replay_into_with(state, records, until, Pipeline::default(), observe)
}

/// [`replay_into`] with its split between threads chosen ([`Pipeline`]). For tests (every
/// split must give the same outcome) and measurements.
///
/// # Errors
/// As [`replay_into`].
pub fn replay_into_with<'a, I>(
    state: &mut State,
    mut records: I,
    until: Until,
    pipeline: Pipeline,
    mut observe: impl FnMut(&Record<'a>, &Event),
) -> Result<ReplayStats, ReplayError>
where
    I: Iterator<Item = Result<Record<'a>, Corruption>> + Send,
{
    let skip_below = state.next_offset();
    let mut fold = Fold::new(state);
    let inline = pipeline.inline_records;
    if fold.take_here(&mut records, skip_below, until, inline, &mut observe)? {
        return Ok(fold.finish());
    }
    let parallel = std::thread::scope(|scope| {
        let reader = &mut records;
        let (chunks, decoded) = std::sync::mpsc::sync_channel(DECODE_AHEAD_CHUNKS);
        let (returns, spent) = std::sync::mpsc::channel();
        let decoder = std::thread::Builder::new()
            .name("relay-replay-decode".to_owned())
            .spawn_scoped(scope, move || {
                decode_ahead(
                    reader,
                    skip_below,
                    until,
                    pipeline.chunk_records,
                    &chunks,
                    &spent,
                );
            });
        if decoder.is_err() {
            // No second thread to be had (the system is out of threads): decode here.
            return None;
        }
        for chunk in decoded {
            for item in chunk {
                let (record, event) = match item {
                    Ok(decoded) => decoded,
                    Err(error) => return Some(Err(error)),
                };
                if let Err(error) = fold.take(record, event, &mut observe) {
                    return Some(Err(error));
                }
            }
            // The decoder may have finished: then the events drop here.
            let _ = returns.send(fold.take_spent());
        }
        Some(Ok(()))
    });
    match parallel {
        Some(outcome) => outcome?,
        None => {
            fold.take_here(&mut records, skip_below, until, u64::MAX, &mut observe)?;
        }
    }
    Ok(fold.finish())
}

/// A record and its event, or the error that ends the replay there.
type Decoded<'a> = Result<(Record<'a>, Event), ReplayError>;

/// The next record to apply from `records`, decoded: records below `skip_below` are passed
/// over; `None` at the end of the log or at the first record past `until`.
fn next_decoded<'a>(
    records: &mut impl Iterator<Item = Result<Record<'a>, Corruption>>,
    skip_below: u64,
    until: Until,
) -> Option<Decoded<'a>> {
    for record in records.by_ref() {
        let record = match record {
            Ok(record) => record,
            Err(corruption) => return Some(Err(corruption.into())),
        };
        if record.offset < skip_below {
            continue;
        }
        if !until.includes(&record) {
            return None;
        }
        return Some(decode_record(&record).map(|event| (record, event)));
    }
    None
}

/// The decoding thread: sends chunks of decoded records until the end, `until`, the first
/// error (sent as the chunk's last item), or the applying side hanging up; drops the events
/// the applying side hands back.
fn decode_ahead<'a>(
    records: &mut impl Iterator<Item = Result<Record<'a>, Corruption>>,
    skip_below: u64,
    until: Until,
    chunk_records: usize,
    chunks: &std::sync::mpsc::SyncSender<Vec<Decoded<'a>>>,
    spent: &std::sync::mpsc::Receiver<Vec<Event>>,
) {
    loop {
        // Each `Vec<Event>` received is dropped, here, where its events were allocated.
        while spent.try_recv().is_ok() {}
        let mut chunk = Vec::with_capacity(chunk_records.max(1));
        let mut bytes = 0;
        let mut ended = false;
        while chunk.len() < chunk_records.max(1) && bytes < DECODE_CHUNK_BYTES {
            match next_decoded(records, skip_below, until) {
                Some(decoded) => {
                    ended = decoded.is_err();
                    if let Ok((record, _)) = &decoded {
                        bytes += record.payload.len();
                    }
                    chunk.push(decoded);
                    if ended {
                        break;
                    }
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
        if (!chunk.is_empty() && chunks.send(chunk).is_err()) || ended {
            return;
        }
    }
}

/// The applying side of a replay: batch bookkeeping and counts.
struct Fold<'s, 'a> {
    state: &'s mut State,
    stats: ReplayStats,
    batch: Option<Vec<(Record<'a>, Event)>>,
    /// Events applied since the last [`Fold::take_spent`]: a parallel replay drops them on
    /// the thread that decoded (allocated) them, which glibc's allocator frees without taking
    /// the other thread's arena lock.
    spent: Vec<Event>,
}

impl<'s, 'a> Fold<'s, 'a> {
    fn new(state: &'s mut State) -> Self {
        let stats = ReplayStats {
            next_offset: state.next_offset(),
            ..ReplayStats::default()
        };
        Fold {
            state,
            stats,
            batch: None,
            spent: Vec::new(),
        }
    }

    /// Applies (or holds, inside a batch) one decoded record.
    fn take(
        &mut self,
        record: Record<'a>,
        event: Event,
        observe: &mut impl FnMut(&Record<'a>, &Event),
    ) -> Result<(), ReplayError> {
        let (state, stats, spent) = (&mut *self.state, &mut self.stats, &mut self.spent);
        match (&event, self.batch.as_mut()) {
            (Event::BatchStarted(_), None) => {
                self.batch = Some(vec![(record, event)]);
                return Ok(());
            }
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
                for (held_record, held_event) in self.batch.take().into_iter().flatten() {
                    apply_record(state, stats, &held_record, &held_event, observe)?;
                    spent.push(held_event);
                }
            }
            (Event::BatchEnded(_), None) => {
                return Err(batch_error(&record, "a batch_ended outside a batch"));
            }
            (Event::HubStarted(_), Some(held)) => {
                stats.records_discarded += held.len() as u64;
                spent.extend(
                    self.batch
                        .take()
                        .into_iter()
                        .flatten()
                        .map(|(_, held)| held),
                );
            }
            (_, Some(held)) => {
                held.push((record, event));
                return Ok(());
            }
            (_, None) => {}
        }
        apply_record(state, stats, &record, &event, observe)?;
        spent.push(event);
        Ok(())
    }

    /// Decodes and applies up to `limit` records of `records` on this thread (freeing each
    /// event here); `true` when the records ended (or reached `until`) first.
    fn take_here<I>(
        &mut self,
        records: &mut I,
        skip_below: u64,
        until: Until,
        limit: u64,
        observe: &mut impl FnMut(&Record<'a>, &Event),
    ) -> Result<bool, ReplayError>
    where
        I: Iterator<Item = Result<Record<'a>, Corruption>>,
    {
        for _ in 0..limit {
            let Some(decoded) = next_decoded(records, skip_below, until) else {
                return Ok(true);
            };
            let (record, event) = decoded?;
            self.take(record, event, observe)?;
            self.spent.clear();
        }
        Ok(false)
    }

    /// The events applied since the last call, to be dropped where they were decoded.
    fn take_spent(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.spent)
    }

    fn finish(self) -> ReplayStats {
        let mut stats = self.stats;
        stats.records_held = self.batch.map_or(0, |held| held.len() as u64);
        stats
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::MessageSent;
    use crate::event::codec::encode;

    /// A message event with a body of `body_bytes`.
    fn message(offset: u64, body_bytes: usize) -> Event {
        MessageSent {
            id: format!("m-{offset}"),
            from: "alice".into(),
            to: "bob".into(),
            body: "x".repeat(body_bytes),
            reply_to: None,
            urgent: false,
            thread: None,
        }
        .into()
    }

    #[test]
    fn a_chunk_of_large_records_ends_at_its_byte_bound() {
        // 100 records of 1 MiB: 256 to a chunk would hold 100 MiB of them.
        let payloads: Vec<_> = (0..100u64)
            .map(|offset| encode(&message(offset, 1 << 20)))
            .collect();
        let mut records = payloads.iter().enumerate().map(|(offset, encoded)| {
            Ok(Record {
                offset: offset as u64,
                timestamp_us: offset as u64,
                kind: encoded.kind,
                schema_version: encoded.schema_version,
                origin_hub: 0,
                payload: &encoded.payload,
            })
        });
        let (chunks, received) = std::sync::mpsc::sync_channel(payloads.len());
        let (_returns, spent) = std::sync::mpsc::channel();
        decode_ahead(
            &mut records,
            0,
            Until::End,
            DECODE_CHUNK_RECORDS,
            &chunks,
            &spent,
        );
        drop(chunks);
        let mut offsets = Vec::new();
        for chunk in received {
            let bytes: Vec<usize> = chunk
                .iter()
                .map(|item| item.as_ref().map_or(0, |(record, _)| record.payload.len()))
                .collect();
            let before_last: usize = bytes[..bytes.len() - 1].iter().sum();
            assert!(
                before_last < DECODE_CHUNK_BYTES,
                "a chunk went on past {DECODE_CHUNK_BYTES} bytes: {bytes:?}"
            );
            offsets.extend(chunk.into_iter().map(|item| {
                let (record, _) = item.expect("decodes");
                record.offset
            }));
        }
        assert_eq!(
            offsets,
            (0..100).collect::<Vec<_>>(),
            "every record, in order"
        );
    }
}
