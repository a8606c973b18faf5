use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize)]
struct Address {
    city: String,
}

async fn store<M: AtomicModel>(db: &Db, model: &M) -> rapyer::Result<()> {
    model.save(db).await
}

async fn save_address(db: &Db, address: &Address) -> rapyer::Result<()> {
    store(db, address).await
}

fn main() {}
