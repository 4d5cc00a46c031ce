//! Black-box tests of the identity lifecycle (issue 10) against the real hub: identities gone
//! for `IDENTITY_FORGET_AFTER` (30 days) are forgotten by the next new name; at
//! `IDENTITIES_MAX` (10,000) a new name forgets the eligible identity gone longest, and with
//! none eligible it gets `limit_reached` saying why; `peers` pages through 10,000 identities in
//! frames that fit `FRAME_BYTES_MAX`.
//!
//! The hub's past is written beforehand through the log and replay crates (as `cli_replay`
//! does), with record timestamps in the past: registering 10,000 names through the hub would
//! take over an hour at its new-identity rate (2 a second past a burst of 256).

#[allow(dead_code, reason = "shared with hub_conformance, which uses the rest")]
mod support;

use std::collections::BTreeSet;
use std::path::Path;

use relay_log::{LogConfig, LogWriter, NewRecord};
use relay_replay::event::{
    ClientKind, GroupCreated, IdentityLeft, IdentityRegistered, MailboxCursorAdvanced, MessageSent,
};
use relay_replay::{Event, RKYV_FORMAT_FLAGS, RecordMeta, State, apply, encode};
use serde_json::{Value, json};
use support::{FRAME_BYTES_MAX, Hub, Session, Transport, now_us};

/// `IDENTITIES_MAX`: identities a hub knows at once.
const IDENTITIES_MAX: usize = 10_000;
/// `IDENTITY_FORGET_AFTER`, in microseconds: 30 days.
const FORGET_AFTER_US: u64 = 30 * 24 * 3600 * 1_000_000;
/// One day, in microseconds.
const DAY_US: u64 = 24 * 3600 * 1_000_000;

fn register(name: &str, cwd: &str) -> Event {
    IdentityRegistered {
        name: name.into(),
        cwd: cwd.into(),
        git_branch: None,
        client: ClientKind::Cli,
    }
    .into()
}

fn left(name: &str) -> Event {
    IdentityLeft { name: name.into() }.into()
}

fn message(id: &str, from: &str, to: &str) -> Event {
    MessageSent {
        id: id.into(),
        from: from.into(),
        to: to.into(),
        body: "are you there?".into(),
        reply_to: None,
        urgent: false,
        thread: None,
    }
    .into()
}

fn read_up_to(recipient: &str, up_to_sequence: u64) -> Event {
    MailboxCursorAdvanced {
        recipient: recipient.into(),
        up_to_sequence,
    }
    .into()
}

/// Writes `events` (each with its record timestamp) to a fresh data dir's log, checking that
/// they apply as the hub will replay them.
fn data_dir_with(events: &[(u64, Event)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary data dir");
    write_log(dir.path(), events);
    dir
}

fn write_log(data_dir: &Path, events: &[(u64, Event)]) {
    let config = LogConfig {
        payload_format_flags: RKYV_FORMAT_FLAGS,
        ..LogConfig::default()
    };
    let mut log = LogWriter::open(&data_dir.join("log"), config).expect("open log");
    let mut state = State::new();
    for (timestamp_us, event) in events {
        let encoded = encode(event);
        let offset = log
            .append(&NewRecord {
                timestamp_us: *timestamp_us,
                kind: encoded.kind,
                schema_version: encoded.schema_version,
                origin_hub: 7,
                payload: &encoded.payload,
            })
            .expect("append");
        let meta = RecordMeta {
            offset,
            timestamp_us: *timestamp_us,
            origin_hub: 7,
        };
        apply(&mut state, meta, event).expect("a valid history");
    }
    log.close().expect("close");
}

/// Every peer `session` sees, page by page, checking that each answer fits one frame.
fn all_peers(session: &mut Session, limit: Option<u64>) -> (Vec<Value>, usize) {
    let mut peers = Vec::new();
    let mut pages = 0;
    let mut params = match limit {
        Some(limit) => json!({ "limit": limit }),
        None => json!({}),
    };
    loop {
        let page = session.call("peers", params.clone());
        let frame_bytes = serde_json::to_string(&page).expect("JSON").len();
        assert!(
            frame_bytes < FRAME_BYTES_MAX,
            "a peers page of {frame_bytes} bytes"
        );
        pages += 1;
        peers.extend(page["peers"].as_array().expect("peers is a list").clone());
        match page.get("next_cursor") {
            Some(cursor) => params["cursor"] = cursor.clone(),
            None => return (peers, pages),
        }
    }
}

fn names(peers: &[Value]) -> BTreeSet<String> {
    peers
        .iter()
        .map(|peer| peer["name"].as_str().expect("a name").to_owned())
        .collect()
}

#[test]
fn identities_gone_longer_than_the_bound_are_forgotten_by_the_next_new_name() {
    let long_ago = now_us() - FORGET_AFTER_US - DAY_US;
    let yesterday = now_us() - DAY_US;
    let dir = data_dir_with(&[
        (long_ago, register("alice", "/src/alice")),
        (long_ago, register("bob", "/src/bob")),
        (long_ago, message("m-1", "bob", "alice")),
        (long_ago, message("m-2", "alice", "bob")),
        (long_ago, read_up_to("alice", 1)),
        (long_ago, left("alice")),
        (long_ago, left("bob")),
        (long_ago, register("carol", "/src/carol")),
        (
            long_ago,
            GroupCreated {
                group: "ops".into(),
                admin: "carol".into(),
            }
            .into(),
        ),
        (long_ago, left("carol")),
        (yesterday, register("dave", "/src/dave")),
        (yesterday, left("dave")),
    ]);
    let mut hub = Hub::start_in(dir, &[]);
    // A known name returning forgets nothing.
    let mut dave = hub.join(Transport::Unix, "dave");
    let (peers, _) = all_peers(&mut dave, None);
    assert_eq!(
        names(&peers),
        ["alice", "bob", "carol"].map(String::from).into()
    );

    // A new name: alice (gone 31 days, her mail read) is forgotten; bob has unread mail,
    // carol is a group's admin, dave left yesterday.
    let mut erin = hub.join(Transport::Unix, "erin");
    let (peers, _) = all_peers(&mut erin, None);
    assert_eq!(
        names(&peers),
        ["bob", "carol", "dave"].map(String::from).into()
    );
    // bob can still read alice's message, under the name she had.
    let mut bob = hub.join(Transport::Unix, "bob");
    let inbox = bob.call("inbox", json!({}));
    assert_eq!(inbox["messages"][0]["from"], "alice", "{inbox}");
    // Replying to the forgotten sender says so.
    let reply = bob.fail(
        "reply",
        json!({ "ask_id": "m-2", "text": "hi" }),
        "peer_not_found",
    );
    assert!(
        reply["message"]
            .as_str()
            .is_some_and(|message| message.contains("forgotten")),
        "{reply}"
    );

    // The forgetting is in the log: after a restart alice is still gone, and her name
    // registers anew with an empty mailbox.
    drop((dave, erin, bob));
    hub.restart();
    let mut alice = hub.join(Transport::Unix, "alice");
    let inbox = alice.call("inbox", json!({ "include_pushed": true }));
    assert_eq!(inbox["messages"], json!([]), "{inbox}");
    let (peers, _) = all_peers(&mut alice, None);
    assert_eq!(
        names(&peers),
        ["bob", "carol", "dave", "erin"].map(String::from).into()
    );
}

/// A history of `IDENTITIES_MAX` identities that all left: `session-0` sent every other one a
/// message; those in `read` read it. Each has a working directory of 2,000 bytes, so a page of
/// 500 peers would not fit a frame.
fn full_table(read: &[usize]) -> Vec<(u64, Event)> {
    let cwd = format!("/src/{}", "d".repeat(2_000));
    let start = now_us() - 10 * DAY_US;
    let mut events = Vec::new();
    for index in 0..IDENTITIES_MAX {
        events.push((start, register(&format!("session-{index}"), &cwd)));
    }
    for index in 1..IDENTITIES_MAX {
        let (from, to) = ("session-0".to_owned(), format!("session-{index}"));
        events.push((start, message(&format!("m-{index}"), &from, &to)));
    }
    for &index in read {
        events.push((start, read_up_to(&format!("session-{index}"), 1)));
    }
    // They leave one a second, in index order: session-1 has been gone longest.
    for index in 0..IDENTITIES_MAX {
        let timestamp_us = start + index as u64 * 1_000_000;
        events.push((timestamp_us, left(&format!("session-{index}"))));
    }
    events
}

#[test]
fn at_the_identity_limit_a_new_name_forgets_the_identity_gone_longest_or_is_refused() {
    // session-0 sent the mail but has none, so it could go too; it left first.
    let hub = Hub::start_in(data_dir_with(&full_table(&[4242, 42])), &[]);

    let mut first = hub.join(Transport::Unix, "newcomer-1");
    let (peers, pages) = all_peers(&mut first, None);
    assert_eq!(peers.len(), IDENTITIES_MAX - 1, "everyone but newcomer-1");
    assert!(
        !names(&peers).contains("session-0"),
        "gone longest, nothing unread"
    );
    assert!(
        pages > IDENTITIES_MAX / 500,
        "pages end at the byte bound: {pages}"
    );
    eprintln!("peers: {} peers in {pages} pages", peers.len());
    // Online first, then by name, across pages; no peer twice.
    assert_eq!(names(&peers).len(), peers.len());
    let mut seen: Vec<(bool, String)> = peers
        .iter()
        .map(|peer| {
            let online = peer["online"].as_bool().expect("online");
            (!online, peer["name"].as_str().expect("name").to_owned())
        })
        .collect();
    let in_order = seen.clone();
    seen.sort();
    assert_eq!(seen, in_order);

    // The next two new names take the places of session-42, then session-4242 (the ones with
    // their mail read, gone longest first); the rest all have unread mail.
    let mut second = hub.join(Transport::Unix, "newcomer-2");
    let after_second = names(&all_peers(&mut second, Some(1000)).0);
    assert!(!after_second.contains("session-42"));
    assert!(after_second.contains("session-4242"));
    let mut third = hub.join(Transport::Unix, "newcomer-3");
    assert!(!names(&all_peers(&mut third, None).0).contains("session-4242"));

    let mut fourth = hub.greeted(Transport::Unix);
    let refused = fourth.fail(
        "register",
        support::register_params("newcomer-4"),
        "limit_reached",
    );
    let message = refused["message"].as_str().expect("a message");
    assert!(
        message.contains("10000 identities") && message.contains("none can be forgotten"),
        "{message}"
    );
    // A known name still connects at the limit.
    drop((first, second, third, fourth));
    let mut known = hub.join(Transport::Unix, "session-7");
    assert_eq!(all_peers(&mut known, None).0.len(), IDENTITIES_MAX - 1);
}

#[test]
fn a_cursor_the_hub_did_not_make_is_bad_args() {
    let hub = Hub::start();
    let mut alice = hub.join(Transport::Unix, "alice");
    for cursor in ["alice", "maybe:alice", "on:", "off:bad name"] {
        alice.fail("peers", json!({ "cursor": cursor }), "bad_args");
    }
    alice.fail("peers", json!({ "limit": 0 }), "bad_args");
    alice.fail("peers", json!({ "limit": 1001 }), "bad_args");
    alice.fail("rooms", json!({ "cursor": "bad name" }), "bad_args");
    // One peer per page: bob, then carol, then the end.
    let _bob = hub.join(Transport::Unix, "bob");
    let _carol = hub.join(Transport::Unix, "carol");
    let first = alice.call("peers", json!({ "limit": 1 }));
    assert_eq!(first["peers"][0]["name"], "bob");
    let second = alice.call(
        "peers",
        json!({ "limit": 1, "cursor": first["next_cursor"] }),
    );
    assert_eq!(second["peers"][0]["name"], "carol");
    assert!(second.get("next_cursor").is_none(), "{second}");
    // Rooms page alike.
    for room in ["a", "b", "c"] {
        alice.call("room_join", json!({ "room": room }));
    }
    let rooms = alice.call("rooms", json!({ "limit": 2 }));
    assert_eq!(rooms["rooms"].as_array().map(Vec::len), Some(2));
    let rest = alice.call("rooms", json!({ "cursor": rooms["next_cursor"] }));
    assert_eq!(rest["rooms"][0]["name"], "c", "{rest}");
    assert!(rest.get("next_cursor").is_none(), "{rest}");
}
