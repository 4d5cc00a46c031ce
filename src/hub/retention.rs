//! Log retention: which old segments the core may delete, given the bound an operator set with
//! `relay hub --retain <SIZE|DURATION>` and what the hub still needs from the log.
//!
//! The rule (also in `docs/operations.md`, "Retention"):
//!
//! - The state is rebuilt from the newest snapshot plus the log after it, so nothing at or
//!   above the newest snapshot this hub has written, synced and read back (it decodes) may go.
//!   This is the snapshot *hold*. Until the hub's first such snapshot the hold is 0: a snapshot
//!   left by an earlier run is not trusted for deleting the log below it.
//! - Mailboxes and group histories hold the message bodies themselves (in the state and so in
//!   every snapshot), not log offsets, so unread mail pins no segment: the snapshot hold is the
//!   only one today. Federation acks will add a hold of their own ([`RetentionHold`]); the core
//!   deletes below the smallest hold.
//! - Below the hold, the bound picks the segments to delete: by size, the oldest sealed
//!   segments until the segment files together fit in the bound; by duration, every sealed
//!   segment whose newest record is older than the bound. The active segment is never deleted,
//!   and neither is anything above the log's checkpoint ([`relay_log::LogWriter::delete_below`]).
//!
//! This file only computes; the core asks it and calls the log.

use std::time::Duration;

use relay_log::SegmentInfo;

use super::limits::RETENTION_SEGMENTS_MIN;

/// How much history `relay hub --retain` keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Keep the segment files of the log under this many bytes (reserved space included).
    Bytes(u64),
    /// Keep the records younger than this.
    Age(Duration),
}

/// A reason the core must keep the log from some offset on. The core deletes only below the
/// smallest hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetentionHold {
    /// The oldest snapshot kept: start-up may rebuild from it.
    Snapshot,
    /// The lowest acknowledgement of a linked hub: records it has not committed may still
    /// have to be shipped (a configured peer that never acknowledged holds the whole log).
    Links,
}

/// Parses `--retain`: a size (`512MiB`, `2GB`, `1048576` bytes; KiB/MiB/GiB/TiB are powers
/// of 1024, kB/MB/GB/TB of 1000) or a duration in humantime's syntax (`7d`, `12h`, `90min`).
///
/// # Errors
/// Says what was expected.
pub fn parse_retention(text: &str) -> Result<Retention, String> {
    let text = text.trim();
    if let Some(bytes) = parse_size(text) {
        return match bytes {
            0 => Err("--retain 0 would keep nothing; give a size or a duration".to_owned()),
            bytes => Ok(Retention::Bytes(bytes)),
        };
    }
    match humantime::parse_duration(text) {
        Ok(age) if age.is_zero() => {
            Err("--retain 0 would keep nothing; give a size or a duration".to_owned())
        }
        Ok(age) => Ok(Retention::Age(age)),
        Err(_) => Err(format!(
            "--retain {text:?} is neither a size (512MiB, 2GB) nor a duration (7d, 12h)"
        )),
    }
}

/// Checks a retention bound against the segment size.
///
/// # Errors
/// A size bound smaller than [`RETENTION_SEGMENTS_MIN`] segments, which could never be met.
pub fn check_retention(retention: Retention, segment_bytes: u64) -> Result<(), String> {
    let least = segment_bytes.saturating_mul(RETENTION_SEGMENTS_MIN);
    match retention {
        Retention::Bytes(bytes) if bytes < least => Err(format!(
            "--retain {bytes} bytes is less than {RETENTION_SEGMENTS_MIN} segments of {segment_bytes} bytes; give at least {least} bytes"
        )),
        _ => Ok(()),
    }
}

/// The offset below which `retention` would delete `segments` (oldest first, the last one
/// active), ignoring holds. `newest_timestamp_us(i)` is the timestamp of the newest record of
/// sealed segment `i`, `None` if it cannot be read (the segment is then kept).
pub fn retention_target(
    retention: Retention,
    segments: &[SegmentInfo],
    now_us: u64,
    mut newest_timestamp_us: impl FnMut(usize) -> Option<u64>,
) -> u64 {
    let first = segments.first().map_or(0, |segment| segment.base_offset);
    let mut target = first;
    match retention {
        Retention::Bytes(bound) => {
            let mut total: u64 = segments.iter().map(|segment| segment.file_bytes).sum();
            // Bounded by the segment count; only sealed segments (those with a successor) go.
            for (index, segment) in segments.iter().enumerate() {
                let Some(next) = segments.get(index + 1) else {
                    break;
                };
                if total <= bound {
                    break;
                }
                total -= segment.file_bytes;
                target = next.base_offset;
            }
        }
        Retention::Age(age) => {
            let age_us = u64::try_from(age.as_micros()).unwrap_or(u64::MAX);
            let cutoff_us = now_us.saturating_sub(age_us);
            for index in 0..segments.len().saturating_sub(1) {
                match newest_timestamp_us(index) {
                    Some(newest) if newest < cutoff_us => target = segments[index + 1].base_offset,
                    _ => break,
                }
            }
        }
    }
    target
}

/// Bytes of `text` as a size, or `None` if it is not written as one.
fn parse_size(text: &str) -> Option<u64> {
    let digits_end = text
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: u64 = number.parse().ok()?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn segments(bases: &[u64], file_bytes: u64) -> Vec<SegmentInfo> {
        bases
            .iter()
            .map(|base| SegmentInfo {
                path: PathBuf::from(format!("{base:020}.seg")),
                base_offset: *base,
                file_bytes,
            })
            .collect()
    }

    #[test]
    fn sizes_and_durations_parse_and_nonsense_is_refused() {
        assert_eq!(parse_retention("512MiB"), Ok(Retention::Bytes(512 << 20)));
        assert_eq!(parse_retention("2GB"), Ok(Retention::Bytes(2_000_000_000)));
        assert_eq!(parse_retention("4096"), Ok(Retention::Bytes(4096)));
        assert_eq!(
            parse_retention("7d"),
            Ok(Retention::Age(Duration::from_secs(7 * 86_400)))
        );
        assert_eq!(
            parse_retention("90min"),
            Ok(Retention::Age(Duration::from_secs(5400)))
        );
        assert!(parse_retention("0").is_err());
        assert!(parse_retention("12 parsecs").is_err());
        assert!(parse_retention("99999999999TiB").is_err());
    }

    #[test]
    fn a_size_bound_below_two_segments_is_refused_and_two_pass() {
        assert!(check_retention(Retention::Bytes(8191), 4096).is_err());
        assert!(check_retention(Retention::Bytes(8192), 4096).is_ok());
        assert!(check_retention(Retention::Age(Duration::from_secs(1)), 4096).is_ok());
    }

    #[test]
    fn by_size_the_oldest_sealed_segments_go_until_the_rest_fits() {
        let log = segments(&[0, 10, 20, 30], 100);
        let never = |_| None;
        assert_eq!(retention_target(Retention::Bytes(400), &log, 0, never), 0);
        assert_eq!(retention_target(Retention::Bytes(399), &log, 0, never), 10);
        assert_eq!(retention_target(Retention::Bytes(200), &log, 0, never), 20);
        // The active segment stays even when it alone is past the bound.
        assert_eq!(retention_target(Retention::Bytes(1), &log, 0, never), 30);
    }

    #[test]
    fn by_age_sealed_segments_whose_newest_record_is_older_go() {
        let log = segments(&[0, 10, 20, 30], 100);
        let newest = [1_000, 2_000, 3_000];
        let age = Retention::Age(Duration::from_millis(1));
        let read = |index: usize| newest.get(index).copied();
        // Now 3,500 µs: cutoff 2,500, so segments 0 and 1 (newest 1,000 and 2,000) go.
        assert_eq!(retention_target(age, &log, 3_500, read), 20);
        assert_eq!(retention_target(age, &log, 2_000, read), 0);
        // An unreadable segment is kept, and so is everything after it.
        assert_eq!(
            retention_target(age, &log, 9_999, |index| (index != 1).then_some(0)),
            10
        );
    }
}
