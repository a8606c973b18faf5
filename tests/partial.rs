//! Partial reads against the real server: `get_fields` and `find(..).all_fields` return
//! exactly the stored values of the fields chosen, typed, with errors that name the field.

mod common;

use std::collections::HashMap;

use rapyer::Safe;
use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

use common::{db, pttl, raw};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Geo {
    lat: f64,
    #[serde(rename = "a'] or 1==1 --")]
    label: String,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Place {
    city: String,
    zip: i64,
    geo: Geo,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Doc")]
struct Doc {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    group: String,
    name: String,
    age: i64,
    score: f64,
    tags: Vec<String>,
    prefs: HashMap<String, String>,
    place: Place,
    #[serde(skip_serializing_if = "Option::is_none")]
    nick: Option<String>,
    #[serde(rename = "a.b[0]")]
    dotted: i64,
    #[serde(rename = "🎉 $ * @ {|}")]
    party: String,
    maybe: Safe<i64>,
    bio: String,
}

fn doc(id: &str, n: i64) -> Doc {
    Doc {
        id: id.into(),
        group: "g".into(),
        name: format!("n{n} \"q\" ']\n🎉"),
        age: n,
        score: n as f64 + 0.25,
        tags: vec!["a".into(), "a'] or 1==1 --".into()],
        prefs: HashMap::from([("k.\"x\"".to_string(), "v".to_string())]),
        place: Place {
            city: format!("city{n}"),
            zip: 75000 + n,
            geo: Geo {
                lat: -1.5,
                label: "redis.call('FLUSHALL')".into(),
            },
        },
        nick: None,
        dotted: -n,
        party: "{\"json\": [1]}".into(),
        maybe: Safe::Valid(n),
        bio: "x".repeat(10_000),
    }
}

#[tokio::test]
async fn get_fields_returns_exactly_the_stored_values_of_the_fields_chosen() {
    let db = db().await;
    let mut d = doc("d1", 7);
    d.bio = "🎉".repeat(1 << 18); // 1 MB
    d.save(&db).await.expect("save");
    let (name, age, score, tags, prefs) =
        Doc::get_fields(&db, "d1", |f| (f.name, f.age, f.score, f.tags, f.prefs))
            .await
            .expect("get_fields");
    assert_eq!(
        (name, age, score, tags, prefs),
        (
            d.name.clone(),
            d.age,
            d.score,
            d.tags.clone(),
            d.prefs.clone()
        )
    );
    // One field alone, nested fields, hostile names, a whole nested model.
    assert_eq!(
        Doc::get_fields(&db, "d1", |f| f.name).await.expect("one"),
        d.name
    );
    let (city, lat, label, place) = Doc::get_fields(&db, "d1", |f| {
        let geo = f.place.fields().geo.fields();
        (f.place.fields().city, geo.lat, geo.label, f.place)
    })
    .await
    .expect("nested");
    assert_eq!(
        (city, lat, label, place),
        (
            d.place.city.clone(),
            -1.5,
            d.place.geo.label.clone(),
            d.place.clone()
        )
    );
    let (dotted, party, maybe, bio) =
        Doc::get_fields(&db, "d1", |f| (f.dotted, f.party, f.maybe, f.bio))
            .await
            .expect("renamed");
    assert_eq!(
        (dotted, party, maybe),
        (-7, d.party.clone(), Safe::Valid(7))
    );
    assert_eq!(bio, d.bio);
    // The same field twice, and every field at once (12 in a tuple).
    let (a, b) = Doc::get_fields(&db, "d1", |f| (f.age.clone(), f.age))
        .await
        .expect("twice");
    assert_eq!((a, b), (7, 7));
    let (id, group, .., nick, _, _, _, _) = Doc::get_fields(&db, "d1", |f| {
        (
            f.id, f.group, f.name, f.age, f.score, f.tags, f.prefs, f.nick, f.dotted, f.party,
            f.maybe, f.place,
        )
    })
    .await
    .expect("twelve");
    assert_eq!((id.as_str(), group.as_str(), nick), ("d1", "g", None));
}

#[tokio::test]
async fn each_failure_is_typed_and_names_the_key_and_the_field() {
    let db = db().await;
    let mut raw = raw().await;
    let key = db.key(&Doc::key_of("bad"));
    match Doc::get_fields(&db, "bad", |f| f.name).await {
        Err(Error::NotFound { key: k }) => assert_eq!(k, key),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("x")
        .query_async(&mut raw)
        .await
        .expect("SET");
    match Doc::get_fields(&db, "bad", |f| (f.name, f.age)).await {
        Err(Error::TypeMismatch { key: k, found, .. }) => {
            assert_eq!(k, key);
            assert_eq!(found, "string");
        }
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    // Written by another client: wrong types, a missing field, extra members.
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .expect("DEL");
    let _: () = redis::cmd("JSON.SET")
        .arg(&key)
        .arg("$")
        .arg(r#"{"id":"bad","name":5,"age":"gASVBAAAAAAAAABLKi4=","place":{"city":"P","zip":"1","geo":{"lat":1}},"extra":1}"#)
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");
    for (what, outcome, path) in [
        (
            "wrong type",
            Doc::get_fields(&db, "bad", |f| f.age).await.map(|_| ()),
            "$.age",
        ),
        (
            "nested",
            Doc::get_fields(&db, "bad", |f| f.place.fields().zip)
                .await
                .map(|_| ()),
            "$.place.zip",
        ),
        (
            "first of two",
            Doc::get_fields(&db, "bad", |f| (f.id, f.name))
                .await
                .map(|_| ()),
            "$.name",
        ),
        (
            "inside a nested model",
            Doc::get_fields(&db, "bad", |f| f.place).await.map(|_| ()),
            "$.place.zip",
        ),
    ] {
        match outcome {
            Err(Error::Deserialize {
                key: k, path: p, ..
            }) => {
                assert_eq!((k.as_str(), p.as_str()), (key.as_str(), path), "{what}");
            }
            other => panic!("{what}: expected Deserialize at {path}, got {other:?}"),
        }
    }
    match Doc::get_fields(&db, "bad", |f| (f.id, f.bio)).await {
        Err(Error::TypeMismatch { path, found, .. }) => {
            assert_eq!((path.as_str(), found.as_str()), ("$.bio", "nothing"));
        }
        other => panic!("expected TypeMismatch for an absent field, got {other:?}"),
    }
    // An absent Option reads as None, as serde reads it; a Safe field keeps what it found.
    let (nick, maybe) = Doc::get_fields(&db, "bad", |f| (f.nick, f.place.fields().city))
        .await
        .expect("absent option");
    assert_eq!((nick, maybe.as_str()), (None, "P"));
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Touched", ttl = 1000, refresh_on_read)]
struct Touched {
    #[rapyer(key)]
    id: String,
    n: i64,
    s: String,
}

#[tokio::test]
async fn a_partial_read_of_a_refresh_on_read_model_re_arms_its_expiry() {
    let db = db().await;
    let mut raw = raw().await;
    let t = Touched {
        id: "t".into(),
        n: 3,
        s: "s".into(),
    };
    t.save(&db).await.expect("save");
    let key = db.key(&t.key());
    let _: () = redis::cmd("PEXPIRE")
        .arg(&key)
        .arg(50_000)
        .query_async(&mut raw)
        .await
        .expect("PEXPIRE");
    assert_eq!(
        Touched::get_fields(&db, "t", |f| f.n)
            .await
            .expect("get_fields"),
        3
    );
    assert!(
        pttl(&mut raw, &key).await > 100_000,
        "re-armed to the model's ttl"
    );
    assert!(matches!(
        Touched::get_fields(&db, "none", |f| f.n).await,
        Err(Error::NotFound { .. })
    ));
    let _: () = redis::cmd("SET")
        .arg(db.key(&Touched::key_of("str")))
        .arg("x")
        .query_async(&mut raw)
        .await
        .expect("SET");
    assert!(matches!(
        Touched::get_fields(&db, "str", |f| f.n).await,
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(
        pttl(&mut raw, &db.key(&Touched::key_of("str"))).await,
        -1,
        "a foreign key gets no expiry"
    );
}

#[tokio::test]
async fn find_all_fields_reads_the_chosen_fields_of_every_match() {
    let db = db().await;
    db.init::<Doc>().await.expect("init");
    let docs: Vec<Doc> = (0..1500).map(|i| doc(&format!("d{i}"), i)).collect();
    Doc::insert_many(&db, &docs).await.expect("insert_many");
    let f = Doc::fields();
    let mut got = Doc::find(&db, f.group.eq("g"))
        .all_fields(|f| (f.id, f.age, f.place.fields().city))
        .await
        .expect("all_fields");
    got.sort();
    let mut expected: Vec<(String, i64, String)> = docs
        .iter()
        .map(|d| (d.id.clone(), d.age, d.place.city.clone()))
        .collect();
    expected.sort();
    assert_eq!(got, expected);
    let one: Vec<String> = Doc::find(&db, f.group.eq("g"))
        .limit(0, 3)
        .all_fields(|f| f.name)
        .await
        .expect("one path");
    assert_eq!(one.len(), 3);
    assert!(
        Doc::find(&db, f.group.eq("none"))
            .all_fields(|f| f.age)
            .await
            .expect("no match")
            .is_empty()
    );
}

#[tokio::test]
async fn find_all_fields_works_on_a_cluster() {
    let db = common::cluster_db().await;
    db.init::<Doc>().await.expect("init");
    let docs: Vec<Doc> = (0..300).map(|i| doc(&format!("c{i}"), i)).collect();
    for d in &docs {
        d.save(&db).await.expect("save");
    }
    let f = Doc::fields();
    let mut got = Doc::find(&db, f.group.eq("g"))
        .all_fields(|f| (f.id, f.dotted))
        .await
        .expect("all_fields");
    got.sort();
    let mut expected: Vec<(String, i64)> = docs.iter().map(|d| (d.id.clone(), d.dotted)).collect();
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(
        Doc::get_fields(&db, "c5", |f| f.place.fields().zip)
            .await
            .expect("get_fields"),
        75005
    );
}

#[tokio::test]
async fn a_stored_value_read_partially_equals_the_whole_read() {
    let db = db().await;
    let d = doc("w", 3);
    d.save(&db).await.expect("save");
    let whole = Doc::get(&db, "w").await.expect("get");
    let part = Doc::get_fields(&db, "w", |f| (f.place, f.prefs, f.party, f.dotted))
        .await
        .expect("get_fields");
    assert_eq!(part, (whole.place, whole.prefs, whole.party, whole.dotted));
}

#[tokio::test]
async fn hostile_ids_read_their_own_document() {
    let db = db().await;
    let big = "k".repeat(1 << 20);
    let ids = [
        "",
        ":",
        "{x}",
        "a*b?[c]",
        "line\nbreak",
        "🎉",
        "a'] or 1==1 --",
        big.as_str(),
    ];
    for (n, id) in ids.iter().enumerate() {
        doc(id, n as i64).save(&db).await.expect("save");
    }
    for (n, id) in ids.iter().enumerate() {
        let (got_id, age) = Doc::get_fields(&db, id, |f| (f.id, f.age))
            .await
            .expect("get_fields");
        assert_eq!((got_id.as_str(), age), (*id, n as i64));
    }
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "TouchedFound", ttl = 1000, refresh_on_read)]
struct TouchedFound {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    group: String,
    n: i64,
}

#[tokio::test]
async fn find_all_fields_of_a_refresh_on_read_model_re_arms_every_match() {
    let db = db().await;
    let mut raw = raw().await;
    db.init::<TouchedFound>().await.expect("init");
    for i in 0..30 {
        let t = TouchedFound {
            id: format!("t{i}"),
            group: "g".into(),
            n: i,
        };
        t.save(&db).await.expect("save");
        let _: () = redis::cmd("PEXPIRE")
            .arg(db.key(&t.key()))
            .arg(50_000)
            .query_async(&mut raw)
            .await
            .expect("PEXPIRE");
    }
    let f = TouchedFound::fields();
    // One path (sent twice for the object's shape) and two paths.
    let mut ns = TouchedFound::find(&db, f.group.eq("g"))
        .all_fields(|f| f.n)
        .await
        .expect("one");
    ns.sort_unstable();
    assert_eq!(ns, (0..30).collect::<Vec<i64>>());
    let mut pairs = TouchedFound::find(&db, f.group.eq("g"))
        .all_fields(|f| (f.id, f.n))
        .await
        .expect("two");
    pairs.sort();
    assert_eq!(pairs.len(), 30);
    assert!(pairs.iter().all(|(id, n)| *id == format!("t{n}")));
    for i in 0..30 {
        let key = db.key(&TouchedFound::key_of(format!("t{i}")));
        assert!(pttl(&mut raw, &key).await > 100_000, "t{i} re-armed");
    }
}
