//! Shared set-up for the integration tests: a `Db` on the test binary's one real server, in a
//! namespace of the test's own, and a plain redis-rs connection to check what is stored.

#![allow(dead_code)] // each test binary uses its own subset of these helpers

use rapyer::Db;

/// A `Db` in a fresh namespace named after the running test.
pub(crate) async fn db() -> Db {
    let server = rapyer_testkit::server();
    Db::connect(server.url())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", server.url()))
        .with_namespace(rapyer_testkit::test_namespace())
}

/// A plain connection, to read and write exactly what is on the server.
pub(crate) async fn raw() -> redis::aio::MultiplexedConnection {
    let server = rapyer_testkit::server();
    redis::Client::open(server.url())
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

/// `PTTL key`: milliseconds left, -1 without expiry, -2 when the key does not exist.
pub(crate) async fn pttl(raw: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(raw)
        .await
        .expect("PTTL")
}
