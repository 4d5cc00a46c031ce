//! Two real hubs with no direct link, exchanging messages through a real nats-server with
//! JetStream on 127.0.0.1 (`[nats]` in federation.toml): `name@hub` sends cross exactly once,
//! also across a SIGKILL of nats-server mid-stream and of the receiving hub. Skipped, saying so,
//! only when nats-server is not installed (`.ci/run` installs it).

#[path = "support/nats.rs"]
mod nats_support;
#[allow(dead_code, reason = "shared with hub_conformance, which uses the rest")]
mod support;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Hub, Session, Transport};

const SECRET: &str = "6b8d0f2a4c6e8b1d3f5a7c9e2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a3c5e7b9d";
const DEADLINE: Duration = Duration::from_secs(90);

fn installed() -> bool {
    let found = Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        println!(
            "SKIPPED: nats-server is not installed (apt-get install -y nats-server; .ci/run does)"
        );
    }
    found
}

/// nats-server with JetStream on a loopback port and a temp store; killed on drop.
struct Nats {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
}

impl Nats {
    fn start() -> Nats {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut nats = Nats {
            child: None,
            port,
            store: tempfile::tempdir().expect("a store dir"),
        };
        nats.spawn();
        nats
    }

    fn spawn(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        let child = self.child.insert(child);
        nats_support::wait_until_serving(child, self.port, DEADLINE);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// A data dir for hub `me` whose only route to `peer` is the NATS server.
fn nats_dir(me: &str, peer: &str, port: u16) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a data dir");
    let text = format!(
        "hub_id = \"{me}\"\nsecret = \"{SECRET}\"\n[[peer]]\nhub_id = \"{peer}\"\n[nats]\nurl = \"nats://127.0.0.1:{port}\"\n"
    );
    let path = dir.path().join("federation.toml");
    std::fs::write(&path, text).expect("federation.toml written");
    set_private(&path);
    dir
}

/// Pulls `session`'s inbox until `expected` texts arrived; asserts each arrived exactly once.
fn assert_exactly_once(session: &mut Session, expected: &[String]) {
    let deadline = Instant::now() + DEADLINE;
    let mut seen: Vec<String> = Vec::new();
    loop {
        let inbox = session.call("inbox", json!({ "limit": 100 }));
        for message in inbox["messages"].as_array().into_iter().flatten() {
            seen.push(message["text"].as_str().unwrap_or_default().to_owned());
        }
        let distinct: BTreeSet<&String> = seen.iter().collect();
        if distinct.len() >= expected.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {} arrived through NATS",
            distinct.len(),
            expected.len()
        );
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_millis(500));
    let inbox = session.call("inbox", json!({ "limit": 100 }));
    for message in inbox["messages"].as_array().into_iter().flatten() {
        seen.push(message["text"].as_str().unwrap_or_default().to_owned());
    }
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), distinct.len(), "a message arrived twice");
    assert_eq!(distinct, expected.iter().collect::<BTreeSet<_>>());
}

#[test]
fn hubs_without_a_direct_link_exchange_through_jetstream_exactly_once_across_sigkills() {
    if !installed() {
        return;
    }
    let mut nats = Nats::start();
    let fast = ["--send-rate", "100000", "--send-burst", "100000"];
    let a = Hub::start_in(nats_dir("a", "b", nats.port), &fast);
    let mut b = Hub::start_in(nats_dir("b", "a", nats.port), &fast);
    let mut alice = a.join(Transport::Unix, "alice");
    drop(b.join(Transport::Unix, "bob"));
    let texts: Vec<String> = (0..150).map(|n| format!("through nats {n}")).collect();
    for (n, text) in texts.iter().enumerate() {
        let sent = alice.call("send", json!({ "to": "bob@b", "text": text }));
        assert_eq!(sent["status"], "forwarded", "{sent}");
        match n {
            // The NATS server dies mid-stream and comes back on the same store.
            50 => {
                nats.kill();
                nats.spawn();
            }
            // The receiving hub dies mid-stream and comes back.
            100 => {
                b.kill();
                b.start_again();
            }
            _ => {}
        }
    }
    let mut bob = b.join(Transport::Unix, "bob");
    assert_exactly_once(&mut bob, &texts);
    // And back the other way.
    let back: Vec<String> = (0..20).map(|n| format!("back {n}")).collect();
    for text in &back {
        bob.call("send", json!({ "to": "alice@a", "text": text }));
    }
    assert_exactly_once(&mut alice, &back);
}

/// A data dir for hub `me` whose peers are `peers`, all reached through the NATS server.
fn nats_dir_with_peers(me: &str, peers: &[String], port: u16) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a data dir");
    let mut text = format!("hub_id = \"{me}\"\nsecret = \"{SECRET}\"\n");
    for peer in peers.iter().filter(|peer| peer.as_str() != me) {
        text.push_str(&format!("[[peer]]\nhub_id = \"{peer}\"\n"));
    }
    text.push_str(&format!("[nats]\nurl = \"nats://127.0.0.1:{port}\"\n"));
    let path = dir.path().join("federation.toml");
    std::fs::write(&path, text).expect("federation.toml written");
    set_private(&path);
    dir
}

#[test]
fn ten_hubs_with_no_direct_links_exchange_exactly_once() {
    if !installed() {
        return;
    }
    let nats = Nats::start();
    let ids: Vec<String> = (0..10).map(|n| format!("h{n}")).collect();
    let fast = ["--send-rate", "100000", "--send-burst", "100000"];
    let hubs: Vec<Hub> = ids
        .iter()
        .map(|id| Hub::start_in(nats_dir_with_peers(id, &ids, nats.port), &fast))
        .collect();
    let mut users: Vec<Session> = hubs
        .iter()
        .zip(&ids)
        .map(|(hub, id)| hub.join(Transport::Unix, &format!("u-{id}")))
        .collect();
    for (from, sender) in users.iter_mut().enumerate() {
        for (to, id) in ids.iter().enumerate().filter(|(to, _)| *to != from) {
            for n in 0..3 {
                let text = format!("{} -> {to} #{n}", ids[from]);
                let sent = sender.call(
                    "send",
                    json!({ "to": format!("u-{id}@{id}"), "text": text }),
                );
                assert_eq!(sent["status"], "forwarded", "{sent}");
            }
        }
    }
    for (to, user) in users.iter_mut().enumerate() {
        let expected: Vec<String> = (0..10)
            .filter(|from| *from != to)
            .flat_map(|from| (0..3).map(move |n| format!("h{from} -> {to} #{n}")))
            .collect();
        assert_exactly_once(user, &expected);
    }
}
