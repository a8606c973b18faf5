//! Scripts under faults, against the real server: a second connection flushing the script
//! cache in a tight loop, a server restart in the middle of a run, and a server busy with
//! a runaway script. These tests disturb the whole server, so they run one at a time and
//! live in their own test binary (with their own server).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use rapyer::script::NONE;
use rapyer::{Db, Error, Keys};
use redis::AsyncCommands;

use common::{Flusher, db, raw};

/// One disturbing test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const INCR: &str = "return redis.call('INCR', KEYS[1])";

async fn get_i64(raw: &mut redis::aio::MultiplexedConnection, key: &str) -> Option<i64> {
    raw.get(key).await.expect("GET")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_script_never_reports_noscript_under_a_flush_storm() {
    let _serial = SERIAL.lock().await;
    let db = db().await;
    let mut raw = raw().await;
    db.scripts()
        .define("incr", Keys::Fixed(1), INCR)
        .expect("define");
    let flusher = Flusher::start().await;
    let results: Vec<Result<i64, Error>> = futures_util::stream::iter(0..2_000)
        .map(|_| db.run_script::<i64>("incr", &["counter"], NONE))
        .buffer_unordered(8)
        .collect()
        .await;
    let flushes = flusher.stop().await;
    assert!(flushes > 20, "the flusher sent only {flushes} flushes");
    let failures: Vec<&Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failures.is_empty(), "calls failed: {failures:?}");
    assert_eq!(get_i64(&mut raw, &db.key("counter")).await, Some(2_000));
}

/// The transaction of the fault tests: the script increments the counter and a plain `SET`
/// writes the iteration's marker.
async fn counter_and_marker(db: &Db, i: u64) -> Result<Vec<redis::Value>, Error> {
    let mut tx = db.transaction();
    tx.run_script("incr", &["counter"], NONE);
    tx.cmd(
        redis::cmd("SET")
            .arg(db.key(&format!("marker:{i}")))
            .arg(i)
            .to_owned(),
    );
    tx.execute().await
}

/// The iterations whose marker is stored.
async fn applied_markers(raw: &mut redis::aio::MultiplexedConnection, db: &Db, n: u64) -> Vec<u64> {
    let keys: Vec<String> = (0..n).map(|i| db.key(&format!("marker:{i}"))).collect();
    let mut applied = Vec::new();
    for chunk in keys.chunks(500) {
        let values: Vec<Option<u64>> = raw.mget(chunk).await.expect("MGET");
        applied.extend(values.into_iter().flatten());
    }
    applied
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_are_all_or_nothing_under_a_flush_storm() {
    let _serial = SERIAL.lock().await;
    let db = db().await;
    let mut raw = raw().await;
    db.scripts()
        .define("incr", Keys::Fixed(1), INCR)
        .expect("define");
    let flusher = Flusher::start().await;
    let results: Vec<(u64, Result<Vec<redis::Value>, Error>)> =
        futures_util::stream::iter(0..2_000u64)
            .map(|i| {
                let db = &db;
                async move { (i, counter_and_marker(db, i).await) }
            })
            .buffer_unordered(8)
            .collect()
            .await;
    let flushes = flusher.stop().await;
    assert!(flushes > 20, "the flusher sent only {flushes} flushes");
    let failures: Vec<_> = results.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(failures.is_empty(), "transactions failed: {failures:?}");
    let applied = applied_markers(&mut raw, &db, 2_000).await;
    assert_eq!(applied, (0..2_000).collect::<Vec<u64>>(), "markers");
    assert_eq!(get_i64(&mut raw, &db.key("counter")).await, Some(2_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_keep_their_order_under_a_flush_storm() {
    let _serial = SERIAL.lock().await;
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
    let flusher = Flusher::start().await;
    let mut next = 0u64;
    for _ in 0..200 {
        let mut pipe = db.pipeline();
        for _ in 0..20 {
            if next.is_multiple_of(2) {
                pipe.run_script("push", &["list"], &[next]);
            } else {
                pipe.cmd(redis::cmd("RPUSH").arg(&list).arg(next).to_owned());
            }
            next += 1;
        }
        pipe.execute().await.expect("pipeline under flushes");
    }
    let flushes = flusher.stop().await;
    assert!(flushes > 20, "the flusher sent only {flushes} flushes");
    let stored: Vec<u64> = raw.lrange(&list, 0, -1).await.expect("LRANGE");
    assert_eq!(stored, (0..4_000).collect::<Vec<u64>>());
}

/// The server's run id: a new one after every restart.
async fn run_id(raw: &mut redis::aio::MultiplexedConnection) -> String {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(raw)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .expect("run_id in INFO")
        .trim()
        .to_string()
}

/// Whether `e` is a transport failure (the connection dropped, refused, or the server still
/// loading its data), as opposed to a script or command error.
fn is_transport(e: &Error) -> bool {
    match e {
        Error::Redis { source, .. } => {
            source.is_io_error()
                || source.is_connection_dropped()
                || source.is_connection_refusal()
                || source.is_timeout()
                || source.code() == Some("LOADING")
        }
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_run_costs_a_reload_and_never_half_applies() {
    let _serial = SERIAL.lock().await;
    let server = rapyer_testkit::server();
    assert!(
        server.is_owned(),
        "this test restarts the server, which it can only do to a server the testkit \
         started: unset REDIS_URL"
    );
    let db = db().await;
    db.scripts()
        .define("incr", Keys::Fixed(1), INCR)
        .expect("define");
    let before = run_id(&mut raw().await).await;

    const TRANSACTIONS: u64 = 2_000;
    let progress = Arc::new(AtomicU64::new(0));
    let restarter = {
        let progress = progress.clone();
        tokio::spawn(async move {
            while progress.load(Ordering::Relaxed) < 500 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            tokio::task::spawn_blocking(|| rapyer_testkit::server().restart())
                .await
                .expect("restart task")
        })
    };
    let script_calls = {
        let db = db.clone();
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            while progress.load(Ordering::Relaxed) < TRANSACTIONS {
                let outcome = db
                    .run_script::<i64>("incr", &["script-counter"], NONE)
                    .await;
                if outcome.is_err() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                outcomes.push(outcome);
            }
            outcomes
        })
    };
    let mut outcomes = BTreeMap::new();
    for i in 0..TRANSACTIONS {
        let outcome = counter_and_marker(&db, i).await;
        if outcome.is_err() {
            // While the server is down every call fails at once; pace the loop so the run
            // outlasts the restart.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        outcomes.insert(i, outcome);
        progress.store(i + 1, Ordering::Relaxed);
    }
    restarter
        .await
        .expect("restarter")
        .expect("the server restarted");
    let script_outcomes = script_calls.await.expect("script calls");

    let mut raw = raw().await;
    assert_ne!(run_id(&mut raw).await, before, "the server did not restart");
    let failed: Vec<(&u64, &Error)> = outcomes
        .iter()
        .filter_map(|(i, o)| o.as_ref().err().map(|e| (i, e)))
        .collect();
    let script_failed: Vec<&Error> = script_outcomes
        .iter()
        .filter_map(|o| o.as_ref().err())
        .collect();
    // Nothing but transport failures while the server was away: no NOSCRIPT, no script error.
    for (i, e) in &failed {
        assert!(is_transport(e), "transaction {i} failed with {e:?}");
    }
    for e in &script_failed {
        assert!(is_transport(e), "a script call failed with {e:?}");
    }
    assert!(!failed.is_empty(), "no call saw the restart");
    let last_failure = failed.last().map(|(i, _)| **i).unwrap_or(0);
    assert!(
        outcomes.range(last_failure + 1..).count() > 100,
        "too few transactions ran after the restart"
    );

    // Every transaction that returned Ok is fully applied, and the counter counts exactly
    // the applied ones. A transaction whose reply was lost with the connection may have
    // applied (at most the one in flight); it is applied whole or not at all.
    let applied = applied_markers(&mut raw, &db, TRANSACTIONS).await;
    let ok: Vec<u64> = outcomes
        .iter()
        .filter(|(_, o)| o.is_ok())
        .map(|(i, _)| *i)
        .collect();
    for i in &ok {
        assert!(
            applied.contains(i),
            "transaction {i} returned Ok but is not applied"
        );
    }
    let counter = get_i64(&mut raw, &db.key("counter")).await.unwrap_or(0);
    assert_eq!(counter, applied.len() as i64, "counter vs applied markers");
    let unreported = applied.len() - ok.len();
    assert!(
        unreported <= 1,
        "{unreported} transactions applied though their call failed"
    );
    let script_ok = script_outcomes.iter().filter(|o| o.is_ok()).count() as i64;
    let script_counter = get_i64(&mut raw, &db.key("script-counter"))
        .await
        .unwrap_or(0);
    assert!(
        script_counter == script_ok || script_counter == script_ok + 1,
        "script counter {script_counter} vs {script_ok} Ok calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_busy_with_a_runaway_script_is_a_typed_error() {
    let _serial = SERIAL.lock().await;
    let server = rapyer_testkit::server();
    let db = db().await;
    let mut raw = raw().await;
    let threshold: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("busy-reply-threshold")
        .query_async(&mut raw)
        .await
        .expect("CONFIG GET");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("busy-reply-threshold")
        .arg(100)
        .query_async(&mut raw)
        .await
        .expect("CONFIG SET");
    db.scripts()
        .define(
            "spin",
            Keys::Fixed(0),
            "local i = 0 while true do i = i + 1 end",
        )
        .expect("define");
    db.scripts()
        .define("incr", Keys::Fixed(1), INCR)
        .expect("define");
    db.scripts().preload().await.expect("preload");
    // Connections made before the server gets busy: one to be refused, one to kill.
    let other = Db::connect(server.url())
        .await
        .expect("connect")
        .with_namespace(db.namespace())
        .expect("a valid namespace");
    other
        .scripts()
        .define("incr", Keys::Fixed(1), INCR)
        .expect("define");
    let mut killer = common::raw().await;

    let spinning = {
        let db = db.clone();
        tokio::spawn(async move { db.run_script::<i64>("spin", NONE, NONE).await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Another connection: the server refuses it with BUSY while the script runs.
    let busy = other.run_script::<i64>("incr", &["counter"], NONE).await;
    let mut pipe = other.pipeline();
    pipe.run_script("incr", &["counter"], NONE);
    let busy_pipeline = pipe.execute().await;
    // Kill the script, then restore the setting.
    let _: () = redis::cmd("SCRIPT")
        .arg("KILL")
        .query_async(&mut killer)
        .await
        .expect("SCRIPT KILL");
    // The kill lands at the script's next hook; until then the server still answers BUSY.
    let mut restored = false;
    for _ in 0..100 {
        let set: redis::RedisResult<()> = redis::cmd("CONFIG")
            .arg("SET")
            .arg("busy-reply-threshold")
            .arg(&threshold[1])
            .query_async(&mut killer)
            .await;
        match set {
            Ok(()) => {
                restored = true;
                break;
            }
            Err(e) if e.code() == Some("BUSY") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("CONFIG SET: {e}"),
        }
    }
    assert!(restored, "the killed script never stopped");

    match busy {
        Err(Error::Busy { message }) => assert!(message.starts_with("BUSY"), "{message}"),
        other => panic!("expected Error::Busy, got {other:?}"),
    }
    match busy_pipeline {
        Err(Error::Busy { .. }) => {}
        other => panic!("expected Error::Busy from the pipeline, got {other:?}"),
    }
    match spinning.await.expect("spinning task") {
        Err(Error::Script { name, message }) => {
            assert_eq!(name, "spin");
            assert!(message.contains("killed"), "{message}");
        }
        other => panic!("expected the killed script's error, got {other:?}"),
    }
    // Nothing ran while busy, and the server serves again.
    assert_eq!(get_i64(&mut raw, &db.key("counter")).await, None);
    let n: i64 = other
        .run_script("incr", &["counter"], NONE)
        .await
        .expect("after the kill");
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_ops_blocks_never_split_under_a_flush_storm() {
    let _serial = SERIAL.lock().await;
    let flushes = common::bank::transfers(&db().await, true).await;
    assert!(flushes > 0, "the flusher never flushed");
}

/// The blocks' script cache is bounded by shapes: after a warm-up, 2,000 blocks over 2,000
/// distinct key pairs (and values) load no script. Serialized so no other test loads one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_ops_blocks_add_no_script_per_key() {
    use common::bank::Account;
    use rapyer::prelude::*;
    let _serial = SERIAL.lock().await;
    let db = db().await;
    let mut raw = raw().await;
    async fn cached(raw: &mut redis::aio::MultiplexedConnection) -> i64 {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(raw)
            .await
            .expect("INFO");
        info.lines()
            .find_map(|l| l.strip_prefix("number_of_cached_scripts:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("INFO memory has number_of_cached_scripts")
    }
    let block = |i: u32| {
        let db = db.clone();
        async move {
            let (a, b) = (
                Account::server_ref_for(2 * i),
                Account::server_ref_for(2 * i + 1),
            );
            Account::insert_many(
                &db,
                &[
                    Account {
                        id: 2 * i,
                        balance: i as i64,
                    },
                    Account {
                        id: 2 * i + 1,
                        balance: 1,
                    },
                ],
            )
            .await
            .expect("insert");
            ServerOps::scope(&db, |ops| {
                ops.incr_by_field(a.balance(), b.balance());
                ops.when(a.balance().gt(i as i64)).then(|ops| {
                    ops.set(b.balance(), i as i64 * 7);
                });
            })
            .await
            .expect("block");
        }
    };
    block(0).await;
    let before = cached(&mut raw).await;
    for i in 1..=2_000 {
        block(i).await;
    }
    assert_eq!(cached(&mut raw).await - before, 0, "blocks added scripts");
    let last = Account::get(&db, 4001).await.expect("get");
    assert_eq!(last.balance, 14_000);
}

/// A model with fields for several kinds of block operation.
#[derive(
    rapyer::AtomicModel, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Default,
)]
#[rapyer(hash_tag = "shapes")]
struct Shape {
    #[rapyer(key)]
    id: u32,
    n: i64,
    m: i64,
    text: String,
    label: String,
}

/// The kinds of operation the shape tests combine, each applied on the server by a block
/// and to a local copy, to compare.
const KINDS: u32 = 6;

/// Adds operation `kind` to a block on the shape `id`.
fn add_op(ops: &rapyer::ops::Ops, id: u32, kind: u32, step: u32) {
    use rapyer::prelude::*;
    let s = Shape::server_ref_for(id);
    match kind {
        0 => drop(ops.incr(s.n(), 1)),
        1 => drop(ops.set(s.text(), format!("t{step}"))),
        2 => drop(ops.incr_by_field(s.n(), s.m())),
        3 => drop(ops.concat([s.text(), s.label()], s.label(), "+")),
        4 => drop(ops.swap(s.n(), s.m())),
        _ => drop(
            ops.when(s.n().ge(s.m()))
                .then(|ops| {
                    ops.assign(s.text(), s.label());
                })
                .out(),
        ),
    }
}

/// The same operation on a local copy.
fn apply_op(shape: &mut Shape, kind: u32, step: u32) {
    match kind {
        0 => shape.n += 1,
        1 => shape.text = format!("t{step}"),
        2 => shape.n += shape.m,
        3 => shape.label = format!("{}+{}", shape.text, shape.label),
        4 => std::mem::swap(&mut shape.n, &mut shape.m),
        _ => {
            if shape.n >= shape.m {
                shape.label = shape.text.clone();
            }
        }
    }
}

/// Stores a fresh shape `id`, runs the block of operation kinds `kinds` on it, and checks
/// the stored document against the same operations applied locally.
async fn run_shape(db: &Db, raw: &mut redis::aio::MultiplexedConnection, id: u32, kinds: &[u32]) {
    use rapyer::prelude::*;
    let mut local = Shape {
        id,
        n: 1,
        m: 3,
        text: "a".into(),
        label: "b".into(),
    };
    local.save(db).await.expect("save");
    ServerOps::scope(db, |ops| {
        for (step, kind) in kinds.iter().enumerate() {
            add_op(ops, id, *kind, step as u32);
        }
    })
    .await
    .unwrap_or_else(|e| panic!("block {kinds:?}: {e}"));
    for (step, kind) in kinds.iter().enumerate() {
        apply_op(&mut local, *kind, step as u32);
    }
    let stored = common::stored(raw, &db.key(&Shape::key_of(id))).await;
    let expected = serde_json::to_value(&local).expect("json");
    assert_eq!(stored, expected, "block {kinds:?} on {id}");
}

/// A number from `INFO memory`.
async fn memory_info(raw: &mut redis::aio::MultiplexedConnection, field: &str) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(raw)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO memory has no {field}"))
}

/// What the server's script caches take: the scripts' text and the Lua heap.
async fn script_memory(raw: &mut redis::aio::MultiplexedConnection) -> i64 {
    memory_info(raw, "used_memory_scripts_eval").await
        + memory_info(raw, "used_memory_vm_eval").await
}

async fn flush_scripts(raw: &mut redis::aio::MultiplexedConnection) {
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .arg("SYNC")
        .query_async(raw)
        .await
        .expect("SCRIPT FLUSH");
}

/// The operation kinds of distinct block number `i`: its digits in base [`KINDS`], so no
/// two blocks have the same sequence of operations.
fn sequence(i: u32) -> Vec<u32> {
    let (mut i, mut out) = (i + KINDS, Vec::new());
    while i > 0 {
        out.push(i % KINDS);
        i /= KINDS;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hundred_distinct_block_shapes_keep_the_server_script_memory_small() {
    let _serial = SERIAL.lock().await;
    let db = db().await;
    let mut raw = raw().await;
    flush_scripts(&mut raw).await;
    let before = script_memory(&mut raw).await;
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..400 {
        let kinds = sequence(i);
        assert!(seen.insert(kinds.clone()), "shape {i} repeats");
        run_shape(&db, &mut raw, i, &kinds).await;
        assert!(db.scripts().block_count() <= db.scripts().block_capacity());
    }
    let grown = script_memory(&mut raw).await - before;
    assert!(
        grown < 16 << 20,
        "400 block shapes grew the server's script memory by {grown} bytes"
    );
    let cached = memory_info(&mut raw, "number_of_cached_scripts").await;
    assert!(cached <= 64, "{cached} scripts cached for 400 block shapes");
    assert!(db.scripts().block_count() as i64 <= cached.max(1) + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k_identical_increments_for_every_k_run_two_scripts() {
    use rapyer::prelude::*;
    let _serial = SERIAL.lock().await;
    // A connection of its own, so a registry of its own.
    let db = db().await;
    let mut raw = raw().await;
    flush_scripts(&mut raw).await;
    Shape {
        id: 1,
        ..Shape::default()
    }
    .save(&db)
    .await
    .expect("save");
    let s = Shape::server_ref_for(1);
    for k in 1..=400i64 {
        ServerOps::scope(&db, |ops| {
            for _ in 0..k {
                ops.incr(s.n(), 1);
            }
        })
        .await
        .expect("block");
    }
    // One increment alone takes the flat plan, whose fast path (the library's one script for
    // every flat block) does it; two or more of one field take the interpreter, whose script
    // holds no count: two scripts, one of them a block script.
    assert_eq!(memory_info(&mut raw, "number_of_cached_scripts").await, 2);
    assert_eq!(db.scripts().block_count(), 1);
    let stored = common::stored(&mut raw, &db.key(&Shape::key_of(1))).await;
    assert_eq!(stored["n"], 400 * 401 / 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_block_script_cache_keeps_its_configured_bound_and_evicted_shapes_run_again() {
    let _serial = SERIAL.lock().await;
    // A connection of its own, so a registry of its own.
    let db = db().await;
    let mut raw = raw().await;
    assert_eq!(
        db.scripts().block_capacity(),
        rapyer::script::DEFAULT_BLOCK_CAPACITY
    );
    db.scripts().set_block_capacity(8);
    assert_eq!(db.scripts().block_capacity(), 8);
    // 50 blocks, each using another set of operation kinds: 50 scripts.
    let set = |mask: u32| {
        (0..KINDS)
            .filter(|k| mask & (1 << k) != 0)
            .collect::<Vec<u32>>()
    };
    for mask in 1..=50 {
        run_shape(&db, &mut raw, mask, &set(mask)).await;
        assert!(db.scripts().block_count() <= 8, "after set {mask}");
    }
    assert_eq!(db.scripts().block_count(), 8);
    // The first sets are long gone from the registry; with the server's copy flushed too,
    // they are rebuilt and sent again, and still correct.
    flush_scripts(&mut raw).await;
    for mask in 1..=4 {
        run_shape(&db, &mut raw, 100 + mask, &set(mask)).await;
    }
    assert!(db.scripts().block_count() <= 8);
    // Lowering the bound drops the least recently used at once.
    db.scripts().set_block_capacity(2);
    assert_eq!(db.scripts().block_count(), 2);
    run_shape(&db, &mut raw, 200, &set(63)).await;
    assert_eq!(db.scripts().block_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_scripts_are_cached_where_the_server_can_evict_them() {
    let _serial = SERIAL.lock().await;
    let db = db().await;
    let mut raw = raw().await;
    flush_scripts(&mut raw).await;
    // A block the interpreter runs (a flat block, each operation on a place of its own, runs
    // the library's fast script, loaded for good as every library script is).
    run_shape(&db, &mut raw, 1, &[0, 2]).await;
    assert_eq!(memory_info(&mut raw, "number_of_cached_scripts").await, 1);
    // Redis keeps 500 scripts cached by EVAL and evicts the oldest; a SCRIPT LOADed one
    // would stay and make 501.
    for i in 0..500 {
        let _: i64 = redis::cmd("EVAL")
            .arg(format!("return {i}"))
            .arg(0)
            .query_async(&mut raw)
            .await
            .expect("EVAL");
    }
    assert_eq!(memory_info(&mut raw, "number_of_cached_scripts").await, 500);
    // Named scripts are still loaded for good, and preload sends no block script.
    db.scripts()
        .define("incr", Keys::Fixed(1), INCR)
        .expect("define");
    let loaded = db.scripts().preload().await.expect("preload");
    assert_eq!(loaded, db.scripts().names().len());
    assert!(
        db.scripts()
            .names()
            .iter()
            .all(|n| !n.starts_with("rapyer.block."))
    );
    // The evicted block script comes back with the next block, which is still right.
    run_shape(&db, &mut raw, 2, &[2, 0]).await;
    flush_scripts(&mut raw).await;
}
