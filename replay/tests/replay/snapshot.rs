//! Snapshots: exact round trips, equal bytes for equal states, and typed errors on damage.

use relay_replay::limits::SNAPSHOT_BODY_BYTES_MAX;
use relay_replay::snapshot::{
    SNAPSHOT_FORMAT_VERSION, SNAPSHOT_HEADER_BYTES, snapshot_encode_within,
};
use relay_replay::{
    SnapshotEncodeError, SnapshotError, SnapshotSample, SnapshotVerifyError, State,
    snapshot_decode, snapshot_encode, snapshot_encode_checked, snapshot_verify,
};

use crate::support::*;

/// 100 identities with full mailboxes, a group and a room: the start-up size we budget for.
fn large_log() -> TestLog {
    let names: Vec<String> = (0..100).map(|n| format!("session-{n:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut log = log_with(&refs);
    log.ok(create_group("all", &names[0]));
    for name in &names[1..] {
        log.ok(invite("all", &names[0], name));
        log.ok(join("lobby", name));
    }
    let mut id = 0;
    for (index, name) in names.iter().enumerate() {
        let from = &names[(index + 1) % names.len()];
        for _ in 0..500 {
            id += 1;
            let body = format!("message {id}: the build is green on my side, please re-run yours");
            log.ok(send(&format!("m-{id}"), from, name, &body));
        }
    }
    for n in 0..500 {
        log.ok(group_send(
            "all",
            &format!("g-{n}"),
            &names[n % 100],
            "status update",
        ));
    }
    log
}

#[test]
fn snapshot_round_trips_the_state_and_next_offset() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(send("m-1", "alice", "bob", "hi"));
    log.ok(ask("m-2", "a-1", "alice", "bob", Some("b-1")));
    log.ok(create_group("team", "alice"));
    log.ok(join("lobby", "bob"));
    log.ok(relay_replay::event::PeerAcknowledged {
        peer_hub: u128::MAX,
        offset: 3,
    });
    let bytes = snapshot_encode(&log.state, log.state.next_offset());
    assert_eq!(
        snapshot_decode(&bytes),
        Ok((log.state.clone(), log.state.next_offset()))
    );
}

#[test]
fn empty_state_round_trips() {
    let bytes = snapshot_encode(&State::new(), 0);
    assert_eq!(snapshot_decode(&bytes), Ok((State::new(), 0)));
}

#[test]
fn equal_states_give_equal_snapshot_bytes() {
    let build = || {
        let mut log = log_with(&["bob", "alice", "carol"]);
        log.ok(create_group("z", "carol"));
        log.ok(create_group("a", "bob"));
        log.ok(send("m-1", "alice", "bob", "hi"));
        log.state
    };
    assert_eq!(snapshot_encode(&build(), 7), snapshot_encode(&build(), 7));
}

#[test]
fn damaged_snapshots_are_typed_errors() {
    let log = log_with(&["alice"]);
    let bytes = snapshot_encode(&log.state, 1);

    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    assert!(matches!(
        snapshot_decode(&flipped),
        Err(SnapshotError::ChecksumMismatch { .. })
    ));

    let short = &bytes[..bytes.len() - 1];
    assert!(matches!(
        snapshot_decode(short),
        Err(SnapshotError::Truncated { .. })
    ));
    assert!(matches!(
        snapshot_decode(&bytes[..4]),
        Err(SnapshotError::Truncated { .. })
    ));

    let mut magic = bytes.clone();
    magic[0] = b'X';
    assert_eq!(snapshot_decode(&magic), Err(SnapshotError::BadMagic));

    let mut version = bytes;
    version[8] = 99;
    assert_eq!(
        snapshot_decode(&version),
        Err(SnapshotError::UnsupportedVersion {
            found: 99,
            supported: SNAPSHOT_FORMAT_VERSION
        })
    );
}

#[test]
fn body_that_passes_the_checksum_but_is_not_a_state_is_invalid() {
    let mut bytes = snapshot_encode(&State::new(), 0);
    bytes.truncate(SNAPSHOT_HEADER_BYTES);
    bytes.extend_from_slice(&[0xff; 16]);
    bytes[24..32].copy_from_slice(&16u64.to_le_bytes());
    let crc = crc32fast::hash(&bytes[16..]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    assert!(matches!(
        snapshot_decode(&bytes),
        Err(SnapshotError::InvalidBody { .. })
    ));
}

#[test]
fn large_state_snapshot_round_trips() {
    // 100 identities × 500 messages. Its decode time is measured by `relay bench replay`,
    // never asserted here: the machines are shared and noisy.
    let log = large_log();
    let bytes = snapshot_encode(&log.state, log.state.next_offset());
    let (state, next_offset) = snapshot_decode(&bytes).expect("snapshot decodes");
    assert_eq!(next_offset, log.state.next_offset());
    assert_eq!(state, log.state);
}

#[test]
fn snapshot_round_trips_refusals_missed_counts_and_aged_out_read_mail() {
    let mut log = log_with(&["alice", "bob"]);
    for n in 1..=relay_replay::limits::MAILBOX_READ_MAX + 20 {
        log.ok(send(&format!("m-{n}"), "alice", "bob", "x"));
    }
    log.ok(relay_replay::event::MessageRead {
        recipient: "bob".into(),
        message_id: "m-3".into(),
    });
    log.ok(read_mailbox("bob", 510));
    log.ok(relay_replay::event::MessageRefused {
        from: "alice".into(),
        to: "bob".into(),
        body_bytes: 9,
    });
    log.ok(create_group("team", "alice"));
    log.ok(invite("team", "alice", "bob"));
    for n in 0..=relay_replay::limits::GROUP_MESSAGES_MAX {
        log.ok(group_send("team", &format!("g-{n}"), "alice", "x"));
    }
    let bob = log.id("bob");
    assert_eq!(log.state.group("team").expect("group").missed_for(bob), 1);
    assert_eq!(
        log.state.mailbox(bob).expect("mailbox").refusals().total(),
        1
    );
    let bytes = snapshot_encode(&log.state, log.state.next_offset());
    assert_eq!(
        snapshot_decode(&bytes),
        Ok((log.state.clone(), log.state.next_offset()))
    );
}

#[test]
fn a_snapshot_of_the_previous_format_is_refused_so_the_hub_rebuilds_from_the_log() {
    // Version 8 laid mailbox messages out as plain structs and archived the message index;
    // its bytes must never be read as today's state.
    let mut bytes = snapshot_encode(&log_with(&["alice"]).state, 1);
    bytes[8..10].copy_from_slice(&8u16.to_le_bytes());
    assert_eq!(SNAPSHOT_FORMAT_VERSION, 9);
    assert_eq!(
        snapshot_decode(&bytes),
        Err(SnapshotError::UnsupportedVersion {
            found: 8,
            supported: SNAPSHOT_FORMAT_VERSION
        })
    );
}

/// A state with mail, a group and a pending ask, and its snapshot bytes.
fn mailed_state() -> (TestLog, Vec<u8>) {
    let mut log = log_with(&["alice", "bob", "carol"]);
    log.ok(send("m-1", "alice", "bob", "the poisoned dart"));
    log.ok(ask("m-2", "a-1", "bob", "carol", None));
    log.ok(create_group("team", "alice"));
    log.ok(invite("team", "alice", "bob"));
    log.ok(group_send("team", "g-1", "bob", "standup at ten"));
    let bytes = snapshot_encode(&log.state, log.state.next_offset());
    (log, bytes)
}

/// `bytes` with the CRC recomputed, as damage that a CRC cannot see would leave them.
fn with_crc_fixed(mut bytes: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&bytes[16..]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    bytes
}

#[test]
fn a_state_past_the_body_bound_is_refused_without_panicking() {
    let (log, bytes) = mailed_state();
    let next_offset = log.state.next_offset();
    let body_bytes = bytes.len() - SNAPSHOT_HEADER_BYTES;
    // At the bound exactly it fits, with the same bytes as the unbounded encoder.
    assert_eq!(
        snapshot_encode_within(&log.state, next_offset, body_bytes),
        Ok(bytes.clone())
    );
    assert_eq!(snapshot_encode_checked(&log.state, next_offset), Ok(bytes));
    // One byte less is refused, cleanly.
    for bound in [body_bytes - 1, body_bytes / 2, 16, 0] {
        assert_eq!(
            snapshot_encode_within(&log.state, next_offset, bound),
            Err(SnapshotEncodeError::TooLarge {
                body_bytes_max: bound
            })
        );
    }
    // A bound past the real one is clamped to it.
    assert!(snapshot_encode_within(&log.state, next_offset, usize::MAX).is_ok());
    let refused = snapshot_encode_within(&log.state, next_offset, 16).expect_err("refused");
    assert!(
        refused.to_string().contains("no snapshot is taken"),
        "{refused}"
    );
    const _: () = assert!(SNAPSHOT_BODY_BYTES_MAX < 1 << 31);
}

#[test]
fn the_poisoned_dart_check_passes_a_faithful_snapshot() {
    let (log, bytes) = mailed_state();
    let sample = SnapshotSample::of(&log.state, 0);
    assert_eq!(snapshot_verify(&bytes, &sample), Ok(()));
    // Every rotation checks a faithful snapshot as faithful.
    for rotation in 1..5 {
        let sample = SnapshotSample::of(&log.state, rotation);
        assert_eq!(snapshot_verify(&bytes, &sample), Ok(()));
    }
    let (large, large_bytes) = {
        let log = large_log();
        let bytes = snapshot_encode(&log.state, log.state.next_offset());
        (log, bytes)
    };
    assert_eq!(
        snapshot_verify(&large_bytes, &SnapshotSample::of(&large.state, 7)),
        Ok(())
    );
}

#[test]
fn the_poisoned_dart_check_catches_a_snapshot_of_another_state() {
    let (mut log, bytes) = mailed_state();
    // The live state moved on (one more message) but the bytes are the old encoding.
    log.ok(send("m-3", "carol", "alice", "one more"));
    let sample = SnapshotSample::of(&log.state, 0);
    assert!(matches!(
        snapshot_verify(&bytes, &sample),
        Err(SnapshotVerifyError::CountDiffers { .. })
    ));
}

#[test]
fn the_poisoned_dart_check_catches_changed_text_that_the_crc_covers_up() {
    let (log, bytes) = mailed_state();
    let sample = SnapshotSample::of(&log.state, 0);
    // Flip one letter of the stored message text and fix the CRC: the snapshot decodes, with
    // every count equal, but bob's mailbox is not what the state holds.
    let needle = b"poisoned";
    let at = bytes
        .windows(needle.len())
        .position(|window| window == needle)
        .expect("the text is in the body");
    let mut damaged = bytes.clone();
    damaged[at] = b'P';
    let damaged = with_crc_fixed(damaged);
    assert!(snapshot_decode(&damaged).is_ok(), "still a valid snapshot");
    assert_eq!(
        snapshot_verify(&damaged, &sample),
        Err(SnapshotVerifyError::SampleDiffers {
            what: format!("mailbox of identity {}", log.id("bob").0),
        })
    );
    // A flipped byte the CRC sees is a decode failure.
    let mut torn = bytes;
    torn[at] = b'P';
    assert!(matches!(
        snapshot_verify(&torn, &sample),
        Err(SnapshotVerifyError::Decode(
            SnapshotError::ChecksumMismatch { .. }
        ))
    ));
}
