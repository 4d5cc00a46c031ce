//! Identities: who has ever registered, under which names, and when each was last seen.
//!
//! An identity is keyed by an [`IdentityId`] that never changes, so a rename carries the mailbox,
//! group memberships and admin rights with it: those are keyed by id, never by name.

use rkyv::rancor::Fallible;
use rkyv::{Archive, Deserialize, Serialize};
use std::collections::VecDeque;

use crate::event::ClientKind;
use crate::limits::IDENTITY_NAMES_MAX;
use crate::state::SharedName;

/// A stable identity number: the offset of the record that first registered it.
///
/// Offsets are unique and each record registers at most one identity, so ids are unique and
/// deterministic (replaying the same log assigns the same ids).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    Archive,
    Serialize,
    Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq, PartialOrd, Ord))]
pub struct IdentityId(pub u64);

/// One identity: its names, where it runs, and when it was seen. Decoded by hand (see the
/// `Deserialize` impl): its names get its id.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Archive, Serialize)]
pub struct Identity {
    /// The stable id.
    pub id: IdentityId,
    /// Every name this identity has held, oldest first; the last one is the current name.
    /// Invariant: never empty, `names.len() <= IDENTITY_NAMES_MAX`, each with this identity's
    /// id. Shared with the messages it sent under them (see [`SharedName`]); archived as text.
    names: VecDeque<SharedName>,
    /// Working directory from the latest registration.
    pub cwd: String,
    /// Git branch from the latest registration.
    pub git_branch: Option<String>,
    /// Client program from the latest registration.
    pub client: ClientKind,
    /// Record timestamp of the first registration, in microseconds since the Unix epoch.
    pub registered_us: u64,
    /// Record timestamp of the latest event this identity caused, in microseconds.
    pub last_seen_us: u64,
    /// Whether the latest registration was followed by an `identity_left`.
    pub has_left: bool,
}

impl Identity {
    /// The current name.
    pub fn name(&self) -> &str {
        self.names.back().map_or("", SharedName::as_str)
    }

    /// The current name, as the copy messages it sends share.
    pub fn shared_name(&self) -> Option<&SharedName> {
        self.names.back()
    }

    /// Every name held, oldest first, as the copies messages sent under them share.
    pub(crate) fn shared_names(&self) -> impl DoubleEndedIterator<Item = &SharedName> {
        self.names.iter()
    }

    /// Every name held, oldest first, ending with the current name (at most
    /// [`IDENTITY_NAMES_MAX`]).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(SharedName::as_str)
    }

    pub(crate) fn new(
        id: IdentityId,
        name: String,
        cwd: String,
        git_branch: Option<String>,
        client: ClientKind,
        timestamp_us: u64,
    ) -> Identity {
        Identity {
            id,
            names: VecDeque::from([SharedName::from_string(id, name)]),
            cwd,
            git_branch,
            client,
            registered_us: timestamp_us,
            last_seen_us: timestamp_us,
            has_left: false,
        }
    }

    pub(crate) fn rename(&mut self, new_name: String) {
        self.names
            .push_back(SharedName::from_string(self.id, new_name));
        if self.names.len() > IDENTITY_NAMES_MAX {
            self.names.pop_front();
        }
    }
}

/// An archived identity decoded field by field, as the derive would, but for its names: they
/// are archived as text, and each gets the identity's id (see [`SharedName`]).
impl<D: Fallible + ?Sized> Deserialize<Identity, D> for ArchivedIdentity
where
    ArchivedIdentityId: Deserialize<IdentityId, D>,
    rkyv::Archived<String>: Deserialize<String, D>,
    rkyv::Archived<Option<String>>: Deserialize<Option<String>, D>,
    rkyv::Archived<ClientKind>: Deserialize<ClientKind, D>,
{
    fn deserialize(&self, deserializer: &mut D) -> Result<Identity, D::Error> {
        let id: IdentityId = self.id.deserialize(deserializer)?;
        Ok(Identity {
            id,
            names: self
                .names
                .iter()
                .map(|name| SharedName::new(id, name.as_str()))
                .collect(),
            cwd: self.cwd.deserialize(deserializer)?,
            git_branch: self.git_branch.deserialize(deserializer)?,
            client: self.client.deserialize(deserializer)?,
            registered_us: self.registered_us.to_native(),
            last_seen_us: self.last_seen_us.to_native(),
            has_left: self.has_left,
        })
    }
}
