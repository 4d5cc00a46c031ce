//! Conformance of the hub to `docs/protocol.md`, black-box: each test runs the real `relay hub`
//! on a fresh data dir and talks JSON to it over its real sockets, method by method and error
//! code by error code. The wire is described here in plain JSON, never through
//! `relay::protocol`, so a change to the wire shows up as a change to these tests.
//!
//! Scenarios take the transport as a parameter and run twice, over the Unix socket and over
//! the WebSocket (`over_unix_socket::…`, `over_websocket::…`); what only one transport has
//! (byte-level framing, `auth`) is tested on that one.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use serde_json::{Value, json};
use support::{
    FRAME_BYTES_MAX, Hub, NAME_BYTES_MAX, Session, TEXT_BYTES_MAX, Transport, acknowledged,
    expect_error, hello_params, now_us, register_params, run_with_deadline,
};

/// Runs each named scenario as a test over the Unix socket and as one over the WebSocket.
macro_rules! on_both_transports {
    ($($scenario:ident),* $(,)?) => {
        mod over_unix_socket {
            $(#[test] fn $scenario() { super::$scenario(super::Transport::Unix) })*
        }
        mod over_websocket {
            $(#[test] fn $scenario() { super::$scenario(super::Transport::WebSocket) })*
        }
    };
}

on_both_transports!(
    hello_answers_the_highest_version_both_sides_speak,
    hello_without_a_common_version_is_protocol_mismatch_and_the_session_stays_open,
    a_second_hello_repeats_the_result_or_is_protocol_mismatch,
    requests_before_hello_are_hello_required,
    ping_is_answered_before_and_after_hello,
    methods_before_register_are_not_registered,
    register_with_a_name_takes_exactly_that_name,
    register_without_a_name_derives_it_from_the_session_name,
    register_without_a_name_uses_the_cwd_and_suffixes_names_held_online,
    register_twice_is_already_registered,
    rename_carries_the_mailbox_and_peers_see_the_new_name,
    rename_to_a_known_name_is_name_taken,
    rename_keeps_groups_rooms_and_admin_rights,
    peers_describe_every_other_identity,
    peers_show_the_client_kind_each_session_registered_with,
    send_to_an_online_peer_is_delivered_and_pushed,
    a_push_never_acknowledged_is_queued_and_stays_unread,
    a_delivered_message_returns_once_marked_pushed_a_read_one_never,
    a_refused_message_is_unread_again_and_the_sender_hears_it,
    a_repeated_idempotency_key_gets_the_first_result,
    a_repeated_key_during_the_acknowledgement_wait_joins_the_first,
    an_unanswered_ask_times_out_and_a_late_reply_is_marked,
    a_returning_session_is_told_of_its_mail,
    reserved_names_are_refused_at_register_and_rename,
    a_conversation_past_its_loop_bound_is_rate_limited,
    the_loop_guard_takes_its_bound_from_the_hub_flag_and_0_switches_it_off,
    send_to_an_offline_peer_is_queued,
    send_to_a_name_never_seen_is_peer_not_found,
    a_message_sent_while_offline_is_in_the_inbox_after_registering_again,
    inbox_marks_messages_read_so_a_second_call_returns_nothing,
    a_pushed_message_is_not_in_the_plain_inbox_but_is_with_include_pushed,
    inbox_returns_at_most_limit_and_counts_the_remaining,
    inbox_limit_outside_1_to_100_is_bad_args,
    an_ask_is_pushed_and_its_reply_routes_back_to_the_asker,
    an_ask_to_an_offline_peer_is_queued_and_answered_on_return,
    reply_to_a_received_message_id_goes_to_its_author,
    reply_to_an_unknown_or_foreign_id_is_ask_not_found,
    broadcast_asks_every_online_peer_and_their_replies_stream_back,
    broadcast_with_nobody_else_online_asks_no_one,
    room_join_creates_the_room_and_joining_twice_succeeds,
    room_post_pushes_to_the_other_members_only,
    room_post_by_a_non_member_is_not_member,
    room_leave_removes_the_member_and_leaving_again_is_not_member,
    a_session_that_disconnects_leaves_its_rooms,
    rooms_are_empty_after_a_hub_restart_but_groups_remain,
    joining_more_rooms_than_the_hub_holds_is_limit_reached,
    group_create_makes_the_caller_admin_and_tells_the_invitees,
    group_create_of_an_existing_name_is_group_exists,
    group_create_with_an_unknown_member_is_peer_not_found_and_creates_nothing,
    group_invite_is_admin_only_and_tells_the_invitee,
    group_remove_is_admin_only_and_tells_the_removed_member_why,
    group_leave_hands_admin_to_the_longest_standing_member,
    the_last_member_leaving_deletes_the_group,
    group_delete_is_admin_only_and_tells_the_members,
    group_info_lists_the_admin_the_members_with_presence_and_unread,
    group_send_pushes_to_the_other_members,
    group_history_advances_the_cursor_so_unread_remaining_drops,
    group_history_with_nothing_unread_shows_recent_messages_again,
    an_offline_member_catches_up_through_group_history,
    a_member_added_later_does_not_see_earlier_messages,
    group_list_shows_the_callers_groups_by_name_with_unread_counts,
    group_methods_on_a_missing_group_are_group_not_found,
    group_methods_by_a_non_member_are_not_member,
    a_silent_holder_of_a_fixed_name_is_replaced_by_a_new_session,
    a_live_holder_keeps_its_name_and_the_newcomer_gets_name_taken,
    a_session_that_does_not_answer_pings_is_evicted,
    a_session_that_answers_pings_stays_online,
    sends_past_the_burst_are_rate_limited,
    text_of_64_kib_is_accepted_and_one_byte_more_is_bad_args,
    limits_count_bytes_not_characters,
    a_name_of_64_bytes_is_accepted_and_65_is_bad_args,
    each_param_limit_is_bad_args_one_past_it,
    an_error_message_over_1024_bytes_is_cut_and_ends_in_an_ellipsis,
    a_frame_of_exactly_1_mib_is_read,
    a_frame_over_1_mib_is_frame_too_large_and_the_connection_goes_on,
    malformed_json_is_bad_msg_with_a_null_id,
    a_frame_that_is_not_a_json_rpc_request_is_bad_msg,
    an_unreadable_id_is_bad_msg_with_a_null_id,
    params_of_the_wrong_type_are_bad_args_with_the_request_id,
    unknown_params_are_bad_args,
    params_may_be_omitted_or_null,
    an_unknown_method_is_unknown_method_with_the_request_id,
    string_ids_are_echoed_in_the_response,
    notifications_from_the_client_are_ignored,
    a_message_sent_in_two_parts_is_read_whole,
    bad_input_leaves_the_hub_and_other_sessions_working,
    rejected_requests_append_nothing_to_the_log,
    peers_lists_online_peers_first_then_by_name,
    a_reply_to_a_message_id_is_kind_reply_in_the_inbox,
    a_reply_to_the_broadcast_id_goes_back_to_the_asker,
    group_invite_of_a_member_is_already_member,
    group_remove_naming_the_admin_is_bad_args,
    group_create_and_group_info_list_the_admin_first,
    a_removal_is_a_system_message_from_relay_naming_the_reason,
    group_send_carries_urgent_and_reply_to,
    a_silent_holder_is_replaced_within_seconds_with_default_ping_settings,
    inbox_remaining_counts_the_matching_messages_not_returned_with_include_pushed,
    inbox_since_id_does_not_mark_earlier_messages_read,
    own_messages_are_not_paged_as_unread_by_group_history,
);

// ---------------------------------------------------------------------------------------------
// Helpers: one line of input each.

/// A hub and one session per name, registered under those fixed names.
fn hub_with(transport: Transport, names: &[&str]) -> (Hub, Vec<Session>) {
    hub_with_flags(transport, &[], names)
}

/// As [`hub_with`], the hub started with extra `relay hub` flags.
fn hub_with_flags(transport: Transport, flags: &[&str], names: &[&str]) -> (Hub, Vec<Session>) {
    let hub = Hub::start_with(flags);
    let sessions = names.iter().map(|name| hub.join(transport, name)).collect();
    (hub, sessions)
}

/// Registers `name`, then disconnects it and waits until `observer` sees it offline.
fn known_but_offline(hub: &Hub, transport: Transport, observer: &mut Session, name: &str) {
    drop(hub.join(transport, name));
    observer.wait_until_offline(name);
}

/// The `text` of each message in a list of messages.
fn texts(messages: &Value) -> Vec<&str> {
    messages
        .as_array()
        .unwrap_or_else(|| panic!("a list of messages: {messages}"))
        .iter()
        .map(|message| message["text"].as_str().expect("a message has text"))
        .collect()
}

/// The names in a list of names, sorted.
fn sorted_names(names: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = names
        .as_array()
        .unwrap_or_else(|| panic!("a list of names: {names}"))
        .iter()
        .map(|name| name.as_str().expect("a name is a string"))
        .collect();
    names.sort_unstable();
    names
}

/// The `name` of each object in a list (peers, group members), sorted.
fn member_names(list: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|item| item["name"].as_str().expect("a name is a string"))
        .collect();
    names.sort_unstable();
    names
}

fn send(session: &mut Session, to: &str, text: &str) -> Value {
    session.call("send", json!({ "to": to, "text": text }))
}

fn inbox(session: &mut Session, params: Value) -> Value {
    session.call("inbox", params)
}

/// `group_history` of `group` with `limit`.
fn history(session: &mut Session, group: &str, limit: u32) -> Value {
    session.call("group_history", json!({ "group": group, "limit": limit }))
}

/// Asserts that `push` is a `system` notice about `group` whose text contains `words`.
fn assert_system_notice(push: &Value, group: &str, words: &str) {
    assert_eq!(push["kind"], "system", "{push}");
    assert_eq!(push["group"], group, "{push}");
    let text = push["text"].as_str().expect("a notice has text");
    assert!(
        text.contains(words),
        "notice {text:?} should mention {words:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Session lifecycle and `hello`.

fn hello_answers_the_highest_version_both_sides_speak(transport: Transport) {
    let hub = Hub::start();
    let mut session = hub.connect(transport);
    let hello = session.call("hello", hello_params(1, 7));
    assert_eq!(hello["version"], 1);
    assert!(
        hello["hub_version"]
            .as_str()
            .is_some_and(|version| !version.is_empty()),
        "{hello}"
    );
    let hub_id = hello["hub_id"].as_str().expect("hub_id is a string");
    assert!(
        !hub_id.is_empty() && hub_id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
        "hub_id is lowercase hex: {hub_id}"
    );
}

fn hello_without_a_common_version_is_protocol_mismatch_and_the_session_stays_open(
    transport: Transport,
) {
    let hub = Hub::start();
    let mut session = hub.connect(transport);
    let error = session.fail("hello", hello_params(2, 3), "protocol_mismatch");
    assert_eq!(error["data"]["hub_versions"], json!({ "min": 1, "max": 1 }));
    assert_eq!(
        error["data"]["client_versions"],
        json!({ "min": 2, "max": 3 })
    );
    let message = error["message"].as_str().expect("a message");
    assert!(
        message.contains("2..=3")
            && message.contains("1..=1")
            && message.contains("upgrade the hub"),
        "the message says which versions each side speaks and what to upgrade: {message}"
    );
    let hello = session.call("hello", hello_params(1, 1));
    assert_eq!(hello["version"], 1);
}

fn a_second_hello_repeats_the_result_or_is_protocol_mismatch(transport: Transport) {
    let hub = Hub::start();
    let mut session = hub.connect(transport);
    let first = session.call("hello", hello_params(1, 2));
    assert_eq!(session.call("hello", hello_params(1, 3)), first);
    session.fail("hello", hello_params(2, 2), "protocol_mismatch");
    // The negotiated version stays: the session still works.
    session.call("register", register_params("alice"));
}

fn requests_before_hello_are_hello_required(transport: Transport) {
    let hub = Hub::start();
    let mut session = hub.connect(transport);
    session.fail("register", register_params("alice"), "hello_required");
    session.fail("peers", json!({}), "hello_required");
    session.fail(
        "send",
        json!({ "to": "bob", "text": "hi" }),
        "hello_required",
    );
}

fn ping_is_answered_before_and_after_hello(transport: Transport) {
    let hub = Hub::start();
    let mut session = hub.connect(transport);
    assert_eq!(session.call("ping", json!({})), json!({}));
    session.call("hello", hello_params(1, 1));
    assert_eq!(session.call("ping", json!({})), json!({}));
}

fn methods_before_register_are_not_registered(transport: Transport) {
    let hub = Hub::start();
    let mut session = hub.greeted(transport);
    session.fail("peers", json!({}), "not_registered");
    session.fail(
        "send",
        json!({ "to": "bob", "text": "hi" }),
        "not_registered",
    );
    session.fail("inbox", json!({}), "not_registered");
    session.fail("rooms", json!({}), "not_registered");
    session.fail("group_list", json!({}), "not_registered");
    session.fail("rename", json!({ "new_name": "x" }), "not_registered");
}

// ---------------------------------------------------------------------------------------------
// `register`, `rename`, `peers`.

fn register_with_a_name_takes_exactly_that_name(transport: Transport) {
    let hub = Hub::start();
    let mut session = hub.greeted(transport);
    let params = json!({ "name": "Api.v2_box", "session_name": "something else", "cwd": "/src/x", "client": "cli" });
    assert_eq!(
        session.call("register", params),
        json!({ "name": "Api.v2_box" })
    );
}

fn register_without_a_name_derives_it_from_the_session_name(transport: Transport) {
    let hub = Hub::start();
    let mut session = hub.greeted(transport);
    let params = json!({ "session_name": "api work", "cwd": "/home/dev/api", "git_branch": "main", "client": "claude" });
    assert_eq!(
        session.call("register", params),
        json!({ "name": "api-work" })
    );
}

fn register_without_a_name_uses_the_cwd_and_suffixes_names_held_online(transport: Transport) {
    let hub = Hub::start();
    let params = json!({ "cwd": "/home/dev/web app", "client": "cursor" });
    let mut sessions = Vec::new();
    for expected in ["web-app", "web-app-2", "web-app-3"] {
        let mut session = hub.greeted(transport);
        assert_eq!(session.call("register", params.clone())["name"], expected);
        sessions.push(session);
    }
}

fn register_twice_is_already_registered(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice"]);
    sessions[0].fail("register", register_params("alice"), "already_registered");
    sessions[0].fail("register", register_params("other"), "already_registered");
}

fn rename_carries_the_mailbox_and_peers_see_the_new_name(transport: Transport) {
    let (hub, mut sessions) = hub_with(transport, &["alice"]);
    let alice = &mut sessions[0];
    known_but_offline(&hub, transport, alice, "bob");
    assert_eq!(send(alice, "bob", "while you were out")["status"], "queued");
    let mut bob = hub.join(transport, "bob");

    assert_eq!(
        bob.call("rename", json!({ "new_name": "robert" })),
        json!({ "name": "robert" })
    );

    assert_eq!(
        texts(&inbox(&mut bob, json!({}))["messages"]),
        ["while you were out"]
    );
    assert_eq!(alice.peer("robert")["online"], true);
    let peers = alice.call("peers", json!({}));
    assert!(
        !peers.to_string().contains("\"bob\""),
        "the old name is gone: {peers}"
    );
    alice.fail(
        "send",
        json!({ "to": "bob", "text": "hi" }),
        "peer_not_found",
    );
    let (sent, push) = acknowledged(
        alice,
        &mut bob,
        "send",
        json!({ "to": "robert", "text": "hi robert" }),
        "read",
    );
    assert_eq!(sent["status"], "delivered");
    assert_eq!(push["text"], "hi robert");
}

fn rename_to_a_known_name_is_name_taken(transport: Transport) {
    let (hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    sessions[0].fail("rename", json!({ "new_name": "bob" }), "name_taken");
    known_but_offline(&hub, transport, &mut sessions[0], "carol");
    sessions[0].fail("rename", json!({ "new_name": "carol" }), "name_taken");
    assert_eq!(sessions[1].peer("alice")["online"], true);
}

fn rename_keeps_groups_rooms_and_admin_rights(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    sessions[0].call("group_create", json!({ "name": "core" }));
    sessions[0].call("room_join", json!({ "room": "lobby" }));
    sessions[0].call("rename", json!({ "new_name": "alicia" }));
    let alicia = &mut sessions[0];
    assert_eq!(
        alicia.call("group_info", json!({ "group": "core" }))["admin"],
        "alicia"
    );
    alicia.call("group_invite", json!({ "group": "core", "peer": "bob" }));
    assert_eq!(
        alicia.call("rooms", json!({})),
        json!({ "rooms": [{ "name": "lobby", "members": ["alicia"] }] })
    );
}

fn peers_show_the_client_kind_each_session_registered_with(transport: Transport) {
    let hub = Hub::start();
    let kinds = [
        "claude", "codex", "cursor", "opencode", "copilot", "gemini", "cli",
    ];
    let mut sessions = Vec::new();
    for kind in kinds {
        let mut session = hub.greeted(transport);
        session.call(
            "register",
            json!({ "name": kind, "cwd": "/src", "client": kind }),
        );
        sessions.push(session);
    }
    let mut observer = hub.join(transport, "observer");
    for kind in kinds {
        assert_eq!(observer.peer(kind)["client"], kind);
    }
    let mut other = hub.greeted(transport);
    other.fail(
        "register",
        json!({ "cwd": "/src", "client": "vim" }),
        "bad_args",
    );
}

fn peers_describe_every_other_identity(transport: Transport) {
    let start_us = now_us();
    let hub = Hub::start();
    let mut alice = hub.greeted(transport);
    alice.call(
        "register",
        json!({ "name": "alice", "cwd": "/home/dev/api", "git_branch": "main", "client": "claude" }),
    );
    let mut bob = hub.greeted(transport);
    bob.call(
        "register",
        json!({ "name": "bob", "cwd": "/home/dev/web", "client": "codex" }),
    );
    known_but_offline(&hub, transport, &mut bob, "carol");

    let peers = bob.call("peers", json!({}));
    assert_eq!(peers["me"], "bob");
    assert_eq!(
        member_names(&peers["peers"]),
        ["alice", "carol"],
        "every identity but the caller"
    );

    let alice_seen = bob.peer("alice");
    assert_eq!(alice_seen["online"], true);
    assert_eq!(alice_seen["cwd"], "/home/dev/api");
    assert_eq!(alice_seen["git_branch"], "main");
    assert_eq!(alice_seen["client"], "claude");
    let carol_seen = bob.peer("carol");
    assert_eq!(carol_seen["online"], false);
    assert_eq!(carol_seen["git_branch"], Value::Null);
    assert_eq!(carol_seen["client"], "cli");
    let last_seen = carol_seen["last_seen"]
        .as_u64()
        .expect("last_seen is an integer");
    assert!(
        (start_us..=now_us()).contains(&last_seen),
        "last_seen is microseconds since the epoch: {last_seen}"
    );
}

// ---------------------------------------------------------------------------------------------
// `send` and `inbox`.

fn send_to_an_online_peer_is_delivered_and_pushed(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    let (alice, bob) = pair(&mut sessions);
    let (sent, push) = acknowledged(
        alice,
        bob,
        "send",
        json!({ "to": "bob", "text": "the /users endpoint\nnow pages", "reply_to": "m-1", "urgent": true }),
        "delivered",
    );
    assert_eq!(sent["status"], "delivered");
    let receipt = sessions[0].receipt();
    assert_eq!(
        (&receipt["msg_id"], &receipt["to"], &receipt["status"]),
        (&sent["msg_id"], &json!("bob"), &json!("delivered"))
    );
    assert_eq!(push["kind"], "direct");
    assert_eq!(push["from"], "alice");
    assert_eq!(push["text"], "the /users endpoint\nnow pages");
    assert_eq!(push["msg_id"], sent["msg_id"]);
    assert_eq!(push["reply_to"], "m-1");
    assert_eq!(push["urgent"], true);
    assert_eq!(push["ask_id"], Value::Null);
    assert_eq!(push["room"], Value::Null);
    assert_eq!(push["group"], Value::Null);
    assert_eq!(push["origin_hub"], Value::Null);
    sessions[0].assert_no_push();
}

// A push nobody acknowledges is not a delivery: the sender hears `queued` after the wait, and
// the message stays unread for the recipient's next pull.
fn a_push_never_acknowledged_is_queued_and_stays_unread(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    let sent = send(&mut sessions[0], "bob", "are you reading?");
    assert_eq!(sent["status"], "queued");
    assert_eq!(sessions[1].push()["text"], "are you reading?");
    let pulled = inbox(&mut sessions[1], json!({}));
    assert_eq!(texts(&pulled["messages"]), ["are you reading?"]);
    assert_eq!(pulled["messages"][0]["pushed"], false);
    let status = sessions[0].call("status", json!({ "msg_id": sent["msg_id"] }));
    assert_eq!(status["state"], "read");
    assert_eq!(status["to"], "bob");
}

// Delivered-but-not-read (a channel notification) comes back once from the plain inbox,
// marked `pushed`; read (a native push) never does.
fn a_delivered_message_returns_once_marked_pushed_a_read_one_never(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    let (alice, bob) = pair(&mut sessions);
    let (first, _) = acknowledged(
        alice,
        bob,
        "send",
        json!({ "to": "bob", "text": "one" }),
        "delivered",
    );
    let (second, _) = acknowledged(
        alice,
        bob,
        "send",
        json!({ "to": "bob", "text": "two" }),
        "read",
    );
    assert_eq!(
        (&first["status"], &second["status"]),
        (&json!("delivered"), &json!("delivered"))
    );
    let pulled = inbox(bob, json!({}));
    assert_eq!(texts(&pulled["messages"]), ["one"]);
    assert_eq!(pulled["messages"][0]["pushed"], true);
    assert_eq!(
        inbox(bob, json!({})),
        json!({ "messages": [], "remaining": 0 })
    );
    let states: Vec<Value> = [&first, &second]
        .iter()
        .map(|sent| alice.call("status", json!({ "msg_id": sent["msg_id"] }))["state"].clone())
        .collect();
    assert_eq!(states, [json!("read"), json!("read")]);
}

// A refusal by the recipient's client makes the message unread again and tells the sender.
fn a_refused_message_is_unread_again_and_the_sender_hears_it(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    let (alice, bob) = pair(&mut sessions);
    let (sent, push) = acknowledged(
        alice,
        bob,
        "send",
        json!({ "to": "bob", "text": "x" }),
        "read",
    );
    bob.ack(&push, "held");
    bob.ack(&push, "refused");
    let statuses: Vec<Value> = (0..3).map(|_| alice.receipt()["status"].clone()).collect();
    assert_eq!(statuses, [json!("read"), json!("held"), json!("refused")]);
    let status = alice.call("status", json!({ "msg_id": sent["msg_id"] }));
    assert_eq!(
        (&status["state"], &status["reported"]),
        (&json!("queued"), &json!("refused"))
    );
    assert_eq!(texts(&inbox(bob, json!({}))["messages"]), ["x"]);
}

// A repeated idempotency key gets the first result; nothing is stored twice.
fn a_repeated_idempotency_key_gets_the_first_result(transport: Transport) {
    let (hub, mut sessions) = hub_with(transport, &["alice"]);
    known_but_offline(&hub, transport, &mut sessions[0], "bob");
    let params = json!({ "to": "bob", "text": "once", "idempotency_key": "k-1" });
    let first = sessions[0].call("send", params.clone());
    let again = sessions[0].call("send", params);
    assert_eq!(first, again);
    let other = sessions[0].call(
        "send",
        json!({ "to": "bob", "text": "twice", "idempotency_key": "k-2" }),
    );
    assert_ne!(other["msg_id"], first["msg_id"]);
    let mut bob = hub.join(transport, "bob");
    assert_eq!(
        texts(&inbox(&mut bob, json!({}))["messages"]),
        ["once", "twice"]
    );
}

// A repeat that arrives while the first still waits for the recipient's ack gets its answer.
fn a_repeated_key_during_the_acknowledgement_wait_joins_the_first(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    let (alice, bob) = pair(&mut sessions);
    let params = json!({ "to": "bob", "text": "just once", "idempotency_key": "k-wait" });
    let first = alice.send_request("send", params.clone());
    let again = alice.send_request("send", params);
    let push = bob.push();
    bob.ack(&push, "read");
    let (first, again) = (alice.response(&first), alice.response(&again));
    assert_eq!(first["result"], again["result"], "{first} {again}");
    assert_eq!(first["result"]["status"], "delivered", "{first}");
    bob.assert_no_push();
    let stored = inbox(bob, json!({ "include_pushed": true }));
    assert_eq!(texts(&stored["messages"]), ["just once"]);
}

// An ask past its deadline ends: the asker gets a `timeout` naming it; a late reply still
// arrives, marked late.
fn an_unanswered_ask_times_out_and_a_late_reply_is_marked(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    let (alice, bob) = pair(&mut sessions);
    let (asked, _) = acknowledged(
        alice,
        bob,
        "ask",
        json!({ "to": "bob", "question": "port?", "deadline_s": 1 }),
        "read",
    );
    alice.receipt();
    let timeout = alice.push();
    assert_eq!(timeout["kind"], "timeout");
    assert_eq!(timeout["from"], "relay");
    assert_eq!(timeout["reply_to"], asked["ask_id"]);
    let replied = bob.call(
        "reply",
        json!({ "ask_id": asked["ask_id"], "text": "5173" }),
    );
    let late = alice.push();
    assert_eq!(
        (&late["kind"], &late["late"], &late["msg_id"]),
        (&json!("reply"), &json!(true), &replied["msg_id"])
    );
    let pulled = inbox(alice, json!({}));
    let kinds: Vec<&Value> = pulled["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| &m["kind"])
        .collect();
    assert_eq!(kinds, [&json!("timeout"), &json!("reply")]);
    assert_eq!(pulled["messages"][1]["late"], true);
    alice.fail(
        "ask",
        json!({ "to": "bob", "question": "q", "deadline_s": 86_401 }),
        "bad_args",
    );
}

// A session that comes back to unread mail is told so through its push path.
fn a_returning_session_is_told_of_its_mail(transport: Transport) {
    let (hub, mut sessions) = hub_with(transport, &["alice"]);
    known_but_offline(&hub, transport, &mut sessions[0], "bob");
    send(&mut sessions[0], "bob", "one");
    sessions[0].call("ask", json!({ "to": "bob", "question": "two?" }));
    let mut bob = hub.join(transport, "bob");
    let notice = bob.push();
    assert_eq!(
        (&notice["kind"], &notice["from"]),
        (&json!("system"), &json!("relay"))
    );
    let text = notice["text"].as_str().expect("text");
    assert!(
        text.contains("1 unread message") && text.contains("1 unanswered ask"),
        "{text}"
    );
    let unread = bob.call("unread", json!({}));
    assert_eq!(
        unread,
        json!({ "direct": 1, "asks": 1, "groups": {}, "total": 2 })
    );
}

// Names that would read as the hub or a role of the conversation are refused.
fn reserved_names_are_refused_at_register_and_rename(transport: Transport) {
    let hub = Hub::start();
    for name in ["relay", "User", "system", "assistant", "me@elsewhere"] {
        let mut session = hub.greeted(transport);
        let params = json!({ "name": name, "cwd": "/src/x", "client": "cli" });
        session.fail("register", params, "name_reserved");
    }
    let mut session = hub.greeted(transport);
    let params = json!({ "cwd": "/home/user", "client": "cli" });
    assert_eq!(session.call("register", params)["name"], "user-session");
    session.fail("rename", json!({ "new_name": "relay" }), "name_reserved");
}

// Two sessions answering each other forever hit the loop guard; a one-way stream does not.
fn a_conversation_past_its_loop_bound_is_rate_limited(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    let (alice, bob) = pair(&mut sessions);
    for index in 0..150 {
        let params = json!({ "to": "bob", "text": format!("one way {index}") });
        acknowledged(alice, bob, "send", params, "read");
    }
    // Ping-pong: 100 turns of direction are allowed, the 101st is refused.
    for index in 0..100 {
        let params = |to: &str| json!({ "to": to, "text": format!("pong {index}") });
        if index % 2 == 0 {
            acknowledged(bob, alice, "send", params("alice"), "read");
        } else {
            acknowledged(alice, bob, "send", params("bob"), "read");
        }
    }
    let error = bob.fail(
        "send",
        json!({ "to": "alice", "text": "one more" }),
        "rate_limited",
    );
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("loop guard")),
        "{error}"
    );
    // Both sides are told, for their users: auto-answering clients would just stop.
    for session in [alice, bob] {
        let notice = session.push();
        assert_eq!(notice["kind"], "system", "{notice}");
        let text = notice["text"].as_str().expect("text");
        assert!(
            text.contains("loop guard") && text.contains("alice") && text.contains("bob"),
            "{text}"
        );
    }
    bob.fail(
        "send",
        json!({ "to": "alice", "text": "and more" }),
        "rate_limited",
    );
    bob.assert_no_push();
}

// `relay hub --loop-guard N` moves the bound; 0 switches the guard off.
fn the_loop_guard_takes_its_bound_from_the_hub_flag_and_0_switches_it_off(transport: Transport) {
    let ping_pong = |alice: &mut Session, bob: &mut Session, turns: usize| {
        for index in 0..turns {
            let params = |to: &str| json!({ "to": to, "text": format!("pong {index}") });
            if index % 2 == 0 {
                acknowledged(bob, alice, "send", params("alice"), "read");
            } else {
                acknowledged(alice, bob, "send", params("bob"), "read");
            }
        }
    };
    let (hub, mut sessions) = hub_with_flags(transport, &["--loop-guard", "3"], &["alice", "bob"]);
    let (alice, bob) = pair(&mut sessions);
    // The first send starts the conversation; three turns follow it.
    ping_pong(alice, bob, 4);
    // Alice had the last word: another from her is no turn, an answer from Bob is the fourth.
    acknowledged(
        alice,
        bob,
        "send",
        json!({ "to": "bob", "text": "no turn" }),
        "read",
    );
    let error = bob.fail(
        "send",
        json!({ "to": "alice", "text": "one more" }),
        "rate_limited",
    );
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("loop guard: 3 exchanges")),
        "{error}"
    );
    drop(sessions);
    drop(hub);
    let (_hub, mut sessions) = hub_with_flags(transport, &["--loop-guard", "0"], &["alice", "bob"]);
    let (alice, bob) = pair(&mut sessions);
    ping_pong(alice, bob, 150);
    acknowledged(
        alice,
        bob,
        "send",
        json!({ "to": "bob", "text": "still going" }),
        "read",
    );
}

fn send_to_an_offline_peer_is_queued(transport: Transport) {
    let (hub, mut sessions) = hub_with(transport, &["alice"]);
    known_but_offline(&hub, transport, &mut sessions[0], "bob");
    let sent = send(&mut sessions[0], "bob", "later");
    assert_eq!(sent["status"], "queued");
    assert!(
        sent["msg_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{sent}"
    );
}

fn send_to_a_name_never_seen_is_peer_not_found(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice"]);
    sessions[0].fail(
        "send",
        json!({ "to": "ghost", "text": "boo" }),
        "peer_not_found",
    );
}

fn a_message_sent_while_offline_is_in_the_inbox_after_registering_again(transport: Transport) {
    let (hub, mut sessions) = hub_with(transport, &["alice"]);
    known_but_offline(&hub, transport, &mut sessions[0], "bob");
    let sent = sessions[0].call(
        "send",
        json!({ "to": "bob", "text": "while you were out", "urgent": true }),
    );

    let mut bob = hub.join(transport, "bob");
    let pulled = inbox(&mut bob, json!({}));
    assert_eq!(pulled["remaining"], 0);
    let message = &pulled["messages"][0];
    assert_eq!(message["msg_id"], sent["msg_id"]);
    assert_eq!(message["kind"], "direct");
    assert_eq!(message["from"], "alice");
    assert_eq!(message["text"], "while you were out");
    assert_eq!(message["reply_to"], Value::Null);
    assert_eq!(message["ask_id"], Value::Null);
    assert_eq!(message["urgent"], true);
    assert!(
        message["ts"].as_u64().is_some_and(|ts| ts <= now_us()),
        "{message}"
    );
    assert_eq!(pulled["messages"].as_array().map(Vec::len), Some(1));
}

fn inbox_marks_messages_read_so_a_second_call_returns_nothing(transport: Transport) {
    let (hub, mut sessions) = hub_with(transport, &["alice"]);
    known_but_offline(&hub, transport, &mut sessions[0], "bob");
    send(&mut sessions[0], "bob", "one");
    send(&mut sessions[0], "bob", "two");
    let mut bob = hub.join(transport, "bob");

    assert_eq!(
        texts(&inbox(&mut bob, json!({}))["messages"]),
        ["one", "two"]
    );
    assert_eq!(
        inbox(&mut bob, json!({})),
        json!({ "messages": [], "remaining": 0 })
    );
    let again = inbox(&mut bob, json!({ "include_pushed": true }));
    assert_eq!(texts(&again["messages"]), ["one", "two"]);
}

fn a_pushed_message_is_not_in_the_plain_inbox_but_is_with_include_pushed(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    let (alice, bob) = pair(&mut sessions);
    let (_, push) = acknowledged(
        alice,
        bob,
        "send",
        json!({ "to": "bob", "text": "pushed" }),
        "read",
    );
    assert_eq!(push["text"], "pushed");
    assert_eq!(
        inbox(bob, json!({})),
        json!({ "messages": [], "remaining": 0 })
    );
    assert_eq!(
        texts(&inbox(bob, json!({ "include_pushed": true }))["messages"]),
        ["pushed"]
    );
    assert_eq!(
        texts(&inbox(bob, json!({ "include_pushed": true }))["messages"]),
        ["pushed"]
    );
}

fn inbox_returns_at_most_limit_and_counts_the_remaining(transport: Transport) {
    let (hub, mut sessions) = hub_with(transport, &["alice"]);
    known_but_offline(&hub, transport, &mut sessions[0], "bob");
    let first = send(&mut sessions[0], "bob", "one");
    send(&mut sessions[0], "bob", "two");
    send(&mut sessions[0], "bob", "three");
    let mut bob = hub.join(transport, "bob");

    let page = inbox(&mut bob, json!({ "limit": 2 }));
    assert_eq!(
        (texts(&page["messages"]), &page["remaining"]),
        (vec!["one", "two"], &json!(1))
    );
    let page = inbox(&mut bob, json!({ "limit": 2 }));
    assert_eq!(
        (texts(&page["messages"]), &page["remaining"]),
        (vec!["three"], &json!(0))
    );
    let since = inbox(
        &mut bob,
        json!({ "since_id": first["msg_id"], "include_pushed": true }),
    );
    assert_eq!(texts(&since["messages"]), ["two", "three"]);
}

fn inbox_limit_outside_1_to_100_is_bad_args(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice"]);
    sessions[0].fail("inbox", json!({ "limit": 0 }), "bad_args");
    sessions[0].fail("inbox", json!({ "limit": 101 }), "bad_args");
    inbox(&mut sessions[0], json!({ "limit": 100 }));
    inbox(&mut sessions[0], json!({ "limit": 1 }));
}

// ---------------------------------------------------------------------------------------------
// `ask`, `reply`, `broadcast`.

fn an_ask_is_pushed_and_its_reply_routes_back_to_the_asker(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    let (alice, bob) = pair(&mut sessions);
    let (asked, push) = acknowledged(
        alice,
        bob,
        "ask",
        json!({ "to": "bob", "question": "which port does the dev server use?", "thread_id": "t-1" }),
        "read",
    );
    assert_eq!(asked["status"], "delivered");
    assert_eq!(push["kind"], "ask");
    assert_eq!(push["from"], "alice");
    assert_eq!(push["text"], "which port does the dev server use?");
    assert_eq!(push["ask_id"], asked["ask_id"]);
    assert_eq!(push["msg_id"], asked["msg_id"]);

    let (bob, alice) = {
        let (alice, bob) = pair(&mut sessions);
        (bob, alice)
    };
    let (replied, answer) = acknowledged(
        bob,
        alice,
        "reply",
        json!({ "ask_id": asked["ask_id"], "text": "5173" }),
        "read",
    );
    assert_eq!(replied["status"], "delivered");
    assert_eq!(answer["kind"], "reply");
    assert_eq!(answer["from"], "bob");
    assert_eq!(answer["text"], "5173");
    assert_eq!(answer["reply_to"], asked["ask_id"]);
    assert_eq!(answer["msg_id"], replied["msg_id"]);

    let mailbox = inbox(&mut sessions[0], json!({ "include_pushed": true }));
    let stored = &mailbox["messages"][0];
    assert_eq!(stored["msg_id"], replied["msg_id"]);
    assert_eq!(stored["kind"], "reply");
    assert_eq!(stored["from"], "bob");
    assert_eq!(stored["reply_to"], asked["ask_id"]);
}

fn an_ask_to_an_offline_peer_is_queued_and_answered_on_return(transport: Transport) {
    let (hub, mut sessions) = hub_with(transport, &["alice"]);
    known_but_offline(&hub, transport, &mut sessions[0], "bob");
    let asked = sessions[0].call("ask", json!({ "to": "bob", "question": "still there?" }));
    assert_eq!(asked["status"], "queued");

    let mut bob = hub.join(transport, "bob");
    let pulled = inbox(&mut bob, json!({}));
    let stored = &pulled["messages"][0];
    assert_eq!(stored["kind"], "ask");
    assert_eq!(stored["ask_id"], asked["ask_id"]);
    assert_eq!(stored["text"], "still there?");
    bob.call(
        "reply",
        json!({ "ask_id": stored["ask_id"], "text": "back now" }),
    );
    let answer = sessions[0].push();
    assert_eq!(
        (answer["kind"].as_str(), answer["text"].as_str()),
        (Some("reply"), Some("back now"))
    );
}

fn reply_to_a_received_message_id_goes_to_its_author(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    let sent = send(&mut sessions[0], "bob", "deploy it?");
    let received = sessions[1].push();
    let replied = sessions[1].call(
        "reply",
        json!({ "ask_id": received["msg_id"], "text": "done", "urgent": true }),
    );
    assert_eq!(
        replied["status"], "queued",
        "alice does not acknowledge pushes here"
    );
    let answer = sessions[0].push();
    assert_eq!(answer["kind"], "reply");
    assert_eq!(answer["from"], "bob");
    assert_eq!(answer["text"], "done");
    assert_eq!(answer["reply_to"], sent["msg_id"]);
    assert_eq!(answer["urgent"], true);
}

fn reply_to_an_unknown_or_foreign_id_is_ask_not_found(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob", "carol"]);
    sessions[0].fail(
        "reply",
        json!({ "ask_id": "a-404", "text": "?" }),
        "ask_not_found",
    );
    let asked = sessions[0].call("ask", json!({ "to": "bob", "question": "for bob only" }));
    sessions[2].fail(
        "reply",
        json!({ "ask_id": asked["ask_id"], "text": "me!" }),
        "ask_not_found",
    );
    sessions[2].fail(
        "reply",
        json!({ "ask_id": asked["msg_id"], "text": "me!" }),
        "ask_not_found",
    );
}

fn broadcast_asks_every_online_peer_and_their_replies_stream_back(transport: Transport) {
    let (hub, mut sessions) = hub_with(transport, &["alice", "bob", "carol"]);
    known_but_offline(&hub, transport, &mut sessions[0], "dave");
    let asked = sessions[0].call("broadcast", json!({ "question": "who owns the db?" }));
    assert_eq!(
        asked["peer_count"], 2,
        "bob and carol; not alice, not offline dave"
    );
    assert!(asked["broadcast_id"].is_string(), "{asked}");

    let mut ask_ids = Vec::new();
    for (index, name) in [(1, "bob"), (2, "carol")] {
        let push = sessions[index].push();
        assert_eq!(push["kind"], "broadcast");
        assert_eq!(push["from"], "alice");
        assert_eq!(push["text"], "who owns the db?");
        assert!(
            push["ask_id"].is_string(),
            "a broadcast carries an ask_id: {push}"
        );
        sessions[index].call(
            "reply",
            json!({ "ask_id": push["ask_id"], "text": format!("not {name}") }),
        );
        ask_ids.push(push["ask_id"].clone());
    }
    let mut answers: Vec<(String, Value)> = Vec::new();
    for _ in 0..2 {
        let answer = sessions[0].push();
        assert_eq!(answer["kind"], "reply", "{answer}");
        answers.push((
            answer["text"].as_str().expect("text").to_owned(),
            answer["reply_to"].clone(),
        ));
    }
    answers.sort_by_key(|(text, _)| text.clone());
    assert_eq!(
        answers,
        [
            ("not bob".to_owned(), ask_ids[0].clone()),
            ("not carol".to_owned(), ask_ids[1].clone())
        ]
    );
    sessions[0].assert_no_push();
}

fn broadcast_with_nobody_else_online_asks_no_one(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice"]);
    let asked = sessions[0].call("broadcast", json!({ "question": "anyone?" }));
    assert_eq!(asked["peer_count"], 0);
    sessions[0].assert_no_push();
    let asked = sessions[0].call(
        "broadcast",
        json!({ "question": "me?", "exclude_self": false }),
    );
    assert_eq!(asked["peer_count"], 1);
    let push = sessions[0].push();
    assert_eq!(
        (push["kind"].as_str(), push["from"].as_str()),
        (Some("broadcast"), Some("alice"))
    );
}

// ---------------------------------------------------------------------------------------------
// Rooms.

fn room_join_creates_the_room_and_joining_twice_succeeds(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    assert_eq!(
        sessions[0].call("room_join", json!({ "room": "lobby" })),
        json!({ "room": "lobby", "members": ["alice"] })
    );
    let joined = sessions[1].call("room_join", json!({ "room": "lobby" }));
    assert_eq!(sorted_names(&joined["members"]), ["alice", "bob"]);
    let again = sessions[0].call("room_join", json!({ "room": "lobby" }));
    assert_eq!(sorted_names(&again["members"]), ["alice", "bob"]);

    let rooms = sessions[1].call("rooms", json!({}));
    assert_eq!(rooms["rooms"].as_array().map(Vec::len), Some(1), "{rooms}");
    assert_eq!(rooms["rooms"][0]["name"], "lobby");
    assert_eq!(
        sorted_names(&rooms["rooms"][0]["members"]),
        ["alice", "bob"]
    );
}

fn room_post_pushes_to_the_other_members_only(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob", "carol"]);
    sessions[0].call("room_join", json!({ "room": "lobby" }));
    sessions[1].call("room_join", json!({ "room": "lobby" }));
    let posted = sessions[0].call(
        "room_post",
        json!({ "room": "lobby", "text": "standup in 5" }),
    );
    assert_eq!(posted, json!({ "room": "lobby", "delivered_count": 1 }));
    let push = sessions[1].push();
    assert_eq!(push["kind"], "room");
    assert_eq!(push["room"], "lobby");
    assert_eq!(push["from"], "alice");
    assert_eq!(push["text"], "standup in 5");
    sessions[0].assert_no_push();
    sessions[2].assert_no_push();
}

fn room_post_by_a_non_member_is_not_member(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    sessions[0].call("room_join", json!({ "room": "lobby" }));
    sessions[1].fail(
        "room_post",
        json!({ "room": "lobby", "text": "hi" }),
        "not_member",
    );
    sessions[1].fail(
        "room_post",
        json!({ "room": "nowhere", "text": "hi" }),
        "not_member",
    );
    sessions[0].assert_no_push();
}

fn room_leave_removes_the_member_and_leaving_again_is_not_member(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    sessions[0].call("room_join", json!({ "room": "lobby" }));
    sessions[1].call("room_join", json!({ "room": "lobby" }));
    assert_eq!(
        sessions[1].call("room_leave", json!({ "room": "lobby" })),
        json!({})
    );
    sessions[1].fail("room_leave", json!({ "room": "lobby" }), "not_member");
    assert_eq!(
        sessions[0].call("rooms", json!({})),
        json!({ "rooms": [{ "name": "lobby", "members": ["alice"] }] })
    );
    assert_eq!(
        sessions[0].call("room_post", json!({ "room": "lobby", "text": "alone" }))["delivered_count"],
        0
    );
    sessions[0].call("room_leave", json!({ "room": "lobby" }));
    assert_eq!(sessions[0].call("rooms", json!({})), json!({ "rooms": [] }));
}

fn a_session_that_disconnects_leaves_its_rooms(transport: Transport) {
    let (hub, mut sessions) = hub_with(transport, &["alice"]);
    sessions[0].call("room_join", json!({ "room": "lobby" }));
    let mut bob = hub.join(transport, "bob");
    bob.call("room_join", json!({ "room": "lobby" }));
    drop(bob);
    sessions[0].wait_until_offline("bob");
    assert_eq!(
        sessions[0].call("rooms", json!({})),
        json!({ "rooms": [{ "name": "lobby", "members": ["alice"] }] })
    );
}

fn rooms_are_empty_after_a_hub_restart_but_groups_remain(transport: Transport) {
    let mut hub = Hub::start();
    let mut alice = hub.join(transport, "alice");
    alice.call("room_join", json!({ "room": "lobby" }));
    alice.call("group_create", json!({ "name": "core" }));
    drop(alice);
    hub.restart();
    let mut alice = hub.join(transport, "alice");
    assert_eq!(alice.call("rooms", json!({})), json!({ "rooms": [] }));
    assert_eq!(
        alice.call("group_list", json!({})),
        json!({ "groups": [{ "name": "core", "unread_count": 0 }] })
    );
}

// The hub holds at most 1024 rooms (replay's ROOMS_MAX). One session joins that many, each a
// new room, then one more; `--durability os` keeps the 1025 commits quick.
fn joining_more_rooms_than_the_hub_holds_is_limit_reached(transport: Transport) {
    const ROOMS_MAX: usize = 1024;
    let hub = Hub::start_with(&["--durability", "os"]);
    let mut alice = hub.join(transport, "alice");
    for room in 0..ROOMS_MAX {
        alice.call("room_join", json!({ "room": format!("room-{room}") }));
    }
    alice.fail(
        "room_join",
        json!({ "room": "one-too-many" }),
        "limit_reached",
    );
    // `rooms` pages (at most 1000 a page): the first page and the rest hold them all.
    let first = alice.call("rooms", json!({ "limit": 1000 }));
    assert_eq!(first["rooms"].as_array().map(Vec::len), Some(1000));
    let rest = alice.call("rooms", json!({ "cursor": first["next_cursor"] }));
    assert_eq!(
        rest["rooms"].as_array().map(Vec::len),
        Some(ROOMS_MAX - 1000)
    );
    assert!(rest.get("next_cursor").is_none(), "{rest}");
}

// ---------------------------------------------------------------------------------------------
// Groups.

fn group_create_makes_the_caller_admin_and_tells_the_invitees(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob", "carol"]);
    let created = sessions[0].call(
        "group_create",
        json!({ "name": "core", "members": ["bob", "carol"] }),
    );
    assert_eq!(created["group"], "core");
    assert_eq!(sorted_names(&created["members"]), ["alice", "bob", "carol"]);
    for index in [1, 2] {
        assert_system_notice(&sessions[index].push(), "core", "core");
    }
    sessions[0].assert_no_push();
    assert_eq!(
        sessions[1].call("group_info", json!({ "group": "core" }))["admin"],
        "alice"
    );
}

fn group_create_of_an_existing_name_is_group_exists(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    sessions[0].call("group_create", json!({ "name": "core" }));
    sessions[1].fail("group_create", json!({ "name": "core" }), "group_exists");
    sessions[0].fail(
        "group_create",
        json!({ "name": "core", "members": ["bob"] }),
        "group_exists",
    );
    assert_eq!(
        sessions[1].call("group_list", json!({})),
        json!({ "groups": [] })
    );
}

fn group_create_with_an_unknown_member_is_peer_not_found_and_creates_nothing(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    sessions[0].fail(
        "group_create",
        json!({ "name": "core", "members": ["bob", "ghost"] }),
        "peer_not_found",
    );
    assert_eq!(
        sessions[0].call("group_list", json!({})),
        json!({ "groups": [] })
    );
    sessions[1].assert_no_push();
    sessions[1].call("group_create", json!({ "name": "core" }));
}

fn group_invite_is_admin_only_and_tells_the_invitee(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob", "carol"]);
    sessions[0].call("group_create", json!({ "name": "core" }));
    assert_eq!(
        sessions[0].call("group_invite", json!({ "group": "core", "peer": "bob" })),
        json!({})
    );
    assert_system_notice(&sessions[1].push(), "core", "alice");

    sessions[1].fail(
        "group_invite",
        json!({ "group": "core", "peer": "carol" }),
        "not_admin",
    );
    sessions[2].fail(
        "group_invite",
        json!({ "group": "core", "peer": "carol" }),
        "not_admin",
    );
    sessions[0].fail(
        "group_invite",
        json!({ "group": "core", "peer": "ghost" }),
        "peer_not_found",
    );
    sessions[0].fail(
        "group_invite",
        json!({ "group": "nope", "peer": "carol" }),
        "group_not_found",
    );
    sessions[2].assert_no_push();
    let info = sessions[0].call("group_info", json!({ "group": "core" }));
    assert_eq!(member_names(&info["members"]), ["alice", "bob"]);
}

fn group_remove_is_admin_only_and_tells_the_removed_member_why(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob", "carol", "dave"]);
    sessions[0].call(
        "group_create",
        json!({ "name": "core", "members": ["bob", "carol"] }),
    );
    sessions[1].push();
    sessions[2].push();

    sessions[1].fail(
        "group_remove",
        json!({ "group": "core", "peer": "carol" }),
        "not_admin",
    );
    let removed = sessions[0].call(
        "group_remove",
        json!({ "group": "core", "peer": "bob", "reason": "went quiet" }),
    );
    assert_eq!(removed, json!({}));
    assert_system_notice(&sessions[1].push(), "core", "went quiet");

    let seen = history(&mut sessions[2], "core", 50);
    let notice = seen["messages"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|message| message["type"] == "system")
        .unwrap_or_else(|| panic!("the group gets a system message: {seen}"));
    let text = notice["text"].as_str().expect("text");
    assert!(
        text.contains("bob") && text.contains("went quiet"),
        "{notice}"
    );

    sessions[1].fail(
        "group_send",
        json!({ "group": "core", "text": "hello?" }),
        "not_member",
    );
    sessions[0].fail(
        "group_remove",
        json!({ "group": "core", "peer": "bob" }),
        "not_member",
    );
    sessions[0].fail(
        "group_remove",
        json!({ "group": "core", "peer": "dave" }),
        "not_member",
    );
}

fn group_leave_hands_admin_to_the_longest_standing_member(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob", "carol"]);
    sessions[0].call(
        "group_create",
        json!({ "name": "core", "members": ["bob"] }),
    );
    sessions[0].call(
        "group_send",
        json!({ "group": "core", "text": "before carol" }),
    );
    sessions[0].call("group_invite", json!({ "group": "core", "peer": "carol" }));

    assert_eq!(
        sessions[0].call("group_leave", json!({ "group": "core" })),
        json!({})
    );
    let info = sessions[2].call("group_info", json!({ "group": "core" }));
    assert_eq!(info["admin"], "bob");
    assert_eq!(member_names(&info["members"]), ["bob", "carol"]);
    let seen = history(&mut sessions[2], "core", 50);
    assert!(
        texts(&seen["messages"])
            .iter()
            .any(|text| text.contains("alice")),
        "the leave is a system message: {seen}"
    );
    sessions[0].fail("group_leave", json!({ "group": "core" }), "not_member");
    sessions[0].fail("group_info", json!({ "group": "core" }), "not_member");
}

fn the_last_member_leaving_deletes_the_group(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    sessions[0].call("group_create", json!({ "name": "solo" }));
    sessions[0].call("group_leave", json!({ "group": "solo" }));
    sessions[1].fail("group_info", json!({ "group": "solo" }), "group_not_found");
    sessions[1].call("group_create", json!({ "name": "solo" }));
}

fn group_delete_is_admin_only_and_tells_the_members(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    sessions[0].call(
        "group_create",
        json!({ "name": "core", "members": ["bob"] }),
    );
    sessions[1].push();
    sessions[1].fail("group_delete", json!({ "group": "core" }), "not_admin");
    assert_eq!(
        sessions[0].call("group_delete", json!({ "group": "core" })),
        json!({})
    );
    assert_system_notice(&sessions[1].push(), "core", "deleted");
    sessions[1].fail("group_info", json!({ "group": "core" }), "group_not_found");
    assert_eq!(
        sessions[1].call("group_list", json!({})),
        json!({ "groups": [] })
    );
    sessions[0].fail(
        "group_delete",
        json!({ "group": "core" }),
        "group_not_found",
    );
}

fn group_info_lists_the_admin_the_members_with_presence_and_unread(transport: Transport) {
    let (hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    let mut carol = hub.join(transport, "carol");
    sessions[0].call(
        "group_create",
        json!({ "name": "core", "members": ["bob", "carol"] }),
    );
    carol.push();
    drop(carol);
    sessions[0].wait_until_offline("carol");
    sessions[0].call("group_send", json!({ "group": "core", "text": "one" }));

    let info = sessions[1].call("group_info", json!({ "group": "core" }));
    assert_eq!(info["group"], "core");
    assert_eq!(info["admin"], "alice");
    assert_eq!(info["unread_count"], 1);
    let mut members: Vec<(String, bool)> = info["members"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|member| {
            let name = member["name"].as_str().expect("name").to_owned();
            (name, member["online"].as_bool().expect("online is a bool"))
        })
        .collect();
    members.sort();
    assert_eq!(
        members,
        [
            ("alice".to_owned(), true),
            ("bob".to_owned(), true),
            ("carol".to_owned(), false)
        ]
    );
    assert_eq!(
        sessions[0].call("group_info", json!({ "group": "core" }))["unread_count"],
        0
    );
}

fn group_send_pushes_to_the_other_members(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob", "carol", "dave"]);
    sessions[0].call(
        "group_create",
        json!({ "name": "core", "members": ["bob", "carol"] }),
    );
    sessions[1].push();
    sessions[2].push();

    let sent = sessions[0].call("group_send", json!({ "group": "core", "text": "ship it" }));
    for index in [1, 2] {
        let push = sessions[index].push();
        assert_eq!(push["kind"], "group");
        assert_eq!(push["group"], "core");
        assert_eq!(push["from"], "alice");
        assert_eq!(push["text"], "ship it");
        assert_eq!(push["msg_id"], sent["msg_id"]);
    }
    sessions[0].assert_no_push();
    sessions[3].fail(
        "group_send",
        json!({ "group": "core", "text": "let me in" }),
        "not_member",
    );
    sessions[3].assert_no_push();
}

fn group_history_advances_the_cursor_so_unread_remaining_drops(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    sessions[0].call(
        "group_create",
        json!({ "name": "core", "members": ["bob"] }),
    );
    let mut ids = Vec::new();
    for text in ["one", "two", "three"] {
        ids.push(
            sessions[0].call("group_send", json!({ "group": "core", "text": text }))["msg_id"]
                .clone(),
        );
    }
    let bob = &mut sessions[1];

    let page = history(bob, "core", 2);
    assert_eq!(page["group"], "core");
    assert_eq!(texts(&page["messages"]), ["one", "two"]);
    assert_eq!(page["unread_remaining"], 1);
    let first = &page["messages"][0];
    assert_eq!(
        (&first["id"], &first["from"], &first["type"]),
        (&ids[0], &json!("alice"), &json!("user"))
    );
    assert!(
        first["ts"].as_u64().is_some_and(|ts| ts <= now_us()),
        "{first}"
    );
    assert_eq!(
        bob.call("group_list", json!({}))["groups"][0]["unread_count"],
        1
    );

    let page = history(bob, "core", 2);
    assert_eq!(texts(&page["messages"]), ["three"]);
    assert_eq!(page["unread_remaining"], 0);
    assert_eq!(
        bob.call("group_list", json!({}))["groups"][0]["unread_count"],
        0
    );
}

fn group_history_with_nothing_unread_shows_recent_messages_again(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    sessions[0].call(
        "group_create",
        json!({ "name": "core", "members": ["bob"] }),
    );
    for text in ["one", "two", "three"] {
        sessions[0].call("group_send", json!({ "group": "core", "text": text }));
    }
    history(&mut sessions[1], "core", 50);
    let again = history(&mut sessions[1], "core", 2);
    assert_eq!(texts(&again["messages"]), ["two", "three"]);
    assert_eq!(again["unread_remaining"], 0);
}

fn an_offline_member_catches_up_through_group_history(transport: Transport) {
    let (hub, mut sessions) = hub_with(transport, &["alice"]);
    let mut bob = hub.join(transport, "bob");
    sessions[0].call(
        "group_create",
        json!({ "name": "core", "members": ["bob"] }),
    );
    drop(bob);
    sessions[0].wait_until_offline("bob");
    sessions[0].call(
        "group_send",
        json!({ "group": "core", "text": "while you were out" }),
    );

    bob = hub.join(transport, "bob");
    assert_eq!(
        bob.call("group_list", json!({})),
        json!({ "groups": [{ "name": "core", "unread_count": 1 }] })
    );
    let caught_up = history(&mut bob, "core", 50);
    assert_eq!(texts(&caught_up["messages"]), ["while you were out"]);
    assert_eq!(caught_up["unread_remaining"], 0);
}

fn a_member_added_later_does_not_see_earlier_messages(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "carol"]);
    sessions[0].call("group_create", json!({ "name": "core" }));
    sessions[0].call(
        "group_send",
        json!({ "group": "core", "text": "before carol" }),
    );
    sessions[0].call("group_invite", json!({ "group": "core", "peer": "carol" }));
    sessions[0].call(
        "group_send",
        json!({ "group": "core", "text": "after carol" }),
    );

    let seen = history(&mut sessions[1], "core", 50);
    let seen = texts(&seen["messages"]);
    assert!(seen.contains(&"after carol"), "{seen:?}");
    assert!(!seen.contains(&"before carol"), "{seen:?}");
    let again = history(&mut sessions[1], "core", 50);
    assert!(
        !texts(&again["messages"]).contains(&"before carol"),
        "{again}"
    );
}

fn group_list_shows_the_callers_groups_by_name_with_unread_counts(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    for group in ["beta", "alpha", "gamma"] {
        sessions[0].call("group_create", json!({ "name": group, "members": ["bob"] }));
    }
    sessions[1].call("group_leave", json!({ "group": "gamma" }));
    sessions[0].call("group_send", json!({ "group": "beta", "text": "b" }));
    sessions[0].call("group_send", json!({ "group": "alpha", "text": "a1" }));
    sessions[0].call("group_send", json!({ "group": "alpha", "text": "a2" }));

    assert_eq!(
        sessions[1].call("group_list", json!({})),
        json!({ "groups": [{ "name": "alpha", "unread_count": 2 }, { "name": "beta", "unread_count": 1 }] })
    );
    let own = sessions[0].call("group_list", json!({}));
    let names: Vec<&Value> = own["groups"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|g| &g["name"])
        .collect();
    assert_eq!(names, ["alpha", "beta", "gamma"], "by name");
    assert_eq!(
        own["groups"][0]["unread_count"], 0,
        "own messages are not unread"
    );
}

fn group_methods_on_a_missing_group_are_group_not_found(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    let alice = &mut sessions[0];
    let group = json!({ "group": "nope" });
    alice.fail("group_info", group.clone(), "group_not_found");
    alice.fail(
        "group_send",
        json!({ "group": "nope", "text": "hi" }),
        "group_not_found",
    );
    alice.fail("group_history", group.clone(), "group_not_found");
    alice.fail("group_leave", group.clone(), "group_not_found");
    alice.fail("group_delete", group, "group_not_found");
    alice.fail(
        "group_invite",
        json!({ "group": "nope", "peer": "bob" }),
        "group_not_found",
    );
    alice.fail(
        "group_remove",
        json!({ "group": "nope", "peer": "bob" }),
        "group_not_found",
    );
}

fn group_methods_by_a_non_member_are_not_member(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "carol"]);
    sessions[0].call("group_create", json!({ "name": "core" }));
    let carol = &mut sessions[1];
    carol.fail("group_info", json!({ "group": "core" }), "not_member");
    carol.fail(
        "group_send",
        json!({ "group": "core", "text": "hi" }),
        "not_member",
    );
    carol.fail("group_history", json!({ "group": "core" }), "not_member");
    carol.fail("group_leave", json!({ "group": "core" }), "not_member");
}

// ---------------------------------------------------------------------------------------------
// Presence: fixed names, probes, pings.

// A fixed name's holder that never reads again (a hung client) is probed with a ping when a
// new session registers the same name; it does not answer within the ping timeout (2 s here),
// so the newcomer takes the name and the old connection is closed.
fn a_silent_holder_of_a_fixed_name_is_replaced_by_a_new_session(transport: Transport) {
    let hub = Hub::start_with(&["--ping-timeout", "2"]);
    let mut zombie = hub.join(transport, "worker");
    let mut alice = hub.join(transport, "alice");

    let mut newcomer = hub.greeted(transport);
    assert_eq!(
        newcomer.call("register", register_params("worker")),
        json!({ "name": "worker" })
    );

    zombie.expect_closed();
    assert_eq!(alice.peer("worker")["online"], true);
    send(&mut alice, "worker", "are you the new one?");
    assert_eq!(newcomer.push()["text"], "are you the new one?");
}

// The holder here reads and answers the hub's probe (a `ping` request) while the newcomer's
// register waits, so the holder keeps the name.
fn a_live_holder_keeps_its_name_and_the_newcomer_gets_name_taken(transport: Transport) {
    let hub = Hub::start_with(&["--ping-timeout", "5"]);
    let mut holder = hub.join(transport, "worker");
    let mut newcomer = hub.greeted(transport);
    let id = newcomer.send_request("register", register_params("worker"));
    holder.answer_a_ping();
    expect_error(&newcomer.response(&id), &id, "name_taken");

    assert_eq!(holder.call("peers", json!({}))["me"], "worker");
    assert_eq!(
        newcomer.call("register", register_params("worker-2"))["name"],
        "worker-2"
    );
}

// With a 1 s ping interval and timeout, a session that stops reading is pinged after 1 s of
// quiet and evicted 1 s later; the observer polls `peers` until it shows the session offline.
fn a_session_that_does_not_answer_pings_is_evicted(transport: Transport) {
    let hub = Hub::start_with(&["--ping-interval", "1", "--ping-timeout", "1"]);
    let mut sleepy = hub.join(transport, "sleepy");
    let mut observer = hub.join(transport, "observer");
    observer.wait_until_offline("sleepy");
    sleepy.expect_closed();
    assert_eq!(send(&mut observer, "sleepy", "gone?")["status"], "queued");
}

// The same short ping settings; this session answers two pings in a row, so it is still online
// after more than one ping interval plus timeout of quiet.
fn a_session_that_answers_pings_stays_online(transport: Transport) {
    let hub = Hub::start_with(&["--ping-interval", "1", "--ping-timeout", "1"]);
    let mut steady = hub.join(transport, "steady");
    let started = Instant::now();
    steady.answer_a_ping();
    steady.answer_a_ping();
    assert!(
        started.elapsed().as_secs_f64() > 1.0,
        "pings come after the interval"
    );
    let mut observer = hub.join(transport, "observer");
    assert_eq!(observer.peer("steady")["online"], true);
    let (sent, push) = acknowledged(
        &mut observer,
        &mut steady,
        "send",
        json!({ "to": "steady", "text": "still there" }),
        "read",
    );
    assert_eq!(sent["status"], "delivered");
    assert_eq!(push["text"], "still there");
}

// ---------------------------------------------------------------------------------------------
// Rate and size limits.

fn sends_past_the_burst_are_rate_limited(transport: Transport) {
    let hub = Hub::start_with(&["--send-rate", "1", "--send-burst", "3"]);
    let mut alice = hub.join(transport, "alice");
    let mut bob = hub.join(transport, "bob");
    for text in ["one", "two", "three"] {
        // Acknowledged at once, so no send waits out the acknowledgement (refilling the bucket).
        let params = json!({ "to": "bob", "text": text });
        acknowledged(&mut alice, &mut bob, "send", params, "delivered");
    }
    alice.fail(
        "send",
        json!({ "to": "bob", "text": "four" }),
        "rate_limited",
    );
    alice.call("peers", json!({}));
    let got = inbox(&mut bob, json!({ "include_pushed": true }));
    assert_eq!(
        texts(&got["messages"]),
        ["one", "two", "three"],
        "the limited send stored nothing"
    );
}

fn text_of_64_kib_is_accepted_and_one_byte_more_is_bad_args(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    let longest = "a".repeat(TEXT_BYTES_MAX);
    send(&mut sessions[0], "bob", &longest);
    assert_eq!(
        sessions[1].push()["text"].as_str().map(str::len),
        Some(TEXT_BYTES_MAX)
    );
    let too_long = "a".repeat(TEXT_BYTES_MAX + 1);
    sessions[0].fail("send", json!({ "to": "bob", "text": too_long }), "bad_args");
    sessions[0].fail(
        "ask",
        json!({ "to": "bob", "question": too_long }),
        "bad_args",
    );
}

fn limits_count_bytes_not_characters(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    // "é" is two bytes: 32 768 of them fill the limit, one more is 32 769 characters but
    // 65 538 bytes.
    send(&mut sessions[0], "bob", &"é".repeat(TEXT_BYTES_MAX / 2));
    let over = "é".repeat(TEXT_BYTES_MAX / 2 + 1);
    sessions[0].fail("send", json!({ "to": "bob", "text": over }), "bad_args");
}

fn a_name_of_64_bytes_is_accepted_and_65_is_bad_args(transport: Transport) {
    let hub = Hub::start();
    let longest = "n".repeat(NAME_BYTES_MAX);
    let mut session = hub.join(transport, &longest);
    let too_long = "n".repeat(NAME_BYTES_MAX + 1);
    let mut other = hub.greeted(transport);
    other.fail("register", register_params(&too_long), "bad_args");
    session.fail("room_join", json!({ "room": too_long }), "bad_args");
    session.fail("group_create", json!({ "name": too_long }), "bad_args");
    session.call("room_join", json!({ "room": longest }));
}

// One past each documented limit of the params is `bad_args`; at the limit is accepted.
fn each_param_limit_is_bad_args_one_past_it(transport: Transport) {
    let hub = Hub::start();
    let mut fresh = hub.connect(transport);
    fresh.fail(
        "hello",
        json!({ "versions": { "min": 2, "max": 1 }, "client": "x/1" }),
        "bad_args",
    );
    fresh.fail(
        "hello",
        json!({ "versions": { "min": 0, "max": 1 }, "client": "x/1" }),
        "bad_args",
    );
    fresh.fail(
        "hello",
        json!({ "versions": { "min": 1, "max": 1 }, "client": "c".repeat(129) }),
        "bad_args",
    );
    fresh.call(
        "hello",
        json!({ "versions": { "min": 1, "max": 1 }, "client": "c".repeat(128) }),
    );
    for (member, limit) in [("cwd", 4096), ("git_branch", 256), ("session_name", 256)] {
        let mut params = json!({ "cwd": "/src", "client": "cli" });
        params[member] = json!("d".repeat(limit + 1));
        fresh.fail("register", params, "bad_args");
    }
    let at_limits = json!({
        "cwd": "d".repeat(4096), "git_branch": "b".repeat(256), "session_name": "s".repeat(256), "client": "cli"
    });
    fresh.call("register", at_limits);

    let mut alice = hub.join(transport, "alice");
    let id = |bytes: usize| "i".repeat(bytes);
    alice.fail(
        "send",
        json!({ "to": "alice", "text": "x", "reply_to": id(129) }),
        "bad_args",
    );
    alice.call(
        "send",
        json!({ "to": "alice", "text": "x", "reply_to": id(128) }),
    );
    alice.fail(
        "ask",
        json!({ "to": "alice", "question": "x", "thread_id": id(129) }),
        "bad_args",
    );
    alice.fail(
        "reply",
        json!({ "ask_id": id(129), "text": "x" }),
        "bad_args",
    );
    alice.fail("inbox", json!({ "since_id": id(129) }), "bad_args");
    alice.fail(
        "group_create",
        json!({ "name": "g", "members": (0..65).map(|n| format!("p{n}")).collect::<Vec<_>>() }),
        "bad_args",
    );
    alice.fail(
        "group_remove",
        json!({ "group": "g", "peer": "alice", "reason": "r".repeat(TEXT_BYTES_MAX + 1) }),
        "bad_args",
    );
    alice.call("group_create", json!({ "name": "g" }));
    alice.fail(
        "group_history",
        json!({ "group": "g", "limit": 0 }),
        "bad_args",
    );
    alice.fail(
        "group_history",
        json!({ "group": "g", "limit": 501 }),
        "bad_args",
    );
    alice.call("group_history", json!({ "group": "g", "limit": 500 }));
}

fn an_error_message_over_1024_bytes_is_cut_and_ends_in_an_ellipsis(transport: Transport) {
    let hub = Hub::start();
    let mut session = hub.greeted(transport);
    let error = session.fail(&"teleport".repeat(200), json!({}), "unknown_method");
    let message = error["message"].as_str().expect("a message");
    assert!(message.len() <= 1024, "{} bytes", message.len());
    assert!(message.ends_with('…'), "{message}");
}

/// A `ping` request with id 7, padded with spaces inside the object to `bytes` bytes.
fn padded_ping(bytes: usize) -> String {
    let head = r#"{"jsonrpc":"2.0","id":7,"method":"ping","params":{}"#;
    format!("{head}{}}}", " ".repeat(bytes - head.len() - 1))
}

fn a_frame_of_exactly_1_mib_is_read(transport: Transport) {
    let hub = Hub::start();
    let mut session = hub.connect(transport);
    let frame = padded_ping(FRAME_BYTES_MAX);
    assert_eq!(frame.len(), FRAME_BYTES_MAX);
    session.send_text(&frame);
    assert_eq!(
        session.response(&json!(7)),
        json!({ "jsonrpc": "2.0", "id": 7, "result": {} })
    );
}

fn a_frame_over_1_mib_is_frame_too_large_and_the_connection_goes_on(transport: Transport) {
    let hub = Hub::start();
    let mut session = hub.connect(transport);
    session.send_text(&padded_ping(FRAME_BYTES_MAX + 1));
    let response = session.next_response();
    expect_error(&response, &Value::Null, "frame_too_large");
    session.call("hello", hello_params(1, 1));
    session.call("register", register_params("alice"));
}

// ---------------------------------------------------------------------------------------------
// Malformed input.

fn malformed_json_is_bad_msg_with_a_null_id(transport: Transport) {
    let hub = Hub::start();
    let mut session = hub.connect(transport);
    session.send_text(r#"{"jsonrpc":"2.0","id":3,"method":"ping""#);
    expect_error(&session.next_response(), &Value::Null, "bad_msg");
    session.send_text("not json at all");
    expect_error(&session.next_response(), &Value::Null, "bad_msg");
    session.call("ping", json!({}));
}

fn a_frame_that_is_not_a_json_rpc_request_is_bad_msg(transport: Transport) {
    let hub = Hub::start();
    let mut session = hub.connect(transport);
    session.send_text("[1,2,3]");
    expect_error(&session.next_response(), &Value::Null, "bad_msg");
    session.send_text(r#"{"jsonrpc":"1.0","id":4,"method":"ping"}"#);
    expect_error(&session.next_response(), &json!(4), "bad_msg");
    session.send_text(r#"{"id":5,"method":"ping"}"#);
    expect_error(&session.next_response(), &json!(5), "bad_msg");
    session.send_text(r#"{"jsonrpc":"2.0","id":6,"method":"ping","params":{},"extra":true}"#);
    expect_error(&session.next_response(), &json!(6), "bad_msg");
}

fn an_unreadable_id_is_bad_msg_with_a_null_id(transport: Transport) {
    let hub = Hub::start();
    let mut session = hub.connect(transport);
    for id in [json!(null), json!(1.5), json!("x".repeat(129)), json!([1])] {
        let request = json!({ "jsonrpc": "2.0", "id": id, "method": "ping" });
        session.send_text(&request.to_string());
        expect_error(&session.next_response(), &Value::Null, "bad_msg");
    }
    let longest = json!("x".repeat(128));
    let request = json!({ "jsonrpc": "2.0", "id": longest, "method": "ping" });
    session.send_text(&request.to_string());
    assert_eq!(session.response(&longest)["result"], json!({}));
}

fn params_of_the_wrong_type_are_bad_args_with_the_request_id(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    let alice = &mut sessions[0];
    alice.fail("send", json!({ "to": 5, "text": "hi" }), "bad_args");
    alice.fail("send", json!({ "to": "bob" }), "bad_args");
    alice.fail(
        "send",
        json!({ "to": "bob", "text": "hi", "urgent": "yes" }),
        "bad_args",
    );
    alice.fail("send", json!({ "to": "bob", "text": "" }), "bad_args");
    alice.fail(
        "send",
        json!({ "to": "no spaces", "text": "hi" }),
        "bad_args",
    );
    alice.fail("send", json!(["bob", "hi"]), "bad_args");
    alice.fail("inbox", json!({ "limit": "ten" }), "bad_args");
    alice.fail(
        "group_create",
        json!({ "name": "core", "members": ["bob", "bob"] }),
        "bad_args",
    );
}

fn unknown_params_are_bad_args(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    sessions[0].fail(
        "send",
        json!({ "to": "bob", "text": "hi", "colour": "red" }),
        "bad_args",
    );
    sessions[0].fail("peers", json!({ "verbose": true }), "bad_args");
    sessions[1].assert_no_push();
}

fn params_may_be_omitted_or_null(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    let alice = &mut sessions[0];
    alice.send_text(r#"{"jsonrpc":"2.0","id":"a","method":"peers"}"#);
    assert_eq!(alice.response(&json!("a"))["result"]["me"], "alice");
    alice.send_text(r#"{"jsonrpc":"2.0","id":"b","method":"rooms","params":null}"#);
    assert_eq!(
        alice.response(&json!("b"))["result"],
        json!({ "rooms": [] })
    );
    let sent = alice.call(
        "send",
        json!({ "to": "bob", "text": "hi", "reply_to": null, "idempotency_key": null }),
    );
    assert_eq!(
        sent["status"], "queued",
        "bob does not acknowledge pushes here"
    );
    assert_eq!(sessions[1].push()["reply_to"], Value::Null);
}

fn an_unknown_method_is_unknown_method_with_the_request_id(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice"]);
    let error = sessions[0].fail("teleport", json!({}), "unknown_method");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|message| message.contains("teleport")),
        "{error}"
    );
}

fn string_ids_are_echoed_in_the_response(transport: Transport) {
    let hub = Hub::start();
    let mut session = hub.connect(transport);
    session.send_text(r#"{"jsonrpc":"2.0","id":"r1","method":"ping","params":{}}"#);
    assert_eq!(
        session.next_response(),
        json!({ "jsonrpc": "2.0", "id": "r1", "result": {} })
    );
    session.send_text(r#"{"jsonrpc":"2.0","id":-9223372036854775808,"method":"ping"}"#);
    assert_eq!(session.next_response()["id"], json!(i64::MIN));
}

fn notifications_from_the_client_are_ignored(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    sessions[0].send_text(r#"{"jsonrpc":"2.0","method":"send","params":{"to":"bob","text":"x"}}"#);
    sessions[0].send_text(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#);
    assert_eq!(
        sessions[0].next_response()["id"],
        2,
        "no answer to the notification"
    );
    sessions[1].assert_no_push();
}

fn a_message_sent_in_two_parts_is_read_whole(transport: Transport) {
    let hub = Hub::start();
    let mut session = hub.connect(transport);
    session.send_text_in_two_parts(r#"{"jsonrpc":"2.0","id":3,"method":"ping","params":{}}"#);
    assert_eq!(
        session.next_response(),
        json!({ "jsonrpc": "2.0", "id": 3, "result": {} })
    );
}

fn bad_input_leaves_the_hub_and_other_sessions_working(transport: Transport) {
    let (hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    let alice = &mut sessions[0];
    alice.send_text("{{{{");
    alice.send_text(&"x".repeat(FRAME_BYTES_MAX + 10));
    alice.send_text(r#"{"jsonrpc":"2.0","id":1,"method":"send","params":{"to":[]}}"#);
    alice.fail("no_such_method", json!({}), "unknown_method");
    // Every rejected frame was answered.
    for _ in 0..3 {
        assert!(alice.next_response().get("error").is_some());
    }
    send(&mut sessions[1], "alice", "still here?");
    assert_eq!(sessions[0].push()["text"], "still here?");
    let mut carol = hub.join(transport, "carol");
    let (sent, _) = acknowledged(
        &mut carol,
        &mut sessions[1],
        "send",
        json!({ "to": "bob", "text": "me too" }),
        "read",
    );
    assert_eq!(sent["status"], "delivered");
}

// `relay log info` reads the log next to the running hub: after a batch of requests that are
// all refused, the next offset has not moved.
fn rejected_requests_append_nothing_to_the_log(transport: Transport) {
    let (hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    sessions[0].call("group_create", json!({ "name": "core" }));
    sessions[0].call("room_join", json!({ "room": "lobby" }));
    let before = hub.log_next_offset();

    let bob = &mut sessions[1];
    bob.fail(
        "send",
        json!({ "to": "ghost", "text": "hi" }),
        "peer_not_found",
    );
    bob.fail(
        "ask",
        json!({ "to": "ghost", "question": "hi?" }),
        "peer_not_found",
    );
    bob.fail(
        "reply",
        json!({ "ask_id": "a-1", "text": "hi" }),
        "ask_not_found",
    );
    bob.fail("rename", json!({ "new_name": "alice" }), "name_taken");
    bob.fail("register", register_params("bob"), "already_registered");
    bob.fail("group_create", json!({ "name": "core" }), "group_exists");
    bob.fail(
        "group_create",
        json!({ "name": "new", "members": ["ghost"] }),
        "peer_not_found",
    );
    bob.fail(
        "group_invite",
        json!({ "group": "core", "peer": "bob" }),
        "not_admin",
    );
    bob.fail("group_delete", json!({ "group": "core" }), "not_admin");
    bob.fail(
        "group_send",
        json!({ "group": "core", "text": "hi" }),
        "not_member",
    );
    bob.fail("group_leave", json!({ "group": "core" }), "not_member");
    bob.fail("group_info", json!({ "group": "nope" }), "group_not_found");
    bob.fail(
        "room_post",
        json!({ "room": "lobby", "text": "hi" }),
        "not_member",
    );
    bob.fail("room_leave", json!({ "room": "lobby" }), "not_member");
    bob.fail("send", json!({ "to": "alice" }), "bad_args");
    bob.fail("inbox", json!({ "limit": 0 }), "bad_args");
    bob.fail("teleport", json!({}), "unknown_method");
    bob.send_text("{oops");
    expect_error(&bob.next_response(), &Value::Null, "bad_msg");

    assert_eq!(hub.log_next_offset(), before);
}

// ---------------------------------------------------------------------------------------------
// The Unix socket only: line framing.

#[test]
fn a_crlf_line_ending_is_accepted() {
    let hub = Hub::start();
    let mut session = hub.connect_unix();
    session.send_bytes(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r\n");
    assert_eq!(
        session.next_response(),
        json!({ "jsonrpc": "2.0", "id": 1, "result": {} })
    );
}

#[test]
fn blank_lines_are_ignored_as_keep_alives() {
    let hub = Hub::start();
    let mut session = hub.connect_unix();
    session.send_bytes(b"\n   \n\t\r\n");
    session.send_text(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#);
    assert_eq!(
        session.next_response()["id"],
        2,
        "blank lines get no response"
    );
}

#[test]
fn a_last_line_without_a_newline_is_read_when_the_client_stops_writing() {
    let hub = Hub::start();
    let mut session = hub.connect_unix();
    session.send_bytes(br#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#);
    session.shut_down_writing();
    assert_eq!(
        session.next_response(),
        json!({ "jsonrpc": "2.0", "id": 9, "result": {} })
    );
}

#[test]
fn a_line_of_several_mib_is_frame_too_large_and_the_next_line_is_read() {
    let hub = Hub::start();
    let mut session = hub.connect_unix();
    let mut bytes = padded_ping(4 * FRAME_BYTES_MAX).into_bytes();
    bytes.extend_from_slice(b"\n{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"ping\"}\n");
    session.send_bytes(&bytes);
    expect_error(&session.next_response(), &Value::Null, "frame_too_large");
    assert_eq!(
        session.next_response(),
        json!({ "jsonrpc": "2.0", "id": 8, "result": {} })
    );
}

#[test]
fn invalid_utf8_on_the_socket_is_bad_msg_and_reading_goes_on() {
    let hub = Hub::start();
    let mut session = hub.connect_unix();
    session.send_bytes(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xffng\"}\n");
    expect_error(&session.next_response(), &Value::Null, "bad_msg");
    session.call("ping", json!({}));
}

#[test]
fn auth_on_the_unix_socket_succeeds_without_checking() {
    let hub = Hub::start();
    let mut session = hub.connect_unix();
    assert_eq!(
        session.call("auth", json!({ "token": "anything" })),
        json!({})
    );
    session.call("hello", hello_params(1, 1));
}

// ---------------------------------------------------------------------------------------------
// The WebSocket only: `auth` and frame types.

#[test]
fn a_websocket_session_authenticates_with_the_token_first() {
    let hub = Hub::start();
    let mut session = hub.connect_websocket_unauthenticated();
    let token = hub.ws_token();
    assert_eq!(session.call("auth", json!({ "token": token })), json!({}));
    session.call("hello", hello_params(1, 1));
    session.call("register", register_params("alice"));
}

#[test]
fn a_wrong_token_is_unauthorized_and_the_hub_closes_the_connection() {
    let hub = Hub::start();
    let mut session = hub.connect_websocket_unauthenticated();
    session.fail("auth", json!({ "token": "not-the-token" }), "unauthorized");
    session.expect_closed();
}

#[test]
fn a_first_websocket_frame_other_than_auth_is_unauthorized_and_closes_the_connection() {
    let hub = Hub::start();
    let mut session = hub.connect_websocket_unauthenticated();
    session.fail("hello", hello_params(1, 1), "unauthorized");
    session.expect_closed();
}

#[test]
fn a_binary_websocket_frame_that_is_not_utf8_is_bad_msg_and_reading_goes_on() {
    let hub = Hub::start();
    let mut session = hub.connect(Transport::WebSocket);
    session.send_binary(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xffng\"}");
    expect_error(&session.next_response(), &Value::Null, "bad_msg");
    session.call("ping", json!({}));
}

// ---------------------------------------------------------------------------------------------
// The daemon.

#[test]
fn the_socket_and_the_token_file_are_private_to_the_user() {
    let hub = Hub::start();
    for file in ["hub.sock", "ws.token"] {
        let metadata = std::fs::metadata(hub.data_dir().join(file)).expect("the file exists");
        assert_eq!(
            metadata.permissions().mode() & 0o777,
            0o600,
            "mode of {file}"
        );
    }
}

#[test]
fn a_second_hub_on_the_same_data_dir_exits_non_zero_naming_the_holder() {
    let hub = Hub::start();
    let second = run_with_deadline(hub.command());
    assert!(
        !second.status.success(),
        "the second hub exits with an error"
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&hub.pid().to_string()),
        "the error names the running hub's pid {}: {stderr}",
        hub.pid()
    );
    // The first hub is unaffected.
    hub.join(Transport::Unix, "alice");
}

#[test]
fn sigterm_removes_the_socket_and_exits_zero() {
    let mut hub = Hub::start();
    let _session = hub.join(Transport::Unix, "alice");
    let status = hub.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(!hub.socket_path().exists(), "hub.sock is removed");
}

// ---------------------------------------------------------------------------------------------
// Regressions found by this suite (each failed before its fix in src/hub/).

fn peers_lists_online_peers_first_then_by_name(transport: Transport) {
    let hub = Hub::start();
    let mut observer = hub.join(transport, "observer");
    known_but_offline(&hub, transport, &mut observer, "adam");
    let _zoe = hub.join(transport, "zoe");
    let _bob = hub.join(transport, "bob");
    let peers = observer.call("peers", json!({}));
    let order: Vec<&Value> = peers["peers"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|peer| &peer["name"])
        .collect();
    assert_eq!(order, ["bob", "zoe", "adam"], "online first, then by name");
}

fn a_reply_to_a_message_id_is_kind_reply_in_the_inbox(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    send(&mut sessions[0], "bob", "deploy it?");
    let received = sessions[1].push();
    sessions[1].call(
        "reply",
        json!({ "ask_id": received["msg_id"], "text": "done" }),
    );
    assert_eq!(sessions[0].push()["kind"], "reply");
    let mailbox = inbox(&mut sessions[0], json!({ "include_pushed": true }));
    assert_eq!(mailbox["messages"][0]["kind"], "reply", "{mailbox}");
}

fn a_reply_to_the_broadcast_id_goes_back_to_the_asker(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    let asked = sessions[0].call("broadcast", json!({ "question": "who owns the db?" }));
    let push = sessions[1].push();
    assert_eq!(push["kind"], "broadcast");
    sessions[1].call(
        "reply",
        json!({ "ask_id": asked["broadcast_id"], "text": "me" }),
    );
    assert_eq!(sessions[0].push()["text"], "me");
}

fn group_invite_of_a_member_is_already_member(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    sessions[0].call(
        "group_create",
        json!({ "name": "core", "members": ["bob"] }),
    );
    sessions[0].fail(
        "group_invite",
        json!({ "group": "core", "peer": "bob" }),
        "already_member",
    );
}

fn group_remove_naming_the_admin_is_bad_args(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice"]);
    sessions[0].call("group_create", json!({ "name": "core" }));
    sessions[0].fail(
        "group_remove",
        json!({ "group": "core", "peer": "alice" }),
        "bad_args",
    );
}

// bob registers before alice, so ordering by identity would put bob first.
fn group_create_and_group_info_list_the_admin_first(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["bob", "alice"]);
    let created = sessions[1].call(
        "group_create",
        json!({ "name": "core", "members": ["bob"] }),
    );
    assert_eq!(created["members"], json!(["alice", "bob"]));
    let info = sessions[1].call("group_info", json!({ "group": "core" }));
    assert_eq!(info["members"][0]["name"], "alice", "{info}");
}

fn a_removal_is_a_system_message_from_relay_naming_the_reason(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob", "cy"]);
    sessions[0].call(
        "group_create",
        json!({ "name": "core", "members": ["bob", "cy"] }),
    );
    sessions[0].call(
        "group_remove",
        json!({ "group": "core", "peer": "bob", "reason": "rotation ended" }),
    );
    let seen = history(&mut sessions[2], "core", 50);
    let messages = seen["messages"].as_array().expect("a list");
    assert!(
        messages.iter().any(|message| message["type"] == "system"
            && message["from"] == "relay"
            && message["text"]
                .as_str()
                .is_some_and(|text| text.contains("rotation ended"))),
        "{seen}"
    );
}

fn group_send_carries_urgent_and_reply_to(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    sessions[0].call(
        "group_create",
        json!({ "name": "core", "members": ["bob"] }),
    );
    sessions[1].push();
    let first = sessions[0].call("group_send", json!({ "group": "core", "text": "q" }));
    sessions[1].push();
    let params =
        json!({ "group": "core", "text": "now", "reply_to": first["msg_id"], "urgent": true });
    sessions[0].call("group_send", params);
    let push = sessions[1].push();
    assert_eq!(
        (&push["urgent"], &push["reply_to"]),
        (&json!(true), &first["msg_id"]),
        "{push}"
    );
}

// A hung holder of a fixed name, with the default ping settings (30 s interval, 90 s timeout):
// the newcomer's register is answered after the 3 s probe timeout, well within 10 s.
fn a_silent_holder_is_replaced_within_seconds_with_default_ping_settings(transport: Transport) {
    let hub = Hub::start();
    let _zombie = hub.join(transport, "worker");
    let mut newcomer = hub.greeted(transport);
    assert_eq!(
        newcomer.call("register", register_params("worker"))["name"],
        "worker"
    );
}

fn inbox_remaining_counts_the_matching_messages_not_returned_with_include_pushed(
    transport: Transport,
) {
    let (_hub, mut sessions) = hub_with(transport, &["alice", "bob"]);
    for text in ["one", "two", "three"] {
        send(&mut sessions[0], "bob", text);
        sessions[1].push();
    }
    let page = inbox(
        &mut sessions[1],
        json!({ "include_pushed": true, "limit": 1 }),
    );
    assert_eq!(
        (texts(&page["messages"]), &page["remaining"]),
        (vec!["one"], &json!(2)),
        "{page}"
    );
}

fn inbox_since_id_does_not_mark_earlier_messages_read(transport: Transport) {
    let (hub, mut sessions) = hub_with(transport, &["alice"]);
    known_but_offline(&hub, transport, &mut sessions[0], "bob");
    let first = send(&mut sessions[0], "bob", "one");
    send(&mut sessions[0], "bob", "two");
    let mut bob = hub.join(transport, "bob");
    assert_eq!(
        texts(&inbox(&mut bob, json!({ "since_id": first["msg_id"] }))["messages"]),
        ["two"]
    );
    assert_eq!(
        texts(&inbox(&mut bob, json!({}))["messages"]),
        ["one"],
        "`one` was never returned"
    );
}

// alice wrote every message, so nothing is unread for her (group_list says 0): group_history
// shows the recent view instead of paging her own messages as unread.
fn own_messages_are_not_paged_as_unread_by_group_history(transport: Transport) {
    let (_hub, mut sessions) = hub_with(transport, &["alice"]);
    sessions[0].call("group_create", json!({ "name": "core" }));
    for text in ["one", "two", "three"] {
        sessions[0].call("group_send", json!({ "group": "core", "text": text }));
    }
    let page = history(&mut sessions[0], "core", 1);
    assert_eq!(texts(&page["messages"]), ["three"], "{page}");
}

#[test]
fn a_binary_websocket_frame_is_bad_msg() {
    let hub = Hub::start();
    let mut session = hub.connect(Transport::WebSocket);
    session.send_binary(br#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#);
    let response = session.next_response();
    assert_eq!(response["error"]["data"]["code"], "bad_msg", "{response}");
}

#[test]
fn a_websocket_frame_of_several_mib_is_frame_too_large_and_the_connection_goes_on() {
    let hub = Hub::start();
    let mut session = hub.connect(Transport::WebSocket);
    session.send_text(&padded_ping(3 * FRAME_BYTES_MAX));
    expect_error(&session.next_response(), &Value::Null, "frame_too_large");
    session.call("ping", json!({}));
}

/// The first two sessions, mutably at once.
fn pair(sessions: &mut [Session]) -> (&mut Session, &mut Session) {
    let (first, rest) = sessions.split_first_mut().expect("two sessions");
    (first, &mut rest[0])
}
