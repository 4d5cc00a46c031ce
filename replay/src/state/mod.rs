//! The projection: [`State`], everything the hub knows, as a pure fold of the log.
//!
//! `State` is only changed by [`apply`](crate::apply()) (and [`State::clear_presence`]); this module
//! offers the read side the hub and `relay replay` need. Every collection is ordered (`BTreeMap`,
//! `BTreeSet`, `VecDeque`), so equal logs give equal states, equal JSON and equal snapshot bytes.

use rkyv::{Archive, Deserialize, Serialize};

pub mod ask;
mod budget;
pub mod group;
mod growth;
pub mod identity;
mod index;
pub mod mailbox;
#[cfg(test)]
mod mix;
mod ordered;
mod ring;
pub mod room;
mod shared;

use std::collections::{BTreeMap, BTreeSet};

pub use ask::{Asks, Broadcast, BroadcastReply, PendingAsk};
pub use group::{Group, GroupMessage, Membership};
pub use identity::{Identity, IdentityId};
pub use mailbox::{DeliveryState, Mailbox, MailboxFull, RefusalCount, Refusals, StoredMessage};
pub use room::Room;
pub use shared::SharedName;

pub(crate) use index::MessageIndex;
use ordered::{Ordered, StringMap, serialize_ordered};

pub(crate) use budget::{
    MEMBER_BYTES, ROUTE_HUB_BYTES, completed_bytes, group_bytes, group_entry_bytes,
    group_message_bytes, identity_bytes, mailbox_bytes, message_bytes, refusal_bytes, route_bytes,
};

/// Where a stored direct message lives: whose mailbox, at which sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Archive, Serialize, Deserialize)]
pub struct MessageLocation {
    /// The mailbox owner.
    pub recipient: IdentityId,
    /// The message's sequence in that mailbox.
    pub sequence: u64,
}

/// Federation progress: what we imported from each hub and what each peer acknowledged.
#[derive(
    Clone, Debug, PartialEq, Eq, Default, serde::Serialize, Archive, Serialize, Deserialize,
)]
pub struct Federation {
    /// Highest origin offset imported, by origin hub. Invariant: at most `PEER_HUBS_MAX` hubs.
    pub(crate) imported: BTreeMap<u128, u64>,
    /// Highest offset of our log each peer acknowledged. Invariant: at most `PEER_HUBS_MAX` hubs.
    pub(crate) acknowledged: BTreeMap<u128, u64>,
    /// What each linked hub's records we imported, by its federation id (`link_imported`).
    /// Invariant: at most `PEER_HUBS_MAX` hubs.
    pub(crate) links: BTreeMap<String, LinkProgress>,
    /// The first offset of our log each linked hub has not committed (`link_acknowledged`).
    /// Invariant: at most `PEER_HUBS_MAX` hubs.
    pub(crate) link_acks: BTreeMap<String, u64>,
    /// Identities of other hubs' peers, by hub. Invariant: each count is the number of
    /// identities named `…@hub`, at most `REMOTE_IDENTITIES_PER_HUB_MAX`; no zero entries.
    pub(crate) remote_identities: BTreeMap<String, u32>,
    /// Where each group homed on this hub ships: the peer hubs that have had a member in it,
    /// by group name; kept past a deletion until those hubs acknowledged it.
    pub(crate) group_routes: BTreeMap<String, GroupRoute>,
}

/// The peer hubs a group homed on this hub ships its events to.
///
/// The set only grows while the group lives: a link that ships an old record after the
/// membership changed still reaches every hub that may need it (a hub that gets an event of a
/// group it holds no copy of ignores it). After the group is deleted the route stays, so the
/// deletion still ships, until every hub in it has acknowledged our log past the deletion.
#[derive(
    Clone, Debug, PartialEq, Eq, Default, serde::Serialize, Archive, Serialize, Deserialize,
)]
pub struct GroupRoute {
    /// Peer hubs that have had a member in the group.
    pub(crate) hubs: BTreeSet<String>,
    /// Offset of the record that deleted the group, once it is gone.
    pub(crate) deleted_at: Option<u64>,
}

impl GroupRoute {
    /// Peer hubs that have had a member in the group.
    pub fn hubs(&self) -> impl Iterator<Item = &str> + '_ {
        self.hubs.iter().map(String::as_str)
    }

    /// Offset of the record that deleted the group, once it is gone.
    pub fn deleted_at(&self) -> Option<u64> {
        self.deleted_at
    }
}

/// The last record imported from a linked hub: where its link resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Archive, Serialize, Deserialize)]
pub struct LinkProgress {
    /// The origin's log id.
    #[serde(serialize_with = "crate::event::serialize_hub_id")]
    pub log_id: u128,
    /// The origin offset of the last record imported.
    pub offset: u64,
    /// The CRC the origin shipped with it.
    pub crc: u32,
}

impl Federation {
    /// Highest origin offset imported from `origin_hub`; a link resumes after it.
    pub fn imported_offset(&self, origin_hub: u128) -> Option<u64> {
        self.imported.get(&origin_hub).copied()
    }

    /// Highest offset of our log `peer_hub` has acknowledged.
    pub fn acknowledged_offset(&self, peer_hub: u128) -> Option<u64> {
        self.acknowledged.get(&peer_hub).copied()
    }

    /// Every origin hub with its highest imported offset.
    pub fn imported_offsets(&self) -> impl Iterator<Item = (u128, u64)> + '_ {
        self.imported.iter().map(|(hub, offset)| (*hub, *offset))
    }

    /// What we imported from the linked hub `hub_id` (its federation id).
    pub fn link_progress(&self, hub_id: &str) -> Option<LinkProgress> {
        self.links.get(hub_id).copied()
    }

    /// The first offset of our log `hub_id` has not committed (0: nothing acknowledged).
    pub fn link_acknowledged(&self, hub_id: &str) -> u64 {
        self.link_acks.get(hub_id).copied().unwrap_or(0)
    }

    /// Every linked hub that acknowledged, with the first offset it has not committed.
    pub fn link_acks(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.link_acks
            .iter()
            .map(|(hub, durable)| (hub.as_str(), *durable))
    }

    /// Groups homed on this hub whose events ship to `hub`: it has had a member in them.
    pub fn groups_routed_to(&self, hub: &str) -> BTreeSet<String> {
        self.group_routes
            .iter()
            .filter(|(_, route)| route.hubs.contains(hub))
            .map(|(group, _)| group.clone())
            .collect()
    }

    /// The route of a group homed on this hub, if it has ever had a member on a peer hub.
    pub fn group_route(&self, group: &str) -> Option<&GroupRoute> {
        self.group_routes.get(group)
    }

    /// Every peer hub with its acknowledged offset.
    pub fn acknowledged_offsets(&self) -> impl Iterator<Item = (u128, u64)> + '_ {
        self.acknowledged
            .iter()
            .map(|(hub, offset)| (*hub, *offset))
    }
}

/// Everything the hub knows, rebuilt by applying the log in order. Its JSON is written by hand
/// (see the `Serialize` impl) since the message index's needs the mailboxes.
#[derive(Clone, Debug, PartialEq, Eq, Default, Archive, Serialize, Deserialize)]
pub struct State {
    /// Offset of the last record applied. Invariant: offsets applied strictly increase.
    pub(crate) last_offset: Option<u64>,
    /// Every identity known: registered and not forgotten.
    pub(crate) identities: BTreeMap<IdentityId, Identity>,
    /// Current name to identity. Invariant: a bijection with the identities' current names.
    /// Hashed; archived and serialized in name order (see [`ordered`]).
    #[rkyv(with = Ordered)]
    pub(crate) names: StringMap<IdentityId>,
    /// One mailbox per identity. Invariant: same keys as `identities`.
    pub(crate) mailboxes: BTreeMap<IdentityId, Mailbox>,
    /// Message id to mailbox, for every message kept in a mailbox and only those (see
    /// [`index`]). Not archived: a decoded snapshot rebuilds it from the mailboxes. Serialized
    /// as the map from id to [`MessageLocation`], in id order.
    #[rkyv(with = rkyv::with::Skip)]
    pub(crate) message_index: MessageIndex,
    /// Groups by name. Invariant: `groups.len() <= GROUPS_MAX`.
    pub(crate) groups: BTreeMap<String, Group>,
    /// Rooms with at least one member, by name. Invariant: `rooms.len() <= ROOMS_MAX`.
    pub(crate) rooms: BTreeMap<String, Room>,
    /// Pending asks and broadcasts.
    pub(crate) asks: Asks,
    /// Federation progress.
    pub(crate) federation: Federation,
    /// Results of requests that carried an idempotency key, per caller, oldest first.
    /// Invariant: at most `IDEMPOTENCY_KEYS_MAX` per identity.
    pub(crate) completed: BTreeMap<IdentityId, std::collections::VecDeque<CompletedRequest>>,
    /// Bytes held by the budget's count ([`State::bytes`]). Invariant: equals
    /// [`State::recount_bytes`]. Not serialized.
    pub(crate) bytes: u64,
    /// The budget `apply` holds `bytes` to; not archived (a decoded state gets the default),
    /// not serialized.
    #[rkyv(with = rkyv::with::Skip)]
    pub(crate) budget: budget::Budget,
}

/// The JSON of a [`State`]: the fields in declaration order, the hashed maps in key order, the
/// message index as id to [`MessageLocation`]; the byte count and budget left out.
impl serde::Serialize for State {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The message index, by id.
        struct IndexJson<'a>(&'a State);

        impl serde::Serialize for IndexJson<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_map(self.0.message_index_entries())
            }
        }

        /// The name table, by name.
        struct NamesJson<'a>(&'a StringMap<IdentityId>);

        impl serde::Serialize for NamesJson<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serialize_ordered(self.0, serializer)
            }
        }

        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("State", 10)?;
        out.serialize_field("last_offset", &self.last_offset)?;
        out.serialize_field("identities", &self.identities)?;
        out.serialize_field("names", &NamesJson(&self.names))?;
        out.serialize_field("mailboxes", &self.mailboxes)?;
        out.serialize_field("message_index", &IndexJson(self))?;
        out.serialize_field("groups", &self.groups)?;
        out.serialize_field("rooms", &self.rooms)?;
        out.serialize_field("asks", &self.asks)?;
        out.serialize_field("federation", &self.federation)?;
        out.serialize_field("completed", &self.completed)?;
        out.end()
    }
}

/// Why an identity cannot be forgotten now (see [`State::forget_blocker`]): forgetting never
/// drops anything someone still waits for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForgetBlocker {
    /// Its latest registration was not followed by an `identity_left`.
    #[error("it has not left")]
    NotLeft,
    /// Its mailbox holds unread messages, or refusals its next inbox would show.
    #[error("it has unread mail")]
    UnreadMail,
    /// It is a member (or the admin) of a group.
    #[error("it is a member of group {group:?}")]
    GroupMember {
        /// The first such group, by name.
        group: String,
    },
    /// An ask it sent, or one sent to it, is still pending.
    #[error("ask {ask_id:?} it sent or was sent is pending")]
    PendingAsk {
        /// The first such ask, by id.
        ask_id: String,
    },
}

/// A request that carried an idempotency key, and the result it was answered with.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Archive, Serialize, Deserialize)]
pub struct CompletedRequest {
    /// The caller's key.
    pub key: String,
    /// The result as answered (protocol JSON, opaque here).
    pub result: String,
    /// Record timestamp, in microseconds since the Unix epoch.
    pub timestamp_us: u64,
}

impl State {
    /// An empty state: what the fold starts from.
    pub fn new() -> State {
        State::default()
    }

    /// Offset of the last record applied, `None` before the first.
    pub fn last_offset(&self) -> Option<u64> {
        self.last_offset
    }

    /// The offset the next record must have at least: one past the last applied.
    pub fn next_offset(&self) -> u64 {
        self.last_offset
            .map_or(0, |offset| offset.saturating_add(1))
    }

    /// The identity currently named `name`.
    pub fn identity_by_name(&self, name: &str) -> Option<&Identity> {
        self.names.get(name).and_then(|id| self.identities.get(id))
    }

    /// The identity with this id.
    pub fn identity(&self, id: IdentityId) -> Option<&Identity> {
        self.identities.get(&id)
    }

    /// Identities known now (registered and not forgotten), at most
    /// [`IDENTITIES_MAX`](crate::limits::IDENTITIES_MAX).
    pub fn identity_count(&self) -> usize {
        self.identities.len()
    }

    /// Every identity known (registered and not forgotten), by id.
    pub fn identities(&self) -> impl Iterator<Item = &Identity> {
        self.identities.values()
    }

    /// Why `id` cannot be forgotten now, or `None` when an `identity_forgotten` for it would
    /// apply (also `None` for an id no identity has). Costs O(groups + pending asks).
    pub fn forget_blocker(&self, id: IdentityId) -> Option<ForgetBlocker> {
        let identity = self.identities.get(&id)?;
        if !identity.has_left {
            return Some(ForgetBlocker::NotLeft);
        }
        if self
            .mailboxes
            .get(&id)
            .is_some_and(|mailbox| mailbox.has_unread() || !mailbox.refusals().is_empty())
        {
            return Some(ForgetBlocker::UnreadMail);
        }
        if let Some(group) = self.groups.values().find(|group| group.is_member(id)) {
            return Some(ForgetBlocker::GroupMember {
                group: group.name().to_owned(),
            });
        }
        self.asks
            .all_pending()
            .find(|ask| ask.asker == id || ask.target == id)
            .map(|ask| ForgetBlocker::PendingAsk {
                ask_id: ask.ask_id.clone(),
            })
    }

    /// Up to `limit` identities that could be forgotten now (no [`ForgetBlocker`]) and were
    /// last seen before `seen_before_us`, the one last seen longest ago first (ties by id).
    /// Costs O(identities + group members + pending asks), plus a sort of the candidates.
    pub fn forgettable_identities(&self, seen_before_us: u64, limit: usize) -> Vec<&Identity> {
        let mut blocked: BTreeSet<IdentityId> = self
            .groups
            .values()
            .flat_map(|group| group.members())
            .collect();
        for ask in self.asks.all_pending() {
            blocked.insert(ask.asker);
            blocked.insert(ask.target);
        }
        let mut candidates: Vec<&Identity> = self
            .identities
            .values()
            .filter(|identity| identity.has_left && identity.last_seen_us < seen_before_us)
            .filter(|identity| !blocked.contains(&identity.id))
            .filter(|identity| {
                self.mailboxes
                    .get(&identity.id)
                    .is_none_or(|mailbox| !mailbox.has_unread() && mailbox.refusals().is_empty())
            })
            .collect();
        candidates.sort_by_key(|identity| (identity.last_seen_us, identity.id));
        candidates.truncate(limit);
        candidates
    }

    /// The mailbox of `id`.
    pub fn mailbox(&self, id: IdentityId) -> Option<&Mailbox> {
        self.mailboxes.get(&id)
    }

    /// A kept direct message by id, with its recipient: lets a reply tell an ask id from a
    /// message id (see also [`State::pending_ask`]).
    pub fn message(&self, message_id: &str) -> Option<(IdentityId, &StoredMessage)> {
        let located = self.message_index.get(message_id)?;
        let recipient = located.recipient();
        let message = located.find(self.mailboxes.get(&recipient)?)?;
        Some((recipient, message))
    }

    /// The message index as the JSON shows it: every kept message's id with its location, in
    /// id order. O(messages × log).
    pub fn message_index_entries(&self) -> Vec<(String, MessageLocation)> {
        let mut entries: Vec<(String, MessageLocation)> = self
            .message_index
            .entries()
            .filter_map(|located| {
                let recipient = located.recipient();
                let message = located.find(self.mailboxes.get(&recipient)?)?;
                let location = MessageLocation {
                    recipient,
                    sequence: message.sequence(),
                };
                Some((message.id().into_owned(), location))
            })
            .collect();
        entries.sort_unstable_by(|left, right| left.0.cmp(&right.0));
        entries
    }

    /// Completes a state decoded from a snapshot: rebuilds the message index (not archived)
    /// and shares each kept message's sender name with its sender's identity when it is that
    /// identity's current name (see [`SharedName`]), as `apply` does.
    ///
    /// # Errors
    ///
    /// Why the mailboxes cannot be indexed (see [`MessageIndex::rebuild`]): the snapshot is not
    /// a state `apply` built.
    pub(crate) fn complete_decoded(&mut self) -> Result<(), String> {
        self.message_index = MessageIndex::rebuild(self.mailboxes.iter())?;
        let identities = &self.identities;
        for message in self.mailboxes.values_mut().flat_map(Mailbox::messages_mut) {
            message.set_sender(message.from(), identities.get(&message.from()));
        }
        Ok(())
    }

    /// The pending ask with this id.
    pub fn pending_ask(&self, ask_id: &str) -> Option<&PendingAsk> {
        self.asks.pending(ask_id)
    }

    /// Pending asks and broadcasts.
    pub fn asks(&self) -> &Asks {
        &self.asks
    }

    /// The group named `name`.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(name)
    }

    /// Every group, by name.
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// The groups `id` is a member of, by name.
    pub fn groups_of(&self, id: IdentityId) -> impl Iterator<Item = &Group> {
        self.groups
            .values()
            .filter(move |group| group.is_member(id))
    }

    /// The room named `name`, when it has members.
    pub fn room(&self, name: &str) -> Option<&Room> {
        self.rooms.get(name)
    }

    /// Every room with members, by name.
    pub fn rooms(&self) -> impl Iterator<Item = (&str, &Room)> {
        self.rooms.iter().map(|(name, room)| (name.as_str(), room))
    }

    /// Federation progress.
    pub fn federation(&self) -> &Federation {
        &self.federation
    }

    /// The completed request of `caller` with idempotency key `key`, if still remembered.
    pub fn completed_request(&self, caller: IdentityId, key: &str) -> Option<&CompletedRequest> {
        self.completed
            .get(&caller)?
            .iter()
            .rev()
            .find(|completed| completed.key == key)
    }

    /// Empties every room: no session is connected when the hub has just started. The hub calls
    /// it after rebuilding its state (the `hub_started` event does the same in the log).
    pub fn clear_presence(&mut self) {
        self.rooms.clear();
    }
}
