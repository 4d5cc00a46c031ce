//! Byte layout of segment headers, record headers, index files and the checkpoint.
//!
//! This is the only place that knows where a field sits. `docs/log-format.md` is the same
//! layout in prose; a change here is a change of the on-disk format and needs a new
//! `FORMAT_VERSION`. All integers are little-endian.

use crate::limits::RECORD_ALIGNMENT_BYTES;

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"RELAYSEG";
/// Current segment format version.
pub const FORMAT_VERSION: u16 = 1;
/// Checksum kind 1: CRC-32 (ISO-HDLC, the zlib/`crc32fast` polynomial).
pub const CHECKSUM_KIND_CRC32: u8 = 1;
/// Size of the segment header, in bytes.
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// Size of the fixed record header, in bytes.
pub const RECORD_HEADER_BYTES: usize = 48;
/// Magic bytes at the start of a sparse index file.
pub const INDEX_MAGIC: [u8; 8] = *b"RELAYIDX";
/// Size of the index file header, in bytes.
pub const INDEX_HEADER_BYTES: usize = 24;
/// Size of one index entry, in bytes.
pub const INDEX_ENTRY_BYTES: usize = 8;
/// Magic bytes of a checkpoint slot.
pub const CHECKPOINT_MAGIC: [u8; 4] = *b"RCKP";
/// Size of one checkpoint slot; the checkpoint file holds two.
pub const CHECKPOINT_SLOT_BYTES: usize = 48;

/// The versioned header at the start of each segment file.
///
/// # Frozen
/// Layout (64 bytes): `0..8` magic `RELAYSEG`, `8..10` format version, `10` checksum kind,
/// `11` payload format flags (opaque to the log; Relay stores its rkyv flags here),
/// `12..16` zero, `16..24` base offset, `24..40` log id, `40..60` zero, `60..64` CRC-32 of
/// bytes `0..60`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Format version the segment was written with.
    pub format_version: u16,
    /// Checksum algorithm of the records.
    pub checksum_kind: u8,
    /// Flags describing the payload encoding, chosen by the log's user.
    pub payload_format_flags: u8,
    /// Offset of the first record in this segment (the segment's name).
    pub base_offset: u64,
    /// Random id fixed when the log was created.
    pub log_id: u128,
}

/// Why a segment header was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderDamage {
    /// The file is shorter than a header.
    Short,
    /// The magic bytes are wrong.
    BadMagic,
    /// The CRC of the header does not match.
    BadChecksum,
    /// The version or checksum kind is one this build does not read.
    Unsupported,
}

impl SegmentHeader {
    /// Encodes the header into its 64 bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut bytes = [0u8; SEGMENT_HEADER_BYTES];
        bytes[0..8].copy_from_slice(&SEGMENT_MAGIC);
        bytes[8..10].copy_from_slice(&self.format_version.to_le_bytes());
        bytes[10] = self.checksum_kind;
        bytes[11] = self.payload_format_flags;
        bytes[16..24].copy_from_slice(&self.base_offset.to_le_bytes());
        bytes[24..40].copy_from_slice(&self.log_id.to_le_bytes());
        let crc = crc32fast::hash(&bytes[0..60]);
        bytes[60..64].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// Decodes and checks a header from the start of a segment.
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderDamage> {
        let bytes: &[u8; SEGMENT_HEADER_BYTES] = bytes
            .get(..SEGMENT_HEADER_BYTES)
            .and_then(|slice| slice.try_into().ok())
            .ok_or(HeaderDamage::Short)?;
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err(HeaderDamage::BadMagic);
        }
        if crc32fast::hash(&bytes[0..60]) != read_u32(bytes, 60) {
            return Err(HeaderDamage::BadChecksum);
        }
        let header = SegmentHeader {
            format_version: read_u16(bytes, 8),
            checksum_kind: bytes[10],
            payload_format_flags: bytes[11],
            base_offset: read_u64(bytes, 16),
            log_id: read_u128(bytes, 24),
        };
        if header.format_version != FORMAT_VERSION || header.checksum_kind != CHECKSUM_KIND_CRC32 {
            return Err(HeaderDamage::Unsupported);
        }
        Ok(header)
    }
}

/// The fixed header in front of every record's payload.
///
/// # Frozen
/// Layout (48 bytes): `0..4` CRC-32 over bytes `4..48` of the header followed by the payload
/// (not the padding), `4..8` payload length, `8..16` offset, `16..24` timestamp in
/// microseconds since the Unix epoch, `24..26` kind, `26..28` schema version, `28..32` zero,
/// `32..48` origin hub id. The payload follows, then zero padding to a multiple of 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Stored CRC-32.
    pub crc: u32,
    /// Exact payload length in bytes.
    pub payload_len: u32,
    /// The record's offset.
    pub offset: u64,
    /// Microseconds since the Unix epoch, as given by the appender.
    pub timestamp_us: u64,
    /// Kind of the payload, opaque to the log.
    pub kind: u16,
    /// Schema version of the payload, opaque to the log.
    pub schema_version: u16,
    /// Hub the record originates from, opaque to the log.
    pub origin_hub: u128,
}

impl RecordHeader {
    /// Encodes the header with `crc` computed over it and `payload`.
    pub fn encode(&self, payload: &[u8]) -> [u8; RECORD_HEADER_BYTES] {
        let mut bytes = [0u8; RECORD_HEADER_BYTES];
        bytes[4..8].copy_from_slice(&self.payload_len.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.offset.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.timestamp_us.to_le_bytes());
        bytes[24..26].copy_from_slice(&self.kind.to_le_bytes());
        bytes[26..28].copy_from_slice(&self.schema_version.to_le_bytes());
        bytes[32..48].copy_from_slice(&self.origin_hub.to_le_bytes());
        let crc = record_crc(&bytes, payload);
        bytes[0..4].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// Reads the fields of a header without checking anything.
    pub fn decode(bytes: &[u8; RECORD_HEADER_BYTES]) -> Self {
        RecordHeader {
            crc: read_u32(bytes, 0),
            payload_len: read_u32(bytes, 4),
            offset: read_u64(bytes, 8),
            timestamp_us: read_u64(bytes, 16),
            kind: read_u16(bytes, 24),
            schema_version: read_u16(bytes, 26),
            origin_hub: read_u128(bytes, 32),
        }
    }

    /// Bytes the whole record occupies: header, payload and padding.
    pub fn record_bytes(&self) -> u64 {
        record_bytes(self.payload_len as usize)
    }
}

/// CRC-32 of a record: header bytes `4..48`, then the payload.
pub fn record_crc(header: &[u8; RECORD_HEADER_BYTES], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[4..]);
    hasher.update(payload);
    hasher.finalize()
}

/// Bytes a record with a payload of `payload_len` bytes occupies in a segment.
pub fn record_bytes(payload_len: usize) -> u64 {
    (RECORD_HEADER_BYTES + padded_len(payload_len)) as u64
}

/// `len` rounded up to the record alignment.
pub fn padded_len(len: usize) -> usize {
    len.div_ceil(RECORD_ALIGNMENT_BYTES) * RECORD_ALIGNMENT_BYTES
}

/// The file name of the segment whose first offset is `base_offset`.
pub fn segment_file_name(base_offset: u64) -> String {
    format!("{base_offset:020}.seg")
}

/// The file name of the sparse index of the segment starting at `base_offset`.
pub fn index_file_name(base_offset: u64) -> String {
    format!("{base_offset:020}.idx")
}

/// Parses a segment file name back into its base offset.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

pub(crate) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut buffer = [0u8; 4];
    buffer.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(buffer)
}

pub(crate) fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut buffer = [0u8; 8];
    buffer.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(buffer)
}

pub(crate) fn read_u128(bytes: &[u8], at: usize) -> u128 {
    let mut buffer = [0u8; 16];
    buffer.copy_from_slice(&bytes[at..at + 16]);
    u128::from_le_bytes(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_header_round_trips_and_rejects_a_flipped_byte() {
        let header = SegmentHeader {
            format_version: FORMAT_VERSION,
            checksum_kind: CHECKSUM_KIND_CRC32,
            payload_format_flags: 7,
            base_offset: 42,
            log_id: 0x0123_4567_89ab_cdef_0011_2233_4455_6677,
        };
        let mut bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        bytes[20] ^= 1;
        assert_eq!(
            SegmentHeader::decode(&bytes),
            Err(HeaderDamage::BadChecksum)
        );
    }

    #[test]
    fn segment_names_sort_by_offset_and_parse_back() {
        assert_eq!(segment_file_name(7), "00000000000000000007.seg");
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_file_name("7.seg"), None);
        assert_eq!(parse_segment_file_name("0000000000000000000x.seg"), None);
    }

    #[test]
    fn record_sizes_are_padded_to_sixteen() {
        assert_eq!(record_bytes(0), 48);
        assert_eq!(record_bytes(1), 64);
        assert_eq!(record_bytes(16), 64);
        assert_eq!(record_bytes(17), 80);
    }
}
