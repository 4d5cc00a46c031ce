//! The event schema: one [`EventKind`] per state change, the owned [`Event`] enum, and the codec.
//!
//! Kind numbers and names are part of the log format and of `relay log dump` output: a number or
//! a name never changes meaning and is never reused. Number 0 is reserved (a zeroed record header
//! marks the end of a segment). This module knows bytes and types only, never the rules of the
//! projections (those live in `apply.rs`).

pub mod codec;
pub mod v1;

pub use v1::{
    AskDeadlineSet, AskExpired, AskSent, BatchEnded, BatchStarted, ClientKind, GroupCreated,
    GroupCursorAdvanced, GroupDeleted, GroupLeft, GroupMemberInvited, GroupMemberRemoved,
    GroupMessageAcknowledged, GroupMessageSent, HubStarted, IdentityForgotten, IdentityLeft,
    IdentityRegistered, IdentityRenamed, Imported, LinkAcknowledged, LinkImported,
    MailboxCursorAdvanced, MessagePushed, MessageRead, MessageRefused, MessageSent,
    MessageStatusReported, PeerAcknowledged, ReplySent, RequestCompleted, RoomJoined, RoomLeft,
    RoomMessageSent,
};

/// Declares every event kind once: its variant, stable number and stable name. The enum
/// [`EventKind`], the enum [`Event`] and the codec's dispatch are all generated from this list,
/// so they cannot disagree.
macro_rules! event_kinds {
    ($( $(#[doc = $doc:literal])* $variant:ident = $number:literal, $name:literal; )*) => {
        /// What kind of state change an event is. The `u16` number is stored in every record
        /// header; the snake_case name is what tools print.
        ///
        /// # Frozen
        ///
        /// Numbers and names never change meaning and are never reused.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(rename_all = "snake_case")]
        #[repr(u16)]
        pub enum EventKind {
            $( $(#[doc = $doc])* $variant = $number, )*
        }

        impl EventKind {
            /// Every kind, in number order.
            pub const ALL: &'static [EventKind] = &[ $( EventKind::$variant, )* ];

            /// The stable number stored in record headers.
            pub const fn number(self) -> u16 {
                self as u16
            }

            /// The kind with this number, or `None` for a number no kind has.
            pub const fn from_number(number: u16) -> Option<EventKind> {
                match number {
                    $( $number => Some(EventKind::$variant), )*
                    _ => None,
                }
            }

            /// The stable snake_case name, e.g. `"message_sent"`.
            pub const fn name(self) -> &'static str {
                match self {
                    $( EventKind::$variant => $name, )*
                }
            }

            /// The kind with this snake_case name, or `None`.
            pub fn from_name(name: &str) -> Option<EventKind> {
                match name {
                    $( $name => Some(EventKind::$variant), )*
                    _ => None,
                }
            }

            /// The schema version new events of this kind are written with.
            pub const fn current_schema_version(self) -> u16 {
                // Every kind is at version 1. A kind that gets a v2 returns 2 here and gains an
                // upcast arm in `codec::decode`.
                1
            }
        }

        /// One state change, owned. Each variant holds the current schema version's frozen
        /// struct (see [`v1`]); older versions are upcast into it on decode.
        ///
        /// Serialized to JSON as one object whose `kind` field carries [`EventKind::name`].
        #[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        pub enum Event {
            $(
                #[doc = concat!("Kind `", $name, "` (", stringify!($number), "): see [`v1::",
                    stringify!($variant), "`].")]
                $variant($variant),
            )*
        }

        impl Event {
            /// This event's kind.
            pub const fn kind(&self) -> EventKind {
                match self {
                    $( Event::$variant(_) => EventKind::$variant, )*
                }
            }
        }

        $(
            impl From<$variant> for Event {
                fn from(payload: $variant) -> Event {
                    Event::$variant(payload)
                }
            }
        )*

        /// Encodes the payload of `event` with its current schema version at the end of
        /// `buffer`, which must be empty (rkyv's positions count from the buffer's start).
        fn encode_payload_into(
            event: &Event,
            buffer: &mut rkyv::util::AlignedVec<16>,
        ) -> Result<(), rkyv::rancor::Error> {
            match event {
                $(
                    Event::$variant(payload) => {
                        rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(payload, buffer)
                            .map(|_| ())
                    }
                )*
            }
        }

        /// Decodes a schema-version-1 payload of `kind` with validated access.
        fn decode_v1_payload(kind: EventKind, bytes: &[u8]) -> Result<Event, rkyv::rancor::Error> {
            match kind {
                $(
                    EventKind::$variant => {
                        type Archived = rkyv::Archived<v1::$variant>;
                        let archived = rkyv::access::<Archived, rkyv::rancor::Error>(bytes)?;
                        rkyv::deserialize::<v1::$variant, rkyv::rancor::Error>(archived)
                            .map(Event::$variant)
                    }
                )*
            }
        }
    };
}

event_kinds! {
    /// A session registered under a name.
    IdentityRegistered = 1, "identity_registered";
    /// An identity changed its name.
    IdentityRenamed = 2, "identity_renamed";
    /// A session disconnected.
    IdentityLeft = 3, "identity_left";
    /// An identity that left long ago, with nothing pending, was forgotten.
    IdentityForgotten = 4, "identity_forgotten";
    /// A direct message was sent.
    MessageSent = 10, "message_sent";
    /// An ask (direct or part of a broadcast) was sent.
    AskSent = 11, "ask_sent";
    /// A reply to an ask or a message was sent.
    ReplySent = 12, "reply_sent";
    /// The recipient's session acknowledged taking a pushed message (delivered).
    MessagePushed = 13, "message_pushed";
    /// A mailbox's read cursor advanced.
    MailboxCursorAdvanced = 14, "mailbox_cursor_advanced";
    /// The model behind the recipient's session has a message (read).
    MessageRead = 15, "message_read";
    /// The recipient's client said a message was held, refused or expired.
    MessageStatusReported = 16, "message_status_reported";
    /// An ask got its deadline.
    AskDeadlineSet = 17, "ask_deadline_set";
    /// An ask reached its deadline unanswered.
    AskExpired = 18, "ask_expired";
    /// A message was refused because the recipient's mailbox was full.
    MessageRefused = 19, "message_refused";
    /// An identity joined a room.
    RoomJoined = 20, "room_joined";
    /// An identity left a room.
    RoomLeft = 21, "room_left";
    /// A message was posted to a room.
    RoomMessageSent = 22, "room_message_sent";
    /// A group was created.
    GroupCreated = 30, "group_created";
    /// A member was invited into a group.
    GroupMemberInvited = 31, "group_member_invited";
    /// A member was removed from a group.
    GroupMemberRemoved = 32, "group_member_removed";
    /// A member left a group.
    GroupLeft = 33, "group_left";
    /// A message was posted to a group.
    GroupMessageSent = 34, "group_message_sent";
    /// A member's group history cursor advanced.
    GroupCursorAdvanced = 35, "group_cursor_advanced";
    /// A group was deleted.
    GroupDeleted = 36, "group_deleted";
    /// A member's session took a group message (and perhaps handed it to the model).
    GroupMessageAcknowledged = 37, "group_message_acknowledged";
    /// An event was imported from another hub.
    Imported = 40, "imported";
    /// A peer hub acknowledged our log up to an offset.
    PeerAcknowledged = 41, "peer_acknowledged";
    /// A record received over a federation link (names and ids translated on apply).
    LinkImported = 42, "link_imported";
    /// A peer hub committed our log below an offset.
    LinkAcknowledged = 43, "link_acknowledged";
    /// The hub started; rooms are empty again.
    HubStarted = 50, "hub_started";
    /// A request with an idempotency key completed.
    RequestCompleted = 60, "request_completed";
    /// The events of one command follow, up to a `batch_ended`: applied all or none.
    BatchStarted = 70, "batch_started";
    /// The end of a command's batch of events.
    BatchEnded = 71, "batch_ended";
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

/// Serializes a hub id as 32 lowercase hex digits: JSON numbers cannot carry 128 bits exactly.
pub(crate) fn serialize_hub_id<S: serde::Serializer>(
    hub_id: &u128,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("{hub_id:032x}"))
}
