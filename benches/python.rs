//! `cargo xtask bench python`: rapyer's field handle `incr` next to rapyer for Python's
//! `aincrease` (PyPI `rapyer`, pinned), on the same server, with the same in-flight counts
//! for the same time, in one run.
//!
//! The Python side is `benches/python/incr.py`, run with `python3` against rapyer for Python
//! installed by pip into `target/python-rapyer/` the first time (no venv: python3-venv may
//! be missing on a fresh Debian). Both sides increment the `age` of 1,000 unindexed
//! documents holding the same JSON (id, name, email, age, score, tags, prefs), each loop
//! over its own models; the Rust side on one `Db` (one multiplexed connection, as the
//! table bench), the Python side on one asyncio event loop with the connection pool
//! `init_rapyer` makes, sized to the in-flight count. Each count gets a warm-up, then a
//! fixed measured time; rounds alternate Python and Rust so a swing in the machine's load
//! hits both, and each cell is the median of its rounds. After each cell both sides read
//! every age back from the server and check that it adds up to the increments made and
//! equals the local model's. Timings are printed, never asserted.
//!
//! `cargo test --all-targets` runs this as a quick smoke test; it never installs anything
//! then, and leaves the Python side out when rapyer for Python is not installed yet.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

/// What pip installs: rapyer for Python and the two libraries it runs on, pinned so a run
/// next year measures the same code.
const REQUIREMENTS: [&str; 3] = ["rapyer==1.3.6", "redis==8.0.1", "pydantic==2.13.5"];

/// The rapyer for Python version the installed copy must have.
const PYTHON_RAPYER_VERSION: &str = "1.3.6";

/// The in-flight counts measured on both sides.
const IN_FLIGHT: [usize; 4] = [1, 8, 20, 64];

/// How many documents each side increments (the script seeds as many).
const MODELS: u64 = 1_000;

/// How long pip may take before the bench gives up on it.
const PIP_DEADLINE: Duration = Duration::from_secs(600);

/// The model of the Rust side: the same fields and values as the script's `IncrUser`, no
/// index.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "IncrUser")]
struct IncrUser {
    #[rapyer(key)]
    id: u64,
    name: String,
    email: String,
    age: i64,
    score: f64,
    tags: Vec<String>,
    prefs: std::collections::BTreeMap<String, String>,
}

fn user(id: u64) -> IncrUser {
    IncrUser {
        id,
        name: format!("user number {id}"),
        email: format!("user{id}@example.com"),
        age: 30 + (id % 40) as i64,
        score: id as f64 * 1.5,
        tags: vec!["alpha".into(), "beta".into(), "gamma".into()],
        prefs: [("theme", "dark"), ("lang", "en")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// How one run is measured.
struct Plan {
    /// Whether cargo runs this as a benchmark (`cargo bench` passes `--bench`), not as the
    /// smoke test `cargo test --all-targets` makes of it.
    full: bool,
    rounds: usize,
    warmup: Duration,
    time: Duration,
}

impl Plan {
    /// `RAPYER_BENCH_ROUNDS` (default 3) rounds of `RAPYER_BENCH_SECONDS` (default 2) per
    /// cell after a 0.5 s warm-up; one short round as a smoke test.
    fn from_env() -> Plan {
        if !std::env::args().any(|a| a == "--bench") {
            return Plan {
                full: false,
                rounds: 1,
                warmup: Duration::from_millis(20),
                time: Duration::from_millis(50),
            };
        }
        let var = |name: &str| std::env::var(name).ok();
        Plan {
            full: true,
            rounds: var("RAPYER_BENCH_ROUNDS")
                .and_then(|s| s.parse().ok())
                .filter(|&n| n > 0)
                .unwrap_or(3),
            warmup: Duration::from_millis(500),
            time: var("RAPYER_BENCH_SECONDS")
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64)
                .unwrap_or(Duration::from_secs(2)),
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench python: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let plan = Plan::from_env();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let site = root.join("target").join("python-rapyer");
    let python = if plan.full {
        install_python_rapyer(&site)?;
        true
    } else if python_rapyer_installed(&site) {
        true
    } else {
        println!(
            "rapyer for Python is not installed in {} (`cargo xtask bench python` installs \
             it): the smoke test measures the Rust side only",
            site.display()
        );
        false
    };

    let server = rapyer_testkit::server();
    let url = server.url().to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build a tokio runtime: {e}"))?;
    let db = runtime.block_on(async {
        Db::connect(&url)
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))?
            .with_namespace("bench")
            .map_err(|e| format!("namespace: {e}"))
    })?;
    println!(
        "benchmarking incr against {url}: {} round(s), {:?} warm-up + {:?} per cell",
        plan.rounds, plan.warmup, plan.time
    );

    // rust[i][round], py[i][round]: ops/s with IN_FLIGHT[i] in flight.
    let mut rust = vec![Vec::new(); IN_FLIGHT.len()];
    let mut py = vec![Vec::new(); IN_FLIGHT.len()];
    let mut documents = (String::new(), String::new());
    for _ in 0..plan.rounds {
        if python {
            let out = run_script(root, &site, &url, &plan)?;
            for (i, cell) in out.cells.into_iter().enumerate() {
                py[i].push(cell);
            }
            documents.1 = out.document;
        }
        for (i, &in_flight) in IN_FLIGHT.iter().enumerate() {
            let (ops, document) = runtime.block_on(measure(&db, &url, in_flight, &plan))?;
            rust[i].push(ops);
            documents.0 = document;
        }
    }

    println!("\nthe document of model 0, as stored before the increments:");
    println!(
        "  rapyer (Rust), {} bytes: {}",
        documents.0.len(),
        documents.0
    );
    if python {
        println!(
            "  rapyer (Python), {} bytes: {}",
            documents.1.len(),
            documents.1
        );
        // The same JSON value (a dict's members may come in another order): the two sides
        // increment a field of the same document.
        let value = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
        if value(&documents.0).is_none() || value(&documents.0) != value(&documents.1) {
            return Err("the two sides stored different documents".to_string());
        }
    }
    print_table(&rust, python.then_some(&py), plan.rounds);
    Ok(())
}

/// `incr` of `age` with `in_flight` loops: (ops/s in the measured window, the document of
/// model 0 as seeded). Fails if the server's ages do not add up to the increments made or
/// differ from the local models' ages.
async fn measure(
    db: &Db,
    url: &str,
    in_flight: usize,
    plan: &Plan,
) -> Result<(f64, String), String> {
    let seed: Vec<IncrUser> = (0..MODELS).map(user).collect();
    IncrUser::insert_many(db, &seed)
        .await
        .map_err(|e| format!("seeding: {e}"))?;
    let mut raw = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .map_err(|e| format!("raw connection: {e}"))?;
    let document: String = redis::cmd("JSON.GET")
        .arg(db.key(&IncrUser::key_of(0)))
        .query(&mut raw)
        .map_err(|e| format!("JSON.GET: {e}"))?;

    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Loop w increments models w, w + in_flight, w + 2 * in_flight, ... in turn: no two
    // loops share a model.
    let loops: Vec<_> = (0..in_flight)
        .map(|w| {
            let mut mine: Vec<IncrUser> = seed.iter().skip(w).step_by(in_flight).cloned().collect();
            let (db, done, stop) = (db.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut n, len) = (0, mine.len());
                while !stop.load(Ordering::Relaxed) {
                    let u = &mut mine[n % len];
                    u.age().incr(&db, 1).await?;
                    n += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, rapyer::Error>(mine)
            })
        })
        .collect();
    tokio::time::sleep(plan.warmup).await;
    let (before, started) = (done.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(plan.time).await;
    let (after, elapsed) = (done.load(Ordering::Relaxed), started.elapsed());
    stop.store(true, Ordering::Relaxed);

    let mut local = Vec::new();
    for task in loops {
        let mine = task
            .await
            .map_err(|e| format!("an incr loop panicked: {e}"))?
            .map_err(|e| format!("incr: {e}"))?;
        local.extend(mine);
    }
    local.sort_by_key(|u| u.id);
    let keys: Vec<String> = local.iter().map(|u| db.key(&u.key())).collect();
    let replies: Vec<Option<String>> = redis::cmd("JSON.MGET")
        .arg(&keys)
        .arg("$.age")
        .query(&mut raw)
        .map_err(|e| format!("JSON.MGET: {e}"))?;
    let server: Vec<Option<i64>> = replies
        .iter()
        .map(|r| {
            r.as_deref()
                .and_then(|text| serde_json::from_str::<[i64; 1]>(text).ok())
                .map(|[age]| age)
        })
        .collect();
    let local_ages: Vec<Option<i64>> = local.iter().map(|u| Some(u.age)).collect();
    let seeded: i64 = seed.iter().map(|u| u.age).sum();
    let total: i64 = server.iter().map(|a| a.unwrap_or(0)).sum();
    let increments = done.load(Ordering::Relaxed);
    if server != local_ages || i64::try_from(increments).ok() != Some(total - seeded) {
        return Err(format!(
            "rapyer (Rust): the server's ages do not add up to the {increments} increments \
             made, or differ from the local models' ages"
        ));
    }
    Ok(((after - before) as f64 / elapsed.as_secs_f64(), document))
}

/// What one run of the script measured.
struct ScriptOutput {
    /// ops/s for each of `IN_FLIGHT`, in order.
    cells: Vec<f64>,
    /// The document of model 0 as the script seeded it.
    document: String,
}

/// Runs `benches/python/incr.py` on every in-flight count; fails on a non-zero exit, a
/// missing line, or a run that outlives its deadline.
fn run_script(root: &Path, site: &Path, url: &str, plan: &Plan) -> Result<ScriptOutput, String> {
    let script = root.join("benches").join("python").join("incr.py");
    let counts: Vec<String> = IN_FLIGHT.iter().map(usize::to_string).collect();
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg(url)
        .arg(counts.join(","))
        .arg("--seconds")
        .arg(plan.time.as_secs_f64().to_string())
        .arg("--warmup")
        .arg(plan.warmup.as_secs_f64().to_string())
        .env("PYTHONPATH", site)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // Interpreter start-up, imports and seeding take a few seconds at most.
    let deadline =
        Duration::from_secs(120) + (plan.warmup + plan.time * 2) * IN_FLIGHT.len() as u32;
    let stdout = run_with_deadline(cmd, deadline, "benches/python/incr.py")?;
    let mut cells = Vec::new();
    let mut document = String::new();
    for line in stdout.lines().filter(|l| l.starts_with('{')) {
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("benches/python/incr.py printed {line:?}: {e}"))?;
        let in_flight = value["in_flight"].as_u64();
        let ops = value["ops_per_s"].as_f64();
        match (in_flight, ops) {
            (Some(n), Some(ops)) if IN_FLIGHT.get(cells.len()) == Some(&(n as usize)) => {
                cells.push(ops)
            }
            _ => return Err(format!("benches/python/incr.py printed {line:?}")),
        }
        if let Some(text) = value["document"].as_str() {
            document = text.to_string();
        }
    }
    if cells.len() != IN_FLIGHT.len() {
        return Err(format!(
            "benches/python/incr.py printed {} result line(s), not {}:\n{stdout}",
            cells.len(),
            IN_FLIGHT.len()
        ));
    }
    Ok(ScriptOutput { cells, document })
}

/// Whether `site` holds an importable rapyer for Python of the pinned version (a copy pip
/// made for another Python version fails to import its compiled pydantic-core).
fn python_rapyer_installed(site: &Path) -> bool {
    Command::new("python3")
        .args([
            "-c",
            "import sys, importlib.metadata as m, rapyer; print(m.version('rapyer'))",
        ])
        .env("PYTHONPATH", site)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|out| {
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).trim() == PYTHON_RAPYER_VERSION
        })
        .unwrap_or(false)
}

/// Installs rapyer for Python into `site` unless it is there; fails with what to do when
/// python3 or pip is missing or PyPI cannot be reached.
fn install_python_rapyer(site: &Path) -> Result<(), String> {
    if python_rapyer_installed(site) {
        println!(
            "rapyer for Python {PYTHON_RAPYER_VERSION}: installed in {}",
            site.display()
        );
        return Ok(());
    }
    let version = Command::new("python3")
        .args(["-c", "import sys; sys.exit(sys.version_info < (3, 10))"])
        .status()
        .map_err(|e| {
            format!("cannot run python3 ({e}): this bench needs Python 3.10 to 3.13 with pip")
        })?;
    if !version.success() {
        return Err("python3 is older than 3.10; rapyer for Python needs 3.10 to 3.13".into());
    }
    // An older or broken copy is replaced whole: pip --target does not overwrite one.
    if site.exists() {
        std::fs::remove_dir_all(site)
            .map_err(|e| format!("cannot remove the old {}: {e}", site.display()))?;
    }
    let mut cmd = Command::new("python3");
    cmd.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
    ])
    .args(["--timeout", "20", "--retries", "2", "--target"])
    .arg(site)
    .args(REQUIREMENTS)
    .stdin(Stdio::null())
    .stdout(Stdio::inherit())
    .stderr(Stdio::inherit());
    println!(
        "==> python3 -m pip install --target {} {}",
        site.display(),
        REQUIREMENTS.join(" ")
    );
    run_with_deadline(cmd, PIP_DEADLINE, "pip").map_err(|why| {
        format!(
            "cannot install rapyer for Python from PyPI ({why}). This bench needs PyPI once; \
             or install it yourself: python3 -m pip install --target {} {}",
            site.display(),
            REQUIREMENTS.join(" ")
        )
    })?;
    if python_rapyer_installed(site) {
        Ok(())
    } else {
        Err(format!(
            "pip finished but rapyer {PYTHON_RAPYER_VERSION} does not import from {}",
            site.display()
        ))
    }
}

/// Runs `cmd` to its end and returns its stdout (when piped); kills it past `deadline`.
fn run_with_deadline(mut cmd: Command, deadline: Duration, what: &str) -> Result<String, String> {
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    // Read stdout on a thread of its own so a child writing a lot never blocks on the pipe.
    let reader = child.stdout.take().map(|mut out| {
        std::thread::spawn(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut out, &mut text).map(|_| text)
        })
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > deadline => {
                // The child is ours; killing it is how a hung pip ends.
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{what} did not finish in {deadline:?} and was stopped"
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("waiting for {what}: {e}")),
        }
    };
    let stdout = match reader {
        Some(reader) => reader
            .join()
            .map_err(|_| format!("reading {what}'s output panicked"))?
            .map_err(|e| format!("reading {what}'s output: {e}"))?,
        None => String::new(),
    };
    if status.success() {
        Ok(stdout)
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// The median of a cell's rounds.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// `12,345`: ops/s rounded, with thousands separators.
fn ops(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A cell: the median, and the range of the rounds when there are several.
fn cell(values: &[f64]) -> String {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    match values.len() {
        0 | 1 => ops(median(values)),
        _ => format!("{} ({}–{})", ops(median(values)), ops(lo), ops(hi)),
    }
}

fn print_table(rust: &[Vec<f64>], py: Option<&Vec<Vec<f64>>>, rounds: usize) {
    println!(
        "\nincr of an i64 field, ops/s: median of {rounds} round(s) (range); ratio = Rust / Python\n"
    );
    println!("| in flight | rapyer (Rust) ops/s | rapyer (Python) ops/s | ratio |");
    println!("|---:|---:|---:|---:|");
    for (i, in_flight) in IN_FLIGHT.iter().enumerate() {
        let (python, ratio) = match py {
            Some(py) => (
                cell(&py[i]),
                format!("{:.1}×", median(&rust[i]) / median(&py[i])),
            ),
            None => ("–".to_string(), "–".to_string()),
        };
        println!("| {in_flight} | {} | {python} | {ratio} |", cell(&rust[i]));
    }
    let best = |cells: &[Vec<f64>]| {
        IN_FLIGHT
            .iter()
            .zip(cells)
            .map(|(n, c)| (*n, median(c)))
            .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a })
    };
    let (rust_n, rust_best) = best(rust);
    match py {
        Some(py) => {
            let (py_n, py_best) = best(py);
            println!(
                "\nbest vs best: rapyer (Rust) {} ops/s ({rust_n} in flight) / rapyer (Python) \
                 {} ops/s ({py_n} in flight) = {:.1}×",
                ops(rust_best),
                ops(py_best),
                rust_best / py_best
            );
        }
        None => println!(
            "\nbest: rapyer (Rust) {} ops/s ({rust_n} in flight)",
            ops(rust_best)
        ),
    }
}
