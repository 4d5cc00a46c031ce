//! The link manager over real loopback TCP and real Noise, with an in-memory `LinkHost` per
//! hub: records cross both ways exactly once and in order (records not for the peer never),
//! later commits follow, a cut link and a restarted manager resume from the progress, a log id
//! or CRC mismatch is refused on both sides, the window bounds what is in flight, a lying peer
//! (an ack past what was shipped, a gap, garbage) is refused, heartbeats keep an idle link up,
//! and a second link from a peer replaces the first.

#[path = "support/federation_host.rs"]
mod federation_host;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use federation_host::FakeHost;
use relay::federation::config::{self, FederationConfig};
use relay::federation::link::{
    self, LINK_WINDOW_RECORDS, LinkProgress, LinkSetup, LinkStatus, LinkTiming,
};
use relay::federation::noise::{self, LinkAuth, PinStore, StaticKey};
use relay::federation::wire::{self, LinkFrame, NO_PREVIOUS, ShippedRecord};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const SECRET: &str = "8f3a1c5e7b9d2f4a6c8e0b1d3f5a7c9e1b3d5f7a9c0e2b4d6f8a0c2e4b6d8f0a";

/// How long a test waits for something that should happen.
const PATIENCE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Hubs, managers and a proxy.

fn fast_timing() -> LinkTiming {
    LinkTiming {
        heartbeat: Duration::from_millis(200),
        idle: Duration::from_secs(5),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        refused_backoff: Duration::from_secs(10),
        backoff_reset_after: Duration::from_secs(60),
    }
}

fn hub_config(
    dir: &Path,
    me: &str,
    peer: &str,
    listen: bool,
    dial: Option<SocketAddr>,
) -> FederationConfig {
    let mut text = format!("hub_id = \"{me}\"\nsecret = \"{SECRET}\"\n");
    if listen {
        text.push_str("listen = \"127.0.0.1:0\"\n");
    }
    text.push_str(&format!("[[peer]]\nhub_id = \"{peer}\"\n"));
    if let Some(address) = dial {
        text.push_str(&format!("address = \"{address}\"\n"));
    }
    config::parse(&text, &dir.join(format!("{me}.toml")), dir).expect("a valid config")
}

fn setup(
    dir: &Path,
    me: &str,
    peer: &str,
    listen: bool,
    dial: Option<SocketAddr>,
    timing: LinkTiming,
) -> LinkSetup {
    let federation_dir = dir.join(me);
    LinkSetup {
        config: Arc::new(hub_config(dir, me, peer, listen, dial)),
        key: Arc::new(StaticKey::load_or_create(&federation_dir).expect("a static key")),
        pins: Arc::new(PinStore::new(&federation_dir)),
        timing,
    }
}

struct Running {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    address: Option<SocketAddr>,
}

async fn start(setup: LinkSetup, host: FakeHost) -> Running {
    let bound = link::bind(setup).await.expect("bound");
    let address = bound.local_addr();
    let (shutdown, stopping) = watch::channel(false);
    let task = tokio::spawn(bound.run(host, stopping));
    Running {
        shutdown,
        task,
        address,
    }
}

impl Running {
    fn address(&self) -> SocketAddr {
        self.address.expect("listening")
    }

    async fn stop(self) {
        self.shutdown.send_replace(true);
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the manager stops promptly")
            .expect("no panic");
    }
}

/// Waits until `done` holds, failing with `what` after [`PATIENCE`].
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A TCP forwarder the test can cut (closing every connection and refusing new ones) and heal.
struct Proxy {
    address: SocketAddr,
    blocked: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

async fn proxy(to: SocketAddr) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let blocked = Arc::new(AtomicBool::new(false));
    let cut = watch::channel(0u64).0;
    let (flag, cuts) = (blocked.clone(), cut.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            if flag.load(Ordering::SeqCst) {
                continue;
            }
            let mut cut = cuts.subscribe();
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(to).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = cut.changed() => {}
                }
            });
        }
    });
    Proxy {
        address,
        blocked,
        cut,
    }
}

impl Proxy {
    fn cut(&self) {
        self.blocked.store(true, Ordering::SeqCst);
        self.cut.send_modify(|cuts| *cuts += 1);
    }

    fn heal(&self) {
        self.blocked.store(false, Ordering::SeqCst);
    }
}

/// A hand-driven peer: speaks Noise and raw frames to a manager.
struct Rogue {
    config: FederationConfig,
    key: StaticKey,
    pins: PinStore,
}

impl Rogue {
    fn new(dir: &Path, me: &str, peer: &str) -> Rogue {
        let federation_dir = dir.join(me);
        Rogue {
            config: hub_config(dir, me, peer, false, None),
            key: StaticKey::load_or_create(&federation_dir).expect("a static key"),
            pins: PinStore::new(&federation_dir),
        }
    }

    async fn dial(&self, to: SocketAddr) -> noise::Link<TcpStream> {
        let stream = TcpStream::connect(to).await.expect("connect");
        let auth = LinkAuth {
            me: &self.config.hub_id,
            key: &self.key,
            secret: &self.config.secret,
            pins: &self.pins,
        };
        let peer = self.config.peers.first().expect("one peer");
        noise::dial(stream, auth, peer).await.expect("linked")
    }
}

async fn send(link: &mut noise::Link<TcpStream>, frame: &LinkFrame) {
    link.writer
        .send(&wire::encode(frame))
        .await
        .expect("frame sent");
}

/// The next frame other than a heartbeat or presence.
async fn next_frame(link: &mut noise::Link<TcpStream>) -> LinkFrame {
    loop {
        let bytes = link.reader.recv().await.expect("a frame");
        match wire::decode(&bytes).expect("a valid frame") {
            LinkFrame::Heartbeat | LinkFrame::Presence { .. } => continue,
            frame => return frame,
        }
    }
}

/// Reads frames until a refusal; its reason.
async fn refusal(link: &mut noise::Link<TcpStream>) -> String {
    loop {
        if let LinkFrame::Refuse { reason } = next_frame(link).await {
            return reason;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[tokio::test]
async fn records_cross_both_ways_exactly_once_and_later_commits_follow() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let a = FakeHost::new("a", 0xa, 3000, 3, 1200);
    let b = FakeHost::new("b", 0xb, 2500, 0, 2500);
    let hub_b = start(
        setup(dir.path(), "b", "a", true, None, fast_timing()),
        b.clone(),
    )
    .await;
    let hub_a = start(
        setup(
            dir.path(),
            "a",
            "b",
            false,
            Some(hub_b.address()),
            fast_timing(),
        ),
        a.clone(),
    )
    .await;

    eventually("b has a's committed records", || {
        b.imported() == a.expected_below(1200)
    })
    .await;
    eventually("a has all of b's records", || {
        a.imported() == b.expected_below(2500)
    })
    .await;
    // Later commits are shipped as the watch advances, in two steps.
    a.commit(2000);
    eventually("b has a's records below 2000", || {
        b.imported() == a.expected_below(2000)
    })
    .await;
    a.commit(3000);
    eventually("b has all of a's records", || {
        b.imported() == a.expected_below(3000)
    })
    .await;
    // Acks reach the origin: everything below the last record for b (offset 2998; 2999 is not
    // for b).
    eventually("a's records are acked", || a.state().acked == 2999).await;
    eventually("b's records are acked", || b.state().acked == 2500).await;
    assert!(a.reports().contains(&LinkStatus::Up), "{:?}", a.reports());
    assert!(b.reports().contains(&LinkStatus::Up), "{:?}", b.reports());
    assert_eq!(a.downs() + b.downs(), 0, "the link never dropped");
    // Presence: each side heard the other's peers when the link came up, then each change.
    eventually("b heard a's presence", || {
        b.state().peer_presence.first() == Some(&vec!["local-peer".to_owned()])
    })
    .await;
    a.0.presence
        .send_replace(vec!["alice".to_owned(), "carol".to_owned()]);
    eventually("b heard a's change", || {
        b.state().peer_presence.last() == Some(&vec!["alice".to_owned(), "carol".to_owned()])
    })
    .await;
    hub_a.stop().await;
    hub_b.stop().await;
    eventually("b forgot a's presence with the link", || {
        b.state().peer_presence.last() == Some(&Vec::new())
    })
    .await;
}

#[tokio::test]
async fn a_cut_link_resumes_from_the_progress_exactly_once() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let a = FakeHost::new("a", 0xa, 6000, 4, 6000);
    let b = FakeHost::new("b", 0xb, 3000, 5, 3000).with_import_delay(Duration::from_millis(30));
    let hub_b = start(
        setup(dir.path(), "b", "a", true, None, fast_timing()),
        b.clone(),
    )
    .await;
    let proxy = proxy(hub_b.address()).await;
    let hub_a = start(
        setup(
            dir.path(),
            "a",
            "b",
            false,
            Some(proxy.address),
            fast_timing(),
        ),
        a.clone(),
    )
    .await;

    eventually("b imported a first batch", || !b.imported().is_empty()).await;
    let before = b.imported().len();
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        b.imported().len() < a.expected_below(6000).len(),
        "cut mid-stream ({before} imported before)"
    );
    proxy.heal();
    eventually("b has all of a's records", || {
        b.imported() == a.expected_below(6000)
    })
    .await;
    eventually("a has all of b's records", || {
        a.imported() == b.expected_below(3000)
    })
    .await;
    assert!(a.downs() >= 1, "a saw the link drop: {:?}", a.reports());
    assert_eq!(a.reports().last(), Some(&LinkStatus::Up));
    hub_a.stop().await;
    hub_b.stop().await;
}

#[tokio::test]
async fn a_restarted_manager_resumes_with_the_same_host_state() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let a = FakeHost::new("a", 0xa, 2000, 7, 800);
    let b = FakeHost::new("b", 0xb, 2000, 2, 900);
    let hub_b = start(
        setup(dir.path(), "b", "a", true, None, fast_timing()),
        b.clone(),
    )
    .await;
    let setup_a = setup(
        dir.path(),
        "a",
        "b",
        false,
        Some(hub_b.address()),
        fast_timing(),
    );
    let hub_a = start(setup_a.clone(), a.clone()).await;
    eventually("first round crossed", || {
        b.imported() == a.expected_below(800) && a.imported() == b.expected_below(900)
    })
    .await;
    hub_a.stop().await;

    // While a is down, both hubs commit more; a comes back with the same state.
    a.commit(2000);
    b.commit(2000);
    let hub_a = start(setup_a, a.clone()).await;
    eventually("the rest crossed exactly once", || {
        b.imported() == a.expected_below(2000) && a.imported() == b.expected_below(2000)
    })
    .await;
    hub_a.stop().await;
    hub_b.stop().await;
}

#[tokio::test]
async fn a_log_id_mismatch_is_refused_on_both_sides_and_nothing_is_imported() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let a = FakeHost::new("a", 0xa, 100, 0, 100);
    // b imported from an earlier log of a, with another id.
    let b = FakeHost::new("b", 0xb, 0, 0, 0).with_progress(LinkProgress {
        log_id: 0xdead,
        offset: 40,
        crc: 1,
    });
    let hub_b = start(
        setup(dir.path(), "b", "a", true, None, fast_timing()),
        b.clone(),
    )
    .await;
    let hub_a = start(
        setup(
            dir.path(),
            "a",
            "b",
            false,
            Some(hub_b.address()),
            fast_timing(),
        ),
        a.clone(),
    )
    .await;
    eventually("both sides report the refusal", || {
        a.refused().is_some() && b.refused().is_some()
    })
    .await;
    let at_a = a.refused().unwrap_or_default();
    let at_b = b.refused().unwrap_or_default();
    assert!(at_a.contains("log id mismatch"), "{at_a}");
    assert!(at_b.contains("log id mismatch"), "{at_b}");
    assert!(b.imported().is_empty(), "never restarted from zero");
    hub_a.stop().await;
    hub_b.stop().await;
}

#[tokio::test]
async fn a_crc_mismatch_at_resume_is_refused() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let a = FakeHost::new("a", 0xa, 100, 0, 100);
    let crc = a.0.own[40].0.crc;
    let b = FakeHost::new("b", 0xb, 0, 0, 0).with_progress(LinkProgress {
        log_id: 0xa,
        offset: 40,
        crc: crc ^ 1,
    });
    let hub_b = start(
        setup(dir.path(), "b", "a", true, None, fast_timing()),
        b.clone(),
    )
    .await;
    let hub_a = start(
        setup(
            dir.path(),
            "a",
            "b",
            false,
            Some(hub_b.address()),
            fast_timing(),
        ),
        a.clone(),
    )
    .await;
    eventually("both sides report the refusal", || {
        a.refused().is_some() && b.refused().is_some()
    })
    .await;
    let at_a = a.refused().unwrap_or_default();
    assert!(at_a.contains("CRC mismatch at offset 40"), "{at_a}");
    assert!(b.refused().unwrap_or_default().contains("CRC mismatch"));
    assert!(b.imported().is_empty());
    hub_a.stop().await;
    hub_b.stop().await;
}

#[tokio::test]
async fn the_window_bounds_what_is_shipped_and_not_acked() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let count = 3 * LINK_WINDOW_RECORDS as u64;
    let a = FakeHost::new("a", 0xa, count, 0, count);
    let b = FakeHost::new("b", 0xb, 0, 0, 0).with_import_delay(Duration::from_millis(20));
    let hub_b = start(
        setup(dir.path(), "b", "a", true, None, fast_timing()),
        b.clone(),
    )
    .await;
    let hub_a = start(
        setup(
            dir.path(),
            "a",
            "b",
            false,
            Some(hub_b.address()),
            fast_timing(),
        ),
        a.clone(),
    )
    .await;
    eventually("b has everything", || b.imported().len() == count as usize).await;
    assert_eq!(b.imported(), a.expected_below(count));
    let max = a.state().max_in_flight;
    assert!(max <= LINK_WINDOW_RECORDS, "{max} in flight");
    assert!(
        max > LINK_WINDOW_RECORDS / 2,
        "the slow import filled the window ({max})"
    );
    hub_a.stop().await;
    hub_b.stop().await;
}

#[tokio::test]
async fn an_ack_beyond_what_was_shipped_is_refused() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let a = FakeHost::new("a", 0xa, 10, 0, 10);
    let hub_a = start(
        setup(dir.path(), "a", "b", true, None, fast_timing()),
        a.clone(),
    )
    .await;
    let rogue = Rogue::new(dir.path(), "b", "a");
    let mut link = rogue.dial(hub_a.address()).await;
    assert_eq!(
        next_frame(&mut link).await,
        LinkFrame::Resume {
            log_id: 0,
            from: 0,
            last_crc: None
        }
    );
    // Asks from offset 10 (after the last record), then acks far past it.
    send(
        &mut link,
        &LinkFrame::Resume {
            log_id: 0xa,
            from: 10,
            last_crc: Some(a.0.own[9].0.crc),
        },
    )
    .await;
    send(&mut link, &LinkFrame::Ack { durable: 1000 }).await;
    let reason = refusal(&mut link).await;
    assert!(reason.contains("an ack of offset 1000"), "{reason}");
    eventually("a reports the refusal", || a.refused().is_some()).await;
    // The Resume itself acks what the peer holds (below 10); the bogus ack was not passed on.
    assert_eq!(a.state().acked, 10, "only the Resume's offset counts");
    hub_a.stop().await;
}

#[tokio::test]
async fn a_gap_or_garbage_from_the_peer_is_refused_and_nothing_imported() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let a = FakeHost::new("a", 0xa, 0, 0, 0);
    let hub_a = start(
        setup(dir.path(), "a", "b", true, None, fast_timing()),
        a.clone(),
    )
    .await;
    let rogue = Rogue::new(dir.path(), "b", "a");

    // A batch that claims to follow offset 4 when a holds nothing of b's log.
    let mut link = rogue.dial(hub_a.address()).await;
    let payload = b"x".to_vec();
    let record = ShippedRecord {
        offset: 5,
        previous: 4,
        timestamp_us: 1,
        kind: 1,
        schema_version: 1,
        origin_hub: 0xb,
        crc: wire::record_crc(5, 1, 1, 1, 0xb, &payload),
        payload,
    };
    send(
        &mut link,
        &LinkFrame::Batch {
            log_id: 0xb,
            records: vec![record],
        },
    )
    .await;
    let reason = refusal(&mut link).await;
    assert!(reason.contains("a gap"), "{reason}");

    // Bytes that are no frame.
    let mut link = rogue.dial(hub_a.address()).await;
    link.writer.send(&[99, 1, 2, 3]).await.expect("sent");
    let reason = refusal(&mut link).await;
    assert!(reason.contains("malformed"), "{reason}");
    assert!(a.imported().is_empty());
    hub_a.stop().await;
}

#[tokio::test]
async fn heartbeats_keep_an_idle_link_up() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let timing = LinkTiming {
        heartbeat: Duration::from_millis(100),
        idle: Duration::from_millis(600),
        ..fast_timing()
    };
    let a = FakeHost::new("a", 0xa, 1, 0, 0);
    let b = FakeHost::new("b", 0xb, 0, 0, 0);
    let hub_b = start(setup(dir.path(), "b", "a", true, None, timing), b.clone()).await;
    let hub_a = start(
        setup(dir.path(), "a", "b", false, Some(hub_b.address()), timing),
        a.clone(),
    )
    .await;
    eventually("linked", || {
        a.reports().contains(&LinkStatus::Up) && b.reports().contains(&LinkStatus::Up)
    })
    .await;
    // Idle for more than three idle deadlines.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(a.reports(), [LinkStatus::Connecting, LinkStatus::Up]);
    assert_eq!(b.reports(), [LinkStatus::Connecting, LinkStatus::Up]);
    a.commit(1);
    eventually("the same link still carries records", || {
        b.imported().len() == 1
    })
    .await;
    hub_a.stop().await;
    hub_b.stop().await;
}

#[tokio::test]
async fn without_heartbeats_an_idle_link_ends_at_the_deadline() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let timing = LinkTiming {
        heartbeat: Duration::from_secs(60),
        idle: Duration::from_millis(400),
        ..fast_timing()
    };
    let a = FakeHost::new("a", 0xa, 0, 0, 0);
    let b = FakeHost::new("b", 0xb, 0, 0, 0);
    let hub_b = start(setup(dir.path(), "b", "a", true, None, timing), b.clone()).await;
    let hub_a = start(
        setup(dir.path(), "a", "b", false, Some(hub_b.address()), timing),
        a.clone(),
    )
    .await;
    eventually("the silent link dropped", || a.downs() + b.downs() > 0).await;
    hub_a.stop().await;
    hub_b.stop().await;
}

#[tokio::test]
async fn a_second_link_from_the_same_peer_replaces_the_first() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let a = FakeHost::new("a", 0xa, 3, 0, 3);
    let hub_a = start(
        setup(dir.path(), "a", "b", true, None, fast_timing()),
        a.clone(),
    )
    .await;
    let rogue = Rogue::new(dir.path(), "b", "a");
    let mut first = rogue.dial(hub_a.address()).await;
    assert!(matches!(
        next_frame(&mut first).await,
        LinkFrame::Resume { .. }
    ));
    let mut second = rogue.dial(hub_a.address()).await;
    // The first link is closed (after any frames already on the way).
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            if first.reader.recv().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the first link was closed");
    // The second link works.
    assert!(matches!(
        next_frame(&mut second).await,
        LinkFrame::Resume { .. }
    ));
    send(
        &mut second,
        &LinkFrame::Resume {
            log_id: 0,
            from: 0,
            last_crc: None,
        },
    )
    .await;
    let LinkFrame::Batch { records, .. } = next_frame(&mut second).await else {
        panic!("a batch on the second link");
    };
    assert_eq!(
        records
            .iter()
            .map(|record| record.offset)
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(records[0].previous, NO_PREVIOUS);
    send(&mut second, &LinkFrame::Ack { durable: 3 }).await;
    eventually("the ack arrived", || a.state().acked == 3).await;
    assert_eq!(a.downs(), 0, "a replacement is not a failure");
    hub_a.stop().await;
}
