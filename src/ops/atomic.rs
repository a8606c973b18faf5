//! A model's atomic block, behind `model.atomic(&db, |m| …)`: a block whose references are
//! bound to it, and whose results are written back into the local model.

use std::fmt::Display;

use super::builder::When;
use super::cond::Cond;
use super::entry::namespaced;
use super::numeric::{Accepts, Numeric};
use super::program::Out;
use super::refs::{Bind, Bound, DictRef, ListRef, Loc, Map, Ref, Referable, ServerRef};
use super::run::{self, Resolve};
use super::vocabulary::Ops;
use super::vocabulary::Whole;
use crate::db::Db;
use crate::error::Result;
use crate::keys::KeySettings;

/// A model's atomic block, behind `model.atomic(&db, |m| …)`.
pub(crate) async fn atomic<M, F, R>(model: &mut M, db: &Db, build: F) -> Result<R::Output>
where
    M: KeySettings + Referable,
    F: for<'o> FnOnce(M::Ref<Bound<'o>>) -> R,
    R: Resolve,
{
    let ops = Ops::new();
    let root = M::reference(Loc::root::<M>(&model.model_id()), Bound(&ops));
    let ret = build(root);
    let program = ops.finish().map_err(|e| namespaced(db, e))?;
    let (results, echo) = run::run(db, &program, true).await?;
    run::apply_echo(model, db, &echo)?;
    ret.resolve(&results)
}

// Operations of an atomic block's bound references: `r.op(…)` adds `ops.op(r, …)` (see
// `vocabulary.rs`, where each operation is defined) to the block the reference is bound to.

impl<'a, T: serde::Serialize> ServerRef<T, Bound<'a>> {
    /// Replaces the value: [`Ops::set`].
    pub fn set(&self, value: impl Into<T>) -> Out<()> {
        self.bind.0.set(self.clone(), value)
    }
}

impl<'a, T: Numeric> ServerRef<T, Bound<'a>> {
    /// Adds `by`; returns the new value (exact for integers,
    /// [`Error::Overflow`](crate::Error::Overflow) outside the type's range): [`Ops::incr`].
    pub fn incr(&self, by: T) -> Out<T> {
        self.bind.0.incr(self.clone(), by)
    }

    /// Subtracts `by`; returns the new value: [`Ops::decr`].
    pub fn decr(&self, by: T) -> Out<T> {
        self.bind.0.decr(self.clone(), by)
    }

    /// Adds the number at `by` (integers take integers, floats any number); returns the new
    /// value: [`Ops::incr_by_field`].
    pub fn incr_by_field<R: Ref>(&self, by: R) -> Out<T>
    where
        R::Value: Numeric,
        T::Kind: Accepts<<R::Value as Numeric>::Kind>,
    {
        self.bind.0.incr_by_field(self.clone(), by)
    }
}

impl ServerRef<String, Bound<'_>> {
    /// Appends `suffix`; returns the new string: [`Ops::append`].
    pub fn append(&self, suffix: &str) -> Out<String> {
        self.bind.0.append(self.clone(), suffix)
    }

    /// Replaces this string with the strings at `sources` joined by `separator`; returns
    /// the new string: [`Ops::concat`] into this reference.
    pub fn concat<S, I>(&self, sources: I, separator: &str) -> Out<String>
    where
        S: Ref<Value = String>,
        I: IntoIterator<Item = S>,
    {
        self.bind.0.concat(sources, self.clone(), separator)
    }
}

impl ServerRef<bool, Bound<'_>> {
    /// Flips the boolean; returns the new value: [`Ops::toggle`].
    pub fn toggle(&self) -> Out<bool> {
        self.bind.0.toggle(self.clone())
    }
}

impl<T: Referable> ListRef<T, Bound<'_>> {
    /// Appends one element; returns the new length: [`Ops::append`].
    pub fn append(&self, value: impl Into<T>) -> Out<usize> {
        self.bind.0.append(self.clone(), value.into())
    }

    /// Appends every element; returns the new length: [`Ops::extend`].
    pub fn extend(&self, values: impl IntoIterator<Item = T>) -> Out<usize> {
        self.bind.0.extend(self.clone(), values)
    }

    /// Appends the elements at `from` (a list or a slice); returns the new length:
    /// [`Ops::append_from`].
    pub fn append_from<A: Ref<Value = Vec<T>>>(&self, from: A) -> Out<usize> {
        self.bind.0.append_from(self.clone(), from)
    }

    /// Inserts before `index` (Python's `insert`: clamped, negative from the end); returns
    /// the new length: [`Ops::insert`].
    pub fn insert(&self, index: i64, value: impl Into<T>) -> Out<usize> {
        self.bind.0.insert(self.clone(), index, value.into())
    }

    /// Removes and returns the last element;
    /// [`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange) when empty: [`Ops::pop`].
    pub fn pop(&self) -> Out<T> {
        self.bind.0.pop(self.clone())
    }

    /// Removes and returns the element at `index`;
    /// [`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange) outside: [`Ops::pop_at`].
    pub fn pop_at(&self, index: i64) -> Out<T> {
        self.bind.0.pop_at(self.clone(), index)
    }

    /// Replaces the element at `index`;
    /// [`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange) outside: [`Ops::set`] of
    /// `list.at(index)`.
    pub fn set(&self, index: i64, value: impl Into<T>) -> Out<()> {
        self.bind.0.set(self.at(index), value)
    }

    /// Replaces the whole list: [`Ops::set`].
    pub fn replace(&self, values: Vec<T>) -> Out<()> {
        self.bind.0.set(self.clone(), values)
    }

    /// Empties the list: [`Ops::clear`].
    pub fn clear(&self) -> Out<()> {
        self.bind.0.clear(self.clone())
    }
}

impl<M: Map> DictRef<M, Bound<'_>> {
    /// Sets the entry `key` to `value`, adding it if absent: [`Ops::insert`].
    pub fn insert(&self, key: impl Into<String>, value: impl Into<M::Value>) -> Out<()> {
        self.bind.0.insert(self.clone(), key.into(), value.into())
    }

    /// Removes the entry `key`; returns its value, `None` if it was absent:
    /// [`Ops::remove`].
    pub fn remove(&self, key: impl Into<String>) -> Out<Option<M::Value>> {
        self.bind.0.remove(self.clone(), key)
    }

    /// Sets every entry of `entries`, in order; returns the dict's new size:
    /// [`Ops::update`].
    pub fn update<K: Into<String>>(
        &self,
        entries: impl IntoIterator<Item = (K, M::Value)>,
    ) -> Out<usize> {
        self.bind.0.update(self.clone(), entries)
    }

    /// Replaces the whole dict: [`Ops::set`].
    pub fn replace(&self, map: M) -> Out<()> {
        self.bind.0.set(self.clone(), map)
    }

    /// Empties the dict: [`Ops::clear`].
    pub fn clear(&self) -> Out<()> {
        self.bind.0.clear(self.clone())
    }
}

/// The block operations every reference of a model's atomic block has, whatever it points
/// at (a field, a list element, a nested model, the model itself): `r.op(…)` adds
/// `ops.op(r, …)` to the block. In `rapyer::prelude`.
///
/// ```no_run
/// use rapyer::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Queue {
///     #[rapyer(key)]
///     id: String,
///     todo: Vec<String>,
///     done: Vec<String>,
/// }
///
/// # async fn demo(db: &Db, queue: &mut Queue) -> rapyer::Result<()> {
/// // Move the first task to `done` when there is one, and keep a copy of the whole queue.
/// let moved = queue
///     .atomic(db, |m| {
///         m.copy_model("backup");
///         m.todo().at(0).move_item(m.done())
///     })
///     .await?;
/// # Ok(()) }
/// ```
pub trait BoundRef<'a>: Ref<Bind = Bound<'a>> + Clone {
    /// Copies this value to `to`: [`Ops::assign`] from this reference.
    fn assign<B: Ref<Value = Self::Value>>(&self, to: B) -> Out<()> {
        self.bind().0.assign(self.clone(), to)
    }

    /// Exchanges this value and the one at `other`: [`Ops::swap`].
    fn swap<B: Whole<Value = Self::Value>>(&self, other: B) -> Out<()>
    where
        Self: Whole,
    {
        self.bind().0.swap(self.clone(), other)
    }

    /// Removes this list element (`list.at(i)`) and appends it to `to`; returns it, or
    /// `None` when there is no element at that index: [`Ops::move_item`].
    fn move_item<L: Bind>(&self, to: ListRef<Self::Value, L>) -> Out<Option<Self::Value>>
    where
        Self::Value: Referable,
    {
        self.bind().0.move_item(self.clone(), to)
    }

    /// Copies this model to the model of the same type with id `to_id`, creating or
    /// replacing it: [`Ops::copy_model`].
    fn copy_model(&self, to_id: impl Display) -> Out<()>
    where
        Self::Value: KeySettings + Referable,
    {
        self.bind().0.copy_model(self.clone(), to_id)
    }

    /// A conditional in this block: `m.when(cond).then(|ops| …).otherwise(|ops| …)`,
    /// evaluated on the server, seeing the block's earlier operations: [`Ops::when`].
    fn when(&self, cond: Cond) -> When<'a> {
        self.bind().0.when(cond)
    }
}

impl<'a, R: Ref<Bind = Bound<'a>> + Clone> BoundRef<'a> for R {}
