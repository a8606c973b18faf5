use chrono::{DateTime, Utc};
use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

// deny_unknown_fields is fine when no indexed date-time stores an instant beside itself.
#[derive(AtomicModel, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Strict {
    #[rapyer(key)]
    id: String,
    at: DateTime<Utc>,
    #[rapyer(index)]
    count: i64,
    #[rapyer(index)]
    name: String,
}

fn main() {}
