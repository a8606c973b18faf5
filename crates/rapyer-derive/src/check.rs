//! The rules a model must follow, checked on the parsed input ([`crate::ast`]) as a
//! whole, building the validated [`Model`] that code generation works from. Every broken
//! rule is pushed to the errors, with a span on the culprit; nothing stops at the first.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Ident, Type};

use crate::attr::{self, Errors};
use crate::model::{HandleField, HashTagModel, KeyField, Model};
use crate::{ast, case};

/// Names of model methods a field accessor must not shadow. Accessors are inherent methods,
/// which silently win over trait methods, so a field named `save` would hide `save`.
const RESERVED: &[&str] = &[
    "all",
    "atomic",
    "delete",
    "delete_by_id",
    "delete_many",
    "exists",
    "fields",
    "find",
    "get",
    "get_many",
    "init",
    "insert_many",
    "key",
    "key_of",
    "load",
    "lock",
    "model_id",
    "refresh",
    "save",
    "server_ref",
    "server_ref_for",
    "set",
    "set_ttl",
    "ttl",
];

/// Checks `input` and builds the model it describes; what is wrong goes to `errors` (the
/// model returned then is only good for reporting more mistakes, never for expanding).
pub(crate) fn model(input: &ast::Input<'_>, errors: &mut Errors) -> Model {
    container(input, errors);
    let fields = fields(input, errors);
    distinct_json_names(fields.key.as_ref(), &fields.handles, errors);
    let has_key = fields.key.is_some();
    if !has_key {
        for span in input.fields.iter().filter_map(|f| f.attrs.bloom) {
            errors.push(syn::Error::new(
                span,
                "`bloom` needs a stored model: only a model with a #[rapyer(key)] field is \
                 saved, and its saves keep the filter",
            ));
        }
    }
    if !has_key && let Some(f) = fields.handles.iter().find(|f| f.on_delete.is_some()) {
        errors.push(syn::Error::new(
            f.ident.span(),
            "on_delete is enforced for the fields of a stored model (one with a \
             #[rapyer(key)] field); a model nested in another cannot declare it",
        ));
    }
    let prefix = prefix(input, has_key, errors);
    let ttl = ttl(&input.attrs, errors);
    storage_options(&input.attrs, has_key, errors);
    let hash_tag = hash_tag(&input.attrs, fields.id_tag, has_key, errors);
    Model {
        hash_tag,
        ident: input.ident.clone(),
        vis: input.vis.clone(),
        fields: fields.handles,
        prefix,
        ttl,
        refresh_on_read: input.attrs.refresh_on_read.is_some(),
        key: fields.key,
        local_only: fields.local_only,
        deny_unknown_fields: input.serde.deny_unknown_fields,
    }
}

/// The struct as a whole: not generic, stored by serde as an object of its fields.
fn container(input: &ast::Input<'_>, errors: &mut Errors) {
    if !input.generics.params.is_empty() {
        errors.push(syn::Error::new(
            input.generics.span(),
            "a model cannot be generic: its key prefix and JSON layout must be fixed; \
             define one struct per stored type",
        ));
    }
    if let Some((word, span)) = &input.serde.not_an_object {
        errors.push(syn::Error::new(
            *span,
            format!(
                "#[serde({word})] stores this struct as something other than an object of \
                 its fields, which rapyer's handles and paths address one by one; store the \
                 value as a #[rapyer(value)] field of a model instead"
            ),
        ));
    }
}

/// What the fields make of the model.
struct ModelFields {
    /// The `#[rapyer(key)]` field.
    key: Option<KeyField>,
    /// The fields with a handle.
    handles: Vec<HandleField>,
    /// The fields serde leaves out of the document.
    local_only: Vec<syn::Ident>,
    /// `hash_tag` on the key field: the id is the keys' hash tag.
    id_tag: bool,
}

/// Each field's rules, in declaration order.
fn fields(input: &ast::Input<'_>, errors: &mut Errors) -> ModelFields {
    let mut out = ModelFields {
        key: None,
        handles: Vec::new(),
        local_only: Vec::new(),
        id_tag: false,
    };
    for field in &input.fields {
        let (ident, bare, field_attrs) = (&field.ident, field.bare.as_str(), &field.attrs);
        if RESERVED.contains(&bare) {
            errors.push(syn::Error::new(
                ident.span(),
                format!(
                    "field `{bare}` would shadow the model method `{bare}`; rename the \
                     field and keep its JSON name with #[serde(rename = \"{bare}\")]"
                ),
            ));
        }
        if let Some(span) = field_attrs.hash_tag {
            if field_attrs.key.is_none() {
                errors.push(syn::Error::new(
                    span,
                    "`hash_tag` on a field makes the model's id its keys' hash tag, so it \
                     goes on the #[rapyer(key)] field; for a fixed tag use \
                     #[rapyer(hash_tag = \"...\")] on the struct",
                ));
            } else {
                out.id_tag = true;
            }
        }
        if let (Some(span), true) = (field_attrs.bloom, field_attrs.key.is_some()) {
            errors.push(syn::Error::new(
                span,
                "the key field needs no Bloom filter: `exists` answers exactly whether an id \
                 is stored",
            ));
        }
        if let Some(span) = field_attrs.key {
            if field_attrs.index.is_some() {
                errors.push(syn::Error::new(
                    span,
                    "the key field is not indexed: find a model by its id with get",
                ));
            }
            check_key_field(field, span, out.key.as_ref(), errors);
            if out.key.is_none() {
                let json_name = json_name(field, &input.serde, errors);
                out.key = Some(KeyField {
                    ident: ident.clone(),
                    ty: field.original.ty.clone(),
                    json_name,
                });
            }
            continue;
        }
        // Fields serde leaves out of the document, or spreads into the parent, have no
        // path of their own and so no handle.
        let serde = &field.serde;
        if serde.skip.is_some() {
            out.local_only.push(ident.clone());
        }
        if serde.skip.is_some() || serde.flatten {
            if let Some(span) = field_attrs.bloom {
                errors.push(syn::Error::new(
                    span,
                    "a field serde skips or flattens has no place in the document, so it \
                     cannot have a Bloom filter",
                ));
            }
            if field_attrs.index.is_some() {
                errors.push(syn::Error::new(
                    field.span(),
                    "a field serde skips or flattens has no place in the document, so it \
                     cannot be indexed",
                ));
            }
            continue;
        }
        let json_name = json_name(field, &input.serde, errors);
        if let Some((word, span)) = &serde.with {
            let what = [
                field_attrs.index.is_some().then_some("indexed"),
                field_attrs.value.map(|_| "a #[rapyer(value)] field"),
                field_attrs.bloom.map(|_| "a #[rapyer(bloom)] field"),
            ];
            for what in what.into_iter().flatten() {
                errors.push(syn::Error::new(
                    *span,
                    format!(
                        "a field with #[serde({word} = …)] cannot be {what}: rapyer's handles, \
                         blocks and search index read and write the type's own serde form; \
                         wrap the type in a newtype whose Serialize/Deserialize do the \
                         conversion, and mark the field #[rapyer(value)]"
                    ),
                ));
            }
        }
        match path_segment(&json_name) {
            Ok(segment) => out.handles.push(HandleField {
                ident: ident.clone(),
                ty: field.original.ty.clone(),
                vis: field.original.vis.clone(),
                segment,
                value: field_attrs.value.is_some(),
                json_name,
                index: field_attrs.index,
                on_delete: on_delete(field, errors),
                with: serde.with.is_some(),
                bloom: field_attrs.bloom.is_some(),
            }),
            Err(why) => errors.push(syn::Error::new(field.span(), why)),
        }
    }
    out
}

/// `on_delete = "…"`: the policy's `rapyer::OnDelete` variant, on an indexed field (the
/// referrers are found through the index).
fn on_delete(field: &ast::Field<'_>, errors: &mut Errors) -> Option<Ident> {
    let lit = field.attrs.on_delete.as_ref()?;
    let variant = match lit.value().as_str() {
        "restrict" => "Restrict",
        "cascade" => "Cascade",
        "set_null" => "SetNull",
        other => {
            errors.push(syn::Error::new(
                lit.span(),
                format!(
                    "unknown on_delete policy {other:?}: use \"restrict\", \"cascade\" or \
                     \"set_null\""
                ),
            ));
            return None;
        }
    };
    if field.attrs.index.is_none() {
        errors.push(syn::Error::new(
            lit.span(),
            "on_delete finds the referrers through the search index: add #[rapyer(index)] \
             to this field (and call db.init::<ThisModel>())",
        ));
    }
    Some(Ident::new(variant, lit.span()))
}

/// Two fields serde writes under one name would be one property of the document.
fn distinct_json_names(key: Option<&KeyField>, fields: &[HandleField], errors: &mut Errors) {
    let mut seen: Vec<&str> = key.iter().map(|k| k.json_name.as_str()).collect();
    for f in fields {
        if seen.contains(&f.json_name.as_str()) {
            errors.push(syn::Error::new(
                f.ident.span(),
                format!(
                    "another field is already stored as {:?}; give one of them another name \
                     with #[serde(rename = \"...\")]",
                    f.json_name
                ),
            ));
        }
        seen.push(&f.json_name);
    }
}

/// The key prefix: `prefix`, or the struct's name.
fn prefix(input: &ast::Input<'_>, has_key: bool, errors: &mut Errors) -> String {
    match &input.attrs.prefix {
        Some(lit) => {
            let value = lit.value();
            if let Err(why) = check_prefix(&value) {
                errors.push(syn::Error::new(lit.span(), why));
            }
            value
        }
        None => {
            let value = input.ident.to_string();
            if has_key && let Err(why) = check_prefix(&value) {
                errors.push(syn::Error::new(
                    input.ident.span(),
                    format!("{why}; the struct's name is the default prefix, so give one with #[rapyer(prefix = \"…\")]"),
                ));
            }
            value
        }
    }
}

/// `ttl`: whole seconds, at least one.
fn ttl(attrs: &attr::StructAttrs, errors: &mut Errors) -> Option<u64> {
    let lit = attrs.ttl.as_ref()?;
    match lit.base10_parse::<u64>() {
        Ok(0) => {
            errors.push(syn::Error::new(lit.span(), "ttl must be at least 1 second"));
            None
        }
        Ok(secs) => Some(secs),
        Err(e) => {
            errors.push(syn::Error::new(
                lit.span(),
                format!("ttl takes whole seconds, e.g. `ttl = 300`: {e}"),
            ));
            None
        }
    }
}

/// Options that only mean something together with another: `refresh_on_read` with a
/// ttl, and storage options with a key.
fn storage_options(attrs: &attr::StructAttrs, has_key: bool, errors: &mut Errors) {
    if let (Some(span), None) = (attrs.refresh_on_read, &attrs.ttl) {
        errors.push(syn::Error::new(
            span,
            "`refresh_on_read` re-arms the model's expiry on every read, and this model has \
             none; add one, e.g. #[rapyer(ttl = 300, refresh_on_read)]",
        ));
    }
    if !has_key {
        // A struct without a key is fine as a nested model, but storage options on it
        // mean the user wanted a stored model and forgot the key.
        let stored_only = attrs
            .prefix
            .as_ref()
            .map(|l| (attr::PREFIX, l.span()))
            .or(attrs.ttl.as_ref().map(|l| (attr::TTL, l.span())));
        if let Some((name, span)) = stored_only {
            errors.push(syn::Error::new(
                span,
                format!(
                    "`{name}` applies to a stored model, and this struct has no key field; \
                     mark the field that identifies it with #[rapyer(key)] (use rapyer::Id \
                     for generated ids)"
                ),
            ));
        }
    }
}

/// The keys' hash tag: a fixed one on the struct, or the id (`hash_tag` on the key).
fn hash_tag(
    attrs: &attr::StructAttrs,
    id_tag: bool,
    has_key: bool,
    errors: &mut Errors,
) -> HashTagModel {
    match (&attrs.hash_tag, id_tag) {
        (Some(lit), true) => {
            errors.push(syn::Error::new(
                lit.span(),
                "a model has one hash tag: a fixed one here, or its id (`hash_tag` on the key)",
            ));
            HashTagModel::None
        }
        (Some(lit), false) => {
            let tag = lit.value();
            if tag.is_empty() || tag.contains(['{', '}']) {
                errors.push(syn::Error::new(
                    lit.span(),
                    "a hash tag is a non-empty text without braces (rapyer adds them)",
                ));
            }
            if !has_key {
                errors.push(syn::Error::new(
                    lit.span(),
                    "`hash_tag` applies to a stored model, and this struct has no key field",
                ));
            }
            HashTagModel::Static(tag)
        }
        (None, true) => HashTagModel::Id,
        (None, false) => HashTagModel::None,
    }
}

/// The field's name in the document: serde's serialize name. serde must read the field back
/// by that name too (its deserialize name or an alias), or no stored model could be read.
fn json_name(field: &ast::Field<'_>, rules: &attr::SerdeStruct, errors: &mut Errors) -> String {
    let (serde, bare) = (&field.serde, field.bare.as_str());
    let by_rule = |rule: &Option<String>| match rule {
        Some(rule) => case::apply_rename_rule(rule, bare),
        None => bare.to_string(),
    };
    let written = serde
        .rename
        .clone()
        .unwrap_or_else(|| by_rule(&rules.rename_all));
    let read = serde
        .rename_de
        .clone()
        .unwrap_or_else(|| by_rule(&rules.rename_all_de));
    if !serde.skip_de && written != read && !serde.aliases.contains(&written) {
        errors.push(syn::Error::new(
            field.name_span(),
            format!(
                "serde writes this field as {written:?} and reads it as {read:?}, so no stored \
                 model could be read back; make the serialize and deserialize names agree, or \
                 add #[serde(alias = {written:?})]"
            ),
        ));
    }
    written
}

/// The rules of the `#[rapyer(key)]` field (marked at `span`).
fn check_key_field(
    field: &ast::Field<'_>,
    span: Span,
    existing: Option<&KeyField>,
    errors: &mut Errors,
) {
    if let Some(first) = existing {
        errors.push(syn::Error::new(
            span,
            format!(
                "a model has exactly one #[rapyer(key)] field, and `{}` already is",
                first.ident
            ),
        ));
    }
    if is_option(&field.original.ty) {
        errors.push(syn::Error::new(
            field.original.ty.span(),
            "the key field cannot be an Option: every stored model has an id (use rapyer::Id \
             with Default for generated ids)",
        ));
    }
    let serde = &field.serde;
    if let Some(skip) = serde.skip {
        errors.push(syn::Error::new(
            skip,
            "the key field must be stored in the document; remove the serde skip",
        ));
    }
    if let Some((word, span)) = &serde.with {
        errors.push(syn::Error::new(
            *span,
            format!(
                "the key field cannot use #[serde({word} = …)]: its stored form must be the \
                 key type's own, which is what ids are read and written as; use a newtype \
                 with its own Serialize/Deserialize as the key type"
            ),
        ));
    }
}

fn is_option(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Option"),
        // A `$ty:ty` passed through `macro_rules!` arrives wrapped in an invisible group.
        Type::Group(g) => is_option(&g.elem),
        Type::Paren(p) => is_option(&p.elem),
        _ => false,
    }
}

/// The JSONPath step to a property named `name`: `.name` for identifier-like names,
/// `["name"]` otherwise. A name JSONPath cannot address is an error.
fn path_segment(name: &str) -> Result<String, String> {
    let mut chars = name.chars();
    let identifier = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if identifier {
        return Ok(format!(".{name}"));
    }
    // RedisJSON drops a step's leading space (`[" a"]` reads `a`): such a name would address
    // another member.
    if name.is_empty()
        || name.starts_with(' ')
        || name
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
    {
        return Err(format!(
            "the JSON name {name:?} cannot be addressed by a JSONPath, so this field cannot \
             have a handle; give it another name with #[serde(rename = \"...\")]"
        ));
    }
    Ok(format!("[\"{name}\"]"))
}

/// A model prefix is one segment of the key layout `{namespace}{Prefix}:{id}`: it starts with
/// a letter or digit and holds only letters, digits, `_`, `-` and `.`. So no prefix holds the
/// `:` that ends it, the `/` that ends a namespace, a glob or brace character, or whitespace,
/// and none starts with `_`, which begins rapyer's own reserved part (`_rapyer:`). Together
/// with the namespace rules this makes every key space prefix-free.
fn check_prefix(prefix: &str) -> Result<(), String> {
    let mut chars = prefix.chars();
    match chars.next() {
        None => return Err("the prefix must not be empty".into()),
        Some(c) if !c.is_alphanumeric() => {
            return Err(format!(
                "the prefix `{prefix}` must start with a letter or digit (`_` begins rapyer's reserved keys)"
            ));
        }
        Some(_) => {}
    }
    match chars.find(|&c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        Some(c) => Err(format!(
            "the prefix `{prefix}` holds {c:?}: a prefix is one key segment of letters, digits, \
             `_`, `-` and `.`, so that no model's keys fall inside another model's key space"
        )),
        None => Ok(()),
    }
}
