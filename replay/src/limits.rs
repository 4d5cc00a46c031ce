//! Every bound the projections keep, in one place.
//!
//! Each constant says its unit and what happens at the limit: the oldest entry is dropped (rings,
//! pending asks, broadcasts) or the event is rejected with an [`ApplyError`](crate::ApplyError)
//! (identities, groups, members, rooms, peer hubs). The live hub checks the same constants before
//! it appends, so a rejection during replay means damage or a bug, never a normal user error.
//! Relations between constants are checked at compile time at the bottom of this file.

/// Messages kept per mailbox. At the limit the oldest message is dropped (and forgotten by
/// message-id lookups) when a new one arrives.
pub const MAILBOX_MESSAGES_MAX: usize = 500;

/// Messages kept per group, user and system messages alike. At the limit the oldest is dropped.
pub const GROUP_MESSAGES_MAX: usize = 500;

/// Members per group, the admin included. An invite past it is rejected with
/// [`ApplyError::GroupFull`](crate::ApplyError::GroupFull).
pub const GROUP_MEMBERS_MAX: usize = 256;

/// Groups per hub. A creation past it is rejected with
/// [`ApplyError::GroupsFull`](crate::ApplyError::GroupsFull).
pub const GROUPS_MAX: usize = 1024;

/// Identities ever registered on a hub (names are kept forever for audit). A registration of a
/// new name past it is rejected with
/// [`ApplyError::IdentitiesFull`](crate::ApplyError::IdentitiesFull).
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

/// Alignment of every rkyv payload, in bytes. The log guarantees it; `decode` copies into an
/// aligned buffer when a caller's slice is not.
pub const PAYLOAD_ALIGNMENT_BYTES: usize = 16;

const _: () = assert!(GROUP_MEMBERS_MAX <= IDENTITIES_MAX);
const _: () = assert!(BROADCAST_REPLIES_MAX <= PENDING_ASKS_MAX);
const _: () = assert!(MAILBOX_MESSAGES_MAX > 0 && GROUP_MESSAGES_MAX > 0);
const _: () = assert!(PAYLOAD_ALIGNMENT_BYTES.is_power_of_two());
