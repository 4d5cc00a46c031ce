//! A token bucket per session, so two agents answering each other in a loop cannot flood
//! the hub or each other. Time is passed in, so the bucket is tested without sleeping.

use std::time::{Duration, Instant};

/// Rate settings: `per_second` tokens refilled, at most `burst` stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateConfig {
    /// Tokens added per second.
    pub per_second: u32,
    /// Bucket size. Invariant: at least 1.
    pub burst: u32,
}

/// One session's bucket.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    config: RateConfig,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(config: RateConfig, now: Instant) -> Self {
        TokenBucket {
            config,
            tokens: f64::from(config.burst.max(1)),
            refilled_at: now,
        }
    }

    /// Takes `cost` tokens if there are enough; otherwise says how long until there are.
    pub fn take(&mut self, cost: u32, now: Instant) -> Result<(), Duration> {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        let burst = f64::from(self.config.burst.max(1));
        self.tokens = (self.tokens + elapsed * f64::from(self.config.per_second)).min(burst);
        self.refilled_at = now;
        let cost = f64::from(cost).min(burst);
        if self.tokens >= cost {
            self.tokens -= cost;
            return Ok(());
        }
        let missing = cost - self.tokens;
        let per_second = f64::from(self.config.per_second.max(1));
        Err(Duration::from_secs_f64(missing / per_second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_next_send_waits_for_a_refill() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(
            RateConfig {
                per_second: 10,
                burst: 3,
            },
            start,
        );
        for _ in 0..3 {
            assert_eq!(bucket.take(1, start), Ok(()));
        }
        let wait = bucket
            .take(1, start)
            .expect_err("the fourth send is over the burst");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100));
        assert_eq!(bucket.take(1, start + Duration::from_millis(100)), Ok(()));
    }

    #[test]
    fn a_long_pause_refills_only_up_to_the_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(
            RateConfig {
                per_second: 100,
                burst: 2,
            },
            start,
        );
        let later = start + Duration::from_secs(60);
        assert_eq!(bucket.take(1, later), Ok(()));
        assert_eq!(bucket.take(1, later), Ok(()));
        assert!(bucket.take(1, later).is_err());
    }
}
