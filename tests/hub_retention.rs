//! Retention on the real hub (`relay hub --retain`, issue 10): with small segments and a small
//! size bound, the log directory stays near the bound while hundreds of messages are sent to
//! an offline peer, the history that is kept starts past offset 0 (as `relay log info` and
//! `relay replay` say), and every unread message survives a restart, because the state is
//! rebuilt from the snapshot and not from the reclaimed segments.
//!
//! Black-box: real `relay hub` processes on temporary data dirs, the conformance suite's
//! line-protocol client.

#[allow(dead_code, reason = "shared with hub_conformance, which uses the rest")]
mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Hub, Transport, run_with_deadline};

/// `--segment-bytes` of these hubs: the smallest segment the log accepts.
const SEGMENT_BYTES: u64 = 4096;
/// `--retain`: four segments.
const RETAIN_BYTES: u64 = 4 * SEGMENT_BYTES;
/// Messages sent: about 50 segments of records, under the mailbox's own limit of 500.
const MESSAGES: usize = 400;
/// Longest a retention pass may take to catch up after the last send (a snapshot is taken
/// within a second, then segments go).
const RECLAIM_WAIT: Duration = Duration::from_secs(15);

/// Bytes of the segment files in the data dir's log.
fn segment_bytes_on_disk(data_dir: &Path) -> u64 {
    std::fs::read_dir(data_dir.join("log"))
        .expect("the log dir")
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "seg"))
        // A segment the hub deletes between the listing and this look counts for nothing.
        .filter_map(|entry| entry.metadata().ok())
        .map(|metadata| metadata.len())
        .sum()
}

fn relay(data_dir: &Path, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_relay"));
    command.args(args).arg("--data-dir").arg(data_dir);
    run_with_deadline(command)
}

fn log_info(data_dir: &Path) -> Value {
    let output = relay(data_dir, &["log", "info", "--format", "json"]);
    assert!(
        output.status.success(),
        "`relay log info` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// Every message text in `name`'s mailbox, paging the inbox by `since_id`.
fn mailbox_texts(session: &mut support::Session) -> BTreeSet<String> {
    let mut texts = BTreeSet::new();
    let mut since: Option<String> = None;
    // Bounded: each page returns at least one new message or ends the loop.
    for _ in 0..MESSAGES {
        let mut params = json!({"limit": 100, "include_pushed": true});
        if let Some(since) = &since {
            params["since_id"] = json!(since);
        }
        let page = session.call("inbox", params);
        let messages = page["messages"].as_array().expect("messages").clone();
        let Some(last) = messages.last() else {
            break;
        };
        since = Some(last["msg_id"].as_str().expect("msg_id").to_owned());
        for message in &messages {
            texts.insert(message["text"].as_str().expect("text").to_owned());
        }
    }
    texts
}

#[test]
fn a_retained_log_stays_near_its_bound_and_unread_mail_survives_a_restart() {
    let segment_bytes = SEGMENT_BYTES.to_string();
    let retain = format!("{}KiB", RETAIN_BYTES / 1024);
    let mut hub = Hub::start_with(&[
        "--segment-bytes",
        &segment_bytes,
        "--retain",
        &retain,
        "--send-rate",
        "100000",
        "--send-burst",
        "100000",
    ]);
    let mut bob = hub.join(Transport::Unix, "bob");
    drop(bob);
    let mut alice = hub.join(Transport::Unix, "alice");
    alice.wait_until_offline("bob");
    let padding = "x".repeat(300);
    let mut sent = BTreeSet::new();
    let mut largest_on_disk = 0;
    for index in 0..MESSAGES {
        let text = format!("message {index} {padding}");
        alice.call("send", json!({"to": "bob", "text": text}));
        sent.insert(text);
        largest_on_disk = largest_on_disk.max(segment_bytes_on_disk(hub.data_dir()));
    }
    let written = hub.log_next_offset();
    let deadline = Instant::now() + RECLAIM_WAIT;
    while segment_bytes_on_disk(hub.data_dir()) > RETAIN_BYTES {
        assert!(
            Instant::now() < deadline,
            "the log stayed at {} bytes, over its bound of {RETAIN_BYTES}; hub.log:\n{}",
            segment_bytes_on_disk(hub.data_dir()),
            std::fs::read_to_string(hub.data_dir().join("logs/hub.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let info = log_info(hub.data_dir());
    let first = info["first_offset"].as_u64().expect("first_offset");
    assert!(first > 0, "old history was reclaimed: {info}");
    assert_eq!(info["history_reclaimed"], true, "{info}");
    eprintln!(
        "retention: {MESSAGES} messages, {written} records; log dir at most {largest_on_disk} bytes while sending, {} after (bound {RETAIN_BYTES}); history starts at offset {first}",
        segment_bytes_on_disk(hub.data_dir())
    );
    drop(alice);
    hub.restart();
    bob = hub.join(Transport::Unix, "bob");
    let unread = bob.call("unread", json!({}));
    assert_eq!(unread["direct"], MESSAGES, "{unread}");
    assert_eq!(
        mailbox_texts(&mut bob),
        sent,
        "every unread message survived"
    );
    drop(bob);
    // `relay replay` rebuilds from the snapshot, says so, and finds the same mailbox.
    let output = relay(hub.data_dir(), &["replay", "--state", "--format", "json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "`relay replay` failed: {stderr}");
    assert!(stderr.contains("reclaimed by retention"), "{stderr}");
    let bob_mailbox = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("JSON"))
        .find(|line| line["type"] == "mailbox" && line["mailbox"]["name"] == "bob")
        .expect("bob's mailbox in the replayed state");
    assert_eq!(
        bob_mailbox["mailbox"]["messages"], MESSAGES,
        "{bob_mailbox}"
    );
    // A stop before the snapshot replay starts from is history that is gone.
    let output = relay(hub.data_dir(), &["replay", "--until", "0"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("older history was reclaimed"), "{stderr}");
    // `relay replay --verify` checks the snapshots after the one it starts from.
    let output = relay(hub.data_dir(), &["replay", "--verify", "--quiet"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
}

#[test]
fn a_log_that_starts_after_zero_without_a_snapshot_is_refused_by_replay_and_the_hub() {
    let segment_bytes = SEGMENT_BYTES.to_string();
    let retain = format!("{}KiB", RETAIN_BYTES / 1024);
    let mut hub = Hub::start_with(&[
        "--segment-bytes",
        &segment_bytes,
        "--retain",
        &retain,
        "--send-rate",
        "100000",
        "--send-burst",
        "100000",
    ]);
    drop(hub.join(Transport::Unix, "bob"));
    let mut alice = hub.join(Transport::Unix, "alice");
    alice.wait_until_offline("bob");
    let padding = "y".repeat(300);
    for index in 0..MESSAGES / 4 {
        alice.call(
            "send",
            json!({"to": "bob", "text": format!("{index} {padding}")}),
        );
    }
    let deadline = Instant::now() + RECLAIM_WAIT;
    while log_info(hub.data_dir())["first_offset"] == 0 {
        assert!(Instant::now() < deadline, "nothing was reclaimed");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(alice);
    let status = hub.terminate();
    assert!(status.success(), "{status}");
    std::fs::remove_dir_all(hub.data_dir().join("snapshots")).expect("remove the snapshots");
    let output = relay(hub.data_dir(), &["replay", "--state"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cannot be rebuilt"), "{stderr}");
    let output = run_with_deadline(hub.command());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "the hub refuses to start: {stderr}"
    );
    assert!(stderr.contains("cannot be rebuilt"), "{stderr}");
}

#[test]
fn a_duration_bound_reclaims_segments_whose_records_are_older_and_keeps_the_mail() {
    // Records older than 3 s go; the segments are written in a burst, then time passes, then
    // one more send makes the hub look (an idle hub looks once a minute).
    let segment_bytes = SEGMENT_BYTES.to_string();
    let mut hub = Hub::start_with(&[
        "--segment-bytes",
        &segment_bytes,
        "--retain",
        "3s",
        "--send-rate",
        "100000",
        "--send-burst",
        "100000",
    ]);
    drop(hub.join(Transport::Unix, "bob"));
    let mut alice = hub.join(Transport::Unix, "alice");
    alice.wait_until_offline("bob");
    let padding = "z".repeat(300);
    let burst = MESSAGES / 4;
    for index in 0..burst {
        alice.call(
            "send",
            json!({"to": "bob", "text": format!("{index} {padding}")}),
        );
    }
    assert_eq!(
        log_info(hub.data_dir())["first_offset"],
        0,
        "nothing is old yet"
    );
    std::thread::sleep(Duration::from_millis(3500));
    alice.call("send", json!({"to": "bob", "text": "late"}));
    let deadline = Instant::now() + RECLAIM_WAIT;
    let info = loop {
        let info = log_info(hub.data_dir());
        if info["first_offset"].as_u64() > Some(0) {
            break info;
        }
        assert!(Instant::now() < deadline, "nothing was reclaimed: {info}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let segments = info["segments"].as_array().expect("segments").len();
    assert!(
        segments <= 2,
        "only the segments with recent records stay: {info}"
    );
    drop(alice);
    hub.restart();
    let mut bob = hub.join(Transport::Unix, "bob");
    let unread = bob.call("unread", json!({}));
    assert_eq!(unread["direct"], burst + 1, "{unread}");
}

#[test]
fn a_retention_size_below_two_segments_is_refused_and_a_nonsense_one_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = |retain: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_relay"));
        command
            .args([
                "hub",
                "--no-ws",
                "--idle-exit",
                "1",
                "--segment-bytes",
                "4096",
            ])
            .args(["--retain", retain, "--data-dir"])
            .arg(dir.path());
        run_with_deadline(command)
    };
    let small = hub("8191");
    let stderr = String::from_utf8_lossy(&small.stderr);
    assert_eq!(small.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("at least 8192 bytes"), "{stderr}");
    let nonsense = hub("12 parsecs");
    assert_eq!(nonsense.status.code(), Some(2), "a usage error");
}
