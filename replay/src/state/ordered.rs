//! Hash maps keyed by strings that archive and serialize as if they were ordered maps.
//!
//! `apply` looks names and message ids up on every event; a `BTreeMap<String, _>` pays a string
//! comparison per tree level for that, a [`HashMap`] one hash and one comparison. The state's
//! snapshot and JSON must still be a function of its content alone, so these maps are written
//! in key order: [`Ordered`] archives a `HashMap<String, V>` exactly as rkyv archives the
//! `BTreeMap<String, V>` with the same entries (the same bytes), and [`serialize_ordered`] gives
//! serde the entries sorted. The hasher is std's `RandomState` (keyed SipHash): names and ids
//! come from peers too, so the table cannot be flooded with chosen collisions.

use std::collections::HashMap;
use std::ops::ControlFlow;

use rkyv::collections::btree_map::{ArchivedBTreeMap, BTreeMapResolver};
use rkyv::rancor::{Fallible, Source};
use rkyv::ser::{Allocator, Writer};
use rkyv::string::ArchivedString;
use rkyv::with::{ArchiveWith, DeserializeWith, SerializeWith};
use rkyv::{Archive, Deserialize, Place, Serialize};

/// A string-keyed map of the state: hashed in memory, ordered on disk and in JSON.
pub(crate) type StringMap<V> = HashMap<String, V>;

/// rkyv wrapper: archives a [`StringMap`] as the ordered `ArchivedBTreeMap` of its entries.
pub(crate) struct Ordered;

impl<V: Archive> ArchiveWith<StringMap<V>> for Ordered {
    type Archived = ArchivedBTreeMap<ArchivedString, V::Archived>;
    type Resolver = BTreeMapResolver;

    fn resolve_with(field: &StringMap<V>, resolver: Self::Resolver, out: Place<Self::Archived>) {
        ArchivedBTreeMap::resolve_from_len(field.len(), resolver, out);
    }
}

impl<V, S> SerializeWith<StringMap<V>, S> for Ordered
where
    V: Serialize<S>,
    S: Fallible + Allocator + Writer + ?Sized,
    S::Error: Source,
{
    fn serialize_with(
        field: &StringMap<V>,
        serializer: &mut S,
    ) -> Result<Self::Resolver, S::Error> {
        ArchivedBTreeMap::<ArchivedString, V::Archived>::serialize_from_ordered_iter::<
            _,
            _,
            _,
            String,
            V,
            _,
        >(sorted(field).into_iter(), serializer)
    }
}

impl<V, D> DeserializeWith<ArchivedBTreeMap<ArchivedString, V::Archived>, StringMap<V>, D>
    for Ordered
where
    V: Archive,
    V::Archived: Deserialize<V, D>,
    D: Fallible + ?Sized,
{
    fn deserialize_with(
        field: &ArchivedBTreeMap<ArchivedString, V::Archived>,
        deserializer: &mut D,
    ) -> Result<StringMap<V>, D::Error> {
        let mut map = StringMap::with_capacity(field.len());
        let failed = field.visit(|key, value| match value.deserialize(deserializer) {
            Ok(value) => {
                map.insert(key.as_str().to_owned(), value);
                ControlFlow::Continue(())
            }
            Err(error) => ControlFlow::Break(error),
        });
        match failed {
            Some(error) => Err(error),
            None => Ok(map),
        }
    }
}

/// The entries of `map` in key order.
fn sorted<V>(map: &StringMap<V>) -> Vec<(&String, &V)> {
    let mut entries: Vec<(&String, &V)> = map.iter().collect();
    entries.sort_unstable_by(|left, right| left.0.cmp(right.0));
    entries
}

/// serde `serialize_with` for a [`StringMap`]: its entries in key order, like a `BTreeMap`.
pub(crate) fn serialize_ordered<V, S>(map: &StringMap<V>, serializer: S) -> Result<S::Ok, S::Error>
where
    V: serde::Serialize,
    S: serde::Serializer,
{
    serializer.collect_map(sorted(map))
}
