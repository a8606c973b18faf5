//! Connecting, against real servers: timeouts and the reconnect budget while a server is
//! down, ACL users in the URL, and (with `--features tls`) `rediss://` through a TLS proxy.
//! Every test reads back what it wrote with plain commands.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rapyer::prelude::*;
use rapyer::{ConnectOptions, Error};
use serde::{Deserialize, Serialize};
use serde_json::json;

use common::{raw, stored};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Counter")]
struct Counter {
    #[rapyer(key)]
    id: String,
    n: i64,
    tags: Vec<String>,
}

fn counter(id: &str) -> Counter {
    Counter {
        id: id.into(),
        n: 1,
        tags: vec!["a".into()],
    }
}

/// Options that give up on a down server within about a second.
fn fail_fast() -> ConnectOptions {
    ConnectOptions::default()
        .response_timeout(Duration::from_secs(1))
        .connect_timeout(Duration::from_millis(500))
        .reconnect_retries(2)
        .reconnect_min_delay(Duration::from_millis(100))
        .reconnect_max_delay(Duration::from_millis(200))
}

/// Save, get, a field operation and an atomic block through `db`, each checked on the
/// server through `raw` (a plain connection to the same data).
async fn save_get_incr_and_block(db: &Db, raw: &mut redis::aio::MultiplexedConnection) {
    let mut c = counter("c1");
    c.save(db).await.expect("save");
    let key = db.key(&Counter::key_of("c1"));
    assert_eq!(
        stored(raw, &key).await,
        json!({"id": "c1", "n": 1, "tags": ["a"]})
    );
    assert_eq!(Counter::get(db, "c1").await.expect("get"), c);
    assert_eq!(c.n().incr(db, 41).await.expect("incr"), 42);
    assert_eq!(stored(raw, &key).await["n"], json!(42));
    let (n, len) = c
        .atomic(db, |p| (p.n().incr(1), p.tags().append("b")))
        .await
        .expect("block");
    assert_eq!((n, len), (Some(43), Some(2)));
    assert_eq!(
        stored(raw, &key).await,
        json!({"id": "c1", "n": 43, "tags": ["a", "b"]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_server_is_down_each_call_fails_fast_and_calls_succeed_again_once_it_is_back() {
    // A server of this test's own: stopping the binary's shared one would fail the others.
    let server = common::own_server().await;
    let server = Arc::new(server);
    let db = Db::connect_with(server.url(), fail_fast())
        .await
        .expect("connect")
        .with_namespace(rapyer_testkit::test_namespace())
        .expect("the test namespace is valid");
    let mut c = counter("outage");
    c.save(&db).await.expect("save before the outage");

    let stopping = server.clone();
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .expect("stop task")
        .expect("stop the server");

    // 45 s down, calling all the while; every call must fail, and fail fast.
    let outage = Instant::now();
    let mut calls = 0;
    let mut slowest = Duration::ZERO;
    while outage.elapsed() < Duration::from_secs(45) {
        let started = Instant::now();
        let result = if calls % 2 == 0 {
            Counter::get(&db, "outage").await.map(|_| ())
        } else {
            c.n().incr(&db, 1).await.map(|_| ())
        };
        let took = started.elapsed();
        slowest = slowest.max(took);
        match result {
            Err(Error::Redis { ref source, .. }) if calls == 0 => {
                eprintln!("first call with the server down: {source} ({took:?})")
            }
            Err(Error::Redis { .. }) => {}
            other => panic!("call {calls} with the server down gave {other:?}"),
        }
        // ~0.6 s at most is expected (the retries' jittered pauses); the slack is for a
        // loaded machine. Without the budget a call waited ~9.4 s.
        assert!(
            took < Duration::from_secs(5),
            "call {calls} took {took:?} to fail"
        );
        calls += 1;
    }
    assert!(
        calls >= 20,
        "only {calls} calls in 45 s (slowest {slowest:?})"
    );
    eprintln!("{calls} calls failed in 45 s, the slowest in {slowest:?}");
    assert_eq!(c.n, 1, "a failed incr leaves the local value as it was");

    let starting = server.clone();
    tokio::task::spawn_blocking(move || starting.start_again())
        .await
        .expect("start task")
        .expect("start the server again");

    // The same Db, with no reconnect asked for: the next calls reconnect by themselves (the
    // first one may still see the last failed attempt).
    let back = Instant::now();
    let got = loop {
        match Counter::get(&db, "outage").await {
            Ok(got) => {
                eprintln!("calls succeed again {:?} after the restart", back.elapsed());
                break got;
            }
            Err(e) if back.elapsed() < Duration::from_secs(15) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = e;
            }
            Err(e) => panic!(
                "still failing {:?} after the server came back: {e}",
                back.elapsed()
            ),
        }
    };
    assert_eq!(got, counter("outage"), "the data saved before the outage");
    assert_eq!(c.n().incr(&db, 1).await.expect("incr after"), 2);
    let mut plain = redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
    let key = db.key(&Counter::key_of("outage"));
    assert_eq!(stored(&mut plain, &key).await["n"], json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_slower_than_the_response_timeout_fails_the_call_as_a_timeout() {
    // A server of this test's own: pausing the shared one would stall the other tests.
    let server = common::own_server().await;
    let db = Db::connect_with(
        server.url(),
        ConnectOptions::default().response_timeout(Duration::from_millis(300)),
    )
    .await
    .expect("connect")
    .with_namespace(rapyer_testkit::test_namespace())
    .expect("the test namespace is valid");
    counter("slow").save(&db).await.expect("save");
    // A second client pauses every client's commands for 2 s, as a stalled server would.
    let mut pauser = redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2_000)
        .arg("ALL")
        .query_async(&mut pauser)
        .await
        .expect("CLIENT PAUSE");
    let started = Instant::now();
    let result = Counter::get(&db, "slow").await;
    let took = started.elapsed();
    match result {
        Err(Error::Redis { ref source, .. }) if source.is_timeout() => {}
        other => panic!("a paused server gave {other:?}"),
    }
    assert!(took < Duration::from_millis(1_800), "failed after {took:?}");
    // Once the pause is over, the same Db answers again.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let again = loop {
        match Counter::get(&db, "slow").await {
            Err(e) if started.elapsed() < Duration::from_secs(15) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break other,
        }
    };
    assert_eq!(again.expect("get after the pause"), counter("slow"));
}

/// A user name (and password) unique to this run, so runs against one server never collide.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// `redis://user:pass@host:port/` for the test server.
fn url_with_user(user: &str, password: &str) -> String {
    let url = rapyer_testkit::server().url();
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    format!("{scheme}://{user}:{password}@{rest}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_in_the_url_saves_gets_and_runs_field_ops_on_its_own_keys_only() {
    let namespace = rapyer_testkit::test_namespace();
    let user = unique("rapyer-acl");
    let password = unique("secret");
    let mut admin = raw().await;
    // Only the keys of this test's namespace: a call that works proves it ran as this user.
    // (`+@all`: the modules loaded with --loadmodule put their commands in no ACL category,
    // so `+@json` is refused as unknown on this server.)
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .arg(format!(">{password}"))
        .arg("resetkeys")
        .arg(format!("~{namespace}*"))
        .arg("+@all")
        .query_async(&mut admin)
        .await
        .expect("ACL SETUSER");

    let url = url_with_user(&user, &password);
    let db = Db::connect(&url).await.expect("connect as the ACL user");
    let shown = format!("{db:?}");
    assert!(
        !shown.contains(&password),
        "Debug shows the password: {shown}"
    );
    let db = db
        .with_namespace(namespace.clone())
        .expect("the test namespace is valid");
    save_get_incr_and_block(&db, &mut admin).await;

    // Outside its key pattern the same user is refused, so the calls above were its own.
    let outside = Db::connect(&url).await.expect("connect again");
    match counter("c1").save(&outside).await {
        Err(Error::Redis { source, .. }) => {
            assert_eq!(source.code(), Some("NOPERM"), "{source}")
        }
        other => panic!("a key outside the user's pattern gave {other:?}"),
    }

    let wrong = url_with_user(&user, "not-the-password");
    match Db::connect_with(&wrong, fail_fast().reconnect_retries(0)).await {
        Err(Error::Redis { op, source }) => {
            assert_eq!(op, "connect");
            assert_eq!(
                source.kind(),
                redis::ErrorKind::AuthenticationFailed,
                "a wrong password gave {source}"
            );
        }
        other => panic!("a wrong password gave {other:?}"),
    }

    let _: i64 = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&user)
        .query_async(&mut admin)
        .await
        .expect("ACL DELUSER");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_connect_within_the_budget() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let started = Instant::now();
    match Db::connect_with(&format!("redis://127.0.0.1:{port}/"), fail_fast()).await {
        Err(Error::Redis { op, source }) => {
            assert_eq!(op, "connect");
            assert!(source.is_connection_refusal(), "{source}");
        }
        other => panic!("connecting to a closed port gave {other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "connect failed after {took:?}"
    );
}

#[cfg(not(feature = "tls"))]
#[tokio::test]
async fn a_rediss_url_without_the_tls_feature_fails_to_connect_saying_so() {
    match Db::connect("rediss://127.0.0.1:1/").await {
        Err(Error::Redis { op, source }) => {
            assert_eq!(op, "connect");
            assert!(
                source.to_string().to_lowercase().contains("tls"),
                "{source}"
            );
        }
        other => panic!("rediss:// without the tls feature gave {other:?}"),
    }
}

#[cfg(feature = "tls")]
mod tls {
    use super::*;
    use rapyer_testkit::TlsProxy;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rediss_url_trusting_the_servers_ca_saves_gets_and_runs_field_ops_and_blocks() {
        let proxy = TlsProxy::start(rapyer_testkit::server().url()).expect("TLS proxy");
        assert!(proxy.url().starts_with("rediss://"));
        let db = Db::connect_with(
            proxy.url(),
            ConnectOptions::default().tls_root_cert(proxy.ca_pem()),
        )
        .await
        .expect("connect over TLS")
        .with_namespace(rapyer_testkit::test_namespace())
        .expect("the test namespace is valid");
        let mut raw = raw().await;
        save_get_incr_and_block(&db, &mut raw).await;
    }

    /// A cluster whose every node is reached over TLS (seeds and the nodes `CLUSTER SLOTS`
    /// names): saves over every primary, reads, field handles, a block, `all()`, `init` and
    /// a search; what is stored is read back on the nodes' own plain ports.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cluster_over_tls_runs_crud_field_ops_blocks_all_and_queries() {
        let cluster = tokio::task::spawn_blocking(rapyer_testkit::TlsCluster::start)
            .await
            .expect("start task")
            .unwrap_or_else(|e| panic!("rapyer-testkit: {e}"));
        assert!(cluster.urls().iter().all(|u| u.starts_with("rediss://")));
        let db = Db::connect_cluster_with(
            cluster.urls(),
            ConnectOptions::default().tls_root_cert(cluster.ca_pem()),
        )
        .await
        .expect("connect to the cluster over TLS")
        .with_namespace(rapyer_testkit::test_namespace())
        .expect("the test namespace is valid");
        assert!(db.is_cluster());
        let ids: Vec<String> = (0..30).map(|i| format!("tls-{i}")).collect();
        for id in &ids {
            counter(id).save(&db).await.expect("save over TLS");
        }
        let mut c = Counter::get(&db, "tls-7").await.expect("get");
        assert_eq!(c.n().incr(&db, 41).await.expect("incr"), 42);
        let (n, len) = c
            .atomic(&db, |p| (p.n().incr(1), p.tags().append("b")))
            .await
            .expect("block");
        assert_eq!((n, len), (Some(43), Some(2)));
        let mut all: Vec<String> = Counter::all(&db)
            .await
            .expect("all")
            .into_iter()
            .map(|c| c.id)
            .collect();
        all.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(all, want);
        // What is stored, read on the nodes' own plain ports (the node that holds it answers;
        // the others redirect).
        let key = db.key(&Counter::key_of("tls-7"));
        let mut found = Vec::new();
        for url in cluster.plain().urls() {
            let mut node = redis::Client::open(url.as_str())
                .expect("url")
                .get_connection()
                .expect("a plain connection to a node");
            if let Ok(Some(text)) = redis::cmd("JSON.GET")
                .arg(&key)
                .query::<Option<String>>(&mut node)
            {
                found.push(serde_json::from_str::<serde_json::Value>(&text).expect("JSON"));
            }
        }
        assert_eq!(
            found,
            vec![json!({"id": "tls-7", "n": 43, "tags": ["a", "b"]})]
        );
        let counted = Counted::find(&db, Counted::fields().n.ge(0));
        db.init::<Counted>()
            .await
            .expect("init on every primary over TLS");
        for id in ["a", "b", "c"] {
            Counted {
                id: id.into(),
                n: 5,
            }
            .save(&db)
            .await
            .expect("save");
        }
        assert_eq!(counted.count().await.expect("count over TLS"), 3);
    }

    #[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
    struct Counted {
        #[rapyer(key)]
        id: String,
        #[rapyer(index)]
        n: i64,
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rediss_url_to_a_server_whose_certificate_is_not_trusted_fails_to_connect() {
        let proxy = TlsProxy::start(rapyer_testkit::server().url()).expect("TLS proxy");
        // The system's roots do not include the CA made for this proxy.
        match Db::connect_with(proxy.url(), fail_fast().reconnect_retries(0)).await {
            Err(Error::Redis { op, source }) => {
                assert_eq!(op, "connect");
                assert!(
                    source.to_string().to_lowercase().contains("certificate"),
                    "{source}"
                );
            }
            other => panic!("an untrusted certificate gave {other:?}"),
        }
    }
}
