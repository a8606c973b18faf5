//! Many stored documents by key, in one round trip each: reads (`JSON.MGET`, or a script
//! that also re-arms expiries), all-or-nothing deletes, and the `TYPE` checks that name a
//! key holding another Redis type. Used by the whole-document operations (`crud`) and by
//! queries (`find`), which both hold keys.

use std::time::Duration;

use crate::codec::{Document, decode_model, mismatch, ttl_millis};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::keys::KeySettings;
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
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let replies = mget(db, &keys, rearm).await?;
    // JSON.MGET answers nil both for a missing key and for a key of another type; only a
    // nil needs the second look, so the common case stays one round trip.
    let missing: Vec<&String> = keys
        .iter()
        .zip(&replies)
        .filter(|(_, reply)| reply.is_none())
        .map(|(key, _)| key)
        .collect();
    if !missing.is_empty() {
        check_not_foreign(db, &missing).await?;
    }
    keys.iter()
        .zip(replies)
        .map(|(key, reply)| {
            reply
                .map(|bytes| decode_model(db.namespace(), key, &bytes))
                .transpose()
        })
        .collect()
}

/// Deletes the documents at `keys` in one script, all or nothing: a key holding another
/// Redis type refuses the whole call with [`Error::TypeMismatch`] naming the first such key
/// (in the order given), and nothing is deleted. Returns how many documents were deleted.
///
/// On a cluster, one script per hash slot (all sent at once): all or nothing per slot.
pub(crate) async fn delete_count(db: &Db, keys: Vec<String>) -> Result<usize> {
    if keys.is_empty() {
        return Ok(0);
    }
    let counts = per_slot(db, &keys, |group| delete_in_slot(db, group)).await?;
    Ok(counts.into_iter().map(|(_, n)| n).sum())
}

async fn delete_in_slot(db: &Db, keys: Vec<String>) -> Result<usize> {
    match db
        .run_lua::<u64>(&library::DELETE, &keys, &[] as &[&str])
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
pub(crate) async fn mget(
    db: &Db,
    keys: &[String],
    rearm: Option<Duration>,
) -> Result<Vec<Option<Vec<u8>>>> {
    if !db.is_cluster() {
        return mget_in_slot(db, keys, rearm).await;
    }
    let groups = per_slot(db, keys, |group| async move {
        let (mut replies, again) = match mget_in_slot(db, &group, rearm).await {
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
        reread(db, &group, &mut replies, &again, rearm).await?;
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
        let reads = batch.iter().map(|&i| read_one(db, &keys[i], rearm));
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
async fn read_one(db: &Db, key: &str, rearm: Option<Duration>) -> Result<Option<Vec<u8>>> {
    if rearm.is_some() {
        let keys = [key.to_string()];
        return Ok(mget_in_slot(db, &keys, rearm).await?.pop().flatten());
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
) -> Result<Vec<Option<Vec<u8>>>> {
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

/// Fails with `TypeMismatch` for the first key that holds something other than a document.
pub(crate) async fn check_not_foreign(db: &Db, keys: &[&String]) -> Result<()> {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("TYPE").arg(*key);
    }
    let types: Vec<String> = db
        .query_pipeline("TYPE", keys.len(), &pipe)
        .await
        .map_err(|e| Error::redis("TYPE", e))?;
    for (key, found) in keys.iter().zip(types) {
        if found != "none" && found != JSON_TYPE {
            return Err(mismatch((*key).clone(), found));
        }
    }
    Ok(())
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
