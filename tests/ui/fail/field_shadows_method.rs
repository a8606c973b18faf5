use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
struct User {
    #[rapyer(key)]
    id: String,
    save: bool,
    ttl: u64,
}

fn main() {}
