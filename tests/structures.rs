//! Special structures against the real server: `rapyer::Set` (a companion SET) and
//! `rapyer::PriorityQueue` (a companion ZSET and HASH) — every operation read back with plain
//! SMEMBERS/ZRANGE, hostile members, the companion keys following their model (save, get,
//! get_many, all, delete, delete_many, expiry, copy), foreign key types refused with nothing
//! written, and a queue shared by 32 tasks.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use rapyer::prelude::*;
use rapyer::{PriorityQueue, Set};
use serde::{Deserialize, Serialize};

use common::{cluster_slot as slot, db, pttl, raw, stored};

type Raw = redis::aio::MultiplexedConnection;

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "User")]
struct User {
    #[rapyer(key)]
    id: String,
    name: String,
    tags: Set<String>,
    seen: Set<HashMap<String, i64>>,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Session", ttl = 60, refresh_on_read)]
struct Session {
    #[rapyer(key)]
    id: String,
    hits: i64,
    roles: Set<String>,
    jobs: PriorityQueue<String>,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Inner {
    labels: Set<i64>,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Board")]
struct Board {
    #[rapyer(key)]
    id: String,
    title: String,
    tasks: PriorityQueue<String>,
    inner: Inner,
    done: Vec<String>,
}

fn user(id: &str, tags: &[&str]) -> User {
    User {
        id: id.into(),
        name: id.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        seen: Set::new(),
    }
}

/// Every key under the namespace's reserved part whose name ends with `suffix` and starts
/// with `{ns}_rapyer:{kind}:`.
async fn companion(raw: &mut Raw, db: &Db, kind: &str, suffix: &str) -> Option<String> {
    let found = scan(raw, &format!("{}_rapyer:*", db.namespace())).await;
    let start = format!("{}_rapyer:{kind}:", db.namespace());
    found
        .into_iter()
        .find(|k| k.starts_with(&start) && k.ends_with(suffix))
}

/// Every key matching `pattern` (a plain SCAN loop).
async fn scan(raw: &mut Raw, pattern: &str) -> Vec<String> {
    let mut cursor = 0u64;
    let mut found = Vec::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(raw)
            .await
            .expect("SCAN");
        found.extend(keys);
        if next == 0 {
            return found;
        }
        cursor = next;
    }
}

async fn smembers(raw: &mut Raw, key: &str) -> BTreeSet<String> {
    redis::cmd("SMEMBERS")
        .arg(key)
        .query_async(raw)
        .await
        .expect("SMEMBERS")
}

async fn zrange(raw: &mut Raw, key: &str) -> Vec<String> {
    redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(raw)
        .await
        .expect("ZRANGE")
}

async fn dump(raw: &mut Raw, key: &str) -> Option<Vec<u8>> {
    redis::cmd("DUMP")
        .arg(key)
        .query_async(raw)
        .await
        .expect("DUMP")
}

async fn set_key(raw: &mut Raw, db: &Db, id: &str, field: &str) -> String {
    companion(raw, db, "set", &format!(":{field}:User:{id}"))
        .await
        .unwrap_or_else(|| panic!("no companion SET for {id} {field}"))
}

fn json_texts(items: &[&str]) -> BTreeSet<String> {
    items
        .iter()
        .map(|i| serde_json::to_string(i).expect("a string encodes"))
        .collect()
}

use redis::AsyncCommands as _;

#[tokio::test]
async fn save_keeps_a_set_in_a_companion_set_and_get_reads_it_back_in_the_same_step() {
    let db = db().await;
    let mut raw = raw().await;
    let ann = user("ann", &["b", "a", "b"]);
    ann.save(&db).await.expect("save");
    let doc = stored(&mut raw, &db.key("User:ann")).await;
    assert_eq!(
        doc["tags"],
        serde_json::Value::Null,
        "the document holds null: {doc}"
    );
    let key = set_key(&mut raw, &db, "ann", "$.tags").await;
    assert!(
        key.starts_with(&format!("{}_rapyer:set:{{", db.namespace())),
        "{key}"
    );
    assert_eq!(smembers(&mut raw, &key).await, json_texts(&["a", "b"]));
    // An empty set has no companion key, as Redis keeps no empty SET.
    assert!(
        companion(&mut raw, &db, "set", ":$.seen:User:ann")
            .await
            .is_none()
    );
    assert_eq!(User::get(&db, "ann").await.expect("get"), ann);
    let many = User::get_many(&db, ["ann", "nobody"])
        .await
        .expect("get_many");
    assert_eq!(many, vec![Some(ann.clone()), None]);
    assert_eq!(User::all(&db).await.expect("all"), vec![ann.clone()]);
    let mut again = user("ann", &[]);
    again.refresh(&db).await.expect("refresh");
    assert_eq!(again, ann);
    // Saving again replaces the set whole.
    user("ann", &["c"]).save(&db).await.expect("save again");
    assert_eq!(smembers(&mut raw, &key).await, json_texts(&["c"]));
}

#[tokio::test]
async fn every_set_operation_answers_from_the_server_and_mirrors_it_locally() {
    let db = db().await;
    let mut raw = raw().await;
    let mut ann = user("ann", &["a"]);
    ann.save(&db).await.expect("save");
    let key = set_key(&mut raw, &db, "ann", "$.tags").await;
    assert!(ann.tags().add(&db, "b".into()).await.expect("add"));
    assert!(!ann.tags().add(&db, "b".into()).await.expect("add again"));
    let added = ann
        .tags()
        .add_many(&db, ["c", "d", "a"].map(String::from))
        .await
        .expect("add_many");
    assert_eq!(added, 2);
    assert_eq!(
        smembers(&mut raw, &key).await,
        json_texts(&["a", "b", "c", "d"])
    );
    assert_eq!(ann.tags.len(), 4);
    assert!(ann.tags().remove(&db, &"a".into()).await.expect("remove"));
    assert!(
        !ann.tags()
            .remove(&db, &"zz".into())
            .await
            .expect("remove absent")
    );
    assert_eq!(ann.tags().len(&db).await.expect("len"), 3);
    // Another client adds: contains answers from the server and updates the local copy.
    let _: i64 = raw.sadd(&key, "\"e\"").await.expect("SADD");
    assert!(
        ann.tags()
            .contains(&db, &"e".into())
            .await
            .expect("contains")
    );
    assert!(ann.tags.contains(&"e".into()));
    let popped = ann.tags().pop(&db).await.expect("pop").expect("an item");
    assert!(!ann.tags.contains(&popped));
    assert!(
        !smembers(&mut raw, &key)
            .await
            .contains(&format!("{popped:?}"))
    );
    let members = ann.tags().members(&db).await.expect("members").clone();
    let server: BTreeSet<String> = smembers(&mut raw, &key).await;
    let local: BTreeSet<String> = members
        .iter()
        .map(|m| serde_json::to_string(m).expect("encodes"))
        .collect();
    assert_eq!(local, server);
    ann.tags().clear(&db).await.expect("clear");
    assert!(ann.tags.is_empty());
    assert_eq!(ann.tags().len(&db).await.expect("len"), 0);
    assert_eq!(ann.tags().pop(&db).await.expect("pop empty"), None);
    // The document itself was never touched by the set's operations.
    assert_eq!(
        stored(&mut raw, &db.key("User:ann")).await["tags"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn a_set_of_maps_has_one_member_per_value_whatever_the_key_order() {
    let db = db().await;
    let mut ann = user("ann", &[]);
    ann.save(&db).await.expect("save");
    let a: HashMap<String, i64> = (0..30).map(|i| (format!("k{i}"), i)).collect();
    let b: HashMap<String, i64> = (0..30).rev().map(|i| (format!("k{i}"), i)).collect();
    assert!(ann.seen().add(&db, a).await.expect("add"));
    assert!(
        !ann.seen()
            .add(&db, b.clone())
            .await
            .expect("add the same map")
    );
    assert!(ann.seen().contains(&db, &b).await.expect("contains"));
    assert_eq!(User::get(&db, "ann").await.expect("get").seen.len(), 1);
}

#[tokio::test]
async fn hostile_members_round_trip_exactly() {
    let db = db().await;
    let mut raw = raw().await;
    let hostile = hostile();
    let mut ann = user("ann", &[]);
    ann.save(&db).await.expect("save");
    let added = ann
        .tags()
        .add_many(&db, hostile.clone())
        .await
        .expect("add_many");
    assert_eq!(added, hostile.len());
    let key = set_key(&mut raw, &db, "ann", "$.tags").await;
    let expected: BTreeSet<String> = hostile
        .iter()
        .map(|h| serde_json::to_string(h).expect("encodes"))
        .collect();
    assert_eq!(smembers(&mut raw, &key).await, expected);
    let back = User::get(&db, "ann").await.expect("get");
    let back: BTreeSet<String> = back.tags.into_iter().collect();
    assert_eq!(back, hostile.iter().cloned().collect());
    for h in &hostile {
        assert!(
            ann.tags().contains(&db, h).await.expect("contains"),
            "{h:.20}"
        );
    }
    for h in &hostile {
        assert!(ann.tags().remove(&db, h).await.expect("remove"), "{h:.20}");
    }
    assert_eq!(ann.tags().len(&db).await.expect("len"), 0);
    // Saved whole, too.
    let whole = User {
        tags: hostile.iter().cloned().collect(),
        ..user("bob", &[])
    };
    whole.save(&db).await.expect("save hostile");
    assert_eq!(User::get(&db, "bob").await.expect("get"), whole);
}

#[tokio::test]
async fn hostile_ids_get_their_own_companion_keys_in_their_models_slot() {
    let db = db().await;
    let mut raw = raw().await;
    let ids = [
        "a:b",
        "{tag}",
        "*?[x]",
        "new\nline",
        "",
        "🎉",
        ":$.tags:User:x",
    ];
    for (i, id) in ids.iter().enumerate() {
        user(id, &[&i.to_string()]).save(&db).await.expect("save");
    }
    for (i, id) in ids.iter().enumerate() {
        let got = User::get(&db, id).await.expect("get");
        assert_eq!(
            got.tags.iter().cloned().collect::<Vec<_>>(),
            vec![i.to_string()],
            "{id:?}"
        );
    }
    let pattern = format!("{}_rapyer:set:*", db.namespace());
    let mut n = 0;
    for key in scan(&mut raw, &pattern).await {
        let model = ids
            .iter()
            .map(|id| db.key(&User::key_of(id)))
            .find(|m| key.ends_with(&m[db.namespace().len()..]))
            .expect("a companion of one of the models");
        assert_eq!(slot(&key), slot(&model), "{key:?}");
        n += 1;
    }
    assert_eq!(n, ids.len());
}

#[tokio::test]
async fn set_algebra_stores_into_this_set_on_the_server() {
    let db = db().await;
    let mut raw = raw().await;
    // Keys of different models are in different slots: refused before sending.
    let mut a = user("a", &["1", "2", "3"]);
    let mut b = user("b", &["2", "3", "4"]);
    a.save(&db).await.expect("save");
    b.save(&db).await.expect("save");
    let a_key = set_key(&mut raw, &db, "a", "$.tags").await;
    let before = dump(&mut raw, &a_key).await;
    match a.tags().union_into(&db, &b.tags()).await {
        Err(Error::CrossSlot { keys }) => assert_eq!(keys.len(), 5),
        other => panic!("expected CrossSlot, got {other:?}"),
    }
    assert_eq!(dump(&mut raw, &a_key).await, before);
    assert_eq!(
        a.tags.len(),
        3,
        "a refused call leaves the local set as it was"
    );
    let t = |items: &[&str]| -> BTreeSet<String> { items.iter().map(|s| s.to_string()).collect() };
    // Models with one hash tag share a slot.
    #[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[rapyer(prefix = "Team", hash_tag = "org")]
    struct Team {
        #[rapyer(key)]
        id: String,
        members: Set<String>,
    }
    let team = |id: &str, m: &[&str]| Team {
        id: id.into(),
        members: m.iter().map(|s| s.to_string()).collect(),
    };
    let (mut x, mut y) = (team("x", &["1", "2", "3"]), team("y", &["2", "3", "4"]));
    x.save(&db).await.expect("save");
    y.save(&db).await.expect("save");
    let tset = |t: &Team| -> BTreeSet<String> { t.members.iter().cloned().collect() };
    assert_eq!(
        x.members()
            .union_into(&db, &y.members())
            .await
            .expect("union"),
        4
    );
    assert_eq!(tset(&x), t(&["1", "2", "3", "4"]));
    assert_eq!(
        x.members()
            .intersect_into(&db, &y.members())
            .await
            .expect("inter"),
        3
    );
    assert_eq!(tset(&x), t(&["2", "3", "4"]));
    assert_eq!(
        x.members()
            .difference_into(&db, &y.members())
            .await
            .expect("diff"),
        0
    );
    assert!(x.members.is_empty());
    assert_eq!(Team::get(&db, "x").await.expect("get").members, Set::new());
    // The other set is only read.
    assert_eq!(Team::get(&db, "y").await.expect("get"), y);
    // The other model must be stored.
    Team::delete_by_id(&db, "y").await.expect("delete");
    match x.members().union_into(&db, &y.members()).await {
        Err(Error::NotFound { key }) => assert_eq!(key, db.key("Team:{org}:y")),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn operations_on_a_missing_model_are_not_found_and_create_nothing() {
    let db = db().await;
    let mut raw = raw().await;
    let mut ghost = user("ghost", &[]);
    match ghost.tags().add(&db, "x".into()).await {
        Err(Error::NotFound { key }) => assert_eq!(key, db.key("User:ghost")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(
        ghost.tags.is_empty(),
        "a failed operation leaves the local set as it was"
    );
    assert!(
        companion(&mut raw, &db, "set", ":User:ghost")
            .await
            .is_none()
    );
}

#[tokio::test]
async fn foreign_key_types_are_refused_with_nothing_written() {
    let db = db().await;
    let mut raw = raw().await;
    // The document's key holds a string: save, get, delete refuse it.
    let _: () = raw.set(db.key("User:ann"), "not json").await.expect("SET");
    match user("ann", &["a"]).save(&db).await {
        Err(Error::TypeMismatch { key, .. }) => assert_eq!(key, db.key("User:ann")),
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    assert!(companion(&mut raw, &db, "set", ":User:ann").await.is_none());
    assert!(matches!(
        User::get(&db, "ann").await,
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        User::get_many(&db, ["ann"]).await,
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        User::delete_by_id(&db, "ann").await,
        Err(Error::TypeMismatch { .. })
    ));
    // A companion key holding another type (written by hand): refused, document untouched.
    let bob = user("bob", &["a"]);
    bob.save(&db).await.expect("save");
    let key = set_key(&mut raw, &db, "bob", "$.tags").await;
    let doc_before = dump(&mut raw, &db.key("User:bob")).await;
    let _: () = raw.del(&key).await.expect("DEL");
    let _: () = raw.set(&key, "a string").await.expect("SET");
    match user("bob", &["b"]).save(&db).await {
        Err(Error::TypeMismatch {
            key: k,
            path,
            expected,
            found,
        }) => {
            assert_eq!((k.as_str(), path.as_str()), (key.as_str(), "$.tags"));
            assert_eq!(
                (expected.as_str(), found.as_str()),
                ("a Redis set", "string")
            );
        }
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    assert_eq!(dump(&mut raw, &db.key("User:bob")).await, doc_before);
    assert!(matches!(
        User::get(&db, "bob").await,
        Err(Error::TypeMismatch { .. })
    ));
    let mut local = bob.clone();
    assert!(matches!(
        local.tags().add(&db, "z".into()).await,
        Err(Error::TypeMismatch { .. })
    ));
    let value: String = raw.get(&key).await.expect("GET");
    assert_eq!(value, "a string");
}

#[tokio::test]
async fn delete_and_delete_many_take_the_companion_keys_with_the_model() {
    let db = db().await;
    let mut raw = raw().await;
    for id in ["a", "b", "c"] {
        user(id, &["x", "y"]).save(&db).await.expect("save");
    }
    let a = User::get(&db, "a").await.expect("get");
    assert!(a.delete(&db).await.expect("delete"));
    assert!(companion(&mut raw, &db, "set", ":User:a").await.is_none());
    assert_eq!(
        User::delete_many(&db, ["b", "c", "nobody"])
            .await
            .expect("delete_many"),
        2
    );
    let pattern = format!("{}*", db.namespace());
    let left: Vec<String> = raw.keys(pattern).await.expect("KEYS");
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn companions_expire_with_their_model() {
    let db = db().await;
    let mut raw = raw().await;
    // A model with a ttl: save, every operation and every read re-arm document and companions.
    let mut s = Session {
        id: "s1".into(),
        hits: 0,
        roles: ["admin".to_string()].into_iter().collect(),
        jobs: PriorityQueue::new(),
    };
    s.save(&db).await.expect("save");
    let doc = db.key("Session:s1");
    let roles = companion(&mut raw, &db, "set", ":$.roles:Session:s1")
        .await
        .expect("roles");
    let near = |ms: i64| ms > 50_000 && ms <= 60_000;
    assert!(near(pttl(&mut raw, &doc).await) && near(pttl(&mut raw, &roles).await));
    // Shorten both by hand, then a field handle's write re-arms both.
    for k in [&doc, &roles] {
        let _: () = raw.pexpire(k, 5_000).await.expect("PEXPIRE");
    }
    s.hits().incr(&db, 1).await.expect("incr");
    assert!(
        near(pttl(&mut raw, &roles).await),
        "a field write re-arms the companions"
    );
    for k in [&doc, &roles] {
        let _: () = raw.pexpire(k, 5_000).await.expect("PEXPIRE");
    }
    Session::get(&db, "s1").await.expect("get");
    assert!(
        near(pttl(&mut raw, &roles).await),
        "refresh_on_read re-arms the companions"
    );
    for k in [&doc, &roles] {
        let _: () = raw.pexpire(k, 5_000).await.expect("PEXPIRE");
    }
    s.roles().add(&db, "ops".into()).await.expect("add");
    assert!(near(pttl(&mut raw, &doc).await) && near(pttl(&mut raw, &roles).await));
    // A queue created by a push gets the document's expiry.
    s.jobs().push(&db, "j".into(), 1).await.expect("push");
    let jobs = companion(&mut raw, &db, "pq", ":$.jobs:Session:s1")
        .await
        .expect("pq");
    let index = companion(&mut raw, &db, "pqi", ":$.jobs:Session:s1")
        .await
        .expect("pqi");
    assert!(near(pttl(&mut raw, &jobs).await) && near(pttl(&mut raw, &index).await));
    // set_ttl sets it on all of them.
    s.set_ttl(&db, Duration::from_secs(1_000))
        .await
        .expect("set_ttl");
    for k in [&doc, &roles, &jobs, &index] {
        let ms = pttl(&mut raw, k).await;
        assert!(ms > 990_000 && ms <= 1_000_000, "{k}: {ms}");
    }
    // A model without a ttl: a set created after set_ttl takes the document's expiry.
    let ann = user("ann", &[]);
    ann.save(&db).await.expect("save");
    ann.set_ttl(&db, Duration::from_secs(500))
        .await
        .expect("set_ttl");
    let mut ann = ann;
    ann.tags().add(&db, "x".into()).await.expect("add");
    let key = set_key(&mut raw, &db, "ann", "$.tags").await;
    let ms = pttl(&mut raw, &key).await;
    assert!(ms > 490_000 && ms <= 500_000, "{ms}");
    // Saving again (JSON.SET keeps the document's expiry) keeps the companions' too.
    user("ann", &["y"]).save(&db).await.expect("save again");
    let ms = pttl(&mut raw, &key).await;
    assert!(ms > 490_000 && ms <= 500_000, "{ms}");
}

fn board(id: &str, tasks: &[(&str, i64)]) -> Board {
    let mut queue = PriorityQueue::new();
    for (task, priority) in tasks {
        queue.push(task.to_string(), *priority);
    }
    Board {
        id: id.into(),
        title: "t".into(),
        tasks: queue,
        inner: Inner { labels: Set::new() },
        done: Vec::new(),
    }
}

/// The queue's items as ZRANGE reads them: each entry's item (after its 32 hex digits) and
/// priority (its first 16, the sign bit flipped).
async fn queued(raw: &mut Raw, db: &Db, id: &str) -> Vec<(String, i64)> {
    let Some(key) = companion(raw, db, "pq", &format!(":$.tasks:Board:{id}")).await else {
        return Vec::new();
    };
    zrange(raw, &key)
        .await
        .into_iter()
        .map(|entry| {
            let raw_priority = u64::from_str_radix(&entry[..16], 16).expect("hex");
            let item: String = serde_json::from_str(&entry[32..]).expect("an item");
            (item, (raw_priority ^ (1 << 63)) as i64)
        })
        .collect()
}

fn owned(items: &[(&str, i64)]) -> Vec<(String, i64)> {
    items.iter().map(|(i, p)| (i.to_string(), *p)).collect()
}

#[tokio::test]
async fn a_queue_pops_lowest_priority_first_and_ties_in_push_order() {
    let db = db().await;
    let mut raw = raw().await;
    let mut b = board("b", &[("saved-5", 5), ("saved-1", 1)]);
    b.save(&db).await.expect("save");
    assert_eq!(
        queued(&mut raw, &db, "b").await,
        owned(&[("saved-1", 1), ("saved-5", 5)])
    );
    assert_eq!(b.tasks().push(&db, "a".into(), 1).await.expect("push"), 3);
    let n = b
        .tasks()
        .push_many(
            &db,
            [
                ("b".to_string(), 1),
                ("c".to_string(), 0),
                ("d".to_string(), 1),
            ],
        )
        .await
        .expect("push_many");
    assert_eq!(n, 6);
    let expected = owned(&[
        ("c", 0),
        ("saved-1", 1),
        ("a", 1),
        ("b", 1),
        ("d", 1),
        ("saved-5", 5),
    ]);
    assert_eq!(queued(&mut raw, &db, "b").await, expected);
    let local: Vec<(String, i64)> = b.tasks.iter().map(|(i, p)| (i.clone(), p)).collect();
    assert_eq!(local, expected);
    assert_eq!(b.tasks().len(&db).await.expect("len"), 6);
    assert_eq!(
        b.tasks().peek(&db).await.expect("peek"),
        Some(("c".into(), 0))
    );
    assert_eq!(
        b.tasks().pop(&db).await.expect("pop"),
        Some(("c".into(), 0))
    );
    let two = b.tasks().pop_many(&db, 2).await.expect("pop_many");
    assert_eq!(two, owned(&[("saved-1", 1), ("a", 1)]));
    // Pushing a queued item again re-queues it: one entry, at the back of its priority.
    b.tasks()
        .push(&db, "b".into(), 1)
        .await
        .expect("push again");
    assert_eq!(
        queued(&mut raw, &db, "b").await,
        owned(&[("d", 1), ("b", 1), ("saved-5", 5)])
    );
    assert!(b.tasks().remove(&db, &"d".into()).await.expect("remove"));
    assert!(
        !b.tasks()
            .remove(&db, &"d".into())
            .await
            .expect("remove again")
    );
    let items = b.tasks().items(&db).await.expect("items").clone();
    let items: Vec<(String, i64)> = items.iter().map(|(i, p)| (i.clone(), p)).collect();
    assert_eq!(items, owned(&[("b", 1), ("saved-5", 5)]));
    assert_eq!(Board::get(&db, "b").await.expect("get").tasks, b.tasks);
    b.tasks().clear(&db).await.expect("clear");
    assert_eq!(b.tasks().pop(&db).await.expect("pop empty"), None);
    assert_eq!(b.tasks().peek(&db).await.expect("peek empty"), None);
    assert!(
        b.tasks()
            .pop_many(&db, 3)
            .await
            .expect("pop_many empty")
            .is_empty()
    );
    // An emptied queue leaves no key behind, its index included.
    assert!(companion(&mut raw, &db, "pq", ":Board:b").await.is_none());
    assert!(companion(&mut raw, &db, "pqi", ":Board:b").await.is_none());
    assert_eq!(
        stored(&mut raw, &db.key("Board:b")).await["tasks"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn priorities_are_exact_over_the_whole_i64_range() {
    let db = db().await;
    let mut raw = raw().await;
    let mut b = board("b", &[]);
    b.save(&db).await.expect("save");
    let ps = [
        i64::MAX,
        (1 << 53) + 1,
        1 << 53,
        0,
        -1,
        -(1 << 53) - 1,
        i64::MIN,
    ];
    for (i, p) in ps.iter().enumerate() {
        b.tasks()
            .push(&db, format!("t{i}"), *p)
            .await
            .expect("push");
    }
    let mut expected: Vec<(String, i64)> = ps
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("t{i}"), *p))
        .collect();
    expected.sort_by_key(|(_, p)| *p);
    assert_eq!(queued(&mut raw, &db, "b").await, expected);
    let popped = b.tasks().pop_many(&db, 10).await.expect("pop_many");
    assert_eq!(popped, expected);
}

#[tokio::test]
async fn hostile_queue_items_round_trip_and_can_be_removed() {
    let db = db().await;
    let mut raw = raw().await;
    let hostile = [
        String::new(),
        "\"".into(),
        "0000000000000000".into(),
        "{\"a\":1}".into(),
        "\n".into(),
        "🎉".into(),
        "x".repeat(1 << 20),
    ];
    let mut b = board("b", &[]);
    b.save(&db).await.expect("save");
    b.tasks()
        .push_many(&db, hostile.iter().cloned().map(|h| (h, 7)))
        .await
        .expect("push_many");
    let expected: Vec<(String, i64)> = hostile.iter().cloned().map(|h| (h, 7)).collect();
    assert_eq!(queued(&mut raw, &db, "b").await, expected);
    let back = Board::get(&db, "b").await.expect("get");
    let back: Vec<(String, i64)> = back.tasks.iter().map(|(i, p)| (i.clone(), p)).collect();
    assert_eq!(back, expected);
    for h in &hostile {
        assert!(b.tasks().remove(&db, h).await.expect("remove"), "{h:.20}");
    }
    assert_eq!(b.tasks().len(&db).await.expect("len"), 0);
}

#[tokio::test]
async fn a_set_in_a_nested_model_has_its_own_companion_key() {
    let db = db().await;
    let mut raw = raw().await;
    let mut b = board("b", &[]);
    b.inner.labels.insert(3);
    b.save(&db).await.expect("save");
    b.inner().labels().add(&db, 4).await.expect("add");
    let key = companion(&mut raw, &db, "set", ":$.inner.labels:Board:b")
        .await
        .expect("nested set");
    let members: BTreeSet<String> = smembers(&mut raw, &key).await;
    assert_eq!(members, ["3", "4"].iter().map(|s| s.to_string()).collect());
    assert_eq!(
        Board::get(&db, "b").await.expect("get").inner.labels,
        b.inner.labels
    );
    assert_eq!(
        stored(&mut raw, &db.key("Board:b")).await["inner"]["labels"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn thirty_two_tasks_sharing_one_queue_pop_every_item_exactly_once() {
    let db = db().await;
    board("shared", &[]).save(&db).await.expect("save");
    let mut tasks = Vec::new();
    for t in 0..32 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Board::get(&db, "shared").await.expect("get");
            let mut popped = Vec::new();
            for i in 0..40 {
                let item = format!("{t}-{i}");
                mine.tasks()
                    .push(&db, item, (i % 5) as i64)
                    .await
                    .expect("push");
                if i % 2 == 1
                    && let Some((item, _)) = mine.tasks().pop(&db).await.expect("pop")
                {
                    popped.push(item);
                }
            }
            popped
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    let mut last = Board::get(&db, "shared").await.expect("get");
    while let Some((item, _)) = last.tasks().pop(&db).await.expect("pop") {
        all.push(item);
    }
    assert_eq!(all.len(), 32 * 40, "every item popped once");
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "no item popped twice");
}

#[tokio::test]
async fn a_failing_block_leaves_the_document_and_every_companion_byte_identical() {
    let db = db().await;
    let mut raw = raw().await;
    let mut b = board("b", &[("x", 1), ("y", 2)]);
    b.inner.labels.insert(1);
    b.save(&db).await.expect("save");
    let keys = [
        db.key("Board:b"),
        companion(&mut raw, &db, "pq", ":Board:b")
            .await
            .expect("pq"),
        companion(&mut raw, &db, "pqi", ":Board:b")
            .await
            .expect("pqi"),
        companion(&mut raw, &db, "set", ":Board:b")
            .await
            .expect("set"),
    ];
    let mut before = Vec::new();
    for k in &keys {
        before.push(dump(&mut raw, k).await.expect("a value"));
    }
    let failed = b
        .atomic(&db, |m| {
            m.title().set("changed".to_string());
            m.done().pop_at(5)
        })
        .await;
    assert!(matches!(failed, Err(Error::Block { .. })), "{failed:?}");
    for (k, dumped) in keys.iter().zip(&before) {
        assert_eq!(dump(&mut raw, k).await.as_ref(), Some(dumped), "{k}");
    }
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Desk", hash_tag = "team", ttl = 100)]
struct Desk {
    #[rapyer(key)]
    id: String,
    inbox: PriorityQueue<String>,
    done: Vec<String>,
    moved: i64,
    tags: Set<String>,
}

fn desk(id: &str, tasks: &[(&str, i64)]) -> Desk {
    let mut inbox = PriorityQueue::new();
    for (t, p) in tasks {
        inbox.push(t.to_string(), *p);
    }
    Desk {
        id: id.into(),
        inbox,
        done: Vec::new(),
        moved: 0,
        tags: Set::new(),
    }
}

async fn desk_keys(raw: &mut Raw, db: &Db, id: &str) -> Vec<String> {
    let mut keys = vec![db.key(&Desk::key_of(id))];
    for kind in ["pq", "pqi", "set"] {
        if let Some(k) = companion(raw, db, kind, &format!(":Desk:{{team}}:{id}")).await {
            keys.push(k);
        }
    }
    keys
}

async fn dumps(raw: &mut Raw, keys: &[String]) -> Vec<Option<Vec<u8>>> {
    let mut out = Vec::new();
    for k in keys {
        out.push(dump(raw, k).await);
    }
    out
}

#[tokio::test]
async fn one_block_pops_the_most_urgent_task_appends_it_to_a_list_and_bumps_a_counter() {
    let db = db().await;
    let mut raw = raw().await;
    let queue = desk("queue", &[("later", 5), ("urgent", 1), ("also urgent", 1)]);
    let board = desk("board", &[]);
    queue.save(&db).await.expect("save");
    board.save(&db).await.expect("save");
    let (q, b) = (queue.server_ref(), board.server_ref());
    let (popped, len, moved) = ServerOps::scope(&db, |ops| {
        let popped = ops.queue_pop_into(q.inbox(), b.done());
        let len = ops.append(b.done(), "marker".to_string());
        let moved = ops.incr(b.moved(), 1);
        (popped, len, moved)
    })
    .await
    .expect("block");
    assert_eq!(popped, Some(Some(("urgent".to_string(), 1))));
    assert_eq!((len, moved), (Some(2), Some(1)));
    let stored_board = Desk::get(&db, "board").await.expect("get");
    assert_eq!(
        stored_board.done,
        vec!["urgent".to_string(), "marker".to_string()]
    );
    assert_eq!(stored_board.moved, 1);
    let left = Desk::get(&db, "queue").await.expect("get").inbox;
    let left: Vec<(String, i64)> = left.iter().map(|(i, p)| (i.clone(), p)).collect();
    assert_eq!(left, owned(&[("also urgent", 1), ("later", 5)]));
    let index_key = companion(&mut raw, &db, "pqi", ":Desk:{team}:queue")
        .await
        .expect("pqi");
    let index: HashMap<String, String> = raw.hgetall(&index_key).await.expect("HGETALL");
    assert!(!index.contains_key("\"urgent\""), "{index:?}");
    // The model's own atomic block: pops, pushes, adds and conditions in one script, each
    // operation seeing what the ones before it did.
    let mut queue = Desk::get(&db, "queue").await.expect("get");
    let (a, b2, pushed, added, again) = queue
        .atomic(&db, |m| {
            let a = m.inbox().pop();
            let pushed = m.inbox().push("new".to_string(), 0);
            let b2 = m.inbox().pop();
            let added = m.tags().add("x".to_string());
            let again = m.tags().add("x".to_string());
            m.when(
                m.tags().contains(&"x".to_string()) & m.inbox().len().eq(1) & m.tags().len().eq(1),
            )
            .then(|ops| {
                ops.incr(m.moved(), 10);
            });
            (a, b2, pushed, added, again)
        })
        .await
        .expect("atomic");
    assert_eq!(a, Some(Some(("also urgent".to_string(), 1))));
    assert_eq!(pushed, Some(2));
    assert_eq!(b2, Some(Some(("new".to_string(), 0))));
    assert_eq!((added, again), (Some(true), Some(false)));
    assert_eq!(queue.moved, 10);
    let stored_queue = Desk::get(&db, "queue").await.expect("get");
    assert_eq!(stored_queue.moved, 10);
    let inbox: Vec<(String, i64)> = stored_queue
        .inbox
        .iter()
        .map(|(i, p)| (i.clone(), p))
        .collect();
    assert_eq!(inbox, owned(&[("later", 5)]));
    assert_eq!(stored_queue.tags.len(), 1);
    // The block's writes to the model's structures came back into the local model.
    assert_eq!(queue, stored_queue, "the local model follows the server");
    // Another client's change before an atomic block comes back with it too: the local
    // structures are read after the block, not patched from what it did.
    let mut elsewhere = Desk::get(&db, "queue").await.expect("get");
    elsewhere
        .tags()
        .add(&db, "from elsewhere".into())
        .await
        .expect("add");
    queue
        .atomic(&db, |m| m.tags().remove(&"x".to_string()))
        .await
        .expect("atomic");
    let tags: Vec<String> = queue.tags.iter().cloned().collect();
    assert_eq!(tags, vec!["from elsewhere".to_string()]);
    assert_eq!(queue, Desk::get(&db, "queue").await.expect("get"));
    // An empty queue pops None and appends nothing.
    ServerOps::scope(&db, |ops| {
        ops.queue_pop(q.inbox());
    })
    .await
    .expect("pop the last");
    let (none, _) = ServerOps::scope(&db, |ops| {
        (
            ops.queue_pop_into(q.inbox(), b.done()),
            ops.incr(b.moved(), 1),
        )
    })
    .await
    .expect("pop empty");
    assert_eq!(none, Some(None));
    assert_eq!(Desk::get(&db, "board").await.expect("get").done.len(), 2);
}

#[tokio::test]
async fn a_block_failing_after_structure_operations_changes_no_key() {
    let db = db().await;
    let mut raw = raw().await;
    let queue = desk("queue", &[("a", 1), ("b", 2)]);
    let mut board = desk("board", &[]);
    board.moved = i64::MAX;
    board.tags.insert("t".into());
    queue.save(&db).await.expect("save");
    board.save(&db).await.expect("save");
    let mut keys = desk_keys(&mut raw, &db, "queue").await;
    keys.extend(desk_keys(&mut raw, &db, "board").await);
    assert_eq!(keys.len(), 5, "{keys:?}");
    let before = dumps(&mut raw, &keys).await;
    let (q, b) = (queue.server_ref(), board.server_ref());
    let failed = ServerOps::scope(&db, |ops| {
        ops.queue_pop_into(q.inbox(), b.done());
        ops.queue_push(b.inbox(), "x".to_string(), 3);
        ops.set_add(b.tags(), "new".to_string());
        ops.incr(b.moved(), 1) // overflows: the block fails
    })
    .await;
    match failed {
        Err(Error::Block { op: 3, source }) => {
            assert!(matches!(*source, Error::Overflow { .. }), "{source:?}");
        }
        other => panic!("expected Block {{ op: 3, .. }}, got {other:?}"),
    }
    assert_eq!(dumps(&mut raw, &keys).await, before);
    assert!(
        companion(&mut raw, &db, "pq", ":Desk:{team}:board")
            .await
            .is_none()
    );
    // Replacing a structure with a value is refused before anything is sent.
    let refused = ServerOps::scope(&db, |ops| {
        ops.set(b.tags(), Set::new());
    })
    .await;
    assert!(
        matches!(
            refused,
            Err(Error::Block { .. }) | Err(Error::InvalidOp { .. })
        ),
        "{refused:?}"
    );
    assert_eq!(dumps(&mut raw, &keys).await, before);
}

#[tokio::test]
async fn blocks_re_arm_and_copy_the_companions_with_their_documents() {
    let db = db().await;
    let mut raw = raw().await;
    let mut d = desk("d", &[("a", 1)]);
    d.tags.insert("x".into());
    d.save(&db).await.expect("save");
    let keys = desk_keys(&mut raw, &db, "d").await;
    assert_eq!(keys.len(), 4);
    for k in &keys {
        let _: () = raw.pexpire(k, 5_000).await.expect("PEXPIRE");
    }
    // A block writing only the document re-arms the companions with it.
    d.atomic(&db, |m| m.moved().incr(1)).await.expect("atomic");
    for k in &keys {
        let ms = pttl(&mut raw, k).await;
        assert!(ms > 90_000 && ms <= 100_000, "{k}: {ms}");
    }
    // copy_model copies the structures (and the target's companions get its expiry).
    let r = d.server_ref();
    ServerOps::scope(&db, |ops| {
        ops.copy_model(r.clone(), "copy");
    })
    .await
    .expect("copy");
    let copy = Desk::get(&db, "copy").await.expect("get copy");
    assert_eq!(copy.inbox, d.inbox);
    assert_eq!(copy.tags, d.tags);
    for k in desk_keys(&mut raw, &db, "copy").await {
        let ms = pttl(&mut raw, &k).await;
        assert!(ms > 90_000 && ms <= 100_000, "{k}: {ms}");
    }
    // The copy is its own: popping it leaves the original.
    let mut copy = copy;
    copy.inbox().pop(&db).await.expect("pop");
    assert_eq!(Desk::get(&db, "d").await.expect("get").inbox.len(), 1);
    // copy_model onto a model with structures replaces them (an empty source empties them).
    let e = desk("e", &[]);
    e.save(&db).await.expect("save");
    let re = e.server_ref();
    ServerOps::scope(&db, |ops| {
        ops.copy_model(re.clone(), "d");
    })
    .await
    .expect("copy onto");
    let d = Desk::get(&db, "d").await.expect("get");
    assert!(d.inbox.is_empty() && d.tags.is_empty(), "{d:?}");
}

#[tokio::test]
async fn insert_many_writes_every_model_with_its_companions_or_nothing() {
    let db = db().await;
    let mut raw = raw().await;
    let users = [user("a", &["1"]), user("b", &["2", "3"])];
    User::insert_many(&db, &users).await.expect("insert_many");
    assert_eq!(
        User::get_many(&db, ["a", "b"]).await.expect("get_many"),
        vec![Some(users[0].clone()), Some(users[1].clone())]
    );
    // A key of another type among them: nothing is written, companions included.
    let _: () = raw.set(db.key("User:c"), "x").await.expect("SET");
    let more = [user("a", &["changed"]), user("c", &["4"])];
    assert!(matches!(
        User::insert_many(&db, &more).await,
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(User::get(&db, "a").await.expect("get"), users[0]);
}

#[tokio::test]
async fn a_lock_reads_the_structures_and_its_save_writes_only_what_this_holder_changed() {
    let db = db().await;
    let mut raw = raw().await;
    user("ann", &["kept", "dropped"])
        .save(&db)
        .await
        .expect("save");
    let mut guard = User::lock(&db, "ann", LockOptions::default())
        .await
        .expect("lock");
    // Read under the lock with the model: what the server holds.
    let mut read: Vec<String> = guard.tags.iter().cloned().collect();
    read.sort();
    assert_eq!(read, vec!["dropped".to_string(), "kept".to_string()]);
    // A handle on the guard writes at once; another client, holding no lock, adds meanwhile.
    guard
        .tags()
        .add(&db, "via handle".into())
        .await
        .expect("add");
    let mut other = User::get(&db, "ann").await.expect("get");
    other
        .tags()
        .add(&db, "by another".into())
        .await
        .expect("add");
    // Local changes: the save writes exactly them, member by member.
    guard.name = "Ann".into();
    guard.tags.insert("local \"quoted\" 🎉".into());
    guard.tags.remove(&"dropped".to_string());
    guard.save().await.expect("guard save");
    let key = db.key("User:ann");
    let doc = stored(&mut raw, &key).await;
    assert_eq!(doc["name"], "Ann");
    assert_eq!(doc["tags"], serde_json::Value::Null, "{doc}");
    let tags = set_key(&mut raw, &db, "ann", "$.tags").await;
    assert_eq!(
        smembers(&mut raw, &tags).await,
        json_texts(&["kept", "via handle", "by another", "local \"quoted\" 🎉"])
    );
    // A second save with nothing changed writes nothing more.
    guard.save().await.expect("guard save");
    assert_eq!(smembers(&mut raw, &tags).await.len(), 4);
    // A companion key of another type: a typed failure, nothing written (document included).
    let _: () = redis::cmd("DEL")
        .arg(&tags)
        .query_async(&mut raw)
        .await
        .expect("DEL");
    let _: () = redis::cmd("SET")
        .arg(&tags)
        .arg("x")
        .query_async(&mut raw)
        .await
        .expect("SET");
    guard.name = "Not saved".into();
    guard.tags.insert("x".into());
    let before = dump(&mut raw, &key).await;
    match guard.save().await {
        Err(Error::TypeMismatch { key: k, .. }) => assert_eq!(k, tags),
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    assert_eq!(dump(&mut raw, &key).await, before);
    let _: () = redis::cmd("DEL")
        .arg(&tags)
        .query_async(&mut raw)
        .await
        .expect("DEL");
    guard.release().await.expect("release");

    // A queue, read in order under the lock: local pushes and a new priority are written as
    // the queue's own push writes them; another client's push meanwhile stays.
    let mut s = Session {
        id: "locked".into(),
        hits: 0,
        roles: Set::new(),
        jobs: PriorityQueue::new(),
    };
    s.save(&db).await.expect("save");
    s.jobs().push(&db, "b".into(), 2).await.expect("push");
    s.jobs().push(&db, "a".into(), 1).await.expect("push");
    let mut guard = Session::lock(&db, "locked", LockOptions::default())
        .await
        .expect("lock");
    let items: Vec<(String, i64)> = guard.jobs.iter().map(|(i, p)| (i.clone(), p)).collect();
    assert_eq!(items, vec![("a".to_string(), 1), ("b".to_string(), 2)]);
    s.jobs()
        .push(&db, "c".into(), 0)
        .await
        .expect("push by a client holding no lock");
    guard.hits = 5;
    guard.jobs.push("d".into(), 1);
    guard.jobs.push("a".into(), 3);
    guard.save().await.expect("guard save");
    guard.release().await.expect("release");
    assert_eq!(stored(&mut raw, &db.key("Session:locked")).await["hits"], 5);
    // The queue's keys expire with the document (a model with a ttl).
    for kind in ["pq", "pqi"] {
        let k = companion(&mut raw, &db, kind, ":$.jobs:Session:locked")
            .await
            .expect("queue key");
        let ms = pttl(&mut raw, &k).await;
        assert!(ms > 50_000 && ms <= 60_000, "{k}: {ms}");
    }
    let back = Session::get(&db, "locked").await.expect("get");
    let items: Vec<(String, i64)> = back.jobs.iter().map(|(i, p)| (i.clone(), p)).collect();
    assert_eq!(
        items,
        vec![
            ("c".to_string(), 0),
            ("d".to_string(), 1),
            ("b".to_string(), 2),
            ("a".to_string(), 3)
        ]
    );
    let popped = s.jobs().pop_many(&db, 4).await.expect("pop_many");
    assert_eq!(popped.len(), 4);
}

#[tokio::test]
async fn a_lock_save_that_rewrites_a_vanished_document_keeps_its_structures_out_of_it() {
    // The document is deleted under the lock: the guard's save finds no place for its
    // changes and writes the whole model, which must hold null where its sets live, as
    // every save does.
    let db = db().await;
    let mut raw = raw().await;
    user("gone", &["kept"]).save(&db).await.expect("save");
    let mut guard = User::lock(&db, "gone", LockOptions::default())
        .await
        .expect("lock");
    let key = db.key("User:gone");
    let _: () = redis::cmd("JSON.DEL")
        .arg(&key)
        .arg("$")
        .query_async(&mut raw)
        .await
        .expect("JSON.DEL");
    guard.name = "Back".into();
    guard.tags.insert("local".into());
    guard.save().await.expect("guard save");
    guard.release().await.expect("release");
    let doc = stored(&mut raw, &key).await;
    assert_eq!(doc["name"], "Back");
    assert_eq!(doc["tags"], serde_json::Value::Null, "{doc}");
    assert_eq!(doc["seen"], serde_json::Value::Null, "{doc}");
    // The set took this holder's change (the document's delete left the set alone).
    let tags = set_key(&mut raw, &db, "gone", "$.tags").await;
    assert_eq!(
        smembers(&mut raw, &tags).await,
        json_texts(&["kept", "local"])
    );
}

#[tokio::test]
async fn replacing_a_nested_model_that_holds_a_set_is_refused() {
    let db = db().await;
    let mut b = board("b", &[]);
    b.inner.labels.insert(1);
    b.save(&db).await.expect("save");
    let refused = b
        .inner()
        .set(
            &db,
            Inner {
                labels: [9].into_iter().collect(),
            },
        )
        .await;
    assert!(
        matches!(refused, Err(Error::InvalidOp { .. })),
        "{refused:?}"
    );
    assert_eq!(
        Board::get(&db, "b").await.expect("get").inner.labels.len(),
        1
    );
}

#[tokio::test]
async fn whole_model_assign_takes_the_structures_and_swap_refuses_them() {
    let db = db().await;
    let mut source = desk("src", &[("a", 1)]);
    source.tags.insert("t".into());
    source.save(&db).await.expect("save");
    desk("dst", &[("old", 0)]).save(&db).await.expect("save");
    let (s, d) = (source.server_ref(), Desk::server_ref_for("dst"));
    ServerOps::scope(&db, |ops| {
        ops.assign(s.clone(), d.clone());
    })
    .await
    .expect("assign");
    let copied = Desk::get(&db, "dst").await.expect("get");
    assert_eq!(
        (copied.inbox, copied.tags),
        (source.inbox.clone(), source.tags.clone())
    );
    let refused = ServerOps::scope(&db, |ops| {
        ops.swap(s.clone(), d.clone());
    })
    .await;
    assert!(
        matches!(&refused, Err(Error::Block { source, .. }) if matches!(**source, Error::InvalidOp { .. })),
        "{refused:?}"
    );
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Player")]
struct Player {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    level: i64,
    badges: Set<String>,
}

#[tokio::test]
async fn find_reads_the_structures_with_the_matches_and_deletes_them_with_them() {
    let db = db().await;
    let mut raw = raw().await;
    db.init::<Player>().await.expect("init");
    for i in 0..6 {
        Player {
            id: format!("p{i}"),
            level: i,
            badges: [format!("b{i}"), "all".to_string()].into_iter().collect(),
        }
        .save(&db)
        .await
        .expect("save");
    }
    let f = Player::fields();
    let mut found = Player::find(&db, f.level.ge(3)).all().await.expect("find");
    found.sort_by_key(|p| p.level);
    assert_eq!(found.len(), 3);
    for p in &found {
        assert!(p.badges.contains(&format!("b{}", p.level)), "{p:?}");
        assert_eq!(p.badges.len(), 2);
    }
    let deleted = Player::find(&db, f.level.lt(3))
        .delete()
        .await
        .expect("delete");
    assert_eq!(deleted, 3);
    for i in 0..3 {
        assert!(
            companion(&mut raw, &db, "set", &format!(":Player:p{i}"))
                .await
                .is_none()
        );
    }
    assert!(
        companion(&mut raw, &db, "set", ":Player:p4")
            .await
            .is_some()
    );
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Odd")]
struct Odd {
    #[rapyer(key)]
    id: String,
    #[serde(rename = "a:b c")]
    spaced: Set<String>,
    #[serde(rename = "a")]
    plain: Set<String>,
    scores: Set<f64>,
}

#[tokio::test]
async fn structure_fields_with_hostile_names_get_keys_of_their_own_and_nan_is_refused() {
    let db = db().await;
    let mut raw = raw().await;
    let mut odd = Odd {
        id: "b c:a".into(),
        spaced: ["s".to_string()].into_iter().collect(),
        plain: ["p".to_string()].into_iter().collect(),
        scores: Set::new(),
    };
    odd.save(&db).await.expect("save");
    let back = Odd::get(&db, "b c:a").await.expect("get");
    assert_eq!(back, odd);
    let spaced = companion(&mut raw, &db, "set", "[\"a:b c\"]:Odd:b c:a")
        .await
        .expect("the spaced field's key");
    assert_eq!(smembers(&mut raw, &spaced).await, json_texts(&["s"]));
    assert!(odd.spaced().add(&db, "t".into()).await.expect("add"));
    assert_eq!(Odd::get(&db, "b c:a").await.expect("get").plain.len(), 1);
    match odd.scores().add(&db, f64::NAN).await {
        Err(Error::NonFinite { path, .. }) => assert_eq!(path, "$.scores"),
        other => panic!("expected NonFinite, got {other:?}"),
    }
    odd.scores.insert(f64::INFINITY);
    assert!(matches!(odd.save(&db).await, Err(Error::NonFinite { .. })));
    assert_eq!(Odd::get(&db, "b c:a").await.expect("get").scores.len(), 0);
}

#[tokio::test]
async fn a_hundred_thousand_members_are_saved_added_and_read_in_one_step_each() {
    let db = db().await;
    let mut raw = raw().await;
    let mut ann = user("ann", &[]);
    ann.tags = (0..100_000).map(|i| format!("m{i}")).collect();
    ann.save(&db).await.expect("save 100,000 members");
    let key = set_key(&mut raw, &db, "ann", "$.tags").await;
    let card: usize = raw.scard(&key).await.expect("SCARD");
    assert_eq!(card, 100_000);
    let added = ann
        .tags()
        .add_many(&db, (50_000..150_000).map(|i| format!("m{i}")))
        .await
        .expect("add_many");
    assert_eq!(added, 50_000);
    assert_eq!(ann.tags().len(&db).await.expect("len"), 150_000);
    assert!(
        ann.tags()
            .contains(&db, &"m149999".into())
            .await
            .expect("contains")
    );
    assert_eq!(
        User::get(&db, "ann").await.expect("get").tags.len(),
        150_000
    );
    let mut b = board("b", &[]);
    b.save(&db).await.expect("save");
    let n = b
        .tasks()
        .push_many(&db, (0..100_000).map(|i| (format!("t{i}"), i % 7)))
        .await
        .expect("push_many");
    assert_eq!(n, 100_000);
    assert_eq!(
        b.tasks().pop(&db).await.expect("pop"),
        Some(("t0".into(), 0))
    );
    assert_eq!(
        b.tasks().pop(&db).await.expect("pop"),
        Some(("t7".into(), 0))
    );
}

/// Asserts that a block failed at operation `op` with an error `is` accepts.
fn failed_at<T: std::fmt::Debug>(outcome: rapyer::Result<T>, op: usize, is: fn(&Error) -> bool) {
    match outcome {
        Err(Error::Block { op: at, source }) if at == op && is(&source) => {}
        other => panic!("expected Block {{ op: {op}, .. }}, got {other:?}"),
    }
}

/// Members no JSON, Lua or query syntax may reach: quotes, brackets, Lua, newlines, emoji,
/// the empty string and 1 MB.
fn hostile() -> Vec<String> {
    vec![
        String::new(),
        "\"".into(),
        "'] or 1==1 --".into(),
        "{\"a\":[1,2]}".into(),
        "a\nb\r\t".into(),
        "🎉 é".into(),
        "\\".into(),
        "end]]".into(),
        "redis.call('FLUSHALL')".into(),
        "x".repeat(1 << 20),
    ]
}

async fn hgetall(raw: &mut Raw, key: &str) -> HashMap<String, String> {
    raw.hgetall(key).await.expect("HGETALL")
}

#[tokio::test]
async fn blocks_remove_from_sets_and_queues_and_later_operations_see_it() {
    let db = db().await;
    let mut raw = raw().await;
    let items = hostile();
    let mut d = desk("rm", &[("first", 1), ("second", 2)]);
    for (n, item) in items.iter().enumerate() {
        d.tags.insert(item.clone());
        d.inbox.push(item.clone(), 10 + n as i64);
    }
    d.tags.insert("kept".into());
    d.save(&db).await.expect("save");
    // The document, then its ZSET, HASH and SET.
    let keys = desk_keys(&mut raw, &db, "rm").await;
    assert_eq!(keys.len(), 4);
    let (zset, index, set) = (keys[1].clone(), keys[2].clone(), keys[3].clone());
    let r = d.server_ref();

    // Every hostile member removed from both, in one block; removing what is not there is
    // `false`; an item added and removed in the same block leaves no trace; conditions
    // after them see the removals.
    let n = items.len();
    let (removed, queued_out, missing, added, again, sizes) = ServerOps::scope(&db, |ops| {
        let removed: Vec<_> = items.iter().map(|i| ops.set_remove(r.tags(), i)).collect();
        let queued_out: Vec<_> = items
            .iter()
            .map(|i| ops.queue_remove(r.inbox(), i))
            .collect();
        let missing = (
            ops.set_remove(r.tags(), &"never".to_string()),
            ops.queue_remove(r.inbox(), &"never".to_string()),
            ops.set_remove(r.tags(), &items[0]),
        );
        let added = (
            ops.set_add(r.tags(), "brief".to_string()),
            ops.queue_push(r.inbox(), "brief".to_string(), 0),
        );
        let again = (
            ops.set_remove(r.tags(), &"brief".to_string()),
            ops.queue_remove(r.inbox(), &"brief".to_string()),
            ops.queue_remove(r.inbox(), &"brief".to_string()),
        );
        let sizes = ops
            .when(
                r.tags().len().eq(1)
                    & !r.tags().contains(&items[1])
                    & r.tags().contains(&"kept".to_string())
                    & r.inbox().len().eq(2),
            )
            .then(|ops| {
                ops.incr(r.moved(), 1);
            })
            .out();
        (removed, queued_out, missing, added, again, sizes)
    })
    .await
    .expect("block");
    assert_eq!(removed, vec![Some(true); n]);
    assert_eq!(queued_out, vec![Some(true); n]);
    assert_eq!(missing, (Some(false), Some(false), Some(false)));
    assert_eq!(added, (Some(true), Some(3)));
    assert_eq!(again, (Some(true), Some(true), Some(false)));
    assert_eq!(sizes, Some(true));
    // Read back with plain commands: only what was never removed is left, index included.
    assert_eq!(smembers(&mut raw, &set).await, json_texts(&["kept"]));
    let entries = zrange(&mut raw, &zset).await;
    assert_eq!(entries.len(), 2);
    assert!(entries[0].ends_with("\"first\"") && entries[1].ends_with("\"second\""));
    let idx = hgetall(&mut raw, &index).await;
    let mut fields: Vec<&str> = idx.keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(fields, ["", "\"first\"", "\"second\""]);
    let stored = Desk::get(&db, "rm").await.expect("get");
    assert_eq!(stored.tags.iter().collect::<Vec<_>>(), ["kept"]);
    assert_eq!(stored.moved, 1);
    // The companions keep their document's expiry.
    for k in &keys {
        let ms = pttl(&mut raw, k).await;
        assert!(ms > 90_000 && ms <= 100_000, "{k}: {ms}");
    }

    // The bound forms of a model's atomic block; the queue's last item removed takes its
    // index with it.
    let mut local = stored;
    let (a, b, c) = local
        .atomic(&db, |m| {
            (
                m.tags().remove(&"kept".to_string()),
                m.inbox().remove(&"first".to_string()),
                m.inbox().remove(&"second".to_string()),
            )
        })
        .await
        .expect("atomic");
    assert_eq!((a, b, c), (Some(true), Some(true), Some(true)));
    assert!(smembers(&mut raw, &set).await.is_empty());
    assert!(zrange(&mut raw, &zset).await.is_empty());
    assert!(hgetall(&mut raw, &index).await.is_empty());
    let stored = Desk::get(&db, "rm").await.expect("get");
    assert!(stored.tags.is_empty() && stored.inbox.is_empty());
    // Removing from an empty (absent) set or queue is `false` and creates nothing.
    let (x, y) = ServerOps::scope(&db, |ops| {
        (
            ops.set_remove(r.tags(), &"kept".to_string()),
            ops.queue_remove(r.inbox(), &"first".to_string()),
        )
    })
    .await
    .expect("block");
    assert_eq!((x, y), (Some(false), Some(false)));
    assert_eq!(desk_keys(&mut raw, &db, "rm").await.len(), 1);
}

#[tokio::test]
async fn removes_in_a_block_that_fails_later_leave_every_structure_byte_identical() {
    let db = db().await;
    let mut raw = raw().await;
    let mut d = desk("rmfail", &[("a", 1), ("b", 2)]);
    d.tags.extend(["t", "u"].map(String::from));
    d.moved = i64::MAX;
    d.save(&db).await.expect("save");
    let keys = desk_keys(&mut raw, &db, "rmfail").await;
    assert_eq!(keys.len(), 4, "{keys:?}");
    let before = dumps(&mut raw, &keys).await;
    let r = d.server_ref();
    let ghost = Desk::server_ref_for("ghost");

    // A failing operation after the removes.
    let failed = ServerOps::scope(&db, |ops| {
        ops.set_remove(r.tags(), &"t".to_string());
        ops.queue_remove(r.inbox(), &"a".to_string());
        ops.when(r.tags().len().eq(1)).then(|ops| {
            ops.incr(r.moved(), 1); // overflows: the block fails
        });
    })
    .await;
    failed_at(failed, 3, |e| matches!(e, Error::Overflow { .. }));
    assert_eq!(dumps(&mut raw, &keys).await, before);
    // A failing condition after the removes: the other model is missing.
    let failed = ServerOps::scope(&db, |ops| {
        ops.set_remove(r.tags(), &"u".to_string());
        ops.queue_remove(r.inbox(), &"b".to_string());
        ops.when(ghost.done().len().eq(0) | ghost.tags().len().eq(0))
            .then(|_| {});
    })
    .await;
    failed_at(failed, 2, |e| matches!(e, Error::NotFound { .. }));
    assert_eq!(dumps(&mut raw, &keys).await, before);
    // The same in the model's atomic block: the local model stays as it was.
    let mut local = d.clone();
    let failed = local
        .atomic(&db, |m| {
            m.tags().remove(&"t".to_string());
            m.inbox().remove(&"a".to_string());
            m.moved().incr(1)
        })
        .await;
    failed_at(failed, 2, |e| matches!(e, Error::Overflow { .. }));
    assert_eq!(local, d);
    assert_eq!(dumps(&mut raw, &keys).await, before);
    // A companion key of another Redis type (written by hand) is refused, nothing written.
    let set = &keys[3];
    let _: () = raw.del(set).await.expect("DEL");
    let _: () = raw.set(set, "a string").await.expect("SET");
    let keys_now = desk_keys(&mut raw, &db, "rmfail").await;
    let before = dumps(&mut raw, &keys_now).await;
    let failed = ServerOps::scope(&db, |ops| {
        ops.queue_remove(r.inbox(), &"a".to_string());
        ops.set_remove(r.tags(), &"t".to_string());
    })
    .await;
    failed_at(failed, 1, |e| matches!(e, Error::TypeMismatch { .. }));
    assert_eq!(dumps(&mut raw, &keys_now).await, before);
}

/// Two models of one hash tag (one slot), with a set kept in a companion key and sets
/// stored in the document (inside a list).
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Club", hash_tag = "org")]
struct Club {
    #[rapyer(key)]
    id: String,
    members: Set<String>,
    groups: Vec<Set<String>>,
}

fn club(id: &str, members: &[String]) -> Club {
    Club {
        id: id.into(),
        members: members.iter().cloned().collect(),
        groups: vec![Set::new()],
    }
}

#[tokio::test]
async fn set_algebra_takes_the_other_set_by_server_reference_without_loading_it() {
    let db = db().await;
    let mut raw = raw().await;
    let h = hostile();
    let mut x = club("x", &[h[0].clone(), h[1].clone(), h[2].clone()]);
    let y = club(
        "y",
        &[h[1].clone(), h[2].clone(), h[9].clone(), h[7].clone()],
    );
    x.save(&db).await.expect("save");
    y.save(&db).await.expect("save");
    let y_key = companion(&mut raw, &db, "set", ":Club:{org}:y")
        .await
        .expect("y's set");
    let x_key = companion(&mut raw, &db, "set", ":Club:{org}:x")
        .await
        .expect("x's set");
    let y_before = dump(&mut raw, &y_key).await;
    let yr = Club::server_ref_for("y");
    let texts = |items: &[&String]| -> BTreeSet<String> {
        items
            .iter()
            .map(|i| serde_json::to_string(i).expect("encodes"))
            .collect()
    };
    // By value, by reference, and a loaded handle: the same algebra.
    let n = x
        .members()
        .union_into(&db, yr.members())
        .await
        .expect("union");
    assert_eq!(n, 5);
    assert_eq!(
        smembers(&mut raw, &x_key).await,
        texts(&[&h[0], &h[1], &h[2], &h[7], &h[9]])
    );
    assert_eq!(
        x.members.len(),
        5,
        "the local set holds the server's answer"
    );
    let ry = yr.members();
    let n = x
        .members()
        .intersect_into(&db, &ry)
        .await
        .expect("intersect");
    assert_eq!(n, 4);
    assert_eq!(
        smembers(&mut raw, &x_key).await,
        texts(&[&h[1], &h[2], &h[7], &h[9]])
    );
    let n = x
        .members()
        .difference_into(&db, &ry)
        .await
        .expect("difference");
    assert_eq!(n, 0);
    assert!(smembers(&mut raw, &x_key).await.is_empty());
    assert!(x.members.is_empty());
    // The other set is only read: byte-identical.
    assert_eq!(dump(&mut raw, &y_key).await, y_before);
    // A set with itself, by reference.
    let mut y_local = Club::get(&db, "y").await.expect("get");
    assert_eq!(
        y_local
            .members()
            .union_into(&db, Club::server_ref_for("y").members())
            .await
            .expect("self"),
        4
    );

    // The other model missing: NotFound naming it, nothing written.
    let mut x = Club::get(&db, "x").await.expect("get");
    x.members().add(&db, "x1".into()).await.expect("add");
    let x_before = dump(&mut raw, &x_key).await;
    match x
        .members()
        .union_into(&db, Club::server_ref_for("nobody").members())
        .await
    {
        Err(Error::NotFound { key }) => assert_eq!(key, db.key("Club:{org}:nobody")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(dump(&mut raw, &x_key).await, x_before);
    assert_eq!(x.members.len(), 1, "a failed call leaves the local set");
    // Another slot (a model without the hash tag): CrossSlot before anything is sent.
    user("u", &["1"]).save(&db).await.expect("save");
    match x
        .members()
        .union_into(&db, User::server_ref_for("u").tags())
        .await
    {
        Err(Error::CrossSlot { keys }) => assert_eq!(keys.len(), 4, "{keys:?}"),
        other => panic!("expected CrossSlot, got {other:?}"),
    }
    assert_eq!(dump(&mut raw, &x_key).await, x_before);
    // A set stored in the document (inside a list) has no companion key: refused.
    match x
        .members()
        .union_into(&db, Club::server_ref_for("y").groups().at(0))
        .await
    {
        Err(Error::InvalidOp { key, path, .. }) => {
            assert_eq!(
                (key.as_str(), path.as_str()),
                (db.key("Club:{org}:y").as_str(), "$.groups[0]")
            );
        }
        other => panic!("expected InvalidOp, got {other:?}"),
    }
    assert_eq!(dump(&mut raw, &x_key).await, x_before);
}
