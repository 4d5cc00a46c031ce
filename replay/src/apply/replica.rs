//! Groups across hubs in `apply`: routes of groups homed here, and the copies of groups other
//! hubs home.
//!
//! A group lives on the hub that created it (its *home*), which orders its messages. On the
//! home a member of another hub is an ordinary member named `bob@b`; every hub that has had a
//! member gets a [`GroupRoute`](crate::state::GroupRoute) entry, and the group's events ship
//! there. A member hub keeps a *copy* of the group under `name@home`: created by the first
//! invite of one of its peers, updated by the home's events (which this module applies without
//! the admin checks: the home decided them), and dropped when its last local member goes. Its
//! members post and leave through their hub, which logs the post or the departure against the
//! copy and ships it home; the home logs it as its own and ships it back in order.

use super::{
    ApplyError, check_budget, group_mut, is_remote_name, lookup, party, push_group_message,
    remember_remote, system_message, touch,
};
use crate::event::{Event, GroupDeleted, GroupLeft, GroupMemberInvited, GroupMessageSent};
use crate::federation::{HUB_SEPARATOR, hub_of};
use crate::limits::{GROUP_MEMBERS_MAX, GROUPS_MAX};
use crate::state::{
    Group, IdentityId, MEMBER_BYTES, ROUTE_HUB_BYTES, State, group_bytes, group_entry_bytes,
    identity_bytes, route_bytes,
};
use crate::{RecordMeta, state::GroupRoute};

/// Whether `group` names a copy of a group another hub homes.
pub(super) fn is_copy(group: &str) -> bool {
    group.contains(HUB_SEPARATOR)
}

/// A local command on a copy that only the home may decide (create, invite, remove, delete).
pub(super) fn homed_elsewhere(group: &str) -> ApplyError {
    ApplyError::GroupHomedElsewhere {
        group: group.to_owned(),
        home: hub_of(group).unwrap_or_default().to_owned(),
    }
}

/// Applies one of the home's events to our copy of its group (see the module docs).
pub(super) fn apply_update(
    state: &mut State,
    record: &RecordMeta,
    event: &Event,
) -> Result<(), ApplyError> {
    match event {
        Event::GroupMemberInvited(event) => invited(state, record, event),
        Event::GroupMemberRemoved(event) => {
            let notice = format!("{} was removed: {}", event.member, event.reason);
            gone(state, record, &event.group, &event.member, notice)
        }
        Event::GroupLeft(event) => {
            let notice = format!("{} left", event.member);
            gone(state, record, &event.group, &event.member, notice)
        }
        Event::GroupMessageSent(event) => posted(state, record, event),
        Event::GroupDeleted(event) => {
            deleted(state, event);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The identity `name` has, or a new one for a peer of another hub (the record's single new
/// identity: its id is the record's offset), checked against the budget together with `also`,
/// the bytes the caller stores with it.
fn identity_for(
    state: &mut State,
    record: &RecordMeta,
    name: &str,
    also: u64,
) -> Result<IdentityId, ApplyError> {
    let identity = party(state, name)?;
    let new = identity.map_or_else(
        || identity_bytes(&super::remote_identity(record, name)),
        |_| 0,
    );
    // One check for all the caller stores with it, so the sum never passes the budget.
    check_budget(state, new + also, 0)?;
    Ok(identity.unwrap_or_else(|| remember_remote(state, record, name)))
}

fn invited(
    state: &mut State,
    record: &RecordMeta,
    event: &GroupMemberInvited,
) -> Result<(), ApplyError> {
    let Some(group) = state.groups.get(&event.group) else {
        // The copy starts with the first of our peers the home invites.
        if is_remote_name(&event.member) {
            return Ok(());
        }
        let member = lookup(state, &event.member)?;
        if state.groups.len() >= GROUPS_MAX {
            return Err(ApplyError::GroupsFull { max: GROUPS_MAX });
        }
        let copy_bytes = group_entry_bytes(&event.group) + 2 * MEMBER_BYTES;
        let admin = identity_for(state, record, &event.actor, copy_bytes)?;
        let mut group = Group::new(event.group.clone(), admin, record.timestamp_us);
        group.add_member(member, record.timestamp_us);
        state.groups.insert(event.group.clone(), group);
        state.charge(group_entry_bytes(&event.group) + 2 * MEMBER_BYTES);
        touch(state, member, record);
        return Ok(());
    };
    if let Some(id) = state.names.get(&event.member)
        && group.is_member(*id)
    {
        return Ok(());
    }
    join(state, record, &event.group, &event.member)?;
    Ok(())
}

/// Makes `name` a member of our copy `group` (the home said it is one).
fn join(
    state: &mut State,
    record: &RecordMeta,
    group: &str,
    name: &str,
) -> Result<IdentityId, ApplyError> {
    let count = group_mut(state, group)?.member_count();
    if count >= GROUP_MEMBERS_MAX {
        return Err(ApplyError::GroupFull {
            group: group.to_owned(),
            max: GROUP_MEMBERS_MAX,
        });
    }
    let member = identity_for(state, record, name, MEMBER_BYTES)?;
    group_mut(state, group)?.add_member(member, record.timestamp_us);
    state.charge(MEMBER_BYTES);
    Ok(member)
}

/// A member left our copy or was removed from it: a notice in its history, and the copy goes
/// with its last local member.
fn gone(
    state: &mut State,
    record: &RecordMeta,
    group: &str,
    name: &str,
    notice: String,
) -> Result<(), ApplyError> {
    let Some(member) = state.names.get(name).copied() else {
        return Ok(());
    };
    let Some(copy) = state.groups.get_mut(group) else {
        return Ok(());
    };
    if !copy.is_member(member) {
        return Ok(());
    }
    copy.remove_member(member, |_| true);
    state.refund(MEMBER_BYTES);
    if has_local_member(state, group) {
        push_group_message(state, group, system_message(notice, record));
    } else {
        drop_copy(state, group);
    }
    Ok(())
}

fn posted(
    state: &mut State,
    record: &RecordMeta,
    event: &GroupMessageSent,
) -> Result<(), ApplyError> {
    if !state.groups.contains_key(&event.group) {
        return Ok(());
    }
    let from = match state.names.get(&event.from).copied() {
        Some(id) if group_mut(state, &event.group)?.is_member(id) => id,
        // A member that joined before our first peer did: the home vouches for it.
        _ => join(state, record, &event.group, &event.from)?,
    };
    super::store_group_message(state, record, event, from)
}

fn deleted(state: &mut State, event: &GroupDeleted) {
    drop_copy(state, &event.group);
}

fn drop_copy(state: &mut State, group: &str) {
    if let Some(copy) = state.groups.remove(group) {
        state.refund(group_bytes(&copy));
    }
}

/// Whether a peer of this hub is still a member of `group`.
fn has_local_member(state: &State, group: &str) -> bool {
    state.groups.get(group).is_some_and(|group| {
        group.members().any(|member| {
            state
                .identities
                .get(&member)
                .is_some_and(|identity| !is_remote_name(identity.name()))
        })
    })
}

/// One of our peers posts to a copy: checked here, stored when the home ships it back in order.
pub(super) fn post_submitted(
    state: &mut State,
    record: &RecordMeta,
    event: &GroupMessageSent,
) -> Result<(), ApplyError> {
    let from = lookup(state, &event.from)?;
    if !group_mut(state, &event.group)?.is_member(from) {
        return Err(super::not_group_member(&event.group, &event.from));
    }
    touch(state, from, record);
    Ok(())
}

/// One of our peers leaves a copy: it is out at once (the copy goes with its last local
/// member), and the departure ships home.
pub(super) fn left_copy(
    state: &mut State,
    record: &RecordMeta,
    event: &GroupLeft,
) -> Result<(), ApplyError> {
    let member = lookup(state, &event.member)?;
    let copy = group_mut(state, &event.group)?;
    if !copy.is_member(member) {
        return Err(super::not_group_member(&event.group, &event.member));
    }
    copy.remove_member(member, |_| true);
    state.refund(MEMBER_BYTES);
    if !has_local_member(state, &event.group) {
        drop_copy(state, &event.group);
    }
    touch(state, member, record);
    Ok(())
}

/// The budget a new route hub costs, when the invite of `member` into our group `group` adds
/// one (a peer of a hub the group has had no member on).
pub(super) fn route_growth(state: &State, group: &str, member: &str) -> u64 {
    let Some(hub) = hub_of(member) else {
        return 0;
    };
    match state.federation.group_routes.get(group) {
        Some(route) if route.hubs.contains(hub) => 0,
        Some(_) => ROUTE_HUB_BYTES + hub.len() as u64,
        None => route_bytes(
            group,
            &GroupRoute {
                hubs: [hub.to_owned()].into(),
                deleted_at: None,
            },
        ),
    }
}

/// Records that our group `group` now has a member on `member`'s hub (no-op for a local
/// member); the caller checked [`route_growth`] against the budget.
pub(super) fn route_member(state: &mut State, group: &str, member: &str) {
    let Some(hub) = hub_of(member) else {
        return;
    };
    let growth = route_growth(state, group, member);
    let route = state
        .federation
        .group_routes
        .entry(group.to_owned())
        .or_default();
    route.hubs.insert(hub.to_owned());
    route.deleted_at = None;
    state.charge(growth);
}

/// A group homed here was created again under a name whose old route waits for its deletion
/// to ship: the route serves the new group too.
pub(super) fn route_created(state: &mut State, group: &str) {
    if let Some(route) = state.federation.group_routes.get_mut(group) {
        route.deleted_at = None;
    }
}

/// A group homed here is gone (deleted, or its last member left) at `record`: its route stays
/// until every hub in it acknowledged the deletion.
pub(super) fn route_deleted(state: &mut State, record: &RecordMeta, group: &str) {
    if let Some(route) = state.federation.group_routes.get_mut(group) {
        route.deleted_at = Some(record.offset);
    }
    prune_routes(state);
}

/// Drops the routes of deleted groups every hub in them has acknowledged past the deletion.
pub(super) fn prune_routes(state: &mut State) {
    let acks = &state.federation.link_acks;
    let done: Vec<String> = state
        .federation
        .group_routes
        .iter()
        .filter(|(_, route)| {
            route.deleted_at.is_some_and(|deleted_at| {
                route
                    .hubs
                    .iter()
                    .all(|hub| acks.get(hub).is_some_and(|durable| *durable > deleted_at))
            })
        })
        .map(|(group, _)| group.clone())
        .collect();
    for group in done {
        if let Some(route) = state.federation.group_routes.remove(&group) {
            state.refund(route_bytes(&group, &route));
        }
    }
}
