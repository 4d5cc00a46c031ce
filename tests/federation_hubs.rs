//! Federation between real hubs: two `relay hub` processes on loopback, linked over TCP through
//! a proxy the test can cut. Direct messages, asks and replies cross with `name@hub`
//! addressing, receipts come back, a partition with traffic on both sides heals with every
//! acknowledged message delivered exactly once, and so does a SIGKILL of either hub
//! mid-stream. A wrong secret links nothing; groups refuse other hubs' peers, clearly.

#[allow(dead_code, reason = "shared with hub_conformance, which uses the rest")]
mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Hub, Session, Transport};

/// How long a link may take to come up or catch up before a test fails.
const LINK_DEADLINE: Duration = Duration::from_secs(60);

const SECRET: &str = "3f9a1c5e7b2d4f6081a3c5e7f9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7";

/// A loopback TCP port nobody listens on (bound and released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// A TCP forwarder to `target` the test can cut (closing every connection and refusing new
/// ones) and heal.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy binds");
        let port = listener.local_addr().expect("bound").port();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (cut_flag, open_list) = (cut.clone(), open.clone());
        thread::spawn(move || {
            for incoming in listener.incoming() {
                let Ok(client) = incoming else { continue };
                if cut_flag.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                for stream in [&client, &server] {
                    if let Ok(clone) = stream.try_clone() {
                        open_list.lock().expect("lock").push(clone);
                    }
                }
                pipe(&client, &server);
                pipe(&server, &client);
            }
        });
        Proxy { port, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for stream in self.open.lock().expect("lock").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    thread::spawn(move || {
        let mut buffer = [0u8; 16 << 10];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    if to.write_all(&buffer[..read]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// Writes `federation.toml` for hub `me` into a fresh data dir.
fn federated_dir(
    me: &str,
    listen: Option<u16>,
    peer: &str,
    address: Option<u16>,
) -> tempfile::TempDir {
    federated_dir_with_secret(me, listen, peer, address, SECRET)
}

fn federated_dir_with_secret(
    me: &str,
    listen: Option<u16>,
    peer: &str,
    address: Option<u16>,
    secret: &str,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a data dir");
    let mut text = format!("hub_id = \"{me}\"\nsecret = \"{secret}\"\n");
    if let Some(port) = listen {
        text.push_str(&format!("listen = \"127.0.0.1:{port}\"\n"));
    }
    text.push_str(&format!("[[peer]]\nhub_id = \"{peer}\"\n"));
    if let Some(port) = address {
        text.push_str(&format!("address = \"127.0.0.1:{port}\"\n"));
    }
    let path = dir.path().join("federation.toml");
    std::fs::write(&path, text).expect("federation.toml written");
    set_private(&path);
    dir
}

fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// Hub `a` listening, hub `b` dialing it through a proxy.
struct Pair {
    a: Hub,
    b: Hub,
    proxy: Proxy,
}

fn pair() -> Pair {
    let listen = free_port();
    let proxy = Proxy::start(listen);
    // Tests send hundreds of messages as fast as they can: the send rate is not under test.
    let fast = ["--send-rate", "100000", "--send-burst", "100000"];
    let a = Hub::start_in(federated_dir("a", Some(listen), "b", None), &fast);
    let b = Hub::start_in(federated_dir("b", None, "a", Some(proxy.port)), &fast);
    Pair { a, b, proxy }
}

/// `hub_info` of `hub`'s link to `peer`.
fn link(hub: &Hub, peer: &str) -> Value {
    let mut probe = hub.greeted(Transport::Unix);
    let info = probe.call("hub_info", json!({}));
    info["links"]
        .as_array()
        .and_then(|links| links.iter().find(|link| link["hub_id"] == peer).cloned())
        .unwrap_or(Value::Null)
}

fn wait_for_link_state(hub: &Hub, peer: &str, state: &str) -> Value {
    let deadline = Instant::now() + LINK_DEADLINE;
    loop {
        let link = link(hub, peer);
        if link["state"] == state {
            return link;
        }
        assert!(
            Instant::now() < deadline,
            "link to {peer} not {state} within {LINK_DEADLINE:?}: {link}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Every unread message of `session`'s inbox, pulled until `count` distinct ids arrived (or
/// the deadline); returns (id, text) pairs in arrival order, duplicates included.
fn pull_until(session: &mut Session, count: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + LINK_DEADLINE;
    let mut seen = Vec::new();
    loop {
        let inbox = session.call("inbox", json!({ "limit": 100 }));
        for message in inbox["messages"].as_array().into_iter().flatten() {
            seen.push((
                message["msg_id"].as_str().unwrap_or_default().to_owned(),
                message["text"].as_str().unwrap_or_default().to_owned(),
            ));
        }
        let distinct: BTreeSet<&String> = seen.iter().map(|(id, _)| id).collect();
        if distinct.len() >= count {
            // One more look: nothing doubled may arrive late.
            thread::sleep(Duration::from_millis(300));
            let inbox = session.call("inbox", json!({ "limit": 100 }));
            for message in inbox["messages"].as_array().into_iter().flatten() {
                seen.push((
                    message["msg_id"].as_str().unwrap_or_default().to_owned(),
                    message["text"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {count} messages arrived within {LINK_DEADLINE:?}",
            distinct.len()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Texts of `seen` must be exactly `expected`, each once.
fn assert_exactly_once(seen: &[(String, String)], expected: &[String]) {
    let texts: Vec<&String> = seen.iter().map(|(_, text)| text).collect();
    let distinct: BTreeSet<&String> = texts.iter().copied().collect();
    assert_eq!(texts.len(), distinct.len(), "a message arrived twice");
    let expected: BTreeSet<&String> = expected.iter().collect();
    assert_eq!(distinct, expected, "lost or unexpected messages");
}

#[test]
fn a_message_crosses_with_name_at_hub_and_its_receipts_come_back() {
    let pair = pair();
    let mut alice = pair.a.join(Transport::Unix, "alice");
    let mut bob = pair.b.join(Transport::Unix, "bob");
    wait_for_link_state(&pair.a, "b", "up");
    wait_for_link_state(&pair.b, "a", "up");

    let sent = alice.call("send", json!({ "to": "bob@b", "text": "hello from a" }));
    assert_eq!(sent["status"], "forwarded", "{sent}");
    let push = bob.push();
    assert_eq!(push["from"], "alice@a");
    assert_eq!(push["text"], "hello from a");
    assert_eq!(push["origin_hub"], "a");
    let remote_id = push["msg_id"].as_str().expect("an id").to_owned();
    assert!(remote_id.ends_with("@a"), "{remote_id}");
    bob.ack(&push, "delivered");
    let receipt = alice.receipt();
    assert_eq!(receipt["msg_id"], sent["msg_id"]);
    assert_eq!(receipt["to"], "bob@b");
    assert_eq!(receipt["status"], "delivered");

    // Bob answers by id; the answer reaches alice as bob@b.
    let replied = bob.call("reply", json!({ "ask_id": remote_id, "text": "hi alice" }));
    assert_eq!(replied["status"], "forwarded", "{replied}");
    let answer = alice.push();
    assert_eq!(answer["from"], "bob@b");
    assert_eq!(answer["kind"], "reply");
    assert_eq!(answer["reply_to"], sent["msg_id"]);

    // Bob is listed on a as a peer of hub b, online while his session is.
    let deadline = Instant::now() + LINK_DEADLINE;
    loop {
        let peers = alice.call("peers", json!({}));
        let listed = peers["peers"]
            .as_array()
            .and_then(|peers| peers.iter().find(|peer| peer["name"] == "bob@b").cloned());
        if let Some(bob) = listed.filter(|bob| bob["online"] == true) {
            assert_eq!(bob["hub"], "b", "{bob}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bob@b never listed online: {peers}"
        );
        thread::sleep(Duration::from_millis(100));
    }

    // `name@<own hub>` is the local peer.
    let mut carol = pair.a.join(Transport::Unix, "carol");
    let local = alice.call("send", json!({ "to": "carol@a", "text": "local" }));
    assert_ne!(local["status"], "forwarded");
    assert_eq!(carol.push()["from"], "alice");
}

#[test]
fn an_ask_across_hubs_is_answered_and_resolved() {
    let pair = pair();
    let mut alice = pair.a.join(Transport::Unix, "alice");
    let mut bob = pair.b.join(Transport::Unix, "bob");
    wait_for_link_state(&pair.b, "a", "up");
    let asked = alice.call("ask", json!({ "to": "bob@b", "question": "ready?" }));
    assert_eq!(asked["status"], "forwarded", "{asked}");
    let question = bob.push();
    assert_eq!(question["kind"], "ask");
    let ask_id = question["ask_id"].as_str().expect("an ask id").to_owned();
    assert_eq!(
        ask_id,
        format!("{}@a", asked["ask_id"].as_str().expect("ask id"))
    );
    bob.call("reply", json!({ "ask_id": ask_id, "text": "yes" }));
    let answer = alice.push();
    assert_eq!(answer["text"], "yes");
    assert_eq!(answer["reply_to"], asked["ask_id"]);
    // The ask is answered: a second reply is no longer an answer to a pending ask.
    let pending = alice.call("unread", json!({}));
    assert!(pending.is_object());
}

#[test]
fn a_partition_with_traffic_on_both_sides_heals_exactly_once() {
    let pair = pair();
    let mut alice = pair.a.join(Transport::Unix, "alice");
    let mut bob = pair.b.join(Transport::Unix, "bob");
    wait_for_link_state(&pair.b, "a", "up");
    pair.proxy.cut();
    let to_bob: Vec<String> = (0..60).map(|n| format!("a->b {n}")).collect();
    let to_alice: Vec<String> = (0..60).map(|n| format!("b->a {n}")).collect();
    for (ab, ba) in to_bob.iter().zip(&to_alice) {
        assert_eq!(
            alice.call("send", json!({ "to": "bob@b", "text": ab }))["status"],
            "forwarded"
        );
        assert_eq!(
            bob.call("send", json!({ "to": "alice@a", "text": ba }))["status"],
            "forwarded"
        );
    }
    thread::sleep(Duration::from_millis(500));
    pair.proxy.heal();
    assert_exactly_once(&pull_until(&mut bob, to_bob.len()), &to_bob);
    assert_exactly_once(&pull_until(&mut alice, to_alice.len()), &to_alice);
    // The link acknowledged what it shipped.
    let deadline = Instant::now() + LINK_DEADLINE;
    while link(&pair.a, "b")["imported"].is_null() {
        assert!(
            Instant::now() < deadline,
            "a never recorded an import from b"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigkill_of_the_receiving_and_of_the_sending_hub_loses_and_doubles_nothing() {
    let mut pair = pair();
    let mut alice = pair.a.join(Transport::Unix, "alice");
    // Bob has been here before: his identity and mailbox wait for him while he is away.
    drop(pair.b.join(Transport::Unix, "bob"));
    wait_for_link_state(&pair.a, "b", "up");
    let texts: Vec<String> = (0..400).map(|n| format!("durable {n}")).collect();
    for (n, text) in texts.iter().enumerate() {
        let sent = alice.call("send", json!({ "to": "bob@b", "text": text }));
        assert_eq!(sent["status"], "forwarded", "{sent}");
        match n {
            // The receiving hub dies mid-stream and comes back.
            120 => {
                pair.b.kill();
                pair.b.start_again();
            }
            // Then the sending one (alice reconnects).
            260 => {
                pair.a.kill();
                pair.a.start_again();
                alice = pair.a.join(Transport::Unix, "alice");
            }
            _ => {}
        }
    }
    let mut bob = pair.b.join(Transport::Unix, "bob");
    assert_exactly_once(&pull_until(&mut bob, texts.len()), &texts);
}

#[test]
fn a_message_for_a_peer_the_other_hub_does_not_have_comes_back_refused() {
    let pair = pair();
    let mut alice = pair.a.join(Transport::Unix, "alice");
    wait_for_link_state(&pair.b, "a", "up");
    let sent = alice.call("send", json!({ "to": "nobody@b", "text": "anyone?" }));
    assert_eq!(sent["status"], "forwarded");
    let receipt = alice.receipt();
    assert_eq!(receipt["msg_id"], sent["msg_id"]);
    assert_eq!(receipt["status"], "refused", "{receipt}");
    let status = alice.call("status", json!({ "msg_id": sent["msg_id"] }));
    assert_eq!(status["reported"], "refused", "{status}");
}

#[test]
fn a_wrong_secret_links_nothing_and_the_message_waits() {
    let listen = free_port();
    let a = Hub::start_in(federated_dir("a", Some(listen), "b", None), &[]);
    let other = "5b7d9f1a3c5e7092b4d6f8a0c2e4a6b8d0f2a4c6e8b0d2f4a6c8e0b2d4f6a8c0";
    let b = Hub::start_in(
        federated_dir_with_secret("b", None, "a", Some(listen), other),
        &[],
    );
    let mut bob = b.join(Transport::Unix, "bob");
    let sent = bob.call("send", json!({ "to": "alice@a", "text": "never linked" }));
    assert_eq!(sent["status"], "forwarded");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let state = link(&b, "a");
        if state["state"] == "down" || state["state"] == "refused" {
            assert!(state["error"].is_string(), "{state}");
            break;
        }
        assert_ne!(state["state"], "up", "linked with a wrong secret: {state}");
        assert!(Instant::now() < deadline, "no failure reported: {state}");
        thread::sleep(Duration::from_millis(100));
    }
    assert_ne!(link(&a, "b")["state"], "up");
    assert!(link(&a, "b")["imported"].is_null());
    // `relay doctor` names the link and what to look at.
    let doctor = std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["doctor", "--data-dir"])
        .arg(b.data_dir())
        .output()
        .expect("relay doctor runs");
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(said.contains("federation link to a"), "{said}");
}

#[test]
fn unknown_hubs_are_refused_clearly() {
    let pair = pair();
    let mut alice = pair.a.join(Transport::Unix, "alice");
    let refused = alice.fail(
        "send",
        json!({ "to": "bob@zz", "text": "x" }),
        "peer_not_found",
    );
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("[[peer]]"),
        "{refused}"
    );
    let group = alice.fail(
        "group_create",
        json!({ "name": "team", "members": ["bob@zz"] }),
        "peer_not_found",
    );
    assert!(group["message"].as_str().is_some(), "{group}");
}

/// The next push of `session` that is not a presence or receipt notice, with its kind.
fn next_push_of_kind(session: &mut Session, kind: &str) -> Value {
    let deadline = Instant::now() + LINK_DEADLINE;
    loop {
        let push = session.push();
        if push["kind"] == kind {
            return push;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} push within {LINK_DEADLINE:?}; last {push}"
        );
    }
}

/// `group_history` of `group` for `session` until `count` messages (system ones included) are
/// visible; returns their (from, text).
fn history_until(session: &mut Session, group: &str, count: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + LINK_DEADLINE;
    let mut seen: Vec<(String, String)> = Vec::new();
    loop {
        let history = session.call("group_history", json!({ "group": group, "limit": 100 }));
        for message in history["messages"].as_array().into_iter().flatten() {
            let entry = (
                message["from"].as_str().unwrap_or_default().to_owned(),
                message["text"].as_str().unwrap_or_default().to_owned(),
            );
            if !seen.contains(&entry) {
                seen.push(entry);
            }
        }
        if seen.len() >= count {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "only {seen:?} of {count} group messages within {LINK_DEADLINE:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_group_homed_on_one_hub_has_members_on_another() {
    let pair = pair();
    let mut alice = pair.a.join(Transport::Unix, "alice");
    let mut bob = pair.b.join(Transport::Unix, "bob");
    let mut dan = pair.b.join(Transport::Unix, "dan");
    wait_for_link_state(&pair.a, "b", "up");
    wait_for_link_state(&pair.b, "a", "up");

    // The group lives on a; bob of hub b is a member from the start.
    let created = alice.call(
        "group_create",
        json!({ "name": "team", "members": ["bob@b"] }),
    );
    assert_eq!(created["members"], json!(["alice", "bob@b"]), "{created}");
    let added = next_push_of_kind(&mut bob, "system");
    assert!(
        added["text"]
            .as_str()
            .unwrap_or_default()
            .contains("added to group team@a by alice@a"),
        "{added}"
    );

    // A post on the home reaches the member hub, under the group's qualified name.
    alice.call(
        "group_send",
        json!({ "group": "team", "text": "hello team" }),
    );
    let post = next_push_of_kind(&mut bob, "group");
    assert_eq!(
        (&post["group"], &post["from"], &post["text"]),
        (&json!("team@a"), &json!("alice@a"), &json!("hello team")),
        "{post}"
    );

    // A member hub's post goes home first, which orders it and ships it back.
    let sent = bob.call(
        "group_send",
        json!({ "group": "team@a", "text": "hi from b" }),
    );
    assert_eq!(sent["home"], "a", "{sent}");
    let forwarded = next_push_of_kind(&mut alice, "group");
    assert_eq!(
        (&forwarded["group"], &forwarded["from"], &forwarded["text"]),
        (&json!("team"), &json!("bob@b"), &json!("hi from b")),
        "{forwarded}"
    );
    let on_b = history_until(&mut bob, "team@a", 2);
    assert_eq!(
        on_b,
        [
            ("alice@a".to_owned(), "hello team".to_owned()),
            ("bob".to_owned(), "hi from b".to_owned()),
        ],
        "the member hub sees the home's order"
    );

    // A second member on b; both get the next post, once each.
    alice.call("group_invite", json!({ "group": "team", "peer": "dan@b" }));
    next_push_of_kind(&mut dan, "system");
    alice.call(
        "group_send",
        json!({ "group": "team", "text": "welcome dan" }),
    );
    assert_eq!(next_push_of_kind(&mut bob, "group")["text"], "welcome dan");
    assert_eq!(next_push_of_kind(&mut dan, "group")["text"], "welcome dan");
    let info = dan.call("group_info", json!({ "group": "team@a" }));
    assert_eq!(info["admin"], "alice@a", "{info}");

    // Only the home changes members.
    let refused = bob.fail(
        "group_invite",
        json!({ "group": "team@a", "peer": "dan" }),
        "bad_args",
    );
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("homed on hub"),
        "{refused}"
    );
    bob.fail(
        "group_create",
        json!({ "name": "x@a", "members": [] }),
        "bad_args",
    );

    // Bob leaves on b; the home hears it and tells the group.
    bob.call("group_leave", json!({ "group": "team@a" }));
    let home_history = history_until(&mut alice, "team", 4);
    assert!(
        home_history.iter().any(|(_, text)| text == "bob@b left"),
        "{home_history:?}"
    );
    let groups = bob.call("group_list", json!({}));
    assert_eq!(groups["groups"], json!([]), "{groups}");

    // The home deletes it; dan hears it and the copy is gone.
    alice.call("group_delete", json!({ "group": "team" }));
    let deleted = next_push_of_kind(&mut dan, "system");
    assert!(
        deleted["text"]
            .as_str()
            .unwrap_or_default()
            .contains("group team@a was deleted"),
        "{deleted}"
    );
    let groups = dan.call("group_list", json!({}));
    assert_eq!(groups["groups"], json!([]), "{groups}");
}

/// Every message text of `group`'s visible history for `session` (read again when nothing is
/// unread), system notices left out, duplicates kept.
fn visible_texts(session: &mut Session, group: &str) -> Vec<String> {
    // The first read marks everything read; the second returns the visible history.
    session.call("group_history", json!({ "group": group, "limit": 500 }));
    let history = session.call("group_history", json!({ "group": group, "limit": 500 }));
    history["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|message| message["type"] == "user")
        .map(|message| message["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn group_posts_on_both_sides_of_a_partition_and_a_sigkill_arrive_once_in_the_homes_order() {
    let mut pair = pair();
    let mut alice = pair.a.join(Transport::Unix, "alice");
    let mut bob = pair.b.join(Transport::Unix, "bob");
    wait_for_link_state(&pair.a, "b", "up");
    wait_for_link_state(&pair.b, "a", "up");
    alice.call(
        "group_create",
        json!({ "name": "team", "members": ["bob@b"] }),
    );
    next_push_of_kind(&mut bob, "system");

    pair.proxy.cut();
    let mut expected = Vec::new();
    for n in 0..15 {
        let (from_a, from_b) = (format!("a {n}"), format!("b {n}"));
        alice.call("group_send", json!({ "group": "team", "text": from_a }));
        let sent = bob.call("group_send", json!({ "group": "team@a", "text": from_b }));
        assert_eq!(sent["home"], "a", "{sent}");
        expected.extend([from_a, from_b]);
        // The member hub dies mid-stream with posts still on their way home.
        if n == 7 {
            pair.b.kill();
            pair.b.start_again();
            bob = pair.b.join(Transport::Unix, "bob");
        }
    }
    pair.proxy.heal();
    history_until(&mut bob, "team@a", expected.len());
    history_until(&mut alice, "team", expected.len());
    let (on_a, on_b) = (
        visible_texts(&mut alice, "team"),
        visible_texts(&mut bob, "team@a"),
    );
    let mut sorted = on_a.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        on_a.len(),
        "a post arrived twice on the home: {on_a:?}"
    );
    let mut wanted = expected.clone();
    wanted.sort();
    assert_eq!(sorted, wanted, "lost or unexpected posts");
    assert_eq!(on_a, on_b, "the member hub's copy has the home's order");
}

/// A `relay relay-server` process on 127.0.0.1 for hubs `a`, `b` and `c`; killed on drop.
struct RelayServer {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

fn relay_token(hub: &str) -> String {
    format!("{hub}-7d1f3a5c9e2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a3c5e7")
}

impl RelayServer {
    fn start() -> RelayServer {
        use std::io::BufRead;
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("relay-server.toml");
        let text: String = ["a", "b", "c"]
            .iter()
            .map(|hub| {
                format!(
                    "[[hub]]\nhub_id = \"{hub}\"\ntoken = \"{}\"\n",
                    relay_token(hub)
                )
            })
            .collect();
        std::fs::write(&path, text).expect("config written");
        set_private(&path);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
            .args(["relay-server", "--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("relay relay-server starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = std::io::BufReader::new(stderr).lines();
        let first = lines.next().expect("a startup line").expect("readable");
        let address = first
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .to_owned();
        thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        RelayServer {
            child,
            url: format!("ws://{address}"),
            _dir: dir,
        }
    }
}

impl Drop for RelayServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A data dir for hub `me` with `peers` (`(hub, Some(port))` is dialed at that port, `None`
/// is met through the relay server) and this hub's `[relay]` section.
fn three_hub_dir(
    me: &str,
    listen: Option<u16>,
    peers: &[(&str, Option<u16>)],
    relay: &str,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a data dir");
    let mut text = format!("hub_id = \"{me}\"\nsecret = \"{SECRET}\"\n");
    if let Some(port) = listen {
        text.push_str(&format!("listen = \"127.0.0.1:{port}\"\n"));
    }
    for (peer, port) in peers {
        text.push_str(&format!("[[peer]]\nhub_id = \"{peer}\"\n"));
        if let Some(port) = port {
            text.push_str(&format!("address = \"127.0.0.1:{port}\"\n"));
        }
    }
    text.push_str(&format!(
        "[relay]\nurl = \"{relay}\"\ntoken = \"{}\"\n",
        relay_token(me)
    ));
    let path = dir.path().join("federation.toml");
    std::fs::write(&path, text).expect("federation.toml written");
    set_private(&path);
    dir
}

#[test]
fn three_hubs_over_tcp_and_the_relay_server_exchange_exactly_once() {
    let relay = RelayServer::start();
    let listen = free_port();
    let proxy = Proxy::start(listen);
    // a listens (b dials it through the proxy); c meets a and b through the relay server.
    let a = Hub::start_in(
        three_hub_dir("a", Some(listen), &[("b", None), ("c", None)], &relay.url),
        &[],
    );
    let b = Hub::start_in(
        three_hub_dir(
            "b",
            None,
            &[("a", Some(proxy.port)), ("c", None)],
            &relay.url,
        ),
        &[],
    );
    let c = Hub::start_in(
        three_hub_dir("c", None, &[("a", None), ("b", None)], &relay.url),
        &[],
    );
    let mut alice = a.join(Transport::Unix, "alice");
    let mut bob = b.join(Transport::Unix, "bob");
    let mut carol = c.join(Transport::Unix, "carol");
    for (hub, peer) in [(&a, "b"), (&a, "c"), (&b, "c"), (&c, "a"), (&c, "b")] {
        wait_for_link_state(hub, peer, "up");
    }
    let texts = |from: &str, to: &str| -> Vec<String> {
        (0..20).map(|n| format!("{from}->{to} {n}")).collect()
    };
    let (a_to_c, b_to_c, c_to_a) = (texts("a", "c"), texts("b", "c"), texts("c", "a"));
    // The TCP link is cut for a while: traffic through the relay goes on meanwhile.
    proxy.cut();
    for n in 0..20 {
        alice.call("send", json!({ "to": "carol@c", "text": a_to_c[n] }));
        bob.call("send", json!({ "to": "carol@c", "text": b_to_c[n] }));
        carol.call("send", json!({ "to": "alice@a", "text": c_to_a[n] }));
        alice.call(
            "send",
            json!({ "to": "bob@b", "text": format!("a->b {n}") }),
        );
    }
    let mut to_carol = a_to_c.clone();
    to_carol.extend(b_to_c.iter().cloned());
    assert_exactly_once(&pull_until(&mut carol, to_carol.len()), &to_carol);
    assert_exactly_once(&pull_until(&mut alice, c_to_a.len()), &c_to_a);
    proxy.heal();
    let a_to_b: Vec<String> = (0..20).map(|n| format!("a->b {n}")).collect();
    assert_exactly_once(&pull_until(&mut bob, a_to_b.len()), &a_to_b);

    // A group homed on a with members on b (over TCP) and c (through the relay server): a post
    // from c reaches b through the group's home, and a third hub's member keeps its hub.
    alice.call(
        "group_create",
        json!({ "name": "crew", "members": ["bob@b", "carol@c"] }),
    );
    next_push_of_kind(&mut carol, "system");
    let post = carol.call("group_send", json!({ "group": "crew@a", "text": "from c" }));
    assert_eq!(post["home"], "a", "{post}");
    let on_b = history_until(&mut bob, "crew@a", 1);
    assert_eq!(on_b, [("carol@c".to_owned(), "from c".to_owned())]);
    let on_a = history_until(&mut alice, "crew", 1);
    assert_eq!(on_a, [("carol@c".to_owned(), "from c".to_owned())]);
}

#[test]
fn a_broadcast_for_all_hubs_asks_the_peers_online_there_and_counts_their_replies() {
    let pair = pair();
    let mut alice = pair.a.join(Transport::Unix, "alice");
    let mut carol = pair.a.join(Transport::Unix, "carol");
    let mut bob = pair.b.join(Transport::Unix, "bob");
    wait_for_link_state(&pair.b, "a", "up");
    // Hub a learns who is online on b from the link's presence.
    let deadline = Instant::now() + LINK_DEADLINE;
    loop {
        let peers = alice.call("peers", json!({}));
        let online = peers["peers"].as_array().is_some_and(|peers| {
            peers
                .iter()
                .any(|peer| peer["name"] == "bob@b" && peer["online"] == true)
        });
        if online {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bob@b never online on a: {peers}"
        );
        thread::sleep(Duration::from_millis(100));
    }

    // Without all_hubs a broadcast stays on its hub.
    let local = alice.call("broadcast", json!({ "question": "local only?" }));
    assert_eq!(local["peer_count"], 1, "{local}");
    assert!(local.get("forwarded").is_none(), "{local}");
    assert_eq!(carol.push()["kind"], "broadcast");
    carol.call(
        "reply",
        json!({ "ask_id": local["broadcast_id"], "text": "yes" }),
    );
    assert_eq!(next_push_of_kind(&mut alice, "reply")["from"], "carol");

    let everywhere = alice.call(
        "broadcast",
        json!({ "question": "who is there?", "all_hubs": true }),
    );
    assert_eq!(everywhere["peer_count"], 2, "{everywhere}");
    assert_eq!(everywhere["forwarded"], json!(["bob@b"]), "{everywhere}");
    let question = next_push_of_kind(&mut bob, "ask");
    assert_eq!(question["from"], "alice@a");
    assert_eq!(question["text"], "who is there?");
    bob.call(
        "reply",
        json!({ "ask_id": question["ask_id"], "text": "bob on b" }),
    );
    let answer = next_push_of_kind(&mut alice, "reply");
    assert_eq!(answer["from"], "bob@b", "{answer}");
    assert_eq!(answer["text"], "bob on b");
}
