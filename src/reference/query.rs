//! A `Ref` in the search index: a case-sensitive TAG of the id.

use std::marker::PhantomData;

use super::Ref;
use crate::keys::KeySettings;
use crate::query::{Expr, FieldName, IndexKind, IndexOptions, Indexable, SchemaField, TagField};

/// Something that names a target of a `Ref<M>` in a query: the model, a `Ref<M>`, or an id.
pub trait RefId<M> {
    /// The target's id.
    fn ref_id(&self) -> String;
}

impl<M: KeySettings> RefId<M> for &M {
    fn ref_id(&self) -> String {
        self.model_id()
    }
}

impl<M> RefId<M> for &Ref<M> {
    fn ref_id(&self) -> String {
        self.id.clone()
    }
}

impl<M> RefId<M> for &str {
    fn ref_id(&self) -> String {
        (*self).to_string()
    }
}

impl<M> RefId<M> for String {
    fn ref_id(&self) -> String {
        self.clone()
    }
}

/// An indexed `Ref<M>` (or `Option<Ref<M>>`) field: `f.author.eq(&ann)`, by model, `Ref` or
/// id. Indexed as a case-sensitive TAG of the id.
#[derive(Debug, Clone)]
pub struct RefField<M> {
    tag: TagField,
    _target: PhantomData<fn() -> M>,
}

impl<M> RefField<M> {
    fn new(name: String) -> RefField<M> {
        RefField {
            tag: TagField::new(name),
            _target: PhantomData,
        }
    }

    /// Points at `target` (a model, a `&Ref<M>`, or an id).
    pub fn eq(&self, target: impl RefId<M>) -> Expr {
        self.tag.eq(&target.ref_id())
    }

    /// Points anywhere but at `target` (a null `Option<Ref<M>>` included).
    pub fn ne(&self, target: impl RefId<M>) -> Expr {
        !self.eq(target)
    }

    /// Points at one of `targets` (nothing matches when there are none).
    pub fn one_of<R: RefId<M>>(&self, targets: impl IntoIterator<Item = R>) -> Expr {
        let ids: Vec<String> = targets.into_iter().map(|t| t.ref_id()).collect();
        self.tag.one_of(ids.iter().map(String::as_str))
    }
}

impl<M> FieldName for RefField<M> {
    fn field_name(&self) -> &str {
        self.tag.field_name()
    }
}

/// The TAG schema of a reference at `path`: ids are matched exactly (case-sensitive, whatever
/// the options say: `ann` and `Ann` are different targets).
fn ref_schema(path: &str, name: &str, options: IndexOptions, out: &mut Vec<SchemaField>) {
    out.push(SchemaField {
        path: path.to_string(),
        name: name.to_string(),
        kind: IndexKind::Tag,
        options: IndexOptions::new(false, options.sortable, false),
    });
}

impl<M: KeySettings> Indexable for Ref<M> {
    type Field = RefField<M>;
    fn field(name: String) -> RefField<M> {
        RefField::new(name)
    }
    fn schema(path: &str, name: &str, options: IndexOptions, out: &mut Vec<SchemaField>) {
        ref_schema(path, name, options, out);
    }
}

/// A null reference is indexed as no value: `eq` never matches it, `ne` does.
impl<M: KeySettings> Indexable for Option<Ref<M>> {
    type Field = RefField<M>;
    fn field(name: String) -> RefField<M> {
        RefField::new(name)
    }
    fn schema(path: &str, name: &str, options: IndexOptions, out: &mut Vec<SchemaField>) {
        ref_schema(path, name, options, out);
    }
}
