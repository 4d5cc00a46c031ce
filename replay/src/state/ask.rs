//! Asks waiting for a reply, and the replies collected for each broadcast.
//!
//! A pending ask remembers its asker and target so a reply naming the ask id routes back; the
//! reply resolves it. A broadcast is the set of asks sharing a broadcast id; its replies are
//! listed in arrival order. Both are bounded: the oldest pending ask
//! ([`PENDING_ASKS_MAX`]) and the oldest broadcast ([`BROADCASTS_MAX`]) are dropped first.

use rkyv::{Archive, Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::limits::{BROADCAST_REPLIES_MAX, BROADCASTS_MAX, EXPIRED_ASKS_MAX, PENDING_ASKS_MAX};
use crate::state::IdentityId;

/// An ask waiting for its reply.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Archive, Serialize, Deserialize)]
pub struct PendingAsk {
    /// The ask id a reply names.
    pub ask_id: String,
    /// Message id of the question in the target's mailbox.
    pub message_id: String,
    /// Who asked; the reply goes to this identity.
    pub asker: IdentityId,
    /// Who was asked; only it may answer.
    pub target: IdentityId,
    /// The broadcast this ask belongs to.
    pub broadcast_id: Option<String>,
    /// Offset of the `ask_sent` record; orders eviction.
    pub offset: u64,
    /// Record timestamp, in microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// When the ask ends unanswered, in microseconds since the Unix epoch.
    pub deadline_us: Option<u64>,
}

/// One reply to a broadcast.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Archive, Serialize, Deserialize)]
pub struct BroadcastReply {
    /// The replier.
    pub from: IdentityId,
    /// The ask answered.
    pub ask_id: String,
    /// Message id of the reply in the asker's mailbox.
    pub message_id: String,
    /// Offset of the `reply_sent` record.
    pub offset: u64,
}

/// A broadcast: one asker, many asks, replies streaming back.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Archive, Serialize, Deserialize)]
pub struct Broadcast {
    /// The broadcast id shared by its asks.
    pub broadcast_id: String,
    /// Who broadcast.
    pub asker: IdentityId,
    /// Number of asks sent under this broadcast.
    pub ask_count: u64,
    /// Replies in arrival order. Invariant: `replies.len() <= BROADCAST_REPLIES_MAX`.
    replies: Vec<BroadcastReply>,
    /// Offset of the first `ask_sent` record; orders eviction.
    pub offset: u64,
}

impl Broadcast {
    /// Replies in arrival order (at most [`BROADCAST_REPLIES_MAX`]).
    pub fn replies(&self) -> &[BroadcastReply] {
        &self.replies
    }
}

/// Every pending ask and collected broadcast.
#[derive(
    Clone, Debug, PartialEq, Eq, Default, serde::Serialize, Archive, Serialize, Deserialize,
)]
pub struct Asks {
    /// By ask id. Invariant: `pending.len() <= PENDING_ASKS_MAX`, and `pending_by_offset` holds
    /// exactly one entry per pending ask.
    pending: BTreeMap<String, PendingAsk>,
    /// Ask ids by the offset that created them, oldest first, for eviction.
    pending_by_offset: BTreeMap<u64, String>,
    /// By broadcast id. Invariant: `broadcasts.len() <= BROADCASTS_MAX`, and
    /// `broadcasts_by_offset` holds exactly one entry per broadcast.
    broadcasts: BTreeMap<String, Broadcast>,
    /// Broadcast ids by the offset that created them, oldest first, for eviction.
    broadcasts_by_offset: BTreeMap<u64, String>,
    /// Deadlines of pending asks, soonest first. Invariant: one entry per pending ask with a
    /// deadline.
    deadlines: BTreeSet<(u64, String)>,
    /// Asks that timed out, by ask id. Invariant: `expired.len() <= EXPIRED_ASKS_MAX`, and
    /// `expired_by_offset` holds exactly one entry per expired ask.
    expired: BTreeMap<String, PendingAsk>,
    /// Expired ask ids by the offset that created them, oldest first, for eviction.
    expired_by_offset: BTreeMap<u64, String>,
}

impl Asks {
    /// The pending ask with this id.
    pub fn pending(&self, ask_id: &str) -> Option<&PendingAsk> {
        self.pending.get(ask_id)
    }

    /// Every pending ask, by ask id.
    pub fn all_pending(&self) -> impl Iterator<Item = &PendingAsk> {
        self.pending.values()
    }

    /// Number of pending asks.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// The soonest deadline of a pending ask, and that ask's id.
    pub fn next_deadline(&self) -> Option<(u64, &str)> {
        self.deadlines
            .first()
            .map(|(deadline_us, ask_id)| (*deadline_us, ask_id.as_str()))
    }

    /// The ask with this id that timed out without a reply (kept for late replies).
    pub fn expired(&self, ask_id: &str) -> Option<&PendingAsk> {
        self.expired.get(ask_id)
    }

    /// The broadcast with this id.
    pub fn broadcast(&self, broadcast_id: &str) -> Option<&Broadcast> {
        self.broadcasts.get(broadcast_id)
    }

    /// Number of broadcasts kept.
    pub fn broadcast_count(&self) -> usize {
        self.broadcasts.len()
    }

    pub(crate) fn insert(&mut self, ask: PendingAsk) {
        if let Some(broadcast_id) = &ask.broadcast_id {
            self.count_broadcast_ask(broadcast_id, ask.asker, ask.offset);
        }
        self.pending_by_offset
            .insert(ask.offset, ask.ask_id.clone());
        self.pending.insert(ask.ask_id.clone(), ask);
        while self.pending.len() > PENDING_ASKS_MAX {
            let Some((_, oldest)) = self.pending_by_offset.pop_first() else {
                break;
            };
            if let Some(evicted) = self.pending.remove(&oldest)
                && let Some(deadline_us) = evicted.deadline_us
            {
                self.deadlines.remove(&(deadline_us, evicted.ask_id));
            }
        }
    }

    /// Gives a pending ask its deadline (replacing an earlier one).
    pub(crate) fn set_deadline(&mut self, ask_id: &str, deadline_us: u64) {
        let Some(ask) = self.pending.get_mut(ask_id) else {
            return;
        };
        if let Some(previous) = ask.deadline_us.replace(deadline_us) {
            self.deadlines.remove(&(previous, ask_id.to_owned()));
        }
        self.deadlines.insert((deadline_us, ask_id.to_owned()));
    }

    /// Moves a pending ask to the expired asks; returns it.
    pub(crate) fn expire(&mut self, ask_id: &str) -> Option<PendingAsk> {
        let ask = self.take_pending(ask_id)?;
        self.expired_by_offset
            .insert(ask.offset, ask.ask_id.clone());
        self.expired.insert(ask.ask_id.clone(), ask.clone());
        while self.expired.len() > EXPIRED_ASKS_MAX {
            let Some((_, oldest)) = self.expired_by_offset.pop_first() else {
                break;
            };
            self.expired.remove(&oldest);
        }
        Some(ask)
    }

    /// Forgets an expired ask (its late reply came).
    pub(crate) fn forget_expired(&mut self, ask_id: &str) {
        if let Some(ask) = self.expired.remove(ask_id) {
            self.expired_by_offset.remove(&ask.offset);
        }
    }

    fn take_pending(&mut self, ask_id: &str) -> Option<PendingAsk> {
        let ask = self.pending.remove(ask_id)?;
        self.pending_by_offset.remove(&ask.offset);
        if let Some(deadline_us) = ask.deadline_us {
            self.deadlines.remove(&(deadline_us, ask.ask_id.clone()));
        }
        Some(ask)
    }

    /// Removes the pending ask and, when it belongs to a kept broadcast, lists the reply.
    pub(crate) fn resolve(&mut self, ask_id: &str, reply: BroadcastReply) {
        let Some(ask) = self.take_pending(ask_id) else {
            return;
        };
        if let Some(broadcast_id) = &ask.broadcast_id
            && let Some(broadcast) = self.broadcasts.get_mut(broadcast_id)
            && broadcast.replies.len() < BROADCAST_REPLIES_MAX
        {
            broadcast.replies.push(reply);
        }
    }

    fn count_broadcast_ask(&mut self, broadcast_id: &str, asker: IdentityId, offset: u64) {
        if let Some(broadcast) = self.broadcasts.get_mut(broadcast_id) {
            broadcast.ask_count += 1;
            return;
        }
        let broadcast = Broadcast {
            broadcast_id: broadcast_id.to_owned(),
            asker,
            ask_count: 1,
            replies: Vec::new(),
            offset,
        };
        self.broadcasts_by_offset
            .insert(offset, broadcast_id.to_owned());
        self.broadcasts.insert(broadcast_id.to_owned(), broadcast);
        while self.broadcasts.len() > BROADCASTS_MAX {
            let Some((_, oldest)) = self.broadcasts_by_offset.pop_first() else {
                break;
            };
            self.broadcasts.remove(&oldest);
        }
    }
}
