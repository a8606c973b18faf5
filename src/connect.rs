//! How [`Db::connect_with`](crate::Db::connect_with) reaches the server: timeouts, the
//! reconnect budget and (with the `tls` feature) the certificates of a `rediss://` server.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::{Error, Result};

/// How a [`Db`](crate::Db) talks to its server: how long a reply and a connection attempt
/// may take, and how hard it tries to reconnect after losing the server.
///
/// The defaults are those of [`Db::connect`](crate::Db::connect): replies may take 30 s, a
/// connection attempt 1 s, and a lost connection is retried 6 times with a doubling pause
/// from 100 ms (about 6 to 13 s in all, the pauses being jittered), during which every call
/// waits. A service that prefers failing fast while Redis is down shrinks the budget:
///
/// ```no_run
/// # async fn demo() -> rapyer::Result<()> {
/// use std::time::Duration;
/// use rapyer::{ConnectOptions, Db};
///
/// let options = ConnectOptions::default()
///     .response_timeout(Duration::from_secs(2))
///     .connect_timeout(Duration::from_millis(250))
///     .reconnect_retries(2)
///     .reconnect_max_delay(Duration::from_millis(100));
/// // While the server is unreachable, each call now fails within about a second.
/// let db = Db::connect_with("redis://127.0.0.1:6379", options).await?;
/// # Ok(()) }
/// ```
///
/// The connection is never given up: once the budget of one reconnect is spent, the calls
/// waiting on it fail with [`Error::Redis`], and the next call starts a new reconnect. Calls
/// succeed again by themselves as soon as the server answers.
#[derive(Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// How long a reply may take (default 30 s; `None` waits forever). A call whose reply
    /// does not come in time fails with [`Error::Redis`] whose source `is_timeout()`; the
    /// command may or may not have run on the server. The default is generous on purpose:
    /// a pipeline of thousands of script calls on a loaded machine must not time out.
    pub response_timeout: Option<Duration>,
    /// How long one attempt to open a connection may take (default 1 s; `None` leaves it
    /// to the operating system). Matters when the server's host does not answer at all.
    pub connect_timeout: Option<Duration>,
    /// How many times a failed connection attempt is retried before the calls waiting on it
    /// fail (default 6). Zero fails on the first refused attempt.
    pub reconnect_retries: usize,
    /// The pause before the first retry (default 100 ms); each next pause doubles. Every
    /// pause is jittered by up to its own length again.
    pub reconnect_min_delay: Duration,
    /// The longest pause between two retries, before jitter (default: none).
    pub reconnect_max_delay: Option<Duration>,
    /// How many dedicated connections a standalone server gets beside the shared multiplexed
    /// one (default 2; 0 turns them off). A call made on a multi-thread runtime outside any
    /// spawned task (on the thread that runs `block_on`: the body of `#[tokio::main]`, a
    /// CLI's or a test's code) runs on a free one, driven by the calling task itself, which
    /// saves the hand-over to the multiplexed connection's own task on a worker thread
    /// (measured: 1.3–1.7× the one-at-a-time rate, about half the client CPU). Calls from
    /// spawned tasks, where that hand-over is cheap and a dedicated connection measured
    /// slower, and calls on a current-thread runtime share the multiplexed connection, as
    /// do all calls while the dedicated ones are busy. Opened on first use, in the
    /// background. Not used on a cluster or over TLS. See the README's "Connecting" section.
    pub direct_connections: usize,
    /// How many field-handle calls (`incr`, `append`, `set`, …) a standalone server's
    /// connection has in flight before the next ones are gathered (default 1; 0 turns this
    /// off). A gathered call joins the other calls of its operation made at the same moment
    /// (within one yield to the runtime), and they go out as ONE script call that runs each
    /// of them in turn, each with its own outcome, atomicity, errors and cancellation (see
    /// the README's "Gathered field calls"). Only on a multi-thread tokio runtime, where it
    /// measured 1.1× (64 in flight) to 1.35× (16 in flight) the increments per second; a
    /// call with fewer in flight goes out alone at once. Not on a cluster. A gathered call
    /// waits on tokio's timer (at most 2 ms for its group to go out), as the reply timeout
    /// does: with `response_timeout: None` (a runtime may then have no timer) calls go alone.
    pub gather_after: usize,
    #[cfg(feature = "tls")]
    tls: Option<redis::TlsCertificates>,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            response_timeout: Some(Duration::from_secs(30)),
            connect_timeout: Some(Duration::from_secs(1)),
            reconnect_retries: 6,
            reconnect_min_delay: Duration::from_millis(100),
            reconnect_max_delay: None,
            direct_connections: 2,
            gather_after: 1,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("ConnectOptions");
        s.field("response_timeout", &self.response_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect_retries", &self.reconnect_retries)
            .field("reconnect_min_delay", &self.reconnect_min_delay)
            .field("reconnect_max_delay", &self.reconnect_max_delay)
            .field("direct_connections", &self.direct_connections)
            .field("gather_after", &self.gather_after);
        // redis-rs's own Debug prints "<redacted>" for every certificate and key.
        #[cfg(feature = "tls")]
        s.field("tls", &self.tls);
        s.finish()
    }
}

impl ConnectOptions {
    /// Sets how long a reply may take; see [`ConnectOptions::response_timeout`](Self#structfield.response_timeout).
    pub fn response_timeout(mut self, timeout: Duration) -> ConnectOptions {
        self.response_timeout = Some(timeout);
        self
    }

    /// Lets replies take as long as they take.
    pub fn no_response_timeout(mut self) -> ConnectOptions {
        self.response_timeout = None;
        self
    }

    /// Sets how long one connection attempt may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> ConnectOptions {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Sets how many times a failed connection attempt is retried.
    pub fn reconnect_retries(mut self, retries: usize) -> ConnectOptions {
        self.reconnect_retries = retries;
        self
    }

    /// Sets the pause before the first retry.
    pub fn reconnect_min_delay(mut self, delay: Duration) -> ConnectOptions {
        self.reconnect_min_delay = delay;
        self
    }

    /// Sets the longest pause between two retries.
    pub fn reconnect_max_delay(mut self, delay: Duration) -> ConnectOptions {
        self.reconnect_max_delay = Some(delay);
        self
    }

    /// Sets how many dedicated connections a standalone server gets; see
    /// [`ConnectOptions::direct_connections`](Self#structfield.direct_connections).
    pub fn direct_connections(mut self, connections: usize) -> ConnectOptions {
        self.direct_connections = connections;
        self
    }

    /// Sets how many field calls a connection has in flight before the next ones are sent
    /// together; see [`ConnectOptions::gather_after`](Self#structfield.gather_after).
    pub fn gather_after(mut self, calls: usize) -> ConnectOptions {
        self.gather_after = calls;
        self
    }

    /// Trusts the certificate authority in `pem` (instead of the system's roots) for a
    /// `rediss://` server, e.g. one with a private CA.
    #[cfg(feature = "tls")]
    pub fn tls_root_cert(mut self, pem: impl Into<Vec<u8>>) -> ConnectOptions {
        self.tls.get_or_insert_with(empty_certificates).root_cert = Some(pem.into());
        self
    }

    /// Presents this client certificate and key (both PEM) to a `rediss://` server that
    /// asks for one (mutual TLS).
    #[cfg(feature = "tls")]
    pub fn tls_client_cert(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> ConnectOptions {
        self.tls.get_or_insert_with(empty_certificates).client_tls = Some(redis::ClientTlsConfig {
            client_cert: cert_pem.into(),
            client_key: key_pem.into(),
        });
        self
    }

    /// The redis-rs settings of these options.
    fn manager_config(&self) -> ConnectionManagerConfig {
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(self.response_timeout)
            .set_connection_timeout(self.connect_timeout)
            .set_number_of_retries(self.reconnect_retries)
            .set_min_delay(self.reconnect_min_delay);
        match self.reconnect_max_delay {
            Some(max) => config.set_max_delay(max),
            None => config,
        }
    }
}

#[cfg(feature = "tls")]
fn empty_certificates() -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: None,
        root_cert: None,
    }
}

/// Opens the auto-reconnecting connection to `url` with `options`, waiting for the first
/// connection (within the reconnect budget).
pub(crate) async fn open(url: &str, options: &ConnectOptions) -> Result<ConnectionManager> {
    let client = client(url, options).map_err(|e| Error::redis("connect", e))?;
    ConnectionManager::new_with_config(client, options.manager_config())
        .await
        .map_err(|e| Error::redis("connect", e))
}

pub(crate) fn client(url: &str, options: &ConnectOptions) -> redis::RedisResult<redis::Client> {
    #[cfg(feature = "tls")]
    if let Some(certificates) = &options.tls {
        return redis::Client::build_with_tls(url, certificates.clone());
    }
    let _ = options;
    redis::Client::open(url)
}

/// The redis-rs cluster client for the seed URLs `nodes` with `options`: the reply and
/// connection timeouts apply to every node, `reconnect_retries` bounds how often a request
/// is retried (after a redirect, a lost node or a topology change), and the retry pauses
/// start at `reconnect_min_delay` and stop growing at `reconnect_max_delay`.
pub(crate) fn cluster_client(
    nodes: &[&str],
    options: &ConnectOptions,
) -> redis::RedisResult<redis::cluster::ClusterClient> {
    let mut builder = redis::cluster::ClusterClientBuilder::new(nodes.iter().copied())
        .retries(u32::try_from(options.reconnect_retries).unwrap_or(u32::MAX))
        .min_retry_wait(millis(options.reconnect_min_delay));
    if let Some(max) = options.reconnect_max_delay {
        builder = builder.max_retry_wait(millis(max));
    }
    if let Some(timeout) = options.response_timeout {
        builder = builder.response_timeout(timeout);
    }
    if let Some(timeout) = options.connect_timeout {
        builder = builder.connection_timeout(timeout);
    }
    #[cfg(feature = "tls")]
    if let Some(certificates) = &options.tls {
        builder = builder.certs(certificates.clone());
    }
    builder.build()
}

/// Opens the cluster connection for the seed URLs `nodes`: it reads the slot map from the
/// first seed that answers and keeps it current on redirects.
pub(crate) async fn open_cluster(
    client: &redis::cluster::ClusterClient,
) -> Result<redis::cluster_async::ClusterConnection> {
    client
        .get_async_connection()
        .await
        .map_err(|e| Error::redis("connect", e))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
