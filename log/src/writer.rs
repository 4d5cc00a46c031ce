//! The writer: recovery on open, append, group commit, segment roll, retention.
//!
//! One writer per directory (the lock). Records are copied into a writable mapping of the
//! active segment, payload before header, so a concurrent reader sees a record only once its
//! CRC holds. A commit makes everything appended since the previous commit durable with one
//! `msync` (strict durability). A failed sync poisons the writer.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint::{Checkpoint, CheckpointFile};
use crate::error::{Corruption, DamageKind, OpenError, ReadError, WriteError, open_io, write_io};
use crate::format::{
    CHECKSUM_KIND_CRC32, FORMAT_VERSION, RECORD_HEADER_BYTES, RecordHeader, SEGMENT_HEADER_BYTES,
    SegmentHeader, record_bytes, segment_file_name,
};
use crate::limits::{
    CHECKPOINT_INTERVAL_RECORDS, RECORD_PAYLOAD_BYTES_MAX, SEGMENT_BYTES_DEFAULT,
    SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
};
use crate::lock::WriterLock;
use crate::mmap::Map;
use crate::segment::{
    IndexEntry, Record, Segment, Step, build_index, wants_index_entry, write_index,
};
use crate::set::{
    LogIter, SegmentInfo, SegmentSet, VerifyReport, check_header, list_segment_files, open_segment,
};
use crate::storage::{RealStorage, Storage, SyncRange};
use crate::witness::{DamageAt, find_witness};

/// What a commit promises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// A commit returns only after the records are on disk (`msync`): acknowledged records
    /// survive a process crash, a kernel crash and a power cut.
    #[default]
    Strict,
    /// A commit only publishes the records in the page cache: they survive a crash of the
    /// process, not of the machine. Data is synced on roll-free close and [`LogWriter::sync`].
    Os,
}

/// Settings of a log writer.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Size reserved for each segment; the log rolls when the next record does not fit.
    /// Between [`SEGMENT_BYTES_MIN`] and [`SEGMENT_BYTES_MAX`], default [`SEGMENT_BYTES_DEFAULT`].
    pub segment_bytes: u64,
    /// What a commit promises.
    pub durability: Durability,
    /// Stored in every new segment header to describe the payload encoding.
    pub payload_format_flags: u8,
    /// Cut damage below the checkpoint instead of refusing to open (a repair).
    pub repair: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            durability: Durability::Strict,
            payload_format_flags: 0,
            repair: false,
        }
    }
}

/// A record to append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewRecord<'a> {
    /// Microseconds since the Unix epoch (the log never reads the clock).
    pub timestamp_us: u64,
    /// Payload kind.
    pub kind: u16,
    /// Payload schema version.
    pub schema_version: u16,
    /// Origin hub id.
    pub origin_hub: u128,
    /// Payload bytes, at most [`RECORD_PAYLOAD_BYTES_MAX`].
    pub payload: &'a [u8],
}

/// The part of the log that recovery cut on open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Segment where the first damaged or zeroed record was met.
    pub segment: PathBuf,
    /// Offset of the first record cut (the log's next offset after recovery).
    pub offset: u64,
    /// Byte position of the cut inside `segment`.
    pub position: u64,
    /// What was found there; `None` for a clean end followed by stray bytes.
    pub kind: Option<DamageKind>,
    /// Non-zero bytes removed: zeroed in `segment` plus the data of removed segments.
    pub bytes_cut: u64,
    /// Records that could still be told apart past the cut (at least this many were lost).
    pub records_cut: u64,
    /// Later segment files deleted.
    pub segments_removed: Vec<PathBuf>,
    /// True if the cut was below the checkpoint, which only a repair does.
    pub below_checkpoint: bool,
}

/// What opening the log found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The checkpoint read on open.
    pub durable_offset: u64,
    /// Next offset after recovery.
    pub next_offset: u64,
    /// Records above the checkpoint that were scanned and kept.
    pub records_scanned: u64,
    /// What was cut, if anything.
    pub cut: Option<Cut>,
    /// True if the log was created by this open.
    pub created: bool,
}

/// The single writer of a log directory.
#[derive(Debug)]
pub struct LogWriter {
    set: SegmentSet,
    config: LogConfig,
    _lock: WriterLock,
    checkpoint: CheckpointFile,
    log_id: u128,
    next_offset: u64,
    /// Write position in the active (last) segment.
    position: u64,
    committed_offset: u64,
    /// Start of the active segment's bytes not yet synced.
    unsynced_from: u64,
    /// Segments sealed since the last sync whose data is not synced yet (durability `Os`).
    unsynced_sealed: Vec<PathBuf>,
    rolled_since_checkpoint: bool,
    poisoned: bool,
    recovery: RecoveryReport,
    storage: Arc<dyn Storage>,
    /// The commit whose sync runs elsewhere ([`LogWriter::begin_commit`]), until
    /// [`LogWriter::finish_commit`] takes its outcome.
    in_flight: Option<InFlight>,
}

/// What the writer remembers of a commit whose sync runs on another thread.
#[derive(Debug)]
struct InFlight {
    /// The same sync, to run again here if the writer must be durable before it reports.
    map: Map,
    path: PathBuf,
    position: usize,
    len: usize,
}

/// The sync of a commit begun with [`LogWriter::begin_commit`], to run on any thread while
/// the writer goes on appending (pipelined group commit). Run it with [`PendingSync::run`]
/// and hand what it returns to [`LogWriter::finish_commit`].
#[derive(Debug)]
pub struct PendingSync {
    upto: u64,
    map: Map,
    path: PathBuf,
    position: usize,
    len: usize,
    storage: Arc<dyn Storage>,
}

impl PendingSync {
    /// The commit covers the records below this offset.
    pub fn upto(&self) -> u64 {
        self.upto
    }

    /// Syncs the bytes of the commit (`msync`) and waits for the disk.
    pub fn run(self) -> SyncOutcome {
        let result = self.storage.sync_range(SyncRange {
            path: &self.path,
            map: &self.map,
            position: self.position,
            len: self.len,
        });
        SyncOutcome {
            upto: self.upto,
            path: self.path,
            result,
        }
    }
}

/// How the sync of a [`PendingSync`] ended.
#[derive(Debug)]
pub struct SyncOutcome {
    upto: u64,
    path: PathBuf,
    result: std::io::Result<()>,
}

impl SyncOutcome {
    /// The commit covers the records below this offset.
    pub fn upto(&self) -> u64 {
        self.upto
    }
}

impl LogWriter {
    /// Opens (or creates) the log in `dir` for writing, recovering a torn tail, and syncs what
    /// recovery kept before returning (see `docs/log-format.md`, "Recovery on open").
    ///
    /// # Errors
    /// [`OpenError::Locked`] if another process writes this log; [`OpenError::Corrupt`] on
    /// damage below the checkpoint, on damage above it that a valid record follows, on a
    /// missing or overlapping segment (unless `config.repair`); [`OpenError::FormatFlags`] if
    /// a segment carries other payload format flags than `config.payload_format_flags`;
    /// [`OpenError::CheckpointDamaged`]; [`OpenError::Config`]; [`OpenError::Io`], also when
    /// the sync of the recovered records fails.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, OpenError> {
        LogWriter::open_with_storage(dir, config, Arc::new(RealStorage))
    }

    /// As [`LogWriter::open`], with every durability and space call going through `storage`
    /// (for fault injection in tests; see [`crate::storage`]).
    ///
    /// # Errors
    /// As [`LogWriter::open`].
    #[doc(hidden)]
    pub fn open_with_storage(
        dir: &Path,
        config: LogConfig,
        storage: Arc<dyn Storage>,
    ) -> Result<Self, OpenError> {
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&config.segment_bytes) {
            return Err(OpenError::Config(format!(
                "segment_bytes {} is outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}",
                config.segment_bytes
            )));
        }
        std::fs::create_dir_all(dir).map_err(open_io(dir))?;
        let lock = WriterLock::acquire(dir)?;
        let files = list_segment_files(dir)?;
        let existing = CheckpointFile::open(dir, None, &*storage).map_err(open_io(dir))?;
        let (checkpoint, created) = match existing {
            Some(checkpoint) => (checkpoint, false),
            None if files.is_empty() => {
                let initial = Checkpoint {
                    generation: 0,
                    durable_offset: 0,
                    log_id: new_log_id()?,
                };
                let file =
                    CheckpointFile::open(dir, Some(initial), &*storage).map_err(open_io(dir))?;
                storage.sync_dir(dir).map_err(open_io(dir))?;
                (
                    file.ok_or_else(|| OpenError::CheckpointDamaged {
                        path: dir.join("checkpoint"),
                    })?,
                    true,
                )
            }
            None if config.repair => {
                let log_id = first_log_id(&files)?;
                let initial = Checkpoint {
                    generation: 0,
                    durable_offset: 0,
                    log_id,
                };
                let file =
                    CheckpointFile::open(dir, Some(initial), &*storage).map_err(open_io(dir))?;
                storage.sync_dir(dir).map_err(open_io(dir))?;
                (
                    file.ok_or_else(|| OpenError::CheckpointDamaged {
                        path: dir.join("checkpoint"),
                    })?,
                    false,
                )
            }
            None => {
                let path = dir.join(crate::checkpoint::CHECKPOINT_FILE_NAME);
                return Err(OpenError::CheckpointDamaged { path });
            }
        };
        let log_id = checkpoint.current.log_id;
        let durable_offset = checkpoint.current.durable_offset;
        let mut writer = LogWriter {
            set: SegmentSet {
                dir: dir.to_owned(),
                segments: Vec::new(),
                active_index: None,
            },
            config,
            _lock: lock,
            checkpoint,
            log_id,
            next_offset: 0,
            position: 0,
            committed_offset: 0,
            unsynced_from: 0,
            unsynced_sealed: Vec::new(),
            rolled_since_checkpoint: false,
            poisoned: false,
            recovery: RecoveryReport {
                durable_offset,
                next_offset: 0,
                records_scanned: 0,
                cut: None,
                created,
            },
            storage,
            in_flight: None,
        };
        writer.recover(files)?;
        writer.sync_recovered()?;
        Ok(writer)
    }

    /// What recovery found when this writer opened the log.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Appends one record and returns its offset. Not durable until [`LogWriter::commit`].
    ///
    /// # Errors
    /// [`WriteError::PayloadTooLarge`] and [`WriteError::NoSpace`] write nothing and leave
    /// the writer usable; [`WriteError::Poisoned`] after an earlier sync failure.
    pub fn append(&mut self, record: &NewRecord<'_>) -> Result<u64, WriteError> {
        if self.poisoned {
            return Err(WriteError::Poisoned);
        }
        // `u64::MAX` is never a record's offset (a walk could not step past it).
        if self.next_offset == u64::MAX {
            return Err(WriteError::OffsetsExhausted);
        }
        let len = record.payload.len();
        if len > RECORD_PAYLOAD_BYTES_MAX {
            return Err(WriteError::PayloadTooLarge {
                len,
                max: RECORD_PAYLOAD_BYTES_MAX,
            });
        }
        let needed = record_bytes(len);
        self.make_room(needed)?;
        let offset = self.next_offset;
        let header = RecordHeader {
            crc: 0,
            payload_len: len as u32,
            offset,
            timestamp_us: record.timestamp_us,
            kind: record.kind,
            schema_version: record.schema_version,
            origin_hub: record.origin_hub,
        };
        let header_bytes = header.encode(record.payload);
        let start = self.position as usize;
        let payload_start = start + RECORD_HEADER_BYTES;
        let segment = self
            .set
            .segments
            .last_mut()
            .expect("invariant: the writer has an active segment");
        // Payload first, header last: a concurrent reader sees the record only when complete.
        // The padding is zeroed here rather than trusted to be: a segment recovered from a
        // damaged file may hold stale bytes past its last valid record (found by `open_log`).
        // `make_room` made the record fit in the writable active segment.
        let written = segment.map.write_at(payload_start, record.payload)
            && segment.map.zero(
                payload_start + len,
                start + needed as usize - payload_start - len,
            )
            && segment.map.write_at(start, &header_bytes);
        assert!(
            written,
            "invariant: the active segment is mapped writable with room"
        );
        let index = self.set.active_index.get_or_insert_with(Vec::new);
        if wants_index_entry(index, self.position) {
            index.push(IndexEntry {
                offset,
                position: self.position,
            });
        }
        self.position += needed;
        self.next_offset += 1;
        Ok(offset)
    }

    /// Makes sure the next append of a `payload_len`-byte payload takes no new disk space:
    /// grows an empty active segment or rolls to a new one now if it would not fit. A caller
    /// that must not change anything else before it knows the append will succeed (the hub
    /// applies an event to its state before appending it) asks first, so a full disk refuses
    /// the change instead of leaving the state ahead of the log.
    ///
    /// # Errors
    /// As [`LogWriter::append`]: [`WriteError::NoSpace`] and [`WriteError::PayloadTooLarge`]
    /// change nothing and leave the writer usable; a failed sync while sealing the active
    /// segment poisons it.
    pub fn reserve_append(&mut self, payload_len: usize) -> Result<(), WriteError> {
        if self.poisoned {
            return Err(WriteError::Poisoned);
        }
        if payload_len > RECORD_PAYLOAD_BYTES_MAX {
            return Err(WriteError::PayloadTooLarge {
                len: payload_len,
                max: RECORD_PAYLOAD_BYTES_MAX,
            });
        }
        self.make_room(record_bytes(payload_len))
    }

    /// Appends records in order; returns their offsets.
    ///
    /// # Errors
    /// As [`LogWriter::append`]; records before the failing one stay appended.
    pub fn append_batch<'a>(
        &mut self,
        records: impl IntoIterator<Item = NewRecord<'a>>,
    ) -> Result<Range<u64>, WriteError> {
        let first = self.next_offset;
        for record in records {
            self.append(&record)?;
        }
        Ok(first..self.next_offset)
    }

    /// Makes every record appended so far committed: with [`Durability::Strict`], one `msync`
    /// of the bytes written since the last commit (group commit); with [`Durability::Os`],
    /// nothing is synced. Advances the checkpoint lazily.
    ///
    /// # Errors
    /// [`WriteError::Io`] if the sync failed; the writer is then poisoned.
    pub fn commit(&mut self) -> Result<(), WriteError> {
        if self.poisoned {
            return Err(WriteError::Poisoned);
        }
        if self.config.durability == Durability::Os {
            self.committed_offset = self.next_offset;
            return Ok(());
        }
        self.settle_in_flight()?;
        self.sync_active()?;
        self.committed_offset = self.next_offset;
        self.advance_checkpoint_lazily()
    }

    /// Advances the checkpoint when it lags the committed offset by the interval, or after
    /// a roll.
    fn advance_checkpoint_lazily(&mut self) -> Result<(), WriteError> {
        let lag = self
            .committed_offset
            .saturating_sub(self.checkpoint.current.durable_offset);
        if lag >= CHECKPOINT_INTERVAL_RECORDS || (self.rolled_since_checkpoint && lag > 0) {
            self.advance_checkpoint()?;
        }
        Ok(())
    }

    /// Syncs the bytes of a commit still in flight on this thread too, so a commit or sync
    /// made meanwhile never claims records before their sync finished. The in-flight sync
    /// still reports to [`LogWriter::finish_commit`]; a failure there poisons the writer.
    fn settle_in_flight(&mut self) -> Result<(), WriteError> {
        let Some(in_flight) = &self.in_flight else {
            return Ok(());
        };
        let result = self.storage.sync_range(SyncRange {
            path: &in_flight.path,
            map: &in_flight.map,
            position: in_flight.position,
            len: in_flight.len,
        });
        let path = in_flight.path.clone();
        self.poison_on_error(result.map_err(write_io(path)))
    }

    /// Begins a commit of every record appended so far whose sync runs elsewhere, so the
    /// caller can go on appending meanwhile (pipelined group commit). With
    /// [`Durability::Strict`] it returns the sync to run, on any thread; the records are
    /// committed when [`LogWriter::finish_commit`] takes its outcome. With
    /// [`Durability::Os`] it commits at once, as [`LogWriter::commit`], and returns `None`.
    ///
    /// Returns `None` as well when nothing was appended since the last commit, or while a
    /// commit begun earlier has not finished: one sync at a time, so commits finish in order
    /// (begin again after [`LogWriter::finish_commit`]). [`LogWriter::commit`] and
    /// [`LogWriter::sync`] may be called while one is in flight; they sync its bytes again
    /// themselves before claiming them.
    ///
    /// # Errors
    /// [`WriteError::Poisoned`] after an earlier sync failure.
    pub fn begin_commit(&mut self) -> Result<Option<PendingSync>, WriteError> {
        if self.poisoned {
            return Err(WriteError::Poisoned);
        }
        if self.config.durability == Durability::Os {
            self.committed_offset = self.next_offset;
            return Ok(None);
        }
        if self.in_flight.is_some() || self.committed_offset == self.next_offset {
            return Ok(None);
        }
        let (segment, position, len) = self.unsynced_range();
        let Some(map) = segment.map.share() else {
            // A log whose active segment is empty and unmapped has nothing to sync here:
            // a roll synced everything before it.
            self.committed_offset = self.next_offset;
            return Ok(None);
        };
        let path = segment.path.clone();
        self.unsynced_from = self.position;
        let upto = self.next_offset;
        self.in_flight = Some(InFlight {
            map: map.share().unwrap_or(Map::Empty),
            path: path.clone(),
            position,
            len,
        });
        Ok(Some(PendingSync {
            upto,
            map,
            path,
            position,
            len,
            storage: Arc::clone(&self.storage),
        }))
    }

    /// Takes the outcome of the sync [`LogWriter::begin_commit`] returned: on success the
    /// records below its offset are committed (and the checkpoint advanced lazily, as by
    /// [`LogWriter::commit`]).
    ///
    /// # Errors
    /// [`WriteError::Io`] if the sync failed; the writer is then poisoned.
    pub fn finish_commit(&mut self, outcome: SyncOutcome) -> Result<(), WriteError> {
        self.in_flight = None;
        let path = outcome.path;
        self.poison_on_error(outcome.result.map_err(write_io(path)))?;
        if self.poisoned {
            return Err(WriteError::Poisoned);
        }
        self.committed_offset = self.committed_offset.max(outcome.upto);
        self.advance_checkpoint_lazily()
    }

    /// True while a commit begun with [`LogWriter::begin_commit`] has not finished.
    pub fn commit_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Syncs everything written, whatever the durability, and advances the checkpoint to the
    /// end. Used on shutdown.
    ///
    /// # Errors
    /// [`WriteError::Io`]; the writer is then poisoned.
    pub fn sync(&mut self) -> Result<(), WriteError> {
        if self.poisoned {
            return Err(WriteError::Poisoned);
        }
        for path in std::mem::take(&mut self.unsynced_sealed) {
            let result =
                std::fs::File::open(&path).and_then(|file| self.storage.sync_file(&file, &path));
            self.poison_on_error(result.map_err(write_io(&path)))?;
        }
        self.settle_in_flight()?;
        self.sync_active()?;
        self.committed_offset = self.next_offset;
        if self.checkpoint.current.durable_offset < self.next_offset {
            self.advance_checkpoint()?;
        }
        Ok(())
    }

    /// Syncs and releases the log.
    ///
    /// # Errors
    /// As [`LogWriter::sync`].
    pub fn close(mut self) -> Result<(), WriteError> {
        self.sync()
    }

    /// The record at `offset` (committed or not), fully checked.
    ///
    /// # Errors
    /// [`ReadError::OutOfRange`] or [`ReadError::Corrupt`].
    pub fn read(&self, offset: u64) -> Result<Record<'_>, ReadError> {
        self.set
            .read(offset, Some(self.next_offset), self.next_offset)
    }

    /// Iterates appended records from `offset`.
    ///
    /// # Errors
    /// [`ReadError::OutOfRange`] if `offset` is below the first retained offset.
    pub fn iter_from(&self, offset: u64) -> Result<LogIter<'_>, ReadError> {
        self.set
            .iter_from(offset, Some(self.next_offset), self.next_offset)
    }

    /// Checks every record.
    ///
    /// # Errors
    /// The first [`Corruption`].
    pub fn verify(&self) -> Result<VerifyReport, Corruption> {
        self.set.verify(Some(self.next_offset), self.next_offset)
    }

    /// Deletes the segments whose records all lie below `offset` and below the checkpoint.
    /// The active segment is never deleted. Returns the deleted files.
    ///
    /// # Errors
    /// [`WriteError::Io`] if a file could not be removed.
    pub fn delete_below(&mut self, offset: u64) -> Result<Vec<PathBuf>, WriteError> {
        let limit = offset.min(self.checkpoint.current.durable_offset);
        let mut removable = 0;
        // A segment ends where the next one starts; only sealed segments have a next one.
        while removable + 1 < self.set.segments.len()
            && self.set.segments[removable + 1].base_offset <= limit
        {
            removable += 1;
        }
        let removed: Vec<Segment> = self.set.segments.drain(..removable).collect();
        let mut paths = Vec::new();
        for segment in removed {
            std::fs::remove_file(&segment.path).map_err(write_io(&segment.path))?;
            let _ = std::fs::remove_file(segment.path.with_extension("idx"));
            tracing::info!(segment = %segment.path.display(), "deleted segment below retention offset");
            paths.push(segment.path);
        }
        if !paths.is_empty() {
            self.storage
                .sync_dir(&self.set.dir)
                .map_err(write_io(&self.set.dir))?;
        }
        Ok(paths)
    }

    /// Next offset to be assigned.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Records below this offset are committed.
    pub fn committed_offset(&self) -> u64 {
        self.committed_offset
    }

    /// Records below this offset are recorded durable in the checkpoint.
    pub fn durable_offset(&self) -> u64 {
        self.checkpoint.current.durable_offset
    }

    /// First retained offset.
    pub fn first_offset(&self) -> u64 {
        self.set.first_offset()
    }

    /// The random id fixed when the log was created.
    pub fn log_id(&self) -> u128 {
        self.log_id
    }

    /// The durability commits give.
    pub fn durability(&self) -> Durability {
        self.config.durability
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.set.infos()
    }

    /// True after a sync failed; every write is refused until the log is reopened.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    fn poison_on_error<T>(&mut self, result: Result<T, WriteError>) -> Result<T, WriteError> {
        if result.is_err() {
            tracing::error!(dir = %self.set.dir.display(), "log sync failed; writer poisoned");
            self.poisoned = true;
        }
        result
    }

    /// The active segment and its bytes not yet synced: from the last sync's end, rounded
    /// down to a page, to the write position.
    fn unsynced_range(&self) -> (&Segment, usize, usize) {
        let segment = self
            .set
            .segments
            .last()
            .expect("invariant: the writer has an active segment");
        let from = self.unsynced_from & !4095;
        (segment, from as usize, (self.position - from) as usize)
    }

    fn sync_active(&mut self) -> Result<(), WriteError> {
        let (segment, position, len) = self.unsynced_range();
        let result = self.storage.sync_range(SyncRange {
            path: &segment.path,
            map: &segment.map,
            position,
            len,
        });
        let path = segment.path.clone();
        self.poison_on_error(result.map_err(write_io(path)))?;
        self.unsynced_from = self.position;
        Ok(())
    }

    fn advance_checkpoint(&mut self) -> Result<(), WriteError> {
        let result = self
            .checkpoint
            .advance(self.committed_offset, &*self.storage);
        let path = self.checkpoint.path.clone();
        self.poison_on_error(result.map_err(write_io(path)))?;
        self.rolled_since_checkpoint = false;
        Ok(())
    }

    /// Ensures `needed` bytes fit at the write position: grows an empty active segment, or
    /// seals the active one and starts the next.
    fn make_room(&mut self, needed: u64) -> Result<(), WriteError> {
        let segment = self
            .set
            .segments
            .last()
            .expect("invariant: the writer has an active segment");
        if self.position + needed <= segment.map.len() {
            return Ok(());
        }
        let capacity = self
            .config
            .segment_bytes
            .max(SEGMENT_HEADER_BYTES as u64 + needed);
        if segment.base_offset == self.next_offset {
            return self.grow_active(capacity);
        }
        self.roll(capacity)
    }

    fn grow_active(&mut self, capacity: u64) -> Result<(), WriteError> {
        let segment = self
            .set
            .segments
            .last_mut()
            .expect("invariant: the writer has an active segment");
        reserve(&*self.storage, &segment.file, &segment.path, capacity)?;
        self.storage
            .map(&segment.path, capacity)
            .map_err(write_io(&segment.path))?;
        segment.map = Map::write(&segment.file, capacity).map_err(write_io(&segment.path))?;
        Ok(())
    }

    fn roll(&mut self, capacity: u64) -> Result<(), WriteError> {
        let base_offset = self.next_offset;
        let path = self.set.dir.join(segment_file_name(base_offset));
        let segment = create_segment(
            &*self.storage,
            &path,
            base_offset,
            self.log_id,
            &self.config,
            capacity,
        )?;
        // Seal the old segment: sync its data (strict) or remember to (os), write its index.
        match self.config.durability {
            // A commit still in flight in the sealed segment is synced here too, so what a
            // power cut keeps of it is a prefix: no hole that later synced records follow.
            Durability::Strict => {
                self.settle_in_flight()?;
                self.sync_active()?;
            }
            Durability::Os => {
                let sealed = self.set.segments.last().expect("invariant: active segment");
                self.unsynced_sealed.push(sealed.path.clone());
            }
        }
        let entries = self.set.active_index.take().unwrap_or_default();
        let sealed = self.set.segments.last().expect("invariant: active segment");
        write_index(&sealed.path, sealed.base_offset, &entries);
        let _ = sealed.index.set(entries);
        let dir = self.set.dir.clone();
        let result = self.storage.sync_dir(&dir);
        self.poison_on_error(result.map_err(write_io(&dir)))?;
        tracing::info!(segment = %path.display(), offset = base_offset, "rolled to a new segment");
        self.set.segments.push(segment);
        self.set.active_index = Some(Vec::new());
        self.position = SEGMENT_HEADER_BYTES as u64;
        self.unsynced_from = self.position;
        self.rolled_since_checkpoint = true;
        Ok(())
    }

    /// Scans from the checkpoint's segment (from the first one when repairing), cuts a torn
    /// tail above the checkpoint, and sets up the active segment.
    ///
    /// Every segment header is checked (identity, format flags). Sealed segments below the
    /// checkpoint's segment are walked only from their last index entry, to find where they end
    /// and check that the next segment starts there (contiguous base offsets). Damage above
    /// the checkpoint is cut only when no valid record follows it ([`find_witness`]).
    fn recover(&mut self, files: Vec<(u64, PathBuf)>) -> Result<(), OpenError> {
        let durable_offset = self.checkpoint.current.durable_offset;
        if files.is_empty() {
            if durable_offset > 0 {
                let path = self.set.dir.join(segment_file_name(0));
                let kind = DamageKind::MissingRecords {
                    next_base_offset: durable_offset,
                };
                return Err(Corruption::new(path, 0, 0, kind).into());
            }
            return self.start_fresh(0);
        }
        let scan_from = if self.config.repair {
            0
        } else {
            files
                .partition_point(|(base, _)| *base <= durable_offset)
                .saturating_sub(1)
        };
        let mut segments = Vec::new();
        let mut outcome = None;
        for (index, (base_offset, path)) in files.iter().enumerate() {
            let writable = index + 1 == files.len();
            let (segment, header) = open_segment(path, *base_offset, writable)?;
            match check_header(&segment, header, Some(self.log_id)) {
                Ok(header) if header.payload_format_flags != self.config.payload_format_flags => {
                    return Err(OpenError::FormatFlags {
                        segment: path.clone(),
                        expected: self.config.payload_format_flags,
                        found: header.payload_format_flags,
                    });
                }
                Ok(_) => {}
                Err(kind) => {
                    outcome = Some((segments.len(), *base_offset, 0, Some(kind)));
                    segments.push(segment);
                    break;
                }
            }
            segments.push(segment);
            let start = if index < scan_from {
                let sealed = &segments[index];
                sealed.seek_position(sealed.sealed_index(), u64::MAX)
            } else {
                (SEGMENT_HEADER_BYTES as u64, *base_offset)
            };
            if let Some(found) = scan_segment(&segments, &files, index, durable_offset, start) {
                outcome = Some(found);
                break;
            }
        }
        let trailing: Vec<(u64, PathBuf)> = files.iter().skip(segments.len()).cloned().collect();
        self.set.segments = segments;
        match outcome {
            Some((segment_index, offset, position, kind)) => {
                self.refuse_unless_torn(segment_index, offset, position, kind, &trailing)?;
                let trailing = trailing.into_iter().map(|(_, path)| path).collect();
                self.cut(segment_index, offset, position, kind, trailing)?;
            }
            None => {
                let last = self.set.segments.len() - 1;
                let (offset, position) = end_of(&self.set.segments[last]);
                self.activate(offset, position)?;
            }
        }
        self.recovery.next_offset = self.next_offset;
        self.recovery.records_scanned = self.next_offset.saturating_sub(durable_offset);
        Ok(())
    }

    /// Refuses to cut damage above the checkpoint that is not a torn tail: overlapping
    /// segments, or damage followed by a valid record with a consistent offset. A repair cuts
    /// at the first damage whatever follows.
    fn refuse_unless_torn(
        &self,
        segment_index: usize,
        offset: u64,
        position: u64,
        kind: Option<DamageKind>,
        trailing: &[(u64, PathBuf)],
    ) -> Result<(), OpenError> {
        if self.config.repair || offset < self.checkpoint.current.durable_offset {
            return Ok(());
        }
        let segment = &self.set.segments[segment_index];
        let kind_or_zeroed = kind.unwrap_or(DamageKind::Zeroed);
        if matches!(kind, Some(DamageKind::SegmentOverlap { .. })) {
            return Err(segment.corruption(offset, position, kind_or_zeroed).into());
        }
        let damage = DamageAt {
            segment_index,
            position,
            offset,
        };
        let witness = find_witness(&self.set.segments, damage, trailing, Some(self.log_id))?;
        match witness {
            Some(witness) => {
                let mut corruption = segment.corruption(offset, position, kind_or_zeroed);
                corruption.followed_by = Some(witness);
                tracing::error!(
                    offset,
                    segment = %segment.path.display(),
                    "damage above the checkpoint is followed by valid records; refusing to cut"
                );
                Err(corruption.into())
            }
            None => Ok(()),
        }
    }

    /// Makes durable what recovery kept: records a crashed process appended but never synced
    /// still sit in the page cache, and a later checkpoint must not claim them while they
    /// could still vanish in a power cut. Syncs every segment from the checkpoint's one to the
    /// end (`fdatasync` writes only dirty pages), the directory, then advances the checkpoint
    /// to the recovered end. Runs once per open, before the first append.
    fn sync_recovered(&mut self) -> Result<(), OpenError> {
        let durable_offset = self.checkpoint.current.durable_offset;
        if self.next_offset <= durable_offset && self.recovery.cut.is_none() {
            return Ok(());
        }
        let first = self
            .set
            .segments
            .partition_point(|segment| segment.base_offset <= durable_offset)
            .saturating_sub(1);
        for segment in &self.set.segments[first..] {
            self.storage
                .sync_file(&segment.file, &segment.path)
                .map_err(open_io(&segment.path))?;
        }
        self.storage
            .sync_dir(&self.set.dir)
            .map_err(open_io(&self.set.dir))?;
        if self.next_offset > durable_offset {
            self.checkpoint
                .advance(self.next_offset, &*self.storage)
                .map_err(open_io(&self.checkpoint.path))?;
        }
        self.committed_offset = self.next_offset;
        Ok(())
    }

    /// Cuts the log at `position` of segment `segment_index` (offset `offset`), removing every
    /// later segment, or refuses if that is below the checkpoint and this is not a repair.
    fn cut(
        &mut self,
        segment_index: usize,
        offset: u64,
        position: u64,
        kind: Option<DamageKind>,
        trailing: Vec<PathBuf>,
    ) -> Result<(), OpenError> {
        let durable_offset = self.checkpoint.current.durable_offset;
        let below_checkpoint = offset < durable_offset;
        let segment = &self.set.segments[segment_index];
        if below_checkpoint && !self.config.repair {
            let kind = kind.unwrap_or(DamageKind::Zeroed);
            return Err(segment.corruption(offset, position, kind).into());
        }
        // A damaged header means the whole segment goes; otherwise zero its tail.
        let drop_whole = position == 0;
        let first_removed = if drop_whole {
            segment_index
        } else {
            segment_index + 1
        };
        let mut removed: Vec<Segment> = self.set.segments.drain(first_removed..).collect();
        let mut bytes_cut = 0;
        let mut records_cut = 0;
        let mut segments_removed = Vec::new();
        for segment in &removed {
            let (records, bytes) = count_after(
                segment.map.bytes(),
                SEGMENT_HEADER_BYTES as u64,
                segment.base_offset,
            );
            records_cut += records;
            bytes_cut += bytes;
        }
        let cut_segment_path = if drop_whole {
            removed
                .first()
                .map(|segment| segment.path.clone())
                .unwrap_or_default()
        } else {
            self.set.segments[segment_index].path.clone()
        };
        for path in removed
            .drain(..)
            .map(|segment| segment.path)
            .chain(trailing)
        {
            std::fs::remove_file(&path).map_err(open_io(&path))?;
            let _ = std::fs::remove_file(path.with_extension("idx"));
            segments_removed.push(path);
        }
        self.storage
            .sync_dir(&self.set.dir)
            .map_err(open_io(&self.set.dir))?;
        if drop_whole {
            if self.set.segments.is_empty() {
                self.start_fresh(offset)?;
            } else {
                let last = self.set.segments.len() - 1;
                self.remap_writable(last)?;
                let (end_offset, end_position) = end_of(&self.set.segments[last]);
                self.activate(end_offset, end_position)?;
            }
        } else {
            let last = self.set.segments.len() - 1;
            self.remap_writable(last)?;
            let segment = &mut self.set.segments[last];
            let (records, bytes) = count_after(segment.map.bytes(), position, offset);
            records_cut += records;
            bytes_cut += bytes;
            zero_tail(&*self.storage, segment, position).map_err(open_io(&segment.path))?;
            self.activate(offset, position)?;
        }
        if below_checkpoint {
            self.checkpoint
                .advance(self.next_offset, &*self.storage)
                .map_err(open_io(&self.set.dir))?;
        }
        let cut = Cut {
            segment: cut_segment_path,
            offset,
            position,
            kind,
            bytes_cut,
            records_cut,
            segments_removed,
            below_checkpoint,
        };
        if cut.bytes_cut > 0 || !cut.segments_removed.is_empty() {
            tracing::warn!(
                offset,
                segment = %cut.segment.display(),
                bytes = cut.bytes_cut,
                records = cut.records_cut,
                "cut torn tail"
            );
            self.recovery.cut = Some(cut);
        }
        Ok(())
    }

    fn remap_writable(&mut self, segment_index: usize) -> Result<(), OpenError> {
        let segment = &mut self.set.segments[segment_index];
        if !segment.map.is_writable() {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&segment.path)
                .map_err(open_io(&segment.path))?;
            let len = file.metadata().map_err(open_io(&segment.path))?.len();
            segment.map = Map::write(&file, len).map_err(open_io(&segment.path))?;
            segment.file = file;
        }
        Ok(())
    }

    /// Makes the last segment the active one, writing at `position` with `offset` next.
    fn activate(&mut self, offset: u64, position: u64) -> Result<(), OpenError> {
        let last = self.set.segments.len() - 1;
        let segment = &self.set.segments[last];
        // A sealed segment may become active again after a cut; its old index file is stale.
        let _ = std::fs::remove_file(segment.path.with_extension("idx"));
        self.set.active_index = Some(build_index(segment.map.bytes(), segment.base_offset));
        self.next_offset = offset;
        self.committed_offset = offset;
        self.position = position;
        self.unsynced_from = position;
        Ok(())
    }

    fn start_fresh(&mut self, base_offset: u64) -> Result<(), OpenError> {
        let path = self.set.dir.join(segment_file_name(base_offset));
        let segment = create_segment(
            &*self.storage,
            &path,
            base_offset,
            self.log_id,
            &self.config,
            self.config.segment_bytes,
        )
        .map_err(|error| match error {
            WriteError::Io { path, source } => OpenError::Io { path, source },
            other => OpenError::Io {
                path: path.clone(),
                source: std::io::Error::other(other.to_string()),
            },
        })?;
        self.storage
            .sync_dir(&self.set.dir)
            .map_err(open_io(&self.set.dir))?;
        self.set.segments.push(segment);
        self.activate(base_offset, SEGMENT_HEADER_BYTES as u64)
    }
}

/// Walks segment `index` from `start` (position, offset); returns where the walk must stop
/// for a cut (segment index, offset, position, damage) or `None` if it ends cleanly at the
/// next segment or the end of the log.
fn scan_segment(
    segments: &[Segment],
    files: &[(u64, PathBuf)],
    index: usize,
    durable_offset: u64,
    start: (u64, u64),
) -> Option<(usize, u64, u64, Option<DamageKind>)> {
    let segment = &segments[index];
    let (mut position, mut offset) = start;
    // Bounded: every step advances by at least one record header.
    loop {
        match segment.step(position, offset) {
            Step::Record { next_position, .. } => {
                position = next_position;
                // `step` never accepts a record at `u64::MAX`.
                offset += 1;
            }
            Step::End => {
                let damage = match files.get(index + 1) {
                    Some((next_base, _)) if *next_base == offset => return None,
                    Some((next_base_offset, _)) if *next_base_offset < offset => {
                        DamageKind::SegmentOverlap {
                            next_base_offset: *next_base_offset,
                        }
                    }
                    Some((next_base_offset, _)) => DamageKind::MissingRecords {
                        next_base_offset: *next_base_offset,
                    },
                    // The log ends before the checkpoint: acknowledged records are missing.
                    None if offset < durable_offset => DamageKind::Zeroed,
                    None if has_bytes_after(segment.map.bytes(), position) => {
                        return Some((index, offset, position, None));
                    }
                    None => return None,
                };
                return Some((index, offset, position, Some(damage)));
            }
            Step::Damaged(kind) => return Some((index, offset, position, Some(kind))),
        }
    }
}

/// Offset and position after the last valid record of a segment.
fn end_of(segment: &Segment) -> (u64, u64) {
    let mut position = SEGMENT_HEADER_BYTES as u64;
    let mut offset = segment.base_offset;
    while let Step::Record { next_position, .. } = segment.step(position, offset) {
        position = next_position;
        offset += 1;
    }
    (offset, position)
}

fn has_bytes_after(bytes: &[u8], position: u64) -> bool {
    bytes
        .get(position as usize..)
        .is_some_and(|rest| rest.iter().any(|&byte| byte != 0))
}

/// Counts what lies past a cut: records still told apart (skipping damaged ones whose
/// length is plausible) and non-zero bytes up to the last one.
fn count_after(bytes: &[u8], position: u64, offset: u64) -> (u64, u64) {
    let start = (position as usize).min(bytes.len());
    let last_non_zero = bytes[start..].iter().rposition(|&byte| byte != 0);
    let bytes_cut = last_non_zero.map_or(0, |last| last as u64 + 1);
    let end = start as u64 + bytes_cut;
    let mut records = 0;
    let mut position = position;
    let mut offset = offset;
    // Bounded: every iteration advances `position` by at least a record header.
    while position < end {
        match crate::segment::step(bytes, position, offset) {
            Step::Record { next_position, .. } => position = next_position,
            Step::End => break,
            Step::Damaged(_) => {
                let header: &[u8; RECORD_HEADER_BYTES] = bytes[position as usize..]
                    [..RECORD_HEADER_BYTES]
                    .try_into()
                    .expect("invariant: a damaged step had a whole header");
                let length = RecordHeader::decode(header).record_bytes();
                if position + length > end {
                    records += 1;
                    break;
                }
                position += length;
            }
        }
        records += 1;
        offset = offset.saturating_add(1);
    }
    (records, bytes_cut)
}

fn zero_tail(storage: &dyn Storage, segment: &mut Segment, position: u64) -> std::io::Result<()> {
    let bytes = segment.map.bytes();
    let start = (position as usize).min(bytes.len());
    let Some(last) = bytes[start..].iter().rposition(|&byte| byte != 0) else {
        return Ok(());
    };
    let zeroed = segment.map.zero(start, last + 1);
    assert!(zeroed, "invariant: the cut segment is mapped writable");
    storage.sync_range(SyncRange {
        path: &segment.path,
        map: &segment.map,
        position: start & !4095,
        len: last + 1 + (start & 4095),
    })
}

/// Creates, reserves, stamps and maps a new segment file. On any failure the file is removed
/// again, so a later roll can create it afresh.
fn create_segment(
    storage: &dyn Storage,
    path: &Path,
    base_offset: u64,
    log_id: u128,
    config: &LogConfig,
    capacity: u64,
) -> Result<Segment, WriteError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(write_io(path))?;
    match create_segment_fill(storage, &file, path, base_offset, log_id, config, capacity) {
        Ok(map) => Ok(Segment {
            base_offset,
            path: path.to_owned(),
            file,
            map,
            index: Default::default(),
        }),
        Err(error) => {
            let _ = std::fs::remove_file(path);
            Err(error)
        }
    }
}

fn create_segment_fill(
    storage: &dyn Storage,
    file: &std::fs::File,
    path: &Path,
    base_offset: u64,
    log_id: u128,
    config: &LogConfig,
    capacity: u64,
) -> Result<Map, WriteError> {
    reserve(storage, file, path, capacity)?;
    let header = SegmentHeader {
        format_version: FORMAT_VERSION,
        checksum_kind: CHECKSUM_KIND_CRC32,
        payload_format_flags: config.payload_format_flags,
        base_offset,
        log_id,
    };
    use std::os::unix::fs::FileExt;
    file.write_all_at(&header.encode(), 0)
        .map_err(write_io(path))?;
    if config.durability == Durability::Strict {
        storage.sync_file(file, path).map_err(write_io(path))?;
    }
    storage.map(path, capacity).map_err(write_io(path))?;
    Map::write(file, capacity).map_err(write_io(path))
}

/// Reserves `capacity` bytes of real disk space for `file` through `storage`, so writes
/// through the mapping never hit a hole (a hole on a full disk is SIGBUS). `ENOSPC` is
/// [`WriteError::NoSpace`]: nothing was written and the writer stays usable.
fn reserve(
    storage: &dyn Storage,
    file: &std::fs::File,
    path: &Path,
    capacity: u64,
) -> Result<(), WriteError> {
    storage.reserve(file, path, capacity).map_err(|error| {
        if error.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
            WriteError::NoSpace {
                path: path.to_owned(),
                bytes: capacity,
            }
        } else {
            WriteError::Io {
                path: path.to_owned(),
                source: error,
            }
        }
    })
}

fn new_log_id() -> Result<u128, OpenError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| OpenError::Io {
        path: PathBuf::from("getrandom"),
        source: std::io::Error::other(error.to_string()),
    })?;
    Ok(u128::from_le_bytes(bytes))
}

fn first_log_id(files: &[(u64, PathBuf)]) -> Result<u128, OpenError> {
    for (_, path) in files {
        let bytes = std::fs::read(path).map_err(open_io(path))?;
        if let Ok(header) = SegmentHeader::decode(&bytes) {
            return Ok(header.log_id);
        }
    }
    new_log_id()
}
