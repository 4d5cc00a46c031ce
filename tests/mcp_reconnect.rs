//! `relay mcp` when the hub is not there: it spawns the hub of its data dir on start, fails
//! tool calls fast with `hub_unreachable` while the hub is down (never a 30-second hang), and
//! reconnects when the hub is back, under the same name and in the same rooms.

mod mcp_support;

use std::time::{Duration, Instant};

use mcp_support::{McpSession, Outcome, PATIENCE, Scene};
use serde_json::json;

/// Calls `relay_peers` until it succeeds (the session reconnected), within [`PATIENCE`].
async fn wait_reconnected(session: &McpSession) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let outcome: Outcome = session.call("relay_peers", json!({})).await;
        if !outcome.is_error {
            return outcome.ok();
        }
        assert_eq!(outcome.error_code(), "hub_unreachable");
        assert!(
            started.elapsed() < PATIENCE,
            "no reconnect: {}",
            outcome.value
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// Kills the hub under a live session: every call must come back as `hub_unreachable` within
// a generous bound (the point is "no hang", not speed), then the hub restarts and the session
// must find its way back by itself.
#[tokio::test]
async fn tool_calls_fail_fast_while_the_hub_is_down_and_work_again_after_it_returns() {
    let mut scene = Scene::new();
    let alice = McpSession::start(
        &scene.data_dir(),
        &[],
        &[("RELAY_SESSION_NAME", "api")],
        None,
    )
    .await;
    let renamed = alice
        .call("relay_rename", json!({"new_name": "api-lead"}))
        .await
        .ok();
    assert_eq!(renamed["name"], json!("api-lead"));
    alice.call("relay_join", json!({"room": "ops"})).await.ok();
    scene.hub.kill();
    for tool in ["relay_peers", "relay_send", "relay_inbox"] {
        let arguments = match tool {
            "relay_send" => json!({"to": "bob", "text": "hello?"}),
            _ => json!({}),
        };
        let started = Instant::now();
        let outcome = alice.call(tool, arguments).await;
        assert_eq!(
            outcome.error_code(),
            "hub_unreachable",
            "{tool}: {}",
            outcome.value
        );
        assert!(started.elapsed() < Duration::from_secs(10), "{tool} hung");
    }
    scene.hub.restart();
    let peers = wait_reconnected(&alice).await;
    assert_eq!(peers["me"], json!("api-lead"), "the session kept its name");
    let rooms = alice.call("relay_rooms", json!({})).await.ok();
    assert_eq!(
        rooms["rooms"],
        json!([{"name": "ops", "members": ["api-lead"]}])
    );
    // Pushes flow on the new connection.
    let bob = scene.session("bob").await;
    bob.call(
        "relay_send",
        json!({"to": "api-lead", "text": "welcome back"}),
    )
    .await
    .ok();
    let mut alice = alice;
    let params = alice.next_channel().await;
    assert_eq!(params["meta"]["from"], json!("bob"));
    alice.close().await;
    bob.close().await;
}

#[tokio::test]
async fn a_session_started_before_its_hub_connects_once_the_hub_is_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).expect("mkdir");
    let session = McpSession::start(&data_dir, &["--as", "early"], &[], None).await;
    let started = Instant::now();
    let outcome = session.call("relay_peers", json!({})).await;
    assert_eq!(outcome.error_code(), "hub_unreachable");
    assert!(started.elapsed() < Duration::from_secs(10));
    let _hub = mcp_support::TestHub::start(&data_dir);
    assert_eq!(wait_reconnected(&session).await["me"], json!("early"));
    session.close().await;
}

#[tokio::test]
async fn a_session_spawns_the_hub_of_its_data_dir_when_none_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let hub_args = [
        "--hub-arg=--ws-port=0",
        "--hub-arg=--idle-exit=1",
        "--as",
        "first",
    ];
    let session = McpSession::launch(&data_dir, &hub_args, &[], None).await;
    let peers = session.call("relay_peers", json!({})).await.ok();
    assert_eq!(peers["me"], json!("first"));
    assert!(data_dir.join("hub.sock").exists());
    session.close().await;
}
