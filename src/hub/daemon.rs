//! The daemon's life: open the data dir, rebuild state, bind the sockets, serve, shut down.
//!
//! One hub per data dir is guaranteed by the log's lock, taken before anything else: a second
//! hub fails at once naming the holder, and an existing `hub.sock` is then known to be stale
//! and is replaced (no probe-then-unlink race). The socket is created with mode 0600 (umask
//! set around `bind`); the hub runs with umask 077, so every file it creates is 0600 and
//! every directory 0700. SIGTERM and SIGINT stop accepting, let the core sync the log and
//! write a snapshot, give the connections [`SHUTDOWN_FLUSH_MAX`] to write the replies and
//! pushes already released, remove the socket and exit 0; so does the idle timeout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use relay_log::{Durability, LogConfig, LogWriter, OpenError};
use relay_replay::{RKYV_FORMAT_FLAGS, State, Until, replay_into};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch};

use super::commands::hub_info::{HubFacts, set_facts};
use super::core::{Core, CoreConfig, CoreExit, LocalFederation, SessionId};
use super::limits::{
    ACCEPT_BACKOFF_MAX, ACCEPT_BACKOFF_MIN, AUTH_TIMEOUT, CONNECTIONS_MAX, CORE_QUEUE_CAPACITY,
    PROBE_TIMEOUT_DEFAULT, SHUTDOWN_FLUSH_MAX, UNAUTHENTICATED_MAX, WS_MESSAGE_BYTES_MAX,
};
use super::link_host::HubLinkHost;
use super::preauth::PreAuthLimit;
use super::rate::RateConfig;
use super::session::{Admission, SessionContext, Transport, serve};
use super::settings::{Setting, StartedBy};
use super::spawn::socket_path;
use crate::data_dir::{create_private_dir, log_dir};

/// File holding the WebSocket token (mode 0600).
pub const WS_TOKEN_FILE_NAME: &str = "ws.token";
/// File holding the WebSocket port actually bound.
pub const WS_PORT_FILE_NAME: &str = "ws.port";

/// Everything `relay hub` can be told.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// The data dir.
    pub data_dir: PathBuf,
    /// What a commit promises.
    pub durability: Durability,
    /// Exit this long after the last session left; `None` never.
    pub idle_exit: Option<Duration>,
    /// Loopback WebSocket port; `Some(0)` picks a free one, `None` disables it.
    pub ws_port: Option<u16>,
    /// Quiet time before a session is pinged.
    pub ping_interval: Duration,
    /// Time a pinged session has to answer.
    pub ping_timeout: Duration,
    /// Per-session send rate.
    pub rate: RateConfig,
    /// New identities per local user.
    pub new_identity_rate: RateConfig,
    /// The loop guard's turns per pair and window; `None`: no guard.
    pub loop_guard: Option<u32>,
    /// Segment size of the log.
    pub segment_bytes: u64,
    /// How the hub was started (for `relay status`).
    pub started_by: StartedBy,
    /// Every setting in force and where it came from (for `relay status`).
    pub settings: Vec<Setting>,
    /// How much log history to keep (`--retain`); `None` keeps it all.
    pub retain: Option<super::retention::Retention>,
}

/// Runs the hub until shutdown. Returns how the core ended.
///
/// # Errors
/// The data dir cannot be opened (locked by another hub, corrupt log, …) or a socket cannot
/// be bound.
pub async fn run(config: HubConfig) -> anyhow::Result<CoreExit> {
    // Files 0600 and directories 0700, whatever the caller's umask (segments, snapshots, logs).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    raise_open_files_limit();
    create_private_dir(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    check_private(&config.data_dir, true)?;
    check_private(&config.data_dir.join(WS_TOKEN_FILE_NAME), false)?;
    let federation = load_federation(&config.data_dir)?;
    let log_config = LogConfig {
        segment_bytes: config.segment_bytes,
        durability: config.durability,
        payload_format_flags: RKYV_FORMAT_FLAGS,
        repair: false,
    };
    let log =
        LogWriter::open(&log_dir(&config.data_dir), log_config).map_err(|error| match error {
            OpenError::Locked { holder, .. } => {
                anyhow::anyhow!(
                    "a hub already runs for {} ({holder})",
                    config.data_dir.display()
                )
            }
            other => anyhow::Error::new(other).context("opening the log"),
        })?;
    if let Some(cut) = &log.recovery_report().cut {
        tracing::warn!(
            offset = cut.offset,
            bytes = cut.bytes_cut,
            records = cut.records_cut,
            "recovery cut a torn tail"
        );
    }
    let state = rebuild(&config.data_dir, &log)?;
    let hub_id = log.log_id();
    let (core_sender, core_receiver) = mpsc::channel(CORE_QUEUE_CAPACITY);
    let core_config = CoreConfig {
        delivery_ack_wait: super::limits::DELIVERY_ACK_WAIT,
        rate: config.rate,
        new_identity_rate: config.new_identity_rate,
        loop_guard: config.loop_guard,
        snapshot_dir: crate::snapshots::snapshot_dir(&config.data_dir),
        idle_exit: config.idle_exit,
        hub_id,
        retention: config.retain,
        federation: federation.as_ref().map(|federation| LocalFederation {
            hub_id: federation.hub_id.as_str().to_owned(),
            peers: federation
                .peers
                .iter()
                .map(|peer| peer.hub_id.as_str().to_owned())
                .collect(),
        }),
    };
    let log_id = log.log_id();
    let core = Core::start(log, state, core_config, core_sender.clone())
        .map_err(|error| anyhow::anyhow!("starting the core: {error}"))?;
    let links = match federation {
        Some(federation) => Some(
            bind_links(
                &config.data_dir,
                federation,
                HubLinkHost::new(
                    log_id,
                    log_dir(&config.data_dir),
                    core.committed_watch(),
                    core.presence_watch(),
                    core_sender.clone(),
                ),
            )
            .await?,
        ),
        None => None,
    };

    let socket = socket_path(&config.data_dir);
    let unix = bind_private_socket(&socket)?;
    tracing::info!(path = %socket.display(), "listening on the unix socket");
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    let context = SessionContext {
        core: core_sender.clone(),
        hub_id: format!("{hub_id:032x}"),
        ping_interval: config.ping_interval,
        ping_timeout: config.ping_timeout,
        probe_timeout: PROBE_TIMEOUT_DEFAULT.min(config.ping_timeout),
        token: None,
        alive,
    };
    let accept = Accept {
        next_session: Arc::new(AtomicU64::new(1)),
        connections: Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX)),
        refused: Arc::new(std::sync::Mutex::new(None)),
    };
    let (shutdown_sender, shutdown) = watch::channel(false);
    let mut listeners = tokio::task::JoinSet::new();
    listeners.spawn(accept_unix(unix, context.clone(), accept.clone()));
    // A port file left by an earlier hub would name a port nobody listens on.
    let _ = std::fs::remove_file(config.data_dir.join(WS_PORT_FILE_NAME));
    let mut ws_port = None;
    let ws_error = match config.ws_port {
        None => Some("turned off (no_ws)".to_owned()),
        Some(port) => match TcpListener::bind(("127.0.0.1", port)).await {
            // A full disk must not keep the hub from serving (writes get storage_full): without
            // a token or port file it serves the Unix socket only.
            Ok(listener) => match announce_ws(&config.data_dir, &listener) {
                Err(error) => {
                    tracing::error!(%error, "could not write the websocket token or port file; continuing without the websocket");
                    Some(format!("could not write its token or port file: {error}"))
                }
                Ok((token, bound)) => {
                    tracing::info!(port = bound, "listening on the loopback websocket");
                    let ws_context = SessionContext {
                        token: Some(token),
                        ..context.clone()
                    };
                    listeners.spawn(accept_ws(listener, ws_context, accept.clone()));
                    ws_port = Some(bound);
                    None
                }
            },
            Err(error) => {
                tracing::warn!(port, %error, "websocket port unavailable; continuing without it");
                Some(ws_unavailable(port, &error))
            }
        },
    };
    set_facts(HubFacts {
        data_dir: config.data_dir.display().to_string(),
        started_at_us: super::core::now_us(),
        started_by: config.started_by.name().to_owned(),
        settings: config
            .settings
            .iter()
            .map(|setting| crate::protocol::HubSettingInfo {
                name: setting.name.to_owned(),
                value: setting.value.clone(),
                source: setting.source.name().to_owned(),
            })
            .collect(),
        ws_port,
        ws_error: ws_error.clone(),
    });
    drop(core_sender);
    drop(context);
    // For whoever started the hub by hand (a spawned hub's stderr is logs/hub.out).
    if let (Some(port), Some(error)) = (config.ws_port, &ws_error) {
        eprintln!("relay hub: no websocket on 127.0.0.1:{port}: {error}");
    }
    eprintln!(
        "relay hub: serving {} on {} ({}); {}; logs in {}; stop with Ctrl-C, SIGTERM or `relay stop`",
        config.data_dir.display(),
        socket.display(),
        match (ws_port, &ws_error) {
            (Some(port), _) => format!("websocket 127.0.0.1:{port}"),
            (None, _) if config.ws_port.is_none() => "websocket off".to_owned(),
            (None, _) => "no websocket, see above".to_owned(),
        },
        match config.idle_exit {
            Some(idle) => format!("exits {} s after the last session leaves", idle.as_secs()),
            None => "runs until stopped".to_owned(),
        },
        config.data_dir.join("logs").join("hub.log").display()
    );
    let links_task = links.map(|(bound, host, federation)| {
        let nats = federation.nats.clone().map(|nats| {
            tokio::spawn(crate::federation::jetstream_link::run(
                federation.clone(),
                nats,
                host.clone(),
                shutdown.clone(),
            ))
        });
        let direct = tokio::spawn(bound.run(host, shutdown.clone()));
        (direct, nats)
    });
    let signals = tokio::spawn(wait_for_signal(shutdown_sender));
    // The core gets a thread of its own: its commits block on the disk, and the connection
    // tasks keep reading and writing sockets on the runtime's workers meanwhile. The measuring
    // knob `RELAY_HUB_ONE_THREAD=1` runs it as one more task on the hub's single thread.
    let (exit_sender, exit_receiver) = tokio::sync::oneshot::channel();
    if crate::hub::limits::knob_set(crate::hub::limits::ONE_THREAD_ENV) {
        tokio::spawn(async move {
            let exit = core.run(core_receiver, shutdown).await;
            let _ = exit_sender.send(exit);
        });
    } else {
        std::thread::Builder::new()
            .name("relay-core".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let exit = match runtime {
                    Ok(runtime) => runtime.block_on(core.run(core_receiver, shutdown)),
                    Err(error) => {
                        tracing::error!(%error, "could not start the core's runtime");
                        CoreExit::StorageFailed
                    }
                };
                let _ = exit_sender.send(exit);
            })?;
    }
    let exit = exit_receiver.await.unwrap_or(CoreExit::StorageFailed);
    listeners.abort_all();
    signals.abort();
    if let Some((direct, nats)) = links_task {
        direct.abort();
        let _ = direct.await;
        if let Some(nats) = nats {
            nats.abort();
            let _ = nats.await;
        }
    }
    // The core is gone and so are the session queues: each connection writes what it still
    // holds and ends, dropping its `alive` clone.
    while listeners.join_next().await.is_some() {}
    if tokio::time::timeout(SHUTDOWN_FLUSH_MAX, all_closed.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still writing after {} s; exiting anyway",
            SHUTDOWN_FLUSH_MAX.as_secs()
        );
    }
    let _ = std::fs::remove_file(&socket);
    tracing::info!(?exit, "hub stopped");
    Ok(exit)
}

/// Why the WebSocket port could not be bound, with what to do about it.
fn ws_unavailable(port: u16, error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::AddrInUse {
        format!(
            "{error} (another program, or a hub of another data dir, holds port {port}); \
             set `ws_port = 0` in relay.toml (or --ws-port 0) for a free port, another port, \
             or `no_ws = true`"
        )
    } else {
        format!("{error}")
    }
}

/// Reads `<data dir>/federation.toml` before anything starts: a bad file stops the hub with
/// the key named; no file means the hub is not federated.
fn load_federation(
    data_dir: &Path,
) -> anyhow::Result<Option<crate::federation::config::FederationConfig>> {
    Ok(crate::federation::config::load(data_dir)?)
}

/// Binds the federation listener (a taken address stops the hub, naming it) and readies the
/// link manager for every `[[peer]]`.
async fn bind_links(
    data_dir: &Path,
    federation: crate::federation::config::FederationConfig,
    host: HubLinkHost,
) -> anyhow::Result<(
    crate::federation::link::Bound,
    HubLinkHost,
    Arc<crate::federation::config::FederationConfig>,
)> {
    use crate::federation::link::{LinkSetup, bind};
    use crate::federation::noise::{PinStore, StaticKey};
    let key_dir = data_dir.join("federation");
    let key = StaticKey::load_or_create(&key_dir)
        .with_context(|| format!("the federation static key in {}", key_dir.display()))?;
    let (hub_id, peers, listen) = (
        federation.hub_id.clone(),
        federation.peers.len(),
        federation.listen,
    );
    let nats = federation.nats.as_ref().map_or(String::new(), |nats| {
        format!(", records also through NATS {}", nats.url)
    });
    let config = Arc::new(federation);
    let setup = LinkSetup::new(
        config.clone(),
        Arc::new(key),
        Arc::new(PinStore::new(&key_dir)),
    );
    let bound = bind(setup).await.context("the federation listener")?;
    let listening = bound
        .local_addr()
        .map_or("not listening (dials only)".to_owned(), |address| {
            format!("links accepted on {address}")
        });
    tracing::info!(hub = %hub_id, peers, ?listen, "federation on");
    eprintln!("relay hub: federation hub {hub_id}, {peers} peer(s), {listening}{nats}");
    Ok((bound, host, config))
}

/// Rebuilds the state from the newest snapshot plus the log tail (or from zero).
fn rebuild(data_dir: &Path, log: &LogWriter) -> anyhow::Result<State> {
    let snapshot_dir = crate::snapshots::snapshot_dir(data_dir);
    let snapshot = crate::snapshots::load_newest(&snapshot_dir, log.log_id(), log.next_offset())
        .filter(|snapshot| snapshot.next_offset >= log.first_offset());
    let (mut state, from) = match snapshot {
        Some(snapshot) => (snapshot.state, snapshot.next_offset),
        None if log.first_offset() == 0 => (State::new(), 0),
        // Rebuilding from an empty state would silently forget every identity and message.
        None => anyhow::bail!(
            "the log starts at offset {} (older history was reclaimed by retention) and no snapshot at or after it decodes in {}; the state cannot be rebuilt",
            log.first_offset(),
            snapshot_dir.display()
        ),
    };
    let records = log
        .iter_from(from.max(log.first_offset()))
        .context("reading the log")?;
    let stats = replay_into(&mut state, records, Until::End, |_, _| {})
        .context("rebuilding state from the log")?;
    tracing::info!(records = stats.records, offset = from, "state rebuilt");
    Ok(state)
}

fn bind_private_socket(path: &Path) -> anyhow::Result<UnixListener> {
    // We hold the log lock, so no other hub serves this data dir: a socket file is stale.
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed a stale socket"),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("removing {}", path.display())),
    }
    let previous = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(path);
    rustix::process::umask(previous);
    bound.with_context(|| format!("binding {}", path.display()))
}

/// Refuses a data dir (or a file in it) that another user owns or that group or others may
/// write (a directory) or read (a file): the hub would serve, and log, messages anyone could
/// read or forge. A missing file passes (the hub creates it 0600).
///
/// # Errors
/// Names the path, what is wrong, and the command that fixes it.
fn check_private(path: &Path, is_dir: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error).with_context(|| format!("checking {}", path.display())),
    };
    let me = rustix::process::geteuid().as_raw();
    if metadata.uid() != me {
        anyhow::bail!(
            "{} belongs to uid {}, not to you (uid {me}): another user could read or forge your messages; use a data dir of your own (--data-dir, $RELAY_HOME)",
            path.display(),
            metadata.uid()
        );
    }
    let mode = metadata.mode() & 0o777;
    let (loose, fix) = if is_dir {
        (mode & 0o022 != 0, "700")
    } else {
        (mode & 0o077 != 0, "600")
    };
    if loose {
        anyhow::bail!(
            "{} has mode {mode:03o}: other users could {} it; fix it with `chmod {fix} {}`",
            path.display(),
            if is_dir { "write into" } else { "read" },
            path.display()
        );
    }
    Ok(())
}

/// The WebSocket token and the bound port, written to `ws.port`.
fn announce_ws(data_dir: &Path, listener: &TcpListener) -> anyhow::Result<(String, u16)> {
    let token = ws_token(data_dir)?;
    let bound = listener.local_addr()?.port();
    std::fs::write(data_dir.join(WS_PORT_FILE_NAME), bound.to_string())?;
    Ok((token, bound))
}

fn ws_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(WS_TOKEN_FILE_NAME);
    if let Ok(token) = std::fs::read_to_string(&path) {
        let token = token.trim().to_owned();
        if !token.is_empty() {
            return Ok(token);
        }
    }
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("random token: {error}"))?;
    let token: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(token.as_bytes())?;
    Ok(token)
}

/// tungstenite's read buffer and write batch per WebSocket connection, in bytes (its default
/// of 128 KiB each made an idle or unauthenticated connection cost ~66 KiB of the hub's memory).
const WS_BUFFER_BYTES: usize = 16 << 10;

/// What both accept loops share: session ids and the connection cap.
#[derive(Clone)]
struct Accept {
    next_session: Arc<AtomicU64>,
    connections: Arc<tokio::sync::Semaphore>,
    /// When a refusal at the cap was last logged (once a minute at most).
    refused: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl Accept {
    fn session(&self) -> SessionId {
        SessionId(self.next_session.fetch_add(1, Ordering::Relaxed))
    }

    /// A place among [`CONNECTIONS_MAX`], or `None` (logged once a minute at most).
    fn admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let permit = self.connections.clone().try_acquire_owned().ok();
        if permit.is_none() {
            self.log_refusal(&format!(
                "{CONNECTIONS_MAX} connections are open; refusing new ones until some close"
            ));
        }
        permit
    }

    fn log_refusal(&self, message: &str) {
        let now = std::time::Instant::now();
        let Ok(mut last) = self.refused.lock() else {
            return;
        };
        if last.is_none_or(|at| now - at > Duration::from_secs(60)) {
            tracing::warn!("{message}");
            *last = Some(now);
        }
    }
}

/// The one frame a Unix-socket client past [`CONNECTIONS_MAX`] gets before its connection
/// closes.
fn connections_full_frame() -> Vec<u8> {
    let error = crate::protocol::RpcError::new(
        crate::protocol::ErrorCode::LimitReached,
        format!("the hub serves {CONNECTIONS_MAX} connections at most; retry later"),
    );
    crate::protocol::encode_frame(&crate::protocol::Response::error(None, error))
}

async fn accept_unix(listener: UnixListener, context: SessionContext, accept: Accept) {
    let mut backoff = AcceptBackoff::default();
    // Runs until the hub stops (the task is aborted).
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                backoff.reset();
                let Some(connection) = accept.admit() else {
                    tokio::spawn(async move {
                        use tokio::io::AsyncWriteExt;
                        let mut stream = stream;
                        let frame = connections_full_frame();
                        let _ = tokio::time::timeout(AUTH_TIMEOUT, stream.write_all(&frame)).await;
                    });
                    continue;
                };
                let admission = Admission {
                    connection,
                    unauthenticated: None,
                };
                tokio::spawn(serve(
                    Transport::unix(stream),
                    accept.session(),
                    context.clone(),
                    admission,
                ));
            }
            Err(error) => backoff.wait("unix socket", &error).await,
        }
    }
}

async fn accept_ws(listener: TcpListener, context: SessionContext, accept: Accept) {
    let mut backoff = AcceptBackoff::default();
    let slots = Arc::new(tokio::sync::Semaphore::new(UNAUTHENTICATED_MAX));
    // Runs until the hub stops (the task is aborted).
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                backoff.wait("websocket", &error).await;
                continue;
            }
        };
        backoff.reset();
        let Some(connection) = accept.admit() else {
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            accept.log_refusal(&format!(
                "{UNAUTHENTICATED_MAX} websocket connections are waiting to authenticate; closing new ones until they do"
            ));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let context = context.clone();
        let session = accept.session();
        tokio::spawn(async move {
            // Messages over the protocol limit still arrive, up to WS_MESSAGE_BYTES_MAX, so the
            // hub can answer them with frame_too_large; bigger ones close the connection. Until
            // auth, the stream itself stops at PRE_AUTH_BYTES_MAX.
            let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                .max_message_size(Some(WS_MESSAGE_BYTES_MAX))
                .max_frame_size(Some(WS_MESSAGE_BYTES_MAX))
                .read_buffer_size(WS_BUFFER_BYTES)
                .write_buffer_size(WS_BUFFER_BYTES);
            let handshake = tokio_tungstenite::accept_hdr_async_with_config(
                PreAuthLimit::new(stream),
                refuse_browsers,
                Some(config),
            );
            match tokio::time::timeout(AUTH_TIMEOUT, handshake).await {
                Ok(Ok(socket)) => {
                    let admission = Admission {
                        connection,
                        unauthenticated: Some(slot),
                    };
                    serve(
                        Transport::WebSocket(Box::new(socket)),
                        session,
                        context,
                        admission,
                    )
                    .await;
                }
                Ok(Err(error)) => tracing::debug!(%error, "websocket handshake failed"),
                Err(_) => tracing::debug!("websocket handshake timed out"),
            }
        });
    }
}

/// Raises the open-files soft limit to the hard limit, so the hub's session cap, not the
/// common 1,024 default, bounds its connections; says so in the log.
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_none() || limit.current == limit.maximum {
        return;
    }
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::info!(
            from = ?limit.current,
            to = ?limit.maximum,
            "raised the open-files soft limit to the hard limit"
        ),
        Err(error) => {
            tracing::warn!(%error, soft = ?limit.current, "could not raise the open-files limit")
        }
    }
}

/// Refuses an upgrade that carries an `Origin` header (403): browsers always send one, so a web
/// page open in the user's browser cannot talk to the hub; Relay's clients never send one.
#[expect(
    clippy::result_large_err,
    reason = "the signature is tungstenite's handshake callback"
)]
fn refuse_browsers(
    request: &tokio_tungstenite::tungstenite::handshake::server::Request,
    response: tokio_tungstenite::tungstenite::handshake::server::Response,
) -> Result<
    tokio_tungstenite::tungstenite::handshake::server::Response,
    tokio_tungstenite::tungstenite::handshake::server::ErrorResponse,
> {
    if request.headers().contains_key("origin") {
        let mut refused = tokio_tungstenite::tungstenite::handshake::server::ErrorResponse::new(
            Some("relay: browser origins are refused\n".to_owned()),
        );
        *refused.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::FORBIDDEN;
        return Err(refused);
    }
    Ok(response)
}

/// The wait after accept errors: doubles from [`ACCEPT_BACKOFF_MIN`] to
/// [`ACCEPT_BACKOFF_MAX`], warns once per run of errors.
#[derive(Default)]
struct AcceptBackoff {
    wait: Option<Duration>,
}

impl AcceptBackoff {
    async fn wait(&mut self, listener: &str, error: &std::io::Error) {
        let wait = match self.wait {
            None => {
                tracing::warn!(%error, listener, "accept failed (out of file descriptors?); backing off");
                ACCEPT_BACKOFF_MIN
            }
            Some(wait) => (wait * 2).min(ACCEPT_BACKOFF_MAX),
        };
        self.wait = Some(wait);
        tokio::time::sleep(wait).await;
    }

    fn reset(&mut self) {
        if self.wait.take().is_some() {
            tracing::info!("accepting again");
        }
    }
}

async fn wait_for_signal(shutdown: watch::Sender<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    tracing::info!("signal received; shutting down");
    let _ = shutdown.send(true);
}
