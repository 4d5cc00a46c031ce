//! Failure paths through the storage seam ([`relay_log::storage::FaultyStorage`]): a failed
//! sync poisons the writer, a full disk is `NoSpace` and leaves the writer usable, a failed
//! roll or directory sync stops writes, and every case is followed by a reopen on real
//! storage that must hold every committed record (issue 10).

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{payload_for, record, small_config};
use relay_log::limits::SEGMENT_BYTES_MIN;
use relay_log::storage::{FaultyStorage, StorageCall};
use relay_log::{LogWriter, OpenError, WriteError};

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

fn open_faulty(dir: &Path) -> (LogWriter, Arc<FaultyStorage>) {
    let storage = Arc::new(FaultyStorage::new());
    let log = LogWriter::open_with_storage(dir, small_config(SEGMENT_BYTES_MIN), storage.clone())
        .expect("open");
    (log, storage)
}

fn append_committed(log: &mut LogWriter, count: u64) {
    for _ in 0..count {
        let offset = log.next_offset();
        log.append(&record(&payload_for(offset, 11)))
            .expect("append");
    }
    log.commit().expect("commit");
}

/// Reopens on real storage and checks that every record below `committed` reads back.
fn assert_reopen_keeps(dir: &Path, committed: u64) {
    let log = LogWriter::open(dir, small_config(SEGMENT_BYTES_MIN)).expect("reopen");
    assert!(
        log.next_offset() >= committed,
        "lost committed records: {} < {committed}",
        log.next_offset()
    );
    for offset in 0..committed {
        let read = log.read(offset).expect("committed record");
        assert_eq!(
            read.payload,
            payload_for(offset, 11).as_slice(),
            "offset {offset}"
        );
    }
    let report = log.verify().expect("verify");
    assert_eq!(report.record_count, log.next_offset());
}

#[test]
fn a_failed_sync_poisons_the_writer_and_a_reopen_keeps_every_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, storage) = open_faulty(dir.path());
    append_committed(&mut log, 10);
    storage.fail(StorageCall::SyncRange, EIO);
    log.append(&record(b"unacknowledged")).expect("append");
    assert!(matches!(log.commit(), Err(WriteError::Io { .. })));
    assert!(log.is_poisoned());
    assert!(matches!(
        log.append(&record(b"refused")),
        Err(WriteError::Poisoned)
    ));
    assert!(matches!(log.commit(), Err(WriteError::Poisoned)));
    assert_eq!(storage.failures(StorageCall::SyncRange), 1);
    drop(log);
    assert_reopen_keeps(dir.path(), 10);
}

#[test]
fn a_failed_pipelined_sync_poisons_the_writer_and_commits_nothing_it_covered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, storage) = open_faulty(dir.path());
    append_committed(&mut log, 10);
    log.append(&record(b"in flight")).expect("append");
    let pending = log.begin_commit().expect("begin").expect("a sync to run");
    assert_eq!(pending.upto(), 11);
    // The writer goes on appending while the sync runs elsewhere.
    log.append(&record(b"after the begin")).expect("append");
    assert!(log.commit_in_flight());
    assert!(
        log.begin_commit().expect("begin").is_none(),
        "one sync at a time"
    );
    storage.fail(StorageCall::SyncRange, EIO);
    let outcome = std::thread::spawn(move || pending.run())
        .join()
        .expect("sync thread");
    assert!(matches!(
        log.finish_commit(outcome),
        Err(WriteError::Io { .. })
    ));
    assert!(log.is_poisoned());
    assert_eq!(log.committed_offset(), 10);
    assert!(matches!(log.begin_commit(), Err(WriteError::Poisoned)));
    drop(log);
    assert_reopen_keeps(dir.path(), 10);
}

#[test]
fn no_space_at_a_roll_is_reported_and_appending_resumes_when_space_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, storage) = open_faulty(dir.path());
    append_committed(&mut log, 3);
    storage.fail(StorageCall::Reserve, ENOSPC);
    // Append until the segment is full and the roll needs space.
    let error = loop {
        let offset = log.next_offset();
        assert!(offset < 1000, "the segment never filled");
        match log.append(&record(&payload_for(offset, 11))) {
            Ok(_) => {}
            Err(error) => break error,
        }
    };
    assert!(
        matches!(error, WriteError::NoSpace { .. }),
        "expected NoSpace, got {error}"
    );
    assert!(!log.is_poisoned());
    assert_eq!(log.segments().len(), 1, "no half-made segment is kept");
    assert_eq!(
        std::fs::read_dir(dir.path())
            .expect("dir")
            .filter(|entry| {
                entry
                    .as_ref()
                    .is_ok_and(|entry| entry.path().extension().is_some_and(|ext| ext == "seg"))
            })
            .count(),
        1
    );
    // What was appended before the full disk still commits and reads.
    log.commit().expect("commit before the roll");
    let committed = log.next_offset();
    assert_eq!(
        log.read(0).expect("read").payload,
        payload_for(0, 11).as_slice()
    );
    // Space returns: the same append succeeds and rolls.
    storage.clear();
    append_committed(&mut log, 5);
    assert_eq!(log.segments().len(), 2);
    let committed_after = log.next_offset();
    assert!(committed_after == committed + 5);
    drop(log);
    assert_reopen_keeps(dir.path(), committed_after);
}

#[test]
fn no_space_growing_an_empty_segment_leaves_the_writer_usable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, storage) = open_faulty(dir.path());
    storage.fail(StorageCall::Reserve, ENOSPC);
    // A record larger than the segment makes the empty active segment grow.
    let big = vec![9u8; 2 * SEGMENT_BYTES_MIN as usize];
    assert!(matches!(
        log.append(&record(&big)),
        Err(WriteError::NoSpace { .. })
    ));
    assert!(!log.is_poisoned());
    storage.clear();
    log.append(&record(&big))
        .expect("append once space returns");
    log.commit().expect("commit");
    assert_eq!(log.read(0).expect("read").payload, big.as_slice());
}

#[test]
fn a_failed_directory_sync_at_a_roll_poisons_and_a_reopen_keeps_every_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, storage) = open_faulty(dir.path());
    append_committed(&mut log, 4);
    let committed = log.next_offset();
    storage.fail(StorageCall::SyncDir, EIO);
    let error = loop {
        let offset = log.next_offset();
        assert!(offset < 1000, "the log never rolled");
        if let Err(error) = log.append(&record(&payload_for(offset, 11))) {
            break error;
        }
    };
    assert!(matches!(error, WriteError::Io { .. }), "{error}");
    assert!(log.is_poisoned());
    assert!(matches!(log.commit(), Err(WriteError::Poisoned)));
    drop(log);
    assert_reopen_keeps(dir.path(), committed);
}

#[test]
fn a_failed_map_at_a_roll_removes_the_new_file_and_a_later_roll_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, storage) = open_faulty(dir.path());
    append_committed(&mut log, 2);
    storage.fail(StorageCall::Map, EIO);
    let error = loop {
        let offset = log.next_offset();
        assert!(offset < 1000, "the log never rolled");
        if let Err(error) = log.append(&record(&payload_for(offset, 11))) {
            break error;
        }
    };
    assert!(matches!(error, WriteError::Io { .. }), "{error}");
    // Nothing was synced or lost: the writer is not poisoned and may roll again.
    assert!(!log.is_poisoned());
    storage.clear();
    append_committed(&mut log, 3);
    assert_eq!(log.segments().len(), 2);
    let committed = log.next_offset();
    drop(log);
    assert_reopen_keeps(dir.path(), committed);
}

#[test]
fn a_failed_checkpoint_write_poisons_and_a_reopen_keeps_every_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, storage) = open_faulty(dir.path());
    append_committed(&mut log, 7);
    storage.fail(StorageCall::WriteCheckpoint, EIO);
    assert!(matches!(log.sync(), Err(WriteError::Io { .. })));
    assert!(log.is_poisoned());
    drop(log);
    assert_reopen_keeps(dir.path(), 7);
}

#[test]
fn a_failed_sync_during_recovery_refuses_the_open_and_a_retry_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = open_faulty(dir.path());
    append_committed(&mut log, 6);
    // A crash: committed records above the checkpoint, the checkpoint not advanced.
    drop(log);
    let storage = Arc::new(FaultyStorage::new());
    storage.fail(StorageCall::SyncFile, EIO);
    let opened =
        LogWriter::open_with_storage(dir.path(), small_config(SEGMENT_BYTES_MIN), storage.clone());
    assert!(
        matches!(opened, Err(OpenError::Io { .. })),
        "{:?}",
        opened.map(|log| log.next_offset())
    );
    assert_eq!(storage.failures(StorageCall::SyncFile), 1);
    assert_reopen_keeps(dir.path(), 6);
}

#[test]
fn reserve_append_reports_no_space_before_anything_is_appended_and_the_append_then_fits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, storage) = open_faulty(dir.path());
    let payload = payload_for(0, 11);
    // Fill the first segment to the last record that fits without a roll.
    loop {
        let segments = log.segments().len();
        log.reserve_append(payload.len()).expect("room");
        if log.segments().len() > segments {
            break;
        }
        log.append(&record(&payload)).expect("append");
    }
    // That reservation rolled; fill the new segment too, then make the next roll fail.
    let rolled_at = log.next_offset();
    storage.fail(StorageCall::Reserve, ENOSPC);
    let error = loop {
        match log.reserve_append(payload.len()) {
            Ok(()) => {
                log.append(&record(&payload))
                    .expect("a reserved append fits");
            }
            Err(error) => break error,
        }
        assert!(
            log.next_offset() < rolled_at + 1000,
            "the segment never filled"
        );
    };
    assert!(matches!(error, WriteError::NoSpace { .. }), "got {error}");
    assert!(!log.is_poisoned());
    let before = log.next_offset();
    assert_eq!(log.segments().len(), 2, "no half-made segment is kept");
    storage.clear();
    log.reserve_append(payload.len()).expect("space returned");
    assert_eq!(log.segments().len(), 3, "the reservation rolled");
    assert_eq!(log.next_offset(), before, "a reservation appends nothing");
    log.append(&record(&payload)).expect("append");
    log.commit().expect("commit");
    assert!(matches!(
        log.reserve_append(relay_log::limits::RECORD_PAYLOAD_BYTES_MAX + 1),
        Err(WriteError::PayloadTooLarge { .. })
    ));
}

/// The room a batch of the hub counts on (`src/hub/commands/batch.rs`): after
/// `reserve_append(n)`, records whose sizes add up to `record_bytes(n)` take no new disk
/// space, whichever sizes they have. The disk is full from the reservation on, so any roll or
/// growth would fail; the region is used to its last byte, and only the record after it
/// meets the full disk.
#[test]
fn records_adding_up_to_one_reserved_record_take_no_new_disk_space() {
    use relay_log::format::{RECORD_HEADER_BYTES, record_bytes};
    const REGION_BYTES: u64 = 64 << 10;
    let header = RECORD_HEADER_BYTES as u64;
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, storage) = open_faulty(dir.path());
    append_committed(&mut log, 3);
    let segments = log.segments().len();
    log.reserve_append((REGION_BYTES - header) as usize)
        .expect("room reserved");
    assert!(log.segments().len() > segments, "the small segment rolled");
    storage.fail(StorageCall::Reserve, ENOSPC);
    let mut used = 0;
    // Lengths of every padding remainder; the last record takes what is left exactly.
    for len in (0..).map(|index| (index * 37) % 700) {
        let left = REGION_BYTES - used;
        let len = if record_bytes(len) + header > left {
            (left - header) as usize
        } else {
            len
        };
        log.append(&record(&vec![0x42; len]))
            .expect("fits the reserved room");
        used += record_bytes(len);
        if used == REGION_BYTES {
            break;
        }
    }
    log.commit().expect("commit");
    assert_eq!(
        storage.failures(StorageCall::Reserve),
        0,
        "no reservation was made"
    );
    let next = log.next_offset();
    let one_more = log.append(&record(&[]));
    assert!(
        matches!(one_more, Err(WriteError::NoSpace { .. })),
        "{one_more:?}"
    );
    drop(log);
    let reopened = LogWriter::open(dir.path(), small_config(SEGMENT_BYTES_MIN)).expect("reopen");
    assert_eq!(reopened.next_offset(), next);
}
