//! Locks on models against the real server: taking and releasing, waiting and timing out,
//! expiry of a vanished holder, a lost lock refusing to save, extension, background release
//! on drop, no lost update among concurrent read-modify-write holders, a save that writes
//! only what its holder changed (lock-free changes made meanwhile survive, hostile dict keys
//! round-trip), a release cut off in transit that still frees the lock once the server is
//! reachable again, and cancellation and shutdown: a `lock()` or `release()` dropped half-way
//! and a guard dropped as its runtime ends leave no lock held.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rapyer::prelude::*;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use common::{db, pttl, raw, stored};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Account")]
struct Account {
    #[rapyer(key)]
    id: String,
    balance: i64,
    owner: String,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Ticket", ttl = 120)]
struct Ticket {
    #[rapyer(key)]
    id: String,
    seat: String,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Stats {
    wins: i64,
    losses: i64,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Player")]
struct Player {
    #[rapyer(key)]
    id: String,
    name: String,
    stats: Stats,
    prefs: BTreeMap<String, String>,
}

#[cfg(feature = "chrono")]
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Gig", ttl = 60)]
struct Gig {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    starts: chrono::DateTime<chrono::Utc>,
    seats: i64,
}

fn player(id: &str) -> Player {
    Player {
        id: id.to_string(),
        name: "ann".into(),
        stats: Stats { wins: 0, losses: 0 },
        prefs: BTreeMap::from([("theme".to_string(), "dark".to_string())]),
    }
}

fn account(id: &str, balance: i64) -> Account {
    Account {
        id: id.to_string(),
        balance,
        owner: "ann".into(),
    }
}

async fn exists(raw: &mut redis::aio::MultiplexedConnection, key: &str) -> bool {
    raw.exists(key).await.expect("EXISTS")
}

fn quick() -> LockOptions {
    LockOptions::default()
        .ttl(Duration::from_secs(5))
        .timeout(Duration::from_millis(200))
}

#[tokio::test]
async fn lock_reads_saves_and_releases() {
    let db = db().await;
    let mut raw = raw().await;
    account("a1", 100).save(&db).await.expect("save");
    // Someone changes the stored model: the guard holds the server's copy, not a stale one.
    let _: () = redis::cmd("JSON.SET")
        .arg(db.key("Account:a1"))
        .arg("$.balance")
        .arg(150)
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");

    let mut guard = Account::lock(&db, "a1", quick()).await.expect("lock");
    assert_eq!(guard.balance, 150);
    assert_eq!(guard.key(), db.key("Account:a1"));
    let lock_key = guard.lock_key().to_string();
    assert!(lock_key.starts_with(&db.key("_rapyer:lock:")), "{lock_key}");
    assert!(lock_key.ends_with(":Account:a1"), "{lock_key}");
    assert!(exists(&mut raw, &lock_key).await);
    let left = pttl(&mut raw, &lock_key).await;
    assert!(left > 4_000 && left <= 5_000, "lock ttl {left}");

    guard.balance += 25;
    guard.owner = "bob".into();
    guard.save().await.expect("save under the lock");
    assert_eq!(
        stored(&mut raw, &db.key("Account:a1")).await,
        serde_json::json!({"id": "a1", "balance": 175, "owner": "bob"})
    );
    guard.release().await.expect("release");
    assert!(!exists(&mut raw, &lock_key).await, "the lock key is gone");
    // Free again at once.
    Account::lock(&db, "a1", quick())
        .await
        .expect("lock again")
        .release()
        .await
        .expect("release again");
}

#[tokio::test]
async fn a_held_lock_times_out_and_a_vanished_holder_frees_it_after_its_ttl() {
    let db = db().await;
    let mut raw = raw().await;
    account("a2", 1).save(&db).await.expect("save");
    let short = LockOptions::default()
        .ttl(Duration::from_millis(400))
        .timeout(Duration::ZERO);
    let holder = Account::lock(&db, "a2", short).await.expect("first lock");
    let lock_key = holder.lock_key().to_string();

    let started = Instant::now();
    match Account::lock(&db, "a2", quick()).await {
        Err(Error::LockTimeout { key, waited }) => {
            assert_eq!(key, db.key("Account:a2"));
            assert!(waited >= Duration::from_millis(200), "{waited:?}");
        }
        other => panic!("expected LockTimeout, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(200));
    // The holder vanishes without releasing (no drop, no release): the lock expires.
    std::mem::forget(holder);
    let waiting = LockOptions::default().timeout(Duration::from_secs(5));
    let started = Instant::now();
    let next = Account::lock(&db, "a2", waiting)
        .await
        .expect("lock after expiry");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(next.lock_key(), lock_key);
    next.release().await.expect("release");
    assert!(!exists(&mut raw, &lock_key).await);
}

#[tokio::test]
async fn a_lost_lock_refuses_to_save_and_release() {
    let db = db().await;
    let mut raw = raw().await;
    account("a3", 10).save(&db).await.expect("save");
    let brief = LockOptions::default().ttl(Duration::from_millis(100));
    let mut first = Account::lock(&db, "a3", brief).await.expect("lock");
    tokio::time::sleep(Duration::from_millis(250)).await;
    // The lock expired; another holder takes it and saves.
    let mut second = Account::lock(&db, "a3", quick()).await.expect("second");
    second.balance = 99;
    second.save().await.expect("second saves");

    first.balance = -1;
    match first.save().await {
        Err(Error::LockLost { key }) => assert_eq!(key, db.key("Account:a3")),
        other => panic!("expected LockLost, got {other:?}"),
    }
    assert!(matches!(
        first.extend(Duration::from_secs(5)).await,
        Err(Error::LockLost { .. })
    ));
    match first.release().await {
        Err(Error::LockLost { .. }) => {}
        other => panic!("expected LockLost, got {other:?}"),
    }
    // Nothing of the lost holder reached the server, and the second lock is intact.
    assert_eq!(stored(&mut raw, &db.key("Account:a3")).await["balance"], 99);
    assert!(exists(&mut raw, second.lock_key()).await);
    second.release().await.expect("release");
}

#[tokio::test]
async fn extend_renews_and_saves_keep_the_model_ttl() {
    let db = db().await;
    let mut raw = raw().await;
    let ticket = Ticket {
        id: "t1".into(),
        seat: "12A".into(),
    };
    ticket.save(&db).await.expect("save");
    let options = LockOptions::default().ttl(Duration::from_millis(300));
    let mut guard = Ticket::lock(&db, "t1", options).await.expect("lock");
    guard.extend(Duration::from_secs(30)).await.expect("extend");
    let left = pttl(&mut raw, guard.lock_key()).await;
    assert!(left > 29_000, "extended lock ttl {left}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    guard.seat = "14C".into();
    guard.save().await.expect("still held after the first ttl");
    let key = db.key("Ticket:t1");
    assert_eq!(stored(&mut raw, &key).await["seat"], "14C");
    let model_ttl = pttl(&mut raw, &key).await;
    assert!(
        model_ttl > 110_000 && model_ttl <= 120_000,
        "model ttl {model_ttl}"
    );
    guard.release().await.expect("release");
}

#[tokio::test]
async fn dropping_a_guard_releases_it_in_the_background() {
    let db = db().await;
    let mut raw = raw().await;
    account("a4", 0).save(&db).await.expect("save");
    let lock_key = {
        let guard = Account::lock(&db, "a4", quick()).await.expect("lock");
        guard.lock_key().to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while exists(&mut raw, &lock_key).await {
        assert!(Instant::now() < deadline, "the dropped guard's lock stayed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Account::lock(&db, "a4", quick())
        .await
        .expect("free after drop")
        .release()
        .await
        .expect("release");
}

#[tokio::test]
async fn missing_broken_and_foreign_models_take_no_lock() {
    let db = db().await;
    let mut raw = raw().await;
    match Account::lock(&db, "ghost", quick()).await {
        Err(Error::NotFound { key }) => assert_eq!(key, db.key("Account:ghost")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let _: () = raw
        .set(db.key("Account:text"), "not json")
        .await
        .expect("SET");
    match Account::lock(&db, "text", quick()).await {
        Err(Error::TypeMismatch { key, found, .. }) => {
            assert_eq!(key, db.key("Account:text"));
            assert_eq!(found, "string");
        }
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    let _: () = redis::cmd("JSON.SET")
        .arg(db.key("Account:broken"))
        .arg("$")
        .arg(r#"{"id":"broken","balance":"lots"}"#)
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");
    match Account::lock(&db, "broken", quick()).await {
        Err(Error::Deserialize { key, path, .. }) => {
            assert_eq!(key, db.key("Account:broken"));
            assert_eq!(path, "balance");
        }
        other => panic!("expected Deserialize, got {other:?}"),
    }
    // None of them left a lock behind.
    let pattern = format!("{}*lock*", db.namespace());
    let locks: Vec<String> = raw.keys(pattern).await.expect("KEYS");
    assert!(locks.is_empty(), "locks left: {locks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_read_modify_write_under_the_lock_loses_nothing() {
    let db = db().await;
    let mut raw = raw().await;
    account("shared", 0).save(&db).await.expect("save");
    let patient = LockOptions::default()
        .ttl(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .retry_every(Duration::from_millis(2));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let db = db.clone();
        let options = patient.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                let mut guard = Account::lock(&db, "shared", options.clone())
                    .await
                    .expect("lock");
                // Read, yield to the others, then write: without the lock this loses updates.
                let seen = guard.balance;
                tokio::task::yield_now().await;
                guard.balance = seen + 1;
                guard.save().await.expect("save");
                guard.release().await.expect("release");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(
        stored(&mut raw, &db.key("Account:shared")).await["balance"],
        400
    );
}

/// `DUMP key`: the stored value's exact serialization.
async fn dump(raw: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<u8> {
    redis::cmd("DUMP")
        .arg(key)
        .query_async(raw)
        .await
        .expect("DUMP")
}

/// Polls until `key` is gone; fails if it is still there after `within`.
async fn wait_gone(raw: &mut redis::aio::MultiplexedConnection, key: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while exists(raw, key).await {
        assert!(
            Instant::now() < deadline,
            "{key} still held after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A TCP relay between a `Db` and the test server that can go down. While down it cuts each
/// connection as soon as the client sends anything (the command never reaches the server,
/// the client sees its connection drop) and refuses new connections.
struct Relay {
    url: String,
    down: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
}

impl Relay {
    async fn start() -> Relay {
        // redis://[user:pass@]host:port[/db] -> the same URL through the relay.
        let server = rapyer_testkit::server().url();
        let (scheme, rest) = server.split_once("://").expect("a redis:// URL");
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (user, upstream) = match authority.rfind('@') {
            Some(at) => authority.split_at(at + 1),
            None => ("", authority),
        };
        let upstream = upstream.to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let local = listener.local_addr().expect("relay address");
        let down = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicUsize::new(0));
        let (d, c) = (down.clone(), cuts.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    continue; // refused: the socket is dropped at once
                }
                tokio::spawn(relay_one(client, upstream.clone(), d.clone(), c.clone()));
            }
        });
        Relay {
            url: format!("{scheme}://{user}{local}{path}"),
            down,
            cuts,
        }
    }

    /// A `Db` whose only connection goes through the relay, in the test's own namespace.
    async fn db(&self) -> Db {
        Db::connect(&self.url)
            .await
            .expect("connect through the relay")
            .with_namespace(rapyer_testkit::test_namespace())
            .expect("the test namespace is valid")
    }

    fn go_down(&self) {
        self.down.store(true, Ordering::SeqCst);
    }

    fn come_back(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

async fn relay_one(
    client: TcpStream,
    upstream: String,
    down: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
) {
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let replies = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from_client.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if down.load(Ordering::SeqCst) {
            cuts.fetch_add(1, Ordering::SeqCst);
            break;
        }
        if to_server.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    // Dropping every half closes both sockets.
    replies.abort();
}

#[tokio::test]
async fn a_release_cut_off_in_transit_frees_the_lock_once_the_server_is_reachable_again() {
    let relay = Relay::start().await;
    let db = relay.db().await;
    let mut raw = raw().await;
    account("cut", 1).save(&db).await.expect("save");
    let long = LockOptions::default().ttl(Duration::from_secs(30));
    let guard = Account::lock(&db, "cut", long).await.expect("lock");
    let lock_key = guard.lock_key().to_string();

    relay.go_down();
    match guard.release().await {
        Err(Error::Redis { .. }) => {}
        other => panic!("expected the cut release to fail with Error::Redis, got {other:?}"),
    }
    assert!(relay.cuts() >= 1, "the release was sent and cut off");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        exists(&mut raw, &lock_key).await,
        "nothing reached the server while the relay was down"
    );
    relay.come_back();
    // The lock's ttl is 30 s: only a retried release frees it this soon.
    wait_gone(&mut raw, &lock_key, Duration::from_secs(5)).await;
    Account::lock(&db, "cut", quick())
        .await
        .expect("free again")
        .release()
        .await
        .expect("release");
}

#[tokio::test]
async fn a_dropped_guard_whose_release_is_cut_off_frees_the_lock_once_the_server_is_reachable_again()
 {
    let relay = Relay::start().await;
    let db = relay.db().await;
    let mut raw = raw().await;
    account("cut-drop", 1).save(&db).await.expect("save");
    let long = LockOptions::default().ttl(Duration::from_secs(30));
    let guard = Account::lock(&db, "cut-drop", long).await.expect("lock");
    let lock_key = guard.lock_key().to_string();

    relay.go_down();
    drop(guard);
    let deadline = Instant::now() + Duration::from_secs(5);
    while relay.cuts() == 0 {
        assert!(
            Instant::now() < deadline,
            "the background release was never sent"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        exists(&mut raw, &lock_key).await,
        "the cut release did not run"
    );
    relay.come_back();
    wait_gone(&mut raw, &lock_key, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn save_writes_the_holders_change_and_keeps_a_lock_free_incr_made_meanwhile() {
    let db = db().await;
    let mut raw = raw().await;
    account("beside", 100).save(&db).await.expect("save");
    player("beside").save(&db).await.expect("save");

    let mut guard = Account::lock(&db, "beside", quick()).await.expect("lock");
    let mut holder = Player::lock(&db, "beside", quick()).await.expect("lock");
    // Another task, taking no lock, changes other fields between the lock and the save.
    let other = {
        let db = db.clone();
        tokio::spawn(async move {
            let mut account = Account::get(&db, "beside").await.expect("get");
            let balance = account.balance().incr(&db, 5).await.expect("incr");
            let mut player = Player::get(&db, "beside").await.expect("get");
            let wins = player
                .stats()
                .wins()
                .incr(&db, 3)
                .await
                .expect("nested incr");
            (balance, wins)
        })
    };
    assert_eq!(other.await.expect("task"), (105, 3));

    guard.owner = "bob".into();
    guard.save().await.expect("save");
    assert_eq!(
        stored(&mut raw, &db.key("Account:beside")).await,
        json!({"id": "beside", "balance": 105, "owner": "bob"})
    );
    // Inside a nested object too: the holder's `losses` and the other task's `wins`.
    holder.stats.losses = 2;
    holder.name = "zoe".into();
    holder.save().await.expect("save");
    assert_eq!(
        stored(&mut raw, &db.key("Player:beside")).await,
        json!({
            "id": "beside",
            "name": "zoe",
            "stats": {"wins": 3, "losses": 2},
            "prefs": {"theme": "dark"},
        })
    );
    guard.release().await.expect("release");
    holder.release().await.expect("release");
}

#[tokio::test]
async fn a_save_with_no_changes_writes_nothing_and_still_checks_the_lock() {
    let db = db().await;
    let mut raw = raw().await;
    let ticket = Ticket {
        id: "same".into(),
        seat: "1A".into(),
    };
    ticket.save(&db).await.expect("save");
    let key = db.key("Ticket:same");
    let mut guard = Ticket::lock(&db, "same", quick()).await.expect("lock");
    // A lock-free change and a shorter expiry, made after the lock read the model.
    let _: () = redis::cmd("JSON.SET")
        .arg(&key)
        .arg("$.seat")
        .arg("\"9Z\"")
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");
    let _: () = raw.pexpire(&key, 50_000).await.expect("PEXPIRE");
    let before = dump(&mut raw, &key).await;

    guard.save().await.expect("save with nothing changed");
    assert_eq!(
        dump(&mut raw, &key).await,
        before,
        "the document is untouched"
    );
    assert_eq!(stored(&mut raw, &key).await["seat"], "9Z");
    assert!(
        pttl(&mut raw, &key).await <= 50_000,
        "the expiry is untouched"
    );
    guard.release().await.expect("release");

    // Nothing to write, but a lost lock is still LockLost.
    let brief = LockOptions::default().ttl(Duration::from_millis(50));
    let mut lost = Ticket::lock(&db, "same", brief).await.expect("lock");
    tokio::time::sleep(Duration::from_millis(150)).await;
    match lost.save().await {
        Err(Error::LockLost { key: lost_key }) => assert_eq!(lost_key, key),
        other => panic!("expected LockLost, got {other:?}"),
    }
}

#[tokio::test]
async fn a_second_save_writes_only_what_changed_since_the_first() {
    let db = db().await;
    let mut raw = raw().await;
    account("twice", 10).save(&db).await.expect("save");
    let key = db.key("Account:twice");
    let mut guard = Account::lock(&db, "twice", quick()).await.expect("lock");
    guard.owner = "bob".into();
    guard.save().await.expect("first save");
    assert_eq!(stored(&mut raw, &key).await["owner"], "bob");

    // Changed after the first save by code that takes no lock.
    let _: () = redis::cmd("JSON.SET")
        .arg(&key)
        .arg("$.owner")
        .arg("\"zed\"")
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");
    guard.balance = 11;
    guard.save().await.expect("second save");
    assert_eq!(
        stored(&mut raw, &key).await,
        json!({"id": "twice", "balance": 11, "owner": "zed"}),
        "the second save wrote the balance only, not the owner it had already saved"
    );
    guard.release().await.expect("release");
}

#[tokio::test]
async fn hostile_dict_keys_round_trip_through_guard_save() {
    let db = db().await;
    let mut raw = raw().await;
    player("hostile").save(&db).await.expect("save");
    let hostile = [
        "a'] or 1==1 --",
        "\"",
        "'",
        "both \" and '",
        "[\"x\"]",
        "new\nline",
        "back\\slash",
        "🎉",
        " lead",
        "a.b",
        "$",
        "*",
        "{",
        "|",
        "@",
        "",
    ];
    let mut guard = Player::lock(&db, "hostile", quick()).await.expect("lock");
    for (i, name) in hostile.iter().enumerate() {
        guard.prefs.insert(name.to_string(), format!("{name}#{i}"));
    }
    // A lock-free change beside the dict survives its write.
    let mut other = Player::get(&db, "hostile").await.expect("get");
    other.stats().wins().incr(&db, 1).await.expect("incr");
    guard.save().await.expect("save");
    let mut expected = guard.prefs.clone();
    let back = Player::get(&db, "hostile").await.expect("get");
    assert_eq!(back.prefs, expected);
    assert_eq!(back.stats.wins, 1);
    assert_eq!(back.prefs.len(), hostile.len() + 1);

    // Removing and changing hostile keys in a second save.
    guard.prefs.remove("a'] or 1==1 --");
    guard.prefs.remove("new\nline");
    guard
        .prefs
        .insert("both \" and '".into(), "changed ']\n".into());
    expected.remove("a'] or 1==1 --");
    expected.remove("new\nline");
    expected.insert("both \" and '".into(), "changed ']\n".into());
    guard.save().await.expect("second save");
    let back = Player::get(&db, "hostile").await.expect("get");
    assert_eq!(back.prefs, expected);
    assert_eq!(back.stats.wins, 1);
    assert_eq!(
        stored(&mut raw, &db.key("Player:hostile")).await["prefs"],
        serde_json::to_value(&expected).expect("json")
    );
    guard.release().await.expect("release");
}

#[cfg(feature = "chrono")]
#[tokio::test]
async fn an_indexed_date_time_saved_under_the_lock_keeps_its_instant_in_step() {
    use chrono::TimeZone;
    let db = db().await;
    let mut raw = raw().await;
    let first = chrono::Utc
        .with_ymd_and_hms(2030, 1, 2, 3, 4, 5)
        .single()
        .expect("date");
    let gig = Gig {
        id: "g1".into(),
        starts: first,
        seats: 10,
    };
    gig.save(&db).await.expect("save");
    let key = db.key("Gig:g1");
    assert_eq!(
        stored(&mut raw, &key).await["starts__ts"],
        first.timestamp_micros()
    );
    let mut guard = Gig::lock(&db, "g1", quick()).await.expect("lock");
    let mut other = Gig::get(&db, "g1").await.expect("get");
    other.seats().decr(&db, 1).await.expect("lock-free decr");
    let _: () = raw.pexpire(&key, 5_000).await.expect("PEXPIRE");

    let later = first + chrono::Duration::days(3);
    guard.starts = later;
    guard.save().await.expect("save");
    let doc = stored(&mut raw, &key).await;
    assert_eq!(doc["starts"], json!(later));
    assert_eq!(doc["starts__ts"], later.timestamp_micros());
    assert_eq!(doc["seats"], 9, "the lock-free decrement survives");
    let left = pttl(&mut raw, &key).await;
    assert!(
        left > 55_000,
        "a save that wrote re-arms the model's ttl ({left})"
    );
    guard.release().await.expect("release");
}

#[tokio::test]
async fn a_save_whose_changes_have_no_place_left_writes_the_whole_model() {
    let db = db().await;
    let mut raw = raw().await;
    // The document was deleted under the lock: nothing changed writes nothing, a change
    // writes the whole model back.
    account("gone", 3).save(&db).await.expect("save");
    let key = db.key("Account:gone");
    let mut guard = Account::lock(&db, "gone", quick()).await.expect("lock");
    let _: () = raw.del(&key).await.expect("DEL");
    guard.save().await.expect("save with nothing changed");
    assert!(!exists(&mut raw, &key).await, "nothing written");
    guard.balance = 4;
    guard.save().await.expect("save");
    assert_eq!(
        stored(&mut raw, &key).await,
        json!({"id": "gone", "balance": 4, "owner": "ann"})
    );
    guard.release().await.expect("release");

    // The object holding a change is no longer an object on the server.
    player("reshaped").save(&db).await.expect("save");
    let key = db.key("Player:reshaped");
    let mut guard = Player::lock(&db, "reshaped", quick()).await.expect("lock");
    let _: () = redis::cmd("JSON.SET")
        .arg(&key)
        .arg("$.stats")
        .arg("5")
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");
    guard.stats.wins = 7;
    guard.save().await.expect("save");
    assert_eq!(
        stored(&mut raw, &key).await,
        serde_json::to_value(&*guard).expect("json")
    );
    guard.release().await.expect("release");
}

/// Polls `fut` at most `polls` times (yielding to the runtime in between) and drops it if it
/// is still pending: a cancellation at a chosen point, independent of timer resolution.
async fn cancel_after<F: std::future::Future>(polls: u64, fut: F) -> Option<F::Output> {
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

/// Fails unless a fresh `lock()` on `id` succeeds within a short poll (background releases
/// of cancelled calls may still be on their way), then releases it.
async fn assert_free(db: &Db, id: &str, what: &str) {
    let options = LockOptions::default()
        .ttl(Duration::from_secs(30))
        .timeout(Duration::from_secs(2));
    match Account::lock(db, id, options).await {
        Ok(guard) => guard.release().await.expect("release"),
        Err(e) => panic!("{what}: the lock stayed held: {e}"),
    }
}

#[tokio::test]
async fn a_lock_call_cancelled_at_any_point_leaves_no_lock_behind() {
    let db = db().await;
    account("cancel", 0).save(&db).await.expect("save");
    let mut rng = common::Rng(0x5eed_0010);
    let long = LockOptions::default()
        .ttl(Duration::from_secs(30))
        .timeout(Duration::from_millis(50));
    let mut taken = 0;
    for round in 0..300 {
        let call = Account::lock(&db, "cancel", long.clone());
        let outcome = if round % 2 == 0 {
            cancel_after(rng.below(8), call).await
        } else {
            let within = Duration::from_micros(rng.below(1_500));
            tokio::time::timeout(within, call).await.ok()
        };
        if let Some(Ok(guard)) = outcome {
            taken += 1;
            guard.release().await.expect("release");
        }
        if round % 30 == 29 {
            assert_free(&db, "cancel", &format!("after round {round}")).await;
        }
    }
    assert!(taken < 300, "some calls were cancelled");
    assert_free(&db, "cancel", "at the end").await;
}

#[tokio::test]
async fn a_release_cancelled_at_any_point_still_frees_the_lock() {
    let db = db().await;
    let mut raw = raw().await;
    account("cancel-release", 0).save(&db).await.expect("save");
    let long = LockOptions::default().ttl(Duration::from_secs(30));
    for polls in 0..6 {
        let guard = Account::lock(&db, "cancel-release", long.clone())
            .await
            .expect("lock");
        let lock_key = guard.lock_key().to_string();
        let _ = cancel_after(polls, guard.release()).await;
        // The lock's ttl is 30 s: only a release carried on after the cancel frees it now.
        wait_gone(&mut raw, &lock_key, Duration::from_secs(2)).await;
    }
}

/// Locks `id` inside `runtime`, drops the guard as the `block_on` future ends, then drops the
/// runtime; returns the lock's key.
fn lock_and_drop_at_the_end_of_block_on(runtime: tokio::runtime::Runtime, id: &str) -> String {
    let lock_key = runtime.block_on(async {
        let db = db().await;
        account(id, 1).save(&db).await.expect("save");
        let long = LockOptions::default().ttl(Duration::from_secs(30));
        let guard = Account::lock(&db, id, long).await.expect("lock");
        guard.lock_key().to_string()
        // `guard` is dropped here, as the future `block_on` runs completes.
    });
    drop(runtime);
    lock_key
}

/// Whether `key` exists, asked from a runtime of its own.
fn exists_now(key: &str) -> bool {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut raw = raw().await;
        exists(&mut raw, key).await
    })
}

#[test]
fn a_guard_dropped_as_a_current_thread_block_on_returns_is_released() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let lock_key = lock_and_drop_at_the_end_of_block_on(runtime, "end-current");
    // The runtime is gone and the lock's ttl is 30 s: the release ran before it went.
    assert!(!exists_now(&lock_key), "{lock_key} stayed held");
}

#[test]
fn a_guard_dropped_as_a_multi_thread_block_on_returns_is_released() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let lock_key = lock_and_drop_at_the_end_of_block_on(runtime, "end-multi");
    assert!(!exists_now(&lock_key), "{lock_key} stayed held");
}

#[test]
fn a_guard_dropped_outside_any_runtime_is_released() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (guard, lock_key) = runtime.block_on(async {
        let db = db().await;
        account("outside", 1).save(&db).await.expect("save");
        let long = LockOptions::default().ttl(Duration::from_secs(30));
        let guard = Account::lock(&db, "outside", long).await.expect("lock");
        let lock_key = guard.lock_key().to_string();
        (guard, lock_key)
    });
    drop(guard);
    assert!(!exists_now(&lock_key), "{lock_key} stayed held");
    drop(runtime);
}

#[tokio::test]
async fn a_release_cancelled_while_cut_off_frees_the_lock_once_the_server_is_reachable_again() {
    let relay = Relay::start().await;
    let db = relay.db().await;
    let mut raw = raw().await;
    account("cut-cancel", 1).save(&db).await.expect("save");
    let long = LockOptions::default().ttl(Duration::from_secs(30));
    for polls in 1..4 {
        let guard = Account::lock(&db, "cut-cancel", long.clone())
            .await
            .expect("lock");
        let lock_key = guard.lock_key().to_string();
        relay.go_down();
        let cuts = relay.cuts();
        // Sent into the cut connection, then dropped before any answer.
        let _ = cancel_after(polls, guard.release()).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while relay.cuts() == cuts {
            assert!(Instant::now() < deadline, "the release was never sent");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(exists(&mut raw, &lock_key).await, "nothing got through");
        relay.come_back();
        // The lock's ttl is 30 s: only a release carried on after the cancel frees it now.
        wait_gone(&mut raw, &lock_key, Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn a_lock_asked_for_with_the_longest_ttl_is_held_released_and_extended_without_panicking() {
    let db = db().await;
    let mut raw = raw().await;
    account("forever", 1).save(&db).await.expect("save");
    let options = LockOptions::default().ttl(Duration::MAX);
    let mut guard = Account::lock(&db, "forever", options)
        .await
        .expect("lock with Duration::MAX");
    let lock_key = guard.lock_key().to_string();
    // The server holds it with the capped expiry (about 3,168 years), not forever.
    let left = pttl(&mut raw, &lock_key).await;
    assert!(left > 1_000_000_000_000, "lock ttl {left}");
    guard
        .extend(Duration::MAX)
        .await
        .expect("extend by Duration::MAX");
    guard.balance = 2;
    guard.save().await.expect("save under the lock");
    guard.release().await.expect("release");
    assert!(!exists(&mut raw, &lock_key).await, "the lock key is gone");
    assert_eq!(
        stored(&mut raw, &db.key("Account:forever")).await,
        serde_json::json!({"id": "forever", "balance": 2, "owner": "ann"})
    );
}
