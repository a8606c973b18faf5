use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
struct Wrapper<T> {
    #[rapyer(key)]
    id: String,
    value: T,
}

fn main() {}
