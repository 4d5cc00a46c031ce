//! The validated values params are made of: names, texts, ids, limits and client kinds.
//!
//! Each type checks its invariant when it is built, whether from JSON (through serde's
//! `try_from`) or from code, so a value of the type is always within the protocol's limits.
//! A failed check is a [`FieldError`], which becomes `bad_args` at the edge. Results and
//! notifications use plain strings instead: the hub is trusted to send what it stored, and
//! clients stay lenient towards a newer hub.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};
use thiserror::Error;

use super::limits::{
    ASK_DEADLINE_S_DEFAULT, ASK_DEADLINE_S_MAX, CLIENT_INFO_BYTES_MAX, CWD_BYTES_MAX,
    GIT_BRANCH_BYTES_MAX, GROUP_HISTORY_LIMIT_DEFAULT, GROUP_HISTORY_LIMIT_MAX, ID_BYTES_MAX,
    INBOX_LIMIT_DEFAULT, INBOX_LIMIT_MAX, LIST_CURSOR_BYTES_MAX, LIST_LIMIT_DEFAULT,
    LIST_LIMIT_MAX, NAME_BYTES_MAX, QUALIFIED_NAME_BYTES_MAX, SESSION_NAME_BYTES_MAX,
    TEXT_BYTES_MAX, TOKEN_BYTES_MAX,
};

/// A value outside what the protocol accepts. Becomes `bad_args`; the message names the
/// value's kind and the limit.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FieldError {
    /// An empty string where one is required.
    #[error("{what} must not be empty")]
    Empty {
        /// The kind of value, e.g. `"peer name"`.
        what: &'static str,
    },
    /// A string longer than its limit.
    #[error("{what} is {bytes} bytes long; the limit is {limit} bytes")]
    TooLong {
        /// The kind of value.
        what: &'static str,
        /// Its length, in bytes.
        bytes: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// A name with a character outside `[A-Za-z0-9._@-]`.
    #[error("{what} contains {character:?}; names use only A-Z a-z 0-9 . _ @ -")]
    NameCharacter {
        /// The kind of name.
        what: &'static str,
        /// The first character not allowed.
        character: char,
    },
    /// A control character (other than in message text, where newlines and tabs are fine).
    #[error("{what} contains the control character {character:?}")]
    ControlCharacter {
        /// The kind of value.
        what: &'static str,
        /// The first control character.
        character: char,
    },
    /// A count outside its range.
    #[error("{what} must be in 1..={max}, got {value}")]
    OutOfRange {
        /// The kind of value.
        what: &'static str,
        /// The value sent.
        value: u32,
        /// The largest value accepted.
        max: u32,
    },
}

/// Declares a validated string newtype: a constructor that checks, `as_str`, and serde that
/// checks on the way in.
macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:path) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `value` and wraps it.
            ///
            /// # Errors
            /// A [`FieldError`] saying which rule `value` breaks.
            pub fn new(value: impl Into<String>) -> Result<Self, FieldError> {
                let value = value.into();
                $check($what, &value)?;
                Ok(Self(value))
            }

            /// The checked string.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The checked string, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;

            fn try_from(value: String) -> Result<Self, FieldError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
    };
}

validated_string!(
    /// A peer's name: 1 to [`NAME_BYTES_MAX`] bytes of `[A-Za-z0-9._@-]`, or a peer of
    /// another hub, `name@hub`, of up to [`QUALIFIED_NAME_BYTES_MAX`] bytes.
    #[derive(Debug)]
    PeerName, "peer name", check_peer_name
);
validated_string!(
    /// A room's name: 1 to [`NAME_BYTES_MAX`] bytes of `[A-Za-z0-9._@-]`.
    #[derive(Debug)]
    RoomName, "room name", check_name
);
validated_string!(
    /// A group's name: 1 to [`NAME_BYTES_MAX`] bytes of `[A-Za-z0-9._@-]`, or a group homed on
    /// another hub, `name@hub`, of up to [`QUALIFIED_NAME_BYTES_MAX`] bytes.
    #[derive(Debug)]
    GroupName, "group name", check_peer_name
);
validated_string!(
    /// The text of a message, question or reason: 1 to [`TEXT_BYTES_MAX`] bytes, any
    /// characters.
    #[derive(Debug)]
    MessageText, "text", check_text
);
validated_string!(
    /// A hub-chosen message id, sent back by clients: 1 to [`ID_BYTES_MAX`] bytes, no control
    /// characters. Opaque: clients compare it, never parse it.
    #[derive(Debug)]
    MessageId, "message id", check_id
);
validated_string!(
    /// A hub-chosen ask id (also names a broadcast), sent back by `reply`: 1 to
    /// [`ID_BYTES_MAX`] bytes, no control characters. Opaque.
    #[derive(Debug)]
    AskId, "ask id", check_id
);
validated_string!(
    /// A thread label chosen by the asker: 1 to [`ID_BYTES_MAX`] bytes, no control characters.
    #[derive(Debug)]
    ThreadId, "thread id", check_id
);
validated_string!(
    /// A client's idempotency key for a sending request: 1 to [`ID_BYTES_MAX`] bytes, no
    /// control characters. A repeat of the key gets the first request's result.
    #[derive(Debug)]
    IdempotencyKey, "idempotency key", check_id
);
validated_string!(
    /// How a session's pushes reach its model, as its client says in `register`
    /// (`claude-socket`, `channel-pull`, …): 1 to [`NAME_BYTES_MAX`] bytes of `[A-Za-z0-9._@-]`.
    #[derive(Debug)]
    DeliveryName, "delivery", check_name
);
validated_string!(
    /// A session's working directory: 1 to [`CWD_BYTES_MAX`] bytes, no control characters.
    #[derive(Debug)]
    WorkingDirectory, "cwd", check_working_directory
);
validated_string!(
    /// A git branch name: 1 to [`GIT_BRANCH_BYTES_MAX`] bytes, no control characters.
    #[derive(Debug)]
    GitBranch, "git branch", check_git_branch
);
validated_string!(
    /// The client's own label for its session (e.g. Claude Code's session name): 1 to
    /// [`SESSION_NAME_BYTES_MAX`] bytes, no control characters.
    #[derive(Debug)]
    SessionName, "session name", check_session_name
);
validated_string!(
    /// The `client` of `hello`, `"<name>/<version>"` by convention: 1 to
    /// [`CLIENT_INFO_BYTES_MAX`] bytes, no control characters.
    #[derive(Debug)]
    ClientInfo, "client", check_client_info
);
validated_string!(
    /// The WebSocket token of `auth`: 1 to [`TOKEN_BYTES_MAX`] bytes, no control characters.
    /// Its `Debug` form hides the value, so it cannot reach a log.
    Token, "token", check_token
);

validated_string!(
    /// The `cursor` of `peers` and `rooms`: a `next_cursor` the hub returned, 1 to
    /// [`LIST_CURSOR_BYTES_MAX`] bytes, no control characters. Opaque: the hub checks its
    /// shape when it reads it.
    #[derive(Debug)]
    ListCursor, "cursor", check_list_cursor
);

/// A count limit in `1..=MAX`, `DEFAULT` when the param is absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "u32")]
pub struct Limit<const MAX: u32, const DEFAULT: u32>(u32);

/// The `limit` of `inbox`: `1..=INBOX_LIMIT_MAX`, default [`INBOX_LIMIT_DEFAULT`].
pub type InboxLimit = Limit<INBOX_LIMIT_MAX, INBOX_LIMIT_DEFAULT>;

/// The `limit` of `peers` and `rooms`: `1..=LIST_LIMIT_MAX`, default [`LIST_LIMIT_DEFAULT`].
pub type ListLimit = Limit<LIST_LIMIT_MAX, LIST_LIMIT_DEFAULT>;

/// The `limit` of `group_history`: `1..=GROUP_HISTORY_LIMIT_MAX`, default
/// [`GROUP_HISTORY_LIMIT_DEFAULT`].
pub type GroupHistoryLimit = Limit<GROUP_HISTORY_LIMIT_MAX, GROUP_HISTORY_LIMIT_DEFAULT>;

/// The `deadline_s` of `ask` and `broadcast`: `1..=ASK_DEADLINE_S_MAX` seconds, default
/// [`ASK_DEADLINE_S_DEFAULT`].
pub type AskDeadlineSeconds = Limit<ASK_DEADLINE_S_MAX, ASK_DEADLINE_S_DEFAULT>;

/// Names no session may take: they would read as the hub itself or as a role of the
/// conversation, and a model must never mistake a peer for its user.
pub const RESERVED_NAMES: [&str; 4] = ["relay", "user", "system", "assistant"];

/// The program a session runs in, as it says in `register`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// Claude Code.
    Claude,
    /// Codex CLI.
    Codex,
    /// Cursor CLI.
    Cursor,
    /// OpenCode.
    OpenCode,
    /// GitHub Copilot CLI.
    Copilot,
    /// Gemini / Antigravity CLI.
    Gemini,
    /// The `relay` command line, a script or CI.
    Cli,
}

impl PeerName {
    /// Whether a session may not register or rename to this name: one of
    /// [`RESERVED_NAMES`] (in any case), or a name holding `@` (kept for `name@hub`).
    pub fn is_reserved(&self) -> bool {
        self.0.contains('@')
            || RESERVED_NAMES
                .iter()
                .any(|reserved| self.0.eq_ignore_ascii_case(reserved))
    }

    /// A valid name made from arbitrary text (a session name, a directory name): characters
    /// outside `[A-Za-z0-9._@-]` become `-`, the result is cut to [`NAME_BYTES_MAX`] bytes.
    /// `None` when nothing usable is left.
    pub fn sanitized(raw: &str) -> Option<PeerName> {
        let name: String = raw
            .chars()
            .map(|character| {
                if is_name_character(character) {
                    character
                } else {
                    '-'
                }
            })
            .take(NAME_BYTES_MAX)
            .collect();
        // Every character kept is ASCII, so taking NAME_BYTES_MAX characters fits the limit.
        PeerName::new(name.trim_matches('-')).ok()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Token(<{} bytes>)", self.0.len())
    }
}

impl<const MAX: u32, const DEFAULT: u32> Limit<MAX, DEFAULT> {
    /// Checks `value` against `1..=MAX`.
    ///
    /// # Errors
    /// [`FieldError::OutOfRange`] outside the range.
    pub fn new(value: u32) -> Result<Self, FieldError> {
        if (1..=MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(FieldError::OutOfRange {
                what: "limit",
                value,
                max: MAX,
            })
        }
    }

    /// The checked count.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<const MAX: u32, const DEFAULT: u32> Default for Limit<MAX, DEFAULT> {
    fn default() -> Self {
        const {
            assert!(
                DEFAULT >= 1 && DEFAULT <= MAX,
                "invariant: a default limit is in 1..=MAX"
            )
        };
        Self(DEFAULT)
    }
}

impl<const MAX: u32, const DEFAULT: u32> TryFrom<u32> for Limit<MAX, DEFAULT> {
    type Error = FieldError;

    fn try_from(value: u32) -> Result<Self, FieldError> {
        Self::new(value)
    }
}

impl<const MAX: u32, const DEFAULT: u32> Serialize for Limit<MAX, DEFAULT> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.0)
    }
}

impl ClientKind {
    /// Every kind, in wire order.
    pub const ALL: [ClientKind; 7] = [
        ClientKind::Claude,
        ClientKind::Codex,
        ClientKind::Cursor,
        ClientKind::OpenCode,
        ClientKind::Copilot,
        ClientKind::Gemini,
        ClientKind::Cli,
    ];

    /// The wire name, e.g. `"opencode"`.
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::Claude => "claude",
            ClientKind::Codex => "codex",
            ClientKind::Cursor => "cursor",
            ClientKind::OpenCode => "opencode",
            ClientKind::Copilot => "copilot",
            ClientKind::Gemini => "gemini",
            ClientKind::Cli => "cli",
        }
    }
}

/// Whether `character` may appear in a peer, room or group name.
pub fn is_name_character(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '.' | '_' | '@' | '-')
}

fn check_name(what: &'static str, value: &str) -> Result<(), FieldError> {
    check_len(what, value, NAME_BYTES_MAX)?;
    match value
        .chars()
        .find(|&character| !is_name_character(character))
    {
        Some(character) => Err(FieldError::NameCharacter { what, character }),
        None => Ok(()),
    }
}

fn check_peer_name(what: &'static str, value: &str) -> Result<(), FieldError> {
    let limit = if value.contains('@') {
        QUALIFIED_NAME_BYTES_MAX
    } else {
        NAME_BYTES_MAX
    };
    check_len(what, value, limit)?;
    match value
        .chars()
        .find(|&character| !is_name_character(character))
    {
        Some(character) => Err(FieldError::NameCharacter { what, character }),
        None => Ok(()),
    }
}

fn check_text(what: &'static str, value: &str) -> Result<(), FieldError> {
    check_len(what, value, TEXT_BYTES_MAX)
}

fn check_id(what: &'static str, value: &str) -> Result<(), FieldError> {
    check_label(what, value, ID_BYTES_MAX)
}

fn check_working_directory(what: &'static str, value: &str) -> Result<(), FieldError> {
    check_label(what, value, CWD_BYTES_MAX)
}

fn check_list_cursor(what: &'static str, value: &str) -> Result<(), FieldError> {
    check_label(what, value, LIST_CURSOR_BYTES_MAX)
}

fn check_git_branch(what: &'static str, value: &str) -> Result<(), FieldError> {
    check_label(what, value, GIT_BRANCH_BYTES_MAX)
}

fn check_session_name(what: &'static str, value: &str) -> Result<(), FieldError> {
    check_label(what, value, SESSION_NAME_BYTES_MAX)
}

fn check_client_info(what: &'static str, value: &str) -> Result<(), FieldError> {
    check_label(what, value, CLIENT_INFO_BYTES_MAX)
}

fn check_token(what: &'static str, value: &str) -> Result<(), FieldError> {
    check_label(what, value, TOKEN_BYTES_MAX)
}

/// Non-empty, at most `limit` bytes, no control characters.
fn check_label(what: &'static str, value: &str, limit: usize) -> Result<(), FieldError> {
    check_len(what, value, limit)?;
    match value.chars().find(|character| character.is_control()) {
        Some(character) => Err(FieldError::ControlCharacter { what, character }),
        None => Ok(()),
    }
}

fn check_len(what: &'static str, value: &str, limit: usize) -> Result<(), FieldError> {
    if value.is_empty() {
        Err(FieldError::Empty { what })
    } else if value.len() > limit {
        Err(FieldError::TooLong {
            what,
            bytes: value.len(),
            limit,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_at_the_byte_limit_are_accepted_and_one_byte_more_is_rejected() {
        let at_limit = "n".repeat(NAME_BYTES_MAX);
        assert!(PeerName::new(at_limit.clone()).is_ok());
        assert!(GroupName::new(at_limit.clone()).is_ok());
        assert_eq!(
            RoomName::new(format!("{at_limit}n")),
            Err(FieldError::TooLong {
                what: "room name",
                bytes: NAME_BYTES_MAX + 1,
                limit: NAME_BYTES_MAX
            })
        );
    }

    #[test]
    fn names_use_only_letters_digits_and_dot_underscore_at_dash() {
        assert!(PeerName::new("alice.dev_2@hub-b").is_ok());
        assert_eq!(
            PeerName::new(""),
            Err(FieldError::Empty { what: "peer name" })
        );
        for bad in ["a b", "a/b", "é", "a\n", "a:b"] {
            assert!(
                matches!(PeerName::new(bad), Err(FieldError::NameCharacter { .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn text_at_the_byte_limit_is_accepted_and_one_byte_more_is_rejected() {
        // A multi-byte character at the end: the limit counts bytes, not characters.
        let at_limit = format!("{}é", "t".repeat(TEXT_BYTES_MAX - 2));
        assert_eq!(at_limit.len(), TEXT_BYTES_MAX);
        assert!(MessageText::new(at_limit.clone()).is_ok());
        assert!(matches!(
            MessageText::new(format!("{at_limit}t")),
            Err(FieldError::TooLong { bytes, .. }) if bytes == TEXT_BYTES_MAX + 1
        ));
        assert!(MessageText::new("line one\nline two\ttabbed").is_ok());
        assert_eq!(
            MessageText::new(""),
            Err(FieldError::Empty { what: "text" })
        );
    }

    #[test]
    fn ids_and_labels_reject_control_characters_and_length_past_their_limit() {
        assert!(MessageId::new("m-42").is_ok());
        assert!(ThreadId::new("auth refactor").is_ok());
        assert!(matches!(
            AskId::new("a\u{0}"),
            Err(FieldError::ControlCharacter { .. })
        ));
        assert!(AskId::new("a".repeat(ID_BYTES_MAX)).is_ok());
        assert!(AskId::new("a".repeat(ID_BYTES_MAX + 1)).is_err());
        assert!(WorkingDirectory::new("/".repeat(CWD_BYTES_MAX)).is_ok());
        assert!(WorkingDirectory::new("/".repeat(CWD_BYTES_MAX + 1)).is_err());
    }

    #[test]
    fn limits_accept_one_to_max_and_default_when_absent() {
        assert!(InboxLimit::new(0).is_err());
        assert_eq!(InboxLimit::new(1).map(Limit::get), Ok(1));
        assert_eq!(
            InboxLimit::new(INBOX_LIMIT_MAX).map(Limit::get),
            Ok(INBOX_LIMIT_MAX)
        );
        assert!(InboxLimit::new(INBOX_LIMIT_MAX + 1).is_err());
        assert!(GroupHistoryLimit::new(GROUP_HISTORY_LIMIT_MAX).is_ok());
        assert!(GroupHistoryLimit::new(GROUP_HISTORY_LIMIT_MAX + 1).is_err());
        assert_eq!(InboxLimit::default().get(), INBOX_LIMIT_DEFAULT);
        assert_eq!(
            GroupHistoryLimit::default().get(),
            GROUP_HISTORY_LIMIT_DEFAULT
        );
    }

    #[test]
    fn client_kinds_use_their_lowercase_wire_names() {
        for kind in ClientKind::ALL {
            let json = serde_json::to_string(&kind).expect("serialize");
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(serde_json::from_str::<ClientKind>(&json).ok(), Some(kind));
        }
        assert!(serde_json::from_str::<ClientKind>("\"vim\"").is_err());
    }

    #[test]
    fn sanitized_names_keep_allowed_characters_and_fit_the_limit() {
        assert_eq!(
            PeerName::sanitized("My Session: fix auth").map(String::from),
            Some("My-Session--fix-auth".to_owned())
        );
        assert_eq!(PeerName::sanitized("  ///  "), None);
        let long = PeerName::sanitized(&"x".repeat(500)).expect("usable");
        assert_eq!(long.as_str().len(), NAME_BYTES_MAX);
        assert_eq!(
            PeerName::sanitized("é-relay").map(String::from),
            Some("relay".to_owned())
        );
    }

    #[test]
    fn tokens_do_not_show_in_debug_output() {
        let token = Token::new("s3cret-token").expect("valid");
        assert!(!format!("{token:?}").contains("s3cret"));
    }
}
