use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
struct Address {
    city: String,
}

async fn use_it(db: &Db, address: &Address) -> rapyer::Result<()> {
    // A struct without a `#[rapyer(key)]` field can only be nested in a stored model.
    address.save(db).await?;
    let _ = Address::get(db, "a1").await?;
    Ok(())
}

fn main() {}
