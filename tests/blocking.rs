//! The blocking API against the real server, from plain synchronous code (`#[test] fn`, std
//! threads, no runtime of the test's own): the core scenarios of the async tests (CRUD, every
//! field handle, ServerOps and atomic blocks, locks, queries and index migration, named
//! scripts and pipelines, connecting) run through `.wait()`, each read back with plain
//! commands; many std threads sharing one `Db`; and `.wait()` inside a runtime of either
//! flavour refused with a panic that names the fix, never a deadlock.

#![cfg(feature = "blocking")]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rapyer::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

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
    avatar: Bytes,
    nick: Option<String>,
    #[rapyer(value)]
    plan: Plan,
    #[cfg(feature = "chrono")]
    seen: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Plan {
    Free,
    Pro { seats: u32 },
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Wallet", hash_tag = "bank")]
struct Wallet {
    #[rapyer(key)]
    id: String,
    balance: i64,
    frozen: bool,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Member")]
struct Member {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    name: String,
    #[rapyer(index(sortable))]
    age: i64,
    zip: i64,
}

/// `Member` with `zip` indexed too: the same documents under a new schema.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Member")]
struct MemberV2 {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    name: String,
    #[rapyer(index(sortable))]
    age: i64,
    #[rapyer(index)]
    zip: i64,
}

/// Values that break naive escaping in Lua, JSONPath, RediSearch and JSON.
fn hostile() -> Vec<String> {
    vec![
        "a'] or 1==1 --".into(),
        "\"".into(),
        "\\".into(),
        "{".into(),
        "|".into(),
        "@name:{x} | *".into(),
        "end) redis.call('FLUSHALL') --".into(),
        "line\nbreak".into(),
        "🦀 crab".into(),
        String::new(),
        "x".repeat(1 << 20),
    ]
}

fn wallet(id: &str, balance: i64) -> Wallet {
    Wallet {
        id: id.to_string(),
        balance,
        frozen: false,
    }
}

fn user(id: &str) -> User {
    User {
        id: id.to_string(),
        name: "Ann".into(),
        age: 41,
        score: 1.5,
        active: false,
        tags: vec!["a".into(), "b".into()],
        prefs: HashMap::from([("theme".to_string(), "dark".to_string())]),
        address: Address {
            city: "Paris".into(),
            zip: 75001,
        },
        avatar: Bytes::from(vec![0, 159, 146, 150]),
        nick: None,
        plan: Plan::Free,
        #[cfg(feature = "chrono")]
        seen: "2024-02-29T23:59:59.123456789Z"
            .parse()
            .expect("a date-time"),
    }
}

/// A `Db` on the test binary's server, connected from plain code, in a namespace of the
/// running test's own.
fn db() -> Db {
    let server = rapyer_testkit::server();
    Db::connect(server.url())
        .wait()
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", server.url()))
        .with_namespace(rapyer_testkit::test_namespace())
        .expect("the test namespace is valid")
}

/// A plain blocking connection, to read and write exactly what is on the server.
fn raw() -> redis::Connection {
    redis::Client::open(rapyer_testkit::server().url())
        .expect("valid url")
        .get_connection()
        .expect("raw connection")
}

/// `JSON.GET key $` as text, or `None` when the key does not exist.
fn json_text(raw: &mut redis::Connection, key: &str) -> Option<String> {
    redis::cmd("JSON.GET")
        .arg(key)
        .arg("$")
        .query(raw)
        .expect("JSON.GET")
}

/// The stored document at `key` (the root, not the `$` array).
fn stored(raw: &mut redis::Connection, key: &str) -> serde_json::Value {
    let text = json_text(raw, key).unwrap_or_else(|| panic!("no document at {key}"));
    let mut all: Vec<serde_json::Value> = serde_json::from_str(&text).expect("a JSON array");
    all.remove(0)
}

fn exists(raw: &mut redis::Connection, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query::<i64>(raw)
        .expect("EXISTS")
        == 1
}

fn pttl(raw: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(raw).expect("PTTL")
}

// ---------------------------------------------------------------------------------------
// CRUD

#[test]
fn crud_runs_from_plain_code_and_stores_plain_json() {
    let db = db();
    let mut raw = raw();
    let mut ann = user("ann");
    ann.save(&db).wait().expect("save");
    assert_eq!(
        stored(&mut raw, &db.key("User:ann")),
        serde_json::to_value(&ann).expect("json")
    );
    assert_eq!(User::get(&db, "ann").wait().expect("get"), ann);
    assert!(User::exists(&db, "ann").wait().expect("exists"));
    assert!(!User::exists(&db, "nobody").wait().expect("exists"));

    match User::get(&db, "nobody").wait() {
        Err(Error::NotFound { key }) => assert_eq!(key, db.key("User:nobody")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(!exists(&mut raw, &db.key("User:nobody")), "nothing created");

    let bob = user("bob");
    User::insert_many(&db, std::slice::from_ref(&bob))
        .wait()
        .expect("insert_many");
    let many = User::get_many(&db, ["bob", "nobody", "ann"])
        .wait()
        .expect("get_many");
    assert_eq!(many, vec![Some(bob.clone()), None, Some(ann.clone())]);
    let mut everyone = User::all(&db).wait().expect("all");
    everyone.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(everyone, vec![ann.clone(), bob.clone()]);

    // Someone else changes the document: refresh reads the server's copy.
    let _: () = redis::cmd("JSON.SET")
        .arg(db.key("User:ann"))
        .arg("$.age")
        .arg(50)
        .query(&mut raw)
        .expect("JSON.SET");
    ann.refresh(&db).wait().expect("refresh");
    assert_eq!(ann.age, 50);

    assert_eq!(ann.ttl(&db).wait().expect("ttl"), None);
    ann.set_ttl(&db, Duration::from_secs(60))
        .wait()
        .expect("set_ttl");
    let left = pttl(&mut raw, &db.key("User:ann"));
    assert!(left > 50_000 && left <= 60_000, "pttl {left}");
    let ttl = ann.ttl(&db).wait().expect("ttl").expect("an expiry");
    assert!(ttl > Duration::from_secs(50), "{ttl:?}");

    assert!(ann.delete(&db).wait().expect("delete"));
    assert!(!ann.delete(&db).wait().expect("delete again"));
    assert!(User::delete_by_id(&db, "bob").wait().expect("delete_by_id"));
    assert_eq!(
        User::delete_many(&db, ["ann", "bob"])
            .wait()
            .expect("delete_many"),
        0
    );
    assert!(!exists(&mut raw, &db.key("User:ann")));
    assert!(!exists(&mut raw, &db.key("User:bob")));
}

#[test]
fn hostile_ids_and_values_round_trip() {
    let db = db();
    let mut raw = raw();
    for (i, text) in hostile().into_iter().enumerate() {
        let mut u = user(&text);
        u.name = text.clone();
        u.tags = vec![text.clone()];
        u.prefs = HashMap::from([(text.clone(), text.clone())]);
        u.save(&db).wait().expect("save");
        let key = db.key(&User::key_of(&text));
        assert_eq!(
            stored(&mut raw, &key),
            serde_json::to_value(&u).expect("json"),
            "value #{i}"
        );
        assert_eq!(User::get(&db, &text).wait().expect("get"), u, "value #{i}");
        assert!(User::delete_by_id(&db, &text).wait().expect("delete"));
    }
}

#[test]
fn a_key_of_another_type_is_a_type_mismatch_and_insert_many_writes_nothing() {
    let db = db();
    let mut raw = raw();
    let foreign = db.key("User:foreign");
    let _: () = redis::cmd("SET")
        .arg(&foreign)
        .arg("not json")
        .query(&mut raw)
        .expect("SET");
    match User::get(&db, "foreign").wait() {
        Err(Error::TypeMismatch { key, .. }) => assert_eq!(key, foreign),
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    let result = User::insert_many(&db, &[user("fresh"), user("foreign")]).wait();
    assert!(
        matches!(&result, Err(Error::TypeMismatch { key, .. }) if *key == foreign),
        "{result:?}"
    );
    assert!(!exists(&mut raw, &db.key("User:fresh")), "all or nothing");
    let value: String = redis::cmd("GET")
        .arg(&foreign)
        .query(&mut raw)
        .expect("GET");
    assert_eq!(value, "not json");
    assert!(matches!(
        User::delete_by_id(&db, "foreign").wait(),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(exists(&mut raw, &foreign), "left as it was");
}

// ---------------------------------------------------------------------------------------
// Field handles

#[test]
fn every_field_handle_runs_and_mirrors_the_server() {
    let db = db();
    let mut raw = raw();
    let mut u = user("h1");
    u.save(&db).wait().expect("save");
    let key = db.key("User:h1");

    // Numbers: exact, and an overflow changes nothing on either side.
    assert_eq!(u.age().incr(&db, 9).wait().expect("incr"), 50);
    assert_eq!(u.age().decr(&db, 10).wait().expect("decr"), 40);
    assert_eq!(u.age().mul(&db, 3).wait().expect("mul"), 120);
    assert!(matches!(
        u.age().incr(&db, i64::MAX).wait(),
        Err(Error::Overflow { .. })
    ));
    assert_eq!(u.age, 120);
    assert_eq!(u.age().load(&db).wait().expect("load"), 120);
    assert_eq!(u.score().incr(&db, 0.25).wait().expect("float incr"), 1.75);
    u.score().set(&db, 2.5).wait().expect("float set");

    // Strings and booleans.
    assert_eq!(u.name().append(&db, " 🦀\n").wait().expect("append"), 9);
    assert_eq!(u.name().len(&db).wait().expect("len"), 9);
    assert!(u.active().toggle(&db).wait().expect("toggle"));
    u.active().set(&db, true).wait().expect("bool set");
    assert_eq!(u.name().load(&db).wait().expect("load"), "Ann 🦀\n");

    // Lists, with Python's indexes.
    assert_eq!(u.tags().append(&db, "c").wait().expect("append"), 3);
    assert_eq!(
        u.tags()
            .extend(&db, ["d".to_string(), "e".to_string()])
            .wait()
            .expect("extend"),
        5
    );
    assert_eq!(u.tags().insert(&db, -1, "x").wait().expect("insert"), 6);
    assert_eq!(u.tags().pop(&db).wait().expect("pop"), "e");
    assert_eq!(u.tags().pop_at(&db, 0).wait().expect("pop_at"), "a");
    assert!(
        u.tags()
            .remove(&db, &"x".to_string())
            .wait()
            .expect("remove")
    );
    assert_eq!(u.tags().get(&db, -1).wait().expect("get"), "d");
    u.tags().set(&db, 0, "B").wait().expect("set");
    assert_eq!(
        u.tags().slice(&db, (1, -1)).wait().expect("slice"),
        vec!["c".to_string()]
    );
    assert_eq!(u.tags().trim(&db, 0..2).wait().expect("trim"), 2);
    assert_eq!(u.tags().len(&db).wait().expect("len"), 2);
    assert!(matches!(
        u.tags().get(&db, 7).wait(),
        Err(Error::IndexOutOfRange { .. })
    ));

    // Dicts: any string is a key.
    let odd = "a.b \"c\" ['d']\n";
    assert_eq!(
        u.prefs().insert(&db, odd, "v").wait().expect("insert"),
        None
    );
    assert_eq!(
        u.prefs().get(&db, odd).wait().expect("get"),
        Some("v".to_string())
    );
    u.prefs()
        .update(&db, [("k".to_string(), "1".to_string())])
        .wait()
        .expect("update");
    assert_eq!(u.prefs().len(&db).wait().expect("len"), 3);
    assert_eq!(
        u.prefs().remove(&db, "theme").wait().expect("remove"),
        Some("dark".to_string())
    );
    let mut keys = u.prefs().keys(&db).wait().expect("keys");
    keys.sort();
    assert_eq!(keys, vec![odd.to_string(), "k".to_string()]);

    // Nested models, options, bytes and opted-in values.
    u.address()
        .city()
        .set(&db, "Zürich")
        .wait()
        .expect("nested set");
    assert_eq!(
        u.address().zip().incr(&db, 1).wait().expect("nested"),
        75002
    );
    u.nick().set(&db, Some("an".into())).wait().expect("set");
    assert_eq!(
        u.nick().take(&db).wait().expect("take"),
        Some("an".to_string())
    );
    u.avatar()
        .set(&db, vec![1u8, 2, 3])
        .wait()
        .expect("bytes set");
    u.plan()
        .set(&db, Plan::Pro { seats: 3 })
        .wait()
        .expect("value set");
    assert_eq!(
        *u.plan().load(&db).wait().expect("value load"),
        Plan::Pro { seats: 3 }
    );
    #[cfg(feature = "chrono")]
    {
        let later = u
            .seen()
            .add(&db, Duration::from_millis(1500))
            .wait()
            .expect("add");
        assert_eq!(later.to_rfc3339(), "2024-03-01T00:00:00.623456789+00:00");
    }

    // The local model is what the server holds.
    assert_eq!(
        stored(&mut raw, &key),
        serde_json::to_value(&u).expect("json")
    );
    assert_eq!(User::get(&db, "h1").wait().expect("get"), u);

    // A handle on a missing model: NotFound, nothing created.
    let mut ghost = user("ghost");
    assert!(matches!(
        ghost.age().incr(&db, 1).wait(),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(ghost.age, 41);
    assert!(!exists(&mut raw, &db.key("User:ghost")));
}

// ---------------------------------------------------------------------------------------
// ServerOps and atomic blocks

#[test]
fn a_server_ops_block_runs_whole_and_a_failing_one_changes_nothing() {
    let db = db();
    let mut raw = raw();
    let (a, b) = (wallet("a", 100), wallet("b", 0));
    Wallet::insert_many(&db, &[a.clone(), b.clone()])
        .wait()
        .expect("insert");
    let (ra, rb) = (a.server_ref(), b.server_ref());
    let (paid, total) = ServerOps::scope(&db, |ops| {
        let paid = ops
            .when(ra.balance().ge(30) & !ra.frozen().eq(true))
            .then(|ops| {
                ops.incr(ra.balance(), -30);
                ops.incr(rb.balance(), 30);
            })
            .out();
        (paid, ops.incr_by_field(rb.balance(), ra.balance()))
    })
    .wait()
    .expect("scope");
    assert_eq!((paid, total), (Some(true), Some(100)));
    assert_eq!(stored(&mut raw, &db.key(&a.key()))["balance"], json!(70));
    assert_eq!(stored(&mut raw, &db.key(&b.key()))["balance"], json!(100));

    // The second operation fails (no such wallet): the first one is not applied either.
    let before = json_text(&mut raw, &db.key(&a.key()));
    let ghost = Wallet::server_ref_for("ghost");
    let failed = ServerOps::scope(&db, |ops| {
        ops.incr(ra.balance(), 1);
        ops.incr(ghost.balance(), 1);
    })
    .wait();
    match failed {
        Err(Error::Block { op: 1, source }) => {
            assert!(matches!(*source, Error::NotFound { .. }), "{source:?}")
        }
        other => panic!("expected Block at op 1, got {other:?}"),
    }
    assert_eq!(json_text(&mut raw, &db.key(&a.key())), before);
    assert!(!exists(&mut raw, &db.key("Wallet:{bank}:ghost")));

    // Keys in different slots are refused before anything is sent.
    let other = User::server_ref_for("x");
    let refused = ServerOps::scope(&db, |ops| {
        ops.incr(ra.balance(), 1);
        ops.incr(other.age(), 1);
    })
    .wait();
    assert!(
        matches!(refused, Err(Error::CrossSlot { .. })),
        "{refused:?}"
    );
    assert_eq!(json_text(&mut raw, &db.key(&a.key())), before);
    // Explaining touches no server: the same plain call in both worlds.
    assert!(!ServerOps::explain(|ops| ops.incr(ra.balance(), 1)).is_empty());
}

#[test]
fn an_atomic_block_updates_the_local_model_from_the_server() {
    let db = db();
    let mut raw = raw();
    let mut u = user("at");
    u.save(&db).wait().expect("save");
    let (age, len) = u
        .atomic(&db, |m| {
            m.name().set("Bob");
            m.prefs().insert("k", "v");
            m.active().toggle();
            (m.age().incr(1), m.tags().append("y"))
        })
        .wait()
        .expect("atomic");
    assert_eq!((age, len), (Some(42), Some(3)));
    assert_eq!((u.age, u.name.as_str(), u.active), (42, "Bob", true));
    assert_eq!(
        stored(&mut raw, &db.key("User:at")),
        serde_json::to_value(&u).expect("json")
    );

    let before = json_text(&mut raw, &db.key("User:at"));
    let failed = u
        .atomic(&db, |m| {
            m.age().incr(1);
            m.tags().pop_at(10);
        })
        .wait();
    assert!(
        matches!(failed, Err(Error::Block { op: 1, .. })),
        "{failed:?}"
    );
    assert_eq!(json_text(&mut raw, &db.key("User:at")), before);
    assert_eq!(u.age, 42, "the local model is left as it was");
}

// ---------------------------------------------------------------------------------------
// Locks

fn quick() -> LockOptions {
    LockOptions::default()
        .ttl(Duration::from_secs(5))
        .timeout(Duration::from_millis(300))
}

#[test]
fn a_lock_reads_saves_extends_and_releases() {
    let db = db();
    let mut raw = raw();
    wallet("l1", 10).save(&db).wait().expect("save");
    let mut guard = Wallet::lock(&db, "l1", quick()).wait().expect("lock");
    let lock_key = guard.lock_key().to_string();
    assert!(exists(&mut raw, &lock_key));
    // Held: another caller times out.
    match Wallet::lock(&db, "l1", quick()).wait() {
        Err(Error::LockTimeout { .. }) => {}
        other => panic!("expected LockTimeout, got {other:?}"),
    }
    guard.balance += 5;
    guard.save().wait().expect("save under the lock");
    assert_eq!(
        stored(&mut raw, &db.key("Wallet:{bank}:l1"))["balance"],
        json!(15)
    );
    guard
        .extend(Duration::from_secs(30))
        .wait()
        .expect("extend");
    assert!(pttl(&mut raw, &lock_key) > 20_000);
    guard.release().wait().expect("release");
    assert!(!exists(&mut raw, &lock_key));

    // A lost lock refuses to save and writes nothing.
    let mut guard = Wallet::lock(&db, "l1", quick()).wait().expect("lock");
    let _: () = redis::cmd("DEL")
        .arg(guard.lock_key())
        .query(&mut raw)
        .expect("DEL");
    guard.balance = 0;
    assert!(matches!(guard.save().wait(), Err(Error::LockLost { .. })));
    assert_eq!(
        stored(&mut raw, &db.key("Wallet:{bank}:l1"))["balance"],
        json!(15)
    );
}

#[test]
fn a_guard_dropped_in_plain_code_has_released_its_lock_when_the_drop_returns() {
    let db = db();
    let mut raw = raw();
    wallet("l2", 0).save(&db).wait().expect("save");
    let long = LockOptions::default().ttl(Duration::from_secs(30));
    let guard = Wallet::lock(&db, "l2", long.clone()).wait().expect("lock");
    let lock_key = guard.lock_key().to_string();
    drop(guard);
    assert!(
        !exists(&mut raw, &lock_key),
        "released before drop returned"
    );

    // Dropped on another thread, which then ends.
    let lock_key = std::thread::scope(|s| {
        s.spawn(|| {
            let guard = Wallet::lock(&db, "l2", long.clone()).wait().expect("lock");
            guard.lock_key().to_string()
        })
        .join()
        .expect("thread")
    });
    assert!(!exists(&mut raw, &lock_key));
    Wallet::lock(&db, "l2", quick())
        .wait()
        .expect("free at once")
        .release()
        .wait()
        .expect("release");
}

#[test]
fn threads_doing_read_modify_write_under_the_lock_lose_nothing() {
    let db = db();
    let mut raw = raw();
    wallet("l3", 0).save(&db).wait().expect("save");
    let options = LockOptions::default().timeout(Duration::from_secs(30));
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..10 {
                    let mut guard = Wallet::lock(&db, "l3", options.clone())
                        .wait()
                        .expect("lock");
                    guard.balance += 1;
                    guard.save().wait().expect("save");
                    guard.release().wait().expect("release");
                }
            });
        }
    });
    assert_eq!(
        stored(&mut raw, &db.key("Wallet:{bank}:l3"))["balance"],
        json!(80)
    );
}

// ---------------------------------------------------------------------------------------
// Queries

fn member(i: usize, name: &str) -> Member {
    Member {
        id: format!("m{i}"),
        name: name.to_string(),
        age: i as i64,
        zip: 100 + i as i64,
    }
}

#[test]
fn queries_find_sort_count_delete_and_the_index_follows_a_schema_change() {
    let db = db();
    let mut raw = raw();
    db.init::<Member>().wait().expect("init");
    let mut members: Vec<Member> = (0..30).map(|i| member(i, "v")).collect();
    for (i, text) in hostile().into_iter().take(10).enumerate() {
        members.push(member(100 + i, &text));
    }
    Member::insert_many(&db, &members).wait().expect("insert");
    let f = Member::fields();

    let window = Member::find(&db, f.name.eq("v") & f.age.ge(10))
        .sort_by(&f.age, Order::Desc)
        .limit(0, 5)
        .all()
        .wait()
        .expect("all");
    let ages: Vec<i64> = window.iter().map(|m| m.age).collect();
    assert_eq!(ages, vec![29, 28, 27, 26, 25]);
    assert_eq!(
        Member::find(&db, f.name.eq("v"))
            .count()
            .wait()
            .expect("count"),
        30
    );
    let first = Member::find(&db, f.age.between(3, 3))
        .first()
        .wait()
        .expect("first");
    assert_eq!(first.map(|m| m.id), Some("m3".to_string()));
    // Each hostile value finds exactly its document (the empty tag included).
    for (i, text) in hostile().into_iter().take(10).enumerate() {
        let keys = Member::find(&db, f.name.eq(text.as_str()))
            .keys()
            .wait()
            .expect("keys");
        assert_eq!(
            keys,
            vec![db.key(&format!("Member:m{}", 100 + i))],
            "{text:?}"
        );
    }
    // A refused query deletes nothing.
    let refused = Member::find(&db, f.name.eq("a\0b")).delete().wait();
    assert!(
        matches!(refused, Err(Error::InvalidQuery { .. })),
        "{refused:?}"
    );
    assert_eq!(
        Member::find(&db, f.age.lt(5))
            .delete()
            .wait()
            .expect("delete"),
        5
    );
    assert!(!exists(&mut raw, &db.key("Member:m0")));
    assert!(exists(&mut raw, &db.key("Member:m5")));

    // A new schema: the next init re-creates the index over the stored documents.
    db.init::<MemberV2>().wait().expect("migrate");
    let g = MemberV2::fields();
    let found = MemberV2::find(&db, g.zip.lt(110))
        .sort_by(&g.age, Order::Asc)
        .all()
        .wait()
        .expect("the new field is indexed");
    let ages: Vec<i64> = found.iter().map(|m| m.age).collect();
    assert_eq!(ages, vec![5, 6, 7, 8, 9]);
}

// ---------------------------------------------------------------------------------------
// Named scripts and pipelines

rapyer::script! {
    /// Appends `item` to the list at `key`; returns its new length.
    PUSH("blocking_push", keys(key), args(item: &str)) -> i64 =
        "return redis.call('RPUSH', KEYS[1], ARGV[1])";
}

#[test]
fn named_scripts_pipelines_and_transactions_run_from_plain_code() {
    let db = db();
    let mut raw = raw();
    db.scripts()
        .define(
            "bump",
            Keys::Fixed(1),
            "return redis.call('INCRBY', KEYS[1], ARGV[1])",
        )
        .expect("define");
    let n: i64 = db
        .run_script("bump", &["visits"], &[5])
        .wait()
        .expect("run");
    assert_eq!(n, 5);
    for text in hostile().into_iter().take(10) {
        PUSH.call(&db, "items", &text).wait().expect("call");
    }
    let items: Vec<String> = redis::cmd("LRANGE")
        .arg(db.key("items"))
        .arg(0)
        .arg(-1)
        .query(&mut raw)
        .expect("LRANGE");
    assert_eq!(items, hostile().into_iter().take(10).collect::<Vec<_>>());
    assert_eq!(PUSH.prepare("items", "z").run(&db).wait().expect("run"), 11);
    match db.run_script::<i64>("nope", &["k"], &[1]).wait() {
        Err(Error::UnknownScript { .. }) => {}
        other => panic!("expected UnknownScript, got {other:?}"),
    }
    db.scripts()
        .define(
            "boom",
            Keys::Fixed(0),
            "return redis.error_reply('no luck')",
        )
        .expect("define");
    match db
        .run_script::<i64>("boom", &[] as &[&str], &[] as &[&str])
        .wait()
    {
        Err(Error::Script { name, message }) => {
            assert_eq!(name, "boom");
            assert!(message.contains("no luck"), "{message}");
        }
        other => panic!("expected Script, got {other:?}"),
    }

    // NOSCRIPT never surfaces: flushed scripts are reloaded.
    db.scripts().flush().wait().expect("flush");
    assert!(!db.scripts().exists("bump").wait().expect("exists"));
    assert!(
        db.scripts()
            .missing()
            .wait()
            .expect("missing")
            .contains(&"bump".to_string())
    );
    assert!(db.scripts().preload().wait().expect("preload") > 0);
    assert!(db.scripts().exists("bump").wait().expect("exists"));

    let mut pipe = db.pipeline();
    let pushed = pipe.add(PUSH.prepare("items", "p"));
    pipe.run_script("bump", &["visits"], &[1]);
    pipe.cmd(redis::cmd("GET").arg(db.key("visits")).to_owned());
    let replies = pipe.execute().wait().expect("pipeline");
    assert_eq!(pushed.get(&replies).expect("typed"), 12);
    assert_eq!(replies.len(), 3);

    // In a pipeline each command fails alone.
    let mut pipe = db.pipeline();
    pipe.run_script("bump", &["visits"], &[1]);
    pipe.cmd(redis::cmd("INCR").arg(db.key("items")).to_owned()); // WRONGTYPE
    pipe.run_script("bump", &["visits"], &[1]);
    let each = pipe.execute_each().wait().expect("execute_each");
    assert!(
        each[0].is_ok() && each[1].is_err() && each[2].is_ok(),
        "{each:?}"
    );

    let mut tx = db.transaction();
    tx.run_script("bump", &["visits"], &[10]);
    tx.run_script("bump", &["visits"], &[10]);
    tx.execute().wait().expect("transaction");
    let visits: i64 = redis::cmd("GET")
        .arg(db.key("visits"))
        .query(&mut raw)
        .expect("GET");
    assert_eq!(visits, 5 + 1 + 2 + 20);
}

// ---------------------------------------------------------------------------------------
// Connecting

#[test]
fn connect_with_options_and_namespaces() {
    let url = rapyer_testkit::server().url();
    let db = Db::connect_with(url, small_budget())
        .wait()
        .expect("connect_with")
        .with_namespace(rapyer_testkit::test_namespace())
        .expect("namespace");
    let tenant = db
        .with_namespace(format!("{}t/", db.namespace()))
        .expect("ns");
    user("n1").save(&tenant).wait().expect("save");
    assert!(!User::exists(&db, "n1").wait().expect("exists"));
    assert!(User::exists(&tenant, "n1").wait().expect("exists"));
    assert!(exists(&mut raw(), &tenant.key("User:n1")));

    // Nothing listens there: a typed error within the budget, no hang.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let started = Instant::now();
    match Db::connect_with(&format!("redis://127.0.0.1:{port}"), small_budget()).wait() {
        Err(Error::Redis { op, .. }) => assert_eq!(op, "connect"),
        other => panic!("expected Error::Redis, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(matches!(
        Db::connect("not a url").wait(),
        Err(Error::Redis { .. })
    ));
}

/// Options with a small reconnect budget.
fn small_budget() -> rapyer::ConnectOptions {
    rapyer::ConnectOptions::default()
        .connect_timeout(Duration::from_millis(250))
        .reconnect_retries(1)
        .reconnect_max_delay(Duration::from_millis(50))
}

// ---------------------------------------------------------------------------------------
// Threads

#[test]
fn threads_sharing_one_db_lose_no_increment_and_no_element() {
    let db = db();
    let mut raw = raw();
    let mut base = user("t1");
    base.tags.clear();
    base.save(&db).wait().expect("save");
    std::thread::scope(|s| {
        for t in 0..8 {
            let db = &db;
            let mut mine = base.clone();
            s.spawn(move || {
                for i in 0..50 {
                    mine.age().incr(db, 1).wait().expect("incr");
                    mine.tags()
                        .append(db, format!("{t}:{i}"))
                        .wait()
                        .expect("append");
                }
            });
        }
    });
    let doc = stored(&mut raw, &db.key("User:t1"));
    assert_eq!(doc["age"], json!(41 + 400));
    let mut tags: Vec<String> = serde_json::from_value(doc["tags"].clone()).expect("tags");
    tags.sort();
    let mut expected: Vec<String> = (0..8)
        .flat_map(|t| (0..50).map(move |i| format!("{t}:{i}")))
        .collect();
    expected.sort();
    assert_eq!(tags, expected);
}

#[test]
fn a_clone_dropped_on_one_thread_leaves_the_others_working() {
    let mut raw = raw();
    let first = db();
    let key = first.key("User:t2");
    user("t2").save(&first).wait().expect("save");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let worker = {
        let mine = first.clone();
        std::thread::spawn(move || {
            let mut u = user("t2");
            rx.recv().expect("start");
            for _ in 0..100 {
                u.age().incr(&mine, 1).wait().expect("incr");
            }
            u.age
        })
    };
    drop(first); // this thread's handle goes; the worker's clone keeps the connection
    tx.send(()).expect("send");
    assert_eq!(worker.join().expect("worker"), 141);
    assert_eq!(stored(&mut raw, &key)["age"], json!(141));
}

// ---------------------------------------------------------------------------------------
// Inside an async runtime

/// The panic message of `f`, which must panic.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn assert_names_the_fix(message: &str) {
    assert!(
        message.contains(".wait()") && message.contains("async API") && message.contains(".await"),
        "{message}"
    );
}

#[test]
fn wait_inside_a_current_thread_runtime_panics_naming_the_async_api() {
    let db = db();
    let mut raw = raw();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async { user("r1").save(&db).wait() })
    }));
    assert_names_the_fix(&panic_message(caught.expect_err("a panic")));
    assert!(!exists(&mut raw, &db.key("User:r1")), "nothing was sent");

    // The runtime's async API works, with a Db connected in plain code (its connection is
    // driven by rapyer's runtime, whichever runtime polls the call).
    rt.block_on(async { user("r1").save(&db).await })
        .expect("async save");
    assert_eq!(stored(&mut raw, &db.key("User:r1"))["id"], json!("r1"));
}

#[test]
fn wait_inside_a_multi_thread_runtime_panics_in_tasks_and_in_block_on() {
    let db = db();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let task = {
        let db = db.clone();
        rt.spawn(async move { User::get(&db, "x").wait().map(|_| ()) })
    };
    let joined = rt.block_on(task).expect_err("the task panicked");
    assert_names_the_fix(&panic_message(joined.into_panic()));

    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async { User::exists(&db, "x").wait() })
    }));
    assert_names_the_fix(&panic_message(caught.expect_err("a panic")));

    // spawn_blocking is a runtime thread too: refused, with the same message.
    let blocking = {
        let db = db.clone();
        rt.spawn_blocking(move || User::exists(&db, "x").wait())
    };
    let joined = rt.block_on(blocking).expect_err("spawn_blocking panicked");
    assert_names_the_fix(&panic_message(joined.into_panic()));
    // The runtime and the Db still work.
    assert!(!rt.block_on(User::exists(&db, "x")).expect("async exists"));
    assert!(!User::exists(&db, "x").wait().expect("blocking exists"));

    // A Db connected on this (multi-thread) runtime works from plain code while it lives.
    let async_db = rt
        .block_on(Db::connect(rapyer_testkit::server().url()))
        .expect("connect")
        .with_namespace(db.namespace())
        .expect("namespace");
    user("r2").save(&async_db).wait().expect("save");
    assert!(User::exists(&db, "r2").wait().expect("exists"));
    // Once that runtime is gone, so is the task that drove its connection: a call fails with
    // `Error::Redis` (broken pipe, verified), and the connection reconnects on rapyer's
    // runtime, so the calls after it succeed.
    drop(rt);
    assert!(works_again(&async_db), "the connection came back");
}

/// Calls `exists` until it succeeds (each failure must be a typed `Error::Redis`); whether
/// it did within 50 calls.
fn works_again(db: &Db) -> bool {
    for _ in 0..50 {
        match User::exists(db, "r2").wait() {
            Ok(_) => return true,
            Err(Error::Redis { .. }) => std::thread::sleep(Duration::from_millis(20)),
            Err(other) => panic!("expected Error::Redis, got {other:?}"),
        }
    }
    false
}

#[test]
fn a_db_of_an_idle_current_thread_runtime_times_out_instead_of_hanging() {
    let db = db();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let options = rapyer::ConnectOptions::default().response_timeout(Duration::from_millis(200));
    let idle = rt
        .block_on(Db::connect_with(rapyer_testkit::server().url(), options))
        .expect("connect")
        .with_namespace(db.namespace())
        .expect("namespace");
    // Nothing runs that runtime, so nothing drives its connection: the call is sent to a
    // task that never runs, and fails after `response_timeout` (verified: never a hang).
    match User::exists(&idle, "r2").wait() {
        Err(Error::Redis { source, .. }) => assert!(source.is_timeout(), "{source}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // Inside its own block_on it is driven, and the async API works.
    assert!(
        !rt.block_on(User::exists(&idle, "r2"))
            .expect("async exists")
    );
    drop(rt);
    assert!(works_again(&idle), "reconnected on rapyer's runtime");
}

// ---------------------------------------------------------------------------------------
// Redis Cluster

#[test]
fn a_cluster_db_connects_and_runs_every_kind_of_call_from_plain_code() {
    let cluster = rapyer_testkit::cluster();
    let db = Db::connect_cluster_with(cluster.urls(), rapyer::ConnectOptions::default())
        .wait()
        .unwrap_or_else(|e| panic!("cannot connect to {:?}: {e}", cluster.urls()))
        .with_namespace(rapyer_testkit::test_namespace())
        .expect("namespace");
    assert!(db.is_cluster());
    let seeds: Vec<&str> = cluster.urls().iter().map(String::as_str).collect();
    assert!(
        Db::connect_cluster(seeds)
            .wait()
            .expect("connect_cluster")
            .is_cluster()
    );

    let mut a = wallet("a", 10);
    let b = wallet("b", 10);
    Wallet::insert_many(&db, &[a.clone(), b.clone()])
        .wait()
        .expect("insert");
    assert_eq!(a.balance().incr(&db, 5).wait().expect("incr"), 15);
    let (ra, rb) = (a.server_ref(), b.server_ref());
    ServerOps::scope(&db, |ops| {
        ops.swap(ra.balance(), rb.balance());
    })
    .wait()
    .expect("scope");
    assert_eq!(Wallet::get(&db, "b").wait().expect("get").balance, 15);

    // A search asks every primary and merges their answers.
    db.init::<Member>().wait().expect("init");
    let members: Vec<Member> = (0..40).map(|i| member(i, "c")).collect();
    for m in &members {
        m.save(&db).wait().expect("save");
    }
    let f = Member::fields();
    let found = Member::find(&db, f.name.eq("c"))
        .sort_by(&f.age, Order::Asc)
        .limit(10, 3)
        .all()
        .wait()
        .expect("find");
    let ages: Vec<i64> = found.iter().map(|m| m.age).collect();
    assert_eq!(ages, vec![10, 11, 12]);
    assert_eq!(
        Member::find(&db, f.name.eq("c"))
            .count()
            .wait()
            .expect("count"),
        40
    );
    let guard = Wallet::lock(&db, "a", LockOptions::default())
        .wait()
        .expect("lock");
    guard.release().wait().expect("release");
}

// ---------------------------------------------------------------------------------------
// TLS (with `--features tls`): `rediss://` through the testkit's TLS proxy

#[cfg(feature = "tls")]
mod tls {
    use super::*;

    #[test]
    fn a_rediss_url_connects_and_runs_calls_from_plain_code() {
        let proxy =
            rapyer_testkit::TlsProxy::start(rapyer_testkit::server().url()).expect("TLS proxy");
        let options = rapyer::ConnectOptions::default().tls_root_cert(proxy.ca_pem());
        let db = Db::connect_with(proxy.url(), options)
            .wait()
            .expect("connect over TLS")
            .with_namespace(rapyer_testkit::test_namespace())
            .expect("namespace");
        let mut u = user("tls");
        u.save(&db).wait().expect("save");
        assert_eq!(u.age().incr(&db, 1).wait().expect("incr"), 42);
        assert_eq!(stored(&mut raw(), &db.key("User:tls"))["age"], json!(42));
        // A guard dropped in plain code releases over a blocking TLS connection of its own.
        let guard = User::lock(&db, "tls", LockOptions::default())
            .wait()
            .expect("lock");
        let lock_key = guard.lock_key().to_string();
        drop(guard);
        assert!(!exists(&mut raw(), &lock_key));
    }
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Feed")]
struct Feed {
    #[rapyer(key)]
    id: String,
    recent: rapyer::CircularBuffer<String, 3>,
}

#[test]
fn a_circular_buffer_handle_runs_from_plain_code() {
    let db = db();
    let mut raw = raw();
    let mut feed = Feed {
        id: "f".into(),
        recent: rapyer::CircularBuffer::new(),
    };
    feed.save(&db).wait().expect("save");
    let five: Vec<String> = hostile().into_iter().take(5).collect();
    for text in &five {
        feed.recent().push(&db, text.clone()).wait().expect("push");
    }
    assert_eq!(feed.recent().len(&db).wait().expect("len"), 3);
    let newest_first: Vec<String> = five[2..].iter().rev().cloned().collect();
    assert_eq!(
        feed.recent().latest(&db, 3).wait().expect("latest"),
        newest_first
    );
    assert_eq!(
        stored(&mut raw, &db.key("Feed:f"))["recent"],
        serde_json::to_value(&five[2..]).expect("json")
    );
    assert_eq!(
        feed.recent()
            .push_many(&db, ["x".to_string(), "y".to_string()])
            .wait()
            .expect("push_many"),
        3
    );
    feed.recent().clear(&db).wait().expect("clear");
    assert_eq!(feed.recent().len(&db).wait().expect("len"), 0);
    assert_eq!(stored(&mut raw, &db.key("Feed:f"))["recent"], json!([]));
}
