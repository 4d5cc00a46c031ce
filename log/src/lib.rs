//! `relay-log`: Relay's append-only, memory-mapped, segmented log.
//!
//! The log stores opaque records (a payload plus kind, schema version, timestamp and origin
//! hub in the header) at consecutive offsets. It knows nothing of events, JSON or sockets.
//!
//! - [`LogWriter`]: the single writer of a directory (lock file): recovery on open, append,
//!   group commit, segment roll, retention.
//! - [`LogReader`]: a read-only view that works while a writer appends.
//! - `docs/log-format.md` specifies the bytes; [`format`] is that spec in code.
//! - [`storage`]: the seam through which the writer reserves, maps and syncs, for fault
//!   injection in tests (not a stable API).
//!
//! ```
//! use relay_log::{LogConfig, LogReader, LogWriter, NewRecord};
//! let dir = tempfile::tempdir().unwrap();
//! let mut log = LogWriter::open(dir.path(), LogConfig::default()).unwrap();
//! let record = NewRecord { timestamp_us: 1, kind: 7, schema_version: 1, origin_hub: 0, payload: b"hi" };
//! let offset = log.append(&record).unwrap();
//! log.commit().unwrap();
//! let reader = LogReader::open(dir.path()).unwrap();
//! assert_eq!(reader.read(offset).unwrap().payload, b"hi");
//! ```

#![warn(missing_docs)]

pub mod bench;
mod checkpoint;
mod error;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod limits;
mod lock;
mod mmap;
mod reader;
mod segment;
mod set;
#[doc(hidden)]
pub mod storage;
mod witness;
mod writer;

pub use checkpoint::{CHECKPOINT_FILE_NAME, Checkpoint, decode_checkpoint_file};
pub use error::{Corruption, DamageKind, OpenError, ReadError, Witness, WriteError};
pub use lock::LOCK_FILE_NAME;
pub use mmap::ImmutableFile;
pub use reader::LogReader;
pub use segment::Record;
pub use set::{LogIter, SegmentInfo, VerifyReport};
pub use writer::{
    Cut, Durability, LogConfig, LogWriter, NewRecord, PendingSync, RecoveryReport, SyncOutcome,
};
