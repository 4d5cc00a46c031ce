//! Property tests of a crash model.
//!
//! A log is driven by random appends, commits and (through small segments) rolls. Right
//! after the last commit the directory is copied: that copy is what the disk is guaranteed
//! to hold. More records are then appended without a commit. A crash image is built from the
//! two states the way a power cut can leave them (files cut at any byte past the last
//! commit, random bytes past it zeroed or flipped, random unsynced pages dropped), and the
//! log is reopened on it. Every committed record must be there, byte-identical and in order;
//! whatever else survives must be a prefix of what was appended; new appends continue the
//! offsets. Damage in unacknowledged records that later records survive (pages written back
//! out of order) may instead refuse the open as corruption; a repair then keeps every
//! committed record. A second property flips a byte of acknowledged data and expects an error
//! naming the segment and the offset, never a silent cut, also above the checkpoint when a
//! valid record follows. A third runs two writer sessions over a model of the disk
//! ([`common::DiskModel`]): a process crash with a torn batch, a reopen, more commits, then a
//! power cut that keeps only what was synced (issue 10: recovery must sync what it keeps).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use std::sync::Arc;

use common::{DiskModel, record, record_spans, segment_names, small_config};
use proptest::prelude::*;
use relay_log::{LogConfig, LogReader, LogWriter, OpenError, ReadError};

const PAGE_BYTES: usize = 4096;

#[derive(Clone, Debug)]
enum Operation {
    Append { payload_len: usize, count: usize },
    Commit,
}

#[derive(Clone, Debug)]
enum Damage {
    /// Cut a file changed since the commit at a byte at or past the committed end.
    Truncate { file_pick: usize, at: usize },
    /// Zero a byte range past the committed end.
    Zero {
        file_pick: usize,
        at: usize,
        len: usize,
    },
    /// Flip bytes past the committed end.
    Flip {
        file_pick: usize,
        at: usize,
        mask: u8,
    },
    /// Keep each unsynced page or roll it back to its synced content, by a bit mask.
    DropPages { seed: u64 },
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        4 => (0usize..700, 1usize..6).prop_map(|(payload_len, count)| Operation::Append { payload_len, count }),
        1 => Just(Operation::Commit),
    ]
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), any::<usize>())
            .prop_map(|(file_pick, at)| Damage::Truncate { file_pick, at }),
        (any::<usize>(), any::<usize>(), 1usize..200)
            .prop_map(|(file_pick, at, len)| Damage::Zero { file_pick, at, len }),
        (any::<usize>(), any::<usize>(), 1u8..=255).prop_map(|(file_pick, at, mask)| {
            Damage::Flip {
                file_pick,
                at,
                mask,
            }
        }),
        any::<u64>().prop_map(|seed| Damage::DropPages { seed }),
    ]
}

type Image = BTreeMap<String, Vec<u8>>;

fn read_image(dir: &Path) -> Image {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            let entry = entry.expect("entry");
            let name = entry.file_name().into_string().expect("utf-8 name");
            (name, std::fs::read(entry.path()).expect("read"))
        })
        .collect()
}

fn write_image(dir: &Path, image: &Image) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        std::fs::remove_file(entry.expect("entry").path()).expect("remove");
    }
    for (name, bytes) in image {
        std::fs::write(dir.join(name), bytes).expect("write");
    }
}

/// Byte position where the committed data of a segment ends (0 for a file the commit did
/// not know: all of it may be lost but its synced header).
fn committed_end(synced: &Image, name: &str) -> usize {
    synced.get(name).map_or(64, |bytes| {
        record_spans(bytes).last().map_or(64, |span| span.1)
    })
}

fn crash_image(synced: &Image, current: &Image, damage: &Damage) -> Image {
    let mut image = current.clone();
    // Index files are never synced: any of them may be missing or stale.
    let changed: Vec<String> = current
        .iter()
        .filter(|(name, bytes)| name.ends_with(".seg") && synced.get(*name) != Some(*bytes))
        .map(|(name, _)| name.clone())
        .collect();
    match damage {
        Damage::DropPages { seed } => {
            let mut bits = *seed;
            for name in &changed {
                let bytes = image.get_mut(name).expect("present");
                let old = synced.get(name).cloned().unwrap_or_else(|| {
                    let mut fresh = vec![0u8; bytes.len()];
                    fresh[..64].copy_from_slice(&bytes[..64]);
                    fresh
                });
                for page in 0..bytes.len().div_ceil(PAGE_BYTES) {
                    bits = bits.rotate_left(7) ^ 0x9e37_79b9_7f4a_7c15;
                    if bits & 1 == 1 {
                        let range = page * PAGE_BYTES..((page + 1) * PAGE_BYTES).min(bytes.len());
                        let old_end = range.end.min(old.len());
                        if range.start < old_end {
                            bytes[range.start..old_end].copy_from_slice(&old[range.start..old_end]);
                        }
                    }
                }
            }
        }
        Damage::Truncate { file_pick, at }
        | Damage::Zero { file_pick, at, .. }
        | Damage::Flip { file_pick, at, .. } => {
            if changed.is_empty() {
                return image;
            }
            let name = &changed[file_pick % changed.len()];
            let end = committed_end(synced, name);
            let bytes = image.get_mut(name).expect("present");
            if bytes.len() <= end {
                return image;
            }
            let at = end + at % (bytes.len() - end);
            match damage {
                Damage::Truncate { .. } => bytes.truncate(at),
                Damage::Zero { len, .. } => {
                    let stop = (at + len).min(bytes.len());
                    bytes[at..stop].fill(0);
                }
                Damage::Flip { mask, .. } => bytes[at] ^= mask,
                Damage::DropPages { .. } => unreachable!("handled above"),
            }
        }
    }
    image
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn committed_records_survive_any_crash_past_the_last_commit(
        operations in prop::collection::vec(operation(), 1..40),
        damage in damage(),
        segment_kib in 4u64..12,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = small_config(segment_kib * 1024);
        let mut log = LogWriter::open(dir.path(), config.clone()).expect("open");
        let mut appended: Vec<Vec<u8>> = Vec::new();
        let mut committed = 0usize;
        let mut synced = read_image(dir.path());
        for operation in &operations {
            match operation {
                Operation::Append { payload_len, count } => {
                    for _ in 0..*count {
                        let offset = appended.len() as u64;
                        let payload = common::payload_for(offset, *payload_len as u64);
                        log.append(&record(&payload)).expect("append");
                        appended.push(payload);
                    }
                }
                Operation::Commit => {
                    log.commit().expect("commit");
                    committed = appended.len();
                    synced = read_image(dir.path());
                }
            }
        }
        let current = read_image(dir.path());
        drop(log);
        write_image(dir.path(), &crash_image(&synced, &current, &damage));

        let mut log = match LogWriter::open(dir.path(), config.clone()) {
            Ok(log) => log,
            Err(OpenError::Corrupt(corruption)) => {
                // Only damage that a later valid record follows may refuse the open, and only
                // in records that were never committed; a repair loses nothing committed.
                prop_assert!(corruption.followed_by.is_some(), "{corruption}");
                prop_assert!(corruption.offset >= committed as u64, "{corruption}");
                let repair = LogConfig { repair: true, ..config.clone() };
                LogWriter::open(dir.path(), repair).expect("repair after crash")
            }
            Err(other) => return Err(TestCaseError::fail(format!("reopen after crash: {other}"))),
        };
        let recovered: Vec<(u64, Vec<u8>)> = log
            .iter_from(0)
            .expect("iter")
            .map(|record| record.map(|record| (record.offset, record.payload.to_vec())).expect("no corruption"))
            .collect();
        prop_assert!(recovered.len() >= committed, "lost committed records: {} < {committed}", recovered.len());
        prop_assert!(recovered.len() <= appended.len());
        for (index, (offset, payload)) in recovered.iter().enumerate() {
            prop_assert_eq!(*offset, index as u64);
            prop_assert_eq!(payload, &appended[index]);
        }
        prop_assert_eq!(log.next_offset(), recovered.len() as u64);
        let next = log.append(&record(b"after the crash")).expect("append after crash");
        prop_assert_eq!(next, recovered.len() as u64);
        log.commit().expect("commit");
        prop_assert_eq!(log.verify().expect("verify").record_count, recovered.len() as u64 + 1);
        drop(log);
        // Running recovery again changes nothing.
        let log = LogWriter::open(dir.path(), config).expect("third open");
        prop_assert_eq!(log.recovery_report().cut.clone(), None);
        prop_assert_eq!(log.next_offset(), recovered.len() as u64 + 1);
    }

    #[test]
    fn a_flipped_byte_in_acknowledged_data_is_named_never_cut(
        record_count in 1u64..120,
        pick in any::<usize>(),
        mask in 1u8..=255,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = small_config(4096);
        let mut log = LogWriter::open(dir.path(), config.clone()).expect("open");
        for offset in 0..record_count {
            log.append(&record(&common::payload_for(offset, 9))).expect("append");
        }
        log.close().expect("close");

        // Pick a byte inside the data region of some segment: a header or a record.
        let segments = segment_names(dir.path());
        let (base, name) = &segments[pick % segments.len()];
        let path = dir.path().join(name);
        let mut bytes = std::fs::read(&path).expect("read");
        let spans = record_spans(&bytes);
        let data_end = spans.last().map_or(64, |span| span.1);
        let at = (pick / segments.len()) % data_end;
        let expected_offset = if at < 64 {
            *base
        } else {
            base + spans.iter().position(|span| span.0 <= at && at < span.1).expect("in a record") as u64
        };
        bytes[at] ^= mask;
        std::fs::write(&path, &bytes).expect("write");

        let named = |segment: &Path, offset: u64| segment == path && offset == expected_offset;
        match LogWriter::open(dir.path(), config.clone()) {
            Err(OpenError::Corrupt(corruption)) => {
                prop_assert!(named(&corruption.segment, corruption.offset), "{corruption}");
            }
            Err(other) => prop_assert!(false, "unexpected open error {other}"),
            Ok(log) => {
                let corruption = log.verify().expect_err("verify must fail");
                prop_assert!(named(&corruption.segment, corruption.offset), "{corruption}");
                prop_assert_eq!(log.next_offset(), record_count, "nothing may be cut");
                if at >= 64 {
                    prop_assert!(matches!(log.read(expected_offset), Err(ReadError::Corrupt(_))));
                }
            }
        }
        let reader = LogReader::open(dir.path());
        let corruption = match reader {
            Err(OpenError::Corrupt(corruption)) => corruption,
            Ok(reader) => reader.verify().expect_err("reader verify must fail"),
            Err(other) => return Err(TestCaseError::fail(format!("unexpected reader error {other}"))),
        };
        prop_assert!(named(&corruption.segment, corruption.offset), "{corruption}");
    }

    #[test]
    fn a_flipped_byte_above_the_checkpoint_followed_by_valid_records_is_named_never_cut(
        durable_count in 1u64..40,
        committed_count in 2u64..40,
        pick in any::<usize>(),
        mask in 1u8..=255,
    ) {
        // The checkpoint lags the commits (it moves every CHECKPOINT_INTERVAL_RECORDS), so
        // committed records above it are acknowledged but not covered: issue 10's case.
        let dir = tempfile::tempdir().expect("tempdir");
        let config = small_config(1 << 20);
        let mut log = LogWriter::open(dir.path(), config.clone()).expect("open");
        for offset in 0..durable_count {
            log.append(&record(&common::payload_for(offset, 3))).expect("append");
        }
        log.close().expect("close");
        let mut log = LogWriter::open(dir.path(), config.clone()).expect("reopen");
        for offset in durable_count..durable_count + committed_count {
            log.append(&record(&common::payload_for(offset, 3))).expect("append");
            log.commit().expect("commit");
        }
        prop_assert_eq!(log.durable_offset(), durable_count, "the checkpoint must lag");
        drop(log);

        // Damage any byte of a committed record above the checkpoint but the last one.
        let (_, name) = segment_names(dir.path()).pop().expect("one segment");
        let path = dir.path().join(&name);
        let mut bytes = std::fs::read(&path).expect("read");
        let spans = record_spans(&bytes);
        let damaged = durable_count + (pick as u64 % (committed_count - 1));
        let (start, end) = spans[damaged as usize];
        bytes[start + (pick / 64) % (end - start)] ^= mask;
        std::fs::write(&path, &bytes).expect("write");

        let named = |corruption: &relay_log::Corruption| {
            corruption.segment == path && corruption.offset == damaged
                && corruption.followed_by.is_some()
        };
        match LogWriter::open(dir.path(), config.clone()) {
            Err(error @ OpenError::Corrupt(_)) => {
                prop_assert!(error.to_string().contains("relay log repair"), "{error}");
                let OpenError::Corrupt(corruption) = error else { unreachable!("matched") };
                prop_assert!(named(&corruption), "{corruption}");
            }
            other => prop_assert!(false, "expected corruption, got {other:?}"),
        }
        let reader = LogReader::open(dir.path()).expect("reader");
        let corruption = reader.verify().expect_err("verify must fail");
        prop_assert!(named(&corruption), "{corruption}");
        // A repair still cuts at the first damage.
        let repair = LogConfig { repair: true, ..config };
        let log = LogWriter::open(dir.path(), repair).expect("repair");
        prop_assert_eq!(log.next_offset(), damaged);
    }

    #[test]
    fn a_power_cut_after_crash_reopen_and_commit_loses_nothing_committed(
        first in prop::collection::vec(operation(), 1..30),
        torn_batch in (1usize..6, 0usize..700, any::<usize>()),
        second in prop::collection::vec(operation(), 0..30),
        segment_kib in 4u64..12,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = small_config(segment_kib * 1024);
        let disk = Arc::new(DiskModel::default());
        let mut appended: Vec<Vec<u8>> = Vec::new();

        // Session 1: appends and commits, then a batch torn by a process crash.
        let mut log = LogWriter::open_with_storage(dir.path(), config.clone(), disk.clone())
            .expect("open");
        run_operations(&mut log, &first, &mut appended);
        let (count, payload_len, tear) = torn_batch;
        let batch_first = appended.len() as u64;
        let payloads: Vec<Vec<u8>> = (0..count as u64)
            .map(|index| common::payload_for(batch_first + index, payload_len as u64))
            .collect();
        log.append_batch(payloads.iter().map(|payload| record(payload))).expect("batch");
        appended.extend(payloads);
        drop(log);
        tear_batch(dir.path(), batch_first, tear);

        // Session 2: reopen on the page cache (the process died, the machine did not), commit.
        let mut log = LogWriter::open_with_storage(dir.path(), config.clone(), disk.clone())
            .expect("reopen after the process crash");
        appended.truncate(log.next_offset() as usize);
        run_operations(&mut log, &second, &mut appended);
        log.append(&record(&common::payload_for(appended.len() as u64, 1))).expect("append");
        appended.push(common::payload_for(appended.len() as u64, 1));
        log.commit().expect("commit");
        let committed = log.committed_offset();
        drop(log);

        // Power cut: only what was synced is left.
        power_cut_keeps(dir.path(), &disk, config, committed, &appended)?;
    }
}

/// Appends `count` records of `payload_len` bytes in one batch and remembers their payloads.
fn append_payloads(
    log: &mut LogWriter,
    payload_len: usize,
    count: usize,
    appended: &mut Vec<Vec<u8>>,
) {
    let first = appended.len() as u64;
    let payloads: Vec<Vec<u8>> = (0..count as u64)
        .map(|index| common::payload_for(first + index, payload_len as u64))
        .collect();
    log.append_batch(payloads.iter().map(|payload| record(payload)))
        .expect("append");
    appended.extend(payloads);
}

fn run_operations(log: &mut LogWriter, operations: &[Operation], appended: &mut Vec<Vec<u8>>) {
    for operation in operations {
        match operation {
            Operation::Append { payload_len, count } => {
                append_payloads(log, *payload_len, *count, appended);
            }
            Operation::Commit => log.commit().expect("commit"),
        }
    }
}

/// A process crash in the middle of a batch: the batch's records in the last segment are
/// kept up to a byte chosen by `tear`, the rest of them never reached the page cache.
fn tear_batch(dir: &Path, batch_first: u64, tear: usize) {
    let (base, name) = segment_names(dir).pop().expect("a segment");
    let path = dir.join(name);
    let mut bytes = std::fs::read(&path).expect("read");
    let spans = record_spans(&bytes);
    let Some(&(_, end)) = spans.last() else {
        return;
    };
    let start = batch_first
        .checked_sub(base)
        .and_then(|index| spans.get(index as usize))
        .map_or(64, |span| span.0);
    if end <= start {
        return;
    }
    let at = start + tear % (end - start);
    bytes[at..end].fill(0);
    std::fs::write(&path, &bytes).expect("write");
}

/// A step of a writer that commits through a sync run elsewhere (pipelined group commit).
#[derive(Clone, Debug)]
enum PipelinedStep {
    Append {
        payload_len: usize,
        count: usize,
    },
    /// `begin_commit`, keeping the sync for later.
    Begin,
    /// Runs the sync held (if any) and hands its outcome back.
    Finish,
    /// A plain `commit` while a sync may be in flight.
    Commit,
}

fn pipelined_step() -> impl Strategy<Value = PipelinedStep> {
    prop_oneof![
        4 => (0usize..700, 1usize..6).prop_map(|(payload_len, count)| PipelinedStep::Append { payload_len, count }),
        2 => Just(PipelinedStep::Begin),
        2 => Just(PipelinedStep::Finish),
        1 => Just(PipelinedStep::Commit),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Issue 14: a sync that runs on another thread while the writer appends. Whatever the
    /// interleaving, a power cut keeps every record the writer called committed, and a sync
    /// still in flight at the crash (never run) claims nothing.
    #[test]
    fn a_power_cut_keeps_what_pipelined_commits_claimed(
        steps in prop::collection::vec(pipelined_step(), 1..60),
        segment_kib in 4u64..12,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = small_config(segment_kib * 1024);
        let disk = Arc::new(DiskModel::default());
        let mut log = LogWriter::open_with_storage(dir.path(), config.clone(), disk.clone())
            .expect("open");
        let mut appended: Vec<Vec<u8>> = Vec::new();
        let mut held = None;
        let mut claimed = 0;
        for step in &steps {
            match step {
                PipelinedStep::Append { payload_len, count } => {
                    append_payloads(&mut log, *payload_len, *count, &mut appended);
                }
                PipelinedStep::Begin => {
                    let begun = log.begin_commit().expect("begin");
                    prop_assert!(begun.is_none() || held.is_none(), "two syncs in flight");
                    if let Some(pending) = begun {
                        prop_assert_eq!(pending.upto(), log.next_offset());
                        held = Some(pending);
                    }
                }
                PipelinedStep::Finish => {
                    if let Some(pending) = held.take() {
                        let upto = pending.upto();
                        log.finish_commit(pending.run()).expect("finish");
                        prop_assert!(log.committed_offset() >= upto);
                    }
                }
                PipelinedStep::Commit => log.commit().expect("commit"),
            }
            prop_assert_eq!(log.commit_in_flight(), held.is_some());
            prop_assert!(log.committed_offset() >= claimed, "the committed offset went back");
            claimed = log.committed_offset();
        }
        // The process dies with the held sync never run; then the power goes.
        drop(held);
        drop(log);
        power_cut_keeps(dir.path(), &disk, config, claimed, &appended)?;
    }
}

/// Writes what a power cut leaves of `disk` into `dir`, reopens, and checks that at least the
/// `committed` records are there and that every record read is the one appended there.
fn power_cut_keeps(
    dir: &Path,
    disk: &DiskModel,
    config: LogConfig,
    committed: u64,
    appended: &[Vec<u8>],
) -> Result<(), TestCaseError> {
    write_image(dir, &disk.power_cut_image(dir));
    let log = LogWriter::open(dir, config)
        .map_err(|error| TestCaseError::fail(format!("open after the power cut: {error}")))?;
    let recovered: Vec<(u64, Vec<u8>)> = log
        .iter_from(0)
        .expect("iter")
        .map(|record| {
            record
                .map(|record| (record.offset, record.payload.to_vec()))
                .expect("no corruption")
        })
        .collect();
    prop_assert!(
        recovered.len() as u64 >= committed,
        "lost committed records: {} < {committed}",
        recovered.len()
    );
    for (index, (offset, payload)) in recovered.iter().enumerate() {
        prop_assert_eq!(*offset, index as u64);
        prop_assert_eq!(payload, &appended[index]);
    }
    Ok(())
}
