//! Field operations sent as the bare RedisJSON command (`src/field/bare.rs`), against a
//! server of each test's own, whose `INFO commandstats` tells what ran: a list `append` or
//! `extend`, a `toggle` and a string `append` of a model without an expiry, and reads and
//! lengths of a model that re-arms none on reads, are the bare commands alone; a model with
//! an expiry keeps the script, which re-arms it; a command that did nothing (another JSON
//! type, a missing document or field, a key of another Redis type, memory at its limit) or a
//! read of another JSON type hands over to the script, whose typed error the caller gets with
//! the document untouched; a call that got no answer is never sent again; racing calls each
//! land exactly once; a string append leaves the string the server holds in the local
//! field, however stale the local copy was.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use rapyer::prelude::*;
use rapyer::{ConnectOptions, Error};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Note")]
struct Note {
    #[rapyer(key)]
    id: String,
    text: String,
    tags: Vec<String>,
    done: bool,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Ticket", ttl = 3600)]
struct Ticket {
    #[rapyer(key)]
    id: String,
    text: String,
    tags: Vec<String>,
    done: bool,
}

/// Every kind of field a read can want.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Shelf")]
struct Shelf {
    #[rapyer(key)]
    id: String,
    n: i64,
    ratio: f64,
    text: String,
    done: bool,
    tags: Vec<String>,
    prefs: HashMap<String, String>,
    maybe: Option<i64>,
}

/// The same, re-arming its expiry on reads too.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Locker", ttl = 3600, refresh_on_read)]
struct Locker {
    #[rapyer(key)]
    id: String,
    n: i64,
    tags: Vec<String>,
}

fn note(id: &str) -> Note {
    Note {
        id: id.to_string(),
        text: "a".to_string(),
        tags: vec!["a".to_string()],
        done: false,
    }
}

const HOSTILE: &str = "\"'] ) end -- {{}} $..* @x:{y} \n\t\u{0}\u{7f} 🎉 redis.call('FLUSHALL')";

/// A server of the test's own, a `Db` on it (`options`), and a plain connection to check.
struct Setup {
    _server: rapyer_testkit::Server,
    db: Db,
    raw: redis::aio::MultiplexedConnection,
}

async fn setup(options: ConnectOptions) -> Setup {
    let (server, db, raw) = common::own_db(options, "bare/").await;
    Setup {
        _server: server,
        db,
        raw,
    }
}

impl Setup {
    /// How many times the server ran each command so far: [`common::command_calls`].
    async fn calls(&mut self) -> HashMap<String, u64> {
        common::command_calls(&mut self.raw).await
    }

    /// The commands run since `before`: [`common::ran_since`].
    async fn ran_since(
        &mut self,
        before: &HashMap<String, u64>,
    ) -> std::collections::BTreeMap<String, u64> {
        common::ran_since(&mut self.raw, before).await
    }

    /// Asserts that operation `op` re-armed the hour-long expiry of `key` (shortened to 5 s
    /// before it).
    async fn assert_rearmed(&mut self, key: &str, op: usize) {
        let ttl = self.command(&["PTTL", key]).await;
        assert!(
            matches!(ttl, redis::Value::Int(ms) if ms > 3_000_000),
            "operation {op} re-arms the expiry of {key}: {ttl:?}"
        );
    }

    /// `JSON.GET bare/<key> $` as text.
    async fn stored(&mut self, key: &str) -> Option<String> {
        common::json_get(&mut self.raw, &format!("bare/{key}")).await
    }

    /// The document at `bare/<key>`.
    async fn stored_json(&mut self, key: &str) -> serde_json::Value {
        common::stored(&mut self.raw, &format!("bare/{key}")).await
    }

    async fn command(&mut self, args: &[&str]) -> redis::Value {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut self.raw).await.expect(args[0])
    }
}

/// Asserts the refusal of an operation on `{prefix}:{id}` where `id` is `missing` (no
/// document: `NotFound`) or `plain` (a plain string key: `TypeMismatch` at the root).
fn assert_refused<T: std::fmt::Debug>(prefix: &str, id: &str, outcome: Result<T, Error>) {
    let expected_key = format!("bare/{prefix}:{id}");
    match (id, outcome) {
        ("missing", Err(Error::NotFound { key })) => assert_eq!(key, expected_key),
        (
            "plain",
            Err(Error::TypeMismatch {
                key, path, found, ..
            }),
        ) => {
            assert_eq!(key, expected_key);
            assert_eq!((path.as_str(), found.as_str()), ("$", "string"));
        }
        (_, other) => panic!("{prefix}:{id}: a typed refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn appends_and_toggles_of_a_model_without_expiry_are_the_bare_commands() {
    let mut s = setup(ConnectOptions::default()).await;
    let mut n = note("n");
    n.save(&s.db).await.expect("save");
    let before = s.calls().await;

    assert_eq!(n.tags().append(&s.db, HOSTILE).await.expect("append"), 2);
    assert_eq!(
        n.tags()
            .extend(
                &s.db,
                ["b".to_string(), "🎉".to_string(), "[1]".to_string()]
            )
            .await
            .expect("extend"),
        5
    );
    assert!(n.done().toggle(&s.db).await.expect("toggle"));
    assert!(!n.done().toggle(&s.db).await.expect("toggle"));
    assert!(n.done().toggle(&s.db).await.expect("toggle"));
    let len = n.text().append(&s.db, HOSTILE).await.expect("append");
    assert_eq!(len, 1 + HOSTILE.len());

    assert_eq!(
        s.ran_since(&before).await,
        common::commands(&[
            ("json.arrappend", 2),
            ("json.toggle", 3),
            ("multi", 1),
            ("json.strappend", 1),
            ("json.get", 1),
            ("exec", 1),
        ]),
        "no script ran"
    );
    let stored = s.stored_json("Note:n").await;
    assert_eq!(
        stored,
        json!({"id": "n", "text": format!("a{HOSTILE}"), "tags": ["a", HOSTILE, "b", "🎉", "[1]"], "done": true})
    );
    // The local model holds what the server does.
    assert_eq!(serde_json::to_value(&n).expect("json"), stored);
}

#[tokio::test]
async fn a_model_with_an_expiry_keeps_the_script_which_rearms_it() {
    let mut s = setup(ConnectOptions::default()).await;
    let mut t = Ticket {
        id: "t".to_string(),
        text: "a".to_string(),
        tags: vec![],
        done: false,
    };
    t.save(&s.db).await.expect("save");
    let before = s.calls().await;
    for op in 0..3 {
        // Shortened, so that the write is seen to re-arm it.
        s.command(&["PEXPIRE", "bare/Ticket:t", "5000"]).await;
        match op {
            0 => {
                t.tags().append(&s.db, "x").await.expect("append");
            }
            1 => {
                t.done().toggle(&s.db).await.expect("toggle");
            }
            _ => {
                t.text().append(&s.db, "x").await.expect("append");
            }
        }
        s.assert_rearmed("bare/Ticket:t", op).await;
    }
    // `INFO commandstats` counts the commands a script runs too: each once, the script's.
    let ran = s.ran_since(&before).await;
    assert_eq!(ran.get("evalsha"), Some(&3), "{ran:?}");
    assert_eq!(ran.get("multi"), None, "{ran:?}");
    for command in ["json.arrappend", "json.toggle", "json.strappend"] {
        assert_eq!(ran.get(command), Some(&1), "{command}: {ran:?}");
    }
    assert_eq!(
        s.stored_json("Ticket:t").await,
        json!({"id": "t", "text": "ax", "tags": ["x"], "done": true})
    );
    assert_eq!(
        serde_json::to_value(&t).expect("json"),
        s.stored_json("Ticket:t").await
    );
}

#[tokio::test]
async fn a_string_append_leaves_the_servers_string_in_the_local_field_however_stale_it_was() {
    let mut s = setup(ConnectOptions::default()).await;
    // Another writer changed the string since this copy was read: appended to it, or set one
    // of the same length (which no length check could tell), a hostile one. The append's
    // reply is the string the server holds after it, which the local field becomes.
    let other = HOSTILE.replace('a', "b");
    assert_eq!(other.len(), HOSTILE.len());
    assert_ne!(other, HOSTILE);
    for (prefix, ttl) in [("Note", false), ("Ticket", true)] {
        for (what, stored) in [
            ("appended", format!("a{HOSTILE}")),
            ("same length", other.clone()),
        ] {
            let key = format!("bare/{prefix}:stale");
            let doc = json!({"id": "stale", "text": HOSTILE, "tags": [], "done": false});
            s.command(&["JSON.SET", &key, "$", &doc.to_string()]).await;
            let mut note = note("stale");
            note.text = HOSTILE.to_string();
            let mut ticket = Ticket {
                id: "stale".to_string(),
                text: HOSTILE.to_string(),
                tags: vec![],
                done: false,
            };
            s.command(&["JSON.SET", &key, "$.text", &json!(stored).to_string()])
                .await;
            let (len, local) = if ttl {
                let len = ticket.text().append(&s.db, "🎉").await.expect("append");
                (len, ticket.text.clone())
            } else {
                let len = note.text().append(&s.db, "🎉").await.expect("append");
                (len, note.text.clone())
            };
            let expected = format!("{stored}🎉");
            assert_eq!(local, expected, "{prefix}, {what}");
            assert_eq!(len, expected.len(), "{prefix}, {what}: its length in bytes");
            let now = s.stored_json(&format!("{prefix}:stale")).await;
            assert_eq!(now["text"], json!(expected), "{prefix}, {what}");
        }
    }
}

#[tokio::test]
async fn a_bare_command_that_did_nothing_hands_over_to_the_script_for_the_typed_error() {
    let mut s = setup(ConnectOptions::default()).await;
    // Every field of the wrong JSON type, and a document whose fields are missing; the same
    // documents as tickets, whose expiry keeps every operation a script call alone.
    let wrong = json!({"id": "wrong", "text": ["a"], "tags": "a", "done": 1});
    let empty = json!({"id": "empty"});
    for prefix in ["Note", "Ticket"] {
        for (id, value) in [("wrong", &wrong), ("empty", &empty)] {
            s.command(&[
                "JSON.SET",
                &format!("bare/{prefix}:{id}"),
                "$",
                &value.to_string(),
            ])
            .await;
        }
    }
    s.command(&["SET", "bare/Note:plain", "not json"]).await;
    let mut documents = Vec::new();
    for id in ["wrong", "empty"] {
        documents.push(s.stored(&format!("Note:{id}")).await);
    }

    for (id, expected) in [
        (
            "wrong",
            [("text", "array"), ("tags", "string"), ("done", "integer")],
        ),
        (
            "empty",
            [
                ("text", "nothing"),
                ("tags", "nothing"),
                ("done", "nothing"),
            ],
        ),
    ] {
        let mut n = note(id);
        let local = n.clone();
        let before = s.calls().await;
        let outcomes = [
            n.text().append(&s.db, "x").await.map(|_| ()),
            n.tags().append(&s.db, "x").await.map(|_| ()),
            n.done().toggle(&s.db).await.map(|_| ()),
        ];
        let ran = s.ran_since(&before).await;
        let mut t = Ticket {
            id: id.to_string(),
            text: "a".to_string(),
            tags: vec!["a".to_string()],
            done: false,
        };
        let before = s.calls().await;
        let ticket_outcomes = [
            t.text().append(&s.db, "x").await.map(|_| ()),
            t.tags().append(&s.db, "x").await.map(|_| ()),
            t.done().toggle(&s.db).await.map(|_| ()),
        ];
        let script_ran = s.ran_since(&before).await;
        for (outcome, wanted) in outcomes
            .into_iter()
            .chain(ticket_outcomes)
            .zip(expected.iter().cycle())
        {
            match outcome {
                Err(Error::TypeMismatch {
                    key, path, found, ..
                }) => {
                    assert!(
                        key == format!("bare/Note:{id}") || key == format!("bare/Ticket:{id}"),
                        "{key}"
                    );
                    assert_eq!(
                        (path, found.as_str()),
                        (format!("$.{}", wanted.0), wanted.1)
                    );
                }
                other => panic!("{id}: a typed refusal, got {other:?}"),
            }
        }
        // What the scripts ran, and before them each bare command once: the string append's
        // transaction of its two commands, the list append, the toggle.
        let mut expected_ran = script_ran.clone();
        for command in [
            "multi",
            "json.strappend",
            "json.get",
            "exec",
            "json.arrappend",
            "json.toggle",
        ] {
            *expected_ran.entry(command.to_string()).or_default() += 1;
        }
        assert_eq!(script_ran.get("evalsha"), Some(&3), "{id}: {script_ran:?}");
        assert_eq!(ran, expected_ran, "{id}");
        assert_eq!(n, local, "{id}: the local model is unchanged");
    }
    assert_eq!(s.stored("Note:wrong").await, documents[0]);
    assert_eq!(s.stored("Note:empty").await, documents[1]);

    // No document, or a key of another Redis type.
    for id in ["missing", "plain"] {
        let mut n = note(id);
        let outcomes = [
            n.text().append(&s.db, "x").await.map(|_| ()),
            n.tags().append(&s.db, "x").await.map(|_| ()),
            n.tags()
                .extend(&s.db, ["x".to_string(), "y".to_string()])
                .await
                .map(|_| ()),
            n.done().toggle(&s.db).await.map(|_| ()),
        ];
        for outcome in outcomes {
            assert_refused("Note", id, outcome);
        }
    }
    assert_eq!(s.stored("Note:missing").await, None);
    let plain: String = redis::cmd("GET")
        .arg("bare/Note:plain")
        .query_async(&mut s.raw)
        .await
        .expect("GET");
    assert_eq!(plain, "not json");
}

#[tokio::test]
async fn at_the_memory_limit_the_bare_commands_and_the_script_are_refused() {
    let mut s = setup(ConnectOptions::default()).await;
    let mut n = note("full");
    n.save(&s.db).await.expect("save");
    let document = s.stored("Note:full").await;
    s.command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        .await;
    s.command(&["CONFIG", "SET", "maxmemory", "1"]).await;
    let outcomes = [
        n.text().append(&s.db, "x").await.map(|_| ()),
        n.tags().append(&s.db, "x").await.map(|_| ()),
        n.done().toggle(&s.db).await.map(|_| ()),
    ];
    s.command(&["CONFIG", "SET", "maxmemory", "0"]).await;
    for outcome in outcomes {
        match outcome {
            Err(Error::OutOfMemory { key }) => assert_eq!(key, "bare/Note:full"),
            other => panic!("OutOfMemory naming the key, got {other:?}"),
        }
    }
    assert_eq!(s.stored("Note:full").await, document);
    assert_eq!(n, note("full"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_got_no_answer_is_not_sent_again() {
    let options = ConnectOptions::default()
        .direct_connections(0)
        .response_timeout(Duration::from_millis(200));
    let mut s = setup(options).await;
    let mut n = note("late");
    n.save(&s.db).await.expect("save");
    let before = s.calls().await;
    // Writes wait on the server for 1.5 s: every call below times out first, and its
    // command runs when the pause ends.
    s.command(&["CLIENT", "PAUSE", "1500", "WRITE"]).await;
    let outcomes = [
        n.text().append(&s.db, "x").await.map(|_| ()),
        n.tags().append(&s.db, "x").await.map(|_| ()),
        n.done().toggle(&s.db).await.map(|_| ()),
    ];
    for outcome in outcomes {
        match outcome {
            Err(Error::Redis { source, .. }) => assert!(source.is_timeout(), "{source:?}"),
            other => panic!("a timeout, got {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(1700)).await;
    // Each ran once when the pause ended; none was sent again, and no script ran.
    assert_eq!(
        s.stored_json("Note:late").await,
        json!({"id": "late", "text": "ax", "tags": ["a", "x"], "done": true})
    );
    let ran = s.ran_since(&before).await;
    assert_eq!(ran.get("evalsha"), None, "{ran:?}");
    assert_eq!(ran.get("json.arrappend"), Some(&1), "{ran:?}");
    assert_eq!(ran.get("json.toggle"), Some(&1), "{ran:?}");
    assert_eq!(ran.get("json.strappend"), Some(&1), "{ran:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_calls_each_land_exactly_once() {
    let mut s = setup(ConnectOptions::default()).await;
    let mut n = note("race");
    n.text = String::new();
    n.tags = Vec::new();
    n.save(&s.db).await.expect("save");
    let mut tasks = Vec::new();
    for task in 0..8 {
        let db = s.db.clone();
        tasks.push(tokio::spawn(async move {
            let mut lengths = Vec::new();
            for i in 0..125 {
                let mut n = note("race");
                n.text().append(&db, "é").await.expect("append");
                lengths.push(
                    n.tags()
                        .append(&db, format!("{task}:{i}"))
                        .await
                        .expect("list append"),
                );
                n.done().toggle(&db).await.expect("toggle");
            }
            lengths
        }));
    }
    let mut lengths = Vec::new();
    for task in tasks {
        lengths.extend(task.await.expect("task"));
    }
    // Every list append saw its own length: 1 to 1,000, once each.
    lengths.sort_unstable();
    assert_eq!(lengths, (1..=1000).collect::<Vec<usize>>());
    let stored = s.stored_json("Note:race").await;
    assert_eq!(stored["text"], json!("é".repeat(1000)));
    assert_eq!(stored["tags"].as_array().map(Vec::len), Some(1000));
    // 1,000 toggles from false.
    assert_eq!(stored["done"], json!(false));
}

fn shelf(id: &str) -> Shelf {
    Shelf {
        id: id.to_string(),
        n: 0,
        ratio: 0.0,
        text: String::new(),
        done: false,
        tags: Vec::new(),
        prefs: HashMap::new(),
        maybe: None,
    }
}

#[tokio::test]
async fn reads_of_a_model_without_a_read_expiry_are_the_bare_commands() {
    let mut s = setup(ConnectOptions::default()).await;
    // Stored past the local copy, so that each read is seen to come from the server.
    let stored = json!({"id": "s", "n": -42, "ratio": 2.5e-3, "text": HOSTILE, "done": true,
        "tags": [HOSTILE, "b"], "prefs": {"a.b [\"c\"]": HOSTILE}, "maybe": 7});
    s.command(&["JSON.SET", "bare/Shelf:s", "$", &stored.to_string()])
        .await;
    let mut local = shelf("s");
    let before = s.calls().await;
    assert_eq!(local.n().load(&s.db).await.expect("n"), -42);
    assert_eq!(local.ratio().load(&s.db).await.expect("ratio"), 2.5e-3);
    assert_eq!(local.text().load(&s.db).await.expect("text"), HOSTILE);
    assert!(local.done().load(&s.db).await.expect("done"));
    assert_eq!(local.tags().len(&s.db).await.expect("len"), 2);
    local.tags().load(&s.db).await.expect("tags");
    assert_eq!(local.prefs().len(&s.db).await.expect("len"), 1);
    local.prefs().load(&s.db).await.expect("prefs");
    assert_eq!(*local.maybe().load(&s.db).await.expect("maybe"), Some(7));
    assert_eq!(
        s.ran_since(&before).await,
        common::commands(&[("json.get", 7), ("json.arrlen", 1), ("json.objlen", 1)]),
        "no script ran"
    );
    assert_eq!(serde_json::to_value(&local).expect("json"), stored);

    // A float where an integer is wanted, and every other field of another JSON type: the
    // script names what it found, and nothing changes.
    let wrong = json!({"id": "w", "n": 1.5, "ratio": "x", "text": 5, "done": null,
        "tags": {}, "prefs": [], "maybe": "7"});
    s.command(&["JSON.SET", "bare/Shelf:w", "$", &wrong.to_string()])
        .await;
    let document = s.stored("Shelf:w").await;
    let mut w = shelf("w");
    let outcomes = [
        ("n", "number", w.n().load(&s.db).await.map(|_| ())),
        ("ratio", "string", w.ratio().load(&s.db).await.map(|_| ())),
        ("text", "integer", w.text().load(&s.db).await.map(|_| ())),
        ("done", "null", w.done().load(&s.db).await.map(|_| ())),
        ("tags", "object", w.tags().len(&s.db).await.map(|_| ())),
        ("tags", "object", w.tags().load(&s.db).await.map(|_| ())),
        ("prefs", "array", w.prefs().len(&s.db).await.map(|_| ())),
        ("prefs", "array", w.prefs().load(&s.db).await.map(|_| ())),
    ];
    for (field, found_type, outcome) in outcomes {
        match outcome {
            Err(Error::TypeMismatch {
                key, path, found, ..
            }) => {
                assert_eq!(key, "bare/Shelf:w");
                assert_eq!((path, found.as_str()), (format!("$.{field}"), found_type));
            }
            other => panic!("{field}: a typed refusal, got {other:?}"),
        }
    }
    // An optional field holding a value of another type fails to decode.
    assert!(w.maybe().load(&s.db).await.is_err());
    assert_eq!(w, shelf("w"), "the local model is unchanged");
    assert_eq!(s.stored("Shelf:w").await, document);

    // No document, or a key of another Redis type.
    s.command(&["SET", "bare/Shelf:plain", "not json"]).await;
    for id in ["missing", "plain"] {
        let mut m = shelf(id);
        let outcomes = [
            m.n().load(&s.db).await.map(|_| ()),
            m.tags().len(&s.db).await.map(|_| ()),
            m.prefs().len(&s.db).await.map(|_| ()),
        ];
        for outcome in outcomes {
            assert_refused("Shelf", id, outcome);
        }
    }
}

#[tokio::test]
async fn reads_of_a_model_with_refresh_on_read_keep_the_script_which_rearms_it() {
    let mut s = setup(ConnectOptions::default()).await;
    let mut l = Locker {
        id: "l".to_string(),
        n: 5,
        tags: vec!["a".to_string()],
    };
    l.save(&s.db).await.expect("save");
    let before = s.calls().await;
    for op in 0..3 {
        s.command(&["PEXPIRE", "bare/Locker:l", "5000"]).await;
        match op {
            0 => assert_eq!(l.n().load(&s.db).await.expect("load"), 5),
            1 => assert_eq!(l.tags().len(&s.db).await.expect("len"), 1),
            _ => assert_eq!(l.tags().load(&s.db).await.expect("load").len(), 1),
        }
        s.assert_rearmed("bare/Locker:l", op).await;
    }
    let ran = s.ran_since(&before).await;
    assert_eq!(ran.get("evalsha"), Some(&3), "{ran:?}");
}

#[tokio::test]
async fn a_set_of_an_optional_or_value_field_is_one_json_set_xx() {
    let mut s = setup(ConnectOptions::default()).await;
    let mut m = shelf("opt");
    m.save(&s.db).await.expect("save");
    let before = s.calls().await;
    m.maybe().set(&s.db, Some(-3)).await.expect("set");
    assert_eq!(m.maybe, Some(-3));
    assert_eq!(s.stored_json("Shelf:opt").await["maybe"], json!(-3));
    assert_eq!(m.maybe().take(&s.db).await.expect("take"), Some(-3));
    assert_eq!(m.maybe, None);
    assert_eq!(s.stored_json("Shelf:opt").await["maybe"], json!(null));
    let ran = s.ran_since(&before).await;
    assert_eq!(ran.get("json.set"), Some(&2), "{ran:?}");
    assert_eq!(ran.get("evalsha"), None, "{ran:?}");

    // No such field (a document stored without it): `XX` sets nothing, and the script then
    // adds the field, as a set always has.
    s.command(&[
        "JSON.SET",
        "bare/Shelf:nofield",
        "$",
        &json!({"id": "nofield", "n": 1}).to_string(),
    ])
    .await;
    let mut m = shelf("nofield");
    let before = s.calls().await;
    m.maybe().set(&s.db, Some(1)).await.expect("set");
    assert_eq!(m.maybe, Some(1));
    assert_eq!(
        s.stored_json("Shelf:nofield").await,
        json!({"id": "nofield", "n": 1, "maybe": 1})
    );
    let ran = s.ran_since(&before).await;
    assert_eq!(ran.get("evalsha"), Some(&1), "{ran:?}");

    // No document, a key of another type: nothing is written, and the script names the
    // failure.
    s.command(&["SET", "bare/Shelf:plain", "not json"]).await;
    for id in ["missing", "plain"] {
        let mut m = shelf(id);
        assert_refused("Shelf", id, m.maybe().set(&s.db, Some(1)).await);
        assert_eq!(m.maybe, None, "{id}: the local field is unchanged");
    }
    assert_eq!(s.stored("Shelf:missing").await, None);
}
