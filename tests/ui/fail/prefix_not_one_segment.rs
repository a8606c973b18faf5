use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
#[rapyer(prefix = "User:Admin")]
struct Admin {
    #[rapyer(key)]
    id: String,
}

#[derive(AtomicModel, Serialize, Deserialize)]
#[rapyer(prefix = "Us*er")]
struct Glob {
    #[rapyer(key)]
    id: String,
}

#[derive(AtomicModel, Serialize, Deserialize)]
#[rapyer(prefix = "{tag}")]
struct Braces {
    #[rapyer(key)]
    id: String,
}

#[derive(AtomicModel, Serialize, Deserialize)]
#[rapyer(prefix = "tenant/User")]
struct Slash {
    #[rapyer(key)]
    id: String,
}

#[derive(AtomicModel, Serialize, Deserialize)]
#[rapyer(prefix = "_rapyer")]
struct Reserved {
    #[rapyer(key)]
    id: String,
}

#[derive(AtomicModel, Serialize, Deserialize)]
#[rapyer(prefix = "a b")]
struct Space {
    #[rapyer(key)]
    id: String,
}

#[derive(AtomicModel, Serialize, Deserialize)]
#[rapyer(prefix = "")]
struct Empty {
    #[rapyer(key)]
    id: String,
}

#[derive(AtomicModel, Serialize, Deserialize)]
#[allow(non_camel_case_types)]
struct _Hidden {
    #[rapyer(key)]
    id: String,
}

fn main() {}
