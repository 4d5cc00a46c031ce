//! Property tests: random command sequences from a handful of sessions, turned into valid events
//! by a driver that checks each command against the state as the hub would.
//!
//! For every sequence:
//! - the state built event by event equals the state rebuilt from the encoded events
//!   (encode → decode → apply), and equals snapshot + tail for any cut point;
//! - group rings never exceed their limits; a mailbox keeps every message the reference model
//!   has as unread (a send to a full mailbox is refused instead, as the hub does) and at most
//!   its bound of read ones;
//! - unread counts equal the messages after the cursor, per mailbox and per group member;
//! - no member sees a group message from before it joined;
//! - an arbitrary (often invalid) event either applies or leaves the state unchanged;
//! - a replay gives the same outcome however it splits decoding and applying between threads,
//!   with batches, damage, events that do not apply and stops in the middle.

use std::collections::BTreeMap;

use proptest::prelude::*;
use relay_log::{Corruption, DamageKind, Record};
use relay_replay::event::*;
use relay_replay::limits::{
    GROUP_MESSAGES_MAX, MAILBOX_READ_BYTES_MAX, MAILBOX_READ_MAX, MAILBOX_UNREAD_BYTES_MAX,
};
use relay_replay::{
    DeliveryState, Encoded, Event, IdentityId, Pipeline, RecordMeta, State, Until, apply, decode,
    encode, replay_into_with, snapshot_decode, snapshot_encode,
};

use crate::support::TestLog;

const SESSIONS: usize = 5;
const GROUPS: [&str; 3] = ["core", "ops", "release"];
const ROOMS: [&str; 2] = ["lobby", "war-room"];

/// What a session asks the hub to do. Indices pick sessions, groups, rooms or messages modulo
/// what exists, so every generated command means something.
#[derive(Clone, Debug)]
enum Command {
    Register(usize),
    Rename(usize),
    Leave(usize),
    Send {
        from: usize,
        to: usize,
        count: usize,
        body_bytes: usize,
    },
    Ask {
        from: usize,
        to: usize,
    },
    Broadcast(usize),
    Reply {
        session: usize,
        pick: usize,
    },
    Push {
        session: usize,
        pick: usize,
    },
    /// The client reports a message refused or expired: unread again.
    Return {
        session: usize,
        pick: usize,
    },
    ReadInbox {
        session: usize,
        limit: usize,
    },
    JoinRoom {
        session: usize,
        room: usize,
    },
    LeaveRoom {
        session: usize,
        room: usize,
    },
    PostRoom {
        session: usize,
        room: usize,
    },
    CreateGroup {
        session: usize,
        group: usize,
    },
    Invite {
        session: usize,
        group: usize,
        member: usize,
    },
    Remove {
        session: usize,
        group: usize,
        member: usize,
    },
    LeaveGroup {
        session: usize,
        group: usize,
    },
    GroupSend {
        session: usize,
        group: usize,
        count: usize,
    },
    ReadGroup {
        session: usize,
        group: usize,
        limit: usize,
    },
    DeleteGroup {
        session: usize,
        group: usize,
    },
    HubRestart,
}

fn command() -> impl Strategy<Value = Command> {
    let s = || 0..SESSIONS;
    let g = || 0..GROUPS.len();
    let r = || 0..ROOMS.len();
    prop_oneof![
        3 => s().prop_map(Command::Register),
        1 => s().prop_map(Command::Rename),
        1 => s().prop_map(Command::Leave),
        4 => (s(), s(), prop_oneof![4 => Just(1usize), 1 => 1..700usize], body_bytes())
            .prop_map(|(from, to, count, body_bytes)| Command::Send { from, to, count, body_bytes }),
        2 => (s(), s()).prop_map(|(from, to)| Command::Ask { from, to }),
        1 => s().prop_map(Command::Broadcast),
        2 => (s(), any::<usize>()).prop_map(|(session, pick)| Command::Reply { session, pick }),
        2 => (s(), any::<usize>()).prop_map(|(session, pick)| Command::Push { session, pick }),
        1 => (s(), any::<usize>()).prop_map(|(session, pick)| Command::Return { session, pick }),
        2 => (s(), 1..600usize).prop_map(|(session, limit)| Command::ReadInbox { session, limit }),
        1 => (s(), r()).prop_map(|(session, room)| Command::JoinRoom { session, room }),
        1 => (s(), r()).prop_map(|(session, room)| Command::LeaveRoom { session, room }),
        1 => (s(), r()).prop_map(|(session, room)| Command::PostRoom { session, room }),
        1 => (s(), g()).prop_map(|(session, group)| Command::CreateGroup { session, group }),
        3 => (s(), g(), s())
            .prop_map(|(session, group, member)| Command::Invite { session, group, member }),
        1 => (s(), g(), s())
            .prop_map(|(session, group, member)| Command::Remove { session, group, member }),
        1 => (s(), g()).prop_map(|(session, group)| Command::LeaveGroup { session, group }),
        3 => (s(), g(), prop_oneof![4 => Just(1usize), 1 => 1..700usize])
            .prop_map(|(session, group, count)| Command::GroupSend { session, group, count }),
        2 => (s(), g(), 1..600usize)
            .prop_map(|(session, group, limit)| Command::ReadGroup { session, group, limit }),
        1 => (s(), g()).prop_map(|(session, group)| Command::DeleteGroup { session, group }),
        1 => Just(Command::HubRestart),
    ]
}

/// Text sizes of sent messages: mostly short, sometimes large enough that a few hundred unread
/// ones reach the mailbox's text budget (and a few hundred read ones its read budget).
fn body_bytes() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 1..64usize, 1 => Just(MAILBOX_UNREAD_BYTES_MAX / 1000)]
}

/// The reference model's view of one group: every message ever written (not only the kept ring),
/// and each member's join point, in the model's own numbering.
#[derive(Default)]
struct GroupModel {
    /// Author session per message (`None` for system messages), oldest first, never evicted.
    messages: Vec<Option<usize>>,
    /// Session → number of messages that existed when it joined.
    joined_after: BTreeMap<usize, usize>,
}

/// Turns commands into valid events, applying them to a [`TestLog`], and keeps a plain model.
struct Driver {
    log: TestLog,
    /// Current name per session, once registered.
    names: [Option<String>; SESSIONS],
    ids: [Option<IdentityId>; SESSIONS],
    renames: usize,
    next_id: usize,
    /// Model: message ids each session received, oldest first, never evicted; the message at
    /// index `i` has sequence `i + 1` in its mailbox.
    received: [Vec<String>; SESSIONS],
    /// Model: indices into `received` of the messages read (and not returned since).
    read: [std::collections::BTreeSet<usize>; SESSIONS],
    /// Model: the read cursor of each mailbox.
    cursors: [u64; SESSIONS],
    groups: BTreeMap<&'static str, GroupModel>,
}

impl Driver {
    fn new() -> Driver {
        Driver {
            log: TestLog::new(),
            names: Default::default(),
            ids: [None; SESSIONS],
            renames: 0,
            next_id: 0,
            received: Default::default(),
            read: Default::default(),
            cursors: [0; SESSIONS],
            groups: BTreeMap::new(),
        }
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }

    fn name(&self, session: usize) -> Option<String> {
        self.names[session].clone()
    }

    fn session_of(&self, id: IdentityId) -> usize {
        self.ids
            .iter()
            .position(|known| *known == Some(id))
            .expect("known identity")
    }

    fn emit(&mut self, event: impl Into<Event>) {
        self.log.ok(event);
    }

    fn run(&mut self, command: &Command) {
        match *command {
            Command::Register(session) => self.register(session),
            Command::Rename(session) => {
                let Some(old_name) = self.name(session) else {
                    return;
                };
                self.renames += 1;
                let new_name = format!("s{session}-r{}", self.renames);
                self.emit(IdentityRenamed {
                    old_name,
                    new_name: new_name.clone(),
                });
                self.names[session] = Some(new_name);
            }
            Command::Leave(session) => {
                let Some(name) = self.name(session) else {
                    return;
                };
                self.emit(IdentityLeft { name });
            }
            Command::Send {
                from,
                to,
                count,
                body_bytes,
            } => {
                for _ in 0..count {
                    self.send(from, to, body_bytes);
                }
            }
            Command::Ask { from, to } => self.ask(from, to, None),
            Command::Broadcast(from) => {
                let broadcast_id = self.fresh("b");
                for to in 0..SESSIONS {
                    if to != from {
                        self.ask(from, to, Some(broadcast_id.clone()));
                    }
                }
            }
            Command::Reply { session, pick } => self.reply(session, pick),
            Command::Push { session, pick } => self.push(session, pick),
            Command::Return { session, pick } => self.return_message(session, pick),
            Command::ReadInbox { session, limit } => self.read_inbox(session, limit),
            Command::JoinRoom { session, room } => {
                let Some(name) = self.name(session) else {
                    return;
                };
                self.emit(RoomJoined {
                    room: ROOMS[room].into(),
                    name,
                });
            }
            Command::LeaveRoom { session, room } => self.leave_room(session, room),
            Command::PostRoom { session, room } => self.post_room(session, room),
            Command::CreateGroup { session, group } => self.create_group(session, group),
            Command::Invite {
                session,
                group,
                member,
            } => self.invite(session, group, member),
            Command::Remove {
                session,
                group,
                member,
            } => self.remove(session, group, member),
            Command::LeaveGroup { session, group } => self.leave_group(session, group),
            Command::GroupSend {
                session,
                group,
                count,
            } => {
                for _ in 0..count {
                    self.group_send(session, group);
                }
            }
            Command::ReadGroup {
                session,
                group,
                limit,
            } => self.read_group(session, group, limit),
            Command::DeleteGroup { session, group } => {
                let (Some(actor), Some(id)) = (self.name(session), self.ids[session]) else {
                    return;
                };
                let name = GROUPS[group];
                if self.log.state.group(name).is_none_or(|g| g.admin() != id) {
                    return;
                }
                self.emit(GroupDeleted {
                    group: name.into(),
                    actor,
                });
                self.groups.remove(name);
            }
            Command::HubRestart => self.emit(HubStarted {
                hub_id: crate::support::HUB,
                version: "test".into(),
            }),
        }
    }

    fn register(&mut self, session: usize) {
        let name = self.name(session).unwrap_or_else(|| format!("s{session}"));
        self.emit(IdentityRegistered {
            name: name.clone(),
            cwd: format!("/work/s{session}"),
            git_branch: session.is_multiple_of(2).then(|| "main".into()),
            client: ClientKind::Cli,
        });
        self.ids[session] = self
            .log
            .state
            .identity_by_name(&name)
            .map(|identity| identity.id);
        self.names[session] = Some(name);
    }

    /// Whether `to`'s mailbox has room for `body_bytes` of text; when it has not, logs the
    /// refusal as the hub does (within the sender's allowance) and says no.
    fn has_room(&mut self, from_name: &str, to: usize, body_bytes: usize) -> bool {
        let (Some(to_name), Some(to_id)) = (self.name(to), self.ids[to]) else {
            return false;
        };
        let mailbox = self.log.state.mailbox(to_id).expect("mailbox");
        if mailbox.check_room(body_bytes).is_ok() {
            return true;
        }
        if mailbox.refusals().counts_one_more(from_name) {
            self.emit(MessageRefused {
                from: from_name.to_owned(),
                to: to_name,
                body_bytes: body_bytes as u64,
            });
        }
        false
    }

    fn send(&mut self, from: usize, to: usize, body_bytes: usize) {
        let (Some(from_name), Some(to_name)) = (self.name(from), self.name(to)) else {
            return;
        };
        if !self.has_room(&from_name, to, body_bytes) {
            return;
        }
        let id = self.fresh("m");
        self.emit(MessageSent {
            id: id.clone(),
            from: from_name,
            to: to_name,
            body: "b".repeat(body_bytes),
            reply_to: None,
            urgent: id.len().is_multiple_of(2),
            thread: None,
        });
        self.received[to].push(id);
    }

    fn ask(&mut self, from: usize, to: usize, broadcast_id: Option<String>) {
        let (Some(from_name), Some(to_name)) = (self.name(from), self.name(to)) else {
            return;
        };
        if !self.has_room(&from_name, to, "status?".len()) {
            return;
        }
        let id = self.fresh("m");
        let ask_id = self.fresh("a");
        self.emit(AskSent {
            id: id.clone(),
            ask_id,
            from: from_name,
            to: to_name,
            body: "status?".into(),
            broadcast_id,
            urgent: false,
            thread: Some("standup".into()),
        });
        self.received[to].push(id);
    }

    fn reply(&mut self, session: usize, pick: usize) {
        let (Some(name), Some(id)) = (self.name(session), self.ids[session]) else {
            return;
        };
        let state = &self.log.state;
        let messages = state.mailbox(id).expect("mailbox").all(None, usize::MAX);
        let Some(message) = messages.get(pick % messages.len().max(1)) else {
            return;
        };
        let pending = message
            .ask_id()
            .and_then(|ask_id| state.pending_ask(ask_id));
        let reply_to = match pending {
            Some(ask) if ask.target == id => ask.ask_id.clone(),
            _ => message.id().into_owned(),
        };
        let to_session = self.session_of(message.from());
        let Some(to) = self.name(to_session) else {
            return;
        };
        if !self.has_room(&name, to_session, "done".len()) {
            return;
        }
        let reply_id = self.fresh("m");
        self.emit(ReplySent {
            id: reply_id.clone(),
            from: name,
            to,
            body: "done".into(),
            reply_to,
            urgent: false,
            thread: None,
        });
        self.received[to_session].push(reply_id);
    }

    fn push(&mut self, session: usize, pick: usize) {
        let (Some(recipient), Some(id)) = (self.name(session), self.ids[session]) else {
            return;
        };
        let messages = self
            .log
            .state
            .mailbox(id)
            .expect("mailbox")
            .all(None, usize::MAX);
        let Some(message) = messages.get(pick % messages.len().max(1)) else {
            return;
        };
        let message_id = message.id().into_owned();
        // Half the acknowledgements say the model has it (a native push), half only that
        // the session took it (a channel notification).
        if pick.is_multiple_of(2) {
            self.emit(MessagePushed {
                recipient,
                message_id,
            });
        } else {
            let index = self.index_of(session, &message_id);
            self.emit(MessageRead {
                recipient,
                message_id,
            });
            self.read[session].insert(index);
        }
    }

    /// The position of a received message in the model.
    fn index_of(&self, session: usize, message_id: &str) -> usize {
        self.received[session]
            .iter()
            .position(|id| id == message_id)
            .expect("a kept message was received")
    }

    fn return_message(&mut self, session: usize, pick: usize) {
        let (Some(recipient), Some(id)) = (self.name(session), self.ids[session]) else {
            return;
        };
        let messages = self
            .log
            .state
            .mailbox(id)
            .expect("mailbox")
            .all(None, usize::MAX);
        let Some(message) = messages.get(pick % messages.len().max(1)) else {
            return;
        };
        let message_id = message.id().into_owned();
        let index = self.index_of(session, &message_id);
        self.emit(MessageStatusReported {
            recipient,
            message_id,
            status: "expired".into(),
        });
        // Unread again unless the cursor passed it.
        if index as u64 + 1 > self.cursors[session] {
            self.read[session].remove(&index);
        }
    }

    fn read_inbox(&mut self, session: usize, limit: usize) {
        let (Some(recipient), Some(id)) = (self.name(session), self.ids[session]) else {
            return;
        };
        let unread = self
            .log
            .state
            .mailbox(id)
            .expect("mailbox")
            .unread(None, limit);
        let Some(last) = unread.last() else { return };
        let up_to_sequence = last.sequence();
        self.emit(MailboxCursorAdvanced {
            recipient,
            up_to_sequence,
        });
        self.read[session].extend(0..up_to_sequence as usize);
        self.cursors[session] = up_to_sequence;
    }

    fn leave_room(&mut self, session: usize, room: usize) {
        let (Some(name), Some(id)) = (self.name(session), self.ids[session]) else {
            return;
        };
        if self
            .log
            .state
            .room(ROOMS[room])
            .is_some_and(|r| r.is_member(id))
        {
            self.emit(RoomLeft {
                room: ROOMS[room].into(),
                name,
            });
        }
    }

    fn post_room(&mut self, session: usize, room: usize) {
        let (Some(from), Some(id)) = (self.name(session), self.ids[session]) else {
            return;
        };
        if self
            .log
            .state
            .room(ROOMS[room])
            .is_some_and(|r| r.is_member(id))
        {
            let message_id = self.fresh("r");
            self.emit(RoomMessageSent {
                room: ROOMS[room].into(),
                id: message_id,
                from,
                body: "hi".into(),
            });
        }
    }

    fn create_group(&mut self, session: usize, group: usize) {
        let Some(admin) = self.name(session) else {
            return;
        };
        let name = GROUPS[group];
        if self.log.state.group(name).is_some() {
            return;
        }
        self.emit(GroupCreated {
            group: name.into(),
            admin,
        });
        let model = GroupModel {
            joined_after: BTreeMap::from([(session, 0)]),
            ..Default::default()
        };
        self.groups.insert(name, model);
    }

    fn invite(&mut self, session: usize, group: usize, member: usize) {
        let (Some(actor), Some(id)) = (self.name(session), self.ids[session]) else {
            return;
        };
        let (Some(member_name), Some(member_id)) = (self.name(member), self.ids[member]) else {
            return;
        };
        let name = GROUPS[group];
        let Some(found) = self.log.state.group(name) else {
            return;
        };
        if found.admin() != id || found.is_member(member_id) {
            return;
        }
        self.emit(GroupMemberInvited {
            group: name.into(),
            actor,
            member: member_name,
        });
        let model = self.groups.get_mut(name).expect("modelled group");
        model.joined_after.insert(member, model.messages.len());
    }

    fn remove(&mut self, session: usize, group: usize, member: usize) {
        let (Some(actor), Some(id)) = (self.name(session), self.ids[session]) else {
            return;
        };
        let (Some(member_name), Some(member_id)) = (self.name(member), self.ids[member]) else {
            return;
        };
        let name = GROUPS[group];
        let Some(found) = self.log.state.group(name) else {
            return;
        };
        if found.admin() != id || !found.is_member(member_id) || member_id == id {
            return;
        }
        self.emit(GroupMemberRemoved {
            group: name.into(),
            actor,
            member: member_name,
            reason: "test".into(),
        });
        let model = self.groups.get_mut(name).expect("modelled group");
        model.joined_after.remove(&member);
        model.messages.push(None);
    }

    fn leave_group(&mut self, session: usize, group: usize) {
        let (Some(member), Some(id)) = (self.name(session), self.ids[session]) else {
            return;
        };
        let name = GROUPS[group];
        let Some(found) = self.log.state.group(name) else {
            return;
        };
        if !found.is_member(id) {
            return;
        }
        let was_admin = found.admin() == id;
        self.emit(GroupLeft {
            group: name.into(),
            member,
        });
        let model = self.groups.get_mut(name).expect("modelled group");
        model.joined_after.remove(&session);
        if model.joined_after.is_empty() {
            self.groups.remove(name);
        } else {
            model.messages.push(None);
            if was_admin {
                model.messages.push(None);
            }
        }
    }

    fn group_send(&mut self, session: usize, group: usize) {
        let (Some(from), Some(id)) = (self.name(session), self.ids[session]) else {
            return;
        };
        let name = GROUPS[group];
        if !self.log.state.group(name).is_some_and(|g| g.is_member(id)) {
            return;
        }
        let message_id = self.fresh("g");
        self.emit(GroupMessageSent {
            group: name.into(),
            id: message_id,
            from,
            body: "update".into(),
            reply_to: None,
            urgent: false,
        });
        self.groups
            .get_mut(name)
            .expect("modelled group")
            .messages
            .push(Some(session));
    }

    fn read_group(&mut self, session: usize, group: usize, limit: usize) {
        let (Some(member), Some(id)) = (self.name(session), self.ids[session]) else {
            return;
        };
        let name = GROUPS[group];
        let Some(found) = self.log.state.group(name) else {
            return;
        };
        let Some(last) = found.history_for(id, limit).last().map(|m| m.sequence) else {
            return;
        };
        self.emit(GroupCursorAdvanced {
            group: name.into(),
            member,
            up_to_sequence: last,
        });
    }

    /// Checks the state against the reference model and the ring and cursor invariants.
    fn check_invariants(&self) {
        let state = &self.log.state;
        assert_eq!(
            state.bytes(),
            state.recount_bytes(),
            "byte count equals its recount"
        );
        for session in 0..SESSIONS {
            let Some(id) = self.ids[session] else {
                continue;
            };
            let mailbox = state.mailbox(id).expect("mailbox");
            // Every message the model has as unread is kept, and nothing else is unread.
            let received = &self.received[session];
            let expected: Vec<String> = (0..received.len())
                .filter(|index| !self.read[session].contains(index))
                .map(|index| received[index].clone())
                .collect();
            let unread: Vec<String> = mailbox
                .unread(None, usize::MAX)
                .iter()
                .map(|m| m.id().into_owned())
                .collect();
            assert_eq!(unread, expected, "unread mail is never dropped");
            let kept: Vec<String> = mailbox.messages().map(|m| m.id().into_owned()).collect();
            assert!(
                kept.iter().all(|id| received.contains(id)),
                "only received messages are kept"
            );
            assert!(mailbox.read_count() <= MAILBOX_READ_MAX);
            assert!(mailbox.read_bytes() <= MAILBOX_READ_BYTES_MAX as u64);
            let unread_bytes: u64 = mailbox
                .messages()
                .filter(|m| m.state() != DeliveryState::Read)
                .map(|m| m.body().len() as u64)
                .sum();
            assert_eq!(mailbox.unread_bytes(), unread_bytes);
            let after_cursor = mailbox
                .messages()
                .filter(|m| m.sequence() > mailbox.cursor() && m.state() != DeliveryState::Read)
                .count();
            assert_eq!(mailbox.unread_count(), after_cursor);
            // Everything up to the cursor is read; after it, a message may be read on its own.
            assert!(
                mailbox
                    .messages()
                    .all(|m| m.sequence() > mailbox.cursor() || m.state() == DeliveryState::Read)
            );
        }
        let names: Vec<&str> = state.groups().map(|g| g.name()).collect();
        assert_eq!(names, self.groups.keys().copied().collect::<Vec<_>>());
        for (name, model) in &self.groups {
            self.check_group(state, name, model);
        }
    }

    fn check_group(&self, state: &State, name: &str, model: &GroupModel) {
        let group = state.group(name).expect("modelled group exists");
        assert!(group.messages().len() <= GROUP_MESSAGES_MAX);
        assert_eq!(group.last_sequence(), model.messages.len() as u64);
        let members: Vec<usize> = group.members().map(|id| self.session_of(id)).collect();
        assert_eq!(
            members,
            model.joined_after.keys().copied().collect::<Vec<_>>()
        );
        for (&session, &joined_after) in &model.joined_after {
            let id = self.ids[session].expect("member is registered");
            let visible = group.visible_for(id, usize::MAX);
            // The model numbers messages 1.. like the group: visible = after join, still kept.
            let first_kept = model.messages.len().saturating_sub(GROUP_MESSAGES_MAX);
            let expected: Vec<u64> =
                ((joined_after.max(first_kept) + 1) as u64..=model.messages.len() as u64).collect();
            let seen: Vec<u64> = visible.iter().map(|m| m.sequence).collect();
            assert_eq!(
                seen, expected,
                "member sees exactly the kept messages after its join"
            );
            let cursor = group.membership(id).expect("member").cursor;
            assert!(cursor >= joined_after as u64);
            let unread = (cursor.max(first_kept as u64) as usize..model.messages.len())
                .filter(|&index| model.messages[index] != Some(session))
                .count();
            assert_eq!(
                group.unread_for(id),
                unread,
                "unread = messages after the cursor"
            );
        }
    }
}

/// Folds `records` into a fresh state through the codec, as `relay replay` would from the log.
fn rebuild(records: &[(RecordMeta, Event)], mut state: State) -> State {
    for (meta, event) in records {
        let encoded = encode(event);
        let decoded = decode(encoded.kind, encoded.schema_version, &encoded.payload)
            .expect("encoded event decodes");
        assert_eq!(&decoded, event);
        apply(&mut state, *meta, &decoded).expect("replayed event applies");
    }
    state
}

fn commands() -> impl Strategy<Value = Vec<Command>> {
    // Sessions register first most of the time, so later commands have someone to act on.
    let registrations = Just((0..SESSIONS).map(Command::Register).collect::<Vec<_>>());
    (registrations, proptest::collection::vec(command(), 0..120)).prop_map(|(mut first, rest)| {
        first.extend(rest);
        first
    })
}

/// An event over the same small name pools, often invalid for the current state.
fn arbitrary_event() -> impl Strategy<Value = Event> {
    let name = || {
        prop_oneof![
            (0..SESSIONS).prop_map(|s| format!("s{s}")),
            Just("ghost".to_string())
        ]
    };
    let group = || (0..GROUPS.len()).prop_map(|g| GROUPS[g].to_string());
    prop_oneof![
        (name(), name())
            .prop_map(|(old_name, new_name)| IdentityRenamed { old_name, new_name }.into()),
        (name(), 0..5u64).prop_map(|(recipient, up_to_sequence)| MailboxCursorAdvanced {
            recipient,
            up_to_sequence
        }
        .into()),
        (name(), 0..20usize).prop_map(|(recipient, n)| MessagePushed {
            recipient,
            message_id: format!("m-{n}")
        }
        .into()),
        (name(), name(), 0..20usize).prop_map(|(from, to, n)| ReplySent {
            id: format!("m-{n}"),
            from,
            to,
            body: String::new(),
            reply_to: format!("a-{n}"),
            urgent: false,
            thread: None,
        }
        .into()),
        (name(), name(), 0..20usize, 0..3usize).prop_map(|(from, to, n, b)| AskSent {
            id: format!("m-{n}"),
            ask_id: format!("a-{n}"),
            from,
            to,
            body: String::new(),
            broadcast_id: Some(format!("b-{b}")),
            urgent: false,
            thread: None,
        }
        .into()),
        (group(), name(), name()).prop_map(|(group, actor, member)| GroupMemberInvited {
            group,
            actor,
            member
        }
        .into()),
        (group(), name(), name()).prop_map(|(group, actor, member)| GroupMemberRemoved {
            group,
            actor,
            member,
            reason: "x".into()
        }
        .into()),
        (group(), name()).prop_map(|(group, member)| GroupLeft { group, member }.into()),
        (group(), name(), 0..5u64).prop_map(|(group, member, up_to_sequence)| {
            GroupCursorAdvanced {
                group,
                member,
                up_to_sequence,
            }
            .into()
        }),
        (group(), name()).prop_map(|(group, actor)| GroupDeleted { group, actor }.into()),
        (group(), name()).prop_map(|(group, admin)| GroupCreated { group, admin }.into()),
        (name(), name()).prop_map(|(room, name)| RoomLeft { room, name }.into()),
        (0..3u64, 0..3u128)
            .prop_map(|(offset, peer_hub)| PeerAcknowledged { peer_hub, offset }.into()),
    ]
}

/// What one replay through [`replay_into_with`] came to: its outcome (the error as text),
/// the state, the offsets `observe` saw, and the records left unread in the iterator.
type Replayed = (
    Result<relay_replay::ReplayStats, String>,
    State,
    Vec<u64>,
    usize,
);

/// Replays `records` (consecutive offsets; `Err` entries are damage) with `pipeline`.
fn replay_split(
    records: &[(u64, Result<Encoded, ()>)],
    until: Until,
    pipeline: Pipeline,
) -> Replayed {
    let mut iter = records.iter().map(|(offset, encoded)| match encoded {
        Ok(encoded) => Ok(Record {
            offset: *offset,
            timestamp_us: 1_700_000_000_000_000 + offset,
            kind: encoded.kind,
            schema_version: encoded.schema_version,
            origin_hub: 0,
            payload: &encoded.payload,
        }),
        Err(()) => Err(Corruption {
            segment: "00000000000000000000.seg".into(),
            offset: *offset,
            position: 0,
            kind: DamageKind::BadChecksum,
            followed_by: None,
        }),
    });
    let mut state = State::new();
    let mut observed = Vec::new();
    let outcome = replay_into_with(&mut state, iter.by_ref(), until, pipeline, |record, _| {
        observed.push(record.offset)
    })
    .map_err(|error| error.to_string());
    (outcome, state, observed, iter.count())
}

/// Something spliced into a valid history to test how a replay ends.
#[derive(Clone, Debug)]
enum Splice {
    /// An event that may not apply.
    Event(Event),
    /// A batch of the next `count` records (its end marker counts `count - miscount`).
    Batch { count: usize, miscount: u32 },
    /// A restart, cutting any open batch short.
    Restart,
    /// A damaged record.
    Damage,
}

fn splice() -> impl Strategy<Value = Splice> {
    prop_oneof![
        4 => arbitrary_event().prop_map(Splice::Event),
        3 => (0..6usize, prop_oneof![8 => Just(0u32), 1 => 1..3u32])
            .prop_map(|(count, miscount)| Splice::Batch { count, miscount }),
        1 => Just(Splice::Restart),
        1 => Just(Splice::Damage),
    ]
}

/// The events of `history` with `splices` put in at their positions, encoded, at consecutive
/// offsets. A batch takes the history events after its position (splices there are left out).
fn spliced(
    history: &[Event],
    splices: &[(prop::sample::Index, Splice)],
) -> Vec<(u64, Result<Encoded, ()>)> {
    let mut at: BTreeMap<usize, Vec<&Splice>> = BTreeMap::new();
    for (index, splice) in splices {
        at.entry(index.index(history.len() + 1))
            .or_default()
            .push(splice);
    }
    let mut out: Vec<Result<Event, ()>> = Vec::new();
    let mut position = 0;
    while position <= history.len() {
        let mut next = position + 1;
        for splice in at.get(&position).into_iter().flatten() {
            match splice {
                Splice::Event(event) => out.push(Ok(event.clone())),
                Splice::Batch { count, miscount } => {
                    let end = (next - 1 + count).min(history.len());
                    out.push(Ok(BatchStarted {
                        command: "spliced".into(),
                    }
                    .into()));
                    out.extend(history[next - 1..end].iter().cloned().map(Ok));
                    let counted = (end + 1 - next) as u32;
                    out.push(Ok(BatchEnded {
                        event_count: counted.saturating_sub(*miscount),
                    }
                    .into()));
                    next = end + 1;
                }
                Splice::Restart => out.push(Ok(HubStarted {
                    hub_id: 0,
                    version: "t".into(),
                }
                .into())),
                Splice::Damage => out.push(Err(())),
            }
        }
        if next == position + 1
            && let Some(event) = history.get(position)
        {
            out.push(Ok(event.clone()));
        }
        position = next;
    }
    out.into_iter()
        .enumerate()
        .map(|(offset, event)| (offset as u64, event.map(|event| encode(&event))))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn live_state_equals_replayed_state_and_snapshot_plus_tail(
        commands in commands(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut driver = Driver::new();
        for command in &commands {
            driver.run(command);
            driver.check_invariants();
        }
        let records = &driver.log.records;
        let live = &driver.log.state;

        prop_assert_eq!(&rebuild(records, State::new()), live);

        let cut = cut.index(records.len() + 1);
        let prefix = rebuild(&records[..cut], State::new());
        let bytes = snapshot_encode(&prefix, prefix.next_offset());
        let (restored, next_offset) = snapshot_decode(&bytes).expect("snapshot decodes");
        let expected_next = records.get(cut).map_or(prefix.next_offset(), |(meta, _)| meta.offset);
        prop_assert_eq!(next_offset, expected_next);
        prop_assert_eq!(&rebuild(&records[cut..], restored), live);
    }

    #[test]
    fn every_split_between_threads_replays_alike(
        commands in commands(),
        splices in proptest::collection::vec((any::<prop::sample::Index>(), splice()), 0..6),
        stop in any::<prop::sample::Index>(),
        stop_early in any::<bool>(),
    ) {
        let mut driver = Driver::new();
        for command in &commands {
            driver.run(command);
        }
        let history: Vec<Event> = driver.log.records.iter().map(|(_, event)| event.clone()).collect();
        let records = spliced(&history, &splices);
        let until = if stop_early {
            Until::Offset(stop.index(records.len() + 1) as u64)
        } else {
            Until::End
        };
        let one_thread = Pipeline { inline_records: u64::MAX, chunk_records: 1 };
        let expected = replay_split(&records, until, one_thread);
        for (inline_records, chunk_records) in [(0, 1), (0, 3), (2, 2), (5, 256)] {
            let pipeline = Pipeline { inline_records, chunk_records };
            let (outcome, state, observed, left) = replay_split(&records, until, pipeline);
            prop_assert_eq!(&outcome, &expected.0, "{:?}", pipeline);
            prop_assert_eq!(&state, &expected.1, "{:?}", pipeline);
            prop_assert_eq!(&observed, &expected.2, "{:?}", pipeline);
            // After an error the decoding thread may have read ahead (documented); otherwise
            // it stops exactly where one thread does.
            if outcome.is_ok() {
                prop_assert_eq!(left, expected.3, "{:?}", pipeline);
            }
        }
    }

    #[test]
    fn rejected_events_leave_the_state_unchanged(
        commands in proptest::collection::vec(command(), 0..40),
        events in proptest::collection::vec(arbitrary_event(), 1..40),
    ) {
        let mut driver = Driver::new();
        for session in 0..SESSIONS {
            driver.run(&Command::Register(session));
        }
        for command in &commands {
            driver.run(command);
        }
        let mut state = driver.log.state.clone();
        let mut offset = state.next_offset();
        for event in &events {
            let before = state.clone();
            let meta = RecordMeta { offset, timestamp_us: offset, origin_hub: 0 };
            match apply(&mut state, meta, event) {
                Ok(()) => offset += 1,
                Err(_) => prop_assert_eq!(&state, &before),
            }
            prop_assert_eq!(state.bytes(), state.recount_bytes());
        }
    }
}
