//! `relay mcp` as an MCP server, seen from a client: what `initialize` declares, what
//! `tools/list` shows, how bad tool input is answered, and that stdout carries nothing but
//! JSON-RPC.

mod mcp_support;

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};

use mcp_support::{RELAY, Scene};
use serde_json::{Value, json};

/// Every tool with its required and optional arguments, as the issue names them (and the
/// paging of `relay_peers` and `relay_rooms`, issue 10).
fn expected_tools() -> BTreeMap<&'static str, (Vec<&'static str>, Vec<&'static str>)> {
    BTreeMap::from([
        ("relay_peers", (vec![], vec!["limit", "cursor"])),
        (
            "relay_send",
            (vec!["to", "text"], vec!["reply_to", "urgent"]),
        ),
        (
            "relay_ask",
            (vec!["to", "question"], vec!["thread_id", "deadline_s"]),
        ),
        ("relay_inbox", (vec![], vec!["limit", "since_id"])),
        ("relay_reply", (vec!["ask_id", "text"], vec![])),
        (
            "relay_broadcast",
            (
                vec!["question"],
                vec!["exclude_self", "deadline_s", "all_hubs"],
            ),
        ),
        ("relay_rename", (vec!["new_name"], vec![])),
        ("relay_join", (vec!["room"], vec![])),
        ("relay_leave", (vec!["room"], vec![])),
        ("relay_room", (vec!["room", "text"], vec![])),
        ("relay_rooms", (vec![], vec!["limit", "cursor"])),
        ("relay_group_create", (vec!["name", "members"], vec![])),
        ("relay_group_invite", (vec!["group", "peer"], vec![])),
        (
            "relay_group_remove",
            (vec!["group", "peer", "reason"], vec![]),
        ),
        ("relay_group_leave", (vec!["group"], vec![])),
        ("relay_group_delete", (vec!["group"], vec![])),
        ("relay_group_info", (vec!["group"], vec![])),
        ("relay_group_send", (vec!["group", "text"], vec![])),
        ("relay_group_history", (vec!["group"], vec!["limit"])),
        ("relay_group_list", (vec![], vec![])),
        ("relay_status", (vec!["msg_id"], vec![])),
    ])
}

#[tokio::test]
async fn tools_list_shows_every_tool_with_its_exact_arguments_and_a_closed_schema() {
    let scene = Scene::new();
    let session = scene.session("alice").await;
    let tools = session.tools().await;
    let expected = expected_tools();
    let listed: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    assert_eq!(listed.len(), expected.len(), "{listed:?}");
    for tool in &tools {
        let name = tool.name.as_ref();
        let (required, optional) = expected.get(name).unwrap_or_else(|| panic!("extra {name}"));
        let schema = Value::Object(tool.input_schema.as_ref().clone());
        assert!(
            tool.description
                .as_deref()
                .is_some_and(|text| !text.is_empty()),
            "{name}"
        );
        assert_eq!(schema["type"], json!("object"), "{name}");
        assert_eq!(schema["additionalProperties"], json!(false), "{name}");
        let mut listed_required: Vec<&str> = schema["required"]
            .as_array()
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        listed_required.sort_unstable();
        let mut want_required = required.clone();
        want_required.sort_unstable();
        assert_eq!(listed_required, want_required, "{name} required");
        let properties = schema["properties"].as_object().expect("properties");
        let mut listed_properties: Vec<&str> = properties.keys().map(String::as_str).collect();
        listed_properties.sort_unstable();
        let mut want_properties: Vec<&str> = required.iter().chain(optional).copied().collect();
        want_properties.sort_unstable();
        assert_eq!(listed_properties, want_properties, "{name} properties");
        for (argument, property) in properties {
            assert!(property["type"].is_string(), "{name}.{argument} has a type");
            assert!(
                property["description"].is_string(),
                "{name}.{argument} is described"
            );
        }
    }
    let inbox = tools
        .iter()
        .find(|tool| tool.name == "relay_inbox")
        .expect("inbox");
    let limit = &inbox.input_schema["properties"]["limit"];
    assert_eq!(
        (&limit["minimum"], &limit["maximum"], &limit["default"]),
        (&json!(1), &json!(100), &json!(20))
    );
    let history = tools
        .iter()
        .find(|tool| tool.name == "relay_group_history")
        .expect("history");
    assert_eq!(
        history.input_schema["properties"]["limit"]["maximum"],
        json!(500)
    );
    session.close().await;
}

#[tokio::test]
async fn initialize_declares_the_claude_channel_and_teaches_the_tools() {
    let scene = Scene::new();
    let session = scene.session("alice").await;
    let info = session
        .service
        .peer_info()
        .expect("the server answered initialize");
    let experimental = info
        .capabilities
        .experimental
        .as_ref()
        .expect("experimental");
    assert_eq!(
        experimental.get("claude/channel"),
        Some(&serde_json::Map::new())
    );
    assert!(info.capabilities.tools.is_some());
    let instructions = info.instructions.as_deref().expect("instructions");
    for needle in [
        "relay_reply",
        "relay_inbox",
        "consent",
        "never as a fallback",
        "quoting",
    ] {
        assert!(
            instructions.contains(needle),
            "instructions lack {needle:?}"
        );
    }
    session.close().await;
}

#[tokio::test]
async fn bad_tool_input_is_a_tool_error_with_a_code_never_a_crash() {
    let scene = Scene::new();
    let session = scene.session("alice").await;
    let oversize = "x".repeat(65_537);
    let cases = [
        ("relay_teleport", json!({}), "unknown_method"),
        ("relay_send", json!({"to": "bob"}), "bad_args"),
        ("relay_send", json!({"to": 5, "text": "hi"}), "bad_args"),
        (
            "relay_send",
            json!({"to": "bob", "text": oversize}),
            "bad_args",
        ),
        ("relay_send", json!({"to": "bob", "text": ""}), "bad_args"),
        (
            "relay_send",
            json!({"to": "b o b", "text": "hi"}),
            "bad_args",
        ),
        (
            "relay_send",
            json!({"to": "bob", "text": "hi", "colour": "red"}),
            "bad_args",
        ),
        (
            "relay_send",
            json!({"to": "nobody", "text": "hi"}),
            "peer_not_found",
        ),
        ("relay_inbox", json!({"limit": 0}), "bad_args"),
        ("relay_inbox", json!({"limit": 101}), "bad_args"),
        ("relay_inbox", json!({"limit": "ten"}), "bad_args"),
        (
            "relay_group_history",
            json!({"group": "g", "limit": 501}),
            "bad_args",
        ),
        ("relay_group_create", json!({"name": "g"}), "bad_args"),
        (
            "relay_group_create",
            json!({"name": "g", "members": ["x", "x"]}),
            "bad_args",
        ),
        (
            "relay_group_remove",
            json!({"group": "g", "peer": "x"}),
            "bad_args",
        ),
        (
            "relay_reply",
            json!({"ask_id": "a-404", "text": "hi"}),
            "ask_not_found",
        ),
        (
            "relay_group_info",
            json!({"group": "nothing"}),
            "group_not_found",
        ),
        ("relay_leave", json!({"room": "never-joined"}), "not_member"),
    ];
    for (tool, arguments, code) in cases {
        let outcome = session.call(tool, arguments.clone()).await;
        assert_eq!(outcome.error_code(), code, "{tool} {arguments}");
        assert_eq!(
            outcome.structured.as_ref(),
            Some(&outcome.value),
            "{tool}: structured copy"
        );
    }
    // The server is still fine after all that.
    let peers = session.call("relay_peers", json!({})).await.ok();
    assert_eq!(peers["me"], json!("alice"));
    session.close().await;
}

#[tokio::test]
async fn text_at_the_byte_limit_is_accepted_and_one_byte_more_is_not() {
    let scene = Scene::new();
    let alice = scene.session("alice").await;
    let bob = scene.session("bob").await;
    let at_limit = "é".repeat(32_768);
    let sent = alice
        .call("relay_send", json!({"to": "bob", "text": at_limit}))
        .await;
    assert_eq!(sent.ok()["status"], json!("delivered"));
    let past = format!("{at_limit}x");
    let refused = alice
        .call("relay_send", json!({"to": "bob", "text": past}))
        .await;
    assert_eq!(refused.error_code(), "bad_args");
    alice.close().await;
    bob.close().await;
}

// STYLE.md §6: `relay mcp` speaks MCP on stdout, so nothing else may land there, even with
// debug logging on. This drives the process with raw lines and reads stdout to its end.
#[test]
fn stdout_carries_only_json_rpc_even_with_debug_logs() {
    let scene = Scene::new();
    let mut child = Command::new(RELAY)
        .arg("mcp")
        .arg("--data-dir")
        .arg(scene.data_dir())
        .args(["--no-spawn", "--as", "quiet"])
        .env("RELAY_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("relay mcp starts");
    let lines = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "relay_peers", "arguments": {}}}),
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "relay_send", "arguments": {"to": 1}}}),
    ];
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, received) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let _ = sender.send(line.expect("utf-8 line"));
        }
    });
    for line in &lines {
        writeln!(stdin, "{line}").expect("write");
    }
    let mut answered = Vec::new();
    // Read until every request is answered, then close stdin: the server must exit.
    while answered.len() < 4 {
        let line = received
            .recv_timeout(mcp_support::PATIENCE)
            .expect("the server answers every request");
        let message: Value = serde_json::from_str(&line)
            .unwrap_or_else(|error| panic!("not JSON on stdout ({error}): {line}"));
        assert_eq!(message["jsonrpc"], json!("2.0"), "{line}");
        if let Some(id) = message["id"].as_i64() {
            answered.push(id);
        }
    }
    drop(stdin);
    let status = child.wait().expect("relay mcp exits when stdin closes");
    assert!(status.success(), "{status}");
    reader.join().expect("reader");
    for line in received.try_iter() {
        let message: Value = serde_json::from_str(&line)
            .unwrap_or_else(|error| panic!("not JSON on stdout ({error}): {line}"));
        assert_eq!(message["jsonrpc"], json!("2.0"), "{line}");
    }
    answered.sort_unstable();
    assert_eq!(answered, [1, 2, 3, 4]);
}
