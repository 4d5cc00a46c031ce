//! A client of the hub protocol over the Unix socket: used by `relay mcp` and by the
//! `relay send|peers|inbox|watch` commands.
//!
//! [`HubClient::connect`] finds (or spawns) the hub, says `hello`, and starts a reader task
//! that routes responses to their calls by id, answers the hub's pings, and queues pushes and
//! receipts. When the connection drops, every waiting call and every later call fails at once
//! with `hub_unreachable`: nothing hangs. A failure after the request was written carries the
//! detail `request_written: true`, since the hub may have carried it out.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::hub::spawn::{SpawnError, SpawnOptions, connect_or_spawn};

/// Pushes and receipts queued between the connection's reader and whoever took
/// [`HubClient::take_pushes`]. Past it a push is dropped, unacknowledged, so the hub keeps it
/// unread (`relay_inbox` returns it): a consumer that stops draining cannot grow the process
/// without bound, and the reader never waits, so responses keep flowing.
pub const PUSH_QUEUE_MAX: usize = 4096;
use crate::protocol::{
    AckParams, AckStep, ClientInfo, ErrorCode, FrameDecoder, GroupName, HelloParams,
    HubNotification, Incoming, MessageId, MessageKind, MessagePush, MethodParams,
    PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN, Request, RequestId, Response, RpcError,
    VersionRange, encode_frame, parse_incoming,
};

/// How long a call waits for its response before it fails with `hub_unreachable`.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

/// A connected, greeted session.
pub struct HubClient {
    writer: Arc<Mutex<OwnedWriteHalf>>,
    pending: Pending,
    next_id: AtomicU64,
    connected: Arc<AtomicBool>,
    pushes: Option<mpsc::Receiver<HubNotification>>,
    hub_id: String,
    hub_version: String,
}

fn unreachable(message: impl Into<String>) -> RpcError {
    RpcError::new(ErrorCode::HubUnreachable, message)
}

/// The `ack` of a push, or `None` for kinds the hub does not store (room posts, notices).
///
/// # Errors
/// `bad_args` when the push's ids are not valid ids (a hub would never send such a push).
pub fn ack_params(push: &MessagePush, step: AckStep) -> Result<Option<AckParams>, RpcError> {
    if matches!(push.kind, MessageKind::Room | MessageKind::System) {
        return Ok(None);
    }
    let bad = |error: crate::protocol::FieldError| {
        RpcError::new(ErrorCode::BadArguments, error.to_string())
    };
    let group = match (&push.group, push.kind) {
        (Some(group), MessageKind::Group) => Some(GroupName::new(group.clone()).map_err(bad)?),
        _ => None,
    };
    Ok(Some(AckParams {
        msg_id: MessageId::new(push.msg_id.clone()).map_err(bad)?,
        group,
        step,
    }))
}

/// A warning when `hub_version` is not this binary's version, saying what to do; `None` when
/// they are equal.
pub fn version_skew(hub_version: &str) -> Option<String> {
    let mine = env!("CARGO_PKG_VERSION");
    (hub_version != mine).then(|| {
        format!(
            "the hub runs relay {hub_version} and this is relay {mine}; run `relay restart` \
             to serve with this binary (sessions reconnect by themselves)"
        )
    })
}

/// The detail a failure carries when the request had been written: the hub may have done it.
pub const REQUEST_WRITTEN: &str = "request_written";

/// Marks `error` as a failure after the request was written.
pub fn written(error: RpcError) -> RpcError {
    error.with_detail(REQUEST_WRITTEN, serde_json::Value::Bool(true))
}

/// Whether `error` came after the request was written (so the hub may have carried it out).
pub fn was_written(error: &RpcError) -> bool {
    error.details.iter().any(|(key, _)| key == REQUEST_WRITTEN)
}

impl HubClient {
    /// Connects to the hub of `data_dir` (spawning it if needed) and says hello.
    ///
    /// # Errors
    /// No hub could be reached or started, or the hello failed (`protocol_mismatch`).
    pub async fn connect(
        data_dir: &Path,
        spawn: &SpawnOptions,
        client: &str,
    ) -> Result<HubClient, RpcError> {
        let stream = connect_or_spawn(data_dir, spawn)
            .await
            .map_err(|error: SpawnError| unreachable(error.to_string()))?;
        HubClient::greet(stream, client).await
    }

    /// Connects to the hub that runs for `data_dir` and says hello; never starts one.
    ///
    /// # Errors
    /// `hub_unreachable` when no hub answers on the data dir's socket; the hello failed.
    pub async fn connect_running(data_dir: &Path, client: &str) -> Result<HubClient, RpcError> {
        let socket = crate::hub::spawn::socket_path(data_dir);
        let stream = tokio::net::UnixStream::connect(&socket)
            .await
            .map_err(|error| {
                unreachable(format!("no hub answers on {}: {error}", socket.display()))
            })?;
        HubClient::greet(stream, client).await
    }

    async fn greet(stream: tokio::net::UnixStream, client: &str) -> Result<HubClient, RpcError> {
        let (reader, writer) = stream.into_split();
        let (push_sender, pushes) = mpsc::channel(PUSH_QUEUE_MAX);
        let client_handle = HubClient {
            writer: Arc::new(Mutex::new(writer)),
            pending: Arc::default(),
            next_id: AtomicU64::new(1),
            connected: Arc::new(AtomicBool::new(true)),
            pushes: Some(pushes),
            hub_id: String::new(),
            hub_version: String::new(),
        };
        tokio::spawn(read_loop(
            reader,
            Arc::downgrade(&client_handle.writer),
            client_handle.pending.clone(),
            client_handle.connected.clone(),
            push_sender,
        ));
        let versions = VersionRange::new(PROTOCOL_VERSION_MIN, PROTOCOL_VERSION_MAX)
            .map_err(|error| unreachable(error.to_string()))?;
        let client_info = ClientInfo::new(client)
            .map_err(|error| RpcError::new(ErrorCode::BadArguments, error.to_string()))?;
        let hello = client_handle
            .call(HelloParams {
                versions,
                client: client_info,
            })
            .await?;
        Ok(HubClient {
            hub_id: hello.hub_id,
            hub_version: hello.hub_version,
            ..client_handle
        })
    }

    /// The hub's id, as it said in `hello`.
    pub fn hub_id(&self) -> &str {
        &self.hub_id
    }

    /// The hub's `relay` version, as it said in `hello`.
    pub fn hub_version(&self) -> &str {
        &self.hub_version
    }

    /// A warning when the hub runs another `relay` version than this binary, with what to do;
    /// `None` when they are the same.
    pub fn version_skew(&self) -> Option<String> {
        version_skew(&self.hub_version)
    }

    /// Whether the connection is still up.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Takes the stream of pushes and receipts (once). It holds at most [`PUSH_QUEUE_MAX`];
    /// past that a push is dropped here, unacknowledged, so it stays unread at the hub.
    pub fn take_pushes(&mut self) -> Option<mpsc::Receiver<HubNotification>> {
        self.pushes.take()
    }

    /// Reports what became of `push` (`ack`). Room posts and hub notices are not stored by the
    /// hub and need no acknowledgement: for those this does nothing.
    ///
    /// # Errors
    /// As [`HubClient::call`]; `bad_args` when the push's ids are not valid ids.
    pub async fn acknowledge(&self, push: &MessagePush, step: AckStep) -> Result<(), RpcError> {
        match ack_params(push, step)? {
            Some(params) => self.call(params).await.map(drop),
            None => Ok(()),
        }
    }

    /// Calls a method and waits for its typed result.
    ///
    /// # Errors
    /// The hub's error, or `hub_unreachable` if the connection is gone or the call timed out.
    ///
    /// # Cancel safety
    /// Dropping the future forgets the call; the hub may still carry it out.
    pub async fn call<P: MethodParams>(&self, params: P) -> Result<P::Result, RpcError> {
        if !self.is_connected() {
            return Err(unreachable("the connection to the hub is closed"));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        self.pending.lock().await.insert(id, answer);
        let request: Request = params.into().into_request(RequestId::Number(id as i64));
        let frame = encode_frame(&request);
        if self.writer.lock().await.write_all(&frame).await.is_err() {
            self.connected.store(false, Ordering::Release);
            self.pending.lock().await.remove(&id);
            return Err(unreachable("the connection to the hub is closed"));
        }
        match tokio::time::timeout(CALL_TIMEOUT, answered).await {
            Ok(Ok(response)) => response.into_result::<P::Result>(),
            Ok(Err(_)) => Err(written(unreachable(
                "the connection to the hub closed before it answered",
            ))),
            Err(_) => {
                self.pending.lock().await.remove(&id);
                Err(written(unreachable(format!(
                    "the hub did not answer within {CALL_TIMEOUT:?}"
                ))))
            }
        }
    }
}

async fn read_loop(
    mut reader: tokio::net::unix::OwnedReadHalf,
    writer: std::sync::Weak<Mutex<OwnedWriteHalf>>,
    pending: Pending,
    connected: Arc<AtomicBool>,
    pushes: mpsc::Sender<HubNotification>,
) {
    // Only a weak hold on the writer: dropping the client closes the connection.
    let mut decoder = FrameDecoder::new();
    let mut buffer = vec![0u8; 64 * 1024];
    // Runs until the connection closes.
    'connection: loop {
        let read = match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        decoder.push(&buffer[..read]);
        while let Some(frame) = decoder.next_frame() {
            let Ok(line) = frame else { continue };
            match parse_incoming(&line) {
                Ok(Incoming::Response(response)) => {
                    let id = match &response.id {
                        Some(RequestId::Number(id)) => *id as u64,
                        _ => continue,
                    };
                    if let Some(answer) = pending.lock().await.remove(&id) {
                        let _ = answer.send(response);
                    }
                }
                Ok(Incoming::Request(request)) => {
                    // The hub's ping (or a probe): answer at once.
                    let frame = encode_frame(&Response::result(request.id, serde_json::json!({})));
                    let Some(writer) = writer.upgrade() else {
                        break 'connection;
                    };
                    if writer.lock().await.write_all(&frame).await.is_err() {
                        break 'connection;
                    }
                }
                Ok(Incoming::Notification(notification)) => {
                    if let Ok(notification) = HubNotification::parse(&notification)
                        && let Err(mpsc::error::TrySendError::Full(dropped)) =
                            pushes.try_send(notification)
                    {
                        // Never acknowledged, so the hub keeps it: the message stays unread
                        // (a receipt is only news). Waiting here would stall every response.
                        let msg_id = match &dropped {
                            HubNotification::Message(push) => push.msg_id.as_str(),
                            HubNotification::Receipt(receipt) => receipt.msg_id.as_str(),
                        };
                        tracing::warn!(
                            msg_id,
                            "push queue full ({PUSH_QUEUE_MAX}); a push is dropped here and stays unread at the hub"
                        );
                    }
                }
                Err(_) => {}
            }
        }
    }
    connected.store(false, Ordering::Release);
    pending.lock().await.clear();
}
