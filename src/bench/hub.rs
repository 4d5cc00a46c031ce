//! `relay bench hub`: a real hub process and N sessions on its Unix socket sending 200-byte
//! direct messages to each other, each session keeping `--window` sends in flight; for each
//! durability asked for: throughput, send→push latency (hdrhistogram), the hub's CPU time and
//! read/write system calls per message. Beside them, measured in the same run: a raw
//! Unix-socket round trip between two threads, one plain `write` + `fdatasync`, and one
//! `strict` log commit; then an unloaded `strict` latency (one message in flight) and the
//! `strict` latency at half the peak rate. Each goal of the performance issue is printed as a
//! ratio beside the machine limit it is measured against.
//!
//! Every load runs `--repeat` times and each figure is the median of its runs.
//!
//! Hub CPU is the sum of the run time of the hub's threads (`/proc/<pid>/task/*/schedstat`,
//! nanoseconds); context switches are the sum of every thread's voluntary and involuntary
//! switches (`/proc/<pid>/task/*/status`); "rw calls" are `syscr + syscw` of
//! `/proc/<pid>/io`, which counts the `read`/`write` family (`read`, `write`, `readv`,
//! `writev`), on files and on sockets alike: not the sockets' `recv` and `send` (how a
//! session reads and writes a single frame), nor `epoll_wait`, `futex`, `msync` or
//! `fdatasync`. So it shows the log's own file writes, the runtime's `eventfd` wake-ups and
//! the `writev` of several frames at once, not all the traffic.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Mutex;

use crate::hub::limits::REQUESTS_IN_FLIGHT_MAX;
use crate::hub::spawn::SpawnOptions;
use crate::protocol::{MessageText, PeerName, SendParams};

/// Size of each message body, in bytes.
pub const BENCH_MESSAGE_BYTES: usize = 200;

/// Largest `--window`: a session's sends and the acks it owes for its own pushes share its
/// [`REQUESTS_IN_FLIGHT_MAX`] slots, so sends take at most half of them (a session whose slots
/// were all sends waiting for acks could not send the acks its peers' sends wait for).
pub const BENCH_WINDOW_MAX: usize = REQUESTS_IN_FLIGHT_MAX / 2;

/// Total rate of the unloaded measurement (two sessions, one send in flight each), per second.
pub const BENCH_UNLOADED_RATE: f64 = 200.0;

/// Raw round trips timed for the Unix-socket baseline.
const RAW_ROUND_TRIPS: u32 = 20_000;

/// Plain `fdatasync`s and `strict` log commits timed for the disk baselines.
const DISK_SYNCS: u64 = 500;

/// Plain `fdatasync`s timed after a quiet spell ([`IDLE_SYNC_GAP`] each, so 1 s in all).
const IDLE_DISK_SYNCS: u64 = 200;

/// The quiet spell before each of those: the gap between two sends of the unloaded load.
const IDLE_SYNC_GAP: Duration = Duration::from_millis(5);
const _: () = assert!(IDLE_SYNC_GAP.as_millis() as f64 * BENCH_UNLOADED_RATE == 1000.0);

/// Goal: strict throughput at least this fraction of os throughput (10 and 100 sessions).
const GOAL_STRICT_OVER_OS: f64 = 0.9;
/// Goal: strict throughput at 2 sessions at least this multiple of one sync per message.
const GOAL_TWO_SESSIONS_OVER_SYNC_RATE: f64 = 4.0;
/// Goal: unloaded strict p50 at most this multiple of (UDS round trip + one fdatasync).
const GOAL_UNLOADED_P50_OVER_LIMIT: f64 = 1.2;
/// Goal: strict p99 at half the peak rate, at most.
const GOAL_HALF_LOAD_P99: Duration = Duration::from_millis(2);
/// Goal: hub CPU per message (os, 100 sessions), at most.
const GOAL_CPU_PER_MESSAGE: Duration = Duration::from_micros(5);

/// A durability the hub is measured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchDurability {
    /// `relay hub --durability strict`.
    Strict,
    /// `relay hub --durability os`.
    Os,
}

impl BenchDurability {
    /// The name `relay hub --durability` takes.
    pub fn name(self) -> &'static str {
        match self {
            BenchDurability::Strict => "strict",
            BenchDurability::Os => "os",
        }
    }
}

/// Options of the hub benchmark.
#[derive(Clone, Debug)]
pub struct HubBenchConfig {
    /// Scratch data dir (removed afterwards).
    pub dir: PathBuf,
    /// Session counts to measure.
    pub sessions: Vec<usize>,
    /// Sends each session keeps in flight (1..=[`BENCH_WINDOW_MAX`]).
    pub window: usize,
    /// Durabilities to measure, each with its own hub.
    pub durabilities: Vec<BenchDurability>,
    /// Time each measurement runs.
    pub duration: Duration,
    /// Runs of each load; every figure is the median of them.
    pub repeat: usize,
}

/// One measured load (medians over the runs).
#[derive(Clone, Debug)]
pub struct LoadFigures {
    /// The hub's durability.
    pub durability: BenchDurability,
    /// Sessions sending.
    pub sessions: usize,
    /// Sends in flight per session.
    pub window: usize,
    /// Acknowledged sends per second.
    pub messages_per_second: f64,
    /// Send→push latency median.
    pub p50: Duration,
    /// Send→push latency 99th percentile.
    pub p99: Duration,
    /// Target rate when paced (`None`: closed loop, as fast as possible).
    pub paced_rate: Option<f64>,
    /// Hub CPU time (all threads) per acknowledged send, if `/proc` could be read.
    pub cpu_per_message: Option<Duration>,
    /// Hub `read`/`write`-family calls per acknowledged send (sockets' `recv`/`send` are not
    /// counted), if `/proc` could be read.
    pub syscalls_per_message: Option<f64>,
    /// Context switches of the hub's threads per acknowledged send, if `/proc` could be read.
    pub switches_per_message: Option<f64>,
    /// Runs the medians are taken over.
    pub runs: usize,
}

/// What `relay bench hub` measured.
#[derive(Clone, Debug)]
pub struct HubBenchReport {
    /// Raw Unix-socket round trip of 200 bytes between two threads, median.
    pub raw_round_trip_p50: Duration,
    /// One plain `write` + `fdatasync`, median and 99th percentile.
    pub fdatasync: (Duration, Duration),
    /// The same, each [`IDLE_SYNC_GAP`] after the one before.
    pub idle_fdatasync: (Duration, Duration),
    /// One `strict` log commit of one record, median and 99th percentile.
    pub commit: (Duration, Duration),
    /// Closed-loop loads, by durability then session count.
    pub loads: Vec<LoadFigures>,
    /// Strict, two sessions, one send in flight each, paced at [`BENCH_UNLOADED_RATE`].
    pub unloaded: Option<LoadFigures>,
    /// Strict, the largest session count at half its closed-loop rate.
    pub half_peak: Option<LoadFigures>,
}

/// Runs the benchmark.
///
/// # Errors
/// The hub or the sessions failed, or the window is out of range.
pub async fn run(config: &HubBenchConfig) -> anyhow::Result<HubBenchReport> {
    anyhow::ensure!(
        (1..=BENCH_WINDOW_MAX).contains(&config.window),
        "--window must be between 1 and {BENCH_WINDOW_MAX}"
    );
    let _ = std::fs::remove_dir_all(&config.dir);
    std::fs::create_dir_all(&config.dir)?;
    let raw_round_trip_p50 = raw_round_trip()?;
    let fdatasync = relay_log::bench::fdatasync_latency(&config.dir.join("fdatasync"), DISK_SYNCS)?;
    let commit = relay_log::bench::commit_latency(&config.dir.join("commit"), DISK_SYNCS)?;
    let idle_fdatasync = relay_log::bench::idle_fdatasync_latency(
        &config.dir.join("fdatasync-idle"),
        IDLE_DISK_SYNCS,
        IDLE_SYNC_GAP,
    )?;
    let mut loads = Vec::new();
    let mut unloaded = None;
    let mut half_peak = None;
    let repeat = config.repeat.max(1);
    for &durability in &config.durabilities {
        let data_dir = config.dir.join(format!("data-{}", durability.name()));
        let spawn = super::bench_spawn(&["--durability", durability.name()]);
        let measure = |sessions, window, paced_rate| Load {
            data_dir: &data_dir,
            spawn: &spawn,
            durability,
            sessions,
            window,
            duration: config.duration,
            paced_rate,
        };
        let mut peak = None;
        for &sessions in &config.sessions {
            let figures = measure(sessions, config.window, None)
                .median(repeat)
                .await?;
            peak = Some((sessions, figures.messages_per_second));
            loads.push(figures);
        }
        if durability == BenchDurability::Strict {
            unloaded = Some(
                measure(2, 1, Some(BENCH_UNLOADED_RATE))
                    .median(repeat)
                    .await?,
            );
            if let Some((sessions, rate)) = peak {
                let paced = measure(sessions, config.window, Some(rate / 2.0));
                half_peak = Some(paced.median(repeat).await?);
            }
        }
        stop_hub(&data_dir);
    }
    let _ = std::fs::remove_dir_all(&config.dir);
    Ok(HubBenchReport {
        raw_round_trip_p50,
        fdatasync,
        idle_fdatasync,
        commit,
        loads,
        unloaded,
        half_peak,
    })
}

/// How long [`stop_hub`] waits for the hub to exit.
pub const BENCH_HUB_EXIT_WAIT: Duration = Duration::from_secs(10);

/// Stops the benchmark's hub: SIGTERM to the pid its log lock names (it would otherwise
/// linger until its idle timeout, on a data dir about to be removed), then waits up to
/// [`BENCH_HUB_EXIT_WAIT`] for it to exit, so its shutdown snapshot does not recreate a data
/// dir the benchmark removes next.
pub(crate) fn stop_hub(data_dir: &Path) {
    let Some(raw) = super::hub_pid(data_dir) else {
        return;
    };
    let pid = i32::try_from(raw)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let proc_dir = PathBuf::from(format!("/proc/{raw}"));
    let deadline = Instant::now() + BENCH_HUB_EXIT_WAIT;
    // Bounded by the deadline.
    while proc_dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn raw_round_trip() -> std::io::Result<Duration> {
    use std::io::{Read, Write};
    let (mut left, mut right) = std::os::unix::net::UnixStream::pair()?;
    let echo = std::thread::spawn(move || {
        let mut buffer = [0u8; BENCH_MESSAGE_BYTES];
        while right.read_exact(&mut buffer).is_ok() {
            if right.write_all(&buffer).is_err() {
                break;
            }
        }
    });
    let mut histogram = Histogram::<u64>::new(3).map_err(std::io::Error::other)?;
    let mut buffer = [7u8; BENCH_MESSAGE_BYTES];
    for _ in 0..RAW_ROUND_TRIPS {
        let start = Instant::now();
        left.write_all(&buffer)?;
        left.read_exact(&mut buffer)?;
        let _ = histogram.record(start.elapsed().as_nanos() as u64);
    }
    drop(left);
    let _ = echo.join();
    Ok(Duration::from_nanos(histogram.value_at_quantile(0.5)))
}

/// What the hub process has used so far.
#[derive(Clone, Copy, Debug)]
struct HubCounters {
    /// Run time of all its threads, in nanoseconds.
    cpu_ns: u64,
    /// Read- and write-family system calls.
    syscalls: u64,
    /// Voluntary and involuntary context switches of all its threads.
    switches: u64,
}

impl HubCounters {
    /// The counters of `pid`, or `None` when `/proc` cannot be read.
    fn read(pid: u32) -> Option<HubCounters> {
        let mut cpu_ns = 0u64;
        let mut switches = 0u64;
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
            let Ok(task) = task else { continue };
            if let Ok(status) = std::fs::read_to_string(task.path().join("status")) {
                switches += status
                    .lines()
                    .filter_map(|line| {
                        line.strip_prefix("voluntary_ctxt_switches:")
                            .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                    })
                    .filter_map(|value| value.trim().parse::<u64>().ok())
                    .sum::<u64>();
            }
            // A thread may end between the listing and the read; it is then left out.
            let Ok(schedstat) = std::fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            cpu_ns += schedstat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
        let field = |name: &str| {
            io.lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|value| value.trim().parse::<u64>().ok())
        };
        Some(HubCounters {
            cpu_ns,
            syscalls: field("syscr:")? + field("syscw:")?,
            switches,
        })
    }
}

/// Loads started by this process, numbering each load's session names.
static LOADS_STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One load to measure.
struct Load<'a> {
    data_dir: &'a Path,
    spawn: &'a SpawnOptions,
    durability: BenchDurability,
    sessions: usize,
    window: usize,
    duration: Duration,
    paced_rate: Option<f64>,
}

/// The median of `values` (0 for none).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

impl Load<'_> {
    /// Runs the load `runs` times; every figure is the median of its runs.
    async fn median(&self, runs: usize) -> anyhow::Result<LoadFigures> {
        let mut all = Vec::with_capacity(runs);
        for run in 0..runs {
            all.push(self.once(run).await?);
        }
        let pick = |figure: &dyn Fn(&LoadFigures) -> f64| median(all.iter().map(figure).collect());
        let optional = |figure: &dyn Fn(&LoadFigures) -> Option<f64>| {
            let values: Option<Vec<f64>> = all.iter().map(figure).collect();
            values.map(median)
        };
        let seconds = Duration::from_secs_f64;
        Ok(LoadFigures {
            durability: self.durability,
            sessions: self.sessions,
            window: self.window,
            messages_per_second: pick(&|load| load.messages_per_second),
            p50: seconds(pick(&|load| load.p50.as_secs_f64())),
            p99: seconds(pick(&|load| load.p99.as_secs_f64())),
            paced_rate: self.paced_rate,
            cpu_per_message: optional(&|load| load.cpu_per_message.map(|cpu| cpu.as_secs_f64()))
                .map(seconds),
            syscalls_per_message: optional(&|load| load.syscalls_per_message),
            switches_per_message: optional(&|load| load.switches_per_message),
            runs,
        })
    }

    async fn once(&self, run: usize) -> anyhow::Result<LoadFigures> {
        let Load {
            data_dir,
            spawn,
            durability,
            sessions,
            window,
            duration,
            paced_rate,
        } = *self;
        // Each load of a run takes new names (`LOADS_STARTED`): the sessions of the load before
        // may still be online while the hub notices their disconnection, and two loads of the
        // same shape (the unloaded one and the half load at `--sessions 2 --window 1`) would
        // otherwise ask for the same names and get `name_taken`.
        let load = LOADS_STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!(
            "bench-{load}-{}-{sessions}-{window}-{}-{run}",
            durability.name(),
            if paced_rate.is_some() {
                "paced"
            } else {
                "free"
            }
        );
        let epoch = Instant::now();
        let histogram = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
        let mut clients = Vec::new();
        for index in 0..sessions {
            let mut client = super::join(data_dir, spawn, &format!("{tag}-{index}")).await?;
            let mut pushes = client
                .take_pushes()
                .ok_or_else(|| anyhow::anyhow!("pushes taken"))?;
            let histogram = histogram.clone();
            let client = Arc::new(client);
            let acknowledging = client.clone();
            tokio::spawn(async move {
                while let Some(notification) = pushes.recv().await {
                    let crate::protocol::HubNotification::Message(push) = notification else {
                        continue;
                    };
                    if let Some(sent) = push
                        .text
                        .split(' ')
                        .next()
                        .and_then(|stamp| stamp.parse::<u64>().ok())
                    {
                        let latency = (epoch.elapsed().as_nanos() as u64).saturating_sub(sent);
                        let _ = histogram.lock().await.record(latency.max(1));
                    }
                    // As a session's client does: its sender's answer waits for this. Each ack
                    // is its own task: responses come in request order, so an ack's answer can
                    // sit behind this session's own sends, and the next push must not wait.
                    let acknowledging = acknowledging.clone();
                    tokio::spawn(async move {
                        let _ = acknowledging
                            .acknowledge(&push, crate::protocol::AckStep::Read)
                            .await;
                    });
                }
            });
            clients.push(client);
        }
        let pid = super::hub_pid(data_dir);
        let before = pid.and_then(HubCounters::read);
        let started = Instant::now();
        // Each sender task keeps one send in flight, paced to its share of the rate.
        let interval = paced_rate
            .map(|rate| Duration::from_secs_f64((sessions * window) as f64 / rate.max(1.0)));
        // Paced senders start spread over one interval, so the load is a steady stream
        // rather than every sender firing at the same instant.
        let senders_total = (sessions * window).max(1) as u32;
        let mut senders = tokio::task::JoinSet::new();
        for (index, client) in clients.iter().enumerate() {
            let to = PeerName::new(format!("{tag}-{}", (index + 1) % sessions))?;
            for slot in 0..window {
                let client = client.clone();
                let to = to.clone();
                let phase = interval
                    .map(|interval| interval * (index * window + slot) as u32 / senders_total);
                senders.spawn(async move {
                    let mut sent = 0u64;
                    let mut next = Instant::now();
                    if let Some(phase) = phase {
                        next += phase;
                        tokio::time::sleep_until(next.into()).await;
                    }
                    while started.elapsed() < duration {
                        let stamp = epoch.elapsed().as_nanos() as u64;
                        let mut text = format!("{stamp} ");
                        text.extend(std::iter::repeat_n(
                            'x',
                            BENCH_MESSAGE_BYTES.saturating_sub(text.len()),
                        ));
                        let text = MessageText::new(text)?;
                        let params = SendParams {
                            idempotency_key: None,
                            to: to.clone(),
                            text,
                            reply_to: None,
                            urgent: false,
                        };
                        // A failed send fails the run: a sender that stopped quietly left
                        // the others to be measured as if they were the whole load.
                        client
                            .call(params)
                            .await
                            .map_err(|error| anyhow::anyhow!("a send to {to} failed: {error}"))?;
                        sent += 1;
                        if let Some(interval) = interval {
                            next += interval;
                            tokio::time::sleep_until(next.into()).await;
                        }
                    }
                    anyhow::Ok(sent)
                });
            }
        }
        let mut total = 0u64;
        while let Some(sent) = senders.join_next().await {
            total += sent??;
        }
        let elapsed = started.elapsed();
        let after = pid.and_then(HubCounters::read);
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(clients);
        let histogram = histogram.lock().await;
        let messages = total.max(1);
        let used = before.zip(after);
        Ok(LoadFigures {
            durability,
            sessions,
            window,
            messages_per_second: total as f64 / elapsed.as_secs_f64(),
            p50: Duration::from_nanos(histogram.value_at_quantile(0.5)),
            p99: Duration::from_nanos(histogram.value_at_quantile(0.99)),
            paced_rate,
            cpu_per_message: used.map(|(before, after)| {
                Duration::from_nanos(after.cpu_ns.saturating_sub(before.cpu_ns) / messages)
            }),
            syscalls_per_message: used.map(|(before, after)| {
                after.syscalls.saturating_sub(before.syscalls) as f64 / messages as f64
            }),
            switches_per_message: used.map(|(before, after)| {
                after.switches.saturating_sub(before.switches) as f64 / messages as f64
            }),
            runs: 1,
        })
    }
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

impl HubBenchReport {
    /// The closed-loop figures of `durability` at `sessions`.
    fn load(&self, durability: BenchDurability, sessions: usize) -> Option<&LoadFigures> {
        self.loads
            .iter()
            .find(|load| load.durability == durability && load.sessions == sessions)
    }

    /// `figure / limit` beside the goal, or why it is missing.
    fn goal_line(
        out: &mut fmt::Formatter<'_>,
        name: &str,
        measured: Option<(String, f64)>,
        goal: &str,
    ) -> fmt::Result {
        match measured {
            Some((figures, ratio)) => {
                writeln!(out, "  {name:<44} {ratio:>7.2}  ({figures}; goal {goal})")
            }
            None => writeln!(
                out,
                "  {name:<44}     n/a  (not measured in this run; goal {goal})"
            ),
        }
    }
}

impl fmt::Display for HubBenchReport {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rt = micros(self.raw_round_trip_p50);
        let (sync_p50, sync_p99) = (micros(self.fdatasync.0), micros(self.fdatasync.1));
        writeln!(out, "machine limits (this run):")?;
        writeln!(
            out,
            "  unix-socket round trip, two threads (200 B)  p50 {rt:>8.1} us"
        )?;
        writeln!(
            out,
            "  write + fdatasync (one record)               p50 {sync_p50:>8.1} us   p99 {sync_p99:>8.1} us   ({:.0} syncs/s)",
            1e6 / sync_p50.max(1e-3)
        )?;
        let (idle_p50, idle_p99) = (micros(self.idle_fdatasync.0), micros(self.idle_fdatasync.1));
        writeln!(
            out,
            "  {:<45}p50 {idle_p50:>8.1} us   p99 {idle_p99:>8.1} us",
            format!(
                "the same, {} ms after the one before",
                IDLE_SYNC_GAP.as_millis()
            )
        )?;
        writeln!(
            out,
            "  strict log commit (one record)               p50 {:>8.1} us   p99 {:>8.1} us",
            micros(self.commit.0),
            micros(self.commit.1)
        )?;
        let runs = self.loads.first().map_or(1, |load| load.runs);
        writeln!(
            out,
            "direct messages of {BENCH_MESSAGE_BYTES} B, send->push latency; medians of {runs} runs; cpu = hub threads' run time (schedstat), switches = their context switches, rw calls = syscr+syscw of /proc/<pid>/io (the read/write family incl. writev; socket recv/send are not counted), all per message:"
        )?;
        for load in self
            .loads
            .iter()
            .chain(&self.unloaded)
            .chain(&self.half_peak)
        {
            let pace = load.paced_rate.map_or_else(
                || "closed loop".to_owned(),
                |rate| format!("paced {rate:.0}/s"),
            );
            let cpu = load
                .cpu_per_message
                .map_or_else(|| "n/a".to_owned(), |cpu| format!("{:.1}", micros(cpu)));
            let per_message = |figure: Option<f64>| {
                figure.map_or_else(|| "n/a".to_owned(), |count| format!("{count:.2}"))
            };
            let syscalls = per_message(load.syscalls_per_message);
            let switches = per_message(load.switches_per_message);
            writeln!(
                out,
                "  {:<6} {:>4} sessions x{:<2} ({pace:<14}) {:>9.0} msg/s  p50 {:>8.1} us  p99 {:>8.1} us  cpu {cpu:>6} us  switches {switches:>5}  rw calls {syscalls:>5}",
                load.durability.name(),
                load.sessions,
                load.window,
                load.messages_per_second,
                micros(load.p50),
                micros(load.p99),
            )?;
        }
        writeln!(
            out,
            "goals (ratio of the figure to its limit, both from this run):"
        )?;
        for sessions in [10, 100] {
            let ratio = self
                .load(BenchDurability::Strict, sessions)
                .zip(self.load(BenchDurability::Os, sessions))
                .map(|(strict, os)| {
                    (
                        format!(
                            "strict {:.0} / os {:.0} msg/s",
                            strict.messages_per_second, os.messages_per_second
                        ),
                        strict.messages_per_second / os.messages_per_second.max(1e-9),
                    )
                });
            Self::goal_line(
                out,
                &format!("strict / os throughput, {sessions} sessions"),
                ratio,
                &format!(">= {GOAL_STRICT_OVER_OS:.2}"),
            )?;
        }
        let sync_rate = 1e6 / sync_p50.max(1e-3);
        // Two sessions keep 2 x window sends in flight, and each needs two commits one after
        // the other (the send, then the recipient's read-ack its answer waits for): even
        // with every sync covering every request waiting, the ratio cannot pass the window.
        let two = self.load(BenchDurability::Strict, 2).map(|strict| {
            (
                format!(
                    "{:.0} msg/s / {sync_rate:.0} fdatasyncs/s; at most {} with --window {}",
                    strict.messages_per_second, strict.window, strict.window
                ),
                strict.messages_per_second / sync_rate,
            )
        });
        Self::goal_line(
            out,
            "strict 2 sessions / one-sync-per-message rate",
            two,
            &format!(">= {GOAL_TWO_SESSIONS_OVER_SYNC_RATE:.1}"),
        )?;
        let limit = rt + sync_p50;
        let unloaded = self.unloaded.as_ref().map(|load| {
            (
                format!(
                    "p50 {:.1} us / (round trip + fdatasync = {limit:.1} us)",
                    micros(load.p50)
                ),
                micros(load.p50) / limit.max(1e-3),
            )
        });
        Self::goal_line(
            out,
            "unloaded strict p50 / (round trip + fdatasync)",
            unloaded,
            &format!("<= {GOAL_UNLOADED_P50_OVER_LIMIT:.1}"),
        )?;
        // Not a goal of its own: the same figure beside the sync an unloaded hub really gets.
        let idle_limit = rt + idle_p50;
        if let Some(load) = &self.unloaded {
            writeln!(
                out,
                "  (the same over round trip + fdatasync after {} ms idle: {:.2} = p50 {:.1} us / {idle_limit:.1} us; not a goal, the disk's cost after a quiet spell)",
                IDLE_SYNC_GAP.as_millis(),
                micros(load.p50) / idle_limit.max(1e-3),
                micros(load.p50)
            )?;
        }
        let half = self.half_peak.as_ref().map(|load| {
            (
                format!(
                    "p99 {:.1} us at {:.0} msg/s, {} sessions",
                    micros(load.p99),
                    load.messages_per_second,
                    load.sessions
                ),
                load.p99.as_secs_f64() / GOAL_HALF_LOAD_P99.as_secs_f64(),
            )
        });
        Self::goal_line(out, "strict p99 at half load / 2 ms", half, "<= 1.0")?;
        let cpu = self
            .load(BenchDurability::Os, 100)
            .and_then(|load| load.cpu_per_message)
            .map(|cpu| {
                (
                    format!("{:.2} us per message", micros(cpu)),
                    cpu.as_secs_f64() / GOAL_CPU_PER_MESSAGE.as_secs_f64(),
                )
            });
        Self::goal_line(
            out,
            "hub CPU per message, os, 100 sessions / 5 us",
            cpu,
            "<= 1.0",
        )
    }
}
