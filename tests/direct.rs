//! The direct path (`ConnectOptions::direct_connections`), against real servers: a call made
//! with nothing else in flight on the thread that runs `block_on` of a multi-thread runtime
//! (each test's body) runs on a dedicated connection it drives itself, one from a spawned
//! task on the shared connection;
//! a call dropped mid-request leaves no reply for the next caller (its connection is closed
//! and replaced); a dedicated connection closed by the server (killed, or the server
//! restarted) costs no call more than the multiplexed connection does, and comes back by
//! itself; many calls at once and one at a time, alternating, each get their own reply; a
//! cluster `Db` opens none. Which connection ran what is read from the server (`CLIENT
//! LIST`'s `tot-cmds`), on a server of each test's own.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rapyer::prelude::*;
use rapyer::script::NONE;
use rapyer::{ConnectOptions, Error};
use serde::{Deserialize, Serialize};
use serde_json::json;

use common::{Rng, stored};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Doc")]
struct Doc {
    #[rapyer(key)]
    id: String,
    n: i64,
    text: String,
}

/// A document whose text holds what hostile input looks like, so a reply read by the wrong
/// caller could not pass for the right one.
fn doc(id: &str) -> Doc {
    Doc {
        id: id.to_string(),
        n: 0,
        text: format!("{id} \"'] or 1==1 -- \n{{}}|@ 🎉"),
    }
}

/// Returns `ARGV[1]` after `ARGV[2]` turns of a loop (100,000 take about a millisecond), so
/// a caller can be dropped while the server is still running it. (Not a loop on `TIME`:
/// inside a script it answers the same time at every call, verified.)
const ECHO_SLOWLY: &str = "local x = 0 \
    for i = 1, tonumber(ARGV[2]) do x = x + i end \
    return ARGV[1]";

/// A connection the server has open, from `CLIENT LIST`.
#[derive(Debug, Clone)]
struct Client {
    id: u64,
    tot_cmds: u64,
}

/// A server of the test's own, a `Db` on it with `options`, and a plain connection that
/// checks what happened there (left out of [`clients`]).
struct Setup {
    server: Arc<rapyer_testkit::Server>,
    db: Db,
    checker: redis::aio::MultiplexedConnection,
    checker_id: u64,
}

/// A plain connection to `url` and its `CLIENT ID`.
async fn checker(url: &str) -> (redis::aio::MultiplexedConnection, u64) {
    let mut checker = redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("checker connection");
    let id: u64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut checker)
        .await
        .expect("CLIENT ID");
    (checker, id)
}

async fn setup(options: ConnectOptions) -> Setup {
    let server = common::own_server().await;
    let db = Db::connect_with(server.url(), options)
        .await
        .expect("connect")
        .with_namespace(rapyer_testkit::test_namespace())
        .expect("the test namespace is valid");
    db.scripts()
        .define("echo_slowly", Keys::Fixed(0), ECHO_SLOWLY)
        .expect("define");
    let (checker, checker_id) = checker(server.url()).await;
    Setup {
        server: Arc::new(server),
        db,
        checker,
        checker_id,
    }
}

impl Setup {
    /// Every connection but the checker's, oldest first.
    async fn clients(&mut self) -> Vec<Client> {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut self.checker)
            .await
            .expect("CLIENT LIST");
        let mut clients: Vec<Client> = list
            .lines()
            .filter_map(|line| {
                let field = |name: &str| {
                    line.split(' ')
                        .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                        .and_then(|v| v.parse::<u64>().ok())
                };
                Some(Client {
                    id: field("id")?,
                    tot_cmds: field("tot-cmds")?,
                })
            })
            .filter(|c| c.id != self.checker_id)
            .collect();
        clients.sort_by_key(|c| c.id);
        clients
    }

    /// Waits until exactly `n` connections besides the checker's are open, the same ones
    /// 50 ms apart (a connection closing or opening is not counted half-way).
    async fn wait_for_clients(&mut self, n: usize) -> Vec<Client> {
        let started = Instant::now();
        loop {
            let clients = self.clients().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let again = self.clients().await;
            let ids = |c: &[Client]| c.iter().map(|c| c.id).collect::<Vec<_>>();
            if clients.len() == n && ids(&clients) == ids(&again) {
                return again;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{} connections after {:?}, waiting for {n}: {clients:?}",
                clients.len(),
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The id of the `Db`'s shared multiplexed connection: the one that ran most of 64 calls
/// made at once (the dedicated connections take one call at a time each).
async fn shared_id(s: &mut Setup) -> u64 {
    let before = s.clients().await;
    let calls: Vec<_> = (0..64)
        .map(|_| {
            let db = s.db.clone();
            tokio::spawn(async move { db.scripts().exists("echo_slowly").await })
        })
        .collect();
    for call in calls {
        call.await.expect("task").expect("SCRIPT EXISTS");
    }
    let after = s.clients().await;
    let ran = commands_run(&before, &after);
    let (id, most) = ran
        .iter()
        .copied()
        .max_by_key(|r| r.1)
        .expect("a connection");
    assert!(
        most >= 32,
        "no connection ran most of 64 calls at once: {ran:?}"
    );
    id
}

/// The commands each connection ran between two `CLIENT LIST`s, by id (a connection opened
/// in between counts from zero; the checker's own `CLIENT LIST` is not in `tot-cmds` yet).
/// The commands of `ran` that ran on the connection `shared`, and on the others.
fn split(ran: &[(u64, u64)], shared: u64) -> (u64, u64) {
    ran.iter().fold((0, 0), |(on, off), &(id, n)| {
        if id == shared {
            (on + n, off)
        } else {
            (on, off + n)
        }
    })
}

fn commands_run(before: &[Client], after: &[Client]) -> Vec<(u64, u64)> {
    after
        .iter()
        .map(|a| {
            let was = before
                .iter()
                .find(|b| b.id == a.id)
                .map_or(0, |b| b.tot_cmds);
            (a.id, a.tot_cmds - was)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_made_one_at_a_time_outside_spawned_tasks_run_on_the_dedicated_connections() {
    let mut s = setup(ConnectOptions::default()).await;
    let d = doc("one");
    d.save(&s.db).await.expect("save");
    // The first call opened the two dedicated connections in the background.
    s.wait_for_clients(3).await;
    let shared = shared_id(&mut s).await;
    let before = s.clients().await;
    for _ in 0..100 {
        assert_eq!(Doc::get(&s.db, "one").await.expect("get"), d);
    }
    let after = s.clients().await;
    let ran = commands_run(&before, &after);
    let on_shared: u64 = ran
        .iter()
        .filter(|(id, _)| *id == shared)
        .map(|r| r.1)
        .sum();
    let on_dedicated: u64 = ran
        .iter()
        .filter(|(id, _)| *id != shared)
        .map(|r| r.1)
        .sum();
    assert_eq!(
        (on_shared, on_dedicated),
        (0, 100),
        "one JSON.GET per get, all on the dedicated connections: {ran:?}"
    );

    // From a spawned task (a worker thread), where the hand-over to the shared connection's
    // task is cheap and a dedicated connection measured slower, the same calls share it.
    let before = s.clients().await;
    let db = s.db.clone();
    let expected = d.clone();
    tokio::spawn(async move {
        for _ in 0..100 {
            assert_eq!(Doc::get(&db, "one").await.expect("get"), expected);
        }
    })
    .await
    .expect("task");
    let ran = commands_run(&before, &s.clients().await);
    assert_eq!(
        split(&ran, shared),
        (100, 0),
        "from a spawned task: {ran:?}"
    );

    // Turned off: the one shared connection runs everything, and nothing else is opened.
    let mut off = setup(ConnectOptions::default().direct_connections(0)).await;
    d.save(&off.db).await.expect("save");
    let before = off.wait_for_clients(1).await;
    for _ in 0..100 {
        assert_eq!(Doc::get(&off.db, "one").await.expect("get"), d);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = off.clients().await;
    assert_eq!(commands_run(&before, &after), vec![(before[0].id, 100)]);
}

/// Runs `fut`, dropping it at a random point (within 3 ms, or after 0 to 3 polls).
async fn cancel_randomly<F: Future>(rng: &mut Rng, fut: F) -> Option<F::Output> {
    common::cancel_randomly(rng, 3_000, 4, fut).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dropped_mid_request_leaves_no_reply_for_the_next_caller_of_its_connection() {
    let mut s = setup(ConnectOptions::default()).await;
    let ids: Vec<String> = (0..8).map(|i| format!("doc-{i}")).collect();
    for id in &ids {
        doc(id).save(&s.db).await.expect("save");
    }
    s.wait_for_clients(3).await;
    let mut rng = Rng(0xd1_7ec7);
    let (mut dropped, mut finished) = (0, 0);
    for round in 0..600u64 {
        // A call the server is still running (1 to 3 ms) when it is dropped, or not.
        let token = format!("token {round} \"'] \n🎉");
        let slow = s.db.run_script::<String>(
            "echo_slowly",
            NONE,
            (token.as_str(), 100_000 + rng.below(200_000)),
        );
        match cancel_randomly(&mut rng, slow).await {
            Some(reply) => {
                assert_eq!(reply.expect("echo"), token);
                finished += 1;
            }
            None => dropped += 1,
        }
        // The next calls, on whichever connection, get their own replies.
        let next = format!("next {round}");
        let reply: String =
            s.db.run_script("echo_slowly", NONE, (next.as_str(), 0))
                .await
                .expect("echo after a dropped call");
        assert_eq!(reply, next);
        let id = &ids[(round % 8) as usize];
        assert_eq!(Doc::get(&s.db, id).await.expect("get"), doc(id));
    }
    eprintln!("{dropped} calls dropped, {finished} finished");
    assert!(
        dropped > 100 && finished > 100,
        "{dropped} dropped, {finished} finished"
    );
    // A call dropped with its request in flight closed its dedicated connection; new ones
    // were opened, and are in use.
    s.wait_for_clients(3).await;
    let shared = shared_id(&mut s).await;
    let before = s.clients().await;
    for id in &ids {
        assert_eq!(Doc::get(&s.db, id).await.expect("get"), doc(id));
    }
    let ran = commands_run(&before, &s.clients().await);
    assert_eq!(split(&ran, shared), (0, 8), "{ran:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedicated_connections_closed_by_the_server_cost_no_call_and_come_back() {
    let options = ConnectOptions::default()
        .response_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_millis(500))
        .reconnect_retries(2)
        .reconnect_min_delay(Duration::from_millis(100))
        .reconnect_max_delay(Duration::from_millis(200));
    let mut s = setup(options).await;
    let mut d = doc("restart");
    d.save(&s.db).await.expect("save");
    let key = s.db.key(&Doc::key_of("restart"));

    // Killed while idle (as a server's `timeout` setting does): the next call finds the
    // connection closed before sending and goes through the shared one; none fails.
    s.wait_for_clients(3).await;
    let shared = shared_id(&mut s).await;
    let clients = s.clients().await;
    for dedicated in clients.iter().filter(|c| c.id != shared) {
        let _: () = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(dedicated.id)
            .query_async(&mut s.checker)
            .await
            .expect("CLIENT KILL");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in 1..=20 {
        assert_eq!(d.n().incr(&s.db, 1).await.expect("incr after a kill"), n);
    }
    assert_eq!(stored(&mut s.checker, &key).await["n"], json!(20));
    // Two new dedicated connections, in use again.
    let before = s.wait_for_clients(3).await;
    assert!(
        before.iter().any(|c| c.id == shared),
        "the shared connection is the same"
    );
    for _ in 0..10 {
        Doc::get(&s.db, "restart").await.expect("get");
    }
    let ran = commands_run(&before, &s.clients().await);
    assert_eq!(split(&ran, shared), (0, 10), "{ran:?}");

    // The server restarted: every connection drops. Calls fail at most as long as the shared
    // connection alone would make them (it reconnects), each with a typed error, and then
    // the dedicated connections are back.
    let restarting = s.server.clone();
    tokio::task::spawn_blocking(move || restarting.restart())
        .await
        .expect("restart task")
        .expect("restart the server");
    let back = Instant::now();
    let mut failures = 0;
    let got = loop {
        match Doc::get(&s.db, "restart").await {
            Ok(got) => break got,
            Err(Error::Redis { .. }) if back.elapsed() < Duration::from_secs(15) => {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("after the restart: {e} ({:?})", back.elapsed()),
        }
    };
    eprintln!(
        "{failures} failed calls after the restart, then success after {:?}",
        back.elapsed()
    );
    assert!(failures <= 2, "{failures} calls failed after the restart");
    assert_eq!(got.n, 20, "the data saved before the restart");
    (s.checker, s.checker_id) = checker(s.server.url()).await;
    s.wait_for_clients(3).await;
    // The script cache is empty after a restart: load it, through whichever connection.
    assert_eq!(d.n().incr(&s.db, 1).await.expect("incr"), 21);
    let shared = shared_id(&mut s).await;
    let clients = s.clients().await;
    for n in 22..=30 {
        assert_eq!(d.n().incr(&s.db, 1).await.expect("incr"), n);
    }
    // (A script's own commands count as its caller's: at least one per call.)
    let ran = commands_run(&clients, &s.clients().await);
    let (on_shared, on_dedicated) = split(&ran, shared);
    assert!(on_shared == 0 && on_dedicated >= 9, "{ran:?}");
    assert_eq!(stored(&mut s.checker, &key).await["n"], json!(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_alternating_between_one_at_a_time_and_many_at_once_each_get_their_own_reply() {
    let mut s = setup(ConnectOptions::default()).await;
    let tasks = 64u64;
    for t in 0..tasks {
        doc(&format!("task-{t}")).save(&s.db).await.expect("save");
    }
    s.wait_for_clients(3).await;

    /// What one task's calls reported: increments that returned, and those dropped.
    async fn work(db: Db, t: u64, calls: u64, seed: u64) -> (i64, i64) {
        let id = format!("task-{t}");
        let mut mine = doc(&id);
        let mut rng = Rng(seed);
        let (mut ok, mut dropped) = (0, 0);
        for call in 0..calls {
            match call % 4 {
                0 => match cancel_randomly(&mut rng, mine.n().incr(&db, 1)).await {
                    Some(result) => {
                        result.expect("incr");
                        ok += 1;
                    }
                    None => dropped += 1,
                },
                1 => {
                    let token = format!("{t}/{call} \"'\n");
                    let echo = db.run_script::<String>("echo_slowly", NONE, (token.as_str(), 0));
                    if let Some(reply) = cancel_randomly(&mut rng, echo).await {
                        assert_eq!(reply.expect("echo"), token);
                    }
                }
                2 => {
                    let other = format!("task-{}", rng.below(64));
                    let got = Doc::get(&db, &other).await.expect("get");
                    assert_eq!(
                        (got.id.as_str(), got.text),
                        (other.as_str(), doc(&other).text)
                    );
                }
                _ => {
                    // A transaction: its replies in order, on one connection.
                    let mut tx = db.transaction();
                    tx.run_script("echo_slowly", NONE, ("first", 0));
                    tx.run_script("echo_slowly", NONE, ("second", 0));
                    let replies = tx.execute().await.expect("transaction");
                    let texts: Vec<String> = replies
                        .into_iter()
                        .map(|v| redis::from_redis_value(v).expect("text"))
                        .collect();
                    assert_eq!(texts, ["first", "second"]);
                }
            }
        }
        (ok, dropped)
    }

    let mut totals = vec![(0i64, 0i64); tasks as usize];
    for phase in 0..4u64 {
        if phase % 2 == 0 {
            // One at a time, every task's calls in turn from this task.
            for t in 0..tasks {
                let (ok, dropped) = work(s.db.clone(), t, 8, phase * 1_000 + t).await;
                totals[t as usize].0 += ok;
                totals[t as usize].1 += dropped;
            }
        } else {
            let running: Vec<_> = (0..tasks)
                .map(|t| tokio::spawn(work(s.db.clone(), t, 40, phase * 1_000 + t)))
                .collect();
            for (t, task) in running.into_iter().enumerate() {
                let (ok, dropped) = task.await.expect("task");
                totals[t].0 += ok;
                totals[t].1 += dropped;
            }
        }
    }
    for (t, (ok, dropped)) in totals.iter().enumerate() {
        let key = s.db.key(&Doc::key_of(format!("task-{t}")));
        let n = stored(&mut s.checker, &key).await["n"]
            .as_i64()
            .expect("n is an integer");
        assert!(
            (*ok..=ok + dropped).contains(&n),
            "task {t}: {n} increments stored, {ok} returned and {dropped} dropped"
        );
    }
    // Three connections again: the shared one and two dedicated ones (those closed by
    // dropped calls were replaced), none leaked.
    s.wait_for_clients(3).await;
}

/// Connections open on every primary of the testkit's cluster, but the counting one's own.
async fn cluster_connections(primaries: &[String]) -> usize {
    let mut total = 0;
    for url in primaries {
        let mut node = redis::Client::open(url.as_str())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("node connection");
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut node)
            .await
            .expect("CLIENT LIST");
        total += list.lines().count() - 1;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_no_dedicated_connection_is_opened_and_every_call_works() {
    let cluster = rapyer_testkit::cluster();
    let nodes = tokio::task::spawn_blocking(|| rapyer_testkit::cluster().nodes())
        .await
        .expect("nodes task")
        .expect("CLUSTER NODES");
    let primaries: Vec<String> = nodes
        .iter()
        .filter(|n| n.primary)
        .map(|n| n.url())
        .collect();
    let mut opened = Vec::new();
    for options in [
        ConnectOptions::default().direct_connections(0),
        ConnectOptions::default().direct_connections(4),
    ] {
        let before = cluster_connections(&primaries).await;
        let db = Db::connect_cluster_with(cluster.urls(), options)
            .await
            .expect("connect to the cluster")
            .with_namespace(rapyer_testkit::test_namespace())
            .expect("the test namespace is valid");
        // One at a time, over keys of many slots: on one server these would open and use
        // the dedicated connections.
        for i in 0..30 {
            let mut d = doc(&format!("c{i}"));
            d.save(&db).await.expect("save");
            assert_eq!(d.n().incr(&db, 1).await.expect("incr"), 1);
            assert_eq!(Doc::get(&db, &d.id).await.expect("get"), d);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        opened.push(cluster_connections(&primaries).await - before);
        drop(db);
        // Its connections close before the next count.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        opened[0], opened[1],
        "connections the cluster Db opened on the primaries, without and with direct_connections"
    );
}
