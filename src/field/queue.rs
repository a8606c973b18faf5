//! The handle of a [`PriorityQueue`] field: each operation is one call of the library's
//! structure script (`lua/structure.lua`) on the queue's companion ZSET and HASH, which checks
//! the model's document first and re-arms the expiry of the document and of every companion
//! key in the same step.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::set::{bulks, count, int};
use super::{At, FieldType};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::keys::StructureKind;
use crate::structures::{self, PriorityQueue, priority_hex, split_entry};

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> FieldType for PriorityQueue<T> {
    type Handle<'a> = RedisPriorityQueue<'a, T>;
    fn handle(value: &mut Self, at: At) -> RedisPriorityQueue<'_, T> {
        RedisPriorityQueue { value, at }
    }
}

/// The handle on a [`PriorityQueue`] field: atomic queue operations on the model's companion
/// keys, each writing the server's answer into the local queue (a pushed item is in it, a
/// popped or removed one is not, `items` replaces it whole).
///
/// ```no_run
/// # use rapyer::prelude::*;
/// #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
/// struct Board { #[rapyer(key)] id: String, tasks: rapyer::PriorityQueue<String> }
/// # async fn demo(db: &Db, board: &mut Board) -> rapyer::Result<()> {
/// board.tasks().push(db, "write docs".to_string(), 5).await?;
/// board.tasks().push(db, "fix the outage".to_string(), 1).await?;
/// assert_eq!(board.tasks().pop(db).await?, Some(("fix the outage".to_string(), 1)));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisPriorityQueue<'a, T> {
    value: &'a mut PriorityQueue<T>,
    at: At,
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> RedisPriorityQueue<'_, T> {
    /// Queues `item` with `priority` (lower pops first; equal priorities pop in the order
    /// pushed). An item already queued is re-queued with this priority. Returns the queue's
    /// length afterwards.
    pub async fn push(&mut self, db: &Db, item: T, priority: i64) -> Result<usize> {
        self.push_many(db, [(item, priority)]).await
    }

    /// Queues every `(item, priority)` in one step, in order; returns the queue's length
    /// afterwards.
    pub async fn push_many(
        &mut self,
        db: &Db,
        items: impl IntoIterator<Item = (T, i64)>,
    ) -> Result<usize> {
        let mut operands = Vec::new();
        let mut pending = Vec::new();
        for (item, priority) in items {
            let member = self.member(db, &item)?;
            operands.push(priority_hex(priority));
            operands.push(member.clone());
            pending.push((member, item, priority));
        }
        let op = if pending.is_empty() { "qlen" } else { "qpush" };
        let reply = self.call(db, op, pending.is_empty(), operands).await?;
        for (member, item, priority) in pending {
            self.value.push_member(member, item, priority);
        }
        Ok(count(int(&reply, 0)))
    }

    /// Removes and returns the most urgent item (the lowest priority, the first pushed among
    /// equals) with its priority; `None` when the queue is empty.
    pub async fn pop(&mut self, db: &Db) -> Result<Option<(T, i64)>> {
        Ok(self.pop_many(db, 1).await?.into_iter().next())
    }

    /// Removes and returns up to `n` of the most urgent items, most urgent first.
    pub async fn pop_many(&mut self, db: &Db, n: usize) -> Result<Vec<(T, i64)>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let reply = self.call(db, "qpop", false, vec![n.to_string()]).await?;
        let popped = self.entries(db, &reply)?;
        Ok(popped
            .into_iter()
            .map(|(member, item, priority)| {
                self.value.remove_member(&member);
                (item, priority)
            })
            .collect())
    }

    /// The most urgent item and its priority, left queued; `None` when the queue is empty.
    pub async fn peek(&mut self, db: &Db) -> Result<Option<(T, i64)>> {
        let reply = self.call(db, "qpeek", true, Vec::new()).await?;
        Ok(self
            .entries(db, &reply)?
            .into_iter()
            .next()
            .map(|(_, item, priority)| (item, priority)))
    }

    /// How many items are queued on the server.
    pub async fn len(&mut self, db: &Db) -> Result<usize> {
        let reply = self.call(db, "qlen", true, Vec::new()).await?;
        Ok(count(int(&reply, 0)))
    }

    /// Removes `item` wherever it is queued; `true` when it was.
    pub async fn remove(&mut self, db: &Db, item: &T) -> Result<bool> {
        let member = self.member(db, item)?;
        let reply = self
            .call(db, "qremove", false, vec![member.clone()])
            .await?;
        self.value.remove_member(&member);
        Ok(int(&reply, 0) == 1)
    }

    /// Reads every queued item with its priority from the server, in queue order, into the
    /// local queue, and returns the local queue.
    pub async fn items(&mut self, db: &Db) -> Result<&PriorityQueue<T>> {
        let reply = self.call(db, "qitems", true, Vec::new()).await?;
        let entries = self.entries(db, &reply)?;
        self.value.replace(entries);
        Ok(&*self.value)
    }

    /// Empties the queue.
    pub async fn clear(&mut self, db: &Db) -> Result<()> {
        self.call(db, "qclear", false, Vec::new()).await?;
        self.value.replace(Vec::new());
        Ok(())
    }

    /// Where the queue lives: its model's key and its JSONPath.
    pub fn at(&self) -> &At {
        &self.at
    }

    fn member(&self, db: &Db, item: &T) -> Result<String> {
        structures::member(&db.key(self.at.key()), self.at.path(), item)
    }

    /// The entries of a reply, each as its item's member, the item and its priority.
    fn entries(&self, db: &Db, reply: &redis::Value) -> Result<Vec<(String, T, i64)>> {
        let key = db.key(self.at.key());
        let mut out = Vec::new();
        for entry in bulks(reply) {
            let Some((priority, member)) = split_entry(&entry) else {
                return Err(Error::Deserialize {
                    key,
                    path: self.at.path().to_string(),
                    source: serde::de::Error::custom("a queue entry rapyer did not write"),
                });
            };
            let item = structures::item(&key, self.at.path(), member)?;
            out.push((String::from_utf8_lossy(member).into_owned(), item, priority));
        }
        Ok(out)
    }

    async fn call(
        &self,
        db: &Db,
        op: &str,
        reads: bool,
        operands: Vec<String>,
    ) -> Result<redis::Value> {
        self.at
            .structure_call(db, StructureKind::Queue, op, reads, operands, None)
            .await
    }
}
