use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
enum Plan {
    Free,
    Paid,
}

// A field of a type with no handle needs #[rapyer(value)] (or a FieldType impl).
#[derive(AtomicModel, Serialize, Deserialize)]
struct Account {
    #[rapyer(key)]
    id: String,
    plan: Plan,
}

fn main() {}
