//! Events across hubs: a message from hub `a` to `bob@b`, imported on `b` through
//! `link_imported`, and its receipt back; names and ids translated, imports applied once.

use relay_replay::event::*;
use relay_replay::{ApplyError, Event, encode};

use crate::support::*;

/// The `link_imported` record hub `local` writes for `event` at `origin_offset` of `origin`'s log.
pub(crate) fn imported(
    origin: &str,
    local: &str,
    origin_offset: u64,
    event: impl Into<Event>,
) -> LinkImported {
    let encoded = encode(&event.into());
    LinkImported {
        origin_hub: origin.into(),
        local_hub: local.into(),
        origin_log_id: 7,
        origin_offset,
        origin_timestamp_us: 1,
        origin_crc: 99,
        kind: encoded.kind,
        schema_version: encoded.schema_version,
        payload: encoded.payload.to_vec(),
        refused: None,
    }
}

#[test]
fn a_message_crosses_to_bob_and_its_receipt_comes_back() {
    let mut a = log_with(&["alice"]);
    let mut b = log_with(&["bob"]);
    // On a, the message waits in the mailbox of the remote peer `bob@b`.
    a.ok(send("m-5", "alice", "bob@b", "hello across"));
    let remote_bob = a.id("bob@b");
    let waiting = a.state.mailbox(remote_bob).expect("a mailbox for bob@b");
    assert_eq!(waiting.unread_count(), 1);

    // On b, it lands in bob's mailbox from `alice@a`, with an id naming its origin.
    b.ok(imported(
        "a",
        "b",
        5,
        send("m-5", "alice", "bob@b", "hello across"),
    ));
    let bob = b.id("bob");
    let inbox = b.state.mailbox(bob).expect("bob's mailbox");
    let message = inbox.get("m-5@a").expect("imported under its origin id");
    assert_eq!(message.from_name, "alice@a");
    assert_eq!(message.body, "hello across");
    assert_eq!(
        b.state.federation().link_progress("a").map(|p| p.offset),
        Some(5)
    );

    // The same record again is a duplicate, refused, and changes nothing.
    assert!(matches!(
        b.reject(imported(
            "a",
            "b",
            5,
            send("m-5", "alice", "bob@b", "again")
        )),
        ApplyError::DuplicateLinkImport { .. }
    ));

    // Bob's session took it: the step goes back to a as the receipt for `bob@b`.
    b.ok(pushed("bob", "m-5@a"));
    a.ok(imported("b", "a", 9, pushed("bob", "m-5@a")));
    let waiting = a.state.mailbox(remote_bob).expect("a mailbox for bob@b");
    assert_eq!(
        waiting.get("m-5").map(|message| message.state),
        Some(relay_replay::DeliveryState::Delivered)
    );
}

#[test]
fn an_ask_is_answered_across_hubs() {
    let mut a = log_with(&["alice"]);
    let mut b = log_with(&["bob"]);
    a.ok(ask("m-3", "a-3", "alice", "bob@b", None));
    b.ok(imported(
        "a",
        "b",
        3,
        ask("m-3", "a-3", "alice", "bob@b", None),
    ));
    assert!(b.state.pending_ask("a-3@a").is_some());
    b.ok(reply("m-8", "bob", "alice@a", "a-3@a"));
    assert!(b.state.pending_ask("a-3@a").is_none());
    a.ok(imported(
        "b",
        "a",
        8,
        reply("m-8", "bob", "alice@a", "a-3@a"),
    ));
    assert!(
        a.state.pending_ask("a-3").is_none(),
        "the reply resolves alice's ask"
    );
    let alice = a.id("alice");
    let reply = a
        .state
        .mailbox(alice)
        .and_then(|mailbox| mailbox.get("m-8@b").cloned());
    assert_eq!(
        reply.map(|message| message.from_name),
        Some("bob@b".to_owned())
    );
}

#[test]
fn an_origin_speaks_only_for_its_own_peers_and_never_changes_its_log() {
    let mut b = log_with(&["bob", "carol"]);
    let before = b.state.clone();
    // `a` claiming a message from b's own carol, or from a peer of hub c.
    for from in ["carol@b", "dave@c"] {
        assert!(matches!(
            b.reject(imported("a", "b", 1, send("m-1", from, "bob@b", "forged"))),
            ApplyError::ImportNotTranslated { .. }
        ));
    }
    // Kinds that never cross hubs.
    assert!(matches!(
        b.reject(imported("a", "b", 1, register("mallory"))),
        ApplyError::ImportNotTranslated { .. }
    ));
    assert_eq!(b.state, before);
    b.ok(imported("a", "b", 1, send("m-1", "alice", "bob@b", "hi")));
    let mut changed = imported("a", "b", 2, send("m-2", "alice", "bob@b", "hi"));
    changed.origin_log_id = 8;
    assert!(matches!(
        b.reject(changed),
        ApplyError::LinkLogChanged { .. }
    ));
}

#[test]
fn a_refused_import_moves_the_progress_and_nothing_else() {
    let mut b = log_with(&["bob"]);
    let mut refused = imported("a", "b", 4, send("m-4", "alice", "bob@b", "hi"));
    refused.refused = Some("bob's mailbox is full".into());
    let before = b.state.mailbox(b.id("bob")).cloned();
    b.ok(refused);
    assert_eq!(b.state.mailbox(b.id("bob")).cloned(), before);
    assert!(b.state.identity_by_name("alice@a").is_none());
    assert_eq!(
        b.state.federation().link_progress("a").map(|p| p.offset),
        Some(4)
    );
}

#[test]
fn two_unknown_remote_parties_are_refused() {
    let mut a = log_with(&["alice"]);
    assert!(matches!(
        a.reject(send("m-1", "x@c", "y@d", "hi")),
        ApplyError::NoKnownParty { .. }
    ));
    assert!(matches!(
        a.reject(send("m-1", "alice", "bob@", "hi")),
        ApplyError::UnknownIdentity { .. }
    ));
}

#[test]
fn link_acknowledgements_only_move_forward() {
    let mut a = log_with(&["alice"]);
    a.ok(LinkAcknowledged {
        peer_hub: "b".into(),
        durable: 10,
    });
    assert!(matches!(
        a.reject(LinkAcknowledged {
            peer_hub: "b".into(),
            durable: 9,
        }),
        ApplyError::LinkAcknowledgementBackwards { .. }
    ));
    assert_eq!(a.state.federation().link_acknowledged("b"), 10);
}

#[test]
fn a_delivery_the_other_hub_refused_comes_back_as_refused() {
    let mut a = log_with(&["alice"]);
    let mut b = log_with(&["bob"]);
    let message = send("m-5", "alice", "nobody@b", "hello?");
    a.ok(message.clone());
    // b cannot deliver to a peer it does not have: it logs the import refused.
    let mut refused = imported("a", "b", 5, message);
    assert!(matches!(
        b.reject(refused.clone()),
        ApplyError::LinkImportRejected { .. }
    ));
    refused.refused = Some("no identity is named \"nobody\"".into());
    b.ok(refused.clone());
    assert_eq!(
        relay_replay::federation::destination(&refused.clone().into()),
        Some("a")
    );
    // Shipped back, it marks alice's message to nobody@b refused.
    a.ok(imported("b", "a", 3, refused));
    let waiting = a
        .state
        .mailbox(a.id("nobody@b"))
        .expect("a mailbox for nobody@b");
    assert_eq!(
        waiting
            .get("m-5")
            .and_then(|message| message.reported.clone())
            .as_deref(),
        Some("refused")
    );
}

#[test]
fn a_linked_hub_cannot_crowd_out_this_hubs_identities() {
    use relay_replay::limits::REMOTE_IDENTITIES_PER_HUB_MAX;
    let mut b = log_with(&["bob"]);
    for n in 0..REMOTE_IDENTITIES_PER_HUB_MAX as u64 {
        b.ok(imported(
            "a",
            "b",
            n,
            send(&format!("m-{n}"), &format!("p{n}"), "bob@b", "hi"),
        ));
    }
    let next = REMOTE_IDENTITIES_PER_HUB_MAX as u64;
    let refused = b.reject(imported(
        "a",
        "b",
        next,
        send("m-x", "one-more", "bob@b", "hi"),
    ));
    assert!(
        matches!(
            &refused,
            ApplyError::LinkImportRejected { source, .. }
                if matches!(**source, ApplyError::RemoteIdentitiesFull { .. })
        ),
        "{refused:?}"
    );
    // Another hub still has its own allowance, and known peers of a still deliver.
    b.ok(imported("c", "b", 0, send("m-1", "carol", "bob@b", "hi")));
    b.ok(imported(
        "a",
        "b",
        next,
        send("m-y", "p0", "bob@b", "again"),
    ));
}
