//! JSON-RPC 2.0 envelopes: requests, responses, notifications, and the classification of an
//! incoming line into one of them.
//!
//! This is the only place that knows the JSON-RPC member names. [`parse_incoming`] never
//! panics and never loses a request id it could read: when a line is rejected, the
//! [`ProtocolError`] carries the id to answer with (`null` only when none could be read).
//! Method names and params are not interpreted here; `methods.rs` does that.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use thiserror::Error;

use super::error_code::ErrorCode;
use super::frame::{WireMessage, sealed};
use super::limits::{ERROR_MESSAGE_BYTES_MAX, REQUEST_ID_BYTES_MAX};

/// The value of the `jsonrpc` member of every message.
pub const JSONRPC_VERSION: &str = "2.0";

/// A request id, echoed in the response: an integer in the `i64` range or a string of at most
/// [`REQUEST_ID_BYTES_MAX`] bytes. `null`, fractions and longer strings are rejected.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// A numeric id.
    Number(i64),
    /// A string id.
    String(String),
}

/// A call that expects a response.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Echoed in the response.
    pub id: RequestId,
    /// The method name, not yet checked against the known methods.
    pub method: String,
    /// The params; always a JSON object (an absent or `null` `params` reads as `{}`).
    pub params: Value,
}

/// A one-way message: no id, no response. Hub pushes are notifications.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// The notification name.
    pub method: String,
    /// The params as sent (`{}` when absent or `null`).
    pub params: Value,
}

/// The answer to a request.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The request's id; `None` (sent as `null`) only for an error about a frame whose id
    /// could not be read.
    pub id: Option<RequestId>,
    /// The `result` member, or the `error` member.
    pub outcome: Result<Value, RpcError>,
}

/// The `error` member of a response: a code, a human-readable message and details.
///
/// On the wire: `{"code": <number>, "message": <text>, "data": {"code": "<name>", ...}}`.
/// Clients match on `data.code`, the stable name.
#[derive(Clone, Debug, PartialEq, Error)]
#[error("{code}: {message}")]
pub struct RpcError {
    /// What went wrong.
    pub code: ErrorCode,
    /// Says what was wrong with this request; for people, not for matching. At most
    /// [`ERROR_MESSAGE_BYTES_MAX`] bytes when built with [`RpcError::new`].
    pub message: String,
    /// More members of `error.data` besides `code`, e.g. the hub's versions on
    /// `protocol_mismatch`. A `code` key here is ignored.
    pub details: Map<String, Value>,
}

/// What one incoming line is.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// A call to answer.
    Request(Request),
    /// A one-way message.
    Notification(Notification),
    /// The answer to a call this side made.
    Response(Response),
}

/// A line that is not an acceptable JSON-RPC message, with the error response to send.
#[derive(Clone, Debug, PartialEq, Error)]
#[error("{error}")]
pub struct ProtocolError {
    /// The id to answer with: the request's, when it could be read.
    pub id: Option<RequestId>,
    /// What to answer.
    pub error: RpcError,
}

/// Classifies one frame as a request, a notification or a response.
///
/// # Errors
/// A [`ProtocolError`] holding the response to send: `bad_msg` with id `null` for malformed
/// JSON, a non-object or an unreadable id; `bad_msg` with the id for a wrong `jsonrpc`, a
/// non-string method or unknown members; `bad_args` with the id for non-object params.
pub fn parse_incoming(line: &str) -> Result<Incoming, ProtocolError> {
    let value: Value = serde_json::from_str(line)
        .map_err(|error| ProtocolError::bad_message(None, format!("malformed JSON: {error}")))?;
    let Value::Object(mut object) = value else {
        return Err(ProtocolError::bad_message(
            None,
            "a frame must be a JSON object",
        ));
    };
    let id = parse_incoming_id(object.remove("id"));
    let answer_id = match &id {
        IdMember::Valid(id) => Some(id.clone()),
        _ => None,
    };
    match object.remove("jsonrpc") {
        Some(Value::String(version)) if version == JSONRPC_VERSION => {}
        _ => {
            let message = format!("member `jsonrpc` must be \"{JSONRPC_VERSION}\"");
            return Err(ProtocolError::bad_message(answer_id, message));
        }
    }
    if let Some(method) = object.remove("method") {
        parse_incoming_call(method, object, id)
    } else if object.contains_key("result") || object.contains_key("error") {
        parse_incoming_response(object, id)
    } else {
        let message = "a message needs `method` (request, notification) or `result`/`error`";
        Err(ProtocolError::bad_message(answer_id, message))
    }
}

/// The params of a request read by [`parse_request_fast`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastParams<'a, T> {
    /// Read straight into the method's params (the method came before them and was known).
    Typed(T),
    /// The text of a JSON object (`{}` when absent or `null`), not yet interpreted.
    Raw(&'a str),
}

/// A request read in one pass by [`parse_request_fast`] (beside its id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastRequest<'a, T> {
    /// The method name, as it came.
    pub method: &'a str,
    /// The params.
    pub params: FastParams<'a, T>,
}

/// Reads `line` as a well-formed request in one pass, without building a [`Value`].
///
/// When the method comes before the params (as every client writes them) and `seed_for`
/// gives a seed for it, the params are deserialized through that seed as they are read; else
/// they are kept as raw text, to be deserialized afterwards. The params must be an object (or
/// absent, or `null`): a seed sees only an object, anything else fails.
///
/// Only the common case is taken: a JSON object of exactly `jsonrpc: "2.0"`, a valid `id`, a
/// string `method` without escapes and object (or absent or `null`) `params`, each member
/// once, and params the seed accepts. Anything else returns `None`, and the caller must use
/// [`parse_incoming`], which classifies every line and gives the documented errors. So when
/// this returns `Some`, [`parse_incoming`] returns the same request (checked by the
/// `client_frame` fuzz target).
pub fn parse_request_fast<'a, S>(
    line: &'a str,
    seed_for: impl Fn(&str) -> Option<S>,
) -> Option<(RequestId, FastRequest<'a, S::Value>)>
where
    S: serde::de::DeserializeSeed<'a>,
{
    let mut deserializer = serde_json::Deserializer::from_str(line);
    let parsed = serde::Deserializer::deserialize_map(
        &mut deserializer,
        FastEnvelope {
            seed_for: &seed_for,
        },
    )
    .ok()?;
    deserializer.end().ok()?;
    Some(parsed)
}

/// The envelope [`parse_request_fast`] accepts: every member of a request, each once.
struct FastEnvelope<'f, F> {
    seed_for: &'f F,
}

impl<'de, S, F> serde::de::Visitor<'de> for FastEnvelope<'_, F>
where
    S: serde::de::DeserializeSeed<'de>,
    F: Fn(&str) -> Option<S>,
{
    type Value = (RequestId, FastRequest<'de, S::Value>);

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON-RPC request")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let mut jsonrpc: Option<&'de str> = None;
        let mut id = None;
        let mut method: Option<&'de str> = None;
        let mut params: Option<FastParams<'de, S::Value>> = None;
        // Bounded by the line: each pass reads one member.
        while let Some(key) = map.next_key::<&'de str>()? {
            match key {
                "jsonrpc" if jsonrpc.is_none() => jsonrpc = Some(map.next_value()?),
                "id" if id.is_none() => id = Some(map.next_value::<FastId>()?.0),
                "method" if method.is_none() => method = Some(map.next_value()?),
                "params" if params.is_none() => {
                    let typed = method
                        .and_then(|method| (self.seed_for)(method))
                        .map(|seed| map.next_value_seed(ObjectParams(seed)))
                        .transpose()?;
                    params = Some(match typed {
                        Some(Some(request)) => FastParams::Typed(request),
                        Some(None) => FastParams::Raw("{}"),
                        None => {
                            match map.next_value::<Option<&'de serde_json::value::RawValue>>()? {
                                None => FastParams::Raw("{}"),
                                Some(raw) if raw.get().starts_with('{') => {
                                    FastParams::Raw(raw.get())
                                }
                                Some(_) => return Err(A::Error::custom("params not an object")),
                            }
                        }
                    });
                }
                _ => return Err(A::Error::custom("a member the fast path does not take")),
            }
        }
        if jsonrpc != Some(JSONRPC_VERSION) {
            return Err(A::Error::custom("not JSON-RPC 2.0"));
        }
        let (Some(id), Some(method)) = (id, method) else {
            return Err(A::Error::custom("no id or method"));
        };
        let params = params.unwrap_or(FastParams::Raw("{}"));
        Ok((id, FastRequest { method, params }))
    }
}

/// A request's params through a seed: `None` for `null`, and the seed only ever sees an
/// object ([`ObjectOnly`]).
struct ObjectParams<S>(S);

impl<'de, S: serde::de::DeserializeSeed<'de>> serde::de::DeserializeSeed<'de> for ObjectParams<S> {
    type Value = Option<S::Value>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de, S: serde::de::DeserializeSeed<'de>> serde::de::Visitor<'de> for ObjectParams<S> {
    type Value = Option<S::Value>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object or null")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        self.0.deserialize(ObjectOnly(deserializer)).map(Some)
    }
}

/// A deserializer that yields only a JSON object: a struct read through it refuses the array
/// form serde would otherwise accept (JSON-RPC's positional params, which this protocol does
/// not take), and every other shape fails.
struct ObjectOnly<D>(D);

impl<'de, D: serde::Deserializer<'de>> serde::Deserializer<'de> for ObjectOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(ObjectVisitor(visitor))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_struct(name, fields, ObjectVisitor(visitor))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// Passes a map on to the visitor it wraps; anything else is the wrong type.
struct ObjectVisitor<V>(V);

impl<'de, V: serde::de::Visitor<'de>> serde::de::Visitor<'de> for ObjectVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(map)
    }
}

/// A request id as [`parse_incoming`] accepts it: an integer in the `i64` range or a string of
/// at most [`REQUEST_ID_BYTES_MAX`] bytes; anything else (`null` included) fails.
struct FastId(RequestId);

impl<'de> serde::Deserialize<'de> for FastId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FastIdVisitor)
    }
}

struct FastIdVisitor;

impl serde::de::Visitor<'_> for FastIdVisitor {
    type Value = FastId;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an integer or a short string")
    }

    fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<FastId, E> {
        Ok(FastId(RequestId::Number(number)))
    }

    fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<FastId, E> {
        i64::try_from(number)
            .map(|number| FastId(RequestId::Number(number)))
            .map_err(|_| E::custom("id out of the i64 range"))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<FastId, E> {
        if text.len() > REQUEST_ID_BYTES_MAX {
            return Err(E::custom("id too long"));
        }
        Ok(FastId(RequestId::String(text.to_owned())))
    }
}

impl RequestId {
    /// The id as JSON.
    pub fn to_value(&self) -> Value {
        match self {
            RequestId::Number(number) => Value::from(*number),
            RequestId::String(text) => Value::from(text.as_str()),
        }
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Number(number) => write!(formatter, "{number}"),
            RequestId::String(text) => write!(formatter, "{text:?}"),
        }
    }
}

impl Request {
    /// A request with object params (anything else is replaced by `{}`).
    pub fn new(id: RequestId, method: impl Into<String>, params: Value) -> Self {
        let params = if params.is_object() {
            params
        } else {
            Value::Object(Map::new())
        };
        Self {
            id,
            method: method.into(),
            params,
        }
    }
}

impl Notification {
    /// A notification with these params.
    pub fn new(method: impl Into<String>, params: Value) -> Self {
        Self {
            method: method.into(),
            params,
        }
    }
}

impl Response {
    /// A success with this result.
    pub fn result(id: RequestId, result: Value) -> Self {
        Self {
            id: Some(id),
            outcome: Ok(result),
        }
    }

    /// An error; `id` is `None` only when the request's id could not be read.
    pub fn error(id: Option<RequestId>, error: RpcError) -> Self {
        Self {
            id,
            outcome: Err(error),
        }
    }

    /// The result decoded as `T`, or the error the peer sent.
    ///
    /// # Errors
    /// The peer's [`RpcError`]; or `bad_msg` when the result does not decode as `T`.
    pub fn into_result<T: DeserializeOwned>(self) -> Result<T, RpcError> {
        let result = self.outcome?;
        serde_json::from_value(result).map_err(|error| {
            RpcError::new(
                ErrorCode::BadMessage,
                format!("result does not match: {error}"),
            )
        })
    }
}

impl RpcError {
    /// An error with this code and message (cut to [`ERROR_MESSAGE_BYTES_MAX`] bytes).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: truncate_message(message.into()),
            details: Map::new(),
        }
    }

    /// Adds a member to `error.data`.
    pub fn with_detail(mut self, key: impl Into<String>, value: Value) -> Self {
        self.details.insert(key.into(), value);
        self
    }

    /// The JSON of the `error` member.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self)
            .expect("invariant: an error has string keys only, so it always encodes")
    }

    /// Reads an `error` member. An unknown `data.code` (a newer peer) falls back to the
    /// number, then to `unexpected`, keeping the message.
    fn from_value(value: Value) -> Option<Self> {
        let Value::Object(mut error) = value else {
            return None;
        };
        let number = i32::try_from(error.remove("code")?.as_i64()?).ok()?;
        let Value::String(message) = error.remove("message")? else {
            return None;
        };
        let mut details = match error.remove("data") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(data)) => data,
            Some(_) => return None,
        };
        let by_name = match details.remove("code") {
            Some(Value::String(name)) => ErrorCode::from_name(&name),
            _ => None,
        };
        let code = by_name
            .or_else(|| ErrorCode::from_number(number))
            .unwrap_or(ErrorCode::Unexpected);
        Some(Self {
            code,
            message,
            details,
        })
    }
}

impl ProtocolError {
    /// A rejection with this id, code and message.
    pub fn new(id: Option<RequestId>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            id,
            error: RpcError::new(code, message),
        }
    }

    /// The error response to send.
    pub fn to_response(&self) -> Response {
        Response::error(self.id.clone(), self.error.clone())
    }

    /// The error response to send, consuming the error.
    pub fn into_response(self) -> Response {
        Response::error(self.id, self.error)
    }

    fn bad_message(id: Option<RequestId>, message: impl Into<String>) -> Self {
        Self::new(id, ErrorCode::BadMessage, message)
    }
}

impl Serialize for Request {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("jsonrpc", JSONRPC_VERSION)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("method", &self.method)?;
        map.serialize_entry("params", &self.params)?;
        map.end()
    }
}

impl Serialize for Notification {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("jsonrpc", JSONRPC_VERSION)?;
        map.serialize_entry("method", &self.method)?;
        map.serialize_entry("params", &self.params)?;
        map.end()
    }
}

/// A successful response whose result is JSON text already: the hub's commands serialise their
/// typed results once, where they are made, and the connection writes them as they are. The
/// same JSON as the [`Response`] of that result parsed into a [`Value`], but for the order of
/// the result's members (a struct's order instead of sorted).
#[derive(Clone, Copy, Debug)]
pub struct RawResponse<'a> {
    /// The request's id.
    pub id: &'a RequestId,
    /// The `result` member.
    pub result: &'a serde_json::value::RawValue,
}

impl Serialize for RawResponse<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("jsonrpc", JSONRPC_VERSION)?;
        map.serialize_entry("id", self.id)?;
        map.serialize_entry("result", self.result)?;
        map.end()
    }
}

/// A notification encoded straight from its typed params (`P`), without first building the
/// [`Value`] a [`Notification`] holds: the hub's `message` and `receipt` pushes, one or more per
/// message sent. The same JSON as the [`Notification`] of `serde_json::to_value(params)`.
#[derive(Clone, Copy, Debug)]
pub struct TypedNotification<'a, P> {
    /// The notification name.
    pub method: &'a str,
    /// The params.
    pub params: &'a P,
}

impl<P: Serialize> Serialize for TypedNotification<'_, P> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("jsonrpc", JSONRPC_VERSION)?;
        map.serialize_entry("method", self.method)?;
        map.serialize_entry("params", self.params)?;
        map.end()
    }
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("jsonrpc", JSONRPC_VERSION)?;
        map.serialize_entry("id", &self.id)?;
        match &self.outcome {
            Ok(result) => map.serialize_entry("result", result)?,
            Err(error) => map.serialize_entry("error", error)?,
        }
        map.end()
    }
}

/// Members in the order of the spec: `code`, `message`, `data` (with `data.code` first).
impl Serialize for RpcError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("code", &self.code.number())?;
        map.serialize_entry("message", &self.message)?;
        map.serialize_entry("data", &ErrorData(self))?;
        map.end()
    }
}

/// The `data` member of an error: the code's name, then the details.
struct ErrorData<'a>(&'a RpcError);

impl Serialize for ErrorData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let details = self
            .0
            .details
            .iter()
            .filter(|(key, _)| key.as_str() != "code");
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("code", self.0.code.name())?;
        for (key, value) in details {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl Serialize for Incoming {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Incoming::Request(request) => request.serialize(serializer),
            Incoming::Notification(notification) => notification.serialize(serializer),
            Incoming::Response(response) => response.serialize(serializer),
        }
    }
}

impl sealed::Sealed for Request {}
impl sealed::Sealed for Notification {}
impl sealed::Sealed for Response {}
impl sealed::Sealed for Incoming {}
impl sealed::Sealed for RawResponse<'_> {}
impl WireMessage for Request {}
impl WireMessage for Notification {}
impl WireMessage for Response {}
impl WireMessage for Incoming {}
impl WireMessage for RawResponse<'_> {}
// Pushes and receipts are structs of strings, numbers, booleans and options: their
// serialization cannot fail, so they may be a typed notification's params.
impl sealed::Sealed for super::notification::MessagePush<String> {}
impl sealed::Sealed for super::notification::MessagePush<&str> {}
impl sealed::Sealed for super::notification::Receipt<String> {}
impl sealed::Sealed for super::notification::Receipt<&str> {}
impl<P: Serialize + sealed::Sealed> sealed::Sealed for TypedNotification<'_, P> {}
impl<P: Serialize + sealed::Sealed> WireMessage for TypedNotification<'_, P> {}

/// The `id` member of an incoming message, as far as it could be read.
enum IdMember {
    Absent,
    Null,
    Valid(RequestId),
    Invalid(String),
}

fn parse_incoming_id(member: Option<Value>) -> IdMember {
    match member {
        None => IdMember::Absent,
        Some(Value::Null) => IdMember::Null,
        Some(Value::Number(number)) => match number.as_i64() {
            Some(number) => IdMember::Valid(RequestId::Number(number)),
            None => IdMember::Invalid("a numeric `id` must be an integer in the i64 range".into()),
        },
        Some(Value::String(text)) if text.len() <= REQUEST_ID_BYTES_MAX => {
            IdMember::Valid(RequestId::String(text))
        }
        Some(Value::String(_)) => IdMember::Invalid(format!(
            "a string `id` is limited to {REQUEST_ID_BYTES_MAX} bytes"
        )),
        Some(_) => IdMember::Invalid("`id` must be an integer or a string".into()),
    }
}

fn parse_incoming_call(
    method: Value,
    mut object: Map<String, Value>,
    id: IdMember,
) -> Result<Incoming, ProtocolError> {
    let id = match id {
        IdMember::Absent => None,
        IdMember::Valid(id) => Some(id),
        IdMember::Null => {
            let message = "a request `id` must not be null (omit it for a notification)";
            return Err(ProtocolError::bad_message(None, message));
        }
        IdMember::Invalid(message) => return Err(ProtocolError::bad_message(None, message)),
    };
    let Value::String(method) = method else {
        return Err(ProtocolError::bad_message(id, "`method` must be a string"));
    };
    let params = object.remove("params").unwrap_or(Value::Null);
    reject_unknown_members(&object, id.as_ref())?;
    let params = match params {
        Value::Null => Value::Object(Map::new()),
        params => params,
    };
    match id {
        None => Ok(Incoming::Notification(Notification { method, params })),
        Some(id) if params.is_object() => Ok(Incoming::Request(Request { id, method, params })),
        Some(id) => {
            let message = "`params` must be an object of named params";
            Err(ProtocolError::new(
                Some(id),
                ErrorCode::BadArguments,
                message,
            ))
        }
    }
}

fn parse_incoming_response(
    mut object: Map<String, Value>,
    id: IdMember,
) -> Result<Incoming, ProtocolError> {
    let result = object.remove("result");
    let error = object.remove("error");
    let id = match id {
        IdMember::Valid(id) => Some(id),
        IdMember::Null if error.is_some() => None,
        IdMember::Null | IdMember::Absent => {
            return Err(ProtocolError::bad_message(None, "a response needs an `id`"));
        }
        IdMember::Invalid(message) => return Err(ProtocolError::bad_message(None, message)),
    };
    reject_unknown_members(&object, id.as_ref())?;
    let outcome = match (result, error) {
        (Some(result), None) => Ok(result),
        (None, Some(error)) => Err(RpcError::from_value(error).ok_or_else(|| {
            let message = "`error` must be {code: integer, message: string, data?: object}";
            ProtocolError::bad_message(id.clone(), message)
        })?),
        _ => {
            let message = "a response has exactly one of `result` and `error`";
            return Err(ProtocolError::bad_message(id, message));
        }
    };
    Ok(Incoming::Response(Response { id, outcome }))
}

fn reject_unknown_members(
    object: &Map<String, Value>,
    id: Option<&RequestId>,
) -> Result<(), ProtocolError> {
    match object.keys().next() {
        None => Ok(()),
        Some(key) => {
            let message = format!("unknown member `{key}`");
            Err(ProtocolError::bad_message(id.cloned(), message))
        }
    }
}

fn truncate_message(mut message: String) -> String {
    if message.len() <= ERROR_MESSAGE_BYTES_MAX {
        return message;
    }
    let ellipsis = "…";
    let mut end = ERROR_MESSAGE_BYTES_MAX - ellipsis.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    message.push_str(ellipsis);
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rejection(line: &str) -> (Option<RequestId>, ErrorCode) {
        match parse_incoming(line) {
            Err(error) => (error.id, error.error.code),
            Ok(incoming) => panic!("expected a rejection of {line}, got {incoming:?}"),
        }
    }

    fn wire(message: &impl WireMessage) -> Value {
        serde_json::to_value(message).expect("wire messages serialize")
    }

    #[test]
    fn a_request_with_params_is_classified_as_a_request() {
        let incoming = parse_incoming(r#"{"jsonrpc":"2.0","id":7,"method":"peers","params":{}}"#);
        let expected = Request::new(RequestId::Number(7), "peers", json!({}));
        assert_eq!(incoming, Ok(Incoming::Request(expected)));
    }

    #[test]
    fn absent_or_null_params_read_as_an_empty_object() {
        for line in [
            r#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":"a","method":"ping","params":null}"#,
        ] {
            let Ok(Incoming::Request(request)) = parse_incoming(line) else {
                panic!("not a request: {line}");
            };
            assert_eq!(request.params, json!({}));
            assert_eq!(request.id, RequestId::String("a".to_owned()));
        }
    }

    #[test]
    fn a_message_without_id_is_a_notification() {
        let incoming = parse_incoming(r#"{"jsonrpc":"2.0","method":"message","params":{"a":1}}"#);
        let expected = Notification::new("message", json!({"a": 1}));
        assert_eq!(incoming, Ok(Incoming::Notification(expected)));
    }

    #[test]
    fn success_and_error_responses_are_classified_as_responses() {
        let success = parse_incoming(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#);
        assert_eq!(
            success,
            Ok(Incoming::Response(Response::result(
                RequestId::Number(3),
                json!({})
            )))
        );
        let error = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"no","data":{"code":"bad_msg"}}}"#;
        let Ok(Incoming::Response(response)) = parse_incoming(error) else {
            panic!("not a response");
        };
        assert_eq!(response.id, None);
        assert_eq!(
            response.outcome.map_err(|error| error.code),
            Err(ErrorCode::BadMessage)
        );
    }

    #[test]
    fn an_error_with_an_unknown_name_falls_back_to_its_number() {
        let line = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32012,"message":"m","data":{"code":"from_the_future"}}}"#;
        let Ok(Incoming::Response(response)) = parse_incoming(line) else {
            panic!("not a response");
        };
        assert_eq!(
            response.outcome.map_err(|error| error.code),
            Err(ErrorCode::NotAdmin)
        );
    }

    #[test]
    fn malformed_json_is_bad_msg_with_id_null() {
        assert_eq!(
            rejection(r#"{"jsonrpc":"2.0","id":1,"#),
            (None, ErrorCode::BadMessage)
        );
        assert_eq!(rejection("not json"), (None, ErrorCode::BadMessage));
    }

    #[test]
    fn a_frame_that_is_not_an_object_is_bad_msg_with_id_null() {
        for line in [
            "[]",
            "1",
            "\"x\"",
            "null",
            "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]",
        ] {
            assert_eq!(rejection(line), (None, ErrorCode::BadMessage), "{line}");
        }
    }

    #[test]
    fn a_wrong_jsonrpc_version_is_bad_msg_carrying_the_id() {
        let id = Some(RequestId::Number(4));
        assert_eq!(
            rejection(r#"{"jsonrpc":"1.0","id":4,"method":"ping"}"#),
            (id.clone(), ErrorCode::BadMessage)
        );
        assert_eq!(
            rejection(r#"{"id":4,"method":"ping"}"#),
            (id, ErrorCode::BadMessage)
        );
    }

    #[test]
    fn unreadable_ids_are_bad_msg_with_id_null() {
        let long = "i".repeat(REQUEST_ID_BYTES_MAX + 1);
        for id in [
            "null",
            "1.5",
            "true",
            "{}",
            "18446744073709551615",
            &format!("\"{long}\""),
        ] {
            let line = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            assert_eq!(rejection(&line), (None, ErrorCode::BadMessage), "{line}");
        }
    }

    #[test]
    fn a_string_id_at_its_limit_is_accepted() {
        let id = "i".repeat(REQUEST_ID_BYTES_MAX);
        let line = format!(r#"{{"jsonrpc":"2.0","id":"{id}","method":"ping"}}"#);
        assert!(matches!(parse_incoming(&line), Ok(Incoming::Request(_))));
    }

    #[test]
    fn non_object_params_are_bad_args_carrying_the_id() {
        let line = r#"{"jsonrpc":"2.0","id":"x","method":"send","params":["bob","hi"]}"#;
        let id = Some(RequestId::String("x".to_owned()));
        assert_eq!(rejection(line), (id, ErrorCode::BadArguments));
    }

    #[test]
    fn unknown_members_and_non_string_methods_are_bad_msg_carrying_the_id() {
        let id = Some(RequestId::Number(9));
        let unknown = r#"{"jsonrpc":"2.0","id":9,"method":"ping","extra":1}"#;
        assert_eq!(rejection(unknown), (id.clone(), ErrorCode::BadMessage));
        let numeric = r#"{"jsonrpc":"2.0","id":9,"method":5}"#;
        assert_eq!(rejection(numeric), (id.clone(), ErrorCode::BadMessage));
        let neither = r#"{"jsonrpc":"2.0","id":9}"#;
        assert_eq!(rejection(neither), (id.clone(), ErrorCode::BadMessage));
        let both = r#"{"jsonrpc":"2.0","id":9,"result":1,"error":{"code":1,"message":""}}"#;
        assert_eq!(rejection(both), (id, ErrorCode::BadMessage));
    }

    #[test]
    fn error_responses_carry_the_snake_case_name_in_data_code() {
        let error = RpcError::new(ErrorCode::NotAdmin, "only the admin may remove members")
            .with_detail("group", json!("core"));
        let response = Response::error(Some(RequestId::Number(5)), error);
        assert_eq!(
            wire(&response),
            json!({
                "jsonrpc": "2.0",
                "id": 5,
                "error": {
                    "code": -32012,
                    "message": "only the admin may remove members",
                    "data": {"code": "not_admin", "group": "core"}
                }
            })
        );
    }

    #[test]
    fn a_rejection_without_id_is_answered_with_id_null() {
        let Err(error) = parse_incoming("{") else {
            panic!("accepted");
        };
        let value = wire(&error.to_response());
        assert_eq!(value["id"], Value::Null);
        assert_eq!(value["error"]["data"]["code"], json!("bad_msg"));
        assert_eq!(value["error"]["code"], json!(-32600));
    }

    #[test]
    fn messages_round_trip_through_their_wire_form() {
        let messages = [
            Incoming::Request(Request::new(
                RequestId::String("r1".to_owned()),
                "send",
                json!({"to": "bob"}),
            )),
            Incoming::Notification(Notification::new("message", json!({"text": "hi"}))),
            Incoming::Response(Response::result(
                RequestId::Number(-1),
                json!({"name": "a"}),
            )),
            Incoming::Response(Response::error(
                Some(RequestId::Number(2)),
                RpcError::new(ErrorCode::ProtocolMismatch, "no")
                    .with_detail("hub", json!({"min": 1})),
            )),
        ];
        for message in messages {
            let line = serde_json::to_string(&message).expect("serialize");
            assert_eq!(parse_incoming(&line), Ok(message));
        }
    }

    #[test]
    fn long_error_messages_are_cut_at_a_character_boundary() {
        let error = RpcError::new(ErrorCode::BadArguments, "é".repeat(ERROR_MESSAGE_BYTES_MAX));
        assert!(error.message.len() <= ERROR_MESSAGE_BYTES_MAX);
        assert!(error.message.ends_with('…'));
        let short = RpcError::new(ErrorCode::BadArguments, "a".repeat(ERROR_MESSAGE_BYTES_MAX));
        assert_eq!(short.message.len(), ERROR_MESSAGE_BYTES_MAX);
    }

    #[test]
    fn into_result_decodes_a_success_and_returns_an_error() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Named {
            name: String,
        }
        let success = Response::result(RequestId::Number(1), json!({"name": "alice"}));
        assert_eq!(
            success.into_result::<Named>(),
            Ok(Named {
                name: "alice".to_owned()
            })
        );
        let failure = Response::error(None, RpcError::new(ErrorCode::NameTaken, "taken"));
        assert_eq!(
            failure.into_result::<Named>().map_err(|error| error.code),
            Err(ErrorCode::NameTaken)
        );
    }

    #[test]
    fn the_one_pass_parse_takes_plain_requests_and_leaves_the_rest_to_parse_incoming() {
        use std::marker::PhantomData;
        // Without a seed the params come back as text; with one (here any JSON value), read
        // through it, but only when the method came first.
        let raw = |line| parse_request_fast(line, |_| None::<PhantomData<Value>>);
        let typed = |line| parse_request_fast(line, |_| Some(PhantomData::<Value>));
        let plain = r#"{"jsonrpc":"2.0","id":7,"method":"send","params":{"to":"bob","text":"hi"}}"#;
        let (id, request) = raw(plain).expect("a plain request is taken");
        assert_eq!(id, RequestId::Number(7));
        assert_eq!(request.method, "send");
        assert_eq!(
            request.params,
            FastParams::Raw(r#"{"to":"bob","text":"hi"}"#)
        );
        let (_, request) = typed(plain).expect("a plain request is taken");
        let expected = serde_json::json!({"to": "bob", "text": "hi"});
        assert_eq!(request.params, FastParams::Typed(expected));
        let params_first = r#"{"jsonrpc":"2.0","params":{"to":"bob"},"id":7,"method":"send"}"#;
        let (_, request) = typed(params_first).expect("params before the method are taken");
        assert_eq!(request.params, FastParams::Raw(r#"{"to":"bob"}"#));
        for absent in [
            r#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":"a","method":"ping","params":null}"#,
        ] {
            let (_, request) = raw(absent).expect("absent params are taken");
            assert_eq!(request.params, FastParams::Raw("{}"));
            let (_, request) = typed(absent).expect("absent params are taken");
            assert_eq!(request.params, FastParams::Raw("{}"));
        }
        let long_id = "i".repeat(REQUEST_ID_BYTES_MAX + 1);
        let left = [
            "{".to_owned(),
            "[]".to_owned(),
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#.to_owned(),
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#.to_owned(),
            r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#.to_owned(),
            r#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"ping"}"#.to_owned(),
            format!(r#"{{"jsonrpc":"2.0","id":"{long_id}","method":"ping"}}"#),
            r#"{"jsonrpc":"2.0","method":"ping"}"#.to_owned(),
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","extra":1}"#.to_owned(),
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#.to_owned(),
            r#"{"jsonrpc":"2.0","id":1,"method":"send","params":["bob","hi"]}"#.to_owned(),
            r#"{"jsonrpc":"2.0","id":1,"method":5}"#.to_owned(),
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#.to_owned(),
        ];
        for line in left
            .iter()
            .map(String::as_str)
            .chain([r#"{"jsonrpc":"2.0","id":1,"method":"send","params":5} "#])
            .chain([r#"{"jsonrpc":"2.0","id":1,"method":"ping"} x"#])
        {
            assert_eq!(raw(line), None, "{line}");
            assert_eq!(typed(line), None, "{line}");
        }
    }

    #[test]
    fn a_typed_notification_is_the_same_json_as_its_value_notification() {
        use crate::protocol::notification::{
            HubNotification, MessageKind, MessagePush, Receipt, ReceiptStatus,
        };
        use crate::protocol::{MESSAGE_NOTIFICATION, RECEIPT_NOTIFICATION};
        let push = MessagePush {
            kind: MessageKind::Direct,
            from: "alice".into(),
            text: "line one\nline \"two\" \u{e9}".into(),
            msg_id: "m-1".into(),
            ask_id: None,
            reply_to: Some("m-0".into()),
            room: None,
            group: Some("team".into()),
            urgent: true,
            ts: 1_700_000_000_000_000,
            origin_hub: None,
            late: false,
        };
        let receipt = Receipt {
            msg_id: "m-1".into(),
            to: "bob".into(),
            status: ReceiptStatus::Read,
            ts: 7,
        };
        let typed = |method, params: &dyn Fn() -> Vec<u8>| {
            let bytes = params();
            assert_eq!(bytes.last(), Some(&b'\n'), "{method}: one frame");
            serde_json::from_slice::<Value>(&bytes).expect("a typed frame is JSON")
        };
        let push_frame = typed(MESSAGE_NOTIFICATION, &|| {
            crate::protocol::encode_frame(&TypedNotification {
                method: MESSAGE_NOTIFICATION,
                params: &push,
            })
        });
        let receipt_frame = typed(RECEIPT_NOTIFICATION, &|| {
            crate::protocol::encode_frame(&TypedNotification {
                method: RECEIPT_NOTIFICATION,
                params: &receipt,
            })
        });
        assert_eq!(
            push_frame,
            wire(&HubNotification::Message(push).to_notification())
        );
        assert_eq!(
            receipt_frame,
            wire(&HubNotification::Receipt(receipt).to_notification())
        );
    }

    #[test]
    fn a_raw_response_is_the_same_json_as_its_value_response() {
        let result = serde_json::json!({"msg_id": "m-7", "status": "delivered", "n": [1, 2]});
        let raw = serde_json::value::to_raw_value(&result).expect("a value serializes");
        for id in [RequestId::Number(-3), RequestId::String("a\"b".into())] {
            let frame = crate::protocol::encode_frame(&RawResponse {
                id: &id,
                result: &raw,
            });
            assert_eq!(frame.last(), Some(&b'\n'), "one frame");
            let parsed: Value = serde_json::from_slice(&frame).expect("a raw response is JSON");
            assert_eq!(parsed, wire(&Response::result(id, result.clone())));
        }
    }
}
