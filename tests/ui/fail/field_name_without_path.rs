use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

// A JSON name that no JSONPath can address cannot have a handle.
#[derive(AtomicModel, Serialize, Deserialize)]
struct Odd {
    #[rapyer(key)]
    id: String,
    #[serde(rename = "say \"hi\"")]
    greeting: String,
    // RedisJSON reads `[" lead"]` as the member `lead`.
    #[serde(rename = " lead")]
    lead: String,
}

fn main() {}
