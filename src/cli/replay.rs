//! `relay replay`: rebuild the projections from the log, verifying every record, and print
//! the (filtered) event stream and/or the resulting state. Read-only; works beside a hub.

use std::path::Path;

use anyhow::Context;
use clap::Args;
use relay_log::{LogReader, Record};
use relay_replay::audit::{EventFilter, StateSummary, summarize};
use relay_replay::{Event, EventKind, ReplayError, State, Until, replay_into};
use serde_json::json;

use super::DataDirArgs;
use super::exit_code::ExitCode;
use super::output::{Format, Out, format_timestamp, progress_bar};
use crate::data_dir::log_dir;
use crate::snapshots;

/// Rebuild state from the log, verifying every record, and print events and/or state.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay replay --state\n  relay replay --peer alice --kind message_sent --format json\n  relay replay --until 2026-11-21T09:00:00Z --group backend --state\n  relay replay --verify --quiet\n\nExit codes: 0 clean; 3 a damaged record, an undecodable payload or an event that does not apply (its offset is printed), or a snapshot that disagrees with the log; 1 other failures."
)]
pub struct ReplayArgs {
    #[command(flatten)]
    data_dir: DataDirArgs,
    /// Stop after this offset, or at this time (RFC 3339, e.g. 2026-11-21T09:00:00Z).
    #[arg(long, value_name = "OFFSET|TIME")]
    until: Option<String>,
    /// Only events naming this peer.
    #[arg(long, value_name = "NAME")]
    peer: Option<String>,
    /// Only events about this group.
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// Only events of this kind (repeatable), e.g. message_sent, group_created.
    #[arg(long, value_name = "KIND")]
    kind: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Print the resulting state (mailboxes, groups, pending asks, rooms) instead of events.
    #[arg(long)]
    state: bool,
    /// With --state, print the events too.
    #[arg(long)]
    events: bool,
    /// Also check that replaying from zero reproduces every snapshot on disk.
    #[arg(long, conflicts_with = "until")]
    verify: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Runs `relay replay`.
///
/// # Errors
/// Failures other than damage (which is exit code 3).
pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let data_dir = args.data_dir.resolve();
    let until = parse_until(args.until.as_deref())?;
    let filter = EventFilter {
        peer: args.peer.clone(),
        group: args.group.clone(),
        kinds: parse_kinds(&args.kind)?,
    };
    let reader = match super::log::open_reader(&log_dir(&data_dir))
        .with_context(|| format!("opening the log of {}", data_dir.display()))?
    {
        Ok(reader) => reader,
        Err(code) => return Ok(code),
    };
    let print_events = !args.state || args.events;
    let mut out = Out::new();
    let state = match retained_start(&data_dir, &reader, until) {
        Ok(state) => state,
        Err(code) => return Ok(code),
    };
    let mut state = state;
    let replay_from = state.next_offset();
    let mut checkpoints = Vec::new();
    if args.verify {
        let dir = snapshots::snapshot_dir(&data_dir);
        checkpoints = snapshots::list(&dir, reader.log_id());
        // A snapshot at or below where the replay starts has nothing to be checked against.
        checkpoints.retain(|(offset, _)| *offset > state.next_offset());
        checkpoints.sort();
    }
    let bar = progress_bar(args.quiet, "replaying");
    let mut write_error = None;
    let mut observe = |record: &Record<'_>, event: &Event| {
        bar.inc(1);
        if print_events
            && write_error.is_none()
            && filter.matches(event)
            && let Err(error) = print_event(&mut out, args.format, record, event)
        {
            write_error = Some(error);
        }
    };
    let mut stops: Vec<Until> = checkpoints
        .iter()
        .filter(|(offset, _)| *offset > 0)
        .map(|(offset, _)| Until::Offset(offset - 1))
        .collect();
    stops.push(until);
    let mut snapshot_mismatch = None;
    let mut result = Ok(());
    let mut torn_tail = None;
    for (index, stop) in stops.iter().enumerate() {
        let mut iter = reader.iter_from(state.next_offset().max(reader.first_offset()))?;
        let outcome = replay_into(&mut state, iter.by_ref(), *stop, &mut observe);
        torn_tail = iter.torn_tail().cloned();
        if let Err(error) = outcome {
            result = Err(error);
            break;
        }
        if let Some((offset, path)) = checkpoints.get(index)
            && !snapshot_matches(&state, *offset, path)
        {
            snapshot_mismatch = Some(path.clone());
        }
    }
    bar.finish_and_clear();
    if let Some(error) = write_error {
        return Err(error);
    }
    if args.state {
        print_state(&mut out, args.format, &summarize(&state))?;
    }
    out.flush()?;
    if let Some(torn) = torn_tail {
        eprintln!(
            "relay: note: the log ends in an unrecovered tail ({torn}); a hub cuts it on its next start"
        );
    }
    if let Err(error) = result {
        report_replay_error(&error);
        return Ok(ExitCode::CheckFailed);
    }
    if let Some(path) = snapshot_mismatch {
        eprintln!(
            "relay: snapshot {} differs from the state replayed from the log",
            path.display()
        );
        return Ok(ExitCode::CheckFailed);
    }
    if args.verify {
        eprintln!(
            "relay: verified {} records; {} snapshot(s) match the log",
            state.next_offset().saturating_sub(replay_from),
            checkpoints.len()
        );
    }
    Ok(ExitCode::Success)
}

/// The state a replay starts from: empty for a log that starts at offset 0; for a log whose
/// older history retention reclaimed, the oldest snapshot at or after its first offset (said on
/// stderr). Without such a snapshot, or with `--until` below it, the state cannot be rebuilt:
/// that is reported and gives [`ExitCode::CheckFailed`].
fn retained_start(data_dir: &Path, reader: &LogReader, until: Until) -> Result<State, ExitCode> {
    let first = reader.first_offset();
    if first == 0 {
        return Ok(State::new());
    }
    let dir = snapshots::snapshot_dir(data_dir);
    let Some(snapshot) = snapshots::load_oldest_from(&dir, reader.log_id(), first) else {
        eprintln!(
            "relay: the log starts at offset {first} (older history was reclaimed by retention) and no snapshot at or after it decodes in {}; the state cannot be rebuilt",
            dir.display()
        );
        return Err(ExitCode::CheckFailed);
    };
    if let Until::Offset(offset) = until
        && offset.saturating_add(1) < snapshot.next_offset
    {
        eprintln!(
            "relay: --until {offset} is before offset {}, where the retained history can be replayed from (the log starts at {first}; older history was reclaimed)",
            snapshot.next_offset
        );
        return Err(ExitCode::CheckFailed);
    }
    eprintln!(
        "relay: note: history below offset {first} was reclaimed by retention; replaying from snapshot {} (offset {}); `relay log dump --from {first}` shows the records before it",
        snapshot.path.display(),
        snapshot.next_offset
    );
    Ok(snapshot.state)
}

fn snapshot_matches(state: &State, offset: u64, path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    match relay_replay::snapshot_decode(&bytes) {
        Ok((snapshot, next_offset)) => {
            let mut replayed = state.clone();
            let mut expected = snapshot;
            // Rooms are presence: a hub clears them after its start-up snapshot is taken.
            replayed.clear_presence();
            expected.clear_presence();
            next_offset == offset && replayed == expected
        }
        Err(_) => false,
    }
}

pub(crate) fn report_replay_error(error: &ReplayError) {
    eprintln!(
        "relay: damaged or invalid record at offset {}: {error}",
        error.offset()
    );
}

/// Parses `--until`: a number is an offset, anything else an RFC 3339 time.
pub(crate) fn parse_until(until: Option<&str>) -> anyhow::Result<Until> {
    let Some(until) = until else {
        return Ok(Until::End);
    };
    if let Ok(offset) = until.parse::<u64>() {
        return Ok(Until::Offset(offset));
    }
    let time = humantime::parse_rfc3339_weak(until)
        .with_context(|| format!("--until {until:?} is neither an offset nor an RFC 3339 time"))?;
    let micros = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64);
    Ok(Until::TimeUs(micros))
}

pub(crate) fn parse_kinds(kinds: &[String]) -> anyhow::Result<Vec<EventKind>> {
    kinds
        .iter()
        .map(|name| {
            EventKind::from_name(name).with_context(|| {
                let known: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.name()).collect();
                format!(
                    "unknown event kind {name:?}; known kinds: {}",
                    known.join(", ")
                )
            })
        })
        .collect()
}

/// One event as text or a JSON line.
pub(crate) fn print_event(
    out: &mut Out,
    format: Format,
    record: &Record<'_>,
    event: &Event,
) -> anyhow::Result<()> {
    let mut fields = serde_json::to_value(event)?;
    if let Some(object) = fields.as_object_mut() {
        object.remove("kind");
    }
    match format {
        Format::Json => out.json(&json!({
            "type": "event",
            "offset": record.offset,
            "timestamp_us": record.timestamp_us,
            "ts": format_timestamp(record.timestamp_us),
            "kind": event.kind().name(),
            "schema_version": record.schema_version,
            "origin_hub": format!("{:032x}", record.origin_hub),
            "event": fields,
        })),
        Format::Text => out.line(format_args!(
            "{:>10}  {}  {:<24} {}",
            record.offset,
            format_timestamp(record.timestamp_us),
            event.kind().name(),
            fields
        )),
    }
}

fn print_state(out: &mut Out, format: Format, summary: &StateSummary) -> anyhow::Result<()> {
    match format {
        Format::Json => {
            for mailbox in &summary.mailboxes {
                out.json(&json!({"type": "mailbox", "mailbox": mailbox}))?;
            }
            for group in &summary.groups {
                out.json(&json!({"type": "group", "group": group}))?;
            }
            for ask in &summary.pending_asks {
                out.json(&json!({"type": "pending_ask", "ask": ask}))?;
            }
            for room in &summary.rooms {
                out.json(&json!({"type": "room", "room": room}))?;
            }
            Ok(())
        }
        Format::Text => {
            out.line("mailboxes:")?;
            for mailbox in &summary.mailboxes {
                let left = if mailbox.left { "  (left)" } else { "" };
                let former = if mailbox.former_names.is_empty() {
                    String::new()
                } else {
                    format!("  (was {})", mailbox.former_names.join(", "))
                };
                out.line(format_args!(
                    "  {:<24} {:>4} unread {:>4} kept  last seen {}{former}{left}",
                    mailbox.name,
                    mailbox.unread,
                    mailbox.messages,
                    format_timestamp(mailbox.last_seen_us)
                ))?;
            }
            out.line("groups:")?;
            for group in &summary.groups {
                out.line(format_args!(
                    "  {} (admin {}, {} messages kept)",
                    group.name, group.admin, group.messages
                ))?;
                for member in &group.members {
                    out.line(format_args!(
                        "    {:<22} {:>4} unread",
                        member.name, member.unread
                    ))?;
                }
            }
            out.line("pending asks:")?;
            for ask in &summary.pending_asks {
                let broadcast = ask
                    .broadcast_id
                    .as_deref()
                    .map(|id| format!(" (broadcast {id})"))
                    .unwrap_or_default();
                out.line(format_args!(
                    "  {}  {} -> {}{broadcast}",
                    ask.ask_id, ask.asker, ask.target
                ))?;
            }
            out.line("rooms:")?;
            for room in &summary.rooms {
                out.line(format_args!("  {}: {}", room.name, room.members.join(", ")))?;
            }
            Ok(())
        }
    }
}
