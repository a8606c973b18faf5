use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
#[rapyer(prefix = "A", prefix = "B")]
struct User {
    #[rapyer(key)]
    id: String,
}

fn main() {}
