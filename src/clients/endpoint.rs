//! The session's delivery socket: how the pieces that live inside or beside a client (hooks,
//! the OpenCode plugin, the Copilot extension) take the messages `relay mcp` holds for its
//! model. `docs/delivery.md` is the contract; this file is its types and the way a caller finds
//! its own session.
//!
//! `relay mcp` serves `<data dir>/sessions/<its pid>.sock` (see `mcp::endpoint`). A hook or a
//! plugin is not its child but its relative (both are children of the client process), so
//! [`find_session`] picks the socket whose process shares the nearest ancestor with the caller,
//! within [`ANCESTRY_DEPTH_MAX`] steps of each.
//!
//! Architecture invariant: nothing here knows MCP or the hub; the lines carry framed text and
//! message ids only.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Longest line either side may send, in bytes. A longer one is a protocol error: the
/// connection is closed after an `error` line.
pub const ENDPOINT_LINE_MAX: usize = 1 << 20;

/// How far above the caller and above `relay mcp` their common ancestor may be. Two steps cover
/// a hook started through `sh -c` by the client; three a wrapper process on top. Sessions of
/// two clients started from one shell or one tmux have their common ancestor further up, so
/// they never find each other.
pub const ANCESTRY_DEPTH_MAX: usize = 3;

/// Longest ancestor chain read from `/proc` (a guard against a loop in a broken `/proc`).
const ANCESTRY_CHAIN_MAX: usize = 64;

/// The directory of the delivery sockets, inside the data dir.
pub const SESSIONS_DIR: &str = "sessions";

/// The environment variable naming a session socket explicitly (as `--session-socket`).
pub const SESSION_SOCKET_ENV: &str = "RELAY_SESSION_SOCKET";

/// What the caller asks for in `hello`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Hand over what is pending now, then `end` (hooks).
    Take,
    /// Everything pending now and each new message as it comes (plugin, extension).
    Stream,
}

/// What became of a message handed over, as the caller reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointStep {
    /// The client accepted it for its model.
    Read,
    /// The client did not take it: offer it again later.
    Refused,
}

/// A line from the caller (hook, `relay deliver`) to `relay mcp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CallerLine {
    /// The first line.
    Hello {
        /// The client the caller serves (`gemini`, `opencode`, …), for the logs.
        client: String,
        /// Take or stream.
        mode: Mode,
        /// Take only urgent messages (Gemini's `AfterTool`).
        #[serde(default)]
        urgent_only: bool,
        /// The turn that just ended was itself started by this hook.
        #[serde(default)]
        continuation: bool,
    },
    /// What became of one message.
    Ack {
        /// The message's id, as handed over.
        msg_id: String,
        /// Read or refused.
        step: EndpointStep,
        /// Why it was refused, for the logs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
}

/// One message handed over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointMessage {
    /// Relay's id of the message (also of room posts and notices, which the hub does not store).
    pub msg_id: String,
    /// The sender's name.
    pub from: String,
    /// `direct`, `ask`, `reply`, `broadcast`, `room`, `group`, `system`, `timeout`.
    pub kind: String,
    /// The sender marked it urgent.
    pub urgent: bool,
    /// The framed text for the model.
    pub text: String,
}

/// A line from `relay mcp` to the caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionLine {
    /// The answer to `hello`.
    Welcome {
        /// The session's name at the hub, once registered.
        name: Option<String>,
        /// The session's delivery path name.
        delivery: String,
    },
    /// One message.
    Message(EndpointMessage),
    /// Take mode: nothing more now.
    End {
        /// Messages still pending after this take (e.g. not urgent ones for `urgent_only`).
        pending: usize,
        /// Why nothing was handed over on purpose (`followups_max`), if so.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// `relay deliver` only: no session to stream from yet.
    Waiting {
        /// Why, in words.
        reason: String,
    },
    /// The caller broke the protocol; the connection closes.
    Error {
        /// A Relay error code name.
        code: String,
        /// What was wrong.
        message: String,
    },
}

/// No session could be found for the caller.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    /// No `relay mcp` of this client runs beside the caller.
    #[error(
        "no relay mcp session runs beside this process (looked in {dir}: {looked} socket(s), none shares a near ancestor); is relay configured as this client's MCP server and the session started?"
    )]
    NoSession {
        /// The sessions directory.
        dir: PathBuf,
        /// Sockets looked at.
        looked: usize,
    },
    /// The process tree cannot be read (no `/proc`).
    #[error("cannot read the process tree ({0}); name the session with --session-socket")]
    NoProcessTree(std::io::Error),
}

/// The delivery sockets' directory of a data dir.
pub fn sessions_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(SESSIONS_DIR)
}

/// The delivery socket of the `relay mcp` process `pid`.
pub fn socket_for(data_dir: &Path, pid: u32) -> PathBuf {
    sessions_dir(data_dir).join(format!("{pid}.sock"))
}

/// Finds the delivery socket of the session beside process `me`: the socket in
/// `<data dir>/sessions/` whose process has the nearest common ancestor with `me`, both within
/// [`ANCESTRY_DEPTH_MAX`] steps. Sockets of processes that are gone are removed.
///
/// # Errors
/// [`FindError::NoSession`] when none qualifies; [`FindError::NoProcessTree`] without `/proc`.
pub fn find_session(data_dir: &Path, me: u32) -> Result<PathBuf, FindError> {
    let mine = ancestors(me).map_err(FindError::NoProcessTree)?;
    let dir = sessions_dir(data_dir);
    let mut looked = 0;
    let mut best: Option<(usize, PathBuf)> = None;
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(_) => return Err(FindError::NoSession { dir, looked }),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(pid) = socket_pid(&path) else {
            continue;
        };
        looked += 1;
        let theirs = match ancestors(pid) {
            Ok(theirs) => theirs,
            Err(_) => {
                // The process is gone: its socket is stale (a killed relay mcp leaves it).
                let _ = std::fs::remove_file(&path);
                continue;
            }
        };
        if let Some(distance) = kinship(&mine, &theirs)
            && best.as_ref().is_none_or(|(nearest, _)| distance < *nearest)
        {
            best = Some((distance, path));
        }
    }
    best.map(|(_, path)| path)
        .ok_or(FindError::NoSession { dir, looked })
}

/// The pid a socket file is named after (`<pid>.sock`).
fn socket_pid(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".sock")?.parse().ok()
}

/// How near two processes are: the sum of their steps up to their nearest common ancestor
/// (not either process itself), when each is within [`ANCESTRY_DEPTH_MAX`]; `None` otherwise.
/// `a` and `b` are ancestor chains starting with the process itself.
pub fn kinship(a: &[u32], b: &[u32]) -> Option<usize> {
    let mut nearest: Option<usize> = None;
    for (up_a, pid_a) in a.iter().enumerate().skip(1).take(ANCESTRY_DEPTH_MAX) {
        // pid 1 (init) and 0 are everyone's ancestors: never kin.
        if *pid_a <= 1 {
            break;
        }
        for (up_b, pid_b) in b.iter().enumerate().skip(1).take(ANCESTRY_DEPTH_MAX) {
            if pid_a == pid_b {
                let distance = up_a + up_b;
                nearest = Some(nearest.map_or(distance, |known| known.min(distance)));
            }
        }
    }
    nearest
}

/// `pid` and its ancestors, nearest first, read from `/proc/<pid>/stat`.
///
/// # Errors
/// `pid` does not exist (or `/proc` is not there).
pub fn ancestors(pid: u32) -> std::io::Result<Vec<u32>> {
    let mut chain = vec![pid];
    let mut current = pid;
    while chain.len() < ANCESTRY_CHAIN_MAX {
        let parent = match parent_of(current) {
            Ok(parent) => parent,
            // Only the first process must exist; an ancestor may exit meanwhile.
            Err(error) if chain.len() == 1 => return Err(error),
            Err(_) => break,
        };
        if parent == 0 {
            break;
        }
        chain.push(parent);
        if parent == 1 {
            break;
        }
        current = parent;
    }
    Ok(chain)
}

/// The parent pid of `pid`: the fourth field of `/proc/<pid>/stat`, after the command name in
/// parentheses (which may itself hold spaces and parentheses).
fn parent_of(pid: u32) -> std::io::Result<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat
        .rfind(')')
        .map(|end| &stat[end + 1..])
        .ok_or_else(|| std::io::Error::other("unreadable /proc stat"))?;
    let mut fields = after_name.split_whitespace();
    let _state = fields.next();
    fields
        .next()
        .and_then(|ppid| ppid.parse().ok())
        .ok_or_else(|| std::io::Error::other("unreadable /proc stat"))
}

/// Decodes one caller line (without its newline): untrusted bytes from any local process that
/// can reach the socket.
///
/// # Errors
/// Not JSON, or not a caller line (unknown fields are refused).
pub fn parse_caller_line(line: &[u8]) -> serde_json::Result<CallerLine> {
    serde_json::from_slice(line)
}

/// Decodes one session line (without its newline), as `relay deliver` and the hooks read them.
///
/// # Errors
/// Not JSON, or not a session line.
pub fn parse_session_line(line: &[u8]) -> serde_json::Result<SessionLine> {
    serde_json::from_slice(line)
}

/// One protocol line as JSON plus the newline.
///
/// # Errors
/// Never in practice (the types serialize); an error is passed on rather than unwrapped.
pub fn encode_line<T: Serialize>(line: &T) -> serde_json::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec(line)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Reads one line (without its newline) of at most [`ENDPOINT_LINE_MAX`] bytes; `None` at
/// the end of the stream. A final line without a newline counts as a line.
///
/// # Cancel safety
/// Cancel safe: the bytes of a line read so far stay in `partial`, which the next call
/// continues (keep one `partial` per stream).
///
/// # Errors
/// The read failed, or the line is longer than the limit (`InvalidData`).
pub async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    partial: &mut Vec<u8>,
) -> std::io::Result<Option<Vec<u8>>> {
    use tokio::io::AsyncBufReadExt;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok((!partial.is_empty()).then(|| std::mem::take(partial)));
        }
        let (chunk, done) = match available.iter().position(|byte| *byte == b'\n') {
            Some(end) => (&available[..end], Some(end + 1)),
            None => (available, None),
        };
        if partial.len() + chunk.len() > ENDPOINT_LINE_MAX {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a line is longer than {ENDPOINT_LINE_MAX} bytes"),
            ));
        }
        partial.extend_from_slice(chunk);
        let consumed = done.unwrap_or(available.len());
        reader.consume(consumed);
        if done.is_some() {
            return Ok(Some(std::mem::take(partial)));
        }
    }
}

/// A connection to a session's delivery socket, from the caller's side.
pub struct Connection {
    reader: tokio::io::BufReader<tokio::net::unix::OwnedReadHalf>,
    partial: Vec<u8>,
    writer: tokio::net::unix::OwnedWriteHalf,
}

/// What a caller of the delivery socket ran into.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Connecting, reading or writing failed.
    #[error("session socket {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The session sent something that is not a session line, or an `error` line.
    #[error("session socket {path}: {message}")]
    Protocol {
        /// The socket.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
}

impl Connection {
    /// Connects to `path`, says `hello`, and reads the welcome.
    ///
    /// # Errors
    /// The socket does not answer, or answers out of protocol.
    pub async fn open(
        path: &Path,
        hello: &CallerLine,
    ) -> Result<(Connection, SessionLine), CallError> {
        let io = |source| CallError::Io {
            path: path.to_owned(),
            source,
        };
        let stream = tokio::net::UnixStream::connect(path).await.map_err(io)?;
        let (read, writer) = stream.into_split();
        let mut connection = Connection {
            reader: tokio::io::BufReader::new(read),
            partial: Vec::new(),
            writer,
        };
        connection.send(path, hello).await?;
        let welcome = connection
            .next(path)
            .await?
            .ok_or_else(|| CallError::Protocol {
                path: path.to_owned(),
                message: "closed before its welcome".to_owned(),
            })?;
        Ok((connection, welcome))
    }

    /// The next line from the session; `None` when it closed. An `error` line is an error.
    /// Cancel safe (see [`read_line`]).
    ///
    /// # Errors
    /// Reading failed, or the line is not a session line.
    pub async fn next(&mut self, path: &Path) -> Result<Option<SessionLine>, CallError> {
        let line = read_line(&mut self.reader, &mut self.partial)
            .await
            .map_err(|source| CallError::Io {
                path: path.to_owned(),
                source,
            })?;
        let Some(line) = line else {
            return Ok(None);
        };
        match parse_session_line(&line) {
            Ok(SessionLine::Error { code, message }) => Err(CallError::Protocol {
                path: path.to_owned(),
                message: format!("{code}: {message}"),
            }),
            Ok(line) => Ok(Some(line)),
            Err(error) => Err(CallError::Protocol {
                path: path.to_owned(),
                message: format!("not a session line: {error}"),
            }),
        }
    }

    /// Sends one caller line.
    ///
    /// # Errors
    /// Writing failed.
    pub async fn send(&mut self, path: &Path, line: &CallerLine) -> Result<(), CallError> {
        use tokio::io::AsyncWriteExt;
        let bytes = encode_line(line).map_err(|error| CallError::Protocol {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
        self.writer
            .write_all(&bytes)
            .await
            .map_err(|source| CallError::Io {
                path: path.to_owned(),
                source,
            })
    }

    /// Take mode: the messages up to `end`, and the `end` itself.
    ///
    /// # Errors
    /// As [`Connection::next`]; a close before `end`.
    pub async fn take_all(
        &mut self,
        path: &Path,
    ) -> Result<(Vec<EndpointMessage>, SessionLine), CallError> {
        let mut messages = Vec::new();
        // Bounded by the session: it sends what it holds, then `end`.
        loop {
            match self.next(path).await? {
                Some(SessionLine::Message(message)) => messages.push(message),
                Some(end @ SessionLine::End { .. }) => return Ok((messages, end)),
                Some(_) => {}
                None => {
                    return Err(CallError::Protocol {
                        path: path.to_owned(),
                        message: "closed before the end of the take".to_owned(),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_are_kin_and_cousins_through_a_shell_are_not() {
        // client 100 started relay mcp 200 and, through sh 300, a hook 301.
        let mcp = [200, 100, 50, 10, 1];
        let hook = [301, 300, 100, 50, 10, 1];
        assert_eq!(kinship(&hook, &mcp), Some(3));
        // Another client 110 in the same tmux (10): its mcp shares only 50 or 10.
        let other_mcp = [210, 110, 60, 10, 1];
        assert_eq!(kinship(&hook, &other_mcp), None);
    }

    #[test]
    fn the_process_itself_and_init_never_count() {
        assert_eq!(kinship(&[5, 1], &[6, 1]), None);
        assert_eq!(kinship(&[5, 7], &[5, 8]), None);
    }

    #[test]
    fn this_process_has_ancestors() {
        let chain = ancestors(std::process::id()).expect("this process is in /proc");
        assert_eq!(chain[0], std::process::id());
        assert!(chain.len() >= 2);
        assert!(ancestors(u32::MAX).is_err());
    }

    #[tokio::test]
    async fn lines_are_read_across_chunks_and_bounded() {
        let mut input: &[u8] = b"{\"a\":1}\nlast";
        let mut partial = Vec::new();
        let first = read_line(&mut input, &mut partial).await.expect("a line");
        assert_eq!(first.as_deref(), Some(&b"{\"a\":1}"[..]));
        let last = read_line(&mut input, &mut partial).await.expect("a line");
        assert_eq!(last.as_deref(), Some(&b"last"[..]));
        assert_eq!(
            read_line(&mut input, &mut partial).await.expect("end"),
            None
        );
        let long = vec![b'x'; ENDPOINT_LINE_MAX + 1];
        let mut input: &[u8] = &long;
        let error = read_line(&mut input, &mut Vec::new())
            .await
            .expect_err("too long");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    }

    #[test]
    fn lines_round_trip() {
        let hello: CallerLine = serde_json::from_str(
            r#"{"type":"hello","client":"gemini","mode":"take","continuation":true}"#,
        )
        .expect("a hello");
        assert_eq!(
            hello,
            CallerLine::Hello {
                client: "gemini".into(),
                mode: Mode::Take,
                urgent_only: false,
                continuation: true
            }
        );
        let end = encode_line(&SessionLine::End {
            pending: 2,
            reason: None,
        })
        .expect("encodes");
        assert_eq!(end, b"{\"type\":\"end\",\"pending\":2}\n");
        assert!(serde_json::from_str::<CallerLine>(r#"{"type":"ack","msg_id":"m-1"}"#).is_err());
    }
}
