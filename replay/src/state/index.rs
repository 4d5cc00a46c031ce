//! The message index: which mailbox holds the kept direct message with a given id.
//!
//! Nearly every message a hub stores has the id it chose, `m-<offset>` of the record that stored
//! it (see [`derived_offset`]); those are indexed by that offset, a `u64` key with the recipient
//! as its value, so an entry costs two words and no allocation, and the mailbox finds the
//! message by offset. Every other id (another hub's `m-42@a`, or any id a log holds) is indexed
//! by its text with its location, as before. An id is in at most one of the two maps: a lookup
//! of `m-<n>` tries the offset map first, then the text map.
//!
//! The index is derived from the mailboxes (every kept message, and only those) and is not
//! archived: a decoded snapshot rebuilds it ([`MessageIndex::rebuild`]). Its JSON, in
//! `relay replay --state`, is the map from id to location in id order it always was
//! ([`State::message_index_entries`](crate::State)).

use std::collections::HashMap;

use crate::state::mailbox::derived_offset;
use crate::state::ordered::StringMap;
use crate::state::{IdentityId, Mailbox, MessageLocation, StoredMessage};

/// Message id to mailbox, for every kept message (see the [module](self) documentation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MessageIndex {
    /// Messages with the id `m-<offset>`: by that offset, to their recipient.
    derived: HashMap<u64, IdentityId>,
    /// Every other message: by id, to its location.
    named: StringMap<MessageLocation>,
}

/// Where the index says a message is: whose mailbox, and how that mailbox finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Located {
    /// A message with the id `m-<offset>`, found by its offset.
    Derived {
        /// The mailbox owner.
        recipient: IdentityId,
        /// The offset of the record that stored it.
        offset: u64,
    },
    /// Any other message, found by its sequence.
    Named(MessageLocation),
}

impl Located {
    /// The mailbox owner.
    pub(crate) fn recipient(self) -> IdentityId {
        match self {
            Located::Derived { recipient, .. } => recipient,
            Located::Named(location) => location.recipient,
        }
    }

    /// The message in `mailbox` (the recipient's).
    pub(crate) fn find(self, mailbox: &Mailbox) -> Option<&StoredMessage> {
        match self {
            Located::Derived { offset, .. } => mailbox.get_by_derived_offset(offset),
            Located::Named(location) => mailbox.get_by_sequence(location.sequence),
        }
    }
}

impl MessageIndex {
    /// Messages indexed.
    pub(crate) fn len(&self) -> usize {
        self.derived.len() + self.named.len()
    }

    /// Where the message with id `id` is.
    pub(crate) fn get(&self, id: &str) -> Option<Located> {
        if let Some(offset) = derived_offset(id)
            && let Some(recipient) = self.derived.get(&offset)
        {
            return Some(Located::Derived {
                recipient: *recipient,
                offset,
            });
        }
        self.named.get(id).copied().map(Located::Named)
    }

    /// Whether a kept message has the id `id`.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// Indexes `message`, kept in `recipient`'s mailbox. The caller checked no kept message
    /// has its id ([`MessageIndex::contains`]).
    pub(crate) fn insert(&mut self, message: &StoredMessage, recipient: IdentityId) {
        if message.has_derived_id() {
            self.derived.insert(message.offset(), recipient);
        } else {
            let location = MessageLocation {
                recipient,
                sequence: message.sequence(),
            };
            self.named.insert(message.id().into_owned(), location);
        }
    }

    /// Forgets `message` (no longer kept).
    pub(crate) fn remove(&mut self, message: &StoredMessage) {
        if message.has_derived_id() {
            self.derived.remove(&message.offset());
        } else {
            self.named.remove(message.id().as_ref());
        }
    }

    /// Every entry as `(recipient, how to find it)`, in no particular order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = Located> + '_ {
        let derived = self
            .derived
            .iter()
            .map(|(offset, recipient)| Located::Derived {
                recipient: *recipient,
                offset: *offset,
            });
        derived.chain(self.named.values().copied().map(Located::Named))
    }

    /// The index of `mailboxes`: every kept message.
    ///
    /// # Errors
    ///
    /// Why the mailboxes cannot be indexed: two kept messages with one id, or a mailbox whose
    /// messages are not in offset order (no state `apply` builds has either).
    pub(crate) fn rebuild<'a>(
        mailboxes: impl Iterator<Item = (&'a IdentityId, &'a Mailbox)>,
    ) -> Result<MessageIndex, String> {
        let mut index = MessageIndex::default();
        for (recipient, mailbox) in mailboxes {
            if !mailbox.in_offset_order() {
                return Err(format!(
                    "the mailbox of identity {} is not in offset order",
                    recipient.0
                ));
            }
            for message in mailbox.messages() {
                if index.contains(&message.id()) {
                    return Err(format!("two kept messages have the id {:?}", message.id()));
                }
                index.insert(message, *recipient);
            }
        }
        Ok(index)
    }
}
