//! The core task: the single owner of the [`State`] and the log writer.
//!
//! It drains the command queue into a batch; for each command it validates against the
//! state, builds events, applies each with the replay crate's `apply` (which checks before it
//! changes anything, so a rejected command appends nothing) and appends it; then it commits
//! once for the whole batch, and only then releases the replies and pushes. A failed commit
//! answers every request of the batch with `storage_error` and stops the hub: the state in
//! memory may hold events that are not durable, and recovery runs on the next start.
//!
//! Presence (which session is connected as whom) is runtime state kept here, not a
//! projection; register, rename and leave are still logged as events.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use relay_log::{LogWriter, NewRecord};
use relay_replay::event::{
    AskSent, ClientKind as EventClientKind, GroupCreated, GroupCursorAdvanced, GroupDeleted,
    GroupLeft, GroupMemberInvited, GroupMemberRemoved, GroupMessageSent, HubStarted, IdentityLeft,
    IdentityRegistered, IdentityRenamed, MailboxCursorAdvanced, MessagePushed, MessageSent,
    ReplySent, RoomJoined, RoomLeft, RoomMessageSent,
};
use relay_replay::{
    ApplyError, DeliveryState, Event, IdentityId, RecordMeta, State, StoredMessage, apply, encode,
};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::limits::{
    BATCH_COMMANDS_MAX, SESSIONS_MAX, SNAPSHOT_INTERVAL_MIN, SNAPSHOT_INTERVAL_RECORDS,
};
use super::rate::{RateConfig, TokenBucket};
use crate::protocol::fields::ClientKind;
use crate::protocol::methods::*;
use crate::protocol::notification::{MessageKind, MessagePush};
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
        outbound: mpsc::Sender<Outbound>,
    },
    /// A request that changes or reads hub state.
    Request {
        /// The connection.
        session: SessionId,
        /// The typed request.
        request: Box<ClientRequest>,
        /// Where the result goes, after the batch is committed.
        reply: oneshot::Sender<Result<Value, RpcError>>,
    },
    /// The connection closed or was evicted.
    Disconnected {
        /// The connection.
        session: SessionId,
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
    /// A push to write.
    Push(MessagePush),
    /// Ask the connection to ping its client and report whether it answers.
    Probe(oneshot::Sender<bool>),
    /// Close the connection (it was replaced by a new holder of its fixed name).
    Close,
}

/// Settings of the core.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Per-session send rate.
    pub rate: RateConfig,
    /// Where snapshots go.
    pub snapshot_dir: PathBuf,
    /// Exit this long after the last session left (`None`: never).
    pub idle_exit: Option<Duration>,
    /// The hub's id (its log id).
    pub hub_id: u128,
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

struct Session {
    outbound: mpsc::Sender<Outbound>,
    identity: Option<IdentityId>,
    bucket: TokenBucket,
}

/// Where a request's result goes.
type Reply = oneshot::Sender<Result<Value, RpcError>>;

/// What a register request leads to.
enum Registration {
    /// Answered (registered or refused).
    Finished(Result<Value, RpcError>),
    /// The fixed name's holder must be probed first.
    Probe {
        holder: SessionId,
        outbound: mpsc::Sender<Outbound>,
        params: RegisterParams,
    },
}

/// Replies and pushes held until the batch is committed.
#[derive(Default)]
struct Release {
    replies: Vec<(Reply, Result<Value, RpcError>)>,
    pushes: Vec<(mpsc::OwnedPermit<Outbound>, MessagePush)>,
    closes: Vec<mpsc::Sender<Outbound>>,
    probes: Vec<(SessionId, mpsc::Sender<Outbound>, Box<WaitingRegister>)>,
}

/// The core: state, log, presence.
pub struct Core {
    log: LogWriter,
    state: State,
    config: CoreConfig,
    sessions: HashMap<SessionId, Session>,
    online: BTreeMap<IdentityId, SessionId>,
    records_since_snapshot: u64,
    appended_since_commit: bool,
    failed: bool,
    /// The core's own queue, for probe results that arrive after their batch.
    probe_sender: mpsc::Sender<CoreInput>,
    /// When the last periodic snapshot was taken.
    snapshot_taken_at: Instant,
    /// Timestamp of the last record appended, in microseconds since the epoch.
    last_timestamp_us: u64,
    /// The thread writing the last periodic snapshot, if any.
    snapshot_writer: Option<std::thread::JoinHandle<()>>,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

fn error(code: ErrorCode, message: impl Into<String>) -> RpcError {
    RpcError::new(code, message)
}

fn to_value(result: &impl Serialize) -> Result<Value, RpcError> {
    serde_json::to_value(result).map_err(|json| error(ErrorCode::Unexpected, json.to_string()))
}

/// Maps an event the state refused to the code a client sees.
fn apply_error(refused: ApplyError) -> RpcError {
    let code = match &refused {
        ApplyError::UnknownIdentity { .. } => ErrorCode::PeerNotFound,
        ApplyError::NameTaken { .. } => ErrorCode::NameTaken,
        ApplyError::GroupExists { .. } => ErrorCode::GroupExists,
        ApplyError::GroupNotFound { .. } => ErrorCode::GroupNotFound,
        ApplyError::NotGroupMember { .. }
        | ApplyError::NotRoomMember { .. }
        | ApplyError::RoomNotFound { .. } => ErrorCode::NotMember,
        ApplyError::AdminCannotBeRemoved { .. } => ErrorCode::BadArguments,
        ApplyError::NotGroupAdmin { .. } => ErrorCode::NotAdmin,
        ApplyError::IdentitiesFull { .. }
        | ApplyError::RoomsFull { .. }
        | ApplyError::RoomFull { .. }
        | ApplyError::GroupsFull { .. }
        | ApplyError::GroupFull { .. } => ErrorCode::LimitReached,
        ApplyError::AlreadyGroupMember { .. } => ErrorCode::AlreadyMember,
        ApplyError::AskMismatch { .. } => ErrorCode::BadArguments,
        _ => ErrorCode::Unexpected,
    };
    error(code, refused.to_string())
}

/// The log's client kind for the wire's (the two enums are kept apart: one is a frozen log
/// format, the other the protocol; exhaustive matches both ways keep them in step).
fn event_client_kind(client: ClientKind) -> EventClientKind {
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
fn client_name(client: &EventClientKind) -> String {
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
    /// A core over a recovered log and the state rebuilt from it. Appends `hub_started`.
    ///
    /// # Errors
    /// The log refused the `hub_started` record.
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
        let mut core = Core {
            log,
            state,
            config,
            probe_sender,
            snapshot_taken_at: Instant::now(),
            last_timestamp_us,
            snapshot_writer: None,
            sessions: HashMap::new(),
            online: BTreeMap::new(),
            records_since_snapshot: 0,
            appended_since_commit: false,
            failed: false,
        };
        let started = HubStarted {
            hub_id: core.config.hub_id,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        core.emit(started.into())?;
        core.commit()
            .map_err(|()| error(ErrorCode::StorageError, "could not commit hub_started"))?;
        Ok(core)
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
        // Runs for the hub's lifetime: every pass handles one batch or ends the loop.
        loop {
            let idle_deadline = match (self.config.idle_exit, idle_since) {
                (Some(timeout), Some(since)) => Some(since + timeout),
                _ => None,
            };
            let first = tokio::select! {
                input = inputs.recv() => input,
                _ = shutdown.changed() => None,
                () = sleep_until(idle_deadline) => {
                    tracing::info!("no session for the idle timeout; exiting");
                    self.finish();
                    return CoreExit::Idle;
                }
            };
            let Some(first) = first else {
                self.finish();
                return CoreExit::Shutdown;
            };
            let mut batch = vec![first];
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

    /// Handles one batch: validate, append, apply; one commit; then release. Public for the
    /// in-process fuzz harness.
    pub fn run_batch(&mut self, batch: Vec<CoreInput>) {
        let mut release = Release::default();
        for input in batch {
            self.handle(input, &mut release);
        }
        if self.appended_since_commit && self.commit().is_err() {
            for (reply, _) in release.replies.drain(..) {
                let _ = reply.send(Err(error(
                    ErrorCode::StorageError,
                    "the hub could not make the change durable; it is stopping",
                )));
            }
            return;
        }
        for (reply, result) in release.replies {
            let _ = reply.send(result);
        }
        for (permit, push) in release.pushes {
            permit.send(Outbound::Push(push));
        }
        for outbound in release.closes {
            let _ = outbound.try_send(Outbound::Close);
        }
        for (holder, outbound, waiting) in release.probes {
            let core_inputs = self.probe_sender.clone();
            let (answer, answered) = oneshot::channel();
            if outbound.try_send(Outbound::Probe(answer)).is_err() {
                let _ = core_inputs.try_send(CoreInput::ProbeFinished {
                    holder,
                    alive: false,
                    waiting,
                });
                continue;
            }
            tokio::spawn(async move {
                let alive = answered.await.unwrap_or(false);
                let _ = core_inputs
                    .send(CoreInput::ProbeFinished {
                        holder,
                        alive,
                        waiting,
                    })
                    .await;
            });
        }
        self.maybe_snapshot();
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

impl Core {
    fn handle(&mut self, input: CoreInput, release: &mut Release) {
        match input {
            CoreInput::Connected { session, outbound } => {
                let bucket = TokenBucket::new(self.config.rate, Instant::now());
                self.sessions.insert(
                    session,
                    Session {
                        outbound,
                        identity: None,
                        bucket,
                    },
                );
            }
            CoreInput::Disconnected { session } => self.disconnect(session),
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
        reply: oneshot::Sender<Result<Value, RpcError>>,
        probed: bool,
        release: &mut Release,
    ) {
        let result = match request {
            ClientRequest::Register(params) => match self.register(session, params, probed) {
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
            },
            other => self.request(session, other, release),
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
            if let Some(name) = self.name_of(identity)
                && let Err(refused) = self.emit(IdentityLeft { name }.into())
            {
                tracing::warn!(session_id = session.0, error = %refused, "could not log a leave");
            }
        }
    }

    fn request(
        &mut self,
        session: SessionId,
        request: ClientRequest,
        release: &mut Release,
    ) -> Result<Value, RpcError> {
        let me = self.caller(session)?;
        match request {
            ClientRequest::Register(_) => Err(error(
                ErrorCode::AlreadyRegistered,
                "this session is registered already",
            )),
            ClientRequest::Hello(_) | ClientRequest::Auth(_) | ClientRequest::Ping(_) => {
                to_value(&EmptyResult {})
            }
            ClientRequest::Rename(params) => self.rename(me, params),
            ClientRequest::Peers(_) => self.peers(me),
            ClientRequest::Send(params) => {
                self.take_token(session, 1)?;
                self.send(me, params, release)
            }
            ClientRequest::Ask(params) => {
                self.take_token(session, 1)?;
                self.ask(me, params, release)
            }
            ClientRequest::Broadcast(params) => {
                let peers = self.online.len().max(1) as u32;
                self.take_token(session, peers.min(self.config.rate.burst))?;
                self.broadcast(me, params, release)
            }
            ClientRequest::Reply(params) => {
                self.take_token(session, 1)?;
                self.reply(me, params, release)
            }
            ClientRequest::Inbox(params) => self.inbox(me, params),
            ClientRequest::RoomJoin(params) => self.room_join(me, params),
            ClientRequest::RoomLeave(params) => {
                let name = self.caller_name(me)?;
                self.emit(
                    RoomLeft {
                        room: params.room.as_str().to_owned(),
                        name,
                    }
                    .into(),
                )?;
                to_value(&EmptyResult {})
            }
            ClientRequest::RoomPost(params) => {
                self.take_token(session, 1)?;
                self.room_post(me, params, release)
            }
            ClientRequest::Rooms(_) => self.rooms(),
            ClientRequest::GroupCreate(params) => self.group_create(me, params, release),
            ClientRequest::GroupInvite(params) => self.group_invite(me, params, release),
            ClientRequest::GroupRemove(params) => self.group_remove(me, params, release),
            ClientRequest::GroupLeave(params) => {
                let member = self.caller_name(me)?;
                self.emit(
                    GroupLeft {
                        group: params.group.as_str().to_owned(),
                        member,
                    }
                    .into(),
                )?;
                to_value(&EmptyResult {})
            }
            ClientRequest::GroupDelete(params) => self.group_delete(me, params, release),
            ClientRequest::GroupInfo(params) => self.group_info(me, params),
            ClientRequest::GroupSend(params) => {
                self.take_token(session, 1)?;
                self.group_send(me, params, release)
            }
            ClientRequest::GroupHistory(params) => self.group_history(me, params),
            ClientRequest::GroupList(_) => self.group_list(me),
        }
    }

    /// Validates `event` by applying it to the state (which changes nothing when it refuses),
    /// then appends it. An append failure after a successful apply leaves the state ahead of
    /// the log: the core stops.
    fn emit(&mut self, event: Event) -> Result<u64, RpcError> {
        if self.failed {
            return Err(error(
                ErrorCode::StorageError,
                "the hub's log failed; it is stopping",
            ));
        }
        let offset = self.log.next_offset();
        // Record timestamps never go backwards, even if the wall clock does: `--until TIME`
        // stops at the first record stamped later.
        let timestamp_us = now_us().max(self.last_timestamp_us);
        self.last_timestamp_us = timestamp_us;
        let meta = RecordMeta {
            offset,
            timestamp_us,
            origin_hub: self.config.hub_id,
        };
        apply(&mut self.state, meta, &event).map_err(apply_error)?;
        let encoded = encode(&event);
        let record = NewRecord {
            timestamp_us,
            kind: encoded.kind,
            schema_version: encoded.schema_version,
            origin_hub: self.config.hub_id,
            payload: &encoded.payload,
        };
        match self.log.append(&record) {
            Ok(appended) => {
                assert_eq!(
                    appended, offset,
                    "invariant: the log assigns the offset apply saw"
                );
                self.appended_since_commit = true;
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

    fn commit(&mut self) -> Result<(), ()> {
        self.appended_since_commit = false;
        self.log.commit().map_err(|failure| {
            tracing::error!(error = %failure, "commit failed; stopping");
            self.failed = true;
        })
    }

    /// Takes a periodic snapshot once enough records and time have passed. The core only
    /// encodes it; writing and syncing the file happen on a background thread, one at a time,
    /// so a busy hub never stalls on snapshot I/O.
    fn maybe_snapshot(&mut self) {
        let due = self.records_since_snapshot >= SNAPSHOT_INTERVAL_RECORDS
            && self.snapshot_taken_at.elapsed() >= SNAPSHOT_INTERVAL_MIN;
        let writer_busy = self
            .snapshot_writer
            .as_ref()
            .is_some_and(|writer| !writer.is_finished());
        if !due || writer_busy {
            return;
        }
        self.records_since_snapshot = 0;
        self.snapshot_taken_at = Instant::now();
        let next_offset = self.log.next_offset();
        let bytes = relay_replay::snapshot_encode(&self.state, next_offset);
        let (dir, log_id) = (self.config.snapshot_dir.clone(), self.log.log_id());
        let spawned = std::thread::Builder::new().name("relay-snapshot".to_owned()).spawn(move || {
            match crate::snapshots::write_encoded(&dir, log_id, next_offset, &bytes) {
                Ok(path) => tracing::info!(offset = next_offset, segment = %path.display(), "snapshot written"),
                Err(failure) => tracing::warn!(offset = next_offset, error = %failure, "could not write a snapshot"),
            }
        });
        match spawned {
            Ok(handle) => self.snapshot_writer = Some(handle),
            Err(failure) => tracing::warn!(error = %failure, "could not start the snapshot writer"),
        }
    }

    /// Writes a snapshot on this thread (shutdown), after any background one finished.
    fn snapshot(&mut self) {
        if let Some(writer) = self.snapshot_writer.take() {
            let _ = writer.join();
        }
        self.records_since_snapshot = 0;
        let next_offset = self.log.next_offset();
        match crate::snapshots::write(
            &self.config.snapshot_dir,
            self.log.log_id(),
            &self.state,
            next_offset,
        ) {
            Ok(path) => {
                tracing::info!(offset = next_offset, segment = %path.display(), "snapshot written")
            }
            Err(failure) => {
                tracing::warn!(offset = next_offset, error = %failure, "could not write a snapshot")
            }
        }
    }

    /// Logs every session's leave, syncs the log and writes a snapshot (shutdown).
    fn finish(&mut self) {
        let sessions: Vec<SessionId> = self.sessions.keys().copied().collect();
        for session in sessions {
            self.disconnect(session);
        }
        if let Err(failure) = self.log.sync() {
            tracing::error!(error = %failure, "final sync failed");
            return;
        }
        self.snapshot();
    }

    fn caller(&self, session: SessionId) -> Result<IdentityId, RpcError> {
        self.sessions
            .get(&session)
            .and_then(|session| session.identity)
            .ok_or_else(|| error(ErrorCode::NotRegistered, "register first"))
    }

    fn name_of(&self, identity: IdentityId) -> Option<String> {
        self.state
            .identity(identity)
            .map(|identity| identity.name().to_owned())
    }

    /// Current names of `identities`, in order.
    fn names(&self, identities: impl IntoIterator<Item = IdentityId>) -> Vec<String> {
        identities
            .into_iter()
            .filter_map(|identity| self.name_of(identity))
            .collect()
    }

    fn caller_name(&self, identity: IdentityId) -> Result<String, RpcError> {
        self.name_of(identity).ok_or_else(|| {
            error(
                ErrorCode::Unexpected,
                "invariant: a registered session has an identity",
            )
        })
    }

    fn identity_named(&self, name: &str) -> Result<IdentityId, RpcError> {
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

    fn take_token(&mut self, session: SessionId, cost: u32) -> Result<(), RpcError> {
        let Some(session) = self.sessions.get_mut(&session) else {
            return Ok(());
        };
        session.bucket.take(cost, Instant::now()).map_err(|wait| {
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

    /// Reserves a place in `identity`'s session queue if it is online and keeps up.
    fn reserve_push(&self, identity: IdentityId) -> Option<mpsc::OwnedPermit<Outbound>> {
        let session = self.online.get(&identity)?;
        self.sessions
            .get(session)?
            .outbound
            .clone()
            .try_reserve_owned()
            .ok()
    }

    fn push(&self, identity: IdentityId, push: MessagePush, release: &mut Release) -> bool {
        match self.reserve_push(identity) {
            Some(permit) => {
                release.pushes.push((permit, push));
                true
            }
            None => false,
        }
    }

    /// Stores a direct message (any kind) and pushes it if the recipient is online.
    fn deliver(
        &mut self,
        to: IdentityId,
        event: Event,
        push: MessagePush,
        release: &mut Release,
    ) -> Result<DeliveryStatus, RpcError> {
        let permit = self.reserve_push(to);
        self.emit(event)?;
        let Some(permit) = permit else {
            return Ok(DeliveryStatus::Queued);
        };
        let recipient = self.caller_name(to)?;
        self.emit(
            MessagePushed {
                recipient,
                message_id: push.msg_id.clone(),
            }
            .into(),
        )?;
        release.pushes.push((permit, push));
        Ok(DeliveryStatus::Delivered)
    }

    fn message_push(&self, kind: MessageKind, from: &str, text: &str, msg_id: &str) -> MessagePush {
        MessagePush {
            kind,
            from: from.to_owned(),
            text: text.to_owned(),
            msg_id: msg_id.to_owned(),
            ask_id: None,
            reply_to: None,
            room: None,
            group: None,
            urgent: false,
            ts: now_us(),
            origin_hub: None,
        }
    }

    fn notice(
        &self,
        identity: IdentityId,
        text: String,
        group: Option<&str>,
        release: &mut Release,
    ) {
        let mut push = self.message_push(
            MessageKind::System,
            "relay",
            &text,
            &format!("s-{}", self.log.next_offset()),
        );
        push.group = group.map(str::to_owned);
        self.push(identity, push, release);
    }
}

/// Registration, naming and presence.
impl Core {
    fn register(
        &mut self,
        session: SessionId,
        params: RegisterParams,
        probed: bool,
    ) -> Registration {
        match self.register_checked(session, params, probed) {
            Ok(registration) => registration,
            Err(refused) => Registration::Finished(Err(refused)),
        }
    }

    fn register_checked(
        &mut self,
        session: SessionId,
        params: RegisterParams,
        probed: bool,
    ) -> Result<Registration, RpcError> {
        if self.caller(session).is_ok() {
            return Err(error(
                ErrorCode::AlreadyRegistered,
                "this session is registered already",
            ));
        }
        if self.online.len() >= SESSIONS_MAX {
            return Err(error(
                ErrorCode::LimitReached,
                format!("{SESSIONS_MAX} sessions are connected"),
            ));
        }
        let name = match &params.name {
            Some(fixed) => {
                let fixed = fixed.as_str().to_owned();
                let holder = self
                    .state
                    .identity_by_name(&fixed)
                    .and_then(|identity| self.online.get(&identity.id))
                    .copied();
                if let Some(holder) = holder {
                    // A fixed identity is never suffixed: probe the holder, replace it if dead.
                    if probed {
                        return Err(error(
                            ErrorCode::NameTaken,
                            format!("{fixed:?} is held by a live session"),
                        ));
                    }
                    let outbound = self
                        .sessions
                        .get(&holder)
                        .map(|holder| holder.outbound.clone())
                        .ok_or_else(|| {
                            error(
                                ErrorCode::Unexpected,
                                "invariant: online sessions are connected",
                            )
                        })?;
                    return Ok(Registration::Probe {
                        holder,
                        outbound,
                        params,
                    });
                }
                fixed
            }
            None => {
                let base = params
                    .session_name
                    .as_ref()
                    .and_then(|session_name| {
                        crate::protocol::fields::PeerName::sanitized(session_name.as_str())
                    })
                    .map_or_else(
                        || directory_slug(params.cwd.as_str()),
                        |name| name.as_str().to_owned(),
                    );
                self.free_name(&base)
            }
        };
        let registered = IdentityRegistered {
            name: name.clone(),
            cwd: params.cwd.as_str().to_owned(),
            git_branch: params
                .git_branch
                .as_ref()
                .map(|branch| branch.as_str().to_owned()),
            client: event_client_kind(params.client),
        };
        self.emit(registered.into())?;
        let identity = self.identity_named(&name)?;
        if let Some(entry) = self.sessions.get_mut(&session) {
            entry.identity = Some(identity);
        }
        self.online.insert(identity, session);
        tracing::debug!(session_id = session.0, "registered");
        Ok(Registration::Finished(to_value(&RegisterResult { name })))
    }

    /// `base`, or `base-2`, `base-3` … : the first that no online session holds.
    fn free_name(&self, base: &str) -> String {
        let taken = |name: &str| {
            self.state
                .identity_by_name(name)
                .is_some_and(|identity| self.online.contains_key(&identity.id))
        };
        if !taken(base) {
            return base.to_owned();
        }
        // Bounded: at most SESSIONS_MAX names can be online.
        (2..=SESSIONS_MAX + 2)
            .map(|suffix| format!("{base}-{suffix}"))
            .find(|name| !taken(name))
            .unwrap_or_else(|| format!("{base}-{}", self.log.next_offset()))
    }

    fn rename(&mut self, me: IdentityId, params: RenameParams) -> Result<Value, RpcError> {
        let old_name = self.caller_name(me)?;
        let new_name = params.new_name.as_str().to_owned();
        if new_name != old_name {
            self.emit(
                IdentityRenamed {
                    old_name,
                    new_name: new_name.clone(),
                }
                .into(),
            )?;
        }
        to_value(&RenameResult { name: new_name })
    }

    fn peers(&self, me: IdentityId) -> Result<Value, RpcError> {
        let peers = self
            .state
            .identities()
            .filter(|identity| identity.id != me)
            .map(|identity| PeerInfo {
                name: identity.name().to_owned(),
                cwd: identity.cwd.clone(),
                git_branch: identity.git_branch.clone(),
                client: client_name(&identity.client),
                online: self.online.contains_key(&identity.id),
                last_seen: identity.last_seen_us,
            })
            .collect::<Vec<_>>();
        let mut peers = peers;
        peers.sort_by(|a, b| b.online.cmp(&a.online).then_with(|| a.name.cmp(&b.name)));
        to_value(&PeersResult {
            me: self.caller_name(me)?,
            peers,
        })
    }
}

/// Direct messages, asks, broadcasts, replies and the inbox.
impl Core {
    fn send(
        &mut self,
        me: IdentityId,
        params: SendParams,
        release: &mut Release,
    ) -> Result<Value, RpcError> {
        let from = self.caller_name(me)?;
        let to = self.identity_named(params.to.as_str())?;
        let msg_id = format!("m-{}", self.log.next_offset());
        let event = MessageSent {
            id: msg_id.clone(),
            from: from.clone(),
            to: params.to.as_str().to_owned(),
            body: params.text.as_str().to_owned(),
            reply_to: params.reply_to.as_ref().map(|id| id.as_str().to_owned()),
            urgent: params.urgent,
            thread: None,
        };
        let mut push = self.message_push(MessageKind::Direct, &from, params.text.as_str(), &msg_id);
        push.reply_to = params.reply_to.as_ref().map(|id| id.as_str().to_owned());
        push.urgent = params.urgent;
        let status = self.deliver(to, event.into(), push, release)?;
        to_value(&SendResult { msg_id, status })
    }

    fn ask(
        &mut self,
        me: IdentityId,
        params: AskParams,
        release: &mut Release,
    ) -> Result<Value, RpcError> {
        let from = self.caller_name(me)?;
        let to = self.identity_named(params.to.as_str())?;
        let offset = self.log.next_offset();
        let (msg_id, ask_id) = (format!("m-{offset}"), format!("a-{offset}"));
        let event = AskSent {
            id: msg_id.clone(),
            ask_id: ask_id.clone(),
            from: from.clone(),
            to: params.to.as_str().to_owned(),
            body: params.question.as_str().to_owned(),
            broadcast_id: None,
            urgent: params.urgent,
            thread: params
                .thread_id
                .as_ref()
                .map(|thread| thread.as_str().to_owned()),
        };
        let mut push =
            self.message_push(MessageKind::Ask, &from, params.question.as_str(), &msg_id);
        push.ask_id = Some(ask_id.clone());
        push.urgent = params.urgent;
        let status = self.deliver(to, event.into(), push, release)?;
        to_value(&AskResult {
            ask_id,
            msg_id,
            status,
        })
    }

    fn broadcast(
        &mut self,
        me: IdentityId,
        params: BroadcastParams,
        release: &mut Release,
    ) -> Result<Value, RpcError> {
        let from = self.caller_name(me)?;
        let broadcast_id = format!("b-{}", self.log.next_offset());
        let targets: Vec<IdentityId> = self
            .online
            .keys()
            .copied()
            .filter(|target| !(params.exclude_self && *target == me))
            .collect();
        for target in &targets {
            let offset = self.log.next_offset();
            let (msg_id, ask_id) = (format!("m-{offset}"), format!("a-{offset}"));
            let event = AskSent {
                id: msg_id.clone(),
                ask_id: ask_id.clone(),
                from: from.clone(),
                to: self.caller_name(*target)?,
                body: params.question.as_str().to_owned(),
                broadcast_id: Some(broadcast_id.clone()),
                urgent: false,
                thread: None,
            };
            let mut push = self.message_push(
                MessageKind::Broadcast,
                &from,
                params.question.as_str(),
                &msg_id,
            );
            push.ask_id = Some(ask_id);
            self.deliver(*target, event.into(), push, release)?;
        }
        to_value(&BroadcastResult {
            broadcast_id,
            peer_count: targets.len() as u32,
        })
    }

    fn reply(
        &mut self,
        me: IdentityId,
        params: ReplyParams,
        release: &mut Release,
    ) -> Result<Value, RpcError> {
        let from = self.caller_name(me)?;
        let mut answered = params.ask_id.as_str().to_owned();
        // A broadcast id stands for the caller's own ask of that broadcast.
        if let Some(ask) =
            self.state.asks().all_pending().find(|ask| {
                ask.target == me && ask.broadcast_id.as_deref() == Some(answered.as_str())
            })
        {
            answered = ask.ask_id.clone();
        }
        // The id names a pending ask, or a message the caller received.
        let to = match self.state.pending_ask(&answered) {
            Some(ask) if ask.target == me => ask.asker,
            Some(_) => {
                return Err(error(
                    ErrorCode::AskNotFound,
                    format!("ask {answered:?} was not addressed to you"),
                ));
            }
            None => match self.state.message(&answered) {
                Some((recipient, message)) if recipient == me => message.from,
                _ => {
                    return Err(error(
                        ErrorCode::AskNotFound,
                        format!("no pending ask or message of yours has id {answered:?}"),
                    ));
                }
            },
        };
        let msg_id = format!("m-{}", self.log.next_offset());
        let event = ReplySent {
            id: msg_id.clone(),
            from: from.clone(),
            to: self.caller_name(to)?,
            body: params.text.as_str().to_owned(),
            reply_to: answered.clone(),
            urgent: params.urgent,
            thread: None,
        };
        let mut push = self.message_push(MessageKind::Reply, &from, params.text.as_str(), &msg_id);
        push.reply_to = Some(answered);
        push.urgent = params.urgent;
        let status = self.deliver(to, event.into(), push, release)?;
        to_value(&ReplyResult { msg_id, status })
    }

    fn inbox(&mut self, me: IdentityId, params: InboxParams) -> Result<Value, RpcError> {
        let recipient = self.caller_name(me)?;
        let mailbox = self.state.mailbox(me).ok_or_else(|| {
            error(
                ErrorCode::Unexpected,
                "invariant: every identity has a mailbox",
            )
        })?;
        let limit = params.limit.get() as usize;
        let since = params.since_id.as_ref().map(|id| id.as_str());
        let mut matching = if params.include_pushed {
            mailbox.all(since, usize::MAX)
        } else {
            mailbox.unread(since, usize::MAX)
        };
        let matching_count = matching.len();
        matching.truncate(limit);
        let sizes = matching
            .iter()
            .map(|message| message.body.len() + message.from_name.len());
        matching.truncate(fitting_in_a_frame(sizes));
        let messages: Vec<InboxMessage> = matching
            .iter()
            .map(|message| inbox_message(message))
            .collect();
        let remaining = (matching_count - messages.len()) as u32;
        let cursor = mailbox.cursor();
        let queued: Vec<String> = matching
            .iter()
            .filter(|message| message.sequence > cursor && message.state == DeliveryState::Queued)
            .map(|message| message.id.clone())
            .collect();
        let last_sequence = matching.last().map(|message| message.sequence);
        if since.is_none() {
            // Everything up to the last returned message has been seen: move the cursor.
            if let Some(up_to_sequence) = last_sequence.filter(|sequence| *sequence > cursor) {
                self.emit(
                    MailboxCursorAdvanced {
                        recipient,
                        up_to_sequence,
                    }
                    .into(),
                )?;
            }
        } else {
            // After `since_id`, earlier messages were not returned: mark only the returned ones
            // delivered, so the cursor does not pass messages the session never saw.
            for message_id in queued {
                self.emit(
                    MessagePushed {
                        recipient: recipient.clone(),
                        message_id,
                    }
                    .into(),
                )?;
            }
        }
        to_value(&InboxResult {
            messages,
            remaining,
        })
    }
}

/// How many of these messages (their text sizes, in order) fit in one response frame, at
/// least one: every byte may be escaped six-fold in JSON, plus a fixed envelope per message.
fn fitting_in_a_frame(sizes: impl Iterator<Item = usize>) -> usize {
    use crate::protocol::limits::{FRAME_BYTES_MAX, JSON_ESCAPE_EXPANSION_MAX};
    const MESSAGE_ENVELOPE_BYTES: usize = 1024;
    let budget = FRAME_BYTES_MAX - 4 * MESSAGE_ENVELOPE_BYTES;
    let mut used = 0;
    let mut count = 0;
    for size in sizes {
        used += size * JSON_ESCAPE_EXPANSION_MAX + MESSAGE_ENVELOPE_BYTES;
        if used > budget && count > 0 {
            break;
        }
        count += 1;
    }
    count
}

fn inbox_message(message: &StoredMessage) -> InboxMessage {
    let kind = match (&message.ask_id, &message.broadcast_id, &message.reply_to) {
        (Some(_), Some(_), _) => MessageKind::Broadcast,
        (Some(_), None, _) => MessageKind::Ask,
        _ if message.is_reply => MessageKind::Reply,
        _ => MessageKind::Direct,
    };
    InboxMessage {
        msg_id: message.id.clone(),
        kind,
        from: message.from_name.clone(),
        text: message.body.clone(),
        reply_to: message.reply_to.clone(),
        ask_id: message.ask_id.clone(),
        ts: message.timestamp_us,
        urgent: message.urgent,
    }
}

/// Rooms: ephemeral, members are connected sessions.
impl Core {
    fn room_members(&self, room: &str) -> Vec<IdentityId> {
        self.state
            .room(room)
            .map(|room| room.members().collect())
            .unwrap_or_default()
    }

    fn room_join(&mut self, me: IdentityId, params: RoomJoinParams) -> Result<Value, RpcError> {
        let name = self.caller_name(me)?;
        let room = params.room.as_str().to_owned();
        if !self.room_members(&room).contains(&me) {
            self.emit(
                RoomJoined {
                    room: room.clone(),
                    name,
                }
                .into(),
            )?;
        }
        let members = self.names(self.room_members(&room));
        to_value(&RoomJoinResult { room, members })
    }

    fn room_post(
        &mut self,
        me: IdentityId,
        params: RoomPostParams,
        release: &mut Release,
    ) -> Result<Value, RpcError> {
        let from = self.caller_name(me)?;
        let room = params.room.as_str().to_owned();
        let msg_id = format!("r-{}", self.log.next_offset());
        self.emit(
            RoomMessageSent {
                room: room.clone(),
                id: msg_id.clone(),
                from: from.clone(),
                body: params.text.as_str().to_owned(),
            }
            .into(),
        )?;
        let mut delivered_count = 0;
        for member in self
            .room_members(&room)
            .into_iter()
            .filter(|member| *member != me)
        {
            let mut push =
                self.message_push(MessageKind::Room, &from, params.text.as_str(), &msg_id);
            push.room = Some(room.clone());
            if self.push(member, push, release) {
                delivered_count += 1;
            }
        }
        to_value(&RoomPostResult {
            room,
            delivered_count,
        })
    }

    fn rooms(&self) -> Result<Value, RpcError> {
        let rooms = self
            .state
            .rooms()
            .map(|(name, room)| RoomInfo {
                name: name.to_owned(),
                members: room
                    .members()
                    .filter_map(|member| self.name_of(member))
                    .collect(),
            })
            .collect();
        to_value(&RoomsResult { rooms })
    }
}

/// Groups: persistent, with an admin; offline members catch up through history.
impl Core {
    /// The members of `group`, its admin first, then in joining order of identity.
    fn group_members(&self, group: &str) -> Vec<IdentityId> {
        self.state
            .group(group)
            .map(|group| {
                let admin = group.admin();
                std::iter::once(admin)
                    .chain(group.members().filter(|member| *member != admin))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn group_create(
        &mut self,
        me: IdentityId,
        params: GroupCreateParams,
        release: &mut Release,
    ) -> Result<Value, RpcError> {
        let admin = self.caller_name(me)?;
        let group = params.name.as_str().to_owned();
        if self.state.group(&group).is_some() {
            return Err(error(
                ErrorCode::GroupExists,
                format!("group {group:?} exists already"),
            ));
        }
        let mut invitees = Vec::new();
        for member in &params.members {
            let identity = self.identity_named(member.as_str())?;
            if identity != me && !invitees.contains(&identity) {
                invitees.push(identity);
            }
        }
        self.emit(
            GroupCreated {
                group: group.clone(),
                admin: admin.clone(),
            }
            .into(),
        )?;
        for invitee in invitees {
            let member = self.caller_name(invitee)?;
            self.emit(
                GroupMemberInvited {
                    group: group.clone(),
                    actor: admin.clone(),
                    member,
                }
                .into(),
            )?;
            self.notice(
                invitee,
                format!("you were added to group {group} by {admin}"),
                Some(&group),
                release,
            );
        }
        let members = self.names(self.group_members(&group));
        to_value(&GroupCreateResult { group, members })
    }

    fn group_invite(
        &mut self,
        me: IdentityId,
        params: GroupInviteParams,
        release: &mut Release,
    ) -> Result<Value, RpcError> {
        let actor = self.caller_name(me)?;
        let group = params.group.as_str().to_owned();
        let invitee = self.identity_named(params.peer.as_str())?;
        self.emit(
            GroupMemberInvited {
                group: group.clone(),
                actor: actor.clone(),
                member: params.peer.as_str().to_owned(),
            }
            .into(),
        )?;
        self.notice(
            invitee,
            format!("you were invited to group {group} by {actor}"),
            Some(&group),
            release,
        );
        to_value(&EmptyResult {})
    }

    fn group_remove(
        &mut self,
        me: IdentityId,
        params: GroupRemoveParams,
        release: &mut Release,
    ) -> Result<Value, RpcError> {
        let actor = self.caller_name(me)?;
        let group = params.group.as_str().to_owned();
        let removed = self.identity_named(params.peer.as_str())?;
        let reason = params.reason.as_ref().map_or_else(
            || "no reason given".to_owned(),
            |reason| reason.as_str().to_owned(),
        );
        self.emit(
            GroupMemberRemoved {
                group: group.clone(),
                actor: actor.clone(),
                member: params.peer.as_str().to_owned(),
                reason: reason.clone(),
            }
            .into(),
        )?;
        self.notice(
            removed,
            format!("you were removed from group {group} by {actor}: {reason}"),
            Some(&group),
            release,
        );
        to_value(&EmptyResult {})
    }

    fn group_delete(
        &mut self,
        me: IdentityId,
        params: GroupDeleteParams,
        release: &mut Release,
    ) -> Result<Value, RpcError> {
        let actor = self.caller_name(me)?;
        let group = params.group.as_str().to_owned();
        let members = self.group_members(&group);
        self.emit(
            GroupDeleted {
                group: group.clone(),
                actor: actor.clone(),
            }
            .into(),
        )?;
        for member in members.into_iter().filter(|member| *member != me) {
            self.notice(
                member,
                format!("group {group} was deleted by {actor}"),
                Some(&group),
                release,
            );
        }
        to_value(&EmptyResult {})
    }

    fn member_group(&self, me: IdentityId, group: &str) -> Result<&relay_replay::Group, RpcError> {
        let found = self.state.group(group).ok_or_else(|| {
            error(
                ErrorCode::GroupNotFound,
                format!("no group named {group:?}"),
            )
        })?;
        if !found.is_member(me) {
            return Err(error(
                ErrorCode::NotMember,
                format!("you are not a member of group {group:?}"),
            ));
        }
        Ok(found)
    }

    fn group_info(&self, me: IdentityId, params: GroupInfoParams) -> Result<Value, RpcError> {
        let group = self.member_group(me, params.group.as_str())?;
        let members = self
            .group_members(group.name())
            .into_iter()
            .filter_map(|member| {
                Some(GroupMember {
                    name: self.name_of(member)?,
                    online: self.online.contains_key(&member),
                })
            })
            .collect();
        to_value(&GroupInfoResult {
            group: group.name().to_owned(),
            admin: self.name_of(group.admin()).unwrap_or_default(),
            members,
            unread_count: group.unread_for(me) as u32,
        })
    }

    fn group_send(
        &mut self,
        me: IdentityId,
        params: GroupSendParams,
        release: &mut Release,
    ) -> Result<Value, RpcError> {
        let from = self.caller_name(me)?;
        let group = params.group.as_str().to_owned();
        self.member_group(me, &group)?;
        let msg_id = format!("g-{}", self.log.next_offset());
        let event = GroupMessageSent {
            group: group.clone(),
            id: msg_id.clone(),
            from: from.clone(),
            body: params.text.as_str().to_owned(),
            reply_to: params.reply_to.as_ref().map(|id| id.as_str().to_owned()),
            urgent: params.urgent,
        };
        self.emit(event.into())?;
        for member in self
            .group_members(&group)
            .into_iter()
            .filter(|member| *member != me)
        {
            let mut push =
                self.message_push(MessageKind::Group, &from, params.text.as_str(), &msg_id);
            push.group = Some(group.clone());
            push.urgent = params.urgent;
            push.reply_to = params.reply_to.as_ref().map(|id| id.as_str().to_owned());
            self.push(member, push, release);
        }
        to_value(&GroupSendResult { msg_id })
    }

    fn group_history(
        &mut self,
        me: IdentityId,
        params: GroupHistoryParams,
    ) -> Result<Value, RpcError> {
        let member = self.caller_name(me)?;
        let name = params.group.as_str().to_owned();
        let group = self.member_group(me, &name)?;
        let limit = params.limit.get() as usize;
        // Unread means after the cursor and written by someone else (as `unread_count` counts).
        let unread: Vec<_> = group
            .history_for(me, usize::MAX)
            .into_iter()
            .filter(|message| message.author != Some(me))
            .take(limit)
            .collect();
        // Nothing new: show the recent history the member may see (read again on request).
        let mut chosen = if unread.is_empty() {
            group.visible_for(me, limit)
        } else {
            unread
        };
        let sizes = chosen.iter().map(|message| {
            message.body.len() + message.author_name.as_ref().map_or(0, String::len)
        });
        chosen.truncate(fitting_in_a_frame(sizes));
        let messages: Vec<GroupMessage> = chosen
            .iter()
            .map(|message| GroupMessage {
                id: message
                    .id
                    .clone()
                    .unwrap_or_else(|| format!("s-{}", message.offset)),
                from: message
                    .author_name
                    .clone()
                    .unwrap_or_else(|| "relay".to_owned()),
                text: message.body.clone(),
                ts: message.timestamp_us,
                message_type: if message.is_system() {
                    GroupMessageType::System
                } else {
                    GroupMessageType::User
                },
            })
            .collect();
        let cursor = group
            .membership(me)
            .map_or(0, |membership| membership.cursor);
        let last = chosen.last().map(|message| message.sequence);
        if let Some(up_to_sequence) = last.filter(|sequence| *sequence > cursor) {
            self.emit(
                GroupCursorAdvanced {
                    group: name.clone(),
                    member,
                    up_to_sequence,
                }
                .into(),
            )?;
        }
        let unread_remaining = self
            .state
            .group(&name)
            .map_or(0, |group| group.unread_for(me)) as u32;
        to_value(&GroupHistoryResult {
            group: name,
            messages,
            unread_remaining,
        })
    }

    fn group_list(&self, me: IdentityId) -> Result<Value, RpcError> {
        let groups = self
            .state
            .groups_of(me)
            .map(|group| GroupSummary {
                name: group.name().to_owned(),
                unread_count: group.unread_for(me) as u32,
            })
            .collect();
        to_value(&GroupListResult { groups })
    }
}
