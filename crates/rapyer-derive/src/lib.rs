//! `#[derive(AtomicModel)]` for rapyer. Use it through `rapyer::AtomicModel`; this crate is
//! an implementation detail of rapyer.
//!
//! The macro reads top-down, as serde_derive's `internals::{ast, check}` do: `attr` parses
//! `#[rapyer(...)]` and the serde attributes rapyer follows, `ast` reads the struct with
//! them, `check` applies the rules to the whole and builds the validated `model`, and
//! `expand` writes the code.
//! Every mistake becomes a compile error with a span on the culprit; the macro never panics.

use proc_macro::TokenStream;

mod ast;
mod attr;
mod case;
mod check;
mod expand;
mod model;
mod partial;

/// Derives `rapyer::Model` and, for a struct with a `#[rapyer(key)]` field,
/// `rapyer::AtomicModel`. See rapyer's documentation for the attributes.
#[proc_macro_derive(AtomicModel, attributes(rapyer))]
pub fn derive_atomic_model(input: TokenStream) -> TokenStream {
    derive_atomic_model_inner(input.into()).into()
}

/// The derive on `proc_macro2` tokens, so unit tests can run it outside a compiler.
fn derive_atomic_model_inner(input: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let parsed = match syn::parse2::<syn::DeriveInput>(input) {
        Ok(parsed) => parsed,
        Err(e) => return e.into_compile_error(),
    };
    match model::Model::from_input(&parsed) {
        Ok(model) => expand::expand(&model),
        Err(e) => e.into_compile_error(),
    }
}

#[cfg(test)]
mod tests;
