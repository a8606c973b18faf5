use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
struct User {
    #[rapyer(primary)]
    id: String,
}

fn main() {}
