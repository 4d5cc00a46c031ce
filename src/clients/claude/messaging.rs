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
//! caller falls back to another path and the hub keeps it unread. Claude Code never answers on
//! that connection and keeps it open while it lives, so we close our side once both lines are
//! written. Receipts: every line names a reply socket of ours (`from: "uds:<path>"`, in the
//! receiver's socket directory, as Claude Code requires), where Claude Code reports messages it
//! held, dropped or let expire; silence means accepted. Claude Code's receipts do not name the
//! message they are about (2.1.332 sends a fresh id, no `orig_msg_id`), so each message gets
//! its own reply socket and the socket says which message a receipt is for. The last
//! [`REPLY_SOCKETS_MAX`] are kept listening; each connection gets one line read, then closed.
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

/// Reply sockets kept listening, one per message lately delivered; past it the oldest is
/// closed and removed (a receipt for that message is then lost, and the message counts as
/// accepted, which is what silence means).
pub const REPLY_SOCKETS_MAX: usize = 64;

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
        let token = std::env::var(TOKEN_ENV)
            .ok()
            .filter(|value| !value.is_empty())?;
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
    /// Dropped (rate limit, full queue): the model will not see it.
    Dropped,
    /// A status this version does not know, kept for the log.
    Other(String),
}

/// A delivery path into one Claude Code session.
pub struct MessagingSocket {
    target: MessagingTarget,
    /// Where receipts go, tagged with their message.
    receipts: mpsc::Sender<ClaudeReceipt>,
    /// The reply sockets listening, oldest first. Invariant: at most [`REPLY_SOCKETS_MAX`].
    reply_sockets: std::sync::Mutex<std::collections::VecDeque<ReplySocket>>,
    /// Counts deliveries, naming reply sockets.
    deliveries: std::sync::atomic::AtomicU64,
    /// Random per process, naming reply sockets.
    prefix: String,
}

/// One message's reply socket.
struct ReplySocket {
    path: PathBuf,
    listener: tokio::task::JoinHandle<()>,
}

impl ReplySocket {
    fn close(self) {
        self.listener.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl MessagingSocket {
    /// Prepares delivery to `target`. Returns it and the stream of receipts.
    pub fn start(target: MessagingTarget) -> (MessagingSocket, mpsc::Receiver<ClaudeReceipt>) {
        let (receipts, receiving) = mpsc::channel(256);
        let mut random = [0u8; 4];
        let prefix = match getrandom::fill(&mut random) {
            Ok(()) => format!("{:08x}", u32::from_le_bytes(random)),
            Err(_) => "0".to_owned(),
        };
        let socket = MessagingSocket {
            target,
            receipts,
            reply_sockets: std::sync::Mutex::new(std::collections::VecDeque::new()),
            deliveries: std::sync::atomic::AtomicU64::new(0),
            prefix,
        };
        (socket, receiving)
    }

    /// The socket messages go to.
    pub fn socket_path(&self) -> &Path {
        &self.target.socket
    }

    /// Hands `text` to the session's model: one connection, the `auth` line, the `user` line.
    /// `urgent` asks for `priority: now` (else `next`: at the next point between tool calls).
    /// A reply socket for this message's receipts is bound first; one that cannot be bound (a
    /// read-only directory) is not fatal: the message goes without receipts.
    ///
    /// # Errors
    /// A [`DeliverError`]: the message was not handed on.
    ///
    /// # Cancel safety
    /// Dropping the future may leave the message half written; Claude Code drops a partial
    /// line, so the caller must treat it as not delivered.
    pub async fn deliver(
        &self,
        msg_id: &str,
        text: &str,
        urgent: bool,
    ) -> Result<(), DeliverError> {
        let reply_path = self.bind_reply_socket(msg_id);
        let frames = self.frames(msg_id, text, urgent, reply_path.as_deref())?;
        match tokio::time::timeout(DELIVERY_TIMEOUT, self.write(&frames)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(DeliverError::Timeout),
        }
    }

    /// Binds a reply socket whose receipts are about `msg_id`, closing the oldest past
    /// [`REPLY_SOCKETS_MAX`].
    fn bind_reply_socket(&self, msg_id: &str) -> Option<PathBuf> {
        let count = self
            .deliveries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = reply_path_for(&self.target.socket, &format!("{}-{count}", self.prefix))?;
        let _ = std::fs::remove_file(&path);
        let listener = match UnixListener::bind(&path) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(path = %path.display(), error = %error, "cannot bind a reply socket; no receipts for this message");
                return None;
            }
        };
        let listener = tokio::spawn(listen_for_receipts(
            listener,
            msg_id.to_owned(),
            self.receipts.clone(),
        ));
        let mut sockets = self
            .reply_sockets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sockets.push_back(ReplySocket {
            path: path.clone(),
            listener,
        });
        while sockets.len() > REPLY_SOCKETS_MAX {
            if let Some(oldest) = sockets.pop_front() {
                oldest.close();
            }
        }
        Some(path)
    }

    /// The two lines of one delivery.
    fn frames(
        &self,
        msg_id: &str,
        text: &str,
        urgent: bool,
        reply_path: Option<&Path>,
    ) -> Result<Vec<u8>, DeliverError> {
        let auth = json!({"type": "auth", "token": self.target.token});
        let mut message = json!({
            "type": "user",
            "msgV": 1,
            "msg_id": msg_id,
            "priority": if urgent { "now" } else { "next" },
            "message": {"role": "user", "content": text},
        });
        if let Some(reply_path) = reply_path {
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
        // Claude Code never answers here and keeps the connection open while it lives: close
        // ours, which also ends the message for it.
        stream.shutdown().await?;
        Ok(())
    }
}

impl Drop for MessagingSocket {
    fn drop(&mut self) {
        let sockets = self
            .reply_sockets
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for socket in sockets.drain(..) {
            socket.close();
        }
    }
}

/// `<receiver's dir>/relay-<pid>-<tag>.sock`: absolute, in the same directory, ending in
/// `.sock`. `None` when the receiver's path has no directory.
fn reply_path_for(socket: &Path, tag: &str) -> Option<PathBuf> {
    let directory = socket.parent()?;
    let directory = if directory.is_absolute() {
        directory.to_owned()
    } else {
        std::env::current_dir().ok()?.join(directory)
    };
    Some(directory.join(format!("relay-{}-{tag}.sock", std::process::id())))
}

/// Reads one receipt line per connection (Claude Code may send `held`, later `expired`) and
/// closes it, until this message's socket is closed.
async fn listen_for_receipts(
    listener: UnixListener,
    msg_id: String,
    receipts: mpsc::Sender<ClaudeReceipt>,
) {
    // Ends when the socket is closed (the task is aborted) or the receipts' reader is gone.
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        if receipts.is_closed() {
            return;
        }
        let line = tokio::time::timeout(RECEIPT_READ_TIMEOUT, read_line(stream)).await;
        if let Ok(Some(line)) = line
            && let Some(status) = parse_receipt(&line)
        {
            let receipt = ClaudeReceipt {
                msg_id: msg_id.clone(),
                status,
            };
            let _ = receipts.send(receipt).await;
        }
    }
}

async fn read_line(stream: UnixStream) -> Option<String> {
    let mut reader = BufReader::new(stream).take(RECEIPT_LINE_BYTES_MAX as u64);
    let mut line = String::new();
    reader.read_line(&mut line).await.ok()?;
    Some(line)
}

/// The status of a `peer_message_status` control line; anything else is `None`. Untrusted
/// bytes: never panics (fuzzed by `fuzz/fuzz_targets/claude_receipt.rs`).
pub fn parse_receipt(line: &str) -> Option<ClaudeStatus> {
    let value: Value = serde_json::from_str(line.trim()).ok()?;
    if value["type"] != "control" || value["action"] != "peer_message_status" {
        return None;
    }
    // A refusal may say so in `status_detail` beside a generic status.
    let detail = value["status_detail"].as_str();
    let status = match (value["status"].as_str()?, detail) {
        (_, Some("refused")) | ("refused", _) => ClaudeStatus::Refused,
        ("held", _) => ClaudeStatus::Held,
        ("expired", _) => ClaudeStatus::Expired,
        ("dropped", _) => ClaudeStatus::Dropped,
        (other, _) => ClaudeStatus::Other(other.to_owned()),
    };
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_parse_with_status_or_detail() {
        // As Claude Code 2.1.332 sends it: a fresh msg_id of its own, no orig_msg_id.
        let held = r#"{"type":"control","action":"peer_message_status","status":"held","reason":"held (permission-mode parity).","from":"uds:/tmp/cc-socks/1.sock","msgV":1,"msg_id":"5f0c"}"#;
        assert_eq!(parse_receipt(held), Some(ClaudeStatus::Held));
        let refused = r#"{"type":"control","action":"peer_message_status","status":"expired","status_detail":"refused","orig_msg_id":"m-2"}"#;
        assert_eq!(parse_receipt(refused), Some(ClaudeStatus::Refused));
        let dropped = r#"{"type":"control","action":"peer_message_status","status":"dropped","drop_reason":"rate-limited","dropped_msg_ids":[]}"#;
        assert_eq!(parse_receipt(dropped), Some(ClaudeStatus::Dropped));
        assert_eq!(parse_receipt(r#"{"type":"user"}"#), None);
        assert_eq!(parse_receipt("not json"), None);
    }

    #[test]
    fn the_reply_socket_sits_beside_the_receivers_and_ends_in_sock() {
        let path = reply_path_for(Path::new("/tmp/cc-socks/42.sock"), "ab-1").expect("a path");
        assert_eq!(path.parent(), Some(Path::new("/tmp/cc-socks")));
        assert!(path.to_string_lossy().ends_with(".sock"));
        assert!(path.is_absolute());
    }

    #[test]
    fn a_line_past_the_limit_is_refused_before_writing() {
        let (socket, _receipts) = MessagingSocket::start(MessagingTarget {
            socket: PathBuf::from("/nonexistent/x.sock"),
            token: "t".to_owned(),
        });
        let text = "x".repeat(LINE_BYTES_MAX);
        assert!(matches!(
            socket.frames("m-1", &text, false, None),
            Err(DeliverError::TooLarge(_))
        ));
        let frames = socket
            .frames("m-1", "hi\n\"there\"", true, None)
            .expect("fits");
        let text = String::from_utf8(frames).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.len(),
            2,
            "a newline in the text never splits the line"
        );
        let message: Value = serde_json::from_str(lines[1]).expect("json");
        assert_eq!(message["priority"], "now");
        assert_eq!(message["message"]["content"], "hi\n\"there\"");
    }
}
