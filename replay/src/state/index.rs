//! The message index: which mailbox holds the kept direct message with a given id.
//!
//! Nearly every message a hub stores has the id it chose, `m-<offset>` of the record that stored
//! it (see [`derived_offset`]); those are indexed by that offset, with the recipient, in one
//! word and no allocation, and the mailbox finds the message by offset. Every other id (another
//! hub's `m-42@a`, or any id a log holds) is indexed by its text with its location, as before.
//! An id is in at most one of the two maps: a lookup of `m-<n>` tries the offset map first, then
//! the text map.
//!
//! The offset map is [`ByOffset`], a vector in offset order searched by bisection (O(log n)):
//! `apply` stores a message with a derived id only while applying the record at that offset,
//! above every offset applied before, so each insertion is a push at the end. An entry is one
//! `u64`: the offset in its high [`OFFSET_BITS`] bits, in the low [`SLOT_BITS`] the recipient's
//! slot in a small table of the recipients that have entries (at most
//! [`IDENTITIES_MAX`](crate::limits::IDENTITIES_MAX) of them). A message whose offset or
//! recipient does not fit (an offset past 2^48, a 65,536th recipient: neither happens) is
//! indexed by its text instead, like any other id. A removal (read mail aging out, a mailbox
//! forgotten) marks the entry in a bit set, and the vector is compacted once an eighth of it is
//! marked. It grows by an eighth ([`growth`]): eight bytes and a bit per entry, with at most an
//! eighth of slack and an eighth of removed entries, where the hash map it replaces held sixteen
//! bytes and a control byte per bucket at a load between 7/16 and 7/8 (`relay bench memory`,
//! 20,000 messages: 162-164 B beyond the body with the hash map, 148-149 with a vector of
//! sixteen-byte entries).
//!
//! The index is derived from the mailboxes (every kept message, and only those) and is not
//! archived: a decoded snapshot rebuilds it ([`MessageIndex::rebuild`]). Its JSON, in
//! `relay replay --state`, is the map from id to location in id order it always was
//! ([`State::message_index_entries`](crate::State)).

use rustc_hash::FxHashMap;

use crate::limits::IDENTITIES_MAX;
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
    /// Every other message, and a derived one [`ByOffset`] cannot hold: by id, to its location.
    named: StringMap<MessageLocation>,
}

/// Bits of an entry of [`ByOffset`] that hold the offset: offsets below 2^48 fit.
pub(crate) const OFFSET_BITS: u32 = 48;

/// Bits of an entry of [`ByOffset`] that hold the recipient's slot: 65,536 recipients fit.
pub(crate) const SLOT_BITS: u32 = u64::BITS - OFFSET_BITS;

/// Recipients with entries at once, at most: every slot number fits [`SLOT_BITS`].
const SLOTS_MAX: usize = 1 << SLOT_BITS;

const _: () = assert!(
    IDENTITIES_MAX <= SLOTS_MAX,
    "every identity's mailbox has a slot"
);

/// Bits in a word of [`ByOffset::removed`].
const WORD_BITS: usize = u64::BITS as usize;

/// Offset to recipient, for the messages with derived ids: a vector in offset order with the
/// removed entries marked (see the [module](self) documentation).
#[derive(Clone, Debug, Default)]
pub(crate) struct ByOffset {
    /// `offset << SLOT_BITS | slot`, offsets strictly increasing, removed entries included.
    entries: Vec<u64>,
    /// Bit `i % 64` of word `i / 64` set: `entries[i]` is removed. Invariant: exactly
    /// `entries.len().div_ceil(64)` words, no bit set past the last entry.
    removed: Vec<u64>,
    /// Entries removed. Invariant: the bits set in `removed`, at most an eighth of `entries`
    /// ([`GROWTH_DIVISOR`]) after every removal.
    removed_count: usize,
    /// Each slot's recipient and its entries kept; a slot with none is free. Invariant: the
    /// counts are those of the kept entries, and a slot with a count is in `slot_of`.
    slots: Vec<(IdentityId, u32)>,
    /// The slot of each recipient with entries kept.
    slot_of: FxHashMap<IdentityId, u16>,
    /// Slots with no entry kept, to give again.
    free_slots: Vec<u16>,
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

    /// The offset of an entry.
    fn offset_of(entry: u64) -> u64 {
        entry >> SLOT_BITS
    }

    /// The recipient of an entry.
    fn recipient_of(&self, entry: u64) -> IdentityId {
        let slot = (entry & (SLOTS_MAX as u64 - 1)) as usize;
        self.slots[slot].0
    }

    /// The index of the entry for `offset`, removed or not.
    fn search(&self, offset: u64) -> Result<usize, usize> {
        self.entries
            .binary_search_by_key(&offset, |entry| Self::offset_of(*entry))
    }

    /// The recipient of the message at `offset`. O(log n).
    pub(crate) fn get(&self, offset: u64) -> Option<IdentityId> {
        let index = self.search(offset).ok()?;
        (!self.is_removed(index)).then(|| self.recipient_of(self.entries[index]))
    }

    /// A slot of `recipient` for one more entry: its own, or a new one; `None` when every
    /// slot is taken (no state `apply` builds has that many recipients).
    fn take_slot(&mut self, recipient: IdentityId) -> Option<u16> {
        let slot = match self.slot_of.get(&recipient) {
            Some(slot) => *slot,
            None => {
                let slot = match self.free_slots.pop() {
                    Some(slot) => slot,
                    None if self.slots.len() < SLOTS_MAX => {
                        self.slots.push((recipient, 0));
                        u16::try_from(self.slots.len() - 1).ok()?
                    }
                    None => return None,
                };
                self.slots[usize::from(slot)] = (recipient, 0);
                self.slot_of.insert(recipient, slot);
                slot
            }
        };
        self.slots[usize::from(slot)].1 += 1;
        Some(slot)
    }

    /// Gives back the slot of one entry that is no longer kept.
    fn release_slot(&mut self, entry: u64) {
        let slot = (entry & (SLOTS_MAX as u64 - 1)) as u16;
        let (recipient, count) = &mut self.slots[usize::from(slot)];
        *count -= 1;
        if *count == 0 {
            self.slot_of.remove(recipient);
            self.free_slots.push(slot);
        }
    }

    /// Indexes the message at `offset` in `recipient`'s mailbox (replacing an entry for the
    /// same offset); false, indexing nothing, when the offset or the recipient does not fit an
    /// entry (see the [module](self) documentation). Amortised O(1) when `offset` is above
    /// every offset indexed, as in `apply`; O(n) otherwise.
    pub(crate) fn insert(&mut self, offset: u64, recipient: IdentityId) -> bool {
        if offset >> OFFSET_BITS != 0 {
            return false;
        }
        if let Ok(index) = self.search(offset)
            && !self.is_removed(index)
        {
            // Replaced: its slot's count moves to the new recipient's.
            self.release_slot(self.entries[index]);
            self.set_removed(index, true);
            self.removed_count += 1;
        }
        let Some(slot) = self.take_slot(recipient) else {
            return false;
        };
        let entry = offset << SLOT_BITS | u64::from(slot);
        if self
            .entries
            .last()
            .is_some_and(|last| Self::offset_of(*last) >= offset)
        {
            self.insert_within(offset, entry);
            return true;
        }
        growth::reserve_vec(&mut self.entries);
        self.entries.push(entry);
        if self.entries.len() > self.removed.len() * WORD_BITS {
            self.removed.push(0);
        }
        true
    }

    /// Stores `entry`, for an offset at or below the last one: never from `apply` (see the
    /// [module](self) documentation), so it may cost O(n).
    fn insert_within(&mut self, offset: u64, entry: u64) {
        if let Ok(index) = self.search(offset) {
            // Removed (a kept one was just marked so by `insert`): revived.
            self.entries[index] = entry;
            self.set_removed(index, false);
            self.removed_count -= 1;
            return;
        }
        self.compact();
        if let Err(index) = self.search(offset) {
            self.entries.insert(index, entry);
            self.removed
                .resize(self.entries.len().div_ceil(WORD_BITS), 0);
        }
    }

    /// Forgets the entry for `offset`, if kept; compacts once an eighth of the entries are
    /// removed, so a removal costs amortised O(1) beside its O(log n) search. Returns whether
    /// there was one.
    pub(crate) fn remove(&mut self, offset: u64) -> bool {
        let Ok(index) = self.search(offset) else {
            return false;
        };
        if self.is_removed(index) {
            return false;
        }
        self.release_slot(self.entries[index]);
        self.set_removed(index, true);
        self.removed_count += 1;
        if self.removed_count * GROWTH_DIVISOR > self.entries.len() {
            self.compact();
        }
        true
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

    /// Every entry kept, `(offset, recipient)` in offset order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, IdentityId)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(index, _)| !self.is_removed(*index))
            .map(|(_, entry)| (Self::offset_of(*entry), self.recipient_of(*entry)))
    }
}

/// Equal when the same entries are kept, whatever removed ones each still holds and whichever
/// slots they use.
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
        if message.has_derived_id() && self.derived.insert(message.offset(), recipient) {
            return;
        }
        let location = MessageLocation {
            recipient,
            sequence: message.sequence(),
        };
        self.named.insert(message.id().into_owned(), location);
    }

    /// Forgets `message` (no longer kept).
    pub(crate) fn remove(&mut self, message: &StoredMessage) {
        if message.has_derived_id() && self.derived.remove(message.offset()) {
            return;
        }
        self.named.remove(message.id().as_ref());
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
    /// once, then pushed in order.
    ///
    /// # Errors
    ///
    /// Why the mailboxes cannot be indexed: two kept messages with one id, or a mailbox whose
    /// messages are not in offset order (no state `apply` builds has either).
    pub(crate) fn rebuild<'a>(
        mailboxes: impl Iterator<Item = (&'a IdentityId, &'a Mailbox)>,
    ) -> Result<MessageIndex, String> {
        let duplicate = |id: &str| format!("two kept messages have the id {id:?}");
        let mut derived: Vec<(u64, MessageLocation)> = Vec::new();
        let mut index = MessageIndex::default();
        for (recipient, mailbox) in mailboxes {
            if !mailbox.in_offset_order() {
                return Err(format!(
                    "the mailbox of identity {} is not in offset order",
                    recipient.0
                ));
            }
            for message in mailbox.messages() {
                let location = MessageLocation {
                    recipient: *recipient,
                    sequence: message.sequence(),
                };
                if message.has_derived_id() {
                    derived.push((message.offset(), location));
                    continue;
                }
                let id = message.id().into_owned();
                if index.named.contains_key(&id) {
                    return Err(duplicate(&id));
                }
                index.named.insert(id, location);
            }
        }
        derived.sort_unstable_by_key(|entry| entry.0);
        if let Some(pair) = derived.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(duplicate(&format!("m-{}", pair[0].0)));
        }
        // A stored id that reads as a message's derived one is a duplicate of it. Checked from
        // the stored ids (few) so that no derived id is formatted only to be looked up.
        for id in index.named.keys() {
            if let Some(offset) = derived_offset(id)
                && derived
                    .binary_search_by_key(&offset, |entry| entry.0)
                    .is_ok()
            {
                return Err(duplicate(id));
            }
        }
        for (offset, location) in derived {
            if !index.derived.insert(offset, location.recipient) {
                index.named.insert(format!("m-{offset}"), location);
            }
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::state::mix::Mix;

    /// Operations of the model test.
    const STEPS: usize = 50_000;

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
        let mut kept: BTreeMap<IdentityId, u32> = BTreeMap::new();
        for recipient in model.values() {
            *kept.entry(*recipient).or_default() += 1;
        }
        let counted: BTreeMap<IdentityId, u32> = index
            .slots
            .iter()
            .filter(|(_, count)| *count > 0)
            .map(|(recipient, count)| (*recipient, *count))
            .collect();
        assert_eq!(counted, kept, "each slot counts its recipient's entries");
        assert_eq!(index.slot_of.len(), kept.len());
        for (recipient, slot) in &index.slot_of {
            assert_eq!(index.slots[usize::from(*slot)].0, *recipient);
        }
        assert_eq!(
            index.slot_of.len() + index.free_slots.len(),
            index.slots.len()
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
                assert!(index.insert(next, recipient));
                model.insert(next, recipient);
            } else {
                // Any kept entry, old or new, or an offset that was never indexed.
                let offset = mix.below(next + 2);
                assert_eq!(index.remove(offset), model.remove(&offset).is_some());
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
            assert!(index.remove(offset));
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
        let mut model = BTreeMap::new();
        for offset in [10, 20, 30, 40] {
            assert!(index.insert(offset, IdentityId(offset)));
            model.insert(offset, IdentityId(offset));
        }
        assert!(index.remove(20));
        model.remove(&20);
        assert_eq!(index.get(20), None);
        for (offset, recipient) in [(20, 7), (25, 8), (5, 9), (30, 1)] {
            assert!(index.insert(offset, IdentityId(recipient)));
            model.insert(offset, IdentityId(recipient));
        }
        assert_eq!(index.get(20), Some(IdentityId(7)));
        assert_eq!(index.get(30), Some(IdentityId(1)));
        check(&index, &model);
    }

    #[test]
    fn indexes_with_the_same_entries_are_equal_whatever_they_removed() {
        let mut left = ByOffset::default();
        let mut right = ByOffset::default();
        for offset in 0..100 {
            left.insert(offset, IdentityId(offset % 3));
            if offset % 10 != 3 {
                right.insert(offset, IdentityId(offset % 3));
            }
        }
        assert_ne!(left, right);
        for offset in (0..100).filter(|offset| offset % 10 == 3) {
            left.remove(offset);
        }
        assert!(left.removed_count > 0, "removed entries are still held");
        assert_eq!(left, right);
    }

    #[test]
    fn a_recipients_slot_is_given_back_with_its_last_entry_and_given_again() {
        let mut index = ByOffset::default();
        index.insert(1, IdentityId(100));
        index.insert(2, IdentityId(200));
        index.insert(3, IdentityId(100));
        index.remove(1);
        index.remove(3);
        assert_eq!(index.slot_of.get(&IdentityId(100)), None, "no entry left");
        index.insert(4, IdentityId(300));
        assert_eq!(index.slots.len(), 2, "the free slot is taken again");
        assert_eq!(index.get(2), Some(IdentityId(200)));
        assert_eq!(index.get(4), Some(IdentityId(300)));
        assert_eq!(index.get(3), None);
    }

    /// A queued message stored by the record at `offset` with the id `id`.
    fn message(id: &str, offset: u64) -> StoredMessage {
        let new = crate::state::mailbox::NewMessage {
            id,
            offset,
            timestamp_us: 0,
            body: "hello",
            reply_to: None,
            ask_id: None,
            broadcast_id: None,
            thread: None,
            urgent: false,
            is_reply: false,
            late: false,
            timed_out_ask: None,
        };
        StoredMessage::new(&new, crate::state::SharedName::new(IdentityId(1), "alice"))
    }

    #[test]
    fn a_derived_id_whose_offset_does_not_fit_an_entry_is_indexed_by_its_text() {
        let past = 1u64 << OFFSET_BITS;
        let mut index = MessageIndex::default();
        let (small, large) = (message("m-7", 7), message(&format!("m-{past}"), past));
        assert!(small.has_derived_id() && large.has_derived_id());
        index.insert(&small, IdentityId(2));
        index.insert(&large, IdentityId(3));
        assert_eq!(index.derived.len(), 1);
        assert_eq!(index.named.len(), 1);
        assert_eq!(
            index.get("m-7").map(Located::recipient),
            Some(IdentityId(2))
        );
        let found = index.get(&format!("m-{past}"));
        assert!(
            matches!(found, Some(Located::Named(location)) if location.recipient == IdentityId(3)),
            "{found:?}"
        );
        assert_eq!(index.len(), 2);
        index.remove(&large);
        index.remove(&small);
        assert_eq!(index.len(), 0);
        assert_eq!(index, MessageIndex::default());
    }

    #[test]
    fn a_rebuild_refuses_a_stored_id_that_reads_as_another_message_s_derived_one() {
        let mut first = Mailbox::default();
        first.push(message("m-5", 5));
        first.push(message("m-9", 9));
        let mut second = Mailbox::default();
        second.push(message("other", 7));
        let ids = [IdentityId(1), IdentityId(2)];
        let rebuilt =
            MessageIndex::rebuild(ids.iter().zip([&first, &second])).expect("distinct ids index");
        assert_eq!(rebuilt.len(), 3);
        assert_eq!(rebuilt.get("m-9").map(Located::recipient), Some(ids[0]));
        assert_eq!(rebuilt.get("other").map(Located::recipient), Some(ids[1]));

        // Stored by the record at 8, with the id the record at 5 derives: one id, two messages.
        let mut clash = Mailbox::default();
        clash.push(message("m-5", 8));
        assert!(!clash.messages().any(StoredMessage::has_derived_id));
        let refused = MessageIndex::rebuild(ids.iter().zip([&first, &clash]));
        assert_eq!(
            refused.err().as_deref(),
            Some("two kept messages have the id \"m-5\"")
        );
    }
}
