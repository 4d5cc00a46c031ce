//! Benchmarks that need more than one crate: `relay bench replay` (log + projections) and
//! `relay bench hub` (a real hub process over its socket), `relay bench mcp` (the MCP channel
//! beside the hub alone), `relay bench memory` (a real hub's memory per idle session and per
//! queued message), `relay bench federation` (two linked hubs: cross-hub latency beside local,
//! catch-up after a partition).
//!
//! They print figures beside a raw baseline measured in the same run and assert nothing
//! about time. `relay bench log` lives in `relay-log` (only `log/` may sync and map files).

pub mod federation;
pub mod hub;
pub mod mcp;
pub mod memory;
pub mod replay;

use std::path::Path;

use crate::client::HubClient;
use crate::hub::spawn::SpawnOptions;
use crate::protocol::{ClientKind, PeerName, RegisterParams, WorkingDirectory};

/// Connects a benchmark session to the hub of `data_dir` and registers it as `name`.
///
/// # Errors
/// The hub cannot be reached, or refuses the name.
pub(crate) async fn join(
    data_dir: &Path,
    spawn: &SpawnOptions,
    name: &str,
) -> anyhow::Result<HubClient> {
    let client = HubClient::connect(data_dir, spawn, "relay-bench/1")
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let params = RegisterParams {
        delivery: None,
        name: Some(PeerName::new(name.to_owned())?),
        session_name: None,
        cwd: WorkingDirectory::new("/bench")?,
        git_branch: None,
        client: ClientKind::Cli,
    };
    client
        .call(params)
        .await
        .map_err(|error| anyhow::anyhow!("register {name}: {error}"))?;
    Ok(client)
}

/// The `relay hub` flags that lift the send and new-identity rate limits and switch the loop
/// guard off, for every benchmark's hub.
pub(crate) const NO_GUARDS: &[&str] = &[
    "--send-rate",
    "10000000",
    "--send-burst",
    "10000000",
    "--new-identity-rate",
    "1000000",
    "--new-identity-burst",
    "1000000",
    "--loop-guard",
    "0",
];

/// How a benchmark spawns its hub: no WebSocket, a short idle exit, no send or new-identity
/// rate limit and no loop guard (benchmarks measure the hub, not its guards; two sessions
/// sending to each other are a conversation to the loop guard, which refused every send after
/// 100 turns and so stopped the senders of a two-session run), plus `extra` flags.
pub(crate) fn bench_spawn(extra: &[&str]) -> SpawnOptions {
    let base = ["--idle-exit", "5", "--no-ws"];
    SpawnOptions {
        hub_args: base
            .iter()
            .chain(NO_GUARDS)
            .chain(extra)
            .map(|arg| (*arg).to_owned())
            .collect(),
        ..SpawnOptions::default()
    }
}

/// The pid of the hub holding `data_dir`'s log lock (`pid N`), if any.
pub(crate) fn hub_pid(data_dir: &Path) -> Option<u32> {
    let lock = crate::data_dir::log_dir(data_dir).join(relay_log::LOCK_FILE_NAME);
    std::fs::read_to_string(lock)
        .ok()
        .and_then(|holder| holder.trim().strip_prefix("pid ")?.parse::<u32>().ok())
}
