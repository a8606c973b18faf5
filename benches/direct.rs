//! `cargo xtask bench direct`: what the dedicated connections (`direct_connections`) change
//! for calls made one at a time, on both tokio runtimes, next to raw redis-rs on the
//! connection types rapyer builds on.
//!
//! Calls one at a time run in a spawned task (on a worker thread, as a request handler's do)
//! and, for `get`, also on the thread that called `block_on` (the body of `#[tokio::main]`).
//! The variants run in alternating short rounds (default 12 rounds of 0.4 s each), so a
//! swing in the machine's load hits them all alike; each cell prints the median and the
//! spread of its rounds, with the client's CPU time per call (user + system, from
//! `/proc/self/stat`, Linux only). Timings are printed, never asserted.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rapyer::ConnectOptions;
use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "DirectUser")]
struct DirectUser {
    #[rapyer(key)]
    id: u64,
    name: String,
    email: String,
    age: i64,
    score: f64,
    active: bool,
    tags: Vec<String>,
    prefs: HashMap<String, String>,
}

fn user(id: u64) -> DirectUser {
    DirectUser {
        id,
        name: format!("user number {id}"),
        email: format!("user{id}@example.com"),
        age: 30 + (id % 40) as i64,
        score: id as f64 * 1.5,
        active: id.is_multiple_of(2),
        tags: vec!["alpha".into(), "beta".into(), "gamma".into()],
        prefs: HashMap::from([
            ("theme".to_string(), "dark".to_string()),
            ("lang".to_string(), "en".to_string()),
        ]),
    }
}

/// Whether cargo runs this as a benchmark (`cargo bench` passes `--bench`); otherwise
/// `cargo test --all-targets` runs it as a quick smoke test of the same code paths.
fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// (rounds, time per cell) from `RAPYER_BENCH_ROUNDS` and `RAPYER_BENCH_SECONDS`.
fn plan() -> (usize, Duration) {
    if !full_run() {
        return (2, Duration::from_millis(30));
    }
    let rounds = std::env::var("RAPYER_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let seconds = std::env::var("RAPYER_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(0.4);
    (rounds, Duration::from_secs_f64(seconds))
}

/// The process's CPU time (user + system) in microseconds; 0 where `/proc` is missing.
fn cpu_micros() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // After the command name in parentheses: state is field 3, utime and stime 14 and 15.
    let Some(rest) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        // Linux counts in clock ticks of 10 ms (USER_HZ = 100).
        (Some(user), Some(system)) => (user + system) * 10_000.0,
        _ => 0.0,
    }
}

/// One call of a variant, on the document with this number.
type Call = Arc<dyn Fn(u64) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Runs `call` with `in_flight` concurrent loops for `time`: (calls/s, client CPU µs/call).
/// `in_flight` 0 is one loop run by the caller itself, on the thread that called `block_on`
/// (as the body of `#[tokio::main]` does); the others are spawned tasks, on the workers.
async fn cell(call: &Call, in_flight: u64, time: Duration) -> (f64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let cpu = cpu_micros();
    let started = Instant::now();
    let deadline = started + time;
    if in_flight == 0 {
        let mut i = 0;
        while Instant::now() < deadline {
            call(i).await;
            i += 1;
        }
        return (
            i as f64 / started.elapsed().as_secs_f64(),
            (cpu_micros() - cpu) / (i as f64).max(1.0),
        );
    }
    let loops: Vec<_> = (0..in_flight)
        .map(|t| {
            let (call, done) = (call.clone(), done.clone());
            tokio::spawn(async move {
                let mut i = t * 7;
                while Instant::now() < deadline {
                    call(i).await;
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for running in loops {
        running.await.expect("bench loop");
    }
    let calls = done.load(Ordering::Relaxed) as f64;
    (
        calls / started.elapsed().as_secs_f64(),
        (cpu_micros() - cpu) / calls.max(1.0),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Every variant on the runtime this runs on, in alternating rounds; prints one table.
async fn run(url: String, runtime: &str) {
    let db = Db::connect(&url)
        .await
        .expect("connect")
        .with_namespace("bench-direct")
        .expect("a valid namespace");
    let shared = Db::connect_with(&url, ConnectOptions::default().direct_connections(0))
        .await
        .expect("connect")
        .with_namespace("bench-direct")
        .expect("a valid namespace");
    let seed: Vec<DirectUser> = (0..1_000).map(user).collect();
    DirectUser::insert_many(&db, &seed).await.expect("seed");
    let client = redis::Client::open(url.as_str()).expect("url");
    let manager = client
        .get_connection_manager()
        .await
        .expect("raw ConnectionManager");
    let multiplexed = client
        .get_multiplexed_async_connection()
        .await
        .expect("raw MultiplexedConnection");

    let get = |db: Db| -> Call {
        Arc::new(move |i| {
            let db = db.clone();
            Box::pin(async move {
                std::hint::black_box(DirectUser::get(&db, i % 1_000).await.expect("get"));
            })
        })
    };
    let save = |db: Db| -> Call {
        Arc::new(move |i| {
            let db = db.clone();
            Box::pin(async move { user(i % 1_000).save(&db).await.expect("save") })
        })
    };
    let incr = |db: Db| -> Call {
        Arc::new(move |i| {
            let db = db.clone();
            Box::pin(async move {
                let mut u = user(i % 1_000);
                std::hint::black_box(u.age().incr(&db, 1).await.expect("incr"));
            })
        })
    };
    fn raw_get<C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static>(conn: C) -> Call {
        Arc::new(move |i| {
            let mut conn = conn.clone();
            Box::pin(async move {
                let text: Vec<u8> = redis::cmd("JSON.GET")
                    .arg(format!("bench-direct/DirectUser:{}", i % 1_000))
                    .query_async(&mut conn)
                    .await
                    .expect("JSON.GET");
                let u: DirectUser = serde_json::from_slice(&text).expect("decode");
                std::hint::black_box(u);
            })
        })
    }
    let variants: Vec<(&str, u64, Call)> = vec![
        (
            "get from `block_on`'s thread, dedicated connections (default)",
            0,
            get(db.clone()),
        ),
        (
            "get from `block_on`'s thread, direct_connections(0)",
            0,
            get(shared.clone()),
        ),
        (
            "raw JSON.GET + serde from `block_on`'s thread, MultiplexedConnection",
            0,
            raw_get(multiplexed.clone()),
        ),
        ("get, dedicated connections (default)", 1, get(db.clone())),
        ("get, direct_connections(0)", 1, get(shared.clone())),
        (
            "raw JSON.GET + serde, ConnectionManager",
            1,
            raw_get(manager),
        ),
        (
            "raw JSON.GET + serde, MultiplexedConnection",
            1,
            raw_get(multiplexed),
        ),
        ("save, dedicated connections (default)", 1, save(db.clone())),
        ("save, direct_connections(0)", 1, save(shared.clone())),
        (
            "age().incr, dedicated connections (default)",
            1,
            incr(db.clone()),
        ),
        ("age().incr, direct_connections(0)", 1, incr(shared.clone())),
        ("get, 64 in flight, dedicated connections", 64, get(db)),
        ("get, 64 in flight, direct_connections(0)", 64, get(shared)),
    ];
    let (rounds, time) = plan();
    // Warm up: connections (the dedicated ones open after the first call), scripts.
    for (_, _, call) in &variants {
        for i in 0..50 {
            call(i).await;
        }
    }
    let mut rates = vec![Vec::new(); variants.len()];
    let mut cpus = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        for (k, (_, in_flight, call)) in variants.iter().enumerate() {
            let (rate, cpu) = cell(call, *in_flight, time).await;
            rates[k].push(rate);
            cpus[k].push(cpu);
        }
    }
    println!("\n{runtime} runtime, {rounds} alternating rounds of {time:?} per variant:\n");
    println!("| calls | median calls/s | slowest–fastest round | client CPU µs/call |");
    println!("|---|---:|---:|---:|");
    for (k, (name, _, _)) in variants.iter().enumerate() {
        let (low, high) = rates[k]
            .iter()
            .fold((f64::INFINITY, 0f64), |(l, h), &r| (l.min(r), h.max(r)));
        println!(
            "| {name} | {:.0} | {low:.0}–{high:.0} | {:.1} |",
            median(rates[k].clone()),
            median(cpus[k].clone())
        );
    }
}

fn main() {
    let url = rapyer_testkit::server().url().to_string();
    for current in [false, true] {
        let (runtime, name) = match current {
            false => (
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build(),
                "2-worker multi-thread",
            ),
            true => (
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build(),
                "current-thread",
            ),
        };
        runtime.expect("runtime").block_on(run(url.clone(), name));
    }
    if !full_run() {
        println!("(smoke run: `cargo xtask bench direct` measures for real)");
    }
}
