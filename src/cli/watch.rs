//! `relay watch`: print each incoming message as one line until interrupted.
//!
//! A message printed is acknowledged to the hub as `delivered` (written on; whoever reads the
//! terminal may not have seen it), so the sender hears of it and a later `relay inbox` still
//! returns it, marked pushed. Room posts and hub notices are not stored and need no ack.

use std::io::Write;

use clap::Args;

use crate::protocol::{AckStep, HubNotification};

use super::exit_code::ExitCode;
use super::output::format_timestamp;
use super::session::{SessionArgs, connect, exit_for, runtime};

/// Listen as a session and print every message pushed to it, one line each.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay watch\n  relay watch --as backend --json | while read -r line; do ...; done\n\nExits 4 when the hub goes away."
)]
pub struct WatchArgs {
    #[command(flatten)]
    session: SessionArgs,
    /// One JSON object per line (the hub's `message` notification params).
    #[arg(long)]
    json: bool,
}

/// Runs `relay watch`.
///
/// # Errors
/// Output failures other than a closed pipe.
pub fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let mut connected = match connect(&args.session).await {
            Ok(connected) => connected,
            Err(error) => return Ok(exit_for(&error)),
        };
        let Some(mut pushes) = connected.client.take_pushes() else {
            return Ok(ExitCode::Failed);
        };
        eprintln!("relay: watching as {}", connected.name);
        let mut stdout = std::io::stdout().lock();
        // Runs until interrupted or until the hub goes away.
        while let Some(notification) = pushes.recv().await {
            let HubNotification::Message(push) = notification else {
                continue;
            };
            let line = if args.json {
                serde_json::to_string(&push)?
            } else {
                let kind = serde_json::to_value(push.kind)?;
                let place = push
                    .group
                    .as_deref()
                    .or(push.room.as_deref())
                    .map(|place| format!(" [{place}]"))
                    .unwrap_or_default();
                format!(
                    "{} {} {}{place} from {}: {}",
                    format_timestamp(push.ts),
                    push.msg_id,
                    kind.as_str().unwrap_or(""),
                    push.from,
                    super::output::printable(&push.text)
                )
            };
            if writeln!(stdout, "{line}")
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return Ok(ExitCode::Success);
            }
            if let Err(error) = connected
                .client
                .acknowledge(&push, AckStep::Delivered)
                .await
            {
                eprintln!(
                    "relay: could not acknowledge {}: {}",
                    push.msg_id, error.message
                );
            }
        }
        eprintln!("relay: the hub closed the connection");
        Ok(ExitCode::NoHub)
    })
}
