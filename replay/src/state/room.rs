//! An ephemeral room: a set of members, no history.
//!
//! Rooms exist while they have members. Membership is presence: it is empty after a hub start
//! (`hub_started`, [`State::clear_presence`](crate::State::clear_presence)), while a replay up to
//! an offset shows the rooms as they were then.

use rkyv::{Archive, Deserialize, Serialize};
use std::collections::BTreeSet;

use crate::state::IdentityId;

/// One room.
#[derive(
    Clone, Debug, PartialEq, Eq, Default, serde::Serialize, Archive, Serialize, Deserialize,
)]
pub struct Room {
    /// Invariant: never empty while the room is in the state,
    /// `members.len() <= ROOM_MEMBERS_MAX`.
    members: BTreeSet<IdentityId>,
}

impl Room {
    /// Member ids in ascending order.
    pub fn members(&self) -> impl Iterator<Item = IdentityId> + '_ {
        self.members.iter().copied()
    }

    /// Number of members.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Whether `identity` is a member.
    pub fn is_member(&self, identity: IdentityId) -> bool {
        self.members.contains(&identity)
    }

    pub(crate) fn insert(&mut self, identity: IdentityId) {
        self.members.insert(identity);
    }

    /// Removes `identity`; returns whether the room is now empty.
    pub(crate) fn remove(&mut self, identity: IdentityId) -> bool {
        self.members.remove(&identity);
        self.members.is_empty()
    }
}
