use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
#[rapyer(hash_tag = "{bad}")]
struct Braces {
    #[rapyer(key)]
    id: String,
}

#[derive(AtomicModel, Serialize, Deserialize)]
struct NotOnKey {
    #[rapyer(key)]
    id: String,
    #[rapyer(hash_tag)]
    group: String,
}

#[derive(AtomicModel, Serialize, Deserialize)]
#[rapyer(hash_tag = "fixed")]
struct Both {
    #[rapyer(key, hash_tag)]
    id: String,
}

fn main() {}
