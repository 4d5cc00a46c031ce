//! Shared by the `tests/mcp_*.rs` suites: a hub the test owns, and `relay mcp` sessions driven
//! by rmcp's own client over the child's stdio, as Claude Code drives them.
//!
//! Like every black-box test here, this describes the wire in its own terms (tool names,
//! JSON values) and never imports `relay`. The hub runs as `relay hub --data-dir D --ws-port 0
//! --idle-exit 0` and is killed when the [`TestHub`] drops; sessions run `relay mcp --no-spawn`
//! so they never start a hub of their own behind the test's back.

// Each suite uses a different part of this module, so what is dead differs per test binary:
// an `expect` would be unfulfilled in some of them. `pub` marks the module's interface.
#![allow(dead_code, unreachable_pub)]

pub mod claude_socket;
pub mod codex_app_server;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, CustomNotification, Implementation,
    ProtocolVersion, Tool,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// The `relay` binary under test.
pub const RELAY: &str = env!("CARGO_BIN_EXE_relay");

/// How long a test waits for something that should happen at once (a push, a reconnect).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A hub the test started, killed on drop.
pub struct TestHub {
    data_dir: PathBuf,
    child: Option<Child>,
}

impl TestHub {
    /// Starts a hub on `data_dir` and waits until its socket answers.
    pub fn start(data_dir: &Path) -> TestHub {
        let mut hub = TestHub {
            data_dir: data_dir.to_owned(),
            child: None,
        };
        hub.restart();
        hub
    }

    /// Starts the hub again (after [`TestHub::kill`]) and waits for its socket.
    pub fn restart(&mut self) {
        let child = Command::new(RELAY)
            .args(["hub", "--ws-port", "0", "--idle-exit", "0"])
            .args(["--send-rate", "100000", "--send-burst", "100000"])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env_remove("RELAY_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("relay hub starts");
        self.child = Some(child);
        let socket = self.data_dir.join("hub.sock");
        let started = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                started.elapsed() < PATIENCE,
                "the hub did not open {socket:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The hub's process id (to stop it with SIGSTOP in a test).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the hub runs").id()
    }

    /// Kills the hub (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A data dir and a hub on it, for one test.
pub struct Scene {
    pub dir: tempfile::TempDir,
    pub hub: TestHub,
}

impl Scene {
    /// A fresh data dir with a running hub.
    pub fn new() -> Scene {
        let dir = tempfile::tempdir().expect("temp dir");
        let hub = TestHub::start(&dir.path().join("data"));
        Scene { dir, hub }
    }

    /// The data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A `relay mcp` session that takes exactly `name`.
    pub async fn session(&self, name: &str) -> McpSession {
        McpSession::start(&self.data_dir(), &["--as", name], &[], None).await
    }
}

/// One `relay mcp` process driven by rmcp's client.
pub struct McpSession {
    pub service: RunningService<RoleClient, ChannelRecorder>,
    pub channel: mpsc::UnboundedReceiver<CustomNotification>,
}

/// What a tool call returned: `isError` and the JSON of its text content.
#[derive(Debug)]
pub struct Outcome {
    pub is_error: bool,
    pub value: Value,
    pub structured: Option<Value>,
}

impl Outcome {
    /// The value of a success; panics with the error otherwise.
    pub fn ok(self) -> Value {
        assert!(!self.is_error, "tool failed: {}", self.value);
        assert_eq!(self.value["ok"], Value::Bool(true), "{}", self.value);
        self.value
    }

    /// The code of a tool error; panics on a success.
    pub fn error_code(&self) -> String {
        assert!(self.is_error, "tool succeeded: {}", self.value);
        assert_eq!(self.value["ok"], Value::Bool(false), "{}", self.value);
        assert!(self.value["message"].is_string(), "{}", self.value);
        self.value["code"]
            .as_str()
            .expect("an error carries a code")
            .to_owned()
    }
}

impl McpSession {
    /// Starts `relay mcp --data-dir D --no-spawn <args>` with `env` (and nothing inherited
    /// that changes naming), in `cwd` when given, and completes the MCP handshake.
    pub async fn start(
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        cwd: Option<&Path>,
    ) -> McpSession {
        let mut all_args = vec!["--no-spawn"];
        all_args.extend_from_slice(args);
        McpSession::launch(data_dir, &all_args, env, cwd).await
    }

    /// Starts `relay mcp --data-dir D <args>`, which may spawn the hub itself.
    pub async fn launch(
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        cwd: Option<&Path>,
    ) -> McpSession {
        let mut command = tokio::process::Command::new(RELAY);
        command
            .arg("mcp")
            .arg("--data-dir")
            .arg(data_dir)
            .args(args);
        for key in [
            "RELAY_PEER_ID",
            "RELAY_SESSION_NAME",
            "CLAUDE_SESSION_NAME",
            "RELAY_CLIENT",
            "RELAY_HOME",
            "RELAY_LOG",
            "CLAUDE_CODE_MESSAGING_SOCKET",
            "CLAUDE_CODE_MESSAGING_TOKEN",
            // What `--client` detection reads: the suite may itself run inside a client.
            "CLAUDECODE",
            "GEMINI_CLI",
            "OPENCODE",
            "CURSOR_AGENT",
            "COPILOT_AGENT_SESSION_ID",
            "CODEX_HOME",
            "RELAY_SESSION_SOCKET",
        ] {
            command.env_remove(key);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        let transport = TokioChildProcess::new(command).expect("relay mcp starts");
        let (sender, channel) = mpsc::unbounded_channel();
        let service = ChannelRecorder { sender }
            .serve(transport)
            .await
            .expect("the MCP handshake succeeds");
        // As every real client does right after the handshake (and Relay's socket pushes wait
        // for it).
        service.list_all_tools().await.expect("tools/list answers");
        McpSession { service, channel }
    }

    /// Calls a tool with a JSON object of arguments.
    pub async fn call(&self, tool: &str, arguments: Value) -> Outcome {
        let arguments: Map<String, Value> = match arguments {
            Value::Object(object) => object,
            other => panic!("arguments must be an object: {other}"),
        };
        let result = self
            .service
            .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments))
            .await
            .expect("tools/call answers");
        let text = result
            .content
            .first()
            .and_then(|content| content.as_text())
            .map(|text| text.text.clone())
            .expect("the result has text content");
        Outcome {
            is_error: result.is_error == Some(true),
            value: serde_json::from_str(&text).expect("the text content is JSON"),
            structured: result.structured_content,
        }
    }

    /// The tools the server lists.
    pub async fn tools(&self) -> Vec<Tool> {
        self.service
            .list_all_tools()
            .await
            .expect("tools/list answers")
    }

    /// The params of the next channel notification; panics after [`PATIENCE`].
    pub async fn next_channel(&mut self) -> Value {
        let notification = tokio::time::timeout(PATIENCE, self.channel.recv())
            .await
            .expect("a channel notification arrives in time")
            .expect("the session is alive");
        assert_eq!(notification.method, "notifications/claude/channel");
        notification.params.expect("the notification has params")
    }

    /// Asserts no channel notification arrives within `wait`.
    pub async fn assert_no_channel(&mut self, wait: Duration) {
        if let Ok(Some(notification)) = tokio::time::timeout(wait, self.channel.recv()).await {
            panic!("unexpected notification: {:?}", notification.params);
        }
    }

    /// Closes stdin and waits for `relay mcp` to exit.
    pub async fn close(self) {
        let _ = self.service.cancel().await;
    }
}

/// The test's MCP client: announces itself like Claude Code and records custom notifications.
pub struct ChannelRecorder {
    sender: mpsc::UnboundedSender<CustomNotification>,
}

impl ClientHandler for ChannelRecorder {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("relay-tests", "0"),
        )
        .with_protocol_version(ProtocolVersion::V_2025_06_18)
    }

    async fn on_custom_notification(
        &self,
        notification: CustomNotification,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.sender.send(notification);
    }
}

/// Checks the exact shape of a channel notification: a string `content` and a `meta` object
/// whose values are all strings; returns `meta`.
pub fn channel_meta(params: &Value) -> Map<String, Value> {
    assert!(params["content"].is_string(), "{params}");
    let meta = params["meta"]
        .as_object()
        .expect("meta is an object")
        .clone();
    for (key, value) in &meta {
        assert!(value.is_string(), "meta.{key} is not a string: {value}");
    }
    meta
}

/// The peer's words inside a wrapped text (`<peer-message …>words</peer-message>`), with the
/// escaping undone: what the peer sent.
pub fn peer_text(wrapped: &Value) -> String {
    let wrapped = wrapped.as_str().expect("a wrapped text");
    let start = wrapped.find('>').expect("an opening tag") + 1;
    let end = wrapped.rfind("</").expect("a closing tag");
    wrapped[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}
