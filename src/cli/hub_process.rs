//! What `relay status`, `stop`, `restart` and `doctor` share: asking the running hub of a
//! data dir about itself (`hub_info`, no registration, never starting one), the pid in the
//! log's lock file, and whether a process still runs.
//!
//! A pid is signalled only when the hub itself named it (`hub_info`), or when the lock file
//! names a live process whose command line is a `relay hub` (Linux): a stale lock file whose
//! pid was reused by another program is never signalled.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::client::HubClient;
use crate::protocol::{ErrorCode, HubInfoParams, HubInfoResult, RpcError};

/// The `client` these commands give in `hello`.
pub const CLIENT_INFO: &str = concat!("relay-cli/", env!("CARGO_PKG_VERSION"));

/// Pause between two looks at a process that should exit.
const EXIT_POLL: Duration = Duration::from_millis(50);

/// Asks the hub running for `data_dir` about itself; never starts one.
///
/// # Errors
/// `hub_unreachable` when none answers; `unknown_method` from a hub older than `hub_info`
/// (its version is in the error's `hub_version` detail, see [`old_hub_version`]).
pub async fn query(data_dir: &Path) -> Result<HubInfoResult, RpcError> {
    let client = HubClient::connect_running(data_dir, CLIENT_INFO).await?;
    client.call(HubInfoParams {}).await.map_err(|error| {
        if error.code == ErrorCode::UnknownMethod {
            error.with_detail(
                HUB_VERSION_DETAIL,
                serde_json::Value::String(client.hub_version().to_owned()),
            )
        } else {
            error
        }
    })
}

/// The detail [`query`] adds to `unknown_method`: the old hub's version.
const HUB_VERSION_DETAIL: &str = "hub_version";

/// The version of a hub too old to know `hub_info`, from [`query`]'s error; `None` for any
/// other error.
pub fn old_hub_version(error: &RpcError) -> Option<String> {
    if error.code != ErrorCode::UnknownMethod {
        return None;
    }
    error
        .details
        .get(HUB_VERSION_DETAIL)
        .and_then(|value| value.as_str().map(str::to_owned))
}

/// The pid written in `<data dir>/log/lock` (`pid N`), if any. The file stays after a hub
/// exits, so the pid may be stale: see [`is_hub_process`].
pub fn lock_pid(data_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(crate::data_dir::log_dir(data_dir).join("lock")).ok()?;
    text.trim().strip_prefix("pid ")?.trim().parse().ok()
}

/// Whether `pid` is a live process (a zombie, exited but not yet reaped, is not).
pub fn is_alive(pid: u32) -> bool {
    let Some(raw) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    if rustix::process::test_kill_process(raw).is_err() {
        return false;
    }
    // Linux: a zombie still answers kill(0); its state in /proc says it exited.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_none_or(|state| state != 'Z' && state != 'X'),
        Err(_) => true,
    }
}

/// Whether the live process `pid` runs `relay hub` (Linux, from `/proc/<pid>/cmdline`); on
/// systems without `/proc`, `false`: such a pid is not signalled.
pub fn is_hub_process(pid: u32) -> bool {
    if !is_alive(pid) {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        let args: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
        args.first()
            .is_some_and(|program| program.ends_with(b"relay"))
            && args.iter().any(|arg| *arg == b"hub")
    })
}

/// Sends SIGTERM to `pid`.
///
/// # Errors
/// The signal could not be sent (no such process, not ours).
pub fn terminate(pid: u32) -> std::io::Result<()> {
    let raw = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| std::io::Error::other(format!("{pid} is not a process id")))?;
    rustix::process::kill_process(raw, rustix::process::Signal::TERM).map_err(Into::into)
}

/// Waits up to `wait` for `pid` to exit; whether it did.
pub fn wait_for_exit(pid: u32, wait: Duration) -> bool {
    let started = Instant::now();
    // Bounded by `wait`.
    while is_alive(pid) {
        if started.elapsed() >= wait {
            return false;
        }
        std::thread::sleep(EXIT_POLL);
    }
    true
}

/// `90 s`, `4 min 10 s`, `2 h 5 min`, `3 d 4 h`: a duration to the two largest units.
pub fn format_age(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3_600 % 24, seconds / 60 % 60);
    match (days, seconds / 3_600, seconds / 60) {
        (1.., _, _) => format!("{days} d {hours} h"),
        (_, 1.., _) => format!("{} h {minutes} min", seconds / 3_600),
        (_, _, 1..) => format!("{} min {} s", seconds / 60, seconds % 60),
        _ => format!("{seconds} s"),
    }
}

/// Time since `at_us` (microseconds since the epoch); zero for a time in the future.
pub fn since(at_us: u64) -> Duration {
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64);
    Duration::from_micros(now_us.saturating_sub(at_us))
}

/// `12.3 MiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_sizes_read_as_people_say_them() {
        assert_eq!(format_age(Duration::from_secs(42)), "42 s");
        assert_eq!(format_age(Duration::from_secs(250)), "4 min 10 s");
        assert_eq!(format_age(Duration::from_secs(7_500)), "2 h 5 min");
        assert_eq!(
            format_age(Duration::from_secs(3 * 86_400 + 4 * 3_600)),
            "3 d 4 h"
        );
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(64 << 20), "64.0 MiB");
    }

    #[test]
    fn this_process_is_alive_and_no_hub() {
        assert!(is_alive(std::process::id()));
        assert!(!is_hub_process(std::process::id()));
    }
}
