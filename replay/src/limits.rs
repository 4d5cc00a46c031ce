//! Every bound the projections keep, in one place.
//!
//! Each constant says its unit and what happens at the limit: the oldest entry is dropped (group
//! rings, read mail, pending asks, broadcasts) or the event is rejected with an
//! [`ApplyError`](crate::ApplyError) (unread mail, identities, groups, members, rooms, peer hubs). The live hub checks the same constants before
//! it appends, so a rejection during replay means damage or a bug, never a normal user error.
//! Relations between constants are checked at compile time at the bottom of this file.

/// Largest message text, ask question, broadcast question or removal reason, in bytes of UTF-8.
/// Longer text is rejected with `bad_args` and nothing is stored; an imported event with longer
/// text is refused by the translation (`crate::federation`).
pub const TEXT_BYTES_MAX: usize = 64 << 10;

/// Largest local peer, room or group name, in bytes. Names are 1 to this many bytes of
/// `[A-Za-z0-9._@-]`; anything else is rejected with `bad_args`.
pub const NAME_BYTES_MAX: usize = 64;

/// Largest federation hub id, in bytes (`[a-z0-9-]`).
pub const HUB_ID_BYTES_MAX: usize = 32;

/// Largest name of another hub's peer as this hub writes it: `name@hub`.
pub const QUALIFIED_NAME_BYTES_MAX: usize = NAME_BYTES_MAX + 1 + HUB_ID_BYTES_MAX;

/// Largest message id, ask id or thread id a client may send back, in bytes. Ids are chosen by
/// the hub (thread ids by the client) and are opaque; a longer one is rejected with `bad_args`.
/// Hub-chosen ids are far shorter (`m-<offset>`), so an id of another hub, `m-<offset>@hub`,
/// fits too.
pub const ID_BYTES_MAX: usize = 128;

/// Identities of one other hub's peers this hub keeps (created when a delivery first names
/// `name@hub`, forgotten like any identity that left). A fifth of [`IDENTITIES_MAX`]: a linked
/// hub that names ever new peers cannot crowd out this hub's own sessions. A delivery that would
/// create one more is rejected with
/// [`ApplyError::RemoteIdentitiesFull`](crate::ApplyError::RemoteIdentitiesFull) (an import is
/// then logged refused, a local send answered `limit_reached`).
pub const REMOTE_IDENTITIES_PER_HUB_MAX: u32 = (IDENTITIES_MAX / 5) as u32;

/// Unread messages (queued, or delivered but not read) per mailbox. Unread mail is never
/// dropped: a direct message, ask, reply or broadcast ask to a mailbox holding this many is
/// refused before anything of it is appended. The hub answers the sender `mailbox_full` (naming
/// the recipient and this bound) and `apply` rejects such an event with
/// [`ApplyError::MailboxFull`](crate::ApplyError::MailboxFull). A hub `timeout` notice for a full
/// mailbox is not stored either; the ask still ends and the refusal is counted for the recipient.
///
/// A client that reports a read message `refused` or `expired` makes it unread again even at the
/// bound, so unread messages may exceed it by at most [`MAILBOX_READ_MAX`]; the messages kept
/// never exceed `MAILBOX_UNREAD_MAX + MAILBOX_READ_MAX`.
pub const MAILBOX_UNREAD_MAX: usize = 10_000;

/// Bytes of message text (UTF-8) unread per mailbox. A message whose text would take the unread
/// text past it is refused like one past [`MAILBOX_UNREAD_MAX`] (`mailbox_full`,
/// [`ApplyError::MailboxFull`](crate::ApplyError::MailboxFull)). 16 MiB holds 10,000 messages of
/// 1.6 KiB on average, or 256 of the largest (64 KiB); it bounds one mailbox's unread text,
/// whatever the senders send, at 16 MiB (worst case with read text and bookkeeping: about
/// 30 MiB a mailbox). An empty mailbox always admits the largest message.
pub const MAILBOX_UNREAD_BYTES_MAX: usize = 16 << 20;

/// Read messages kept per mailbox, so `inbox` with `include_pushed`, `status` and replies by
/// message id still find them. Past it the oldest read message is forgotten (and by message-id
/// lookups); unread messages never are.
pub const MAILBOX_READ_MAX: usize = 500;

/// Bytes of text of the read messages kept per mailbox. Past it the oldest read message is
/// forgotten, like past [`MAILBOX_READ_MAX`].
pub const MAILBOX_READ_BYTES_MAX: usize = 4 << 20;

/// Senders a mailbox's refusal record names, each with its count of messages refused because
/// the mailbox was full. Refusals from further senders are counted together, unnamed. The record
/// is shown by the recipient's next `inbox` and cleared by it.
pub const MAILBOX_REFUSED_SENDERS_MAX: usize = 64;

/// Refusals logged (`message_refused`) per sender and mailbox until the recipient reads its
/// inbox; the unnamed senders past [`MAILBOX_REFUSED_SENDERS_MAX`] share one such allowance.
/// Later refusals are still answered `mailbox_full` but not logged, so the count the recipient
/// sees is then a lower bound ("at least"). This keeps a hostile sender from growing the log by
/// sending to a full mailbox: at most `(MAILBOX_REFUSED_SENDERS_MAX + 1) *
/// MAILBOX_REFUSALS_PER_SENDER_MAX` refusal records per mailbox between two reads. A refusal
/// past it is rejected by `apply` with
/// [`ApplyError::RefusalsCounted`](crate::ApplyError::RefusalsCounted).
pub const MAILBOX_REFUSALS_PER_SENDER_MAX: u32 = 16;

/// Messages kept per group, user and system messages alike. At the limit the oldest is dropped;
/// each member that had not read it counts it as missed and is told how many it missed by its
/// next `group_history` (which clears the count).
pub const GROUP_MESSAGES_MAX: usize = 500;

/// Members per group, the admin included. An invite past it is rejected with
/// [`ApplyError::GroupFull`](crate::ApplyError::GroupFull).
pub const GROUP_MEMBERS_MAX: usize = 256;

/// Groups per hub. A creation past it is rejected with
/// [`ApplyError::GroupsFull`](crate::ApplyError::GroupsFull).
pub const GROUPS_MAX: usize = 1024;

/// Identities a hub knows at once. A registration of a new name past it is rejected with
/// [`ApplyError::IdentitiesFull`](crate::ApplyError::IdentitiesFull). Identities leave the table
/// only by an `identity_forgotten` event, which applies only to one that left and that nothing
/// waits for (see [`State::forget_blocker`](crate::State::forget_blocker)); the hub forgets
/// identities that left long ago, and at this bound the one that left longest ago to admit a
/// new name. The log keeps every name for audit.
pub const IDENTITIES_MAX: usize = 10_000;

/// Names remembered per identity (its current name and earlier ones). At the limit the oldest
/// earlier name is forgotten; the current name is always kept.
pub const IDENTITY_NAMES_MAX: usize = 64;

/// Asks waiting for a reply. At the limit the oldest pending ask is dropped: a late reply to it
/// is then delivered as a plain reply to a message.
pub const PENDING_ASKS_MAX: usize = 4096;

/// Broadcasts whose replies are collected. At the limit the oldest broadcast is dropped.
pub const BROADCASTS_MAX: usize = 256;

/// Asks that timed out kept so a late reply still routes back; the oldest is forgotten first.
pub const EXPIRED_ASKS_MAX: usize = 4096;

/// Idempotency keys remembered per identity (with the result each got); the oldest is
/// forgotten first.
pub const IDEMPOTENCY_KEYS_MAX: usize = 1024;

/// Replies collected per broadcast. At the limit further replies are still delivered to the
/// asker's mailbox but no longer listed on the broadcast.
pub const BROADCAST_REPLIES_MAX: usize = 1024;

/// Rooms that exist at once (a room exists while it has members). A join that would create one
/// more is rejected with [`ApplyError::RoomsFull`](crate::ApplyError::RoomsFull).
pub const ROOMS_MAX: usize = 1024;

/// Members per room. A join past it is rejected with
/// [`ApplyError::RoomFull`](crate::ApplyError::RoomFull).
pub const ROOM_MEMBERS_MAX: usize = 1024;

/// Peer hubs tracked for federation (imported offsets and acknowledgements). An import from or
/// an acknowledgement by one more hub is rejected with
/// [`ApplyError::PeerHubsFull`](crate::ApplyError::PeerHubsFull).
pub const PEER_HUBS_MAX: usize = 256;

/// Bytes the state may hold, as counted by [`State::bytes`](crate::State::bytes): the text of
/// everything stored from input (mailbox messages with their ids and names, group messages,
/// idempotency results, identities' names and working directories, refusal records) plus
/// [`STATE_ENTRY_BYTES`] per stored entry and [`STATE_ACK_BYTES`] per group acknowledgement a
/// group message may collect. The count limits multiply far past any machine: without this
/// budget the worst cases would be, roughly (entry charges included),
///
/// | what | count limits | worst case |
/// |---|---|---|
/// | mailboxes | `IDENTITIES_MAX` × (`MAILBOX_UNREAD_BYTES_MAX` + `MAILBOX_READ_BYTES_MAX` + (`MAILBOX_UNREAD_MAX` + `MAILBOX_READ_MAX`) × (`STATE_ENTRY_BYTES` + ids and names)) | ≈ 10,000 × (20 MiB of text + 10,500 × 1.6 KiB) ≈ 360 GiB |
/// | group rings | `GROUPS_MAX` × `GROUP_MESSAGES_MAX` × (`TEXT_BYTES_MAX` + `GROUP_MEMBERS_MAX` × `STATE_ACK_BYTES`) | ≈ 1,024 × 500 × 68 KiB ≈ 34 GiB |
/// | idempotency results | `IDENTITIES_MAX` × `IDEMPOTENCY_KEYS_MAX` × (key + result + `STATE_ENTRY_BYTES`) | ≈ 10,000 × 1,024 × 1 KiB ≈ 10 GiB |
/// | group members | `GROUPS_MAX` × `GROUP_MEMBERS_MAX` × `STATE_ENTRY_BYTES` | 128 MiB |
/// | identities | `IDENTITIES_MAX` × (`IDENTITY_NAMES_MAX` × `NAME_BYTES_MAX` + working directory) | ≈ 50 MiB |
///
/// The budget bounds their sum at 4 GiB, which a hub's machine holds (the state lives in memory,
/// and a snapshot of it is at most [`SNAPSHOT_BODY_BYTES_MAX`]; a state past that is still
/// served from the log). An event that stores something (a message, ask, reply, group message,
/// removal notice, group, member, identity, name, idempotency result) and would take the count
/// past the budget is rejected by `apply` with
/// [`ApplyError::StateFull`](crate::ApplyError::StateFull), the state unchanged; the hub answers
/// `limit_reached` and appends nothing, and an import from a linked hub is logged refused. Events
/// that drain the state or must go through are never refused by it: reads, cursor moves, pushes
/// and acknowledgements, status reports, leaves, deletions, forgetting, refusal counts, a
/// returning session's registration and an ask's expiry (whose notice is then not stored, like
/// at a full mailbox). The little some of them store (a departure notice, a status word, a
/// refusal record) may take the count past the budget; storing is refused until it is back
/// under. Rooms (presence only, no history: `ROOMS_MAX` × `ROOM_MEMBERS_MAX` ids, ≈ 8 MiB),
/// pending, expired and broadcast asks (fixed global counts, ≈ 100 MiB) and federation progress
/// (`PEER_HUBS_MAX` hubs) are bounded by their counts alone and not charged.
pub const STATE_BYTES_MAX: u64 = 4 << 30;

/// Bytes charged for each stored entry on top of its text (a mailbox message, a group message,
/// an idempotency result, an identity with its mailbox, a group, a group member, a named refusal
/// record): about what the entry's fixed fields, allocations and index entries take in memory,
/// so a flood of empty messages is bounded like a flood of long ones. A mailbox message's
/// fields are 64 bytes inline ([`STORED_MESSAGE_BYTES_MAX`](crate::state::mailbox::STORED_MESSAGE_BYTES_MAX)),
/// its rare fields boxed apart, its id derived and its sender (id and name) shared in the common
/// case, its index entry one word; `relay bench memory` measures about 320 bytes of heap per
/// queued message of 200 bytes at 20,000 messages, about 120 beyond its text (366 and 166 with
/// a 72-byte message in rings and a hash index that doubled, 702 and 500 before that layout).
/// The charge stays above what a message with every field set takes, so the budget still bounds
/// memory. A test checks the structs fit it.
pub const STATE_ENTRY_BYTES: u64 = 512;

/// Bytes charged per member a group message may be acknowledged by (the members when it was
/// sent: a member that joins later never sees it), reserved when the message is stored and
/// refunded when it leaves the ring, so acknowledgements, which are never refused, stay within
/// the budget. About one entry of a member's acknowledgement map.
pub const STATE_ACK_BYTES: u64 = 16;

/// Bytes of a snapshot body (the archived `State`). rkyv's 32-bit relative offsets
/// (`pointer_width_32`, the log's format flags) address at most 2 GiB, past which rkyv would
/// panic; the encoder's writer refuses the first write past this bound instead, so
/// [`snapshot_encode_checked`](crate::snapshot::snapshot_encode_checked) returns
/// [`SnapshotEncodeError::TooLarge`](crate::snapshot::SnapshotEncodeError::TooLarge): no
/// snapshot is taken and the hub keeps running on the log (start-up then replays from the last
/// snapshot that fitted).
pub const SNAPSHOT_BODY_BYTES_MAX: usize = 1 << 30;

/// Bytes of mailbox text (read and unread) the poisoned-dart check of a snapshot compares
/// exactly against the live state: mailboxes are sampled in a rotation until this many bytes
/// (or [`SNAPSHOT_SAMPLE_MAILBOXES_MAX`]) are taken, so the copy the check needs stays small.
pub const SNAPSHOT_SAMPLE_BYTES_MAX: u64 = 4 << 20;

/// Mailboxes (and as many groups) one snapshot check compares exactly.
pub const SNAPSHOT_SAMPLE_MAILBOXES_MAX: usize = 64;

/// Alignment of every rkyv payload, in bytes. The log guarantees it; `decode` copies into an
/// aligned buffer when a caller's slice is not.
pub const PAYLOAD_ALIGNMENT_BYTES: usize = 16;

const _: () = assert!(GROUP_MEMBERS_MAX <= IDENTITIES_MAX);
const _: () = assert!(BROADCAST_REPLIES_MAX <= PENDING_ASKS_MAX);
const _: () = assert!(MAILBOX_UNREAD_MAX > 0 && MAILBOX_READ_MAX > 0 && GROUP_MESSAGES_MAX > 0);
// The largest message (64 KiB, `TEXT_BYTES_MAX` of the protocol) always fits an empty mailbox;
// the hub checks the same relation against the protocol's constant.
const _: () = assert!(MAILBOX_UNREAD_BYTES_MAX >= 64 << 10 && MAILBOX_READ_BYTES_MAX >= 64 << 10);
const _: () = assert!(MAILBOX_REFUSED_SENDERS_MAX > 0 && MAILBOX_REFUSALS_PER_SENDER_MAX > 0);
const _: () = assert!(PAYLOAD_ALIGNMENT_BYTES.is_power_of_two());
// Offsets inside a body within the bound fit rkyv's signed 32-bit relative pointers.
const _: () = assert!(SNAPSHOT_BODY_BYTES_MAX <= i32::MAX as usize);
// The budget holds the largest message many times over.
const _: () = assert!(STATE_BYTES_MAX >= 1 << 30);
const _: () = assert!(STATE_ENTRY_BYTES > 0 && STATE_ACK_BYTES > 0);
// The budget is far below what the count limits multiply to, so it is the bound that holds:
// the mailboxes alone could hold `IDENTITIES_MAX * MAILBOX_UNREAD_BYTES_MAX` of unread text.
const _: () =
    assert!(STATE_BYTES_MAX < (IDENTITIES_MAX as u64) * (MAILBOX_UNREAD_BYTES_MAX as u64));
const _: () = assert!(
    STATE_BYTES_MAX < (GROUPS_MAX as u64) * (GROUP_MESSAGES_MAX as u64) * (TEXT_BYTES_MAX as u64)
);
