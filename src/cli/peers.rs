//! `relay peers`: list the peers the hub knows.

use clap::Args;

use super::exit_code::ExitCode;
use super::output::format_timestamp;
use super::session::{SessionArgs, connect, exit_for, runtime};
use crate::protocol::PeersParams;

/// List known peers: name, online or last seen, client, branch, directory.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay peers\n  relay peers --json | jq '.peers[] | select(.online)'"
)]
pub struct PeersArgs {
    #[command(flatten)]
    session: SessionArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `relay peers`.
///
/// # Errors
/// Output failures.
pub fn run(args: PeersArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let connected = match connect(&args.session).await {
            Ok(connected) => connected,
            Err(error) => return Ok(exit_for(&error)),
        };
        let peers = match connected.client.call(PeersParams {}).await {
            Ok(peers) => peers,
            Err(error) => return Ok(exit_for(&error)),
        };
        if args.json {
            println!("{}", serde_json::to_string(&peers)?);
            return Ok(ExitCode::Success);
        }
        println!("me: {}", peers.me);
        for peer in peers.peers {
            let presence = if peer.online {
                "online".to_owned()
            } else {
                format!("last seen {}", format_timestamp(peer.last_seen))
            };
            let branch = peer
                .git_branch
                .map(|branch| format!(" [{branch}]"))
                .unwrap_or_default();
            println!(
                "{:<24} {:<36} {:<8} {}{branch}",
                peer.name, presence, peer.client, peer.cwd
            );
        }
        Ok(ExitCode::Success)
    })
}
