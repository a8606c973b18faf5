//! `cargo xtask bench table`: one table, measured in one run, of rapyer next to raw redis-rs
//! sending the same commands with the same serde payload, and of `redis-benchmark` (the
//! physical limit of one connection) sending the same `JSON.SET`/`JSON.GET`.
//!
//! Each row runs for a fixed time one-at-a-time (1 in flight) and with 64 in flight on one
//! multiplexed connection. Ratios are rapyer / raw; timings are printed, never asserted.
//! Bulk rows (1,000 commands per operation) are reported in calls/s. The ServerOps rows also
//! get a second table: the bytes each operation puts on the wire, both ways.

use std::collections::HashMap;
use std::future::Future;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rapyer::ConnectOptions;
use rapyer::prelude::*;
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "BenchUser")]
struct BenchUser {
    #[rapyer(key)]
    id: u64,
    name: String,
    email: String,
    // Sortable: on a cluster `sort_by` needs it (the find rows sort by age on both).
    #[rapyer(index(sortable))]
    age: i64,
    score: f64,
    active: bool,
    tags: Vec<String>,
    prefs: HashMap<String, String>,
}

/// The lists the slice-move rows move between: the two of a pair share a cluster slot, as
/// every model of one ServerOps block must.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "BenchList", hash_tag = "move")]
struct BenchList {
    #[rapyer(key)]
    id: u64,
    items: Vec<String>,
}

/// The model of the bound rows: big lists and a big dict, the two of a pair in one slot.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "BenchBig", hash_tag = "big")]
struct BenchBig {
    #[rapyer(key)]
    id: u64,
    nums: Vec<i64>,
    counts: HashMap<String, i64>,
}

/// The model of the 5-operation rows: `BenchUser`'s fields without the search index, so the
/// rows measure the operations, not RediSearch re-indexing the documents they change.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "BenchPipe")]
struct BenchPipe {
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

impl From<BenchUser> for BenchPipe {
    fn from(u: BenchUser) -> BenchPipe {
        BenchPipe {
            id: u.id,
            name: u.name,
            email: u.email,
            age: u.age,
            score: u.score,
            active: u.active,
            tags: u.tags,
            prefs: u.prefs,
        }
    }
}

fn user(id: u64) -> BenchUser {
    BenchUser {
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

/// How long each cell is measured.
fn cell_time() -> Duration {
    if !full_run() {
        return Duration::from_millis(30);
    }
    std::env::var("RAPYER_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(2))
}

/// Runs `op` with `in_flight` concurrent loops for the cell time; returns operations/s.
async fn measure<F, Fut>(in_flight: usize, op: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    // Warm up: connections, script cache, allocator.
    for i in 0..50 {
        op(i).await;
    }
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + cell_time();
    let mut tasks = Vec::new();
    for t in 0..in_flight {
        let op = op.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = t as u64 * 1_000_000;
            while Instant::now() < deadline {
                op(i).await;
                i += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.expect("bench task");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Measures `rapyer` and `raw` doing the same work, one at a time and 64 in flight.
async fn compare<A, AF, B, BF>(name: &str, rapyer: A, raw: B) -> Row
where
    A: Fn(u64) -> AF + Clone + Send + Sync + 'static,
    AF: Future<Output = ()> + Send,
    B: Fn(u64) -> BF + Clone + Send + Sync + 'static,
    BF: Future<Output = ()> + Send,
{
    let mut row = Row {
        name: name.to_string(),
        rapyer: [0.0; 2],
        raw: [0.0; 2],
    };
    for (m, in_flight) in [1usize, 64].into_iter().enumerate() {
        row.rapyer[m] = measure(in_flight, rapyer.clone()).await;
        row.raw[m] = measure(in_flight, raw.clone()).await;
    }
    row
}

struct Row {
    name: String,
    rapyer: [f64; 2],
    raw: [f64; 2],
}

impl Row {
    /// Turns operations/s into calls/s for a row whose operation is `calls` calls.
    fn per_call(mut self, calls: u64) -> Row {
        for v in self.rapyer.iter_mut().chain(&mut self.raw) {
            *v *= calls as f64;
        }
        self
    }
}

/// A bare JSON command: its name, the field's path and the arguments after it.
type Bare = (&'static str, &'static str, &'static [&'static str]);

/// The id of the document the `i`th call of a row works on.
type DocOf = fn(u64) -> u64;

/// One call of a field handle (or block) on the document with this id.
type Handle =
    Box<dyn Fn(Db, u64) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The size in bytes of the scripts the rows run: each field operation's, and the block
/// scripts of the first 1 to 5 operations of the 5-op row.
fn print_script_sizes(db: &Db) {
    let r = BenchPipe::server_ref_for(0u64);
    let blocks = [
        ServerOps::explain(|ops| {
            ops.incr(r.age(), 1);
        }),
        ServerOps::explain(|ops| {
            ops.incr(r.age(), 1);
            ops.append(r.tags(), "x".to_string());
        }),
        ServerOps::explain(|ops| {
            ops.incr(r.age(), 1);
            ops.append(r.tags(), "x".to_string());
            ops.insert(r.prefs(), "k", "v".to_string());
        }),
        ServerOps::explain(|ops| {
            ops.incr(r.age(), 1);
            ops.append(r.tags(), "x".to_string());
            ops.insert(r.prefs(), "k", "v".to_string());
            ops.set(r.name(), "renamed user".to_string());
        }),
        ServerOps::explain(|ops| {
            ops.incr(r.age(), 1);
            ops.append(r.tags(), "x".to_string());
            ops.insert(r.prefs(), "k", "v".to_string());
            ops.set(r.name(), "renamed user".to_string());
            ops.toggle(r.active());
        }),
    ];
    println!("\n| script | bytes |\n|---|---:|");
    // `explain` shows a flat block's fast path (one script for every flat block), then the
    // whole script of its kinds, which runs when the fast path declines.
    let whole_starts = "-- rapyer ServerOps flat block, with the kinds";
    if let Some(fast) = blocks[0].find(whole_starts).map(|at| &blocks[0][..at]) {
        println!(
            "| the flat blocks' fast path (rapyer.flat_fast, one script for every row below) | {} |",
            fast.len()
        );
    }
    for (n, text) in blocks.iter().enumerate() {
        let rows = match n {
            0 => " (the 1-op block rows)",
            4 => " (the 5-op block rows)",
            _ => "",
        };
        let whole = text
            .find(whole_starts)
            .map_or(text.as_str(), |at| &text[at..]);
        println!(
            "| whole flat script of the 5-op row's first {} (incr, append, insert, set, toggle){rows} | {} |",
            n + 1,
            whole.len()
        );
    }
    for name in db.scripts().names() {
        if let Some(script) = name
            .strip_prefix("rapyer.field.")
            .and(db.scripts().get(&name))
        {
            println!("| {name} | {} |", script.body().len());
        }
    }
}

/// Commands per operation of the bulk rows.
const BATCH: u64 = 1_000;

/// The script rows' Lua, defined in rapyer as [`INCRBY`] and sent raw with the same body.
const INCRBY_LUA: &str = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
const INCRBY: &str = "bench.incrby";

/// The key of the `n`th counter the script rows bump: `ns` is `""` for rapyer (which adds
/// its namespace) and `"bench/"` for raw redis-rs.
fn counter(ns: &str, n: u64) -> String {
    format!("{ns}ctr:{}", n % 1_000)
}

/// [`BATCH`] calls of the script in one rapyer pipeline, or transaction if `atomic`.
async fn rapyer_script_batch(db: Db, atomic: bool) {
    let mut pipe = if atomic {
        db.transaction()
    } else {
        db.pipeline()
    };
    for n in 0..BATCH {
        pipe.run_script(INCRBY, counter("", n), 1);
    }
    let replies = pipe.execute().await.expect("execute");
    std::hint::black_box(replies);
}

/// The same calls as raw `EVALSHA` of the preloaded script `sha` in one redis-rs pipeline,
/// `MULTI … EXEC` if `atomic`.
async fn raw_script_batch(mut c: MultiplexedConnection, sha: Arc<str>, atomic: bool) {
    let mut pipe = redis::pipe();
    if atomic {
        pipe.atomic();
    }
    for n in 0..BATCH {
        pipe.cmd("EVALSHA")
            .arg(&*sha)
            .arg(1)
            .arg(counter("bench/", n))
            .arg(1);
    }
    let replies: Vec<redis::Value> = pipe.query_async(&mut c).await.expect("EVALSHA pipeline");
    std::hint::black_box(replies);
}

/// Elements in the list the slice-move rows move (a tenth of that in a smoke run).
fn list_len() -> usize {
    if full_run() { 10_000 } else { 1_000 }
}

/// Documents the 5-operation rows spread over (each gets a few appends per run, no more).
const PIPE_DOCS: u64 = 10_000;

/// Pairs of lists for the slice-move rows, one per in-flight loop (`measure` gives loop `t`
/// the numbers `t * 1_000_000 …`): each move takes every element of one list of the pair to
/// the front of the other, so moves alternate direction and the pair always holds
/// [`list_len`] elements.
struct Pairs {
    /// The first id: pair `t` is lists `first + 2t` (full at the start) and `first + 2t + 1`.
    first: u64,
    moves: Vec<AtomicU64>,
}

impl Pairs {
    /// Seeds 64 pairs from id `first`: one list of each full, the other empty.
    async fn seed(db: &Db, first: u64) -> Arc<Pairs> {
        let items: Vec<String> = (0..list_len()).map(|n| format!("item-{n:05}")).collect();
        let lists: Vec<BenchList> = (0..64u64)
            .flat_map(|t| {
                [
                    BenchList {
                        id: first + 2 * t,
                        items: items.clone(),
                    },
                    BenchList {
                        id: first + 2 * t + 1,
                        items: Vec::new(),
                    },
                ]
            })
            .collect();
        BenchList::insert_many(db, &lists)
            .await
            .expect("seed lists");
        Arc::new(Pairs {
            first,
            moves: (0..64).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// The (source, destination) ids of the next move of the loop that got number `i`.
    fn next(&self, i: u64) -> (u64, u64) {
        let t = i / 1_000_000;
        let n = self.moves[t as usize].fetch_add(1, Ordering::Relaxed);
        let (full, empty) = (self.first + 2 * t, self.first + 2 * t + 1);
        if n.is_multiple_of(2) {
            (full, empty)
        } else {
            (empty, full)
        }
    }
}

/// The server's `total_net_input_bytes` and `total_net_output_bytes`.
async fn net_bytes(c: &mut MultiplexedConnection) -> [f64; 2] {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(c)
        .await
        .expect("INFO stats");
    let read = |name: &str| -> f64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("INFO stats has no {name}"))
    };
    [
        read("total_net_input_bytes"),
        read("total_net_output_bytes"),
    ]
}

/// The bytes one `op` puts on the wire: [client to server, server to client], from the
/// server's own counters over 20 sequential runs (the bench is its only client), less what
/// reading the counters costs.
async fn wire<F, Fut>(probe: &MultiplexedConnection, op: F) -> [f64; 2]
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    const RUNS: u64 = 20;
    let mut c = probe.clone();
    // Warm up (scripts loaded), an even number of runs so the slice moves end where they began.
    for i in 0..2 {
        op(i).await;
    }
    let a = net_bytes(&mut c).await;
    let b = net_bytes(&mut c).await;
    for i in 0..RUNS {
        op(i).await;
    }
    let z = net_bytes(&mut c).await;
    [0, 1].map(|k| ((z[k] - b[k]) - (b[k] - a[k])) / RUNS as f64)
}

fn print_wire(rows: &[(String, [f64; 2], [f64; 2])]) {
    println!();
    println!(
        "| operation | rapyer bytes sent | received | raw redis-rs bytes sent | received | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, ours, raw) in rows {
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.3} |",
            ours[0],
            ours[1],
            raw[0],
            raw[1],
            (ours[0] + ours[1]) / (raw[0] + raw[1])
        );
    }
    println!(
        "\nbytes per operation on the wire (the server's total_net_input/output_bytes); \
         ratio = rapyer / raw redis-rs, both ways together."
    );
}

fn print_table(rows: &[Row], limit: &[(String, [Option<f64>; 2])]) {
    println!();
    println!(
        "| operation | rapyer 1-at-a-time | raw redis-rs | ratio | rapyer 64 in flight | raw redis-rs | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} | {:.2} |",
            r.name,
            r.rapyer[0],
            r.raw[0],
            r.rapyer[0] / r.raw[0],
            r.rapyer[1],
            r.raw[1],
            r.rapyer[1] / r.raw[1]
        );
    }
    for (name, [one, many]) in limit {
        let show = |v: &Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.0}"));
        println!("| {name} | {} | | | {} | | |", show(one), show(many));
    }
    println!(
        "\nops/s (bulk rows: calls/s) on a {} runtime but where a row says otherwise; ratio = \
         rapyer / raw redis-rs in the same run.",
        if on_current_thread() {
            "current-thread"
        } else {
            "2-worker multi-thread"
        }
    );
}

/// `redis-benchmark` sending `args` with `clients` connections × `pipeline` depth; ops/s.
fn redis_benchmark(
    host: &str,
    port: &str,
    clients: u32,
    pipeline: u32,
    args: &[&str],
) -> Option<f64> {
    let n = (cell_time().as_secs_f64() * 25_000.0 * f64::from(pipeline).sqrt()) as u64;
    let out = Command::new("redis-benchmark")
        .args(["-h", host, "-p", port, "--csv"])
        .args(["-c", &clients.to_string(), "-P", &pipeline.to_string()])
        .args(["-n", &n.max(10_000).to_string()])
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // CSV: "test","rps", then six latency columns; the test name (the command) may itself
    // hold commas, so count from the end.
    let line = text.lines().nth(1)?;
    let rps = line.rsplit(',').nth(6)?.trim_matches('"');
    rps.parse().ok()
}

// The rows measured both on one server and on the cluster: each side once, generic over the
// raw connection (a multiplexed one, or redis-rs's cluster client).

/// rapyer's `save` of user `i % 1,000`.
async fn rapyer_save(d: Db, i: u64) {
    user(i % 1_000).save(&d).await.expect("save");
}

/// The raw `JSON.SET` of the same document.
async fn raw_save<C: redis::aio::ConnectionLike>(mut c: C, i: u64) {
    let u = user(i % 1_000);
    let json = serde_json::to_string(&u).expect("json");
    let _: () = redis::cmd("JSON.SET")
        .arg(format!("bench/BenchUser:{}", u.id))
        .arg("$")
        .arg(json)
        .query_async(&mut c)
        .await
        .expect("JSON.SET");
}

/// rapyer's `get` of user `i % 1,000`.
async fn rapyer_get(d: Db, i: u64) {
    let u = BenchUser::get(&d, i % 1_000).await.expect("get");
    std::hint::black_box(u);
}

/// The raw `JSON.GET` of the same document, decoded.
async fn raw_get<C: redis::aio::ConnectionLike>(mut c: C, i: u64) {
    let text: Vec<u8> = redis::cmd("JSON.GET")
        .arg(format!("bench/BenchUser:{}", i % 1_000))
        .query_async(&mut c)
        .await
        .expect("JSON.GET");
    let u: BenchUser = serde_json::from_slice(&text).expect("decode");
    std::hint::black_box(u);
}

/// rapyer's field handle `incr` of user `i % 1,000`'s age.
async fn rapyer_incr(d: Db, i: u64) {
    let mut u = user(i % 1_000);
    let n = u.age().incr(&d, 1).await.expect("incr");
    std::hint::black_box(n);
}

/// The bare `JSON.NUMINCRBY` of the same field.
async fn raw_incr<C: redis::aio::ConnectionLike>(mut c: C, i: u64) {
    let n: String = redis::cmd("JSON.NUMINCRBY")
        .arg(format!("bench/BenchUser:{}", i % 1_000))
        .arg("$.age")
        .arg(1)
        .query_async(&mut c)
        .await
        .expect("JSON.NUMINCRBY");
    std::hint::black_box(n);
}

/// Five operations on one model as one `atomic` block (its changed fields come back into
/// the local model).
async fn rapyer_five(d: Db, i: u64) {
    let mut u: BenchPipe = user(i % PIPE_DOCS).into();
    let out = u
        .atomic(&d, |p| {
            (
                p.age().incr(1),
                p.tags().append("x"),
                p.prefs().insert("k", "v"),
                p.name().set("renamed user"),
                p.active().toggle(),
            )
        })
        .await
        .expect("atomic block");
    std::hint::black_box((out, u));
}

/// The same five operations as one `ServerOps` block on a server reference (nothing comes
/// back into a local model).
async fn rapyer_five_ops(d: Db, i: u64) {
    let r = BenchPipe::server_ref_for(i % PIPE_DOCS);
    ServerOps::scope(&d, |ops| {
        ops.incr(r.age(), 1);
        ops.append(r.tags(), "x".to_string());
        ops.insert(r.prefs(), "k", "v".to_string());
        ops.set(r.name(), "renamed user".to_string());
        ops.toggle(r.active());
    })
    .await
    .expect("ServerOps block");
}

/// rapyer's search for 1,000 matching models sorted by age, found and decoded (on a cluster:
/// asked of every primary at once and merged by age).
/// An author of the references row.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "BenchAuthor")]
struct BenchAuthor {
    #[rapyer(key)]
    id: u64,
    name: String,
}

/// A book of the references row, referencing its author.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "BenchBook")]
struct BenchBook {
    #[rapyer(key)]
    id: u64,
    title: String,
    author: rapyer::Ref<BenchAuthor>,
}

/// The references row: the authors of 1,000 books (each its own), read level by level
/// (`Refs::load(.., 1)`: one JSON.MGET) against one `Ref::get` per book. Both sides are
/// rapyer; "raw" is the one-by-one side.
async fn refs_row(db: &Db) -> Row {
    let authors: Vec<BenchAuthor> = (0..1_000)
        .map(|id| BenchAuthor {
            id,
            name: format!("author {id}"),
        })
        .collect();
    BenchAuthor::insert_many(db, &authors)
        .await
        .expect("authors");
    let books: Arc<Vec<BenchBook>> = Arc::new(
        (0..1_000)
            .map(|id| BenchBook {
                id,
                title: format!("book {id}"),
                author: rapyer::Ref::new(id),
            })
            .collect(),
    );
    BenchBook::insert_many(db, &books).await.expect("books");
    let (d, e, b1, b2) = (db.clone(), db.clone(), books.clone(), books);
    compare(
        "Refs::load(1) of 1000 books / Ref::get one by one",
        move |_| refs_eager(d.clone(), b1.clone()),
        move |_| refs_one_by_one(e.clone(), b2.clone()),
    )
    .await
}

/// The books' authors in one level: one JSON.MGET of 1,000 keys.
async fn refs_eager(d: Db, books: Arc<Vec<BenchBook>>) {
    let refs = rapyer::Refs::load(&d, &*books, 1).await.expect("load");
    assert_eq!(refs.len(), 1_000);
    std::hint::black_box(refs);
}

/// The books' authors one `Ref::get` (one JSON.GET) at a time.
async fn refs_one_by_one(d: Db, books: Arc<Vec<BenchBook>>) {
    for book in books.iter() {
        std::hint::black_box(book.author.get(&d).await.expect("author"));
    }
}

/// rapyer's search for 1,000 matching models, found and decoded (on a cluster: asked of every
/// primary at once and merged).
async fn rapyer_find(d: Db) {
    let f = BenchUser::fields();
    let found = BenchUser::find(&d, f.age.ge(0))
        .sort_by(&f.age, Order::Asc)
        .limit(0, 1_000)
        .all()
        .await
        .expect("find");
    assert_eq!(found.len(), 1_000);
    std::hint::black_box(found);
}

/// The same five as separate JSON commands, each its own round trip, atomic only one by one.
async fn raw_five<C: redis::aio::ConnectionLike>(mut c: C, key: String) {
    let cmds = [
        redis::cmd("JSON.NUMINCRBY")
            .arg(&key)
            .arg("$.age")
            .arg(1)
            .to_owned(),
        redis::cmd("JSON.ARRAPPEND")
            .arg(&key)
            .arg("$.tags")
            .arg("\"x\"")
            .to_owned(),
        redis::cmd("JSON.SET")
            .arg(&key)
            .arg("$.prefs.k")
            .arg("\"v\"")
            .to_owned(),
        redis::cmd("JSON.SET")
            .arg(&key)
            .arg("$.name")
            .arg("\"renamed user\"")
            .to_owned(),
        redis::cmd("JSON.TOGGLE")
            .arg(&key)
            .arg("$.active")
            .to_owned(),
    ];
    for cmd in cmds {
        let v: redis::Value = cmd.query_async(&mut c).await.expect("JSON command");
        std::hint::black_box(v);
    }
}

/// A raw connection with the same 30 s reply timeout as rapyer's (redis-rs's default,
/// 500 ms, is shorter than 64 concurrent 1,000-document reads take on a loaded machine).
async fn raw_conn(url: &str) -> MultiplexedConnection {
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("raw connection")
}

/// Whether the table runs on a current-thread runtime (`RAPYER_BENCH_RUNTIME=current`)
/// rather than a 2-worker multi-thread one.
fn on_current_thread() -> bool {
    std::env::var("RAPYER_BENCH_RUNTIME").as_deref() == Ok("current")
}

/// A current-thread tokio runtime if `current`, else a 2-worker multi-thread one.
fn runtime(current: bool) -> tokio::runtime::Runtime {
    match current {
        true => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        false => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    }
    .expect("runtime")
}

/// `get` and the raw `JSON.GET` measured on the other kind of tokio runtime than the rest of
/// the table (its own `Db` and raw connection, in a thread of its own), so one run has both.
async fn get_on_the_other_runtime(url: String) -> Row {
    let current = !on_current_thread();
    let name = match current {
        true => "get, current-thread runtime / JSON.GET",
        false => "get, multi-thread runtime (2 workers) / JSON.GET",
    };
    let thread = std::thread::spawn(move || {
        runtime(current).block_on(async move {
            let db = Db::connect(&url)
                .await
                .expect("connect")
                .with_namespace("bench")
                .expect("a valid namespace");
            let raw = raw_conn(&url).await;
            compare(
                name,
                move |i| rapyer_get(db.clone(), i),
                move |i| raw_get(raw.clone(), i),
            )
            .await
        })
    });
    tokio::task::spawn_blocking(move || thread.join().expect("the other runtime's thread"))
        .await
        .expect("join")
}

fn main() {
    // RAPYER_BENCH_RUNTIME=current runs everything on one thread (no cross-thread wake-ups
    // between a caller and the connection's driver task), but the row of `get` on the other
    // runtime.
    runtime(on_current_thread()).block_on(run());
}

async fn run() {
    let server = rapyer_testkit::server();
    let url = server.url().to_string();
    let db = Db::connect(&url)
        .await
        .expect("connect")
        .with_namespace("bench")
        .expect("a valid namespace");
    let raw = raw_conn(&url).await;
    println!("benchmarking against {url}, {:?} per cell", cell_time());

    // Data every read row needs.
    let seed: Vec<BenchUser> = (0..BATCH).map(user).collect();
    BenchUser::insert_many(&db, &seed).await.expect("seed");
    let payload = serde_json::to_string(&user(1)).expect("payload");

    let mut rows = Vec::new();

    // save and get, then the same with the dedicated connections turned off: every call
    // through the multiplexed connection and its driver task, as raw redis-rs's calls go.
    let shared_only = Db::connect_with(&url, ConnectOptions::default().direct_connections(0))
        .await
        .expect("connect")
        .with_namespace("bench")
        .expect("a valid namespace");
    for (handle, named) in [(db.clone(), ""), (shared_only, ", direct_connections(0)")] {
        let (d, c) = (handle.clone(), raw.clone());
        rows.push(
            compare(
                &format!("save{named} / JSON.SET"),
                move |i| rapyer_save(d.clone(), i),
                move |i| raw_save(c.clone(), i),
            )
            .await,
        );
        let (d, c) = (handle, raw.clone());
        rows.push(
            compare(
                &format!("get{named} / JSON.GET"),
                move |i| rapyer_get(d.clone(), i),
                move |i| raw_get(c.clone(), i),
            )
            .await,
        );
    }
    rows.push(get_on_the_other_runtime(url.clone()).await);

    let (d, c) = (db.clone(), raw.clone());
    rows.push(
        compare(
            "get_many(100) / JSON.MGET",
            move |i| {
                let d = d.clone();
                async move {
                    let start = (i * 100) % 900;
                    let us = BenchUser::get_many(&d, start..start + 100)
                        .await
                        .expect("get_many");
                    std::hint::black_box(us);
                }
            },
            move |i| {
                let mut c = c.clone();
                async move {
                    let start = (i * 100) % 900;
                    let mut cmd = redis::cmd("JSON.MGET");
                    for id in start..start + 100 {
                        cmd.arg(format!("bench/BenchUser:{id}"));
                    }
                    cmd.arg(".");
                    let texts: Vec<Option<Vec<u8>>> =
                        cmd.query_async(&mut c).await.expect("JSON.MGET");
                    let us: Vec<Option<BenchUser>> = texts
                        .into_iter()
                        .map(|t| t.map(|t| serde_json::from_slice(&t).expect("decode")))
                        .collect();
                    std::hint::black_box(us);
                }
            },
        )
        .await,
    );

    let batch = Arc::new(seed);
    let (d, c, b1, b2) = (db.clone(), raw.clone(), batch.clone(), batch);
    rows.push(
        compare(
            "insert_many(1000) / pipeline of 1000 JSON.SET",
            move |_| {
                let d = d.clone();
                let b = b1.clone();
                async move {
                    BenchUser::insert_many(&d, &b).await.expect("insert_many");
                }
            },
            move |_| {
                let mut c = c.clone();
                let b = b2.clone();
                async move {
                    let mut pipe = redis::pipe();
                    for u in b.iter() {
                        let json = serde_json::to_string(u).expect("json");
                        pipe.cmd("JSON.SET")
                            .arg(format!("bench/BenchUser:{}", u.id))
                            .arg("$")
                            .arg(json)
                            .ignore();
                    }
                    let _: () = pipe.query_async(&mut c).await.expect("pipeline");
                }
            },
        )
        .await
        .per_call(BATCH),
    );

    // Field handles: one atomic increment of one field. rapyer's runs the field script
    // (document and JSON type checked, exact arithmetic with overflow refused, new value
    // returned); the raw baseline is a bare JSON.NUMINCRBY, which checks none of that.
    let (d, c) = (db.clone(), raw.clone());
    rows.push(
        compare(
            "age().incr / JSON.NUMINCRBY",
            move |i| rapyer_incr(d.clone(), i),
            move |i| raw_incr(c.clone(), i),
        )
        .await,
    );
    // The same with every call sent alone: what gathering the calls made at the same moment
    // into one script call per operation (`gather_after`, on by default) changes.
    let alone = Db::connect_with(&url, ConnectOptions::default().gather_after(0))
        .await
        .expect("connect")
        .with_namespace("bench")
        .expect("a valid namespace");
    let c = raw.clone();
    rows.push(
        compare(
            "age().incr, gather_after(0) / JSON.NUMINCRBY",
            move |i| rapyer_incr(alone.clone(), i),
            move |i| raw_incr(c.clone(), i),
        )
        .await,
    );

    // Queries: 1,000 matching models sorted by age, found and decoded: rapyer pages the search
    // for keys and reads the documents with JSON.MGET, exactly as the raw baseline does.
    db.init::<BenchUser>().await.expect("init");
    let (d, c) = (db.clone(), raw.clone());
    rows.push(
        compare(
            "find(1000) sorted by age / FT.SEARCH SORTBY + JSON.MGET",
            move |_| rapyer_find(d.clone()),
            move |_| {
                let mut c = c.clone();
                async move {
                    let reply: Vec<redis::Value> = redis::cmd("FT.SEARCH")
                        .arg("bench/_rapyer:index:BenchUser")
                        .arg("@age:[0 +inf]")
                        .arg("NOCONTENT")
                        .arg("SORTBY")
                        .arg("age")
                        .arg("ASC")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(1_000)
                        .arg("DIALECT")
                        .arg(2)
                        .query_async(&mut c)
                        .await
                        .expect("FT.SEARCH");
                    let keys: Vec<String> = reply[1..]
                        .iter()
                        .map(|k| redis::from_redis_value_ref(k).expect("key"))
                        .collect();
                    let docs: Vec<Option<String>> = redis::cmd("JSON.MGET")
                        .arg(&keys)
                        .arg(".")
                        .query_async(&mut c)
                        .await
                        .expect("JSON.MGET");
                    let found: Vec<BenchUser> = docs
                        .iter()
                        .flatten()
                        .map(|d| serde_json::from_str(d).expect("decode"))
                        .collect();
                    assert_eq!(found.len(), 1_000);
                    std::hint::black_box(found);
                }
            },
        )
        .await,
    );

    rows.push(refs_row(&db).await);

    // Scripts: the same Lua body, keys and arguments on both sides.
    db.scripts()
        .define(INCRBY, Keys::Fixed(1), INCRBY_LUA)
        .expect("define");
    let script = redis::Script::new(INCRBY_LUA);
    let (d, c, s) = (db.clone(), raw.clone(), script.clone());
    rows.push(
        compare(
            "run_script / Script::invoke_async",
            move |i| {
                let d = d.clone();
                async move {
                    let n: i64 = d
                        .run_script(INCRBY, counter("", i), 1)
                        .await
                        .expect("run_script");
                    std::hint::black_box(n);
                }
            },
            move |i| {
                let (mut c, s) = (c.clone(), s.clone());
                async move {
                    let n: i64 = s
                        .key(counter("bench/", i))
                        .arg(1)
                        .invoke_async(&mut c)
                        .await
                        .expect("invoke_async");
                    std::hint::black_box(n);
                }
            },
        )
        .await,
    );

    // rapyer loads the script inside each MULTI … EXEC; the raw pipelines rely on this load.
    let sha: Arc<str> = script
        .load_async(&mut raw.clone())
        .await
        .expect("SCRIPT LOAD")
        .into();
    for (name, atomic) in [
        ("pipeline of 1000 run_script / pipe of 1000 EVALSHA", false),
        (
            "transaction of 1000 run_script / atomic pipe of 1000 EVALSHA",
            true,
        ),
    ] {
        let (d, c, sha) = (db.clone(), raw.clone(), sha.clone());
        rows.push(
            compare(
                name,
                move |_| rapyer_script_batch(d.clone(), atomic),
                move |_| raw_script_batch(c.clone(), sha.clone(), atomic),
            )
            .await
            .per_call(BATCH),
        );
    }

    // ServerOps: a 10,000-element slice moved from one model to another (inserted at the
    // front of the other list, cleared from the first) in one block, against loading both
    // lists into the client and writing both back. Each in-flight loop owns a pair of lists.
    let ours = Pairs::seed(&db, 0).await;
    let theirs = Pairs::seed(&db, 1_000).await;
    let d = db.clone();
    let move_rapyer = move |i: u64| {
        let (d, ours) = (d.clone(), ours.clone());
        async move {
            let (from, to) = ours.next(i);
            let (src, dst) = (
                BenchList::server_ref_for(from),
                BenchList::server_ref_for(to),
            );
            ServerOps::scope(&d, |ops| {
                ops.assign(src.items().slice(..), dst.items().slice(0..0));
                ops.set(src.items(), Vec::new());
            })
            .await
            .expect("move block");
        }
    };
    let (c, d) = (raw.clone(), db.clone());
    let move_raw = move |i: u64| {
        let (mut c, theirs) = (c.clone(), theirs.clone());
        let (from, to) = theirs.next(i);
        let src = d.key(&BenchList::key_of(from));
        let dst = d.key(&BenchList::key_of(to));
        async move {
            let (moved, kept): (String, String) = redis::pipe()
                .cmd("JSON.GET")
                .arg(&src)
                .arg("$.items")
                .cmd("JSON.GET")
                .arg(&dst)
                .arg("$.items")
                .query_async(&mut c)
                .await
                .expect("JSON.GET");
            let [mut moved]: [Vec<String>; 1] = serde_json::from_str(&moved).expect("decode");
            let [kept]: [Vec<String>; 1] = serde_json::from_str(&kept).expect("decode");
            moved.extend(kept);
            let _: () = redis::pipe()
                .cmd("JSON.SET")
                .arg(&dst)
                .arg("$.items")
                .arg(serde_json::to_string(&moved).expect("json"))
                .ignore()
                .cmd("JSON.SET")
                .arg(&src)
                .arg("$.items")
                .arg("[]")
                .ignore()
                .query_async(&mut c)
                .await
                .expect("JSON.SET");
        }
    };
    let move_name = format!(
        "move {},{:03}-element slice: ServerOps block / JSON.GET ×2 + JSON.SET ×2",
        list_len() / 1_000,
        list_len() % 1_000
    );
    rows.push(compare(&move_name, move_rapyer.clone(), move_raw.clone()).await);

    // ServerOps: five operations on one model as one `atomic` block (its changed
    // fields come back into the local model), against the same five as separate JSON
    // commands, each its own round trip, atomic only one by one.
    let pipes: Vec<BenchPipe> = (0..PIPE_DOCS).map(|id| user(id).into()).collect();
    BenchPipe::insert_many(&db, &pipes)
        .await
        .expect("seed pipes");
    let d = db.clone();
    let five_rapyer = move |i: u64| rapyer_five(d.clone(), i);
    let (c, d) = (raw.clone(), db.clone());
    let five_raw = move |i: u64| raw_five(c.clone(), d.key(&BenchPipe::key_of(i % PIPE_DOCS)));
    let five_name = "5-op atomic block / JSON.NUMINCRBY, ARRAPPEND, SET, SET, TOGGLE one by one";
    rows.push(compare(five_name, five_rapyer.clone(), five_raw.clone()).await);
    let d = db.clone();
    rows.push(
        compare(
            "5-op ServerOps block / JSON.NUMINCRBY, ARRAPPEND, SET, SET, TOGGLE one by one",
            move |i| rapyer_five_ops(d.clone(), i),
            five_raw.clone(),
        )
        .await,
    );

    // Field handles and a 1-op block against the one bare JSON command each stands for (which
    // checks neither the document nor the field's type, nor re-arms an expiry). The list row
    // appends to one document per task, kept between calls: a list handle whose local copy
    // disagrees with the server's length reloads the list, which is not what this row
    // measures.
    let kept: Arc<Mutex<HashMap<u64, BenchPipe>>> = Arc::default();
    let any_doc: DocOf = |i| i % PIPE_DOCS;
    let task_doc: DocOf = |i| i / 1_000_000;
    let handle_rows: Vec<(&str, Bare, DocOf, Handle)> = vec![
        (
            "name().append / JSON.STRAPPEND",
            ("JSON.STRAPPEND", "$.name", &["\"x\""]),
            any_doc,
            Box::new(|d, id| {
                Box::pin(async move {
                    let mut u: BenchPipe = user(id).into();
                    std::hint::black_box(u.name().append(&d, "x").await.expect("append"));
                })
            }),
        ),
        (
            "tags().append / JSON.ARRAPPEND",
            ("JSON.ARRAPPEND", "$.tags", &["\"x\""]),
            task_doc,
            Box::new(move |d, id| {
                let kept = kept.clone();
                Box::pin(async move {
                    let taken = kept.lock().expect("kept").remove(&id);
                    let mut u = taken.unwrap_or_else(|| user(id).into());
                    std::hint::black_box(u.tags().append(&d, "x").await.expect("append"));
                    kept.lock().expect("kept").insert(id, u);
                })
            }),
        ),
        (
            "active().toggle / JSON.TOGGLE",
            ("JSON.TOGGLE", "$.active", &[]),
            any_doc,
            Box::new(|d, id| {
                Box::pin(async move {
                    let mut u: BenchPipe = user(id).into();
                    std::hint::black_box(u.active().toggle(&d).await.expect("toggle"));
                })
            }),
        ),
        (
            "age().load / JSON.GET",
            ("JSON.GET", "$.age", &[]),
            any_doc,
            Box::new(|d, id| {
                Box::pin(async move {
                    let mut u: BenchPipe = user(id).into();
                    std::hint::black_box(u.age().load(&d).await.expect("load"));
                })
            }),
        ),
        (
            "email().set / JSON.SET",
            ("JSON.SET", "$.email", &["\"a@b.c\""]),
            any_doc,
            Box::new(|d, id| {
                Box::pin(async move {
                    let mut u: BenchPipe = user(id).into();
                    u.email().set(&d, "a@b.c").await.expect("set");
                })
            }),
        ),
        (
            "score().incr (f64) / JSON.NUMINCRBY",
            ("JSON.NUMINCRBY", "$.score", &["1.5"]),
            any_doc,
            Box::new(|d, id| {
                Box::pin(async move {
                    let mut u: BenchPipe = user(id).into();
                    std::hint::black_box(u.score().incr(&d, 1.5).await.expect("incr"));
                })
            }),
        ),
        (
            "1-op atomic block (age incr) / JSON.NUMINCRBY",
            ("JSON.NUMINCRBY", "$.age", &["1"]),
            any_doc,
            Box::new(|d, id| {
                Box::pin(async move {
                    let mut u: BenchPipe = user(id).into();
                    let out = u.atomic(&d, |p| p.age().incr(1)).await.expect("block");
                    std::hint::black_box(out);
                })
            }),
        ),
        (
            "1-op ServerOps block (age incr) / JSON.NUMINCRBY",
            ("JSON.NUMINCRBY", "$.age", &["1"]),
            any_doc,
            Box::new(|d, id| {
                Box::pin(async move {
                    let r = BenchPipe::server_ref_for(id);
                    ServerOps::scope(&d, |ops| {
                        ops.incr(r.age(), 1);
                    })
                    .await
                    .expect("block");
                })
            }),
        ),
    ];
    for (name, (command, path, args), doc, run) in handle_rows {
        let run = Arc::new(run);
        let (d, c, key_db) = (db.clone(), raw.clone(), db.clone());
        rows.push(
            compare(
                name,
                move |i| run(d.clone(), doc(i)),
                move |i| {
                    let mut c = c.clone();
                    let mut cmd = redis::cmd(command);
                    cmd.arg(key_db.key(&BenchPipe::key_of(doc(i))))
                        .arg(path)
                        .arg(args);
                    async move {
                        let reply: redis::Value = cmd.query_async(&mut c).await.expect(command);
                        std::hint::black_box(reply);
                    }
                },
            )
            .await,
        );
    }

    // A string append returns the whole new string: against raw redis-rs doing that too (the
    // append and the read of the string in one MULTI, as rapyer sends it for a model without
    // an expiry).
    let (d, c, key_db) = (db.clone(), raw.clone(), db.clone());
    rows.push(
        compare(
            "name().append / MULTI JSON.STRAPPEND + JSON.GET",
            move |i| {
                let d = d.clone();
                async move {
                    let mut u: BenchPipe = user(i % PIPE_DOCS).into();
                    std::hint::black_box(u.name().append(&d, "x").await.expect("append"));
                }
            },
            move |i| {
                let mut c = c.clone();
                let key = key_db.key(&BenchPipe::key_of(i % PIPE_DOCS));
                async move {
                    let reply: (redis::Value, String) = redis::pipe()
                        .atomic()
                        .cmd("JSON.STRAPPEND")
                        .arg(&key)
                        .arg("$.name")
                        .arg("\"x\"")
                        .cmd("JSON.GET")
                        .arg(&key)
                        .arg("$.name")
                        .query_async(&mut c)
                        .await
                        .expect("MULTI");
                    std::hint::black_box(reply);
                }
            },
        )
        .await,
    );

    // What those rows put on the wire, on fresh documents for the 5-op rows.
    BenchPipe::insert_many(&db, &pipes)
        .await
        .expect("reseed pipes");
    let wire_rows = vec![
        (
            move_name,
            wire(&raw, &move_rapyer).await,
            wire(&raw, &move_raw).await,
        ),
        (
            five_name.to_string(),
            wire(&raw, &five_rapyer).await,
            wire(&raw, &five_raw).await,
        ),
    ];

    rows.extend(structure_rows(&db, &raw).await);
    rows.extend(partial_rows(&db, &raw).await);
    let bounds = bound_rows(&db, &raw).await;
    let cluster = cluster_rows(&rows).await;

    if !full_run() {
        print_script_sizes(&db);
        print_table(&rows, &[]);
        print_wire(&wire_rows);
        print_bounds(&bounds);
        print_cluster(&cluster);
        println!("(smoke run: `cargo xtask bench table` measures for real)");
        return;
    }
    // The physical limit: redis-benchmark, same commands, same payload.
    let (host, port) = host_port(&url);
    let key = "bench/BenchUser:1";
    let mut limit = Vec::new();
    for (name, args) in [
        (
            "redis-benchmark JSON.SET",
            vec!["JSON.SET", key, "$", payload.as_str()],
        ),
        ("redis-benchmark JSON.GET", vec!["JSON.GET", key]),
    ] {
        let one = redis_benchmark(&host, &port, 1, 1, &args);
        let many = redis_benchmark(&host, &port, 4, 16, &args);
        limit.push((name.to_string(), [one, many]));
    }
    if limit.iter().all(|(_, v)| v.iter().all(Option::is_none)) {
        println!(
            "(redis-benchmark not found: `apt-get install redis-tools` adds the physical-limit rows)"
        );
    }
    print_script_sizes(&db);
    print_table(&rows, &limit);
    print_wire(&wire_rows);
    print_bounds(&bounds);
    print_cluster(&cluster);
}

/// One bound row: the median of each side's samples, [wall ms, server ms].
struct Bound {
    name: String,
    rapyer: [f64; 2],
    raw: [f64; 2],
}

/// Samples per side of a bound row (1 in a smoke run; `RAPYER_BENCH_SAMPLES`, default 5).
fn bound_samples() -> usize {
    if !full_run() {
        return 1;
    }
    std::env::var("RAPYER_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
}

/// Microseconds the server spent in the commands whose `INFO commandstats` names start with
/// one of `prefixes` (scripts' own calls are counted again under their names, so a script
/// row counts only `evalsha`/`eval`).
async fn server_usec(c: &mut MultiplexedConnection, prefixes: &[&str]) -> f64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(c)
        .await
        .expect("INFO commandstats");
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
        .filter_map(|l| {
            l.split(",usec=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<f64>()
                .ok()
        })
        .sum()
}

/// Runs `prepare` then `op` (timed) `bound_samples()` times; the medians of the wall time
/// and of the server's time in the commands named by `prefixes`, in ms.
async fn sample<P, PF, F, FF>(
    probe: &MultiplexedConnection,
    prefixes: &[&str],
    prepare: P,
    op: F,
) -> [f64; 2]
where
    P: Fn() -> PF,
    PF: Future<Output = ()>,
    F: Fn() -> FF,
    FF: Future<Output = ()>,
{
    let mut c = probe.clone();
    // Warm up (scripts loaded), untimed.
    prepare().await;
    op().await;
    let (mut wall, mut server) = (Vec::new(), Vec::new());
    for _ in 0..bound_samples() {
        prepare().await;
        let before = server_usec(&mut c, prefixes).await;
        let started = Instant::now();
        op().await;
        wall.push(started.elapsed().as_secs_f64() * 1e3);
        server.push((server_usec(&mut c, prefixes).await - before) / 1e3);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    [median(wall), median(server)]
}

const SCRIPT_CMDS: &[&str] = &["evalsha", "eval:"];
const JSON_CMDS: &[&str] = &["json."];

/// The rows that bound one big operation's cost, at a tenth of the size and at the full size
/// (a tenth and a hundredth in a smoke run) to show each is linear in the data it moves, next
/// to raw redis-rs sending the bare commands that do the same.
async fn bound_rows(db: &Db, raw: &MultiplexedConnection) -> Vec<Bound> {
    let mut rows = Vec::new();
    let divisors = if full_run() { [10, 1] } else { [100, 10] };
    for (n, divisor) in divisors.into_iter().enumerate() {
        let scaled = |size: usize| size / divisor;
        bound_rows_at(db, raw, &scaled, n as u64 * 10, &mut rows).await;
    }
    rows
}

/// The bound rows with every size passed through `scaled`, on models from id `first`.
async fn bound_rows_at(
    db: &Db,
    raw: &MultiplexedConnection,
    scaled: &dyn Fn(usize) -> usize,
    first: u64,
    rows: &mut Vec<Bound>,
) {
    let (list, slice) = (scaled(110_000), scaled(50_000));
    let (start, stop) = (scaled(30_000), scaled(30_000) + slice);

    // An integer slice moved over the same number of elements of another list (sizes stay).
    let pair = [
        BenchBig {
            id: first + 1,
            nums: (0..list as i64).collect(),
            counts: HashMap::new(),
        },
        BenchBig {
            id: first + 2,
            nums: (0..list as i64).map(|x| -x).collect(),
            counts: HashMap::new(),
        },
    ];
    BenchBig::insert_many(db, &pair).await.expect("seed lists");
    let (src, dst) = (
        db.key(&BenchBig::key_of(first + 1)),
        db.key(&BenchBig::key_of(first + 2)),
    );
    let rapyer = sample(
        raw,
        SCRIPT_CMDS,
        || async {},
        || async {
            let (a, b) = (
                BenchBig::server_ref_for(first + 1),
                BenchBig::server_ref_for(first + 2),
            );
            ServerOps::scope(db, |ops| {
                ops.assign(
                    a.nums().slice(start as i64..stop as i64),
                    b.nums().slice(0..slice as i64),
                );
            })
            .await
            .expect("slice move");
        },
    )
    .await;
    let theirs = sample(
        raw,
        JSON_CMDS,
        || async {},
        || async {
            let mut c = raw.clone();
            let (part, whole): (String, String) = redis::pipe()
                .cmd("JSON.GET")
                .arg(&src)
                .arg(format!("$.nums[{start}:{stop}]"))
                .cmd("JSON.GET")
                .arg(&dst)
                .arg("$.nums")
                .query_async(&mut c)
                .await
                .expect("JSON.GET");
            let part: Vec<i64> = serde_json::from_str(&part).expect("decode");
            let [mut whole]: [Vec<i64>; 1] = serde_json::from_str(&whole).expect("decode");
            whole.splice(0..slice, part);
            let _: () = redis::cmd("JSON.SET")
                .arg(&dst)
                .arg("$.nums")
                .arg(serde_json::to_string(&whole).expect("json"))
                .query_async(&mut c)
                .await
                .expect("JSON.SET");
        },
    )
    .await;
    rows.push(Bound {
        name: format!(
            "{slice}-element i64 slice of a {list}-element list: ServerOps assign / JSON.GET ×2 + JSON.SET"
        ),
        rapyer,
        raw: theirs,
    });

    // Hostile keys (no JSONPath step reaches them) into a big dict: update / one JSON.MERGE.
    let (size, keys) = (scaled(100_000), scaled(5_000));
    let counts: HashMap<String, i64> = (0..size as i64).map(|i| (format!("plain{i}"), i)).collect();
    let big = BenchBig {
        id: first + 3,
        nums: Vec::new(),
        counts,
    };
    big.save(db).await.expect("seed dict");
    let entries: Vec<(String, i64)> = (0..keys)
        .map(|i| {
            (
                format!(
                    "k{i}\"'
🎉 "
                ),
                i as i64,
            )
        })
        .collect();
    // The local copy mirrors the server's dict (after the warm-up, with the keys), so no
    // reload is measured; it is cloned before the clock starts.
    let local = std::cell::RefCell::new(big.clone());
    let next = std::cell::RefCell::new(None);
    let rapyer = sample(
        raw,
        SCRIPT_CMDS,
        || async {
            *next.borrow_mut() = Some(local.borrow().clone());
        },
        || async {
            let mut m: BenchBig = next.borrow_mut().take().expect("prepared");
            m.counts()
                .update(db, entries.clone())
                .await
                .expect("update");
            *local.borrow_mut() = m;
        },
    )
    .await;
    let patch =
        serde_json::to_string(&entries.iter().cloned().collect::<HashMap<_, _>>()).expect("patch");
    let dict_key = db.key(&BenchBig::key_of(first + 3));
    let theirs = sample(
        raw,
        JSON_CMDS,
        || async {},
        || async {
            let _: () = redis::cmd("JSON.MERGE")
                .arg(&dict_key)
                .arg("$.counts")
                .arg(&patch)
                .query_async(&mut raw.clone())
                .await
                .expect("JSON.MERGE");
        },
    )
    .await;
    rows.push(Bound {
        name: format!("{keys} hostile keys into a {size}-entry dict: update / JSON.MERGE"),
        rapyer,
        raw: theirs,
    });

    // extend of many items onto an empty list / one JSON.ARRAPPEND of them all.
    let items = scaled(100_000);
    let values: Vec<i64> = (0..items as i64).collect();
    let texts: Vec<String> = values.iter().map(i64::to_string).collect();
    let list_key = db.key(&BenchBig::key_of(first + 4));
    let empty = BenchBig {
        id: first + 4,
        nums: Vec::new(),
        counts: HashMap::new(),
    };
    let reset = || async {
        empty.save(db).await.expect("reset list");
    };
    let rapyer = sample(raw, SCRIPT_CMDS, reset, || async {
        let mut m = empty.clone();
        m.nums().extend(db, values.clone()).await.expect("extend");
    })
    .await;
    let theirs = sample(raw, JSON_CMDS, reset, || async {
        let _: Vec<usize> = redis::cmd("JSON.ARRAPPEND")
            .arg(&list_key)
            .arg("$.nums")
            .arg(&texts)
            .query_async(&mut raw.clone())
            .await
            .expect("JSON.ARRAPPEND");
    })
    .await;
    rows.push(Bound {
        name: format!("extend of {items} i64 items: RedisList::extend / JSON.ARRAPPEND"),
        rapyer,
        raw: theirs,
    });
}

fn print_bounds(rows: &[Bound]) {
    println!();
    println!(
        "| big operation | rapyer ms | server ms | raw redis-rs ms | server ms | ratio (wall) | ratio (server) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} |",
            r.name,
            r.rapyer[0],
            r.rapyer[1],
            r.raw[0],
            r.raw[1],
            r.rapyer[0] / r.raw[0],
            r.rapyer[1] / r.raw[1]
        );
    }
    println!(
        "\nmedian of {} one-at-a-time runs; server ms = the server's own time in the commands \
         (INFO commandstats); ratio = rapyer / raw redis-rs in the same run.",
        bound_samples()
    );
}

fn host_port(url: &str) -> (String, String) {
    let host = std::env::var("RAPYER_BENCH_REDIS_HOST").ok();
    let port = std::env::var("RAPYER_BENCH_REDIS_PORT").ok();
    if let (Some(h), Some(p)) = (host, port) {
        return (h, p);
    }
    let rest = url.split("://").nth(1).unwrap_or(url);
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    let hostport = rest.split('/').next().unwrap_or(rest);
    let (h, p) = hostport.rsplit_once(':').unwrap_or((hostport, "6379"));
    (h.to_string(), p.to_string())
}

// ---------------------------------------------------------------------------------------
// Cluster rows
// ---------------------------------------------------------------------------------------

/// One operation measured on the testkit's local cluster (3 primaries, 3 replicas, on this
/// same machine) beside the standalone run of the same row: ops/s [1 in flight, 64].
struct ClusterRow {
    name: &'static str,
    cluster: [f64; 2],
    raw_cluster: [f64; 2],
    standalone: [Option<f64>; 2],
}

/// A raw redis-rs cluster connection with the same 30 s reply timeout as rapyer's.
async fn raw_cluster(urls: &[String]) -> redis::cluster_async::ClusterConnection {
    redis::cluster::ClusterClientBuilder::new(urls.to_vec())
        .response_timeout(Duration::from_secs(30))
        .build()
        .expect("cluster client")
        .get_async_connection()
        .await
        .expect("raw cluster connection")
}

/// save, get, incr and the 5-op block on a cluster, rapyer against redis-rs's cluster client
/// sending the same commands; `standalone` holds the rows measured on one server, whose
/// names these rows start with.
async fn cluster_rows(standalone: &[Row]) -> Vec<ClusterRow> {
    let cluster = rapyer_testkit::cluster();
    // 64 sorted finds at once, each fanned out to every primary, can take longer than the
    // default 30 s on this machine (a smoke run's debug build did): this row measures them,
    // it does not time them out.
    let options = ConnectOptions::default().response_timeout(Duration::from_secs(300));
    let db = Db::connect_cluster_with(cluster.urls(), options)
        .await
        .expect("connect to the cluster")
        .with_namespace("bench")
        .expect("a valid namespace");
    let raw = raw_cluster(cluster.urls()).await;
    println!(
        "\ncluster rows against {} nodes at {:?}",
        cluster.urls().len(),
        cluster.urls()
    );
    let seed: Vec<BenchUser> = (0..BATCH).map(user).collect();
    BenchUser::insert_many(&db, &seed)
        .await
        .expect("seed the cluster");
    let pipes: Vec<BenchPipe> = (0..PIPE_DOCS).map(|id| user(id).into()).collect();
    BenchPipe::insert_many(&db, &pipes)
        .await
        .expect("seed the cluster's pipes");
    let same = |prefix: &str| -> [Option<f64>; 2] {
        standalone
            .iter()
            .find(|r| r.name.starts_with(prefix))
            .map_or([None, None], |r| [Some(r.rapyer[0]), Some(r.rapyer[1])])
    };
    let mut rows = Vec::new();
    let mut add = |name: &'static str, measured: Row| {
        rows.push(ClusterRow {
            name,
            cluster: measured.rapyer,
            raw_cluster: measured.raw,
            standalone: same(name),
        });
    };

    let (d, c) = (db.clone(), raw.clone());
    let save = compare(
        "save",
        move |i| rapyer_save(d.clone(), i),
        move |i| raw_save(c.clone(), i),
    )
    .await;
    add("save / JSON.SET", save);

    let (d, c) = (db.clone(), raw.clone());
    let get = compare(
        "get",
        move |i| rapyer_get(d.clone(), i),
        move |i| raw_get(c.clone(), i),
    )
    .await;
    add("get / JSON.GET", get);

    let (d, c) = (db.clone(), raw.clone());
    let incr = compare(
        "incr",
        move |i| rapyer_incr(d.clone(), i),
        move |i| raw_incr(c.clone(), i),
    )
    .await;
    add("age().incr / JSON.NUMINCRBY", incr);

    let d = db.clone();
    let five_rapyer = move |i: u64| rapyer_five(d.clone(), i);
    let (c, d) = (raw.clone(), db.clone());
    let five_raw = move |i: u64| raw_five(c.clone(), d.key(&BenchPipe::key_of(i % PIPE_DOCS)));
    let five = compare("5-op", five_rapyer, five_raw).await;
    add("5-op atomic block", five);

    // A search, asked of every primary at once and merged. redis-rs's cluster client has no
    // fan-out of its own (it sends FT.SEARCH to the node of the index name, as if it were a
    // key), so this row has no raw cluster baseline, only the same search on one server.
    db.init::<BenchUser>().await.expect("init on every primary");
    let d = db.clone();
    let find = move |_: u64| rapyer_find(d.clone());
    let cluster = [measure(1, find.clone()).await, measure(64, find).await];
    rows.push(ClusterRow {
        name: "find(1000) sorted by age",
        cluster,
        raw_cluster: [f64::NAN; 2],
        standalone: same("find(1000) sorted"),
    });
    rows
}

fn print_cluster(rows: &[ClusterRow]) {
    println!();
    println!(
        "| on the cluster | rapyer 1-at-a-time | / standalone | / raw cluster | rapyer 64 in flight | / standalone | / raw cluster |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let vs = |m: usize| {
            r.standalone[m].map_or("n/a".to_string(), |s| format!("{:.2}", r.cluster[m] / s))
        };
        let raw = |m: usize| match r.raw_cluster[m] {
            raw if raw.is_nan() => "n/a".to_string(),
            raw => format!("{:.2}", r.cluster[m] / raw),
        };
        println!(
            "| {} | {:.0} | {} | {} | {:.0} | {} | {} |",
            r.name,
            r.cluster[0],
            vs(0),
            raw(0),
            r.cluster[1],
            vs(1),
            raw(1)
        );
    }
    println!(
        "\nops/s on a local 3-primary cluster (6 nodes on this machine); / standalone = the same \
         rapyer row on one server in this run; / raw cluster = redis-rs's cluster client sending \
         the same commands (`find` has none: redis-rs does not fan a search out)."
    );
}

/// The bare GCRA a limiter row is measured against: the same decision on the server's
/// clock, without rapyer's checks (key type, stored value, exact-integer bounds) or its
/// full `CL.THROTTLE` answer.
const BARE_GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, tau = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - tau > now then return {1, tat - now} end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX',
  string.format('%.0f', math.ceil((new_tat - now) / 1000)))
return {0, new_tat - now}
"#;

/// The rows of the special structures: a rate-limiter check against a bare GCRA script,
/// priority-queue pushes and pops against the bare `ZADD`/`ZPOPMIN`, and (when the server
/// has RedisBloom) Bloom filter adds and lookups against the bare `BF.ADD`/`BF.EXISTS`,
/// each over 1,000 subjects, queues or items.
async fn structure_rows(db: &Db, raw: &MultiplexedConnection) -> Vec<Row> {
    use rapyer::{BloomFilter, Limit, RateLimiter};
    let mut rows = Vec::new();
    // A million per second with bursts of 1,000: nearly every check is allowed and writes,
    // on both sides.
    let limit = Limit::per(1_000_000, Duration::from_secs(1)).max_burst(999);
    let limiter = Arc::new(RateLimiter::new(db, "bench", limit).expect("limiter"));
    let mut c = raw.clone();
    let sha: Arc<str> = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(BARE_GCRA)
        .query_async::<String>(&mut c)
        .await
        .expect("SCRIPT LOAD")
        .into();
    let bare_key = |i: u64| format!("bench/_bare:limit:{}", i % 1000);
    let c = raw.clone();
    rows.push(
        compare(
            "RateLimiter::check / bare GCRA script",
            move |i| {
                let limiter = limiter.clone();
                async move {
                    let d = limiter.check(&(i % 1000).to_string()).await.expect("check");
                    std::hint::black_box(d);
                }
            },
            move |i| {
                let (mut c, sha) = (c.clone(), sha.clone());
                async move {
                    let reply: Vec<i64> = redis::cmd("EVALSHA")
                        .arg(&*sha)
                        .arg(1)
                        .arg(bare_key(i))
                        .arg(1)
                        .arg(1000)
                        .query_async(&mut c)
                        .await
                        .expect("bare GCRA");
                    std::hint::black_box(reply);
                }
            },
        )
        .await,
    );
    rows.extend(queue_rows(db, raw).await);
    if let Err(why) = rapyer_testkit::server().require_bloom() {
        println!("(no Bloom rows: {why})");
        return rows;
    }
    let filter = Arc::new(BloomFilter::<u64>::named(db, "bench"));
    filter.reserve(0.001, 100_000).await.expect("reserve");
    let mut c = raw.clone();
    let _: redis::Value = redis::cmd("BF.RESERVE")
        .arg("bench/_bare:bloom")
        .arg(0.001)
        .arg(100_000)
        .query_async(&mut c)
        .await
        .expect("BF.RESERVE");
    for (name, add) in [
        ("BloomFilter::add / BF.ADD", true),
        ("BloomFilter::contains / BF.EXISTS", false),
    ] {
        let (f, c) = (filter.clone(), raw.clone());
        rows.push(
            compare(
                name,
                move |i| {
                    let f = f.clone();
                    async move {
                        let item = i % 1000;
                        let answer = if add {
                            f.add(&item).await
                        } else {
                            f.contains(&item).await
                        };
                        std::hint::black_box(answer.expect("bloom"));
                    }
                },
                move |i| {
                    let mut c = c.clone();
                    async move {
                        let answer: i64 = redis::cmd(if add { "BF.ADD" } else { "BF.EXISTS" })
                            .arg("bench/_bare:bloom")
                            .arg((i % 1000).to_string())
                            .query_async(&mut c)
                            .await
                            .expect("bare bloom");
                        std::hint::black_box(answer);
                    }
                },
            )
            .await,
        );
    }
    rows
}

/// The model of the queue rows: a priority queue kept in a companion ZSET (and HASH).
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "BenchQueue")]
struct BenchQueue {
    #[rapyer(key)]
    id: u64,
    tasks: rapyer::PriorityQueue<String>,
}

/// The local model of queue `i`'s row call (its queue empty: the rows measure the server).
fn bench_queue(i: u64) -> BenchQueue {
    BenchQueue {
        id: queue_of(i),
        tasks: rapyer::PriorityQueue::new(),
    }
}

/// Queues the queue rows spread over.
const QUEUES: u64 = 1_000;

/// The `i`th item a queue row pushes, and its priority.
fn queue_item(i: u64) -> (String, i64) {
    (format!("task number {i:012}"), (i % 100) as i64)
}

/// The raw side's ZSET of queue `q`; below, the member it stores for `item`: as many bytes as
/// rapyer's entry (16 hex digits of the priority, 16 of a sequence number, the item's JSON),
/// made unique by `i` as rapyer's is by its sequence number.
fn bare_queue(q: u64) -> String {
    format!("bench/_bare:pq:{q}")
}

/// The queue the `i`th call of a queue row works on: spread over every queue whatever the
/// in-flight loop (`measure` gives loop `t` the numbers `t * 1_000_000 …`), and the same
/// for the push and the pop rows.
fn queue_of(i: u64) -> u64 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % QUEUES
}

/// Pops of the pop row that found their queue empty (reported after the row; the top-up
/// is meant to make it 0).
static DRY_POPS: AtomicU64 = AtomicU64::new(0);

fn bare_entry(i: u64, item: &str) -> String {
    format!("{i:032}{}", serde_json::to_string(item).expect("json"))
}

/// The priority-queue rows: `push` against a bare `ZADD` (score the priority) and `pop`
/// against a bare `ZPOPMIN`, over 1,000 queues a side. rapyer's run the structure script
/// (the model's document checked, both companion keys' types checked, the expiry re-armed,
/// the item's index kept for `remove`). Before the pop row each queue is topped up with
/// twice what the push row pushed, so no pop finds its queue empty.
async fn queue_rows(db: &Db, raw: &MultiplexedConnection) -> Vec<Row> {
    let queues: Vec<BenchQueue> = (0..QUEUES)
        .map(|id| BenchQueue {
            id,
            ..bench_queue(0)
        })
        .collect();
    BenchQueue::insert_many(db, &queues)
        .await
        .expect("seed queues");
    let mut rows = Vec::new();
    let (d, c) = (db.clone(), raw.clone());
    let push = compare(
        "PriorityQueue::push / ZADD",
        move |i| {
            let d = d.clone();
            async move {
                let mut q = bench_queue(i);
                let (item, priority) = queue_item(i);
                let n = q.tasks().push(&d, item, priority).await.expect("push");
                std::hint::black_box(n);
            }
        },
        move |i| {
            let mut c = c.clone();
            async move {
                let (item, priority) = queue_item(i);
                let n: i64 = redis::cmd("ZADD")
                    .arg(bare_queue(queue_of(i)))
                    .arg(priority)
                    .arg(bare_entry(i, &item))
                    .query_async(&mut c)
                    .await
                    .expect("ZADD");
                std::hint::black_box(n);
            }
        },
    )
    .await;
    // Top up: twice what each side pushed (warm-ups included), spread over its queues, and a
    // few more each.
    let pushed = |rates: [f64; 2]| (rates[0] + rates[1]) * cell_time().as_secs_f64() + 100.0;
    let per_queue = |rates: [f64; 2]| (2.0 * pushed(rates) / QUEUES as f64).ceil() as u64 + 5;
    let (ours, theirs) = (per_queue(push.rapyer), per_queue(push.raw));
    rows.push(push);
    let mut c = raw.clone();
    for q in 0..QUEUES {
        let mut local = queues[q as usize].clone();
        let fill = (0..ours).map(|k| queue_item(u64::MAX / 2 + q * ours + k));
        local.tasks().push_many(db, fill).await.expect("top up");
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(bare_queue(q));
        for k in 0..theirs {
            let i = u64::MAX / 2 + q * theirs + k;
            let (item, priority) = queue_item(i);
            zadd.arg(priority).arg(bare_entry(i, &item));
        }
        let _: i64 = zadd.query_async(&mut c).await.expect("ZADD top up");
    }
    DRY_POPS.store(0, Ordering::Relaxed);
    let (d, c) = (db.clone(), raw.clone());
    rows.push(
        compare(
            "PriorityQueue::pop / ZPOPMIN",
            move |i| {
                let d = d.clone();
                async move {
                    let mut q = bench_queue(i);
                    let popped = q.tasks().pop(&d).await.expect("pop");
                    if popped.is_none() {
                        DRY_POPS.fetch_add(1, Ordering::Relaxed);
                    }
                    std::hint::black_box(popped);
                }
            },
            move |i| {
                let mut c = c.clone();
                async move {
                    let popped: Vec<String> = redis::cmd("ZPOPMIN")
                        .arg(bare_queue(queue_of(i)))
                        .query_async(&mut c)
                        .await
                        .expect("ZPOPMIN");
                    if popped.is_empty() {
                        DRY_POPS.fetch_add(1, Ordering::Relaxed);
                    }
                    std::hint::black_box(popped);
                }
            },
        )
        .await,
    );
    let dry = DRY_POPS.load(Ordering::Relaxed);
    if dry > 0 {
        println!("(the pop row: {dry} pops found their queue empty)");
    }
    rows
}

// Partial reads (issue 17): two fields of a 10 KB document, one model and every match of a
// search, next to the whole document and to the raw commands.

/// A document of about 10 KB, of which the partial rows read two small fields.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "BenchWide")]
struct BenchWide {
    #[rapyer(key)]
    id: u64,
    #[rapyer(index)]
    group: String,
    name: String,
    age: i64,
    bio: String,
    tags: Vec<String>,
}

fn wide(id: u64) -> BenchWide {
    BenchWide {
        id,
        group: "g".into(),
        name: format!("user {id}"),
        age: id as i64,
        bio: "lorem ipsum ".repeat(800),
        tags: (0..20).map(|t| format!("tag-{t}")).collect(),
    }
}

/// What `JSON.GET key $.name $.age` answers, decoded by hand.
#[derive(Deserialize)]
struct TwoPaths {
    #[serde(rename = "$.name")]
    name: (String,),
    #[serde(rename = "$.age")]
    age: (i64,),
}

/// rapyer's `get_fields` of two fields of wide document `i % 1,000`.
async fn wide_get_fields(d: Db, i: u64) {
    let two = BenchWide::get_fields(&d, i % 1_000, |f| (f.name, f.age))
        .await
        .expect("get_fields");
    std::hint::black_box(two);
}

/// rapyer's `find(..).all_fields` of two fields of all 1,000 wide documents.
async fn wide_all_fields(d: Db) {
    let f = BenchWide::fields();
    let two = BenchWide::find(&d, f.group.eq("g"))
        .limit(0, 1_000)
        .all_fields(|f| (f.name, f.age))
        .await
        .expect("all_fields");
    assert_eq!(two.len(), 1_000);
    std::hint::black_box(two);
}

/// The partial rows: `get_fields` against the same raw `JSON.GET` of two paths and against
/// rapyer's `get` of the whole document; `find(..).all_fields` (one `JSON.MGET` per path)
/// against `FT.SEARCH … RETURN` of the same two fields and against `find(..).all()`.
async fn partial_rows(db: &Db, raw: &MultiplexedConnection) -> Vec<Row> {
    let docs: Vec<BenchWide> = (0..1_000).map(wide).collect();
    for chunk in docs.chunks(100) {
        BenchWide::insert_many(db, chunk).await.expect("seed wide");
    }
    db.init::<BenchWide>().await.expect("init wide");
    let mut rows = Vec::new();

    let (d, c) = (db.clone(), raw.clone());
    rows.push(
        compare(
            "get_fields(2 of 10 KB) / JSON.GET 2 paths",
            move |i| wide_get_fields(d.clone(), i),
            move |i| {
                let mut c = c.clone();
                async move {
                    let text: Vec<u8> = redis::cmd("JSON.GET")
                        .arg(format!("bench/BenchWide:{}", i % 1_000))
                        .arg("$.name")
                        .arg("$.age")
                        .query_async(&mut c)
                        .await
                        .expect("JSON.GET");
                    let two: TwoPaths = serde_json::from_slice(&text).expect("decode");
                    std::hint::black_box((two.name.0, two.age.0));
                }
            },
        )
        .await,
    );

    let (d1, d2) = (db.clone(), db.clone());
    rows.push(
        compare(
            "get_fields(2 of 10 KB) / get (10 KB, rapyer)",
            move |i| wide_get_fields(d1.clone(), i),
            move |i| {
                let d = d2.clone();
                async move {
                    let whole = BenchWide::get(&d, i % 1_000).await.expect("get");
                    std::hint::black_box(whole);
                }
            },
        )
        .await,
    );

    let (d, c) = (db.clone(), raw.clone());
    rows.push(
        compare(
            "find(1000).all_fields(2) / FT.SEARCH RETURN 2",
            move |_| wide_all_fields(d.clone()),
            move |_| {
                let mut c = c.clone();
                async move {
                    let reply: Vec<redis::Value> = redis::cmd("FT.SEARCH")
                        .arg("bench/_rapyer:index:BenchWide")
                        .arg("@group:{g}")
                        .arg("RETURN")
                        .arg(6)
                        .arg("$.name")
                        .arg("AS")
                        .arg("name")
                        .arg("$.age")
                        .arg("AS")
                        .arg("age")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(1_000)
                        .arg("DIALECT")
                        .arg(3)
                        .query_async(&mut c)
                        .await
                        .expect("FT.SEARCH");
                    // [total, key, [name, "[…]", age, "[…]"], …]: decode each pair's values.
                    let mut two = Vec::with_capacity(1_000);
                    for fields in reply.into_iter().skip(2).step_by(2) {
                        let fields: Vec<Vec<u8>> = redis::from_redis_value(fields).expect("fields");
                        let name: (String,) = serde_json::from_slice(&fields[1]).expect("name");
                        let age: (i64,) = serde_json::from_slice(&fields[3]).expect("age");
                        two.push((name.0, age.0));
                    }
                    assert_eq!(two.len(), 1_000);
                    std::hint::black_box(two);
                }
            },
        )
        .await,
    );

    let (d1, d2) = (db.clone(), db.clone());
    rows.push(
        compare(
            "find(1000).all_fields(2) / find(1000).all() (10 KB each, rapyer)",
            move |_| wide_all_fields(d1.clone()),
            move |_| {
                let d = d2.clone();
                async move {
                    let f = BenchWide::fields();
                    let whole = BenchWide::find(&d, f.group.eq("g"))
                        .limit(0, 1_000)
                        .all()
                        .await
                        .expect("all");
                    std::hint::black_box(whole);
                }
            },
        )
        .await,
    );
    rows
}
