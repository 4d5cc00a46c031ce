//! Seeded simulated-network tests of one federation link: two in-memory hosts link over
//! `tokio::io::duplex` pairs with real Noise ([`noise::dial`] / [`noise::accept`]) and the
//! real protocol ([`link::run_one`]), through a stream that injects faults chosen by the seed:
//! a partition (the connection cut after some number of bytes in one direction, what was in
//! flight lost), a crash (one side's session dropped once it moved some number of bytes,
//! mid-frame if it was writing one; its imports stay, they were durable when they returned),
//! a clean stop, short reads and delays. After each fault both sides link again with a new
//! handshake; committed records grow between and during links.
//!
//! After every link: each host imported a prefix of the peer's records for it, in order, once
//! (none offered again, none not for it, none not yet committed), no ack passed what was
//! handed out or what the peer held, the window bound held and no side refused. After the last
//! link, run without faults once everything is committed, everything crossed and was acked.
//!
//! No clock decides anything: faults trigger on byte counts, delays count polls, the timers
//! (heartbeat, idle deadline, handshake timeout) are [`LinkTiming::default`]'s and never fire
//! in a run, and everything runs on one task of a current-thread runtime. The seed fixes the
//! hosts, the commits and every fault; what it does not fix is the order tokio's unbiased
//! `select!` polls its branches in, so a replay follows the same plan and almost always the
//! same interleaving.
//!
//! `RELAY_SIM_SEEDS=N` runs seeds 0..N (default [`DEFAULT_SEEDS`]); `RELAY_SIM_SEED=N` runs
//! seed N alone. A failure names its seed.

#[path = "support/federation_host.rs"]
mod federation_host;

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use federation_host::FakeHost;
use relay::federation::config::{self, FederationConfig};
use relay::federation::link::{self, LINK_WINDOW_RECORDS, LinkEnd, LinkTiming};
use relay::federation::noise::{self, LinkAuth, PinStore, StaticKey};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::watch;

const SECRET: &str = "8f3a1c5e7b9d2f4a6c8e0b1d3f5a7c9e1b3d5f7a9c0e2b4d6f8a0c2e4b6d8f0a";

/// Seeds the default run covers (0..this); `tests/federation_turmoil.rs` adds seeded runs over a
/// simulated network, and `RELAY_SIM_SEEDS` more of these.
const DEFAULT_SEEDS: u64 = 30;

/// Faulty links per seed at most, before the last, clean one.
const FAULTY_LINKS_MAX: u64 = 4;

/// One link (handshake to both ends) may take this long in real time: far more than any needs,
/// so only a stuck link reaches it.
const LINK_DEADLINE: Duration = Duration::from_secs(60);

/// A link whose imports are complete is stopped once nothing moved for this many polls (plus
/// the longest delay), so acks in flight arrive first.
const SETTLE_POLLS: u64 = 64;

/// Hub a is side 0, hub b side 1; direction `d` carries what side `d` writes.
const SIDES: [usize; 2] = [0, 1];

// ---------------------------------------------------------------------------------------------
// The seed.

/// splitmix64: tiny, fast and good enough to pick faults; no crate needed.
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
// The faulty stream.

/// What one connection does wrong, chosen by the seed.
#[derive(Clone, Debug, Default)]
struct Faults {
    /// The connection is cut (both ways) once direction `d` carried this many bytes.
    cut_after: [Option<u64>; 2],
    /// Side `s` crashes once it moved (read and written) this many bytes.
    crash_after: [Option<u64>; 2],
    /// Side `s` reads at most 1..=this many bytes at a time.
    read_chunk_max: [Option<u64>; 2],
    /// Percent of side `s`'s reads followed by a delay.
    delay_percent: [u64; 2],
    /// A delay lasts 1..=this many polls.
    delay_polls_max: u64,
    /// Each direction's buffer in the duplex pair.
    duplex_bytes: usize,
}

#[derive(Debug)]
struct WireState {
    faults: Faults,
    rng: Rng,
    /// Bytes written per direction.
    carried: [u64; 2],
    /// Bytes read and written per side.
    moved: [u64; 2],
    cut: bool,
    crashed: [bool; 2],
    /// Polls side `s`'s next read still waits.
    delay_left: [u64; 2],
    /// Who waits on the duplex, to be woken by a cut: per side, reading and writing.
    waiting: [[Option<Waker>; 2]; 2],
}

/// One connection's shared state, seen from both ends.
#[derive(Clone, Debug)]
struct Wire(Arc<Mutex<WireState>>);

impl Wire {
    fn new(faults: Faults, rng: Rng) -> Wire {
        Wire(Arc::new(Mutex::new(WireState {
            faults,
            rng,
            carried: [0; 2],
            moved: [0; 2],
            cut: false,
            crashed: [false; 2],
            delay_left: [0; 2],
            waiting: Default::default(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, WireState> {
        self.0.lock().expect("the wire")
    }

    /// The two ends.
    fn pair(&self) -> [FaultStream; 2] {
        let (a, b) = tokio::io::duplex(self.lock().faults.duplex_bytes);
        [
            FaultStream::new(0, a, self.clone()),
            FaultStream::new(1, b, self.clone()),
        ]
    }

    fn crashed(&self, side: usize) -> bool {
        self.lock().crashed[side]
    }

    fn carried(&self) -> u64 {
        let wire = self.lock();
        wire.carried[0] + wire.carried[1]
    }
}

impl WireState {
    /// Cuts the connection: whatever waits on it fails now.
    fn cut(&mut self) {
        self.cut = true;
        for waker in self.waiting.iter_mut().flatten().filter_map(Option::take) {
            waker.wake();
        }
    }

    /// Side `side` moved `bytes`: a crash due now happens.
    fn moved(&mut self, side: usize, bytes: u64) {
        self.moved[side] += bytes;
        if self.faults.crash_after[side].is_some_and(|at| self.moved[side] >= at) {
            self.crashed[side] = true;
        }
    }

    /// At most this many bytes may move for `side` before its crash.
    fn before_crash(&self, side: usize) -> u64 {
        self.faults.crash_after[side].map_or(u64::MAX, |at| at.saturating_sub(self.moved[side]))
    }
}

fn reset() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "the simulated network cut the link",
    )
}

/// One end of a connection. A crashed end never completes anything again: the driver drops
/// its side, which closes the duplex like a dead process's socket.
struct FaultStream {
    side: usize,
    inner: DuplexStream,
    wire: Wire,
    scratch: Vec<u8>,
}

impl FaultStream {
    fn new(side: usize, inner: DuplexStream, wire: Wire) -> FaultStream {
        FaultStream {
            side,
            inner,
            wire,
            scratch: Vec::new(),
        }
    }
}

impl AsyncRead for FaultStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let side = this.side;
        let limit = {
            let mut wire = this.wire.lock();
            if wire.crashed[side] {
                return Poll::Pending;
            }
            if wire.cut {
                return Poll::Ready(Err(reset()));
            }
            if wire.delay_left[side] > 0 {
                wire.delay_left[side] -= 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let before_crash = wire.before_crash(side);
            if before_crash == 0 {
                // Only a crash at offset 0 of this connection gets here.
                wire.crashed[side] = true;
                return Poll::Pending;
            }
            let mut limit = (buf.remaining() as u64).min(before_crash);
            if let Some(chunk) = wire.faults.read_chunk_max[side] {
                limit = limit.min(wire.rng.range(1, chunk));
            }
            limit as usize
        };
        this.scratch.resize(limit, 0);
        let mut part = ReadBuf::new(&mut this.scratch[..limit]);
        match Pin::new(&mut this.inner).poll_read(cx, &mut part) {
            Poll::Pending => {
                this.wire.lock().waiting[side][0] = Some(cx.waker().clone());
                Poll::Pending
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Ready(Ok(())) => {
                let read = part.filled().len();
                buf.put_slice(part.filled());
                let mut wire = this.wire.lock();
                wire.moved(side, read as u64);
                let percent = wire.faults.delay_percent[side];
                if read > 0 && wire.rng.chance(percent) {
                    let polls = wire.faults.delay_polls_max;
                    wire.delay_left[side] = wire.rng.range(1, polls);
                }
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl AsyncWrite for FaultStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let side = this.side;
        let limit = {
            let wire = this.wire.lock();
            if wire.crashed[side] {
                return Poll::Pending;
            }
            if wire.cut {
                return Poll::Ready(Err(reset()));
            }
            let before_cut = wire.faults.cut_after[side]
                .map_or(u64::MAX, |at| at.saturating_sub(wire.carried[side]));
            (buf.len() as u64)
                .min(before_cut)
                .min(wire.before_crash(side)) as usize
        };
        if limit == 0 && !buf.is_empty() {
            // Only a cut or a crash at offset 0 of this connection gets here.
            let mut wire = this.wire.lock();
            if wire.before_crash(side) == 0 {
                wire.crashed[side] = true;
                return Poll::Pending;
            }
            wire.cut();
            return Poll::Ready(Err(reset()));
        }
        match Pin::new(&mut this.inner).poll_write(cx, &buf[..limit]) {
            Poll::Pending => {
                this.wire.lock().waiting[side][1] = Some(cx.waker().clone());
                Poll::Pending
            }
            Poll::Ready(Ok(written)) => {
                let mut wire = this.wire.lock();
                wire.carried[side] += written as u64;
                wire.moved(side, written as u64);
                if wire.faults.cut_after[side].is_some_and(|at| wire.carried[side] >= at) {
                    wire.cut();
                }
                Poll::Ready(Ok(written))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        {
            let wire = this.wire.lock();
            if wire.crashed[this.side] {
                return Poll::Pending;
            }
            if wire.cut {
                return Poll::Ready(Err(reset()));
            }
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        {
            let wire = this.wire.lock();
            if wire.crashed[this.side] {
                return Poll::Pending;
            }
            if wire.cut {
                return Poll::Ready(Ok(()));
            }
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------------------------------------
// Hubs and links.

/// One hub's identity: its config (the other hub as its one peer, key pinned), key and pins.
struct Hub {
    config: FederationConfig,
    key: StaticKey,
    pins: PinStore,
}

/// Hubs a and b, each configured with the other's key.
fn hubs(dir: &std::path::Path) -> [Hub; 2] {
    let keys = [
        StaticKey::generate().expect("a key"),
        StaticKey::generate().expect("a key"),
    ];
    let names = ["a", "b"];
    let mut hubs = Vec::new();
    for side in SIDES {
        let (me, peer) = (names[side], names[1 - side]);
        let text = format!(
            "hub_id = \"{me}\"\nsecret = \"{SECRET}\"\n[[peer]]\nhub_id = \"{peer}\"\n\
             public_key = \"{}\"\n",
            keys[1 - side].public.to_hex()
        );
        let config = config::parse(&text, &dir.join(format!("{me}.toml")), dir).expect("config");
        hubs.push(config);
    }
    let [a, b] = <[FederationConfig; 2]>::try_from(hubs).expect("two configs");
    let [key_a, key_b] = keys;
    [
        Hub {
            config: a,
            key: key_a,
            pins: PinStore::new(&dir.join("a")),
        },
        Hub {
            config: b,
            key: key_b,
            pins: PinStore::new(&dir.join("b")),
        },
    ]
}

/// How one side's part of a link ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// The handshake failed.
    NoLink(String),
    /// The session ran and ended so.
    Ended(LinkEnd),
    /// The driver dropped it (a crash).
    Crashed,
}

/// One side of one link: the handshake, then the session.
async fn side(
    hub: &Hub,
    host: &FakeHost,
    stream: FaultStream,
    dials: bool,
    timing: &LinkTiming,
    stop: watch::Receiver<bool>,
) -> Outcome {
    let auth = LinkAuth {
        me: &hub.config.hub_id,
        key: &hub.key,
        secret: &hub.config.secret,
        pins: &hub.pins,
    };
    let linked = if dials {
        let peer = hub.config.peers.first().expect("one peer");
        noise::dial(stream, auth, peer).await
    } else {
        noise::accept(stream, auth, &hub.config).await
    };
    match linked {
        Ok(link) => Outcome::Ended(link::run_one(host, link, timing, stop).await),
        Err(error) => Outcome::NoLink(error.to_string()),
    }
}

/// Something the driver does once the link carried enough bytes.
#[derive(Clone, Copy, Debug)]
enum Action {
    /// Side `s` commits up to this offset.
    Commit(usize, u64),
    /// Side `s` stops its session cleanly.
    Stop(usize),
}

/// One link's plan.
#[derive(Clone, Debug)]
struct Plan {
    faults: Faults,
    /// Side 0 dials (else side 1 does).
    a_dials: bool,
    /// (bytes carried both ways, action), in order of bytes.
    actions: VecDeque<(u64, Action)>,
}

/// What the seed's two hosts hold and should end with.
struct World {
    hosts: [FakeHost; 2],
    /// Per side, records for the peer below offset `i` (index `i`).
    for_peer_below: [Vec<usize>; 2],
}

impl World {
    fn expected_count(&self, side: usize) -> usize {
        let committed = self.hosts[side].committed_now() as usize;
        self.for_peer_below[side][committed.min(self.for_peer_below[side].len() - 1)]
    }

    /// Both sides imported everything committed on the other.
    fn caught_up(&self) -> bool {
        SIDES
            .iter()
            .all(|&side| self.hosts[1 - side].state().imported.len() == self.expected_count(side))
    }

    /// What moves while a link settles.
    fn fingerprint(&self, wire: &Wire) -> [u64; 6] {
        let state = wire.lock();
        let [a, b] = [self.hosts[0].state(), self.hosts[1].state()];
        [
            state.moved[0],
            state.moved[1],
            a.acked,
            b.acked,
            a.imported.len() as u64,
            b.imported.len() as u64,
        ]
    }

    fn commit(&self, side: usize, to: u64) {
        let host = &self.hosts[side];
        let to = to.min(host.0.own.len() as u64);
        if to > host.committed_now() {
            host.commit(to);
        }
    }
}

/// Runs one link to its end: both sides' handshakes and sessions, the plan's actions, the
/// crashes as they come, and a stop once the imports are done and nothing moves.
async fn drive<F: Future<Output = Outcome>>(
    world: &World,
    wire: &Wire,
    mut sides: [Option<Pin<Box<F>>>; 2],
    stops: &[watch::Sender<bool>; 2],
    mut actions: VecDeque<(u64, Action)>,
    settle: u64,
) -> [Outcome; 2] {
    let mut ends: [Option<Outcome>; 2] = [None, None];
    let mut quiet = 0u64;
    let mut last: Option<[u64; 6]> = None;
    let mut stopping = false;
    std::future::poll_fn(|cx| {
        for side in SIDES {
            if let Some(future) = sides[side].as_mut()
                && let Poll::Ready(end) = future.as_mut().poll(cx)
            {
                ends[side] = Some(end);
                sides[side] = None;
            }
            if sides[side].is_some() && wire.crashed(side) {
                sides[side] = None;
                ends[side] = Some(Outcome::Crashed);
            }
        }
        if sides.iter().all(Option::is_none) {
            return Poll::Ready(());
        }
        let carried = wire.carried();
        while let Some(&(at, action)) = actions.front()
            && at <= carried
        {
            actions.pop_front();
            run_action(world, stops, action);
        }
        if stopping || !world.caught_up() {
            return Poll::Pending;
        }
        // Caught up: let acks in flight land, then the next action, then stop.
        let now = world.fingerprint(wire);
        if last == Some(now) {
            quiet += 1;
        } else {
            quiet = 0;
            last = Some(now);
        }
        if quiet >= settle {
            quiet = 0;
            match actions.pop_front() {
                Some((_, action)) => run_action(world, stops, action),
                None => {
                    stopping = true;
                    for stop in stops {
                        stop.send_replace(true);
                    }
                    return Poll::Pending;
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
    for action in actions {
        if let (_, Action::Commit(side, to)) = action {
            world.commit(side, to);
        }
    }
    ends.map(|end| end.unwrap_or(Outcome::Crashed))
}

fn run_action(world: &World, stops: &[watch::Sender<bool>; 2], action: Action) {
    match action {
        Action::Commit(side, to) => world.commit(side, to),
        Action::Stop(side) => {
            stops[side].send_replace(true);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One seed.

/// What one seed did, for the summary.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    links: u64,
    cuts: u64,
    crashes: u64,
    no_links: u64,
    records: u64,
    max_in_flight: usize,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.links += other.links;
        self.cuts += other.cuts;
        self.crashes += other.crashes;
        self.no_links += other.no_links;
        self.records += other.records;
        self.max_in_flight = self.max_in_flight.max(other.max_in_flight);
    }
}

/// A log of `count` records: most small, some larger than a Noise message, runs not for the
/// peer (some longer than one scan looks at).
fn log(rng: &mut Rng, name: &str, count: u64) -> Vec<(Vec<u8>, bool)> {
    let skip_percent = [0, 10, 50, 90][rng.range(0, 3) as usize];
    // A few records larger than one Noise message (a frame of several chunks).
    let big: Vec<u64> = if rng.chance(20) {
        (0..rng.range(1, 3)).map(|_| rng.range(0, count)).collect()
    } else {
        Vec::new()
    };
    let long_run = rng
        .chance(20)
        .then(|| (rng.range(0, count), rng.range(4_097, 9_000)));
    let mut records = Vec::new();
    for offset in 0..count {
        let in_run = long_run.is_some_and(|(start, len)| offset >= start && offset < start + len);
        let for_peer = !in_run && !rng.chance(skip_percent);
        let mut payload = format!("{name}-{offset}").into_bytes();
        let pad = if big.contains(&offset) {
            rng.range(60_000, 100_000)
        } else {
            rng.range(0, 48)
        };
        payload.resize(payload.len() + pad as usize, b'.');
        records.push((payload, for_peer));
    }
    records
}

/// Prefix counts of records for the peer.
fn for_peer_below(host: &FakeHost) -> Vec<usize> {
    let mut counts = vec![0];
    for (_, for_peer) in &host.0.own {
        counts.push(counts.last().copied().unwrap_or(0) + usize::from(*for_peer));
    }
    counts
}

/// A faulty link's plan.
fn faulty_plan(rng: &mut Rng, world: &World, delays: &Faults) -> (Plan, &'static str) {
    let mut faults = delays.clone();
    // About how many bytes the link could carry: a cut anywhere up to past it.
    let pending: u64 = SIDES
        .iter()
        .map(|&side| {
            let host = &world.hosts[side];
            host.0
                .own
                .iter()
                .map(|(r, _)| r.payload.len() as u64 + 60)
                .sum::<u64>()
                / 2
        })
        .sum();
    let bytes = match rng.range(0, 2) {
        0 => rng.range(0, 400),
        1 => rng.range(0, 20_000),
        _ => rng.range(0, pending + 1_000),
    };
    let side = rng.range(0, 1) as usize;
    let mut actions = VecDeque::new();
    let kind = match rng.range(0, 3) {
        0 | 1 => {
            faults.cut_after[side] = Some(bytes);
            "cut"
        }
        2 => {
            faults.crash_after[side] = Some(bytes);
            "crash"
        }
        _ => {
            actions.push_back((bytes, Action::Stop(side)));
            "stop"
        }
    };
    for _ in 0..rng.range(0, 2) {
        let side = rng.range(0, 1) as usize;
        let len = world.hosts[side].0.own.len() as u64;
        let to = world.hosts[side].committed_now() + rng.range(0, len / 3 + 1);
        actions.push_back((rng.range(0, bytes.max(1) * 2), Action::Commit(side, to)));
    }
    actions.make_contiguous().sort_by_key(|&(at, _)| at);
    (
        Plan {
            faults,
            a_dials: rng.chance(50),
            actions,
        },
        kind,
    )
}

/// Runs seed `seed`; panics naming it when a rule breaks.
async fn run_seed(seed: u64, hubs: &[Hub; 2]) -> Tally {
    let replay =
        format!("seed {seed} (replay: RELAY_SIM_SEED={seed} cargo test --test federation_sim)");
    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    // Mostly small logs; every twentieth seed gives a a log of more than two windows.
    let mut sizes: [u64; 2] = [0, 1].map(|_| match rng.range(0, 7) {
        0..=5 => rng.range(0, 200),
        _ => rng.range(200, 1_000),
    });
    if seed % 20 == 19 {
        sizes[0] = rng.range(
            2 * LINK_WINDOW_RECORDS as u64,
            5 * LINK_WINDOW_RECORDS as u64 / 2,
        );
    }
    let hosts = [("a", 0xa_u128), ("b", 0xb_u128)].map(|(name, log_id)| {
        let side = usize::from(name == "b");
        let records = log(&mut rng, name, sizes[side]);
        let committed = rng.range(0, sizes[side]);
        FakeHost::from_records(log_id, records, committed)
    });
    hosts[0].audit_acks_against(&hosts[1]);
    hosts[1].audit_acks_against(&hosts[0]);
    let world = World {
        for_peer_below: [for_peer_below(&hosts[0]), for_peer_below(&hosts[1])],
        hosts,
    };
    // How this seed's network misbehaves besides the faults of each link.
    let mut delays = Faults {
        duplex_bytes: [64, 1_000, 16 << 10, 256 << 10][rng.range(0, 3) as usize],
        delay_polls_max: if rng.chance(10) {
            rng.range(300, 1_000)
        } else {
            rng.range(1, 100)
        },
        ..Faults::default()
    };
    for side in SIDES {
        delays.read_chunk_max[side] = rng.chance(40).then(|| rng.range(1, 5_000));
        delays.delay_percent[side] = [0, 0, 5, 30, 100][rng.range(0, 4) as usize];
    }
    let settle = SETTLE_POLLS + delays.delay_polls_max;
    let timing = LinkTiming::default();
    let links = rng.range(0, FAULTY_LINKS_MAX);
    for number in 0..=links {
        let last = number == links;
        let (plan, kind) = if last {
            for side in SIDES {
                world.commit(side, u64::MAX);
            }
            let plan = Plan {
                faults: delays.clone(),
                a_dials: rng.chance(50),
                actions: VecDeque::new(),
            };
            (plan, "clean")
        } else {
            for side in SIDES {
                if rng.chance(60) {
                    let len = world.hosts[side].0.own.len() as u64;
                    world.commit(
                        side,
                        world.hosts[side].committed_now() + rng.range(0, len / 3),
                    );
                }
            }
            faulty_plan(&mut rng, &world, &delays)
        };
        let what = format!("{replay}, link {number} ({kind}: {plan:?})");
        for host in &world.hosts {
            host.new_link();
        }
        let wire = Wire::new(plan.faults.clone(), Rng(rng.next_u64()));
        let [stream_a, stream_b] = wire.pair();
        let stops = [watch::channel(false).0, watch::channel(false).0];
        let sides = [
            Some(Box::pin(side(
                &hubs[0],
                &world.hosts[0],
                stream_a,
                plan.a_dials,
                &timing,
                stops[0].subscribe(),
            ))),
            Some(Box::pin(side(
                &hubs[1],
                &world.hosts[1],
                stream_b,
                !plan.a_dials,
                &timing,
                stops[1].subscribe(),
            ))),
        ];
        let ends = tokio::time::timeout(
            LINK_DEADLINE,
            drive(&world, &wire, sides, &stops, plan.actions, settle),
        )
        .await
        .unwrap_or_else(|_| panic!("stuck for {LINK_DEADLINE:?}: {what}"));
        tally.links += 1;
        {
            let state = wire.lock();
            tally.cuts += u64::from(state.cut);
            tally.crashes += state.crashed.iter().map(|&c| u64::from(c)).sum::<u64>();
        }
        for end in &ends {
            assert!(
                !matches!(
                    end,
                    Outcome::Ended(LinkEnd::RefusedByUs(_) | LinkEnd::RefusedByPeer(_))
                ),
                "a refusal ({ends:?}): {what}"
            );
            tally.no_links += u64::from(matches!(end, Outcome::NoLink(_)));
        }
        if last {
            assert_eq!(
                ends,
                [
                    Outcome::Ended(LinkEnd::Stopped),
                    Outcome::Ended(LinkEnd::Stopped)
                ],
                "the clean link ends only when stopped: {what}"
            );
        }
        check(&world, last, &what, &mut tally);
    }
    tally
}

/// The rules after one link (`last`: everything committed crossed and was acked).
fn check(world: &World, last: bool, what: &str, tally: &mut Tally) {
    for side in SIDES {
        let (origin, importer) = (&world.hosts[side], &world.hosts[1 - side]);
        let name = ["a", "b"][side];
        let expected = origin.expected_below(u64::MAX);
        let imported = importer.imported();
        assert!(
            imported.len() <= expected.len() && imported[..] == expected[..imported.len()],
            "{name}'s records at its peer are not a prefix of those for it, in order, once \
             ({} imported, first wrong at {:?}): {what}",
            imported.len(),
            imported.iter().zip(&expected).position(|(i, e)| i != e)
        );
        let committed = origin.committed_now();
        assert!(
            imported
                .last()
                .is_none_or(|(offset, _)| *offset < committed),
            "{name} shipped a record not yet committed (below {committed}): {what}"
        );
        let importer_state = importer.state();
        assert_eq!(
            importer_state.offered_again, 0,
            "records of {name} were offered for import again: {what}"
        );
        drop(importer_state);
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
        tally.max_in_flight = tally.max_in_flight.max(state.max_in_flight);
        if last {
            assert_eq!(
                imported.len(),
                expected.len(),
                "not all of {name}'s records crossed: {what}"
            );
            let all_acked = expected.last().map_or(0, |(offset, _)| offset + 1);
            // Shipped on the last link or not, the origin knows what the peer holds: a Resume
            // counts as an ack, so one lost with an earlier link is not lost for good.
            assert_eq!(
                state.acked, all_acked,
                "{name}'s records not all acked: {what}"
            );
            tally.records += imported.len() as u64;
        }
    }
}

/// Names the seed when a rule inside the hosts panics.
struct SeedGuard(u64);

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "failing seed {0}; replay: RELAY_SIM_SEED={0} cargo test --test federation_sim",
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
    match (number("RELAY_SIM_SEED"), number("RELAY_SIM_SEEDS")) {
        (Some(seed), _) => seed..seed + 1,
        (None, Some(count)) => 0..count,
        (None, None) => 0..DEFAULT_SEEDS,
    }
}

#[tokio::test]
async fn seeded_partitions_and_crashes_keep_every_record_exactly_once() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let hubs = hubs(dir.path());
    let started = Instant::now();
    let seeds = seeds();
    let verbose = std::env::var_os("RELAY_SIM_VERBOSE").is_some();
    let mut total = Tally::default();
    for seed in seeds.clone() {
        let guard = SeedGuard(seed);
        let seed_started = Instant::now();
        let tally = run_seed(seed, &hubs).await;
        if verbose {
            eprintln!("seed {seed} in {:.1?}: {tally:?}", seed_started.elapsed());
        }
        total.add(tally);
        drop(guard);
    }
    eprintln!(
        "federation_sim: seeds {seeds:?} in {:.1?}: {total:?}",
        started.elapsed()
    );
}
