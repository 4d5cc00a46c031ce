//! Named limits of the client protocol: every size and count a frame or a parameter may reach.
//!
//! These are wire limits, the same for every hub and client, so they are constants rather than
//! configuration: a client must know them without asking. Each one says its unit and what
//! happens at the limit. Relations between them are checked at compile time at the bottom of
//! this file; the most important one is that any single message, fully JSON-escaped, always fits
//! in one frame, so the hub can always answer and push.

/// Largest frame, in bytes: one line on the Unix socket (without its `\n` or `\r\n`) or one
/// WebSocket text frame. A bigger frame is answered with `frame_too_large` (id `null`): on the
/// socket the hub discards bytes up to the next newline and goes on reading, so the connection
/// and the frames after it are unaffected. The hub never sends a bigger frame either.
pub const FRAME_BYTES_MAX: usize = 1 << 20;

// The domain limits of names, ids and text live with the events (`relay_replay::limits`), so
// `apply` enforces them for events imported from other hubs too; the protocol checks the same
// constants.
pub use relay_replay::limits::{
    ID_BYTES_MAX, NAME_BYTES_MAX, QUALIFIED_NAME_BYTES_MAX, TEXT_BYTES_MAX,
};

/// Largest string request id, in bytes. A longer id makes the frame `bad_msg` (answered with id
/// `null`), so an error reply never has to echo an unbounded id.
pub const REQUEST_ID_BYTES_MAX: usize = 128;

/// Largest working directory a session may register with, in bytes (Linux `PATH_MAX`).
/// A longer one is rejected with `bad_args`.
pub const CWD_BYTES_MAX: usize = 4096;

/// Largest git branch name a session may register with, in bytes. A longer one is rejected
/// with `bad_args`.
pub const GIT_BRANCH_BYTES_MAX: usize = 256;

/// Largest session name (the client's own label for the session, e.g. Claude's session name),
/// in bytes. A longer one is rejected with `bad_args`.
pub const SESSION_NAME_BYTES_MAX: usize = 256;

/// Largest `client` string in `hello` (`"<name>/<version>"`), in bytes. A longer one is
/// rejected with `bad_args`.
pub const CLIENT_INFO_BYTES_MAX: usize = 128;

/// Largest WebSocket token in `auth`, in bytes. A longer one is rejected with `bad_args`.
pub const TOKEN_BYTES_MAX: usize = 256;

/// Largest `message` in a JSON-RPC error, in bytes. Longer messages (for example a serde error
/// that quotes an unknown field name) are cut at a character boundary and end in `…`.
pub const ERROR_MESSAGE_BYTES_MAX: usize = 1024;

/// Most messages one `inbox` call returns. `limit` outside `1..=INBOX_LIMIT_MAX` is rejected
/// with `bad_args`.
pub const INBOX_LIMIT_MAX: u32 = 100;

/// Messages an `inbox` call returns when it gives no `limit`.
pub const INBOX_LIMIT_DEFAULT: u32 = 20;

/// Most messages one `group_history` call returns. `limit` outside
/// `1..=GROUP_HISTORY_LIMIT_MAX` is rejected with `bad_args`.
pub const GROUP_HISTORY_LIMIT_MAX: u32 = 500;

/// Messages a `group_history` call returns when it gives no `limit`.
pub const GROUP_HISTORY_LIMIT_DEFAULT: u32 = 50;

/// Most entries one `peers` or `rooms` page returns. `limit` outside `1..=LIST_LIMIT_MAX` is
/// rejected with `bad_args`.
pub const LIST_LIMIT_MAX: u32 = 1000;

/// Entries a `peers` or `rooms` page returns when it gives no `limit`.
pub const LIST_LIMIT_DEFAULT: u32 = 500;

/// Bytes of entries, as JSON, one `peers` or `rooms` page carries at most. A page ends before
/// the entry that would pass it (or at `limit`), and its `next_cursor` says where the next page
/// starts, so a list of any length is answered in frames that fit [`FRAME_BYTES_MAX`]. One
/// entry at its worst always fits (checked below, and for rooms by the hub).
pub const LIST_PAGE_BYTES_MAX: usize = 512 << 10;

/// Largest `cursor` of `peers` or `rooms`, in bytes: a hub-chosen opaque string from
/// `next_cursor`. A longer one, or one the hub did not make, is rejected with `bad_args`.
pub const LIST_CURSOR_BYTES_MAX: usize = QUALIFIED_NAME_BYTES_MAX + 16;

/// Longest `deadline_s` of `ask` and `broadcast`: one day. Longer is rejected with `bad_args`.
pub const ASK_DEADLINE_S_MAX: u32 = 86_400;

/// The deadline of an ask that gives no `deadline_s`: ten minutes.
pub const ASK_DEADLINE_S_DEFAULT: u32 = 600;

/// Most members a `group_create` may list (the creator comes on top and need not be listed).
/// A longer list is rejected with `bad_args`; more members join later with `group_invite`.
pub const GROUP_CREATE_MEMBERS_MAX: usize = 64;

/// Worst-case growth of a string when JSON-escaped: a control byte becomes `\u00XX`.
pub const JSON_ESCAPE_EXPANSION_MAX: usize = 6;

/// Room left in a frame for everything around one message's text: ids, names, timestamps, keys
/// and the JSON-RPC envelope, all escaped at worst.
pub const MESSAGE_ENVELOPE_BYTES_MAX: usize = 16 << 10;

// A single message (text plus its envelope, everything escaped at worst) always fits in one
// frame, so a reply, an inbox page of one message or a push is never too large to send.
const _: () = assert!(
    TEXT_BYTES_MAX * JSON_ESCAPE_EXPANSION_MAX + MESSAGE_ENVELOPE_BYTES_MAX <= FRAME_BYTES_MAX
);
// The envelope has room for every bounded field around the text.
const _: () = assert!(
    (4 * NAME_BYTES_MAX + 4 * ID_BYTES_MAX + REQUEST_ID_BYTES_MAX) * JSON_ESCAPE_EXPANSION_MAX
        + 1024
        <= MESSAGE_ENVELOPE_BYTES_MAX
);
// A whole `group_create` request or result fits in one frame.
const _: () = assert!(
    GROUP_CREATE_MEMBERS_MAX * (NAME_BYTES_MAX * JSON_ESCAPE_EXPANSION_MAX + 3)
        + MESSAGE_ENVELOPE_BYTES_MAX
        <= FRAME_BYTES_MAX
);
// A `register` request with every field at its limit fits in one frame.
const _: () = assert!(
    (CWD_BYTES_MAX + GIT_BRANCH_BYTES_MAX + SESSION_NAME_BYTES_MAX + NAME_BYTES_MAX)
        * JSON_ESCAPE_EXPANSION_MAX
        + MESSAGE_ENVELOPE_BYTES_MAX
        <= FRAME_BYTES_MAX
);
const _: () = assert!(NAME_BYTES_MAX < TEXT_BYTES_MAX && TEXT_BYTES_MAX < FRAME_BYTES_MAX);
const _: () = assert!(ERROR_MESSAGE_BYTES_MAX < MESSAGE_ENVELOPE_BYTES_MAX);
const _: () = assert!(INBOX_LIMIT_DEFAULT >= 1 && INBOX_LIMIT_DEFAULT <= INBOX_LIMIT_MAX);
const _: () = assert!(
    GROUP_HISTORY_LIMIT_DEFAULT >= 1 && GROUP_HISTORY_LIMIT_DEFAULT <= GROUP_HISTORY_LIMIT_MAX
);
const _: () = assert!(LIST_LIMIT_DEFAULT >= 1 && LIST_LIMIT_DEFAULT <= LIST_LIMIT_MAX);
// A page with its envelope fits one frame.
const _: () = assert!(LIST_PAGE_BYTES_MAX + MESSAGE_ENVELOPE_BYTES_MAX <= FRAME_BYTES_MAX);
// One `peers` entry with every field at its limit, escaped at worst, fits a page (names need
// no escaping, but the bound does not rely on it).
const _: () = assert!(
    (3 * NAME_BYTES_MAX + CWD_BYTES_MAX + GIT_BRANCH_BYTES_MAX + CLIENT_INFO_BYTES_MAX)
        * JSON_ESCAPE_EXPANSION_MAX
        + 1024
        <= LIST_PAGE_BYTES_MAX
);
