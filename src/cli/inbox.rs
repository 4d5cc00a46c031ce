//! `relay inbox`: read the mailbox from a shell (marks what it prints as read).

use clap::Args;

use super::exit_code::ExitCode;
use super::output::format_timestamp;
use super::session::{SessionArgs, connect, exit_for, runtime};
use crate::protocol::{InboxLimit, InboxParams};

/// Print unread messages (oldest first) and mark them read.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay inbox\n  relay inbox --limit 100 --json\n  relay inbox --all          # also messages already pushed or read"
)]
pub struct InboxArgs {
    #[command(flatten)]
    session: SessionArgs,
    /// Messages to print at most (1-100).
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Also messages already pushed or read (read again on request).
    #[arg(long)]
    all: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `relay inbox`.
///
/// # Errors
/// Argument errors and output failures.
pub fn run(args: InboxArgs) -> anyhow::Result<ExitCode> {
    let params = InboxParams {
        limit: InboxLimit::new(args.limit)?,
        since_id: None,
        include_pushed: args.all,
    };
    runtime()?.block_on(async {
        let connected = match connect(&args.session).await {
            Ok(connected) => connected,
            Err(error) => return Ok(exit_for(&error)),
        };
        let inbox = match connected.client.call(params).await {
            Ok(inbox) => inbox,
            Err(error) => return Ok(exit_for(&error)),
        };
        if args.json {
            println!("{}", serde_json::to_string(&inbox)?);
            return Ok(ExitCode::Success);
        }
        for message in &inbox.messages {
            let kind = serde_json::to_value(message.kind)?;
            let urgent = if message.urgent { " URGENT" } else { "" };
            println!(
                "{} {} {} from {}{urgent}: {}",
                format_timestamp(message.ts),
                message.msg_id,
                kind.as_str().unwrap_or(""),
                message.from,
                super::output::printable(&message.text)
            );
        }
        println!("({} more unread)", inbox.remaining);
        for refused in &inbox.refused {
            let count = if refused.at_least {
                format!("at least {}", refused.count)
            } else {
                refused.count.to_string()
            };
            let from = refused.from.as_deref().unwrap_or("other senders");
            println!(
                "(refused while your mailbox was full: {count} message(s) from {})",
                super::output::printable(from)
            );
        }
        Ok(ExitCode::Success)
    })
}
