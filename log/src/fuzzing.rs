//! Fuzzing support: open a log directory made of arbitrary bytes and walk it.
//!
//! The `fuzz/` target `open_log` and the corpus replay under `cargo test` both call
//! [`open_arbitrary_log`], so a crash found by the fuzzer is a failing unit test once its
//! input is added to the corpus. Not part of the stable API.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::checkpoint::CHECKPOINT_FILE_NAME;
use crate::format::{index_file_name, segment_file_name};
use crate::{LogConfig, LogReader, LogWriter, NewRecord};

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
