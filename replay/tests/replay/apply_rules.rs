//! One rule of `apply` per test, each with the smallest log that shows it.

use relay_replay::event::*;
use relay_replay::limits::{GROUP_MESSAGES_MAX, PENDING_ASKS_MAX};
use relay_replay::{ApplyError, DeliveryState, Event, RecordMeta, State, apply};

use crate::support::*;

#[test]
fn rename_carries_mailbox_groups_and_admin_rights() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(send("m-1", "bob", "alice", "hi"));
    log.ok(create_group("team", "alice"));
    log.ok(invite("team", "alice", "bob"));
    let alice = log.id("alice");

    log.ok(rename("alice", "carol"));

    assert_eq!(log.id("carol"), alice);
    assert!(log.state.identity_by_name("alice").is_none());
    let mailbox = log
        .state
        .mailbox(alice)
        .expect("mailbox follows the identity");
    assert_eq!(mailbox.unread(None, 10)[0].id(), "m-1");
    assert_eq!(log.state.group("team").expect("group").admin(), alice);
    log.ok(remove("team", "carol", "bob", "done"));
    let names: Vec<&str> = log
        .state
        .identity(alice)
        .expect("identity")
        .names()
        .collect();
    assert_eq!(names, ["alice", "carol"]);
}

#[test]
fn rename_to_a_taken_name_is_rejected() {
    let mut log = log_with(&["alice", "bob"]);
    assert_eq!(
        log.reject(rename("alice", "bob")),
        ApplyError::NameTaken { name: "bob".into() }
    );
}

#[test]
fn reregistering_a_current_name_reuses_the_identity() {
    let mut log = log_with(&["alice"]);
    let alice = log.id("alice");
    log.ok(IdentityLeft {
        name: "alice".into(),
    });
    assert!(log.state.identity(alice).expect("identity").has_left);

    let meta = log.ok(IdentityRegistered {
        client: ClientKind::Codex,
        ..register("alice")
    });

    let identity = log.state.identity(alice).expect("identity");
    assert_eq!(identity.client, ClientKind::Codex);
    assert!(!identity.has_left);
    assert_eq!(identity.last_seen_us, meta.timestamp_us);
    assert_eq!(log.state.identities().count(), 1);
}

#[test]
fn delivered_message_stays_unread_until_read_and_can_be_read_again() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(send("m-1", "bob", "alice", "one"));
    log.ok(send("m-2", "bob", "alice", "two"));
    log.ok(send("m-3", "bob", "alice", "three"));

    log.ok(pushed("alice", "m-1"));
    log.ok(MessageRead {
        recipient: "alice".into(),
        message_id: "m-2".into(),
    });

    let mailbox = log.state.mailbox(log.id("alice")).expect("mailbox");
    let unread: Vec<String> = mailbox
        .unread(None, 10)
        .iter()
        .map(|m| m.id().into_owned())
        .collect();
    // Delivered is not read: the session took m-1, its model may not have it.
    assert_eq!(unread, ["m-1", "m-3"]);
    assert_eq!(mailbox.unread_count(), 2);
    assert_eq!(mailbox.cursor(), 0, "a read out of order leaves the cursor");
    let all: Vec<String> = mailbox
        .all(None, 10)
        .iter()
        .map(|m| m.id().into_owned())
        .collect();
    assert_eq!(all, ["m-1", "m-2", "m-3"]);
    assert_eq!(
        mailbox.get("m-1").expect("kept").state(),
        DeliveryState::Delivered
    );
    assert_eq!(
        mailbox.get("m-2").expect("kept").state(),
        DeliveryState::Read
    );
}

#[test]
fn refused_or_expired_message_is_unread_again_held_changes_nothing() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(send("m-1", "bob", "alice", "one"));
    log.ok(MessageRead {
        recipient: "alice".into(),
        message_id: "m-1".into(),
    });
    let report = |status: &str| MessageStatusReported {
        recipient: "alice".into(),
        message_id: "m-1".into(),
        status: status.into(),
    };
    log.ok(report("held"));
    let state_of = |log: &TestLog| {
        let mailbox = log.state.mailbox(log.id("alice")).expect("mailbox");
        mailbox.get("m-1").expect("kept").state()
    };
    assert_eq!(state_of(&log), DeliveryState::Read);
    log.ok(report("refused"));
    assert_eq!(state_of(&log), DeliveryState::Queued);
    log.ok(pushed("alice", "m-1"));
    log.ok(report("expired"));
    assert_eq!(state_of(&log), DeliveryState::Queued);
    // A pull read it meanwhile: a late refusal does not make it unread again.
    log.ok(read_mailbox("alice", 1));
    log.ok(report("refused"));
    assert_eq!(state_of(&log), DeliveryState::Read);
    assert!(matches!(
        log.reject(MessageStatusReported {
            recipient: "alice".into(),
            message_id: "m-9".into(),
            status: "refused".into(),
        }),
        ApplyError::MessageNotFound { .. }
    ));
}

#[test]
fn an_ask_past_its_deadline_tells_the_asker_and_a_late_reply_is_marked() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(ask("m-1", "a-1", "alice", "bob", None));
    log.ok(AskDeadlineSet {
        ask_id: "a-1".into(),
        deadline_us: 5_000,
    });
    assert_eq!(log.state.asks().next_deadline(), Some((5_000, "a-1")));
    log.ok(AskExpired {
        ask_id: "a-1".into(),
        message_id: "t-2".into(),
        body: "no reply".into(),
    });
    assert!(log.state.pending_ask("a-1").is_none());
    assert_eq!(log.state.asks().next_deadline(), None);
    let (recipient, notice) = log.state.message("t-2").expect("timeout stored");
    assert_eq!(recipient, log.id("alice"));
    assert_eq!(notice.timed_out_ask(), Some("a-1"));
    assert_eq!(notice.from_name(), "relay");
    // Expiring twice, or setting a deadline on it now, is refused.
    assert!(matches!(
        log.reject(AskExpired {
            ask_id: "a-1".into(),
            message_id: "t-3".into(),
            body: "again".into(),
        }),
        ApplyError::AskNotPending { .. }
    ));
    log.ok(reply("m-4", "bob", "alice", "a-1"));
    let (_, late) = log.state.message("m-4").expect("reply stored");
    assert!(late.late(), "a reply after the deadline is marked late");
    assert!(log.state.asks().expired("a-1").is_none());
}

#[test]
fn completed_requests_are_remembered_per_caller_and_bounded() {
    let mut log = log_with(&["alice", "bob"]);
    for index in 0..(relay_replay::limits::IDEMPOTENCY_KEYS_MAX + 1) {
        log.ok(RequestCompleted {
            caller: "alice".into(),
            key: format!("k-{index}"),
            result: format!("{{\"n\":{index}}}"),
        });
    }
    let alice = log.id("alice");
    assert!(
        log.state.completed_request(alice, "k-0").is_none(),
        "oldest forgotten"
    );
    let kept = log.state.completed_request(alice, "k-1").expect("kept");
    assert_eq!(kept.result, "{\"n\":1}");
    assert!(log.state.completed_request(log.id("bob"), "k-1").is_none());
}

#[test]
fn group_acknowledgements_mark_messages_read_ahead_of_the_cursor() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(create_group("core", "alice"));
    log.ok(invite("core", "alice", "bob"));
    log.ok(group_send("core", "g-1", "alice", "one"));
    log.ok(group_send("core", "g-2", "alice", "two"));
    log.ok(group_send("core", "g-3", "alice", "three"));
    let acknowledge = |id: &str, read: bool| GroupMessageAcknowledged {
        group: "core".into(),
        member: "bob".into(),
        message_id: id.into(),
        read,
    };
    log.ok(acknowledge("g-2", true));
    log.ok(acknowledge("g-3", false));
    let bob = log.id("bob");
    let group = log.state.group("core").expect("group");
    assert_eq!(
        group.unread_for(bob),
        2,
        "g-1 queued and g-3 only delivered"
    );
    let unread: Vec<_> = group
        .unread_messages_for(bob, 10)
        .iter()
        .map(|m| m.id.clone().expect("user message"))
        .collect();
    assert_eq!(unread, ["g-1", "g-3"]);
    let membership = group.membership(bob).expect("member");
    assert!(membership.is_delivered_only(3));
    // A delivered acknowledgement never downgrades a read one.
    log.ok(acknowledge("g-2", false));
    let group = log.state.group("core").expect("group");
    assert!(group.membership(bob).expect("member").is_read(2));
    log.ok(read_group("core", "bob", 3));
    let membership = log
        .state
        .group("core")
        .expect("group")
        .membership(bob)
        .expect("member");
    assert!(
        membership.acknowledged.is_empty(),
        "the cursor absorbs acknowledgements"
    );
    assert!(matches!(
        log.reject(acknowledge("g-9", true)),
        ApplyError::GroupMessageNotFound { .. }
    ));
}

#[test]
fn push_after_read_keeps_the_message_read() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(send("m-1", "bob", "alice", "one"));
    log.ok(read_mailbox("alice", 1));
    log.ok(pushed("alice", "m-1"));
    let mailbox = log.state.mailbox(log.id("alice")).expect("mailbox");
    assert_eq!(
        mailbox.get("m-1").expect("kept").state(),
        DeliveryState::Read
    );
}

#[test]
fn push_to_the_wrong_recipient_is_rejected() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(send("m-1", "bob", "alice", "one"));
    assert!(matches!(
        log.reject(pushed("bob", "m-1")),
        ApplyError::MessageNotFound { .. }
    ));
}

#[test]
fn unread_since_id_starts_after_that_message() {
    let mut log = log_with(&["alice", "bob"]);
    for n in 1..=4 {
        log.ok(send(&format!("m-{n}"), "bob", "alice", "x"));
    }
    let mailbox = log.state.mailbox(log.id("alice")).expect("mailbox");
    let ids: Vec<String> = mailbox
        .unread(Some("m-2"), 1)
        .iter()
        .map(|m| m.id().into_owned())
        .collect();
    assert_eq!(ids, ["m-3"]);
}

#[test]
fn mailbox_cursor_marks_read_and_cannot_move_back_or_past_the_end() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(send("m-1", "bob", "alice", "one"));
    log.ok(send("m-2", "bob", "alice", "two"));
    log.ok(read_mailbox("alice", 1));
    let mailbox = log.state.mailbox(log.id("alice")).expect("mailbox");
    assert_eq!(mailbox.unread_count(), 1);
    assert_eq!(
        log.reject(read_mailbox("alice", 0)),
        ApplyError::CursorBackwards {
            cursor: 1,
            requested: 0
        }
    );
    assert_eq!(
        log.reject(read_mailbox("alice", 3)),
        ApplyError::CursorPastEnd {
            last_sequence: 2,
            requested: 3
        }
    );
}

#[test]
fn reply_to_an_ask_resolves_it_and_routes_to_the_asker() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(ask("m-1", "a-1", "alice", "bob", None));
    assert!(log.state.pending_ask("a-1").is_some());
    assert!(matches!(
        log.reject(reply("m-2", "alice", "bob", "a-1")),
        ApplyError::AskMismatch { .. }
    ));

    log.ok(reply("m-2", "bob", "alice", "a-1"));

    assert!(log.state.pending_ask("a-1").is_none());
    let (recipient, message) = log.state.message("m-2").expect("reply stored");
    assert_eq!(recipient, log.id("alice"));
    assert_eq!(message.reply_to(), Some("a-1"));
}

#[test]
fn reply_to_a_plain_message_is_delivered() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(send("m-1", "alice", "bob", "hi"));
    log.ok(reply("m-2", "bob", "alice", "m-1"));
    assert_eq!(log.state.message("m-2").expect("stored").0, log.id("alice"));
}

#[test]
fn broadcast_collects_replies_from_every_target() {
    let mut log = log_with(&["alice", "bob", "carol"]);
    log.ok(ask("m-1", "a-1", "alice", "bob", Some("b-1")));
    log.ok(ask("m-2", "a-2", "alice", "carol", Some("b-1")));
    assert!(matches!(
        log.reject(ask("m-3", "a-3", "bob", "carol", Some("b-1"))),
        ApplyError::BroadcastAskerMismatch { .. }
    ));
    log.ok(reply("m-4", "carol", "alice", "a-2"));
    log.ok(reply("m-5", "bob", "alice", "a-1"));

    let broadcast = log.state.asks().broadcast("b-1").expect("broadcast");
    assert_eq!(broadcast.ask_count, 2);
    let repliers: Vec<_> = broadcast.replies().iter().map(|r| r.from).collect();
    assert_eq!(repliers, [log.id("carol"), log.id("bob")]);
    assert_eq!(log.state.asks().pending_count(), 0);
}

#[test]
fn pending_asks_past_the_limit_drop_the_oldest() {
    let mut log = log_with(&["alice", "bob"]);
    for n in 0..=PENDING_ASKS_MAX {
        log.ok(ask(
            &format!("m-{n}"),
            &format!("a-{n}"),
            "alice",
            "bob",
            None,
        ));
    }
    assert_eq!(log.state.asks().pending_count(), PENDING_ASKS_MAX);
    assert!(log.state.pending_ask("a-0").is_none());
    assert!(log.state.pending_ask("a-1").is_some());
}

#[test]
fn member_added_later_does_not_see_earlier_history() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(create_group("team", "alice"));
    log.ok(group_send("team", "g-1", "alice", "before"));
    log.ok(invite("team", "alice", "bob"));
    log.ok(group_send("team", "g-2", "alice", "after"));

    let group = log.state.group("team").expect("group");
    let bob = log.id("bob");
    let seen: Vec<&str> = group
        .visible_for(bob, 10)
        .iter()
        .map(|m| m.body.as_str())
        .collect();
    assert_eq!(seen, ["after"]);
    assert_eq!(group.unread_for(bob), 1);
    assert_eq!(group.history_for(bob, 10).len(), 1);
}

#[test]
fn own_group_messages_are_not_unread() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(create_group("team", "alice"));
    log.ok(invite("team", "alice", "bob"));
    log.ok(group_send("team", "g-1", "alice", "hello"));
    let group = log.state.group("team").expect("group");
    assert_eq!(group.unread_for(log.id("alice")), 0);
    assert_eq!(group.unread_for(log.id("bob")), 1);
    log.ok(read_group("team", "bob", 1));
    assert_eq!(
        log.state
            .group("team")
            .expect("group")
            .unread_for(log.id("bob")),
        0
    );
}

#[test]
fn remove_by_non_admin_is_rejected_and_state_unchanged() {
    let mut log = log_with(&["alice", "bob", "carol"]);
    log.ok(create_group("team", "alice"));
    log.ok(invite("team", "alice", "bob"));
    log.ok(invite("team", "alice", "carol"));
    let error = log.reject(remove("team", "bob", "carol", "spite"));
    assert_eq!(
        error,
        ApplyError::NotGroupAdmin {
            group: "team".into(),
            name: "bob".into()
        }
    );
    let delete = GroupDeleted {
        group: "team".into(),
        actor: "bob".into(),
    };
    assert!(matches!(
        log.reject(delete),
        ApplyError::NotGroupAdmin { .. }
    ));
    assert!(matches!(
        log.reject(invite("team", "bob", "carol")),
        ApplyError::NotGroupAdmin { .. }
    ));
}

#[test]
fn removal_and_leave_append_system_messages() {
    let mut log = log_with(&["alice", "bob", "carol"]);
    log.ok(create_group("team", "alice"));
    log.ok(invite("team", "alice", "bob"));
    log.ok(invite("team", "alice", "carol"));
    log.ok(remove("team", "alice", "bob", "off topic"));
    log.ok(GroupLeft {
        group: "team".into(),
        member: "carol".into(),
    });
    let group = log.state.group("team").expect("group");
    let bodies: Vec<&str> = group.messages().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["bob was removed: off topic", "carol left"]);
    assert!(group.messages().all(|m| m.is_system()));
    assert_eq!(group.members().collect::<Vec<_>>(), [log.id("alice")]);
}

#[test]
fn admin_leaving_passes_admin_to_the_earliest_member_and_last_leave_deletes() {
    let mut log = log_with(&["alice", "bob", "carol"]);
    log.ok(create_group("team", "alice"));
    log.ok(invite("team", "alice", "bob"));
    log.ok(group_send("team", "g-1", "alice", "x"));
    log.ok(invite("team", "alice", "carol"));
    log.ok(GroupLeft {
        group: "team".into(),
        member: "alice".into(),
    });
    assert_eq!(
        log.state.group("team").expect("group").admin(),
        log.id("bob")
    );
    log.ok(GroupLeft {
        group: "team".into(),
        member: "bob".into(),
    });
    log.ok(GroupLeft {
        group: "team".into(),
        member: "carol".into(),
    });
    assert!(log.state.group("team").is_none());
}

#[test]
fn admin_cannot_remove_itself() {
    let mut log = log_with(&["alice"]);
    log.ok(create_group("team", "alice"));
    let error = log.reject(remove("team", "alice", "alice", "x"));
    assert_eq!(
        error,
        ApplyError::AdminCannotBeRemoved {
            group: "team".into()
        }
    );
}

#[test]
fn group_message_from_a_non_member_is_rejected() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(create_group("team", "alice"));
    let error = log.reject(group_send("team", "g-1", "bob", "let me in"));
    assert_eq!(
        error,
        ApplyError::NotGroupMember {
            group: "team".into(),
            name: "bob".into()
        }
    );
}

#[test]
fn group_ring_never_exceeds_500_messages() {
    let mut log = log_with(&["alice"]);
    log.ok(create_group("team", "alice"));
    for n in 0..GROUP_MESSAGES_MAX + 10 {
        log.ok(group_send("team", &format!("g-{n}"), "alice", "x"));
    }
    let group = log.state.group("team").expect("group");
    assert_eq!(group.messages().len(), GROUP_MESSAGES_MAX);
    assert_eq!(group.messages().next().expect("oldest").sequence, 11);
}

#[test]
fn rooms_are_emptied_by_hub_start_and_leave_of_the_identity() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(join("lobby", "alice"));
    log.ok(join("lobby", "bob"));
    log.ok(join("lobby", "bob"));
    log.ok(RoomMessageSent {
        room: "lobby".into(),
        id: "r-1".into(),
        from: "bob".into(),
        body: "hi".into(),
    });
    log.ok(IdentityLeft { name: "bob".into() });
    assert_eq!(log.state.room("lobby").expect("room").member_count(), 1);
    let replayed_before_restart = log.state.clone();

    log.ok(HubStarted {
        hub_id: HUB,
        version: "0.1.0".into(),
    });

    assert!(log.state.room("lobby").is_none());
    assert!(replayed_before_restart.room("lobby").is_some());
    let mut rebuilt = replayed_before_restart;
    rebuilt.clear_presence();
    assert_eq!(rebuilt.rooms().count(), 0);
}

#[test]
fn room_post_by_non_member_is_rejected() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(join("lobby", "alice"));
    let post = RoomMessageSent {
        room: "lobby".into(),
        id: "r-1".into(),
        from: "bob".into(),
        body: "hi".into(),
    };
    assert!(matches!(log.reject(post), ApplyError::NotRoomMember { .. }));
}

#[test]
fn offsets_must_increase() {
    let mut log = log_with(&["alice"]);
    let mut state = log.state.clone();
    let meta = RecordMeta {
        offset: 0,
        timestamp_us: 1,
        origin_hub: HUB,
    };
    let error = apply(&mut state, meta, &Event::from(register("bob")));
    assert_eq!(
        error,
        Err(ApplyError::OffsetNotIncreasing {
            offset: 0,
            last_offset: 0
        })
    );
    assert_eq!(state, log.state);
    log.ok(register("bob"));
}

fn imported(origin_offset: u64, event: &Event) -> Imported {
    let encoded = relay_replay::encode(event);
    Imported {
        origin_hub: 7,
        origin_offset,
        kind: encoded.kind,
        schema_version: encoded.schema_version,
        payload: encoded.payload,
    }
}

#[test]
fn imported_events_apply_once_per_origin_offset() {
    let mut log = log_with(&["alice"]);
    log.ok(imported(5, &register("bob@remote").into()));
    assert!(log.state.identity_by_name("bob@remote").is_some());
    assert_eq!(log.state.federation().imported_offset(7), Some(5));
    let error = log.reject(imported(5, &send("m-1", "bob@remote", "alice", "x").into()));
    assert!(matches!(
        error,
        ApplyError::DuplicateImport {
            imported_offset: 5,
            ..
        }
    ));
    log.ok(imported(6, &send("m-1", "bob@remote", "alice", "x").into()));
}

#[test]
fn imported_event_that_does_not_fit_is_rejected_whole() {
    let mut log = log_with(&["alice"]);
    let error = log.reject(imported(1, &send("m-1", "ghost", "alice", "x").into()));
    assert!(matches!(
        error,
        ApplyError::ImportedEventRejected {
            origin_offset: 1,
            ..
        }
    ));
    assert_eq!(log.state.federation().imported_offset(7), None);
    let mut garbage = imported(1, &register("bob").into());
    garbage.payload = vec![0xff; 3];
    assert!(matches!(
        log.reject(garbage),
        ApplyError::ImportedPayloadInvalid(_)
    ));
    let nested = imported(2, &imported(1, &register("bob").into()).into());
    assert!(matches!(
        log.reject(nested),
        ApplyError::NotImportable { .. }
    ));
}

#[test]
fn peer_acknowledgement_cannot_move_back() {
    let mut log = TestLog::new();
    log.ok(PeerAcknowledged {
        peer_hub: 9,
        offset: 10,
    });
    log.ok(PeerAcknowledged {
        peer_hub: 9,
        offset: 10,
    });
    let error = log.reject(PeerAcknowledged {
        peer_hub: 9,
        offset: 3,
    });
    assert!(matches!(
        error,
        ApplyError::AcknowledgementBackwards {
            acknowledged: 10,
            ..
        }
    ));
    assert_eq!(log.state.federation().acknowledged_offset(9), Some(10));
}

#[test]
fn apply_is_deterministic() {
    let build = || {
        let mut log = log_with(&["alice", "bob"]);
        log.ok(send("m-1", "alice", "bob", "x"));
        log.ok(create_group("team", "bob"));
        log.ok(PeerAcknowledged {
            peer_hub: u128::MAX,
            offset: 1,
        });
        log.ok(imported(1, &register("carol@lab").into()));
        log.state
    };
    let (first, second): (State, State) = (build(), build());
    assert_eq!(first, second);
    let json = |state: &State| serde_json::to_string(state).expect("state serializes");
    assert_eq!(json(&first), json(&second));
}
