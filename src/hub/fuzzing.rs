//! Fuzzing support: arbitrary request sequences through an in-process core.
//!
//! [`run_core_sequence`] turns bytes into requests from four sessions over a small set of
//! names (so sends, groups and rooms collide), runs them through [`Core::run_batch`] in
//! batches with probes and disconnects, and checks: no panic, exactly one response per
//! request, and the live state equal to the state replayed from the log the core wrote.
//! The `hub_core` fuzz target and a corpus replay under `cargo test` both call it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use relay_log::{Durability, LogConfig, LogReader, LogWriter};
use relay_replay::{State, Until, replay_into};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::core::{Core, CoreConfig, CoreInput, Json, SessionId};
use super::queue::Queued;
use super::rate::RateConfig;
use crate::protocol::{ClientRequest, RpcError};

const SESSIONS: u64 = 4;
const NAMES: [&str; 5] = ["ann", "bob", "cy", "dee", "nobody"];
const PLACES: [&str; 3] = ["g1", "g2", "r1"];

/// Runs the request sequence `data` describes; panics only on a broken invariant.
pub fn run_core_sequence(data: &[u8]) {
    let dir = scratch_dir();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("invariant: a runtime builds");
    runtime.block_on(run(&dir, data));
    let _ = std::fs::remove_dir_all(&dir);
}

async fn run(dir: &std::path::Path, data: &[u8]) {
    let config = LogConfig {
        segment_bytes: 64 * 1024,
        durability: Durability::Os,
        ..LogConfig::default()
    };
    let Ok(log) = LogWriter::open(dir, config) else {
        return;
    };
    let (sender, mut inputs) = mpsc::channel(1024);
    let core_config = CoreConfig {
        // No wait: a send's answer comes at the next batch, so every request is answered by
        // the end of the sequence.
        delivery_ack_wait: std::time::Duration::ZERO,
        rate: RateConfig {
            per_second: 1000,
            burst: 1000,
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
    let mut core = Core::start(log, State::new(), core_config, sender)
        .expect("invariant: a fresh core starts");
    let mut outbound: Vec<Option<mpsc::Receiver<Queued>>> = (0..SESSIONS).map(|_| None).collect();
    let mut answers: Vec<oneshot::Receiver<Result<Json, RpcError>>> = Vec::new();
    let mut batch = Vec::new();
    for chunk in data.chunks(4) {
        let [who, what, a, b] = [0, 1, 2, 3].map(|index| chunk.get(index).copied().unwrap_or(0));
        let session = u64::from(who) % SESSIONS;
        if outbound[session as usize].is_none() {
            let (push_sender, pushes) = mpsc::channel(4);
            outbound[session as usize] = Some(pushes);
            batch.push(CoreInput::Connected {
                session: SessionId(session),
                outbound: push_sender,
                peer_uid: Some(1000),
            });
            // Most sequences should reach past `not_registered`: a new connection registers
            // under its own name first (the fuzzer can still rename or re-register).
            let register = json!({"name": NAMES[session as usize], "cwd": "/src", "client": "cli"});
            if let Ok(request) = ClientRequest::parse("register", register) {
                let (reply, answer) = oneshot::channel();
                answers.push(answer);
                batch.push(CoreInput::Request {
                    session: SessionId(session),
                    request: Box::new(request),
                    reply,
                });
            }
        }
        if what == 255 {
            batch.push(CoreInput::Disconnected {
                session: SessionId(session),
            });
            outbound[session as usize] = None;
        } else if let Ok(request) = request_for(what, a, b) {
            let (reply, answer) = oneshot::channel();
            answers.push(answer);
            batch.push(CoreInput::Request {
                session: SessionId(session),
                request: Box::new(request),
                reply,
            });
        }
        if b.is_multiple_of(3) || batch.len() > 16 {
            core.run_batch(std::mem::take(&mut batch));
            settle(&mut core, &mut inputs, &mut outbound).await;
        }
    }
    core.run_batch(batch);
    settle(&mut core, &mut inputs, &mut outbound).await;
    // Fires the acknowledgement waits that ended.
    core.run_batch(Vec::new());
    for mut answer in answers {
        assert!(
            answer.try_recv().is_ok(),
            "invariant: every request gets exactly one response"
        );
    }
    let reader = LogReader::open(dir).expect("invariant: the core's log opens");
    let mut replayed = State::new();
    let records = reader.iter_from(0).expect("invariant: the log starts at 0");
    replay_into(&mut replayed, records, Until::End, |_, _| {})
        .expect("invariant: the core's log replays");
    assert!(
        replayed == *core.state(),
        "invariant: live state equals the state replayed from the log"
    );
}

/// Lets probes finish: drains pushes (dropping probe answers counts as "not alive"), lets
/// spawned probe tasks run, feeds their results back to the core.
async fn settle(
    core: &mut Core,
    inputs: &mut mpsc::Receiver<CoreInput>,
    outbound: &mut [Option<mpsc::Receiver<Queued>>],
) {
    // Bounded: each round either finds no pending work or runs one more batch.
    for _ in 0..16 {
        for receiver in outbound.iter_mut().flatten() {
            while receiver.try_recv().is_ok() {}
        }
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        let mut pending = Vec::new();
        while let Ok(input) = inputs.try_recv() {
            pending.push(input);
        }
        if pending.is_empty() {
            return;
        }
        core.run_batch(pending);
    }
}

fn request_for(what: u8, a: u8, b: u8) -> Result<ClientRequest, RpcError> {
    let name = NAMES[usize::from(a) % NAMES.len()];
    let other = NAMES[usize::from(b) % NAMES.len()];
    let place = PLACES[usize::from(b) % PLACES.len()];
    let text = format!("text {a} {b}");
    let (method, params) = match what % 21 {
        0 | 1 => (
            "register",
            json!({"name": name, "cwd": "/src", "client": "cli"}),
        ),
        2 => (
            "register",
            json!({"cwd": format!("/src/{other}"), "client": "codex"}),
        ),
        3 | 4 => (
            "send",
            json!({"to": other, "text": text, "urgent": a.is_multiple_of(2)}),
        ),
        5 => ("ask", json!({"to": other, "question": text})),
        6 => ("broadcast", json!({"question": text})),
        7 => (
            "reply",
            json!({"ask_id": format!("a-{}", b % 32), "text": text}),
        ),
        8 => (
            "reply",
            json!({"ask_id": format!("m-{}", b % 32), "text": text}),
        ),
        9 => (
            "inbox",
            json!({"limit": 1 + a % 5, "include_pushed": b.is_multiple_of(2)}),
        ),
        10 => ("rename", json!({"new_name": other})),
        11 => ("room_join", json!({"room": place})),
        12 => ("room_post", json!({"room": place, "text": text})),
        13 => ("room_leave", json!({"room": place})),
        14 => ("group_create", json!({"name": place, "members": [other]})),
        15 => ("group_invite", json!({"group": place, "peer": other})),
        16 => (
            "group_remove",
            json!({"group": place, "peer": other, "reason": text}),
        ),
        17 => ("group_send", json!({"group": place, "text": text})),
        18 => ("group_history", json!({"group": place, "limit": 1 + a % 3})),
        19 => {
            let step = ["delivered", "read", "held", "refused", "expired"][usize::from(a) % 5];
            match a % 3 {
                0 => (
                    "ack",
                    json!({"msg_id": format!("g-{}", b % 32), "group": place, "step": step}),
                ),
                _ => (
                    "ack",
                    json!({"msg_id": format!("m-{}", b % 32), "step": step}),
                ),
            }
        }
        _ => match a % 7 {
            0 => ("group_leave", json!({"group": place})),
            1 => ("group_delete", json!({"group": place})),
            2 => ("group_info", json!({"group": place})),
            3 => ("status", json!({"msg_id": format!("m-{}", b % 32)})),
            4 => ("unread", json!({})),
            5 => (
                "send",
                json!({"to": other, "text": text, "idempotency_key": format!("k-{}", a % 4)}),
            ),
            _ => ("peers", json!({})),
        },
    };
    ClientRequest::parse(method, params)
}

fn scratch_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("relay-core-fuzz-{}-{count}", std::process::id()))
}
