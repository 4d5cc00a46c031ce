//! Rooms: ephemeral, their members are connected sessions; posts are pushed, not stored.

use relay_replay::IdentityId;
use relay_replay::event::{RoomJoined, RoomLeft, RoomMessageSent};

use relay_replay::limits::ROOM_MEMBERS_MAX;

use crate::hub::commands::page::{bad_cursor, take_page};
use crate::hub::core::{Core, Json, Outbound, Release, to_json};
use crate::protocol::limits::{JSON_ESCAPE_EXPANSION_MAX, LIST_PAGE_BYTES_MAX, NAME_BYTES_MAX};
use crate::protocol::methods::*;
use crate::protocol::notification::MessageKind;
use crate::protocol::{RoomName, RpcError};

/// Rooms: ephemeral, members are connected sessions.
impl Core {
    fn room_members(&self, room: &str) -> Vec<IdentityId> {
        self.state
            .room(room)
            .map(|room| room.members().collect())
            .unwrap_or_default()
    }

    pub(in crate::hub) fn room_leave(
        &mut self,
        me: IdentityId,
        params: RoomLeaveParams,
    ) -> Result<Json, RpcError> {
        let name = self.caller_name(me)?;
        self.emit(
            RoomLeft {
                room: params.room.as_str().to_owned(),
                name,
            }
            .into(),
        )?;
        to_json(&EmptyResult {})
    }

    pub(in crate::hub) fn room_join(
        &mut self,
        me: IdentityId,
        params: RoomJoinParams,
    ) -> Result<Json, RpcError> {
        let name = self.caller_name(me)?;
        let room = params.room.as_str().to_owned();
        if !self.room_members(&room).contains(&me) {
            self.emit(
                RoomJoined {
                    room: room.clone(),
                    name,
                }
                .into(),
            )?;
        }
        let members = self.names(self.room_members(&room));
        to_json(&RoomJoinResult { room, members })
    }

    pub(in crate::hub) fn room_post(
        &mut self,
        me: IdentityId,
        params: RoomPostParams,
        release: &mut Release,
    ) -> Result<Json, RpcError> {
        let from = self.caller_name(me)?;
        let room = params.room.as_str().to_owned();
        let msg_id = format!("r-{}", self.log.next_offset());
        self.emit(
            RoomMessageSent {
                room: room.clone(),
                id: msg_id.clone(),
                from: from.clone(),
                body: params.text.as_str().to_owned(),
            }
            .into(),
        )?;
        let mut delivered_count = 0;
        let mut push = self.message_push(MessageKind::Room, &from, params.text.as_str(), &msg_id);
        push.room = Some(&room);
        // Encoded once; each member's queue gets a copy of the bytes.
        let Outbound::Frame(frame) = Outbound::push(&push) else {
            unreachable!("invariant: a push encodes to a frame");
        };
        for member in self
            .room_members(&room)
            .into_iter()
            .filter(|member| *member != me)
        {
            if self.push(member, Outbound::Frame(frame.clone()), release) {
                delivered_count += 1;
            }
        }
        to_json(&RoomPostResult {
            room,
            delivered_count,
        })
    }

    /// One page of the rooms, by name; the cursor is the next room's name.
    pub(in crate::hub) fn rooms(&self, params: RoomsParams) -> Result<Json, RpcError> {
        let start = match &params.cursor {
            Some(cursor) => match RoomName::new(cursor.as_str()) {
                Ok(_) => Some(cursor.as_str().to_owned()),
                Err(_) => return Err(bad_cursor(cursor.as_str())),
            },
            None => None,
        };
        let entries = self
            .state
            .rooms()
            .filter(|(name, _)| start.as_deref().is_none_or(|start| *name >= start))
            .map(|(name, room)| {
                let info = RoomInfo {
                    name: name.to_owned(),
                    members: room
                        .members()
                        .filter_map(|member| self.name_of(member))
                        .collect(),
                };
                (name.to_owned(), info)
            });
        let page = take_page(entries, params.limit.get() as usize)?;
        to_json(&RoomsResult {
            rooms: page.entries,
            next_cursor: page.next_cursor,
        })
    }
}

// The largest room (every member's name at its longest, escaped at worst) fits one page.
const _: () = assert!(
    ROOM_MEMBERS_MAX * (NAME_BYTES_MAX * JSON_ESCAPE_EXPANSION_MAX + 3) + 1024
        <= LIST_PAGE_BYTES_MAX
);
