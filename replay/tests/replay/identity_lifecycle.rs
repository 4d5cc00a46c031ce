//! Identity lifecycle (issue 10): an identity that left, with nothing anyone waits for (no
//! unread mail or refusals, no group, no pending ask), is forgotten by `identity_forgotten`;
//! anything else is rejected with the reason, leaving the state unchanged. At
//! `IDENTITIES_MAX` a new name only fits once one is forgotten.

use relay_replay::event::*;
use relay_replay::limits::IDENTITIES_MAX;
use relay_replay::{ApplyError, Event, ForgetBlocker, State, apply, decode, encode};

use crate::support::*;

fn left(name: &str) -> IdentityLeft {
    IdentityLeft { name: name.into() }
}

fn forgotten(log: &TestLog, name: &str) -> IdentityForgotten {
    IdentityForgotten {
        name: name.into(),
        identity_id: log.id(name).0,
    }
}

#[test]
fn a_departed_identity_with_only_read_mail_is_forgotten_and_its_name_registers_anew() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(send("m-1", "alice", "bob", "hello"));
    log.ok(send("m-2", "bob", "alice", "from bob"));
    log.ok(read_mailbox("bob", 1));
    log.ok(left("bob"));
    let bob = log.id("bob");
    assert_eq!(log.state.forget_blocker(bob), None);

    log.ok(forgotten(&log, "bob"));
    assert!(log.state.identity_by_name("bob").is_none());
    assert!(log.state.identity(bob).is_none());
    assert!(log.state.mailbox(bob).is_none());
    assert!(
        log.state.message("m-1").is_none(),
        "its read mail left the index"
    );
    // What bob sent stays with alice, under the name it had.
    let (_, kept) = log.state.message("m-2").expect("alice keeps bob's message");
    assert_eq!(kept.from_name(), "bob");
    assert_eq!(log.state.identities().count(), 1);

    // The name is free: registering it makes a new identity with an empty mailbox.
    log.ok(register("bob"));
    let new_bob = log.id("bob");
    assert_ne!(new_bob, bob);
    let mailbox = log.state.mailbox(new_bob).expect("a new mailbox");
    assert_eq!((mailbox.len(), mailbox.last_sequence()), (0, 0));
    // An old `identity_forgotten` naming the first id cannot forget the new identity.
    assert_eq!(
        log.reject(IdentityForgotten {
            name: "bob".into(),
            identity_id: bob.0,
        }),
        ApplyError::IdentityIdMismatch {
            name: "bob".into(),
            identity_id: bob.0,
            found: new_bob.0,
        }
    );
}

#[test]
fn an_identity_anyone_waits_for_is_not_forgotten_and_says_why() {
    let mut log = log_with(&["alice", "bob", "carol", "dave", "erin"]);
    // Online (never left).
    let not_left = log.reject(forgotten(&log, "alice"));
    assert!(matches!(
        not_left,
        ApplyError::IdentityNotForgettable {
            reason: ForgetBlocker::NotLeft,
            ..
        }
    ));
    // Unread mail.
    log.ok(send("m-1", "alice", "bob", "unread"));
    log.ok(left("bob"));
    assert_eq!(
        log.reject(forgotten(&log, "bob")),
        ApplyError::IdentityNotForgettable {
            name: "bob".into(),
            reason: ForgetBlocker::UnreadMail,
        }
    );
    // A group member.
    log.ok(create_group("backend", "alice"));
    log.ok(invite("backend", "alice", "carol"));
    log.ok(left("carol"));
    assert_eq!(
        log.reject(forgotten(&log, "carol")),
        ApplyError::IdentityNotForgettable {
            name: "carol".into(),
            reason: ForgetBlocker::GroupMember {
                group: "backend".into(),
            },
        }
    );
    // An ask it sent is pending (the reply would have nowhere to go).
    log.ok(ask("m-2", "a-1", "dave", "alice", None));
    log.ok(left("dave"));
    assert_eq!(
        log.reject(forgotten(&log, "dave")),
        ApplyError::IdentityNotForgettable {
            name: "dave".into(),
            reason: ForgetBlocker::PendingAsk {
                ask_id: "a-1".into(),
            },
        }
    );
    // Each one, once cleared, is forgotten; the candidates list agrees at every step.
    let candidates = |state: &State| -> Vec<String> {
        state
            .forgettable_identities(u64::MAX, usize::MAX)
            .iter()
            .map(|identity| identity.name().to_owned())
            .collect()
    };
    assert!(candidates(&log.state).is_empty());
    log.ok(left("erin"));
    assert_eq!(candidates(&log.state), ["erin"]);
    log.ok(read_mailbox("bob", 1));
    log.ok(GroupLeft {
        group: "backend".into(),
        member: "carol".into(),
    });
    log.ok(reply("m-3", "alice", "dave", "a-1"));
    // The answer is unread mail of dave's now.
    assert_eq!(
        log.state.forget_blocker(log.id("dave")),
        Some(ForgetBlocker::UnreadMail)
    );
    log.ok(read_mailbox("dave", 1));
    // Oldest departure first: bob, dave, erin left in that order; carol's leaving the group
    // came last (reading a mailbox is not seeing its owner).
    assert_eq!(candidates(&log.state), ["bob", "dave", "erin", "carol"]);
    for name in ["dave", "bob", "carol", "erin"] {
        log.ok(forgotten(&log, name));
    }
    assert_eq!(log.state.identities().count(), 1);
}

#[test]
fn an_unknown_name_and_an_import_are_rejected() {
    let mut log = log_with(&["alice"]);
    assert_eq!(
        log.reject(IdentityForgotten {
            name: "nobody".into(),
            identity_id: 0,
        }),
        ApplyError::UnknownIdentity {
            name: "nobody".into(),
        }
    );
    log.ok(left("alice"));
    let inner = encode(&Event::from(forgotten(&log, "alice")));
    let import = Imported {
        origin_hub: 7,
        origin_offset: 1,
        kind: inner.kind,
        schema_version: inner.schema_version,
        payload: inner.payload,
    };
    assert_eq!(
        log.reject(import),
        ApplyError::NotImportable {
            kind: relay_replay::EventKind::IdentityForgotten,
        }
    );
}

#[test]
fn at_the_identity_limit_a_new_name_fits_only_after_one_is_forgotten() {
    let mut log = TestLog::new();
    for index in 0..IDENTITIES_MAX {
        let name = format!("session-{index}");
        log.ok(register(&name));
        if index % 2 == 0 {
            log.ok(left(&name));
        }
    }
    assert_eq!(
        log.reject(register("newcomer")),
        ApplyError::IdentitiesFull {
            max: IDENTITIES_MAX
        }
    );
    // A known name still returns at the limit.
    log.ok(register("session-0"));
    let oldest = log
        .state
        .forgettable_identities(u64::MAX, 1)
        .first()
        .map(|identity| identity.name().to_owned())
        .expect("half the identities left");
    assert_eq!(
        oldest, "session-2",
        "session-0 came back, session-2 left first"
    );
    log.ok(forgotten(&log, &oldest));
    log.ok(register("newcomer"));
    assert_eq!(log.state.identities().count(), IDENTITIES_MAX);
    assert_eq!(
        log.reject(register("one-more")),
        ApplyError::IdentitiesFull {
            max: IDENTITIES_MAX
        }
    );
}

#[test]
fn a_log_with_forgotten_identities_replays_through_the_codec_to_the_same_state() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(send("m-1", "alice", "bob", "hello"));
    log.ok(read_mailbox("bob", 1));
    log.ok(left("bob"));
    log.ok(forgotten(&log, "bob"));
    log.ok(register("bob"));
    let mut replayed = State::new();
    for (meta, event) in &log.records {
        let encoded = encode(event);
        let decoded =
            decode(encoded.kind, encoded.schema_version, &encoded.payload).expect("decodes");
        apply(&mut replayed, *meta, &decoded).expect("replays");
    }
    assert_eq!(replayed, log.state);
    let bytes = relay_replay::snapshot_encode(&log.state, 99);
    let (restored, _) = relay_replay::snapshot_decode(&bytes).expect("snapshot decodes");
    assert_eq!(restored, log.state);
}
