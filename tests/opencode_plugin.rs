//! The OpenCode plugin Relay installs (`assets/opencode/relay.js`), run by `node` with a fake
//! OpenCode `client` and a fake `relay deliver` speaking the line protocol of
//! `docs/delivery.md` (`tests/js/opencode_fake_deliver.mjs`). The scenarios live in
//! `tests/js/opencode_harness.mjs`; each test here runs one and shows its output. Together they
//! prove: a message becomes exactly one `session.promptAsync` (one text part) to the right
//! session (the last to call a `relay_*` tool, else the last active in events, else the newest
//! top-level one listed) and is acked `read`; an error answer or a throw is acked `refused`
//! with a detail, a repeated refusal later each time (the message is offered again at once);
//! an exited `relay deliver` is restarted with a back-off and a message offered
//! again is not prompted twice; a command that cannot start is retried; the plugin function
//! never waits for the client (OpenCode 1.18.33 deadlocks on that) and no hook throws; nothing
//! reaches stdout or stderr.
//!
//! The end-to-end test runs the real hub, `relay mcp --client opencode` and the plugin with the
//! real `relay deliver` (the test process is the parent of both, as OpenCode is), and `relay
//! send`s to the session.
//!
//! `node` (20 or later) must be on PATH, or named by `RELAY_TEST_NODE`: without it these tests
//! fail, they do not pass silently.

mod mcp_support;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use mcp_support::{McpSession, RELAY, Scene};
use serde_json::{Value, json};

/// The placeholder `relay install opencode` replaces with the deliver command.
const PLACEHOLDER: &str = "__RELAY_DELIVER_COMMAND__";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn plugin_source() -> PathBuf {
    root().join("assets/opencode/relay.js")
}

fn harness() -> PathBuf {
    root().join("tests/js/opencode_harness.mjs")
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
                "{node} is {}, the OpenCode plugin tests need node 20 or later",
                version.trim()
            );
            node
        }
        Ok(output) => panic!("`{node} --version` failed: {output:?}"),
        Err(error) => panic!(
            "the OpenCode plugin tests need node (20+) on PATH or RELAY_TEST_NODE; \
             running `{node}` failed: {error}"
        ),
    }
}

/// Runs one scenario of the harness; panics with its output on failure.
fn scenario(name: &str) {
    let output = Command::new(node())
        .arg(harness())
        .arg(name)
        .arg(plugin_source())
        .env_remove("RELAY_PLUGIN_LOG")
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
    let source = std::fs::read_to_string(plugin_source()).expect("the plugin is readable");
    assert_eq!(source.matches(PLACEHOLDER).count(), 1, "{PLACEHOLDER} once");
    assert!(
        source.contains(&format!("= {PLACEHOLDER};")),
        "the placeholder is the whole expression assigned to the command"
    );
    let foreign: Vec<&str> = source
        .lines()
        .filter(|line| line.starts_with("import ") && !line.contains("\"node:"))
        .collect();
    assert!(foreign.is_empty(), "only node's own modules: {foreign:?}");
    assert!(
        !source.contains("console.") && !source.contains("process.stdout"),
        "the plugin never writes to OpenCode's terminal"
    );
    assert!(
        source.contains("docs/delivery.md"),
        "the header names the contract"
    );
}

#[test]
fn a_message_is_prompted_once_into_the_relay_session_and_acked_read() {
    scenario("deliver");
}

#[test]
fn without_a_relay_tool_call_the_active_then_the_newest_session_is_prompted() {
    scenario("target");
}

#[test]
fn a_failed_prompt_is_acked_refused() {
    scenario("refused");
}

#[test]
fn refusals_of_a_message_offered_again_are_acked_after_a_growing_delay() {
    scenario("refuse_backoff");
}

#[test]
fn no_session_at_all_is_acked_refused() {
    scenario("no_session");
}

#[test]
fn an_exited_deliver_process_is_restarted_and_nothing_is_prompted_twice() {
    scenario("restart");
}

#[test]
fn a_deliver_command_that_cannot_start_is_retried_with_a_back_off() {
    scenario("bad_command");
}

#[test]
fn the_plugin_never_waits_for_the_client_at_start_and_no_hook_throws() {
    scenario("robust");
}

/// Real hub, real `relay mcp --client opencode` (bob), the plugin with the real `relay
/// deliver`: `relay send bob …` reaches the fake client's `promptAsync` exactly once, framed,
/// and `relay_inbox` does not offer it again as new.
#[tokio::test(flavor = "multi_thread")]
async fn relay_send_reaches_promptasync_once_through_the_real_relay_deliver() {
    let scene = Scene::new();
    let data_dir = scene.data_dir();
    let bob = McpSession::start(
        &data_dir,
        &["--as", "bob", "--client", "opencode"],
        &[],
        None,
    )
    .await;
    let out = scene.dir.path().join("e2e.json");
    let command = json!([
        RELAY,
        "deliver",
        "--client",
        "opencode",
        "--data-dir",
        data_dir
    ]);
    let mut plugin = Command::new(node())
        .arg(harness())
        .arg("e2e")
        .arg(plugin_source())
        .arg(command.to_string())
        .arg("E2E-PING-7")
        .arg(&out)
        .env_remove("RELAY_SESSION_SOCKET")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs");
    // Its stdout up to READY (the plugin runs), then drained in the background.
    let mut lines = BufReader::new(plugin.stdout.take().expect("stdout")).lines();
    let mut said = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("harness output");
        if line == "READY" {
            break;
        }
        said.push(line);
    }
    assert!(
        said.iter().all(|line| line.starts_with("ok: ")),
        "the harness did not get ready: {said:?}"
    );
    std::thread::spawn(move || lines.for_each(drop));

    let sent = Command::new(RELAY)
        .args(["send", "bob", "E2E-PING-7", "--as", "alice", "--data-dir"])
        .arg(&data_dir)
        .output()
        .expect("relay send runs");
    let printed = String::from_utf8_lossy(&sent.stdout).to_string();
    assert!(sent.status.success(), "relay send failed: {sent:?}");
    let msg_id = printed
        .split_whitespace()
        .next()
        .expect("a msg_id")
        .to_owned();

    let status = tokio::task::spawn_blocking(move || plugin.wait())
        .await
        .expect("joined")
        .expect("node exits");
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("the harness wrote its result"))
            .expect("JSON");
    println!("{result:#}");
    assert!(status.success(), "the harness failed: {result}");
    let prompts = result["prompts"].as_array().expect("prompts");
    assert_eq!(prompts.len(), 1, "exactly one prompt: {result}");
    assert_eq!(prompts[0]["path"]["id"], "ses_e2e");
    let parts = prompts[0]["body"]["parts"].as_array().expect("parts");
    assert_eq!(parts.len(), 1, "one part: {parts:?}");
    assert_eq!(parts[0]["type"], "text");
    let text = parts[0]["text"].as_str().expect("text");
    assert!(
        text.contains("<peer-message") && text.contains(r#"from="alice""#),
        "framed as a peer's message: {text}"
    );
    assert!(
        text.contains(&format!(r#"msg_id="{msg_id}""#)) && text.contains("E2E-PING-7"),
        "carries {msg_id} and the text: {text}"
    );
    let log = result["log"].as_str().unwrap_or_default();
    assert!(
        log.contains(&format!("prompted {msg_id} into ses_e2e")),
        "{log}"
    );

    let inbox = bob.call("relay_inbox", json!({})).await.ok();
    let again: Vec<&Value> = inbox["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .filter(|m| m["msg_id"] == msg_id.as_str() && m["pushed"] != true)
                .collect()
        })
        .unwrap_or_default();
    assert!(
        again.is_empty(),
        "relay_inbox offered the prompted message as new: {inbox}"
    );
    bob.close().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
}
