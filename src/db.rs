//! The connection handle: one multiplexed, auto-reconnecting connection and a key namespace.

use std::sync::Arc;
use std::time::Instant;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, Value};

use crate::connect::ConnectOptions;
use crate::error::{Error, Result};
use crate::script::{Registry, Scripts};

/// A cheap-to-clone handle on one Redis server, with an optional key namespace.
///
/// Every clone shares one multiplexed connection that reconnects by itself; commands from
/// many tasks are pipelined onto it. Every key rapyer builds is `{namespace}{Prefix}:{id}`
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
    conn: ConnectionManager,
    /// The client `conn` was opened with: a way to reach the server that does not depend on
    /// the runtime `conn` runs on (see [`Db::blocking_connection`]).
    client: redis::Client,
    url: Arc<str>,
    namespace: Arc<str>,
    scripts: Arc<Registry>,
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
        tracing::debug!(target: "rapyer::db", url = %redact(url), "connected");
        Ok(Db {
            conn,
            client,
            url: url.into(),
            namespace: "".into(),
            scripts: Arc::new(Registry::new()),
        })
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
        })
    }

    /// The named scripts of this connection (shared by every clone and namespace of it).
    pub fn scripts(&self) -> Scripts<'_> {
        Scripts::new(self)
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
    pub(crate) fn blocking_connection(
        &self,
        timeout: std::time::Duration,
    ) -> std::result::Result<redis::Connection, RedisError> {
        let conn = self.client.get_connection_with_timeout(timeout)?;
        conn.set_read_timeout(Some(timeout))?;
        conn.set_write_timeout(Some(timeout))?;
        Ok(conn)
    }

    /// Sends one command and decodes its reply, traced as `op` with `keys` keys.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        op: &'static str,
        keys: usize,
        cmd: &Cmd,
    ) -> std::result::Result<T, RedisError> {
        let started = Instant::now();
        let mut conn = self.conn.clone();
        let result = cmd.query_async(&mut conn).await;
        trace_command(op, keys, started, result.is_ok());
        result
    }

    /// Sends a pipeline (or transaction) in one round trip, traced as `op` with `keys` keys.
    pub(crate) async fn query_pipeline<T: FromRedisValue>(
        &self,
        op: &'static str,
        keys: usize,
        pipe: &Pipeline,
    ) -> std::result::Result<T, RedisError> {
        let started = Instant::now();
        let mut conn = self.conn.clone();
        let result = pipe.query_async(&mut conn).await;
        trace_command(op, keys, started, result.is_ok());
        result
    }

    /// Sends every command of `pipe` (which must not be atomic) and returns every raw reply,
    /// server errors included as [`Value::ServerError`], traced as `op` with `keys` keys.
    pub(crate) async fn send_raw(
        &self,
        op: &'static str,
        keys: usize,
        pipe: &Pipeline,
    ) -> std::result::Result<Vec<Value>, RedisError> {
        let started = Instant::now();
        let mut conn = self.conn.clone();
        let result = conn.req_packed_commands(pipe, 0, pipe.len()).await;
        trace_command(op, keys, started, result.is_ok());
        result
    }
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

/// The URL without its password, for logs and Debug output.
fn redact(url: &str) -> String {
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
    }
}
