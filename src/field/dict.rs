//! The handle on a dict field (`HashMap<String, V>` or `BTreeMap<String, V>`), whose keys are
//! data, never JSONPath syntax.

use std::collections::{BTreeMap, HashMap};

use redis::Value;

use super::list::check_nesting;
use super::{At, FieldOp, FieldType, Want, json};
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
/// path syntax when writing. `null` is stored as `null` under every key (a merge patch's
/// `null` would delete: those travel as a placeholder the script turns back into `null`).
///
/// Every operation is one script call; the local map gets the same change, and is reloaded
/// when its size disagrees with the server's afterwards. [`update`](Self::update) of N
/// entries costs the server O(N + the size of the values). The value from before that
/// `insert`, `remove` and `get` return is read by a path step with `\` and `"` escaped (which
/// RedisJSON reads exactly, though it cannot write through one); only for a key starting with
/// a space, which no path step reaches, it is found in one pass over the dict's text on the
/// server. Only that value is sent back.
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
        let entries = [(key.to_string(), value)];
        let operands = self.set_operands(db, &entries, true)?;
        let operands: Vec<&str> = operands.iter().map(String::as_str).collect();
        let reply: Vec<Value> = self
            .at
            .call(db, FieldOp::DictSet, Want::OBJECT, &operands)
            .await?;
        let previous = self.previous(db, reply.get(1))?;
        let [(key, value)] = entries;
        self.value.put(key, value);
        self.sync(db, &reply).await?;
        Ok(previous)
    }

    /// Sets every entry, in one step (a key given twice keeps its last value). The server's
    /// work is linear in the entries and the size of their values, whatever the keys hold;
    /// nothing but the dict's new size comes back.
    pub async fn update(
        &mut self,
        db: &Db,
        entries: impl IntoIterator<Item = (String, M::Value)>,
    ) -> Result<()> {
        let entries: Vec<(String, M::Value)> = entries.into_iter().collect();
        if entries.is_empty() {
            return Ok(());
        }
        let operands = self.set_operands(db, &entries, false)?;
        let operands: Vec<&str> = operands.iter().map(String::as_str).collect();
        let reply: Vec<Value> = self
            .at
            .call(db, FieldOp::DictSet, Want::OBJECT, &operands)
            .await?;
        for (key, value) in entries {
            self.value.put(key, value);
        }
        self.sync(db, &reply).await
    }

    /// Removes `key`; returns the value it had on the server.
    pub async fn remove(&mut self, db: &Db, key: &str) -> Result<Option<M::Value>> {
        let (step, quoted) = (step(key), quote(db, &self.at, key)?);
        let delete = format!("{{{quoted}:null}}");
        let read = read_operand(db, &self.at, key)?;
        let reply: Vec<Value> = self
            .at
            .call(db, FieldOp::DictDel, Want::OBJECT, &[&step, &delete, &read])
            .await?;
        let previous = self.previous(db, reply.get(1))?;
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
            .call(
                db,
                FieldOp::DictGet,
                Want::OBJECT,
                &[&step(key), "", &read_operand(db, &self.at, key)?],
            )
            .await?;
        let value = self.previous(db, reply.get(1))?;
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
        let reply: Vec<Value> = self
            .at
            .call(db, FieldOp::DictKeys, Want::OBJECT, &[])
            .await?;
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
        let reply: Vec<Value> = self
            .at
            .call(db, FieldOp::DictClear, Want::OBJECT, &[])
            .await?;
        self.value.empty();
        self.sync(db, &reply).await
    }

    /// The number of entries on the server.
    pub async fn len(&mut self, db: &Db) -> Result<usize> {
        let reply: Vec<Value> = self
            .at
            .call(db, FieldOp::DictLen, Want::OBJECT, &[])
            .await?;
        Ok(server_len(&reply))
    }

    /// Replaces the whole dict.
    pub async fn replace(&mut self, db: &Db, map: M) -> Result<()> {
        let text = json(db, &self.at, &map)?;
        *self.value = self
            .at
            .run(db, FieldOp::Set, Want::OBJECT, &[&text])
            .await?;
        Ok(())
    }

    /// Reads the whole dict from the server into the local field, and returns it.
    pub async fn load(&mut self, db: &Db) -> Result<&M> {
        *self.value = self.at.run(db, FieldOp::Get, Want::OBJECT, &[]).await?;
        Ok(&*self.value)
    }

    /// Where the field lives.
    pub fn at(&self) -> &At {
        &self.at
    }

    /// The operands of `dset` (see `lua/field.lua`) setting `entries`, with each entry's
    /// value before asked back when `previous`. A key a JSONPath step can address is set by
    /// its step; all others go in one merge patch, `null`s in them written as a placeholder
    /// the script turns back into `null` (a merge patch's `null` deletes). A non-finite float
    /// is refused naming the entry's path (`$.prefs["key"]`).
    fn set_operands(
        &self,
        db: &Db,
        entries: &[(String, M::Value)],
        previous: bool,
    ) -> Result<Vec<String>> {
        let mut triples = Vec::with_capacity(entries.len() * 3);
        // Keys without a step: (key as JSON, value as JSON), each key once, its last value.
        let mut merged: Vec<(String, String)> = Vec::new();
        let mut position: HashMap<String, usize> = HashMap::new();
        let mut placeholder = String::new();
        for (key, value) in entries {
            let mut entry_step = String::new();
            crate::path::push_entry_text(&mut entry_step, key);
            let entry = self.at.field(&entry_step);
            let text = json(db, &entry, value)?;
            // Writes go in several commands: a value the document cannot hold there is refused
            // before the first.
            check_nesting(db, &entry, &text)?;
            let step = step(key);
            if !step.is_empty() {
                let read = if previous {
                    step.clone()
                } else {
                    String::new()
                };
                triples.extend([step, text, read]);
                continue;
            }
            let quoted = quote(db, &self.at, key)?;
            let text = if text.contains("null") {
                self.nulls_as_placeholder(db, &text, &mut placeholder)?
            } else {
                text
            };
            if previous {
                triples.extend([
                    String::new(),
                    String::new(),
                    read_operand(db, &self.at, key)?,
                ]);
            }
            match position.get(&quoted) {
                Some(&i) => merged[i].1 = text,
                None => {
                    position.insert(quoted.clone(), merged.len());
                    merged.push((quoted, text));
                }
            }
        }
        // A key given twice keeps its last value, which may hold no placeholder: the script
        // looks for one only when some value does (its filter fails on no match).
        if !placeholder.is_empty() && !merged.iter().any(|(_, text)| text.contains(&placeholder)) {
            placeholder.clear();
        }
        let (mut delete, mut set) = (String::new(), String::new());
        for (quoted, text) in &merged {
            // Only an object value would be merged into the one there.
            if text.starts_with('{') {
                delete.push(if delete.is_empty() { '{' } else { ',' });
                delete.push_str(quoted);
                delete.push_str(":null");
            }
            set.push(if set.is_empty() { '{' } else { ',' });
            set.push_str(quoted);
            set.push(':');
            set.push_str(text);
        }
        for patch in [&mut delete, &mut set] {
            if !patch.is_empty() {
                patch.push('}');
            }
        }
        let mut operands = vec![
            if previous { "1" } else { "0" }.to_string(),
            delete,
            set,
            placeholder,
        ];
        operands.extend(triples);
        Ok(operands)
    }

    /// `text` with every `null` a merge patch would drop (the value itself, members of
    /// objects outside arrays; a merge patch keeps arrays whole) replaced by `placeholder`,
    /// made on first use.
    fn nulls_as_placeholder(
        &self,
        db: &Db,
        text: &str,
        placeholder: &mut String,
    ) -> Result<String> {
        let serialize = |source| Error::Serialize {
            key: db.key(self.at.key()),
            source,
        };
        let mut value: serde_json::Value = serde_json::from_str(text).map_err(serialize)?;
        let mut found = false;
        let mut stack = vec![&mut value];
        while let Some(v) = stack.pop() {
            match v {
                serde_json::Value::Null => {
                    if placeholder.is_empty() {
                        *placeholder = format!("rapyer-null-{}", ulid::Ulid::new());
                    }
                    *v = serde_json::Value::String(placeholder.clone());
                    found = true;
                }
                serde_json::Value::Object(members) => stack.extend(members.values_mut()),
                _ => {}
            }
        }
        if !found {
            return Ok(text.to_string());
        }
        serde_json::to_string(&value).map_err(serialize)
    }

    /// Decodes an entry's value as the script returned it: `[value]`, or `[]` when absent.
    fn previous(&self, db: &Db, reply: Option<&Value>) -> Result<Option<M::Value>> {
        let Some(Value::BulkString(bytes)) = reply else {
            return Err(self.bad_reply(db, &format!("{reply:?}")));
        };
        let full_key = db.key(self.at.key());
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
/// step addresses it: the entry then goes in the merge patch.
fn step(key: &str) -> String {
    let mut step = String::new();
    crate::path::push_entry(&mut step, key);
    step
}

/// How the field script reads the entry `key`: its path step; else an escaped read step
/// ([`push_entry_read`](crate::path::push_entry_read)); else, for a key starting with a
/// space (no step reaches it: `[" a"]` reads `a`), `None`: the script then finds the key as
/// JSON text in the dict's text.
fn read_step(key: &str) -> Option<String> {
    let mut step = String::new();
    (crate::path::push_entry(&mut step, key) || crate::path::push_entry_read(&mut step, key))
        .then_some(step)
}

/// The script operand that reads the entry `key`: [`read_step`], or the key as JSON text.
fn read_operand(db: &Db, at: &At, key: &str) -> Result<String> {
    read_step(key).map_or_else(|| quote(db, at, key), Ok)
}

/// `key` as a JSON string, as RedisJSON writes it (both write JSON as serde_json does).
fn quote(db: &Db, at: &At, key: &str) -> Result<String> {
    serde_json::to_string(key).map_err(|source| Error::Serialize {
        key: db.key(at.key()),
        source,
    })
}

fn server_len(reply: &[Value]) -> usize {
    super::reply_usize(reply.first())
}

#[cfg(test)]
mod tests {
    use super::read_step;

    #[test]
    fn keys_no_step_writes_are_read_by_an_escaped_step_unless_they_start_with_a_space() {
        assert_eq!(read_step("plain").as_deref(), Some("[\"plain\"]"));
        assert_eq!(
            read_step("both \" and '").as_deref(),
            Some("[\"both \\\" and '\"]")
        );
        assert_eq!(
            read_step("back\\slash").as_deref(),
            Some("[\"back\\\\slash\"]")
        );
        assert_eq!(read_step("new\nline").as_deref(), Some("[\"new\nline\"]"));
        assert_eq!(read_step(" lead"), None);
    }
}
