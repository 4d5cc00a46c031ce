//! The link manager: keeps one authenticated link per peer hub and runs the link protocol over
//! it in both directions (ours: ship records for the peer from a cursor into our log; theirs:
//! import the peer's records, ack after our commit).
//!
//! The manager knows nothing of the hub's core or state. Everything it needs from the hub goes
//! through [`LinkHost`]: reading our committed records for a peer, importing a peer's records
//! (durable before the call returns), and reporting acks and link status. The hub implements it
//! over its core and log; tests implement it in memory, so the protocol is tested on its own.

use std::future::Future;

use super::config::HubId;
use super::wire::ShippedRecord;

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
}
