//! What the core queues for a connection, and the byte budgets of those queues.
//!
//! Every push or receipt the core hands to a connection carries a [`QueueCharge`]: its size
//! counted against the session's budget ([`SESSION_QUEUED_BYTES_MAX`]) and the hub's
//! ([`QUEUED_BYTES_MAX`]) until the connection has written it (the charge is dropped after
//! the write, not when the item leaves the channel). A push that would pass either budget is
//! not queued: the message stays in the mailbox as `queued`, exactly as when the session's
//! frame queue is full, so a slow consumer costs the hub a bounded amount of memory and loses
//! nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::core::Outbound;
use super::limits::{QUEUED_BYTES_MAX, SESSION_QUEUED_BYTES_MAX};

/// Bytes counted per queued item beside its frame: the queue's slot, the charge, the slack of
/// the frame's buffer (at least [`crate::protocol::frame::ENCODE_CAPACITY_BYTES`] long).
pub const QUEUED_ITEM_OVERHEAD_BYTES: usize = 256;

/// One item on a connection's queue and the bytes it holds.
#[derive(Debug)]
pub struct Queued {
    /// What to do or write.
    pub outbound: Outbound,
    /// Its place in the budgets; `None` for control items (probe, close).
    pub charge: Option<QueueCharge>,
}

impl Queued {
    /// A control item, outside the byte budgets.
    pub fn control(outbound: Outbound) -> Self {
        Queued {
            outbound,
            charge: None,
        }
    }
}

/// Bytes held against a session's and the hub's queue budgets; given back on drop.
#[derive(Debug)]
pub struct QueueCharge {
    bytes: usize,
    session: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
}

impl Drop for QueueCharge {
    fn drop(&mut self) {
        self.session.fetch_sub(self.bytes, Ordering::AcqRel);
        self.total.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The bytes queued for one session and for the whole hub.
#[derive(Clone, Debug, Default)]
pub struct QueueBudget {
    /// Bytes queued for the session this budget belongs to.
    pub session: Arc<AtomicUsize>,
    /// Bytes queued for every session of the hub (shared).
    pub total: Arc<AtomicUsize>,
}

impl QueueBudget {
    /// A budget for a new session, sharing the hub's total.
    pub fn for_session(total: &Arc<AtomicUsize>) -> Self {
        QueueBudget {
            session: Arc::new(AtomicUsize::new(0)),
            total: total.clone(),
        }
    }

    /// Charges `bytes`, or `None` when the session's or the hub's budget would pass its bound.
    pub fn charge(&self, bytes: usize) -> Option<QueueCharge> {
        if !reserve(&self.session, bytes, SESSION_QUEUED_BYTES_MAX) {
            return None;
        }
        if !reserve(&self.total, bytes, QUEUED_BYTES_MAX) {
            self.session.fetch_sub(bytes, Ordering::AcqRel);
            return None;
        }
        Some(QueueCharge {
            bytes,
            session: self.session.clone(),
            total: self.total.clone(),
        })
    }
}

/// Adds `bytes` to `counter` unless that passes `bound`.
fn reserve(counter: &AtomicUsize, bytes: usize, bound: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
            queued.checked_add(bytes).filter(|sum| *sum <= bound)
        })
        .is_ok()
}

/// What `outbound` counts against the budgets: its encoded frame plus the item's overhead.
pub fn queued_bytes(outbound: &Outbound) -> usize {
    let frame = match outbound {
        Outbound::Frame(frame) => frame.len(),
        Outbound::Probe(_) | Outbound::Close => 0,
    };
    frame + QUEUED_ITEM_OVERHEAD_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_cannot_queue_past_its_budget_and_gets_it_back_when_written() {
        let total = Arc::new(AtomicUsize::new(0));
        let budget = QueueBudget::for_session(&total);
        let half = SESSION_QUEUED_BYTES_MAX / 2;
        let first = budget.charge(half).expect("half fits");
        let second = budget.charge(half).expect("the other half fits");
        assert!(budget.charge(1).is_none(), "one byte past the bound");
        drop(first);
        assert!(budget.charge(1).is_some(), "written bytes are given back");
        drop(second);
        assert_eq!(budget.session.load(Ordering::Acquire), 0);
        assert_eq!(total.load(Ordering::Acquire), 0);
    }

    #[test]
    fn the_hub_total_bounds_many_sessions() {
        let total = Arc::new(AtomicUsize::new(0));
        let mut held = Vec::new();
        let sessions = QUEUED_BYTES_MAX / SESSION_QUEUED_BYTES_MAX;
        for _ in 0..sessions {
            let budget = QueueBudget::for_session(&total);
            held.push(
                budget
                    .charge(SESSION_QUEUED_BYTES_MAX)
                    .expect("each session's first budget fits the total"),
            );
        }
        let one_more = QueueBudget::for_session(&total);
        assert!(one_more.charge(1).is_none(), "the total is spent");
        assert_eq!(one_more.session.load(Ordering::Acquire), 0);
        held.pop();
        assert!(one_more.charge(1).is_some());
    }
}
