//! Many stored documents by key, in one round trip each: reads (`JSON.MGET`, or a script
//! that also re-arms expiries), all-or-nothing deletes, and the `TYPE` checks that name a
//! key holding another Redis type. Used by the whole-document operations (`crud`) and by
//! queries (`find`), which both hold keys.

use std::time::Duration;

use crate::codec::{Document, decode_model, mismatch, ttl_millis};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::keys::{KeySettings, Structure};
use crate::script::failure;
use crate::script::library;

/// RedisJSON's name for its data type, as `TYPE` reports it.
pub(crate) const JSON_TYPE: &str = "ReJSON-RL";

/// The documents at `keys`, in order, `None` for a missing key; a key holding another Redis
/// type is [`Error::TypeMismatch`]. `rearm` re-arms each document's expiry in the same step.
pub(crate) async fn get_many<M: KeySettings + Document>(
    db: &Db,
    keys: Vec<String>,
    rearm: Option<Duration>,
) -> Result<Vec<Option<M>>> {
    get_many_lossy(db, &keys, rearm)
        .await?
        .into_iter()
        .collect()
}

/// The documents' roots at `keys` (see [`mget`]), `None` for a missing key; a key holding
/// another Redis type is [`Error::TypeMismatch`].
pub(crate) async fn mget_documents(
    db: &Db,
    keys: &[String],
    rearm: Option<Duration>,
) -> Result<Vec<Option<Vec<u8>>>> {
    // Special structures are not read here: a loaded target's sets and queues are empty.
    let replies = mget(db, keys, rearm, &[]).await?;
    let missing = unanswered(keys, &replies);
    if !missing.is_empty() {
        check_not_foreign(db, &missing).await?;
    }
    Ok(replies)
}

/// The keys `JSON.MGET` answered nil for. It answers nil both for a missing key and for a
/// key of another type; only those need a second look (`TYPE`), so the common case stays one
/// round trip.
fn unanswered<'a>(keys: &'a [String], replies: &[Option<Vec<u8>>]) -> Vec<&'a String> {
    keys.iter()
        .zip(replies)
        .filter(|(_, reply)| reply.is_none())
        .map(|(key, _)| key)
        .collect()
}

/// Deletes the documents at `keys`, with the companion keys of their `structures`, in one
/// script, all or nothing: a key holding another Redis type refuses the whole call with
/// [`Error::TypeMismatch`] naming the first such key (in the order given), and nothing is
/// deleted. Returns how many documents were deleted.
///
/// On a cluster, one script per hash slot (all sent at once): all or nothing per slot.
pub(crate) async fn delete_count(
    db: &Db,
    keys: Vec<String>,
    structures: &[Structure],
) -> Result<usize> {
    if keys.is_empty() {
        return Ok(0);
    }
    let counts = per_slot(db, &keys, |group| delete_in_slot(db, group, structures)).await?;
    Ok(counts.into_iter().map(|(_, n)| n).sum())
}

async fn delete_in_slot(db: &Db, keys: Vec<String>, structures: &[Structure]) -> Result<usize> {
    let (keys, per) = with_companions(db, keys, structures);
    match db
        .run_lua::<u64>(&library::DELETE, &keys, &[per.to_string()])
        .await
    {
        Ok(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        Err(e) => Err(failure::keyed_error(e, &keys)),
    }
}

/// The documents' roots, one entry per key, `None` for a missing key or one of another type:
/// one `JSON.MGET`, or with `rearm` one script that also re-arms each document's expiry.
///
/// On a cluster, one command per hash slot (all sent at once), the replies put back in order.
///
/// A model keeping `structures` in companion keys is read with them, in one script per slot;
/// each document is then its JSON with every structure's contents in its place.
pub(crate) async fn mget(
    db: &Db,
    keys: &[String],
    rearm: Option<Duration>,
    structures: &[Structure],
) -> Result<Vec<Option<Vec<u8>>>> {
    if !db.is_cluster() {
        return mget_in_slot(db, keys, rearm, structures).await;
    }
    let groups = per_slot(db, keys, |group| async move {
        let (mut replies, again) = match mget_in_slot(db, &group, rearm, structures).await {
            Ok(replies) => {
                let again = moved_away(&replies);
                (replies, again)
            }
            // A redirect redis-rs gave up on (its slot is being migrated): key by key.
            Err(Error::Redis { source, .. }) if source.is_cluster_error() => {
                (vec![None; group.len()], (0..group.len()).collect())
            }
            Err(e) => return Err(e),
        };
        reread(db, &group, &mut replies, &again, rearm, structures).await?;
        Ok(replies)
    })
    .await?;
    let mut out = vec![None; keys.len()];
    for (positions, replies) in groups {
        for (position, reply) in positions.into_iter().zip(replies) {
            out[position] = reply;
        }
    }
    Ok(out)
}

/// The positions of one slot's read that may have moved away: those with no document when
/// others have one. The source of a slot being migrated answers a multi-key `JSON.MGET` of
/// keys it partly holds with nil for those already moved (verified; a plain `MGET` gets
/// `TRYAGAIN`), so `all()` missed up to a third of 2,000 documents of a moving slot. A read
/// answered all nil or all found needs no second look: a source that holds none of the keys
/// redirects the whole read (`ASK`).
fn moved_away(replies: &[Option<Vec<u8>>]) -> Vec<usize> {
    if replies.iter().all(Option::is_none) || replies.iter().all(Option::is_some) {
        return Vec::new();
    }
    (0..replies.len())
        .filter(|&i| replies[i].is_none())
        .collect()
}

/// Reads `keys[i]` (keys of one slot) for each position in `again` into `replies[i]`.
///
/// While the slot is being migrated, first on the target, all in one request, each read
/// right after an `ASKING` (redis-rs sends its own `ASKING` apart from the command, and
/// with many redirects at once another command takes it: reads failed with `Ask` or timed
/// out); keys only move from the source to the target, so one not there was on the source
/// when the target answered, or nowhere. Then every key still unread with a one-key
/// command of its own, which Redis redirects to wherever the key now is.
async fn reread(
    db: &Db,
    keys: &[String],
    replies: &mut [Option<Vec<u8>>],
    again: &[usize],
    rearm: Option<Duration>,
    structures: &[Structure],
) -> Result<()> {
    let mut again = again.to_vec();
    if let (None, Some(&first)) = (rearm, again.first())
        && let Some(target) = db
            .migration_target(crate::slot::hash_slot(keys[first].as_bytes()))
            .await?
    {
        let reads: Vec<redis::Cmd> = again
            .iter()
            .map(|&i| {
                let mut cmd = redis::cmd("JSON.GET");
                cmd.arg(&keys[i]);
                cmd
            })
            .collect();
        let values = db
            .query_asking("JSON.GET", &target, &reads)
            .await
            .map_err(|e| Error::redis("JSON.GET", e))?;
        for (&i, value) in again.iter().zip(values) {
            // A missing key, or an error (another type, the slot moved on): read it below.
            if let redis::Value::BulkString(bytes) = value {
                replies[i] = Some(bytes);
            }
        }
        again.retain(|&i| replies[i].is_none());
    }
    // A few at a time: each may be a redirect, and there can be hundreds.
    for batch in again.chunks(REREAD_AT_ONCE) {
        let reads = batch
            .iter()
            .map(|&i| read_one(db, &keys[i], rearm, structures));
        let fresh = futures_util::future::join_all(reads).await;
        for (&i, reply) in batch.iter().zip(fresh) {
            replies[i] = reply?;
        }
    }
    Ok(())
}

/// One document by itself: `JSON.GET` (routed by its key, redirects followed, unlike a
/// `JSON.MGET`, which redis-rs routes as a multi-slot command), or the re-arming script.
/// A key of another type reads as `None`, as in `JSON.MGET`.
async fn read_one(
    db: &Db,
    key: &str,
    rearm: Option<Duration>,
    structures: &[Structure],
) -> Result<Option<Vec<u8>>> {
    if rearm.is_some() || !structures.is_empty() {
        let keys = [key.to_string()];
        return Ok(mget_in_slot(db, &keys, rearm, structures)
            .await?
            .pop()
            .flatten());
    }
    let mut cmd = redis::cmd("JSON.GET");
    cmd.arg(key);
    match db.query("JSON.GET", 1, &cmd).await {
        Ok(reply) => Ok(reply),
        Err(e) if crate::error::is_wrong_type(&e) => Ok(None),
        Err(e) => Err(Error::redis("JSON.GET", e).naming(key)),
    }
}

/// Keys [`reread`] reads at once.
const REREAD_AT_ONCE: usize = 32;

/// [`mget`] of keys that share one slot.
async fn mget_in_slot(
    db: &Db,
    keys: &[String],
    rearm: Option<Duration>,
    structures: &[Structure],
) -> Result<Vec<Option<Vec<u8>>>> {
    if !structures.is_empty() {
        return read_structured(db, keys, rearm, structures).await;
    }
    let replies: Vec<Option<Vec<u8>>> = match rearm {
        Some(ttl) => {
            db.run_lua(&library::TOUCH_GET, keys, &[ttl_millis(ttl)])
                .await?
        }
        None => {
            let mut cmd = redis::cmd("JSON.MGET");
            cmd.arg(keys).arg(".");
            db.query("JSON.MGET", keys.len(), &cmd)
                .await
                .map_err(|e| Error::redis("JSON.MGET", e))?
        }
    };
    if replies.len() != keys.len() {
        return Err(Error::redis(
            "JSON.MGET",
            redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "JSON.MGET answered a different number of values than keys asked",
            )),
        ));
    }
    Ok(replies)
}

/// The document at `key` (a full key) of a model keeping `structures` in companion keys, with
/// every structure's contents in its place, in one script (re-arming them all with `rearm`);
/// `None` when the key is missing or holds another type.
pub(crate) async fn read_with_structures(
    db: &Db,
    key: &str,
    rearm: Option<Duration>,
    structures: &[Structure],
) -> Result<Option<Vec<u8>>> {
    let mut rows = read_structured(db, &[key.to_string()], rearm, structures).await?;
    Ok(rows.pop().flatten())
}

/// [`mget_in_slot`] of a model keeping `structures` in companion keys: one script reads each
/// document with its companions (re-arming them all with `rearm`), and each document comes
/// back with every structure's contents in its place.
async fn read_structured(
    db: &Db,
    doc_keys: &[String],
    rearm: Option<Duration>,
    structures: &[Structure],
) -> Result<Vec<Option<Vec<u8>>>> {
    let types = crate::keys::companion_types(structures);
    let (keys, per) = with_companions(db, doc_keys.to_vec(), structures);
    let mut args = vec![rearm.map_or(0, ttl_millis).to_string(), per.to_string()];
    args.extend(types.iter().map(|(t, _)| t.to_string()));
    args.extend(types.into_iter().map(|(_, path)| path));
    let rows: Vec<redis::Value> = db
        .run_lua(&library::READ_STRUCTURES, &keys, &args)
        .await
        .map_err(|e| failure::keyed_error(e, &keys))?;
    let malformed = || {
        Error::redis(
            "rapyer.read_structures",
            redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "the read of documents with their structures answered another shape",
            )),
        )
    };
    if rows.len() != doc_keys.len() {
        return Err(malformed());
    }
    let mut out = Vec::with_capacity(rows.len());
    for (key, row) in doc_keys.iter().zip(rows) {
        let redis::Value::Array(mut row) = row else {
            return Err(malformed());
        };
        let doc = match row.first() {
            Some(redis::Value::BulkString(doc)) => doc.clone(),
            _ => {
                out.push(None);
                continue;
            }
        };
        let contents: Vec<Vec<Vec<u8>>> = row
            .drain(1..)
            .map(|part| match part {
                redis::Value::Array(members) => members
                    .into_iter()
                    .filter_map(|m| match m {
                        redis::Value::BulkString(m) => Some(m),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        out.push(Some(crate::structures::join(
            key, &doc, structures, &contents,
        )?));
    }
    Ok(out)
}

/// `keys` (documents' keys) each followed by its `structures`' companion keys, and how many
/// companion keys follow each.
fn with_companions(db: &Db, keys: Vec<String>, structures: &[Structure]) -> (Vec<String>, usize) {
    if structures.is_empty() {
        return (keys, 0);
    }
    let mut out = Vec::new();
    let mut per = 0;
    for key in keys {
        let companions = crate::keys::all_companions(db.namespace(), &key, structures);
        per = companions.len();
        out.push(key);
        out.extend(companions.into_iter().map(|(k, _)| k));
    }
    (out, per)
}

/// Fails with `TypeMismatch` for the first key that holds something other than a document.
pub(crate) async fn check_not_foreign(db: &Db, keys: &[&String]) -> Result<()> {
    match foreign(db, keys).await?.into_iter().flatten().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// For each key (one pipeline of `TYPE`s), `TypeMismatch` when it holds something other than
/// a document, else `None`.
async fn foreign(db: &Db, keys: &[&String]) -> Result<Vec<Option<Error>>> {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("TYPE").arg(*key);
    }
    let types: Vec<String> = db
        .query_pipeline("TYPE", keys.len(), &pipe)
        .await
        .map_err(|e| Error::redis("TYPE", e))?;
    Ok(keys
        .iter()
        .zip(types)
        .map(|(key, found)| {
            (found != "none" && found != JSON_TYPE).then(|| mismatch((*key).clone(), found))
        })
        .collect())
}

/// The models that decoded and, separately, one typed error per document that did not:
/// what the lossy reads ([`AtomicModel::all_lossy`](crate::AtomicModel::all_lossy),
/// [`Find::all_lossy`](crate::query::Find::all_lossy)) return, so that one bad document
/// never hides the others.
///
/// Each failure is the error the strict read gives for that document and names its key:
/// [`Error::Deserialize`] with the path inside the document, [`Error::IdMismatch`], or
/// [`Error::TypeMismatch`] for a key that holds another Redis type.
#[derive(Debug)]
pub struct Lossy<M> {
    /// The models that decoded, in the order the read found them.
    pub models: Vec<M>,
    /// One error per document that did not decode, in the same order.
    pub failures: Vec<Error>,
}

impl<M> Lossy<M> {
    /// Whether every document decoded.
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }

    /// The models, or the first failure: what the strict read returns.
    pub fn into_strict(self) -> Result<Vec<M>> {
        match self.failures.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(self.models),
        }
    }

    /// Adds the outcome of one read position: a model, nothing (a missing document), or a
    /// failure.
    pub(crate) fn push(&mut self, read: Result<Option<M>>) {
        match read {
            Ok(Some(model)) => self.models.push(model),
            Ok(None) => {}
            Err(e) => self.failures.push(e),
        }
    }
}

impl<M> Default for Lossy<M> {
    fn default() -> Lossy<M> {
        Lossy {
            models: Vec::new(),
            failures: Vec::new(),
        }
    }
}

/// [`get_many`] that gives each position its own outcome: the model, `None` for a missing
/// key, or the error that position alone failed with (a document that does not decode, a
/// key of another Redis type). Reading itself failing (the connection) fails the call.
pub(crate) async fn get_many_lossy<M: KeySettings + Document>(
    db: &Db,
    keys: &[String],
    rearm: Option<Duration>,
) -> Result<Vec<Result<Option<M>>>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let structures = crate::keys::structures_of::<M>();
    let replies = mget(db, keys, rearm, &structures).await?;
    let missing = unanswered(keys, &replies);
    let mut foreign = match missing.is_empty() {
        true => Vec::new(),
        false => foreign(db, &missing).await?,
    }
    .into_iter();
    Ok(keys
        .iter()
        .zip(replies)
        .map(|(key, reply)| match reply {
            Some(bytes) => decode_model(db.namespace(), key, &bytes).map(Some),
            None => match foreign.next().flatten() {
                Some(e) => Err(e),
                None => Ok(None),
            },
        })
        .collect())
}

/// Runs `run` once per cluster hash slot of `keys` (once with every key on a single server),
/// all at once, each with the keys of its slot in their given order; returns each group's
/// positions in `keys` with its result, or the first failure in the order of the groups.
pub(crate) async fn per_slot<'a, T, F, Fut>(
    db: &Db,
    keys: &[String],
    run: F,
) -> Result<Vec<(Vec<usize>, T)>>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Result<T>> + 'a,
{
    let groups = slot_groups(db, keys);
    let runs = groups
        .iter()
        .map(|positions| run(positions.iter().map(|&i| keys[i].clone()).collect()));
    let results = futures_util::future::join_all(runs).await;
    groups
        .into_iter()
        .zip(results)
        .map(|(positions, result)| result.map(|value| (positions, value)))
        .collect()
}

/// The positions of `keys` grouped by hash slot, groups in the order of their first key; one
/// group of every position on a single server.
pub(crate) fn slot_groups(db: &Db, keys: &[String]) -> Vec<Vec<usize>> {
    if !db.is_cluster() {
        return vec![(0..keys.len()).collect()];
    }
    let mut group_of: std::collections::HashMap<u16, usize> = std::collections::HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let slot = crate::slot::hash_slot(key.as_bytes());
        let g = *group_of.entry(slot).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    groups
}

pub(crate) async fn key_type(db: &Db, key: &str) -> Result<String> {
    let mut cmd = redis::cmd("TYPE");
    cmd.arg(key);
    db.query("TYPE", 1, &cmd)
        .await
        .map_err(|e| Error::redis("TYPE", e))
}
