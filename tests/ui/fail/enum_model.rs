use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
enum Kind {
    A,
    B,
}

fn main() {}
