//! The validated description of a model that code generation works from: built from the
//! parsed input ([`crate::ast`]) by the checks in [`crate::check`].

use syn::{DeriveInput, Ident, Type, Visibility};

use crate::attr::{self, Errors};
use crate::{ast, check};

/// A struct that derives `AtomicModel`.
pub(crate) struct Model {
    pub(crate) ident: Ident,
    pub(crate) vis: Visibility,
    /// The fields that get a handle accessor, in declaration order.
    pub(crate) fields: Vec<HandleField>,
    /// The key prefix (the struct's name unless `prefix` is given).
    pub(crate) prefix: String,
    /// Seconds of expiry set with every save.
    pub(crate) ttl: Option<u64>,
    /// `refresh_on_read`: reads re-arm the ttl.
    pub(crate) refresh_on_read: bool,
    /// The keys' hash tag.
    pub(crate) hash_tag: HashTagModel,
    /// The `#[rapyer(key)]` field; `None` for a model that can only be nested.
    pub(crate) key: Option<KeyField>,
    /// Fields serde leaves out of the document: they keep their local value when a model's
    /// atomic block writes the model's stored state back into it.
    pub(crate) local_only: Vec<Ident>,
    /// `#[serde(deny_unknown_fields)]`: no property beside the fields may be stored, so
    /// no indexed date-time (whose search instant is such a property).
    pub(crate) deny_unknown_fields: bool,
}

/// Which part of the keys decides their cluster slot.
pub(crate) enum HashTagModel {
    None,
    Static(String),
    Id,
}

/// A field with a handle accessor.
pub(crate) struct HandleField {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    pub(crate) vis: Visibility,
    /// The JSONPath step from the parent object: `.name` or `["name"]`.
    pub(crate) segment: String,
    /// `#[rapyer(value)]`: a `RedisValue` handle whatever the type.
    pub(crate) value: bool,
    /// The field's name in the document (serde's).
    pub(crate) json_name: String,
    /// `#[rapyer(index(...))]`: the field is in the search index.
    pub(crate) index: Option<attr::IndexAttr>,
    /// `on_delete = "…"`: the policy's variant name in `rapyer::OnDelete`.
    pub(crate) on_delete: Option<Ident>,
    /// `#[serde(with = …)]` and kin: the accessors exist only to refuse, at the call, with a
    /// message that says why and what to do.
    pub(crate) with: bool,
    /// `#[rapyer(bloom)]`: every save adds the field's value to a Bloom filter, asked by
    /// `maybe_exists_by_<field>`.
    pub(crate) bloom: bool,
}

/// The field whose value is the model's id.
pub(crate) struct KeyField {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// The field's name in the document (serde's).
    pub(crate) json_name: String,
}

impl Model {
    /// Reads the derive's input and checks it as a whole: every mistake is reported at
    /// once, each at its culprit.
    pub(crate) fn from_input(input: &DeriveInput) -> syn::Result<Model> {
        let mut errors = Errors::default();
        let ast = ast::Input::from_ast(input, &mut errors)?;
        let model = check::model(&ast, &mut errors);
        errors.finish()?;
        Ok(model)
    }
}
