//! Identities online when the hub is SIGKILLed (issue 10: "identities online at a crash never
//! get `identity_left`"): the restarted hub logs their leave, in one batch named
//! `left_at_unclean_stop`, after its `hub_started` and before any session's registration, so
//! the state has them as left (the identity lifecycle applies to them again), and each can
//! register under its name again. A clean stop logs every leave itself: the next start logs
//! no such batch.
//!
//! Black-box: the real `relay hub`, `relay replay --format json` for the log's events and
//! `relay replay --state` for the rebuilt state.

#[allow(dead_code, reason = "shared with hub_conformance, which uses the rest")]
mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use support::{Hub, Transport, run_with_deadline};

/// The batch name of the leaves logged at start-up (`LEFT_AT_UNCLEAN_STOP`).
const LEFT_AT_UNCLEAN_STOP: &str = "left_at_unclean_stop";

/// Every line of `relay replay --format json …` as JSON.
fn replay(data_dir: &Path, args: &[&str]) -> Vec<Value> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_relay"));
    command
        .args(["replay", "--quiet", "--format", "json"])
        .args(args)
        .arg("--data-dir")
        .arg(data_dir);
    let output = run_with_deadline(command);
    assert!(
        output.status.success(),
        "`relay replay` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// `(kind, event)` of every record from the last `hub_started` on.
fn since_last_start(data_dir: &Path) -> Vec<(String, Value)> {
    let events: Vec<(String, Value)> = replay(data_dir, &[])
        .into_iter()
        .map(|line| {
            let kind = line["kind"].as_str().expect("a kind").to_owned();
            (kind, line["event"].clone())
        })
        .collect();
    let start = events
        .iter()
        .rposition(|(kind, _)| kind == "hub_started")
        .expect("a hub_started");
    events[start..].to_vec()
}

/// Whether the rebuilt state has `name` as left.
fn has_left(data_dir: &Path, name: &str) -> bool {
    replay(data_dir, &["--state"])
        .iter()
        .find(|line| line["type"] == "mailbox" && line["mailbox"]["name"] == name)
        .unwrap_or_else(|| panic!("no identity {name}"))["mailbox"]["left"]
        .as_bool()
        .expect("left is a bool")
}

#[test]
fn identities_online_at_a_sigkill_have_left_after_the_restart_and_register_again() {
    let mut hub = Hub::start();
    let alice = hub.join(Transport::Unix, "alice");
    let mut bob = hub.join(Transport::Unix, "bob");
    // carol leaves before the crash: her leave is logged (bob sees her offline) already.
    let mut carol = hub.join(Transport::Unix, "carol");
    carol.call("send", json!({ "to": "alice", "text": "before the crash" }));
    drop(carol);
    bob.wait_until_offline("carol");
    hub.kill();
    drop((alice, bob));
    assert!(!has_left(hub.data_dir(), "alice"), "online at the kill");
    assert!(has_left(hub.data_dir(), "carol"), "left before the kill");

    hub.start_again();
    let records = since_last_start(hub.data_dir());
    let kinds: Vec<&str> = records.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "hub_started",
            "batch_started",
            "identity_left",
            "identity_left",
            "batch_ended"
        ],
        "{records:?}"
    );
    assert_eq!(records[1].1["command"], LEFT_AT_UNCLEAN_STOP);
    let mut left: Vec<&str> = records[2..4]
        .iter()
        .map(|(_, event)| event["name"].as_str().expect("a name"))
        .collect();
    left.sort();
    assert_eq!(left, ["alice", "bob"]);
    assert_eq!(records[4].1["event_count"], 2);
    for name in ["alice", "bob", "carol"] {
        assert!(has_left(hub.data_dir(), name), "{name} has left");
    }

    // They are offline to the others, and register again under their names.
    let mut bob = hub.join(Transport::Unix, "bob");
    assert_eq!(bob.peer("alice")["online"], false);
    let mut alice = hub.join(Transport::Unix, "alice");
    let inbox = alice.call("inbox", json!({}));
    assert_eq!(inbox["messages"][0]["text"], "before the crash", "{inbox}");
    assert!(!has_left(hub.data_dir(), "alice"), "alice is back");

    // A clean stop logs every leave: the next start has none to log.
    drop((alice, bob));
    hub.restart();
    let records = since_last_start(hub.data_dir());
    assert!(
        records
            .iter()
            .all(|(kind, _)| kind != "batch_started" && kind != "identity_left"),
        "{records:?}"
    );
}

#[test]
fn a_single_identity_online_at_a_sigkill_leaves_alone_in_its_batch() {
    let mut hub = Hub::start();
    let alice = hub.join(Transport::Unix, "alice");
    hub.kill();
    drop(alice);
    hub.start_again();
    let records = since_last_start(hub.data_dir());
    let kinds: Vec<&str> = records.iter().map(|(kind, _)| kind.as_str()).collect();
    // One event: `atomically` writes no markers around a single record.
    assert_eq!(kinds, ["hub_started", "identity_left"], "{records:?}");
    assert!(has_left(hub.data_dir(), "alice"));
    let mut alice = hub.join(Transport::Unix, "alice");
    alice.call("unread", json!({}));
}
