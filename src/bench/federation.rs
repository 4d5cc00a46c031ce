//! `relay bench federation`: two real hubs on loopback, linked over TCP.
//!
//! It measures, in one run:
//! - send → push latency (p50/p99), one message at a time, to a local peer and to a peer of
//!   the other hub (`name@hub`), so the cost of the link stands beside the local figure;
//! - catch-up after a partition: the receiving hub is stopped, the sender stores a backlog
//!   for it, the receiver starts again, and the time until it has imported the last record
//!   gives events shipped and applied per second.
//!
//! The backlog is spread over several recipients so no mailbox reaches its unread bound
//! ([`relay_replay::limits::MAILBOX_UNREAD_MAX`]). Nothing here asserts a time.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{bench_spawn, join};
use crate::client::HubClient;
use crate::federation::config::Key32;
use crate::protocol::notification::HubNotification;
use crate::protocol::{HubInfoParams, MessageText, PeerName, SendParams};

/// Messages per recipient in the backlog: half a mailbox's unread bound.
pub const BACKLOG_PER_RECIPIENT: u64 = relay_replay::limits::MAILBOX_UNREAD_MAX as u64 / 2;

/// Senders storing the backlog, one request in flight each.
const BACKLOG_WINDOW: usize = 64;

/// How long the bench waits for a link or a catch-up before it gives up.
const WAIT_MAX: Duration = Duration::from_secs(600);

/// Bytes of text per message, as in `relay bench hub`.
const MESSAGE_BYTES: usize = 200;

/// What to run.
#[derive(Clone, Debug)]
pub struct FederationBenchConfig {
    /// Scratch directory (both data dirs go under it; removed afterwards by the caller).
    pub dir: PathBuf,
    /// Measured round trips on each side.
    pub round_trips: u64,
    /// Messages stored for the stopped hub.
    pub backlog: u64,
    /// Also measure the same through a NATS JetStream server (`nats-server` on `PATH`, started
    /// on a loopback port with a temp store), beside the direct link.
    pub nats: bool,
    /// With `nats`: origin hubs of the drain measurement.
    pub drain_hubs: usize,
    /// With `nats`: messages in the drain measurement's backlog.
    pub drain_backlog: u64,
}

/// Everything one run measured.
#[derive(Clone, Debug)]
pub struct FederationBenchResults {
    /// Per route: direct, then NATS.
    pub routes: Vec<FederationReport>,
    /// The drain of a backlog from many hubs through NATS.
    pub drain: Option<DrainReport>,
}

impl fmt::Display for FederationBenchResults {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        for route in &self.routes {
            write!(out, "{route}")?;
        }
        if let Some(drain) = &self.drain {
            write!(out, "{drain}")?;
        }
        Ok(())
    }
}

/// How the two hubs are linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A direct TCP link (b dials a).
    Direct,
    /// Only a NATS JetStream server on `port`.
    Nats {
        /// Its loopback port.
        port: u16,
    },
}

/// What it measured, per route.
#[derive(Clone, Debug)]
pub struct FederationReport {
    /// `direct` or `nats`.
    pub route: &'static str,
    /// Round trips per side.
    pub round_trips: u64,
    /// Local send → push, p50 and p99.
    pub local: (Duration, Duration),
    /// Cross-hub send → push, p50 and p99.
    pub cross: (Duration, Duration),
    /// Messages in the backlog.
    pub backlog: u64,
    /// How long storing the backlog took on the sending hub.
    pub backlog_stored: Duration,
    /// From the receiver's restart to its last import.
    pub catch_up: Duration,
}

impl fmt::Display for FederationReport {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = |duration: Duration| duration.as_secs_f64() * 1e6;
        writeln!(
            out,
            "[{}] send -> push, {} round trips each, 200-byte messages:",
            self.route, self.round_trips
        )?;
        writeln!(
            out,
            "  local (alice -> carol on hub a):   p50 {:8.0} us  p99 {:8.0} us",
            micros(self.local.0),
            micros(self.local.1)
        )?;
        writeln!(
            out,
            "  across (alice -> bob@b):           p50 {:8.0} us  p99 {:8.0} us  ({:.1}x / {:.1}x local)",
            micros(self.cross.0),
            micros(self.cross.1),
            micros(self.cross.0) / micros(self.local.0).max(1.0),
            micros(self.cross.1) / micros(self.local.1).max(1.0)
        )?;
        let rate = |count: u64, took: Duration| count as f64 / took.as_secs_f64().max(1e-9);
        writeln!(
            out,
            "catch-up after a partition: {} messages stored on hub a in {:.2} s ({:.0}/s)",
            self.backlog,
            self.backlog_stored.as_secs_f64(),
            rate(self.backlog, self.backlog_stored)
        )?;
        writeln!(
            out,
            "  hub b imported them {:.2} s after it started: {:.0} events/s shipped and applied ({:.2}x the sending hub's store rate)",
            self.catch_up.as_secs_f64(),
            rate(self.backlog, self.catch_up),
            rate(self.backlog, self.catch_up) / rate(self.backlog, self.backlog_stored)
        )
    }
}

/// Runs the benchmark over a direct link, then (with `nats`) through a NATS server. Every
/// hub and server it started is stopped at the end.
///
/// # Errors
/// A hub or nats-server cannot start or link, or a request fails.
pub async fn run(config: &FederationBenchConfig) -> anyhow::Result<FederationBenchResults> {
    let mut reports = vec![run_route(config, &config.dir.join("direct"), Route::Direct).await?];
    let mut drained = None;
    if config.nats {
        let store = config.dir.join("nats-store");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut server = std::process::Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&store)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|error| {
                anyhow::anyhow!("starting nats-server (apt-get install nats-server): {error}")
            })?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                let _ = server.kill();
                anyhow::bail!("nats-server did not listen on 127.0.0.1:{port}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let measured = run_route(config, &config.dir.join("nats"), Route::Nats { port }).await;
        let drain_measured = match &measured {
            Ok(_) => Some(
                drain(
                    &config.dir.join("drain"),
                    port,
                    config.drain_hubs,
                    config.drain_backlog,
                )
                .await,
            ),
            Err(_) => None,
        };
        let _ = server.kill();
        let _ = server.wait();
        reports.push(measured?);
        drained = drain_measured.transpose()?;
    }
    Ok(FederationBenchResults {
        routes: reports,
        drain: drained,
    })
}

async fn run_route(
    config: &FederationBenchConfig,
    dir: &Path,
    route: Route,
) -> anyhow::Result<FederationReport> {
    let (a_dir, b_dir) = (dir.join("a"), dir.join("b"));
    write_configs(&a_dir, &b_dir, route)?;
    let spawn = bench_spawn(&[]);
    let recipients = config.backlog.div_ceil(BACKLOG_PER_RECIPIENT).max(1);
    // Every recipient exists on b before the partition (a message for an unknown peer is
    // refused on arrival).
    for n in 0..recipients {
        drop(join(&b_dir, &spawn, &format!("bob-{n}")).await?);
    }
    let mut bob = join(&b_dir, &spawn, "bob").await?;
    let alice = join(&a_dir, &spawn, "alice").await?;
    let mut carol = join(&a_dir, &spawn, "carol").await?;
    wait_for_link(&b_dir, "a").await?;

    let local = round_trips(&alice, &mut carol, "carol", config.round_trips).await?;
    let cross = round_trips(&alice, &mut bob, "bob@b", config.round_trips).await?;
    drop(bob);

    // The partition: b stops; a stores the backlog for b's peers.
    super::hub::stop_hub(&b_dir);
    wait_until_stopped(&b_dir).await?;
    let started = Instant::now();
    let last_offset = store_backlog(&a_dir, config.backlog, recipients).await?;
    let backlog_stored = started.elapsed();

    let restarted = Instant::now();
    let watcher = join(&b_dir, &spawn, "watcher").await?;
    let deadline = restarted + WAIT_MAX;
    loop {
        let info = watcher.call(HubInfoParams {}).await?;
        let imported = info
            .links
            .iter()
            .find(|link| link.hub_id == "a")
            .and_then(|link| link.imported);
        if imported.is_some_and(|imported| imported >= last_offset) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "hub b did not catch up within {WAIT_MAX:?} (imported up to {imported:?} of {last_offset})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let catch_up = restarted.elapsed();
    drop(watcher);
    drop(alice);
    drop(carol);
    super::hub::stop_hub(&a_dir);
    super::hub::stop_hub(&b_dir);
    Ok(FederationReport {
        route: match route {
            Route::Direct => "direct",
            Route::Nats { .. } => "nats",
        },
        round_trips: config.round_trips,
        local,
        cross,
        backlog: config.backlog,
        backlog_stored,
        catch_up,
    })
}

/// Writes `federation.toml` for hubs `a` and `b` with one fresh secret: `a` listening on a
/// free loopback port and `b` dialing it, or both on the NATS server only.
fn write_configs(a_dir: &Path, b_dir: &Path, route: Route) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let secret = Key32::random()?.to_hex();
    let (a_text, b_text) = match route {
        Route::Direct => (
            format!(
                "hub_id = \"a\"\nsecret = \"{secret}\"\nlisten = \"127.0.0.1:{port}\"\n[[peer]]\nhub_id = \"b\"\n"
            ),
            format!(
                "hub_id = \"b\"\nsecret = \"{secret}\"\n[[peer]]\nhub_id = \"a\"\naddress = \"127.0.0.1:{port}\"\n"
            ),
        ),
        Route::Nats { port } => {
            let nats = format!("[nats]\nurl = \"nats://127.0.0.1:{port}\"\n");
            (
                format!("hub_id = \"a\"\nsecret = \"{secret}\"\n[[peer]]\nhub_id = \"b\"\n{nats}"),
                format!("hub_id = \"b\"\nsecret = \"{secret}\"\n[[peer]]\nhub_id = \"a\"\n{nats}"),
            )
        }
    };
    for (dir, text) in [(a_dir, a_text), (b_dir, b_text)] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join(crate::federation::config::FEDERATION_FILE_NAME))?;
        std::io::Write::write_all(&mut file, text.as_bytes())?;
    }
    Ok(())
}

async fn wait_for_link(data_dir: &Path, peer: &str) -> anyhow::Result<()> {
    let client = HubClient::connect_running(data_dir, "relay-bench/1").await?;
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        let info = client.call(HubInfoParams {}).await?;
        if info
            .links
            .iter()
            .any(|link| link.hub_id == peer && link.state == "up")
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the link to {peer} did not come up within {WAIT_MAX:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_until_stopped(data_dir: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT_MAX;
    while super::hub_pid(data_dir).is_some_and(|pid| {
        i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .is_some_and(|pid| rustix::process::test_kill_process(pid).is_ok())
    }) {
        anyhow::ensure!(Instant::now() < deadline, "the hub did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn message_text() -> anyhow::Result<MessageText> {
    Ok(MessageText::new("x".repeat(MESSAGE_BYTES))?)
}

/// Send → push one at a time from `sender` to `to` (whose session is `receiver`): p50, p99.
async fn round_trips(
    sender: &HubClient,
    receiver: &mut HubClient,
    to: &str,
    count: u64,
) -> anyhow::Result<(Duration, Duration)> {
    let mut pushes = receiver
        .take_pushes()
        .ok_or_else(|| anyhow::anyhow!("the pushes were taken already"))?;
    let mut histogram = Histogram::<u64>::new(3)?;
    let to = PeerName::new(to.to_owned())?;
    let text = message_text()?;
    // A few unmeasured ones first: the link and the caches warm up.
    for round in 0..count + 20 {
        let started = Instant::now();
        let send = sender.call(SendParams {
            to: to.clone(),
            text: text.clone(),
            reply_to: None,
            urgent: false,
            idempotency_key: None,
        });
        // A local send answers once the push is acknowledged: wait for both at once.
        let receive = async {
            let push = loop {
                match tokio::time::timeout(WAIT_MAX, pushes.recv()).await {
                    Ok(Some(HubNotification::Message(push))) => break push,
                    Ok(Some(HubNotification::Receipt(_))) => continue,
                    Ok(None) | Err(_) => anyhow::bail!("no push for {to} within {WAIT_MAX:?}"),
                }
            };
            let took = started.elapsed();
            // Read, so the recipient's mailbox never fills.
            receiver
                .acknowledge(&push, crate::protocol::AckStep::Read)
                .await?;
            anyhow::Ok(took)
        };
        let (sent, took) = tokio::join!(send, receive);
        sent?;
        if round >= 20 {
            let _ = histogram.record(took?.as_nanos() as u64);
        }
    }
    let quantile = |q: f64| Duration::from_nanos(histogram.value_at_quantile(q));
    Ok((quantile(0.5), quantile(0.99)))
}

/// Stores `count` messages for `bob-0@b` … `bob-{recipients-1}@b` from [`BACKLOG_WINDOW`]
/// senders on hub a, one request in flight each; returns the log offset of the last one (from
/// its id, `m-<offset>`).
async fn store_backlog(a_dir: &Path, count: u64, recipients: u64) -> anyhow::Result<u64> {
    let text = message_text()?;
    let spawn = bench_spawn(&[]);
    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..BACKLOG_WINDOW as u64 {
        let client = join(a_dir, &spawn, &format!("sender-{sender}")).await?;
        let text = text.clone();
        senders.spawn(async move {
            let mut last = 0u64;
            let mut n = sender;
            while n < count {
                let to = PeerName::new(format!("bob-{}@b", n % recipients))?;
                let result = client
                    .call(SendParams {
                        to,
                        text: text.clone(),
                        reply_to: None,
                        urgent: false,
                        idempotency_key: None,
                    })
                    .await?;
                let offset = result
                    .msg_id
                    .strip_prefix("m-")
                    .and_then(|offset| offset.parse::<u64>().ok())
                    .ok_or_else(|| anyhow::anyhow!("an unexpected message id {}", result.msg_id))?;
                last = last.max(offset);
                n += BACKLOG_WINDOW as u64;
            }
            anyhow::Ok(last)
        });
    }
    let mut last = 0;
    while let Some(done) = senders.join_next().await {
        last = last.max(done??);
    }
    Ok(last)
}

/// Hubs publishing the backlog in the drain measurement ([`drain`]).
pub const DRAIN_HUBS_DEFAULT: usize = 100;

/// What [`drain`] measured.
#[derive(Clone, Debug)]
pub struct DrainReport {
    /// Origin hubs.
    pub hubs: usize,
    /// Records in the backlog, all of them.
    pub backlog: u64,
    /// How long publishing it to the stopped hub's inbox took.
    pub published: Duration,
    /// From the receiving hub's start to its last import.
    pub drained: Duration,
}

impl fmt::Display for DrainReport {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = |took: Duration| self.backlog as f64 / took.as_secs_f64().max(1e-9);
        writeln!(
            out,
            "[nats] drain: {} messages from {} hubs published to a stopped hub's inbox in {:.2} s ({:.0}/s)",
            self.backlog,
            self.hubs,
            self.published.as_secs_f64(),
            rate(self.published)
        )?;
        writeln!(
            out,
            "  the hub started and imported all of them in {:.2} s ({:.0} events/s)",
            self.drained.as_secs_f64(),
            rate(self.drained)
        )
    }
}

/// A backlog of `backlog` messages from `hubs` origin hubs (JetStream publishers standing for
/// hubs, each shipping records of its own log) waits in the inbox of a stopped hub `b`; the hub
/// starts and the time until it imported the last record of every origin is measured.
///
/// # Errors
/// The hub or the NATS server cannot be used.
pub async fn drain(
    dir: &Path,
    port: u16,
    hubs: usize,
    backlog: u64,
) -> anyhow::Result<DrainReport> {
    use crate::federation::config::HubId;
    use crate::federation::jetstream::{JetStreamTransport, NatsAuth, NatsConfig};
    use crate::federation::wire::{NO_PREVIOUS, ShippedRecord, record_crc};
    use relay_replay::event::MessageSent;

    let hubs = hubs.max(1);
    let per_hub = backlog.div_ceil(hubs as u64);
    let recipients = backlog.div_ceil(BACKLOG_PER_RECIPIENT).max(1);
    let origins: Vec<HubId> = (0..hubs)
        .map(|n| HubId::new(&format!("o{n}")))
        .collect::<Result<_, _>>()
        .map_err(|error| anyhow::anyhow!(error))?;
    let b = HubId::new("b").map_err(|error| anyhow::anyhow!(error))?;
    let b_dir = dir.join("b");
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&b_dir)?;
        let mut text = format!(
            "hub_id = \"b\"\nsecret = \"{}\"\n",
            Key32::random()?.to_hex()
        );
        for origin in &origins {
            text.push_str(&format!("[[peer]]\nhub_id = \"{origin}\"\n"));
        }
        text.push_str(&format!("[nats]\nurl = \"nats://127.0.0.1:{port}\"\n"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(b_dir.join(crate::federation::config::FEDERATION_FILE_NAME))?;
        std::io::Write::write_all(&mut file, text.as_bytes())?;
    }
    let spawn = bench_spawn(&[]);
    // The recipients exist, and b's inbox stream and consumer, before b stops.
    for n in 0..recipients {
        drop(join(&b_dir, &spawn, &format!("bob-{n}")).await?);
    }
    wait_for_link(&b_dir, "o0").await?;
    super::hub::stop_hub(&b_dir);
    wait_until_stopped(&b_dir).await?;

    let nats = NatsConfig {
        url: format!("nats://127.0.0.1:{port}"),
        auth: NatsAuth::None,
    };
    let started = Instant::now();
    let mut publishers = tokio::task::JoinSet::new();
    for (index, origin) in origins.iter().enumerate() {
        let (nats, origin, b) = (nats.clone(), origin.clone(), b.clone());
        publishers.spawn(async move {
            let transport =
                JetStreamTransport::connect(&nats, &origin, std::slice::from_ref(&b)).await?;
            let log_id = 0x5000 + index as u128;
            let mut records = Vec::new();
            let mut previous = NO_PREVIOUS;
            for offset in 0..per_hub {
                let event = relay_replay::Event::from(MessageSent {
                    id: format!("m-{offset}"),
                    from: "sender".to_owned(),
                    to: format!("bob-{}@b", (offset + index as u64) % recipients),
                    body: "x".repeat(MESSAGE_BYTES),
                    reply_to: None,
                    urgent: false,
                    thread: None,
                });
                let encoded = relay_replay::encode(&event);
                let timestamp_us = 1;
                records.push(ShippedRecord {
                    offset,
                    previous,
                    timestamp_us,
                    kind: encoded.kind,
                    schema_version: encoded.schema_version,
                    origin_hub: log_id,
                    crc: record_crc(
                        offset,
                        timestamp_us,
                        encoded.kind,
                        encoded.schema_version,
                        log_id,
                        &encoded.payload,
                    ),
                    payload: encoded.payload.to_vec(),
                });
                previous = offset;
            }
            for chunk in records.chunks(256) {
                transport.publish_batch(&b, log_id, chunk).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = publishers.join_next().await {
        done??;
    }
    let published = started.elapsed();

    let restarted = Instant::now();
    let watcher = join(&b_dir, &spawn, "watcher").await?;
    let last = per_hub - 1;
    let deadline = restarted + WAIT_MAX;
    loop {
        let info = watcher.call(HubInfoParams {}).await?;
        let done = info
            .links
            .iter()
            .filter(|link| link.imported.is_some_and(|imported| imported >= last))
            .count();
        if done >= hubs {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "hub b drained {done} of {hubs} origins within {WAIT_MAX:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = restarted.elapsed();
    drop(watcher);
    super::hub::stop_hub(&b_dir);
    Ok(DrainReport {
        hubs,
        backlog: per_hub * hubs as u64,
        published,
        drained,
    })
}
