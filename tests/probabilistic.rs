//! Bloom filters and count-min sketches on RedisBloom, against the real server: every
//! answer read back with plain `BF.*`/`CMS.*` commands, hostile items and names, keys of
//! other types, and a failing increment that leaves the sketch byte-identical.

use std::collections::BTreeMap;
use std::collections::HashMap;

use rapyer::prelude::*;
use rapyer::{BloomFilter, CountMinSketch};
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};

mod common;

/// A `Db` in a fresh namespace on the test binary's server, which must have RedisBloom.
async fn db() -> Db {
    rapyer_testkit::bloom_server();
    common::db().await
}

fn hostile() -> Vec<String> {
    vec![
        String::new(),
        "\"".into(),
        "'".into(),
        "a'] or 1==1 --".into(),
        "]]..redis.call('FLUSHALL')..[[".into(),
        "{\"json\": [1, 2]}".into(),
        "@tag:{x} | -y*".into(),
        "line\nbreak\r\n".into(),
        "🎉 é \u{0}".into(),
        "\\".into(),
        "x".repeat(1 << 20),
    ]
}

async fn bf_info(raw: &mut MultiplexedConnection, key: &str) -> HashMap<String, redis::Value> {
    let list: Vec<redis::Value> = redis::cmd("BF.INFO")
        .arg(key)
        .query_async(raw)
        .await
        .expect("a reply of the expected shape");
    pairs(list)
}

fn pairs(list: Vec<redis::Value>) -> HashMap<String, redis::Value> {
    list.chunks(2)
        .map(|pair| {
            let name: String =
                redis::from_redis_value(pair[0].clone()).expect("a reply of the expected shape");
            (name, pair[1].clone())
        })
        .collect()
}

fn int(v: &redis::Value) -> i64 {
    redis::from_redis_value(v.clone()).expect("a reply of the expected shape")
}

async fn key_type(raw: &mut MultiplexedConnection, key: &str) -> String {
    redis::cmd("TYPE")
        .arg(key)
        .query_async(raw)
        .await
        .expect("a reply of the expected shape")
}

async fn dump(raw: &mut MultiplexedConnection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("DUMP")
        .arg(key)
        .query_async(raw)
        .await
        .expect("a reply of the expected shape")
}

#[tokio::test]
async fn every_added_item_is_contained_and_stored_as_its_json_text() {
    let db = db().await;
    let mut raw = common::raw().await;
    let filter = BloomFilter::<String>::named(&db, "hostile");
    assert_eq!(
        filter.key(),
        format!("{}_rapyer:bloom:hostile", db.namespace())
    );
    let items = hostile();
    for item in &items {
        assert!(
            !filter
                .contains(item.as_str())
                .await
                .expect("a reply of the expected shape"),
            "{item:.40?}"
        );
    }
    let added = filter
        .add_many(items.iter().map(String::as_str))
        .await
        .expect("a reply of the expected shape");
    assert_eq!(added.len(), items.len());
    let found = filter
        .contains_many(items.iter().map(String::as_str))
        .await
        .expect("a reply of the expected shape");
    assert!(found.iter().all(|&f| f), "{found:?}");
    // Read back with plain commands: the item is its JSON text.
    for item in &items {
        let text = serde_json::to_string(item).expect("a reply of the expected shape");
        let exists: i64 = redis::cmd("BF.EXISTS")
            .arg(filter.key())
            .arg(&text)
            .query_async(&mut raw)
            .await
            .expect("a reply of the expected shape");
        assert_eq!(exists, 1, "{text:.40}");
    }
    // Adding again says "maybe seen before".
    assert!(
        !filter
            .add("\"")
            .await
            .expect("a reply of the expected shape")
    );
    assert!(
        filter
            .add("certainly new")
            .await
            .expect("a reply of the expected shape")
    );
    assert_eq!(
        filter
            .add_many(Vec::<&str>::new())
            .await
            .expect("a reply of the expected shape"),
        Vec::<bool>::new()
    );
    assert_eq!(
        filter
            .contains_many(Vec::<&str>::new())
            .await
            .expect("a reply of the expected shape"),
        Vec::<bool>::new()
    );
}

#[tokio::test]
async fn the_same_value_is_the_same_item_whatever_its_rust_type_or_order() {
    let db = db().await;
    let strings = BloomFilter::<String>::named(&db, "s");
    strings
        .add(&"a".to_string())
        .await
        .expect("a reply of the expected shape");
    assert!(
        strings
            .contains("a")
            .await
            .expect("a reply of the expected shape")
    );
    assert!(
        !strings
            .contains("A")
            .await
            .expect("a reply of the expected shape")
    );

    let maps = BloomFilter::<HashMap<String, i64>>::named(&db, "maps");
    let mut one = HashMap::new();
    for (i, k) in ["z", "a", "m", "q", "b", "y"].iter().enumerate() {
        one.insert(k.to_string(), i as i64);
    }
    maps.add(&one).await.expect("a reply of the expected shape");
    let mut entries: Vec<(String, i64)> = one.iter().map(|(k, v)| (k.clone(), *v)).collect();
    entries.reverse();
    let other: HashMap<String, i64> = entries.into_iter().collect();
    assert!(
        maps.contains(&other)
            .await
            .expect("a reply of the expected shape")
    );
    // The same value as another map type is the same item too.
    let sorted = BloomFilter::<BTreeMap<String, i64>>::named(&db, "maps");
    let btree: BTreeMap<String, i64> = one.into_iter().collect();
    assert!(
        sorted
            .contains(&btree)
            .await
            .expect("a reply of the expected shape")
    );

    let numbers = BloomFilter::<f64>::named(&db, "floats");
    assert!(matches!(
        numbers.add(&f64::NAN).await,
        Err(Error::NonFinite { .. })
    ));
    let mut raw = common::raw().await;
    assert_eq!(key_type(&mut raw, numbers.key()).await, "none");
}

#[tokio::test]
async fn reserve_sets_the_capacity_once_and_refuses_what_redisbloom_refuses() {
    let db = db().await;
    let mut raw = common::raw().await;
    let filter = BloomFilter::<str>::named(&db, "signups");
    assert!(
        filter
            .reserve(0.001, 5_000)
            .await
            .expect("a reply of the expected shape")
    );
    let info = bf_info(&mut raw, filter.key()).await;
    assert_eq!(int(&info["Capacity"]), 5_000);
    // A second reserve keeps the filter and its items.
    filter
        .add("ann")
        .await
        .expect("a reply of the expected shape");
    assert!(
        !filter
            .reserve(0.5, 10)
            .await
            .expect("a reply of the expected shape")
    );
    let info = bf_info(&mut raw, filter.key()).await;
    assert_eq!(int(&info["Capacity"]), 5_000);
    assert_eq!(int(&info["Number of items inserted"]), 1);

    let fresh = BloomFilter::<str>::named(&db, "fresh");
    for (rate, capacity) in [
        (0.0, 10),
        (1.0, 10),
        (-0.1, 10),
        (f64::NAN, 10),
        (f64::INFINITY, 10),
        (0.01, 0),
        (0.01, u64::MAX),
    ] {
        let refused = fresh.reserve(rate, capacity).await;
        assert!(
            matches!(&refused, Err(Error::InvalidOp { key, .. }) if key == fresh.key()),
            "{rate} {capacity}: {refused:?}"
        );
    }
    // The edges RedisBloom accepts.
    assert!(
        fresh
            .reserve(0.999_99, 1)
            .await
            .expect("a reply of the expected shape")
    );
    assert_eq!(key_type(&mut raw, fresh.key()).await, "MBbloom--");
}

#[tokio::test]
async fn a_missing_filter_is_created_by_add_with_the_defaults_and_never_by_contains() {
    let db = db().await;
    let mut raw = common::raw().await;
    let filter = BloomFilter::<str>::named(&db, "lazy");
    assert!(
        !filter
            .contains("x")
            .await
            .expect("a reply of the expected shape")
    );
    assert_eq!(
        filter
            .contains_many(["x", "y"])
            .await
            .expect("a reply of the expected shape"),
        vec![false, false]
    );
    assert_eq!(key_type(&mut raw, filter.key()).await, "none");
    assert!(
        filter
            .add("x")
            .await
            .expect("a reply of the expected shape")
    );
    let info = bf_info(&mut raw, filter.key()).await;
    assert_eq!(
        int(&info["Capacity"]),
        rapyer::probabilistic::DEFAULT_CAPACITY as i64
    );
}

#[tokio::test]
async fn a_key_of_another_type_is_a_type_mismatch_and_stays_untouched() {
    let db = db().await;
    let mut raw = common::raw().await;
    let filter = BloomFilter::<str>::named(&db, "taken");
    let sketch = CountMinSketch::<str>::named(&db, "taken");
    for key in [filter.key(), sketch.key()] {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg("plain")
            .query_async(&mut raw)
            .await
            .expect("a reply of the expected shape");
    }
    let mismatch = |r: &Result<_, Error>, key: &str| matches!(r, Err(Error::TypeMismatch { key: k, found, .. }) if k == key && found == "string");
    assert!(mismatch(&filter.add("a").await.map(|_| ()), filter.key()));
    // BF.EXISTS alone would answer 0 on a string key.
    assert!(mismatch(
        &filter.contains("a").await.map(|_| ()),
        filter.key()
    ));
    assert!(mismatch(
        &filter.reserve(0.1, 10).await.map(|_| ()),
        filter.key()
    ));
    assert!(mismatch(
        &sketch.incr_by("a", 1).await.map(|_| ()),
        sketch.key()
    ));
    assert!(mismatch(&sketch.query("a").await.map(|_| ()), sketch.key()));
    assert!(mismatch(
        &sketch.reserve(0.1, 0.1).await.map(|_| ()),
        sketch.key()
    ));
    if let Err(e) = filter.contains("a").await {
        assert!(e.to_string().contains("a Bloom filter"), "{e}");
    }
    for key in [filter.key(), sketch.key()] {
        let v: String = redis::cmd("GET")
            .arg(key)
            .query_async(&mut raw)
            .await
            .expect("a reply of the expected shape");
        assert_eq!(v, "plain");
    }
    // A sketch's key is no filter and the other way round.
    let other = BloomFilter::<str>::named(&db, "cross");
    let _: () = redis::cmd("CMS.INITBYDIM")
        .arg(other.key())
        .arg(10)
        .arg(2)
        .query_async(&mut raw)
        .await
        .expect("a reply of the expected shape");
    assert!(matches!(
        other.add("a").await,
        Err(Error::TypeMismatch { found, .. }) if found == "CMSk-TYPE"
    ));
}

#[tokio::test]
async fn hostile_names_each_name_one_structure_in_the_reserved_space() {
    let db = db().await;
    let mut raw = common::raw().await;
    let mut names = hostile();
    names.truncate(names.len() - 1);
    names.extend(
        [
            "x", "x:y", "x:", ":x", "{x}", "x*", "?", "[a]", "bloom:x", "../x", "cms:x",
        ]
        .map(String::from),
    );
    let mut keys = std::collections::HashSet::new();
    for (i, name) in names.iter().enumerate() {
        let filter = BloomFilter::<i64>::named(&db, name);
        assert!(
            filter
                .key()
                .starts_with(&format!("{}_rapyer:bloom:", db.namespace()))
        );
        assert!(keys.insert(filter.key().to_string()), "{name:?}");
        filter
            .add(&(i as i64))
            .await
            .expect("a reply of the expected shape");
        let sketch = CountMinSketch::<i64>::named(&db, name);
        assert!(keys.insert(sketch.key().to_string()), "{name:?}");
        sketch
            .incr_by(&(i as i64), 1)
            .await
            .expect("a reply of the expected shape");
    }
    for (i, name) in names.iter().enumerate() {
        let filter = BloomFilter::<i64>::named(&db, name);
        let info = bf_info(&mut raw, filter.key()).await;
        assert_eq!(int(&info["Number of items inserted"]), 1, "{name:?}");
        assert!(
            filter
                .contains(&(i as i64))
                .await
                .expect("a reply of the expected shape")
        );
    }
    // Every key is in the namespace's reserved part, nothing else was written.
    let found: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", db.namespace()))
        .query_async(&mut raw)
        .await
        .expect("a reply of the expected shape");
    assert_eq!(found.len(), keys.len());
    for key in found {
        assert!(keys.contains(&key), "{key:?}");
        assert!(key.starts_with(&format!("{}_rapyer:", db.namespace())));
    }
}

#[tokio::test]
async fn a_sketch_counts_estimates_and_reserves_once() {
    let db = db().await;
    let mut raw = common::raw().await;
    let views = CountMinSketch::<str>::named(&db, "views");
    assert_eq!(
        views
            .query("/home")
            .await
            .expect("a reply of the expected shape"),
        0
    );
    assert_eq!(key_type(&mut raw, views.key()).await, "none");
    assert!(
        views
            .reserve(0.01, 0.01)
            .await
            .expect("a reply of the expected shape")
    );
    let info: Vec<redis::Value> = redis::cmd("CMS.INFO")
        .arg(views.key())
        .query_async(&mut raw)
        .await
        .expect("a reply of the expected shape");
    let info = pairs(info);
    assert_eq!(int(&info["width"]), 200);
    assert_eq!(int(&info["depth"]), 7);
    assert!(
        !views
            .reserve(0.5, 0.5)
            .await
            .expect("a reply of the expected shape")
    );

    let items = hostile();
    for (i, item) in items.iter().enumerate() {
        assert!(
            views
                .incr_by(item.as_str(), i as u32 + 1)
                .await
                .expect("a reply of the expected shape")
                > i as u64
        );
    }
    let estimates = views
        .query_many(items.iter().map(String::as_str))
        .await
        .expect("a reply of the expected shape");
    for (i, estimate) in estimates.iter().enumerate() {
        assert!(*estimate > i as u64, "{i}: {estimate}");
        let text = serde_json::to_string(&items[i]).expect("a reply of the expected shape");
        let plain: Vec<u64> = redis::cmd("CMS.QUERY")
            .arg(views.key())
            .arg(&text)
            .query_async(&mut raw)
            .await
            .expect("a reply of the expected shape");
        assert_eq!(plain, vec![*estimate]);
    }
    // One item named twice counts twice.
    let fresh = CountMinSketch::<str>::named(&db, "twice");
    assert_eq!(
        fresh
            .incr_many([("a", 2), ("a", 3)])
            .await
            .expect("a reply of the expected shape"),
        vec![2, 5]
    );
    // A sketch created by incr_by has the defaults (2,000 × 10).
    let info: Vec<redis::Value> = redis::cmd("CMS.INFO")
        .arg(fresh.key())
        .query_async(&mut raw)
        .await
        .expect("a reply of the expected shape");
    let info = pairs(info);
    assert_eq!((int(&info["width"]), int(&info["depth"])), (2000, 10));
}

#[tokio::test]
async fn an_increment_past_the_32_bit_counters_changes_nothing() {
    let db = db().await;
    let mut raw = common::raw().await;
    let sketch = CountMinSketch::<str>::named(&db, "big");
    assert_eq!(
        sketch
            .incr_by("a", u32::MAX - 2)
            .await
            .expect("a reply of the expected shape"),
        u64::from(u32::MAX - 2)
    );
    let before = dump(&mut raw, sketch.key()).await;
    assert!(before.is_some());
    for attempt in [
        vec![("b", 1), ("a", 2)],
        vec![("a", 1), ("a", 1)],
        vec![("c", u32::MAX - 1), ("c", 1)],
    ] {
        let refused = sketch.incr_many(attempt.clone()).await;
        assert!(
            matches!(&refused, Err(Error::Overflow { key, kind: "u32", .. }) if key == sketch.key()),
            "{attempt:?}: {refused:?}"
        );
        assert_eq!(dump(&mut raw, sketch.key()).await, before, "{attempt:?}");
    }
    // The last count that fits.
    assert_eq!(
        sketch
            .incr_by("a", 1)
            .await
            .expect("a reply of the expected shape"),
        u64::from(u32::MAX - 1)
    );
    for by in [0, u32::MAX] {
        assert!(matches!(
            sketch.incr_by("a", by).await,
            Err(Error::InvalidOp { .. })
        ));
    }
    for (error, probability) in [
        (0.0, 0.1),
        (1.0, 0.1),
        (0.1, 0.0),
        (0.1, 1.0),
        (f64::NAN, 0.1),
    ] {
        assert!(matches!(
            CountMinSketch::<str>::named(&db, "never")
                .reserve(error, probability)
                .await,
            Err(Error::InvalidOp { .. })
        ));
    }
    let never = CountMinSketch::<str>::named(&db, "never");
    assert_eq!(key_type(&mut raw, never.key()).await, "none");
}

/// A model with two Bloom-indexed fields, one renamed in the document.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Member")]
struct Member {
    #[rapyer(key)]
    id: String,
    #[rapyer(bloom)]
    #[serde(rename = "mail")]
    email: String,
    #[rapyer(bloom)]
    score: f64,
    note: String,
}

fn member(id: &str, email: &str) -> Member {
    Member {
        id: id.into(),
        email: email.into(),
        score: 1.5,
        note: String::new(),
    }
}

/// Reserves the model's filters strictly enough that a value never saved is reported
/// absent (a false positive at 1e-9 over these few checks is never seen).
async fn strict(db: &Db) {
    for field in ["mail", "score"] {
        BloomFilter::<serde_json::Value>::of_field::<Member>(db, field)
            .reserve(1e-9, 10_000)
            .await
            .expect("reserve the model's filters");
    }
}

#[tokio::test]
async fn every_save_adds_the_bloom_fields_and_maybe_exists_answers_from_them() {
    let db = db().await;
    let mut raw = common::raw().await;
    strict(&db).await;
    let mut emails = hostile();
    emails.push("ann@example.com".into());
    for (i, email) in emails.iter().enumerate() {
        assert!(
            !Member::maybe_exists_by_email(&db, email.as_str())
                .await
                .unwrap()
        );
        member(&format!("m{i}"), email).save(&db).await.unwrap();
        assert!(
            Member::maybe_exists_by_email(&db, email.as_str())
                .await
                .unwrap(),
            "{email:.40?}"
        );
    }
    // Read back with plain commands: the filter is in the reserved space, keyed by the
    // field's JSON name, and holds the value's JSON text.
    let key = format!("{}_rapyer:bloom-field:Member:mail", db.namespace());
    let exists: i64 = redis::cmd("BF.EXISTS")
        .arg(&key)
        .arg("\"ann@example.com\"")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(exists, 1);
    assert!(Member::maybe_exists_by_score(&db, &1.5).await.unwrap());
    assert!(!Member::maybe_exists_by_score(&db, &2.5).await.unwrap());
    assert!(
        !Member::maybe_exists_by_email(&db, "bob@example.com")
            .await
            .unwrap()
    );

    // insert_many adds every model's values.
    let many: Vec<Member> = (0..50)
        .map(|i| member(&format!("n{i}"), &format!("n{i}@x")))
        .collect();
    Member::insert_many(&db, &many).await.unwrap();
    for m in &many {
        assert!(Member::maybe_exists_by_email(&db, &m.email).await.unwrap());
    }

    // A save under a lock adds the new value.
    let mut guard = Member::lock(&db, "m0", LockOptions::default())
        .await
        .unwrap();
    guard.email = "changed@example.com".into();
    guard.save().await.unwrap();
    guard.release().await.unwrap();
    assert!(
        Member::maybe_exists_by_email(&db, "changed@example.com")
            .await
            .unwrap()
    );

    // A Bloom filter never forgets: delete removes nothing from it.
    assert!(many[0].delete(&db).await.unwrap());
    assert!(
        Member::maybe_exists_by_email(&db, &many[0].email)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_save_that_fails_never_leaves_a_false_negative() {
    let db = db().await;
    let mut raw = common::raw().await;
    strict(&db).await;
    // A model that cannot be encoded fails before anything is sent.
    let mut bad = member("nan", "nan@x");
    bad.score = f64::NAN;
    assert!(matches!(bad.save(&db).await, Err(Error::NonFinite { .. })));
    assert!(!Member::maybe_exists_by_email(&db, "nan@x").await.unwrap());
    // A save refused by the server (the key holds a string) comes after the filter's step:
    // the filter may say "maybe" for a value that is not stored (a false positive, which a
    // Bloom filter allows), never "no" for one that is.
    let taken = member("taken", "taken@x");
    let key = db.key(&Member::key_of("taken"));
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("plain")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(matches!(
        taken.save(&db).await,
        Err(Error::TypeMismatch { .. })
    ));
    assert!(Member::maybe_exists_by_email(&db, "taken@x").await.unwrap());
    // A filter's key holding something else fails the save before the document is written.
    let filter_key = format!("{}_rapyer:bloom-field:Member:mail", db.namespace());
    let _: () = redis::cmd("DEL")
        .arg(&filter_key)
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&filter_key)
        .arg("x")
        .query_async(&mut raw)
        .await
        .unwrap();
    let fresh = member("fresh", "fresh@x");
    assert!(matches!(
        fresh.save(&db).await,
        Err(Error::TypeMismatch { .. })
    ));
    assert!(!Member::exists(&db, "fresh").await.unwrap());
}

#[tokio::test]
async fn on_a_cluster_the_filter_is_added_to_in_its_own_slot_before_each_save() {
    rapyer_testkit::cluster();
    for url in rapyer_testkit::cluster().urls() {
        rapyer_testkit::require_bloom_at(url).unwrap();
    }
    let db = common::cluster_db().await;
    let filter = BloomFilter::<str>::of_field::<Member>(&db, "mail");
    filter.reserve(1e-9, 10_000).await.unwrap();
    let many: Vec<Member> = (0..60)
        .map(|i| member(&format!("c{i}"), &format!("c{i}@x")))
        .collect();
    let doc_slots: std::collections::HashSet<u16> = many
        .iter()
        .map(|m| common::cluster_slot(&db.key(&m.key())))
        .collect();
    assert!(doc_slots.len() > 10);
    let filter_slot = common::cluster_slot(filter.key());
    // The filter lives in one slot, the documents in many: no one script could write both.
    assert!(doc_slots.iter().any(|&s| s != filter_slot));
    Member::insert_many(&db, &many[..30]).await.unwrap();
    for m in &many[30..] {
        m.save(&db).await.unwrap();
    }
    for m in &many {
        assert!(
            Member::maybe_exists_by_email(&db, &m.email).await.unwrap(),
            "{}",
            m.id
        );
    }
    assert!(!Member::maybe_exists_by_email(&db, "never@x").await.unwrap());
}
