//! A protocol-level fake of the Codex CLI's app-server daemon (0.171) as reached through its
//! control socket, for tests of Relay's Codex delivery without a real Codex.
//!
//! What it keeps from the real one (observed, `shared/clients.md`): a WebSocket upgrade over a
//! Unix socket at `<codex home>/app-server-control/app-server-control.sock`, a symlink to the
//! real socket in another directory; any request path and `Host` taken; JSON-RPC without a
//! `"jsonrpc"` member; every request before `initialize` fails with `-32600 Not initialized`, a
//! second `initialize` with `Already initialized`; a `remoteControl/status/changed`
//! notification right after `initialize`; `thread/loaded/list` → `{data, nextCursor: null}`;
//! `thread/read` → `{thread: {id, cwd, ephemeral, status: {type}, threadSource, …}}` or
//! `-32600 thread not loaded: <id>`; `turn/start` on an idle thread starts a turn (the thread
//! turns `active` until the test calls [`FakeAppServer::finish_turn`]), on an active one joins
//! it (answers that turn); `turn/steer` checks `expectedTurnId`; a `thread/status/changed`
//! notification follows each change, after the answer. One deliberate difference: an `Origin`
//! header gets 403 here, as the real daemon's TCP listener does (its Unix socket took one in
//! 0.171), so a client that sends one fails loudly. [`Mode::Silent`] upgrades and then never
//! answers (a stuck daemon).
//!
//! std threads and the blocking `tungstenite`, like the other fakes here; it never imports
//! `relay`. Invariant: every input is recorded before the answer is written, so a test that
//! saw the answer sees the record.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::StatusCode;
use tungstenite::{Message, WebSocket};

/// The control socket under the fake's Codex home, as the real daemon lays it out.
pub const CONTROL_SOCKET_RELATIVE: &str = "app-server-control/app-server-control.sock";

/// How often a connection's thread looks up from a blocked read to see whether the fake is gone.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How the fake behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// As the real daemon.
    Normal,
    /// Takes the WebSocket upgrade, reads everything, answers nothing.
    Silent,
}

/// One input the fake was given (`turn/start` or `turn/steer`), as it took it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// `turn/start` or `turn/steer`.
    pub method: String,
    /// The thread named.
    pub thread_id: String,
    /// The texts of its text inputs, joined by newlines.
    pub text: String,
    /// What it did: `started`, `joined`, `steered`, or `refused: <message>`.
    pub outcome: String,
    /// The turn it started or joined (empty when refused).
    pub turn_id: String,
}

/// What one connection's upgrade request carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// The request path.
    pub path: String,
    /// The `Host` header, if any.
    pub host: Option<String>,
    /// The `Origin` header, if any (answered 403).
    pub origin: Option<String>,
}

/// The fake daemon; stopped (socket removed, threads ended) when dropped.
pub struct FakeAppServer {
    home: tempfile::TempDir,
    real_socket: PathBuf,
    state: Arc<Mutex<State>>,
    stopping: Arc<AtomicBool>,
    listener: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct State {
    mode: Option<Mode>,
    threads: Vec<Thread>,
    inputs: Vec<Input>,
    handshakes: Vec<Handshake>,
    /// Every request's method, in order, over all connections.
    requests: Vec<String>,
    turns: u64,
}

#[derive(Clone, Debug)]
struct Thread {
    id: String,
    cwd: String,
    ephemeral: bool,
    thread_source: String,
    loaded: bool,
    active_turn: Option<String>,
    recency_at: i64,
}

impl FakeAppServer {
    /// A fake daemon for a fresh Codex home; `mode` says how it behaves.
    pub fn start(mode: Mode) -> FakeAppServer {
        let home = tempfile::tempdir().expect("a temp dir for the fake Codex home");
        let daemon_dir = home.path().join("codex-daemon");
        std::fs::create_dir_all(&daemon_dir).expect("the fake daemon dir");
        std::fs::create_dir_all(home.path().join("app-server-control")).expect("the control dir");
        let real_socket = daemon_dir.join("37af353d34d7");
        let listener = UnixListener::bind(&real_socket).expect("bind the fake control socket");
        std::os::unix::fs::symlink(&real_socket, home.path().join(CONTROL_SOCKET_RELATIVE))
            .expect("the control socket symlink");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let state = Arc::new(Mutex::new(State {
            mode: Some(mode),
            ..State::default()
        }));
        let stopping = Arc::new(AtomicBool::new(false));
        let accepting = {
            let state = state.clone();
            let stopping = stopping.clone();
            thread::spawn(move || accept_loop(listener, state, stopping))
        };
        FakeAppServer {
            home,
            real_socket,
            state,
            stopping,
            listener: Some(accepting),
        }
    }

    /// The fake's Codex home (for `CODEX_HOME`).
    pub fn codex_home(&self) -> &Path {
        self.home.path()
    }

    /// The control socket path clients use (the symlink).
    pub fn socket_path(&self) -> PathBuf {
        self.home.path().join(CONTROL_SOCKET_RELATIVE)
    }

    /// Adds a loaded, idle user thread working in `cwd`, created now; returns its id (a UUIDv7).
    pub fn add_thread(&self, cwd: &Path) -> String {
        self.add_thread_with(cwd, now_ms(), false, "user")
    }

    /// Adds a loaded idle thread created at `created_ms` (Unix ms, in its UUIDv7 id), ephemeral
    /// or not, with that `threadSource` (`user`, `thread_title`, …).
    pub fn add_thread_with(
        &self,
        cwd: &Path,
        created_ms: i64,
        ephemeral: bool,
        thread_source: &str,
    ) -> String {
        let mut state = self.lock();
        let id = uuid_v7(created_ms, state.threads.len() as u64);
        let recency_at = created_ms / 1000;
        state.threads.push(Thread {
            id: id.clone(),
            cwd: cwd.to_string_lossy().into_owned(),
            ephemeral,
            thread_source: thread_source.to_owned(),
            loaded: true,
            active_turn: None,
            recency_at,
        });
        id
    }

    /// Starts a turn on the thread as its TUI's user would; returns the turn id.
    pub fn make_busy(&self, thread_id: &str) -> String {
        let mut state = self.lock();
        let turn = next_turn(&mut state);
        let thread = find(&mut state, thread_id).expect("a thread of the fake");
        thread.active_turn = Some(turn.clone());
        turn
    }

    /// Ends the thread's running turn (it is idle again).
    pub fn finish_turn(&self, thread_id: &str) {
        let mut state = self.lock();
        if let Some(thread) = find(&mut state, thread_id) {
            thread.active_turn = None;
        }
    }

    /// Sets the thread's last activity (`recencyAt`, Unix seconds).
    pub fn touch(&self, thread_id: &str, recency_at: i64) {
        let mut state = self.lock();
        if let Some(thread) = find(&mut state, thread_id) {
            thread.recency_at = recency_at;
        }
    }

    /// Unloads the thread: it leaves `thread/loaded/list`, and `thread/read`/`turn/start` on it
    /// fail with `thread not loaded`.
    pub fn close_thread(&self, thread_id: &str) {
        let mut state = self.lock();
        if let Some(thread) = find(&mut state, thread_id) {
            thread.loaded = false;
            thread.active_turn = None;
        }
    }

    /// The thread's running turn, if any.
    pub fn active_turn(&self, thread_id: &str) -> Option<String> {
        let mut state = self.lock();
        find(&mut state, thread_id).and_then(|thread| thread.active_turn.clone())
    }

    /// Every input taken so far, in order.
    pub fn inputs(&self) -> Vec<Input> {
        self.lock().inputs.clone()
    }

    /// Every connection's upgrade request so far.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.lock().handshakes.clone()
    }

    /// Every request's method so far, over all connections.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// The daemon dies: its socket file is removed (the control symlink dangles, as after a
    /// real daemon's exit) and no connection is taken any more.
    pub fn kill(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.real_socket);
    }

    fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(listener) = self.listener.take() {
            let _ = listener.join();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FakeAppServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: UnixListener, state: Arc<Mutex<State>>, stopping: Arc<AtomicBool>) {
    let mut connections = Vec::new();
    while !stopping.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let state = state.clone();
                let stopping = stopping.clone();
                connections.push(thread::spawn(move || serve(stream, &state, &stopping)));
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => break,
        }
    }
    for connection in connections {
        let _ = connection.join();
    }
}

#[expect(
    clippy::result_large_err,
    reason = "tungstenite's handshake callback returns its own ErrorResponse"
)]
fn serve(stream: UnixStream, state: &Arc<Mutex<State>>, stopping: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let recorded = state.clone();
    let callback = move |request: &Request, response: Response| {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let handshake = Handshake {
            path: request.uri().path().to_owned(),
            host: header("host"),
            origin: header("origin"),
        };
        let refused = handshake.origin.is_some();
        lock(&recorded).handshakes.push(handshake);
        if refused {
            let mut forbidden = ErrorResponse::new(Some("Forbidden".to_owned()));
            *forbidden.status_mut() = StatusCode::FORBIDDEN;
            return Err(forbidden);
        }
        Ok(response)
    };
    let Ok(mut socket) = tungstenite::accept_hdr(stream, callback) else {
        return;
    };
    let _ = socket.get_ref().set_read_timeout(Some(POLL_INTERVAL));
    let mut initialized = false;
    while !stopping.load(Ordering::SeqCst) {
        let text = match socket.read() {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(_)) => return,
            Ok(_) => continue,
            Err(tungstenite::Error::Io(error))
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return,
        };
        let Ok(message) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        if lock(state).mode == Some(Mode::Silent) {
            continue;
        }
        let (Some(id), Some(method)) = (message.get("id"), message["method"].as_str()) else {
            continue; // a notification (`initialized`) or an answer
        };
        lock(state).requests.push(method.to_owned());
        let (answer, notifications) = answer(state, &mut initialized, method, &message["params"]);
        let reply = match answer {
            Ok(result) => json!({"id": id, "result": result}),
            Err(message) => json!({"id": id, "error": {"code": -32600, "message": message}}),
        };
        if write(&mut socket, &reply).is_err() {
            return;
        }
        for notification in notifications {
            if write(&mut socket, &notification).is_err() {
                return;
            }
        }
    }
}

type Answer = (Result<Value, String>, Vec<Value>);

fn answer(state: &Mutex<State>, initialized: &mut bool, method: &str, params: &Value) -> Answer {
    if method == "initialize" {
        if *initialized {
            return (Err("Already initialized".to_owned()), Vec::new());
        }
        *initialized = true;
        let name = params["clientInfo"]["name"].as_str().unwrap_or("?");
        let result = json!({"userAgent": format!("codex-tui/0.171.0 (fake) ({name})"),
            "codexHome": "/fake", "platformFamily": "unix", "platformOs": "linux"});
        let remote = json!({"method": "remoteControl/status/changed",
            "params": {"status": "disabled"}});
        return (Ok(result), vec![remote]);
    }
    if !*initialized {
        return (Err("Not initialized".to_owned()), Vec::new());
    }
    let mut state = lock(state);
    let thread_id = params["threadId"].as_str().unwrap_or_default().to_owned();
    match method {
        "thread/loaded/list" => {
            let data: Vec<&str> = state
                .threads
                .iter()
                .filter(|thread| thread.loaded)
                .map(|thread| thread.id.as_str())
                .collect();
            (Ok(json!({"data": data, "nextCursor": null})), Vec::new())
        }
        "thread/read" => match loaded(&mut state, &thread_id) {
            Ok(thread) => (Ok(json!({"thread": thread_json(thread)})), Vec::new()),
            Err(error) => (Err(error), Vec::new()),
        },
        "turn/start" | "turn/steer" => turn(&mut state, method, &thread_id, params),
        other => (
            Err(format!("Invalid request: unknown variant `{other}`")),
            Vec::new(),
        ),
    }
}

fn turn(state: &mut State, method: &str, thread_id: &str, params: &Value) -> Answer {
    let text = params["input"]
        .as_array()
        .map(|inputs| {
            inputs
                .iter()
                .filter(|input| input["type"] == "text")
                .filter_map(|input| input["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let fresh_turn = next_turn(state);
    let outcome = match loaded(state, thread_id) {
        Err(error) => Err(error),
        Ok(thread) => match (method, thread.active_turn.clone()) {
            ("turn/start", None) => {
                thread.active_turn = Some(fresh_turn.clone());
                Ok(("started", fresh_turn))
            }
            ("turn/start", Some(active)) => Ok(("joined", active)),
            (_, None) => Err("no active turn to steer".to_owned()),
            (_, Some(active)) => {
                let expected = params["expectedTurnId"].as_str().unwrap_or_default();
                if expected == active {
                    Ok(("steered", active))
                } else {
                    Err(format!(
                        "expected active turn id `{expected}` but found `{active}`"
                    ))
                }
            }
        },
    };
    let (outcome_name, turn_id) = match &outcome {
        Ok((name, turn)) => ((*name).to_owned(), turn.clone()),
        Err(error) => (format!("refused: {error}"), String::new()),
    };
    state.inputs.push(Input {
        method: method.to_owned(),
        thread_id: thread_id.to_owned(),
        text,
        outcome: outcome_name,
        turn_id: turn_id.clone(),
    });
    match outcome {
        Err(error) => (Err(error), Vec::new()),
        Ok(("started", turn)) => {
            let changed = json!({"method": "thread/status/changed", "params": {
                "threadId": thread_id, "status": {"type": "active", "activeFlags": []}}});
            (Ok(turn_json(&turn)), vec![changed])
        }
        Ok(("steered", turn)) => (Ok(json!({"turnId": turn})), Vec::new()),
        Ok((_, turn)) => (Ok(turn_json(&turn)), Vec::new()),
    }
}

fn turn_json(turn: &str) -> Value {
    json!({"turn": {"id": turn, "rootTurnId": turn, "items": [], "itemsView": "notLoaded",
        "status": "inProgress", "error": null, "startedAt": null, "completedAt": null,
        "durationMs": null}})
}

fn thread_json(thread: &Thread) -> Value {
    let status = match thread.active_turn {
        Some(_) => json!({"type": "active", "activeFlags": []}),
        None => json!({"type": "idle"}),
    };
    json!({"id": thread.id, "sessionId": thread.id, "cwd": thread.cwd,
        "environments": [{"environmentId": "local", "cwd": thread.cwd}],
        "ephemeral": thread.ephemeral, "parentThreadId": null, "forkedFromId": null,
        "preview": "", "historyMode": "paginated", "modelProvider": "fake", "model": "fake-model",
        "createdAt": thread.recency_at, "updatedAt": thread.recency_at,
        "recencyAt": thread.recency_at, "status": status, "path": null, "cliVersion": "0.171.0",
        "originator": "codex-tui", "source": "vscode", "canAcceptDirectInput": true,
        "threadSource": thread.thread_source, "name": null, "turns": []})
}

fn loaded<'a>(state: &'a mut State, thread_id: &str) -> Result<&'a mut Thread, String> {
    match find(state, thread_id) {
        Some(thread) if thread.loaded => Ok(thread),
        _ => Err(format!("thread not loaded: {thread_id}")),
    }
}

fn find<'a>(state: &'a mut State, thread_id: &str) -> Option<&'a mut Thread> {
    state
        .threads
        .iter_mut()
        .find(|thread| thread.id == thread_id)
}

fn next_turn(state: &mut State) -> String {
    state.turns += 1;
    uuid_v7(now_ms(), 1000 + state.turns)
}

fn write(socket: &mut WebSocket<UnixStream>, value: &Value) -> tungstenite::Result<()> {
    socket.send(Message::text(value.to_string()))
}

/// A UUIDv7-shaped id carrying `ms` (its first 48 bits), made unique by `serial`.
pub fn uuid_v7(ms: i64, serial: u64) -> String {
    let ms = ms as u64 & 0xffff_ffff_ffff;
    format!(
        "{:08x}-{:04x}-7000-8000-{:012x}",
        ms >> 16,
        ms & 0xffff,
        serial & 0xffff_ffff_ffff
    )
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}
