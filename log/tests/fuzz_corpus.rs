//! Replays the fuzz corpus of `fuzz/corpus/open_log` through the same harness the fuzzer
//! runs, plus inputs built from real logs with every single-byte flip at a stride, so a
//! crash the fuzzer finds stays fixed under plain `cargo test`.

use std::path::Path;

use relay_log::fuzzing::{SECOND_SEGMENT_BASE, encode_log_dir, open_arbitrary_log};
use relay_log::{LogConfig, LogWriter, NewRecord};

fn real_log_input(records: &[usize]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 4096,
        ..LogConfig::default()
    };
    let mut log = LogWriter::open(dir.path(), config).expect("open");
    for (index, len) in records.iter().enumerate() {
        let payload = vec![index as u8 + 1; *len];
        log.append(&NewRecord {
            timestamp_us: 5,
            kind: 2,
            schema_version: 1,
            origin_hub: 9,
            payload: &payload,
        })
        .expect("append");
    }
    log.close().expect("close");
    encode_log_dir(dir.path()).expect("encode")
}

#[test]
fn committed_fuzz_corpus_opens_without_panic() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/open_log");
    let mut count = 0;
    for entry in std::fs::read_dir(&corpus).expect("corpus dir exists") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        open_arbitrary_log(&bytes);
        count += 1;
    }
    assert!(count >= 3, "the seed corpus must be committed");
}

#[test]
fn real_logs_with_flipped_bytes_open_without_panic() {
    // Three records of 1280 bytes fill the first 4 KiB segment, so the fourth starts the
    // second segment at the base the harness names.
    let input = real_log_input(&[1280, 1280, 1280, 10, 0, 33]);
    assert_eq!(SECOND_SEGMENT_BASE, 3);
    open_arbitrary_log(&input);
    for at in (0..input.len()).step_by(7) {
        let mut damaged = input.clone();
        damaged[at] ^= 0x5a;
        open_arbitrary_log(&damaged);
    }
}

#[test]
fn arbitrary_short_inputs_open_without_panic() {
    for len in 0..64usize {
        let input: Vec<u8> = (0..len).map(|index| (index * 37 + len) as u8).collect();
        open_arbitrary_log(&input);
    }
}

#[test]
fn committed_crafted_corpus_opens_without_panic() {
    // The corpus of the `log_records` target: CRC-valid records at base offsets and with
    // timestamps near the top of `u64` (issue 10).
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/log_records");
    let mut count = 0;
    let mut records = 0;
    for entry in std::fs::read_dir(&corpus).expect("corpus dir exists") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        relay_log::fuzzing::open_crafted_log(&bytes, &mut |_| records += 1);
        count += 1;
    }
    assert!(count >= 3, "the seed corpus must be committed");
    assert!(records > 0, "the seeds must reach valid records");
}

#[test]
fn crafted_logs_near_the_last_offset_open_without_panic() {
    for base in [0, 1, u64::MAX - 16, u64::MAX - 1, u64::MAX] {
        for timestamp in [0, 253_402_300_800_000_000, u64::MAX] {
            let mut input = vec![1u8, 1];
            input.extend_from_slice(&base.saturating_add(3).to_le_bytes());
            for segment_base in [base, base.saturating_add(2)] {
                input.extend_from_slice(&segment_base.to_le_bytes());
                input.extend_from_slice(&[3, 1]);
                for _ in 0..3 {
                    input.extend_from_slice(&timestamp.to_le_bytes());
                    input.extend_from_slice(&[2, 0xab, 0xcd]);
                }
            }
            relay_log::fuzzing::open_crafted_log(&input, &mut |_| {});
        }
    }
}
