//! Schema version 1 of every event kind: the frozen archived structs.
//!
//! # Frozen
//!
//! Every struct and enum in this file is a frozen on-disk format. rkyv has no schema evolution:
//! adding, removing, reordering or retyping a field changes the bytes, so old records would no
//! longer decode. To change a kind, add `v2.rs` with the new struct, bump that kind's schema
//! version in the codec, upcast v1 to v2 on read, and add golden files for v2. The golden tests
//! in `tests/golden.rs` fail on any accidental change here.
//!
//! The [`Event`](crate::Event) variants hold the current version's struct, so encoding needs no
//! conversion. This file must not grow logic: the rules live in `apply.rs`.

use rkyv::{Archive, Deserialize, Serialize};

/// The program a session runs in, as it said when it registered.
///
/// # Frozen
///
/// Archived as a one-byte tag; variants may only be appended in a new schema version.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// Claude Code.
    Claude,
    /// Codex CLI.
    Codex,
    /// Cursor CLI (`cursor-agent`).
    Cursor,
    /// OpenCode.
    OpenCode,
    /// GitHub Copilot CLI.
    Copilot,
    /// Gemini / Antigravity CLI.
    Gemini,
    /// The `relay` command line or a script.
    Cli,
    /// Any other client, by the name it gave; keeps new clients from needing a schema bump.
    Other(String),
}

/// A session registered under a name (or returned under a name it held before).
///
/// # Frozen
///
/// Kind `identity_registered`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct IdentityRegistered {
    /// The name the session registered under.
    pub name: String,
    /// The session's working directory.
    pub cwd: String,
    /// The git branch checked out in `cwd`, when there is one.
    pub git_branch: Option<String>,
    /// The program the session runs in.
    pub client: ClientKind,
}

/// An identity changed its name; its mailbox, groups and admin rights follow it.
///
/// # Frozen
///
/// Kind `identity_renamed`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct IdentityRenamed {
    /// The current name before the rename.
    pub old_name: String,
    /// The name after the rename.
    pub new_name: String,
}

/// A session disconnected; its identity stays, with a last-seen time.
///
/// # Frozen
///
/// Kind `identity_left`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct IdentityLeft {
    /// The identity's current name.
    pub name: String,
}

/// An identity that had left, with no unread mail, no refusals to show, no group membership
/// and no pending ask, was forgotten: its name, mailbox (read mail only) and idempotency keys
/// are dropped, and its name is free. The hub forgets an identity that left long ago, or the
/// one that left longest ago when the identity table is full and a new name registers. A later
/// registration of the same name creates a new identity (a new id).
///
/// # Frozen
///
/// Kind `identity_forgotten`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct IdentityForgotten {
    /// The identity's current name.
    pub name: String,
    /// The identity's id (the offset of the record that first registered it), so the event
    /// cannot forget another identity that later took the name.
    pub identity_id: u64,
}

/// A direct message, stored in the recipient's mailbox.
///
/// # Frozen
///
/// Kind `message_sent`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct MessageSent {
    /// Hub-chosen message id, unique among stored messages (e.g. `m-42`).
    pub id: String,
    /// Sender's current name.
    pub from: String,
    /// Recipient's current name.
    pub to: String,
    /// The text.
    pub body: String,
    /// The message id this one answers, for threading.
    pub reply_to: Option<String>,
    /// Whether the sender marked it time-sensitive.
    pub urgent: bool,
    /// A thread label chosen by the sender.
    pub thread: Option<String>,
}

/// A question that expects a reply: direct, or one of the asks of a broadcast.
///
/// # Frozen
///
/// Kind `ask_sent`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct AskSent {
    /// Hub-chosen message id of the stored question.
    pub id: String,
    /// Hub-chosen ask id; a reply names it to route back to the asker.
    pub ask_id: String,
    /// Asker's current name.
    pub from: String,
    /// Target's current name.
    pub to: String,
    /// The question.
    pub body: String,
    /// Shared by every ask of one broadcast; `None` for a direct ask.
    pub broadcast_id: Option<String>,
    /// Whether the asker marked it time-sensitive.
    pub urgent: bool,
    /// A thread label chosen by the asker.
    pub thread: Option<String>,
}

/// An answer to an ask or to a message, stored in the recipient's mailbox.
///
/// # Frozen
///
/// Kind `reply_sent`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct ReplySent {
    /// Hub-chosen message id of the reply.
    pub id: String,
    /// Replier's current name.
    pub from: String,
    /// Recipient's current name (the asker, or the author of the message answered).
    pub to: String,
    /// The answer.
    pub body: String,
    /// The ask id or message id answered. A pending ask with this id is resolved.
    pub reply_to: String,
    /// Whether the replier marked it time-sensitive.
    pub urgent: bool,
    /// A thread label.
    pub thread: Option<String>,
}

/// A direct message, ask, reply or broadcast ask was refused because the recipient's mailbox was
/// full (`mailbox_full`): nothing of the message was stored. Counted in the recipient's refusal
/// record, which its next inbox read shows and clears. The hub logs at most
/// `MAILBOX_REFUSALS_PER_SENDER_MAX` of these per sender and recipient between two reads.
///
/// # Frozen
///
/// Kind `message_refused`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct MessageRefused {
    /// Sender's current name.
    pub from: String,
    /// Recipient's current name (the owner of the full mailbox).
    pub to: String,
    /// Bytes of text of the refused message (for audit: which bound it passed).
    pub body_bytes: u64,
}

/// The recipient's session acknowledged a pushed message: it took it and wrote it on (delivered).
/// The inbox offers it once more, marked as pushed, until it is read.
///
/// # Frozen
///
/// Kind `message_pushed`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct MessagePushed {
    /// Recipient's current name.
    pub recipient: String,
    /// The message id pushed.
    pub message_id: String,
}

/// The recipient read its mailbox up to and including a sequence number.
///
/// # Frozen
///
/// Kind `mailbox_cursor_advanced`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct MailboxCursorAdvanced {
    /// Recipient's current name.
    pub recipient: String,
    /// Every message with a sequence up to this one is read.
    pub up_to_sequence: u64,
}

/// An identity joined an ephemeral room (created on first join).
///
/// # Frozen
///
/// Kind `room_joined`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct RoomJoined {
    /// Room name.
    pub room: String,
    /// Member's current name.
    pub name: String,
}

/// An identity left a room (destroyed when its last member leaves).
///
/// # Frozen
///
/// Kind `room_left`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct RoomLeft {
    /// Room name.
    pub room: String,
    /// Member's current name.
    pub name: String,
}

/// A message to every member of a room; delivered live, never stored.
///
/// # Frozen
///
/// Kind `room_message_sent`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct RoomMessageSent {
    /// Room name.
    pub room: String,
    /// Hub-chosen message id.
    pub id: String,
    /// Poster's current name; must be a member.
    pub from: String,
    /// The text.
    pub body: String,
}

/// A persistent group was created; its creator is its admin and first member.
///
/// # Frozen
///
/// Kind `group_created`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct GroupCreated {
    /// Group name, unique on the hub.
    pub group: String,
    /// Creator's current name.
    pub admin: String,
}

/// The admin added a member to a group.
///
/// # Frozen
///
/// Kind `group_member_invited`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct GroupMemberInvited {
    /// Group name.
    pub group: String,
    /// Who invited (must be the admin), current name.
    pub actor: String,
    /// Who was added, current name.
    pub member: String,
}

/// The admin removed a member, with a reason shown to the group.
///
/// # Frozen
///
/// Kind `group_member_removed`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct GroupMemberRemoved {
    /// Group name.
    pub group: String,
    /// Who removed (must be the admin), current name.
    pub actor: String,
    /// Who was removed, current name.
    pub member: String,
    /// Why, as the admin wrote it.
    pub reason: String,
}

/// A member left a group.
///
/// # Frozen
///
/// Kind `group_left`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct GroupLeft {
    /// Group name.
    pub group: String,
    /// Leaving member's current name.
    pub member: String,
}

/// A member wrote to a group; stored in the group's ring.
///
/// # Frozen
///
/// Kind `group_message_sent`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct GroupMessageSent {
    /// Group name.
    pub group: String,
    /// Hub-chosen message id.
    pub id: String,
    /// Author's current name; must be a member.
    pub from: String,
    /// The text.
    pub body: String,
    /// The message id this one answers, for threading.
    pub reply_to: Option<String>,
    /// Whether the author marked it time-sensitive.
    pub urgent: bool,
}

/// A member read a group's history up to and including a sequence number.
///
/// # Frozen
///
/// Kind `group_cursor_advanced`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct GroupCursorAdvanced {
    /// Group name.
    pub group: String,
    /// Reading member's current name.
    pub member: String,
    /// Every group message with a sequence up to this one is read by `member`.
    pub up_to_sequence: u64,
}

/// The admin deleted a group and its history.
///
/// # Frozen
///
/// Kind `group_deleted`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct GroupDeleted {
    /// Group name.
    pub group: String,
    /// Who deleted (must be the admin), current name.
    pub actor: String,
}

/// An event received from another hub, kept as that hub's raw record payload.
///
/// # Frozen
///
/// Kind `imported`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct Imported {
    /// The hub whose log holds the original record.
    #[serde(serialize_with = "crate::event::serialize_hub_id")]
    pub origin_hub: u128,
    /// The original record's offset in the origin hub's log.
    pub origin_offset: u64,
    /// The original record's event kind number. Named `inner_kind` in JSON, where `kind` is
    /// already this event's own kind.
    #[serde(rename = "inner_kind")]
    pub kind: u16,
    /// The original record's schema version.
    pub schema_version: u16,
    /// The original record's exact rkyv payload: untrusted, decoded with validation only.
    pub payload: Vec<u8>,
}

/// A peer hub acknowledged having made our log durable up to an offset.
///
/// # Frozen
///
/// Kind `peer_acknowledged`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct PeerAcknowledged {
    /// The acknowledging hub.
    #[serde(serialize_with = "crate::event::serialize_hub_id")]
    pub peer_hub: u128,
    /// Highest offset of our log the peer has made durable.
    pub offset: u64,
}

/// A record received over a federation link from another hub, kept as the origin's exact
/// payload. `apply` decodes it (validated access only: untrusted bytes), translates its names
/// and ids to this hub's view (`alice` of hub `a` becomes `alice@a`, `bob@b` on hub `b` becomes
/// `bob`; ids likewise) and applies the result. Progress per origin hub is kept by offset, so
/// an import is applied once: an offset at or below the last imported is rejected.
///
/// # Frozen
///
/// Kind `link_imported`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct LinkImported {
    /// The origin hub's federation id (authenticated by the link).
    pub origin_hub: String,
    /// This hub's federation id when it imported (names `x@local_hub` are local).
    pub local_hub: String,
    /// The origin's log id.
    #[serde(serialize_with = "crate::event::serialize_hub_id")]
    pub origin_log_id: u128,
    /// The record's offset in the origin's log.
    pub origin_offset: u64,
    /// The origin's record timestamp, microseconds since the epoch.
    pub origin_timestamp_us: u64,
    /// The CRC the origin shipped with the record (the link's resume check).
    pub origin_crc: u32,
    /// The original record's event kind number. Named `inner_kind` in JSON.
    #[serde(rename = "inner_kind")]
    pub kind: u16,
    /// The original record's schema version.
    pub schema_version: u16,
    /// The original record's exact rkyv payload.
    pub payload: Vec<u8>,
    /// Set when this hub could not apply the record (a full mailbox, say): the progress moves
    /// on, nothing else changes, and the reason stays in the log.
    pub refused: Option<String>,
}

/// A peer hub has committed our log below an offset (the link's ack), so retention may drop
/// what it no longer needs.
///
/// # Frozen
///
/// Kind `link_acknowledged`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct LinkAcknowledged {
    /// The peer hub's federation id.
    pub peer_hub: String,
    /// The first offset of our log the peer has not committed.
    pub durable: u64,
}

/// The hub started: presence from before is gone, so every room is empty again.
///
/// # Frozen
///
/// Kind `hub_started`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct HubStarted {
    /// The starting hub's id.
    #[serde(serialize_with = "crate::event::serialize_hub_id")]
    pub hub_id: u128,
    /// The hub's software version, for audit.
    pub version: String,
}

/// The model behind the recipient's session has a stored message: its session handed it on
/// through a path that reaches the model, or the model pulled it. Out of order is fine: the
/// read cursor stays where it was.
///
/// # Frozen
///
/// Kind `message_read`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct MessageRead {
    /// Recipient's current name.
    pub recipient: String,
    /// The message id read.
    pub message_id: String,
}

/// The recipient's client reported what became of a message its session handed on: `held`
/// (waiting for the user's approval), `refused` or `expired` (the model never got it: the
/// message is unread again).
///
/// # Frozen
///
/// Kind `message_status_reported`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct MessageStatusReported {
    /// Recipient's current name.
    pub recipient: String,
    /// The message id reported on.
    pub message_id: String,
    /// `held`, `refused` or `expired`; other words are kept for audit and change nothing.
    pub status: String,
}

/// An ask gets a deadline: when it passes without a reply, the asker is told.
///
/// # Frozen
///
/// Kind `ask_deadline_set`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct AskDeadlineSet {
    /// The pending ask.
    pub ask_id: String,
    /// When it ends, in microseconds since the Unix epoch.
    pub deadline_us: u64,
}

/// An ask reached its deadline unanswered: it stops being pending (a late reply is still
/// delivered, marked late) and the asker's mailbox gets a message of kind `timeout`.
///
/// # Frozen
///
/// Kind `ask_expired`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct AskExpired {
    /// The ask that ended.
    pub ask_id: String,
    /// Hub-chosen id of the timeout message stored for the asker.
    pub message_id: String,
    /// The timeout message's text.
    pub body: String,
}

/// A request carrying an idempotency key completed; a repeat of the key gets this result.
///
/// # Frozen
///
/// Kind `request_completed`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct RequestCompleted {
    /// Caller's current name.
    pub caller: String,
    /// The caller's idempotency key.
    pub key: String,
    /// The result as it was answered (opaque to the projection: protocol JSON).
    pub result: String,
}

/// A member's session took a group message (`read`: and handed it to the model).
///
/// # Frozen
///
/// Kind `group_message_acknowledged`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct GroupMessageAcknowledged {
    /// Group name.
    pub group: String,
    /// Member's current name.
    pub member: String,
    /// The group message id.
    pub message_id: String,
    /// Whether the model has it (else only the session took it).
    pub read: bool,
}

/// The first record of a command that writes several events: the records up to the matching
/// [`BatchEnded`] are one atomic batch. Replay applies a batch only once its end is read; a
/// batch cut short (a crash, a torn tail) is never applied: at the end of the log it is held
/// back, and once a later `hub_started` shows the hub restarted without finishing it, it is
/// discarded. Changes no state by itself.
///
/// # Frozen
///
/// Kind `batch_started`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct BatchStarted {
    /// The method whose events follow (`group_create`, `broadcast`, `inbox`), for audit.
    pub command: String,
}

/// The last record of an atomic batch (see [`BatchStarted`]).
///
/// # Frozen
///
/// Kind `batch_ended`, schema version 1.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[rkyv(derive(Debug))]
pub struct BatchEnded {
    /// Records between the `batch_started` and this one; replay checks it.
    pub event_count: u32,
}
