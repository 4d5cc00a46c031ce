//! The session's delivery socket, served by `relay mcp` for the clients whose push path lives
//! outside it: `<data dir>/sessions/<pid>.sock`, speaking the lines of
//! [`crate::clients::endpoint`] (`docs/delivery.md`).
//!
//! A connection says `hello` within [`HELLO_TIMEOUT`], then either takes what is pending now
//! (hooks) or streams every message as it comes (the OpenCode plugin, the Copilot extension).
//! Each message handed over is the session's until its taker reports it: `read` goes to the hub
//! as the message's `read` ack, `refused` or a closed connection puts it back in the queue.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::clients::endpoint::{
    CallerLine, EndpointMessage, EndpointStep, Mode, SessionLine, encode_line, parse_caller_line,
    read_line, sessions_dir, socket_for,
};
use crate::protocol::MessagePush;

use super::channel::model_text;
use super::session::HubSession;

/// How long a new connection may take to say `hello`.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a take-mode connection may take to report the messages it took before it is
/// closed (and what it did not report waits again). A hook prints and acks in milliseconds.
pub const TAKE_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one line may take to be written to a taker before the connection is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Consecutive turns a hook may start with messages (Gemini's `stop_hook_active`, Cursor's
/// `loop_count`): past it, messages wait for a turn the user starts (or `relay_inbox`), so
/// two auto-answering sessions cannot keep each other's hooks going forever. Cursor's own
/// `loop_limit`, as `relay install cursor` writes it, is the same number.
pub const HOOK_FOLLOWUPS_MAX: u32 = 5;

/// The socket file, removed when `relay mcp` ends.
pub struct EndpointSocket {
    path: PathBuf,
}

impl Drop for EndpointSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl EndpointSocket {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Binds `<data dir>/sessions/<pid>.sock` (directory 0700, socket 0600) and serves it in the
/// background for as long as the runtime runs.
///
/// # Errors
/// The directory or the socket cannot be made.
pub fn serve(session: Arc<HubSession>, data_dir: &Path) -> std::io::Result<EndpointSocket> {
    use std::os::unix::fs::PermissionsExt;
    let dir = sessions_dir(data_dir);
    crate::data_dir::create_private_dir(&dir)?;
    let path = socket_for(data_dir, std::process::id());
    // A socket of an earlier process with this pid is stale.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    tracing::info!(socket = %path.display(), "serving the session's delivery socket");
    tokio::spawn(accept(session, listener));
    Ok(EndpointSocket { path })
}

async fn accept(session: Arc<HubSession>, listener: UnixListener) {
    // Ends when the runtime stops.
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(session.clone(), stream));
            }
            Err(error) => {
                tracing::warn!(error = %error, "delivery socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One taker's connection; whatever it took and did not report waits again when it ends.
async fn connection(session: Arc<HubSession>, stream: UnixStream) {
    let taker = session.new_taker();
    let (read, mut write) = stream.into_split();
    let mut reader = Reader {
        stream: BufReader::new(read),
        partial: Vec::new(),
    };
    let outcome = serve_taker(&session, taker, &mut reader, &mut write).await;
    if let Err(failure) = outcome {
        tracing::info!(error = %failure.message, "delivery socket connection ended");
        if let Some(code) = failure.code {
            let line = SessionLine::Error {
                code: code.to_owned(),
                message: failure.message,
            };
            let _ = send(&mut write, &line).await;
        }
    }
    session.release_taker(taker);
}

/// A connection's read half with its partial line (reads are cancel safe).
struct Reader {
    stream: BufReader<tokio::net::unix::OwnedReadHalf>,
    partial: Vec<u8>,
}

/// Why a connection ended early: a protocol error (told to the caller) or a broken stream.
struct Failure {
    code: Option<&'static str>,
    message: String,
}

impl Failure {
    fn protocol(message: impl Into<String>) -> Failure {
        Failure {
            code: Some("bad_arguments"),
            message: message.into(),
        }
    }

    fn io(error: impl std::fmt::Display) -> Failure {
        Failure {
            code: None,
            message: error.to_string(),
        }
    }
}

async fn serve_taker(
    session: &Arc<HubSession>,
    taker: u64,
    reader: &mut Reader,
    write: &mut tokio::net::unix::OwnedWriteHalf,
) -> Result<(), Failure> {
    let hello = tokio::time::timeout(HELLO_TIMEOUT, read_caller_line(reader))
        .await
        .map_err(|_| Failure::protocol(format!("no hello within {HELLO_TIMEOUT:?}")))??;
    let Some(CallerLine::Hello {
        client,
        mode,
        urgent_only,
        continuation,
    }) = hello
    else {
        return Err(Failure::protocol("the first line must be a hello"));
    };
    tracing::debug!(client = %client, mode = ?mode, "delivery socket caller");
    let welcome = SessionLine::Welcome {
        name: session.name(),
        delivery: session.delivery_path().name().to_owned(),
    };
    send(write, &welcome).await?;
    match mode {
        Mode::Take => {
            let taken = session.take_for_turn(taker, urgent_only, continuation, HOOK_FOLLOWUPS_MAX);
            let outstanding = taken.messages.len();
            for push in &taken.messages {
                send(write, &SessionLine::Message(endpoint_message(push))).await?;
            }
            let end = SessionLine::End {
                pending: taken.remaining,
                reason: taken.refused_because.map(str::to_owned),
            };
            send(write, &end).await?;
            let acks = read_acks(session, taker, reader, outstanding);
            // Past the deadline what was not reported waits again (see `connection`).
            let _ = tokio::time::timeout(TAKE_ACK_TIMEOUT, acks).await;
            Ok(())
        }
        Mode::Stream => {
            session.note_stream(true);
            let streamed = stream(session, taker, reader, write).await;
            session.note_stream(false);
            streamed
        }
    }
}

/// Stream mode: hands over every waiting message, then each new one, and takes the reports,
/// until the caller closes.
async fn stream(
    session: &Arc<HubSession>,
    taker: u64,
    reader: &mut Reader,
    write: &mut tokio::net::unix::OwnedWriteHalf,
) -> Result<(), Failure> {
    // Ends when the caller closes or breaks the protocol.
    loop {
        let changed = session.pending_changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        for push in session.take(taker) {
            send(write, &SessionLine::Message(endpoint_message(&push))).await?;
        }
        let retry = session.next_retry();
        tokio::select! {
            () = &mut changed => {}
            () = sleep_until_some(retry) => {}
            line = read_caller_line(reader) => match line? {
                None => return Ok(()),
                Some(line) => report(session, taker, line)?,
            },
        }
    }
}

/// Sleeps until `at`; forever without one.
async fn sleep_until_some(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Reads reports until `outstanding` were reported or the caller closes.
async fn read_acks(
    session: &Arc<HubSession>,
    taker: u64,
    reader: &mut Reader,
    mut outstanding: usize,
) -> Result<(), Failure> {
    while outstanding > 0 {
        match read_caller_line(reader).await? {
            None => return Ok(()),
            Some(line) => {
                report(session, taker, line)?;
                outstanding -= 1;
            }
        }
    }
    Ok(())
}

/// One report from the caller.
fn report(session: &Arc<HubSession>, taker: u64, line: CallerLine) -> Result<(), Failure> {
    match line {
        CallerLine::Ack {
            msg_id,
            step,
            detail,
        } => {
            if step == EndpointStep::Refused {
                tracing::info!(msg_id = %msg_id, detail = ?detail, "the client refused a message; it waits again");
            }
            session.taker_reported(taker, &msg_id, step);
            Ok(())
        }
        CallerLine::Hello { .. } => Err(Failure::protocol("hello may come only once")),
    }
}

async fn read_caller_line(reader: &mut Reader) -> Result<Option<CallerLine>, Failure> {
    let Some(line) = read_line(&mut reader.stream, &mut reader.partial)
        .await
        .map_err(|error| {
            if error.kind() == std::io::ErrorKind::InvalidData {
                Failure::protocol(error.to_string())
            } else {
                Failure::io(error)
            }
        })?
    else {
        return Ok(None);
    };
    parse_caller_line(&line)
        .map(Some)
        .map_err(|error| Failure::protocol(format!("not a caller line: {error}")))
}

async fn send(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    line: &SessionLine,
) -> Result<(), Failure> {
    let bytes = encode_line(line).map_err(Failure::io)?;
    match tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(Failure::io(error)),
        Err(_) => Err(Failure::io(format!(
            "the caller did not read a line within {WRITE_TIMEOUT:?}"
        ))),
    }
}

/// A push as the caller gets it: the framed text for the model.
pub fn endpoint_message(push: &MessagePush) -> EndpointMessage {
    EndpointMessage {
        msg_id: push.msg_id.clone(),
        from: push.from.clone(),
        kind: kind_name(push),
        urgent: push.urgent,
        text: model_text(push),
    }
}

fn kind_name(push: &MessagePush) -> String {
    serde_json::to_value(push.kind)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| "direct".to_owned())
}
