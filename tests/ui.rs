//! Compile-time behaviour of `#[derive(AtomicModel)]` and `rapyer::script!`: what compiles,
//! and for each mistake the exact error a user sees (span and message), from `tests/ui/`.
//!
//! The expected messages are those of the default features (some name `chrono` types).
#![cfg(feature = "chrono")]

#[test]
fn derive_ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
