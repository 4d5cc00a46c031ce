//! Direct messages: `send`, `ask`, `broadcast`, `reply` and the `inbox` pull.
//!
//! Each command validates against the state, emits its events, and hands the push to the
//! delivery layer (`commands/delivery.rs`), which decides what the sender is told. A message
//! for a full mailbox is refused with `mailbox_full` before anything of it is appended (each
//! recipient of a broadcast on its own); the recipient's next `inbox` lists what was refused.

use relay_replay::event::{AskSent, MailboxCursorAdvanced, MessageRead, MessageSent, ReplySent};
use relay_replay::state::Refusals;
use relay_replay::{DeliveryState, IdentityId, StoredMessage};

use super::delivery::{Answer, AwaitedResult};
use super::federation::Recipient;
use crate::hub::core::{Core, Json, Outbound, Release, error, to_json};
use crate::hub::limits::BROADCAST_REMOTE_PEERS_MAX;
use crate::protocol::methods::*;
use crate::protocol::notification::MessageKind;
use crate::protocol::{ErrorCode, RpcError};
use relay_replay::federation::HUB_SEPARATOR;

/// The answer of a direct send: `queued` now, or the wait for the recipient's
/// acknowledgement when the push went out.
fn send_answer(pushed: bool, result: AwaitedResult) -> Result<Answer, RpcError> {
    if pushed {
        Ok(Answer::AwaitAck { result })
    } else {
        Ok(Answer::Now(to_json(&result)?))
    }
}

/// Direct messages, asks, broadcasts, replies and the inbox.
impl Core {
    pub(in crate::hub) fn send(
        &mut self,
        me: IdentityId,
        params: SendParams,
        release: &mut Release,
    ) -> Result<Answer, RpcError> {
        let from = self.caller_name(me)?;
        let (to, to_name) = match self.recipient_named(params.to.as_str())? {
            Recipient::Local(to) => (to, self.caller_name(to)?),
            Recipient::Remote(name, known) => {
                return self.send_remote(me, &from, name, known, &params, release);
            }
        };
        if let Some(full) = self.refuse_if_full(&from, to, params.text.as_str().len())? {
            return Err(full);
        }
        self.count_conversation(me, to, release)?;
        let msg_id = format!("m-{}", self.log.next_offset());
        // The push borrows what the event then takes: it is encoded first, and the event moves
        // the request's strings in (nothing copied).
        let mut push = self.message_push(MessageKind::Direct, &from, params.text.as_str(), &msg_id);
        push.reply_to = params.reply_to.as_ref().map(|id| id.as_str());
        push.urgent = params.urgent;
        let push = Outbound::push(&push);
        let event = MessageSent {
            id: msg_id.clone(),
            from,
            to: to_name,
            body: params.text.into_string(),
            reply_to: params.reply_to.map(|id| id.into_string()),
            urgent: params.urgent,
            thread: None,
        };
        let pushed = self.deliver(to, event.into(), push, release)?;
        let result = AwaitedResult::Send(SendResult {
            msg_id,
            status: DeliveryStatus::Queued,
        });
        send_answer(pushed, result)
    }

    /// A direct message to a peer of a linked hub: stored on its way (in the mailbox this hub
    /// keeps for `name@hub`) and answered `forwarded` once durable here; the link ships it, and
    /// receipts follow as the other hub delivers it.
    fn send_remote(
        &mut self,
        me: IdentityId,
        from: &str,
        to_name: String,
        known: Option<IdentityId>,
        params: &SendParams,
        release: &mut Release,
    ) -> Result<Answer, RpcError> {
        if let Some(to) = known {
            self.count_conversation(me, to, release)?;
        }
        let msg_id = format!("m-{}", self.log.next_offset());
        let event = MessageSent {
            id: msg_id.clone(),
            from: from.to_owned(),
            to: to_name,
            body: params.text.as_str().to_owned(),
            reply_to: params.reply_to.as_ref().map(|id| id.as_str().to_owned()),
            urgent: params.urgent,
            thread: None,
        };
        self.emit(event.into())?;
        Ok(Answer::Now(to_json(&SendResult {
            msg_id,
            status: DeliveryStatus::Forwarded,
        })?))
    }

    pub(in crate::hub) fn ask(
        &mut self,
        me: IdentityId,
        params: AskParams,
        release: &mut Release,
    ) -> Result<Answer, RpcError> {
        let from = self.caller_name(me)?;
        let (to, to_name) = match self.recipient_named(params.to.as_str())? {
            Recipient::Local(to) => (Some(to), self.caller_name(to)?),
            Recipient::Remote(name, known) => (known, name),
        };
        let remote = to_name.contains(HUB_SEPARATOR);
        if let Some(to) = to {
            if !remote
                && let Some(full) =
                    self.refuse_if_full(&from, to, params.question.as_str().len())?
            {
                return Err(full);
            }
            self.count_conversation(me, to, release)?;
        }
        let offset = self.log.next_offset();
        let (msg_id, ask_id) = (format!("m-{offset}"), format!("a-{offset}"));
        let mut push =
            self.message_push(MessageKind::Ask, &from, params.question.as_str(), &msg_id);
        push.ask_id = Some(&ask_id);
        push.urgent = params.urgent;
        let push = Outbound::push(&push);
        let event = AskSent {
            id: msg_id.clone(),
            ask_id: ask_id.clone(),
            from,
            to: to_name,
            body: params.question.into_string(),
            broadcast_id: None,
            urgent: params.urgent,
            thread: params.thread_id.map(|thread| thread.into_string()),
        };
        let pushed = match to {
            Some(to) if !remote => self.deliver(to, event.into(), push, release)?,
            _ => {
                self.emit(event.into())?;
                false
            }
        };
        self.set_ask_deadline(&ask_id, params.deadline_s.get())?;
        let result = AwaitedResult::Ask(AskResult {
            ask_id,
            msg_id,
            status: if remote {
                DeliveryStatus::Forwarded
            } else {
                DeliveryStatus::Queued
            },
        });
        send_answer(pushed, result)
    }

    pub(in crate::hub) fn broadcast(
        &mut self,
        me: IdentityId,
        params: BroadcastParams,
        release: &mut Release,
    ) -> Result<Json, RpcError> {
        let from = self.caller_name(me)?;
        let broadcast_id = format!("b-{}", self.log.next_offset());
        let online: Vec<IdentityId> = self
            .online
            .keys()
            .copied()
            .filter(|target| !(params.exclude_self && *target == me))
            .collect();
        let remote = if params.all_hubs {
            self.peers_online_elsewhere()
        } else {
            Vec::new()
        };
        // At most two events per peer (a refusal, or an ask and its deadline): one batch.
        let events_max = (online.len() + remote.len()).saturating_mul(2);
        self.atomically("broadcast", events_max, |core| {
            let mut answer = core.broadcast_to(online, &from, &broadcast_id, &params, release)?;
            answer.forwarded = core.broadcast_elsewhere(remote, &from, &broadcast_id, &params)?;
            answer.peer_count += answer.forwarded.len() as u32;
            to_json(&answer)
        })
    }

    /// Every peer the linked hubs report online, as `name@hub`, at most
    /// [`BROADCAST_REMOTE_PEERS_MAX`].
    fn peers_online_elsewhere(&self) -> Vec<String> {
        let Some(federation) = &self.config.federation else {
            return Vec::new();
        };
        crate::hub::link_host::remote_presence()
            .into_iter()
            .filter(|(hub, _)| federation.peers.contains(hub))
            .flat_map(|(hub, names)| {
                names
                    .into_iter()
                    .map(move |name| format!("{name}{HUB_SEPARATOR}{hub}"))
            })
            .take(BROADCAST_REMOTE_PEERS_MAX)
            .collect()
    }

    /// The asks of one `broadcast` to peers of linked hubs: each is stored on its way and
    /// shipped like any ask to `name@hub` (the other hub delivers it as a plain ask); their
    /// replies name this hub's ask and count toward the broadcast.
    fn broadcast_elsewhere(
        &mut self,
        remote: Vec<String>,
        from: &str,
        broadcast_id: &str,
        params: &BroadcastParams,
    ) -> Result<Vec<String>, RpcError> {
        let mut asked = Vec::with_capacity(remote.len());
        for to in remote {
            let offset = self.log.next_offset();
            let (msg_id, ask_id) = (format!("m-{offset}"), format!("a-{offset}"));
            let event = AskSent {
                id: msg_id,
                ask_id: ask_id.clone(),
                from: from.to_owned(),
                to: to.clone(),
                body: params.question.as_str().to_owned(),
                broadcast_id: Some(broadcast_id.to_owned()),
                urgent: false,
                thread: None,
            };
            self.emit(event.into())?;
            self.set_ask_deadline(&ask_id, params.deadline_s.get())?;
            asked.push(to);
        }
        Ok(asked)
    }

    /// The events and pushes of one `broadcast` to `online`.
    fn broadcast_to(
        &mut self,
        online: Vec<IdentityId>,
        from: &str,
        broadcast_id: &str,
        params: &BroadcastParams,
        release: &mut Release,
    ) -> Result<BroadcastResult, RpcError> {
        let from = from.to_owned();
        let broadcast_id = broadcast_id.to_owned();
        let mut targets = Vec::with_capacity(online.len());
        let mut refused = Vec::new();
        for target in online {
            let body_bytes = params.question.as_str().len();
            if self.refuse_if_full(&from, target, body_bytes)?.is_some() {
                refused.push(BroadcastRefusal {
                    to: self.caller_name(target)?,
                    code: ErrorCode::MailboxFull,
                });
            } else {
                targets.push(target);
            }
        }
        for target in &targets {
            let offset = self.log.next_offset();
            let (msg_id, ask_id) = (format!("m-{offset}"), format!("a-{offset}"));
            let event = AskSent {
                id: msg_id.clone(),
                ask_id: ask_id.clone(),
                from: from.clone(),
                to: self.caller_name(*target)?,
                body: params.question.as_str().to_owned(),
                broadcast_id: Some(broadcast_id.clone()),
                urgent: false,
                thread: None,
            };
            let mut push = self.message_push(
                MessageKind::Broadcast,
                &from,
                params.question.as_str(),
                &msg_id,
            );
            push.ask_id = Some(&ask_id);
            let push = Outbound::push(&push);
            self.deliver(*target, event.into(), push, release)?;
            self.set_ask_deadline(&ask_id, params.deadline_s.get())?;
        }
        Ok(BroadcastResult {
            broadcast_id,
            peer_count: targets.len() as u32,
            forwarded: Vec::new(),
            refused,
        })
    }

    pub(in crate::hub) fn reply(
        &mut self,
        me: IdentityId,
        params: ReplyParams,
        release: &mut Release,
    ) -> Result<Answer, RpcError> {
        let from = self.caller_name(me)?;
        let mut answered = params.ask_id.as_str().to_owned();
        // A broadcast id stands for the caller's own ask of that broadcast.
        if let Some(ask) =
            self.state.asks().all_pending().find(|ask| {
                ask.target == me && ask.broadcast_id.as_deref() == Some(answered.as_str())
            })
        {
            answered = ask.ask_id.clone();
        }
        // The id names a pending ask, one that timed out (the reply is late), or a message the
        // caller received.
        let pending = self
            .state
            .pending_ask(&answered)
            .or_else(|| self.state.asks().expired(&answered));
        let late = self.state.pending_ask(&answered).is_none() && pending.is_some();
        let to = match pending {
            Some(ask) if ask.target == me => ask.asker,
            Some(_) => {
                return Err(error(
                    ErrorCode::AskNotFound,
                    format!("ask {answered:?} was not addressed to you"),
                ));
            }
            None => match self.state.message(&answered) {
                Some((recipient, message)) if recipient == me => message.from(),
                _ => {
                    return Err(error(
                        ErrorCode::AskNotFound,
                        format!("no pending ask or message of yours has id {answered:?}"),
                    ));
                }
            },
        };
        if self.state.identity(to).is_none() {
            return Err(error(
                ErrorCode::PeerNotFound,
                format!("the sender of {answered:?} left long ago and was forgotten"),
            ));
        }
        let to_name = self.caller_name(to)?;
        let remote = to_name.contains(HUB_SEPARATOR);
        if !remote && let Some(full) = self.refuse_if_full(&from, to, params.text.as_str().len())? {
            return Err(full);
        }
        self.count_conversation(me, to, release)?;
        let msg_id = format!("m-{}", self.log.next_offset());
        let mut push = self.message_push(MessageKind::Reply, &from, params.text.as_str(), &msg_id);
        push.reply_to = Some(&answered);
        push.urgent = params.urgent;
        push.late = late;
        let push = Outbound::push(&push);
        let event = ReplySent {
            id: msg_id.clone(),
            from,
            to: to_name,
            body: params.text.into_string(),
            reply_to: answered,
            urgent: params.urgent,
            thread: None,
        };
        let pushed = self.deliver(to, event.into(), push, release)?;
        let result = AwaitedResult::Reply(ReplyResult {
            msg_id,
            status: if remote {
                DeliveryStatus::Forwarded
            } else {
                DeliveryStatus::Queued
            },
        });
        send_answer(pushed, result)
    }

    pub(in crate::hub) fn inbox(
        &mut self,
        me: IdentityId,
        params: InboxParams,
    ) -> Result<Json, RpcError> {
        let recipient = self.caller_name(me)?;
        let mailbox = self.state.mailbox(me).ok_or_else(|| {
            error(
                ErrorCode::Unexpected,
                "invariant: every identity has a mailbox",
            )
        })?;
        let limit = params.limit.get() as usize;
        let since = params.since_id.as_ref().map(|id| id.as_str());
        let mut matching = if params.include_pushed {
            mailbox.all(since, usize::MAX)
        } else {
            mailbox.unread(since, usize::MAX)
        };
        let matching_count = matching.len();
        let refused = refused_messages(mailbox.refusals());
        matching.truncate(limit);
        let sizes = matching
            .iter()
            .map(|message| message.body().len() + message.from_name().len());
        matching.truncate(fitting_in_a_frame(refused_bytes(&refused), sizes));
        let messages: Vec<InboxMessage> = matching
            .iter()
            .map(|message| inbox_message(message))
            .collect();
        let remaining = (matching_count - messages.len()) as u32;
        let cursor = mailbox.cursor();
        let unread: Vec<String> = matching
            .iter()
            .filter(|message| message.sequence() > cursor && message.state() != DeliveryState::Read)
            .map(|message| message.id().into_owned())
            .collect();
        let last_sequence = matching.last().map(|message| message.sequence());
        if since.is_none() {
            // Everything up to the last returned message has been seen: move the cursor. The
            // cursor event also clears the refusal record this answer shows, so it is logged
            // even when the cursor stays where it is.
            let moved = last_sequence.filter(|sequence| *sequence > cursor);
            if moved.is_some() || !refused.is_empty() {
                self.emit_unless_full(
                    MailboxCursorAdvanced {
                        recipient,
                        up_to_sequence: moved.unwrap_or(cursor),
                    }
                    .into(),
                )?;
            }
        } else {
            // After `since_id`, earlier messages were not returned: mark only the returned ones
            // read, so the cursor does not pass messages the session never saw. One batch;
            // on a full disk the read is still answered and the same messages come again.
            let marked = self.atomically("inbox", unread.len(), |core| {
                for message_id in unread {
                    core.emit(
                        MessageRead {
                            recipient: recipient.clone(),
                            message_id,
                        }
                        .into(),
                    )?;
                }
                Ok(())
            });
            match marked {
                Err(refused) if refused.code != ErrorCode::StorageFull => return Err(refused),
                _ => {}
            }
        }
        to_json(&InboxResult {
            messages,
            remaining,
            refused,
        })
    }
}

/// The refusal record of a mailbox as `inbox` lists it: named senders by name, then the others.
fn refused_messages(refusals: &Refusals) -> Vec<RefusedMessages> {
    let entry = |from: Option<&str>, count: &relay_replay::state::RefusalCount| RefusedMessages {
        from: from.map(str::to_owned),
        count: count.count,
        at_least: count.is_lower_bound(),
        first_ts: count.first_us,
        last_ts: count.last_us,
    };
    refusals
        .senders()
        .map(|(name, count)| entry(Some(name), count))
        .chain(refusals.others().map(|count| entry(None, count)))
        .collect()
}

/// Worst-case JSON bytes of a refusal list in a response.
fn refused_bytes(refused: &[RefusedMessages]) -> usize {
    use crate::protocol::limits::JSON_ESCAPE_EXPANSION_MAX;
    const REFUSAL_ENVELOPE_BYTES: usize = 128;
    refused
        .iter()
        .map(|entry| {
            entry.from.as_ref().map_or(0, String::len) * JSON_ESCAPE_EXPANSION_MAX
                + REFUSAL_ENVELOPE_BYTES
        })
        .sum()
}

/// How many of these messages (their text sizes, in order) fit in one response frame beside
/// `reserved_bytes` of other members, at least one: every byte may be escaped six-fold in JSON,
/// plus a fixed envelope per message.
pub(in crate::hub) fn fitting_in_a_frame(
    reserved_bytes: usize,
    sizes: impl Iterator<Item = usize>,
) -> usize {
    use crate::protocol::limits::{FRAME_BYTES_MAX, JSON_ESCAPE_EXPANSION_MAX};
    const MESSAGE_ENVELOPE_BYTES: usize = 1024;
    let budget = (FRAME_BYTES_MAX - 4 * MESSAGE_ENVELOPE_BYTES).saturating_sub(reserved_bytes);
    let mut used = 0;
    let mut count = 0;
    for size in sizes {
        used += size * JSON_ESCAPE_EXPANSION_MAX + MESSAGE_ENVELOPE_BYTES;
        if used > budget && count > 0 {
            break;
        }
        count += 1;
    }
    count
}

fn inbox_message(message: &StoredMessage) -> InboxMessage {
    let kind = match (message.ask_id(), message.broadcast_id(), message.reply_to()) {
        _ if message.timed_out_ask().is_some() => MessageKind::Timeout,
        (Some(_), Some(_), _) => MessageKind::Broadcast,
        (Some(_), None, _) => MessageKind::Ask,
        _ if message.is_reply() => MessageKind::Reply,
        _ => MessageKind::Direct,
    };
    InboxMessage {
        msg_id: message.id().into_owned(),
        kind,
        from: message.from_name().to_owned(),
        text: message.body().to_owned(),
        reply_to: message.reply_to().map(str::to_owned),
        ask_id: message.ask_id().map(str::to_owned),
        ts: message.timestamp_us(),
        urgent: message.urgent(),
        pushed: message.state() == DeliveryState::Delivered,
        late: message.late(),
    }
}
