use rapyer::prelude::*;
use rapyer::Ref;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
struct Author {
    #[rapyer(key)]
    id: String,
}

#[derive(AtomicModel, Serialize, Deserialize)]
struct Book {
    #[rapyer(key)]
    id: String,
    // set_null needs a field that can hold null.
    #[rapyer(index, on_delete = "set_null")]
    author: Ref<Author>,
    // on_delete needs a reference.
    #[rapyer(index, on_delete = "cascade")]
    author_id: String,
}

fn main() {}
