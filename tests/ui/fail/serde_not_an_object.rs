use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
#[serde(transparent)]
struct Wrapped {
    inner: i64,
}

#[derive(Serialize, Deserialize, Clone)]
struct Plain {
    n: i64,
}

impl From<Plain> for Converted {
    fn from(p: Plain) -> Converted {
        Converted { n: p.n }
    }
}

impl From<Converted> for Plain {
    fn from(c: Converted) -> Plain {
        Plain { n: c.n }
    }
}

#[derive(AtomicModel, Serialize, Deserialize, Clone)]
#[serde(from = "Plain", into = "Plain")]
struct Converted {
    n: i64,
}

fn main() {}
