//! Pipelined group commit: the core goes on with the next batch while the sync of the
//! previous ones runs on a thread of its own.
//!
//! Each batch's replies, pushes and after-commit work wait in a queue, keyed by the log's
//! next offset when the batch ended: everything the batch could have read or written lies
//! below it. After a batch the core begins a commit of everything appended so far
//! ([`relay_log::LogWriter::begin_commit`]) unless one is in flight; the sync thread runs it
//! and hands back the outcome, which the core's loop takes like any input. The batches whose
//! offsets the commit covers are then released, in order, and the next commit begins with
//! whatever was appended meanwhile. So one sync covers every batch handled during the
//! previous one, the core never waits for the disk, and nothing is released before it is
//! durable: a batch that appended nothing still waits for the commit of the batches before
//! it, whose changes it may have read.
//!
//! With `os` durability a commit only publishes, so batches are released at once. The
//! in-process harness ([`Core::run_batch`] without [`Core::run`]) has no sync thread: the
//! sync runs inline, as before pipelining. A failed sync answers every waiting request with
//! `storage_error` and stops the hub, as a failed commit did.

use std::collections::VecDeque;

use relay_log::{PendingSync, SyncOutcome};
use tokio::sync::{mpsc, oneshot};

use super::core::{Core, CoreInput, Release, error};
use crate::protocol::ErrorCode;

/// The thread that runs commits' syncs for the core.
#[derive(Debug)]
pub(super) struct SyncThread {
    requests: std::sync::mpsc::Sender<PendingSync>,
}

impl SyncThread {
    /// Starts the thread; the receiver yields each sync's outcome, in order.
    pub(super) fn start() -> std::io::Result<(SyncThread, mpsc::UnboundedReceiver<SyncOutcome>)> {
        let (requests, pending) = std::sync::mpsc::channel::<PendingSync>();
        let (outcomes, received) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("relay-log-sync".to_owned())
            .spawn(move || {
                // Ends when the core drops its sender, or stops taking outcomes.
                while let Ok(sync) = pending.recv() {
                    if outcomes.send(sync.run()).is_err() {
                        break;
                    }
                }
            })?;
        Ok((SyncThread { requests }, received))
    }
}

/// Batches handled but not yet released, oldest first, each with the log offset a commit
/// must reach before it goes out.
#[derive(Default)]
pub(super) struct Waiting {
    batches: VecDeque<(u64, Release)>,
}

impl Core {
    /// Handles one batch: validate, append, apply; then begins its commit (or, while one is in
    /// flight, leaves it to the next) and releases every batch that is durable. Public for the
    /// in-process fuzz harness, where the sync runs inline.
    pub fn run_batch(&mut self, batch: Vec<CoreInput>) {
        let mut release = Release::default();
        self.fire_timers(&mut release);
        for input in batch {
            self.handle(input, &mut release);
        }
        self.waiting
            .batches
            .push_back((self.log.next_offset(), release));
        self.begin_commit();
        self.release_durable();
        self.after_batch();
    }

    /// Takes the outcome of a sync the thread ran (`None`: the thread is gone, which counts
    /// as a failed sync), releases what it made durable and begins the next commit.
    pub(super) fn sync_finished(&mut self, outcome: Option<SyncOutcome>) {
        let finished = match outcome {
            Some(outcome) => self.log.finish_commit(outcome).map_err(|failure| {
                tracing::error!(error = %failure, "commit failed; stopping");
            }),
            None => {
                tracing::error!("the log's sync thread is gone; stopping");
                Err(())
            }
        };
        if finished.is_err() {
            self.failed = true;
            self.refuse_waiting();
            return;
        }
        self.release_durable();
        self.begin_commit();
        self.release_durable();
    }

    /// True while a commit's sync runs on the sync thread.
    pub(super) fn commit_in_flight(&self) -> bool {
        self.log.commit_in_flight()
    }

    /// Begins a commit of everything appended, unless one is in flight or nothing is new.
    fn begin_commit(&mut self) {
        // A write that failed in the batch poisoned the log: nothing more becomes durable.
        if self.failed {
            self.refuse_waiting();
            return;
        }
        if self.log.commit_in_flight() {
            return;
        }
        match self.log.begin_commit() {
            Ok(None) => {}
            Ok(Some(pending)) => {
                let inline = match &self.sync_thread {
                    Some(thread) => thread.requests.send(pending).err().map(|back| back.0),
                    None => Some(pending),
                };
                // No thread (the harness), or it is gone: sync here.
                if let Some(pending) = inline {
                    let outcome = pending.run();
                    self.sync_finished(Some(outcome));
                }
            }
            Err(failure) => {
                tracing::error!(error = %failure, "commit failed; stopping");
                self.failed = true;
                self.refuse_waiting();
            }
        }
    }

    /// Releases, in order, every waiting batch the committed offset covers.
    fn release_durable(&mut self) {
        let committed = self.log.committed_offset();
        while self
            .waiting
            .batches
            .front()
            .is_some_and(|(needs, _)| *needs <= committed)
        {
            if let Some((_, release)) = self.waiting.batches.pop_front() {
                self.release(release);
            }
        }
    }

    /// Releases every waiting batch after a sync of the whole log (shutdown), or refuses them
    /// all if it failed.
    pub(super) fn release_all_waiting(&mut self, synced: bool) {
        if !synced {
            self.refuse_waiting();
            return;
        }
        while let Some((_, release)) = self.waiting.batches.pop_front() {
            self.release(release);
        }
    }

    /// Answers every waiting request with `storage_error` (the hub is stopping).
    fn refuse_waiting(&mut self) {
        while let Some((_, mut release)) = self.waiting.batches.pop_front() {
            for (reply, _) in release.replies.drain(..) {
                let _ = reply.send(Err(error(
                    ErrorCode::StorageError,
                    "the hub could not make the change durable; it is stopping",
                )));
            }
            for after in release.after_commit.drain(..) {
                after(false);
            }
        }
    }

    /// Sends a durable batch's replies and pushes, and runs its after-commit work.
    fn release(&mut self, release: Release) {
        self.committed.send_if_modified(|committed| {
            let now = self.log.committed_offset();
            let moved = now != *committed;
            *committed = now;
            moved
        });
        for after in release.after_commit {
            after(true);
        }
        if std::mem::take(&mut self.presence_dirty) && self.config.federation.is_some() {
            let mut online: Vec<String> = self.names(self.online.keys().copied());
            online.sort();
            self.presence.send_replace(online);
        }
        for (reply, result) in release.replies {
            let _ = reply.send(result);
        }
        for (permit, queued) in release.pushes {
            permit.send(queued);
        }
        for outbound in release.closes {
            let _ = outbound.try_send(super::queue::Queued::control(super::core::Outbound::Close));
        }
        for (holder, outbound, waiting) in release.probes {
            let core_inputs = self.probe_sender.clone();
            let (answer, answered) = oneshot::channel();
            if outbound
                .try_send(super::queue::Queued::control(super::core::Outbound::Probe(
                    answer,
                )))
                .is_err()
            {
                let _ = core_inputs.try_send(CoreInput::ProbeFinished {
                    holder,
                    alive: false,
                    waiting,
                });
                continue;
            }
            tokio::spawn(async move {
                // Bounded: a holder stuck in a write never answers, and is replaced.
                let alive = tokio::time::timeout(super::limits::PROBE_WAIT_MAX, answered)
                    .await
                    .is_ok_and(|answer| answer.unwrap_or(false));
                let _ = core_inputs
                    .send(CoreInput::ProbeFinished {
                        holder,
                        alive,
                        waiting,
                    })
                    .await;
            });
        }
    }

    /// What follows every batch: collect a snapshot the worker wrote, reclaim, ask for the
    /// next snapshot.
    fn after_batch(&mut self) {
        let snapshot_written = self.collect_snapshot();
        // Reclaim first: a snapshot asked for now opens the log after this pass deleted.
        self.maybe_reclaim(snapshot_written);
        self.maybe_snapshot();
    }
}
