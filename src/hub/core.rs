//! The core task: the single owner of the [`State`] and the log writer.
//!
//! It drains the command queue into a batch; for each command it validates against the
//! state, builds events, applies each with the replay crate's `apply` (which checks before it
//! changes anything, so a rejected command appends nothing) and appends it; the batch's
//! replies and pushes go out only once a commit covers it. With strict durability the sync
//! runs on a thread of its own while the core handles the next batches, and one sync covers
//! every batch handled meanwhile ([`super::commit`]). A failed commit answers every waiting
//! request with `storage_error` and stops the hub: the state in memory may hold events that
//! are not durable, and recovery runs on the next start.
//!
//! A full disk is not such a failure: before an event is applied, the core asks the log to
//! make room for its record ([`LogWriter::reserve_append`]); `NoSpace` there refuses the
//! request with `storage_full`, having changed nothing, while reads go on being served, and
//! the next write tries again (logged once per episode). A known identity may register at a
//! full disk without its record, to read its mail; that record, and a `hub_started` the full
//! disk refused at start, are logged before anything else once space returns
//! ([`Core::log_deferred`]). An atomic batch reserves its room before its first record
//! (`commands/batch.rs`). After each durable snapshot, and at
//! most every [`RETENTION_SNAPSHOT_INTERVAL_MIN`] otherwise, the core reclaims old segments
//! as `--retain` allows ([`super::retention`]).
//!
//! Periodic snapshots are taken by the snapshot worker ([`super::snapshot_worker`]), which
//! follows the log with a state of its own: the core asks for one at a committed offset and
//! pays only a sample of its state for the check. The shutdown snapshot is the core's own.
//!
//! Presence (which session is connected as whom) is runtime state kept here, not a
//! projection; register, rename and leave are still logged as events. Identities the state
//! holds as online at start-up were connected when the previous run died without logging
//! their leave: start-up logs it ([`Core::start`]).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use relay_log::{LogWriter, NewRecord};
use relay_replay::event::{
    ClientKind as EventClientKind, HubStarted, IdentityLeft, IdentityRegistered,
};
use relay_replay::{ApplyError, Event, IdentityId, RecordMeta, State, apply, encode_into};
use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::clock::RecordClock;
use super::commands::delivery::{Answer, AwaitingAck, Conversation};
use super::limits::{
    BATCH_COMMANDS_MAX, CLOCK_JUMP_WARN, RETENTION_AGE_CHECK_INTERVAL,
    RETENTION_SNAPSHOT_INTERVAL_MIN, RETENTION_SNAPSHOT_POLL,
};
use super::queue::{QueueBudget, QueueCharge, Queued, queued_bytes};
use super::rate::{RateConfig, TokenBucket};
use super::retention::{Retention, RetentionHold, retention_target};
use crate::protocol::fields::ClientKind;
use crate::protocol::methods::*;
use crate::protocol::notification::{MessageKind, MessagePush, Receipt};
use crate::protocol::push_frame::{encode_push_frame, encode_receipt_frame};
use crate::protocol::{ErrorCode, RpcError};

/// A connection's id, unique for the hub's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// What a connection task sends to the core.
#[derive(Debug)]
pub enum CoreInput {
    /// A new connection and the queue its pushes go to.
    Connected {
        /// The connection.
        session: SessionId,
        /// Where pushes for it go.
        outbound: mpsc::Sender<Queued>,
        /// The uid of the peer process (Unix socket); `None` for the WebSocket.
        peer_uid: Option<u32>,
    },
    /// A request that changes or reads hub state.
    Request {
        /// The connection.
        session: SessionId,
        /// The typed request.
        request: Box<ClientRequest>,
        /// Where the result goes, after the batch is committed.
        reply: oneshot::Sender<Result<Json, RpcError>>,
    },
    /// The connection closed or was evicted.
    Disconnected {
        /// The connection.
        session: SessionId,
    },
    /// Records of a linked hub to import (federation); the answer comes after the commit.
    LinkImport {
        /// The linked hub's federation id (authenticated by the link).
        peer: String,
        /// Its log id.
        log_id: u128,
        /// Its records, in offset order.
        records: Vec<crate::federation::wire::ShippedRecord>,
        /// The progress after the import, or why the import is refused.
        reply: oneshot::Sender<Result<crate::federation::link::LinkProgress, LinkImportError>>,
    },
    /// A linked hub has committed our log below `durable`.
    LinkAcked {
        /// The linked hub's federation id.
        peer: String,
        /// The first offset of our log it has not committed.
        durable: u64,
    },
    /// What we last imported from a linked hub.
    LinkProgressQuery {
        /// The linked hub's federation id.
        peer: String,
        /// The answer.
        reply: oneshot::Sender<Option<crate::federation::link::LinkProgress>>,
    },
    /// A link asks which groups homed here ship to a linked hub (see
    /// `relay_replay::federation::ships_to`); answered at once from the applied state.
    LinkRoutesQuery {
        /// The linked hub's federation id.
        peer: String,
        /// The answer.
        reply: oneshot::Sender<std::collections::BTreeSet<String>>,
    },
    /// A probe of a fixed identity's holder ended: `alive` tells whether it answered.
    ProbeFinished {
        /// The holder probed.
        holder: SessionId,
        /// Whether it answered in time.
        alive: bool,
        /// The register request waiting for the outcome.
        waiting: Box<WaitingRegister>,
    },
}

/// Why records of a linked hub were not imported.
#[derive(Debug)]
pub enum LinkImportError {
    /// The records cannot be imported as shipped (a changed log id, say): the link stops.
    Refused(String),
    /// The hub is stopping or its storage failed.
    Unavailable(String),
}

/// This hub in a federation: its id and the hubs it may exchange events with.
#[derive(Clone, Debug, Default)]
pub struct LocalFederation {
    /// This hub's federation id.
    pub hub_id: String,
    /// The peer hubs of `federation.toml`.
    pub peers: std::collections::BTreeSet<String>,
}

/// A register request held while the current holder of its fixed name is probed.
#[derive(Debug)]
pub struct WaitingRegister {
    /// The session asking.
    session: SessionId,
    /// What it asked for.
    params: RegisterParams,
    /// Where the result goes.
    reply: Reply,
}

/// What the core sends to a connection.
#[derive(Debug)]
pub enum Outbound {
    /// A notification (a push or a receipt) encoded by the core, ready to write: see
    /// [`Outbound::push`] and [`Outbound::receipt`].
    Frame(Vec<u8>),
    /// Ask the connection to ping its client and report whether it answers.
    Probe(oneshot::Sender<bool>),
    /// Close the connection (it was replaced by a new holder of its fixed name).
    Close,
}

impl Outbound {
    /// `push` as its `message` notification frame. The core encodes it, so the strings it
    /// built the push from are freed on the thread that allocated them (the allocator's
    /// per-thread caches then serve the next message), and the connection gets one buffer
    /// to write; a group's or room's push is encoded once and copied for each member.
    /// It is written by hand (`protocol::push_frame`), the same bytes as serde's.
    pub fn push(push: &MessagePush<&str>) -> Outbound {
        Outbound::Frame(encode_push_frame(push))
    }

    /// `receipt` as its `receipt` notification frame, as [`Outbound::push`].
    pub fn receipt(receipt: &Receipt<&str>) -> Outbound {
        Outbound::Frame(encode_receipt_frame(receipt))
    }
}

/// Settings of the core.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Per-session send rate.
    pub rate: RateConfig,
    /// New identities per local user ([`super::limits::NEW_IDENTITIES_PER_SECOND`]).
    pub new_identity_rate: RateConfig,
    /// Turns of direction the loop guard allows two identities per
    /// [`super::limits::CONVERSATION_WINDOW`] (`relay hub --loop-guard`, default
    /// [`super::limits::CONVERSATION_MESSAGES_MAX`]); `None`: no guard.
    pub loop_guard: Option<u32>,
    /// Where snapshots go.
    pub snapshot_dir: PathBuf,
    /// Exit this long after the last session left (`None`: never).
    pub idle_exit: Option<Duration>,
    /// The hub's id (its log id).
    pub hub_id: u128,
    /// How long a send waits for its recipient's acknowledgement ([`super::limits::DELIVERY_ACK_WAIT`]).
    pub delivery_ack_wait: Duration,
    /// How much log history to keep (`relay hub --retain`); `None` keeps it all.
    pub retention: Option<Retention>,
    /// This hub's federation, from `federation.toml` (`None`: not federated).
    pub federation: Option<LocalFederation>,
}

/// Why the core stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum CoreExit {
    /// Every connection task and listener is gone, or shutdown was asked for.
    Shutdown,
    /// No session for the idle timeout.
    Idle,
    /// A commit or append failed; the writer is poisoned.
    StorageFailed,
}

pub(super) struct Session {
    pub(super) outbound: mpsc::Sender<Queued>,
    /// Bytes queued for it, against [`super::limits::SESSION_QUEUED_BYTES_MAX`].
    pub(super) budget: QueueBudget,
    /// The uid of the peer process, for the new-identity rate (`None`: the WebSocket).
    pub(super) peer_uid: Option<u32>,
    pub(super) identity: Option<IdentityId>,
    /// How pushes reach the session's model, as it said when registering.
    pub(super) delivery: Option<String>,
}

/// Where a request's result goes.
pub(super) type Reply = oneshot::Sender<Result<Json, RpcError>>;

/// What a register request leads to.
pub(in crate::hub) enum Registration {
    /// Answered (registered or refused).
    Finished(Result<Json, RpcError>),
    /// The fixed name's holder must be probed first.
    Probe {
        /// The live-looking holder of the fixed name.
        holder: SessionId,
        /// Where to send it the probe.
        outbound: mpsc::Sender<Queued>,
        /// The request waiting for the outcome.
        params: RegisterParams,
    },
}

/// Replies and pushes held until the batch is committed.
#[derive(Default)]
pub(super) struct Release {
    pub(super) replies: Vec<(Reply, Result<Json, RpcError>)>,
    pub(super) pushes: Vec<(mpsc::OwnedPermit<Queued>, Queued)>,
    pub(super) closes: Vec<mpsc::Sender<Queued>>,
    pub(super) probes: Vec<(SessionId, mpsc::Sender<Queued>, Box<WaitingRegister>)>,
    /// Run after the commit, told whether it succeeded (federation import answers).
    pub(super) after_commit: Vec<Box<dyn FnOnce(bool) + Send>>,
}

/// What a full disk changes in the core: since when it is full, the records it kept out of
/// the log that are logged once space returns ([`Core::log_deferred`]), and whether a batch is
/// open (its records keep room for its end marker).
#[derive(Debug, Default)]
pub(super) struct DiskRoom {
    /// Since when the disk has been full (`storage_full`), if it is.
    pub(super) full_since: Option<Instant>,
    /// The `hub_started` of this start, if the disk was full then. It goes before any other
    /// record: it is what closes a batch that a crash cut short.
    pub(super) hub_started: Option<HubStarted>,
    /// Sessions of known identities that registered while the disk was full: attached (they
    /// read their mail) without their `identity_registered`, which is logged when space
    /// returns if the session still holds the identity. Registration order.
    pub(super) unlogged_registrations: Vec<(SessionId, IdentityRegistered)>,
    /// A batch is open ([`Core::atomically`]): each record keeps room for its end marker.
    pub(super) batch_open: bool,
}

/// The core: state, log, presence.
pub struct Core {
    pub(super) log: LogWriter,
    pub(super) state: State,
    pub(super) config: CoreConfig,
    pub(super) sessions: FxHashMap<SessionId, Session>,
    pub(super) online: BTreeMap<IdentityId, SessionId>,
    pub(super) records_since_snapshot: u64,
    pub(super) failed: bool,
    /// The core's own queue, for probe results that arrive after their batch.
    pub(super) probe_sender: mpsc::Sender<CoreInput>,
    /// When the last periodic snapshot was taken.
    pub(super) snapshot_taken_at: Instant,
    /// Record timestamps: monotonic, with a warning when the wall clock jumps.
    pub(super) clock: RecordClock,
    /// The snapshot worker: periodic snapshots are encoded and written off this thread.
    pub(super) snapshot_worker: super::snapshot_worker::SnapshotWorker,
    /// When retention last looked at the log (`None`: not yet), and the log's next offset then.
    pub(super) retention_checked: Option<(Instant, u64)>,
    /// Offset of the newest snapshot this hub wrote, synced and read back: the state can be
    /// rebuilt from it, so the log below it is not needed (0 before the first one).
    pub(super) snapshot_checked_offset: u64,
    /// True when retention would delete more than the snapshot hold allows: a newer snapshot
    /// is wanted sooner than the periodic one.
    pub(super) retention_waits: bool,
    /// The full disk: since when, and what it kept out of the log ([`DiskRoom`]).
    pub(super) disk: DiskRoom,
    /// Send rate per identity (not per connection: reconnecting does not refill it).
    pub(super) buckets: FxHashMap<IdentityId, TokenBucket>,
    /// New identities per local user (peer uid; `None` for the WebSocket).
    pub(super) new_identity_buckets: FxHashMap<Option<u32>, TokenBucket>,
    /// Bytes queued for all sessions, against [`super::limits::QUEUED_BYTES_MAX`].
    pub(super) queued_total: Arc<AtomicUsize>,
    /// Sends waiting for their recipient's acknowledgement, by the offset their message id
    /// names (`m-<offset>`). Ordered: offsets grow as time passes and every wait is
    /// `delivery_ack_wait` long, so the first entry's wait ends first (to within one batch,
    /// whose answers are taken in request order).
    pub(super) awaiting: BTreeMap<u64, AwaitingAck>,
    /// The loop guard: messages per pair of identities in the current window.
    pub(super) conversations: FxHashMap<(IdentityId, IdentityId), Conversation>,
    /// The first offset not yet committed, for federation links shipping our records.
    pub(super) committed: tokio::sync::watch::Sender<u64>,
    /// The names of the peers online, sorted, for federation links (published after a batch
    /// that changed them: `presence_dirty`).
    pub(super) presence: tokio::sync::watch::Sender<Vec<String>>,
    /// Someone came, left or was renamed in this batch.
    pub(super) presence_dirty: bool,
    /// When each linked hub's acknowledgement was last logged, and the newest one not yet
    /// logged (see [`super::limits::LINK_ACK_LOG_INTERVAL`]).
    pub(super) link_acks: HashMap<String, (Instant, Option<u64>)>,
    /// Runs commits' syncs while the core goes on ([`super::commit`]); `None` in the
    /// in-process harness, where they run inline.
    pub(super) sync_thread: Option<super::commit::SyncThread>,
    /// Batches handled, waiting for the commit that covers them.
    pub(super) waiting: super::commit::Waiting,
    /// Where each appended event is encoded, kept between appends so encoding allocates
    /// nothing (given back when it grew past [`super::limits::ENCODE_BUFFER_KEPT_BYTES`]).
    pub(super) encode_buffer: relay_replay::EncodeBuffer,
}

pub(super) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

pub(super) fn error(code: ErrorCode, message: impl Into<String>) -> RpcError {
    RpcError::new(code, message)
}

/// A result as the JSON text its response carries: made once, on the core, and written as it
/// is by the connection (no `serde_json::Value` in between).
pub(in crate::hub) type Json = Box<serde_json::value::RawValue>;

/// Serialises a command's typed result.
pub(super) fn to_json(result: &impl Serialize) -> Result<Json, RpcError> {
    serde_json::value::to_raw_value(result)
        .map_err(|json| error(ErrorCode::Unexpected, json.to_string()))
}

/// Maps an event the state refused to the code a client sees.
pub(super) fn apply_error(refused: ApplyError) -> RpcError {
    let code = match &refused {
        ApplyError::UnknownIdentity { .. } => ErrorCode::PeerNotFound,
        ApplyError::NameTaken { .. } => ErrorCode::NameTaken,
        ApplyError::GroupExists { .. } => ErrorCode::GroupExists,
        ApplyError::GroupNotFound { .. } => ErrorCode::GroupNotFound,
        ApplyError::NotGroupMember { .. }
        | ApplyError::NotRoomMember { .. }
        | ApplyError::RoomNotFound { .. } => ErrorCode::NotMember,
        ApplyError::AdminCannotBeRemoved { .. } | ApplyError::GroupHomedElsewhere { .. } => {
            ErrorCode::BadArguments
        }
        ApplyError::NotGroupAdmin { .. } => ErrorCode::NotAdmin,
        ApplyError::IdentitiesFull { .. }
        | ApplyError::RemoteIdentitiesFull { .. }
        | ApplyError::RoomsFull { .. }
        | ApplyError::RoomFull { .. }
        | ApplyError::GroupsFull { .. }
        | ApplyError::GroupFull { .. }
        | ApplyError::RefusalsCounted { .. }
        | ApplyError::StateFull { .. } => ErrorCode::LimitReached,
        ApplyError::MailboxFull { .. } => ErrorCode::MailboxFull,
        ApplyError::AlreadyGroupMember { .. } => ErrorCode::AlreadyMember,
        ApplyError::AskMismatch { .. } => ErrorCode::BadArguments,
        _ => ErrorCode::Unexpected,
    };
    error(code, refused.to_string())
}

/// The log's client kind for the wire's (the two enums are kept apart: one is a frozen log
/// format, the other the protocol; exhaustive matches both ways keep them in step).
pub(super) fn event_client_kind(client: ClientKind) -> EventClientKind {
    match client {
        ClientKind::Claude => EventClientKind::Claude,
        ClientKind::Codex => EventClientKind::Codex,
        ClientKind::Cursor => EventClientKind::Cursor,
        ClientKind::OpenCode => EventClientKind::OpenCode,
        ClientKind::Copilot => EventClientKind::Copilot,
        ClientKind::Gemini => EventClientKind::Gemini,
        ClientKind::Cli => EventClientKind::Cli,
    }
}

/// The wire name of the log's client kind (`claude`, `opencode`, …; an unknown kind a newer
/// hub logged keeps its own name).
pub(super) fn client_name(client: &EventClientKind) -> String {
    let known = match client {
        EventClientKind::Claude => ClientKind::Claude,
        EventClientKind::Codex => ClientKind::Codex,
        EventClientKind::Cursor => ClientKind::Cursor,
        EventClientKind::OpenCode => ClientKind::OpenCode,
        EventClientKind::Copilot => ClientKind::Copilot,
        EventClientKind::Gemini => ClientKind::Gemini,
        EventClientKind::Cli => ClientKind::Cli,
        EventClientKind::Other(name) => return name.clone(),
    };
    known.name().to_owned()
}

/// A slug of a working directory: its last component, cleaned to name characters.
pub fn directory_slug(cwd: &str) -> String {
    let last = cwd
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    crate::protocol::fields::PeerName::sanitized(last)
        .map_or_else(|| "session".to_owned(), |name| name.as_str().to_owned())
}

impl Core {
    /// A core over a recovered log and the state rebuilt from it. Appends `hub_started`, then
    /// the leave of every identity the previous run left online (it stopped without logging
    /// them: killed, crashed), before any session connects.
    ///
    /// # Errors
    /// The log refused the `hub_started` record or a leave.
    pub fn start(
        log: LogWriter,
        mut state: State,
        config: CoreConfig,
        probe_sender: mpsc::Sender<CoreInput>,
    ) -> Result<Core, RpcError> {
        state.clear_presence();
        let last_timestamp_us = log
            .next_offset()
            .checked_sub(1)
            .and_then(|last| log.read(last).ok())
            .map_or(0, |record| record.timestamp_us);
        let behind_us = last_timestamp_us.saturating_sub(now_us());
        if behind_us > CLOCK_JUMP_WARN.as_micros() as u64 {
            tracing::warn!(
                behind_ms = behind_us / 1000,
                "the wall clock is behind the log's last record; records keep its timestamp until the clock catches up"
            );
        }
        let mut core = Core {
            log,
            state,
            config,
            probe_sender,
            snapshot_taken_at: Instant::now(),
            clock: RecordClock::new(last_timestamp_us, CLOCK_JUMP_WARN),
            snapshot_worker: Default::default(),
            retention_checked: None,
            snapshot_checked_offset: 0,
            retention_waits: false,
            disk: DiskRoom::default(),
            buckets: FxHashMap::default(),
            new_identity_buckets: FxHashMap::default(),
            queued_total: Arc::new(AtomicUsize::new(0)),
            awaiting: BTreeMap::new(),
            conversations: FxHashMap::default(),
            committed: tokio::sync::watch::Sender::new(0),
            presence: tokio::sync::watch::Sender::new(Vec::new()),
            presence_dirty: false,
            link_acks: HashMap::new(),
            sessions: FxHashMap::default(),
            online: BTreeMap::new(),
            records_since_snapshot: 0,
            failed: false,
            sync_thread: None,
            waiting: Default::default(),
            encode_buffer: Default::default(),
        };
        let started = HubStarted {
            hub_id: core.config.hub_id,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        // `hub_started` closes a batch the previous run left open (replay discards it), so the
        // leaves after it are a batch of their own.
        let next_before_start = core.log.next_offset();
        let logged = core
            .emit(started.clone().into())
            .and_then(|_| core.leave_identities_left_online());
        match logged {
            // A full disk at start still serves reads; writes are refused until space returns,
            // and the first one that goes through logs a `hub_started` that did not fit before
            // itself. Leaves that did not fit are logged at the next start.
            Err(refused) if refused.code == ErrorCode::StorageFull => {
                if core.log.next_offset() == next_before_start {
                    core.disk.hub_started = Some(started);
                }
            }
            Err(refused) => return Err(refused),
            Ok(_) => {}
        }
        core.commit()
            .map_err(|()| error(ErrorCode::StorageError, "could not commit hub_started"))?;
        core.committed.send_replace(core.log.committed_offset());
        Ok(core)
    }

    /// Follows the names of the peers online (federation links send them to linked hubs).
    pub fn presence_watch(&self) -> tokio::sync::watch::Receiver<Vec<String>> {
        self.presence.subscribe()
    }

    /// Follows the first offset not yet committed (federation links ship below it).
    pub fn committed_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// The state (for tests and the fuzz harness: live state equals replayed state).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Runs until shutdown, idle timeout or a storage failure. Meant to run for the hub's
    /// whole life.
    pub async fn run(
        mut self,
        mut inputs: mpsc::Receiver<CoreInput>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> CoreExit {
        let mut idle_since = Some(Instant::now());
        let mut outcomes = None;
        // `RELAY_HUB_INLINE_SYNC=1` keeps the sync on the core thread, to measure what the
        // pipeline buys (`docs/operations.md`, "Performance").
        let inline = super::limits::knob_set(super::limits::INLINE_SYNC_ENV);
        if self.log.durability() == relay_log::Durability::Strict && !inline {
            match super::commit::SyncThread::start() {
                Ok((thread, received)) => {
                    self.sync_thread = Some(thread);
                    outcomes = Some(received);
                }
                // Commits then sync on this thread, as without pipelining.
                Err(failure) => {
                    tracing::warn!(error = %failure, "could not start the log's sync thread; syncing inline");
                }
            }
        }
        // Runs for the hub's lifetime: every pass handles one batch or ends the loop.
        loop {
            let idle_deadline = match (self.config.idle_exit, idle_since) {
                (Some(timeout), Some(since)) => Some(since + timeout),
                _ => None,
            };
            let timer_deadline = match (self.next_timer(), self.retention_timer()) {
                (Some(timer), Some(retention)) => Some(timer.min(retention)),
                (timer, retention) => timer.or(retention),
            };
            let first = tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => Some(input),
                    None => return self.finish_as(CoreExit::Shutdown),
                },
                outcome = next_outcome(&mut outcomes), if self.commit_in_flight() => {
                    self.sync_finished(outcome);
                    if self.failed {
                        return CoreExit::StorageFailed;
                    }
                    continue;
                }
                _ = shutdown.changed() => return self.finish_as(CoreExit::Shutdown),
                () = sleep_until(idle_deadline) => {
                    tracing::info!("no session for the idle timeout; exiting");
                    return self.finish_as(CoreExit::Idle);
                }
                // A timer is due: run a batch without input, which fires it.
                () = sleep_until(timer_deadline) => None,
            };
            // Sized once for what is queued: growing it push by push reallocated it some
            // six times per busy batch.
            let mut batch = Vec::with_capacity((inputs.len() + 1).min(BATCH_COMMANDS_MAX));
            batch.extend(first);
            while batch.len() < BATCH_COMMANDS_MAX {
                match inputs.try_recv() {
                    Ok(input) => batch.push(input),
                    Err(_) => break,
                }
            }
            self.run_batch(batch);
            if self.failed {
                return CoreExit::StorageFailed;
            }
            idle_since = if self.sessions.is_empty() {
                idle_since.or(Some(Instant::now()))
            } else {
                None
            };
        }
    }
}

/// The next sync outcome; never, without a sync thread.
async fn next_outcome(
    outcomes: &mut Option<mpsc::UnboundedReceiver<relay_log::SyncOutcome>>,
) -> Option<relay_log::SyncOutcome> {
    match outcomes {
        Some(outcomes) => outcomes.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

impl Core {
    pub(super) fn handle(&mut self, input: CoreInput, release: &mut Release) {
        match input {
            CoreInput::Connected {
                session,
                outbound,
                peer_uid,
            } => {
                self.sessions.insert(
                    session,
                    Session {
                        outbound,
                        budget: QueueBudget::for_session(&self.queued_total),
                        peer_uid,
                        identity: None,
                        delivery: None,
                    },
                );
            }
            CoreInput::Disconnected { session } => self.disconnect(session),
            CoreInput::LinkImport {
                peer,
                log_id,
                records,
                reply,
            } => self.link_import(&peer, log_id, records, reply, release),
            CoreInput::LinkAcked { peer, durable } => self.link_acked(&peer, durable),
            CoreInput::LinkRoutesQuery { peer, reply } => {
                // The routes only grow while a group lives, so the applied state's (a superset
                // of the committed one's) never misses a hub.
                let _ = reply.send(self.state.federation().groups_routed_to(&peer));
            }
            CoreInput::LinkProgressQuery { peer, reply } => {
                // Imports appended earlier in this batch are not durable yet: the progress is
                // answered after the commit, so a link never resumes past what a crash keeps.
                let progress = self.link_progress(&peer);
                release.after_commit.push(Box::new(move |committed| {
                    if committed {
                        let _ = reply.send(progress);
                    }
                }));
            }
            CoreInput::Request {
                session,
                request,
                reply,
            } => {
                if !self.sessions.contains_key(&session) {
                    let _ = reply.send(Err(error(ErrorCode::Unexpected, "the session is closed")));
                    return;
                }
                self.request_or_probe(session, *request, reply, false, release);
            }
            CoreInput::ProbeFinished {
                holder,
                alive,
                waiting,
            } => {
                if !alive && self.sessions.contains_key(&holder) {
                    tracing::info!(
                        session_id = holder.0,
                        "replaced a holder that did not answer its probe"
                    );
                    if let Some(old) = self.sessions.get(&holder) {
                        release.closes.push(old.outbound.clone());
                    }
                    self.disconnect(holder);
                }
                let WaitingRegister {
                    session,
                    params,
                    reply,
                } = *waiting;
                if self.sessions.contains_key(&session) {
                    let request = ClientRequest::Register(params);
                    self.request_or_probe(session, request, reply, true, release);
                } else {
                    let _ = reply.send(Err(error(ErrorCode::Unexpected, "the session is closed")));
                }
            }
        }
    }

    /// Runs a request, except a register whose fixed name a live-looking session holds: that
    /// one waits for a probe of the holder (`probed` says the probe already ran).
    fn request_or_probe(
        &mut self,
        session: SessionId,
        request: ClientRequest,
        reply: oneshot::Sender<Result<Json, RpcError>>,
        probed: bool,
        release: &mut Release,
    ) {
        let result = match request {
            ClientRequest::Register(params) => {
                match self.register(session, params, probed, release) {
                    Registration::Finished(result) => result,
                    Registration::Probe {
                        holder,
                        outbound,
                        params,
                    } => {
                        let waiting = WaitingRegister {
                            session,
                            params,
                            reply,
                        };
                        release.probes.push((holder, outbound, Box::new(waiting)));
                        return;
                    }
                }
            }
            ClientRequest::HubInfo(_) => self.hub_info(),
            other => {
                let key = other.idempotency_key().map(|key| key.as_str().to_owned());
                match self.request(session, other, key.as_deref(), release) {
                    Ok(answer) => return self.answer(session, key, answer, reply, release),
                    Err(refused) => Err(refused),
                }
            }
        };
        release.replies.push((reply, result));
    }

    fn disconnect(&mut self, session: SessionId) {
        let Some(removed) = self.sessions.remove(&session) else {
            return;
        };
        let Some(identity) = removed.identity else {
            return;
        };
        if self.online.get(&identity) == Some(&session) {
            self.online.remove(&identity);
            self.presence_dirty = true;
            if let Some(name) = self.name_of(identity)
                && let Err(refused) = self.emit(IdentityLeft { name }.into())
            {
                tracing::warn!(session_id = session.0, error = %refused, "could not log a leave");
            }
        }
    }

    /// Runs one request of a registered session. A sending request with an idempotency key
    /// seen before is answered with the first result (or joins it while it still waits).
    fn request(
        &mut self,
        session: SessionId,
        request: ClientRequest,
        key: Option<&str>,
        release: &mut Release,
    ) -> Result<Answer, RpcError> {
        let me = self.caller(session)?;
        if let Some(key) = key
            && let Some(repeat) = self.repeated_request(me, key)?
        {
            return Ok(repeat);
        }
        let now = |value: Result<Json, RpcError>| value.map(Answer::Now);
        match request {
            ClientRequest::Register(_) => Err(error(
                ErrorCode::AlreadyRegistered,
                "this session is registered already",
            )),
            ClientRequest::Hello(_) | ClientRequest::Auth(_) | ClientRequest::Ping(_) => {
                now(to_json(&EmptyResult {}))
            }
            ClientRequest::Rename(params) => now(self.rename(me, params)),
            ClientRequest::Peers(params) => now(self.peers(me, params)),
            ClientRequest::Send(params) => {
                self.take_token(me, 1)?;
                self.send(me, params, release)
            }
            ClientRequest::Ask(params) => {
                self.take_token(me, 1)?;
                self.ask(me, params, release)
            }
            ClientRequest::Broadcast(params) => {
                let peers = self.online.len().max(1) as u32;
                self.take_token(me, peers.min(self.config.rate.burst))?;
                now(self.broadcast(me, params, release))
            }
            ClientRequest::Reply(params) => {
                self.take_token(me, 1)?;
                self.reply(me, params, release)
            }
            ClientRequest::Inbox(params) => now(self.inbox(me, params)),
            ClientRequest::RoomJoin(params) => now(self.room_join(me, params)),
            ClientRequest::RoomLeave(params) => now(self.room_leave(me, params)),
            ClientRequest::RoomPost(params) => {
                self.take_token(me, 1)?;
                now(self.room_post(me, params, release))
            }
            ClientRequest::Rooms(params) => now(self.rooms(params)),
            ClientRequest::GroupCreate(params) => now(self.group_create(me, params, release)),
            ClientRequest::GroupInvite(params) => now(self.group_invite(me, params, release)),
            ClientRequest::GroupRemove(params) => now(self.group_remove(me, params, release)),
            ClientRequest::GroupLeave(params) => now(self.group_leave(me, params)),
            ClientRequest::GroupDelete(params) => now(self.group_delete(me, params, release)),
            ClientRequest::GroupInfo(params) => now(self.group_info(me, params)),
            ClientRequest::GroupSend(params) => {
                self.take_token(me, 1)?;
                now(self.group_send(me, params, release))
            }
            ClientRequest::GroupHistory(params) => now(self.group_history(me, params)),
            ClientRequest::GroupList(_) => now(self.group_list(me)),
            ClientRequest::Ack(params) => now(self.ack(me, params, release)),
            ClientRequest::Status(params) => now(self.status(me, params)),
            ClientRequest::Unread(_) => now(self.unread(me)),
            ClientRequest::HubInfo(_) => now(self.hub_info()),
        }
    }

    /// Validates `event` by applying it to the state (which changes nothing when it refuses),
    /// then appends it; what a full disk kept out of the log goes first
    /// ([`Self::log_deferred`]). An append failure after a successful apply leaves the state
    /// ahead of the log: the core stops.
    pub(super) fn emit(&mut self, event: Event) -> Result<u64, RpcError> {
        if self.failed {
            return Err(error(
                ErrorCode::StorageError,
                "the hub's log failed; it is stopping",
            ));
        }
        self.log_deferred()?;
        self.append_event(event)
    }

    /// Logs what a full disk kept out, once space lets it in: this start's `hub_started`
    /// first, then the registrations of sessions that attached without one and still hold
    /// their identity. Nothing inside a batch: [`Self::atomically`] calls it before it opens.
    ///
    /// # Errors
    /// `storage_full` while the disk is still full (the rest stays deferred).
    pub(super) fn log_deferred(&mut self) -> Result<(), RpcError> {
        if self.failed || self.disk.batch_open {
            return Ok(());
        }
        if let Some(started) = self.disk.hub_started.take()
            && let Err(refused) = self.append_event(started.clone().into())
        {
            self.disk.hub_started = Some(started);
            return Err(refused);
        }
        let mut pending = std::mem::take(&mut self.disk.unlogged_registrations).into_iter();
        while let Some((session, registered)) = pending.next() {
            let held = self.sessions.get(&session).and_then(|entry| entry.identity);
            let named = self.state.identity_by_name(&registered.name);
            if held.is_none() || held != named.map(|identity| identity.id) {
                continue; // the session left or lost the name: nothing to log for it
            }
            if let Err(refused) = self.append_event(registered.clone().into()) {
                let rest = std::iter::once((session, registered)).chain(pending);
                self.disk.unlogged_registrations = rest.collect();
                return Err(refused);
            }
        }
        Ok(())
    }

    /// [`Self::emit`] without the deferred records.
    fn append_event(&mut self, event: Event) -> Result<u64, RpcError> {
        let mut buffer = std::mem::take(&mut self.encode_buffer);
        let appended = self.append_encoded(&event, &mut buffer);
        if buffer.capacity() <= super::limits::ENCODE_BUFFER_KEPT_BYTES {
            self.encode_buffer = buffer;
        }
        appended
    }

    /// [`Self::append_event`] with `buffer` to encode `event` into.
    fn append_encoded(
        &mut self,
        event: &Event,
        buffer: &mut relay_replay::EncodeBuffer,
    ) -> Result<u64, RpcError> {
        let (kind, schema_version) = encode_into(event, buffer);
        let payload: &[u8] = buffer;
        // Room first: a full disk refuses the change before the state holds it. Inside a batch
        // the room includes the batch's end marker, so a batch the disk cuts short can still
        // be closed (`commands/batch.rs`).
        let mut room = payload.len();
        if self.disk.batch_open {
            let with_marker = room.saturating_add(super::commands::batch::end_marker_bytes());
            if with_marker <= relay_log::limits::RECORD_PAYLOAD_BYTES_MAX {
                room = with_marker;
            }
        }
        if let Err(failure) = self.log.reserve_append(room) {
            return Err(self.refuse_write(failure));
        }
        if let Some(since) = self.disk.full_since.take() {
            tracing::info!(
                elapsed_ms = since.elapsed().as_millis() as u64,
                "storage space is back; accepting writes again"
            );
        }
        let offset = self.log.next_offset();
        // Record timestamps never go backwards, even if the wall clock does: `--until TIME`
        // stops at the first record stamped later.
        let (timestamp_us, clock_event) = self.clock.stamp(now_us(), Instant::now());
        if let Some(clock_event) = clock_event {
            RecordClock::log(clock_event);
        }
        let meta = RecordMeta {
            offset,
            timestamp_us,
            origin_hub: self.config.hub_id,
        };
        apply(&mut self.state, meta, event).map_err(apply_error)?;
        let record = NewRecord {
            timestamp_us,
            kind,
            schema_version,
            origin_hub: self.config.hub_id,
            payload,
        };
        match self.log.append(&record) {
            Ok(appended) => {
                assert_eq!(
                    appended, offset,
                    "invariant: the log assigns the offset apply saw"
                );
                self.records_since_snapshot += 1;
                Ok(offset)
            }
            Err(failure) => {
                tracing::error!(offset, error = %failure, "append failed after apply; stopping");
                self.failed = true;
                Err(error(
                    ErrorCode::StorageError,
                    format!("the hub could not store the change: {failure}"),
                ))
            }
        }
    }

    /// [`Self::emit`] for the bookkeeping of a read (an inbox moving its cursor): on a full
    /// disk the read is still answered and the event is left out, so the same messages come
    /// again on the next read (never fewer).
    pub(super) fn emit_unless_full(&mut self, event: Event) -> Result<(), RpcError> {
        match self.emit(event) {
            Ok(_) => Ok(()),
            Err(refused) if refused.code == ErrorCode::StorageFull => Ok(()),
            Err(refused) => Err(refused),
        }
    }

    /// The answer to a write the log could not make room for: `storage_full` for a full disk
    /// (nothing changed; logged once per episode), otherwise `storage_error` and the core
    /// stops (a failed sync while sealing a segment poisoned the writer).
    pub(super) fn refuse_write(&mut self, failure: relay_log::WriteError) -> RpcError {
        if let relay_log::WriteError::NoSpace { path, bytes } = &failure {
            if self.disk.full_since.is_none() {
                tracing::error!(
                    segment = %path.display(),
                    bytes,
                    "the disk is full: refusing writes with storage_full, serving reads; free space and the next write succeeds"
                );
                self.disk.full_since = Some(Instant::now());
            }
            return error(
                ErrorCode::StorageFull,
                format!(
                    "the hub's disk is full: this request would store a change, and nothing was stored; requests that only read still work; retry once space is freed ({failure})"
                ),
            );
        }
        if let relay_log::WriteError::PayloadTooLarge { .. } = &failure {
            // Refused before anything changed: this request fails, the hub goes on.
            return error(ErrorCode::StorageError, failure.to_string());
        }
        tracing::error!(error = %failure, "could not make room in the log; stopping");
        self.failed = true;
        error(
            ErrorCode::StorageError,
            format!("the hub could not store the change: {failure}"),
        )
    }

    fn commit(&mut self) -> Result<(), ()> {
        self.log.commit().map_err(|failure| {
            tracing::error!(error = %failure, "commit failed; stopping");
            self.failed = true;
        })
    }

    /// When retention needs a batch although no request comes: to collect a snapshot being
    /// written, to take the snapshot it waits for, or to look at the ages of old segments.
    fn retention_timer(&self) -> Option<Instant> {
        let retention = self.config.retention?;
        if self.snapshot_worker.busy() {
            return Some(Instant::now() + RETENTION_SNAPSHOT_POLL);
        }
        let Some((checked_at, checked_offset)) = self.retention_checked else {
            return Some(Instant::now());
        };
        if self.retention_waits && self.records_since_snapshot > 0 {
            let last = self.snapshot_taken_at.max(checked_at);
            return Some(last + RETENTION_SNAPSHOT_INTERVAL_MIN);
        }
        // Records came since the last look: look again, so the last burst is reclaimed too.
        if self.log.next_offset() != checked_offset {
            return Some(checked_at + RETENTION_SNAPSHOT_INTERVAL_MIN);
        }
        match retention {
            Retention::Age(_) => Some(checked_at + RETENTION_AGE_CHECK_INTERVAL),
            Retention::Bytes(_) => None,
        }
    }

    /// The offset below which nothing the hub still needs lies: the smallest of the
    /// retention holds (the newest checked snapshot, and every linked hub's acknowledgement).
    fn retention_hold(&self) -> u64 {
        let holds = [RetentionHold::Snapshot, RetentionHold::Links];
        holds
            .iter()
            .map(|hold| match hold {
                RetentionHold::Snapshot => self.snapshot_hold(),
                RetentionHold::Links => self.links_hold(),
            })
            .min()
            .unwrap_or(0)
    }

    /// The newest snapshot this hub wrote and read back: start-up rebuilds from it, so it
    /// needs the log from there on. Before the first one the whole log is held (a snapshot
    /// left by an earlier run is not trusted for this: it may be the one that did not decode).
    fn snapshot_hold(&self) -> u64 {
        self.snapshot_checked_offset
    }

    /// Deletes the segments `--retain` lets go below the retention hold (after a snapshot
    /// became durable, else at most every [`RETENTION_SNAPSHOT_INTERVAL_MIN`]), and notes
    /// whether a newer snapshot would let more go.
    pub(super) fn maybe_reclaim(&mut self, snapshot_written: bool) {
        let Some(retention) = self.config.retention else {
            return;
        };
        let recently = self
            .retention_checked
            .is_some_and(|(at, _)| at.elapsed() < RETENTION_SNAPSHOT_INTERVAL_MIN);
        if !snapshot_written && recently {
            return;
        }
        self.retention_checked = Some((Instant::now(), self.log.next_offset()));
        let segments = self.log.segments();
        let target = retention_target(retention, &segments, now_us(), |index| {
            let last = segments.get(index + 1)?.base_offset.checked_sub(1)?;
            self.log.read(last).ok().map(|record| record.timestamp_us)
        });
        let hold = self.retention_hold();
        self.retention_waits = target > hold;
        let below = target.min(hold);
        if below <= self.log.first_offset() {
            return;
        }
        // In `os` mode the records below the snapshot may still be only in the page cache; a
        // power cut could then leave a log shorter than the snapshot, which start-up ignores,
        // falling back to an older snapshot below the first retained offset. Sync first.
        if self.log.durability() == relay_log::Durability::Os
            && below > self.log.durable_offset()
            && let Err(failure) = self.log.sync()
        {
            tracing::error!(error = %failure, "log sync before retention failed; stopping");
            self.failed = true;
            return;
        }
        match self.log.delete_below(below) {
            Ok(deleted) if !deleted.is_empty() => tracing::info!(
                offset = self.log.first_offset(),
                segments = deleted.len(),
                hold,
                "reclaimed log segments; history starts at offset"
            ),
            Ok(_) => {}
            Err(failure) => tracing::warn!(error = %failure, "could not delete old segments"),
        }
    }

    /// [`Self::finish`], then `exit`, or [`CoreExit::StorageFailed`] if the final sync failed
    /// (the hub then exits non-zero).
    fn finish_as(&mut self, exit: CoreExit) -> CoreExit {
        self.finish();
        if self.failed {
            CoreExit::StorageFailed
        } else {
            exit
        }
    }

    /// Answers the sends still waiting (`queued`), logs every session's leave, syncs the log,
    /// releases those answers, and writes a snapshot (shutdown). The sessions' queues close
    /// here: each connection writes what it was given and ends.
    fn finish(&mut self) {
        let mut release = Release::default();
        self.resolve_all_waiting(&mut release);
        let sessions: Vec<SessionId> = self.sessions.keys().copied().collect();
        for session in sessions {
            self.disconnect(session);
        }
        // The sync covers a commit still in flight too; batches waiting for it go out now.
        if let Err(failure) = self.log.sync() {
            tracing::error!(error = %failure, "final sync failed");
            self.failed = true;
            self.release_all_waiting(false);
            return;
        }
        self.release_all_waiting(true);
        for (reply, result) in release.replies {
            let _ = reply.send(result);
        }
        for (permit, queued) in release.pushes {
            permit.send(queued);
        }
        self.snapshot();
    }

    pub(super) fn caller(&self, session: SessionId) -> Result<IdentityId, RpcError> {
        self.sessions
            .get(&session)
            .and_then(|session| session.identity)
            .ok_or_else(|| error(ErrorCode::NotRegistered, "register first"))
    }

    pub(super) fn name_of(&self, identity: IdentityId) -> Option<String> {
        self.state
            .identity(identity)
            .map(|identity| identity.name().to_owned())
    }

    /// Current names of `identities`, in order.
    pub(super) fn names(&self, identities: impl IntoIterator<Item = IdentityId>) -> Vec<String> {
        identities
            .into_iter()
            .filter_map(|identity| self.name_of(identity))
            .collect()
    }

    pub(super) fn caller_name(&self, identity: IdentityId) -> Result<String, RpcError> {
        self.name_of(identity).ok_or_else(|| {
            error(
                ErrorCode::Unexpected,
                "invariant: a registered session has an identity",
            )
        })
    }

    pub(super) fn identity_named(&self, name: &str) -> Result<IdentityId, RpcError> {
        self.state
            .identity_by_name(name)
            .map(|identity| identity.id)
            .ok_or_else(|| {
                error(
                    ErrorCode::PeerNotFound,
                    format!("no peer named {name:?} has ever registered"),
                )
            })
    }

    /// Takes `cost` from `identity`'s send bucket, or says when to retry.
    pub(super) fn take_token(&mut self, identity: IdentityId, cost: u32) -> Result<(), RpcError> {
        let now = Instant::now();
        let rate = self.config.rate;
        let bucket = self
            .buckets
            .entry(identity)
            .or_insert_with(|| TokenBucket::new(rate, now));
        bucket.take(cost, now).map_err(|wait| {
            error(
                ErrorCode::RateLimited,
                format!(
                    "send rate exceeded; retry in {} ms",
                    wait.as_millis().max(1)
                ),
            )
            .with_detail("retry_after_ms", Value::from(wait.as_millis() as u64))
        })
    }

    /// Takes one new-identity token of `session`'s local user, or says when to retry.
    pub(super) fn take_new_identity_token(&mut self, session: SessionId) -> Result<(), RpcError> {
        let peer = self
            .sessions
            .get(&session)
            .and_then(|session| session.peer_uid);
        let now = Instant::now();
        let rate = self.config.new_identity_rate;
        let bucket = self
            .new_identity_buckets
            .entry(peer)
            .or_insert_with(|| TokenBucket::new(rate, now));
        bucket.take(1, now).map_err(|wait| {
            error(
                ErrorCode::RateLimited,
                format!(
                    "too many new identities: at most {} at once, then {} per second; retry in {} ms, or register with a name used before",
                    rate.burst,
                    rate.per_second,
                    wait.as_millis().max(1)
                ),
            )
            .with_detail("retry_after_ms", Value::from(wait.as_millis() as u64))
        })
    }

    /// Reserves a place for `bytes` in `identity`'s session queue if it is online and keeps
    /// up: a free slot in its frame queue, and room in its and the hub's byte budgets.
    pub(super) fn reserve_push(
        &self,
        identity: IdentityId,
        bytes: usize,
    ) -> Option<(mpsc::OwnedPermit<Queued>, QueueCharge)> {
        let session = self.sessions.get(self.online.get(&identity)?)?;
        let charge = session.budget.charge(bytes)?;
        let permit = session.outbound.clone().try_reserve_owned().ok()?;
        Some((permit, charge))
    }

    /// Queues `outbound` for `identity`'s session, released after the commit; `false` when it
    /// is offline, its queue is full or a byte budget is spent.
    pub(super) fn push(
        &self,
        identity: IdentityId,
        outbound: Outbound,
        release: &mut Release,
    ) -> bool {
        match self.reserve_push(identity, queued_bytes(&outbound)) {
            Some((permit, charge)) => {
                let queued = Queued {
                    outbound,
                    charge: Some(charge),
                };
                release.pushes.push((permit, queued));
                true
            }
            None => false,
        }
    }

    /// Stores a direct message (any kind) and pushes it if the recipient is online. Returns
    /// whether a push went out: the message is delivered only when the recipient's session
    /// acknowledges it (`ack`), never because a push was queued.
    pub(super) fn deliver(
        &mut self,
        to: IdentityId,
        event: Event,
        outbound: Outbound,
        release: &mut Release,
    ) -> Result<bool, RpcError> {
        let reserved = self.reserve_push(to, queued_bytes(&outbound));
        self.emit(event)?;
        let Some((permit, charge)) = reserved else {
            return Ok(false);
        };
        let queued = Queued {
            outbound,
            charge: Some(charge),
        };
        release.pushes.push((permit, queued));
        Ok(true)
    }

    /// A push of `text` from `from`, borrowing its strings: encode it with
    /// [`Outbound::push`].
    pub(super) fn message_push<'a>(
        &self,
        kind: MessageKind,
        from: &'a str,
        text: &'a str,
        msg_id: &'a str,
    ) -> MessagePush<&'a str> {
        MessagePush {
            kind,
            from,
            text,
            msg_id,
            ask_id: None,
            reply_to: None,
            room: None,
            group: None,
            urgent: false,
            ts: now_us(),
            origin_hub: None,
            late: false,
        }
    }

    pub(super) fn notice(
        &self,
        identity: IdentityId,
        text: String,
        group: Option<&str>,
        release: &mut Release,
    ) {
        let msg_id = format!("s-{}", self.log.next_offset());
        let mut push = self.message_push(MessageKind::System, "relay", &text, &msg_id);
        push.group = group;
        self.push(identity, Outbound::push(&push), release);
    }
}
