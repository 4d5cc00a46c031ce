//! A persistent group: admin, members with their cursors, and the ring of the last
//! [`GROUP_MESSAGES_MAX`] messages.
//!
//! Group messages are numbered 1, 2, 3, … per group. A member remembers the last sequence that
//! existed when it joined and sees only later messages, so a member added later never sees
//! earlier history. Its cursor is the highest sequence it has read; its unread count is the
//! number of kept messages after the cursor that it did not write itself and that its session
//! did not hand to its model (a push acknowledged as read marks one message read ahead of the
//! cursor).
//!
//! When the ring drops its oldest message, every member that could see it and had not read it
//! counts it as *missed*; the member's next cursor advance (a `group_history` read, which shows
//! the count) clears it.

use rkyv::{Archive, Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

use crate::limits::GROUP_MESSAGES_MAX;
use crate::state::IdentityId;

/// One member's view of a group.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Archive, Serialize, Deserialize)]
pub struct Membership {
    /// Last group sequence that existed when the member joined; it sees only later messages.
    pub joined_after_sequence: u64,
    /// Highest sequence read. Invariant: `joined_after_sequence <= cursor`.
    pub cursor: u64,
    /// Record timestamp of the join, in microseconds since the Unix epoch.
    pub joined_us: u64,
    /// Messages after the cursor the member's session acknowledged: sequence → whether the
    /// model has it (read) or only the session took it (delivered). Invariant: every key is
    /// above `cursor` and names a kept message.
    pub acknowledged: BTreeMap<u64, bool>,
    /// Messages this member could see and had not read that fell out of the ring (past
    /// [`GROUP_MESSAGES_MAX`]) since its cursor last advanced.
    pub missed: u64,
}

impl Membership {
    /// Whether the message with this sequence is read by this member.
    pub fn is_read(&self, sequence: u64) -> bool {
        sequence <= self.cursor || self.acknowledged.get(&sequence) == Some(&true)
    }

    /// Whether this member's session took the message but its model may not have it.
    pub fn is_delivered_only(&self, sequence: u64) -> bool {
        sequence > self.cursor && self.acknowledged.get(&sequence) == Some(&false)
    }
}

/// A message in a group's ring: written by a member, or by the hub (a system message such as
/// "X was removed: reason").
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Archive, Serialize, Deserialize)]
pub struct GroupMessage {
    /// Position in the group: 1 for the first message ever, then +1 each.
    pub sequence: u64,
    /// Hub-chosen message id; `None` for system messages.
    pub id: Option<String>,
    /// The author; `None` for system messages.
    pub author: Option<IdentityId>,
    /// The author's name when it wrote; `None` for system messages.
    pub author_name: Option<String>,
    /// The text.
    pub body: String,
    /// The message id this one answers.
    pub reply_to: Option<String>,
    /// Whether the author marked it time-sensitive.
    pub urgent: bool,
    /// Record timestamp, in microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// Offset of the record that stored it.
    pub offset: u64,
    /// Members when it was stored: the most acknowledgements it can collect (a member that
    /// joins later never sees it), reserved in the state's byte budget until it leaves the ring.
    #[serde(skip)]
    pub(crate) ack_slots: u64,
}

impl GroupMessage {
    /// Members when it was stored, who alone may acknowledge it.
    pub fn ack_slots(&self) -> u64 {
        self.ack_slots
    }

    /// Whether the hub wrote it (a removal, a departure, an admin hand-over).
    pub fn is_system(&self) -> bool {
        self.author.is_none()
    }
}

/// One group.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Archive, Serialize, Deserialize)]
pub struct Group {
    /// Unique group name.
    name: String,
    /// Invariant: the admin is a member.
    admin: IdentityId,
    /// Invariant: never empty (a group whose last member leaves is deleted),
    /// `members.len() <= GROUP_MEMBERS_MAX`.
    members: BTreeMap<IdentityId, Membership>,
    /// Oldest first, consecutive sequences. Invariant: `messages.len() <= GROUP_MESSAGES_MAX`.
    messages: VecDeque<GroupMessage>,
    /// Sequence of the newest message ever stored (0 before the first).
    last_sequence: u64,
    /// Record timestamp of the creation, in microseconds since the Unix epoch.
    created_us: u64,
}

impl Group {
    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The admin: the creator, or the member it passed to when the admin left.
    pub fn admin(&self) -> IdentityId {
        self.admin
    }

    /// Record timestamp of the creation, in microseconds.
    pub fn created_us(&self) -> u64 {
        self.created_us
    }

    /// Sequence of the newest message ever stored (0 before the first).
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    /// Member ids in ascending order.
    pub fn members(&self) -> impl Iterator<Item = IdentityId> + '_ {
        self.members.keys().copied()
    }

    /// Number of members.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Whether `identity` is a member.
    pub fn is_member(&self, identity: IdentityId) -> bool {
        self.members.contains_key(&identity)
    }

    /// `identity`'s join point and cursor, when it is a member.
    pub fn membership(&self, identity: IdentityId) -> Option<&Membership> {
        self.members.get(&identity)
    }

    /// Every kept message, oldest first, whoever may see it.
    pub fn messages(&self) -> impl DoubleEndedIterator<Item = &GroupMessage> + ExactSizeIterator {
        self.messages.iter()
    }

    /// Kept messages after `member`'s cursor that it did not write; 0 for a non-member.
    pub fn unread_for(&self, member: IdentityId) -> usize {
        let Some(membership) = self.members.get(&member) else {
            return 0;
        };
        self.messages
            .iter()
            .filter(|message| !membership.is_read(message.sequence))
            .filter(|message| message.author != Some(member))
            .count()
    }

    /// Messages `member` could see and had not read that fell out of the ring since its cursor
    /// last advanced; 0 for a non-member.
    pub fn missed_for(&self, member: IdentityId) -> u64 {
        self.members
            .get(&member)
            .map_or(0, |membership| membership.missed)
    }

    /// Kept messages `member` has not read and did not write, oldest first, at most `limit`.
    pub fn unread_messages_for(&self, member: IdentityId, limit: usize) -> Vec<&GroupMessage> {
        let Some(membership) = self.members.get(&member) else {
            return Vec::new();
        };
        self.messages
            .iter()
            .filter(|message| !membership.is_read(message.sequence))
            .filter(|message| message.author != Some(member))
            .take(limit)
            .collect()
    }

    /// The kept message with this id.
    pub fn message_by_id(&self, id: &str) -> Option<&GroupMessage> {
        self.messages
            .iter()
            .find(|message| message.id.as_deref() == Some(id))
    }

    /// Kept messages after `member`'s cursor (its own included, for context), oldest first, at
    /// most `limit`: what a history read returns before the cursor advances. Empty for a
    /// non-member.
    pub fn history_for(&self, member: IdentityId, limit: usize) -> Vec<&GroupMessage> {
        let Some(membership) = self.members.get(&member) else {
            return Vec::new();
        };
        self.messages
            .iter()
            .filter(|message| message.sequence > membership.cursor)
            .take(limit)
            .collect()
    }

    /// Every kept message `member` may see (those after its join), oldest first, at most
    /// `limit` of the newest: read again on request. Empty for a non-member.
    pub fn visible_for(&self, member: IdentityId, limit: usize) -> Vec<&GroupMessage> {
        let Some(membership) = self.members.get(&member) else {
            return Vec::new();
        };
        let visible: Vec<&GroupMessage> = self
            .messages
            .iter()
            .filter(|message| message.sequence > membership.joined_after_sequence)
            .collect();
        let skip = visible.len().saturating_sub(limit);
        visible.into_iter().skip(skip).collect()
    }

    pub(crate) fn new(name: String, admin: IdentityId, timestamp_us: u64) -> Group {
        let membership = Membership {
            joined_after_sequence: 0,
            cursor: 0,
            joined_us: timestamp_us,
            acknowledged: BTreeMap::new(),
            missed: 0,
        };
        Group {
            name,
            admin,
            members: BTreeMap::from([(admin, membership)]),
            messages: VecDeque::new(),
            last_sequence: 0,
            created_us: timestamp_us,
        }
    }

    pub(crate) fn add_member(&mut self, member: IdentityId, timestamp_us: u64) {
        let membership = Membership {
            joined_after_sequence: self.last_sequence,
            cursor: self.last_sequence,
            joined_us: timestamp_us,
            acknowledged: BTreeMap::new(),
            missed: 0,
        };
        self.members.insert(member, membership);
    }

    /// Removes `member`; when it was the admin, the earliest-joined remaining member becomes
    /// admin and is returned, preferring one `preferred` accepts (a peer of this hub over one of
    /// another). The caller deletes the group when no member remains.
    pub(crate) fn remove_member(
        &mut self,
        member: IdentityId,
        preferred: impl Fn(IdentityId) -> bool,
    ) -> Option<IdentityId> {
        self.members.remove(&member);
        if member != self.admin {
            return None;
        }
        let successor = self
            .members
            .iter()
            .min_by_key(|(id, membership)| {
                (!preferred(**id), membership.joined_after_sequence, **id)
            })
            .map(|(id, _)| *id)?;
        self.admin = successor;
        Some(successor)
    }

    /// Stores `message` with the next sequence, its acknowledgement slots set to the members
    /// now; returns the message the ring dropped to stay within [`GROUP_MESSAGES_MAX`].
    pub(crate) fn push(&mut self, mut message: GroupMessage) -> Option<GroupMessage> {
        self.last_sequence += 1;
        message.sequence = self.last_sequence;
        message.ack_slots = self.members.len() as u64;
        self.messages.push_back(message);
        if self.messages.len() > GROUP_MESSAGES_MAX
            && let Some(evicted) = self.messages.pop_front()
        {
            for (member, membership) in &mut self.members {
                let was_unread = evicted.sequence > membership.joined_after_sequence
                    && !membership.is_read(evicted.sequence)
                    && evicted.author != Some(*member);
                if was_unread {
                    membership.missed = membership.missed.saturating_add(1);
                }
                membership.acknowledged.remove(&evicted.sequence);
            }
            return Some(evicted);
        }
        None
    }

    /// Whether the ring is full: the next [`Group::push`] drops the oldest message.
    pub(crate) fn ring_full(&self) -> bool {
        self.messages.len() >= GROUP_MESSAGES_MAX
    }

    pub(crate) fn set_cursor(&mut self, member: IdentityId, up_to_sequence: u64) {
        if let Some(membership) = self.members.get_mut(&member) {
            membership.cursor = up_to_sequence;
            membership
                .acknowledged
                .retain(|sequence, _| *sequence > up_to_sequence);
            membership.missed = 0;
        }
    }

    /// Records that `member`'s session took the message `sequence` (`read`: and handed it to
    /// the model). A read is never downgraded to delivered; at or below the cursor it is read
    /// already.
    pub(crate) fn acknowledge(&mut self, member: IdentityId, sequence: u64, read: bool) {
        if let Some(membership) = self.members.get_mut(&member)
            && sequence > membership.cursor
        {
            let entry = membership.acknowledged.entry(sequence).or_insert(false);
            *entry |= read;
        }
    }
}
