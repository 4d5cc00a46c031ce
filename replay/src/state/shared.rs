//! [`SharedName`]: an identity's name held once in memory however many messages carry it.
//!
//! Every message in a mailbox keeps the sender's name as it was when it sent. Stored as a
//! `String` per message, that is an allocation per message of the same few bytes; as a
//! [`SharedName`] the message holds a reference to the sender identity's own copy of the name
//! (see [`Identity::shared_name`](crate::state::Identity::shared_name)), so a rename later
//! does not change it (the old copy lives on with the messages) and a thousand messages from
//! one peer hold one copy.
//!
//! It is text like any other: compared, serialized (as a JSON string) and archived (as rkyv's
//! `ArchivedString`, exactly the bytes a `String` archives to) by its content, never by which
//! copy it points to, so sharing changes neither equality, the JSON nor the snapshot bytes.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use rkyv::rancor::{Fallible, Source};
use rkyv::string::{ArchivedString, StringResolver};
use rkyv::{Archive, Deserialize, Place, Serialize, SerializeUnsized};

/// An immutable name shared by reference (see the [module](self) documentation). A thin
/// pointer (one word, where an `Arc<str>` takes two): it is in every stored message.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedName(Arc<Box<str>>);

impl SharedName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `self` and `other` are the same copy (not merely equal text).
    pub(crate) fn is_same_copy(&self, other: &SharedName) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Deref for SharedName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SharedName {
    fn from(text: &str) -> SharedName {
        SharedName(Arc::new(Box::from(text)))
    }
}

impl From<String> for SharedName {
    fn from(text: String) -> SharedName {
        SharedName(Arc::new(text.into_boxed_str()))
    }
}

impl fmt::Debug for SharedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for SharedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for SharedName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl serde::Serialize for SharedName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

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

impl<D: Fallible + ?Sized> Deserialize<SharedName, D> for ArchivedString {
    fn deserialize(&self, _: &mut D) -> Result<SharedName, D::Error> {
        Ok(SharedName::from(self.as_str()))
    }
}
