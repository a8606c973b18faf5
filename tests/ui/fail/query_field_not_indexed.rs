use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
struct User {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    age: i64,
    email: String,
}

fn main() {
    // Only indexed fields can be queried.
    let _ = User::fields().email.eq("a@b.c");
}
