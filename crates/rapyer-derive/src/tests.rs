//! Expansion snapshots: the generated code for representative models, pretty-printed.

use quote::quote;

fn expand(input: proc_macro2::TokenStream) -> String {
    let out = crate::derive_atomic_model_inner(input);
    match syn::parse2::<syn::File>(out.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(_) => out.to_string(),
    }
}

#[test]
fn stored_model_with_prefix_and_ttl() {
    insta::assert_snapshot!(expand(quote! {
        #[rapyer(prefix = "Session", ttl = 300)]
        struct Session {
            #[rapyer(key)]
            id: rapyer::Id,
            user: String,
        }
    }));
}

#[test]
fn nested_model_without_key() {
    insta::assert_snapshot!(expand(quote! {
        struct Address {
            city: String,
            zip: i64,
        }
    }));
}

#[test]
fn every_mistake_is_reported_at_once() {
    let out = expand(quote! {
        #[rapyer(prefx = "X")]
        struct Bad {
            #[rapyer(key)]
            a: String,
            #[rapyer(key)]
            b: String,
            save: i64,
        }
    });
    insta::assert_snapshot!(out);
}

#[test]
fn serde_skip_and_with_fields() {
    insta::assert_snapshot!(expand(quote! {
        #[serde(rename_all = "camelCase")]
        struct Event {
            #[rapyer(key)]
            id: String,
            user_name: String,
            #[serde(skip)]
            cache: Vec<String>,
            #[serde(with = "chrono::serde::ts_seconds")]
            created: chrono::DateTime<chrono::Utc>,
        }
    }));
}
