//! The hub under test and the sessions that talk to it, in the suite's own words.
//!
//! [`Hub`] runs the real `relay hub` binary on a fresh data dir and kills it on drop.
//! [`Session`] is one client connection over either transport (a line per message on the
//! Unix socket, a text frame per message on the WebSocket). It speaks plain JSON: nothing
//! here imports the crate, so the wire is described only by what the tests send and expect.
//! While a session waits for a response it answers the hub's `ping` requests and keeps the
//! `message` notifications it sees for the test to inspect.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tungstenite::Message;
use tungstenite::protocol::WebSocket;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

/// How long anything the hub should do at once may take before a test fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// Pause between two looks while polling for a condition.
const POLL: Duration = Duration::from_millis(50);

/// `FRAME_BYTES_MAX`: the largest frame, without its line ending.
pub(crate) const FRAME_BYTES_MAX: usize = 1 << 20;
/// `TEXT_BYTES_MAX`: the longest `text`, `question` or `reason`.
pub(crate) const TEXT_BYTES_MAX: usize = 64 << 10;
/// `NAME_BYTES_MAX`: the longest peer, room or group name.
pub(crate) const NAME_BYTES_MAX: usize = 64;

/// The error-code table of the spec: name and JSON-RPC number.
const ERROR_CODES: &[(&str, i64)] = &[
    ("bad_msg", -32600),
    ("unknown_method", -32601),
    ("bad_args", -32602),
    ("unexpected", -32603),
    ("frame_too_large", -32001),
    ("protocol_mismatch", -32002),
    ("hello_required", -32003),
    ("unauthorized", -32004),
    ("not_registered", -32005),
    ("already_registered", -32006),
    ("name_taken", -32007),
    ("peer_not_found", -32008),
    ("ask_not_found", -32009),
    ("not_member", -32010),
    ("already_member", -32011),
    ("not_admin", -32012),
    ("group_not_found", -32013),
    ("group_exists", -32014),
    ("limit_reached", -32015),
    ("rate_limited", -32016),
    ("storage_error", -32017),
    ("hub_unreachable", -32018),
    ("name_reserved", -32019),
    ("outcome_unknown", -32020),
    ("mailbox_full", -32021),
    ("storage_full", -32022),
];

/// The documented JSON-RPC number of an error code name.
fn error_number(code: &str) -> i64 {
    ERROR_CODES
        .iter()
        .find(|(name, _)| *name == code)
        .map(|(_, number)| *number)
        .unwrap_or_else(|| panic!("`{code}` is not in the spec's error-code table"))
}

/// Microseconds since the Unix epoch, the wire's timestamp.
pub(crate) fn now_us() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    u64::try_from(since.as_micros()).expect("timestamps fit in u64")
}

/// The two transports a client may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// `<data dir>/hub.sock`, one JSON object per line.
    Unix,
    /// `ws://127.0.0.1:<ws.port>`, one JSON object per text frame, `auth` first.
    WebSocket,
}

/// A `relay hub` process on its own data dir; killed and waited for on drop.
pub(crate) struct Hub {
    child: Option<Child>,
    extra_args: Vec<String>,
    // Dropped after the child is killed (fields drop in order after `Drop::drop`).
    dir: tempfile::TempDir,
}

impl Hub {
    /// A hub with default settings.
    pub(crate) fn start() -> Hub {
        Hub::start_with(&[])
    }

    /// A hub with extra `relay hub` flags, e.g. `["--ping-interval", "1"]`.
    pub(crate) fn start_with(extra_args: &[&str]) -> Hub {
        let dir = tempfile::tempdir().expect("a temporary data dir");
        let mut hub = Hub {
            child: None,
            extra_args: extra_args.iter().map(|arg| (*arg).to_owned()).collect(),
            dir,
        };
        hub.spawn();
        hub
    }

    /// A hub on `dir`, a data dir the test prepared (a log written beforehand, say).
    #[allow(dead_code, reason = "hub_identities uses it; hub_conformance does not")]
    pub(crate) fn start_in(dir: tempfile::TempDir, extra_args: &[&str]) -> Hub {
        let mut hub = Hub {
            child: None,
            extra_args: extra_args.iter().map(|arg| (*arg).to_owned()).collect(),
            dir,
        };
        hub.spawn();
        hub
    }

    /// The data dir (`--data-dir`).
    pub(crate) fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `<data dir>/hub.sock`.
    pub(crate) fn socket_path(&self) -> PathBuf {
        self.data_dir().join("hub.sock")
    }

    /// The process id of the running hub.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("the hub runs").id()
    }

    /// A `relay hub` command for this data dir with this hub's flags.
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_relay"));
        command
            .arg("hub")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--idle-exit", "0", "--ws-port", "0"])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        command
    }

    fn spawn(&mut self) {
        // A port file left by an earlier run would name a port nobody listens on.
        let _ = std::fs::remove_file(self.data_dir().join("ws.port"));
        let mut child = self
            .command()
            .stderr(Stdio::inherit())
            .spawn()
            .expect("`relay hub` starts");
        let deadline = Instant::now() + DEADLINE;
        loop {
            let ready = UnixStream::connect(self.socket_path()).is_ok()
                && std::fs::read_to_string(self.data_dir().join("ws.port"))
                    .is_ok_and(|port| port.trim().parse::<u16>().is_ok());
            if ready {
                break;
            }
            if let Some(status) = child.try_wait().expect("the hub can be waited for") {
                panic!("`relay hub` exited during startup with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "`relay hub` did not accept connections on {} within {DEADLINE:?}",
                self.socket_path().display()
            );
            thread::sleep(POLL);
        }
        self.child = Some(child);
    }

    /// Sends SIGTERM and waits for the hub to exit.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the hub runs");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("`kill` runs");
        assert!(status.success(), "`kill -TERM` failed: {status}");
        wait_with_deadline(&mut child, "the hub after SIGTERM")
    }

    /// Sends SIGKILL and reaps the hub: no shutdown work runs.
    #[allow(
        dead_code,
        reason = "federation_hubs uses it; hub_conformance does not"
    )]
    pub(crate) fn kill(&mut self) {
        let mut child = self.child.take().expect("the hub runs");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the hub again after [`Hub::terminate`], on the same data dir.
    pub(crate) fn start_again(&mut self) {
        self.spawn();
    }

    /// Stops the hub with SIGTERM and starts it again on the same data dir.
    pub(crate) fn restart(&mut self) {
        let status = self.terminate();
        assert!(status.success(), "the hub exited with {status} on SIGTERM");
        self.start_again();
    }

    /// `next_offset` as `relay log info --format json` reports it: where the next record goes.
    pub(crate) fn log_next_offset(&self) -> u64 {
        let mut command = Command::new(env!("CARGO_BIN_EXE_relay"));
        command
            .args(["log", "info", "--format", "json", "--data-dir"])
            .arg(self.data_dir());
        let output = run_with_deadline(command);
        assert!(
            output.status.success(),
            "`relay log info` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let info: Value =
            serde_json::from_slice(&output.stdout).expect("`relay log info` prints JSON");
        info["next_offset"]
            .as_u64()
            .unwrap_or_else(|| panic!("no next_offset in {info}"))
    }

    /// A connection over `transport`; on the WebSocket it has authenticated already.
    pub(crate) fn connect(&self, transport: Transport) -> Session {
        match transport {
            Transport::Unix => self.connect_unix(),
            Transport::WebSocket => {
                let mut session = self.connect_websocket_unauthenticated();
                let token = self.ws_token();
                session.call("auth", json!({ "token": token }));
                session
            }
        }
    }

    /// A connection that has sent a successful `hello`.
    pub(crate) fn greeted(&self, transport: Transport) -> Session {
        let mut session = self.connect(transport);
        let hello = session.call("hello", hello_params(1, 1));
        assert_eq!(hello["version"], 1, "hello negotiates version 1: {hello}");
        session
    }

    /// A session registered under the fixed name `name`.
    pub(crate) fn join(&self, transport: Transport, name: &str) -> Session {
        let mut session = self.greeted(transport);
        let registered = session.call("register", register_params(name));
        assert_eq!(registered["name"], name, "register takes the fixed name");
        session
    }

    /// A raw Unix-socket connection.
    pub(crate) fn connect_unix(&self) -> Session {
        let stream = UnixStream::connect(self.socket_path()).expect("connect to hub.sock");
        stream
            .set_write_timeout(Some(DEADLINE))
            .expect("set a write timeout");
        Session::new(Connection::Unix {
            stream,
            received: Vec::new(),
        })
    }

    /// A WebSocket connection that has not sent anything yet.
    pub(crate) fn connect_websocket_unauthenticated(&self) -> Session {
        let port = std::fs::read_to_string(self.data_dir().join("ws.port"))
            .expect("the hub writes ws.port");
        let port: u16 = port.trim().parse().expect("ws.port holds a port number");
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the WebSocket");
        stream
            .set_read_timeout(Some(DEADLINE))
            .expect("set a read timeout");
        stream
            .set_write_timeout(Some(DEADLINE))
            .expect("set a write timeout");
        let (socket, _) = tungstenite::client(format!("ws://127.0.0.1:{port}/"), stream)
            .expect("WebSocket handshake");
        Session::new(Connection::WebSocket(Box::new(socket)))
    }

    /// The token in `<data dir>/ws.token`.
    pub(crate) fn ws_token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("ws.token"))
            .expect("the hub writes ws.token")
            .trim()
            .to_owned()
    }
}

/// Lines of a hub's log printed when a test fails while the hub is up.
const LOG_TAIL_LINES: usize = 80;

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A failing test's data dir is deleted with it: keep what its hub said.
        if thread::panicking() {
            let path = self.data_dir().join("logs").join("hub.log");
            if let Ok(text) = std::fs::read_to_string(&path) {
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
                eprintln!("--- last {} lines of {} ---", tail.len(), path.display());
                for line in tail {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// Waits for `child` to exit, killing it and failing the test after [`DEADLINE`].
fn wait_with_deadline(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {DEADLINE:?}");
        }
        thread::sleep(POLL);
    }
}

/// Runs `command` to completion, failing the test if it takes longer than [`DEADLINE`].
pub(crate) fn run_with_deadline(mut command: Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    // Small outputs only: read them after the exit so the pipes cannot fill up first.
    let status = wait_with_deadline(&mut child, "the command");
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut stdout).expect("read stdout");
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_end(&mut stderr).expect("read stderr");
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// `hello` params for a client that speaks `min..=max`.
pub(crate) fn hello_params(min: u32, max: u32) -> Value {
    json!({ "versions": { "min": min, "max": max }, "client": "conformance/0.1.0" })
}

/// `register` params with the fixed name `name`.
pub(crate) fn register_params(name: &str) -> Value {
    json!({ "name": name, "cwd": format!("/src/{name}"), "client": "cli" })
}

enum Connection {
    Unix {
        stream: UnixStream,
        /// Bytes read but not yet cut into lines.
        received: Vec<u8>,
    },
    WebSocket(Box<WebSocket<TcpStream>>),
}

/// What reading one frame gave.
enum Incoming {
    Frame(Value),
    Closed,
}

/// One client connection to the hub.
pub(crate) struct Session {
    connection: Connection,
    next_id: u64,
    pushes: VecDeque<Value>,
    receipts: VecDeque<Value>,
    responses: Vec<Value>,
}

impl Session {
    fn new(connection: Connection) -> Session {
        Session {
            connection,
            next_id: 1,
            pushes: VecDeque::new(),
            receipts: VecDeque::new(),
            responses: Vec::new(),
        }
    }

    /// Sends one message: a line on the socket, a text frame on the WebSocket.
    pub(crate) fn send_text(&mut self, text: &str) {
        match &mut self.connection {
            Connection::Unix { stream, .. } => {
                let mut line = text.as_bytes().to_vec();
                line.push(b'\n');
                stream.write_all(&line).expect("write to the hub");
            }
            Connection::WebSocket(socket) => {
                socket.send(Message::text(text)).expect("send a text frame")
            }
        }
    }

    /// Writes bytes as they are to the Unix socket (no line ending is added).
    pub(crate) fn send_bytes(&mut self, bytes: &[u8]) {
        match &mut self.connection {
            Connection::Unix { stream, .. } => stream.write_all(bytes).expect("write to the hub"),
            Connection::WebSocket(_) => panic!("send_bytes is for the Unix socket"),
        }
    }

    /// Sends a WebSocket binary frame.
    pub(crate) fn send_binary(&mut self, bytes: &[u8]) {
        match &mut self.connection {
            Connection::WebSocket(socket) => socket
                .send(Message::binary(bytes.to_vec()))
                .expect("send a binary frame"),
            Connection::Unix { .. } => panic!("send_binary is for the WebSocket"),
        }
    }

    /// Sends `text` as one message split in two halves: two writes on the socket, a text frame
    /// and its continuation on the WebSocket.
    pub(crate) fn send_text_in_two_parts(&mut self, text: &str) {
        let (first, second) = text.split_at(text.len() / 2);
        match &mut self.connection {
            Connection::Unix { stream, .. } => {
                stream
                    .write_all(first.as_bytes())
                    .expect("write to the hub");
                stream.flush().expect("flush");
                thread::sleep(POLL);
                stream
                    .write_all(format!("{second}\n").as_bytes())
                    .expect("write to the hub");
            }
            Connection::WebSocket(socket) => {
                let start = Frame::message(first.to_owned(), OpCode::Data(Data::Text), false);
                let end = Frame::message(second.to_owned(), OpCode::Data(Data::Continue), true);
                socket
                    .send(Message::Frame(start))
                    .expect("send a first fragment");
                socket
                    .send(Message::Frame(end))
                    .expect("send the last fragment");
            }
        }
    }

    /// Closes the writing side of the Unix socket; the hub may still answer.
    pub(crate) fn shut_down_writing(&mut self) {
        match &mut self.connection {
            Connection::Unix { stream, .. } => stream
                .shutdown(std::net::Shutdown::Write)
                .expect("shut down writing"),
            Connection::WebSocket(_) => panic!("shut_down_writing is for the Unix socket"),
        }
    }

    fn read_frame(&mut self, deadline: Instant) -> Option<Incoming> {
        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        match &mut self.connection {
            Connection::Unix { stream, received } => loop {
                if let Some(end) = received.iter().position(|byte| *byte == b'\n') {
                    let line: Vec<u8> = received.drain(..=end).collect();
                    let value = serde_json::from_slice(&line).unwrap_or_else(|error| {
                        panic!(
                            "the hub sent a line that is not JSON ({error}): {}",
                            String::from_utf8_lossy(&line)
                        )
                    });
                    return Some(Incoming::Frame(value));
                }
                if Instant::now() >= deadline {
                    return None;
                }
                let remaining = deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1));
                stream
                    .set_read_timeout(Some(remaining))
                    .expect("set a read timeout");
                let mut buffer = [0u8; 64 * 1024];
                match stream.read(&mut buffer) {
                    Ok(0) => return Some(Incoming::Closed),
                    Ok(read) => received.extend_from_slice(&buffer[..read]),
                    Err(error)
                        if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                    {
                        return None;
                    }
                    Err(error) if error.kind() == ErrorKind::ConnectionReset => {
                        return Some(Incoming::Closed);
                    }
                    Err(error) => panic!("reading from the hub failed: {error}"),
                }
            },
            Connection::WebSocket(socket) => {
                socket
                    .get_mut()
                    .set_read_timeout(Some(remaining))
                    .expect("set a read timeout");
                loop {
                    match socket.read() {
                        Ok(Message::Text(text)) => {
                            let value =
                                serde_json::from_str(text.as_str()).unwrap_or_else(|error| {
                                    panic!(
                                        "the hub sent a frame that is not JSON ({error}): {text}"
                                    )
                                });
                            return Some(Incoming::Frame(value));
                        }
                        Ok(Message::Close(_)) => return Some(Incoming::Closed),
                        Ok(Message::Binary(_)) => panic!("the hub sent a binary frame"),
                        Ok(_) => {}
                        Err(tungstenite::Error::Io(error))
                            if matches!(
                                error.kind(),
                                ErrorKind::WouldBlock | ErrorKind::TimedOut
                            ) =>
                        {
                            return None;
                        }
                        Err(_) => return Some(Incoming::Closed),
                    }
                }
            }
        }
    }

    /// Reads one frame: answers a hub `ping` (returning `true`), keeps a push, or keeps a
    /// response. `None` when nothing arrived before `deadline`; panics when the hub closed.
    fn pump(&mut self, deadline: Instant, answer_pings: bool) -> Option<bool> {
        match self.read_frame(deadline)? {
            Incoming::Closed => panic!("the hub closed the connection"),
            Incoming::Frame(frame) => {
                assert_eq!(
                    frame["jsonrpc"], "2.0",
                    "every frame carries jsonrpc 2.0: {frame}"
                );
                match (frame.get("method"), frame.get("id")) {
                    (Some(method), Some(id)) => {
                        assert_eq!(method, "ping", "the hub's only request is ping: {frame}");
                        assert!(id.is_string(), "the hub pings with a string id: {frame}");
                        if answer_pings {
                            let pong = json!({ "jsonrpc": "2.0", "id": id, "result": {} });
                            self.send_text(&pong.to_string());
                        }
                        Some(true)
                    }
                    (Some(method), None) if method == "receipt" => {
                        self.receipts.push_back(frame["params"].clone());
                        Some(false)
                    }
                    (Some(method), None) => {
                        assert_eq!(method, "message", "the hub pushes `message`: {frame}");
                        self.pushes.push_back(frame["params"].clone());
                        Some(false)
                    }
                    (None, _) => {
                        self.responses.push(frame);
                        Some(false)
                    }
                }
            }
        }
    }

    /// Sends a request with the next integer id without waiting; returns the id.
    pub(crate) fn send_request(&mut self, method: &str, params: Value) -> Value {
        let id = json!(self.next_id);
        self.next_id += 1;
        let request = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        self.send_text(&request.to_string());
        id
    }

    /// The response with this id (`null` for responses to unreadable frames), waiting for it.
    pub(crate) fn response(&mut self, id: &Value) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(index) = self.responses.iter().position(|frame| frame["id"] == *id) {
                return self.responses.remove(index);
            }
            if self.pump(deadline, true).is_none() {
                panic!("no response with id {id} within {DEADLINE:?}");
            }
        }
    }

    /// The next response, whatever its id.
    pub(crate) fn next_response(&mut self) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if !self.responses.is_empty() {
                return self.responses.remove(0);
            }
            if self.pump(deadline, true).is_none() {
                panic!("no response within {DEADLINE:?}");
            }
        }
    }

    /// Sends a request and returns the whole response frame.
    pub(crate) fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        self.response(&id)
    }

    /// Sends a request that must succeed; returns its `result`.
    pub(crate) fn call(&mut self, method: &str, params: Value) -> Value {
        let response = self.request(method, params);
        match response.get("result") {
            Some(result) if response.get("error").is_none() => {
                assert!(result.is_object(), "a result is an object: {response}");
                result.clone()
            }
            _ => panic!("`{method}` failed: {response}"),
        }
    }

    /// Sends a request that must fail with `code`; returns the `error` object.
    pub(crate) fn fail(&mut self, method: &str, params: Value, code: &str) -> Value {
        let id = self.send_request(method, params);
        let response = self.response(&id);
        expect_error(&response, &id, code)
    }

    /// The next push (`message` notification params), waiting for it.
    pub(crate) fn push(&mut self) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(push) = self.pushes.pop_front() {
                assert_push_shape(&push);
                return push;
            }
            if self.pump(deadline, true).is_none() {
                panic!("no push within {DEADLINE:?}");
            }
        }
    }

    /// Waits until every push released before now has arrived: two pings answered by the
    /// hub in order, so anything queued for this session before them is read by then.
    pub(crate) fn settle(&mut self) {
        for _ in 0..2 {
            self.call("ping", json!({}));
        }
    }

    /// No push is waiting for this session.
    /// The next `receipt` notification, waiting for it.
    pub(crate) fn receipt(&mut self) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(receipt) = self.receipts.pop_front() {
                return receipt;
            }
            if self.pump(deadline, true).is_none() {
                panic!("no receipt within {DEADLINE:?}");
            }
        }
    }

    /// Acknowledges a pushed message as a well-behaved client does: `step` is `delivered`,
    /// `read`, `held`, `refused` or `expired`.
    pub(crate) fn ack(&mut self, push: &Value, step: &str) {
        let mut params = json!({ "msg_id": push["msg_id"], "step": step });
        if let Some(group) = push["group"].as_str().filter(|_| push["kind"] == "group") {
            params["group"] = json!(group);
        }
        self.call("ack", params);
    }

    pub(crate) fn assert_no_push(&mut self) {
        self.settle();
        assert!(
            self.pushes.is_empty(),
            "unexpected pushes: {:?}",
            self.pushes
        );
    }

    /// Reads until the hub has pinged this session and the ping was answered.
    pub(crate) fn answer_a_ping(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.pump(deadline, true) {
                Some(true) => return,
                Some(false) => {}
                None => panic!("the hub sent no ping within {DEADLINE:?}"),
            }
        }
    }

    /// Reads, answering nothing, until the hub closes the connection.
    pub(crate) fn expect_closed(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.read_frame(deadline) {
                Some(Incoming::Closed) => return,
                Some(Incoming::Frame(_)) => {}
                None => panic!("the hub did not close the connection within {DEADLINE:?}"),
            }
        }
    }

    /// The caller's view of `name` in `peers`.
    pub(crate) fn peer(&mut self, name: &str) -> Value {
        let peers = self.call("peers", json!({}));
        peers["peers"]
            .as_array()
            .expect("peers is a list")
            .iter()
            .find(|peer| peer["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} is not in {peers}"))
    }

    /// Polls `peers` until `name` is listed offline.
    pub(crate) fn wait_until_offline(&mut self, name: &str) {
        let deadline = Instant::now() + DEADLINE;
        while self.peer(name)["online"] != false {
            assert!(
                Instant::now() < deadline,
                "{name} still online after {DEADLINE:?}"
            );
            thread::sleep(POLL);
        }
    }
}

/// Checks that `response` is an error for request `id` with the documented `code` and
/// number, and returns its `error` object.
pub(crate) fn expect_error(response: &Value, id: &Value, code: &str) -> Value {
    assert_eq!(response["jsonrpc"], "2.0", "{response}");
    assert_eq!(
        response["id"], *id,
        "the error carries the request id: {response}"
    );
    assert!(
        response.get("result").is_none(),
        "expected `{code}`, got {response}"
    );
    let error = &response["error"];
    assert_eq!(error["data"]["code"], code, "error.data.code: {response}");
    assert_eq!(error["code"], error_number(code), "error.code: {response}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "an error has a message: {response}"
    );
    error.clone()
}

/// Every push carries every member of the `message` notification.
fn assert_push_shape(push: &Value) {
    for member in [
        "kind",
        "from",
        "text",
        "msg_id",
        "ask_id",
        "reply_to",
        "room",
        "group",
        "urgent",
        "ts",
        "origin_hub",
    ] {
        assert!(
            push.get(member).is_some(),
            "push without `{member}`: {push}"
        );
    }
    assert!(push["msg_id"].is_string(), "msg_id is an id: {push}");
    assert!(push["urgent"].is_boolean(), "urgent is a bool: {push}");
    let ts = push["ts"].as_u64().expect("ts is an integer");
    assert!(ts <= now_us(), "ts is microseconds since the epoch: {push}");
}

/// `sender` calls `method` while `recipient` takes the push and acknowledges it with `step`,
/// as a session's client does; returns the sender's result and the push.
pub(crate) fn acknowledged(
    sender: &mut Session,
    recipient: &mut Session,
    method: &str,
    params: Value,
    step: &str,
) -> (Value, Value) {
    let id = sender.send_request(method, params);
    // A hub notice (mail waiting, group changes) is not stored and not acknowledged.
    let push = std::iter::repeat_with(|| recipient.push())
        .find(|push| push["kind"] != "system")
        .expect("a push");
    recipient.ack(&push, step);
    let response = sender.response(&id);
    let result = response
        .get("result")
        .filter(|_| response.get("error").is_none())
        .unwrap_or_else(|| panic!("`{method}` failed: {response}"))
        .clone();
    (result, push)
}
