//! Circular buffers against the real server: every operation of the handle read back with
//! plain `JSON.GET`, the newest N kept in one step (also when the stored array is already
//! longer than N), hostile items, typed failures with the document byte-identical (`DUMP`),
//! 32 tasks pushing at once (exactly the newest N of all pushes, in server order), and pushes
//! inside ServerOps and atomic blocks, all or nothing.

mod common;

use rapyer::prelude::*;
use rapyer::{CircularBuffer, Error};
use serde::{Deserialize, Serialize};

use common::{db, raw};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Feed", hash_tag = "feed")]
struct Feed {
    #[rapyer(key)]
    id: String,
    recent: CircularBuffer<String, 3>,
    last: CircularBuffer<i64, 1>,
    readings: CircularBuffer<f64, 4>,
    raw: CircularBuffer<serde_json::Value, 2>,
    seen: i64,
    tasks: Vec<String>,
}

fn feed(id: &str) -> Feed {
    Feed {
        id: id.to_string(),
        recent: CircularBuffer::new(),
        last: CircularBuffer::new(),
        readings: CircularBuffer::new(),
        raw: CircularBuffer::new(),
        seen: 0,
        tasks: Vec::new(),
    }
}

type Raw = redis::aio::MultiplexedConnection;

/// `JSON.GET key path` as the plain command answers it (`[value]`), parsed.
async fn read(raw: &mut Raw, key: &str, path: &str) -> serde_json::Value {
    let text: Option<String> = redis::cmd("JSON.GET")
        .arg(key)
        .arg(path)
        .query_async(raw)
        .await
        .expect("JSON.GET");
    let mut all: Vec<serde_json::Value> =
        serde_json::from_str(&text.expect("the document exists")).expect("a JSONPath reply");
    all.remove(0)
}

/// The stored `$.recent`, as strings.
async fn stored_recent(raw: &mut Raw, key: &str) -> Vec<String> {
    serde_json::from_value(read(raw, key, "$.recent").await).expect("an array of strings")
}

async fn dump(raw: &mut Raw, key: &str) -> Option<Vec<u8>> {
    redis::cmd("DUMP")
        .arg(key)
        .query_async(raw)
        .await
        .expect("DUMP")
}

async fn json_set(raw: &mut Raw, key: &str, path: &str, value: &str) {
    let _: () = redis::cmd("JSON.SET")
        .arg(key)
        .arg(path)
        .arg(value)
        .query_async(raw)
        .await
        .expect("JSON.SET");
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn push_keeps_the_newest_n_and_the_local_copy_holds_the_servers() {
    let db = db().await;
    let mut raw = raw().await;
    let mut f = feed("ops");
    f.save(&db).await.expect("save");
    let key = db.key(&f.key());
    assert_eq!(
        read(&mut raw, &key, "$.recent").await,
        serde_json::json!([])
    );

    let mut pushed = Vec::new();
    for (i, item) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
        let len = f.recent().push(&db, item).await.expect("push");
        pushed.push(item.to_string());
        let newest = pushed[pushed.len().saturating_sub(3)..].to_vec();
        assert_eq!(len, (i + 1).min(3));
        assert_eq!(stored_recent(&mut raw, &key).await, newest);
        assert_eq!(f.recent.to_vec(), newest, "the local copy is the server's");
    }
    assert_eq!(f.recent().len(&db).await.expect("len"), 3);
    // Newest first.
    assert_eq!(
        f.recent().latest(&db, 2).await.expect("latest"),
        strings(&["e", "d"])
    );
    assert_eq!(
        f.recent().latest(&db, 10).await.expect("latest"),
        strings(&["e", "d", "c"])
    );
    assert!(
        f.recent()
            .latest(&db, 0)
            .await
            .expect("latest 0")
            .is_empty()
    );
    assert_eq!(
        f.recent()
            .latest(&db, usize::MAX)
            .await
            .expect("latest all"),
        strings(&["e", "d", "c"])
    );

    // load reads what another client wrote.
    json_set(&mut raw, &key, "$.recent", r#"["x","y"]"#).await;
    assert_eq!(
        f.recent().load(&db).await.expect("load").to_vec(),
        strings(&["x", "y"])
    );
    assert_eq!(f.recent.to_vec(), strings(&["x", "y"]));

    f.recent().clear(&db).await.expect("clear");
    assert_eq!(
        read(&mut raw, &key, "$.recent").await,
        serde_json::json!([])
    );
    assert!(f.recent.is_empty());
    assert_eq!(f.recent().len(&db).await.expect("len"), 0);
    assert!(f.recent().latest(&db, 3).await.expect("latest").is_empty());

    // Only the field changed: the rest of the document is as saved.
    let back = Feed::get(&db, "ops").await.expect("get");
    assert_eq!(back, f);
}

#[tokio::test]
async fn a_buffer_of_one_keeps_only_the_last_item() {
    let db = db().await;
    let mut raw = raw().await;
    let mut f = feed("one");
    f.save(&db).await.expect("save");
    let key = db.key(&f.key());
    for i in 0..5 {
        assert_eq!(f.last().push(&db, i).await.expect("push"), 1);
        assert_eq!(read(&mut raw, &key, "$.last").await, serde_json::json!([i]));
        assert_eq!(f.last.to_vec(), vec![i]);
    }
    assert_eq!(
        f.last().push_many(&db, [7, 8, 9]).await.expect("push_many"),
        1
    );
    assert_eq!(read(&mut raw, &key, "$.last").await, serde_json::json!([9]));
    assert_eq!(f.last().latest(&db, 5).await.expect("latest"), vec![9]);
}

#[tokio::test]
async fn push_many_keeps_the_newest_n_of_the_buffer_and_the_batch() {
    let db = db().await;
    let mut raw = raw().await;
    let mut f = feed("many");
    f.save(&db).await.expect("save");
    let key = db.key(&f.key());

    f.recent().push(&db, "old").await.expect("push");
    let batch: Vec<String> = (0..10).map(|i| format!("b{i}")).collect();
    assert_eq!(
        f.recent().push_many(&db, batch).await.expect("push_many"),
        3
    );
    assert_eq!(
        stored_recent(&mut raw, &key).await,
        strings(&["b7", "b8", "b9"])
    );
    assert_eq!(
        f.recent()
            .push_many(&db, strings(&["c1", "c2"]))
            .await
            .expect("two"),
        3
    );
    assert_eq!(
        stored_recent(&mut raw, &key).await,
        strings(&["b9", "c1", "c2"])
    );
    assert_eq!(f.recent.to_vec(), strings(&["b9", "c1", "c2"]));
    // A batch of exactly N replaces everything; an empty batch changes nothing.
    f.recent()
        .push_many(&db, strings(&["x", "y", "z"]))
        .await
        .expect("three");
    assert_eq!(
        stored_recent(&mut raw, &key).await,
        strings(&["x", "y", "z"])
    );
    assert_eq!(
        f.recent().push_many(&db, Vec::new()).await.expect("none"),
        3
    );
    assert_eq!(
        stored_recent(&mut raw, &key).await,
        strings(&["x", "y", "z"])
    );
    // 10,000 items in one call: only the newest 3 travel and stay.
    let big: Vec<String> = (0..10_000).map(|i| format!("n{i}")).collect();
    f.recent().push_many(&db, big).await.expect("big");
    assert_eq!(
        stored_recent(&mut raw, &key).await,
        strings(&["n9997", "n9998", "n9999"])
    );
}

#[tokio::test]
async fn an_array_longer_than_n_loads_whole_and_the_next_push_trims_it() {
    let db = db().await;
    let mut raw = raw().await;
    let f = feed("long");
    f.save(&db).await.expect("save");
    let key = db.key(&f.key());
    // Written by another client (or saved when N was larger).
    json_set(&mut raw, &key, "$.recent", r#"["1","2","3","4","5","6"]"#).await;
    let mut f = Feed::get(&db, "long").await.expect("get");
    assert_eq!(f.recent.len(), 6, "reading keeps everything stored");
    assert_eq!(
        f.recent().latest(&db, 4).await.expect("latest"),
        strings(&["6", "5", "4", "3"])
    );
    assert_eq!(f.recent().push(&db, "7").await.expect("push"), 3);
    assert_eq!(
        stored_recent(&mut raw, &key).await,
        strings(&["5", "6", "7"])
    );
    assert_eq!(f.recent.to_vec(), strings(&["5", "6", "7"]));

    // An empty push_many trims too.
    json_set(&mut raw, &key, "$.recent", r#"["1","2","3","4","5","6"]"#).await;
    assert_eq!(
        f.recent().push_many(&db, Vec::new()).await.expect("trim"),
        3
    );
    assert_eq!(
        stored_recent(&mut raw, &key).await,
        strings(&["4", "5", "6"])
    );

    // Saving a loaded over-long buffer writes it as it is (nothing dropped by a read).
    json_set(&mut raw, &key, "$.recent", r#"["1","2","3","4"]"#).await;
    let f = Feed::get(&db, "long").await.expect("get");
    f.save(&db).await.expect("save");
    assert_eq!(
        stored_recent(&mut raw, &key).await,
        strings(&["1", "2", "3", "4"])
    );
}

#[tokio::test]
async fn hostile_items_round_trip_exactly() {
    let db = db().await;
    let mut raw = raw().await;
    let mut f = feed("hostile");
    f.save(&db).await.expect("save");
    let key = db.key(&f.key());
    let mega = "x\"'[]{}\\".repeat(1024 * 1024 / 8);
    let hostile = [
        "",
        "\"",
        "'",
        "a'] or 1==1 --",
        r#"{"json": [1, 2]}"#,
        "[\"$.recent\"]",
        "line\nbreak\r\t\u{0}",
        "redis.call('FLUSHALL')",
        "@tag:{x} | -y",
        "😀 emoji 中",
        mega.as_str(),
    ];
    for item in hostile {
        f.recent().push(&db, item).await.expect("push");
        let stored = stored_recent(&mut raw, &key).await;
        assert_eq!(stored.last().map(String::as_str), Some(item));
        assert_eq!(f.recent.to_vec(), stored);
        assert_eq!(
            f.recent().latest(&db, 1).await.expect("latest"),
            strings(&[item])
        );
    }
    // JSON values stay values, not text.
    f.raw()
        .push_many(
            &db,
            [
                serde_json::json!({"a": "\"]", "b": [null, true]}),
                serde_json::json!("}{"),
            ],
        )
        .await
        .expect("values");
    assert_eq!(
        read(&mut raw, &key, "$.raw").await,
        serde_json::json!([{"a": "\"]", "b": [null, true]}, "}{"])
    );
}

#[tokio::test]
async fn failures_are_typed_and_leave_the_document_byte_identical() {
    let db = db().await;
    let mut raw = raw().await;

    // A model that is not stored: NotFound, and nothing is created.
    let mut ghost = feed("ghost");
    match ghost.recent().push(&db, "x").await {
        Err(Error::NotFound { key }) => assert_eq!(key, db.key(&ghost.key())),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(dump(&mut raw, &db.key(&ghost.key())).await.is_none());
    assert!(matches!(
        ghost.recent().latest(&db, 1).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        ghost.recent().len(&db).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        ghost.recent().clear(&db).await,
        Err(Error::NotFound { .. })
    ));

    // The field holds another JSON type: TypeMismatch naming key and path.
    let mut f = feed("typed");
    f.recent.push("kept".to_string());
    f.save(&db).await.expect("save");
    let key = db.key(&f.key());
    json_set(&mut raw, &key, "$.recent", r#""not an array""#).await;
    let before = dump(&mut raw, &key).await;
    let local = f.recent.clone();
    for outcome in [
        f.recent().push(&db, "x").await,
        f.recent().push_many(&db, strings(&["x", "y"])).await,
        f.recent().push_many(&db, Vec::new()).await,
        f.recent().len(&db).await,
    ] {
        match outcome {
            Err(Error::TypeMismatch {
                key: k,
                path,
                expected,
                found,
            }) => {
                assert_eq!((k.as_str(), path.as_str()), (key.as_str(), "$.recent"));
                assert_eq!((expected.as_str(), found.as_str()), ("a list", "string"));
            }
            other => panic!("expected TypeMismatch, got {other:?}"),
        }
    }
    assert!(matches!(
        f.recent().latest(&db, 2).await,
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        f.recent().clear(&db).await,
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(dump(&mut raw, &key).await, before, "byte-identical");
    assert_eq!(f.recent, local, "the local copy is unchanged");

    // A key of another Redis type.
    let mut other = feed("other");
    let other_key = db.key(&other.key());
    let _: () = redis::cmd("SET")
        .arg(&other_key)
        .arg("plain")
        .query_async(&mut raw)
        .await
        .expect("SET");
    assert!(matches!(
        other.recent().push(&db, "x").await,
        Err(Error::TypeMismatch { .. })
    ));
    let plain: String = redis::cmd("GET")
        .arg(&other_key)
        .query_async(&mut raw)
        .await
        .expect("GET");
    assert_eq!(plain, "plain");

    // Values that cannot be stored as given are refused before anything is sent, even when
    // only the newest N of the batch would travel.
    let mut f = feed("values");
    f.save(&db).await.expect("save");
    let key = db.key(&f.key());
    let before = dump(&mut raw, &key).await;
    match f.readings().push(&db, f64::NAN).await {
        Err(Error::NonFinite { key: k, path }) => {
            assert_eq!((k.as_str(), path.as_str()), (key.as_str(), "$.readings"));
        }
        other => panic!("expected NonFinite, got {other:?}"),
    }
    let batch = [f64::INFINITY, 1.0, 2.0, 3.0, 4.0, 5.0];
    assert!(matches!(
        f.readings().push_many(&db, batch).await,
        Err(Error::NonFinite { .. })
    ));
    let deep = common::nested(130);
    assert!(matches!(
        f.raw().push(&db, deep).await,
        Err(Error::InvalidOp { .. })
    ));
    assert_eq!(dump(&mut raw, &key).await, before, "byte-identical");
    assert!(f.readings.is_empty() && f.raw.is_empty());
    // Finite floats go through exactly.
    f.readings()
        .push_many(&db, [0.1, -2.5e-7, 1e15])
        .await
        .expect("floats");
    assert_eq!(
        read(&mut raw, &key, "$.readings").await,
        serde_json::json!([0.1, -2.5e-7, 1e15])
    );
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Touched", ttl = 60)]
struct Touched {
    #[rapyer(key)]
    id: String,
    recent: CircularBuffer<String, 2>,
}

#[tokio::test]
async fn a_push_rearms_the_models_expiry() {
    let db = db().await;
    let mut raw = raw().await;
    let mut t = Touched {
        id: "t".into(),
        recent: CircularBuffer::new(),
    };
    t.save(&db).await.expect("save");
    let key = db.key(&t.key());
    let _: () = redis::cmd("PEXPIRE")
        .arg(&key)
        .arg(5_000)
        .query_async(&mut raw)
        .await
        .expect("PEXPIRE");
    t.recent().push(&db, "x").await.expect("push");
    assert!(common::pttl(&mut raw, &key).await > 5_000);
    // And in a block.
    let _: () = redis::cmd("PEXPIRE")
        .arg(&key)
        .arg(5_000)
        .query_async(&mut raw)
        .await
        .expect("PEXPIRE");
    t.atomic(&db, |m| {
        m.recent().push("y");
    })
    .await
    .expect("atomic");
    assert!(common::pttl(&mut raw, &key).await > 5_000);
    assert_eq!(t.recent.to_vec(), strings(&["x", "y"]));
}

#[tokio::test]
async fn the_buffer_is_copied_and_deleted_with_its_document() {
    let db = db().await;
    let mut raw = raw().await;
    let mut f = feed("orig");
    f.save(&db).await.expect("save");
    f.recent()
        .push_many(&db, strings(&["a", "b", "c", "d"]))
        .await
        .expect("push");
    ServerOps::scope(&db, |ops| {
        ops.copy_model(f.server_ref(), "copy");
    })
    .await
    .expect("copy");
    let copy = Feed::get(&db, "copy").await.expect("the copy");
    assert_eq!(copy.recent.to_vec(), strings(&["b", "c", "d"]));
    assert_eq!(
        stored_recent(&mut raw, &db.key(&copy.key())).await,
        strings(&["b", "c", "d"])
    );
    f.delete(&db).await.expect("delete");
    assert!(
        dump(&mut raw, &db.key(&f.key())).await.is_none(),
        "one key, gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_keep_exactly_the_newest_n_in_server_order() {
    const TASKS: usize = 32;
    const EACH: usize = 25;
    #[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[rapyer(prefix = "Busy")]
    struct Busy {
        #[rapyer(key)]
        id: String,
        recent: CircularBuffer<String, 8>,
    }
    let db = db().await;
    let busy = Busy {
        id: "b".into(),
        recent: CircularBuffer::new(),
    };
    busy.save(&db).await.expect("save");
    let key = db.key(&busy.key());

    // A watcher reads the length with plain JSON.ARRLEN during the whole run.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (done, key) = (done.clone(), key.clone());
        tokio::spawn(async move {
            let mut raw = raw().await;
            let mut reads = 0usize;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let len: Vec<Option<usize>> = redis::cmd("JSON.ARRLEN")
                    .arg(&key)
                    .arg("$.recent")
                    .query_async(&mut raw)
                    .await
                    .expect("JSON.ARRLEN");
                assert!(len[0].is_some_and(|n| n <= 8), "length {len:?} beyond N");
                reads += 1;
            }
            reads
        })
    };
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let db = db.clone();
        let mut mine = busy.clone();
        tasks.push(tokio::spawn(async move {
            // For each push, the buffer right after it: its item last, and the pushes just
            // before it in server order before that.
            let mut seen = Vec::new();
            for i in 0..EACH {
                let item = format!("t{t}-{i}");
                mine.recent().push(&db, item.clone()).await.expect("push");
                assert_eq!(mine.recent.last(), Some(&item));
                seen.push(mine.recent.to_vec());
            }
            seen
        }));
    }
    let mut after_each = Vec::new();
    for task in tasks {
        after_each.extend(task.await.expect("task"));
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(watcher.await.expect("watcher") > 0);

    // Each push names its predecessor in server order: chain them from the first one.
    let mut next = std::collections::HashMap::new();
    let mut first = Vec::new();
    for state in &after_each {
        assert!(state.len() <= 8);
        let item = state.last().expect("the pushed item").clone();
        match state.len().checked_sub(2).map(|i| state[i].clone()) {
            Some(before) => assert!(next.insert(before, item).is_none(), "two successors"),
            None => first.push(item),
        }
    }
    assert_eq!(first.len(), 1, "exactly one push found the buffer empty");
    let mut order = vec![first[0].clone()];
    while let Some(n) = next.get(order.last().expect("non-empty")) {
        order.push(n.clone());
    }
    assert_eq!(
        order.len(),
        TASKS * EACH,
        "every push, once, in one server order"
    );
    // Each task's own pushes are in its order.
    for t in 0..TASKS {
        let mine: Vec<&String> = order
            .iter()
            .filter(|s| s.starts_with(&format!("t{t}-")))
            .collect();
        let expected: Vec<String> = (0..EACH).map(|i| format!("t{t}-{i}")).collect();
        assert_eq!(mine.into_iter().cloned().collect::<Vec<_>>(), expected);
    }
    let stored = Busy::get(&db, "b").await.expect("get").recent.to_vec();
    assert_eq!(
        stored,
        order[order.len() - 8..].to_vec(),
        "the newest 8 of all pushes"
    );
}

#[tokio::test]
async fn blocks_push_in_the_same_all_or_nothing_script() {
    let db = db().await;
    let mut raw = raw().await;
    let mut f = feed("block");
    f.recent.extend(strings(&["a", "b"]));
    f.tasks = strings(&["t1"]);
    f.save(&db).await.expect("save");
    let key = db.key(&f.key());
    let r = Feed::server_ref_for("block");

    let (seen, len, many) = ServerOps::scope(&db, |ops| {
        let seen = ops.incr(r.seen(), 1);
        let len = ops.push_into(r.recent(), "c");
        let many = ops.push_many_into(r.last(), [1, 2, 3]);
        ops.push_into(r.recent(), "d");
        (seen, len, many)
    })
    .await
    .expect("block");
    assert_eq!((seen, len, many), (Some(1), Some(3), Some(1)));
    assert_eq!(
        stored_recent(&mut raw, &key).await,
        strings(&["b", "c", "d"])
    );
    assert_eq!(read(&mut raw, &key, "$.last").await, serde_json::json!([3]));
    assert_eq!(read(&mut raw, &key, "$.seen").await, serde_json::json!(1));

    // A model's atomic block writes the buffer back into the local model.
    let len = f
        .atomic(&db, |m| {
            m.recent().push_many(strings(&["x", "y"]));
            m.tasks().append("t2");
            m.recent().push("z")
        })
        .await
        .expect("atomic");
    assert_eq!(len, Some(3));
    assert_eq!(f.recent.to_vec(), strings(&["x", "y", "z"]));
    assert_eq!(
        stored_recent(&mut raw, &key).await,
        strings(&["x", "y", "z"])
    );
    assert_eq!(f.tasks, strings(&["t1", "t2"]));

    // An array already longer than N is cut at the block's push; pushes in one block see each
    // other; a larger batch keeps its newest N.
    json_set(&mut raw, &key, "$.recent", r#"["1","2","3","4","5"]"#).await;
    let batch: Vec<String> = (0..7).map(|i| format!("b{i}")).collect();
    ServerOps::scope(&db, |ops| {
        ops.push_into(r.recent(), "6");
        ops.push_many_into(r.recent(), batch);
        ops.push_many_into(r.recent(), Vec::new());
    })
    .await
    .expect("block");
    assert_eq!(
        stored_recent(&mut raw, &key).await,
        strings(&["b4", "b5", "b6"])
    );
    json_set(&mut raw, &key, "$.recent", r#"["1","2","3","4","5"]"#).await;
    ServerOps::scope(&db, |ops| {
        ops.push_into(r.recent(), "6");
    })
    .await
    .expect("block");
    assert_eq!(
        stored_recent(&mut raw, &key).await,
        strings(&["4", "5", "6"])
    );

    // Whole-value operations: replace, clear, assign between buffers of one type.
    f.atomic(&db, |m| {
        m.recent().replace(strings(&["r"]).into_iter().collect());
    })
    .await
    .expect("replace");
    assert_eq!(stored_recent(&mut raw, &key).await, strings(&["r"]));
    f.atomic(&db, |m| {
        m.recent().clear();
    })
    .await
    .expect("clear");
    assert!(f.recent.is_empty());
    assert_eq!(stored_recent(&mut raw, &key).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_failing_block_that_pushed_leaves_the_document_byte_identical() {
    let db = db().await;
    let mut raw = raw().await;
    let mut f = feed("fail");
    f.recent.extend(strings(&["a", "b", "c"]));
    f.save(&db).await.expect("save");
    let key = db.key(&f.key());
    let r = Feed::server_ref_for("fail");
    let before = dump(&mut raw, &key).await;

    // The push runs (and would trim), then a later operation fails.
    let outcome = ServerOps::scope(&db, |ops| {
        ops.push_into(r.recent(), "d");
        ops.incr(r.seen(), 1);
        ops.pop(r.tasks()); // the list is empty: IndexOutOfRange
    })
    .await;
    match outcome {
        Err(Error::Block { op, source }) => {
            assert_eq!(op, 2);
            assert!(
                matches!(*source, Error::IndexOutOfRange { .. }),
                "{source:?}"
            );
        }
        other => panic!("expected a Block error, got {other:?}"),
    }
    assert_eq!(dump(&mut raw, &key).await, before, "byte-identical");

    // The same in a model's atomic block: the local model stays as it was.
    let local = f.clone();
    let outcome = f
        .atomic(&db, |m| {
            m.recent().push_many(strings(&["x", "y", "z"]));
            m.tasks().pop();
        })
        .await;
    assert!(
        matches!(outcome, Err(Error::Block { op: 1, .. })),
        "{outcome:?}"
    );
    assert_eq!(dump(&mut raw, &key).await, before, "byte-identical");
    assert_eq!(f, local);

    // A push into a field of another JSON type fails the block where it stands.
    json_set(&mut raw, &key, "$.last", r#"{"not": "an array"}"#).await;
    let before = dump(&mut raw, &key).await;
    let outcome = ServerOps::scope(&db, |ops| {
        ops.push_into(r.recent(), "d");
        ops.push_into(r.last(), 5);
    })
    .await;
    match outcome {
        Err(Error::Block { op: 1, source }) => match *source {
            Error::TypeMismatch { path, found, .. } => {
                assert_eq!((path.as_str(), found.as_str()), ("$.last", "object"));
            }
            other => panic!("expected TypeMismatch, got {other:?}"),
        },
        other => panic!("expected a Block error, got {other:?}"),
    }
    assert_eq!(dump(&mut raw, &key).await, before, "byte-identical");

    // A missing model, and values refused before sending.
    let ghost = Feed::server_ref_for("ghost");
    let outcome = ServerOps::scope(&db, |ops| {
        ops.push_into(ghost.recent(), "x");
    })
    .await;
    assert!(
        matches!(&outcome, Err(Error::Block { op: 0, source }) if matches!(**source, Error::NotFound { .. })),
        "{outcome:?}"
    );
    assert!(
        dump(&mut raw, &db.key(&feed("ghost").key()))
            .await
            .is_none()
    );
    let outcome = ServerOps::scope(&db, |ops| {
        ops.push_into(r.recent(), "x");
        ops.push_many_into(r.readings(), [f64::NAN, 1.0, 2.0, 3.0, 4.0]);
    })
    .await;
    assert!(
        matches!(&outcome, Err(Error::Block { op: 1, source }) if matches!(**source, Error::NonFinite { .. })),
        "{outcome:?}"
    );
    let outcome = ServerOps::scope(&db, |ops| {
        ops.push_into(r.raw(), common::nested(130));
    })
    .await;
    assert!(
        matches!(&outcome, Err(Error::Block { op: 0, source }) if matches!(**source, Error::InvalidOp { .. })),
        "{outcome:?}"
    );
    assert_eq!(dump(&mut raw, &key).await, before, "byte-identical");
}

#[tokio::test]
async fn a_push_block_script_depends_on_no_item_capacity_or_key() {
    let db = db().await;
    for id in ["s1", "s2"] {
        feed(id).save(&db).await.expect("save");
    }
    let lua = ServerOps::explain(|ops| {
        ops.push_into(Feed::server_ref_for("s1").recent(), "secret-item");
    });
    assert!(lua.contains("op_buffer_push"));
    assert!(!lua.contains("secret-item") && !lua.contains("s1"));
    // Items, capacities (3 and 1) and keys travel in ARGV: one script for all of these.
    let before = db.scripts().block_count();
    for (id, item) in [("s1", "a'\"]"), ("s2", "b\n{")] {
        let r = Feed::server_ref_for(id);
        ServerOps::scope(&db, |ops| {
            ops.push_into(r.recent(), item);
        })
        .await
        .expect("push");
        ServerOps::scope(&db, |ops| {
            ops.push_into(r.last(), 7);
        })
        .await
        .expect("push");
    }
    assert_eq!(db.scripts().block_count(), before + 1);
}

/// `JSON.ARRLEN key path`, as the plain command answers it.
async fn arrlen(raw: &mut Raw, key: &str, path: &str) -> Vec<Option<i64>> {
    redis::cmd("JSON.ARRLEN")
        .arg(key)
        .arg(path)
        .query_async(raw)
        .await
        .expect("JSON.ARRLEN")
}

#[tokio::test]
async fn length_conditions_on_lists_and_buffers_see_what_the_block_did_before() {
    let db = db().await;
    let mut raw = raw().await;
    let mut f = feed("len");
    f.recent.extend(strings(&["a", "b"]));
    f.tasks = strings(&["t1", "t2"]);
    f.save(&db).await.expect("save");
    let key = db.key(&f.key());
    let r = Feed::server_ref_for("len");

    // A bounded append: the second condition sees the first append (the list is only
    // appended to and measured: never read whole).
    let (first, second, third) = ServerOps::scope(&db, |ops| {
        let first = ops.when(r.tasks().len().lt(3));
        let first = first
            .then(|ops| {
                ops.append(r.tasks(), "t3".to_string());
            })
            .out();
        let second = ops
            .when(r.tasks().len().lt(3))
            .then(|ops| {
                ops.append(r.tasks(), "never".to_string());
            })
            .otherwise(|ops| {
                ops.incr(r.seen(), 1);
            });
        let third = ops.when(r.tasks().len().eq(3) & r.tasks().len().ge(3) & r.tasks().len().le(3));
        let third = third
            .then(|ops| {
                ops.incr(r.seen(), 10);
            })
            .out();
        (first, second, third)
    })
    .await
    .expect("block");
    assert_eq!(
        (first, second, third),
        (Some(true), Some(false), Some(true))
    );
    assert_eq!(arrlen(&mut raw, &key, "$.tasks").await, vec![Some(3)]);
    assert_eq!(
        read(&mut raw, &key, "$.tasks").await,
        serde_json::json!(["t1", "t2", "t3"])
    );
    assert_eq!(read(&mut raw, &key, "$.seen").await, serde_json::json!(11));
    let lua = ServerOps::explain(|ops| {
        ops.when(r.tasks().len().lt(3)).then(|ops| {
            ops.append(r.tasks(), "x".to_string());
        });
    });
    assert!(
        lua.contains("list_len") && lua.contains("push_only"),
        "{lua}"
    );
    assert!(
        !lua.contains("local function push_read("),
        "the list is never read whole"
    );

    // A list the block also pops from is measured in the block's overlay; a buffer's length
    // counts what a push kept (never more than N).
    let (popped, after_pop, full) = ServerOps::scope(&db, |ops| {
        let popped = ops.pop(r.tasks());
        let after_pop = ops.when(r.tasks().len().eq(2) & r.tasks().len().ne(3));
        let after_pop = after_pop
            .then(|ops| {
                ops.push_many_into(r.recent(), ["c", "d", "e"].map(String::from));
            })
            .out();
        let full = ops.when(r.recent().len().eq(3) & r.recent().len().gt(2));
        let full = full
            .then(|ops| {
                ops.incr(r.seen(), 100);
            })
            .out();
        (popped, after_pop, full)
    })
    .await
    .expect("block");
    assert_eq!(
        (popped, after_pop, full),
        (Some("t3".to_string()), Some(true), Some(true))
    );
    assert_eq!(arrlen(&mut raw, &key, "$.recent").await, vec![Some(3)]);
    assert_eq!(read(&mut raw, &key, "$.seen").await, serde_json::json!(111));

    // The model's own atomic block: `m.recent().len()`, the result written back locally.
    f.seen = 111;
    let pushed = f
        .atomic(&db, |m| {
            m.when(m.recent().len().ge(3) & m.tasks().len().lt(5))
                .then(|ops| {
                    ops.incr(m.seen(), 1);
                    ops.push_into(m.recent(), "z");
                })
                .out()
        })
        .await
        .expect("atomic");
    assert_eq!(pushed, Some(true));
    assert_eq!(f.seen, 112);
    assert_eq!(f.recent.to_vec(), strings(&["d", "e", "z"]));
    assert_eq!(
        stored_recent(&mut raw, &key).await,
        strings(&["d", "e", "z"])
    );

    // Elements that a naive split would miscount (commas, quotes, escapes, brackets, nested
    // arrays and objects, emoji, empty): measured right on both paths.
    json_set(
        &mut raw,
        &key,
        "$.tasks",
        r#"["a,b", "\"", "\\", "[1,2]", "{", "]", "😀", "", "a\",\"b"]"#,
    )
    .await;
    json_set(
        &mut raw,
        &key,
        "$.raw",
        r#"[[1, [2, 3], "]"], {"a": [4, "}"]}]"#,
    )
    .await;
    let measured = ServerOps::scope(&db, |ops| {
        ops.when(r.tasks().len().eq(9) & r.raw().len().eq(2))
            .then(|ops| {
                ops.append(r.tasks(), ",".to_string());
            })
            .out()
    })
    .await
    .expect("block");
    assert_eq!(measured, Some(true));
    // Read into the block (a set, a push), then measured.
    let overlay = ServerOps::scope(&db, |ops| {
        ops.set(r.tasks().at(0), ",".to_string());
        ops.push_into(r.raw(), serde_json::json!(["[,]", {"}": "{"}]));
        ops.when(r.tasks().len().eq(10) & r.raw().len().eq(2))
            .then(|_| {})
            .out()
    })
    .await
    .expect("block");
    assert_eq!(overlay, Some(true));
    assert_eq!(arrlen(&mut raw, &key, "$.tasks").await, vec![Some(10)]);

    // An array stored longer than N (written by hand) is measured as it is.
    json_set(&mut raw, &key, "$.recent", r#"["1","2","3","4","5"]"#).await;
    let long = ServerOps::scope(&db, |ops| {
        ops.when(r.recent().len().eq(5)).then(|_| {}).out()
    })
    .await
    .expect("block");
    assert_eq!(long, Some(true));
}

#[tokio::test]
async fn a_length_condition_on_a_missing_or_mistyped_list_fails_typed_and_writes_nothing() {
    let db = db().await;
    let mut raw = raw().await;
    let mut f = feed("badlen");
    f.tasks = strings(&["t"]);
    f.save(&db).await.expect("save");
    let key = db.key(&f.key());
    let r = Feed::server_ref_for("badlen");

    // A missing model: NotFound, named by the condition's operation; nothing created.
    let ghost = Feed::server_ref_for("ghost");
    for only_measured in [true, false] {
        let outcome = ServerOps::scope(&db, |ops| {
            ops.incr(r.seen(), 1);
            if !only_measured {
                ops.append(ghost.tasks(), "x".to_string());
                ops.set(ghost.tasks().at(0), "y".to_string());
            }
            ops.when(ghost.tasks().len().gt(0)).then(|ops| {
                ops.append(ghost.tasks(), "x".to_string());
            });
        })
        .await;
        match outcome {
            Err(Error::Block { source, .. }) => {
                assert!(matches!(*source, Error::NotFound { .. }), "{source:?}");
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
    }
    assert!(dump(&mut raw, &db.key("Feed:{feed}:ghost")).await.is_none());
    assert_eq!(read(&mut raw, &key, "$.seen").await, serde_json::json!(0));

    // Another JSON type at the list (written by hand), then no list at all: a typed
    // failure naming the list's path, the document byte-identical (DUMP).
    for (hostile, found) in [
        (Some(r#"{"a'] or 1==1 --": "\n\u0000😀"}"#), "object"),
        (Some(r#""[1, 2, 3]""#), "string"),
        (None, "nothing"),
    ] {
        match hostile {
            Some(value) => json_set(&mut raw, &key, "$.tasks", value).await,
            None => {
                let _: i64 = redis::cmd("JSON.DEL")
                    .arg(&key)
                    .arg("$.tasks")
                    .query_async(&mut raw)
                    .await
                    .expect("JSON.DEL");
            }
        }
        let before = dump(&mut raw, &key).await;
        for only_measured in [true, false] {
            let outcome = ServerOps::scope(&db, |ops| {
                ops.push_into(r.recent(), "x");
                ops.when(r.tasks().len().ge(0)).then(|ops| {
                    ops.incr(r.seen(), 1);
                    if !only_measured {
                        ops.clear(r.tasks());
                    }
                });
            })
            .await;
            match outcome {
                Err(Error::Block { op: 1, source }) => match *source {
                    Error::TypeMismatch {
                        key: k,
                        path,
                        found: f,
                        ..
                    } => {
                        assert_eq!((k.as_str(), path.as_str()), (key.as_str(), "$.tasks"));
                        assert_eq!(f, found);
                    }
                    other => panic!("expected TypeMismatch, got {other:?}"),
                },
                other => panic!("expected a Block error, got {other:?}"),
            }
            assert_eq!(dump(&mut raw, &key).await, before, "byte-identical");
        }
    }

    // A key of another Redis type.
    let _: () = redis::cmd("SET")
        .arg(db.key("Feed:{feed}:str"))
        .arg("not json")
        .query_async(&mut raw)
        .await
        .expect("SET");
    let s = Feed::server_ref_for("str");
    let outcome = ServerOps::scope(&db, |ops| {
        ops.when(s.recent().len().eq(0)).then(|_| {});
    })
    .await;
    assert!(
        matches!(&outcome, Err(Error::Block { op: 0, source }) if matches!(**source, Error::TypeMismatch { .. })),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_tasks_appending_under_a_length_condition_never_pass_the_bound() {
    const TASKS: usize = 32;
    const EACH: usize = 5;
    const BOUND: usize = 10;
    let db = db().await;
    let mut raw = raw().await;
    feed("bounded").save(&db).await.expect("save");
    let key = db.key(&feed("bounded").key());
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let r = Feed::server_ref_for("bounded");
            let mut appended = 0;
            for n in 0..EACH {
                let held = ServerOps::scope(&db, |ops| {
                    ops.when(r.tasks().len().lt(BOUND))
                        .then(|ops| {
                            ops.append(r.tasks(), format!("{t}-{n}"));
                        })
                        .out()
                })
                .await
                .expect("block");
                appended += usize::from(held == Some(true));
            }
            appended
        }));
    }
    let mut appended = 0;
    for task in tasks {
        appended += task.await.expect("task");
    }
    assert_eq!(
        appended, BOUND,
        "exactly the bound's worth of blocks appended"
    );
    assert_eq!(
        arrlen(&mut raw, &key, "$.tasks").await,
        vec![Some(BOUND as i64)]
    );
}
