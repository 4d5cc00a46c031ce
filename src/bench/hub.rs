//! `relay bench hub`: a real hub process with `strict` durability and N sessions on its Unix
//! socket sending 200-byte direct messages to each other; throughput and send→push latency
//! (hdrhistogram), beside a raw Unix-socket ping-pong and one log commit measured in the
//! same run, then the latency at half the peak rate.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Mutex;

use crate::hub::spawn::SpawnOptions;
use crate::protocol::{MessageText, PeerName, SendParams};

/// Size of each message body, in bytes.
pub const BENCH_MESSAGE_BYTES: usize = 200;

/// Options of the hub benchmark.
#[derive(Clone, Debug)]
pub struct HubBenchConfig {
    /// Scratch data dir (removed afterwards).
    pub dir: PathBuf,
    /// Session counts to measure.
    pub sessions: Vec<usize>,
    /// Time each measurement runs.
    pub duration: Duration,
}

/// One measured load.
#[derive(Clone, Debug)]
pub struct LoadFigures {
    /// Sessions sending.
    pub sessions: usize,
    /// Acknowledged sends per second.
    pub messages_per_second: f64,
    /// Send→push latency median.
    pub p50: Duration,
    /// Send→push latency 99th percentile.
    pub p99: Duration,
    /// Target rate when paced (`None`: closed loop, as fast as possible).
    pub paced_rate: Option<f64>,
}

/// What `relay bench hub` measured.
#[derive(Clone, Debug)]
pub struct HubBenchReport {
    /// Raw Unix-socket round trip of 200 bytes, median.
    pub raw_round_trip_p50: Duration,
    /// One `strict` commit of one record, median.
    pub commit_p50: Duration,
    /// Closed-loop loads.
    pub loads: Vec<LoadFigures>,
    /// The largest session count at half its peak rate.
    pub half_peak: Option<LoadFigures>,
}

/// Runs the benchmark.
///
/// # Errors
/// The hub or the sessions failed.
pub async fn run(config: &HubBenchConfig) -> anyhow::Result<HubBenchReport> {
    let _ = std::fs::remove_dir_all(&config.dir);
    std::fs::create_dir_all(&config.dir)?;
    let raw_round_trip_p50 = raw_round_trip()?;
    let (commit_p50, _) = relay_log::bench::commit_latency(&config.dir.join("commit"), 500)?;
    let data_dir = config.dir.join("data");
    let spawn = super::bench_spawn(&[]);
    let mut loads = Vec::new();
    for &sessions in &config.sessions {
        loads.push(load(&data_dir, &spawn, sessions, config.duration, None).await?);
    }
    let half_peak = match loads.last() {
        Some(peak) => Some(
            load(
                &data_dir,
                &spawn,
                peak.sessions,
                config.duration,
                Some(peak.messages_per_second / 2.0),
            )
            .await?,
        ),
        None => None,
    };
    stop_hub(&data_dir);
    let _ = std::fs::remove_dir_all(&config.dir);
    Ok(HubBenchReport {
        raw_round_trip_p50,
        commit_p50,
        loads,
        half_peak,
    })
}

/// Stops the benchmark's hub: SIGTERM to the pid its log lock names (it would otherwise
/// linger until its idle timeout, on a data dir about to be removed).
pub(crate) fn stop_hub(data_dir: &Path) {
    let pid = super::hub_pid(data_dir)
        .and_then(|pid| i32::try_from(pid).ok())
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
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
    for _ in 0..20_000 {
        let start = Instant::now();
        left.write_all(&buffer)?;
        left.read_exact(&mut buffer)?;
        let _ = histogram.record(start.elapsed().as_nanos() as u64);
    }
    drop(left);
    let _ = echo.join();
    Ok(Duration::from_nanos(histogram.value_at_quantile(0.5)))
}

async fn load(
    data_dir: &Path,
    spawn: &SpawnOptions,
    sessions: usize,
    duration: Duration,
    paced_rate: Option<f64>,
) -> anyhow::Result<LoadFigures> {
    let epoch = Instant::now();
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let mut clients = Vec::new();
    for index in 0..sessions {
        let name = format!("bench-{sessions}-{}-{index}", paced_rate.is_some());
        let mut client = super::join(data_dir, spawn, &name).await?;
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
                // As a session's client does: its sender's answer waits for this.
                let _ = acknowledging
                    .acknowledge(&push, crate::protocol::AckStep::Read)
                    .await;
                if let Some(sent) = push
                    .text
                    .split(' ')
                    .next()
                    .and_then(|stamp| stamp.parse::<u64>().ok())
                {
                    let latency = (epoch.elapsed().as_nanos() as u64).saturating_sub(sent);
                    let _ = histogram.lock().await.record(latency.max(1));
                }
            }
        });
        clients.push(client);
    }
    let started = Instant::now();
    let interval = paced_rate.map(|rate| Duration::from_secs_f64(sessions as f64 / rate.max(1.0)));
    let mut senders = tokio::task::JoinSet::new();
    for (index, client) in clients.iter().enumerate() {
        let client = client.clone();
        let to = PeerName::new(format!(
            "bench-{sessions}-{}-{}",
            paced_rate.is_some(),
            (index + 1) % sessions
        ))?;
        senders.spawn(async move {
            let mut sent = 0u64;
            let mut next = Instant::now();
            while started.elapsed() < duration {
                let stamp = epoch.elapsed().as_nanos() as u64;
                let mut text = format!("{stamp} ");
                text.extend(std::iter::repeat_n(
                    'x',
                    BENCH_MESSAGE_BYTES.saturating_sub(text.len()),
                ));
                let Ok(text) = MessageText::new(text) else {
                    break;
                };
                if client
                    .call(SendParams {
                        idempotency_key: None,
                        to: to.clone(),
                        text,
                        reply_to: None,
                        urgent: false,
                    })
                    .await
                    .is_err()
                {
                    break;
                }
                sent += 1;
                if let Some(interval) = interval {
                    next += interval;
                    tokio::time::sleep_until(next.into()).await;
                }
            }
            sent
        });
    }
    let mut total = 0u64;
    while let Some(sent) = senders.join_next().await {
        total += sent.unwrap_or(0);
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(clients);
    let histogram = histogram.lock().await;
    Ok(LoadFigures {
        sessions,
        messages_per_second: total as f64 / elapsed.as_secs_f64(),
        p50: Duration::from_nanos(histogram.value_at_quantile(0.5)),
        p99: Duration::from_nanos(histogram.value_at_quantile(0.99)),
        paced_rate,
    })
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

impl fmt::Display for HubBenchReport {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            out,
            "raw unix-socket round trip (200 B): p50 {:.1} us",
            micros(self.raw_round_trip_p50)
        )?;
        writeln!(
            out,
            "one strict log commit:              p50 {:.1} us",
            micros(self.commit_p50)
        )?;
        let bound = 3.0 * micros(self.raw_round_trip_p50) + micros(self.commit_p50);
        writeln!(
            out,
            "direct messages, strict durability, send->push latency:"
        )?;
        for load in self.loads.iter().chain(&self.half_peak) {
            let pace = load.paced_rate.map_or_else(
                || "closed loop".to_owned(),
                |rate| format!("paced at {rate:.0}/s"),
            );
            writeln!(
                out,
                "  {:>4} sessions ({pace:<18}) {:>10.0} msg/s   p50 {:>8.1} us   p99 {:>8.1} us",
                load.sessions,
                load.messages_per_second,
                micros(load.p50),
                micros(load.p99)
            )?;
        }
        writeln!(
            out,
            "targets: >= 100000 msg/s with 100 sessions; p50 < 3 x round trip + commit = {bound:.1} us; p99 < 2000 us at half the peak rate"
        )
    }
}
