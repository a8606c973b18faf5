//! Code generation from a validated [`Model`].

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::model::{HandleField, HashTagModel, Model};

pub(crate) fn expand(model: &Model) -> TokenStream {
    let ident = &model.ident;
    let stored = model.key.as_ref().map(|key| {
        let prefix = &model.prefix;
        let field = &key.ident;
        let ttl = match model.ttl {
            Some(secs) => quote! {
                ::rapyer::__private::v1::Some(::rapyer::__private::v1::Duration::from_secs(#secs))
            },
            None => quote! { ::rapyer::__private::v1::None },
        };
        // Only models that opt in override the trait's defaults (false, no tag).
        let refresh = model.refresh_on_read.then(|| {
            quote! { const REFRESH_TTL_ON_READ: bool = true; }
        });
        let hash_tag = match &model.hash_tag {
            HashTagModel::None => None,
            HashTagModel::Static(tag) => Some(quote! {
                const HASH_TAG: ::rapyer::__private::v1::HashTag = ::rapyer::__private::v1::HashTag::Static(#tag);
            }),
            HashTagModel::Id => Some(quote! {
                const HASH_TAG: ::rapyer::__private::v1::HashTag = ::rapyer::__private::v1::HashTag::Id;
            }),
        };
        let (bloom_fields, bloom_lookups) = bloom(model);
        let key_ty = &key.ty;
        let key_json = &key.json_name;
        // Located at the key's type, so an unsupported key type is reported there.
        let model_id = quote_spanned! {at_type(&key.ty)=>
            ::rapyer::__private::v1::ModelKey::to_key(&self.#field)
        };
        quote! {
            #[automatically_derived]
            impl ::rapyer::__private::v1::AtomicModel for #ident {
                const PREFIX: &'static str = #prefix;
                const TTL: ::rapyer::__private::v1::Option<::rapyer::__private::v1::Duration> = #ttl;
                #refresh
                #hash_tag
                #bloom_fields

                fn model_id(&self) -> ::std::string::String {
                    #model_id
                }

                fn id_member(
                    id: &str,
                ) -> ::std::result::Result<(&'static str, ::std::string::String), ::std::string::String> {
                    ::rapyer::__private::v1::id_member::<#key_ty>(#key_json, id)
                }
            }

            #bloom_lookups
        }
    });
    // A struct without a key gets the stored-model methods only to refuse them, with a
    // message saying to add the key.
    let keyless = model.key.is_none().then(|| {
        quote! {
            #[automatically_derived]
            impl ::rapyer::__private::v1::Keyless for #ident {}
        }
    });
    let (handle_type, handle_impls) = handles(model);
    let (fields_type, search_impls, search_checks) = search(model);
    let (ref_type, ref_impls) = server_refs(model);
    let (paths_type, paths_impls) = crate::partial::paths(model);
    // The types users name stay beside the model; every impl sits in one `const _` block,
    // which adds no name to the user's module.
    quote! {
        #handle_type

        #fields_type

        #ref_type

        #paths_type

        const _: () = {
            #[automatically_derived]
            impl ::rapyer::__private::v1::Model for #ident {}

            #stored

            #keyless

            #handle_impls

            #search_impls

            #ref_impls

            #paths_impls
        };

        #search_checks
    }
}

/// For a stored model with `#[rapyer(bloom)]` fields: the `BLOOM_FIELDS` item of its
/// `AtomicModel` impl, and one `maybe_exists_by_<field>` per such field. Nothing for the
/// others, which keep the trait's default (no field).
fn bloom(model: &Model) -> (Option<TokenStream>, Option<TokenStream>) {
    let fields: Vec<&HandleField> = model.fields.iter().filter(|f| f.bloom).collect();
    if fields.is_empty() {
        return (None, None);
    }
    let ident = &model.ident;
    let vis = &model.vis;
    let names = fields.iter().map(|f| &f.json_name);
    let lookups = fields.iter().map(|f| {
        let method = format_ident!(
            "maybe_exists_by_{}",
            f.ident.to_string().trim_start_matches("r#")
        );
        let ty = &f.ty;
        let json = &f.json_name;
        let doc = format!(
            "Whether a `{ident}` whose `{json}` is `value` was maybe saved (`false`: certainly \
             never), from the field's Bloom filter (`#[rapyer(bloom)]`): see \
             `rapyer::BloomFilter::of_field` for what keeps it."
        );
        quote! {
            #[doc = #doc]
            #vis async fn #method<__Q>(
                db: &::rapyer::__private::v1::Db,
                value: &__Q,
            ) -> ::rapyer::__private::v1::Result<bool>
            where
                #ty: ::std::borrow::Borrow<__Q>,
                __Q: ::rapyer::__private::v1::serde::Serialize + ?::std::marker::Sized,
            {
                ::rapyer::__private::v1::bloom_field_contains::<Self, __Q>(db, #json, value).await
            }
        }
    });
    (
        Some(quote! {
            const BLOOM_FIELDS: &'static [&'static str] = &[#(#names),*];
        }),
        Some(quote! {
            #[automatically_derived]
            impl #ident {
                #(#lookups)*
            }
        }),
    )
}

/// `<Name>Ref`: the server reference with one accessor per field, and the `Referable` impl
/// that makes a `Name` field (or a stored `Name`) reachable from ServerOps blocks.
fn server_refs(model: &Model) -> (TokenStream, TokenStream) {
    let ident = &model.ident;
    let patch = patch(model);
    let structures = structures(model);
    let vis = &model.vis;
    let name = format_ident!("{}Ref", ident);
    let doc = format!(
        "A server reference to a stored `{ident}` (or one nested in a stored model): one \
         accessor per field, for ServerOps blocks and models' atomic blocks."
    );
    let accessors = model.fields.iter().map(|f| {
        let (fvis, field, ty, json) = (&f.vis, &f.ident, &f.ty, &f.json_name);
        let indexed = f.index.is_some();
        let doc = format!("The server reference to `{field}`.");
        if f.with {
            return refused(f, quote! { &'__a self });
        }
        if f.value {
            return quote! {
                #[doc = #doc]
                #fvis fn #field(&self) -> ::rapyer::__private::v1::ServerRef<#ty, B> {
                    ::rapyer::__private::v1::value_ref(::rapyer::__private::v1::loc_field(&self.loc, #json, #indexed), ::std::clone::Clone::clone(&self.bind))
                }
            };
        }
        let ret = quote_spanned! {at_type(ty)=> <#ty as ::rapyer::__private::v1::Referable>::Ref<B> };
        let args = quote! {
            ::rapyer::__private::v1::loc_field(&self.loc, #json, #indexed),
            ::std::clone::Clone::clone(&self.bind)
        };
        let make = quote_spanned! {at_type(ty)=>
            <#ty as ::rapyer::__private::v1::Referable>::reference(#args)
        };
        quote! {
            #[doc = #doc]
            #fvis fn #field(&self) -> #ret {
                #make
            }
        }
    });
    let ty = quote! {
        #[doc = #doc]
        #[derive(Debug, Clone)]
        #vis struct #name<B: ::rapyer::__private::v1::Bind = ::rapyer::__private::v1::Free> {
            loc: ::rapyer::__private::v1::Loc,
            bind: B,
        }
    };
    let impls = quote! {
        #[automatically_derived]
        impl<B: ::rapyer::__private::v1::Bind> #name<B> {
            #(#accessors)*
        }

        #[automatically_derived]
        impl<'o> #name<::rapyer::__private::v1::Bound<'o>> {
            /// Replaces the whole value (in a model's atomic block).
            pub fn set(&self, value: #ident) -> ::rapyer::__private::v1::Out<()> {
                ::rapyer::__private::v1::set_bound(self, value)
            }
        }

        #[automatically_derived]
        impl<B: ::rapyer::__private::v1::Bind> ::rapyer::__private::v1::Ref for #name<B> {
            type Value = #ident;
            type Bind = B;
            fn loc(&self) -> &::rapyer::__private::v1::Loc {
                &self.loc
            }
            fn bind(&self) -> &B {
                &self.bind
            }
            fn want(&self) -> &'static str {
                "object"
            }
            fn encode(value: &#ident) -> ::rapyer::__private::v1::serde_json::Result<::std::string::String> {
                <#ident as ::rapyer::__private::v1::Referable>::to_json(value)
            }
        }

        #[automatically_derived]
        impl<B: ::rapyer::__private::v1::Bind> ::rapyer::__private::v1::Whole for #name<B> {}

        #[automatically_derived]
        impl ::rapyer::__private::v1::Referable for #ident {
            type Ref<B: ::rapyer::__private::v1::Bind> = #name<B>;
            const WANT: &'static str = "object";
            fn reference<B: ::rapyer::__private::v1::Bind>(loc: ::rapyer::__private::v1::Loc, bind: B) -> #name<B> {
                #name { loc, bind }
            }
            fn to_json(&self) -> ::rapyer::__private::v1::serde_json::Result<::std::string::String> {
                ::rapyer::__private::v1::model_json(self)
            }
            #patch
            #structures
        }
    };
    (ty, impls)
}

/// `Referable::structures`: the special structures (sets, priority queues) among the fields
/// and inside the nested models, which live in companion keys beside the document.
fn structures(model: &Model) -> TokenStream {
    let walks = model
        .fields
        .iter()
        .filter(|f| !f.with && !f.value)
        .map(|f| {
            let (ty, json) = (&f.ty, &f.json_name);
            let walk = quote_spanned! {at_type(ty)=>
                <#ty as ::rapyer::__private::v1::Referable>::structures(names, out);
            };
            quote! {
                names.push(#json);
                #walk
                names.pop();
            }
        });
    quote! {
        #[allow(unused_variables)] // a model without fields has no structure to list
        fn structures(
            names: &mut ::std::vec::Vec<&'static str>,
            out: &mut ::std::vec::Vec<::rapyer::__private::v1::Structure>,
        ) {
            #(#walks)*
        }
    }
}

/// `Referable::patch`: writes a part of the stored document (found by its field names) into
/// the local value, leaving every other field, and the fields serde skips, as they are.
fn patch(model: &Model) -> TokenStream {
    let local_only = &model.local_only;
    let arms = model.fields.iter().filter(|f| !f.with).map(|f| {
        let (field, ty, json) = (&f.ident, &f.ty, &f.json_name);
        let write = if f.value {
            quote! { ::rapyer::__private::v1::patch_value(&mut self.#field, rest, value) }
        } else {
            let args = quote! { &mut self.#field, rest, value };
            quote_spanned! {at_type(ty)=> <#ty as ::rapyer::__private::v1::Referable>::patch(#args) }
        };
        quote! {
            if *name == #json {
                return #write;
            }
        }
    });
    let nested = model.fields.iter().filter(|f| !f.with && !f.value).map(|f| {
        let (field, ty) = (&f.ident, &f.ty);
        let args = quote! { &mut self.#field, &mut old.#field };
        quote_spanned! {at_type(ty)=> <#ty as ::rapyer::__private::v1::Referable>::keep_local(#args); }
    });
    quote! {
        fn patch(
            &mut self,
            names: &[&str],
            value: &str,
        ) -> ::rapyer::__private::v1::serde_json::Result<()> {
            let ::rapyer::__private::v1::Some((name, rest)) = names.split_first() else {
                let mut whole: Self = ::rapyer::__private::v1::serde_json::from_str(value)?;
                ::rapyer::__private::v1::Referable::keep_local(&mut whole, self);
                *self = whole;
                return ::std::result::Result::Ok(());
            };
            #(#arms)*
            ::std::result::Result::Err(::rapyer::__private::v1::no_field(name))
        }

        #[allow(unused_variables)] // a model without skipped or nested fields keeps nothing
        fn keep_local(&mut self, old: &mut Self) {
            #(::std::mem::swap(&mut self.#local_only, &mut old.#local_only);)*
            #(#nested)*
        }
    }
}

/// The accessor of a field serde (de)serializes with functions of its own: it compiles, and
/// a call to it does not, with a message that says why and what to do instead.
fn refused(f: &HandleField, receiver: TokenStream) -> TokenStream {
    let (vis, field) = (&f.vis, &f.ident);
    let doc = format!(
        "`{field}` is (de)serialized by functions of its own (`#[serde(with = …)]`), so it has \
         no handle: calling this is a compile error. Wrap its type in a newtype whose \
         `Serialize`/`Deserialize` do the conversion and mark the field `#[rapyer(value)]`."
    );
    quote! {
        #[doc = #doc]
        #vis fn #field<'__a>(#receiver) -> ::rapyer::__private::v1::NoHandle
        where
            &'__a ::rapyer::__private::v1::NoHandle: ::rapyer::__private::v1::SerdeWithField,
        {
            ::rapyer::__private::v1::NoHandle
        }
    }
}

/// The search side: `<Name>Fields` (one typed marker per indexed field), the `Indexable`
/// impl that gives the schema (nested models included), and `fields()` on stored models.
fn search(model: &Model) -> (TokenStream, TokenStream, TokenStream) {
    let ident = &model.ident;
    let vis = &model.vis;
    let fields_ident = format_ident!("{}Fields", ident);
    let indexed: Vec<&HandleField> = model.fields.iter().filter(|f| f.index.is_some()).collect();
    let doc = format!(
        "The fields of `{ident}` for building queries (`{ident}::fields()`): each indexed \
         field has its conditions; a condition on any other is a compile error saying to \
         index it."
    );
    let members = indexed.iter().map(|f| {
        let (vis, field, ty) = (&f.vis, &f.ident, &f.ty);
        let member_doc = format!("Conditions on the indexed field `{}`.", f.json_name);
        let marker = if f.index.is_some_and(|i| i.text) {
            quote! { ::rapyer::__private::v1::TextField }
        } else {
            // The type located as one place, as in every other use of the type below: a type
            // that is not indexable is then the same error at the same place each time, which
            // the compiler reports once.
            let ty = located(ty, at_type(ty));
            quote_spanned! {at_type(&f.ty)=> ::rapyer::__private::v1::Indexed<#ty> }
        };
        quote! {
            #[doc = #member_doc]
            #vis #field: #marker
        }
    });
    // The other fields are there to refuse queries with a message saying to index them.
    let unindexed: Vec<&HandleField> = model.fields.iter().filter(|f| f.index.is_none()).collect();
    let unindexed_members = unindexed.iter().map(|f| {
        let (vis, field) = (&f.vis, &f.ident);
        let member_doc = format!(
            "`{}` is not indexed: a condition on it is a compile error saying to add \
             `#[rapyer(index)]`.",
            f.json_name
        );
        quote! {
            #[doc = #member_doc]
            #vis #field: ::rapyer::__private::v1::NotIndexed
        }
    });
    let unindexed_makers = unindexed.iter().map(|f| {
        let field = &f.ident;
        quote! { #field: ::rapyer::__private::v1::NotIndexed }
    });
    let makers = indexed.iter().map(|f| {
        let (field, ty, json) = (&f.ident, &f.ty, &f.json_name);
        let name = quote! { ::rapyer::__private::v1::join(&name, #json) };
        if f.index.is_some_and(|i| i.text) {
            quote! { #field: ::rapyer::__private::v1::text_field(#name) }
        } else {
            let lty = located(ty, at_type(ty));
            quote_spanned! {at_type(ty)=> #field: ::rapyer::__private::v1::indexed::<#lty>(#name) }
        }
    });
    let schemas = indexed.iter().map(|f| {
        let (ty, json, segment) = (&f.ty, &f.json_name, &f.segment);
        let index = f.index.unwrap_or_default();
        let (text, sortable, ci) = (index.text, index.sortable, index.case_insensitive);
        // Full-text indexing needs text: a non-String type is a type error here.
        let text_check = text.then(|| {
            quote_spanned! {at_type(ty)=>
                let _: fn(&#ty) -> &::std::string::String = |v| v;
            }
        });
        let args = quote! {
            &::std::format!("{}{}", path, #segment),
            &::rapyer::__private::v1::join(name, #json),
            ::rapyer::__private::v1::index_options(#text, #sortable, #ci),
            out
        };
        let lty = located(ty, at_type(ty));
        let schema = quote_spanned! {at_type(ty)=>
            <#lty as ::rapyer::__private::v1::Indexable>::schema(#args);
        };
        quote! {
            #text_check
            #schema
        }
    });
    let instants = indexed
        .iter()
        .filter(|f| !f.index.is_some_and(|i| i.text))
        .map(|f| {
            let (ty, json) = (&f.ty, &f.json_name);
            let args = quote! { prefix, out };
            let lty = located(ty, at_type(ty));
            let instants = quote_spanned! {at_type(ty)=>
                <#lty as ::rapyer::__private::v1::Indexable>::instants(#args);
            };
            quote! {
                prefix.push(::std::string::String::from(#json));
                #instants
                prefix.pop();
            }
        });
    // An indexed date-time stores its search instant as the property `<name>__ts` beside it
    // (rapyer::query::INSTANT_SUFFIX): serde's deny_unknown_fields would refuse it on every
    // read, and a field of that name would be overwritten by it.
    let strict = indexed
        .iter()
        .filter(|f| !f.value && !f.index.is_some_and(|i| i.text))
        .filter_map(|f| {
            let (ty, json) = (&f.ty, &f.json_name);
            let shadow = format!("{json}__ts");
            let why = if model.fields.iter().any(|g| g.json_name == shadow) {
                format!("the field `{shadow}` would be overwritten by it; rename one of them")
            } else if model.deny_unknown_fields {
                "#[serde(deny_unknown_fields)] would refuse to read it back; drop \
                 deny_unknown_fields or the index"
                    .to_string()
            } else {
                return None;
            };
            let message = format!(
                "`{json}` is an indexed date-time, which stores its search instant as the \
                 property `{shadow}` beside it, and {why}"
            );
            Some(quote_spanned! {at_type(ty)=>
                const _: () = ::std::assert!(
                    !<#ty as ::rapyer::__private::v1::Referable>::SHADOWED,
                    #message
                );
            })
        });
    // The reference fields declared with on_delete, registered by `db.init::<Self>()`.
    let declared: Vec<TokenStream> = indexed
        .iter()
        .filter(|_| model.key.is_some())
        .filter_map(|f| {
            let (ty, json, segment) = (&f.ty, &f.json_name, &f.segment);
            let policy = f.on_delete.as_ref()?;
            let nullable = (policy == "SetNull").then(|| {
                quote_spanned! {at_type(ty)=>
                    ::rapyer::__private::v1::nullable::<#ty>();
                }
            });
            Some(quote_spanned! {at_type(ty)=>
                #nullable
                ::rapyer::__private::v1::declare::<#ident, #ty>(
                    out,
                    #segment,
                    #json,
                    ::rapyer::__private::v1::OnDelete::#policy,
                );
            })
        })
        .collect();
    // Only a model declaring some: the trait's default declares none.
    let referrers = (!declared.is_empty()).then(|| {
        quote! {
            fn referrers(out: &mut ::std::vec::Vec<::rapyer::__private::v1::Referrer>) {
                #(#declared)*
            }
        }
    });
    let root = model.key.as_ref().map(|_| {
        quote! {
            #[automatically_derived]
            impl #ident {
                /// The indexed fields, for building queries: `Self::find(&db, f.age.gt(17))`.
                #vis fn fields() -> #fields_ident {
                    <#ident as ::rapyer::__private::v1::Indexable>::field(::std::string::String::new())
                }
            }
        }
    });
    let ty = quote! {
        #[doc = #doc]
        // A model's queries need not use every indexed field's marker.
        #[allow(dead_code)]
        #vis struct #fields_ident {
            #(#members,)*
            #(#unindexed_members,)*
        }
    };
    let impls = quote! {
        #[automatically_derived]
        impl ::rapyer::__private::v1::Indexable for #ident {
            type Field = #fields_ident;

            #[allow(unused_variables)] // a model without indexed fields ignores its name
            fn field(name: ::std::string::String) -> #fields_ident {
                #fields_ident { #(#makers,)* #(#unindexed_makers,)* }
            }

            #[allow(unused_variables)] // a model without indexed fields ignores where it is
            fn schema(
                path: &str,
                name: &str,
                options: ::rapyer::__private::v1::IndexOptions,
                out: &mut ::std::vec::Vec<::rapyer::__private::v1::SchemaField>,
            ) {
                #(#schemas)*
            }

            #referrers

            #[allow(unused_variables)] // a model without indexed date-times has none to list
            fn instants(
                prefix: &mut ::std::vec::Vec<::std::string::String>,
                out: &mut ::std::vec::Vec<::std::vec::Vec<::std::string::String>>,
            ) {
                #(#instants)*
            }
        }

        #root
    };
    (ty, impls, quote! { #(#strict)* })
}

/// The field accessors: the model's own (for a stored model), its handle type for when it is
/// nested in another model, and its `FieldType` impl.
fn handles(model: &Model) -> (TokenStream, TokenStream) {
    let ident = &model.ident;
    let vis = &model.vis;
    let handle = format_ident!("{}Handle", ident);
    let doc = format!(
        "The handle on a `{ident}` nested in a stored model: one accessor per field, plus \
         `load` and `set` for the whole value. Returned by the parent's accessor."
    );
    let nested = model.fields.iter().map(|f| {
        if f.with {
            return refused(f, quote! { &'__a mut self });
        }
        let accessor = accessor(f);
        let field = &f.ident;
        let segment = &f.segment;
        let make = handle_expr(f, quote! { &mut self.value.#field }, quote! { at });
        let indexed = f.index.is_some();
        quote! {
            #accessor {
                let at = ::rapyer::__private::v1::at_field(&self.at, #segment, #indexed);
                #make
            }
        }
    });
    let root = model.key.as_ref().map(|_| {
        let accessors = model.fields.iter().map(|f| {
            if f.with {
                return refused(f, quote! { &'__a mut self });
            }
            let accessor = accessor(f);
            let field = &f.ident;
            let segment = &f.segment;
            let make = handle_expr(f, quote! { &mut self.#field }, quote! { at });
            let indexed = f.index.is_some();
            quote! {
                #accessor {
                    let at = ::rapyer::__private::v1::at_root_field(&*self, #segment, #indexed);
                    #make
                }
            }
        });
        quote! {
            #[automatically_derived]
            impl #ident {
                #(#accessors)*
            }
        }
    });
    let ty = quote! {
        #[doc = #doc]
        #vis struct #handle<'a> {
            value: &'a mut #ident,
            at: ::rapyer::__private::v1::At,
        }
    };
    let impls = quote! {
        #[automatically_derived]
        impl<'a> #handle<'a> {
            #(#nested)*

            /// Reads the whole value from the server into the local copy, and returns that;
            /// fields serde skips keep their local value.
            pub async fn load(&mut self, db: &::rapyer::__private::v1::Db) -> ::rapyer::__private::v1::Result<&#ident> {
                ::rapyer::__private::v1::load_model(&mut *self.value, &self.at, db).await?;
                ::std::result::Result::Ok(&*self.value)
            }

            /// Replaces the whole value on the server; the local copy takes the stored value,
            /// and fields serde skips keep their local value.
            pub async fn set(&mut self, db: &::rapyer::__private::v1::Db, value: #ident) -> ::rapyer::__private::v1::Result<()> {
                ::rapyer::__private::v1::set_model(&mut *self.value, &self.at, db, value).await
            }
        }

        #[automatically_derived]
        impl ::rapyer::__private::v1::FieldType for #ident {
            type Handle<'a> = #handle<'a>;
            fn handle(value: &mut Self, at: ::rapyer::__private::v1::At) -> #handle<'_> {
                #handle { value, at }
            }
        }

        #root
    };
    (ty, impls)
}

/// `pub fn city(&mut self) -> <handle type>`, with the field's visibility and docs.
fn accessor(f: &HandleField) -> TokenStream {
    let vis = &f.vis;
    let field = &f.ident;
    let doc = format!("The handle on `{field}`: atomic operations on the stored field.");
    let ret = handle_type(f);
    quote! {
        #[doc = #doc]
        #vis fn #field(&mut self) -> #ret
    }
}

/// The type an accessor returns: the type's `FieldType` handle, or `RedisValue` for a
/// `#[rapyer(value)]` field.
fn handle_type(f: &HandleField) -> TokenStream {
    let ty = &f.ty;
    if f.value {
        return quote! { ::rapyer::__private::v1::RedisValue<'_, #ty> };
    }
    // Spanned on the type, so a type without a handle is reported at the field.
    quote_spanned! {at_type(ty)=> <#ty as ::rapyer::__private::v1::FieldType>::Handle<'_> }
}

/// The expression building a field's handle on `value` at `at`.
fn handle_expr(f: &HandleField, value: TokenStream, at: TokenStream) -> TokenStream {
    let ty = &f.ty;
    if f.value {
        return quote! { ::rapyer::__private::v1::value_handle::<#ty>(#value, #at) };
    }
    quote_spanned! {at_type(ty)=> <#ty as ::rapyer::__private::v1::FieldType>::handle(#value, #at) }
}

/// A span located at a field's type, for errors about the type, that resolves names as the
/// derive's own tokens do: a type's own span can come from a `macro_rules!` caller, and local
/// names (`self`, parameters) spanned with it would not resolve there (hygiene).
fn at_type(ty: &syn::Type) -> proc_macro2::Span {
    proc_macro2::Span::call_site().located_at(ty.span())
}

/// The tokens of `ty`, each spanned at `at`, so that an error about the whole type is the
/// same error at the same place as the errors about its uses (reported once). Names in a
/// type resolve at the derive's call site as they do in the user's tokens; a `$crate` from
/// a `macro_rules!` caller keeps its own span, which it resolves by.
fn located(ty: &syn::Type, at: proc_macro2::Span) -> TokenStream {
    fn relocate(tokens: TokenStream, at: proc_macro2::Span) -> TokenStream {
        tokens
            .into_iter()
            .map(|mut tree| {
                match &tree {
                    proc_macro2::TokenTree::Group(group) => {
                        let mut inner = proc_macro2::Group::new(
                            group.delimiter(),
                            relocate(group.stream(), at),
                        );
                        inner.set_span(at);
                        tree = proc_macro2::TokenTree::Group(inner);
                    }
                    proc_macro2::TokenTree::Ident(ident) if ident == "$crate" => {}
                    _ => tree.set_span(at),
                }
                tree
            })
            .collect()
    }
    relocate(quote::ToTokens::to_token_stream(ty), at)
}
