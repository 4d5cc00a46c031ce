//! How events cross hubs: which peer hub a local event is for, and how a peer's event reads
//! on this hub.
//!
//! Names and ids are local to the hub that made them. A name or id of another hub carries that
//! hub's federation id after an `@`: `bob@b` is the peer `bob` of hub `b`, `m-42@a` the message
//! `m-42` of hub `a`. Local names cannot hold `@` (the protocol reserves it), so a peer's
//! `alice` never resolves to the local `alice`, and a peer's `m-42` never collides with ours.
//!
//! An event of hub `a` shipped to hub `b` is translated by [`translate`]: every name or id `a`
//! made (no `@`) gains `@a`, every one of `b`'s (`…@b`) loses it, and the authenticated origin
//! may only speak for its own peers: a sender that is not `a`'s is refused. The result is an
//! ordinary event that `apply` checks like any other, with the domain limits of [`crate::limits`]
//! (imported bytes are untrusted).

use crate::audit::group_of;
use crate::event::codec::decode;
use crate::event::{AskSent, Event, MessagePushed, MessageRead, MessageSent, ReplySent};
use crate::event::{EventKind, LinkImported, MessageStatusReported};
use crate::event::{
    GroupDeleted, GroupLeft, GroupMemberInvited, GroupMemberRemoved, GroupMessageSent,
};
use crate::limits::{HUB_ID_BYTES_MAX, ID_BYTES_MAX, QUALIFIED_NAME_BYTES_MAX, TEXT_BYTES_MAX};

/// Separates a name or id from the hub that made it.
pub const HUB_SEPARATOR: char = '@';

/// The hub part of a qualified name or id (`bob@b` → `b`), or `None` for a local one.
pub fn hub_of(name_or_id: &str) -> Option<&str> {
    split_qualified(name_or_id).map(|(_, hub)| hub)
}

/// `(local part, hub)` of a qualified name or id, both non-empty; `None` for a local one.
pub fn split_qualified(name_or_id: &str) -> Option<(&str, &str)> {
    let (local, hub) = name_or_id.rsplit_once(HUB_SEPARATOR)?;
    (!local.is_empty() && !hub.is_empty()).then_some((local, hub))
}

/// Whether `hub` is a well-formed federation hub id: 1 to [`HUB_ID_BYTES_MAX`] bytes of
/// `[a-z0-9-]`.
pub fn is_hub_id(hub: &str) -> bool {
    !hub.is_empty()
        && hub.len() <= HUB_ID_BYTES_MAX
        && hub
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
}

/// The peer hub a local event is for, if any: a message, ask or reply to `name@hub`, or the
/// delivery step (pushed, read, reported) of a message imported from `hub`, which goes back to
/// it as the sender's receipt. Imported events are never shipped on (links are direct). Group
/// events go to several hubs: see [`ships_to`].
pub fn destination(event: &Event) -> Option<&str> {
    match event {
        Event::MessageSent(event) => hub_of(&event.to),
        Event::AskSent(event) => hub_of(&event.to),
        Event::ReplySent(event) => hub_of(&event.to),
        Event::MessagePushed(event) => hub_of(&event.message_id),
        Event::MessageRead(event) => hub_of(&event.message_id),
        Event::MessageStatusReported(event) => hub_of(&event.message_id),
        // A delivery of the origin's that this hub could not take goes back as its refusal.
        Event::LinkImported(event) if event.refused.is_some() && is_delivery(event.kind) => {
            Some(&event.origin_hub)
        }
        // A post to, or a departure from, a group another hub homes goes to that hub, which
        // orders it and ships it to every member hub.
        Event::GroupMessageSent(event) => hub_of(&event.group),
        Event::GroupLeft(event) => hub_of(&event.group),
        _ => None,
    }
}

/// Whether a local event ships to `peer`: its [`destination`] is `peer`, or it is an event of
/// a group homed here that `peer` has had a member in (`routed` says so of a group: the groups
/// [`crate::state::Federation::groups_routed_to`] names; asked only of group events), or that
/// names a member of `peer`.
pub fn ships_to(event: &Event, peer: &str, mut routed: impl FnMut(&str) -> bool) -> bool {
    if destination(event) == Some(peer) {
        return true;
    }
    let (group, member) = match event {
        Event::GroupMemberInvited(event) => (&event.group, Some(&event.member)),
        Event::GroupMemberRemoved(event) => (&event.group, Some(&event.member)),
        Event::GroupLeft(event) => (&event.group, Some(&event.member)),
        Event::GroupMessageSent(event) => (&event.group, None),
        Event::GroupDeleted(event) => (&event.group, None),
        _ => return false,
    };
    if group.contains(HUB_SEPARATOR) {
        return false;
    }
    member.is_some_and(|member| hub_of(member) == Some(peer)) || routed(group)
}

/// Whether events of kind number `kind` are deliveries (message, ask, reply).
fn is_delivery(kind: u16) -> bool {
    [
        EventKind::MessageSent,
        EventKind::AskSent,
        EventKind::ReplySent,
    ]
    .iter()
    .any(|delivery| delivery.number() == kind)
}

/// Whether records of `kind` may be for a peer hub (see [`ships_to`]): a cheap filter
/// before decoding.
pub const fn may_ship(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::MessageSent
            | EventKind::AskSent
            | EventKind::ReplySent
            | EventKind::MessagePushed
            | EventKind::MessageRead
            | EventKind::MessageStatusReported
            | EventKind::LinkImported
            | EventKind::GroupMemberInvited
            | EventKind::GroupMemberRemoved
            | EventKind::GroupLeft
            | EventKind::GroupMessageSent
            | EventKind::GroupDeleted
    )
}

/// Why a peer's event cannot be taken as it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// A kind that never crosses hubs.
    #[error("event kind {0} is not shipped between hubs")]
    NotShipped(EventKind),
    /// A field that names the wrong hub: the origin speaks for another hub's peer, or sends
    /// us something addressed elsewhere.
    #[error("{field} {value:?} {why}")]
    Misaddressed {
        /// The field.
        field: &'static str,
        /// Its value as shipped.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A field past its domain limit or with characters it may not hold.
    #[error("{field} is malformed or too long ({bytes} bytes)")]
    Malformed {
        /// The field.
        field: &'static str,
        /// Its length.
        bytes: usize,
    },
}

/// The hubs of one import: `origin` made the event, `local` is this hub.
#[derive(Clone, Copy, Debug)]
pub struct Translation<'a> {
    /// The authenticated origin hub.
    pub origin: &'a str,
    /// This hub.
    pub local: &'a str,
}

impl Translation<'_> {
    /// A name of one of the origin's own peers (no `@`), as this hub writes it.
    fn theirs(&self, field: &'static str, name: &str) -> Result<String, TranslateError> {
        if name.contains(HUB_SEPARATOR) {
            return Err(TranslateError::Misaddressed {
                field,
                value: name.to_owned(),
                why: "is not a peer of the origin hub",
            });
        }
        let qualified = format!("{name}{HUB_SEPARATOR}{}", self.origin);
        check_name(field, &qualified)?;
        Ok(qualified)
    }

    /// A name of one of our peers (`name@local`), as this hub writes it.
    fn ours(&self, field: &'static str, name: &str) -> Result<String, TranslateError> {
        match split_qualified(name) {
            Some((local, hub)) if hub == self.local && !local.contains(HUB_SEPARATOR) => {
                check_name(field, local)?;
                Ok(local.to_owned())
            }
            _ => Err(TranslateError::Misaddressed {
                field,
                value: name.to_owned(),
                why: "is not a peer of this hub",
            }),
        }
    }

    /// A name in a group the origin homes: the origin's peers gain `@origin`, ours lose
    /// `@local`, a third hub's stay as they are (the home hub speaks for its group's members).
    fn member(&self, field: &'static str, name: &str) -> Result<String, TranslateError> {
        match split_qualified(name) {
            None => self.theirs(field, name),
            Some(_) if hub_of(name) == Some(self.local) => self.ours(field, name),
            Some((local, hub)) if is_hub_id(hub) && !local.contains(HUB_SEPARATOR) => {
                check_name(field, name)?;
                Ok(name.to_owned())
            }
            Some(_) => Err(TranslateError::Malformed {
                field,
                bytes: name.len(),
            }),
        }
    }

    /// A group's name: one the origin homes (no `@`) gains `@origin` (`Home::Origin`: the event
    /// updates our copy); one of ours (`name@local`) loses it (`Home::Local`: one of the
    /// origin's members posts to or leaves our group).
    fn group(&self, name: &str) -> Result<(String, Home), TranslateError> {
        if name.contains(HUB_SEPARATOR) {
            let local = self.ours("group", name)?;
            Ok((local, Home::Local))
        } else {
            Ok((self.theirs("group", name)?, Home::Origin))
        }
    }

    /// An optional `reply_to`, which may name either hub's message ([`Translation::either_id`]).
    fn reply_to(&self, id: Option<&str>) -> Result<Option<String>, TranslateError> {
        id.map(|id| self.either_id("reply_to", id)).transpose()
    }

    /// The name of a group the origin homes (no `@`): only its home changes its members.
    fn origin_group(&self, name: &str) -> Result<String, TranslateError> {
        match self.group(name)? {
            (group, Home::Origin) => Ok(group),
            (_, Home::Local) => Err(TranslateError::Misaddressed {
                field: "group",
                value: name.to_owned(),
                why: "is homed on this hub: only its home hub changes its members",
            }),
        }
    }

    /// An id the origin made (no `@`), as this hub writes it.
    fn their_id(&self, field: &'static str, id: &str) -> Result<String, TranslateError> {
        if id.contains(HUB_SEPARATOR) {
            return Err(TranslateError::Misaddressed {
                field,
                value: id.to_owned(),
                why: "is not an id of the origin hub",
            });
        }
        let qualified = format!("{id}{HUB_SEPARATOR}{}", self.origin);
        check_id(field, &qualified)?;
        Ok(qualified)
    }

    /// An id this hub made (`id@local`), as this hub writes it.
    fn our_id(&self, field: &'static str, id: &str) -> Result<String, TranslateError> {
        match split_qualified(id) {
            Some((local, hub)) if hub == self.local => {
                check_id(field, local)?;
                Ok(local.to_owned())
            }
            _ => Err(TranslateError::Misaddressed {
                field,
                value: id.to_owned(),
                why: "is not an id of this hub",
            }),
        }
    }

    /// An id either hub made: ours lose their `@local`, the origin's gain `@origin`, a third
    /// hub's stay as they are.
    fn either_id(&self, field: &'static str, id: &str) -> Result<String, TranslateError> {
        match split_qualified(id) {
            Some((local, hub)) if hub == self.local => Ok(local.to_owned()),
            Some(_) => {
                check_id(field, id)?;
                Ok(id.to_owned())
            }
            None => self.their_id(field, id),
        }
    }
}

/// Which hub homes the group of a shipped group event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Home {
    /// The origin: the event changes our copy of its group.
    Origin,
    /// This hub: the origin forwards one of its members' posts or departures.
    Local,
}

/// The longest id after translation: an id of [`ID_BYTES_MAX`] plus `@hub` (a client's
/// `reply_to` may be that long; ids the hubs choose are far shorter).
pub const QUALIFIED_ID_BYTES_MAX: usize = ID_BYTES_MAX + 1 + HUB_ID_BYTES_MAX;

fn check_name(field: &'static str, name: &str) -> Result<(), TranslateError> {
    let well_formed = !name.is_empty()
        && name.len() <= QUALIFIED_NAME_BYTES_MAX
        && name
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || "._@-".contains(character));
    if well_formed {
        Ok(())
    } else {
        Err(TranslateError::Malformed {
            field,
            bytes: name.len(),
        })
    }
}

fn check_id(field: &'static str, id: &str) -> Result<(), TranslateError> {
    if !id.is_empty() && id.len() <= QUALIFIED_ID_BYTES_MAX && !id.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(TranslateError::Malformed {
            field,
            bytes: id.len(),
        })
    }
}

fn check_text(field: &'static str, text: &str) -> Result<(), TranslateError> {
    if text.len() <= TEXT_BYTES_MAX {
        Ok(())
    } else {
        Err(TranslateError::Malformed {
            field,
            bytes: text.len(),
        })
    }
}

fn thread(thread: Option<&String>) -> Result<Option<String>, TranslateError> {
    thread
        .map(|thread| check_id("thread", thread).map(|()| thread.clone()))
        .transpose()
}

/// A peer's event as this hub applies it (see the module docs), or why it cannot be.
///
/// # Errors
/// [`TranslateError`]: a kind that is not shipped, a field naming the wrong hub, or a field past
/// its limit.
pub fn translate(hubs: Translation<'_>, event: &Event) -> Result<Event, TranslateError> {
    let translated: Event = match event {
        Event::MessageSent(event) => {
            check_text("text", &event.body)?;
            MessageSent {
                id: hubs.their_id("id", &event.id)?,
                from: hubs.theirs("from", &event.from)?,
                to: hubs.ours("to", &event.to)?,
                body: event.body.clone(),
                reply_to: hubs.reply_to(event.reply_to.as_deref())?,
                urgent: event.urgent,
                thread: thread(event.thread.as_ref())?,
            }
            .into()
        }
        Event::AskSent(event) => {
            check_text("text", &event.body)?;
            AskSent {
                id: hubs.their_id("id", &event.id)?,
                ask_id: hubs.their_id("ask_id", &event.ask_id)?,
                from: hubs.theirs("from", &event.from)?,
                to: hubs.ours("to", &event.to)?,
                body: event.body.clone(),
                // Broadcasts stay on their hub: a broadcast ask arrives as a plain ask.
                broadcast_id: None,
                urgent: event.urgent,
                thread: thread(event.thread.as_ref())?,
            }
            .into()
        }
        Event::ReplySent(event) => {
            check_text("text", &event.body)?;
            ReplySent {
                id: hubs.their_id("id", &event.id)?,
                from: hubs.theirs("from", &event.from)?,
                to: hubs.ours("to", &event.to)?,
                body: event.body.clone(),
                reply_to: hubs.either_id("reply_to", &event.reply_to)?,
                urgent: event.urgent,
                thread: thread(event.thread.as_ref())?,
            }
            .into()
        }
        Event::MessagePushed(event) => MessagePushed {
            recipient: hubs.theirs("recipient", &event.recipient)?,
            message_id: hubs.our_id("message_id", &event.message_id)?,
        }
        .into(),
        Event::MessageRead(event) => MessageRead {
            recipient: hubs.theirs("recipient", &event.recipient)?,
            message_id: hubs.our_id("message_id", &event.message_id)?,
        }
        .into(),
        Event::MessageStatusReported(event) => MessageStatusReported {
            recipient: hubs.theirs("recipient", &event.recipient)?,
            message_id: hubs.our_id("message_id", &event.message_id)?,
            status: {
                check_id("status", &event.status)?;
                event.status.clone()
            },
        }
        .into(),
        Event::LinkImported(refusal) => refused_delivery(hubs, refusal)?,
        Event::GroupMessageSent(event) => {
            check_text("text", &event.body)?;
            let (group, home) = hubs.group(&event.group)?;
            let from = match home {
                Home::Origin => hubs.member("from", &event.from)?,
                Home::Local => hubs.theirs("from", &event.from)?,
            };
            GroupMessageSent {
                group,
                id: hubs.their_id("id", &event.id)?,
                from,
                body: event.body.clone(),
                reply_to: hubs.reply_to(event.reply_to.as_deref())?,
                urgent: event.urgent,
            }
            .into()
        }
        Event::GroupLeft(event) => {
            let (group, home) = hubs.group(&event.group)?;
            let member = match home {
                Home::Origin => hubs.member("member", &event.member)?,
                Home::Local => hubs.theirs("member", &event.member)?,
            };
            GroupLeft { group, member }.into()
        }
        Event::GroupMemberInvited(event) => GroupMemberInvited {
            group: hubs.origin_group(&event.group)?,
            actor: hubs.member("actor", &event.actor)?,
            member: hubs.member("member", &event.member)?,
        }
        .into(),
        Event::GroupMemberRemoved(event) => {
            check_text("reason", &event.reason)?;
            GroupMemberRemoved {
                group: hubs.origin_group(&event.group)?,
                actor: hubs.member("actor", &event.actor)?,
                member: hubs.member("member", &event.member)?,
                reason: event.reason.clone(),
            }
            .into()
        }
        Event::GroupDeleted(event) => GroupDeleted {
            group: hubs.origin_group(&event.group)?,
            actor: hubs.member("actor", &event.actor)?,
        }
        .into(),
        other => return Err(TranslateError::NotShipped(other.kind())),
    };
    Ok(translated)
}

/// Whether a translated event changes this hub's copy of a group another hub homes (its group
/// name carries that hub's `@`). A translated group event without one is a post or departure
/// the origin forwards to a group homed here, which this hub orders and ships on itself.
pub fn is_replica_update(translated: &Event) -> bool {
    group_of(translated).is_some_and(|group| group.contains(HUB_SEPARATOR))
}

/// Whether a translated event is an origin's member posting to or leaving a group homed here.
pub fn is_group_submission(translated: &Event) -> bool {
    group_of(translated).is_some_and(|group| !group.contains(HUB_SEPARATOR))
}

/// The status of a delivery this hub sent that the other hub refused to take (an unknown
/// recipient, a full mailbox): the message is reported `refused` to its sender here.
fn refused_delivery(
    hubs: Translation<'_>,
    refusal: &LinkImported,
) -> Result<Event, TranslateError> {
    let misaddressed = |field, value: &str, why| TranslateError::Misaddressed {
        field,
        value: value.to_owned(),
        why,
    };
    if refusal.refused.is_none() {
        return Err(TranslateError::NotShipped(EventKind::LinkImported));
    }
    if refusal.origin_hub != hubs.local {
        return Err(misaddressed(
            "origin_hub",
            &refusal.origin_hub,
            "is not this hub",
        ));
    }
    if refusal.local_hub != hubs.origin {
        return Err(misaddressed(
            "local_hub",
            &refusal.local_hub,
            "is not the refusing hub",
        ));
    }
    let ours = decode(refusal.kind, refusal.schema_version, &refusal.payload).map_err(|_| {
        TranslateError::Malformed {
            field: "payload",
            bytes: refusal.payload.len(),
        }
    })?;
    let (id, to) = match &ours {
        Event::MessageSent(event) => (&event.id, &event.to),
        Event::AskSent(event) => (&event.id, &event.to),
        Event::ReplySent(event) => (&event.id, &event.to),
        other => return Err(TranslateError::NotShipped(other.kind())),
    };
    if hub_of(to) != Some(hubs.origin) {
        return Err(misaddressed("to", to, "is not a peer of the refusing hub"));
    }
    if id.contains(HUB_SEPARATOR) {
        return Err(misaddressed("id", id, "is not an id of this hub"));
    }
    Ok(MessageStatusReported {
        recipient: to.clone(),
        message_id: id.clone(),
        status: REFUSED_BY_HUB.to_owned(),
    }
    .into())
}

/// The status a delivery gets when the other hub refused to take it.
pub const REFUSED_BY_HUB: &str = "refused";

#[cfg(test)]
mod tests {
    use super::*;

    const HUBS: Translation<'static> = Translation {
        origin: "a",
        local: "b",
    };

    fn sent(from: &str, to: &str, id: &str) -> Event {
        MessageSent {
            id: id.into(),
            from: from.into(),
            to: to.into(),
            body: "hi".into(),
            reply_to: Some("m-7@b".into()),
            urgent: false,
            thread: None,
        }
        .into()
    }

    #[test]
    fn a_message_from_a_reads_on_b_with_qualified_sender_and_local_recipient() {
        let Event::MessageSent(message) =
            translate(HUBS, &sent("alice", "bob@b", "m-42")).expect("translates")
        else {
            panic!("kind changed");
        };
        assert_eq!(message.from, "alice@a");
        assert_eq!(message.to, "bob");
        assert_eq!(message.id, "m-42@a");
        assert_eq!(message.reply_to.as_deref(), Some("m-7"));
    }

    #[test]
    fn the_origin_speaks_only_for_its_own_peers_and_only_to_ours() {
        for (from, to) in [("carol@c", "bob@b"), ("alice", "bob"), ("alice", "bob@c")] {
            assert!(
                matches!(
                    translate(HUBS, &sent(from, to, "m-1")),
                    Err(TranslateError::Misaddressed { .. })
                ),
                "{from} -> {to}"
            );
        }
        assert!(translate(HUBS, &sent("alice", "bob@b", "m-1@b")).is_err());
    }

    #[test]
    fn receipts_name_our_message_and_their_recipient() {
        let pushed: Event = MessagePushed {
            recipient: "bob".into(),
            message_id: "m-42@b".into(),
        }
        .into();
        let Event::MessagePushed(pushed) = translate(HUBS, &pushed).expect("translates") else {
            panic!("kind changed");
        };
        assert_eq!(
            (pushed.recipient.as_str(), pushed.message_id.as_str()),
            ("bob@a", "m-42")
        );
    }

    #[test]
    fn destination_follows_the_recipient_or_the_message_origin() {
        assert_eq!(destination(&sent("alice", "bob@b", "m-1")), Some("b"));
        assert_eq!(destination(&sent("alice", "bob", "m-1")), None);
        let read: Event = MessageRead {
            recipient: "bob".into(),
            message_id: "m-9@c".into(),
        }
        .into();
        assert_eq!(destination(&read), Some("c"));
    }

    #[test]
    fn overlong_names_and_texts_are_refused() {
        let long = "x".repeat(QUALIFIED_NAME_BYTES_MAX);
        assert!(matches!(
            translate(HUBS, &sent(&long, "bob@b", "m-1")),
            Err(TranslateError::Malformed { .. })
        ));
    }
}
