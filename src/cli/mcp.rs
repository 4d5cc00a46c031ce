//! `relay mcp`: the per-session MCP server on stdio, started by the AI client.
//!
//! stdout belongs to MCP's JSON-RPC, so this command logs to stderr (warnings, or what
//! `RELAY_LOG` asks for) and to `<data dir>/logs/mcp.log` (info and up, rotated at 16 MiB, 3 kept), never to
//! stdout.

use std::path::Path;

use clap::{Args, ValueEnum};

use super::DataDirArgs;
use super::exit_code::ExitCode;
use crate::hub::spawn::SpawnOptions;
use crate::mcp::identity::{CLIENT_ENV, Identity, PEER_ID_ENV, SESSION_NAME_ENV};
use crate::mcp::{DeliveryPath, DeliveryPlan, SessionConfig};
use crate::protocol::ClientKind;

/// Serve the relay_* tools to an AI coding session over MCP on stdio, and hand its incoming
/// messages to the model by its client's push path (Claude Code's messaging socket, Codex's
/// app-server, the OpenCode plugin, the Copilot extension, Gemini and Cursor hooks). The AI
/// client starts this command.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  claude mcp add relay -- relay mcp\n  relay mcp --client codex\n  RELAY_PEER_ID=reviewer relay mcp --data-dir /srv/relay\n\nNaming: --as (RELAY_PEER_ID) takes exactly that name; else --session-name (RELAY_SESSION_NAME, else CLAUDE_SESSION_NAME) is a hint the hub turns into a free name; else the hub names the session after its working directory.\nLogs go to stderr and <data dir>/logs/mcp.log; stdout carries MCP only."
)]
pub struct McpArgs {
    #[command(flatten)]
    data_dir: DataDirArgs,
    /// Take exactly this name, or fail [default: $RELAY_PEER_ID].
    #[arg(long = "as", env = PEER_ID_ENV, value_name = "NAME")]
    name: Option<String>,
    /// Label for the session, a hint for the name [default: $RELAY_SESSION_NAME, else $CLAUDE_SESSION_NAME].
    #[arg(long, env = SESSION_NAME_ENV, value_name = "LABEL")]
    session_name: Option<String>,
    /// The program this session runs in, which picks the push path (docs/delivery.md)
    /// [default: $RELAY_CLIENT, else detected from the environment, else claude].
    #[arg(long, env = CLIENT_ENV, value_enum)]
    client: Option<ClientArg>,
    /// Never start a hub: wait for one to answer on the data dir's socket.
    #[arg(long)]
    no_spawn: bool,
    /// One more argument for a hub this command starts (repeat for several).
    #[arg(
        long = "hub-arg",
        value_name = "ARG",
        allow_hyphen_values = true,
        hide = true
    )]
    hub_args: Vec<String>,
}

/// `--client` values: the AI clients Relay knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ClientArg {
    /// Claude Code.
    Claude,
    /// Codex CLI.
    Codex,
    /// Cursor.
    Cursor,
    /// OpenCode.
    Opencode,
    /// GitHub Copilot CLI.
    Copilot,
    /// Gemini CLI.
    Gemini,
    /// Antigravity (`agy`): pull only.
    Agy,
}

impl ClientArg {
    /// The client whose environment this process was started in, when it says so (each
    /// marker seen on the real client: Claude Code 2.1.332, Gemini CLI 0.61, OpenCode 1.18.33,
    /// Copilot CLI 1.0.102). Codex passes no marker to MCP servers and Cursor is unchecked:
    /// `relay install` writes `--client` for them.
    fn detect() -> Option<ClientArg> {
        let set = |name: &str| std::env::var_os(name).is_some_and(|value| !value.is_empty());
        if set("CLAUDECODE") || set("CLAUDE_CODE_MESSAGING_SOCKET") {
            Some(ClientArg::Claude)
        } else if set("GEMINI_CLI") {
            Some(ClientArg::Gemini)
        } else if set("OPENCODE") {
            Some(ClientArg::Opencode)
        } else if set("COPILOT_AGENT_SESSION_ID") {
            Some(ClientArg::Copilot)
        } else {
            None
        }
    }
}

/// Runs `relay mcp` until the MCP client closes stdin.
///
/// # Errors
/// The logs or the runtime could not be set up, or the fixed name or working directory is
/// invalid.
pub fn run(args: McpArgs) -> anyhow::Result<ExitCode> {
    let data_dir = args.data_dir.resolve();
    init_logging(&data_dir);
    let session_name = args
        .session_name
        .clone()
        .or_else(crate::mcp::identity::session_name_from_env);
    let cwd = std::env::current_dir().unwrap_or_else(|_| Path::new("/").to_owned());
    let client = args
        .client
        .or_else(ClientArg::detect)
        .unwrap_or(ClientArg::Claude);
    let identity = Identity::new(
        args.name.as_deref(),
        session_name.as_deref(),
        &cwd,
        client_kind(client),
    )?;
    let config = SessionConfig {
        data_dir,
        spawn: SpawnOptions {
            hub_args: args.hub_args,
            ..SpawnOptions::default()
        },
        may_spawn: !args.no_spawn,
        identity,
        client_info: concat!("relay-mcp/", env!("CARGO_PKG_VERSION")).to_owned(),
        delivery: delivery_plan(client),
    };
    // One thread: a message crosses several tasks (hub socket, channel, MCP transport), and
    // hand-offs between them are cheapest without cross-thread wake-ups.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(crate::mcp::run(config));
    // Background tasks (reconnects, a blocked stdin read) must not hold the exit.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => Ok(ExitCode::Success),
        Err(error) => {
            eprintln!("relay: {error}");
            Ok(ExitCode::Failed)
        }
    }
}

/// The push path for `client`, with what the environment offers it.
fn delivery_plan(client: ClientArg) -> DeliveryPlan {
    match client {
        ClientArg::Claude => {
            DeliveryPlan::Claude(crate::clients::claude::messaging::MessagingTarget::from_env())
        }
        ClientArg::Codex => match crate::clients::codex::app_server::CodexTarget::from_env() {
            Some(target) => DeliveryPlan::Codex(target),
            None => DeliveryPlan::Pull,
        },
        ClientArg::Opencode => DeliveryPlan::Endpoint(DeliveryPath::OpenCodePlugin),
        ClientArg::Copilot => DeliveryPlan::Endpoint(DeliveryPath::CopilotExtension),
        ClientArg::Gemini => DeliveryPlan::Endpoint(DeliveryPath::GeminiHook),
        ClientArg::Cursor => DeliveryPlan::Endpoint(DeliveryPath::CursorHook),
        ClientArg::Agy => DeliveryPlan::Pull,
    }
}

fn client_kind(client: ClientArg) -> ClientKind {
    match client {
        ClientArg::Claude => ClientKind::Claude,
        ClientArg::Codex => ClientKind::Codex,
        ClientArg::Cursor => ClientKind::Cursor,
        ClientArg::Opencode => ClientKind::OpenCode,
        ClientArg::Copilot => ClientKind::Copilot,
        ClientArg::Gemini | ClientArg::Agy => ClientKind::Gemini,
    }
}

/// Logs to stderr (`RELAY_LOG`, default `warn`) and to `<data dir>/logs/mcp.log` (`RELAY_LOG`,
/// default `info`, rmcp's own lines from `warn`). A log file that cannot be opened leaves stderr only.
fn init_logging(data_dir: &Path) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer, fmt};

    let filter = |default: &str| {
        EnvFilter::try_from_env("RELAY_LOG").unwrap_or_else(|_| EnvFilter::new(default))
    };
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter("warn"));
    let logs = data_dir.join("logs");
    let file = crate::data_dir::create_private_dir(&logs)
        .and_then(|()| crate::hub::log_files::RotatingFile::open(&logs.join("mcp.log")))
        .ok()
        .map(|file| {
            fmt::layer()
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .with_filter(filter("info,rmcp=warn"))
        });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
}
