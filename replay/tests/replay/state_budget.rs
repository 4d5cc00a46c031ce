//! The state byte budget at its limit: a state with a small budget ([`State::with_budget`]) is
//! filled exactly to it, the next storing event is `StateFull` and changes nothing, draining
//! events still apply, and once they made room storing works again. The counter is checked
//! against its recount after every step by [`TestLog`].

use relay_replay::event::*;
use relay_replay::limits::{GROUP_MESSAGES_MAX, STATE_BYTES_MAX, STATE_ENTRY_BYTES};
use relay_replay::state::{GroupMessage, Identity, StoredMessage};
use relay_replay::{ApplyError, State, snapshot_decode, snapshot_encode};

use crate::federation::imported;
use crate::support::*;

/// Messages of the same size: ids `m-100`, `m-101`, … all five bytes.
fn message(index: usize, from: &str, to: &str) -> MessageSent {
    send(
        &format!("m-{}", 100 + index),
        from,
        to,
        "twenty bytes of text",
    )
}

/// A log with alice and bob whose budget holds exactly `messages` more messages from alice to
/// bob of the size [`message`] sends; the charge of one message.
fn full_after(messages: u64) -> (TestLog, u64) {
    let mut probe = log_with(&["alice", "bob"]);
    let before = probe.state.bytes();
    probe.ok(message(0, "alice", "bob"));
    let charge = probe.state.bytes() - before;
    let mut log = TestLog::with_state(State::with_budget(before + messages * charge));
    log.ok(register("alice"));
    log.ok(register("bob"));
    assert_eq!(log.state.bytes(), before, "the same log counts the same");
    (log, charge)
}

fn state_full(error: ApplyError) -> (u64, u64, u64) {
    match error {
        ApplyError::StateFull { bytes, needed, max } => (bytes, needed, max),
        other => panic!("expected StateFull, got {other}"),
    }
}

#[test]
fn the_hub_state_gets_the_documented_budget() {
    assert_eq!(State::new().budget(), STATE_BYTES_MAX);
    assert_eq!(State::new().bytes(), 0);
    // A restored state gets the default budget, whatever the state it was taken of had.
    let (log, _) = full_after(3);
    let bytes = snapshot_encode(&log.state, log.state.next_offset());
    let (restored, _) = snapshot_decode(&bytes).expect("decodes");
    assert_eq!(restored.bytes(), log.state.bytes());
    assert_eq!(restored.budget(), STATE_BYTES_MAX);
}

#[test]
fn filling_to_the_budget_works_and_the_next_message_is_refused_unchanged() {
    let (mut log, charge) = full_after(3);
    for index in 0..3 {
        log.ok(message(index, "alice", "bob"));
    }
    assert_eq!(log.state.bytes(), log.state.budget(), "filled exactly");
    // Every kind of storing event is refused now, the state unchanged (`reject` checks).
    let (bytes, needed, max) = state_full(log.reject(message(3, "alice", "bob")));
    assert_eq!(
        (bytes, needed, max),
        (log.state.budget(), charge, log.state.budget())
    );
    state_full(log.reject(ask("m-900", "a-1", "alice", "bob", None)));
    state_full(log.reject(reply("m-901", "bob", "alice", "m-100")));
    state_full(log.reject(register("carol")));
    state_full(log.reject(rename("alice", "alicia")));
    state_full(log.reject(create_group("team", "alice")));
    state_full(log.reject(RequestCompleted {
        caller: "alice".into(),
        key: "k-1".into(),
        result: "{}".into(),
    }));
    // A message to a peer of another hub would also create its identity: refused too.
    state_full(log.reject(send("m-902", "alice", "zed@b", "hi")));
    // The message the hub would show for it says what is full and how to make room.
    let text = log.reject(message(3, "alice", "bob")).to_string();
    assert!(text.contains("state is full"), "{text}");
}

#[test]
fn draining_events_apply_at_the_budget_and_make_room_again() {
    let (mut log, _) = full_after(3);
    for index in 0..3 {
        log.ok(message(index, "alice", "bob"));
    }
    // Pushes, reads, status reports, cursor moves and leaving apply at the budget.
    log.ok(pushed("bob", "m-100"));
    log.ok(MessageRead {
        recipient: "bob".into(),
        message_id: "m-101".into(),
    });
    // A status word is stored with the message (a few bytes past the budget, never refused).
    log.ok(MessageStatusReported {
        recipient: "bob".into(),
        message_id: "m-102".into(),
        status: "held".into(),
    });
    assert_eq!(log.state.bytes(), log.state.budget() + 4);
    log.ok(read_mailbox("bob", 3));
    log.ok(IdentityLeft { name: "bob".into() });
    // Returning registration is never refused: the session comes back to read.
    log.ok(register("bob"));
    log.ok(IdentityLeft { name: "bob".into() });
    state_full(log.reject(message(3, "alice", "bob")));
    // Forgetting bob (read mail only) refunds his identity and mailbox.
    let bob = log.id("bob").0;
    log.ok(IdentityForgotten {
        name: "bob".into(),
        identity_id: bob,
    });
    assert!(log.state.bytes() < log.state.budget());
    // Storing works again.
    log.ok(register("carol"));
    log.ok(message(3, "alice", "carol"));
}

#[test]
fn a_full_group_ring_keeps_taking_messages_of_the_size_it_drops() {
    // Fill a group's ring, then set the budget at the state's bytes: a message the size of the
    // one the ring drops needs nothing more, so it applies; a longer one is refused.
    let mut probe = log_with(&["alice", "bob"]);
    probe.ok(create_group("team", "alice"));
    probe.ok(invite("team", "alice", "bob"));
    for index in 0..GROUP_MESSAGES_MAX {
        probe.ok(group_send(
            "team",
            &format!("g-{}", 1000 + index),
            "alice",
            "tick",
        ));
    }
    let full = probe.state.bytes();
    let mut log = TestLog::with_state(State::with_budget(full));
    for (_, event) in &probe.records {
        log.ok(event.clone());
    }
    assert_eq!(log.state.bytes(), full);
    log.ok(group_send("team", "g-9000", "alice", "tock"));
    assert_eq!(
        log.state.bytes(),
        full,
        "the ring dropped as much as it took"
    );
    let (_, needed, _) =
        state_full(log.reject(group_send("team", "g-9001", "alice", "a longer tock")));
    assert_eq!(needed, "a longer tock".len() as u64 - "tock".len() as u64);
    // Acknowledgements are reserved with the message: they apply and cost nothing more.
    log.ok(GroupMessageAcknowledged {
        group: "team".into(),
        member: "alice".into(),
        message_id: "g-9000".into(),
        read: true,
    });
    log.ok(read_group("team", "bob", 501));
    assert_eq!(log.state.bytes(), full);
    // A removal stores its reason: refused at the budget when it grows the state.
    state_full(log.reject(remove("team", "alice", "bob", &"a long reason ".repeat(40))));
    // Leaving is never refused, and a group whose last member leaves refunds everything.
    log.ok(GroupLeft {
        group: "team".into(),
        member: "bob".into(),
    });
    log.ok(GroupLeft {
        group: "team".into(),
        member: "alice".into(),
    });
    assert!(log.state.group("team").is_none());
    log.ok(create_group("team", "alice"));
}

#[test]
fn an_ask_that_expires_at_the_budget_ends_and_its_notice_counts_as_refused() {
    let (mut log, _) = full_after(1);
    log.ok(ask("m-100", "a-1", "alice", "bob", None));
    // The ask's message filled the state exactly; its pending entry is not charged.
    assert!(log.state.bytes() <= log.state.budget());
    log.ok(AskExpired {
        ask_id: "a-1".into(),
        message_id: "m-200".into(),
        body: "bob did not answer in time".into(),
    });
    assert!(log.state.pending_ask("a-1").is_none(), "the ask ended");
    let alice = log.state.mailbox(log.id("alice")).expect("alice's mailbox");
    assert!(
        alice.get("m-200").is_none(),
        "no notice stored past the budget"
    );
    let refused: Vec<(&str, u32)> = alice
        .refusals()
        .senders()
        .map(|(sender, count)| (sender, count.count))
        .collect();
    assert_eq!(refused, [("relay", 1)]);
}

#[test]
fn an_import_past_the_budget_is_rejected_and_its_refused_record_still_applies() {
    let (mut log, _) = full_after(1);
    log.ok(message(0, "alice", "bob"));
    let import = imported("a", "b", 7, send("m-7", "zed", "bob@b", "hello across"));
    match log.reject(import.clone()) {
        ApplyError::LinkImportRejected { source, .. } => {
            state_full(*source);
        }
        other => panic!("expected LinkImportRejected, got {other}"),
    }
    // The hub then logs the import refused: that record moves the progress, and is not refused.
    let mut refused = import;
    refused.refused = Some("the hub's state is full".into());
    log.ok(refused);
    assert_eq!(
        log.state.federation().link_progress("a").map(|p| p.offset),
        Some(7)
    );
    assert!(log.state.identity_by_name("zed@a").is_none());
}

#[test]
fn the_entry_charge_covers_the_structs_it_stands_for() {
    // If a struct outgrows the entry charge, the budget undercounts memory: raise the charge.
    for (what, size) in [
        ("StoredMessage", size_of::<StoredMessage>()),
        ("GroupMessage", size_of::<GroupMessage>()),
        ("Identity", size_of::<Identity>()),
    ] {
        println!("{what}: {size} bytes");
        assert!(
            size as u64 <= STATE_ENTRY_BYTES,
            "{what} is {size} bytes, more than STATE_ENTRY_BYTES ({STATE_ENTRY_BYTES})"
        );
    }
}
