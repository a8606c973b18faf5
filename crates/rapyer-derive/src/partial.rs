//! Code generation for partial reads: `<Name>Paths`, one `Field` per field of the model, and
//! the `Pickable` impl that builds it at a place in a document.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::model::Model;

/// `<Name>Paths` and its `Pickable` impl. Fields serde encodes `with` functions of their
/// own have no member: their stored form is not their type's.
pub(crate) fn paths(model: &Model) -> (TokenStream, TokenStream) {
    let ident = &model.ident;
    let vis = &model.vis;
    let name = format_ident!("{}Paths", ident);
    let doc = format!(
        "The fields of `{ident}` for partial reads (`get_fields`, `all_fields`): one `Field` \
         per field; a nested model's own through `.fields()`."
    );
    let fields: Vec<_> = model.fields.iter().filter(|f| !f.with).collect();
    let members = fields.iter().map(|f| {
        let (fvis, field, ty) = (&f.vis, &f.ident, &f.ty);
        let doc = format!("The stored field `{}`.", f.json_name);
        quote! {
            #[doc = #doc]
            #fvis #field: ::rapyer::__private::v1::Field<#ty>
        }
    });
    let makers = fields.iter().map(|f| {
        let (field, json) = (&f.ident, &f.json_name);
        quote! { #field: ::rapyer::__private::v1::pick_field(at, #json) }
    });
    // The key field has no handle, but it is stored like any other: read it too.
    let (key_member, key_maker) = match &model.key {
        Some(key) => {
            let (field, ty, json) = (&key.ident, &key.ty, &key.json_name);
            let doc = format!("The stored key field `{json}`: the model's id.");
            (
                Some(quote! {
                    #[doc = #doc]
                    #vis #field: ::rapyer::__private::v1::Field<#ty>,
                }),
                Some(quote! { #field: ::rapyer::__private::v1::pick_field(at, #json), }),
            )
        }
        None => (None, None),
    };
    let ty = quote! {
        #[doc = #doc]
        // A read need not use every field.
        #[allow(dead_code)]
        #vis struct #name {
            #key_member
            #(#members,)*
        }
    };
    let impls = quote! {
        #[automatically_derived]
        impl ::rapyer::__private::v1::Pickable for #ident {
            type Paths = #name;

            #[allow(unused_variables)] // a model without fields has no member to place
            fn paths(at: &::rapyer::__private::v1::Field<Self>) -> #name {
                #name { #key_maker #(#makers,)* }
            }
        }
    };
    (ty, impls)
}
