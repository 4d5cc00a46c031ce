//! Every method a client may call: its name, its typed params and its typed result, and the
//! parsing of `(method, params)` into a [`ClientRequest`].
//!
//! Params are strict (`deny_unknown_fields`, validated field types from `fields.rs`), so a
//! request that parses is within every protocol limit; anything else is `bad_args` with a
//! message that names the problem, or `unknown_method`. Results are lenient (unknown members
//! are ignored) so an older client can read a newer hub's answers. Whether a request is
//! *allowed* (registered, member, admin) is the hub's business, not this file's.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error_code::ErrorCode;
use super::fields::{
    AskDeadlineSeconds, AskId, ClientInfo, ClientKind, DeliveryName, GitBranch, GroupHistoryLimit,
    GroupName, IdempotencyKey, InboxLimit, ListCursor, ListLimit, MessageId, MessageText, PeerName,
    RoomName, SessionName, ThreadId, Token, WorkingDirectory,
};
use super::jsonrpc::{
    FastParams, ProtocolError, Request, RequestId, Response, RpcError, parse_request_fast,
};
use super::limits::GROUP_CREATE_MEMBERS_MAX;
use super::notification::{MessageKind, ReceiptStatus};
use super::version::VersionRange;

/// Declares every method once: variant, wire name, params type and result type. [`Method`],
/// [`ClientRequest`] and the [`MethodParams`] impls are generated from this list.
macro_rules! methods {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:literal, $params:ident => $result:ident; )*) => {
        /// A method a client may call, by name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Method {
            $( $(#[doc = $doc])* $variant, )*
        }

        /// A request whose method is known and whose params are valid.
        #[derive(Clone, Debug, PartialEq)]
        pub enum ClientRequest {
            $( $(#[doc = $doc])* $variant($params), )*
        }

        impl Method {
            /// Every method, in the order of `docs/protocol.md`.
            pub const ALL: &'static [Method] = &[ $( Method::$variant, )* ];

            /// The wire name, e.g. `"group_send"`.
            pub const fn name(self) -> &'static str {
                match self { $( Method::$variant => $name, )* }
            }

            /// The method with this wire name, or `None`.
            pub fn from_name(name: &str) -> Option<Method> {
                match name {
                    $( $name => Some(Method::$variant), )*
                    _ => None,
                }
            }

            /// Parses `params` (a JSON object) as this method's params.
            ///
            /// # Errors
            /// `bad_args` naming the missing, unknown or invalid param.
            pub fn parse_params(self, params: Value) -> Result<ClientRequest, RpcError> {
                let request = match self {
                    $( Method::$variant => {
                        serde_json::from_value::<$params>(params).map(ClientRequest::$variant)
                    } )*
                };
                let request = request.map_err(|error| {
                    let message = format!("invalid params for `{}`: {error}", self.name());
                    RpcError::new(ErrorCode::BadArguments, message)
                })?;
                request.check().map_err(|message| {
                    let message = format!("invalid params for `{}`: {message}", self.name());
                    RpcError::new(ErrorCode::BadArguments, message)
                })?;
                Ok(request)
            }
        }

        impl Method {
            /// Deserializes `params` (the text of a JSON object) straight into this method's
            /// params and checks them; `None` when they do not parse or do not pass (the
            /// caller then takes the [`Value`] path, which words the error).
            fn parse_params_text(self, params: &str) -> Option<ClientRequest> {
                let request = match self {
                    $( Method::$variant => {
                        serde_json::from_str::<$params>(params).ok().map(ClientRequest::$variant)
                    } )*
                }?;
                request.check().ok()?;
                Some(request)
            }

            /// Deserializes this method's params from `deserializer` and checks them: the
            /// one-pass parse reads them this way while it reads the envelope.
            fn deserialize_params<'de, D: serde::Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<ClientRequest, D::Error> {
                let request = match self {
                    $( Method::$variant => {
                        <$params as Deserialize<'de>>::deserialize(deserializer)
                            .map(ClientRequest::$variant)?
                    } )*
                };
                request.check().map_err(serde::de::Error::custom)?;
                Ok(request)
            }
        }

        impl ClientRequest {
            /// The method this request calls.
            pub fn method(&self) -> Method {
                match self { $( ClientRequest::$variant(_) => Method::$variant, )* }
            }

            /// The params as JSON.
            pub fn params_value(&self) -> Value {
                match self { $( ClientRequest::$variant(params) => params_to_value(params), )* }
            }
        }

        $(
            impl MethodParams for $params {
                const METHOD: Method = Method::$variant;
                type Result = $result;
            }

            impl From<$params> for ClientRequest {
                fn from(params: $params) -> Self {
                    ClientRequest::$variant(params)
                }
            }
        )*
    };
}

methods! {
    /// Negotiates the protocol version; the first request of every session.
    Hello = "hello", HelloParams => HelloResult;
    /// Authenticates a WebSocket session; its first frame (WebSocket only).
    Auth = "auth", AuthParams => EmptyResult;
    /// Gives the session a name and announces it to the others.
    Register = "register", RegisterParams => RegisterResult;
    /// Changes the session's name.
    Rename = "rename", RenameParams => RenameResult;
    /// Lists known peers.
    Peers = "peers", PeersPageParams => PeersResult;
    /// Sends a direct message.
    Send = "send", SendParams => SendResult;
    /// Asks one peer a question that expects a reply.
    Ask = "ask", AskParams => AskResult;
    /// Asks every online peer a question.
    Broadcast = "broadcast", BroadcastParams => BroadcastResult;
    /// Answers an ask or a message.
    Reply = "reply", ReplyParams => ReplyResult;
    /// Pulls messages from the session's mailbox.
    Inbox = "inbox", InboxParams => InboxResult;
    /// Joins (creating if needed) an ephemeral room.
    RoomJoin = "room_join", RoomJoinParams => RoomJoinResult;
    /// Leaves a room.
    RoomLeave = "room_leave", RoomLeaveParams => EmptyResult;
    /// Posts to every other member of a room that is online.
    RoomPost = "room_post", RoomPostParams => RoomPostResult;
    /// Lists rooms.
    Rooms = "rooms", RoomsParams => RoomsResult;
    /// Creates a group with the caller as admin.
    GroupCreate = "group_create", GroupCreateParams => GroupCreateResult;
    /// Adds a peer to a group (admin only).
    GroupInvite = "group_invite", GroupInviteParams => EmptyResult;
    /// Removes a peer from a group (admin only).
    GroupRemove = "group_remove", GroupRemoveParams => EmptyResult;
    /// Leaves a group.
    GroupLeave = "group_leave", GroupLeaveParams => EmptyResult;
    /// Deletes a group (admin only).
    GroupDelete = "group_delete", GroupDeleteParams => EmptyResult;
    /// Describes a group.
    GroupInfo = "group_info", GroupInfoParams => GroupInfoResult;
    /// Sends a message to a group.
    GroupSend = "group_send", GroupSendParams => GroupSendResult;
    /// Reads a group's messages.
    GroupHistory = "group_history", GroupHistoryParams => GroupHistoryResult;
    /// Lists the caller's groups.
    GroupList = "group_list", GroupListParams => GroupListResult;
    /// Checks the other side is alive; either side may send it.
    Ping = "ping", PingParams => EmptyResult;
    /// Reports what became of a pushed message: the session took it, its model has it, or
    /// its client held, refused or let it expire.
    Ack = "ack", AckParams => EmptyResult;
    /// Looks up how far a message the caller sent has come.
    Status = "status", StatusParams => StatusResult;
    /// Counts the caller's unread mail.
    Unread = "unread", UnreadParams => UnreadResult;
    /// Describes the hub: version, settings, sessions, log (read-only; no register needed).
    HubInfo = "hub_info", HubInfoParams => HubInfoResult;
}

/// The params of one method: which method they belong to and what it returns.
pub trait MethodParams: Serialize + DeserializeOwned + Into<ClientRequest> {
    /// The method these params are for.
    const METHOD: Method;
    /// What a success returns.
    type Result: MethodResult;
}

/// A method's result type. Sealed: its JSON encoding cannot fail.
pub trait MethodResult: Serialize + DeserializeOwned + private::Sealed {}

/// `hello` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelloParams {
    /// The protocol versions the client speaks.
    pub versions: VersionRange,
    /// The client program, `"<name>/<version>"` by convention (e.g. `"relay-mcp/0.1.0"`).
    pub client: ClientInfo,
}

/// `auth` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthParams {
    /// The contents of `<data dir>/ws.token`.
    pub token: Token,
}

/// `register` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterParams {
    /// A fixed identity (`RELAY_PEER_ID`): the session takes exactly this name, or fails
    /// with `name_taken`. Absent: the hub picks a free name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<PeerName>,
    /// The client's label for the session (e.g. Claude Code's session name), a hint for the
    /// name the hub picks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_name: Option<SessionName>,
    /// The session's working directory.
    pub cwd: WorkingDirectory,
    /// The git branch checked out in `cwd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_branch: Option<GitBranch>,
    /// The program the session runs in.
    pub client: ClientKind,
    /// How pushes reach this session's model (`claude-socket`, `channel-pull`), shown to
    /// peers in `peers` while it is online.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryName>,
}

/// `rename` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameParams {
    /// The new name.
    pub new_name: PeerName,
}

/// `peers` params: one page of the known peers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeersPageParams {
    /// Most peers returned, `1..=1000` (default 500); a page also ends before
    /// `LIST_PAGE_BYTES_MAX` bytes of entries.
    #[serde(default)]
    pub limit: ListLimit,
    /// Where to start: the `next_cursor` of the previous page; absent for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<ListCursor>,
}

/// `peers` without params: the first page at the default limit (what `relay peers` sends).
/// The wire form is `{}`; the hub reads it as [`PeersPageParams`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeersParams {}

impl MethodParams for PeersParams {
    const METHOD: Method = Method::Peers;
    type Result = PeersResult;
}

impl From<PeersParams> for ClientRequest {
    fn from(_: PeersParams) -> Self {
        ClientRequest::Peers(PeersPageParams::default())
    }
}

/// `send` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendParams {
    /// The recipient.
    pub to: PeerName,
    /// The message.
    pub text: MessageText,
    /// The message id this one answers, for threading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
    /// Marks the message time-sensitive (default `false`).
    #[serde(default)]
    pub urgent: bool,
    /// A repeat of this key gets the first request's result instead of a second message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<IdempotencyKey>,
}

/// `ask` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskParams {
    /// The peer asked.
    pub to: PeerName,
    /// The question.
    pub question: MessageText,
    /// A thread label chosen by the asker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<ThreadId>,
    /// Marks the ask time-sensitive (default `false`).
    #[serde(default)]
    pub urgent: bool,
    /// Seconds until the ask ends unanswered and the asker gets a `timeout` message
    /// (`1..=86400`, default 600).
    #[serde(default)]
    pub deadline_s: AskDeadlineSeconds,
    /// A repeat of this key gets the first request's result instead of a second ask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<IdempotencyKey>,
}

/// `broadcast` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BroadcastParams {
    /// The question every peer gets.
    pub question: MessageText,
    /// Leaves the caller out (default `true`).
    #[serde(default = "default_true")]
    pub exclude_self: bool,
    /// Seconds until each ask ends unanswered (`1..=86400`, default 600).
    #[serde(default)]
    pub deadline_s: AskDeadlineSeconds,
    /// Also asks every peer the linked hubs report online, as `name@hub` (default `false`:
    /// a broadcast stays on this hub).
    #[serde(default)]
    pub all_hubs: bool,
    /// A repeat of this key gets the first request's result instead of a second broadcast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<IdempotencyKey>,
}

/// `reply` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyParams {
    /// The ask id answered, or the `msg_id` of a message the caller received.
    pub ask_id: AskId,
    /// The answer.
    pub text: MessageText,
    /// Marks the reply time-sensitive (default `false`).
    #[serde(default)]
    pub urgent: bool,
    /// A repeat of this key gets the first request's result instead of a second reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<IdempotencyKey>,
}

/// `inbox` params.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxParams {
    /// Most messages returned, `1..=100` (default 20).
    #[serde(default)]
    pub limit: InboxLimit,
    /// Only messages stored after this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_id: Option<MessageId>,
    /// Also return messages already pushed to the session (default `false`: only messages not
    /// yet delivered). Read messages come back only when this is set.
    #[serde(default)]
    pub include_pushed: bool,
}

/// `room_join` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomJoinParams {
    /// The room.
    pub room: RoomName,
}

/// `room_leave` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomLeaveParams {
    /// The room.
    pub room: RoomName,
}

/// `room_post` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomPostParams {
    /// The room.
    pub room: RoomName,
    /// The message.
    pub text: MessageText,
    /// A repeat of this key gets the first request's result instead of a second post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<IdempotencyKey>,
}

/// `rooms` params: one page of the rooms.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomsParams {
    /// Most rooms returned, `1..=1000` (default 500); a page also ends before
    /// `LIST_PAGE_BYTES_MAX` bytes of entries.
    #[serde(default)]
    pub limit: ListLimit,
    /// Where to start: the `next_cursor` of the previous page; absent for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<ListCursor>,
}

/// `group_create` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupCreateParams {
    /// The new group's name.
    pub name: GroupName,
    /// Members besides the caller (who becomes admin), at most [`GROUP_CREATE_MEMBERS_MAX`],
    /// no duplicates.
    #[serde(default)]
    pub members: Vec<PeerName>,
}

/// `group_invite` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupInviteParams {
    /// The group.
    pub group: GroupName,
    /// The peer added.
    pub peer: PeerName,
}

/// `group_remove` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRemoveParams {
    /// The group.
    pub group: GroupName,
    /// The member removed.
    pub peer: PeerName,
    /// Why, shown to the group in the system message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<MessageText>,
}

/// `group_leave` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupLeaveParams {
    /// The group.
    pub group: GroupName,
}

/// `group_delete` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupDeleteParams {
    /// The group.
    pub group: GroupName,
}

/// `group_info` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupInfoParams {
    /// The group.
    pub group: GroupName,
}

/// `group_send` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSendParams {
    /// The group.
    pub group: GroupName,
    /// The message.
    pub text: MessageText,
    /// The group message id this one answers, for threading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
    /// Marks the message time-sensitive (default `false`).
    #[serde(default)]
    pub urgent: bool,
    /// A repeat of this key gets the first request's result instead of a second message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<IdempotencyKey>,
}

/// `group_history` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupHistoryParams {
    /// The group.
    pub group: GroupName,
    /// Most messages returned, `1..=500` (default 50).
    #[serde(default)]
    pub limit: GroupHistoryLimit,
}

/// `group_list` params (none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupListParams {}

/// `ack` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckParams {
    /// The pushed message's id.
    pub msg_id: MessageId,
    /// For a group message: its group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupName>,
    /// What became of it.
    pub step: AckStep,
}

/// What a session reports of a pushed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckStep {
    /// The session took it and wrote it on, on a path that may not reach the model (a channel
    /// notification): the next `inbox` returns it once more, marked `pushed`.
    Delivered,
    /// The model has it (the client's own inbox accepted it): it is never returned as new.
    Read,
    /// The client holds it for its user's approval.
    Held,
    /// The client refused it: it is unread again.
    Refused,
    /// The client let it expire unapproved: it is unread again.
    Expired,
}

impl AckStep {
    /// The wire name, e.g. `"refused"`.
    pub fn name(self) -> &'static str {
        match self {
            AckStep::Delivered => "delivered",
            AckStep::Read => "read",
            AckStep::Held => "held",
            AckStep::Refused => "refused",
            AckStep::Expired => "expired",
        }
    }

    /// The receipt the sender gets for this step.
    pub fn receipt_status(self) -> ReceiptStatus {
        match self {
            AckStep::Delivered => ReceiptStatus::Delivered,
            AckStep::Read => ReceiptStatus::Read,
            AckStep::Held => ReceiptStatus::Held,
            AckStep::Refused => ReceiptStatus::Refused,
            AckStep::Expired => ReceiptStatus::Expired,
        }
    }
}

/// `status` params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusParams {
    /// A message the caller sent (direct, ask or reply).
    pub msg_id: MessageId,
}

/// `unread` params (none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnreadParams {}

/// `hub_info` params (none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubInfoParams {}

/// `ping` params (none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingParams {}

/// The result of methods that return nothing: `{}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyResult {}

/// `hello` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloResult {
    /// The protocol version the session speaks from now on.
    pub version: u32,
    /// The hub's program version, e.g. `"0.1.0"`.
    pub hub_version: String,
    /// The hub's id, lowercase hex.
    pub hub_id: String,
}

/// `register` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResult {
    /// The name the session now has.
    pub name: String,
}

/// `rename` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameResult {
    /// The name the session now has.
    pub name: String,
}

/// `peers` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeersResult {
    /// The caller's own name.
    pub me: String,
    /// Known peers but the caller, online first, then by name: one page, starting at the
    /// request's `cursor`.
    pub peers: Vec<PeerInfo>,
    /// Where the next page starts (pass it as `cursor`); absent on the last page. A peer whose
    /// presence changed between two pages may be listed twice or missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One peer in a `peers` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Its name.
    pub name: String,
    /// Its working directory.
    pub cwd: String,
    /// Its git branch, or `null`.
    pub git_branch: Option<String>,
    /// Its client kind (`"claude"`, `"codex"`, …).
    pub client: String,
    /// Whether a session holds the name now.
    pub online: bool,
    /// When it was last connected, in microseconds since the Unix epoch (for an online peer:
    /// when its session last sent a frame).
    pub last_seen: u64,
    /// For an online peer: how pushes reach its model, as its client said; else `null`.
    #[serde(default)]
    pub delivery: Option<String>,
    /// For a peer of a linked hub (`name@hub`): that hub's federation id; else `null`.
    #[serde(default)]
    pub hub: Option<String>,
}

/// What happened to a stored message by the time the sender is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// The recipient's session acknowledged taking it within the acknowledgement wait.
    Delivered,
    /// Stored; the recipient has not taken it (offline, or slower than the wait). Receipts
    /// and `status` tell the later steps.
    Queued,
    /// For a peer of a linked hub (`name@hub`): durable here and on its way; receipts follow
    /// as the other hub delivers it.
    Forwarded,
}

/// `status` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResult {
    /// The message.
    pub msg_id: String,
    /// Its recipient.
    pub to: String,
    /// `queued`, `delivered` or `read`.
    pub state: String,
    /// The last thing the recipient's client reported (`held`, `refused`, `expired`), or
    /// `null`.
    pub reported: Option<String>,
    /// When it was stored, in microseconds since the Unix epoch.
    pub ts: u64,
}

/// `unread` result: the caller's unread mail.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadResult {
    /// Unread direct messages, replies and hub messages (asks not included).
    pub direct: u32,
    /// Unread asks (direct and broadcast) waiting for an answer.
    pub asks: u32,
    /// Unread messages per group, by group name; groups with none are left out.
    pub groups: std::collections::BTreeMap<String, u32>,
    /// Everything above, summed.
    pub total: u32,
    /// Messages refused because the caller's mailbox was full, since it last read its inbox
    /// (a lower bound when a sender's refusals passed what the hub counts); left out when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refused: u32,
    /// Unread messages that fell out of a group's history before the caller read them, per
    /// group, since its last `group_history` of that group; groups with none are left out.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub groups_missed: std::collections::BTreeMap<String, u32>,
}

fn is_zero(count: &u32) -> bool {
    *count == 0
}

/// `hub_info` result: what `relay status` and `relay doctor` show about a running hub.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubInfoResult {
    /// The hub's `relay` version.
    pub hub_version: String,
    /// The hub's id (its log id), as in `hello`.
    pub hub_id: String,
    /// The hub's process id.
    pub pid: u32,
    /// The data dir the hub serves.
    pub data_dir: String,
    /// When the hub started, in microseconds since the epoch.
    pub started_at: u64,
    /// How it was started: `hand`, `on-demand` or `service`.
    pub started_by: String,
    /// Every setting in force, with where it came from.
    pub settings: Vec<HubSettingInfo>,
    /// The loopback WebSocket port bound, or `None`.
    #[serde(default)]
    pub ws_port: Option<u16>,
    /// Why there is no WebSocket endpoint (`no_ws`, or the bind error), or `None`.
    #[serde(default)]
    pub ws_error: Option<String>,
    /// Every connection, registered or not.
    pub sessions: Vec<HubSessionInfo>,
    /// The log.
    pub log: HubLogInfo,
    /// The newest snapshot on disk, or `None`.
    #[serde(default)]
    pub snapshot: Option<HubSnapshotInfo>,
    /// This hub's federation id, or `None` when it is not federated.
    #[serde(default)]
    pub federation_hub_id: Option<String>,
    /// One entry per `[[peer]]` of federation.toml.
    #[serde(default)]
    pub links: Vec<HubLinkInfo>,
}

/// One federation link in `hub_info`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubLinkInfo {
    /// The peer hub's federation id.
    pub hub_id: String,
    /// `connecting`, `up`, `down` or `refused` (`down` too when the link never ran).
    pub state: String,
    /// Why it is down or refused, or `None`.
    #[serde(default)]
    pub error: Option<String>,
    /// Since when, in microseconds since the epoch (0: never reported).
    pub since: u64,
    /// The first offset of our log the peer has not committed (as last logged).
    pub acknowledged: u64,
    /// Records of our log not acknowledged by the peer, at most (local records included).
    pub behind: u64,
    /// The last offset of the peer's log imported here, or `None`.
    #[serde(default)]
    pub imported: Option<u64>,
}

/// One setting in `hub_info`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubSettingInfo {
    /// The `relay.toml` key, e.g. `send_rate`.
    pub name: String,
    /// The value, as text.
    pub value: String,
    /// `default`, `relay.toml` or `flag`.
    pub source: String,
}

/// One connection in `hub_info`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubSessionInfo {
    /// Its name, or `None` before it registered.
    #[serde(default)]
    pub name: Option<String>,
    /// Its client (`claude`, `codex`, `cli` …), once registered.
    #[serde(default)]
    pub client: Option<String>,
    /// How pushes reach its model, as it said when registering.
    #[serde(default)]
    pub delivery: Option<String>,
}

/// The log in `hub_info`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubLogInfo {
    /// Offset of the oldest record retained.
    pub first_offset: u64,
    /// Offset the next record will get.
    pub next_offset: u64,
    /// Records below this are on disk.
    pub durable_offset: u64,
    /// Segment files.
    pub segments: u64,
    /// Bytes the segment files take (space reserved for appends included).
    pub bytes: u64,
}

/// The newest snapshot in `hub_info`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubSnapshotInfo {
    /// The log offset it continues from.
    pub next_offset: u64,
    /// When its file was written, in microseconds since the epoch.
    pub written_at: u64,
}

/// `send` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResult {
    /// The stored message's id.
    pub msg_id: String,
    /// Whether it was pushed already.
    pub status: DeliveryStatus,
}

/// `ask` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AskResult {
    /// The id a reply names.
    pub ask_id: String,
    /// The stored question's message id.
    pub msg_id: String,
    /// Whether it was pushed already.
    pub status: DeliveryStatus,
}

/// `broadcast` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastResult {
    /// The id every reply to the broadcast names (an ask id).
    pub broadcast_id: String,
    /// How many peers were asked (those of linked hubs included).
    pub peer_count: u32,
    /// Peers of linked hubs asked (with `all_hubs`), as `name@hub`: forwarded, their answers
    /// come back as replies; left out when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwarded: Vec<String>,
    /// Online peers not asked because their mailbox was full (`mailbox_full`); left out when
    /// none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<BroadcastRefusal>,
}

/// A peer a broadcast did not ask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastRefusal {
    /// The peer.
    pub to: String,
    /// Why: `mailbox_full`.
    pub code: ErrorCode,
}

/// `reply` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyResult {
    /// The stored reply's message id.
    pub msg_id: String,
    /// Whether it was pushed already.
    pub status: DeliveryStatus,
}

/// `inbox` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxResult {
    /// Oldest first.
    pub messages: Vec<InboxMessage>,
    /// Messages that matched but did not fit (the limit or the frame size).
    pub remaining: u32,
    /// Messages refused because the caller's mailbox was full since it last read its inbox, by
    /// sender; left out when none. An inbox read without `since_id` clears the record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedMessages>,
}

/// Messages from one sender (or from the senders past the named ones) refused because the
/// recipient's mailbox was full.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedMessages {
    /// The sender's name (`relay` for ask timeout notices); `null` for the senders past the
    /// named ones, counted together.
    pub from: Option<String>,
    /// Messages refused.
    pub count: u32,
    /// `count` is a lower bound: past it the hub refused further messages without counting.
    pub at_least: bool,
    /// When the first was refused, in microseconds since the Unix epoch.
    pub first_ts: u64,
    /// When the last counted one was refused, in microseconds since the Unix epoch.
    pub last_ts: u64,
}

/// One message in an `inbox` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxMessage {
    /// Its id.
    pub msg_id: String,
    /// `direct`, `ask`, `reply`, `broadcast` or `system`.
    pub kind: MessageKind,
    /// The sender's name.
    pub from: String,
    /// The text.
    pub text: String,
    /// The message or ask id it answers, or `null`.
    pub reply_to: Option<String>,
    /// For an ask (also one of a broadcast): the id to reply to; else `null`.
    pub ask_id: Option<String>,
    /// When it was stored, in microseconds since the Unix epoch.
    pub ts: u64,
    /// Whether the sender marked it time-sensitive.
    pub urgent: bool,
    /// Whether the session already took it by push (its model may have seen it): read it as a
    /// repeat, not as news.
    #[serde(default)]
    pub pushed: bool,
    /// For a reply: it came after its ask had timed out.
    #[serde(default)]
    pub late: bool,
}

/// `room_join` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomJoinResult {
    /// The room.
    pub room: String,
    /// Its members after the join, the caller included, by name.
    pub members: Vec<String>,
}

/// `room_post` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomPostResult {
    /// The room.
    pub room: String,
    /// How many members the post was pushed to.
    pub delivered_count: u32,
}

/// `rooms` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomsResult {
    /// Rooms by name: one page, starting at the request's `cursor`.
    pub rooms: Vec<RoomInfo>,
    /// Where the next page starts (pass it as `cursor`); absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One room in a `rooms` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// Its name.
    pub name: String,
    /// Its members, by name.
    pub members: Vec<String>,
}

/// `group_create` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCreateResult {
    /// The group.
    pub group: String,
    /// Its members, the admin first.
    pub members: Vec<String>,
}

/// `group_info` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfoResult {
    /// The group.
    pub group: String,
    /// Its admin.
    pub admin: String,
    /// Its members, the admin first.
    pub members: Vec<GroupMember>,
    /// Messages the caller has not read.
    pub unread_count: u32,
}

/// One member in a `group_info` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    /// Its name.
    pub name: String,
    /// Whether it is connected now.
    pub online: bool,
}

/// `group_send` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSendResult {
    /// The stored message's id.
    pub msg_id: String,
    /// For a group homed on another hub (`name@hub`): that hub. The post is forwarded there,
    /// which orders it; it comes back to this hub's members with the home's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
}

/// `group_history` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupHistoryResult {
    /// The group.
    pub group: String,
    /// Oldest first.
    pub messages: Vec<GroupMessage>,
    /// Unread messages left after this call.
    pub unread_remaining: u32,
    /// Unread messages that fell out of the history (past its bound) before the caller read
    /// them, since its last `group_history` of this group (which this call clears); left out
    /// when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missed: u32,
}

/// One message in a `group_history` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMessage {
    /// Its message id.
    pub id: String,
    /// The sender (for a system message: the member whose action it reports).
    pub from: String,
    /// The text.
    pub text: String,
    /// When it was stored, in microseconds since the Unix epoch.
    pub ts: u64,
    /// Whether a member wrote it or the hub reported an event.
    #[serde(rename = "type")]
    pub message_type: GroupMessageType,
    /// Whether the session already took it by push (its model may have seen it).
    #[serde(default)]
    pub pushed: bool,
}

/// Who wrote a group message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupMessageType {
    /// A member, with `group_send`.
    User,
    /// The hub: a member joined, left or was removed.
    System,
}

/// `group_list` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupListResult {
    /// The caller's groups, by name.
    pub groups: Vec<GroupSummary>,
}

/// One group in a `group_list` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// Its name.
    pub name: String,
    /// Messages the caller has not read.
    pub unread_count: u32,
}

impl ClientRequest {
    /// Parses a method name and its params.
    ///
    /// # Errors
    /// `unknown_method` for a name no method has; `bad_args` for invalid params.
    pub fn parse(method: &str, params: Value) -> Result<ClientRequest, RpcError> {
        let Some(method_known) = Method::from_name(method) else {
            let message = format!("unknown method `{method}`");
            return Err(RpcError::new(ErrorCode::UnknownMethod, message));
        };
        method_known.parse_params(params)
    }

    /// Parses a classified request, keeping its id for the answer.
    ///
    /// # Errors
    /// A [`ProtocolError`] carrying the request's id: `unknown_method` or `bad_args`.
    pub fn from_request(request: Request) -> Result<(RequestId, ClientRequest), ProtocolError> {
        match ClientRequest::parse(&request.method, request.params) {
            Ok(client_request) => Ok((request.id, client_request)),
            Err(error) => Err(ProtocolError {
                id: Some(request.id),
                error,
            }),
        }
    }

    /// Reads one frame as a valid request in a single pass ([`parse_request_fast`]): the
    /// params go straight into the method's struct as the envelope is read, with no [`Value`]
    /// in between (or, when they come before the method, as raw text deserialized after).
    ///
    /// `None` for anything but a well-formed request of a known method with valid params: the
    /// caller then runs [`parse_incoming`](super::jsonrpc::parse_incoming) and
    /// [`ClientRequest::from_request`], which classify the frame and give the documented
    /// error. When this returns `Some`, that path returns the same id and request.
    pub fn parse_line_fast(line: &str) -> Option<(RequestId, ClientRequest)> {
        let (id, fast) = parse_request_fast(line, |name| Method::from_name(name).map(ParamsSeed))?;
        let request = match fast.params {
            FastParams::Typed(request) => request,
            FastParams::Raw(text) => Method::from_name(fast.method)?.parse_params_text(text)?,
        };
        Some((id, request))
    }

    /// The idempotency key of a sending request, if it carries one.
    pub fn idempotency_key(&self) -> Option<&IdempotencyKey> {
        match self {
            ClientRequest::Send(params) => params.idempotency_key.as_ref(),
            ClientRequest::Ask(params) => params.idempotency_key.as_ref(),
            ClientRequest::Broadcast(params) => params.idempotency_key.as_ref(),
            ClientRequest::Reply(params) => params.idempotency_key.as_ref(),
            ClientRequest::RoomPost(params) => params.idempotency_key.as_ref(),
            ClientRequest::GroupSend(params) => params.idempotency_key.as_ref(),
            _ => None,
        }
    }

    /// The request to send with this id.
    pub fn into_request(self, id: RequestId) -> Request {
        Request::new(id, self.method().name(), self.params_value())
    }

    /// Checks what field types cannot: relations between fields.
    fn check(&self) -> Result<(), String> {
        if let ClientRequest::GroupCreate(params) = self {
            if params.members.len() > GROUP_CREATE_MEMBERS_MAX {
                return Err(format!(
                    "`members` lists {} peers; the limit is {GROUP_CREATE_MEMBERS_MAX}",
                    params.members.len()
                ));
            }
            let mut seen = std::collections::HashSet::new();
            if let Some(duplicate) = params.members.iter().find(|member| !seen.insert(*member)) {
                return Err(format!("`members` lists `{duplicate}` twice"));
            }
        }
        Ok(())
    }
}

/// A method's params read by the one-pass parse ([`ClientRequest::parse_line_fast`]).
struct ParamsSeed(Method);

impl<'de> serde::de::DeserializeSeed<'de> for ParamsSeed {
    type Value = ClientRequest;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<ClientRequest, D::Error> {
        self.0.deserialize_params(deserializer)
    }
}

impl Response {
    /// A success carrying a typed result.
    pub fn success<R: MethodResult>(id: RequestId, result: &R) -> Response {
        let result = serde_json::to_value(result)
            .expect("invariant: method results have string keys only, so they always encode");
        Response::result(id, result)
    }
}

mod private {
    /// Implemented only for this file's result types, whose JSON encoding cannot fail.
    pub trait Sealed {}
}

macro_rules! method_results {
    ($( $result:ident ),* $(,)?) => {
        $(
            impl private::Sealed for $result {}
            impl MethodResult for $result {}
        )*
    };
}

method_results!(
    EmptyResult,
    HelloResult,
    RegisterResult,
    RenameResult,
    PeersResult,
    SendResult,
    AskResult,
    BroadcastResult,
    ReplyResult,
    InboxResult,
    RoomJoinResult,
    RoomPostResult,
    RoomsResult,
    GroupCreateResult,
    GroupInfoResult,
    GroupSendResult,
    GroupHistoryResult,
    GroupListResult,
    StatusResult,
    UnreadResult,
    HubInfoResult,
);

fn params_to_value<P: Serialize>(params: &P) -> Value {
    serde_json::to_value(params)
        .expect("invariant: params have string keys only, so they always encode")
}

fn default_true() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::jsonrpc::{Incoming, parse_incoming};
    use crate::protocol::limits::{NAME_BYTES_MAX, TEXT_BYTES_MAX};
    use serde_json::json;

    /// Runs one request line through the whole parse, as the hub does.
    /// The one-pass parse, when it takes the line, must agree with it.
    fn parse_line(line: &str) -> Result<(RequestId, ClientRequest), ProtocolError> {
        let parsed = match parse_incoming(line)? {
            Incoming::Request(request) => ClientRequest::from_request(request),
            other => panic!("not a request: {other:?}"),
        };
        if let Some(fast) = ClientRequest::parse_line_fast(line) {
            assert_eq!(Ok(&fast), parsed.as_ref(), "one-pass parse of {line}");
        }
        parsed
    }

    #[test]
    fn the_one_pass_parse_reads_params_in_either_order_and_leaves_positional_ones() {
        let method_first =
            r#"{"jsonrpc":"2.0","id":1,"method":"send","params":{"to":"bob","text":"hi"}}"#;
        let params_first =
            r#"{"params":{"to":"bob","text":"hi"},"method":"send","id":1,"jsonrpc":"2.0"}"#;
        let (_, first) = parse_line(method_first).expect("a valid send");
        assert_eq!(
            ClientRequest::parse_line_fast(method_first),
            Some((RequestId::Number(1), first.clone()))
        );
        assert_eq!(
            ClientRequest::parse_line_fast(params_first),
            Some((RequestId::Number(1), first))
        );
        for left in [
            r#"{"jsonrpc":"2.0","id":1,"method":"send","params":["bob","hi"]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"send","params":{"to":"bob","text":"hi","x":1}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"send","params":{"to":"bob"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"nope","params":{}}"#,
        ] {
            assert_eq!(ClientRequest::parse_line_fast(left), None, "{left}");
            assert!(parse_line(left).is_err(), "{left}");
        }
    }

    fn request_line(method: &str, params: Value) -> String {
        json!({"jsonrpc": "2.0", "id": 42, "method": method, "params": params}).to_string()
    }

    fn parse(method: &str, params: Value) -> Result<ClientRequest, (Option<RequestId>, ErrorCode)> {
        parse_line(&request_line(method, params))
            .map(|(_, request)| request)
            .map_err(|error| (error.id, error.error.code))
    }

    fn bad_args() -> Result<ClientRequest, (Option<RequestId>, ErrorCode)> {
        Err((Some(RequestId::Number(42)), ErrorCode::BadArguments))
    }

    #[test]
    fn method_names_are_unique_and_round_trip() {
        let mut names = std::collections::HashSet::new();
        for &method in Method::ALL {
            assert!(names.insert(method.name()));
            assert_eq!(Method::from_name(method.name()), Some(method));
        }
        assert_eq!(Method::ALL.len(), 28);
    }

    #[test]
    fn an_unknown_method_is_unknown_method_carrying_the_id() {
        assert_eq!(
            parse("teleport", json!({})),
            Err((Some(RequestId::Number(42)), ErrorCode::UnknownMethod))
        );
    }

    #[test]
    fn wrong_param_types_are_bad_args_carrying_the_request_id() {
        assert_eq!(parse("send", json!({"to": 5, "text": "hi"})), bad_args());
        assert_eq!(
            parse("send", json!({"to": "bob", "text": "hi", "urgent": "yes"})),
            bad_args()
        );
        assert_eq!(parse("inbox", json!({"limit": "20"})), bad_args());
        assert_eq!(parse("inbox", json!({"limit": 1.5})), bad_args());
        assert_eq!(
            parse("group_create", json!({"name": "g", "members": "bob"})),
            bad_args()
        );
    }

    #[test]
    fn missing_and_unknown_params_are_bad_args_naming_them() {
        let Err(missing) = parse_line(&request_line("send", json!({"to": "bob"}))) else {
            panic!("accepted");
        };
        assert_eq!(missing.error.code, ErrorCode::BadArguments);
        assert!(
            missing.error.message.contains("`text`"),
            "{}",
            missing.error.message
        );
        let Err(unknown) = parse_line(&request_line("peers", json!({"verbose": true}))) else {
            panic!("accepted");
        };
        assert!(
            unknown.error.message.contains("`verbose`"),
            "{}",
            unknown.error.message
        );
    }

    #[test]
    fn names_at_their_limit_are_accepted_and_one_byte_more_is_rejected() {
        let at_limit = "n".repeat(NAME_BYTES_MAX);
        let past = format!("{at_limit}n");
        assert!(parse("send", json!({"to": at_limit, "text": "hi"})).is_ok());
        assert_eq!(parse("send", json!({"to": past, "text": "hi"})), bad_args());
        assert!(parse("room_join", json!({"room": at_limit})).is_ok());
        assert_eq!(parse("room_join", json!({"room": past})), bad_args());
        assert!(parse("group_info", json!({"group": at_limit})).is_ok());
        assert_eq!(parse("group_info", json!({"group": past})), bad_args());
        assert_eq!(parse("rename", json!({"new_name": ""})), bad_args());
        assert_eq!(parse("rename", json!({"new_name": "a b"})), bad_args());
    }

    #[test]
    fn text_at_its_limit_is_accepted_and_one_byte_more_is_rejected() {
        let at_limit = "t".repeat(TEXT_BYTES_MAX);
        let past = format!("{at_limit}t");
        for (method, field, extra) in [
            ("send", "text", json!({"to": "bob"})),
            ("ask", "question", json!({"to": "bob"})),
            ("broadcast", "question", json!({})),
            ("reply", "text", json!({"ask_id": "a-1"})),
            ("room_post", "text", json!({"room": "lobby"})),
            ("group_send", "text", json!({"group": "core"})),
            (
                "group_remove",
                "reason",
                json!({"group": "core", "peer": "bob"}),
            ),
        ] {
            let with = |text: &str| {
                let mut params = extra.clone();
                params[field] = json!(text);
                params
            };
            assert!(
                parse(method, with(&at_limit)).is_ok(),
                "{method} at the limit"
            );
            assert_eq!(
                parse(method, with(&past)),
                bad_args(),
                "{method} past the limit"
            );
            assert_eq!(parse(method, with("")), bad_args(), "{method} empty");
        }
    }

    #[test]
    fn count_limits_are_accepted_up_to_their_max_and_rejected_past_it() {
        assert!(parse("inbox", json!({"limit": 100})).is_ok());
        assert_eq!(parse("inbox", json!({"limit": 101})), bad_args());
        assert_eq!(parse("inbox", json!({"limit": 0})), bad_args());
        assert_eq!(parse("inbox", json!({"limit": -1})), bad_args());
        assert!(parse("group_history", json!({"group": "g", "limit": 500})).is_ok());
        assert_eq!(
            parse("group_history", json!({"group": "g", "limit": 501})),
            bad_args()
        );
        let members = |count: usize| {
            (0..count)
                .map(|index| format!("p{index}"))
                .collect::<Vec<_>>()
        };
        let at_limit = members(GROUP_CREATE_MEMBERS_MAX);
        assert!(parse("group_create", json!({"name": "g", "members": at_limit})).is_ok());
        let past = members(GROUP_CREATE_MEMBERS_MAX + 1);
        assert_eq!(
            parse("group_create", json!({"name": "g", "members": past})),
            bad_args()
        );
    }

    #[test]
    fn group_create_rejects_a_member_listed_twice() {
        let params = json!({"name": "g", "members": ["bob", "carol", "bob"]});
        assert_eq!(parse("group_create", params), bad_args());
    }

    #[test]
    fn optional_params_take_their_documented_defaults() {
        assert_eq!(
            parse("inbox", json!({})),
            Ok(ClientRequest::Inbox(InboxParams {
                limit: InboxLimit::new(20).expect("in range"),
                since_id: None,
                include_pushed: false,
            }))
        );
        let Ok(ClientRequest::Broadcast(broadcast)) = parse("broadcast", json!({"question": "?"}))
        else {
            panic!("broadcast did not parse");
        };
        assert!(broadcast.exclude_self);
        let Ok(ClientRequest::GroupHistory(history)) =
            parse("group_history", json!({"group": "g"}))
        else {
            panic!("group_history did not parse");
        };
        assert_eq!(history.limit.get(), 50);
        let Ok(ClientRequest::Send(send)) = parse("send", json!({"to": "b", "text": "x"})) else {
            panic!("send did not parse");
        };
        assert!(!send.urgent && send.reply_to.is_none());
    }

    #[test]
    fn register_accepts_the_documented_clients_only() {
        let params = |client: &str| json!({"cwd": "/src/app", "client": client});
        for kind in ClientKind::ALL {
            assert!(
                parse("register", params(kind.name())).is_ok(),
                "{}",
                kind.name()
            );
        }
        assert_eq!(parse("register", params("emacs")), bad_args());
        assert_eq!(parse("register", json!({"client": "cli"})), bad_args());
    }

    #[test]
    fn hello_rejects_an_empty_version_range_as_bad_args() {
        let params = json!({"versions": {"min": 2, "max": 1}, "client": "x/1"});
        assert_eq!(parse("hello", params), bad_args());
    }

    #[test]
    fn typed_requests_round_trip_through_the_wire() {
        let requests: Vec<ClientRequest> = vec![
            HelloParams {
                versions: VersionRange::HUB,
                client: ClientInfo::new("relay-mcp/0.1.0").expect("valid"),
            }
            .into(),
            SendParams {
                to: PeerName::new("bob").expect("valid"),
                text: MessageText::new("hé\nthere").expect("valid"),
                reply_to: Some(MessageId::new("m-1").expect("valid")),
                urgent: true,
                idempotency_key: Some(IdempotencyKey::new("mcp-1").expect("valid")),
            }
            .into(),
            AckParams {
                msg_id: MessageId::new("g-2").expect("valid"),
                group: Some(GroupName::new("core").expect("valid")),
                step: AckStep::Read,
            }
            .into(),
            InboxParams::default().into(),
            PingParams {}.into(),
        ];
        for request in requests {
            let id = RequestId::String(request.method().name().to_owned());
            let line = serde_json::to_string(&request.clone().into_request(id.clone()))
                .expect("serialize");
            assert_eq!(parse_line(&line), Ok((id, request)));
        }
    }

    #[test]
    fn typed_results_encode_with_their_documented_member_names() {
        let history = GroupHistoryResult {
            group: "core".to_owned(),
            messages: vec![GroupMessage {
                id: "g-1".to_owned(),
                from: "alice".to_owned(),
                text: "hi".to_owned(),
                ts: 1,
                message_type: GroupMessageType::System,
                pushed: false,
            }],
            unread_remaining: 0,
            missed: 0,
        };
        let response = Response::success(RequestId::Number(1), &history);
        let result = response.outcome.clone().expect("success");
        assert_eq!(result["messages"][0]["type"], json!("system"));
        assert_eq!(response.into_result::<GroupHistoryResult>(), Ok(history));
        let send = SendResult {
            msg_id: "m-2".to_owned(),
            status: DeliveryStatus::Queued,
        };
        let value = serde_json::to_value(&send).expect("serialize");
        assert_eq!(value, json!({"msg_id": "m-2", "status": "queued"}));
    }

    #[test]
    fn results_ignore_members_a_newer_hub_adds() {
        let response = Response::result(RequestId::Number(1), json!({"name": "a", "extra": 1}));
        assert_eq!(
            response.into_result::<RegisterResult>(),
            Ok(RegisterResult {
                name: "a".to_owned()
            })
        );
    }
}
