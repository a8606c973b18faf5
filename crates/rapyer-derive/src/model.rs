//! The validated description of a model: what the attributes mean, checked as a whole.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, Type, Visibility};

use crate::attr::{self, Errors};

/// Names of model methods a field accessor must not shadow. Accessors are inherent methods,
/// which silently win over trait methods, so a field named `save` would hide `save`.
pub(crate) const RESERVED: &[&str] = &[
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
    /// `#[serde(with = …)]` and kin: the accessors exist only to refuse, at the call, with a
    /// message that says why and what to do.
    pub(crate) with: bool,
}

/// The field whose value is the model's id.
pub(crate) struct KeyField {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// The field's name in the document (serde's).
    pub(crate) json_name: String,
}

impl Model {
    pub(crate) fn from_input(input: &DeriveInput) -> syn::Result<Model> {
        let named = match &input.data {
            Data::Struct(s) => match &s.fields {
                Fields::Named(named) => named,
                Fields::Unnamed(_) | Fields::Unit => {
                    return Err(syn::Error::new(
                        input.ident.span(),
                        "#[derive(AtomicModel)] needs a struct with named fields: each field \
                         becomes a property of the stored JSON document",
                    ));
                }
            },
            Data::Enum(e) => {
                return Err(syn::Error::new(
                    e.enum_token.span,
                    "#[derive(AtomicModel)] works on structs with named fields, not enums; \
                     store an enum as a field of a model struct",
                ));
            }
            Data::Union(u) => {
                return Err(syn::Error::new(
                    u.union_token.span,
                    "#[derive(AtomicModel)] works on structs with named fields, not unions",
                ));
            }
        };

        let mut errors = Errors::default();
        if !input.generics.params.is_empty() {
            errors.push(syn::Error::new(
                input.generics.span(),
                "a model cannot be generic: its key prefix and JSON layout must be fixed; \
                 define one struct per stored type",
            ));
        }

        let attrs = attr::struct_attrs(&input.attrs, &mut errors);
        let serde_struct = attr::serde_struct(&input.attrs);
        if let Some((word, span)) = &serde_struct.not_an_object {
            errors.push(syn::Error::new(
                *span,
                format!(
                    "#[serde({word})] stores this struct as something other than an object of \
                     its fields, which rapyer's handles and paths address one by one; store the \
                     value as a #[rapyer(value)] field of a model instead"
                ),
            ));
        }
        let mut local_only = Vec::new();
        let mut key: Option<KeyField> = None;
        let mut fields = Vec::new();
        let mut id_tag = false;
        for field in &named.named {
            let Some(ident) = field.ident.clone() else {
                continue;
            };
            let field_attrs = attr::field_attrs(&field.attrs, &mut errors);
            let name = ident.to_string();
            let bare = name.strip_prefix("r#").unwrap_or(&name);
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
                    id_tag = true;
                }
            }
            if let Some(span) = field_attrs.key {
                if field_attrs.index.is_some() {
                    errors.push(syn::Error::new(
                        span,
                        "the key field is not indexed: find a model by its id with get",
                    ));
                }
                check_key_field(field, span, key.as_ref(), &mut errors);
                if key.is_none() {
                    let serde = attr::serde_field(&field.attrs);
                    let json_name = json_name(&serde, &serde_struct, bare, field, &mut errors);
                    key = Some(KeyField {
                        ident,
                        ty: field.ty.clone(),
                        json_name,
                    });
                }
                continue;
            }
            // Fields serde leaves out of the document, or spreads into the parent, have no
            // path of their own and so no handle.
            let serde = attr::serde_field(&field.attrs);
            if serde.skip.is_some() {
                local_only.push(ident.clone());
            }
            if serde.skip.is_some() || serde.flatten {
                if field_attrs.index.is_some() {
                    errors.push(syn::Error::new(
                        field.span(),
                        "a field serde skips or flattens has no place in the document, so it \
                         cannot be indexed",
                    ));
                }
                continue;
            }
            let json_name = json_name(&serde, &serde_struct, bare, field, &mut errors);
            if let Some((word, span)) = &serde.with {
                let what = [
                    field_attrs.index.is_some().then_some("indexed"),
                    field_attrs.value.map(|_| "a #[rapyer(value)] field"),
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
                Ok(segment) => fields.push(HandleField {
                    ident,
                    ty: field.ty.clone(),
                    vis: field.vis.clone(),
                    segment,
                    value: field_attrs.value.is_some(),
                    json_name,
                    index: field_attrs.index,
                    with: serde.with.is_some(),
                }),
                Err(why) => errors.push(syn::Error::new(field.span(), why)),
            }
        }

        // Two fields serde writes under one name would be one property of the document.
        let mut seen: Vec<&str> = key.iter().map(|k| k.json_name.as_str()).collect();
        for f in &fields {
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

        let prefix = match &attrs.prefix {
            Some(lit) => {
                let value = lit.value();
                if let Err(why) = check_prefix(&value) {
                    errors.push(syn::Error::new(lit.span(), why));
                }
                value
            }
            None => {
                let value = input.ident.to_string();
                if key.is_some()
                    && let Err(why) = check_prefix(&value)
                {
                    errors.push(syn::Error::new(
                        input.ident.span(),
                        format!("{why}; the struct's name is the default prefix, so give one with #[rapyer(prefix = \"…\")]"),
                    ));
                }
                value
            }
        };
        let ttl = match &attrs.ttl {
            Some(lit) => match lit.base10_parse::<u64>() {
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
            },
            None => None,
        };
        if let (Some(span), None) = (attrs.refresh_on_read, &attrs.ttl) {
            errors.push(syn::Error::new(
                span,
                "`refresh_on_read` re-arms the model's expiry on every read, and this model has \
                 none; add one, e.g. #[rapyer(ttl = 300, refresh_on_read)]",
            ));
        }
        if key.is_none() {
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
        let hash_tag = match (&attrs.hash_tag, id_tag) {
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
                if key.is_none() {
                    errors.push(syn::Error::new(
                        lit.span(),
                        "`hash_tag` applies to a stored model, and this struct has no key field",
                    ));
                }
                HashTagModel::Static(tag)
            }
            (None, true) => HashTagModel::Id,
            (None, false) => HashTagModel::None,
        };
        errors.finish()?;
        Ok(Model {
            hash_tag,
            ident: input.ident.clone(),
            vis: input.vis.clone(),
            fields,
            prefix,
            ttl,
            refresh_on_read: attrs.refresh_on_read.is_some(),
            key,
            local_only,
            deny_unknown_fields: serde_struct.deny_unknown_fields,
        })
    }
}

/// The field's name in the document: serde's serialize name. serde must read the field back
/// by that name too (its deserialize name or an alias), or no stored model could be read.
fn json_name(
    serde: &attr::SerdeField,
    rules: &attr::SerdeStruct,
    bare: &str,
    field: &syn::Field,
    errors: &mut Errors,
) -> String {
    let by_rule = |rule: &Option<String>| match rule {
        Some(rule) => apply_rename_rule(rule, bare),
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
        let span = field
            .ident
            .as_ref()
            .map_or_else(|| field.span(), |i| i.span());
        errors.push(syn::Error::new(
            span,
            format!(
                "serde writes this field as {written:?} and reads it as {read:?}, so no stored \
                 model could be read back; make the serialize and deserialize names agree, or \
                 add #[serde(alias = {written:?})]"
            ),
        ));
    }
    written
}

fn check_key_field(
    field: &syn::Field,
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
    if is_option(&field.ty) {
        errors.push(syn::Error::new(
            field.ty.span(),
            "the key field cannot be an Option: every stored model has an id (use rapyer::Id \
             with Default for generated ids)",
        ));
    }
    let serde = attr::serde_field(&field.attrs);
    if let Some(skip) = serde.skip {
        errors.push(syn::Error::new(
            skip,
            "the key field must be stored in the document; remove the serde skip",
        ));
    }
    if let Some((word, span)) = serde.with {
        errors.push(syn::Error::new(
            span,
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
    if name.is_empty()
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

/// serde's `rename_all` rules for struct fields, exactly as serde_derive applies them
/// (`internals/case.rs`, `apply_to_field`) to the field's name without `r#`: `lowercase` and
/// `snake_case` keep the name as it is, the others change ASCII letters only, and
/// `PascalCase`/`camelCase` drop every `_` and capitalise the letter after it. A rule serde
/// does not know is serde's error to report; here it changes nothing.
pub(crate) fn apply_rename_rule(rule: &str, field: &str) -> String {
    let pascal = || {
        let mut out = String::with_capacity(field.len());
        let mut capitalize = true;
        for c in field.chars() {
            if c == '_' {
                capitalize = true;
            } else if capitalize {
                out.push(c.to_ascii_uppercase());
                capitalize = false;
            } else {
                out.push(c);
            }
        }
        out
    };
    match rule {
        "UPPERCASE" | "SCREAMING_SNAKE_CASE" => field.to_ascii_uppercase(),
        "PascalCase" => pascal(),
        "camelCase" => {
            let p = pascal();
            let mut chars = p.chars();
            match chars.next() {
                Some(first) => std::iter::once(first.to_ascii_lowercase())
                    .chain(chars)
                    .collect(),
                None => p,
            }
        }
        "kebab-case" => field.replace('_', "-"),
        "SCREAMING-KEBAB-CASE" => field.to_ascii_uppercase().replace('_', "-"),
        // lowercase, snake_case, and rules serde itself rejects.
        _ => field.to_string(),
    }
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
