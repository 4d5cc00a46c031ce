//! `relay send`: send a direct message from a shell.

use clap::Args;

use super::exit_code::ExitCode;
use super::session::{SessionArgs, connect, exit_for, runtime};
use crate::protocol::{MessageId, MessageText, PeerName, SendParams};

/// Send a direct message; prints its id and whether it was delivered or queued.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay send backend \"did the auth token shape change?\"\n  relay send --as ci backend \"build 812 is green\" --urgent\n  relay send backend \"yes, see PR 41\" --reply-to m-1042 --json"
)]
pub struct SendArgs {
    #[command(flatten)]
    session: SessionArgs,
    /// The peer to send to.
    to: String,
    /// The message text.
    text: String,
    /// The message this one answers.
    #[arg(long, value_name = "MSG_ID")]
    reply_to: Option<String>,
    /// Mark the message urgent.
    #[arg(long)]
    urgent: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `relay send`.
///
/// # Errors
/// Argument errors and output failures.
pub fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    let params = SendParams {
        idempotency_key: None,
        to: PeerName::new(args.to.as_str())?,
        text: MessageText::new(args.text.as_str())?,
        reply_to: args.reply_to.as_deref().map(MessageId::new).transpose()?,
        urgent: args.urgent,
    };
    runtime()?.block_on(async {
        let connected = match connect(&args.session).await {
            Ok(connected) => connected,
            Err(error) => return Ok(exit_for(&error)),
        };
        match connected.client.call(params).await {
            Ok(result) if args.json => {
                println!("{}", serde_json::to_string(&result)?);
                Ok(ExitCode::Success)
            }
            Ok(result) => {
                let status = serde_json::to_value(result.status)?;
                println!(
                    "{} {} (from {})",
                    result.msg_id,
                    status.as_str().unwrap_or("sent"),
                    connected.name
                );
                Ok(ExitCode::Success)
            }
            Err(error) => Ok(exit_for(&error)),
        }
    })
}
