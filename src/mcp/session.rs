//! The MCP channel's session with the hub: connect (or spawn the hub), register, forward
//! pushes, and reconnect with back-off when the hub goes away.
//!
//! [`HubSession`] owns at most one live [`HubClient`] at a time. A task per connection drains
//! its pushes: each is kept for `relay_inbox` ([`Unreturned`]) and queued for the channel
//! notifier. When that stream ends the connection is lost; the reconnect task then retries
//! (doubling its wait from [`RECONNECT_DELAY_MIN`] to [`RECONNECT_DELAY_MAX`]), registers under
//! the name the session had and joins its rooms again (rooms are empty after a hub restart).
//! Meanwhile tool calls never wait: they fail at once with `hub_unreachable`, and a live call
//! waits at most [`TOOL_CALL_TIMEOUT`]. Nothing here knows MCP.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, mpsc};

use crate::client::HubClient;
use crate::hub::spawn::{SpawnOptions, socket_path};
use crate::protocol::{
    ErrorCode, InboxLimit, InboxParams, MessageId, MessagePush, MethodParams, RegisterParams,
    RoomJoinParams, RoomName, RpcError,
};

use super::identity::{Identity, git_branch};
use super::inbox::{InboxEntry, InboxPage, Unreturned};
use super::limits::{RECONNECT_DELAY_MAX, RECONNECT_DELAY_MIN, TOOL_CALL_TIMEOUT};

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
        let session = Arc::new(HubSession {
            config,
            shared: Mutex::new(Shared::default()),
            unreturned: Mutex::new(Unreturned::default()),
            lost: Notify::new(),
            channel,
        });
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
            Err(_) => Err(RpcError::new(
                ErrorCode::HubUnreachable,
                format!(
                    "the hub did not answer within {TOOL_CALL_TIMEOUT:?}; it may still carry the request out"
                ),
            )),
        }
    }

    /// The next page of `relay_inbox`: without `since_id`, every message this session
    /// received and `relay_inbox` has not returned yet (pushed or still queued at the hub);
    /// with it, the mailbox's messages stored after that one, read or not.
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
            let ids: Vec<&str> = result.messages.iter().map(|m| m.msg_id.as_str()).collect();
            unreturned.forget(&ids);
            return Ok(InboxPage {
                messages: result.messages.into_iter().map(InboxEntry::from).collect(),
                remaining: result.remaining,
            });
        }
        Ok(unreturned.next_page(result.messages, limit.get() as usize, result.remaining))
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

    /// Keeps a push for `relay_inbox` and queues it for the channel notifier.
    fn receive(&self, push: MessagePush) {
        if !lock(&self.unreturned).record(&push) {
            tracing::warn!("unreturned messages full; forgot the oldest");
        }
        match self.channel.try_send(push) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(push)) => {
                tracing::warn!(msg_id = %push.msg_id, "channel queue full; notification dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
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
        let params = identity.register_params(previous_name, branch.clone());
        match call_bounded(client, params).await {
            Ok(registered) => Ok(registered.name),
            Err(error)
                if error.code == ErrorCode::NameTaken
                    && previous_name.is_some()
                    && identity.name.is_none() =>
            {
                tracing::warn!(name = ?previous_name, "previous name taken; registering anew");
                let params: RegisterParams = identity.register_params(None, branch);
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

/// Drains one connection's pushes; when the stream ends, that connection is lost.
async fn forward_pushes(
    session: Arc<HubSession>,
    mut pushes: mpsc::UnboundedReceiver<MessagePush>,
    generation: u64,
) {
    // Ends when the connection closes (the client drops its sender).
    while let Some(push) = pushes.recv().await {
        session.receive(push);
    }
    session.connection_lost(generation);
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
