//! Entry points for the `fuzz/` targets; not part of the supported API.
//!
//! They only call public decoders, so a crash found here is a crash a peer hub could cause.

use rkyv::util::AlignedVec;

use crate::event::EventKind;
use crate::event::codec::decode;
use crate::limits::PAYLOAD_ALIGNMENT_BYTES;

/// Decodes `bytes` as every known kind at schema versions 0 to 2 (so the unknown-version path runs
/// too) and as one unknown kind. Must never panic, whatever the bytes.
pub fn fuzz_decode_all_kinds(bytes: &[u8]) {
    let mut aligned = AlignedVec::<PAYLOAD_ALIGNMENT_BYTES>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    for kind in EventKind::ALL {
        for schema_version in 0..=2 {
            let _ = decode(kind.number(), schema_version, &aligned);
        }
    }
    let _ = decode(u16::MAX, 1, &aligned);
}

/// Decodes `bytes` as a snapshot. Must never panic, whatever the bytes.
pub fn fuzz_decode_snapshot(bytes: &[u8]) {
    let _ = crate::snapshot::snapshot_decode(bytes);
}
