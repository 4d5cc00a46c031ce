//! Atomic commands: a command that may write several events writes them between a
//! `batch_started` and a `batch_ended` record, which replay applies all or none
//! (`replay/src/driver.rs`, `docs/log-format.md`).
//!
//! The live state applies each event as the command emits it (validation is apply), so a
//! batch must never stop half-way for want of disk space: the state would hold events that
//! replay discards. Before its first record a batch therefore reserves log room for the most
//! it can write ([`batch_room_bytes`]: its markers, and `events_max` events of at most
//! [`BATCH_EVENT_PAYLOAD_BYTES_MAX`]) with one [`relay_log::LogWriter::reserve_append`]: a
//! full disk refuses the whole command with `storage_full` before anything changed, and a
//! batch that got its room cannot meet a full disk. One reservation covers at most one
//! record's worth ([`RECORD_PAYLOAD_BYTES_MAX`], 16 MiB: a broadcast to more than about 120
//! peers); a bigger batch reserves that much, and if the disk fills after it, every record of
//! the batch has kept room for the end marker, so the batch is closed over what it stored:
//! state and log still agree, and the command answers `storage_full` saying it was cut short.
//! A command whose events cannot number more than one writes no markers.

use std::sync::LazyLock;

use relay_log::format::{RECORD_HEADER_BYTES, record_bytes};
use relay_log::limits::RECORD_PAYLOAD_BYTES_MAX;
use relay_replay::encode;
use relay_replay::event::{BatchEnded, BatchStarted};
use relay_replay::limits::TEXT_BYTES_MAX;

use crate::hub::core::{Core, error};
use crate::protocol::{ErrorCode, RpcError};

/// Bytes an event of a batch takes beyond its text at most: ids, names and the archive's own
/// layout. The largest batched event is a broadcast's `ask_sent` (two qualified names and
/// three ids beside the question); a test encodes the worst case of every batched kind.
pub(in crate::hub) const BATCH_EVENT_ENVELOPE_BYTES: usize = 2048;

/// Largest payload of an event a batched command emits: a text of [`TEXT_BYTES_MAX`] and its
/// envelope.
pub(in crate::hub) const BATCH_EVENT_PAYLOAD_BYTES_MAX: usize =
    TEXT_BYTES_MAX + BATCH_EVENT_ENVELOPE_BYTES;

/// Log bytes of a `batch_ended` record (its payload has a fixed size).
static END_MARKER_BYTES: LazyLock<usize> = LazyLock::new(|| {
    let payload = encode(
        &BatchEnded {
            event_count: u32::MAX,
        }
        .into(),
    )
    .payload
    .len();
    record_bytes(payload) as usize
});

/// Log bytes of a `batch_ended` record: the room every record of an open batch keeps after
/// itself.
pub(in crate::hub) fn end_marker_bytes() -> usize {
    *END_MARKER_BYTES
}

/// The most log bytes a batch named `name` of at most `events_max` events writes: both
/// markers and `events_max` events of [`BATCH_EVENT_PAYLOAD_BYTES_MAX`].
pub(in crate::hub) fn batch_room_bytes(name: &str, events_max: usize) -> u64 {
    let started = encode(
        &BatchStarted {
            command: name.to_owned(),
        }
        .into(),
    );
    let events = (events_max as u64).saturating_mul(record_bytes(BATCH_EVENT_PAYLOAD_BYTES_MAX));
    record_bytes(started.payload.len())
        .saturating_add(events)
        .saturating_add(end_marker_bytes() as u64)
}

impl Core {
    /// Runs `command`, which emits at most `events_max` events, as one atomic batch named
    /// `name`, in log room reserved for all of it first (see the module doc). The end marker
    /// is written even when `command` fails after emitting some events (the live state has
    /// them); if it cannot be written the log has failed and the hub stops, and replay
    /// discards the batch after the restart.
    ///
    /// # Errors
    /// The command's error; `storage_full` when the disk has no room for the batch (nothing
    /// changed) or, for a batch bigger than one reservation, filled during it (what it stored
    /// is closed and kept); a storage error from a marker.
    pub(in crate::hub) fn atomically<T>(
        &mut self,
        name: &str,
        events_max: usize,
        command: impl FnOnce(&mut Core) -> Result<T, RpcError>,
    ) -> Result<T, RpcError> {
        if events_max <= 1 {
            return command(self);
        }
        // What a full disk kept out of the log goes before the batch, outside its room.
        self.log_deferred()?;
        let room = batch_room_bytes(name, events_max);
        // One record of this payload takes exactly `room` bytes: the appends of the batch,
        // `room` bytes in all, then fit where it would, and need no new disk space.
        let payload = (room - RECORD_HEADER_BYTES as u64).min(RECORD_PAYLOAD_BYTES_MAX as u64);
        if let Err(failure) = self.log.reserve_append(payload as usize) {
            return Err(self.refuse_write(failure));
        }
        self.disk.batch_open = true;
        let started = self.emit(
            BatchStarted {
                command: name.to_owned(),
            }
            .into(),
        );
        let started = match started {
            Ok(offset) => offset,
            Err(refused) => {
                self.disk.batch_open = false;
                return Err(refused);
            }
        };
        let result = command(self);
        self.disk.batch_open = false;
        let event_count = self.log.next_offset().saturating_sub(started + 1);
        let event_count = u32::try_from(event_count).map_err(|_| {
            error(
                ErrorCode::Unexpected,
                "invariant: a command writes fewer than 2^32 events",
            )
        })?;
        if let Err(refused) = self.emit(BatchEnded { event_count }.into()) {
            return Err(self.batch_left_open(name, refused));
        }
        match result {
            Err(refused) if refused.code == ErrorCode::StorageFull && event_count > 0 => {
                Err(error(
                    ErrorCode::StorageFull,
                    format!(
                        "the hub's disk filled during this {name}: its first {event_count} records are stored, the rest were not; retry what is missing once space is freed"
                    ),
                ))
            }
            result => result,
        }
    }

    /// The end marker could not be written: the log holds an open batch, which replay would
    /// merge with the records after it. Only a failed log gets here (every record of a batch
    /// keeps room for the marker), so the core stops; the next start closes the batch with
    /// its `hub_started` and discards it.
    fn batch_left_open(&mut self, name: &str, refused: RpcError) -> RpcError {
        if refused.code == ErrorCode::StorageFull {
            tracing::error!(
                batch = name,
                "invariant: a batch kept room for its end marker; stopping"
            );
            self.failed = true;
            return error(
                ErrorCode::StorageError,
                format!("the hub could not close the {name} batch in its log; it is stopping"),
            );
        }
        refused
    }
}

#[cfg(test)]
mod tests {
    use relay_replay::event::{
        AskDeadlineSet, AskSent, GroupCreated, GroupMemberInvited, MessageRead, MessageRefused,
    };
    use relay_replay::federation::QUALIFIED_ID_BYTES_MAX;
    use relay_replay::limits::{QUALIFIED_NAME_BYTES_MAX, TEXT_BYTES_MAX};
    use relay_replay::{Event, encode};

    use super::*;

    /// Every kind of event a batched command (`broadcast`, `group_create`, `inbox`) emits, with
    /// each field at its largest.
    fn largest_batched_events() -> Vec<Event> {
        let name = "n".repeat(QUALIFIED_NAME_BYTES_MAX);
        let id = "i".repeat(QUALIFIED_ID_BYTES_MAX);
        vec![
            AskSent {
                id: id.clone(),
                ask_id: id.clone(),
                from: name.clone(),
                to: name.clone(),
                body: "q".repeat(TEXT_BYTES_MAX),
                broadcast_id: Some(id.clone()),
                urgent: true,
                thread: Some(id.clone()),
            }
            .into(),
            AskDeadlineSet {
                ask_id: id.clone(),
                deadline_us: u64::MAX,
            }
            .into(),
            MessageRefused {
                from: name.clone(),
                to: name.clone(),
                body_bytes: u64::MAX,
            }
            .into(),
            GroupCreated {
                group: name.clone(),
                admin: name.clone(),
            }
            .into(),
            GroupMemberInvited {
                group: name.clone(),
                actor: name.clone(),
                member: name.clone(),
            }
            .into(),
            MessageRead {
                recipient: name,
                message_id: id,
            }
            .into(),
        ]
    }

    #[test]
    fn every_batched_event_fits_the_room_a_batch_reserves_per_event() {
        for event in largest_batched_events() {
            let len = encode(&event).payload.len();
            assert!(
                len <= BATCH_EVENT_PAYLOAD_BYTES_MAX,
                "{} takes {len} bytes",
                event.kind().name()
            );
        }
    }

    #[test]
    fn the_room_of_a_batch_is_one_reservation_for_usual_batches() {
        use relay_log::format::RECORD_HEADER_BYTES;
        use relay_log::limits::RECORD_PAYLOAD_BYTES_MAX;
        // An inbox (at most 100 reads) and a group_create (64 members) fit one reservation.
        for (name, events_max) in [("inbox", 100), ("group_create", 65)] {
            let room = batch_room_bytes(name, events_max);
            assert!(room - (RECORD_HEADER_BYTES as u64) <= RECORD_PAYLOAD_BYTES_MAX as u64);
            assert_eq!(room % 16, 0, "records are 16-byte aligned");
        }
    }
}
