//! The operations of a block, each defined once: `ops.op(target, …)` in a ServerOps
//! block, and the same operation as `target.op(…)` on a model pipeline's references.

use std::fmt::Display;

use super::builder::Ops;
use super::numeric::{Accepts, Numeric};
use super::program::{Out, Param};
use super::refs::{Bind, DictRef, ListRef, Loc, Map, Ref, Referable, ServerRef, Step};
use crate::error::{Error, Result};
use crate::model::AtomicModel;

/// References that name a whole value (not a slice): what [`Ops::swap`] exchanges.
pub trait Whole: Ref {}
impl<T: serde::Serialize, B: Bind> Whole for ServerRef<T, B> {}
impl<T: Referable, B: Bind> Whole for ListRef<T, B> {}
impl<M: Map, B: Bind> Whole for DictRef<M, B> {}

impl Ops {
    /// Replaces the value at `target` with `value`. On a slice it is Python's slice
    /// assignment from the given elements; on a dict entry it adds the entry if absent.
    pub fn set<R: Ref>(&self, target: R, value: impl Into<R::Value>) -> Out<()> {
        let params = writable(target.loc()).and_then(|()| {
            let value = value.into();
            let json = R::encode(&value).map_err(|source| Error::Serialize {
                key: target.loc().doc.key.clone(),
                source,
            })?;
            crate::crud::check_finite(&target.loc().doc.key, &target.loc().path(), &value, &json)?;
            let (name, id) = id_fix(target.loc())?;
            Ok(vec![
                Param::Loc(target.loc().clone()),
                Param::Lit(target.want()),
                Param::Arg(json),
                Param::Arg(name),
                Param::Arg(id),
            ])
        });
        self.push("op_set", params)
    }

    /// Adds `by` (negative to subtract) to the number at `target`; returns the new value.
    /// Integers are exact over their type's whole range: a result outside it is
    /// [`Error::Overflow`].
    pub fn incr<R: Ref>(&self, target: R, by: R::Value) -> Out<R::Value>
    where
        R::Value: Numeric,
    {
        self.push("op_incr", incr_params(target.loc(), by, false))
    }

    /// Adds the number at `by` to the number at `target`; returns the new value. Integers
    /// take integers; floats take any number.
    pub fn incr_by_field<A: Ref, B: Ref>(&self, target: A, by: B) -> Out<A::Value>
    where
        A::Value: Numeric,
        B::Value: Numeric,
        <A::Value as Numeric>::Kind: Accepts<<B::Value as Numeric>::Kind>,
    {
        let (lo, hi) = <A::Value as Numeric>::range();
        self.push(
            "op_incr_by",
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
        self.push(
            "op_assign",
            assign_params(from.loc(), &to, from.element_want()),
        )
    }

    /// Exchanges the values at `a` and `b`. Whole models keep their ids.
    pub fn swap<A: Whole, B: Whole<Value = A::Value>>(&self, a: A, b: B) -> Out<()> {
        let params = writable(a.loc())
            .and_then(|()| writable(b.loc()))
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
        self.push("op_swap", params)
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
            "op_concat",
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
            "op_append_from",
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
        self.push("op_move", params)
    }

    /// Copies the model at `from` to the model of the same type with id `to_id`, creating
    /// or replacing it; the copy carries `to_id` in its key field.
    pub fn copy_model<M: AtomicModel, R: Ref<Value = M>>(
        &self,
        from: R,
        to_id: impl Display,
    ) -> Out<()> {
        let to = M::server_ref_for(to_id);
        self.push("op_assign", assign_params(from.loc(), &to, "*"))
    }
}

pub(super) fn invalid(loc: &Loc, message: &str) -> Error {
    Error::InvalidOp {
        key: loc.doc.key.clone(),
        path: loc.path(),
        message: message.to_string(),
    }
}

/// Refuses writes to an indexed date-time (its search instant would go stale).
pub(super) fn writable(loc: &Loc) -> Result<()> {
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
pub(super) fn id_fix(loc: &Loc) -> Result<(String, String)> {
    if !loc.is_document() {
        return Ok((String::new(), String::new()));
    }
    match &loc.doc.id {
        Ok((name, id)) => Ok((name.to_string(), id.clone())),
        Err(message) => Err(invalid(loc, message)),
    }
}

pub(super) fn incr_params<T: Numeric>(
    loc: &Loc,
    by: T,
    negate: bool,
) -> std::result::Result<Vec<Param>, Error> {
    let text = by.text(negate).ok_or_else(|| Error::NonFinite {
        key: loc.doc.key.clone(),
        path: loc.path(),
    })?;
    let (lo, hi) = T::range();
    Ok(vec![
        Param::Loc(loc.clone()),
        Param::Lit(T::WANT_NUMBER),
        Param::Arg(text),
        Param::Arg(lo),
        Param::Arg(hi),
    ])
}

pub(super) fn assign_params<B: Ref>(
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

/// The JSON of a key field's value for the id `id`: used when a whole document is copied
/// in as the model with that id.
#[doc(hidden)]
pub fn id_member<K: std::str::FromStr + serde::Serialize>(
    name: &'static str,
    id: &str,
) -> std::result::Result<(&'static str, String), String> {
    let parsed: K = id
        .parse()
        .map_err(|_| format!("`{id}` does not parse as the model's key type"))?;
    // A NaN float id would be stored as `null`, an `i128`/`u128` one beyond what a document
    // holds as a float: either way the copy would no longer load.
    if crate::finite::find(&parsed).is_some() {
        return Err(format!(
            "the id `{id}` has no exact form in a document (a NaN or infinite float, or an \
             integer beyond i64::MIN ..= u64::MAX)"
        ));
    }
    serde_json::to_string(&parsed)
        .map(|json| (name, json))
        .map_err(|e| e.to_string())
}
