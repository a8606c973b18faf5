//! Locks on stored models: [`AtomicModel::lock`](crate::AtomicModel::lock) and the
//! [`LockGuard`] it returns.

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use redis::Value;

use crate::codec::{self, Document};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::keys::{KeySettings, lock_key, read_ttl, structures_of};
use crate::path::push_entry;
use crate::script::{failure, library};

mod release;

use release::{InFlight, PendingRelease, is_transport, release_or_retry};

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
/// change fields, [`save`](LockGuard::save) to write what changed while the lock holds.
///
/// ```no_run
/// use rapyer::prelude::*;
/// use std::time::Duration;
///
/// #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
/// struct Account { #[rapyer(key)] id: String, balance: i64, note: String }
///
/// # async fn demo(db: &Db) -> rapyer::Result<()> {
/// let options = LockOptions::default().ttl(Duration::from_secs(5)).timeout(Duration::from_secs(1));
/// let mut guard = Account::lock(db, "acc-1", options).await?; // LockTimeout after 1 s
/// guard.balance += 10;                       // a fresh copy, read under the lock
/// guard.save().await?;                       // writes `balance` only; LockLost if expired
/// guard.extend(Duration::from_secs(5)).await?;
/// guard.note = "audited".into();
/// guard.save().await?;                       // writes `note` only
/// guard.release().await?;                    // compare-and-delete of this holder's token
/// # Ok(()) }
/// ```
///
/// Dropping a guard that was not released releases it in the background on the running
/// tokio runtime; with no runtime, or when the runtime shuts down before the release ran
/// (a guard dropped as `block_on` or `#[tokio::main]` returns), it is released on a
/// blocking connection of its own before the runtime is gone. A background release that
/// cannot reach the server is retried until it can, or until the lock would have expired.
#[must_use = "dropping the guard releases the lock"]
pub struct LockGuard<M: KeySettings + Document> {
    model: M,
    /// The model as last read or saved, encoded as `save` encodes it: what `save` compares
    /// the model with to find what this holder changed.
    baseline: serde_json::Value,
    /// The model's sets and queues (kept in companion keys) as read under the lock or last
    /// checked by `save`, encoded: a local change to one that is not on the server is
    /// refused by `save`, which writes only the document.
    held: Vec<serde_json::Value>,
    db: Db,
    model_key: String,
    lock_key: String,
    token: String,
    /// When the lock expires at the latest (the last ttl asked for, counted from before the
    /// call): a release that failed is retried until then, never after.
    expires_at: Instant,
    released: bool,
}

impl<M: KeySettings + Document + std::fmt::Debug> std::fmt::Debug for LockGuard<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("model", &self.model)
            .field("key", &self.model_key)
            .field("lock_key", &self.lock_key)
            .finish_non_exhaustive()
    }
}

impl<M: KeySettings + Document> Deref for LockGuard<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.model
    }
}

impl<M: KeySettings + Document> DerefMut for LockGuard<M> {
    fn deref_mut(&mut self) -> &mut M {
        &mut self.model
    }
}

/// When a lock asked for at `asked` with `ttl` expires at the latest: the ttl as the server
/// receives it (capped, see [`codec::ttl_millis`]), saturating where `Instant` ends, so a ttl
/// of `Duration::MAX` cannot overflow.
fn expiry(asked: Instant, ttl: Duration) -> Instant {
    let ttl = Duration::from_millis(codec::ttl_millis(ttl));
    asked
        .checked_add(ttl)
        .or_else(|| asked.checked_add(Duration::from_secs(u32::MAX.into())))
        .unwrap_or(asked)
}

/// Takes the lock on the model stored at `model_key` (see
/// [`AtomicModel::lock`](crate::AtomicModel::lock)).
pub(crate) async fn lock<M: KeySettings + Document>(
    db: &Db,
    model_key: String,
    options: LockOptions,
) -> Result<LockGuard<M>> {
    let lock_key = lock_key(db.namespace(), &model_key);
    let token = ulid::Ulid::new().to_string();
    let keys = [lock_key, model_key];
    let rearm = read_ttl::<M>().map_or(0, codec::ttl_millis);
    let args = [
        token.as_str(),
        &codec::ttl_millis(options.ttl).to_string(),
        &rearm.to_string(),
    ];
    // From the moment a try is sent until its answer is read, the lock may be ours with no
    // guard to free it: if this future is dropped then (a `timeout`, a `select!`) or the
    // answer is lost in transit, `in_flight` releases this token in the background.
    let mut in_flight = InFlight {
        release: Some(PendingRelease::new(
            db,
            &keys[0],
            &token,
            expiry(Instant::now(), options.ttl),
        )),
        armed: false,
    };
    let started = Instant::now();
    loop {
        let asked = Instant::now();
        in_flight.arm(expiry(asked, options.ttl));
        let reply = match db
            .run_lua::<(i64, Value)>(&library::LOCK_ACQUIRE, &keys, &args)
            .await
        {
            Ok(reply) => reply,
            Err(e) => {
                // A server's answer (no document, a key of another type, BUSY, OOM) took no
                // lock; a failure in transit may have.
                in_flight.armed = is_transport(&e);
                return Err(failure::document_error(e, &keys[1]));
            }
        };
        match reply {
            (1, Value::BulkString(json)) => {
                let [lock_key, model_key] = keys;
                let read = read_locked::<M>(db, &model_key, json).await;
                return match read {
                    Ok((model, baseline, held)) => {
                        // The guard owns the lock from here on: its drop or release frees it.
                        in_flight.armed = false;
                        Ok(LockGuard {
                            model,
                            baseline,
                            held,
                            db: db.clone(),
                            model_key,
                            lock_key,
                            token,
                            expires_at: expiry(asked, options.ttl),
                            released: false,
                        })
                    }
                    Err(e) => {
                        // Nothing to hand out: give the lock back, then report the document.
                        // Cancelled meanwhile, `in_flight` still gives it back.
                        let _ = release_or_retry(db, &lock_key, &token, expiry(asked, options.ttl))
                            .await;
                        in_flight.armed = false;
                        Err(e)
                    }
                };
            }
            (_, left) => {
                // Another holder has it: nothing of ours to free while this try waits.
                in_flight.armed = false;
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

/// The model read under its lock (the document `json` the lock script answered), encoded
/// as `save` encodes it with its structures blanked, and its structures' encoded values. A
/// model keeping sets or queues in companion keys is read again with them, in one script
/// (the lock is held: this read is as much under it as the first).
async fn read_locked<M: KeySettings + Document>(
    db: &Db,
    model_key: &str,
    json: Vec<u8>,
) -> Result<(M, serde_json::Value, Vec<serde_json::Value>)> {
    let structures = structures_of::<M>();
    let json = if structures.is_empty() {
        json
    } else {
        crate::documents::read_with_structures(db, model_key, read_ttl::<M>(), &structures)
            .await?
            .ok_or_else(|| Error::NotFound {
                key: model_key.to_string(),
            })?
    };
    let model = codec::decode_model::<M>(db.namespace(), model_key, &json)?;
    let mut baseline = codec::encode_model_value(model_key, &model)?;
    let held = crate::structures::values(&baseline, &structures);
    crate::structures::blank(&mut baseline, &structures);
    Ok((model, baseline, held))
}

impl<M: KeySettings + Document> LockGuard<M> {
    /// Writes what this holder changed since the model was read under the lock (or since the
    /// last successful `save`), if this holder still has the lock; [`Error::LockLost`] and
    /// nothing written if it expired or was taken over. Checking and writing are one script.
    ///
    /// What is written: the model is encoded as [`AtomicModel::save`](crate::AtomicModel::save)
    /// encodes it (indexed date-times with their instant beside them) and compared with the same encoding of
    /// the copy read under the lock, member by member, into nested objects. Each member
    /// that differs is written at its own path (set, or deleted when it is gone); members
    /// that did not change are not written, so a change made meanwhile by code that takes
    /// no lock (a field handle's `incr`, say) keeps its value. A list is one value: a
    /// changed list is written whole. An object holding a changed member whose name is not
    /// plainly safe in a JSONPath (anything but ASCII letters, digits, `_` and `-`, such as
    /// a dict key with quotes or a newline) is written whole, so no name is ever parsed as
    /// path syntax. When the document is gone, or an object holding a change is no longer
    /// an object on the server, the whole model is written instead (as a save without a
    /// lock would). When something was written, a model with a ttl has its expiry re-armed.
    ///
    /// Sets and priority queues (kept in companion keys) are saved the same way, in the same
    /// script: the members this holder added or removed since they were read under the lock
    /// (or last saved) are added or removed one by one, and a queue item pushed locally, or
    /// given a new priority, is queued as the queue's own `push` queues it. Members others
    /// changed meanwhile keep their state, and a change a handle on the guard already made
    /// (`guard.tags().add(&db, x)`) is not made twice. A companion key of another type fails
    /// the save with [`Error::TypeMismatch`] naming it, nothing written.
    ///
    /// When nothing changed, the lock is still checked and nothing is written (not even
    /// the expiry). After a successful save the written model becomes the new baseline, so
    /// a second save writes only what changed after the first. The guard's copy is not
    /// re-read: fields others changed meanwhile keep, locally, the value read under the lock.
    pub async fn save(&mut self) -> Result<()> {
        let mut now = codec::encode_model_value(&self.model_key, &self.model)?;
        // Sets and queues live in companion keys: the document keeps null there, and what
        // this holder changed in them is written member by member.
        let structures = structures_of::<M>();
        let local = crate::structures::values(&now, &structures);
        // What this holder changed in them, written member by member in the same script
        // (their keys follow the lock's and the model's).
        let (companions, structure_args) = crate::structures::lock_changes(
            self.db.namespace(),
            &self.model_key,
            &structures,
            &self.held,
            &local,
            3,
        )?;
        crate::structures::blank(&mut now, &structures);
        let mut changes = Vec::new();
        let mode = if diff_object("$", &self.baseline, &now, &mut changes) {
            "changes"
        } else {
            "whole"
        };
        let ttl = M::TTL.map_or(0, codec::ttl_millis).to_string();
        // The whole model as the document holds it: null where a structure lives.
        let whole = || {
            if structures.is_empty() {
                codec::encode_model(&self.model_key, &self.model)
            } else {
                Ok(now.to_string())
            }
        };
        let head = |mode: &str| {
            let mut args = vec![
                self.token.clone(),
                ttl.clone(),
                mode.to_string(),
                structure_args.len().to_string(),
            ];
            args.extend(structure_args.iter().cloned());
            args
        };
        let mut args = head(mode);
        if mode == "whole" {
            args.push(whole()?);
        } else {
            for change in &changes {
                args.push(change.holder.clone());
                args.push(change.path.clone());
                args.push(match change.value {
                    Some(value) => codec::encode(&self.model_key, &change.path, value)?,
                    None => String::new(),
                });
            }
        }
        // The model's Bloom indexes first: a save that then fails leaves at most a false
        // positive, never a stored value the filter denies.
        crate::probabilistic::field_index::index_fields(
            &self.db,
            std::slice::from_ref(&self.model),
        )
        .await?;
        let written = self.run_save(&companions, &args).await?;
        if written < 0 {
            // The changes have no place to go: write the whole model, still under the lock.
            let mut args = head("whole");
            args.push(whole()?);
            self.run_save(&companions, &args).await?;
        }
        self.baseline = now;
        self.held = local;
        Ok(())
    }

    /// Runs the save script with `args` (after the keys: the lock's, the model's, then
    /// `companions`); its reply, or the error it names.
    async fn run_save(&self, companions: &[String], args: &[String]) -> Result<i64> {
        let mut keys = vec![self.lock_key.clone(), self.model_key.clone()];
        keys.extend_from_slice(companions);
        self.db
            .run_lua::<i64>(&library::LOCK_SAVE, &keys, args)
            .await
            .map_err(|e| {
                // An out-of-memory refusal names the model; a typed failure the key it is
                // about (the model's, or a set's or queue's companion key).
                let e = match e {
                    Error::OutOfMemory { .. } => failure::document_error(e, &self.model_key),
                    e => failure::keyed_error(e, &keys),
                };
                self.lost_or(e)
            })
    }

    /// Renews the lock for `ttl` from now; [`Error::LockLost`] if it was no longer held.
    pub async fn extend(&mut self, ttl: Duration) -> Result<()> {
        let keys = [self.lock_key.clone()];
        let args = [self.token.as_str(), &codec::ttl_millis(ttl).to_string()];
        // Whether a call that fails in transit renewed the lock is unknown: a later release
        // keeps retrying as long as it might have.
        self.expires_at = self.expires_at.max(expiry(Instant::now(), ttl));
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
    ///
    /// When the release fails on the way (the connection dropped, or no reply in time), the
    /// error is returned and the release goes on in the background: it is retried until
    /// the server answers, so the lock is freed as soon as the server is reachable again,
    /// and given up only when the lock's ttl would have expired it anyway.
    ///
    /// Dropping this future before it finishes (a `timeout`, a `select!`) drops the guard,
    /// which releases the lock in the background as a dropped guard does.
    pub async fn release(mut self) -> Result<()> {
        let outcome =
            release_or_retry(&self.db, &self.lock_key, &self.token, self.expires_at).await;
        // Answered, or handed to a background retry: nothing left for the guard's drop.
        self.released = true;
        match outcome? {
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

impl<M: KeySettings + Document> Drop for LockGuard<M> {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        PendingRelease::new(&self.db, &self.lock_key, &self.token, self.expires_at).spawn();
    }
}

/// One member a holder changed: `value` written at `path` (`None`: deleted), inside the
/// object at `holder`.
#[derive(Debug, PartialEq)]
struct Change<'a> {
    holder: String,
    path: String,
    value: Option<&'a serde_json::Value>,
}

/// Adds to `out` the changes that turn `old` into `new`, both objects at JSONPath `at`, and
/// returns `true`; returns `false` (adding nothing) when they cannot be placed member by
/// member (one is not an object, or a changed member's name is not a plainly safe path
/// step) and the value at `at` must be written whole.
fn diff_object<'a>(
    at: &str,
    old: &serde_json::Value,
    new: &'a serde_json::Value,
    out: &mut Vec<Change<'a>>,
) -> bool {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return false;
    };
    let changed = new
        .keys()
        .filter(|name| old.get(*name) != new.get(*name))
        .chain(old.keys().filter(|name| !new.contains_key(*name)));
    let changed: Vec<&String> = changed.collect();
    // Only plain names are written member by member (every other one the object carries
    // whole), though `push_entry` would address more of them.
    if !changed.iter().all(|name| plain_name(name)) {
        return false;
    }
    for name in changed {
        let mut path = at.to_string();
        push_entry(&mut path, name);
        match (old.get(name), new.get(name)) {
            (Some(before), Some(after)) if diff_object(&path, before, after, out) => {}
            (_, value) => out.push(Change {
                holder: at.to_string(),
                path,
                value,
            }),
        }
    }
    true
}

/// Whether a member name can be a JSONPath step as it is: ASCII letters, digits, `_`, `-`.
/// Dict keys are data and may be anything; any other name travels only inside a JSON value.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn changes(old: serde_json::Value, new: &serde_json::Value) -> Option<Vec<String>> {
        let mut out = Vec::new();
        diff_object("$", &old, new, &mut out).then(|| {
            out.iter()
                .map(|c| match c.value {
                    Some(v) => format!("{} {} = {v}", c.holder, c.path),
                    None => format!("{} {} del", c.holder, c.path),
                })
                .collect()
        })
    }

    #[test]
    fn only_changed_members_are_written_each_at_its_own_path() {
        let old = json!({"id": "a", "score": 1, "name": "ann", "tags": ["x"]});
        assert_eq!(changes(old.clone(), &old), Some(vec![]));
        let new = json!({"id": "a", "score": 1, "name": "bob", "tags": ["x", "y"]});
        assert_eq!(
            changes(old, &new),
            Some(vec![
                r#"$ $["name"] = "bob""#.to_string(),
                r#"$ $["tags"] = ["x","y"]"#.to_string(),
            ])
        );
    }

    #[test]
    fn nested_objects_are_compared_member_by_member() {
        let old = json!({"a": {"b": {"c": 1, "d": 2}, "e": 3}, "gone": {"x": 1}});
        let new = json!({"a": {"b": {"c": 1, "d": 5}, "e": 3, "f": null}});
        assert_eq!(
            changes(old, &new),
            Some(vec![
                r#"$["a"]["b"] $["a"]["b"]["d"] = 5"#.to_string(),
                r#"$["a"] $["a"]["f"] = null"#.to_string(),
                r#"$ $["gone"] del"#.to_string(),
            ])
        );
    }

    #[test]
    fn an_object_with_a_changed_unsafe_name_is_written_whole() {
        for name in [
            "a'] or 1==1 --",
            "q\"",
            "new\nline",
            "🎉",
            "a.b",
            "",
            "sp ace",
        ] {
            let old = json!({"id": "x", "prefs": {"ok": 1}});
            let mut new = old.clone();
            new["prefs"][name] = json!(2);
            assert_eq!(
                changes(old, &new),
                Some(vec![format!("$ $[\"prefs\"] = {}", new["prefs"])]),
                "{name:?}"
            );
        }
        // An unsafe name unchanged beside a changed safe one does not widen the write.
        let old = json!({"prefs": {"a'b": 1, "ok": 1}});
        let new = json!({"prefs": {"a'b": 1, "ok": 2}});
        assert_eq!(
            changes(old, &new),
            Some(vec![r#"$["prefs"] $["prefs"]["ok"] = 2"#.to_string()])
        );
        // At the root, nothing can hold the write: the whole document is written.
        assert_eq!(changes(json!({"a b": 1}), &json!({"a b": 2})), None);
        assert_eq!(changes(json!({"a": 1}), &json!([1])), None);
    }

    #[test]
    fn plain_names_are_letters_digits_underscore_and_dash() {
        assert!(plain_name("balance_2-x"));
        for name in ["", "a b", "a.b", "a\"", "a'", "a[0]", "é", "$", "*", "a\\"] {
            assert!(!plain_name(name), "{name:?}");
        }
    }
}
