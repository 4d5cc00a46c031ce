//! The fake Claude Code messaging socket (`mcp_support::claude_socket`) checked on its own, with
//! a tiny sender and reply listener written here, so the suites that run `relay mcp` against it
//! can trust what it records: what it accepts, what it refuses to accept, and which receipts go
//! where.

mod mcp_support;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mcp_support::PATIENCE;
use mcp_support::claude_socket::{FakeClaudeSocket, FakeConfig, Mode, Outcome};
use serde_json::{Value, json};

/// How long a test watches for something that must not happen, such as a receipt.
const GRACE: Duration = Duration::from_millis(300);

fn auth_line(token: &str) -> Value {
    json!({"type": "auth", "token": token})
}

fn user_line(msg_id: &str, content: &str, reply: Option<&ReplySocket>) -> Value {
    let mut line = json!({
        "type": "user",
        "msgV": 1,
        "msg_id": msg_id,
        "message": {"role": "user", "content": content},
    });
    if let Some(reply) = reply {
        line["from"] = json!(reply.from());
    }
    line
}

fn connect(fake: &FakeClaudeSocket) -> UnixStream {
    let stream = UnixStream::connect(fake.socket_path()).expect("connect to the fake");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("a read timeout");
    stream
        .set_write_timeout(Some(PATIENCE))
        .expect("a write timeout");
    stream
}

fn write_line(mut stream: &UnixStream, line: &Value) {
    stream
        .write_all(format!("{line}\n").as_bytes())
        .expect("write a line to the fake");
}

/// Connects, authenticates and writes `lines`; the connection stays open while it lives.
fn deliver(fake: &FakeClaudeSocket, lines: &[Value]) -> UnixStream {
    let stream = connect(fake);
    write_line(&stream, &auth_line(fake.token()));
    for line in lines {
        write_line(&stream, line);
    }
    stream
}

/// Waits until the fake closes `stream` (end of file, or a reset because our bytes went unread).
fn assert_closed_by_fake(mut stream: &UnixStream) {
    let mut buffer = [0_u8; 64];
    match stream.read(&mut buffer) {
        Ok(0) => {}
        Err(error) if error.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("the fake did not close the connection: {other:?}"),
    }
}

/// A sender's reply socket, where receipts arrive.
struct ReplySocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ReplySocket {
    fn bind(dir: &Path, name: &str) -> ReplySocket {
        let path = dir.join(name);
        let listener = UnixListener::bind(&path).expect("bind the reply socket");
        listener
            .set_nonblocking(true)
            .expect("a nonblocking reply listener");
        ReplySocket { listener, path }
    }

    fn from(&self) -> String {
        format!("uds:{}", self.path.display())
    }

    /// The next receipt line, read as the protocol asks: one line, then close. `None` when no
    /// receipt connection came within `timeout`.
    fn next_receipt(&self, timeout: Duration) -> Option<Value> {
        let started = Instant::now();
        let stream = loop {
            match self.listener.accept() {
                Ok((stream, _)) => break stream,
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    if started.elapsed() > timeout {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(error) => panic!("accept on the reply socket: {error}"),
            }
        };
        stream.set_nonblocking(false).expect("a blocking receipt");
        stream
            .set_read_timeout(Some(PATIENCE))
            .expect("a read timeout");
        let mut line = String::new();
        BufReader::new(&stream)
            .read_line(&mut line)
            .expect("read the receipt line");
        Some(serde_json::from_str(&line).expect("the receipt is JSON"))
    }
}

fn receipt(status: &str, msg_id: &str) -> Value {
    json!({
        "type": "control",
        "action": "peer_message_status",
        "status": status,
        "orig_msg_id": msg_id,
    })
}

#[test]
fn accepted_message_is_recorded_and_gets_no_receipt() {
    let fake = FakeClaudeSocket::start(Mode::Accept);
    let reply = ReplySocket::bind(fake.socket_dir(), "sender.sock");
    let _stream = deliver(&fake, &[user_line("m1", "hello", Some(&reply))]);

    let received = fake.wait_for(1, PATIENCE);
    assert_eq!(received.len(), 1, "{:?}", fake.violations());
    assert_eq!(received[0].msg_id.as_deref(), Some("m1"));
    assert_eq!(received[0].content, "hello");
    assert_eq!(received[0].priority, "next", "the default priority");
    assert_eq!(received[0].from, Some(reply.from()));
    assert_eq!(received[0].outcome, Outcome::Accepted);
    assert_eq!(
        reply.next_receipt(GRACE),
        None,
        "an accepted message got a receipt"
    );
    assert_eq!(fake.receipts_sent(), Vec::<(String, String)>::new());
    assert_eq!(fake.violations(), Vec::<String>::new());
    assert_eq!(fake.auth_failures(), 0);
}

#[test]
fn bad_token_counts_an_auth_failure_and_receives_nothing() {
    let fake = FakeClaudeSocket::start(Mode::Accept);
    let stream = connect(&fake);
    write_line(&stream, &auth_line("not-the-token"));
    write_line(&stream, &user_line("m1", "hello", None));

    assert_closed_by_fake(&stream);
    assert_eq!(fake.auth_failures(), 1);
    assert_eq!(fake.received().len(), 0);
    let connections = fake.connections();
    assert_eq!(connections.len(), 1);
    assert!(!connections[0].authenticated);
    assert!(connections[0].closed);
}

#[test]
fn first_line_that_is_not_auth_is_an_auth_failure_and_a_violation() {
    let fake = FakeClaudeSocket::start(Mode::Accept);
    let stream = connect(&fake);
    write_line(&stream, &user_line("m1", "hello", None));

    assert_closed_by_fake(&stream);
    assert_eq!(fake.auth_failures(), 1);
    assert_eq!(fake.received().len(), 0);
    let violations = fake.violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].starts_with("not_auth_line"), "{violations:?}");
}

#[test]
fn held_message_gets_a_held_receipt_on_the_reply_socket() {
    let fake = FakeClaudeSocket::start(Mode::Hold);
    let reply = ReplySocket::bind(fake.socket_dir(), "sender.sock");
    let _stream = deliver(&fake, &[user_line("m1", "hello", Some(&reply))]);

    assert_eq!(reply.next_receipt(PATIENCE), Some(receipt("held", "m1")));
    assert_eq!(fake.receipts_sent(), [("m1".to_owned(), "held".to_owned())]);
    let received = fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].outcome, Outcome::Held);
}

#[test]
fn refused_message_gets_a_refused_receipt() {
    let fake = FakeClaudeSocket::start(Mode::Refuse);
    let reply = ReplySocket::bind(fake.socket_dir(), "sender.sock");
    let _stream = deliver(&fake, &[user_line("m1", "hello", Some(&reply))]);

    let mut expected = receipt("refused", "m1");
    expected["status_detail"] = json!("refused");
    assert_eq!(reply.next_receipt(PATIENCE), Some(expected));
    assert_eq!(fake.received()[0].outcome, Outcome::Refused);
}

#[test]
fn expiring_message_gets_held_then_expired_on_separate_connections() {
    let fake = FakeClaudeSocket::start(Mode::Expire);
    let reply = ReplySocket::bind(fake.socket_dir(), "sender.sock");
    let _stream = deliver(&fake, &[user_line("m1", "hello", Some(&reply))]);

    let started = Instant::now();
    assert_eq!(reply.next_receipt(PATIENCE), Some(receipt("held", "m1")));
    assert_eq!(reply.next_receipt(PATIENCE), Some(receipt("expired", "m1")));
    assert!(started.elapsed() >= fake.config().expire_delay / 2);
    assert_eq!(
        fake.receipts_sent(),
        [
            ("m1".to_owned(), "held".to_owned()),
            ("m1".to_owned(), "expired".to_owned())
        ]
    );
}

#[test]
fn reply_path_outside_the_socket_directory_is_a_violation_and_gets_no_receipt() {
    let fake = FakeClaudeSocket::start(Mode::Hold);
    let elsewhere = tempfile::tempdir().expect("another directory");
    let reply = ReplySocket::bind(elsewhere.path(), "sender.sock");
    let _stream = deliver(&fake, &[user_line("m1", "hello", Some(&reply))]);

    let violations = fake.wait_for_violations(1, PATIENCE);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].starts_with("bad_from"), "{violations:?}");
    assert_eq!(fake.wait_for(1, PATIENCE)[0].outcome, Outcome::Held);
    assert_eq!(reply.next_receipt(GRACE), None, "a receipt went outside");
    assert_eq!(fake.receipts_sent(), Vec::<(String, String)>::new());
}

#[test]
fn reply_path_without_sock_suffix_or_uds_prefix_is_a_violation() {
    let fake = FakeClaudeSocket::start(Mode::Hold);
    let dir = fake.socket_dir().display().to_string();
    let mut no_suffix = user_line("m1", "one", None);
    no_suffix["from"] = json!(format!("uds:{dir}/sender"));
    let mut no_prefix = user_line("m2", "two", None);
    no_prefix["from"] = json!(format!("{dir}/sender.sock"));
    let mut relative = user_line("m3", "three", None);
    relative["from"] = json!("uds:sender.sock");
    let _stream = deliver(&fake, &[no_suffix, no_prefix, relative]);

    let violations = fake.wait_for_violations(3, PATIENCE);
    assert_eq!(violations.len(), 3, "{violations:?}");
    assert!(
        violations
            .iter()
            .all(|violation| violation.starts_with("bad_from"))
    );
    assert_eq!(fake.receipts_sent(), Vec::<(String, String)>::new());
}

#[test]
fn unreachable_reply_socket_is_a_violation_not_a_panic() {
    let fake = FakeClaudeSocket::start(Mode::Hold);
    let mut line = user_line("m1", "hello", None);
    line["from"] = json!(format!("uds:{}/gone.sock", fake.socket_dir().display()));
    let _stream = deliver(&fake, &[line]);

    let violations = fake.wait_for_violations(1, PATIENCE);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(
        violations[0].starts_with("receipt_connect_failed"),
        "{violations:?}"
    );
    assert_eq!(fake.receipts_sent(), Vec::<(String, String)>::new());
}

#[test]
fn reply_listener_that_keeps_the_connection_open_is_a_violation() {
    let config = FakeConfig {
        receipt_close_timeout: Duration::from_millis(200),
        ..FakeConfig::default()
    };
    let fake = FakeClaudeSocket::start_with(Mode::Hold, config);
    let reply = ReplySocket::bind(fake.socket_dir(), "sender.sock");
    let _stream = deliver(&fake, &[user_line("m1", "hello", Some(&reply))]);

    // Accept the receipt connection and hold it without ever closing.
    let started = Instant::now();
    let _held = loop {
        match reply.listener.accept() {
            Ok((stream, _)) => break stream,
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                assert!(started.elapsed() < PATIENCE, "no receipt came");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("accept on the reply socket: {error}"),
        }
    };
    let violations = fake.wait_for_violations(1, PATIENCE);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(
        violations[0].starts_with("reply_listener_kept_open"),
        "{violations:?}"
    );
}

#[test]
fn empty_content_is_a_violation_and_is_not_received() {
    let fake = FakeClaudeSocket::start(Mode::Accept);
    // The good line after the empty one proves the empty one was read (same connection, in
    // order) and that the connection survives it.
    let _stream = deliver(
        &fake,
        &[user_line("m1", "", None), user_line("m2", "after", None)],
    );

    let received = fake.wait_for(1, PATIENCE);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].msg_id.as_deref(), Some("m2"));
    let violations = fake.violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].starts_with("empty_content"), "{violations:?}");
}

#[test]
fn malformed_lines_are_violations_and_are_not_received() {
    let fake = FakeClaudeSocket::start(Mode::Accept);
    let mut wrong_type = user_line("m2", "two", None);
    wrong_type["type"] = json!("assistant");
    let mut not_string = user_line("m3", "three", None);
    not_string["message"]["content"] = json!([{"type": "text", "text": "three"}]);
    let mut bad_priority = user_line("m4", "four", None);
    bad_priority["priority"] = json!("urgent");
    let mut other_session = user_line("m5", "five", None);
    other_session["session_id"] = json!("someone-else");
    let mut same_session = user_line("m6", "six", None);
    same_session["session_id"] = json!(fake.session_id());
    same_session["priority"] = json!("now");
    let stream = deliver(
        &fake,
        &[wrong_type, not_string, bad_priority, other_session],
    );
    (&stream)
        .write_all(b"{not json\n")
        .expect("write a broken line");
    write_line(&stream, &same_session);

    let received = fake.wait_for(1, PATIENCE);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].msg_id.as_deref(), Some("m6"));
    assert_eq!(received[0].priority, "now");
    let codes: Vec<String> = fake
        .violations()
        .iter()
        .map(|violation| violation.split(':').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        codes,
        [
            "wrong_type",
            "content_not_a_string",
            "bad_priority",
            "session_id_mismatch",
            "bad_json"
        ]
    );
}

#[test]
fn several_user_lines_on_one_connection_are_all_taken_and_counted() {
    let fake = FakeClaudeSocket::start(Mode::Accept);
    let _stream = deliver(
        &fake,
        &[
            user_line("m1", "one", None),
            user_line("m2", "two", None),
            user_line("m3", "three", None),
        ],
    );

    let received = fake.wait_for(3, PATIENCE);
    let ids: Vec<_> = received
        .iter()
        .map(|message| message.msg_id.as_deref())
        .collect();
    assert_eq!(ids, [Some("m1"), Some("m2"), Some("m3")]);
    let connections = fake.connections();
    assert_eq!(connections.len(), 1);
    assert!(connections[0].authenticated);
    assert_eq!(connections[0].message_line_count, 3);
}

#[test]
fn identical_repeat_from_the_same_sender_is_dropped_within_the_window() {
    let fake = FakeClaudeSocket::start(Mode::Accept);
    let reply = ReplySocket::bind(fake.socket_dir(), "sender.sock");
    let other = ReplySocket::bind(fake.socket_dir(), "other.sock");
    // Two connections with the same reply path are one sender; another reply path is another.
    let _first = deliver(&fake, &[user_line("m1", "same", Some(&reply))]);
    assert_eq!(fake.wait_for(1, PATIENCE).len(), 1);
    let _second = deliver(
        &fake,
        &[
            user_line("m2", "same", Some(&reply)),
            user_line("m3", "same", Some(&other)),
        ],
    );

    let received = fake.wait_for(2, PATIENCE);
    let ids: Vec<_> = received
        .iter()
        .map(|message| message.msg_id.as_deref())
        .collect();
    assert_eq!(ids, [Some("m1"), Some("m3")]);
    let violations = fake.violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].starts_with("repeat"), "{violations:?}");
}

#[test]
fn queue_takes_its_cap_and_drops_the_next_until_drained() {
    let config = FakeConfig {
        queue_messages_max: 2,
        ..FakeConfig::default()
    };
    let fake = FakeClaudeSocket::start_with(Mode::Accept, config);
    let _stream = deliver(
        &fake,
        &[
            user_line("m1", "one", None),
            user_line("m2", "two", None),
            user_line("m3", "three", None),
        ],
    );
    let violations = fake.wait_for_violations(1, PATIENCE);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].starts_with("queue_full"), "{violations:?}");
    assert_eq!(fake.received().len(), 2, "the cap itself is accepted");

    assert_eq!(fake.drain_queue(), 2);
    let _again = deliver(&fake, &[user_line("m4", "four", None)]);
    assert_eq!(fake.wait_for(3, PATIENCE).len(), 3);
}

#[test]
fn line_at_the_limit_is_read_and_one_byte_more_closes_the_connection() {
    let config = FakeConfig {
        line_bytes_max: 200,
        ..FakeConfig::default()
    };
    let fake = FakeClaudeSocket::start_with(Mode::Accept, config);
    let line_of = |total: usize| {
        let shell = user_line("m1", "", None).to_string().len();
        user_line("m1", &"x".repeat(total - shell), None)
    };
    assert_eq!(line_of(200).to_string().len(), 200);
    let _at = deliver(&fake, &[line_of(200)]);
    assert_eq!(fake.wait_for(1, PATIENCE).len(), 1);

    let past = deliver(&fake, &[line_of(201)]);
    assert_closed_by_fake(&past);
    let violations = fake.violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].starts_with("line_too_long"), "{violations:?}");
    assert_eq!(fake.received().len(), 1);
}

#[test]
fn silent_connection_is_closed_when_its_first_line_is_late() {
    let config = FakeConfig {
        first_line_timeout: Duration::from_millis(200),
        ..FakeConfig::default()
    };
    let fake = FakeClaudeSocket::start_with(Mode::Accept, config);
    let stream = connect(&fake);

    assert_closed_by_fake(&stream);
    let violations = fake.violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(
        violations[0].starts_with("first_line_late"),
        "{violations:?}"
    );
}

#[test]
fn dying_session_reads_the_auth_line_then_closes() {
    let fake = FakeClaudeSocket::start(Mode::DieMidWrite);
    let stream = connect(&fake);
    write_line(&stream, &auth_line(fake.token()));

    assert_closed_by_fake(&stream);
    let connections = fake.connections();
    assert!(connections[0].authenticated);
    assert!(connections[0].closed);
    assert_eq!(connections[0].message_line_count, 0);
    assert_eq!(fake.received().len(), 0);
}

#[test]
fn stuck_session_never_reads_so_a_writer_blocks() {
    let fake = FakeClaudeSocket::start(Mode::Stuck);
    let mut stream = connect(&fake);
    stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .expect("a write timeout");
    let chunk = vec![b'x'; 64 * 1024];
    // Far more than any socket buffer; the write must stall long before.
    let outcome = (0..1024).try_for_each(|_| stream.write_all(&chunk));
    let error = outcome.expect_err("a stuck session took 64 MiB");
    assert!(
        matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{error}"
    );
    let connections = fake.connections();
    assert_eq!(connections.len(), 1);
    assert!(!connections[0].closed);
    assert!(!connections[0].authenticated);
}

#[test]
fn killed_socket_refuses_connections_but_leaves_its_file() {
    let mut fake = FakeClaudeSocket::start(Mode::Accept);
    let open = deliver(&fake, &[]);
    fake.kill_leaving_socket();

    let error = UnixStream::connect(fake.socket_path()).expect_err("a killed socket answered");
    assert_eq!(error.kind(), ErrorKind::ConnectionRefused, "{error}");
    let metadata = std::fs::metadata(fake.socket_path()).expect("the socket file is left");
    assert!(metadata.file_type().is_socket());
    assert_closed_by_fake(&open);
}

#[test]
fn env_names_the_socket_and_the_token() {
    let fake = FakeClaudeSocket::start(Mode::Accept);
    let env = fake.env();
    let socket = fake.socket_path().display().to_string();
    assert_eq!(
        env,
        [
            ("CLAUDE_CODE_MESSAGING_SOCKET".to_owned(), socket.clone()),
            (
                "CLAUDE_CODE_MESSAGING_TOKEN".to_owned(),
                fake.token().to_owned()
            ),
        ]
    );
    assert!(socket.ends_with(&format!("/cc-socks/{}.sock", std::process::id())));
    assert_eq!(fake.token().len(), 32);
}
