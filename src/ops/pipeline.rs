//! The model pipeline behind `model.pipeline(&db, |p| …)`: a block whose references are
//! bound to it, and whose results are written back into the local model.

use super::builder::Ops;
use super::entry::namespaced;
use super::numeric::Numeric;
use super::program::{Out, Param};
use super::refs::{self, Bind, Bound, DictRef, ListRef, Loc, Map, Ref, Referable, ServerRef, Step};
use super::run::{self, Resolve};
use super::vocabulary::incr_params;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::model::AtomicModel;

/// The model pipeline behind `model.pipeline(&db, |p| …)`.
pub(crate) async fn pipeline<M, F, R>(model: &mut M, db: &Db, build: F) -> Result<R::Output>
where
    M: AtomicModel,
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

// Operations of a model pipeline's bound references.

fn bound<B: Bind>(bind: &B) -> &Ops {
    bind.ops()
        .expect("bound references always hold their block")
}

impl<'a, T: serde::Serialize> ServerRef<T, Bound<'a>> {
    /// Replaces the value.
    pub fn set(&self, value: impl Into<T>) -> Out<()> {
        bound(&self.bind).set(self.clone(), value)
    }
}

impl<'a, T: Numeric> ServerRef<T, Bound<'a>> {
    /// Adds `by`; returns the new value (exact for integers, [`Error::Overflow`] outside the
    /// type's range).
    pub fn incr(&self, by: T) -> Out<T> {
        bound(&self.bind).push("op_incr", incr_params(&self.loc, by, false))
    }

    /// Subtracts `by`; returns the new value.
    pub fn decr(&self, by: T) -> Out<T> {
        bound(&self.bind).push("op_incr", incr_params(&self.loc, by, true))
    }
}

impl ServerRef<String, Bound<'_>> {
    /// Appends `suffix`; returns the new string.
    pub fn append(&self, suffix: &str) -> Out<String> {
        bound(&self.bind).push(
            "op_str_append",
            Ok(vec![
                Param::Loc(self.loc.clone()),
                Param::Arg(suffix.to_string()),
            ]),
        )
    }
}

impl ServerRef<bool, Bound<'_>> {
    /// Flips the boolean; returns the new value.
    pub fn toggle(&self) -> Out<bool> {
        bound(&self.bind).push("op_toggle", Ok(vec![Param::Loc(self.loc.clone())]))
    }
}

impl<T: Referable> ListRef<T, Bound<'_>> {
    fn items(&self, items: &[T]) -> std::result::Result<String, Error> {
        let json = refs::encode_items(items).map_err(|source| Error::Serialize {
            key: self.loc.doc.key.clone(),
            source,
        })?;
        crate::crud::check_finite(&self.loc.doc.key, &self.loc.path(), items, &json)?;
        Ok(json)
    }

    /// Appends one element; returns the new length.
    pub fn append(&self, value: impl Into<T>) -> Out<usize> {
        self.extend([value.into()])
    }

    /// Appends every element; returns the new length.
    pub fn extend(&self, values: impl IntoIterator<Item = T>) -> Out<usize> {
        let values: Vec<T> = values.into_iter().collect();
        let params = self
            .items(&values)
            .map(|json| vec![Param::Loc(self.loc.clone()), Param::Arg(json)]);
        bound(&self.bind).push("op_list_push", params)
    }

    /// Inserts before `index` (Python's `insert`: clamped, negative from the end); returns
    /// the new length.
    pub fn insert(&self, index: i64, value: impl Into<T>) -> Out<usize> {
        let value = value.into();
        let params = value
            .to_json()
            .map_err(|source| Error::Serialize {
                key: self.loc.doc.key.clone(),
                source,
            })
            .and_then(|json| {
                crate::crud::check_finite(&self.loc.doc.key, &self.loc.path(), &value, &json)?;
                Ok(json)
            })
            .map(|json| {
                vec![
                    Param::Loc(self.loc.clone()),
                    Param::Arg(index.to_string()),
                    Param::Arg(json),
                ]
            });
        bound(&self.bind).push("op_list_insert", params)
    }

    /// Removes and returns the last element; [`Error::IndexOutOfRange`] when empty.
    pub fn pop(&self) -> Out<T> {
        self.pop_at(-1)
    }

    /// Removes and returns the element at `index`; [`Error::IndexOutOfRange`] outside.
    pub fn pop_at(&self, index: i64) -> Out<T> {
        let loc = self.loc.then(Step::Index(index));
        bound(&self.bind).push("op_list_pop", Ok(vec![Param::Loc(loc)]))
    }

    /// Replaces the element at `index`; [`Error::IndexOutOfRange`] outside.
    pub fn set(&self, index: i64, value: impl Into<T>) -> Out<()> {
        bound(&self.bind).set(self.at(index), value)
    }

    /// Replaces the whole list.
    pub fn replace(&self, values: Vec<T>) -> Out<()> {
        bound(&self.bind).set(self.clone(), values)
    }

    /// Empties the list.
    pub fn clear(&self) -> Out<()> {
        bound(&self.bind).push(
            "op_clear",
            Ok(vec![Param::Loc(self.loc.clone()), Param::Lit("array")]),
        )
    }
}

impl<M: Map> DictRef<M, Bound<'_>> {
    /// Sets the entry `key` to `value`, adding it if absent.
    pub fn insert(&self, key: impl Into<String>, value: impl Into<M::Value>) -> Out<()> {
        bound(&self.bind).set(self.entry(key), value)
    }

    /// Removes the entry `key`; returns its value, `None` if it was absent.
    pub fn remove(&self, key: impl Into<String>) -> Out<Option<M::Value>> {
        let loc = self.loc.then(Step::Key(key.into()));
        bound(&self.bind).push("op_dict_remove", Ok(vec![Param::Loc(loc)]))
    }

    /// Sets every entry of `entries`, in order; returns the dict's new size.
    pub fn update<K: Into<String>>(
        &self,
        entries: impl IntoIterator<Item = (K, M::Value)>,
    ) -> Out<usize> {
        let entries: Vec<(String, M::Value)> =
            entries.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let params = refs::encode_entries(entries.iter().map(|(k, v)| (k, v)))
            .map_err(|source| Error::Serialize {
                key: self.loc.doc.key.clone(),
                source,
            })
            .and_then(|json| {
                crate::depth::check(&self.loc.doc.key, &self.loc.path(), &json)?;
                // Without a `null` or a long number in the text, no value hides one.
                if crate::finite::may_hide(&json) {
                    for (k, v) in &entries {
                        let mut path = self.loc.path();
                        crate::finite::push_member(&mut path, k);
                        crate::crud::non_finite(&self.loc.doc.key, &path, crate::finite::find(v))?;
                    }
                }
                Ok(json)
            })
            .map(|json| vec![Param::Loc(self.loc.clone()), Param::Arg(json)]);
        bound(&self.bind).push("op_dict_update", params)
    }

    /// Replaces the whole dict.
    pub fn replace(&self, map: M) -> Out<()> {
        bound(&self.bind).set(self.clone(), map)
    }

    /// Empties the dict.
    pub fn clear(&self) -> Out<()> {
        bound(&self.bind).push(
            "op_clear",
            Ok(vec![Param::Loc(self.loc.clone()), Param::Lit("object")]),
        )
    }
}

/// `set` of a generated `<Name>Ref` in a model pipeline: replaces the whole model.
#[doc(hidden)]
pub fn set_bound<R: Ref + Clone>(r: &R, value: R::Value) -> Out<()> {
    bound(r.bind()).set(r.clone(), value)
}

/// A model's JSON with the search instant beside each date-time it indexes.
#[doc(hidden)]
pub fn model_json<T: crate::model::Model>(value: &T) -> serde_json::Result<String> {
    crate::crud::model_text(value)
}
