//! Seeded tests of one federation link over turmoil's simulated network: the real Noise
//! handshake ([`noise::dial`] / [`noise::accept`]) and the real protocol ([`link::run_one`])
//! over turmoil's simulated TCP, between two in-memory hosts ([`FakeHost`]) in a
//! [`turmoil::Sim`] seeded with the test's seed.
//!
//! Host "a" listens, host "b" dials; each loops: connect or accept, handshake, run the link,
//! and on its end wait a little (simulated time) and link again. A newer connection accepted
//! by a replaces its current one (b only dials once its own link ended, so a's is stale). The
//! driver steps the sim and, at times the seed picks, commits more of either log, partitions
//! the two hosts and repairs them, changes the random link failures (turmoil's `fail_rate`:
//! the link between the hosts breaks at random and drops what is in flight, which stalls a
//! TCP stream for good) and crashes either host and bounces it later. Every seed also has its
//! own message latency. A crash drops the host's whole runtime mid-whatever; its `FakeHost`
//! lives outside the host's closure (imports were durable when they returned), so the bounced
//! host resumes from what it had imported.
//!
//! Then the network heals (repaired, no random failures), everything is committed, and the
//! sim runs until both sides imported everything and every ack arrived. The checks: each side
//! imported exactly the peer's records for it, in order, once (none not for it, none offered
//! again); no ack passed what the peer had imported or what was handed out (audited on every
//! ack, [`FakeHost::audit_acks_against`]); the window bound held; no side refused. A prefix
//! check also runs after every crash.
//!
//! Timing: turmoil runs each host on a paused tokio clock that it advances 1 ms per step, so
//! every timer of the link (heartbeat, idle deadline, the handshake's 10 s
//! [`noise::HANDSHAKE_TIMEOUT`]) fires in simulated time. The link runs with a 500 ms heartbeat
//! and a 2 s idle deadline ([`TIMING`]): far above the simulated latency (at most 50 ms a
//! message here), so a healthy link never hits them, and short enough that a link stalled by
//! a partition or a random break ends in a few simulated seconds, not the default 30 s (which
//! would cost steps, not correctness). Reconnects wait 100..=400 ms, connects time out after
//! 1 s. The handshake timeout is a constant of `noise` and stays 10 s.
//!
//! Not covered: turmoil's TCP never corrupts or duplicates bytes within a stream (segments it
//! delivers out of order are put back in order; a dropped one stalls the stream, which the
//! idle deadline ends); a crash loses nothing the host had imported (the `FakeHost` has no
//! unsynced state; a torn write to the hub's log is `hub_crash`'s subject); and the loops here
//! stand in for the link manager's dialing, back-off and one-link-per-peer rule
//! (`federation_manager.rs` tests those). The seed fixes the logs, the plan and turmoil's
//! network randomness; what it does not fix is the order tokio's unbiased `select!` polls its
//! branches in, so a replay follows the same plan and almost always the same interleaving.
//!
//! `RELAY_TURMOIL_SEEDS=N` runs seeds 0..N (default [`DEFAULT_SEEDS`]); `RELAY_TURMOIL_SEED=N`
//! runs seed N alone. A failure names its seed.

#[path = "support/federation_host.rs"]
mod federation_host;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use federation_host::FakeHost;
use relay::federation::config::{self, FederationConfig};
use relay::federation::link::{self, LINK_WINDOW_RECORDS, LinkEnd, LinkTiming};
use relay::federation::noise::{self, LinkAuth, PinStore, StaticKey};
use tokio::sync::watch;
use turmoil::net::{TcpListener, TcpStream};

const SECRET: &str = "8f3a1c5e7b9d2f4a6c8e0b1d3f5a7c9e1b3d5f7a9c0e2b4d6f8a0c2e4b6d8f0a";

/// Seeds the default run covers (0..this).
const DEFAULT_SEEDS: u64 = 8;

/// The port a listens on.
const PORT: u16 = 7411;

/// The link's timers in simulated time (see the module doc).
const TIMING: LinkTiming = LinkTiming {
    heartbeat: Duration::from_millis(500),
    idle: Duration::from_secs(2),
    backoff_min: Duration::from_millis(100),
    backoff_max: Duration::from_millis(400),
    refused_backoff: Duration::from_secs(1),
    backoff_reset_after: Duration::from_secs(5),
};

/// A connect gives up after this long (a SYN lost to a partition).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Simulated time the faults are scheduled in.
const CHAOS: Duration = Duration::from_secs(20);

/// Simulated time after the network healed by which everything must have crossed and been
/// acked: a stalled link's idle deadline, a handshake timeout and a reconnect fit many times.
const HEAL_DEADLINE: Duration = Duration::from_secs(60);

/// Host names, side 0 and side 1.
const NAMES: [&str; 2] = ["a", "b"];

// ---------------------------------------------------------------------------------------------
// The seed.

/// splitmix64, as in `federation_sim.rs`.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

// ---------------------------------------------------------------------------------------------
// Hubs.

/// One hub's identity: its config (the other hub as its one peer, key pinned), key and pins.
struct Hub {
    config: FederationConfig,
    key: StaticKey,
    pins: PinStore,
}

/// Hubs a and b, each configured with the other's key.
fn hubs(dir: &std::path::Path) -> [Arc<Hub>; 2] {
    let keys = [
        StaticKey::generate().expect("a key"),
        StaticKey::generate().expect("a key"),
    ];
    let configs = [0, 1].map(|side| {
        let (me, peer) = (NAMES[side], NAMES[1 - side]);
        let text = format!(
            "hub_id = \"{me}\"\nsecret = \"{SECRET}\"\n[[peer]]\nhub_id = \"{peer}\"\n\
             public_key = \"{}\"\n",
            keys[1 - side].public.to_hex()
        );
        config::parse(&text, &dir.join(format!("{me}.toml")), dir).expect("config")
    });
    let mut keys = keys.into_iter();
    let mut configs = configs.into_iter();
    [0, 1].map(|side| {
        Arc::new(Hub {
            config: configs.next().expect("a config"),
            key: keys.next().expect("a key"),
            pins: PinStore::new(&dir.join(NAMES[side])),
        })
    })
}

/// What the hosts' loops saw, for the checks and the summary.
#[derive(Debug, Default)]
struct Seen {
    /// Handshakes that completed, per side.
    links: [u64; 2],
    /// Handshakes that failed, per side.
    no_links: [u64; 2],
    /// How sessions ended, per side, for a refusal (which must never happen).
    refusals: Vec<String>,
}

type Shared = Arc<Mutex<Seen>>;

fn seen(shared: &Shared) -> std::sync::MutexGuard<'_, Seen> {
    shared.lock().expect("seen")
}

/// One link's session on `stream` after the handshake; records how it went.
async fn session(
    side: usize,
    hub: &Hub,
    host: &FakeHost,
    stream: TcpStream,
    seen_by: &Shared,
    stop: watch::Receiver<bool>,
) {
    let auth = LinkAuth {
        me: &hub.config.hub_id,
        key: &hub.key,
        secret: &hub.config.secret,
        pins: &hub.pins,
    };
    let linked = if side == 1 {
        let peer = hub.config.peers.first().expect("one peer");
        noise::dial(stream, auth, peer).await
    } else {
        noise::accept(stream, auth, &hub.config).await
    };
    let link = match linked {
        Ok(link) => link,
        Err(_) => {
            seen(seen_by).no_links[side] += 1;
            return;
        }
    };
    seen(seen_by).links[side] += 1;
    host.new_link();
    match link::run_one(host, link, &TIMING, stop).await {
        LinkEnd::Stopped | LinkEnd::Failed(_) => {}
        end @ (LinkEnd::RefusedByUs(_) | LinkEnd::RefusedByPeer(_)) => {
            seen(seen_by)
                .refusals
                .push(format!("{}: {end:?}", NAMES[side]));
        }
    }
}

/// A short, seeded pause between links, in simulated time.
async fn back_off(rng: &Rc<RefCell<Rng>>) {
    let millis = {
        let mut rng = rng.borrow_mut();
        rng.range(
            TIMING.backoff_min.as_millis() as u64,
            TIMING.backoff_max.as_millis() as u64,
        )
    };
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

/// Host a: accepts, links, and takes a newer connection over its current one.
async fn listener_host(hub: Arc<Hub>, host: FakeHost, seen_by: Shared) -> turmoil::Result {
    let listener = TcpListener::bind(("0.0.0.0", PORT)).await?;
    let (_stop_tx, stop) = watch::channel(false);
    let mut next = listener.accept().await.ok();
    loop {
        let Some((stream, _)) = next.take() else {
            next = listener.accept().await.ok();
            continue;
        };
        let linked = session(0, &hub, &host, stream, &seen_by, stop.clone());
        tokio::select! {
            () = linked => {}
            accepted = listener.accept() => next = accepted.ok(),
        }
    }
}

/// Host b: dials, links, and on the end backs off and dials again.
async fn dialer_host(hub: Arc<Hub>, host: FakeHost, seen_by: Shared, seed: u64) -> turmoil::Result {
    let rng = Rc::new(RefCell::new(Rng(seed ^ 0xb0b)));
    let (_stop_tx, stop) = watch::channel(false);
    loop {
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(("a", PORT)));
        if let Ok(Ok(stream)) = connected.await {
            session(1, &hub, &host, stream, &seen_by, stop.clone()).await;
        }
        back_off(&rng).await;
    }
}

// ---------------------------------------------------------------------------------------------
// One seed.

/// What the driver does at a simulated time.
#[derive(Clone, Copy, Debug)]
enum Event {
    /// Side `s` commits up to this offset.
    Commit(usize, u64),
    Partition,
    Repair,
    /// The random link failure rate per step.
    FailRate(f64),
    Crash(usize),
    Bounce(usize),
}

/// A log of `count` records, some not for the peer, a few spanning several TCP segments.
fn log(rng: &mut Rng, name: &str, count: u64) -> Vec<(Vec<u8>, bool)> {
    let skip_percent = [0, 10, 50, 90][rng.range(0, 3) as usize];
    (0..count)
        .map(|offset| {
            let for_peer = !rng.chance(skip_percent);
            let mut payload = format!("{name}-{offset}").into_bytes();
            let pad = if rng.chance(3) {
                rng.range(2_000, 40_000)
            } else {
                rng.range(0, 64)
            };
            payload.resize(payload.len() + pad as usize, b'.');
            (payload, for_peer)
        })
        .collect()
}

/// The seed's faults and commits, in time order.
fn plan(rng: &mut Rng, hosts: &[FakeHost; 2]) -> Vec<(Duration, Event)> {
    let mut events = Vec::new();
    let at = |rng: &mut Rng| Duration::from_millis(rng.range(0, CHAOS.as_millis() as u64));
    for side in [0, 1] {
        let len = hosts[side].0.own.len() as u64;
        for _ in 0..rng.range(0, 6) {
            events.push((at(rng), Event::Commit(side, rng.range(0, len))));
        }
    }
    for _ in 0..rng.range(0, 3) {
        let start = at(rng);
        let lasts = Duration::from_millis(rng.range(100, 5_000));
        events.push((start, Event::Partition));
        events.push((start + lasts, Event::Repair));
    }
    for _ in 0..rng.range(0, 2) {
        let start = at(rng);
        let rate = [0.000_5, 0.002, 0.01][rng.range(0, 2) as usize];
        events.push((start, Event::FailRate(rate)));
        let lasts = Duration::from_millis(rng.range(500, 5_000));
        events.push((start + lasts, Event::FailRate(0.0)));
    }
    for _ in 0..rng.range(1, 3) {
        let side = rng.range(0, 1) as usize;
        let start = at(rng);
        let down = Duration::from_millis(rng.range(0, 3_000));
        events.push((start, Event::Crash(side)));
        events.push((start + down, Event::Bounce(side)));
    }
    events.sort_by_key(|&(at, _)| at);
    events
}

/// What one seed did, for the summary.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    links: u64,
    no_links: u64,
    crashes: u64,
    partitions: u64,
    records: u64,
    simulated: Duration,
}

/// Each side's imports are a prefix of what the peer has for it, in order, once.
fn check_prefix(hosts: &[FakeHost; 2], what: &str) {
    for side in [0, 1] {
        let (origin, importer) = (&hosts[side], &hosts[1 - side]);
        let expected = origin.expected_below(u64::MAX);
        let imported = importer.imported();
        assert!(
            imported.len() <= expected.len() && imported[..] == expected[..imported.len()],
            "{}'s records at its peer are not a prefix of those for it, in order, once \
             ({} imported, first wrong at {:?}): {what}",
            NAMES[side],
            imported.len(),
            imported.iter().zip(&expected).position(|(i, e)| i != e)
        );
        let committed = origin.committed_now();
        assert!(
            imported
                .last()
                .is_none_or(|(offset, _)| *offset < committed),
            "{} shipped a record not yet committed (below {committed}): {what}",
            NAMES[side]
        );
    }
}

/// Both sides imported and acked everything.
fn done(hosts: &[FakeHost; 2]) -> bool {
    [0, 1].iter().all(|&side| {
        let (origin, importer) = (&hosts[side], &hosts[1 - side]);
        let expected = origin.expected_below(u64::MAX);
        let all_acked = expected.last().map_or(0, |(offset, _)| offset + 1);
        importer.state().imported.len() == expected.len() && origin.state().acked == all_acked
    })
}

/// Runs seed `seed`; panics naming it when a rule breaks.
fn run_seed(seed: u64, hubs: &[Arc<Hub>; 2]) -> Tally {
    let replay = format!(
        "seed {seed} (replay: RELAY_TURMOIL_SEED={seed} cargo test --test federation_turmoil)"
    );
    let mut rng = Rng(seed);
    let hosts = [0, 1].map(|side| {
        let count = rng.range(0, 400);
        let records = log(&mut rng, NAMES[side], count);
        let committed = rng.range(0, count);
        FakeHost::from_records(0xa + side as u128, records, committed)
    });
    hosts[0].audit_acks_against(&hosts[1]);
    hosts[1].audit_acks_against(&hosts[0]);
    let events = plan(&mut rng, &hosts);
    let max_latency = Duration::from_millis(rng.range(1, 50));
    let what = format!("{replay}, max latency {max_latency:?}, plan {events:?}");

    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(CHAOS + HEAL_DEADLINE + Duration::from_secs(20))
        .min_message_latency(Duration::ZERO)
        .max_message_latency(max_latency)
        .repair_rate(0.05)
        .tcp_capacity(1024)
        .build();
    let seen_by = Shared::default();
    {
        let (hub, host, seen_by) = (hubs[0].clone(), hosts[0].clone(), seen_by.clone());
        sim.host(NAMES[0], move || {
            listener_host(hub.clone(), host.clone(), seen_by.clone())
        });
    }
    {
        let (hub, host, seen_by) = (hubs[1].clone(), hosts[1].clone(), seen_by.clone());
        sim.host(NAMES[1], move || {
            dialer_host(hub.clone(), host.clone(), seen_by.clone(), seed)
        });
    }

    let mut tally = Tally::default();
    let mut events = events.into_iter().peekable();
    let mut down = [false; 2];
    let mut healed: Option<Duration> = None;
    loop {
        sim.step()
            .unwrap_or_else(|error| panic!("the sim failed ({error}): {what}"));
        let now = sim.elapsed();
        while let Some(&(at, event)) = events.peek()
            && at <= now
        {
            events.next();
            match event {
                Event::Commit(side, to) => {
                    let host = &hosts[side];
                    let to = to.min(host.0.own.len() as u64);
                    if to > host.committed_now() {
                        host.commit(to);
                    }
                }
                Event::Partition => {
                    tally.partitions += 1;
                    sim.partition(NAMES[0], NAMES[1]);
                }
                Event::Repair => sim.repair(NAMES[0], NAMES[1]),
                Event::FailRate(rate) => sim.set_fail_rate(rate),
                Event::Crash(side) => {
                    if !down[side] {
                        tally.crashes += 1;
                        down[side] = true;
                        sim.crash(NAMES[side]);
                        check_prefix(&hosts, &format!("after crashing {}: {what}", NAMES[side]));
                    }
                }
                Event::Bounce(side) => {
                    if down[side] {
                        down[side] = false;
                        sim.bounce(NAMES[side]);
                    }
                }
            }
        }
        match healed {
            None if events.peek().is_none() && now >= CHAOS => {
                // Heal: everything up, repaired, no random failures, everything committed.
                sim.repair(NAMES[0], NAMES[1]);
                sim.set_fail_rate(0.0);
                for side in [0, 1] {
                    if down[side] {
                        down[side] = false;
                        sim.bounce(NAMES[side]);
                    }
                    hosts[side].commit(hosts[side].0.own.len() as u64);
                }
                healed = Some(now);
            }
            Some(_) if done(&hosts) => {
                tally.simulated = now;
                break;
            }
            Some(at) if now > at + HEAL_DEADLINE => {
                let progress = [0, 1].map(|side| {
                    let (origin, importer) = (&hosts[side], &hosts[1 - side]);
                    (
                        importer.state().imported.len(),
                        origin.expected_below(u64::MAX).len(),
                        origin.state().acked,
                    )
                });
                panic!(
                    "not everything crossed and was acked {HEAL_DEADLINE:?} after the network \
                     healed ((imported, expected, acked) of a's and b's records: {progress:?}; \
                     {:?}): {what}",
                    seen(&seen_by)
                );
            }
            _ => {}
        }
    }

    check_prefix(&hosts, &what);
    for side in [0, 1] {
        let (origin, importer) = (&hosts[side], &hosts[1 - side]);
        let name = NAMES[side];
        assert_eq!(
            importer.imported(),
            origin.expected_below(u64::MAX),
            "{name}'s records at its peer are not exactly those for it: {what}"
        );
        assert_eq!(
            importer.state().offered_again,
            0,
            "records of {name} were offered for import again: {what}"
        );
        let state = origin.state();
        assert!(
            state.violations.is_empty(),
            "{name} saw {:?}: {what}",
            state.violations
        );
        assert!(
            state.max_in_flight <= LINK_WINDOW_RECORDS,
            "{name} had {} records in flight (window {LINK_WINDOW_RECORDS}): {what}",
            state.max_in_flight
        );
        tally.records += importer.state().imported.len() as u64;
    }
    let seen = seen(&seen_by);
    assert!(
        seen.refusals.is_empty(),
        "a refusal ({:?}): {what}",
        seen.refusals
    );
    tally.links = seen.links.iter().sum();
    tally.no_links = seen.no_links.iter().sum();
    tally
}

/// Names the seed when a rule inside the hosts panics.
struct SeedGuard(u64);

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "failing seed {0}; replay: RELAY_TURMOIL_SEED={0} cargo test --test \
                 federation_turmoil",
                self.0
            );
        }
    }
}

fn seeds() -> std::ops::Range<u64> {
    let number = |name: &str| {
        std::env::var(name).ok().map(|value| {
            value
                .trim()
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{name}={value:?} is not a number"))
        })
    };
    match (number("RELAY_TURMOIL_SEED"), number("RELAY_TURMOIL_SEEDS")) {
        (Some(seed), _) => seed..seed + 1,
        (None, Some(count)) => 0..count,
        (None, None) => 0..DEFAULT_SEEDS,
    }
}

#[test]
fn seeded_partitions_losses_and_crashes_keep_every_record_exactly_once() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let hubs = hubs(dir.path());
    let started = Instant::now();
    let seeds = seeds();
    let verbose = std::env::var_os("RELAY_TURMOIL_VERBOSE").is_some();
    let mut total = Tally::default();
    for seed in seeds.clone() {
        let guard = SeedGuard(seed);
        let seed_started = Instant::now();
        let tally = run_seed(seed, &hubs);
        if verbose {
            eprintln!("seed {seed} in {:.1?}: {tally:?}", seed_started.elapsed());
        }
        total.links += tally.links;
        total.no_links += tally.no_links;
        total.crashes += tally.crashes;
        total.partitions += tally.partitions;
        total.records += tally.records;
        total.simulated += tally.simulated;
        drop(guard);
    }
    eprintln!(
        "federation_turmoil: seeds {seeds:?} in {:.1?}: {total:?}",
        started.elapsed()
    );
}
