//! Telling a torn tail from corruption: after damage, look for a later valid record.
//!
//! A torn write can only damage the end of what was written: the records past the damage
//! were never written, so no CRC-valid record with a later offset can follow it. When a
//! walk meets damage above the checkpoint, [`find_witness`] looks for such a record, a
//! *witness*. Finding one makes the damage corruption (the open refuses, verify fails);
//! finding none makes it a torn tail (the writer cuts it).
//!
//! A witness must be consistent with the bytes between it and the damage: a record at byte
//! `q` carrying offset `m`, after damage at byte `p` where offset `n` was expected, needs
//! `m > n` and `(m - n) * RECORD_HEADER_BYTES <= q - p` (the records `n..m` each take at least
//! a header). Records start on [`RECORD_ALIGNMENT_BYTES`] boundaries, so only those positions
//! are tried; a position is checked in full (length, CRC, padding) only when the offset field
//! it holds passes that test, so stale bytes and zeroed space cost one 8-byte load per step.
//!
//! # Cost
//! The search runs only when damage is met above the checkpoint (after a crash, not on a
//! clean open). It reads the rest of the damaged segment and then each later segment, stopping
//! at the first witness; it reads at most [`WITNESS_SCAN_BYTES_MAX`] bytes in all. When that
//! budget runs out without a witness, the damage is taken as a torn tail.

use std::path::PathBuf;

use crate::error::{OpenError, Witness};
use crate::format::{RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, read_u64};
use crate::limits::{RECORD_ALIGNMENT_BYTES, WITNESS_SCAN_BYTES_MAX};
use crate::segment::{Segment, Step, step};
use crate::set::{check_header, open_segment};

/// Where the damage was met and what the walk expected there.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DamageAt {
    /// Index of the damaged segment in the list of opened segments.
    pub(crate) segment_index: usize,
    /// Byte position of the damage; 0 for a damaged segment header.
    pub(crate) position: u64,
    /// The offset expected there.
    pub(crate) offset: u64,
}

/// Looks for a valid record after `damage`: in the rest of the damaged segment, in the later
/// opened `segments`, then in `later_files` (opened read-only on demand, their headers checked
/// against `log_id`).
///
/// # Errors
/// [`OpenError::Io`] if a later file cannot be opened or mapped.
pub(crate) fn find_witness(
    segments: &[Segment],
    damage: DamageAt,
    later_files: &[(u64, PathBuf)],
    log_id: Option<u128>,
) -> Result<Option<Witness>, OpenError> {
    let mut budget = WITNESS_SCAN_BYTES_MAX;
    let Some(damaged) = segments.get(damage.segment_index) else {
        return Ok(None);
    };
    let found = if damage.position == 0 {
        // The header is damaged: records of this segment count from its base offset.
        scan(
            damaged,
            Origin::segment_start(damaged, damaged.base_offset),
            &mut budget,
        )
    } else {
        let origin = Origin {
            position: damage.position,
            offset: damage.offset,
            from: damage.position + RECORD_ALIGNMENT_BYTES as u64,
            min_offset: damage.offset.saturating_add(1),
        };
        scan(damaged, origin, &mut budget)
    };
    if found.is_some() {
        return Ok(found);
    }
    let min_offset = damage.offset.saturating_add(1);
    for segment in &segments[damage.segment_index + 1..] {
        if let Some(witness) = scan(
            segment,
            Origin::segment_start(segment, min_offset),
            &mut budget,
        ) {
            return Ok(Some(witness));
        }
    }
    for (base_offset, path) in later_files {
        if budget == 0 {
            break;
        }
        let (segment, header) = open_segment(path, *base_offset, false)?;
        if check_header(&segment, header, log_id).is_err() {
            continue;
        }
        if let Some(witness) = scan(
            &segment,
            Origin::segment_start(&segment, min_offset),
            &mut budget,
        ) {
            return Ok(Some(witness));
        }
    }
    Ok(None)
}

/// The reference a candidate's offset is checked against.
#[derive(Clone, Copy, Debug)]
struct Origin {
    /// Byte position where `offset` was expected.
    position: u64,
    /// Offset expected at `position`.
    offset: u64,
    /// First byte position to try.
    from: u64,
    /// Smallest offset a witness may carry: past the damaged one.
    min_offset: u64,
}

impl Origin {
    /// A later (or header-damaged) segment: its first record carries its base offset.
    fn segment_start(segment: &Segment, min_offset: u64) -> Origin {
        Origin {
            position: SEGMENT_HEADER_BYTES as u64,
            offset: segment.base_offset,
            from: SEGMENT_HEADER_BYTES as u64,
            min_offset,
        }
    }

    fn admits(&self, position: u64, offset: u64) -> bool {
        if offset < self.min_offset || offset < self.offset {
            return false;
        }
        let records_between = offset - self.offset;
        let bytes_between = position - self.position;
        records_between
            .checked_mul(RECORD_HEADER_BYTES as u64)
            .is_some_and(|needed| needed <= bytes_between)
    }
}

fn scan(segment: &Segment, origin: Origin, budget: &mut u64) -> Option<Witness> {
    let bytes = segment.map.bytes();
    let end = (bytes.len() as u64).saturating_sub(RECORD_HEADER_BYTES as u64);
    let mut position = origin.from;
    // Bounded: `position` advances by the alignment every pass, and the budget shrinks by it.
    while position <= end && *budget > 0 {
        *budget = budget.saturating_sub(RECORD_ALIGNMENT_BYTES as u64);
        let at = position as usize;
        let offset = read_u64(bytes, at + 8);
        if origin.admits(position, offset)
            && let Step::Record { record, .. } = step(bytes, position, offset)
        {
            return Some(Witness {
                segment: segment.path.clone(),
                offset: record.offset,
                position,
            });
        }
        position += RECORD_ALIGNMENT_BYTES as u64;
    }
    None
}
