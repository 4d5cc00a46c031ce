//! Delivery through Claude Code's own messaging socket: the push path that reaches the model.
//!
//! Claude Code (2.1.224+) gives its MCP servers `CLAUDE_CODE_MESSAGING_SOCKET` and
//! `CLAUDE_CODE_MESSAGING_TOKEN`. A process that connects there and writes an `auth` line, then
//! one `{"type":"user",…}` line, puts the text into the model's next request while a turn runs,
//! or starts a turn in an idle session; any auth works, API keys included, and no flag is
//! needed. Facts and limits: `../shared/clients.md`.
//!
//! Each message goes on its own connection, so a dead receiver (Claude Code killed, its socket
//! file left behind: `ECONNREFUSED`) is seen per message and the message is never lost: the
//! caller falls back to another path and the hub keeps it unread. Receipts: every line names a
//! reply socket of ours (`from: "uds:<path>"`, in the receiver's socket directory, as Claude
//! Code requires), where Claude Code reports messages it held, refused or let expire. Silence
//! means accepted. The listener reads one line per connection and closes it.
//!
//! Architecture invariant: this file knows Claude Code's wire format and nothing of MCP or the
//! hub; it takes text already framed for the model.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

/// The variable naming Claude Code's messaging socket.
pub const SOCKET_ENV: &str = "CLAUDE_CODE_MESSAGING_SOCKET";

/// The variable holding the token of its `auth` line.
pub const TOKEN_ENV: &str = "CLAUDE_CODE_MESSAGING_TOKEN";

/// How long one delivery (connect, both lines written) may take before it counts as failed.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(3);

/// Largest line Claude Code takes (about 1 MiB); a longer message is refused before writing.
pub const LINE_BYTES_MAX: usize = 1 << 20;

/// Largest receipt line read from the reply socket; longer ones are ignored.
const RECEIPT_LINE_BYTES_MAX: usize = 64 << 10;

/// How long a receipt connection may take to send its line.
const RECEIPT_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Where Claude Code's messaging socket is, from the environment it started us in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessagingTarget {
    /// The socket's path.
    pub socket: PathBuf,
    /// The token of the `auth` line.
    pub token: String,
}

impl MessagingTarget {
    /// The target named by [`SOCKET_ENV`] and [`TOKEN_ENV`], when both are set and not empty.
    pub fn from_env() -> Option<MessagingTarget> {
        let socket = std::env::var_os(SOCKET_ENV).filter(|value| !value.is_empty())?;
        let token = std::env::var(TOKEN_ENV).ok().filter(|value| !value.is_empty())?;
        Some(MessagingTarget {
            socket: PathBuf::from(socket),
            token,
        })
    }
}

/// Why a delivery failed. The message was not handed on; another path must carry it.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// No socket file: the session never bound one, or it is gone.
    #[error("no messaging socket at {}", .0.display())]
    Missing(PathBuf),
    /// The file is there but nothing listens: Claude Code died and left it behind.
    #[error("the messaging socket at {} refuses connections (a stale socket)", .0.display())]
    Stale(PathBuf),
    /// Connecting or writing took longer than [`DELIVERY_TIMEOUT`].
    #[error("the messaging socket did not take the message within {DELIVERY_TIMEOUT:?}")]
    Timeout,
    /// The message does not fit one line.
    #[error("the message is {0} bytes as a line; Claude Code takes at most {LINE_BYTES_MAX}")]
    TooLarge(usize),
    /// Any other failure to connect or write (the receiver closed mid-write, …).
    #[error("writing to the messaging socket failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What Claude Code reported of a message it did not simply accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaudeReceipt {
    /// The `msg_id` the message was written with.
    pub msg_id: String,
    /// What it reported.
    pub status: ClaudeStatus,
}

/// A receipt's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaudeStatus {
    /// Waiting for the user's approval.
    Held,
    /// Refused: the model will not see it.
    Refused,
    /// Expired unapproved: the model will not see it.
    Expired,
    /// A status this version does not know, kept for the log.
    Other(String),
}

/// A connected delivery path into one Claude Code session.
pub struct MessagingSocket {
    target: MessagingTarget,
    /// Our reply socket, when it could be bound; receipts come there.
    reply_path: Option<PathBuf>,
}

impl MessagingSocket {
    /// Prepares delivery to `target` and binds the reply socket beside it (in the same
    /// directory, as Claude Code requires). A reply socket that cannot be bound (a read-only
    /// directory) is not fatal: messages still go, without receipts. Returns the socket and
    /// the stream of receipts.
    pub fn start(target: MessagingTarget) -> (MessagingSocket, mpsc::Receiver<ClaudeReceipt>) {
        let (receipts, receiving) = mpsc::channel(256);
        let reply_path = reply_path_for(&target.socket);
        let reply_path = reply_path.and_then(|path| {
            let _ = std::fs::remove_file(&path);
            match UnixListener::bind(&path) {
                Ok(listener) => {
                    tokio::spawn(listen_for_receipts(listener, receipts));
                    Some(path)
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), error = %error, "cannot bind the reply socket; no receipts from Claude Code");
                    None
                }
            }
        });
        (MessagingSocket { target, reply_path }, receiving)
    }

    /// The socket messages go to.
    pub fn socket_path(&self) -> &Path {
        &self.target.socket
    }

    /// Whether the socket file exists now (a cheap check before a delivery is tried).
    pub fn is_present(&self) -> bool {
        self.target.socket.exists()
    }

    /// Hands `text` to the session's model: one connection, the `auth` line, the `user` line.
    /// `urgent` asks for `priority: now` (else `next`: at the next point between tool calls).
    ///
    /// # Errors
    /// A [`DeliverError`]: the message was not handed on.
    ///
    /// # Cancel safety
    /// Dropping the future may leave the message half written; Claude Code drops a partial
    /// line, so the caller must treat it as not delivered.
    pub async fn deliver(&self, msg_id: &str, text: &str, urgent: bool) -> Result<(), DeliverError> {
        let frames = self.frames(msg_id, text, urgent)?;
        match tokio::time::timeout(DELIVERY_TIMEOUT, self.write(&frames)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(DeliverError::Timeout),
        }
    }

    /// The two lines of one delivery.
    fn frames(&self, msg_id: &str, text: &str, urgent: bool) -> Result<Vec<u8>, DeliverError> {
        let auth = json!({"type": "auth", "token": self.target.token});
        let mut message = json!({
            "type": "user",
            "msgV": 1,
            "msg_id": msg_id,
            "priority": if urgent { "now" } else { "next" },
            "message": {"role": "user", "content": text},
        });
        if let Some(reply_path) = &self.reply_path {
            message["from"] = Value::from(format!("uds:{}", reply_path.display()));
        }
        let message_line = message.to_string();
        if message_line.len() > LINE_BYTES_MAX {
            return Err(DeliverError::TooLarge(message_line.len()));
        }
        let mut frames = auth.to_string().into_bytes();
        frames.push(b'\n');
        frames.extend_from_slice(message_line.as_bytes());
        frames.push(b'\n');
        Ok(frames)
    }

    async fn write(&self, frames: &[u8]) -> Result<(), DeliverError> {
        let socket = &self.target.socket;
        let mut stream = match UnixStream::connect(socket).await {
            Ok(stream) => stream,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(DeliverError::Missing(socket.clone()));
            }
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(DeliverError::Stale(socket.clone()));
            }
            Err(error) => return Err(DeliverError::Io(error)),
        };
        stream.write_all(frames).await?;
        stream.flush().await?;
        // Our side is done; Claude Code reads to the end of the lines and closes its side.
        stream.shutdown().await?;
        Ok(())
    }
}

impl Drop for MessagingSocket {
    fn drop(&mut self) {
        if let Some(path) = &self.reply_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `<receiver's dir>/relay-<pid>-<random>.sock`: absolute, in the same directory, ending in
/// `.sock`. `None` when the receiver's path has no directory.
fn reply_path_for(socket: &Path) -> Option<PathBuf> {
    let directory = socket.parent()?;
    let directory = if directory.is_absolute() {
        directory.to_owned()
    } else {
        std::env::current_dir().ok()?.join(directory)
    };
    let mut random = [0u8; 4];
    getrandom::fill(&mut random).ok()?;
    let suffix = u32::from_le_bytes(random);
    Some(directory.join(format!(
        "relay-{}-{suffix:08x}.sock",
        std::process::id()
    )))
}

/// Reads one receipt line per connection and closes it, for the process's lifetime.
async fn listen_for_receipts(listener: UnixListener, receipts: mpsc::Sender<ClaudeReceipt>) {
    // Ends when the receipts' reader is gone or the listener fails.
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        if receipts.is_closed() {
            return;
        }
        let receipts = receipts.clone();
        tokio::spawn(async move {
            let line = tokio::time::timeout(RECEIPT_READ_TIMEOUT, read_line(stream)).await;
            if let Ok(Some(line)) = line
                && let Some(receipt) = parse_receipt(&line)
            {
                let _ = receipts.send(receipt).await;
            }
        });
    }
}

async fn read_line(stream: UnixStream) -> Option<String> {
    let mut reader = BufReader::new(stream).take(RECEIPT_LINE_BYTES_MAX as u64);
    let mut line = String::new();
    reader.read_line(&mut line).await.ok()?;
    Some(line)
}

/// A `peer_message_status` control line, typed; anything else is `None`.
pub fn parse_receipt(line: &str) -> Option<ClaudeReceipt> {
    let value: Value = serde_json::from_str(line.trim()).ok()?;
    if value["type"] != "control" || value["action"] != "peer_message_status" {
        return None;
    }
    let msg_id = value["orig_msg_id"].as_str()?.to_owned();
    // A refusal may say so in `status_detail` beside a generic status.
    let detail = value["status_detail"].as_str();
    let status = match (value["status"].as_str()?, detail) {
        (_, Some("refused")) | ("refused", _) => ClaudeStatus::Refused,
        ("held", _) => ClaudeStatus::Held,
        ("expired", _) => ClaudeStatus::Expired,
        (other, _) => ClaudeStatus::Other(other.to_owned()),
    };
    Some(ClaudeReceipt { msg_id, status })
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_parse_with_status_or_detail() {
        let held = r#"{"type":"control","action":"peer_message_status","status":"held","orig_msg_id":"m-1"}"#;
        assert_eq!(
            parse_receipt(held),
            Some(ClaudeReceipt {
                msg_id: "m-1".to_owned(),
                status: ClaudeStatus::Held
            })
        );
        let refused = r#"{"type":"control","action":"peer_message_status","status":"expired","status_detail":"refused","orig_msg_id":"m-2"}"#;
        assert_eq!(
            parse_receipt(refused).map(|receipt| receipt.status),
            Some(ClaudeStatus::Refused)
        );
        assert_eq!(parse_receipt(r#"{"type":"user"}"#), None);
        assert_eq!(parse_receipt("not json"), None);
    }

    #[test]
    fn the_reply_socket_sits_beside_the_receivers_and_ends_in_sock() {
        let path = reply_path_for(Path::new("/tmp/cc-socks/42.sock")).expect("a path");
        assert_eq!(path.parent(), Some(Path::new("/tmp/cc-socks")));
        assert!(path.to_string_lossy().ends_with(".sock"));
        assert!(path.is_absolute());
    }

    #[test]
    fn a_line_past_the_limit_is_refused_before_writing() {
        let socket = MessagingSocket {
            target: MessagingTarget {
                socket: PathBuf::from("/nonexistent/x.sock"),
                token: "t".to_owned(),
            },
            reply_path: None,
        };
        let text = "x".repeat(LINE_BYTES_MAX);
        assert!(matches!(
            socket.frames("m-1", &text, false),
            Err(DeliverError::TooLarge(_))
        ));
        let frames = socket.frames("m-1", "hi\n\"there\"", true).expect("fits");
        let text = String::from_utf8(frames).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "a newline in the text never splits the line");
        let message: Value = serde_json::from_str(lines[1]).expect("json");
        assert_eq!(message["priority"], "now");
        assert_eq!(message["message"]["content"], "hi\n\"there\"");
    }
}
