//! `relay mcp`: the per-session MCP server on stdio, started by the AI client.
//!
//! stdout belongs to MCP's JSON-RPC, so this command logs to stderr (warnings, or what
//! `RELAY_LOG` asks for) and to `<data dir>/logs/mcp.log` (info and up), never to stdout.

use std::path::Path;

use clap::{Args, ValueEnum};

use super::DataDirArgs;
use super::exit_code::ExitCode;
use crate::hub::spawn::SpawnOptions;
use crate::mcp::SessionConfig;
use crate::mcp::identity::{CLIENT_ENV, Identity, PEER_ID_ENV, SESSION_NAME_ENV};
use crate::protocol::ClientKind;

/// Serve the relay_* tools to an AI coding session over MCP on stdio, and push its incoming
/// messages as Claude channel notifications. The AI client starts this command.
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
    /// The program this session runs in.
    #[arg(long, env = CLIENT_ENV, value_enum, default_value_t = ClientArg::Claude)]
    client: ClientArg,
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
    /// Gemini CLI / Antigravity.
    Gemini,
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
    let identity = Identity::new(
        args.name.as_deref(),
        session_name.as_deref(),
        &cwd,
        client_kind(args.client),
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
        messaging: crate::clients::claude::messaging::MessagingTarget::from_env(),
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

fn client_kind(client: ClientArg) -> ClientKind {
    match client {
        ClientArg::Claude => ClientKind::Claude,
        ClientArg::Codex => ClientKind::Codex,
        ClientArg::Cursor => ClientKind::Cursor,
        ClientArg::Opencode => ClientKind::OpenCode,
        ClientArg::Copilot => ClientKind::Copilot,
        ClientArg::Gemini => ClientKind::Gemini,
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
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(logs.join("mcp.log"))
        })
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
