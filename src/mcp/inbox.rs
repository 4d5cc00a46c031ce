//! What `relay_inbox` returns: the messages this session received that the model has not been
//! given through `relay_inbox` yet, whether or not they were also pushed as channel
//! notifications.
//!
//! The hub's `inbox` alone cannot answer that: a push marks a message delivered, so the hub no
//! longer offers it as new, yet the MCP client may have dropped the notification (many clients
//! ignore custom notifications). So this process keeps every push it receives (except group
//! messages, which `relay_group_history` reads) in [`Unreturned`] until `relay_inbox` returns
//! it, and merges them with what the hub still holds as undelivered. The list is bounded by
//! [`UNRETURNED_MESSAGES_MAX`]; this file is pure (no I/O, no locks).

use std::collections::VecDeque;

use serde::Serialize;

use crate::protocol::{InboxMessage, MessageKind, MessagePush};

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
}

/// A page of `relay_inbox`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxPage {
    /// Oldest first.
    pub messages: Vec<InboxEntry>,
    /// Messages left for the next call.
    pub remaining: u32,
}

/// Messages received by this process and not yet returned by `relay_inbox`, oldest first.
/// Invariant: `entries.len() <= UNRETURNED_MESSAGES_MAX` and no two entries share a `msg_id`.
#[derive(Debug, Default)]
pub struct Unreturned {
    entries: VecDeque<InboxEntry>,
    forgotten_count: u64,
}

impl Unreturned {
    /// Keeps a push for `relay_inbox`, unless it is a group message (read with
    /// `relay_group_history`). Returns `false` when the oldest entry had to be forgotten.
    pub fn record(&mut self, push: &MessagePush) -> bool {
        if push.kind == MessageKind::Group {
            return true;
        }
        self.insert(InboxEntry::from(push))
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
        }
    }

    /// Forgets the messages the model has now been given another way (`since_id` re-reads).
    pub fn forget(&mut self, msg_ids: &[&str]) {
        self.entries
            .retain(|entry| !msg_ids.contains(&entry.msg_id.as_str()));
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
        }
    }

    fn ids(page: &InboxPage) -> Vec<&str> {
        page.messages
            .iter()
            .map(|entry| entry.msg_id.as_str())
            .collect()
    }

    #[test]
    fn pushed_and_pulled_messages_come_back_once_oldest_first() {
        let mut unreturned = Unreturned::default();
        unreturned.record(&push(MessageKind::Direct, "m-5", 50));
        unreturned.record(&push(MessageKind::Room, "r-6", 60));
        let page = unreturned.next_page(vec![pulled("m-1", 10)], 20, 0);
        assert_eq!(ids(&page), ["m-1", "m-5", "r-6"]);
        assert_eq!(page.remaining, 0);
        let again = unreturned.next_page(Vec::new(), 20, 0);
        assert!(again.messages.is_empty());
    }

    #[test]
    fn group_messages_are_left_to_group_history() {
        let mut unreturned = Unreturned::default();
        unreturned.record(&push(MessageKind::Group, "g-1", 1));
        assert!(unreturned.is_empty());
    }

    #[test]
    fn what_does_not_fit_the_limit_is_kept_and_counted_as_remaining() {
        let mut unreturned = Unreturned::default();
        for index in 0..5 {
            unreturned.record(&push(MessageKind::Direct, &format!("m-{index}"), index));
        }
        let page = unreturned.next_page(vec![pulled("m-9", 9)], 2, 3);
        assert_eq!(ids(&page), ["m-0", "m-1"]);
        assert_eq!(page.remaining, 4 + 3);
        let rest = unreturned.next_page(Vec::new(), 20, 0);
        assert_eq!(ids(&rest), ["m-2", "m-3", "m-4", "m-9"]);
    }

    #[test]
    fn a_full_list_forgets_its_oldest_message_and_one_more_fits() {
        let mut unreturned = Unreturned::default();
        for index in 0..UNRETURNED_MESSAGES_MAX as u64 {
            assert!(unreturned.record(&push(MessageKind::Direct, &format!("m-{index}"), index)));
        }
        assert_eq!(unreturned.len(), UNRETURNED_MESSAGES_MAX);
        assert!(!unreturned.record(&push(MessageKind::Direct, "m-last", u64::MAX)));
        assert_eq!(unreturned.len(), UNRETURNED_MESSAGES_MAX);
        assert_eq!(unreturned.forgotten_count(), 1);
        let page = unreturned.next_page(Vec::new(), 1, 0);
        assert_eq!(ids(&page), ["m-1"]);
    }

    #[test]
    fn a_message_seen_twice_is_kept_once() {
        let mut unreturned = Unreturned::default();
        unreturned.record(&push(MessageKind::Direct, "m-1", 1));
        let page = unreturned.next_page(vec![pulled("m-1", 1)], 20, 0);
        assert_eq!(ids(&page), ["m-1"]);
    }

    #[test]
    fn forgotten_ids_are_not_returned_again() {
        let mut unreturned = Unreturned::default();
        unreturned.record(&push(MessageKind::Direct, "m-1", 1));
        unreturned.record(&push(MessageKind::Direct, "m-2", 2));
        unreturned.forget(&["m-1"]);
        assert_eq!(ids(&unreturned.next_page(Vec::new(), 20, 0)), ["m-2"]);
    }
}
