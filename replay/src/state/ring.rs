//! [`Ring`]: a mailbox's messages, in blocks of [`RING_BLOCK_SLOTS`] instead of one buffer.
//!
//! A `VecDeque` that is full moves everything into a buffer twice the size and frees the old
//! one: up to half of it is slack, and a hundred mailboxes growing side by side leave the
//! allocator holes of every size they passed through (growing by less than double makes the
//! holes worse: see [`growth`](crate::state::growth)). A [`Ring`] holds its elements in blocks
//! of [`RING_BLOCK_SLOTS`] (a ring's first block starts at [`RING_FIRST_BLOCK_SLOTS`] and grows
//! to that), so a growth allocates one more block and moves nothing: the slack is at most one
//! block per mailbox, and a block a mailbox frees fits the next block any mailbox needs.
//!
//! The blocks are in order; every block but the first and the last is full, so the element at
//! an index is found in O(1) (the first block's length, then a division). Removing at the
//! front shifts the first block only (at most [`RING_BLOCK_SLOTS`] elements); removing in the
//! middle shifts one element per block between it and the nearer end.
//!
//! It is a sequence like the `VecDeque` it replaces: equal when the elements are (however they
//! fall into blocks), serialized as a JSON array, archived as rkyv's `ArchivedVec` of its
//! elements (exactly the bytes a `VecDeque` archives to), decoded by pushing each element.

use std::collections::VecDeque;
use std::collections::vec_deque;
use std::fmt;
use std::iter::Flatten;
use std::ops::{Index, IndexMut};

use rkyv::rancor::Fallible;
use rkyv::ser::{Allocator, Writer};
use rkyv::vec::{ArchivedVec, VecResolver};
use rkyv::{Archive, Deserialize, Place, Serialize};

/// Elements per block of a [`Ring`]. A power of two, so a block that grows by doubling from
/// [`RING_FIRST_BLOCK_SLOTS`] reaches it exactly.
pub(crate) const RING_BLOCK_SLOTS: usize = 16;

/// Slots of a ring's first block when it is made: a mailbox with a message or two does not
/// hold a whole block. The block doubles up to [`RING_BLOCK_SLOTS`] as it fills.
pub(crate) const RING_FIRST_BLOCK_SLOTS: usize = 4;

const _: () =
    assert!(RING_BLOCK_SLOTS.is_power_of_two() && RING_FIRST_BLOCK_SLOTS.is_power_of_two());
const _: () = assert!(RING_FIRST_BLOCK_SLOTS <= RING_BLOCK_SLOTS);

/// A double-ended sequence in fixed-size blocks (see the [module](self) documentation).
pub struct Ring<T> {
    /// The elements, in order. Invariant: no block is empty, none holds more than
    /// [`RING_BLOCK_SLOTS`], and every block but the first and the last holds exactly that.
    blocks: VecDeque<Vec<T>>,
    /// Elements held. Invariant: the sum of the blocks' lengths.
    len: usize,
}

impl<T> Default for Ring<T> {
    fn default() -> Ring<T> {
        Ring {
            blocks: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> Ring<T> {
    /// Elements held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no element is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The block and the slot in it of the element at `index`, if there is one.
    fn locate(&self, index: usize) -> Option<(usize, usize)> {
        if index >= self.len {
            return None;
        }
        let first = self.blocks.front().map_or(0, Vec::len);
        if index < first {
            return Some((0, index));
        }
        let rest = index - first;
        Some((1 + rest / RING_BLOCK_SLOTS, rest % RING_BLOCK_SLOTS))
    }

    /// The element at `index`.
    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        let (block, slot) = self.locate(index)?;
        self.blocks.get(block)?.get(slot)
    }

    /// The element at `index`, to change.
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        let (block, slot) = self.locate(index)?;
        self.blocks.get_mut(block)?.get_mut(slot)
    }

    /// The first element.
    pub(crate) fn front(&self) -> Option<&T> {
        self.blocks.front().and_then(|block| block.first())
    }

    /// Appends `value`: into the last block while it has room (growing the first block by
    /// doubling up to [`RING_BLOCK_SLOTS`]), else into a new block. Moves no element.
    pub(crate) fn push_back(&mut self, value: T) {
        match self.blocks.back_mut() {
            Some(last) if last.len() < RING_BLOCK_SLOTS => {
                if last.len() == last.capacity() {
                    let room = last.capacity().clamp(1, RING_BLOCK_SLOTS - last.len());
                    last.reserve_exact(room);
                }
                last.push(value);
            }
            _ => {
                let slots = if self.blocks.is_empty() {
                    RING_FIRST_BLOCK_SLOTS
                } else {
                    RING_BLOCK_SLOTS
                };
                let mut block = Vec::with_capacity(slots);
                block.push(value);
                self.blocks.push_back(block);
            }
        }
        self.len += 1;
    }

    /// Removes and returns the element at `index`, shifting the elements between it and the
    /// nearer end of the ring by one (within its block, then one element per block passed).
    pub(crate) fn remove(&mut self, index: usize) -> Option<T> {
        let (block, slot) = self.locate(index)?;
        let last = self.blocks.len() - 1;
        let removed = self.blocks.get_mut(block)?.remove(slot);
        if block <= last - block {
            // Toward the front: each block before takes its last element into the next one.
            for at in (1..=block).rev() {
                if let Some(moved) = self.blocks.get_mut(at - 1).and_then(Vec::pop)
                    && let Some(next) = self.blocks.get_mut(at)
                {
                    next.insert(0, moved);
                }
            }
            if self.blocks.front().is_some_and(Vec::is_empty) {
                self.blocks.pop_front();
            }
        } else {
            // Toward the back: each block after gives its first element to the one before.
            for at in block..last {
                if let Some(next) = self.blocks.get_mut(at + 1) {
                    let moved = next.remove(0);
                    if let Some(here) = self.blocks.get_mut(at) {
                        here.push(moved);
                    }
                }
            }
            if self.blocks.back().is_some_and(Vec::is_empty) {
                self.blocks.pop_back();
            }
        }
        self.len -= 1;
        Some(removed)
    }

    /// Every element, in order.
    pub(crate) fn iter(&self) -> Iter<'_, T> {
        self.iter_from(0)
    }

    /// The elements from `index` on, in order; found in O(1), not by walking the ones before.
    pub(crate) fn iter_from(&self, index: usize) -> Iter<'_, T> {
        let Some((block, slot)) = self.locate(index) else {
            return Counted {
                inner: [].iter().chain(self.blocks.range(0..0).flatten()),
                remaining: 0,
            };
        };
        Counted {
            inner: self.blocks[block][slot..]
                .iter()
                .chain(self.blocks.range(block + 1..).flatten()),
            remaining: self.len - index,
        }
    }

    /// Every element, in order, to change.
    pub(crate) fn iter_mut(&mut self) -> IterMut<'_, T> {
        self.iter_mut_from(0)
    }

    /// The elements from `index` on, in order, to change (see [`Ring::iter_from`]).
    pub(crate) fn iter_mut_from(&mut self, index: usize) -> IterMut<'_, T> {
        let Some((block, slot)) = self.locate(index) else {
            return Counted {
                inner: [].iter_mut().chain(self.blocks.range_mut(0..0).flatten()),
                remaining: 0,
            };
        };
        let remaining = self.len - index;
        let mut blocks = self.blocks.range_mut(block..);
        let front = match blocks.next() {
            Some(first) => first[slot..].iter_mut(),
            None => [].iter_mut(),
        };
        Counted {
            inner: front.chain(blocks.flatten()),
            remaining,
        }
    }

    /// The number of leading elements for which `before` holds, the elements being
    /// partitioned by it (all that hold first), found by bisection: O(log n).
    pub(crate) fn partition_point(&self, mut before: impl FnMut(&T) -> bool) -> usize {
        let (mut low, mut high) = (0, self.len);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.get(middle).is_some_and(&mut before) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }

    /// The index of the element whose key is `key`, the elements being sorted by key, found
    /// by bisection: O(log n).
    pub(crate) fn binary_search_by_key<K: Ord>(
        &self,
        key: &K,
        mut key_of: impl FnMut(&T) -> K,
    ) -> Option<usize> {
        let index = self.partition_point(|element| key_of(element) < *key);
        self.get(index)
            .is_some_and(|element| key_of(element) == *key)
            .then_some(index)
    }
}

impl<T> Index<usize> for Ring<T> {
    type Output = T;

    /// The element at `index`; panics past the end, like a slice.
    fn index(&self, index: usize) -> &T {
        match self.locate(index) {
            Some((block, slot)) => &self.blocks[block][slot],
            None => panic!("index {index} past the end of a ring of {}", self.len),
        }
    }
}

impl<T> IndexMut<usize> for Ring<T> {
    /// The element at `index`, to change; panics past the end, like a slice.
    fn index_mut(&mut self, index: usize) -> &mut T {
        let len = self.len;
        match self.locate(index) {
            Some((block, slot)) => &mut self.blocks[block][slot],
            None => panic!("index {index} past the end of a ring of {len}"),
        }
    }
}

impl<T: Clone> Clone for Ring<T> {
    /// The same elements, in blocks laid out as pushes would lay them.
    fn clone(&self) -> Ring<T> {
        self.iter().cloned().collect()
    }
}

impl<T> FromIterator<T> for Ring<T> {
    fn from_iter<I: IntoIterator<Item = T>>(elements: I) -> Ring<T> {
        let mut ring = Ring::default();
        for element in elements {
            ring.push_back(element);
        }
        ring
    }
}

impl<T: PartialEq> PartialEq for Ring<T> {
    /// Equal elements in the same order, however they fall into blocks.
    fn eq(&self, other: &Ring<T>) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T: Eq> Eq for Ring<T> {}

impl<T: fmt::Debug> fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: serde::Serialize> serde::Serialize for Ring<T> {
    /// A JSON array of the elements, as a `VecDeque`'s.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<T: Archive> Archive for Ring<T> {
    type Archived = ArchivedVec<T::Archived>;
    type Resolver = VecResolver;

    fn resolve(&self, resolver: Self::Resolver, out: Place<Self::Archived>) {
        ArchivedVec::resolve_from_len(self.len, resolver, out);
    }
}

impl<T, S> Serialize<S> for Ring<T>
where
    T: Serialize<S>,
    S: Fallible + Allocator + Writer + ?Sized,
{
    fn serialize(&self, serializer: &mut S) -> Result<Self::Resolver, S::Error> {
        ArchivedVec::<T::Archived>::serialize_from_iter::<T, _, _>(self.iter(), serializer)
    }
}

impl<T, D> Deserialize<Ring<T>, D> for ArchivedVec<T::Archived>
where
    T: Archive,
    T::Archived: Deserialize<T, D>,
    D: Fallible + ?Sized,
{
    fn deserialize(&self, deserializer: &mut D) -> Result<Ring<T>, D::Error> {
        let mut ring = Ring::default();
        for element in self.iter() {
            ring.push_back(element.deserialize(deserializer)?);
        }
        Ok(ring)
    }
}

/// The elements of a [`Ring`] in order, from either end: the rest of the first block, then
/// the blocks after it.
pub(crate) type Iter<'a, T> =
    Counted<std::iter::Chain<std::slice::Iter<'a, T>, Flatten<vec_deque::Iter<'a, Vec<T>>>>>;

/// The elements of a [`Ring`] in order, to change (as [`Iter`]).
pub(crate) type IterMut<'a, T> =
    Counted<std::iter::Chain<std::slice::IterMut<'a, T>, Flatten<vec_deque::IterMut<'a, Vec<T>>>>>;

/// An iterator that knows how many elements it has left, so that it is exact-size (std's
/// `Flatten` cannot know).
#[derive(Clone)]
pub(crate) struct Counted<I> {
    inner: I,
    /// Elements not yet returned. Invariant: what `inner` still yields.
    remaining: usize,
}

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let element = self.inner.next()?;
        self.remaining -= 1;
        Some(element)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<I: DoubleEndedIterator> DoubleEndedIterator for Counted<I> {
    fn next_back(&mut self) -> Option<I::Item> {
        let element = self.inner.next_back()?;
        self.remaining -= 1;
        Some(element)
    }
}

impl<I: Iterator> ExactSizeIterator for Counted<I> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::mix::Mix;

    /// Operations of the model test.
    const STEPS: usize = 20_000;

    /// Checks the ring's invariants and that it holds what `model` does.
    fn check(ring: &Ring<u64>, model: &VecDeque<u64>) {
        assert_eq!(ring.len(), model.len());
        assert!(ring.iter().eq(model.iter()), "the elements, in order");
        assert!(ring.iter().rev().eq(model.iter().rev()), "from the back");
        assert_eq!(ring.blocks.iter().map(Vec::len).sum::<usize>(), ring.len);
        let last = ring.blocks.len().saturating_sub(1);
        for (at, block) in ring.blocks.iter().enumerate() {
            assert!(!block.is_empty(), "block {at} is empty");
            assert!(block.len() <= RING_BLOCK_SLOTS && block.capacity() <= RING_BLOCK_SLOTS);
            if at != 0 && at != last {
                assert_eq!(
                    block.len(),
                    RING_BLOCK_SLOTS,
                    "inner block {at} is not full"
                );
            }
        }
        // Slack: at most the last block's free slots and the first block's removed ones.
        let slots: usize = ring.blocks.iter().map(Vec::capacity).sum();
        assert!(
            slots < ring.len + 2 * RING_BLOCK_SLOTS,
            "{slots} slots for {} elements",
            ring.len
        );
    }

    #[test]
    fn a_ring_agrees_with_a_deque_through_pushes_and_removals_anywhere() {
        let mut mix = Mix(0x9e37_79b9_7f4a_7c15);
        let mut ring = Ring::default();
        let mut model = VecDeque::new();
        for step in 0..STEPS as u64 {
            match mix.below(10) {
                0..=5 => {
                    ring.push_back(step);
                    model.push_back(step);
                }
                6 | 7 => {
                    assert_eq!(ring.remove(0), model.pop_front());
                }
                _ => {
                    let index = mix.below(model.len() as u64 + 1) as usize;
                    assert_eq!(ring.remove(index), model.remove(index), "remove {index}");
                }
            }
            let probe = mix.below(model.len() as u64 + 2) as usize;
            assert_eq!(ring.get(probe), model.get(probe));
            let from = mix.below(model.len() as u64 + 2) as usize;
            assert!(
                ring.iter_from(from).eq(model.iter().skip(from)),
                "from {from}"
            );
            assert_eq!(ring.iter_from(from).len(), model.len().saturating_sub(from));
            if step % 97 == 0 {
                check(&ring, &model);
            }
        }
        check(&ring, &model);
        while let Some(front) = model.pop_front() {
            assert_eq!(ring.remove(0), Some(front));
        }
        assert!(ring.blocks.is_empty(), "an empty ring holds no block");
    }

    #[test]
    fn a_growing_ring_moves_nothing_and_keeps_little_slack() {
        let mut ring = Ring::default();
        ring.push_back(0u64);
        assert_eq!(ring.blocks[0].capacity(), RING_FIRST_BLOCK_SLOTS);
        let first_block = ring.blocks[0].as_ptr();
        for value in 1..RING_BLOCK_SLOTS as u64 {
            ring.push_back(value);
        }
        let grown = ring.blocks[0].as_ptr();
        for value in RING_BLOCK_SLOTS as u64..10_000 {
            ring.push_back(value);
            assert_eq!(ring.blocks[0].as_ptr(), grown, "a full block never moves");
        }
        assert!(first_block == grown || RING_FIRST_BLOCK_SLOTS < RING_BLOCK_SLOTS);
        let slots: usize = ring.blocks.iter().map(Vec::capacity).sum();
        assert!(slots < 10_000 + RING_BLOCK_SLOTS, "{slots} slots");
        assert_eq!(ring.partition_point(|value| *value < 4_321), 4_321);
        assert_eq!(ring.binary_search_by_key(&777, |value| *value), Some(777));
        assert_eq!(ring.binary_search_by_key(&10_001, |value| *value), None);
    }

    #[test]
    fn rings_with_the_same_elements_are_equal_and_archive_like_a_deque() {
        let mut trimmed: Ring<u64> = (0..100).collect();
        for _ in 0..7 {
            trimmed.remove(0);
        }
        trimmed.remove(50);
        let plain: Ring<u64> = (7..100).filter(|value| *value != 57).collect();
        assert_ne!(
            trimmed.blocks[0].len(),
            plain.blocks[0].len(),
            "laid out otherwise"
        );
        assert_eq!(trimmed, plain);
        assert_eq!(trimmed.clone(), plain);
        let deque: VecDeque<u64> = plain.iter().copied().collect();
        let ring_bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&trimmed).map(|b| b.to_vec());
        let deque_bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&deque).map(|b| b.to_vec());
        assert_eq!(
            ring_bytes.ok(),
            deque_bytes.ok(),
            "the bytes of a deque's archive"
        );
        assert_eq!(
            serde_json::to_string(&trimmed).ok(),
            serde_json::to_string(&deque).ok()
        );
    }
}
