//! How the message index's vector grows: by an eighth, not by doubling.
//!
//! A full `Vec` doubles its capacity, so up to half of it is slack. The message index holds an
//! entry per kept message ([`MessageIndex`](crate::state::MessageIndex)); [`reserve_vec`] grows
//! it by [`GROWTH_DIVISOR`]th of its length instead (at least [`GROWTH_MIN_SLOTS`]), so at most
//! an eighth of it is slack. Growth stays amortised O(1): a growth copies `len` elements and
//! comes after at least `len / GROWTH_DIVISOR` pushes, so each push pays for at most
//! `GROWTH_DIVISOR + 1` copies (a buffer that large is mapped by the allocator and moved by
//! `mremap`, not copied).
//!
//! Not for many small buffers growing side by side, such as the mailboxes' rings: each growth
//! frees the old buffer, and at an eighth the buffers freed add up to eight times the live one,
//! holes the allocator keeps (measured: `relay bench memory --messages 50000` went from 121-126
//! to 145 B beyond the body with the mailboxes' rings grown this way).

/// A full collection grows by its length divided by this: an eighth.
pub(crate) const GROWTH_DIVISOR: usize = 8;

/// A full collection grows by at least this many slots, so a small one does not grow one slot
/// at a time.
pub(crate) const GROWTH_MIN_SLOTS: usize = 4;

/// Slots to add to a full collection of `len` elements.
pub(crate) fn growth(len: usize) -> usize {
    (len / GROWTH_DIVISOR).max(GROWTH_MIN_SLOTS)
}

/// Makes room for one more element in `vec`, growing it by [`growth`] when it is full.
pub(crate) fn reserve_vec<T>(vec: &mut Vec<T>) {
    if vec.len() == vec.capacity() {
        vec.reserve_exact(growth(vec.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Elements pushed in the tests: past many growths of both kinds (minimum and eighth).
    const PUSHES: usize = 100_000;

    /// What a run of pushes did to a collection: its largest slack over its length, and how
    /// many times it grew.
    struct Run {
        worst_slack: usize,
        growths: usize,
    }

    fn run(mut push: impl FnMut(usize) -> (usize, usize)) -> Run {
        let mut worst_slack = 0;
        let mut growths = 0;
        let mut capacity = 0;
        for index in 0..PUSHES {
            let (len, now) = push(index);
            assert!(
                now >= len,
                "invariant: capacity holds the elements ({now} < {len})"
            );
            // After the push, the collection may hold at most the growth made for `len - 1`.
            let allowed = (len - 1) + growth(len - 1);
            assert!(
                now <= allowed.max(len),
                "capacity {now} at length {len}: more than an eighth of slack"
            );
            if now != capacity {
                growths += 1;
                capacity = now;
            }
            worst_slack = worst_slack.max(now - len);
        }
        Run {
            worst_slack,
            growths,
        }
    }

    /// Growths a collection of `PUSHES` elements may take under this policy: the steps of
    /// [`GROWTH_MIN_SLOTS`] up to `GROWTH_DIVISOR * GROWTH_MIN_SLOTS`, then one per factor of
    /// 9/8 (log base 1.125 of the rest), with room for the rounding of each step.
    fn growths_bound() -> usize {
        let small = GROWTH_DIVISOR;
        let from = (GROWTH_DIVISOR * GROWTH_MIN_SLOTS) as f64;
        let large = ((PUSHES as f64 / from).ln() / (1.125f64).ln()).ceil() as usize;
        small + large + large / 4 + 2
    }

    #[test]
    fn a_vec_grows_by_an_eighth_and_not_too_often() {
        let mut vec: Vec<u64> = Vec::new();
        let outcome = run(|index| {
            reserve_vec(&mut vec);
            vec.push(index as u64);
            (vec.len(), vec.capacity())
        });
        assert!(outcome.worst_slack <= PUSHES / GROWTH_DIVISOR);
        assert!(outcome.growths <= growths_bound(), "{}", outcome.growths);
    }
}
