//! Code generation from a validated [`Model`].

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::model::Model;

pub(crate) fn expand(model: &Model) -> TokenStream {
    let ident = &model.ident;
    let stored = model.key.as_ref().map(|key| {
        let prefix = &model.prefix;
        let field = &key.ident;
        let ttl = match model.ttl {
            Some(secs) => quote! {
                ::rapyer::__private::Some(::rapyer::__private::Duration::from_secs(#secs))
            },
            None => quote! { ::rapyer::__private::None },
        };
        // Only models that opt in override the trait's default (false).
        let refresh = model.refresh_on_read.then(|| {
            quote! { const REFRESH_TTL_ON_READ: bool = true; }
        });
        // Spanned on the key's type, so an unsupported key type is reported there.
        let model_id = quote_spanned! {key.ty.span()=>
            ::rapyer::__private::ModelKey::to_key(&self.#field)
        };
        quote! {
            #[automatically_derived]
            impl ::rapyer::AtomicModel for #ident {
                const PREFIX: &'static str = #prefix;
                const TTL: ::rapyer::__private::Option<::rapyer::__private::Duration> = #ttl;
                #refresh

                fn model_id(&self) -> ::std::string::String {
                    #model_id
                }
            }
        }
    });
    quote! {
        const _: () = {
            #[automatically_derived]
            impl ::rapyer::Model for #ident {}

            #stored
        };
    }
}
