//! Locks on stored models: [`AtomicModel::lock`] and the [`LockGuard`] it returns.

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use redis::Value;

use crate::crud;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::keys::lock_key;
use crate::model::AtomicModel;
use crate::script::library;

/// How to take a lock: how long it lasts, how long to wait for it, how often to retry.
///
/// ```
/// use std::time::Duration;
/// let options = rapyer::LockOptions::default()
///     .ttl(Duration::from_secs(5))
///     .timeout(Duration::from_millis(500));
/// assert_eq!(options.ttl, Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockOptions {
    /// How long the lock lasts if its holder neither releases nor extends it (default 10 s).
    /// A holder that vanishes frees the lock after this.
    pub ttl: Duration,
    /// How long to wait for a lock another holder has before giving up with
    /// [`Error::LockTimeout`] (default 10 s; zero tries once).
    pub timeout: Duration,
    /// The longest pause between two tries while waiting (default 20 ms); a try never
    /// sleeps past the current holder's expiry or the timeout.
    pub retry_every: Duration,
}

impl Default for LockOptions {
    fn default() -> LockOptions {
        LockOptions {
            ttl: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            retry_every: Duration::from_millis(20),
        }
    }
}

impl LockOptions {
    /// Sets how long the lock lasts.
    pub fn ttl(mut self, ttl: Duration) -> LockOptions {
        self.ttl = ttl;
        self
    }

    /// Sets how long to wait for the lock.
    pub fn timeout(mut self, timeout: Duration) -> LockOptions {
        self.timeout = timeout;
        self
    }

    /// Sets the longest pause between tries.
    pub fn retry_every(mut self, retry_every: Duration) -> LockOptions {
        self.retry_every = retry_every;
        self
    }
}

/// A model locked for this holder, with a copy read under the lock: deref it to read and
/// change fields, [`save`](LockGuard::save) to write them while the lock holds.
///
/// Dropping a guard that was not released releases it in the background when a tokio
/// runtime is running; otherwise the lock expires after its ttl.
#[must_use = "dropping the guard releases the lock"]
pub struct LockGuard<M: AtomicModel> {
    model: M,
    db: Db,
    model_key: String,
    lock_key: String,
    token: String,
    released: bool,
}

impl<M: AtomicModel + std::fmt::Debug> std::fmt::Debug for LockGuard<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("model", &self.model)
            .field("key", &self.model_key)
            .field("lock_key", &self.lock_key)
            .finish_non_exhaustive()
    }
}

impl<M: AtomicModel> Deref for LockGuard<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.model
    }
}

impl<M: AtomicModel> DerefMut for LockGuard<M> {
    fn deref_mut(&mut self) -> &mut M {
        &mut self.model
    }
}

/// Takes the lock on the model stored at `model_key` (see [`AtomicModel::lock`]).
pub(crate) async fn lock<M: AtomicModel>(
    db: &Db,
    model_key: String,
    options: LockOptions,
) -> Result<LockGuard<M>> {
    let lock_key = lock_key(db.namespace(), &model_key);
    let token = ulid::Ulid::new().to_string();
    let keys = [lock_key, model_key];
    let rearm = crate::model::read_ttl::<M>().map_or(0, crud::ttl_millis);
    let args = [
        token.as_str(),
        &crud::ttl_millis(options.ttl).to_string(),
        &rearm.to_string(),
    ];
    let started = Instant::now();
    loop {
        let reply = db
            .run_lua::<(i64, Value)>(&library::LOCK_ACQUIRE, &keys, &args)
            .await
            .map_err(|e| crud::script_document_error(e, &keys[1]))?;
        match reply {
            (1, Value::BulkString(json)) => {
                let [lock_key, model_key] = keys;
                return match crud::decode_model::<M>(db, &model_key, &json) {
                    Ok(model) => Ok(LockGuard {
                        model,
                        db: db.clone(),
                        model_key,
                        lock_key,
                        token,
                        released: false,
                    }),
                    Err(e) => {
                        // Nothing to hand out: give the lock back, then report the document.
                        let _ = release(db, &lock_key, &token).await;
                        Err(e)
                    }
                };
            }
            (_, left) => {
                let waited = started.elapsed();
                if waited >= options.timeout {
                    return Err(Error::LockTimeout {
                        key: keys[1].clone(),
                        waited,
                    });
                }
                // Sleep until the holder's lock would expire, but no longer than the retry
                // pause or what is left of the timeout.
                let left = match left {
                    Value::Int(ms) if ms > 0 => Duration::from_millis(ms.unsigned_abs()),
                    _ => options.retry_every,
                };
                let pause = left
                    .min(options.retry_every)
                    .min(options.timeout - waited)
                    .max(Duration::from_millis(1));
                tokio::time::sleep(pause).await;
            }
        }
    }
}

impl<M: AtomicModel> LockGuard<M> {
    /// Saves the model (the whole document, at the locked key, with the model's ttl) if this
    /// holder still has the lock; [`Error::LockLost`] and nothing written if it expired or
    /// was taken over. Checking and writing are one script.
    pub async fn save(&self) -> Result<()> {
        let json = crud::encode_model(&self.model_key, &self.model)?;
        let ttl = M::TTL.map_or(0, crud::ttl_millis);
        let keys = [self.lock_key.clone(), self.model_key.clone()];
        let args = [self.token.as_str(), &json, &ttl.to_string()];
        match self
            .db
            .run_lua::<i64>(&library::LOCK_SAVE, &keys, &args)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.lost_or(crud::script_document_error(e, &self.model_key))),
        }
    }

    /// Renews the lock for `ttl` from now; [`Error::LockLost`] if it was no longer held.
    pub async fn extend(&self, ttl: Duration) -> Result<()> {
        let keys = [self.lock_key.clone()];
        let args = [self.token.as_str(), &crud::ttl_millis(ttl).to_string()];
        match self
            .db
            .run_lua::<i64>(&library::LOCK_EXTEND, &keys, &args)
            .await?
        {
            1 => Ok(()),
            _ => Err(self.lost()),
        }
    }

    /// Releases the lock, only if this holder still has it (compare and delete in one
    /// script). [`Error::LockLost`] if it had expired or been taken over; another holder's
    /// lock is never deleted.
    pub async fn release(mut self) -> Result<()> {
        self.released = true;
        match release(&self.db, &self.lock_key, &self.token).await? {
            true => Ok(()),
            false => Err(self.lost()),
        }
    }

    /// The full key of the locked model.
    pub fn key(&self) -> &str {
        &self.model_key
    }

    /// The key of the lock itself (same namespace and cluster slot as the model's key).
    pub fn lock_key(&self) -> &str {
        &self.lock_key
    }

    fn lost(&self) -> Error {
        Error::LockLost {
            key: self.model_key.clone(),
        }
    }

    fn lost_or(&self, e: Error) -> Error {
        match e {
            Error::Script { ref message, .. } if message.starts_with("LOCKLOST ") => self.lost(),
            other => other,
        }
    }
}

impl<M: AtomicModel> Drop for LockGuard<M> {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Release in the background when a runtime can run it; otherwise the lock simply
        // expires after its ttl.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let db = self.db.clone();
            let lock_key = std::mem::take(&mut self.lock_key);
            let token = std::mem::take(&mut self.token);
            runtime.spawn(async move {
                if let Err(e) = release(&db, &lock_key, &token).await {
                    tracing::debug!(target: "rapyer::lock", error = %e, "background release failed");
                }
            });
        }
    }
}

/// Compare-and-delete of a lock; `true` if this token held it.
async fn release(db: &Db, lock_key: &str, token: &str) -> Result<bool> {
    let released: i64 = db
        .run_lua(&library::LOCK_RELEASE, &[lock_key.to_string()], &[token])
        .await?;
    Ok(released == 1)
}
