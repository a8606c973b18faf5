//! The blocking API (the `blocking` cargo feature): every call of the async API, run to its
//! end from plain synchronous code, by writing `.wait()` where async code writes `.await`.
//!
//! ```toml
//! [dependencies]
//! rapyer = { version = "0.1", features = ["blocking"] }
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! ```no_run
//! use rapyer::prelude::*; // with the feature, the prelude brings `Wait` too
//!
//! #[derive(AtomicModel, serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
//! struct User { #[rapyer(key)] id: String, age: i64, tags: Vec<String> }
//!
//! fn main() -> rapyer::Result<()> {
//!     let db = Db::connect("redis://127.0.0.1:6379").wait()?;
//!     let mut ann = User { id: "ann".into(), age: 41, tags: vec![] };
//!     ann.save(&db).wait()?;                                 // JSON.SET …
//!     ann.age().incr(&db, 1).wait()?;                        // a field handle
//!     ann.atomic(&db, |m| m.tags().append("admin")).wait()?; // one atomic block
//!     let back = User::get(&db, "ann").wait()?;
//!     assert_eq!(back, ann);
//!     let mut guard = User::lock(&db, "ann", LockOptions::default()).wait()?;
//!     guard.age += 1;
//!     guard.save().wait()?;
//!     guard.release().wait()?;
//!     Ok(())
//! }
//! ```
//!
//! No tokio in your `Cargo.toml`, no `async fn`: the feature brings a runtime in, and you
//! never name it.
//!
//! # What is covered
//!
//! Everything that returns a future of a [`rapyer::Result`](crate::Result): connecting
//! (`Db::connect`, `connect_with` with its [`ConnectOptions`](crate::ConnectOptions), TLS
//! included, `connect_cluster`, `connect_cluster_with`), CRUD (`save`, `get`, `get_many`,
//! `exists`, `insert_many`, `delete`, `delete_by_id`, `delete_many`, `all`, `refresh`,
//! `set_ttl`, `ttl`), every field handle's operations, `ServerOps::scope` and
//! `model.atomic`, locks (`Model::lock`, `guard.save()`, `extend`, `release`), named
//! scripts (`run_script`, typed commands' `call`, `Call::run`, `preload`, `exists`,
//! `missing`, `flush`), `db.init::<M>()` (the index, re-created when the schema changed),
//! queries (`find(..).all()`, `count`, `first`, `keys`, `delete`, with `sort_by` and
//! `limit`), and `db.pipeline()`/`db.transaction()` (`execute`, `execute_each`). What does
//! not touch the server (`with_namespace`, `ServerOps::explain`, building a query or a
//! pipeline, `db.scripts().define`) is the same plain call in both worlds. Each call behaves
//! exactly as its async form: the same round trips, the same atomicity, the same typed
//! [`Error`].
//!
//! # Why `.wait()` rather than a second set of types
//!
//! `reqwest::blocking` and `mongodb::sync` mirror the async types (a blocking `Client` with
//! the same methods, each blocking on an internal runtime). Mirrored here, that would be a
//! second copy of some ninety entry points, each with its own documentation to keep in step, and it
//! could not reach the field handles: `user.age()` returns a handle whose `incr` is an
//! inherent method, and an inherent method always wins over a trait method of the same
//! name, so `user.age().incr(&blocking_db, 1)` cannot be made to mean a blocking twin
//! without making every handle generic over an execution mode (the `maybe-async` switch in
//! another form). The closures of `ServerOps::scope` and `model.atomic` await nothing (they
//! only describe operations), so their blocking form is the same call, run to its end.
//! So the blocking API is the async API plus one trait, [`Wait`]: there is one
//! [`Db`](crate::Db), one set of models, handles and builders, one set of docs, and code
//! moves between the two worlds by swapping `.await` for `.wait()`.
//!
//! **Adding a counterpart** for a new capability (new field types and their handles, new
//! loading forms): nothing, as long as its calls return a future (or an `IntoFuture`) whose
//! output is a `rapyer::Result<T>`, as every call does today; add its scenario to
//! `tests/blocking.rs`. Only a call returning something else (a stream, a bare value) needs
//! an adapter in this module.
//!
//! # The runtime
//!
//! One per process, started by the first `.wait()`: a tokio runtime with one worker thread,
//! `rapyer-blocking`, that drives the connections (the multiplexed connection's reader, its
//! reconnects, background lock releases). `.wait()` polls the call on the calling thread
//! (so a call may borrow a model mutably, as handles do) and parks it between replies. Any
//! number of threads may call at once: a [`Db`](crate::Db) is `Clone + Send + Sync`, so
//! threads share one (`std::thread::scope` with `&db`, or a clone each) and their calls are
//! pipelined onto its one connection. The runtime is never shut down, so no call can find
//! it gone: dropping a `Db` (or every clone of it) closes that connection and nothing else;
//! other `Db`s, on any thread, keep working.
//!
//! A `Db` connected with `.wait()` is driven by that runtime, so it serves plain code and
//! async code on any runtime alike: connect with `.wait()` when plain code uses the `Db`.
//! One connected by async code is driven by the runtime it was connected on. From a
//! multi-thread runtime, `.wait()` calls on it work while that runtime lives; a
//! current-thread runtime drives it only while something runs inside its `block_on`, so
//! `.wait()` calls made meanwhile fail with a timeout after the `Db`'s `response_timeout`
//! (never a hang). Once that runtime has shut down, the next call fails with
//! [`Error::Redis`] (the task that drove the connection is gone) and the connection
//! reconnects on rapyer's runtime: the calls after it succeed.
//!
//! # Inside an async runtime: a panic, never a deadlock
//!
//! `.wait()` blocks its thread. On a thread that drives async tasks (an `async fn`, a
//! spawned task, `#[tokio::main]`, either runtime flavour) that would stall every task of
//! that runtime, and a call on a `Db` connected on that current-thread runtime could not
//! finish at all: the connection it waits on is driven by the very thread it blocks (it
//! would wait out its `response_timeout`, every time). So `.wait()` panics
//! there, before sending anything, with a message that names the fix: `.await` the call
//! instead. It checks for any tokio runtime context on the thread, so `spawn_blocking` and
//! `Handle::enter` count too: there, run the future with
//! `tokio::runtime::Handle::current().block_on(call)`. Other executors are not detected
//! (their thread is blocked for the call's duration, and the call completes, as the
//! connection is driven by rapyer's runtime).
//!
//! # Cancellation, timeouts and shutdown
//!
//! A blocking call cannot be cancelled by its caller: it returns when the server answered
//! or the call failed, so none of the [cancellation](crate#cancellation) cases of the async
//! API arise (a call is never dropped between sending and its reply). What bounds its wait
//! is the `Db`'s [`ConnectOptions`](crate::ConnectOptions) (`response_timeout`,
//! `connect_timeout`, the reconnect budget); a timeout means, as in async code, that the
//! command may or may not have run.
//!
//! A [`LockGuard`](crate::LockGuard) dropped in synchronous code (no runtime on the thread)
//! releases its lock before the drop returns, on a blocking connection of its own (one
//! round trip; at most 2 seconds while the server cannot be reached, after which the lock
//! expires after its ttl). `guard.release().wait()` releases it on the shared connection
//! instead and reports the outcome; one cut off in transit returns the error and is retried
//! in the background on rapyer's runtime while the process runs.
//!
//! The runtime is not shut down when `main` returns: a process that exits while another
//! thread is inside `.wait()` abandons that call (as with any client killed mid-call, the
//! command may or may not have run, and an atomic unit is applied whole or not at all), and
//! a background retry of a release still pending then leaves that lock to expire after its
//! ttl.

use std::future::IntoFuture;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Runs a rapyer call to its end on the calling thread: `.wait()` where async code writes
/// `.await`. Implemented for every future (and `IntoFuture`) whose output is a
/// [`rapyer::Result`](crate::Result). See [the module](self).
pub trait Wait: IntoFuture + sealed::Sealed {
    /// Blocks the calling thread until the call finishes, and returns its result.
    ///
    /// # Panics
    ///
    /// When called on a thread inside a tokio runtime context (an `async fn`, a spawned
    /// task, `spawn_blocking`, `Handle::enter`): use the async API there (`.await`). See
    /// [the module](self#inside-an-async-runtime-a-panic-never-a-deadlock).
    ///
    /// # Errors
    ///
    /// The call's own errors, as its async form returns them; [`Error::Redis`] (operation
    /// `blocking runtime`) in the unlikely case that rapyer's runtime could not be started
    /// (the system refused a thread).
    fn wait(self) -> Self::Output;
}

impl<F, T> Wait for F
where
    F: IntoFuture<Output = Result<T>>,
{
    #[track_caller]
    fn wait(self) -> Result<T> {
        refuse_inside_async();
        runtime()?.block_on(self.into_future())
    }
}

mod sealed {
    /// Keeps [`super::Wait`] to rapyer's calls.
    pub trait Sealed {}

    impl<F, T> Sealed for F where F: std::future::IntoFuture<Output = crate::Result<T>> {}
}

/// The panic of a `.wait()` made where blocking could stall or deadlock a runtime.
const INSIDE_ASYNC: &str = "rapyer: `.wait()` was called inside a tokio runtime context (an async fn, a \
spawned task, `spawn_blocking` or `Handle::enter`), where blocking the thread can stall or \
deadlock the runtime. Use the async API there: `.await` the call instead of `.wait()` (in \
`spawn_blocking`, `tokio::runtime::Handle::current().block_on(call)`).";

/// Panics (at the caller of `.wait()`) when the thread is inside a tokio runtime context.
///
/// Tokio's own check (`Runtime::block_on` refuses a thread that drives a runtime) would
/// panic too, but with a message that does not say what to use instead, and tokio has no
/// public way to ask that question without panicking; any runtime context is refused here
/// instead, which also covers a spawned task of rapyer's own runtime, where waiting would
/// block the one thread that drives the connection.
#[track_caller]
fn refuse_inside_async() {
    if tokio::runtime::Handle::try_current().is_ok() {
        panic!("{INSIDE_ASYNC}");
    }
}

/// rapyer's runtime, started on first use.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    // Two threads may build one each on first use; the loser's is dropped (outside any
    // runtime, so its shutdown is allowed) and both use the winner's.
    let built = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("rapyer-blocking")
        .enable_all()
        .build()
        .map_err(|e| Error::redis("blocking runtime", e.into()))?;
    Ok(RUNTIME.get_or_init(|| built))
}
