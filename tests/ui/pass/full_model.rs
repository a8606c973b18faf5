use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

/// A user-defined id type: Display + FromStr is all a key needs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
struct Sku(u32);

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sku-{}", self.0)
    }
}

impl FromStr for Sku {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim_start_matches("sku-").parse().map(Sku)
    }
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Address {
    city: String,
    zip: i64,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "User", ttl = 3600)]
struct User {
    #[rapyer(key)]
    id: Id,
    name: String,
    address: Address,
    history: Vec<Address>,
    places: BTreeMap<String, Address>,
    prefs: HashMap<String, String>,
    avatar: Bytes,
    #[serde(rename = "save")]
    save_flag: bool,
}

#[derive(AtomicModel, Serialize, Deserialize)]
struct Product {
    #[rapyer(key)]
    sku: Sku,
}

#[derive(AtomicModel, Serialize, Deserialize)]
struct Numbered {
    #[rapyer(key)]
    n: i32,
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    assert_eq!(<User as AtomicModel>::PREFIX, "User");
    assert_eq!(Product { sku: Sku(7) }.key(), "Product:sku-7");
    assert_eq!(Numbered { n: -3 }.key(), "Numbered:-3");
    // Every async method gives a Send future.
    let db: Option<Db> = None;
    if let Some(db) = db {
        assert_send(User::get(&db, "x"));
        assert_send(User::all(&db));
        assert_send(Product::get_many(&db, [Sku(1)]));
    }
}
