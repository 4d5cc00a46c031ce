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
    assert_eq!(message.from_name(), "alice@a");
    assert_eq!(message.body(), "hello across");
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
        waiting.get("m-5").map(|message| message.state()),
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
        reply.map(|message| message.from_name().to_owned()),
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
        waiting.get("m-5").and_then(|message| message.reported()),
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

#[test]
fn a_group_homed_on_a_is_copied_on_b_and_posts_from_b_go_home() {
    let mut a = log_with(&["alice"]);
    let mut b = log_with(&["bob", "dan"]);
    // On a, the group gets a member of hub b: its route now names b.
    a.ok(create_group("team", "alice"));
    a.ok(invite("team", "alice", "bob@b"));
    let route: Vec<&str> = a
        .state
        .federation()
        .group_route("team")
        .expect("a route")
        .hubs()
        .collect();
    assert_eq!(route, ["b"]);
    assert!(a.state.federation().groups_routed_to("b").contains("team"));

    // On b, the invite of one of its peers creates the copy `team@a`, admin `alice@a`.
    b.ok(imported("a", "b", 2, invite("team", "alice", "bob@b")));
    let copy = b.state.group("team@a").expect("a copy on b");
    assert_eq!(
        b.state.identity(copy.admin()).map(|i| i.name()),
        Some("alice@a")
    );
    assert!(copy.is_member(b.id("bob")));

    // Only the home changes members: b's own invite into the copy is refused.
    assert!(matches!(
        b.reject(invite("team@a", "bob", "dan")),
        ApplyError::GroupHomedElsewhere { .. }
    ));
    assert!(matches!(
        b.reject(create_group("x@a", "bob")),
        ApplyError::GroupHomedElsewhere { .. }
    ));

    // Bob posts on b: checked against the copy, stored only when the home ships it back.
    b.ok(group_send("team@a", "g-9", "bob", "from b"));
    assert_eq!(b.state.group("team@a").expect("copy").messages().len(), 0);
    // On a, the import is progress only (the hub logs the post as its own next to it).
    a.ok(imported(
        "b",
        "a",
        9,
        group_send("team@a", "g-9", "bob", "from b"),
    ));
    assert_eq!(a.state.group("team").expect("group").messages().len(), 0);
    a.ok(group_send("team", "g-4", "bob@b", "from b"));
    // Back on b in the home's order, under the home's id.
    b.ok(imported(
        "a",
        "b",
        4,
        group_send("team", "g-4", "bob@b", "from b"),
    ));
    let copy = b.state.group("team@a").expect("copy");
    let stored: Vec<_> = copy
        .messages()
        .map(|message| (message.id.clone(), message.author_name.clone()))
        .collect();
    assert_eq!(stored, [(Some("g-4@a".into()), Some("bob".into()))]);

    // A post by a member b never saw join: the home vouches for it.
    b.ok(imported(
        "a",
        "b",
        5,
        group_send("team", "g-5", "carol@c", "hi"),
    ));
    assert_eq!(b.state.group("team@a").expect("copy").member_count(), 3);

    // Bob leaves on b: out at once, and with b's last local member the copy goes.
    b.ok(GroupLeft {
        group: "team@a".into(),
        member: "bob".into(),
    });
    assert!(b.state.group("team@a").is_none());

    // Deleted on a, the route stays until b acknowledged the deletion, then goes.
    a.ok(GroupDeleted {
        group: "team".into(),
        actor: "alice".into(),
    });
    let deleted_at = a
        .state
        .federation()
        .group_route("team")
        .and_then(|route| route.deleted_at())
        .expect("the route waits for the deletion to ship");
    a.ok(LinkAcknowledged {
        peer_hub: "b".into(),
        durable: deleted_at + 1,
    });
    assert!(a.state.federation().group_route("team").is_none());
    assert_eq!(a.state.bytes(), a.state.recount_bytes());
    assert_eq!(b.state.bytes(), b.state.recount_bytes());
}

#[test]
fn a_hub_speaks_only_for_the_groups_it_homes() {
    let mut b = log_with(&["bob"]);
    b.ok(create_group("ours", "bob"));
    // Hub a may not change the members of b's group, nor post as a peer of another hub.
    b.reject(imported("a", "b", 1, invite("ours@b", "alice", "carol")));
    b.reject(imported(
        "a",
        "b",
        2,
        group_send("ours@b", "g-1", "carol@c", "forged"),
    ));
    // Events of a group b holds no copy of change nothing.
    b.ok(imported(
        "a",
        "b",
        3,
        group_send("elsewhere", "g-2", "alice", "hi"),
    ));
    assert!(b.state.group("elsewhere@a").is_none());
}
