use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
struct User {
    #[rapyer(key)]
    id: Option<String>,
}

fn main() {}
