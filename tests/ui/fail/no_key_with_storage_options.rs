use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
#[rapyer(prefix = "User", ttl = 60)]
struct User {
    name: String,
}

fn main() {}
