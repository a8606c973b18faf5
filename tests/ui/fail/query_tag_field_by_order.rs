use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
struct User {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    name: String,
    #[rapyer(index(text))]
    bio: String,
}

fn main() {
    let f = User::fields();
    // A TAG field matches whole values; it has no order.
    let _ = f.name.gt("m");
    // A full-text field matches words, not whole values.
    let _ = f.bio.eq("rust");
}
