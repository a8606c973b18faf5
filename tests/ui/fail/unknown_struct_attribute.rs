use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
#[rapyer(prefx = "User")]
struct User {
    #[rapyer(key)]
    id: String,
}

fn main() {}
