//! A local Redis Cluster of three primaries and three replicas, made from the same cached
//! `redis-server` and modules as the standalone server, or an existing cluster named by
//! `REDIS_CLUSTER_URLS`; plus what fault tests need to drive it (its nodes, stopping and
//! restarting one, moving a slot).
//!
//! The nodes are wired from Rust (`CLUSTER MEET`, `CLUSTER ADDSLOTSRANGE`,
//! `CLUSTER REPLICATE`), no `redis-cli` needed, and each is stopped with this process like
//! the standalone server.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use redis::Connection;

use crate::{Binaries, HOW_TO_FIX, Server, stack_dir};

/// The environment variable naming an existing cluster (comma-separated seed URLs) to use
/// instead of starting one.
pub const CLUSTER_URLS_ENV: &str = "REDIS_CLUSTER_URLS";

/// How long a node may be unreachable before the others fail it over (milliseconds).
const NODE_TIMEOUT_MS: u64 = 2000;
/// Primaries of a started cluster; each gets one replica.
const PRIMARIES: usize = 3;
/// The slot ranges of the started primaries.
const RANGES: [(u16, u16); PRIMARIES] = [(0, 5460), (5461, 10922), (10923, 16383)];

/// A Redis Cluster: either six nodes this process started, or an external one.
#[derive(Debug)]
pub struct Cluster {
    seeds: Vec<String>,
    /// The nodes this process started (empty for an external cluster).
    owned: Vec<Server>,
    /// (`host:port` a node announces, the node's own port), for nodes that announce another
    /// port than their own (see [`Cluster::start_nodes`]).
    announced: Vec<(String, u16)>,
}

/// One node of the cluster as `CLUSTER NODES` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// The node's cluster id.
    pub id: String,
    /// `host:port`.
    pub addr: String,
    /// Whether it is a primary (else a replica).
    pub primary: bool,
    /// The id of its primary, for a replica.
    pub primary_id: Option<String>,
    /// Whether the cluster considers it failed (`fail` or `fail?`) or it is disconnected.
    pub failed: bool,
    /// The slot ranges it serves (inclusive), for a primary.
    pub slots: Vec<(u16, u16)>,
}

impl ClusterNode {
    /// The node's URL, e.g. `redis://127.0.0.1:7000/`.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Whether it serves `slot`.
    pub fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
    }
}

impl Cluster {
    /// Uses the cluster reachable through `seeds`, checking that its state is `ok`.
    pub fn external(seeds: Vec<String>) -> Result<Cluster, String> {
        let cluster = Cluster {
            seeds,
            owned: Vec::new(),
            announced: Vec::new(),
        };
        cluster.wait_ok(Duration::from_secs(10))?;
        Ok(cluster)
    }

    /// Starts six nodes of the cached binaries on free ports (each with its own folder),
    /// gives three primaries a third of the slots each and a replica each, and returns once
    /// every node reports `cluster_state:ok` and every replica is attached.
    pub fn start(binaries: &Binaries) -> Result<Cluster, String> {
        Cluster::start_nodes(binaries, 2 * PRIMARIES, &mut |_| Ok(None))
    }

    /// Starts `nodes` nodes (three primaries, then their replicas), each telling clients the
    /// port `announce` gives for its own port, if any (`cluster-announce-port`: what
    /// `CLUSTER SLOTS`, `CLUSTER NODES` and redirects name; the nodes reach each other's
    /// cluster bus at their own port + 10000 regardless). The seeds, and the testkit's own
    /// connections, use the nodes' own ports.
    pub(crate) fn start_nodes(
        binaries: &Binaries,
        nodes: usize,
        announce: &mut dyn FnMut(u16) -> Result<Option<u16>, String>,
    ) -> Result<Cluster, String> {
        let mut owned = Vec::with_capacity(nodes);
        let mut announced = Vec::new();
        for _ in 0..nodes {
            let port = free_cluster_port()?;
            let mut extra = vec![
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                "nodes.conf".into(),
                "--cluster-node-timeout".into(),
                NODE_TIMEOUT_MS.to_string(),
            ];
            if let Some(public) = announce(port)? {
                extra.extend(["--cluster-announce-port".into(), public.to_string()]);
                announced.push((format!("127.0.0.1:{public}"), port));
            }
            owned.push(Server::start_on(binaries, port, extra)?);
        }
        let cluster = Cluster {
            seeds: owned.iter().map(|s| s.url().to_string()).collect(),
            owned,
            announced,
        };
        cluster.wire()?;
        cluster.wait_ok(Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// Starts a cluster of the binaries cached in [`stack_dir()`].
    pub fn start_cached() -> Result<Cluster, String> {
        let dir = stack_dir();
        let binaries = Binaries::in_dir(&dir).ok_or_else(|| {
            format!(
                "no Redis Cluster: {CLUSTER_URLS_ENV} is not set and {} has no cached \
                 redis-server, rejson.so, redisearch.so and redisbloom.so. Fix: {HOW_TO_FIX}",
                dir.display()
            )
        })?;
        Cluster::start(&binaries)
    }

    /// The seed URLs to connect with (every node's, for a started cluster).
    pub fn urls(&self) -> &[String] {
        &self.seeds
    }

    /// Whether this process started the nodes (and so can stop and restart them).
    pub fn is_owned(&self) -> bool {
        !self.owned.is_empty()
    }

    /// Every node as the first reachable seed sees it, primaries first.
    pub fn nodes(&self) -> Result<Vec<ClusterNode>, String> {
        let mut last = String::from("no seed URL");
        for seed in &self.seeds {
            match connect(seed).and_then(|mut c| {
                redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query::<String>(&mut c)
                    .map_err(|e| format!("CLUSTER NODES on {seed}: {e}"))
            }) {
                Ok(text) => {
                    let mut nodes = parse_nodes(&text);
                    nodes.sort_by_key(|n| (!n.primary, n.addr.clone()));
                    return Ok(nodes);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The primary that serves `slot`.
    pub fn owner_of(&self, slot: u16) -> Result<ClusterNode, String> {
        self.nodes()?
            .into_iter()
            .find(|n| n.primary && !n.failed && n.serves(slot))
            .ok_or_else(|| format!("no primary serves slot {slot}"))
    }

    /// The URL of `node`'s own port (the one it announces, unless it announces another).
    fn own_url(&self, node: &ClusterNode) -> String {
        match self
            .announced
            .iter()
            .find(|(public, _)| *public == node.addr)
        {
            Some((_, own)) => format!("redis://127.0.0.1:{own}/"),
            None => node.url(),
        }
    }

    /// The node this process started at `addr` (`host:port`).
    fn owned_at(&self, addr: &str) -> Result<&Server, String> {
        self.owned
            .iter()
            .find(|s| s.url().trim_end_matches('/').ends_with(addr))
            .ok_or_else(|| format!("no node at {addr} was started by the testkit"))
    }

    /// Stops the node at `addr` (`host:port`), which this process started; its replica is
    /// promoted after the node timeout (2 s).
    pub fn stop_node(&self, addr: &str) -> Result<(), String> {
        self.owned_at(addr)?.stop()
    }

    /// Starts a node stopped by [`Cluster::stop_node`] again with its data and cluster
    /// identity (it rejoins; a failed-over primary comes back as a replica).
    pub fn restart_node(&self, addr: &str) -> Result<(), String> {
        self.owned_at(addr)?.start_again()
    }

    /// Promotes the replica of the primary at `addr` (`host:port`) with `CLUSTER FAILOVER`
    /// (a manual failover: the primary pauses its clients until the replica has caught up,
    /// so nothing is lost) and waits until the replica serves the slots and the cluster is
    /// `ok` again with the old primary as its replica. Returns the new primary.
    pub fn failover(&self, addr: &str) -> Result<ClusterNode, String> {
        let nodes = self.nodes()?;
        let primary = nodes
            .iter()
            .find(|n| n.primary && n.addr == addr)
            .ok_or_else(|| format!("no primary at {addr}"))?;
        let replica = nodes
            .iter()
            .find(|n| !n.failed && n.primary_id.as_deref() == Some(primary.id.as_str()))
            .ok_or_else(|| format!("the primary at {addr} has no replica"))?;
        // A manual failover needs the replica in sync; one that times out (5 s on the
        // server's side) changes nothing, so it is asked again.
        self.wait_ok(Duration::from_secs(20))?;
        for _ in 0..3 {
            redis::cmd("CLUSTER")
                .arg("FAILOVER")
                .query::<()>(&mut connect(&replica.url())?)
                .map_err(|e| format!("CLUSTER FAILOVER on {}: {e}", replica.addr))?;
            let deadline = Instant::now() + Duration::from_secs(8);
            while Instant::now() < deadline {
                let now = self.nodes()?;
                let promoted = now
                    .iter()
                    .find(|n| n.id == replica.id && n.primary && !n.slots.is_empty());
                // The old primary is seen as the new one's replica once the switch has spread.
                let demoted = now
                    .iter()
                    .any(|n| n.id == primary.id && n.primary_id.as_deref() == Some(&replica.id));
                if let Some(promoted) = promoted.cloned()
                    && demoted
                    && self.check_ok().is_ok()
                {
                    return Ok(promoted);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Err(format!("{} was not promoted after 3 tries", replica.addr))
    }

    /// Moves `slot`, with its keys, to the primary `to` (a node id), the way a reshard does:
    /// [`begin_migration`](Cluster::begin_migration), [`migrate_keys`](Cluster::migrate_keys)
    /// of every key left in the slot, [`finish_migration`](Cluster::finish_migration).
    /// Moving a slot to its owner does nothing.
    pub fn migrate_slot(&self, slot: u16, to: &str) -> Result<(), String> {
        let Some(migration) = self.begin_migration(slot, to)? else {
            return Ok(());
        };
        self.migrate_keys(&migration, None)?;
        self.finish_migration(&migration)
    }

    /// Starts moving `slot` to the primary `to`: `SETSLOT … IMPORTING` on the target, then
    /// `SETSLOT … MIGRATING` on the source. From then on a command for a key of the slot
    /// that the source no longer holds is answered `ASK` (go to the target). `None` when
    /// `to` already serves the slot.
    pub fn begin_migration(&self, slot: u16, to: &str) -> Result<Option<Migration>, String> {
        let nodes = self.nodes()?;
        let source = nodes
            .iter()
            .find(|n| n.primary && n.serves(slot))
            .ok_or_else(|| format!("no primary serves slot {slot}"))?;
        let target = nodes
            .iter()
            .find(|n| n.primary && n.id == to)
            .ok_or_else(|| format!("no primary with id {to}"))?;
        if source.id == target.id {
            return Ok(None);
        }
        let migration = Migration {
            slot,
            source: source.clone(),
            target: target.clone(),
        };
        setslot(&mut connect(&target.url())?, slot, "IMPORTING", &source.id)?;
        setslot(&mut connect(&source.url())?, slot, "MIGRATING", &target.id)?;
        Ok(Some(migration))
    }

    /// Moves `keys` of the migrating slot (`None`: every key left in it) from the source to
    /// the target with `MIGRATE … KEYS`, in batches of 100.
    pub fn migrate_keys(&self, migration: &Migration, keys: Option<&[&str]>) -> Result<(), String> {
        let mut src = connect(&migration.source.url())?;
        let (host, port) = migration
            .target
            .addr
            .rsplit_once(':')
            .ok_or_else(|| format!("bad node address {}", migration.target.addr))?;
        let send = |src: &mut Connection, batch: &[Vec<u8>]| {
            redis::cmd("MIGRATE")
                .arg(host)
                .arg(port)
                .arg("")
                .arg(0)
                .arg(10_000)
                .arg("REPLACE")
                .arg("KEYS")
                .arg(batch)
                .query::<()>(src)
                .map_err(|e| format!("MIGRATE of slot {}: {e}", migration.slot))
        };
        if let Some(keys) = keys {
            let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
            for batch in keys.chunks(100) {
                send(&mut src, batch)?;
            }
            return Ok(());
        }
        loop {
            let batch: Vec<Vec<u8>> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(migration.slot)
                .arg(100)
                .query(&mut src)
                .map_err(|e| format!("CLUSTER GETKEYSINSLOT {}: {e}", migration.slot))?;
            if batch.is_empty() {
                return Ok(());
            }
            send(&mut src, &batch)?;
        }
    }

    /// Ends a migration: moves the keys still on the source, then `SETSLOT … NODE` on the
    /// target, the source and every other primary (which would otherwise learn it by gossip).
    pub fn finish_migration(&self, migration: &Migration) -> Result<(), String> {
        self.migrate_keys(migration, None)?;
        let (slot, to) = (migration.slot, &migration.target.id);
        setslot(&mut connect(&migration.target.url())?, slot, "NODE", to)?;
        setslot(&mut connect(&migration.source.url())?, slot, "NODE", to)?;
        for other in self.nodes()?.iter().filter(|n| {
            n.primary && !n.failed && n.id != migration.source.id && n.id != migration.target.id
        }) {
            setslot(&mut connect(&other.url())?, slot, "NODE", to)?;
        }
        Ok(())
    }

    /// Meets the nodes, gives the first three the slots and makes the others their replicas.
    fn wire(&self) -> Result<(), String> {
        let first = self.owned.first().ok_or("no nodes")?;
        let mut conn = connect(first.url())?;
        for node in &self.owned[1..] {
            let (host, port) = host_port(node.url())?;
            redis::cmd("CLUSTER")
                .arg("MEET")
                .arg(host)
                .arg(port)
                .query::<()>(&mut conn)
                .map_err(|e| format!("CLUSTER MEET {host}:{port}: {e}"))?;
        }
        let mut ids = Vec::with_capacity(PRIMARIES);
        for (node, (start, end)) in self.owned.iter().zip(RANGES) {
            let mut c = connect(node.url())?;
            redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(start)
                .arg(end)
                .query::<()>(&mut c)
                .map_err(|e| format!("CLUSTER ADDSLOTSRANGE {start} {end}: {e}"))?;
            let id: String = redis::cmd("CLUSTER")
                .arg("MYID")
                .query(&mut c)
                .map_err(|e| format!("CLUSTER MYID: {e}"))?;
            ids.push(id);
        }
        // A node can only replicate a primary it has heard of: wait for the handshake.
        let deadline = Instant::now() + Duration::from_secs(20);
        for (replica, primary) in self.owned[PRIMARIES..].iter().zip(&ids) {
            let mut c = connect(replica.url())?;
            loop {
                let outcome = redis::cmd("CLUSTER")
                    .arg("REPLICATE")
                    .arg(primary)
                    .query::<()>(&mut c);
                match outcome {
                    Ok(()) => break,
                    Err(e) if Instant::now() >= deadline => {
                        return Err(format!("CLUSTER REPLICATE {primary}: {e}"));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        Ok(())
    }

    /// Waits until every node says `cluster_state:ok`, every slot is served and every
    /// replica's link to its primary is up.
    pub fn wait_ok(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let failure = match self.check_ok() {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "the cluster {:?} is not ready after {timeout:?}: {failure}",
                    self.seeds
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn check_ok(&self) -> Result<(), String> {
        let nodes = self.nodes()?;
        let served: u32 = nodes
            .iter()
            .filter(|n| n.primary && !n.failed)
            .flat_map(|n| &n.slots)
            .map(|&(a, b)| u32::from(b - a) + 1)
            .sum();
        if served != 16384 {
            return Err(format!("{served} of 16384 slots served"));
        }
        for node in nodes.iter().filter(|n| !n.failed) {
            let mut c = connect(&self.own_url(node))?;
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut c)
                .map_err(|e| format!("CLUSTER INFO on {}: {e}", node.addr))?;
            if !info.contains("cluster_state:ok") {
                return Err(format!("{} is not in cluster_state:ok", node.addr));
            }
            if !node.primary {
                let replication: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut c)
                    .map_err(|e| format!("INFO replication on {}: {e}", node.addr))?;
                if !replication.contains("master_link_status:up") {
                    return Err(format!("replica {} is not attached", node.addr));
                }
            }
        }
        Ok(())
    }
}

/// A slot on its way from one primary to another (see [`Cluster::begin_migration`]).
#[derive(Debug, Clone)]
pub struct Migration {
    /// The slot being moved.
    pub slot: u16,
    /// The primary that served it.
    pub source: ClusterNode,
    /// The primary that will serve it.
    pub target: ClusterNode,
}

fn setslot(conn: &mut Connection, slot: u16, state: &str, id: &str) -> Result<(), String> {
    redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg(state)
        .arg(id)
        .query::<()>(conn)
        .map_err(|e| format!("CLUSTER SETSLOT {slot} {state} {id}: {e}"))
}

/// The one cluster of this process: `REDIS_CLUSTER_URLS` when set, else six cached servers
/// started once and stopped when the process exits.
///
/// # Panics
/// When no cluster can be had, with a message that says what to run.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    let result = CLUSTER.get_or_init(|| match std::env::var(CLUSTER_URLS_ENV) {
        Ok(urls) if !urls.trim().is_empty() => Cluster::external(
            urls.split(',')
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty())
                .collect(),
        ),
        _ => Cluster::start_cached(),
    });
    match result {
        Ok(cluster) => cluster,
        Err(message) => panic!("rapyer-testkit: {message}"),
    }
}

/// Parses `CLUSTER NODES`: `id addr@bus flags primary ping pong epoch link slot…`.
fn parse_nodes(text: &str) -> Vec<ClusterNode> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return None;
            }
            let addr = fields[1].split('@').next().unwrap_or(fields[1]).to_string();
            let flags: Vec<&str> = fields[2].split(',').collect();
            let slots = fields[8..]
                .iter()
                // `[slot->-id]` entries describe a migration in progress, not ownership.
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|x| (x, x)),
                })
                .collect();
            Some(ClusterNode {
                id: fields[0].to_string(),
                addr,
                primary: flags.contains(&"master"),
                primary_id: (fields[3] != "-").then(|| fields[3].to_string()),
                failed: flags.iter().any(|f| f.starts_with("fail")) || fields[7] != "connected",
                slots,
            })
        })
        .collect()
}

fn connect(url: &str) -> Result<Connection, String> {
    let client = redis::Client::open(url).map_err(|e| format!("bad Redis URL {url:?}: {e}"))?;
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| format!("{url}: {e}"))?;
    Ok(conn)
}

fn host_port(url: &str) -> Result<(&str, u16), String> {
    let rest = url.trim_start_matches("redis://").trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("no port in {url}"))?;
    let port = port.parse().map_err(|_| format!("bad port in {url}"))?;
    Ok((host, port))
}

/// A free port whose cluster bus port (the port + 10000) is free too.
fn free_cluster_port() -> Result<u16, String> {
    use std::net::TcpListener;
    // Start somewhere that depends on the process, so concurrent test binaries spread out.
    let offset = std::process::id().wrapping_mul(7919) % 25_000;
    for i in 0..25_000u32 {
        let Ok(port) = u16::try_from(20_000 + (offset + i * 13) % 25_000) else {
            continue;
        };
        let Ok(a) = TcpListener::bind(("127.0.0.1", port)) else {
            continue;
        };
        let Ok(b) = TcpListener::bind(("127.0.0.1", port + 10_000)) else {
            continue;
        };
        drop((a, b));
        if !TAKEN.lock().map(|mut t| t.insert(port)).unwrap_or(false) {
            continue;
        }
        return Ok(port);
    }
    Err("no free port pair (P, P+10000) between 20000 and 55000".into())
}

/// Ports handed out by this process (a port is not bound until its server starts).
static TAKEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

#[cfg(test)]
mod tests {
    use super::parse_nodes;

    #[test]
    fn reads_cluster_nodes() {
        let text = "a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 7000 [5->-b2]\n\
                    b2 127.0.0.1:7001@17001 slave a1 0 0 1 connected\n\
                    c3 127.0.0.1:7002@17002 master,fail - 0 0 2 disconnected\n";
        let nodes = parse_nodes(text);
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].slots, vec![(0, 5460), (7000, 7000)]);
        assert!(nodes[0].primary && !nodes[0].failed);
        assert_eq!(nodes[1].primary_id.as_deref(), Some("a1"));
        assert!(!nodes[1].primary);
        assert!(nodes[2].failed);
    }
}
