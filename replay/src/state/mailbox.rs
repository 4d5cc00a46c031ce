//! A mailbox: every unread direct message of one identity, and the last read ones.
//!
//! Each message has a sequence number (1, 2, 3, … per mailbox, never reused) and a delivery
//! state: queued (stored), delivered (the recipient's session took it) or read (the model has
//! it). The read cursor is the highest sequence up to which everything is read; a message after
//! it may be read already (handed to the model by a push). [`Mailbox::unread`] offers every
//! message that is not read, delivered ones included (a session that took a message cannot
//! always know whether its model saw it), and [`Mailbox::all`] returns everything kept, so
//! anything pushed can be pulled again.
//!
//! **Unread mail is never dropped.** A new message is only stored while the mailbox has room
//! ([`Mailbox::check_room`]: fewer than [`MAILBOX_UNREAD_MAX`] unread messages and their text
//! within [`MAILBOX_UNREAD_BYTES_MAX`]); otherwise it is refused, and the refusal is counted in
//! the mailbox's [`Refusals`] until the recipient reads its inbox. Read messages age out: past
//! [`MAILBOX_READ_MAX`] read messages or [`MAILBOX_READ_BYTES_MAX`] of their text, the oldest
//! read message is forgotten.

use rkyv::{Archive, Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use crate::limits::{
    MAILBOX_READ_BYTES_MAX, MAILBOX_READ_MAX, MAILBOX_REFUSALS_PER_SENDER_MAX,
    MAILBOX_REFUSED_SENDERS_MAX, MAILBOX_UNREAD_BYTES_MAX, MAILBOX_UNREAD_MAX,
};
use crate::state::ring::Ring;
use crate::state::shared::AsSender;
use crate::state::{Identity, IdentityId, SharedName};

/// Where a stored message is in its delivery life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Archive, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Stored, not yet taken by the recipient's session: the inbox offers it as new.
    Queued,
    /// The recipient's session acknowledged taking it, on a path that may not reach the model:
    /// the inbox offers it once more, marked as pushed.
    Delivered,
    /// The model has it: at or below the read cursor, or read on its own.
    Read,
}

impl DeliveryState {
    /// The snake_case name, as in JSON: `queued`, `delivered` or `read`.
    pub fn name(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Read => "read",
        }
    }
}

/// A direct message, ask or reply as stored in the recipient's mailbox.
///
/// Laid out for a mailbox holding many of them (see [`STORED_MESSAGE_BYTES_MAX`]): the fields
/// most messages leave empty live in one optional [`Extras`] allocation; the id is not stored
/// when it is the hub-chosen `m-<offset>` of the record that stored the message (see
/// [`derived_offset`]); the body never grows, so it is a `Box<str>`; and the sender, its id
/// with its name, is one pointer to the sender identity's copy of that name ([`SharedName`]).
/// Archived as the plain struct was: the sender as its id then its name ([`AsSender`]). Read
/// it through the accessors; its JSON (the `Serialize` impl) has the fields of a plain struct,
/// in the order they always had.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Position in this mailbox: 1 for the first message ever received, then +1 each.
    pub(crate) sequence: u64,
    /// Offset of the record that stored it.
    pub(crate) offset: u64,
    /// Record timestamp, in microseconds since the Unix epoch.
    pub(crate) timestamp_us: u64,
    /// The sender: its id, and its name when it sent.
    #[rkyv(with = AsSender)]
    pub(crate) sender: SharedName,
    /// The text.
    pub(crate) body: Box<str>,
    /// The rarely set fields, `None` when all of them are empty. Invariant: never `Some` of an
    /// empty [`Extras`], so equal messages are equal structs.
    pub(crate) extras: Option<Box<Extras>>,
    /// Delivery state.
    pub(crate) state: DeliveryState,
    /// Whether the sender marked it time-sensitive.
    pub(crate) urgent: bool,
    /// Whether it was sent as a reply (to the ask or message `reply_to` names), rather than
    /// as a message that merely threads under `reply_to`.
    pub(crate) is_reply: bool,
    /// For a reply: it answers an ask that had already timed out.
    pub(crate) late: bool,
}

/// Bytes a [`StoredMessage`] takes inline (in its mailbox's ring), at most: a test keeps it
/// there, since every queued message pays it (`relay bench memory`).
pub const STORED_MESSAGE_BYTES_MAX: usize = 64;

const _: () = assert!(std::mem::size_of::<StoredMessage>() <= STORED_MESSAGE_BYTES_MAX);

/// The fields of a [`StoredMessage`] most messages leave empty, in one allocation.
#[derive(Clone, Debug, PartialEq, Eq, Default, Archive, Serialize, Deserialize)]
pub(crate) struct Extras {
    /// The message id when it is not `m-<offset>` of the record that stored it (another
    /// hub's id, or any id a log holds); `None` when it is.
    pub(crate) id: Option<Box<str>>,
    /// The message or ask id this one answers.
    pub(crate) reply_to: Option<Box<str>>,
    /// Set when this message is an ask: the id a reply names.
    pub(crate) ask_id: Option<Box<str>>,
    /// Set when this ask is part of a broadcast.
    pub(crate) broadcast_id: Option<Box<str>>,
    /// A thread label.
    pub(crate) thread: Option<Box<str>>,
    /// For a `timeout` message from the hub: the ask that ended unanswered.
    pub(crate) timed_out_ask: Option<Box<str>>,
    /// The last status the recipient's client reported (`held`, `refused`, `expired`).
    pub(crate) reported: Option<Box<str>>,
}

impl Extras {
    fn is_empty(&self) -> bool {
        *self == Extras::default()
    }
}

/// Digits of the longest `u64`: an id `m-<digits>` with more cannot be derived.
const OFFSET_DIGITS_MAX: usize = 20;

/// The offset a message id names when it is a hub-chosen id `m-<offset>`: `m-` then the offset
/// in canonical decimal (no sign, no leading zero but for `m-0`). Any other text, `m-007`,
/// `m-42@a` included, is `None`.
pub fn derived_offset(id: &str) -> Option<u64> {
    let digits = id.strip_prefix("m-")?;
    let canonical = !digits.is_empty()
        && digits.len() <= OFFSET_DIGITS_MAX
        && digits.bytes().all(|byte| byte.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !canonical {
        return None;
    }
    digits.parse().ok()
}

/// Bytes of the decimal text of `value`.
fn decimal_len(value: u64) -> usize {
    value.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// What a new [`StoredMessage`] holds, borrowed from the event that stores it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NewMessage<'a> {
    pub(crate) id: &'a str,
    pub(crate) offset: u64,
    pub(crate) timestamp_us: u64,
    pub(crate) body: &'a str,
    pub(crate) reply_to: Option<&'a str>,
    pub(crate) ask_id: Option<&'a str>,
    pub(crate) broadcast_id: Option<&'a str>,
    pub(crate) thread: Option<&'a str>,
    pub(crate) urgent: bool,
    pub(crate) is_reply: bool,
    pub(crate) late: bool,
    pub(crate) timed_out_ask: Option<&'a str>,
}

fn boxed(text: Option<&str>) -> Option<Box<str>> {
    text.map(Box::from)
}

impl StoredMessage {
    /// A queued message with sequence 0 (the mailbox sets it) from `sender`.
    pub(crate) fn new(new: &NewMessage<'_>, sender: SharedName) -> StoredMessage {
        let id = (derived_offset(new.id) != Some(new.offset)).then(|| Box::from(new.id));
        let extras = Extras {
            id,
            reply_to: boxed(new.reply_to),
            ask_id: boxed(new.ask_id),
            broadcast_id: boxed(new.broadcast_id),
            thread: boxed(new.thread),
            timed_out_ask: boxed(new.timed_out_ask),
            reported: None,
        };
        StoredMessage {
            sequence: 0,
            offset: new.offset,
            timestamp_us: new.timestamp_us,
            sender,
            body: Box::from(new.body),
            extras: (!extras.is_empty()).then(|| Box::new(extras)),
            state: DeliveryState::Queued,
            urgent: new.urgent,
            is_reply: new.is_reply,
            late: new.late,
        }
    }

    /// Position in this mailbox: 1 for the first message ever received, then +1 each.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Hub-chosen message id.
    pub fn id(&self) -> Cow<'_, str> {
        match self.extras.as_ref().and_then(|extras| extras.id.as_deref()) {
            Some(id) => Cow::Borrowed(id),
            None => Cow::Owned(format!("m-{}", self.offset)),
        }
    }

    /// Whether this message's id is `id`, without building the id.
    pub fn has_id(&self, id: &str) -> bool {
        self.has_parsed_id(id, derived_offset(id))
    }

    /// [`StoredMessage::has_id`] with `id`'s [`derived_offset`] parsed once by the caller, for
    /// a scan of many messages.
    fn has_parsed_id(&self, id: &str, derived: Option<u64>) -> bool {
        match self.extras.as_ref().and_then(|extras| extras.id.as_deref()) {
            Some(own) => own == id,
            None => derived == Some(self.offset),
        }
    }

    /// Whether the id is the `m-<offset>` of the record that stored it (not stored).
    pub(crate) fn has_derived_id(&self) -> bool {
        self.extras
            .as_ref()
            .is_none_or(|extras| extras.id.is_none())
    }

    /// Bytes of the id's text.
    pub fn id_len(&self) -> usize {
        match self.extras.as_ref().and_then(|extras| extras.id.as_deref()) {
            Some(id) => id.len(),
            None => "m-".len() + decimal_len(self.offset),
        }
    }

    /// The sender.
    pub fn from(&self) -> IdentityId {
        self.sender.id()
    }

    /// The sender's name when it sent.
    pub fn from_name(&self) -> &str {
        self.sender.as_str()
    }

    /// The text.
    pub fn body(&self) -> &str {
        &self.body
    }

    fn extra(&self, field: impl Fn(&Extras) -> &Option<Box<str>>) -> Option<&str> {
        self.extras
            .as_deref()
            .and_then(|extras| field(extras).as_deref())
    }

    /// The message or ask id this one answers.
    pub fn reply_to(&self) -> Option<&str> {
        self.extra(|extras| &extras.reply_to)
    }

    /// Set when this message is an ask: the id a reply names.
    pub fn ask_id(&self) -> Option<&str> {
        self.extra(|extras| &extras.ask_id)
    }

    /// Set when this ask is part of a broadcast.
    pub fn broadcast_id(&self) -> Option<&str> {
        self.extra(|extras| &extras.broadcast_id)
    }

    /// A thread label.
    pub fn thread(&self) -> Option<&str> {
        self.extra(|extras| &extras.thread)
    }

    /// Whether the sender marked it time-sensitive.
    pub fn urgent(&self) -> bool {
        self.urgent
    }

    /// Whether it was sent as a reply (to the ask or message `reply_to` names), rather than
    /// as a message that merely threads under `reply_to`.
    pub fn is_reply(&self) -> bool {
        self.is_reply
    }

    /// Record timestamp, in microseconds since the Unix epoch.
    pub fn timestamp_us(&self) -> u64 {
        self.timestamp_us
    }

    /// Offset of the record that stored it.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Delivery state.
    pub fn state(&self) -> DeliveryState {
        self.state
    }

    /// For a reply: it answers an ask that had already timed out.
    pub fn late(&self) -> bool {
        self.late
    }

    /// For a `timeout` message from the hub: the ask that ended unanswered.
    pub fn timed_out_ask(&self) -> Option<&str> {
        self.extra(|extras| &extras.timed_out_ask)
    }

    /// The last status the recipient's client reported (`held`, `refused`, `expired`).
    pub fn reported(&self) -> Option<&str> {
        self.extra(|extras| &extras.reported)
    }

    /// Makes `from` the sender, its name unchanged: the copy of `identity` (the identity with
    /// id `from`, if known) when it held that name, else a copy of the message's own (see
    /// [`SharedName`]).
    pub(crate) fn set_sender(&mut self, from: IdentityId, identity: Option<&Identity>) {
        // Newest first: a message is nearly always sent under the current name.
        let shared = identity
            .into_iter()
            .flat_map(|identity| identity.shared_names().rev())
            .find(|name| name.id() == from && **name == *self.sender.as_str());
        match shared {
            Some(name) if !name.is_same_copy(&self.sender) => self.sender = name.clone(),
            Some(_) => {}
            None if self.sender.id() != from => {
                self.sender = SharedName::new(from, self.sender.as_str());
            }
            None => {}
        }
    }

    /// Records what the recipient's client reported.
    fn set_reported(&mut self, status: &str) {
        self.extras.get_or_insert_default().reported = Some(Box::from(status));
    }
}

/// The JSON of a stored message: every field, in the order of the plain struct it once was.
impl serde::Serialize for StoredMessage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("StoredMessage", 17)?;
        out.serialize_field("sequence", &self.sequence)?;
        out.serialize_field("id", &self.id())?;
        out.serialize_field("from", &self.from())?;
        out.serialize_field("from_name", self.from_name())?;
        out.serialize_field("body", self.body())?;
        out.serialize_field("reply_to", &self.reply_to())?;
        out.serialize_field("ask_id", &self.ask_id())?;
        out.serialize_field("broadcast_id", &self.broadcast_id())?;
        out.serialize_field("thread", &self.thread())?;
        out.serialize_field("urgent", &self.urgent)?;
        out.serialize_field("is_reply", &self.is_reply)?;
        out.serialize_field("timestamp_us", &self.timestamp_us)?;
        out.serialize_field("offset", &self.offset)?;
        out.serialize_field("state", &self.state)?;
        out.serialize_field("late", &self.late)?;
        out.serialize_field("timed_out_ask", &self.timed_out_ask())?;
        out.serialize_field("reported", &self.reported())?;
        out.end()
    }
}

/// How many messages one sender had refused because the mailbox was full, since the
/// recipient last read its inbox.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Archive, Serialize, Deserialize)]
pub struct RefusalCount {
    /// Refusals counted. Refusals of a sender's messages are logged (and counted) up to
    /// [`MAILBOX_REFUSALS_PER_SENDER_MAX`]; at it, more may have been refused uncounted.
    pub count: u32,
    /// Record timestamp of the first refusal counted, in microseconds since the Unix epoch.
    pub first_us: u64,
    /// Record timestamp of the last refusal counted, in microseconds since the Unix epoch.
    pub last_us: u64,
}

impl RefusalCount {
    /// Whether more refusals than [`RefusalCount::count`] may have happened: the count reached
    /// [`MAILBOX_REFUSALS_PER_SENDER_MAX`], past which refusals are answered but not logged.
    pub fn is_lower_bound(&self) -> bool {
        self.count >= MAILBOX_REFUSALS_PER_SENDER_MAX
    }

    fn add(&mut self, timestamp_us: u64) {
        self.count = self.count.saturating_add(1);
        self.last_us = self.last_us.max(timestamp_us);
    }

    fn new(timestamp_us: u64) -> RefusalCount {
        RefusalCount {
            count: 1,
            first_us: timestamp_us,
            last_us: timestamp_us,
        }
    }
}

/// The messages a mailbox refused because it was full, by sender, since the recipient last read
/// its inbox (a `mailbox_cursor_advanced` event clears it). Hub `timeout` notices that could not
/// be stored are counted under the sender name `relay`.
#[derive(
    Clone, Debug, PartialEq, Eq, Default, serde::Serialize, Archive, Serialize, Deserialize,
)]
pub struct Refusals {
    /// By the sender's name when it was refused. Invariant: at most
    /// [`MAILBOX_REFUSED_SENDERS_MAX`] senders.
    senders: BTreeMap<String, RefusalCount>,
    /// Refusals from senders past the named ones, counted together.
    others: Option<RefusalCount>,
}

impl Refusals {
    /// Named senders with their refusals, by name.
    pub fn senders(&self) -> impl Iterator<Item = (&str, &RefusalCount)> {
        self.senders
            .iter()
            .map(|(name, count)| (name.as_str(), count))
    }

    /// Refusals from senders past the [`MAILBOX_REFUSED_SENDERS_MAX`] named ones, together.
    pub fn others(&self) -> Option<&RefusalCount> {
        self.others.as_ref()
    }

    /// Every refusal counted, named senders and others.
    pub fn total(&self) -> u64 {
        self.senders
            .values()
            .chain(self.others.as_ref())
            .map(|count| u64::from(count.count))
            .sum()
    }

    /// Whether nothing was refused.
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty() && self.others.is_none()
    }

    /// Whether one more refusal of a message from `sender` would be logged and counted: below
    /// [`MAILBOX_REFUSALS_PER_SENDER_MAX`] for that sender (or for the unnamed others, once
    /// [`MAILBOX_REFUSED_SENDERS_MAX`] senders are named). The hub logs a refusal only then.
    pub fn counts_one_more(&self, sender: &str) -> bool {
        let counted = match self.senders.get(sender) {
            Some(count) => Some(count),
            None if self.senders.len() < MAILBOX_REFUSED_SENDERS_MAX => None,
            None => self.others.as_ref(),
        };
        counted.is_none_or(|count| count.count < MAILBOX_REFUSALS_PER_SENDER_MAX)
    }

    /// Counts one refusal from `sender` (whatever the per-sender allowance: the caller checks
    /// [`Refusals::counts_one_more`] for refusals that must stay within it).
    pub(crate) fn add(&mut self, sender: &str, timestamp_us: u64) {
        if let Some(count) = self.senders.get_mut(sender) {
            count.add(timestamp_us);
        } else if self.senders.len() < MAILBOX_REFUSED_SENDERS_MAX {
            self.senders
                .insert(sender.to_owned(), RefusalCount::new(timestamp_us));
        } else if let Some(count) = &mut self.others {
            count.add(timestamp_us);
        } else {
            self.others = Some(RefusalCount::new(timestamp_us));
        }
    }
}

/// Why a mailbox has no room for a message: how full it is. Both bounds are checked; either
/// refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MailboxFull {
    /// Unread messages held ([`MAILBOX_UNREAD_MAX`] at most admitted).
    pub unread_count: u64,
    /// Bytes of unread text held ([`MAILBOX_UNREAD_BYTES_MAX`] at most admitted).
    pub unread_bytes: u64,
    /// Bytes of text of the refused message.
    pub body_bytes: u64,
}

/// The read messages a mailbox forgot to stay within its read bounds (see
/// [`Mailbox::mark_read`], [`Mailbox::advance_cursor`]), oldest first. Past the bounds a read
/// forgets one message, so the first is held in place: a vector for each read was one
/// allocation per acknowledged message, live and in replay.
#[derive(Debug, Default)]
pub(crate) struct Forgotten {
    first: Option<StoredMessage>,
    rest: Vec<StoredMessage>,
}

impl Forgotten {
    fn push(&mut self, message: StoredMessage) {
        if self.first.is_none() {
            self.first = Some(message);
        } else {
            self.rest.push(message);
        }
    }
}

impl IntoIterator for Forgotten {
    type Item = StoredMessage;
    type IntoIter =
        std::iter::Chain<std::option::IntoIter<StoredMessage>, std::vec::IntoIter<StoredMessage>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

/// One identity's mailbox.
#[derive(
    Clone, Debug, PartialEq, Eq, Default, serde::Serialize, Archive, Serialize, Deserialize,
)]
pub struct Mailbox {
    /// Oldest first, sequences strictly increasing (not consecutive: a read message may age out
    /// from between unread ones). Invariant: every unread message ever stored is here; at most
    /// [`MAILBOX_READ_MAX`] read ones, and so `messages.len() <= MAILBOX_UNREAD_MAX +
    /// MAILBOX_READ_MAX`. In blocks ([`Ring`]): it grows a block at a time, moving nothing.
    messages: Ring<StoredMessage>,
    /// Sequences of the kept messages after the cursor that are read (read on their own, out of
    /// order). Invariant: exactly those. With the messages up to the cursor (all read, and at the
    /// front) they locate the oldest read message without a scan.
    read_ahead: BTreeSet<u64>,
    /// Kept messages in state `Read`. Invariant: their count, at most [`MAILBOX_READ_MAX`].
    read_count: u64,
    /// Bytes of text of the kept unread messages. Invariant: the sum over them.
    unread_bytes: u64,
    /// Bytes of text of the kept read messages. Invariant: the sum over them, and at most
    /// [`MAILBOX_READ_BYTES_MAX`].
    read_bytes: u64,
    /// Sequence of the newest message ever stored (0 before the first).
    last_sequence: u64,
    /// Highest sequence read. Invariant: `cursor <= last_sequence`, and every kept message up to
    /// it is read.
    cursor: u64,
    /// Messages refused because the mailbox was full, since the recipient last read its inbox.
    refusals: Refusals,
}

impl Mailbox {
    /// The read cursor: every message with a sequence up to it is read.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Sequence of the newest message ever stored (0 before the first).
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    /// Messages kept, oldest first: every unread one and the newest read ones.
    pub fn messages(&self) -> impl DoubleEndedIterator<Item = &StoredMessage> + ExactSizeIterator {
        self.messages.iter()
    }

    /// Number of messages kept.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether no message is kept.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Messages that are not read (queued or delivered).
    pub fn unread_count(&self) -> usize {
        self.messages.len() - self.read_count()
    }

    /// Bytes of text of the messages that are not read.
    pub fn unread_bytes(&self) -> u64 {
        self.unread_bytes
    }

    /// Number of read messages kept (at most [`MAILBOX_READ_MAX`]).
    pub fn read_count(&self) -> usize {
        usize::try_from(self.read_count).unwrap_or(usize::MAX)
    }

    /// Bytes of text of the read messages kept (at most [`MAILBOX_READ_BYTES_MAX`]).
    pub fn read_bytes(&self) -> u64 {
        self.read_bytes
    }

    /// Whether any message is new.
    pub fn has_unread(&self) -> bool {
        self.unread_count() > 0
    }

    /// Messages refused because this mailbox was full, since the recipient last read it.
    pub fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    /// Whether a new message with `body_bytes` of text may be stored: fewer than
    /// [`MAILBOX_UNREAD_MAX`] unread messages, and their text with this one within
    /// [`MAILBOX_UNREAD_BYTES_MAX`].
    ///
    /// # Errors
    ///
    /// [`MailboxFull`] with how full the mailbox is, when either bound would be passed.
    pub fn check_room(&self, body_bytes: usize) -> Result<(), MailboxFull> {
        let body_bytes = body_bytes as u64;
        let count_fits = self.unread_count() < MAILBOX_UNREAD_MAX;
        let bytes_fit =
            self.unread_bytes.saturating_add(body_bytes) <= MAILBOX_UNREAD_BYTES_MAX as u64;
        if count_fits && bytes_fit {
            return Ok(());
        }
        Err(MailboxFull {
            unread_count: self.unread_count() as u64,
            unread_bytes: self.unread_bytes,
            body_bytes,
        })
    }

    /// Unread messages (after the cursor and not read: queued or delivered), oldest first, at
    /// most `limit`, starting after the message `since_id` when it is given and still kept (from
    /// the oldest otherwise).
    pub fn unread(&self, since_id: Option<&str>, limit: usize) -> Vec<&StoredMessage> {
        self.after(since_id)
            .filter(|message| message.state != DeliveryState::Read)
            .take(limit)
            .collect()
    }

    /// Every kept message whatever its state (read again on request), oldest first, at most
    /// `limit`, starting after `since_id` like [`Mailbox::unread`].
    pub fn all(&self, since_id: Option<&str>, limit: usize) -> Vec<&StoredMessage> {
        self.after(since_id).take(limit).collect()
    }

    /// The kept message with this id.
    pub fn get(&self, id: &str) -> Option<&StoredMessage> {
        let derived = derived_offset(id);
        self.messages
            .iter()
            .find(|message| message.has_parsed_id(id, derived))
    }

    /// The kept message with this sequence.
    pub fn get_by_sequence(&self, sequence: u64) -> Option<&StoredMessage> {
        self.messages.get(self.index_of(sequence)?)
    }

    /// The kept message stored by the record at `offset` with the id `m-<offset>` (see
    /// [`derived_offset`]). Kept messages are in offset order (each was stored by a later record
    /// than the one before it; a record may store several), so this is a binary search.
    pub(crate) fn get_by_derived_offset(&self, offset: u64) -> Option<&StoredMessage> {
        let first = self
            .messages
            .partition_point(|message| message.offset < offset);
        self.messages
            .iter_from(first)
            .take_while(|message| message.offset == offset)
            .find(|message| message.has_derived_id())
    }

    /// Whether the kept messages are in offset order (what [`Mailbox::get_by_derived_offset`]
    /// needs): a decoded snapshot is checked for it.
    pub(crate) fn in_offset_order(&self) -> bool {
        self.messages
            .iter()
            .zip(self.messages.iter().skip(1))
            .all(|(before, after)| before.offset <= after.offset)
    }

    /// Every kept message, to share their sender names with their identities (see
    /// [`SharedName`]) once a snapshot is decoded.
    pub(crate) fn messages_mut(&mut self) -> impl Iterator<Item = &mut StoredMessage> {
        self.messages.iter_mut()
    }

    /// Stores `message` with the next sequence, unread. The caller checked
    /// [`Mailbox::check_room`].
    pub(crate) fn push(&mut self, mut message: StoredMessage) {
        self.last_sequence += 1;
        message.sequence = self.last_sequence;
        message.state = DeliveryState::Queued;
        self.unread_bytes += message.body.len() as u64;
        self.messages.push_back(message);
    }

    /// Counts a message from `sender` refused because the mailbox was full.
    pub(crate) fn note_refused(&mut self, sender: &str, timestamp_us: u64) {
        self.refusals.add(sender, timestamp_us);
    }

    /// Marks a queued message delivered; a delivered or read one stays as it is (the
    /// acknowledgement can race with a read of the inbox).
    pub(crate) fn mark_delivered(&mut self, sequence: u64) {
        if let Some(message) = self.message_mut(sequence)
            && message.state == DeliveryState::Queued
        {
            message.state = DeliveryState::Delivered;
        }
    }

    /// Marks one message read, wherever the cursor is; returns the read messages forgotten to
    /// stay within the read bounds.
    pub(crate) fn mark_read(&mut self, sequence: u64) -> Forgotten {
        let Some(index) = self.index_of(sequence) else {
            return Forgotten::default();
        };
        let message = &mut self.messages[index];
        if message.state != DeliveryState::Read {
            message.state = DeliveryState::Read;
            let bytes = message.body.len() as u64;
            self.unread_bytes -= bytes;
            self.read_bytes += bytes;
            self.read_count += 1;
            if sequence > self.cursor {
                self.read_ahead.insert(sequence);
            }
        }
        self.forget_oldest_read()
    }

    /// Makes a message unread again (its client refused it or let it expire), unless the
    /// cursor has passed it: a pull read it meanwhile. Allowed at the unread bounds: the message
    /// was stored within them (see [`MAILBOX_UNREAD_MAX`]).
    pub(crate) fn mark_returned(&mut self, sequence: u64) {
        if sequence <= self.cursor {
            return;
        }
        let Some(index) = self.index_of(sequence) else {
            return;
        };
        let message = &mut self.messages[index];
        if message.state == DeliveryState::Read {
            let bytes = message.body.len() as u64;
            self.read_ahead.remove(&sequence);
            self.read_count -= 1;
            self.read_bytes -= bytes;
            self.unread_bytes += bytes;
        }
        message.state = DeliveryState::Queued;
    }

    /// Records what the recipient's client reported of a message.
    pub(crate) fn note_reported(&mut self, sequence: u64, status: &str) {
        if let Some(message) = self.message_mut(sequence) {
            message.set_reported(status);
        }
    }

    /// Moves the cursor to `up_to_sequence`, marks every message up to it read and clears the
    /// refusal record (the recipient read its inbox, which showed it); returns the read
    /// messages forgotten to stay within the read bounds.
    pub(crate) fn advance_cursor(&mut self, up_to_sequence: u64) -> Forgotten {
        assert!(
            up_to_sequence <= self.last_sequence,
            "invariant: cursor past the newest message"
        );
        // Messages up to the old cursor are read already: start after it.
        let cursor = self.cursor;
        let first_unread = self.index_after(cursor);
        for message in self
            .messages
            .iter_mut_from(first_unread)
            .take_while(|message| message.sequence <= up_to_sequence)
        {
            if message.state != DeliveryState::Read {
                message.state = DeliveryState::Read;
                let bytes = message.body.len() as u64;
                self.unread_bytes -= bytes;
                self.read_bytes += bytes;
                self.read_count += 1;
            }
        }
        self.cursor = cursor.max(up_to_sequence);
        // Read ones up to the new cursor are no longer ahead of it.
        self.read_ahead = self.read_ahead.split_off(&self.cursor.saturating_add(1));
        self.refusals = Refusals::default();
        self.forget_oldest_read()
    }

    /// Forgets the oldest read messages while more than [`MAILBOX_READ_MAX`] or more than
    /// [`MAILBOX_READ_BYTES_MAX`] of their text are kept; returns them. The oldest read
    /// message is the first one when it is read (every message up to the cursor is, and they
    /// come first), else the first read ahead of the cursor.
    fn forget_oldest_read(&mut self) -> Forgotten {
        let mut forgotten = Forgotten::default();
        // Bounded: each pass removes one read message, or stops.
        while self.read_count > MAILBOX_READ_MAX as u64
            || self.read_bytes > MAILBOX_READ_BYTES_MAX as u64
        {
            let index = match self.messages.front() {
                Some(front) if front.state == DeliveryState::Read => Some(0),
                _ => self
                    .read_ahead
                    .first()
                    .and_then(|sequence| self.index_of(*sequence)),
            };
            let Some(message) = index.and_then(|index| self.messages.remove(index)) else {
                break;
            };
            self.read_ahead.remove(&message.sequence);
            self.read_count -= 1;
            self.read_bytes -= message.body.len() as u64;
            forgotten.push(message);
        }
        forgotten
    }

    fn message_mut(&mut self, sequence: u64) -> Option<&mut StoredMessage> {
        let index = self.index_of(sequence)?;
        self.messages.get_mut(index)
    }

    /// The index of the kept message with this sequence. Sequences are consecutive but for the
    /// read messages that aged out from between unread ones, so the distance from the first kept
    /// one is tried before the binary search.
    fn index_of(&self, sequence: u64) -> Option<usize> {
        let first = self.messages.front()?.sequence;
        let guess = usize::try_from(sequence.checked_sub(first)?).ok()?;
        if self
            .messages
            .get(guess)
            .is_some_and(|message| message.sequence == sequence)
        {
            return Some(guess);
        }
        self.messages
            .binary_search_by_key(&sequence, |message| message.sequence)
    }

    /// The index of the first kept message with a sequence above `sequence` (the count of those
    /// at or below it), trying the consecutive case first like [`Mailbox::index_of`].
    fn index_after(&self, sequence: u64) -> usize {
        let Some(first) = self.messages.front().map(|message| message.sequence) else {
            return 0;
        };
        let Some(below) = sequence
            .checked_sub(first)
            .and_then(|distance| usize::try_from(distance).ok())
        else {
            return 0;
        };
        let guess = below.saturating_add(1);
        let at_guess = |index: usize| self.messages.get(index).map(|message| message.sequence);
        let fits = at_guess(below).is_some_and(|before| before <= sequence)
            && at_guess(guess).is_none_or(|after| after > sequence);
        if fits {
            return guess;
        }
        self.messages
            .partition_point(|message| message.sequence <= sequence)
    }

    fn after(&self, since_id: Option<&str>) -> impl Iterator<Item = &StoredMessage> {
        let start = since_id
            .and_then(|id| {
                let derived = derived_offset(id);
                self.messages
                    .iter()
                    .position(|message| message.has_parsed_id(id, derived))
            })
            .map_or(0, |index| index + 1);
        self.messages.iter_from(start)
    }
}
