//! The snapshot worker on the real hub (issue 10: snapshots encoded off the core thread).
//!
//! A history of direct messages nobody read is written beforehand (through the log and replay
//! crates, as `hub_identities` does), with small segments; the hub runs with `--retain`, so
//! it wants a snapshot about a second after it starts. The test checks that:
//!
//! - the worker writes that snapshot while the hub keeps answering (a session asks `unread`
//!   throughout; the longest round trip is printed beside what the sample cost the core, as
//!   `hub.log` reports it: a timing print, not a timed assertion);
//! - it follows the log on: after more traffic it writes a second snapshot, having applied
//!   only the records since the first;
//! - the log below the snapshot is reclaimed, and after a SIGKILL (no shutdown snapshot) a
//!   hub starts from the worker's snapshot with every unread message where it was; stopped
//!   cleanly, its core writes the live state as a snapshot, and `relay replay --verify` finds
//!   that the worker's snapshot plus the log after it give exactly that state.
//!
//! The history has `RELAY_SNAPSHOT_WORKER_EVENTS` records (default [`EVENTS_DEFAULT`]); the
//! figures in `docs/operations.md` come from a release run with 1,000,000.

#[allow(dead_code, reason = "shared with hub_conformance, which uses the rest")]
mod support;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use relay_log::{LogConfig, LogWriter, NewRecord};
use relay_replay::event::{ClientKind, IdentityLeft, IdentityRegistered, MessageSent};
use relay_replay::{Event, RKYV_FORMAT_FLAGS, RecordMeta, State, apply, encode};
use serde_json::{Value, json};
use support::{Hub, Transport, now_us, run_with_deadline};

/// Records of the default history: quick in a debug build.
const EVENTS_DEFAULT: u64 = 20_000;
/// Peers of the history; each ends with about `events / PEERS` unread messages.
const PEERS: u64 = 1_000;
/// `--segment-bytes` of the hub and of the history: many segments for retention to reclaim.
const SEGMENT_BYTES: u64 = 256 << 10;
/// `--retain`: four segments.
const RETAIN: &str = "1MiB";
/// Messages sent through the hub between the first and the second snapshot: with
/// [`LATER_TEXT_BYTES`] each, past the `--retain` bound again.
const MESSAGES_BETWEEN: usize = 300;
/// The text of each of them, in bytes.
const LATER_TEXT_BYTES: usize = 8 << 10;
/// Longest wait for a snapshot (a release build with a million records takes seconds; a
/// debug build of the default history, one or two).
const SNAPSHOT_WAIT: Duration = Duration::from_secs(180);
/// Pause between two `unread` requests while waiting.
const PROBE_PAUSE: Duration = Duration::from_millis(5);

fn peer(index: u64) -> String {
    format!("peer-{index:04}")
}

/// Writes the history to a fresh data dir; returns it, its next offset and the state it
/// leaves.
fn history(events: u64) -> (tempfile::TempDir, u64, State) {
    let dir = tempfile::tempdir().expect("a temporary data dir");
    let config = LogConfig {
        payload_format_flags: RKYV_FORMAT_FLAGS,
        segment_bytes: SEGMENT_BYTES,
        durability: relay_log::Durability::Os,
        ..LogConfig::default()
    };
    let mut log = LogWriter::open(&dir.path().join("log"), config).expect("open log");
    let mut state = State::new();
    let start_us = now_us() - 3_600_000_000;
    let mut append = |state: &mut State, event: Event| {
        let encoded = encode(&event);
        let timestamp_us = start_us + log.next_offset();
        let offset = log
            .append(&NewRecord {
                timestamp_us,
                kind: encoded.kind,
                schema_version: encoded.schema_version,
                origin_hub: 7,
                payload: &encoded.payload,
            })
            .expect("append");
        let meta = RecordMeta {
            offset,
            timestamp_us,
            origin_hub: 7,
        };
        apply(state, meta, &event).expect("a valid history");
        offset + 1
    };
    for index in 0..PEERS {
        let registered = IdentityRegistered {
            name: peer(index),
            cwd: format!("/src/project-{index}"),
            git_branch: None,
            client: ClientKind::Cli,
        };
        append(&mut state, registered.into());
        append(&mut state, IdentityLeft { name: peer(index) }.into());
    }
    let mut next = 2 * PEERS;
    let mut sent = 0u64;
    while next < events {
        let from = sent % PEERS;
        let to = (from + 1 + sent / PEERS % (PEERS - 1)) % PEERS;
        sent += 1;
        let message = MessageSent {
            id: format!("m-{sent}"),
            from: peer(from),
            to: peer(to),
            body: format!("message {sent} {}", "x".repeat(50 + (sent % 400) as usize)),
            reply_to: None,
            urgent: false,
            thread: None,
        };
        next = append(&mut state, message.into());
    }
    log.close().expect("close");
    (dir, next, state)
}

/// The snapshot files of the data dir, by next offset.
fn snapshots(data_dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(data_dir.join("snapshots"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let offset = name
                .strip_suffix(".snap")?
                .rsplit_once('-')?
                .1
                .parse()
                .ok()?;
            Some((offset, entry.path()))
        })
        .collect();
    found.sort();
    found
}

/// Asks `unread` until a snapshot past `offset` is on disk; returns its offset and the longest
/// round trip seen meanwhile.
fn wait_for_snapshot_past(
    hub: &Hub,
    session: &mut support::Session,
    offset: u64,
) -> (u64, Duration) {
    let deadline = Instant::now() + SNAPSHOT_WAIT;
    let mut longest = Duration::ZERO;
    loop {
        if let Some((found, _)) = snapshots(hub.data_dir()).last()
            && *found > offset
        {
            return (*found, longest);
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot past offset {offset} within {SNAPSHOT_WAIT:?}; hub.log:\n{}",
            hub_log(hub)
        );
        let asked = Instant::now();
        session.call("unread", json!({}));
        longest = longest.max(asked.elapsed());
        std::thread::sleep(PROBE_PAUSE);
    }
}

fn hub_log(hub: &Hub) -> String {
    std::fs::read_to_string(hub.data_dir().join("logs/hub.log")).unwrap_or_default()
}

/// The `snapshot written` line of `hub.log` for the snapshot at `offset`.
fn written_line(hub: &Hub, offset: u64) -> String {
    let wanted = format!("offset={offset}");
    let deadline = Instant::now() + SNAPSHOT_WAIT;
    loop {
        let log = hub_log(hub);
        if let Some(line) = log
            .lines()
            .find(|line| line.contains("snapshot written") && line.contains(&wanted))
        {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "hub.log has no `snapshot written` at {offset}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of `key=` in a log line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(&format!("{key}=")))
        .unwrap_or("?")
}

fn relay(data_dir: &Path, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_relay"));
    command.args(args).arg("--data-dir").arg(data_dir);
    run_with_deadline(command)
}

/// `relay replay --verify --quiet`, given [`SNAPSHOT_WAIT`]: it decodes two snapshots of the
/// large state, slow in a debug build.
fn replay_verify(data_dir: &Path) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["replay", "--verify", "--quiet", "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`relay replay` starts");
    let deadline = Instant::now() + SNAPSHOT_WAIT;
    while child.try_wait().expect("waitable").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`relay replay --verify` took over {SNAPSHOT_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("its output")
}

fn first_offset(data_dir: &Path) -> u64 {
    let output = relay(data_dir, &["log", "info", "--format", "json"]);
    assert!(output.status.success(), "`relay log info` failed");
    let info: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    info["first_offset"].as_u64().expect("first_offset")
}

#[test]
fn the_worker_snapshots_a_large_state_off_the_core_and_the_hub_restarts_from_it() {
    let events = std::env::var("RELAY_SNAPSHOT_WORKER_EVENTS")
        .ok()
        .and_then(|events| events.parse().ok())
        .unwrap_or(EVENTS_DEFAULT);
    let (dir, history_end, expected) = history(events);
    let segment_bytes = SEGMENT_BYTES.to_string();
    let flags = [
        "--segment-bytes",
        &segment_bytes,
        "--retain",
        RETAIN,
        "--send-rate",
        "100000",
        "--send-burst",
        "100000",
    ];
    let mut hub = Hub::start_in(dir, &flags);
    let mut probe = hub.join(Transport::Unix, "probe");

    // Retention is past its bound at once: the first snapshot comes about a second later.
    let (first, longest) = wait_for_snapshot_past(&hub, &mut probe, history_end);
    let line = written_line(&hub, first);
    eprintln!(
        "first snapshot at {first} ({events} records of history): core {} us, worker: {} records followed in {} ms, encode {} ms, check {} ms, write {} ms, state {} bytes; longest `unread` round trip meanwhile {:.1} ms",
        field(&line, "core_us"),
        field(&line, "records"),
        field(&line, "catch_up_ms"),
        field(&line, "encode_ms"),
        field(&line, "check_ms"),
        field(&line, "write_ms"),
        field(&line, "state_bytes"),
        longest.as_secs_f64() * 1e3
    );

    // More traffic, past the bound again; the worker follows the log from its own state to
    // the next snapshot.
    let text = "y".repeat(LATER_TEXT_BYTES);
    for index in 0..MESSAGES_BETWEEN {
        probe.call(
            "send",
            json!({ "to": peer(index as u64 % PEERS), "text": format!("later {index} {text}") }),
        );
    }
    let (second, _) = wait_for_snapshot_past(&hub, &mut probe, first);
    let line = written_line(&hub, second);
    let followed: u64 = field(&line, "records").parse().expect("a record count");
    assert!(
        followed > 0 && followed <= second - first,
        "the worker followed {followed} records from {first} to {second}: {line}"
    );
    assert!(
        first_offset(hub.data_dir()) > 0,
        "retention deleted the log below"
    );

    // No shutdown snapshot: the restarted hub (without --retain now) has only the worker's to
    // start from, and every unread message is there.
    drop(probe);
    hub.kill();
    let mut restarted = PlainHub::start(hub.data_dir());
    for index in [0, 1, PEERS / 2, PEERS - 1] {
        let name = peer(index);
        let id = expected.identity_by_name(&name).expect("a peer").id;
        let unread = expected
            .mailbox(id)
            .map_or(0, |mailbox| mailbox.unread_count());
        let later = (0..MESSAGES_BETWEEN as u64)
            .filter(|sent| sent % PEERS == index)
            .count();
        let mut session = hub.join(Transport::Unix, &name);
        let counts = session.call("unread", json!({}));
        assert_eq!(
            counts["direct"].as_u64(),
            Some((unread + later) as u64),
            "{name}: {counts}"
        );
    }
    // A clean stop: the core writes the live state as a snapshot. Replaying the log from the
    // worker's snapshot must give exactly it.
    restarted.terminate();
    let snapshots = snapshots(hub.data_dir());
    assert_eq!(snapshots.first().map(|(offset, _)| *offset), Some(second));
    let verified = replay_verify(hub.data_dir());
    assert!(
        verified.status.success(),
        "`relay replay --verify` failed: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
}

/// A `relay hub` on a data dir, with default settings (no `--retain`).
struct PlainHub(Option<Child>);

impl PlainHub {
    fn start(data_dir: &Path) -> PlainHub {
        let mut child = Command::new(env!("CARGO_BIN_EXE_relay"))
            .args(["hub", "--idle-exit", "0", "--no-ws", "--data-dir"])
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("`relay hub` starts");
        let deadline = Instant::now() + SNAPSHOT_WAIT;
        while UnixStream::connect(data_dir.join("hub.sock")).is_err() {
            if let Some(status) = child.try_wait().expect("the hub can be waited for") {
                panic!("`relay hub` exited during startup with {status}");
            }
            assert!(Instant::now() < deadline, "the hub did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        PlainHub(Some(child))
    }

    /// SIGTERM, and the exit awaited: a clean stop.
    fn terminate(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        let pid =
            rustix::process::Pid::from_raw(i32::try_from(child.id()).expect("a pid fits in i32"))
                .expect("a pid is not 0");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let status = child.wait().expect("the hub exits");
        assert!(status.success(), "the hub exited with {status}");
    }
}

impl Drop for PlainHub {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
