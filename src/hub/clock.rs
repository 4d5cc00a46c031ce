//! Record timestamps: monotonic even when the wall clock is not, and a warning when the wall
//! clock jumps.
//!
//! The core stamps every record with the wall clock, but never below the last record's
//! timestamp (`relay replay --until TIME` stops at the first record stamped later). A wall
//! clock that goes back therefore pins every later timestamp to the last one until it catches
//! up, and one that jumps forward pins them there when it is set back. Neither loses data, but
//! an operator should hear of it: [`RecordClock`] compares the wall clock with the monotonic
//! clock between two records and reports a jump past [`super::limits::CLOCK_JUMP_WARN`] once
//! per episode. At start it can only compare with the last record in the log.

use std::time::{Duration, Instant};

/// What [`RecordClock::stamp`] noticed, for the core to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockEvent {
    /// The wall clock is behind the last record's timestamp by this much: records are stamped
    /// with the last timestamp until it catches up.
    Behind(Duration),
    /// The wall clock moved this much further than the monotonic clock since the last record.
    JumpedForward(Duration),
    /// The wall clock caught up with the last record again after being behind.
    CaughtUp,
}

/// Hands out record timestamps; see the file's doc.
#[derive(Debug)]
pub struct RecordClock {
    /// Timestamp of the last record, in microseconds since the epoch.
    last_us: u64,
    /// Wall and monotonic time of the last stamp, to tell a jump from time passing.
    reference: Option<(u64, Instant)>,
    /// True while the wall clock is behind `last_us` by more than the bound (one warning).
    behind: bool,
    bound: Duration,
}

impl RecordClock {
    /// A clock continuing from the log's last record (`last_us`, 0 for an empty log).
    pub fn new(last_us: u64, bound: Duration) -> RecordClock {
        RecordClock {
            last_us,
            reference: None,
            behind: false,
            bound,
        }
    }

    /// Timestamp of the last record stamped.
    pub fn last_us(&self) -> u64 {
        self.last_us
    }

    /// The timestamp for a record made at wall time `wall_us` and monotonic time `now`, never
    /// below the last one, and what to warn about.
    pub fn stamp(&mut self, wall_us: u64, now: Instant) -> (u64, Option<ClockEvent>) {
        let bound_us = u64::try_from(self.bound.as_micros()).unwrap_or(u64::MAX);
        let mut event = None;
        if let Some((reference_wall_us, reference_at)) = self.reference {
            let elapsed_us =
                u64::try_from(now.duration_since(reference_at).as_micros()).unwrap_or(u64::MAX);
            let wall_moved_us = wall_us.saturating_sub(reference_wall_us);
            let jump_us = wall_moved_us.saturating_sub(elapsed_us);
            if jump_us > bound_us {
                event = Some(ClockEvent::JumpedForward(Duration::from_micros(jump_us)));
            }
        }
        let behind_us = self.last_us.saturating_sub(wall_us);
        if behind_us > bound_us && !self.behind {
            self.behind = true;
            event = Some(ClockEvent::Behind(Duration::from_micros(behind_us)));
        } else if behind_us == 0 && self.behind {
            self.behind = false;
            event = event.or(Some(ClockEvent::CaughtUp));
        }
        self.reference = Some((wall_us, now));
        self.last_us = self.last_us.max(wall_us);
        (self.last_us, event)
    }

    /// Logs `event` at `warn` (a jump or a clock behind) or `info` (caught up).
    pub fn log(event: ClockEvent) {
        match event {
            ClockEvent::Behind(by) => tracing::warn!(
                behind_ms = by.as_millis() as u64,
                "the wall clock is behind the last record; records keep its timestamp until the clock catches up"
            ),
            ClockEvent::JumpedForward(by) => tracing::warn!(
                jump_ms = by.as_millis() as u64,
                "the wall clock jumped forward; later records are stamped from the new time"
            ),
            ClockEvent::CaughtUp => tracing::info!("the wall clock caught up with the last record"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_secs(300);
    const SECOND_US: u64 = 1_000_000;

    #[test]
    fn a_clock_behind_the_log_by_more_than_the_bound_warns_once_and_stays_monotonic() {
        let start = Instant::now();
        let mut clock = RecordClock::new(1_000 * SECOND_US, BOUND);
        // 301 s behind: warned, stamped with the last timestamp.
        let (stamp, event) = clock.stamp(699 * SECOND_US, start);
        assert_eq!(stamp, 1_000 * SECOND_US);
        assert_eq!(event, Some(ClockEvent::Behind(Duration::from_secs(301))));
        let (stamp, event) = clock.stamp(700 * SECOND_US, start + Duration::from_secs(1));
        assert_eq!(
            (stamp, event),
            (1_000 * SECOND_US, None),
            "one warning per episode"
        );
        // 301 s of wall time in 1 s is a jump of 300 s: at the bound, not past it.
        let (stamp, event) = clock.stamp(1_001 * SECOND_US, start + Duration::from_secs(2));
        assert_eq!(
            (stamp, event),
            (1_001 * SECOND_US, Some(ClockEvent::CaughtUp))
        );
    }

    #[test]
    fn a_clock_behind_by_less_than_the_bound_is_quiet() {
        let mut clock = RecordClock::new(1_000 * SECOND_US, BOUND);
        let (stamp, event) = clock.stamp(800 * SECOND_US, Instant::now());
        assert_eq!((stamp, event), (1_000 * SECOND_US, None));
    }

    #[test]
    fn a_forward_jump_past_the_bound_warns_and_time_passing_does_not() {
        let start = Instant::now();
        let mut clock = RecordClock::new(0, BOUND);
        assert_eq!(clock.stamp(100 * SECOND_US, start).1, None);
        // Ten minutes of wall time in ten minutes of monotonic time: no jump.
        let later = start + Duration::from_secs(600);
        assert_eq!(clock.stamp(700 * SECOND_US, later).1, None);
        // An hour of wall time in one second: a jump of 3,599 s.
        let (stamp, event) = clock.stamp(4_300 * SECOND_US, later + Duration::from_secs(1));
        assert_eq!(stamp, 4_300 * SECOND_US);
        assert_eq!(
            event,
            Some(ClockEvent::JumpedForward(Duration::from_secs(3_599)))
        );
    }
}
