//! Gathered field calls (`ConnectOptions::gather_after`), against a server of each test's
//! own: field calls made while the connection has enough in flight wait, and go out together,
//! the calls of one operation as one script call. Each caller still gets its own outcome
//! (its reply, or its own typed error naming its own key, the others unaffected and the
//! failed call's document untouched), every call runs exactly once, a call dropped while it
//! waits never runs, and a refusal of the whole call (out of memory) is every caller's,
//! each naming its own key. Writes are held with `CLIENT PAUSE … WRITE` so that the calls
//! are made while others are in flight (no timing), and how many commands the `Db`'s
//! connection ran is read from the server (`INFO commandstats`).

mod common;

use std::future::Future;
use std::time::Duration;

use rapyer::prelude::*;
use rapyer::{ConnectOptions, Error};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Counter")]
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
    let server = tokio::task::spawn_blocking(rapyer_testkit::Server::start_cached)
        .await
        .expect("start task")
        .unwrap_or_else(|e| panic!("rapyer-testkit: {e}"));
    let options = ConnectOptions::default()
        .direct_connections(0)
        .gather_after(after);
    let db = Db::connect_with(server.url(), options)
        .await
        .expect("connect")
        .with_namespace("gather/")
        .expect("namespace");
    // Every script in the server's cache first, so that no NOSCRIPT reload adds commands.
    db.scripts().preload().await.expect("preload");
    let raw = redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
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
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.raw)
            .await
            .expect("INFO commandstats");
        info.lines()
            .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
            .filter_map(|l| {
                l.split([':', ','])
                    .find_map(|f| f.strip_prefix("calls="))
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .sum()
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

    async fn resume(&mut self) {
        let _: () = redis::cmd("CLIENT")
            .arg("UNPAUSE")
            .query_async(&mut self.raw)
            .await
            .expect("CLIENT UNPAUSE");
    }

    async fn stored(&mut self, id: &str) -> Option<String> {
        redis::cmd("JSON.GET")
            .arg(format!("gather/Counter:{id}"))
            .arg("$")
            .query_async(&mut self.raw)
            .await
            .expect("JSON.GET")
    }

    async fn stored_json(&mut self, id: &str) -> serde_json::Value {
        let text = self.stored(id).await.expect("a stored document");
        serde_json::from_str::<serde_json::Value>(&text).expect("JSON")[0].clone()
    }
}

/// Lets every spawned task run up to its first wait on the server.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_calls_go_as_one_script_call_each_with_its_own_outcome() {
    let mut s = setup(1).await;
    for id in ["a", "b", "c", "hostile"] {
        counter(id).save(&s.db).await.expect("save");
    }
    // A document whose `n` holds a string: the typed failure of one call among many.
    let _: () = redis::cmd("JSON.SET")
        .arg("gather/Counter:bad")
        .arg("$")
        .arg(json!({"id": "bad", "n": "text", "small": 0, "text": "", "tags": []}).to_string())
        .query_async(&mut s.raw)
        .await
        .expect("JSON.SET");
    let mut at_limit = counter("limit");
    at_limit.small = 127;
    at_limit.save(&s.db).await.expect("save");
    let bad_before = s.stored("bad").await;
    let limit_before = s.stored("limit").await;

    s.pause_writes().await;
    let before = s.script_calls().await;
    let mut incrs = Vec::new();
    for i in 0..30 {
        let db = s.db.clone();
        let id = ["a", "b", "c"][i % 3];
        incrs.push(tokio::spawn(
            async move { counter(id).n().incr(&db, 1).await },
        ));
    }
    let failing: Vec<_> = [("bad", 5), ("missing", 5)]
        .into_iter()
        .map(|(id, by)| {
            let db = s.db.clone();
            tokio::spawn(async move { counter(id).n().incr(&db, by).await })
        })
        .collect();
    let db = s.db.clone();
    let overflow = tokio::spawn(async move { counter("limit").small().incr(&db, 1).await });
    let hostile = "\"'] ) end -- {{}} \n\u{0}🎉 redis.call('FLUSHALL')";
    let appends: Vec<_> = (0..5)
        .map(|_| {
            let db = s.db.clone();
            tokio::spawn(async move { counter("hostile").text().append(&db, hostile).await })
        })
        .collect();
    let pushes: Vec<_> = (0..5)
        .map(|i| {
            let db = s.db.clone();
            tokio::spawn(async move {
                counter("hostile")
                    .tags()
                    .append(&db, format!("{i} {hostile}"))
                    .await
            })
        })
        .collect();
    settle().await;
    s.resume().await;

    let mut seen: std::collections::BTreeMap<&str, Vec<i64>> = Default::default();
    for (i, call) in incrs.into_iter().enumerate() {
        let n = call.await.expect("task").expect("incr");
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
    let mut failing = failing.into_iter();
    match failing.next().expect("bad").await.expect("task") {
        Err(Error::TypeMismatch { key, path, .. }) => {
            assert_eq!((key.as_str(), path.as_str()), ("gather/Counter:bad", "$.n"));
        }
        other => panic!("a string where an integer is wanted: {other:?}"),
    }
    match failing.next().expect("missing").await.expect("task") {
        Err(Error::NotFound { key }) => assert_eq!(key, "gather/Counter:missing"),
        other => panic!("a missing document: {other:?}"),
    }
    match overflow.await.expect("task") {
        Err(Error::Overflow { key, .. }) => assert_eq!(key, "gather/Counter:limit"),
        other => panic!("an i8 at 127 plus 1: {other:?}"),
    }
    // The failed calls wrote nothing.
    assert_eq!(s.stored("bad").await, bad_before);
    assert_eq!(s.stored("limit").await, limit_before);
    assert_eq!(s.stored("missing").await, None);
    for call in appends {
        call.await.expect("task").expect("append");
    }
    let mut lengths = Vec::new();
    for call in pushes {
        lengths.push(call.await.expect("task").expect("list append"));
    }
    lengths.sort_unstable();
    assert_eq!(lengths, vec![1, 2, 3, 4, 5]);
    let stored = s.stored_json("hostile").await;
    assert_eq!(stored["text"], json!(hostile.repeat(5)));
    let mut tags: Vec<String> = serde_json::from_value(stored["tags"].clone()).expect("tags");
    tags.sort();
    let expected: Vec<String> = (0..5).map(|i| format!("{i} {hostile}")).collect();
    assert_eq!(tags, expected);

    // 43 calls, one in flight at a time: the first alone, then the others by operation (the
    // integer increments, the three that failed among them, in one call; the string
    // appends in one; the list appends in one); then the list appends that found the list
    // longer than their caller's copy re-read it (one or two calls, as they come).
    let ran = s.script_calls().await - before;
    assert!(
        (4..=6).contains(&ran),
        "43 field calls ran as {ran} script calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dropped_while_it_waits_never_runs() {
    let mut s = setup(1).await;
    for id in ["first", "dropped", "kept"] {
        counter(id).save(&s.db).await.expect("save");
    }
    s.pause_writes().await;
    let db = s.db.clone();
    let first = tokio::spawn(async move { counter("first").n().incr(&db, 1).await });
    settle().await;
    // The connection has its one call in flight (held by the pause): this one waits, and is
    // dropped while it waits.
    let dropped = tokio::time::timeout(
        Duration::from_millis(100),
        counter("dropped").n().incr(&s.db, 1),
    )
    .await;
    assert!(
        dropped.is_err(),
        "the call should still be waiting: {dropped:?}"
    );
    let db = s.db.clone();
    let kept = tokio::spawn(async move { counter("kept").n().incr(&db, 1).await });
    settle().await;
    s.resume().await;
    assert_eq!(first.await.expect("task").expect("incr"), 1);
    assert_eq!(kept.await.expect("task").expect("incr"), 1);
    assert_eq!(s.stored_json("first").await["n"], json!(1));
    assert_eq!(s.stored_json("kept").await["n"], json!(1));
    assert_eq!(s.stored_json("dropped").await["n"], json!(0));
    // And the connection goes on gathering and running calls.
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let db = s.db.clone();
            tokio::spawn(async move { counter("dropped").n().incr(&db, 1).await })
        })
        .collect();
    for call in calls {
        call.await.expect("task").expect("incr");
    }
    assert_eq!(s.stored_json("dropped").await["n"], json!(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gathered_call_refused_over_maxmemory_is_every_callers_error_naming_its_key() {
    let mut s = setup(1).await;
    let ids: Vec<String> = (0..8).map(|i| format!("m{i}")).collect();
    for id in &ids {
        counter(id).save(&s.db).await.expect("save");
    }
    let before: Vec<Option<String>> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push(s.stored(id).await);
        }
        v
    };
    let config = |name: &'static str, value: &'static str| {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("SET").arg(name).arg(value);
        cmd
    };
    let _: () = config("maxmemory-policy", "noeviction")
        .query_async(&mut s.raw)
        .await
        .expect("CONFIG SET");
    s.pause_writes().await;
    let calls: Vec<_> = ids
        .iter()
        .map(|id| {
            let db = s.db.clone();
            let id = id.clone();
            tokio::spawn(async move { counter(&id).n().incr(&db, 1).await })
        })
        .collect();
    settle().await;
    let _: () = config("maxmemory", "1")
        .query_async(&mut s.raw)
        .await
        .expect("CONFIG SET");
    s.resume().await;
    for (id, call) in ids.iter().zip(calls) {
        match call.await.expect("task") {
            Err(Error::OutOfMemory { key }) => assert_eq!(key, format!("gather/Counter:{id}")),
            other => panic!("{id}: {other:?}"),
        }
    }
    let _: () = config("maxmemory", "0")
        .query_async(&mut s.raw)
        .await
        .expect("CONFIG SET");
    for (id, was) in ids.iter().zip(before) {
        assert_eq!(s.stored(id).await, was, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_callers_at_once_each_run_exactly_once() {
    // The default: gathering once 4 calls are in flight, on a real race (no pause).
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_caller_stops_polling_it_holds_the_others_back_briefly_only() {
    let mut s = setup(1).await;
    for id in ["held", "next"] {
        counter(id).save(&s.db).await.expect("save");
    }
    let db = s.db.clone();
    let mut held = counter("held");
    let mut handle = held.n();
    let mut call = std::pin::pin!(handle.incr(&db, 1));
    // Polled once (so it takes the connection's one place in flight and is sent; the pause
    // keeps its reply from coming back within that poll), then left unpolled, not dropped,
    // while another call is made.
    s.pause_writes().await;
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(call.as_mut().poll(cx))).await;
    assert!(
        first.is_pending(),
        "the call ended at its first poll: {first:?}"
    );
    s.resume().await;
    let next = tokio::time::timeout(Duration::from_secs(10), counter("next").n().incr(&db, 1))
        .await
        .expect("the next call waits for the held one only briefly");
    assert_eq!(next.expect("incr"), 1);
    assert_eq!(s.stored_json("next").await["n"], json!(1));
    assert_eq!(call.await.expect("incr"), 1);
    assert_eq!(s.stored_json("held").await["n"], json!(1));
}
