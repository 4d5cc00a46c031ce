//! `relay mcp` for the clients whose push path lives outside it (Gemini CLI and Cursor hooks,
//! the OpenCode plugin and the Copilot extension through `relay deliver`): the session's
//! delivery socket (`docs/delivery.md`), exactly once across hooks, plugins and `relay_inbox`,
//! honest send results, messages given back when a taker goes away, and the bound on turns a
//! hook starts.
//!
//! Black-box: real hub, real `relay mcp` processes driven by rmcp's client, real `relay hook` and
//! `relay deliver` processes. The test process is the parent of both `relay mcp` and the hooks,
//! as a client is: the hooks find their session by ancestry.

mod mcp_support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mcp_support::{McpSession, PATIENCE, RELAY, Scene};
use serde_json::{Value, json};

/// A session named `name` started as `client` would start it.
async fn session(scene: &Scene, name: &str, client: &str) -> McpSession {
    McpSession::start(
        &scene.data_dir(),
        &["--as", name, "--client", client],
        &[],
        None,
    )
    .await
}

/// Waits until `name`'s delivery socket is served (relay mcp binds it after registering).
fn wait_for_socket(data_dir: &Path) {
    let dir = data_dir.join("sessions");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let any = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .any(|entry| entry.path().extension().is_some_and(|ext| ext == "sock"))
            })
            .unwrap_or(false);
        if any {
            return;
        }
        assert!(Instant::now() < deadline, "no delivery socket in {dir:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `relay hook <client> <event>` with `input` on stdin; its stdout (it must exit 0).
fn hook(data_dir: &Path, client: &str, event: &str, input: &Value) -> String {
    let mut child = Command::new(RELAY)
        .args(["hook", client, event, "--data-dir"])
        .arg(data_dir)
        .env_remove("RELAY_SESSION_SOCKET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("relay hook starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("input written");
    let started = Instant::now();
    let output = child.wait_with_output().expect("relay hook ends");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a hook must end well inside its client's timeout"
    );
    assert!(output.status.success(), "a hook always exits 0: {output:?}");
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// [`hook`] off the async test's thread.
async fn run_hook(
    data_dir: std::path::PathBuf,
    client: &'static str,
    event: &'static str,
    input: &Value,
) -> String {
    let input = input.clone();
    tokio::task::spawn_blocking(move || hook(&data_dir, client, event, &input))
        .await
        .expect("the hook thread ends")
}

fn after_agent(continuation: bool) -> Value {
    json!({
        "session_id": "s-1",
        "hook_event_name": "AfterAgent",
        "cwd": "/tmp",
        "prompt": "hello",
        "prompt_response": "done",
        "stop_hook_active": continuation,
    })
}

/// The one JSON value a hook printed (and nothing else).
fn printed(stdout: &str) -> Value {
    let mut lines = stdout.lines();
    let value: Value = serde_json::from_str(lines.next().expect("one line")).expect("JSON");
    assert_eq!(lines.next(), None, "only one line: {stdout}");
    value
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

async fn send(from: &McpSession, to: &str, text: &str, urgent: bool) -> Value {
    from.call(
        "relay_send",
        json!({"to": to, "text": text, "urgent": urgent}),
    )
    .await
    .ok()
}

#[tokio::test]
async fn the_after_agent_hook_hands_a_message_to_the_model_exactly_once() {
    let scene = Scene::new();
    let alice = session(&scene, "alice", "claude").await;
    let bob = session(&scene, "bob", "gemini").await;
    wait_for_socket(&scene.data_dir());

    let sent = send(&alice, "bob", "please review the parser", false).await;
    assert_eq!(sent["status"], "queued", "nothing took it yet: {sent}");

    let out = run_hook(
        scene.data_dir(),
        "gemini",
        "after-agent",
        &after_agent(false),
    )
    .await;
    let decision = printed(&out);
    assert_eq!(decision["decision"], "deny", "{decision}");
    let reason = decision["reason"].as_str().expect("a reason");
    assert!(reason.contains("please review the parser"), "{reason}");
    assert!(reason.contains("alice"), "the sender is named: {reason}");
    wait_for_status(&alice, &sent["msg_id"], "read").await;

    // Once: the next turn's end has nothing, and relay_inbox does not offer it as new.
    let out = run_hook(
        scene.data_dir(),
        "gemini",
        "after-agent",
        &after_agent(true),
    )
    .await;
    assert_eq!(printed(&out), json!({}));
    let inbox = bob.call("relay_inbox", json!({})).await.ok();
    let direct: Vec<&Value> = inbox["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|message| message["kind"] == "direct")
        .collect();
    assert!(direct.is_empty(), "read already: {inbox}");
}

#[tokio::test]
async fn a_message_the_model_pulled_is_not_handed_over_again() {
    let scene = Scene::new();
    let alice = session(&scene, "alice", "claude").await;
    let bob = session(&scene, "bob", "gemini").await;
    wait_for_socket(&scene.data_dir());
    send(&alice, "bob", "first pulled", false).await;
    let inbox = bob.call("relay_inbox", json!({})).await.ok();
    assert!(inbox.to_string().contains("first pulled"), "{inbox}");
    let out = run_hook(
        scene.data_dir(),
        "gemini",
        "after-agent",
        &after_agent(false),
    )
    .await;
    assert_eq!(printed(&out), json!({}), "pulled already");
}

#[tokio::test]
async fn after_tool_takes_only_urgent_messages() {
    let scene = Scene::new();
    let alice = session(&scene, "alice", "claude").await;
    let _bob = session(&scene, "bob", "gemini").await;
    wait_for_socket(&scene.data_dir());
    let calm = send(&alice, "bob", "whenever you can", false).await;
    let urgent = send(&alice, "bob", "stop the deploy", true).await;
    let input = json!({"hook_event_name": "AfterTool", "tool_name": "run_shell_command"});
    let out = run_hook(scene.data_dir(), "gemini", "after-tool", &input).await;
    let output = printed(&out);
    let context = output["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .expect("additional context");
    assert!(context.contains("stop the deploy"), "{context}");
    assert!(!context.contains("whenever you can"), "{context}");
    wait_for_status(&alice, &urgent["msg_id"], "read").await;
    assert_eq!(status(&alice, &calm["msg_id"]).await, "queued");
}

#[tokio::test]
async fn a_hook_with_no_session_or_bad_input_prints_the_no_op() {
    let dir = tempfile::tempdir().expect("as set up");
    let out = hook(dir.path(), "gemini", "after-agent", &after_agent(false));
    assert_eq!(printed(&out), json!({}));

    let scene = Scene::new();
    let alice = session(&scene, "alice", "claude").await;
    let _bob = session(&scene, "bob", "gemini").await;
    wait_for_socket(&scene.data_dir());
    let sent = send(&alice, "bob", "kept for later", false).await;
    let out = hook(
        &scene.data_dir(),
        "gemini",
        "after-agent",
        &json!("not an object"),
    );
    assert_eq!(printed(&out), json!({}));
    assert_eq!(status(&alice, &sent["msg_id"]).await, "queued");
}

#[tokio::test]
async fn turns_started_by_the_hook_are_bounded() {
    let scene = Scene::new();
    let alice = session(&scene, "alice", "claude").await;
    let _bob = session(&scene, "bob", "gemini").await;
    wait_for_socket(&scene.data_dir());
    let mut handed = 0;
    for turn in 0..7 {
        send(&alice, "bob", &format!("ping {turn}"), false).await;
        let out = run_hook(
            scene.data_dir(),
            "gemini",
            "after-agent",
            &after_agent(turn > 0),
        )
        .await;
        if printed(&out)["decision"] == "deny" {
            handed += 1;
        }
    }
    assert_eq!(handed, 5, "HOOK_FOLLOWUPS_MAX turns in a row");
    // A turn the user starts gets what waited.
    let out = run_hook(
        scene.data_dir(),
        "gemini",
        "after-agent",
        &after_agent(false),
    )
    .await;
    let reason = printed(&out)["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.contains("ping 5") && reason.contains("ping 6"),
        "{reason}"
    );
}

/// A `relay deliver` child and its stdout lines.
struct Deliver {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<Value>,
}

impl Deliver {
    fn start(data_dir: &Path, client: &str) -> Deliver {
        let mut child = Command::new(RELAY)
            .args(["deliver", "--client", client, "--data-dir"])
            .arg(data_dir)
            .env_remove("RELAY_SESSION_SOCKET")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("relay deliver starts");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value: Value = serde_json::from_str(&line).expect("deliver prints JSON lines");
                if sender.send(value).is_err() {
                    return;
                }
            }
        });
        Deliver { child, lines }
    }

    /// The next line of `type`, skipping others.
    fn next(&self, kind: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {kind} line"));
            if line["type"] == kind {
                return line;
            }
        }
    }

    fn none(&self, kind: &str, wait: Duration) {
        let deadline = Instant::now() + wait;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            assert_ne!(line["type"], kind, "unexpected {line}");
        }
    }

    fn ack(&mut self, msg_id: &Value, step: &str) {
        let line = json!({"type": "ack", "msg_id": msg_id, "step": step});
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("ack written");
    }
}

impl Drop for Deliver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn deliver_streams_messages_and_gives_back_what_was_not_acknowledged() {
    let scene = Scene::new();
    let alice = session(&scene, "alice", "claude").await;
    let _bob = session(&scene, "bob", "opencode").await;
    wait_for_socket(&scene.data_dir());

    let mut deliver = Deliver::start(&scene.data_dir(), "opencode");
    let welcome = deliver.next("welcome");
    assert_eq!(welcome["name"], "bob");
    assert_eq!(welcome["delivery"], "opencode-plugin");

    let sent = send(&alice, "bob", "streamed text", false).await;
    let message = deliver.next("message");
    assert_eq!(message["msg_id"], sent["msg_id"]);
    assert!(
        message["text"]
            .as_str()
            .expect("as set up")
            .contains("streamed text")
    );
    deliver.ack(&message["msg_id"], "read");
    wait_for_status(&alice, &sent["msg_id"], "read").await;

    // Refused: offered again. Taken and never reported: back when the taker goes away.
    let second = send(&alice, "bob", "second text", false).await;
    let message = deliver.next("message");
    assert_eq!(message["msg_id"], second["msg_id"]);
    deliver.ack(&message["msg_id"], "refused");
    let again = deliver.next("message");
    assert_eq!(
        again["msg_id"], second["msg_id"],
        "offered again after a refusal"
    );
    drop(deliver);
    assert_eq!(status(&alice, &second["msg_id"]).await, "queued");
    let deliver = Deliver::start(&scene.data_dir(), "opencode");
    let back = deliver.next("message");
    assert_eq!(
        back["msg_id"], second["msg_id"],
        "given back to the next taker"
    );
    deliver.none("message", Duration::from_millis(500));
}

#[tokio::test]
async fn deliver_waits_for_a_session_and_says_so() {
    let scene = Scene::new();
    let deliver = Deliver::start(&scene.data_dir(), "copilot");
    let waiting = deliver.next("waiting");
    assert!(
        waiting["reason"]
            .as_str()
            .expect("as set up")
            .contains("no relay mcp session"),
        "{waiting}"
    );
    let alice = session(&scene, "alice", "claude").await;
    let _bob = session(&scene, "bob", "copilot").await;
    let welcome = deliver.next("welcome");
    assert_eq!(welcome["delivery"], "copilot-extension");
    let sent = send(&alice, "bob", "after the wait", true).await;
    let message = deliver.next("message");
    assert_eq!(message["msg_id"], sent["msg_id"]);
    assert_eq!(message["urgent"], true);
}

#[tokio::test]
async fn the_session_socket_refuses_what_is_not_the_protocol() {
    use std::io::Read as _;
    let scene = Scene::new();
    let _bob = session(&scene, "bob", "gemini").await;
    wait_for_socket(&scene.data_dir());
    let socket = std::fs::read_dir(scene.data_dir().join("sessions"))
        .expect("as set up")
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "sock"))
        .expect("as set up");
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("as set up");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("as set up");
    stream
        .write_all(b"{\"type\":\"ack\"}\n")
        .expect("as set up");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("as set up");
    let line: Value = serde_json::from_str(answer.trim()).expect("as set up");
    assert_eq!(line["type"], "error", "{answer}");
    assert_eq!(line["code"], "bad_arguments");
}

#[tokio::test]
async fn the_cursor_stop_hook_returns_a_follow_up_message_after_a_completed_loop_only() {
    let scene = Scene::new();
    let alice = session(&scene, "alice", "claude").await;
    let _bob = session(&scene, "bob", "cursor").await;
    wait_for_socket(&scene.data_dir());
    let sent = send(&alice, "bob", "the schema changed", false).await;
    let stop = |status: &str, loop_count: u32| {
        json!({
            "conversation_id": "c-1",
            "generation_id": "g-1",
            "hook_event_name": "stop",
            "status": status,
            "loop_count": loop_count,
            "workspace_roots": ["/tmp"],
        })
    };
    let out = run_hook(scene.data_dir(), "cursor", "stop", &stop("aborted", 0)).await;
    assert_eq!(printed(&out), json!({}), "not after an aborted loop");
    assert_eq!(status(&alice, &sent["msg_id"]).await, "queued");

    let out = run_hook(scene.data_dir(), "cursor", "stop", &stop("completed", 0)).await;
    let follow_up = printed(&out);
    let text = follow_up["followup_message"].as_str().expect("a follow-up");
    assert!(text.contains("the schema changed"), "{text}");
    wait_for_status(&alice, &sent["msg_id"], "read").await;
}
