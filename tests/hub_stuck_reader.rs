//! A session that stops reading cannot hold the hub hostage: its writes have a deadline
//! (`WRITE_DEADLINE`), it is evicted past it, its fixed name can be taken over, and nothing it
//! never read is lost (the pushes it did not acknowledge stay unread).
//!
//! Black-box: a real hub, raw line-protocol clients on its Unix socket.

mod mcp_support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use mcp_support::TestHub;
use serde_json::{Value, json};

/// A raw client: one JSON object per line.
struct Raw {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
}

impl Raw {
    fn connect(data_dir: &Path) -> Raw {
        let stream = UnixStream::connect(data_dir.join("hub.sock")).expect("the hub answers");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("a read timeout");
        Raw {
            reader: BufReader::new(stream.try_clone().expect("a second handle")),
            writer: stream,
            next_id: 0,
        }
    }

    /// Writes one request without waiting; its id.
    fn request(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let line =
            json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params});
        writeln!(self.writer, "{line}").expect("request written");
        self.next_id
    }

    /// Reads until the response to `id`, skipping notifications (and answering hub pings).
    fn response(&mut self, id: u64) -> Value {
        loop {
            let mut line = String::new();
            let read = self
                .reader
                .read_line(&mut line)
                .expect("a line from the hub");
            assert!(read > 0, "the hub closed the connection");
            let value: Value = serde_json::from_str(&line).expect("JSON from the hub");
            if value.get("method").is_some() {
                if value["method"] == "ping" {
                    let pong = json!({"jsonrpc": "2.0", "id": value["id"], "result": {}});
                    writeln!(self.writer, "{pong}").expect("pong written");
                }
                continue;
            }
            if value["id"] == json!(id) {
                return value;
            }
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.request(method, params);
        self.response(id)
    }

    fn join(data_dir: &Path, name: &str) -> (Raw, Value) {
        let mut raw = Raw::connect(data_dir);
        let hello = raw.call(
            "hello",
            json!({"versions": {"min": 1, "max": 1}, "client": "stuck-reader-test"}),
        );
        assert!(hello.get("result").is_some(), "{hello}");
        let registered = raw.call(
            "register",
            json!({"name": name, "cwd": "/tmp", "client": "cli"}),
        );
        (raw, registered)
    }
}

#[test]
fn a_reader_that_stops_is_evicted_its_name_taken_over_and_nothing_lost() {
    const MESSAGES: usize = 400;
    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().join("data");
    let _hub = TestHub::start(&data_dir);

    let (_stuck, registered) = Raw::join(&data_dir, "bob");
    assert_eq!(registered["result"]["name"], "bob", "{registered}");
    let (mut alice, _) = Raw::join(&data_dir, "alice");

    // 400 × 4 KiB: far more than the socket buffers hold; bob never reads a byte.
    let text = "x".repeat(4096);
    // Pipelined in chunks (each send waits up to the hub's ack wait for bob, who never acks),
    // read back before the next chunk so alice's own responses never fill her socket.
    for _ in 0..MESSAGES / 40 {
        let ids: Vec<u64> = (0..40)
            .map(|_| alice.request("send", json!({"to": "bob", "text": text})))
            .collect();
        for id in ids {
            let sent = alice.response(id);
            assert!(sent.get("result").is_some(), "every send is stored: {sent}");
        }
    }

    // A new session takes the fixed name over from the stuck one, within a bound.
    let started = Instant::now();
    let (mut bob, registered) = loop {
        let (raw, registered) = Raw::join(&data_dir, "bob");
        if registered.get("result").is_some() {
            break (raw, registered);
        }
        assert_eq!(
            registered["error"]["data"]["code"], "name_taken",
            "{registered}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the stuck holder kept the name for {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(registered["result"]["name"], "bob");
    eprintln!("takeover after {:?}", started.elapsed());

    // Nothing it never read is lost: every message is unread for the new holder.
    let unread = bob.call("unread", json!({}));
    assert_eq!(unread["result"]["direct"], json!(MESSAGES), "{unread}");
}

/// Notifications `raw` can read until the hub has sent nothing for `quiet`: how many pushes.
fn pushes_until_quiet(raw: &mut Raw, quiet: Duration) -> usize {
    raw.reader
        .get_ref()
        .set_read_timeout(Some(quiet))
        .expect("a read timeout");
    let mut pushes = 0;
    loop {
        let mut line = String::new();
        match raw.reader.read_line(&mut line) {
            Ok(0) => return pushes,
            Ok(_) => {
                let value: Value = serde_json::from_str(&line).expect("JSON from the hub");
                if value["method"] == "message" {
                    pushes += 1;
                } else if value["method"] == "ping" {
                    let pong = json!({"jsonrpc": "2.0", "id": value["id"], "result": {}});
                    writeln!(raw.writer, "{pong}").expect("pong written");
                }
            }
            Err(_) => return pushes,
        }
    }
}

// The hub queues at most SESSION_QUEUED_BYTES_MAX (4 MiB) of pushes for one session. Bob stops
// reading while 150 × 60 KiB (9 MiB) arrive; when he reads again he gets about 4 MiB of
// pushes, not all 150, and every one of the 150 is still in his inbox.
#[test]
fn a_slow_consumer_is_queued_at_most_its_byte_budget_and_loses_nothing() {
    const MESSAGES: usize = 150;
    const BUDGET_BYTES: usize = 4 << 20;
    const TEXT_BYTES: usize = 60 << 10;
    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().join("data");
    let _hub = TestHub::start(&data_dir);
    let (mut bob, _) = Raw::join(&data_dir, "bob");
    let (mut alice, _) = Raw::join(&data_dir, "alice");

    let text = "z".repeat(TEXT_BYTES);
    for _ in 0..MESSAGES / 30 {
        let ids: Vec<u64> = (0..30)
            .map(|_| alice.request("send", json!({"to": "bob", "text": text})))
            .collect();
        for id in ids {
            let sent = alice.response(id);
            assert!(sent.get("result").is_some(), "every send is stored: {sent}");
        }
    }
    // Well within WRITE_DEADLINE (10 s) of the first stalled write: bob is not evicted.
    let pushed = pushes_until_quiet(&mut bob, Duration::from_secs(2));
    eprintln!("{pushed} of {MESSAGES} pushes of {TEXT_BYTES} bytes reached the slow consumer");
    let most = (BUDGET_BYTES + (1 << 20)) / TEXT_BYTES;
    assert!(
        (1..=most).contains(&pushed),
        "{pushed} pushes were queued for a reader that stopped (budget ≈ {} of them)",
        BUDGET_BYTES / TEXT_BYTES
    );
    bob.reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a read timeout");
    let unread = bob.call("unread", json!({}));
    assert_eq!(unread["result"]["direct"], json!(MESSAGES), "{unread}");
}
