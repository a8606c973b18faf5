//! Typed field handles: `user.age().incr(&db, 1)` changes one field of a stored model on the
//! server, atomically, and writes the server's result into the local field.
//!
//! Every operation is one call of the library's script for it, `rapyer.field.<operation>`
//! (its function in `lua/field.lua` with the pieces it uses), which checks the document and the field's JSON type before it writes, re-arms the model's
//! expiry in the same step, and returns the field's new value. The handle decodes that value
//! into the local field; a failed operation leaves the local field as it was. A list
//! `append`/`extend`, a `toggle`, a string `append` and an optional or value field's `set`
//! on a model without an expiry, and a `load` or `len` on one that re-arms none on reads,
//! are the bare RedisJSON command instead, which writes nothing where the script would
//! fail; the script then runs only to give the typed error (see `src/field/bare.rs`).
//!
//! A field's handle is chosen by its type through [`FieldType`]: integers get [`RedisInt`],
//! floats [`RedisFloat`], `String` [`RedisStr`], `bool` [`RedisBool`], `Vec<T>`
//! [`RedisList`], `HashMap`/`BTreeMap<String, V>` [`RedisDict`], `chrono` date-times
//! [`RedisDatetime`], [`crate::Bytes`] [`RedisBytes`], `Option<T>` [`RedisOption`], nested
//! models their own handle with one accessor per field, [`crate::CircularBuffer`]
//! [`RedisBuffer`], and `#[rapyer(value)]` fields (or
//! types implementing [`FieldType`] that way) [`RedisValue`] (`load` and `set`).
//!
//! ```no_run
//! use rapyer::prelude::*;
//! use std::collections::HashMap;
//!
//! #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
//! struct Address { city: String }
//!
//! #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
//! struct User {
//!     #[rapyer(key)] id: String,
//!     age: i64,
//!     name: String,
//!     tags: Vec<String>,
//!     prefs: HashMap<String, String>,
//!     address: Address,
//! }
//!
//! # async fn demo(db: &Db, user: &mut User) -> rapyer::Result<()> {
//! let age = user.age().incr(db, 1).await?;      // Overflow, never a silent wrap
//! assert_eq!(age, user.age);                    // the local field holds the server's value
//! user.name().append(db, "!").await?;
//! user.tags().insert(db, 0, "new").await?;      // Python's list.insert
//! let last = user.tags().pop(db).await?;
//! user.prefs().insert(db, "a.b [\"c\"]", "v").await?; // a key is data, never a JSONPath
//! user.address().city().set(db, "Paris").await?; // nested models, field by field
//! # Ok(()) }
//! ```
//!
//! A handle has only the operations its type supports; a string has no `incr`:
//!
//! ```compile_fail
//! # use rapyer::prelude::*;
//! # #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
//! # struct User { #[rapyer(key)] id: String, age: i64, name: String }
//! # async fn demo(db: &Db, user: &mut User) -> rapyer::Result<()> {
//! user.name().incr(db, 1).await?; // `name` is a RedisStr: append, len, set, load
//! # Ok(()) }
//! ```

mod bare;
mod boolean;
mod buffer;
mod bytes;
mod dict;
mod list;
mod number;
mod op;
mod queue;
mod safe;
mod set;
mod text;
#[cfg(feature = "chrono")]
mod time;

use std::borrow::Cow;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use boolean::RedisBool;
pub use buffer::RedisBuffer;
pub use bytes::RedisBytes;
pub use dict::{Dict, RedisDict};
pub use list::{ListRange, RedisList};
pub use number::{Float, Integer, RedisFloat, RedisInt};
pub use queue::RedisPriorityQueue;
pub use safe::RedisSafe;
pub use set::RedisSet;
pub use text::RedisStr;
#[cfg(feature = "chrono")]
pub use time::{RedisDatetime, Zone};

pub(crate) use op::{FieldOp, Want};

use crate::codec;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::keys::{KeySettings, Structure, key_of, read_ttl, structures_of};
use crate::script::failure;

/// A type that can be a field of a model, and the handle its accessor returns.
///
/// Implemented for integers, floats, `String`, `bool`, every `#[derive(AtomicModel)]`
/// struct (nested models), and, with [`RedisValue`] handles, for the other common serde
/// types. `i128` and `u128` get a `RedisValue` handle too: stored as JSON integers, they
/// hold exactly what RedisJSON does, `i64::MIN ..= u64::MAX`, and every write of a wider
/// value is refused before it is sent ([`Error::Overflow`]). Implement it for your own type with `type Handle<'a> = RedisValue<'a, Self>` (or
/// mark the field `#[rapyer(value)]`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no rapyer field handle",
    label = "this field's type has no handle",
    note = "mark the field #[rapyer(value)] to get a RedisValue handle (load and set), or \
            implement rapyer::FieldType for the type"
)]
pub trait FieldType: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The handle of a field of this type.
    type Handle<'a>;

    /// The handle on `value`, the local copy of the field at `at`.
    fn handle(value: &mut Self, at: At) -> Self::Handle<'_>;
}

/// Where a field lives: its model's key, its JSON path, and the model's expiry policy.
///
/// Built by the code `#[derive(AtomicModel)]` generates; not constructed by users.
#[derive(Debug, Clone)]
pub struct At {
    /// The model's key without the namespace (`User:u1`).
    key: String,
    /// The field's JSONPath (`$.address.city`).
    path: String,
    /// The expiry every write re-arms.
    write_ttl: Option<Duration>,
    /// The expiry every read re-arms (`refresh_on_read`).
    read_ttl: Option<Duration>,
    /// The field is in the search index (a date-time then keeps its instant beside it).
    indexed: bool,
    /// The special structures the model keeps in companion keys, which every operation
    /// re-arms with the document.
    structures: Vec<Structure>,
}

impl At {
    /// The root of the stored model `model`.
    pub(crate) fn root<M: KeySettings>(model: &M) -> At {
        At::root_field(model, "")
    }

    /// The field reached from the root of the stored model `model` by `segment` (`""` for
    /// the root itself).
    pub(crate) fn root_field<M: KeySettings>(model: &M, segment: &str) -> At {
        let mut path = String::with_capacity(1 + segment.len());
        path.push('$');
        path.push_str(segment);
        At {
            key: key_of::<M>(model.model_id()),
            path,
            write_ttl: M::TTL,
            read_ttl: read_ttl::<M>(),
            indexed: false,
            structures: structures_of::<M>(),
        }
    }

    /// The same place, marked as a field of the search index.
    pub(crate) fn indexed(mut self) -> At {
        self.indexed = true;
        self
    }

    /// The JSONPath of the indexed instant beside this date-time, or `""` when not indexed.
    #[cfg(feature = "chrono")]
    pub(crate) fn instant_path(&self) -> String {
        if self.indexed {
            crate::codec::shadow_path(&self.path)
        } else {
            String::new()
        }
    }

    /// The field reached from here by `segment` (`.name` or `["name"]`, built by the derive).
    pub(crate) fn field(&self, segment: &str) -> At {
        let mut path = String::with_capacity(self.path.len() + segment.len());
        path.push_str(&self.path);
        path.push_str(segment);
        At {
            key: self.key.clone(),
            path,
            write_ttl: self.write_ttl,
            read_ttl: self.read_ttl,
            indexed: false,
            structures: self.structures.clone(),
        }
    }

    /// The JSONPath of the field.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The model's key, without the namespace.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Runs `op` on the field and decodes the field's value afterwards. `want` lists the JSON
    /// types the field may hold; `operands` follow the script's order.
    pub(crate) async fn run<T: DeserializeOwned>(
        &self,
        db: &Db,
        op: FieldOp,
        want: Want,
        operands: &[&str],
    ) -> Result<T> {
        let keys = self.document_keys(db);
        let reply: Vec<u8> = self.call_with(db, &keys, op, want, operands).await?;
        self.decode_at(&keys[0], want, &reply)
    }

    /// Runs `op` on the field and returns the script's reply as it is.
    pub(crate) async fn call<R: redis::FromRedisValue>(
        &self,
        db: &Db,
        op: FieldOp,
        want: Want,
        operands: &[&str],
    ) -> Result<R> {
        self.call_with(db, &self.document_keys(db), op, want, operands)
            .await
    }

    /// [`call`](At::call) with the field's [`document_keys`](At::document_keys).
    async fn call_with<R: redis::FromRedisValue>(
        &self,
        db: &Db,
        keys: &[String],
        op: FieldOp,
        want: Want,
        operands: &[&str],
    ) -> Result<R> {
        let ttl = if op.reads_only() {
            self.read_ttl
        } else {
            self.write_ttl
        };
        let ttl = match ttl {
            Some(ttl) => Cow::Owned(codec::ttl_millis(ttl).to_string()),
            // Nothing to re-arm: the bare command may do it alone.
            None => {
                if let Some(reply) = bare::run(db, op, want, &keys[0], &self.path, operands).await?
                {
                    return Ok(reply);
                }
                Cow::Borrowed("0")
            }
        };
        // The operation is the script's own (`rapyer.field.<op>`), so it is not sent.
        let mut args: Vec<&str> = Vec::with_capacity(3 + operands.len());
        args.extend([self.path.as_str(), want.types, &ttl]);
        args.extend_from_slice(operands);
        db.run_field(op.lua_name(), keys, &args)
            .await
            .map_err(|e| failure::document_error(e, &keys[0]))
    }

    /// The model's key, then every companion key of its structures (which expire with it).
    pub(crate) fn document_keys(&self, db: &Db) -> Vec<String> {
        let key = db.key(&self.key);
        if self.structures.is_empty() {
            return vec![key];
        }
        let mut keys = Vec::with_capacity(1 + self.structures.len());
        keys.extend(
            crate::keys::all_companions(db.namespace(), &key, &self.structures)
                .into_iter()
                .map(|(k, _)| k),
        );
        keys.insert(0, key);
        keys
    }

    /// Decodes a JSONPath reply holding exactly one value (`[value]`).
    pub(crate) fn decode_one<T: DeserializeOwned>(
        &self,
        db: &Db,
        want: Want,
        reply: &[u8],
    ) -> Result<T> {
        self.decode_at(&db.key(&self.key), want, reply)
    }

    /// [`decode_one`](At::decode_one) of the field of the document stored at `key`.
    fn decode_at<T: DeserializeOwned>(&self, key: &str, want: Want, reply: &[u8]) -> Result<T> {
        let mut values: Vec<T> = codec::decode_at(key, &self.path, reply)?;
        match values.pop() {
            Some(value) if values.is_empty() => Ok(value),
            _ => Err(Error::TypeMismatch {
                key: key.to_string(),
                path: self.path.clone(),
                expected: failure::expected(want.types).to_string(),
                found: "nothing".to_string(),
            }),
        }
    }
}

/// A length or position in a list or dict script's reply (an integer, or its text).
pub(crate) fn reply_usize(value: Option<&redis::Value>) -> usize {
    match value {
        Some(redis::Value::Int(n)) => usize::try_from(*n).unwrap_or(0),
        Some(redis::Value::BulkString(b)) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

/// Encodes `value` as JSON text for the script, naming the key on failure; a NaN or infinite
/// float in it is [`Error::NonFinite`] naming the field's path (and the float's place in the
/// value), refused before anything is sent.
pub(crate) fn json<T: Serialize + ?Sized>(db: &Db, at: &At, value: &T) -> Result<String> {
    codec::encode(&db.key(&at.key), &at.path, value)
}

/// A handle on a field of any serde type (`#[rapyer(value)]`, [`crate::Id`],
/// `serde_json::Value`, …): read it with [`load`](RedisValue::load), replace
/// it with [`set`](RedisValue::set).
#[derive(Debug)]
pub struct RedisValue<'a, T> {
    value: &'a mut T,
    at: At,
}

impl<'a, T: Serialize + DeserializeOwned + Send + Sync> RedisValue<'a, T> {
    /// The handle on `value` at `at`.
    pub fn new(value: &'a mut T, at: At) -> RedisValue<'a, T> {
        RedisValue { value, at }
    }

    /// Reads the field from the server (its JSONPath, in the field script) into the local
    /// field, and returns the local field (clone it for an owned copy).
    pub async fn load(&mut self, db: &Db) -> Result<&T> {
        *self.value = self.at.run(db, FieldOp::Get, Want::ANY, &[]).await?;
        Ok(&*self.value)
    }

    /// Replaces the field on the server with `value` (re-arming the model's expiry) and
    /// stores the server's result in the local field.
    pub async fn set(&mut self, db: &Db, value: T) -> Result<()> {
        let text = json(db, &self.at, &value)?;
        *self.value = self.at.run(db, FieldOp::Set, Want::ANY, &[&text]).await?;
        Ok(())
    }

    /// Where the field lives.
    pub fn at(&self) -> &At {
        &self.at
    }
}

/// `RedisValue` handles for the serde types that have no richer handle yet.
macro_rules! value_handles {
    ($(impl<$($param:ident: $bound:path),*> for $ty:ty;)*) => {
        $(
            impl<$($param: $bound),*> FieldType for $ty {
                type Handle<'a> = RedisValue<'a, Self>;
                fn handle(value: &mut Self, at: At) -> RedisValue<'_, Self> {
                    RedisValue::new(value, at)
                }
            }
        )*
    };
}

// RedisJSON holds integers exactly only within `i64::MIN ..= u64::MAX`: an `i128`/`u128` is
// written as a JSON integer when it fits, and refused before sending (`Error::Overflow`)
// when it does not, as it would be stored as a float that no longer loads.
value_handles! {
    impl<> for i128;
    impl<> for u128;
    impl<> for crate::Id;
    impl<> for serde_json::Value;
}

#[cfg(feature = "chrono")]
value_handles! {
    impl<> for chrono::NaiveDate;
    impl<> for chrono::NaiveDateTime;
}

impl<T: FieldType> FieldType for Option<T> {
    type Handle<'a> = RedisOption<'a, T>;
    fn handle(value: &mut Self, at: At) -> RedisOption<'_, T> {
        RedisOption { value, at }
    }
}

/// A handle on an `Option<T>` field (stored as the value, or `null`).
#[derive(Debug)]
pub struct RedisOption<'a, T> {
    value: &'a mut Option<T>,
    at: At,
}

impl<T: FieldType> RedisOption<'_, T> {
    /// Replaces the value on the server (`None` stores `null`).
    pub async fn set(&mut self, db: &Db, value: Option<T>) -> Result<()> {
        let text = json(db, &self.at, &value)?;
        *self.value = self.at.run(db, FieldOp::Set, Want::ANY, &[&text]).await?;
        Ok(())
    }

    /// Stores `null`; returns the value the local field held.
    pub async fn take(&mut self, db: &Db) -> Result<Option<T>> {
        let cleared: Option<T> = self.at.run(db, FieldOp::Set, Want::ANY, &["null"]).await?;
        Ok(std::mem::replace(self.value, cleared))
    }

    /// Reads the value from the server into the local field, and returns it. A field absent
    /// from the document (`#[serde(skip_serializing_if = "Option::is_none")]` leaves it out)
    /// is `None`, as serde reads it.
    pub async fn load(&mut self, db: &Db) -> Result<&Option<T>> {
        let reply: Vec<u8> = self.at.call(db, FieldOp::Get, Want::ANY, &[]).await?;
        let key = db.key(&self.at.key);
        let mut values: Vec<Option<T>> = codec::decode_at(&key, &self.at.path, &reply)?;
        *self.value = match values.pop() {
            None => None,
            Some(value) if values.is_empty() => value,
            Some(_) => {
                return Err(Error::TypeMismatch {
                    key,
                    path: self.at.path.clone(),
                    expected: failure::expected(Want::ANY.types).to_string(),
                    found: "several values".to_string(),
                });
            }
        };
        Ok(&*self.value)
    }

    /// Where the field lives.
    pub fn at(&self) -> &At {
        &self.at
    }
}
