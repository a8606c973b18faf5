//! Safe loading against the real server: `Safe<T>` fields that keep what another client
//! wrote, and the lossy reads (`all_lossy`, `find(..).all_lossy`, `get_many_lossy`) that
//! return the models that decode beside one typed error per document that does not.
//! Every document a "foreign client" writes here is a plain `JSON.SET`.

mod common;

use std::collections::HashSet;

use rapyer::prelude::*;
use rapyer::{Lossy, Safe};
use serde::{Deserialize, Serialize};
use serde_json::json;

use common::{db, json_get, raw};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Address {
    city: String,
    zip: i64,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Profile", hash_tag = "p")]
struct Profile {
    #[rapyer(key)]
    id: String,
    name: String,
    #[rapyer(index)]
    age: Safe<i64>,
    address: Safe<Address>,
    tags: Safe<Vec<String>>,
    #[serde(default)]
    note: Safe<String>,
    maybe: Safe<Option<i64>>,
}

/// The pickled-and-base64 form rapyer for Python stores some fields in (`pickle.dumps(42)`
/// and `pickle.dumps({"city": "Paris"})`): a plain string where Rust expects a number or a
/// struct.
const PICKLED_INT: &str = "gASVBAAAAAAAAABLKi4=";
const PICKLED_DICT: &str = "gASVFQAAAAAAAAB9lIwEY2l0eZSMBVBhcmlzlHMu";

async fn json_set(raw: &mut redis::aio::MultiplexedConnection, key: &str, doc: &str) {
    let _: () = redis::cmd("JSON.SET")
        .arg(key)
        .arg("$")
        .arg(doc)
        .query_async(raw)
        .await
        .unwrap_or_else(|e| panic!("JSON.SET {key} {doc}: {e}"));
}

async fn json_get_path(
    raw: &mut redis::aio::MultiplexedConnection,
    key: &str,
    path: &str,
) -> String {
    redis::cmd("JSON.GET")
        .arg(key)
        .arg(path)
        .query_async(raw)
        .await
        .unwrap_or_else(|e| panic!("JSON.GET {key} {path}: {e}"))
}

/// Values another client may store where `Profile` expects an `i64` `age`, each a JSON text.
fn hostile_values() -> Vec<String> {
    let deep = (0..100).fold("1".to_string(), |inner, _| format!("[{inner}]"));
    vec![
        json!(PICKLED_INT).to_string(),
        "\"a'] or 1==1 -- \\\" { | @ \\n 🎉 redis.call('FLUSHALL')\"".to_string(),
        "null".into(),
        "1.5".into(),
        "1e29".into(),
        "18446744073709551615".into(),
        "-0.0".into(),
        "true".into(),
        "[]".into(),
        "{}".into(),
        "{\"z\":1,\"a\":[1,{\"y\":null,\"b\":\"é\"}],\"m\":-1.25e-7}".into(),
        "\"\"".into(),
        deep,
        json!("x".repeat(1 << 20)).to_string(),
    ]
}

#[tokio::test]
async fn a_safe_field_keeps_what_another_client_wrote_and_save_writes_it_back_unchanged() {
    let db = db().await;
    let mut raw = raw().await;
    for (i, age) in hostile_values().into_iter().enumerate() {
        let key = db.key(&Profile::key_of(i));
        let doc = format!(
            r#"{{"id":"{i}","name":"n","age":{age},"address":"{PICKLED_DICT}","tags":{{"not":"a list"}},"maybe":"x","extra":[1,2]}}"#
        );
        json_set(&mut raw, &key, &doc).await;
        let before = json_get(&mut raw, &key).await.expect("stored");
        let p = Profile::get(&db, i)
            .await
            .expect("a Safe field never fails the load");
        let valid_age = serde_json::from_str::<i64>(&age).ok();
        assert_eq!(p.age.valid().copied(), valid_age, "{age:.80}");
        if valid_age.is_none() {
            let stored = json_get_path(&mut raw, &key, "$.age").await;
            assert_eq!(format!("[{}]", p.age.raw().expect("invalid")), stored);
            assert!(p.age.error().is_some());
        }
        assert_eq!(
            p.address.raw(),
            Some(format!("\"{PICKLED_DICT}\"").as_str())
        );
        assert_eq!(p.tags.raw(), Some(r#"{"not":"a list"}"#));
        assert_eq!(p.note, Safe::Valid(String::new()), "absent, serde(default)");
        assert_eq!(p.maybe.raw(), Some("\"x\""));
        // Saving writes every invalid value back byte for byte; only the absent `note` (now
        // its default) is added and the unknown `extra` is dropped, as serde does.
        p.save(&db).await.expect("save");
        let after = json_get(&mut raw, &key).await.expect("stored");
        let expected = before.replacen(r#","extra":[1,2]"#, "", 1).replacen(
            r#","maybe":"x""#,
            r#","note":"","maybe":"x""#,
            1,
        );
        assert_eq!(after, expected, "{age:.80}");
        // A `null` is a value: invalid for Safe<i64>, `Valid(None)` for Safe<Option<i64>>.
        let with_null = expected.replacen(r#""maybe":"x""#, r#""maybe":null"#, 1);
        json_set(&mut raw, &key, &with_null[1..with_null.len() - 1]).await;
    }
    let p = Profile::get(&db, 2).await.expect("get");
    assert_eq!(p.maybe, Safe::Valid(None));
    assert_eq!(p.age.raw(), Some("null"));
}

#[tokio::test]
async fn a_safe_field_missing_without_a_default_fails_as_any_missing_field() {
    let db = db().await;
    let mut raw = raw().await;
    let key = db.key(&Profile::key_of("m"));
    json_set(
        &mut raw,
        &key,
        r#"{"id":"m","name":"n","address":{"city":"P","zip":1},"tags":[],"maybe":1}"#,
    )
    .await;
    match Profile::get(&db, "m").await {
        Err(Error::Deserialize {
            key: k,
            path,
            source,
        }) => {
            assert_eq!(k, key);
            assert_eq!(path, ".");
            assert!(
                source.to_string().contains("missing field `age`"),
                "{source}"
            );
        }
        other => panic!("expected Deserialize, got {other:?}"),
    }
}

fn profile(id: &str, age: i64) -> Profile {
    Profile {
        id: id.into(),
        name: "Ann".into(),
        age: Safe::Valid(age),
        address: Safe::Valid(Address {
            city: "Paris".into(),
            zip: 75001,
        }),
        tags: Safe::Valid(vec!["a".into()]),
        note: Safe::Valid("hi".into()),
        maybe: Safe::Valid(Some(1)),
    }
}

#[tokio::test]
async fn handles_of_the_inner_type_work_while_valid_and_refuse_an_invalid_value() {
    let db = db().await;
    let mut raw = raw().await;
    let mut p = profile("h", 40);
    p.save(&db).await.expect("save");
    let key = db.key(&p.key());

    assert_eq!(
        p.age()
            .valid()
            .expect("valid")
            .incr(&db, 2)
            .await
            .expect("incr"),
        42
    );
    assert_eq!(p.age, Safe::Valid(42));
    p.address()
        .valid()
        .expect("valid")
        .city()
        .set(&db, "Lyon")
        .await
        .expect("set");
    assert_eq!(
        json_get_path(&mut raw, &key, "$.address.city").await,
        r#"["Lyon"]"#
    );

    // Another client breaks the field: the local copy is still valid, the server refuses
    // the typed operation and nothing changes.
    let _: () = redis::cmd("JSON.SET")
        .arg(&key)
        .arg("$.age")
        .arg(json!(PICKLED_INT).to_string())
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");
    let before = json_get(&mut raw, &key).await;
    match p.age().valid().expect("locally valid").incr(&db, 1).await {
        Err(Error::TypeMismatch { path, .. }) => assert_eq!(path, "$.age"),
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    assert_eq!(json_get(&mut raw, &key).await, before);
    assert_eq!(
        p.age,
        Safe::Valid(42),
        "a failed operation leaves the local value"
    );

    // Loaded, the local value is invalid, and the inner handle is a typed error.
    let loaded = p.age().load(&db).await.expect("load").clone();
    assert_eq!(loaded.raw(), Some(json!(PICKLED_INT).to_string().as_str()));
    match p.age().valid() {
        Err(Error::Deserialize { key: k, path, .. }) => {
            assert_eq!(k, p.key());
            assert_eq!(path, "$.age");
        }
        Ok(_) => panic!("an invalid value has no inner handle"),
        Err(other) => panic!("expected Deserialize, got {other:?}"),
    }
    // `set` writes a valid value back.
    p.age().set(&db, 7).await.expect("set");
    assert_eq!(p.age, Safe::Valid(7));
    assert_eq!(json_get_path(&mut raw, &key, "$.age").await, "[7]");
}

#[tokio::test]
async fn blocks_move_an_invalid_value_as_its_raw_json() {
    let db = db().await;
    let mut raw = raw().await;
    let mut a = profile("a", 1);
    let b = profile("b", 2);
    a.save(&db).await.expect("save");
    b.save(&db).await.expect("save");
    let hostile = "{\"z\":[1,\"a'] or 1==1 --\"],\"a\":\"🎉\\n\"}";
    let _: () = redis::cmd("JSON.SET")
        .arg(db.key(&a.key()))
        .arg("$.tags")
        .arg(hostile)
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");
    ServerOps::scope(&db, |ops| {
        ops.assign(a.server_ref().tags(), b.server_ref().tags());
    })
    .await
    .expect("assign");
    assert_eq!(
        json_get_path(&mut raw, &db.key(&b.key()), "$.tags").await,
        format!("[{hostile}]")
    );
    let b = Profile::get(&db, "b").await.expect("get");
    assert_eq!(b.tags.raw(), Some(hostile));
    // An atomic block sets a valid value and writes it into the local model.
    a.atomic(&db, |m| m.age().set(9)).await.expect("atomic");
    assert_eq!(a.age, Safe::Valid(9));
    // Saving a model whose Safe field holds an invalid value writes that value as it is.
    let mut c = profile("c", 3);
    c.tags = b.tags.clone();
    c.save(&db).await.expect("save");
    assert_eq!(
        json_get_path(&mut raw, &db.key(&c.key()), "$.tags").await,
        format!("[{hostile}]")
    );
}

#[tokio::test]
async fn an_indexed_safe_field_finds_the_valid_values() {
    let db = db().await;
    let mut raw = raw().await;
    db.init::<Profile>().await.expect("init");
    for i in 0..10 {
        profile(&i.to_string(), i).save(&db).await.expect("save");
    }
    let _: () = redis::cmd("JSON.SET")
        .arg(db.key(&Profile::key_of(3)))
        .arg("$.age")
        .arg("\"3\"")
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");
    let f = Profile::fields();
    let mut found: Vec<i64> = Profile::find(&db, f.age.between(2, 5))
        .all()
        .await
        .expect("find")
        .into_iter()
        .filter_map(|p| p.age.into_valid())
        .collect();
    found.sort_unstable();
    // The text "3" is not a number: RediSearch leaves it out, as any value of another type.
    assert_eq!(found, vec![2, 4, 5]);
}

/// A strict model, as most are: a bad document fails the strict reads.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Item")]
struct Item {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    group: String,
    n: i64,
    address: Address,
}

/// Documents as other clients write them: `(document, the path the error names)`.
fn bad_item(id: &str, kind: usize) -> (String, &'static str) {
    let deep = (0..100).fold("1".to_string(), |inner, _| format!("[{inner}]"));
    let (n, address, path) = match kind {
        0 => (
            json!(PICKLED_INT).to_string(),
            r#"{"city":"P","zip":1}"#.to_string(),
            "n",
        ),
        1 => ("1".into(), json!(PICKLED_DICT).to_string(), "address"),
        2 => ("null".into(), r#"{"city":"P","zip":1}"#.into(), "n"),
        3 => ("1e29".into(), r#"{"city":"P","zip":1}"#.into(), "n"),
        4 => (deep, r#"{"city":"P","zip":1}"#.into(), "n"),
        5 => (
            "1".into(),
            r#"{"city":"P","zip":"75001"}"#.into(),
            "address.zip",
        ),
        _ => ("1".into(), r#"{"city":"P"}"#.into(), "address"),
    };
    (
        format!(r#"{{"id":"{id}","group":"g","n":{n},"address":{address},"extra":{{"x":1}}}}"#),
        path,
    )
}

/// Saves `total` items (every `every`th one bad, as another client would write it, one of
/// them with another id than its key); returns the bad keys with the path each error names.
async fn seed(
    db: &Db,
    raw: &mut impl redis::aio::ConnectionLike,
    total: usize,
    every: usize,
) -> Vec<(String, &'static str)> {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for i in 0..total {
        let id = format!("i{i}");
        if i % every == every - 1 {
            let key = db.key(&Item::key_of(&id));
            let (doc, path) = match (i / every) % 8 {
                7 => (
                    r#"{"id":"other","group":"g","n":1,"address":{"city":"P","zip":1}}"#
                        .to_string(),
                    "",
                ),
                kind => bad_item(&id, kind),
            };
            let _: () = redis::cmd("JSON.SET")
                .arg(&key)
                .arg("$")
                .arg(doc)
                .query_async(raw)
                .await
                .expect("JSON.SET");
            bad.push((key, path));
        } else {
            good.push(Item {
                id,
                group: "g".into(),
                n: i as i64,
                address: Address {
                    city: "Paris".into(),
                    zip: 75001,
                },
            });
        }
    }
    for chunk in good.chunks(500) {
        Item::insert_many(db, chunk).await.expect("insert_many");
    }
    bad
}

/// Every bad document is one failure naming its key and the path, every good one a model.
fn check_lossy(found: Lossy<Item>, total: usize, bad: &[(String, &'static str)]) {
    assert_eq!(found.models.len(), total - bad.len());
    let ids: HashSet<&str> = found.models.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), found.models.len(), "no duplicates");
    assert_eq!(found.failures.len(), bad.len());
    let mut failed: Vec<(String, String)> = found
        .failures
        .into_iter()
        .map(|e| match e {
            Error::Deserialize { key, path, .. } => (key, path),
            Error::IdMismatch { key, id } => {
                assert_eq!(id, "other");
                (key, String::new())
            }
            other => panic!("unexpected failure {other:?}"),
        })
        .collect();
    failed.sort();
    let mut expected: Vec<(String, String)> = bad
        .iter()
        .map(|(k, p)| (k.clone(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(failed, expected);
}

/// `all_lossy` and `find(..).all_lossy` over the 3,000 seeded items.
async fn check_both_lossy(db: &Db, bad: &[(String, &'static str)]) {
    check_lossy(Item::all_lossy(db).await.expect("all_lossy"), 3000, bad);
    let f = Item::fields();
    check_lossy(
        Item::find(db, f.group.eq("g"))
            .all_lossy()
            .await
            .expect("find lossy"),
        3000,
        bad,
    );
}

#[tokio::test]
async fn all_lossy_returns_every_good_model_and_one_error_per_bad_document_among_3000() {
    let db = db().await;
    let mut raw = raw().await;
    db.init::<Item>().await.expect("init");
    let bad = seed(&db, &mut raw, 3000, 97).await;
    assert_eq!(bad.len(), 30);

    // The strict forms stay the default: one bad document fails them.
    assert!(matches!(
        Item::all(&db).await,
        Err(Error::Deserialize { .. } | Error::IdMismatch { .. })
    ));
    let f = Item::fields();
    assert!(Item::find(&db, f.group.eq("g")).all().await.is_err());

    check_both_lossy(&db, &bad).await;
    let window = Item::find(&db, f.group.eq("g"))
        .limit(0, 100)
        .all_lossy()
        .await
        .expect("window");
    assert_eq!(window.models.len() + window.failures.len(), 100);
}

#[tokio::test]
async fn get_many_lossy_gives_each_id_its_own_outcome() {
    let db = db().await;
    let mut raw = raw().await;
    let bad = seed(&db, &mut raw, 4, 2).await;
    assert_eq!(bad.len(), 2);
    let _: () = redis::cmd("SET")
        .arg(db.key(&Item::key_of("str")))
        .arg("x")
        .query_async(&mut raw)
        .await
        .expect("SET");
    assert!(matches!(
        Item::get_many(&db, ["i0", "str"]).await,
        Err(Error::TypeMismatch { .. })
    ));
    let out = Item::get_many_lossy(&db, ["i0", "i1", "missing", "str", "i2", "i3"])
        .await
        .expect("get_many_lossy");
    assert!(matches!(&out[0], Ok(Some(item)) if item.id == "i0"));
    assert!(matches!(&out[1], Err(Error::Deserialize { path, .. }) if path == "n"));
    assert!(matches!(&out[2], Ok(None)));
    assert!(
        matches!(&out[3], Err(Error::TypeMismatch { key, found, .. }) if key.ends_with("Item:str") && found == "string")
    );
    assert!(matches!(&out[4], Ok(Some(item)) if item.id == "i2"));
    assert!(matches!(&out[5], Err(Error::Deserialize { path, .. }) if path == "address"));
    assert!(
        Item::get_many_lossy(&db, Vec::<String>::new())
            .await
            .expect("empty")
            .is_empty()
    );
}

#[tokio::test]
async fn lossy_reads_on_a_cluster_return_every_good_model_among_3000() {
    let db = common::cluster_db().await;
    let mut raw = redis::cluster::ClusterClient::new(rapyer_testkit::cluster().urls().to_vec())
        .expect("cluster client")
        .get_async_connection()
        .await
        .expect("raw cluster connection");
    db.init::<Item>().await.expect("init");
    let bad = seed(&db, &mut raw, 3000, 97).await;
    assert!(Item::all(&db).await.is_err());
    check_both_lossy(&db, &bad).await;
}

#[tokio::test]
async fn lossy_reads_while_another_client_breaks_and_fixes_documents() {
    let db = db().await;
    let mut raw = raw().await;
    db.init::<Item>().await.expect("init");
    seed(&db, &mut raw, 200, 1_000).await;
    // Another client keeps rewriting documents 0..20 as bad, then good, then deleted.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let keys: Vec<String> = (0..20)
        .map(|i| db.key(&Item::key_of(format!("i{i}"))))
        .collect();
    let mut writer = common::raw().await;
    let flipping: HashSet<String> = keys.iter().cloned().collect();
    let task = tokio::spawn(async move {
        let mut round = 0u64;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            for (i, key) in keys.iter().enumerate() {
                let id = format!("i{i}");
                let mut cmd = match (round + i as u64) % 3 {
                    0 => redis::cmd("JSON.SET"),
                    1 => redis::cmd("JSON.SET"),
                    _ => redis::cmd("DEL"),
                };
                cmd.arg(key);
                match (round + i as u64) % 3 {
                    0 => {
                        cmd.arg("$").arg(bad_item(&id, (round % 7) as usize).0);
                    }
                    1 => {
                        cmd.arg("$").arg(format!(
                            r#"{{"id":"{id}","group":"g","n":1,"address":{{"city":"P","zip":1}}}}"#
                        ));
                    }
                    _ => {}
                }
                let _: () = cmd.query_async(&mut writer).await.expect("write");
            }
            round += 1;
        }
    });
    let f = Item::fields();
    for _ in 0..20 {
        for found in [
            Item::all_lossy(&db).await.expect("all_lossy"),
            Item::find(&db, f.group.eq("g"))
                .all_lossy()
                .await
                .expect("find lossy"),
        ] {
            assert!(found.models.len() >= 180 && found.models.len() + found.failures.len() <= 200);
            for failure in &found.failures {
                match failure {
                    Error::Deserialize { key, .. } => assert!(flipping.contains(key), "{key}"),
                    other => panic!("unexpected failure {other:?}"),
                }
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    task.await.expect("writer");
}

/// A model that indexes a date-time: its save goes through a JSON value (to add the search
/// instant), as a lock guard's save does.
#[cfg(feature = "chrono")]
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Dated")]
struct Dated {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    at: chrono::DateTime<chrono::Utc>,
    extra: Safe<Address>,
}

#[cfg(feature = "chrono")]
#[tokio::test]
async fn through_a_json_value_an_invalid_object_keeps_its_values_with_members_sorted() {
    let db = db().await;
    let mut raw = raw().await;
    let key = db.key(&Dated::key_of("d"));
    json_set(
        &mut raw,
        &key,
        r#"{"id":"d","at":"2024-01-02T03:04:05Z","extra":{"z":1,"a":[2,{"y":null,"b":"é"}]}}"#,
    )
    .await;
    let d = Dated::get(&db, "d").await.expect("get");
    assert_eq!(d.extra.raw(), Some(r#"{"z":1,"a":[2,{"y":null,"b":"é"}]}"#));
    d.save(&db).await.expect("save");
    assert_eq!(
        json_get_path(&mut raw, &key, "$.extra").await,
        r#"[{"a":[2,{"b":"é","y":null}],"z":1}]"#
    );
    // A lock guard's save writes only what its holder changed: an untouched invalid value
    // stays as it is.
    let _: () = redis::cmd("JSON.SET")
        .arg(&key)
        .arg("$.extra")
        .arg(r#"{"z":1,"a":2}"#)
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");
    let mut guard = Dated::lock(&db, "d", LockOptions::default())
        .await
        .expect("lock");
    guard.at = chrono::DateTime::from_timestamp(0, 0).expect("epoch");
    guard.save().await.expect("guard save");
    guard.release().await.expect("release");
    assert_eq!(
        json_get_path(&mut raw, &key, "$.extra").await,
        r#"[{"z":1,"a":2}]"#
    );
}
