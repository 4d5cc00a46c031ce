//! `relay bench memory`: what an idle session and a queued message cost a real hub.
//!
//! A hub process (durability `os`, no WebSocket) is started on a scratch data dir. Its
//! anonymous resident memory (`RssAnon` in `/proc/<pid>/status`: heap and stacks, not the
//! mapped log) is read before and after N idle sessions connect and register, then before and
//! after M 200-byte messages are queued for identities that are offline. The figures are the
//! differences divided by N and M, printed beside the goals of the performance issue and the
//! figures measured before this benchmark existed.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::{MessageText, PeerName, SendParams};

/// Body of each queued message, in bytes.
pub const MEMORY_MESSAGE_BYTES: usize = 200;

/// Offline recipients the queued messages are spread over (each mailbox stays small).
pub const MEMORY_RECIPIENTS: usize = 100;

/// Sends in flight at once while queueing.
const PIPELINE: usize = 64;

/// How long the hub is left to settle before each reading.
const SETTLE: Duration = Duration::from_millis(500);

/// Idle memory per session measured before this benchmark's changes, in bytes.
const BEFORE_SESSION_BYTES: f64 = 23.5 * 1024.0;
/// Memory per queued 200-byte message measured before, in bytes.
const BEFORE_MESSAGE_BYTES: f64 = 560.0;
/// Goal per idle session, in bytes.
const GOAL_SESSION_BYTES: f64 = 8.0 * 1024.0;
/// Goal per queued message beyond its body, in bytes.
const GOAL_MESSAGE_OVERHEAD_BYTES: f64 = 128.0;

/// Options of the memory benchmark.
#[derive(Clone, Debug)]
pub struct MemoryBenchConfig {
    /// Scratch data dir (removed afterwards).
    pub dir: PathBuf,
    /// Idle sessions to connect.
    pub sessions: usize,
    /// Messages to queue.
    pub messages: usize,
}

/// What `relay bench memory` measured.
#[derive(Clone, Debug)]
pub struct MemoryReport {
    /// Sessions connected.
    pub sessions: usize,
    /// Anonymous memory per idle session, in bytes.
    pub session_bytes: f64,
    /// Messages queued.
    pub messages: usize,
    /// Anonymous memory per queued message, body included, in bytes.
    pub message_bytes: f64,
}

/// Runs the benchmark.
///
/// # Errors
/// The hub or a session failed, or `/proc` could not be read.
pub async fn run(config: &MemoryBenchConfig) -> anyhow::Result<MemoryReport> {
    let _ = std::fs::remove_dir_all(&config.dir);
    std::fs::create_dir_all(&config.dir)?;
    let data_dir = config.dir.join("data");
    let spawn = super::bench_spawn(&["--durability", "os"]);
    let sender = super::join(&data_dir, &spawn, "memory-sender").await?;
    let pid = super::hub_pid(&data_dir)
        .ok_or_else(|| anyhow::anyhow!("no hub pid in the log lock of {}", data_dir.display()))?;
    for index in 0..MEMORY_RECIPIENTS {
        // Registered once, then offline: their mail is queued.
        drop(super::join(&data_dir, &spawn, &format!("memory-offline-{index}")).await?);
    }
    tokio::time::sleep(SETTLE).await;
    let before_sessions = rss_anon_bytes(pid)?;
    let mut idle = Vec::with_capacity(config.sessions);
    for index in 0..config.sessions {
        idle.push(super::join(&data_dir, &spawn, &format!("memory-idle-{index}")).await?);
    }
    tokio::time::sleep(SETTLE).await;
    let after_sessions = rss_anon_bytes(pid)?;
    let body = "m".repeat(MEMORY_MESSAGE_BYTES);
    let mut sent = 0;
    while sent < config.messages {
        let batch = PIPELINE.min(config.messages - sent);
        let mut sends = Vec::with_capacity(batch);
        for offset in 0..batch {
            let params = SendParams {
                to: PeerName::new(format!(
                    "memory-offline-{}",
                    (sent + offset) % MEMORY_RECIPIENTS
                ))?,
                text: MessageText::new(body.clone())?,
                reply_to: None,
                urgent: false,
                idempotency_key: None,
            };
            sends.push(sender.call(params));
        }
        for result in futures_util::future::join_all(sends).await {
            result.map_err(|error| anyhow::anyhow!("send: {error}"))?;
        }
        sent += batch;
    }
    tokio::time::sleep(SETTLE).await;
    let after_messages = rss_anon_bytes(pid)?;
    drop(idle);
    drop(sender);
    super::hub::stop_hub(&data_dir);
    let _ = std::fs::remove_dir_all(&config.dir);
    Ok(MemoryReport {
        sessions: config.sessions,
        session_bytes: after_sessions.saturating_sub(before_sessions) as f64
            / config.sessions.max(1) as f64,
        messages: config.messages,
        message_bytes: after_messages.saturating_sub(after_sessions) as f64
            / config.messages.max(1) as f64,
    })
}

/// `RssAnon` of `pid`, in bytes.
fn rss_anon_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path)?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("RssAnon:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .ok_or_else(|| anyhow::anyhow!("no RssAnon in {path}"))
}

impl fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let overhead = self.message_bytes - MEMORY_MESSAGE_BYTES as f64;
        writeln!(
            f,
            "idle session ({} sessions):       {:>8.0} B  (before: {:.0} B, {:.2}x; goal {:.0} B, {:.2}x of it)",
            self.sessions,
            self.session_bytes,
            BEFORE_SESSION_BYTES,
            self.session_bytes / BEFORE_SESSION_BYTES,
            GOAL_SESSION_BYTES,
            self.session_bytes / GOAL_SESSION_BYTES
        )?;
        writeln!(
            f,
            "queued {MEMORY_MESSAGE_BYTES}-byte message ({} messages): {:>8.0} B  (before: {:.0} B, {:.2}x); beyond its body {:.0} B (goal {:.0} B, {:.2}x of it)",
            self.messages,
            self.message_bytes,
            BEFORE_MESSAGE_BYTES,
            self.message_bytes / BEFORE_MESSAGE_BYTES,
            overhead,
            GOAL_MESSAGE_OVERHEAD_BYTES,
            overhead / GOAL_MESSAGE_OVERHEAD_BYTES
        )
    }
}
