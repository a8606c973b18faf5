use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

// Written as `userName`, read as `user_name`: no stored model could be read back.
#[derive(AtomicModel, Serialize, Deserialize)]
#[serde(rename_all(serialize = "camelCase"))]
struct Split {
    #[rapyer(key)]
    id: String,
    user_name: String,
    // An alias of the written name makes it readable.
    #[serde(alias = "lastSeen")]
    last_seen: i64,
    #[serde(rename(serialize = "a", deserialize = "b"))]
    other: i64,
}

// Two fields written under one name.
#[derive(AtomicModel, Serialize, Deserialize)]
struct Twice {
    #[rapyer(key)]
    id: String,
    #[serde(rename = "count")]
    first: i64,
    count: i64,
}

fn main() {}
