//! `relay log`: offline inspection of a data dir's log: info, verify, dump, tail, repair.
//!
//! Everything but `repair` is read-only and works while a hub writes the same log.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use relay_log::{LogConfig, LogReader, LogWriter, OpenError, Record};
use relay_replay::{EventKind, RKYV_FORMAT_FLAGS, decode_record};
use serde_json::json;

use super::DataDirArgs;
use super::exit_code::ExitCode;
use super::output::{Format, Out, format_timestamp, progress_bar};
use crate::data_dir::log_dir;

/// Poll interval of `relay log tail --follow`.
pub const TAIL_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Inspect the log of a data dir: segments, verification, raw records.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay log info\n  relay log verify\n  relay log dump --from 100 --count 5 --format json\n  relay log tail --follow\n  relay log repair            # says what it would cut\n  relay log repair --yes      # cuts it (stop the hub first)"
)]
pub struct LogArgs {
    #[command(flatten)]
    data_dir: DataDirArgs,
    /// What to do.
    #[command(subcommand)]
    action: LogAction,
}

/// The `relay log` actions.
#[derive(Debug, Subcommand)]
pub enum LogAction {
    /// Segments, sizes, offsets, checkpoint, record counts by kind.
    Info {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Full CRC, structure and payload verification of every record (exit 3 on damage).
    Verify {
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Raw records: header fields and the payload decoded as JSON.
    Dump {
        /// First offset to show [default: the first retained].
        #[arg(long)]
        from: Option<u64>,
        /// Records to show at most.
        #[arg(long)]
        count: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// The last records, and with --follow every new one as a hub appends it.
    Tail {
        /// Records to show before following.
        #[arg(long, default_value_t = 10)]
        count: u64,
        /// Keep printing new records until interrupted.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Cut the log at its first damaged record (asks for --yes; the hub must be stopped).
    Repair {
        /// Really cut; without it, only say what would be cut.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs `relay log …`.
///
/// # Errors
/// Failures other than damage (exit code 3).
pub fn run(args: LogArgs) -> anyhow::Result<ExitCode> {
    let dir = log_dir(&args.data_dir.resolve());
    if let LogAction::Repair { yes } = args.action {
        return repair(&dir, yes);
    }
    let reader = match open_reader(&dir)? {
        Ok(reader) => reader,
        Err(code) => return Ok(code),
    };
    let mut out = Out::new();
    match args.action {
        LogAction::Info { format } => info(&reader, &mut out, format),
        LogAction::Verify { quiet } => verify(&reader, &mut out, quiet),
        LogAction::Dump {
            from,
            count,
            format,
        } => {
            let from = from
                .unwrap_or(reader.first_offset())
                .max(reader.first_offset());
            dump(&reader, &mut out, from, count.unwrap_or(u64::MAX), format)
                .map(|_| ExitCode::Success)
        }
        LogAction::Tail {
            count,
            follow,
            format,
        } => tail(reader, &mut out, count, follow, format),
        LogAction::Repair { .. } => unreachable!("handled above"),
    }
}

/// Opens the log read-only; damage and foreign payload format flags are reported on stderr
/// and give [`ExitCode::CheckFailed`].
///
/// # Errors
/// Other failures to open.
pub(crate) fn open_reader(dir: &std::path::Path) -> anyhow::Result<Result<LogReader, ExitCode>> {
    let reader = match LogReader::open(dir) {
        Ok(reader) => reader,
        Err(OpenError::Corrupt(corruption)) => {
            eprintln!("relay: damaged record: {corruption}");
            eprintln!("relay: hint: `relay log repair` says what a repair would cut");
            return Ok(Err(ExitCode::CheckFailed));
        }
        Err(error @ OpenError::FormatFlags { .. }) => {
            eprintln!("relay: {error}");
            return Ok(Err(ExitCode::CheckFailed));
        }
        Err(error) => {
            return Err(error).with_context(|| format!("opening the log in {}", dir.display()));
        }
    };
    if reader.payload_format_flags() != RKYV_FORMAT_FLAGS {
        eprintln!(
            "relay: the log in {} was written with payload format flags {:#04x}; this build reads {RKYV_FORMAT_FLAGS:#04x}",
            dir.display(),
            reader.payload_format_flags()
        );
        return Ok(Err(ExitCode::CheckFailed));
    }
    Ok(Ok(reader))
}

fn info(reader: &LogReader, out: &mut Out, format: Format) -> anyhow::Result<ExitCode> {
    let mut counts: BTreeMap<u16, u64> = BTreeMap::new();
    let mut per_segment: Vec<u64> = vec![0; reader.segments().len()];
    let segments = reader.segments();
    let mut next_offset = reader.first_offset();
    let mut damage = None;
    for record in reader.iter_from(reader.first_offset())? {
        match record {
            Ok(record) => {
                *counts.entry(record.kind).or_default() += 1;
                let index =
                    segments.partition_point(|segment| segment.base_offset <= record.offset) - 1;
                per_segment[index] += 1;
                next_offset = record.offset + 1;
            }
            Err(corruption) => {
                damage = Some(corruption);
                break;
            }
        }
    }
    let kind_name = |kind: u16| {
        EventKind::from_number(kind)
            .map_or_else(|| format!("unknown({kind})"), |kind| kind.name().to_owned())
    };
    match format {
        Format::Json => {
            out.json(&json!({
                "dir": reader.dir(),
                "log_id": format!("{:032x}", reader.log_id()),
                "first_offset": reader.first_offset(),
                "history_reclaimed": reader.first_offset() > 0,
                "next_offset": next_offset,
                "durable_offset": reader.durable_offset(),
                "segments": segments.iter().zip(&per_segment).map(|(segment, records)| json!({
                    "path": segment.path, "base_offset": segment.base_offset, "file_bytes": segment.file_bytes, "records": records,
                })).collect::<Vec<_>>(),
                "records_by_kind": counts.iter().map(|(kind, count)| (kind_name(*kind), *count)).collect::<BTreeMap<_, _>>(),
                "damage": damage.as_ref().map(ToString::to_string),
            }))?;
        }
        Format::Text => {
            out.line(format_args!("log        {}", reader.dir().display()))?;
            out.line(format_args!("log id     {:032x}", reader.log_id()))?;
            out.line(format_args!(
                "offsets    {}..{} (durable below {})",
                reader.first_offset(),
                next_offset,
                reader.durable_offset()
            ))?;
            if reader.first_offset() > 0 {
                out.line(format_args!(
                    "history    starts at offset {}; the records before it were reclaimed by retention (`relay hub --retain`)",
                    reader.first_offset()
                ))?;
            }
            out.line(format_args!("segments   {}", segments.len()))?;
            for (segment, records) in segments.iter().zip(&per_segment) {
                let name = segment
                    .path
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.line(format_args!(
                    "  {name}  {:>12} bytes  {records:>10} records",
                    segment.file_bytes
                ))?;
            }
            out.line("records by kind")?;
            for (kind, count) in &counts {
                out.line(format_args!("  {:<26} {count:>10}", kind_name(*kind)))?;
            }
            if let Some(corruption) = &damage {
                out.line(format_args!("damage     {corruption}"))?;
            }
        }
    }
    out.flush()?;
    Ok(if damage.is_some() {
        ExitCode::CheckFailed
    } else {
        ExitCode::Success
    })
}

fn verify(reader: &LogReader, out: &mut Out, quiet: bool) -> anyhow::Result<ExitCode> {
    let bar = progress_bar(quiet, "verifying");
    let mut records = 0u64;
    // Thorough: a hole followed by valid records is corruption, not the end of the log.
    let mut iter = reader.iter_from(reader.first_offset())?.thorough();
    for record in iter.by_ref() {
        let record = match record {
            Ok(record) => record,
            Err(corruption) => {
                bar.finish_and_clear();
                eprintln!("relay: damaged record: {corruption}");
                eprintln!("relay: hint: `relay log repair` says what a repair would cut");
                return Ok(ExitCode::CheckFailed);
            }
        };
        if let Err(error) = decode_record(&record) {
            bar.finish_and_clear();
            eprintln!("relay: {error}");
            return Ok(ExitCode::CheckFailed);
        }
        records += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let next = iter.next_offset();
    out.line(format_args!(
        "ok: {records} records verified (offsets {}..{next}), {} segments",
        reader.first_offset(),
        reader.segments().len()
    ))?;
    if let Some(torn) = iter.torn_tail() {
        out.line(format_args!(
            "note: unrecovered tail above the checkpoint ({torn}); a hub cuts it on its next start"
        ))?;
    }
    out.flush()?;
    Ok(ExitCode::Success)
}

/// Prints records from `from`, at most `count`; returns the next offset to print.
fn dump(
    reader: &LogReader,
    out: &mut Out,
    from: u64,
    count: u64,
    format: Format,
) -> anyhow::Result<u64> {
    let mut next = from;
    for record in reader
        .iter_from(from)?
        .take(usize::try_from(count).unwrap_or(usize::MAX))
    {
        let record = record.map_err(anyhow::Error::new)?;
        print_record(out, format, &record)?;
        next = record.offset + 1;
    }
    Ok(next)
}

fn print_record(out: &mut Out, format: Format, record: &Record<'_>) -> anyhow::Result<()> {
    let kind = EventKind::from_number(record.kind).map_or_else(
        || format!("unknown({})", record.kind),
        |kind| kind.name().to_owned(),
    );
    let payload = match decode_record(record) {
        Ok(event) => serde_json::to_value(&event)?,
        Err(error) => json!({ "undecodable": error.to_string(), "bytes": record.payload.len() }),
    };
    match format {
        Format::Json => out.json(&json!({
            "offset": record.offset,
            "timestamp_us": record.timestamp_us,
            "ts": format_timestamp(record.timestamp_us),
            "kind": kind,
            "kind_number": record.kind,
            "schema_version": record.schema_version,
            "origin_hub": format!("{:032x}", record.origin_hub),
            "payload_bytes": record.payload.len(),
            "payload": payload,
        })),
        Format::Text => out.line(format_args!(
            "{:>10}  {}  {kind:<24} v{} {:>6}B  {}",
            record.offset,
            format_timestamp(record.timestamp_us),
            record.schema_version,
            record.payload.len(),
            payload
        )),
    }
}

fn tail(
    mut reader: LogReader,
    out: &mut Out,
    count: u64,
    follow: bool,
    format: Format,
) -> anyhow::Result<ExitCode> {
    // Seeks near the end instead of walking the whole log (`LogReader::tail_start`).
    let from = reader.tail_start(count)?;
    let mut next = dump(&reader, out, from, count, format)?;
    out.flush()?;
    if !follow {
        return Ok(ExitCode::Success);
    }
    // Runs until interrupted: that is what --follow asks for. Each pass seeks to `next` with
    // the index the reader kept across the refresh, so it costs the new records only.
    loop {
        std::thread::sleep(TAIL_POLL_INTERVAL);
        reader.refresh()?;
        next = dump(
            &reader,
            out,
            next.max(reader.first_offset()),
            u64::MAX,
            format,
        )?;
        out.flush()?;
    }
}

/// What `repair` without `--yes` says about damage: where it is and what a repair would cut.
fn would_cut(out: &mut Out, corruption: &relay_log::Corruption) -> anyhow::Result<ExitCode> {
    out.line(format_args!("damage: {corruption}"))?;
    out.line(format_args!(
        "repair --yes would cut every record from offset {} on (in {} and all later segments)",
        corruption.offset,
        corruption.segment.display()
    ))?;
    Ok(ExitCode::CheckFailed)
}

fn repair(dir: &std::path::Path, yes: bool) -> anyhow::Result<ExitCode> {
    let mut out = Out::new();
    if !yes {
        let reader = match LogReader::open(dir) {
            Ok(reader) => reader,
            Err(OpenError::Corrupt(corruption)) => {
                return would_cut(&mut out, &corruption);
            }
            Err(error) => {
                return Err(error).with_context(|| format!("opening the log in {}", dir.display()));
            }
        };
        match reader.verify() {
            Ok(report) => {
                out.line(format_args!(
                    "no damage below the checkpoint: {} records, nothing to repair",
                    report.record_count
                ))?;
                if let Some(torn) = report.torn_tail {
                    out.line(format_args!("a torn tail ({torn}) will be cut by the next open; repair --yes cuts it now"))?;
                }
                return Ok(ExitCode::Success);
            }
            Err(corruption) => {
                return would_cut(&mut out, &corruption);
            }
        }
    }
    let config = LogConfig {
        repair: true,
        payload_format_flags: RKYV_FORMAT_FLAGS,
        ..LogConfig::default()
    };
    let writer = LogWriter::open(dir, config).map_err(|error| match error {
        OpenError::Locked { holder, .. } => {
            anyhow::anyhow!("the log is in use by a hub ({holder}); stop it first")
        }
        other => anyhow::Error::new(other),
    })?;
    match &writer.recovery_report().cut {
        Some(cut) => out.line(format_args!(
            "cut at offset {} in {}: {} bytes, at least {} records, {} later segment(s) removed",
            cut.offset,
            cut.segment.display(),
            cut.bytes_cut,
            cut.records_cut,
            cut.segments_removed.len()
        ))?,
        None => out.line(format_args!(
            "nothing to cut; the log ends at offset {}",
            writer.next_offset()
        ))?,
    }
    writer.close()?;
    Ok(ExitCode::Success)
}
