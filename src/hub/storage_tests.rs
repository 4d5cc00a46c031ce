//! The core over a log whose storage fails on purpose ([`relay_log::storage::FaultyStorage`]):
//! a full disk refuses writes with `storage_full` while reads go on and writing resumes when
//! space returns; any other storage failure still stops the core (issue 10).
//!
//! The core runs in-process ([`Core::run_batch`], one request per batch), so the fault can be
//! switched on and off between two requests. After each scenario the log is reopened on real
//! storage and replayed: the live state must equal it, and every send answered `ok` must be
//! in it. [`FillingDisk`] refuses reservations from a chosen one on, so the disk can fill at
//! every point of a workload (inside atomic batches too); a returning identity registers at a
//! full disk and reads its mail, and a restart at a full disk closes a batch a crash cut short
//! before anything else is logged.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use relay_log::storage::{FaultyStorage, RealStorage, Storage, StorageCall};
use relay_log::{Durability, LogConfig, LogReader, LogWriter};
use relay_replay::{Event, State, Until, decode_record, replay_into};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::core::{Core, CoreConfig, CoreInput, SessionId};
use super::queue::Queued;
use super::rate::RateConfig;
use crate::protocol::{ClientRequest, ErrorCode, RpcError};

const EIO: i32 = 5;
const ENOSPC: i32 = 28;
/// Sends that surely fill a 4 KiB segment (each record is over 100 bytes).
const SENDS_TO_FILL_A_SEGMENT: usize = 200;

/// Real storage whose reservations (`fallocate` of a new or grown segment) fail with
/// `ENOSPC` once armed and `left` more have succeeded, until cleared: a disk that fills at a
/// chosen moment.
#[derive(Debug, Default)]
struct FillingDisk {
    /// Reservations still allowed (`None`: any).
    left: Mutex<Option<usize>>,
    /// Reservations refused so far.
    refused: Mutex<usize>,
}

impl FillingDisk {
    /// The disk fills after `left` more reservations.
    fn fill_after(&self, left: usize) {
        *self.left.lock().expect("lock") = Some(left);
    }

    /// Space returns.
    fn clear(&self) {
        *self.left.lock().expect("lock") = None;
    }

    fn refused(&self) -> usize {
        *self.refused.lock().expect("lock")
    }
}

impl Storage for FillingDisk {
    fn reserve(&self, file: &File, path: &Path, bytes: u64) -> io::Result<()> {
        if let Some(left) = self.left.lock().expect("lock").as_mut() {
            if *left == 0 {
                *self.refused.lock().expect("lock") += 1;
                return Err(io::Error::from_raw_os_error(ENOSPC));
            }
            *left -= 1;
        }
        RealStorage.reserve(file, path, bytes)
    }
}

struct Harness<S: Storage + 'static = FaultyStorage> {
    core: Core,
    storage: Arc<S>,
    /// Kept so pushes to the sessions have somewhere to go.
    _outbound: Vec<mpsc::Receiver<Queued>>,
    _inputs: mpsc::Receiver<CoreInput>,
}

/// The log of every scenario: strict, with the smallest segments, so rolls are frequent.
fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: relay_log::limits::SEGMENT_BYTES_MIN,
        durability: Durability::Strict,
        ..LogConfig::default()
    }
}

impl Harness<FaultyStorage> {
    fn start(dir: &Path) -> Harness<FaultyStorage> {
        Harness::start_with(dir, Arc::new(FaultyStorage::new()), State::new())
    }
}

impl<S: Storage + 'static> Harness<S> {
    /// A core over the log in `dir` on `storage`, starting from `state` (the log replayed).
    fn start_with(dir: &Path, storage: Arc<S>, state: State) -> Harness<S> {
        let log = LogWriter::open_with_storage(dir, log_config(), storage.clone()).expect("open");
        let (sender, inputs) = mpsc::channel(64);
        let core_config = CoreConfig {
            delivery_ack_wait: std::time::Duration::ZERO,
            rate: RateConfig {
                per_second: 100_000,
                burst: 100_000,
            },
            loop_guard: Some(crate::hub::limits::CONVERSATION_MESSAGES_MAX),
            new_identity_rate: RateConfig {
                per_second: 1000,
                burst: 1000,
            },
            snapshot_dir: dir.join("snapshots"),
            idle_exit: None,
            hub_id: 1,
            retention: None,
            federation: None,
        };
        let core = Core::start(log, state, core_config, sender).expect("core starts");
        Harness {
            core,
            storage,
            _outbound: Vec::new(),
            _inputs: inputs,
        }
    }

    fn connect(&mut self, session: u64) {
        let (outbound, pushes) = mpsc::channel(1024);
        self._outbound.push(pushes);
        self.core.run_batch(vec![CoreInput::Connected {
            session: SessionId(session),
            outbound,
            peer_uid: Some(1000),
        }]);
    }

    fn request(&mut self, session: u64, method: &str, params: Value) -> Result<Value, RpcError> {
        let request = ClientRequest::parse(method, params).expect("a valid request");
        let (reply, mut answer) = oneshot::channel();
        self.core.run_batch(vec![CoreInput::Request {
            session: SessionId(session),
            request: Box::new(request),
            reply,
        }]);
        let answered = match answer.try_recv() {
            Ok(result) => result,
            Err(_) => {
                // A send to an online peer waits for its ack; the wait (zero here) ends next
                // batch.
                self.core.run_batch(Vec::new());
                answer.try_recv().expect("answered by the next batch")
            }
        };
        answered.map(|json| serde_json::from_str(json.get()).expect("a result is JSON"))
    }

    fn send(&mut self, text: &str) -> Result<Value, RpcError> {
        self.request(1, "send", json!({"to": "bob", "text": text}))
    }
}

/// Ann (session 1) online, bob registered and gone, so sends to him are answered at once.
fn ann_and_offline_bob<S: Storage>(harness: &mut Harness<S>) {
    for (session, name) in [(1, "ann"), (2, "bob")] {
        harness.connect(session);
        let params = json!({"name": name, "cwd": "/src", "client": "cli"});
        harness
            .request(session, "register", params)
            .expect("registered");
    }
    harness.core.run_batch(vec![CoreInput::Disconnected {
        session: SessionId(2),
    }]);
}

/// Replays `dir` on real storage: the live state must equal it. Returns the texts of the
/// messages sent in it.
fn assert_log_matches(dir: &Path, live: &State) -> Vec<String> {
    let reader = LogReader::open(dir).expect("the log opens");
    let mut replayed = State::new();
    replay_into(
        &mut replayed,
        reader.iter_from(0).expect("from 0"),
        Until::End,
        |_, _| {},
    )
    .expect("the log replays");
    assert!(replayed == *live, "live state equals the replayed log");
    reader
        .iter_from(0)
        .expect("from 0")
        .filter_map(|record| match decode_record(&record.expect("record")) {
            Ok(Event::MessageSent(sent)) => Some(sent.body.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_full_disk_refuses_writes_with_storage_full_serves_reads_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut harness = Harness::start(dir.path());
    ann_and_offline_bob(&mut harness);
    harness.connect(3);
    let params = json!({"name": "cy", "cwd": "/src", "client": "cli"});
    harness.request(3, "register", params).expect("registered");
    harness
        .request(3, "send", json!({"to": "ann", "text": "hello ann"}))
        .expect("stored");
    harness.storage.fail(StorageCall::Reserve, ENOSPC);
    let mut stored = vec!["hello ann".to_owned()];
    let refused = (0..SENDS_TO_FILL_A_SEGMENT).find_map(|index| {
        let text = format!("message {index}");
        match harness.send(&text) {
            Ok(_) => {
                stored.push(text);
                None
            }
            Err(refused) => Some(refused),
        }
    });
    let refused = refused.expect("the segment filled and the roll met the full disk");
    assert_eq!(refused.code, ErrorCode::StorageFull, "{refused:?}");
    assert!(
        !stored.is_empty(),
        "sends went through until the segment filled"
    );
    // Still full: refused again, and reads are served.
    let again = harness.send("while full").expect_err("still full");
    assert_eq!(again.code, ErrorCode::StorageFull);
    let unread = harness.request(1, "unread", json!({})).expect("a read");
    assert_eq!(unread["total"], 1, "{unread}");
    let peers = harness.request(1, "peers", json!({})).expect("a read");
    assert!(peers.to_string().contains("bob"), "{peers}");
    // The inbox answers although it cannot log its cursor, so it answers the same again.
    for _ in 0..2 {
        let inbox = harness.request(1, "inbox", json!({})).expect("a read");
        assert_eq!(inbox["messages"][0]["text"], "hello ann", "{inbox}");
    }
    // Space returns: the next write goes through, into a new segment.
    harness.storage.clear();
    for index in 0..SENDS_TO_FILL_A_SEGMENT {
        let text = format!("after {index}");
        harness.send(&text).expect("space returned");
        stored.push(text);
        if harness.core.log.segments().len() > 1 {
            break;
        }
    }
    assert!(harness.core.log.segments().len() > 1, "the roll happened");
    let bob = harness
        .core
        .state()
        .identity_by_name("bob")
        .expect("bob")
        .id;
    let mailbox = harness.core.state().mailbox(bob).expect("bob's mailbox");
    assert_eq!(
        mailbox.unread_count(),
        stored.len() - 1,
        "refused sends stored nothing"
    );
    let live = harness.core.state().clone();
    drop(harness);
    assert_eq!(assert_log_matches(dir.path(), &live), stored);
}

#[test]
fn a_failed_sync_still_stops_the_core_with_storage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut harness = Harness::start(dir.path());
    ann_and_offline_bob(&mut harness);
    harness.send("before").expect("stored");
    harness.storage.fail(StorageCall::SyncRange, EIO);
    let refused = harness.send("lost").expect_err("the commit failed");
    assert_eq!(refused.code, ErrorCode::StorageError, "{refused:?}");
    assert!(harness.core.failed, "the core stops");
    assert!(harness.core.log.is_poisoned());
}

/// The sessions of the workload, as session ids 1 to 4.
const CREW: [&str; 4] = ["ann", "bob", "cy", "dee"];
/// Rounds of [`workload`]: each sends, creates a group, broadcasts and reads.
const WORKLOAD_ROUNDS: usize = 3;
/// Padding of the workload's texts, so that a few records fill a segment and the log rolls
/// (reserves) often, inside batches too.
const WORKLOAD_TEXT_BYTES: usize = 1024;
/// The sweep fills the disk after 0 to this many more reservations: past the last one the
/// workload makes (a test checks), so every reservation of it is the one refused in some run.
const RESERVATIONS_SWEPT: usize = 24;
/// A working directory long enough that a registration's record is bigger than a send of
/// one letter.
static LONG_CWD: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("/src/{}", "d".repeat(1024)));
/// Text of the sends that fill a segment which a batch's reservation made large (the
/// `group_create` of two events before them reserves about 130 KiB).
const FILLER_TEXT_BYTES: usize = 4096;
/// Online peers of the oversized broadcast: their asks, a question of `TEXT_BYTES_MAX` each,
/// take more log room than one reservation covers (16 MiB).
const OVERSIZED_BROADCAST_PEERS: u64 = 300;

/// Everything `log` holds, replayed (the live core's own writer: what it committed).
fn replayed(log: &LogWriter) -> State {
    let mut state = State::new();
    replay_into(
        &mut state,
        log.iter_from(0).expect("from 0"),
        Until::End,
        |_, _| {},
    )
    .expect("the log replays");
    state
}

/// Reopens `dir` on real storage (recovery runs): the replayed state and every event.
fn reopened(dir: &Path) -> (State, Vec<Event>) {
    let log = LogWriter::open(dir, log_config()).expect("the log reopens");
    let events = log
        .iter_from(0)
        .expect("from 0")
        .map(|record| decode_record(&record.expect("a record")).expect("decodes"))
        .collect();
    (replayed(&log), events)
}

/// The texts of the messages and questions in `events`.
fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::MessageSent(sent) => Some(sent.body.clone()),
            Event::AskSent(ask) => Some(ask.body.clone()),
            _ => None,
        })
        .collect()
}

fn register<S: Storage>(
    harness: &mut Harness<S>,
    session: u64,
    name: &str,
) -> Result<Value, RpcError> {
    let params = json!({"name": name, "cwd": "/src", "client": "cli"});
    harness.request(session, "register", params)
}

fn crew_online<S: Storage>(harness: &mut Harness<S>) {
    for (index, name) in CREW.iter().enumerate() {
        harness.connect(index as u64 + 1);
        register(harness, index as u64 + 1, name).expect("registered");
    }
}

fn assert_storage_full(refused: &RpcError) {
    assert_eq!(refused.code, ErrorCode::StorageFull, "{refused:?}");
}

fn assert_live_equals_log<S: Storage>(harness: &Harness<S>, context: &str) {
    assert!(
        replayed(&harness.core.log) == *harness.core.state(),
        "{context}: the live state equals its log replayed"
    );
}

/// What [`workload`] saw.
#[derive(Default)]
struct Answered {
    /// Texts of the sends and broadcasts answered `ok`.
    stored: Vec<String>,
    /// Requests refused with `storage_full`.
    refused: usize,
    /// Of those, `group_create`, `broadcast` and `inbox` with `since_id`: atomic batches.
    batches_refused: usize,
}

fn padding() -> String {
    "p".repeat(WORKLOAD_TEXT_BYTES)
}

/// Sends, a `group_create` (a batch of 4 events), a `broadcast` (6) and an `inbox` after a
/// message id (a batch of reads), [`WORKLOAD_ROUNDS`] times; after each round the live state
/// must equal the log. A request refused must be refused with `storage_full` and leave
/// nothing behind.
fn workload<S: Storage>(harness: &mut Harness<S>, label: &str) -> Answered {
    let mut answered = Answered::default();
    for round in 0..WORKLOAD_ROUNDS {
        let mut since = None;
        for index in 0..3 {
            let text = format!("{label} {round}.{index} {}", padding());
            match harness.request(1, "send", json!({"to": "bob", "text": text})) {
                Ok(sent) => {
                    since.get_or_insert(sent["msg_id"].as_str().expect("an id").to_owned());
                    answered.stored.push(text);
                }
                Err(refused) => {
                    assert_storage_full(&refused);
                    answered.refused += 1;
                }
            }
        }
        let group = format!("{label}-{round}");
        let members = json!({"name": group, "members": ["bob", "cy", "dee"]});
        match harness.request(1, "group_create", members) {
            Ok(created) => assert_eq!(created["members"].as_array().map(Vec::len), Some(4)),
            Err(refused) => {
                assert_storage_full(&refused);
                assert!(harness.core.state().group(&group).is_none(), "{group}");
                answered.refused += 1;
                answered.batches_refused += 1;
            }
        }
        let question = format!("{label} question {round} {}", padding());
        match harness.request(1, "broadcast", json!({"question": question})) {
            Ok(broadcast) => {
                assert_eq!(broadcast["peer_count"], 3, "{broadcast}");
                answered.stored.push(question);
            }
            Err(refused) => {
                assert_storage_full(&refused);
                answered.refused += 1;
                answered.batches_refused += 1;
            }
        }
        if let Some(since) = since {
            // Answered even at a full disk: the reads it cannot log come again.
            let inbox = harness
                .request(2, "inbox", json!({"since_id": since}))
                .expect("an inbox is answered");
            assert!(inbox["messages"].as_array().is_some(), "{inbox}");
        }
        assert_live_equals_log(harness, &format!("{label}, round {round}"));
    }
    answered
}

#[test]
fn a_disk_that_fills_at_any_reservation_leaves_the_live_state_equal_to_its_log() {
    let (mut batches_refused, mut past_the_last) = (0, false);
    for reservations in 0..RESERVATIONS_SWEPT {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = Arc::new(FillingDisk::default());
        let mut harness = Harness::start_with(dir.path(), disk.clone(), State::new());
        crew_online(&mut harness);
        disk.fill_after(reservations);
        let full = workload(&mut harness, &format!("full{reservations}"));
        assert_eq!(
            full.refused > 0,
            disk.refused() > 0,
            "a refused reservation refuses a request"
        );
        batches_refused += full.batches_refused;
        past_the_last |= disk.refused() == 0;
        disk.clear();
        let back = workload(&mut harness, &format!("back{reservations}"));
        assert_eq!(back.refused, 0, "space returned");
        let live = harness.core.state().clone();
        drop(harness);
        let (state, events) = reopened(dir.path());
        assert!(state == live, "the reopened log equals the live state");
        let logged = texts(&events);
        for text in full.stored.iter().chain(&back.stored) {
            assert!(logged.contains(text), "{text:?} was acknowledged");
        }
    }
    assert!(
        batches_refused > 0,
        "the sweep filled the disk at an atomic batch"
    );
    assert!(past_the_last, "the sweep went past the last reservation");
}

#[test]
fn a_broadcast_bigger_than_one_reservation_cut_short_by_a_full_disk_is_closed_over_what_it_stored()
{
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = Arc::new(FillingDisk::default());
    let mut harness = Harness::start_with(dir.path(), disk.clone(), State::new());
    for session in 1..=OVERSIZED_BROADCAST_PEERS + 1 {
        harness.connect(session);
        register(&mut harness, session, &format!("p{session}")).expect("registered");
    }
    // The batch's own reservation (a new segment of 16 MiB) succeeds; the roll after it fails.
    disk.fill_after(1);
    let question = "q".repeat(relay_replay::limits::TEXT_BYTES_MAX);
    let refused = harness
        .request(1, "broadcast", json!({"question": question}))
        .expect_err("the disk filled during the broadcast");
    assert_storage_full(&refused);
    assert!(
        refused.message.contains("records are stored"),
        "{refused:?}"
    );
    let asks = harness.core.state().asks().all_pending().count() as u64;
    assert!(
        asks > 0 && asks < OVERSIZED_BROADCAST_PEERS,
        "cut short: {asks} asks"
    );
    assert_live_equals_log(&harness, "after the cut-short broadcast");
    disk.clear();
    let sent = harness.request(1, "send", json!({"to": "p2", "text": "after"}));
    sent.expect("space returned");
    let live = harness.core.state().clone();
    drop(harness);
    let (state, events) = reopened(dir.path());
    assert!(state == live, "the reopened log equals the live state");
    assert!(texts(&events).contains(&"after".to_owned()));
}

#[test]
fn at_a_full_disk_a_known_identity_registers_and_reads_its_mail_and_a_new_name_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = Arc::new(FillingDisk::default());
    let mut harness = Harness::start_with(dir.path(), disk.clone(), State::new());
    for (session, name) in [(1, "ann"), (2, "cy")] {
        harness.connect(session);
        register(&mut harness, session, name).expect("registered");
    }
    let team = json!({"name": "team", "members": ["ann"]});
    harness.request(2, "group_create", team).expect("created");
    let hello = json!({"to": "ann", "text": "hello ann"});
    harness.request(2, "send", hello).expect("stored");
    let hello = json!({"group": "team", "text": "hello team"});
    harness.request(2, "group_send", hello).expect("stored");
    harness.core.run_batch(vec![CoreInput::Disconnected {
        session: SessionId(1),
    }]);
    // The disk fills: cy's sends go on, ever shorter, until not even one letter has room.
    disk.fill_after(0);
    let mut text_bytes = FILLER_TEXT_BYTES;
    for _ in 0..SENDS_TO_FILL_A_SEGMENT {
        let text = json!({"to": "ann", "text": "f".repeat(text_bytes)});
        if let Err(refused) = harness.request(2, "send", text) {
            assert_storage_full(&refused);
            text_bytes /= 2;
        }
        if text_bytes == 0 {
            break;
        }
    }
    assert_eq!(text_bytes, 0, "the segment filled");
    // Ann returns from another directory: her registration (bigger than the smallest send)
    // has no room, yet she attaches and reads her mail.
    harness.connect(3);
    let params = json!({"name": "ann", "cwd": LONG_CWD.as_str(), "client": "cli"});
    let attached = harness
        .request(3, "register", params)
        .expect("a known name attaches");
    assert_eq!(attached["name"], "ann");
    assert_eq!(harness.core.disk.unlogged_registrations.len(), 1);
    let inbox = harness.request(3, "inbox", json!({})).expect("a read");
    assert_eq!(inbox["messages"][0]["text"], "hello ann", "{inbox}");
    // A group read shows the messages without storing its cursor: they stay unread.
    let history = harness
        .request(3, "group_history", json!({"group": "team"}))
        .expect("a group read at a full disk");
    assert_eq!(history["messages"][0]["text"], "hello team", "{history}");
    harness.connect(4);
    let params = json!({"name": "zed", "cwd": LONG_CWD.as_str(), "client": "cli"});
    let refused = harness
        .request(4, "register", params)
        .expect_err("a new name needs a record");
    assert_storage_full(&refused);
    assert!(refused.message.contains("new identity"), "{refused:?}");
    assert!(harness.core.state().identity_by_name("zed").is_none());
    assert_live_equals_log(&harness, "at the full disk");
    // Space returns: ann's registration is logged before her first write.
    disk.clear();
    let back = json!({"to": "cy", "text": "back"});
    harness.request(3, "send", back).expect("space returned");
    let history = harness
        .request(3, "group_history", json!({"group": "team"}))
        .expect("a group read");
    assert_eq!(history["messages"][0]["text"], "hello team", "{history}");
    assert_live_equals_log(&harness, "after space returned");
    let live = harness.core.state().clone();
    drop(harness);
    let (state, events) = reopened(dir.path());
    assert!(state == live, "the reopened log equals the live state");
    let last_leave = events
        .iter()
        .rposition(|event| matches!(event, Event::IdentityLeft(left) if left.name == "ann"))
        .expect("ann left");
    let after: Vec<&Event> = events[last_leave..].iter().collect();
    let registered = after
        .iter()
        .position(|event| matches!(event, Event::IdentityRegistered(again) if again.name == "ann"))
        .expect("ann's return is logged");
    let sent = after
        .iter()
        .position(|event| matches!(event, Event::MessageSent(sent) if sent.body == "back"))
        .expect("her send is logged");
    assert!(registered < sent, "the registration comes first");
}

/// Appends `event` to `log` as the hub would (hub id 1).
fn append(log: &mut LogWriter, event: Event) {
    let encoded = relay_replay::encode(&event);
    let record = relay_log::NewRecord {
        timestamp_us: 1,
        kind: encoded.kind,
        schema_version: encoded.schema_version,
        origin_hub: 1,
        payload: &encoded.payload,
    };
    log.append(&record).expect("appended");
}

/// A message to `to` whose record takes exactly `bytes` of log.
fn message_of_record_bytes(to: &str, bytes: u64) -> Event {
    (0..bytes as usize)
        .map(|len| {
            relay_replay::event::MessageSent {
                id: "m-filler".to_owned(),
                from: to.to_owned(),
                to: to.to_owned(),
                body: "f".repeat(len),
                reply_to: None,
                urgent: false,
                thread: None,
            }
            .into()
        })
        .find(|event| {
            relay_log::format::record_bytes(relay_replay::encode(event).payload.len()) == bytes
        })
        .expect("a body length gives any aligned record size")
}

#[test]
fn a_restart_at_a_full_disk_logs_hub_started_first_so_a_batch_a_crash_cut_short_stays_discarded() {
    use relay_log::format::{SEGMENT_HEADER_BYTES, record_bytes};
    use relay_replay::event::{BatchStarted, GroupCreated, IdentityRegistered};
    let dir = tempfile::tempdir().expect("tempdir");
    // The first run: ann and bob registered, then a crash inside a group_create's batch, whose
    // last record fills the segment to its end.
    let mut log = LogWriter::open(dir.path(), log_config()).expect("open");
    let mut used = SEGMENT_HEADER_BYTES as u64;
    let batch = [
        IdentityRegistered {
            name: "ann".to_owned(),
            cwd: "/src".to_owned(),
            git_branch: None,
            client: relay_replay::event::ClientKind::Cli,
        }
        .into(),
        IdentityRegistered {
            name: "bob".to_owned(),
            cwd: "/src".to_owned(),
            git_branch: None,
            client: relay_replay::event::ClientKind::Cli,
        }
        .into(),
        BatchStarted {
            command: "group_create".to_owned(),
        }
        .into(),
        GroupCreated {
            group: "g".to_owned(),
            admin: "ann".to_owned(),
        }
        .into(),
    ];
    for event in batch {
        used += record_bytes(relay_replay::encode(&event).payload.len());
        append(&mut log, event);
    }
    let rest = relay_log::limits::SEGMENT_BYTES_MIN - used;
    append(&mut log, message_of_record_bytes("bob", rest));
    log.commit().expect("committed");
    drop(log);
    // The restart, on a full disk: `hub_started` has no room.
    let disk = Arc::new(FillingDisk::default());
    disk.fill_after(0);
    let log = LogWriter::open_with_storage(dir.path(), log_config(), disk.clone()).expect("open");
    let state = replayed(&log);
    drop(log);
    assert!(state.group("g").is_none(), "the open batch is held");
    let mut harness = Harness::start_with(dir.path(), disk.clone(), state);
    assert!(disk.refused() > 0, "hub_started was refused");
    harness.connect(1);
    register(&mut harness, 1, "ann").expect("a known name attaches");
    assert_live_equals_log(&harness, "at the full disk");
    disk.clear();
    let sent = harness.request(1, "send", json!({"to": "bob", "text": "after the restart"}));
    sent.expect("space returned");
    assert_live_equals_log(&harness, "after space returned");
    let live = harness.core.state().clone();
    drop(harness);
    let (state, events) = reopened(dir.path());
    assert!(state == live, "the reopened log equals the live state");
    assert!(state.group("g").is_none(), "the cut batch stays discarded");
    assert!(texts(&events).contains(&"after the restart".to_owned()));
    let started = events
        .iter()
        .position(|event| matches!(event, Event::HubStarted(_)))
        .expect("hub_started is logged");
    assert_eq!(
        started, 5,
        "right after the cut batch, before ann's registration"
    );
}
