use chrono::{DateTime, Utc};
use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

// An indexed date-time stores its search instant beside it (`at__ts`), which
// deny_unknown_fields would refuse on every read.
#[derive(AtomicModel, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Strict {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    at: DateTime<Utc>,
    #[rapyer(index)]
    count: i64,
}



// A field named like an indexed date-time's instant property would be overwritten by it.
#[derive(AtomicModel, Serialize, Deserialize)]
struct Clash {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    at: DateTime<Utc>,
    at__ts: i64,
}
fn main() {}
