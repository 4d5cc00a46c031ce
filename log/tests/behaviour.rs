//! Behaviour of the log through its public API: append, read, iterate, roll, reopen,
//! lock, retention, limits, recovery reports.

mod common;

use common::{payload_for, record, segment_names, small_config};
use relay_log::limits::{RECORD_PAYLOAD_BYTES_MAX, SEGMENT_BYTES_MIN};
use relay_log::{LogConfig, LogReader, LogWriter, OpenError, ReadError, WriteError};

#[test]
fn appended_records_read_back_after_reopen_with_their_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = LogWriter::open(dir.path(), small_config(SEGMENT_BYTES_MIN)).expect("open");
    let payloads: Vec<Vec<u8>> = (0..200).map(|offset| payload_for(offset, 1)).collect();
    let range = log
        .append_batch(payloads.iter().map(|payload| record(payload)))
        .expect("append");
    assert_eq!(range, 0..200);
    log.commit().expect("commit");
    assert!(log.segments().len() > 3, "small segments must have rolled");
    log.close().expect("close");

    let log = LogWriter::open(dir.path(), small_config(SEGMENT_BYTES_MIN)).expect("reopen");
    assert_eq!(log.next_offset(), 200);
    assert_eq!(log.recovery_report().cut, None);
    let read: Vec<Vec<u8>> = log
        .iter_from(0)
        .expect("iter")
        .map(|record| record.expect("record").payload.to_vec())
        .collect();
    assert_eq!(read, payloads);
    assert_eq!(
        log.read(123).expect("read").payload,
        payloads[123].as_slice()
    );
    assert_eq!(log.read(123).expect("read").origin_hub, 42);
}

#[test]
fn payloads_are_sixteen_byte_aligned_and_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = LogWriter::open(dir.path(), LogConfig::default()).expect("open");
    for len in [0usize, 1, 15, 16, 17, 255] {
        log.append(&record(&vec![7u8; len])).expect("append");
    }
    log.commit().expect("commit");
    for (offset, len) in [0usize, 1, 15, 16, 17, 255].into_iter().enumerate() {
        let record = log.read(offset as u64).expect("read");
        assert_eq!(record.payload.len(), len);
        assert_eq!(record.payload.as_ptr() as usize % 16, 0);
    }
}

#[test]
fn iteration_starts_at_any_offset_across_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = LogWriter::open(dir.path(), small_config(SEGMENT_BYTES_MIN)).expect("open");
    for offset in 0..300 {
        log.append(&record(&payload_for(offset, 2)))
            .expect("append");
    }
    log.commit().expect("commit");
    for start in [0u64, 1, 57, 150, 299] {
        let offsets: Vec<u64> = log
            .iter_from(start)
            .expect("iter")
            .map(|record| record.expect("ok").offset)
            .collect();
        assert_eq!(offsets, (start..300).collect::<Vec<_>>());
    }
    assert!(log.iter_from(300).expect("iter").next().is_none());
    assert!(matches!(
        log.read(300),
        Err(ReadError::OutOfRange { offset: 300, .. })
    ));
}

#[test]
fn a_second_writer_is_refused_and_names_the_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = LogWriter::open(dir.path(), LogConfig::default()).expect("open");
    let second = LogWriter::open(dir.path(), LogConfig::default());
    match second {
        Err(OpenError::Locked { holder, .. }) => {
            assert_eq!(holder, format!("pid {}", std::process::id()));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn a_reader_sees_records_while_the_writer_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = LogWriter::open(dir.path(), small_config(SEGMENT_BYTES_MIN)).expect("open");
    for offset in 0..50 {
        log.append(&record(&payload_for(offset, 3)))
            .expect("append");
    }
    log.commit().expect("commit");
    let mut reader = LogReader::open(dir.path()).expect("reader");
    assert_eq!(reader.log_id(), log.log_id());
    assert_eq!(reader.iter_from(0).expect("iter").count(), 50);
    for offset in 50..120 {
        log.append(&record(&payload_for(offset, 3)))
            .expect("append");
    }
    log.commit().expect("commit");
    reader.refresh().expect("refresh");
    let report = reader.verify().expect("verify");
    assert_eq!(report.record_count, 120);
    assert_eq!(report.next_offset, 120);
    assert_eq!(
        reader.read(119).expect("read").payload,
        payload_for(119, 3).as_slice()
    );
}

#[test]
fn oversized_payload_is_rejected_and_appends_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = LogWriter::open(dir.path(), LogConfig::default()).expect("open");
    let at_limit = vec![1u8; RECORD_PAYLOAD_BYTES_MAX];
    let past_limit = vec![1u8; RECORD_PAYLOAD_BYTES_MAX + 1];
    assert!(matches!(
        log.append(&record(&past_limit)),
        Err(WriteError::PayloadTooLarge { len, .. }) if len == RECORD_PAYLOAD_BYTES_MAX + 1
    ));
    assert_eq!(log.next_offset(), 0);
    assert_eq!(log.append(&record(&at_limit)).expect("at the limit"), 0);
    log.commit().expect("commit");
    assert_eq!(
        log.read(0).expect("read").payload.len(),
        RECORD_PAYLOAD_BYTES_MAX
    );
}

#[test]
fn a_record_larger_than_a_segment_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = LogWriter::open(dir.path(), small_config(SEGMENT_BYTES_MIN)).expect("open");
    log.append(&record(b"small")).expect("append");
    log.append(&record(&vec![9u8; 3 * SEGMENT_BYTES_MIN as usize]))
        .expect("big");
    log.append(&record(b"after")).expect("append");
    log.close().expect("close");
    let log = LogWriter::open(dir.path(), small_config(SEGMENT_BYTES_MIN)).expect("reopen");
    assert_eq!(log.next_offset(), 3);
    assert_eq!(
        log.read(1).expect("read").payload.len(),
        3 * SEGMENT_BYTES_MIN as usize
    );
    assert_eq!(log.read(2).expect("read").payload, b"after");
}

#[test]
fn segment_size_outside_its_bounds_is_a_config_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let result = LogWriter::open(dir.path(), small_config(SEGMENT_BYTES_MIN - 1));
    assert!(matches!(result, Err(OpenError::Config(_))));
    assert!(LogWriter::open(dir.path(), small_config(SEGMENT_BYTES_MIN)).is_ok());
}

#[test]
fn retention_deletes_only_whole_segments_below_the_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = LogWriter::open(dir.path(), small_config(SEGMENT_BYTES_MIN)).expect("open");
    for offset in 0..400 {
        log.append(&record(&payload_for(offset, 4)))
            .expect("append");
    }
    log.sync().expect("sync");
    let before = segment_names(dir.path());
    let cut_at = 200;
    let removed = log.delete_below(cut_at).expect("delete");
    assert!(!removed.is_empty());
    let first = log.first_offset();
    assert!(first <= cut_at, "a segment holding {cut_at} must survive");
    let after = segment_names(dir.path());
    assert_eq!(after.len() + removed.len(), before.len());
    assert!(after.iter().all(|(base, _)| *base >= first));
    assert!(matches!(
        log.read(first - 1),
        Err(ReadError::OutOfRange { .. })
    ));
    assert_eq!(
        log.iter_from(first).expect("iter").count() as u64,
        400 - first
    );
    drop(log);
    let log = LogWriter::open(dir.path(), small_config(SEGMENT_BYTES_MIN)).expect("reopen");
    assert_eq!(log.first_offset(), first);
    assert_eq!(log.next_offset(), 400);
}

#[test]
fn a_stale_or_damaged_index_is_not_trusted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = LogWriter::open(dir.path(), small_config(SEGMENT_BYTES_MIN * 4)).expect("open");
    for offset in 0..300 {
        log.append(&record(&payload_for(offset, 5)))
            .expect("append");
    }
    log.close().expect("close");
    // Rewrite every index so its entries point at the wrong records, with a valid CRC.
    for (base, name) in segment_names(dir.path()) {
        let index_path = dir.path().join(name.replace(".seg", ".idx"));
        if let Ok(mut bytes) = std::fs::read(&index_path)
            && bytes.len() > 24 + 16
        {
            bytes.swap(24 + 4, 24 + 12);
            std::fs::write(&index_path, bytes).expect("write");
        }
        let _ = base;
    }
    let reader = LogReader::open(dir.path()).expect("reader");
    for offset in 0..300 {
        assert_eq!(
            reader.read(offset).expect("read").payload,
            payload_for(offset, 5).as_slice()
        );
    }
}

#[test]
fn a_log_shorter_than_its_checkpoint_is_corrupt_and_repair_cuts_it_saying_where() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = LogWriter::open(dir.path(), small_config(SEGMENT_BYTES_MIN)).expect("open");
    for offset in 0..30 {
        log.append(&record(&payload_for(offset, 6)))
            .expect("append");
    }
    log.close().expect("close");
    // Zero the last record of the last segment: acknowledged data is gone.
    let (_, name) = segment_names(dir.path()).pop().expect("a segment");
    let path = dir.path().join(&name);
    let mut bytes = std::fs::read(&path).expect("read");
    let spans = common::record_spans(&bytes);
    let (start, end) = *spans.last().expect("a record");
    bytes[start..end].fill(0);
    std::fs::write(&path, &bytes).expect("write");

    match LogWriter::open(dir.path(), small_config(SEGMENT_BYTES_MIN)) {
        Err(OpenError::Corrupt(corruption)) => {
            assert_eq!(corruption.offset, 29);
            assert_eq!(corruption.segment, path);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let repair = LogConfig {
        repair: true,
        ..small_config(SEGMENT_BYTES_MIN)
    };
    let log = LogWriter::open(dir.path(), repair).expect("repair");
    let cut = log.recovery_report().cut.clone();
    assert_eq!(log.next_offset(), 29);
    drop(log);
    // The zeroed record left no bytes to cut, so repair reports nothing cut but opens.
    assert!(cut.is_none_or(|cut| cut.offset == 29 && cut.below_checkpoint));
    let log =
        LogWriter::open(dir.path(), small_config(SEGMENT_BYTES_MIN)).expect("open after repair");
    assert_eq!(log.next_offset(), 29);
    assert_eq!(log.verify().expect("verify").record_count, 29);
}

#[test]
fn repair_cuts_a_flipped_record_below_the_checkpoint_and_reports_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = LogWriter::open(dir.path(), small_config(SEGMENT_BYTES_MIN)).expect("open");
    for offset in 0..40 {
        log.append(&record(&payload_for(offset, 7)))
            .expect("append");
    }
    log.close().expect("close");
    let (_, name) = segment_names(dir.path())
        .into_iter()
        .nth(1)
        .expect("two segments");
    let path = dir.path().join(&name);
    let mut bytes = std::fs::read(&path).expect("read");
    let (start, _) = common::record_spans(&bytes)[1];
    bytes[start + 20] ^= 0xff;
    std::fs::write(&path, &bytes).expect("write");
    let repair = LogConfig {
        repair: true,
        ..small_config(SEGMENT_BYTES_MIN)
    };
    let log = LogWriter::open(dir.path(), repair).expect("repair");
    let cut = log.recovery_report().cut.clone().expect("a cut");
    assert!(cut.below_checkpoint);
    assert_eq!(cut.segment, path);
    assert_eq!(cut.offset, log.next_offset());
    assert!(cut.records_cut >= 40 - cut.offset);
    assert!(cut.bytes_cut > 0);
    assert_eq!(log.verify().expect("verify").record_count, cut.offset);
}
