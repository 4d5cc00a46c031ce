//! `relay status`: whether a hub runs for the data dir, and what it is doing.
//!
//! Asks the hub with `hub_info` (no name taken, no hub started). Exit 0 when a hub answers,
//! 4 when none does (then the lock file's pid, if a process still holds it, is named).

use std::path::Path;

use clap::Args;
use serde_json::json;

use super::DataDirArgs;
use super::exit_code::ExitCode;
use super::hub_process::{
    format_age, format_bytes, is_hub_process, lock_pid, old_hub_version, query, since,
};
use super::output::{Out, table};
use crate::client::version_skew;
use crate::protocol::{ErrorCode, HubInfoResult};

/// Show whether a hub runs for the data dir: pid, version, uptime, settings and where each
/// came from, sessions with their client and push path, the log, the newest snapshot.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay status\n  relay status --json | jq .hub.settings\n  relay status --data-dir ~/.relay-work\n\nNever starts a hub and takes no name. Exit 0 when a hub runs, 4 when none does."
)]
pub struct StatusArgs {
    #[command(flatten)]
    data_dir: DataDirArgs,
    /// Print one JSON object: {"running", "data_dir", "hub": <hub_info result>, "version_skew"}.
    #[arg(long)]
    json: bool,
}

/// Runs `relay status`.
///
/// # Errors
/// Output failures; a hub error other than "none answers".
pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let data_dir = args.data_dir.resolve();
    let info = super::session::runtime()?.block_on(query(&data_dir));
    let mut out = Out::new();
    match info {
        Ok(info) => {
            let skew = version_skew(&info.hub_version);
            if args.json {
                out.json(&json!({
                    "running": true,
                    "data_dir": data_dir.display().to_string(),
                    "hub": info,
                    "version_skew": skew,
                    "service": super::service::installed_unit(&data_dir).map(|path| path.display().to_string()),
                }))?;
            } else {
                print_running(&mut out, &data_dir, &info)?;
                if let Some(skew) = skew {
                    eprintln!("relay: warning: {skew}");
                }
            }
            out.flush()?;
            Ok(ExitCode::Success)
        }
        Err(error) if error.code == ErrorCode::HubUnreachable => {
            let holder = lock_pid(&data_dir).filter(|pid| is_hub_process(*pid));
            if args.json {
                out.json(&json!({
                    "running": false,
                    "data_dir": data_dir.display().to_string(),
                    "lock_holder_pid": holder,
                }))?;
            } else {
                out.line(format!("hub: not running for {}", data_dir.display()))?;
                match holder {
                    Some(pid) => out.line(format!(
                        "note: process {pid} holds the log's lock but does not answer on hub.sock; \
                         `relay stop` ends it"
                    ))?,
                    None => out.line(
                        "start one with `relay hub` (foreground), or any `relay send|peers|inbox|watch|mcp` starts one on demand",
                    )?,
                }
            }
            out.flush()?;
            Ok(ExitCode::NoHub)
        }
        Err(error) => match old_hub_version(&error) {
            Some(hub_version) => {
                let skew = version_skew(&hub_version);
                if args.json {
                    out.json(&json!({
                        "running": true,
                        "data_dir": data_dir.display().to_string(),
                        "hub": {"hub_version": hub_version},
                        "version_skew": skew,
                    }))?;
                } else {
                    out.line(format!(
                        "hub: running for {}, relay {hub_version}, too old to describe itself; `relay restart` serves with this binary",
                        data_dir.display()
                    ))?;
                }
                out.flush()?;
                Ok(ExitCode::Success)
            }
            None => anyhow::bail!(
                "asking the hub about itself: {}: {}",
                error.code.name(),
                error.message
            ),
        },
    }
}

fn print_running(out: &mut Out, data_dir: &Path, info: &HubInfoResult) -> anyhow::Result<()> {
    out.line(format!(
        "hub: running for {}, pid {}, relay {}, up {}, started {}",
        data_dir.display(),
        info.pid,
        info.hub_version,
        format_age(since(info.started_at)),
        match info.started_by.as_str() {
            "on-demand" => "on demand by a session",
            "service" => "by its service (relay service install)",
            _ => "by hand",
        }
    ))?;
    if let Some(unit) = super::service::installed_unit(data_dir) {
        out.line(format!("service: installed ({})", unit.display()))?;
    }
    out.line(format!(
        "websocket: {}",
        match (info.ws_port, &info.ws_error) {
            (Some(port), _) => format!("127.0.0.1:{port}"),
            (None, Some(error)) => format!("none: {error}"),
            (None, None) => "none".to_owned(),
        }
    ))?;
    out.line("")?;
    let settings: Vec<Vec<String>> = info
        .settings
        .iter()
        .map(|setting| {
            vec![
                setting.name.clone(),
                setting.value.clone(),
                setting.source.clone(),
            ]
        })
        .collect();
    for line in table(&["SETTING", "VALUE", "FROM"], &settings) {
        out.line(line)?;
    }
    out.line("")?;
    let registered: Vec<Vec<String>> = info
        .sessions
        .iter()
        .filter_map(|session| {
            Some(vec![
                session.name.clone()?,
                session.client.clone().unwrap_or_else(|| "-".to_owned()),
                session.delivery.clone().unwrap_or_else(|| "-".to_owned()),
            ])
        })
        .collect();
    let unregistered = info.sessions.len() - registered.len();
    out.line(format!(
        "sessions: {} registered, {unregistered} not registered (this status check is one)",
        registered.len()
    ))?;
    if !registered.is_empty() {
        for line in table(&["NAME", "CLIENT", "DELIVERY"], &registered) {
            out.line(format!("  {line}"))?;
        }
    }
    out.line("")?;
    let log = &info.log;
    let retained = if log.next_offset > log.first_offset {
        format!(
            "offsets {} to {} retained",
            log.first_offset,
            log.next_offset - 1
        )
    } else {
        "no records retained".to_owned()
    };
    out.line(format!(
        "log: {} allocated in {} segment{}; {retained}, the next record gets {}",
        format_bytes(log.bytes),
        log.segments,
        if log.segments == 1 { "" } else { "s" },
        log.next_offset
    ))?;
    match &info.snapshot {
        Some(snapshot) => out.line(format!(
            "snapshot: up to offset {}, written {} ago ({} records behind)",
            snapshot.next_offset,
            format_age(since(snapshot.written_at)),
            log.next_offset.saturating_sub(snapshot.next_offset)
        ))?,
        None => {
            out.line("snapshot: none yet (one is written at shutdown and every 500,000 records)")?
        }
    }
    if let Some(hub_id) = &info.federation_hub_id {
        out.line(format!(
            "federation: hub {hub_id}, {} peer{}",
            info.links.len(),
            if info.links.len() == 1 { "" } else { "s" }
        ))?;
        for link in &info.links {
            let imported = link
                .imported
                .map_or("nothing imported".to_owned(), |offset| {
                    format!("imported up to its offset {offset}")
                });
            out.line(format!(
                "  link {}: {}{}; acknowledged our log below {} ({} records after it); {imported}",
                link.hub_id,
                link.state,
                link.error
                    .as_ref()
                    .map_or(String::new(), |error| format!(" ({error})")),
                link.acknowledged,
                link.behind
            ))?;
        }
    }
    Ok(())
}
