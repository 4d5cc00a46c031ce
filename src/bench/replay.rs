//! `relay bench replay`: build a log of mixed events, then measure a full replay and a
//! start-up from the newest snapshot, beside the raw CRC-verified scan of the same log.
//!
//! The mix is what a busy hub writes: mostly direct messages and their pushes and cursor
//! advances, group traffic, some asks and replies; bodies mostly 50–500 bytes, one in a
//! hundred up to 64 KiB; message ids derived from their offsets (`m-<offset>`, `g-<offset>`),
//! as the hub makes them. Every generated event is applied while building, so the log is a
//! valid history and the replay measures real work. The replay is timed twice, after an
//! untimed one that warms the heap: as the hub runs it (decoding on a second thread) and on
//! one thread.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use relay_log::bench::{Throughput, scan};
use relay_log::{Durability, LogConfig, LogReader, LogWriter, NewRecord};
use relay_replay::event::{
    AskSent, ClientKind, GroupCreated, GroupCursorAdvanced, GroupMemberInvited, GroupMessageSent,
    IdentityRegistered, MailboxCursorAdvanced, MessagePushed, MessageSent, ReplySent,
};
use relay_replay::{
    Event, Pipeline, RKYV_FORMAT_FLAGS, RecordMeta, ReplayStats, State, Until, apply, encode,
    replay_into, replay_into_with,
};

/// Peers in the generated history.
const BENCH_PEERS: usize = 100;
/// Groups in the generated history, each with every tenth peer.
const BENCH_GROUPS: usize = 10;

/// Options of the replay benchmark.
#[derive(Clone, Debug)]
pub struct ReplayBenchConfig {
    /// Scratch directory (removed afterwards).
    pub dir: PathBuf,
    /// Events in the generated log.
    pub events: u64,
}

/// What `relay bench replay` measured.
#[derive(Clone, Debug, Default)]
pub struct ReplayBenchReport {
    /// Events in the log.
    pub events: u64,
    /// Time to generate and append them (not a figure of merit).
    pub build: Duration,
    /// Full replay: read, CRC-check, decode, apply (decoding on a second thread, as the hub
    /// and `relay replay` do).
    pub replay: Throughput,
    /// The same replay on one thread ([`Pipeline`] with no decoding thread).
    pub replay_one_thread: Throughput,
    /// Raw CRC-verified scan of the same log (the log benchmark's replay figure).
    pub scan: Throughput,
    /// Size of the snapshot of the final state.
    pub snapshot_bytes: u64,
    /// Start-up from the newest snapshot: read, decode, replay the (empty) tail.
    pub startup_from_snapshot: Duration,
    /// Where a second start-up's time goes, part by part (see [`StartupSplit`]).
    pub startup_split: StartupSplit,
}

/// A start-up from a snapshot taken apart: each part timed on its own, once more after the
/// timed start-up (the page cache is warm for both).
#[derive(Clone, Debug, Default)]
pub struct StartupSplit {
    /// Mapping the snapshot file, prefaulted ([`crate::snapshots::read`]).
    pub read: Duration,
    /// The CRC32 over the file (the decode checks the same bytes once).
    pub crc: Duration,
    /// `snapshot_decode` whole: CRC, rkyv validation, deserialize to an owned `State`, recount.
    pub decode: Duration,
    /// The byte-count recount the decode ends with (`State::recount_bytes`).
    pub recount: Duration,
    /// Replaying the (empty) tail after the snapshot.
    pub tail: Duration,
}

/// Builds the log, replays it, starts up from a snapshot.
///
/// # Errors
/// File-system, log or replay failures.
pub fn run(
    config: &ReplayBenchConfig,
    progress: &mut dyn Write,
) -> anyhow::Result<ReplayBenchReport> {
    let _ = std::fs::remove_dir_all(&config.dir);
    let log_dir = config.dir.join("log");
    writeln!(progress, "building a log of {} events", config.events)?;
    let started = Instant::now();
    let (final_state, log_id) = build(&log_dir, config.events)?;
    let build = started.elapsed();

    let reader = LogReader::open(&log_dir)?;
    scan(&reader)?; // warm the page cache and page tables
    let scan_figures = scan(&reader)?;
    writeln!(progress, "replaying")?;
    let one_thread = Pipeline {
        inline_records: u64::MAX,
        ..Pipeline::default()
    };
    // Untimed first: the first replay of a process page-faults its heap in, which the
    // figure timed first would otherwise carry alone.
    timed_replay(&reader, &final_state, Pipeline::default(), &scan_figures)?;
    let (replay_one_thread, _) = timed_replay(&reader, &final_state, one_thread, &scan_figures)?;
    let (replay, stats) = timed_replay(&reader, &final_state, Pipeline::default(), &scan_figures)?;

    let snapshot_dir = config.dir.join("snapshots");
    let path = crate::snapshots::write(&snapshot_dir, log_id, &final_state, stats.next_offset)?;
    let snapshot_bytes = std::fs::metadata(&path)?.len();
    let started = Instant::now();
    let loaded = crate::snapshots::load_newest(&snapshot_dir, log_id, stats.next_offset)
        .ok_or_else(|| anyhow::anyhow!("the snapshot just written did not load"))?;
    let mut state = loaded.state;
    replay_into(
        &mut state,
        reader.iter_from(loaded.next_offset.max(reader.first_offset()))?,
        Until::End,
        |_, _| {},
    )?;
    let startup_from_snapshot = started.elapsed();
    anyhow::ensure!(
        state == final_state,
        "invariant: snapshot + tail equals the full replay"
    );
    drop(state);
    let startup_split = split_startup(&path, &reader, stats.next_offset)?;
    drop(reader);
    let _ = std::fs::remove_dir_all(&config.dir);
    Ok(ReplayBenchReport {
        events: stats.records,
        build,
        replay,
        replay_one_thread,
        scan: scan_figures,
        snapshot_bytes,
        startup_from_snapshot,
        startup_split,
    })
}

/// A full replay of `reader` into a fresh state with `pipeline`, checked against `expected`.
fn timed_replay(
    reader: &LogReader,
    expected: &State,
    pipeline: Pipeline,
    scan: &Throughput,
) -> anyhow::Result<(Throughput, ReplayStats)> {
    let mut state = State::new();
    let started = Instant::now();
    let stats = replay_into_with(
        &mut state,
        reader.iter_from(0)?,
        Until::End,
        pipeline,
        |_, _| {},
    )?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        state == *expected,
        "invariant: replayed state equals the state built live"
    );
    let figures = Throughput {
        records: stats.records,
        bytes: scan.bytes,
        elapsed,
    };
    Ok((figures, stats))
}

/// Times the parts of a start-up from the snapshot at `path` one by one.
fn split_startup(
    path: &Path,
    reader: &LogReader,
    next_offset: u64,
) -> anyhow::Result<StartupSplit> {
    let started = Instant::now();
    let bytes = crate::snapshots::read(path)?;
    let read = started.elapsed();
    let started = Instant::now();
    std::hint::black_box(crc32fast::hash(&bytes));
    let crc = started.elapsed();
    let started = Instant::now();
    let (mut state, _) = relay_replay::snapshot_decode(&bytes)?;
    let decode = started.elapsed();
    let started = Instant::now();
    std::hint::black_box(state.recount_bytes());
    let recount = started.elapsed();
    let started = Instant::now();
    replay_into(
        &mut state,
        reader.iter_from(next_offset.max(reader.first_offset()))?,
        Until::End,
        |_, _| {},
    )?;
    let tail = started.elapsed();
    Ok(StartupSplit {
        read,
        crc,
        decode,
        recount,
        tail,
    })
}

/// A small deterministic generator (xorshift64*): reproducible mixes without a dependency.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }

    fn body(&mut self) -> String {
        let len = if self.below(100) == 0 {
            500 + self.below(64 * 1024 - 500)
        } else {
            50 + self.below(451)
        };
        "x".repeat(len as usize)
    }
}

fn peer(index: usize) -> String {
    format!("peer-{index:03}")
}

fn build(dir: &Path, events: u64) -> anyhow::Result<(State, u128)> {
    let config = LogConfig {
        durability: Durability::Os,
        payload_format_flags: RKYV_FORMAT_FLAGS,
        ..LogConfig::default()
    };
    let mut log = LogWriter::open(dir, config)?;
    let mut state = State::new();
    let mut mix = Mix(0x9e37_79b9_7f4a_7c15);
    let append = |state: &mut State, event: Event, log: &mut LogWriter| -> anyhow::Result<()> {
        let encoded = encode(&event);
        let timestamp_us = 1_700_000_000_000_000 + log.next_offset() * 1000;
        let offset = log.append(&NewRecord {
            timestamp_us,
            kind: encoded.kind,
            schema_version: encoded.schema_version,
            origin_hub: 1,
            payload: &encoded.payload,
        })?;
        apply(
            state,
            RecordMeta {
                offset,
                timestamp_us,
                origin_hub: 1,
            },
            &event,
        )?;
        Ok(())
    };
    for index in 0..BENCH_PEERS {
        let registered = IdentityRegistered {
            name: peer(index),
            cwd: format!("/src/project-{index}"),
            git_branch: Some("main".into()),
            client: ClientKind::Claude,
        };
        append(&mut state, registered.into(), &mut log)?;
    }
    for group in 0..BENCH_GROUPS {
        let name = format!("group-{group}");
        let admin = peer(group);
        append(
            &mut state,
            GroupCreated {
                group: name.clone(),
                admin: admin.clone(),
            }
            .into(),
            &mut log,
        )?;
        for member in
            (0..BENCH_PEERS).filter(|member| member % BENCH_GROUPS == group && *member != group)
        {
            let invited = GroupMemberInvited {
                group: name.clone(),
                actor: admin.clone(),
                member: peer(member),
            };
            append(&mut state, invited.into(), &mut log)?;
        }
    }
    while log.next_offset() < events {
        let from = mix.below(BENCH_PEERS as u64) as usize;
        let to = (from + 1 + mix.below(BENCH_PEERS as u64 - 1) as usize) % BENCH_PEERS;
        let roll = mix.below(100);
        let event: Event = if roll < 40 {
            MessageSent {
                id: format!("m-{}", log.next_offset()),
                from: peer(from),
                to: peer(to),
                body: mix.body(),
                reply_to: None,
                urgent: false,
                thread: None,
            }
            .into()
        } else if roll < 55 {
            let recipient = state
                .identity_by_name(&peer(to))
                .map(|identity| identity.id);
            let last = recipient
                .and_then(|id| state.mailbox(id))
                .and_then(|mailbox| {
                    mailbox
                        .messages()
                        .last()
                        .map(|message| message.id().into_owned())
                });
            match last {
                Some(message_id) => MessagePushed {
                    recipient: peer(to),
                    message_id,
                }
                .into(),
                None => continue,
            }
        } else if roll < 75 {
            let recipient = state
                .identity_by_name(&peer(to))
                .map(|identity| identity.id);
            let last_sequence = recipient
                .and_then(|id| state.mailbox(id))
                .map_or(0, |mailbox| mailbox.last_sequence());
            MailboxCursorAdvanced {
                recipient: peer(to),
                up_to_sequence: last_sequence,
            }
            .into()
        } else if roll < 88 {
            let group = format!("group-{}", from % BENCH_GROUPS);
            GroupMessageSent {
                group,
                id: format!("g-{}", log.next_offset()),
                from: peer(from),
                body: mix.body(),
                reply_to: None,
                urgent: false,
            }
            .into()
        } else if roll < 94 {
            let group_name = format!("group-{}", from % BENCH_GROUPS);
            let last_sequence = state
                .group(&group_name)
                .map_or(0, |group| group.last_sequence());
            GroupCursorAdvanced {
                group: group_name,
                member: peer(from),
                up_to_sequence: last_sequence,
            }
            .into()
        } else if roll < 97 {
            AskSent {
                id: format!("m-{}", log.next_offset()),
                ask_id: format!("a-{}", log.next_offset()),
                from: peer(from),
                to: peer(to),
                body: mix.body(),
                broadcast_id: None,
                urgent: false,
                thread: None,
            }
            .into()
        } else {
            let Some(ask) = state.asks().all_pending().next() else {
                continue;
            };
            let (asker, target, ask_id) = (ask.asker, ask.target, ask.ask_id.clone());
            let name = |id| {
                state
                    .identity(id)
                    .map(|identity| identity.name().to_owned())
                    .unwrap_or_default()
            };
            ReplySent {
                id: format!("m-{}", log.next_offset()),
                from: name(target),
                to: name(asker),
                body: mix.body(),
                reply_to: ask_id,
                urgent: false,
                thread: None,
            }
            .into()
        };
        append(&mut state, event, &mut log)?;
    }
    let log_id = log.log_id();
    log.close()?;
    Ok((state, log_id))
}

impl fmt::Display for ReplayBenchReport {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            out,
            "replay of {} mixed events ({:.2} GiB of records; built in {:.1} s)",
            self.events,
            self.scan.bytes as f64 / (1u64 << 30) as f64,
            self.build.as_secs_f64()
        )?;
        writeln!(
            out,
            "  full replay       {:>12.0} events/s {:>8.2} GB/s",
            self.replay.records_per_second(),
            self.replay.bytes_per_second() / 1e9
        )?;
        writeln!(
            out,
            "    on one thread   {:>12.0} events/s {:>8.2} GB/s  (no decoding thread: {:.2} x)",
            self.replay_one_thread.records_per_second(),
            self.replay_one_thread.bytes_per_second() / 1e9,
            self.replay.records_per_second()
                / self.replay_one_thread.records_per_second().max(1e-9)
        )?;
        writeln!(
            out,
            "  raw log scan      {:>12.0} records/s {:>7.2} GB/s  (CRC verified, same log)",
            self.scan.records_per_second(),
            self.scan.bytes_per_second() / 1e9
        )?;
        let ratio = self.replay.records_per_second() / self.scan.records_per_second().max(1e-9);
        writeln!(out, "  ratio replay/scan {ratio:>12.3}   (target >= 0.50)")?;
        writeln!(
            out,
            "  start-up from snapshot {:>8.1} ms  ({} bytes; target < 100 ms)",
            self.startup_from_snapshot.as_secs_f64() * 1e3,
            self.snapshot_bytes
        )?;
        let split = &self.startup_split;
        let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
        writeln!(
            out,
            "    split: read {:.1} ms, decode {:.1} ms (of it CRC {:.1} ms, recount {:.1} ms), tail {:.1} ms",
            ms(split.read),
            ms(split.decode),
            ms(split.crc),
            ms(split.recount),
            ms(split.tail)
        )
    }
}
