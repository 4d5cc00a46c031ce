//! The Noise link between two hubs over real loopback TCP: a handshake with the shared secret
//! links two configured hubs and carries frames both ways (large ones in chunks); a wrong
//! secret, an unknown hub id, an altered hello, a re-created static key and a flipped byte in
//! transit each end the link with the error that names it, and nothing is delivered.

use std::net::SocketAddr;
use std::path::Path;

use relay::federation::config::{self, FederationConfig, Key32};
use relay::federation::noise::{self, LinkAuth, LinkError, PinStore, StaticKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &str = "8f3a1c5e7b9d2f4a6c8e0b1d3f5a7c9e1b3d5f7a9c0e2b4d6f8a0c2e4b6d8f0a";

struct Side {
    config: FederationConfig,
    key: StaticKey,
    pins: PinStore,
}

impl Side {
    fn new(dir: &Path, me: &str, peer: &str, secret: &str) -> Side {
        let text =
            format!("hub_id = \"{me}\"\nsecret = \"{secret}\"\n[[peer]]\nhub_id = \"{peer}\"\n");
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
}

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("an address");
    (listener, address)
}

/// The two outcomes of one handshake.
type Outcomes = (
    Result<noise::Link<TcpStream>, LinkError>,
    Result<noise::Link<TcpStream>, LinkError>,
);

/// Runs one handshake: `a` dials `b`; both outcomes.
async fn handshake(a: &Side, b: &Side) -> Outcomes {
    handshake_through(
        a,
        b,
        None::<fn(TcpListener, SocketAddr) -> std::future::Ready<()>>,
    )
    .await
}

/// Runs one handshake, `a` dialing `b` through `proxy` (given its listener and b's address)
/// when there is one.
async fn handshake_through<F, Fut>(a: &Side, b: &Side, proxy: Option<F>) -> Outcomes
where
    F: FnOnce(TcpListener, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (listener, address) = listener().await;
    let dial_to = match proxy {
        Some(proxy) => {
            let (proxy_listener, proxy_address) = listener_pair().await;
            tokio::spawn(proxy(proxy_listener, address));
            proxy_address
        }
        None => address,
    };
    let accepting = async {
        let (stream, _) = listener.accept().await.expect("accept");
        noise::accept(stream, b.auth(), &b.config).await
    };
    let dialing = async {
        let stream = TcpStream::connect(dial_to).await.expect("connect");
        let peer = a
            .config
            .peer(b.config.hub_id.as_str())
            .expect("b is a's peer");
        noise::dial(stream, a.auth(), peer).await
    };
    tokio::join!(dialing, accepting)
}

#[tokio::test]
async fn two_configured_hubs_link_and_frames_cross_both_ways() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let a = Side::new(dir.path(), "a", "b", SECRET);
    let b = Side::new(dir.path(), "b", "a", SECRET);
    let (dialed, accepted) = handshake(&a, &b).await;
    let mut at_a = dialed.expect("a dialed b");
    let mut at_b = accepted.expect("b accepted a");
    assert_eq!(at_a.peer.as_str(), "b");
    assert_eq!(
        at_b.peer.as_str(),
        "a",
        "b learned who called, authenticated"
    );

    let big: Vec<u8> = (0..(1 << 20) + 12_345)
        .map(|index| (index % 251) as u8)
        .collect();
    at_a.writer.send(b"hello").await.expect("sent");
    at_a.writer
        .send(&big)
        .await
        .expect("a large frame is chunked");
    at_a.writer.send(b"").await.expect("an empty frame");
    assert_eq!(at_b.reader.recv().await.expect("frame"), b"hello");
    assert_eq!(at_b.reader.recv().await.expect("frame"), big);
    assert_eq!(at_b.reader.recv().await.expect("frame"), b"");
    at_b.writer.send(b"back").await.expect("sent back");
    assert_eq!(at_a.reader.recv().await.expect("frame"), b"back");

    // Both pinned each other's static key; a second link with the same keys still works.
    let pins = std::fs::read_to_string(dir.path().join("a").join("pins")).expect("a's pins");
    assert!(pins.starts_with("b "), "{pins}");
    let (again, accepted) = handshake(&a, &b).await;
    again.expect("the pinned key matches");
    accepted.expect("the pinned key matches");
}

#[tokio::test]
async fn a_wrong_secret_links_nothing() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let other = "1f3a1c5e7b9d2f4a6c8e0b1d3f5a7c9e1b3d5f7a9c0e2b4d6f8a0c2e4b6d8f0a";
    let a = Side::new(dir.path(), "a", "b", other);
    let b = Side::new(dir.path(), "b", "a", SECRET);
    let (dialed, accepted) = handshake(&a, &b).await;
    let accepted = accepted.expect_err("b refuses a wrong secret");
    assert!(matches!(accepted, LinkError::Noise(_)), "{accepted}");
    assert!(dialed.is_err(), "a is never told the link is up");
    assert!(
        !dir.path().join("b").join("pins").exists(),
        "nothing is pinned from a failed handshake"
    );
}

#[tokio::test]
async fn an_unknown_hub_is_refused_at_the_hello() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let stranger = Side::new(dir.path(), "c", "b", SECRET);
    let b = Side::new(dir.path(), "b", "a", SECRET);
    let (dialed, accepted) = handshake(&stranger, &b).await;
    let refused = accepted.expect_err("b knows no hub c");
    assert!(
        matches!(refused, LinkError::NotAPeer { ref from, .. } if from == "c"),
        "{refused}"
    );
    assert!(dialed.is_err());
}

#[tokio::test]
async fn an_altered_hello_breaks_the_handshake() {
    let dir = tempfile::tempdir().expect("a temp dir");
    // b knows a and c; a dials, but the network rewrites "a" to "c" in the clear hello.
    let text = format!(
        "hub_id = \"b\"\nsecret = \"{SECRET}\"\n[[peer]]\nhub_id = \"a\"\n[[peer]]\nhub_id = \"c\"\n"
    );
    let b_config = config::parse(&text, &dir.path().join("b.toml"), dir.path()).expect("valid");
    let b_dir = dir.path().join("b");
    let b = Side {
        config: b_config,
        key: StaticKey::load_or_create(&b_dir).expect("key"),
        pins: PinStore::new(&b_dir),
    };
    let a = Side::new(dir.path(), "a", "b", SECRET);
    let rewrite = |proxy, to| {
        relay_rewriting(
            proxy,
            to,
            b"RELAY-FEDERATION/1 a b",
            b"RELAY-FEDERATION/1 c b",
        )
    };
    let (dialed, accepted) = handshake_through(&a, &b, Some(rewrite)).await;
    assert!(dialed.is_err(), "a's link fails");
    let refused = accepted.expect_err("b refuses");
    assert!(matches!(refused, LinkError::Noise(_)), "{refused}");
}

#[tokio::test]
async fn a_re_created_static_key_is_refused_by_its_pin() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let a = Side::new(dir.path(), "a", "b", SECRET);
    let b = Side::new(dir.path(), "b", "a", SECRET);
    let (dialed, accepted) = handshake(&a, &b).await;
    dialed.expect("first link");
    accepted.expect("first link");
    // b loses its key file and makes a new one: a's pin no longer matches.
    std::fs::remove_file(dir.path().join("b").join("static.key")).expect("removed");
    let b = Side::new(dir.path(), "b", "a", SECRET);
    let (dialed, _) = handshake(&a, &b).await;
    let refused = dialed.expect_err("a refuses b's new key");
    assert!(
        matches!(refused, LinkError::KeyMismatch { .. }),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("pins"),
        "says how to fix it: {refused}"
    );
}

#[tokio::test]
async fn a_byte_flipped_in_transit_ends_the_link() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let a = Side::new(dir.path(), "a", "b", SECRET);
    let b = Side::new(dir.path(), "b", "a", SECRET);
    // Flips the last byte of everything a sends after 400 bytes (past the handshake).
    let flip = |proxy, to| relay_flipping_after(proxy, to, 400);
    let (dialed, accepted) = handshake_through(&a, &b, Some(flip)).await;
    let mut at_a = dialed.expect("the handshake passes untouched");
    let mut at_b = accepted.expect("the handshake passes untouched");
    at_a.writer.send(&[7u8; 2000]).await.expect("sent");
    let damaged = at_b
        .reader
        .recv()
        .await
        .expect_err("a flipped byte never decrypts");
    assert!(matches!(damaged, LinkError::Noise(_)), "{damaged}");
}

async fn listener_pair() -> (TcpListener, SocketAddr) {
    listener().await
}

/// Forwards one connection to `to`, replacing `from_bytes` with `with` in the first packet
/// from the dialer.
async fn relay_rewriting(proxy: TcpListener, to: SocketAddr, find: &[u8], with: &'static [u8]) {
    let find = find.to_vec();
    let (mut inbound, _) = proxy.accept().await.expect("proxy accept");
    let mut outbound = TcpStream::connect(to).await.expect("proxy connect");
    let mut first = vec![0u8; find.len()];
    inbound.read_exact(&mut first).await.expect("the hello");
    let rewritten = if first == find { with.to_vec() } else { first };
    outbound.write_all(&rewritten).await.expect("forwarded");
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}

/// Forwards one connection to `to`, flipping one byte of the dialer's stream past `after`.
async fn relay_flipping_after(proxy: TcpListener, to: SocketAddr, after: usize) {
    let (inbound, _) = proxy.accept().await.expect("proxy accept");
    let outbound = TcpStream::connect(to).await.expect("proxy connect");
    let (mut in_read, mut in_write) = inbound.into_split();
    let (mut out_read, mut out_write) = outbound.into_split();
    let forward = async move {
        let mut seen = 0usize;
        let mut flipped = false;
        let mut buffer = vec![0u8; 64 << 10];
        loop {
            let read = match in_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            if !flipped && seen + read > after + 100 {
                buffer[read - 1] ^= 0x40;
                flipped = true;
            }
            seen += read;
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
fn keys_are_hex_of_32_bytes() {
    assert!(Key32::from_hex(SECRET).is_ok());
    assert!(Key32::from_hex("abc").is_err());
}

/// A proxy that forwards one connection and records what the dialing side sent.
async fn recording_proxy(
    listener: TcpListener,
    to: SocketAddr,
    recorded: std::sync::Arc<tokio::sync::Mutex<Vec<u8>>>,
) {
    let (mut client, _) = listener.accept().await.expect("accept");
    let mut server = TcpStream::connect(to).await.expect("connect");
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let upstream = async {
        let mut buffer = [0u8; 4096];
        loop {
            let read = client_read.read(&mut buffer).await.unwrap_or(0);
            if read == 0 {
                break;
            }
            recorded.lock().await.extend_from_slice(&buffer[..read]);
            if server_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

#[tokio::test]
async fn a_replayed_handshake_links_nothing() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let a = Side::new(dir.path(), "a", "b", SECRET);
    let b = Side::new(dir.path(), "b", "a", SECRET);
    let recorded = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let tap = recorded.clone();
    let (dialed, accepted) = handshake_through(
        &a,
        &b,
        Some(move |listener, to| recording_proxy(listener, to, tap)),
    )
    .await;
    let mut at_a = dialed.expect("the real handshake links");
    drop(accepted.expect("the real handshake links"));
    at_a.writer.close().await;
    drop(at_a);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let replay = recorded.lock().await.clone();
    assert!(!replay.is_empty(), "the proxy saw the dialing side");

    // Someone replays a's side of that handshake, byte for byte, to b.
    let (listener, address) = listener().await;
    let accepting = async {
        let (stream, _) = listener.accept().await.expect("accept");
        noise::accept(stream, b.auth(), &b.config).await
    };
    let replaying = async {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        let _ = stream.write_all(&replay).await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            stream.read_to_end(&mut sink),
        )
        .await;
    };
    let (accepted, ()) = tokio::join!(accepting, replaying);
    assert!(
        accepted.is_err(),
        "a replayed handshake must not link: {accepted:?}"
    );
}
