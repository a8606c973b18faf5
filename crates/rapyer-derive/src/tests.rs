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

#[test]
fn indexed_fields_of_every_kind() {
    insta::assert_snapshot!(expand(quote! {
        struct Person {
            #[rapyer(key)]
            id: String,
            #[rapyer(index)]
            age: i64,
            #[rapyer(index(sortable))]
            score: f64,
            #[rapyer(index(case_insensitive))]
            city: String,
            #[rapyer(index(text))]
            bio: String,
            #[rapyer(index)]
            active: bool,
            #[rapyer(index)]
            tags: Vec<String>,
            #[rapyer(index)]
            joined: chrono::DateTime<chrono::Utc>,
            #[rapyer(index)]
            address: Address,
            notes: String,
        }
    }));
}

#[test]
fn hash_tag_from_the_id() {
    insta::assert_snapshot!(expand(quote! {
        struct Order {
            #[rapyer(key, hash_tag)]
            id: String,
            total: i64,
        }
    }));
}

#[test]
fn fixed_hash_tag_with_ttl_refreshed_on_read() {
    insta::assert_snapshot!(expand(quote! {
        #[rapyer(hash_tag = "bank", ttl = 60, refresh_on_read)]
        struct Account {
            #[rapyer(key)]
            id: u64,
        }
    }));
}

#[test]
fn value_fields() {
    insta::assert_snapshot!(expand(quote! {
        struct Shipment {
            #[rapyer(key)]
            id: rapyer::Id,
            #[rapyer(value)]
            route: Route,
            #[rapyer(value, index)]
            status: Status,
        }
    }));
}

#[test]
fn rename_all_and_rename_give_the_stored_names() {
    insta::assert_snapshot!(expand(quote! {
        #[serde(rename_all = "kebab-case")]
        struct Profile {
            #[rapyer(key)]
            user_id: String,
            #[rapyer(index)]
            first_name: String,
            #[serde(rename = "Last")]
            last_name: String,
            #[serde(rename(serialize = "mail", deserialize = "mail"))]
            e_mail: String,
        }
    }));
}

#[test]
fn bloom_fields_get_a_lookup_and_every_misplaced_bloom_is_refused() {
    insta::assert_snapshot!(expand(quote! {
        #[serde(rename_all = "camelCase")]
        struct Member {
            #[rapyer(key)]
            id: String,
            #[rapyer(bloom)]
            email_address: String,
            // Not indexed too: the snapshot then holds no search code, which changes apart.
            #[rapyer(bloom)]
            r#type: i64,
        }
    }));
    let refused = expand(quote! {
        struct Wrong {
            #[rapyer(key, bloom)]
            id: String,
            #[serde(skip)]
            #[rapyer(bloom)]
            cache: String,
            #[rapyer(bloom, bloom)]
            twice: String,
        }
    });
    for expected in [
        "the key field needs no Bloom filter",
        "has no place in the document, so it cannot have a Bloom filter",
        "duplicate rapyer attribute `bloom`",
    ] {
        assert!(refused.contains(expected), "{expected}: {refused}");
    }
    let keyless = expand(quote! {
        struct Nested {
            #[rapyer(bloom)]
            email: String,
        }
    });
    assert!(
        keyless.contains("`bloom` needs a stored model"),
        "{keyless}"
    );
}
