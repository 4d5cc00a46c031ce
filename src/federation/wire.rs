//! The frames of the link protocol, as they travel inside a [`super::noise`] link, and their
//! checked decoder: every frame comes from another machine, so [`decode`] checks every length,
//! bound and order before anything is built, and never panics (a fuzz target holds it to that).
//!
//! Layout (all integers little endian), one tag byte then the fields:
//! - `1` Resume: `log_id u128`, `from u64`, `has_last u8`, `last_crc u32`: "your events for
//!   me from origin offset `from`"; `log_id` 0 on first contact, and the CRC of the last record
//!   applied, which the origin checks against its own log (a mismatch stops the link loudly).
//! - `2` Batch: `log_id u128`, `count u32`, then per record `offset u64`, `previous u64`
//!   (`u64::MAX` when none was shipped before it), `timestamp_us u64`, `kind u16`,
//!   `schema_version u16`, `origin_hub u128`, `crc u32`, `length u32`, `payload`.
//!   Offsets strictly increase, each `previous` is the offset before it in the batch, and `crc`
//!   is [`record_crc`] of the other fields and the payload.
//! - `3` Ack: `durable u64`: every record below it is committed by the receiver.
//! - `4` Heartbeat: nothing.
//! - `5` Refuse: `length u16`, UTF-8 reason: the link stops and why.

/// Records in one batch at most.
pub const BATCH_RECORDS_MAX: usize = 1024;

/// Payload bytes of one shipped record at most: an event's payload is far smaller (a message
/// text is at most 64 KiB), and a record must fit one link frame.
pub const SHIPPED_PAYLOAD_BYTES_MAX: usize = 1 << 20;

/// Bytes of a refusal's reason at most.
pub const REFUSE_REASON_BYTES_MAX: usize = 1024;

/// `previous` of the first record ever shipped on a link.
pub const NO_PREVIOUS: u64 = u64::MAX;

const _: () = assert!(SHIPPED_PAYLOAD_BYTES_MAX < super::noise::LINK_FRAME_BYTES_MAX);

const TAG_RESUME: u8 = 1;
const TAG_BATCH: u8 = 2;
const TAG_ACK: u8 = 3;
const TAG_HEARTBEAT: u8 = 4;
const TAG_REFUSE: u8 = 5;
const TAG_PRESENCE: u8 = 6;

/// Names in one `Presence` frame, at most: every session a hub can hold
/// (`hub::limits::SESSIONS_MAX`, 4,096), with room to spare.
pub const PRESENCE_NAMES_MAX: usize = 8192;

/// Bytes of one name in a `Presence` frame, at most (`NAME_BYTES_MAX`: local names only).
pub const PRESENCE_NAME_BYTES_MAX: usize = relay_replay::limits::NAME_BYTES_MAX;

/// Bytes of a shipped record before its payload.
const RECORD_HEAD_BYTES: usize = 8 + 8 + 8 + 2 + 2 + 16 + 4 + 4;

/// One log record as shipped: the origin's offset and fields, the exact payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShippedRecord {
    /// Offset in the origin's log.
    pub offset: u64,
    /// Offset of the record shipped before it on this link ([`NO_PREVIOUS`] for the first).
    pub previous: u64,
    /// The origin's timestamp, microseconds since the epoch.
    pub timestamp_us: u64,
    /// Payload kind.
    pub kind: u16,
    /// Payload schema version.
    pub schema_version: u16,
    /// The hub whose event this is.
    pub origin_hub: u128,
    /// [`record_crc`] of all of the above and the payload.
    pub crc: u32,
    /// The payload bytes, untouched.
    pub payload: Vec<u8>,
}

/// A frame of the link protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkFrame {
    /// Receiver to origin: where to start.
    Resume {
        /// The origin's log id as the receiver knows it (0: first contact).
        log_id: u128,
        /// First origin offset wanted.
        from: u64,
        /// CRC of the last record applied, if any.
        last_crc: Option<u32>,
    },
    /// Origin to receiver: durable records.
    Batch {
        /// The origin's log id.
        log_id: u128,
        /// The records, in offset order.
        records: Vec<ShippedRecord>,
    },
    /// Receiver to origin: everything below `durable` is committed.
    Ack {
        /// First origin offset not yet committed by the receiver.
        durable: u64,
    },
    /// Either way: the link is alive.
    Heartbeat,
    /// Either way: the link stops.
    Refuse {
        /// Why.
        reason: String,
    },
    /// Either way: the sender's peers online now (all of them, sorted; not logged). Sent when
    /// a link comes up and when the set changes.
    Presence {
        /// Local names (no `@`), sorted, each once.
        online: Vec<String>,
    },
}

/// A frame that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than a field needs.
    #[error("frame ends inside {0}")]
    Short(&'static str),
    /// An unknown tag byte.
    #[error("unknown frame tag {0}")]
    UnknownTag(u8),
    /// Bytes after the frame's last field.
    #[error("{0} bytes after the frame")]
    Trailing(usize),
    /// A count or length past its bound.
    #[error("{what} is {found}; at most {limit}")]
    TooMany {
        /// Which.
        what: &'static str,
        /// The value found.
        found: usize,
        /// The bound.
        limit: usize,
    },
    /// Offsets out of order, or a `previous` that does not chain.
    #[error("record at offset {offset}: {why}")]
    Order {
        /// The record.
        offset: u64,
        /// What is wrong.
        why: &'static str,
    },
    /// A record whose CRC does not match.
    #[error("record at offset {0}: CRC mismatch")]
    Crc(u64),
    /// A flag byte that is neither 0 nor 1, or a reason that is not UTF-8.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// CRC-32 of a shipped record's fields and payload.
pub fn record_crc(
    offset: u64,
    timestamp_us: u64,
    kind: u16,
    schema_version: u16,
    origin_hub: u128,
    payload: &[u8],
) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&offset.to_le_bytes());
    hasher.update(&timestamp_us.to_le_bytes());
    hasher.update(&kind.to_le_bytes());
    hasher.update(&schema_version.to_le_bytes());
    hasher.update(&origin_hub.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Encodes `frame`.
pub fn encode(frame: &LinkFrame) -> Vec<u8> {
    let mut out = Vec::new();
    match frame {
        LinkFrame::Resume {
            log_id,
            from,
            last_crc,
        } => {
            out.push(TAG_RESUME);
            out.extend_from_slice(&log_id.to_le_bytes());
            out.extend_from_slice(&from.to_le_bytes());
            out.push(u8::from(last_crc.is_some()));
            out.extend_from_slice(&last_crc.unwrap_or(0).to_le_bytes());
        }
        LinkFrame::Batch { log_id, records } => {
            out.push(TAG_BATCH);
            out.extend_from_slice(&log_id.to_le_bytes());
            out.extend_from_slice(&(records.len() as u32).to_le_bytes());
            for record in records {
                out.extend_from_slice(&record.offset.to_le_bytes());
                out.extend_from_slice(&record.previous.to_le_bytes());
                out.extend_from_slice(&record.timestamp_us.to_le_bytes());
                out.extend_from_slice(&record.kind.to_le_bytes());
                out.extend_from_slice(&record.schema_version.to_le_bytes());
                out.extend_from_slice(&record.origin_hub.to_le_bytes());
                out.extend_from_slice(&record.crc.to_le_bytes());
                out.extend_from_slice(&(record.payload.len() as u32).to_le_bytes());
                out.extend_from_slice(&record.payload);
            }
        }
        LinkFrame::Ack { durable } => {
            out.push(TAG_ACK);
            out.extend_from_slice(&durable.to_le_bytes());
        }
        LinkFrame::Heartbeat => out.push(TAG_HEARTBEAT),
        LinkFrame::Refuse { reason } => {
            out.push(TAG_REFUSE);
            let reason = truncate(reason, REFUSE_REASON_BYTES_MAX);
            out.extend_from_slice(&(reason.len() as u16).to_le_bytes());
            out.extend_from_slice(reason.as_bytes());
        }
        LinkFrame::Presence { online } => {
            out.push(TAG_PRESENCE);
            out.extend_from_slice(&(online.len() as u32).to_le_bytes());
            for name in online {
                out.push(name.len() as u8);
                out.extend_from_slice(name.as_bytes());
            }
        }
    }
    out
}

/// Decodes and checks one frame from untrusted bytes.
///
/// # Errors
/// See [`WireError`].
pub fn decode(bytes: &[u8]) -> Result<LinkFrame, WireError> {
    let mut reader = Reader { bytes };
    let frame = match reader.u8("tag")? {
        TAG_RESUME => {
            let log_id = reader.u128("log_id")?;
            let from = reader.u64("from")?;
            let has_last = reader.u8("has_last")?;
            let crc = reader.u32("last_crc")?;
            let last_crc = match has_last {
                0 if crc == 0 => None,
                0 => return Err(WireError::Malformed("last_crc without has_last")),
                1 => Some(crc),
                _ => return Err(WireError::Malformed("has_last flag")),
            };
            LinkFrame::Resume {
                log_id,
                from,
                last_crc,
            }
        }
        TAG_BATCH => {
            let log_id = reader.u128("log_id")?;
            let count = reader.u32("count")? as usize;
            if count > BATCH_RECORDS_MAX {
                return Err(WireError::TooMany {
                    what: "records in a batch",
                    found: count,
                    limit: BATCH_RECORDS_MAX,
                });
            }
            // Each record needs at least its head: a count the bytes cannot hold is refused
            // before anything is allocated for it.
            if reader.bytes.len() / RECORD_HEAD_BYTES < count {
                return Err(WireError::Short("batch records"));
            }
            let mut records: Vec<ShippedRecord> = Vec::with_capacity(count);
            for _ in 0..count {
                let record = read_record(&mut reader)?;
                if let Some(before) = records.last() {
                    if record.offset <= before.offset {
                        return Err(WireError::Order {
                            offset: record.offset,
                            why: "offsets do not increase",
                        });
                    }
                    if record.previous != before.offset {
                        return Err(WireError::Order {
                            offset: record.offset,
                            why: "previous is not the record before it",
                        });
                    }
                }
                if record.previous != NO_PREVIOUS && record.previous >= record.offset {
                    return Err(WireError::Order {
                        offset: record.offset,
                        why: "previous is not below the offset",
                    });
                }
                records.push(record);
            }
            LinkFrame::Batch { log_id, records }
        }
        TAG_ACK => LinkFrame::Ack {
            durable: reader.u64("durable")?,
        },
        TAG_HEARTBEAT => LinkFrame::Heartbeat,
        TAG_REFUSE => {
            let length = usize::from(reader.u16("reason length")?);
            if length > REFUSE_REASON_BYTES_MAX {
                return Err(WireError::TooMany {
                    what: "reason bytes",
                    found: length,
                    limit: REFUSE_REASON_BYTES_MAX,
                });
            }
            let reason = std::str::from_utf8(reader.take(length, "reason")?)
                .map_err(|_| WireError::Malformed("reason (not UTF-8)"))?
                .to_owned();
            LinkFrame::Refuse { reason }
        }
        TAG_PRESENCE => {
            let count = reader.u32("count")? as usize;
            if count > PRESENCE_NAMES_MAX {
                return Err(WireError::TooMany {
                    what: "names in a presence frame",
                    found: count,
                    limit: PRESENCE_NAMES_MAX,
                });
            }
            if reader.bytes.len() / 2 < count {
                return Err(WireError::Short("presence names"));
            }
            let mut online: Vec<String> = Vec::with_capacity(count);
            for _ in 0..count {
                let length = usize::from(reader.u8("name length")?);
                if length == 0 || length > PRESENCE_NAME_BYTES_MAX {
                    return Err(WireError::Malformed("presence name length"));
                }
                let name = reader.take(length, "name")?;
                if !name
                    .iter()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(byte))
                {
                    return Err(WireError::Malformed("presence name (not a local name)"));
                }
                let name = String::from_utf8_lossy(name).into_owned();
                if online.last().is_some_and(|before| *before >= name) {
                    return Err(WireError::Malformed(
                        "presence names (not sorted and unique)",
                    ));
                }
                online.push(name);
            }
            LinkFrame::Presence { online }
        }
        other => return Err(WireError::UnknownTag(other)),
    };
    if !reader.bytes.is_empty() {
        return Err(WireError::Trailing(reader.bytes.len()));
    }
    Ok(frame)
}

fn read_record(reader: &mut Reader<'_>) -> Result<ShippedRecord, WireError> {
    let offset = reader.u64("offset")?;
    let previous = reader.u64("previous")?;
    let timestamp_us = reader.u64("timestamp")?;
    let kind = reader.u16("kind")?;
    let schema_version = reader.u16("schema_version")?;
    let origin_hub = reader.u128("origin_hub")?;
    let crc = reader.u32("crc")?;
    let length = reader.u32("payload length")? as usize;
    if length > SHIPPED_PAYLOAD_BYTES_MAX {
        return Err(WireError::TooMany {
            what: "payload bytes",
            found: length,
            limit: SHIPPED_PAYLOAD_BYTES_MAX,
        });
    }
    let payload = reader.take(length, "payload")?.to_vec();
    if record_crc(
        offset,
        timestamp_us,
        kind,
        schema_version,
        origin_hub,
        &payload,
    ) != crc
    {
        return Err(WireError::Crc(offset));
    }
    Ok(ShippedRecord {
        offset,
        previous,
        timestamp_us,
        kind,
        schema_version,
        origin_hub,
        crc,
        payload,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.bytes.len() < count {
            return Err(WireError::Short(what));
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn u128(&mut self, what: &'static str) -> Result<u128, WireError> {
        Ok(u128::from_le_bytes(self.array(what)?))
    }
}

/// The longest prefix of `text` of at most `limit` bytes that ends on a character boundary.
fn truncate(text: &str, limit: usize) -> &str {
    let mut end = text.len().min(limit);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(offset: u64, previous: u64, payload: Vec<u8>) -> ShippedRecord {
        ShippedRecord {
            offset,
            previous,
            timestamp_us: 7,
            kind: 3,
            schema_version: 1,
            origin_hub: 9,
            crc: record_crc(offset, 7, 3, 1, 9, &payload),
            payload,
        }
    }

    #[test]
    fn every_frame_round_trips() {
        let frames = [
            LinkFrame::Resume {
                log_id: 5,
                from: 10,
                last_crc: Some(77),
            },
            LinkFrame::Resume {
                log_id: 0,
                from: 0,
                last_crc: None,
            },
            LinkFrame::Batch {
                log_id: 5,
                records: vec![
                    record(10, NO_PREVIOUS, b"a".to_vec()),
                    record(12, 10, Vec::new()),
                ],
            },
            LinkFrame::Ack { durable: 13 },
            LinkFrame::Heartbeat,
            LinkFrame::Refuse {
                reason: "log id changed".to_owned(),
            },
        ];
        for frame in frames {
            assert_eq!(decode(&encode(&frame)), Ok(frame));
        }
    }

    #[test]
    fn a_flipped_payload_byte_a_broken_chain_and_a_huge_count_are_refused() {
        let batch = LinkFrame::Batch {
            log_id: 5,
            records: vec![
                record(10, NO_PREVIOUS, b"abc".to_vec()),
                record(11, 10, b"d".to_vec()),
            ],
        };
        let mut bytes = encode(&batch);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(decode(&bytes), Err(WireError::Crc(11)));

        let unchained = LinkFrame::Batch {
            log_id: 5,
            records: vec![
                record(10, NO_PREVIOUS, Vec::new()),
                record(11, 9, Vec::new()),
            ],
        };
        assert!(matches!(
            decode(&encode(&unchained)),
            Err(WireError::Order { offset: 11, .. })
        ));

        let mut huge = vec![TAG_BATCH];
        huge.extend_from_slice(&5u128.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&huge), Err(WireError::TooMany { .. })));
        let mut claims = vec![TAG_BATCH];
        claims.extend_from_slice(&5u128.to_le_bytes());
        claims.extend_from_slice(&1000u32.to_le_bytes());
        assert_eq!(decode(&claims), Err(WireError::Short("batch records")));
    }

    #[test]
    fn presence_round_trips_and_refuses_unsorted_qualified_or_empty_names() {
        let presence = LinkFrame::Presence {
            online: vec!["alice".to_owned(), "bob.dev".to_owned()],
        };
        assert_eq!(decode(&encode(&presence)), Ok(presence));
        let empty = LinkFrame::Presence { online: Vec::new() };
        assert_eq!(decode(&encode(&empty)), Ok(empty));
        for names in [
            vec!["bob", "alice"],
            vec!["a", "a"],
            vec!["bob@b"],
            vec![""],
        ] {
            let frame = LinkFrame::Presence {
                online: names.iter().map(|name| (*name).to_owned()).collect(),
            };
            assert!(decode(&encode(&frame)).is_err(), "{names:?}");
        }
        let mut huge = vec![TAG_PRESENCE];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&huge), Err(WireError::TooMany { .. })));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn a_decoded_frame_encodes_to_the_same_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(frame) = decode(&bytes) {
                prop_assert_eq!(encode(&frame), bytes);
            }
        }
    }
}
