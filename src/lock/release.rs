//! Giving a lock back: the releases a process owes the server (a dropped guard's, a
//! cancelled acquisition's, one cut off in transit), run in the background on the current
//! runtime, or on a blocking connection when no runtime can run them.

use std::time::{Duration, Instant};

use crate::db::Db;
use crate::error::{Error, Result};
use crate::script::library;

/// The acquisition try in flight: while `armed`, the lock may be held under its token with
/// no guard to free it, so dropping this releases it in the background.
pub(super) struct InFlight {
    pub(super) release: Option<PendingRelease>,
    pub(super) armed: bool,
}

impl InFlight {
    /// Marks a try as sent; the lock it may take lasts until `until`.
    pub(super) fn arm(&mut self, until: Instant) {
        if let Some(release) = &mut self.release {
            release.until = until;
        }
        self.armed = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        match self.release.take() {
            // Released after the try on the same connection, so after it on the server: a
            // compare-and-delete that frees the lock if the try took it, and does nothing if
            // it did not.
            Some(release) if self.armed => release.spawn(),
            Some(mut release) => release.done = true,
            None => {}
        }
    }
}

/// A release this process owes the server (a dropped guard's, a release cut off in transit,
/// a cancelled acquisition's). It runs on the current tokio runtime, retried while the
/// server cannot be reached (see [`release_until`]). If it cannot run there — no runtime,
/// or the runtime shuts down before it finishes (a guard dropped as `block_on` or
/// `#[tokio::main]` returns) — its drop runs it on a blocking connection of its own before
/// the runtime is gone, for at most [`BLOCKING_RELEASE_BUDGET`].
pub(super) struct PendingRelease {
    db: Db,
    lock_key: String,
    token: String,
    until: Instant,
    done: bool,
}

impl PendingRelease {
    pub(super) fn new(db: &Db, lock_key: &str, token: &str, until: Instant) -> PendingRelease {
        PendingRelease {
            db: db.clone(),
            lock_key: lock_key.to_string(),
            token: token.to_string(),
            until,
            done: false,
        }
    }

    /// Runs the release in the background; without a runtime, right here, blocking.
    pub(super) fn spawn(self) {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                // A runtime that is shutting down drops the task, unfinished or unstarted:
                // the drop below then releases with a blocking connection.
                runtime.spawn(async move {
                    let mut release = self;
                    release_until(
                        &release.db,
                        &release.lock_key,
                        &release.token,
                        release.until,
                    )
                    .await;
                    release.done = true;
                });
            }
            Err(_) => drop(self),
        }
    }
}

impl Drop for PendingRelease {
    fn drop(&mut self) {
        if !self.done {
            release_blocking(&self.db, &self.lock_key, &self.token, self.until);
        }
    }
}

/// The longest a release run without a runtime (at shutdown, or from a drop outside any
/// runtime) blocks its thread while the server cannot be reached; the lock then expires
/// after its ttl.
const BLOCKING_RELEASE_BUDGET: Duration = Duration::from_secs(2);

/// Compare-and-delete of a lock on a blocking connection of its own, retried while the
/// server cannot be reached, until `until` or [`BLOCKING_RELEASE_BUDGET`] from now.
fn release_blocking(db: &Db, lock_key: &str, token: &str, until: Instant) {
    let deadline = until.min(Instant::now() + BLOCKING_RELEASE_BUDGET);
    let mut pause = Duration::from_millis(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::debug!(target: "rapyer::lock", "gave up a blocking release: out of time");
            return;
        }
        // `EVAL` of the text: a fresh connection cannot know whether the server has it.
        let outcome = db.blocking_connection(left).and_then(|mut conn| {
            redis::cmd("EVAL")
                .arg(library::LOCK_RELEASE.body())
                .arg(1)
                .arg(lock_key)
                .arg(token)
                .query::<i64>(&mut *conn)
        });
        match outcome {
            Ok(_) => return,
            Err(e) if e.is_io_error() || e.is_connection_refusal() || e.is_timeout() => {
                tracing::debug!(target: "rapyer::lock", error = %e, "blocking release failed, retrying");
            }
            Err(e) => {
                tracing::debug!(target: "rapyer::lock", error = %e, "blocking release failed");
                return;
            }
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(RELEASE_RETRY_MAX_PAUSE);
    }
}

/// The longest pause between two tries of a release that could not reach the server.
const RELEASE_RETRY_MAX_PAUSE: Duration = Duration::from_millis(200);

/// Compare-and-delete of a lock; `true` if this token held it.
async fn release(db: &Db, lock_key: &str, token: &str) -> Result<bool> {
    let released: i64 = db
        .run_lua(&library::LOCK_RELEASE, &[lock_key.to_string()], &[token])
        .await?;
    Ok(released == 1)
}

/// [`release`], and when it fails on the way, the same release retried in the background
/// (see [`release_until`]); the first failure is returned.
pub(super) async fn release_or_retry(
    db: &Db,
    lock_key: &str,
    token: &str,
    until: Instant,
) -> Result<bool> {
    match release(db, lock_key, token).await {
        Err(e) if is_transport(&e) => {
            PendingRelease::new(db, lock_key, token, until).spawn();
            Err(e)
        }
        other => other,
    }
}

/// Releases the lock, retrying while the server cannot be reached, until `until` (when the
/// lock expires by itself). A retry after a failure in transit is safe: the release only
/// deletes the lock while it still holds this token.
async fn release_until(db: &Db, lock_key: &str, token: &str, until: Instant) {
    let mut pause = Duration::from_millis(10);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::debug!(target: "rapyer::lock", "gave up releasing: the lock has expired");
            return;
        }
        match tokio::time::timeout(left, release(db, lock_key, token)).await {
            Ok(Err(e)) if is_transport(&e) => {
                tracing::debug!(target: "rapyer::lock", error = %e, "background release failed, retrying");
            }
            Ok(Err(e)) => {
                tracing::debug!(target: "rapyer::lock", error = %e, "background release failed");
                return;
            }
            Ok(Ok(_)) | Err(_) => return,
        }
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(RELEASE_RETRY_MAX_PAUSE);
    }
}

/// Whether `e` is a failure on the way to or from the server (the command may not have
/// run), rather than an answer.
pub(super) fn is_transport(e: &Error) -> bool {
    match e {
        Error::Redis { source, .. } => {
            source.is_io_error()
                || source.is_connection_dropped()
                || source.is_connection_refusal()
                || source.is_timeout()
        }
        _ => false,
    }
}
