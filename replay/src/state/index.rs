//! The message index: which mailbox holds the kept direct message with a given id.
//!
//! Nearly every message a hub stores has the id it chose, `m-<offset>` of the record that stored
//! it (see [`derived_offset`]); those are indexed by that offset, a `u64` key with the recipient
//! as its value, so an entry costs two words and no allocation, and the mailbox finds the
//! message by offset. Every other id (another hub's `m-42@a`, or any id a log holds) is indexed
//! by its text with its location, as before. An id is in at most one of the two maps: a lookup
//! of `m-<n>` tries the offset map first, then the text map.
//!
//! The offset map is no hash map but [`ByOffset`], a vector in offset order searched by
//! bisection (O(log n)): `apply` stores a message with a derived id only while applying the
//! record at that offset, above every offset applied before, so each insertion is a push at the
//! end. A removal (read mail aging out, a mailbox forgotten) marks the entry in a bit set, and
//! the vector is compacted once an eighth of it is marked. It grows by an eighth ([`growth`]):
//! sixteen bytes and a bit per entry, with at most an eighth of slack and an eighth of removed
//! entries, where the hash map it replaces held sixteen bytes and a control byte per bucket at
//! a load between 7/16 and 7/8 (`relay bench memory`: 162-164 B beyond the body at 20,000
//! messages with the hash map, 148-149 with this vector).
//!
//! The index is derived from the mailboxes (every kept message, and only those) and is not
//! archived: a decoded snapshot rebuilds it ([`MessageIndex::rebuild`]). Its JSON, in
//! `relay replay --state`, is the map from id to location in id order it always was
//! ([`State::message_index_entries`](crate::State)).

use crate::state::growth::{self, GROWTH_DIVISOR};
use crate::state::mailbox::derived_offset;
use crate::state::ordered::StringMap;
use crate::state::{IdentityId, Mailbox, MessageLocation, StoredMessage};

/// Message id to mailbox, for every kept message (see the [module](self) documentation).
/// Equal when the same ids are indexed at the same places, whatever removed entries
/// [`ByOffset`] still holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MessageIndex {
    /// Messages with the id `m-<offset>`: by that offset, to their recipient.
    derived: ByOffset,
    /// Every other message: by id, to its location.
    named: StringMap<MessageLocation>,
}

/// Bits in a word of [`ByOffset::removed`].
const WORD_BITS: usize = u64::BITS as usize;

/// Offset to recipient, for the messages with derived ids: a vector in offset order with the
/// removed entries marked (see the [module](self) documentation).
#[derive(Clone, Debug, Default)]
pub(crate) struct ByOffset {
    /// `(offset, recipient)`, offsets strictly increasing, removed entries included.
    entries: Vec<(u64, IdentityId)>,
    /// Bit `i % 64` of word `i / 64` set: `entries[i]` is removed. Invariant: exactly
    /// `entries.len().div_ceil(64)` words, no bit set past the last entry.
    removed: Vec<u64>,
    /// Entries removed. Invariant: the bits set in `removed`, at most an eighth of `entries`
    /// ([`GROWTH_DIVISOR`]) after every removal.
    removed_count: usize,
}

impl ByOffset {
    /// Entries kept.
    pub(crate) fn len(&self) -> usize {
        self.entries.len() - self.removed_count
    }

    fn is_removed(&self, index: usize) -> bool {
        self.removed[index / WORD_BITS] & (1 << (index % WORD_BITS)) != 0
    }

    fn set_removed(&mut self, index: usize, removed: bool) {
        let word = &mut self.removed[index / WORD_BITS];
        let bit = 1 << (index % WORD_BITS);
        if removed {
            *word |= bit;
        } else {
            *word &= !bit;
        }
    }

    /// The index of the entry for `offset`, removed or not.
    fn search(&self, offset: u64) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&offset, |entry| entry.0)
    }

    /// The recipient of the message at `offset`. O(log n).
    pub(crate) fn get(&self, offset: u64) -> Option<IdentityId> {
        let index = self.search(offset).ok()?;
        (!self.is_removed(index)).then(|| self.entries[index].1)
    }

    /// Indexes the message at `offset` in `recipient`'s mailbox (replacing an entry for the
    /// same offset). Amortised O(1) when `offset` is above every offset indexed, as in `apply`;
    /// O(n) otherwise.
    pub(crate) fn insert(&mut self, offset: u64, recipient: IdentityId) {
        if self.entries.last().is_some_and(|last| last.0 >= offset) {
            self.insert_within(offset, recipient);
            return;
        }
        growth::reserve_vec(&mut self.entries);
        self.entries.push((offset, recipient));
        if self.entries.len() > self.removed.len() * WORD_BITS {
            self.removed.push(0);
        }
    }

    /// [`ByOffset::insert`] of an offset at or below the last one: never from `apply` (see the
    /// [module](self) documentation), so it may cost O(n).
    fn insert_within(&mut self, offset: u64, recipient: IdentityId) {
        if let Ok(index) = self.search(offset) {
            self.entries[index].1 = recipient;
            if self.is_removed(index) {
                self.set_removed(index, false);
                self.removed_count -= 1;
            }
            return;
        }
        self.compact();
        if let Err(index) = self.search(offset) {
            self.entries.insert(index, (offset, recipient));
            self.removed
                .resize(self.entries.len().div_ceil(WORD_BITS), 0);
        }
    }

    /// Forgets the entry for `offset`; compacts once an eighth of the entries are removed, so
    /// a removal costs amortised O(1) beside its O(log n) search.
    pub(crate) fn remove(&mut self, offset: u64) {
        let Ok(index) = self.search(offset) else {
            return;
        };
        if self.is_removed(index) {
            return;
        }
        self.set_removed(index, true);
        self.removed_count += 1;
        if self.removed_count * GROWTH_DIVISOR > self.entries.len() {
            self.compact();
        }
    }

    /// Drops the removed entries, and the slack past what growth would leave.
    fn compact(&mut self) {
        if self.removed_count > 0 {
            let removed = &self.removed;
            let mut index = 0;
            self.entries.retain(|_| {
                let keep = removed[index / WORD_BITS] & (1 << (index % WORD_BITS)) == 0;
                index += 1;
                keep
            });
            self.removed.clear();
            self.removed
                .resize(self.entries.len().div_ceil(WORD_BITS), 0);
            self.removed_count = 0;
        }
        let len = self.entries.len();
        if self.entries.capacity() > len + 2 * growth::growth(len) {
            self.entries.shrink_to(len + growth::growth(len));
            self.removed.shrink_to_fit();
        }
    }

    /// Every entry kept, in offset order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, IdentityId)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(index, _)| !self.is_removed(*index))
            .map(|(_, entry)| *entry)
    }

    /// The index of `entries`, sorted by offset here.
    ///
    /// # Errors
    ///
    /// The first offset two entries share.
    fn from_entries(mut entries: Vec<(u64, IdentityId)>) -> Result<ByOffset, u64> {
        entries.sort_unstable_by_key(|entry| entry.0);
        if let Some(pair) = entries.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(pair[0].0);
        }
        let words = entries.len().div_ceil(WORD_BITS);
        Ok(ByOffset {
            entries,
            removed: vec![0; words],
            removed_count: 0,
        })
    }
}

/// Equal when the same entries are kept, whatever removed ones each still holds.
impl PartialEq for ByOffset {
    fn eq(&self, other: &ByOffset) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for ByOffset {}

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
            && let Some(recipient) = self.derived.get(offset)
        {
            return Some(Located::Derived { recipient, offset });
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
            self.derived.remove(message.offset());
        } else {
            self.named.remove(message.id().as_ref());
        }
    }

    /// Every entry as `(recipient, how to find it)`, in no particular order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = Located> + '_ {
        let derived = self
            .derived
            .iter()
            .map(|(offset, recipient)| Located::Derived { recipient, offset });
        derived.chain(self.named.values().copied().map(Located::Named))
    }

    /// The index of `mailboxes`: every kept message. O(n log n): the derived ids are sorted
    /// once, not inserted one by one out of order.
    ///
    /// # Errors
    ///
    /// Why the mailboxes cannot be indexed: two kept messages with one id, or a mailbox whose
    /// messages are not in offset order (no state `apply` builds has either).
    pub(crate) fn rebuild<'a>(
        mailboxes: impl Iterator<Item = (&'a IdentityId, &'a Mailbox)>,
    ) -> Result<MessageIndex, String> {
        let duplicate = |id: &str| format!("two kept messages have the id {id:?}");
        let mut derived = Vec::new();
        let mut named = StringMap::default();
        for (recipient, mailbox) in mailboxes {
            if !mailbox.in_offset_order() {
                return Err(format!(
                    "the mailbox of identity {} is not in offset order",
                    recipient.0
                ));
            }
            for message in mailbox.messages() {
                if message.has_derived_id() {
                    derived.push((message.offset(), *recipient));
                    continue;
                }
                let location = MessageLocation {
                    recipient: *recipient,
                    sequence: message.sequence(),
                };
                let id = message.id().into_owned();
                if named.contains_key(&id) {
                    return Err(duplicate(&id));
                }
                named.insert(id, location);
            }
        }
        let derived =
            ByOffset::from_entries(derived).map_err(|offset| duplicate(&format!("m-{offset}")))?;
        // A stored id that reads as another message's derived one.
        if let Some(id) = named
            .keys()
            .find(|id| derived_offset(id).is_some_and(|offset| derived.get(offset).is_some()))
        {
            return Err(duplicate(id));
        }
        Ok(MessageIndex { derived, named })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Operations of the model test.
    const STEPS: usize = 50_000;

    /// xorshift64*: a reproducible mix without a dependency.
    struct Mix(u64);

    impl Mix {
        fn below(&mut self, bound: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
        }
    }

    /// Checks `index` against `model` entry by entry, and its bounds.
    fn check(index: &ByOffset, model: &BTreeMap<u64, IdentityId>) {
        assert_eq!(index.len(), model.len());
        assert!(
            index
                .iter()
                .eq(model.iter().map(|(offset, id)| (*offset, *id))),
            "the kept entries, in offset order"
        );
        assert_eq!(index.removed.len(), index.entries.len().div_ceil(WORD_BITS));
        let marked: u32 = index.removed.iter().map(|word| word.count_ones()).sum();
        assert_eq!(marked as usize, index.removed_count);
        assert!(
            index.removed_count * GROWTH_DIVISOR <= index.entries.len(),
            "{} removed of {}: more than an eighth",
            index.removed_count,
            index.entries.len()
        );
    }

    #[test]
    fn the_offset_index_agrees_with_an_ordered_map_through_pushes_and_removals() {
        let mut mix = Mix(0x9e37_79b9_7f4a_7c15);
        let mut index = ByOffset::default();
        let mut model = BTreeMap::new();
        let mut next = 0u64;
        for step in 0..STEPS {
            let roll = mix.below(100);
            if roll < 55 || model.is_empty() {
                // As in `apply`: each new offset above every one before, some skipped.
                next += 1 + mix.below(3);
                let recipient = IdentityId(mix.below(50));
                index.insert(next, recipient);
                model.insert(next, recipient);
            } else {
                // Any kept entry, old or new, or an offset that was never indexed.
                let offset = mix.below(next + 2);
                index.remove(offset);
                model.remove(&offset);
            }
            let probe = mix.below(next + 2);
            assert_eq!(
                index.get(probe),
                model.get(&probe).copied(),
                "offset {probe}"
            );
            if step % 1000 == 0 {
                check(&index, &model);
            }
        }
        check(&index, &model);
        // Emptied, it gives its memory back.
        let offsets: Vec<u64> = model.keys().copied().collect();
        for offset in offsets {
            index.remove(offset);
            model.remove(&offset);
        }
        check(&index, &model);
        assert!(index.entries.capacity() <= GROWTH_MIN_SLOTS_TWICE);
    }

    /// What an emptied index may keep: the shrink leaves [`growth::GROWTH_MIN_SLOTS`] and may
    /// skip a shrink below twice that.
    const GROWTH_MIN_SLOTS_TWICE: usize = 2 * growth::GROWTH_MIN_SLOTS;

    #[test]
    fn pushes_grow_the_offset_index_by_an_eighth() {
        let mut index = ByOffset::default();
        for offset in 0..20_000u64 {
            index.insert(offset * 3, IdentityId(offset % 100));
        }
        let len = index.entries.len();
        assert!(
            index.entries.capacity() <= len + len / GROWTH_DIVISOR,
            "capacity {} for {len} entries",
            index.entries.capacity()
        );
        assert_eq!(index.get(3 * 19_999), Some(IdentityId(99)));
        assert_eq!(index.get(1), None);
    }

    #[test]
    fn an_offset_below_the_last_is_inserted_in_order_and_revives_a_removed_entry() {
        let mut index = ByOffset::default();
        for offset in [10, 20, 30, 40] {
            index.insert(offset, IdentityId(offset));
        }
        index.remove(20);
        assert_eq!(index.get(20), None);
        index.insert(20, IdentityId(7));
        assert_eq!(index.get(20), Some(IdentityId(7)));
        index.insert(25, IdentityId(8));
        index.insert(5, IdentityId(9));
        let offsets: Vec<u64> = index.iter().map(|entry| entry.0).collect();
        assert_eq!(offsets, [5, 10, 20, 25, 30, 40]);
        index.insert(30, IdentityId(1));
        assert_eq!(index.get(30), Some(IdentityId(1)));
        assert_eq!(index.len(), 6);
    }

    #[test]
    fn indexes_with_the_same_entries_are_equal_whatever_they_removed() {
        let mut left = ByOffset::default();
        let mut right = ByOffset::default();
        for offset in 0..100 {
            left.insert(offset, IdentityId(1));
            if offset % 10 != 3 {
                right.insert(offset, IdentityId(1));
            }
        }
        assert_ne!(left, right);
        for offset in (0..100).filter(|offset| offset % 10 == 3) {
            left.remove(offset);
        }
        assert!(left.removed_count > 0, "removed entries are still held");
        assert_eq!(left, right);
        assert_eq!(
            ByOffset::from_entries(vec![(2, IdentityId(1)), (2, IdentityId(2))]),
            Err(2)
        );
    }
}
