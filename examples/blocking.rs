//! The blocking API: the whole of rapyer from a plain `fn main()`, no async runtime in sight.
//! Every call is the async API's own, run to its end with `.wait()` instead of `.await`.
//!
//! Run it with `cargo xtask demo blocking` (which provides a Redis), or against your own
//! Redis 8 / redis-stack with
//! `REDIS_URL=redis://127.0.0.1:6379 cargo run --features blocking --example blocking`.

use std::collections::HashMap;
use std::time::Duration;

use rapyer::prelude::*; // with the `blocking` feature, `Wait` comes with it
use serde::{Deserialize, Serialize};

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
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(hash_tag = "bank")]
struct Wallet {
    #[rapyer(key)]
    id: String,
    balance: i64,
}

rapyer::script! {
    /// Adds `by` to the counter at `key`; returns the new value.
    pub BUMP("bump", keys(key), args(by: i64)) -> i64 =
        "return redis.call('INCRBY', KEYS[1], ARGV[1])";
}

fn main() -> Result<()> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let options = rapyer::ConnectOptions::default().response_timeout(Duration::from_secs(5));
    let db = Db::connect_with(&url, options)
        .wait()?
        .with_namespace("blocking-demo/")?;
    println!("connected to {url}, every key under the namespace `blocking-demo/`\n");

    println!("== Models");
    let mut ann = User {
        id: "ann".into(),
        name: "Ann".into(),
        age: 41,
        tags: vec!["admin".into()],
        prefs: HashMap::new(),
    };
    ann.save(&db).wait()?;
    let bob = User {
        id: "bob".into(),
        name: "Bob".into(),
        age: 17,
        ..ann.clone()
    };
    User::insert_many(&db, std::slice::from_ref(&bob)).wait()?;
    let both = User::get_many(&db, ["ann", "bob", "nobody"]).wait()?;
    println!(
        "get_many(ann, bob, nobody) -> {} found",
        both.iter().flatten().count()
    );

    println!("\n== Field handles and one atomic block");
    let age = ann.age().incr(&db, 1).wait()?;
    ann.prefs().insert(&db, "theme", "dark").wait()?;
    let (len, _) = ann
        .atomic(&db, |m| (m.tags().append("ops"), m.name().append("!")))
        .wait()?;
    println!(
        "age -> {age}, tags -> {len:?} elements, name -> {:?}",
        ann.name
    );
    // Some(len): `atomic` resolves each operation's result (None when a condition skipped it).

    println!("\n== ServerOps: a transfer that never leaves the server");
    let (a, b) = (
        Wallet {
            id: "a".into(),
            balance: 100,
        },
        Wallet {
            id: "b".into(),
            balance: 0,
        },
    );
    Wallet::insert_many(&db, &[a.clone(), b.clone()]).wait()?;
    let (from, to) = (a.server_ref(), b.server_ref());
    let paid = ServerOps::scope(&db, |ops| {
        ops.when(from.balance().ge(30))
            .then(|ops| {
                ops.incr(from.balance(), -30);
                ops.incr(to.balance(), 30);
            })
            .out()
    })
    .wait()?;
    println!(
        "paid: {paid:?}; b now holds {}",
        Wallet::get(&db, "b").wait()?.balance
    );

    println!("\n== Locks, shared by threads");
    // One `Db` for every thread: its calls share one connection.
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let mut guard = User::lock(&db, "ann", LockOptions::default()).wait()?;
                    guard.age += 1;
                    guard.save().wait()?; // what changed, only while the lock is ours
                    guard.release().wait()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a locking thread panicked"))
            .collect::<Result<Vec<()>>>()
    })?;
    println!(
        "four threads each added 1: age {}",
        User::get(&db, "ann").wait()?.age
    );

    println!("\n== Queries");
    db.init::<User>().wait()?;
    let f = User::fields();
    let adults = User::find(&db, f.age.ge(18))
        .sort_by(&f.age, Order::Desc)
        .all()
        .wait()?;
    let minors = User::find(&db, f.age.lt(18)).count().wait()?;
    println!(
        "adults: {:?}; minors: {minors}",
        adults.iter().map(|u| &u.name).collect::<Vec<_>>()
    );

    println!("\n== Scripts and a pipeline");
    let n = BUMP.call(&db, "visits", 5).wait()?;
    let mut pipe = db.pipeline();
    let next = pipe.add(BUMP.prepare("visits", 1));
    pipe.cmd(redis::cmd("GET").arg(db.key("visits")).to_owned());
    let replies = pipe.execute().wait()?;
    println!("bump -> {n}, then {} in a pipeline", next.get(&replies)?);

    println!("\n== Expiry and clean-up");
    ann.set_ttl(&db, Duration::from_secs(60)).wait()?;
    println!("ann expires in {:?}", ann.ttl(&db).wait()?);
    let gone = User::delete_many(&db, ["ann", "bob"]).wait()?
        + Wallet::delete_many(&db, ["a", "b"]).wait()?;
    println!("deleted {gone} models");
    Ok(())
}
