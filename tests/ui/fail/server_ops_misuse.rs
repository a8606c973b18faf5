// ServerOps operations are typed: each misuse below is a compile error.
use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
#[rapyer(hash_tag = "t")]
struct Account {
    #[rapyer(key)]
    id: String,
    balance: i64,
    rate: f64,
    name: String,
    active: bool,
    tags: Vec<String>,
    scores: Vec<i64>,
}

fn main() {
    let (a, b) = (Account::server_ref_for("a"), Account::server_ref_for("b"));
    let _ = ServerOps::explain(|ops| {
        // Numbers only, and an integer is not increased by a float.
        ops.incr_by_field(a.balance(), b.name());
        ops.incr_by_field(a.balance(), b.rate());
        ops.incr(a.name(), 1);
        // Strings only.
        ops.concat([a.balance(), b.balance()], a.name(), "-");
        // The same value type on both sides.
        ops.assign(a.tags().slice(..), b.scores().slice(..));
        ops.assign(a.rate(), b.balance());
        // Slices are not swapped.
        ops.swap(a.tags().slice(0..1), b.tags().slice(0..1));
        // Booleans are not ordered.
        let _ = a.active().gt(true);
    });
}
