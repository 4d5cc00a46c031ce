//! Registration, naming and presence: `register` (with the probe of a fixed name's holder),
//! `rename`, `peers`, and at start-up the leave of identities the previous run never logged.
//!
//! Presence (which session holds which identity) is the core's runtime state; the events logged
//! here are for audit and for the identities' projection.

use relay_replay::IdentityId;
use relay_replay::event::{IdentityForgotten, IdentityLeft, IdentityRegistered, IdentityRenamed};
use relay_replay::federation::{HUB_SEPARATOR, hub_of};
use relay_replay::limits::IDENTITIES_MAX;

use crate::hub::commands::page::{bad_cursor, take_page};
use crate::hub::core::{
    Core, Json, Registration, Release, SessionId, client_name, directory_slug, error,
    event_client_kind, now_us, to_json,
};
use crate::hub::limits::{
    IDENTITY_FORGET_AFTER, IDENTITY_FORGETS_PER_REGISTRATION_MAX, SESSIONS_MAX,
};
use crate::protocol::fields::PeerName;
use crate::protocol::methods::*;
use crate::protocol::{ErrorCode, RpcError};

/// The refusal of a name no session may take.
fn reserved(name: &str) -> RpcError {
    error(
        ErrorCode::NameReserved,
        format!(
            "{name:?} is reserved: relay, user, system and assistant would read as the hub or a role of the conversation, and `@` is kept for name@hub"
        ),
    )
}

/// The command name of the batch of `identity_left` records logged at start-up for the
/// identities the previous run left online (`relay log dump` shows it on `batch_started`):
/// the reason, which `identity_left` itself does not carry.
pub const LEFT_AT_UNCLEAN_STOP: &str = "left_at_unclean_stop";

/// Registration, naming and presence.
impl Core {
    /// At start-up, before any session connects: logs `identity_left` for every local
    /// identity the state still holds as online. A clean stop logs every session's leave; a
    /// SIGKILL, a crash or a power cut does not, and without this those identities would stay
    /// "not left" for ever, so never forgotten after [`IDENTITY_FORGET_AFTER`] (which then
    /// counts from this start). Remote identities (`name@hub`) are never online here. Several
    /// leaves are one atomic batch named [`LEFT_AT_UNCLEAN_STOP`]. Returns how many were logged.
    ///
    /// # Errors
    /// The log refused a record (`storage_full` included: nothing is logged then, and the
    /// next start tries again).
    pub(in crate::hub) fn leave_identities_left_online(&mut self) -> Result<usize, RpcError> {
        let online: Vec<String> = self
            .state
            .identities()
            .filter(|identity| !identity.has_left && hub_of(identity.name()).is_none())
            .map(|identity| identity.name().to_owned())
            .collect();
        let count = online.len();
        if count == 0 {
            return Ok(0);
        }
        self.atomically(LEFT_AT_UNCLEAN_STOP, count, |core| {
            for name in online {
                core.emit(IdentityLeft { name }.into())?;
            }
            Ok(())
        })?;
        tracing::info!(
            identities = count,
            "logged the leave of identities still online when the previous run stopped"
        );
        Ok(count)
    }

    pub(in crate::hub) fn register(
        &mut self,
        session: SessionId,
        params: RegisterParams,
        probed: bool,
        release: &mut Release,
    ) -> Registration {
        match self.register_checked(session, params, probed, release) {
            Ok(registration) => registration,
            Err(refused) => Registration::Finished(Err(refused)),
        }
    }

    fn register_checked(
        &mut self,
        session: SessionId,
        params: RegisterParams,
        probed: bool,
        release: &mut Release,
    ) -> Result<Registration, RpcError> {
        if self.caller(session).is_ok() {
            return Err(error(
                ErrorCode::AlreadyRegistered,
                "this session is registered already",
            ));
        }
        if self.online.len() >= SESSIONS_MAX {
            return Err(error(
                ErrorCode::LimitReached,
                format!("{SESSIONS_MAX} sessions are connected"),
            ));
        }
        let name = match &params.name {
            Some(fixed) if fixed.is_reserved() => return Err(reserved(fixed.as_str())),
            Some(fixed) => {
                let fixed = fixed.as_str().to_owned();
                let holder = self
                    .state
                    .identity_by_name(&fixed)
                    .and_then(|identity| self.online.get(&identity.id))
                    .copied();
                if let Some(holder) = holder {
                    // A fixed identity is never suffixed: probe the holder, replace it if dead.
                    if probed {
                        return Err(error(
                            ErrorCode::NameTaken,
                            format!("{fixed:?} is held by a live session"),
                        ));
                    }
                    let outbound = self
                        .sessions
                        .get(&holder)
                        .map(|holder| holder.outbound.clone())
                        .ok_or_else(|| {
                            error(
                                ErrorCode::Unexpected,
                                "invariant: online sessions are connected",
                            )
                        })?;
                    return Ok(Registration::Probe {
                        holder,
                        outbound,
                        params,
                    });
                }
                fixed
            }
            None => {
                let base = params
                    .session_name
                    .as_ref()
                    .and_then(|session_name| PeerName::sanitized(session_name.as_str()))
                    .map_or_else(
                        || directory_slug(params.cwd.as_str()),
                        |name| name.as_str().to_owned(),
                    );
                self.free_name(&unreserved(&base))
            }
        };
        let returning = self.state.identity_by_name(&name).is_some();
        if !returning {
            self.take_new_identity_token(session)?;
            self.make_room_for_identity()
                .map_err(|refused| new_name_refused(&name, refused))?;
        }
        let registered = IdentityRegistered {
            name: name.clone(),
            cwd: params.cwd.as_str().to_owned(),
            git_branch: params
                .git_branch
                .as_ref()
                .map(|branch| branch.as_str().to_owned()),
            client: event_client_kind(params.client),
        };
        match self.emit(registered.clone().into()) {
            Ok(_) => {}
            // A full disk still lets a known identity attach, to read its mail: nothing
            // changes in the state (its record would only update cwd, branch, client and
            // last seen), and the record is logged once space returns.
            Err(refused) if refused.code == ErrorCode::StorageFull && returning => {
                tracing::warn!(
                    session_id = session.0,
                    name = %name,
                    "the disk is full: attached a known identity without logging its registration"
                );
                self.disk.unlogged_registrations.push((session, registered));
            }
            Err(refused) => return Err(new_name_refused(&name, refused)),
        }
        let identity = self.identity_named(&name)?;
        if let Some(entry) = self.sessions.get_mut(&session) {
            entry.identity = Some(identity);
            entry.delivery = params
                .delivery
                .as_ref()
                .map(|name| name.as_str().to_owned());
        }
        self.online.insert(identity, session);
        self.presence_dirty = true;
        tracing::debug!(session_id = session.0, "registered");
        self.mail_waiting_notice(identity, release);
        Ok(Registration::Finished(to_json(&RegisterResult { name })))
    }

    /// Before a new identity: forgets identities gone longer than [`IDENTITY_FORGET_AFTER`]
    /// (at most [`IDENTITY_FORGETS_PER_REGISTRATION_MAX`]), then, if the table still holds
    /// [`IDENTITIES_MAX`], the eligible one last seen longest ago. Each is an
    /// `identity_forgotten` record in the registration's batch.
    ///
    /// # Errors
    /// `limit_reached` when the table is full and no identity may be forgotten.
    fn make_room_for_identity(&mut self) -> Result<(), RpcError> {
        let forget_after_us = IDENTITY_FORGET_AFTER.as_micros() as u64;
        let seen_before_us = now_us()
            .max(self.clock.last_us())
            .saturating_sub(forget_after_us);
        let mut forgotten = self.forgettable(seen_before_us, IDENTITY_FORGETS_PER_REGISTRATION_MAX);
        if forgotten.is_empty() && self.state.identity_count() >= IDENTITIES_MAX {
            forgotten = self.forgettable(u64::MAX, 1);
            if forgotten.is_empty() {
                return Err(error(
                    ErrorCode::LimitReached,
                    format!(
                        "the hub knows {IDENTITIES_MAX} identities, its limit, and none can be forgotten to make room: each is online, has unread mail, is in a group or has a pending ask; connect under a known name, or have idle sessions read their mail and leave their groups"
                    ),
                ));
            }
        }
        for (name, id) in forgotten {
            tracing::info!(name = %name, "forgetting an identity that left");
            self.emit(
                IdentityForgotten {
                    name,
                    identity_id: id.0,
                }
                .into(),
            )?;
        }
        Ok(())
    }

    /// Identities [`State::forgettable_identities`](relay_replay::State::forgettable_identities)
    /// offers, never one a session holds now.
    fn forgettable(&self, seen_before_us: u64, limit: usize) -> Vec<(String, IdentityId)> {
        self.state
            .forgettable_identities(seen_before_us, limit)
            .into_iter()
            .filter(|identity| !self.online.contains_key(&identity.id))
            .map(|identity| (identity.name().to_owned(), identity.id))
            .collect()
    }

    /// `base`, or `base-2`, `base-3` … : the first that no online session holds.
    fn free_name(&self, base: &str) -> String {
        let taken = |name: &str| {
            self.state
                .identity_by_name(name)
                .is_some_and(|identity| self.online.contains_key(&identity.id))
        };
        if !taken(base) {
            return base.to_owned();
        }
        // Bounded: at most SESSIONS_MAX names can be online.
        (2..=SESSIONS_MAX + 2)
            .map(|suffix| format!("{base}-{suffix}"))
            .find(|name| !taken(name))
            .unwrap_or_else(|| format!("{base}-{}", self.log.next_offset()))
    }

    pub(in crate::hub) fn rename(
        &mut self,
        me: IdentityId,
        params: RenameParams,
    ) -> Result<Json, RpcError> {
        if params.new_name.is_reserved() {
            return Err(reserved(params.new_name.as_str()));
        }
        let old_name = self.caller_name(me)?;
        let new_name = params.new_name.as_str().to_owned();
        if new_name != old_name {
            self.presence_dirty = true;
            self.emit(
                IdentityRenamed {
                    old_name,
                    new_name: new_name.clone(),
                }
                .into(),
            )?;
        }
        to_json(&RenameResult { name: new_name })
    }

    /// One page of the peers, online first, then by name. The cursor is the next peer's key:
    /// `on:<name>` or `off:<name>`.
    pub(in crate::hub) fn peers(
        &self,
        me: IdentityId,
        params: PeersPageParams,
    ) -> Result<Json, RpcError> {
        let start = match &params.cursor {
            Some(cursor) => Some(peer_cursor(cursor.as_str())?),
            None => None,
        };
        // Peers of linked hubs are online when their hub's link says so (not logged).
        let remote_online: std::collections::BTreeSet<String> =
            crate::hub::link_host::remote_presence()
                .into_iter()
                .filter(|(hub, _)| {
                    self.config
                        .federation
                        .as_ref()
                        .is_some_and(|federation| federation.peers.contains(hub))
                })
                .flat_map(|(hub, names)| {
                    names
                        .into_iter()
                        .map(move |name| format!("{name}{HUB_SEPARATOR}{hub}"))
                })
                .collect();
        let mut keyed: Vec<((bool, String), PeerInfo)> = self
            .state
            .identities()
            .filter(|identity| identity.id != me)
            .map(|identity| {
                let name = identity.name().to_owned();
                let hub = hub_of(&name).map(str::to_owned);
                let online = match &hub {
                    Some(_) => remote_online.contains(&name),
                    None => self.online.contains_key(&identity.id),
                };
                let peer = PeerInfo {
                    name: name.clone(),
                    cwd: identity.cwd.clone(),
                    git_branch: identity.git_branch.clone(),
                    client: client_name(&identity.client),
                    online,
                    last_seen: identity.last_seen_us,
                    delivery: self
                        .online
                        .get(&identity.id)
                        .and_then(|session| self.sessions.get(session))
                        .and_then(|session| session.delivery.clone()),
                    hub,
                };
                ((!online, name), peer)
            })
            .collect();
        // Remote peers online that this hub has not exchanged messages with yet.
        for name in &remote_online {
            if self.state.identity_by_name(name).is_none() {
                let peer = PeerInfo {
                    name: name.clone(),
                    cwd: String::new(),
                    git_branch: None,
                    client: "remote".to_owned(),
                    online: true,
                    last_seen: 0,
                    delivery: None,
                    hub: hub_of(name).map(str::to_owned),
                };
                keyed.push(((false, name.clone()), peer));
            }
        }
        keyed.retain(|(key, _)| {
            start
                .as_ref()
                .is_none_or(|start| (key.0, key.1.as_str()) >= (start.0, start.1.as_str()))
        });
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let entries = keyed.into_iter().map(|((offline, name), peer)| {
            let key = format!("{}:{name}", if offline { "off" } else { "on" });
            (key, peer)
        });
        let page = take_page(entries, params.limit.get() as usize)?;
        to_json(&PeersResult {
            me: self.caller_name(me)?,
            peers: page.entries,
            next_cursor: page.next_cursor,
        })
    }
}

/// A new identity's registration refused: a full disk is said plainly, since a new name
/// needs a record while a known name can still attach and read its mail.
fn new_name_refused(name: &str, refused: RpcError) -> RpcError {
    if refused.code != ErrorCode::StorageFull {
        return refused;
    }
    error(
        ErrorCode::StorageFull,
        format!(
            "the hub's disk is full, so it cannot store the new identity {name:?}; a session that registered before can still connect under its name and read its mail; retry once space is freed"
        ),
    )
}

/// The key a `peers` cursor names: (offline, name).
fn peer_cursor(cursor: &str) -> Result<(bool, String), RpcError> {
    match cursor.split_once(':') {
        Some(("on", name)) if PeerName::new(name).is_ok() => Ok((false, name.to_owned())),
        Some(("off", name)) if PeerName::new(name).is_ok() => Ok((true, name.to_owned())),
        _ => Err(bad_cursor(cursor)),
    }
}

/// A derived name (from a label or a directory) that a session may take: `@` becomes `-`, and
/// a reserved word gets `-session` appended (`/home/user` gives `user-session`).
fn unreserved(base: &str) -> String {
    let cleaned = base.replace('@', "-");
    let cleaned = cleaned.trim_matches('-');
    let cleaned = if cleaned.is_empty() {
        "session"
    } else {
        cleaned
    };
    match PeerName::new(cleaned) {
        Ok(name) if name.is_reserved() => format!("{cleaned}-session"),
        _ => cleaned.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    //! The leaves logged at start-up, at the replay level: after a run that died with
    //! identities online (and a batch open), the started core has them as left, its log says
    //! so in one batch after `hub_started`, and replaying that log gives the live state.

    use std::path::Path;

    use relay_log::{Durability, LogConfig, LogReader, LogWriter, NewRecord};
    use relay_replay::event::{
        BatchStarted, ClientKind, GroupCreated, IdentityLeft, IdentityRegistered,
    };
    use relay_replay::{
        Event, RecordMeta, State, Until, apply, decode_record, encode, replay_into,
    };
    use tokio::sync::mpsc;

    use super::LEFT_AT_UNCLEAN_STOP;
    use crate::hub::core::{Core, CoreConfig};
    use crate::hub::rate::RateConfig;

    fn log_config() -> LogConfig {
        LogConfig {
            durability: Durability::Os,
            ..LogConfig::default()
        }
    }

    /// Writes `events` as a run that died: the writer is dropped, nothing after them.
    fn previous_run(dir: &Path, events: &[Event]) {
        let mut log = LogWriter::open(dir, log_config()).expect("open");
        let mut state = State::new();
        for event in events {
            let encoded = encode(event);
            let offset = log
                .append(&NewRecord {
                    timestamp_us: 1_000 + log.next_offset(),
                    kind: encoded.kind,
                    schema_version: encoded.schema_version,
                    origin_hub: 1,
                    payload: &encoded.payload,
                })
                .expect("append");
            let meta = RecordMeta {
                offset,
                timestamp_us: 1_000 + offset,
                origin_hub: 1,
            };
            apply(&mut state, meta, event).expect("a valid history");
        }
        log.commit().expect("commit");
    }

    fn replayed(dir: &Path) -> State {
        let reader = LogReader::open(dir).expect("the log opens");
        let mut state = State::new();
        replay_into(
            &mut state,
            reader.iter_from(0).expect("from 0"),
            Until::End,
            |_, _| {},
        )
        .expect("the log replays");
        state
    }

    /// Starts a core on `dir` as the daemon does (state rebuilt from the log).
    fn start(dir: &Path) -> (Core, mpsc::Receiver<crate::hub::core::CoreInput>) {
        let log = LogWriter::open(dir, log_config()).expect("open");
        let rate = RateConfig {
            per_second: 1000,
            burst: 1000,
        };
        let config = CoreConfig {
            delivery_ack_wait: std::time::Duration::ZERO,
            rate,
            loop_guard: Some(crate::hub::limits::CONVERSATION_MESSAGES_MAX),
            new_identity_rate: rate,
            snapshot_dir: dir.join("snapshots"),
            idle_exit: None,
            hub_id: 1,
            retention: None,
            federation: None,
        };
        let (sender, inputs) = mpsc::channel(8);
        let core = Core::start(log, replayed(dir), config, sender).expect("core starts");
        (core, inputs)
    }

    fn register(name: &str) -> Event {
        IdentityRegistered {
            name: name.into(),
            cwd: "/src".into(),
            git_branch: None,
            client: ClientKind::Cli,
        }
        .into()
    }

    /// The events of the records from `from` on.
    fn events_from(dir: &Path, from: u64) -> Vec<Event> {
        let reader = LogReader::open(dir).expect("the log opens");
        reader
            .iter_from(from)
            .expect("from")
            .map(|record| decode_record(&record.expect("a record")).expect("decodes"))
            .collect()
    }

    #[test]
    fn identities_online_when_a_run_died_leave_at_the_next_start() {
        let dir = tempfile::tempdir().expect("a temporary dir");
        // ann and bob online, carol left; the run dies inside a group_create batch.
        let open_batch = BatchStarted {
            command: "group_create".into(),
        };
        let created = GroupCreated {
            group: "ops".into(),
            admin: "ann".into(),
        };
        previous_run(
            dir.path(),
            &[
                register("ann"),
                register("bob"),
                register("carol"),
                IdentityLeft {
                    name: "carol".into(),
                }
                .into(),
                open_batch.into(),
                created.into(),
            ],
        );
        let (core, inputs) = start(dir.path());
        for name in ["ann", "bob", "carol"] {
            let identity = core.state().identity_by_name(name).expect("known");
            assert!(identity.has_left, "{name} has left");
        }
        assert!(
            core.state().group("ops").is_none(),
            "the torn batch is not applied"
        );
        let live = core.state().clone();
        drop((core, inputs));

        let names = |events: &[Event]| -> Vec<String> {
            events
                .iter()
                .filter_map(|event| match event {
                    Event::IdentityLeft(left) => Some(left.name.clone()),
                    _ => None,
                })
                .collect()
        };
        let after = events_from(dir.path(), 6);
        assert!(matches!(after[0], Event::HubStarted(_)), "{after:?}");
        assert!(
            matches!(&after[1], Event::BatchStarted(started) if started.command == LEFT_AT_UNCLEAN_STOP),
            "{after:?}"
        );
        assert_eq!(names(&after), ["ann", "bob"]);
        assert!(
            matches!(&after[4], Event::BatchEnded(ended) if ended.event_count == 2),
            "{after:?}"
        );
        assert_eq!(after.len(), 5);
        assert!(
            replayed(dir.path()) == live,
            "the log replays to the live state"
        );

        // Nobody is online now: the next start logs no leave.
        let (core, inputs) = start(dir.path());
        let again = events_from(dir.path(), 11);
        assert_eq!(again.len(), 1);
        assert!(matches!(again[0], Event::HubStarted(_)), "{again:?}");
        assert!(replayed(dir.path()) == *core.state());
        drop((core, inputs));
    }
}
