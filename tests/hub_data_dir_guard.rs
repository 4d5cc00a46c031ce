//! The hub refuses a data dir other users could write into, a `ws.token` they could read, and
//! (checked when the suite runs as root, which can make one) a data dir another user owns:
//! each with an error naming the path and the fix, and nothing served.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn start_hub(data_dir: &Path) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["hub", "--idle-exit", "0", "--ws-port", "0", "--data-dir"])
        .arg(data_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("relay hub starts");
    // A refused data dir ends the hub at once; one that is accepted keeps running.
    for _ in 0..100 {
        if child.try_wait().expect("waitable").is_some() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the hub started on {data_dir:?}");
}

#[test]
fn a_data_dir_others_can_write_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).expect("the data dir");
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let output = start_hub(&data_dir);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("mode 777") && stderr.contains("chmod 700"),
        "{stderr}"
    );
    assert!(!data_dir.join("hub.sock").exists(), "nothing served");
}

#[test]
fn a_readable_token_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).expect("the data dir");
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let token = data_dir.join("ws.token");
    std::fs::write(&token, "0123456789abcdef").expect("a token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let output = start_hub(&data_dir);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ws.token") && stderr.contains("chmod 600"),
        "{stderr}"
    );
}

#[test]
fn a_data_dir_of_another_user_is_refused() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!(
            "not root: cannot make a directory another user owns; the mode checks above still ran"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).expect("the data dir");
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::os::unix::fs::chown(&data_dir, Some(65534), Some(65534)).expect("chown");
    let output = start_hub(&data_dir);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("belongs to uid 65534"), "{stderr}");
}
