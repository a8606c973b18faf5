// Two fields that cannot be indexed as asked: exactly one error each, at the field.
use rapyer::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(AtomicModel, Serialize, Deserialize)]
struct User {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    prefs: HashMap<String, String>,
    #[rapyer(index(text))]
    age: i64,
}

fn main() {}
