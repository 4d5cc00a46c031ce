//! `relay hub`: run the hub daemon of a data dir in the foreground.

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use super::DataDirArgs;
use super::exit_code::ExitCode;
use crate::hub::core::CoreExit;
use crate::hub::daemon::{HubConfig, run};
use crate::hub::log_files::RotatingFile;
use crate::hub::settings::{self, SettingsInput, StartedBy};

/// What `relay hub --help` shows after the options.
const HUB_HELP: &str = "\
Examples:
  relay hub
  relay hub --data-dir ~/.relay-test --idle-exit 600
  relay hub --durability os --ws-port 0
  RELAY_LOG=debug relay hub --log-format json

Settings: every flag above except --data-dir and --log-format has a key of the same name in \
<data dir>/relay.toml (--send-rate is send_rate = 50, --no-ws is no_ws = true); a flag wins \
over the file, the file over the default. Hubs that sessions start on demand read the file \
too. An unknown key or a bad value stops the hub with the file and the key named \
(docs/operations.md lists every key). `relay status` shows each setting in force and where \
it came from.

Idle exit: a hub started by hand (or by `relay service install`) runs until stopped; one \
that a session started on demand exits 600 s after the last session left. --idle-exit or \
idle_exit in relay.toml decide for both.

The hub listens on <data dir>/hub.sock (mode 0600) and on ws://127.0.0.1:<ws-port> (first \
frame: auth with the token in <data dir>/ws.token). When the port is taken the hub says so \
here and goes on without the WebSocket.

Logs: <data dir>/logs/hub.log, rotated at 16 MiB (hub.log.1 .. hub.log.3 kept). RELAY_LOG \
sets the filter (tracing's env-filter syntax: info, debug, relay=debug,warn ...; default \
info); --log-format json writes one JSON object per line. Message bodies are never logged \
below debug.

Stop it with Ctrl-C, SIGTERM or `relay stop`.

Bounds against stuck and hostile clients: a write to a session that takes over 10 s evicts it (its unacknowledged pushes stay unread); a probe of a fixed name's holder waits at most 5 s; a WebSocket client has 5 s to upgrade and 5 s more to authenticate, may send 16 KiB before it does, at most 256 wait to authenticate at once (more are closed at accept), and an upgrade with an Origin header (a browser) gets 403; at most 4352 connections at once; pushes queued for one session stop at 4 MiB, for all at 256 MiB (the rest stay queued in the mailboxes); 256 new identities per local user at once, then 2 per second; accept errors back off from 50 ms to 1 s; the open-files soft limit is raised to the hard limit at start; files are created 0600, directories 0700; on SIGTERM released replies and pushes get 2 s to be written.";

/// Run the hub: one per data dir, the single writer of its log. Sessions start it on demand.
#[derive(Debug, Args)]
#[command(after_help = HUB_HELP)]
pub struct HubArgs {
    #[command(flatten)]
    data_dir: DataDirArgs,
    /// strict: a reply is sent only after its change is on disk; os: after it reaches the page cache (survives a crash of the hub, not of the machine) [default: strict].
    #[arg(long, value_enum)]
    durability: Option<DurabilityArg>,
    /// Seconds after the last session leaves before the hub exits; 0 never [default: never when started by hand, 600 when started on demand].
    #[arg(long, value_name = "SECS")]
    idle_exit: Option<u64>,
    /// Loopback WebSocket port; 0 picks a free one (written to <data dir>/ws.port) [default: 24716].
    #[arg(long, value_name = "PORT")]
    ws_port: Option<u16>,
    /// No WebSocket endpoint at all.
    #[arg(long)]
    no_ws: bool,
    /// Seconds a session may stay quiet before the hub pings it [default: 30].
    #[arg(long, value_name = "SECS")]
    ping_interval: Option<u64>,
    /// Seconds a pinged session has to answer before it is evicted [default: 90].
    #[arg(long, value_name = "SECS")]
    ping_timeout: Option<u64>,
    /// Sends per second each identity may make on average (messages, asks, replies, posts) [default: 50].
    #[arg(long, value_name = "N")]
    send_rate: Option<u32>,
    /// Sends an identity may make in a burst [default: 200].
    #[arg(long, value_name = "N")]
    send_burst: Option<u32>,
    /// New identities (names never seen) per second each local user may register [default: 2].
    #[arg(long, value_name = "N")]
    new_identity_rate: Option<u32>,
    /// New identities a local user may register in a burst [default: 256].
    #[arg(long, value_name = "N")]
    new_identity_burst: Option<u32>,
    /// Turns of direction two identities' direct messages may take within 600 s before the loop guard refuses the next (two assistants answering each other automatically); 0 switches the guard off [default: 100].
    #[arg(long, value_name = "N")]
    loop_guard: Option<u32>,
    /// Format of logs/hub.log lines.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Who started this hub (decides the idle-exit default): hand, on-demand, service.
    #[arg(long, value_name = "WHO", default_value = "hand", hide = true)]
    started_by: String,
    /// Keep this much log history: a size (512MiB, 2GB) or an age (7d, 12h). Older segments are deleted once a snapshot covers them; unread mail lives in the snapshot. Default: keep everything.
    #[arg(long, value_name = "SIZE|DURATION", value_parser = crate::hub::retention::parse_retention)]
    retain: Option<crate::hub::retention::Retention>,
    /// Log segment size in bytes.
    #[arg(long, default_value_t = relay_log::limits::SEGMENT_BYTES_DEFAULT, hide = true)]
    segment_bytes: u64,
}

/// `--log-format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
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
/// The hub could not start (a bad relay.toml, another hub runs, the log is damaged, a socket
/// cannot be bound).
pub fn run_hub(args: HubArgs) -> anyhow::Result<ExitCode> {
    // Before the first file (logs/hub.log): everything the hub creates is 0600, dirs 0700.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let data_dir = args.data_dir.resolve();
    let Some(started_by) = StartedBy::from_name(&args.started_by) else {
        anyhow::bail!(
            "--started-by must be hand, on-demand or service, not {:?}",
            args.started_by
        );
    };
    // The settings come first: a bad relay.toml stops the hub before it touches anything.
    let file = settings::read_file(&data_dir)?;
    let flags = SettingsInput {
        durability: args.durability.map(|durability| match durability {
            DurabilityArg::Strict => relay_log::Durability::Strict,
            DurabilityArg::Os => relay_log::Durability::Os,
        }),
        idle_exit: args.idle_exit,
        ws_port: args.ws_port,
        no_ws: args.no_ws.then_some(true),
        ping_interval: args.ping_interval,
        ping_timeout: args.ping_timeout,
        send_rate: args.send_rate,
        send_burst: args.send_burst,
        new_identity_rate: args.new_identity_rate,
        new_identity_burst: args.new_identity_burst,
        loop_guard: args.loop_guard,
    };
    let settings = settings::resolve(&flags, &file, started_by)?;
    crate::data_dir::create_private_dir(&data_dir.join("logs"))?;
    init_file_logging(&data_dir, args.log_format)?;
    let config = HubConfig {
        data_dir,
        durability: settings.durability,
        idle_exit: settings.idle_exit,
        ws_port: settings.ws_port,
        ping_interval: settings.ping_interval,
        ping_timeout: settings.ping_timeout,
        rate: settings.rate,
        new_identity_rate: settings.new_identity_rate,
        loop_guard: settings.loop_guard,
        segment_bytes: args.segment_bytes,
        started_by,
        settings: settings.listed,
        retain: args.retain,
    };
    if let Some(retain) = config.retain {
        crate::hub::retention::check_retention(retain, config.segment_bytes)
            .map_err(anyhow::Error::msg)?;
    }
    let runtime = if crate::hub::limits::knob_set(crate::hub::limits::ONE_THREAD_ENV) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
    };
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

fn init_file_logging(data_dir: &std::path::Path, format: LogFormat) -> anyhow::Result<()> {
    let path = data_dir.join("logs").join("hub.log");
    let file = RotatingFile::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("RELAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use crate::hub::limits::{
        IDLE_EXIT_DEFAULT, NEW_IDENTITIES_BURST, NEW_IDENTITIES_PER_SECOND, PING_INTERVAL_DEFAULT,
        PING_TIMEOUT_DEFAULT, SEND_BURST_DEFAULT, SEND_RATE_PER_SECOND_DEFAULT, WS_PORT_DEFAULT,
    };

    /// The defaults in `relay hub --help` are written out (the flags are optional, so a
    /// relay.toml value can show through); they must stay equal to the named limits.
    #[test]
    fn the_help_states_the_defaults_of_the_limits() {
        let mut command = crate::cli::Cli::command();
        let hub = command
            .find_subcommand_mut("hub")
            .expect("relay hub exists");
        let help = hub.render_long_help().to_string();
        for default in [
            format!("[default: {WS_PORT_DEFAULT}]"),
            format!("[default: {}]", PING_INTERVAL_DEFAULT.as_secs()),
            format!("[default: {}]", PING_TIMEOUT_DEFAULT.as_secs()),
            format!("[default: {SEND_RATE_PER_SECOND_DEFAULT}]"),
            format!("[default: {SEND_BURST_DEFAULT}]"),
            format!("[default: {NEW_IDENTITIES_PER_SECOND}]"),
            format!("[default: {NEW_IDENTITIES_BURST}]"),
            format!("{} when started on demand", IDLE_EXIT_DEFAULT.as_secs()),
        ] {
            assert!(help.contains(&default), "{default} missing from:\n{help}");
        }
    }
}
