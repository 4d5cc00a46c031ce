//! The pending queue: pushes `relay mcp` holds for a delivery path that takes them later (a
//! hook at the end of a turn, the OpenCode plugin, the Copilot extension, Codex's app-server
//! when it was not reachable).
//!
//! A push is `waiting` until a taker takes it, then `handed` to that taker until it reports
//! what became of it: `read` removes it, `refused` (or the taker going away) puts it back in
//! front, in order. Each message is here at most once (by id), so a repeat push or a second
//! taker never doubles it; one `relay_inbox` returned is taken off ([`Pending::forget`]).
//! The hub still holds every mailbox message as unread until its `read` ack: this queue only
//! decides who hands it over, so dropping from it loses nothing but the push.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::protocol::MessagePush;

/// How long a refused message waits before it is offered again, doubled after each further
/// refusal up to [`REFUSED_RETRY_MAX`]: a client that cannot take it now (its session gone,
/// an error) is not asked again in a tight loop.
pub const REFUSED_RETRY_MIN: Duration = Duration::from_millis(500);

/// Longest wait before a refused message is offered again.
pub const REFUSED_RETRY_MAX: Duration = Duration::from_secs(30);

/// Who took a message: a connection of the delivery socket, or an in-process taker.
pub type TakerId = u64;

/// One message, with who holds it now.
#[derive(Debug)]
struct Entry {
    push: MessagePush,
    taker: Option<TakerId>,
    /// Times a taker refused it.
    refusals: u32,
    /// Not offered before this (after a refusal).
    not_before: Option<Instant>,
}

impl Entry {
    fn offerable(&self, now: Instant) -> bool {
        self.taker.is_none() && self.not_before.is_none_or(|at| at <= now)
    }
}

/// The queue. Bounded by its `max`: past it the oldest waiting push is dropped (it stays
/// unread at the hub and `relay_inbox` returns it).
#[derive(Debug)]
pub struct Pending {
    entries: VecDeque<Entry>,
    max: usize,
    /// Consecutive turns a hook started with messages it handed over (see `continuation`).
    followups: u32,
}

/// What a take handed over, or why nothing.
#[derive(Debug, Default)]
pub struct Taken {
    /// The messages, oldest first.
    pub messages: Vec<MessagePush>,
    /// Still waiting after the take.
    pub remaining: usize,
    /// Set when nothing was handed over on purpose.
    pub refused_because: Option<&'static str>,
}

impl Pending {
    /// An empty queue of at most `max` messages.
    pub fn new(max: usize) -> Pending {
        Pending {
            entries: VecDeque::new(),
            max: max.max(1),
            followups: 0,
        }
    }

    /// Adds a push unless it is already here. Returns the push dropped to make room, if any.
    pub fn hold(&mut self, push: MessagePush) -> Option<MessagePush> {
        if self
            .entries
            .iter()
            .any(|entry| entry.push.msg_id == push.msg_id)
        {
            return None;
        }
        self.entries.push_back(Entry {
            push,
            taker: None,
            refusals: 0,
            not_before: None,
        });
        if self.entries.len() <= self.max {
            return None;
        }
        let oldest_waiting = self
            .entries
            .iter()
            .position(|entry| entry.taker.is_none())?;
        self.entries.remove(oldest_waiting).map(|entry| entry.push)
    }

    /// Hands the waiting messages (only urgent ones with `urgent_only`) to `taker`, except
    /// refused ones whose retry time has not come.
    pub fn take(&mut self, taker: TakerId, urgent_only: bool) -> Vec<MessagePush> {
        let now = Instant::now();
        let mut taken = Vec::new();
        for entry in &mut self.entries {
            if entry.offerable(now) && (entry.push.urgent || !urgent_only) {
                entry.taker = Some(taker);
                taken.push(entry.push.clone());
            }
        }
        taken
    }

    /// A hook's take at the end of a turn: as [`Pending::take`], but at most `followups_max`
    /// turns in a row that the hook itself started (`continuation`) get messages, so two
    /// auto-answering sessions cannot keep each other busy through their hooks forever.
    pub fn take_for_turn(
        &mut self,
        taker: TakerId,
        urgent_only: bool,
        continuation: bool,
        followups_max: u32,
    ) -> Taken {
        if !continuation {
            self.followups = 0;
        }
        if urgent_only {
            let messages = self.take(taker, true);
            let remaining = self.waiting();
            return Taken {
                messages,
                remaining,
                refused_because: None,
            };
        }
        if self.followups >= followups_max && self.waiting() > 0 {
            return Taken {
                messages: Vec::new(),
                remaining: self.waiting(),
                refused_because: Some("followups_max"),
            };
        }
        let messages = self.take(taker, false);
        if !messages.is_empty() {
            self.followups += 1;
        }
        Taken {
            messages,
            remaining: self.waiting(),
            refused_because: None,
        }
    }

    /// `taker` delivered `msg_id`: it leaves the queue. Returns the push, if `taker` held it.
    pub fn delivered(&mut self, taker: TakerId, msg_id: &str) -> Option<MessagePush> {
        let index = self
            .entries
            .iter()
            .position(|entry| entry.push.msg_id == msg_id && entry.taker == Some(taker))?;
        self.entries.remove(index).map(|entry| entry.push)
    }

    /// `taker` could not deliver `msg_id`: it waits again, in its place, and is offered again
    /// after [`REFUSED_RETRY_MIN`], doubled per refusal up to [`REFUSED_RETRY_MAX`].
    pub fn refused(&mut self, taker: TakerId, msg_id: &str) -> bool {
        match self
            .entries
            .iter_mut()
            .find(|entry| entry.push.msg_id == msg_id && entry.taker == Some(taker))
        {
            Some(entry) => {
                entry.taker = None;
                let wait = REFUSED_RETRY_MIN
                    .saturating_mul(1 << entry.refusals.min(16))
                    .min(REFUSED_RETRY_MAX);
                entry.refusals = entry.refusals.saturating_add(1);
                entry.not_before = Some(Instant::now() + wait);
                true
            }
            None => false,
        }
    }

    /// When the next refused message may be offered again, if one waits for that.
    pub fn next_retry(&self) -> Option<Instant> {
        self.entries
            .iter()
            .filter(|entry| entry.taker.is_none())
            .filter_map(|entry| entry.not_before)
            .min()
    }

    /// `taker` went away: what it held and did not report waits again.
    pub fn release(&mut self, taker: TakerId) -> usize {
        let mut released = 0;
        for entry in &mut self.entries {
            if entry.taker == Some(taker) {
                entry.taker = None;
                released += 1;
            }
        }
        released
    }

    /// `relay_inbox` returned these: nobody hands them over any more (unless a taker holds
    /// one already; its outcome is reported as usual).
    pub fn forget<'id>(&mut self, msg_ids: impl IntoIterator<Item = &'id str>) {
        for msg_id in msg_ids {
            self.entries
                .retain(|entry| entry.taker.is_some() || entry.push.msg_id != msg_id);
        }
    }

    /// Messages waiting for a taker.
    pub fn waiting(&self) -> usize {
        self.entries
            .iter()
            .filter(|entry| entry.taker.is_none())
            .count()
    }

    /// Messages here, waiting or handed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Nothing here.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MessageKind;

    fn push(id: &str, urgent: bool) -> MessagePush {
        MessagePush {
            kind: MessageKind::Direct,
            from: "alice".into(),
            text: format!("text of {id}"),
            msg_id: id.into(),
            ask_id: None,
            reply_to: None,
            room: None,
            group: None,
            urgent,
            ts: 0,
            origin_hub: None,
            late: false,
        }
    }

    fn ids(pushes: &[MessagePush]) -> Vec<&str> {
        pushes.iter().map(|push| push.msg_id.as_str()).collect()
    }

    #[test]
    fn each_message_is_handed_once_until_refused_or_released() {
        let mut pending = Pending::new(10);
        pending.hold(push("m-1", false));
        pending.hold(push("m-1", false));
        pending.hold(push("m-2", false));
        assert_eq!(ids(&pending.take(1, false)), ["m-1", "m-2"]);
        assert!(pending.take(2, false).is_empty());
        assert!(pending.refused(1, "m-2"));
        assert!(!pending.refused(2, "m-1"), "only the taker reports");
        assert!(pending.take(2, false).is_empty(), "not again at once");
        let retry = pending.next_retry().expect("a retry time");
        std::thread::sleep(retry.saturating_duration_since(Instant::now()));
        assert_eq!(ids(&pending.take(2, false)), ["m-2"]);
        assert!(pending.delivered(1, "m-1").is_some());
        assert_eq!(pending.release(2), 1);
        assert_eq!(ids(&pending.take(3, false)), ["m-2"]);
        assert!(pending.delivered(3, "m-2").is_some());
        assert!(pending.is_empty());
    }

    #[test]
    fn urgent_only_leaves_the_rest_waiting() {
        let mut pending = Pending::new(10);
        pending.hold(push("m-1", false));
        pending.hold(push("m-2", true));
        let taken = pending.take_for_turn(1, true, false, 5);
        assert_eq!(ids(&taken.messages), ["m-2"]);
        assert_eq!(taken.remaining, 1);
    }

    #[test]
    fn full_drops_the_oldest_waiting_never_a_handed_one() {
        let mut pending = Pending::new(2);
        pending.hold(push("m-1", false));
        pending.take(1, false);
        pending.hold(push("m-2", false));
        let dropped = pending.hold(push("m-3", false)).expect("one dropped");
        assert_eq!(dropped.msg_id, "m-2");
        assert_eq!(pending.len(), 2);
    }

    #[test]
    fn forget_takes_returned_messages_off() {
        let mut pending = Pending::new(10);
        pending.hold(push("m-1", false));
        pending.hold(push("m-2", false));
        pending.forget(["m-1"]);
        assert_eq!(ids(&pending.take(1, false)), ["m-2"]);
    }

    #[test]
    fn hook_started_turns_in_a_row_are_bounded() {
        let mut pending = Pending::new(100);
        for turn in 0..3 {
            pending.hold(push(&format!("m-{turn}"), false));
            let taken = pending.take_for_turn(turn, false, turn > 0, 2);
            if turn < 2 {
                assert_eq!(taken.messages.len(), 1, "turn {turn}");
                pending.delivered(turn, &format!("m-{turn}"));
            } else {
                assert!(taken.messages.is_empty());
                assert_eq!(taken.refused_because, Some("followups_max"));
            }
        }
        // A turn the user started resets the count.
        let taken = pending.take_for_turn(9, false, false, 2);
        assert_eq!(ids(&taken.messages), ["m-2"]);
    }
}
