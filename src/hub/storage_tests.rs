//! The core over a log whose storage fails on purpose ([`relay_log::storage::FaultyStorage`]):
//! a full disk refuses writes with `storage_full` while reads go on and writing resumes when
//! space returns; any other storage failure still stops the core (issue 10).
//!
//! The core runs in-process ([`Core::run_batch`], one request per batch), so the fault can be
//! switched on and off between two requests. After each scenario the log is reopened on real
//! storage and replayed: the live state must equal it, and every send answered `ok` must be
//! in it.

use std::path::Path;
use std::sync::Arc;

use relay_log::storage::{FaultyStorage, StorageCall};
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

struct Harness {
    core: Core,
    storage: Arc<FaultyStorage>,
    /// Kept so pushes to the sessions have somewhere to go.
    _outbound: Vec<mpsc::Receiver<Queued>>,
    _inputs: mpsc::Receiver<CoreInput>,
}

impl Harness {
    fn start(dir: &Path) -> Harness {
        let storage = Arc::new(FaultyStorage::new());
        let config = LogConfig {
            segment_bytes: relay_log::limits::SEGMENT_BYTES_MIN,
            durability: Durability::Strict,
            ..LogConfig::default()
        };
        let log = LogWriter::open_with_storage(dir, config, storage.clone()).expect("open");
        let (sender, inputs) = mpsc::channel(64);
        let core_config = CoreConfig {
            delivery_ack_wait: std::time::Duration::ZERO,
            rate: RateConfig {
                per_second: 100_000,
                burst: 100_000,
            },
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
        let core = Core::start(log, State::new(), core_config, sender).expect("core starts");
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
        if let Ok(result) = answer.try_recv() {
            return result;
        }
        // A send to an online peer waits for its ack; the wait (zero here) ends next batch.
        self.core.run_batch(Vec::new());
        answer.try_recv().expect("answered by the next batch")
    }

    fn send(&mut self, text: &str) -> Result<Value, RpcError> {
        self.request(1, "send", json!({"to": "bob", "text": text}))
    }
}

/// Ann (session 1) online, bob registered and gone, so sends to him are answered at once.
fn ann_and_offline_bob(harness: &mut Harness) {
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
