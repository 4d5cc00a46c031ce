//! Bounds of the real hub at and past their limits: running out of file descriptors does not
//! make the accept loop spin and the hub serves again once descriptors return; new identities
//! are rate limited per local user while known names reconnect freely; every file the hub
//! creates is private even in a pre-existing 0755 data dir; a stopping hub writes the replies
//! it released before it closes the connections.
//!
//! Black-box: real `relay hub` processes, the conformance suite's line-protocol client.

// The conformance suite's helpers; this suite uses a few of them.
#[allow(dead_code, reason = "shared with hub_conformance, which uses the rest")]
mod support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Hub, Transport};

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

/// The hub's `NEW_IDENTITIES_BURST`.
const NEW_IDENTITIES_BURST: usize = 256;

/// User plus system CPU time of a process so far, in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')').expect("a command name") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

/// Waits until `socket` accepts a connection.
fn wait_for_socket(socket: &Path) {
    let started = Instant::now();
    while UnixStream::connect(socket).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no hub on {socket:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A raw line client: `hello`, then whatever the test asks.
fn line_client(socket: &Path) -> (UnixStream, BufReader<UnixStream>) {
    let stream = UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("a read timeout");
    let reader = BufReader::new(stream.try_clone().expect("a second handle"));
    (stream, reader)
}

fn read_json(reader: &mut BufReader<UnixStream>) -> Option<Value> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(serde_json::from_str(&line).expect("JSON from the hub")),
    }
}

#[test]
fn out_of_descriptors_the_accept_loop_backs_off_and_recovers() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().join("data");
    // Soft and hard limit 40: the hub cannot raise it, and runs out after a few dozen clients.
    let mut child = Command::new("prlimit")
        .args([
            "--nofile=40:40",
            "--",
            RELAY,
            "hub",
            "--no-ws",
            "--idle-exit",
            "0",
        ])
        .arg("--data-dir")
        .arg(&data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prlimit runs the hub");
    let socket = data_dir.join("hub.sock");
    wait_for_socket(&socket);
    let pid = child.id();
    // Connections wait in the backlog once the hub has no descriptor to accept them with.
    let crowd: Vec<UnixStream> = (0..60)
        .map(|_| UnixStream::connect(&socket).expect("connect (the backlog takes it)"))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let spent = cpu_ticks(pid) - before;
    eprintln!("hub CPU over 2 s out of descriptors: {spent} ticks");
    // A spinning accept loop burns a whole core: ~200 ticks. Backing off costs almost none.
    assert!(spent < 50, "the hub spent {spent} ticks in 2 s");
    drop(crowd);
    // Descriptors are back: a new client is served within the back-off's bound and a margin.
    let started = Instant::now();
    let answered = loop {
        let (mut stream, mut reader) = line_client(&socket);
        let hello = json!({"jsonrpc": "2.0", "id": 1, "method": "hello", "params": support::hello_params(1, 1)});
        let _ = writeln!(stream, "{hello}");
        if let Some(answer) = read_json(&mut reader) {
            break answer;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the hub did not serve again"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(answered.get("result").is_some(), "{answered}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn new_identities_are_rate_limited_but_known_names_reconnect() {
    let hub = Hub::start();
    let mut session = hub.greeted(Transport::Unix);
    let mut refused = None;
    for index in 0..=NEW_IDENTITIES_BURST + 8 {
        let name = format!("agent-{index}");
        let answer = session.request("register", support::register_params(&name));
        if answer.get("error").is_some() {
            refused = Some((index, answer));
            break;
        }
        // One connection per identity: reconnect for the next.
        session = hub.greeted(Transport::Unix);
    }
    let (index, answer) = refused.expect("registrations past the burst are refused");
    assert!(
        (NEW_IDENTITIES_BURST..=NEW_IDENTITIES_BURST + 8).contains(&index),
        "refused at {index}"
    );
    assert_eq!(answer["error"]["data"]["code"], "rate_limited", "{answer}");
    assert!(
        answer["error"]["data"]["retry_after_ms"].as_u64().is_some(),
        "{answer}"
    );
    // A name seen before costs nothing.
    let mut again = hub.greeted(Transport::Unix);
    let answer = again.request("register", support::register_params("agent-3"));
    assert_eq!(answer["result"]["name"], "agent-3", "{answer}");
}

#[test]
fn files_in_a_pre_existing_0755_data_dir_are_private() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).expect("a data dir");
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod 755");
    let mut child = Command::new(RELAY)
        .args(["hub", "--ws-port", "0", "--idle-exit", "0"])
        .arg("--data-dir")
        .arg(&data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the hub starts");
    wait_for_socket(&data_dir.join("hub.sock"));
    let mut loose = Vec::new();
    let mut seen = 0;
    let mut pending = vec![data_dir.clone()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).expect("readable") {
            let entry = entry.expect("an entry");
            let metadata = entry.metadata().expect("metadata");
            let mode = metadata.permissions().mode() & 0o777;
            seen += 1;
            if metadata.is_dir() {
                pending.push(entry.path());
            }
            if mode & 0o077 != 0 {
                loose.push(format!("{} {mode:03o}", entry.path().display()));
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen >= 4, "the hub created its files ({seen} seen)");
    assert!(loose.is_empty(), "readable by others: {loose:?}");
}

#[test]
fn a_stopping_hub_answers_every_send_it_stored() {
    const SENDS: usize = 2000;
    let mut hub = Hub::start_with(&["--send-rate", "100000", "--send-burst", "100000"]);
    let (mut alice, mut reader) = line_client(&hub.socket_path());
    let hello = json!({"jsonrpc": "2.0", "id": 0, "method": "hello", "params": support::hello_params(1, 1)});
    writeln!(alice, "{hello}").expect("hello");
    let register = json!({"jsonrpc": "2.0", "id": 1, "method": "register", "params": support::register_params("alice")});
    writeln!(alice, "{register}").expect("register");
    let mut inbox = hub.join(Transport::Unix, "alice-inbox");
    drop(inbox.call("peers", json!({})));
    drop(inbox);
    for expected in 0..2 {
        let answer = read_json(&mut reader).expect("an answer");
        assert_eq!(answer["id"], json!(expected), "{answer}");
    }
    // Nobody holds "alice-inbox": every stored send is answered `queued` at once, none waits
    // for an ack. A writer keeps sending while the hub is told to stop.
    let mut writer = alice.try_clone().expect("a writer handle");
    let sending = std::thread::spawn(move || {
        for index in 0..SENDS {
            let send = json!({"jsonrpc": "2.0", "id": 100 + index, "method": "send", "params": {"to": "alice-inbox", "text": format!("m{index}")}});
            if writeln!(writer, "{send}").is_err() {
                return;
            }
            if index % 10 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    // Read while the hub stops: a reader that stops reading is one the hub may give up on.
    let reading = std::thread::spawn(move || {
        let (mut ok, mut refused) = (0, 0);
        while let Some(answer) = read_json(&mut reader) {
            if answer.get("result").is_some() {
                ok += 1;
            } else if answer.get("error").is_some() {
                refused += 1;
            }
        }
        (ok, refused)
    });
    std::thread::sleep(Duration::from_millis(150));
    let status = hub.terminate();
    assert!(status.success(), "the hub exited with {status}");
    let _ = sending.join();
    let (ok, refused) = reading.join().expect("the reader");
    hub.start_again();
    let mut check = hub.greeted(Transport::Unix);
    let registered = check.request("register", support::register_params("alice-inbox"));
    assert!(registered.get("result").is_some(), "{registered}");
    let unread = check.call("unread", json!({}));

    let stored = unread["direct"].as_u64().expect("a count") as usize;
    eprintln!("{ok} answered ok, {refused} refused while stopping, {stored} stored");
    assert_eq!(
        ok, stored,
        "every stored send was answered, and only those: {unread}"
    );
}
