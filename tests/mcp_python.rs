//! `relay mcp` driven by the official MCP Python SDK (`mcp` from PyPI), the client most MCP
//! hosts are modelled on: `tests/python/mcp_channel_client.py` checks initialize, the tool
//! list, one tool call and one received `notifications/claude/channel`.
//!
//! The Python comes from `RELAY_TEST_PYTHON` (a venv with `mcp` installed). Without it this
//! test fails and says how to make one; it never skips silently, so CI cannot lose it unseen.

mod mcp_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mcp_support::{RELAY, Scene};

const SETUP: &str = "RELAY_TEST_PYTHON is not set: it must name a python with the `mcp` package \
(tests/python/requirements.txt). Create one with\n    RELAY_TEST_PYTHON=$(tests/python/venv.sh) cargo test\n\
or by hand: python3 -m venv /tmp/relay-venv && /tmp/relay-venv/bin/pip install -r tests/python/requirements.txt \
&& export RELAY_TEST_PYTHON=/tmp/relay-venv/bin/python";

/// Longest the Python client may take (it waits 20 s for the notification itself).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn the_official_python_sdk_initializes_lists_calls_and_receives_the_channel() {
    let python = std::env::var_os("RELAY_TEST_PYTHON")
        .filter(|python| !python.is_empty())
        .unwrap_or_else(|| panic!("{SETUP}"));
    let importable = Command::new(&python)
        .args(["-c", "import mcp.client.extension"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        importable.is_ok_and(|status| status.success()),
        "{python:?} cannot import mcp 2.x.\n{SETUP}"
    );
    let scene = Scene::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/mcp_channel_client.py");
    let mut child = Command::new(&python)
        .arg(script)
        .arg(RELAY)
        .arg(scene.data_dir())
        .env_remove("RELAY_PEER_ID")
        .env_remove("RELAY_HOME")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            panic!("the Python client did not finish within {SCRIPT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim_end().ends_with("ok"),
        "the Python client failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}
