//! The special structures a model keeps in companion keys beside its document
//! ([`Set`], [`PriorityQueue`]): their local values, how an item becomes a member, and how a
//! document and its companions are split for a save and joined again for a read.
//!
//! Why companion keys: a set or a queue of 100,000 items inside the JSON document would make
//! every `add`, `contains` or `pop` read or rewrite an array (O(n)); a native SET answers
//! them in O(1) and a ZSET in O(log n). The document holds `null` where such a field is (its
//! members are in the companion keys), so nothing of it is indexed as JSON content.
//!
//! An item's **member** is its canonical JSON text: the item as a `serde_json::Value`
//! written out, so object keys are sorted (a `HashMap` in an item gives one member whatever
//! its order) and the same value is always the same member.
//!
//! A queue entry's member is `{priority}{sequence}{item}`: the priority as 16 hex digits that
//! sort as the `i64` does (the sign bit flipped), a sequence number (16 hex digits) the
//! server counts up per queue, then the item's member. Every entry has the score 0, so the
//! ZSET orders entries by these bytes: by priority, then by when they were pushed — ties pop
//! first in, first out, and every `i64` is a priority, exactly (a score, a double, holds
//! integers exactly only up to 2^53). The queue's second companion key, a HASH, maps each
//! item's member to its entry, so `remove(item)` and pushing an item already queued (which
//! re-queues it with the new priority, as a ZSET's `ZADD` would) cost O(log n); its field ``
//! (no member is empty) holds the next sequence number.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::keys::{Structure, StructureKind};

/// A set of distinct items, kept in a native Redis SET beside its model's document.
///
/// As a model's field, it is saved, read, expired, copied and deleted with the model, and its
/// handle (`user.tags()`) has the atomic set operations (`add`, `remove`, `contains`, `pop`,
/// `members`, `union_into`, …) that write the server's answer into this local copy. Two items
/// are the same when their JSON is (see the module docs); the local copy iterates in the
/// members' byte order.
///
/// ```
/// let tags: rapyer::Set<String> = ["b", "a", "b"].into_iter().map(String::from).collect();
/// assert_eq!(tags.len(), 2);
/// assert!(tags.contains(&"a".to_string()));
/// ```
pub struct Set<T> {
    items: BTreeMap<String, T>,
}

impl<T: Serialize> Set<T> {
    /// An empty set.
    pub fn new() -> Set<T> {
        Set {
            items: BTreeMap::new(),
        }
    }

    /// Adds `item` to the local copy; `false` when it was there already.
    pub fn insert(&mut self, item: T) -> bool {
        let member = local_member(&item, self.items.len());
        self.items.insert(member, item).is_none()
    }

    /// Removes `item` from the local copy; `true` when it was there.
    pub fn remove(&mut self, item: &T) -> bool {
        self.items.remove(&local_member(item, 0)).is_some()
    }

    /// Whether the local copy holds `item`.
    pub fn contains(&self, item: &T) -> bool {
        self.items.contains_key(&local_member(item, 0))
    }
}

impl<T> Set<T> {
    /// How many items the local copy holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the local copy is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The local copy's items, in their members' byte order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.values()
    }

    /// Empties the local copy.
    pub(crate) fn clear_local(&mut self) {
        self.items.clear();
    }

    /// Adds an item whose member is known.
    pub(crate) fn insert_member(&mut self, member: String, item: T) {
        self.items.insert(member, item);
    }

    /// Removes the item with this member.
    pub(crate) fn remove_member(&mut self, member: &str) {
        self.items.remove(member);
    }
}

/// The other set of the set algebra ([`RedisSet::union_into`](crate::RedisSet::union_into),
/// `intersect_into`, `difference_into`): a loaded model's set handle (`&bob.tags()`) or a
/// server reference to a stored model's set (`User::server_ref_for("bob").tags()`, or `&` of
/// one), which loads nothing into the client. Either way its items are of the same type as
/// this set's, and its model must be stored.
pub trait SetOperand<T> {
    /// The model's key (without the namespace), the set's JSONPath, and whether the set is
    /// kept in a companion key (one inside a list, a dict or an option is not).
    #[doc(hidden)]
    fn set_place(&self) -> (String, String, bool);
}

/// A member for the local map: the item's canonical JSON, or, for an item serde_json cannot
/// write (the save will refuse it, naming the field), a text no member can be (a member is
/// JSON, which never starts with a NUL), distinct per insertion.
fn local_member<T: Serialize>(item: &T, n: usize) -> String {
    canonical(item).unwrap_or_else(|_| format!("\u{0}{n}"))
}

/// The canonical JSON text of `value`: through a `serde_json::Value`, whose objects keep
/// their keys sorted.
pub(crate) fn canonical<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    serde_json::to_string(&serde_json::to_value(value)?)
}

/// The member of `item`, bound for the structure at `path` of the model at `key`: its
/// canonical JSON, refused like any other value a document cannot hold (a NaN or infinite
/// float, an integer beyond `i64::MIN ..= u64::MAX`) with the error naming `path`.
pub(crate) fn member<T: Serialize + ?Sized>(key: &str, path: &str, item: &T) -> Result<String> {
    crate::codec::encode(key, path, item)?;
    canonical(item).map_err(|source| Error::Serialize {
        key: key.to_string(),
        source,
    })
}

/// Decodes the member `member` of the structure at `path` of the model at `key`.
pub(crate) fn item<T: DeserializeOwned>(key: &str, path: &str, member: &[u8]) -> Result<T> {
    crate::codec::decode_at(key, path, member)
}

impl<T: Serialize> Default for Set<T> {
    fn default() -> Set<T> {
        Set::new()
    }
}

impl<T: Clone> Clone for Set<T> {
    fn clone(&self) -> Set<T> {
        Set {
            items: self.items.clone(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Set<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.items.values()).finish()
    }
}

/// Two sets are equal when they hold the same members.
impl<T> PartialEq for Set<T> {
    fn eq(&self, other: &Set<T>) -> bool {
        self.items.len() == other.items.len() && self.items.keys().eq(other.items.keys())
    }
}

impl<T> Eq for Set<T> {}

impl<T: Serialize> FromIterator<T> for Set<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Set<T> {
        let mut set = Set::new();
        set.extend(iter);
        set
    }
}

impl<T: Serialize> Extend<T> for Set<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for item in iter {
            self.insert(item);
        }
    }
}

impl<T> IntoIterator for Set<T> {
    type Item = T;
    type IntoIter = std::collections::btree_map::IntoValues<String, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_values()
    }
}

/// A set's serde form is the list of its items. In a model's document the field holds `null`
/// instead (its members live in the companion SET); a set nested in a list, a dict or an
/// `Option` has no companion key and is stored as this list.
impl<T: Serialize> Serialize for Set<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.items.len()))?;
        for item in self.items.values() {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

/// Reads a list of items, or `null` (what the document holds) as the empty set.
impl<'de, T: Serialize + Deserialize<'de>> Deserialize<'de> for Set<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Set<T>, D::Error> {
        let items: Option<Vec<T>> = Option::deserialize(deserializer)?;
        Ok(items.into_iter().flatten().collect())
    }
}

/// A priority queue: items popped lowest priority first, equal priorities in the order they
/// were pushed; kept in a ZSET (and a HASH from each item to its entry) beside its model's
/// document.
///
/// As a model's field, it is saved, read, expired, copied and deleted with the model, and its
/// handle (`board.tasks()`) has the atomic queue operations (`push`, `pop`, `peek`, `remove`,
/// `items`, …) that write the server's answer into this local copy. An item is queued at most
/// once: pushing an item that is already queued re-queues it with the new priority (at the
/// back of the items of that priority). Priorities are any `i64`, exactly.
///
/// ```
/// let mut q = rapyer::PriorityQueue::new();
/// q.push("later", 5);
/// q.push("now", 1);
/// q.push("also now", 1);
/// assert_eq!(q.iter().map(|(item, _)| *item).collect::<Vec<_>>(), ["now", "also now", "later"]);
/// ```
pub struct PriorityQueue<T> {
    /// The entries in queue order (priority, then a local sequence number), each with its
    /// item's member.
    order: BTreeMap<(i64, u64), (String, T)>,
    /// Each queued member's place in `order`.
    index: HashMap<String, (i64, u64)>,
    /// The next local sequence number.
    next: u64,
}

impl<T: Serialize> PriorityQueue<T> {
    /// An empty queue.
    pub fn new() -> PriorityQueue<T> {
        PriorityQueue {
            order: BTreeMap::new(),
            index: HashMap::new(),
            next: 0,
        }
    }

    /// Queues `item` with `priority` in the local copy: after the items of a lower or equal
    /// priority; an item already queued is moved.
    pub fn push(&mut self, item: T, priority: i64) {
        let member = local_member(&item, self.order.len());
        self.push_member(member, item, priority);
    }

    /// Whether the local copy holds `item`.
    pub fn contains(&self, item: &T) -> bool {
        self.index.contains_key(&local_member(item, 0))
    }
}

impl<T> PriorityQueue<T> {
    /// How many items the local copy holds.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the local copy is empty.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The local copy's items with their priorities, in queue order (most urgent first).
    pub fn iter(&self) -> impl Iterator<Item = (&T, i64)> {
        self.order.iter().map(|((p, _), (_, item))| (item, *p))
    }

    /// Queues an item whose member is known, after every entry of a lower or equal priority.
    pub(crate) fn push_member(&mut self, member: String, item: T, priority: i64) {
        self.remove_member(&member);
        let place = (priority, self.next);
        self.next += 1;
        self.index.insert(member.clone(), place);
        self.order.insert(place, (member, item));
    }

    /// Removes the item with this member, if queued.
    pub(crate) fn remove_member(&mut self, member: &str) {
        if let Some(place) = self.index.remove(member) {
            self.order.remove(&place);
        }
    }

    /// Replaces the local copy with `entries`, in queue order.
    pub(crate) fn replace(&mut self, entries: Vec<(String, T, i64)>) {
        self.order.clear();
        self.index.clear();
        for (member, item, priority) in entries {
            self.push_member(member, item, priority);
        }
    }

    /// The entries in queue order: each item's member, the item and its priority.
    fn entries(&self) -> impl Iterator<Item = (&String, &T, i64)> {
        self.order.iter().map(|((p, _), (m, item))| (m, item, *p))
    }
}

impl<T: Serialize> Default for PriorityQueue<T> {
    fn default() -> PriorityQueue<T> {
        PriorityQueue::new()
    }
}

impl<T: Clone> Clone for PriorityQueue<T> {
    fn clone(&self) -> PriorityQueue<T> {
        PriorityQueue {
            order: self.order.clone(),
            index: self.index.clone(),
            next: self.next,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for PriorityQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries().map(|(_, item, p)| (item, p)))
            .finish()
    }
}

/// Two queues are equal when they hold the same items with the same priorities in the same
/// order.
impl<T> PartialEq for PriorityQueue<T> {
    fn eq(&self, other: &PriorityQueue<T>) -> bool {
        self.len() == other.len()
            && self
                .entries()
                .zip(other.entries())
                .all(|(a, b)| a.0 == b.0 && a.2 == b.2)
    }
}

impl<T> Eq for PriorityQueue<T> {}

/// A queue's serde form is the list of `[item, priority]` pairs in queue order. In a model's
/// document the field holds `null` instead (its entries live in the companion keys).
impl<T: Serialize> Serialize for PriorityQueue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for (_, item, priority) in self.entries() {
            seq.serialize_element(&(item, priority))?;
        }
        seq.end()
    }
}

/// Reads a list of `[item, priority]` pairs, or `null` as the empty queue.
impl<'de, T: Serialize + Deserialize<'de>> Deserialize<'de> for PriorityQueue<T> {
    fn deserialize<D: Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<PriorityQueue<T>, D::Error> {
        struct Pairs<T>(PhantomData<T>);
        impl<'de, T: Serialize + Deserialize<'de>> Visitor<'de> for Pairs<T> {
            type Value = PriorityQueue<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of [item, priority] pairs, or null")
            }
            fn visit_unit<E>(self) -> std::result::Result<PriorityQueue<T>, E> {
                Ok(PriorityQueue::new())
            }
            fn visit_none<E>(self) -> std::result::Result<PriorityQueue<T>, E> {
                Ok(PriorityQueue::new())
            }
            fn visit_some<D: Deserializer<'de>>(
                self,
                d: D,
            ) -> std::result::Result<PriorityQueue<T>, D::Error> {
                d.deserialize_seq(self)
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<PriorityQueue<T>, A::Error> {
                let mut queue = PriorityQueue::new();
                while let Some((item, priority)) = seq.next_element::<(T, i64)>()? {
                    queue.push(item, priority);
                }
                Ok(queue)
            }
        }
        deserializer.deserialize_option(Pairs(PhantomData))
    }
}

/// The 16 hex digits of `priority` that sort, as bytes, as the `i64` does.
pub(crate) fn priority_hex(priority: i64) -> String {
    format!("{:016x}", (priority as u64) ^ (1 << 63))
}

/// The entry member's parts: the priority and the item's member (after the 16 hex digits of
/// the priority and the 16 of the sequence number); `None` for a member no queue wrote.
pub(crate) fn split_entry(entry: &[u8]) -> Option<(i64, &[u8])> {
    let hex = std::str::from_utf8(entry.get(..16)?).ok()?;
    let raw = u64::from_str_radix(hex, 16).ok()?;
    Some(((raw ^ (1 << 63)) as i64, entry.get(32..)?))
}

/// A document ready to be written with its companions: the document's JSON text (`null`
/// at each structure) and, per companion key in [`all_companions`](crate::keys::all_companions)
/// order, the arguments that fill it (a SET's members; a ZSET's `0 entry` pairs; a HASH's
/// `field value` pairs).
pub(crate) struct Split {
    pub(crate) doc: String,
    pub(crate) fills: Vec<Vec<String>>,
}

/// Splits the model `doc` (its document as a value, see
/// [`encode_model_value`](crate::codec::encode_model_value)), bound for `key`, into its
/// document and its companions' contents.
pub(crate) fn split(
    key: &str,
    mut doc: serde_json::Value,
    structures: &[Structure],
) -> Result<Split> {
    let mut fills = Vec::new();
    for s in structures {
        let Some(place) = at_mut(&mut doc, &s.names) else {
            // Absent from the document (serde skipped it): an empty structure.
            fills.extend(match s.kind {
                StructureKind::Set => vec![Vec::new()],
                StructureKind::Queue => vec![Vec::new(), Vec::new()],
            });
            continue;
        };
        let value = std::mem::replace(place, serde_json::Value::Null);
        let items = match value {
            serde_json::Value::Array(items) => items,
            serde_json::Value::Null => Vec::new(),
            _ => {
                return Err(Error::InvalidOp {
                    key: key.to_string(),
                    path: s.path(),
                    message: "a set or priority queue must serialize as a list".into(),
                });
            }
        };
        let text = |v: &serde_json::Value| {
            serde_json::to_string(v).map_err(|source| Error::Serialize {
                key: key.to_string(),
                source,
            })
        };
        match s.kind {
            StructureKind::Set => {
                let members = items.iter().map(text).collect::<Result<Vec<_>>>()?;
                fills.push(members);
            }
            StructureKind::Queue => {
                let (mut entries, mut index) = (Vec::new(), Vec::new());
                for (seq, pair) in items.iter().enumerate() {
                    let (item, priority) = match pair.as_array().map(Vec::as_slice) {
                        Some([item, priority]) => (item, priority.as_i64()),
                        _ => (pair, None),
                    };
                    let Some(priority) = priority else {
                        return Err(Error::InvalidOp {
                            key: key.to_string(),
                            path: s.path(),
                            message: "a priority queue must serialize as [item, priority] pairs"
                                .into(),
                        });
                    };
                    let member = text(item)?;
                    let entry = format!("{}{seq:016x}{member}", priority_hex(priority));
                    entries.push("0".to_string());
                    entries.push(entry.clone());
                    index.push(member);
                    index.push(entry);
                }
                if !index.is_empty() {
                    index.push(String::new());
                    index.push(items.len().to_string());
                }
                fills.push(entries);
                fills.push(index);
            }
        }
    }
    let doc = serde_json::to_string(&doc).map_err(|source| Error::Serialize {
        key: key.to_string(),
        source,
    })?;
    Ok(Split { doc, fills })
}

/// The document `doc` (as read) with each structure's contents, as the companions' replies
/// give them (a SET's members, a ZSET's entries in order; a HASH's reply is ignored), put in
/// its place: the JSON the model then decodes from.
pub(crate) fn join(
    key: &str,
    doc: &[u8],
    structures: &[Structure],
    contents: &[Vec<Vec<u8>>],
) -> Result<Vec<u8>> {
    let mut value: serde_json::Value = crate::codec::decode(key, doc)?;
    let mut contents = contents.iter();
    for s in structures {
        let items = match s.kind {
            StructureKind::Set => {
                let members = contents.next().map(Vec::as_slice).unwrap_or_default();
                let mut items = Vec::with_capacity(members.len());
                for m in members {
                    items.push(crate::codec::decode::<serde_json::Value>(key, m)?);
                }
                items
            }
            StructureKind::Queue => {
                let entries = contents.next().map(Vec::as_slice).unwrap_or_default();
                contents.next();
                let mut items = Vec::with_capacity(entries.len());
                for e in entries {
                    let (priority, member) = split_entry(e).ok_or_else(|| Error::Deserialize {
                        key: key.to_string(),
                        path: s.path(),
                        source: serde::de::Error::custom("a queue entry rapyer did not write"),
                    })?;
                    let item: serde_json::Value = crate::codec::decode(key, member)?;
                    items.push(serde_json::Value::Array(vec![item, priority.into()]));
                }
                items
            }
        };
        if let Some(place) = at_mut(&mut value, &s.names) {
            *place = serde_json::Value::Array(items);
        }
    }
    serde_json::to_vec(&value).map_err(|source| Error::Serialize {
        key: key.to_string(),
        source,
    })
}

/// Puts `null`, what a document holds there, at each structure of `doc` (a model's value).
pub(crate) fn blank(doc: &mut serde_json::Value, structures: &[Structure]) {
    for s in structures {
        if let Some(place) = at_mut(doc, &s.names) {
            *place = serde_json::Value::Null;
        }
    }
}

/// Each structure's value inside `doc` (null where there is none), in `structures`' order.
pub(crate) fn values(doc: &serde_json::Value, structures: &[Structure]) -> Vec<serde_json::Value> {
    structures
        .iter()
        .map(|s| {
            at(doc, &s.names)
                .cloned()
                .unwrap_or(serde_json::Value::Null)
        })
        .collect()
}

/// What a lock holder changed in the model's sets and queues, from `held` (their encoded
/// values when read under the lock) to `local` (now), as `lua/lock_save.lua` takes it: the
/// companion keys of the structures that changed (in order) and the arguments of the
/// changes, whose key indexes count from `first` (the index in KEYS of the first of those
/// keys). Per changed structure: `s` or `q`, its first key's index, its JSONPath, the members
/// removed (their count, then them) and the members added (their count, then them; a
/// queue's as pairs of the priority's hex digits and the member, in queue order, an item
/// whose priority changed among them).
pub(crate) fn lock_changes(
    namespace: &str,
    model_key: &str,
    structures: &[Structure],
    held: &[serde_json::Value],
    local: &[serde_json::Value],
    first: usize,
) -> Result<(Vec<String>, Vec<String>)> {
    // A structure's encoded items (a set's items, a queue's [item, priority] pairs).
    fn items(v: &serde_json::Value) -> &[serde_json::Value] {
        v.as_array().map_or(&[], Vec::as_slice)
    }
    let (mut keys, mut args) = (Vec::new(), Vec::new());
    for ((s, before), now) in structures.iter().zip(held).zip(local) {
        if before == now {
            continue;
        }
        let path = s.path();
        let (removed, added): (Vec<String>, Vec<String>) = match s.kind {
            StructureKind::Set => {
                let members = |v: &serde_json::Value| -> Result<BTreeSet<String>> {
                    items(v)
                        .iter()
                        .map(|i| member(model_key, &path, i))
                        .collect()
                };
                let (was, is) = (members(before)?, members(now)?);
                (
                    was.difference(&is).cloned().collect(),
                    is.difference(&was).cloned().collect(),
                )
            }
            StructureKind::Queue => {
                // [item, priority] pairs in queue order.
                let entries = |v: &serde_json::Value| -> Result<Vec<(String, i64)>> {
                    items(v)
                        .iter()
                        .map(|pair| {
                            let item = pair.get(0).unwrap_or(&serde_json::Value::Null);
                            let priority = pair.get(1).and_then(serde_json::Value::as_i64);
                            Ok((member(model_key, &path, item)?, priority.unwrap_or(0)))
                        })
                        .collect()
                };
                let was: HashMap<String, i64> = entries(before)?.into_iter().collect();
                let is = entries(now)?;
                let queued: BTreeSet<&String> = is.iter().map(|(m, _)| m).collect();
                let removed = was
                    .keys()
                    .filter(|m| !queued.contains(m))
                    .cloned()
                    .collect();
                let mut added = Vec::new();
                for (m, p) in &is {
                    if was.get(m) != Some(p) {
                        added.push(priority_hex(*p));
                        added.push(m.clone());
                    }
                }
                (removed, added)
            }
        };
        let kind = match s.kind {
            StructureKind::Set => "s",
            StructureKind::Queue => "q",
        };
        args.extend([
            kind.to_string(),
            (first + keys.len()).to_string(),
            path,
            removed.len().to_string(),
        ]);
        args.extend(removed);
        args.push(added.len().to_string());
        args.extend(added);
        keys.extend(s.keys(namespace, model_key).into_iter().map(|(k, _)| k));
    }
    Ok((keys, args))
}

/// The value at the JSON names `names` inside `doc`, if there is one.
fn at<'v>(doc: &'v serde_json::Value, names: &[&str]) -> Option<&'v serde_json::Value> {
    names
        .iter()
        .try_fold(doc, |value, name| value.as_object()?.get(*name))
}

/// The value at the JSON names `names` inside `doc`, if there is one, to change it.
fn at_mut<'v>(doc: &'v mut serde_json::Value, names: &[&str]) -> Option<&'v mut serde_json::Value> {
    names
        .iter()
        .try_fold(doc, |value, name| value.as_object_mut()?.get_mut(*name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_sort_as_bytes_as_they_do_as_numbers() {
        let ps = [i64::MIN, -5, -1, 0, 1, 2, 1 << 53, (1 << 53) + 1, i64::MAX];
        for w in ps.windows(2) {
            assert!(priority_hex(w[0]) < priority_hex(w[1]), "{w:?}");
        }
        for p in ps {
            let entry = format!("{}{:016x}\"x\"", priority_hex(p), 7);
            assert_eq!(split_entry(entry.as_bytes()), Some((p, &b"\"x\""[..])));
        }
        assert_eq!(split_entry(b"zz"), None);
    }

    #[test]
    fn the_same_value_is_the_same_member() {
        let mut a = std::collections::HashMap::new();
        let mut b = std::collections::HashMap::new();
        for i in 0..20 {
            a.insert(format!("k{i}"), i);
        }
        for i in (0..20).rev() {
            b.insert(format!("k{i}"), i);
        }
        assert_eq!(canonical(&a).ok(), canonical(&b).ok());
        let set: Set<std::collections::HashMap<String, i32>> = [a, b].into_iter().collect();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn a_queue_keeps_ties_in_push_order_and_moves_a_pushed_again_item() {
        let mut q = PriorityQueue::new();
        for (item, p) in [("a", 2), ("b", 1), ("c", 2), ("d", 1), ("a", 1)] {
            q.push(item, p);
        }
        let order: Vec<_> = q.iter().collect();
        assert_eq!(order, [(&"b", 1), (&"d", 1), (&"a", 1), (&"c", 2)]);
    }
}
