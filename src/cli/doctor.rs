//! `relay doctor`: checks that Relay can work on this machine, one line each, with a fix for
//! every failure.
//!
//! Checks: the data dir's owner and modes (directories 0700, files 0600; the hub refuses a dir
//! others can write), `relay.toml`, free space on the data dir's file system, the hub
//! (reachable, same version as this binary, its WebSocket, each session's push path), each
//! installed AI client's config (runs this binary, push path wired; the installers' own
//! planning decides), Claude Code's messaging socket when run inside Claude Code, and the
//! NATS server when `federation.toml` has `[nats]`.
//! Read-only: it starts no hub and writes nothing. Exit 0 when nothing failed (warnings
//! allowed), 3 when a check failed.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use super::DataDirArgs;
use super::exit_code::ExitCode;
use super::hub_process::{format_bytes, query};
use super::install::{ClientState, client_states};
use super::output::Out;
use crate::client::version_skew;
use crate::hub::limits::{DISK_FREE_FAIL_BYTES, DISK_FREE_WARN_BYTES};
use crate::protocol::{ErrorCode, HubInfoResult};

/// Entries of the data dir looked at, at most: a data dir holds a few dozen files, so this
/// only bounds the walk of a wrong `--data-dir` (a home directory, say).
pub const DOCTOR_ENTRIES_MAX: usize = 10_000;

/// Paths named per failed mode check, at most (the fix covers them all).
const PATHS_NAMED_MAX: usize = 5;

/// Check that Relay can work here: data dir modes, settings, disk, hub, clients.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay doctor\n  relay doctor --json | jq '.checks[] | select(.status == \"fail\")'\n  relay doctor --data-dir ~/.relay-work\n\nEach line is ok, warn, fail or skip, then the check and what was found; a failure says how to fix it. Starts no hub, writes nothing. Exit 0 when no check failed, 3 when one did."
)]
pub struct DoctorArgs {
    #[command(flatten)]
    data_dir: DataDirArgs,
    /// Print one JSON object: {"ok", "checks": [{"check", "status", "detail", "fix"}]}.
    #[arg(long)]
    json: bool,
}

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but worth knowing.
    Warn,
    /// Broken: Relay will not work (well) until fixed.
    Fail,
    /// Does not apply here.
    Skip,
}

/// One check's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What was checked.
    pub check: String,
    /// How it came out.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// How to fix a failure or a warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn new(check: impl Into<String>, status: Status, detail: impl Into<String>) -> Check {
        Check {
            check: check.into(),
            status,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// Runs `relay doctor`.
///
/// # Errors
/// Output failures only: every failed check is a line, not an error.
pub fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let data_dir = args.data_dir.resolve();
    let mut checks = data_dir_checks(&data_dir);
    checks.push(settings_check(&data_dir));
    checks.push(disk_check(&data_dir));
    let info = super::session::runtime()?.block_on(query(&data_dir));
    checks.extend(hub_checks(&info));
    checks.extend(link_checks(&info));
    checks.extend(client_checks(args.data_dir.data_dir.as_deref()));
    checks.push(claude_socket_check());
    checks.extend(nats_checks(&data_dir));
    let ok = checks.iter().all(|check| check.status != Status::Fail);
    let mut out = Out::new();
    if args.json {
        out.json(&serde_json::json!({"ok": ok, "data_dir": data_dir.display().to_string(), "checks": checks}))?;
    } else {
        for check in &checks {
            let status = match check.status {
                Status::Ok => "ok  ",
                Status::Warn => "warn",
                Status::Fail => "fail",
                Status::Skip => "skip",
            };
            out.line(format!("{status}  {}: {}", check.check, check.detail))?;
            if let Some(fix) = &check.fix {
                out.line(format!("      fix: {fix}"))?;
            }
        }
        let failed = checks
            .iter()
            .filter(|check| check.status == Status::Fail)
            .count();
        out.line(match failed {
            0 => "no problems found".to_owned(),
            1 => "1 check failed".to_owned(),
            count => format!("{count} checks failed"),
        })?;
    }
    out.flush()?;
    Ok(if ok {
        ExitCode::Success
    } else {
        ExitCode::CheckFailed
    })
}

/// The data dir itself, then every entry in it: owned by us, nothing others may write, files
/// nobody else may read.
fn data_dir_checks(data_dir: &Path) -> Vec<Check> {
    let name = format!("data dir {}", data_dir.display());
    let metadata = match std::fs::symlink_metadata(data_dir) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return vec![Check::new(
                name,
                Status::Ok,
                "does not exist yet; the first hub creates it (mode 0700)",
            )];
        }
        Err(error) => {
            return vec![
                Check::new(name, Status::Fail, format!("cannot be read: {error}"))
                    .fix("use a data dir of your own (--data-dir, $RELAY_HOME)"),
            ];
        }
    };
    let me = rustix::process::geteuid().as_raw();
    if metadata.uid() != me {
        return vec![
            Check::new(
                name,
                Status::Fail,
                format!(
                    "belongs to uid {}, not to you (uid {me}): the hub refuses it",
                    metadata.uid()
                ),
            )
            .fix("use a data dir of your own (--data-dir, $RELAY_HOME)"),
        ];
    }
    let mode = metadata.mode() & 0o777;
    let dir_check = if mode & 0o022 != 0 {
        Check::new(
            name.clone(),
            Status::Fail,
            format!("mode {mode:03o}: other users can write into it, and the hub refuses it"),
        )
        .fix(format!("chmod 700 {}", data_dir.display()))
    } else if mode & 0o077 != 0 {
        Check::new(
            name.clone(),
            Status::Warn,
            format!("mode {mode:03o}: other users can list it (Relay makes it 0700)"),
        )
        .fix(format!("chmod 700 {}", data_dir.display()))
    } else {
        Check::new(name.clone(), Status::Ok, format!("yours, mode {mode:03o}"))
    };
    let mut loose = Vec::new();
    let mut foreign = Vec::new();
    let mut seen = 0;
    walk(data_dir, &mut seen, &mut |path, metadata| {
        let mode = metadata.mode() & 0o777;
        if metadata.uid() != me {
            foreign.push(path.to_owned());
        } else if mode & 0o077 != 0 && !metadata.file_type().is_symlink() {
            loose.push(format!("{} ({mode:03o})", path.display()));
        }
    });
    let contents = format!("files in {}", data_dir.display());
    let contents_check = if !foreign.is_empty() {
        Check::new(
            contents,
            Status::Fail,
            format!(
                "{} belong to other users: {}",
                foreign.len(),
                named(
                    &foreign
                        .iter()
                        .map(|path| path.display().to_string())
                        .collect::<Vec<_>>()
                )
            ),
        )
        .fix(format!(
            "chown -R $(id -u) {} (as root), or use a data dir of your own",
            data_dir.display()
        ))
    } else if !loose.is_empty() {
        Check::new(
            contents,
            Status::Fail,
            format!(
                "{} readable or writable by others (files must be 0600, directories 0700): {}",
                loose.len(),
                named(&loose)
            ),
        )
        .fix(format!("chmod -R go-rwx {}", data_dir.display()))
    } else {
        Check::new(
            contents,
            Status::Ok,
            format!("{seen} entries, all yours, none open to others"),
        )
    };
    vec![dir_check, contents_check]
}

/// The first [`PATHS_NAMED_MAX`] of `paths`, and how many more.
fn named(paths: &[String]) -> String {
    let mut text = paths
        .iter()
        .take(PATHS_NAMED_MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > PATHS_NAMED_MAX {
        text.push_str(&format!(" and {} more", paths.len() - PATHS_NAMED_MAX));
    }
    text
}

/// Visits every entry under `dir` (not following symlinks), at most [`DOCTOR_ENTRIES_MAX`].
fn walk(dir: &Path, seen: &mut usize, visit: &mut dyn FnMut(&Path, &std::fs::Metadata)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if *seen >= DOCTOR_ENTRIES_MAX {
            return;
        }
        *seen += 1;
        let path = entry.path();
        let Ok(metadata) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        // The hub's socket is 0600 like the files; backups and rotated logs are files too.
        visit(&path, &metadata);
        if metadata.is_dir() {
            walk(&path, seen, visit);
        }
    }
}

fn settings_check(data_dir: &Path) -> Check {
    let path = crate::hub::settings::settings_path(data_dir);
    match crate::hub::settings::read_file(data_dir) {
        Ok(_) if !path.exists() => Check::new(
            "relay.toml",
            Status::Ok,
            "none: every setting has its default (docs/operations.md lists the keys)",
        ),
        Ok(_) => Check::new(
            "relay.toml",
            Status::Ok,
            format!("{} is valid", path.display()),
        ),
        Err(error) => Check::new(
            "relay.toml",
            Status::Fail,
            format!("{error}; no hub can start for this data dir"),
        )
        .fix(format!("correct or remove {}", path.display())),
    }
}

fn disk_check(data_dir: &Path) -> Check {
    // The nearest directory that exists: a data dir not made yet lives on its parent's disk.
    let mut probe: PathBuf = data_dir.to_owned();
    while !probe.exists() {
        match probe.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => probe = parent.to_owned(),
            _ => {
                probe = PathBuf::from(".");
                break;
            }
        }
    }
    match rustix::fs::statvfs(&probe) {
        Ok(stat) => {
            let free = stat.f_bavail.saturating_mul(stat.f_frsize);
            let detail = format!(
                "{} free on the file system of {}",
                format_bytes(free),
                probe.display()
            );
            if free < DISK_FREE_FAIL_BYTES {
                Check::new("disk", Status::Fail, format!("{detail}: a new segment (64 MiB) may not fit; the hub stops when a write fails"))
                    .fix("free space on that file system, or move the data dir (--data-dir)")
            } else if free < DISK_FREE_WARN_BYTES {
                Check::new(
                    "disk",
                    Status::Warn,
                    format!("{detail}: under {}", format_bytes(DISK_FREE_WARN_BYTES)),
                )
                .fix("free space on that file system")
            } else {
                Check::new("disk", Status::Ok, detail)
            }
        }
        Err(error) => Check::new(
            "disk",
            Status::Warn,
            format!("cannot tell the free space of {}: {error}", probe.display()),
        ),
    }
}

fn hub_checks(info: &Result<HubInfoResult, crate::protocol::RpcError>) -> Vec<Check> {
    let info = match info {
        Ok(info) => info,
        Err(error) if error.code == ErrorCode::HubUnreachable => {
            return vec![Check::new(
                "hub",
                Status::Ok,
                "none runs; the first session (relay mcp, relay send …) starts one",
            )];
        }
        Err(error) => {
            let detail = match super::hub_process::old_hub_version(error) {
                Some(hub_version) => format!(
                    "runs relay {hub_version}, too old to describe itself (this is relay {})",
                    env!("CARGO_PKG_VERSION")
                ),
                None => format!(
                    "answers, but not hub_info: {}: {}",
                    error.code.name(),
                    error.message
                ),
            };
            return vec![Check::new("hub", Status::Fail, detail).fix("relay restart")];
        }
    };
    let mut checks = Vec::new();
    let running = format!("runs: pid {}, relay {}", info.pid, info.hub_version);
    checks.push(match version_skew(&info.hub_version) {
        Some(skew) => {
            Check::new("hub", Status::Fail, format!("{running}; {skew}")).fix("relay restart")
        }
        None => Check::new(
            "hub",
            Status::Ok,
            format!("{running}, the same version as this binary"),
        ),
    });
    checks.push(match (info.ws_port, &info.ws_error) {
        (Some(port), _) => Check::new("websocket", Status::Ok, format!("127.0.0.1:{port}")),
        (None, Some(error)) if error.starts_with("turned off") => {
            Check::new("websocket", Status::Skip, error.clone())
        }
        (None, error) => Check::new(
            "websocket",
            Status::Warn,
            format!(
                "none: {}; clients that use the WebSocket cannot connect",
                error.as_deref().unwrap_or("unknown")
            ),
        )
        .fix("set ws_port = 0 (a free port) or another port in relay.toml, then relay restart"),
    });
    for session in &info.sessions {
        let Some(name) = &session.name else { continue };
        let client = session.client.as_deref().unwrap_or("?");
        let delivery = session.delivery.as_deref().unwrap_or("pull");
        let check = format!("push path of {name} ({client})");
        checks.push(match (client, delivery) {
            ("cli", _) => continue,
            ("claude", "channel-pull") => Check::new(
                check,
                Status::Warn,
                "no messaging socket: messages reach the model only through the channel or relay_inbox",
            )
            .fix("use Claude Code 2.1.224 or later, which gives its MCP servers the messaging socket"),
            (_, "pull") => Check::new(
                check,
                Status::Warn,
                "pull only: messages wait until the model calls relay_inbox (Antigravity has no other path)",
            )
            .fix(format!("relay install {client}, then restart that session")),
            _ => Check::new(check, Status::Ok, delivery.to_owned()),
        });
    }
    checks
}

/// One check per federation link the running hub has: up is fine, connecting or down is
/// worth knowing (messages wait, nothing is lost), refused needs a person.
fn link_checks(info: &Result<HubInfoResult, crate::protocol::RpcError>) -> Vec<Check> {
    let Ok(info) = info else {
        return Vec::new();
    };
    info.links
        .iter()
        .map(|link| {
            let check = format!("federation link to {}", link.hub_id);
            let error = link.error.as_deref().unwrap_or("no reason given");
            let behind = format!("{} records of this hub's log not acknowledged", link.behind);
            match link.state.as_str() {
                "up" => Check::new(check, Status::Ok, format!("up; {behind}")),
                "refused" => Check::new(check, Status::Fail, format!("refused: {error}"))
                    .fix("compare federation.toml on both hubs (secret, hub ids, pinned keys); docs/federation.md"),
                state => Check::new(
                    check,
                    Status::Warn,
                    format!("{state}: {error}; messages for it wait here ({behind})"),
                )
                .fix("check that the peer's hub runs and its address (or the relay server) is reachable"),
            }
        })
        .collect()
}

fn client_checks(data_dir: Option<&Path>) -> Vec<Check> {
    let states = match client_states(data_dir) {
        Ok(states) => states,
        Err(error) => {
            return vec![Check::new(
                "clients",
                Status::Warn,
                format!("cannot look: {}", super::describe(&error)),
            )];
        }
    };
    states
        .into_iter()
        .map(|(name, cli_name, state)| {
            let check = format!("client {name}");
            match state {
                ClientState::NotFound => {
                    Check::new(check, Status::Skip, "not found on this machine")
                }
                ClientState::NotInstalled => {
                    Check::new(check, Status::Skip, "found; relay is not installed in it")
                        .fix(format!("relay install {cli_name}"))
                }
                ClientState::Current => Check::new(
                    check,
                    Status::Ok,
                    "runs this binary; its push path is wired",
                ),
                ClientState::Differs(changes) => Check::new(
                    check,
                    Status::Fail,
                    format!(
                        "relay is installed but not as this binary would set it up: {}",
                        changes.join("; ")
                    ),
                )
                .fix(format!("relay install {cli_name}")),
                ClientState::Unreadable(error) => Check::new(check, Status::Fail, error)
                    .fix("repair the file named above, then relay install ".to_owned() + cli_name),
            }
        })
        .collect()
}

fn claude_socket_check() -> Check {
    let name = "claude code messaging socket";
    let Some(path) = std::env::var_os(crate::clients::claude::messaging::SOCKET_ENV)
        .filter(|value| !value.is_empty())
    else {
        return Check::new(
            name,
            Status::Skip,
            "not inside Claude Code (it gives the socket to its MCP servers only; `relay status` shows each session's push path)",
        );
    };
    let path = PathBuf::from(path);
    match std::os::unix::net::UnixStream::connect(&path) {
        Ok(_) => Check::new(name, Status::Ok, format!("{} answers", path.display())),
        Err(error) => Check::new(name, Status::Fail, format!("{}: {error}", path.display()))
            .fix("restart Claude Code; messages meanwhile wait for relay_inbox"),
    }
}

/// The JetStream transport's server, when `federation.toml` has `[nats]`.
fn nats_checks(data_dir: &Path) -> Vec<Check> {
    use crate::federation::jetstream::{Finding, check_server};
    let Ok(Some(federation)) = crate::federation::config::load(data_dir) else {
        return Vec::new();
    };
    let Some(nats) = federation.nats else {
        return Vec::new();
    };
    let report = super::session::runtime()
        .map_err(|error| error.to_string())
        .and_then(|runtime| {
            let report = runtime.block_on(check_server(&nats, &federation.hub_id));
            report.map_err(|error| error.to_string())
        });
    let lines = match report {
        Ok(report) => report.lines(&federation.hub_id, &nats.url),
        Err(error) => vec![(Finding::Fail, error)],
    };
    let status = |finding| match finding {
        Finding::Ok => Status::Ok,
        Finding::Warn => Status::Warn,
        Finding::Fail => Status::Fail,
        Finding::Skip => Status::Skip,
    };
    let checks = lines
        .into_iter()
        .map(|(finding, detail)| Check::new("nats", status(finding), detail));
    checks
        .map(|check| match check.status {
            Status::Fail => {
                check.fix("start the NATS server, or correct [nats] in federation.toml")
            }
            _ => check,
        })
        .collect()
}
