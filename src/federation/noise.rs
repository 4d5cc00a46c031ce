//! The authenticated, encrypted channel between two hubs: Noise `XXpsk3` over any byte stream.
//!
//! The dialing hub first writes one clear line, `RELAY-FEDERATION/1 <from> <to>\n`, so the
//! accepting hub knows who claims to call before it spends anything on cryptography: an id
//! that is not its own or not a configured peer is refused there. Both ids then go into the
//! Noise prologue, so a line altered on the way makes the handshake fail. The pattern is
//! `Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s`: each hub proves its static key, and the shared
//! secret is mixed in as the pre-shared key in the last message, so the secret never crosses
//! the wire and a hub without it fails the handshake. Each side checks the other's static key
//! against its pin ([`PinStore`]; the config's `public_key` wins). The accepting hub confirms
//! with a first encrypted frame, so the dialer knows its secret was right.
//!
//! After the handshake, frames (up to [`LINK_FRAME_BYTES_MAX`]) travel as Noise transport
//! messages of at most 65,535 bytes, each preceded by its length (u16, big endian) and each
//! starting with one flag byte: 1 marks the last chunk of a frame. Nonces count up on each
//! side; a dropped, doubled or reordered message fails to decrypt and ends the link (it
//! resumes from acknowledged offsets). Every read and write has a deadline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use snow::StatelessTransportState;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use super::config::{FederationConfig, HubId, Key32, Peer};

/// The Noise protocol name.
pub const NOISE_PATTERN: &str = "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s";

/// The first word of the clear hello line, with the link protocol's version.
pub const HELLO_PREFIX: &str = "RELAY-FEDERATION/1";

/// Longest hello line, newline included.
pub const HELLO_BYTES_MAX: usize = 96;

/// Time for the whole handshake, hello line to confirmation.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest one read or write of a link may take once the link is up (heartbeats keep a
/// healthy link well inside it).
pub const LINK_IO_DEADLINE: Duration = Duration::from_secs(30);

/// Largest frame a link carries, in bytes; a longer one ends the link.
pub const LINK_FRAME_BYTES_MAX: usize = 4 << 20;

/// Noise's largest message, in bytes.
const NOISE_MESSAGE_MAX: usize = 65_535;

/// Authentication tag per Noise message, in bytes.
const NOISE_TAG_BYTES: usize = 16;

/// Plaintext bytes per transport message: the largest message minus its tag and flag byte.
const CHUNK_BYTES_MAX: usize = NOISE_MESSAGE_MAX - NOISE_TAG_BYTES - 1;

/// The confirmation the accepting hub sends as its first frame.
const CONFIRMATION: &[u8] = b"relay-link-ok";

/// File (in `<data dir>/federation/`) holding this hub's static key pair.
pub const STATIC_KEY_FILE_NAME: &str = "static.key";

/// File (in `<data dir>/federation/`) holding the pinned static keys of peers.
pub const PINS_FILE_NAME: &str = "pins";

/// This hub's long-lived Noise key pair.
#[derive(Clone, Debug)]
pub struct StaticKey {
    /// The private half.
    pub private: Key32,
    /// The public half, which peers pin.
    pub public: Key32,
}

impl StaticKey {
    /// A fresh key pair.
    ///
    /// # Errors
    /// The random source or the Noise library failed.
    pub fn generate() -> Result<StaticKey, LinkError> {
        let builder = snow::Builder::new(params()?);
        let pair = builder.generate_keypair().map_err(LinkError::Noise)?;
        let private = Key32::from_hex(&hex(&pair.private)).map_err(LinkError::Key)?;
        let public = Key32::from_hex(&hex(&pair.public)).map_err(LinkError::Key)?;
        Ok(StaticKey { private, public })
    }

    /// Reads `<dir>/static.key`, creating it (0600) when missing.
    ///
    /// # Errors
    /// The file cannot be read or written, or does not hold a key pair.
    pub fn load_or_create(dir: &Path) -> Result<StaticKey, LinkError> {
        let path = dir.join(STATIC_KEY_FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut lines = text.lines();
                let bad = |what: String| LinkError::Key(format!("{}: {what}", path.display()));
                let private = Key32::from_hex(lines.next().unwrap_or_default()).map_err(bad)?;
                let public = Key32::from_hex(lines.next().unwrap_or_default())
                    .map_err(|what| LinkError::Key(format!("{}: {what}", path.display())))?;
                Ok(StaticKey { private, public })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                crate::data_dir::create_private_dir(dir).map_err(|source| LinkError::File {
                    path: dir.to_owned(),
                    source,
                })?;
                let key = StaticKey::generate()?;
                write_private(
                    &path,
                    &format!("{}\n{}\n", key.private.to_hex(), key.public.to_hex()),
                )?;
                Ok(key)
            }
            Err(source) => Err(LinkError::File { path, source }),
        }
    }
}

/// The static keys of peers seen so far (trust on first use, once the secret checked out).
#[derive(Debug)]
pub struct PinStore {
    path: PathBuf,
}

impl PinStore {
    /// The store in `<dir>/pins`.
    pub fn new(dir: &Path) -> PinStore {
        PinStore {
            path: dir.join(PINS_FILE_NAME),
        }
    }

    fn pinned(&self, hub_id: &HubId) -> Result<Option<Key32>, LinkError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LinkError::File {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        for line in text.lines() {
            if let Some((id, key)) = line.split_once(' ')
                && id == hub_id.as_str()
            {
                return Key32::from_hex(key)
                    .map(Some)
                    .map_err(|what| LinkError::Key(format!("{}: {what}", self.path.display())));
            }
        }
        Ok(None)
    }

    /// Checks `found` against the config's key for `peer`, else the pinned one; whether it is
    /// new (to be pinned once the handshake completes).
    fn check(&self, peer: &Peer, found: &[u8]) -> Result<bool, LinkError> {
        let expected = match &peer.public_key {
            Some(key) => Some(key.clone()),
            None => self.pinned(&peer.hub_id)?,
        };
        match expected {
            Some(key) if key.0.as_slice() == found => Ok(false),
            Some(key) => Err(LinkError::KeyMismatch {
                hub_id: peer.hub_id.clone(),
                expected: key.to_hex(),
                found: hex(found),
            }),
            None => Ok(true),
        }
    }

    fn record(&self, hub_id: &HubId, key: &[u8]) -> Result<(), LinkError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        if let Some(dir) = self.path.parent() {
            crate::data_dir::create_private_dir(dir).map_err(|source| LinkError::File {
                path: dir.to_owned(),
                source,
            })?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|source| LinkError::File {
                path: self.path.clone(),
                source,
            })?;
        writeln!(file, "{hub_id} {}", hex(key)).map_err(|source| LinkError::File {
            path: self.path.clone(),
            source,
        })?;
        tracing::info!(hub_id = %hub_id, "pinned the static key of a new peer hub");
        Ok(())
    }
}

/// Why a link could not be set up or ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Reading or writing the stream failed.
    #[error("link i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A read or write passed its deadline.
    #[error("no progress within {0:?}")]
    Timeout(Duration),
    /// The hello line was not one.
    #[error("not a Relay federation hello: {0}")]
    BadHello(String),
    /// The caller is not a configured peer, or called another hub.
    #[error("refused hub {from:?} calling {to:?}: {why}")]
    NotAPeer {
        /// Who it said it is.
        from: String,
        /// Whom it asked for.
        to: String,
        /// Why it was refused.
        why: &'static str,
    },
    /// The Noise handshake or a transport message failed: a wrong secret, a tampered or lost
    /// message.
    #[error("noise: {0} (a wrong secret, or a message altered or lost on the way)")]
    Noise(snow::Error),
    /// The peer's static key is not the pinned one.
    #[error(
        "hub {hub_id} presented static key {found}, but {expected} is pinned; if it was re-created on purpose, remove its line from <data dir>/federation/pins"
    )]
    KeyMismatch {
        /// The peer.
        hub_id: HubId,
        /// The pinned key.
        expected: String,
        /// The key it showed.
        found: String,
    },
    /// A key file or key text is not a key.
    #[error("key: {0}")]
    Key(String),
    /// A key or pin file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A frame longer than [`LINK_FRAME_BYTES_MAX`], or a malformed chunk.
    #[error("bad frame: {0}")]
    BadFrame(String),
    /// The other side closed the link.
    #[error("the other hub closed the link")]
    Closed,
}

/// What both sides of a handshake need.
#[derive(Clone, Copy, Debug)]
pub struct LinkAuth<'a> {
    /// This hub's id.
    pub me: &'a HubId,
    /// This hub's static key.
    pub key: &'a StaticKey,
    /// The shared secret.
    pub secret: &'a Key32,
    /// Pinned peer keys.
    pub pins: &'a PinStore,
}

/// Dials `peer` over `stream`: hello line, handshake, confirmation.
///
/// # Errors
/// See [`LinkError`]; everything within [`HANDSHAKE_TIMEOUT`].
pub async fn dial<S>(stream: S, auth: LinkAuth<'_>, peer: &Peer) -> Result<Link<S>, LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    within(HANDSHAKE_TIMEOUT, dial_inner(stream, auth, peer)).await
}

async fn dial_inner<S>(mut stream: S, auth: LinkAuth<'_>, peer: &Peer) -> Result<Link<S>, LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hello = format!("{HELLO_PREFIX} {} {}\n", auth.me, peer.hub_id);
    stream.write_all(hello.as_bytes()).await?;
    let mut handshake = Handshake::new(stream, auth, &prologue(auth.me, &peer.hub_id), true)?;
    handshake.send().await?; // -> e
    handshake.receive().await?; // <- e, ee, s, es
    let remote = handshake.remote_static("accepting")?;
    let new_pin = auth.pins.check(peer, &remote)?;
    handshake.send().await?; // -> s, se, psk
    let mut link = handshake.into_link(peer.hub_id.clone())?;
    let confirmation = link.reader.recv().await?;
    if confirmation != CONFIRMATION {
        return Err(LinkError::BadFrame(
            "the accepting hub did not confirm the link".to_owned(),
        ));
    }
    if new_pin {
        auth.pins.record(&peer.hub_id, &remote)?;
    }
    Ok(link)
}

/// Accepts a link on `stream`: reads the hello, checks the caller against `config`, runs the
/// handshake and confirms it. Returns the link and the caller's (authenticated) hub id.
///
/// # Errors
/// See [`LinkError`]; everything within [`HANDSHAKE_TIMEOUT`].
pub async fn accept<S>(
    stream: S,
    auth: LinkAuth<'_>,
    config: &FederationConfig,
) -> Result<Link<S>, LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    within(HANDSHAKE_TIMEOUT, accept_inner(stream, auth, config)).await
}

async fn accept_inner<S>(
    mut stream: S,
    auth: LinkAuth<'_>,
    config: &FederationConfig,
) -> Result<Link<S>, LinkError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let line = read_hello(&mut stream).await?;
    let (from, to) = parse_hello(&line)?;
    if to != auth.me.as_str() {
        return Err(LinkError::NotAPeer {
            from,
            to,
            why: "it asked for another hub id",
        });
    }
    let Some(peer) = config.peer(&from) else {
        return Err(LinkError::NotAPeer {
            from,
            to,
            why: "not a [[peer]] in federation.toml",
        });
    };
    let mut handshake = Handshake::new(stream, auth, &prologue(&peer.hub_id, auth.me), false)?;
    handshake.receive().await?; // <- e
    handshake.send().await?; // -> e, ee, s, es
    handshake.receive().await?; // <- s, se, psk: fails here on a wrong secret
    let remote = handshake.remote_static("dialing")?;
    let new_pin = auth.pins.check(peer, &remote)?;
    let mut link = handshake.into_link(peer.hub_id.clone())?;
    link.writer.send(CONFIRMATION).await?;
    if new_pin {
        auth.pins.record(&peer.hub_id, &remote)?;
    }
    Ok(link)
}

/// A Noise handshake in progress over `stream`.
struct Handshake<S> {
    stream: S,
    noise: snow::HandshakeState,
    buffer: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Handshake<S> {
    fn new(
        stream: S,
        auth: LinkAuth<'_>,
        prologue: &[u8],
        initiator: bool,
    ) -> Result<Handshake<S>, LinkError> {
        let builder = snow::Builder::new(params()?)
            .local_private_key(&auth.key.private.0)
            .and_then(|builder| builder.psk(3, &auth.secret.0))
            .and_then(|builder| builder.prologue(prologue))
            .map_err(LinkError::Noise)?;
        let noise = if initiator {
            builder.build_initiator()
        } else {
            builder.build_responder()
        }
        .map_err(LinkError::Noise)?;
        Ok(Handshake {
            stream,
            noise,
            buffer: vec![0u8; NOISE_MESSAGE_MAX],
        })
    }

    /// Writes this side's next handshake message.
    async fn send(&mut self) -> Result<(), LinkError> {
        let written = self
            .noise
            .write_message(&[], &mut self.buffer)
            .map_err(LinkError::Noise)?;
        write_message(&mut self.stream, &self.buffer[..written]).await
    }

    /// Reads and checks the other side's next handshake message.
    async fn receive(&mut self) -> Result<(), LinkError> {
        let message = read_message(&mut self.stream).await?;
        self.noise
            .read_message(&message, &mut self.buffer)
            .map_err(LinkError::Noise)
            .map(drop)
    }

    /// The other side's static key (`who` names it in the error).
    fn remote_static(&self, who: &str) -> Result<Vec<u8>, LinkError> {
        self.noise
            .get_remote_static()
            .map(<[u8]>::to_vec)
            .ok_or_else(|| LinkError::Key(format!("the {who} hub sent no static key")))
    }

    fn into_link(self, peer: HubId) -> Result<Link<S>, LinkError> {
        let transport = self
            .noise
            .into_stateless_transport_mode()
            .map_err(LinkError::Noise)?;
        Ok(Link::new(self.stream, transport, peer))
    }
}

/// An authenticated link, split into halves that run concurrently.
pub struct Link<S> {
    /// The other hub, authenticated by the handshake.
    pub peer: HubId,
    /// Frames from the other hub.
    pub reader: LinkReader<S>,
    /// Frames to the other hub.
    pub writer: LinkWriter<S>,
}

impl<S> std::fmt::Debug for Link<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("peer", &self.peer).finish()
    }
}

impl<S: AsyncRead + AsyncWrite> Link<S> {
    fn new(stream: S, transport: StatelessTransportState, peer: HubId) -> Link<S> {
        let transport = Arc::new(transport);
        let (read, write) = tokio::io::split(stream);
        Link {
            peer,
            reader: LinkReader {
                read,
                transport: transport.clone(),
                nonce: 0,
            },
            writer: LinkWriter {
                write,
                transport,
                nonce: 0,
            },
        }
    }
}

/// The receiving half of a [`Link`].
pub struct LinkReader<S> {
    read: ReadHalf<S>,
    transport: Arc<StatelessTransportState>,
    nonce: u64,
}

impl<S: AsyncRead> LinkReader<S> {
    /// The next frame, within [`LINK_IO_DEADLINE`] per message.
    ///
    /// # Errors
    /// A closed or stalled stream, a message that does not decrypt, a frame too long.
    pub async fn recv(&mut self) -> Result<Vec<u8>, LinkError> {
        let mut frame = Vec::new();
        let mut plain = vec![0u8; NOISE_MESSAGE_MAX];
        // Bounded by LINK_FRAME_BYTES_MAX: each pass adds one chunk or fails.
        loop {
            let message = within(LINK_IO_DEADLINE, read_message(&mut self.read)).await?;
            let read = self
                .transport
                .read_message(self.nonce, &message, &mut plain)
                .map_err(LinkError::Noise)?;
            self.nonce = self
                .nonce
                .checked_add(1)
                .ok_or_else(|| LinkError::BadFrame("nonces exhausted".to_owned()))?;
            let Some((&flag, chunk)) = plain[..read].split_first() else {
                return Err(LinkError::BadFrame("an empty chunk".to_owned()));
            };
            if frame.len() + chunk.len() > LINK_FRAME_BYTES_MAX {
                return Err(LinkError::BadFrame(format!(
                    "a frame longer than {LINK_FRAME_BYTES_MAX} bytes"
                )));
            }
            frame.extend_from_slice(chunk);
            match flag {
                0 => continue,
                1 => return Ok(frame),
                other => return Err(LinkError::BadFrame(format!("chunk flag {other}"))),
            }
        }
    }
}

/// The sending half of a [`Link`].
pub struct LinkWriter<S> {
    write: WriteHalf<S>,
    transport: Arc<StatelessTransportState>,
    nonce: u64,
}

impl<S: AsyncWrite> LinkWriter<S> {
    /// Sends one frame, within [`LINK_IO_DEADLINE`] per message.
    ///
    /// # Errors
    /// A frame too long, a closed or stalled stream.
    pub async fn send(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        if frame.len() > LINK_FRAME_BYTES_MAX {
            return Err(LinkError::BadFrame(format!(
                "a frame of {} bytes; at most {LINK_FRAME_BYTES_MAX}",
                frame.len()
            )));
        }
        let mut chunks = frame.chunks(CHUNK_BYTES_MAX).peekable();
        let mut plain = Vec::with_capacity(CHUNK_BYTES_MAX + 1);
        let mut message = vec![0u8; NOISE_MESSAGE_MAX];
        let mut out = Vec::new();
        // An empty frame is one chunk with no bytes.
        let mut first = true;
        while first || chunks.peek().is_some() {
            first = false;
            let chunk = chunks.next().unwrap_or_default();
            plain.clear();
            plain.push(u8::from(chunks.peek().is_none()));
            plain.extend_from_slice(chunk);
            let written = self
                .transport
                .write_message(self.nonce, &plain, &mut message)
                .map_err(LinkError::Noise)?;
            self.nonce = self
                .nonce
                .checked_add(1)
                .ok_or_else(|| LinkError::BadFrame("nonces exhausted".to_owned()))?;
            out.extend_from_slice(&(written as u16).to_be_bytes());
            out.extend_from_slice(&message[..written]);
        }
        within(LINK_IO_DEADLINE, async {
            self.write.write_all(&out).await?;
            self.write.flush().await?;
            Ok(())
        })
        .await
    }

    /// Shuts the writing side down (the other hub reads the end).
    pub async fn close(&mut self) {
        let _ = self.write.shutdown().await;
    }
}

fn params() -> Result<snow::params::NoiseParams, LinkError> {
    NOISE_PATTERN
        .parse()
        .map_err(|_| LinkError::Key(format!("the Noise library does not know {NOISE_PATTERN}")))
}

/// The prologue both sides mix in: protocol, dialer, acceptor.
fn prologue(from: &HubId, to: &HubId) -> Vec<u8> {
    format!("{HELLO_PREFIX}\n{from}\n{to}").into_bytes()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

async fn within<T>(
    limit: Duration,
    work: impl Future<Output = Result<T, LinkError>>,
) -> Result<T, LinkError> {
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| LinkError::Timeout(limit))?
}

/// Reads the hello line, at most [`HELLO_BYTES_MAX`] bytes.
async fn read_hello<S: AsyncRead + Unpin>(stream: &mut S) -> Result<String, LinkError> {
    let mut line = Vec::with_capacity(HELLO_BYTES_MAX);
    // Bounded by HELLO_BYTES_MAX: one byte per pass.
    loop {
        let byte = match stream.read_u8().await {
            Ok(byte) => byte,
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(LinkError::Closed);
            }
            Err(error) => return Err(error.into()),
        };
        if byte == b'\n' {
            return String::from_utf8(line)
                .map_err(|_| LinkError::BadHello("not UTF-8".to_owned()));
        }
        line.push(byte);
        if line.len() >= HELLO_BYTES_MAX {
            return Err(LinkError::BadHello(format!(
                "longer than {HELLO_BYTES_MAX} bytes"
            )));
        }
    }
}

/// `RELAY-FEDERATION/1 <from> <to>` → (from, to), both valid hub ids.
pub fn parse_hello(line: &str) -> Result<(String, String), LinkError> {
    let mut words = line.split(' ');
    let (Some(prefix), Some(from), Some(to), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(LinkError::BadHello(format!("{line:?}")));
    };
    if prefix != HELLO_PREFIX {
        return Err(LinkError::BadHello(format!(
            "{prefix:?} (this hub speaks {HELLO_PREFIX})"
        )));
    }
    for id in [from, to] {
        HubId::new(id).map_err(LinkError::BadHello)?;
    }
    Ok((from.to_owned(), to.to_owned()))
}

async fn write_message<S: AsyncWrite + Unpin>(
    stream: &mut S,
    message: &[u8],
) -> Result<(), LinkError> {
    let length = u16::try_from(message.len())
        .map_err(|_| LinkError::BadFrame("a Noise message over 65,535 bytes".to_owned()))?;
    let mut out = Vec::with_capacity(message.len() + 2);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(message);
    stream.write_all(&out).await?;
    stream.flush().await?;
    Ok(())
}

async fn read_message<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, LinkError> {
    let mut length = [0u8; 2];
    match stream.read_exact(&mut length).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(LinkError::Closed);
        }
        Err(error) => return Err(error.into()),
    }
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut message).await.map_err(|error| {
        if error.kind() == std::io::ErrorKind::UnexpectedEof {
            LinkError::Closed
        } else {
            error.into()
        }
    })?;
    Ok(message)
}

fn write_private(path: &Path, text: &str) -> Result<(), LinkError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| LinkError::File {
            path: path.to_owned(),
            source,
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| LinkError::File {
            path: path.to_owned(),
            source,
        })
}
