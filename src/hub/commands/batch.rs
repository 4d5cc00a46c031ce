//! Atomic commands: a command that may write several events writes them between a
//! `batch_started` and a `batch_ended` record, which replay applies all or none
//! (`replay/src/driver.rs`, `docs/log-format.md`).
//!
//! The live state applies each event as the command emits it (validation is apply); the
//! markers only matter to a replay after a crash that cut the batch short. A command whose
//! events cannot number more than one writes no markers.

use relay_replay::event::{BatchEnded, BatchStarted};

use crate::hub::core::{Core, error};
use crate::protocol::{ErrorCode, RpcError};

impl Core {
    /// Runs `command`, which emits at most `events_max` events, as one atomic batch named
    /// `name`. The end marker is written even when `command` fails after emitting some events
    /// (the live state has them); if it cannot be written the log has failed and the hub
    /// stops, and replay discards the batch after the restart.
    ///
    /// # Errors
    /// The command's error, or a storage error from a marker.
    pub(in crate::hub) fn atomically<T>(
        &mut self,
        name: &str,
        events_max: usize,
        command: impl FnOnce(&mut Core) -> Result<T, RpcError>,
    ) -> Result<T, RpcError> {
        if events_max <= 1 {
            return command(self);
        }
        let started = self.emit(
            BatchStarted {
                command: name.to_owned(),
            }
            .into(),
        )?;
        let result = command(self);
        let event_count = self.log.next_offset().saturating_sub(started + 1);
        let event_count = u32::try_from(event_count).map_err(|_| {
            error(
                ErrorCode::Unexpected,
                "invariant: a command writes fewer than 2^32 events",
            )
        })?;
        self.emit(BatchEnded { event_count }.into())?;
        result
    }
}
