//! Golden bytes: committed payloads per kind that must keep decoding to the same event.
//!
//! Each fixture is `tests/golden/v1/<name>.hex` (the payload as hex). The test decodes it and
//! compares with the event written here, and checks that encoding that event still gives the
//! same bytes. A failure means a frozen struct in `event/v1.rs` changed: add a new schema version
//! instead. To create the files for a new fixture (never to "fix" a failing one), run with
//! `RELAY_GOLDEN_WRITE=1`.

use std::path::PathBuf;

use relay_replay::event::*;
use relay_replay::{Event, EventKind, decode, encode};

/// Every fixture: file name and the event its bytes must decode to. At least two per kind.
pub(crate) fn fixtures() -> Vec<(&'static str, Event)> {
    let inner = encode(&Event::from(MessageSent {
        id: "m-1".into(),
        from: "bob@lab".into(),
        to: "alice".into(),
        body: "hello from the lab".into(),
        reply_to: None,
        urgent: false,
        thread: None,
    }));
    vec![
        (
            "identity_registered_1",
            IdentityRegistered {
                name: "alice".into(),
                cwd: "/home/alice/api".into(),
                git_branch: Some("main".into()),
                client: ClientKind::Claude,
            }
            .into(),
        ),
        (
            "identity_registered_2",
            IdentityRegistered {
                name: "ci-runner".into(),
                cwd: String::new(),
                git_branch: None,
                client: ClientKind::Other("aider".into()),
            }
            .into(),
        ),
        (
            "identity_registered_3",
            IdentityRegistered {
                name: "gemini-web".into(),
                cwd: "/w".into(),
                git_branch: Some("feature/ünïcode".into()),
                client: ClientKind::Gemini,
            }
            .into(),
        ),
        (
            "identity_renamed_1",
            IdentityRenamed {
                old_name: "alice".into(),
                new_name: "backend-api".into(),
            }
            .into(),
        ),
        (
            "identity_renamed_2",
            IdentityRenamed {
                old_name: "x".into(),
                new_name: "y-with-a-much-longer-name".into(),
            }
            .into(),
        ),
        (
            "identity_left_1",
            IdentityLeft {
                name: "alice".into(),
            }
            .into(),
        ),
        (
            "identity_left_2",
            IdentityLeft {
                name: String::new(),
            }
            .into(),
        ),
        (
            "identity_forgotten_1",
            IdentityForgotten {
                name: "alice".into(),
                identity_id: 0,
            }
            .into(),
        ),
        (
            "identity_forgotten_2",
            IdentityForgotten {
                name: "ci-runner-17".into(),
                identity_id: 1_234_567_890_123,
            }
            .into(),
        ),
        (
            "message_sent_1",
            MessageSent {
                id: "m-1".into(),
                from: "alice".into(),
                to: "bob".into(),
                body: "did the auth token shape change?".into(),
                reply_to: None,
                urgent: false,
                thread: None,
            }
            .into(),
        ),
        (
            "message_sent_2",
            MessageSent {
                id: "m-2".into(),
                from: "bob".into(),
                to: "alice".into(),
                body: "yes — see PR #12 🚀".into(),
                reply_to: Some("m-1".into()),
                urgent: true,
                thread: Some("auth".into()),
            }
            .into(),
        ),
        (
            "ask_sent_1",
            AskSent {
                id: "m-3".into(),
                ask_id: "a-1".into(),
                from: "alice".into(),
                to: "bob".into(),
                body: "what are you working on?".into(),
                broadcast_id: None,
                urgent: false,
                thread: None,
            }
            .into(),
        ),
        (
            "ask_sent_2",
            AskSent {
                id: "m-4".into(),
                ask_id: "a-2".into(),
                from: "alice".into(),
                to: "carol".into(),
                body: "status?".into(),
                broadcast_id: Some("b-1".into()),
                urgent: true,
                thread: Some("standup".into()),
            }
            .into(),
        ),
        (
            "reply_sent_1",
            ReplySent {
                id: "m-5".into(),
                from: "bob".into(),
                to: "alice".into(),
                body: "the parser".into(),
                reply_to: "a-1".into(),
                urgent: false,
                thread: None,
            }
            .into(),
        ),
        (
            "reply_sent_2",
            ReplySent {
                id: "m-6".into(),
                from: "carol".into(),
                to: "alice".into(),
                body: "green".into(),
                reply_to: "m-4".into(),
                urgent: true,
                thread: Some("standup".into()),
            }
            .into(),
        ),
        (
            "message_pushed_1",
            MessagePushed {
                recipient: "bob".into(),
                message_id: "m-1".into(),
            }
            .into(),
        ),
        (
            "message_pushed_2",
            MessagePushed {
                recipient: "alice".into(),
                message_id: "m-1000000".into(),
            }
            .into(),
        ),
        (
            "mailbox_cursor_advanced_1",
            MailboxCursorAdvanced {
                recipient: "bob".into(),
                up_to_sequence: 1,
            }
            .into(),
        ),
        (
            "mailbox_cursor_advanced_2",
            MailboxCursorAdvanced {
                recipient: "alice".into(),
                up_to_sequence: u64::MAX,
            }
            .into(),
        ),
        (
            "room_joined_1",
            RoomJoined {
                room: "frontend".into(),
                name: "alice".into(),
            }
            .into(),
        ),
        (
            "room_joined_2",
            RoomJoined {
                room: "#ops".into(),
                name: "bob".into(),
            }
            .into(),
        ),
        (
            "room_left_1",
            RoomLeft {
                room: "frontend".into(),
                name: "alice".into(),
            }
            .into(),
        ),
        (
            "room_left_2",
            RoomLeft {
                room: "#ops".into(),
                name: "bob".into(),
            }
            .into(),
        ),
        (
            "room_message_sent_1",
            RoomMessageSent {
                room: "frontend".into(),
                id: "r-1".into(),
                from: "alice".into(),
                body: "deploying".into(),
            }
            .into(),
        ),
        (
            "room_message_sent_2",
            RoomMessageSent {
                room: "#ops".into(),
                id: "r-2".into(),
                from: "bob".into(),
                body: String::new(),
            }
            .into(),
        ),
        (
            "group_created_1",
            GroupCreated {
                group: "release".into(),
                admin: "alice".into(),
            }
            .into(),
        ),
        (
            "group_created_2",
            GroupCreated {
                group: "g".into(),
                admin: "bob".into(),
            }
            .into(),
        ),
        (
            "group_member_invited_1",
            GroupMemberInvited {
                group: "release".into(),
                actor: "alice".into(),
                member: "bob".into(),
            }
            .into(),
        ),
        (
            "group_member_invited_2",
            GroupMemberInvited {
                group: "g".into(),
                actor: "bob".into(),
                member: "carol@lab".into(),
            }
            .into(),
        ),
        (
            "group_member_removed_1",
            GroupMemberRemoved {
                group: "release".into(),
                actor: "alice".into(),
                member: "bob".into(),
                reason: "off topic".into(),
            }
            .into(),
        ),
        (
            "group_member_removed_2",
            GroupMemberRemoved {
                group: "g".into(),
                actor: "bob".into(),
                member: "carol@lab".into(),
                reason: String::new(),
            }
            .into(),
        ),
        (
            "group_left_1",
            GroupLeft {
                group: "release".into(),
                member: "bob".into(),
            }
            .into(),
        ),
        (
            "group_left_2",
            GroupLeft {
                group: "g".into(),
                member: "carol@lab".into(),
            }
            .into(),
        ),
        (
            "group_message_sent_1",
            GroupMessageSent {
                group: "release".into(),
                id: "g-1".into(),
                from: "alice".into(),
                body: "cut at 5pm".into(),
                reply_to: None,
                urgent: false,
            }
            .into(),
        ),
        (
            "group_message_sent_2",
            GroupMessageSent {
                group: "release".into(),
                id: "g-2".into(),
                from: "bob".into(),
                body: "ok".into(),
                reply_to: Some("g-1".into()),
                urgent: true,
            }
            .into(),
        ),
        (
            "group_cursor_advanced_1",
            GroupCursorAdvanced {
                group: "release".into(),
                member: "bob".into(),
                up_to_sequence: 2,
            }
            .into(),
        ),
        (
            "group_cursor_advanced_2",
            GroupCursorAdvanced {
                group: "g".into(),
                member: "carol@lab".into(),
                up_to_sequence: 0,
            }
            .into(),
        ),
        (
            "group_deleted_1",
            GroupDeleted {
                group: "release".into(),
                actor: "alice".into(),
            }
            .into(),
        ),
        (
            "group_deleted_2",
            GroupDeleted {
                group: "g".into(),
                actor: "bob".into(),
            }
            .into(),
        ),
        (
            "imported_1",
            Imported {
                origin_hub: 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
                origin_offset: 42,
                kind: inner.kind,
                schema_version: inner.schema_version,
                payload: inner.payload.clone(),
            }
            .into(),
        ),
        (
            "imported_2",
            Imported {
                origin_hub: u128::MAX,
                origin_offset: 0,
                kind: 1,
                schema_version: 1,
                payload: Vec::new(),
            }
            .into(),
        ),
        (
            "peer_acknowledged_1",
            PeerAcknowledged {
                peer_hub: 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
                offset: 42,
            }
            .into(),
        ),
        (
            "peer_acknowledged_2",
            PeerAcknowledged {
                peer_hub: 1,
                offset: u64::MAX,
            }
            .into(),
        ),
        (
            "link_imported_1",
            LinkImported {
                origin_hub: "lab".into(),
                local_hub: "desk".into(),
                origin_log_id: 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
                origin_offset: 42,
                origin_timestamp_us: 1_700_000_000_000_000,
                origin_crc: 0xdead_beef,
                kind: inner.kind,
                schema_version: inner.schema_version,
                payload: inner.payload.to_vec(),
                refused: None,
            }
            .into(),
        ),
        (
            "link_imported_2",
            LinkImported {
                origin_hub: "a".into(),
                local_hub: "b".into(),
                origin_log_id: 1,
                origin_offset: u64::MAX,
                origin_timestamp_us: 0,
                origin_crc: 0,
                kind: 10,
                schema_version: 1,
                payload: Vec::new(),
                refused: Some("mailbox of bob is full".into()),
            }
            .into(),
        ),
        (
            "link_acknowledged_1",
            LinkAcknowledged {
                peer_hub: "lab".into(),
                durable: 42,
            }
            .into(),
        ),
        (
            "link_acknowledged_2",
            LinkAcknowledged {
                peer_hub: "a-very-long-hub-id-of-32-bytes-x".into(),
                durable: u64::MAX,
            }
            .into(),
        ),
        (
            "hub_started_1",
            HubStarted {
                hub_id: 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
                version: "0.1.0".into(),
            }
            .into(),
        ),
        (
            "hub_started_2",
            HubStarted {
                hub_id: 0,
                version: String::new(),
            }
            .into(),
        ),
        (
            "message_read_1",
            MessageRead {
                recipient: "alice".into(),
                message_id: "m-41".into(),
            }
            .into(),
        ),
        (
            "message_read_2",
            MessageRead {
                recipient: "web.app".into(),
                message_id: "m-18446744073709551615".into(),
            }
            .into(),
        ),
        (
            "message_status_reported_1",
            MessageStatusReported {
                recipient: "alice".into(),
                message_id: "m-41".into(),
                status: "held".into(),
            }
            .into(),
        ),
        (
            "message_status_reported_2",
            MessageStatusReported {
                recipient: "bob".into(),
                message_id: "m-7".into(),
                status: "refused".into(),
            }
            .into(),
        ),
        (
            "ask_deadline_set_1",
            AskDeadlineSet {
                ask_id: "a-3".into(),
                deadline_us: 1_700_000_600_000_000,
            }
            .into(),
        ),
        (
            "ask_deadline_set_2",
            AskDeadlineSet {
                ask_id: "a-18446744073709551615".into(),
                deadline_us: u64::MAX,
            }
            .into(),
        ),
        (
            "ask_expired_1",
            AskExpired {
                ask_id: "a-3".into(),
                message_id: "t-90".into(),
                body: "bob did not answer ask a-3 within 600 s".into(),
            }
            .into(),
        ),
        (
            "ask_expired_2",
            AskExpired {
                ask_id: "a-4".into(),
                message_id: "t-91".into(),
                body: "<ünïcode & \"quotes\">".into(),
            }
            .into(),
        ),
        (
            "group_message_acknowledged_1",
            GroupMessageAcknowledged {
                group: "core".into(),
                member: "bob".into(),
                message_id: "g-9".into(),
                read: true,
            }
            .into(),
        ),
        (
            "group_message_acknowledged_2",
            GroupMessageAcknowledged {
                group: "ops".into(),
                member: "carol".into(),
                message_id: "g-10".into(),
                read: false,
            }
            .into(),
        ),
        (
            "message_refused_1",
            MessageRefused {
                from: "alice".into(),
                to: "bob".into(),
                body_bytes: 42,
            }
            .into(),
        ),
        (
            "message_refused_2",
            MessageRefused {
                from: "ci-bot.7".into(),
                to: "release@lab".into(),
                body_bytes: 65_536,
            }
            .into(),
        ),
        (
            "batch_started_1",
            BatchStarted {
                command: "group_create".into(),
            }
            .into(),
        ),
        (
            "batch_started_2",
            BatchStarted {
                command: String::new(),
            }
            .into(),
        ),
        ("batch_ended_1", BatchEnded { event_count: 3 }.into()),
        (
            "batch_ended_2",
            BatchEnded {
                event_count: u32::MAX,
            }
            .into(),
        ),
        (
            "request_completed_1",
            RequestCompleted {
                caller: "alice".into(),
                key: "mcp-7f3a-1".into(),
                result: r#"{"msg_id":"m-41","status":"delivered"}"#.into(),
            }
            .into(),
        ),
        (
            "request_completed_2",
            RequestCompleted {
                caller: "ci".into(),
                key: "k".into(),
                result: "{}".into(),
            }
            .into(),
        ),
    ]
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/v1")
        .join(format!("{name}.hex"))
}

fn to_hex(bytes: &[u8]) -> String {
    let mut hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    hex.push('\n');
    hex
}

fn from_hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|byte| !byte.is_ascii_whitespace())
        .collect();
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("hex is ascii");
            u8::from_str_radix(pair, 16).expect("golden file holds hex digits")
        })
        .collect()
}

#[test]
fn golden_payloads_decode_to_their_events_and_encode_to_the_same_bytes() {
    let write = std::env::var_os("RELAY_GOLDEN_WRITE").is_some();
    for (name, event) in fixtures() {
        let path = golden_path(name);
        let encoded = encode(&event);
        if write && !path.exists() {
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("create dir");
            std::fs::write(&path, to_hex(&encoded.payload)).expect("write golden file");
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|error| {
            panic!(
                "{}: {error} (new fixture? run once with RELAY_GOLDEN_WRITE=1)",
                path.display()
            )
        });
        let bytes = from_hex(&text);
        let kind = event.kind().number();
        let decoded = decode(kind, 1, &bytes)
            .unwrap_or_else(|error| panic!("{name}: golden bytes no longer decode: {error}"));
        assert_eq!(
            decoded, event,
            "{name}: golden bytes decode to another event"
        );
        assert_eq!(
            encoded.payload, bytes,
            "{name}: encoding changed; add a schema version"
        );
    }
}

#[test]
fn every_kind_has_at_least_two_golden_fixtures() {
    let fixtures = fixtures();
    for kind in EventKind::ALL {
        let count = fixtures
            .iter()
            .filter(|(_, event)| event.kind() == *kind)
            .count();
        assert!(count >= 2, "{kind} has {count} golden fixtures");
        for (name, event) in &fixtures {
            if event.kind() == *kind {
                assert!(
                    name.starts_with(kind.name()),
                    "{name} is not named after {kind}"
                );
            }
        }
    }
}
