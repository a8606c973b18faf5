//! The direct path: a few dedicated connections to one server that a caller drives from its
//! own task, so a call made with nothing else in flight skips the hop to the multiplexed
//! connection's driver task (on a multi-thread runtime, often a wake-up on another thread,
//! both ways).
//!
//! Each slot is a redis-rs multiplexed connection whose driver future is not spawned but
//! kept in the slot and polled by whichever call holds the slot, beside that call's request.
//! So the connection keeps redis-rs's handshake (AUTH, SELECT, protocol), its reply
//! matching and its response timeout. A call takes a free slot or, when every slot is busy
//! (many calls in flight), goes through the shared multiplexed connection as before. Only
//! calls made where that pays take one (see [`pays`]): on a multi-thread runtime, outside
//! any spawned task.
//!
//! - **Cancellation**: a call dropped after it started sending closes its slot's connection
//!   (and the pool opens another in the background), so no reply can be left on a
//!   connection for the next caller to read: correct by construction, at the price of a
//!   reconnect per dropped call.
//! - **A lost server**: before sending, the caller polls the slot's driver once. A connection
//!   the server closed meanwhile (a restart) ends the driver; the slot is dropped and the call
//!   goes through the multiplexed connection, which reconnects as it always did. A slot whose
//!   call failed with anything but a server error reply is dropped too. Empty slots are
//!   opened again in the background, at most once a second after a failed attempt.
//! - Only plain TCP (and Unix socket) servers get slots: a `rediss://` server and a cluster
//!   use the multiplexed connection alone.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Cmd, ConnectionAddr, Pipeline, RedisResult, Value};

use crate::connect::ConnectOptions;

/// The driver of a slot's connection: it writes queued requests and hands out replies.
type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How long the pool waits after a failed attempt to open a slot before trying again.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// A few dedicated connections to one server; see the [module](self).
pub(crate) struct Direct {
    target: Target,
    slots: Box<[Mutex<State>]>,
    /// Whether a task is opening the empty slots.
    opening: AtomicBool,
    /// No opening before this instant (after a failed attempt).
    retry_at: Mutex<Option<Instant>>,
}

/// Where and how to open a slot.
struct Target {
    addr: ConnectionAddr,
    nodelay: bool,
    redis: redis::RedisConnectionInfo,
    config: AsyncConnectionConfig,
    connect_timeout: Option<Duration>,
}

/// What a slot holds.
enum State {
    /// An open connection, free.
    Free(Slot),
    /// An open connection, held by a call.
    Leased,
    /// No connection (not opened yet, or dropped after it ended).
    Closed,
}

/// One dedicated connection and its driver (`None` once the connection has ended).
struct Slot {
    conn: MultiplexedConnection,
    driver: Option<Driver>,
}

impl Direct {
    /// The pool for `client` with `options.direct_connections` slots, or `None` when there is
    /// no direct path: none asked for, or a server reached over TLS.
    pub(crate) fn new(client: &redis::Client, options: &ConnectOptions) -> Option<Arc<Direct>> {
        if options.direct_connections == 0 {
            return None;
        }
        let info = client.get_connection_info();
        let addr = match info.addr() {
            ConnectionAddr::Tcp(..) => info.addr().clone(),
            #[cfg(unix)]
            ConnectionAddr::Unix(..) => info.addr().clone(),
            _ => return None,
        };
        let target = Target {
            addr,
            nodelay: info.tcp_settings().nodelay(),
            redis: info.redis_settings().clone(),
            config: AsyncConnectionConfig::new().set_response_timeout(options.response_timeout),
            connect_timeout: options.connect_timeout,
        };
        let slots = (0..options.direct_connections)
            .map(|_| Mutex::new(State::Closed))
            .collect();
        Some(Arc::new(Direct {
            target,
            slots,
            opening: AtomicBool::new(false),
            retry_at: Mutex::new(None),
        }))
    }

    /// A free slot, if this call is one a dedicated connection pays for ([`pays`]), one is
    /// open and no other call holds it. Starts opening the empty slots in the background
    /// when there are any.
    pub(crate) fn lease(self: &Arc<Self>) -> Option<Lease<'_>> {
        if !pays() {
            return None;
        }
        let mut empty = false;
        for (index, slot) in self.slots.iter().enumerate() {
            let Ok(mut guard) = slot.try_lock() else {
                continue;
            };
            match std::mem::replace(&mut *guard, State::Leased) {
                State::Free(taken) => {
                    return Some(Lease {
                        pool: self,
                        index,
                        slot: Some(taken),
                        in_flight: false,
                    });
                }
                State::Leased => {}
                State::Closed => {
                    *guard = State::Closed;
                    empty = true;
                }
            }
        }
        if empty {
            self.refill();
        }
        None
    }

    /// Opens the empty slots in a background task, unless one is already at it or the last
    /// attempt failed less than [`RETRY_PAUSE`] ago, or no tokio runtime runs this call.
    fn refill(self: &Arc<Self>) {
        if lock(&self.retry_at).is_some_and(|at| Instant::now() < at) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.opening.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = Arc::downgrade(self);
        runtime.spawn(async move {
            loop {
                let Some(strong) = pool.upgrade() else {
                    return;
                };
                let failed = strong.fill().await;
                *lock(&strong.retry_at) = failed.then(|| Instant::now() + RETRY_PAUSE);
                strong.opening.store(false, Ordering::Release);
                // A slot closed after this pass looked at it asked for a refill while this
                // task was at it (and was turned away): look again.
                if failed || !strong.any_closed() || strong.opening.swap(true, Ordering::AcqRel) {
                    return;
                }
            }
        });
    }

    /// Whether a slot has no connection.
    fn any_closed(&self) -> bool {
        self.slots
            .iter()
            .any(|slot| matches!(*lock(slot), State::Closed))
    }

    /// Closes the free slots whose connection has ended, then opens every empty slot, one
    /// after another; `true` when an attempt failed.
    async fn fill(&self) -> bool {
        // A call only looks at the first free slot, so a dead connection behind it would
        // stay until calls overlap: one poll of each free driver reads the end of its
        // connection, if the server closed it.
        for slot in self.slots.iter() {
            let mut guard = lock(slot);
            if let State::Free(free) = &mut *guard {
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                let ended = free
                    .driver
                    .as_mut()
                    .is_none_or(|driver| driver.as_mut().poll(&mut cx).is_ready());
                if ended {
                    *guard = State::Closed;
                }
            }
        }
        for slot in self.slots.iter() {
            if !matches!(*lock(slot), State::Closed) {
                continue;
            }
            match self.target.open().await {
                Ok(opened) => {
                    let mut guard = lock(slot);
                    if matches!(*guard, State::Closed) {
                        *guard = State::Free(opened);
                    }
                }
                Err(e) => {
                    tracing::debug!(target: "rapyer::db", error = %e, "a direct connection could not be opened");
                    return true;
                }
            }
        }
        false
    }
}

impl Target {
    /// Opens one connection and runs redis-rs's handshake on it.
    async fn open(&self) -> RedisResult<Slot> {
        let opening = async {
            let (conn, driver) = match &self.addr {
                ConnectionAddr::Tcp(host, port) => {
                    let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                    stream.set_nodelay(self.nodelay)?;
                    self.handshake(stream).await?
                }
                #[cfg(unix)]
                ConnectionAddr::Unix(path) => {
                    self.handshake(tokio::net::UnixStream::connect(path).await?)
                        .await?
                }
                _ => {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::InvalidClientConfig,
                        "no direct connection to this kind of address",
                    )));
                }
            };
            Ok(Slot {
                conn,
                driver: Some(driver),
            })
        };
        match self.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, opening)
                .await
                .unwrap_or_else(|_| {
                    Err(redis::RedisError::from(std::io::Error::from(
                        std::io::ErrorKind::TimedOut,
                    )))
                }),
            None => opening.await,
        }
    }

    /// redis-rs's handshake (AUTH, SELECT, protocol) on `stream`: the connection and its
    /// driver, not spawned.
    async fn handshake<S>(&self, stream: S) -> RedisResult<(MultiplexedConnection, Driver)>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (conn, driver) =
            MultiplexedConnection::new_with_config(&self.redis, stream, self.config.clone())
                .await?;
        Ok((conn, Box::pin(driver)))
    }
}

/// One slot held by one call; given back to the pool when dropped. A slot whose connection
/// ended, or whose call was dropped with its request in flight (see the [module](self) on
/// cancellation), is not given back: its connection is closed and the pool opens a new one.
pub(crate) struct Lease<'a> {
    pool: &'a Arc<Direct>,
    index: usize,
    slot: Option<Slot>,
    /// Whether a request was handed to the connection and its reply not yet read.
    in_flight: bool,
}

impl Lease<'_> {
    /// Sends one command on the slot's connection; `None` when the connection turned out
    /// closed before anything was sent (the caller sends it elsewhere).
    pub(crate) async fn command(self, cmd: &Cmd) -> Option<RedisResult<Value>> {
        self.send(|mut conn| async move { conn.send_packed_command(cmd).await })
            .await
    }

    /// Sends `count` replies' worth of `pipe` from `offset` on the slot's connection; `None`
    /// as for [`Lease::command`].
    pub(crate) async fn commands(
        self,
        pipe: &Pipeline,
        offset: usize,
        count: usize,
    ) -> Option<RedisResult<Vec<Value>>> {
        self.send(|mut conn| async move { conn.send_packed_commands(pipe, offset, count).await })
            .await
    }

    /// Runs `request` on (a handle of) the slot's connection, driving the connection until
    /// it is answered; `None` when the connection had ended before anything was sent.
    async fn send<T, F>(
        mut self,
        request: impl FnOnce(MultiplexedConnection) -> F,
    ) -> Option<RedisResult<T>>
    where
        F: Future<Output = RedisResult<T>>,
    {
        self.alive().await?;
        self.in_flight = true;
        let slot = self.slot.as_mut()?;
        let result = drive(&mut slot.driver, request(slot.conn.clone())).await;
        self.in_flight = false;
        Some(result)
    }

    /// Polls the slot's driver once, which reads the end of the connection if the server
    /// closed it meanwhile (a restart, a kill, an idle timeout). `None` if it has ended.
    async fn alive(&mut self) -> Option<()> {
        let slot = self.slot.as_mut()?;
        let driver = slot.driver.as_mut()?;
        let ended =
            std::future::poll_fn(|cx| Poll::Ready(driver.as_mut().poll(cx).is_ready())).await;
        if ended {
            slot.driver = None;
            return None;
        }
        Some(())
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else { return };
        let mut guard = lock(&self.pool.slots[self.index]);
        if slot.driver.is_some() && !self.in_flight {
            *guard = State::Free(slot);
        } else {
            // Dropping the slot drops its connection; a new one is opened in the background.
            *guard = State::Closed;
            drop(guard);
            drop(slot);
            self.pool.refill();
        }
    }
}

/// Polls `request` and the slot's driver together until the request is answered. A driver
/// that ends (the connection closed) is dropped at once, which fails the request's wait for
/// its reply; so does any failure that is not the server's own error reply, so the next call
/// gets a fresh connection rather than one in an unknown state.
async fn drive<T>(
    driver: &mut Option<Driver>,
    request: impl Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    let mut request = std::pin::pin!(request);
    let result = std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = request.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        if let Some(running) = driver.as_mut() {
            if running.as_mut().poll(cx).is_ready() {
                *driver = None;
            } else {
                return request.as_mut().poll(cx);
            }
        }
        // The driver ended (now or before): its in-flight replies were dropped with it, so
        // the request's wait ends with an error at this poll.
        request.as_mut().poll(cx)
    })
    .await;
    if let Err(e) = &result
        && !matches!(e.kind(), redis::ErrorKind::Server(_))
    {
        *driver = None;
    }
    result
}

/// Whether a call made here gains from a dedicated connection: on a multi-thread runtime,
/// outside any spawned task, i.e. on the thread that called `block_on` (the body of
/// `#[tokio::main]` or `#[tokio::test]`), whose every reply through the multiplexed
/// connection is a wake-up from a worker thread. Measured (`cargo xtask bench direct`): from
/// there one-at-a-time calls ran at 1.3–1.7× with about half the client CPU on a dedicated
/// connection; from a spawned task, where the connection's driver task and the caller
/// usually share a worker, at 0.7–0.9×; on a current-thread runtime, the same.
fn pays() -> bool {
    tokio::task::try_id().is_none()
        && tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
            matches!(
                runtime.runtime_flavor(),
                tokio::runtime::RuntimeFlavor::MultiThread
            )
        })
}

/// Locks `mutex`, whose data stays valid even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
