//! The client protocol: how sessions and the hub talk, as bytes and as types. Sans-IO: no
//! sockets, no tasks, no clock; the hub's connection tasks and the clients drive it.
//!
//! The path of an incoming frame reads in file order: [`frame`] cuts the byte stream into
//! UTF-8 lines within [`limits`]; [`jsonrpc`] classifies a line as request, response or
//! notification; [`methods`] turns a request into a typed [`ClientRequest`] whose fields
//! ([`fields`]) are within every limit; [`version`] negotiates `hello`; failures become an
//! [`ErrorCode`] ([`error_code`]) carried back with the request's id; [`notification`] types
//! the hub's pushes. `docs/protocol.md` is the spec this module implements.
//!
//! Architecture invariant: only this module knows JSON-RPC member names and the wire shape;
//! nothing here decides whether a request is allowed (registration, membership, admin rights
//! are the hub's), and nothing here blocks or does I/O.

pub mod error_code;
pub mod fields;
pub mod frame;
pub mod jsonrpc;
pub mod limits;
pub mod methods;
pub mod notification;
pub mod push_frame;
pub mod version;

#[doc(hidden)]
pub mod fuzzing;

pub use error_code::ErrorCode;
pub use fields::{
    AskDeadlineSeconds, AskId, ClientInfo, ClientKind, DeliveryName, FieldError, GitBranch,
    GroupHistoryLimit, GroupName, IdempotencyKey, InboxLimit, Limit, ListCursor, ListLimit,
    MessageId, MessageText, PeerName, RESERVED_NAMES, RoomName, SessionName, ThreadId, Token,
    WorkingDirectory,
};
pub use frame::{FrameDecoder, FrameError, WireMessage, check_frame_len, encode_frame};
pub use jsonrpc::{
    FastParams, FastRequest, Incoming, JSONRPC_VERSION, Notification, ProtocolError, RawResponse,
    Request, RequestId, Response, RpcError, parse_incoming, parse_request_fast,
};
pub use methods::*;
pub use notification::{
    HubNotification, MESSAGE_NOTIFICATION, MessageKind, MessagePush, RECEIPT_NOTIFICATION, Receipt,
    ReceiptStatus,
};
pub use version::{
    InvalidVersionRange, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN, VersionMismatch, VersionRange,
    negotiate, negotiate_between,
};
