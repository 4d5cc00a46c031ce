//! `relay relay-server` as a real process on 127.0.0.1, with hubs' relay clients connecting
//! out to it: two hubs pair and run a Noise link through it (frames cross both ways, small and
//! over 1 MiB); a wrong token, another hub's token and an unknown peer are refused at the
//! upgrade; a newer connection replaces an older one; one side closing closes the other; an
//! oversized message ends the pair; and a byte flipped between a hub and the relay ends the
//! link (the relay carries bytes it cannot alter undetected).
//!
//! With `[tls]` (a self-signed certificate made at test time): hubs link over `wss://` with
//! `ca_file`, and real `relay hub` processes exchange a message through it; a hub without the
//! CA gets no link and says why; a wrong CA, a server certificate marked as a CA, a `ws://`
//! client of a TLS server and a `wss://` client of a plain one fail with what to fix; a silent client and an oversized ClientHello
//! are cut off; a plain server on a non-loopback address is refused without
//! `--behind-tls-proxy`.

#[allow(dead_code, reason = "shared with hub_conformance, which uses the rest")]
mod support;

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use relay::federation::config::{self, FederationConfig, HubId, RelayServer};
use relay::federation::noise::{self, LinkAuth, LinkError, PinStore, StaticKey};
use relay::federation::relay_client::{self, RelayError, RelayStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const SECRET: &str = "8f3a1c5e7b9d2f4a6c8e0b1d3f5a7c9e1b3d5f7a9c0e2b4d6f8a0c2e4b6d8f0a";
const TOKEN_A: &str = "3c9e1b5d7f2a4c6e8b0d1f3a5c7e9b2d4f6a8c0e2b4d6f8a";
const TOKEN_B: &str = "d4f6a8c0e2b4d6f8a3c9e1b5d7f2a4c6e8b0d1f3a5c7e9b2";
const TOKEN_C: &str = "e8b0d1f3a5c7e9b2d4f6a8c0e2b4d6f8a3c9e1b5d7f2a4c6";
/// Bound on every step of a test, so a broken relay fails the test instead of hanging it.
const STEP: Duration = Duration::from_secs(20);

/// A self-signed certificate for 127.0.0.1, made at test time, and its PEM files.
struct TestCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCert {
    fn new() -> TestCert {
        TestCert::make(rcgen::IsCa::NoCa)
    }

    /// A self-signed certificate marked as a CA (what `openssl req -x509` makes by default).
    fn marked_as_ca() -> TestCert {
        TestCert::make(rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained))
    }

    fn make(is_ca: rcgen::IsCa) -> TestCert {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        params.is_ca = is_ca;
        let signing_key = rcgen::KeyPair::generate().expect("a key");
        let cert = params
            .self_signed(&signing_key)
            .expect("a self-signed certificate");
        let made = rcgen::CertifiedKey { cert, signing_key };
        let cert_file = dir.path().join("cert.pem");
        let key_file = dir.path().join("key.pem");
        std::fs::write(&cert_file, made.cert.pem()).expect("cert written");
        std::fs::write(&key_file, made.signing_key.serialize_pem()).expect("key written");
        set_private(&key_file);
        TestCert {
            cert_file,
            key_file,
            _dir: dir,
        }
    }

    /// The certificate as `RelayServer::ca_certificates` holds it.
    fn der(&self) -> Vec<rustls::pki_types::CertificateDer<'static>> {
        use rustls::pki_types::pem::PemObject as _;
        rustls::pki_types::CertificateDer::pem_file_iter(&self.cert_file)
            .expect("readable")
            .collect::<Result<_, _>>()
            .expect("PEM")
    }
}

fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// A relay-server config for `hubs` (id, token), with `[tls]` from `tls`.
fn server_config(dir: &Path, hubs: &[(&str, &str)], tls: Option<&TestCert>) -> PathBuf {
    let path = dir.join("relay-server.toml");
    let mut text: String = hubs
        .iter()
        .map(|(hub, token)| format!("[[hub]]\nhub_id = \"{hub}\"\ntoken = \"{token}\"\n"))
        .collect();
    if let Some(tls) = tls {
        text.push_str(&format!(
            "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            tls.cert_file.display(),
            tls.key_file.display()
        ));
    }
    std::fs::write(&path, text).expect("config written");
    set_private(&path);
    path
}

/// A `relay relay-server` child process; killed when dropped.
struct RelayServerProcess {
    child: Child,
    address: SocketAddr,
    /// Serves `wss://`.
    tls: bool,
    /// The server's stderr lines after the startup line.
    stderr: std::sync::mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl RelayServerProcess {
    /// A plain `ws://` server for hubs a and b.
    fn start() -> RelayServerProcess {
        RelayServerProcess::spawn(&[("a", TOKEN_A), ("b", TOKEN_B)], None)
    }

    /// A `wss://` server with `cert` for hubs a, b and c.
    fn start_tls(cert: &TestCert) -> RelayServerProcess {
        RelayServerProcess::spawn(
            &[("a", TOKEN_A), ("b", TOKEN_B), ("c", TOKEN_C)],
            Some(cert),
        )
    }

    fn spawn(hubs: &[(&str, &str)], tls: Option<&TestCert>) -> RelayServerProcess {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = server_config(dir.path(), hubs, tls);
        let mut child = Command::new(env!("CARGO_BIN_EXE_relay"))
            .args(["relay-server", "--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("relay relay-server starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = std::io::BufReader::new(stderr).lines();
        let first = lines
            .next()
            .expect("a startup line")
            .expect("readable stderr");
        assert!(
            first.contains(&format!("for {} hubs", hubs.len())),
            "{first}"
        );
        let serving = if tls.is_some() {
            "wss://"
        } else {
            "plain ws://"
        };
        assert!(first.contains(serving), "{first}");
        let address = first
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|address| address.parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        // Keeps draining stderr so the server never blocks on a full pipe.
        let (sender, stderr) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        RelayServerProcess {
            child,
            address,
            tls: tls.is_some(),
            stderr,
            _dir: dir,
        }
    }

    /// The URL hubs use: `wss://` with `[tls]`, else `ws://`.
    fn url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}", self.address)
    }

    /// Waits for a stderr line containing `text`; returns it.
    fn stderr_line(&self, text: &str) -> String {
        let deadline = Instant::now() + STEP;
        let mut seen = Vec::new();
        // One pass per line until the deadline.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("no stderr line with {text:?} within {STEP:?}; saw {seen:#?}"),
            }
        }
    }
}

impl Drop for RelayServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One hub: its federation config (with `[relay]`), static key and pins.
struct Side {
    config: FederationConfig,
    key: StaticKey,
    pins: PinStore,
}

impl Side {
    fn new(dir: &Path, me: &str, peer: &str, relay_url: &str, token: &str) -> Side {
        Side::with_ca(dir, me, peer, relay_url, token, None)
    }

    /// A side whose `[relay]` has `ca_file = ca`.
    fn with_ca(
        dir: &Path,
        me: &str,
        peer: &str,
        relay_url: &str,
        token: &str,
        ca: Option<&Path>,
    ) -> Side {
        let mut text = format!(
            "hub_id = \"{me}\"\nsecret = \"{SECRET}\"\n[[peer]]\nhub_id = \"{peer}\"\n\
             [relay]\nurl = \"{relay_url}\"\ntoken = \"{token}\"\n"
        );
        if let Some(ca) = ca {
            text.push_str(&format!("ca_file = \"{}\"\n", ca.display()));
        }
        let config =
            config::parse(&text, &dir.join("federation.toml"), dir).expect("a valid config");
        let federation_dir = dir.join(me);
        Side {
            config,
            key: StaticKey::load_or_create(&federation_dir).expect("a static key"),
            pins: PinStore::new(&federation_dir),
        }
    }

    fn auth(&self) -> LinkAuth<'_> {
        LinkAuth {
            me: &self.config.hub_id,
            key: &self.key,
            secret: &self.config.secret,
            pins: &self.pins,
        }
    }

    fn relay(&self) -> &RelayServer {
        self.config.relay.as_ref().expect("a [relay] section")
    }

    fn peer_id(&self) -> &HubId {
        &self.config.peers[0].hub_id
    }

    async fn connect(&self) -> Result<RelayStream, RelayError> {
        within(relay_client::connect(
            self.relay(),
            &self.config.hub_id,
            self.peer_id(),
        ))
        .await
    }
}

fn id(text: &str) -> HubId {
    HubId::new(text).expect("an id")
}

async fn within<T>(work: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, work)
        .await
        .expect("the step finished in time")
}

/// Pairs `a` and `b` at the relay, then runs the Noise handshake over the two streams (the
/// lower id dials, as `relay_client::dials_first` suggests).
async fn link(
    a: &Side,
    b: &Side,
) -> (
    Result<noise::Link<RelayStream>, LinkError>,
    Result<noise::Link<RelayStream>, LinkError>,
) {
    let (at_a, at_b) = tokio::join!(a.connect(), b.connect());
    let (at_a, at_b) = (at_a.expect("a paired"), at_b.expect("b paired"));
    assert!(relay_client::dials_first(
        &a.config.hub_id,
        &b.config.hub_id
    ));
    let peer = a.config.peer("b").expect("b is a's peer");
    within(async {
        tokio::join!(
            noise::dial(at_a, a.auth(), peer),
            noise::accept(at_b, b.auth(), &b.config)
        )
    })
    .await
}

#[tokio::test]
async fn two_hubs_link_through_the_relay_and_frames_cross_both_ways() {
    let server = RelayServerProcess::start();
    let dir = tempfile::tempdir().expect("a temp dir");
    let a = Side::new(dir.path(), "a", "b", &server.url(), TOKEN_A);
    let b = Side::new(dir.path(), "b", "a", &server.url(), TOKEN_B);
    let (dialed, accepted) = link(&a, &b).await;
    let mut at_a = dialed.expect("a dialed b through the relay");
    let mut at_b = accepted.expect("b accepted a through the relay");
    assert_eq!(at_b.peer.as_str(), "a");

    let big: Vec<u8> = (0..(1 << 20) + 12_345)
        .map(|index| (index % 251) as u8)
        .collect();
    within(async {
        at_a.writer.send(b"hello").await.expect("sent");
        at_a.writer.send(&big).await.expect("a large frame");
        assert_eq!(at_b.reader.recv().await.expect("frame"), b"hello");
        assert_eq!(at_b.reader.recv().await.expect("frame"), big);
        at_b.writer.send(&big).await.expect("a large frame back");
        at_b.writer.send(b"back").await.expect("sent back");
        assert_eq!(at_a.reader.recv().await.expect("frame"), big);
        assert_eq!(at_a.reader.recv().await.expect("frame"), b"back");
    })
    .await;
}

#[tokio::test]
async fn wrong_tokens_and_unknown_hubs_are_refused_at_the_upgrade() {
    let server = RelayServerProcess::start();
    let wrong = RelayServer {
        url: server.url(),
        token: "0123456789abcdef0123456789abcdef".to_owned(),
        ca_certificates: Vec::new(),
    };
    let refused = within(relay_client::connect(&wrong, &id("a"), &id("b")))
        .await
        .expect_err("a wrong token");
    assert!(
        matches!(refused, RelayError::Refused { status: 401, .. }),
        "{refused}"
    );

    // Hub a's token does not make its holder hub b.
    let a_token = RelayServer {
        url: server.url(),
        token: TOKEN_A.to_owned(),
        ca_certificates: Vec::new(),
    };
    let refused = within(relay_client::connect(&a_token, &id("b"), &id("a")))
        .await
        .expect_err("a's token used as b");
    assert!(
        matches!(refused, RelayError::Refused { status: 403, .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("hub a's"), "{refused}");

    let refused = within(relay_client::connect(&a_token, &id("a"), &id("zed")))
        .await
        .expect_err("an unknown peer");
    assert!(
        matches!(refused, RelayError::Refused { status: 404, .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("zed"), "{refused}");
}

#[tokio::test]
async fn a_newer_connection_replaces_the_older_one() {
    let server = RelayServerProcess::start();
    let dir = tempfile::tempdir().expect("a temp dir");
    let a = Side::new(dir.path(), "a", "b", &server.url(), TOKEN_A);
    let b = Side::new(dir.path(), "b", "a", &server.url(), TOKEN_B);
    let (relay, me, peer) = (a.relay().clone(), id("a"), id("b"));
    let older = tokio::spawn(async move { relay_client::connect(&relay, &me, &peer).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (relay, me, peer) = (a.relay().clone(), id("a"), id("b"));
    let newer = tokio::spawn(async move { relay_client::connect(&relay, &me, &peer).await });
    let closed = within(older)
        .await
        .expect("joined")
        .expect_err("the older connection is closed");
    assert!(
        matches!(closed, RelayError::Closed { ref reason, .. } if reason.contains("replaced")),
        "{closed}"
    );
    let mut at_b = b.connect().await.expect("b pairs with the newer one");
    let mut at_a = within(newer).await.expect("joined").expect("paired");
    within(async {
        at_a.write_all(b"ping").await.expect("written");
        at_a.flush().await.expect("flushed");
        let mut got = [0u8; 4];
        at_b.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"ping");
    })
    .await;
}

#[tokio::test]
async fn one_side_closing_closes_the_other() {
    let server = RelayServerProcess::start();
    let dir = tempfile::tempdir().expect("a temp dir");
    let a = Side::new(dir.path(), "a", "b", &server.url(), TOKEN_A);
    let b = Side::new(dir.path(), "b", "a", &server.url(), TOKEN_B);
    let (at_a, at_b) = tokio::join!(a.connect(), b.connect());
    let (mut at_a, mut at_b) = (at_a.expect("paired"), at_b.expect("paired"));
    within(at_a.shutdown()).await.expect("a closes");
    let mut rest = Vec::new();
    let read = within(at_b.read_to_end(&mut rest)).await;
    assert!(rest.is_empty(), "nothing but the end: {read:?}");
}

#[tokio::test]
async fn an_oversized_message_ends_the_pair() {
    let server = RelayServerProcess::start();
    let dir = tempfile::tempdir().expect("a temp dir");
    let b = Side::new(dir.path(), "b", "a", &server.url(), TOKEN_B);
    // Hub a speaks WebSocket by hand, to send what the relay client never would.
    let mut request = format!("{}/v1/link?from=a&to=b", server.url())
        .into_client_request()
        .expect("a request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {TOKEN_A}").parse().expect("a header"),
    );
    let raw = async {
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("upgraded");
        let paired = socket.next().await.expect("a message").expect("readable");
        assert_eq!(paired, Message::text("paired"));
        socket
    };
    let (mut raw, at_b) = within(async { tokio::join!(raw, b.connect()) }).await;
    let mut at_b = at_b.expect("b paired");
    let _ = raw.send(Message::binary(vec![1u8; 200 << 10])).await;
    let mut rest = Vec::new();
    let _ = within(at_b.read_to_end(&mut rest)).await;
    assert!(rest.is_empty(), "nothing of it was forwarded");
    // The sender is closed too, with the size as the reason.
    let closing = within(async {
        // Reads to the close frame (or the end).
        loop {
            match raw.next().await {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break None,
            }
        }
    })
    .await;
    let frame = closing.expect("a close frame, with the reason");
    assert_eq!(frame.code, CloseCode::Size, "{frame:?}");
    assert!(frame.reason.as_str().contains("bytes"), "{frame:?}");
}

#[tokio::test]
async fn a_byte_flipped_between_a_hub_and_the_relay_ends_the_link() {
    let server = RelayServerProcess::start();
    let proxy = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let proxy_url = format!("ws://{}", proxy.local_addr().expect("an address"));
    tokio::spawn(flip_one_byte(proxy, server.address));
    let dir = tempfile::tempdir().expect("a temp dir");
    let a = Side::new(dir.path(), "a", "b", &proxy_url, TOKEN_A);
    let b = Side::new(dir.path(), "b", "a", &server.url(), TOKEN_B);
    let (dialed, accepted) = link(&a, &b).await;
    let mut at_a = dialed.expect("the handshake passes untouched");
    let mut at_b = accepted.expect("the handshake passes untouched");
    within(at_a.writer.send(&[7u8; 2000])).await.expect("sent");
    let damaged = within(at_b.reader.recv())
        .await
        .expect_err("a flipped byte never decrypts");
    assert!(matches!(damaged, LinkError::Noise(_)), "{damaged}");
}

/// Forwards one connection to `to`, flipping the last byte of the first read from the hub
/// longer than 1,000 bytes (only the test's 2,000-byte frame is: the upgrade and handshake
/// are shorter), which lands inside a binary message's payload.
async fn flip_one_byte(proxy: TcpListener, to: SocketAddr) {
    let (inbound, _) = proxy.accept().await.expect("proxy accept");
    let outbound = TcpStream::connect(to).await.expect("proxy connect");
    let (mut in_read, mut in_write) = inbound.into_split();
    let (mut out_read, mut out_write) = outbound.into_split();
    let forward = async move {
        let mut flipped = false;
        let mut buffer = vec![0u8; 64 << 10];
        loop {
            let read = match in_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            if !flipped && read > 1_000 {
                buffer[read - 1] ^= 0x40;
                flipped = true;
            }
            if out_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
    };
    let backward = async move {
        let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
    };
    tokio::join!(forward, backward);
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut server = RelayServerProcess::start();
    let pid = rustix::process::Pid::from_raw(
        i32::try_from(server.child.id()).expect("a pid fits in i32"),
    )
    .expect("a pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("signalled");
    let stopped = server.stderr.recv_timeout(STEP).expect("a line on stderr");
    assert!(stopped.contains("stopped"), "{stopped}");
    let status = server.child.wait().expect("exited");
    assert!(status.success(), "{status}");
}

#[test]
fn a_new_token_is_printed_and_usable() {
    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["relay-server", "--new-token"])
        .output()
        .expect("runs");
    assert!(output.status.success());
    let token = String::from_utf8(output.stdout).expect("utf-8");
    assert_eq!(token.trim().len(), 64, "{token}");
}

#[tokio::test]
async fn two_hubs_link_through_a_tls_relay_trusting_its_ca_file() {
    let cert = TestCert::new();
    let server = RelayServerProcess::start_tls(&cert);
    assert!(
        server.url().starts_with("wss://127.0.0.1:"),
        "{}",
        server.url()
    );
    let dir = tempfile::tempdir().expect("a temp dir");
    let ca = Some(cert.cert_file.as_path());
    let a = Side::with_ca(dir.path(), "a", "b", &server.url(), TOKEN_A, ca);
    let b = Side::with_ca(dir.path(), "b", "a", &server.url(), TOKEN_B, ca);
    assert_eq!(a.relay().ca_certificates.len(), 1);
    let (dialed, accepted) = link(&a, &b).await;
    let mut at_a = dialed.expect("a dialed b through the TLS relay");
    let mut at_b = accepted.expect("b accepted a through the TLS relay");
    let big: Vec<u8> = (0..(1 << 20) + 777)
        .map(|index| (index % 241) as u8)
        .collect();
    within(async {
        at_a.writer.send(b"over tls").await.expect("sent");
        at_a.writer.send(&big).await.expect("a large frame");
        assert_eq!(at_b.reader.recv().await.expect("frame"), b"over tls");
        assert_eq!(at_b.reader.recv().await.expect("frame"), big);
        at_b.writer.send(b"back").await.expect("sent back");
        assert_eq!(at_a.reader.recv().await.expect("frame"), b"back");
    })
    .await;
}

#[tokio::test]
async fn a_wrong_ca_gets_no_tls_connection_and_says_what_to_set() {
    let cert = TestCert::new();
    let other = TestCert::new();
    let server = RelayServerProcess::start_tls(&cert);
    let dir = tempfile::tempdir().expect("a temp dir");
    let a = Side::with_ca(
        dir.path(),
        "a",
        "b",
        &server.url(),
        TOKEN_A,
        Some(&other.cert_file),
    );
    let failed = a.connect().await.expect_err("another CA's certificate");
    let RelayError::Tls { ref why, .. } = failed else {
        panic!("not a TLS error: {failed}");
    };
    assert!(why.contains("invalid peer certificate"), "{failed}");
    assert!(why.contains("ca_file"), "{failed}");
    server.stderr_line("TLS handshake failed");
}

#[tokio::test]
async fn a_server_certificate_marked_as_a_ca_is_explained() {
    let cert = TestCert::marked_as_ca();
    let server = RelayServerProcess::start_tls(&cert);
    let dir = tempfile::tempdir().expect("a temp dir");
    let a = Side::with_ca(
        dir.path(),
        "a",
        "b",
        &server.url(),
        TOKEN_A,
        Some(&cert.cert_file),
    );
    let failed = a
        .connect()
        .await
        .expect_err("a CA certificate as the server's");
    assert!(
        matches!(failed, RelayError::Tls { ref why, .. } if why.contains("CA:FALSE")),
        "{failed}"
    );
}

#[tokio::test]
async fn a_plain_ws_client_of_a_tls_relay_is_told_to_use_wss() {
    let cert = TestCert::new();
    let server = RelayServerProcess::start_tls(&cert);
    let plain = RelayServer {
        url: format!("ws://{}", server.address),
        token: TOKEN_A.to_owned(),
        ca_certificates: Vec::new(),
    };
    let refused = within(relay_client::connect(&plain, &id("a"), &id("b")))
        .await
        .expect_err("plain HTTP to a TLS server");
    assert!(
        matches!(refused, RelayError::Refused { status: 400, ref reason, .. } if reason.contains("wss://")),
        "{refused}"
    );
    server.stderr_line("plain HTTP to a TLS relay server");
}

#[tokio::test]
async fn a_wss_client_of_a_plain_relay_fails_cleanly() {
    let cert = TestCert::new();
    let server = RelayServerProcess::start();
    let tls = RelayServer {
        url: format!("wss://{}", server.address),
        token: TOKEN_A.to_owned(),
        ca_certificates: cert.der(),
    };
    let failed = within(relay_client::connect(&tls, &id("a"), &id("b")))
        .await
        .expect_err("TLS to a plain server");
    assert!(
        matches!(failed, RelayError::Tls { ref why, .. } if why.contains("does it serve TLS")),
        "{failed}"
    );
    server.stderr_line("has no [tls]");
}

#[tokio::test]
async fn a_silent_client_of_a_tls_relay_is_cut_off_at_the_upgrade_timeout() {
    let cert = TestCert::new();
    let server = RelayServerProcess::start_tls(&cert);
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.address).await.expect("connects");
    let mut byte = [0u8; 1];
    // `UPGRADE_TIMEOUT` (10 s), with room for a loaded machine.
    let read = tokio::time::timeout(Duration::from_secs(25), silent.read(&mut byte))
        .await
        .expect("the server closed the silent connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() >= Duration::from_secs(9), "too early");
    server.stderr_line("no TLS handshake and WebSocket upgrade within");
}

#[tokio::test]
async fn an_oversized_client_hello_is_cut_off_by_the_read_budget() {
    let cert = TestCert::new();
    let server = RelayServerProcess::start_tls(&cert);
    let mut client = TcpStream::connect(server.address).await.expect("connects");
    // A ClientHello that claims 65,280 bytes, sent as four 16,000-byte handshake records:
    // more than the relay's budget (8 KiB + 16 KiB) long before it is whole.
    let mut hello = Vec::new();
    for record in 0..4 {
        let mut payload = vec![0x41u8; 16_000];
        if record == 0 {
            payload[..4].copy_from_slice(&[0x01, 0x00, 0xff, 0x00]);
        }
        hello.extend_from_slice(&[0x16, 0x03, 0x01, 0x3e, 0x80]);
        hello.extend_from_slice(&payload);
    }
    let _ = within(client.write_all(&hello)).await;
    let mut rest = Vec::new();
    let _ = within(client.read_to_end(&mut rest)).await;
    server.stderr_line("read budget ran out before the TLS handshake");
}

#[test]
fn a_plain_server_on_a_non_loopback_address_needs_behind_tls_proxy() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = server_config(dir.path(), &[("a", TOKEN_A)], None);
    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["relay-server", "--listen", "0.0.0.0:0", "--config"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(!output.status.success(), "a plain public server is refused");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--behind-tls-proxy"), "{stderr}");
    assert!(stderr.contains("[tls]"), "{stderr}");

    // With [tls], the flag is a contradiction.
    let cert = TestCert::new();
    let path = server_config(dir.path(), &[("a", TOKEN_A)], Some(&cert));
    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args([
            "relay-server",
            "--listen",
            "127.0.0.1:0",
            "--behind-tls-proxy",
        ])
        .arg("--config")
        .arg(&path)
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("drop the flag"), "{stderr}");
}

/// A data dir for hub `me` meeting `peers` through the relay at `url`, with `ca_file = ca`.
fn hub_dir(
    me: &str,
    token: &str,
    peers: &[&str],
    url: &str,
    ca: Option<&Path>,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a data dir");
    let mut text = format!("hub_id = \"{me}\"\nsecret = \"{SECRET}\"\n");
    for peer in peers {
        text.push_str(&format!("[[peer]]\nhub_id = \"{peer}\"\n"));
    }
    text.push_str(&format!("[relay]\nurl = \"{url}\"\ntoken = \"{token}\"\n"));
    if let Some(ca) = ca {
        text.push_str(&format!("ca_file = \"{}\"\n", ca.display()));
    }
    let path = dir.path().join("federation.toml");
    std::fs::write(&path, text).expect("federation.toml written");
    set_private(&path);
    dir
}

/// `hub_info`'s entry for `hub`'s link to `peer`, once `done` holds for it.
fn wait_for_link(
    hub: &support::Hub,
    peer: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut probe = hub.greeted(support::Transport::Unix);
    // One look per pass until the deadline.
    loop {
        let info = probe.call("hub_info", serde_json::json!({}));
        let link = info["links"]
            .as_array()
            .and_then(|links| links.iter().find(|link| link["hub_id"] == peer).cloned())
            .unwrap_or(serde_json::Value::Null);
        if done(&link) {
            return link;
        }
        assert!(Instant::now() < deadline, "link to {peer}: {link}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn real_hubs_exchange_a_message_over_wss_and_a_hub_without_the_ca_says_why() {
    use support::{Hub, Transport};
    let cert = TestCert::new();
    let server = RelayServerProcess::start_tls(&cert);
    let url = server.url();
    let ca = Some(cert.cert_file.as_path());
    let a = Hub::start_in(hub_dir("a", TOKEN_A, &["b"], &url, ca), &[]);
    let b = Hub::start_in(hub_dir("b", TOKEN_B, &["a"], &url, ca), &[]);
    // c trusts only the platform's roots, which do not hold the test's certificate.
    let c = Hub::start_in(hub_dir("c", TOKEN_C, &["a"], &url, None), &[]);
    let mut alice = a.join(Transport::Unix, "alice");
    let mut bob = b.join(Transport::Unix, "bob");
    wait_for_link(&a, "b", |link| link["state"] == "up");
    wait_for_link(&b, "a", |link| link["state"] == "up");
    let sent = alice.call(
        "send",
        serde_json::json!({ "to": "bob@b", "text": "across wss" }),
    );
    assert_eq!(sent["status"], "forwarded", "{sent}");
    let push = bob.push();
    assert_eq!(push["from"], "alice@a");
    assert_eq!(push["text"], "across wss");

    let down = wait_for_link(&c, "a", |link| {
        link["state"] == "down"
            && link["error"]
                .as_str()
                .is_some_and(|error| error.contains("TLS"))
    });
    let error = down["error"].as_str().unwrap_or_default();
    assert!(error.contains("ca_file"), "{down}");
    // hub.log says it too.
    let log = c.data_dir().join("logs").join("hub.log");
    let deadline = Instant::now() + STEP;
    // One look per pass until the deadline.
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("TLS with the relay server") && text.contains("ca_file") {
            break;
        }
        assert!(Instant::now() < deadline, "{}: {text}", log.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}
