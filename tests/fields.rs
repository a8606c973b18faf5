//! Typed field handles against the real server: every operation of the numeric, string,
//! boolean, nested and value handles, with the local field equal to the server's after each
//! one; exact integers over every width with overflow refused; wrong types and missing
//! models refused with the document byte-identical; expiry re-armed by writes; and
//! concurrent increments that lose nothing.

mod common;

use std::collections::HashMap;

use rapyer::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use common::{Rng, assert_non_finite, db, dump, json_get, pttl, raw, stored};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Address {
    city: String,
    zip: i64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Kind {
    Basic,
    Premium { since: u16 },
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Person")]
#[serde(rename_all = "camelCase")]
struct Person {
    #[rapyer(key)]
    id: String,
    full_name: String,
    age: i64,
    small: i8,
    tiny: u8,
    big: u64,
    score: f64,
    ratio: f32,
    active: bool,
    address: Address,
    #[serde(rename = "the tags")]
    tags: Vec<String>,
    #[rapyer(value)]
    kind: Kind,
    nick: Option<String>,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Hit", ttl = 60, refresh_on_read)]
struct Hit {
    #[rapyer(key)]
    id: String,
    hits: i64,
}

fn person(id: &str) -> Person {
    Person {
        id: id.to_string(),
        full_name: "Ann Lee".into(),
        age: 41,
        small: 0,
        tiny: 0,
        big: 0,
        score: 1.5,
        ratio: 0.25,
        active: true,
        address: Address {
            city: "Paris".into(),
            zip: 75001,
        },
        tags: vec!["a".into()],
        kind: Kind::Basic,
        nick: None,
    }
}

/// The stored document, as the server has it.
async fn doc(
    raw: &mut redis::aio::MultiplexedConnection,
    db: &Db,
    p: &Person,
) -> serde_json::Value {
    stored(raw, &db.key(&p.key())).await
}

/// Writes the JSON text `value` at `path` of the document at `key`, behind rapyer's back.
async fn json_set(raw: &mut redis::aio::MultiplexedConnection, key: &str, path: &str, value: &str) {
    let _: () = redis::cmd("JSON.SET")
        .arg(key)
        .arg(path)
        .arg(value)
        .query_async(raw)
        .await
        .expect("JSON.SET");
}

/// Asserts that the local model equals the stored document.
async fn assert_mirrors(raw: &mut redis::aio::MultiplexedConnection, db: &Db, p: &Person) {
    let server: Person = serde_json::from_value(doc(raw, db, p).await).expect("stored Person");
    assert_eq!(&server, p, "local model differs from the server's");
}

#[tokio::test]
async fn integer_operations_are_exact_and_mirrored() {
    let db = db().await;
    let mut raw = raw().await;
    let mut p = person("ints");
    p.save(&db).await.expect("save");

    assert_eq!(p.age().incr(&db, 5).await.expect("incr"), 46);
    assert_eq!(p.age().decr(&db, 50).await.expect("decr"), -4);
    assert_eq!(p.age().mul(&db, -3).await.expect("mul"), 12);
    assert_eq!(p.age, 12);
    assert_mirrors(&mut raw, &db, &p).await;

    // Beyond 2^53, where doubles (and Lua numbers) are no longer exact.
    p.age().set(&db, 9_007_199_254_740_993).await.expect("set");
    assert_eq!(
        p.age().incr(&db, 2).await.expect("incr"),
        9_007_199_254_740_995
    );
    assert_eq!(
        doc(&mut raw, &db, &p).await["age"],
        json!(9_007_199_254_740_995_i64)
    );
    p.age().set(&db, i64::MAX - 1).await.expect("set");
    assert_eq!(p.age().incr(&db, 1).await.expect("to MAX"), i64::MAX);
    p.age().set(&db, i64::MIN + 1).await.expect("set");
    assert_eq!(p.age().decr(&db, 1).await.expect("to MIN"), i64::MIN);
    assert_eq!(
        p.big().incr(&db, u64::MAX).await.expect("u64 MAX"),
        u64::MAX
    );
    assert_eq!(doc(&mut raw, &db, &p).await["big"], json!(u64::MAX));
    assert_eq!(p.tiny().incr(&db, 255).await.expect("u8 MAX"), 255);
    assert_eq!(p.small().incr(&db, -128).await.expect("i8 MIN"), -128);
    assert_mirrors(&mut raw, &db, &p).await;

    // Loading reads the server's value into the local field.
    let _: () = redis::cmd("JSON.SET")
        .arg(db.key(&p.key()))
        .arg("$.age")
        .arg(77)
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");
    assert_eq!(p.age().load(&db).await.expect("load"), 77);
    assert_eq!(p.age, 77);
}

#[tokio::test]
async fn integers_on_either_side_of_the_short_cut_through_doubles_stay_exact() {
    // Up to 15 characters a side (a sum) or together (a product), the script computes in
    // doubles; beyond, in decimal text. Both sides of each edge, and the signs.
    let db = db().await;
    let mut raw = raw().await;
    let mut p = person("edges");
    p.save(&db).await.expect("save");
    let cases: [(i64, char, i64); 10] = [
        (999_999_999_999_999, '+', 1),
        (-99_999_999_999_999, '+', -1),
        (-999_999_999_999_999, '+', -1),
        (9_007_199_254_740_991, '+', 1),
        (99_999_999, '*', 9_999_999),
        (999_999_999, '*', 999_999_999),
        (-99_999_999, '*', 9_999_999),
        (94_906_267, '*', 94_906_267),
        (0, '*', -5),
        (-7, '+', 7),
    ];
    for (start, op, operand) in cases {
        p.age().set(&db, start).await.expect("set");
        let (want, got) = match op {
            '+' => (start + operand, p.age().incr(&db, operand).await),
            _ => (start * operand, p.age().mul(&db, operand).await),
        };
        assert_eq!(got.expect("in range"), want, "{start} {op} {operand}");
        // The stored text is the integer's own (never -0, never an exponent).
        let text: String = redis::cmd("JSON.GET")
            .arg(db.key(&p.key()))
            .arg("$.age")
            .query_async(&mut raw)
            .await
            .expect("JSON.GET");
        assert_eq!(text, format!("[{want}]"), "{start} {op} {operand}");
    }
    // The bounds of a small type, reached and passed in doubles.
    p.small().set(&db, 100).await.expect("set");
    assert_eq!(p.small().incr(&db, 27).await.expect("to MAX"), 127);
    assert!(matches!(
        p.small().incr(&db, 1).await,
        Err(Error::Overflow { .. })
    ));
    assert!(matches!(
        p.small().mul(&db, -2).await,
        Err(Error::Overflow { .. })
    ));
    assert_eq!(p.small().mul(&db, -1).await.expect("to -127"), -127);
    assert_mirrors(&mut raw, &db, &p).await;
}

#[tokio::test]
async fn overflow_changes_nothing_on_the_server_or_locally() {
    let db = db().await;
    let mut raw = raw().await;
    let mut p = person("overflow");
    p.age = i64::MAX;
    p.big = u64::MAX;
    p.tiny = 255;
    p.small = -128;
    p.save(&db).await.expect("save");
    let key = db.key(&p.key());
    let before = json_get(&mut raw, &key).await;
    let local = p.clone();

    let outcomes = vec![
        ("age + 1", "i64", p.age().incr(&db, 1).await.map(|_| ())),
        ("age * 2", "i64", p.age().mul(&db, 2).await.map(|_| ())),
        (
            "age + MAX",
            "i64",
            p.age().incr(&db, i64::MAX).await.map(|_| ()),
        ),
        ("big + 1", "u64", p.big().incr(&db, 1).await.map(|_| ())),
        ("tiny + 1", "u8", p.tiny().incr(&db, 1).await.map(|_| ())),
        ("small - 1", "i8", p.small().decr(&db, 1).await.map(|_| ())),
        ("small * -1", "i8", p.small().mul(&db, -1).await.map(|_| ())),
    ];
    for (what, ty, outcome) in outcomes {
        match outcome {
            Err(Error::Overflow { key: k, path, kind }) => {
                assert_eq!(k, key, "{what}");
                assert!(path.starts_with("$."), "{what}: {path}");
                assert_eq!(kind, ty, "{what}");
            }
            other => panic!("{what}: expected Overflow, got {other:?}"),
        }
    }
    assert_eq!(
        json_get(&mut raw, &key).await,
        before,
        "the document changed"
    );
    assert_eq!(p, local, "the local model changed");
    // i64::MIN - 1 from the other side.
    p.age().set(&db, i64::MIN).await.expect("set");
    assert!(matches!(
        p.age().decr(&db, 1).await,
        Err(Error::Overflow { .. })
    ));
    assert_eq!(p.age, i64::MIN);
}

#[tokio::test]
async fn floats_strings_and_booleans() {
    let db = db().await;
    let mut raw = raw().await;
    let mut p = person("mixed");
    p.save(&db).await.expect("save");

    assert_eq!(p.score().incr(&db, 0.25).await.expect("incr"), 1.75);
    assert_eq!(p.score().mul(&db, 4.0).await.expect("mul"), 7.0);
    assert_eq!(p.score().decr(&db, 10.5).await.expect("decr"), -3.5);
    assert_eq!(p.ratio().incr(&db, 0.5).await.expect("f32"), 0.75);
    assert_mirrors(&mut raw, &db, &p).await;

    let hostile = "a'] or 1==1 -- \"quoted\" \\ {x} $.y\nline 🎉";
    p.full_name().set(&db, hostile).await.expect("set");
    assert_eq!(doc(&mut raw, &db, &p).await["fullName"], json!(hostile));
    let len = p.full_name().append(&db, " ✓").await.expect("append");
    assert_eq!(p.full_name, format!("{hostile} ✓"));
    assert_eq!(len, p.full_name.len());
    assert_eq!(p.full_name().len(&db).await.expect("len"), len);
    assert_mirrors(&mut raw, &db, &p).await;

    assert!(!p.active().toggle(&db).await.expect("toggle"));
    assert!(p.active().toggle(&db).await.expect("toggle"));
    p.active().set(&db, false).await.expect("set");
    assert!(!p.active);
    assert_eq!(doc(&mut raw, &db, &p).await["active"], json!(false));
    assert!(!p.active().load(&db).await.expect("load"));
    assert_mirrors(&mut raw, &db, &p).await;
}

#[tokio::test]
async fn nested_models_renamed_fields_and_value_handles() {
    let db = db().await;
    let mut raw = raw().await;
    let mut p = person("nested");
    p.save(&db).await.expect("save");

    p.address()
        .city()
        .set(&db, "Lyon")
        .await
        .expect("nested set");
    assert_eq!(
        p.address().zip().incr(&db, 1).await.expect("nested incr"),
        75002
    );
    assert_eq!(
        doc(&mut raw, &db, &p).await["address"],
        json!({"city": "Lyon", "zip": 75002})
    );
    let moved = Address {
        city: "Nice \"Côte\"".into(),
        zip: 6000,
    };
    p.address()
        .set(&db, moved.clone())
        .await
        .expect("set nested");
    assert_eq!(p.address, moved);
    let _: () = redis::cmd("JSON.SET")
        .arg(db.key(&p.key()))
        .arg("$.address.zip")
        .arg(6100)
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");
    assert_eq!(p.address().load(&db).await.expect("load").zip, 6100);
    assert_eq!(p.address.zip, 6100);

    // `the tags` is addressed as $["the tags"]; Kind and Option get value handles.
    p.tags()
        .replace(&db, vec!["x".into(), "y z".into()])
        .await
        .expect("tags");
    assert_eq!(
        doc(&mut raw, &db, &p).await["the tags"],
        json!(["x", "y z"])
    );
    p.kind()
        .set(&db, Kind::Premium { since: 2020 })
        .await
        .expect("kind");
    assert_eq!(
        doc(&mut raw, &db, &p).await["kind"],
        json!({"Premium": {"since": 2020}})
    );
    p.nick().set(&db, Some("annie".into())).await.expect("nick");
    assert_eq!(
        p.nick().load(&db).await.expect("load"),
        &Some("annie".to_string())
    );
    assert_eq!(
        p.nick().take(&db).await.expect("take"),
        Some("annie".to_string())
    );
    assert_eq!(p.nick, None);
    assert_eq!(doc(&mut raw, &db, &p).await["nick"], json!(null));
    p.nick().set(&db, Some("a".into())).await.expect("nick");
    p.nick().set(&db, None).await.expect("nick none");
    assert_eq!(doc(&mut raw, &db, &p).await["nick"], json!(null));
    assert_eq!(p.full_name().at().path(), "$.fullName");
    assert_eq!(p.tags().at().path(), "$[\"the tags\"]");
    assert_mirrors(&mut raw, &db, &p).await;

    p.tags()
        .append(&db, "plain &str")
        .await
        .expect("append &str");
    assert_eq!(p.tags.last().map(String::as_str), Some("plain &str"));
    // A list whose stored JSON is not a list is a type mismatch like any other.
    let _: () = redis::cmd("JSON.SET")
        .arg(db.key(&p.key()))
        .arg("$[\"the tags\"]")
        .arg("\"not a list\"")
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");
    let before = json_get(&mut raw, &db.key(&p.key())).await;
    match p.tags().append(&db, "x").await {
        Err(Error::TypeMismatch {
            path,
            found,
            expected,
            ..
        }) => {
            assert_eq!(
                (path.as_str(), found.as_str(), expected.as_str()),
                ("$[\"the tags\"]", "string", "a list")
            );
        }
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    assert_eq!(json_get(&mut raw, &db.key(&p.key())).await, before);
    // Even replacing checks the type; saving the whole model repairs it.
    assert!(matches!(
        p.tags().replace(&db, vec![]).await,
        Err(Error::TypeMismatch { .. })
    ));
    p.save(&db).await.expect("save repairs");

    // A nested value the server holds in a shape the type cannot take names the place.
    let _: () = redis::cmd("JSON.SET")
        .arg(db.key(&p.key()))
        .arg("$.address.city")
        .arg(5)
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");
    match p.address().load(&db).await {
        Err(Error::Deserialize { path, .. }) => assert_eq!(path, "$.address.city"),
        other => panic!("expected Deserialize, got {other:?}"),
    }
    assert_eq!(p.address.city, "Nice \"Côte\"", "the local value is kept");
}

#[tokio::test]
async fn wrong_types_and_missing_models_change_nothing() {
    let db = db().await;
    let mut raw = raw().await;
    let mut p = person("typed");
    p.save(&db).await.expect("save");
    let key = db.key(&p.key());
    for (path, value) in [
        ("$.age", "\"forty\""),
        ("$.score", "\"high\""),
        ("$.fullName", "12"),
        ("$.active", "\"yes\""),
    ] {
        let _: () = redis::cmd("JSON.SET")
            .arg(&key)
            .arg(path)
            .arg(value)
            .query_async(&mut raw)
            .await
            .expect("JSON.SET");
    }
    let before = json_get(&mut raw, &key).await;
    let local = p.clone();
    let outcomes = vec![
        ("$.age", "string", p.age().incr(&db, 1).await.map(|_| ())),
        ("$.age", "string", p.age().set(&db, 3).await),
        (
            "$.score",
            "string",
            p.score().incr(&db, 1.0).await.map(|_| ()),
        ),
        (
            "$.fullName",
            "integer",
            p.full_name().append(&db, "x").await.map(|_| ()),
        ),
        (
            "$.active",
            "string",
            p.active().toggle(&db).await.map(|_| ()),
        ),
    ];
    for (want_path, want_found, outcome) in outcomes {
        match outcome {
            Err(Error::TypeMismatch {
                key: k,
                path,
                found,
                ..
            }) => {
                assert_eq!((k.as_str(), path.as_str()), (key.as_str(), want_path));
                assert_eq!(found, want_found, "{want_path}");
            }
            other => panic!("{want_path}: expected TypeMismatch, got {other:?}"),
        }
    }
    assert_eq!(
        json_get(&mut raw, &key).await,
        before,
        "the document changed"
    );
    assert_eq!(p, local, "the local model changed");

    // A model that was never saved: NotFound, and no key is created.
    let mut ghost = person("ghost");
    match ghost.age().incr(&db, 1).await {
        Err(Error::NotFound { key }) => assert_eq!(key, db.key("Person:ghost")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        ghost.full_name().set(&db, "x").await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(json_get(&mut raw, &db.key("Person:ghost")).await, None);
    assert_eq!(ghost, person("ghost"));

    // A key holding another Redis type.
    let _: () = redis::cmd("SET")
        .arg(db.key("Person:text"))
        .arg("plain")
        .query_async(&mut raw)
        .await
        .expect("SET");
    match person("text").age().incr(&db, 1).await {
        Err(Error::TypeMismatch { path, found, .. }) => {
            assert_eq!((path.as_str(), found.as_str()), ("$", "string"));
        }
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn a_read_or_an_increment_names_the_json_type_it_found() {
    // Reads and increments check the field in the one read they make: the type they name is
    // JSON.TYPE's, for every JSON type.
    let db = db().await;
    let mut raw = raw().await;
    let mut p = person("found");
    p.save(&db).await.expect("save");
    let key = db.key(&p.key());
    for (value, found) in [
        ("{\"a\":[1]}", "object"),
        ("[1,2]", "array"),
        ("true", "boolean"),
        ("null", "null"),
        ("1.5", "number"),
        ("\"7\"", "string"),
    ] {
        json_set(&mut raw, &key, "$.age", value).await;
        for outcome in [
            p.age().incr(&db, 1).await.map(|_| ()),
            p.age().mul(&db, 2).await.map(|_| ()),
            p.age().load(&db).await.map(|_| ()),
        ] {
            match outcome {
                Err(Error::TypeMismatch { found: f, path, .. }) => {
                    assert_eq!((path.as_str(), f.as_str()), ("$.age", found), "{value}");
                }
                other => panic!("{value}: expected TypeMismatch, got {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn operations_that_check_after_their_one_command_refuse_like_the_others() {
    // String and list appends and toggles run their command first (it writes nothing where
    // it would fail) and the checks only then: the same typed errors, nothing written.
    let db = db().await;
    let mut raw = raw().await;
    let mut p = person("after");
    p.save(&db).await.expect("save");
    let key = db.key(&p.key());
    for (path, value) in [
        ("$.fullName", "12"),
        ("$.active", "\"yes\""),
        ("$[\"the tags\"]", "{\"a\":1}"),
    ] {
        json_set(&mut raw, &key, path, value).await;
    }
    let before = json_get(&mut raw, &key).await;
    let local = p.clone();
    let outcomes = vec![
        ("integer", p.full_name().append(&db, "x").await.map(|_| ())),
        ("string", p.active().toggle(&db).await.map(|_| ())),
        ("object", p.tags().append(&db, "x").await.map(|_| ())),
        (
            "object",
            p.tags().extend(&db, ["x".to_string()]).await.map(|_| ()),
        ),
    ];
    for (want_found, outcome) in outcomes {
        match outcome {
            Err(Error::TypeMismatch { key: k, found, .. }) => {
                assert_eq!((k.as_str(), found.as_str()), (key.as_str(), want_found));
            }
            other => panic!("{want_found}: expected TypeMismatch, got {other:?}"),
        }
    }
    assert_eq!(
        json_get(&mut raw, &key).await,
        before,
        "the document changed"
    );
    assert_eq!(p, local, "the local model changed");

    // A model that was never saved, and a key holding another Redis type.
    let _: () = redis::cmd("SET")
        .arg(db.key("Person:plain"))
        .arg("plain")
        .query_async(&mut raw)
        .await
        .expect("SET");
    for id in ["ghost", "plain"] {
        let mut m = person(id);
        let outcomes = [
            m.full_name().append(&db, "x").await.map(|_| ()),
            m.active().toggle(&db).await.map(|_| ()),
            m.tags().append(&db, "x").await.map(|_| ()),
        ];
        for outcome in outcomes {
            match (id, outcome) {
                ("ghost", Err(Error::NotFound { .. })) => {}
                ("plain", Err(Error::TypeMismatch { path, found, .. })) => {
                    assert_eq!((path.as_str(), found.as_str()), ("$", "string"));
                }
                (_, other) => panic!("{id}: got {other:?}"),
            }
        }
        assert_eq!(m, person(id), "{id}: the local model changed");
    }
    assert_eq!(json_get(&mut raw, &db.key("Person:ghost")).await, None);
}

#[tokio::test]
async fn writes_rearm_the_expiry_and_reads_do_with_refresh_on_read() {
    let db = db().await;
    let mut raw = raw().await;
    let mut hit = Hit {
        id: "h1".into(),
        hits: 0,
    };
    hit.save(&db).await.expect("save");
    let key = db.key(&hit.key());
    let shorten = |raw: &mut redis::aio::MultiplexedConnection| {
        let key = key.clone();
        let mut raw = raw.clone();
        async move {
            let _: () = redis::cmd("PEXPIRE")
                .arg(&key)
                .arg(5_000)
                .query_async(&mut raw)
                .await
                .expect("PEXPIRE");
        }
    };
    shorten(&mut raw).await;
    assert_eq!(hit.hits().incr(&db, 1).await.expect("incr"), 1);
    assert!(pttl(&mut raw, &key).await > 55_000, "a write re-arms");
    shorten(&mut raw).await;
    assert_eq!(hit.hits().load(&db).await.expect("load"), 1);
    assert!(
        pttl(&mut raw, &key).await > 55_000,
        "a read re-arms (refresh_on_read)"
    );

    // Without a ttl, writes leave the key without expiry.
    let mut p = person("no-ttl");
    p.save(&db).await.expect("save");
    p.age().incr(&db, 1).await.expect("incr");
    assert_eq!(pttl(&mut raw, &db.key(&p.key())).await, -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_lose_nothing() {
    let db = db().await;
    let mut raw = raw().await;
    let p = person("counter");
    p.save(&db).await.expect("save");
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let db = db.clone();
        let mut mine = p.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            for _ in 0..200 {
                let now = mine.age().incr(&db, 1).await.expect("incr");
                assert!(now > last, "increments are seen in order by one task");
                last = now;
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(doc(&mut raw, &db, &p).await["age"], json!(41 + 6_400));
}

/// An i64 of a random magnitude: small, around 2^32, around 2^53, or near the bounds.
fn random_int(rng: &mut Rng) -> i64 {
    let raw = rng.next() as i64;
    match rng.next() % 5 {
        0 => raw % 1_000,
        1 => raw % (1 << 33),
        2 => raw % (1 << 54),
        3 => {
            if raw < 0 {
                i64::MIN + (raw % 1_000).abs()
            } else {
                i64::MAX - raw % 1_000
            }
        }
        _ => raw,
    }
}

#[tokio::test]
async fn server_integer_arithmetic_matches_checked_rust_arithmetic() {
    let db = db().await;
    let mut p = person("arith");
    p.save(&db).await.expect("save");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..400 {
        let (start, operand) = (random_int(&mut rng), random_int(&mut rng));
        let operand = if round % 2 == 1 {
            operand % 100_000
        } else {
            operand
        };
        p.age().set(&db, start).await.expect("set");
        let (expected, outcome) = if round % 3 == 0 {
            (start.checked_mul(operand), p.age().mul(&db, operand).await)
        } else {
            (start.checked_add(operand), p.age().incr(&db, operand).await)
        };
        match (expected, outcome) {
            (Some(want), Ok(got)) => assert_eq!(got, want, "round {round}: {start} op {operand}"),
            (None, Err(Error::Overflow { .. })) => assert_eq!(p.age, start, "round {round}"),
            (want, got) => {
                panic!("round {round}: {start} op {operand}: want {want:?}, got {got:?}")
            }
        }
    }
    // Unsigned: the same over u64, whose upper half no i64 holds.
    for round in 0..100 {
        let start = rng.next();
        let operand = rng.next() >> (rng.next() % 64);
        p.big().set(&db, start).await.expect("set");
        match (start.checked_add(operand), p.big().incr(&db, operand).await) {
            (Some(want), Ok(got)) => assert_eq!(got, want, "round {round}"),
            (None, Err(Error::Overflow { .. })) => assert_eq!(p.big, start),
            (want, got) => panic!("round {round}: {start} + {operand}: want {want:?}, got {got:?}"),
        }
        p.big().set(&db, start).await.expect("set");
        match (start.checked_sub(operand), p.big().decr(&db, operand).await) {
            (Some(want), Ok(got)) => assert_eq!(got, want, "round {round}"),
            (None, Err(Error::Overflow { .. })) => {}
            (want, got) => panic!("round {round}: {start} - {operand}: want {want:?}, got {got:?}"),
        }
    }
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Board")]
struct Board {
    #[rapyer(key)]
    id: String,
    items: Vec<i64>,
    notes: Vec<String>,
    places: Vec<Address>,
}

fn board(id: &str) -> Board {
    Board {
        id: id.to_string(),
        items: vec![],
        notes: vec![],
        places: vec![],
    }
}

async fn stored_board(raw: &mut redis::aio::MultiplexedConnection, db: &Db, b: &Board) -> Board {
    serde_json::from_value(stored(raw, &db.key(&b.key())).await).expect("stored Board")
}

#[tokio::test]
async fn list_operations_mirror_the_server() {
    let db = db().await;
    let mut raw = raw().await;
    let mut b = board("ops");
    b.save(&db).await.expect("save");

    assert_eq!(b.items().append(&db, 1).await.expect("append"), 1);
    assert_eq!(b.items().extend(&db, [2, 3, 4]).await.expect("extend"), 4);
    assert_eq!(b.items().insert(&db, 0, 0).await.expect("insert"), 5);
    assert_eq!(b.items().insert(&db, -1, 35).await.expect("insert -1"), 6);
    assert_eq!(b.items().insert(&db, 100, 9).await.expect("insert past"), 7);
    assert_eq!(b.items, vec![0, 1, 2, 3, 35, 4, 9]);
    assert_eq!(stored_board(&mut raw, &db, &b).await, b);

    assert_eq!(b.items().pop(&db).await.expect("pop"), 9);
    assert_eq!(b.items().pop_at(&db, 0).await.expect("pop_at"), 0);
    assert_eq!(b.items().pop_at(&db, -2).await.expect("pop_at -2"), 35);
    assert_eq!(b.items().get(&db, -1).await.expect("get"), 4);
    b.items().set(&db, 1, 20).await.expect("set");
    assert!(b.items().remove(&db, &3).await.expect("remove"));
    assert!(!b.items().remove(&db, &99).await.expect("remove absent"));
    assert_eq!(b.items, vec![1, 20, 4]);
    assert_eq!(b.items().len(&db).await.expect("len"), 3);
    assert_eq!(b.items().slice(&db, 1..).await.expect("slice"), vec![20, 4]);
    assert_eq!(stored_board(&mut raw, &db, &b).await, b);

    b.items().extend(&db, [5, 6, 7]).await.expect("extend");
    assert_eq!(b.items().trim(&db, (1, -1)).await.expect("trim"), 4);
    assert_eq!(b.items, vec![20, 4, 5, 6]);
    b.items().clear(&db).await.expect("clear");
    assert!(b.items.is_empty());
    assert_eq!(stored_board(&mut raw, &db, &b).await, b);

    // Hostile strings and nested models as elements; remove compares whole values.
    let hostile = ["a\"b", "x']", "\\", "new\nline", "🎉", "$.items[0]"];
    b.notes()
        .extend(&db, hostile.iter().map(|s| s.to_string()))
        .await
        .expect("extend");
    assert!(
        b.notes()
            .remove(&db, &"\\".to_string())
            .await
            .expect("remove")
    );
    let place = Address {
        city: "Oslo".into(),
        zip: 150,
    };
    b.places().append(&db, place.clone()).await.expect("append");
    assert!(b.places().remove(&db, &place).await.expect("remove model"));
    assert_eq!(stored_board(&mut raw, &db, &b).await, b);

    // A stale local list is reloaded by the next operation.
    let mut other = b.clone();
    other
        .items()
        .append(&db, 100)
        .await
        .expect("append elsewhere");
    assert_eq!(b.items().append(&db, 200).await.expect("append"), 2);
    assert_eq!(b.items, vec![100, 200]);

    // Pop on an empty list, and indexes out of range, as Python raises.
    b.items().clear(&db).await.expect("clear");
    match b.items().pop(&db).await {
        Err(Error::IndexOutOfRange {
            index, len, path, ..
        }) => {
            assert_eq!((index, len, path.as_str()), (-1, 0, "$.items"));
        }
        other => panic!("expected IndexOutOfRange, got {other:?}"),
    }
}

/// Python's `list[i]` position, or `None` where Python raises IndexError.
fn py_index(i: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let i = if i < 0 { i + len } else { i };
    (0..len).contains(&i).then_some(i as usize)
}

/// Python's `list.insert(i, v)`.
fn py_insert(list: &mut Vec<i64>, i: i64, v: i64) {
    let len = list.len() as i64;
    let at = if i < 0 { (i + len).max(0) } else { i.min(len) };
    list.insert(at as usize, v);
}

/// Python's `list[start:stop]`.
fn py_slice(list: &[i64], start: Option<i64>, stop: Option<i64>) -> Vec<i64> {
    let len = list.len() as i64;
    let clamp = |v: i64| if v < 0 { (v + len).max(0) } else { v.min(len) };
    let s = start.map_or(0, clamp);
    let e = stop.map_or(len, clamp).max(s);
    list[s as usize..e as usize].to_vec()
}

#[tokio::test]
async fn list_indexes_follow_python() {
    let db = db().await;
    let mut b = board("python");
    b.save(&db).await.expect("save");
    for len in 0..=4usize {
        let base: Vec<i64> = (0..len as i64).map(|v| v * 10).collect();
        for i in -6..=6i64 {
            let cell = format!("len {len}, index {i}");
            b.items().replace(&db, base.clone()).await.expect("replace");
            match (py_index(i, len), b.items().get(&db, i).await) {
                (Some(at), Ok(v)) => assert_eq!(v, base[at], "get {cell}"),
                (None, Err(Error::IndexOutOfRange { index, len: l, .. })) => {
                    assert_eq!((index, l), (i, len as u64), "get {cell}")
                }
                (want, got) => panic!("get {cell}: want {want:?}, got {got:?}"),
            }
            match (py_index(i, len), b.items().pop_at(&db, i).await) {
                (Some(at), Ok(v)) => {
                    let mut expected = base.clone();
                    assert_eq!(v, expected.remove(at), "pop_at {cell}");
                    assert_eq!(b.items, expected, "pop_at {cell}");
                }
                (None, Err(Error::IndexOutOfRange { .. })) => assert_eq!(b.items, base),
                (want, got) => panic!("pop_at {cell}: want {want:?}, got {got:?}"),
            }
            b.items().replace(&db, base.clone()).await.expect("replace");
            match (py_index(i, len), b.items().set(&db, i, -1).await) {
                (Some(at), Ok(())) => {
                    let mut expected = base.clone();
                    expected[at] = -1;
                    assert_eq!(b.items, expected, "set {cell}");
                }
                (None, Err(Error::IndexOutOfRange { .. })) => assert_eq!(b.items, base),
                (want, got) => panic!("set {cell}: want {want:?}, got {got:?}"),
            }
            b.items().replace(&db, base.clone()).await.expect("replace");
            b.items().insert(&db, i, 99).await.expect("insert");
            let mut expected = base.clone();
            py_insert(&mut expected, i, 99);
            assert_eq!(b.items, expected, "insert {cell}");
            assert_eq!(
                b.items().load(&db).await.expect("load"),
                &expected,
                "insert {cell}"
            );
        }
        b.items().replace(&db, base.clone()).await.expect("replace");
        for start in -6..=6i64 {
            for stop in -6..=6i64 {
                let got = b.items().slice(&db, (start, stop)).await.expect("slice");
                let want = py_slice(&base, Some(start), Some(stop));
                assert_eq!(got, want, "len {len} [{start}:{stop}]");
            }
            let got = b.items().slice(&db, start..).await.expect("slice");
            assert_eq!(
                got,
                py_slice(&base, Some(start), None),
                "len {len} [{start}:]"
            );
            let got = b.items().slice(&db, ..start).await.expect("slice");
            assert_eq!(
                got,
                py_slice(&base, None, Some(start)),
                "len {len} [:{start}]"
            );
            b.items().replace(&db, base.clone()).await.expect("replace");
            b.items().trim(&db, start..).await.expect("trim");
            assert_eq!(
                b.items,
                py_slice(&base, Some(start), None),
                "trim {len} [{start}:]"
            );
            assert_eq!(
                b.items().load(&db).await.expect("load"),
                &py_slice(&base, Some(start), None)
            );
            b.items().replace(&db, base.clone()).await.expect("replace");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_keep_every_element() {
    let db = db().await;
    let mut raw = raw().await;
    let b = board("appends");
    b.save(&db).await.expect("save");
    let mut tasks = Vec::new();
    for t in 0..32i64 {
        let db = db.clone();
        let mut mine = b.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200i64 {
                mine.items()
                    .append(&db, t * 1_000 + i)
                    .await
                    .expect("append");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let mut stored = stored_board(&mut raw, &db, &b).await.items;
    assert_eq!(stored.len(), 6_400);
    stored.sort_unstable();
    let mut expected: Vec<i64> = (0..32)
        .flat_map(|t| (0..200).map(move |i| t * 1_000 + i))
        .collect();
    expected.sort_unstable();
    assert_eq!(stored, expected);
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Settings")]
struct Settings {
    #[rapyer(key)]
    id: String,
    prefs: std::collections::HashMap<String, String>,
    counts: std::collections::BTreeMap<String, i64>,
    groups: std::collections::HashMap<String, std::collections::BTreeMap<String, i64>>,
}

fn settings(id: &str) -> Settings {
    Settings {
        id: id.to_string(),
        prefs: Default::default(),
        counts: Default::default(),
        groups: Default::default(),
    }
}

async fn stored_settings(
    raw: &mut redis::aio::MultiplexedConnection,
    db: &Db,
    s: &Settings,
) -> Settings {
    serde_json::from_value(stored(raw, &db.key(&s.key())).await).expect("stored Settings")
}

/// Keys that are syntax somewhere: JSONPath, JSON, Lua, RediSearch, shells.
const HOSTILE_KEYS: &[&str] = &[
    "a.b",
    "x y",
    "q\"uote",
    "it's",
    "both \" and '",
    "['inj']",
    "$",
    "*",
    "\\",
    "back\\slash\"",
    "new\nline",
    "tab\there",
    "🎉",
    "]",
    "[0]",
    "?(@.x)",
    "a'] or 1==1 --",
    "",
];

#[tokio::test]
async fn dict_keys_are_data_whatever_they_hold() {
    let db = db().await;
    let mut raw = raw().await;
    let mut s = settings("hostile");
    s.save(&db).await.expect("save");
    for (i, key) in HOSTILE_KEYS.iter().enumerate() {
        let value = format!("v{i} \"{key}\"");
        assert_eq!(
            s.prefs()
                .insert(&db, key, value.clone())
                .await
                .expect("insert"),
            None,
            "{key:?}"
        );
        assert_eq!(
            s.prefs().get(&db, key).await.expect("get"),
            Some(value.clone()),
            "{key:?}"
        );
        assert_eq!(
            s.prefs()
                .insert(&db, key, format!("{value}!"))
                .await
                .expect("again"),
            Some(value),
            "{key:?}"
        );
    }
    assert_eq!(stored_settings(&mut raw, &db, &s).await, s);
    assert_eq!(s.prefs().len(&db).await.expect("len"), HOSTILE_KEYS.len());
    let mut keys = s.prefs().keys(&db).await.expect("keys");
    keys.sort();
    let mut expected: Vec<String> = HOSTILE_KEYS.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(keys, expected);

    for key in HOSTILE_KEYS.iter().step_by(2) {
        assert!(
            s.prefs().remove(&db, key).await.expect("remove").is_some(),
            "{key:?}"
        );
        assert_eq!(
            s.prefs().remove(&db, key).await.expect("again"),
            None,
            "{key:?}"
        );
        assert_eq!(s.prefs().get(&db, key).await.expect("get"), None, "{key:?}");
    }
    assert_eq!(stored_settings(&mut raw, &db, &s).await, s);

    s.counts()
        .update(
            &db,
            HOSTILE_KEYS
                .iter()
                .enumerate()
                .map(|(i, k)| (k.to_string(), i as i64)),
        )
        .await
        .expect("update");
    assert_eq!(s.counts.len(), HOSTILE_KEYS.len());
    assert_eq!(stored_settings(&mut raw, &db, &s).await, s);
    s.counts().clear(&db).await.expect("clear");
    assert!(s.counts.is_empty());
    assert_eq!(stored_settings(&mut raw, &db, &s).await, s);
}

#[tokio::test]
async fn dict_values_are_replaced_whole() {
    let db = db().await;
    let mut raw = raw().await;
    let mut s = settings("objects");
    s.save(&db).await.expect("save");
    for key in ["plain", "both \" and '", "back\\slash"] {
        let first = std::collections::BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 2)]);
        let second = std::collections::BTreeMap::from([("c".to_string(), 3)]);
        s.groups()
            .insert(&db, key, first.clone())
            .await
            .expect("insert");
        let previous = s
            .groups()
            .insert(&db, key, second.clone())
            .await
            .expect("replace");
        assert_eq!(previous, Some(first), "{key:?}");
        assert_eq!(s.groups.get(key), Some(&second), "{key:?}");
    }
    assert_eq!(stored_settings(&mut raw, &db, &s).await, s);

    // Wrong types and missing models, as for every handle.
    let before = json_get(&mut raw, &db.key(&s.key())).await;
    let _: () = redis::cmd("JSON.SET")
        .arg(db.key(&s.key()))
        .arg("$.prefs")
        .arg("[]")
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");
    let mid = json_get(&mut raw, &db.key(&s.key())).await;
    assert_ne!(mid, before);
    // Values convert with Into, as in `insert(&db, "k", "v")`; lists the same way.
    match s.prefs().insert(&db, "k", "v").await {
        Err(Error::TypeMismatch { path, found, .. }) => {
            assert_eq!((path.as_str(), found.as_str()), ("$.prefs", "array"));
        }
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    assert_eq!(json_get(&mut raw, &db.key(&s.key())).await, mid);
    assert!(matches!(
        settings("ghost").prefs().insert(&db, "k", "v").await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn random_unicode_keys_round_trip_through_every_dict_operation() {
    let db = db().await;
    let mut raw = raw().await;
    let mut s = settings("random");
    s.save(&db).await.expect("save");
    let alphabet: Vec<char> = "aZ09 .'\"\\[]{}$*@?!,:;-_/\n\t\r🎉ü中\u{0}\u{7f}\u{200b}"
        .chars()
        .collect();
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut reference = std::collections::BTreeMap::new();
    for round in 0..1_500 {
        let len = (rng.next() % 6) as usize;
        let key: String = (0..len)
            .map(|_| match rng.next() % 4 {
                // Any scalar value at all, now and then.
                0 => char::from_u32((rng.next() % 0x11_0000) as u32).unwrap_or('\u{fffd}'),
                _ => alphabet[(rng.next() % alphabet.len() as u64) as usize],
            })
            .collect();
        let value = (rng.next() % 1_000) as i64 - 500;
        match rng.next() % 4 {
            0 | 1 => {
                let previous = s.counts().insert(&db, &key, value).await.expect("insert");
                assert_eq!(
                    previous,
                    reference.insert(key.clone(), value),
                    "round {round} {key:?}"
                );
            }
            2 => {
                let removed = s.counts().remove(&db, &key).await.expect("remove");
                assert_eq!(removed, reference.remove(&key), "round {round} {key:?}");
            }
            _ => {
                let got = s.counts().get(&db, &key).await.expect("get");
                assert_eq!(got, reference.get(&key).copied(), "round {round} {key:?}");
            }
        }
        assert_eq!(s.counts, reference, "local after round {round}");
    }
    assert_eq!(stored_settings(&mut raw, &db, &s).await.counts, reference);
}

#[cfg(feature = "chrono")]
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Event")]
struct Event {
    #[rapyer(key)]
    id: String,
    starts: chrono::DateTime<chrono::FixedOffset>,
    logged: chrono::DateTime<chrono::Utc>,
    blob: Bytes,
}

#[cfg(feature = "chrono")]
#[tokio::test]
async fn date_times_move_on_the_server_like_chrono_and_bytes_round_trip() {
    use chrono::{Duration as Span, FixedOffset, TimeZone, Utc};
    use std::time::Duration;

    let db = db().await;
    let mut raw = raw().await;
    let paris = FixedOffset::east_opt(3600).expect("offset");
    let mut e = Event {
        id: "e1".into(),
        starts: paris
            .with_ymd_and_hms(2024, 2, 28, 23, 59, 59)
            .single()
            .expect("date")
            + Span::nanoseconds(123_400_000),
        logged: Utc
            .with_ymd_and_hms(1999, 12, 31, 23, 59, 59)
            .single()
            .expect("date"),
        blob: Bytes::from(vec![1, 2, 3]),
    };
    e.save(&db).await.expect("save");
    let event_key = db.key(&e.key());
    let stored_event = |raw: &mut redis::aio::MultiplexedConnection| {
        let key = event_key.clone();
        let mut raw = raw.clone();
        async move {
            let v = stored(&mut raw, &key).await;
            serde_json::from_value::<Event>(v).expect("stored Event")
        }
    };

    // Across a leap day, midnight and a year end; sub-second precision and offsets kept.
    let start = e.starts;
    let moved = e
        .starts()
        .add(&db, Duration::from_secs(1))
        .await
        .expect("add");
    assert_eq!(moved, start + Span::seconds(1));
    assert_eq!(moved.offset(), start.offset());
    assert_eq!(
        stored(&mut raw, &event_key).await["starts"],
        json!("2024-02-29T00:00:00.123400+01:00")
    );
    let moved = e
        .starts()
        .add(&db, Duration::new(86_400 * 366, 1))
        .await
        .expect("add");
    assert_eq!(
        moved,
        start + Span::seconds(1 + 86_400 * 366) + Span::nanoseconds(1)
    );
    let moved = e
        .starts()
        .sub(&db, Duration::new(86_400 * 366 + 1, 1))
        .await
        .expect("sub");
    assert_eq!(moved, start);
    let logged = e
        .logged()
        .add(&db, Duration::from_millis(1_500))
        .await
        .expect("add utc");
    assert_eq!(logged.to_rfc3339(), "2000-01-01T00:00:00.500+00:00");
    assert_eq!(
        stored(&mut raw, &event_key).await["logged"],
        json!("2000-01-01T00:00:00.500Z")
    );
    assert_eq!(stored_event(&mut raw).await, e);

    // Random instants between 1900 and 2100, random offsets, random shifts: as chrono.
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for round in 0..200 {
        // Whole minutes: RFC 3339 (and so chrono's serde form) has no offset seconds.
        let minutes = (rng.next() % 1_680) as i32 - 840;
        let offset = FixedOffset::east_opt(minutes * 60).expect("offset");
        let instant = (rng.next() % 6_311_433_600) as i64 - 2_208_988_800;
        let nanos = [0, 500_000_000, 123_000, 1, 999_999_999][(rng.next() % 5) as usize];
        let start = offset
            .timestamp_opt(instant, nanos)
            .single()
            .expect("instant");
        e.starts().set(&db, start).await.expect("set");
        let by = Duration::new(
            rng.next() % 400_000_000,
            (rng.next() % 1_000_000_000) as u32,
        );
        let span = Span::from_std(by).expect("span");
        let later = e.starts().add(&db, by).await.expect("add");
        assert_eq!(later, start + span, "round {round}: {start} + {by:?}");
        assert_eq!(later.offset(), start.offset());
        let earlier = e.starts().sub(&db, by).await.expect("sub");
        assert_eq!(earlier, start, "round {round}");
        let earlier = e.starts().sub(&db, by).await.expect("sub");
        assert_eq!(earlier, start - span, "round {round}: {start} - {by:?}");
    }
    assert_eq!(stored_event(&mut raw).await, e);

    let all_bytes: Vec<u8> = (0..=255).collect();
    e.blob().set(&db, all_bytes.clone()).await.expect("bytes");
    assert_eq!(
        e.blob().load(&db).await.expect("load").as_ref(),
        &all_bytes[..]
    );
    assert_eq!(stored_event(&mut raw).await, e);

    // Text that is not a date-time is a type mismatch, and nothing changes.
    let _: () = redis::cmd("JSON.SET")
        .arg(&event_key)
        .arg("$.starts")
        .arg("\"next tuesday\"")
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");
    let before = json_get(&mut raw, &event_key).await;
    assert!(matches!(
        e.starts().add(&db, Duration::from_secs(1)).await,
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(json_get(&mut raw, &event_key).await, before);
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Point {
    x: f64,
    y: f32,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Gauge")]
struct Gauge {
    #[rapyer(key)]
    id: String,
    value: f64,
    small: f32,
    at: Point,
    samples: Vec<f64>,
    named: HashMap<String, f64>,
    maybe: Option<f64>,
}

fn gauge(id: &str) -> Gauge {
    Gauge {
        id: id.into(),
        value: 1.5,
        small: 0.5,
        at: Point { x: 1.0, y: 2.0 },
        samples: vec![1.0, 2.0],
        named: HashMap::from([("a".to_string(), 1.0)]),
        maybe: None,
    }
}

#[tokio::test]
async fn non_finite_floats_are_refused_by_every_handle_write_and_nothing_is_written() {
    let db = db().await;
    let mut raw = raw().await;
    let mut g = gauge("g1");
    g.save(&db).await.expect("save");
    let key = db.key(&g.key());
    let before = json_get(&mut raw, &key).await;
    let local = g.clone();
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let bad32 = bad as f32;
        assert_non_finite("set", g.value().set(&db, bad).await, &key, "$.value");
        assert_non_finite("incr", g.value().incr(&db, bad).await, &key, "$.value");
        assert_non_finite("decr", g.value().decr(&db, bad).await, &key, "$.value");
        assert_non_finite("mul", g.value().mul(&db, bad).await, &key, "$.value");
        assert_non_finite("f32 set", g.small().set(&db, bad32).await, &key, "$.small");
        assert_non_finite(
            "f32 incr",
            g.small().incr(&db, bad32).await,
            &key,
            "$.small",
        );
        assert_non_finite(
            "nested set",
            g.at().set(&db, Point { x: bad, y: 0.0 }).await,
            &key,
            "$.at.x",
        );
        assert_non_finite(
            "nested field",
            g.at().y().set(&db, bad32).await,
            &key,
            "$.at.y",
        );
        assert_non_finite(
            "append",
            g.samples().append(&db, bad).await,
            &key,
            "$.samples",
        );
        assert_non_finite(
            "extend",
            g.samples().extend(&db, [3.0, bad]).await,
            &key,
            "$.samples",
        );
        assert_non_finite(
            "list insert",
            g.samples().insert(&db, 0, bad).await,
            &key,
            "$.samples",
        );
        assert_non_finite(
            "list set",
            g.samples().set(&db, 0, bad).await,
            &key,
            "$.samples",
        );
        assert_non_finite(
            "list replace",
            g.samples().replace(&db, vec![0.0, 1.0, bad]).await,
            &key,
            "$.samples[2]",
        );
        assert_non_finite(
            "dict insert",
            g.named().insert(&db, "b c", bad).await,
            &key,
            "$.named[\"b c\"]",
        );
        assert_non_finite(
            "dict update",
            g.named()
                .update(&db, [("ok".to_string(), 1.0), ("z".to_string(), bad)])
                .await,
            &key,
            "$.named[\"z\"]",
        );
        assert_non_finite(
            "dict replace",
            g.named()
                .replace(&db, HashMap::from([("k".to_string(), bad)]))
                .await,
            &key,
            "$.named.k",
        );
        assert_non_finite(
            "option set",
            g.maybe().set(&db, Some(bad)).await,
            &key,
            "$.maybe",
        );
        assert_eq!(
            json_get(&mut raw, &key).await,
            before,
            "{bad}: the document changed"
        );
        assert_eq!(g, local, "{bad}: the local model changed");
        assert_eq!(Gauge::get(&db, "g1").await.expect("still readable"), local);
    }
}

#[tokio::test]
async fn float_results_that_overflow_their_type_are_refused_and_nothing_is_written() {
    let db = db().await;
    let mut raw = raw().await;
    let mut g = gauge("g2");
    g.value = 1.5e308;
    g.small = 3.0e38;
    g.save(&db).await.expect("save");
    let key = db.key(&g.key());
    let before = json_get(&mut raw, &key).await;
    let local = g.clone();
    let outcomes = vec![
        (
            "f64 + 1.5e308",
            "f64",
            "$.value",
            g.value().incr(&db, 1.5e308).await,
        ),
        (
            "f64 - (-1.5e308)",
            "f64",
            "$.value",
            g.value().decr(&db, -1.5e308).await,
        ),
        ("f64 * 10", "f64", "$.value", g.value().mul(&db, 10.0).await),
        (
            "f64 * -10",
            "f64",
            "$.value",
            g.value().mul(&db, -10.0).await,
        ),
    ];
    let outcomes32 = vec![
        (
            "f32 + 1e38",
            "f32",
            "$.small",
            g.small().incr(&db, 1.0e38).await,
        ),
        ("f32 * 2", "f32", "$.small", g.small().mul(&db, 2.0).await),
        ("f32 * -2", "f32", "$.small", g.small().mul(&db, -2.0).await),
        (
            "f32 - 3.4e38",
            "f32",
            "$.small",
            g.small().decr(&db, -f32::MAX).await,
        ),
    ];
    let all = outcomes
        .into_iter()
        .map(|(w, t, p, o)| (w, t, p, o.map(|_| ())))
        .chain(
            outcomes32
                .into_iter()
                .map(|(w, t, p, o)| (w, t, p, o.map(|_| ()))),
        );
    for (what, ty, at, outcome) in all {
        match outcome {
            Err(Error::Overflow { key: k, path, kind }) => {
                assert_eq!(k, key, "{what}");
                assert_eq!(path, at, "{what}");
                assert_eq!(kind, ty, "{what}");
            }
            other => panic!("{what}: expected Overflow, got {other:?}"),
        }
    }
    let message = g
        .small()
        .incr(&db, 1.0e38)
        .await
        .expect_err("overflow")
        .to_string();
    assert!(message.contains("number overflow (f32)"), "{message}");
    assert_eq!(
        json_get(&mut raw, &key).await,
        before,
        "the document changed"
    );
    assert_eq!(g, local, "the local model changed");
    // Within range, both still work.
    let small = g
        .small()
        .incr(&db, -1.0e38)
        .await
        .expect("f32 within range");
    assert!((small - 2.0e38).abs() < 1.0e32, "{small}");
    let value = g.value().mul(&db, 0.5).await.expect("f64 within range");
    assert!((value - 0.75e308).abs() < 1.0e294, "{value}");
    assert_eq!(Gauge::get(&db, "g2").await.expect("readable"), g);
}

/// `extend` of 100,000 items, far past Lua's unpack limit (8,000 values), is one step: every
/// item lands, in order, and the local list equals the stored one.
#[tokio::test]
async fn extend_of_a_hundred_thousand_items_lands_every_item() {
    let db = db().await;
    let mut raw = raw().await;
    let mut b = board("extend");
    b.items = vec![-1, -2];
    b.save(&db).await.expect("save");
    let len = b
        .items()
        .extend(&db, (0..100_000).map(|i| i * 3 - 7))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(len, 100_002);
    let key = db.key(&b.key());
    let stored_len: Vec<usize> = redis::cmd("JSON.ARRLEN")
        .arg(&key)
        .arg("$.items")
        .query_async(&mut raw)
        .await
        .expect("JSON.ARRLEN");
    assert_eq!(stored_len, vec![100_002]);
    let mut want = vec![-1, -2];
    want.extend((0..100_000).map(|i| i * 3 - 7));
    assert_eq!(b.items, want);
    assert_eq!(stored_board(&mut raw, &db, &b).await.items, want);
}

/// Keys no JSONPath step can address (backslash, control characters, both quote kinds,
/// whitespace at an end), each with an emoji, brackets, dots and `$` besides.
fn merge_key(i: usize) -> String {
    match i % 5 {
        0 => format!("k{i}\\[\"$\"].🎉"),
        1 => format!("k{i}\n'\"*"),
        2 => format!(" k{i}.['x']"),
        3 => format!("k{i}\t🎉 "),
        _ => format!("k{i}\"{{}}'"),
    }
}

/// 5,000 hostile keys into a dict of 100,000 entries: one `update`, the stored dict equal to
/// the local one (each key once cost a copy of the whole dict in the reply: 74 s, 14 GB).
#[tokio::test]
async fn five_thousand_hostile_keys_update_a_hundred_thousand_entry_dict() {
    let db = db().await;
    let mut raw = raw().await;
    let mut s = settings("big-dict");
    s.counts = (0..100_000).map(|i| (format!("plain{i}"), i)).collect();
    s.save(&db).await.expect("save");
    let entries: Vec<(String, i64)> = (0..5_000)
        .map(|i| (merge_key(i), i as i64 - 2_500))
        .chain((0..50).map(|i| (format!("plain{i}"), -(i as i64))))
        .collect();
    s.counts()
        .update(&db, entries.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.counts.len(), 105_000);
    for (k, v) in &entries {
        assert_eq!(s.counts.get(k), Some(v), "{k:?}");
    }
    assert_eq!(stored_settings(&mut raw, &db, &s).await, s);
    // And again over the same keys: replaced, not merged or duplicated.
    s.counts()
        .update(&db, entries.iter().map(|(k, v)| (k.clone(), v * 2)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.counts.len(), 105_000);
    assert_eq!(stored_settings(&mut raw, &db, &s).await, s);
    assert_eq!(s.counts().len(&db).await.expect("len"), 105_000);
    // One key at a time, each kind: the value from before, read on the server.
    for i in 10..15 {
        let (key, was) = (merge_key(i), (i as i64 - 2_500) * 2);
        let got = s.counts().insert(&db, &key, 1).await.expect("insert");
        assert_eq!(got, Some(was), "{key:?}");
        assert_eq!(
            s.counts().get(&db, &key).await.expect("get"),
            Some(1),
            "{key:?}"
        );
        assert_eq!(
            s.counts().remove(&db, &key).await.expect("remove"),
            Some(1),
            "{key:?}"
        );
        assert_eq!(
            s.counts().get(&db, &key).await.expect("get"),
            None,
            "{key:?}"
        );
    }
    assert_eq!(stored_settings(&mut raw, &db, &s).await, s);
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Sparse")]
struct Sparse {
    #[rapyer(key)]
    id: String,
    opts: HashMap<String, Option<i64>>,
    nested: HashMap<String, std::collections::BTreeMap<String, Option<i64>>>,
}

/// `None` is stored as `null` under every key, on the merge path too (where a merge patch's
/// `null` would delete the entry), also inside an object value; the local map equals what
/// the server holds after each call.
#[tokio::test]
async fn none_values_are_stored_as_null_under_every_key() {
    let db = db().await;
    let mut raw = raw().await;
    let mut s = Sparse {
        id: "nulls".into(),
        opts: HashMap::from([("keep".to_string(), Some(1))]),
        nested: HashMap::new(),
    };
    s.save(&db).await.expect("save");
    let key = db.key(&s.key());
    let stored_sparse = |raw: &mut redis::aio::MultiplexedConnection| {
        let (key, mut raw) = (key.clone(), raw.clone());
        async move {
            serde_json::from_value::<Sparse>(stored(&mut raw, &key).await).expect("stored Sparse")
        }
    };
    for key in [
        "plain",
        "back\\slash",
        "both \" and '",
        " lead",
        "new\nline",
    ] {
        assert_eq!(s.opts().insert(&db, key, None).await.expect("insert"), None);
        assert_eq!(s.opts.get(key), Some(&None), "{key:?}");
        let back = stored_sparse(&mut raw).await;
        assert_eq!(back.opts.get(key), Some(&None), "{key:?}: stored as null");
        assert_eq!(back, s, "{key:?}");
        // Replacing null by a value and back returns what the server had.
        assert_eq!(
            s.opts().insert(&db, key, Some(5)).await.expect("again"),
            Some(None),
            "{key:?}"
        );
        assert_eq!(s.opts().get(&db, key).await.expect("get"), Some(Some(5)));
        assert_eq!(stored_sparse(&mut raw).await, s, "{key:?}");
    }
    s.opts()
        .update(
            &db,
            [
                ("back\\slash".to_string(), None),
                ("u\\pdated".to_string(), None),
                ("plain".to_string(), None),
                ("x\ny".to_string(), Some(2)),
            ],
        )
        .await
        .expect("update");
    assert_eq!(s.opts.get("u\\pdated"), Some(&None));
    assert_eq!(stored_sparse(&mut raw).await, s);
    // A key given twice keeps its last value, null or not.
    s.opts()
        .update(
            &db,
            [
                ("twice\\".to_string(), None),
                ("twice\\".to_string(), Some(3)),
            ],
        )
        .await
        .expect("update with a key twice");
    s.opts()
        .update(
            &db,
            [
                ("again\\".to_string(), Some(4)),
                ("again\\".to_string(), None),
            ],
        )
        .await
        .expect("update with a key twice, null last");
    assert_eq!(s.opts.get("twice\\"), Some(&Some(3)));
    assert_eq!(s.opts.get("again\\"), Some(&None));
    assert_eq!(stored_sparse(&mut raw).await, s);
    let inner =
        std::collections::BTreeMap::from([("gone?".to_string(), None), ("n".to_string(), Some(3))]);
    for key in ["plain", "both \" and '"] {
        s.nested()
            .insert(&db, key, inner.clone())
            .await
            .expect("nested insert");
    }
    s.nested()
        .update(&db, [("tab\t".to_string(), inner.clone())])
        .await
        .expect("nested update");
    let text = json_get(&mut raw, &key).await.expect("stored");
    assert_eq!(text.matches("\"gone?\":null").count(), 3, "{text}");
    assert_eq!(stored_sparse(&mut raw).await, s);
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Deep")]
struct Deep {
    #[rapyer(key)]
    id: String,
    items: Vec<serde_json::Value>,
    map: HashMap<String, serde_json::Value>,
}

/// A value that would nest the document deeper than RedisJSON or serde_json parse (127
/// levels), far into a big `extend` or `update` (whose writes go in several commands), is
/// refused before anything is sent: a typed error naming the place, the document
/// byte-identical. (RedisJSON takes a 127-level value under `$.map["k"]`, and then the
/// document no longer loads.)
#[tokio::test]
async fn values_nested_too_deep_are_refused_before_any_write() {
    let db = db().await;
    let mut raw = raw().await;
    let mut d = Deep {
        id: "deep".into(),
        items: vec![json!(1)],
        map: HashMap::from([("a".to_string(), json!(1))]),
    };
    d.save(&db).await.expect("save");
    let key = db.key(&d.key());
    let dump = |raw: &mut redis::aio::MultiplexedConnection| {
        let (key, mut raw) = (key.clone(), raw.clone());
        async move {
            let bytes: Option<Vec<u8>> = redis::cmd("DUMP")
                .arg(&key)
                .query_async(&mut raw)
                .await
                .expect("DUMP");
            bytes
        }
    };
    let before = dump(&mut raw).await;
    let local = d.clone();

    // Under `$.items[i]` (2 levels) a value may nest 125.
    let mut items: Vec<serde_json::Value> = (0..5_000).map(|i| json!(i)).collect();
    items.push(common::nested(126));
    match d.items().extend(&db, items).await {
        Err(Error::InvalidOp { path, .. }) => assert_eq!(path, "$.items[5001]"),
        other => panic!("expected InvalidOp, got {other:?}"),
    }
    for deep_key in ["deep", "deep\\"] {
        let entries: Vec<(String, serde_json::Value)> = (0..3_000)
            .map(|i| (format!("k{i}{deep_key}"), json!(i)))
            .chain([(deep_key.to_string(), common::nested(126))])
            .collect();
        match d.map().update(&db, entries).await {
            Err(Error::InvalidOp { path, .. }) => {
                assert_eq!(path, format!("$.map[{}]", json!(deep_key)));
            }
            other => panic!("expected InvalidOp, got {other:?}"),
        }
    }
    assert_eq!(dump(&mut raw).await, before, "nothing written");
    assert_eq!(d, local, "the local model unchanged");
    // 125 levels there is what can be written and read back.
    d.map()
        .insert(&db, "ok\\", common::nested(125))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    d.items()
        .append(&db, common::nested(125))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(Deep::get(&db, "deep").await.expect("get"), d);
}

/// A key no path step reaches (it starts with a space) is looked up in the dict's text: the
/// same key inside an entry's value is not the dict's own entry.
#[tokio::test]
async fn a_key_held_by_a_nested_map_is_not_taken_for_the_dicts_own() {
    let db = db().await;
    let mut raw = raw().await;
    let mut s = settings("nested-same-key");
    s.save(&db).await.expect("save");
    let inner = std::collections::BTreeMap::from([(" lead".to_string(), 7)]);
    s.groups()
        .insert(&db, "first", inner.clone())
        .await
        .expect("insert");
    assert_eq!(s.groups().get(&db, " lead").await.expect("get"), None);
    assert_eq!(
        s.groups()
            .insert(&db, " lead", inner.clone())
            .await
            .expect("insert"),
        None
    );
    let other = std::collections::BTreeMap::from([("x".to_string(), 1)]);
    assert_eq!(
        s.groups()
            .insert(&db, " lead", other.clone())
            .await
            .expect("again"),
        Some(inner.clone())
    );
    assert_eq!(
        s.groups().remove(&db, " lead").await.expect("remove"),
        Some(other)
    );
    assert_eq!(s.groups().remove(&db, " lead").await.expect("again"), None);
    assert_eq!(stored_settings(&mut raw, &db, &s).await, s);
}

/// The field at `path` as the server writes it (`JSON.GET key path`).
async fn raw_field(raw: &mut redis::aio::MultiplexedConnection, key: &str, path: &str) -> String {
    redis::cmd("JSON.GET")
        .arg(key)
        .arg(path)
        .query_async(raw)
        .await
        .expect("JSON.GET")
}

#[tokio::test]
async fn increments_are_exact_on_both_sides_of_the_fast_path_border() {
    // Operations on values and operands below 10^15 take the field script's fast path (one
    // read, one JSON.NUMINCRBY); larger ones the whole path (string arithmetic). Random
    // values drawn around that border and around every type's bounds, each checked against
    // i128 arithmetic: the result and the server's text, or Overflow with nothing written.
    let db = db().await;
    let mut raw = raw().await;
    let mut p = person("border");
    p.save(&db).await.expect("save");
    let key = db.key(&p.key());
    let border: i128 = 1_000_000_000_000_000;
    let mut rng = Rng(0x5eed_f00d);
    let pick = |rng: &mut Rng, lo: i128, hi: i128| -> i128 {
        let near = [0, 1, -1, border, -border, border - 1, 1 - border, lo, hi];
        let base = near[rng.below(near.len() as u64) as usize];
        let jitter = rng.below(5) as i128 - 2;
        let v = if rng.below(4) == 0 {
            // anywhere in the type
            lo + (i128::from(rng.next()) << 64 | i128::from(rng.next())).rem_euclid(hi - lo + 1)
        } else {
            base + jitter
        };
        v.clamp(lo, hi)
    };
    let fields: [(&str, &str, i128, i128); 4] = [
        ("age", "i64", i64::MIN.into(), i64::MAX.into()),
        ("big", "u64", 0, u64::MAX.into()),
        ("small", "i8", i8::MIN.into(), i8::MAX.into()),
        ("tiny", "u8", 0, u8::MAX.into()),
    ];
    let (mut fast_ok, mut overflows) = (0, 0);
    for round in 0..400 {
        let (name, kind, lo, hi) = fields[round % fields.len()];
        let path = format!("$.{name}");
        let start = pick(&mut rng, lo, hi);
        json_set(&mut raw, &key, &path, &start.to_string()).await;
        p = Person::get(&db, "border").await.expect("get");
        let before = dump(&mut raw, &key).await;
        let by = pick(&mut rng, lo, hi);
        let decr = rng.below(2) == 0;
        let want = if decr { start - by } else { start + by };
        let got: Result<i128> = match (name, decr) {
            ("age", false) => p.age().incr(&db, by as i64).await.map(i128::from),
            ("age", true) => p.age().decr(&db, by as i64).await.map(i128::from),
            ("big", false) => p.big().incr(&db, by as u64).await.map(i128::from),
            ("big", true) => p.big().decr(&db, by as u64).await.map(i128::from),
            ("small", false) => p.small().incr(&db, by as i8).await.map(i128::from),
            ("small", true) => p.small().decr(&db, by as i8).await.map(i128::from),
            ("tiny", false) => p.tiny().incr(&db, by as u8).await.map(i128::from),
            _ => p.tiny().decr(&db, by as u8).await.map(i128::from),
        };
        let what = format!("{name}: {start} {} {by}", if decr { "-" } else { "+" });
        if (lo..=hi).contains(&want) {
            assert_eq!(got.expect(&what), want, "{what}");
            assert_eq!(
                raw_field(&mut raw, &key, &path).await,
                format!("[{want}]"),
                "{what}: the server's value"
            );
            if start.abs() < border && by.abs() < border && want.abs() < border {
                fast_ok += 1;
            }
        } else {
            match got {
                Err(Error::Overflow { kind: k, .. }) => assert_eq!(k, kind, "{what}"),
                other => panic!("{what}: expected Overflow, got {other:?}"),
            }
            assert_eq!(
                dump(&mut raw, &key).await,
                before,
                "{what}: the document changed"
            );
            overflows += 1;
        }
    }
    // Both paths and both outcomes were exercised.
    assert!(
        fast_ok > 50 && overflows > 20,
        "{fast_ok} fast, {overflows} overflows"
    );
}

#[tokio::test]
async fn fast_paths_refuse_what_the_whole_path_refuses_and_write_nothing() {
    // Documents another writer made wrong for the model: each field operation with a fast
    // path must decline there (nothing written: DUMP equal) and give the whole path's
    // typed error.
    let db = db().await;
    let mut raw = raw().await;
    let cases: [(&str, &str, &str); 11] = [
        ("age holds a float", "$.age", "1.5"),
        ("age holds a u64", "$.age", "18446744073709551615"),
        ("age holds a string", "$.age", "\"12\""),
        ("age holds a float with an exponent", "$.age", "1e3"),
        ("score holds a string", "$.score", "\"1.5\""),
        ("score holds null", "$.score", "null"),
        ("fullName holds a number", "$.fullName", "5"),
        ("active holds a string", "$.active", "\"yes\""),
        ("the tags hold an object", "$[\"the tags\"]", "{\"a\":1}"),
        ("the tags hold a string", "$[\"the tags\"]", "\"a\""),
        ("address holds an array", "$.address", "[1]"),
    ];
    for (n, (what, path, value)) in cases.into_iter().enumerate() {
        let id = format!("wrong-{n}");
        let mut p = person(&id);
        p.save(&db).await.expect("save");
        let key = db.key(&p.key());
        json_set(&mut raw, &key, path, value).await;
        let original = raw_field(&mut raw, &key, path).await;
        let outcomes: Vec<(&str, Result<()>)> = vec![
            ("age incr", p.age().incr(&db, 1).await.map(|_| ())),
            ("age load", p.age().load(&db).await.map(|_| ())),
            ("score incr", p.score().incr(&db, 0.5).await.map(|_| ())),
            ("fullName set", p.full_name().set(&db, "x").await),
            (
                "fullName append",
                p.full_name().append(&db, "x").await.map(|_| ()),
            ),
            ("fullName load", p.full_name().load(&db).await.map(|_| ())),
            ("active toggle", p.active().toggle(&db).await.map(|_| ())),
            ("active set", p.active().set(&db, false).await),
            ("tags append", p.tags().append(&db, "x").await.map(|_| ())),
            ("tags load", p.tags().load(&db).await.map(|_| ())),
            ("address city set", p.address().city().set(&db, "y").await),
        ];
        for (op, outcome) in outcomes {
            // The operation on the broken field fails with its typed error; one on another
            // field succeeds (and is undone below by comparing only the broken field's case).
            let broken = match path {
                "$.age" => op.starts_with("age"),
                "$.score" => op.starts_with("score"),
                "$.fullName" => op.starts_with("fullName"),
                "$.active" => op.starts_with("active"),
                "$.address" => op.starts_with("address"),
                _ => op.starts_with("tags"),
            };
            if !broken {
                outcome.unwrap_or_else(|e| panic!("{what}: {op}: {e:?}"));
                continue;
            }
            match outcome {
                Err(Error::TypeMismatch { key: k, .. }) | Err(Error::Overflow { key: k, .. }) => {
                    assert_eq!(k, key, "{what}: {op}")
                }
                // A u64 read into an i64 field: a decoding error, as from a whole-model read.
                Err(Error::Deserialize { .. }) if op.ends_with("load") => {}
                other => panic!("{what}: {op}: expected a typed refusal, got {other:?}"),
            }
        }
        // The operations on other fields wrote; the broken field is byte for byte as it was.
        let after: String = raw_field(&mut raw, &key, path).await;
        assert_eq!(after, original, "{what}: the broken field changed");
    }
    // A whole document untouched by a refused fast-path operation (DUMP equal).
    let mut p = person("wrong-dump");
    p.save(&db).await.expect("save");
    let key = db.key(&p.key());
    json_set(&mut raw, &key, "$.age", "1.5").await;
    json_set(&mut raw, &key, "$.fullName", "7").await;
    json_set(&mut raw, &key, "$.active", "0").await;
    json_set(&mut raw, &key, "$[\"the tags\"]", "{}").await;
    let before = dump(&mut raw, &key).await;
    assert!(matches!(
        p.age().incr(&db, 1).await,
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        p.full_name().append(&db, "x").await,
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        p.full_name().set(&db, "x").await,
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        p.active().toggle(&db).await,
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        p.tags().append(&db, "x").await,
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(dump(&mut raw, &key).await, before, "the document changed");
    // A missing document: NotFound from every fast-path operation, nothing created.
    let mut ghost = person("ghost-fast");
    let missing = db.key(&ghost.key());
    for (op, outcome) in [
        ("incr", ghost.age().incr(&db, 1).await.map(|_| ())),
        ("fincr", ghost.score().incr(&db, 1.0).await.map(|_| ())),
        ("set", ghost.full_name().set(&db, "x").await),
        ("get", ghost.full_name().load(&db).await.map(|_| ())),
        (
            "append",
            ghost.full_name().append(&db, "x").await.map(|_| ()),
        ),
        ("toggle", ghost.active().toggle(&db).await.map(|_| ())),
        ("lappend", ghost.tags().append(&db, "x").await.map(|_| ())),
    ] {
        assert!(
            matches!(outcome, Err(Error::NotFound { .. })),
            "{op}: {outcome:?}"
        );
    }
    assert_eq!(dump(&mut raw, &missing).await, None);
}

#[tokio::test]
async fn fast_path_results_match_the_server_for_hostile_and_edge_values() {
    let db = db().await;
    let mut raw = raw().await;
    let mut p = person("edges");
    p.save(&db).await.expect("save");
    let key = db.key(&p.key());
    // A float field holding an integer, increments to and from the float type's edges.
    json_set(&mut raw, &key, "$.score", "5").await;
    assert_eq!(p.score().incr(&db, 0.5).await.expect("fincr"), 5.5);
    assert_eq!(raw_field(&mut raw, &key, "$.score").await, "[5.5]");
    assert_eq!(
        p.score().incr(&db, -1e300).await.expect("fincr"),
        5.5 - 1e300
    );
    assert!(matches!(
        p.score()
            .incr(&db, f64::MAX)
            .await
            .and(p.score().incr(&db, f64::MAX).await),
        Err(Error::Overflow { .. })
    ));
    json_set(&mut raw, &key, "$.ratio", &format!("{:?}", f32::MAX)).await;
    p.ratio = f32::MAX;
    let before = dump(&mut raw, &key).await;
    assert!(matches!(
        p.ratio().incr(&db, f32::MAX).await,
        Err(Error::Overflow { .. })
    ));
    assert_eq!(dump(&mut raw, &key).await, before);
    // Hostile strings through set and append: the local value equals the server's.
    for s in [
        "\"quoted\" ']' [[x]] \\ end",
        "line\nbreak\ttab\u{0}nul",
        "emoji 🎉 and é",
        "return redis.call('FLUSHALL')",
        "",
        "@name:{x} | (y) -z",
    ] {
        p.full_name().set(&db, s).await.expect("set");
        assert_eq!(p.full_name, s);
        assert_eq!(
            serde_json::from_value::<Person>(stored(&mut raw, &key).await)
                .expect("a Person")
                .full_name,
            s
        );
        let len = p.full_name().append(&db, s).await.expect("append");
        assert_eq!(p.full_name, format!("{s}{s}"));
        assert_eq!(len, 2 * s.len());
        assert_eq!(
            serde_json::from_value::<Person>(stored(&mut raw, &key).await)
                .expect("a Person")
                .full_name,
            p.full_name
        );
        let n = p.tags().append(&db, s.to_string()).await.expect("lappend");
        assert_eq!(
            serde_json::from_value::<Person>(stored(&mut raw, &key).await)
                .expect("a Person")
                .tags
                .len(),
            n
        );
        assert_eq!(p.tags.last().map(String::as_str), Some(s));
    }
    // A long string (1 MB) set and read back.
    let long = "x".repeat(1 << 20);
    p.full_name().set(&db, &long).await.expect("set 1 MB");
    p.full_name = String::new();
    assert_eq!(
        p.full_name().load(&db).await.expect("load").len(),
        long.len()
    );
    // Another writer changed the field in between: the reply is the server's value.
    json_set(&mut raw, &key, "$.fullName", "\"other\"").await;
    p.full_name().append(&db, "!").await.expect("append");
    assert_eq!(p.full_name, "other!");
    json_set(&mut raw, &key, "$.active", "false").await;
    assert!(p.active().toggle(&db).await.expect("toggle"));
    assert_eq!(
        serde_json::from_value::<Person>(stored(&mut raw, &key).await).expect("a Person"),
        p
    );
}
