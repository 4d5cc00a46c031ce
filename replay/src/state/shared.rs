//! [`SharedName`]: an identity's name, with the identity's id, held once in memory however
//! many messages carry it.
//!
//! Every message in a mailbox keeps its sender: the sender's id and the name it had when it
//! sent. Stored as an id and a `String` per message, that is eight bytes and an allocation of
//! the same few bytes per message; as a [`SharedName`] the message holds one pointer to the
//! sender identity's own copy of the name, which carries the identity's id (see
//! [`Identity::shared_name`](crate::state::Identity::shared_name)), so a rename later does not
//! change it (the old copy lives on with the messages) and a thousand messages from one peer
//! hold one copy. A message whose sender does not hold that name (the hub's timeout notice,
//! sent as `relay` by the peer that was asked) holds a copy of its own.
//!
//! It is an id and a text like any other: compared by both, never by which copy it points to.
//! Serialized (a JSON string) and archived (rkyv's `ArchivedString`, exactly the bytes a
//! `String` archives to) it is its text alone: an identity's names are archived as text, its id
//! is the identity's. A message archives its sender with [`AsSender`]: the id, then the text, the
//! two fields a stored message always had. So sharing changes neither equality, the JSON nor
//! the snapshot bytes.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use rkyv::rancor::{Fallible, Source};
use rkyv::string::{ArchivedString, StringResolver};
use rkyv::with::{ArchiveWith, DeserializeWith, SerializeWith};
use rkyv::{Archive, Deserialize, Place, Serialize, SerializeUnsized};

use crate::state::IdentityId;

/// An identity's immutable name with the identity's id, shared by reference (see the
/// [module](self) documentation). A thin pointer (one word): it is in every stored message.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedName(Arc<Named>);

/// What a [`SharedName`] points to.
#[derive(PartialEq, Eq)]
struct Named {
    /// The identity that holds or held the name.
    id: IdentityId,
    /// The name.
    text: Box<str>,
}

impl SharedName {
    /// A new copy of the name `text` of identity `id`.
    pub(crate) fn new(id: IdentityId, text: &str) -> SharedName {
        // One allocation for the text either way: a copied `str` has no spare capacity.
        SharedName::from_string(id, text.to_owned())
    }

    /// [`SharedName::new`] from an owned name.
    pub(crate) fn from_string(id: IdentityId, text: String) -> SharedName {
        SharedName(Arc::new(Named {
            id,
            text: text.into_boxed_str(),
        }))
    }

    /// The identity that holds or held the name: a message's sender.
    pub fn id(&self) -> IdentityId {
        self.0.id
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// Whether `self` and `other` are the same copy (not merely equal).
    pub(crate) fn is_same_copy(&self, other: &SharedName) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Deref for SharedName {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for SharedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} (identity {})", self.as_str(), self.id().0)
    }
}

impl fmt::Display for SharedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text alone, whatever the id.
impl PartialEq<str> for SharedName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

/// The text alone.
impl serde::Serialize for SharedName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The text alone, as a `String` archives: an identity's names (their id is the identity's).
/// Nothing decodes it back to a [`SharedName`] without an id: [`Identity`]'s decoding gives
/// its names its id.
///
/// [`Identity`]: crate::state::Identity
impl Archive for SharedName {
    type Archived = ArchivedString;
    type Resolver = StringResolver;

    fn resolve(&self, resolver: Self::Resolver, out: Place<Self::Archived>) {
        ArchivedString::resolve_from_str(self.as_str(), resolver, out);
    }
}

impl<S> Serialize<S> for SharedName
where
    S: Fallible + ?Sized,
    S::Error: Source,
    str: SerializeUnsized<S>,
{
    fn serialize(&self, serializer: &mut S) -> Result<Self::Resolver, S::Error> {
        ArchivedString::serialize_from_str(self.as_str(), serializer)
    }
}

/// rkyv wrapper for a stored message's sender: archived as [`SenderParts`], the sender's id
/// then its name, the two fields (`from`, `from_name`) a message had before they were one.
pub(crate) struct AsSender;

/// A sender as archived: its id, then its name. `repr(C)` like every archived struct, so its
/// archive lays the two out exactly as two consecutive fields of the message.
#[derive(Archive, Serialize)]
pub(crate) struct SenderParts {
    /// The sender's id.
    pub(crate) from: IdentityId,
    /// The sender's name when it sent (the same copy: archiving it copies no text).
    pub(crate) from_name: SharedName,
}

impl SenderParts {
    fn of(sender: &SharedName) -> SenderParts {
        SenderParts {
            from: sender.id(),
            from_name: sender.clone(),
        }
    }
}

impl ArchiveWith<SharedName> for AsSender {
    type Archived = ArchivedSenderParts;
    type Resolver = SenderPartsResolver;

    fn resolve_with(field: &SharedName, resolver: Self::Resolver, out: Place<Self::Archived>) {
        SenderParts::of(field).resolve(resolver, out);
    }
}

impl<S> SerializeWith<SharedName, S> for AsSender
where
    S: Fallible + ?Sized,
    S::Error: Source,
    str: SerializeUnsized<S>,
{
    fn serialize_with(field: &SharedName, serializer: &mut S) -> Result<Self::Resolver, S::Error> {
        SenderParts::of(field).serialize(serializer)
    }
}

impl<D: Fallible + ?Sized> DeserializeWith<ArchivedSenderParts, SharedName, D> for AsSender {
    fn deserialize_with(
        field: &ArchivedSenderParts,
        deserializer: &mut D,
    ) -> Result<SharedName, D::Error> {
        let from: IdentityId = field.from.deserialize(deserializer)?;
        Ok(SharedName::new(from, field.from_name.as_str()))
    }
}
