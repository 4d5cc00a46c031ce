//! `relay relay-server` as a real process on 127.0.0.1, with hubs' relay clients connecting
//! out to it: two hubs pair and run a Noise link through it (frames cross both ways, small and
//! over 1 MiB); a wrong token, another hub's token and an unknown peer are refused at the
//! upgrade; a newer connection replaces an older one; one side closing closes the other; an
//! oversized message ends the pair; and a byte flipped between a hub and the relay ends the
//! link (the relay carries bytes it cannot alter undetected).

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
/// Bound on every step of a test, so a broken relay fails the test instead of hanging it.
const STEP: Duration = Duration::from_secs(20);

/// A `relay relay-server` child process; killed when dropped.
struct RelayServerProcess {
    child: Child,
    address: SocketAddr,
    /// The server's stderr lines after the startup line.
    stderr: std::sync::mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl RelayServerProcess {
    fn start() -> RelayServerProcess {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("relay-server.toml");
        std::fs::write(
            &path,
            format!(
                "[[hub]]\nhub_id = \"a\"\ntoken = \"{TOKEN_A}\"\n[[hub]]\nhub_id = \"b\"\ntoken = \"{TOKEN_B}\"\n"
            ),
        )
        .expect("config written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
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
        assert!(first.contains("for 2 hubs"), "{first}");
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
            stderr,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("ws://{}", self.address)
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
        let text = format!(
            "hub_id = \"{me}\"\nsecret = \"{SECRET}\"\n[[peer]]\nhub_id = \"{peer}\"\n\
             [relay]\nurl = \"{relay_url}\"\ntoken = \"{token}\"\n"
        );
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
