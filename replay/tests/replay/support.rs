//! Test helpers: a tiny in-memory log that applies events as the hub would, and event builders.
//!
//! Tests read as one line of input and one line of expectation: `log.ok(send(..))`,
//! `assert_eq!(log.reject(..), ApplyError::..)`.

use relay_replay::event::*;
use relay_replay::{ApplyError, Event, IdentityId, RecordMeta, State, apply};

/// The hub id used as `origin_hub` for records in tests.
pub(crate) const HUB: u128 = 0x1111_2222_3333_4444_5555_6666_7777_8888;

/// Applies events with consecutive offsets and keeps those that applied.
pub(crate) struct TestLog {
    pub(crate) state: State,
    pub(crate) records: Vec<(RecordMeta, Event)>,
    next_offset: u64,
}

impl TestLog {
    pub(crate) fn new() -> TestLog {
        TestLog::with_state(State::new())
    }

    /// A log folding into `state` (e.g. one with a small byte budget).
    pub(crate) fn with_state(state: State) -> TestLog {
        TestLog {
            state,
            records: Vec::new(),
            next_offset: 0,
        }
    }

    /// The metadata the next record will get: offset, and a timestamp derived from it.
    pub(crate) fn next_meta(&self) -> RecordMeta {
        RecordMeta {
            offset: self.next_offset,
            timestamp_us: 1_700_000_000_000_000 + self.next_offset * 1_000,
            origin_hub: HUB,
        }
    }

    /// Applies `event` at the next offset.
    pub(crate) fn append(&mut self, event: impl Into<Event>) -> Result<RecordMeta, ApplyError> {
        let event = event.into();
        let meta = self.next_meta();
        apply(&mut self.state, meta, &event)?;
        self.records.push((meta, event));
        self.next_offset += 1;
        // The recount is O(state): after every step while the log is short, then every 1,000th
        // (the bound tests fill mailboxes with 10,000 messages).
        let step = self.records.len();
        if step < 2_000 || step.is_multiple_of(1_000) {
            assert_eq!(
                self.state.bytes(),
                self.state.recount_bytes(),
                "the byte count drifted from its recount after {step} records"
            );
        }
        Ok(meta)
    }

    /// Applies `event`, which must fit.
    pub(crate) fn ok(&mut self, event: impl Into<Event>) -> RecordMeta {
        let event = event.into();
        let debug = format!("{event:?}");
        self.append(event)
            .unwrap_or_else(|error| panic!("{debug} was rejected: {error}"))
    }

    /// Applies `event`, which must be rejected without changing the state; returns the error.
    pub(crate) fn reject(&mut self, event: impl Into<Event>) -> ApplyError {
        let before = self.state.clone();
        let event = event.into();
        let meta = self.next_meta();
        let error = apply(&mut self.state, meta, &event).expect_err("the event should not fit");
        assert_eq!(self.state, before, "a rejected event changed the state");
        error
    }

    /// The identity currently named `name`.
    pub(crate) fn id(&self, name: &str) -> IdentityId {
        self.state
            .identity_by_name(name)
            .map(|identity| identity.id)
            .expect("name is registered")
    }
}

pub(crate) fn register(name: &str) -> IdentityRegistered {
    IdentityRegistered {
        name: name.into(),
        cwd: format!("/src/{name}"),
        git_branch: Some("main".into()),
        client: ClientKind::Claude,
    }
}

pub(crate) fn rename(old_name: &str, new_name: &str) -> IdentityRenamed {
    IdentityRenamed {
        old_name: old_name.into(),
        new_name: new_name.into(),
    }
}

pub(crate) fn send(id: &str, from: &str, to: &str, body: &str) -> MessageSent {
    MessageSent {
        id: id.into(),
        from: from.into(),
        to: to.into(),
        body: body.into(),
        reply_to: None,
        urgent: false,
        thread: None,
    }
}

pub(crate) fn ask(
    id: &str,
    ask_id: &str,
    from: &str,
    to: &str,
    broadcast_id: Option<&str>,
) -> AskSent {
    AskSent {
        id: id.into(),
        ask_id: ask_id.into(),
        from: from.into(),
        to: to.into(),
        body: format!("question {ask_id}"),
        broadcast_id: broadcast_id.map(Into::into),
        urgent: false,
        thread: None,
    }
}

pub(crate) fn reply(id: &str, from: &str, to: &str, reply_to: &str) -> ReplySent {
    ReplySent {
        id: id.into(),
        from: from.into(),
        to: to.into(),
        body: format!("answer to {reply_to}"),
        reply_to: reply_to.into(),
        urgent: false,
        thread: None,
    }
}

pub(crate) fn pushed(recipient: &str, message_id: &str) -> MessagePushed {
    MessagePushed {
        recipient: recipient.into(),
        message_id: message_id.into(),
    }
}

pub(crate) fn read_mailbox(recipient: &str, up_to_sequence: u64) -> MailboxCursorAdvanced {
    MailboxCursorAdvanced {
        recipient: recipient.into(),
        up_to_sequence,
    }
}

pub(crate) fn create_group(group: &str, admin: &str) -> GroupCreated {
    GroupCreated {
        group: group.into(),
        admin: admin.into(),
    }
}

pub(crate) fn invite(group: &str, actor: &str, member: &str) -> GroupMemberInvited {
    GroupMemberInvited {
        group: group.into(),
        actor: actor.into(),
        member: member.into(),
    }
}

pub(crate) fn remove(group: &str, actor: &str, member: &str, reason: &str) -> GroupMemberRemoved {
    GroupMemberRemoved {
        group: group.into(),
        actor: actor.into(),
        member: member.into(),
        reason: reason.into(),
    }
}

pub(crate) fn group_send(group: &str, id: &str, from: &str, body: &str) -> GroupMessageSent {
    GroupMessageSent {
        group: group.into(),
        id: id.into(),
        from: from.into(),
        body: body.into(),
        reply_to: None,
        urgent: false,
    }
}

pub(crate) fn read_group(group: &str, member: &str, up_to_sequence: u64) -> GroupCursorAdvanced {
    GroupCursorAdvanced {
        group: group.into(),
        member: member.into(),
        up_to_sequence,
    }
}

pub(crate) fn join(room: &str, name: &str) -> RoomJoined {
    RoomJoined {
        room: room.into(),
        name: name.into(),
    }
}

/// A log with `names` registered.
pub(crate) fn log_with(names: &[&str]) -> TestLog {
    let mut log = TestLog::new();
    for name in names {
        log.ok(register(name));
    }
    log
}
