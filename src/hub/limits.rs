//! Named limits and defaults of the hub. Those an operator or a test must change are also
//! fields of [`super::HubConfig`], set from `relay hub` flags.

use std::time::Duration;

/// Commands the core drains into one batch (one append run, one commit). Past it, the rest
/// waits for the next batch: backpressure, nothing dropped.
pub const BATCH_COMMANDS_MAX: usize = 1024;

/// Capacity of the queue from connection tasks to the core; a full queue makes connection
/// tasks wait (backpressure on the sockets).
pub const CORE_QUEUE_CAPACITY: usize = 8192;

/// Frames queued for one session's writer. A session whose queue is full when a push is
/// released is too slow: the push stays in its mailbox (status `queued`) instead.
pub const SESSION_QUEUE_CAPACITY: usize = 1024;

/// Requests of one session waiting for the core at once; past it the session's socket is not
/// read until one is answered (backpressure, nothing dropped).
pub const REQUESTS_IN_FLIGHT_MAX: usize = 64;

/// Sessions connected at once; one more gets `limit_reached` on register and is closed.
pub const SESSIONS_MAX: usize = 4096;

/// Default time after the last session leaves before the hub exits (0 disables).
pub const IDLE_EXIT_DEFAULT: Duration = Duration::from_secs(600);

/// Default idle time after which the hub pings a session.
pub const PING_INTERVAL_DEFAULT: Duration = Duration::from_secs(30);

/// Default time a pinged session has to answer before it is evicted: tolerant on purpose, a
/// busy assistant may not read its socket for a while.
pub const PING_TIMEOUT_DEFAULT: Duration = Duration::from_secs(90);

/// Time a probe of a fixed identity's current holder waits for its answer before the holder
/// is taken for dead and replaced.
pub const PROBE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(3);

/// Longest one write to a session may take. A client that stops reading (its socket buffer
/// full) is evicted past it: its connection closes, the pushes it never acknowledged stay
/// unread in its mailbox, and its name is free for a takeover. Without it a stuck reader held
/// its name and ~100 MiB of frames for as long as it lived.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);

/// Longest the core waits for the answer to a probe of a fixed name's holder, whatever that
/// holder's connection does: past it the holder is taken for dead and replaced. The session
/// answers a probe within its probe timeout ([`PROBE_TIMEOUT_DEFAULT`]) when it is live; this
/// bound covers one stuck in a write (evicted within [`WRITE_DEADLINE`]) or never scheduled.
pub const PROBE_WAIT_MAX: Duration = Duration::from_secs(5);

/// Time a WebSocket client has for its upgrade after the TCP accept, and then again for its
/// first frame, which must be `auth`. Until then the core does not know the connection; past
/// either the connection is closed.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(5);

/// WebSocket connections between accept and a successful `auth`, at once. One more is closed
/// at accept (logged once a minute at most): a flood of unauthenticated clients cannot take
/// the hub's memory or descriptors from the authenticated ones.
pub const UNAUTHENTICATED_MAX: usize = 256;

/// Bytes a WebSocket connection may send before it authenticates, its HTTP upgrade included.
/// Past it the connection closes: an unauthenticated client never makes the hub buffer more,
/// whatever message length it announces (see [`super::preauth`]).
pub const PRE_AUTH_BYTES_MAX: usize = 16 << 10;

/// Connections (Unix socket and WebSocket, authenticated or not) served at once. One more
/// is answered with one `limit_reached` error frame (Unix socket) or closed at accept
/// (WebSocket), and the refusal is logged once a minute at most.
pub const CONNECTIONS_MAX: usize = SESSIONS_MAX + UNAUTHENTICATED_MAX;

/// Bytes of pushes and receipts queued for one session and not yet written to it. A push past
/// it stays in the mailbox (`queued`, pulled by the inbox or pushed again on reconnect), as
/// when the frame queue is full. At least one largest push fits.
pub const SESSION_QUEUED_BYTES_MAX: usize = 4 << 20;

/// Bytes of pushes and receipts queued for all sessions together; past it pushes stay in
/// their mailboxes as above. With [`SESSION_QUEUED_BYTES_MAX`] it bounds what slow consumers
/// can make the hub hold.
pub const QUEUED_BYTES_MAX: usize = 256 << 20;

/// New identities (registrations of a name never seen) per second per local user (uid of the
/// Unix-socket peer; WebSocket clients share one bucket), refilled continuously; past the
/// burst a registration gets `rate_limited` with `retry_after_ms`. Reconnecting as an existing
/// name costs nothing.
pub const NEW_IDENTITIES_PER_SECOND: u32 = 2;

/// How long an identity must have been gone (left, nothing unread, in no group, no pending
/// ask) before the hub forgets it on its own: a registration of a new name first forgets up to
/// [`IDENTITY_FORGETS_PER_REGISTRATION_MAX`] identities last seen longer ago than this, each
/// with an `identity_forgotten` record. At `IDENTITIES_MAX` the hub also forgets the eligible
/// identity last seen longest ago, however recently, to admit the new name; with none eligible
/// the registration gets `limit_reached`.
pub const IDENTITY_FORGET_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);

/// Identities forgotten for age by one registration of a new name, so a registration costs
/// a bounded number of records; older ones go with later registrations.
pub const IDENTITY_FORGETS_PER_REGISTRATION_MAX: usize = 16;

/// The burst of [`NEW_IDENTITIES_PER_SECOND`]: a fresh start of many sessions at once fits.
pub const NEW_IDENTITIES_BURST: u32 = 256;

/// Longest a stopping hub waits, after its final commit, for its connections to write the
/// replies and pushes already released; then it exits anyway.
pub const SHUTDOWN_FLUSH_MAX: Duration = Duration::from_secs(2);

/// First wait after an accept error (out of file descriptors, say); doubled per error in a
/// row up to [`ACCEPT_BACKOFF_MAX`], so the accept loop never spins.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(50);

/// Longest wait between accepts after errors.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Default send rate per session: tokens per second refilled.
pub const SEND_RATE_PER_SECOND_DEFAULT: u32 = 50;

/// Default burst per session: the bucket size.
pub const SEND_BURST_DEFAULT: u32 = 200;

/// Records between two periodic snapshots (start-up then replays at most about this many).
pub const SNAPSHOT_INTERVAL_RECORDS: u64 = 500_000;

/// Least time between two periodic snapshots, so a busy hub does not spend its time on them.
pub const SNAPSHOT_INTERVAL_MIN: Duration = Duration::from_secs(30);

/// Default loopback WebSocket port (`--ws-port 0` picks a free one and writes it to
/// `<data dir>/ws.port`). Not 19736, Relay's first default, which EcoRelay 1.0 also uses: a
/// hub there found the port taken on machines running EcoRelay. 24716 lies in the registered
/// range, below every common ephemeral range (Linux 32768-60999, BSD and macOS 49152-65535),
/// so an outgoing connection never holds it, and away from well-known development ports
/// (3000, 5173, 8000, 8080, 9000 …). A taken port is said on the terminal at start.
pub const WS_PORT_DEFAULT: u16 = 24716;

/// How long [`super::spawn::connect_or_spawn`] waits for a spawned hub to answer (it stops
/// waiting at once when the spawned hub exits first, e.g. on a bad `relay.toml`).
pub const SPAWN_WAIT: Duration = Duration::from_secs(15);

/// How long `relay stop` waits for the hub to exit after SIGTERM: its final sync, snapshot
/// and [`SHUTDOWN_FLUSH_MAX`] fit well within it. Past it `relay stop` fails and names the pid.
pub const STOP_WAIT: Duration = Duration::from_secs(20);

/// Free space below which `relay doctor` warns about the data dir's file system, in bytes.
pub const DISK_FREE_WARN_BYTES: u64 = 1 << 30;

/// Free space below which `relay doctor` fails the disk check, in bytes: a segment (64 MiB by
/// default) and a snapshot may no longer fit.
pub const DISK_FREE_FAIL_BYTES: u64 = 256 << 20;

/// Largest WebSocket message the hub reads at all, in bytes. Messages between the protocol's
/// `FRAME_BYTES_MAX` and this get `frame_too_large` and the connection goes on; bigger ones
/// close the connection (tungstenite buffers a message whole before the hub sees it).
pub const WS_MESSAGE_BYTES_MAX: usize = 16 << 20;
const _: () = assert!(WS_MESSAGE_BYTES_MAX > crate::protocol::limits::FRAME_BYTES_MAX);
const _: () = assert!(SESSION_QUEUED_BYTES_MAX >= crate::protocol::limits::FRAME_BYTES_MAX);
const _: () = assert!(QUEUED_BYTES_MAX >= SESSION_QUEUED_BYTES_MAX);
const _: () = assert!(PRE_AUTH_BYTES_MAX >= 4096);

/// How long a `send`, `ask` or `reply` to an online recipient waits for the recipient's
/// session to acknowledge the push before it answers `queued` instead of `delivered`. Short:
/// the sender's tool call waits this long at worst; later steps arrive as receipts.
pub const DELIVERY_ACK_WAIT: Duration = Duration::from_secs(1);

/// Times the direction of direct messages (sends, asks, replies) between two identities may
/// turn (one answers the other) within [`CONVERSATION_WINDOW`]; past it the next answer gets
/// `rate_limited` naming the loop guard. Two assistants that answer each other automatically
/// stop here instead of forever; a one-way stream of messages never counts. The default of
/// `relay hub --loop-guard` (`loop_guard` in `relay.toml`), which 0 switches off.
pub const CONVERSATION_MESSAGES_MAX: u32 = 100;

/// The window of [`CONVERSATION_MESSAGES_MAX`].
pub const CONVERSATION_WINDOW: Duration = Duration::from_secs(600);

/// How long a completed request's idempotency key is honoured: a repeat within it gets the
/// first result; after it the key is new again.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// Asks expired in one batch at most; the rest wait for the next pass (bounded work per batch).
pub const ASK_EXPIRIES_PER_BATCH_MAX: usize = 256;

/// How far the wall clock may be behind the last record's timestamp, or jump forward between
/// two records beyond the time that passed, before the hub logs a warning (at start, and once
/// per episode while it runs). Timestamps stay monotonic either way (see [`super::clock`]).
pub const CLOCK_JUMP_WARN: Duration = Duration::from_secs(5 * 60);

/// Least time between two snapshots taken because retention waits for one (the log is past
/// its `--retain` bound and the snapshot hold keeps the old segments), and between two
/// retention passes that no snapshot triggered. Each such snapshot costs the core a sample of
/// its state and the snapshot worker a replay of the new records and an encode, so this also
/// bounds what retention costs a busy hub.
pub const RETENTION_SNAPSHOT_INTERVAL_MIN: Duration = Duration::from_secs(1);

/// A `--retain` size must hold at least this many segments (`--segment-bytes`): the active
/// segment is never deleted, and the one before it is usually what the snapshot hold keeps.
/// A smaller size is refused at start.
pub const RETENTION_SEGMENTS_MIN: u64 = 2;

/// How often an idle hub with `--retain <DURATION>` looks at the ages of its old segments
/// (with requests coming, it looks at most every [`RETENTION_SNAPSHOT_INTERVAL_MIN`]).
pub const RETENTION_AGE_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// How often the core looks whether a snapshot being written has finished, so retention can
/// use it without waiting for the next request.
pub const RETENTION_SNAPSHOT_POLL: Duration = Duration::from_millis(100);

/// How often a linked hub's acknowledgement is logged (`link_acknowledged`) at most, per hub.
/// Acks arrive per batch; logging each would double the log's writes under federation. An ack
/// not logged yet only means retention holds a little more after a restart.
pub const LINK_ACK_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Most peers of linked hubs one `broadcast` with `all_hubs` asks (as many as one hub's
/// sessions): the rest are left out, so one broadcast stays one bounded batch.
pub const BROADCAST_REMOTE_PEERS_MAX: usize = SESSIONS_MAX;

/// Largest encode buffer the core keeps between appends: an event that took more (a long
/// body) gets a fresh buffer next time, so one big message does not hold its size for the
/// hub's life. Most events take a few hundred bytes.
pub const ENCODE_BUFFER_KEPT_BYTES: usize = 64 * 1024;

/// Environment variable that, set to `1`, makes the hub sync each commit on its core thread
/// instead of the sync thread (pipelined group commit, `src/hub/commit.rs`): a knob for
/// measuring the pipeline against the old behaviour, not for production.
pub const INLINE_SYNC_ENV: &str = "RELAY_HUB_INLINE_SYNC";

/// Environment variable that, set to `1`, runs the whole hub (core and sessions) on one
/// current-thread runtime instead of a core thread beside two runtime workers: a knob for
/// measuring fewer hand-offs against today's split (`docs/operations.md`, "Performance"), not
/// for production. A strict sync then blocks every session while it runs.
pub const ONE_THREAD_ENV: &str = "RELAY_HUB_ONE_THREAD";

/// Whether the measuring knob `variable` is set to `1`.
pub fn knob_set(variable: &str) -> bool {
    std::env::var_os(variable).is_some_and(|value| value == "1")
}
