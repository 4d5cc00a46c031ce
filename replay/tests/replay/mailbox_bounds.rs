//! The mailbox bounds of issue 10: unread mail is never dropped (a send past the bound is
//! rejected, `mailbox_full` at the hub), refusals are counted for the recipient until it reads,
//! read mail ages out oldest first, and a group member counts the unread messages that fell out
//! of the group's ring.

use proptest::prelude::*;
use relay_replay::event::*;
use relay_replay::limits::{
    GROUP_MESSAGES_MAX, MAILBOX_READ_BYTES_MAX, MAILBOX_READ_MAX, MAILBOX_REFUSALS_PER_SENDER_MAX,
    MAILBOX_REFUSED_SENDERS_MAX, MAILBOX_UNREAD_BYTES_MAX, MAILBOX_UNREAD_MAX,
};
use relay_replay::{ApplyError, DeliveryState, Mailbox};

use crate::support::*;

/// Bob's mailbox in `log`.
fn mailbox_of<'a>(log: &'a TestLog, name: &str) -> &'a Mailbox {
    log.state
        .mailbox(log.id(name))
        .expect("every identity has a mailbox")
}

/// `count` one-byte messages from alice to bob, ids `m-1` … `m-<count>`.
fn fill(log: &mut TestLog, count: usize) {
    for n in 1..=count {
        log.ok(send(&format!("m-{n}"), "alice", "bob", "x"));
    }
}

fn refused(from: &str, to: &str) -> MessageRefused {
    MessageRefused {
        from: from.into(),
        to: to.into(),
        body_bytes: 1,
    }
}

#[test]
fn a_mailbox_holds_its_unread_bound_and_refuses_the_next_message_keeping_every_unread_one() {
    let mut log = log_with(&["alice", "bob"]);
    fill(&mut log, MAILBOX_UNREAD_MAX);
    let mailbox = mailbox_of(&log, "bob");
    assert_eq!(mailbox.unread_count(), MAILBOX_UNREAD_MAX);
    assert_eq!(mailbox.unread(None, usize::MAX).len(), MAILBOX_UNREAD_MAX);
    assert_eq!(mailbox.messages().next().expect("oldest").id(), "m-1");

    let next = format!("m-{}", MAILBOX_UNREAD_MAX + 1);
    assert_eq!(
        log.reject(send(&next, "alice", "bob", "one more")),
        ApplyError::MailboxFull {
            recipient: "bob".into(),
            unread_count: MAILBOX_UNREAD_MAX as u64,
            unread_bytes: MAILBOX_UNREAD_MAX as u64,
            body_bytes: 8,
        }
    );
    // Asks and replies are refused alike; the first message is still there to be found.
    assert!(matches!(
        log.reject(ask(&next, "a-1", "alice", "bob", None)),
        ApplyError::MailboxFull { .. }
    ));
    assert!(matches!(
        log.reject(reply(&next, "alice", "bob", "m-1")),
        ApplyError::MailboxFull { .. }
    ));
    assert!(log.state.message("m-1").is_some());
    // Another mailbox is not affected.
    log.ok(send(&next, "bob", "alice", "fine"));
}

#[test]
fn a_mailbox_refuses_a_message_past_its_unread_text_budget() {
    let mut log = log_with(&["alice", "bob"]);
    let largest = "x".repeat(64 << 10);
    let fitting = MAILBOX_UNREAD_BYTES_MAX / largest.len();
    for n in 1..=fitting {
        log.ok(send(&format!("m-{n}"), "alice", "bob", &largest));
    }
    assert_eq!(
        mailbox_of(&log, "bob").unread_bytes(),
        MAILBOX_UNREAD_BYTES_MAX as u64
    );
    // At the budget even one byte more is refused, long before the message count is reached.
    assert_eq!(
        log.reject(send("m-big", "alice", "bob", "y")),
        ApplyError::MailboxFull {
            recipient: "bob".into(),
            unread_count: fitting as u64,
            unread_bytes: MAILBOX_UNREAD_BYTES_MAX as u64,
            body_bytes: 1,
        }
    );
    // Reading one makes room for one of the same size again.
    log.ok(read_mailbox("bob", 1));
    log.ok(send("m-big", "alice", "bob", &largest));
}

#[test]
fn reading_makes_room_and_the_oldest_read_messages_age_out() {
    let mut log = log_with(&["alice", "bob"]);
    fill(&mut log, MAILBOX_UNREAD_MAX);
    log.ok(read_mailbox("bob", 600));
    let mailbox = mailbox_of(&log, "bob");
    assert_eq!(mailbox.read_count(), MAILBOX_READ_MAX);
    assert_eq!(mailbox.unread_count(), MAILBOX_UNREAD_MAX - 600);
    // The 100 oldest read messages are forgotten, by id too; the newer read ones stay.
    assert_eq!(mailbox.messages().next().expect("oldest").id(), "m-101");
    assert!(log.state.message("m-100").is_none());
    assert!(log.state.message("m-101").is_some());
    log.ok(send("m-next", "alice", "bob", "room again"));
    assert_eq!(
        mailbox_of(&log, "bob").unread_count(),
        MAILBOX_UNREAD_MAX - 599
    );
}

#[test]
fn read_text_past_its_budget_forgets_the_oldest_read_message() {
    let mut log = log_with(&["alice", "bob"]);
    let largest = "x".repeat(64 << 10);
    let kept = MAILBOX_READ_BYTES_MAX / largest.len();
    for n in 1..=kept + 1 {
        log.ok(send(&format!("m-{n}"), "alice", "bob", &largest));
    }
    log.ok(read_mailbox("bob", kept as u64));
    assert_eq!(mailbox_of(&log, "bob").read_count(), kept);
    log.ok(read_mailbox("bob", kept as u64 + 1));
    let mailbox = mailbox_of(&log, "bob");
    assert_eq!(mailbox.read_count(), kept);
    assert!(mailbox.read_bytes() <= MAILBOX_READ_BYTES_MAX as u64);
    assert!(log.state.message("m-1").is_none());
    assert!(log.state.message("m-2").is_some());
}

#[test]
fn messages_read_out_of_order_age_out_and_an_older_unread_one_stays() {
    let mut log = log_with(&["alice", "bob"]);
    let total = MAILBOX_READ_MAX + 100;
    fill(&mut log, total);
    // A native push path reads each message on its own; m-1 was never read.
    for n in 2..=total {
        log.ok(MessageRead {
            recipient: "bob".into(),
            message_id: format!("m-{n}"),
        });
    }
    let mailbox = mailbox_of(&log, "bob");
    assert_eq!(mailbox.read_count(), MAILBOX_READ_MAX);
    let unread: Vec<String> = mailbox
        .unread(None, usize::MAX)
        .iter()
        .map(|message| message.id().into_owned())
        .collect();
    assert_eq!(unread, ["m-1"]);
    assert!(log.state.message("m-100").is_none());
    assert!(log.state.message("m-101").is_some());
    assert_eq!(mailbox.cursor(), 0);
}

#[test]
fn a_read_message_returned_unread_counts_as_unread_again() {
    let mut log = log_with(&["alice", "bob"]);
    fill(&mut log, 3);
    log.ok(MessageRead {
        recipient: "bob".into(),
        message_id: "m-2".into(),
    });
    assert_eq!(mailbox_of(&log, "bob").unread_count(), 2);
    log.ok(MessageStatusReported {
        recipient: "bob".into(),
        message_id: "m-2".into(),
        status: "expired".into(),
    });
    let mailbox = mailbox_of(&log, "bob");
    assert_eq!(mailbox.unread_count(), 3);
    assert_eq!(mailbox.read_count(), 0);
    assert_eq!(mailbox.unread_bytes(), 3);
    assert_eq!(
        mailbox.get("m-2").expect("kept").state(),
        DeliveryState::Queued
    );
}

#[test]
fn refusals_are_counted_per_sender_up_to_their_allowance_until_the_inbox_is_read() {
    let mut log = log_with(&["alice", "bob", "carol"]);
    fill(&mut log, 1);
    for _ in 0..MAILBOX_REFUSALS_PER_SENDER_MAX {
        log.ok(refused("alice", "bob"));
    }
    assert_eq!(
        log.reject(refused("alice", "bob")),
        ApplyError::RefusalsCounted {
            recipient: "bob".into(),
            sender: "alice".into(),
        }
    );
    log.ok(refused("carol", "bob"));
    let refusals = mailbox_of(&log, "bob").refusals();
    let counts: Vec<(&str, u32, bool)> = refusals
        .senders()
        .map(|(name, count)| (name, count.count, count.is_lower_bound()))
        .collect();
    assert_eq!(
        counts,
        [
            ("alice", MAILBOX_REFUSALS_PER_SENDER_MAX, true),
            ("carol", 1, false)
        ]
    );
    assert_eq!(
        refusals.total(),
        u64::from(MAILBOX_REFUSALS_PER_SENDER_MAX) + 1
    );
    // Reading the inbox (even without moving the cursor) shows and clears the record, and the
    // allowance starts again.
    log.ok(read_mailbox("bob", 0));
    assert!(mailbox_of(&log, "bob").refusals().is_empty());
    log.ok(refused("alice", "bob"));
    assert_eq!(mailbox_of(&log, "bob").refusals().total(), 1);
}

#[test]
fn refusals_from_senders_past_the_named_ones_are_counted_together() {
    let names: Vec<String> = (0..=MAILBOX_REFUSED_SENDERS_MAX)
        .map(|n| format!("s{n}"))
        .collect();
    let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
    all.push("bob");
    let mut log = log_with(&all);
    for name in &names {
        log.ok(refused(name, "bob"));
    }
    let refusals = mailbox_of(&log, "bob").refusals();
    assert_eq!(refusals.senders().count(), MAILBOX_REFUSED_SENDERS_MAX);
    assert_eq!(refusals.others().map(|others| others.count), Some(1));
    // The unnamed senders share one allowance.
    let last = names.last().expect("one past the named senders");
    for _ in 1..MAILBOX_REFUSALS_PER_SENDER_MAX {
        log.ok(refused(last, "bob"));
    }
    assert!(matches!(
        log.reject(refused(last, "bob")),
        ApplyError::RefusalsCounted { .. }
    ));
}

#[test]
fn a_timeout_for_a_full_mailbox_ends_the_ask_and_is_counted_as_refused_from_relay() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(ask("m-0", "a-1", "bob", "alice", None));
    fill(&mut log, MAILBOX_UNREAD_MAX);
    log.ok(AskExpired {
        ask_id: "a-1".into(),
        message_id: "t-1".into(),
        body: "alice did not answer".into(),
    });
    assert!(log.state.pending_ask("a-1").is_none());
    assert!(log.state.message("t-1").is_none());
    let counts: Vec<(&str, u32)> = mailbox_of(&log, "bob")
        .refusals()
        .senders()
        .map(|(name, count)| (name, count.count))
        .collect();
    assert_eq!(counts, [("relay", 1)]);
    assert_eq!(mailbox_of(&log, "bob").unread_count(), MAILBOX_UNREAD_MAX);
}

#[test]
fn a_member_counts_the_unread_group_messages_that_fell_out_of_the_ring() {
    let mut log = log_with(&["alice", "bob", "carol"]);
    log.ok(create_group("team", "alice"));
    log.ok(invite("team", "alice", "bob"));
    log.ok(invite("team", "alice", "carol"));
    // Carol reads the first message through a push; bob reads nothing.
    log.ok(group_send("team", "g-0", "alice", "first"));
    log.ok(GroupMessageAcknowledged {
        group: "team".into(),
        member: "carol".into(),
        message_id: "g-0".into(),
        read: true,
    });
    for n in 1..GROUP_MESSAGES_MAX + 10 {
        log.ok(group_send("team", &format!("g-{n}"), "alice", "update"));
    }
    let group = log.state.group("team").expect("group");
    assert_eq!(group.missed_for(log.id("bob")), 10);
    assert_eq!(group.missed_for(log.id("carol")), 9, "carol had read g-0");
    assert_eq!(group.missed_for(log.id("alice")), 0, "its own messages");
    // A history read (the cursor advance) clears it.
    let last = group.last_sequence();
    log.ok(read_group("team", "bob", last));
    let group = log.state.group("team").expect("group");
    assert_eq!(group.missed_for(log.id("bob")), 0);
    assert_eq!(group.missed_for(log.id("carol")), 9);
}

#[test]
fn a_member_added_later_misses_nothing_from_before_it_joined() {
    let mut log = log_with(&["alice", "bob"]);
    log.ok(create_group("team", "alice"));
    for n in 0..GROUP_MESSAGES_MAX {
        log.ok(group_send("team", &format!("g-{n}"), "alice", "before"));
    }
    log.ok(invite("team", "alice", "bob"));
    log.ok(group_send("team", "g-late", "alice", "after"));
    let group = log.state.group("team").expect("group");
    assert_eq!(group.missed_for(log.id("bob")), 0);
}

/// One step against a mailbox kept near both of its bounds.
#[derive(Clone, Debug)]
enum Step {
    /// Alice sends bob a message of this many bytes (refused when it does not fit).
    Send(usize),
    /// Bob's inbox reads the oldest `count` unread messages (the cursor moves past them).
    ReadOldest(usize),
    /// Bob's session hands one message to its model (read out of order).
    ReadOne(usize),
    /// Bob's client reports one message expired: unread again unless the cursor passed it.
    Return(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => prop_oneof![3 => Just(1usize), 1 => Just(64usize << 10)].prop_map(Step::Send),
        1 => (1..300usize).prop_map(Step::ReadOldest),
        2 => any::<usize>().prop_map(Step::ReadOne),
        1 => any::<usize>().prop_map(Step::Return),
    ]
}

/// The plain model of bob's mailbox: every message ever stored, by sequence, with its size and
/// whether it is read; nothing is ever forgotten here.
#[derive(Default)]
struct MailboxModel {
    /// Sequence → (id, body bytes, read).
    messages: std::collections::BTreeMap<u64, (String, usize, bool)>,
    cursor: u64,
}

impl MailboxModel {
    fn unread(&self) -> impl Iterator<Item = (&u64, &(String, usize, bool))> {
        self.messages.iter().filter(|(_, (_, _, read))| !read)
    }

    fn has_room(&self, body_bytes: usize) -> bool {
        let bytes: usize = self.unread().map(|(_, (_, size, _))| size).sum();
        self.unread().count() < MAILBOX_UNREAD_MAX && bytes + body_bytes <= MAILBOX_UNREAD_BYTES_MAX
    }
}

/// Runs `steps` on a mailbox prefilled close to its message count and text budget, the way the
/// hub would (checking room first, logging a refusal within the sender's allowance), and checks
/// after each step that the mailbox's unread messages are exactly the model's.
fn run_near_the_bounds(steps: &[Step]) -> Result<(), TestCaseError> {
    let mut log = log_with(&["alice", "bob"]);
    let mut model = MailboxModel::default();
    let prefill = MAILBOX_UNREAD_MAX - 100;
    let big = "x".repeat(64 << 10);
    for n in 1..=prefill {
        let body = if n <= 200 { big.as_str() } else { "x" };
        log.ok(send(&format!("m-{n}"), "alice", "bob", body));
        model
            .messages
            .insert(n as u64, (format!("m-{n}"), body.len(), false));
    }
    let mut next = prefill;
    for step in steps {
        let mailbox = mailbox_of(&log, "bob");
        match *step {
            Step::Send(body_bytes) => {
                next += 1;
                let id = format!("m-{next}");
                let body = "y".repeat(body_bytes);
                prop_assert_eq!(
                    mailbox.check_room(body_bytes).is_ok(),
                    model.has_room(body_bytes)
                );
                if model.has_room(body_bytes) {
                    log.ok(send(&id, "alice", "bob", &body));
                    let sequence = mailbox_of(&log, "bob").last_sequence();
                    model.messages.insert(sequence, (id, body_bytes, false));
                } else {
                    let refused = log.reject(send(&id, "alice", "bob", &body));
                    prop_assert!(
                        matches!(refused, ApplyError::MailboxFull { .. }),
                        "{refused}"
                    );
                    if mailbox_of(&log, "bob").refusals().counts_one_more("alice") {
                        log.ok(MessageRefused {
                            from: "alice".into(),
                            to: "bob".into(),
                            body_bytes: body_bytes as u64,
                        });
                    }
                }
            }
            Step::ReadOldest(count) => {
                let Some(last) = mailbox.unread(None, count).last().map(|m| m.sequence()) else {
                    continue;
                };
                log.ok(read_mailbox("bob", last));
                model.cursor = last;
                for (_, (_, _, read)) in model.messages.range_mut(..=last) {
                    *read = true;
                }
            }
            Step::ReadOne(pick) | Step::Return(pick) => {
                let kept = mailbox.all(None, usize::MAX);
                let message = kept[pick % kept.len()];
                let (sequence, message_id) = (message.sequence(), message.id().into_owned());
                let returning = matches!(step, Step::Return(_));
                if returning {
                    log.ok(MessageStatusReported {
                        recipient: "bob".into(),
                        message_id,
                        status: "expired".into(),
                    });
                } else {
                    log.ok(MessageRead {
                        recipient: "bob".into(),
                        message_id,
                    });
                }
                if let Some((_, _, read)) = model.messages.get_mut(&sequence)
                    && (!returning || sequence > model.cursor)
                {
                    *read = !returning;
                }
            }
        }
        let mailbox = mailbox_of(&log, "bob");
        let unread: Vec<String> = mailbox
            .unread(None, usize::MAX)
            .iter()
            .map(|m| m.id().into_owned())
            .collect();
        let expected: Vec<&str> = model.unread().map(|(_, (id, _, _))| id.as_str()).collect();
        prop_assert_eq!(unread, expected, "unread mail is never dropped");
        prop_assert!(mailbox.read_count() <= MAILBOX_READ_MAX);
        prop_assert!(mailbox.read_bytes() <= MAILBOX_READ_BYTES_MAX as u64);
        prop_assert!(mailbox.len() <= MAILBOX_UNREAD_MAX + MAILBOX_READ_MAX);
        prop_assert!(
            mailbox.refusals().total() <= u64::from(MAILBOX_REFUSALS_PER_SENDER_MAX),
            "one sender's refusals stay within its allowance"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    // The at-limit property: whatever sends, reads and returns happen around both bounds, no
    // unread message is ever dropped, a send is admitted exactly when the model has room, and
    // read messages stay within their bounds.
    #[test]
    fn unread_messages_are_never_dropped_near_the_mailbox_bounds(
        steps in proptest::collection::vec(step(), 1..400),
    ) {
        run_near_the_bounds(&steps)?;
    }
}
