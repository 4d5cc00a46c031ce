//! `relay stop` and `relay restart`: end the data dir's hub cleanly, and start a new one.
//!
//! Stop sends SIGTERM to the pid the hub names in `hub_info` (or, when the socket does not
//! answer, to the lock file's pid if that process is a `relay hub`) and waits up to
//! [`STOP_WAIT`] for it to exit: the hub syncs its log, writes a snapshot and removes its
//! socket first. Restart then starts a detached hub as spawn-on-demand does, with the flags
//! the old hub was given (its settings whose source was a flag; `relay.toml` is read anew)
//! and the same way of having been started, so its idle-exit default is the same.

use std::path::Path;

use anyhow::Context as _;
use clap::Args;

use super::DataDirArgs;
use super::exit_code::ExitCode;
use super::hub_process::{
    is_hub_process, lock_pid, old_hub_version, query, terminate, wait_for_exit,
};
use crate::hub::limits::STOP_WAIT;
use crate::hub::settings::{StartedBy, flag_args};
use crate::hub::spawn::{SpawnOptions, connect_or_spawn};
use crate::protocol::{ErrorCode, HubInfoResult};

/// Stop the data dir's hub: SIGTERM, then wait until it has synced its log and exited.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay stop\n  relay stop --data-dir ~/.relay-work\n\nSessions (relay mcp) reconnect by themselves when a hub comes back. Exit 0 once the hub exited, 4 when none runs, 1 when it did not exit within 20 s (the pid is named)."
)]
pub struct StopArgs {
    #[command(flatten)]
    data_dir: DataDirArgs,
}

/// Restart the data dir's hub with this binary: stop it, then start a detached hub with the
/// flags the old one was given (relay.toml is read anew).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay restart               # after an upgrade: serve with the new binary\n  relay restart --data-dir ~/.relay-work\n\nWith no hub running it starts one. Sessions (relay mcp) reconnect by themselves. A hub run by `relay service install` is restarted through its service manager instead (the command is printed)."
)]
pub struct RestartArgs {
    #[command(flatten)]
    data_dir: DataDirArgs,
}

/// Runs `relay stop`.
///
/// # Errors
/// The signal could not be sent, or the hub did not exit in time.
pub fn run_stop(args: StopArgs) -> anyhow::Result<ExitCode> {
    let data_dir = args.data_dir.resolve();
    let info = running(&data_dir)?;
    let Some(pid) = target_pid(&data_dir, info.as_ref()) else {
        eprintln!("relay: no hub runs for {}", data_dir.display());
        return Ok(ExitCode::NoHub);
    };
    stop(pid)?;
    println!(
        "relay: stopped the hub of {} (pid {pid})",
        data_dir.display()
    );
    Ok(ExitCode::Success)
}

/// Runs `relay restart`.
///
/// # Errors
/// The old hub did not stop, or the new one did not start.
pub fn run_restart(args: RestartArgs) -> anyhow::Result<ExitCode> {
    let data_dir = args.data_dir.resolve();
    let info = running(&data_dir)?;
    let mut options = SpawnOptions::default();
    if let Some(info) = &info {
        if info.started_by == StartedBy::Service.name() {
            anyhow::bail!(
                "the hub of {} is run by its service; restart it with `{}`",
                data_dir.display(),
                super::service::restart_command(&data_dir)
            );
        }
        let flags: Vec<(String, String)> = info
            .settings
            .iter()
            .filter(|setting| setting.source == "flag")
            .map(|setting| (setting.name.clone(), setting.value.clone()))
            .collect();
        options.hub_args = flag_args(&flags);
        options.started_by = StartedBy::from_name(&info.started_by).unwrap_or(StartedBy::Hand);
    } else {
        options.started_by = StartedBy::Hand;
    }
    match target_pid(&data_dir, info.as_ref()) {
        Some(pid) => {
            stop(pid)?;
            println!(
                "relay: stopped the hub of {} (pid {pid})",
                data_dir.display()
            );
        }
        None => println!("relay: no hub was running for {}", data_dir.display()),
    }
    let runtime = super::session::runtime()?;
    runtime
        .block_on(connect_or_spawn(&data_dir, &options))
        .context("starting the new hub")?;
    let started = runtime
        .block_on(query(&data_dir))
        .map_err(|error| anyhow::anyhow!("{}: {}", error.code.name(), error.message))
        .context("asking the new hub about itself")?;
    println!(
        "relay: started the hub of {} (pid {}, relay {}{})",
        data_dir.display(),
        started.pid,
        started.hub_version,
        if options.hub_args.is_empty() {
            String::new()
        } else {
            format!(", flags {}", options.hub_args.join(" "))
        }
    );
    Ok(ExitCode::Success)
}

/// The running hub's `hub_info`, or `None` when none answers or it is too old to say (then
/// the lock file's pid is used).
fn running(data_dir: &Path) -> anyhow::Result<Option<HubInfoResult>> {
    match super::session::runtime()?.block_on(query(data_dir)) {
        Ok(info) => Ok(Some(info)),
        Err(error) if error.code == ErrorCode::HubUnreachable => Ok(None),
        Err(error) if old_hub_version(&error).is_some() => Ok(None),
        Err(error) => anyhow::bail!(
            "asking the hub about itself: {}: {}",
            error.code.name(),
            error.message
        ),
    }
}

/// The pid to stop: the one the hub named, else a live `relay hub` holding the lock.
fn target_pid(data_dir: &Path, info: Option<&HubInfoResult>) -> Option<u32> {
    match info {
        Some(info) => Some(info.pid),
        None => lock_pid(data_dir).filter(|pid| is_hub_process(*pid)),
    }
}

fn stop(pid: u32) -> anyhow::Result<()> {
    terminate(pid).with_context(|| format!("sending SIGTERM to the hub (pid {pid})"))?;
    if !wait_for_exit(pid, STOP_WAIT) {
        anyhow::bail!(
            "the hub (pid {pid}) did not exit within {} s of SIGTERM; see its logs/hub.log, or end it with `kill -KILL {pid}` (the log recovers at the next start)",
            STOP_WAIT.as_secs()
        );
    }
    Ok(())
}
