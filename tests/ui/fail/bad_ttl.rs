use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
#[rapyer(ttl = 0)]
struct User {
    #[rapyer(key)]
    id: String,
}

#[derive(AtomicModel, Serialize, Deserialize)]
#[rapyer(ttl = "60")]
struct Other {
    #[rapyer(key)]
    id: String,
}

fn main() {}
