//! The GitHub Copilot CLI extension Relay installs (`assets/copilot/extension.mjs`), run by
//! `node` against a fake `@github/copilot-sdk/extension` (`tests/js/copilot_sdk/`) and a fake
//! `relay deliver` speaking the line protocol of `docs/delivery.md`
//! (`tests/js/copilot_fake_deliver.mjs`). The scenarios live in `tests/js/copilot_harness.mjs`;
//! each test here runs one and shows its output. Together they prove: each message becomes
//! exactly one `session.send` (`enqueue`, urgent ones `immediate`) acked `read`; a rejected send
//! is acked `refused` with a detail; an exited `relay deliver` is restarted with a back-off and a
//! message offered again is not sent twice; a command that cannot start is retried without a
//! crash; nothing is ever written to stdout (Copilot's JSON-RPC channel); SIGTERM takes the
//! child down too.
//!
//! End to end, the extension runs the real `relay deliver` against a real hub and a real
//! `relay mcp --client copilot`, both children of the test process as they are of Copilot's
//! (so `relay deliver` finds its session by ancestry): a `relay_send` reaches the fake
//! `session.send` framed, exactly once, and the sender sees `read`.
//!
//! `node` (20 or later) must be on PATH, or named by `RELAY_TEST_NODE`: without it these tests
//! fail, they do not pass silently.

mod mcp_support;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcp_support::{McpSession, PATIENCE, RELAY, Scene};
use serde_json::{Value, json};

/// The placeholder `relay install copilot` replaces with the deliver command.
const PLACEHOLDER: &str = "__RELAY_DELIVER_COMMAND__";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn extension_source() -> PathBuf {
    root().join("assets/copilot/extension.mjs")
}

/// The node binary: `$RELAY_TEST_NODE`, else `node` on PATH; panics with what to do otherwise.
fn node() -> String {
    let node = std::env::var("RELAY_TEST_NODE").unwrap_or_else(|_| "node".to_owned());
    match Command::new(&node).arg("--version").output() {
        Ok(output) if output.status.success() => {
            let version = String::from_utf8_lossy(&output.stdout);
            let major: u32 = version
                .trim()
                .trim_start_matches('v')
                .split('.')
                .next()
                .and_then(|major| major.parse().ok())
                .unwrap_or(0);
            assert!(
                major >= 20,
                "{node} is {}, the Copilot extension tests need node 20 or later",
                version.trim()
            );
            node
        }
        Ok(output) => panic!("`{node} --version` failed: {output:?}"),
        Err(error) => panic!(
            "the Copilot extension tests need node (20+) on PATH or RELAY_TEST_NODE; \
             running `{node}` failed: {error}"
        ),
    }
}

/// Runs one scenario of `tests/js/copilot_harness.mjs`; panics with its output on failure.
fn scenario(name: &str) {
    let output = Command::new(node())
        .arg(root().join("tests/js/copilot_harness.mjs"))
        .arg(name)
        .arg(extension_source())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}{stderr}");
    assert!(
        output.status.success() && stdout.contains(&format!("PASS {name}")),
        "scenario {name} failed ({}):\n{stdout}{stderr}",
        output.status
    );
}

#[test]
fn the_placeholder_is_the_command_expression_exactly_once() {
    let source = std::fs::read_to_string(extension_source()).expect("the extension is readable");
    assert_eq!(source.matches(PLACEHOLDER).count(), 1, "{PLACEHOLDER} once");
    assert!(
        source.contains(&format!("= {PLACEHOLDER};")),
        "the placeholder is the whole expression assigned to the command"
    );
    let imports: Vec<&str> = source
        .lines()
        .filter(|line| line.starts_with("import "))
        .filter(|line| !line.contains("\"node:"))
        .collect();
    assert_eq!(
        imports,
        ["import { joinSession } from \"@github/copilot-sdk/extension\";"],
        "the only import besides node's own modules is the SDK Copilot provides"
    );
    assert!(
        !source.contains("console.") && !source.contains("process.stdout"),
        "the extension never writes to stdout (Copilot's JSON-RPC channel)"
    );
}

#[test]
fn each_message_is_sent_once_with_its_mode_and_acked_read() {
    scenario("deliver");
}

#[test]
fn a_rejected_send_is_acked_refused() {
    scenario("refused");
}

#[test]
fn an_exited_deliver_process_is_restarted_and_nothing_is_sent_twice() {
    scenario("restart");
}

#[test]
fn a_deliver_command_that_cannot_start_is_retried_without_a_crash() {
    scenario("spawn_fails");
}

/// The extension under node as Copilot runs it, killed (SIGTERM, then SIGKILL) on drop.
struct Extension {
    child: Child,
    sdk_log: PathBuf,
}

impl Extension {
    /// Prepares the extension in `dir` with `command` and starts it with `env`.
    fn start(dir: &Path, command: &[&str], env: &[(&str, &Path)]) -> Extension {
        let node = node();
        let prepared = Command::new(&node)
            .arg(root().join("tests/js/copilot_harness.mjs"))
            .arg("--with-command")
            .arg(serde_json::to_string(command).expect("JSON"))
            .arg(extension_source())
            .arg(dir)
            .output()
            .expect("node runs");
        assert!(prepared.status.success(), "prepare failed: {prepared:?}");
        let extension = String::from_utf8(prepared.stdout).expect("a path");
        let sdk_log = dir.join("sdk.jsonl");
        let mut launch = Command::new(&node);
        launch
            .arg(extension.trim())
            .env("FAKE_COPILOT_SDK_LOG", &sdk_log)
            .env("RELAY_EXTENSION_LOG", dir.join("extension.log"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for key in ["RELAY_SESSION_SOCKET", "RELAY_PEER_ID", "RELAY_LOG"] {
            launch.env_remove(key);
        }
        for (key, value) in env {
            launch.env(key, value);
        }
        let child = launch.spawn().expect("node starts the extension");
        Extension { child, sdk_log }
    }

    /// The `session.send` calls recorded so far.
    fn sends(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.sdk_log)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).expect("JSON lines"))
            .filter(|record| record["ev"] == "send")
            .collect()
    }

    /// Waits until `count` sends were recorded; returns them.
    fn wait_for_sends(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let sends = self.sends();
            if sends.len() >= count {
                return sends;
            }
            assert!(
                Instant::now() < deadline,
                "{count} session.send calls expected, got {sends:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, wait; returns what the extension wrote to stdout.
    fn stop(mut self) -> String {
        let pid = rustix::process::Pid::from_raw(
            i32::try_from(self.child.id()).expect("a pid fits in i32"),
        )
        .expect("a pid is not 0");
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let _ = self.child.wait();
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        stdout
    }
}

impl Drop for Extension {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn status(session: &McpSession, msg_id: &Value) -> String {
    let status = session
        .call("relay_status", json!({"msg_id": msg_id}))
        .await
        .ok();
    status["state"].as_str().expect("a state").to_owned()
}

async fn wait_for_status(session: &McpSession, msg_id: &Value, want: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = status(session, msg_id).await;
        if now == want {
            return;
        }
        assert!(Instant::now() < deadline, "status stayed {now}, not {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_reaches_session_send_through_the_real_relay_deliver_exactly_once() {
    let scene = Scene::new();
    let data_dir = scene.data_dir();
    let alice = McpSession::start(
        &data_dir,
        &["--as", "alice", "--client", "claude"],
        &[],
        None,
    )
    .await;
    let bob = McpSession::start(
        &data_dir,
        &["--as", "bob", "--client", "copilot"],
        &[],
        None,
    )
    .await;
    let peers = bob.call("relay_peers", json!({})).await.ok();
    assert_eq!(peers["my_delivery"], "copilot-extension", "{peers}");

    // As `relay install copilot` writes it: the command without a data dir (RELAY_HOME says it).
    let work = scene.dir.path().join("extension");
    let extension = Extension::start(
        &work,
        &[RELAY, "deliver", "--client", "copilot"],
        &[("RELAY_HOME", &data_dir)],
    );

    let plain = alice
        .call(
            "relay_send",
            json!({"to": "bob", "text": "COPILOT-E2E-PLAIN"}),
        )
        .await
        .ok();
    let urgent = alice
        .call(
            "relay_send",
            json!({"to": "bob", "text": "COPILOT-E2E-URGENT", "urgent": true}),
        )
        .await
        .ok();
    let sends = tokio::task::block_in_place(|| extension.wait_for_sends(2));
    wait_for_status(&alice, &plain["msg_id"], "read").await;
    wait_for_status(&alice, &urgent["msg_id"], "read").await;
    tokio::time::sleep(Duration::from_millis(500)).await; // a second send would show by now

    let sends = {
        let again = extension.sends();
        assert_eq!(again.len(), sends.len(), "no later send: {again:?}");
        again
    };
    println!("session.send calls: {sends:#?}");
    assert_eq!(sends.len(), 2, "one session.send per message: {sends:?}");
    for (send, sent, text, mode) in [
        (&sends[0], &plain, "COPILOT-E2E-PLAIN", "enqueue"),
        (&sends[1], &urgent, "COPILOT-E2E-URGENT", "immediate"),
    ] {
        let prompt = send["prompt"].as_str().expect("a prompt");
        let msg_id = sent["msg_id"].as_str().expect("a msg_id");
        assert!(
            prompt.contains(&format!("msg_id=\"{msg_id}\"")) && prompt.contains("<peer-message"),
            "framed as a peer message with its id: {prompt}"
        );
        assert!(
            prompt.contains(text) && prompt.contains("alice"),
            "{prompt}"
        );
        assert_eq!(send["mode"], mode, "{send}");
    }
    let inbox = bob.call("relay_inbox", json!({})).await.ok();
    let ids = [&plain["msg_id"], &urgent["msg_id"]];
    let new: Vec<&Value> = inbox["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|message| ids.contains(&&message["msg_id"]) && message["pushed"] != true)
        .collect();
    assert!(new.is_empty(), "relay_inbox offers them again: {inbox}");

    let stdout = tokio::task::block_in_place(|| extension.stop());
    assert_eq!(stdout, "", "the extension wrote to stdout");
}
