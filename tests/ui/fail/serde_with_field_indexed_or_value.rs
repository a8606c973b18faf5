use chrono::{DateTime, Utc};
use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
struct Event {
    #[rapyer(key)]
    #[serde(deserialize_with = "de")]
    id: String,
    // An indexed date-time stored as seconds would get no search instant.
    #[rapyer(index)]
    #[serde(with = "chrono::serde::ts_seconds")]
    created: DateTime<Utc>,
    #[rapyer(value)]
    #[serde(serialize_with = "ser")]
    label: String,
}

fn ser<S: serde::Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

fn de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    serde::Deserialize::deserialize(d)
}

fn main() {}
