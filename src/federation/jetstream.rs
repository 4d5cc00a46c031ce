//! The JetStream transport for the federation link protocol: records shipped through a NATS
//! server with JetStream instead of (or beside) a direct [`super::noise`] link.
//!
//! Mapping (`docs/federation.md`, "JetStream transport"):
//! - one inbox stream per destination hub, [`inbox_stream`] (`RELAY_IN_<dest>`, file storage,
//!   work-queue retention, a [`DUPLICATE_WINDOW`]), with subjects `relay.in.<dest>.<origin>`;
//! - one durable pull consumer per hub on its own inbox ([`consumer_name`]), explicit acks,
//!   `max_ack_pending` = [`WINDOW_RECORDS`];
//! - the record's payload as the message payload, its fields as headers ([`headers`]), and
//!   `Nats-Msg-Id: <origin>.<log_id hex>.<offset>` for the server's publish dedupe;
//! - the receiver's durable offset (every origin offset below it committed) in the KV bucket
//!   [`DURABLE_BUCKET`], key `<origin>.<dest>`: that, not a PubAck, is delivery;
//! - resend requests on `relay.ctl.<origin>.<dest>`, as a [`LinkFrame::Resume`] frame.
//!
//! The origin's log stays the system of record: the receiver acks a JetStream message only
//! after its own commit ([`JetStreamTransport::ack`]), drops redeliveries by offset, refuses a
//! message whose subject names another origin than its headers, and asks the origin to resend
//! when the `previous` chain has a gap. Nothing in here panics on what arrives.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::message::{AckKind, Acker};
use async_nats::jetstream::{self, kv, stream};
use async_nats::{ConnectOptions, HeaderMap};
use futures_util::{FutureExt as _, StreamExt as _};

use super::config::HubId;
use super::wire::{self, LinkFrame, NO_PREVIOUS, SHIPPED_PAYLOAD_BYTES_MAX, ShippedRecord};

/// Subjects of inbox messages: `relay.in.<dest>.<origin>`.
pub const INBOX_SUBJECT_PREFIX: &str = "relay.in";

/// Subjects of resend requests: `relay.ctl.<origin>.<dest>` (the receiver asks the origin).
pub const CONTROL_SUBJECT_PREFIX: &str = "relay.ctl";

/// The KV bucket of receivers' durable offsets, key `<origin>.<dest>`.
pub const DURABLE_BUCKET: &str = "RELAY_DURABLE";

/// Records a hub's consumer may hold unacknowledged (`max_ack_pending`): the window of one hub's
/// inbox, over all origins; the same as a link batch at most.
pub const WINDOW_RECORDS: i64 = wire::BATCH_RECORDS_MAX as i64;

/// How long the server remembers a `Nats-Msg-Id` to drop a republished record.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How long a delivered record may stay unacknowledged before the server redelivers it.
pub const ACK_WAIT: Duration = Duration::from_secs(30);

/// Bytes an inbox stream may hold; past it a publish is refused (`discard: new`), never an
/// older record dropped: the origin keeps it and publishes it later. The server reserves it
/// per hub out of its `max_file_store`.
pub const INBOX_BYTES_MAX: i64 = 256 << 20;

/// How long a request to the server (PubAck, stream and KV calls) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long connecting to the server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest pause between two reconnection attempts.
pub const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(1);

/// How long a record that arrived after a gap waits before the server delivers it again.
pub const GAP_NAK_DELAY: Duration = Duration::from_millis(200);

/// At most one resend request per origin this often (a gap seen on every redelivery of the
/// records after it would ask again and again).
pub const RESEND_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// Longest `[nats] token`, in bytes.
pub const NATS_TOKEN_BYTES_MAX: usize = 1024;

/// The oldest nats-server release not known to lose streams on a crash (2.10.23).
pub const SERVER_VERSION_SAFE: (u64, u64, u64) = (2, 10, 23);

/// Header bytes a shipped record needs at most; the server's `max_payload` must hold this plus
/// [`SHIPPED_PAYLOAD_BYTES_MAX`] for the largest record to pass.
pub const RECORD_HEADER_BYTES_MAX: usize = 1024;

const HEADER_ORIGIN: &str = "Relay-Origin";
const HEADER_LOG_ID: &str = "Relay-Log-Id";
const HEADER_OFFSET: &str = "Relay-Offset";
const HEADER_PREVIOUS: &str = "Relay-Previous";
const HEADER_TIMESTAMP: &str = "Relay-Timestamp-Us";
const HEADER_KIND: &str = "Relay-Kind";
const HEADER_SCHEMA: &str = "Relay-Schema-Version";
const HEADER_ORIGIN_HUB: &str = "Relay-Origin-Hub";
const HEADER_CRC: &str = "Relay-Crc";
const HEADER_MSG_ID: &str = "Nats-Msg-Id";

/// How this hub proves who it is to the NATS server.
#[derive(Clone, PartialEq, Eq)]
pub enum NatsAuth {
    /// No credentials (a test server, or one that trusts its network).
    None,
    /// A token (`authorization { token }`): one for the whole server, so no per-hub permissions.
    Token(String),
    /// A `.creds` file (user JWT and nkey seed; operator mode, `nsc`).
    Creds(PathBuf),
    /// A file holding a user nkey seed (`SU…`) for a user listed in the server's config file
    /// (`authorization { users = [{ nkey: U…, permissions }] }`): per-hub permissions without
    /// an operator.
    Nkey(PathBuf),
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NatsAuth::None => f.write_str("None"),
            NatsAuth::Token(_) => f.write_str("Token(..)"),
            NatsAuth::Creds(path) => write!(f, "Creds({})", path.display()),
            NatsAuth::Nkey(path) => write!(f, "Nkey({})", path.display()),
        }
    }
}

/// The `[nats]` table of `federation.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsConfig {
    /// `tls://HOST:PORT`, or `nats://` to a loopback address.
    pub url: String,
    /// This hub's credentials.
    pub auth: NatsAuth,
}

/// A `[nats]` key with a value that is not allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsKeyError {
    /// The key, dotted (`nats.url`).
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl std::fmt::Display for NatsKeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.key, self.message)
    }
}

/// Parses the `[nats]` table: `url`, then at most one of `token`, `creds` and `nkey_seed`
/// (file paths relative to `data_dir`; the files must be 0600 or stricter).
///
/// # Errors
/// Names the key and says what a valid value looks like.
pub fn parse_nats_table(value: &toml::Value, data_dir: &Path) -> Result<NatsConfig, NatsKeyError> {
    let invalid = |key: &str, message: String| NatsKeyError {
        key: format!("nats.{key}"),
        message,
    };
    let Some(table) = value.as_table() else {
        return Err(NatsKeyError {
            key: "nats".to_owned(),
            message: "must be a table: [nats] then url = \"tls://HOST:4222\"".to_owned(),
        });
    };
    for key in table.keys() {
        if !["url", "token", "creds", "nkey_seed"].contains(&key.as_str()) {
            return Err(invalid(
                key,
                "unknown key; [nats] takes url, and one of token, creds, nkey_seed".to_owned(),
            ));
        }
    }
    let string = |key: &str| -> Result<Option<&str>, NatsKeyError> {
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(text)) => Ok(Some(text.as_str())),
            Some(_) => Err(invalid(key, "must be a string".to_owned())),
        }
    };
    let url = string("url")?.ok_or_else(|| {
        invalid(
            "url",
            "missing: the NATS server, like tls://nats.example.org:4222".to_owned(),
        )
    })?;
    check_nats_url(url).map_err(|message| invalid("url", message))?;
    let file = |key: &str, text: &str| -> Result<PathBuf, NatsKeyError> {
        let path = Path::new(text);
        let path = if path.is_relative() {
            data_dir.join(path)
        } else {
            path.to_owned()
        };
        super::config::check_private_file(&path, "credentials")
            .map_err(|message| invalid(key, message))?;
        Ok(path)
    };
    let given: Vec<&str> = ["token", "creds", "nkey_seed"]
        .into_iter()
        .filter(|key| table.contains_key(*key))
        .collect();
    if given.len() > 1 {
        return Err(invalid(
            given[1],
            format!(
                "give one of token, creds and nkey_seed, not {}",
                given.join(" and ")
            ),
        ));
    }
    let auth = if let Some(token) = string("token")? {
        if token.is_empty()
            || token.len() > NATS_TOKEN_BYTES_MAX
            || token.chars().any(char::is_whitespace)
        {
            return Err(invalid(
                "token",
                format!("1 to {NATS_TOKEN_BYTES_MAX} bytes without spaces"),
            ));
        }
        NatsAuth::Token(token.to_owned())
    } else if let Some(creds) = string("creds")? {
        NatsAuth::Creds(file("creds", creds)?)
    } else if let Some(seed) = string("nkey_seed")? {
        NatsAuth::Nkey(file("nkey_seed", seed)?)
    } else {
        NatsAuth::None
    };
    Ok(NatsConfig {
        url: url.to_owned(),
        auth,
    })
}

/// `tls://HOST:PORT`, or `nats://HOST:PORT` to a loopback host only (credentials would travel
/// in the clear).
fn check_nats_url(url: &str) -> Result<(), String> {
    super::config::check_url_scheme(url, "tls://", "nats://")
}

/// The inbox stream of `hub`.
pub fn inbox_stream(hub: &HubId) -> String {
    format!("RELAY_IN_{hub}")
}

/// The durable consumer `hub` reads its inbox with.
pub fn consumer_name(hub: &HubId) -> String {
    format!("relay-{hub}")
}

/// The subject `origin` publishes records for `dest` on.
pub fn inbox_subject(dest: &HubId, origin: &HubId) -> String {
    format!("{INBOX_SUBJECT_PREFIX}.{dest}.{origin}")
}

/// The subject `dest` asks `origin` to resend on.
pub fn control_subject(origin: &HubId, dest: &HubId) -> String {
    format!("{CONTROL_SUBJECT_PREFIX}.{origin}.{dest}")
}

/// The KV key of `dest`'s durable offset for `origin`'s records.
pub fn durable_key(origin: &HubId, dest: &HubId) -> String {
    format!("{origin}.{dest}")
}

/// The `Nats-Msg-Id` of a record: `<origin>.<log_id hex>.<offset>`.
pub fn message_id(origin: &HubId, log_id: u128, offset: u64) -> String {
    format!("{origin}.{log_id:032x}.{offset}")
}

/// The headers a record travels with: its origin, log id and every [`ShippedRecord`] field but
/// the payload.
pub fn headers(origin: &HubId, log_id: u128, record: &ShippedRecord) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(HEADER_ORIGIN, origin.as_str());
    headers.insert(HEADER_LOG_ID, format!("{log_id:032x}"));
    headers.insert(HEADER_OFFSET, record.offset.to_string());
    let previous = if record.previous == NO_PREVIOUS {
        "none".to_owned()
    } else {
        record.previous.to_string()
    };
    headers.insert(HEADER_PREVIOUS, previous);
    headers.insert(HEADER_TIMESTAMP, record.timestamp_us.to_string());
    headers.insert(HEADER_KIND, record.kind.to_string());
    headers.insert(HEADER_SCHEMA, record.schema_version.to_string());
    headers.insert(HEADER_ORIGIN_HUB, format!("{:032x}", record.origin_hub));
    headers.insert(HEADER_CRC, record.crc.to_string());
    headers
}

/// Why a message from the inbox was not handed out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The subject is not `relay.in.<me>.<origin>` with a hub id.
    Subject,
    /// The origin is not a `[[peer]]`.
    NotPeer(HubId),
    /// The headers name another origin than the subject: a hub publishing as another.
    Impersonation {
        /// The origin in the subject (who published).
        subject: HubId,
        /// The origin the headers claim.
        claimed: String,
    },
    /// A header is missing or not a number, or the `Nats-Msg-Id` does not match them.
    Header(&'static str),
    /// The payload is larger than [`SHIPPED_PAYLOAD_BYTES_MAX`].
    TooLarge(usize),
    /// The CRC does not match the fields and payload.
    Crc(u64),
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Subject => f.write_str("subject is not relay.in.<me>.<hub id>"),
            Rejection::NotPeer(origin) => write!(f, "{origin} is not a [[peer]]"),
            Rejection::Impersonation { subject, claimed } => write!(
                f,
                "published by {subject} but its headers claim origin {claimed:?}"
            ),
            Rejection::Header(name) => write!(f, "header {name} missing or malformed"),
            Rejection::TooLarge(bytes) => write!(
                f,
                "payload of {bytes} bytes; at most {SHIPPED_PAYLOAD_BYTES_MAX}"
            ),
            Rejection::Crc(offset) => write!(f, "record at offset {offset}: CRC mismatch"),
        }
    }
}

/// Checks an inbox message addressed to `me` and rebuilds its record: the subject's origin
/// must be a peer and the one the headers name, every field must parse and the CRC must match.
///
/// # Errors
/// See [`Rejection`].
pub fn decode_inbound(
    me: &HubId,
    peers: &HashSet<HubId>,
    subject: &str,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Result<(HubId, u128, ShippedRecord), Rejection> {
    let origin = subject
        .strip_prefix(INBOX_SUBJECT_PREFIX)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_prefix(me.as_str()))
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|origin| HubId::new(origin).ok())
        .ok_or(Rejection::Subject)?;
    if !peers.contains(&origin) {
        return Err(Rejection::NotPeer(origin));
    }
    let headers = headers.ok_or(Rejection::Header(HEADER_ORIGIN))?;
    let text = |name: &'static str| {
        headers
            .get(name)
            .map(|value| value.as_str())
            .ok_or(Rejection::Header(name))
    };
    let claimed = text(HEADER_ORIGIN)?;
    if claimed != origin.as_str() {
        return Err(Rejection::Impersonation {
            subject: origin,
            claimed: claimed.to_owned(),
        });
    }
    fn number<T: std::str::FromStr>(text: &str, name: &'static str) -> Result<T, Rejection> {
        text.parse().map_err(|_| Rejection::Header(name))
    }
    let hex = |name: &'static str| -> Result<u128, Rejection> {
        let value = text(name)?;
        if value.len() != 32 {
            return Err(Rejection::Header(name));
        }
        u128::from_str_radix(value, 16).map_err(|_| Rejection::Header(name))
    };
    let log_id = hex(HEADER_LOG_ID)?;
    let offset: u64 = number(text(HEADER_OFFSET)?, HEADER_OFFSET)?;
    let previous = match text(HEADER_PREVIOUS)? {
        "none" => NO_PREVIOUS,
        value => number(value, HEADER_PREVIOUS)?,
    };
    if previous != NO_PREVIOUS && previous >= offset {
        return Err(Rejection::Header(HEADER_PREVIOUS));
    }
    let timestamp_us = number(text(HEADER_TIMESTAMP)?, HEADER_TIMESTAMP)?;
    let kind = number(text(HEADER_KIND)?, HEADER_KIND)?;
    let schema_version = number(text(HEADER_SCHEMA)?, HEADER_SCHEMA)?;
    let origin_hub = hex(HEADER_ORIGIN_HUB)?;
    let crc = number(text(HEADER_CRC)?, HEADER_CRC)?;
    // The dedupe id must be this record's (a resend appends `.r<nonce>`).
    let id = text(HEADER_MSG_ID)?;
    let expected = message_id(&origin, log_id, offset);
    let id_matches = id == expected
        || id
            .strip_prefix(expected.as_str())
            .is_some_and(|rest| rest.starts_with(".r"));
    if !id_matches {
        return Err(Rejection::Header(HEADER_MSG_ID));
    }
    if payload.len() > SHIPPED_PAYLOAD_BYTES_MAX {
        return Err(Rejection::TooLarge(payload.len()));
    }
    if wire::record_crc(
        offset,
        timestamp_us,
        kind,
        schema_version,
        origin_hub,
        payload,
    ) != crc
    {
        return Err(Rejection::Crc(offset));
    }
    Ok((
        origin,
        log_id,
        ShippedRecord {
            offset,
            previous,
            timestamp_us,
            kind,
            schema_version,
            origin_hub,
            crc,
            payload: payload.to_vec(),
        },
    ))
}

/// A failure talking to the NATS server.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The server cannot be reached or refused the credentials.
    #[error("cannot connect to the NATS server at {url}: {message}")]
    Connect {
        /// The server.
        url: String,
        /// Why.
        message: String,
    },
    /// The server refused a publish: this hub's permissions do not cover the subject.
    #[error("the NATS server refused publishing to {subject}: {message}")]
    PermissionDenied {
        /// The subject.
        subject: String,
        /// The server's words.
        message: String,
    },
    /// A call failed (timeout, no stream, a server error).
    #[error("{what}: {message}")]
    Server {
        /// What was being done.
        what: String,
        /// Why.
        message: String,
    },
    /// Something this transport will not do (a destination that is not a peer, a record too
    /// large).
    #[error("{0}")]
    Refused(String),
}

fn server_error(what: impl Into<String>) -> impl FnOnce(&dyn std::fmt::Display) -> NatsError {
    let what = what.into();
    move |error| NatsError::Server {
        what,
        message: error.to_string(),
    }
}

/// Counters of what the receiving side did not hand out.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages refused and terminated (malformed, not a peer, CRC).
    pub malformed: AtomicU64,
    /// Messages whose headers claimed another origin than their subject.
    pub impersonations: AtomicU64,
    /// Redeliveries and resent copies dropped by offset.
    pub duplicates: AtomicU64,
    /// Records that arrived after a gap in the `previous` chain (not handed out; redelivered).
    pub gaps: AtomicU64,
    /// Resend requests sent.
    pub resend_requests: AtomicU64,
    /// Errors of the consumer's message stream (missed heartbeats, reconnects).
    pub stream_errors: AtomicU64,
}

/// Proof a record was handed out; give it back to [`JetStreamTransport::ack`] once committed.
pub struct AckHandle {
    acker: Acker,
    origin: HubId,
    offset: u64,
    stream_sequence: u64,
}

impl std::fmt::Debug for AckHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckHandle")
            .field("origin", &self.origin)
            .field("offset", &self.offset)
            .field("stream_sequence", &self.stream_sequence)
            .finish_non_exhaustive()
    }
}

/// A record received from a peer.
#[derive(Debug)]
pub struct Inbound {
    /// The hub that published it (the subject's origin, checked against its headers).
    pub origin: HubId,
    /// The origin's log id.
    pub log_id: u128,
    /// The record, CRC-checked.
    pub record: ShippedRecord,
    /// Ack after commit.
    pub handle: AckHandle,
}

/// A receiver asking this hub to publish its records again from an offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResendRequest {
    /// The receiving hub.
    pub from_hub: HubId,
    /// The origin's log id as the receiver knows it (0 when it has none).
    pub log_id: u128,
    /// First origin offset wanted.
    pub from: u64,
    /// CRC of the last record the receiver has, if any.
    pub last_crc: Option<u32>,
}

/// Resend requests addressed to this hub ([`JetStreamTransport::resend_requests`]).
pub struct ResendRequests {
    subscriber: async_nats::Subscriber,
    peers: HashSet<HubId>,
    me: HubId,
}

impl ResendRequests {
    /// The next valid request, waiting at most `wait`; requests from non-peers and malformed
    /// ones are dropped with a warning.
    pub async fn next(&mut self, wait: Duration) -> Option<ResendRequest> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.subscriber.next())
                .await
                .ok()??;
            let prefix = format!("{CONTROL_SUBJECT_PREFIX}.{}.", self.me);
            let from_hub = message
                .subject
                .as_str()
                .strip_prefix(prefix.as_str())
                .and_then(|hub| HubId::new(hub).ok());
            let Some(from_hub) = from_hub.filter(|hub| self.peers.contains(hub)) else {
                tracing::warn!(subject = %message.subject, "resend request from no peer dropped");
                continue;
            };
            match wire::decode(&message.payload) {
                Ok(LinkFrame::Resume {
                    log_id,
                    from,
                    last_crc,
                }) => {
                    return Some(ResendRequest {
                        from_hub,
                        log_id,
                        from,
                        last_crc,
                    });
                }
                other => {
                    tracing::warn!(%from_hub, ?other, "malformed resend request dropped");
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct OriginState {
    /// Offset of the last record handed out or committed (`None`: expect [`NO_PREVIOUS`]).
    last: Option<u64>,
    /// CRC of that record, when known.
    last_crc: Option<u32>,
    /// The receiver's durable offset: every offset below it committed.
    committed: u64,
    /// Stream sequences handed out and not yet acked.
    in_flight: HashSet<u64>,
    /// When a resend was last asked for.
    last_resend: Option<Instant>,
    /// The origin's log id, once seen.
    log_id: u128,
}

/// One hub's end of the JetStream transport: publishes to peers' inboxes, reads its own.
pub struct JetStreamTransport {
    me: HubId,
    peers: HashSet<HubId>,
    client: async_nats::Client,
    context: jetstream::Context,
    consumer: PullConsumer,
    messages: Option<pull::Stream>,
    durables: kv::Store,
    origins: HashMap<HubId, OriginState>,
    violations: tokio::sync::broadcast::Sender<String>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for JetStreamTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamTransport")
            .field("me", &self.me)
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

async fn connect_client(
    config: &NatsConfig,
    me: &HubId,
    violations: Option<tokio::sync::broadcast::Sender<String>>,
) -> Result<async_nats::Client, NatsError> {
    let connect_error = |message: String| NatsError::Connect {
        url: config.url.clone(),
        message,
    };
    let mut options = ConnectOptions::new()
        .name(format!("relay-hub-{me}"))
        .custom_inbox_prefix(format!("_INBOX_{me}"))
        .connection_timeout(CONNECT_TIMEOUT)
        .request_timeout(Some(REQUEST_TIMEOUT))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis(50)
                .saturating_mul(u32::try_from(attempts).unwrap_or(u32::MAX))
                .min(RECONNECT_DELAY_MAX)
        });
    if let Some(violations) = violations {
        options = options.event_callback(move |event| {
            let violations = violations.clone();
            async move {
                match &event {
                    async_nats::Event::ServerError(async_nats::ServerError::Other(text))
                        if text.to_ascii_lowercase().contains("permissions violation") =>
                    {
                        tracing::warn!(error = %text, "the NATS server refused a subject");
                        let _ = violations.send(text.clone());
                    }
                    async_nats::Event::Connected => tracing::info!("NATS connected"),
                    other => tracing::warn!(event = %other, "NATS connection event"),
                }
            }
        });
    }
    options = match &config.auth {
        NatsAuth::None => options,
        NatsAuth::Token(token) => options.token(token.clone()),
        NatsAuth::Creds(path) => options.credentials_file(path).await.map_err(|error| {
            connect_error(format!("cannot read creds {}: {error}", path.display()))
        })?,
        NatsAuth::Nkey(path) => {
            let seed = std::fs::read_to_string(path).map_err(|error| {
                connect_error(format!("cannot read nkey seed {}: {error}", path.display()))
            })?;
            options.nkey(seed.trim().to_owned())
        }
    };
    options
        .connect(config.url.as_str())
        .await
        .map_err(|error| connect_error(error.to_string()))
}

fn context(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .build(client)
}

impl JetStreamTransport {
    /// Connects as `me`, and ensures this hub's inbox stream, its durable pull consumer and the
    /// durable-offset bucket; `peers` are the hubs that may publish to it (the `[[peer]]`s).
    /// Each peer's durable offset is read back, so redeliveries after a restart are dropped.
    ///
    /// # Errors
    /// The server cannot be reached, refuses the credentials, or a setup call fails.
    pub async fn connect(
        config: &NatsConfig,
        me: &HubId,
        peers: &[HubId],
    ) -> Result<JetStreamTransport, NatsError> {
        let (violations, _) = tokio::sync::broadcast::channel(64);
        let client = connect_client(config, me, Some(violations.clone())).await?;
        let context = context(client.clone());
        let stream = context
            .get_or_create_stream(stream::Config {
                name: inbox_stream(me),
                subjects: vec![format!("{INBOX_SUBJECT_PREFIX}.{me}.*")],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                discard: stream::DiscardPolicy::New,
                max_bytes: INBOX_BYTES_MAX,
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            })
            .await
            .map_err(|error| server_error(format!("inbox stream {}", inbox_stream(me)))(&error))?;
        let consumer: PullConsumer = stream
            .get_or_create_consumer(
                &consumer_name(me),
                pull::Config {
                    durable_name: Some(consumer_name(me)),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    max_ack_pending: WINDOW_RECORDS,
                    ..Default::default()
                },
            )
            .await
            .map_err(|error| server_error(format!("consumer {}", consumer_name(me)))(&error))?;
        // The bucket's stream made here, as `create_key_value` would: that call first reads
        // the account info, which async-nats 0.51 cannot parse from a 2.9 server.
        context
            .get_or_create_stream(stream::Config {
                name: format!("KV_{DURABLE_BUCKET}"),
                description: Some("Relay federation: receivers' durable offsets".to_owned()),
                subjects: vec![format!("$KV.{DURABLE_BUCKET}.>")],
                max_messages_per_subject: 1,
                max_message_size: 32,
                storage: stream::StorageType::File,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                num_replicas: 1,
                discard: stream::DiscardPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(|error| server_error(format!("KV bucket {DURABLE_BUCKET}"))(&error))?;
        let durables = context
            .get_key_value(DURABLE_BUCKET)
            .await
            .map_err(|error| server_error(format!("KV bucket {DURABLE_BUCKET}"))(&error))?;
        let mut transport = JetStreamTransport {
            me: me.clone(),
            peers: peers.iter().cloned().collect(),
            client,
            context,
            consumer,
            messages: None,
            durables,
            origins: HashMap::new(),
            violations,
            counters: Arc::new(Counters::default()),
        };
        for peer in peers {
            if let Some(durable) = transport.durable(peer, me).await? {
                let state = transport.origins.entry(peer.clone()).or_default();
                state.committed = durable;
                state.last = durable.checked_sub(1);
            }
        }
        Ok(transport)
    }

    /// This hub.
    pub fn me(&self) -> &HubId {
        &self.me
    }

    /// What the receiving side dropped, so far.
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    fn check_dest(&self, dest: &HubId) -> Result<(), NatsError> {
        if self.peers.contains(dest) {
            Ok(())
        } else {
            Err(NatsError::Refused(format!(
                "{dest} is not a [[peer]] of {}",
                self.me
            )))
        }
    }

    async fn send(
        &self,
        dest: &HubId,
        log_id: u128,
        record: &ShippedRecord,
        resend: bool,
    ) -> Result<jetstream::context::PublishAckFuture, NatsError> {
        if record.payload.len() > SHIPPED_PAYLOAD_BYTES_MAX {
            return Err(NatsError::Refused(format!(
                "record at offset {}: {} payload bytes; at most {SHIPPED_PAYLOAD_BYTES_MAX}",
                record.offset,
                record.payload.len()
            )));
        }
        let mut headers = headers(&self.me, log_id, record);
        let mut id = message_id(&self.me, log_id, record.offset);
        if resend {
            let nonce = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|since| since.as_nanos())
                .unwrap_or_default();
            id.push_str(&format!(".r{nonce:x}"));
        }
        headers.insert(HEADER_MSG_ID, id.as_str());
        let subject = inbox_subject(dest, &self.me);
        self.context
            .publish_with_headers(subject.clone(), headers, record.payload.clone().into())
            .await
            .map_err(|error| server_error(format!("publishing to {subject}"))(&error))
    }

    async fn publish_all(
        &self,
        dest: &HubId,
        log_id: u128,
        records: &[ShippedRecord],
        resend: bool,
    ) -> Result<(), NatsError> {
        self.check_dest(dest)?;
        let subject = inbox_subject(dest, &self.me);
        let mut violations = self.violations.subscribe();
        let mut acks = Vec::with_capacity(records.len());
        for record in records {
            acks.push((
                record.offset,
                self.send(dest, log_id, record, resend).await?,
            ));
        }
        for (offset, ack) in acks {
            let refused = async {
                loop {
                    match violations.recv().await {
                        Ok(text) if text.contains(subject.as_str()) => return text,
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await;
                        }
                    }
                }
            };
            tokio::select! {
                acked = ack => {
                    acked.map_err(|error| {
                        server_error(format!("PubAck for offset {offset} on {subject}"))(&error)
                    })?;
                }
                message = refused => {
                    return Err(NatsError::PermissionDenied { subject, message });
                }
            }
        }
        Ok(())
    }

    /// Publishes `record` of this hub's log `log_id` to `dest`'s inbox and waits for the PubAck
    /// (stored by the server, or a duplicate it already has). A PubAck is not delivery: the
    /// record stays the origin's to resend until `dest`'s durable offset passes it.
    ///
    /// # Errors
    /// `dest` is not a peer, the record is too large, the server refused the subject
    /// ([`NatsError::PermissionDenied`]) or gave no PubAck in [`REQUEST_TIMEOUT`].
    pub async fn publish(
        &self,
        dest: &HubId,
        log_id: u128,
        record: &ShippedRecord,
    ) -> Result<(), NatsError> {
        self.publish_all(dest, log_id, std::slice::from_ref(record), false)
            .await
    }

    /// [`publish`](Self::publish) for a batch, pipelined: every record is sent, then every
    /// PubAck awaited. On an error some records may be stored: publish them again (the server
    /// drops the ones it has within [`DUPLICATE_WINDOW`]).
    ///
    /// # Errors
    /// As [`publish`](Self::publish).
    pub async fn publish_batch(
        &self,
        dest: &HubId,
        log_id: u128,
        records: &[ShippedRecord],
    ) -> Result<(), NatsError> {
        self.publish_all(dest, log_id, records, false).await
    }

    /// Publishes records again in answer to a [`ResendRequest`]: their message ids carry a
    /// nonce, so the server's dedupe cannot drop them (the receiver drops copies by offset).
    ///
    /// # Errors
    /// As [`publish`](Self::publish).
    pub async fn resend_batch(
        &self,
        dest: &HubId,
        log_id: u128,
        records: &[ShippedRecord],
    ) -> Result<(), NatsError> {
        self.publish_all(dest, log_id, records, true).await
    }

    /// Up to `max` records from peers, waiting at most `wait` for the first; then only what has
    /// already arrived. Each is checked ([`decode_inbound`]); a malformed or impersonating
    /// message is terminated with a warning and counted, a redelivery of a record already
    /// handed out or committed is dropped, and a record after a gap in its origin's chain is
    /// held back (delivered again after [`GAP_NAK_DELAY`]) while a resend is requested.
    ///
    /// # Errors
    /// The consumer's message stream cannot be opened.
    pub async fn next(&mut self, max: usize, wait: Duration) -> Result<Vec<Inbound>, NatsError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        while out.len() < max {
            if self.messages.is_none() {
                let messages = self
                    .consumer
                    .stream()
                    .max_messages_per_batch(WINDOW_RECORDS as usize)
                    .heartbeat(Duration::from_secs(5))
                    .expires(Duration::from_secs(10))
                    .messages()
                    .await
                    .map_err(|error| server_error("opening the inbox consumer")(&error))?;
                self.messages = Some(messages);
            }
            let Some(messages) = self.messages.as_mut() else {
                break;
            };
            let item = if out.is_empty() {
                match tokio::time::timeout_at(deadline, messages.next()).await {
                    Ok(item) => item,
                    Err(_) => break,
                }
            } else {
                match messages.next().now_or_never() {
                    Some(item) => item,
                    None => break,
                }
            };
            match item {
                Some(Ok(message)) => {
                    if let Some(inbound) = self.accept(message).await {
                        out.push(inbound);
                    }
                }
                Some(Err(error)) => {
                    self.counters.stream_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "inbox consumer stream error");
                    if tokio::time::Instant::now() >= deadline {
                        break;
                    }
                }
                None => {
                    self.messages = None;
                    if tokio::time::Instant::now() >= deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        Ok(out)
    }

    async fn accept(&mut self, message: jetstream::Message) -> Option<Inbound> {
        let stream_sequence = message.info().map(|info| info.stream_sequence).ok();
        let (message, acker) = message.split();
        let decoded = decode_inbound(
            &self.me,
            &self.peers,
            message.subject.as_str(),
            message.headers.as_ref(),
            &message.payload,
        );
        let (origin, log_id, record) = match decoded {
            Ok(decoded) => decoded,
            Err(rejection) => {
                let counter = if matches!(rejection, Rejection::Impersonation { .. }) {
                    &self.counters.impersonations
                } else {
                    &self.counters.malformed
                };
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(subject = %message.subject, %rejection, "inbox message refused");
                if let Err(error) = acker.ack_with(AckKind::Term).await {
                    tracing::warn!(%error, "cannot terminate a refused message");
                }
                return None;
            }
        };
        let Some(stream_sequence) = stream_sequence else {
            self.counters.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(subject = %message.subject, "inbox message without JetStream metadata");
            return None;
        };
        let state = self.origins.entry(origin.clone()).or_default();
        let seen =
            record.offset < state.committed || state.last.is_some_and(|last| record.offset <= last);
        if seen {
            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            // A redelivery of a record handed out and not yet acked stays with its handle;
            // any other copy is done with.
            if !state.in_flight.contains(&stream_sequence)
                && let Err(error) = acker.ack().await
            {
                tracing::warn!(%error, "cannot ack a duplicate");
            }
            return None;
        }
        let expected = state.last.unwrap_or(NO_PREVIOUS);
        if record.previous != expected {
            self.counters.gaps.fetch_add(1, Ordering::Relaxed);
            let from = state.last.map_or(0, |last| last + 1);
            tracing::warn!(
                %origin,
                offset = record.offset,
                previous = record.previous,
                from,
                "gap in the record chain; asking for a resend"
            );
            if let Err(error) = acker.ack_with(AckKind::Nak(Some(GAP_NAK_DELAY))).await {
                tracing::warn!(%error, "cannot nak a record after a gap");
            }
            let due = state
                .last_resend
                .is_none_or(|at| at.elapsed() >= RESEND_REQUEST_INTERVAL);
            if due {
                state.last_resend = Some(Instant::now());
                let last_crc = state.last_crc;
                let known_log = if state.log_id == 0 {
                    log_id
                } else {
                    state.log_id
                };
                if let Err(error) = self.send_resend(&origin, known_log, from, last_crc).await {
                    tracing::warn!(%error, "cannot ask for a resend");
                }
            }
            return None;
        }
        state.last = Some(record.offset);
        state.last_crc = Some(record.crc);
        state.log_id = log_id;
        state.in_flight.insert(stream_sequence);
        Some(Inbound {
            handle: AckHandle {
                acker,
                origin: origin.clone(),
                offset: record.offset,
                stream_sequence,
            },
            origin,
            log_id,
            record,
        })
    }

    /// Acks records after their commit: the server will not deliver them again. Store the
    /// durable offset first ([`store_durable`](Self::store_durable)): it is what the origin
    /// trusts; a lost ack only means a redelivery, dropped by offset.
    ///
    /// # Errors
    /// An ack cannot be sent (the connection is down): the records will be redelivered.
    pub async fn ack(&mut self, handles: Vec<AckHandle>) -> Result<(), NatsError> {
        for handle in handles {
            handle.acker.ack().await.map_err(|error| {
                server_error(format!("acking offset {}", handle.offset))(&*error)
            })?;
            if let Some(state) = self.origins.get_mut(&handle.origin) {
                state.in_flight.remove(&handle.stream_sequence);
            }
        }
        self.client
            .flush()
            .await
            .map_err(|error| server_error("flushing acks")(&error))
    }

    /// Gives records back uncommitted (the commit failed): the server delivers them again, and
    /// their origin's chain restarts from its durable offset.
    ///
    /// # Errors
    /// A nak cannot be sent; the server redelivers after [`ACK_WAIT`] anyway.
    pub async fn release(&mut self, handles: Vec<AckHandle>) -> Result<(), NatsError> {
        for handle in handles {
            if let Some(state) = self.origins.get_mut(&handle.origin) {
                state.in_flight.remove(&handle.stream_sequence);
                state.last = state.committed.checked_sub(1);
                state.last_crc = None;
            }
            handle
                .acker
                .ack_with(AckKind::Nak(None))
                .await
                .map_err(|error| {
                    server_error(format!("releasing offset {}", handle.offset))(&*error)
                })?;
        }
        Ok(())
    }

    /// Stores `dest`'s durable offset for `origin`'s records (every offset below it committed)
    /// in [`DURABLE_BUCKET`]. Called by the receiver (`dest` is this hub) after its commit.
    ///
    /// # Errors
    /// The KV put failed.
    pub async fn store_durable(
        &mut self,
        origin: &HubId,
        dest: &HubId,
        offset: u64,
    ) -> Result<(), NatsError> {
        self.durables
            .put(
                durable_key(origin, dest),
                offset.to_string().into_bytes().into(),
            )
            .await
            .map_err(|error| server_error(format!("storing durable {origin}.{dest}"))(&error))?;
        if dest == &self.me {
            let state = self.origins.entry(origin.clone()).or_default();
            state.committed = state.committed.max(offset);
            if state
                .last
                .is_none_or(|last| last < offset.saturating_sub(1))
            {
                state.last = offset.checked_sub(1);
                state.last_crc = None;
            }
        }
        Ok(())
    }

    /// `dest`'s durable offset for `origin`'s records, if it stored one: the origin ships from
    /// here after a restart, and may forget what is below it.
    ///
    /// # Errors
    /// The KV get failed or holds something that is not an offset.
    pub async fn durable(&self, origin: &HubId, dest: &HubId) -> Result<Option<u64>, NatsError> {
        let key = durable_key(origin, dest);
        let value = self
            .durables
            .get(key.as_str())
            .await
            .map_err(|error| server_error(format!("reading durable {key}"))(&error))?;
        value
            .map(|bytes| {
                std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|text| text.parse::<u64>().ok())
                    .ok_or_else(|| NatsError::Server {
                        what: format!("reading durable {key}"),
                        message: "the value is not an offset".to_owned(),
                    })
            })
            .transpose()
    }

    async fn send_resend(
        &self,
        origin: &HubId,
        log_id: u128,
        from: u64,
        last_crc: Option<u32>,
    ) -> Result<(), NatsError> {
        let frame = wire::encode(&LinkFrame::Resume {
            log_id,
            from,
            last_crc,
        });
        let subject = control_subject(origin, &self.me);
        self.client
            .publish(subject.clone(), frame.into())
            .await
            .map_err(|error| server_error(format!("publishing to {subject}"))(&error))?;
        self.client
            .flush()
            .await
            .map_err(|error| server_error("flushing a resend request")(&error))?;
        self.counters
            .resend_requests
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Asks `origin` to publish its records for this hub again from offset `from` (a
    /// [`LinkFrame::Resume`] on `relay.ctl.<origin>.<me>`). [`next`](Self::next) does this
    /// itself on a gap.
    ///
    /// # Errors
    /// `origin` is not a peer, or the request cannot be sent.
    pub async fn request_resend(&mut self, origin: &HubId, from: u64) -> Result<(), NatsError> {
        self.check_dest(origin)?;
        let (log_id, last_crc) = self
            .origins
            .get(origin)
            .map_or((0, None), |state| (state.log_id, state.last_crc));
        self.send_resend(origin, log_id, from, last_crc).await
    }

    /// Subscribes to resend requests addressed to this hub (`relay.ctl.<me>.*`). Core NATS:
    /// a request sent while nobody listens is lost, and the receiver asks again on the next
    /// delivery after the gap.
    ///
    /// # Errors
    /// The subscription cannot be made.
    pub async fn resend_requests(&self) -> Result<ResendRequests, NatsError> {
        let subject = format!("{CONTROL_SUBJECT_PREFIX}.{}.*", self.me);
        let subscriber = self
            .client
            .subscribe(subject.clone())
            .await
            .map_err(|error| server_error(format!("subscribing to {subject}"))(&error))?;
        self.client
            .flush()
            .await
            .map_err(|error| server_error("flushing a subscription")(&error))?;
        Ok(ResendRequests {
            subscriber,
            peers: self.peers.clone(),
            me: self.me.clone(),
        })
    }

    /// Messages waiting in this hub's inbox and delivered but unacknowledged, per the server.
    ///
    /// # Errors
    /// The consumer info call failed.
    pub async fn pending(&mut self) -> Result<(u64, usize), NatsError> {
        let info = self
            .consumer
            .info()
            .await
            .map_err(|error| server_error("consumer info")(&error))?;
        Ok((info.num_pending, info.num_ack_pending))
    }
}

/// What [`check_server`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerReport {
    /// The server's version, as it says.
    pub version: String,
    /// Set when the version is below [`SERVER_VERSION_SAFE`] (or unreadable): why to upgrade.
    pub version_warning: Option<String>,
    /// Whether the server has JetStream enabled.
    pub jetstream: bool,
    /// The server's `max_payload`, bytes.
    pub max_payload: usize,
    /// Set when `max_payload` cannot hold the largest record.
    pub max_payload_warning: Option<String>,
    /// Messages in this hub's inbox stream, if it exists.
    pub inbox_messages: Option<u64>,
    /// Messages delivered to this hub's consumer and not yet acked, if it exists.
    pub consumer_ack_pending: Option<usize>,
    /// Whether the durable-offset bucket exists.
    pub durable_bucket: bool,
}

/// How a line of [`ServerReport::lines`] came out (`relay doctor` prints each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finding {
    /// Fine.
    Ok,
    /// Works, but worth knowing.
    Warn,
    /// The transport cannot work.
    Fail,
    /// Not there yet, nothing wrong.
    Skip,
}

impl ServerReport {
    /// The report as lines for `relay doctor`, for hub `me` at `url`.
    pub fn lines(&self, me: &HubId, url: &str) -> Vec<(Finding, String)> {
        let mut lines = vec![(
            if self.jetstream {
                Finding::Ok
            } else {
                Finding::Fail
            },
            format!(
                "nats-server {} at {url}, JetStream {}, max_payload {} bytes",
                self.version,
                if self.jetstream { "on" } else { "off" },
                self.max_payload
            ),
        )];
        for warning in [&self.version_warning, &self.max_payload_warning]
            .into_iter()
            .flatten()
        {
            lines.push((Finding::Warn, warning.clone()));
        }
        lines.push(match (self.inbox_messages, self.consumer_ack_pending) {
            (Some(messages), Some(unacked)) => (
                Finding::Ok,
                format!("inbox of {me}: {messages} messages, {unacked} delivered and unacked"),
            ),
            _ => (
                Finding::Skip,
                format!(
                    "no inbox stream or consumer for {me} yet: made when the transport connects"
                ),
            ),
        });
        if !self.durable_bucket {
            lines.push((
                Finding::Skip,
                format!("no {DURABLE_BUCKET} bucket yet: made when the transport connects"),
            ));
        }
        lines
    }
}

fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let core = text.trim_start_matches('v').split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|part| part.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// Connects as `me` and reports the server's version, JetStream, `max_payload`, and whether
/// this hub's inbox stream, consumer and the durable bucket exist. Creates nothing.
///
/// # Errors
/// The server cannot be reached or refuses the credentials.
pub async fn check_server(config: &NatsConfig, me: &HubId) -> Result<ServerReport, NatsError> {
    let client = connect_client(config, me, None).await?;
    let info = client.server_info();
    let version_warning = match parse_version(&info.version) {
        Some(version) if version >= SERVER_VERSION_SAFE => None,
        _ => Some(format!(
            "nats-server {} is older than {}.{}.{}: older servers lost streams on a crash; upgrade",
            info.version, SERVER_VERSION_SAFE.0, SERVER_VERSION_SAFE.1, SERVER_VERSION_SAFE.2
        )),
    };
    let needed = SHIPPED_PAYLOAD_BYTES_MAX + RECORD_HEADER_BYTES_MAX;
    let max_payload_warning = (info.max_payload < needed).then(|| {
        format!(
            "max_payload is {} bytes; records up to {needed} bytes need `max_payload: 2MB` in the server config",
            info.max_payload
        )
    });
    let jetstream = info.jetstream;
    let context = context(client);
    let (inbox_messages, consumer_ack_pending) = match context.get_stream(inbox_stream(me)).await {
        Ok(mut stream) => {
            let messages = stream.info().await.ok().map(|info| info.state.messages);
            let pending = match stream.consumer_info(consumer_name(me)).await {
                Ok(info) => Some(info.num_ack_pending),
                Err(_) => None,
            };
            (messages, pending)
        }
        Err(_) => (None, None),
    };
    let durable_bucket = context.get_key_value(DURABLE_BUCKET).await.is_ok();
    Ok(ServerReport {
        version: info.version,
        version_warning,
        jetstream,
        max_payload: info.max_payload,
        max_payload_warning,
        inbox_messages,
        consumer_ack_pending,
        durable_bucket,
    })
}

/// What [`bench_roundtrip`] runs.
#[derive(Clone, Debug)]
pub struct BenchSetup {
    /// The publishing hub's server config and id.
    pub origin: (NatsConfig, HubId),
    /// The receiving hub's.
    pub dest: (NatsConfig, HubId),
    /// Records to ship.
    pub records: usize,
    /// Payload bytes of each.
    pub payload_bytes: usize,
    /// Records per pipelined publish (and at most per receive).
    pub batch: usize,
}

/// What [`bench_roundtrip`] measured: publish to receive, the receiver committing each batch
/// (durable offset stored, then acked) as a hub would.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchFigures {
    /// Records shipped.
    pub records: usize,
    /// Payload bytes of each.
    pub payload_bytes: usize,
    /// From the first publish to the last record received, seconds.
    pub seconds: f64,
    /// Records received per second.
    pub records_per_second: f64,
    /// Median publish-to-receive latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile, microseconds.
    pub p99_us: u64,
    /// Slowest, microseconds.
    pub max_us: u64,
}

impl std::fmt::Display for BenchFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} records of {} B in {:.2} s: {:.0} records/s, publish to receive p50 {} µs, p99 {} µs, max {} µs",
            self.records,
            self.payload_bytes,
            self.seconds,
            self.records_per_second,
            self.p50_us,
            self.p99_us,
            self.max_us
        )
    }
}

/// Latencies [`bench_roundtrip`] tells apart, at most (longer ones count as this), µs.
pub const BENCH_LATENCY_US_MAX: u64 = 60_000_000;

/// Longest a [`bench_roundtrip`] may wait for the next record before it gives up.
pub const BENCH_STALL_MAX: Duration = Duration::from_secs(30);

/// Ships `setup.records` records from origin to dest through the server and measures
/// throughput and publish-to-receive latency (for `relay bench federation --nats`). Offsets
/// continue from dest's durable offset, so runs against the same server do not collide.
///
/// # Errors
/// A connection, publish or commit failed, or no record arrived for [`BENCH_STALL_MAX`].
pub async fn bench_roundtrip(setup: &BenchSetup) -> Result<BenchFigures, NatsError> {
    let (origin_config, origin_id) = &setup.origin;
    let (dest_config, dest_id) = &setup.dest;
    let origin =
        JetStreamTransport::connect(origin_config, origin_id, std::slice::from_ref(dest_id))
            .await?;
    let mut dest =
        JetStreamTransport::connect(dest_config, dest_id, std::slice::from_ref(origin_id)).await?;
    let start_offset = dest.durable(origin_id, dest_id).await?.unwrap_or(0);
    let log_id = 0x5245_4c41_5942_454e_4348_u128;
    let payload = vec![b'x'; setup.payload_bytes];
    let records: Vec<ShippedRecord> = (0..setup.records as u64)
        .map(|index| {
            let offset = start_offset + index;
            ShippedRecord {
                offset,
                previous: offset.checked_sub(1).unwrap_or(NO_PREVIOUS),
                timestamp_us: offset,
                kind: 1,
                schema_version: 1,
                origin_hub: log_id,
                crc: wire::record_crc(offset, offset, 1, 1, log_id, &payload),
                payload: payload.clone(),
            }
        })
        .collect();
    let batch = setup.batch.max(1);
    let wanted = setup.records;
    let dest_hub = dest_id.clone();
    let origin_hub = origin_id.clone();
    let receiver = tokio::spawn(async move {
        let mut arrivals: Vec<(u64, Instant)> = Vec::with_capacity(wanted);
        while arrivals.len() < wanted {
            let inbound = dest.next(batch, BENCH_STALL_MAX).await?;
            if inbound.is_empty() {
                return Err(NatsError::Refused(format!(
                    "no record for {BENCH_STALL_MAX:?} after {} of {wanted}",
                    arrivals.len()
                )));
            }
            let now = Instant::now();
            let mut last = 0;
            let mut handles = Vec::with_capacity(inbound.len());
            for record in inbound {
                last = record.record.offset;
                arrivals.push((record.record.offset, now));
                handles.push(record.handle);
            }
            dest.store_durable(&origin_hub, &dest_hub, last + 1).await?;
            dest.ack(handles).await?;
        }
        Ok(arrivals)
    });
    let started = Instant::now();
    let mut sent: Vec<Instant> = Vec::with_capacity(wanted);
    for chunk in records.chunks(batch) {
        let now = Instant::now();
        sent.extend(std::iter::repeat_n(now, chunk.len()));
        origin.publish_batch(dest_id, log_id, chunk).await?;
    }
    let arrivals = receiver
        .await
        .map_err(|error| NatsError::Refused(format!("the receiving task failed: {error}")))??;
    let seconds = started.elapsed().as_secs_f64();
    let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, BENCH_LATENCY_US_MAX, 3)
        .map_err(|error| NatsError::Refused(format!("histogram: {error}")))?;
    for (offset, at) in &arrivals {
        let index = usize::try_from(offset - start_offset).unwrap_or(usize::MAX);
        if let Some(sent_at) = sent.get(index) {
            let micros = at.saturating_duration_since(*sent_at).as_micros();
            histogram.saturating_record(u64::try_from(micros).unwrap_or(u64::MAX));
        }
    }
    Ok(BenchFigures {
        records: arrivals.len(),
        payload_bytes: setup.payload_bytes,
        seconds,
        records_per_second: arrivals.len() as f64 / seconds.max(f64::MIN_POSITIVE),
        p50_us: histogram.value_at_quantile(0.5),
        p99_us: histogram.value_at_quantile(0.99),
        max_us: histogram.max(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(id: &str) -> HubId {
        HubId::new(id).expect("a hub id")
    }

    fn record(offset: u64, previous: u64, payload: &[u8]) -> ShippedRecord {
        ShippedRecord {
            offset,
            previous,
            timestamp_us: 7,
            kind: 3,
            schema_version: 1,
            origin_hub: 9,
            crc: wire::record_crc(offset, 7, 3, 1, 9, payload),
            payload: payload.to_vec(),
        }
    }

    fn with_id(origin: &HubId, log_id: u128, record: &ShippedRecord) -> HeaderMap {
        let mut map = headers(origin, log_id, record);
        map.insert(
            HEADER_MSG_ID,
            message_id(origin, log_id, record.offset).as_str(),
        );
        map
    }

    #[test]
    fn a_record_round_trips_through_headers() {
        let (me, a) = (hub("b"), hub("a"));
        let peers: HashSet<HubId> = [a.clone()].into();
        for shipped in [record(0, NO_PREVIOUS, b"x"), record(9, 4, b"")] {
            let map = with_id(&a, 5, &shipped);
            let decoded = decode_inbound(
                &me,
                &peers,
                &inbox_subject(&me, &a),
                Some(&map),
                &shipped.payload,
            );
            assert_eq!(decoded, Ok((a.clone(), 5, shipped)));
        }
    }

    #[test]
    fn impersonation_strangers_and_bad_bytes_are_refused() {
        let (me, a, evil) = (hub("b"), hub("a"), hub("evil"));
        let peers: HashSet<HubId> = [a.clone(), evil.clone()].into();
        let shipped = record(3, NO_PREVIOUS, b"abc");
        let claims_a = with_id(&a, 5, &shipped);
        assert!(matches!(
            decode_inbound(
                &me,
                &peers,
                &inbox_subject(&me, &evil),
                Some(&claims_a),
                b"abc"
            ),
            Err(Rejection::Impersonation { .. })
        ));
        assert_eq!(
            decode_inbound(&me, &peers, "relay.in.b.stranger", Some(&claims_a), b"abc"),
            Err(Rejection::NotPeer(hub("stranger")))
        );
        assert_eq!(
            decode_inbound(&me, &peers, "relay.in.c.a", Some(&claims_a), b"abc"),
            Err(Rejection::Subject)
        );
        assert_eq!(
            decode_inbound(
                &me,
                &peers,
                &inbox_subject(&me, &a),
                Some(&claims_a),
                b"abd"
            ),
            Err(Rejection::Crc(3))
        );
        assert!(decode_inbound(&me, &peers, &inbox_subject(&me, &a), None, b"abc").is_err());
        let mut wrong_id = claims_a.clone();
        wrong_id.insert(HEADER_MSG_ID, message_id(&a, 5, 4).as_str());
        assert_eq!(
            decode_inbound(
                &me,
                &peers,
                &inbox_subject(&me, &a),
                Some(&wrong_id),
                b"abc"
            ),
            Err(Rejection::Header(HEADER_MSG_ID))
        );
    }

    #[test]
    fn the_nats_table_names_each_bad_key() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let parse = |text: &str| {
            let value: toml::Value = toml::from_str(text).expect("toml");
            parse_nats_table(&value, dir.path())
        };
        assert_eq!(
            parse("url = \"nats://127.0.0.1:4222\"\ntoken = \"t\""),
            Ok(NatsConfig {
                url: "nats://127.0.0.1:4222".to_owned(),
                auth: NatsAuth::Token("t".to_owned()),
            })
        );
        let cases = [
            ("token = \"t\"", "nats.url"),
            ("url = \"nats://nats.example.org:4222\"", "nats.url"),
            ("url = \"tls://n:4222\"\ntoken = \"\"", "nats.token"),
            (
                "url = \"tls://n:4222\"\ncreds = \"missing.creds\"",
                "nats.creds",
            ),
            (
                "url = \"tls://n:4222\"\ntoken = \"t\"\ncreds = \"c\"",
                "nats.creds",
            ),
            ("url = \"tls://n:4222\"\ncolour = \"blue\"", "nats.colour"),
        ];
        for (text, key) in cases {
            let error = parse(text).expect_err(text);
            assert_eq!(error.key, key, "{text}: {error}");
        }
    }

    #[test]
    fn versions_below_the_safe_release_are_told() {
        assert_eq!(parse_version("2.9.10"), Some((2, 9, 10)));
        assert!(parse_version("2.10.23").is_some_and(|v| v >= SERVER_VERSION_SAFE));
        assert!(parse_version("v2.11.0-beta").is_some_and(|v| v >= SERVER_VERSION_SAFE));
        assert_eq!(parse_version("x"), None);
    }
}
