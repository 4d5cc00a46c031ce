//! `relay peers`: list the peers the hub knows.

use clap::Args;

use super::exit_code::ExitCode;
use super::output::{format_timestamp, table};
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
        let mut peers = match connected.client.call(PeersParams {}).await {
            Ok(peers) => peers,
            Err(error) => return Ok(exit_for(&error)),
        };
        // Every page: the hub pages the list so each answer fits one frame. Bounded: the hub
        // knows at most IDENTITIES_MAX peers, at least one per page.
        let mut cursor = peers.next_cursor.take();
        let mut pages = 1usize;
        while let Some(next) = cursor.take() {
            pages += 1;
            if pages > relay_replay::limits::IDENTITIES_MAX {
                break;
            }
            let params = crate::protocol::PeersPageParams {
                limit: crate::protocol::ListLimit::default(),
                cursor: Some(crate::protocol::ListCursor::new(next)?),
            };
            match connected.client.call(params).await {
                Ok(mut page) => {
                    cursor = page.next_cursor.take();
                    peers.peers.append(&mut page.peers);
                }
                Err(error) => return Ok(exit_for(&error)),
            }
        }
        if args.json {
            println!("{}", serde_json::to_string(&peers)?);
            return Ok(ExitCode::Success);
        }
        println!("me: {}", peers.me);
        if peers.peers.is_empty() {
            println!("no other peer has registered yet");
            return Ok(ExitCode::Success);
        }
        let rows: Vec<Vec<String>> = peers
            .peers
            .into_iter()
            .map(|peer| {
                let presence = if peer.online {
                    "online".to_owned()
                } else {
                    format!("last seen {}", format_timestamp(peer.last_seen))
                };
                vec![
                    peer.name,
                    presence,
                    peer.client,
                    peer.delivery.unwrap_or_else(|| "-".to_owned()),
                    peer.git_branch.unwrap_or_else(|| "-".to_owned()),
                    peer.cwd,
                ]
            })
            .collect();
        for line in table(
            &[
                "NAME",
                "PRESENCE",
                "CLIENT",
                "DELIVERY",
                "BRANCH",
                "DIRECTORY",
            ],
            &rows,
        ) {
            println!("{line}");
        }
        Ok(ExitCode::Success)
    })
}
