//! The link manager: keeps one authenticated link per peer hub and runs the link protocol over
//! it in both directions (ours: ship records for the peer from a cursor into our log; theirs:
//! import the peer's records, ack after our commit).
//!
//! The manager knows nothing of the hub's core or state. Everything it needs from the hub goes
//! through [`LinkHost`]: reading our committed records for a peer, importing a peer's records
//! (durable before the call returns), and reporting acks and link status. The hub implements it
//! over its core and log; tests implement it in memory, so the protocol is tested on its own.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::config::{FederationConfig, HubId};
use super::noise::{self, LINK_IO_DEADLINE, PinStore, StaticKey};
use super::wire::ShippedRecord;

mod manager;
mod session;

pub use manager::{Bound, bind, run};
pub use session::LinkEnd;

/// Runs the link protocol on one authenticated `link` (from [`noise::dial`] or
/// [`noise::accept`] over any byte stream) until it ends or `stop` flips; says how it ended.
///
/// This is the manager's per-link session without the manager around it: no dialing, no
/// back-off, no one-link-per-peer rule and no [`LinkHost::report`] (the caller knows whether
/// the link is up). Tests drive it over in-memory streams.
pub async fn run_one<H, S>(
    host: &H,
    link: noise::Link<S>,
    timing: &LinkTiming,
    stop: watch::Receiver<bool>,
) -> LinkEnd
where
    H: LinkHost,
    S: AsyncRead + AsyncWrite + Send,
{
    let shutdown = stop.clone();
    session::run(host, link, timing, stop, shutdown).await
}

/// How often a link sends its hub's presence at most: a burst of sessions coming and going
/// costs one frame a second per link, however large the burst.
pub const PRESENCE_INTERVAL_MIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Records shipped on one link and not yet acked, at most: eight full batches keep a link busy
/// across a slow network while a lost link resends at most this many, and the shipper holds no
/// more than this in memory (the cursor into the log is the queue).
pub const LINK_WINDOW_RECORDS: usize = 8192;

/// Payload bytes shipped on one link and not yet acked: a batch is shipped only while fewer
/// are in flight, so the window passes this by at most one batch's last record
/// ([`super::wire::SHIPPED_PAYLOAD_BYTES_MAX`]).
pub const LINK_WINDOW_BYTES: usize = 8 << 20;

/// Payload bytes of one batch, about (at least one record): a quarter of a link frame
/// ([`super::noise::LINK_FRAME_BYTES_MAX`]), so a batch plus one maximal record always fits.
pub const LINK_BATCH_BYTES: usize = 1 << 20;

/// A heartbeat is sent after this long without any other frame: a third of
/// [`LINK_IO_DEADLINE`], so two lost heartbeats do not end a healthy link.
pub const LINK_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// First retry after a failed dial or link: short, so a brief network blip costs little.
pub const DIAL_BACKOFF_MIN: Duration = Duration::from_millis(200);

/// Longest wait between dials (doubling from [`DIAL_BACKOFF_MIN`]): a peer down for hours
/// costs one connection attempt per half minute.
pub const DIAL_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Wait after a refused link (log id or CRC mismatch, a pin mismatch): a retry does not fix
/// those until someone acts, so retries are slow, but a fixed peer links again.
pub const LINK_REFUSED_BACKOFF: Duration = Duration::from_secs(60);

/// A link that stayed up this long resets the back-off to [`DIAL_BACKOFF_MIN`]; a link that
/// drops sooner keeps doubling it, so a flapping peer is not redialed at full speed.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);

/// Time to connect TCP to a peer: the handshake has its own ([`super::noise::HANDSHAKE_TIMEOUT`]).
pub const DIAL_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes the listener runs at once: more connections are closed at once, so a flood of
/// strangers costs a bounded amount of memory and CPU (at most [`super::config::PEERS_MAX`]
/// real peers dial, rarely together).
pub const HANDSHAKES_IN_FLIGHT_MAX: usize = 32;

/// A failing link is warned about at most once per this long (and on each back-off step), so
/// a flapping peer does not flood the log.
pub const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Pause after the listener fails to accept (out of file descriptors): retrying at once would
/// spin.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What the link manager runs with.
#[derive(Clone, Debug)]
pub struct LinkSetup {
    /// The checked `federation.toml`.
    pub config: Arc<FederationConfig>,
    /// This hub's static key pair.
    pub key: Arc<StaticKey>,
    /// Pinned peer keys.
    pub pins: Arc<PinStore>,
    /// Heartbeat, idle deadline and back-off ([`LinkTiming::default`] in the hub).
    pub timing: LinkTiming,
}

impl LinkSetup {
    /// A setup with the default timing.
    pub fn new(config: Arc<FederationConfig>, key: Arc<StaticKey>, pins: Arc<PinStore>) -> Self {
        LinkSetup {
            config,
            key,
            pins,
            timing: LinkTiming::default(),
        }
    }
}

/// The link manager's timers; the defaults are the constants, tests shorten them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkTiming {
    /// [`LINK_HEARTBEAT_INTERVAL`].
    pub heartbeat: Duration,
    /// A link ends when nothing arrived for this long ([`LINK_IO_DEADLINE`]).
    pub idle: Duration,
    /// [`DIAL_BACKOFF_MIN`].
    pub backoff_min: Duration,
    /// [`DIAL_BACKOFF_MAX`].
    pub backoff_max: Duration,
    /// [`LINK_REFUSED_BACKOFF`].
    pub refused_backoff: Duration,
    /// [`BACKOFF_RESET_AFTER`].
    pub backoff_reset_after: Duration,
}

impl Default for LinkTiming {
    fn default() -> Self {
        LinkTiming {
            heartbeat: LINK_HEARTBEAT_INTERVAL,
            idle: LINK_IO_DEADLINE,
            backoff_min: DIAL_BACKOFF_MIN,
            backoff_max: DIAL_BACKOFF_MAX,
            refused_backoff: LINK_REFUSED_BACKOFF,
            backoff_reset_after: BACKOFF_RESET_AFTER,
        }
    }
}

const _: () = assert!(
    LINK_BATCH_BYTES + super::wire::SHIPPED_PAYLOAD_BYTES_MAX < super::noise::LINK_FRAME_BYTES_MAX
);
const _: () = assert!(super::wire::BATCH_RECORDS_MAX <= LINK_WINDOW_RECORDS);

/// What this hub last imported from a peer: the link resumes after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkProgress {
    /// The peer's log id when we imported from it.
    pub log_id: u128,
    /// The peer's offset of the last record imported (or skipped as not for us).
    pub offset: u64,
    /// That record's [`super::wire::record_crc`].
    pub crc: u32,
}

/// Our committed records for one peer, as [`LinkHost::records_for`] found them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// The records, in offset order, with `previous` set to [`super::wire::NO_PREVIOUS`]: the
    /// link sets the chain.
    pub records: Vec<ShippedRecord>,
    /// The first offset the scan did not look at: the next scan starts there.
    pub next: u64,
}

/// How a link to one peer stands, for `relay status` and `relay doctor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkStatus {
    /// Dialing or waiting for the peer to dial.
    Connecting,
    /// Linked and running.
    Up,
    /// The last attempt or the link failed; a retry follows after a back-off.
    Down {
        /// Why, in one line.
        error: String,
    },
    /// The link stopped for a reason a retry does not fix (a log id or CRC mismatch, records
    /// the peer needs that are gone). Retries go on, slowly, so a fixed peer links again.
    Refused {
        /// Why, in one line.
        reason: String,
    },
}

/// An error of the host behind the link.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The records asked for are no longer in our log (retention, or never existed).
    #[error("records from offset {from} are not in this hub's log (it starts at {first})")]
    Gone {
        /// The first offset asked for.
        from: u64,
        /// The first offset the log has.
        first: u64,
    },
    /// The peer's records cannot be imported: the link stops loudly.
    #[error("import refused: {0}")]
    Refused(String),
    /// The hub is stopping or its storage failed.
    #[error("the hub is not available: {0}")]
    Unavailable(String),
}

/// What the link manager needs from the hub. Every method is cheap to call concurrently from
/// one task per peer.
pub trait LinkHost: Clone + Send + Sync + 'static {
    /// This hub's log id (sent in `Resume` checks and `Batch` frames).
    fn log_id(&self) -> u128;

    /// The first offset of our log not yet committed: records below it may be shipped. The
    /// value only grows; a shipper waits on it when it has caught up.
    fn committed(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Up to `max_records` records (and about `max_bytes` of payload, at least one record) of
    /// our log at or after `from` and below [`Self::committed`] that are for `peer`.
    fn records_for(
        &self,
        peer: &HubId,
        from: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> impl Future<Output = Result<Scan, HostError>> + Send;

    /// The [`super::wire::record_crc`] of our record at `offset`, to check a peer's `Resume`;
    /// [`HostError::Gone`] if the log no longer has it.
    fn record_crc(&self, offset: u64) -> impl Future<Output = Result<u32, HostError>> + Send;

    /// What we last imported from `peer` (`None`: nothing yet).
    fn progress(
        &self,
        peer: &HubId,
    ) -> impl Future<Output = Result<Option<LinkProgress>, HostError>> + Send;

    /// Imports `records` of `peer`'s log `log_id`, in order. Records at or below the progress
    /// are dropped (a resend); the rest are committed before this returns. Returns the new
    /// progress, whose `offset + 1` is what the link acks.
    fn import(
        &self,
        peer: &HubId,
        log_id: u128,
        records: Vec<ShippedRecord>,
    ) -> impl Future<Output = Result<LinkProgress, HostError>> + Send;

    /// `peer` has committed our records below `durable` (retention may now drop them).
    fn acknowledged(&self, peer: &HubId, durable: u64);

    /// The link to `peer` changed state.
    fn report(&self, peer: &HubId, status: LinkStatus);

    /// Follows this hub's peers online now (local names, sorted): sent to each linked hub when
    /// its link comes up and when the set changes.
    fn presence(&self) -> tokio::sync::watch::Receiver<Vec<String>>;

    /// `peer`'s peers online now, as its last `Presence` said (empty when its link is down).
    fn peer_presence(&self, peer: &HubId, online: Vec<String>);
}
