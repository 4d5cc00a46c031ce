//! `relay bench mcp`: the round trip of a `relay_send` tool call through `relay mcp` → hub →
//! the receiving `relay mcp` → its `notifications/claude/channel`, beside the hub-only figure
//! (a raw hub client's `send` → the receiver's push) measured in the same run on the same hub.
//!
//! Both sides time one message at a time, from just before the request is written to the
//! moment the receiver reads the push (the sender's answer is awaited too, so requests never
//! overlap), and they take turns, so both see the same machine. The MCP side drives the two `relay mcp` processes over their stdio with plain
//! JSON-RPC lines, as an MCP host does; it does not link rmcp (only `src/mcp/` may). The hub
//! runs with its default durability (`strict`) and a send rate limit high enough not to
//! throttle the run.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::client::HubClient;
use crate::hub::spawn::{SpawnOptions, socket_path};
use crate::protocol::WorkingDirectory;
use crate::protocol::{ClientKind, MessageText, PeerName, RegisterParams, SendParams};

/// Round trips run before measuring, on each side.
const WARMUP_ROUND_TRIPS: u64 = 100;

/// Longest one round trip may take before the benchmark gives up.
const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(10);

/// The text sent in every round trip (about the size of a short chat message).
const BENCH_TEXT: &str = "bench: the build on main is green again, the flaky test was the clock";

/// Options of the MCP benchmark.
#[derive(Clone, Debug)]
pub struct McpBenchConfig {
    /// Scratch directory for the hub's data dir (removed afterwards).
    pub dir: PathBuf,
    /// Measured round trips on each side.
    pub round_trips: u64,
    /// The `relay` binary to run as hub and as `relay mcp`.
    pub relay_binary: PathBuf,
}

/// Latency figures of one side.
#[derive(Clone, Copy, Debug, Default)]
pub struct RoundTripFigures {
    /// Median round trip.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest round trip.
    pub max: Duration,
}

/// What `relay bench mcp` measured.
#[derive(Clone, Debug, Default)]
pub struct McpBenchReport {
    /// Measured round trips on each side.
    pub round_trips: u64,
    /// Raw hub client: `send` → the receiver's push.
    pub hub: RoundTripFigures,
    /// Through MCP: `tools/call relay_send` → the receiver's channel notification.
    pub mcp: RoundTripFigures,
    /// Through MCP into Claude Code's messaging socket: `tools/call relay_send` → the user line
    /// written to the socket (a fake in the bench process) by the receiver's `relay mcp`.
    pub socket: RoundTripFigures,
}

impl McpBenchReport {
    /// How much the MCP layer adds on top of the hub's median, in percent.
    pub fn overhead_p50_percent(&self) -> f64 {
        let hub = self.hub.p50.as_secs_f64();
        if hub == 0.0 {
            return 0.0;
        }
        (self.mcp.p50.as_secs_f64() / hub - 1.0) * 100.0
    }
}

/// Starts a hub in `config.dir`, measures both sides, stops the hub.
///
/// The two sides alternate, one round trip each in turn, so both see the same machine: a
/// disk stall or a busy neighbour lands on both figures alike.
///
/// # Errors
/// The hub or a `relay mcp` process could not start, or a round trip failed or timed out.
pub fn run(config: &McpBenchConfig, progress: &mut dyn Write) -> anyhow::Result<McpBenchReport> {
    let _ = std::fs::remove_dir_all(&config.dir);
    let data_dir = config.dir.join("data");
    crate::data_dir::create_private_dir(&data_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut hub = start_hub(&config.relay_binary, &data_dir)?;
    writeln!(
        progress,
        "{} round trips on each side, alternating",
        config.round_trips
    )?;
    let outcome = runtime.block_on(measure(&config.relay_binary, &data_dir, config.round_trips));
    let _ = hub.kill();
    let _ = hub.wait();
    runtime.shutdown_background();
    let _ = std::fs::remove_dir_all(&config.dir);
    outcome
}

/// The hub of the run: default durability, no idle exit, a rate limit that never throttles.
fn start_hub(relay: &Path, data_dir: &Path) -> anyhow::Result<std::process::Child> {
    let child = std::process::Command::new(relay)
        .arg("hub")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--ws-port", "0", "--idle-exit", "0"])
        .args(super::NO_GUARDS)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {} hub", relay.display()))?;
    let socket = socket_path(data_dir);
    let started = Instant::now();
    // Bounded by ROUND_TRIP_TIMEOUT.
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        anyhow::ensure!(
            started.elapsed() < ROUND_TRIP_TIMEOUT,
            "the hub did not open {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

async fn measure(
    relay: &Path,
    data_dir: &Path,
    round_trips: u64,
) -> anyhow::Result<McpBenchReport> {
    let mut hub_side = HubSide::start(data_dir).await?;
    let mut mcp_side = McpSide::start(relay, data_dir).await?;
    let mut socket_side = SocketSide::start(relay, data_dir).await?;
    let mut hub_histogram = new_histogram()?;
    let mut mcp_histogram = new_histogram()?;
    let mut socket_histogram = new_histogram()?;
    for index in 0..WARMUP_ROUND_TRIPS + round_trips {
        let hub_elapsed = hub_side.round_trip().await?;
        let mcp_elapsed = mcp_side.round_trip(index).await?;
        let socket_elapsed = socket_side.round_trip(index).await?;
        if index >= WARMUP_ROUND_TRIPS {
            record(&mut hub_histogram, hub_elapsed)?;
            record(&mut mcp_histogram, mcp_elapsed)?;
            record(&mut socket_histogram, socket_elapsed)?;
        }
    }
    mcp_side.stop().await;
    socket_side.stop().await;
    Ok(McpBenchReport {
        round_trips,
        hub: figures(&hub_histogram),
        mcp: figures(&mcp_histogram),
        socket: figures(&socket_histogram),
    })
}

/// Two raw hub clients: one sends, the other receives the push.
struct HubSide {
    sender: HubClient,
    receiver: HubClient,
    pushes: tokio::sync::mpsc::Receiver<crate::protocol::HubNotification>,
    params: SendParams,
}

impl HubSide {
    async fn start(data_dir: &Path) -> anyhow::Result<HubSide> {
        let sender = hub_client(data_dir, "bench-hub-sender").await?;
        let mut receiver = hub_client(data_dir, "bench-hub-receiver").await?;
        let pushes = receiver
            .take_pushes()
            .context("invariant: a new client has its push stream")?;
        let params = SendParams {
            idempotency_key: None,
            to: PeerName::new("bench-hub-receiver")?,
            text: MessageText::new(BENCH_TEXT)?,
            reply_to: None,
            urgent: false,
        };
        Ok(HubSide {
            sender,
            receiver,
            pushes,
            params,
        })
    }

    /// `send` → the receiver's push (the sender's answer awaited too).
    async fn round_trip(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let (sent, pushed) = tokio::time::timeout(ROUND_TRIP_TIMEOUT, async {
            tokio::join!(self.sender.call(self.params.clone()), async {
                let push = self.pushes.recv().await;
                let elapsed = started.elapsed();
                // The sender's answer waits for the acknowledgement, as with a real session.
                if let Some(crate::protocol::HubNotification::Message(push)) = &push {
                    let _ = self
                        .receiver
                        .acknowledge(push, crate::protocol::AckStep::Read)
                        .await;
                }
                (push, elapsed)
            })
        })
        .await
        .context("a hub round trip timed out")?;
        sent.context("send failed")?;
        let (push, elapsed) = pushed;
        push.context("the receiver's connection closed")?;
        Ok(elapsed)
    }
}

async fn hub_client(data_dir: &Path, name: &str) -> anyhow::Result<HubClient> {
    let client = HubClient::connect(data_dir, &SpawnOptions::default(), "relay-bench/0").await?;
    client
        .call(RegisterParams {
            delivery: None,
            name: Some(PeerName::new(name)?),
            session_name: None,
            cwd: WorkingDirectory::new("/")?,
            git_branch: None,
            client: ClientKind::Cli,
        })
        .await?;
    Ok(client)
}

/// Two `relay mcp` processes: one is asked to `relay_send`, the other writes the channel
/// notification.
struct McpSide {
    sender: McpPipe,
    receiver: McpPipe,
    arguments: Value,
}

impl McpSide {
    async fn start(relay: &Path, data_dir: &Path) -> anyhow::Result<McpSide> {
        Ok(McpSide {
            sender: McpPipe::start(relay, data_dir, "bench-mcp-sender").await?,
            receiver: McpPipe::start(relay, data_dir, "bench-mcp-receiver").await?,
            arguments: json!({"to": "bench-mcp-receiver", "text": BENCH_TEXT}),
        })
    }

    /// `tools/call relay_send` → the receiver's channel notification (the tool result awaited
    /// too).
    async fn round_trip(&mut self, index: u64) -> anyhow::Result<Duration> {
        let receiver = &mut self.receiver;
        let notified = async {
            receiver
                .read_until(|message| message["method"] == "notifications/claude/channel")
                .await
                .map(drop)
        };
        timed_relay_send(&mut self.sender, &self.arguments, index + 10, notified).await
    }

    async fn stop(self) {
        self.sender.stop().await;
        self.receiver.stop().await;
    }
}

/// A `relay mcp` started as Claude Code starts it (with a messaging socket, here a listener of
/// the bench's own that reads each connection's lines), and a second one sending to it.
struct SocketSide {
    sender: McpPipe,
    receiver: McpPipe,
    lines: tokio::sync::mpsc::UnboundedReceiver<Value>,
    arguments: Value,
}

impl SocketSide {
    async fn start(relay: &Path, data_dir: &Path) -> anyhow::Result<SocketSide> {
        // Beside the data dir, in the bench's scratch directory (removed afterwards).
        let socket_dir = data_dir.parent().unwrap_or(data_dir).join("cc-socks");
        crate::data_dir::create_private_dir(&socket_dir)?;
        let socket = socket_dir.join("4242.sock");
        let listener = tokio::net::UnixListener::bind(&socket)?;
        let (line_sender, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            // Ends with the runtime: one reader per connection, as Claude Code has.
            while let Ok((stream, _)) = listener.accept().await {
                let line_sender = line_sender.clone();
                tokio::spawn(async move {
                    let mut lines = BufReader::new(stream).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Ok(value) = serde_json::from_str::<Value>(&line)
                            && value["type"] == "user"
                        {
                            let _ = line_sender.send(value);
                        }
                    }
                });
            }
        });
        let socket_env = socket.display().to_string();
        let env = [
            ("CLAUDE_CODE_MESSAGING_SOCKET", socket_env.as_str()),
            ("CLAUDE_CODE_MESSAGING_TOKEN", "bench"),
        ];
        Ok(SocketSide {
            sender: McpPipe::start(relay, data_dir, "bench-socket-sender").await?,
            receiver: McpPipe::start_with(relay, data_dir, "bench-socket-receiver", &env).await?,
            lines,
            arguments: json!({"to": "bench-socket-receiver", "text": BENCH_TEXT}),
        })
    }

    /// `tools/call relay_send` → the user line in the socket (the tool result awaited too).
    async fn round_trip(&mut self, index: u64) -> anyhow::Result<Duration> {
        let lines = &mut self.lines;
        let written = async {
            lines
                .recv()
                .await
                .map(drop)
                .context("the socket listener stopped")
        };
        timed_relay_send(&mut self.sender, &self.arguments, index + 10, written).await
    }

    async fn stop(self) {
        self.sender.stop().await;
        self.receiver.stop().await;
    }
}

/// Calls `relay_send` with `arguments` (request id `id`) on `sender` and times it until
/// `arrived` is done; the tool's answer is awaited too and must be a success.
async fn timed_relay_send(
    sender: &mut McpPipe,
    arguments: &Value,
    id: u64,
    arrived: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<Duration> {
    let request = json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "relay_send", "arguments": arguments},
    });
    let started = Instant::now();
    let (answered, arrived) = tokio::time::timeout(ROUND_TRIP_TIMEOUT, async {
        sender.write(&request).await?;
        let arrived = async {
            arrived.await?;
            anyhow::Ok(started.elapsed())
        };
        let answered = sender.read_until(|message| message["id"] == json!(id));
        anyhow::Ok(tokio::join!(answered, arrived))
    })
    .await
    .context("an MCP round trip timed out")??;
    let answer = answered?;
    anyhow::ensure!(
        answer["result"]["isError"] == json!(false),
        "relay_send failed: {answer}"
    );
    arrived
}

/// One `relay mcp` process spoken to with JSON-RPC lines on its stdio.
struct McpPipe {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl McpPipe {
    /// Starts `relay mcp --no-spawn --as <name>` and completes the MCP handshake.
    async fn start(relay: &Path, data_dir: &Path, name: &str) -> anyhow::Result<McpPipe> {
        McpPipe::start_with(relay, data_dir, name, &[]).await
    }

    /// As [`McpPipe::start`], with `env` set (and Claude Code's variables cleared otherwise).
    async fn start_with(
        relay: &Path,
        data_dir: &Path,
        name: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<McpPipe> {
        let mut command = Command::new(relay);
        command
            .env_remove("CLAUDE_CODE_MESSAGING_SOCKET")
            .env_remove("CLAUDE_CODE_MESSAGING_TOKEN");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .arg("mcp")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--no-spawn", "--as", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} mcp", relay.display()))?;
        let stdin = child.stdin.take().context("relay mcp stdin")?;
        let stdout = child.stdout.take().context("relay mcp stdout")?;
        let mut pipe = McpPipe {
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
        };
        pipe.write(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "relay-bench", "version": "0"},
            },
        }))
        .await?;
        let answer = tokio::time::timeout(
            ROUND_TRIP_TIMEOUT,
            pipe.read_until(|message| message["id"] == json!(1)),
        )
        .await
        .context("relay mcp did not answer initialize")??;
        anyhow::ensure!(
            answer.get("result").is_some(),
            "initialize failed: {answer}"
        );
        pipe.write(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        // As MCP clients do at start; `relay mcp` holds socket pushes until the tools are listed.
        pipe.write(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
            .await?;
        tokio::time::timeout(
            ROUND_TRIP_TIMEOUT,
            pipe.read_until(|message| message["id"] == json!(2)),
        )
        .await
        .context("relay mcp did not answer tools/list")??;
        Ok(pipe)
    }

    async fn write(&mut self, message: &Value) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(message)?;
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        Ok(())
    }

    /// Reads lines until one matches, skipping the others (other answers, notifications).
    async fn read_until(&mut self, wanted: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        // Bounded by the caller's timeout.
        loop {
            let line = self
                .stdout
                .next_line()
                .await?
                .context("relay mcp closed its stdout")?;
            let message: Value = serde_json::from_str(&line)
                .with_context(|| format!("relay mcp wrote a line that is not JSON: {line}"))?;
            if wanted(&message) {
                return Ok(message);
            }
        }
    }

    async fn stop(mut self) {
        drop(self.stdin);
        if tokio::time::timeout(ROUND_TRIP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    // Nanoseconds up to the round-trip timeout, 3 significant digits.
    Ok(Histogram::new_with_bounds(
        1,
        ROUND_TRIP_TIMEOUT.as_nanos() as u64,
        3,
    )?)
}

fn record(histogram: &mut Histogram<u64>, elapsed: Duration) -> anyhow::Result<()> {
    histogram.record(elapsed.as_nanos().max(1) as u64)?;
    Ok(())
}

fn figures(histogram: &Histogram<u64>) -> RoundTripFigures {
    RoundTripFigures {
        p50: Duration::from_nanos(histogram.value_at_quantile(0.50)),
        p99: Duration::from_nanos(histogram.value_at_quantile(0.99)),
        max: Duration::from_nanos(histogram.max()),
    }
}

impl fmt::Display for McpBenchReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = |duration: Duration| duration.as_secs_f64() * 1e6;
        writeln!(
            formatter,
            "{} round trips each, one at a time, same hub (durability strict)",
            self.round_trips
        )?;
        for (label, figures) in [
            ("hub client  send -> push            ", self.hub),
            ("relay mcp   relay_send -> channel   ", self.mcp),
            ("relay mcp   relay_send -> cc socket ", self.socket),
        ] {
            writeln!(
                formatter,
                "  {label} p50 {:>8.1} µs   p99 {:>8.1} µs   max {:>8.1} µs",
                micros(figures.p50),
                micros(figures.p99),
                micros(figures.max)
            )?;
        }
        writeln!(
            formatter,
            "  MCP layer on top of the hub p50: {:+.0}% (target < +50%)",
            self.overhead_p50_percent()
        )
    }
}
