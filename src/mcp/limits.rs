//! Named limits of the MCP channel: time bounds on hub calls and reconnects, and the sizes of
//! the queues between the hub connection and the MCP client.
//!
//! Each one says its unit and what happens at the limit. None of them is a wire limit: the
//! hub's limits (text size, names, counts) live in `protocol::limits` and are checked there.

use std::time::Duration;

/// Longest a tool call waits for the hub's answer. Past it the tool fails with
/// `hub_unreachable` (the hub may still carry the request out), so a stalled hub never holds
/// the model for the client library's 30 s.
pub const TOOL_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// First wait before reconnecting to a hub that went away; doubled after every failed attempt.
pub const RECONNECT_DELAY_MIN: Duration = Duration::from_millis(100);

/// Longest wait between two reconnect attempts. Attempts go on for as long as `relay mcp`
/// runs; tool calls meanwhile fail at once with `hub_unreachable`.
pub const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(5);

/// How long `git rev-parse` may take to name the branch before registration goes on without
/// one.
pub const GIT_BRANCH_TIMEOUT: Duration = Duration::from_secs(2);

/// Pushes waiting to be written to the MCP client as channel notifications. When the client
/// does not read its stdin fast enough and the queue is full, further notifications are
/// dropped (with a warning); the messages stay reachable through `relay_inbox`.
pub const CHANNEL_QUEUE_CAPACITY: usize = 1024;

/// Messages this process received (pushed by the hub or pulled from its mailbox) that
/// `relay_inbox` has not returned yet. Past it the oldest is forgotten here; mailbox messages
/// among them can still be read with `relay_inbox` and `since_id`.
pub const UNRETURNED_MESSAGES_MAX: usize = 500;

const _: () = assert!(RECONNECT_DELAY_MIN.as_millis() < RECONNECT_DELAY_MAX.as_millis());
const _: () = assert!(CHANNEL_QUEUE_CAPACITY > 0 && UNRETURNED_MESSAGES_MAX > 0);

/// How long a sending tool call whose request reached the hub but whose answer was lost (the
/// hub stalled or restarted) keeps resending it, with the same idempotency key, before it
/// answers `outcome_unknown`. The key makes every resend safe: the hub answers a repeat with
/// the first result.
pub const OUTCOME_RETRY_WAIT: Duration = Duration::from_secs(20);

/// Acknowledgements kept to send again after a reconnect, when the connection dropped before
/// the hub had them. Past it the oldest is dropped: that message comes back from the next
/// `relay_inbox` instead (marked as pushed when the model may have seen it).
pub const UNSENT_ACKS_MAX: usize = 1024;

/// Messages handed to Claude Code's messaging socket whose receipts may still come, so a
/// late `refused` can be matched to its message.
pub const SOCKET_SENT_REMEMBERED: usize = 256;

/// How long a push to Claude Code's messaging socket waits for the MCP client to have listed
/// the tools: a turn the socket starts before that has no `relay_*` tools (seen with Claude
/// Code 2.1.332), so the model could not answer or read its inbox. Past it the push goes anyway.
pub const TOOLS_LISTED_WAIT_MAX: Duration = Duration::from_secs(15);

/// Extra time after the tool list was answered before the first socket push: Claude Code
/// registers the tools a moment after it has the list (50 ms was enough in every run seen).
pub const TOOLS_LISTED_GRACE: Duration = Duration::from_millis(250);

/// Pushes held for a taker (a hook, the OpenCode plugin, the Copilot extension, Codex's
/// app-server). Past it the oldest waiting one is dropped from the queue with a warning; it
/// stays unread at the hub and `relay_inbox` returns it.
pub const PENDING_MAX: usize = 500;

/// How often pushes that Codex's app-server did not take (no TUI running, no thread for this
/// session yet) are offered again. Each try is one connect to a Unix socket.
pub const CODEX_RETRY_INTERVAL: Duration = Duration::from_secs(5);
