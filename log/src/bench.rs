//! `relay bench log`: throughput and latency of the log beside the raw file-system limit,
//! measured in one run on the same disk. Prints figures; asserts nothing about time.
//!
//! It also prices the checkpoint policy: `strict` commits with the writer's policy (the
//! checkpoint advances every [`crate::limits::CHECKPOINT_INTERVAL_RECORDS`] records and after
//! a roll) beside the alternative of advancing it at every commit (a commit followed by the
//! checkpoint write, which [`LogWriter::sync`] does), two logs committed in turn so that both
//! meet the same disk, with the syncs each commit costs counted through the storage seam.
//!
//! It lives in this crate because only `log/` may call `fdatasync` and map files; the CLI
//! only forwards its output.

use std::fmt;
use std::fs::File;
use std::hint::black_box;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::format::RECORD_HEADER_BYTES;
use crate::storage::{RealStorage, Storage, SyncRange};
use crate::{Durability, LogConfig, LogReader, LogWriter, NewRecord};

/// Payload size of the append benchmarks, in bytes.
pub const BENCH_PAYLOAD_BYTES: usize = 256;

/// Bytes one benchmark record takes in a segment (header plus payload; 256 needs no padding).
const BENCH_RECORD_BYTES: u64 = (RECORD_HEADER_BYTES + BENCH_PAYLOAD_BYTES) as u64;

/// Records above the checkpoint in the recovery benchmarks (about 6 MiB, one segment).
pub const BENCH_RECOVERY_RECORDS: u64 = 20_000;

/// What to measure and where.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Scratch directory on the disk under test; removed afterwards.
    pub dir: PathBuf,
    /// Records appended in the `os` append benchmark.
    pub append_records: u64,
    /// Group commits measured per batch size in the `strict` benchmark.
    pub strict_commits: u64,
    /// Size of the log built for the replay benchmark, in bytes.
    pub replay_bytes: u64,
}

/// Throughput of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Throughput {
    /// Records (or equivalent writes) handled.
    pub records: u64,
    /// Bytes handled.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl Throughput {
    /// Records per second.
    pub fn records_per_second(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Bytes per second.
    pub fn bytes_per_second(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Commit latency and throughput at one group-commit size.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupCommitFigures {
    /// Records per commit.
    pub batch: u64,
    /// The log, `strict` durability.
    pub log: Throughput,
    /// Median commit latency of the log.
    pub log_commit_p50: Duration,
    /// 99th percentile commit latency of the log.
    pub log_commit_p99: Duration,
    /// A plain `write()` + `fdatasync` loop with the same bytes per commit.
    pub raw: Throughput,
    /// Median `fdatasync` latency of the raw loop.
    pub raw_sync_p50: Duration,
    /// 99th percentile `fdatasync` latency of the raw loop.
    pub raw_sync_p99: Duration,
}

/// Group-commit sizes of the `strict` and checkpoint-policy benchmarks.
const BENCH_BATCHES: [u64; 3] = [1, 64, 1024];

/// `strict` commits under one checkpoint policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyFigures {
    /// Appends and commits, timed together.
    pub log: Throughput,
    /// Commits made.
    pub commits: u64,
    /// Median commit latency (with the checkpoint write, when the commit makes one).
    pub commit_p50: Duration,
    /// 99th percentile commit latency.
    pub commit_p99: Duration,
    /// Data syncs (`msync`, `fdatasync` of a file, `fsync` of the directory) made.
    pub data_syncs: u64,
    /// Checkpoint writes (`pwrite` + `fdatasync`) made.
    pub checkpoint_writes: u64,
}

impl PolicyFigures {
    /// Syncs of any kind per commit.
    pub fn syncs_per_commit(&self) -> f64 {
        (self.data_syncs + self.checkpoint_writes) as f64 / self.commits.max(1) as f64
    }

    /// Commits per second.
    pub fn commits_per_second(&self) -> f64 {
        self.commits as f64 / self.log.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The checkpoint policy's cost at one group-commit size: the writer's policy beside a
/// checkpoint at every commit, measured in turn on the same disk.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckpointPolicyFigures {
    /// Records per commit.
    pub batch: u64,
    /// The writer's policy ([`LogWriter::commit`]).
    pub current: PolicyFigures,
    /// A checkpoint at every commit ([`LogWriter::sync`] as the commit).
    pub every_commit: PolicyFigures,
}

impl CheckpointPolicyFigures {
    /// Throughput with a checkpoint at every commit, as a share of the current policy's.
    pub fn ratio(&self) -> f64 {
        self.every_commit.log.records_per_second() / self.current.log.records_per_second().max(1e-9)
    }
}

/// Everything `relay bench log` measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogBenchReport {
    /// Appends with `os` durability.
    pub append_os: Throughput,
    /// A plain `write()` loop of the same record bytes.
    pub append_raw: Throughput,
    /// `strict` durability at group-commit sizes 1, 64 and 1024.
    pub strict: Vec<GroupCommitFigures>,
    /// The checkpoint policy's cost at the same sizes.
    pub checkpoint_policy: Vec<CheckpointPolicyFigures>,
    /// Full CRC-verified scan of the replay log.
    pub replay: Throughput,
    /// `memcpy` of the same mapped bytes.
    pub replay_memcpy: Throughput,
    /// Open after a crash with [`BENCH_RECOVERY_RECORDS`] records above the checkpoint:
    /// the scan, then the sync of what recovery keeps.
    pub recovery_crash: Duration,
    /// The same with the last record damaged, in a default-size segment: adds the search for
    /// a valid record after the damage over the rest of the segment, and the cut.
    pub recovery_torn_tail: Duration,
}

/// Runs every log benchmark in `config.dir`, printing progress to `progress`.
///
/// # Errors
/// Any file-system or log failure.
pub fn run(config: &BenchConfig, progress: &mut dyn Write) -> io::Result<LogBenchReport> {
    std::fs::create_dir_all(&config.dir)?;
    let mut report = LogBenchReport::default();
    writeln!(
        progress,
        "append: {} records of {BENCH_PAYLOAD_BYTES} bytes",
        config.append_records
    )?;
    report.append_os = append_os(&config.dir.join("append-os"), config.append_records)?;
    report.append_raw = append_raw(&config.dir.join("append-raw"), config.append_records)?;
    for batch in BENCH_BATCHES {
        writeln!(
            progress,
            "strict: {} commits of {batch} records",
            config.strict_commits
        )?;
        report
            .strict
            .push(strict(&config.dir, batch, config.strict_commits)?);
    }
    for batch in BENCH_BATCHES {
        writeln!(
            progress,
            "checkpoint policy: {} commits of {batch} records with each",
            config.strict_commits
        )?;
        report.checkpoint_policy.push(checkpoint_policy(
            &config.dir,
            batch,
            config.strict_commits,
        )?);
    }
    writeln!(
        progress,
        "replay: building a {} MiB log",
        config.replay_bytes >> 20
    )?;
    let replay_dir = config.dir.join("replay");
    build_log(&replay_dir, config.replay_bytes)?;
    let reader = LogReader::open(&replay_dir).map_err(io::Error::other)?;
    scan(&reader)?; // warm the page cache and the page tables
    report.replay_memcpy = memcpy_segments(&reader);
    report.replay = scan(&reader)?;
    drop(reader);
    writeln!(
        progress,
        "recovery: {BENCH_RECOVERY_RECORDS} records above the checkpoint"
    )?;
    report.recovery_crash = recovery(&config.dir.join("recovery-crash"), false)?;
    report.recovery_torn_tail = recovery(&config.dir.join("recovery-torn"), true)?;
    let _ = std::fs::remove_dir_all(&config.dir);
    Ok(report)
}

/// Appends `bytes` worth of 256-byte records to a fresh log in `dir` and syncs it.
///
/// # Errors
/// Any file-system or log failure.
pub fn build_log(dir: &Path, bytes: u64) -> io::Result<u64> {
    let _ = std::fs::remove_dir_all(dir);
    let config = LogConfig {
        durability: Durability::Os,
        ..LogConfig::default()
    };
    let mut log = LogWriter::open(dir, config).map_err(io::Error::other)?;
    let payload = [0x5au8; BENCH_PAYLOAD_BYTES];
    let records = bytes / BENCH_RECORD_BYTES;
    for index in 0..records {
        log.append(&record(&payload, index))
            .map_err(io::Error::other)?;
    }
    log.close().map_err(io::Error::other)?;
    Ok(records)
}

/// Reads every record of `reader` with full CRC and structure checks.
///
/// # Errors
/// Corruption, as an `io::Error`.
pub fn scan(reader: &LogReader) -> io::Result<Throughput> {
    let start = Instant::now();
    let mut throughput = Throughput::default();
    for record in reader
        .iter_from(reader.first_offset())
        .map_err(io::Error::other)?
    {
        let record = record.map_err(io::Error::other)?;
        throughput.records += 1;
        throughput.bytes += crate::format::record_bytes(black_box(record.payload).len());
    }
    throughput.elapsed = start.elapsed();
    Ok(throughput)
}

/// Median and 99th percentile of one `strict` commit of a single record, in `dir`.
///
/// # Errors
/// Any file-system or log failure.
pub fn commit_latency(dir: &Path, commits: u64) -> io::Result<(Duration, Duration)> {
    let (_, p50, p99) = strict_log(dir, 1, commits)?;
    Ok((p50, p99))
}

/// Median and 99th percentile of one plain `write()` of one benchmark record plus
/// `fdatasync` in `dir`: the machine's limit for one durable commit, without the log.
///
/// # Errors
/// Any file-system failure.
pub fn fdatasync_latency(dir: &Path, syncs: u64) -> io::Result<(Duration, Duration)> {
    std::fs::create_dir_all(dir)?;
    let (_, p50, p99) = strict_raw(dir, 1, syncs)?;
    Ok((p50, p99))
}

/// As [`fdatasync_latency`], but each `write` + `fdatasync` comes `idle` after the one
/// before ended: on some disks (a VM's virtual disk) a sync after a quiet spell takes much
/// longer than one right after another, and an unloaded hub's syncs are of that kind.
///
/// # Errors
/// Any file-system failure.
pub fn idle_fdatasync_latency(
    dir: &Path,
    syncs: u64,
    idle: Duration,
) -> io::Result<(Duration, Duration)> {
    std::fs::create_dir_all(dir)?;
    let (_, p50, p99) = strict_raw_paced(dir, 1, syncs, idle)?;
    Ok((p50, p99))
}

/// Appends [`BENCH_RECOVERY_RECORDS`] records without a checkpoint, "crashes" (drops the
/// writer), optionally damages the last record, and times the next open.
fn recovery(dir: &Path, damage_last: bool) -> io::Result<Duration> {
    let _ = std::fs::remove_dir_all(dir);
    let config = LogConfig {
        durability: Durability::Os,
        ..LogConfig::default()
    };
    let mut log = LogWriter::open(dir, config.clone()).map_err(io::Error::other)?;
    let payload = [0x77u8; BENCH_PAYLOAD_BYTES];
    for index in 0..BENCH_RECOVERY_RECORDS {
        log.append(&record(&payload, index))
            .map_err(io::Error::other)?;
    }
    log.commit().map_err(io::Error::other)?;
    drop(log);
    if damage_last {
        use std::os::unix::fs::FileExt;
        let path = dir.join(crate::format::segment_file_name(0));
        let file = std::fs::OpenOptions::new().write(true).open(&path)?;
        let last = crate::format::SEGMENT_HEADER_BYTES as u64
            + (BENCH_RECOVERY_RECORDS - 1) * BENCH_RECORD_BYTES;
        file.write_all_at(&[0xff], last + RECORD_HEADER_BYTES as u64 + 7)?;
    }
    let start = Instant::now();
    let log = LogWriter::open(dir, config).map_err(io::Error::other)?;
    let elapsed = start.elapsed();
    let expected = BENCH_RECOVERY_RECORDS - u64::from(damage_last);
    if log.next_offset() != expected {
        return Err(io::Error::other(format!(
            "recovery kept {} records, expected {expected}",
            log.next_offset()
        )));
    }
    drop(log);
    let _ = std::fs::remove_dir_all(dir);
    Ok(elapsed)
}

fn record(payload: &[u8], index: u64) -> NewRecord<'_> {
    NewRecord {
        timestamp_us: index,
        kind: 1,
        schema_version: 1,
        origin_hub: 0,
        payload,
    }
}

fn append_os(dir: &Path, records: u64) -> io::Result<Throughput> {
    let _ = std::fs::remove_dir_all(dir);
    let config = LogConfig {
        durability: Durability::Os,
        ..LogConfig::default()
    };
    let mut log = LogWriter::open(dir, config).map_err(io::Error::other)?;
    let payload = [0xa5u8; BENCH_PAYLOAD_BYTES];
    let start = Instant::now();
    for index in 0..records {
        log.append(&record(&payload, index))
            .map_err(io::Error::other)?;
    }
    log.commit().map_err(io::Error::other)?;
    let elapsed = start.elapsed();
    drop(log);
    let _ = std::fs::remove_dir_all(dir);
    let bytes = records * BENCH_RECORD_BYTES;
    Ok(Throughput {
        records,
        bytes,
        elapsed,
    })
}

fn append_raw(path: &Path, records: u64) -> io::Result<Throughput> {
    let mut file = File::create(path)?;
    let chunk = [0xa5u8; BENCH_RECORD_BYTES as usize];
    let start = Instant::now();
    for _ in 0..records {
        file.write_all(black_box(&chunk))?;
    }
    let elapsed = start.elapsed();
    drop(file);
    std::fs::remove_file(path)?;
    Ok(Throughput {
        records,
        bytes: records * chunk.len() as u64,
        elapsed,
    })
}

fn strict(dir: &Path, batch: u64, commits: u64) -> io::Result<GroupCommitFigures> {
    let (log, log_commit_p50, log_commit_p99) = strict_log(dir, batch, commits)?;
    let (raw, raw_sync_p50, raw_sync_p99) = strict_raw(dir, batch, commits)?;
    Ok(GroupCommitFigures {
        batch,
        log,
        log_commit_p50,
        log_commit_p99,
        raw,
        raw_sync_p50,
        raw_sync_p99,
    })
}

/// `commits` group commits of `batch` records each, `strict`: throughput and commit latency.
fn strict_log(
    dir: &Path,
    batch: u64,
    commits: u64,
) -> io::Result<(Throughput, Duration, Duration)> {
    let log_dir = dir.join(format!("strict-{batch}"));
    let _ = std::fs::remove_dir_all(&log_dir);
    let mut log = LogWriter::open(&log_dir, LogConfig::default()).map_err(io::Error::other)?;
    let payload = [0x3cu8; BENCH_PAYLOAD_BYTES];
    let mut latencies = Vec::with_capacity(commits as usize);
    let start = Instant::now();
    for _ in 0..commits {
        for index in 0..batch {
            log.append(&record(&payload, index))
                .map_err(io::Error::other)?;
        }
        let commit_start = Instant::now();
        log.commit().map_err(io::Error::other)?;
        latencies.push(commit_start.elapsed());
    }
    let throughput = Throughput {
        records: batch * commits,
        bytes: batch * commits * BENCH_RECORD_BYTES,
        elapsed: start.elapsed(),
    };
    drop(log);
    let _ = std::fs::remove_dir_all(&log_dir);
    let (p50, p99) = percentiles(&mut latencies);
    Ok((throughput, p50, p99))
}

/// Real storage that counts the syncs a log makes.
#[derive(Debug, Default)]
struct CountingStorage {
    data_syncs: AtomicU64,
    checkpoint_writes: AtomicU64,
}

impl Storage for CountingStorage {
    fn sync_range(&self, range: SyncRange<'_>) -> io::Result<()> {
        self.data_syncs.fetch_add(1, Ordering::Relaxed);
        range.sync()
    }

    fn sync_file(&self, file: &File, path: &Path) -> io::Result<()> {
        self.data_syncs.fetch_add(1, Ordering::Relaxed);
        RealStorage.sync_file(file, path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.data_syncs.fetch_add(1, Ordering::Relaxed);
        RealStorage.sync_dir(dir)
    }

    fn write_checkpoint(
        &self,
        file: &File,
        path: &Path,
        slot: &[u8],
        position: u64,
    ) -> io::Result<()> {
        self.checkpoint_writes.fetch_add(1, Ordering::Relaxed);
        RealStorage.write_checkpoint(file, path, slot, position)
    }
}

/// One `strict` log of the checkpoint-policy benchmark and what it measured so far.
struct PolicyRun {
    dir: PathBuf,
    log: LogWriter,
    storage: Arc<CountingStorage>,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl PolicyRun {
    fn open(dir: PathBuf, commits: u64) -> io::Result<PolicyRun> {
        let _ = std::fs::remove_dir_all(&dir);
        let storage = Arc::new(CountingStorage::default());
        let log = LogWriter::open_with_storage(&dir, LogConfig::default(), storage.clone())
            .map_err(io::Error::other)?;
        Ok(PolicyRun {
            dir,
            log,
            storage,
            elapsed: Duration::ZERO,
            latencies: Vec::with_capacity(commits as usize),
        })
    }

    /// Appends `batch` records and commits them, with the checkpoint at this commit when
    /// `checkpoint_each` (else as the writer's policy decides).
    fn commit_batch(
        &mut self,
        payload: &[u8],
        batch: u64,
        checkpoint_each: bool,
    ) -> io::Result<()> {
        let start = Instant::now();
        for index in 0..batch {
            self.log
                .append(&record(payload, index))
                .map_err(io::Error::other)?;
        }
        let commit_start = Instant::now();
        let committed = if checkpoint_each {
            self.log.sync()
        } else {
            self.log.commit()
        };
        committed.map_err(io::Error::other)?;
        self.latencies.push(commit_start.elapsed());
        self.elapsed += start.elapsed();
        Ok(())
    }

    fn finish(mut self, batch: u64) -> PolicyFigures {
        let commits = self.latencies.len() as u64;
        let (commit_p50, commit_p99) = percentiles(&mut self.latencies);
        let figures = PolicyFigures {
            log: Throughput {
                records: batch * commits,
                bytes: batch * commits * BENCH_RECORD_BYTES,
                elapsed: self.elapsed,
            },
            commits,
            commit_p50,
            commit_p99,
            data_syncs: self.storage.data_syncs.load(Ordering::Relaxed),
            checkpoint_writes: self.storage.checkpoint_writes.load(Ordering::Relaxed),
        };
        drop(self.log);
        let _ = std::fs::remove_dir_all(&self.dir);
        figures
    }
}

/// `commits` group commits of `batch` records under each checkpoint policy, alternating
/// between the two logs commit by commit so that a slow moment of the disk hits both.
fn checkpoint_policy(dir: &Path, batch: u64, commits: u64) -> io::Result<CheckpointPolicyFigures> {
    let mut current = PolicyRun::open(dir.join(format!("checkpoint-lazy-{batch}")), commits)?;
    let mut every = PolicyRun::open(dir.join(format!("checkpoint-each-{batch}")), commits)?;
    // The opens' own syncs and checkpoint are not the policy's.
    for run in [&current, &every] {
        run.storage.data_syncs.store(0, Ordering::Relaxed);
        run.storage.checkpoint_writes.store(0, Ordering::Relaxed);
    }
    let payload = [0x3cu8; BENCH_PAYLOAD_BYTES];
    for _ in 0..commits {
        current.commit_batch(&payload, batch, false)?;
        every.commit_batch(&payload, batch, true)?;
    }
    Ok(CheckpointPolicyFigures {
        batch,
        current: current.finish(batch),
        every_commit: every.finish(batch),
    })
}

/// The same bytes per commit through a plain `write()` + `fdatasync` loop.
fn strict_raw(
    dir: &Path,
    batch: u64,
    commits: u64,
) -> io::Result<(Throughput, Duration, Duration)> {
    strict_raw_paced(dir, batch, commits, Duration::ZERO)
}

/// [`strict_raw`] with `idle` of sleep before each write (none for `Duration::ZERO`).
fn strict_raw_paced(
    dir: &Path,
    batch: u64,
    commits: u64,
    idle: Duration,
) -> io::Result<(Throughput, Duration, Duration)> {
    let raw_path = dir.join(format!("strict-raw-{batch}-{}", idle.as_micros()));
    let mut file = File::create(&raw_path)?;
    let chunk = vec![0x3cu8; (batch * BENCH_RECORD_BYTES) as usize];
    let mut latencies = Vec::with_capacity(commits as usize);
    let start = Instant::now();
    for _ in 0..commits {
        if !idle.is_zero() {
            std::thread::sleep(idle);
        }
        file.write_all(&chunk)?;
        let sync_start = Instant::now();
        file.sync_data()?;
        latencies.push(sync_start.elapsed());
    }
    let throughput = Throughput {
        records: batch * commits,
        bytes: batch * commits * BENCH_RECORD_BYTES,
        elapsed: start.elapsed(),
    };
    drop(file);
    std::fs::remove_file(&raw_path)?;
    let (p50, p99) = percentiles(&mut latencies);
    Ok((throughput, p50, p99))
}

fn memcpy_segments(reader: &LogReader) -> Throughput {
    let mut buffer = vec![0u8; 64 << 20];
    let start = Instant::now();
    let mut bytes = 0u64;
    for segment in reader.mapped_segments() {
        for chunk in segment.chunks(buffer.len()) {
            buffer[..chunk.len()].copy_from_slice(chunk);
            black_box(&buffer);
            bytes += chunk.len() as u64;
        }
    }
    Throughput {
        records: 0,
        bytes,
        elapsed: start.elapsed(),
    }
}

fn percentiles(latencies: &mut [Duration]) -> (Duration, Duration) {
    latencies.sort_unstable();
    let at = |fraction: f64| {
        let index = ((latencies.len() as f64 - 1.0) * fraction).round() as usize;
        latencies.get(index).copied().unwrap_or_default()
    };
    (at(0.50), at(0.99))
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

impl fmt::Display for LogBenchReport {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mb = |throughput: &Throughput| throughput.bytes_per_second() / 1e6;
        writeln!(
            out,
            "append, os durability, {BENCH_PAYLOAD_BYTES}-byte payloads ({} records)",
            self.append_os.records
        )?;
        writeln!(
            out,
            "  relay log     {:>12.0} records/s {:>9.1} MB/s",
            self.append_os.records_per_second(),
            mb(&self.append_os)
        )?;
        writeln!(
            out,
            "  raw write()   {:>12.0} records/s {:>9.1} MB/s",
            self.append_raw.records_per_second(),
            mb(&self.append_raw)
        )?;
        let append_ratio =
            self.append_os.records_per_second() / self.append_raw.records_per_second().max(1e-9);
        writeln!(
            out,
            "  ratio log/raw {append_ratio:>12.2}   (target >= 0.60)"
        )?;
        writeln!(
            out,
            "strict durability, group commit (commit latency in us)"
        )?;
        for figures in &self.strict {
            writeln!(
                out,
                "  batch {:>4}: log {:>10.0} records/s  p50 {:>7.0}  p99 {:>7.0} | raw write+fdatasync {:>10.0} records/s  p50 {:>7.0}  p99 {:>7.0}",
                figures.batch,
                figures.log.records_per_second(),
                micros(figures.log_commit_p50),
                micros(figures.log_commit_p99),
                figures.raw.records_per_second(),
                micros(figures.raw_sync_p50),
                micros(figures.raw_sync_p99),
            )?;
        }
        if let Some(largest) = self.strict.last() {
            let ratio =
                largest.log.records_per_second() / self.append_os.records_per_second().max(1e-9);
            writeln!(
                out,
                "  strict/{} vs os {ratio:>10.2}   (target >= 0.50)",
                largest.batch
            )?;
        }
        self.fmt_checkpoint_policy(out)?;
        writeln!(
            out,
            "replay, CRC verified ({} records, {:.2} GiB)",
            self.replay.records,
            self.replay.bytes as f64 / (1u64 << 30) as f64
        )?;
        writeln!(
            out,
            "  relay log     {:>12.0} records/s {:>9.2} GB/s",
            self.replay.records_per_second(),
            self.replay.bytes_per_second() / 1e9
        )?;
        writeln!(
            out,
            "  memcpy        {:>12} {:>19.2} GB/s",
            "",
            self.replay_memcpy.bytes_per_second() / 1e9
        )?;
        let replay_ratio =
            self.replay.bytes_per_second() / self.replay_memcpy.bytes_per_second().max(1e-9);
        writeln!(
            out,
            "  ratio log/memcpy {replay_ratio:>9.2}   (target >= 0.40)"
        )?;
        writeln!(
            out,
            "recovery on open, {BENCH_RECOVERY_RECORDS} records above the checkpoint (ms)"
        )?;
        writeln!(
            out,
            "  after a crash (scan + sync)          {:>9.1}",
            self.recovery_crash.as_secs_f64() * 1e3
        )?;
        writeln!(
            out,
            "  torn last record (+ search + cut)    {:>9.1}",
            self.recovery_torn_tail.as_secs_f64() * 1e3
        )
    }
}

impl LogBenchReport {
    /// The checkpoint-policy lines of the report.
    fn fmt_checkpoint_policy(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            out,
            "checkpoint policy, strict (now: every {} records and after a roll; vs at every commit; commit latency in us)",
            crate::limits::CHECKPOINT_INTERVAL_RECORDS
        )?;
        for figures in &self.checkpoint_policy {
            let policy = |policy: &PolicyFigures| {
                format!(
                    "{:>10.0} records/s {:>7.0} commits/s  p50 {:>6.0}  p99 {:>6.0}  {:.2} syncs/commit",
                    policy.log.records_per_second(),
                    policy.commits_per_second(),
                    micros(policy.commit_p50),
                    micros(policy.commit_p99),
                    policy.syncs_per_commit(),
                )
            };
            writeln!(
                out,
                "  batch {:>4}: now {} | every commit {} | ratio every/now {:.2}",
                figures.batch,
                policy(&figures.current),
                policy(&figures.every_commit),
                figures.ratio(),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_benchmark_keeps_everything_but_the_damaged_last_record() {
        // `recovery` itself checks the recovered end: all records after a crash, all but the
        // damaged last one when the search finds no valid record after it.
        let dir = tempfile::tempdir().expect("tempdir");
        recovery(&dir.path().join("crash"), false).expect("crash recovery");
        recovery(&dir.path().join("torn"), true).expect("torn tail recovery");
    }

    #[test]
    fn the_checkpoint_policy_benchmark_counts_one_checkpoint_write_per_commit_only_when_asked() {
        // Counts, not times: a checkpoint at every commit writes one per commit; the writer's
        // policy writes none in a few small commits (no roll, far below the interval).
        let dir = tempfile::tempdir().expect("tempdir");
        let figures = checkpoint_policy(dir.path(), 4, 5).expect("benchmark");
        assert_eq!(figures.current.commits, 5);
        assert_eq!(figures.current.checkpoint_writes, 0);
        assert_eq!(figures.current.data_syncs, 5);
        assert_eq!(figures.every_commit.checkpoint_writes, 5);
        assert_eq!(figures.every_commit.data_syncs, 5);
        assert_eq!(figures.every_commit.log.records, 20);
    }
}
