//! The fast path of flat blocks (`lua/flat_fast.lua`), against a server of each test's own,
//! whose `INFO commandstats` tells what ran: a block whose operations each act on a place of
//! their own is done by the one fast script in the usual case (its values set in one
//! `JSON.MSET`, where the whole flat script writes each with its own `JSON.SET`); anything
//! unusual (another JSON type, a missing document, an integer of 16 digits or more, a result
//! past the field's range) is declined with nothing written and the whole script then runs,
//! exact and with its typed failure; long pushes and many entries go in runs; racing blocks
//! each land once; expiries are re-armed; an `atomic` block's local model is the stored one.

mod common;

use std::collections::{BTreeMap, HashMap};

use rapyer::prelude::*;
use rapyer::{ConnectOptions, Error};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Card")]
struct Card {
    #[rapyer(key)]
    id: String,
    n: i64,
    small: i8,
    name: String,
    on: bool,
    tags: Vec<String>,
    prefs: HashMap<String, String>,
}

/// Field names a JSONPath union must quote, at the root and under a nested model.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Odd")]
struct Odd {
    #[rapyer(key)]
    id: String,
    #[serde(rename = "a,b")]
    ab: String,
    #[serde(rename = "c]")]
    c: bool,
    #[serde(rename = "it's 🎉")]
    its: HashMap<String, i64>,
    inner: OddInner,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct OddInner {
    #[serde(rename = "x y")]
    xy: String,
    #[serde(rename = "$..*")]
    every: bool,
}

/// The same fields, with an expiry re-armed by every write.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Pass", ttl = 3600)]
struct Pass {
    #[rapyer(key)]
    id: String,
    n: i64,
    tags: Vec<String>,
}

fn card(id: &str) -> Card {
    Card {
        id: id.to_string(),
        n: 10,
        small: 100,
        name: "ann".to_string(),
        on: false,
        tags: vec!["a".to_string()],
        prefs: HashMap::from([("theme".to_string(), "dark".to_string())]),
    }
}

const HOSTILE: &str = "\"'] ) end -- {{}} $..* @x:{y} \n\t\u{0}\u{7f} 🎉 redis.call('FLUSHALL')";

/// A dict key as hostile as a JSONPath step can address: a key with both kinds of quote, a
/// backslash or a control character takes the interpreter (see the README's dict paragraph).
const KEY: &str = "\"] ) end -- {{}} $..* @x:{y} 🎉 redis.call(\"FLUSHALL\")";

struct Setup {
    _server: rapyer_testkit::Server,
    db: Db,
    raw: redis::aio::MultiplexedConnection,
}

async fn setup() -> Setup {
    let (server, db, raw) = common::own_db(ConnectOptions::default(), "flat/").await;
    Setup {
        _server: server,
        db,
        raw,
    }
}

impl Setup {
    async fn stored(&mut self, key: &str) -> serde_json::Value {
        common::stored(&mut self.raw, &self.db.key(key)).await
    }

    async fn calls(&mut self) -> HashMap<String, u64> {
        common::command_calls(&mut self.raw).await
    }

    async fn ran_since(&mut self, before: &HashMap<String, u64>) -> BTreeMap<String, u64> {
        common::ran_since(&mut self.raw, before).await
    }

    /// `JSON.SET key path value` behind the library's back, as another writer would.
    async fn json_set(&mut self, key: &str, path: &str, value: &str) {
        let _: () = redis::cmd("JSON.SET")
            .arg(key)
            .arg(path)
            .arg(value)
            .query_async(&mut self.raw)
            .await
            .expect("JSON.SET");
    }
}

/// How many script calls ran in `ran` (`EVALSHA` and `EVAL`).
fn scripts(ran: &BTreeMap<String, u64>) -> u64 {
    ran.get("evalsha").copied().unwrap_or(0) + ran.get("eval").copied().unwrap_or(0)
}

/// Runs `build`'s block on a missing card (`NotFound`): the fast script declines and the
/// whole flat script of the block's shape runs, so the server caches it and later counts of
/// script calls hold no `NOSCRIPT` retry.
async fn load_whole<F>(db: &Db, build: F)
where
    F: FnOnce(&rapyer::ops::Ops, &CardRef<rapyer::ops::Free>),
{
    let r = Card::server_ref_for("missing");
    let got = ServerOps::scope(db, |ops| build(ops, &r)).await;
    assert!(
        matches!(&got, Err(Error::Block { source, .. }) if matches!(**source, Error::NotFound { .. })),
        "{got:?}"
    );
}

/// A ServerOps block of the five usual operations on one card.
async fn five(
    db: &Db,
    id: &str,
    name: &str,
) -> rapyer::Result<(Option<i64>, Option<usize>, Option<bool>)> {
    let r = Card::server_ref_for(id);
    ServerOps::scope(db, |ops| {
        let n = ops.incr(r.n(), 5);
        let len = ops.append(r.tags(), name.to_string());
        ops.insert(r.prefs(), KEY, name.to_string());
        ops.set(r.name(), name.to_string());
        let on = ops.toggle(r.on());
        (n, len, on)
    })
    .await
}

#[tokio::test]
async fn a_usual_flat_block_is_one_call_of_the_fast_script() {
    let mut s = setup().await;
    card("a").save(&s.db).await.expect("save");
    let before = s.calls().await;
    let got = five(&s.db, "a", HOSTILE).await.expect("block");
    assert_eq!(got, (Some(15), Some(2), Some(true)));
    let ran = s.ran_since(&before).await;
    // One script call: each check one command (JSON.GET of the integer, JSON.ARRLEN of the
    // list, JSON.TYPE of the dict and of the string), the toggle tried first as the last
    // operation, the values set in one JSON.MSET, the push one JSON.ARRAPPEND. No JSON.SET:
    // the whole flat script did not run.
    let expected = common::commands(&[
        ("evalsha", 1),
        ("json.get", 1),
        ("json.arrlen", 1),
        ("json.type", 2),
        ("json.toggle", 1),
        ("json.mset", 1),
        ("json.arrappend", 1),
    ]);
    assert_eq!(ran, expected);
    let stored = s.stored("Card:a").await;
    assert_eq!(
        stored,
        json!({
            "id": "a", "n": 15, "small": 100, "name": HOSTILE, "on": true,
            "tags": ["a", HOSTILE], "prefs": {"theme": "dark", KEY: HOSTILE},
        })
    );
    // A string append, a set of several JSON types and a push of nothing, each alone and
    // together: the fast path, the same values as written.
    let r = Card::server_ref_for("a");
    let before = s.calls().await;
    let (name, pushed) = ServerOps::scope(&s.db, |ops| {
        ops.set(r.small(), -128);
        (
            ops.append(r.name(), "🎉\"]"),
            ops.extend(r.tags(), Vec::<String>::new()),
        )
    })
    .await
    .expect("block");
    assert_eq!(name, Some(format!("{HOSTILE}🎉\"]")));
    assert_eq!(pushed, Some(2));
    let ran = s.ran_since(&before).await;
    assert_eq!(scripts(&ran), 1, "{ran:?}");
    assert!(!ran.contains_key("json.set"), "{ran:?}");
    let stored = s.stored("Card:a").await;
    assert_eq!(stored["small"], -128);
    assert_eq!(stored["name"], format!("{HOSTILE}🎉\"]"));
    assert_eq!(stored["tags"], json!(["a", HOSTILE]));
}

#[tokio::test]
async fn anything_unusual_is_declined_and_the_whole_script_names_it_with_nothing_written() {
    let mut s = setup().await;
    card("a").save(&s.db).await.expect("save");
    let key = s.db.key(&Card::key_of("a"));
    load_whole(&s.db, |ops, r| {
        ops.incr(r.n(), 1);
        ops.append(r.tags(), String::new());
        ops.insert(r.prefs(), "k", String::new());
        ops.set(r.name(), String::new());
        ops.toggle(r.on());
    })
    .await;
    for (path, value) in [("$.name", "7"), ("$.prefs", "[]")] {
        card("a").save(&s.db).await.expect("save");
        s.json_set(&key, path, value).await;
        let dump = common::dump(&mut s.raw, &key).await;
        let before = s.calls().await;
        let err = five(&s.db, "a", "x").await.expect_err("fails");
        let Error::Block { op, source } = err else {
            panic!("{err:?}");
        };
        // The set of the name is the 4th operation; the dict entry the 3rd.
        let (want_op, want_path) = if path == "$.name" {
            (3, "$.name")
        } else {
            (2, "$.prefs")
        };
        assert_eq!(op, want_op, "{path}");
        assert!(
            matches!(*source, Error::TypeMismatch { ref path, .. } if path == want_path),
            "{source:?}"
        );
        assert_eq!(common::dump(&mut s.raw, &key).await, dump, "{path}");
        // The fast script declined, then the whole flat script ran: nothing written by
        // either.
        let ran = s.ran_since(&before).await;
        assert_eq!(scripts(&ran), 2, "{path}: {ran:?}");
        for write in ["json.set", "json.mset", "json.arrappend", "json.toggle"] {
            assert!(!ran.contains_key(write), "{path}: {ran:?}");
        }
    }
    // A push of more than one run (4,000 elements) as the last operation, tried first: where
    // the list is a string, its first run does nothing and no later run is sent.
    card("a").save(&s.db).await.expect("save");
    s.json_set(&key, "$.tags", "\"text\"").await;
    let dump = common::dump(&mut s.raw, &key).await;
    let r = Card::server_ref_for("a");
    let long: Vec<String> = (0..9_001).map(|i| i.to_string()).collect();
    let got = ServerOps::scope(&s.db, |ops| {
        ops.toggle(r.on());
        ops.extend(r.tags(), long)
    })
    .await;
    assert!(
        matches!(&got, Err(Error::Block { op: 1, source }) if matches!(&**source, Error::TypeMismatch { found, .. } if found == "string")),
        "{got:?}"
    );
    assert_eq!(common::dump(&mut s.raw, &key).await, dump);
    // A missing document: NotFound, nothing created.
    let err = five(&s.db, "missing", "x").await.expect_err("fails");
    assert!(
        matches!(&err, Error::Block { op: 0, source } if matches!(**source, Error::NotFound { .. })),
        "{err:?}"
    );
    assert_eq!(
        common::dump(&mut s.raw, &s.db.key(&Card::key_of("missing"))).await,
        None
    );
}

#[tokio::test]
async fn integers_beyond_the_fast_range_are_exact_through_the_whole_script() {
    let mut s = setup().await;
    let r = Card::server_ref_for("a");
    load_whole(&s.db, |ops, r| {
        ops.incr(r.n(), 1);
        ops.toggle(r.on());
    })
    .await;
    load_whole(&s.db, |ops, r| {
        ops.incr(r.small(), 1);
    })
    .await;
    // (start, by, what the block must give, whether the fast script does it alone)
    let cases: [(i64, i64, Option<i64>, bool); 7] = [
        (999_999_999_999_999, 1, Some(1_000_000_000_000_000), true),
        (-999_999_999_999_999, -1, Some(-1_000_000_000_000_000), true),
        (1_000_000_000_000_000, 1, Some(1_000_000_000_000_001), false),
        (5, 1_000_000_000_000_000, Some(1_000_000_000_000_005), false),
        (i64::MAX - 1, 1, Some(i64::MAX), false),
        (i64::MAX, 1, None, false),
        (i64::MIN, -1, None, false),
    ];
    for (start, by, want, fast) in cases {
        let mut c = card("a");
        c.n = start;
        c.save(&s.db).await.expect("save");
        let key = s.db.key(&Card::key_of("a"));
        let dump = common::dump(&mut s.raw, &key).await;
        let before = s.calls().await;
        let got = ServerOps::scope(&s.db, |ops| {
            let n = ops.incr(r.n(), by);
            ops.toggle(r.on());
            n
        })
        .await;
        let ran = s.ran_since(&before).await;
        assert_eq!(
            scripts(&ran),
            if fast { 1 } else { 2 },
            "{start} + {by}: {ran:?}"
        );
        match want {
            Some(v) => {
                assert_eq!(got.expect("block"), Some(v), "{start} + {by}");
                let stored = s.stored("Card:a").await;
                assert_eq!(stored["n"], v, "{start} + {by}");
                assert_eq!(stored["on"], true);
            }
            None => {
                let err = got.expect_err("overflow");
                assert!(
                    matches!(&err, Error::Block { op: 0, source } if matches!(**source, Error::Overflow { .. })),
                    "{err:?}"
                );
                assert_eq!(common::dump(&mut s.raw, &key).await, dump);
            }
        }
    }
    // An i8 checked against its bounds on the fast path: to the bound, then past it.
    let mut c = card("a");
    c.small = 100;
    c.save(&s.db).await.expect("save");
    for (by, want) in [
        (27, Some(127)),
        (1, None),
        (-128, Some(-1)),
        (-127, Some(-128)),
        (-1, None),
    ] {
        let before = s.calls().await;
        let got = ServerOps::scope(&s.db, |ops| ops.incr(r.small(), by)).await;
        let ran = s.ran_since(&before).await;
        match want {
            Some(v) => {
                assert_eq!(got.expect("in range"), Some(v));
                assert_eq!(scripts(&ran), 1, "{by}: {ran:?}");
            }
            None => {
                assert!(
                    matches!(&got, Err(Error::Block { source, .. }) if matches!(**source, Error::Overflow { kind: "i8", .. })),
                    "{got:?}"
                );
                assert_eq!(scripts(&ran), 2, "{by}: {ran:?}");
            }
        }
    }
    assert_eq!(s.stored("Card:a").await["small"], -128);
}

#[tokio::test]
async fn long_pushes_and_many_entries_are_written_in_runs() {
    let mut s = setup().await;
    card("a").save(&s.db).await.expect("save");
    let r = Card::server_ref_for("a");
    let long: Vec<String> = (0..9_001).map(|i| format!("{i}{HOSTILE}")).collect();
    // The push last (tried first, in runs), then not last (checked, then written in runs),
    // and 1,500 dict entries (one JSON.MSET of 1,332 triples, then the rest).
    let first = ServerOps::scope(&s.db, |ops| {
        ops.incr(r.n(), 1);
        ops.extend(r.tags(), long.clone())
    })
    .await
    .expect("block");
    assert_eq!(first, Some(9_002));
    let before = s.calls().await;
    let second = ServerOps::scope(&s.db, |ops| {
        let len = ops.extend(r.tags(), long.clone());
        for i in 0..1_500 {
            ops.insert(r.prefs(), format!("k{i}\"]"), format!("v{i}"));
        }
        ops.toggle(r.on());
        len
    })
    .await
    .expect("block");
    assert_eq!(second, Some(18_003));
    let ran = s.ran_since(&before).await;
    assert_eq!(scripts(&ran), 1, "{ran:?}");
    assert_eq!(ran.get("json.mset"), Some(&2), "{ran:?}");
    // The 1,500 entries' dict is checked once (one JSON.TYPE).
    assert_eq!(ran.get("json.type"), Some(&1), "{ran:?}");
    assert_eq!(ran.get("json.arrappend"), Some(&3), "{ran:?}");
    let stored = s.stored("Card:a").await;
    let mut tags = vec![json!("a")];
    tags.extend(long.iter().chain(&long).map(|t| json!(t)));
    assert_eq!(stored["tags"], serde_json::Value::Array(tags));
    let prefs = stored["prefs"].as_object().expect("dict");
    assert_eq!(prefs.len(), 1_501);
    assert_eq!(prefs["k1499\"]"], "v1499");
    assert_eq!(prefs["k0\"]"], "v0");
    assert_eq!(stored["n"], 11);
    assert_eq!(stored["on"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_fast_blocks_each_land_once_and_expiries_are_rearmed() {
    let mut s = setup().await;
    Pass {
        id: "p".to_string(),
        n: 0,
        tags: Vec::new(),
    }
    .save(&s.db)
    .await
    .expect("save");
    let key = s.db.key(&Pass::key_of("p"));
    let _: () = redis::cmd("PEXPIRE")
        .arg(&key)
        .arg(5_000)
        .query_async(&mut s.raw)
        .await
        .expect("PEXPIRE");
    let mut tasks = Vec::new();
    for t in 0..8 {
        let db = s.db.clone();
        tasks.push(tokio::spawn(async move {
            let r = Pass::server_ref_for("p");
            for i in 0..50 {
                ServerOps::scope(&db, |ops| {
                    ops.incr(r.n(), 1);
                    ops.append(r.tags(), format!("{t}:{i}"));
                })
                .await
                .expect("block");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let stored = s.stored("Pass:p").await;
    assert_eq!(stored["n"], 400);
    assert_eq!(stored["tags"].as_array().map(Vec::len), Some(400));
    assert!(common::pttl(&mut s.raw, &key).await > 3_000_000);
}

#[tokio::test]
async fn an_atomic_block_on_the_fast_path_leaves_the_local_model_equal_to_the_stored_one() {
    let mut s = setup().await;
    let mut c = card("a");
    c.save(&s.db).await.expect("save");
    // Another writer changes the list and the dict behind the local copy's back.
    let key = s.db.key(&Card::key_of("a"));
    for (path, value) in [("$.tags", "[\"other\",\"x\"]"), ("$.prefs.z", "\"z\"")] {
        s.json_set(&key, path, value).await;
    }
    let before = s.calls().await;
    let (n, len) = c
        .atomic(&s.db, |m| {
            (
                m.n().incr(1),
                m.tags().append(HOSTILE),
                m.prefs().insert(KEY, HOSTILE),
                m.name().append("!"),
                m.on().toggle(),
            )
        })
        .await
        .map(|(n, len, _, _, _)| (n, len))
        .expect("block");
    assert_eq!((n, len), (Some(11), Some(3)));
    let ran = s.ran_since(&before).await;
    // The list and the dict are read once each, before they are written (the checks of
    // their JSON types): the script sends the list as read with the pushed elements after
    // it, and the dict as read, into which the client puts the entry. The integer and the
    // string are read for their checks; the toggle, last, is tried first.
    let expected = common::commands(&[
        ("evalsha", 1),
        ("json.get", 4),
        ("json.toggle", 1),
        ("json.mset", 1),
        ("json.arrappend", 1),
        ("json.strappend", 1),
    ]);
    assert_eq!(ran, expected);
    let stored: Card = serde_json::from_value(s.stored("Card:a").await).expect("a card");
    assert_eq!(c, stored);
    assert_eq!(c.tags, vec!["other", "x", HOSTILE]);
    assert_eq!(c.name, "ann!");
    assert_eq!(c.prefs.get("z").map(String::as_str), Some("z"));

    // A block ending in a dict entry that replaces one the local copy holds another value
    // of, or in a push (each tried first in a ServerOps block), after another writer
    // changed the dict and emptied the list; then a push of nothing.
    s.json_set(&key, "$.prefs", "{\"theme\":\"light\",\"q\":\"r\"}")
        .await;
    s.json_set(&key, "$.tags", "[]").await;
    let before = s.calls().await;
    c.atomic(&s.db, |m| (m.on().toggle(), m.prefs().insert("theme", KEY)))
        .await
        .expect("block");
    assert_eq!(scripts(&s.ran_since(&before).await), 1);
    let len = c
        .atomic(&s.db, |m| {
            m.tags().extend(vec![
                HOSTILE.to_string(),
                "🎉".to_string(),
                "[]".to_string(),
            ])
        })
        .await
        .expect("block");
    assert_eq!(len, Some(3));
    let stored: Card = serde_json::from_value(s.stored("Card:a").await).expect("a card");
    assert_eq!(c, stored);
    assert_eq!(
        c.prefs,
        HashMap::from([
            ("theme".to_string(), KEY.to_string()),
            ("q".to_string(), "r".to_string())
        ])
    );
    assert_eq!(c.tags, vec![HOSTILE, "🎉", "[]"]);
    s.json_set(&key, "$.tags", "[\"from elsewhere\"]").await;
    let len = c
        .atomic(&s.db, |m| {
            (m.tags().extend(Vec::<String>::new()), m.n().incr(1))
        })
        .await
        .expect("block")
        .0;
    assert_eq!(len, Some(1));
    assert_eq!(c.tags, vec!["from elsewhere"]);
    let stored: Card = serde_json::from_value(s.stored("Card:a").await).expect("a card");
    assert_eq!(c, stored);
}

#[tokio::test]
async fn an_atomic_block_of_many_entries_reads_their_dict_once_on_either_path() {
    let mut s = setup().await;
    let key = s.db.key(&Card::key_of("a"));
    // On the fast path, then through the whole script (an integer of 16 digits declines the
    // fast one), 1,500 entries into one dict: it is read once, not once per entry (each
    // read sends the whole dict).
    fn block(m: CardRef<rapyer::ops::Bound<'_>>) {
        m.n().incr(1);
        for i in 0..1_500 {
            m.prefs().insert(format!("k{i}{KEY}"), format!("v{i}"));
        }
        m.tags().append("t");
    }
    for (n, whole) in [(10_i64, false), (1_000_000_000_000_000, true)] {
        let mut c = card("a");
        c.n = n;
        // Once first, so the server has the whole script cached (no NOSCRIPT retry below).
        c.save(&s.db).await.expect("save");
        c.clone().atomic(&s.db, block).await.expect("block");
        c.save(&s.db).await.expect("save");
        s.json_set(&key, "$.prefs.elsewhere", "\"e\"").await;
        let before = s.calls().await;
        c.atomic(&s.db, block).await.expect("block");
        let ran = s.ran_since(&before).await;
        // The fast script reads the integer, the dict and the list; when it declines, the
        // whole script reads the integer, then the dict and the list once each afterwards.
        let (calls, reads) = if whole { (2, 4) } else { (1, 3) };
        assert_eq!(scripts(&ran), calls, "{ran:?}");
        assert_eq!(ran.get("json.get"), Some(&reads), "{ran:?}");
        let stored: Card = serde_json::from_value(s.stored("Card:a").await).expect("a card");
        assert_eq!(c, stored);
        assert_eq!(c.prefs.len(), 1_502);
        assert_eq!(c.prefs[&format!("k1499{KEY}")], "v1499");
        assert_eq!(c.tags, vec!["a", "t"]);
        assert_eq!(c.n, n + 1);
    }
}

#[tokio::test]
async fn fields_named_like_jsonpath_and_a_dict_checked_once_and_any_surprise_declines() {
    let mut s = setup().await;
    let odd = || Odd {
        id: "o".to_string(),
        ab: "ab".to_string(),
        c: false,
        its: HashMap::from([("k".to_string(), 1)]),
        inner: OddInner {
            xy: "xy".to_string(),
            every: false,
        },
    };
    odd().save(&s.db).await.expect("save");
    let key = s.db.key(&Odd::key_of("o"));
    let r = Odd::server_ref_for("o");
    let flat = |ops: &rapyer::ops::Ops| {
        ops.set(r.ab(), HOSTILE.to_string());
        ops.toggle(r.c());
        ops.insert(r.its(), KEY, 7);
        ops.insert(r.its(), "k", 8);
        ops.set(r.inner().xy(), KEY.to_string());
        ops.toggle(r.inner().every());
    };
    let before = s.calls().await;
    ServerOps::scope(&s.db, |ops| flat(ops))
        .await
        .expect("block");
    let ran = s.ran_since(&before).await;
    // One JSON.TYPE each for `a,b`, `c]`, the dict `it's 🎉` (once for its two entries) and
    // `x y`; `$..*`, the last operation, toggles first.
    assert_eq!(scripts(&ran), 1, "{ran:?}");
    assert_eq!(ran.get("json.type"), Some(&4), "{ran:?}");
    assert_eq!(
        s.stored("Odd:o").await,
        json!({
            "id": "o", "a,b": HOSTILE, "c]": true, "it's 🎉": {"k": 8, KEY: 7},
            "inner": {"x y": KEY, "$..*": true},
        })
    );
    // The same as an `atomic` block after another writer changed the dict: the entries go
    // into the dict as read, under the field's hostile name, with their hostile keys.
    s.json_set(&key, "$[\"it's 🎉\"].z", "9").await;
    let mut local = odd();
    local
        .atomic(&s.db, |m| {
            m.its().insert(KEY, 7);
            m.its().insert("k", 8);
            m.inner().every().toggle();
        })
        .await
        .expect("atomic block");
    // The fields the block changed are the stored ones (the others keep their local value,
    // which the ServerOps block above made stale).
    let stored: Odd = serde_json::from_value(s.stored("Odd:o").await).expect("an odd");
    assert_eq!(local.its, stored.its);
    assert_eq!(local.inner.every, stored.inner.every);
    assert!(!stored.inner.every);
    assert_eq!(
        local.its,
        HashMap::from([
            (KEY.to_string(), 7),
            ("k".to_string(), 8),
            ("z".to_string(), 9)
        ])
    );
    // A member of another JSON type, or missing: the fast script declines, the whole one
    // names the first operation that fails, nothing written. (A first decline on a missing
    // model caches the whole script, so the counts below hold no NOSCRIPT retry.)
    let missing = Odd::server_ref_for("missing");
    let got = ServerOps::scope(&s.db, |ops| {
        ops.set(missing.ab(), String::new());
        ops.toggle(missing.c());
        ops.insert(missing.its(), "k", 1);
        ops.set(missing.inner().xy(), String::new());
        ops.toggle(missing.inner().every());
    })
    .await;
    assert!(
        matches!(&got, Err(Error::Block { source, .. }) if matches!(**source, Error::NotFound { .. })),
        "{got:?}"
    );
    for (path, value, op) in [
        ("$[\"c]\"]", Some("1"), 1),
        ("$[\"it's 🎉\"]", Some("[]"), 2),
        ("$[\"a,b\"]", None, 0),
    ] {
        odd().save(&s.db).await.expect("save");
        let cmd = match value {
            Some(v) => redis::cmd("JSON.SET").arg(&key).arg(path).arg(v).to_owned(),
            None => redis::cmd("JSON.DEL").arg(&key).arg(path).to_owned(),
        };
        let _: redis::Value = cmd.query_async(&mut s.raw).await.expect("change");
        let dump = common::dump(&mut s.raw, &key).await;
        let before = s.calls().await;
        let err = ServerOps::scope(&s.db, |ops| flat(ops))
            .await
            .expect_err("fails");
        assert!(
            matches!(&err, Error::Block { op: o, source } if *o == op && matches!(**source, Error::TypeMismatch { .. })),
            "{path}: {err:?}"
        );
        assert_eq!(common::dump(&mut s.raw, &key).await, dump, "{path}");
        assert_eq!(scripts(&s.ran_since(&before).await), 2, "{path}");
    }
}
