//! A protocol-level fake of Claude Code's messaging socket (`CLAUDE_CODE_MESSAGING_SOCKET`), for
//! black-box tests that run `relay mcp` as if Claude Code had started it.
//!
//! It keeps the rules `clients.md` ("Native inbox socket") documents, plays one of the
//! receiver's fates per [`Mode`] (accept, hold, refuse, expire, die mid-write, stuck), and records
//! every way a sender breaks the rules, so a test can assert both what arrived and that nothing
//! was wrong. It owns a temporary `cc-socks/` directory, one listener thread, one thread per
//! connection and one per receipt; it uses std only (no tokio) because the tests that use it
//! drive the relay binary as a child process. Like every black-box helper here it never imports
//! `relay` and describes the wire in its own terms.
//!
//! Invariant: whatever the fake observes is recorded before it acts on it (closes a connection,
//! writes a receipt), so a test that sees the effect on the wire also sees the record.

use std::collections::HashMap;
use std::fs::{self, Permissions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Longest line the socket takes, in bytes, not counting its `\n` (documented: "about 1 MiB per
/// line"). A longer line is recorded as `line_too_long` and closes that connection, because
/// the rest of it cannot be told apart from the next line.
pub const LINE_BYTES_MAX: usize = 1 << 20;

/// How long a new connection has to deliver its first (auth) line (documented: 30 s). Past it
/// the connection is closed and `first_line_late` recorded.
pub const FIRST_LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an authenticated connection may stay silent before the fake closes it. Not
/// documented; it only keeps a forgotten connection from holding a thread for the whole test.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepted messages waiting for the session's next turn (documented: 50). One more is dropped
/// and recorded as `queue_full`; [`FakeClaudeSocket::drain_queue`] plays the turn that takes them.
pub const QUEUE_MESSAGES_MAX: usize = 50;

/// Window in which an identical message from the same sender is dropped as `repeat`. The
/// documentation says "a short window"; 2 s is the fake's choice.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(2);

/// In [`Mode::Expire`], the gap between the `held` and the `expired` receipt (the real dialog
/// waits 5 min; tests need it short).
pub const EXPIRE_DELAY: Duration = Duration::from_millis(200);

/// How long a receipt's writer waits for the reply listener to close after the line. The
/// listener must read one line and close; one that keeps the connection open is recorded as
/// `reply_listener_kept_open`.
pub const RECEIPT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Bound on writing a receipt line into a reply socket nobody reads.
const RECEIPT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the listener thread looks for a stop between connections. Polling, rather than
/// waking `accept` by connecting to ourselves, keeps stopping independent of the socket file.
const ACCEPT_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// What the fake session does with what it is sent. Read at the moment it matters: when a
/// connection is accepted (`Stuck`, `DieMidWrite`) and for each message line (all modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Queues the message; no receipt (silence means "not held or refused").
    Accept,
    /// Holds the message for an approval that never comes; a `held` receipt.
    Hold,
    /// Refuses the message; a `refused` receipt.
    Refuse,
    /// Holds the message, then lets it expire: a `held` receipt, then after
    /// [`FakeConfig::expire_delay`] an `expired` one.
    Expire,
    /// Reads the auth line, then closes the connection without reading the message (a session
    /// that dies mid-write).
    DieMidWrite,
    /// Accepts connections but never reads (a stuck session): the kernel buffer fills up.
    Stuck,
}

/// The fate [`Mode`] gave a message that passed validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Held,
    Refused,
    /// Held, then expired (both receipts are sent).
    Expired,
}

/// A message line that passed validation, in arrival order.
#[derive(Clone, Debug)]
pub struct Received {
    /// `msg_id` when it was a string.
    pub msg_id: Option<String>,
    /// `message.content`, never empty.
    pub content: String,
    /// `priority`, `"next"` when the line had none.
    pub priority: String,
    /// `from` exactly as sent (`"uds:/…"`), when it was a string, valid or not.
    pub from: Option<String>,
    /// The whole line.
    pub raw: Value,
    pub outcome: Outcome,
    /// Index into [`FakeClaudeSocket::connections`].
    pub connection_index: usize,
}

/// What one connection did, indexed in accept order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Its first line was an auth line with the right token.
    pub authenticated: bool,
    /// Complete lines read after the auth line, valid or not. Several user lines per connection
    /// are accepted, each on its own.
    pub message_line_count: usize,
    /// The fake closed its side (or the peer's close was seen).
    pub closed: bool,
}

/// The fake's limits; [`Default`] gives the documented values, tests shrink them.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    pub first_line_timeout: Duration,
    pub idle_timeout: Duration,
    pub line_bytes_max: usize,
    pub queue_messages_max: usize,
    pub repeat_window: Duration,
    pub expire_delay: Duration,
    pub receipt_close_timeout: Duration,
}

/// A listening fake Claude Code session. Dropping it stops every thread it started (closing
/// open connections) and removes its directory.
pub struct FakeClaudeSocket {
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    /// Holds `cc-socks/`; removed on drop, after the threads were told to stop.
    _dir: tempfile::TempDir,
}

impl Default for FakeConfig {
    fn default() -> FakeConfig {
        FakeConfig {
            first_line_timeout: FIRST_LINE_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            line_bytes_max: LINE_BYTES_MAX,
            queue_messages_max: QUEUE_MESSAGES_MAX,
            repeat_window: REPEAT_WINDOW,
            expire_delay: EXPIRE_DELAY,
            receipt_close_timeout: RECEIPT_CLOSE_TIMEOUT,
        }
    }
}

impl FakeClaudeSocket {
    /// Binds `<tempdir>/cc-socks/<pid>.sock` with a random token and the documented limits.
    /// The pid is this test process's, which is the process that serves the socket, as it would
    /// be for a real session.
    pub fn start(mode: Mode) -> FakeClaudeSocket {
        FakeClaudeSocket::start_with(mode, FakeConfig::default())
    }

    /// Like [`FakeClaudeSocket::start`], with the limits in `config`.
    pub fn start_with(mode: Mode, config: FakeConfig) -> FakeClaudeSocket {
        let dir = tempfile::Builder::new()
            .prefix("cc")
            .tempdir()
            .expect("a temporary directory for the fake Claude Code socket");
        let socket_dir = dir.path().join("cc-socks");
        fs::create_dir(&socket_dir).expect("create cc-socks/");
        // Only the user may connect, as with the real socket directory.
        fs::set_permissions(&socket_dir, Permissions::from_mode(0o700)).expect("chmod cc-socks/");
        let socket_path = socket_dir.join(format!("{}.sock", std::process::id()));
        // sun_path holds 108 bytes, and reply sockets in the same directory need room too.
        assert!(
            socket_path.as_os_str().len() < 80,
            "the fake's socket path is too long for a Unix socket: {socket_path:?} (set TMPDIR)"
        );
        let listener = UnixListener::bind(&socket_path).expect("bind the fake Claude Code socket");
        listener
            .set_nonblocking(true)
            .expect("a nonblocking listener");
        let shared = Arc::new(Shared {
            config,
            socket_path,
            token: hex(&random_bytes::<16>()),
            session_id: random_uuid(),
            state: Mutex::new(State::new(mode)),
            changed: Condvar::new(),
        });
        let acceptor = thread::Builder::new()
            .name("fake-claude-accept".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || accept_loop(&shared, &listener)
            })
            .expect("spawn the fake's listener thread");
        FakeClaudeSocket {
            shared,
            acceptor: Some(acceptor),
            _dir: dir,
        }
    }

    pub fn socket_path(&self) -> &Path {
        &self.shared.socket_path
    }

    /// The directory reply sockets must live in.
    pub fn socket_dir(&self) -> &Path {
        self.shared.socket_dir()
    }

    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The fake session's id: a line whose `session_id` differs from it is dropped.
    pub fn session_id(&self) -> &str {
        &self.shared.session_id
    }

    /// The two environment variables a child of Claude Code inherits.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "CLAUDE_CODE_MESSAGING_SOCKET".to_owned(),
                self.shared.socket_path.display().to_string(),
            ),
            (
                "CLAUDE_CODE_MESSAGING_TOKEN".to_owned(),
                self.shared.token.clone(),
            ),
        ]
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared.update(|state| state.mode = mode);
    }

    pub fn config(&self) -> &FakeConfig {
        &self.shared.config
    }

    /// Waits until at least `count` messages passed validation (whatever their [`Outcome`]), up
    /// to `timeout`; returns all of them, fewer than `count` if the time ran out.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        self.shared
            .wait_until(timeout, |state| state.received.len() >= count)
            .received
            .clone()
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().received.clone()
    }

    /// Connections whose first line was not an auth line with the right token.
    pub fn auth_failures(&self) -> usize {
        self.shared.lock().auth_failures
    }

    /// Rule breaks and drops seen, in order, each `"<code>: <detail>"`. Codes: `bad_json`,
    /// `not_an_object`, `wrong_type`, `not_auth_line`, `content_not_a_string`, `empty_content`,
    /// `bad_priority`, `session_id_mismatch`, `bad_from`, `repeat`, `queue_full`,
    /// `line_too_long`, `first_line_late`, `partial_line`, `stalled_mid_line`, `read_failed`,
    /// `receipt_connect_failed`, `receipt_write_failed`, `reply_listener_kept_open`, and the
    /// fake's own trouble: `accept_failed`, `spawn_failed`.
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }

    /// Waits until at least `count` violations were recorded, up to `timeout`; returns them all.
    pub fn wait_for_violations(&self, count: usize, timeout: Duration) -> Vec<String> {
        self.shared
            .wait_until(timeout, |state| state.violations.len() >= count)
            .violations
            .clone()
    }

    /// Receipts written, as `(orig_msg_id, status)`, in order.
    pub fn receipts_sent(&self) -> Vec<(String, String)> {
        self.shared.lock().receipts.clone()
    }

    /// Waits until at least `count` receipts were written, up to `timeout`; returns them all.
    pub fn wait_for_receipts(&self, count: usize, timeout: Duration) -> Vec<(String, String)> {
        self.shared
            .wait_until(timeout, |state| state.receipts.len() >= count)
            .receipts
            .clone()
    }

    /// One entry per accepted connection, in accept order.
    pub fn connections(&self) -> Vec<ConnectionStats> {
        self.shared.lock().connections.clone()
    }

    /// Plays the session's next turn: empties the accepted queue, returns how many it held.
    pub fn drain_queue(&self) -> usize {
        self.shared
            .update(|state| std::mem::take(&mut state.queued_count))
    }

    /// Stops listening and closes every connection, but leaves the socket file behind, like a
    /// killed Claude Code: later connects fail with `ECONNREFUSED` while the file exists.
    pub fn kill_leaving_socket(&mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.update(|state| state.stopped = true);
        if let Some(acceptor) = self.acceptor.take() {
            // The listener is dropped (never unlinked: std does not) when its thread returns.
            if acceptor.join().is_err() {
                self.shared
                    .violation("accept_failed: the listener thread panicked".into());
            }
        }
        // Shutting down (not just dropping the clones) wakes the connection threads, which hold
        // their own handles to the same sockets.
        self.shared.update(|state| {
            for (index, stream) in std::mem::take(&mut state.live) {
                let _ = stream.shutdown(Shutdown::Both);
                state.connections[index].closed = true;
            }
        });
    }
}

impl Drop for FakeClaudeSocket {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What every thread of one fake shares.
struct Shared {
    config: FakeConfig,
    socket_path: PathBuf,
    token: String,
    session_id: String,
    state: Mutex<State>,
    /// Notified on every change to `state`, for the `wait_for*` methods and stop.
    changed: Condvar,
}

struct State {
    mode: Mode,
    stopped: bool,
    received: Vec<Received>,
    /// Invariant: `queued_count <= config.queue_messages_max`.
    queued_count: usize,
    auth_failures: usize,
    violations: Vec<String>,
    receipts: Vec<(String, String)>,
    connections: Vec<ConnectionStats>,
    /// A handle to each open connection, so stopping can shut it down; a stuck connection's
    /// only handle.
    live: HashMap<usize, UnixStream>,
    /// Messages that passed within the repeat window, for the repeat check.
    recent: Vec<RecentMessage>,
}

struct RecentMessage {
    sender: String,
    content: String,
    at: Instant,
}

/// A user line that passed the checks that drop a frame.
struct Frame {
    msg_id: Option<String>,
    content: String,
    priority: String,
    raw: Value,
}

enum LineRead {
    Line(Vec<u8>),
    /// The peer closed between lines.
    End,
    /// The peer closed after this many bytes of an unfinished line.
    Partial(usize),
    TooLong,
    /// The deadline passed with this many bytes of an unfinished line.
    TimedOut(usize),
    Failed(io::Error),
}

enum AuthProblem {
    /// A well-formed auth line with another token.
    BadToken,
    /// Not an auth line at all: also a violation.
    NotAuth(String),
}

impl State {
    fn new(mode: Mode) -> State {
        State {
            mode,
            stopped: false,
            received: Vec::new(),
            queued_count: 0,
            auth_failures: 0,
            violations: Vec::new(),
            receipts: Vec::new(),
            connections: Vec::new(),
            live: HashMap::new(),
            recent: Vec::new(),
        }
    }
}

impl Shared {
    fn socket_dir(&self) -> &Path {
        self.socket_path
            .parent()
            .expect("the socket path is <dir>/cc-socks/<pid>.sock")
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide what the fake recorded from the others.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update<T>(&self, change: impl FnOnce(&mut State) -> T) -> T {
        let result = change(&mut self.lock());
        self.changed.notify_all();
        result
    }

    fn violation(&self, violation: String) {
        self.update(|state| state.violations.push(violation));
    }

    fn is_stopped(&self) -> bool {
        self.lock().stopped
    }

    fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&State) -> bool,
    ) -> MutexGuard<'_, State> {
        let (state, _) = self
            .changed
            .wait_timeout_while(self.lock(), timeout, |state| !done(state))
            .unwrap_or_else(PoisonError::into_inner);
        state
    }

    /// Sleeps `delay` unless stopped first; says whether the fake still runs.
    fn pause(&self, delay: Duration) -> bool {
        !self.wait_until(delay, |state| state.stopped).stopped
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &UnixListener) {
    // Runs until the fake stops; each connection gets its own thread so none can block it.
    while !shared.is_stopped() {
        match listener.accept() {
            Ok((stream, _)) => register_connection(shared, stream),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(ACCEPT_POLL_INTERVAL);
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                shared.violation(format!("accept_failed: {error}"));
                thread::sleep(ACCEPT_POLL_INTERVAL);
            }
        }
    }
}

fn register_connection(shared: &Arc<Shared>, stream: UnixStream) {
    // Accepted sockets do not inherit the listener's O_NONBLOCK on Linux; make sure anyway,
    // since every read below relies on read timeouts.
    if let Err(error) = stream.set_nonblocking(false) {
        shared.violation(format!("accept_failed: blocking mode: {error}"));
        return;
    }
    let clone = stream.try_clone();
    let index = shared.update(|state| {
        let index = state.connections.len();
        state.connections.push(ConnectionStats::default());
        if let Ok(clone) = clone {
            state.live.insert(index, clone);
        }
        index
    });
    let spawned = thread::Builder::new()
        .name(format!("fake-claude-connection-{index}"))
        .spawn({
            let shared = Arc::clone(shared);
            move || serve_connection(&shared, index, stream)
        });
    if let Err(error) = spawned {
        shared.violation(format!("spawn_failed: connection {index}: {error}"));
    }
}

fn serve_connection(shared: &Arc<Shared>, index: usize, stream: UnixStream) {
    let mode = shared.lock().mode;
    if mode == Mode::Stuck {
        park_connection(shared, index, stream);
        return;
    }
    if let Some(stream) = serve_lines(shared, index, stream, mode) {
        park_connection(shared, index, stream);
        return;
    }
    // Recorded before this thread's handle (the last one) closes the socket.
    shared.update(|state| {
        state.live.remove(&index);
        state.connections[index].closed = true;
    });
}

/// Keeps a connection open without ever reading it, until the fake stops.
fn park_connection(shared: &Shared, index: usize, stream: UnixStream) {
    shared.update(|state| {
        if state.stopped {
            let _ = stream.shutdown(Shutdown::Both);
            state.connections[index].closed = true;
        } else {
            state.live.insert(index, stream);
        }
    });
}

/// Reads the auth line and then message lines until the connection ends. Returns the stream
/// when the connection must stay open unread (the mode turned [`Mode::Stuck`]).
fn serve_lines(
    shared: &Arc<Shared>,
    index: usize,
    stream: UnixStream,
    mode: Mode,
) -> Option<UnixStream> {
    let config = &shared.config;
    let mut reader = BufReader::new(stream);
    let deadline = Instant::now() + config.first_line_timeout;
    let line = match read_line(&mut reader, deadline, config.line_bytes_max) {
        LineRead::Line(line) => line,
        ended => {
            record_read_end(shared, index, &ended, true);
            return None;
        }
    };
    match check_auth(&line, &shared.token) {
        Ok(()) => shared.update(|state| state.connections[index].authenticated = true),
        Err(problem) => {
            shared.update(|state| {
                state.auth_failures += 1;
                if let AuthProblem::NotAuth(detail) = problem {
                    state
                        .violations
                        .push(format!("not_auth_line: connection {index}: {detail}"));
                }
            });
            return None;
        }
    }
    if mode == Mode::DieMidWrite {
        return None;
    }
    // Ends at the peer's close, a timeout, an oversized line, or a stop (which shuts the
    // socket down under the read).
    loop {
        let deadline = Instant::now() + config.idle_timeout;
        let line = match read_line(&mut reader, deadline, config.line_bytes_max) {
            LineRead::Line(line) => line,
            ended => {
                record_read_end(shared, index, &ended, false);
                return None;
            }
        };
        let mode = shared.update(|state| {
            state.connections[index].message_line_count += 1;
            state.mode
        });
        match mode {
            Mode::Stuck => return Some(reader.into_inner()),
            Mode::DieMidWrite => return None,
            Mode::Accept | Mode::Hold | Mode::Refuse | Mode::Expire => {
                handle_message_line(shared, index, &line, mode);
            }
        }
    }
}

fn record_read_end(shared: &Shared, index: usize, ended: &LineRead, is_first_line: bool) {
    let violation = match ended {
        LineRead::Line(_) | LineRead::End => return,
        LineRead::Partial(bytes) => {
            format!("partial_line: connection {index} closed after {bytes} bytes of a line")
        }
        LineRead::TooLong => format!(
            "line_too_long: connection {index}: over {} bytes",
            shared.config.line_bytes_max
        ),
        LineRead::TimedOut(_) if is_first_line => format!(
            "first_line_late: connection {index}: no line within {:?}",
            shared.config.first_line_timeout
        ),
        LineRead::TimedOut(0) => return,
        LineRead::TimedOut(bytes) => {
            format!("stalled_mid_line: connection {index} stopped after {bytes} bytes")
        }
        LineRead::Failed(error) => format!("read_failed: connection {index}: {error}"),
    };
    // A stop shuts sockets down under their reads; what that looks like is not the sender's.
    shared.update(|state| {
        if !state.stopped {
            state.violations.push(violation);
        }
    });
}

fn handle_message_line(shared: &Arc<Shared>, index: usize, line: &[u8], mode: Mode) {
    let frame = match parse_frame(line, &shared.session_id) {
        Ok(frame) => frame,
        Err(violation) => {
            shared.violation(format!("{violation} (connection {index})"));
            return;
        }
    };
    let from = frame.raw.get("from");
    let reply_path = from.and_then(|from| match reply_path(from, shared.socket_dir()) {
        Ok(path) => Some(path),
        Err(why) => {
            shared.violation(format!("bad_from: connection {index}: {from}: {why}"));
            None
        }
    });
    let from = from.and_then(Value::as_str).map(str::to_owned);
    // Receipts go to the process that wrote the frame, so the reply path stands for the sender
    // (std cannot read SO_PEERCRED); without one, the connection does.
    let sender = from
        .clone()
        .unwrap_or_else(|| format!("connection {index}"));
    let msg_id = frame.msg_id.clone();
    let config = &shared.config;
    let outcome = shared.update(|state| {
        state
            .recent
            .retain(|recent| recent.at.elapsed() < config.repeat_window);
        if state
            .recent
            .iter()
            .any(|recent| recent.sender == sender && recent.content == frame.content)
        {
            state.violations.push(format!(
                "repeat: connection {index}: same content from {sender} within {:?}",
                config.repeat_window
            ));
            return None;
        }
        let outcome = match mode {
            Mode::Hold => Outcome::Held,
            Mode::Refuse => Outcome::Refused,
            Mode::Expire => Outcome::Expired,
            Mode::Accept | Mode::DieMidWrite | Mode::Stuck => {
                if state.queued_count >= config.queue_messages_max {
                    state.violations.push(format!(
                        "queue_full: connection {index}: {} messages queued",
                        state.queued_count
                    ));
                    return None;
                }
                state.queued_count += 1;
                Outcome::Accepted
            }
        };
        state.recent.push(RecentMessage {
            sender,
            content: frame.content.clone(),
            at: Instant::now(),
        });
        state.received.push(Received {
            msg_id: frame.msg_id,
            content: frame.content,
            priority: frame.priority,
            from,
            raw: frame.raw,
            outcome,
            connection_index: index,
        });
        Some(outcome)
    });
    let (Some(outcome), Some(path), Some(msg_id)) = (outcome, reply_path, msg_id) else {
        return;
    };
    if outcome == Outcome::Accepted {
        return;
    }
    let spawned = thread::Builder::new()
        .name(format!("fake-claude-receipt-{index}"))
        .spawn({
            let shared = Arc::clone(shared);
            move || send_receipts(&shared, &path, &msg_id, outcome)
        });
    if let Err(error) = spawned {
        shared.violation(format!("spawn_failed: receipt: {error}"));
    }
}

/// Checks a user line against the rules that drop the frame; the error is the violation.
fn parse_frame(line: &[u8], session_id: &str) -> Result<Frame, String> {
    let raw: Value = serde_json::from_slice(line).map_err(|error| format!("bad_json: {error}"))?;
    if !raw.is_object() {
        return Err(format!("not_an_object: {}", kind_of(&raw)));
    }
    match raw.get("type") {
        Some(Value::String(kind)) if kind == "user" => {}
        Some(other) => return Err(format!("wrong_type: {other}")),
        None => return Err("wrong_type: missing".to_owned()),
    }
    if let Some(theirs) = raw.get("session_id")
        && theirs.as_str() != Some(session_id)
    {
        return Err(format!("session_id_mismatch: {theirs}"));
    }
    let content = match raw.pointer("/message/content") {
        Some(Value::String(content)) if content.is_empty() => {
            return Err("empty_content: message.content is \"\"".to_owned());
        }
        Some(Value::String(content)) => content.clone(),
        other => {
            return Err(format!(
                "content_not_a_string: message.content is {}",
                other.map_or("missing", kind_of)
            ));
        }
    };
    let priority = match raw.get("priority") {
        None => "next".to_owned(),
        Some(Value::String(priority)) if ["now", "next", "later"].contains(&priority.as_str()) => {
            priority.clone()
        }
        Some(other) => return Err(format!("bad_priority: {other}")),
    };
    let msg_id = raw.get("msg_id").and_then(Value::as_str).map(str::to_owned);
    Ok(Frame {
        msg_id,
        content,
        priority,
        raw,
    })
}

/// The path a receipt may go to: `uds:` + an absolute path ending in `.sock` in `socket_dir`.
/// The comparison is textual, as a receiver that does not resolve paths would make it.
fn reply_path(from: &Value, socket_dir: &Path) -> Result<PathBuf, &'static str> {
    let from = from.as_str().ok_or("not a string")?;
    let path = from
        .strip_prefix("uds:")
        .ok_or("does not start with uds:")?;
    let path = Path::new(path);
    if !path.is_absolute() {
        return Err("not an absolute path");
    }
    if !path.as_os_str().as_encoded_bytes().ends_with(b".sock") {
        return Err("does not end in .sock");
    }
    if path.parent() != Some(socket_dir) {
        return Err("not in the receiver's socket directory");
    }
    Ok(path.to_owned())
}

fn check_auth(line: &[u8], token: &str) -> Result<(), AuthProblem> {
    let value: Value = serde_json::from_slice(line)
        .map_err(|error| AuthProblem::NotAuth(format!("bad_json: {error}")))?;
    if value.get("type").and_then(Value::as_str) != Some("auth") {
        return Err(AuthProblem::NotAuth(format!(
            "type is {}",
            value.get("type").map_or("missing", kind_of)
        )));
    }
    match value.get("token").and_then(Value::as_str) {
        Some(theirs) if theirs == token => Ok(()),
        Some(_) => Err(AuthProblem::BadToken),
        None => Err(AuthProblem::NotAuth("token is not a string".to_owned())),
    }
}

/// Plays the receipts for `outcome`, each on its own connection.
fn send_receipts(shared: &Shared, path: &Path, msg_id: &str, outcome: Outcome) {
    match outcome {
        Outcome::Accepted => {}
        Outcome::Held => send_receipt(shared, path, msg_id, "held"),
        Outcome::Refused => send_receipt(shared, path, msg_id, "refused"),
        Outcome::Expired => {
            send_receipt(shared, path, msg_id, "held");
            if shared.pause(shared.config.expire_delay) {
                send_receipt(shared, path, msg_id, "expired");
            }
        }
    }
}

/// Connects to the reply socket, writes one line, and waits for the listener to close.
fn send_receipt(shared: &Shared, path: &Path, msg_id: &str, status: &str) {
    if shared.is_stopped() {
        return;
    }
    let mut receipt = json!({
        "type": "control",
        "action": "peer_message_status",
        "status": status,
        "orig_msg_id": msg_id,
    });
    if status == "refused" {
        receipt["status_detail"] = json!("refused");
    }
    let stream = match UnixStream::connect(path) {
        Ok(stream) => stream,
        Err(error) => {
            shared.violation(format!(
                "receipt_connect_failed: {}: {error}",
                path.display()
            ));
            return;
        }
    };
    let entry = (msg_id.to_owned(), status.to_owned());
    // Recorded before the write, so a test that reads the line also finds the entry.
    shared.update(|state| state.receipts.push(entry.clone()));
    let written = stream
        .set_write_timeout(Some(RECEIPT_WRITE_TIMEOUT))
        .and_then(|()| (&stream).write_all(format!("{receipt}\n").as_bytes()));
    if let Err(error) = written {
        shared.update(|state| {
            if let Some(position) = state.receipts.iter().rposition(|sent| *sent == entry) {
                state.receipts.remove(position);
            }
            state
                .violations
                .push(format!("receipt_write_failed: {}: {error}", path.display()));
        });
        return;
    }
    wait_reply_close(shared, &stream, path);
}

/// The reply listener must read one line and close; the writer keeps its side open, so a
/// listener that reads to end-of-file instead is caught here.
fn wait_reply_close(shared: &Shared, mut stream: &UnixStream, path: &Path) {
    let deadline = Instant::now() + shared.config.receipt_close_timeout;
    let mut buffer = [0_u8; 256];
    // Bounded by the deadline: every pass either ends or reads with a timeout up to it.
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() || stream.set_read_timeout(Some(remaining)).is_err() {
            break;
        }
        match stream.read(&mut buffer) {
            // Closed, or reset by a close with our line unread: either way it let go.
            Ok(0) => return,
            Err(error) if is_timeout(&error) => break,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
            Ok(_) => {}
        }
    }
    shared.violation(format!(
        "reply_listener_kept_open: {} still open {:?} after the receipt",
        path.display(),
        shared.config.receipt_close_timeout
    ));
}

/// Reads one `\n`-terminated line (without the `\n`), giving up at `deadline` or past
/// `bytes_max` bytes.
fn read_line(reader: &mut BufReader<UnixStream>, deadline: Instant, bytes_max: usize) -> LineRead {
    let mut line = Vec::new();
    // Bounded: each pass consumes bytes, ends the line, or waits no later than the deadline.
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return LineRead::TimedOut(line.len());
        }
        if let Err(error) = reader.get_ref().set_read_timeout(Some(remaining)) {
            return LineRead::Failed(error);
        }
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(error) if is_timeout(&error) => return LineRead::TimedOut(line.len()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return LineRead::Failed(error),
        };
        if available.is_empty() {
            return if line.is_empty() {
                LineRead::End
            } else {
                LineRead::Partial(line.len())
            };
        }
        let (taken, ends_line) = match available.iter().position(|&byte| byte == b'\n') {
            Some(newline) => (newline, true),
            None => (available.len(), false),
        };
        line.extend_from_slice(&available[..taken]);
        reader.consume(if ends_line { taken + 1 } else { taken });
        if line.len() > bytes_max {
            return LineRead::TooLong;
        }
        if ends_line {
            return LineRead::Line(line);
        }
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0_u8; N];
    getrandom::fill(&mut bytes).expect("the OS random source");
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A version-4 UUID in its usual spelling, as Claude Code's session ids are.
fn random_uuid() -> String {
    let mut bytes = random_bytes::<16>();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
