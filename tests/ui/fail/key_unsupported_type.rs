use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
struct User {
    #[rapyer(key)]
    id: Vec<u8>,
}

fn main() {}
