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

/// Imports `bytes` from a linked hub into a small state, as the receiving hub would: the first
/// byte picks the kind (the shippable ones first, then any), the rest is the payload. Each
/// import is applied to a clone, and a rejected one must leave the state unchanged. Must never
/// panic, whatever the bytes.
pub fn fuzz_link_import(bytes: &[u8]) {
    use crate::apply::{RecordMeta, apply};
    use crate::event::{Event, LinkImported};

    let Some((&selector, payload)) = bytes.split_first() else {
        return;
    };
    let kinds = [
        EventKind::MessageSent,
        EventKind::AskSent,
        EventKind::ReplySent,
        EventKind::MessagePushed,
        EventKind::MessageRead,
        EventKind::MessageStatusReported,
        EventKind::LinkImported,
        EventKind::GroupMemberInvited,
        EventKind::GroupMemberRemoved,
        EventKind::GroupLeft,
        EventKind::GroupMessageSent,
        EventKind::GroupDeleted,
    ];
    let kind = kinds
        .get(usize::from(selector))
        .copied()
        .unwrap_or_else(|| EventKind::ALL[usize::from(selector) % EventKind::ALL.len()]);
    let Some(mut state) = link_import_state() else {
        return;
    };
    let import = Event::from(LinkImported {
        origin_hub: "a".to_owned(),
        local_hub: "b".to_owned(),
        origin_log_id: 7,
        origin_offset: u64::from(selector) + 1,
        origin_timestamp_us: 0,
        origin_crc: 0,
        kind: kind.number(),
        schema_version: 1,
        payload: payload.to_vec(),
        refused: None,
    });
    let before = state.clone();
    let meta = RecordMeta {
        offset: 10,
        timestamp_us: 1,
        origin_hub: 1,
    };
    if apply(&mut state, meta, &import).is_err() {
        assert_eq!(state, before, "a rejected import changed the state");
    }
}

/// The state [`fuzz_link_import`] imports into: peers `bob` and `carol`, a group `team` homed
/// here with carol and hub a's `dave@a`, and a copy `team@a` of hub a's group with bob.
/// `None` would be a bug in the setup (a test checks it is `Some`).
pub fn link_import_state() -> Option<crate::state::State> {
    use crate::apply::{RecordMeta, apply};
    use crate::event::{
        ClientKind, Event, GroupCreated, GroupMemberInvited, IdentityRegistered, LinkImported,
    };
    use crate::state::State;

    let mut state = State::new();
    for (offset, name) in ["bob", "carol"].into_iter().enumerate() {
        let register = Event::from(IdentityRegistered {
            name: name.to_owned(),
            cwd: String::new(),
            git_branch: None,
            client: ClientKind::Cli,
        });
        let meta = RecordMeta {
            offset: offset as u64,
            timestamp_us: 0,
            origin_hub: 1,
        };
        if apply(&mut state, meta, &register).is_err() {
            return None;
        }
    }
    // A group homed here with carol (posts and departures of hub a's members land in it) and
    // a copy of hub a's group `team@a` with bob (the home's events change it).
    let groups: [Event; 3] = [
        GroupCreated {
            group: "team".to_owned(),
            admin: "carol".to_owned(),
        }
        .into(),
        LinkImported {
            origin_hub: "a".to_owned(),
            local_hub: "b".to_owned(),
            origin_log_id: 7,
            origin_offset: 0,
            origin_timestamp_us: 0,
            origin_crc: 0,
            kind: EventKind::GroupMemberInvited.number(),
            schema_version: 1,
            payload: crate::encode(&Event::from(GroupMemberInvited {
                group: "team".to_owned(),
                actor: "alice".to_owned(),
                member: "bob@b".to_owned(),
            }))
            .payload
            .to_vec(),
            refused: None,
        }
        .into(),
        GroupMemberInvited {
            group: "team".to_owned(),
            actor: "carol".to_owned(),
            member: "dave@a".to_owned(),
        }
        .into(),
    ];
    for (offset, event) in groups.iter().enumerate() {
        let meta = RecordMeta {
            offset: 2 + offset as u64,
            timestamp_us: 0,
            origin_hub: 1,
        };
        if apply(&mut state, meta, event).is_err() {
            return None;
        }
    }
    Some(state)
}
