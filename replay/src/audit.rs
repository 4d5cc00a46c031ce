//! Audit queries behind `relay replay` and `relay log`: which events concern a peer or a
//! group, and a user-facing summary of a [`State`] (names instead of internal ids).
//!
//! Pure functions of events and state, like the rest of this crate.

use serde::Serialize;

use crate::event::{Event, EventKind};
use crate::state::{IdentityId, State};

/// Which events to show.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events that name this peer (as sender, recipient, member, actor, …).
    pub peer: Option<String>,
    /// Only events about this group.
    pub group: Option<String>,
    /// Only events of these kinds (all when empty).
    pub kinds: Vec<EventKind>,
}

impl EventFilter {
    /// Whether `event` passes every condition of the filter.
    pub fn matches(&self, event: &Event) -> bool {
        if !self.kinds.is_empty() && !self.kinds.contains(&event.kind()) {
            return false;
        }
        let peer_matches = self
            .peer
            .as_deref()
            .is_none_or(|peer| names_of(event).contains(&peer));
        let group_matches = self
            .group
            .as_deref()
            .is_none_or(|group| group_of(event) == Some(group));
        peer_matches && group_matches
    }
}

/// The peer names an event mentions.
pub fn names_of(event: &Event) -> Vec<&str> {
    match event {
        Event::IdentityRegistered(event) => vec![&event.name],
        Event::IdentityRenamed(event) => vec![&event.old_name, &event.new_name],
        Event::IdentityLeft(event) => vec![&event.name],
        Event::IdentityForgotten(event) => vec![&event.name],
        Event::MessageSent(event) => vec![&event.from, &event.to],
        Event::AskSent(event) => vec![&event.from, &event.to],
        Event::ReplySent(event) => vec![&event.from, &event.to],
        Event::MessagePushed(event) => vec![&event.recipient],
        Event::MailboxCursorAdvanced(event) => vec![&event.recipient],
        Event::MessageRead(event) => vec![&event.recipient],
        Event::MessageStatusReported(event) => vec![&event.recipient],
        Event::MessageRefused(event) => vec![&event.from, &event.to],
        Event::RequestCompleted(event) => vec![&event.caller],
        Event::GroupMessageAcknowledged(event) => vec![&event.member],
        Event::AskDeadlineSet(_) | Event::AskExpired(_) => Vec::new(),
        Event::RoomJoined(event) => vec![&event.name],
        Event::RoomLeft(event) => vec![&event.name],
        Event::RoomMessageSent(event) => vec![&event.from],
        Event::GroupCreated(event) => vec![&event.admin],
        Event::GroupMemberInvited(event) => vec![&event.actor, &event.member],
        Event::GroupMemberRemoved(event) => vec![&event.actor, &event.member],
        Event::GroupLeft(event) => vec![&event.member],
        Event::GroupMessageSent(event) => vec![&event.from],
        Event::GroupCursorAdvanced(event) => vec![&event.member],
        Event::GroupDeleted(event) => vec![&event.actor],
        Event::Imported(_)
        | Event::LinkImported(_)
        | Event::LinkAcknowledged(_)
        | Event::PeerAcknowledged(_)
        | Event::HubStarted(_)
        | Event::BatchStarted(_)
        | Event::BatchEnded(_) => Vec::new(),
    }
    .into_iter()
    .map(String::as_str)
    .collect()
}

/// The group an event is about, if any.
pub fn group_of(event: &Event) -> Option<&str> {
    match event {
        Event::GroupCreated(event) => Some(&event.group),
        Event::GroupMemberInvited(event) => Some(&event.group),
        Event::GroupMemberRemoved(event) => Some(&event.group),
        Event::GroupLeft(event) => Some(&event.group),
        Event::GroupMessageSent(event) => Some(&event.group),
        Event::GroupCursorAdvanced(event) => Some(&event.group),
        Event::GroupDeleted(event) => Some(&event.group),
        Event::GroupMessageAcknowledged(event) => Some(&event.group),
        _ => None,
    }
}

/// A user-facing picture of a [`State`]; its JSON form is documented in `docs/operations.md`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StateSummary {
    /// One entry per identity, by id (registration order).
    pub mailboxes: Vec<MailboxSummary>,
    /// One entry per group, by name.
    pub groups: Vec<GroupSummary>,
    /// Asks still waiting for a reply.
    pub pending_asks: Vec<AskSummary>,
    /// Rooms with members.
    pub rooms: Vec<RoomSummary>,
    /// Bytes the state holds by its budget's count ([`State::bytes`]).
    pub state_bytes: u64,
    /// The budget `apply` holds them to ([`STATE_BYTES_MAX`](crate::limits::STATE_BYTES_MAX)).
    pub state_budget: u64,
}

/// One identity and its mailbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MailboxSummary {
    /// Current name.
    pub name: String,
    /// Earlier names, oldest first.
    pub former_names: Vec<String>,
    /// Messages kept in the ring.
    pub messages: usize,
    /// Messages not yet read (queued, or delivered to a session but not known to be read).
    pub unread: usize,
    /// Last time the identity was seen, microseconds since the epoch.
    pub last_seen_us: u64,
    /// Whether its last session left.
    pub left: bool,
}

/// One group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupSummary {
    /// Group name.
    pub name: String,
    /// Admin's current name.
    pub admin: String,
    /// Messages kept in the ring.
    pub messages: usize,
    /// Members with their unread counts.
    pub members: Vec<MemberSummary>,
}

/// One group member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberSummary {
    /// Current name.
    pub name: String,
    /// Group messages after its cursor, not its own.
    pub unread: usize,
}

/// One pending ask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AskSummary {
    /// The ask id.
    pub ask_id: String,
    /// Who asked.
    pub asker: String,
    /// Who is asked.
    pub target: String,
    /// The broadcast it belongs to, if any.
    pub broadcast_id: Option<String>,
}

/// One room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RoomSummary {
    /// Room name.
    pub name: String,
    /// Members' current names.
    pub members: Vec<String>,
}

/// Builds the summary of `state`.
pub fn summarize(state: &State) -> StateSummary {
    let name = |id: IdentityId| {
        state.identity(id).map_or_else(
            || format!("#{}", id.0),
            |identity| identity.name().to_owned(),
        )
    };
    let mailboxes = state
        .identities()
        .map(|identity| {
            let mailbox = state.mailbox(identity.id);
            let mut former_names: Vec<String> = identity.names().map(str::to_owned).collect();
            former_names.retain(|former| former != identity.name());
            MailboxSummary {
                name: identity.name().to_owned(),
                former_names,
                messages: mailbox.map_or(0, |mailbox| mailbox.len()),
                unread: mailbox.map_or(0, |mailbox| mailbox.unread_count()),
                last_seen_us: identity.last_seen_us,
                left: identity.has_left,
            }
        })
        .collect();
    let groups = state
        .groups()
        .map(|group| GroupSummary {
            name: group.name().to_owned(),
            admin: name(group.admin()),
            messages: group.messages().len(),
            members: group
                .members()
                .map(|member| MemberSummary {
                    name: name(member),
                    unread: group.unread_for(member),
                })
                .collect(),
        })
        .collect();
    let pending_asks = state
        .asks()
        .all_pending()
        .map(|ask| AskSummary {
            ask_id: ask.ask_id.clone(),
            asker: name(ask.asker),
            target: name(ask.target),
            broadcast_id: ask.broadcast_id.clone(),
        })
        .collect();
    let rooms = state
        .rooms()
        .map(|(room_name, room)| RoomSummary {
            name: room_name.to_owned(),
            members: room.members().map(name).collect(),
        })
        .collect();
    StateSummary {
        mailboxes,
        groups,
        pending_asks,
        rooms,
        state_bytes: state.bytes(),
        state_budget: state.budget(),
    }
}
