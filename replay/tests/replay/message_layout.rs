//! The compact mailbox message: ids derived from the record's offset or stored, sender names
//! shared with identities, rare fields boxed. None of it may show: lookups, JSON and snapshots
//! behave as with plain fields.

use relay_replay::snapshot::{snapshot_decode, snapshot_encode};
use relay_replay::{ApplyError, StoredMessage};

use crate::support::{ask, log_with, rename, reply, send};

/// The body of the kept message `id`, looked up through the state's message index.
fn body_of<'a>(log: &'a crate::support::TestLog, id: &str) -> Option<&'a str> {
    log.state.message(id).map(|(_, message)| message.body())
}

#[test]
fn ids_that_are_their_records_offset_and_ids_that_are_not_are_found_alike() {
    let mut log = log_with(&["alice", "bob"]); // offsets 0 and 1
    log.ok(send("m-2", "alice", "bob", "derived")); // offset 2: `m-<offset>`
    log.ok(send("m-7", "alice", "bob", "looks derived")); // offset 3
    log.ok(send("m-004", "alice", "bob", "leading zeros")); // offset 4
    log.ok(send("m-42@a", "alice", "bob", "another hub's")); // offset 5
    assert_eq!(body_of(&log, "m-2"), Some("derived"));
    assert_eq!(body_of(&log, "m-7"), Some("looks derived"));
    assert_eq!(body_of(&log, "m-004"), Some("leading zeros"));
    assert_eq!(body_of(&log, "m-42@a"), Some("another hub's"));
    for absent in ["m-3", "m-4", "m-5", "m-02", "m-", "m-2@a"] {
        assert_eq!(
            body_of(&log, absent),
            None,
            "{absent} is no kept message's id"
        );
    }
    let mailbox = log.state.mailbox(log.id("bob")).expect("mailbox");
    let ids: Vec<String> = mailbox.messages().map(|m| m.id().into_owned()).collect();
    assert_eq!(ids, ["m-2", "m-7", "m-004", "m-42@a"]);
    assert_eq!(mailbox.get("m-004").map(StoredMessage::offset), Some(4));
    assert!(mailbox.get("m-4").is_none());
    // The index as the JSON shows it: every id with its location, in id order.
    let index: Vec<(String, u64)> = log
        .state
        .message_index_entries()
        .into_iter()
        .map(|(id, location)| (id, location.sequence))
        .collect();
    let expected = [("m-004", 3), ("m-2", 1), ("m-42@a", 4), ("m-7", 2)];
    assert_eq!(
        index,
        expected.map(|(id, sequence)| (id.to_owned(), sequence))
    );
}

#[test]
fn an_id_is_unique_whether_derived_or_stored() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(send("m-2", "alice", "bob", "derived")); // offset 2
    let repeated = log.reject(send("m-2", "alice", "bob", "again"));
    assert!(
        matches!(repeated, ApplyError::DuplicateMessageId { message_id } if message_id == "m-2")
    );
    log.ok(send("m-5", "alice", "bob", "stored")); // offset 3
    log.ok(send("m-100", "alice", "bob", "filler")); // offset 4
    // At offset 5, `m-5` would be derived: it is taken by the message stored at offset 3.
    let taken = log.reject(send("m-5", "alice", "bob", "derived now"));
    assert!(matches!(taken, ApplyError::DuplicateMessageId { message_id } if message_id == "m-5"));
}

#[test]
fn a_message_keeps_its_senders_name_from_when_it_sent() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(send("m-2", "alice", "bob", "before"));
    log.ok(rename("alice", "ann"));
    log.ok(send("m-4", "ann", "bob", "after"));
    let names: Vec<&str> = log
        .state
        .mailbox(log.id("bob"))
        .expect("mailbox")
        .messages()
        .map(StoredMessage::from_name)
        .collect();
    assert_eq!(names, ["alice", "ann"]);
    // A snapshot restores the names, and the index it does not archive.
    let bytes = snapshot_encode(&log.state, log.state.next_offset());
    let (decoded, _) = snapshot_decode(&bytes).expect("decodes");
    assert_eq!(decoded, log.state);
    assert_eq!(
        decoded
            .message("m-2")
            .map(|(_, message)| message.from_name()),
        Some("alice")
    );
    assert_eq!(
        decoded.message_index_entries(),
        log.state.message_index_entries()
    );
}

#[test]
fn the_json_of_a_stored_message_has_every_field_in_its_order() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(send("m-2", "alice", "bob", "hi")); // offset 2
    log.ok(ask("m-9@b", "a-3", "bob", "alice", None)); // offset 3
    log.ok(reply("m-4", "alice", "bob", "a-3")); // offset 4
    let json = |name: &str| {
        let mailbox = log.state.mailbox(log.id(name)).expect("mailbox");
        let messages: Vec<&StoredMessage> = mailbox.messages().collect();
        serde_json::to_string(&messages).expect("serializes")
    };
    assert_eq!(
        json("bob"),
        concat!(
            r#"[{"sequence":1,"id":"m-2","from":0,"from_name":"alice","body":"hi","#,
            r#""reply_to":null,"ask_id":null,"broadcast_id":null,"thread":null,"#,
            r#""urgent":false,"is_reply":false,"timestamp_us":1700000000002000,"offset":2,"#,
            r#""state":"queued","late":false,"timed_out_ask":null,"reported":null},"#,
            r#"{"sequence":2,"id":"m-4","from":0,"from_name":"alice","body":"answer to a-3","#,
            r#""reply_to":"a-3","ask_id":null,"broadcast_id":null,"thread":null,"#,
            r#""urgent":false,"is_reply":true,"timestamp_us":1700000000004000,"offset":4,"#,
            r#""state":"queued","late":false,"timed_out_ask":null,"reported":null}]"#,
        )
    );
    assert_eq!(
        json("alice"),
        concat!(
            r#"[{"sequence":1,"id":"m-9@b","from":1,"from_name":"bob","body":"question a-3","#,
            r#""reply_to":null,"ask_id":"a-3","broadcast_id":null,"thread":null,"#,
            r#""urgent":false,"is_reply":false,"timestamp_us":1700000000003000,"offset":3,"#,
            r#""state":"queued","late":false,"timed_out_ask":null,"reported":null}]"#,
        )
    );
    let state = serde_json::to_value(&log.state).expect("serializes");
    assert_eq!(
        state["message_index"],
        serde_json::json!({
            "m-2": {"recipient": 1, "sequence": 1},
            "m-4": {"recipient": 1, "sequence": 2},
            "m-9@b": {"recipient": 0, "sequence": 1},
        })
    );
}
