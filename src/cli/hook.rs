//! `relay hook <client> <event>`: the hooks `relay install` writes into Gemini CLI and Cursor.
//!
//! A hook reads its client's JSON on stdin, takes what the session's `relay mcp` holds for the
//! model (`docs/delivery.md`, take mode), prints exactly the JSON its client expects, then
//! reports each message `read` (or `refused` when the output could not be written). It always
//! exits 0 within [`HOOK_DEADLINE`] and prints the client's no-op JSON when there is nothing to
//! hand over or anything fails: a hook never breaks its client's turn. Diagnostics go to
//! `<data dir>/logs/hook.log`, never to stdout.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::DataDirArgs;
use super::exit_code::ExitCode;
use crate::clients::endpoint::{
    CallerLine, Connection, EndpointStep, Mode, SESSION_SOCKET_ENV, SessionLine, find_session,
};
use crate::clients::{cursor, gemini};

/// Longest a hook runs, start to exit. Gemini CLI's and Cursor's hook timeouts are far
/// longer (`relay install` sets 10 s); past this the hook prints its no-op and the messages
/// wait for the next turn.
pub const HOOK_DEADLINE: Duration = Duration::from_secs(3);

/// Longest wait for the hook input to end (stdin to close).
pub const HOOK_INPUT_WAIT: Duration = Duration::from_secs(1);

/// Longest hook input read from stdin, in bytes; a longer one is not parsed (no-op output).
pub const HOOK_INPUT_MAX: usize = 1 << 20;

/// Hand a session's waiting messages to its model from a client hook (Gemini CLI, Cursor).
/// `relay install gemini|cursor` writes these hooks; they are not meant to be run by hand.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay hook gemini after-agent      (Gemini CLI AfterAgent: messages become the next prompt)\n  relay hook gemini after-tool       (Gemini CLI AfterTool: urgent messages join the tool result)\n  relay hook cursor stop             (Cursor stop: messages become the follow-up message)\n\nThe hook finds its session's relay mcp by process ancestry (or --session-socket), prints only the JSON its client expects on stdout, and always exits 0."
)]
pub struct HookArgs {
    #[command(flatten)]
    data_dir: DataDirArgs,
    /// The client whose hook this is.
    #[arg(value_enum)]
    client: HookClient,
    /// The hook event: gemini after-agent|after-tool, cursor stop.
    #[arg(value_enum)]
    event: HookEvent,
    /// The session's delivery socket, instead of finding it by ancestry.
    #[arg(long, env = SESSION_SOCKET_ENV, value_name = "PATH")]
    session_socket: Option<PathBuf>,
}

/// Clients with hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HookClient {
    /// Gemini CLI.
    Gemini,
    /// Cursor CLI.
    Cursor,
}

/// Hook events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HookEvent {
    /// Gemini CLI `AfterAgent`.
    AfterAgent,
    /// Gemini CLI `AfterTool`.
    AfterTool,
    /// Cursor `stop`.
    Stop,
}

/// What the hook input says.
struct Parsed {
    /// The turn that ended was started by this hook.
    continuation: bool,
    /// Messages may be handed over at this point (Cursor: not after an aborted loop).
    delivers: bool,
}

/// One hook's client-specific parts.
struct Hook {
    client: &'static str,
    urgent_only: bool,
    /// Parses stdin.
    parse: fn(&[u8]) -> Result<Parsed, String>,
    /// The output for these framed texts.
    render: fn(&[String]) -> String,
    /// The output that changes nothing.
    no_op: &'static str,
}

fn hook_for(client: HookClient, event: HookEvent) -> Option<Hook> {
    match (client, event) {
        (HookClient::Gemini, HookEvent::AfterAgent) => Some(Hook {
            client: "gemini",
            urgent_only: false,
            parse: |bytes| {
                gemini::hook::parse_input(bytes)
                    .map(|input| Parsed {
                        continuation: input.continuation(),
                        delivers: true,
                    })
                    .map_err(|error| error.to_string())
            },
            render: |texts| gemini::hook::render(gemini::hook::HookEvent::AfterAgent, texts),
            no_op: gemini::hook::no_op(gemini::hook::HookEvent::AfterAgent),
        }),
        (HookClient::Gemini, HookEvent::AfterTool) => Some(Hook {
            client: "gemini",
            urgent_only: true,
            parse: |bytes| {
                gemini::hook::parse_input(bytes)
                    .map(|input| Parsed {
                        continuation: input.continuation(),
                        delivers: true,
                    })
                    .map_err(|error| error.to_string())
            },
            render: |texts| gemini::hook::render(gemini::hook::HookEvent::AfterTool, texts),
            no_op: gemini::hook::no_op(gemini::hook::HookEvent::AfterTool),
        }),
        (HookClient::Cursor, HookEvent::Stop) => Some(Hook {
            client: "cursor",
            urgent_only: false,
            parse: |bytes| {
                cursor::hook::parse_input(bytes)
                    .map(|input| Parsed {
                        continuation: input.continuation(),
                        delivers: input.delivers(),
                    })
                    .map_err(|error| error.to_string())
            },
            render: |texts| cursor::hook::render(cursor::hook::HookEvent::Stop, texts),
            no_op: cursor::hook::no_op(cursor::hook::HookEvent::Stop),
        }),
        _ => None,
    }
}

/// Runs one hook.
///
/// # Errors
/// Only a wrong client/event pair (the client's JSON never makes it fail).
pub fn run(args: HookArgs) -> anyhow::Result<ExitCode> {
    let Some(hook) = hook_for(args.client, args.event) else {
        anyhow::bail!(
            "no such hook: {:?} {:?} (gemini: after-agent, after-tool; cursor: stop)",
            args.client,
            args.event
        );
    };
    let data_dir = args.data_dir.resolve();
    let started = std::time::Instant::now();
    let output = match deliver(&hook, &data_dir, args.session_socket.as_deref(), started) {
        Ok(output) => output,
        Err(error) => {
            log(&data_dir, &format!("{} hook: {error}", hook.client));
            None
        }
    };
    let mut stdout = std::io::stdout().lock();
    match output {
        Some((text, mut taken)) => {
            let written = stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.write_all(b"\n"))
                .and_then(|()| stdout.flush());
            let step = if written.is_ok() {
                EndpointStep::Read
            } else {
                EndpointStep::Refused
            };
            if let Err(error) = taken.report(step, started) {
                log(&data_dir, &format!("{} hook: {error}", hook.client));
            }
        }
        None => {
            let _ = writeln!(stdout, "{}", hook.no_op);
            let _ = stdout.flush();
        }
    }
    Ok(ExitCode::Success)
}

/// What one take handed over, on its still open connection.
struct Taken {
    runtime: tokio::runtime::Runtime,
    connection: Connection,
    socket: PathBuf,
    msg_ids: Vec<String>,
}

impl Taken {
    /// Reports every message taken as `step`, within what is left of the deadline.
    fn report(&mut self, step: EndpointStep, started: std::time::Instant) -> anyhow::Result<()> {
        let left = HOOK_DEADLINE.saturating_sub(started.elapsed());
        let Taken {
            runtime,
            connection,
            socket,
            msg_ids,
        } = self;
        runtime.block_on(async {
            tokio::time::timeout(left, async {
                for msg_id in msg_ids.iter() {
                    let ack = CallerLine::Ack {
                        msg_id: msg_id.clone(),
                        step,
                        detail: (step == EndpointStep::Refused)
                            .then(|| "the hook could not write its output".to_owned()),
                    };
                    connection.send(socket, &ack).await?;
                }
                Ok::<(), crate::clients::endpoint::CallError>(())
            })
            .await
            .map_err(|_| anyhow::anyhow!("the session did not take the reports in time"))?
            .map_err(anyhow::Error::from)
        })
    }
}

/// Reads the input, takes the pending messages and renders them; `None` when there is nothing
/// to hand over.
fn deliver(
    hook: &Hook,
    data_dir: &Path,
    socket: Option<&Path>,
    started: std::time::Instant,
) -> anyhow::Result<Option<(String, Taken)>> {
    let input = read_stdin()?;
    let parsed = (hook.parse)(&input).map_err(|error| anyhow::anyhow!("bad input: {error}"))?;
    if !parsed.delivers {
        return Ok(None);
    }
    let socket = match socket {
        Some(socket) => socket.to_owned(),
        None => find_session(data_dir, std::process::id())?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let hello = CallerLine::Hello {
        client: hook.client.to_owned(),
        mode: Mode::Take,
        urgent_only: hook.urgent_only,
        continuation: parsed.continuation,
    };
    let left = HOOK_DEADLINE.saturating_sub(started.elapsed());
    let taken = runtime.block_on(async {
        tokio::time::timeout(left, async {
            let (mut connection, _welcome) = Connection::open(&socket, &hello).await?;
            let (messages, end) = connection.take_all(&socket).await?;
            Ok::<_, crate::clients::endpoint::CallError>((connection, messages, end))
        })
        .await
    });
    let (connection, messages, end) = taken
        .map_err(|_| anyhow::anyhow!("the session did not answer within {HOOK_DEADLINE:?}"))??;
    if let SessionLine::End {
        reason: Some(reason),
        pending,
    } = &end
    {
        log(
            data_dir,
            &format!(
                "{} hook: {pending} message(s) not handed over: {reason}",
                hook.client
            ),
        );
    }
    if messages.is_empty() {
        return Ok(None);
    }
    let texts: Vec<String> = messages
        .iter()
        .map(|message| message.text.clone())
        .collect();
    let msg_ids = messages.into_iter().map(|message| message.msg_id).collect();
    Ok(Some((
        (hook.render)(&texts),
        Taken {
            runtime,
            connection,
            socket,
            msg_ids,
        },
    )))
}

/// Reads stdin to its end, at most [`HOOK_INPUT_MAX`] bytes and [`HOOK_INPUT_WAIT`]: a client
/// that keeps stdin open must not hold the hook past its deadline.
fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut input = Vec::new();
        let read = std::io::stdin()
            .lock()
            .take(HOOK_INPUT_MAX as u64 + 1)
            .read_to_end(&mut input)
            .map(|_| input);
        let _ = sender.send(read);
    });
    let input = receiver
        .recv_timeout(HOOK_INPUT_WAIT)
        .map_err(|_| anyhow::anyhow!("stdin did not close within {HOOK_INPUT_WAIT:?}"))??;
    if input.len() > HOOK_INPUT_MAX {
        anyhow::bail!("the hook input is longer than {HOOK_INPUT_MAX} bytes");
    }
    Ok(input)
}

/// Appends one line to `<data dir>/logs/hook.log` (best effort: a hook must not fail on it).
fn log(data_dir: &Path, line: &str) {
    let logs = data_dir.join("logs");
    let _ = crate::data_dir::create_private_dir(&logs).and_then(|()| {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(logs.join("hook.log"))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        writeln!(file, "{now} {line}")
    });
}
