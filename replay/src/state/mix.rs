//! A small deterministic generator for the state's model tests (xorshift64*): reproducible
//! mixes of operations without a dependency.

/// xorshift64*, seeded with a nonzero word.
pub(crate) struct Mix(pub(crate) u64);

impl Mix {
    /// The next value below `bound` (0 when `bound` is 0).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }
}
