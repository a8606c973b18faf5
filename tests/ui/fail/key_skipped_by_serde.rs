use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
struct User {
    #[rapyer(key)]
    #[serde(skip)]
    id: String,
}

fn main() {}
