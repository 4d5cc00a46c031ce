//! `relay hub`: run the hub daemon of a data dir in the foreground.

use std::os::unix::fs::OpenOptionsExt as _;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::DataDirArgs;
use super::exit_code::ExitCode;
use crate::hub::core::CoreExit;
use crate::hub::daemon::{HubConfig, run};
use crate::hub::limits::{
    IDLE_EXIT_DEFAULT, NEW_IDENTITIES_BURST, NEW_IDENTITIES_PER_SECOND, PING_INTERVAL_DEFAULT,
    PING_TIMEOUT_DEFAULT, SEND_BURST_DEFAULT, SEND_RATE_PER_SECOND_DEFAULT, WS_PORT_DEFAULT,
};
use crate::hub::rate::RateConfig;

/// Run the hub: one per data dir, the single writer of its log. Sessions start it on demand.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay hub\n  relay hub --data-dir ~/.relay-test --idle-exit 0\n  relay hub --durability os --ws-port 0\n\nThe hub listens on <data dir>/hub.sock (mode 0600) and on ws://127.0.0.1:<ws-port> (first frame: auth with the token in <data dir>/ws.token). Logs go to <data dir>/logs/hub.log.\n\nBounds against stuck and hostile clients: a write to a session that takes over 10 s evicts it (its unacknowledged pushes stay unread); a probe of a fixed name's holder waits at most 5 s; a WebSocket client has 5 s to upgrade and 5 s more to authenticate, may send 16 KiB before it does, at most 256 wait to authenticate at once (more are closed at accept), and an upgrade with an Origin header (a browser) gets 403; at most 4352 connections at once; pushes queued for one session stop at 4 MiB, for all at 256 MiB (the rest stay queued in the mailboxes); 256 new identities per local user at once, then 2 per second; accept errors back off from 50 ms to 1 s; the open-files soft limit is raised to the hard limit at start; files are created 0600, directories 0700; on SIGTERM released replies and pushes get 2 s to be written."
)]
pub struct HubArgs {
    #[command(flatten)]
    data_dir: DataDirArgs,
    /// strict: a reply is sent only after its change is on disk; os: after it reaches the page cache (survives a crash of the hub, not of the machine).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Strict)]
    durability: DurabilityArg,
    /// Seconds after the last session leaves before the hub exits; 0 never.
    #[arg(long, value_name = "SECS", default_value_t = IDLE_EXIT_DEFAULT.as_secs())]
    idle_exit: u64,
    /// Loopback WebSocket port; 0 picks a free one (written to <data dir>/ws.port).
    #[arg(long, default_value_t = WS_PORT_DEFAULT)]
    ws_port: u16,
    /// No WebSocket endpoint at all.
    #[arg(long)]
    no_ws: bool,
    /// Seconds a session may stay quiet before the hub pings it.
    #[arg(long, value_name = "SECS", default_value_t = PING_INTERVAL_DEFAULT.as_secs())]
    ping_interval: u64,
    /// Seconds a pinged session has to answer before it is evicted.
    #[arg(long, value_name = "SECS", default_value_t = PING_TIMEOUT_DEFAULT.as_secs())]
    ping_timeout: u64,
    /// Sends per second each session may make on average (messages, asks, replies, posts).
    #[arg(long, default_value_t = SEND_RATE_PER_SECOND_DEFAULT)]
    send_rate: u32,
    /// Sends a session may make in a burst.
    #[arg(long, default_value_t = SEND_BURST_DEFAULT)]
    send_burst: u32,
    /// New identities (names never seen) per second each local user may register.
    #[arg(long, default_value_t = NEW_IDENTITIES_PER_SECOND)]
    new_identity_rate: u32,
    /// New identities a local user may register in a burst.
    #[arg(long, default_value_t = NEW_IDENTITIES_BURST)]
    new_identity_burst: u32,
    /// Keep this much log history: a size (512MiB, 2GB) or an age (7d, 12h). Older segments are deleted once a snapshot covers them; unread mail lives in the snapshot. Default: keep everything.
    #[arg(long, value_name = "SIZE|DURATION", value_parser = crate::hub::retention::parse_retention)]
    retain: Option<crate::hub::retention::Retention>,
    /// Log segment size in bytes.
    #[arg(long, default_value_t = relay_log::limits::SEGMENT_BYTES_DEFAULT, hide = true)]
    segment_bytes: u64,
}

/// `--durability` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// Synced to disk before any reply (the default).
    Strict,
    /// Page cache only: survives a hub crash, not a power cut.
    Os,
}

/// Runs `relay hub`.
///
/// # Errors
/// The hub could not start (another hub runs, the log is damaged, a socket cannot be bound).
pub fn run_hub(args: HubArgs) -> anyhow::Result<ExitCode> {
    // Before the first file (logs/hub.log): everything the hub creates is 0600, dirs 0700.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let data_dir = args.data_dir.resolve();
    crate::data_dir::create_private_dir(&data_dir.join("logs"))?;
    init_file_logging(&data_dir)?;
    let config = HubConfig {
        data_dir,
        durability: match args.durability {
            DurabilityArg::Strict => relay_log::Durability::Strict,
            DurabilityArg::Os => relay_log::Durability::Os,
        },
        idle_exit: (args.idle_exit > 0).then(|| Duration::from_secs(args.idle_exit)),
        ws_port: (!args.no_ws).then_some(args.ws_port),
        ping_interval: Duration::from_secs(args.ping_interval.max(1)),
        ping_timeout: Duration::from_secs(args.ping_timeout.max(1)),
        rate: RateConfig {
            per_second: args.send_rate.max(1),
            burst: args.send_burst.max(1),
        },
        new_identity_rate: RateConfig {
            per_second: args.new_identity_rate.max(1),
            burst: args.new_identity_burst.max(1),
        },
        segment_bytes: args.segment_bytes,
        retain: args.retain,
    };
    if let Some(retain) = config.retain {
        crate::hub::retention::check_retention(retain, config.segment_bytes)
            .map_err(anyhow::Error::msg)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match runtime.block_on(run(config))? {
        CoreExit::Shutdown | CoreExit::Idle => Ok(ExitCode::Success),
        CoreExit::StorageFailed => {
            eprintln!(
                "relay: the hub stopped because its log could not be written; see logs/hub.log"
            );
            Ok(ExitCode::Failed)
        }
    }
}

fn init_file_logging(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let path = data_dir.join("logs").join("hub.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("RELAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
    Ok(())
}
