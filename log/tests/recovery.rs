//! Recovery rules at open beyond the crash model: the segment set must be contiguous, the
//! payload format flags must match, offsets read from disk cannot overflow, and recovery
//! makes what it keeps durable (issue 10).

mod common;

use std::path::Path;

use common::{payload_for, record, segment_names, small_config};
use relay_log::format::{
    CHECKSUM_KIND_CRC32, FORMAT_VERSION, RecordHeader, SEGMENT_HEADER_BYTES, SegmentHeader,
    padded_len, segment_file_name,
};
use relay_log::limits::SEGMENT_BYTES_MIN;
use relay_log::{DamageKind, LogConfig, LogReader, LogWriter, OpenError, WriteError};

fn write_records(dir: &Path, config: &LogConfig, count: u64) {
    let mut log = LogWriter::open(dir, config.clone()).expect("open");
    for offset in 0..count {
        log.append(&record(&payload_for(offset, 4)))
            .expect("append");
    }
    log.close().expect("close");
}

#[test]
fn a_missing_middle_segment_is_named_missing_by_writer_reader_and_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config(SEGMENT_BYTES_MIN);
    write_records(dir.path(), &config, 60);
    let segments = segment_names(dir.path());
    assert!(segments.len() >= 4, "{segments:?}");
    let (missing_base, missing_name) = &segments[1];
    let (next_base, _) = segments[2];
    std::fs::remove_file(dir.path().join(missing_name)).expect("remove");

    let expected = DamageKind::MissingRecords {
        next_base_offset: next_base,
    };
    match LogWriter::open(dir.path(), config.clone()) {
        Err(OpenError::Corrupt(corruption)) => {
            assert_eq!(corruption.kind, expected, "{corruption}");
            assert_eq!(corruption.offset, *missing_base);
            assert_eq!(corruption.segment, dir.path().join(&segments[0].1));
        }
        other => panic!("expected a missing segment, got {other:?}"),
    }
    let reader = LogReader::open(dir.path()).expect("reader");
    let corruption = reader.verify().expect_err("verify must fail");
    assert_eq!(corruption.kind, expected, "{corruption}");
    assert_eq!(corruption.offset, *missing_base);
}

#[test]
fn a_missing_segment_above_the_checkpoint_is_corruption_not_a_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config(SEGMENT_BYTES_MIN);
    write_records(dir.path(), &config, 5);
    // A second session commits more segments but crashes before any checkpoint covers
    // them... except that a strict commit after a roll moves the checkpoint: use Os.
    let os = LogConfig {
        durability: relay_log::Durability::Os,
        ..config.clone()
    };
    let mut log = LogWriter::open(dir.path(), os.clone()).expect("reopen");
    for offset in 5..80 {
        log.append(&record(&payload_for(offset, 4)))
            .expect("append");
    }
    log.commit().expect("commit");
    let durable = log.durable_offset();
    drop(log);
    let segments = segment_names(dir.path());
    let middle = segments
        .iter()
        .position(|(base, _)| *base > durable)
        .expect("a segment above the checkpoint");
    assert!(middle + 1 < segments.len(), "{segments:?}");
    std::fs::remove_file(dir.path().join(&segments[middle].1)).expect("remove");

    match LogWriter::open(dir.path(), os) {
        Err(OpenError::Corrupt(corruption)) => {
            assert!(
                matches!(corruption.kind, DamageKind::MissingRecords { .. }),
                "{corruption}"
            );
            assert_eq!(corruption.offset, segments[middle].0);
            assert!(corruption.followed_by.is_some(), "{corruption}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(
        segment_names(dir.path()).len() == segments.len() - 1,
        "nothing was cut"
    );
}

#[test]
fn a_log_written_with_other_format_flags_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = LogConfig {
        payload_format_flags: 0b111,
        ..small_config(SEGMENT_BYTES_MIN)
    };
    write_records(dir.path(), &written, 3);
    let other = LogConfig {
        payload_format_flags: 0b011,
        ..small_config(SEGMENT_BYTES_MIN)
    };
    match LogWriter::open(dir.path(), other) {
        Err(OpenError::FormatFlags {
            segment,
            expected,
            found,
        }) => {
            assert_eq!((expected, found), (0b011, 0b111));
            assert_eq!(segment, dir.path().join(segment_file_name(0)));
        }
        other => panic!("expected FormatFlags, got {other:?}"),
    }
    let reader = LogReader::open(dir.path()).expect("reader");
    assert_eq!(reader.payload_format_flags(), 0b111);
    LogWriter::open(dir.path(), written).expect("the right flags open");
}

#[test]
fn segments_with_mixed_format_flags_are_refused_by_a_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        payload_format_flags: 0b111,
        ..small_config(SEGMENT_BYTES_MIN)
    };
    write_records(dir.path(), &config, 40);
    let (_, name) = segment_names(dir.path()).pop().expect("a segment");
    let path = dir.path().join(name);
    let mut bytes = std::fs::read(&path).expect("read");
    let mut header = SegmentHeader::decode(&bytes).expect("header");
    header.payload_format_flags = 0b001;
    bytes[..SEGMENT_HEADER_BYTES].copy_from_slice(&header.encode());
    std::fs::write(&path, &bytes).expect("write");
    match LogReader::open(dir.path()) {
        Err(OpenError::FormatFlags {
            segment,
            expected,
            found,
        }) => {
            assert_eq!(segment, path);
            assert_eq!((expected, found), (0b111, 0b001));
        }
        other => panic!("expected FormatFlags, got {other:?}"),
    }
}

/// Writes a segment by hand whose records carry `offsets` (no checkpoint file).
fn handmade_segment(dir: &Path, base_offset: u64, offsets: &[u64]) {
    let header = SegmentHeader {
        format_version: FORMAT_VERSION,
        checksum_kind: CHECKSUM_KIND_CRC32,
        payload_format_flags: 0,
        base_offset,
        log_id: 77,
    };
    let mut bytes = header.encode().to_vec();
    for offset in offsets {
        let payload = b"edge";
        let record_header = RecordHeader {
            crc: 0,
            payload_len: payload.len() as u32,
            offset: *offset,
            timestamp_us: u64::MAX,
            kind: 1,
            schema_version: 1,
            origin_hub: 0,
        };
        bytes.extend_from_slice(&record_header.encode(payload));
        bytes.extend_from_slice(payload);
        bytes.resize(bytes.len() + padded_len(payload.len()) - payload.len(), 0);
    }
    bytes.resize(SEGMENT_BYTES_MIN as usize, 0);
    std::fs::write(dir.join(segment_file_name(base_offset)), bytes).expect("write");
}

#[test]
fn a_record_at_the_last_offset_is_damage_not_an_overflow() {
    let dir = tempfile::tempdir().expect("tempdir");
    handmade_segment(dir.path(), u64::MAX - 1, &[u64::MAX - 1, u64::MAX]);
    let reader = LogReader::open(dir.path()).expect("reader");
    let offsets: Vec<u64> = reader
        .iter_from(u64::MAX - 1)
        .expect("iter")
        .map(|record| record.expect("above the checkpoint: not corruption").offset)
        .collect();
    assert_eq!(offsets, [u64::MAX - 1]);
    let report = reader.verify().expect("verify");
    assert_eq!(report.next_offset, u64::MAX);
    assert_eq!(
        report.torn_tail.map(|torn| torn.kind),
        Some(DamageKind::OffsetOverflow)
    );
    assert_eq!(
        reader.read(u64::MAX - 1).expect("read").timestamp_us,
        u64::MAX
    );

    // A repair opens it; the log is then full, and says so instead of overflowing.
    let repair = LogConfig {
        repair: true,
        ..small_config(SEGMENT_BYTES_MIN)
    };
    let mut log = LogWriter::open(dir.path(), repair).expect("repair");
    assert_eq!(log.next_offset(), u64::MAX);
    assert!(matches!(
        log.append(&record(b"one too many")),
        Err(WriteError::OffsetsExhausted)
    ));
}

#[test]
fn damage_in_a_sealed_segment_end_below_the_checkpoint_refuses_the_open() {
    // Sealed segments below the checkpoint's segment are walked from their last index entry
    // (to check where they end), so damage in that stretch is found at open.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config(SEGMENT_BYTES_MIN);
    write_records(dir.path(), &config, 60);
    let segments = segment_names(dir.path());
    let path = dir.path().join(&segments[0].1);
    let mut bytes = std::fs::read(&path).expect("read");
    let spans = common::record_spans(&bytes);
    let (start, _) = *spans.last().expect("a record");
    bytes[start + 50] ^= 0x10;
    std::fs::write(&path, &bytes).expect("write");
    match LogWriter::open(dir.path(), config) {
        Err(OpenError::Corrupt(corruption)) => {
            assert_eq!(corruption.segment, path);
            assert_eq!(corruption.offset, spans.len() as u64 - 1);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn overlapping_segments_are_corruption_even_above_the_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    handmade_segment(dir.path(), 0, &[0, 1, 2]);
    handmade_segment(dir.path(), 2, &[2, 3]);
    let reader = LogReader::open(dir.path()).expect("reader");
    assert_eq!(
        reader.durable_offset(),
        0,
        "no checkpoint: everything is above it"
    );
    let corruption = reader.verify().expect_err("verify must fail");
    assert_eq!(
        corruption.kind,
        DamageKind::SegmentOverlap {
            next_base_offset: 2
        }
    );
    assert_eq!(corruption.offset, 3);
    assert_eq!(corruption.segment, dir.path().join(segment_file_name(0)));
}
