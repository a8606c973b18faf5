use chrono::{DateTime, Utc};
use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
struct Stamp {
    #[serde(with = "chrono::serde::ts_seconds")]
    at: DateTime<Utc>,
}

#[derive(AtomicModel, Serialize, Deserialize)]
struct Event {
    #[rapyer(key)]
    id: String,
    #[serde(with = "chrono::serde::ts_seconds")]
    created: DateTime<Utc>,
    #[serde(serialize_with = "ser")]
    label: String,
    stamp: Stamp,
}

fn ser<S: serde::Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

async fn uses(db: &Db, event: &mut Event) {
    // A handle, a nested handle and a server reference: each refused, with the fix.
    let _ = event.created().set(db, Utc::now()).await;
    let _ = event.label();
    let _ = event.stamp().at();
    let _ = Event::server_ref_for("e").created();
}

fn main() {
    let _ = uses;
}
