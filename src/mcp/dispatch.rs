//! Carries out one tool call: checks the arguments, turns them into the hub method's typed
//! params, calls the hub, and shapes the result as the JSON object the tool returns.
//!
//! Every result is an object with `"ok": true` plus the hub result's members; every failure is
//! an [`RpcError`] whose code is the hub's (or `bad_args` / `unknown_method` for input the hub
//! never sees, `hub_unreachable` when it cannot be reached). The server turns those into tool
//! errors. This file knows the tools and the hub methods, not MCP.
//!
//! Sending tools get an idempotency key per call, so [`HubSession::call_sending`] can resend
//! safely when an answer is lost. Peer texts in results are wrapped and escaped the way pushes
//! are ([`super::channel::content`]), and every result carries `unread` while mail waits
//! ([`with_unread`]).

use serde::Serialize;
use serde_json::{Map, Value};

use crate::protocol::{
    AskParams, BroadcastParams, ErrorCode, GroupCreateParams, GroupDeleteParams,
    GroupHistoryParams, GroupInfoParams, GroupInviteParams, GroupLeaveParams, GroupListParams,
    GroupMessageType, GroupRemoveParams, GroupSendParams, InboxParams, MessageKind, MessagePush,
    MethodParams, PeersPageParams, RenameParams, ReplyParams, RoomJoinParams, RoomLeaveParams,
    RoomPostParams, RoomsParams, RpcError, SendParams, StatusParams,
};

use super::channel::content;
use super::session::HubSession;
use super::tools::{self, Tool, ToolSpec};

/// Runs the tool `name` with `arguments` and returns its JSON result.
///
/// # Errors
/// `unknown_method` for a tool that does not exist, `bad_args` for arguments that do not fit
/// the tool, and otherwise the hub's error (`hub_unreachable` when it cannot be reached).
///
/// # Cancel safety
/// Dropping the future forgets the call; the hub may still carry it out.
pub async fn call_tool(
    session: &HubSession,
    name: &str,
    arguments: Option<Map<String, Value>>,
) -> Result<Value, RpcError> {
    let Some(spec) = tools::find(name) else {
        return Err(RpcError::new(
            ErrorCode::UnknownMethod,
            format!("unknown tool `{name}`; tools/list names the relay_* tools"),
        ));
    };
    let arguments = tools::check_arguments(spec, arguments)?;
    match spec.tool {
        Tool::Peers => {
            let mut value = forward::<PeersPageParams>(session, spec, arguments).await?;
            value["my_delivery"] = Value::from(session.delivery_path().name());
            value["my_delivery_note"] = Value::from(session.delivery_note());
            Ok(value)
        }
        Tool::Send => sending::<SendParams>(session, spec, arguments).await,
        Tool::Ask => sending::<AskParams>(session, spec, arguments).await,
        Tool::Inbox => inbox(session, spec, arguments).await,
        Tool::Reply => sending::<ReplyParams>(session, spec, arguments).await,
        Tool::Broadcast => sending::<BroadcastParams>(session, spec, arguments).await,
        Tool::Status => forward::<StatusParams>(session, spec, arguments).await,
        Tool::Rename => {
            let result = session
                .call(parse::<RenameParams>(spec, arguments)?)
                .await?;
            session.note_renamed(&result.name);
            success(&result)
        }
        Tool::Join => {
            let result = session
                .call(parse::<RoomJoinParams>(spec, arguments)?)
                .await?;
            session.note_joined(&result.room);
            success(&result)
        }
        Tool::Leave => {
            let params = parse::<RoomLeaveParams>(spec, arguments)?;
            let room = params.room.as_str().to_owned();
            let outcome = session.call(params).await;
            if matches!(
                &outcome,
                Ok(_)
                    | Err(RpcError {
                        code: ErrorCode::NotMember,
                        ..
                    })
            ) {
                session.note_left(&room);
            }
            success(&outcome?)
        }
        Tool::Room => sending::<RoomPostParams>(session, spec, arguments).await,
        Tool::Rooms => forward::<RoomsParams>(session, spec, arguments).await,
        Tool::GroupCreate => forward::<GroupCreateParams>(session, spec, arguments).await,
        Tool::GroupInvite => forward::<GroupInviteParams>(session, spec, arguments).await,
        Tool::GroupRemove => forward::<GroupRemoveParams>(session, spec, arguments).await,
        Tool::GroupLeave => forward::<GroupLeaveParams>(session, spec, arguments).await,
        Tool::GroupDelete => forward::<GroupDeleteParams>(session, spec, arguments).await,
        Tool::GroupInfo => forward::<GroupInfoParams>(session, spec, arguments).await,
        Tool::GroupSend => sending::<GroupSendParams>(session, spec, arguments).await,
        Tool::GroupHistory => group_history(session, spec, arguments).await,
        Tool::GroupList => forward::<GroupListParams>(session, spec, arguments).await,
    }
}

/// The JSON of a failed call: `{"ok": false, "code": "<name>", "message": "…"}` plus the
/// error's details (e.g. `retry_after_ms` of `rate_limited`).
pub fn error_value(error: &RpcError) -> Value {
    let mut object = Map::new();
    for (key, value) in &error.details {
        object.insert(key.clone(), value.clone());
    }
    object.insert("ok".to_owned(), Value::Bool(false));
    object.insert(
        "code".to_owned(),
        Value::String(error.code.name().to_owned()),
    );
    object.insert("message".to_owned(), Value::String(error.message.clone()));
    Value::Object(object)
}

/// Adds `unread` (counts) to a tool's outcome, success or failure, while anything is unread:
/// a pull-only client learns of its mail on any call.
pub async fn with_unread(
    session: &HubSession,
    outcome: Result<Value, RpcError>,
) -> Result<Value, RpcError> {
    let Some(unread) = session.unread().await else {
        return outcome;
    };
    let Ok(counts) = to_value(&unread) else {
        return outcome;
    };
    match outcome {
        Ok(mut value) => {
            if let Value::Object(object) = &mut value {
                object.insert("unread".to_owned(), counts);
            }
            Ok(value)
        }
        Err(error) => Err(error.with_detail("unread", counts)),
    }
}

/// A sending tool: the arguments get a fresh idempotency key, and a lost answer is resent
/// with it ([`HubSession::call_sending`]).
async fn sending<P: MethodParams + Clone>(
    session: &HubSession,
    spec: &ToolSpec,
    mut arguments: Value,
) -> Result<Value, RpcError> {
    if let Value::Object(object) = &mut arguments {
        object.insert(
            "idempotency_key".to_owned(),
            Value::from(session.new_idempotency_key()),
        );
    }
    let result = session.call_sending(parse::<P>(spec, arguments)?).await?;
    success(&result)
}

/// Calls the hub method whose params the arguments are, and returns its result as is.
async fn forward<P: MethodParams>(
    session: &HubSession,
    spec: &ToolSpec,
    arguments: Value,
) -> Result<Value, RpcError> {
    let result = session.call(parse::<P>(spec, arguments)?).await?;
    success(&result)
}

async fn inbox(session: &HubSession, spec: &ToolSpec, arguments: Value) -> Result<Value, RpcError> {
    let params = parse::<InboxParams>(spec, arguments)?;
    let page = session.inbox(params.limit, params.since_id).await?;
    let messages: Vec<_> = page
        .messages
        .into_iter()
        .map(|mut entry| {
            entry.text = content(&entry.as_push());
            entry
        })
        .collect();
    let mut object = Map::new();
    object.insert("ok".to_owned(), Value::Bool(true));
    object.insert("messages".to_owned(), to_value(&messages)?);
    object.insert("remaining".to_owned(), Value::from(page.remaining));
    if !page.refused.is_empty() {
        // Mail the hub refused because this mailbox was full: the model should know.
        object.insert("refused".to_owned(), to_value(&page.refused)?);
    }
    Ok(Value::Object(object))
}

/// `relay_group_history`: the hub's result with each text wrapped as a push of the group.
async fn group_history(
    session: &HubSession,
    spec: &ToolSpec,
    arguments: Value,
) -> Result<Value, RpcError> {
    let mut result = session
        .call(parse::<GroupHistoryParams>(spec, arguments)?)
        .await?;
    for message in &mut result.messages {
        let push = MessagePush {
            kind: match message.message_type {
                GroupMessageType::User => MessageKind::Group,
                GroupMessageType::System => MessageKind::System,
            },
            from: message.from.clone(),
            text: std::mem::take(&mut message.text),
            msg_id: message.id.clone(),
            ask_id: None,
            reply_to: None,
            room: None,
            group: Some(result.group.clone()),
            urgent: false,
            ts: message.ts,
            origin_hub: None,
            late: false,
        };
        message.text = content(&push);
    }
    success(&result)
}

/// The typed params of `P`'s method from checked arguments, with every protocol limit applied
/// (the same checks the hub makes).
fn parse<P: MethodParams>(spec: &ToolSpec, arguments: Value) -> Result<P, RpcError> {
    let params: P = serde_json::from_value(arguments.clone()).map_err(|error| {
        RpcError::new(
            ErrorCode::BadArguments,
            format!("invalid arguments for `{}`: {error}", spec.name),
        )
    })?;
    // Relations between fields (e.g. no member listed twice) are checked on the request.
    P::METHOD.parse_params(arguments)?;
    Ok(params)
}

/// A hub result as the tool's JSON: its members plus `"ok": true`.
fn success<R: Serialize>(result: &R) -> Result<Value, RpcError> {
    let mut value = to_value(result)?;
    if let Value::Object(object) = &mut value {
        object.insert("ok".to_owned(), Value::Bool(true));
    }
    Ok(value)
}

fn to_value<R: Serialize + ?Sized>(result: &R) -> Result<Value, RpcError> {
    serde_json::to_value(result).map_err(|error| {
        RpcError::new(
            ErrorCode::Unexpected,
            format!("encoding the result: {error}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_error_becomes_ok_false_with_the_code_name_and_its_details() {
        let error = RpcError::new(ErrorCode::RateLimited, "slow down")
            .with_detail("retry_after_ms", json!(40));
        assert_eq!(
            error_value(&error),
            json!({"ok": false, "code": "rate_limited", "message": "slow down", "retry_after_ms": 40})
        );
    }

    #[test]
    fn arguments_past_a_protocol_limit_are_bad_args() {
        let spec = tools::find("relay_send").expect("exists");
        let long_name = "n".repeat(65);
        let error = parse::<SendParams>(spec, json!({"to": long_name, "text": "hi"}))
            .expect_err("too long");
        assert_eq!(error.code, ErrorCode::BadArguments);
        assert!(error.message.contains("relay_send"), "{}", error.message);
        let spec = tools::find("relay_group_create").expect("exists");
        let error = parse::<GroupCreateParams>(spec, json!({"name": "g", "members": ["a", "a"]}))
            .expect_err("duplicate member");
        assert_eq!(error.code, ErrorCode::BadArguments);
    }

    #[test]
    fn a_success_carries_ok_true_beside_the_hub_members() {
        let result = crate::protocol::SendResult {
            msg_id: "m-1".to_owned(),
            status: crate::protocol::DeliveryStatus::Queued,
        };
        assert_eq!(
            success(&result).expect("encodes"),
            json!({"ok": true, "msg_id": "m-1", "status": "queued"})
        );
    }
}
