//! Black-box tests of the mailbox bounds (issue 10) against the real hub: a mailbox takes
//! `MAILBOX_UNREAD_MAX` (10,000) unread messages and refuses the next with `mailbox_full`,
//! loses none of them (also across a restart), tells the recipient what it refused, ages out
//! read mail, and a group member is told how many messages it missed.
//!
//! The hub runs with a send rate high enough for 10,000 sends and `--durability os`, so the
//! test spends its time on the hub's work rather than on `fdatasync`; sends are pipelined in
//! windows below the hub's requests-in-flight bound.

#[allow(dead_code, reason = "shared with hub_conformance, which uses the rest")]
mod support;

use serde_json::{Value, json};
use support::{Hub, Session, Transport};

/// `MAILBOX_UNREAD_MAX`: unread messages a mailbox holds.
const MAILBOX_UNREAD_MAX: usize = 10_000;
/// `MAILBOX_READ_MAX`: read messages a mailbox keeps.
const MAILBOX_READ_MAX: usize = 500;
/// `MAILBOX_REFUSALS_PER_SENDER_MAX`: refusals logged per sender between two reads.
const MAILBOX_REFUSALS_PER_SENDER_MAX: u64 = 16;
/// `GROUP_MESSAGES_MAX`: messages a group's history keeps.
const GROUP_MESSAGES_MAX: usize = 500;
/// Requests a test keeps in flight at once (the hub reads at most 64 per session).
const WINDOW: usize = 50;

fn fast_hub() -> Hub {
    Hub::start_with(&[
        "--send-rate",
        "1000000",
        "--send-burst",
        "1000000",
        "--durability",
        "os",
    ])
}

/// Sends `requests` pipelined, `WINDOW` at a time, and returns every response in order.
fn pipelined(
    session: &mut Session,
    requests: impl IntoIterator<Item = (&'static str, Value)>,
) -> Vec<Value> {
    let requests: Vec<(&str, Value)> = requests.into_iter().collect();
    let mut responses = Vec::with_capacity(requests.len());
    for window in requests.chunks(WINDOW) {
        let ids: Vec<Value> = window
            .iter()
            .map(|(method, params)| session.send_request(method, params.clone()))
            .collect();
        responses.extend(ids.iter().map(|id| session.response(id)));
    }
    responses
}

/// `count` sends from the session to `to`, texts `"<prefix><n>"` for n in `first..first+count`;
/// each must succeed with `queued` (the recipient is offline).
fn send_all(session: &mut Session, to: &str, prefix: &str, first: usize, count: usize) {
    let requests = (first..first + count)
        .map(|n| ("send", json!({ "to": to, "text": format!("{prefix}{n}") })));
    for response in pipelined(session, requests) {
        assert_eq!(response["result"]["status"], "queued", "{response}");
    }
}

/// Pages through `session`'s inbox, `limit` 100 at a time, until nothing is left; returns the
/// texts in order and the `refused` list of each page that had one.
fn read_everything(session: &mut Session) -> (Vec<String>, Vec<Value>) {
    let mut texts = Vec::new();
    let mut refused = Vec::new();
    // Bounded: each page reads 100 and the mailbox holds at most 10,000 + 500.
    for _ in 0..=(MAILBOX_UNREAD_MAX + MAILBOX_READ_MAX) / 100 {
        let page = session.call("inbox", json!({ "limit": 100 }));
        if let Some(list) = page.get("refused") {
            refused.push(list.clone());
        }
        let messages = page["messages"].as_array().expect("messages is a list");
        texts.extend(
            messages
                .iter()
                .map(|message| message["text"].as_str().expect("text").to_owned()),
        );
        if page["remaining"] == 0 {
            return (texts, refused);
        }
    }
    panic!("the inbox did not empty");
}

/// The first `system` push (a hub notice) the session got.
fn notice(session: &mut Session) -> String {
    // Bounded: `push` fails the test when nothing arrives within the deadline.
    loop {
        let push = session.push();
        if push["kind"] == "system" {
            return push["text"].as_str().expect("text").to_owned();
        }
    }
}

// A mailbox at its bound: the next send is refused with `mailbox_full` naming the recipient
// and the bound, refusals past the per-sender allowance are answered without growing the log,
// a restart loses none of the 10,000 unread messages, and the recipient is told who was
// refused (on connect, in `unread`, in its next inbox, which clears it). Reading makes room,
// and only the last 500 read messages stay for `include_pushed`.
#[test]
fn a_full_mailbox_refuses_the_next_message_loses_nothing_and_tells_the_recipient() {
    let mut hub = fast_hub();
    let mut alice = hub.join(Transport::Unix, "alice");
    drop(hub.join(Transport::Unix, "bob"));
    alice.wait_until_offline("bob");

    send_all(&mut alice, "bob", "m", 1, MAILBOX_UNREAD_MAX);
    let error = alice.fail(
        "send",
        json!({ "to": "bob", "text": "one more" }),
        "mailbox_full",
    );
    let data = &error["data"];
    assert_eq!(data["recipient"], "bob", "{error}");
    assert_eq!(data["unread_count"], MAILBOX_UNREAD_MAX, "{error}");
    assert_eq!(data["unread_max"], MAILBOX_UNREAD_MAX, "{error}");
    let message = error["message"].as_str().expect("message");
    assert!(
        message.contains("bob") && message.contains("10000"),
        "{message}"
    );
    alice.fail(
        "ask",
        json!({ "to": "bob", "question": "still there?" }),
        "mailbox_full",
    );
    // `relay send` says so on stderr and exits 1 (its refusal counts for "cli").
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_relay"));
    command
        .args(["send", "bob", "from a shell", "--as", "cli", "--data-dir"])
        .arg(hub.data_dir());
    let output = support::run_with_deadline(command);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("relay: mailbox_full: bob's mailbox is full"),
        "{stderr}"
    );

    // Twice the allowance of refusals: each is answered, only the allowance is logged.
    let offset_before = hub.log_next_offset();
    let refusals = (0..2 * MAILBOX_REFUSALS_PER_SENDER_MAX).map(|n| {
        (
            "send",
            json!({ "to": "bob", "text": format!("refused {n}") }),
        )
    });
    for response in pipelined(&mut alice, refusals) {
        assert_eq!(
            response["error"]["data"]["code"], "mailbox_full",
            "{response}"
        );
    }
    let logged = hub.log_next_offset() - offset_before;
    // Two refusals (the send and the ask) were logged before the count started.
    assert_eq!(logged, MAILBOX_REFUSALS_PER_SENDER_MAX - 2);

    hub.restart();
    let mut carol = hub.join(Transport::Unix, "carol");
    let mut bob = hub.join(Transport::Unix, "bob");
    let told = notice(&mut bob);
    assert!(
        told.contains("10000 unread message(s)") && told.contains("from alice at least 16, cli 1"),
        "{told}"
    );
    let unread = bob.call("unread", json!({}));
    assert_eq!(unread["direct"], MAILBOX_UNREAD_MAX, "{unread}");
    assert_eq!(
        unread["refused"],
        MAILBOX_REFUSALS_PER_SENDER_MAX + 1,
        "{unread}"
    );

    // A broadcast names bob as refused (alice's connection ended with the restart, so nobody
    // else is online to be asked).
    let asked = carol.call("broadcast", json!({ "question": "who is free?" }));
    assert_eq!(
        asked["refused"],
        json!([{ "to": "bob", "code": "mailbox_full" }]),
        "{asked}"
    );
    assert_eq!(asked["peer_count"], 0, "{asked}");

    let (texts, refused) = read_everything(&mut bob);
    let expected: Vec<String> = (1..=MAILBOX_UNREAD_MAX).map(|n| format!("m{n}")).collect();
    assert!(
        texts == expected,
        "every unread message, once, in order ({} read)",
        texts.len()
    );
    assert_eq!(
        refused.len(),
        1,
        "the first page shows the refusals and clears them"
    );
    let by_sender: Vec<(Value, Value, Value)> = refused[0]
        .as_array()
        .expect("refused is a list")
        .iter()
        .map(|entry| {
            (
                entry["from"].clone(),
                entry["count"].clone(),
                entry["at_least"].clone(),
            )
        })
        .collect();
    assert_eq!(
        by_sender,
        [
            (
                json!("alice"),
                json!(MAILBOX_REFUSALS_PER_SENDER_MAX),
                json!(true)
            ),
            (json!("carol"), json!(1), json!(false)),
            (json!("cli"), json!(1), json!(false)),
        ]
    );
    assert!(bob.call("unread", json!({})).get("refused").is_none());

    // Read mail ages out: only the newest 500 read messages are kept to be read again.
    let again = bob.call("inbox", json!({ "limit": 1, "include_pushed": true }));
    let oldest = format!("m{}", MAILBOX_UNREAD_MAX - MAILBOX_READ_MAX + 1);
    assert_eq!(again["messages"][0]["text"], oldest.as_str(), "{again}");
    assert_eq!(again["remaining"], MAILBOX_READ_MAX - 1, "{again}");

    // Room again.
    let mut alice = hub.join(Transport::Unix, "alice");
    let sent = alice.call("send", json!({ "to": "bob", "text": "after the read" }));
    assert!(sent["msg_id"].is_string(), "{sent}");
}

// A member that was away while its group's history passed its bound is told how many unread
// messages fell out (in the notice on connect, in `unread` and in its next history read, which
// clears the count); its own messages and those it read do not count.
#[test]
fn a_group_member_is_told_how_many_messages_it_missed() {
    let hub = fast_hub();
    let mut alice = hub.join(Transport::Unix, "alice");
    drop(hub.join(Transport::Unix, "bob"));
    alice.wait_until_offline("bob");
    alice.call(
        "group_create",
        json!({ "name": "team", "members": ["bob"] }),
    );
    let missed = 10;
    let posts = (0..GROUP_MESSAGES_MAX + missed).map(|n| {
        (
            "group_send",
            json!({ "group": "team", "text": format!("g{n}") }),
        )
    });
    for response in pipelined(&mut alice, posts) {
        assert!(response["result"]["msg_id"].is_string(), "{response}");
    }

    let mut bob = hub.join(Transport::Unix, "bob");
    let told = notice(&mut bob);
    assert!(told.contains("team 10"), "{told}");
    let unread = bob.call("unread", json!({}));
    assert_eq!(
        unread["groups_missed"],
        json!({ "team": missed }),
        "{unread}"
    );
    let history = bob.call("group_history", json!({ "group": "team", "limit": 500 }));
    assert_eq!(history["missed"], missed, "{history}");
    let first = &history["messages"][0];
    assert_eq!(first["text"], format!("g{missed}").as_str(), "{history}");
    let again = bob.call("group_history", json!({ "group": "team", "limit": 500 }));
    assert!(
        again.get("missed").is_none(),
        "the count is cleared: {again}"
    );
    assert!(
        alice
            .call("unread", json!({}))
            .get("groups_missed")
            .is_none()
    );
}
