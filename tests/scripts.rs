//! Named scripts against the real server: the registry, running by name and through typed
//! commands, Redis's Lua reply rules, errors, pipelines and transactions, and the library's
//! own scripts. Every effect is read back with plain commands.

mod common;

use std::collections::BTreeSet;

use rapyer::script::{Json, NONE};
use rapyer::{Error, Keys};
use redis::AsyncCommands;

use common::{db, raw};

const BUMP: &str = "return redis.call('INCRBY', KEYS[1], ARGV[1])";

rapyer::script! {
    /// Pushes `message` onto the queue list of every member of `group` (queue keys are
    /// `queue_prefix .. member`); returns how many queues got it.
    pub PUBLISH_TO_GROUP(
        "publish_to_group",
        keys(group),
        args(queue_prefix: &str, message: &str),
    ) -> i64 = r#"
local members = redis.call('SMEMBERS', KEYS[1])
for _, member in ipairs(members) do
  redis.call('RPUSH', ARGV[1] .. member, ARGV[2])
end
return #members
"#;
}

rapyer::script! {
    /// Sets every key to the value; returns how many keys it was given.
    SET_ALL("set_all", keys(), args(value: &str)) -> i64 = r#"
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1]) end
return #KEYS
"#;
}

async fn get(raw: &mut redis::aio::MultiplexedConnection, key: &str) -> Option<String> {
    raw.get(key).await.expect("GET")
}

async fn lrange(raw: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<String> {
    raw.lrange(key, 0, -1).await.expect("LRANGE")
}

#[tokio::test]
async fn define_run_get_names_and_redefine() {
    let db = db().await;
    let mut raw = raw().await;
    let script = db
        .scripts()
        .define("bump", Keys::Fixed(1), BUMP)
        .expect("define");
    assert_eq!(script.name(), "bump");
    assert_eq!(script.keys(), Keys::Fixed(1));
    assert_eq!(script.body(), BUMP);
    // The SHA1 is the one the server computes for the same body.
    let server_sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(BUMP)
        .query_async(&mut raw)
        .await
        .expect("SCRIPT LOAD");
    assert_eq!(script.sha(), server_sha);
    assert_eq!(db.scripts().get("bump"), Some(script.clone()));
    assert_eq!(db.scripts().get("nope"), None);

    let n: i64 = db
        .run_script("bump", &["counter"], &[5])
        .await
        .expect("run");
    assert_eq!(n, 5);
    let n: i64 = db
        .run_script("bump", &["counter"], &[-2])
        .await
        .expect("run");
    assert_eq!(n, 3);
    // The key got the handle's namespace.
    assert_eq!(
        get(&mut raw, &db.key("counter")).await.as_deref(),
        Some("3")
    );
    assert_eq!(get(&mut raw, "counter").await, None);

    // The same definition again is a no-op; a different one is refused until replaced.
    assert_eq!(
        db.scripts()
            .define("bump", Keys::Fixed(1), BUMP)
            .expect("again"),
        script
    );
    let other = "return redis.call('DECRBY', KEYS[1], ARGV[1])";
    match db.scripts().define("bump", Keys::Fixed(1), other) {
        Err(Error::InvalidScript { name, message }) => {
            assert_eq!(name, "bump");
            assert!(message.contains("replace"), "{message}");
        }
        other => panic!("expected InvalidScript, got {other:?}"),
    }
    assert!(matches!(
        db.scripts().define("bump", Keys::Fixed(2), BUMP),
        Err(Error::InvalidScript { .. })
    ));
    let replaced = db
        .scripts()
        .replace("bump", Keys::Fixed(1), other)
        .expect("replace");
    assert_ne!(replaced.sha(), script.sha());
    let n: i64 = db
        .run_script("bump", &["counter"], &[1])
        .await
        .expect("run");
    assert_eq!(n, 2, "the replaced body runs");

    // Names are sorted and include the library's own scripts.
    let names = db.scripts().names();
    assert!(names.contains(&"bump".to_string()), "{names:?}");
    assert!(names.contains(&"rapyer.save".to_string()), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);

    // Another namespace on the same connection shares the registry.
    let other_ns = db
        .with_namespace(format!("{}other/", db.namespace()))
        .expect("a valid namespace");
    let n: i64 = other_ns
        .run_script("bump", &["counter"], &[-7])
        .await
        .expect("run in another namespace");
    assert_eq!(n, 7, "the replaced (DECRBY) body, in the other namespace");
    assert_eq!(
        get(&mut raw, &other_ns.key("counter")).await.as_deref(),
        Some("7")
    );
}

#[tokio::test]
async fn invalid_definitions_and_calls_are_refused_before_sending() {
    let db = db().await;
    let mut raw = raw().await;
    for name in [
        "",
        "has space",
        "new\nline",
        "quote\"",
        "émoji🎉",
        "rapyer.save",
        "rapyer.mine",
        &"x".repeat(129),
    ] {
        match db.scripts().define(name, Keys::Fixed(0), "return 1") {
            Err(Error::InvalidScript { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{name:?} should be refused, got {other:?}"),
        }
    }
    for body in ["", "   \n\t "] {
        assert!(matches!(
            db.scripts().define("blank", Keys::Fixed(0), body),
            Err(Error::InvalidScript { .. })
        ));
    }
    assert!(
        db.scripts()
            .define(&"x".repeat(128), Keys::Dynamic, "return 1")
            .is_ok()
    );
    // The library's own scripts cannot be replaced either.
    assert!(matches!(
        db.scripts()
            .replace("rapyer.save", Keys::Dynamic, "return 1"),
        Err(Error::InvalidScript { .. })
    ));

    db.scripts()
        .define("bump", Keys::Fixed(1), BUMP)
        .expect("define");
    // Wrong key counts fail before anything is sent: the key stays absent.
    for keys in [vec![], vec!["counter", "other"]] {
        match db.run_script::<i64>("bump", &keys, &[1]).await {
            Err(Error::InvalidScript { name, message }) => {
                assert_eq!(name, "bump");
                assert!(message.contains("takes 1 key"), "{message}");
            }
            other => panic!("expected a key-count error, got {other:?}"),
        }
    }
    assert_eq!(get(&mut raw, &db.key("counter")).await, None);

    match db.run_script::<i64>("bmup", &["counter"], &[1]).await {
        Err(Error::UnknownScript { name, known }) => {
            assert_eq!(name, "bmup");
            assert!(known.contains(&"bump".to_string()), "{known:?}");
            let text = Error::UnknownScript { name, known }.to_string();
            assert!(text.contains("bump"), "{text}");
        }
        other => panic!("expected UnknownScript, got {other:?}"),
    }
}

#[tokio::test]
async fn preload_exists_missing_and_flush() {
    let db = db().await;
    // Bodies unique to this test, so no other test's scripts share their SHA1.
    let tag = format!("-- {}\n", db.namespace());
    db.scripts()
        .define("one", Keys::Fixed(0), format!("{tag}return 1"))
        .expect("define");
    db.scripts()
        .define("two", Keys::Fixed(0), format!("{tag}return 2"))
        .expect("define");
    assert!(!db.scripts().exists("one").await.expect("exists"));
    let loaded = db.scripts().preload().await.expect("preload");
    assert_eq!(loaded, db.scripts().names().len());
    assert!(db.scripts().exists("one").await.expect("exists"));
    assert!(db.scripts().exists("two").await.expect("exists"));
    assert!(matches!(
        db.scripts().exists("three").await,
        Err(Error::UnknownScript { .. })
    ));

    db.scripts().flush().await.expect("flush");
    assert!(!db.scripts().exists("one").await.expect("exists"));
    let missing = db.scripts().missing().await.expect("missing");
    assert!(missing.contains(&"one".to_string()) && missing.contains(&"two".to_string()));
    // A flushed script is reloaded on its next use.
    let n: i64 = db
        .run_script("two", NONE, NONE)
        .await
        .expect("run after flush");
    assert_eq!(n, 2);
    assert!(db.scripts().exists("two").await.expect("exists"));

    // A body the server cannot compile is reported by name, by preload and by a call.
    db.scripts()
        .define("broken", Keys::Fixed(0), format!("{tag}return (("))
        .expect("define");
    match db.scripts().preload().await {
        Err(Error::Script { name, message }) => {
            assert_eq!(name, "broken");
            assert!(message.contains("compiling"), "{message}");
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
    match db.run_script::<i64>("broken", NONE, NONE).await {
        Err(Error::Script { name, message }) => {
            assert_eq!(name, "broken");
            assert!(message.contains("compiling"), "{message}");
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
}

#[tokio::test]
async fn publish_to_group_alone_by_name_and_in_one_pipeline() {
    let db = db().await;
    let mut raw = raw().await;
    let queues = db.key("queue:");
    let _: () = raw
        .sadd(db.key("group:chat"), &["alice", "bob", "carol"])
        .await
        .expect("SADD");
    let _: () = raw
        .sadd(db.key("group:ops"), &["bob", "dave"])
        .await
        .expect("SADD");

    // The typed command: keys and arguments are the parameters of `call`.
    assert_eq!(PUBLISH_TO_GROUP::KEYS, Keys::Fixed(1));
    let n = PUBLISH_TO_GROUP
        .call(&db, "group:chat", &queues, "hello")
        .await
        .expect("typed call");
    assert_eq!(n, 3);
    for member in ["alice", "bob", "carol"] {
        assert_eq!(
            lrange(&mut raw, &format!("{queues}{member}")).await,
            ["hello"]
        );
    }
    // Its first call registered it, so it runs by name too.
    assert!(
        db.scripts()
            .names()
            .contains(&"publish_to_group".to_string())
    );
    let n: i64 = db
        .run_script("publish_to_group", &["group:ops"], (&queues, "by name"))
        .await
        .expect("run by name");
    assert_eq!(n, 2);

    // Two groups in one pipeline: one round trip, replies in order.
    let mut pipe = db.pipeline();
    let chat = pipe.add(PUBLISH_TO_GROUP.prepare("group:chat", &queues, "m1"));
    let ops = pipe.add(PUBLISH_TO_GROUP.prepare("group:ops", &queues, "m2"));
    let empty = pipe.run_script("publish_to_group", &["group:nobody"], (&queues, "m3"));
    assert_eq!(pipe.len(), 3);
    let replies = pipe.execute().await.expect("pipeline");
    assert_eq!(replies.len(), 3);
    assert_eq!(chat.get(&replies).expect("chat"), 3);
    assert_eq!(ops.get(&replies).expect("ops"), 2);
    assert_eq!(empty.get(&replies).expect("nobody"), redis::Value::Int(0));
    assert_eq!(
        lrange(&mut raw, &format!("{queues}alice")).await,
        ["hello", "m1"]
    );
    assert_eq!(
        lrange(&mut raw, &format!("{queues}bob")).await,
        ["hello", "by name", "m1", "m2"]
    );
    assert_eq!(
        lrange(&mut raw, &format!("{queues}dave")).await,
        ["by name", "m2"]
    );
}

#[tokio::test]
async fn dynamic_key_counts() {
    let db = db().await;
    let mut raw = raw().await;
    assert_eq!(SET_ALL::KEYS, Keys::Fixed(0));
    db.scripts()
        .define("set_all_dynamic", Keys::Dynamic, SET_ALL::LUA)
        .expect("define");
    for n in [0usize, 1, 5, 40] {
        let keys: Vec<String> = (0..n).map(|i| format!("dyn:{n}:{i}")).collect();
        let count: i64 = db
            .run_script("set_all_dynamic", &keys, &[format!("v{n}")])
            .await
            .expect("dynamic");
        assert_eq!(count, n as i64);
        for key in &keys {
            assert_eq!(
                get(&mut raw, &db.key(key)).await,
                Some(format!("v{n}")),
                "{key}"
            );
        }
    }
    // The typed command with no keys sends none.
    assert_eq!(SET_ALL.call(&db, "x").await.expect("no keys"), 0);

    // A key type that writes two arguments but keeps redis-rs's default `num_of_args` (1)
    // is counted by what it writes.
    struct Pair(&'static str, &'static str);
    impl redis::ToRedisArgs for Pair {
        fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
            out.write_arg(self.0.as_bytes());
            out.write_arg(self.1.as_bytes());
        }
    }
    let count: i64 = db
        .run_script("set_all_dynamic", Pair("p1", "p2"), &["pair"])
        .await
        .expect("pair of keys");
    assert_eq!(count, 2);
    for key in ["p1", "p2"] {
        assert_eq!(get(&mut raw, &db.key(key)).await.as_deref(), Some("pair"));
    }
    db.scripts()
        .define("one_key", Keys::Fixed(1), "return 1")
        .expect("define");
    assert!(matches!(
        db.run_script::<i64>("one_key", Pair("p1", "p2"), NONE)
            .await,
        Err(Error::InvalidScript { .. })
    ));
}

#[tokio::test]
async fn lua_reply_rules_and_exact_decoding() {
    let db = db().await;
    let define = |name: &str, body: &str| {
        db.scripts()
            .define(name, Keys::Fixed(0), body)
            .expect("define");
    };
    define("float", "return 3.7");
    define("float_text", "return string.format('%.17g', 0.1 + 0.2)");
    define("big_text", "return '9007199254740993'");
    define("huge_number", "return 1e20");
    define("falsy", "return false");
    define("truthy", "return true");
    define("holes", "return {1, 2, nil, 4}");
    define(
        "json",
        "return cjson.encode({name = 'x\"y', n = 3, list = {1, 2}})",
    );
    define("status", "return redis.status_reply('DONE')");

    // A Lua number loses its fraction on the way out: 3.7 arrives as 3.
    let truncated: i64 = db.run_script("float", NONE, NONE).await.expect("float");
    assert_eq!(truncated, 3);
    let truncated: f64 = db.run_script("float", NONE, NONE).await.expect("float");
    assert_eq!(truncated, 3.0);
    // Returned as text, a float and a big integer decode exactly.
    let exact: f64 = db.run_script("float_text", NONE, NONE).await.expect("text");
    assert_eq!(exact, 0.1 + 0.2);
    let big: i64 = db.run_script("big_text", NONE, NONE).await.expect("big");
    assert_eq!(big, 9_007_199_254_740_993);
    // A number beyond i64 does not arrive as itself.
    let huge: i64 = db
        .run_script("huge_number", NONE, NONE)
        .await
        .expect("huge");
    assert_ne!(huge, 100_000_000_000_000_000_000_i128 as i64);
    // false becomes null, true becomes 1, and a table stops at its first nil.
    let falsy: Option<i64> = db.run_script("falsy", NONE, NONE).await.expect("false");
    assert_eq!(falsy, None);
    let truthy: i64 = db.run_script("truthy", NONE, NONE).await.expect("true");
    assert_eq!(truthy, 1);
    let holes: Vec<i64> = db.run_script("holes", NONE, NONE).await.expect("holes");
    assert_eq!(holes, [1, 2]);
    // JSON text decodes with serde.
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Reply {
        name: String,
        n: i64,
        list: Vec<i64>,
    }
    let Json(reply): Json<Reply> = db.run_script("json", NONE, NONE).await.expect("json");
    assert_eq!(
        reply,
        Reply {
            name: "x\"y".into(),
            n: 3,
            list: vec![1, 2]
        }
    );
    let status: String = db.run_script("status", NONE, NONE).await.expect("status");
    assert_eq!(status, "DONE");
    // A reply of the wrong shape is an error naming the script, not a panic.
    match db.run_script::<Vec<String>>("truthy", NONE, NONE).await {
        Err(Error::Redis { op, .. }) => assert!(op.contains("truthy"), "{op}"),
        other => panic!("expected a decoding error, got {other:?}"),
    }
    match db.run_script::<Json<Reply>>("status", NONE, NONE).await {
        Err(Error::Redis { op, .. }) => assert!(op.contains("status"), "{op}"),
        other => panic!("expected a decoding error, got {other:?}"),
    }
}

#[tokio::test]
async fn script_errors_carry_the_name_and_the_message() {
    let db = db().await;
    let mut raw = raw().await;
    db.scripts()
        .define(
            "fails",
            Keys::Fixed(0),
            "return redis.error_reply('BOOM it failed')",
        )
        .expect("define");
    db.scripts()
        .define("raises", Keys::Fixed(0), "error('oops')")
        .expect("define");
    db.scripts()
        .define(
            "wrong_type",
            Keys::Fixed(1),
            "redis.call('SET', KEYS[1] .. ':done', 1) return redis.call('LPUSH', KEYS[1], 'x')",
        )
        .expect("define");
    match db.run_script::<i64>("fails", NONE, NONE).await {
        Err(Error::Script { name, message }) => {
            assert_eq!(name, "fails");
            assert_eq!(message, "BOOM it failed");
        }
        other => panic!("expected a script error, got {other:?}"),
    }
    match db.run_script::<i64>("raises", NONE, NONE).await {
        Err(e @ Error::Script { .. }) => {
            let text = e.to_string();
            assert!(text.contains("raises") && text.contains("oops"), "{text}");
        }
        other => panic!("expected a script error, got {other:?}"),
    }
    let _: () = raw.set(db.key("s"), "a string").await.expect("SET");
    match db.run_script::<i64>("wrong_type", &["s"], NONE).await {
        Err(Error::Script { name, message }) => {
            assert_eq!(name, "wrong_type");
            assert!(message.contains("WRONGTYPE"), "{message}");
        }
        other => panic!("expected a script error, got {other:?}"),
    }
    // Redis does not roll back a script: its write before the error stays.
    assert_eq!(get(&mut raw, &db.key("s:done")).await.as_deref(), Some("1"));
}

#[tokio::test]
async fn hostile_keys_and_arguments_are_data() {
    let db = db().await;
    let mut raw = raw().await;
    db.scripts()
        .define(
            "store",
            Keys::Fixed(1),
            "redis.call('SET', KEYS[1], ARGV[1]) return {KEYS[1], ARGV[1], #ARGV[1]}",
        )
        .expect("define");
    let hostile = [
        "a'] or 1==1 --",
        "\"quoted\" 'single'",
        "]] .. redis.call('FLUSHALL') .. [[",
        "line\nbreak\r\n",
        "back\\slash",
        "{hash}:tag",
        "emoji 🎉 ünïcode",
        "nul\0byte",
        "$.path[0]",
        "",
    ];
    for (i, value) in hostile.iter().enumerate() {
        let key = format!("k:{i}:{value}");
        let (k, v, len): (String, String, usize) = db
            .run_script("store", &[&key], &[value])
            .await
            .expect("store");
        assert_eq!(k, db.key(&key));
        assert_eq!(v, *value);
        assert_eq!(len, value.len());
        assert_eq!(get(&mut raw, &db.key(&key)).await.as_deref(), Some(*value));
    }
    // Binary arguments pass through untouched.
    let bytes: Vec<u8> = (0..=255u8).collect();
    let (_, v, len): (String, Vec<u8>, usize) = db
        .run_script("store", &["bin"], &[&bytes[..]])
        .await
        .expect("binary");
    assert_eq!((v, len), (bytes.clone(), 256));
    let stored: Vec<u8> = raw.get(db.key("bin")).await.expect("GET");
    assert_eq!(stored, bytes);
}

#[tokio::test]
async fn pipelines_run_everything_in_order() {
    let db = db().await;
    let mut raw = raw().await;
    db.scripts()
        .define(
            "push",
            Keys::Fixed(1),
            "return redis.call('RPUSH', KEYS[1], ARGV[1])",
        )
        .expect("define");
    let list = db.key("list");
    let mut pipe = db.pipeline();
    let mut pushed = Vec::new();
    for i in 0..2_500 {
        // Script calls and plain commands interleaved, across several MULTI segments.
        if i % 3 == 0 {
            pushed.push(pipe.cmd(redis::cmd("RPUSH").arg(&list).arg(i).to_owned()));
        } else {
            pushed.push(pipe.run_script("push", &["list"], &[i]));
        }
    }
    let len = pipe.cmd(redis::cmd("LLEN").arg(&list).to_owned());
    let replies = pipe.execute().await.expect("pipeline");
    assert_eq!(replies.len(), 2_501);
    for (i, reply) in pushed.iter().enumerate() {
        assert_eq!(
            reply.get(&replies).expect("reply"),
            redis::Value::Int(i as i64 + 1)
        );
    }
    assert_eq!(len.get(&replies).expect("LLEN"), redis::Value::Int(2_500));
    let stored = lrange(&mut raw, &list).await;
    let expected: Vec<String> = (0..2_500).map(|i| i.to_string()).collect();
    assert_eq!(stored, expected);

    // An empty pipeline sends nothing and returns nothing.
    assert!(db.pipeline().execute().await.expect("empty").is_empty());
}

#[tokio::test]
async fn a_pipeline_built_wrong_sends_nothing() {
    let db = db().await;
    let mut raw = raw().await;
    db.scripts()
        .define("bump", Keys::Fixed(1), BUMP)
        .expect("define");
    type AddBad = fn(&mut rapyer::Pipeline<'_>);
    let cases: Vec<(&str, AddBad)> = vec![
        ("unknown", |p| {
            p.run_script("missing", &["x"], NONE);
        }),
        ("key count", |p| {
            p.run_script("bump", &["a", "b"], &[1]);
        }),
        ("multi", |p| {
            p.cmd(redis::cmd("MULTI"));
        }),
    ];
    for (what, add_bad) in cases {
        let mut pipe = db.pipeline();
        pipe.cmd(redis::cmd("SET").arg(db.key("before")).arg(what).to_owned());
        add_bad(&mut pipe);
        pipe.run_script("bump", &["after"], &[1]);
        let result = pipe.execute().await;
        assert!(result.is_err(), "{what}: {result:?}");
        assert_eq!(get(&mut raw, &db.key("before")).await, None, "{what}");
        assert_eq!(get(&mut raw, &db.key("after")).await, None, "{what}");
    }
}

#[tokio::test]
async fn transactions_apply_together_or_report_what_failed() {
    let db = db().await;
    let mut raw = raw().await;
    db.scripts()
        .define("bump", Keys::Fixed(1), BUMP)
        .expect("define");
    db.scripts()
        .define(
            "fails",
            Keys::Fixed(0),
            "return redis.error_reply('NOPE refused')",
        )
        .expect("define");

    let mut tx = db.transaction();
    assert!(tx.is_transaction());
    let bumped = tx.run_script("bump", &["counter"], &[10]);
    let set = tx.cmd(redis::cmd("SET").arg(db.key("marker")).arg("1").to_owned());
    let replies = tx.execute().await.expect("transaction");
    assert_eq!(replies.len(), 2);
    assert_eq!(bumped.get(&replies).expect("bump"), redis::Value::Int(10));
    assert_eq!(set.get(&replies).expect("set"), redis::Value::Okay);
    assert_eq!(
        get(&mut raw, &db.key("counter")).await.as_deref(),
        Some("10")
    );
    assert_eq!(get(&mut raw, &db.key("marker")).await.as_deref(), Some("1"));

    // A command refused while queueing aborts the whole transaction: nothing applies.
    let mut tx = db.transaction();
    tx.run_script("bump", &["counter"], &[1]);
    tx.cmd(redis::cmd("SET").arg(db.key("only-key")).to_owned());
    tx.cmd(redis::cmd("SET").arg(db.key("marker")).arg("2").to_owned());
    match tx.execute().await {
        Err(Error::Redis { source, .. }) => {
            assert!(source.to_string().contains("wrong number"), "{source}")
        }
        other => panic!("expected the queueing error, got {other:?}"),
    }
    assert_eq!(
        get(&mut raw, &db.key("counter")).await.as_deref(),
        Some("10")
    );
    assert_eq!(get(&mut raw, &db.key("marker")).await.as_deref(), Some("1"));

    // A script failing while the transaction runs is reported by name; Redis still
    // applies the other commands (documented: no rollback).
    let mut tx = db.transaction();
    tx.run_script("bump", &["counter"], &[1]);
    tx.run_script("fails", NONE, NONE);
    tx.cmd(redis::cmd("SET").arg(db.key("marker")).arg("3").to_owned());
    match tx.execute().await {
        Err(Error::Script { name, message }) => {
            assert_eq!(name, "fails");
            assert_eq!(message, "NOPE refused");
        }
        other => panic!("expected the script error, got {other:?}"),
    }
    assert_eq!(
        get(&mut raw, &db.key("counter")).await.as_deref(),
        Some("11")
    );
    assert_eq!(get(&mut raw, &db.key("marker")).await.as_deref(), Some("3"));
}

#[tokio::test]
async fn every_library_script_is_registered_and_loads() {
    let db = db().await;
    let mut raw = raw().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lua");
    let mut files = BTreeSet::new();
    // lua/lib/ holds the shared library a script may start with.
    let mut library_texts = Vec::new();
    for entry in std::fs::read_dir(dir.join("lib")).expect("lua/lib/") {
        let path = entry.expect("entry").path();
        assert_eq!(
            path.extension().and_then(|e| e.to_str()),
            Some("lua"),
            "only Lua files belong in lua/lib/: {}",
            path.display()
        );
        library_texts.push(std::fs::read_to_string(&path).expect("read"));
    }
    let body_of = |name: &str| {
        db.scripts()
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not registered"))
            .body()
            .to_string()
    };
    for entry in std::fs::read_dir(&dir).expect("lua/") {
        let path = entry.expect("entry").path();
        // The library, and the block runtimes (assembled per block, see tests/server_ops.rs),
        // the structure operations included.
        if (path.is_dir() && path.ends_with("lib"))
            || path.ends_with("block.lua")
            || path.ends_with("flat.lua")
            || path.ends_with("block_structures.lua")
        {
            continue;
        }
        // The flat blocks' fast path: one script, `rapyer.flat_fast`, the file's code (its
        // comments, blank lines and indentation left out) and the call.
        if path.ends_with("flat_fast.lua") {
            let source = std::fs::read_to_string(&path).expect("read");
            let code: String = source
                .lines()
                .map(str::trim_start)
                .filter(|l| !l.is_empty() && !l.starts_with("--"))
                .map(|l| format!("{l}\n"))
                .collect();
            assert_eq!(
                body_of("rapyer.flat_fast"),
                format!("-- rapyer ServerOps flat block, fast path\n{code}return QUICK()\n")
            );
            files.insert("rapyer.flat_fast".to_string());
            continue;
        }
        // The fast paths of field operations: `fast_<name>` runs first in the script of
        // the operation <name> (which holds no other fast path), and only there.
        if path.ends_with("field_fast.lua") {
            let source = std::fs::read_to_string(&path).expect("read");
            let fast: Vec<&str> = source
                .lines()
                .filter_map(|l| l.strip_prefix("local function fast_"))
                .filter_map(|l| l.split('(').next())
                .collect();
            assert!(fast.contains(&"incr") && fast.contains(&"set"), "{fast:?}");
            for name in db.scripts().names() {
                let Some(op) = name.strip_prefix("rapyer.field.") else {
                    continue;
                };
                // Checked with lua/field_gather.lua below.
                if op.ends_with(".gathered") {
                    continue;
                }
                let body = body_of(&name);
                if fast.contains(&op) {
                    assert!(
                        body.contains(&format!("local function fast_{op}(")),
                        "{name}"
                    );
                    let early =
                        format!("local reply = fast_{op}()\nif reply then\nreturn reply\nend\n");
                    let (fast, whole) = body.split_once(&early).expect("the early return");
                    assert!(
                        fast.contains(&format!("local function fast_{op}(")),
                        "{name}"
                    );
                    assert!(
                        whole.contains(&format!("local function op_{op}(")),
                        "{name}"
                    );
                    assert_eq!(body.matches("local function fast_").count(), 1, "{name}");
                } else {
                    assert!(
                        !body.contains("fast_"),
                        "{name} holds a fast path of another"
                    );
                }
            }
            continue;
        }
        // The loop of the gathered field calls: for each field operation's script
        // `rapyer.field.<name>`, `rapyer.field.<name>.gathered` runs several calls of it in
        // one script call: the same operation (and its fast path) with KEYS and ARGV as
        // locals the loop sets, the same first line (`#!lua` or not), the loop last.
        if path.ends_with("field_gather.lua") {
            let source = std::fs::read_to_string(&path).expect("read");
            let mut gathered = 0;
            for name in db.scripts().names() {
                let Some(op) = name
                    .strip_prefix("rapyer.field.")
                    .and_then(|rest| rest.strip_suffix(".gathered"))
                else {
                    continue;
                };
                let body = body_of(&name);
                let single = body_of(&format!("rapyer.field.{op}"));
                assert!(body.ends_with(source.as_str()), "{name}");
                assert!(
                    body.contains("local CALLS_KEYS, CALLS_ARGV = KEYS, ARGV\nlocal KEYS, ARGV\n"),
                    "{name}"
                );
                assert!(body.contains(&format!("local function op_{op}(")), "{name}");
                assert_eq!(body.matches("local function op_").count(), 1, "{name}");
                assert_eq!(
                    body.contains(&format!("local function fast_{op}(")),
                    single.contains(&format!("local function fast_{op}(")),
                    "{name}"
                );
                assert_eq!(
                    body.starts_with("#!lua\n"),
                    single.starts_with("#!lua\n"),
                    "{name}"
                );
                files.insert(name);
                gathered += 1;
            }
            assert!(gathered > 20, "{gathered} gathered field scripts");
            continue;
        }
        // The field operations: one script each, `rapyer.field.<name>` for each top-level
        // `op_<name>` function, holding that function and what it uses.
        if path.ends_with("field.lua") {
            let source = std::fs::read_to_string(&path).expect("read");
            let ops: Vec<&str> = source
                .lines()
                .filter_map(|l| l.strip_prefix("local function op_"))
                .filter_map(|l| l.split('(').next())
                .collect();
            assert!(ops.len() > 20, "{ops:?}");
            for op in ops {
                let name = format!("rapyer.field.{op}");
                let script = db
                    .scripts()
                    .get(&name)
                    .unwrap_or_else(|| panic!("{op} of field.lua is not registered as {name}"));
                let body = script.body();
                assert!(body.contains(&format!("local function op_{op}(")), "{name}");
                assert!(body.contains(&format!("return FIELD(op_{op}, ")), "{name}");
                // Only the pieces it uses: no other operation.
                let others = body.matches("local function op_").count();
                assert_eq!(others, 1, "{name} holds other operations");
                files.insert(name);
            }
            continue;
        }
        assert_eq!(
            path.extension().and_then(|e| e.to_str()),
            Some("lua"),
            "only Lua files belong in lua/: {}",
            path.display()
        );
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("file name")
            .to_string();
        let body = std::fs::read_to_string(&path).expect("read");
        let name = format!("rapyer.{stem}");
        let script = db
            .scripts()
            .get(&name)
            .unwrap_or_else(|| panic!("{} is not registered as {name}", path.display()));
        // The file's text, after some of the library.
        let prelude = script.body().strip_suffix(body.as_str());
        assert!(
            prelude.is_some_and(|p| {
                let mut rest = p.to_string();
                for text in &library_texts {
                    rest = rest.replacen(text.as_str(), "", 1);
                }
                rest.trim().is_empty()
            }),
            "{name} is not the file's text after the library"
        );
        files.insert(name);
    }
    let library: BTreeSet<String> = db
        .scripts()
        .names()
        .into_iter()
        .filter(|n| n.starts_with("rapyer.") && !n.starts_with("rapyer.block."))
        .collect();
    assert_eq!(
        library, files,
        "registered library scripts without a file in lua/"
    );
    // Each one compiles on the real server (SCRIPT LOAD answers its SHA1).
    for name in &files {
        let script = db.scripts().get(name).expect("registered");
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(script.body())
            .query_async(&mut raw)
            .await
            .unwrap_or_else(|e| panic!("{name} does not load: {e}"));
        assert_eq!(sha, script.sha(), "{name}");
    }
}

#[tokio::test]
async fn a_command_refused_in_a_pipeline_fails_alone_and_every_other_command_applies() {
    let db = db().await;
    let mut raw = raw().await;
    db.scripts()
        .define("bump", Keys::Fixed(1), BUMP)
        .expect("define");
    let (wrong_arity, unknown) = (400, 1_100);
    let mut pipe = db.pipeline();
    for i in 0..1_500usize {
        match i {
            _ if i == wrong_arity => {
                pipe.cmd(redis::cmd("SET").arg(db.key("arity")).to_owned());
            }
            _ if i == unknown => {
                pipe.cmd(redis::cmd("NO.SUCH.COMMAND").arg(1).to_owned());
            }
            // Script calls between plain commands, in the same stretch as the bad ones.
            _ if i % 5 == 0 => {
                pipe.run_script("bump", &["counter"], &[1]);
            }
            _ => {
                pipe.cmd(
                    redis::cmd("SET")
                        .arg(db.key(&format!("k{i}")))
                        .arg(i)
                        .to_owned(),
                );
            }
        }
    }
    let replies = pipe.execute_each().await.expect("the pipeline was sent");
    assert_eq!(replies.len(), 1_500);
    let mut bumps = 0;
    for (i, reply) in replies.iter().enumerate() {
        match (i, reply) {
            (i, Err(Error::Redis { op, source })) if i == wrong_arity => {
                assert!(source.to_string().contains("wrong number"), "{source}");
                assert!(op.contains("400"), "the error names its index: {op}");
            }
            (i, Err(Error::Redis { op, source })) if i == unknown => {
                assert!(source.to_string().contains("unknown command"), "{source}");
                assert!(op.contains("1100"), "the error names its index: {op}");
            }
            (i, Ok(redis::Value::Int(n))) if i % 5 == 0 => {
                bumps += 1;
                assert_eq!(*n, bumps, "script call {i}");
            }
            (i, Ok(redis::Value::Okay)) if i % 5 != 0 => {}
            (i, other) => panic!("command {i}: {other:?}"),
        }
    }
    assert_eq!(
        get(&mut raw, &db.key("counter")).await,
        Some(bumps.to_string())
    );
    for i in (0..1_500usize).filter(|i| i % 5 != 0 && *i != wrong_arity && *i != unknown) {
        assert_eq!(
            get(&mut raw, &db.key(&format!("k{i}"))).await,
            Some(i.to_string()),
            "command {i} took effect"
        );
    }
    assert_eq!(get(&mut raw, &db.key("arity")).await, None);

    // `execute` reports the first failure, and the others still applied.
    let mut pipe = db.pipeline();
    pipe.cmd(redis::cmd("SET").arg(db.key("first")).to_owned());
    pipe.run_script("bump", &["second"], &[7]);
    pipe.cmd(redis::cmd("SET").arg(db.key("third")).arg("3").to_owned());
    match pipe.execute().await {
        Err(Error::Redis { source, .. }) => {
            assert!(source.to_string().contains("wrong number"), "{source}")
        }
        other => panic!("expected the arity error, got {other:?}"),
    }
    assert_eq!(get(&mut raw, &db.key("second")).await.as_deref(), Some("7"));
    assert_eq!(get(&mut raw, &db.key("third")).await.as_deref(), Some("3"));
}
