//! Hub → client pushes: JSON-RPC notifications, typed.
//!
//! Version 1 has one notification, `message`, which carries every kind of message a session
//! can receive. A push is an optimisation: everything pushed can also be pulled (`inbox`,
//! `group_history`), because clients may drop notifications. The MCP layer maps these structs
//! to channel notifications; it must not need to look at raw JSON.

use serde::{Deserialize, Serialize};

use super::error_code::ErrorCode;
use super::jsonrpc::{Notification, RpcError};

/// Method name of the notification that pushes a message.
pub const MESSAGE_NOTIFICATION: &str = "message";

/// Method name of the notification that tells a sender what became of its message.
pub const RECEIPT_NOTIFICATION: &str = "receipt";

/// A notification from the hub, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubNotification {
    /// A message for the session (`message`).
    Message(MessagePush),
    /// What became of a message the session sent (`receipt`).
    Receipt(Receipt),
}

/// A later step of a message the session sent. `S` is the strings' type: owned where a
/// client reads it, borrowed (`Receipt<&str>`) where the hub encodes one, which then
/// allocates nothing but the frame; both give the same JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt<S = String> {
    /// The message.
    pub msg_id: S,
    /// Its recipient.
    pub to: S,
    /// The step it reached.
    pub status: ReceiptStatus,
    /// When the step was recorded, in microseconds since the Unix epoch.
    pub ts: u64,
}

/// The step a receipt reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// The recipient's session took it.
    Delivered,
    /// The recipient's model has it.
    Read,
    /// The recipient's client holds it for its user's approval.
    Held,
    /// The recipient's client refused it; it waits, unread, for a pull.
    Refused,
    /// The recipient's client let it expire unapproved; it waits, unread, for a pull.
    Expired,
}

impl ReceiptStatus {
    /// The wire name, e.g. `"held"`.
    pub fn name(self) -> &'static str {
        match self {
            ReceiptStatus::Delivered => "delivered",
            ReceiptStatus::Read => "read",
            ReceiptStatus::Held => "held",
            ReceiptStatus::Refused => "refused",
            ReceiptStatus::Expired => "expired",
        }
    }
}

/// What kind of message is pushed or listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// A direct message (`send`).
    Direct,
    /// A question to this session (`ask`); answer with `reply` and its `ask_id`.
    Ask,
    /// An answer to this session's ask or message (`reply`).
    Reply,
    /// A question to every peer (`broadcast`); answer with `reply` and its `ask_id`.
    Broadcast,
    /// A post in a room this session joined (`room_post`).
    Room,
    /// A message in a group this session belongs to (`group_send`).
    Group,
    /// A notice from the hub about this session, e.g. it was removed from a group.
    System,
    /// An ask of this session's ended unanswered at its deadline (`reply_to` names it).
    Timeout,
}

impl MessageKind {
    /// The wire name, e.g. `"direct"`.
    pub fn name(self) -> &'static str {
        match self {
            MessageKind::Direct => "direct",
            MessageKind::Ask => "ask",
            MessageKind::Reply => "reply",
            MessageKind::Broadcast => "broadcast",
            MessageKind::Room => "room",
            MessageKind::Group => "group",
            MessageKind::System => "system",
            MessageKind::Timeout => "timeout",
        }
    }
}

/// The params of a `message` notification. Absent values are `null`. `S` is the strings'
/// type, as for [`Receipt`]: the hub encodes a `MessagePush<&str>` borrowed from the event it
/// logs, a client reads a `MessagePush` of owned strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePush<S = String> {
    /// What kind of message it is.
    pub kind: MessageKind,
    /// The sender's name (for `system`: the peer whose action it reports).
    pub from: S,
    /// The text.
    pub text: S,
    /// The stored message's id.
    pub msg_id: S,
    /// For `ask` and `broadcast`: the id to reply to.
    #[serde(default)]
    pub ask_id: Option<S>,
    /// For `reply` and threaded messages: the message or ask id it answers.
    #[serde(default)]
    pub reply_to: Option<S>,
    /// For `room`: the room.
    #[serde(default)]
    pub room: Option<S>,
    /// For `group` (and `system` notices about a group): the group.
    #[serde(default)]
    pub group: Option<S>,
    /// Whether the sender marked it time-sensitive.
    #[serde(default)]
    pub urgent: bool,
    /// When it was stored, in microseconds since the Unix epoch.
    pub ts: u64,
    /// The federation id of the hub the message came from when it arrived by federation;
    /// `null` for a local message.
    #[serde(default)]
    pub origin_hub: Option<S>,
    /// For a reply: it came after its ask had timed out.
    #[serde(default)]
    pub late: bool,
}

impl HubNotification {
    /// The notification to send.
    pub fn to_notification(&self) -> Notification {
        match self {
            HubNotification::Message(push) => {
                let params = serde_json::to_value(push)
                    .expect("invariant: a push has string keys only, so it always encodes");
                Notification::new(MESSAGE_NOTIFICATION, params)
            }
            HubNotification::Receipt(receipt) => {
                let params = serde_json::to_value(receipt)
                    .expect("invariant: a receipt has string keys only, so it always encodes");
                Notification::new(RECEIPT_NOTIFICATION, params)
            }
        }
    }

    /// Reads a notification received from the hub.
    ///
    /// # Errors
    /// `unknown_method` for a notification this version does not know (a client should
    /// ignore it); `bad_args` when the params do not match.
    pub fn parse(notification: &Notification) -> Result<HubNotification, RpcError> {
        match notification.method.as_str() {
            MESSAGE_NOTIFICATION => serde_json::from_value(notification.params.clone())
                .map(HubNotification::Message)
                .map_err(|error| {
                    let message = format!("invalid params for `message`: {error}");
                    RpcError::new(ErrorCode::BadArguments, message)
                }),
            RECEIPT_NOTIFICATION => serde_json::from_value(notification.params.clone())
                .map(HubNotification::Receipt)
                .map_err(|error| {
                    let message = format!("invalid params for `receipt`: {error}");
                    RpcError::new(ErrorCode::BadArguments, message)
                }),
            other => {
                let message = format!("unknown notification `{other}`");
                Err(RpcError::new(ErrorCode::UnknownMethod, message))
            }
        }
    }
}

impl From<MessagePush> for HubNotification {
    fn from(push: MessagePush) -> Self {
        HubNotification::Message(push)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::jsonrpc::{Incoming, parse_incoming};
    use serde_json::json;

    fn push() -> MessagePush {
        MessagePush {
            kind: MessageKind::Ask,
            from: "alice".to_owned(),
            text: "which port?".to_owned(),
            msg_id: "m-7".to_owned(),
            ask_id: Some("a-3".to_owned()),
            reply_to: None,
            room: None,
            group: None,
            urgent: false,
            ts: 1_700_000_000_000_000,
            origin_hub: None,
            late: false,
        }
    }

    #[test]
    fn a_message_push_round_trips_through_a_notification_line() {
        let notification = HubNotification::Message(push()).to_notification();
        let line = serde_json::to_string(&notification).expect("serialize");
        let Ok(Incoming::Notification(parsed)) = parse_incoming(&line) else {
            panic!("not a notification: {line}");
        };
        assert_eq!(
            HubNotification::parse(&parsed),
            Ok(HubNotification::Message(push()))
        );
        assert_eq!(parsed.params["kind"], json!("ask"));
        assert_eq!(parsed.params["reply_to"], json!(null));
    }

    /// The hub encodes borrowed pushes and receipts; clients read owned ones: same JSON.
    #[test]
    fn borrowed_and_owned_pushes_and_receipts_encode_alike() {
        let owned = MessagePush {
            reply_to: Some("m-2".to_owned()),
            group: Some("core".to_owned()),
            origin_hub: Some("hub-b".to_owned()),
            late: true,
            ..push()
        };
        let borrowed = MessagePush {
            kind: owned.kind,
            from: owned.from.as_str(),
            text: owned.text.as_str(),
            msg_id: owned.msg_id.as_str(),
            ask_id: owned.ask_id.as_deref(),
            reply_to: owned.reply_to.as_deref(),
            room: owned.room.as_deref(),
            group: owned.group.as_deref(),
            urgent: owned.urgent,
            ts: owned.ts,
            origin_hub: owned.origin_hub.as_deref(),
            late: owned.late,
        };
        let encoded = serde_json::to_string(&borrowed).expect("serialize");
        assert_eq!(encoded, serde_json::to_string(&owned).expect("serialize"));
        let read: MessagePush = serde_json::from_str(&encoded).expect("parse");
        assert_eq!(read, owned);
        let receipt = Receipt {
            msg_id: "m-9",
            to: "bob",
            status: ReceiptStatus::Held,
            ts: 7,
        };
        let encoded = serde_json::to_string(&receipt).expect("serialize");
        let read: Receipt = serde_json::from_str(&encoded).expect("parse");
        assert_eq!(
            (read.msg_id.as_str(), read.to.as_str(), read.status, read.ts),
            ("m-9", "bob", ReceiptStatus::Held, 7)
        );
    }

    #[test]
    fn an_unknown_notification_is_unknown_method() {
        let notification = Notification::new("presence", json!({}));
        let error = HubNotification::parse(&notification).expect_err("unknown");
        assert_eq!(error.code, ErrorCode::UnknownMethod);
    }

    #[test]
    fn a_push_without_optional_members_still_parses() {
        let params = json!({"kind": "direct", "from": "a", "text": "t", "msg_id": "m", "ts": 5});
        let notification = Notification::new(MESSAGE_NOTIFICATION, params);
        assert!(matches!(
            HubNotification::parse(&notification),
            Ok(HubNotification::Message(MessagePush {
                urgent: false,
                ask_id: None,
                ..
            }))
        ));
    }
}
