//! Groups: persistent, with an admin; offline members catch up through history.

use relay_replay::IdentityId;
use relay_replay::event::{
    GroupCreated, GroupCursorAdvanced, GroupDeleted, GroupLeft, GroupMemberInvited,
    GroupMemberRemoved, GroupMessageSent,
};
use relay_replay::federation::{hub_of, split_qualified};

use super::messages::fitting_in_a_frame;
use crate::hub::core::{Core, Json, Outbound, Release, error, to_json};
use crate::protocol::methods::*;
use crate::protocol::notification::MessageKind;
use crate::protocol::{ErrorCode, RpcError};

/// Groups: persistent, with an admin; offline members catch up through history.
impl Core {
    /// The members of `group`, its admin first, then in joining order of identity.
    pub(in crate::hub) fn group_members(&self, group: &str) -> Vec<IdentityId> {
        self.state
            .group(group)
            .map(|group| {
                let admin = group.admin();
                std::iter::once(admin)
                    .chain(group.members().filter(|member| *member != admin))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(in crate::hub) fn group_create(
        &mut self,
        me: IdentityId,
        params: GroupCreateParams,
        release: &mut Release,
    ) -> Result<Json, RpcError> {
        let admin = self.caller_name(me)?;
        let group = params.name.as_str().to_owned();
        if let Some((_, hub)) = split_qualified(&group) {
            return Err(error(
                ErrorCode::BadArguments,
                format!(
                    "group names cannot hold '@': {group:?} would name a group homed on hub {hub:?}; a group is created on its home hub under a plain name"
                ),
            ));
        }
        if self.state.group(&group).is_some() {
            return Err(error(
                ErrorCode::GroupExists,
                format!("group {group:?} exists already"),
            ));
        }
        let mut invitees: Vec<(String, Option<IdentityId>)> = Vec::new();
        for member in &params.members {
            let (name, identity) = self.member_named(member.as_str())?;
            if identity != Some(me) && !invitees.iter().any(|(known, _)| *known == name) {
                invitees.push((name, identity));
            }
        }
        // The group and its first members are one batch: after a crash, all or none.
        self.atomically("group_create", 1 + invitees.len(), |core| {
            core.emit(
                GroupCreated {
                    group: group.clone(),
                    admin: admin.clone(),
                }
                .into(),
            )?;
            for (member, invitee) in invitees {
                core.emit(
                    GroupMemberInvited {
                        group: group.clone(),
                        actor: admin.clone(),
                        member,
                    }
                    .into(),
                )?;
                // A peer of another hub hears it from its hub, when the invite arrives there.
                if let Some(invitee) = invitee {
                    core.notice(
                        invitee,
                        format!("you were added to group {group} by {admin}"),
                        Some(&group),
                        release,
                    );
                }
            }
            Ok(())
        })?;
        let members = self.names(self.group_members(&group));
        to_json(&GroupCreateResult { group, members })
    }

    pub(in crate::hub) fn group_invite(
        &mut self,
        me: IdentityId,
        params: GroupInviteParams,
        release: &mut Release,
    ) -> Result<Json, RpcError> {
        let actor = self.caller_name(me)?;
        let group = params.group.as_str().to_owned();
        let (member, invitee) = self.member_named(params.peer.as_str())?;
        self.emit(
            GroupMemberInvited {
                group: group.clone(),
                actor: actor.clone(),
                member,
            }
            .into(),
        )?;
        if let Some(invitee) = invitee {
            self.notice(
                invitee,
                format!("you were invited to group {group} by {actor}"),
                Some(&group),
                release,
            );
        }
        to_json(&EmptyResult {})
    }

    pub(in crate::hub) fn group_remove(
        &mut self,
        me: IdentityId,
        params: GroupRemoveParams,
        release: &mut Release,
    ) -> Result<Json, RpcError> {
        let actor = self.caller_name(me)?;
        let group = params.group.as_str().to_owned();
        let (member, removed) = self.member_named(params.peer.as_str())?;
        let removed = removed.ok_or_else(|| {
            error(
                ErrorCode::NotMember,
                format!("{member:?} is not a member of group {group:?}"),
            )
        })?;
        let reason = params.reason.as_ref().map_or_else(
            || "no reason given".to_owned(),
            |reason| reason.as_str().to_owned(),
        );
        self.emit(
            GroupMemberRemoved {
                group: group.clone(),
                actor: actor.clone(),
                member,
                reason: reason.clone(),
            }
            .into(),
        )?;
        self.notice(
            removed,
            format!("you were removed from group {group} by {actor}: {reason}"),
            Some(&group),
            release,
        );
        to_json(&EmptyResult {})
    }

    pub(in crate::hub) fn group_leave(
        &mut self,
        me: IdentityId,
        params: GroupLeaveParams,
    ) -> Result<Json, RpcError> {
        let member = self.caller_name(me)?;
        self.emit(
            GroupLeft {
                group: params.group.as_str().to_owned(),
                member,
            }
            .into(),
        )?;
        to_json(&EmptyResult {})
    }

    pub(in crate::hub) fn group_delete(
        &mut self,
        me: IdentityId,
        params: GroupDeleteParams,
        release: &mut Release,
    ) -> Result<Json, RpcError> {
        let actor = self.caller_name(me)?;
        let group = params.group.as_str().to_owned();
        let members = self.group_members(&group);
        self.emit(
            GroupDeleted {
                group: group.clone(),
                actor: actor.clone(),
            }
            .into(),
        )?;
        for member in members.into_iter().filter(|member| *member != me) {
            self.notice(
                member,
                format!("group {group} was deleted by {actor}"),
                Some(&group),
                release,
            );
        }
        to_json(&EmptyResult {})
    }

    pub(in crate::hub) fn member_group(
        &self,
        me: IdentityId,
        group: &str,
    ) -> Result<&relay_replay::Group, RpcError> {
        let found = self.state.group(group).ok_or_else(|| {
            error(
                ErrorCode::GroupNotFound,
                format!("no group named {group:?}"),
            )
        })?;
        if !found.is_member(me) {
            return Err(error(
                ErrorCode::NotMember,
                format!("you are not a member of group {group:?}"),
            ));
        }
        Ok(found)
    }

    pub(in crate::hub) fn group_info(
        &self,
        me: IdentityId,
        params: GroupInfoParams,
    ) -> Result<Json, RpcError> {
        let group = self.member_group(me, params.group.as_str())?;
        let members = self
            .group_members(group.name())
            .into_iter()
            .filter_map(|member| {
                Some(GroupMember {
                    name: self.name_of(member)?,
                    online: self.online.contains_key(&member),
                })
            })
            .collect();
        to_json(&GroupInfoResult {
            group: group.name().to_owned(),
            admin: self.name_of(group.admin()).unwrap_or_default(),
            members,
            unread_count: group.unread_for(me) as u32,
        })
    }

    pub(in crate::hub) fn group_send(
        &mut self,
        me: IdentityId,
        params: GroupSendParams,
        release: &mut Release,
    ) -> Result<Json, RpcError> {
        let from = self.caller_name(me)?;
        let group = params.group.as_str().to_owned();
        self.member_group(me, &group)?;
        let msg_id = format!("g-{}", self.log.next_offset());
        let event = GroupMessageSent {
            group: group.clone(),
            id: msg_id.clone(),
            from: from.clone(),
            body: params.text.as_str().to_owned(),
            reply_to: params.reply_to.as_ref().map(|id| id.as_str().to_owned()),
            urgent: params.urgent,
        };
        self.emit(event.clone().into())?;
        let home = hub_of(&group).map(str::to_owned);
        if home.is_none() {
            self.push_group_message(&event, Some(me), release);
        }
        // A post to another hub's group goes there first; its members here get it when the
        // home ships it back in order.
        to_json(&GroupSendResult { msg_id, home })
    }

    /// Pushes a stored group message to the group's online members here but `author`.
    pub(in crate::hub) fn push_group_message(
        &mut self,
        message: &GroupMessageSent,
        author: Option<IdentityId>,
        release: &mut Release,
    ) {
        let mut push = self.message_push(
            MessageKind::Group,
            &message.from,
            &message.body,
            &message.id,
        );
        push.group = Some(&message.group);
        push.urgent = message.urgent;
        push.reply_to = message.reply_to.as_deref();
        // Encoded once; each member's queue gets a copy of the bytes.
        let Outbound::Frame(frame) = Outbound::push(&push) else {
            unreachable!("invariant: a push encodes to a frame");
        };
        for member in self
            .group_members(&message.group)
            .into_iter()
            .filter(|member| Some(*member) != author)
        {
            self.push(member, Outbound::Frame(frame.clone()), release);
        }
    }

    pub(in crate::hub) fn group_history(
        &mut self,
        me: IdentityId,
        params: GroupHistoryParams,
    ) -> Result<Json, RpcError> {
        let member = self.caller_name(me)?;
        let name = params.group.as_str().to_owned();
        let group = self.member_group(me, &name)?;
        let limit = params.limit.get() as usize;
        // Unread means not read and written by someone else (as `unread_count` counts); a
        // message the session took by push but may not have shown its model is unread, marked
        // `pushed`.
        let unread = group.unread_messages_for(me, limit);
        let membership = group.membership(me);
        // Nothing new: show the recent history the member may see (read again on request).
        let mut chosen = if unread.is_empty() {
            group.visible_for(me, limit)
        } else {
            unread
        };
        let sizes = chosen.iter().map(|message| {
            message.body.len() + message.author_name.as_ref().map_or(0, String::len)
        });
        chosen.truncate(fitting_in_a_frame(0, sizes));
        let messages: Vec<GroupMessage> = chosen
            .iter()
            .map(|message| GroupMessage {
                id: message
                    .id
                    .clone()
                    .unwrap_or_else(|| format!("s-{}", message.offset)),
                from: message
                    .author_name
                    .clone()
                    .unwrap_or_else(|| "relay".to_owned()),
                text: message.body.clone(),
                ts: message.timestamp_us,
                message_type: if message.is_system() {
                    GroupMessageType::System
                } else {
                    GroupMessageType::User
                },
                pushed: membership
                    .is_some_and(|membership| membership.is_delivered_only(message.sequence)),
            })
            .collect();
        let cursor = group
            .membership(me)
            .map_or(0, |membership| membership.cursor);
        let missed = u32::try_from(group.missed_for(me)).unwrap_or(u32::MAX);
        let last = chosen.last().map(|message| message.sequence);
        // The cursor event also clears the missed count this answer shows, so it is logged
        // even when the cursor stays where it is.
        let moved = last.filter(|sequence| *sequence > cursor);
        if moved.is_some() || missed > 0 {
            let advanced = self.emit(
                GroupCursorAdvanced {
                    group: name.clone(),
                    member,
                    up_to_sequence: moved.unwrap_or(cursor),
                }
                .into(),
            );
            // At a full disk the messages are still shown, and stay unread: the same ones come
            // back with the next read once the cursor can be stored.
            match advanced {
                Err(refused) if refused.code != ErrorCode::StorageFull => return Err(refused),
                _ => {}
            }
        }
        let unread_remaining = self
            .state
            .group(&name)
            .map_or(0, |group| group.unread_for(me)) as u32;
        to_json(&GroupHistoryResult {
            group: name,
            messages,
            unread_remaining,
            missed,
        })
    }

    pub(in crate::hub) fn group_list(&self, me: IdentityId) -> Result<Json, RpcError> {
        let groups = self
            .state
            .groups_of(me)
            .map(|group| GroupSummary {
                name: group.name().to_owned(),
                unread_count: group.unread_for(me) as u32,
            })
            .collect();
        to_json(&GroupListResult { groups })
    }
}
