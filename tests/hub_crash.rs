//! Crash test: sessions send under load while the hub is killed with SIGKILL at random
//! moments and restarted. Every send the hub acknowledged must be in the log exactly once
//! (as the recipient's `message_sent`), and the hub's state, written as a snapshot on its
//! final clean shutdown, must equal `relay replay` of the same data dir.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

const CLIENTS: usize = 4;

fn start_hub(data_dir: &Path) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args([
            "hub",
            "--idle-exit",
            "0",
            "--no-ws",
            "--send-rate",
            "100000",
            "--send-burst",
            "100000",
            "--data-dir",
        ])
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hub");
    let deadline = Instant::now() + Duration::from_secs(20);
    while UnixStream::connect(data_dir.join("hub.sock")).is_err() {
        assert!(Instant::now() < deadline, "the hub did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// A minimal blocking JSON-RPC session that answers the hub's pings.
struct Session {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
}

impl Session {
    fn open(socket: &Path, name: &str) -> Option<Session> {
        let stream = UnixStream::connect(socket).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let mut session = Session {
            writer: stream.try_clone().ok()?,
            reader: BufReader::new(stream),
            next_id: 1,
        };
        session
            .call(
                "hello",
                json!({"versions": {"min": 1, "max": 1}, "client": "crash-test"}),
            )?
            .ok()?;
        session
            .call(
                "register",
                json!({"name": name, "cwd": "/tmp", "client": "cli"}),
            )?
            .ok()?;
        Some(session)
    }

    /// `None` when the connection broke; `Some(Err)` for an error response.
    fn call(&mut self, method: &str, params: Value) -> Option<Result<Value, Value>> {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        writeln!(self.writer, "{request}").ok()?;
        // Bounded by the read timeout: every pass reads one line or gives up.
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let message: Value = serde_json::from_str(&line).ok()?;
            if message["method"] == "ping" {
                writeln!(
                    self.writer,
                    "{}",
                    json!({"jsonrpc": "2.0", "id": message["id"], "result": {}})
                )
                .ok()?;
            } else if message["method"] == "message" {
                // Acknowledge pushes as a session's client does, so senders are not held up
                // waiting for them (answers to these acks have string ids and are skipped).
                let push = &message["params"];
                let ack = json!({"jsonrpc": "2.0", "id": "ack", "method": "ack",
                    "params": {"msg_id": push["msg_id"], "step": "read"}});
                writeln!(self.writer, "{ack}").ok()?;
            } else if message["id"] == json!(id) {
                return Some(match message.get("result") {
                    Some(result) => Ok(result.clone()),
                    None => Err(message["error"].clone()),
                });
            }
        }
    }
}

fn relay(data_dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run relay")
}

#[test]
fn acknowledged_sends_survive_sigkill_exactly_once_and_state_equals_replay() {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir: PathBuf = dir.path().to_owned();
    let socket = data_dir.join("hub.sock");
    let mut hub = start_hub(&data_dir);
    let stop = Arc::new(AtomicBool::new(false));
    // body -> (msg id, recipient) for every acknowledged send.
    let acknowledged: Arc<Mutex<HashMap<String, (String, String)>>> = Arc::default();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|index| {
            let (socket, stop, acknowledged) = (socket.clone(), stop.clone(), acknowledged.clone());
            std::thread::spawn(move || {
                let (me, to) = (format!("c{index}"), format!("c{}", (index + 1) % CLIENTS));
                let mut session = None;
                let mut counter = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let Some(active) = session.as_mut() else {
                        session = Session::open(&socket, &me);
                        if session.is_none() {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        continue;
                    };
                    counter += 1;
                    let body = format!("{me}-{counter}");
                    match active.call("send", json!({"to": to, "text": body})) {
                        Some(Ok(result)) => {
                            let msg_id = result["msg_id"].as_str().expect("msg_id").to_owned();
                            acknowledged
                                .lock()
                                .expect("lock")
                                .insert(body, (msg_id, to.clone()));
                        }
                        // Before everyone registered once, the recipient may be unknown.
                        Some(Err(error)) => {
                            assert_eq!(error["data"]["code"], "peer_not_found", "{error}")
                        }
                        None => session = None,
                    }
                }
            })
        })
        .collect();
    let mut random = seed;
    for _ in 0..4 {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        std::thread::sleep(Duration::from_millis(300 + random % 500));
        hub.kill().expect("SIGKILL");
        hub.wait().expect("wait");
        hub = start_hub(&data_dir);
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Release);
    for client in clients {
        client.join().expect("client thread");
    }
    let status = Command::new("kill")
        .arg(hub.id().to_string())
        .status()
        .expect("SIGTERM");
    assert!(status.success());
    assert!(
        hub.wait().expect("wait").success(),
        "a clean shutdown exits 0"
    );

    let acknowledged = acknowledged.lock().expect("lock");
    assert!(
        acknowledged.len() > 50,
        "too little load to prove anything: {}",
        acknowledged.len()
    );
    let events = relay(
        &data_dir,
        &[
            "replay",
            "--kind",
            "message_sent",
            "--format",
            "json",
            "--quiet",
        ],
    );
    assert!(
        events.status.success(),
        "{}",
        String::from_utf8_lossy(&events.stderr)
    );
    let mut seen: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for line in String::from_utf8_lossy(&events.stdout).lines() {
        let event: Value = serde_json::from_str(line).expect("json line");
        let body = event["event"]["body"].as_str().expect("body").to_owned();
        let id = event["event"]["id"].as_str().expect("id").to_owned();
        let to = event["event"]["to"].as_str().expect("to").to_owned();
        seen.entry(body).or_default().push((id, to));
    }
    for (body, (msg_id, to)) in acknowledged.iter() {
        let copies = seen.get(body).map_or(0, Vec::len);
        assert_eq!(
            copies, 1,
            "acknowledged {body} ({msg_id}) is in the log {copies} times (seed {seed})"
        );
        assert_eq!(&seen[body][0], &(msg_id.clone(), to.clone()), "seed {seed}");
    }
    let verify = relay(&data_dir, &["replay", "--verify", "--quiet", "--state"]);
    assert!(
        verify.status.success(),
        "live state differs from replay: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let report = String::from_utf8_lossy(&verify.stderr);
    assert!(
        !report.contains("; 0 snapshot(s)") && report.contains("snapshot(s) match"),
        "the clean shutdown must leave a snapshot to compare: {report}"
    );
}
