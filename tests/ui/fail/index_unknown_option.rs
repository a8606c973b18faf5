use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
struct User {
    #[rapyer(key)]
    id: String,
    #[rapyer(index(exact))]
    name: String,
}

fn main() {}
