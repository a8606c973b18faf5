//! The operations of a block, each defined once: `ops.op(target, …)` in a ServerOps
//! block, and the same operation as `target.op(…)` on the references of a model's atomic
//! block (`atomic.rs` forwards each one here).
//!
//! | `Ops` method | on an atomic block's reference |
//! | --- | --- |
//! | `set(r, v)` | `r.set(v)`; a list's `set(i, v)` and `replace(v)`, a model's `set(v)` |
//! | `incr(r, by)`, `decr(r, by)` | `r.incr(by)`, `r.decr(by)` |
//! | `incr_by_field(r, other)` | `r.incr_by_field(other)` |
//! | `toggle(r)` | `r.toggle()` |
//! | `append(r, x)` (string or list), `extend(list, xs)` | `r.append(x)`, `list.extend(xs)` |
//! | `insert(r, at, v)` (list or dict) | `r.insert(at, v)` |
//! | `pop(list)`, `pop_at(list, i)` | `list.pop()`, `list.pop_at(i)` |
//! | `remove(dict, k)`, `update(dict, entries)` | `dict.remove(k)`, `dict.update(entries)` |
//! | `clear(r)` (list or dict) | `r.clear()` |
//! | `concat(sources, into, sep)` | `into.concat(sources, sep)` |
//! | `append_from(list, from)` | `list.append_from(from)` |
//! | `assign(from, to)`, `swap(a, b)` | `from.assign(to)`, `a.swap(b)` ([`BoundRef`]) |
//! | `move_item(from, to)` | `from.move_item(to)` ([`BoundRef`]) |
//! | `copy_model(from, id)` | `from.copy_model(id)` ([`BoundRef`]) |
//! | `when(cond)` (in `builder.rs`) | `r.when(cond)` ([`BoundRef`]) |
//! | `push_into(buffer, x)`, `push_many_into(buffer, xs)` | `buffer.push(x)`, `buffer.push_many(xs)` |
//! | `set_add(set, x)`, `set_remove(set, &x)` (in `structures.rs`, as the three below) | `set.add(x)`, `set.remove(&x)` |
//! | `queue_push(queue, x, priority)`, `queue_remove(queue, &x)` | `queue.push(x, priority)`, `queue.remove(&x)` |
//! | `queue_pop(queue)`, `queue_pop_into(queue, list)` | `queue.pop()`, `queue.pop_into(list)` |
//! | conditions: `set.contains(x)`, `set.len()`, `queue.len()`, `list.len()` (in `structures.rs`), `buffer.len()` (in `buffer.rs`) | the same |
//!
//! [`BoundRef`]: super::BoundRef

use std::cell::RefCell;
use std::fmt::Display;

use super::block_op::BlockOp;
use super::buffer::BufferRef;
use super::numeric::{Accepts, Numeric};
use super::program::{Out, Param, Program};
use super::refs::{self, Bind, DictRef, Free, ListRef, Loc, Map, Ref, Referable, ServerRef, Step};
use crate::buffer::CircularBuffer;
use crate::error::{Error, Result};
use crate::keys::KeySettings;

/// The operations of one block, handed to the closure of [`ServerOps::scope`]. Each method
/// adds one operation and returns its [`Out`].
///
/// [`ServerOps::scope`]: super::ServerOps::scope
#[derive(Debug)]
pub struct Ops {
    pub(super) inner: RefCell<Program>,
}

/// References that name a whole value (not a slice): what [`Ops::swap`] exchanges.
pub trait Whole: Ref {}
impl<T: serde::Serialize, B: Bind> Whole for ServerRef<T, B> {}
impl<T: Referable, B: Bind> Whole for ListRef<T, B> {}
impl<M: Map, B: Bind> Whole for DictRef<M, B> {}

impl Ops {
    /// Replaces the value at `target` with `value`. On a slice it is Python's slice
    /// assignment from the given elements; on a dict entry it adds the entry if absent.
    pub fn set<R: Ref>(&self, target: R, value: impl Into<R::Value>) -> Out<()> {
        let params = writable(target.loc())
            .and_then(|()| super::companions::not_a_structure(target.loc()))
            .and_then(|()| {
                let value = value.into();
                let json = R::encode(&value).map_err(|source| Error::Serialize {
                    key: target.loc().doc.key.clone(),
                    source,
                })?;
                crate::codec::check_finite(
                    &target.loc().doc.key,
                    &target.loc().path(),
                    &value,
                    &json,
                )?;
                let (name, id) = id_fix(target.loc())?;
                Ok(vec![
                    Param::Loc(target.loc().clone()),
                    Param::Lit(target.want()),
                    Param::Arg(json),
                    Param::Arg(name),
                    Param::Arg(id),
                ])
            });
        self.push(BlockOp::Set, params)
    }

    /// Adds `by` (negative to subtract) to the number at `target`; returns the new value.
    /// Integers are exact over their type's whole range: a result outside it is
    /// [`Error::Overflow`].
    pub fn incr<R: Ref>(&self, target: R, by: R::Value) -> Out<R::Value>
    where
        R::Value: Numeric,
    {
        self.push(BlockOp::Incr, incr_params(target.loc(), by, false))
    }

    /// Adds the number at `by` to the number at `target`; returns the new value. Integers
    /// take integers; floats take any number.
    pub fn incr_by_field<A: Ref, B: Ref>(&self, target: A, by: B) -> Out<A::Value>
    where
        A::Value: Numeric,
        B::Value: Numeric,
        <A::Value as Numeric>::Kind: Accepts<<B::Value as Numeric>::Kind>,
    {
        let (lo, hi) = sent_range::<A::Value>();
        self.push(
            BlockOp::IncrBy,
            Ok(vec![
                Param::Loc(target.loc().clone()),
                Param::Lit(<A::Value as Numeric>::WANT_NUMBER),
                Param::Loc(by.loc().clone()),
                Param::Lit(<B::Value as Numeric>::WANT_NUMBER),
                Param::Arg(lo),
                Param::Arg(hi),
            ]),
        )
    }

    /// Copies the value at `from` to `to`. Between slices (or a list and a slice) this is
    /// Python's `to_list[slice] = from_slice`: a slice without a step is resized, one with a
    /// step needs as many elements as it has. A whole model copied over another keeps the
    /// target's id.
    pub fn assign<A: Ref, B: Ref<Value = A::Value>>(&self, from: A, to: B) -> Out<()> {
        // A whole model copied over another takes its sets and queues along; a part of one
        // that holds them cannot be copied (their members are not in the document).
        let whole = from.loc().is_document() && to.loc().is_document();
        let params = match whole {
            true => assign_params(from.loc(), &to, from.element_want()),
            false => super::companions::not_a_structure(to.loc())
                .and_then(|()| assign_params(from.loc(), &to, from.element_want())),
        };
        let out = self.push(BlockOp::Assign, params);
        if let Some(params) = whole
            .then(|| super::companions::copy_params(from.loc(), to.loc()))
            .flatten()
        {
            let _: Out<()> = self.push(BlockOp::StructuresCopy, Ok(params));
        }
        out
    }

    /// Exchanges the values at `a` and `b`. Whole models keep their ids.
    pub fn swap<A: Whole, B: Whole<Value = A::Value>>(&self, a: A, b: B) -> Out<()> {
        let params = writable(a.loc())
            .and_then(|()| writable(b.loc()))
            .and_then(|()| super::companions::not_a_structure(a.loc()))
            .and_then(|()| super::companions::not_a_structure(b.loc()))
            .and_then(|()| {
                let (an, ai) = id_fix(a.loc())?;
                let (bn, bi) = id_fix(b.loc())?;
                Ok(vec![
                    Param::Loc(a.loc().clone()),
                    Param::Loc(b.loc().clone()),
                    Param::Lit(a.want()),
                    Param::Arg(an),
                    Param::Arg(ai),
                    Param::Arg(bn),
                    Param::Arg(bi),
                ])
            });
        self.push(BlockOp::Swap, params)
    }

    /// Joins the strings at `sources` with `separator` into the string at `into`; returns
    /// the new string.
    pub fn concat<S, I, T>(&self, sources: I, into: T, separator: &str) -> Out<String>
    where
        S: Ref<Value = String>,
        I: IntoIterator<Item = S>,
        T: Ref<Value = String>,
    {
        let locs: Vec<Loc> = sources.into_iter().map(|s| s.loc().clone()).collect();
        self.push(
            BlockOp::Concat,
            Ok(vec![
                Param::Loc(into.loc().clone()),
                Param::Arg(separator.to_string()),
                Param::Locs(locs),
            ]),
        )
    }

    /// Appends the elements at `from` (a list or a slice) to `list`; returns its new length.
    pub fn append_from<T: Referable, L: Bind, A: Ref<Value = Vec<T>>>(
        &self,
        list: ListRef<T, L>,
        from: A,
    ) -> Out<usize> {
        self.push(
            BlockOp::AppendFrom,
            Ok(vec![
                Param::Loc(list.loc.clone()),
                Param::Lit(T::WANT),
                Param::Loc(from.loc().clone()),
            ]),
        )
    }

    /// Removes the list element `from` (`list.at(i)`) and appends it to `to`: an atomic
    /// queue transfer. Returns the element, or `None` (and changes nothing) when the source
    /// list has no element at that index, e.g. because it is empty.
    pub fn move_item<T: Referable, A: Ref<Value = T>, L: Bind>(
        &self,
        from: A,
        to: ListRef<T, L>,
    ) -> Out<Option<T>> {
        let params = match from.loc().steps.last() {
            Some(Step::Index(_)) if from.loc().slice.is_none() => Ok(vec![
                Param::Loc(from.loc().clone()),
                Param::Lit(T::WANT),
                Param::Loc(to.loc.clone()),
            ]),
            _ => Err(invalid(
                from.loc(),
                "move_item takes a list element: `list.at(i)`",
            )),
        };
        self.push(BlockOp::Move, params)
    }

    /// Copies the model at `from` to the model of the same type with id `to_id`, creating
    /// or replacing it; the copy carries `to_id` in its key field.
    pub fn copy_model<M: KeySettings + Referable, R: Ref<Value = M>>(
        &self,
        from: R,
        to_id: impl Display,
    ) -> Out<()> {
        let to = M::reference(Loc::root::<M>(&to_id.to_string()), Free);
        let out = self.push(BlockOp::Assign, assign_params(from.loc(), &to, "*"));
        // Its sets and queues too, from their companion keys.
        if let Some(params) = super::companions::copy_params(from.loc(), to.loc()) {
            let _: Out<()> = self.push(BlockOp::StructuresCopy, Ok(params));
        }
        out
    }

    /// Subtracts `by` from the number at `target`; returns the new value, with the checks
    /// of [`Ops::incr`].
    pub fn decr<R: Ref>(&self, target: R, by: R::Value) -> Out<R::Value>
    where
        R::Value: Numeric,
    {
        self.push(BlockOp::Incr, incr_params(target.loc(), by, true))
    }

    /// Flips the boolean at `target`; returns the new value.
    pub fn toggle<R: Ref<Value = bool>>(&self, target: R) -> Out<bool> {
        self.push(BlockOp::Toggle, Ok(vec![Param::Loc(target.loc().clone())]))
    }

    /// Appends to the string or the list at `target`: a `&str` suffix to a string (returns
    /// the new string), one element to a list (returns the list's new length).
    pub fn append<R: Append<X>, X>(&self, target: R, value: X) -> Out<R::Output> {
        R::push_append(self, target, value)
    }

    /// Appends every element of `values` to `list`; returns its new length.
    pub fn extend<T: Referable, L: Bind>(
        &self,
        list: ListRef<T, L>,
        values: impl IntoIterator<Item = T>,
    ) -> Out<usize> {
        let values: Vec<T> = values.into_iter().collect();
        let params = list_items(&list.loc, &values)
            .map(|items| vec![Param::Loc(list.loc.clone()), Param::Args(items)]);
        self.push(BlockOp::ListPush, params)
    }

    /// Inserts into the list or the dict at `target`. In a list, `value` goes before the
    /// index `at` (Python's `insert`: clamped, negative from the end) and the list's new
    /// length is returned; in a dict, the entry `at` is set to `value`, added if absent.
    pub fn insert<R: Insert<K, X>, K, X>(&self, target: R, at: K, value: X) -> Out<R::Output> {
        R::push_insert(self, target, at, value)
    }

    /// Removes and returns the last element of `list`; [`Error::IndexOutOfRange`] when it is
    /// empty.
    pub fn pop<T: Referable, L: Bind>(&self, list: ListRef<T, L>) -> Out<T> {
        self.pop_at(list, -1)
    }

    /// Removes and returns the element of `list` at `index` (negative from the end);
    /// [`Error::IndexOutOfRange`] outside.
    pub fn pop_at<T: Referable, L: Bind>(&self, list: ListRef<T, L>, index: i64) -> Out<T> {
        let loc = list.loc.then(Step::Index(index));
        self.push(BlockOp::ListPop, Ok(vec![Param::Loc(loc)]))
    }

    /// Removes the entry `key` of `dict`; returns its value, `None` if it was absent.
    pub fn remove<M: Map, D: Bind>(
        &self,
        dict: DictRef<M, D>,
        key: impl Into<String>,
    ) -> Out<Option<M::Value>> {
        let loc = dict.loc.then(Step::Key(key.into()));
        self.push(BlockOp::DictRemove, Ok(vec![Param::Loc(loc)]))
    }

    /// Sets every entry of `entries` in `dict`, in order; returns the dict's new size.
    pub fn update<M: Map, D: Bind, K: Into<String>>(
        &self,
        dict: DictRef<M, D>,
        entries: impl IntoIterator<Item = (K, M::Value)>,
    ) -> Out<usize> {
        let entries: Vec<(String, M::Value)> =
            entries.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let params = refs::encode_entries(entries.iter().map(|(k, v)| (k, v)))
            .map_err(|source| Error::Serialize {
                key: dict.loc.doc.key.clone(),
                source,
            })
            .and_then(|json| {
                crate::depth::check(&dict.loc.doc.key, &dict.loc.path(), &json)?;
                // Without a `null` or a long number in the text, no value hides one.
                if crate::finite::may_hide(&json) {
                    for (k, v) in &entries {
                        let mut path = dict.loc.path();
                        crate::path::push_member_text(&mut path, k);
                        crate::codec::non_finite(&dict.loc.doc.key, &path, crate::finite::find(v))?;
                    }
                }
                Ok(json)
            })
            .map(|json| vec![Param::Loc(dict.loc.clone()), Param::Arg(json)]);
        self.push(BlockOp::DictUpdate, params)
    }

    /// Empties the list or the dict at `target`.
    pub fn clear<R: Clear>(&self, target: R) -> Out<()> {
        let want = target.want();
        self.push(
            BlockOp::Clear,
            Ok(vec![Param::Loc(target.loc().clone()), Param::Lit(want)]),
        )
    }
}

/// The references [`Ops::append`] appends to: a string (a `&str` suffix) and a list (one
/// element).
pub trait Append<X>: Ref + sealed::Sealed {
    /// What the operation returns: the new string, or the list's new length.
    type Output;
    /// Adds the operation to `ops`.
    #[doc(hidden)]
    fn push_append(ops: &Ops, target: Self, value: X) -> Out<Self::Output>;
}

impl<B: Bind> Append<&str> for ServerRef<String, B> {
    type Output = String;
    fn push_append(ops: &Ops, target: Self, suffix: &str) -> Out<String> {
        ops.push(
            BlockOp::StrAppend,
            Ok(vec![
                Param::Loc(target.loc.clone()),
                Param::Arg(suffix.to_string()),
            ]),
        )
    }
}

impl<T: Referable, B: Bind, X: Into<T>> Append<X> for ListRef<T, B> {
    type Output = usize;
    fn push_append(ops: &Ops, target: Self, value: X) -> Out<usize> {
        ops.extend(target, [value.into()])
    }
}

/// The references [`Ops::insert`] inserts into: a list (at an `i64` index) and a dict
/// (under a key).
pub trait Insert<K, X>: Ref + sealed::Sealed {
    /// What the operation returns: the list's new length, or `()` for a dict.
    type Output;
    /// Adds the operation to `ops`.
    #[doc(hidden)]
    fn push_insert(ops: &Ops, target: Self, at: K, value: X) -> Out<Self::Output>;
}

impl<T: Referable, B: Bind, X: Into<T>> Insert<i64, X> for ListRef<T, B> {
    type Output = usize;
    fn push_insert(ops: &Ops, target: Self, index: i64, value: X) -> Out<usize> {
        let value = value.into();
        let params = value
            .to_json()
            .map_err(|source| Error::Serialize {
                key: target.loc.doc.key.clone(),
                source,
            })
            .and_then(|json| {
                // The element sits one level below the list.
                let at = format!("{}[{index}]", target.loc.path());
                crate::codec::check_finite(&target.loc.doc.key, &at, &value, &json)?;
                Ok(json)
            })
            .map(|json| {
                vec![
                    Param::Loc(target.loc.clone()),
                    Param::Arg(index.to_string()),
                    Param::Arg(json),
                ]
            });
        ops.push(BlockOp::ListInsert, params)
    }
}

impl<M: Map, B: Bind, K: Into<String>, X: Into<M::Value>> Insert<K, X> for DictRef<M, B> {
    type Output = ();
    fn push_insert(ops: &Ops, target: Self, key: K, value: X) -> Out<()> {
        ops.set(target.entry(key), value.into())
    }
}

/// The references [`Ops::clear`] empties: lists and dicts.
pub trait Clear: Ref + sealed::Sealed {}
impl<T: Referable, B: Bind> Clear for ListRef<T, B> {}
impl<M: Map, B: Bind> Clear for DictRef<M, B> {}

mod sealed {
    use super::{Bind, DictRef, ListRef, Map, Referable, ServerRef};

    pub trait Sealed {}
    impl<B: Bind> Sealed for ServerRef<String, B> {}
    impl<T: Referable, B: Bind> Sealed for ListRef<T, B> {}
    impl<M: Map, B: Bind> Sealed for DictRef<M, B> {}
}

/// The elements `items` as the JSON texts a list operation sends, one each (appended as
/// they are, by `JSON.ARRAPPEND` when the block never reads the list), checked for values
/// that would not be stored as given (non-finite floats, numbers beyond a document's range,
/// nesting too deep).
fn list_items<T: Referable>(loc: &Loc, items: &[T]) -> Result<Vec<String>> {
    let texts = items
        .iter()
        .map(Referable::to_json)
        .collect::<serde_json::Result<Vec<String>>>()
        .map_err(|source| Error::Serialize {
            key: loc.doc.key.clone(),
            source,
        })?;
    let json = format!("[{}]", texts.join(","));
    crate::codec::check_finite(&loc.doc.key, &loc.path(), items, &json)?;
    Ok(texts)
}

fn invalid(loc: &Loc, message: &str) -> Error {
    Error::InvalidOp {
        key: loc.doc.key.clone(),
        path: loc.path(),
        message: message.to_string(),
    }
}

/// Refuses writes to an indexed date-time (its search instant would go stale).
fn writable(loc: &Loc) -> Result<()> {
    if loc.indexed && loc.shadowed {
        return Err(invalid(
            loc,
            "an indexed date-time cannot be written by a block (its search instant lives \
             beside it); use the field handle's set",
        ));
    }
    Ok(())
}

/// The key field's name and the id's JSON, for a whole document; empty otherwise.
fn id_fix(loc: &Loc) -> Result<(String, String)> {
    if !loc.is_document() {
        return Ok((String::new(), String::new()));
    }
    match &loc.doc.id {
        Ok((name, id)) => Ok((name.to_string(), id.clone())),
        Err(message) => Err(invalid(loc, message)),
    }
}

/// The range an integer result must stay in, as the block runtime reads it: `i64`'s, the
/// most common, as two empty texts (39 bytes fewer per operation on the wire).
fn sent_range<T: Numeric>() -> (String, String) {
    let (lo, hi) = T::range();
    if T::WANT_NUMBER == "integer" && lo == i64::MIN.to_string() && hi == i64::MAX.to_string() {
        return (String::new(), String::new());
    }
    (lo, hi)
}

fn incr_params<T: Numeric>(
    loc: &Loc,
    by: T,
    negate: bool,
) -> std::result::Result<Vec<Param>, Error> {
    let text = by.text(negate).ok_or_else(|| Error::NonFinite {
        key: loc.doc.key.clone(),
        path: loc.path(),
    })?;
    let (lo, hi) = sent_range::<T>();
    Ok(vec![
        Param::Loc(loc.clone()),
        Param::Lit(T::WANT_NUMBER),
        Param::Arg(text),
        Param::Arg(lo),
        Param::Arg(hi),
    ])
}

fn assign_params<B: Ref>(
    from: &Loc,
    to: &B,
    element_want: &'static str,
) -> std::result::Result<Vec<Param>, Error> {
    writable(to.loc())?;
    let (name, id) = id_fix(to.loc())?;
    Ok(vec![
        Param::Loc(from.clone()),
        Param::Loc(to.loc().clone()),
        Param::Lit(to.want()),
        Param::Lit(element_want),
        Param::Arg(name),
        Param::Arg(id),
    ])
}

// Circular buffers (their reference is in `buffer.rs`): `push_into`, `push_many_into`, and
// the operations on any whole value. (`Ops::push` is the builder's own, in `builder.rs`.)
impl<T: Referable, const N: usize, B: Bind> Whole for BufferRef<T, N, B> {}
impl<T: Referable, const N: usize, B: Bind> Clear for BufferRef<T, N, B> {}
impl<T: Referable, const N: usize, B: Bind> sealed::Sealed for BufferRef<T, N, B> {}

impl Ops {
    /// Appends `item` to the circular buffer at `buffer` and keeps its newest `N`, however
    /// long it was before; returns its length afterwards (at most `N`).
    pub fn push_into<T: Referable, const N: usize, B: Bind>(
        &self,
        buffer: BufferRef<T, N, B>,
        item: impl Into<T>,
    ) -> Out<usize> {
        self.push_many_into(buffer, [item.into()])
    }

    /// Appends every item of `items`, in order, to the circular buffer at `buffer` and keeps
    /// the newest `N` of the two together; returns its length afterwards. Every item is
    /// checked; only the newest `N` travel.
    pub fn push_many_into<T: Referable, const N: usize, B: Bind>(
        &self,
        buffer: BufferRef<T, N, B>,
        items: impl IntoIterator<Item = T>,
    ) -> Out<usize> {
        let capacity = CircularBuffer::<T, N>::CAPACITY;
        let items: Vec<T> = items.into_iter().collect();
        let loc = &buffer.loc;
        let params = list_items(loc, &items).and_then(|all| {
            let skip = items.len().saturating_sub(capacity);
            // One JSON array of the newest `N` (the runtime's op takes them as one argument).
            let json = format!("[{}]", all[skip..].join(","));
            // The items stand where the buffer's array stands: its depth is theirs.
            crate::depth::check(&loc.doc.key, &loc.path(), &json)?;
            Ok(vec![
                Param::Loc(loc.clone()),
                Param::Arg(capacity.to_string()),
                Param::Arg(json),
            ])
        });
        self.push(BlockOp::BufferPush, params)
    }
}
