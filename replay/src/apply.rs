//! [`apply`]: the one function that folds an event into the [`State`], used by the live hub and by
//! `relay replay` alike.
//!
//! `apply` is pure and deterministic: time comes only from the record's timestamp, and there is no
//! clock, randomness or I/O. Every handler checks everything first and mutates last, so an event
//! that does not fit the state returns an [`ApplyError`] and leaves the state exactly unchanged.
//! The live hub validates commands against the state before appending, so for our own log an
//! error means damage or a bug, which the replay tool reports with the offset.

mod replica;

use crate::event::codec::{DecodeError, decode};
use crate::event::{
    AskDeadlineSet, AskExpired, AskSent, Event, EventKind, GroupCreated, GroupCursorAdvanced,
    GroupDeleted, GroupLeft, GroupMemberInvited, GroupMemberRemoved, GroupMessageAcknowledged,
    GroupMessageSent, IdentityForgotten, IdentityRegistered, IdentityRenamed, Imported,
    LinkAcknowledged, LinkImported, MailboxCursorAdvanced, MessageRefused, MessageSent,
    MessageStatusReported, PeerAcknowledged, ReplySent, RequestCompleted, RoomJoined, RoomLeft,
};
use crate::federation::{
    TranslateError, Translation, is_group_submission, is_hub_id, is_replica_update,
    split_qualified, translate,
};
use crate::limits::{
    GROUP_MEMBERS_MAX, GROUPS_MAX, IDEMPOTENCY_KEYS_MAX, IDENTITIES_MAX,
    MAILBOX_REFUSALS_PER_SENDER_MAX, MAILBOX_UNREAD_BYTES_MAX, MAILBOX_UNREAD_MAX, PEER_HUBS_MAX,
    REMOTE_IDENTITIES_PER_HUB_MAX, ROOM_MEMBERS_MAX, ROOMS_MAX,
};
use crate::state::mailbox::NewMessage;
use crate::state::{
    BroadcastReply, CompletedRequest, ForgetBlocker, Group, GroupMessage, Identity, IdentityId,
    LinkProgress, MEMBER_BYTES, PendingAsk, SharedName, State, StoredMessage, completed_bytes,
    group_bytes, group_entry_bytes, group_message_bytes, identity_bytes, mailbox_bytes,
    message_bytes, refusal_bytes,
};

/// What the log's record header says about the event being applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    /// The record's offset in our log. Offsets applied to one state strictly increase.
    pub offset: u64,
    /// The record's timestamp, in microseconds since the Unix epoch: apply's only clock.
    pub timestamp_us: u64,
    /// The hub that wrote the record (ours for everything but relayed records).
    pub origin_hub: u128,
}

/// Why an event does not fit the state. The state is left exactly as it was.
///
/// The live hub validates before appending, so during replay of our own log this is damage or a
/// bug: `relay replay` reports it with the offset and goes on. For an import it means the peer
/// sent something inconsistent: the import is refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// The record's offset is not after the last one applied (a record applied twice, or out of
    /// order).
    #[error("offset {offset} is not after the last applied offset {last_offset}")]
    OffsetNotIncreasing {
        /// The offset of the rejected record.
        offset: u64,
        /// The last offset applied.
        last_offset: u64,
    },
    /// No identity currently has this name.
    #[error("no identity is named {name:?}")]
    UnknownIdentity {
        /// The name looked up.
        name: String,
    },
    /// A rename to a name another identity (or the same one) currently holds.
    #[error("the name {name:?} is taken")]
    NameTaken {
        /// The name wanted.
        name: String,
    },
    /// A new identity past [`IDENTITIES_MAX`].
    #[error("identity limit reached ({max})")]
    IdentitiesFull {
        /// The limit.
        max: usize,
    },
    /// An `identity_forgotten` for an identity that cannot be forgotten (it is online, has
    /// unread mail, is in a group or has a pending ask): the hub only forgets identities
    /// [`State::forget_blocker`] clears.
    #[error("{name:?} cannot be forgotten: {reason}")]
    IdentityNotForgettable {
        /// The name named.
        name: String,
        /// What keeps it.
        reason: ForgetBlocker,
    },
    /// An `identity_forgotten` whose id is not that of the identity holding the name now.
    #[error("{name:?} is identity {found}, not {identity_id}")]
    IdentityIdMismatch {
        /// The name named.
        name: String,
        /// The id the event named.
        identity_id: u64,
        /// The id of the identity holding the name.
        found: u64,
    },
    /// A message id already kept in some mailbox.
    #[error("message id {message_id:?} is already used")]
    DuplicateMessageId {
        /// The repeated id.
        message_id: String,
    },
    /// An event that stores something would take the state's byte count ([`State::bytes`]) past
    /// its budget ([`STATE_BYTES_MAX`](crate::limits::STATE_BYTES_MAX)). Nothing is stored; the
    /// hub answers `limit_reached` and appends nothing. Reads, acknowledgements, leaves and
    /// forgetting are never refused by the budget: they make room.
    #[error(
        "the hub's state is full: it holds {bytes} bytes, this needs {needed} more, the budget is {max} bytes; reading, leaving groups and forgetting identities that left make room"
    )]
    StateFull {
        /// Bytes the state holds (its [`State::bytes`]).
        bytes: u64,
        /// Bytes the event would add, net of what it would drop.
        needed: u64,
        /// The budget ([`State::budget`]).
        max: u64,
    },
    /// A direct message, ask or reply to a mailbox with no room: it holds
    /// [`MAILBOX_UNREAD_MAX`] unread messages, or the message's text would take its unread text
    /// past [`MAILBOX_UNREAD_BYTES_MAX`]. Unread mail is never dropped to make room; the hub
    /// refuses such a send with `mailbox_full` before appending anything.
    #[error(
        "the mailbox of {recipient:?} is full: {unread_count} unread messages, {unread_bytes} bytes of unread text, a message of {body_bytes} bytes (at most {} messages and {} bytes unread)",
        MAILBOX_UNREAD_MAX,
        MAILBOX_UNREAD_BYTES_MAX
    )]
    MailboxFull {
        /// The recipient named.
        recipient: String,
        /// Unread messages in its mailbox.
        unread_count: u64,
        /// Bytes of unread text in its mailbox.
        unread_bytes: u64,
        /// Bytes of text of the refused message.
        body_bytes: u64,
    },
    /// A `message_refused` past [`MAILBOX_REFUSALS_PER_SENDER_MAX`] for its sender (or for the
    /// unnamed senders) since the recipient last read its inbox: the hub answers such refusals
    /// without logging them.
    #[error(
        "{MAILBOX_REFUSALS_PER_SENDER_MAX} refusals from {sender:?} to {recipient:?} are counted already"
    )]
    RefusalsCounted {
        /// The recipient named.
        recipient: String,
        /// The sender named.
        sender: String,
    },
    /// A push for a message that is not kept in the recipient's mailbox.
    #[error("message {message_id:?} is not in the mailbox of {recipient:?}")]
    MessageNotFound {
        /// The recipient named.
        recipient: String,
        /// The message id named.
        message_id: String,
    },
    /// A cursor moved backwards.
    #[error("cursor cannot move back from {cursor} to {requested}")]
    CursorBackwards {
        /// The current cursor.
        cursor: u64,
        /// The sequence asked for.
        requested: u64,
    },
    /// A cursor moved past the newest message.
    #[error("cursor {requested} is past the newest message {last_sequence}")]
    CursorPastEnd {
        /// The newest sequence.
        last_sequence: u64,
        /// The sequence asked for.
        requested: u64,
    },
    /// An ask id that is already pending.
    #[error("ask id {ask_id:?} is already pending")]
    DuplicateAskId {
        /// The repeated id.
        ask_id: String,
    },
    /// An ask joins a broadcast someone else started.
    #[error("broadcast {broadcast_id:?} belongs to another asker")]
    BroadcastAskerMismatch {
        /// The broadcast id.
        broadcast_id: String,
    },
    /// A reply to a pending ask from someone other than its target, or to someone other than
    /// its asker.
    #[error("reply does not match pending ask {ask_id:?} (wrong replier or recipient)")]
    AskMismatch {
        /// The ask id answered.
        ask_id: String,
    },
    /// A room that has no members (so does not exist).
    #[error("room {room:?} does not exist")]
    RoomNotFound {
        /// The room name.
        room: String,
    },
    /// A leave or post by someone not in the room.
    #[error("{name:?} is not in room {room:?}")]
    NotRoomMember {
        /// The room name.
        room: String,
        /// The identity's name.
        name: String,
    },
    /// A join that would create a room past [`ROOMS_MAX`].
    #[error("room limit reached ({max})")]
    RoomsFull {
        /// The limit.
        max: usize,
    },
    /// A join past [`ROOM_MEMBERS_MAX`].
    #[error("room {room:?} is full ({max} members)")]
    RoomFull {
        /// The room name.
        room: String,
        /// The limit.
        max: usize,
    },
    /// A creation of a group name that exists.
    #[error("group {group:?} already exists")]
    GroupExists {
        /// The group name.
        group: String,
    },
    /// A change only the group's home hub may make (create, invite, remove, delete), asked of
    /// this hub's copy of it.
    #[error("group {group:?} is homed on hub {home:?}: only its home changes its members")]
    GroupHomedElsewhere {
        /// The group name, `name@home`.
        group: String,
        /// The home hub.
        home: String,
    },
    /// A group that does not exist.
    #[error("group {group:?} does not exist")]
    GroupNotFound {
        /// The group name.
        group: String,
    },
    /// A creation past [`GROUPS_MAX`].
    #[error("group limit reached ({max})")]
    GroupsFull {
        /// The limit.
        max: usize,
    },
    /// An invite past [`GROUP_MEMBERS_MAX`].
    #[error("group {group:?} is full ({max} members)")]
    GroupFull {
        /// The group name.
        group: String,
        /// The limit.
        max: usize,
    },
    /// An action by or on someone who is not a member.
    #[error("{name:?} is not a member of group {group:?}")]
    NotGroupMember {
        /// The group name.
        group: String,
        /// The identity's name.
        name: String,
    },
    /// An invite of a current member.
    #[error("{name:?} is already a member of group {group:?}")]
    AlreadyGroupMember {
        /// The group name.
        group: String,
        /// The identity's name.
        name: String,
    },
    /// An invite, removal or deletion by someone other than the admin.
    #[error("{name:?} is not the admin of group {group:?}")]
    NotGroupAdmin {
        /// The group name.
        group: String,
        /// The actor's name.
        name: String,
    },
    /// The admin tried to remove itself (it leaves or deletes the group instead).
    #[error("the admin of group {group:?} cannot remove itself")]
    AdminCannotBeRemoved {
        /// The group name.
        group: String,
    },
    /// An import at or below the highest origin offset already imported from that hub.
    #[error(
        "duplicate import from hub {origin_hub:032x}: offset {origin_offset} <= {imported_offset}"
    )]
    DuplicateImport {
        /// The origin hub.
        origin_hub: u128,
        /// The origin offset of the rejected import.
        origin_offset: u64,
        /// The highest origin offset already imported.
        imported_offset: u64,
    },
    /// An import of a kind that only makes sense on its own hub (`imported`,
    /// `peer_acknowledged`, `hub_started`, `message_refused`, `identity_forgotten`: ids are
    /// offsets of the hub's own log).
    #[error("event kind {kind} cannot be imported")]
    NotImportable {
        /// The kind found inside the import.
        kind: EventKind,
    },
    /// The imported payload does not decode.
    #[error("imported payload does not decode")]
    ImportedPayloadInvalid(#[from] DecodeError),
    /// The imported event decoded but does not fit the state.
    #[error("imported event from hub {origin_hub:032x} offset {origin_offset} rejected")]
    ImportedEventRejected {
        /// The origin hub.
        origin_hub: u128,
        /// The origin offset.
        origin_offset: u64,
        /// Why the inner event was rejected.
        #[source]
        source: Box<ApplyError>,
    },
    /// A peer's acknowledged offset moved backwards (its log was re-created or diverged).
    #[error("peer hub {peer_hub:032x} acknowledged {offset}, below its earlier {acknowledged}")]
    AcknowledgementBackwards {
        /// The peer hub.
        peer_hub: u128,
        /// The new, lower offset.
        offset: u64,
        /// The earlier acknowledged offset.
        acknowledged: u64,
    },
    /// One more peer hub past [`PEER_HUBS_MAX`].
    #[error("peer hub limit reached ({max})")]
    PeerHubsFull {
        /// The limit.
        max: usize,
    },
    /// A `link_imported` at or below the last record imported from its origin hub.
    #[error(
        "duplicate import from hub {origin_hub:?}: offset {origin_offset} <= {imported_offset}"
    )]
    DuplicateLinkImport {
        /// The origin hub's federation id.
        origin_hub: String,
        /// The origin offset of the rejected import.
        origin_offset: u64,
        /// The last origin offset imported.
        imported_offset: u64,
    },
    /// A `link_imported` from a log other than the one imported from so far: the origin's log
    /// was re-created or replaced. Imports never restart from zero on their own.
    #[error("hub {origin_hub:?} now ships log {found:032x}; this hub imported from {known:032x}")]
    LinkLogChanged {
        /// The origin hub's federation id.
        origin_hub: String,
        /// The log id imported from so far.
        known: u128,
        /// The log id of the rejected import.
        found: u128,
    },
    /// A `link_imported` whose origin is this hub, or whose hub ids are malformed.
    #[error("link import names hub {origin_hub:?} as origin and {local_hub:?} as this hub")]
    LinkHubsInvalid {
        /// The origin hub named.
        origin_hub: String,
        /// This hub as named.
        local_hub: String,
    },
    /// A peer's event that cannot be read on this hub (see `crate::federation`).
    #[error("import from hub {origin_hub:?} offset {origin_offset}: {source}")]
    ImportNotTranslated {
        /// The origin hub's federation id.
        origin_hub: String,
        /// The origin offset.
        origin_offset: u64,
        /// What is wrong.
        #[source]
        source: TranslateError,
    },
    /// A peer's event that was translated but does not fit the state.
    #[error("import from hub {origin_hub:?} offset {origin_offset} rejected: {source}")]
    LinkImportRejected {
        /// The origin hub's federation id.
        origin_hub: String,
        /// The origin offset.
        origin_offset: u64,
        /// Why the translated event was rejected.
        #[source]
        source: Box<ApplyError>,
    },
    /// One more identity of another hub's peers past [`REMOTE_IDENTITIES_PER_HUB_MAX`].
    #[error("this hub keeps {max} peers of hub {hub:?} at most; forget some first")]
    RemoteIdentitiesFull {
        /// The other hub.
        hub: String,
        /// The limit.
        max: u32,
    },
    /// A delivery between two peers of other hubs, neither known here.
    #[error("neither {from:?} nor {to:?} is known here; one side of a delivery must be")]
    NoKnownParty {
        /// The sender named.
        from: String,
        /// The recipient named.
        to: String,
    },
    /// A link acknowledgement that moved backwards.
    #[error("hub {peer_hub:?} acknowledged up to {durable}, below its earlier {acknowledged}")]
    LinkAcknowledgementBackwards {
        /// The peer hub's federation id.
        peer_hub: String,
        /// The new, lower offset.
        durable: u64,
        /// The earlier one.
        acknowledged: u64,
    },
    /// A deadline or expiry for an ask that is not pending.
    #[error("ask {ask_id:?} is not pending")]
    AskNotPending {
        /// The ask id named.
        ask_id: String,
    },
    /// An acknowledgement of a group message that is not kept.
    #[error("group {group:?} keeps no message {message_id:?}")]
    GroupMessageNotFound {
        /// The group name.
        group: String,
        /// The message id named.
        message_id: String,
    },
}

/// Folds one event into `state`.
///
/// # Errors
///
/// An [`ApplyError`] when the event does not fit the state (unknown identity, non-member,
/// non-admin, duplicate id, offset not after the last, …); `state` is then unchanged.
pub fn apply(state: &mut State, record: RecordMeta, event: &Event) -> Result<(), ApplyError> {
    if let Some(last_offset) = state.last_offset
        && record.offset <= last_offset
    {
        return Err(ApplyError::OffsetNotIncreasing {
            offset: record.offset,
            last_offset,
        });
    }
    apply_event(state, &record, event)?;
    state.last_offset = Some(record.offset);
    Ok(())
}

fn apply_event(state: &mut State, record: &RecordMeta, event: &Event) -> Result<(), ApplyError> {
    match event {
        Event::IdentityRegistered(event) => apply_identity_registered(state, record, event),
        Event::IdentityRenamed(event) => apply_identity_renamed(state, record, event),
        Event::IdentityLeft(event) => {
            let id = lookup(state, &event.name)?;
            remove_from_rooms(state, id);
            if let Some(identity) = state.identities.get_mut(&id) {
                identity.has_left = true;
            }
            touch(state, id, record);
            Ok(())
        }
        Event::IdentityForgotten(event) => apply_identity_forgotten(state, event),
        Event::MessageSent(event) => apply_message_sent(state, record, event),
        Event::AskSent(event) => apply_ask_sent(state, record, event),
        Event::ReplySent(event) => apply_reply_sent(state, record, event),
        Event::MessagePushed(event) => {
            mailbox_step(state, &event.recipient, &event.message_id, Step::Delivered)
        }
        Event::MailboxCursorAdvanced(event) => apply_mailbox_cursor_advanced(state, event),
        Event::MessageRead(event) => {
            mailbox_step(state, &event.recipient, &event.message_id, Step::Read)
        }
        Event::MessageStatusReported(event) => apply_message_status_reported(state, event),
        Event::AskDeadlineSet(event) => apply_ask_deadline_set(state, event),
        Event::AskExpired(event) => apply_ask_expired(state, record, event),
        Event::MessageRefused(event) => apply_message_refused(state, record, event),
        Event::RequestCompleted(event) => apply_request_completed(state, record, event),
        Event::GroupMessageAcknowledged(event) => apply_group_message_acknowledged(state, event),
        Event::RoomJoined(event) => apply_room_joined(state, record, event),
        Event::RoomLeft(event) => apply_room_left(state, event),
        Event::RoomMessageSent(event) => {
            let from = lookup(state, &event.from)?;
            let room = state
                .rooms
                .get(&event.room)
                .ok_or_else(|| ApplyError::RoomNotFound {
                    room: event.room.clone(),
                })?;
            if !room.is_member(from) {
                return Err(not_room_member(&event.room, &event.from));
            }
            touch(state, from, record);
            Ok(())
        }
        // Our peers' changes to a copy of another hub's group: only posts and departures.
        Event::GroupCreated(GroupCreated { group, .. })
        | Event::GroupMemberInvited(GroupMemberInvited { group, .. })
        | Event::GroupMemberRemoved(GroupMemberRemoved { group, .. })
        | Event::GroupDeleted(GroupDeleted { group, .. })
            if replica::is_copy(group) =>
        {
            Err(replica::homed_elsewhere(group))
        }
        Event::GroupMessageSent(event) if replica::is_copy(&event.group) => {
            replica::post_submitted(state, record, event)
        }
        Event::GroupLeft(event) if replica::is_copy(&event.group) => {
            replica::left_copy(state, record, event)
        }
        Event::GroupCreated(event) => apply_group_created(state, record, event),
        Event::GroupMemberInvited(event) => apply_group_member_invited(state, record, event),
        Event::GroupMemberRemoved(event) => apply_group_member_removed(state, record, event),
        Event::GroupLeft(event) => apply_group_left(state, record, event),
        Event::GroupMessageSent(event) => apply_group_message_sent(state, record, event),
        Event::GroupCursorAdvanced(event) => apply_group_cursor_advanced(state, event),
        Event::GroupDeleted(event) => apply_group_deleted(state, record, event),
        Event::Imported(event) => apply_imported(state, record, event),
        Event::PeerAcknowledged(event) => apply_peer_acknowledged(state, event),
        Event::LinkImported(event) => apply_link_imported(state, record, event),
        Event::LinkAcknowledged(event) => apply_link_acknowledged(state, event),
        Event::HubStarted(_) => {
            state.clear_presence();
            Ok(())
        }
        // Batch boundaries change no state: the driver holds a batch's records until its end.
        Event::BatchStarted(_) | Event::BatchEnded(_) => Ok(()),
    }
}

fn apply_identity_registered(
    state: &mut State,
    record: &RecordMeta,
    event: &IdentityRegistered,
) -> Result<(), ApplyError> {
    if let Some(id) = state.names.get(&event.name).copied() {
        // The same session returning: it keeps its identity, mailbox and groups.
        // Never refused by the budget: the session returns to drain its mailbox.
        if let Some(identity) = state.identities.get_mut(&id) {
            let before = identity_bytes(identity);
            identity.cwd.clone_from(&event.cwd);
            identity.git_branch.clone_from(&event.git_branch);
            identity.client = event.client.clone();
            identity.has_left = false;
            let after = identity_bytes(identity);
            recharge(state, before, after);
        }
        touch(state, id, record);
        return Ok(());
    }
    if state.identities.len() >= IDENTITIES_MAX {
        return Err(ApplyError::IdentitiesFull {
            max: IDENTITIES_MAX,
        });
    }
    let id = IdentityId(record.offset);
    assert!(
        !state.identities.contains_key(&id),
        "invariant: one identity per record offset"
    );
    let identity = Identity::new(
        id,
        event.name.clone(),
        event.cwd.clone(),
        event.git_branch.clone(),
        event.client.clone(),
        record.timestamp_us,
    );
    let bytes = identity_bytes(&identity);
    check_budget(state, bytes, 0)?;
    state.identities.insert(id, identity);
    state.names.insert(event.name.clone(), id);
    state.mailboxes.insert(id, Default::default());
    state.charge(bytes);
    Ok(())
}

fn apply_identity_renamed(
    state: &mut State,
    record: &RecordMeta,
    event: &IdentityRenamed,
) -> Result<(), ApplyError> {
    let id = lookup(state, &event.old_name)?;
    if state.names.contains_key(&event.new_name) {
        return Err(ApplyError::NameTaken {
            name: event.new_name.clone(),
        });
    }
    let Some(identity) = state.identities.get(&id) else {
        return Err(unknown_identity(&event.old_name));
    };
    let before = identity_bytes(identity);
    let mut renamed = identity.clone();
    renamed.rename(event.new_name.clone());
    let after = identity_bytes(&renamed);
    check_budget(state, after, before)?;
    state.names.remove(&event.old_name);
    state.names.insert(event.new_name.clone(), id);
    state.identities.insert(id, renamed);
    recharge(state, before, after);
    touch(state, id, record);
    Ok(())
}

/// Forgets an identity nothing waits for: its name, identity, mailbox (read mail only, kept
/// messages leave the message index) and idempotency keys. Messages it sent stay in their
/// recipients' mailboxes with the name it had (`from_name`); its id is never reused, since ids
/// are record offsets.
fn apply_identity_forgotten(
    state: &mut State,
    event: &IdentityForgotten,
) -> Result<(), ApplyError> {
    let id = lookup(state, &event.name)?;
    if id.0 != event.identity_id {
        return Err(ApplyError::IdentityIdMismatch {
            name: event.name.clone(),
            identity_id: event.identity_id,
            found: id.0,
        });
    }
    if let Some(reason) = state.forget_blocker(id) {
        return Err(ApplyError::IdentityNotForgettable {
            name: event.name.clone(),
            reason,
        });
    }
    state.names.remove(&event.name);
    if let Some((_, hub)) = split_qualified(&event.name)
        && let Some(count) = state.federation.remote_identities.get_mut(hub)
    {
        *count = count.saturating_sub(1);
        if *count == 0 {
            state.federation.remote_identities.remove(hub);
        }
    }
    if let Some(identity) = state.identities.remove(&id) {
        state.refund(identity_bytes(&identity));
    }
    if let Some(mailbox) = state.mailboxes.remove(&id) {
        for message in mailbox.messages() {
            state.message_index.remove(message);
        }
        state.refund(mailbox_bytes(&mailbox));
    }
    if let Some(completed) = state.completed.remove(&id) {
        state.refund(completed.iter().map(completed_bytes).sum());
    }
    Ok(())
}

/// A message about to be stored in a mailbox.
struct Delivery<'a> {
    id: &'a str,
    from_name: &'a str,
    body: &'a str,
    reply_to: Option<&'a str>,
    ask_id: Option<&'a str>,
    broadcast_id: Option<&'a str>,
    thread: Option<&'a str>,
    urgent: bool,
    is_reply: bool,
    late: bool,
    timed_out_ask: Option<&'a str>,
}

fn apply_message_sent(
    state: &mut State,
    record: &RecordMeta,
    event: &MessageSent,
) -> Result<(), ApplyError> {
    let parties = check_delivery(state, &event.from, &event.to, &event.id, &event.body)?;
    let delivery = Delivery {
        id: &event.id,
        from_name: &event.from,
        body: &event.body,
        reply_to: event.reply_to.as_deref(),
        ask_id: None,
        broadcast_id: None,
        thread: event.thread.as_deref(),
        urgent: event.urgent,
        is_reply: false,
        late: false,
        timed_out_ask: None,
    };
    let message = stored_message(state, record, &delivery);
    let adds = message_bytes(&message) + parties.new_bytes(record, &event.from, &event.to);
    check_budget(state, adds, 0)?;
    let (from, to) = parties.materialize(state, record, &event.from, &event.to);
    deliver(state, record, from, to, message);
    Ok(())
}

fn apply_ask_sent(
    state: &mut State,
    record: &RecordMeta,
    event: &AskSent,
) -> Result<(), ApplyError> {
    let parties = check_delivery(state, &event.from, &event.to, &event.id, &event.body)?;
    if state.asks.pending(&event.ask_id).is_some() {
        return Err(ApplyError::DuplicateAskId {
            ask_id: event.ask_id.clone(),
        });
    }
    if let Some(broadcast_id) = &event.broadcast_id
        && let Some(broadcast) = state.asks.broadcast(broadcast_id)
        && Some(broadcast.asker) != parties.from
    {
        return Err(ApplyError::BroadcastAskerMismatch {
            broadcast_id: broadcast_id.clone(),
        });
    }
    let delivery = Delivery {
        id: &event.id,
        from_name: &event.from,
        body: &event.body,
        reply_to: None,
        ask_id: Some(&event.ask_id),
        broadcast_id: event.broadcast_id.as_deref(),
        thread: event.thread.as_deref(),
        urgent: event.urgent,
        is_reply: false,
        late: false,
        timed_out_ask: None,
    };
    let message = stored_message(state, record, &delivery);
    let adds = message_bytes(&message) + parties.new_bytes(record, &event.from, &event.to);
    check_budget(state, adds, 0)?;
    let (from, to) = parties.materialize(state, record, &event.from, &event.to);
    deliver(state, record, from, to, message);
    state.asks.insert(PendingAsk {
        ask_id: event.ask_id.clone(),
        message_id: event.id.clone(),
        asker: from,
        target: to,
        broadcast_id: event.broadcast_id.clone(),
        offset: record.offset,
        timestamp_us: record.timestamp_us,
        deadline_us: None,
    });
    Ok(())
}

fn apply_reply_sent(
    state: &mut State,
    record: &RecordMeta,
    event: &ReplySent,
) -> Result<(), ApplyError> {
    let parties = check_delivery(state, &event.from, &event.to, &event.id, &event.body)?;
    let answers_ask = match state.asks.pending(&event.reply_to) {
        Some(ask) if Some(ask.target) != parties.from || Some(ask.asker) != parties.to => {
            return Err(ApplyError::AskMismatch {
                ask_id: event.reply_to.clone(),
            });
        }
        Some(_) => true,
        None => false,
    };
    // A reply to an ask that timed out is still delivered, marked late.
    let late = !answers_ask
        && state
            .asks
            .expired(&event.reply_to)
            .is_some_and(|ask| Some(ask.target) == parties.from && Some(ask.asker) == parties.to);
    let delivery = Delivery {
        id: &event.id,
        from_name: &event.from,
        body: &event.body,
        reply_to: Some(&event.reply_to),
        ask_id: None,
        broadcast_id: None,
        thread: event.thread.as_deref(),
        urgent: event.urgent,
        is_reply: true,
        late,
        timed_out_ask: None,
    };
    let message = stored_message(state, record, &delivery);
    let adds = message_bytes(&message) + parties.new_bytes(record, &event.from, &event.to);
    check_budget(state, adds, 0)?;
    let (from, to) = parties.materialize(state, record, &event.from, &event.to);
    deliver(state, record, from, to, message);
    if late {
        state.asks.forget_expired(&event.reply_to);
    }
    if answers_ask {
        let reply = BroadcastReply {
            from,
            ask_id: event.reply_to.clone(),
            message_id: event.id.clone(),
            offset: record.offset,
        };
        state.asks.resolve(&event.reply_to, reply);
    }
    Ok(())
}

/// A delivery step of one stored message.
enum Step<'a> {
    /// The client reported this status (noted, changes no state).
    Reported(&'a str),
    /// The session took it.
    Delivered,
    /// The model has it.
    Read,
    /// The client refused it or let it expire: unread again.
    Returned,
}

/// Moves one stored message of `recipient` a step.
fn mailbox_step(
    state: &mut State,
    recipient: &str,
    message_id: &str,
    step: Step<'_>,
) -> Result<(), ApplyError> {
    let id = lookup(state, recipient)?;
    let not_found = || ApplyError::MessageNotFound {
        recipient: recipient.to_owned(),
        message_id: message_id.to_owned(),
    };
    let located = state.message_index.get(message_id).ok_or_else(not_found)?;
    if located.recipient() != id {
        return Err(not_found());
    }
    let sequence = state
        .mailboxes
        .get(&id)
        .and_then(|mailbox| located.find(mailbox))
        .ok_or_else(not_found)?
        .sequence();
    let mailbox = state.mailboxes.get_mut(&id).ok_or_else(not_found)?;
    match step {
        Step::Delivered => mailbox.mark_delivered(sequence),
        Step::Read => {
            let forgotten = mailbox.mark_read(sequence);
            forget_messages(state, forgotten);
        }
        Step::Returned => mailbox.mark_returned(sequence),
        // Never refused by the budget; the word is charged with the message.
        Step::Reported(status) => {
            let charged = |mailbox: &crate::state::Mailbox| {
                mailbox.get_by_sequence(sequence).map_or(0, message_bytes)
            };
            let before = charged(mailbox);
            mailbox.note_reported(sequence, status);
            let after = charged(mailbox);
            recharge(state, before, after);
        }
    }
    Ok(())
}

fn apply_message_status_reported(
    state: &mut State,
    event: &MessageStatusReported,
) -> Result<(), ApplyError> {
    let step = match event.status.as_str() {
        "refused" | "expired" => Some(Step::Returned),
        // `held` and words a newer hub may log only note the report.
        _ => None,
    };
    mailbox_step(
        state,
        &event.recipient,
        &event.message_id,
        Step::Reported(&event.status),
    )?;
    match step {
        Some(step) => mailbox_step(state, &event.recipient, &event.message_id, step),
        None => Ok(()),
    }
}

fn apply_ask_deadline_set(state: &mut State, event: &AskDeadlineSet) -> Result<(), ApplyError> {
    if state.asks.pending(&event.ask_id).is_none() {
        return Err(ApplyError::AskNotPending {
            ask_id: event.ask_id.clone(),
        });
    }
    state.asks.set_deadline(&event.ask_id, event.deadline_us);
    Ok(())
}

fn apply_ask_expired(
    state: &mut State,
    record: &RecordMeta,
    event: &AskExpired,
) -> Result<(), ApplyError> {
    let Some(ask) = state.asks.pending(&event.ask_id) else {
        return Err(ApplyError::AskNotPending {
            ask_id: event.ask_id.clone(),
        });
    };
    if state.message_index.contains(&event.message_id) {
        return Err(ApplyError::DuplicateMessageId {
            message_id: event.message_id.clone(),
        });
    }
    let (asker, target) = (ask.asker, ask.target);
    state.asks.expire(&event.ask_id);
    let notice = Delivery {
        id: &event.message_id,
        from_name: "relay",
        body: &event.body,
        reply_to: Some(&event.ask_id),
        ask_id: None,
        broadcast_id: None,
        thread: None,
        urgent: false,
        is_reply: false,
        late: false,
        timed_out_ask: Some(&event.ask_id),
    };
    // The ask ends either way; a full mailbox (or a full state) gets no notice (unread mail is
    // never dropped to make room), but counts it as refused from `relay`, so the asker hears of
    // it on its next inbox.
    let message = stored_message(state, record, &notice);
    let has_room = state
        .mailboxes
        .get(&asker)
        .is_some_and(|mailbox| mailbox.check_room(event.body.len()).is_ok())
        && check_budget(state, message_bytes(&message), 0).is_ok();
    if !has_room {
        note_refused(state, asker, "relay", record.timestamp_us);
        return Ok(());
    }
    // The notice is about the target's silence: it stands as the sender, so a reply to it
    // reaches the peer that was asked.
    deliver(state, record, target, asker, message);
    Ok(())
}

fn apply_message_refused(
    state: &mut State,
    record: &RecordMeta,
    event: &MessageRefused,
) -> Result<(), ApplyError> {
    let from = lookup(state, &event.from)?;
    let to = lookup(state, &event.to)?;
    let Some(mailbox) = state.mailboxes.get_mut(&to) else {
        return Err(unknown_identity(&event.to));
    };
    if !mailbox.refusals().counts_one_more(&event.from) {
        return Err(ApplyError::RefusalsCounted {
            recipient: event.to.clone(),
            sender: event.from.clone(),
        });
    }
    note_refused(state, to, &event.from, record.timestamp_us);
    touch(state, from, record);
    Ok(())
}

fn apply_request_completed(
    state: &mut State,
    record: &RecordMeta,
    event: &RequestCompleted,
) -> Result<(), ApplyError> {
    let caller = lookup(state, &event.caller)?;
    let request = CompletedRequest {
        key: event.key.clone(),
        result: event.result.clone(),
        timestamp_us: record.timestamp_us,
    };
    let adds = completed_bytes(&request);
    let frees = state
        .completed
        .get(&caller)
        .filter(|completed| completed.len() >= IDEMPOTENCY_KEYS_MAX)
        .and_then(|completed| completed.front())
        .map_or(0, completed_bytes);
    check_budget(state, adds, frees)?;
    let completed = state.completed.entry(caller).or_default();
    completed.push_back(request);
    let mut dropped = 0;
    while completed.len() > IDEMPOTENCY_KEYS_MAX {
        dropped += completed.pop_front().as_ref().map_or(0, completed_bytes);
    }
    state.charge(adds);
    state.refund(dropped);
    Ok(())
}

fn apply_group_message_acknowledged(
    state: &mut State,
    event: &GroupMessageAcknowledged,
) -> Result<(), ApplyError> {
    let member = lookup(state, &event.member)?;
    let group = group_of_member(state, &event.group, member, &event.member)?;
    let sequence = group
        .message_by_id(&event.message_id)
        .map(|message| message.sequence)
        .ok_or_else(|| ApplyError::GroupMessageNotFound {
            group: event.group.clone(),
            message_id: event.message_id.clone(),
        })?;
    group.acknowledge(member, sequence, event.read);
    Ok(())
}

fn apply_mailbox_cursor_advanced(
    state: &mut State,
    event: &MailboxCursorAdvanced,
) -> Result<(), ApplyError> {
    let recipient = lookup(state, &event.recipient)?;
    let Some(mailbox) = state.mailboxes.get_mut(&recipient) else {
        return Err(unknown_identity(&event.recipient));
    };
    check_cursor(
        mailbox.cursor(),
        mailbox.last_sequence(),
        event.up_to_sequence,
    )?;
    // The refusal record is cleared with the read.
    let refusals: u64 = mailbox
        .refusals()
        .senders()
        .map(|(sender, _)| refusal_bytes(sender))
        .sum();
    let forgotten = mailbox.advance_cursor(event.up_to_sequence);
    state.refund(refusals);
    forget_messages(state, forgotten);
    Ok(())
}

fn apply_room_joined(
    state: &mut State,
    record: &RecordMeta,
    event: &RoomJoined,
) -> Result<(), ApplyError> {
    let id = lookup(state, &event.name)?;
    match state.rooms.get(&event.room) {
        // Joining twice is accepted as a no-op: a hub that crashed logged no leave, so after a
        // restart without `hub_started` the same session may join again.
        Some(room) if room.is_member(id) => return Ok(()),
        Some(room) if room.member_count() >= ROOM_MEMBERS_MAX => {
            return Err(ApplyError::RoomFull {
                room: event.room.clone(),
                max: ROOM_MEMBERS_MAX,
            });
        }
        None if state.rooms.len() >= ROOMS_MAX => {
            return Err(ApplyError::RoomsFull { max: ROOMS_MAX });
        }
        _ => {}
    }
    state
        .rooms
        .entry(event.room.clone())
        .or_default()
        .insert(id);
    touch(state, id, record);
    Ok(())
}

fn apply_room_left(state: &mut State, event: &RoomLeft) -> Result<(), ApplyError> {
    let id = lookup(state, &event.name)?;
    let room = state
        .rooms
        .get_mut(&event.room)
        .ok_or_else(|| ApplyError::RoomNotFound {
            room: event.room.clone(),
        })?;
    if !room.is_member(id) {
        return Err(not_room_member(&event.room, &event.name));
    }
    if room.remove(id) {
        state.rooms.remove(&event.room);
    }
    Ok(())
}

fn apply_group_created(
    state: &mut State,
    record: &RecordMeta,
    event: &GroupCreated,
) -> Result<(), ApplyError> {
    let admin = lookup(state, &event.admin)?;
    if state.groups.contains_key(&event.group) {
        return Err(ApplyError::GroupExists {
            group: event.group.clone(),
        });
    }
    if state.groups.len() >= GROUPS_MAX {
        return Err(ApplyError::GroupsFull { max: GROUPS_MAX });
    }
    let bytes = group_entry_bytes(&event.group) + MEMBER_BYTES;
    check_budget(state, bytes, 0)?;
    let group = Group::new(event.group.clone(), admin, record.timestamp_us);
    state.groups.insert(event.group.clone(), group);
    state.charge(bytes);
    replica::route_created(state, &event.group);
    touch(state, admin, record);
    Ok(())
}

fn apply_group_member_invited(
    state: &mut State,
    record: &RecordMeta,
    event: &GroupMemberInvited,
) -> Result<(), ApplyError> {
    let actor = lookup(state, &event.actor)?;
    // A peer of another hub joins as `name@hub`, its identity created on first mention.
    let member = party(state, &event.member)?;
    let group = group_by_admin(state, &event.group, actor, &event.actor)?;
    if member.is_some_and(|member| group.is_member(member)) {
        let name = event.member.clone();
        return Err(ApplyError::AlreadyGroupMember {
            group: event.group.clone(),
            name,
        });
    }
    if group.member_count() >= GROUP_MEMBERS_MAX {
        return Err(ApplyError::GroupFull {
            group: event.group.clone(),
            max: GROUP_MEMBERS_MAX,
        });
    }
    let new_identity = member.map_or_else(
        || identity_bytes(&remote_identity(record, &event.member)),
        |_| 0,
    );
    let route = replica::route_growth(state, &event.group, &event.member);
    check_budget(state, MEMBER_BYTES + new_identity + route, 0)?;
    let member = member.unwrap_or_else(|| remember_remote(state, record, &event.member));
    if let Some(group) = state.groups.get_mut(&event.group) {
        group.add_member(member, record.timestamp_us);
    }
    state.charge(MEMBER_BYTES);
    replica::route_member(state, &event.group, &event.member);
    touch(state, actor, record);
    Ok(())
}

fn apply_group_member_removed(
    state: &mut State,
    record: &RecordMeta,
    event: &GroupMemberRemoved,
) -> Result<(), ApplyError> {
    let actor = lookup(state, &event.actor)?;
    let member = lookup(state, &event.member)?;
    let group = group_by_admin(state, &event.group, actor, &event.actor)?;
    if member == actor {
        return Err(ApplyError::AdminCannotBeRemoved {
            group: event.group.clone(),
        });
    }
    if !group.is_member(member) {
        return Err(not_group_member(&event.group, &event.member));
    }
    // The removal notice stores the reason: checked against the budget, net of the member and
    // the message the ring drops.
    let body = format!("{} was removed: {}", event.member, event.reason);
    let mut notice = system_message(body, record);
    notice.ack_slots = (group.member_count() as u64).saturating_sub(1);
    let adds = group_message_bytes(&notice);
    let frees = MEMBER_BYTES + ring_drop_bytes(group);
    check_budget(state, adds, frees)?;
    let Some(group) = state.groups.get_mut(&event.group) else {
        return Err(ApplyError::GroupNotFound {
            group: event.group.clone(),
        });
    };
    group.remove_member(member, |_| true);
    state.refund(MEMBER_BYTES);
    push_group_message(state, &event.group, notice);
    touch(state, actor, record);
    Ok(())
}

fn apply_group_left(
    state: &mut State,
    record: &RecordMeta,
    event: &GroupLeft,
) -> Result<(), ApplyError> {
    // Never refused by the budget: leaving makes room (the departure notices it stores are a
    // few bytes, and the ring drops one message for each once it is full).
    let member = lookup(state, &event.member)?;
    group_of_member(state, &event.group, member, &event.member)?;
    let (groups, identities) = (&mut state.groups, &state.identities);
    let group = groups
        .get_mut(&event.group)
        .ok_or_else(|| ApplyError::GroupNotFound {
            group: event.group.clone(),
        })?;
    // The admin's role passes to a peer of this hub when one is left: admin commands run on
    // the group's home.
    let local = |candidate: IdentityId| {
        identities
            .get(&candidate)
            .is_some_and(|identity| !is_remote_name(identity.name()))
    };
    let successor = group.remove_member(member, local);
    let emptied = group.member_count() == 0;
    state.refund(MEMBER_BYTES);
    if emptied {
        // Nobody is left to read or administer it: the group goes, like a deletion.
        if let Some(group) = state.groups.remove(&event.group) {
            state.refund(group_bytes(&group));
        }
        replica::route_deleted(state, record, &event.group);
    } else {
        let notice = system_message(format!("{} left", event.member), record);
        push_group_message(state, &event.group, notice);
        if let Some(successor) = successor {
            let name = state
                .identities
                .get(&successor)
                .map_or("", Identity::name)
                .to_owned();
            let notice = system_message(format!("{name} is now the admin"), record);
            push_group_message(state, &event.group, notice);
        }
    }
    touch(state, member, record);
    Ok(())
}

fn apply_group_message_sent(
    state: &mut State,
    record: &RecordMeta,
    event: &GroupMessageSent,
) -> Result<(), ApplyError> {
    let from = lookup(state, &event.from)?;
    group_of_member(state, &event.group, from, &event.from)?;
    store_group_message(state, record, event, from)?;
    touch(state, from, record);
    Ok(())
}

/// Stores a post of member `from` in its group's ring, checked against the budget net of the
/// message the ring drops.
fn store_group_message(
    state: &mut State,
    record: &RecordMeta,
    event: &GroupMessageSent,
    from: IdentityId,
) -> Result<(), ApplyError> {
    let group = group_mut(state, &event.group)?;
    let message = GroupMessage {
        sequence: 0,
        id: Some(event.id.clone()),
        author: Some(from),
        author_name: Some(event.from.clone()),
        body: event.body.clone(),
        reply_to: event.reply_to.clone(),
        urgent: event.urgent,
        timestamp_us: record.timestamp_us,
        offset: record.offset,
        ack_slots: group.member_count() as u64,
    };
    let adds = group_message_bytes(&message);
    let frees = ring_drop_bytes(group);
    check_budget(state, adds, frees)?;
    push_group_message(state, &event.group, message);
    Ok(())
}

fn apply_group_cursor_advanced(
    state: &mut State,
    event: &GroupCursorAdvanced,
) -> Result<(), ApplyError> {
    let member = lookup(state, &event.member)?;
    let group = group_of_member(state, &event.group, member, &event.member)?;
    let cursor = group
        .membership(member)
        .map_or(0, |membership| membership.cursor);
    check_cursor(cursor, group.last_sequence(), event.up_to_sequence)?;
    group.set_cursor(member, event.up_to_sequence);
    Ok(())
}

fn apply_group_deleted(
    state: &mut State,
    record: &RecordMeta,
    event: &GroupDeleted,
) -> Result<(), ApplyError> {
    let actor = lookup(state, &event.actor)?;
    group_by_admin(state, &event.group, actor, &event.actor)?;
    if let Some(group) = state.groups.remove(&event.group) {
        state.refund(group_bytes(&group));
    }
    replica::route_deleted(state, record, &event.group);
    Ok(())
}

fn apply_imported(
    state: &mut State,
    record: &RecordMeta,
    event: &Imported,
) -> Result<(), ApplyError> {
    match state.federation.imported.get(&event.origin_hub) {
        Some(&imported_offset) if event.origin_offset <= imported_offset => {
            return Err(ApplyError::DuplicateImport {
                origin_hub: event.origin_hub,
                origin_offset: event.origin_offset,
                imported_offset,
            });
        }
        None if state.federation.imported.len() >= PEER_HUBS_MAX => {
            return Err(ApplyError::PeerHubsFull { max: PEER_HUBS_MAX });
        }
        _ => {}
    }
    let inner = decode(event.kind, event.schema_version, &event.payload)?;
    if matches!(
        inner,
        Event::Imported(_)
            | Event::LinkImported(_)
            | Event::LinkAcknowledged(_)
            | Event::PeerAcknowledged(_)
            | Event::HubStarted(_)
            | Event::MessageRefused(_)
            | Event::IdentityForgotten(_)
            | Event::BatchStarted(_)
            | Event::BatchEnded(_)
    ) {
        return Err(ApplyError::NotImportable { kind: inner.kind() });
    }
    apply_event(state, record, &inner).map_err(|source| ApplyError::ImportedEventRejected {
        origin_hub: event.origin_hub,
        origin_offset: event.origin_offset,
        source: Box::new(source),
    })?;
    state
        .federation
        .imported
        .insert(event.origin_hub, event.origin_offset);
    Ok(())
}

fn apply_link_imported(
    state: &mut State,
    record: &RecordMeta,
    event: &LinkImported,
) -> Result<(), ApplyError> {
    let hubs_invalid = || ApplyError::LinkHubsInvalid {
        origin_hub: event.origin_hub.clone(),
        local_hub: event.local_hub.clone(),
    };
    if event.origin_hub == event.local_hub
        || !is_hub_id(&event.origin_hub)
        || !is_hub_id(&event.local_hub)
    {
        return Err(hubs_invalid());
    }
    match state.federation.links.get(&event.origin_hub) {
        Some(progress) if progress.log_id != event.origin_log_id => {
            return Err(ApplyError::LinkLogChanged {
                origin_hub: event.origin_hub.clone(),
                known: progress.log_id,
                found: event.origin_log_id,
            });
        }
        Some(progress) if event.origin_offset <= progress.offset => {
            return Err(ApplyError::DuplicateLinkImport {
                origin_hub: event.origin_hub.clone(),
                origin_offset: event.origin_offset,
                imported_offset: progress.offset,
            });
        }
        None if state.federation.links.len() >= PEER_HUBS_MAX => {
            return Err(ApplyError::PeerHubsFull { max: PEER_HUBS_MAX });
        }
        _ => {}
    }
    if event.refused.is_none() {
        let inner = translated_import(event)?;
        let applied = if is_group_submission(&inner) {
            // A post to or departure from a group homed here: the hub logs it as its own in
            // the same batch (ordered, and shipped to every member hub); the import is progress.
            Ok(())
        } else if is_replica_update(&inner) {
            replica::apply_update(state, record, &inner)
        } else {
            apply_event(state, record, &inner)
        };
        applied.map_err(|source| ApplyError::LinkImportRejected {
            origin_hub: event.origin_hub.clone(),
            origin_offset: event.origin_offset,
            source: Box::new(source),
        })?;
    }
    state.federation.links.insert(
        event.origin_hub.clone(),
        LinkProgress {
            log_id: event.origin_log_id,
            offset: event.origin_offset,
            crc: event.origin_crc,
        },
    );
    Ok(())
}

/// The event inside a `link_imported`, decoded with validation and translated to this hub's
/// names and ids.
///
/// # Errors
/// The payload does not decode, or does not translate ([`crate::federation::translate`]).
pub fn translated_import(event: &LinkImported) -> Result<Event, ApplyError> {
    let inner = decode(event.kind, event.schema_version, &event.payload)?;
    let hubs = Translation {
        origin: &event.origin_hub,
        local: &event.local_hub,
    };
    translate(hubs, &inner).map_err(|source| ApplyError::ImportNotTranslated {
        origin_hub: event.origin_hub.clone(),
        origin_offset: event.origin_offset,
        source,
    })
}

fn apply_link_acknowledged(state: &mut State, event: &LinkAcknowledged) -> Result<(), ApplyError> {
    match state.federation.link_acks.get(&event.peer_hub) {
        Some(&acknowledged) if event.durable < acknowledged => {
            return Err(ApplyError::LinkAcknowledgementBackwards {
                peer_hub: event.peer_hub.clone(),
                durable: event.durable,
                acknowledged,
            });
        }
        None if state.federation.link_acks.len() >= PEER_HUBS_MAX => {
            return Err(ApplyError::PeerHubsFull { max: PEER_HUBS_MAX });
        }
        None if !is_hub_id(&event.peer_hub) => {
            return Err(ApplyError::LinkHubsInvalid {
                origin_hub: event.peer_hub.clone(),
                local_hub: String::new(),
            });
        }
        _ => {}
    }
    state
        .federation
        .link_acks
        .insert(event.peer_hub.clone(), event.durable);
    replica::prune_routes(state);
    Ok(())
}

fn apply_peer_acknowledged(state: &mut State, event: &PeerAcknowledged) -> Result<(), ApplyError> {
    match state.federation.acknowledged.get(&event.peer_hub) {
        Some(&acknowledged) if event.offset < acknowledged => {
            return Err(ApplyError::AcknowledgementBackwards {
                peer_hub: event.peer_hub,
                offset: event.offset,
                acknowledged,
            });
        }
        None if state.federation.acknowledged.len() >= PEER_HUBS_MAX => {
            return Err(ApplyError::PeerHubsFull { max: PEER_HUBS_MAX });
        }
        _ => {}
    }
    state
        .federation
        .acknowledged
        .insert(event.peer_hub, event.offset);
    Ok(())
}

fn lookup(state: &State, name: &str) -> Result<IdentityId, ApplyError> {
    state
        .names
        .get(name)
        .copied()
        .ok_or_else(|| unknown_identity(name))
}

fn unknown_identity(name: &str) -> ApplyError {
    ApplyError::UnknownIdentity {
        name: name.to_owned(),
    }
}

fn not_room_member(room: &str, name: &str) -> ApplyError {
    ApplyError::NotRoomMember {
        room: room.to_owned(),
        name: name.to_owned(),
    }
}

fn not_group_member(group: &str, name: &str) -> ApplyError {
    ApplyError::NotGroupMember {
        group: group.to_owned(),
        name: name.to_owned(),
    }
}

/// Checks sender, recipient, message id and the room in the recipient's mailbox for a direct
/// message of text `body`; returns their identities.
/// The two identities of a checked delivery: `None` for a peer of another hub seen for the
/// first time, whose identity [`Parties::materialize`] creates once every check has passed.
#[derive(Clone, Copy, Debug)]
struct Parties {
    from: Option<IdentityId>,
    to: Option<IdentityId>,
}

impl Parties {
    /// The identities of both sides, creating the one of a new remote peer (at most one side is
    /// new, see [`check_delivery`]): its id is this record's offset, like a registration's.
    fn materialize(
        self,
        state: &mut State,
        record: &RecordMeta,
        from: &str,
        to: &str,
    ) -> (IdentityId, IdentityId) {
        let mut known = |party: Option<IdentityId>, name: &str| {
            party.unwrap_or_else(|| remember_remote(state, record, name))
        };
        (known(self.from, from), known(self.to, to))
    }

    /// Bytes [`Parties::materialize`] would charge for a new remote peer.
    fn new_bytes(self, record: &RecordMeta, from: &str, to: &str) -> u64 {
        let new = |party: Option<IdentityId>, name: &str| {
            party.map_or_else(|| identity_bytes(&remote_identity(record, name)), |_| 0)
        };
        new(self.from, from) + new(self.to, to)
    }
}

/// Whether `name` is a peer of another hub (`name@hub` with a well-formed hub id).
fn is_remote_name(name: &str) -> bool {
    split_qualified(name).is_some_and(|(local, hub)| !local.is_empty() && is_hub_id(hub))
}

/// Creates the identity of a peer of another hub, first named by this record. It has a mailbox
/// (on the sending hub: the messages on their way to it, with their delivery state) and counts
/// against [`IDENTITIES_MAX`]; it is never online here, so it is `has_left` and can be
/// forgotten like any identity that left.
fn remember_remote(state: &mut State, record: &RecordMeta, name: &str) -> IdentityId {
    let identity = remote_identity(record, name);
    let id = identity.id;
    if let Some((_, hub)) = split_qualified(name) {
        *state
            .federation
            .remote_identities
            .entry(hub.to_owned())
            .or_default() += 1;
    }
    state.charge(identity_bytes(&identity));
    state.identities.insert(id, identity);
    state.names.insert(name.to_owned(), id);
    state.mailboxes.insert(id, Default::default());
    id
}

/// The identity [`remember_remote`] creates for `name`.
fn remote_identity(record: &RecordMeta, name: &str) -> Identity {
    let mut identity = Identity::new(
        IdentityId(record.offset),
        name.to_owned(),
        String::new(),
        None,
        crate::event::ClientKind::Other("remote".to_owned()),
        record.timestamp_us,
    );
    identity.has_left = true;
    identity
}

/// The identity `name` has, or `None` for a peer of another hub not known yet (when one more
/// identity fits).
fn party(state: &State, name: &str) -> Result<Option<IdentityId>, ApplyError> {
    match state.names.get(name) {
        Some(id) => Ok(Some(*id)),
        None if is_remote_name(name) => {
            if state.identities.len() >= IDENTITIES_MAX {
                return Err(ApplyError::IdentitiesFull {
                    max: IDENTITIES_MAX,
                });
            }
            if let Some((_, hub)) = split_qualified(name)
                && state
                    .federation
                    .remote_identities
                    .get(hub)
                    .is_some_and(|count| *count >= REMOTE_IDENTITIES_PER_HUB_MAX)
            {
                return Err(ApplyError::RemoteIdentitiesFull {
                    hub: hub.to_owned(),
                    max: REMOTE_IDENTITIES_PER_HUB_MAX,
                });
            }
            Ok(None)
        }
        None => Err(unknown_identity(name)),
    }
}

fn check_delivery(
    state: &State,
    from: &str,
    to: &str,
    message_id: &str,
    body: &str,
) -> Result<Parties, ApplyError> {
    let from_id = party(state, from)?;
    let to_id = party(state, to)?;
    if from_id.is_none() && to_id.is_none() {
        return Err(ApplyError::NoKnownParty {
            from: from.to_owned(),
            to: to.to_owned(),
        });
    }
    if state.message_index.contains(message_id) {
        return Err(ApplyError::DuplicateMessageId {
            message_id: message_id.to_owned(),
        });
    }
    if let Some(mailbox) = to_id.and_then(|to_id| state.mailboxes.get(&to_id))
        && let Err(full) = mailbox.check_room(body.len())
    {
        return Err(ApplyError::MailboxFull {
            recipient: to.to_owned(),
            unread_count: full.unread_count,
            unread_bytes: full.unread_bytes,
            body_bytes: full.body_bytes,
        });
    }
    Ok(Parties {
        from: from_id,
        to: to_id,
    })
}

/// Drops forgotten (read, aged-out) messages from the message index and refunds them.
fn forget_messages(state: &mut State, messages: impl IntoIterator<Item = StoredMessage>) {
    for message in messages {
        state.message_index.remove(&message);
        state.refund(message_bytes(&message));
    }
}

/// The message `delivery` stores, its sender still to be set by [`deliver`]. Its sender name
/// shares the copy of the identity that now has the name, if any (see [`SharedName`]).
fn stored_message(state: &State, record: &RecordMeta, delivery: &Delivery<'_>) -> StoredMessage {
    let new = NewMessage {
        id: delivery.id,
        offset: record.offset,
        timestamp_us: record.timestamp_us,
        body: delivery.body,
        reply_to: delivery.reply_to,
        ask_id: delivery.ask_id,
        broadcast_id: delivery.broadcast_id,
        thread: delivery.thread,
        urgent: delivery.urgent,
        is_reply: delivery.is_reply,
        late: delivery.late,
        timed_out_ask: delivery.timed_out_ask,
    };
    // Provisional: `deliver` sets the sender, which is nearly always this identity.
    let sender = state
        .identity_by_name(delivery.from_name)
        .and_then(Identity::shared_name)
        .filter(|name| **name == *delivery.from_name)
        .cloned()
        .unwrap_or_else(|| SharedName::new(IdentityId(0), delivery.from_name));
    StoredMessage::new(&new, sender)
}

/// Stores a checked message (see [`check_delivery`], and [`check_budget`] for its
/// [`message_bytes`]) from `from` in `to`'s mailbox, keeps the message index in step and charges
/// it. Nothing is evicted: unread mail stays until it is read.
fn deliver(
    state: &mut State,
    record: &RecordMeta,
    from: IdentityId,
    to: IdentityId,
    mut message: StoredMessage,
) {
    // The sender may have been registered by this event, after the message was made.
    message.set_sender(from, state.identities.get(&from));
    let bytes = message_bytes(&message);
    let mailbox = state
        .mailboxes
        .get_mut(&to)
        .expect("invariant: every identity has a mailbox");
    mailbox.push(message);
    if let Some(stored) = mailbox.messages().next_back() {
        state.message_index.insert(stored, to);
    }
    state.charge(bytes);
    touch(state, from, record);
}

fn check_cursor(cursor: u64, last_sequence: u64, requested: u64) -> Result<(), ApplyError> {
    if requested < cursor {
        return Err(ApplyError::CursorBackwards { cursor, requested });
    }
    if requested > last_sequence {
        return Err(ApplyError::CursorPastEnd {
            last_sequence,
            requested,
        });
    }
    Ok(())
}

/// The group named `group`.
fn group_mut<'a>(state: &'a mut State, group: &str) -> Result<&'a mut Group, ApplyError> {
    state
        .groups
        .get_mut(group)
        .ok_or_else(|| ApplyError::GroupNotFound {
            group: group.to_owned(),
        })
}

/// The group, when `actor` is its admin.
fn group_by_admin<'a>(
    state: &'a mut State,
    group: &str,
    actor: IdentityId,
    actor_name: &str,
) -> Result<&'a mut Group, ApplyError> {
    let found = group_mut(state, group)?;
    if found.admin() != actor {
        let name = actor_name.to_owned();
        return Err(ApplyError::NotGroupAdmin {
            group: group.to_owned(),
            name,
        });
    }
    Ok(found)
}

/// The group, when `member` is a member.
fn group_of_member<'a>(
    state: &'a mut State,
    group: &str,
    member: IdentityId,
    member_name: &str,
) -> Result<&'a mut Group, ApplyError> {
    let found = group_mut(state, group)?;
    if !found.is_member(member) {
        return Err(not_group_member(group, member_name));
    }
    Ok(found)
}

fn system_message(body: String, record: &RecordMeta) -> GroupMessage {
    GroupMessage {
        sequence: 0,
        id: None,
        author: None,
        author_name: None,
        body,
        reply_to: None,
        urgent: false,
        timestamp_us: record.timestamp_us,
        offset: record.offset,
        ack_slots: 0,
    }
}

/// Bytes the next push to `group` frees: the oldest message, when the ring is full.
fn ring_drop_bytes(group: &Group) -> u64 {
    if group.ring_full() {
        group.messages().next().map_or(0, group_message_bytes)
    } else {
        0
    }
}

/// Pushes `message` to the group named `group` (its acknowledgement slots set to the members
/// now), charging it and refunding the message the ring drops.
fn push_group_message(state: &mut State, group: &str, message: GroupMessage) {
    let Some(group) = state.groups.get_mut(group) else {
        return;
    };
    let evicted = group.push(message);
    let charged = group.messages().next_back().map_or(0, group_message_bytes);
    state.charge(charged);
    if let Some(evicted) = evicted {
        state.refund(group_message_bytes(&evicted));
    }
}

/// Refuses an event that stores `adds` bytes and drops `frees` when the net growth would take
/// the state past its budget. An event that does not grow the state always passes.
fn check_budget(state: &State, adds: u64, frees: u64) -> Result<(), ApplyError> {
    let needed = adds.saturating_sub(frees);
    if needed > 0 && state.bytes().saturating_add(needed) > state.budget() {
        return Err(ApplyError::StateFull {
            bytes: state.bytes(),
            needed,
            max: state.budget(),
        });
    }
    Ok(())
}

/// Moves the byte count by an entry's change from `before` to `after` bytes.
fn recharge(state: &mut State, before: u64, after: u64) {
    if after >= before {
        state.charge(after - before);
    } else {
        state.refund(before - after);
    }
}

/// Counts a message from `sender` refused because `recipient`'s mailbox (or the state) was
/// full, charging the refusal record's new name. Never refused by the budget: the record is
/// bounded by [`MAILBOX_REFUSED_SENDERS_MAX`](crate::limits::MAILBOX_REFUSED_SENDERS_MAX) names
/// and cleared by the recipient's next read.
fn note_refused(state: &mut State, recipient: IdentityId, sender: &str, timestamp_us: u64) {
    let Some(mailbox) = state.mailboxes.get_mut(&recipient) else {
        return;
    };
    let named = |mailbox: &crate::state::Mailbox| {
        mailbox
            .refusals()
            .senders()
            .any(|(named, _)| named == sender)
    };
    let was_named = named(mailbox);
    mailbox.note_refused(sender, timestamp_us);
    if !was_named && named(mailbox) {
        state.charge(refusal_bytes(sender));
    }
}

fn remove_from_rooms(state: &mut State, id: IdentityId) {
    state.rooms.retain(|_, room| !room.remove(id));
}

fn touch(state: &mut State, id: IdentityId, record: &RecordMeta) {
    if let Some(identity) = state.identities.get_mut(&id) {
        identity.last_seen_us = identity.last_seen_us.max(record.timestamp_us);
    }
}
