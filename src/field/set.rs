//! The handle of a [`Set`] field: each operation is one call of the library's structure
//! script (`lua/structure.lua`) on the set's companion SET, which checks the model's document
//! first and re-arms the expiry of the document and of every companion key in the same step.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{At, FieldType};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::keys::StructureKind;
use crate::structures::{self, Set, SetOperand};

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> FieldType for Set<T> {
    type Handle<'a> = RedisSet<'a, T>;
    fn handle(value: &mut Self, at: At) -> RedisSet<'_, T> {
        RedisSet { value, at }
    }
}

/// The handle on a [`Set`] field: atomic set operations on the model's companion SET, each
/// writing the server's answer into the local set (an added item is in it, a removed or
/// popped one is not, `members` replaces it whole).
///
/// ```no_run
/// # use rapyer::prelude::*;
/// #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
/// struct User { #[rapyer(key)] id: String, tags: rapyer::Set<String> }
/// # async fn demo(db: &Db, ann: &mut User, bob: &mut User) -> rapyer::Result<()> {
/// ann.tags().add(db, "rust".to_string()).await?;           // SADD: true if new
/// assert!(ann.tags().contains(db, &"rust".to_string()).await?);
/// let n = ann.tags().union_into(db, &bob.tags()).await?;    // ann's set becomes ann ∪ bob
/// assert_eq!(n, ann.tags.len());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisSet<'a, T> {
    value: &'a mut Set<T>,
    at: At,
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> RedisSet<'_, T> {
    /// Adds `item`; `true` when it was not in the set.
    pub async fn add(&mut self, db: &Db, item: T) -> Result<bool> {
        let member = self.member(db, &item)?;
        let reply = self
            .call(db, "sadd", false, vec![member.clone()], None)
            .await?;
        self.value.insert_member(member, item);
        Ok(int(&reply, 0) == 1)
    }

    /// Adds every item in one step; returns how many were not in the set.
    pub async fn add_many(&mut self, db: &Db, items: impl IntoIterator<Item = T>) -> Result<usize> {
        let mut members = Vec::new();
        let mut pending = Vec::new();
        for item in items {
            let member = self.member(db, &item)?;
            members.push(member.clone());
            pending.push((member, item));
        }
        if members.is_empty() {
            return Ok(0);
        }
        let reply = self.call(db, "sadd", false, members, None).await?;
        for (member, item) in pending {
            self.value.insert_member(member, item);
        }
        Ok(count(int(&reply, 0)))
    }

    /// Removes `item`; `true` when it was in the set.
    pub async fn remove(&mut self, db: &Db, item: &T) -> Result<bool> {
        let member = self.member(db, item)?;
        let reply = self
            .call(db, "srem", false, vec![member.clone()], None)
            .await?;
        self.value.remove_member(&member);
        Ok(int(&reply, 0) == 1)
    }

    /// Whether the set holds `item` on the server (the local set then holds it too, or not).
    pub async fn contains(&mut self, db: &Db, item: &T) -> Result<bool> {
        let member = self.member(db, item)?;
        let reply = self
            .call(db, "sismember", true, vec![member.clone()], None)
            .await?;
        let found = int(&reply, 0) == 1;
        if found {
            let item = structures::item(&db.key(self.at.key()), self.at.path(), member.as_bytes())?;
            self.value.insert_member(member, item);
        } else {
            self.value.remove_member(&member);
        }
        Ok(found)
    }

    /// How many items the set holds on the server (`SCARD`).
    pub async fn len(&mut self, db: &Db) -> Result<usize> {
        let reply = self.call(db, "scard", true, Vec::new(), None).await?;
        Ok(count(int(&reply, 0)))
    }

    /// Removes and returns an arbitrary item (`SPOP`); `None` when the set is empty.
    pub async fn pop(&mut self, db: &Db) -> Result<Option<T>> {
        let reply = self.call(db, "spop", false, Vec::new(), None).await?;
        let Some(member) = bulks(&reply).into_iter().next() else {
            return Ok(None);
        };
        let item = structures::item(&db.key(self.at.key()), self.at.path(), &member)?;
        self.value
            .remove_member(std::str::from_utf8(&member).unwrap_or_default());
        Ok(Some(item))
    }

    /// Reads every item from the server into the local set, and returns the local set.
    pub async fn members(&mut self, db: &Db) -> Result<&Set<T>> {
        let reply = self.call(db, "smembers", true, Vec::new(), None).await?;
        self.replace(db, &reply)?;
        Ok(&*self.value)
    }

    /// Empties the set.
    pub async fn clear(&mut self, db: &Db) -> Result<()> {
        self.call(db, "sclear", false, Vec::new(), None).await?;
        self.value.clear_local();
        Ok(())
    }

    /// Makes this set the union of itself and `other` (another model's set of the same item
    /// type, or this one's) on the server (`SUNIONSTORE`), reads the result into the local set
    /// and returns its size. `other` is only read; its model must be stored. It is a loaded
    /// model's set handle (`&bob.tags()`) or a server reference to a stored model's set
    /// (`User::server_ref_for("bob").tags()`), which loads nothing: see [`SetOperand`].
    ///
    /// Both models' keys must share a cluster slot (give them one hash tag): otherwise
    /// [`Error::CrossSlot`], before anything is sent, on a single server too.
    pub async fn union_into(&mut self, db: &Db, other: impl SetOperand<T>) -> Result<usize> {
        self.store(db, "SUNIONSTORE", &other).await
    }

    /// Makes this set the intersection of itself and `other` (`SINTERSTORE`); see
    /// [`union_into`](Self::union_into).
    pub async fn intersect_into(&mut self, db: &Db, other: impl SetOperand<T>) -> Result<usize> {
        self.store(db, "SINTERSTORE", &other).await
    }

    /// Makes this set the items of itself that are not in `other` (`SDIFFSTORE`); see
    /// [`union_into`](Self::union_into).
    pub async fn difference_into(&mut self, db: &Db, other: impl SetOperand<T>) -> Result<usize> {
        self.store(db, "SDIFFSTORE", &other).await
    }

    /// Where the set lives: its model's key and its JSONPath.
    pub fn at(&self) -> &At {
        &self.at
    }

    async fn store(&mut self, db: &Db, command: &str, other: &impl SetOperand<T>) -> Result<usize> {
        let (other_key, other_path, kept) = other.set_place();
        if !kept {
            return Err(Error::InvalidOp {
                key: db.key(&other_key),
                path: other_path,
                message: "this set is not kept in a companion key (one inside a list, a dict or \
                          an option is stored in the document): it cannot take part in set \
                          algebra"
                    .into(),
            });
        }
        let operands = vec![command.to_string(), other_path.clone()];
        let reply = self
            .call(
                db,
                "sstore",
                false,
                operands,
                Some((&other_key, &other_path)),
            )
            .await?;
        self.replace(db, &reply)?;
        Ok(self.value.len())
    }

    fn member(&self, db: &Db, item: &T) -> Result<String> {
        structures::member(&db.key(self.at.key()), self.at.path(), item)
    }

    fn replace(&mut self, db: &Db, reply: &redis::Value) -> Result<()> {
        let key = db.key(self.at.key());
        let mut fresh = Set::new();
        for member in bulks(reply) {
            let item = structures::item(&key, self.at.path(), &member)?;
            fresh.insert_member(String::from_utf8_lossy(&member).into_owned(), item);
        }
        *self.value = fresh;
        Ok(())
    }

    async fn call(
        &self,
        db: &Db,
        op: &str,
        reads: bool,
        operands: Vec<String>,
        other: Option<(&str, &str)>,
    ) -> Result<redis::Value> {
        self.at
            .structure_call(db, StructureKind::Set, op, reads, operands, other)
            .await
    }
}

/// A loaded model's set handle as the other set of the set algebra.
impl<T> SetOperand<T> for &RedisSet<'_, T> {
    fn set_place(&self) -> (String, String, bool) {
        (self.at.key().to_string(), self.at.path().to_string(), true)
    }
}

/// The integer at `i` of a structure script's reply (0 when there is none).
pub(super) fn int(reply: &redis::Value, i: usize) -> i64 {
    match reply {
        redis::Value::Array(items) => match items.get(i) {
            Some(redis::Value::Int(n)) => *n,
            _ => 0,
        },
        _ => 0,
    }
}

/// A count from the server as a `usize`.
pub(super) fn count(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

/// The byte strings of a structure script's reply, in order.
pub(super) fn bulks(reply: &redis::Value) -> Vec<Vec<u8>> {
    match reply {
        redis::Value::Array(items) => items
            .iter()
            .filter_map(|v| match v {
                redis::Value::BulkString(b) => Some(b.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

impl At {
    /// Runs the structure operation `op` on the structure of kind `kind` at this place (the
    /// library's structure script): `reads` says which of the model's expiries it re-arms;
    /// `other`, for the set algebra, is another model's key (without the namespace) and its
    /// set's JSONPath, which must share this model's cluster slot ([`Error::CrossSlot`]
    /// before anything is sent).
    pub(crate) async fn structure_call(
        &self,
        db: &Db,
        kind: StructureKind,
        op: &str,
        reads: bool,
        operands: Vec<String>,
        other: Option<(&str, &str)>,
    ) -> Result<redis::Value> {
        let mut keys = self.document_keys(db);
        let companions = keys.len() - 1;
        let Some(target) = self.structure_index(kind) else {
            return Err(Error::InvalidOp {
                key: keys.swap_remove(0),
                path: self.path().to_string(),
                message: "this structure is not kept in a companion key (a set or queue \
                          inside a list, dict or option is stored in the document as a list)"
                    .into(),
            });
        };
        if let Some((other_key, other_path)) = other {
            let other_key = db.key(other_key);
            let set = crate::keys::companion_keys(db.namespace(), &other_key, kind, other_path);
            keys.push(other_key);
            keys.extend(set.into_iter().map(|(k, _)| k));
            let slot = crate::slot::hash_slot(keys[0].as_bytes());
            if keys
                .iter()
                .any(|k| crate::slot::hash_slot(k.as_bytes()) != slot)
            {
                return Err(Error::CrossSlot { keys });
            }
        }
        let ttl = if reads { self.read_ttl } else { self.write_ttl };
        let mut args = Vec::with_capacity(5 + operands.len());
        args.push(op.to_string());
        args.push(companions.to_string());
        args.push(ttl.map_or(0, crate::codec::ttl_millis).to_string());
        args.push(self.path().to_string());
        args.push((2 + target).to_string());
        args.extend(operands);
        db.run_lua(&crate::script::library::STRUCTURE, &keys, &args)
            .await
            .map_err(|e| match e {
                Error::OutOfMemory { .. } => Error::OutOfMemory {
                    key: keys[0].clone(),
                },
                e => crate::script::failure::keyed_error(e, &keys),
            })
    }

    /// Refuses replacing the value here when it holds a set or a queue, whose members live
    /// in companion keys that a write of the document would not change.
    pub(crate) fn refuse_structures(&self, db: &Db) -> Result<()> {
        let inside = |p: &str| {
            p.strip_prefix(self.path.as_str())
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        };
        if self.structures.iter().any(|s| inside(&s.path())) {
            return Err(Error::InvalidOp {
                key: db.key(&self.key),
                path: self.path.clone(),
                message: "this model holds a set or a priority queue, whose members live in                           companion keys: replace its other fields one by one, or save the                           whole model"
                    .into(),
            });
        }
        Ok(())
    }

    /// The position, among the model's companion keys, of the first one of the structure of
    /// kind `kind` at this place.
    fn structure_index(&self, kind: StructureKind) -> Option<usize> {
        let mut at = 0;
        for s in self.structures.iter() {
            if s.kind == kind && s.path() == self.path {
                return Some(at);
            }
            at += crate::keys::companion_types(std::slice::from_ref(s)).len();
        }
        None
    }
}
