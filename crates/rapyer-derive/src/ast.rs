//! The derive's input as read: the struct, its fields, and what their `#[rapyer(...)]` and
//! `#[serde(...)]` attributes say, with nothing judged yet (that is [`crate::check`]'s job).

use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Generics, Ident, Visibility};

use crate::attr::{self, Errors};

/// A struct that derives `AtomicModel`, as written.
pub(crate) struct Input<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) vis: &'a Visibility,
    pub(crate) generics: &'a Generics,
    /// `#[rapyer(...)]` on the struct.
    pub(crate) attrs: attr::StructAttrs,
    /// What serde's struct attributes do to the stored form.
    pub(crate) serde: attr::SerdeStruct,
    /// The named fields, in declaration order.
    pub(crate) fields: Vec<Field<'a>>,
}

/// One named field, as written.
pub(crate) struct Field<'a> {
    pub(crate) original: &'a syn::Field,
    pub(crate) ident: Ident,
    /// The field's name without `r#`.
    pub(crate) bare: String,
    /// `#[rapyer(...)]` on the field.
    pub(crate) attrs: attr::FieldAttrs,
    /// What serde's field attributes do to the stored form.
    pub(crate) serde: attr::SerdeField,
}

impl<'a> Input<'a> {
    /// Reads a struct with named fields; anything else is an error at once, as there is
    /// nothing more to check. Malformed attributes are pushed to `errors`.
    pub(crate) fn from_ast(input: &'a DeriveInput, errors: &mut Errors) -> syn::Result<Input<'a>> {
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
        let attrs = attr::struct_attrs(&input.attrs, errors);
        let serde = attr::serde_struct(&input.attrs);
        let fields = named
            .named
            .iter()
            .filter_map(|field| {
                let ident = field.ident.clone()?;
                let name = ident.to_string();
                let bare = name.strip_prefix("r#").unwrap_or(&name).to_string();
                Some(Field {
                    original: field,
                    ident,
                    bare,
                    attrs: attr::field_attrs(&field.attrs, errors),
                    serde: attr::serde_field(&field.attrs),
                })
            })
            .collect();
        Ok(Input {
            ident: &input.ident,
            vis: &input.vis,
            generics: &input.generics,
            attrs,
            serde,
            fields,
        })
    }
}

impl Field<'_> {
    /// The span of the field's name, for errors about the field as a whole.
    pub(crate) fn name_span(&self) -> proc_macro2::Span {
        self.ident.span()
    }

    /// The span of the whole field.
    pub(crate) fn span(&self) -> proc_macro2::Span {
        self.original.span()
    }
}
