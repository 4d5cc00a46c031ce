//! Hub lifecycle through the real binary: sessions start the hub on demand (two at once
//! end with one hub), the idle timeout stops it, and it exits cleanly.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn hubs_serving(data_dir: &Path) -> Vec<String> {
    let output = Command::new("pgrep")
        .arg("-f")
        .arg(format!("relay hub --data-dir {}", data_dir.display()))
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn stop_hubs(data_dir: &Path) {
    let _ = Command::new("pkill")
        .arg("-f")
        .arg(format!("relay hub --data-dir {}", data_dir.display()))
        .status();
}

#[test]
fn two_sessions_starting_at_once_end_with_one_hub() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let children: Vec<_> = ["ann", "bob", "cy"]
        .iter()
        .map(|name| {
            Command::new(env!("CARGO_BIN_EXE_relay"))
                .args(["peers", "--json", "--as", name, "--data-dir"])
                .arg(&data_dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn relay peers")
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|child| child.wait_with_output().expect("wait"))
        .collect();
    let hubs = hubs_serving(&data_dir);
    stop_hubs(&data_dir);
    for output in &outputs {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let peers: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
        assert!(peers["me"].is_string());
    }
    assert_eq!(
        hubs.len(),
        1,
        "exactly one hub serves the data dir: {hubs:?}"
    );
}

#[test]
fn the_hub_exits_after_the_idle_timeout_and_removes_its_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hub = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["hub", "--idle-exit", "1", "--no-ws", "--data-dir"])
        .arg(dir.path())
        .spawn()
        .expect("start hub");
    let socket = dir.path().join("hub.sock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "the hub did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A session comes and goes; the idle clock starts when it leaves.
    drop(UnixStream::connect(&socket).expect("connect"));
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = hub.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = hub.kill();
            panic!("the hub did not exit after its idle timeout");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "idle exit is a clean exit: {status}");
    assert!(!socket.exists(), "the socket is removed on exit");
}

#[test]
fn relay_send_reports_peer_not_found_and_exit_code_1_for_a_name_never_seen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["send", "nobody-ever", "hello", "--as", "ann", "--data-dir"])
        .arg(&data_dir)
        .output()
        .expect("relay send");
    stop_hubs(&data_dir);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("peer_not_found"));
}
