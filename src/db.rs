//! The connection handle: one multiplexed, auto-reconnecting connection (to one server, or
//! to every node of a Redis Cluster) and a key namespace.

use std::sync::Arc;
use std::time::Instant;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use crate::connect::ConnectOptions;
use crate::direct::Direct;
use crate::error::{Error, Result};
use crate::script::{Gather, Registry, Scripts};

/// A cheap-to-clone handle on one Redis server (or one Redis Cluster, see
/// [`Db::connect_cluster`]), with an optional key namespace.
///
/// Every clone shares one multiplexed connection (one per node on a cluster) that reconnects
/// by itself; commands from many tasks are pipelined onto it. Every key rapyer builds is `{namespace}{Prefix}:{id}`
/// (see [`Db::with_namespace`]).
///
/// ```no_run
/// # async fn demo() -> rapyer::Result<()> {
/// let db = rapyer::Db::connect("redis://127.0.0.1:6379").await?;
/// let tenant = db.with_namespace("tenant-a/")?;
/// assert_eq!(tenant.key("User:u1"), "tenant-a/User:u1");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Db {
    conn: Connection,
    /// The client `conn` was opened with: a way to reach the server that does not depend on
    /// the runtime `conn` runs on (see [`Db::blocking_connection`]).
    client: Client,
    url: Arc<str>,
    namespace: Arc<str>,
    scripts: Arc<Registry>,
    /// The field calls in flight on this connection, and those waiting to be gathered
    /// (`None` on a cluster, or when turned off).
    gather: Option<Arc<Gather>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("url", &redact(&self.url))
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl Db {
    /// Connects to the Redis at `url` (`redis://[user:pass@]host:port[/db]`, or
    /// `rediss://…` with the `tls` feature) with the default [`ConnectOptions`].
    ///
    /// The server needs the RedisJSON module (Redis 8, or redis-stack 7.2+); queries also
    /// need RediSearch. A reply that takes longer than 30 seconds fails the call with a
    /// timeout ([`Error::Redis`](crate::Error::Redis)); whether the command ran is then unknown.
    pub async fn connect(url: &str) -> Result<Db> {
        Db::connect_with(url, ConnectOptions::default()).await
    }

    /// Connects to the Redis at `url` with these timeouts and reconnect budget (and, with
    /// the `tls` feature, certificates); see [`ConnectOptions`].
    ///
    /// Fails with [`Error::Redis`](crate::Error::Redis) (operation `connect`) when the URL is invalid or no
    /// connection could be made within the reconnect budget.
    pub async fn connect_with(url: &str, options: ConnectOptions) -> Result<Db> {
        let conn = crate::connect::open(url, &options).await?;
        let client =
            crate::connect::client(url, &options).map_err(|e| Error::redis("connect", e))?;
        let direct = Direct::new(&client, &options);
        tracing::debug!(target: "rapyer::db", url = %redact(url), "connected");
        Ok(Db {
            conn: Connection::Standalone(conn, direct),
            client: Client::Standalone(Arc::new(client)),
            url: url.into(),
            namespace: "".into(),
            scripts: Arc::new(Registry::new()),
            // A gathered call waits on tokio's timer (at most 2 ms), as the reply timeout
            // does; without one, the runtime may have no timer: calls go alone.
            gather: Gather::new(if options.response_timeout.is_some() {
                options.gather_after
            } else {
                0
            }),
        })
    }

    /// Connects to the Redis Cluster reachable through the seed URLs `nodes` (any of its
    /// nodes; the others are found from the cluster's slot map) with the default
    /// [`ConnectOptions`]. See [`Db::connect_cluster_with`].
    ///
    /// ```no_run
    /// # async fn demo() -> rapyer::Result<()> {
    /// let db = rapyer::Db::connect_cluster(["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"]).await?;
    /// assert!(db.is_cluster());
    /// # Ok(()) }
    /// ```
    pub async fn connect_cluster<I, S>(nodes: I) -> Result<Db>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Db::connect_cluster_with(nodes, ConnectOptions::default()).await
    }

    /// Connects to the Redis Cluster reachable through the seed URLs `nodes` with these
    /// options: `response_timeout` and `connect_timeout` apply to every node,
    /// `reconnect_retries` bounds how often one request is retried (after a redirect, a lost
    /// node or a topology change), and the pauses between retries go from
    /// `reconnect_min_delay` up to `reconnect_max_delay`.
    ///
    /// Every operation works as on one server, with the differences the README's "Cluster"
    /// section lists: what is atomic is what shares one hash slot, and searches ask every
    /// primary and merge their answers.
    /// Fails with [`Error::Redis`](crate::Error::Redis) (operation `connect`) when no seed is
    /// a valid URL or none answers.
    pub async fn connect_cluster_with<I, S>(nodes: I, options: ConnectOptions) -> Result<Db>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nodes: Vec<String> = nodes.into_iter().map(|n| n.as_ref().to_string()).collect();
        let seeds: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let client = crate::connect::cluster_client(&seeds, &options)
            .map_err(|e| Error::redis("connect", e))?;
        let conn = crate::connect::open_cluster(&client).await?;
        let url = seeds.join(",");
        tracing::debug!(target: "rapyer::db", url = %redact(&url), "connected to a cluster");
        Ok(Db {
            conn: Connection::Cluster(conn),
            client: Client::Cluster(Arc::new(client)),
            url: url.into(),
            namespace: "".into(),
            scripts: Arc::new(Registry::new()),
            gather: None,
        })
    }

    /// Whether this handle is connected to a Redis Cluster ([`Db::connect_cluster`]).
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Connection::Cluster(_))
    }

    /// A handle on the same connection whose keys all start with `namespace` (replacing this
    /// handle's namespace; `""` is the root).
    ///
    /// A namespace is one or more segments, each ending in `/` (`"tenant-a/"`, `"app/eu/"`;
    /// the last `/` is added when missing). A segment holds no `:`, `/`, braces, glob
    /// characters, backslash, whitespace or control characters: so no two namespaces, and no
    /// namespace and the root, can have a key in common, and the keys of one namespace all
    /// start with it (a Redis ACL `~tenant-a/*` covers them). Anything else is
    /// [`Error::InvalidNamespace`](crate::Error::InvalidNamespace).
    ///
    /// ```no_run
    /// # async fn demo() -> rapyer::Result<()> {
    /// let db = rapyer::Db::connect("redis://127.0.0.1:6379").await?;
    /// let tenant = db.with_namespace("tenant-a")?;
    /// assert_eq!(tenant.namespace(), "tenant-a/");
    /// assert!(db.with_namespace("tenant-a:").is_err());
    /// # Ok(()) }
    /// ```
    pub fn with_namespace(&self, namespace: impl AsRef<str>) -> Result<Db> {
        let namespace = crate::keys::check_namespace(namespace.as_ref())?;
        Ok(Db {
            conn: self.conn.clone(),
            client: self.client.clone(),
            url: self.url.clone(),
            namespace: namespace.into(),
            scripts: self.scripts.clone(),
            gather: self.gather.clone(),
        })
    }

    /// The named scripts of this connection (shared by every clone and namespace of it).
    pub fn scripts(&self) -> Scripts<'_> {
        Scripts::new(self)
    }

    /// The gathering of this connection's field calls, if on.
    pub(crate) fn gather(&self) -> Option<&Gather> {
        self.gather.as_deref()
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.scripts
    }

    /// This handle's key namespace (empty by default).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The full Redis key for a model key such as `User:u1`: the namespace, then the key.
    pub fn key(&self, model_key: &str) -> String {
        let mut key = String::with_capacity(self.namespace.len() + model_key.len());
        key.push_str(&self.namespace);
        key.push_str(model_key);
        key
    }

    /// A new blocking connection to the same server, for work that must finish when no
    /// runtime can drive the shared connection any more (a lock released while the runtime
    /// shuts down): connecting, and each reply, waits at most `timeout`.
    /// On a cluster, a blocking cluster connection that routes each command by its key.
    pub(crate) fn blocking_connection(
        &self,
        timeout: std::time::Duration,
    ) -> std::result::Result<Box<dyn redis::ConnectionLike>, RedisError> {
        match &self.client {
            Client::Standalone(client) => {
                let conn = client.get_connection_with_timeout(timeout)?;
                conn.set_read_timeout(Some(timeout))?;
                conn.set_write_timeout(Some(timeout))?;
                Ok(Box::new(conn))
            }
            Client::Cluster(client) => {
                let conn = client.get_connection()?;
                conn.set_read_timeout(Some(timeout))?;
                conn.set_write_timeout(Some(timeout))?;
                Ok(Box::new(conn))
            }
        }
    }

    /// The addresses (`host`, `port`) of the cluster's primaries, as the cluster reports
    /// them now (`CLUSTER SHARDS` would need Redis 7; `CLUSTER SLOTS` is older and enough).
    /// One entry, `None`, on a single server: "the server".
    pub(crate) async fn primaries(&self) -> Result<Vec<Option<(String, u16)>>> {
        if !self.is_cluster() {
            return Ok(vec![None]);
        }
        let primaries = self.primary_slots().await?;
        Ok(primaries.into_iter().map(|(at, _)| Some(at)).collect())
    }

    /// Each primary of the cluster with the slot ranges (inclusive) it serves, from
    /// `CLUSTER SLOTS`; empty on a single server.
    pub(crate) async fn primary_slots(&self) -> Result<Vec<PrimarySlots>> {
        if !self.is_cluster() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SLOTS");
        let slots: Vec<Value> = self
            .query("CLUSTER SLOTS", 0, &cmd)
            .await
            .map_err(|e| Error::redis("CLUSTER SLOTS", e))?;
        let mut primaries: Vec<PrimarySlots> = Vec::new();
        for range in slots {
            // [start, end, [host, port, id, …], replicas…]
            let Value::Array(parts) = range else { continue };
            let Some(Value::Array(primary)) = parts.get(2) else {
                continue;
            };
            let number = |v: Option<&Value>| v.and_then(|v| u16::from_redis_value(v.clone()).ok());
            let host = primary
                .first()
                .and_then(|h| String::from_redis_value(h.clone()).ok());
            let (Some(host), Some(port), Some(start), Some(end)) = (
                host,
                number(primary.get(1)),
                number(parts.first()),
                number(parts.get(1)),
            ) else {
                continue;
            };
            match primaries
                .iter_mut()
                .find(|(at, _)| *at == (host.clone(), port))
            {
                Some((_, ranges)) => ranges.push((start, end)),
                None => primaries.push(((host, port), vec![(start, end)])),
            }
        }
        Ok(primaries)
    }

    /// Sends one command to the node `at` (`None`: wherever the command's key routes it).
    pub(crate) async fn query_at<T: FromRedisValue>(
        &self,
        op: &'static str,
        at: Option<&(String, u16)>,
        cmd: &Cmd,
    ) -> std::result::Result<T, RedisError> {
        let (Connection::Cluster(conn), Some((host, port))) = (&self.conn, at) else {
            return self.query(op, 0, cmd).await;
        };
        let started = Instant::now();
        let mut conn = conn.clone();
        let routing = redis::cluster_routing::RoutingInfo::SingleNode(
            redis::cluster_routing::SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port: *port,
            },
        );
        let result = conn.route_command(cmd.clone(), routing).await;
        trace_command(op, 0, started, result.is_ok());
        T::from_redis_value(result?.extract_error()?).map_err(RedisError::from)
    }

    /// Each of `cmds` (commands of one key of a slot being migrated to the node `at`) sent
    /// right after an `ASKING` to that node, all in ONE request (see [`Db::follow_ask`] for
    /// why together); the commands' replies, server errors as values. On one server, each
    /// command to the server.
    pub(crate) async fn query_asking(
        &self,
        op: &'static str,
        at: &(String, u16),
        cmds: &[Cmd],
    ) -> std::result::Result<Vec<Value>, RedisError> {
        let started = Instant::now();
        let mut pipe = redis::pipe();
        for cmd in cmds {
            if self.is_cluster() {
                pipe.cmd("ASKING");
            }
            pipe.add_command(cmd.clone());
        }
        let result = match &self.conn {
            Connection::Cluster(conn) => route_to(conn, at, pipe)
                .await
                .map(|replies| replies.into_iter().skip(1).step_by(2).collect()),
            Connection::Standalone(..) => {
                let mut conn = self.conn.clone();
                conn.req_packed_commands(&pipe, 0, pipe.len()).await
            }
        };
        trace_command(op, cmds.len(), started, result.is_ok());
        result
    }

    /// The node `slot` is being migrated to, as the slot's owner (by `CLUSTER SLOTS`) says
    /// on its own `CLUSTER NODES` line (`[slot->-id]`, the address from `id`'s line); `None`
    /// when the slot is not migrating, and on one server.
    pub(crate) async fn migration_target(&self, slot: u16) -> Result<Option<(String, u16)>> {
        let owner = self
            .primary_slots()
            .await?
            .into_iter()
            .find(|(_, ranges)| ranges.iter().any(|&(a, b)| a <= slot && slot <= b));
        let Some((owner, _)) = owner else {
            return Ok(None);
        };
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("NODES");
        let text: String = self
            .query_at("CLUSTER NODES", Some(&owner), &cmd)
            .await
            .map_err(|e| Error::redis("CLUSTER NODES", e))?;
        let moving = format!("[{slot}->-");
        let target = text
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .filter(|fields| fields.get(2).is_some_and(|f| f.contains("myself")))
            .flat_map(|fields| fields.into_iter().skip(8))
            .find_map(|entry| entry.strip_prefix(moving.as_str())?.strip_suffix(']'));
        let Some(target) = target else {
            return Ok(None);
        };
        Ok(text.lines().find_map(|line| {
            let mut fields = line.split_whitespace();
            if fields.next()? != target {
                return None;
            }
            let addr = fields.next()?.split(['@', ',']).next()?;
            let (host, port) = addr.rsplit_once(':')?;
            Some((host.to_string(), port.parse().ok()?))
        }))
    }

    /// Sends one command and decodes its reply, traced as `op` with `keys` keys.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        op: &'static str,
        keys: usize,
        cmd: &Cmd,
    ) -> std::result::Result<T, RedisError> {
        let value = self
            .query_reply(op, keys, cmd, Value::extract_error)
            .await?;
        T::from_redis_value(value).map_err(RedisError::from)
    }

    /// Sends one command and returns its reply, traced as `op` with `keys` keys; `extract`
    /// says which server errors in the reply fail the call: [`Value::extract_error`] any
    /// (the reply's own, or one inside it), [`top_error`] only the reply's own.
    pub(crate) async fn query_reply(
        &self,
        op: &'static str,
        keys: usize,
        cmd: &Cmd,
        extract: fn(Value) -> RedisResult<Value>,
    ) -> std::result::Result<Value, RedisError> {
        let started = Instant::now();
        let mut conn = self.conn.clone();
        let mut result = conn.req_packed_command(cmd).await.and_then(extract);
        if let Err(e) = &result
            && let Some(followed) = self.follow_ask(e, std::slice::from_ref(cmd)).await
        {
            result = followed
                .and_then(|mut replies| {
                    replies.pop().ok_or_else(|| {
                        RedisError::from((redis::ErrorKind::Client, "no reply after ASKING"))
                    })
                })
                .and_then(extract);
        }
        trace_command(op, keys, started, result.is_ok());
        result
    }

    /// When `e` is an `ASK` redirect redis-rs gave up on, sends `ASKING` and `commands` (one
    /// command, or one `MULTI … EXEC`) to the node it names as ONE request, and returns the
    /// commands' replies; `None` for any other error and on one server.
    ///
    /// redis-rs follows an `ASK` by sending `ASKING` as a request of its own on the node's
    /// shared connection: under many redirects at once another request's command takes the
    /// `ASKING` (it holds for one command), the node answers `MOVED` back to the source,
    /// and after its retries redis-rs gives up with `Ask` (seen for `JSON.GET` while keys of
    /// a slot moved ten at a time). Sent together nothing comes between them. Only commands
    /// whose keys Redis checks all of are followed ([`safe_to_follow`]): the source answers
    /// `ASK` only when none of them is there any more (some missing is `TRYAGAIN`), so the
    /// target holds every one that exists. An `ASKING`
    /// before `MULTI` covers the whole transaction (verified: `ASKING, MULTI, SCRIPT LOAD,
    /// EVALSHA, EXEC` runs on the importing node; `MULTI, ASKING, EVALSHA, EXEC` is `MOVED`
    /// and aborts). Nothing runs twice: an `ASK` reply means the command (or the queued
    /// command, which aborts its transaction) did not run, and `ASKING` never needs a retry,
    /// so when redis-rs re-sends the request after a redirect, what did not run is sent
    /// again. Followed at most [`ASK_FOLLOWS`] times (the slot may move on meanwhile).
    async fn follow_ask(
        &self,
        e: &RedisError,
        commands: &[Cmd],
    ) -> Option<std::result::Result<Vec<Value>, RedisError>> {
        let Connection::Cluster(conn) = &self.conn else {
            return None;
        };
        let ask = redis::ErrorKind::Server(redis::ServerErrorKind::Ask);
        if e.kind() != ask || !commands.iter().all(safe_to_follow) {
            return None;
        }
        let mut last = e.clone();
        for _ in 0..ASK_FOLLOWS {
            if last.kind() != ask {
                break;
            }
            let Some((host, port)) = last
                .redirect_node()
                .and_then(|(addr, _)| addr.rsplit_once(':'))
                .and_then(|(host, port)| Some((host.to_string(), port.parse::<u16>().ok()?)))
            else {
                break;
            };
            tracing::debug!(target: "rapyer::command", host, port, "following an ASK redirect");
            let mut pipe = redis::pipe();
            pipe.cmd("ASKING");
            for cmd in commands {
                pipe.add_command(cmd.clone());
            }
            match route_to(conn, &(host, port), pipe).await {
                Ok(mut replies) if replies.len() == commands.len() + 1 => {
                    replies.remove(0);
                    return Some(Ok(replies));
                }
                Ok(_) => {
                    return Some(Err(RedisError::from((
                        redis::ErrorKind::Client,
                        "a different number of replies after ASKING",
                    ))));
                }
                Err(e) => last = e,
            }
        }
        Some(Err(last))
    }

    /// Sends a plain pipeline (not a transaction) in one round trip, traced as `op` with
    /// `keys` keys. On a cluster its commands travel as separate requests (see
    /// [`Db::send_raw`]), so they may span slots.
    pub(crate) async fn query_pipeline<T: FromRedisValue>(
        &self,
        op: &'static str,
        keys: usize,
        pipe: &Pipeline,
    ) -> std::result::Result<T, RedisError> {
        if self.is_cluster() {
            let mut values = Vec::with_capacity(pipe.len());
            for value in self.send_raw(op, keys, pipe).await? {
                values.push(value.extract_error()?);
            }
            return T::from_redis_value(Value::Array(values)).map_err(RedisError::from);
        }
        let started = Instant::now();
        let mut conn = self.conn.clone();
        let result = pipe.query_async(&mut conn).await;
        trace_command(op, keys, started, result.is_ok());
        result
    }

    /// Sends every command of `pipe` (which must not be atomic) and returns every raw reply,
    /// server errors included as [`Value::ServerError`], traced as `op` with `keys` keys.
    ///
    /// On a cluster, a pipe that starts with `MULTI` is sent whole to the node of its keys
    /// (which must share one slot): a redirect aborts the `MULTI`, so redis-rs's re-sending
    /// of the whole pipe after one runs nothing twice. Any other pipe is sent one command per
    /// request, all at once: redis-rs re-sends a whole pipe when one reply is a redirect,
    /// which would run the commands that had succeeded a second time, while one command is
    /// only re-sent when it did not run. Each command goes to its own key's node (a command
    /// for every node, such as `SCRIPT LOAD`, to all of them).
    pub(crate) async fn send_raw(
        &self,
        op: &'static str,
        keys: usize,
        pipe: &Pipeline,
    ) -> std::result::Result<Vec<Value>, RedisError> {
        let started = Instant::now();
        let mut conn = self.conn.clone();
        let starts_with_multi = pipe
            .cmd_iter()
            .next()
            .and_then(|c| c.args_iter().next())
            .is_some_and(
                |a| matches!(a, redis::Arg::Simple(name) if name.eq_ignore_ascii_case(b"MULTI")),
            );
        let result = match &self.conn {
            Connection::Cluster(cluster) if !starts_with_multi => {
                let sends = pipe.cmd_iter().map(|cmd| {
                    let mut conn = cluster.clone();
                    // A server error comes back as this command's reply value, as in a pipeline.
                    async move {
                        match conn.req_packed_command(cmd).await {
                            Err(e) => match self.follow_ask(&e, std::slice::from_ref(cmd)).await {
                                Some(followed) => {
                                    followed.map(|mut replies| replies.pop().unwrap_or(Value::Nil))
                                }
                                None => Err(e),
                            },
                            reply => reply,
                        }
                    }
                });
                futures_util::future::join_all(sends)
                    .await
                    .into_iter()
                    .collect()
            }
            _ => match conn.req_packed_commands(pipe, 0, pipe.len()).await {
                // A transaction of one slot that met a migration.
                Err(e) if starts_with_multi => {
                    let commands: Vec<Cmd> = pipe.cmd_iter().cloned().collect();
                    match self.follow_ask(&e, &commands).await {
                        Some(followed) => followed,
                        None => Err(e),
                    }
                }
                replies => replies,
            },
        };
        trace_command(op, keys, started, result.is_ok());
        result
    }
}

/// A reply that is a server error as the call's error; any other reply (an array holding
/// errors too) as it is.
pub(crate) fn top_error(reply: Value) -> RedisResult<Value> {
    match reply {
        Value::ServerError(e) => Err(e.into()),
        reply => Ok(reply),
    }
}

/// Whether an `ASK` for `cmd` may be followed (see [`Db::follow_ask`]): a script call (Redis
/// checks every declared key), a transaction's own commands, or a common command of one key.
/// Not any other command: a module command may declare only its first key (the source of a
/// migrating slot answers `JSON.MGET` by its first key alone, verified: nil for other keys
/// already moved, `ASK` when the first one is gone), so the target could lack keys that are
/// still on the source.
fn safe_to_follow(cmd: &Cmd) -> bool {
    const FOLLOWED: &[&str] = &[
        "EVALSHA",
        "EVAL",
        "EVALSHA_RO",
        "EVAL_RO",
        "MULTI",
        "EXEC",
        "SCRIPT",
        "GET",
        "SET",
        "INCR",
        "INCRBY",
        "DECR",
        "DECRBY",
        "APPEND",
        "TYPE",
        "PTTL",
        "PEXPIRE",
        "JSON.GET",
        "JSON.SET",
        "JSON.TYPE",
        "HGET",
        "HSET",
        "HINCRBY",
        "LPUSH",
        "RPUSH",
        "SADD",
        "ZADD",
    ];
    match cmd.args_iter().next() {
        Some(redis::Arg::Simple(name)) => FOLLOWED
            .iter()
            .any(|f| f.as_bytes().eq_ignore_ascii_case(name)),
        _ => false,
    }
}

/// Sends `pipe` to the cluster node `at` as one request; every reply, server errors as
/// values.
async fn route_to(
    conn: &ClusterConnection,
    (host, port): &(String, u16),
    pipe: Pipeline,
) -> std::result::Result<Vec<Value>, RedisError> {
    let route = redis::cluster_routing::SingleNodeRoutingInfo::ByAddress {
        host: host.clone(),
        port: *port,
    };
    let count = pipe.len();
    conn.clone().route_pipeline(pipe, 0, count, route).await
}

/// How many `ASK` redirects in a row one request follows (see [`Db::follow_ask`]).
const ASK_FOLLOWS: usize = 3;

/// A cluster primary's address (`host`, `port`) and the slot ranges (inclusive) it serves.
pub(crate) type PrimarySlots = ((String, u16), Vec<(u16, u16)>);

/// The connection every clone of a [`Db`] shares: to one server, or to a whole cluster
/// (redis-rs routes each command to the node owning its key's slot and follows redirects).
/// On one server, a call takes one of the [`Direct`] connections when one is free and
/// goes through the multiplexed connection otherwise.
#[derive(Clone)]
enum Connection {
    Standalone(ConnectionManager, Option<Arc<Direct>>),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Standalone(conn, direct) => match direct.as_ref().and_then(Direct::lease) {
                Some(lease) => Box::pin(async move {
                    match lease.command(cmd).await {
                        Some(result) => result,
                        None => conn.req_packed_command(cmd).await,
                    }
                }),
                None => conn.req_packed_command(cmd),
            },
            Connection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Standalone(conn, direct) => match direct.as_ref().and_then(Direct::lease) {
                Some(lease) => Box::pin(async move {
                    match lease.commands(cmd, offset, count).await {
                        Some(result) => result,
                        None => conn.req_packed_commands(cmd, offset, count).await,
                    }
                }),
                None => conn.req_packed_commands(cmd, offset, count),
            },
            Connection::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Standalone(conn, _) => conn.get_db(),
            Connection::Cluster(conn) => conn.get_db(),
        }
    }
}

/// How to open a connection of one's own (see [`Db::blocking_connection`]).
#[derive(Clone)]
enum Client {
    // Shared: either one is hundreds of bytes (a URL, credentials, TLS settings), which
    // every clone of a `Db` (one per gathered group, one per task of a user's) would copy.
    Standalone(Arc<redis::Client>),
    Cluster(Arc<redis::cluster::ClusterClient>),
}

/// One event per round trip (a command, a script call, or a whole pipeline or transaction):
/// what ran, on how many keys, how long it took. Values never appear in traces.
pub(crate) fn trace_command(op: &'static str, keys: usize, started: Instant, ok: bool) {
    tracing::debug!(
        target: "rapyer::command",
        op,
        keys,
        elapsed_us = started.elapsed().as_micros() as u64,
        ok,
    );
}

/// The URL (or comma-separated seed URLs) without passwords, for logs and Debug output.
fn redact(url: &str) -> String {
    if url.contains(',') {
        return url.split(',').map(redact).collect::<Vec<_>>().join(",");
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_credentials() {
        assert_eq!(redact("redis://u:secret@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
        assert_eq!(
            redact("redis://u:a@h:1/,redis://u:b@h:2/"),
            "redis://***@h:1/,redis://***@h:2/"
        );
    }
}
