//! Models with CRUD and bulk operations, against the real server: every result is checked
//! by reading the server back with plain commands.
//!
//! The shared `User` model holds date-times, so these tests need the `chrono` feature.
#![cfg(feature = "chrono")]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use rapyer::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use common::{assert_non_finite, cluster_slot, db, json_get, pttl, raw, stored};

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
    name: String,
    age: i64,
    score: f64,
    active: bool,
    tags: Vec<String>,
    prefs: HashMap<String, String>,
    address: Address,
    history: Vec<Address>,
    places: BTreeMap<String, Address>,
    avatar: Bytes,
    nick: Option<String>,
    born: DateTime<FixedOffset>,
    seen: DateTime<Utc>,
    big: u64,
    small: i64,
    small32: i32,
    tiny: u8,
}

fn user(id: &str) -> User {
    User {
        id: id.into(),
        name: "Ann".into(),
        age: 41,
        score: 2.5,
        active: true,
        tags: vec!["a".into(), "b".into()],
        prefs: HashMap::from([("theme".to_string(), "dark".to_string())]),
        address: Address {
            city: "Paris".into(),
            zip: 75001,
        },
        history: vec![
            Address {
                city: "Lyon".into(),
                zip: 69001,
            },
            Address {
                city: "Nice".into(),
                zip: 6000,
            },
        ],
        places: BTreeMap::from([(
            "home".to_string(),
            Address {
                city: "Oslo".into(),
                zip: 150,
            },
        )]),
        avatar: Bytes::from(vec![0, 1, 2, 254, 255]),
        nick: None,
        born: FixedOffset::east_opt(5 * 3600 + 30 * 60)
            .expect("offset")
            .with_ymd_and_hms(1984, 2, 29, 23, 59, 58)
            .single()
            .expect("date")
            + chrono::Duration::nanoseconds(123_456_789),
        seen: Utc
            .with_ymd_and_hms(2026, 11, 21, 8, 0, 0)
            .single()
            .expect("date")
            + chrono::Duration::microseconds(1),
        big: u64::MAX,
        small: i64::MIN,
        small32: i32::MIN,
        tiny: u8::MAX,
    }
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Session", ttl = 100)]
struct Session {
    #[rapyer(key)]
    id: Id,
    user: String,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Visit", ttl = 60, refresh_on_read)]
struct Visit {
    #[rapyer(key)]
    id: String,
    page: String,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Counter {
    #[rapyer(key)]
    n: u64,
    value: f64,
}

#[tokio::test]
async fn key_is_prefix_and_id_and_db_adds_namespace() {
    let db = db().await;
    let u = user("u1");
    assert_eq!(u.key(), "User:u1");
    assert_eq!(User::key_of("u1"), "User:u1");
    assert_eq!(db.key(&u.key()), format!("{}User:u1", db.namespace()));
    let c = Counter { n: 7, value: 0.0 };
    assert_eq!(c.key(), "Counter:7");
}

#[tokio::test]
async fn every_field_type_round_trips_as_plain_json() {
    let db = db().await;
    let mut raw = raw().await;
    let u = user("u1");
    u.save(&db).await.expect("save");

    let loaded = User::get(&db, "u1").await.expect("get");
    assert_eq!(loaded, u);

    // What another language reads: plain JSON, no opaque blobs.
    let doc = stored(&mut raw, &db.key("User:u1")).await;
    assert_eq!(doc["avatar"], json!("AAEC/v8="));
    assert_eq!(doc["born"], json!("1984-02-29T23:59:58.123456789+05:30"));
    assert_eq!(doc["seen"], json!("2026-11-21T08:00:00.000001Z"));
    assert_eq!(doc["nick"], json!(null));
    assert_eq!(doc["places"]["home"]["zip"], json!(150));
    assert_eq!(doc["history"][1]["city"], json!("Nice"));
    // Integers keep every digit: the stored text is exact.
    let text = json_get(&mut raw, &db.key("User:u1")).await.expect("doc");
    assert!(text.contains("\"big\":18446744073709551615"), "{text}");
    assert!(text.contains("\"small\":-9223372036854775808"), "{text}");
}

#[tokio::test]
async fn integer_extremes_and_float_edges_survive() {
    let db = db().await;
    let mut u = user("edges");
    for (big, small) in [
        (0, i64::MAX),
        (u64::MAX, i64::MIN),
        (1 << 53, -(1 << 53) - 1),
    ] {
        u.big = big;
        u.small = small;
        u.save(&db).await.expect("save");
        let back = User::get(&db, "edges").await.expect("get");
        assert_eq!((back.big, back.small), (big, small));
    }
    for score in [
        f64::MIN,
        f64::MAX,
        f64::MIN_POSITIVE,
        f64::EPSILON,
        5e-324,
        0.1,
        1e21,
        -2.5e-300,
        0.0,
        1.0 / 3.0,
        123_456.789_012_345,
    ] {
        u.score = score;
        u.save(&db).await.expect("save");
        let back = User::get(&db, "edges").await.expect("get");
        assert_eq!(back.score.to_bits(), score.to_bits(), "{score:e}");
    }
    // RedisJSON 2.8 re-parses numbers without correct rounding: values needing 16-17
    // significant digits at large or tiny magnitudes (e.g. -1.5e-300) can come back one
    // ULP off. Values of up to 15 significant digits between 1e-5 and 1e15 are exact.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..200 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mantissa = (state % 900_000_000_000_000 + 100_000_000_000_000) as f64;
        let exponent = (state >> 50) as i32 % 20 - 19;
        let score: f64 = format!("{mantissa:.0}e{exponent}").parse().expect("float");
        u.score = score;
        u.save(&db).await.expect("save");
        let back = User::get(&db, "edges").await.expect("get");
        assert_eq!(back.score.to_bits(), score.to_bits(), "{score:e}");
    }
    u.score = -0.0;
    u.save(&db).await.expect("save");
    let back = User::get(&db, "edges").await.expect("get");
    assert!(back.score == 0.0 && back.score.is_sign_negative());
}

const HOSTILE: &[&str] = &[
    "",
    "'",
    "\"",
    "\\",
    "]]",
    "[['x']]",
    "a'] or 1==1 --",
    "line\nbreak\r\ttab",
    "emoji 🦀🚀 and 中文",
    "{\"json\": [1, 2]}",
    "$..*",
    "@field:{tag}|x",
    "\u{0}nul",
    "both ' and \" quotes",
    "redis.call('FLUSHALL')",
];

#[tokio::test]
async fn hostile_strings_round_trip_in_values_keys_and_ids() {
    let db = db().await;
    let mut raw = raw().await;
    for (i, s) in HOSTILE.iter().enumerate() {
        let id = format!("{i}:{s}");
        let mut u = user(&id);
        u.name = s.to_string();
        u.tags = vec![s.to_string(), format!("{s}{s}")];
        u.prefs = HashMap::from([(s.to_string(), s.to_string())]);
        u.nick = Some(s.to_string());
        u.save(&db).await.expect("save");
        let back = User::get(&db, &id).await.expect("get");
        assert_eq!(back, u, "value {s:?}");
        let doc = stored(&mut raw, &db.key(&u.key())).await;
        assert_eq!(doc["name"], json!(s));
        assert_eq!(doc["prefs"][*s], json!(s));
        assert!(User::exists(&db, &id).await.expect("exists"));
    }
    let all = User::all(&db).await.expect("all");
    assert_eq!(all.len(), HOSTILE.len());
}

#[tokio::test]
async fn missing_models_are_not_found_and_nothing_is_created() {
    let db = db().await;
    let mut raw = raw().await;
    let err = User::get(&db, "ghost").await.expect_err("missing");
    match &err {
        Error::NotFound { key } => assert_eq!(key, &db.key("User:ghost")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(err.key(), Some(db.key("User:ghost").as_str()));
    assert!(!User::exists(&db, "ghost").await.expect("exists"));
    assert!(!User::delete_by_id(&db, "ghost").await.expect("delete"));
    let mut u = user("ghost");
    assert!(matches!(u.refresh(&db).await, Err(Error::NotFound { .. })));
    assert!(matches!(u.ttl(&db).await, Err(Error::NotFound { .. })));
    assert!(matches!(
        u.set_ttl(&db, Duration::from_secs(5)).await,
        Err(Error::NotFound { .. })
    ));
    let exists: bool = redis::cmd("EXISTS")
        .arg(db.key("User:ghost"))
        .query_async(&mut raw)
        .await
        .expect("EXISTS");
    assert!(!exists);
}

#[tokio::test]
async fn wrong_shaped_documents_are_deserialize_errors_naming_key_and_path() {
    let db = db().await;
    let mut raw = raw().await;
    let key = db.key("User:bad");
    let mut doc = serde_json::to_value(user("bad")).expect("json");
    doc["address"]["zip"] = json!("not a number");
    let _: () = redis::cmd("JSON.SET")
        .arg(&key)
        .arg("$")
        .arg(doc.to_string())
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");
    let before = json_get(&mut raw, &key).await;

    for result in [
        User::get(&db, "bad").await.map(|_| ()),
        User::get_many(&db, ["bad"]).await.map(|_| ()),
        User::all(&db).await.map(|_| ()),
    ] {
        match result {
            Err(Error::Deserialize { key: k, path, .. }) => {
                assert_eq!(k, key);
                assert_eq!(path, "address.zip");
            }
            other => panic!("expected Deserialize, got {other:?}"),
        }
    }
    let mut u = user("bad");
    match u.refresh(&db).await {
        Err(Error::Deserialize { path, .. }) => assert_eq!(path, "address.zip"),
        other => panic!("expected Deserialize, got {other:?}"),
    }
    assert_eq!(
        u,
        user("bad"),
        "a failed refresh leaves the model as it was"
    );
    assert_eq!(
        json_get(&mut raw, &key).await,
        before,
        "reads change nothing"
    );
}

#[tokio::test]
async fn non_json_keys_are_type_mismatches_and_stay_untouched() {
    let db = db().await;
    let mut raw = raw().await;
    let key = db.key("User:plain");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("just a string")
        .query_async(&mut raw)
        .await
        .expect("SET");
    let list_key = db.key("User:list");
    let _: () = redis::cmd("RPUSH")
        .arg(&list_key)
        .arg("x")
        .query_async(&mut raw)
        .await
        .expect("RPUSH");

    let check = |result: Result<()>, found: &str, key: &str| match result {
        Err(Error::TypeMismatch {
            key: k,
            path,
            found: f,
            ..
        }) => {
            assert_eq!(k, key);
            assert_eq!(path, "$");
            assert_eq!(f, found);
        }
        other => panic!("expected TypeMismatch, got {other:?}"),
    };
    check(User::get(&db, "plain").await.map(|_| ()), "string", &key);
    check(User::get(&db, "list").await.map(|_| ()), "list", &list_key);
    check(
        User::get_many(&db, ["nobody", "plain"]).await.map(|_| ()),
        "string",
        &key,
    );
    check(User::exists(&db, "plain").await.map(|_| ()), "string", &key);
    check(user("plain").save(&db).await, "string", &key);
    check(
        User::insert_many(&db, &[user("fine"), user("plain")]).await,
        "string",
        &key,
    );

    let value: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .expect("GET");
    assert_eq!(value, "just a string");
    assert_eq!(json_get(&mut raw, &db.key("User:fine")).await, None);
    // all() only reads JSON documents under the prefix.
    assert!(User::all(&db).await.expect("all").is_empty());
}

#[tokio::test]
async fn get_many_keeps_order_and_reports_missing_as_none() {
    let db = db().await;
    for id in ["a", "b", "c"] {
        user(id).save(&db).await.expect("save");
    }
    let got = User::get_many(&db, ["c", "zz", "a", "a"])
        .await
        .expect("get_many");
    let ids: Vec<Option<String>> = got.into_iter().map(|u| u.map(|u| u.id)).collect();
    assert_eq!(
        ids,
        vec![Some("c".into()), None, Some("a".into()), Some("a".into())]
    );
    let none: Vec<Option<User>> = User::get_many(&db, Vec::<String>::new())
        .await
        .expect("empty");
    assert!(none.is_empty());
}

#[tokio::test]
async fn delete_refresh_and_delete_many() {
    let db = db().await;
    let mut raw = raw().await;
    let users: Vec<User> = (0..5).map(|i| user(&format!("d{i}"))).collect();
    User::insert_many(&db, &users).await.expect("insert_many");

    // refresh picks up a change made by someone else.
    let _: () = redis::cmd("JSON.SET")
        .arg(db.key("User:d0"))
        .arg("$.name")
        .arg("\"Changed\"")
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");
    let mut d0 = users[0].clone();
    d0.refresh(&db).await.expect("refresh");
    assert_eq!(d0.name, "Changed");

    assert!(d0.delete(&db).await.expect("delete"));
    assert!(!d0.delete(&db).await.expect("second delete"));
    assert!(User::delete_by_id(&db, "d1").await.expect("delete_by_id"));
    assert_eq!(
        User::delete_many(&db, ["d2", "d3", "nope"])
            .await
            .expect("delete_many"),
        2
    );
    assert_eq!(
        User::delete_many(&db, Vec::<&str>::new())
            .await
            .expect("empty"),
        0
    );
    for (id, present) in [
        ("d0", false),
        ("d1", false),
        ("d2", false),
        ("d3", false),
        ("d4", true),
    ] {
        let n: i64 = redis::cmd("EXISTS")
            .arg(db.key(&format!("User:{id}")))
            .query_async(&mut raw)
            .await
            .expect("EXISTS");
        assert_eq!(n == 1, present, "{id}");
    }
}

#[tokio::test]
async fn insert_many_is_all_or_nothing() {
    let db = db().await;
    let mut raw = raw().await;
    let mut existing = user("keep");
    existing.name = "Original".into();
    existing.save(&db).await.expect("save");
    let before = json_get(&mut raw, &db.key("User:keep")).await;
    let _: () = redis::cmd("HSET")
        .arg(db.key("User:hash"))
        .arg("f")
        .arg("v")
        .query_async(&mut raw)
        .await
        .expect("HSET");

    let mut batch: Vec<User> = (0..50).map(|i| user(&format!("n{i}"))).collect();
    batch.push(user("keep"));
    batch.push(user("hash")); // the last one fails: nothing before it may be written
    let err = User::insert_many(&db, &batch).await.expect_err("must fail");
    assert!(
        matches!(&err, Error::TypeMismatch { key, found, .. } if key == &db.key("User:hash") && found == "hash"),
        "{err:?}"
    );
    assert_eq!(json_get(&mut raw, &db.key("User:keep")).await, before);
    for i in 0..50 {
        assert_eq!(
            json_get(&mut raw, &db.key(&format!("User:n{i}"))).await,
            None
        );
    }

    batch.pop();
    User::insert_many(&db, &batch).await.expect("insert_many");
    assert_eq!(User::all(&db).await.expect("all").len(), 51);
    assert_eq!(User::get(&db, "keep").await.expect("get").name, "Ann");
    User::insert_many(&db, &[])
        .await
        .expect("empty insert is a no-op");
}

#[tokio::test]
async fn insert_many_with_ttl_is_all_or_nothing() {
    let db = db().await;
    let mut raw = raw().await;
    let sessions: Vec<Session> = (0..20)
        .map(|i| Session {
            id: Id::default(),
            user: format!("u{i}"),
        })
        .collect();
    let blocker = db.key(&sessions[10].key());
    let _: () = redis::cmd("SET")
        .arg(&blocker)
        .arg("taken")
        .query_async(&mut raw)
        .await
        .expect("SET");
    let err = Session::insert_many(&db, &sessions)
        .await
        .expect_err("must fail");
    assert!(
        matches!(&err, Error::TypeMismatch { key, found, .. } if key == &blocker && found == "string"),
        "{err:?}"
    );
    for s in &sessions {
        let key = db.key(&s.key());
        if key != blocker {
            assert_eq!(json_get(&mut raw, &key).await, None, "{key} was written");
        }
    }
    let left = pttl(&mut raw, &blocker).await;
    assert_eq!(left, -1, "the foreign key's expiry is untouched");
}

#[tokio::test]
async fn model_ttl_is_set_by_every_save() {
    let db = db().await;
    let mut raw = raw().await;
    let s = Session {
        id: Id::default(),
        user: "ann".into(),
    };
    s.save(&db).await.expect("save");
    let key = db.key(&s.key());
    let left = pttl(&mut raw, &key).await;
    assert!(left > 90_000 && left <= 100_000, "{left}");
    let ttl = s.ttl(&db).await.expect("ttl").expect("expires");
    assert!(ttl <= Duration::from_secs(100) && ttl > Duration::from_secs(90));

    // A later save re-arms the expiry.
    let _: () = redis::cmd("PEXPIRE")
        .arg(&key)
        .arg(5_000)
        .query_async(&mut raw)
        .await
        .expect("PEXPIRE");
    s.save(&db).await.expect("save again");
    let left = pttl(&mut raw, &key).await;
    assert!(left > 90_000, "{left}");

    let many: Vec<Session> = (0..3)
        .map(|_| Session {
            id: Id::default(),
            user: "bob".into(),
        })
        .collect();
    Session::insert_many(&db, &many).await.expect("insert_many");
    for m in &many {
        assert_eq!(Session::get(&db, m.id).await.expect("get"), *m);
        let left = pttl(&mut raw, &db.key(&m.key())).await;
        assert!(left > 90_000, "{left}");
    }
}

/// Shortens the expiry of `key` to 5 s behind rapyer's back.
async fn shorten(raw: &mut redis::aio::MultiplexedConnection, key: &str) {
    let set: i64 = redis::cmd("PEXPIRE")
        .arg(key)
        .arg(5_000)
        .query_async(raw)
        .await
        .expect("PEXPIRE");
    assert_eq!(set, 1, "{key} exists");
}

#[tokio::test]
async fn refresh_on_read_rearms_the_expiry_with_every_read() {
    let db = db().await;
    let mut raw = raw().await;
    let visits: Vec<Visit> = (0..3)
        .map(|i| Visit {
            id: format!("v{i}"),
            page: format!("/page/{i}"),
        })
        .collect();
    Visit::insert_many(&db, &visits).await.expect("insert");
    let key = |i: usize| db.key(&visits[i].key());
    let rearmed = |left: i64| left > 55_000 && left <= 60_000;

    shorten(&mut raw, &key(0)).await;
    assert_eq!(Visit::get(&db, "v0").await.expect("get"), visits[0]);
    assert!(rearmed(pttl(&mut raw, &key(0)).await), "get re-arms");

    for i in 0..3 {
        shorten(&mut raw, &key(i)).await;
    }
    let many = Visit::get_many(&db, ["v0", "missing", "v1"])
        .await
        .expect("get_many");
    assert_eq!(
        many,
        vec![Some(visits[0].clone()), None, Some(visits[1].clone())]
    );
    assert!(rearmed(pttl(&mut raw, &key(0)).await), "get_many re-arms");
    assert!(rearmed(pttl(&mut raw, &key(1)).await), "get_many re-arms");
    assert!(
        pttl(&mut raw, &key(2)).await <= 5_000,
        "an unread model is untouched"
    );

    let mut local = visits[2].clone();
    local.refresh(&db).await.expect("refresh");
    assert!(rearmed(pttl(&mut raw, &key(2)).await), "refresh re-arms");

    for i in 0..3 {
        shorten(&mut raw, &key(i)).await;
    }
    assert_eq!(Visit::all(&db).await.expect("all").len(), 3);
    for i in 0..3 {
        assert!(rearmed(pttl(&mut raw, &key(i)).await), "all re-arms {i}");
    }

    shorten(&mut raw, &key(0)).await;
    let guard = Visit::lock(&db, "v0", LockOptions::default())
        .await
        .expect("lock");
    assert!(rearmed(pttl(&mut raw, &key(0)).await), "lock re-arms");
    guard.release().await.expect("release");

    // A model without the option leaves the expiry alone on reads.
    let session = Session {
        id: Id::default(),
        user: "ann".into(),
    };
    session.save(&db).await.expect("save");
    let session_key = db.key(&session.key());
    shorten(&mut raw, &session_key).await;
    Session::get(&db, session.id).await.expect("get");
    assert!(pttl(&mut raw, &session_key).await <= 5_000);

    // Missing and foreign keys: the same errors as without the option, nothing touched.
    assert!(matches!(
        Visit::get(&db, "nobody").await,
        Err(Error::NotFound { .. })
    ));
    let foreign = db.key("Visit:text");
    let _: () = redis::cmd("SET")
        .arg(&foreign)
        .arg("plain")
        .query_async(&mut raw)
        .await
        .expect("SET");
    match Visit::get(&db, "text").await {
        Err(Error::TypeMismatch { key, found, .. }) => {
            assert_eq!((key.as_str(), found.as_str()), (foreign.as_str(), "string"));
        }
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    assert!(matches!(
        Visit::get_many(&db, ["v0", "text"]).await,
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(
        pttl(&mut raw, &foreign).await,
        -1,
        "the foreign key got no expiry"
    );
}

#[tokio::test]
async fn set_ttl_and_ttl_on_a_model_without_default_expiry() {
    let db = db().await;
    let u = user("t1");
    u.save(&db).await.expect("save");
    assert_eq!(u.ttl(&db).await.expect("ttl"), None);
    u.set_ttl(&db, Duration::from_millis(300))
        .await
        .expect("set_ttl");
    let left = u.ttl(&db).await.expect("ttl").expect("expires");
    assert!(left <= Duration::from_millis(300));
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(!User::exists(&db, "t1").await.expect("exists"));
}

#[tokio::test]
async fn namespaces_isolate_models() {
    let base = db().await;
    let a = base
        .with_namespace(format!("{}a/", base.namespace()))
        .expect("namespace a");
    let b = base
        .with_namespace(format!("{}b/", base.namespace()))
        .expect("namespace b");
    let mut ua = user("same");
    ua.name = "in a".into();
    let mut ub = user("same");
    ub.name = "in b".into();
    ua.save(&a).await.expect("save a");
    ub.save(&b).await.expect("save b");
    assert_eq!(User::get(&a, "same").await.expect("a").name, "in a");
    assert_eq!(User::get(&b, "same").await.expect("b").name, "in b");
    assert_eq!(User::all(&a).await.expect("all a"), vec![ua]);
    assert!(User::delete_by_id(&a, "same").await.expect("delete"));
    assert!(User::exists(&b, "same").await.expect("b survives"));
    assert!(User::all(&base).await.expect("base").is_empty());
}

#[tokio::test]
async fn all_returns_every_model_past_ten_thousand() {
    let db = db().await;
    let total = 12_000;
    let batch: Vec<Counter> = (0..total)
        .map(|n| Counter {
            n,
            value: n as f64 / 2.0,
        })
        .collect();
    for chunk in batch.chunks(2_000) {
        Counter::insert_many(&db, chunk).await.expect("insert_many");
    }
    let all = Counter::all(&db).await.expect("all");
    assert_eq!(all.len(), total as usize);
    let ids: HashSet<u64> = all.iter().map(|c| c.n).collect();
    assert_eq!(ids, (0..total).collect::<HashSet<u64>>());
    assert!(all.iter().all(|c| c.value == c.n as f64 / 2.0));
}

#[tokio::test]
async fn generated_ids_are_fresh_and_addressable() {
    let db = db().await;
    let a = Session {
        id: Id::default(),
        user: "a".into(),
    };
    let b = Session {
        id: Id::default(),
        user: "b".into(),
    };
    assert_ne!(a.id, b.id);
    a.save(&db).await.expect("save");
    assert_eq!(Session::get(&db, a.id).await.expect("by Id"), a);
    assert_eq!(
        Session::get(&db, a.id.to_string()).await.expect("by text"),
        a
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn futures_are_send_and_handles_are_shared_across_tasks() {
    let db = db().await;
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let c = Counter { n: i, value: 1.0 };
            c.save(&db).await?;
            Counter::get(&db, i).await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let c = task.await.expect("join").expect("round trip");
        assert_eq!(c.n, i as u64);
    }
    assert_eq!(Counter::all(&db).await.expect("all").len(), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_cache_flushes_never_surface_or_split_a_save() {
    let db = db().await;
    let mut raw = raw().await;
    let flusher = common::Flusher::start().await;
    let sessions: Vec<Session> = (0..600)
        .map(|i| Session {
            id: Id::default(),
            user: format!("u{i}"),
        })
        .collect();
    for (i, s) in sessions.iter().enumerate() {
        if i.is_multiple_of(3) {
            Session::insert_many(&db, std::slice::from_ref(s))
                .await
                .expect("insert_many under flushes");
        } else {
            s.save(&db).await.expect("save under flushes");
        }
    }
    let flushes = flusher.stop().await;
    assert!(flushes > 10, "the flusher ran {flushes} times");
    for s in &sessions {
        let key = db.key(&s.key());
        assert!(json_get(&mut raw, &key).await.is_some(), "{key} missing");
        let left = pttl(&mut raw, &key).await;
        assert!(left > 0, "{key} saved without its expiry");
    }
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Wallet", hash_tag = "bank")]
struct Wallet {
    #[rapyer(key)]
    id: String,
    cents: i64,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Ledger", hash_tag = "bank")]
struct Ledger {
    #[rapyer(key)]
    id: u32,
    total: i64,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Profile")]
struct Profile {
    #[rapyer(key, hash_tag)]
    user: String,
    bio: String,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Cart")]
struct Cart {
    #[rapyer(key, hash_tag)]
    user: String,
    items: Vec<String>,
}

#[tokio::test]
async fn hash_tags_put_related_models_in_one_slot() {
    let db = db().await;
    let mut raw = raw().await;
    let wallet = Wallet {
        id: "w1".into(),
        cents: 500,
    };
    let ledger = Ledger { id: 7, total: 500 };
    wallet.save(&db).await.expect("save");
    ledger.save(&db).await.expect("save");
    assert_eq!(wallet.key(), "Wallet:{bank}:w1");
    assert_eq!(Ledger::key_of(7), "Ledger:{bank}:7");
    assert_eq!(
        cluster_slot(&db.key(&wallet.key())),
        cluster_slot(&db.key(&ledger.key()))
    );
    assert!(
        json_get(&mut raw, &db.key("Wallet:{bank}:w1"))
            .await
            .is_some()
    );

    let profile = Profile {
        user: "ann".into(),
        bio: "hi".into(),
    };
    let cart = Cart {
        user: "ann".into(),
        items: vec!["tea".into()],
    };
    profile.save(&db).await.expect("save");
    cart.save(&db).await.expect("save");
    assert_eq!(profile.key(), "Profile:{ann}");
    assert_eq!(
        cluster_slot(&db.key(&profile.key())),
        cluster_slot(&db.key(&cart.key()))
    );
    // Everything keyed by id keeps working with the tag in the key.
    assert_eq!(Wallet::get(&db, "w1").await.expect("get"), wallet);
    assert_eq!(Profile::get(&db, "ann").await.expect("get"), profile);
    assert_eq!(Cart::all(&db).await.expect("all"), vec![cart.clone()]);
    assert!(Cart::exists(&db, "ann").await.expect("exists"));
    let mut guard = Wallet::lock(&db, "w1", LockOptions::default())
        .await
        .expect("lock");
    assert_eq!(
        cluster_slot(guard.lock_key()),
        cluster_slot(&db.key(&wallet.key()))
    );
    guard.cents += 1;
    guard.save().await.expect("save");
    guard.release().await.expect("release");
    assert_eq!(Wallet::get(&db, "w1").await.expect("get").cents, 501);
    let mut w = wallet.clone();
    assert_eq!(w.cents().incr(&db, 9).await.expect("incr"), 510);
    assert_eq!(Wallet::delete_many(&db, ["w1"]).await.expect("delete"), 1);
    assert!(Cart::delete_by_id(&db, "ann").await.expect("delete"));
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Reading")]
struct Reading {
    #[rapyer(key)]
    id: String,
    value: f64,
    ratio: f32,
    samples: Vec<f64>,
    by_name: BTreeMap<String, Option<f64>>,
    place: Option<Address>,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Probe", ttl = 100)]
struct Probe {
    #[rapyer(key)]
    id: String,
    value: f64,
}

fn reading(id: &str) -> Reading {
    Reading {
        id: id.into(),
        value: 1.5,
        ratio: 0.5,
        samples: vec![1.0, 2.0, 3.0],
        by_name: BTreeMap::from([("none".to_string(), None), ("x y".to_string(), Some(1.0))]),
        place: None,
    }
}

#[tokio::test]
async fn non_finite_floats_are_refused_by_every_save_and_nothing_is_written() {
    let db = db().await;
    let mut raw = raw().await;
    let stored_one = reading("r1");
    stored_one.save(&db).await.expect("save");
    Probe {
        id: "p1".into(),
        value: 1.0,
    }
    .save(&db)
    .await
    .expect("save");
    let key = db.key(&Reading::key_of("r1"));
    let probe_key = db.key(&Probe::key_of("p1"));
    let before = json_get(&mut raw, &key).await;
    let probe_before = json_get(&mut raw, &probe_key).await;
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let variants: Vec<(&str, Reading)> = vec![
            (
                "$.value",
                Reading {
                    value: bad,
                    ..reading("r1")
                },
            ),
            (
                "$.ratio",
                Reading {
                    ratio: bad as f32,
                    ..reading("r1")
                },
            ),
            ("$.samples[2]", {
                let mut r = reading("r1");
                r.samples[2] = bad;
                r
            }),
            ("$.by_name[\"x y\"]", {
                let mut r = reading("r1");
                r.by_name.insert("x y".into(), Some(bad));
                r
            }),
        ];
        for (path, model) in variants {
            assert_non_finite("save", model.save(&db).await, &key, path);
            let fresh = reading("r2");
            assert_non_finite(
                "insert_many",
                Reading::insert_many(&db, &[fresh.clone(), model.clone()]).await,
                &key,
                path,
            );
            assert!(
                json_get(&mut raw, &db.key(&Reading::key_of("r2")))
                    .await
                    .is_none(),
                "insert_many wrote another model"
            );
        }
        let probe = Probe {
            id: "p1".into(),
            value: bad,
        };
        assert_non_finite(
            "save with ttl",
            probe.save(&db).await,
            &probe_key,
            "$.value",
        );
        assert_non_finite(
            "insert_many with ttl",
            Probe::insert_many(&db, std::slice::from_ref(&probe)).await,
            &probe_key,
            "$.value",
        );
        let mut guard = Reading::lock(&db, "r1", LockOptions::default())
            .await
            .expect("lock");
        guard.samples.push(bad);
        assert_non_finite("lock save", guard.save().await, &key, "$.samples[3]");
        guard.release().await.expect("release");

        assert_eq!(
            json_get(&mut raw, &key).await,
            before,
            "{bad}: the document changed"
        );
        assert_eq!(json_get(&mut raw, &probe_key).await, probe_before);
        assert_eq!(Reading::get(&db, "r1").await.expect("readable"), stored_one);
        assert_eq!(Reading::all(&db).await.expect("all").len(), 1);
    }
    // Genuine nulls (None) are still written.
    let mut with_nulls = reading("r3");
    with_nulls.by_name.insert("n".into(), None);
    with_nulls
        .save(&db)
        .await
        .expect("a None is not a non-finite float");
    assert_eq!(Reading::get(&db, "r3").await.expect("get"), with_nulls);
}

/// Puts a key of each non-document Redis type at `User:<type>`, each with an absolute
/// expiry (so that "unchanged" can be compared exactly), and returns `(id, key, type)`.
async fn foreign_keys(
    db: &Db,
    raw: &mut redis::aio::MultiplexedConnection,
) -> Vec<(String, String, &'static str)> {
    foreign_keys_of::<User>(db, raw).await
}

/// [`foreign_keys`] at the keys of the model `M`.
async fn foreign_keys_of<M: AtomicModel>(
    db: &Db,
    raw: &mut redis::aio::MultiplexedConnection,
) -> Vec<(String, String, &'static str)> {
    let mut out = Vec::new();
    for kind in ["string", "hash", "list", "set", "zset", "stream"] {
        let id = format!("foreign-{kind}");
        let key = db.key(&M::key_of(&id));
        let mut cmd = match kind {
            "string" => redis::cmd("SET"),
            "hash" => redis::cmd("HSET"),
            "list" => redis::cmd("RPUSH"),
            "set" => redis::cmd("SADD"),
            "zset" => redis::cmd("ZADD"),
            _ => redis::cmd("XADD"),
        };
        cmd.arg(&key);
        match kind {
            "string" => cmd.arg("text"),
            "hash" => cmd.arg("f").arg("v"),
            "zset" => cmd.arg(1).arg("m"),
            "stream" => cmd.arg("*").arg("f").arg("v"),
            _ => cmd.arg("x"),
        };
        let _: redis::Value = cmd.query_async(raw).await.expect("write a foreign key");
        let _: () = redis::cmd("PEXPIREAT")
            .arg(&key)
            .arg(4_102_444_800_000_i64) // 2100-01-01
            .query_async(raw)
            .await
            .expect("PEXPIREAT");
        out.push((id, key, kind));
    }
    out
}

/// `DUMP key` and `PEXPIRETIME key`: the key's exact value and expiry.
async fn snapshot(raw: &mut redis::aio::MultiplexedConnection, key: &str) -> (Vec<u8>, i64) {
    let dump: Vec<u8> = redis::cmd("DUMP")
        .arg(key)
        .query_async(raw)
        .await
        .expect("DUMP");
    let at: i64 = redis::cmd("PEXPIRETIME")
        .arg(key)
        .query_async(raw)
        .await
        .expect("PEXPIRETIME");
    (dump, at)
}

fn assert_foreign<T: std::fmt::Debug>(op: &str, result: Result<T>, key: &str, kind: &str) {
    match result {
        Err(Error::TypeMismatch {
            key: k,
            path,
            found,
            ..
        }) => {
            assert_eq!(k, key, "{op} on a {kind}");
            assert_eq!(path, "$", "{op} on a {kind}");
            assert_eq!(found, kind, "{op} on a {kind}");
        }
        other => panic!("{op} on a {kind}: expected TypeMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn deletes_and_expiries_touch_only_documents_and_leave_every_other_type_as_it_was() {
    let db = db().await;
    let mut raw = raw().await;
    let foreign = foreign_keys(&db, &mut raw).await;
    user("doc").save(&db).await.expect("save");
    let doc_key = db.key(&User::key_of("doc"));
    let doc_before = json_get(&mut raw, &doc_key).await;
    for (id, key, kind) in &foreign {
        let before = snapshot(&mut raw, key).await;
        let u = user(id);
        assert_foreign("delete", u.delete(&db).await, key, kind);
        assert_foreign("delete_by_id", User::delete_by_id(&db, id).await, key, kind);
        // All or nothing: a foreign key anywhere refuses the whole call, the document and
        // the missing id included.
        assert_foreign(
            "delete_many",
            User::delete_many(&db, ["doc", "missing", id.as_str()]).await,
            key,
            kind,
        );
        assert_foreign(
            "set_ttl",
            u.set_ttl(&db, Duration::from_secs(5)).await,
            key,
            kind,
        );
        assert_foreign("ttl", u.ttl(&db).await, key, kind);
        assert_eq!(snapshot(&mut raw, key).await, before, "the {kind} changed");
        assert_eq!(json_get(&mut raw, &doc_key).await, doc_before);
        assert_eq!(
            pttl(&mut raw, &doc_key).await,
            -1,
            "the document got an expiry"
        );
    }
    // The first foreign key in the order asked is the one named.
    assert_foreign(
        "delete_many",
        User::delete_many(&db, ["doc", "foreign-set", "foreign-hash"]).await,
        &db.key(&User::key_of("foreign-set")),
        "set",
    );
    // A foreign key without an expiry gets none from set_ttl.
    let plain = db.key(&User::key_of("plain"));
    let _: () = redis::cmd("SET")
        .arg(&plain)
        .arg("v")
        .query_async(&mut raw)
        .await
        .expect("SET");
    assert_foreign(
        "set_ttl",
        user("plain").set_ttl(&db, Duration::from_secs(5)).await,
        &plain,
        "string",
    );
    assert_eq!(pttl(&mut raw, &plain).await, -1);

    // Documents behave as before.
    let d = user("doc");
    d.set_ttl(&db, Duration::from_secs(50))
        .await
        .expect("set_ttl");
    assert!(d.ttl(&db).await.expect("ttl").is_some());
    assert!(pttl(&mut raw, &doc_key).await > 0);
    user("doc2").save(&db).await.expect("save");
    assert_eq!(
        User::delete_many(&db, ["doc", "missing", "doc2", "doc"])
            .await
            .expect("delete_many"),
        2
    );
    assert_eq!(json_get(&mut raw, &doc_key).await, None);
    for (_, key, kind) in &foreign {
        let exists: bool = redis::cmd("EXISTS")
            .arg(key)
            .query_async(&mut raw)
            .await
            .expect("EXISTS");
        assert!(exists, "the {kind} was deleted");
    }
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Wide")]
struct Wide {
    #[rapyer(key)]
    id: String,
    // An i128 needs no attribute; `#[rapyer(value)]` works the same.
    signed: i128,
    #[rapyer(value)]
    unsigned: u128,
    #[rapyer(value)]
    many: Vec<i128>,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "WideTtl", ttl = 100)]
struct WideTtl {
    #[rapyer(key)]
    id: String,
    #[rapyer(value)]
    unsigned: u128,
}

fn wide(id: &str) -> Wide {
    Wide {
        id: id.into(),
        signed: i128::from(i64::MIN),
        unsigned: u128::from(u64::MAX),
        many: vec![0, i128::from(u64::MAX)],
    }
}

fn assert_too_wide(op: &str, result: Result<()>, key: &str, path: &str, kind: &str) {
    let err = result.expect_err(op);
    let inner = match &err {
        Error::Block { source, .. } => source.as_ref(),
        other => other,
    };
    match inner {
        Error::Overflow {
            key: k,
            path: p,
            kind: t,
        } => {
            assert_eq!((k.as_str(), p.as_str(), *t), (key, path, kind), "{op}");
        }
        other => panic!("{op}: expected Overflow, got {other:?}"),
    }
}

#[tokio::test]
async fn integers_beyond_what_a_document_holds_exactly_are_refused_before_anything_is_written() {
    let db = db().await;
    let mut raw = raw().await;
    // The edges RedisJSON holds exactly are stored and read back exactly.
    let mut w = wide("w1");
    w.save(&db).await.expect("save");
    assert_eq!(Wide::get(&db, "w1").await.expect("get"), w);
    let key = db.key(&w.key());
    let before = json_get(&mut raw, &key).await;

    let too_wide: [(i128, u128); 3] = [
        (i128::from(i64::MIN) - 1, u128::from(u64::MAX) + 1),
        (i128::MAX, u128::MAX),
        (i128::MIN, u128::from(u64::MAX) * 10),
    ];
    for (signed, unsigned) in too_wide {
        let cases: Vec<(&str, &str, Wide)> = vec![
            (
                "$.signed",
                "i128",
                Wide {
                    signed,
                    ..wide("w1")
                },
            ),
            (
                "$.unsigned",
                "u128",
                Wide {
                    unsigned,
                    ..wide("w1")
                },
            ),
            (
                "$.many[1]",
                "i128",
                Wide {
                    many: vec![0, signed],
                    ..wide("w1")
                },
            ),
        ];
        for (path, kind, model) in cases {
            assert_too_wide("save", model.save(&db).await, &key, path, kind);
            assert_too_wide(
                "insert_many",
                Wide::insert_many(&db, &[wide("w2"), model.clone()]).await,
                &key,
                path,
                kind,
            );
            let mut guard = Wide::lock(&db, "w1", LockOptions::default())
                .await
                .expect("lock");
            *guard = model.clone();
            assert_too_wide("lock save", guard.save().await, &key, path, kind);
            guard.release().await.expect("release");
        }
        let ttl_model = WideTtl {
            id: "t1".into(),
            unsigned,
        };
        let ttl_key = db.key(&ttl_model.key());
        assert_too_wide(
            "save with ttl",
            ttl_model.save(&db).await,
            &ttl_key,
            "$.unsigned",
            "u128",
        );
        assert_too_wide(
            "insert_many with ttl",
            WideTtl::insert_many(&db, std::slice::from_ref(&ttl_model)).await,
            &ttl_key,
            "$.unsigned",
            "u128",
        );
        assert_eq!(json_get(&mut raw, &ttl_key).await, None);

        let local = w.clone();
        assert_too_wide(
            "handle set",
            w.signed().set(&db, signed).await,
            &key,
            "$.signed",
            "i128",
        );
        assert_too_wide(
            "handle set",
            w.unsigned().set(&db, unsigned).await,
            &key,
            "$.unsigned",
            "u128",
        );
        assert_too_wide(
            "handle set",
            w.many().set(&db, vec![signed]).await,
            &key,
            "$.many[0]",
            "i128",
        );
        assert_eq!(w, local, "a refused set changed the local model");
        assert_too_wide(
            "atomic set",
            w.atomic(&db, |p| p.unsigned().set(unsigned))
                .await
                .map(|_| ()),
            &key,
            "$.unsigned",
            "u128",
        );
        assert_eq!(w, local, "a refused atomic block changed the local model");
        let target = w.server_ref().signed();
        assert_too_wide(
            "ServerOps set",
            ServerOps::scope(&db, |ops| ops.set(target, signed))
                .await
                .map(|_| ()),
            &key,
            "$.signed",
            "i128",
        );

        assert_eq!(
            json_get(&mut raw, &key).await,
            before,
            "the document changed"
        );
        assert_eq!(json_get(&mut raw, &db.key(&Wide::key_of("w2"))).await, None);
        assert_eq!(Wide::get(&db, "w1").await.expect("still loads"), w);
    }
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Floats32")]
struct Floats32 {
    #[rapyer(key)]
    id: String,
    one: f32,
    many: Vec<f32>,
}

#[tokio::test]
async fn every_finite_f32_a_save_writes_loads_back_bit_for_bit() {
    let db = db().await;
    let mut rng = common::Rng(0x05ee_df32);
    let mut many = vec![
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        f32::from_bits(1), // the smallest subnormal
        f32::from_bits(0x007f_ffff),
        f32::EPSILON,
        0.1,
        -0.0,
        16_777_217.0,
    ];
    while many.len() < 5_000 {
        let x = f32::from_bits(rng.next() as u32);
        if x.is_finite() {
            many.push(x);
        }
    }
    for (i, chunk) in many.chunks(500).enumerate() {
        let model = Floats32 {
            id: format!("f{i}"),
            one: chunk[0],
            many: chunk.to_vec(),
        };
        model.save(&db).await.expect("save");
        Floats32::insert_many(&db, std::slice::from_ref(&model))
            .await
            .expect("insert_many");
        let back = Floats32::get(&db, &model.id).await.expect("loads");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.many), bits(&model.many), "chunk {i}");
    }
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Forever", ttl = 18446744073709551615)]
struct Forever {
    #[rapyer(key)]
    id: String,
    n: i64,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Millennia", ttl = 100000000000)]
struct Millennia {
    #[rapyer(key)]
    id: String,
    n: i64,
}

/// Milliseconds until a key expires: a key written with a "forever" expiry expires, but
/// not within a thousand years.
async fn expires_in_millennia(raw: &mut redis::aio::MultiplexedConnection, key: &str, what: &str) {
    let left = pttl(raw, key).await;
    assert!(left > 1000 * 365 * 86_400_000, "{what}: {left} ms left");
}

#[tokio::test]
async fn expiries_too_long_for_redis_are_capped_and_every_write_with_one_succeeds_whole() {
    let db = db().await;
    let mut raw = raw().await;
    let mut f = Forever {
        id: "f".into(),
        n: 1,
    };
    f.save(&db).await.expect("save");
    let key = db.key(&f.key());
    expires_in_millennia(&mut raw, &key, "save").await;
    Forever::insert_many(&db, std::slice::from_ref(&f))
        .await
        .expect("insert_many");
    assert_eq!(f.n().incr(&db, 1).await.expect("handle incr"), 2);
    assert_eq!(stored(&mut raw, &key).await["n"], 2);
    f.atomic(&db, |p| p.n().incr(1))
        .await
        .expect("atomic block");
    assert_eq!(stored(&mut raw, &key).await["n"], 3);
    f.set_ttl(&db, Duration::MAX).await.expect("set_ttl");
    expires_in_millennia(&mut raw, &key, "set_ttl").await;

    let mut m = Millennia {
        id: "m".into(),
        n: 1,
    };
    m.save(&db).await.expect("save");
    let key = db.key(&m.key());
    expires_in_millennia(&mut raw, &key, "save").await;
    assert_eq!(m.n().incr(&db, 1).await.expect("handle incr"), 2);
    m.atomic(&db, |p| p.n().incr(1))
        .await
        .expect("atomic block");
    assert_eq!(stored(&mut raw, &key).await["n"], 3);
    expires_in_millennia(&mut raw, &key, "field write").await;
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Deep")]
struct Deep {
    #[rapyer(key)]
    id: String,
    payload: serde_json::Value,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "DeepTtl", ttl = 100)]
struct DeepTtl {
    #[rapyer(key)]
    id: String,
    payload: serde_json::Value,
}

/// `levels` arrays, one inside the other.
fn nested(levels: usize) -> serde_json::Value {
    (0..levels).fold(json!(1), |inner, _| json!([inner]))
}

fn assert_too_deep(op: &str, result: Result<()>, key: &str, path: &str) {
    let err = result.expect_err(op);
    let inner = match &err {
        Error::Block { source, .. } => source.as_ref(),
        other => other,
    };
    match inner {
        Error::InvalidOp {
            key: k,
            path: p,
            message,
        } => {
            assert_eq!((k.as_str(), p.as_str()), (key, path), "{op}: {message}");
            assert!(message.contains("127"), "{op}: {message}");
        }
        other => panic!("{op}: expected InvalidOp, got {other:?}"),
    }
}

#[tokio::test]
async fn documents_deeper_than_redisjson_and_serde_json_allow_are_refused_before_anything_is_written()
 {
    let db = db().await;
    let mut raw = raw().await;
    // 127 levels (the root object and 126 arrays) is the deepest both accept.
    let mut d = Deep {
        id: "d".into(),
        payload: nested(126),
    };
    d.save(&db).await.expect("save at the limit");
    assert_eq!(Deep::get(&db, "d").await.expect("loads at the limit"), d);
    d.payload = nested(3);
    d.save(&db).await.expect("save");
    let key = db.key(&d.key());
    let before = json_get(&mut raw, &key).await;

    let too_deep = Deep {
        id: "d".into(),
        payload: nested(127),
    };
    assert_too_deep("save", too_deep.save(&db).await, &key, "$");
    assert_too_deep(
        "insert_many",
        Deep::insert_many(
            &db,
            &[
                Deep {
                    id: "e".into(),
                    payload: json!(1),
                },
                too_deep.clone(),
            ],
        )
        .await,
        &key,
        "$",
    );
    let first = DeepTtl {
        id: "a".into(),
        payload: json!(1),
    };
    let deep_ttl = DeepTtl {
        id: "b".into(),
        payload: nested(127),
    };
    assert_too_deep(
        "insert_many with ttl",
        DeepTtl::insert_many(&db, &[first.clone(), deep_ttl.clone()]).await,
        &db.key(&deep_ttl.key()),
        "$",
    );
    assert_eq!(
        json_get(&mut raw, &db.key(&first.key())).await,
        None,
        "insert_many with ttl wrote the documents before the refused one"
    );
    assert_too_deep(
        "handle set",
        d.payload().set(&db, nested(127)).await,
        &key,
        "$.payload",
    );
    assert_too_deep(
        "atomic set",
        d.atomic(&db, |p| p.payload().set(nested(127)))
            .await
            .map(|_| ()),
        &key,
        "$.payload",
    );
    let mut guard = Deep::lock(&db, "d", LockOptions::default())
        .await
        .expect("lock");
    guard.payload = nested(127);
    assert_too_deep("lock save", guard.save().await, &key, "$[\"payload\"]");
    guard.release().await.expect("release");
    assert_eq!(
        json_get(&mut raw, &key).await,
        before,
        "the document changed"
    );
    assert_eq!(json_get(&mut raw, &db.key("Deep:e")).await, None);
    assert_eq!(Deep::get(&db, "d").await.expect("loads"), d);
}

#[tokio::test]
async fn copying_a_model_onto_a_key_of_another_type_is_refused_and_leaves_it_as_it_was() {
    let db = db().await;
    let mut raw = raw().await;
    // Wallets share a hash tag, so a block may copy one onto another's id.
    let foreign = foreign_keys_of::<Wallet>(&db, &mut raw).await;
    let source = Wallet {
        id: "source".into(),
        cents: 5,
    };
    source.save(&db).await.expect("save");
    for (id, key, kind) in &foreign {
        let before = snapshot(&mut raw, key).await;
        let from = source.server_ref();
        let result = ServerOps::scope(&db, |ops| ops.copy_model(from, id)).await;
        match result {
            Err(Error::Block { source, .. }) => match *source {
                Error::TypeMismatch { key: k, .. } => assert_eq!(&k, key, "copy onto a {kind}"),
                other => panic!("copy onto a {kind}: expected TypeMismatch, got {other:?}"),
            },
            other => panic!("copy onto a {kind}: expected Block, got {other:?}"),
        }
        assert_eq!(snapshot(&mut raw, key).await, before, "the {kind} changed");
    }
    // Onto a missing id, the copy is made, with its own id.
    let from = source.server_ref();
    ServerOps::scope(&db, |ops| ops.copy_model(from, "copy"))
        .await
        .expect("copy");
    assert_eq!(
        Wallet::get(&db, "copy").await.expect("get"),
        Wallet {
            id: "copy".into(),
            cents: 5
        }
    );
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "BigKey", hash_tag = "big")]
struct BigKey {
    #[rapyer(key)]
    id: i128,
    n: i64,
}

#[tokio::test]
async fn an_id_wider_than_a_document_holds_is_refused_before_it_is_written() {
    let db = db().await;
    let mut raw = raw().await;
    let one = BigKey { id: 1, n: 5 };
    one.save(&db).await.expect("save");
    let wide = i128::MAX;
    let wide_key = db.key(&BigKey::key_of(wide));
    assert_too_wide(
        "save",
        BigKey { id: wide, n: 5 }.save(&db).await,
        &wide_key,
        "$.id",
        "i128",
    );
    let from = one.server_ref();
    let copied = ServerOps::scope(&db, |ops| ops.copy_model(from, wide)).await;
    match copied {
        Err(Error::Block { source, .. }) => match *source {
            Error::InvalidOp { key, .. } => assert_eq!(key, wide_key),
            other => panic!("copy: expected InvalidOp, got {other:?}"),
        },
        other => panic!("copy: expected Block, got {other:?}"),
    }
    let set = ServerOps::scope(&db, |ops| {
        ops.set(BigKey::server_ref_for(wide), BigKey { id: wide, n: 6 })
    })
    .await;
    assert!(matches!(set, Err(Error::Block { .. })), "{set:?}");
    assert_eq!(json_get(&mut raw, &wide_key).await, None);
    // Within the range, a copy is exact.
    let edge = i128::from(u64::MAX);
    let from = one.server_ref();
    ServerOps::scope(&db, |ops| ops.copy_model(from, edge))
        .await
        .expect("copy");
    assert_eq!(
        BigKey::get(&db, edge).await.expect("get"),
        BigKey { id: edge, n: 5 }
    );
}
