//! Special structures in blocks: adding to and removing from a [`Set`], pushing to, popping
//! from and removing from a [`PriorityQueue`], and conditions on their size and membership
//! (and on the length of a list or a circular buffer), in the same all-or-nothing script as
//! the document operations (`lua/block_structures.lua`).
//!
//! A structure operation reads the server (and what the block did before it) and queues its
//! writes; the block's last statement runs them once every operation has passed, so a block
//! that fails anywhere leaves every companion key as it was. Their rows in the vocabulary
//! table are in `vocabulary.rs`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::block_op::BlockOp;
use super::buffer::BufferRef;
use super::companions::structure_path;
use super::cond::{Cond, CondNode, Operand, StructureQuery};
use super::program::{Out, Param};
use super::refs::{Bind, Bound, ListRef, Loc, Referable, ServerRef};
use super::vocabulary::Ops;
use crate::error::{Error, Result};
use crate::keys::StructureKind;
use crate::structures::SetOperand;
use crate::structures::{PriorityQueue, Set, canonical, priority_hex};

impl Ops {
    /// Adds `item` to the set at `set`; returns whether it was not there.
    pub fn set_add<T: Serialize, B: Bind>(&self, set: ServerRef<Set<T>, B>, item: T) -> Out<bool> {
        let params = item_params(&set.loc, StructureKind::Set, &item);
        self.push(BlockOp::SetAdd, params)
    }

    /// Removes `item` from the set at `set`; returns whether it was there.
    pub fn set_remove<T: Serialize, B: Bind>(
        &self,
        set: ServerRef<Set<T>, B>,
        item: &T,
    ) -> Out<bool> {
        let params = item_params(&set.loc, StructureKind::Set, item);
        self.push(BlockOp::SetRemove, params)
    }

    /// Removes `item` from the queue at `queue`, whatever its priority; returns whether it
    /// was queued.
    pub fn queue_remove<T: Serialize, B: Bind>(
        &self,
        queue: ServerRef<PriorityQueue<T>, B>,
        item: &T,
    ) -> Out<bool> {
        let params = item_params(&queue.loc, StructureKind::Queue, item);
        self.push(BlockOp::QueueRemove, params)
    }

    /// Queues `item` with `priority` in the queue at `queue` (an item already queued is
    /// re-queued); returns the queue's length afterwards.
    pub fn queue_push<T: Serialize, B: Bind>(
        &self,
        queue: ServerRef<PriorityQueue<T>, B>,
        item: T,
        priority: i64,
    ) -> Out<usize> {
        let params = structure_path(&queue.loc, StructureKind::Queue).and_then(|path| {
            let member = member(&queue.loc, &path, &item)?;
            Ok(vec![
                Param::Loc(queue.loc.clone()),
                Param::Arg(path),
                Param::Arg(priority_hex(priority)),
                Param::Arg(member),
            ])
        });
        self.push(BlockOp::QueuePush, params)
    }

    /// Removes the most urgent item of the queue at `queue` (the lowest priority, the first
    /// pushed among equals); returns it with its priority, `None` (inside the result) when
    /// the queue is empty.
    pub fn queue_pop<T: Serialize, B: Bind>(
        &self,
        queue: ServerRef<PriorityQueue<T>, B>,
    ) -> Out<Option<(T, i64)>> {
        let params = structure_path(&queue.loc, StructureKind::Queue)
            .map(|path| vec![Param::Loc(queue.loc.clone()), Param::Arg(path)]);
        self.push(BlockOp::QueuePop, params)
    }

    /// Removes the most urgent item of the queue at `queue` and appends it to `list`;
    /// returns it with its priority, `None` (inside the result) when the queue is empty (the
    /// list is then left as it is).
    pub fn queue_pop_into<T: Referable, B: Bind, L: Bind>(
        &self,
        queue: ServerRef<PriorityQueue<T>, B>,
        list: ListRef<T, L>,
    ) -> Out<Option<(T, i64)>> {
        let params = structure_path(&queue.loc, StructureKind::Queue).map(|path| {
            vec![
                Param::Loc(queue.loc.clone()),
                Param::Arg(path),
                Param::Loc(list.loc.clone()),
            ]
        });
        self.push(BlockOp::QueuePopInto, params)
    }
}

impl<T: Serialize, B: Bind> ServerRef<Set<T>, B> {
    /// The set holds `item` (after what the block did before the condition).
    pub fn contains(&self, item: &T) -> Cond {
        let found = structure_path(&self.loc, StructureKind::Set)
            .and_then(|path| Ok((member(&self.loc, &path, item)?, path)));
        match found {
            Ok((member, path)) => query(
                &self.loc,
                "sismember",
                path,
                member,
                "boolean",
                "eq",
                "true",
            ),
            Err(e) => refused(e),
        }
    }

    /// The set's size, for a condition: `set.len().gt(0)`.
    pub fn len(&self) -> Size {
        Size::of(&self.loc, StructureKind::Set, "scard")
    }
}

impl<T: Serialize, B: Bind> ServerRef<PriorityQueue<T>, B> {
    /// The queue's length, for a condition: `queue.len().gt(0)`.
    pub fn len(&self) -> Size {
        Size::of(&self.loc, StructureKind::Queue, "zcard")
    }
}

impl<'o, T: Serialize> ServerRef<Set<T>, Bound<'o>> {
    /// Adds `item`: [`Ops::set_add`].
    pub fn add(&self, item: T) -> Out<bool> {
        self.bind.0.set_add(self.clone(), item)
    }

    /// Removes `item`: [`Ops::set_remove`].
    pub fn remove(&self, item: &T) -> Out<bool> {
        self.bind.0.set_remove(self.clone(), item)
    }
}

/// A stored model's set as the other set of the set algebra
/// ([`RedisSet::union_into`](crate::RedisSet::union_into), …), without loading the model.
impl<T: Serialize, B: Bind> SetOperand<T> for ServerRef<Set<T>, B> {
    fn set_place(&self) -> (String, String, bool) {
        match structure_path(&self.loc, StructureKind::Set) {
            Ok(path) => (self.loc.doc.key.clone(), path, true),
            Err(_) => (self.loc.doc.key.clone(), self.loc.path(), false),
        }
    }
}

impl<T: Serialize, B: Bind> SetOperand<T> for &ServerRef<Set<T>, B> {
    fn set_place(&self) -> (String, String, bool) {
        (*self).set_place()
    }
}

impl<'o, T: Serialize + DeserializeOwned> ServerRef<PriorityQueue<T>, Bound<'o>> {
    /// Queues `item`: [`Ops::queue_push`].
    pub fn push(&self, item: T, priority: i64) -> Out<usize> {
        self.bind.0.queue_push(self.clone(), item, priority)
    }

    /// Removes `item`, whatever its priority: [`Ops::queue_remove`].
    pub fn remove(&self, item: &T) -> Out<bool> {
        self.bind.0.queue_remove(self.clone(), item)
    }

    /// Pops the most urgent item: [`Ops::queue_pop`].
    pub fn pop(&self) -> Out<Option<(T, i64)>> {
        self.bind.0.queue_pop(self.clone())
    }

    /// Pops the most urgent item into `list`: [`Ops::queue_pop_into`].
    pub fn pop_into<L: Bind>(&self, list: ListRef<T, L>) -> Out<Option<(T, i64)>>
    where
        T: Referable,
    {
        self.bind.0.queue_pop_into(self.clone(), list)
    }
}

impl<T: Referable, B: Bind> ListRef<T, B> {
    /// The list's length (after what the block did before the condition), for a condition:
    /// `list.len().lt(10)`. Measured on the server in the block's script: a list the block
    /// only appends to and measures is never read (one `JSON.ARRLEN`).
    pub fn len(&self) -> Size {
        Size::list(&self.loc)
    }
}

impl<T: Referable, const N: usize, B: Bind> BufferRef<T, N, B> {
    /// The buffer's length (after what the block did before the condition), for a
    /// condition: `buffer.len().ge(N)`. Measured on the server in the block's script, as a
    /// list's ([`ListRef::len`]).
    pub fn len(&self) -> Size {
        Size::list(&self.loc)
    }
}

/// A set's size, a queue's, a list's or a circular buffer's length in a condition: compare
/// it with a number.
#[derive(Debug, Clone)]
pub struct Size {
    operand: std::result::Result<Operand, String>,
}

impl Size {
    /// The length of the list or circular buffer at `loc`.
    pub(crate) fn list(loc: &Loc) -> Size {
        Size {
            operand: Ok(Operand::Len(Box::new(loc.clone()))),
        }
    }

    fn of(loc: &Loc, kind: StructureKind, query: &'static str) -> Size {
        Size {
            operand: structure_path(loc, kind)
                .map(|path| {
                    Operand::Structure(Box::new(StructureQuery {
                        loc: loc.clone(),
                        query,
                        path,
                        member: String::new(),
                    }))
                })
                .map_err(|e| e.to_string()),
        }
    }

    fn compare(&self, op: &'static str, n: usize) -> Cond {
        match &self.operand {
            Ok(left) => Cond {
                node: CondNode::Cmp {
                    op,
                    want: "integer",
                    left: left.clone(),
                    right: Operand::Value(n.to_string()),
                },
                error: None,
            },
            Err(e) => Cond {
                node: never(),
                error: Some(e.clone()),
            },
        }
    }

    /// The size is `n`.
    pub fn eq(&self, n: usize) -> Cond {
        self.compare("eq", n)
    }

    /// The size is not `n`.
    pub fn ne(&self, n: usize) -> Cond {
        self.compare("ne", n)
    }

    /// The size is greater than `n`.
    pub fn gt(&self, n: usize) -> Cond {
        self.compare("gt", n)
    }

    /// The size is at least `n`.
    pub fn ge(&self, n: usize) -> Cond {
        self.compare("ge", n)
    }

    /// The size is less than `n`.
    pub fn lt(&self, n: usize) -> Cond {
        self.compare("lt", n)
    }

    /// The size is at most `n`.
    pub fn le(&self, n: usize) -> Cond {
        self.compare("le", n)
    }
}

fn query(
    loc: &Loc,
    query: &'static str,
    path: String,
    member: String,
    want: &'static str,
    op: &'static str,
    value: &str,
) -> Cond {
    Cond {
        node: CondNode::Cmp {
            op,
            want,
            left: Operand::Structure(Box::new(StructureQuery {
                loc: loc.clone(),
                query,
                path,
                member,
            })),
            right: Operand::Value(value.to_string()),
        },
        error: None,
    }
}

fn never() -> CondNode {
    CondNode::Cmp {
        op: "eq",
        want: "*",
        left: Operand::Value("null".into()),
        right: Operand::Value("null".into()),
    }
}

fn refused(e: Error) -> Cond {
    Cond {
        node: never(),
        error: Some(e.to_string()),
    }
}

/// The parameters of an operation on one item of the structure of kind `kind` at `loc`:
/// the place, the structure's JSONPath and the item's member.
fn item_params<T: Serialize + ?Sized>(
    loc: &Loc,
    kind: StructureKind,
    item: &T,
) -> Result<Vec<Param>> {
    let path = structure_path(loc, kind)?;
    let member = member(loc, &path, item)?;
    Ok(vec![
        Param::Loc(loc.clone()),
        Param::Arg(path),
        Param::Arg(member),
    ])
}

/// The member of `item` for the structure at `path` of the document at `loc`.
fn member<T: Serialize + ?Sized>(loc: &Loc, path: &str, item: &T) -> Result<String> {
    crate::codec::non_finite(&loc.doc.key, path, crate::finite::find(item))?;
    canonical(item).map_err(|source| Error::Serialize {
        key: loc.doc.key.clone(),
        source,
    })
}
