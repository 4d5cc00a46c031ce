//! Finding the hub of a data dir, and starting it when none runs.
//!
//! [`connect_or_spawn`] connects to `<data dir>/hub.sock`; if nothing answers it starts
//! `relay hub --started-by on-demand` as a detached daemon (own process group, stdin closed,
//! stdout and stderr to `<data dir>/logs/hub.out`, rotated before the spawn when full, a
//! minimal environment) and waits until the socket answers, or until the spawned hub exits:
//! then the error carries the last line it printed (a bad `relay.toml`, say) at once instead
//! of after [`SPAWN_WAIT`]. The spawned hub reads `<data dir>/relay.toml` like any other, and
//! started on demand it exits after its idle timeout unless the file says otherwise.
//! Two sessions starting at once may both spawn a hub: the log's lock lets one win, the other
//! exits at once, and both sessions connect to the winner.

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::net::UnixStream;

use super::limits::SPAWN_WAIT;
use super::log_files::rotate_if_full;
use super::settings::StartedBy;
use crate::data_dir::create_private_dir;

/// File name of the hub's Unix socket inside the data dir.
pub const SOCKET_FILE_NAME: &str = "hub.sock";

/// Environment variables a spawned hub keeps; everything else is dropped.
pub const SPAWN_ENV_KEPT: &[&str] = &["HOME", "PATH", "RELAY_LOG", "TMPDIR", "LANG"];

/// The hub socket of a data dir.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE_NAME)
}

/// How to start a hub when none answers.
#[derive(Clone, Debug)]
pub struct SpawnOptions {
    /// The `relay` binary to run [default: this executable].
    pub relay_binary: Option<PathBuf>,
    /// Extra arguments after `relay hub --data-dir D`.
    pub hub_args: Vec<String>,
    /// How long to wait for the spawned hub's socket.
    pub wait: Duration,
    /// What the hub is told started it (`--started-by`): on demand unless `relay restart`
    /// says otherwise.
    pub started_by: StartedBy,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            relay_binary: None,
            hub_args: Vec::new(),
            wait: SPAWN_WAIT,
            started_by: StartedBy::OnDemand,
        }
    }
}

/// Connecting to or starting the hub failed.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The hub binary could not be started.
    #[error("could not start {}: {source}", .binary.display())]
    Start {
        /// The binary.
        binary: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A hub was started but its socket did not answer in time.
    #[error("no hub answered on {} within {waited:?}; see {}", .socket.display(), .log.display())]
    NoAnswer {
        /// The socket tried.
        socket: PathBuf,
        /// How long we waited.
        waited: Duration,
        /// The spawned hub's output.
        log: PathBuf,
    },
    /// The spawned hub exited before its socket answered (and no other hub answers).
    #[error("the hub exited at once ({status}): {last_line} (more in {})", .log.display())]
    Exited {
        /// How it ended.
        status: std::process::ExitStatus,
        /// The last line it printed.
        last_line: String,
        /// The spawned hub's output.
        log: PathBuf,
    },
    /// The data dir could not be prepared.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Connects to the hub of `data_dir`, spawning one if none answers.
///
/// # Errors
/// [`SpawnError`] if no hub could be reached or started.
///
/// # Cancel safety
/// Dropping the future may leave a spawned hub running, which is harmless: it exits after its
/// idle timeout.
pub async fn connect_or_spawn(
    data_dir: &Path,
    options: &SpawnOptions,
) -> Result<UnixStream, SpawnError> {
    let socket = socket_path(data_dir);
    if let Ok(stream) = UnixStream::connect(&socket).await {
        return Ok(stream);
    }
    let exited = spawn_hub(data_dir, options)?;
    let log = data_dir.join("logs").join("hub.out");
    let started = Instant::now();
    // Bounded by `options.wait`.
    loop {
        if let Ok(stream) = UnixStream::connect(&socket).await {
            return Ok(stream);
        }
        if let Ok(status) = exited.try_recv() {
            // Two sessions spawning at once: the loser exits naming the winner, which answers.
            let last_line = last_line(&log);
            if !status.success() && !last_line.contains("a hub already runs") {
                if let Ok(stream) = UnixStream::connect(&socket).await {
                    return Ok(stream);
                }
                return Err(SpawnError::Exited {
                    status,
                    last_line,
                    log,
                });
            }
        }
        if started.elapsed() >= options.wait {
            return Err(SpawnError::NoAnswer {
                socket,
                waited: options.wait,
                log,
            });
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Starts a detached hub for `data_dir` (as [`connect_or_spawn`] does) and returns its pid
/// and a receiver of its exit status.
///
/// # Errors
/// The data dir or its log file could not be prepared, or the binary could not start.
pub fn start_detached(
    data_dir: &Path,
    options: &SpawnOptions,
) -> Result<std::sync::mpsc::Receiver<std::process::ExitStatus>, SpawnError> {
    spawn_hub(data_dir, options)
}

/// The last non-empty line of a file (the spawned hub's last words), or a placeholder.
fn last_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .rev()
                .find(|line| !line.trim().is_empty())
                .map(|line| line.trim().to_owned())
        })
        .unwrap_or_else(|| "it printed nothing".to_owned())
}

fn spawn_hub(
    data_dir: &Path,
    options: &SpawnOptions,
) -> Result<std::sync::mpsc::Receiver<std::process::ExitStatus>, SpawnError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SpawnError::Io { path, source }
    };
    create_private_dir(data_dir).map_err(io(data_dir))?;
    let logs = data_dir.join("logs");
    create_private_dir(&logs).map_err(io(&logs))?;
    let out_path = logs.join("hub.out");
    // A full hub.out is rotated now: the running hub holds it as its stdout.
    let _ = rotate_if_full(&out_path);
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&out_path)
        .map_err(io(&out_path))?;
    let err = out.try_clone().map_err(io(&out_path))?;
    let binary = match &options.relay_binary {
        Some(binary) => binary.clone(),
        None => std::env::current_exe().map_err(io(Path::new("current executable")))?,
    };
    let mut command = std::process::Command::new(&binary);
    command
        .arg("hub")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--started-by")
        .arg(options.started_by.name())
        .args(&options.hub_args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .env_clear();
    for key in SPAWN_ENV_KEPT {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    {
        use std::os::unix::process::CommandExt;
        // Its own process group: a Ctrl-C in the session's terminal does not reach the hub.
        command.process_group(0);
    }
    let mut child = command
        .spawn()
        .map_err(|source| SpawnError::Start { binary, source })?;
    // Reap the daemon when it exits so it never lingers as a zombie of this process, and say
    // when it did.
    let (exited_sender, exited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok(status) = child.wait() {
            let _ = exited_sender.send(status);
        }
    });
    Ok(exited)
}
