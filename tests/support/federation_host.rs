//! An in-memory [`LinkHost`] for the federation link tests: a fixed log of records (each for
//! the peer or not), a committed offset the test advances, imports that are durable when they
//! return, and what the link did to it (imports, acks, the most records in flight, status
//! reports, the peer's presence) for the test to check.
//!
//! Shared by `tests/federation_manager.rs` (the manager over TCP) and `tests/federation_sim.rs`
//! (one link at a time over simulated streams), each through
//! `#[path = "support/federation_host.rs"] mod federation_host;`.

#![allow(dead_code, reason = "each suite uses part of the host")]

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use relay::federation::config::HubId;
use relay::federation::link::{HostError, LinkHost, LinkProgress, LinkStatus, Scan};
use relay::federation::wire::{self, NO_PREVIOUS, ShippedRecord};
use tokio::sync::watch;

/// Records one `records_for` call looks at, at most: a scan advances past records that are not
/// for the peer without returning any.
pub(crate) const SCAN_RECORDS_MAX: u64 = 4096;

/// An in-memory hub: cheap to clone, every clone the same hub.
#[derive(Clone)]
pub(crate) struct FakeHost(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) log_id: u128,
    /// Our log: offset = index; `true` when the record is for the peer.
    pub(crate) own: Vec<(ShippedRecord, bool)>,
    pub(crate) committed: watch::Sender<u64>,
    /// This host's peers online, as `presence` follows them.
    pub(crate) presence: watch::Sender<Vec<String>>,
    pub(crate) import_delay: Duration,
    /// The peer's host, when the test set one ([`FakeHost::audit_acks_against`]): an ack
    /// from it must not pass what it imported from us.
    pub(crate) peer: OnceLock<Weak<Inner>>,
    pub(crate) state: Mutex<State>,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) imported: Vec<ShippedRecord>,
    pub(crate) progress: Option<LinkProgress>,
    pub(crate) acked: u64,
    /// The highest offset `records_for` handed out, on any link.
    pub(crate) handed_out: Option<u64>,
    /// The most records for the peer handed out and not acked at any time (on one link, once
    /// [`FakeHost::new_link`] marks where links start).
    pub(crate) max_in_flight: usize,
    /// Set by [`FakeHost::new_link`]: the next `records_for` is the new link's first scan, and
    /// its `from` is where that link's window starts.
    pub(crate) link_fresh: bool,
    /// Where the current link's window starts (its first scan's `from`).
    pub(crate) link_base: Option<u64>,
    /// Records handed out on the current link (since [`FakeHost::new_link`]).
    pub(crate) link_handed_out: usize,
    /// Records an import was offered at or below the progress (a resend the link should have
    /// dropped itself).
    pub(crate) offered_again: usize,
    /// What broke a rule the link must keep (an ack past what was shipped or imported, an ack
    /// going back), in the order seen.
    pub(crate) violations: Vec<String>,
    pub(crate) reports: Vec<LinkStatus>,
    /// Every `Presence` the peer sent, in order.
    pub(crate) peer_presence: Vec<Vec<String>>,
}

impl FakeHost {
    /// A host whose log has `count` records, those with `offset % skip == skip - 1` not for
    /// the peer (`skip` 0: all for it), the first `committed` committed.
    pub(crate) fn new(name: &str, log_id: u128, count: u64, skip: u64, committed: u64) -> FakeHost {
        let records = (0..count).map(|offset| {
            let payload = format!("{name}-{offset}").into_bytes();
            (payload, skip == 0 || offset % skip != skip - 1)
        });
        FakeHost::from_records(log_id, records, committed)
    }

    /// A host whose log is `records` (payload, whether it is for the peer) at offsets 0, 1, …,
    /// the first `committed` committed.
    pub(crate) fn from_records(
        log_id: u128,
        records: impl IntoIterator<Item = (Vec<u8>, bool)>,
        committed: u64,
    ) -> FakeHost {
        let own = records
            .into_iter()
            .zip(0u64..)
            .map(|((payload, for_peer), offset)| {
                let record = ShippedRecord {
                    offset,
                    previous: NO_PREVIOUS,
                    timestamp_us: 1_000 + offset,
                    kind: 1,
                    schema_version: 1,
                    origin_hub: log_id,
                    crc: wire::record_crc(offset, 1_000 + offset, 1, 1, log_id, &payload),
                    payload,
                };
                (record, for_peer)
            })
            .collect();
        FakeHost(Arc::new(Inner {
            log_id,
            own,
            committed: watch::channel(committed).0,
            presence: watch::channel(vec!["local-peer".to_owned()]).0,
            import_delay: Duration::ZERO,
            peer: OnceLock::new(),
            state: Mutex::new(State::default()),
        }))
    }

    pub(crate) fn with_import_delay(self, delay: Duration) -> FakeHost {
        let inner = Arc::into_inner(self.0).expect("not shared yet");
        FakeHost(Arc::new(Inner {
            import_delay: delay,
            ..inner
        }))
    }

    pub(crate) fn with_progress(self, progress: LinkProgress) -> FakeHost {
        self.state().progress = Some(progress);
        self
    }

    /// From now on, an ack from `peer` past what `peer` imported from us is a violation.
    pub(crate) fn audit_acks_against(&self, peer: &FakeHost) {
        let _ = self.0.peer.set(Arc::downgrade(&peer.0));
    }

    /// A new link starts: the window is counted from its first scan.
    pub(crate) fn new_link(&self) {
        let mut state = self.state();
        state.link_fresh = true;
        state.link_base = None;
        state.link_handed_out = 0;
    }

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().expect("state")
    }

    pub(crate) fn commit(&self, committed: u64) {
        self.0.committed.send_replace(committed);
    }

    pub(crate) fn committed_now(&self) -> u64 {
        *self.0.committed.borrow()
    }

    /// Our records for the peer below `committed`, as the peer should import them.
    pub(crate) fn expected_below(&self, committed: u64) -> Vec<(u64, Vec<u8>)> {
        self.0
            .own
            .iter()
            .filter(|(record, for_peer)| *for_peer && record.offset < committed)
            .map(|(record, _)| (record.offset, record.payload.clone()))
            .collect()
    }

    pub(crate) fn imported(&self) -> Vec<(u64, Vec<u8>)> {
        self.state()
            .imported
            .iter()
            .map(|record| (record.offset, record.payload.clone()))
            .collect()
    }

    pub(crate) fn reports(&self) -> Vec<LinkStatus> {
        self.state().reports.clone()
    }

    pub(crate) fn refused(&self) -> Option<String> {
        self.reports().into_iter().find_map(|status| match status {
            LinkStatus::Refused { reason } => Some(reason),
            _ => None,
        })
    }

    pub(crate) fn downs(&self) -> usize {
        self.reports()
            .iter()
            .filter(|status| matches!(status, LinkStatus::Down { .. }))
            .count()
    }
}

impl LinkHost for FakeHost {
    fn log_id(&self) -> u128 {
        self.0.log_id
    }

    fn committed(&self) -> watch::Receiver<u64> {
        self.0.committed.subscribe()
    }

    async fn records_for(
        &self,
        _peer: &HubId,
        from: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Scan, HostError> {
        let end = (*self.0.committed.borrow()).min(self.0.own.len() as u64);
        let mut records: Vec<ShippedRecord> = Vec::new();
        let mut bytes = 0;
        let mut offset = from;
        while offset < end && offset < from + SCAN_RECORDS_MAX {
            let (record, for_peer) = &self.0.own[offset as usize];
            if *for_peer {
                if !records.is_empty()
                    && (records.len() >= max_records || bytes + record.payload.len() > max_bytes)
                {
                    break;
                }
                bytes += record.payload.len();
                records.push(record.clone());
            }
            offset += 1;
        }
        let mut state = self.state();
        if state.link_fresh {
            state.link_fresh = false;
            state.link_base = Some(from);
        }
        if let Some(last) = records.last() {
            state.handed_out = state.handed_out.max(Some(last.offset));
            state.link_handed_out += records.len();
            // Acks from an earlier link may lag behind where this link started.
            let base = state
                .link_base
                .map_or(state.acked, |base| base.max(state.acked));
            let in_flight = self
                .0
                .own
                .get(base as usize..=last.offset as usize)
                .unwrap_or_default()
                .iter()
                .filter(|(_, for_peer)| *for_peer)
                .count();
            state.max_in_flight = state.max_in_flight.max(in_flight);
        }
        Ok(Scan {
            records,
            next: offset,
        })
    }

    async fn record_crc(&self, offset: u64) -> Result<u32, HostError> {
        self.0
            .own
            .get(offset as usize)
            .map(|(record, _)| record.crc)
            .ok_or(HostError::Gone {
                from: offset,
                first: 0,
            })
    }

    async fn progress(&self, _peer: &HubId) -> Result<Option<LinkProgress>, HostError> {
        Ok(self.state().progress)
    }

    async fn import(
        &self,
        _peer: &HubId,
        log_id: u128,
        records: Vec<ShippedRecord>,
    ) -> Result<LinkProgress, HostError> {
        if !self.0.import_delay.is_zero() {
            tokio::time::sleep(self.0.import_delay).await;
        }
        let mut state = self.state();
        for record in records {
            if state
                .progress
                .is_some_and(|progress| record.offset <= progress.offset)
            {
                state.offered_again += 1;
                continue;
            }
            state.progress = Some(LinkProgress {
                log_id,
                offset: record.offset,
                crc: record.crc,
            });
            state.imported.push(record);
        }
        state
            .progress
            .ok_or_else(|| HostError::Refused("nothing imported".to_owned()))
    }

    fn acknowledged(&self, _peer: &HubId, durable: u64) {
        // The peer's lock is taken and released before ours: never both at once.
        let peer_holds = self
            .0
            .peer
            .get()
            .and_then(Weak::upgrade)
            .map(|peer| FakeHost(peer).state().progress.map_or(0, |p| p.offset + 1));
        let mut state = self.state();
        assert!(durable >= state.acked, "acks only grow");
        let shipped = state.handed_out.map_or(0, |last| last + 1);
        if durable > shipped {
            let violation =
                format!("an ack of {durable}, but only records below {shipped} were handed out");
            state.violations.push(violation);
        }
        if let Some(holds) = peer_holds
            && durable > holds
        {
            let violation =
                format!("an ack of {durable}, but the peer holds only records below {holds}");
            state.violations.push(violation);
        }
        state.acked = durable;
    }

    fn report(&self, _peer: &HubId, status: LinkStatus) {
        self.state().reports.push(status);
    }

    fn presence(&self) -> watch::Receiver<Vec<String>> {
        self.0.presence.subscribe()
    }

    fn peer_presence(&self, _peer: &HubId, online: Vec<String>) {
        self.state().peer_presence.push(online);
    }
}
