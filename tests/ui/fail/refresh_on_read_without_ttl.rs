use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

// Re-arming an expiry on reads needs an expiry.
#[derive(AtomicModel, Serialize, Deserialize)]
#[rapyer(refresh_on_read)]
struct Session {
    #[rapyer(key)]
    id: String,
}

fn main() {}
