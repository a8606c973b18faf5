//! The handle on a dict field (`HashMap<String, V>` or `BTreeMap<String, V>`), whose keys are
//! data, never JSONPath syntax.

use std::collections::{BTreeMap, HashMap};

use redis::Value;
use serde::de::DeserializeOwned;

use super::{At, FieldType, Want, json};
use crate::db::Db;
use crate::error::{Error, Result};

/// A map with `String` keys that a [`RedisDict`] mirrors.
pub trait Dict: FieldType + Default {
    /// The type of the values.
    type Value: FieldType;
    /// Inserts, returning the previous value.
    fn put(&mut self, key: String, value: Self::Value) -> Option<Self::Value>;
    /// Removes, returning the value.
    fn take(&mut self, key: &str) -> Option<Self::Value>;
    /// The value under `key`.
    fn lookup(&self, key: &str) -> Option<&Self::Value>;
    /// The number of entries.
    fn size(&self) -> usize;
    /// Removes every entry.
    fn empty(&mut self);
}

macro_rules! dicts {
    ($($map:ident),*) => {
        $(
            impl<V: FieldType> Dict for $map<String, V> {
                type Value = V;
                fn put(&mut self, key: String, value: V) -> Option<V> {
                    self.insert(key, value)
                }
                fn take(&mut self, key: &str) -> Option<V> {
                    self.remove(key)
                }
                fn lookup(&self, key: &str) -> Option<&V> {
                    self.get(key)
                }
                fn size(&self) -> usize {
                    self.len()
                }
                fn empty(&mut self) {
                    self.clear()
                }
            }

            impl<V: FieldType> FieldType for $map<String, V> {
                type Handle<'a> = RedisDict<'a, Self>;
                fn handle(value: &mut Self, at: At) -> RedisDict<'_, Self> {
                    RedisDict { value, at }
                }
            }
        )*
    };
}

dicts!(HashMap, BTreeMap);

/// A handle on a dict field: `user.prefs().insert(&db, "theme", "dark")`.
///
/// Any string is a key: `a.b`, `x y`, quotes of either kind, `['inj']`, `$`, `*`, a
/// backslash, a newline, an emoji, surrounding spaces. A key JSONPath can address (no
/// backslash, no control character, not both quote kinds, no whitespace at either end) is
/// reached by a quoted path step; any other key travels
/// only inside JSON values (`JSON.MERGE` patches built by serde), so no key is ever parsed as
/// path syntax. For those keys a merge patch drops `null` members inside an object value.
///
/// Every operation is one script call; the local map gets the same change, and is reloaded
/// when its size disagrees with the server's afterwards.
#[derive(Debug)]
pub struct RedisDict<'a, M> {
    value: &'a mut M,
    at: At,
}

impl<M: Dict> RedisDict<'_, M> {
    /// Sets `key` to `value`; returns the value it had on the server.
    pub async fn insert(
        &mut self,
        db: &Db,
        key: &str,
        value: impl Into<M::Value>,
    ) -> Result<Option<M::Value>> {
        let value: M::Value = value.into();
        let operands = self.set_operands(db, key, &value)?;
        let operands: Vec<&str> = operands.iter().map(String::as_str).collect();
        let reply: Vec<Value> = self.at.call(db, "dset", Want::OBJECT, &operands).await?;
        let previous = self.previous(db, key, reply.get(1))?;
        self.value.put(key.to_string(), value);
        self.sync(db, &reply).await?;
        Ok(previous)
    }

    /// Sets every entry, in one step.
    pub async fn update(
        &mut self,
        db: &Db,
        entries: impl IntoIterator<Item = (String, M::Value)>,
    ) -> Result<()> {
        let entries: Vec<(String, M::Value)> = entries.into_iter().collect();
        if entries.is_empty() {
            return Ok(());
        }
        let mut operands = Vec::with_capacity(entries.len() * 4);
        for (key, value) in &entries {
            operands.extend(self.set_operands(db, key, value)?);
        }
        let operands: Vec<&str> = operands.iter().map(String::as_str).collect();
        let reply: Vec<Value> = self.at.call(db, "dset", Want::OBJECT, &operands).await?;
        for (key, value) in entries {
            self.value.put(key, value);
        }
        self.sync(db, &reply).await
    }

    /// Removes `key`; returns the value it had on the server.
    pub async fn remove(&mut self, db: &Db, key: &str) -> Result<Option<M::Value>> {
        let (step, delete) = (step(key), patch(db, &self.at, key, None::<&()>)?);
        let reply: Vec<Value> = self
            .at
            .call(db, "ddel", Want::OBJECT, &[&step, &delete])
            .await?;
        let previous = self.previous(db, key, reply.get(1))?;
        self.value.take(key);
        self.sync(db, &reply).await?;
        Ok(previous)
    }

    /// The value under `key` on the server (stored locally too), `None` when absent.
    pub async fn get(&mut self, db: &Db, key: &str) -> Result<Option<M::Value>>
    where
        M::Value: Clone,
    {
        let reply: Vec<Value> = self
            .at
            .call(db, "dget", Want::OBJECT, &[&step(key), ""])
            .await?;
        let value = self.previous(db, key, reply.get(1))?;
        if let Some(value) = &value
            && server_len(&reply)
                == self.value.size() + usize::from(self.value.lookup(key).is_none())
        {
            self.value.put(key.to_string(), value.clone());
        }
        Ok(value)
    }

    /// Every key on the server, in the stored order.
    pub async fn keys(&mut self, db: &Db) -> Result<Vec<String>> {
        let reply: Vec<Value> = self.at.call(db, "dkeys", Want::OBJECT, &[]).await?;
        reply[1.min(reply.len())..]
            .iter()
            .map(|k| match k {
                Value::BulkString(bytes) => {
                    String::from_utf8(bytes.clone()).map_err(|e| self.bad_reply(db, &e.to_string()))
                }
                other => Err(self.bad_reply(db, &format!("{other:?}"))),
            })
            .collect()
    }

    /// Removes every entry.
    pub async fn clear(&mut self, db: &Db) -> Result<()> {
        let reply: Vec<Value> = self.at.call(db, "dclear", Want::OBJECT, &[]).await?;
        self.value.empty();
        self.sync(db, &reply).await
    }

    /// The number of entries on the server.
    pub async fn len(&mut self, db: &Db) -> Result<usize> {
        let reply: Vec<Value> = self.at.call(db, "dlen", Want::OBJECT, &[]).await?;
        Ok(server_len(&reply))
    }

    /// Replaces the whole dict.
    pub async fn replace(&mut self, db: &Db, map: M) -> Result<()> {
        let text = json(db, &self.at, &map)?;
        *self.value = self.at.run(db, "set", Want::OBJECT, &[&text]).await?;
        Ok(())
    }

    /// Reads the whole dict from the server into the local field, and returns it.
    pub async fn load(&mut self, db: &Db) -> Result<&M> {
        *self.value = self.at.run(db, "get", Want::OBJECT, &[]).await?;
        Ok(&*self.value)
    }

    /// Where the field lives.
    pub fn at(&self) -> &At {
        &self.at
    }

    /// The four script operands that set `key` to `value`. A non-finite float in `value` is
    /// refused naming the entry's path (`$.prefs["key"]`).
    fn set_operands(&self, db: &Db, key: &str, value: &M::Value) -> Result<[String; 4]> {
        let mut entry_step = String::new();
        crate::path::push_entry_text(&mut entry_step, key);
        let entry = self.at.field(&entry_step);
        Ok([
            step(key),
            json(db, &entry, value)?,
            patch(db, &self.at, key, None::<&()>)?,
            patch(db, &self.at, key, Some(value))?,
        ])
    }

    /// Decodes an entry's value as the script returned it: `[value]`, `[]` when absent, or
    /// `[{whole dict}]` for a key without a path step.
    fn previous(&self, db: &Db, key: &str, reply: Option<&Value>) -> Result<Option<M::Value>> {
        let Some(Value::BulkString(bytes)) = reply else {
            return Err(self.bad_reply(db, &format!("{reply:?}")));
        };
        let full_key = db.key(self.at.key());
        if step(key).is_empty() {
            let mut whole: Vec<serde_json::Map<String, serde_json::Value>> =
                crate::codec::decode_at(&full_key, self.at.path(), bytes)?;
            return match whole.pop().and_then(|mut map| map.remove(key)) {
                Some(value) => from_value(&full_key, self.at.path(), value).map(Some),
                None => Ok(None),
            };
        }
        let mut values: Vec<M::Value> = crate::codec::decode_at(&full_key, self.at.path(), bytes)?;
        Ok(values.pop())
    }

    /// Reloads the dict when the local copy's size disagrees with the server's.
    async fn sync(&mut self, db: &Db, reply: &[Value]) -> Result<()> {
        if self.value.size() != server_len(reply) {
            self.load(db).await?;
        }
        Ok(())
    }

    fn bad_reply(&self, db: &Db, what: &str) -> Error {
        Error::Script {
            name: "rapyer.field".into(),
            message: format!(
                "unexpected dict reply for {} {}: {what}",
                db.key(self.at.key()),
                self.at.path()
            ),
        }
    }
}

/// The JSONPath step to `key` ([`push_entry`](crate::path::push_entry)), or empty when no
/// step addresses it: the script then reads and writes the entry inside the whole dict.
fn step(key: &str) -> String {
    let mut step = String::new();
    crate::path::push_entry(&mut step, key);
    step
}

/// The merge patch `{key: value}`, or `{key: null}` (which deletes the key).
fn patch<T: serde::Serialize + ?Sized>(
    db: &Db,
    at: &At,
    key: &str,
    value: Option<&T>,
) -> Result<String> {
    let mut object = serde_json::Map::new();
    let value = match value {
        Some(value) => serde_json::to_value(value).map_err(|source| Error::Serialize {
            key: db.key(at.key()),
            source,
        })?,
        None => serde_json::Value::Null,
    };
    object.insert(key.to_string(), value);
    json(db, at, &object)
}

fn from_value<T: DeserializeOwned>(key: &str, path: &str, value: serde_json::Value) -> Result<T> {
    serde_json::from_value(value).map_err(|source| Error::Deserialize {
        key: key.to_string(),
        path: path.to_string(),
        source,
    })
}

fn server_len(reply: &[Value]) -> usize {
    super::reply_usize(reply.first())
}
