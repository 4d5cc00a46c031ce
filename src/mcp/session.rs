//! The MCP channel's session with the hub: connect (or spawn the hub), register, forward
//! pushes, and reconnect with back-off when the hub goes away.
//!
//! [`HubSession`] owns at most one live [`HubClient`] at a time. A task per connection drains
//! its pushes and hands each to the model by the best path there is: Claude Code's messaging
//! socket when `relay mcp` runs under Claude Code (acknowledged `read`: the model has it), else
//! the channel notification (acknowledged `delivered` once written: the next `relay_inbox`
//! returns it once more, marked pushed). A push no path took is not acknowledged and stays
//! unread at the hub. Room posts and notices, which the hub does not store, are kept for
//! `relay_inbox` ([`Unreturned`]) unless the socket took them. When that stream ends the connection is lost; the reconnect task then retries
//! (doubling its wait from [`RECONNECT_DELAY_MIN`] to [`RECONNECT_DELAY_MAX`]), registers under
//! the name the session had and joins its rooms again (rooms are empty after a hub restart).
//! Meanwhile tool calls never wait: they fail at once with `hub_unreachable`, and a live call
//! waits at most [`TOOL_CALL_TIMEOUT`]. Nothing here knows MCP.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, mpsc};

use std::collections::VecDeque;
use std::time::Instant;

use crate::client::{HubClient, ack_params, was_written, written};
use crate::clients::claude::messaging::{ClaudeStatus, MessagingSocket, MessagingTarget};
use crate::clients::codex::app_server::{AppServer, CodexTarget};
use crate::clients::endpoint::EndpointStep;
use crate::hub::spawn::{SpawnOptions, socket_path};
use crate::protocol::{
    AckParams, AckStep, ErrorCode, HubNotification, InboxLimit, InboxParams, MessageId,
    MessageKind, MessagePush, MethodParams, Receipt, ReceiptStatus, RegisterParams, RoomJoinParams,
    RoomName, RpcError, UnreadParams, UnreadResult,
};

use super::channel::model_text;
use super::identity::{Identity, git_branch};
use super::inbox::{InboxEntry, InboxPage, Unreturned};
use super::limits::{
    CODEX_RETRY_INTERVAL, OUTCOME_RETRY_WAIT, PENDING_MAX, RECONNECT_DELAY_MAX,
    RECONNECT_DELAY_MIN, SOCKET_SENT_REMEMBERED, TOOL_CALL_TIMEOUT, TOOLS_LISTED_GRACE,
    TOOLS_LISTED_WAIT_MAX, UNSENT_ACKS_MAX,
};
use super::pending::{Pending, Taken, TakerId};

/// The taker id of the in-process Codex pump (delivery socket connections count from 1).
const CODEX_TAKER: TakerId = 0;

/// How the session reaches and joins the hub.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The hub's data directory.
    pub data_dir: PathBuf,
    /// How to start a hub when none answers.
    pub spawn: SpawnOptions,
    /// Whether this session may start a hub at all (`false`: wait for one to appear).
    pub may_spawn: bool,
    /// What to register as.
    pub identity: Identity,
    /// The `client` of `hello`, e.g. `"relay-mcp/0.1.0"`.
    pub client_info: String,
    /// How pushes reach the model.
    pub delivery: DeliveryPlan,
}

/// The push path `relay mcp` was set up with, from `--client` and what the environment offers.
#[derive(Clone, Debug)]
pub enum DeliveryPlan {
    /// Claude Code: its messaging socket when it gave one, else the channel notification.
    Claude(Option<MessagingTarget>),
    /// Codex: `turn/start` through the app-server control socket (pull when it is not there).
    Codex(CodexTarget),
    /// A hook, plugin or extension takes pushes from the session's delivery socket.
    Endpoint(DeliveryPath),
    /// Nothing reaches the model by itself: it calls `relay_inbox`.
    Pull,
}

/// The path by which pushes reach this session's model (`docs/delivery.md` has the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryPath {
    /// Claude Code's messaging socket: reaches the model, mid-turn or idle.
    ClaudeSocket,
    /// `notifications/claude/channel`: reaches the model only where channels are enabled;
    /// `relay_inbox` returns these once more.
    Channel,
    /// Codex's app-server: `turn/start` on the session's thread, idle or busy.
    CodexAppServer,
    /// The OpenCode plugin Relay installs (`promptAsync`).
    OpenCodePlugin,
    /// The Copilot CLI extension Relay installs (`session.send`).
    CopilotExtension,
    /// Gemini CLI's `AfterAgent`/`AfterTool` hooks: at the end of a turn, urgent ones mid-turn.
    GeminiHook,
    /// Cursor's `stop` hook: at the end of a turn.
    CursorHook,
    /// None: the model reads with `relay_inbox`.
    Pull,
}

impl DeliveryPath {
    /// Its name in `relay_peers` and the logs.
    pub fn name(self) -> &'static str {
        match self {
            DeliveryPath::ClaudeSocket => "claude-socket",
            DeliveryPath::Channel => "channel-pull",
            DeliveryPath::CodexAppServer => "codex-app-server",
            DeliveryPath::OpenCodePlugin => "opencode-plugin",
            DeliveryPath::CopilotExtension => "copilot-extension",
            DeliveryPath::GeminiHook => "gemini-hook",
            DeliveryPath::CursorHook => "cursor-hook",
            DeliveryPath::Pull => "pull",
        }
    }
}

/// The session with the hub, shared by the tool handlers and the background tasks.
pub struct HubSession {
    config: SessionConfig,
    shared: Mutex<Shared>,
    unreturned: Mutex<Unreturned>,
    /// Woken when the connection is lost (or the first connect failed).
    lost: Notify,
    /// To the channel notifier. Bounded: when full, notifications are dropped, not messages.
    channel: mpsc::Sender<MessagePush>,
    /// Claude Code's messaging socket, the path that reaches the model.
    messaging: Option<MessagingSocket>,
    /// Pushes lately handed to the messaging socket, for its late receipts.
    socket_sent: Mutex<VecDeque<MessagePush>>,
    /// Held from a socket delivery until its `read` ack went out, and by a receipt's handler:
    /// a refusal can come back before that ack, and must reach the hub after it.
    socket_order: tokio::sync::Mutex<()>,
    /// Acknowledgements the hub has not confirmed, sent again after a reconnect.
    unsent_acks: Mutex<VecDeque<AckParams>>,
    /// Counts sending tool calls, for their idempotency keys.
    sending_calls: std::sync::atomic::AtomicU64,
    /// Random per process, so keys never repeat across restarts.
    key_prefix: String,
    /// When the MCP client first listed the tools (or called one); socket pushes wait for it.
    tools_listed: tokio::sync::watch::Sender<Option<Instant>>,
    /// Pushes waiting for a taker (a hook, plugin or extension, or Codex's app-server).
    pending: Mutex<Pending>,
    /// Woken when a push joins `pending` or a taker gives one back.
    pending_changed: Notify,
    /// Counts takers, for their ids.
    takers: std::sync::atomic::AtomicU64,
    /// Codex's app-server, when this session runs under Codex.
    codex: Option<AppServer>,
    /// Why Codex's app-server did not take the last message (cleared when it takes one).
    codex_failure: Mutex<Option<String>>,
    /// Stream-mode takers (the OpenCode plugin, the Copilot extension) connected now.
    streams: std::sync::atomic::AtomicUsize,
}

/// What changes as connections come and go.
#[derive(Default)]
struct Shared {
    client: Option<Arc<HubClient>>,
    /// Counts connections, so a stale forwarding task cannot drop a newer connection.
    generation: u64,
    /// The name the hub gave us last; asked for again after a reconnect.
    name: Option<String>,
    /// Rooms joined, joined again after a reconnect.
    rooms: BTreeSet<String>,
    /// Why the last connect attempt failed, for the errors of tool calls meanwhile.
    last_failure: Option<RpcError>,
}

impl HubSession {
    /// Connects and registers (spawning the hub if allowed), and starts the reconnect task.
    /// A failed first attempt is not fatal: the task keeps trying and tools report
    /// `hub_unreachable` meanwhile. Returns the session and the receiving end of the pushes to
    /// notify.
    pub async fn start(
        config: SessionConfig,
        channel_capacity: usize,
    ) -> (Arc<HubSession>, mpsc::Receiver<MessagePush>) {
        let (channel, notifications) = mpsc::channel(channel_capacity);
        let (messaging, claude_receipts) = match config.delivery.clone() {
            DeliveryPlan::Claude(Some(target)) => {
                let (socket, receipts) = MessagingSocket::start(target);
                tracing::info!(socket = %socket.socket_path().display(), "delivering through Claude Code's messaging socket");
                (Some(socket), Some(receipts))
            }
            _ => (None, None),
        };
        let codex = match &config.delivery {
            DeliveryPlan::Codex(target) => {
                let cwd = PathBuf::from(config.identity.cwd.as_str());
                tracing::info!(socket = %target.socket_path().display(), "delivering through Codex's app-server");
                Some(AppServer::new(target.clone(), cwd))
            }
            _ => None,
        };
        let session = Arc::new(HubSession {
            config,
            shared: Mutex::new(Shared::default()),
            unreturned: Mutex::new(Unreturned::default()),
            lost: Notify::new(),
            channel,
            messaging,
            socket_sent: Mutex::new(VecDeque::new()),
            socket_order: tokio::sync::Mutex::new(()),
            unsent_acks: Mutex::new(VecDeque::new()),
            sending_calls: std::sync::atomic::AtomicU64::new(0),
            key_prefix: random_hex(),
            tools_listed: tokio::sync::watch::Sender::new(None),
            pending: Mutex::new(Pending::new(PENDING_MAX)),
            pending_changed: Notify::new(),
            takers: std::sync::atomic::AtomicU64::new(CODEX_TAKER + 1),
            codex,
            codex_failure: Mutex::new(None),
            streams: std::sync::atomic::AtomicUsize::new(0),
        });
        if session.codex.is_some() {
            tokio::spawn(codex_pump(session.clone()));
        }
        if let Some(receipts) = claude_receipts {
            tokio::spawn(forward_claude_receipts(session.clone(), receipts));
        }
        match session.connect_once().await {
            Ok(name) => tracing::info!(name = %name, "registered with the hub"),
            Err(error) => {
                tracing::warn!(error = %error, "could not register with the hub at start; retrying");
                session.note_failure(&error);
                session.lost.notify_one();
            }
        }
        tokio::spawn(reconnect_loop(session.clone()));
        (session, notifications)
    }

    /// The name the hub gave this session, once registered.
    pub fn name(&self) -> Option<String> {
        lock(&self.shared).name.clone()
    }

    /// Whether a live connection is up now.
    pub fn is_connected(&self) -> bool {
        self.current().is_some()
    }

    /// The MCP client has the tool list (it listed them or called one): from now on a turn
    /// Claude Code starts for a push has the `relay_*` tools.
    pub fn note_tools_listed(&self) {
        self.tools_listed.send_if_modified(|listed| {
            if listed.is_some() {
                return false;
            }
            *listed = Some(Instant::now());
            true
        });
    }

    /// Waits until the client has listed the tools and the grace after it passed, at most
    /// [`TOOLS_LISTED_WAIT_MAX`].
    async fn wait_for_tools_listed(&self) {
        let mut listed = self.tools_listed.subscribe();
        let waited = tokio::time::timeout(TOOLS_LISTED_WAIT_MAX, listed.wait_for(Option::is_some));
        let since = match waited.await {
            Ok(Ok(since)) => *since,
            _ => {
                tracing::warn!("the MCP client has not listed the tools; pushing anyway");
                return;
            }
        };
        if let Some(since) = since {
            let ready_at = since + TOOLS_LISTED_GRACE;
            tokio::time::sleep_until(ready_at.into()).await;
        }
    }

    /// How pushes reach this session's model.
    pub fn delivery_path(&self) -> DeliveryPath {
        match &self.config.delivery {
            DeliveryPlan::Claude(_) if self.messaging.is_some() => DeliveryPath::ClaudeSocket,
            DeliveryPlan::Claude(_) => DeliveryPath::Channel,
            DeliveryPlan::Codex(_) => DeliveryPath::CodexAppServer,
            DeliveryPlan::Endpoint(path) => *path,
            DeliveryPlan::Pull => DeliveryPath::Pull,
        }
    }

    /// One sentence for `relay_peers`: when this session's model gets its messages, and what
    /// is missing if the push path is not wired.
    pub fn delivery_note(&self) -> String {
        let streams = self.streams.load(std::sync::atomic::Ordering::Relaxed);
        let waiting = lock(&self.pending).waiting();
        let note = match self.delivery_path() {
            DeliveryPath::ClaudeSocket => {
                "pushed into the conversation by Claude Code, mid-turn or idle".to_owned()
            }
            DeliveryPath::Channel => "pushed as a channel notification where channels are enabled; otherwise call relay_inbox".to_owned(),
            DeliveryPath::CodexAppServer => match lock(&self.codex_failure).clone() {
                None => "pushed into this Codex thread (turn/start), idle or busy".to_owned(),
                Some(failure) => format!("not pushed now ({failure}); call relay_inbox"),
            },
            DeliveryPath::OpenCodePlugin | DeliveryPath::CopilotExtension if streams == 0 => {
                "not pushed: the plugin/extension Relay installs is not connected (run `relay install` for this client and restart it); call relay_inbox".to_owned()
            }
            DeliveryPath::OpenCodePlugin => "pushed into the session by the OpenCode plugin (at the next step when busy)".to_owned(),
            DeliveryPath::CopilotExtension => "pushed into the session by the Copilot extension (when idle; urgent ones at once)".to_owned(),
            DeliveryPath::GeminiHook => "handed over by the AfterAgent hook when a turn ends (urgent ones after a tool call); when idle, call relay_inbox".to_owned(),
            DeliveryPath::CursorHook => "handed over by the stop hook when a turn ends; when idle, call relay_inbox".to_owned(),
            DeliveryPath::Pull => "not pushed: call relay_inbox".to_owned(),
        };
        if waiting > 0 {
            format!("{note} ({waiting} waiting)")
        } else {
            note
        }
    }

    /// A stream-mode taker connected (`true`) or went away.
    pub fn note_stream(&self, connected: bool) {
        if connected {
            self.streams
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            self.streams
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Whether pushes wait in the pending queue for a taker.
    fn holds_pushes(&self) -> bool {
        matches!(
            self.config.delivery,
            DeliveryPlan::Codex(_) | DeliveryPlan::Endpoint(_)
        )
    }

    /// Codex named the thread a tool call came from: deliver there from now on.
    pub fn note_codex_thread(&self, thread_id: &str) {
        if let Some(codex) = &self.codex {
            codex.note_thread(thread_id);
            // A thread known now may take what waited while none was.
            self.pending_changed.notify_waiters();
        }
    }

    /// A fresh id for a taker of pending pushes.
    pub fn new_taker(&self) -> TakerId {
        self.takers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// A future that completes when the pending queue changes; enable it before looking.
    pub fn pending_changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.pending_changed.notified()
    }

    /// When a refused push may be offered again, if one waits for that.
    pub fn next_retry(&self) -> Option<Instant> {
        lock(&self.pending).next_retry()
    }

    /// Hands every waiting push to `taker` (stream mode).
    pub fn take(&self, taker: TakerId) -> Vec<MessagePush> {
        lock(&self.pending).take(taker, false)
    }

    /// A hook's take at the end of a turn (see [`Pending::take_for_turn`]).
    pub fn take_for_turn(
        &self,
        taker: TakerId,
        urgent_only: bool,
        continuation: bool,
        followups_max: u32,
    ) -> Taken {
        let taken =
            lock(&self.pending).take_for_turn(taker, urgent_only, continuation, followups_max);
        if let Some(reason) = taken.refused_because {
            tracing::warn!(
                reason,
                waiting = taken.remaining,
                "a hook turn got no messages: {followups_max} turns in a row were started by the hook; they wait for a turn the user starts or relay_inbox"
            );
        }
        taken
    }

    /// What `taker` reported of `msg_id`: `read` is acknowledged to the hub; `refused` makes it
    /// wait again.
    pub fn taker_reported(self: &Arc<Self>, taker: TakerId, msg_id: &str, step: EndpointStep) {
        match step {
            EndpointStep::Read => {
                let delivered = lock(&self.pending).delivered(taker, msg_id);
                if let Some(push) = delivered {
                    let session = self.clone();
                    tokio::spawn(async move { session.handed_over(&push).await });
                }
            }
            EndpointStep::Refused => {
                if lock(&self.pending).refused(taker, msg_id) {
                    self.pending_changed.notify_waiters();
                }
            }
        }
    }

    /// `taker` went away: what it did not report waits again.
    pub fn release_taker(&self, taker: TakerId) {
        if lock(&self.pending).release(taker) > 0 {
            self.pending_changed.notify_waiters();
        }
    }

    /// Releases what `taker` holds without waking anyone; whether anything waits.
    fn release_taker_quietly(&self, taker: TakerId) -> bool {
        let mut pending = lock(&self.pending);
        pending.release(taker);
        pending.waiting() > 0
    }

    /// A push a taker handed to the model: `read` at the hub; kept room posts and notices are
    /// marked as shown for `relay_inbox`.
    async fn handed_over(&self, push: &MessagePush) {
        tracing::debug!(msg_id = %push.msg_id, path = self.delivery_path().name(), "handed to the model");
        if Unreturned::keeps(push) {
            lock(&self.unreturned).mark_pushed(&push.msg_id);
        }
        self.acknowledge(push, AckStep::Read).await;
    }

    /// A fresh idempotency key for one sending tool call.
    pub fn new_idempotency_key(&self) -> String {
        let count = self
            .sending_calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("mcp-{}-{count}", self.key_prefix)
    }

    /// Calls a sending method (its params carry an idempotency key) and answers with its true
    /// outcome: when the request reached the hub but the answer was lost (a stall, a restart),
    /// it is sent again with the same key after reconnecting, which the hub answers with the
    /// first result, for up to [`OUTCOME_RETRY_WAIT`].
    ///
    /// # Errors
    /// As [`HubSession::call`]; `outcome_unknown` when the request was written but no answer
    /// came within the wait (it may have been carried out: resending could double it).
    pub async fn call_sending<P: MethodParams + Clone>(
        &self,
        params: P,
    ) -> Result<P::Result, RpcError> {
        let first = self.call(params.clone()).await;
        let lost = match first {
            Err(error) if error.code == ErrorCode::HubUnreachable && was_written(&error) => error,
            other => return other,
        };
        tracing::warn!(error = %lost, "answer lost; resending with the same idempotency key");
        let deadline = Instant::now() + OUTCOME_RETRY_WAIT;
        // Bounded by the deadline: each pass waits a little or returns.
        while Instant::now() < deadline {
            if !self.is_connected() {
                tokio::time::sleep(RECONNECT_DELAY_MIN).await;
                continue;
            }
            match self.call(params.clone()).await {
                Err(error) if error.code == ErrorCode::HubUnreachable => {
                    tokio::time::sleep(RECONNECT_DELAY_MIN).await;
                }
                outcome => return outcome,
            }
        }
        Err(RpcError::new(
            ErrorCode::OutcomeUnknown,
            format!(
                "the hub took the request but its answer did not come back within {} s ({}); it may have been carried out. Do not resend blindly: check relay_status with a msg_id you know, or ask the peer",
                OUTCOME_RETRY_WAIT.as_secs(),
                lost.message
            ),
        ))
    }

    /// The caller's unread counts, when connected and anything is unread.
    pub async fn unread(&self) -> Option<UnreadResult> {
        self.current()?;
        let counts = self.call(UnreadParams {}).await.ok()?;
        let told = counts.refused > 0 || !counts.groups_missed.is_empty();
        (counts.total > 0 || told).then_some(counts)
    }

    /// Calls a hub method on the live connection.
    ///
    /// # Errors
    /// The hub's error; `hub_unreachable` at once when no connection is up, or when the hub
    /// does not answer within [`TOOL_CALL_TIMEOUT`] (it may still carry the request out).
    ///
    /// # Cancel safety
    /// Dropping the future forgets the call; the hub may still carry it out.
    pub async fn call<P: MethodParams>(&self, params: P) -> Result<P::Result, RpcError> {
        let Some((client, generation)) = self.current() else {
            return Err(self.unreachable());
        };
        match tokio::time::timeout(TOOL_CALL_TIMEOUT, client.call(params)).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(error)) => {
                if error.code == ErrorCode::HubUnreachable {
                    self.connection_lost(generation);
                }
                Err(error)
            }
            Err(_) => Err(written(RpcError::new(
                ErrorCode::HubUnreachable,
                format!(
                    "the hub did not answer within {TOOL_CALL_TIMEOUT:?}; it may still carry the request out"
                ),
            ))),
        }
    }

    /// The next page of `relay_inbox`: without `since_id`, the mailbox's unread messages
    /// (those only handed to a channel notification marked `pushed`) and the room posts and
    /// notices this process kept; with it, the mailbox's messages stored after that one, read
    /// or not.
    ///
    /// # Errors
    /// As [`HubSession::call`].
    pub async fn inbox(
        &self,
        limit: InboxLimit,
        since_id: Option<MessageId>,
    ) -> Result<InboxPage, RpcError> {
        let rereading = since_id.is_some();
        let params = InboxParams {
            limit,
            since_id,
            include_pushed: rereading,
        };
        let result = self.call(params).await?;
        let mut unreturned = lock(&self.unreturned);
        if rereading {
            return Ok(InboxPage {
                messages: result.messages.into_iter().map(InboxEntry::from).collect(),
                remaining: result.remaining,
                refused: result.refused,
            });
        }
        let mut page =
            unreturned.next_page(result.messages, limit.get() as usize, result.remaining);
        page.refused = result.refused;
        // The model has these now: no hook or plugin hands them over again.
        lock(&self.pending).forget(page.messages.iter().map(|entry| entry.msg_id.as_str()));
        Ok(page)
    }

    /// Records a successful rename, so a reconnect asks for the new name.
    pub fn note_renamed(&self, name: &str) {
        lock(&self.shared).name = Some(name.to_owned());
    }

    /// Records a joined room, joined again after a reconnect.
    pub fn note_joined(&self, room: &str) {
        lock(&self.shared).rooms.insert(room.to_owned());
    }

    /// Records a room left (or one the hub says we are not in).
    pub fn note_left(&self, room: &str) {
        lock(&self.shared).rooms.remove(room);
    }

    /// The live client and its generation, if a connection is up.
    fn current(&self) -> Option<(Arc<HubClient>, u64)> {
        let shared = lock(&self.shared);
        let client = shared.client.clone()?;
        client.is_connected().then_some((client, shared.generation))
    }

    /// The error of a tool call made while no connection is up: `hub_unreachable`, or the
    /// hub's refusal of the registration (e.g. `name_taken` for a fixed name held by a live
    /// session), which the reconnect task keeps retrying.
    fn unreachable(&self) -> RpcError {
        let failure = lock(&self.shared).last_failure.clone();
        match failure {
            Some(refused) if refused.code != ErrorCode::HubUnreachable => RpcError::new(
                refused.code,
                format!(
                    "not registered with the Relay hub: {}; retrying in the background",
                    refused.message
                ),
            ),
            failure => {
                let cause = failure.map_or_else(
                    || "the connection to the hub closed".to_owned(),
                    |failure| failure.message,
                );
                RpcError::new(
                    ErrorCode::HubUnreachable,
                    format!(
                        "the Relay hub is unreachable ({cause}); reconnecting in the background, retry in a few seconds"
                    ),
                )
            }
        }
    }

    fn note_failure(&self, error: &RpcError) {
        lock(&self.shared).last_failure = Some(error.clone());
    }

    /// Drops connection `generation` (if it is still the current one) and wakes the reconnect
    /// task.
    fn connection_lost(&self, generation: u64) {
        {
            let mut shared = lock(&self.shared);
            if shared.generation != generation || shared.client.is_none() {
                return;
            }
            shared.client = None;
            shared.last_failure = None;
        }
        tracing::warn!("lost the connection to the hub; reconnecting");
        self.lost.notify_one();
    }

    /// Hands one push to the model: through Claude Code's socket when there is one (then
    /// acknowledged `read`), else to the channel notifier (acknowledged `delivered` once it is
    /// written, see [`HubSession::channel_written`]). Room posts and notices the socket did not
    /// take are kept for `relay_inbox`.
    async fn receive(&self, push: MessagePush) {
        if let Some(socket) = &self.messaging {
            self.wait_for_tools_listed().await;
            let order = self.socket_order.lock().await;
            match socket
                .deliver(&push.msg_id, &model_text(&push), push.urgent)
                .await
            {
                Ok(()) => {
                    tracing::debug!(msg_id = %push.msg_id, "handed to Claude Code's messaging socket");
                    remember(
                        &mut lock(&self.socket_sent),
                        push.clone(),
                        SOCKET_SENT_REMEMBERED,
                    );
                    self.acknowledge(&push, AckStep::Read).await;
                    drop(order);
                    return;
                }
                Err(error) => {
                    tracing::warn!(msg_id = %push.msg_id, error = %error, "Claude Code's messaging socket did not take the message; falling back to the channel notification and relay_inbox");
                }
            }
        }
        if !lock(&self.unreturned).record(&push, false) {
            tracing::warn!("unreturned messages full; forgot the oldest");
        }
        if self.holds_pushes() {
            let dropped = lock(&self.pending).hold(push);
            if let Some(dropped) = dropped {
                tracing::warn!(msg_id = %dropped.msg_id, "pending queue full; the oldest push waits for relay_inbox instead");
            }
            self.pending_changed.notify_waiters();
            return;
        }
        if !matches!(self.config.delivery, DeliveryPlan::Claude(_)) {
            // No push path: the message waits unread at the hub for relay_inbox.
            return;
        }
        match self.channel.try_send(push) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(push)) => {
                tracing::warn!(msg_id = %push.msg_id, "channel queue full; notification dropped, the message stays unread");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// The channel notifier wrote `push` to the MCP client: the session took it, but whether
    /// the model saw it nobody can tell, so it is `delivered`, not read.
    pub async fn channel_written(&self, push: &MessagePush) {
        if Unreturned::keeps(push) {
            lock(&self.unreturned).mark_pushed(&push.msg_id);
        }
        self.acknowledge(push, AckStep::Delivered).await;
    }

    /// A receipt for a message this session sent: held, refused and expired ones are worth
    /// the model's attention (its peer did not get the message); the others are logged.
    async fn receipt(&self, receipt: Receipt) {
        tracing::info!(msg_id = %receipt.msg_id, to = %receipt.to, status = ?receipt.status, "receipt");
        let what = match receipt.status {
            ReceiptStatus::Held => "is held by its client, waiting for its user's approval",
            ReceiptStatus::Refused => {
                "was refused by its client; it waits unread until the peer pulls its inbox"
            }
            ReceiptStatus::Expired => {
                "expired unapproved in its client; it waits unread until the peer pulls its inbox"
            }
            ReceiptStatus::Delivered | ReceiptStatus::Read => return,
        };
        let notice = MessagePush {
            kind: MessageKind::System,
            from: "relay".to_owned(),
            text: format!("Your message {} to {} {what}.", receipt.msg_id, receipt.to),
            msg_id: format!("receipt-{}-{}", receipt.msg_id, receipt.status.name()),
            ask_id: None,
            reply_to: Some(receipt.msg_id.clone()),
            room: None,
            group: None,
            urgent: false,
            ts: receipt.ts,
            origin_hub: None,
            late: false,
        };
        Box::pin(self.receive(notice)).await;
    }

    /// What Claude Code reported of a message handed to its socket.
    async fn claude_receipt(&self, msg_id: &str, status: &ClaudeStatus) {
        let step = match status {
            ClaudeStatus::Held => AckStep::Held,
            ClaudeStatus::Refused | ClaudeStatus::Dropped => AckStep::Refused,
            ClaudeStatus::Expired => AckStep::Expired,
            ClaudeStatus::Other(other) => {
                tracing::info!(msg_id, status = %other, "unknown receipt from Claude Code");
                return;
            }
        };
        tracing::info!(msg_id, step = ?step, "Claude Code reported a message");
        // After the delivery's own `read` ack, whatever the order receipts came in.
        let _order = self.socket_order.lock().await;
        let push = lock(&self.socket_sent)
            .iter()
            .find(|push| push.msg_id == msg_id)
            .cloned();
        let Some(push) = push else {
            return;
        };
        if step != AckStep::Held && Unreturned::keeps(&push) {
            // Not stored by the hub: relay_inbox must offer it, since the model never got it.
            lock(&self.unreturned).record(&push, false);
        }
        self.acknowledge(&push, step).await;
    }

    /// Tells the hub what became of `push`; kept to send again if the connection is down.
    async fn acknowledge(&self, push: &MessagePush, step: AckStep) {
        let params = match ack_params(push, step) {
            Ok(Some(params)) => params,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(msg_id = %push.msg_id, error = %error, "cannot acknowledge");
                return;
            }
        };
        self.send_ack(params).await;
    }

    async fn send_ack(&self, params: AckParams) {
        match self.call(params.clone()).await {
            Ok(_) => {}
            Err(error) if error.code == ErrorCode::HubUnreachable => {
                remember(&mut lock(&self.unsent_acks), params, UNSENT_ACKS_MAX);
            }
            Err(error) => {
                tracing::warn!(msg_id = %params.msg_id, error = %error, "the hub refused an acknowledgement");
            }
        }
    }

    /// Sends the acknowledgements a lost connection kept.
    async fn resend_acks(&self) {
        let unsent: Vec<AckParams> = lock(&self.unsent_acks).drain(..).collect();
        for params in unsent {
            self.send_ack(params).await;
        }
    }

    /// One attempt: connect (spawning the hub when allowed), say hello, register, join the
    /// rooms again, and install the connection. Returns the registered name.
    async fn connect_once(self: &Arc<Self>) -> Result<String, RpcError> {
        let unreachable = |message: String| RpcError::new(ErrorCode::HubUnreachable, message);
        let socket = socket_path(&self.config.data_dir);
        if !self.config.may_spawn && tokio::net::UnixStream::connect(&socket).await.is_err() {
            return Err(unreachable(format!(
                "no hub answers on {}",
                socket.display()
            )));
        }
        let mut client = HubClient::connect(
            &self.config.data_dir,
            &self.config.spawn,
            &self.config.client_info,
        )
        .await?;
        let pushes = client
            .take_pushes()
            .ok_or_else(|| unreachable("the hub client gave no push stream".to_owned()))?;
        let (previous_name, rooms) = {
            let shared = lock(&self.shared);
            (shared.name.clone(), shared.rooms.clone())
        };
        let name = self.register(&client, previous_name.as_deref()).await?;
        for room in rooms {
            if let Err(error) = rejoin(&client, &room).await {
                tracing::warn!(room = %room, error = %error, "could not join the room again");
                self.note_left(&room);
            }
        }
        let generation = {
            let mut shared = lock(&self.shared);
            shared.generation += 1;
            shared.client = Some(Arc::new(client));
            shared.name = Some(name.clone());
            shared.last_failure = None;
            shared.generation
        };
        tokio::spawn(forward_pushes(self.clone(), pushes, generation));
        Ok(name)
    }

    /// Registers: under the previous name after a reconnect; when another session took that
    /// name meanwhile (and it was not a fixed one), under this identity's own rules.
    async fn register(
        &self,
        client: &HubClient,
        previous_name: Option<&str>,
    ) -> Result<String, RpcError> {
        let identity = &self.config.identity;
        let branch = git_branch(std::path::Path::new(identity.cwd.as_str())).await;
        let delivery = crate::protocol::DeliveryName::new(self.delivery_path().name()).ok();
        let params = identity.register_params(previous_name, branch.clone(), delivery.clone());
        match call_bounded(client, params).await {
            Ok(registered) => Ok(registered.name),
            Err(error)
                if error.code == ErrorCode::NameTaken
                    && previous_name.is_some()
                    && identity.name.is_none() =>
            {
                tracing::warn!(name = ?previous_name, "previous name taken; registering anew");
                let params: RegisterParams = identity.register_params(None, branch, delivery);
                Ok(call_bounded(client, params).await?.name)
            }
            Err(error) => Err(error),
        }
    }
}

/// Reconnects whenever the connection is lost. Runs for as long as the process.
async fn reconnect_loop(session: Arc<HubSession>) {
    loop {
        session.lost.notified().await;
        if session.is_connected() {
            continue;
        }
        let mut delay = RECONNECT_DELAY_MIN;
        // Bounded only by the process: a session keeps trying until the hub is back.
        loop {
            match session.connect_once().await {
                Ok(name) => {
                    tracing::info!(name = %name, "reconnected to the hub");
                    session.resend_acks().await;
                    break;
                }
                Err(error) => {
                    tracing::debug!(error = %error, "reconnect failed");
                    session.note_failure(&error);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RECONNECT_DELAY_MAX);
                }
            }
        }
    }
}

/// Drains one connection's pushes and receipts, in order; when the stream ends, that
/// connection is lost.
async fn forward_pushes(
    session: Arc<HubSession>,
    mut pushes: mpsc::Receiver<HubNotification>,
    generation: u64,
) {
    // Ends when the connection closes (the client drops its sender).
    while let Some(notification) = pushes.recv().await {
        match notification {
            HubNotification::Message(push) => session.receive(push).await,
            HubNotification::Receipt(receipt) => session.receipt(receipt).await,
        }
    }
    session.connection_lost(generation);
}

/// Passes Claude Code's receipts on to the hub, for the process's lifetime.
async fn forward_claude_receipts(
    session: Arc<HubSession>,
    mut receipts: mpsc::Receiver<crate::clients::claude::messaging::ClaudeReceipt>,
) {
    // Ends when the reply socket's listener stops.
    while let Some(receipt) = receipts.recv().await {
        session
            .claude_receipt(&receipt.msg_id, &receipt.status)
            .await;
    }
}

/// Hands pending pushes to Codex's app-server, oldest first, whenever one comes, a thread
/// becomes known, or [`CODEX_RETRY_INTERVAL`] passed with some still waiting. One that the
/// app-server does not take waits again (and `relay_inbox` returns it meanwhile).
async fn codex_pump(session: Arc<HubSession>) {
    let Some(codex) = session.codex.as_ref() else {
        return;
    };
    // Runs for as long as the process.
    loop {
        let changed = session.pending_changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let taken = session.take(CODEX_TAKER);
        for push in &taken {
            match codex.deliver(&model_text(push), push.urgent).await {
                Ok(_) => {
                    *lock(&session.codex_failure) = None;
                    lock(&session.pending).delivered(CODEX_TAKER, &push.msg_id);
                    session.handed_over(push).await;
                }
                Err(error) => {
                    *lock(&session.codex_failure) = Some(error.to_string());
                    tracing::info!(msg_id = %push.msg_id, error = %error, "Codex's app-server did not take the message; it waits (relay_inbox has it)");
                    break;
                }
            }
        }
        let waiting = session.release_taker_quietly(CODEX_TAKER);
        if waiting {
            let _ = tokio::time::timeout(CODEX_RETRY_INTERVAL, changed).await;
        } else {
            changed.await;
        }
    }
}

/// Appends `item`, dropping the oldest past `max`.
fn remember<T>(items: &mut VecDeque<T>, item: T, max: usize) {
    items.push_back(item);
    while items.len() > max {
        items.pop_front();
    }
}

/// 16 random hex digits (falls back to the time when the OS has no randomness to give).
fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64);
        bytes = (now ^ u64::from(std::process::id())).to_le_bytes();
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

async fn rejoin(client: &HubClient, room: &str) -> Result<(), RpcError> {
    let room = RoomName::new(room)
        .map_err(|error| RpcError::new(ErrorCode::BadArguments, error.to_string()))?;
    call_bounded(client, RoomJoinParams { room })
        .await
        .map(drop)
}

/// A call on a connection that is not installed yet, bounded like a tool call.
async fn call_bounded<P: MethodParams>(
    client: &HubClient,
    params: P,
) -> Result<P::Result, RpcError> {
    tokio::time::timeout(TOOL_CALL_TIMEOUT, client.call(params))
        .await
        .unwrap_or_else(|_| {
            Err(RpcError::new(
                ErrorCode::HubUnreachable,
                format!("the hub did not answer within {TOOL_CALL_TIMEOUT:?}"),
            ))
        })
}

/// Locks a mutex whose critical sections never panic; a poisoned one is still consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
