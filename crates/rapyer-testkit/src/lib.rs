//! Dev-only support for rapyer's tests, examples and benchmarks: a real Redis with the
//! JSON and Search modules, and a key namespace per test.
//!
//! [`server()`] gives every test binary exactly one server:
//!
//! * when `REDIS_URL` is set, that server (a user's own Redis 8, or the docker-compose one);
//! * otherwise the server cached by `cargo xtask redis` in `target/redis-stack/`
//!   (or `RAPYER_REDIS_DIR`), started on a free 127.0.0.1 port.
//!
//! [`cluster()`] likewise gives a test binary one Redis Cluster: `REDIS_CLUSTER_URLS` when set,
//! else six cached servers (three primaries, three replicas) started once, with helpers to
//! list its nodes, move a slot and fail a primary over.
//!
//! A started server is stopped when the process that started it exits, however it exits:
//! a small watchdog shell holds the server's pid and kills it as soon as its standard input
//! (a pipe held by this process) closes.
//!
//! If no server can be had, [`server()`] panics with a message that says exactly what to
//! run. Nothing here ever lets a test pass without a live server.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod cluster;
#[cfg(feature = "tls")]
mod tls;
pub use cluster::{CLUSTER_URLS_ENV, Cluster, ClusterNode, Migration, cluster};
#[cfg(feature = "tls")]
pub use tls::{TlsCluster, TlsProxy};

/// The environment variable naming an existing server to use instead of starting one.
pub const REDIS_URL_ENV: &str = "REDIS_URL";
/// The environment variable that overrides where the cached binaries live.
pub const REDIS_DIR_ENV: &str = "RAPYER_REDIS_DIR";

/// What to run when no server can be found; every failure message ends with it.
pub const HOW_TO_FIX: &str = "run `cargo xtask redis` once (it caches redis-server, rejson.so, \
redisearch.so and redisbloom.so in target/redis-stack/, and adds what an older folder lacks), or \
set REDIS_URL to a Redis 8 / redis-stack server with the JSON, Search and Bloom modules (e.g. \
`docker compose up -d` and REDIS_URL=redis://127.0.0.1:6379)";

/// The data file `SHUTDOWN SAVE` writes and a restarted server loads.
const DATA_FILE: &str = "rapyer.rdb";

/// The cached Redis binaries of one provisioned folder.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `redis-server` 8.x.
    pub server: PathBuf,
    /// The RedisJSON module.
    pub rejson: PathBuf,
    /// The RediSearch module.
    pub redisearch: PathBuf,
    /// The RedisBloom module (Bloom filters, count-min sketches).
    pub redisbloom: PathBuf,
}

impl Binaries {
    /// The binaries inside `dir`, if all four are there (a folder cached before
    /// `redisbloom.so` was added is incomplete: `cargo xtask redis` adds it).
    pub fn in_dir(dir: &Path) -> Option<Binaries> {
        let b = Binaries {
            server: dir.join("redis-server"),
            rejson: dir.join("rejson.so"),
            redisearch: dir.join("redisearch.so"),
            redisbloom: dir.join("redisbloom.so"),
        };
        (b.server.is_file()
            && b.rejson.is_file()
            && b.redisearch.is_file()
            && b.redisbloom.is_file())
        .then_some(b)
    }
}

/// The folder holding the cached binaries: `RAPYER_REDIS_DIR`, else `<workspace>/target/redis-stack`.
pub fn stack_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(REDIS_DIR_ENV) {
        return PathBuf::from(dir);
    }
    workspace_root().join("target").join("redis-stack")
}

/// The workspace root this crate was built in.
pub fn workspace_root() -> PathBuf {
    // crates/rapyer-testkit -> the workspace root, two levels up.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

/// A Redis server with JSON and Search: either one this process started, or an external one.
#[derive(Debug)]
pub struct Server {
    url: String,
    owned: Option<Mutex<OwnedServer>>,
}

#[derive(Debug)]
struct OwnedServer {
    binaries: Binaries,
    port: u16,
    log: PathBuf,
    /// Where `SHUTDOWN SAVE` writes the data a restart loads.
    data_dir: PathBuf,
    /// Arguments added to the server's command line (a cluster node's settings).
    extra: Vec<String>,
    watchdog: Child,
    // Held so the pipe stays open; the watchdog kills the server when it closes.
    stdin: Option<ChildStdin>,
}

impl Server {
    /// Uses the server at `url`, checking that it answers and has the JSON and Search modules.
    pub fn external(url: &str) -> Result<Server, String> {
        let server = Server {
            url: url.to_string(),
            owned: None,
        };
        server.wait_ready(Duration::from_secs(10))?;
        Ok(server)
    }

    /// Starts the cached binaries on a free 127.0.0.1 port and waits until the server answers.
    pub fn start(binaries: &Binaries) -> Result<Server, String> {
        Server::start_on(binaries, free_port()?, Vec::new())
    }

    /// Starts the binaries on `port` with `extra` command-line arguments and waits until
    /// the server answers.
    fn start_on(binaries: &Binaries, port: u16, extra: Vec<String>) -> Result<Server, String> {
        let owned = OwnedServer::spawn(binaries.clone(), port, false, extra)?;
        let server = Server {
            url: format!("redis://127.0.0.1:{port}/"),
            owned: Some(Mutex::new(owned)),
        };
        server.wait_ready(Duration::from_secs(20))?;
        Ok(server)
    }

    /// Starts the binaries cached in [`stack_dir()`].
    pub fn start_cached() -> Result<Server, String> {
        let dir = stack_dir();
        let binaries = Binaries::in_dir(&dir).ok_or_else(|| {
            format!(
                "no Redis server: REDIS_URL is not set and {} has no cached redis-server, \
                 rejson.so, redisearch.so and redisbloom.so. Fix: {HOW_TO_FIX}",
                dir.display()
            )
        })?;
        Server::start(&binaries)
    }

    /// The server's URL, e.g. `redis://127.0.0.1:41234/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether this process started the server (and so can restart it).
    pub fn is_owned(&self) -> bool {
        self.owned.is_some()
    }

    /// Restarts the server this process started, on the same port, keeping its data and
    /// nothing else: `SHUTDOWN SAVE` writes every key to disk, the new server loads it, and
    /// its script cache starts empty, as after a real restart. Connections open at that
    /// moment are dropped. Returns once the new server answers. An external server is not
    /// touched and gives an error.
    pub fn restart(&self) -> Result<(), String> {
        self.stop()?;
        self.start_again()
    }

    /// Stops the server this process started, saving its data (`SHUTDOWN SAVE`): open
    /// connections drop and new ones are refused until [`Server::start_again`]. Stopping a
    /// stopped server does nothing. An external server is not touched and gives an error.
    pub fn stop(&self) -> Result<(), String> {
        let owned = self
            .owned
            .as_ref()
            .ok_or("stop needs a server started by the testkit; REDIS_URL is set")?;
        let mut guard = owned.lock().map_err(|_| "server lock poisoned")?;
        if guard.stdin.is_none() {
            return Ok(());
        }
        let client = redis::Client::open(self.url.as_str())
            .map_err(|e| format!("bad Redis URL {:?}: {e}", self.url))?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .map_err(|e| format!("cannot reach the server to stop it: {e}"))?;
        // The server exits while answering, so the reply is a dropped connection; whether
        // the save happened is checked by looking for the data file.
        let _ = redis::cmd("SHUTDOWN").arg("SAVE").query::<()>(&mut conn);
        guard.stop();
        if !guard.data_dir.join(DATA_FILE).is_file() {
            return Err(format!(
                "SHUTDOWN SAVE left no {DATA_FILE} in {}",
                guard.data_dir.display()
            ));
        }
        Ok(())
    }

    /// Starts a server stopped by [`Server::stop`] again, on the same port, with the data it
    /// saved; returns once it answers. Starting a running server does nothing.
    pub fn start_again(&self) -> Result<(), String> {
        let owned = self
            .owned
            .as_ref()
            .ok_or("start_again needs a server started by the testkit; REDIS_URL is set")?;
        let mut guard = owned.lock().map_err(|_| "server lock poisoned")?;
        if guard.stdin.is_some() {
            return Ok(());
        }
        let fresh = OwnedServer::spawn(
            guard.binaries.clone(),
            guard.port,
            true,
            guard.extra.clone(),
        )?;
        *guard = fresh;
        drop(guard);
        self.wait_ready(Duration::from_secs(20))
    }

    /// Waits until the server answers PING and checks that it has RedisJSON and RediSearch.
    fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let client = redis::Client::open(self.url.as_str())
            .map_err(|e| format!("bad Redis URL {:?}: {e}", self.url))?;
        let deadline = Instant::now() + timeout;
        let mut conn = loop {
            // The last failure is kept so a timeout says why (refused, NOAUTH, LOADING, ...).
            let failure = match client.get_connection_with_timeout(Duration::from_secs(2)) {
                Ok(mut c) => match redis::cmd("PING").query::<String>(&mut c) {
                    Ok(_) => break c,
                    Err(e) => format!("PING failed: {e}"),
                },
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "Redis at {} did not answer within {timeout:?} ({failure}).{} Fix: {HOW_TO_FIX}",
                    self.url,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let modules: redis::Value = redis::cmd("MODULE")
            .arg("LIST")
            .query(&mut conn)
            .map_err(|e| format!("MODULE LIST failed on {}: {e}", self.url))?;
        let text = format!("{modules:?}").to_lowercase();
        for (needle, name) in [("rejson", "RedisJSON"), ("search", "RediSearch")] {
            if !text.contains(needle) {
                return Err(format!(
                    "the Redis at {} has no {name} module (MODULE LIST: {modules:?}). Fix: {HOW_TO_FIX}",
                    self.url
                ));
            }
        }
        Ok(())
    }

    /// Checks that the server has the RedisBloom module (`BF.*`, `CMS.*`), which only the
    /// tests of probabilistic structures need; a server started from the cached folder always
    /// has it. The error names the fix.
    pub fn require_bloom(&self) -> Result<(), String> {
        require_bloom_at(&self.url)
    }

    fn log_tail(&self) -> String {
        let Some(owned) = &self.owned else {
            return String::new();
        };
        let Ok(guard) = owned.lock() else {
            return String::new();
        };
        let log = std::fs::read_to_string(&guard.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "\nserver log {}:\n{}\n",
            guard.log.display(),
            tail.join("\n")
        )
    }
}

impl OwnedServer {
    /// Starts a server on `port`; `keep_data` loads what the last server on this port saved
    /// (a restart), otherwise it starts empty.
    fn spawn(
        binaries: Binaries,
        port: u16,
        keep_data: bool,
        extra: Vec<String>,
    ) -> Result<OwnedServer, String> {
        let log = std::env::temp_dir().join(format!("rapyer-redis-{port}.log"));
        let data_dir = std::env::temp_dir().join(format!("rapyer-redis-{port}.data"));
        if !keep_data {
            // A log or data file left by an earlier server on this port would make a
            // failure's log tail lie, or fill the new server with old keys.
            let _ = std::fs::remove_file(&log);
            let _ = std::fs::remove_dir_all(&data_dir);
        }
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        // The watchdog shell starts the server, then blocks reading its standard input; when
        // this process exits (normally, by panic or by signal) the pipe closes, `cat` returns
        // and the server is killed. No server outlives the tests that started it.
        let script = r#"
port=$1 rejson=$2 search=$3 log=$4 dir=$5 file=$6 bloom=$7
shift 7
"$0" --port "$port" --bind 127.0.0.1 --save "" --appendonly no --protected-mode yes \
     --enable-debug-command local --logfile "$log" --dir "$dir" --dbfilename "$file" \
     --loadmodule "$rejson" --loadmodule "$search" --loadmodule "$bloom" "$@" &
pid=$!
cat >/dev/null
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
"#;
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&binaries.server)
            .arg(port.to_string())
            .arg(&binaries.rejson)
            .arg(&binaries.redisearch)
            .arg(&log)
            .arg(&data_dir)
            .arg(DATA_FILE)
            .arg(&binaries.redisbloom)
            .args(&extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binaries.server.display()))?;
        let stdin = watchdog.stdin.take();
        Ok(OwnedServer {
            binaries,
            port,
            log,
            data_dir,
            extra,
            watchdog,
            stdin,
        })
    }

    fn stop(&mut self) {
        // Closing the pipe is what tells the watchdog to kill the server; once closed, the
        // server is gone and there is nothing more to do.
        let Some(stdin) = self.stdin.take() else {
            return;
        };
        drop(stdin);
        let _ = self.watchdog.wait();
        // Wait until the port is free again so a restart can bind it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for OwnedServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Checks that the server at `url` (one server, or any node of a cluster) has the RedisBloom
/// module; the error names the fix.
pub fn require_bloom_at(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| format!("bad Redis URL {url:?}: {e}"))?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let modules: redis::Value = redis::cmd("MODULE")
        .arg("LIST")
        .query(&mut conn)
        .map_err(|e| format!("MODULE LIST failed on {url}: {e}"))?;
    // RedisBloom registers itself as `bf`; Redis 8 builds it in under the same name.
    let has = match &modules {
        redis::Value::Array(list) => list.iter().any(|module| {
            let text = format!("{module:?}").to_lowercase();
            text.contains("\"bf\"") || text.contains("redisbloom")
        }),
        _ => false,
    };
    if has {
        return Ok(());
    }
    Err(format!(
        "the Redis at {url} has no RedisBloom module (MODULE LIST: {modules:?}), which Bloom \
         filters and count-min sketches need. Fix: {HOW_TO_FIX}"
    ))
}

/// [`server()`], checked to have the RedisBloom module.
///
/// # Panics
/// When there is no server, or it has no RedisBloom (a `REDIS_URL` server without it), with
/// a message that says what to run.
pub fn bloom_server() -> &'static Server {
    let server = server();
    if let Err(message) = server.require_bloom() {
        panic!("rapyer-testkit: {message}");
    }
    server
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// The one server of this process: `REDIS_URL` when set, else the cached server started once.
///
/// # Panics
/// When no server can be had, with a message that says what to run. A test must never pass
/// without a server, so this is a loud failure by design.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    let result = SERVER.get_or_init(|| match std::env::var(REDIS_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => Server::external(url.trim()),
        _ => Server::start_cached(),
    });
    match result {
        Ok(server) => server,
        Err(message) => panic!("rapyer-testkit: {message}"),
    }
}

/// A key namespace unique to `name` and to this run: `t/{name}/{run}.{n}/`.
///
/// The run part (process id and start time) keeps repeated runs against one long-lived
/// `REDIS_URL` server from seeing each other's keys.
pub fn namespace(name: &str) -> String {
    static RUN: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let run = RUN.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() % 1_000_000_000_000)
            .unwrap_or(0);
        format!("{}.{nanos:x}", std::process::id())
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '.'
            }
        })
        .collect();
    format!("t/{clean}/{run}.{n}/")
}

/// A namespace named after the running test (the test harness names each test's thread
/// after the test's path).
pub fn test_namespace() -> String {
    let thread = std::thread::current();
    namespace(thread.name().unwrap_or("unnamed"))
}
