//! A mailbox: the ring of the last [`MAILBOX_MESSAGES_MAX`] direct messages of one identity.
//!
//! Each message has a sequence number (1, 2, 3, … per mailbox, never reused) and a delivery
//! state: queued (stored), delivered (the recipient's session took it) or read (the model has
//! it). The read cursor is the highest sequence up to which everything is read; a message after
//! it may be read already (handed to the model by a push). [`Mailbox::unread`] offers every
//! message that is not read, delivered ones included (a session that took a message cannot
//! always know whether its model saw it), and [`Mailbox::all`] returns everything, so anything
//! pushed can be pulled again.

use rkyv::{Archive, Deserialize, Serialize};
use std::collections::VecDeque;

use crate::limits::MAILBOX_MESSAGES_MAX;
use crate::state::IdentityId;

/// Where a stored message is in its delivery life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Archive, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Stored, not yet taken by the recipient's session: the inbox offers it as new.
    Queued,
    /// The recipient's session acknowledged taking it, on a path that may not reach the model:
    /// the inbox offers it once more, marked as pushed.
    Delivered,
    /// The model has it: at or below the read cursor, or read on its own.
    Read,
}

impl DeliveryState {
    /// The snake_case name, as in JSON: `queued`, `delivered` or `read`.
    pub fn name(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Read => "read",
        }
    }
}

/// A direct message, ask or reply as stored in the recipient's mailbox.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Archive, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Position in this mailbox: 1 for the first message ever received, then +1 each.
    pub sequence: u64,
    /// Hub-chosen message id.
    pub id: String,
    /// The sender.
    pub from: IdentityId,
    /// The sender's name when it sent.
    pub from_name: String,
    /// The text.
    pub body: String,
    /// The message or ask id this one answers.
    pub reply_to: Option<String>,
    /// Set when this message is an ask: the id a reply names.
    pub ask_id: Option<String>,
    /// Set when this ask is part of a broadcast.
    pub broadcast_id: Option<String>,
    /// A thread label.
    pub thread: Option<String>,
    /// Whether the sender marked it time-sensitive.
    pub urgent: bool,
    /// Whether it was sent as a reply (to the ask or message `reply_to` names), rather than
    /// as a message that merely threads under `reply_to`.
    pub is_reply: bool,
    /// Record timestamp, in microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// Offset of the record that stored it.
    pub offset: u64,
    /// Delivery state.
    pub state: DeliveryState,
    /// For a reply: it answers an ask that had already timed out.
    pub late: bool,
    /// For a `timeout` message from the hub: the ask that ended unanswered.
    pub timed_out_ask: Option<String>,
    /// The last status the recipient's client reported (`held`, `refused`, `expired`).
    pub reported: Option<String>,
}

/// One identity's mailbox.
#[derive(
    Clone, Debug, PartialEq, Eq, Default, serde::Serialize, Archive, Serialize, Deserialize,
)]
pub struct Mailbox {
    /// Oldest first, consecutive sequences. Invariant: `messages.len() <= MAILBOX_MESSAGES_MAX`.
    messages: VecDeque<StoredMessage>,
    /// Sequence of the newest message ever stored (0 before the first).
    last_sequence: u64,
    /// Highest sequence read. Invariant: `cursor <= last_sequence`.
    cursor: u64,
}

impl Mailbox {
    /// The read cursor: every message with a sequence up to it is read.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Sequence of the newest message ever stored (0 before the first).
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    /// Messages kept, oldest first (at most [`MAILBOX_MESSAGES_MAX`]).
    pub fn messages(&self) -> impl DoubleEndedIterator<Item = &StoredMessage> + ExactSizeIterator {
        self.messages.iter()
    }

    /// Number of messages kept.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether no message is kept.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Messages that are not read (queued or delivered).
    pub fn unread_count(&self) -> usize {
        self.messages
            .iter()
            .filter(|message| Self::is_new(self.cursor, message))
            .count()
    }

    /// Whether any message is new.
    pub fn has_unread(&self) -> bool {
        self.messages
            .iter()
            .any(|message| Self::is_new(self.cursor, message))
    }

    /// Unread messages (after the cursor and not read: queued or delivered), oldest first, at
    /// most `limit`, starting after the message `since_id` when it is given and still kept (from
    /// the oldest otherwise).
    pub fn unread(&self, since_id: Option<&str>, limit: usize) -> Vec<&StoredMessage> {
        self.after(since_id)
            .filter(|message| Self::is_new(self.cursor, message))
            .take(limit)
            .collect()
    }

    /// Every kept message whatever its state (read again on request), oldest first, at most
    /// `limit`, starting after `since_id` like [`Mailbox::unread`].
    pub fn all(&self, since_id: Option<&str>, limit: usize) -> Vec<&StoredMessage> {
        self.after(since_id).take(limit).collect()
    }

    /// The kept message with this id.
    pub fn get(&self, id: &str) -> Option<&StoredMessage> {
        self.messages.iter().find(|message| message.id == id)
    }

    /// The kept message with this sequence.
    pub fn get_by_sequence(&self, sequence: u64) -> Option<&StoredMessage> {
        let index = self.index_of(sequence)?;
        self.messages.get(index)
    }

    /// Stores `message` with the next sequence and returns the message evicted to make room.
    pub(crate) fn push(&mut self, mut message: StoredMessage) -> Option<StoredMessage> {
        self.last_sequence += 1;
        message.sequence = self.last_sequence;
        self.messages.push_back(message);
        if self.messages.len() > MAILBOX_MESSAGES_MAX {
            self.messages.pop_front()
        } else {
            None
        }
    }

    /// Marks a queued message delivered; a delivered or read one stays as it is (the
    /// acknowledgement can race with a read of the inbox).
    pub(crate) fn mark_delivered(&mut self, sequence: u64) {
        if let Some(message) = self.message_mut(sequence)
            && message.state == DeliveryState::Queued
        {
            message.state = DeliveryState::Delivered;
        }
    }

    /// Marks one message read, wherever the cursor is.
    pub(crate) fn mark_read(&mut self, sequence: u64) {
        if let Some(message) = self.message_mut(sequence) {
            message.state = DeliveryState::Read;
        }
    }

    /// Makes a message unread again (its client refused it or let it expire), unless the
    /// cursor has passed it: a pull read it meanwhile.
    pub(crate) fn mark_returned(&mut self, sequence: u64) {
        let cursor = self.cursor;
        if let Some(message) = self.message_mut(sequence)
            && message.sequence > cursor
        {
            message.state = DeliveryState::Queued;
        }
    }

    /// Records what the recipient's client reported of a message.
    pub(crate) fn note_reported(&mut self, sequence: u64, status: &str) {
        if let Some(message) = self.message_mut(sequence) {
            message.reported = Some(status.to_owned());
        }
    }

    fn message_mut(&mut self, sequence: u64) -> Option<&mut StoredMessage> {
        let index = self.index_of(sequence)?;
        self.messages.get_mut(index)
    }

    /// Moves the cursor to `up_to_sequence` and marks every message up to it read.
    pub(crate) fn advance_cursor(&mut self, up_to_sequence: u64) {
        assert!(
            up_to_sequence <= self.last_sequence,
            "invariant: cursor past the newest message"
        );
        // Messages up to the old cursor are read already: start after it.
        let first_unread = self.messages.front().map_or(0, |first| {
            usize::try_from((self.cursor + 1).saturating_sub(first.sequence)).unwrap_or(usize::MAX)
        });
        self.cursor = up_to_sequence;
        let start = first_unread.min(self.messages.len());
        for message in self
            .messages
            .range_mut(start..)
            .take_while(|m| m.sequence <= up_to_sequence)
        {
            message.state = DeliveryState::Read;
        }
    }

    fn is_new(cursor: u64, message: &StoredMessage) -> bool {
        message.sequence > cursor && message.state != DeliveryState::Read
    }

    fn after(&self, since_id: Option<&str>) -> impl Iterator<Item = &StoredMessage> {
        let start = since_id
            .and_then(|id| self.messages.iter().position(|message| message.id == id))
            .map_or(0, |index| index + 1);
        self.messages.iter().skip(start)
    }

    fn index_of(&self, sequence: u64) -> Option<usize> {
        let first = self.messages.front()?.sequence;
        let index = usize::try_from(sequence.checked_sub(first)?).ok()?;
        (index < self.messages.len()).then_some(index)
    }
}
