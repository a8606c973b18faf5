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

/// Reads `keys[i]` for each position in `again` with a one-key command of its own, which
/// Redis redirects to wherever the key now is, into `replies[i]`.
async fn reread(
    db: &Db,
    keys: &[String],
    replies: &mut [Option<Vec<u8>>],
    again: &[usize],
    rearm: Option<Duration>,
) -> Result<()> {
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

/// Keys per `SCAN` step.
const SCAN_COUNT: usize = 1000;
/// Rounds of re-scanning the nodes of slots that moved while a [`scan_keys`] ran.
const RESCAN_ROUNDS: usize = 4;
/// The number of hash slots of a Redis Cluster.
const SLOTS: usize = 16384;

/// Every key matching the `SCAN` glob `pattern` that holds a document, each once, in no set
/// order: `SCAN … TYPE ReJSON-RL` of the server, or of every primary of a cluster.
///
/// On a cluster, a key whose slot is being migrated while the primaries are scanned in turn
/// can be on the target when the target was scanned and on the source when the source was.
/// So the slots each primary claims and migrates are read (`CLUSTER NODES`, each node's own
/// line) before and after the scan; for every slot that was moving, or changed hands, the
/// nodes involved are scanned again, the source before the target (keys only ever move from
/// source to target, so one that left the source before its scan is on the target after),
/// until a round sees nothing move (at most [`RESCAN_ROUNDS`] rounds).
pub(crate) async fn scan_keys(db: &Db, pattern: &str) -> Result<Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut keys = Vec::new();
    if !db.is_cluster() {
        scan_node(db, None, pattern, &mut seen, &mut keys).await?;
        return Ok(keys);
    }
    let mut names = NodeNames::default();
    let mut before = SlotClaims::read(db, &mut names).await?;
    for node in db.primaries().await?.iter().flatten() {
        scan_node(db, Some(node), pattern, &mut seen, &mut keys).await?;
    }
    for _ in 0..RESCAN_ROUNDS {
        let after = SlotClaims::read(db, &mut names).await?;
        let again = before.rescans(&after, &names);
        if again.is_empty() {
            break;
        }
        for order in again {
            for node in &order {
                scan_node(db, Some(node), pattern, &mut seen, &mut keys).await?;
            }
        }
        before = after;
    }
    Ok(keys)
}

/// One node's `SCAN` (`None`: wherever the connection routes it), adding the keys not yet
/// `seen` (SCAN may return a key more than once) to `keys`.
async fn scan_node(
    db: &Db,
    node: Option<&(String, u16)>,
    pattern: &str,
    seen: &mut std::collections::HashSet<String>,
    keys: &mut Vec<String>,
) -> Result<()> {
    let mut cursor: u64 = 0;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .arg("TYPE")
            .arg(JSON_TYPE);
        let (next, page): (u64, Vec<String>) = db
            .query_at("SCAN", node, &cmd)
            .await
            .map_err(|e| Error::redis("all", e))?;
        keys.extend(page.into_iter().filter(|k| seen.insert(k.clone())));
        cursor = next;
        if cursor == 0 {
            return Ok(());
        }
    }
}

/// Cluster node ids as small numbers, with each node's address.
#[derive(Default)]
struct NodeNames {
    ids: std::collections::HashMap<String, u32>,
    addrs: Vec<Option<(String, u16)>>,
}

impl NodeNames {
    fn number(&mut self, id: &str) -> u32 {
        if let Some(&n) = self.ids.get(id) {
            return n;
        }
        // A cluster has far fewer nodes than the two reserved numbers leave room for.
        let n = u32::try_from(self.addrs.len()).unwrap_or(SlotClaims::CONTESTED - 1);
        self.ids.insert(id.to_string(), n);
        self.addrs.push(None);
        n
    }

    fn addr(&self, n: u32) -> Option<&(String, u16)> {
        self.addrs.get(n as usize).and_then(Option::as_ref)
    }
}

/// Which primary claims each hash slot, and which slots are moving, as every primary says
/// of itself.
struct SlotClaims {
    /// The claiming node of each slot, or [`SlotClaims::UNCLAIMED`] or
    /// [`SlotClaims::CONTESTED`] (several claim it, as during a migration's last step).
    owner: Vec<u32>,
    /// (source, target) of every slot being migrated or imported.
    moving: Vec<(u32, u32)>,
}

impl SlotClaims {
    const UNCLAIMED: u32 = u32::MAX;
    const CONTESTED: u32 = u32::MAX - 1;

    async fn read(db: &Db, names: &mut NodeNames) -> Result<SlotClaims> {
        let mut claims = SlotClaims {
            owner: vec![Self::UNCLAIMED; SLOTS],
            moving: Vec::new(),
        };
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("NODES");
        for node in db.primaries().await?.iter().flatten() {
            let text: String = db
                .query_at("CLUSTER NODES", Some(node), &cmd)
                .await
                .map_err(|e| Error::redis("CLUSTER NODES", e))?;
            claims.add(&text, names);
        }
        Ok(claims)
    }

    /// Adds one node's `CLUSTER NODES`: the addresses of all, the claims of its own line.
    fn add(&mut self, text: &str, names: &mut NodeNames) {
        for line in text.lines() {
            // id addr@bus flags primary ping pong epoch link slot…
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(id), Some(addr), Some(flags)) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                continue;
            };
            let me = names.number(id);
            let addr = addr.split(['@', ',']).next().unwrap_or("");
            if let Some((host, port)) = addr.rsplit_once(':')
                && let Ok(port) = port.parse::<u16>()
                && port != 0
                && !host.is_empty()
                && let Some(slot) = names.addrs.get_mut(me as usize)
            {
                *slot = Some((host.to_string(), port));
            }
            if !flags.split(',').any(|f| f == "myself") {
                continue;
            }
            for claim in fields.iter().skip(8) {
                self.claim(me, claim, names);
            }
        }
    }

    /// One slot entry of a node's own line: `a-b`, `a`, `[a->-target]` or `[a-<-source]`.
    fn claim(&mut self, me: u32, entry: &str, names: &mut NodeNames) {
        if let Some(moving) = entry.strip_prefix('[').and_then(|e| e.strip_suffix(']')) {
            if let Some((_, target)) = moving.split_once("->-") {
                let pair = (me, names.number(target));
                self.moving.push(pair);
            } else if let Some((_, source)) = moving.split_once("-<-") {
                let pair = (names.number(source), me);
                self.moving.push(pair);
            }
            return;
        }
        let (a, b) = entry.split_once('-').unwrap_or((entry, entry));
        let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) else {
            return;
        };
        for owner in self.owner.iter_mut().take(b.saturating_add(1)).skip(a) {
            *owner = match *owner {
                Self::UNCLAIMED => me,
                same if same == me => me,
                _ => Self::CONTESTED,
            };
        }
    }

    /// The nodes to scan again, each list in order, for what moved between `self` and
    /// `after`: a migration's source then its target; a slot's new owner.
    fn rescans(&self, after: &SlotClaims, names: &NodeNames) -> Vec<Vec<(String, u16)>> {
        let mut orders: Vec<Vec<u32>> = Vec::new();
        for &(source, target) in self.moving.iter().chain(&after.moving) {
            if !orders.contains(&vec![source, target]) {
                orders.push(vec![source, target]);
            }
        }
        for (old, new) in self.owner.iter().zip(&after.owner) {
            if old != new && *new < Self::CONTESTED && !orders.contains(&vec![*new]) {
                orders.push(vec![*new]);
            }
        }
        orders
            .into_iter()
            .map(|order| {
                order
                    .into_iter()
                    .filter_map(|n| names.addr(n).cloned())
                    .collect::<Vec<_>>()
            })
            .filter(|order| !order.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{NodeNames, SlotClaims};

    fn claims(texts: &[&str], names: &mut NodeNames) -> SlotClaims {
        let mut claims = SlotClaims {
            owner: vec![SlotClaims::UNCLAIMED; super::SLOTS],
            moving: Vec::new(),
        };
        for text in texts {
            claims.add(text, names);
        }
        claims
    }

    #[test]
    fn a_migrating_slot_is_scanned_again_source_first() {
        let mut names = NodeNames::default();
        let a = "a 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-99 [5->-b]\n\
                 b 127.0.0.1:7001@17001 master - 0 0 2 connected 100-199\n";
        let b = "a 127.0.0.1:7000@17000 master - 0 0 1 connected 0-99\n\
                 b 127.0.0.1:7001@17001 myself,master - 0 0 2 connected 100-199 [5-<-a]\n";
        let before = claims(&[a, b], &mut names);
        let after = claims(&[a, b], &mut names);
        assert_eq!(before.owner[5], names.ids["a"]);
        let again = before.rescans(&after, &names);
        let (na, nb) = (
            ("127.0.0.1".to_string(), 7000),
            ("127.0.0.1".to_string(), 7001),
        );
        assert_eq!(again, vec![vec![na, nb]]);
    }

    #[test]
    fn a_slot_that_changed_hands_is_scanned_again_on_its_new_owner() {
        let mut names = NodeNames::default();
        let before = claims(
            &["a 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-99\n"],
            &mut names,
        );
        let after = claims(
            &[
                "a 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-4 6-99\n",
                "b 127.0.0.1:7001@17001 myself,master - 0 0 2 connected 5\n",
            ],
            &mut names,
        );
        let again = before.rescans(&after, &names);
        assert_eq!(again, vec![vec![("127.0.0.1".to_string(), 7001)]]);
        assert!(before.rescans(&before_copy(&before), &names).is_empty());
    }

    fn before_copy(c: &SlotClaims) -> SlotClaims {
        SlotClaims {
            owner: c.owner.clone(),
            moving: c.moving.clone(),
        }
    }
}
