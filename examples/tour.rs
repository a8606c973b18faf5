//! A tour of rapyer: define models, save, load, change single fields atomically, run
//! blocks of operations across models on the server, lock, expire and delete them.
//!
//! Run it with `cargo xtask demo` (which provides a Redis), or against your own Redis 8 /
//! redis-stack with `REDIS_URL=redis://127.0.0.1:6379 cargo run --example tour`.
//! `cargo xtask demo cluster` runs it on a Redis Cluster (`REDIS_CLUSTER_URLS`).

use std::collections::HashMap;
use std::time::Duration;

use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Address {
    city: String,
    zip: i64,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "User")]
struct User {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    name: String,
    #[rapyer(index(sortable))]
    age: i64,
    tags: Vec<String>,
    prefs: HashMap<String, String>,
    address: Address,
    avatar: Bytes,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Session", ttl = 60)]
struct Session {
    #[rapyer(key)]
    id: Id,
    user: String,
}

/// Models changed together in one ServerOps block share a cluster slot: the hash tag puts
/// `{bank}` in every wallet's key.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(hash_tag = "bank")]
struct Wallet {
    #[rapyer(key)]
    id: String,
    balance: i64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let (url, db) = match std::env::var("REDIS_CLUSTER_URLS") {
        Ok(seeds) => (seeds.clone(), Db::connect_cluster(seeds.split(',')).await?),
        Err(_) => {
            let url =
                std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
            (url.clone(), Db::connect(&url).await?)
        }
    };
    let db = db.with_namespace("tour/")?;
    println!("connected to {url}, every key under the namespace `tour/`\n");

    println!("== Models: create, save, load");
    let ann = User {
        id: "ann".into(),
        name: "Ann".into(),
        age: 41,
        tags: vec!["admin".into()],
        prefs: HashMap::from([("theme".into(), "dark".into())]),
        address: Address {
            city: "Paris".into(),
            zip: 75001,
        },
        avatar: Bytes::from(vec![0x89, b'P', b'N', b'G']),
    };
    let mut bob = User {
        id: "bob".into(),
        name: "Bob".into(),
        age: 29,
        ..ann.clone()
    };
    ann.save(&db).await?;
    println!("saved {} at key {}", ann.name, db.key(&ann.key()));
    let loaded = User::get(&db, "ann").await?;
    println!("loaded it back: {loaded:?}");
    assert_eq!(loaded, ann);

    println!("\n== Bulk: insert_many is one atomic round trip");
    let team: Vec<User> = ["cy", "di", "ed"]
        .iter()
        .map(|id| User {
            id: id.to_string(),
            name: id.to_uppercase(),
            ..ann.clone()
        })
        .collect();
    User::insert_many(&db, &team).await?;
    let some = User::get_many(&db, ["cy", "nobody", "ed"]).await?;
    let names: Vec<Option<String>> = some.into_iter().map(|u| u.map(|u| u.name)).collect();
    println!("get_many(cy, nobody, ed) -> {names:?}");

    println!("\n== Update: change fields and save, or refresh from the server");
    bob.age += 1;
    bob.address.city = "Lyon".into();
    bob.save(&db).await?;
    let mut stale = bob.clone();
    stale.age = 0;
    stale.refresh(&db).await?;
    println!(
        "bob after refresh: age {}, city {}",
        stale.age, stale.address.city
    );

    println!("\n== Field handles: one field changes on the server, the local copy follows");
    let age = bob.age().incr(&db, 1).await?;
    bob.tags().append(&db, "reviewer").await?;
    bob.prefs()
        .insert(&db, "odd \"key\" ['x']", "any string is a key")
        .await?;
    bob.address().city().set(&db, "Marseille").await?;
    println!(
        "bob is {age}, tags {:?}, city {}; the server agrees: {}",
        bob.tags,
        bob.address.city,
        User::get(&db, "bob").await? == bob
    );
    match bob.age().incr(&db, i64::MAX).await {
        Err(Error::Overflow { key, path, kind }) => {
            println!("{kind} overflow refused at {key} {path}")
        }
        other => println!("unexpected: {other:?}"),
    }

    println!("\n== ServerOps: one script across models, all or nothing, nothing loaded");
    Wallet::insert_many(
        &db,
        &[
            Wallet {
                id: "ann".into(),
                balance: 40,
            },
            Wallet {
                id: "bob".into(),
                balance: 0,
            },
        ],
    )
    .await?;
    let (from, to) = (Wallet::server_ref_for("ann"), Wallet::server_ref_for("bob"));
    for _ in 0..2 {
        // Move 25 if ann can afford it: checked and done on the server in one step.
        let moved = ServerOps::scope(&db, |ops| {
            ops.when(from.balance().ge(25))
                .then(|ops| {
                    ops.incr(from.balance(), -25);
                    ops.incr(to.balance(), 25);
                })
                .out()
        })
        .await?;
        let wallets = Wallet::get_many(&db, ["ann", "bob"]).await?;
        let balances: Vec<i64> = wallets.iter().flatten().map(|w| w.balance).collect();
        println!("transfer of 25: moved {moved:?}, balances (ann, bob) now {balances:?}");
    }
    assert_eq!(Wallet::get(&db, "bob").await?.balance, 25);
    // An atomic block: several field operations on one model as one script; the
    // local copy gets the server's new values.
    let (age, tags) = bob
        .atomic(&db, |p| (p.age().incr(1), p.tags().append("atomic")))
        .await?;
    println!(
        "atomic: age -> {age:?}, tags length -> {tags:?}; bob.tags {:?}",
        bob.tags
    );
    assert_eq!(User::get(&db, "bob").await?, bob);

    println!("\n== Locks: read-modify-write that no other holder can interleave");
    let mut guard = User::lock(&db, "bob", LockOptions::default()).await?;
    guard.name.push_str(" (locked)");
    guard.save().await?;
    guard.release().await?;
    println!("bob's name is now {:?}", User::get(&db, "bob").await?.name);

    println!("\n== Expiry: a model with `ttl` gets it in the same step as each save");
    let session = Session {
        id: Id::default(),
        user: "ann".into(),
    };
    session.save(&db).await?;
    println!(
        "session {} expires in {:?}",
        session.id,
        session.ttl(&db).await?.map(|d| d.as_secs())
    );
    bob.set_ttl(&db, Duration::from_secs(300)).await?;
    println!(
        "bob now expires in {:?}s",
        bob.ttl(&db).await?.map(|d| d.as_secs())
    );

    println!("\n== Queries: typed fields, exact matching, every match returned");
    // On a cluster, the index is made on every primary and the search asks each of them.
    db.init::<User>().await?;
    let f = User::fields();
    let grown_ups = User::find(&db, f.age.ge(30) & !f.name.eq("Bob"))
        .sort_by(&f.age, Order::Desc)
        .all()
        .await?;
    let names: Vec<&str> = grown_ups.iter().map(|u| u.name.as_str()).collect();
    println!(
        "{} -> {names:?}",
        (f.age.ge(30) & !f.name.eq("Bob")).to_query()?
    );

    println!("\n== Errors are values: a missing model is NotFound, naming its key");
    match User::get(&db, "ghost").await {
        Err(Error::NotFound { key }) => println!("no document at {key}"),
        other => println!("unexpected: {other:?}"),
    }

    println!("\n== Listing and deleting");
    let everyone = User::all(&db).await?;
    println!("{} users stored", everyone.len());
    let removed = User::delete_many(&db, everyone.iter().map(|u| u.id.clone())).await?;
    session.delete(&db).await?;
    Wallet::delete_many(&db, ["ann", "bob"]).await?;
    println!(
        "deleted {removed} users and the session; {} left",
        User::all(&db).await?.len()
    );
    Ok(())
}
