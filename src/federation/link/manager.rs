//! The link manager's outer loops: the listener's accept loop, one dial loop per peer with an
//! address (jittered exponential back-off), and the one-link-per-peer rule (a new link
//! replaces the old one, which is stopped and finished before the new one starts, so two links
//! never import for one peer at once).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;

use super::session::{self, LinkEnd};
use super::{
    ACCEPT_ERROR_PAUSE, DIAL_CONNECT_TIMEOUT, FAILURE_LOG_INTERVAL, HANDSHAKES_IN_FLIGHT_MAX,
    LinkHost, LinkSetup, LinkStatus,
};
use crate::federation::config::{HubId, Peer, RelayServer};
use crate::federation::noise::{self, Link, LinkAuth, LinkError};
use crate::federation::relay_client;

/// Any byte stream a link runs over: a TCP connection, or a relay server's pairing.
pub(super) trait LinkStream:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send
{
}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> LinkStream for T {}

/// A link's stream, whichever way it came.
type Stream = Box<dyn LinkStream>;

/// How a dial loop reaches its peer.
#[derive(Clone, Debug)]
enum Route {
    /// Straight to its address.
    Direct(SocketAddr),
    /// Through the relay server, which pairs the two hubs.
    Relay(RelayServer),
}

impl std::fmt::Display for Route {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::Direct(address) => write!(formatter, "{address}"),
            Route::Relay(relay) => write!(formatter, "the relay server {}", relay.url),
        }
    }
}

/// The manager with its listener bound, ready to [`Bound::run`].
#[derive(Debug)]
pub struct Bound {
    setup: LinkSetup,
    listener: Option<TcpListener>,
}

/// Binds `setup.config.listen` (if set), so a port in use stops the hub before it starts.
///
/// # Errors
/// The address cannot be bound; the error names it.
pub async fn bind(setup: LinkSetup) -> std::io::Result<Bound> {
    let listener = match setup.config.listen {
        Some(address) => Some(TcpListener::bind(address).await.map_err(|error| {
            std::io::Error::new(
                error.kind(),
                format!("cannot listen for federation links on {address}: {error}"),
            )
        })?),
        None => None,
    };
    Ok(Bound { setup, listener })
}

/// [`bind`], then [`Bound::run`].
///
/// # Errors
/// See [`bind`].
pub async fn run<H: LinkHost>(
    setup: LinkSetup,
    host: H,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    bind(setup).await?.run(host, shutdown).await;
    Ok(())
}

impl Bound {
    /// Where links are accepted (`None` without `listen`): with port 0, the port chosen.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// Accepts and dials links until `shutdown` is true (or its sender is dropped), then
    /// closes every link and returns once all of them finished.
    pub async fn run<H: LinkHost>(self, host: H, shutdown: watch::Receiver<bool>) {
        let peers = self
            .setup
            .config
            .peers
            .iter()
            .map(|peer| (peer.hub_id.clone(), Arc::new(PeerState::new())))
            .collect();
        let manager = Arc::new(Manager {
            host,
            setup: self.setup,
            peers,
            shutdown: shutdown.clone(),
            accept_log: Mutex::new(FailureLog::default()),
        });
        for peer in &manager.setup.config.peers {
            manager.report(&peer.hub_id, LinkStatus::Connecting);
        }
        // Every task holds a clone of `done`: once all are dropped, everything finished.
        let (done, mut all_done) = mpsc::channel::<()>(1);
        for peer in manager.setup.config.peers.clone() {
            // A peer with an address is dialed; one without is met through the relay server,
            // when there is one (both hubs connect out to it).
            let route = match (peer.address, &manager.setup.config.relay) {
                (Some(address), _) => Some(Route::Direct(address)),
                (None, Some(relay)) => Some(Route::Relay(relay.clone())),
                (None, None) => None,
            };
            if let Some(route) = route {
                let manager = manager.clone();
                let done = done.clone();
                tokio::spawn(async move {
                    manager.dial_loop(peer, route).await;
                    drop(done);
                });
            }
        }
        if let Some(listener) = self.listener {
            let manager = manager.clone();
            let done = done.clone();
            tokio::spawn(async move {
                manager.accept_loop(listener, done).await;
            });
        }
        drop(done);
        let mut shutdown = shutdown;
        let _ = shutdown.wait_for(|&stopping| stopping).await;
        let _ = all_done.recv().await;
    }
}

/// One peer's link slot and status.
struct PeerState {
    slot: Mutex<Slot>,
    /// Whether a link to the peer is up (dial loops wait on it).
    up: watch::Sender<bool>,
    last_report: Mutex<Option<LinkStatus>>,
    failures: Mutex<FailureLog>,
}

impl PeerState {
    fn new() -> PeerState {
        PeerState {
            slot: Mutex::new(Slot::default()),
            up: watch::channel(false).0,
            last_report: Mutex::new(None),
            failures: Mutex::new(FailureLog::default()),
        }
    }
}

#[derive(Default)]
struct Slot {
    generation: u64,
    current: Option<Current>,
}

/// The link that holds a peer's slot.
struct Current {
    generation: u64,
    /// Set to true to stop it.
    stop: watch::Sender<bool>,
    /// True once it finished.
    finished: watch::Receiver<bool>,
}

struct Manager<H> {
    host: H,
    setup: LinkSetup,
    peers: HashMap<HubId, Arc<PeerState>>,
    shutdown: watch::Receiver<bool>,
    accept_log: Mutex<FailureLog>,
}

impl<H: LinkHost> Manager<H> {
    fn auth(&self) -> LinkAuth<'_> {
        LinkAuth {
            me: &self.setup.config.hub_id,
            key: &self.setup.key,
            secret: &self.setup.config.secret,
            pins: &self.setup.pins,
        }
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Reports `status` for `peer` unless it is what was reported last.
    fn report(&self, peer: &HubId, status: LinkStatus) {
        let Some(state) = self.peers.get(peer) else {
            return;
        };
        let mut last = state
            .last_report
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.as_ref() != Some(&status) {
            *last = Some(status.clone());
            drop(last);
            self.host.report(peer, status);
        }
    }

    /// Logs a failure of `peer`'s link at warn, rate-limited (see [`FailureLog`]).
    fn log_failure(&self, peer: &HubId, step: Duration, what: &str, error: &str) {
        let Some(state) = self.peers.get(peer) else {
            return;
        };
        let decision = state
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .note(Instant::now(), step);
        if let Some(suppressed) = decision {
            tracing::warn!(
                peer = %peer,
                retry_in = ?step,
                suppressed,
                "federation link {what}: {error}"
            );
        }
    }

    /// Runs `link` as the peer's one link: stops and waits out the link it replaces first.
    async fn run_link(&self, link: Link<Stream>) -> LinkEnd {
        let peer = link.peer.clone();
        let Some(state) = self.peers.get(&peer) else {
            // noise::accept and dial only link configured peers.
            return LinkEnd::Failed(format!("{peer} is not a configured peer"));
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let (finished_tx, finished_rx) = watch::channel(false);
        let (generation, previous) = {
            let mut slot = state.slot.lock().unwrap_or_else(PoisonError::into_inner);
            slot.generation += 1;
            let generation = slot.generation;
            let previous = slot.current.replace(Current {
                generation,
                stop: stop_tx,
                finished: finished_rx,
            });
            (generation, previous)
        };
        if let Some(mut previous) = previous {
            tracing::info!(peer = %peer, "a new link replaces the one already up");
            previous.stop.send_replace(true);
            let _ = previous.finished.wait_for(|&finished| finished).await;
        }
        state.up.send_replace(true);
        state
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reset();
        self.report(&peer, LinkStatus::Up);
        tracing::info!(peer = %peer, "federation link up");
        let end = session::run(
            &self.host,
            link,
            &self.setup.timing,
            stop_rx,
            self.shutdown.clone(),
        )
        .await;
        finished_tx.send_replace(true);
        let still_current = {
            let mut slot = state.slot.lock().unwrap_or_else(PoisonError::into_inner);
            let current = slot
                .current
                .as_ref()
                .is_some_and(|current| current.generation == generation);
            if current {
                slot.current = None;
            }
            current
        };
        if still_current {
            state.up.send_replace(false);
            match &end {
                LinkEnd::Stopped => self.report(
                    &peer,
                    LinkStatus::Down {
                        error: "this hub is stopping".to_owned(),
                    },
                ),
                LinkEnd::Failed(error) => self.report(
                    &peer,
                    LinkStatus::Down {
                        error: error.clone(),
                    },
                ),
                LinkEnd::RefusedByUs(reason) => self.report(
                    &peer,
                    LinkStatus::Refused {
                        reason: format!("this hub refused the link: {reason}"),
                    },
                ),
                LinkEnd::RefusedByPeer(reason) => self.report(
                    &peer,
                    LinkStatus::Refused {
                        reason: format!("{peer} refused the link: {reason}"),
                    },
                ),
            }
        }
        end
    }

    /// Dials `peer` whenever no link to it is up, backing off after failures.
    async fn dial_loop(&self, peer: Peer, route: Route) {
        let Some(state) = self.peers.get(&peer.hub_id) else {
            return;
        };
        let timing = &self.setup.timing;
        let mut shutdown = self.shutdown.clone();
        let mut up = state.up.subscribe();
        let mut delay = timing.backoff_min;
        // Bounded by the hub's life: every pass dials once or waits.
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|&stopping| stopping) => return,
                _ = up.wait_for(|&up| !up) => {}
            }
            if self.stopping() {
                return;
            }
            let dialed = tokio::select! {
                biased;
                _ = shutdown.wait_for(|&stopping| stopping) => return,
                dialed = self.dial(&peer, &route) => dialed,
            };
            let wait = match dialed {
                Ok(link) => {
                    let started = Instant::now();
                    let end = self.run_link(link).await;
                    if started.elapsed() >= timing.backoff_reset_after {
                        delay = timing.backoff_min;
                    }
                    match end {
                        // Replaced by an accepted link, or stopping: no failure.
                        LinkEnd::Stopped => continue,
                        LinkEnd::Failed(error) => {
                            self.log_failure(&peer.hub_id, delay, "failed", &error);
                            delay
                        }
                        LinkEnd::RefusedByUs(reason) => {
                            let wait = timing.refused_backoff;
                            self.log_failure(&peer.hub_id, wait, "refused by this hub", &reason);
                            wait
                        }
                        LinkEnd::RefusedByPeer(reason) => {
                            let wait = timing.refused_backoff;
                            self.log_failure(&peer.hub_id, wait, "refused by the peer", &reason);
                            wait
                        }
                    }
                }
                Err(error) => {
                    let text = error.to_string();
                    let (wait, status) = if matches!(error, LinkError::KeyMismatch { .. }) {
                        (
                            timing.refused_backoff,
                            LinkStatus::Refused {
                                reason: text.clone(),
                            },
                        )
                    } else {
                        (
                            delay,
                            LinkStatus::Down {
                                error: format!("dialing {route}: {text}"),
                            },
                        )
                    };
                    self.log_failure(&peer.hub_id, wait, "dial failed", &text);
                    self.report(&peer.hub_id, status);
                    wait
                }
            };
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|&stopping| stopping) => return,
                () = tokio::time::sleep(jitter(wait)) => {}
            }
            delay = delay.saturating_mul(2).min(timing.backoff_max);
        }
    }

    async fn dial(&self, peer: &Peer, route: &Route) -> Result<Link<Stream>, LinkError> {
        match route {
            Route::Direct(address) => {
                let stream =
                    tokio::time::timeout(DIAL_CONNECT_TIMEOUT, TcpStream::connect(address))
                        .await
                        .map_err(|_| LinkError::Timeout(DIAL_CONNECT_TIMEOUT))??;
                stream.set_nodelay(true)?;
                noise::dial(Box::new(stream) as Stream, self.auth(), peer).await
            }
            Route::Relay(relay) => {
                let me = &self.setup.config.hub_id;
                // Waits for the peer to connect too: no timeout here (the server bounds it).
                let stream = relay_client::connect(relay, me, &peer.hub_id)
                    .await
                    .map_err(|error| LinkError::Io(std::io::Error::other(error.to_string())))?;
                let stream = Box::new(stream) as Stream;
                // Both hubs connected out: the lower id runs the dialing side of the handshake.
                let link = if relay_client::dials_first(me, &peer.hub_id) {
                    noise::dial(stream, self.auth(), peer).await?
                } else {
                    noise::accept(stream, self.auth(), &self.setup.config).await?
                };
                if link.peer != peer.hub_id {
                    return Err(LinkError::NotAPeer {
                        from: link.peer.as_str().to_owned(),
                        to: me.as_str().to_owned(),
                        why: "the relay server paired this hub with another than the one asked for",
                    });
                }
                Ok(link)
            }
        }
    }

    /// Accepts connections until shutdown; each handshake runs in its own task, at most
    /// [`HANDSHAKES_IN_FLIGHT_MAX`] at once.
    async fn accept_loop(self: Arc<Self>, listener: TcpListener, done: mpsc::Sender<()>) {
        let handshakes = Arc::new(Semaphore::new(HANDSHAKES_IN_FLIGHT_MAX));
        let mut shutdown = self.shutdown.clone();
        // Bounded by the hub's life: every pass accepts one connection or stops.
        loop {
            let accepted = tokio::select! {
                biased;
                _ = shutdown.wait_for(|&stopping| stopping) => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, from) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    self.log_accept(&format!("accepting a connection: {error}"));
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                self.log_accept(&format!(
                    "closed a connection from {from}: {HANDSHAKES_IN_FLIGHT_MAX} handshakes \
                     are already running"
                ));
                continue;
            };
            if let Err(error) = stream.set_nodelay(true) {
                self.log_accept(&format!("TCP_NODELAY on a connection from {from}: {error}"));
                continue;
            }
            let manager = self.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let mut shutdown = manager.shutdown.clone();
                let accepted = tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|&stopping| stopping) => return,
                    accepted = noise::accept(
                        Box::new(stream) as Stream,
                        manager.auth(),
                        &manager.setup.config,
                    ) => {
                        accepted
                    }
                };
                drop(permit);
                match accepted {
                    Ok(link) => {
                        let peer = link.peer.clone();
                        match manager.run_link(link).await {
                            LinkEnd::Stopped => {}
                            LinkEnd::Failed(error) => {
                                manager.log_failure(&peer, Duration::ZERO, "failed", &error);
                            }
                            LinkEnd::RefusedByUs(reason) => manager.log_failure(
                                &peer,
                                Duration::ZERO,
                                "refused by this hub",
                                &reason,
                            ),
                            LinkEnd::RefusedByPeer(reason) => manager.log_failure(
                                &peer,
                                Duration::ZERO,
                                "refused by the peer",
                                &reason,
                            ),
                        }
                    }
                    Err(LinkError::KeyMismatch {
                        hub_id,
                        expected,
                        found,
                    }) => {
                        let error = LinkError::KeyMismatch {
                            hub_id: hub_id.clone(),
                            expected,
                            found,
                        }
                        .to_string();
                        manager.log_failure(&hub_id, Duration::ZERO, "handshake refused", &error);
                        manager.report(&hub_id, LinkStatus::Refused { reason: error });
                    }
                    Err(error) => {
                        manager.log_accept(&format!("handshake with {from} failed: {error}"));
                    }
                }
                drop(done);
            });
        }
    }

    /// Logs a failure that names no peer, rate-limited.
    fn log_accept(&self, error: &str) {
        let decision = self
            .accept_log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .note(Instant::now(), Duration::ZERO);
        if let Some(suppressed) = decision {
            tracing::warn!(suppressed, "federation listener: {error}");
        }
    }
}

/// Rate-limits the warnings of one peer's failing link: the first failure is logged, then one
/// per back-off step change, then one per [`FAILURE_LOG_INTERVAL`] (with how many were not).
#[derive(Default)]
struct FailureLog {
    last: Option<(Instant, Duration)>,
    suppressed: u64,
}

impl FailureLog {
    /// Whether to log this failure (`Some(failures not logged since the last one)`).
    fn note(&mut self, now: Instant, step: Duration) -> Option<u64> {
        let log = match self.last {
            None => true,
            Some((at, last_step)) => {
                last_step != step || now.duration_since(at) >= FAILURE_LOG_INTERVAL
            }
        };
        if log {
            self.last = Some((now, step));
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }

    /// A link came up: the next failure is logged.
    fn reset(&mut self) {
        self.last = None;
        self.suppressed = 0;
    }
}

/// `delay` scaled by a random factor in [0.5, 1.0), so peers that fail together do not
/// retry together.
fn jitter(delay: Duration) -> Duration {
    let random = getrandom::u32().unwrap_or(u32::MAX / 2);
    let factor = 0.5 + f64::from(random) / (f64::from(u32::MAX) * 2.0);
    delay.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_logged_on_step_changes_and_once_a_minute() {
        let mut log = FailureLog::default();
        let start = Instant::now();
        let step = Duration::from_secs(30);
        assert_eq!(log.note(start, Duration::from_millis(200)), Some(0));
        assert_eq!(log.note(start, Duration::from_millis(200)), None);
        assert_eq!(log.note(start, step), Some(1), "a new back-off step");
        assert_eq!(log.note(start + Duration::from_secs(30), step), None);
        assert_eq!(log.note(start + Duration::from_secs(59), step), None);
        assert_eq!(
            log.note(start + FAILURE_LOG_INTERVAL, step),
            Some(2),
            "once a minute, with the count"
        );
        log.reset();
        assert_eq!(log.note(start + FAILURE_LOG_INTERVAL, step), Some(0));
    }

    #[test]
    fn jitter_stays_between_half_and_the_whole_delay() {
        let delay = Duration::from_secs(10);
        for _ in 0..100 {
            let waited = jitter(delay);
            assert!(waited >= delay / 2 && waited <= delay, "{waited:?}");
        }
    }
}
