//! Locks on models against the real server: taking and releasing, waiting and timing out,
//! expiry of a vanished holder, a lost lock refusing to save, extension, background release
//! on drop, and no lost update among concurrent read-modify-write holders.

mod common;

use std::time::{Duration, Instant};

use rapyer::prelude::*;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use common::{db, pttl, raw, stored};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Account")]
struct Account {
    #[rapyer(key)]
    id: String,
    balance: i64,
    owner: String,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Ticket", ttl = 120)]
struct Ticket {
    #[rapyer(key)]
    id: String,
    seat: String,
}

fn account(id: &str, balance: i64) -> Account {
    Account {
        id: id.to_string(),
        balance,
        owner: "ann".into(),
    }
}

async fn exists(raw: &mut redis::aio::MultiplexedConnection, key: &str) -> bool {
    raw.exists(key).await.expect("EXISTS")
}

fn quick() -> LockOptions {
    LockOptions::default()
        .ttl(Duration::from_secs(5))
        .timeout(Duration::from_millis(200))
}

#[tokio::test]
async fn lock_reads_saves_and_releases() {
    let db = db().await;
    let mut raw = raw().await;
    account("a1", 100).save(&db).await.expect("save");
    // Someone changes the stored model: the guard holds the server's copy, not a stale one.
    let _: () = redis::cmd("JSON.SET")
        .arg(db.key("Account:a1"))
        .arg("$.balance")
        .arg(150)
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");

    let mut guard = Account::lock(&db, "a1", quick()).await.expect("lock");
    assert_eq!(guard.balance, 150);
    assert_eq!(guard.key(), db.key("Account:a1"));
    let lock_key = guard.lock_key().to_string();
    assert!(lock_key.starts_with(&db.key("_rapyer:lock:")), "{lock_key}");
    assert!(lock_key.ends_with(":Account:a1"), "{lock_key}");
    assert!(exists(&mut raw, &lock_key).await);
    let left = pttl(&mut raw, &lock_key).await;
    assert!(left > 4_000 && left <= 5_000, "lock ttl {left}");

    guard.balance += 25;
    guard.owner = "bob".into();
    guard.save().await.expect("save under the lock");
    assert_eq!(
        stored(&mut raw, &db.key("Account:a1")).await,
        serde_json::json!({"id": "a1", "balance": 175, "owner": "bob"})
    );
    guard.release().await.expect("release");
    assert!(!exists(&mut raw, &lock_key).await, "the lock key is gone");
    // Free again at once.
    Account::lock(&db, "a1", quick())
        .await
        .expect("lock again")
        .release()
        .await
        .expect("release again");
}

#[tokio::test]
async fn a_held_lock_times_out_and_a_vanished_holder_frees_it_after_its_ttl() {
    let db = db().await;
    let mut raw = raw().await;
    account("a2", 1).save(&db).await.expect("save");
    let short = LockOptions::default()
        .ttl(Duration::from_millis(400))
        .timeout(Duration::ZERO);
    let holder = Account::lock(&db, "a2", short).await.expect("first lock");
    let lock_key = holder.lock_key().to_string();

    let started = Instant::now();
    match Account::lock(&db, "a2", quick()).await {
        Err(Error::LockTimeout { key, waited }) => {
            assert_eq!(key, db.key("Account:a2"));
            assert!(waited >= Duration::from_millis(200), "{waited:?}");
        }
        other => panic!("expected LockTimeout, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(200));
    // The holder vanishes without releasing (no drop, no release): the lock expires.
    std::mem::forget(holder);
    let waiting = LockOptions::default().timeout(Duration::from_secs(5));
    let started = Instant::now();
    let next = Account::lock(&db, "a2", waiting)
        .await
        .expect("lock after expiry");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(next.lock_key(), lock_key);
    next.release().await.expect("release");
    assert!(!exists(&mut raw, &lock_key).await);
}

#[tokio::test]
async fn a_lost_lock_refuses_to_save_and_release() {
    let db = db().await;
    let mut raw = raw().await;
    account("a3", 10).save(&db).await.expect("save");
    let brief = LockOptions::default().ttl(Duration::from_millis(100));
    let mut first = Account::lock(&db, "a3", brief).await.expect("lock");
    tokio::time::sleep(Duration::from_millis(250)).await;
    // The lock expired; another holder takes it and saves.
    let mut second = Account::lock(&db, "a3", quick()).await.expect("second");
    second.balance = 99;
    second.save().await.expect("second saves");

    first.balance = -1;
    match first.save().await {
        Err(Error::LockLost { key }) => assert_eq!(key, db.key("Account:a3")),
        other => panic!("expected LockLost, got {other:?}"),
    }
    assert!(matches!(
        first.extend(Duration::from_secs(5)).await,
        Err(Error::LockLost { .. })
    ));
    match first.release().await {
        Err(Error::LockLost { .. }) => {}
        other => panic!("expected LockLost, got {other:?}"),
    }
    // Nothing of the lost holder reached the server, and the second lock is intact.
    assert_eq!(stored(&mut raw, &db.key("Account:a3")).await["balance"], 99);
    assert!(exists(&mut raw, second.lock_key()).await);
    second.release().await.expect("release");
}

#[tokio::test]
async fn extend_renews_and_saves_keep_the_model_ttl() {
    let db = db().await;
    let mut raw = raw().await;
    let ticket = Ticket {
        id: "t1".into(),
        seat: "12A".into(),
    };
    ticket.save(&db).await.expect("save");
    let options = LockOptions::default().ttl(Duration::from_millis(300));
    let mut guard = Ticket::lock(&db, "t1", options).await.expect("lock");
    guard.extend(Duration::from_secs(30)).await.expect("extend");
    let left = pttl(&mut raw, guard.lock_key()).await;
    assert!(left > 29_000, "extended lock ttl {left}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    guard.seat = "14C".into();
    guard.save().await.expect("still held after the first ttl");
    let key = db.key("Ticket:t1");
    assert_eq!(stored(&mut raw, &key).await["seat"], "14C");
    let model_ttl = pttl(&mut raw, &key).await;
    assert!(
        model_ttl > 110_000 && model_ttl <= 120_000,
        "model ttl {model_ttl}"
    );
    guard.release().await.expect("release");
}

#[tokio::test]
async fn dropping_a_guard_releases_it_in_the_background() {
    let db = db().await;
    let mut raw = raw().await;
    account("a4", 0).save(&db).await.expect("save");
    let lock_key = {
        let guard = Account::lock(&db, "a4", quick()).await.expect("lock");
        guard.lock_key().to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while exists(&mut raw, &lock_key).await {
        assert!(Instant::now() < deadline, "the dropped guard's lock stayed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Account::lock(&db, "a4", quick())
        .await
        .expect("free after drop")
        .release()
        .await
        .expect("release");
}

#[tokio::test]
async fn missing_broken_and_foreign_models_take_no_lock() {
    let db = db().await;
    let mut raw = raw().await;
    match Account::lock(&db, "ghost", quick()).await {
        Err(Error::NotFound { key }) => assert_eq!(key, db.key("Account:ghost")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let _: () = raw
        .set(db.key("Account:text"), "not json")
        .await
        .expect("SET");
    match Account::lock(&db, "text", quick()).await {
        Err(Error::TypeMismatch { key, found, .. }) => {
            assert_eq!(key, db.key("Account:text"));
            assert_eq!(found, "string");
        }
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    let _: () = redis::cmd("JSON.SET")
        .arg(db.key("Account:broken"))
        .arg("$")
        .arg(r#"{"id":"broken","balance":"lots"}"#)
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");
    match Account::lock(&db, "broken", quick()).await {
        Err(Error::Deserialize { key, path, .. }) => {
            assert_eq!(key, db.key("Account:broken"));
            assert_eq!(path, "balance");
        }
        other => panic!("expected Deserialize, got {other:?}"),
    }
    // None of them left a lock behind.
    let pattern = format!("{}*lock*", db.namespace());
    let locks: Vec<String> = raw.keys(pattern).await.expect("KEYS");
    assert!(locks.is_empty(), "locks left: {locks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_read_modify_write_under_the_lock_loses_nothing() {
    let db = db().await;
    let mut raw = raw().await;
    account("shared", 0).save(&db).await.expect("save");
    let patient = LockOptions::default()
        .ttl(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .retry_every(Duration::from_millis(2));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let db = db.clone();
        let options = patient.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                let mut guard = Account::lock(&db, "shared", options.clone())
                    .await
                    .expect("lock");
                // Read, yield to the others, then write: without the lock this loses updates.
                let seen = guard.balance;
                tokio::task::yield_now().await;
                guard.balance = seen + 1;
                guard.save().await.expect("save");
                guard.release().await.expect("release");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(
        stored(&mut raw, &db.key("Account:shared")).await["balance"],
        400
    );
}
