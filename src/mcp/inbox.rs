//! What `relay_inbox` returns: the hub's unread mailbox messages merged with the posts the
//! hub does not store (room posts, hub notices) that this process received.
//!
//! The hub's mailbox knows what a push became (`ack`): a message the model has (a native push)
//! is read and never offered again; one only handed to a channel notification is offered once
//! more, marked `pushed`. Room posts and notices are not stored by the hub, so this process
//! keeps those it could not hand to the model for certain in [`Unreturned`] (marked `pushed`
//! when a channel notification carried them) until `relay_inbox` returns them. The list is
//! bounded by [`UNRETURNED_MESSAGES_MAX`]; this file is pure (no I/O, no locks).

use std::collections::VecDeque;

use serde::Serialize;

use crate::protocol::{InboxMessage, MessageKind, MessagePush, RefusedMessages};

use super::limits::UNRETURNED_MESSAGES_MAX;

/// One message as `relay_inbox` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InboxEntry {
    /// Its id (what `relay_reply` and `since_id` take).
    pub msg_id: String,
    /// `direct`, `ask`, `reply`, `broadcast`, `room` or `system`.
    pub kind: MessageKind,
    /// The sender.
    pub from: String,
    /// The text.
    pub text: String,
    /// The message or ask id it answers, or `null`.
    pub reply_to: Option<String>,
    /// For an ask or a broadcast: the id to reply to; else `null`.
    pub ask_id: Option<String>,
    /// When the hub stored it, in microseconds since the Unix epoch.
    pub ts: u64,
    /// Whether the sender marked it time-sensitive.
    pub urgent: bool,
    /// For a room post: the room.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// For a notice about a group: the group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Whether it was pushed to this session before (its model may have seen it): a repeat,
    /// not news.
    pub pushed: bool,
    /// For a reply: it came after its ask had timed out.
    pub late: bool,
}

/// A page of `relay_inbox`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxPage {
    /// Oldest first.
    pub messages: Vec<InboxEntry>,
    /// Messages left for the next call.
    pub remaining: u32,
    /// Messages the hub refused because this session's mailbox was full, by sender (as the
    /// hub's `inbox` listed them); empty when none.
    pub refused: Vec<RefusedMessages>,
}

/// Messages received by this process and not yet returned by `relay_inbox`, oldest first.
/// Invariant: `entries.len() <= UNRETURNED_MESSAGES_MAX` and no two entries share a `msg_id`.
#[derive(Debug, Default)]
pub struct Unreturned {
    entries: VecDeque<InboxEntry>,
    forgotten_count: u64,
}

impl Unreturned {
    /// Whether `relay_inbox` must keep this push itself: the hub does not store room posts
    /// and hub notices; everything else comes back from the hub's mailbox or group history.
    pub fn keeps(push: &MessagePush) -> bool {
        matches!(push.kind, MessageKind::Room | MessageKind::System)
    }

    /// Keeps a room post or hub notice for `relay_inbox` (`pushed`: a channel notification
    /// carried it already). Returns `false` when the oldest entry had to be forgotten.
    pub fn record(&mut self, push: &MessagePush, pushed: bool) -> bool {
        if !Self::keeps(push) {
            return true;
        }
        let mut entry = InboxEntry::from(push);
        entry.pushed = pushed;
        self.insert(entry)
    }

    /// The next page: the kept messages merged with `pulled` (what the hub's `inbox` just
    /// returned, now marked read there), oldest first, at most `limit`. What does not fit is
    /// kept for the next call; `hub_remaining` is what the hub still holds.
    pub fn next_page(
        &mut self,
        pulled: Vec<InboxMessage>,
        limit: usize,
        hub_remaining: u32,
    ) -> InboxPage {
        for message in pulled {
            self.insert(InboxEntry::from(message));
        }
        let mut entries: Vec<InboxEntry> = self.entries.drain(..).collect();
        entries.sort_by_key(|entry| entry.ts);
        let kept = entries.split_off(limit.min(entries.len()));
        self.entries = kept.into();
        let remaining = u32::try_from(self.entries.len())
            .unwrap_or(u32::MAX)
            .saturating_add(hub_remaining);
        InboxPage {
            messages: entries,
            remaining,
            refused: Vec::new(),
        }
    }

    /// Marks a kept entry as pushed by a channel notification.
    pub fn mark_pushed(&mut self, msg_id: &str) {
        if let Some(entry) = self.entries.iter_mut().find(|entry| entry.msg_id == msg_id) {
            entry.pushed = true;
        }
    }

    /// How many messages are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many messages were forgotten because the list was full.
    pub fn forgotten_count(&self) -> u64 {
        self.forgotten_count
    }

    fn insert(&mut self, entry: InboxEntry) -> bool {
        if self.entries.iter().any(|kept| kept.msg_id == entry.msg_id) {
            return true;
        }
        let mut room_left = true;
        if self.entries.len() >= UNRETURNED_MESSAGES_MAX {
            self.entries.pop_front();
            self.forgotten_count += 1;
            room_left = false;
        }
        self.entries.push_back(entry);
        room_left
    }
}

impl From<&MessagePush> for InboxEntry {
    fn from(push: &MessagePush) -> Self {
        InboxEntry {
            msg_id: push.msg_id.clone(),
            kind: push.kind,
            from: push.from.clone(),
            text: push.text.clone(),
            reply_to: push.reply_to.clone(),
            ask_id: push.ask_id.clone(),
            ts: push.ts,
            urgent: push.urgent,
            room: push.room.clone(),
            group: push.group.clone(),
            pushed: false,
            late: push.late,
        }
    }
}

impl From<InboxMessage> for InboxEntry {
    fn from(message: InboxMessage) -> Self {
        InboxEntry {
            msg_id: message.msg_id,
            kind: message.kind,
            from: message.from,
            text: message.text,
            reply_to: message.reply_to,
            ask_id: message.ask_id,
            ts: message.ts,
            urgent: message.urgent,
            room: None,
            group: None,
            pushed: message.pushed,
            late: message.late,
        }
    }
}

impl InboxEntry {
    /// The entry as the push it stands for, to frame its text the way pushes are framed.
    pub fn as_push(&self) -> MessagePush {
        MessagePush {
            kind: self.kind,
            from: self.from.clone(),
            text: self.text.clone(),
            msg_id: self.msg_id.clone(),
            ask_id: self.ask_id.clone(),
            reply_to: self.reply_to.clone(),
            room: self.room.clone(),
            group: self.group.clone(),
            urgent: self.urgent,
            ts: self.ts,
            origin_hub: None,
            late: self.late,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(kind: MessageKind, msg_id: &str, ts: u64) -> MessagePush {
        MessagePush {
            kind,
            from: "alice".to_owned(),
            text: format!("text of {msg_id}"),
            msg_id: msg_id.to_owned(),
            ask_id: None,
            reply_to: None,
            room: None,
            group: None,
            urgent: false,
            ts,
            origin_hub: None,
            late: false,
        }
    }

    fn pulled(msg_id: &str, ts: u64) -> InboxMessage {
        InboxMessage {
            msg_id: msg_id.to_owned(),
            kind: MessageKind::Direct,
            from: "bob".to_owned(),
            text: "queued".to_owned(),
            reply_to: None,
            ask_id: None,
            ts,
            urgent: false,
            pushed: false,
            late: false,
        }
    }

    fn ids(page: &InboxPage) -> Vec<&str> {
        page.messages
            .iter()
            .map(|entry| entry.msg_id.as_str())
            .collect()
    }

    #[test]
    fn posts_and_pulled_messages_come_back_once_oldest_first() {
        let mut unreturned = Unreturned::default();
        unreturned.record(&push(MessageKind::System, "s-5", 50), true);
        unreturned.record(&push(MessageKind::Room, "r-6", 60), false);
        let page = unreturned.next_page(vec![pulled("m-1", 10)], 20, 0);
        assert_eq!(ids(&page), ["m-1", "s-5", "r-6"]);
        assert!(page.messages[1].pushed && !page.messages[2].pushed);
        assert_eq!(page.remaining, 0);
        let again = unreturned.next_page(Vec::new(), 20, 0);
        assert!(again.messages.is_empty());
    }

    #[test]
    fn stored_kinds_are_left_to_the_hub() {
        let mut unreturned = Unreturned::default();
        for kind in [
            MessageKind::Group,
            MessageKind::Direct,
            MessageKind::Ask,
            MessageKind::Timeout,
        ] {
            unreturned.record(&push(kind, "x-1", 1), true);
        }
        assert!(unreturned.is_empty());
    }

    #[test]
    fn what_does_not_fit_the_limit_is_kept_and_counted_as_remaining() {
        let mut unreturned = Unreturned::default();
        for index in 0..5 {
            unreturned.record(
                &push(MessageKind::Room, &format!("r-{index}"), index),
                false,
            );
        }
        let page = unreturned.next_page(vec![pulled("m-9", 9)], 2, 3);
        assert_eq!(ids(&page), ["r-0", "r-1"]);
        assert_eq!(page.remaining, 4 + 3);
        let rest = unreturned.next_page(Vec::new(), 20, 0);
        assert_eq!(ids(&rest), ["r-2", "r-3", "r-4", "m-9"]);
    }

    #[test]
    fn a_full_list_forgets_its_oldest_message_and_one_more_fits() {
        let mut unreturned = Unreturned::default();
        for index in 0..UNRETURNED_MESSAGES_MAX as u64 {
            assert!(unreturned.record(
                &push(MessageKind::Room, &format!("r-{index}"), index),
                false
            ));
        }
        assert_eq!(unreturned.len(), UNRETURNED_MESSAGES_MAX);
        assert!(!unreturned.record(&push(MessageKind::Room, "r-last", u64::MAX), false));
        assert_eq!(unreturned.len(), UNRETURNED_MESSAGES_MAX);
        assert_eq!(unreturned.forgotten_count(), 1);
        let page = unreturned.next_page(Vec::new(), 1, 0);
        assert_eq!(ids(&page), ["r-1"]);
    }
}
