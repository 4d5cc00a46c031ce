//! Fuzzing support: open a log directory made of arbitrary bytes and walk it.
//!
//! The `fuzz/` target `open_log` and the corpus replay under `cargo test` both call
//! [`open_arbitrary_log`], so a crash found by the fuzzer is a failing unit test once its
//! input is added to the corpus. The target `log_records` calls [`open_crafted_log`], whose
//! input chooses base offsets, record offsets, timestamps and the checkpoint of CRC-valid
//! segments, so the fuzzer reaches the arithmetic on offsets and timestamps from disk
//! (issue 10). Not part of the stable API.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::checkpoint::{CHECKPOINT_FILE_NAME, Checkpoint};
use crate::format::{
    CHECKSUM_KIND_CRC32, FORMAT_VERSION, RecordHeader, SegmentHeader, index_file_name, padded_len,
    segment_file_name,
};
use crate::limits::SEGMENT_BYTES_MIN;
use crate::{LogConfig, LogReader, LogWriter, NewRecord, Record};

/// The files an input is cut into, in order: each is preceded by a little-endian `u16`
/// length (clamped to what is left).
const FILE_ORDER: [FileSlot; 5] = [
    FileSlot::Segment(0),
    FileSlot::Checkpoint,
    FileSlot::Index(0),
    FileSlot::Segment(SECOND_SEGMENT_BASE),
    FileSlot::Index(SECOND_SEGMENT_BASE),
];

/// Base offset of the second segment file an input can carry.
pub const SECOND_SEGMENT_BASE: u64 = 3;

#[derive(Clone, Copy)]
enum FileSlot {
    Segment(u64),
    Index(u64),
    Checkpoint,
}

impl FileSlot {
    fn name(self) -> String {
        match self {
            FileSlot::Segment(base) => segment_file_name(base),
            FileSlot::Index(base) => index_file_name(base),
            FileSlot::Checkpoint => CHECKPOINT_FILE_NAME.to_owned(),
        }
    }
}

/// Writes `data` as a log directory, opens it read-only and for writing, walks every record,
/// verifies, appends and commits. Must never panic, whatever `data` holds.
pub fn open_arbitrary_log(data: &[u8]) {
    let dir = scratch_dir();
    if write_files(&dir, data).is_ok() {
        exercise(&dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Cuts a log directory back into the input format of [`open_arbitrary_log`] (for seeds).
///
/// # Errors
/// File-system failures.
pub fn encode_log_dir(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    for slot in FILE_ORDER {
        let bytes = match std::fs::read(dir.join(slot.name())) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(error),
        };
        let bytes = &bytes[..bytes.len().min(usize::from(u16::MAX))];
        data.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        data.extend_from_slice(bytes);
    }
    Ok(data)
}

/// Most segments one [`open_crafted_log`] input describes.
pub const CRAFTED_SEGMENTS_MAX: usize = 4;
/// Most records one crafted segment holds.
pub const CRAFTED_RECORDS_MAX: usize = 15;

/// Builds a log directory of CRC-valid segments from `data`, opens it read-only (calling
/// `visit` on every record a walk yields) and for writing, verifies, appends and commits.
/// Must never panic, whatever `data` holds.
///
/// Input layout (missing bytes read as zero): `u8` segment count (mod 4, plus one); `u8`
/// flags (bit 0: write a checkpoint); `u64` durable offset; then per segment: `u64` base
/// offset, `u8` record count (mod 16), `u8` mode (bit 0: record offsets count up from the
/// base; else each record reads its own `u64` offset), and per record: [`u64` offset],
/// `u64` timestamp, `u8` payload length (mod 64) and the payload bytes. All integers are
/// little-endian.
pub fn open_crafted_log(data: &[u8], visit: &mut dyn FnMut(&Record<'_>)) {
    let dir = scratch_dir();
    if craft_files(&dir, data).is_ok() {
        if let Ok(reader) = LogReader::open(&dir)
            && let Ok(iter) = reader.iter_from(reader.first_offset())
        {
            for record in iter
                .thorough()
                .take(CRAFTED_SEGMENTS_MAX * CRAFTED_RECORDS_MAX)
            {
                match record {
                    Ok(record) => visit(&record),
                    Err(_) => break,
                }
            }
        }
        exercise(&dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The crafted log's id (every segment and the checkpoint carry it).
const CRAFTED_LOG_ID: u128 = 0x5eed;

/// Reads little-endian integers off the front of an input, zeros once it is used up.
struct InputReader<'a>(&'a [u8]);

impl InputReader<'_> {
    fn u8(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        first
    }

    fn u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        for byte in &mut bytes {
            *byte = self.u8();
        }
        u64::from_le_bytes(bytes)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.u8()).collect()
    }
}

fn craft_files(dir: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut input = InputReader(data);
    let segment_count = usize::from(input.u8()) % CRAFTED_SEGMENTS_MAX + 1;
    let flags = input.u8();
    let durable_offset = input.u64();
    if flags & 1 == 1 {
        let checkpoint = Checkpoint {
            generation: 1,
            durable_offset,
            log_id: CRAFTED_LOG_ID,
        };
        std::fs::write(dir.join(CHECKPOINT_FILE_NAME), checkpoint.encode())?;
    }
    for _ in 0..segment_count {
        let base_offset = input.u64();
        let record_count = usize::from(input.u8()) % (CRAFTED_RECORDS_MAX + 1);
        let counting = input.u8() & 1 == 1;
        let header = SegmentHeader {
            format_version: FORMAT_VERSION,
            checksum_kind: CHECKSUM_KIND_CRC32,
            payload_format_flags: 0,
            base_offset,
            log_id: CRAFTED_LOG_ID,
        };
        let mut bytes = header.encode().to_vec();
        for index in 0..record_count as u64 {
            let offset = if counting {
                base_offset.wrapping_add(index)
            } else {
                input.u64()
            };
            let timestamp_us = input.u64();
            let payload_len = usize::from(input.u8() % 64);
            let payload = input.bytes(payload_len);
            let record = RecordHeader {
                crc: 0,
                payload_len: payload.len() as u32,
                offset,
                timestamp_us,
                kind: 1,
                schema_version: 1,
                origin_hub: 0,
            };
            bytes.extend_from_slice(&record.encode(&payload));
            bytes.extend_from_slice(&payload);
            bytes.resize(bytes.len() + padded_len(payload.len()) - payload.len(), 0);
        }
        let len = (bytes.len() as u64).max(SEGMENT_BYTES_MIN) as usize;
        bytes.resize(len, 0);
        std::fs::write(dir.join(segment_file_name(base_offset)), bytes)?;
    }
    Ok(())
}

fn write_files(dir: &Path, mut data: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for slot in FILE_ORDER {
        let Some((length, rest)) = data.split_first_chunk::<2>() else {
            break;
        };
        let length = usize::from(u16::from_le_bytes(*length)).min(rest.len());
        if length > 0 {
            std::fs::write(dir.join(slot.name()), &rest[..length])?;
        }
        data = &rest[length..];
    }
    Ok(())
}

fn exercise(dir: &Path) {
    if let Ok(reader) = LogReader::open(dir) {
        let _ = reader.verify();
        if let Ok(iter) = reader.iter_from(reader.first_offset()) {
            for record in iter.take(10_000) {
                if record.is_err() {
                    break;
                }
            }
        }
        for offset in 0..8 {
            let _ = reader.read(offset);
        }
    }
    let config = LogConfig {
        segment_bytes: crate::limits::SEGMENT_BYTES_MIN,
        ..LogConfig::default()
    };
    if let Ok(mut writer) = LogWriter::open(dir, config) {
        let _ = writer.verify();
        let record = NewRecord {
            timestamp_us: 1,
            kind: 1,
            schema_version: 1,
            origin_hub: 0,
            payload: b"fuzz",
        };
        if writer.append(&record).is_ok() && writer.commit().is_ok() {
            let offset = writer.next_offset() - 1;
            assert_eq!(
                writer
                    .read(offset)
                    .map(|record| record.payload.to_vec())
                    .ok(),
                Some(b"fuzz".to_vec()),
                "invariant: a committed append reads back"
            );
        }
    }
}

fn scratch_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("relay-log-fuzz-{}-{count}", std::process::id()))
}
