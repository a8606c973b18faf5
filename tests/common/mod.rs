//! Shared set-up for the integration tests: a `Db` on the test binary's one real server, in a
//! namespace of the test's own, and a plain redis-rs connection to check what is stored.

#![allow(dead_code)] // each test binary uses its own subset of these helpers

use rapyer::Db;

pub(crate) mod bank;

/// A `Db` in a fresh namespace named after the running test.
pub(crate) async fn db() -> Db {
    let server = rapyer_testkit::server();
    Db::connect(server.url())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", server.url()))
        .with_namespace(rapyer_testkit::test_namespace())
        .expect("the test namespace is valid")
}

/// A `Db` on the test binary's cluster (started by the testkit, or `REDIS_CLUSTER_URLS`), in
/// a fresh namespace named after the running test.
pub(crate) async fn cluster_db() -> Db {
    let cluster = rapyer_testkit::cluster();
    Db::connect_cluster(cluster.urls())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {:?}: {e}", cluster.urls()))
        .with_namespace(rapyer_testkit::test_namespace())
        .expect("the test namespace is valid")
}

/// A server of the test's own, not the binary's shared one: for a test that stops, pauses
/// or limits its server, or reads its counters (`INFO commandstats`, `CLIENT LIST`).
pub(crate) async fn own_server() -> rapyer_testkit::Server {
    tokio::task::spawn_blocking(rapyer_testkit::Server::start_cached)
        .await
        .expect("start task")
        .unwrap_or_else(|e| panic!("rapyer-testkit: {e}"))
}

/// A server of the test's own ([`own_server`]), a `Db` on it with `options` in `namespace`
/// with every library script already in the server's cache (so that no NOSCRIPT reload
/// adds commands to what the test counts), and a plain connection to it.
pub(crate) async fn own_db(
    options: rapyer::ConnectOptions,
    namespace: &str,
) -> (
    rapyer_testkit::Server,
    Db,
    redis::aio::MultiplexedConnection,
) {
    let server = own_server().await;
    let db = Db::connect_with(server.url(), options)
        .await
        .expect("connect")
        .with_namespace(namespace)
        .expect("namespace");
    db.scripts().preload().await.expect("preload");
    let raw = raw_to(server.url()).await;
    (server, db, raw)
}

/// A plain connection, to read and write exactly what is on the server.
pub(crate) async fn raw() -> redis::aio::MultiplexedConnection {
    raw_to(rapyer_testkit::server().url()).await
}

/// A plain connection to the server at `url`.
pub(crate) async fn raw_to(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("valid url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

/// `JSON.GET key $` as text, or None when the key does not exist.
pub(crate) async fn json_get(
    raw: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> Option<String> {
    redis::cmd("JSON.GET")
        .arg(key)
        .arg("$")
        .query_async(raw)
        .await
        .expect("JSON.GET")
}

/// The stored document at `key` as a JSON value (the root, not the `$` array).
pub(crate) async fn stored(
    raw: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> serde_json::Value {
    let text = json_get(raw, key)
        .await
        .unwrap_or_else(|| panic!("no document at {key}"));
    let mut all: Vec<serde_json::Value> =
        serde_json::from_str(&text).expect("JSON.GET $ is a JSON array");
    all.remove(0)
}

/// `DUMP key`: the server's own encoding of the value (equal before and after means
/// byte-identical), or None when the key does not exist.
pub(crate) async fn dump(
    raw: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> Option<Vec<u8>> {
    redis::cmd("DUMP")
        .arg(key)
        .query_async(raw)
        .await
        .expect("DUMP")
}

/// `PTTL key`: milliseconds left, -1 without expiry, -2 when the key does not exist.
pub(crate) async fn pttl(raw: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(raw)
        .await
        .expect("PTTL")
}

/// A small deterministic generator (xorshift), so a failing random test reproduces.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A second connection sending `SCRIPT FLUSH` in a tight loop until stopped.
pub(crate) struct Flusher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl Flusher {
    pub(crate) async fn start() -> Flusher {
        use std::sync::atomic::Ordering;
        let mut conn = raw().await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut flushes = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let _: () = redis::cmd("SCRIPT")
                    .arg("FLUSH")
                    .query_async(&mut conn)
                    .await
                    .expect("SCRIPT FLUSH");
                flushes += 1;
            }
            flushes
        });
        Flusher { stop, task }
    }

    /// Stops the loop; returns how many flushes it sent.
    pub(crate) async fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.expect("flusher task")
    }
}

/// Redis Cluster's slot of `key` (CRC16/XMODEM of its hash tag), written out here so the
/// test does not trust the library's own function.
pub(crate) fn cluster_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tag = match key.find('{') {
        Some(open) => match key[open + 1..].find('}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    let mut crc: u16 = 0;
    for &b in tag {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// Asserts a non-finite refusal naming `key` and `path`.
pub(crate) fn assert_non_finite<T: std::fmt::Debug>(
    what: &str,
    outcome: Result<T, rapyer::Error>,
    key: &str,
    path: &str,
) {
    match outcome {
        Err(rapyer::Error::NonFinite { key: k, path: p }) => {
            assert_eq!(k, key, "{what}");
            assert_eq!(p, path, "{what}");
        }
        other => panic!("{what}: expected NonFinite at {path}, got {other:?}"),
    }
}

/// A JSON value nested `levels` deep: `[[[…]]]`.
pub(crate) fn nested(levels: usize) -> serde_json::Value {
    (1..levels).fold(serde_json::json!([]), |inner, _| serde_json::json!([inner]))
}

/// Runs `fut`, dropping it at a random point: after fewer than `polls` polls, or when a
/// timeout of fewer than `micros` microseconds fires. `None` when it was dropped.
pub(crate) async fn cancel_randomly<F: std::future::Future>(
    rng: &mut Rng,
    micros: u64,
    polls: u64,
    fut: F,
) -> Option<F::Output> {
    if rng.below(2) == 0 {
        let within = std::time::Duration::from_micros(rng.below(micros));
        return tokio::time::timeout(within, fut).await.ok();
    }
    let polls = rng.below(polls);
    let mut fut = std::pin::pin!(fut);
    for _ in 0..polls {
        let step = std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx))).await;
        if let std::task::Poll::Ready(out) = step {
            return Some(out);
        }
        tokio::task::yield_now().await;
    }
    None
}

/// How many times the server ran each command so far (`INFO commandstats`, commands run by
/// scripts included), by its lower-case name.
pub(crate) async fn command_calls(
    raw: &mut redis::aio::MultiplexedConnection,
) -> std::collections::HashMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(raw)
        .await
        .expect("INFO commandstats");
    info.lines()
        .filter_map(|l| {
            let (name, stats) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

/// The commands and counts `pairs` as [`ran_since`] gives them, to compare with it.
pub(crate) fn commands(pairs: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
    pairs.iter().map(|(n, c)| (n.to_string(), *c)).collect()
}

/// The commands run since `before` (an earlier [`command_calls`]) and how many times, left
/// out the ones that ran no more (and `INFO` itself).
pub(crate) async fn ran_since(
    raw: &mut redis::aio::MultiplexedConnection,
    before: &std::collections::HashMap<String, u64>,
) -> std::collections::BTreeMap<String, u64> {
    command_calls(raw)
        .await
        .into_iter()
        .filter_map(|(name, n)| {
            let more = n - before.get(&name).copied().unwrap_or(0);
            (more > 0 && name != "info").then_some((name, more))
        })
        .collect()
}
