//! Errors of the log, one enum per area: opening, reading, writing.
//!
//! Damage is always reported with the segment file and the offset where it was met
//! ([`Corruption`]); operating errors carry the path and the underlying `io::Error`.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// What exactly is wrong at a damaged place of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DamageKind {
    /// The segment header is missing, has a wrong magic, or fails its CRC.
    SegmentHeader,
    /// The segment header is intact but names another log or another base offset.
    SegmentIdentity,
    /// The segment was written by a format version or checksum kind this build cannot read.
    UnsupportedFormat,
    /// The record header is all zeros where a record should be.
    Zeroed,
    /// The record's declared length runs past the end of the segment or past the maximum.
    BadLength,
    /// The record's CRC does not match its header and payload.
    BadChecksum,
    /// The record's stored offset is not the next offset.
    BadOffset {
        /// The offset the record header carries.
        found: u64,
    },
    /// The padding after the payload is not zero.
    BadPadding,
    /// Records are missing: the segment ends before the next segment's base offset (a middle
    /// segment file was deleted or lost), or the log ends below its checkpoint.
    MissingRecords {
        /// Base offset of the segment that follows (or the checkpoint's offset).
        next_base_offset: u64,
    },
    /// The next segment starts below the offset this segment ends at: two segment files
    /// claim the same offsets.
    SegmentOverlap {
        /// Base offset of the segment that follows.
        next_base_offset: u64,
    },
    /// A record at offset `u64::MAX` (or a segment starting there with records): it would have
    /// no next offset. The log never writes one, so this is damage.
    OffsetOverflow,
}

impl fmt::Display for DamageKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DamageKind::SegmentHeader => write!(formatter, "damaged segment header"),
            DamageKind::SegmentIdentity => write!(formatter, "segment belongs to another log"),
            DamageKind::UnsupportedFormat => write!(formatter, "unsupported segment format"),
            DamageKind::Zeroed => write!(formatter, "zeroed record header"),
            DamageKind::BadLength => write!(formatter, "record length out of bounds"),
            DamageKind::BadChecksum => write!(formatter, "checksum mismatch"),
            DamageKind::BadOffset { found } => write!(formatter, "record carries offset {found}"),
            DamageKind::BadPadding => write!(formatter, "non-zero padding"),
            DamageKind::MissingRecords { next_base_offset } => {
                write!(
                    formatter,
                    "records missing up to offset {next_base_offset} (a segment file is missing or was cut)"
                )
            }
            DamageKind::SegmentOverlap { next_base_offset } => {
                write!(
                    formatter,
                    "segment overlaps the next one, which starts at offset {next_base_offset}"
                )
            }
            DamageKind::OffsetOverflow => write!(formatter, "record at the last possible offset"),
        }
    }
}

/// Damage that is not a torn write: data that may have been acknowledged is unreadable.
///
/// Either the damage lies below the durable checkpoint, or it lies above it but a valid record
/// with a consistent offset follows it (`followed_by`), which a torn write cannot leave (see
/// `docs/log-format.md`, "Recovery"). Nothing is cut: the hub refuses to start,
/// `relay log verify` reports it, and only an explicit repair ([`crate::LogConfig::repair`])
/// cuts the log there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// The segment file holding the damage.
    pub segment: PathBuf,
    /// Offset of the first record that cannot be read.
    pub offset: u64,
    /// Byte position of that record inside the segment file.
    pub position: u64,
    /// What is wrong there.
    pub kind: DamageKind,
    /// A valid record found after the damage, proving it is not a torn tail.
    pub followed_by: Option<Witness>,
}

/// A valid record met after damage: its offset is one the damaged records would have led to,
/// so the damage sits inside written data rather than at its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witness {
    /// The segment file holding the valid record.
    pub segment: PathBuf,
    /// Its offset.
    pub offset: u64,
    /// Its byte position inside `segment`.
    pub position: u64,
}

impl Corruption {
    /// Damage of `kind` at `offset` (byte `position`) of `segment`, with no witness.
    pub fn new(segment: PathBuf, offset: u64, position: u64, kind: DamageKind) -> Self {
        Corruption {
            segment,
            offset,
            position,
            kind,
            followed_by: None,
        }
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} at offset {} (byte {}) in {}",
            self.kind,
            self.offset,
            self.position,
            self.segment.display()
        )?;
        if let Some(witness) = &self.followed_by {
            write!(
                formatter,
                ", followed by a valid record at offset {} (byte {} in {}): not a torn write",
                witness.offset,
                witness.position,
                witness.segment.display()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Corruption {}

/// Opening a log failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// An operating-system call failed; the path says on what.
    #[error("{}: {source}", .path.display())]
    Io {
        /// File or directory the call was about.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Another process holds the writer lock of this log.
    #[error("log {} is locked by another writer ({holder})", .path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// What the holder wrote into the lock file (its pid), or "unknown".
        holder: String,
    },
    /// The directory holds no log (read-only open of an empty or missing directory).
    #[error("no log in {}", .path.display())]
    NotFound {
        /// The directory.
        path: PathBuf,
    },
    /// Both slots of the checkpoint file are damaged, or it is missing beside existing
    /// segments. The log cannot tell acknowledged records from a torn tail; repair treats
    /// every record as unacknowledged.
    #[error("checkpoint {} is missing or damaged", .path.display())]
    CheckpointDamaged {
        /// The checkpoint file.
        path: PathBuf,
    },
    /// Acknowledged data is damaged. Run `relay log repair` to see what a repair would cut,
    /// and `relay log repair --yes` (with the hub stopped) to cut it.
    #[error(
        "log is corrupt: {0}; run `relay log repair` to see what a repair would cut, then `relay log repair --yes` (hub stopped) to cut it"
    )]
    Corrupt(#[from] Corruption),
    /// A segment was written with other payload format flags than the opener expects (for
    /// Relay: other rkyv flags); its payloads cannot be read. Nothing is changed; use a build
    /// that writes these flags.
    #[error(
        "{} was written with payload format flags {found:#04x}, this build reads {expected:#04x}",
        .segment.display()
    )]
    FormatFlags {
        /// The segment file.
        segment: PathBuf,
        /// The flags the opener expects.
        expected: u8,
        /// The flags in the segment header.
        found: u8,
    },
    /// The configuration is out of its documented bounds.
    #[error("invalid log config: {0}")]
    Config(String),
}

/// Reading a record failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The offset is not in the log: below the first retained offset or at/after the end.
    #[error("offset {offset} is outside the log ({first}..{next})")]
    OutOfRange {
        /// The offset asked for.
        offset: u64,
        /// First offset still retained.
        first: u64,
        /// Next offset to be written (as far as this handle knows).
        next: u64,
    },
    /// Acknowledged data is damaged.
    #[error("log is corrupt: {0}")]
    Corrupt(#[from] Corruption),
}

/// Appending, committing, rolling or deleting failed.
///
/// After an `Io` error from a sync (commit, roll, close) the writer is poisoned: a failed
/// `fdatasync` may have dropped dirty pages, so no further write is attempted and the
/// caller must reopen (which runs recovery).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The payload is larger than [`crate::limits::RECORD_PAYLOAD_BYTES_MAX`]; nothing was written.
    #[error("payload of {len} bytes exceeds the limit of {max} bytes")]
    PayloadTooLarge {
        /// Payload length offered.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The file system has no room to reserve a segment; nothing was written.
    #[error("no space left to reserve {bytes} bytes for {}", .path.display())]
    NoSpace {
        /// The segment being reserved.
        path: PathBuf,
        /// Bytes asked for.
        bytes: u64,
    },
    /// An operating-system call failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// File or directory the call was about.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The log has assigned every offset below `u64::MAX`; nothing was written.
    #[error("the log has no offsets left")]
    OffsetsExhausted,
    /// An earlier failure poisoned the writer; reopen the log to recover.
    #[error("log writer is poisoned by an earlier failure; reopen the log")]
    Poisoned,
}

pub(crate) fn open_io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> OpenError {
    let path = path.into();
    move |source| OpenError::Io { path, source }
}

pub(crate) fn write_io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> WriteError {
    let path = path.into();
    move |source| WriteError::Io { path, source }
}
