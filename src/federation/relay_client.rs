//! The hub side of the relay server ([`super::relay_server`]): connect out to the relay, wait
//! until the peer hub has connected too, then use the connection as a byte stream.
//!
//! [`connect`] returns once the server said `paired`; the [`RelayStream`] it returns is an
//! `AsyncRead + AsyncWrite` that carries bytes as binary WebSocket messages (each write sends
//! one message of at most [`RELAY_WRITE_BYTES_MAX`]). A Noise link runs over it unchanged
//! ([`super::noise::dial`] / [`super::noise::accept`]); the suggested rule for who starts the
//! handshake is [`dials_first`]: the hub whose id sorts lower dials, the other accepts.
//!
//! `ws://` URLs work (the config allows them to loopback only), and `wss://` runs the same
//! WebSocket inside TLS (rustls on ring), trusting the platform's CA store
//! (`rustls-native-certs`: the OS's roots, or `SSL_CERT_FILE` / `SSL_CERT_DIR`) plus the
//! `[relay] ca_file` certificates ([`RelayServer::ca_certificates`]). TLS is an outer layer:
//! the Noise link inside is unchanged, and every bound (deadlines, message and frame sizes)
//! holds on either.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::{Sink, SinkExt as _, Stream, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};

use super::config::{HubId, RelayServer};
use super::relay_server::{
    LINK_PATH, PAIRED_MESSAGE, RELAY_MESSAGE_BYTES_MAX, UNPAIRED_WAIT_MAX, WRITE_BUFFER_BYTES_MAX,
};

/// Most bytes one write sends as one binary message: a Noise transport message (65,535
/// bytes) plus its length fits, and it stays well under the server's
/// [`RELAY_MESSAGE_BYTES_MAX`].
pub const RELAY_WRITE_BYTES_MAX: usize = 64 << 10;

/// Time for the TCP connection, the TLS handshake (`wss://`) and the WebSocket upgrade.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`connect`] waits for the peer hub: a little past the server's own
/// [`UNPAIRED_WAIT_MAX`], so the server's close (with its reason) normally arrives first.
pub const PAIR_WAIT_MAX: Duration = Duration::from_secs(UNPAIRED_WAIT_MAX.as_secs() + 15);

/// How often a waiting connection pings the server, so NAT and proxies along the way keep
/// an otherwise silent connection open (many drop idle TCP after 60 s or more).
pub const WAIT_PING_INTERVAL: Duration = Duration::from_secs(30);

/// Why a relay connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The URL cannot be used.
    #[error("relay url {url:?}: {why}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong and what to do.
        why: String,
    },
    /// The TCP connection or the upgrade failed.
    #[error(
        "cannot reach the relay server at {url}: {source}; is `relay relay-server` running there?"
    )]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        source: Box<WsError>,
    },
    /// The TLS handshake with a `wss://` relay failed (an untrusted or wrong certificate, no
    /// trusted roots, a server that does not speak TLS).
    #[error("TLS with the relay server at {url} failed: {why}")]
    Tls {
        /// The URL.
        url: String,
        /// What failed, and what to check.
        why: String,
    },
    /// No connection and upgrade within [`CONNECT_TIMEOUT`].
    #[error("the relay server at {url} did not answer within {CONNECT_TIMEOUT:?}")]
    ConnectTimeout {
        /// The URL.
        url: String,
    },
    /// The server refused the upgrade (wrong token, unknown hub, …).
    #[error("the relay server refused hub {from} linking to hub {to} (HTTP {status}): {reason}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's one-line reason.
        reason: String,
        /// This hub.
        from: HubId,
        /// The peer.
        to: HubId,
    },
    /// The server closed the connection before pairing.
    #[error("the relay server closed the connection before hub {to} connected: {reason}")]
    Closed {
        /// The peer.
        to: HubId,
        /// The server's close reason, or what happened.
        reason: String,
    },
    /// The peer hub did not connect within [`PAIR_WAIT_MAX`].
    #[error("hub {to} did not connect to the relay within {PAIR_WAIT_MAX:?}; connect again")]
    PairTimeout {
        /// The peer.
        to: HubId,
    },
    /// The server sent something other than the protocol says.
    #[error("the relay server broke the protocol: {0}")]
    Protocol(String),
}

/// Whether `me` starts the Noise handshake with `peer` over a relay ([`super::noise::dial`]);
/// the other accepts. The lower id dials, so both sides agree without talking.
pub fn dials_first(me: &HubId, peer: &HubId) -> bool {
    me < peer
}

/// Connects to `relay` as `me`, asking to be paired with `peer`; returns once the server
/// paired the two (the peer connected too).
///
/// # Errors
/// See [`RelayError`]; every error says which hub and what to do.
pub async fn connect(
    relay: &RelayServer,
    me: &HubId,
    peer: &HubId,
) -> Result<RelayStream, RelayError> {
    let url = link_url(&relay.url, me, peer)?;
    let bad_url = |why: String| RelayError::Url {
        url: relay.url.clone(),
        why,
    };
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|error| bad_url(error.to_string()))?;
    let authorization = HeaderValue::from_str(&format!("Bearer {}", relay.token))
        .map_err(|_| bad_url("the token has characters an HTTP header cannot carry".to_owned()))?;
    request.headers_mut().insert("authorization", authorization);
    let config = WebSocketConfig::default()
        .max_message_size(Some(RELAY_MESSAGE_BYTES_MAX))
        .max_frame_size(Some(RELAY_MESSAGE_BYTES_MAX))
        .max_write_buffer_size(WRITE_BUFFER_BYTES_MAX);
    let tls = url
        .starts_with("wss://")
        .then(|| client_tls(relay))
        .transpose()?;
    let host = request
        .uri()
        .host()
        .map(|host| {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned()
        })
        .ok_or_else(|| bad_url("no host".to_owned()))?;
    let port = request
        .uri()
        .port_u16()
        .unwrap_or(if tls.is_some() { 443 } else { 80 });
    let connect_error = |error: WsError| RelayError::Connect {
        url: relay.url.clone(),
        source: Box::new(error),
    };
    // TCP, TLS and the upgrade share one deadline.
    let connecting = async {
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|error| connect_error(WsError::Io(error)))?;
        tcp.set_nodelay(true)
            .map_err(|error| connect_error(WsError::Io(error)))?;
        let stream: Box<dyn Io> = match tls {
            None => Box::new(tcp),
            Some(tls) => {
                let name =
                    rustls::pki_types::ServerName::try_from(host.clone()).map_err(|error| {
                        bad_url(format!("{host:?} is not a TLS server name: {error}"))
                    })?;
                let stream = tokio_rustls::TlsConnector::from(tls)
                    .connect(name, tcp)
                    .await
                    .map_err(|error| RelayError::Tls {
                        url: relay.url.clone(),
                        why: tls_failure(&error),
                    })?;
                Box::new(stream)
            }
        };
        Ok(tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await)
    };
    let mut socket = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Err(_) => {
            return Err(RelayError::ConnectTimeout {
                url: relay.url.clone(),
            });
        }
        Ok(Err(error)) => return Err(error),
        Ok(Ok(Err(WsError::Http(response)))) => {
            let reason = response
                .body()
                .as_deref()
                .map(|body| String::from_utf8_lossy(body).trim().to_owned())
                .filter(|body| !body.is_empty())
                .unwrap_or_else(|| "no reason given".to_owned());
            return Err(RelayError::Refused {
                status: response.status().as_u16(),
                reason,
                from: me.clone(),
                to: peer.clone(),
            });
        }
        Ok(Ok(Err(error))) => return Err(connect_error(error)),
        Ok(Ok(Ok((socket, _response)))) => socket,
    };
    match tokio::time::timeout(PAIR_WAIT_MAX, wait_paired(&mut socket, peer)).await {
        Err(_) => Err(RelayError::PairTimeout { to: peer.clone() }),
        Ok(Err(error)) => Err(error),
        Ok(Ok(())) => Ok(RelayStream {
            socket,
            pending: Bytes::new(),
            ended: false,
        }),
    }
}

/// `<url>/v1/link?from=<me>&to=<peer>`, for a `ws://` or `wss://` url.
fn link_url(url: &str, me: &HubId, peer: &HubId) -> Result<String, RelayError> {
    let bad = |why: &str| RelayError::Url {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    if !url.starts_with("wss://") && !url.starts_with("ws://") {
        return Err(bad("use wss://HOST:PORT (ws:// on loopback only)"));
    }
    if url.contains('?') || url.contains('#') {
        return Err(bad(
            "no query or fragment: the hub adds its own path and query",
        ));
    }
    Ok(format!(
        "{}{LINK_PATH}?from={me}&to={peer}",
        url.trim_end_matches('/')
    ))
}

/// The byte stream under the WebSocket: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

type Socket = WebSocketStream<Box<dyn Io>>;

/// The platform's CA certificates, loaded once per process (the store is read from disk).
struct PlatformRoots {
    roots: rustls::RootCertStore,
    /// Why some or all could not be loaded, for the error when none are usable.
    problems: Vec<String>,
}

fn platform_roots() -> &'static PlatformRoots {
    static ROOTS: OnceLock<PlatformRoots> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (_, unusable) = roots.add_parsable_certificates(loaded.certs);
        let mut problems: Vec<String> = loaded
            .errors
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        if unusable > 0 {
            problems.push(format!("{unusable} certificates did not parse"));
        }
        PlatformRoots { roots, problems }
    })
}

/// The TLS client setup for `relay`: the platform's roots plus its `ca_file` certificates.
///
/// # Errors
/// No root at all to check the server's certificate with.
fn client_tls(relay: &RelayServer) -> Result<Arc<rustls::ClientConfig>, RelayError> {
    let tls_error = |why: String| RelayError::Tls {
        url: relay.url.clone(),
        why,
    };
    let platform = platform_roots();
    let mut roots = platform.roots.clone();
    // The config checked each certificate already; one that fails here is skipped.
    roots.add_parsable_certificates(relay.ca_certificates.iter().cloned());
    if roots.is_empty() {
        let problems = if platform.problems.is_empty() {
            "it is empty".to_owned()
        } else {
            platform.problems.join("; ")
        };
        return Err(tls_error(format!(
            "no CA certificates to check the server's certificate with: the platform's store \
             has none ({problems}); install the system's CA certificates, or set `ca_file` \
             under [relay] in federation.toml"
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| tls_error(format!("no TLS versions to offer: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A failed TLS handshake in words, with what to check for the usual causes.
fn tls_failure(error: &std::io::Error) -> String {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        // webpki's reason arrives as an opaque `Other`, so it is recognised by its name.
        Some(rustls::Error::InvalidCertificate(_))
            if error.to_string().contains("CaUsedAsEndEntity") =>
        {
            format!(
                "{error}: the relay's certificate is marked as a CA (basicConstraints CA:TRUE, \
                 what `openssl req -x509` makes by default), which cannot be a server's own \
                 certificate; make it with `-addext basicConstraints=critical,CA:FALSE`, or sign \
                 a server certificate with that CA and give the CA as `ca_file`"
            )
        }
        Some(rustls::Error::InvalidCertificate(_)) => format!(
            "{error}; if the relay's certificate is self-signed or from a private CA, set \
             `ca_file` under [relay] in federation.toml to that CA's certificate (PEM)"
        ),
        Some(_) => error.to_string(),
        None if error.kind() == std::io::ErrorKind::UnexpectedEof
            || error.kind() == std::io::ErrorKind::ConnectionReset =>
        {
            format!(
                "{error}: the server closed the connection during the TLS handshake; does it \
                 serve TLS (`[tls]` in its config)? A plain server is reached with ws:// on \
                 loopback, or through a TLS proxy"
            )
        }
        None => error.to_string(),
    }
}

/// Reads until the server's `paired`, pinging every [`WAIT_PING_INTERVAL`].
async fn wait_paired(socket: &mut Socket, peer: &HubId) -> Result<(), RelayError> {
    let mut ping = tokio::time::interval(WAIT_PING_INTERVAL);
    ping.tick().await;
    // One pass per message or ping; bounded by the caller's PAIR_WAIT_MAX.
    loop {
        let message = tokio::select! {
            _ = ping.tick() => {
                socket.send(Message::Ping(Bytes::new())).await.map_err(|error| RelayError::Closed {
                    to: peer.clone(),
                    reason: error.to_string(),
                })?;
                continue;
            }
            message = socket.next() => message,
        };
        match message {
            Some(Ok(Message::Text(text))) if text.as_str() == PAIRED_MESSAGE => return Ok(()),
            Some(Ok(Message::Text(text))) => {
                return Err(RelayError::Protocol(format!(
                    "expected `{PAIRED_MESSAGE}`, got the text {:?}",
                    text.as_str()
                )));
            }
            Some(Ok(Message::Binary(_))) => {
                return Err(RelayError::Protocol(format!(
                    "binary data before `{PAIRED_MESSAGE}`"
                )));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Close(frame))) => {
                return Err(RelayError::Closed {
                    to: peer.clone(),
                    reason: frame
                        .map(|frame| frame.reason.as_str().to_owned())
                        .filter(|reason| !reason.is_empty())
                        .unwrap_or_else(|| "no reason given".to_owned()),
                });
            }
            None => {
                return Err(RelayError::Closed {
                    to: peer.clone(),
                    reason: "the connection ended".to_owned(),
                });
            }
            Some(Err(error)) => {
                return Err(RelayError::Closed {
                    to: peer.clone(),
                    reason: error.to_string(),
                });
            }
        }
    }
}

/// A paired relay connection as a byte stream: writes go out as binary messages, reads drain
/// the binary messages the peer's writes became. The end of the stream is the server's close.
pub struct RelayStream {
    socket: Socket,
    /// Received bytes not yet read.
    pending: Bytes,
    /// The server closed; reads return end of stream.
    ended: bool,
}

impl std::fmt::Debug for RelayStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayStream")
            .field("pending", &self.pending.len())
            .field("ended", &self.ended)
            .finish()
    }
}

fn io_error(error: WsError) -> std::io::Error {
    match error {
        WsError::Io(error) => error,
        WsError::ConnectionClosed | WsError::AlreadyClosed => std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "the relay connection is closed",
        ),
        other => std::io::Error::other(other),
    }
}

impl AsyncRead for RelayStream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        // One pass per message received; returns as soon as there are bytes, the end or an
        // error.
        loop {
            if !this.pending.is_empty() {
                let take = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..take]);
                this.pending = this.pending.slice(take..);
                return Poll::Ready(Ok(()));
            }
            if this.ended {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.socket).poll_next(context)) {
                Some(Ok(Message::Binary(bytes))) => this.pending = bytes,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the relay server sent a text message after pairing",
                    )));
                }
                Some(Ok(Message::Close(_))) | None => this.ended = true,
                Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                    this.ended = true;
                }
                Some(Err(error)) => return Poll::Ready(Err(io_error(error))),
            }
        }
    }
}

impl AsyncWrite for RelayStream {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let socket = &mut self.get_mut().socket;
        ready!(Pin::new(&mut *socket).poll_ready(context)).map_err(io_error)?;
        let take = buf.len().min(RELAY_WRITE_BYTES_MAX);
        Pin::new(&mut *socket)
            .start_send(Message::Binary(Bytes::copy_from_slice(&buf[..take])))
            .map_err(io_error)?;
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().socket)
            .poll_flush(context)
            .map_err(io_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match ready!(Pin::new(&mut self.get_mut().socket).poll_close(context)) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(error) => Poll::Ready(Err(io_error(error))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> HubId {
        HubId::new(text).expect("an id")
    }

    #[test]
    fn link_urls_carry_both_ids() {
        let url = link_url("ws://127.0.0.1:9800/", &id("a"), &id("b")).expect("valid");
        assert_eq!(url, "ws://127.0.0.1:9800/v1/link?from=a&to=b");
        let url = link_url("wss://relay.example.org:9800", &id("a"), &id("b")).expect("valid");
        assert_eq!(url, "wss://relay.example.org:9800/v1/link?from=a&to=b");
        assert!(link_url("ws://127.0.0.1:9800/?x=1", &id("a"), &id("b")).is_err());
        let error = link_url("http://127.0.0.1:9800", &id("a"), &id("b"))
            .expect_err("not a WebSocket url")
            .to_string();
        assert!(error.contains("wss://"), "{error}");
    }

    #[test]
    fn exactly_one_side_dials() {
        let (a, b) = (id("a"), id("b"));
        assert!(dials_first(&a, &b));
        assert!(!dials_first(&b, &a));
    }
}
