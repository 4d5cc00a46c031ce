//! What a snapshot costs, and where (issue 10: "snapshots encoded off the core thread"): the
//! figures behind the hub's choice of a snapshot worker with its own state over a clone of the
//! live state handed to a writer thread.
//!
//! One test builds a large state from a mix of events (mostly direct messages, a quarter of
//! the peers never reading theirs, group traffic), then times, on this thread:
//!
//! - `State::clone` (the hand-off a clone-then-encode design would pay on the core thread),
//! - `SnapshotSample::of` (what the core thread still pays with a worker),
//! - `snapshot_encode_checked` (what the core thread paid before the worker),
//! - `snapshot_verify` (the poisoned-dart check, on the worker),
//! - decoding and applying every record again (what the worker pays to follow the log).
//!
//! It prints the figures and asserts only what must hold whatever the machine: the clone is
//! equal, the check passes, the records replayed give the same state. No timed assertion.
//! The size is `RELAY_SNAPSHOT_COST_EVENTS` (default [`EVENTS_DEFAULT`], quick); the figures
//! in `docs/operations.md` come from
//! `RELAY_SNAPSHOT_COST_EVENTS=1000000 cargo test --release -p relay-replay --test
//! snapshot_costs -- --nocapture`.

use std::time::{Duration, Instant};

use relay_replay::event::{
    ClientKind, GroupCreated, GroupMemberInvited, GroupMessageSent, IdentityRegistered,
    MailboxCursorAdvanced, MessagePushed, MessageSent,
};
use relay_replay::{
    Event, RecordMeta, SnapshotSample, State, apply, decode, encode, snapshot_encode_checked,
    snapshot_verify,
};

/// Events of the default (quick) run.
const EVENTS_DEFAULT: u64 = 20_000;
/// Peers of the generated history.
const PEERS: u64 = 2_000;
/// One peer in this many never reads its mail: its mailbox fills up to its bounds.
const NEVER_READS_ONE_IN: u64 = 4;
/// Groups, each with every `GROUPS`-th peer.
const GROUPS: u64 = 20;

/// xorshift64*: a reproducible mix without a dependency.
struct Mix(u64);

impl Mix {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }

    fn body(&mut self) -> String {
        let len = if self.below(100) == 0 {
            500 + self.below(8_000)
        } else {
            50 + self.below(451)
        };
        "x".repeat(len as usize)
    }
}

fn peer(index: u64) -> String {
    format!("peer-{index:04}")
}

/// A record of the generated history: its meta, kind, schema version and payload.
type Generated = (RecordMeta, u16, u16, Vec<u8>);

/// Applies `event` as the next record and keeps it; false (nothing kept) if it does not apply.
fn push(state: &mut State, records: &mut Vec<Generated>, event: Event) -> bool {
    let meta = RecordMeta {
        offset: records.len() as u64,
        timestamp_us: 1_700_000_000_000_000 + records.len() as u64,
        origin_hub: 1,
    };
    if apply(state, meta, &event).is_err() {
        return false;
    }
    let encoded = encode(&event);
    records.push((
        meta,
        encoded.kind,
        encoded.schema_version,
        encoded.payload.to_vec(),
    ));
    true
}

/// The state and every event's record, in order.
fn build(events: u64) -> (State, Vec<Generated>) {
    let mut state = State::new();
    let mut records = Vec::new();
    let mut mix = Mix(0x9e37_79b9_7f4a_7c15);
    for index in 0..PEERS {
        let registered = IdentityRegistered {
            name: peer(index),
            cwd: format!("/src/project-{index}"),
            git_branch: Some("main".into()),
            client: ClientKind::Claude,
        };
        push(&mut state, &mut records, registered.into());
    }
    for group in 0..GROUPS {
        let (name, admin) = (format!("group-{group}"), peer(group));
        let created = GroupCreated {
            group: name.clone(),
            admin: admin.clone(),
        };
        push(&mut state, &mut records, created.into());
        for member in (0..PEERS).filter(|member| member % GROUPS == group && *member != group) {
            let invited = GroupMemberInvited {
                group: name.clone(),
                actor: admin.clone(),
                member: peer(member),
            };
            push(&mut state, &mut records, invited.into());
        }
    }
    let mut message_count = 0u64;
    // Bounded: every pass appends one record or draws again (a refused send, a full mailbox).
    while (records.len() as u64) < events {
        let from = mix.below(PEERS);
        let to = (from + 1 + mix.below(PEERS - 1)) % PEERS;
        let roll = mix.below(100);
        message_count += 1;
        let event: Event = if roll < 55 {
            MessageSent {
                id: format!("m-{message_count}"),
                from: peer(from),
                to: peer(to),
                body: mix.body(),
                reply_to: None,
                urgent: false,
                thread: None,
            }
            .into()
        } else if roll < 75 {
            let last = state
                .identity_by_name(&peer(to))
                .and_then(|identity| state.mailbox(identity.id))
                .and_then(|mailbox| {
                    mailbox
                        .messages()
                        .last()
                        .map(|message| message.id().into_owned())
                });
            let Some(message_id) = last else { continue };
            MessagePushed {
                recipient: peer(to),
                message_id,
            }
            .into()
        } else if roll < 88 {
            if to.is_multiple_of(NEVER_READS_ONE_IN) {
                continue;
            }
            let up_to_sequence = state
                .identity_by_name(&peer(to))
                .and_then(|identity| state.mailbox(identity.id))
                .map_or(0, |mailbox| mailbox.last_sequence());
            MailboxCursorAdvanced {
                recipient: peer(to),
                up_to_sequence,
            }
            .into()
        } else {
            GroupMessageSent {
                group: format!("group-{}", from % GROUPS),
                id: format!("g-{message_count}"),
                from: peer(from),
                body: mix.body(),
                reply_to: None,
                urgent: false,
            }
            .into()
        };
        push(&mut state, &mut records, event);
    }
    (state, records)
}

fn ms(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1e3
}

#[test]
fn what_a_snapshot_costs_on_the_core_and_on_the_worker() {
    let events = std::env::var("RELAY_SNAPSHOT_COST_EVENTS")
        .ok()
        .and_then(|events| events.parse().ok())
        .unwrap_or(EVENTS_DEFAULT);
    let started = Instant::now();
    let (state, records) = build(events);
    let built = started.elapsed();
    let next_offset = records.len() as u64;

    let started = Instant::now();
    let copy = state.clone();
    let clone = started.elapsed();
    assert!(copy == state, "a clone is equal");
    drop(copy);

    let started = Instant::now();
    let sample = SnapshotSample::of(&state, next_offset);
    let sampled = started.elapsed();

    let started = Instant::now();
    let bytes = snapshot_encode_checked(&state, next_offset).expect("the state fits a snapshot");
    let encoded = started.elapsed();

    let started = Instant::now();
    snapshot_verify(&bytes, &sample).expect("the snapshot passes its check");
    let verified = started.elapsed();

    let started = Instant::now();
    let mut replayed = State::new();
    for (meta, kind, schema_version, payload) in &records {
        let event = decode(*kind, *schema_version, payload).expect("a payload decodes");
        apply(&mut replayed, *meta, &event).expect("a record applies again");
    }
    let followed = started.elapsed();
    assert!(
        replayed == state,
        "the records replayed give the same state"
    );

    let per_record_us = followed.as_secs_f64() * 1e6 / next_offset.max(1) as f64;
    eprintln!(
        "snapshot costs: {next_offset} records (built in {:.1} s), state {} bytes, snapshot {} bytes",
        built.as_secs_f64(),
        state.bytes(),
        bytes.len()
    );
    eprintln!("  clone                {:>9.1} ms", ms(clone));
    eprintln!("  sample (core)        {:>9.1} ms", ms(sampled));
    eprintln!("  encode               {:>9.1} ms", ms(encoded));
    eprintln!("  verify (worker)      {:>9.1} ms", ms(verified));
    eprintln!(
        "  decode+apply (worker){:>9.1} ms  ({per_record_us:.2} us a record)",
        ms(followed)
    );
}
