//! Snapshots: the whole [`State`] at an offset, so start-up does not replay the log from zero.
//!
//! Layout (little-endian), 32-byte header then body:
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `RLYSNAP\0` |
//! | 8..10 | format version ([`SNAPSHOT_FORMAT_VERSION`]) |
//! | 10..12 | reserved, zero |
//! | 12..16 | CRC32 of bytes 16.. (header tail and body) |
//! | 16..24 | next offset: the first record not folded into the state |
//! | 24..32 | body length in bytes |
//! | 32.. | body: the `State` archived with rkyv (same format flags as the log) |
//!
//! The message index is not in the body: it is derived from the mailboxes, and
//! [`snapshot_decode`] rebuilds it (refusing a body whose mailboxes hold one id twice).
//!
//! rkyv is used for the body because it is already how events are stored, reads back without a
//! parser (validation plus one deserialize pass), and writes equal bytes for equal states since
//! every collection in `State` is ordered and rkyv zeroes padding. A snapshot is a cache, not a
//! frozen format: when its version or layout does not match this build, decoding fails and the hub
//! rebuilds from the log. This module does no I/O; the caller reads and writes the file.
//!
//! Encoding never panics: [`snapshot_encode_checked`] refuses a body past
//! [`SNAPSHOT_BODY_BYTES_MAX`] (rkyv's 32-bit offsets would overflow at 2 GiB) with
//! [`SnapshotEncodeError::TooLarge`]. Before a snapshot is written, [`snapshot_verify`] (the
//! poisoned-dart check) decodes it and compares it with a [`SnapshotSample`] taken from the
//! live state, and encodes it again: a snapshot that would restore another state is never
//! written.

use rkyv::util::AlignedVec;

use crate::limits::{
    PAYLOAD_ALIGNMENT_BYTES, SNAPSHOT_BODY_BYTES_MAX, SNAPSHOT_SAMPLE_BYTES_MAX,
    SNAPSHOT_SAMPLE_MAILBOXES_MAX,
};
use crate::state::{Group, Identity, IdentityId, Mailbox, State};

/// The first eight bytes of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"RLYSNAP\0";

/// Snapshot format version written by this build. Bump it whenever `State`'s layout changes.
/// Version 4: mailboxes keep every unread message (by sequence) and a refusal record, and group
/// memberships count missed messages. Version 6: the state keeps its byte count
/// ([`State::bytes`]) and each group message the acknowledgements it reserved. Version 7:
/// federation progress and remote identities. Version 8: the routes of groups with members on
/// other hubs. Version 9: a mailbox message keeps its rare fields in one optional box and no id
/// when it is `m-<offset>`, and the message index is not archived (decoding rebuilds it).
pub const SNAPSHOT_FORMAT_VERSION: u16 = 9;

/// Header length in bytes; the body starts right after, on a 16-byte boundary.
pub const SNAPSHOT_HEADER_BYTES: usize = 32;

const _: () = assert!(SNAPSHOT_HEADER_BYTES.is_multiple_of(PAYLOAD_ALIGNMENT_BYTES));

/// Why a snapshot could not be read. In every case the caller rebuilds the state from the log
/// (and may write a fresh snapshot); a snapshot is never needed for correctness.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// Fewer bytes than a header, or than the header says the body has (a torn write).
    #[error("snapshot truncated: {found} bytes, expected {expected}")]
    Truncated {
        /// Bytes needed.
        expected: usize,
        /// Bytes found.
        found: usize,
    },
    /// The file does not start with [`SNAPSHOT_MAGIC`].
    #[error("not a snapshot (bad magic)")]
    BadMagic,
    /// Written by a build with another snapshot format version.
    #[error("snapshot format version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion {
        /// The version found.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// The CRC does not match: the file is damaged.
    #[error("snapshot checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// CRC stored in the header.
        stored: u32,
        /// CRC of the bytes found.
        computed: u32,
    },
    /// The body passed the CRC but is not a valid archived `State` (a layout change without a
    /// version bump).
    #[error("snapshot body is invalid: {reason}")]
    InvalidBody {
        /// rkyv's description of what failed.
        reason: String,
    },
}

/// Why no snapshot was made of a state. The state and the log are fine: the caller logs it
/// and goes on without a snapshot (start-up then replays from an older one, or from the log).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SnapshotEncodeError {
    /// The archived state would pass `body_bytes_max` ([`SNAPSHOT_BODY_BYTES_MAX`] unless a
    /// caller asked for less), which rkyv's 32-bit offsets cannot address past 2 GiB.
    #[error(
        "the state needs more than {body_bytes_max} bytes as a snapshot (rkyv's 32-bit offsets); no snapshot is taken"
    )]
    TooLarge {
        /// The bound passed.
        body_bytes_max: usize,
    },
    /// rkyv refused the state for another reason (a bug).
    #[error("the state could not be archived: {reason}")]
    Archive {
        /// rkyv's description.
        reason: String,
    },
}

/// Serializes `state`, which holds every record before `next_offset`, refusing a body past
/// [`SNAPSHOT_BODY_BYTES_MAX`]. Equal states and offsets give equal bytes.
///
/// # Errors
///
/// [`SnapshotEncodeError::TooLarge`] past the bound; never panics.
pub fn snapshot_encode_checked(
    state: &State,
    next_offset: u64,
) -> Result<Vec<u8>, SnapshotEncodeError> {
    snapshot_encode_within(state, next_offset, SNAPSHOT_BODY_BYTES_MAX)
}

/// [`snapshot_encode_checked`] with a smaller body bound, `body_bytes_max` (clamped to
/// [`SNAPSHOT_BODY_BYTES_MAX`]): the encoder stops at the first write past it.
///
/// # Errors
///
/// [`SnapshotEncodeError::TooLarge`] past the bound.
pub fn snapshot_encode_within(
    state: &State,
    next_offset: u64,
    body_bytes_max: usize,
) -> Result<Vec<u8>, SnapshotEncodeError> {
    let body_bytes_max = body_bytes_max.min(SNAPSHOT_BODY_BYTES_MAX);
    let mut writer = BoundedWriter {
        bytes: AlignedVec::new(),
        bytes_max: body_bytes_max,
        exceeded: false,
    };
    let archived = rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(state, &mut writer)
        .map(|_| ())
        .map_err(|error| error.to_string());
    match archived {
        Ok(()) => Ok(frame(&writer.bytes, next_offset)),
        Err(_) if writer.exceeded => Err(SnapshotEncodeError::TooLarge { body_bytes_max }),
        Err(reason) => Err(SnapshotEncodeError::Archive { reason }),
    }
}

/// Serializes `state`, which holds every record before `next_offset`.
///
/// Equal states and offsets give equal bytes. Prefer [`snapshot_encode_checked`], which
/// refuses instead of panicking.
///
/// # Panics
///
/// If the body passes [`SNAPSHOT_BODY_BYTES_MAX`]: `invariant:` message naming the bound.
pub fn snapshot_encode(state: &State, next_offset: u64) -> Vec<u8> {
    match snapshot_encode_checked(state, next_offset) {
        Ok(bytes) => bytes,
        Err(refused) => panic!("invariant: a snapshot fits its bound: {refused}"),
    }
}

/// What a snapshot must agree with, taken from the live state on the thread that owns it:
/// counts and byte totals of every collection (O(identities + groups)), plus an exact copy of
/// a few mailboxes, groups and identities chosen in a rotation (bounded by
/// [`SNAPSHOT_SAMPLE_BYTES_MAX`] and [`SNAPSHOT_SAMPLE_MAILBOXES_MAX`]). [`snapshot_verify`]
/// checks encoded bytes against it anywhere, without the live state: the poisoned-dart check
/// that a snapshot about to be written decodes back to what was encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotSample {
    counts: Vec<(&'static str, u64)>,
    identities: Vec<Identity>,
    mailboxes: Vec<(IdentityId, Mailbox)>,
    groups: Vec<Group>,
}

impl SnapshotSample {
    /// The sample of `state`; `rotation` (e.g. the snapshot's offset) picks which mailboxes
    /// and groups are copied, so successive snapshots check different ones.
    pub fn of(state: &State, rotation: u64) -> SnapshotSample {
        let mut sample = SnapshotSample {
            counts: state_counts(state),
            identities: Vec::new(),
            mailboxes: Vec::new(),
            groups: Vec::new(),
        };
        let identity_count = state.identities.len();
        if identity_count > 0 {
            let start = (rotation % identity_count as u64) as usize;
            let mut sampled_bytes = 0u64;
            for (id, mailbox) in state
                .mailboxes
                .iter()
                .cycle()
                .skip(start)
                .take(identity_count)
            {
                let bytes = mailbox.unread_bytes().saturating_add(mailbox.read_bytes());
                let full = sample.mailboxes.len() >= SNAPSHOT_SAMPLE_MAILBOXES_MAX
                    || sampled_bytes.saturating_add(bytes) > SNAPSHOT_SAMPLE_BYTES_MAX;
                if full {
                    break;
                }
                sampled_bytes += bytes;
                sample.mailboxes.push((*id, mailbox.clone()));
                if let Some(identity) = state.identities.get(id) {
                    sample.identities.push(identity.clone());
                }
            }
        }
        let group_count = state.groups.len();
        if group_count > 0 {
            let start = (rotation % group_count as u64) as usize;
            let take = group_count.min(SNAPSHOT_SAMPLE_MAILBOXES_MAX);
            sample.groups = state
                .groups
                .values()
                .cycle()
                .skip(start)
                .take(take)
                .cloned()
                .collect();
        }
        sample
    }
}

/// Why a snapshot failed its check: it must not be written (the hub logs this, which is a
/// bug in the encoder or memory damage, and goes on from the log).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SnapshotVerifyError {
    /// The bytes do not decode.
    #[error("the snapshot does not decode: {0}")]
    Decode(#[from] SnapshotError),
    /// A count or byte total of the decoded state differs from the live state's.
    #[error("the snapshot's {what} is {found}, the state's {expected}")]
    CountDiffers {
        /// Which count.
        what: &'static str,
        /// The live state's.
        expected: u64,
        /// The decoded state's.
        found: u64,
    },
    /// A sampled mailbox, group or identity decoded differently.
    #[error("the snapshot's {what} differs from the state's")]
    SampleDiffers {
        /// Which one (`mailbox of identity 42`, `group "ops"`).
        what: String,
    },
    /// The decoded state does not encode again.
    #[error("the decoded snapshot does not encode again: {0}")]
    Reencode(#[from] SnapshotEncodeError),
    /// Encoding the decoded state again gave other bytes (not a faithful round trip).
    #[error("encoding the decoded snapshot again differs at byte {first_difference}")]
    ReencodeDiffers {
        /// The first byte that differs (or the shorter length).
        first_difference: usize,
    },
}

/// The poisoned-dart check: decodes `bytes`, compares the decoded state with `sample`, and
/// encodes it again, which must give the same bytes. Costs one decode and one encode; run it
/// on the snapshot writer's thread, not the core's.
///
/// # Errors
///
/// A [`SnapshotVerifyError`] saying what differs.
pub fn snapshot_verify(bytes: &[u8], sample: &SnapshotSample) -> Result<(), SnapshotVerifyError> {
    let (state, next_offset) = snapshot_decode(bytes)?;
    for ((what, expected), (_, found)) in sample.counts.iter().zip(state_counts(&state)) {
        if *expected != found {
            return Err(SnapshotVerifyError::CountDiffers {
                what,
                expected: *expected,
                found,
            });
        }
    }
    for (id, mailbox) in &sample.mailboxes {
        if state.mailboxes.get(id) != Some(mailbox) {
            return Err(SnapshotVerifyError::SampleDiffers {
                what: format!("mailbox of identity {}", id.0),
            });
        }
    }
    for identity in &sample.identities {
        if state.identities.get(&identity.id) != Some(identity) {
            return Err(SnapshotVerifyError::SampleDiffers {
                what: format!("identity {}", identity.id.0),
            });
        }
    }
    for group in &sample.groups {
        if state.groups.get(group.name()) != Some(group) {
            return Err(SnapshotVerifyError::SampleDiffers {
                what: format!("group {:?}", group.name()),
            });
        }
    }
    let again = snapshot_encode_checked(&state, next_offset)?;
    if again != bytes {
        let first_difference = again
            .iter()
            .zip(bytes)
            .position(|(a, b)| a != b)
            .unwrap_or(again.len().min(bytes.len()));
        return Err(SnapshotVerifyError::ReencodeDiffers { first_difference });
    }
    Ok(())
}

/// Counts and byte totals of every collection of `state`, in a fixed order.
fn state_counts(state: &State) -> Vec<(&'static str, u64)> {
    let mut counts = vec![
        (
            "last offset",
            state.last_offset.map_or(0, |offset| offset + 1),
        ),
        ("identity count", state.identities.len() as u64),
        ("name count", state.names.len() as u64),
        ("mailbox count", state.mailboxes.len() as u64),
        ("message index size", state.message_index.len() as u64),
        ("group count", state.groups.len() as u64),
        ("room count", state.rooms.len() as u64),
        ("pending ask count", state.asks.pending_count() as u64),
        ("broadcast count", state.asks.broadcast_count() as u64),
        (
            "idempotency key count",
            state.completed.values().map(|keys| keys.len() as u64).sum(),
        ),
    ];
    let mut kept = 0u64;
    let mut unread = 0u64;
    let mut text_bytes = 0u64;
    for mailbox in state.mailboxes.values() {
        kept += mailbox.len() as u64;
        unread += mailbox.unread_count() as u64;
        text_bytes = text_bytes
            .saturating_add(mailbox.unread_bytes())
            .saturating_add(mailbox.read_bytes());
    }
    let (mut group_messages, mut group_members) = (0u64, 0u64);
    for group in state.groups.values() {
        group_messages += group.messages().len() as u64;
        group_members += group.member_count() as u64;
    }
    counts.extend([
        ("kept message count", kept),
        ("unread message count", unread),
        ("mailbox text bytes", text_bytes),
        ("group message count", group_messages),
        ("group member count", group_members),
        ("state bytes", state.bytes()),
    ]);
    counts
}

/// Header plus body.
fn frame(body: &[u8], next_offset: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(SNAPSHOT_HEADER_BYTES + body.len());
    bytes.extend_from_slice(&SNAPSHOT_MAGIC);
    bytes.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&next_offset.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(body);
    let crc = crc32fast::hash(&bytes[16..]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// The rkyv writer of a snapshot body: refuses the first write that would take it past
/// `bytes_max`, so every position (and every relative offset) stays within the bound.
struct BoundedWriter {
    bytes: AlignedVec<PAYLOAD_ALIGNMENT_BYTES>,
    bytes_max: usize,
    exceeded: bool,
}

/// The error a [`BoundedWriter`] fails with past its bound.
#[derive(Debug, thiserror::Error)]
#[error("snapshot body bound reached")]
struct BodyBoundReached;

impl rkyv::ser::Positional for BoundedWriter {
    fn pos(&self) -> usize {
        self.bytes.len()
    }
}

impl<E: rkyv::rancor::Source> rkyv::ser::Writer<E> for BoundedWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<(), E> {
        if self.bytes.len().saturating_add(bytes.len()) > self.bytes_max {
            self.exceeded = true;
            return Err(E::new(BodyBoundReached));
        }
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }
}

/// Reads a snapshot back: the state and the offset of the first record to apply after it.
///
/// # Errors
///
/// A [`SnapshotError`] when the bytes are truncated, not a snapshot, of another version, damaged,
/// or not a valid state. Never panics, whatever the bytes.
pub fn snapshot_decode(bytes: &[u8]) -> Result<(State, u64), SnapshotError> {
    let header = bytes
        .get(..SNAPSHOT_HEADER_BYTES)
        .ok_or(SnapshotError::Truncated {
            expected: SNAPSHOT_HEADER_BYTES,
            found: bytes.len(),
        })?;
    if header[..8] != SNAPSHOT_MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let version = u16::from_le_bytes([header[8], header[9]]);
    if version != SNAPSHOT_FORMAT_VERSION {
        return Err(SnapshotError::UnsupportedVersion {
            found: version,
            supported: SNAPSHOT_FORMAT_VERSION,
        });
    }
    let stored = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    let next_offset = read_u64(&header[16..24]);
    let body_bytes = usize::try_from(read_u64(&header[24..32])).unwrap_or(usize::MAX);
    let expected = SNAPSHOT_HEADER_BYTES.saturating_add(body_bytes);
    if bytes.len() < expected {
        return Err(SnapshotError::Truncated {
            expected,
            found: bytes.len(),
        });
    }
    let computed = crc32fast::hash(&bytes[16..expected]);
    if computed != stored {
        return Err(SnapshotError::ChecksumMismatch { stored, computed });
    }
    let body = &bytes[SNAPSHOT_HEADER_BYTES..expected];
    // rkyv needs the body aligned; a buffer from the allocator usually is (the header is 32
    // bytes), so the copy is only a fallback.
    let copy;
    let body = if (body.as_ptr() as usize).is_multiple_of(PAYLOAD_ALIGNMENT_BYTES) {
        body
    } else {
        let mut aligned = AlignedVec::<PAYLOAD_ALIGNMENT_BYTES>::with_capacity(body_bytes);
        aligned.extend_from_slice(body);
        copy = aligned;
        &copy[..]
    };
    let invalid = |error: rkyv::rancor::Error| SnapshotError::InvalidBody {
        reason: error.to_string(),
    };
    let archived =
        rkyv::access::<rkyv::Archived<State>, rkyv::rancor::Error>(body).map_err(invalid)?;
    let mut state = rkyv::deserialize::<State, rkyv::rancor::Error>(archived).map_err(invalid)?;
    state
        .complete_decoded()
        .map_err(|reason| SnapshotError::InvalidBody { reason })?;
    // The byte count is kept, not trusted: a body whose count is not its recount (O(state),
    // like the deserialize) is refused, so a restored hub enforces its budget on true figures.
    let recount = state.recount_bytes();
    if state.bytes() != recount {
        return Err(SnapshotError::InvalidBody {
            reason: format!(
                "the state's byte count is {}, its recount {recount}",
                state.bytes()
            ),
        });
    }
    Ok((state, next_offset))
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut array = [0; 8];
    array.copy_from_slice(bytes);
    u64::from_le_bytes(array)
}
