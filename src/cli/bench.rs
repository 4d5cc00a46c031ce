//! `relay bench`: the benchmarks, printed as figures beside their raw baselines.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::exit_code::ExitCode;

/// Measure Relay's building blocks on this machine; prints figures, asserts nothing.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay bench log\n  relay bench hub --sessions 2,10,100 --window 4 --durability strict,os\n  relay bench mcp --round-trips 5000\n  relay bench log --replay-mib 256 --dir /mnt/disk/relay-bench"
)]
pub struct BenchArgs {
    /// Which benchmark.
    #[command(subcommand)]
    pub target: BenchTarget,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchTarget {
    /// The segment log: appends (os), group commits (strict), replay, beside raw I/O.
    Log(LogBenchArgs),
    /// Projections: full replay of mixed events and start-up from a snapshot.
    Replay(ReplayBenchArgs),
    /// A real hub: durable messages per second and send->push latency.
    Hub(HubBenchArgs),
    /// MCP channel: relay_send through relay mcp to the peer's channel push, beside the hub alone.
    Mcp(McpBenchArgs),
    /// A real hub's memory: per idle session and per queued 200-byte message.
    Memory(MemoryBenchArgs),
    /// Two linked hubs on loopback: send -> push across hubs beside local, and catch-up after
    /// a partition (events shipped and applied per second).
    ///
    /// Examples:
    ///   relay bench federation
    ///   relay bench federation --backlog 1000000 --round-trips 5000
    ///   relay bench federation --nats
    Federation(FederationBenchArgs),
}

/// Options of `relay bench memory`.
#[derive(Debug, Args)]
pub struct MemoryBenchArgs {
    /// Scratch directory for the hub's data dir (removed afterwards) [default: a temp dir].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Idle sessions to connect (this process needs two descriptors each).
    #[arg(long, default_value_t = 400)]
    pub sessions: usize,
    /// 200-byte messages to queue for offline identities.
    #[arg(long, default_value_t = 20_000)]
    pub messages: usize,
}

/// Options of `relay bench federation`.
#[derive(Debug, Args)]
pub struct FederationBenchArgs {
    /// Scratch directory for both hubs' data dirs (removed afterwards) [default: a temp dir].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Measured round trips on each side (after 20 warm-up ones).
    #[arg(long, default_value_t = 1000)]
    pub round_trips: u64,
    /// Messages stored for the stopped hub, spread over peers of 5,000 each.
    #[arg(long, default_value_t = 100_000)]
    pub backlog: u64,
    /// Also run it through a NATS JetStream server (nats-server on PATH; started on a loopback
    /// port with a temp store), beside the direct link.
    #[arg(long)]
    pub nats: bool,
    /// With --nats: origin hubs whose backlog a stopped hub drains when it starts.
    #[arg(long, default_value_t = crate::bench::federation::DRAIN_HUBS_DEFAULT)]
    pub drain_hubs: usize,
    /// With --nats: messages in that backlog, all hubs together.
    #[arg(long, default_value_t = 100_000)]
    pub drain_backlog: u64,
}

/// Options of `relay bench mcp`.
#[derive(Debug, Args)]
pub struct McpBenchArgs {
    /// Scratch directory for the hub's data dir (removed afterwards) [default: a temp dir].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Measured round trips on each side (after 100 warm-up ones).
    #[arg(long, default_value_t = 2000)]
    pub round_trips: u64,
}

/// Options of `relay bench hub`.
#[derive(Debug, Args)]
pub struct HubBenchArgs {
    /// Scratch directory (removed afterwards) [default: a temp dir].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Session counts to measure (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "2,10,100")]
    pub sessions: Vec<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Sends each session keeps in flight (at most half the hub's requests in flight per session).
    #[arg(long, default_value_t = 4)]
    pub window: usize,
    /// Durabilities to measure, each with its own hub (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "strict,os")]
    pub durability: Vec<HubBenchDurability>,
    /// Runs of each load; every figure printed is the median of them.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
}

/// `relay bench hub --durability` values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum HubBenchDurability {
    /// Synced to disk before any reply.
    Strict,
    /// Page cache only.
    Os,
}

/// Options of `relay bench replay`.
#[derive(Debug, Args)]
pub struct ReplayBenchArgs {
    /// Scratch directory (removed afterwards) [default: a temp dir].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Events in the generated log.
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
}

/// Options of `relay bench log`.
#[derive(Debug, Args)]
pub struct LogBenchArgs {
    /// Scratch directory on the disk to measure (removed afterwards) [default: a temp dir].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Records appended in the os-durability append benchmark.
    #[arg(long, default_value_t = 1_000_000)]
    pub append_records: u64,
    /// Group commits per batch size in the strict benchmark.
    #[arg(long, default_value_t = 300)]
    pub strict_commits: u64,
    /// Size of the log replayed, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub replay_mib: u64,
}

/// Runs `relay bench …`.
///
/// # Errors
/// Any failure of the benchmark's file operations.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.target {
        BenchTarget::Mcp(args) => {
            let dir = args.dir.unwrap_or_else(|| scratch_dir("mcp"));
            let config = crate::bench::mcp::McpBenchConfig {
                dir: dir.clone(),
                round_trips: args.round_trips,
                relay_binary: std::env::current_exe()?,
            };
            println!("relay bench mcp in {}", dir.display());
            let report = crate::bench::mcp::run(&config, &mut std::io::stderr())?;
            print!("{report}");
            Ok(ExitCode::Success)
        }
        BenchTarget::Federation(args) => {
            let dir = args.dir.unwrap_or_else(|| scratch_dir("federation"));
            let config = crate::bench::federation::FederationBenchConfig {
                dir: dir.clone(),
                round_trips: args.round_trips,
                backlog: args.backlog,
                nats: args.nats,
                drain_hubs: args.drain_hubs,
                drain_backlog: args.drain_backlog,
            };
            println!("relay bench federation in {}", dir.display());
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let reports = runtime.block_on(crate::bench::federation::run(&config));
            let _ = std::fs::remove_dir_all(&dir);
            print!("{}", reports?);
            Ok(ExitCode::Success)
        }
        BenchTarget::Memory(args) => {
            let dir = args.dir.unwrap_or_else(|| scratch_dir("memory"));
            let config = crate::bench::memory::MemoryBenchConfig {
                dir: dir.clone(),
                sessions: args.sessions,
                messages: args.messages,
            };
            println!("relay bench memory in {}", dir.display());
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let report = runtime.block_on(crate::bench::memory::run(&config))?;
            print!("{report}");
            Ok(ExitCode::Success)
        }
        BenchTarget::Hub(args) => {
            let dir = args.dir.unwrap_or_else(|| scratch_dir("hub"));
            let config = crate::bench::hub::HubBenchConfig {
                dir: dir.clone(),
                sessions: args.sessions,
                window: args.window,
                durabilities: args
                    .durability
                    .iter()
                    .map(|durability| match durability {
                        HubBenchDurability::Strict => crate::bench::hub::BenchDurability::Strict,
                        HubBenchDurability::Os => crate::bench::hub::BenchDurability::Os,
                    })
                    .collect(),
                duration: std::time::Duration::from_secs(args.seconds.max(1)),
                repeat: args.repeat,
            };
            println!("relay bench hub in {}", dir.display());
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let report = runtime.block_on(crate::bench::hub::run(&config))?;
            print!("{report}");
            Ok(ExitCode::Success)
        }
        BenchTarget::Replay(args) => {
            let dir = args.dir.unwrap_or_else(|| scratch_dir("replay"));
            let config = crate::bench::replay::ReplayBenchConfig {
                dir: dir.clone(),
                events: args.events,
            };
            println!("relay bench replay in {}", dir.display());
            let report = crate::bench::replay::run(&config, &mut std::io::stderr())?;
            print!("{report}");
            Ok(ExitCode::Success)
        }
        BenchTarget::Log(args) => {
            let dir = args.dir.unwrap_or_else(|| scratch_dir("log"));
            let config = relay_log::bench::BenchConfig {
                dir: dir.clone(),
                append_records: args.append_records,
                strict_commits: args.strict_commits,
                replay_bytes: args.replay_mib << 20,
            };
            println!("relay bench log in {}", dir.display());
            let report = relay_log::bench::run(&config, &mut std::io::stderr())
                .with_context(|| format!("benchmark in {}", dir.display()))?;
            print!("{report}");
            Ok(ExitCode::Success)
        }
    }
}

fn scratch_dir(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!("relay-bench-{what}-{}", std::process::id()))
}
