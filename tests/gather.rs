//! Gathered field calls (`ConnectOptions::gather_after`), against a server of each test's
//! own: field calls made at the same moment while another is in flight go out together, the
//! calls of one operation as one script call. Each caller still gets its own outcome (its
//! reply, or its own typed error naming its own key, the others unaffected and the failed
//! call's document untouched), every call runs exactly once, a call dropped before its
//! group goes out never runs, a group whose opening call is no longer polled still goes
//! out, and a refusal of the whole call (out of memory) is every caller's, each naming its
//! own key. Calls are made at the same moment by polling them together (`join_all`) or one
//! by one by hand, with writes held by `CLIENT PAUSE … WRITE` where a call must still be in
//! flight; how many script calls ran is read from the server (`INFO commandstats`).

mod common;

use std::future::Future;
use std::time::Duration;

use rapyer::prelude::*;
use rapyer::{ConnectOptions, Error};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// With an expiry: its string and list appends are then script calls too (a model without
/// one sends them as the bare commands, tests/bare.rs), which gather like increments.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Counter", ttl = 3600)]
struct Counter {
    #[rapyer(key)]
    id: String,
    n: i64,
    small: i8,
    text: String,
    tags: Vec<String>,
}

fn counter(id: &str) -> Counter {
    Counter {
        id: id.to_string(),
        n: 0,
        small: 0,
        text: String::new(),
        tags: Vec::new(),
    }
}

/// A server of the test's own, a `Db` on it with one connection (no dedicated ones) that
/// gathers once `after` calls are in flight, and a plain connection to check and to pause.
struct Setup {
    _server: rapyer_testkit::Server,
    db: Db,
    raw: redis::aio::MultiplexedConnection,
}

async fn setup(after: usize) -> Setup {
    let options = ConnectOptions::default()
        .direct_connections(0)
        .gather_after(after);
    let (server, db, raw) = common::own_db(options, "gather/").await;
    Setup {
        _server: server,
        db,
        raw,
    }
}

impl Setup {
    /// The script calls the server has run so far (`INFO commandstats`: `EVALSHA` and
    /// `EVAL`, each call once, whatever it runs inside).
    async fn script_calls(&mut self) -> u64 {
        let calls = common::command_calls(&mut self.raw).await;
        ["evalsha", "eval"]
            .iter()
            .filter_map(|name| calls.get(*name))
            .sum()
    }

    /// Stores `Counter:bad`, whose `n` holds a string: the typed failure of one call among
    /// many.
    async fn save_bad(&mut self) {
        let _: () = redis::cmd("JSON.SET")
            .arg("gather/Counter:bad")
            .arg("$")
            .arg(json!({"id": "bad", "n": "text", "small": 0, "text": "", "tags": []}).to_string())
            .query_async(&mut self.raw)
            .await
            .expect("JSON.SET");
    }

    /// Holds every write command of every other client until [`Setup::resume`].
    async fn pause_writes(&mut self) {
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(30_000)
            .arg("WRITE")
            .query_async(&mut self.raw)
            .await
            .expect("CLIENT PAUSE");
    }

    /// Holds one call in flight, so that the calls made next are gathered: writes paused
    /// (until [`Setup::resume`]), then an increment of `id` by `by` sent and waiting on the
    /// server.
    async fn hold_one(&mut self, id: &'static str, by: i64) -> Call<'static> {
        self.pause_writes().await;
        let db = self.db.clone();
        let mut call: Call<'static> = Box::pin(async move { counter(id).n().incr(&db, by).await });
        assert!(!poll_once(&mut call).await);
        call
    }

    async fn resume(&mut self) {
        let _: () = redis::cmd("CLIENT")
            .arg("UNPAUSE")
            .query_async(&mut self.raw)
            .await
            .expect("CLIENT UNPAUSE");
    }

    /// `JSON.GET $` of counter `id` as text.
    async fn stored(&mut self, id: &str) -> Option<String> {
        common::json_get(&mut self.raw, &format!("gather/Counter:{id}")).await
    }

    /// The document of counter `id`.
    async fn stored_json(&mut self, id: &str) -> serde_json::Value {
        common::stored(&mut self.raw, &format!("gather/Counter:{id}")).await
    }
}

/// Polls `call` once (so that it enters its group, or is sent) and returns whether it ended.
async fn poll_once<F: Future + Unpin>(call: &mut F) -> bool {
    std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *call).poll(cx)))
        .await
        .is_ready()
}

type Call<'a> = std::pin::Pin<Box<dyn Future<Output = Result<i64, Error>> + Send + 'a>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_made_at_once_go_as_few_script_calls_each_with_its_own_outcome() {
    let mut s = setup(1).await;
    for id in ["a", "b", "c", "hostile", "holder"] {
        counter(id).save(&s.db).await.expect("save");
    }
    s.save_bad().await;
    let mut at_limit = counter("limit");
    at_limit.small = 127;
    at_limit.save(&s.db).await.expect("save");
    let bad_before = s.stored("bad").await;
    let limit_before = s.stored("limit").await;

    let db = s.db.clone();
    let hostile = "\"'] ) end -- {{}} \n\u{0}🎉 redis.call('FLUSHALL')";
    let mut calls: Vec<Call> = Vec::new();
    // The two that fail first, so the calls after them in their group run the fast path
    // on arguments further into the gathered call's.
    for (id, by) in [("bad", 5), ("missing", 5)] {
        let db = db.clone();
        calls.push(Box::pin(async move { counter(id).n().incr(&db, by).await }));
    }
    for i in 0..30 {
        let db = db.clone();
        let id = ["a", "b", "c"][i % 3];
        calls.push(Box::pin(async move { counter(id).n().incr(&db, 1).await }));
    }
    let d = db.clone();
    calls.push(Box::pin(async move {
        counter("limit").small().incr(&d, 1).await.map(i64::from)
    }));
    for _ in 0..5 {
        let db = db.clone();
        calls.push(Box::pin(async move {
            let n = counter("hostile").text().append(&db, hostile).await?;
            Ok(n as i64)
        }));
    }
    for i in 0..5 {
        let db = db.clone();
        calls.push(Box::pin(async move {
            let n = counter("hostile")
                .tags()
                .append(&db, format!("{i} {hostile}"))
                .await?;
            Ok(n as i64)
        }));
    }
    let before = s.script_calls().await;
    // One call in flight (held by the pause), so that all 43 are gathered.
    let holder = s.hold_one("holder", 1).await;
    let (results, ()) = tokio::join!(futures_util::future::join_all(calls), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.resume().await;
    });
    assert_eq!(holder.await.expect("holder"), 1);
    let ran = s.script_calls().await - before;

    let mut results = results.into_iter();
    let (bad, missing) = (results.next(), results.next());
    let mut seen: std::collections::BTreeMap<&str, Vec<i64>> = Default::default();
    for i in 0..30 {
        let n = results.next().expect("incr").expect("incr");
        seen.entry(["a", "b", "c"][i % 3]).or_default().push(n);
    }
    // Each caller saw its own increment's result: ten distinct values per document.
    for values in seen.values_mut() {
        values.sort_unstable();
        assert_eq!(*values, (1..=10).collect::<Vec<i64>>());
    }
    for id in ["a", "b", "c"] {
        assert_eq!(s.stored_json(id).await["n"], json!(10), "{id}");
    }
    match bad.expect("bad") {
        Err(Error::TypeMismatch { key, path, .. }) => {
            assert_eq!((key.as_str(), path.as_str()), ("gather/Counter:bad", "$.n"));
        }
        other => panic!("a string where an integer is wanted: {other:?}"),
    }
    match missing.expect("missing") {
        Err(Error::NotFound { key }) => assert_eq!(key, "gather/Counter:missing"),
        other => panic!("a missing document: {other:?}"),
    }
    match results.next().expect("overflow") {
        Err(Error::Overflow { key, .. }) => assert_eq!(key, "gather/Counter:limit"),
        other => panic!("an i8 at 127 plus 1: {other:?}"),
    }
    // The failed calls wrote nothing.
    assert_eq!(s.stored("bad").await, bad_before);
    assert_eq!(s.stored("limit").await, limit_before);
    assert_eq!(s.stored("missing").await, None);
    for _ in 0..5 {
        results.next().expect("append").expect("append");
    }
    let mut lengths: Vec<i64> = results.map(|r| r.expect("list append")).collect();
    lengths.sort_unstable();
    assert_eq!(lengths, vec![1, 2, 3, 4, 5]);
    let stored = s.stored_json("hostile").await;
    assert_eq!(stored["text"], json!(hostile.repeat(5)));
    let mut tags: Vec<String> = serde_json::from_value(stored["tags"].clone()).expect("tags");
    tags.sort();
    let expected: Vec<String> = (0..5).map(|i| format!("{i} {hostile}")).collect();
    assert_eq!(tags, expected);

    // The call held in flight alone, then the 43 made at once by operation, each group
    // taking up to 8, or half the field calls in flight when that is more (each call counts
    // as it is made): the 33 integer increments, the three failing among them, in 4 (8 with
    // the first two failing, 8, 16 once 32 calls are in flight, and the last alone, sent as
    // the plain call); the string appends in 1; the list appends in 1. The list appends that
    // found the list longer than their caller's copy re-read it, with a bare JSON.GET (the
    // model re-arms no expiry on reads).
    assert_eq!(ran, 7, "1 + 43 field calls ran as {ran} script calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dropped_before_its_group_goes_out_never_runs() {
    let mut s = setup(1).await;
    for id in ["first", "opener", "dropped", "kept", "opener2", "kept2"] {
        counter(id).save(&s.db).await.expect("save");
    }
    let db = s.db.clone();
    let mut docs: Vec<Counter> = ["first", "opener", "dropped", "kept", "opener2", "kept2"]
        .into_iter()
        .map(counter)
        .collect();
    let [first, opener, dropped, kept, opener2, kept2] = &mut docs[..] else {
        unreachable!()
    };
    // One call in flight (the pause holds it on the server), so the next ones are gathered.
    s.pause_writes().await;
    let mut first = first.n();
    let mut first = Box::pin(first.incr(&db, 1));
    assert!(!poll_once(&mut first).await);
    // A group of three; one of them dropped before the group goes out.
    let (mut opener, mut dropped, mut kept) = (opener.n(), dropped.n(), kept.n());
    let mut opener = Box::pin(opener.incr(&db, 1));
    let mut dropped = Box::pin(dropped.incr(&db, 1));
    let mut kept = Box::pin(kept.incr(&db, 1));
    for call in [&mut opener, &mut dropped, &mut kept] {
        assert!(!poll_once(call).await);
    }
    drop(dropped);
    // A group of two whose opening call is dropped before it goes out.
    let (mut opener2, mut kept2) = (opener2.n(), kept2.n());
    let mut opener2 = Box::pin(opener2.incr(&db, 1));
    let mut kept2 = Box::pin(kept2.incr(&db, 1));
    for call in [&mut opener2, &mut kept2] {
        assert!(!poll_once(call).await);
    }
    drop(opener2);
    s.resume().await;
    assert_eq!(first.await.expect("incr"), 1);
    assert_eq!(opener.await.expect("incr"), 1);
    assert_eq!(kept.await.expect("incr"), 1);
    assert_eq!(kept2.await.expect("incr"), 1);
    for (id, n) in [
        ("first", 1),
        ("opener", 1),
        ("kept", 1),
        ("kept2", 1),
        ("dropped", 0),
        ("opener2", 0),
    ] {
        assert_eq!(s.stored_json(id).await["n"], json!(n), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_opening_call_is_no_longer_polled_still_goes_out() {
    let mut s = setup(1).await;
    for id in ["first", "opener", "member"] {
        counter(id).save(&s.db).await.expect("save");
    }
    let db = s.db.clone();
    let first = s.hold_one("first", 1).await;
    // The opening call, polled once (it opens the group and yields), then left unpolled,
    // not dropped.
    let mut opener_doc = counter("opener");
    let mut opener = opener_doc.n();
    let mut opener = Box::pin(opener.incr(&db, 1));
    assert!(!poll_once(&mut opener).await);
    let d = db.clone();
    let member = tokio::spawn(async move { counter("member").n().incr(&d, 1).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.resume().await;
    let member = tokio::time::timeout(Duration::from_secs(10), member)
        .await
        .expect("the member sends the group itself")
        .expect("task");
    assert_eq!(member.expect("incr"), 1);
    // The opening call ran in the group too, though its caller has not polled it since.
    assert_eq!(s.stored_json("opener").await["n"], json!(1));
    assert_eq!(s.stored_json("member").await["n"], json!(1));
    assert_eq!(first.await.expect("incr"), 1);
    assert_eq!(opener.await.expect("incr"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gathered_call_refused_over_maxmemory_is_every_callers_error_naming_its_key() {
    let mut s = setup(1).await;
    let ids: Vec<String> = (0..8).map(|i| format!("m{i}")).collect();
    let mut before = Vec::new();
    for id in &ids {
        counter(id).save(&s.db).await.expect("save");
        before.push(s.stored(id).await);
    }
    let config = |name: &'static str, value: &'static str| {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("SET").arg(name).arg(value);
        cmd
    };
    for (name, value) in [("maxmemory-policy", "noeviction"), ("maxmemory", "1")] {
        let _: () = config(name, value)
            .query_async(&mut s.raw)
            .await
            .expect("CONFIG SET");
    }
    // The first alone, the seven others in one group.
    let db = s.db.clone();
    let calls: Vec<Call> = ids
        .iter()
        .map(|id| {
            let db = db.clone();
            let id = id.clone();
            Box::pin(async move { counter(&id).n().incr(&db, 1).await }) as Call
        })
        .collect();
    let results = futures_util::future::join_all(calls).await;
    let _: () = config("maxmemory", "0")
        .query_async(&mut s.raw)
        .await
        .expect("CONFIG SET");
    for (id, result) in ids.iter().zip(results) {
        match result {
            Err(Error::OutOfMemory { key }) => assert_eq!(key, format!("gather/Counter:{id}")),
            other => panic!("{id}: {other:?}"),
        }
    }
    for (id, was) in ids.iter().zip(before) {
        assert_eq!(s.stored(id).await, was, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_callers_at_once_each_run_exactly_once() {
    let mut s = setup(ConnectOptions::default().gather_after).await;
    let ids: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    for id in &ids {
        counter(id).save(&s.db).await.expect("save");
    }
    let before = s.script_calls().await;
    let calls: Vec<_> = (0..2000)
        .map(|i| {
            let db = s.db.clone();
            let id = ids[i % ids.len()].clone();
            tokio::spawn(async move {
                let by = (i % 7) as i64 - 3;
                counter(&id).n().incr(&db, by).await.map(|_| by)
            })
        })
        .collect();
    let mut sums = vec![0i64; ids.len()];
    for (i, call) in calls.into_iter().enumerate() {
        sums[i % ids.len()] += call.await.expect("task").expect("incr");
    }
    for (id, sum) in ids.iter().zip(sums) {
        assert_eq!(s.stored_json(id).await["n"], json!(sum), "{id}");
    }
    let ran = s.script_calls().await - before;
    assert!(
        ran < 2000,
        "2000 calls at once ran as {ran} script calls: none were gathered"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn calls_on_a_current_thread_runtime_go_alone() {
    let mut s = setup(1).await;
    counter("one").save(&s.db).await.expect("save");
    let db = s.db.clone();
    let calls: Vec<Call> = (0..20)
        .map(|_| {
            let db = db.clone();
            Box::pin(async move { counter("one").n().incr(&db, 1).await }) as Call
        })
        .collect();
    let before = s.script_calls().await;
    for result in futures_util::future::join_all(calls).await {
        result.expect("incr");
    }
    assert_eq!(s.script_calls().await - before, 20);
    assert_eq!(s.stored_json("one").await["n"], json!(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gathered_call_after_a_script_flush_is_reloaded_and_keeps_each_outcome() {
    let mut s = setup(1).await;
    for id in ["first", "x", "y"] {
        counter(id).save(&s.db).await.expect("save");
    }
    s.save_bad().await;
    // The server forgets every script: the gathered call gets NOSCRIPT and is sent again
    // with its script loaded in the same transaction.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut s.raw)
        .await
        .expect("SCRIPT FLUSH");
    let db = s.db.clone();
    // One call in flight (held by the pause), so the next three are gathered.
    let first = s.hold_one("first", 2).await;
    let calls: Vec<Call> = ["x", "bad", "y"]
        .into_iter()
        .map(|id| {
            let db = db.clone();
            Box::pin(async move { counter(id).n().incr(&db, 2).await }) as Call
        })
        .collect();
    let (results, ()) = tokio::join!(futures_util::future::join_all(calls), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.resume().await;
    });
    assert_eq!(first.await.expect("first"), 2);
    let mut results = results.into_iter();
    assert_eq!(results.next().expect("x").expect("x"), 2);
    match results.next().expect("bad") {
        Err(Error::TypeMismatch { key, .. }) => assert_eq!(key, "gather/Counter:bad"),
        other => panic!("a string where an integer is wanted: {other:?}"),
    }
    assert_eq!(results.next().expect("y").expect("y"), 2);
    for id in ["first", "x", "y"] {
        assert_eq!(s.stored_json(id).await["n"], json!(2), "{id}");
    }
    assert_eq!(s.stored_json("bad").await["n"], json!("text"));
    // The three went as one gathered call: its script is back in the cache.
    let gathered = db
        .scripts()
        .get("rapyer.field.incr.gathered")
        .expect("registered");
    let back: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(gathered.sha())
        .query_async(&mut s.raw)
        .await
        .expect("SCRIPT EXISTS");
    assert_eq!(back, vec![true]);
}

/// A gathered call waits at most `LONGEST_WAIT` with tokio's timer, as the reply timeout
/// does: a `Db` without a reply timeout may run on a runtime built without the timer, so
/// its calls go alone (no panic for a timer the runtime lacks).
#[test]
fn a_db_without_a_reply_timeout_gathers_nothing_and_needs_no_timer() {
    let server =
        rapyer_testkit::Server::start_cached().unwrap_or_else(|e| panic!("rapyer-testkit: {e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .build()
        .expect("runtime without a timer");
    runtime.block_on(async {
        let mut options = ConnectOptions::default()
            .direct_connections(0)
            .gather_after(1);
        options.response_timeout = None;
        options.connect_timeout = None;
        let db = Db::connect_with(server.url(), options)
            .await
            .expect("connect")
            .with_namespace("gather-notimer/")
            .expect("namespace");
        counter("one").save(&db).await.expect("save");
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move { counter("one").n().incr(&db, 1).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("task").expect("incr");
        }
        let mut stored = counter("one");
        assert_eq!(stored.n().load(&db).await.expect("load"), 50);
    });
}
