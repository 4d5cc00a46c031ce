//! `relay deliver --client opencode|copilot`: the bridge the OpenCode plugin and the Copilot
//! extension spawn. It finds its session's `relay mcp` (by process ancestry, or
//! `--session-socket`), streams that session's messages to stdout as JSON lines and passes the
//! plugin's `ack` lines from stdin back (`docs/delivery.md`). While no session is found, or
//! after it went away, it retries every [`DELIVER_RETRY_INTERVAL`] and says so once per change
//! with a `waiting` line. It exits when stdin closes. stdout carries protocol lines only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

use super::DataDirArgs;
use super::exit_code::ExitCode;
use crate::clients::endpoint::{
    CallerLine, Connection, Mode, SESSION_SOCKET_ENV, SessionLine, encode_line, find_session,
};

/// How often `relay deliver` looks for its session again while it has none.
pub const DELIVER_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Stream a session's incoming messages to a client plugin (OpenCode) or extension (Copilot
/// CLI) as JSON lines, and pass its acknowledgements back. `relay install opencode|copilot`
/// installs the plugin or extension that runs this; it is not meant to be run by hand.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay deliver --client opencode\n  relay deliver --client copilot --session-socket ~/.relay/sessions/4242.sock\n\nstdout: {\"type\":\"welcome\"|\"message\"|\"waiting\",…} lines; stdin: {\"type\":\"ack\",\"msg_id\":…,\"step\":\"read\"|\"refused\"} lines. See docs/delivery.md."
)]
pub struct DeliverArgs {
    #[command(flatten)]
    data_dir: DataDirArgs,
    /// The client this bridge serves.
    #[arg(long, value_enum)]
    client: DeliverClient,
    /// The session's delivery socket, instead of finding it by ancestry.
    #[arg(long, env = SESSION_SOCKET_ENV, value_name = "PATH")]
    session_socket: Option<PathBuf>,
}

/// Clients with a plugin or extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeliverClient {
    /// OpenCode.
    Opencode,
    /// GitHub Copilot CLI.
    Copilot,
}

impl DeliverClient {
    fn name(self) -> &'static str {
        match self {
            DeliverClient::Opencode => "opencode",
            DeliverClient::Copilot => "copilot",
        }
    }
}

/// Runs the bridge until stdin closes.
///
/// # Errors
/// stdout closed, or the runtime could not start.
pub fn run(args: DeliverArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let data_dir = args.data_dir.resolve();
    let outcome = runtime.block_on(bridge(
        args.client,
        &data_dir,
        args.session_socket.as_deref(),
    ));
    runtime.shutdown_background();
    outcome.map(|()| ExitCode::Success)
}

async fn bridge(
    client: DeliverClient,
    data_dir: &Path,
    fixed_socket: Option<&Path>,
) -> anyhow::Result<()> {
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    let mut last_waiting: Option<String> = None;
    let hello = CallerLine::Hello {
        client: client.name().to_owned(),
        mode: Mode::Stream,
        urgent_only: false,
        continuation: false,
    };
    // Ends when stdin closes (the plugin went away) or stdout does.
    loop {
        let found = match fixed_socket {
            Some(socket) => Ok(socket.to_owned()),
            None => find_session(data_dir, std::process::id()).map_err(|error| error.to_string()),
        };
        let opened = match found {
            Ok(socket) => Connection::open(&socket, &hello)
                .await
                .map(|(connection, welcome)| (socket, connection, welcome))
                .map_err(|error| error.to_string()),
            Err(error) => Err(error),
        };
        let (socket, mut connection, welcome) = match opened {
            Ok(opened) => opened,
            Err(reason) => {
                if last_waiting.as_deref() != Some(reason.as_str()) {
                    write_line(
                        &mut stdout,
                        &SessionLine::Waiting {
                            reason: reason.clone(),
                        },
                    )
                    .await?;
                    last_waiting = Some(reason);
                }
                tokio::select! {
                    () = tokio::time::sleep(DELIVER_RETRY_INTERVAL) => continue,
                    line = stdin.next_line() => match line? {
                        // Acks with no session to go to: the session gave their messages back.
                        Some(_) => continue,
                        None => return Ok(()),
                    },
                }
            }
        };
        last_waiting = None;
        write_line(&mut stdout, &welcome).await?;
        // Ends when the session closes (back to finding one) or stdin does (exit).
        loop {
            tokio::select! {
                line = connection.next(&socket) => match line {
                    Ok(Some(line)) => write_line(&mut stdout, &line).await?,
                    Ok(None) | Err(_) => break,
                },
                line = stdin.next_line() => match line? {
                    None => return Ok(()),
                    Some(line) => match serde_json::from_str::<CallerLine>(&line) {
                        Ok(ack @ CallerLine::Ack { .. }) => {
                            if connection.send(&socket, &ack).await.is_err() {
                                break;
                            }
                        }
                        Ok(CallerLine::Hello { .. }) | Err(_) => {
                            eprintln!("relay deliver: ignored a line that is not an ack: {line}");
                        }
                    },
                },
            }
        }
    }
}

async fn write_line(stdout: &mut tokio::io::Stdout, line: &SessionLine) -> anyhow::Result<()> {
    stdout.write_all(&encode_line(line)?).await?;
    stdout.flush().await?;
    Ok(())
}
