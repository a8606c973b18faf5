//! Every stored document key of a model, found with `SCAN` (never `KEYS`): on one server,
//! or on every primary of a cluster, where a key whose slot is being migrated while the
//! primaries are scanned in turn must still be found exactly once.

use std::collections::{HashMap, HashSet};

use crate::db::Db;
use crate::documents::JSON_TYPE;
use crate::error::{Error, Result};

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
    let mut seen = HashSet::new();
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
    seen: &mut HashSet<String>,
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

/// `CLUSTER NODES` as the node at `node` answers it (its own line tells its own slots and
/// migrations).
async fn own_view(db: &Db, node: &(String, u16)) -> Result<String> {
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("NODES");
    db.query_at("CLUSTER NODES", Some(node), &cmd)
        .await
        .map_err(|e| Error::redis("CLUSTER NODES", e))
}

/// The lowest slot the cluster node at `node` serves and is not migrating away, as the node
/// itself says (its own `CLUSTER NODES` line, so no other node's late view of it); `None`
/// when it serves none. A node answers for a name hashing to such a slot until that slot
/// starts migrating.
pub(crate) async fn settled_lowest_slot(db: &Db, node: &(String, u16)) -> Result<Option<u16>> {
    let mut claims = SlotClaims::empty();
    claims.add(&own_view(db, node).await?, &mut NodeNames::default());
    Ok((0..SLOTS)
        .find(|slot| claims.owner[*slot] != SlotClaims::UNCLAIMED && !claims.leaving.contains(slot))
        .and_then(|slot| u16::try_from(slot).ok()))
}

/// Cluster node ids as small numbers, with each node's address.
#[derive(Default)]
struct NodeNames {
    ids: HashMap<String, u32>,
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
    /// The slots a node is migrating away (`[slot->-target]` on its own line).
    leaving: Vec<usize>,
}

impl SlotClaims {
    const UNCLAIMED: u32 = u32::MAX;
    const CONTESTED: u32 = u32::MAX - 1;

    async fn read(db: &Db, names: &mut NodeNames) -> Result<SlotClaims> {
        let mut claims = SlotClaims::empty();
        for node in db.primaries().await?.iter().flatten() {
            claims.add(&own_view(db, node).await?, names);
        }
        Ok(claims)
    }

    fn empty() -> SlotClaims {
        SlotClaims {
            owner: vec![Self::UNCLAIMED; SLOTS],
            moving: Vec::new(),
            leaving: Vec::new(),
        }
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
            if let Some((slot, target)) = moving.split_once("->-") {
                let pair = (me, names.number(target));
                self.moving.push(pair);
                if let Ok(slot) = slot.parse() {
                    self.leaving.push(slot);
                }
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
        let mut claims = SlotClaims::empty();
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
        assert_eq!(before.leaving, vec![5], "slot 5 leaves a");
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
            leaving: c.leaving.clone(),
        }
    }
}
