//! Delivery: what the sender is told and when, what the recipient's session reports back, and
//! the bounds around both.
//!
//! - A push is only a push: a message becomes *delivered* when the recipient's session answers
//!   with `ack` (`delivered`: it took it; `read`: its model has it), recorded as an event after
//!   it happened. A push never acknowledged leaves the message queued, so the next `inbox`
//!   returns it.
//! - A `send`, `ask` or `reply` whose push went out waits up to `DELIVERY_ACK_WAIT` for that
//!   acknowledgement before it answers: `delivered` if it came, `queued` if not. Later steps
//!   reach the sender as `receipt` notifications and through `status`.
//! - A sending request with an idempotency key is answered once: its result is logged
//!   (`request_completed`) and a repeat of the key gets it back (or joins the wait).
//! - Asks end: at their deadline the asker gets a stored `timeout` message.
//! - Two identities cannot message each other forever: 100 turns
//!   ([`crate::hub::limits::CONVERSATION_MESSAGES_MAX`]) per [`CONVERSATION_WINDOW`] unless
//!   `relay hub --loop-guard` says otherwise (0: no guard).
//! - A full mailbox refuses mail instead of dropping unread mail: the sender gets
//!   `mailbox_full` at once ([`Core::refuse_if_full`]), the refusal is logged (`message_refused`,
//!   within the per-sender allowance of `MAILBOX_REFUSALS_PER_SENDER_MAX`, so a hostile sender
//!   cannot grow the log) and the recipient hears of it on connect, in `unread` and in its next
//!   `inbox`.

use std::time::{Duration, Instant};

use relay_replay::event::{
    AskDeadlineSet, AskExpired, GroupMessageAcknowledged, MessagePushed, MessageRead,
    MessageRefused, MessageStatusReported, RequestCompleted,
};
use relay_replay::limits::{MAILBOX_UNREAD_BYTES_MAX, MAILBOX_UNREAD_MAX};
use relay_replay::state::mailbox::derived_offset;
use relay_replay::state::{MailboxFull, Refusals};
use relay_replay::{DeliveryState, IdentityId};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::hub::core::{Core, Json, Outbound, Release, Reply, SessionId, error, now_us, to_json};
use crate::hub::limits::{ASK_EXPIRIES_PER_BATCH_MAX, CONVERSATION_WINDOW, IDEMPOTENCY_WINDOW};
use crate::protocol::methods::*;
use crate::protocol::notification::{MessageKind, Receipt, ReceiptStatus};
use crate::protocol::{ErrorCode, RpcError};

// The largest message always fits an empty mailbox.
const _: () = assert!(MAILBOX_UNREAD_BYTES_MAX >= crate::protocol::limits::TEXT_BYTES_MAX);

/// What a command answers.
pub enum Answer {
    /// The result, to release after the batch's commit.
    Now(Json),
    /// A result whose `status` depends on the recipient's acknowledgement of its message: it
    /// is answered when the `ack` comes or at the wait's end, whichever is first.
    AwaitAck {
        /// The result with `status: "queued"`; `"delivered"` replaces it on an ack.
        result: AwaitedResult,
    },
    /// A repeat of an idempotency key already answered: the logged result, not logged again.
    Repeat(Json),
    /// A repeat of an idempotency key whose first request is still waiting: answered with it.
    Join {
        /// The offset of the message the first request waits for.
        offset: u64,
    },
}

/// The result of a `send`, `ask` or `reply` whose push went out, kept typed while it waits so
/// that the ack only changes its `status` (it is serialised once, when it is answered).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum AwaitedResult {
    /// A `send`'s.
    Send(SendResult),
    /// An `ask`'s.
    Ask(AskResult),
    /// A `reply`'s.
    Reply(ReplyResult),
}

impl AwaitedResult {
    /// The id of the message whose acknowledgement it waits for.
    pub(in crate::hub) fn msg_id(&self) -> &str {
        match self {
            AwaitedResult::Send(result) => &result.msg_id,
            AwaitedResult::Ask(result) => &result.msg_id,
            AwaitedResult::Reply(result) => &result.msg_id,
        }
    }

    fn status_mut(&mut self) -> &mut DeliveryStatus {
        match self {
            AwaitedResult::Send(result) => &mut result.status,
            AwaitedResult::Ask(result) => &mut result.status,
            AwaitedResult::Reply(result) => &mut result.status,
        }
    }
}

/// A sending request waiting for its recipient's acknowledgement.
pub struct AwaitingAck {
    /// Who sent it, for the idempotency record.
    caller: IdentityId,
    /// The sender's key, if it gave one.
    key: Option<String>,
    /// The result with `status: "queued"`.
    result: AwaitedResult,
    /// The request waiting for the answer.
    reply: Reply,
    /// Repeats of its key waiting too (rare: empty, so nothing allocated, for most sends).
    repeats: Vec<Reply>,
    /// When to give up waiting and answer `queued`.
    deadline: Instant,
}

/// The loop guard's count for one pair of identities: how often the direction turned.
pub struct Conversation {
    window_start: Instant,
    /// Turns (a message the other way than the one before) in this window.
    count: u32,
    /// Who sent the last message.
    last_from: IdentityId,
    /// Both sides were told the guard stopped them, in this window.
    told: bool,
}

impl Core {
    /// Sends `answer` to `reply`: now (logging the result under the key first), or once the
    /// recipient acknowledges.
    pub(in crate::hub) fn answer(
        &mut self,
        session: SessionId,
        key: Option<String>,
        answer: Answer,
        reply: Reply,
        release: &mut Release,
    ) {
        match answer {
            Answer::Now(result) => {
                let caller = self.sessions.get(&session).and_then(|entry| entry.identity);
                if let (Some(caller), Some(key)) = (caller, key) {
                    self.complete(caller, key, result.get());
                }
                release.replies.push((reply, Ok(result)));
            }
            Answer::Repeat(result) => release.replies.push((reply, Ok(result))),
            Answer::AwaitAck { result } => {
                let caller = self.sessions.get(&session).and_then(|entry| entry.identity);
                // The hub's own message ids name their offsets; an awaited result has one.
                let offset = derived_offset(result.msg_id());
                let (Some(caller), Some(offset)) = (caller, offset) else {
                    release.replies.push((reply, to_json(&result)));
                    return;
                };
                // Logged in the message's own batch, so a hub that dies during the wait still
                // answers a resend with the message it stored (`queued`); the final result is
                // logged again when the wait ends, and the newest entry wins.
                if let Some(key) = &key
                    && let Ok(logged) = to_json(&result)
                {
                    self.complete(caller, key.clone(), logged.get());
                }
                let awaiting = AwaitingAck {
                    caller,
                    key,
                    result,
                    reply,
                    repeats: Vec::new(),
                    deadline: Instant::now() + self.config.delivery_ack_wait,
                };
                self.awaiting.insert(offset, awaiting);
            }
            Answer::Join { offset } => match self.awaiting.get_mut(&offset) {
                Some(awaiting) => awaiting.repeats.push(reply),
                None => release.replies.push((
                    reply,
                    Err(error(
                        ErrorCode::Unexpected,
                        "the first request was answered",
                    )),
                )),
            },
        }
    }

    /// The answer to a repeated idempotency key: the logged result, or the wait of the first
    /// request. `None` for a new key.
    pub(in crate::hub) fn repeated_request(
        &self,
        caller: IdentityId,
        key: &str,
    ) -> Result<Option<Answer>, RpcError> {
        // A first request still waiting for its ack is joined (its logged `queued` result
        // would be stale by the time it answers).
        let waiting = self.awaiting.iter().find(|(_, awaiting)| {
            awaiting.caller == caller && awaiting.key.as_deref() == Some(key)
        });
        if let Some((&offset, _)) = waiting {
            return Ok(Some(Answer::Join { offset }));
        }
        let Some(completed) = self.state.completed_request(caller, key) else {
            return Ok(None);
        };
        let age_us = now_us().saturating_sub(completed.timestamp_us);
        if Duration::from_micros(age_us) > IDEMPOTENCY_WINDOW {
            return Ok(None);
        }
        let result = RawValue::from_string(completed.result.clone()).map_err(|json| {
            error(
                ErrorCode::Unexpected,
                format!("the logged result of key {key:?} does not parse: {json}"),
            )
        })?;
        Ok(Some(Answer::Repeat(result)))
    }

    /// Logs the result of a request under its idempotency key. A failure to log is not the
    /// request's failure: the message is stored; only a later repeat could double it.
    fn complete(&mut self, caller: IdentityId, key: String, result: &str) {
        let Some(name) = self.name_of(caller) else {
            return;
        };
        let completed = RequestCompleted {
            caller: name,
            key,
            result: result.to_owned(),
        };
        if let Err(refused) = self.emit(completed.into()) {
            tracing::warn!(error = %refused, "could not log an idempotency key");
        }
    }

    /// Answers the send waiting for the message at `offset` (if one waits), logging its key
    /// first.
    fn resolve(&mut self, offset: u64, delivered: bool, release: &mut Release) {
        let Some(mut awaiting) = self.awaiting.remove(&offset) else {
            return;
        };
        if delivered {
            *awaiting.result.status_mut() = DeliveryStatus::Delivered;
        }
        let result = to_json(&awaiting.result);
        if let (Some(key), Ok(logged)) = (awaiting.key.take(), &result) {
            self.complete(awaiting.caller, key, logged.get());
        }
        // The request first, then the repeats of its key, as they came.
        let mut repeats = awaiting.repeats.into_iter();
        let Some(last) = repeats.next_back() else {
            release.replies.push((awaiting.reply, result));
            return;
        };
        release.replies.push((awaiting.reply, result.clone()));
        for reply in repeats {
            release.replies.push((reply, result.clone()));
        }
        release.replies.push((last, result));
    }

    /// Answers every send still waiting for its recipient with `queued` (the hub stops).
    pub(in crate::hub) fn resolve_all_waiting(&mut self, release: &mut Release) {
        while let Some((&offset, _)) = self.awaiting.first_key_value() {
            self.resolve(offset, false, release);
        }
    }

    /// When the core must wake next without input: a send's wait ends or an ask's deadline
    /// passes.
    pub(in crate::hub) fn next_timer(&self) -> Option<Instant> {
        let wait_ends = self
            .awaiting
            .first_key_value()
            .map(|(_, awaiting)| awaiting.deadline);
        let ask_deadline = self.state.asks().next_deadline().map(|(deadline_us, _)| {
            let from_now_us = deadline_us.saturating_sub(now_us());
            Instant::now() + Duration::from_micros(from_now_us)
        });
        wait_ends.into_iter().chain(ask_deadline).min()
    }

    /// Answers the sends whose wait ended (`queued`) and expires the asks past their deadline.
    pub(in crate::hub) fn fire_timers(&mut self, release: &mut Release) {
        let now = Instant::now();
        // The first wait ends first (see `Core::awaiting`); each pass answers one.
        while let Some((&offset, awaiting)) = self.awaiting.first_key_value()
            && awaiting.deadline <= now
        {
            self.resolve(offset, false, release);
        }
        for _ in 0..ASK_EXPIRIES_PER_BATCH_MAX {
            let Some((deadline_us, ask_id)) = self.state.asks().next_deadline() else {
                break;
            };
            if deadline_us > now_us() {
                break;
            }
            let ask_id = ask_id.to_owned();
            if let Err(refused) = self.expire_ask(&ask_id, release) {
                tracing::warn!(ask_id = %ask_id, error = %refused, "could not expire an ask");
                break;
            }
        }
    }

    /// Gives a new ask its deadline.
    pub(in crate::hub) fn set_ask_deadline(
        &mut self,
        ask_id: &str,
        deadline_s: u32,
    ) -> Result<(), RpcError> {
        let deadline_us = now_us().saturating_add(u64::from(deadline_s) * 1_000_000);
        self.emit(
            AskDeadlineSet {
                ask_id: ask_id.to_owned(),
                deadline_us,
            }
            .into(),
        )
        .map(drop)
    }

    /// Ends an ask at its deadline: the asker gets a stored `timeout` message naming it.
    fn expire_ask(&mut self, ask_id: &str, release: &mut Release) -> Result<(), RpcError> {
        let Some(ask) = self.state.pending_ask(ask_id) else {
            return Ok(());
        };
        let (asker, target) = (ask.asker, ask.target);
        let waited_s = ask
            .deadline_us
            .unwrap_or_default()
            .saturating_sub(ask.timestamp_us)
            / 1_000_000;
        let target_name = self.name_of(target).unwrap_or_default();
        let message_id = format!("t-{}", self.log.next_offset());
        let body = format!(
            "{target_name} did not answer your ask {ask_id} within {waited_s} s; a late reply will still reach you, marked late"
        );
        self.emit(
            AskExpired {
                ask_id: ask_id.to_owned(),
                message_id: message_id.clone(),
                body: body.clone(),
            }
            .into(),
        )?;
        // A full mailbox did not store the notice (it counts as refused from `relay`): there is
        // nothing to push, and the asker hears of it on its next inbox.
        if self.state.message(&message_id).is_none() {
            return Ok(());
        }
        let mut push = self.message_push(MessageKind::Timeout, "relay", &body, &message_id);
        push.reply_to = Some(ask_id);
        self.push(asker, Outbound::push(&push), release);
        Ok(())
    }

    /// Checks that `to`'s mailbox has room for a message of `body_bytes` from `from` (the
    /// sender's current name). When it has not, logs the refusal (`message_refused`) while the
    /// sender's allowance lasts and returns the `mailbox_full` error for the sender: nothing of
    /// the message may be appended then. `Ok(None)` when the mailbox has room.
    ///
    /// # Errors
    /// `storage_error` when the refusal could not be logged.
    pub(in crate::hub) fn refuse_if_full(
        &mut self,
        from: &str,
        to: IdentityId,
        body_bytes: usize,
    ) -> Result<Option<RpcError>, RpcError> {
        let Some(mailbox) = self.state.mailbox(to) else {
            return Ok(None);
        };
        let Err(full) = mailbox.check_room(body_bytes) else {
            return Ok(None);
        };
        let counted = mailbox.refusals().counts_one_more(from);
        let to_name = self.caller_name(to)?;
        if counted {
            let refused = MessageRefused {
                from: from.to_owned(),
                to: to_name.clone(),
                body_bytes: body_bytes as u64,
            };
            self.emit(refused.into())?;
        }
        Ok(Some(mailbox_full_error(&to_name, full)))
    }

    /// The loop guard: counts a turn when `from` answers the pair's last message (the
    /// direction flips), and refuses the message when the pair turned
    /// `relay hub --loop-guard` times (default
    /// [`crate::hub::limits::CONVERSATION_MESSAGES_MAX`]) in this window;
    /// a one-way stream never counts, and `--loop-guard 0` switches the guard off.
    /// The first refusal in a window also tells both sides (a notice through their push
    /// paths, for their users): auto-answering clients would otherwise just stop.
    pub(in crate::hub) fn count_conversation(
        &mut self,
        from: IdentityId,
        to: IdentityId,
        release: &mut Release,
    ) -> Result<(), RpcError> {
        let Some(turns_max) = self.config.loop_guard else {
            return Ok(());
        };
        if from == to {
            return Ok(());
        }
        let now = Instant::now();
        let pair = (from.min(to), from.max(to));
        // Bounded: an entry per pair that talked in the last window; stale ones go first.
        if self.conversations.len() >= 4 * crate::hub::limits::SESSIONS_MAX {
            self.conversations
                .retain(|_, conversation| now - conversation.window_start < CONVERSATION_WINDOW);
        }
        let conversation = self.conversations.entry(pair).or_insert(Conversation {
            window_start: now,
            count: 0,
            last_from: from,
            told: false,
        });
        if now - conversation.window_start >= CONVERSATION_WINDOW {
            *conversation = Conversation {
                window_start: now,
                count: 0,
                last_from: from,
                told: false,
            };
        }
        if conversation.last_from == from {
            return Ok(());
        }
        if conversation.count >= turns_max {
            let wait = CONVERSATION_WINDOW.saturating_sub(now - conversation.window_start);
            if !conversation.told {
                conversation.told = true;
                let names = (self.caller_name(from), self.caller_name(to));
                if let (Ok(from_name), Ok(to_name)) = names {
                    let text = format!(
                        "Relay's loop guard stopped messages between {from_name} and {to_name}: {turns_max} exchanges back and forth within {} s. If the two sessions were answering each other automatically, tell your user; messages between them go through again in {} s.",
                        CONVERSATION_WINDOW.as_secs(),
                        wait.as_secs()
                    );
                    self.notice(from, text.clone(), None, release);
                    self.notice(to, text, None, release);
                }
            }
            return Err(error(
                ErrorCode::RateLimited,
                format!(
                    "loop guard: {turns_max} exchanges back and forth between these two peers within {} s; if you are answering each other automatically, stop and ask your user",
                    CONVERSATION_WINDOW.as_secs()
                ),
            )
            .with_detail("retry_after_ms", Value::from(wait.as_millis() as u64)));
        }
        conversation.count += 1;
        conversation.last_from = from;
        Ok(())
    }

    /// `ack`: the caller's session reports what became of a message pushed to it.
    pub(in crate::hub) fn ack(
        &mut self,
        me: IdentityId,
        params: AckParams,
        release: &mut Release,
    ) -> Result<Json, RpcError> {
        if let Some(group) = &params.group {
            return self.ack_group(me, group.as_str(), params.msg_id.into_string(), params.step);
        }
        let msg_id = params.msg_id.as_str();
        // A hub's own `timeout` message has no sender to tell.
        let (sender, state, is_hub_notice) = match self.state.message(msg_id) {
            Some((recipient, message)) if recipient == me => (
                message.from(),
                message.state(),
                message.timed_out_ask().is_some(),
            ),
            _ => {
                return Err(error(
                    ErrorCode::BadArguments,
                    format!("your mailbox holds no message {msg_id:?}"),
                ));
            }
        };
        let step = params.step;
        let changed = match step {
            AckStep::Delivered => state == DeliveryState::Queued,
            AckStep::Read => state != DeliveryState::Read,
            AckStep::Held | AckStep::Refused | AckStep::Expired => true,
        };
        // The receipt borrows the id the event then takes: it is encoded first (and goes out
        // only once the event is in the log).
        let receipt = (changed && !is_hub_notice)
            .then(|| self.receipt_frame(msg_id, me, step.receipt_status()));
        let offset = derived_offset(msg_id);
        if changed {
            let recipient = self.caller_name(me)?;
            let message_id = params.msg_id.into_string();
            let event: relay_replay::Event = match step {
                AckStep::Delivered => MessagePushed {
                    recipient,
                    message_id,
                }
                .into(),
                AckStep::Read => MessageRead {
                    recipient,
                    message_id,
                }
                .into(),
                AckStep::Held | AckStep::Refused | AckStep::Expired => MessageStatusReported {
                    recipient,
                    message_id,
                    status: step.name().to_owned(),
                }
                .into(),
            };
            self.emit(event)?;
        }
        if let Some(offset) = offset {
            self.resolve(
                offset,
                matches!(step, AckStep::Delivered | AckStep::Read),
                release,
            );
        }
        if let Some(receipt) = receipt {
            self.push(sender, receipt, release);
        }
        to_json(&EmptyResult {})
    }

    fn ack_group(
        &mut self,
        me: IdentityId,
        group: &str,
        msg_id: String,
        step: AckStep,
    ) -> Result<Json, RpcError> {
        let read = match step {
            AckStep::Delivered => false,
            AckStep::Read => true,
            // Group messages are not held back for anyone: the history has them either way.
            AckStep::Held | AckStep::Refused | AckStep::Expired => {
                return to_json(&EmptyResult {});
            }
        };
        let member = self.caller_name(me)?;
        let found = self.member_group(me, group)?;
        let Some(message) = found.message_by_id(&msg_id) else {
            return Err(error(
                ErrorCode::BadArguments,
                format!("group {group:?} keeps no message {msg_id:?}"),
            ));
        };
        let membership = found.membership(me);
        let already = membership.is_some_and(|membership| {
            membership.is_read(message.sequence)
                || (!read && membership.is_delivered_only(message.sequence))
        });
        if !already {
            let event = GroupMessageAcknowledged {
                group: group.to_owned(),
                member,
                message_id: msg_id,
                read,
            };
            self.emit(event.into())?;
        }
        to_json(&EmptyResult {})
    }

    /// Tells `sender`, if it is online, the step its message to `recipient` reached.
    pub(in crate::hub) fn send_receipt(
        &self,
        sender: IdentityId,
        msg_id: &str,
        recipient: IdentityId,
        status: ReceiptStatus,
        release: &mut Release,
    ) {
        self.push(
            sender,
            self.receipt_frame(msg_id, recipient, status),
            release,
        );
    }

    /// The `receipt` frame telling a sender that `recipient`'s session reported `status` of
    /// its message `msg_id`.
    fn receipt_frame(
        &self,
        msg_id: &str,
        recipient: IdentityId,
        status: ReceiptStatus,
    ) -> Outbound {
        let receipt = Receipt {
            msg_id,
            to: self
                .state
                .identity(recipient)
                .map_or("", |identity| identity.name()),
            status,
            ts: now_us(),
        };
        Outbound::receipt(&receipt)
    }

    /// `status`: how far a message the caller sent has come.
    pub(in crate::hub) fn status(
        &self,
        me: IdentityId,
        params: StatusParams,
    ) -> Result<Json, RpcError> {
        let msg_id = params.msg_id.as_str();
        let (recipient, message) = self
            .state
            .message(msg_id)
            .filter(|(_, message)| message.from() == me && message.timed_out_ask().is_none())
            .ok_or_else(|| {
                error(
                    ErrorCode::BadArguments,
                    format!(
                        "no message {msg_id:?} sent by you is kept (ids come from send, ask and reply results)"
                    ),
                )
            })?;
        to_json(&StatusResult {
            msg_id: msg_id.to_owned(),
            to: self.name_of(recipient).unwrap_or_default(),
            state: message.state().name().to_owned(),
            reported: message.reported().map(str::to_owned),
            ts: message.timestamp_us(),
        })
    }

    /// The caller's unread mail, counted.
    pub(in crate::hub) fn unread_counts(&self, me: IdentityId) -> UnreadResult {
        let mut counts = UnreadResult::default();
        if let Some(mailbox) = self.state.mailbox(me) {
            for message in mailbox.unread(None, usize::MAX) {
                if message.ask_id().is_some() {
                    counts.asks += 1;
                } else {
                    counts.direct += 1;
                }
            }
        }
        for group in self.state.groups_of(me) {
            let unread = group.unread_for(me) as u32;
            if unread > 0 {
                counts.groups.insert(group.name().to_owned(), unread);
            }
        }
        counts.total = counts.direct + counts.asks + counts.groups.values().sum::<u32>();
        if let Some(mailbox) = self.state.mailbox(me) {
            counts.refused = u32::try_from(mailbox.refusals().total()).unwrap_or(u32::MAX);
        }
        for group in self.state.groups_of(me) {
            let missed = u32::try_from(group.missed_for(me)).unwrap_or(u32::MAX);
            if missed > 0 {
                counts.groups_missed.insert(group.name().to_owned(), missed);
            }
        }
        counts
    }

    /// `unread`.
    pub(in crate::hub) fn unread(&self, me: IdentityId) -> Result<Json, RpcError> {
        to_json(&self.unread_counts(me))
    }

    /// The notice a session gets on connect when mail waits for it, through its push path.
    pub(in crate::hub) fn mail_waiting_notice(&self, me: IdentityId, release: &mut Release) {
        let counts = self.unread_counts(me);
        if counts.total == 0 && counts.refused == 0 && counts.groups_missed.is_empty() {
            return;
        }
        let mut parts = Vec::new();
        if let Some(mailbox) = self.state.mailbox(me)
            && !mailbox.refusals().is_empty()
        {
            parts.push(refusals_sentence(mailbox.refusals()));
        }
        if !counts.groups_missed.is_empty() {
            let missed: Vec<String> = counts
                .groups_missed
                .iter()
                .map(|(group, count)| format!("{group} {count}"))
                .collect();
            parts.push(format!(
                "unread group messages that fell out of the history before you read them: {}",
                missed.join(", ")
            ));
        }
        if counts.direct > 0 {
            parts.push(format!("{} unread message(s)", counts.direct));
        }
        if counts.asks > 0 {
            parts.push(format!("{} unanswered ask(s)", counts.asks));
        }
        let groups: Vec<String> = counts
            .groups
            .iter()
            .map(|(group, count)| format!("{group} {count}"))
            .collect();
        if !groups.is_empty() {
            parts.push(format!("unread in groups: {}", groups.join(", ")));
        }
        let text = format!(
            "While you were away: {}. Read them with relay_inbox{}.",
            parts.join("; "),
            if groups.is_empty() && counts.groups_missed.is_empty() {
                ""
            } else {
                " and relay_group_history"
            }
        );
        self.notice(me, text, None, release);
    }
}

/// The `mailbox_full` error a sender gets: who, how full, the bounds, and what happens next.
fn mailbox_full_error(to: &str, full: MailboxFull) -> RpcError {
    error(
        ErrorCode::MailboxFull,
        format!(
            "{to}'s mailbox is full ({} unread messages, {} KiB of unread text; the bounds are {MAILBOX_UNREAD_MAX} messages and {} MiB): nothing was stored. {to} is told that a message from you was refused when it next reads its inbox; send again once it has read its mail",
            full.unread_count,
            full.unread_bytes.div_ceil(1024),
            MAILBOX_UNREAD_BYTES_MAX >> 20,
        ),
    )
    .with_detail("recipient", Value::from(to))
    .with_detail("unread_count", Value::from(full.unread_count))
    .with_detail("unread_max", Value::from(MAILBOX_UNREAD_MAX as u64))
    .with_detail("unread_bytes", Value::from(full.unread_bytes))
    .with_detail("unread_bytes_max", Value::from(MAILBOX_UNREAD_BYTES_MAX as u64))
}

/// One sentence on the messages a full mailbox refused, by sender: "3 message(s) were refused
/// because your mailbox was full (from alice 2, bob at least 16)".
pub(in crate::hub) fn refusals_sentence(refusals: &Refusals) -> String {
    let count = |count: &relay_replay::state::RefusalCount| {
        if count.is_lower_bound() {
            format!("at least {}", count.count)
        } else {
            count.count.to_string()
        }
    };
    let mut senders: Vec<String> = refusals
        .senders()
        .map(|(name, refused)| format!("{name} {}", count(refused)))
        .collect();
    if let Some(others) = refusals.others() {
        senders.push(format!("other senders {}", count(others)));
    }
    format!(
        "{} message(s) were refused because your mailbox was full (from {}); reading your inbox makes room",
        refusals.total(),
        senders.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(result: &impl Serialize) -> Value {
        let text = to_json(result).expect("a result serializes");
        serde_json::from_str(text.get()).expect("a result is JSON")
    }

    /// A waiting result is answered as the result type of its request, and an ack changes
    /// only its `status`.
    #[test]
    fn an_awaited_result_is_the_json_of_its_request_s_result() {
        let send = SendResult {
            msg_id: "m-9".into(),
            status: DeliveryStatus::Queued,
        };
        let ask = AskResult {
            ask_id: "a-3".into(),
            msg_id: "m-8".into(),
            status: DeliveryStatus::Queued,
        };
        let reply = ReplyResult {
            msg_id: "m-7".into(),
            status: DeliveryStatus::Queued,
        };
        let mut awaited = [
            AwaitedResult::Send(send.clone()),
            AwaitedResult::Ask(ask.clone()),
            AwaitedResult::Reply(reply.clone()),
        ];
        assert_eq!(json(&awaited[0]), json(&send));
        assert_eq!(json(&awaited[1]), json(&ask));
        assert_eq!(json(&awaited[2]), json(&reply));
        assert_eq!(
            awaited
                .iter()
                .map(AwaitedResult::msg_id)
                .collect::<Vec<_>>(),
            ["m-9", "m-8", "m-7"]
        );
        for result in &mut awaited {
            *result.status_mut() = DeliveryStatus::Delivered;
        }
        assert_eq!(json(&awaited[0])["status"], "delivered");
        assert_eq!(
            json(&awaited[1]),
            json(&AskResult {
                status: DeliveryStatus::Delivered,
                ..ask
            })
        );
        assert_eq!(json(&awaited[2])["msg_id"], "m-7");
    }
}
