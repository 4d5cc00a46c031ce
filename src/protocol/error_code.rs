//! The closed set of error codes a client can see, each with a stable snake_case name, a
//! JSON-RPC number and a one-line meaning.
//!
//! A code never changes meaning and a name or number is never reused; the message text that
//! travels with a code may change. `docs/protocol.md` carries the same table and
//! `tests/protocol_doc.rs` keeps the two equal. Numbers follow JSON-RPC 2.0: the four standard
//! codes where one fits, server-defined codes in `-32000..=-32099` otherwise.

use std::fmt;

/// Declares every error code once: variant, name, number and meaning. [`ErrorCode::ALL`],
/// the lookups and the table in `docs/protocol.md` (through its test) all come from this list.
macro_rules! error_codes {
    ($( $variant:ident = $name:literal, $number:literal, $meaning:literal; )*) => {
        /// Why a request failed, as the client sees it. Travels as `error.code` (the number)
        /// and `error.data.code` (the name) of a JSON-RPC error response; clients match on
        /// the name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode {
            $( #[doc = $meaning] $variant, )*
        }

        impl ErrorCode {
            /// Every code, in the order of the table in `docs/protocol.md`.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The stable snake_case name, e.g. `"bad_args"`.
            pub const fn name(self) -> &'static str {
                match self { $( ErrorCode::$variant => $name, )* }
            }

            /// The JSON-RPC error number, e.g. `-32602`.
            pub const fn number(self) -> i32 {
                match self { $( ErrorCode::$variant => $number, )* }
            }

            /// One line saying what the code means.
            pub const fn meaning(self) -> &'static str {
                match self { $( ErrorCode::$variant => $meaning, )* }
            }

            /// The code with this snake_case name, or `None`.
            pub fn from_name(name: &str) -> Option<ErrorCode> {
                match name {
                    $( $name => Some(ErrorCode::$variant), )*
                    _ => None,
                }
            }

            /// The code with this JSON-RPC number, or `None`.
            pub fn from_number(number: i32) -> Option<ErrorCode> {
                match number {
                    $( $number => Some(ErrorCode::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    BadMessage = "bad_msg", -32600,
        "The frame is not a JSON-RPC 2.0 message: malformed JSON, invalid UTF-8, not an object or a bad member.";
    UnknownMethod = "unknown_method", -32601,
        "The method does not exist in the negotiated protocol version.";
    BadArguments = "bad_args", -32602,
        "The params are missing, of the wrong type, unknown or outside their limits.";
    Unexpected = "unexpected", -32603,
        "The hub failed in a way it did not expect; the request may be retried.";
    FrameTooLarge = "frame_too_large", -32001,
        "The frame is larger than FRAME_BYTES_MAX (1 MiB); it was discarded.";
    ProtocolMismatch = "protocol_mismatch", -32002,
        "The client and the hub share no protocol version.";
    HelloRequired = "hello_required", -32003,
        "The session sent a request before a successful hello.";
    Unauthorized = "unauthorized", -32004,
        "The WebSocket session has not authenticated with a valid token.";
    NotRegistered = "not_registered", -32005,
        "The method needs a registered session; call register first.";
    AlreadyRegistered = "already_registered", -32006,
        "The session is already registered; use rename to change its name.";
    NameTaken = "name_taken", -32007,
        "The name is in use by another online session or another identity.";
    PeerNotFound = "peer_not_found", -32008,
        "No peer with that name is known to the hub.";
    AskNotFound = "ask_not_found", -32009,
        "No pending ask and no message received by the caller has that id.";
    NotMember = "not_member", -32010,
        "The caller, or the peer named, is not a member of that room or group.";
    AlreadyMember = "already_member", -32011,
        "The peer is already a member of that group.";
    NotAdmin = "not_admin", -32012,
        "Only the group's admin may do that.";
    GroupNotFound = "group_not_found", -32013,
        "No group with that name exists.";
    GroupExists = "group_exists", -32014,
        "A group with that name already exists.";
    LimitReached = "limit_reached", -32015,
        "A hub capacity limit was reached (groups, members, rooms, identities, the state byte budget); nothing was stored.";
    RateLimited = "rate_limited", -32016,
        "The session sent too many requests; retry later.";
    StorageError = "storage_error", -32017,
        "The hub could not make the change durable; nothing was acknowledged.";
    HubUnreachable = "hub_unreachable", -32018,
        "The client could not reach a hub; produced by clients, never sent by the hub.";
    NameReserved = "name_reserved", -32019,
        "The name is reserved (relay, user, system, assistant) or contains @ (kept for name@hub).";
    OutcomeUnknown = "outcome_unknown", -32020,
        "The request reached the hub but its answer did not come back; check before resending. Produced by clients.";
    MailboxFull = "mailbox_full", -32021,
        "The recipient's mailbox holds its bound of unread mail (MAILBOX_UNREAD_MAX messages or MAILBOX_UNREAD_BYTES_MAX of text); nothing was stored and the recipient will be told.";
    StorageFull = "storage_full", -32022,
        "The hub's disk is full: nothing was stored (except by a command of more than 16 MiB, whose message says how many of its records were); reads still work, retry once space is freed.";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ErrorCode::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format_args!("unknown error code `{name}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_and_numbers_are_unique_and_round_trip() {
        let mut names = HashSet::new();
        let mut numbers = HashSet::new();
        for &code in ErrorCode::ALL {
            assert!(names.insert(code.name()), "duplicate name {code}");
            assert!(
                numbers.insert(code.number()),
                "duplicate number {}",
                code.number()
            );
            assert_eq!(ErrorCode::from_name(code.name()), Some(code));
            assert_eq!(ErrorCode::from_number(code.number()), Some(code));
        }
    }

    #[test]
    fn names_are_snake_case_and_meanings_are_one_line() {
        for &code in ErrorCode::ALL {
            let name = code.name();
            assert!(
                name.bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte == b'_'),
                "{name} is not snake_case"
            );
            assert!(!code.meaning().contains('\n') && !code.meaning().contains('|'));
            assert!(
                code.meaning().ends_with('.'),
                "{name}: meaning is a sentence"
            );
        }
    }

    #[test]
    fn numbers_are_standard_or_server_defined() {
        for &code in ErrorCode::ALL {
            let number = code.number();
            let standard = [-32700, -32600, -32601, -32602, -32603].contains(&number);
            assert!(
                standard || (-32099..=-32000).contains(&number),
                "{code}: {number}"
            );
        }
    }

    #[test]
    fn error_codes_serialize_as_their_names() {
        let json = serde_json::to_string(&ErrorCode::NotAdmin).expect("serialize");
        assert_eq!(json, "\"not_admin\"");
        let code: ErrorCode = serde_json::from_str("\"bad_args\"").expect("deserialize");
        assert_eq!(code, ErrorCode::BadArguments);
        assert!(serde_json::from_str::<ErrorCode>("\"no_such_code\"").is_err());
    }
}
