//! `relay mcp --client codex`: pushes go into the session's Codex thread through the
//! app-server control socket (a protocol fake of Codex 0.171's, `mcp_support::codex_app_server`):
//! `turn/start` when idle, joining the running turn when busy, exactly once across push and
//! pull, and `queued` plus pull while no app-server answers, delivered once it does.
//!
//! Black-box: real hub, real `relay mcp` processes driven by rmcp's client, the fake in this
//! process.

mod mcp_support;

use std::path::Path;
use std::time::{Duration, Instant};

use mcp_support::codex_app_server::{FakeAppServer, Mode};
use mcp_support::{McpSession, PATIENCE, Scene};
use serde_json::{Value, json};

/// Bob's session as Codex starts it: `--client codex` in `cwd`, `CODEX_HOME` from the config.
async fn codex_session(scene: &Scene, codex_home: &Path, cwd: &Path) -> McpSession {
    let home = codex_home.to_str().expect("a UTF-8 path");
    McpSession::start(
        &scene.data_dir(),
        &["--as", "bob", "--client", "codex"],
        &[("CODEX_HOME", home)],
        Some(cwd),
    )
    .await
}

async fn alice(scene: &Scene) -> McpSession {
    McpSession::start(
        &scene.data_dir(),
        &["--as", "alice", "--client", "claude"],
        &[],
        None,
    )
    .await
}

async fn state(session: &McpSession, msg_id: &Value) -> String {
    let status = session
        .call("relay_status", json!({"msg_id": msg_id}))
        .await
        .ok();
    status["state"].as_str().expect("a state").to_owned()
}

async fn wait_for_state(session: &McpSession, msg_id: &Value, want: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = state(session, msg_id).await;
        if now == want {
            return;
        }
        assert!(Instant::now() < deadline, "state stayed {now}, not {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the fake took `count` inputs.
async fn inputs(fake: &FakeAppServer, count: usize) -> Vec<mcp_support::codex_app_server::Input> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let inputs = fake.inputs();
        if inputs.len() >= count {
            return inputs;
        }
        assert!(
            Instant::now() < deadline,
            "{} input(s), not {count}",
            inputs.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn direct_messages(inbox: &Value) -> Vec<Value> {
    inbox["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|message| message["kind"] == "direct")
        .cloned()
        .collect()
}

#[tokio::test]
async fn an_idle_thread_gets_a_turn_and_a_busy_one_is_joined_exactly_once() {
    let scene = Scene::new();
    let fake = FakeAppServer::start(Mode::Normal);
    let cwd = tempfile::tempdir().expect("a project dir");
    let thread = fake.add_thread(cwd.path());
    let alice = alice(&scene).await;
    let bob = codex_session(&scene, fake.codex_home(), cwd.path()).await;

    let sent = alice
        .call(
            "relay_send",
            json!({"to": "bob", "text": "the build is green"}),
        )
        .await
        .ok();
    let taken = inputs(&fake, 1).await;
    assert_eq!(taken[0].method, "turn/start");
    assert_eq!(taken[0].thread_id, thread);
    assert_eq!(taken[0].outcome, "started");
    assert!(
        taken[0].text.contains("the build is green"),
        "{}",
        taken[0].text
    );
    assert!(taken[0].text.contains("alice"), "the sender is named");
    wait_for_state(&alice, &sent["msg_id"], "read").await;

    let turn = fake.make_busy(&thread);
    alice
        .call(
            "relay_send",
            json!({"to": "bob", "text": "and the docs too"}),
        )
        .await
        .ok();
    let taken = inputs(&fake, 2).await;
    assert_eq!(taken[1].outcome, "joined", "{:?}", taken[1]);
    assert_eq!(taken[1].turn_id, turn);

    // Once: relay_inbox offers neither as new, and nothing more reached Codex.
    let inbox = bob.call("relay_inbox", json!({})).await.ok();
    assert!(direct_messages(&inbox).is_empty(), "{inbox}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.inputs().len(), 2);
    let peers = bob.call("relay_peers", json!({})).await.ok();
    assert_eq!(peers["my_delivery"], "codex-app-server");
}

#[tokio::test]
async fn without_an_app_server_messages_wait_and_go_in_once_it_answers() {
    let scene = Scene::new();
    let codex_home = tempfile::tempdir().expect("a Codex home");
    let cwd = tempfile::tempdir().expect("a project dir");
    let alice = alice(&scene).await;
    let bob = codex_session(&scene, codex_home.path(), cwd.path()).await;

    let pulled = alice
        .call(
            "relay_send",
            json!({"to": "bob", "text": "read me by pull"}),
        )
        .await
        .ok();
    assert_eq!(pulled["status"], "queued", "nothing took it: {pulled}");
    let peers = bob.call("relay_peers", json!({})).await.ok();
    let note = peers["my_delivery_note"].as_str().expect("a note");
    assert!(note.contains("relay_inbox"), "says to pull: {note}");
    let inbox = bob.call("relay_inbox", json!({})).await.ok();
    assert_eq!(direct_messages(&inbox).len(), 1, "{inbox}");

    let waiting = alice
        .call(
            "relay_send",
            json!({"to": "bob", "text": "pushed when Codex is back"}),
        )
        .await
        .ok();
    // The user starts Codex: its control socket appears under CODEX_HOME.
    let fake = FakeAppServer::start(Mode::Normal);
    fake.add_thread(cwd.path());
    let control = codex_home.path().join("app-server-control");
    std::fs::create_dir_all(&control).expect("the control dir");
    std::os::unix::fs::symlink(fake.socket_path(), control.join("app-server-control.sock"))
        .expect("the control socket");

    let taken = inputs(&fake, 1).await;
    assert!(
        taken[0].text.contains("pushed when Codex is back"),
        "{}",
        taken[0].text
    );
    wait_for_state(&alice, &waiting["msg_id"], "read").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let texts: Vec<String> = fake.inputs().into_iter().map(|input| input.text).collect();
    assert_eq!(
        texts.len(),
        1,
        "the pulled one is not pushed too: {texts:?}"
    );
}
