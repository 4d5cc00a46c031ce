//! `relay relay-server`: a WebSocket router that pairs hubs behind NAT, every connection
//! outbound from the hubs.
//!
//! A hub connects to `/v1/link?from=<me>&to=<peer>` with `Authorization: Bearer <token>`.
//! The token must be the one configured for hub `from` (compared in constant time), and `to`
//! must be a configured hub; otherwise the upgrade is refused with 400, 401, 403 or 404 and a
//! one-line reason. The server pairs the connection `(from X, to Y)` with `(from Y, to X)`,
//! sends each side one text message `paired`, and from then on forwards binary messages both
//! ways, unchanged and in order, until either side closes (then it closes the other). What
//! crosses is a Noise link ([`super::noise`]): the relay carries bytes it cannot read, and
//! cannot alter them without the link noticing.
//!
//! With `[tls]` in its config ([`load_config`]) the server speaks TLS (rustls on ring) and
//! hubs use `wss://`; without it, plain `ws://`, which hubs accept on loopback only (the CLI
//! refuses a plain server on another address unless a TLS proxy fronts it). TLS is an outer
//! layer: the Noise link inside is the same either way.
//!
//! Every resource is bounded: connections in all and per hub, bytes and time before the
//! upgrade (the TLS handshake included), message size, the wait for a partner, silence on a
//! pair, and buffering (one message in flight per direction: a side is read only as fast as
//! the other side takes its bytes).

use crate::hub::preauth::PreAuthLimit;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::config::{HubId, PEERS_MAX, RELAY_TOKEN_BYTES_MAX};

/// The request path hubs connect to (the version lets a later protocol live beside it).
pub const LINK_PATH: &str = "/v1/link";

/// The text message the server sends each side once it is paired.
pub const PAIRED_MESSAGE: &str = "paired";

/// Largest WebSocket message the server forwards, in bytes. A Noise transport message is at
/// most 65,535 bytes plus its 2-byte length, and the hub-side client sends at most
/// [`super::relay_client::RELAY_WRITE_BYTES_MAX`] per message; twice that leaves room for a
/// client that batches two, and a larger message ends the pair.
pub const RELAY_MESSAGE_BYTES_MAX: usize = 128 << 10;

/// Connections open at once, in all. Below the common 1,024 open-files soft limit, so the
/// server refuses cleanly instead of failing `accept` (each connection is one descriptor).
pub const CONNECTIONS_MAX: usize = 1_000;

/// Connections still in their HTTP upgrade at once: strangers cannot hold every connection
/// slot by opening sockets and sending nothing (each has [`UPGRADE_TIMEOUT`]).
pub const UPGRADES_MAX: usize = 64;

/// Authenticated connections one hub may hold at once. A hub links with at most
/// [`PEERS_MAX`] peers, one connection each; twice that leaves room for a reconnection that
/// arrives before the connection it replaces has closed.
pub const HUB_CONNECTIONS_MAX: usize = 2 * PEERS_MAX;

/// Hubs one relay-server config may list: each may connect to every other, so this bounds
/// the pairing table (hubs × hubs entries at worst).
pub const RELAY_HUBS_MAX: usize = 1_024;

/// Shortest token, in bytes: 32 random bytes as hex or base64 are longer, and a shorter one
/// cannot carry the 128+ bits that make guessing hopeless.
pub const RELAY_TOKEN_BYTES_MIN: usize = 32;

/// Bytes a client may send before its upgrade completes: a hub's upgrade request is a few
/// hundred bytes; more is not a hub.
pub const UPGRADE_BYTES_MAX: usize = 8 << 10;

/// Bytes a client may send for its TLS handshake, on top of [`UPGRADE_BYTES_MAX`]: a
/// ClientHello is a few hundred bytes (some 2 KiB with post-quantum key shares) and the rest
/// of the client's handshake less; 16 KiB is a whole TLS record. A larger ClientHello is cut
/// off, whatever length it claims.
pub const TLS_HANDSHAKE_BYTES_MAX: usize = 16 << 10;

/// Time for the TCP connection to complete its TLS handshake (with `[tls]`) and WebSocket
/// upgrade.
pub const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection waits for its partner before the server closes it. Hubs reconnect
/// after a close, so this only bounds how long an idle connection holds a slot; 5 minutes
/// keeps reconnections rare while a peer hub is down.
pub const UNPAIRED_WAIT_MAX: Duration = Duration::from_secs(300);

/// Longest silence from either side of a pair before the server ends it. Links send a
/// heartbeat well within the link's own 30 s deadline
/// ([`super::noise::LINK_IO_DEADLINE`]); three times that is a dead hub, not a slow one.
pub const PAIR_IDLE_DEADLINE: Duration = Duration::from_secs(90);

/// Longest one write to a side may take (a side that does not read stalls its partner's
/// direction; past this the pair ends).
pub const WRITE_DEADLINE: Duration = Duration::from_secs(30);

/// Bytes tungstenite may hold for writing to one connection: its 128 KiB batching buffer plus
/// two of the largest messages (a forwarded one and a pong or close). With one message in
/// flight per direction this is the most a pair buffers per side.
pub const WRITE_BUFFER_BYTES_MAX: usize = (128 << 10) + 2 * RELAY_MESSAGE_BYTES_MAX;

/// Refused connections are logged at most once per this interval (with a count of the ones
/// not logged), so a client retrying in a loop cannot flood the log.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// One hub the server accepts.
#[derive(Clone)]
pub struct RelayHub {
    /// Its id.
    pub hub_id: HubId,
    /// Its token (the bearer secret it connects with).
    pub token: String,
}

impl std::fmt::Debug for RelayHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayHub")
            .field("hub_id", &self.hub_id)
            .field("token", &"..")
            .finish()
    }
}

/// A checked relay-server config file.
#[derive(Clone, Debug)]
pub struct RelayServerConfig {
    /// The hubs that may connect.
    pub hubs: Vec<RelayHub>,
    /// TLS (`[tls]`): hubs connect with `wss://`. `None`: plain `ws://`.
    pub tls: Option<ServerTls>,
}

/// The server's certificate and key, checked and ready to serve (`[tls]`).
#[derive(Clone)]
pub struct ServerTls {
    /// The certificate chain file (PEM), as resolved.
    pub cert_file: PathBuf,
    /// The private key file (PEM), as resolved.
    pub key_file: PathBuf,
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

/// A relay-server config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RelayConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Others may read the file (it holds every hub's token).
    #[error(
        "{path} has mode {mode:03o}: others could read the hub tokens; `chmod 600 {path}`",
        path = path.display()
    )]
    Mode {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not TOML, an unknown key or a wrong type.
    #[error("{path}: {message}", path = path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's words (they name the key and line).
        message: String,
    },
    /// A key with a value that is not allowed.
    #[error("{path}: `{key}`: {message}", path = path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key, dotted (`hub[2].token`).
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServerConfig {
    #[serde(default)]
    hub: Vec<RawHub>,
    tls: Option<RawTls>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHub {
    hub_id: String,
    token: String,
}

/// Reads and checks the config at `path`; refuses it unless its mode is 0600 or stricter.
///
/// # Errors
/// See [`RelayConfigError`]; each names the file and the key.
pub fn load_config(path: &Path) -> Result<RelayServerConfig, RelayConfigError> {
    use std::os::unix::fs::MetadataExt as _;
    let io = |source| RelayConfigError::Io {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(io)?;
    if metadata.mode() & 0o077 != 0 {
        return Err(RelayConfigError::Mode {
            path: path.to_owned(),
            mode: metadata.mode() & 0o777,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    parse_config(&text, path)
}

/// Parses and checks the text of a relay-server config (`path` names it in errors; relative
/// `[tls]` paths are taken from its directory, and those files are read and checked here).
///
/// # Errors
/// See [`RelayConfigError`].
pub fn parse_config(text: &str, path: &Path) -> Result<RelayServerConfig, RelayConfigError> {
    let raw: RawServerConfig = toml::from_str(text).map_err(|error| RelayConfigError::Syntax {
        path: path.to_owned(),
        message: error.to_string().trim_end().to_owned(),
    })?;
    let invalid = |key: String, message: String| RelayConfigError::Invalid {
        path: path.to_owned(),
        key,
        message,
    };
    if raw.hub.is_empty() {
        return Err(invalid(
            "hub".to_owned(),
            "no hubs: add one `[[hub]]` with `hub_id` and `token` per hub that may connect"
                .to_owned(),
        ));
    }
    if raw.hub.len() > RELAY_HUBS_MAX {
        return Err(invalid(
            "hub".to_owned(),
            format!("{} hubs; at most {RELAY_HUBS_MAX}", raw.hub.len()),
        ));
    }
    let mut hubs: Vec<RelayHub> = Vec::with_capacity(raw.hub.len());
    for (index, hub) in raw.hub.into_iter().enumerate() {
        let key = |field: &str| format!("hub[{index}].{field}");
        let hub_id = HubId::new(&hub.hub_id).map_err(|message| invalid(key("hub_id"), message))?;
        if let Some(first) = hubs.iter().position(|seen| seen.hub_id == hub_id) {
            return Err(invalid(
                key("hub_id"),
                format!("{hub_id} is listed twice (also hub[{first}])"),
            ));
        }
        check_token(&hub.token).map_err(|message| invalid(key("token"), message))?;
        if let Some(first) = hubs
            .iter()
            .position(|seen| same_token(&seen.token, &hub.token))
        {
            return Err(invalid(
                key("token"),
                format!(
                    "the same token as hub[{first}]: each hub needs its own (`relay relay-server --new-token`)"
                ),
            ));
        }
        hubs.push(RelayHub {
            hub_id,
            token: hub.token,
        });
    }
    let tls = raw
        .tls
        .map(|tls| {
            let base = path.parent().unwrap_or(Path::new(""));
            load_tls(&base.join(tls.cert_file), &base.join(tls.key_file))
                .map_err(|(key, message)| invalid(key.to_owned(), message))
        })
        .transpose()?;
    Ok(RelayServerConfig { hubs, tls })
}

/// Reads and checks `[tls]`: the certificate chain, the key (0600 or stricter), and that the
/// key is the certificate's. Errors name the key (`tls.cert_file`, `tls.key_file`).
fn load_tls(cert_file: &Path, key_file: &Path) -> Result<ServerTls, (&'static str, String)> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject as _;
    let chain = super::config::load_pem_certificates(cert_file)
        .map_err(|message| ("tls.cert_file", message))?;
    super::config::check_private_file(key_file, "TLS private key")
        .map_err(|message| ("tls.key_file", message))?;
    let key_pem =
        super::config::read_pem_file(key_file).map_err(|message| ("tls.key_file", message))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| {
        (
            "tls.key_file",
            format!(
                "{} holds no usable private key ({error}): expected PEM with a \
                 `-----BEGIN PRIVATE KEY-----` (or RSA or EC) block",
                key_file.display()
            ),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|error| {
            (
                "tls.key_file",
                format!("{}: not a usable key: {error}", key_file.display()),
            )
        })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ("tls", format!("no TLS versions to offer: {error}")))?
        .with_no_client_auth();
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|error| match error {
            rustls::Error::InconsistentKeys(_) => (
                "tls.key_file",
                format!(
                    "{} is not the key of the certificate in {}",
                    key_file.display(),
                    cert_file.display()
                ),
            ),
            other => ("tls.cert_file", format!("{}: {other}", cert_file.display())),
        })?;
    Ok(ServerTls {
        cert_file: cert_file.to_owned(),
        key_file: key_file.to_owned(),
        config: Arc::new(config),
    })
}

/// A token: [`RELAY_TOKEN_BYTES_MIN`] to [`RELAY_TOKEN_BYTES_MAX`] visible ASCII characters
/// (it travels in an HTTP header), not one character repeated.
fn check_token(token: &str) -> Result<(), String> {
    let make = "`relay relay-server --new-token` makes one";
    if token.len() < RELAY_TOKEN_BYTES_MIN || token.len() > RELAY_TOKEN_BYTES_MAX {
        return Err(format!(
            "{} bytes; a token is {RELAY_TOKEN_BYTES_MIN} to {RELAY_TOKEN_BYTES_MAX} characters ({make})",
            token.len()
        ));
    }
    if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(format!(
            "only visible ASCII characters, no spaces (it travels in an HTTP header); {make}"
        ));
    }
    let first = token.as_bytes()[0];
    if token.bytes().all(|byte| byte == first) {
        return Err(format!("is one character repeated, not random; {make}"));
    }
    Ok(())
}

/// A fresh token: 32 random bytes as 64 hex digits.
///
/// # Errors
/// The system's random source failed.
pub fn new_token() -> std::io::Result<String> {
    super::config::Key32::random().map(|key| key.to_hex())
}

/// Compares two tokens in time that depends only on their lengths.
fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let difference = a
        .iter()
        .zip(b)
        .fold(0u8, |difference, (x, y)| difference | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// A connection's bytes: TCP with the pre-upgrade read budget (counted on the TCP bytes, so
/// the TLS handshake spends it too), in TLS or not.
enum Connection {
    Plain(PreAuthLimit<TcpStream>),
    Tls(Box<tokio_rustls::server::TlsStream<PreAuthLimit<TcpStream>>>),
}

impl Connection {
    /// Removes the read budget (the connection was upgraded and admitted).
    fn lift(&mut self) {
        match self {
            Connection::Plain(stream) => stream.lift(),
            Connection::Tls(stream) => stream.get_mut().0.lift(),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_read(context, buf),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_read(context, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_write(context, buf),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_write(context, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_flush(context),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(context),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_shutdown(context),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(context),
        }
    }
}

/// A connection as tungstenite sees it.
type Socket = WebSocketStream<Connection>;

/// The first byte of a TLS connection: a handshake record (the ClientHello). An HTTP request
/// starts with a letter, so the two cannot be confused.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Runs the server on `listener` until `shutdown` completes; then closes every connection.
///
/// # Errors
/// None today once listening (accept errors are retried with a back-off); the `Result` keeps
/// the signature open for setup that can fail.
pub async fn serve(
    listener: TcpListener,
    config: RelayServerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        hubs: config.hubs,
        tls: config
            .tls
            .map(|tls| tokio_rustls::TlsAcceptor::from(tls.config)),
        state: Mutex::new(State::default()),
        refusals: Mutex::new(RefusalLog::default()),
    });
    let connections = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let upgrades = Arc::new(Semaphore::new(UPGRADES_MAX));
    let mut tasks = tokio::task::JoinSet::new();
    let mut accept_failures = 0u32;
    tokio::pin!(shutdown);
    // Runs until shutdown; each pass accepts one connection or reaps one finished task.
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => {
                accept_failures = 0;
                accepted
            }
            Err(error) => {
                // Out of descriptors or similar: back off so the loop does not spin.
                accept_failures = accept_failures.saturating_add(1);
                shared.refused(&format!("accept failed: {error}"));
                let wait = Duration::from_millis(10u64 << accept_failures.min(7));
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        let Ok(connection) = connections.clone().try_acquire_owned() else {
            shared.refused(&format!(
                "{CONNECTIONS_MAX} connections are open; closing new ones until some end"
            ));
            continue;
        };
        let Ok(upgrade) = upgrades.clone().try_acquire_owned() else {
            shared.refused(&format!(
                "{UPGRADES_MAX} connections are in their upgrade; closing new ones until they finish"
            ));
            continue;
        };
        let shared = shared.clone();
        tasks.spawn(async move {
            let _connection = connection;
            connection_task(shared, stream, remote, upgrade).await;
        });
    }
    tasks.shutdown().await;
    Ok(())
}

/// What every connection task shares.
struct Shared {
    hubs: Vec<RelayHub>,
    /// With `[tls]`: every connection starts with a TLS handshake.
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Mutex<State>,
    refusals: Mutex<RefusalLog>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere left the table as it was between two whole updates.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Logs a refusal, at most once per [`REFUSAL_LOG_INTERVAL`].
    fn refused(&self, why: &str) {
        let mut log = self
            .refusals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if log
            .last
            .is_some_and(|last| now.duration_since(last) < REFUSAL_LOG_INTERVAL)
        {
            log.suppressed = log.suppressed.saturating_add(1);
            return;
        }
        let suppressed = std::mem::take(&mut log.suppressed);
        log.last = Some(now);
        tracing::warn!(
            not_logged_since_last = suppressed,
            "relay server refused a connection: {why}"
        );
    }

    /// Checks an upgrade request: the path, the query, the token and the hubs.
    fn check_request(&self, request: &Request) -> Result<(HubId, HubId), (StatusCode, String)> {
        let uri = request.uri();
        if uri.path() != LINK_PATH {
            return Err((
                StatusCode::NOT_FOUND,
                format!(
                    "no such path {:?}; hubs connect to {LINK_PATH}?from=ID&to=ID",
                    uri.path()
                ),
            ));
        }
        let (from, to) = parse_query(uri.query().unwrap_or_default())
            .map_err(|why| (StatusCode::BAD_REQUEST, why))?;
        let token = request
            .headers()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| {
                (
                    StatusCode::UNAUTHORIZED,
                    "no `Authorization: Bearer <token>` header".to_owned(),
                )
            })?;
        // Every configured token is compared, so the time taken says nothing about which one
        // (if any) matched.
        let mut owner = None;
        for hub in &self.hubs {
            if same_token(&hub.token, token) {
                owner = Some(&hub.hub_id);
            }
        }
        match owner {
            None => {
                return Err((
                    StatusCode::UNAUTHORIZED,
                    format!("the token is not one this relay knows (connecting as {from})"),
                ));
            }
            Some(owner) if *owner != from => {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!("the token is hub {owner}'s, not hub {from}'s"),
                ));
            }
            Some(_) => {}
        }
        if from == to {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("hub {from} asked to be paired with itself"),
            ));
        }
        if !self.hubs.iter().any(|hub| hub.hub_id == to) {
            return Err((
                StatusCode::NOT_FOUND,
                format!("no hub {to} is configured at this relay"),
            ));
        }
        Ok((from, to))
    }

    /// Takes one of `hub`'s connection slots, if it has one left.
    fn reserve(self: &Arc<Self>, hub: &HubId) -> Option<HubSlot> {
        let mut state = self.state();
        let count = state.per_hub.entry(hub.clone()).or_default();
        if *count >= HUB_CONNECTIONS_MAX {
            return None;
        }
        *count += 1;
        Some(HubSlot {
            shared: self.clone(),
            hub: hub.clone(),
        })
    }
}

/// `from=<id>&to=<id>`, both hub ids (which need no percent-decoding), nothing else.
fn parse_query(query: &str) -> Result<(HubId, HubId), String> {
    let mut from = None;
    let mut to = None;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "from" => &mut from,
            "to" => &mut to,
            _ => return Err(format!("unknown query key {key:?}; give from=ID&to=ID")),
        };
        if slot.is_some() {
            return Err(format!("{key} given twice"));
        }
        *slot = Some(HubId::new(value).map_err(|why| format!("{key}: {why}"))?);
    }
    match (from, to) {
        (Some(from), Some(to)) => Ok((from, to)),
        _ => Err("give both from=ID and to=ID in the query".to_owned()),
    }
}

#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    suppressed: u64,
}

/// The pairing table.
#[derive(Default)]
struct State {
    /// The registered connection for each (from, to).
    slots: HashMap<(HubId, HubId), Slot>,
    /// Authenticated connections per hub.
    per_hub: HashMap<HubId, usize>,
    next_id: u64,
}

impl State {
    /// Removes the slot for `key` if it is still the connection `id`'s.
    fn release(&mut self, key: &(HubId, HubId), id: u64) {
        if self.slots.get(key).is_some_and(|slot| slot.id == id) {
            self.slots.remove(key);
        }
    }
}

/// One registered connection. Dropping it (a newer connection for the same pair of hubs
/// replaced it) drops `_kill`, which tells the connection's task to close.
struct Slot {
    id: u64,
    _kill: oneshot::Sender<()>,
    /// Set while the connection waits: a partner hands itself over here.
    offer: Option<oneshot::Sender<Arrival>>,
}

/// One of a hub's connection slots; gives it back when dropped.
struct HubSlot {
    shared: Arc<Shared>,
    hub: HubId,
}

impl Drop for HubSlot {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        if let Some(count) = state.per_hub.get_mut(&self.hub) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.per_hub.remove(&self.hub);
            }
        }
    }
}

/// An upgraded, authenticated connection.
struct Arrival {
    socket: Socket,
    id: u64,
    from: HubId,
    to: HubId,
    /// Completes (with an error) when a newer connection replaced this one.
    kill: oneshot::Receiver<()>,
    _slot: HubSlot,
}

impl Arrival {
    fn key(&self) -> (HubId, HubId) {
        (self.from.clone(), self.to.clone())
    }
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(RELAY_MESSAGE_BYTES_MAX))
        .max_frame_size(Some(RELAY_MESSAGE_BYTES_MAX))
        .max_write_buffer_size(WRITE_BUFFER_BYTES_MAX)
}

async fn connection_task(
    shared: Arc<Shared>,
    stream: TcpStream,
    remote: SocketAddr,
    upgrade: tokio::sync::OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let mut admitted: Option<(HubId, HubId, HubSlot)> = None;
    #[expect(
        clippy::result_large_err,
        reason = "the signature is tungstenite's handshake callback"
    )]
    let callback = |request: &Request, response: Response| {
        let refuse = |status: StatusCode, why: String| {
            shared.refused(&format!("{remote}: HTTP {}: {why}", status.as_u16()));
            let mut refused = ErrorResponse::new(Some(format!("relay: {why}\n")));
            *refused.status_mut() = status;
            refused
        };
        let (from, to) = shared
            .check_request(request)
            .map_err(|(status, why)| refuse(status, why))?;
        let Some(slot) = shared.reserve(&from) else {
            return Err(refuse(
                StatusCode::TOO_MANY_REQUESTS,
                format!("hub {from} holds {HUB_CONNECTIONS_MAX} connections already"),
            ));
        };
        admitted = Some((from, to, slot));
        Ok(response)
    };
    // The TLS handshake (with `[tls]`) and the upgrade share one deadline and one budget.
    let handshake = async {
        let connection = open(&shared, stream, remote).await?;
        match tokio_tungstenite::accept_hdr_async_with_config(
            connection,
            callback,
            Some(ws_config()),
        )
        .await
        {
            Ok(socket) => Some(socket),
            Err(error) => {
                tracing::debug!(%remote, %error, "relay upgrade failed");
                None
            }
        }
    };
    let mut socket = match tokio::time::timeout(UPGRADE_TIMEOUT, handshake).await {
        Ok(Some(socket)) => socket,
        Ok(None) => return,
        Err(_) => {
            let what = if shared.tls.is_some() {
                "TLS handshake and WebSocket upgrade"
            } else {
                "WebSocket upgrade"
            };
            shared.refused(&format!("{remote}: no {what} within {UPGRADE_TIMEOUT:?}"));
            return;
        }
    };
    drop(upgrade);
    let Some((from, to, slot)) = admitted else {
        return;
    };
    socket.get_mut().lift();
    tracing::info!(%remote, %from, %to, "relay connection admitted");
    register(&shared, socket, from, to, slot).await;
}

/// Puts the read budget on a new connection and runs the TLS handshake if the server has
/// `[tls]`; `None` (logged) when the connection cannot go on. A client that speaks plain
/// HTTP to a TLS server is answered 400 with what to fix, in the clear, since it reads
/// nothing else; a TLS client of a plain server is closed. The caller bounds the time.
async fn open(shared: &Shared, stream: TcpStream, remote: SocketAddr) -> Option<Connection> {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(0) | Err(_) => return None,
        Ok(_) => {}
    }
    let speaks_tls = first[0] == TLS_HANDSHAKE_RECORD;
    let Some(acceptor) = &shared.tls else {
        if speaks_tls {
            shared.refused(&format!(
                "{remote}: a TLS handshake, but this relay server has no [tls]: \
                 give it [tls] cert_file and key_file, or use a ws:// url"
            ));
            return None;
        }
        return Some(Connection::Plain(PreAuthLimit::with_budget(
            stream,
            UPGRADE_BYTES_MAX,
            "the upgrade",
        )));
    };
    let mut limited = PreAuthLimit::with_budget(
        stream,
        UPGRADE_BYTES_MAX + TLS_HANDSHAKE_BYTES_MAX,
        "the TLS handshake and the upgrade",
    );
    if !speaks_tls {
        shared.refused(&format!(
            "{remote}: plain HTTP to a TLS relay server; answered 400 (use a wss:// url)"
        ));
        answer_plain_http(
            &mut limited,
            "relay: this relay server speaks TLS: use a wss:// url (not ws://)\n",
        )
        .await;
        return None;
    }
    match acceptor.accept(limited).await {
        Ok(tls) => Some(Connection::Tls(Box::new(tls))),
        Err(error) => {
            shared.refused(&format!("{remote}: TLS handshake failed: {error}"));
            None
        }
    }
}

/// Reads an HTTP request's head (within the read budget) and answers `400 Bad Request` with
/// `why` as the body, then closes.
async fn answer_plain_http(stream: &mut PreAuthLimit<TcpStream>, why: &str) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    // One pass per read; ends at the head's blank line, the end, an error or the budget.
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
        if head.windows(4).any(|window| window == b"\r\n\r\n") {
            break;
        }
    }
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{why}",
        why.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Registers a connection: hands it to its waiting partner, or waits for one.
async fn register(shared: &Arc<Shared>, socket: Socket, from: HubId, to: HubId, slot: HubSlot) {
    let (kill_tx, kill_rx) = oneshot::channel();
    let (offer_tx, offer_rx) = oneshot::channel();
    let mut arrival = {
        let mut state = shared.state();
        let id = state.next_id;
        state.next_id += 1;
        let mut arrival = Arrival {
            socket,
            id,
            from: from.clone(),
            to: to.clone(),
            kill: kill_rx,
            _slot: slot,
        };
        if state.slots.remove(&arrival.key()).is_some() {
            tracing::info!(%from, %to, "a newer connection replaces the older one");
        }
        let partner_key = (to.clone(), from.clone());
        if let Some(offer) = state
            .slots
            .get_mut(&partner_key)
            .and_then(|partner| partner.offer.take())
        {
            match offer.send(arrival) {
                Ok(()) => {
                    state.slots.insert(
                        (from, to),
                        Slot {
                            id,
                            _kill: kill_tx,
                            offer: None,
                        },
                    );
                    return;
                }
                // The partner gave up as we arrived: wait in its place.
                Err(back) => arrival = back,
            }
        }
        state.slots.insert(
            (from, to),
            Slot {
                id,
                _kill: kill_tx,
                offer: Some(offer_tx),
            },
        );
        arrival
    };
    wait_for_partner(shared, &mut arrival, offer_rx).await;
}

/// Why a connection or a pair ended, and how to close each side.
struct Ending {
    code: CloseCode,
    why: String,
}

impl Ending {
    fn new(code: CloseCode, why: String) -> Ending {
        Ending { code, why }
    }
}

async fn wait_for_partner(
    shared: &Arc<Shared>,
    arrival: &mut Arrival,
    mut offer: oneshot::Receiver<Arrival>,
) {
    let deadline = tokio::time::sleep(UNPAIRED_WAIT_MAX);
    tokio::pin!(deadline);
    // One pass per message read while waiting (pings, which tungstenite answers).
    let ending = loop {
        tokio::select! {
            partner = &mut offer => match partner {
                Ok(mut partner) => {
                    run_pair(shared, arrival, &mut partner).await;
                    return;
                }
                // The slot was dropped without a partner (a newer connection took it).
                Err(_) => break Ending::new(CloseCode::Normal, replaced(arrival)),
            },
            _ = &mut arrival.kill => break Ending::new(CloseCode::Normal, replaced(arrival)),
            () = &mut deadline => break Ending::new(
                CloseCode::Away,
                format!(
                    "hub {} did not connect within {UNPAIRED_WAIT_MAX:?}; connect again",
                    arrival.to
                ),
            ),
            message = arrival.socket.next() => match message {
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Binary(_) | Message::Text(_))) => break Ending::new(
                    CloseCode::Policy,
                    format!("a message before `{PAIRED_MESSAGE}`"),
                ),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break Ending::new(
                    CloseCode::Normal,
                    "closed while waiting".to_owned(),
                ),
            },
        }
    };
    tracing::info!(from = %arrival.from, to = %arrival.to, why = %ending.why, "relay connection closed unpaired");
    // A partner that arrived just as this connection gave up: it cannot be served.
    let mut orphan = offer.try_recv().ok();
    {
        let mut state = shared.state();
        state.release(&arrival.key(), arrival.id);
        if let Some(partner) = &orphan {
            state.release(&partner.key(), partner.id);
        }
    }
    // The lock is released before an orphan is dropped: its hub slot takes the lock to give
    // itself back.
    close(&mut arrival.socket, &ending).await;
    if let Some(partner) = &mut orphan {
        let gone = Ending::new(
            CloseCode::Away,
            format!("hub {} left as you arrived; connect again", arrival.from),
        );
        close(&mut partner.socket, &gone).await;
    }
}

fn replaced(arrival: &Arrival) -> String {
    format!(
        "replaced by a newer connection from hub {} to hub {}",
        arrival.from, arrival.to
    )
}

/// Closes `socket` with `ending`'s code and reason (bounded by [`WRITE_DEADLINE`]).
async fn close(socket: &mut Socket, ending: &Ending) {
    let frame = CloseFrame {
        code: ending.code,
        reason: truncate_reason(&ending.why).into(),
    };
    let _ = tokio::time::timeout(WRITE_DEADLINE, socket.close(Some(frame))).await;
}

/// A close reason fits in a control frame: at most 123 bytes, cut at a character boundary.
fn truncate_reason(why: &str) -> String {
    /// Largest close reason WebSocket allows (125-byte control frame minus the code).
    const CLOSE_REASON_BYTES_MAX: usize = 123;
    let mut end = why.len().min(CLOSE_REASON_BYTES_MAX);
    while !why.is_char_boundary(end) {
        end -= 1;
    }
    why[..end].to_owned()
}

/// Tells both sides they are paired, then forwards until one side ends; closes both.
async fn run_pair(shared: &Arc<Shared>, a: &mut Arrival, b: &mut Arrival) {
    tracing::info!(a = %a.from, b = %b.from, "relay paired two hubs");
    let ending = match tell_paired(a, b).await {
        Err(ending) => ending,
        Ok(()) => {
            let (mut a_sink, mut a_stream) = (&mut a.socket).split();
            let (mut b_sink, mut b_stream) = (&mut b.socket).split();
            tokio::select! {
                ending = forward(&a.from, &mut a_stream, &mut b_sink) => ending,
                ending = forward(&b.from, &mut b_stream, &mut a_sink) => ending,
                _ = &mut a.kill => Ending::new(CloseCode::Normal, format!("hub {} reconnected", a.from)),
                _ = &mut b.kill => Ending::new(CloseCode::Normal, format!("hub {} reconnected", b.from)),
            }
        }
    };
    tracing::info!(a = %a.from, b = %b.from, why = %ending.why, "relay pair ended");
    {
        let mut state = shared.state();
        state.release(&a.key(), a.id);
        state.release(&b.key(), b.id);
    }
    tokio::join!(close(&mut a.socket, &ending), close(&mut b.socket, &ending));
}

async fn tell_paired(a: &mut Arrival, b: &mut Arrival) -> Result<(), Ending> {
    for side in [a, b] {
        let sent = tokio::time::timeout(
            WRITE_DEADLINE,
            side.socket.send(Message::text(PAIRED_MESSAGE)),
        )
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            return Err(Ending::new(
                CloseCode::Away,
                format!("hub {} went away as it was paired", side.from),
            ));
        }
    }
    Ok(())
}

/// Forwards binary messages from one side to the other, one at a time (the next is read only
/// once the last was written); returns why it stopped.
async fn forward<R, W>(from: &HubId, read: &mut R, write: &mut W) -> Ending
where
    R: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
    W: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::error::CapacityError;
    // One pass per message from `from`; ends with the pair.
    loop {
        let message = match tokio::time::timeout(PAIR_IDLE_DEADLINE, read.next()).await {
            Err(_) => {
                return Ending::new(
                    CloseCode::Away,
                    format!("hub {from} sent nothing for {PAIR_IDLE_DEADLINE:?}"),
                );
            }
            Ok(message) => message,
        };
        let bytes = match message {
            Some(Ok(Message::Binary(bytes))) => bytes,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Text(_))) => {
                return Ending::new(
                    CloseCode::Unsupported,
                    format!("hub {from} sent a text message; only binary is forwarded"),
                );
            }
            Some(Ok(Message::Close(_))) | None => {
                return Ending::new(CloseCode::Normal, format!("hub {from} closed"));
            }
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, .. }))) => {
                return Ending::new(
                    CloseCode::Size,
                    format!(
                        "hub {from} sent a message of {size} bytes; at most {RELAY_MESSAGE_BYTES_MAX}"
                    ),
                );
            }
            Some(Err(error)) => {
                return Ending::new(CloseCode::Away, format!("hub {from}: {error}"));
            }
        };
        match tokio::time::timeout(WRITE_DEADLINE, write.send(Message::Binary(bytes))).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                return Ending::new(
                    CloseCode::Away,
                    format!("to the peer of hub {from}: {error}"),
                );
            }
            Err(_) => {
                return Ending::new(
                    CloseCode::Away,
                    format!("the peer of hub {from} took no bytes for {WRITE_DEADLINE:?}"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN_A: &str = "a7f3c19e5b2d8f4a6c0e1b3d5f7a9c2e";
    const TOKEN_B: &str = "b7f3c19e5b2d8f4a6c0e1b3d5f7a9c2e";

    fn parsed(text: &str) -> Result<RelayServerConfig, RelayConfigError> {
        parse_config(text, Path::new("relay-server.toml"))
    }

    #[test]
    fn a_valid_file_parses() {
        let config = parsed(&format!(
            "[[hub]]\nhub_id = \"a\"\ntoken = \"{TOKEN_A}\"\n[[hub]]\nhub_id = \"b\"\ntoken = \"{TOKEN_B}\"\n"
        ))
        .expect("valid");
        assert_eq!(config.hubs.len(), 2);
        assert!(
            !format!("{config:?}").contains(TOKEN_A),
            "tokens are not printed"
        );
    }

    #[test]
    fn each_error_names_its_key() {
        let cases = [
            (String::new(), "`hub`"),
            (
                format!("[[hub]]\nhub_id = \"A\"\ntoken = \"{TOKEN_A}\""),
                "`hub[0].hub_id`",
            ),
            (
                "[[hub]]\nhub_id = \"a\"\ntoken = \"short\"".to_owned(),
                "`hub[0].token`",
            ),
            (
                format!("[[hub]]\nhub_id = \"a\"\ntoken = \"{}\"", "x".repeat(40)),
                "not random",
            ),
            (
                format!("[[hub]]\nhub_id = \"a\"\ntoken = \"{}\"", "ab".repeat(200)),
                "`hub[0].token`",
            ),
            (
                format!("[[hub]]\nhub_id = \"a\"\ntoken = \"{TOKEN_A} x\""),
                "no spaces",
            ),
            (
                format!(
                    "[[hub]]\nhub_id = \"a\"\ntoken = \"{TOKEN_A}\"\n[[hub]]\nhub_id = \"a\"\ntoken = \"{TOKEN_B}\""
                ),
                "`hub[1].hub_id`",
            ),
            (
                format!(
                    "[[hub]]\nhub_id = \"a\"\ntoken = \"{TOKEN_A}\"\n[[hub]]\nhub_id = \"b\"\ntoken = \"{TOKEN_A}\""
                ),
                "`hub[1].token`",
            ),
            (
                format!("[[hub]]\nhub_id = \"a\"\ntoken = \"{TOKEN_A}\"\ncolour = \"blue\""),
                "colour",
            ),
            ("listen = \"0.0.0.0:1\"".to_owned(), "listen"),
        ];
        for (text, named) in cases {
            let error = parsed(&text).expect_err(&text).to_string();
            assert!(error.contains(named), "{text:?}: {error}");
        }
    }

    #[test]
    fn a_readable_file_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("relay-server.toml");
        std::fs::write(
            &path,
            format!("[[hub]]\nhub_id = \"a\"\ntoken = \"{TOKEN_A}\"\n"),
        )
        .expect("written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = load_config(&path).expect_err("0644 is refused").to_string();
        assert!(error.contains("chmod 600"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        load_config(&path).expect("0600 is fine");
    }

    #[test]
    fn tls_files_are_read_and_checked() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("a temp dir");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("written");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        };
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .expect("a certificate");
        let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .expect("a certificate");
        write("cert.pem", &made.cert.pem());
        write("key.pem", &made.signing_key.serialize_pem());
        write("other-key.pem", &other.signing_key.serialize_pem());
        write("open-key.pem", &made.signing_key.serialize_pem());
        std::fs::set_permissions(
            dir.path().join("open-key.pem"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        let hub = format!("[[hub]]\nhub_id = \"a\"\ntoken = \"{TOKEN_A}\"\n");
        let with_tls = |tls: &str| {
            parse_config(
                &format!("{hub}[tls]\n{tls}"),
                &dir.path().join("relay-server.toml"),
            )
        };
        // Relative to the config file's directory.
        let config = with_tls("cert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n").expect("valid");
        let tls = config.tls.expect("[tls]");
        assert_eq!(tls.cert_file, dir.path().join("cert.pem"));
        assert!(parsed(&hub).expect("valid").tls.is_none());
        let cases = [
            (
                "cert_file = \"missing.pem\"\nkey_file = \"key.pem\"",
                "`tls.cert_file`: cannot read",
            ),
            (
                "cert_file = \"key.pem\"\nkey_file = \"key.pem\"",
                "`tls.cert_file`",
            ),
            (
                "cert_file = \"cert.pem\"\nkey_file = \"cert.pem\"",
                "`tls.key_file`",
            ),
            (
                "cert_file = \"cert.pem\"\nkey_file = \"open-key.pem\"",
                "chmod 600",
            ),
            (
                "cert_file = \"cert.pem\"\nkey_file = \"other-key.pem\"",
                "is not the key of the certificate",
            ),
            ("cert_file = \"cert.pem\"", "key_file"),
            (
                "cert_file = \"cert.pem\"\nkey_file = \"key.pem\"\nciphers = \"x\"",
                "ciphers",
            ),
        ];
        for (tls, says) in cases {
            let error = with_tls(tls).expect_err(tls).to_string();
            assert!(error.contains(says), "{tls:?}: {error}");
        }
    }

    #[test]
    fn queries_are_checked() {
        let (from, to) = parse_query("from=a&to=b").expect("valid");
        assert_eq!((from.as_str(), to.as_str()), ("a", "b"));
        for bad in [
            "",
            "from=a",
            "from=a&to=b&x=1",
            "from=a&from=b&to=c",
            "from=A&to=b",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(TOKEN_A, TOKEN_A));
        assert!(!same_token(TOKEN_A, TOKEN_B));
        assert!(!same_token(TOKEN_A, &TOKEN_A[1..]));
    }

    #[test]
    fn new_tokens_pass_the_check() {
        let token = new_token().expect("random");
        check_token(&token).expect("a fresh token is valid");
    }

    #[test]
    fn close_reasons_fit_a_control_frame() {
        let long = "é".repeat(100);
        let cut = truncate_reason(&long);
        assert!(cut.len() <= 123 && long.starts_with(&cut));
    }
}
