//! `<data dir>/federation.toml`: who this hub is, where it listens, which hubs may link to it,
//! and the shared secret; read once at hub start, checked whole before anything starts.
//!
//! ```toml
//! hub_id = "a"                    # [a-z0-9-]{1,32}
//! listen = "127.0.0.1:9700"       # optional: accept links here
//! secret = "<64 hex digits>"      # or secret_file = "…"; 32 random bytes
//! [[peer]]
//! hub_id = "b"
//! address = "192.168.1.9:9700"    # optional when the peer dials us
//! public_key = "<64 hex digits>"  # optional: pin its Noise static key up front
//! [relay]                         # optional
//! url = "wss://relay.example.org:9800"   # ws:// on loopback only
//! token = "…"
//! ca_file = "relay-ca.pem"        # optional, wss:// only: also trust this CA (PEM)
//! [nats]                          # optional: the JetStream transport
//! url = "tls://nats.example.org:4222"    # nats:// on loopback only
//! nkey_seed = "federation/nats.nk"       # or creds = "…" or token = "…"
//! ```
//!
//! Every error names the file and the key, and says what a valid value looks like. The
//! secret is the Noise pre-shared key itself (32 bytes, hex): it never crosses the wire, and a
//! value typed by hand (a password) is refused, since its entropy cannot be known.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The file name inside the data dir.
pub const FEDERATION_FILE_NAME: &str = "federation.toml";

/// Longest hub id, in bytes.
pub const HUB_ID_BYTES_MAX: usize = 32;

/// Peers one hub may list.
pub const PEERS_MAX: usize = 256;

/// Bytes of the shared secret (the Noise PSK).
pub const SECRET_BYTES: usize = 32;

/// Longest relay token, in bytes.
pub const RELAY_TOKEN_BYTES_MAX: usize = 256;

/// Largest PEM file read for TLS (`[relay] ca_file` here, the relay server's `[tls]` files):
/// a whole CA bundle (about 150 roots) is some 200 KiB; more is not a certificate file.
pub const PEM_FILE_BYTES_MAX: u64 = 1 << 20;

/// Most certificates one PEM file may hold (a CA bundle is some 150).
pub const PEM_CERTIFICATES_MAX: usize = 1_000;

/// A hub id: `[a-z0-9-]{1,32}`, not starting or ending with `-`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HubId(String);

impl HubId {
    /// Checks `value`.
    ///
    /// # Errors
    /// Says what a hub id may be.
    pub fn new(value: &str) -> Result<HubId, String> {
        let valid_chars = value
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
        if value.is_empty()
            || value.len() > HUB_ID_BYTES_MAX
            || !valid_chars
            || value.starts_with('-')
            || value.ends_with('-')
        {
            return Err(format!(
                "{value:?} is not a hub id: 1 to {HUB_ID_BYTES_MAX} of a-z, 0-9 and '-', not starting or ending with '-'"
            ));
        }
        Ok(HubId(value.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for HubId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// 32 bytes given as 64 hex digits (the secret, a public key).
#[derive(Clone, PartialEq, Eq)]
pub struct Key32(pub [u8; 32]);

impl std::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key32(..)")
    }
}

impl Key32 {
    /// Parses 64 hex digits.
    ///
    /// # Errors
    /// Says what is wrong with the text.
    pub fn from_hex(text: &str) -> Result<Key32, String> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(format!(
                "expected 64 hex digits (32 bytes), found {} characters",
                text.len()
            ));
        }
        let mut bytes = [0u8; 32];
        for (index, pair) in text.as_bytes().chunks(2).enumerate() {
            let digits = std::str::from_utf8(pair).map_err(|_| "not hex".to_owned())?;
            bytes[index] =
                u8::from_str_radix(digits, 16).map_err(|_| format!("{digits:?} is not hex"))?;
        }
        Ok(Key32(bytes))
    }

    /// 32 fresh random bytes.
    ///
    /// # Errors
    /// The system's random source failed.
    pub fn random() -> std::io::Result<Key32> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
        Ok(Key32(bytes))
    }

    /// The 64 hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// One hub this one may link with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its hub id.
    pub hub_id: HubId,
    /// Where to dial it; `None` when it dials us (or we meet through the relay server).
    pub address: Option<SocketAddr>,
    /// Its Noise static public key, if pinned in the config; otherwise the first key that
    /// completes a handshake with the secret is pinned in `<data dir>/federation/pins`.
    pub public_key: Option<Key32>,
}

/// The relay server this hub connects out to.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayServer {
    /// `ws://` (loopback only) or `wss://` URL.
    pub url: String,
    /// This hub's token at the relay server.
    pub token: String,
    /// CA certificates trusted for a `wss://` relay besides the platform's (`ca_file`, read
    /// and checked when the config is; DER). Empty: the platform's roots only.
    pub ca_certificates: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl std::fmt::Debug for RelayServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayServer")
            .field("url", &self.url)
            .field("token", &"..")
            .field("ca_certificates", &self.ca_certificates.len())
            .finish()
    }
}

/// A checked `federation.toml`.
#[derive(Clone, Debug)]
pub struct FederationConfig {
    /// This hub.
    pub hub_id: HubId,
    /// Where links are accepted.
    pub listen: Option<SocketAddr>,
    /// The shared secret (Noise PSK).
    pub secret: Key32,
    /// The hubs that may link.
    pub peers: Vec<Peer>,
    /// The relay server, if any.
    pub relay: Option<RelayServer>,
    /// The NATS server of the JetStream transport, if any ([`super::jetstream`]).
    pub nats: Option<super::jetstream::NatsConfig>,
}

impl FederationConfig {
    /// The peer with `hub_id`.
    pub fn peer(&self, hub_id: &str) -> Option<&Peer> {
        self.peers
            .iter()
            .find(|peer| peer.hub_id.as_str() == hub_id)
    }
}

/// A federation file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, an unknown key or a wrong type.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's words (they name the key and line).
        message: String,
    },
    /// A key with a value that is not allowed.
    #[error("{path}: `{key}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key, dotted (`peer[2].address`).
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    hub_id: String,
    listen: Option<String>,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    #[serde(default)]
    peer: Vec<RawPeer>,
    relay: Option<RawRelay>,
    /// Checked by [`super::jetstream::parse_nats_table`].
    nats: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    hub_id: String,
    address: Option<String>,
    public_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelay {
    url: String,
    token: String,
    ca_file: Option<PathBuf>,
}

/// Reads `<data dir>/federation.toml`; `Ok(None)` when there is none (no federation).
///
/// # Errors
/// The file exists but cannot be read or is not valid; the error names the key.
pub fn load(data_dir: &Path) -> Result<Option<FederationConfig>, ConfigError> {
    let path = data_dir.join(FEDERATION_FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ConfigError::Io { path, source }),
    };
    parse(&text, &path, data_dir).map(Some)
}

/// Parses and checks the text of a federation file (`path` names it in errors; a relative
/// `secret_file` is taken from `data_dir`).
///
/// # Errors
/// See [`ConfigError`].
pub fn parse(text: &str, path: &Path, data_dir: &Path) -> Result<FederationConfig, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|error| ConfigError::Syntax {
        path: path.to_owned(),
        message: error.to_string().trim_end().to_owned(),
    })?;
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        path: path.to_owned(),
        key: key.to_owned(),
        message,
    };
    let hub_id = HubId::new(&raw.hub_id).map_err(|message| invalid("hub_id", message))?;
    let listen = raw
        .listen
        .as_deref()
        .map(|listen| parse_address(listen).map_err(|message| invalid("listen", message)))
        .transpose()?;
    let secret_text = match (raw.secret, raw.secret_file) {
        (Some(secret), None) => secret,
        (None, Some(file)) => {
            let file = if file.is_relative() {
                data_dir.join(file)
            } else {
                file
            };
            check_private_file(&file, "secret")
                .map_err(|message| invalid("secret_file", message))?;
            std::fs::read_to_string(&file).map_err(|error| {
                invalid(
                    "secret_file",
                    format!("cannot read {}: {error}", file.display()),
                )
            })?
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "secret",
                "give `secret` or `secret_file`, not both".to_owned(),
            ));
        }
        (None, None) => {
            return Err(invalid(
                "secret",
                "missing: `relay federation init` writes one (32 random bytes as 64 hex digits)"
                    .to_owned(),
            ));
        }
    };
    let secret = Key32::from_hex(&secret_text).map_err(|message| {
        invalid(
            "secret",
            format!("{message}; `relay federation init` makes one"),
        )
    })?;
    if secret.0.iter().all(|byte| *byte == secret.0[0]) {
        return Err(invalid(
            "secret",
            "is one byte repeated, not random; `relay federation init` makes one".to_owned(),
        ));
    }
    if raw.peer.len() > PEERS_MAX {
        return Err(invalid(
            "peer",
            format!("{} peers; at most {PEERS_MAX}", raw.peer.len()),
        ));
    }
    let mut peers: Vec<Peer> = Vec::with_capacity(raw.peer.len());
    for (index, peer) in raw.peer.into_iter().enumerate() {
        let key = |field: &str| format!("peer[{index}].{field}");
        let peer_id =
            HubId::new(&peer.hub_id).map_err(|message| invalid(&key("hub_id"), message))?;
        if peer_id == hub_id {
            return Err(invalid(
                &key("hub_id"),
                format!("{peer_id:?} is this hub's own id"),
            ));
        }
        if peers.iter().any(|seen| seen.hub_id == peer_id) {
            return Err(invalid(
                &key("hub_id"),
                format!("{peer_id} is listed twice"),
            ));
        }
        let address = peer
            .address
            .as_deref()
            .map(|address| {
                parse_address(address).map_err(|message| invalid(&key("address"), message))
            })
            .transpose()?;
        let public_key = peer
            .public_key
            .as_deref()
            .map(|hex| Key32::from_hex(hex).map_err(|message| invalid(&key("public_key"), message)))
            .transpose()?;
        peers.push(Peer {
            hub_id: peer_id,
            address,
            public_key,
        });
    }
    let relay = raw
        .relay
        .map(|relay| {
            check_relay_url(&relay.url).map_err(|message| invalid("relay.url", message))?;
            if relay.token.is_empty() || relay.token.len() > RELAY_TOKEN_BYTES_MAX {
                return Err(invalid(
                    "relay.token",
                    format!("1 to {RELAY_TOKEN_BYTES_MAX} bytes"),
                ));
            }
            let ca_certificates = match relay.ca_file {
                None => Vec::new(),
                Some(_) if !relay.url.starts_with("wss://") => {
                    return Err(invalid(
                        "relay.ca_file",
                        "is for a wss:// url only (a ws:// url has no TLS to check)".to_owned(),
                    ));
                }
                Some(file) => {
                    let file = if file.is_relative() {
                        data_dir.join(file)
                    } else {
                        file
                    };
                    load_ca_certificates(&file)
                        .map_err(|message| invalid("relay.ca_file", message))?
                }
            };
            Ok(RelayServer {
                url: relay.url,
                token: relay.token,
                ca_certificates,
            })
        })
        .transpose()?;
    let nats = raw
        .nats
        .map(|table| {
            super::jetstream::parse_nats_table(&table, data_dir)
                .map_err(|error| invalid(&error.key, error.message))
        })
        .transpose()?;
    Ok(FederationConfig {
        hub_id,
        listen,
        secret,
        peers,
        relay,
        nats,
    })
}

fn parse_address(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>()
        .map_err(|_| format!("{text:?} is not an IP address with a port, like 192.168.1.9:9700"))
}

/// `ws://` only to a loopback host; otherwise `wss://`.
fn check_relay_url(url: &str) -> Result<(), String> {
    check_url_scheme(url, "wss://", "ws://")
}

/// `<secure>HOST:PORT`, or `<plain>HOST:PORT` to a loopback host only (what travels would be
/// in the clear elsewhere).
///
/// # Errors
/// Says which scheme to use.
pub(crate) fn check_url_scheme(url: &str, secure: &str, plain: &str) -> Result<(), String> {
    if let Some(rest) = url.strip_prefix(secure) {
        return if rest.is_empty() {
            Err("no host".to_owned())
        } else {
            Ok(())
        };
    }
    let Some(rest) = url.strip_prefix(plain) else {
        return Err(format!(
            "{url:?}: use {secure}HOST:PORT ({plain} on loopback only)"
        ));
    };
    let host_port = rest.split('/').next().unwrap_or_default();
    let loopback = host_port
        .parse::<SocketAddr>()
        .is_ok_and(|address| address.ip().is_loopback())
        || host_port.starts_with("localhost:");
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "{url:?}: plain {plain} is allowed to a loopback address only; use {secure}"
        ))
    }
}

/// The CA certificates in the PEM file at `path`, each checked to be usable as a trust anchor.
///
/// # Errors
/// The file cannot be read, holds no certificate, or one does not parse (the message names
/// the file and says what a valid one holds).
fn load_ca_certificates(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let certificates = load_pem_certificates(path)?;
    let mut roots = rustls::RootCertStore::empty();
    for (index, certificate) in certificates.iter().enumerate() {
        roots.add(certificate.clone()).map_err(|error| {
            format!(
                "{}: certificate {} of {} is not a usable CA certificate: {error}",
                path.display(),
                index + 1,
                certificates.len()
            )
        })?;
    }
    Ok(certificates)
}

/// The certificates (`-----BEGIN CERTIFICATE-----` blocks) of the PEM file at `path`, in
/// order; at most [`PEM_FILE_BYTES_MAX`] bytes and [`PEM_CERTIFICATES_MAX`] certificates.
///
/// # Errors
/// The file cannot be read, is too large, is not PEM or holds no certificate.
pub(crate) fn load_pem_certificates(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject as _;
    let text = read_pem_file(path)?;
    let mut certificates = Vec::new();
    for certificate in rustls::pki_types::CertificateDer::pem_slice_iter(&text) {
        let certificate =
            certificate.map_err(|error| format!("{} is not valid PEM: {error}", path.display()))?;
        if certificates.len() == PEM_CERTIFICATES_MAX {
            return Err(format!(
                "{} holds more than {PEM_CERTIFICATES_MAX} certificates",
                path.display()
            ));
        }
        certificates.push(certificate);
    }
    if certificates.is_empty() {
        return Err(format!(
            "{} holds no certificate: expected PEM with `-----BEGIN CERTIFICATE-----` blocks",
            path.display()
        ));
    }
    Ok(certificates)
}

/// The bytes of the PEM file at `path`, at most [`PEM_FILE_BYTES_MAX`].
///
/// # Errors
/// It cannot be read or is larger.
pub(crate) fn read_pem_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let cannot_read = |error: std::io::Error| format!("cannot read {}: {error}", path.display());
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    let mut bytes = Vec::new();
    file.take(PEM_FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() as u64 > PEM_FILE_BYTES_MAX {
        return Err(format!(
            "{} is over {PEM_FILE_BYTES_MAX} bytes: not a PEM certificate or key file",
            path.display()
        ));
    }
    Ok(bytes)
}

/// A file that holds `what` (a secret, credentials) must be readable by its owner only.
///
/// # Errors
/// It cannot be read, or its mode lets others read it (with the `chmod` that fixes it).
pub(crate) fn check_private_file(path: &Path, what: &str) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    if metadata.mode() & 0o077 != 0 {
        return Err(format!(
            "{} has mode {:03o}: others could read the {what}; `chmod 600 {}`",
            path.display(),
            metadata.mode() & 0o777,
            path.display()
        ));
    }
    Ok(())
}

/// The text `relay federation init` writes.
pub fn initial_text(hub_id: &HubId, listen: Option<SocketAddr>, secret: &Key32) -> String {
    let mut text = String::new();
    text.push_str("# Relay federation: see docs/federation.md.\n");
    text.push_str(&format!("hub_id = \"{hub_id}\"\n"));
    match listen {
        Some(listen) => text.push_str(&format!("listen = \"{listen}\"\n")),
        None => text.push_str("# listen = \"0.0.0.0:9700\"   # accept links from other hubs\n"),
    }
    text.push_str("# The same secret on every hub of this federation; keep it private.\n");
    text.push_str(&format!("secret = \"{}\"\n", secret.to_hex()));
    text.push_str("\n# One [[peer]] per hub that may link with this one:\n");
    text.push_str("# [[peer]]\n# hub_id = \"b\"\n# address = \"192.168.1.9:9700\"\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn parsed(text: &str) -> Result<FederationConfig, ConfigError> {
        parse(
            text,
            Path::new("federation.toml"),
            Path::new("/nonexistent"),
        )
    }

    #[test]
    fn a_full_file_parses() {
        let config = parsed(&format!(
            "hub_id = \"a\"\nlisten = \"127.0.0.1:9700\"\nsecret = \"{SECRET}\"\n\
             [[peer]]\nhub_id = \"b\"\naddress = \"127.0.0.1:9701\"\n\
             [relay]\nurl = \"ws://127.0.0.1:9800\"\ntoken = \"t\"\n\
             [nats]\nurl = \"nats://127.0.0.1:4222\"\ntoken = \"n\"\n"
        ))
        .expect("valid");
        assert_eq!(
            config.nats.as_ref().map(|nats| nats.url.as_str()),
            Some("nats://127.0.0.1:4222")
        );
        assert_eq!(config.hub_id.as_str(), "a");
        assert_eq!(config.peers.len(), 1);
        assert!(config.peer("b").is_some());
        assert!(config.relay.is_some());
    }

    #[test]
    fn each_error_names_its_key() {
        let cases = [
            (format!("hub_id = \"A\"\nsecret = \"{SECRET}\""), "`hub_id`"),
            ("hub_id = \"a\"\nsecret = \"short\"".to_owned(), "`secret`"),
            ("hub_id = \"a\"".to_owned(), "`secret`"),
            (
                format!("hub_id = \"a\"\nsecret = \"{}\"", "1".repeat(64)),
                "not random",
            ),
            (
                format!("hub_id = \"a\"\nsecret = \"{SECRET}\"\nlisten = \"nowhere\""),
                "`listen`",
            ),
            (
                format!("hub_id = \"a\"\nsecret = \"{SECRET}\"\n[[peer]]\nhub_id = \"a\""),
                "`peer[0].hub_id`",
            ),
            (
                format!(
                    "hub_id = \"a\"\nsecret = \"{SECRET}\"\n[[peer]]\nhub_id = \"b\"\naddress = \"x\""
                ),
                "`peer[0].address`",
            ),
            (
                format!(
                    "hub_id = \"a\"\nsecret = \"{SECRET}\"\n[relay]\nurl = \"ws://relay.example.org:9800\"\ntoken = \"t\""
                ),
                "`relay.url`",
            ),
            (
                format!(
                    "hub_id = \"a\"\nsecret = \"{SECRET}\"\n[nats]\nurl = \"nats://nats.example.org:4222\""
                ),
                "`nats.url`",
            ),
            (
                format!(
                    "hub_id = \"a\"\nsecret = \"{SECRET}\"\n[nats]\nurl = \"tls://n:4222\"\npassword = \"p\""
                ),
                "`nats.password`",
            ),
            (
                format!("hub_id = \"a\"\nsecret = \"{SECRET}\"\ncolour = \"blue\""),
                "colour",
            ),
        ];
        for (text, named) in cases {
            let error = parsed(&text).expect_err(&text).to_string();
            assert!(error.contains(named), "{text:?}: {error}");
        }
    }

    /// A self-signed certificate's PEM, made for the test.
    fn certificate_pem() -> String {
        rcgen::generate_simple_self_signed(vec!["relay.example.org".to_owned()])
            .expect("a certificate")
            .cert
            .pem()
    }

    #[test]
    fn a_ca_file_is_read_and_checked() {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("ca.pem"), certificate_pem()).expect("written");
        std::fs::write(dir.path().join("junk.pem"), "not a certificate\n").expect("written");
        std::fs::write(
            dir.path().join("bad.pem"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .expect("written");
        let file = std::fs::File::create(dir.path().join("huge.pem")).expect("created");
        file.set_len(PEM_FILE_BYTES_MAX + 1).expect("grown");
        let relay = |url: &str, ca_file: &str| {
            parse(
                &format!(
                    "hub_id = \"a\"\nsecret = \"{SECRET}\"\n\
                     [relay]\nurl = \"{url}\"\ntoken = \"t\"\nca_file = \"{ca_file}\"\n"
                ),
                &dir.path().join("federation.toml"),
                dir.path(),
            )
        };
        // Relative to the data dir.
        let config = relay("wss://relay.example.org:9800", "ca.pem").expect("valid");
        let relay_server = config.relay.expect("a [relay]");
        assert_eq!(relay_server.ca_certificates.len(), 1);
        let cases = [
            ("wss://r:1", "missing.pem", "cannot read"),
            ("wss://r:1", "junk.pem", "holds no certificate"),
            ("wss://r:1", "bad.pem", "not a usable CA certificate"),
            ("wss://r:1", "huge.pem", "bytes"),
            ("ws://127.0.0.1:9800", "ca.pem", "wss:// url only"),
        ];
        for (url, ca_file, says) in cases {
            let error = relay(url, ca_file).expect_err(ca_file).to_string();
            assert!(error.contains("`relay.ca_file`"), "{ca_file}: {error}");
            assert!(error.contains(says), "{ca_file}: {error}");
        }
    }

    #[test]
    fn the_initial_text_parses_back() {
        let secret = Key32::random().expect("random");
        let hub_id = HubId::new("lab-1").expect("an id");
        let text = initial_text(
            &hub_id,
            Some("127.0.0.1:9700".parse().expect("addr")),
            &secret,
        );
        let config = parsed(&text).expect("init writes a valid file");
        assert_eq!(config.hub_id, hub_id);
        assert_eq!(config.secret, secret);
    }
}
