//! Parsing of `#[rapyer(...)]` attributes into plain values, collecting every error.

use syn::spanned::Spanned;
use syn::{Attribute, LitInt, LitStr};

/// Attribute names, so messages and parsing use the same words.
pub(crate) const PREFIX: &str = "prefix";
pub(crate) const TTL: &str = "ttl";
pub(crate) const KEY: &str = "key";
pub(crate) const REFRESH_ON_READ: &str = "refresh_on_read";

/// Valid struct attributes, listed in "unknown attribute" errors.
const STRUCT_ATTRS: &[&str] = &[PREFIX, TTL, REFRESH_ON_READ];
/// Valid field attributes, listed in "unknown attribute" errors.
const FIELD_ATTRS: &[&str] = &[KEY];

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
}

/// `#[rapyer(...)]` on a field.
#[derive(Default)]
pub(crate) struct FieldAttrs {
    /// The span of the `key` word, when present.
    pub(crate) key: Option<proc_macro2::Span>,
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

/// Whether a field carries a serde attribute that keeps it out of the stored document.
pub(crate) fn serde_skips(attrs: &[Attribute]) -> Option<proc_macro2::Span> {
    let mut found = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        // Other serde options are serde's business; a parse failure here is not ours to report.
        let _ = attr.parse_nested_meta(|meta| {
            if ["skip", "skip_serializing", "skip_deserializing"]
                .iter()
                .any(|name| meta.path.is_ident(name))
            {
                found = Some(meta.path.span());
            }
            if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            } else if meta.input.peek(syn::token::Paren) {
                let _content;
                syn::parenthesized!(_content in meta.input);
            }
            Ok(())
        });
    }
    found
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
