//! The codec and the kind table: numbers and names stable, round trips exact, errors typed,
//! arbitrary bytes never panic.

use proptest::prelude::*;
use relay_replay::event::*;
use relay_replay::{
    DecodeError, EncodeBuffer, Event, EventKind, decode, encode, encode_into, fuzzing,
};

use crate::golden::fixtures;

#[test]
fn kind_numbers_and_names_are_stable() {
    let table: Vec<(u16, &str)> = EventKind::ALL
        .iter()
        .map(|k| (k.number(), k.name()))
        .collect();
    assert_eq!(
        table,
        [
            (1, "identity_registered"),
            (2, "identity_renamed"),
            (3, "identity_left"),
            (4, "identity_forgotten"),
            (10, "message_sent"),
            (11, "ask_sent"),
            (12, "reply_sent"),
            (13, "message_pushed"),
            (14, "mailbox_cursor_advanced"),
            (15, "message_read"),
            (16, "message_status_reported"),
            (17, "ask_deadline_set"),
            (18, "ask_expired"),
            (19, "message_refused"),
            (20, "room_joined"),
            (21, "room_left"),
            (22, "room_message_sent"),
            (30, "group_created"),
            (31, "group_member_invited"),
            (32, "group_member_removed"),
            (33, "group_left"),
            (34, "group_message_sent"),
            (35, "group_cursor_advanced"),
            (36, "group_deleted"),
            (37, "group_message_acknowledged"),
            (40, "imported"),
            (41, "peer_acknowledged"),
            (42, "link_imported"),
            (43, "link_acknowledged"),
            (50, "hub_started"),
            (60, "request_completed"),
            (70, "batch_started"),
            (71, "batch_ended"),
        ]
    );
    for kind in EventKind::ALL {
        assert_eq!(EventKind::from_number(kind.number()), Some(*kind));
        assert_eq!(EventKind::from_name(kind.name()), Some(*kind));
    }
    assert_eq!(EventKind::from_number(0), None);
    assert_eq!(EventKind::from_name("message"), None);
}

#[test]
fn every_event_round_trips_through_encode_and_decode() {
    for (name, event) in fixtures() {
        let encoded = encode(&event);
        assert_eq!(encoded.kind, event.kind().number());
        assert_eq!(encoded.schema_version, 1);
        let decoded = decode(encoded.kind, encoded.schema_version, &encoded.payload);
        assert_eq!(decoded.as_ref(), Ok(&event), "{name}");
    }
}

#[test]
fn decode_accepts_an_unaligned_slice() {
    let event = Event::from(GroupCreated {
        group: "g".into(),
        admin: "alice".into(),
    });
    let encoded = encode(&event);
    let mut shifted = vec![0u8];
    shifted.extend_from_slice(&encoded.payload);
    assert_eq!(decode(encoded.kind, 1, &shifted[1..]), Ok(event));
}

#[test]
fn json_carries_the_kind_name() {
    for (name, event) in fixtures() {
        let json = serde_json::to_value(&event).expect("event serializes");
        assert_eq!(json["kind"], event.kind().name(), "{name}");
    }
    let hub = Event::from(PeerAcknowledged {
        peer_hub: 255,
        offset: 1,
    });
    let json = serde_json::to_value(&hub).expect("event serializes");
    assert_eq!(json["peer_hub"], "000000000000000000000000000000ff");
}

#[test]
fn unknown_kind_and_version_are_typed_errors() {
    assert_eq!(
        decode(999, 1, &[]),
        Err(DecodeError::UnknownKind {
            kind: 999,
            schema_version: 1
        })
    );
    assert_eq!(
        decode(10, 2, &[]),
        Err(DecodeError::UnknownSchemaVersion {
            kind: 10,
            schema_version: 2
        })
    );
    let result = decode(10, 1, &[1, 2, 3]);
    assert!(matches!(
        result,
        Err(DecodeError::InvalidPayload {
            kind: 10,
            schema_version: 1,
            ..
        })
    ));
}

#[test]
fn payload_of_one_kind_does_not_decode_as_a_bigger_kind() {
    let encoded = encode(&Event::from(IdentityLeft { name: "a".into() }));
    assert!(decode(EventKind::MessageSent.number(), 1, &encoded.payload).is_err());
}

proptest! {
    /// One buffer reused across events in any order (a big one before a small one, the same
    /// one twice) gives each the bytes and header fields `encode` gives it alone.
    #[test]
    fn a_reused_encode_buffer_gives_the_bytes_of_a_fresh_one(
        order in proptest::collection::vec(any::<prop::sample::Index>(), 1..40),
    ) {
        let events: Vec<Event> = fixtures().into_iter().map(|(_, event)| event).collect();
        let mut buffer = EncodeBuffer::new();
        for index in order {
            let event = &events[index.index(events.len())];
            let (kind, schema_version) = encode_into(event, &mut buffer);
            let alone = encode(event);
            prop_assert_eq!((kind, schema_version), (alone.kind, alone.schema_version));
            prop_assert_eq!(&buffer[..], &alone.payload[..]);
            prop_assert_eq!(&decode(kind, schema_version, &buffer).unwrap(), event);
        }
    }
}

#[test]
fn truncated_payloads_never_panic() {
    for (_, event) in fixtures() {
        let encoded = encode(&event);
        for len in 0..encoded.payload.len() {
            fuzzing::fuzz_decode_all_kinds(&encoded.payload[..len]);
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        fuzzing::fuzz_decode_all_kinds(&bytes);
        fuzzing::fuzz_decode_snapshot(&bytes);
    }

    #[test]
    fn flipped_bytes_never_panic(index in any::<prop::sample::Index>(), bit in 0u8..8) {
        for (_, event) in fixtures() {
            let mut payload = encode(&event).payload;
            if payload.is_empty() {
                continue;
            }
            let at = index.index(payload.len());
            payload[at] ^= 1 << bit;
            fuzzing::fuzz_decode_all_kinds(&payload);
        }
    }
}
