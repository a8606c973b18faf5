//! Parsing of `#[rapyer(...)]` attributes into plain values, collecting every error.

use syn::spanned::Spanned;
use syn::{Attribute, LitInt, LitStr};

/// Attribute names, so messages and parsing use the same words.
pub(crate) const PREFIX: &str = "prefix";
pub(crate) const TTL: &str = "ttl";
pub(crate) const KEY: &str = "key";
pub(crate) const REFRESH_ON_READ: &str = "refresh_on_read";
pub(crate) const VALUE: &str = "value";
pub(crate) const INDEX: &str = "index";
pub(crate) const HASH_TAG: &str = "hash_tag";
pub(crate) const BLOOM: &str = "bloom";
pub(crate) const ON_DELETE: &str = "on_delete";
/// `index(...)` options.
const INDEX_OPTIONS: &[&str] = &["text", "sortable", "case_insensitive"];

/// Valid struct attributes, listed in "unknown attribute" errors.
const STRUCT_ATTRS: &[&str] = &[PREFIX, TTL, REFRESH_ON_READ, HASH_TAG];
/// Valid field attributes, listed in "unknown attribute" errors.
const FIELD_ATTRS: &[&str] = &[KEY, VALUE, INDEX, HASH_TAG, BLOOM, ON_DELETE];

/// Collects errors so that one compile reports every mistake, not just the first.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// `#[rapyer(...)]` on the struct.
#[derive(Default)]
pub(crate) struct StructAttrs {
    pub(crate) prefix: Option<LitStr>,
    pub(crate) ttl: Option<LitInt>,
    /// The span of the `refresh_on_read` word, when present.
    pub(crate) refresh_on_read: Option<proc_macro2::Span>,
    /// `hash_tag = "…"`: a literal hash tag in every key.
    pub(crate) hash_tag: Option<LitStr>,
}

/// `#[rapyer(...)]` on a field.
#[derive(Default)]
pub(crate) struct FieldAttrs {
    /// The span of the `key` word, when present.
    pub(crate) key: Option<proc_macro2::Span>,
    /// The span of the `value` word: the field gets a `RedisValue` handle.
    pub(crate) value: Option<proc_macro2::Span>,
    /// `index` or `index(...)`: the field is in the search index.
    pub(crate) index: Option<IndexAttr>,
    /// `hash_tag` on the key field: the id is the keys' hash tag.
    pub(crate) hash_tag: Option<proc_macro2::Span>,
    /// The span of the `bloom` word: the field's values go into a Bloom filter index.
    pub(crate) bloom: Option<proc_macro2::Span>,
    /// `on_delete = "restrict" | "cascade" | "set_null"` on a reference field.
    pub(crate) on_delete: Option<LitStr>,
}

/// `#[rapyer(index(text, sortable, case_insensitive))]`.
#[derive(Default, Clone, Copy)]
pub(crate) struct IndexAttr {
    pub(crate) text: bool,
    pub(crate) sortable: bool,
    pub(crate) case_insensitive: bool,
}

pub(crate) fn struct_attrs(attrs: &[Attribute], errors: &mut Errors) -> StructAttrs {
    let mut out = StructAttrs::default();
    for attr in rapyer_attrs(attrs) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident(PREFIX) {
                let lit: LitStr = meta.value()?.parse()?;
                set_once(&mut out.prefix, lit, &meta, PREFIX)
            } else if meta.path.is_ident(TTL) {
                let lit: LitInt = meta.value()?.parse()?;
                set_once(&mut out.ttl, lit, &meta, TTL)
            } else if meta.path.is_ident(REFRESH_ON_READ) {
                set_once(
                    &mut out.refresh_on_read,
                    meta.path.span(),
                    &meta,
                    REFRESH_ON_READ,
                )
            } else if meta.path.is_ident(HASH_TAG) {
                let lit: LitStr = meta.value()?.parse()?;
                set_once(&mut out.hash_tag, lit, &meta, HASH_TAG)
            } else {
                Err(unknown(&meta, "struct", STRUCT_ATTRS))
            }
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    out
}

pub(crate) fn field_attrs(attrs: &[Attribute], errors: &mut Errors) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in rapyer_attrs(attrs) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident(KEY) {
                set_once(&mut out.key, meta.path.span(), &meta, KEY)
            } else if meta.path.is_ident(VALUE) {
                set_once(&mut out.value, meta.path.span(), &meta, VALUE)
            } else if meta.path.is_ident(HASH_TAG) {
                set_once(&mut out.hash_tag, meta.path.span(), &meta, HASH_TAG)
            } else if meta.path.is_ident(BLOOM) {
                set_once(&mut out.bloom, meta.path.span(), &meta, BLOOM)
            } else if meta.path.is_ident(ON_DELETE) {
                let lit: LitStr = meta.value()?.parse()?;
                set_once(&mut out.on_delete, lit, &meta, ON_DELETE)
            } else if meta.path.is_ident(INDEX) {
                let mut index = IndexAttr::default();
                if meta.input.peek(syn::token::Paren) {
                    meta.parse_nested_meta(|option| {
                        let flag = if option.path.is_ident("text") {
                            &mut index.text
                        } else if option.path.is_ident("sortable") {
                            &mut index.sortable
                        } else if option.path.is_ident("case_insensitive") {
                            &mut index.case_insensitive
                        } else {
                            return Err(unknown(&option, "index", INDEX_OPTIONS));
                        };
                        *flag = true;
                        Ok(())
                    })?;
                }
                set_once(&mut out.index, index, &meta, INDEX)
            } else {
                Err(unknown(&meta, "field", FIELD_ATTRS))
            }
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    out
}

/// What serde does with a field, as far as its place in the stored document goes.
#[derive(Default)]
pub(crate) struct SerdeField {
    /// `rename = "…"` (or the `serialize` name of `rename(…)`): the field's JSON name.
    pub(crate) rename: Option<String>,
    /// The name serde reads the field by, when `rename` gives one (`rename = "…"` or the
    /// `deserialize` name of `rename(…)`).
    pub(crate) rename_de: Option<String>,
    /// `alias = "…"`: more names serde reads the field by.
    pub(crate) aliases: Vec<String>,
    /// `skip_deserializing` (or `skip`): serde never reads the field.
    pub(crate) skip_de: bool,
    /// `skip`, `skip_serializing` or `skip_deserializing`: not (reliably) in the document.
    pub(crate) skip: Option<proc_macro2::Span>,
    /// `flatten`: its fields sit in the parent object, with no path of its own.
    pub(crate) flatten: bool,
    /// `with`, `serialize_with`, `deserialize_with` or `getter`: the stored form is not the
    /// type's own serde form, which every handle writes and reads. The span of the word.
    pub(crate) with: Option<(String, proc_macro2::Span)>,
}

/// Reads a field's `#[serde(...)]` attributes.
pub(crate) fn serde_field(attrs: &[Attribute]) -> SerdeField {
    let mut out = SerdeField::default();
    for_serde_meta(attrs, |meta| {
        if meta.path.is_ident("skip") || meta.path.is_ident("skip_deserializing") {
            out.skip_de = true;
        }
        if ["skip", "skip_serializing", "skip_deserializing"]
            .iter()
            .any(|name| meta.path.is_ident(name))
        {
            out.skip = Some(meta.path.span());
        } else if meta.path.is_ident("flatten") {
            out.flatten = true;
        } else if let Some(name) = ["with", "serialize_with", "deserialize_with", "getter"]
            .into_iter()
            .find(|name| meta.path.is_ident(name))
        {
            out.with = Some((name.to_string(), meta.path.span()));
        } else if meta.path.is_ident("alias") {
            let lit: LitStr = meta.value()?.parse()?;
            out.aliases.push(lit.value());
            return Ok(());
        } else if meta.path.is_ident("rename") {
            (out.rename, out.rename_de) = names(meta)?;
            return Ok(());
        }
        skip_value(meta)
    });
    out
}

/// What serde does with the struct as a whole, as far as the stored document goes.
#[derive(Default)]
pub(crate) struct SerdeStruct {
    /// `rename_all = "…"` (or the `serialize` rule of `rename_all(…)`).
    pub(crate) rename_all: Option<String>,
    /// The rule serde reads names by (`rename_all = "…"` or the `deserialize` rule).
    pub(crate) rename_all_de: Option<String>,
    /// `transparent`, `into`, `from`, `try_from` or `remote`: the document is not an object
    /// of the struct's fields. The word and its span.
    pub(crate) not_an_object: Option<(String, proc_macro2::Span)>,
    /// `deny_unknown_fields`: the document may hold nothing but the fields.
    pub(crate) deny_unknown_fields: bool,
}

/// Reads the struct's `#[serde(...)]` attributes.
pub(crate) fn serde_struct(attrs: &[Attribute]) -> SerdeStruct {
    let mut out = SerdeStruct::default();
    for_serde_meta(attrs, |meta| {
        if meta.path.is_ident("rename_all") {
            (out.rename_all, out.rename_all_de) = names(meta)?;
            return Ok(());
        }
        if meta.path.is_ident("deny_unknown_fields") {
            out.deny_unknown_fields = true;
        }
        if let Some(name) = ["transparent", "into", "from", "try_from", "remote"]
            .into_iter()
            .find(|name| meta.path.is_ident(name))
        {
            out.not_an_object = Some((name.to_string(), meta.path.span()));
        }
        skip_value(meta)
    });
    out
}

/// Calls `f` on each item of every `#[serde(...)]`. Other serde options are serde's
/// business: a parse failure here is not ours to report.
fn for_serde_meta(
    attrs: &[Attribute],
    mut f: impl FnMut(&syn::meta::ParseNestedMeta<'_>) -> syn::Result<()>,
) {
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let _ = attr.parse_nested_meta(|meta| f(&meta));
    }
}

/// `name = "x"` or `name(serialize = "x", deserialize = "y")`: the serialize and the
/// deserialize side.
fn names(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<(Option<String>, Option<String>)> {
    if meta.input.peek(syn::Token![=]) {
        let lit: LitStr = meta.value()?.parse()?;
        return Ok((Some(lit.value()), Some(lit.value())));
    }
    let (mut ser, mut de) = (None, None);
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("serialize") {
            let lit: LitStr = inner.value()?.parse()?;
            ser = Some(lit.value());
        } else if inner.path.is_ident("deserialize") {
            let lit: LitStr = inner.value()?.parse()?;
            de = Some(lit.value());
        } else {
            let _: syn::Expr = inner.value()?.parse()?;
        }
        Ok(())
    })?;
    Ok((ser, de))
}

/// Consumes an item's value (`= expr` or `(…)`) so parsing can go on to the next item.
fn skip_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _content;
        syn::parenthesized!(_content in meta.input);
    }
    Ok(())
}

fn rapyer_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("rapyer"))
}

fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    meta: &syn::meta::ParseNestedMeta<'_>,
    name: &str,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(meta.error(format!("duplicate rapyer attribute `{name}`")));
    }
    *slot = Some(value);
    Ok(())
}

fn unknown(meta: &syn::meta::ParseNestedMeta<'_>, place: &str, valid: &[&str]) -> syn::Error {
    let name = meta
        .path
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_else(|| "?".into());
    meta.error(format!(
        "unknown rapyer {place} attribute `{name}`; valid {place} attributes: {}",
        valid.join(", ")
    ))
}
