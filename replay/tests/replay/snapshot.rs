//! Snapshots: exact round trips, equal bytes for equal states, and typed errors on damage.

use relay_replay::snapshot::{SNAPSHOT_FORMAT_VERSION, SNAPSHOT_HEADER_BYTES};
use relay_replay::{SnapshotError, State, snapshot_decode, snapshot_encode};

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
    // Version 3 held mailboxes as rings that dropped unread mail; its bytes must never be read
    // as today's state.
    let mut bytes = snapshot_encode(&log_with(&["alice"]).state, 1);
    bytes[8..10].copy_from_slice(&3u16.to_le_bytes());
    assert_eq!(SNAPSHOT_FORMAT_VERSION, 4);
    assert_eq!(
        snapshot_decode(&bytes),
        Err(SnapshotError::UnsupportedVersion {
            found: 3,
            supported: SNAPSHOT_FORMAT_VERSION
        })
    );
}
