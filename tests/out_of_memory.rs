//! A server at its `maxmemory` limit with `noeviction`: every write path reports
//! `Error::OutOfMemory` naming the key, and every document stays byte-identical.
//!
//! This binary has its own server; its one test lowers `maxmemory` for its own run and
//! restores it (to 0, no limit) even when an assertion fails, so nothing else shares the
//! limited server.

mod common;

use std::collections::HashMap;

use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

use common::{db, json_get, raw};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Tank", hash_tag = "oom")]
struct Tank {
    #[rapyer(key)]
    id: String,
    level: i64,
    ratio: f64,
    items: Vec<String>,
    labels: HashMap<String, String>,
    recent: rapyer::CircularBuffer<String, 1>,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Lease", ttl = 100)]
struct Lease {
    #[rapyer(key)]
    id: String,
    holder: String,
}

fn tank(id: &str) -> Tank {
    Tank {
        id: id.into(),
        level: 1,
        ratio: 0.5,
        items: vec!["a".into()],
        labels: HashMap::from([("k".to_string(), "v".to_string())]),
        recent: ["a".to_string()].into_iter().collect(),
    }
}

async fn config_set(raw: &mut redis::aio::MultiplexedConnection, name: &str, value: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query_async(raw)
        .await
        .expect("CONFIG SET");
}

/// Asserts an out-of-memory refusal naming `key`.
fn assert_oom<T: std::fmt::Debug>(what: &str, outcome: Result<T, Error>, key: &str) {
    match outcome {
        Err(Error::OutOfMemory { key: k }) => assert_eq!(k, key, "{what}"),
        other => panic!("{what}: expected OutOfMemory naming {key}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn every_write_path_reports_out_of_memory_and_writes_nothing() {
    let mut raw = raw().await;
    config_set(&mut raw, "maxmemory-policy", "noeviction").await;
    let outcome = tokio::spawn(every_write_path()).await;
    // Restore the server whatever happened, then report.
    config_set(&mut raw, "maxmemory", "0").await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn every_write_path() {
    let db = db().await;
    let mut raw = raw().await;
    let mut a = tank("a");
    a.save(&db).await.expect("save");
    tank("b").save(&db).await.expect("save");
    let lease = Lease {
        id: "l".into(),
        holder: "ann".into(),
    };
    lease.save(&db).await.expect("save");
    let mut held = Tank::lock(&db, "b", LockOptions::default())
        .await
        .expect("lock");
    db.scripts()
        .define(
            "oom.touch",
            Keys::Fixed(1),
            "return redis.call('JSON.SET', KEYS[1], '$.level', ARGV[1])",
        )
        .expect("define");
    // Most scripts below are first sent at the limit: their NOSCRIPT reload
    // (`MULTI, SCRIPT LOAD, EVALSHA, EXEC`) is not refused, the write inside is.
    let (ka, kb, kl) = (
        db.key(&Tank::key_of("a")),
        db.key(&Tank::key_of("b")),
        db.key(&Lease::key_of("l")),
    );
    let keys = [ka.clone(), kb.clone(), kl.clone()];
    let mut before = Vec::new();
    for k in &keys {
        before.push(json_get(&mut raw, k).await);
    }

    config_set(&mut raw, "maxmemory", "1").await;

    let mut changed = tank("a");
    changed.level = 2;
    assert_oom("save", changed.save(&db).await, &ka);
    let new_lease = Lease {
        id: "l".into(),
        holder: "bob".into(),
    };
    assert_oom("save with ttl", new_lease.save(&db).await, &kl);
    assert_oom(
        "insert_many",
        Tank::insert_many(&db, &[changed.clone(), tank("c")]).await,
        &ka,
    );
    assert_oom(
        "insert_many with ttl",
        Lease::insert_many(&db, std::slice::from_ref(&new_lease)).await,
        &kl,
    );
    let local = a.clone();
    assert_oom("int incr", a.level().incr(&db, 1).await, &ka);
    // The reload above cached the script: now the server refuses the cached `#!lua` script
    // before it runs (another path of the server than the refusal inside EXEC).
    assert_oom("int incr, script cached", a.level().incr(&db, 1).await, &ka);
    // Refused before the script runs (`#!lua`, no `allow-oom`): the float increment writes
    // with JSON.NUMINCRBY, which RedisJSON does not flag `denyoom`.
    assert_oom("float incr", a.ratio().incr(&db, 1.0).await, &ka);
    assert_oom("set", a.level().set(&db, 5).await, &ka);
    assert_oom("list append", a.items().append(&db, "b").await, &ka);
    assert_oom("buffer push", a.recent().push(&db, "b").await, &ka);
    assert_oom("dict insert", a.labels().insert(&db, "x", "y").await, &ka);
    assert_eq!(a, local, "a refused handle changed the local model");
    assert_oom(
        "atomic block",
        a.atomic(&db, |p| {
            p.level().incr(1);
            p.items().append("z");
        })
        .await,
        &ka,
    );
    let (ra, rb) = (Tank::server_ref_for("a"), Tank::server_ref_for("b"));
    assert_oom(
        "ServerOps block",
        ServerOps::scope(&db, |ops| {
            ops.incr(ra.level(), 1);
            ops.incr(rb.level(), -1);
        })
        .await,
        &ka,
    );
    // A block that only appends to lists writes with JSON.ARRAPPEND, never JSON.MSET.
    assert_oom(
        "ServerOps block of appends",
        ServerOps::scope(&db, |ops| {
            ops.append(ra.items(), "z".to_string());
            ops.extend(rb.items(), ["y".to_string()]);
        })
        .await,
        &ka,
    );
    assert_oom(
        "named script",
        db.run_script::<String>("oom.touch", &[Tank::key_of("a")], &[7])
            .await,
        &ka,
    );
    held.level = 9;
    assert_oom("lock save", held.save().await, &kb);
    assert_oom(
        "lock acquire",
        Tank::lock(&db, "a", LockOptions::default()).await,
        &ka,
    );

    for (k, was) in keys.iter().zip(&before) {
        assert_eq!(&json_get(&mut raw, k).await, was, "{k} changed");
    }
    assert!(
        json_get(&mut raw, &db.key(&Tank::key_of("c")))
            .await
            .is_none()
    );
    // Reads still work at the limit.
    assert_eq!(Tank::get(&db, "a").await.expect("get"), tank("a"));
    held.release().await.expect("release needs no memory");
    // Field operations that only remove run at the limit, as DEL does.
    assert_eq!(a.items().pop(&db).await.expect("pop at the limit"), "a");
    assert_eq!(
        a.labels()
            .remove(&db, "k")
            .await
            .expect("remove at the limit"),
        Some("v".to_string())
    );
    let after: serde_json::Value =
        serde_json::from_str(&json_get(&mut raw, &ka).await.expect("a is there")).expect("json");
    assert_eq!(after[0]["items"], serde_json::json!([]));
    assert_eq!(after[0]["labels"], serde_json::json!({}));
    // Expiries and deletes (each a script that checks the key's type first) free or keep
    // memory, so they run at the limit too.
    a.set_ttl(&db, std::time::Duration::from_secs(600))
        .await
        .expect("set_ttl at the limit");
    assert!(a.ttl(&db).await.expect("ttl at the limit").is_some());
    assert_eq!(
        Tank::delete_many(&db, ["a", "b"])
            .await
            .expect("delete_many at the limit"),
        2
    );
    assert!(json_get(&mut raw, &ka).await.is_none());
}
