//! Delivery through the Codex CLI's app-server: the push path that reaches a Codex model.
//!
//! A Codex TUI (0.171) runs its threads in a shared local daemon (`codex app-server --listen
//! unix:// --managed-daemon`, started by the first TUI, left running after the TUI exits), and
//! the daemon, not the TUI, starts the thread's MCP servers, `relay mcp` among them. Any client
//! may connect to the daemon's control socket, `$CODEX_HOME/app-server-control/app-server-control.sock`
//! (a symlink into `/tmp/codex-daemon-<uid>/`), and speak its JSON-RPC (no `"jsonrpc"` member)
//! as WebSocket text frames over that Unix socket: `initialize {clientInfo}`, the `initialized`
//! notification, then `turn/start {threadId, input}`. On an idle thread that starts a turn; on a
//! thread with a turn in progress it joins that turn (the text reaches the model with its next
//! request, after the running tool call). Facts and versions: `../shared/clients.md`.
//!
//! Which thread is this session's: the one Codex named in a tool call's `_meta`
//! ([`thread_from_meta`]); until one was seen, the loaded thread whose cwd is the session's, by
//! [`select_thread`]. Each delivery opens its own connection and closes it once the app-server
//! accepted the input, so a daemon restart between messages costs nothing, and no notification
//! piles up unread on an idle connection. Every wait is bounded by [`DELIVERY_TIMEOUT`] or
//! [`PROBE_TIMEOUT`]. Relay never starts or stops the daemon: without it the error says so.
//!
//! Architecture invariant: this file knows the app-server's wire format and nothing of MCP or
//! the hub; it takes text already framed for the model.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::net::UnixStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The variable naming Codex's home directory (default `~/.codex`).
pub const CODEX_HOME_ENV: &str = "CODEX_HOME";

/// The control socket, relative to Codex's home directory.
pub const CONTROL_SOCKET_RELATIVE: &str = "app-server-control/app-server-control.sock";

/// How long one delivery may take in all (connect, handshake, `initialize`, choosing the thread,
/// `turn/start`) before it counts as failed. The real daemon answers each request within a few
/// milliseconds; a daemon that does not answer in this long is stuck.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`AppServer::probe`] may take (connect, handshake, `initialize`, `thread/read`).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long closing a connection politely may take once its work is done; past it the socket
/// is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// Largest WebSocket message accepted from the app-server. Metadata-only `thread/read`
/// answers are a few KiB; the daemon itself advertises 16 MiB
/// (`x-codex-websocket-max-unfragmented-message-bytes`).
pub const MESSAGE_BYTES_MAX: usize = 16 << 20;

/// Most pages of `thread/loaded/list` read when choosing a thread by cwd.
const LOADED_PAGES_MAX: usize = 16;

/// Most `thread/read` calls made when choosing a thread by cwd; loaded threads past it are not
/// considered.
const THREAD_READS_MAX: usize = 64;

/// The daemon starts a thread's MCP servers about 0.2 s after it creates the thread (whose id is
/// a UUIDv7 carrying that time). A same-cwd thread created at most this long before this
/// session's `relay mcp` started is taken to be the one that started it.
pub const THREAD_SPAWN_WINDOW: Duration = Duration::from_secs(5);

/// The `clientInfo.name` Relay gives the app-server (it shows in the daemon's user agent).
pub const CLIENT_NAME: &str = "relay";

/// Where a Codex daemon's control socket is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodexTarget {
    control_socket: PathBuf,
}

impl CodexTarget {
    /// The control socket under [`CODEX_HOME_ENV`], else under `~/.codex`; `None` when neither
    /// can be resolved (no `CODEX_HOME` and no `HOME`). Codex 0.171 gives its MCP servers
    /// `HOME` but not `CODEX_HOME`, so a non-default home must be set in the server's `env`.
    pub fn from_env() -> Option<CodexTarget> {
        let home = std::env::var_os(CODEX_HOME_ENV)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|value| !value.is_empty())
                    .map(|home| PathBuf::from(home).join(".codex"))
            })?;
        Some(CodexTarget::new(home.join(CONTROL_SOCKET_RELATIVE)))
    }

    /// A target at an explicit control socket path.
    pub fn new(control_socket: PathBuf) -> CodexTarget {
        CodexTarget { control_socket }
    }

    /// The control socket's path.
    pub fn socket_path(&self) -> &Path {
        &self.control_socket
    }
}

/// What became of a delivered text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The thread it went to.
    pub thread_id: String,
    /// The turn it belongs to (new, or the one it joined).
    pub turn_id: String,
    /// Whether a turn was already running (the text joined it) rather than started for it.
    pub joined: bool,
}

/// Why a delivery or probe failed. The text was not handed on; another path must carry it.
#[derive(Debug, thiserror::Error)]
pub enum CodexError {
    /// No socket file (or a dangling symlink): no Codex daemon runs for this `CODEX_HOME`.
    #[error("no Codex app-server control socket at {} (is a Codex TUI running with this CODEX_HOME? relay never starts the daemon)", .0.display())]
    NoSocket(PathBuf),
    /// The socket file is there but nothing listens: the daemon died and left it behind.
    #[error("the Codex app-server control socket at {} refuses connections (the daemon is gone; start a Codex TUI)", .0.display())]
    Refused(PathBuf),
    /// No loaded thread has this session's working directory, and no tool call named one.
    #[error("no loaded Codex thread has the working directory {} (call any relay tool from the Codex session so it names its thread)", .0.display())]
    NoThread(PathBuf),
    /// The session's thread is no longer loaded in the daemon.
    #[error("the Codex thread {0} is not loaded any more (its session ended)")]
    ThreadGone(String),
    /// The app-server did not finish within the bound. When the bound struck after
    /// `turn/start` was written, the text may have been taken all the same.
    #[error("the Codex app-server did not answer within {0:?}")]
    Timeout(Duration),
    /// The app-server answered a request with an error.
    #[error("the Codex app-server refused {method}: {message} (code {code})")]
    AppServer {
        /// The request's method.
        method: &'static str,
        /// Its JSON-RPC error code.
        code: i64,
        /// Its message.
        message: String,
    },
    /// The app-server's answer was not what this version of Relay understands.
    #[error("unexpected answer from the Codex app-server to {method}: {detail}")]
    Protocol {
        /// The request's method.
        method: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The WebSocket handshake or a frame failed (the daemon closed the connection, …).
    #[error("the connection to the Codex app-server failed: {0}")]
    WebSocket(Box<tokio_tungstenite::tungstenite::Error>),
    /// Any other failure to connect.
    #[error("connecting to the Codex app-server control socket failed: {0}")]
    Io(#[from] std::io::Error),
}

impl From<tokio_tungstenite::tungstenite::Error> for CodexError {
    fn from(error: tokio_tungstenite::tungstenite::Error) -> CodexError {
        CodexError::WebSocket(Box::new(error))
    }
}

/// A delivery path into one Codex session's thread.
pub struct AppServer {
    target: CodexTarget,
    cwd: PathBuf,
    /// When this session started, to recognise the thread created just before it.
    started: SystemTime,
    /// The session's thread, once known. A thread Codex named in `_meta` is authoritative and
    /// kept; one chosen by cwd is forgotten when it is gone, and chosen again next time.
    thread: Mutex<Option<KnownThread>>,
}

#[derive(Clone, Debug)]
struct KnownThread {
    id: String,
    named_by_codex: bool,
}

impl AppServer {
    /// Prepares delivery to the daemon at `target`, for the session working in `cwd`.
    pub fn new(target: CodexTarget, cwd: PathBuf) -> AppServer {
        AppServer {
            target,
            cwd,
            started: SystemTime::now(),
            thread: Mutex::new(None),
        }
    }

    /// The control socket messages go through.
    pub fn socket_path(&self) -> &Path {
        self.target.socket_path()
    }

    /// The session's thread as known now (named by Codex or chosen by cwd), if any.
    pub fn thread_id(&self) -> Option<String> {
        self.known().map(|thread| thread.id)
    }

    /// The thread Codex named in a tool call's `_meta` ([`thread_from_meta`]): from now on
    /// deliver there.
    pub fn note_thread(&self, thread_id: &str) {
        let mut thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if thread
            .as_ref()
            .is_some_and(|known| known.id == thread_id && known.named_by_codex)
        {
            return;
        }
        tracing::debug!(thread = thread_id, "Codex named this session's thread");
        *thread = Some(KnownThread {
            id: thread_id.to_owned(),
            named_by_codex: true,
        });
    }

    /// Hands `text` to the session's thread with `turn/start`: on an idle thread it starts a
    /// turn, on a busy one it joins the running turn (the model gets it with its next request,
    /// after the running tool call; a tool is never interrupted). `urgent` changes nothing:
    /// Codex has no earlier point to deliver at than the next request, which is where a joined
    /// text lands anyway. `turn/steer` is not used: it needs the active turn's id and fails when
    /// that turn ended in between, where `turn/start` does the right thing in either state.
    ///
    /// # Errors
    /// A [`CodexError`]: the text was not handed on. Bounded by [`DELIVERY_TIMEOUT`].
    ///
    /// # Cancel safety
    /// Dropping the future after `turn/start` was written may still deliver the text; the
    /// caller must treat it as not delivered (and may deliver it twice).
    pub async fn deliver(&self, text: &str, urgent: bool) -> Result<Delivered, CodexError> {
        let _ = urgent;
        let attempt = tokio::time::timeout(DELIVERY_TIMEOUT, self.deliver_unbounded(text)).await;
        let (delivered, connection) = match attempt {
            Ok(outcome) => outcome?,
            Err(_) => return Err(CodexError::Timeout(DELIVERY_TIMEOUT)),
        };
        // Outside the delivery's bound: the input was accepted, whatever closing does.
        connection.close().await;
        Ok(delivered)
    }

    /// Whether delivery would work now: the daemon answers and the session's thread is loaded
    /// (or, before a tool call named it, one thread has the session's cwd). One line for
    /// `relay_peers` and `relay doctor`: `Ok`, or the error saying what is missing.
    ///
    /// # Errors
    /// As [`AppServer::deliver`], bounded by [`PROBE_TIMEOUT`].
    pub async fn probe(&self) -> Result<(), CodexError> {
        let probing = async {
            let mut connection = Connection::open(&self.target).await?;
            let outcome = match self.thread_for(&mut connection).await {
                Ok(thread) => connection.thread_status(&thread.id).await.map(|_| ()),
                Err(error) => Err(error),
            };
            connection.close().await;
            outcome
        };
        match tokio::time::timeout(PROBE_TIMEOUT, probing).await {
            Ok(outcome) => outcome,
            Err(_) => Err(CodexError::Timeout(PROBE_TIMEOUT)),
        }
    }

    /// One delivery, unbounded (the caller bounds it): what became of it, and the connection
    /// to close.
    async fn deliver_unbounded(&self, text: &str) -> Result<(Delivered, Connection), CodexError> {
        let mut connection = Connection::open(&self.target).await?;
        let thread = self.thread_for(&mut connection).await?;
        let outcome = async {
            let joined = connection.thread_status(&thread.id).await? == "active";
            let turn_id = connection.turn_start(&thread.id, text).await?;
            Ok(Delivered {
                thread_id: thread.id.clone(),
                turn_id,
                joined,
            })
        }
        .await;
        if matches!(outcome, Err(CodexError::ThreadGone(_))) && !thread.named_by_codex {
            self.forget(&thread.id);
        }
        outcome.map(|delivered| (delivered, connection))
    }

    /// The known thread, else the one chosen by cwd (remembered).
    async fn thread_for(&self, connection: &mut Connection) -> Result<KnownThread, CodexError> {
        if let Some(thread) = self.known() {
            return Ok(thread);
        }
        let summaries = connection.loaded_threads().await?;
        let started_ms = unix_ms(self.started);
        let Some(id) = select_thread(&summaries, &self.cwd, started_ms) else {
            return Err(CodexError::NoThread(self.cwd.clone()));
        };
        tracing::debug!(thread = %id, cwd = %self.cwd.display(), "chose the Codex thread by cwd");
        let mut known = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A tool call may have named the thread meanwhile: that one wins.
        let thread = known.get_or_insert(KnownThread {
            id,
            named_by_codex: false,
        });
        Ok(thread.clone())
    }

    fn known(&self) -> Option<KnownThread> {
        self.thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn forget(&self, thread_id: &str) {
        let mut thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if thread.as_ref().is_some_and(|known| known.id == thread_id) {
            *thread = None;
        }
    }
}

/// The thread a `tools/call`'s `_meta` names: `x-codex-turn-metadata.thread_id` (Codex 0.171
/// sends it with every call), else `threadId` (sent beside it). `None` for any other client.
pub fn thread_from_meta(meta: &Map<String, Value>) -> Option<String> {
    let nested = meta
        .get("x-codex-turn-metadata")
        .and_then(|turn| turn.get("thread_id"))
        .and_then(Value::as_str);
    let flat = meta.get("threadId").and_then(Value::as_str);
    nested
        .or(flat)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

/// What `thread/read` says of one loaded thread, as far as choosing one goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadSummary {
    /// Its id (a UUIDv7 for threads Codex created).
    pub id: String,
    /// Its working directory.
    pub cwd: PathBuf,
    /// A helper thread (title generation, a sub-agent, ephemeral): never a session's own.
    pub is_helper: bool,
    /// Its last activity, in Unix seconds (`recencyAt`, else `updatedAt`).
    pub active_at: i64,
}

impl ThreadSummary {
    /// From a `thread/read` result's `thread`; `None` when it lacks an id or cwd.
    pub fn from_thread(thread: &Value) -> Option<ThreadSummary> {
        let id = thread.get("id")?.as_str()?.to_owned();
        let cwd = PathBuf::from(thread.get("cwd")?.as_str()?);
        let ephemeral = thread.get("ephemeral").and_then(Value::as_bool) == Some(true);
        let has_parent = thread
            .get("parentThreadId")
            .is_some_and(|parent| !parent.is_null());
        let sub_agent = thread
            .get("source")
            .is_some_and(|source| source.get("subAgent").is_some());
        let helper_source = thread
            .get("threadSource")
            .and_then(Value::as_str)
            .is_some_and(|source| source == "thread_title" || source.starts_with("subAgent"));
        let time = |key: &str| thread.get(key).and_then(Value::as_i64);
        Some(ThreadSummary {
            id,
            cwd,
            is_helper: ephemeral || has_parent || sub_agent || helper_source,
            active_at: time("recencyAt").or_else(|| time("updatedAt")).unwrap_or(0),
        })
    }
}

/// The thread of a session working in `cwd` whose `relay mcp` started at `started_ms` (Unix
/// milliseconds), among the loaded `threads`: helpers skipped; of the threads with that cwd,
/// the one created last within [`THREAD_SPAWN_WINDOW`] before the start (the daemon starts a
/// thread's MCP servers right after creating it), else the most recently active. `None` when
/// no thread has that cwd.
pub fn select_thread(threads: &[ThreadSummary], cwd: &Path, started_ms: i64) -> Option<String> {
    let cwd = comparable(cwd);
    let candidates: Vec<&ThreadSummary> = threads
        .iter()
        .filter(|thread| !thread.is_helper && comparable(&thread.cwd) == cwd)
        .collect();
    let window_ms = i64::try_from(THREAD_SPAWN_WINDOW.as_millis()).unwrap_or(i64::MAX);
    let spawned_us = candidates
        .iter()
        .filter_map(|thread| Some((uuid_v7_ms(&thread.id)?, *thread)))
        .filter(|(created_ms, _)| {
            *created_ms <= started_ms && started_ms - *created_ms <= window_ms
        })
        .max_by_key(|(created_ms, _)| *created_ms)
        .map(|(_, thread)| thread);
    spawned_us
        .or_else(|| {
            candidates
                .iter()
                .copied()
                .max_by_key(|thread| thread.active_at)
        })
        .map(|thread| thread.id.clone())
}

/// The millisecond timestamp of a UUIDv7 (its first 48 bits); `None` for any other string.
fn uuid_v7_ms(id: &str) -> Option<i64> {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || hex.as_bytes().get(12) != Some(&b'7') {
        return None;
    }
    i64::from_str_radix(hex.get(..12)?, 16).ok()
}

/// A path as compared with a thread's cwd: canonical when it exists (symlinks resolved).
fn comparable(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    })
}

/// One initialized connection to the app-server.
struct Connection {
    socket: WebSocketStream<UnixStream>,
    next_id: u64,
}

impl Connection {
    /// Connects, upgrades to WebSocket (request path `/`, `Host: localhost`, no `Origin`: the
    /// daemon's TCP listener refuses any `Origin` with 403), and initializes.
    async fn open(target: &CodexTarget) -> Result<Connection, CodexError> {
        let path = target.socket_path();
        let stream = match UnixStream::connect(path).await {
            Ok(stream) => stream,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(CodexError::NoSocket(path.to_owned()));
            }
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(CodexError::Refused(path.to_owned()));
            }
            Err(error) => return Err(CodexError::Io(error)),
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MESSAGE_BYTES_MAX))
            .max_frame_size(Some(MESSAGE_BYTES_MAX));
        let (socket, _) =
            tokio_tungstenite::client_async_with_config("ws://localhost/", stream, Some(config))
                .await?;
        let mut connection = Connection { socket, next_id: 1 };
        let client_info = json!({"clientInfo": {
            "name": CLIENT_NAME,
            "title": "Relay",
            "version": env!("CARGO_PKG_VERSION"),
        }});
        connection.request("initialize", client_info).await?;
        connection.send(json!({"method": "initialized"})).await?;
        Ok(connection)
    }

    /// Every loaded thread's summary (threads that vanish meanwhile are skipped).
    async fn loaded_threads(&mut self) -> Result<Vec<ThreadSummary>, CodexError> {
        let mut ids = Vec::new();
        let mut cursor = Value::Null;
        for _ in 0..LOADED_PAGES_MAX {
            let page = self
                .request("thread/loaded/list", json!({"cursor": cursor}))
                .await?;
            let data =
                page.get("data")
                    .and_then(Value::as_array)
                    .ok_or_else(|| CodexError::Protocol {
                        method: "thread/loaded/list",
                        detail: "no `data` array".to_owned(),
                    })?;
            ids.extend(data.iter().filter_map(Value::as_str).map(str::to_owned));
            cursor = page.get("nextCursor").cloned().unwrap_or(Value::Null);
            if cursor.is_null() {
                break;
            }
        }
        let mut summaries = Vec::new();
        for id in ids.iter().take(THREAD_READS_MAX) {
            match self.read_thread(id).await {
                Ok(thread) => summaries.extend(ThreadSummary::from_thread(&thread)),
                Err(CodexError::ThreadGone(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(summaries)
    }

    /// `thread/read` (metadata only): the thread object.
    async fn read_thread(&mut self, thread_id: &str) -> Result<Value, CodexError> {
        let result = self
            .request("thread/read", json!({"threadId": thread_id}))
            .await
            .map_err(|error| thread_gone(error, thread_id))?;
        result
            .get("thread")
            .cloned()
            .ok_or_else(|| CodexError::Protocol {
                method: "thread/read",
                detail: "no `thread`".to_owned(),
            })
    }

    /// The thread's status type (`idle`, `active`, `systemError`); `notLoaded` is an error.
    async fn thread_status(&mut self, thread_id: &str) -> Result<String, CodexError> {
        let thread = self.read_thread(thread_id).await?;
        let status = thread
            .get("status")
            .and_then(|status| status.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned();
        if status == "notLoaded" {
            return Err(CodexError::ThreadGone(thread_id.to_owned()));
        }
        Ok(status)
    }

    /// `turn/start` with one text input: the id of the turn it started or joined.
    async fn turn_start(&mut self, thread_id: &str, text: &str) -> Result<String, CodexError> {
        let params = json!({
            "threadId": thread_id,
            "input": [{"type": "text", "text": text, "text_elements": []}],
        });
        let result = self
            .request("turn/start", params)
            .await
            .map_err(|error| thread_gone(error, thread_id))?;
        result
            .get("turn")
            .and_then(|turn| turn.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| CodexError::Protocol {
                method: "turn/start",
                detail: "no `turn.id`".to_owned(),
            })
    }

    /// Sends a request and waits for its answer, skipping notifications (and requests from the
    /// server, which a client that subscribed to nothing is not asked). The caller bounds it.
    async fn request(&mut self, method: &'static str, params: Value) -> Result<Value, CodexError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"id": id, "method": method, "params": params}))
            .await?;
        // Ends when the answer comes or the connection closes; the caller's timeout bounds it.
        loop {
            let Some(frame) = self.socket.next().await else {
                return Err(CodexError::Protocol {
                    method,
                    detail: "the app-server closed the connection before answering".to_owned(),
                });
            };
            let text = match frame? {
                Message::Text(text) => text,
                Message::Close(_) => {
                    return Err(CodexError::Protocol {
                        method,
                        detail: "the app-server closed the connection before answering".to_owned(),
                    });
                }
                _ => continue,
            };
            let Ok(message) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            if message.get("method").is_some() || message.get("id") != Some(&Value::from(id)) {
                continue;
            }
            if let Some(error) = message.get("error") {
                return Err(CodexError::AppServer {
                    method,
                    code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                    message: error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("no message")
                        .to_owned(),
                });
            }
            return Ok(message.get("result").cloned().unwrap_or(Value::Null));
        }
    }

    async fn send(&mut self, message: Value) -> Result<(), CodexError> {
        self.socket.send(Message::text(message.to_string())).await?;
        Ok(())
    }

    /// Closes politely, within [`CLOSE_TIMEOUT`]; a failure changes nothing (the input was
    /// accepted already, and dropping the socket closes it anyway).
    async fn close(mut self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.socket.close(None)).await;
    }
}

/// The app-server's "thread not loaded" error (0.171: code -32600, `thread not loaded: <id>`)
/// as [`CodexError::ThreadGone`]; any other error unchanged.
fn thread_gone(error: CodexError, thread_id: &str) -> CodexError {
    match &error {
        CodexError::AppServer { message, .. }
            if message.starts_with("thread not loaded")
                || message.starts_with("thread not found") =>
        {
            CodexError::ThreadGone(thread_id.to_owned())
        }
        _ => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(id: &str, cwd: &str, helper: bool, active_at: i64) -> ThreadSummary {
        ThreadSummary {
            id: id.to_owned(),
            cwd: PathBuf::from(cwd),
            is_helper: helper,
            active_at,
        }
    }

    #[test]
    fn the_thread_comes_from_the_turn_metadata_else_thread_id() {
        // As Codex 0.171 sends it (trimmed).
        let meta = json!({"callId": "call_1", "x-codex-turn-metadata": {"session_id": "s",
            "thread_id": "01a2318d-f079-7bb3-84a0-25ee5c1eceab", "turn_id": "t"},
            "threadId": "01a2318d-f079-7bb3-84a0-25ee5c1eceab", "progressToken": 1});
        let meta = meta.as_object().expect("an object");
        assert_eq!(
            thread_from_meta(meta).as_deref(),
            Some("01a2318d-f079-7bb3-84a0-25ee5c1eceab")
        );
        let flat = json!({"threadId": "th-2"});
        assert_eq!(
            thread_from_meta(flat.as_object().expect("an object")).as_deref(),
            Some("th-2")
        );
        let claude = json!({"claudecode/toolUseId": "toolu_1", "progressToken": 3});
        assert_eq!(
            thread_from_meta(claude.as_object().expect("an object")),
            None
        );
    }

    #[test]
    fn helpers_are_recognised_from_thread_read() {
        let title = json!({"id": "a", "cwd": "/p", "ephemeral": true,
            "threadSource": "thread_title", "recencyAt": 5});
        let user = json!({"id": "b", "cwd": "/p", "ephemeral": false, "parentThreadId": null,
            "threadSource": "user", "source": "vscode", "updatedAt": 7});
        let sub = json!({"id": "c", "cwd": "/p", "source": {"subAgent": "review"}});
        assert!(
            ThreadSummary::from_thread(&title)
                .expect("parsed")
                .is_helper
        );
        let user = ThreadSummary::from_thread(&user).expect("parsed");
        assert!(!user.is_helper);
        assert_eq!(user.active_at, 7);
        assert!(ThreadSummary::from_thread(&sub).expect("parsed").is_helper);
        assert_eq!(ThreadSummary::from_thread(&json!({"id": "d"})), None);
    }

    #[test]
    fn the_thread_created_just_before_the_session_wins_else_the_latest_active() {
        // 0x01a2318c98fb ms and 0x01a2318df079 ms, as in two real thread ids.
        let first = "01a2318c-98fb-7b33-be0c-5126ad0a3ce0";
        let second = "01a2318d-f079-7bb3-84a0-25ee5c1eceab";
        let first_ms = 0x01a2_318c_98fb_i64;
        let second_ms = 0x01a2_318d_f079_i64;
        let threads = vec![
            summary(first, "/p", false, 100),
            summary(second, "/p", false, 50),
            summary("01a2318e-0000-7000-8000-000000000000", "/p", true, 999),
            summary("other", "/q", false, 1000),
        ];
        let cwd = Path::new("/p");
        assert_eq!(
            select_thread(&threads, cwd, first_ms + 200).as_deref(),
            Some(first)
        );
        assert_eq!(
            select_thread(&threads, cwd, second_ms + 200).as_deref(),
            Some(second)
        );
        // Started long after both were created (a resumed thread): the most recently active.
        assert_eq!(
            select_thread(&threads, cwd, second_ms + 600_000).as_deref(),
            Some(first)
        );
        assert_eq!(select_thread(&threads, Path::new("/none"), 0), None);
    }

    #[test]
    fn from_env_falls_back_to_home() {
        let target = CodexTarget::new(PathBuf::from("/h/.codex").join(CONTROL_SOCKET_RELATIVE));
        assert_eq!(
            target.socket_path(),
            Path::new("/h/.codex/app-server-control/app-server-control.sock")
        );
        assert_eq!(uuid_v7_ms("not-a-uuid"), None);
        assert_eq!(
            uuid_v7_ms("01a2318c-98fb-7b33-be0c-5126ad0a3ce0"),
            Some(0x01a2_318c_98fb)
        );
    }
}
