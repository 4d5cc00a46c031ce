//! The state's byte budget: what each stored entry is charged, and the full recount.
//!
//! [`State::bytes`] is kept by `apply`: it charges an entry its text plus [`STATE_ENTRY_BYTES`]
//! when it stores it and refunds the same when it drops it (read mail aging out, a group ring's eviction, an
//! identity forgotten, an idempotency key forgotten, a group deleted). The charge of an entry
//! depends only on the entry, so [`State::recount_bytes`] recomputes the counter from scratch;
//! the property tests check the two agree after every step, and a snapshot whose counter
//! disagrees with its recount is refused.
//!
//! What is charged and why is documented at [`STATE_BYTES_MAX`].

use crate::event::ClientKind;
use crate::limits::{STATE_ACK_BYTES, STATE_BYTES_MAX, STATE_ENTRY_BYTES};
use crate::state::{
    CompletedRequest, Group, GroupMessage, GroupRoute, Identity, Mailbox, State, StoredMessage,
};

/// The byte budget of one state: [`STATE_BYTES_MAX`] unless a test asked for another with
/// [`State::with_budget`]. Not archived: a decoded snapshot gets the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Budget(pub(crate) u64);

impl Default for Budget {
    fn default() -> Budget {
        Budget(STATE_BYTES_MAX)
    }
}

fn len(text: &str) -> u64 {
    text.len() as u64
}

fn opt(text: &Option<String>) -> u64 {
    text.as_deref().map_or(0, len)
}

fn opt_str(text: Option<&str>) -> u64 {
    text.map_or(0, len)
}

/// An identity with its mailbox's fixed part: its names, the current one twice (the name table's
/// key), working directory, branch and client name.
pub(crate) fn identity_bytes(identity: &Identity) -> u64 {
    let client = match &identity.client {
        ClientKind::Other(name) => len(name),
        _ => 0,
    };
    let names: u64 = identity.names().map(len).sum();
    STATE_ENTRY_BYTES
        + names
        + len(identity.name())
        + len(&identity.cwd)
        + opt(&identity.git_branch)
        + client
}

/// A mailbox message: every text field, its id twice (the message index's key). The same
/// whether the message stores its id and name or derives and shares them (see
/// [`StoredMessage`]): the charge is a bound on what a message may hold, not a measure of it.
pub(crate) fn message_bytes(message: &StoredMessage) -> u64 {
    STATE_ENTRY_BYTES
        + 2 * message.id_len() as u64
        + len(message.from_name())
        + len(message.body())
        + opt_str(message.reply_to())
        + opt_str(message.ask_id())
        + opt_str(message.broadcast_id())
        + opt_str(message.thread())
        + opt_str(message.timed_out_ask())
        + opt_str(message.reported())
}

/// One named sender of a mailbox's refusal record.
pub(crate) fn refusal_bytes(sender: &str) -> u64 {
    STATE_ENTRY_BYTES + len(sender)
}

/// Every kept message and named refusal of a mailbox.
pub(crate) fn mailbox_bytes(mailbox: &Mailbox) -> u64 {
    let messages: u64 = mailbox.messages().map(message_bytes).sum();
    let refusals: u64 = mailbox
        .refusals()
        .senders()
        .map(|(sender, _)| refusal_bytes(sender))
        .sum();
    messages + refusals
}

/// A group message: its text fields, and the acknowledgements its members may send.
pub(crate) fn group_message_bytes(message: &GroupMessage) -> u64 {
    STATE_ENTRY_BYTES
        + opt(&message.id)
        + opt(&message.author_name)
        + len(&message.body)
        + opt(&message.reply_to)
        + STATE_ACK_BYTES * message.ack_slots()
}

/// A group without members or messages: its name twice (the group table's key).
pub(crate) fn group_entry_bytes(name: &str) -> u64 {
    STATE_ENTRY_BYTES + 2 * len(name)
}

/// One group member (its cursor and acknowledgement map; the acknowledgements are reserved by
/// the messages, see [`group_message_bytes`]).
pub(crate) const MEMBER_BYTES: u64 = STATE_ENTRY_BYTES;

/// A whole group: entry, members and kept messages.
pub(crate) fn group_bytes(group: &Group) -> u64 {
    let messages: u64 = group.messages().map(group_message_bytes).sum();
    group_entry_bytes(group.name()) + MEMBER_BYTES * group.member_count() as u64 + messages
}

/// A group's route to peer hubs: its name and an entry per hub.
pub(crate) fn route_bytes(group: &str, route: &GroupRoute) -> u64 {
    STATE_ENTRY_BYTES
        + len(group)
        + route
            .hubs
            .iter()
            .map(|hub| ROUTE_HUB_BYTES + len(hub))
            .sum::<u64>()
}

/// One hub in a group's route.
pub(crate) const ROUTE_HUB_BYTES: u64 = 32;

/// An idempotency key with its result.
pub(crate) fn completed_bytes(completed: &CompletedRequest) -> u64 {
    STATE_ENTRY_BYTES + len(&completed.key) + len(&completed.result)
}

impl State {
    /// An empty state with its own byte budget instead of [`STATE_BYTES_MAX`], so a test can
    /// reach the budget without gigabytes. The hub always uses [`State::new`].
    pub fn with_budget(max_bytes: u64) -> State {
        State {
            budget: Budget(max_bytes),
            ..State::default()
        }
    }

    /// Bytes the state holds by the budget's count (see [`STATE_BYTES_MAX`]); kept by `apply`
    /// at O(1) per stored or dropped entry. It may pass [`State::budget`] only by what events
    /// that are never refused stored.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The byte budget `apply` enforces: [`STATE_BYTES_MAX`] (or a test's
    /// [`State::with_budget`]).
    pub fn budget(&self) -> u64 {
        self.budget.0
    }

    /// [`State::bytes`] recounted from every entry, O(state): what the counter must equal.
    pub fn recount_bytes(&self) -> u64 {
        let identities: u64 = self.identities.values().map(identity_bytes).sum();
        let mailboxes: u64 = self.mailboxes.values().map(mailbox_bytes).sum();
        let groups: u64 = self.groups.values().map(group_bytes).sum();
        let completed: u64 = self.completed.values().flatten().map(completed_bytes).sum();
        let routes: u64 = self
            .federation
            .group_routes
            .iter()
            .map(|(group, route)| route_bytes(group, route))
            .sum();
        identities + mailboxes + groups + completed + routes
    }

    pub(crate) fn charge(&mut self, bytes: u64) {
        self.bytes = self.bytes.saturating_add(bytes);
    }

    pub(crate) fn refund(&mut self, bytes: u64) {
        debug_assert!(
            bytes <= self.bytes,
            "invariant: a refund was charged before"
        );
        self.bytes = self.bytes.saturating_sub(bytes);
    }
}
