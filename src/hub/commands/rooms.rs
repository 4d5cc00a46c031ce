//! Rooms: ephemeral, their members are connected sessions; posts are pushed, not stored.

use relay_replay::IdentityId;
use relay_replay::event::{RoomJoined, RoomLeft, RoomMessageSent};
use serde_json::Value;

use crate::hub::core::{Core, Outbound, Release, to_value};
use crate::protocol::RpcError;
use crate::protocol::methods::*;
use crate::protocol::notification::MessageKind;

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
    ) -> Result<Value, RpcError> {
        let name = self.caller_name(me)?;
        self.emit(
            RoomLeft {
                room: params.room.as_str().to_owned(),
                name,
            }
            .into(),
        )?;
        to_value(&EmptyResult {})
    }

    pub(in crate::hub) fn room_join(
        &mut self,
        me: IdentityId,
        params: RoomJoinParams,
    ) -> Result<Value, RpcError> {
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
        to_value(&RoomJoinResult { room, members })
    }

    pub(in crate::hub) fn room_post(
        &mut self,
        me: IdentityId,
        params: RoomPostParams,
        release: &mut Release,
    ) -> Result<Value, RpcError> {
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
        for member in self
            .room_members(&room)
            .into_iter()
            .filter(|member| *member != me)
        {
            let mut push =
                self.message_push(MessageKind::Room, &from, params.text.as_str(), &msg_id);
            push.room = Some(room.clone());
            if self.push(member, Outbound::Push(push), release) {
                delivered_count += 1;
            }
        }
        to_value(&RoomPostResult {
            room,
            delivered_count,
        })
    }

    pub(in crate::hub) fn rooms(&self) -> Result<Value, RpcError> {
        let rooms = self
            .state
            .rooms()
            .map(|(name, room)| RoomInfo {
                name: name.to_owned(),
                members: room
                    .members()
                    .filter_map(|member| self.name_of(member))
                    .collect(),
            })
            .collect();
        to_value(&RoomsResult { rooms })
    }
}
