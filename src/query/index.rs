//! Index lifecycle: `db.init::<M>()` creates the RediSearch index of a model, and re-creates
//! it (documents kept) only when the model's schema changed.

use std::time::{Duration, Instant};

use redis::Value;

use super::schema::{IndexKind, IndexOptions, Indexable, SchemaField};
use super::shard::{Shard, is_not_served};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::keys::KeySettings;

/// How long `init` waits for a (re-)created index to finish indexing existing documents.
const INDEXING_TIMEOUT: Duration = Duration::from_secs(600);

/// The schema of `M`: every `#[rapyer(index)]` field, nested ones included.
pub fn schema<M: Indexable>() -> Vec<SchemaField> {
    let mut out = Vec::new();
    M::schema("$", "", IndexOptions::default(), &mut out);
    out
}

/// The name of `M`'s index on `db`: `{namespace}_rapyer:index:{Prefix}`, in rapyer's reserved
/// part of the namespace, so no other model's index (a prefix is one segment) nor another
/// library's `idx:…` can have it.
pub(crate) fn index_name<M: KeySettings>(db: &Db) -> String {
    crate::keys::index_name(db.namespace(), M::PREFIX)
}

/// The `FT.CREATE` arguments after the index name.
fn create_args<M: KeySettings>(db: &Db, schema: &[SchemaField]) -> Vec<String> {
    let mut args = vec![
        "ON".to_string(),
        "JSON".into(),
        "PREFIX".into(),
        "1".into(),
        crate::keys::model_space(db.namespace(), M::PREFIX),
        "SCHEMA".into(),
    ];
    // Without it, TEXT drops English stopwords: `contains("the")` would match nothing.
    // Index options go before SCHEMA.
    if schema.iter().any(|f| f.kind == IndexKind::Text) {
        let schema_at = args.len() - 1;
        args.splice(schema_at..schema_at, ["STOPWORDS".to_string(), "0".into()]);
    }
    for field in schema {
        args.extend([field.path.clone(), "AS".into(), field.name.clone()]);
        match field.kind {
            IndexKind::Numeric => args.push("NUMERIC".into()),
            IndexKind::Text => args.push("TEXT".into()),
            IndexKind::Tag => {
                args.push("TAG".into());
                if !field.options.case_insensitive {
                    args.push("CASESENSITIVE".into());
                }
                // Without it an empty string is not indexed, so `eq("")` could never match.
                args.push("INDEXEMPTY".into());
            }
        }
        if field.options.sortable {
            args.push("SORTABLE".into());
        }
    }
    args
}

impl Db {
    /// Gets `M` ready: loads every defined script, the library's own and yours (one round
    /// trip of `SCRIPT LOAD`s on every call, as [`Scripts::preload`](crate::Scripts::preload)),
    /// then creates `M`'s search index, or re-creates it (documents are kept) when it is not
    /// the one `M`'s schema makes, waiting until existing documents are indexed. So `init` on
    /// an unchanged index costs two round trips: the scripts, then one `FT.INFO`.
    ///
    /// The index covers the keys of `M` in this handle's namespace (`{ns}{Prefix}:`) and is
    /// named `{ns}_rapyer:index:{Prefix}`. `init` compares the live index (`FT.INFO`: its key
    /// type, prefixes, stop words and every attribute with its options) with the schema, so an
    /// index someone else made under that name, or an older schema, is rebuilt; a fingerprint
    /// of the schema at `{ns}_rapyer:index-schema:{Prefix}` lets other processes see which
    /// schema was last built. An unchanged index costs one `FT.INFO`.
    ///
    /// `init` also registers `M`'s reference fields declared with
    /// `#[rapyer(on_delete = …)]` in this process, so that deleting their targets through
    /// rapyer applies the policy (see [`OnDelete`](crate::OnDelete)).
    ///
    /// On a cluster the index is made on every primary (`CLUSTER SLOTS` names them, then one
    /// `FT.INFO` per primary, all at once): RediSearch without a coordinator indexes each
    /// shard on its own. A primary's copy is named `{ns}_rapyer:index:{Prefix}:{tag}`, the
    /// tag hashing to the lowest slot it serves (a node refuses an index name of a slot it
    /// does not serve). A primary that lacks its copy later (one that joined the cluster
    /// after `init`, or whose lowest slot changed) gets it from the first search that meets
    /// `Unknown index name` there; a replica promoted by a failover already has it
    /// (`FT.CREATE` is replicated). While a primary's lowest slot is being migrated away, its
    /// copy is the one named after the lowest slot it keeps (the name it will have after).
    ///
    /// `init` also drops each primary's other copies of this namespace's and model's index
    /// (named after a slot it served before; without `DD`, the documents stay), as does a
    /// search that re-creates a copy. A copy whose name's slot the primary no longer serves
    /// cannot be dropped there (the node refuses the name) and keeps indexing that node's
    /// documents until the slot comes back; the README's "Queries on a cluster" says how to
    /// drop it by hand.
    pub async fn init<M: KeySettings + Indexable>(&self) -> Result<()> {
        let mut referrers = Vec::new();
        M::referrers(&mut referrers);
        crate::referrers::register(referrers);
        self.scripts().preload().await?;
        let schema = schema::<M>();
        if schema.is_empty() {
            return Ok(());
        }
        let args = create_args::<M>(self, &schema);
        // The pinned RediSearch has no coordinator: an index on one node covers its shard
        // only, so every primary gets its own (one server: the server).
        let shards = Shard::all(self, &index_name::<M>(self)).await?;
        let created = futures_util::future::try_join_all(
            shards.iter().map(|shard| self.ensure_settled(shard, &args)),
        )
        .await?;
        if !created.contains(&true) {
            return Ok(());
        }
        let marker = crate::keys::index_marker(self.namespace(), M::PREFIX);
        let fingerprint = sha1_smol::Sha1::from(args.join("\n")).digest().to_string();
        let _: () = self
            .query("SET", 1, redis::cmd("SET").arg(&marker).arg(&fingerprint))
            .await
            .map_err(|e| Error::redis("init", e))?;
        Ok(())
    }

    /// Creates `M`'s index on the cluster primary `shard` when `init` ran before (its marker
    /// key exists) and the node has none under the name it uses now: a primary that joined
    /// after `init`, or one whose lowest slot changed. Returns whether the index now exists
    /// there; without a marker the caller reports the missing index as on one server.
    pub(crate) async fn recheck_index_on<M: KeySettings + Indexable>(
        &self,
        shard: &Shard,
    ) -> Result<bool> {
        let marker = crate::keys::index_marker(self.namespace(), M::PREFIX);
        let initialised: bool = self
            .query("EXISTS", 1, redis::cmd("EXISTS").arg(&marker))
            .await
            .map_err(|e| Error::redis("EXISTS", e))?;
        if !initialised {
            return Ok(false);
        }
        tracing::debug!(target: "rapyer::query", index = shard.index(),
            "a primary lacks the index: creating it there");
        let args = create_args::<M>(self, &schema::<M>());
        self.ensure_index_on(shard, &args).await?;
        self.drop_stale_copies(shard).await?;
        Ok(true)
    }

    /// [`Db::ensure_index_on`] `shard`, or, when the node refuses that name (its slot is being
    /// migrated away or has moved), on the same node under the name it answers for
    /// ([`Shard::settled`]); then drops the node's stale copies. Returns whether it
    /// (re-)created the index. A node that serves no slot any more (a primary just demoted
    /// by a failover, seen in a test run beside one) is left alone: its replica, now the
    /// primary, has its copy by replication, and a search that finds none creates one.
    async fn ensure_settled(&self, shard: &Shard, args: &[String]) -> Result<bool> {
        let (shard, created) = match self.ensure_index_on(shard, args).await {
            Err(Error::Redis { source, .. }) if is_not_served(&source) => {
                let Some(settled) = shard.settled(self).await? else {
                    tracing::debug!(target: "rapyer::query", index = shard.index(),
                        "a primary of the slot map serves no slot now: left alone");
                    return Ok(false);
                };
                let created = self.ensure_index_on(&settled, args).await?;
                (settled, created)
            }
            created => (shard.clone(), created?),
        };
        self.drop_stale_copies(&shard).await?;
        Ok(created)
    }

    /// Drops the other copies of `shard`'s index on its node (see [`Shard::is_other_copy`]:
    /// this namespace and model only; without `DD`, so the documents stay), when the node
    /// itself says `shard`'s name is the one it answers for now: with a late slot map the
    /// copies are left to a later `init` or re-creating search. A copy whose name's slot the
    /// node does not serve now is refused there and stays.
    async fn drop_stale_copies(&self, shard: &Shard) -> Result<()> {
        if !shard.is_cluster_node() || shard.settled(self).await?.as_ref() != Some(shard) {
            return Ok(());
        }
        let names: Vec<String> = shard
            .query(self, "FT._LIST", &redis::cmd("FT._LIST"))
            .await
            .map_err(|e| Error::redis("FT._LIST", e))?;
        for name in names.iter().filter(|name| shard.is_other_copy(name)) {
            let mut drop = redis::cmd("FT.DROPINDEX");
            drop.arg(name);
            match shard.query::<()>(self, "FT.DROPINDEX", &drop).await {
                Ok(()) => tracing::debug!(target: "rapyer::query", index = name.as_str(),
                    "dropped a stale copy of the index"),
                // Another process dropped it first.
                Err(e) if is_missing_index(&e) => {}
                Err(e) if is_not_served(&e) => tracing::debug!(target: "rapyer::query",
                    index = name.as_str(), "a stale copy named after a slot served elsewhere stays"),
                Err(e) => return Err(Error::redis("FT.DROPINDEX", e)),
            }
        }
        Ok(())
    }

    /// Makes the index on `shard` the one `args` describe: keeps it when `FT.INFO` shows that
    /// shape, otherwise drops it (documents kept) and creates it, then waits until that
    /// node's existing documents are indexed. Returns whether it (re-)created the index.
    async fn ensure_index_on(&self, shard: &Shard, args: &[String]) -> Result<bool> {
        let index = shard.index();
        let wanted = Shape::of_args(args);
        let live = self.index_info(shard).await?;
        if let Some(info) = &live {
            if Shape::of_info(info).as_ref() == Some(&wanted) {
                return Ok(false);
            }
            // Without DD: the documents stay, only the index goes.
            match shard
                .query::<()>(self, "FT.DROPINDEX", redis::cmd("FT.DROPINDEX").arg(index))
                .await
            {
                Ok(()) => {}
                // Another process dropped it first.
                Err(e) if is_missing_index(&e) => {}
                Err(e) => return Err(Error::redis("FT.DROPINDEX", e)),
            }
        }
        let mut create = redis::cmd("FT.CREATE");
        create.arg(index).arg(args);
        match shard.query::<()>(self, "FT.CREATE", &create).await {
            Ok(()) => {}
            // Another process created it first: keep it only if it is this schema's.
            Err(e) if e.to_string().contains("already exists") => {
                let info = self.index_info(shard).await?;
                if info.as_ref().and_then(|i| Shape::of_info(i)).as_ref() != Some(&wanted) {
                    return Err(Error::InvalidQuery {
                        message: format!(
                            "the index {index} was re-created concurrently with another schema; \
                             run init again"
                        ),
                    });
                }
            }
            Err(e) => {
                return Err(Error::InvalidQuery {
                    message: format!("FT.CREATE {index} failed: {e}"),
                });
            }
        }
        self.wait_indexed(shard).await?;
        Ok(true)
    }

    /// `FT.INFO` as name/value pairs, or `None` when there is no such index.
    async fn index_info(&self, shard: &Shard) -> Result<Option<Vec<(String, Value)>>> {
        match shard
            .query::<Value>(self, "FT.INFO", redis::cmd("FT.INFO").arg(shard.index()))
            .await
        {
            Ok(reply @ (Value::Array(_) | Value::Set(_) | Value::Map(_))) => {
                Ok(Some(pairs(&reply)))
            }
            Ok(_) => Ok(None),
            Err(e) if is_missing_index(&e) => Ok(None),
            Err(e) => Err(Error::redis("FT.INFO", e)),
        }
    }

    /// Waits until the index has indexed every existing document.
    async fn wait_indexed(&self, shard: &Shard) -> Result<()> {
        let index = shard.index();
        let started = Instant::now();
        loop {
            let info = self.index_info(shard).await?.unwrap_or_default();
            let indexing = info
                .iter()
                .find(|(k, _)| k == "indexing")
                .and_then(|(_, v)| redis::from_redis_value_ref::<f64>(v).ok())
                .unwrap_or(0.0);
            if indexing == 0.0 {
                return Ok(());
            }
            if started.elapsed() > INDEXING_TIMEOUT {
                return Err(Error::InvalidQuery {
                    message: format!("index {index} was still indexing after {INDEXING_TIMEOUT:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Whether RediSearch answered that the index does not exist (`Unknown index name`,
/// or `no such index` in older versions).
pub(crate) fn is_missing_index(e: &redis::RedisError) -> bool {
    let message = crate::error::server_message(e).to_lowercase();
    message.contains("unknown index name") || message.contains("no such index")
}

/// What decides how an index answers: its key type, key prefixes, stop words, and each
/// attribute with its options. Read from our own `FT.CREATE` arguments and from `FT.INFO`, so
/// `init` can tell whether the live index is the one the schema makes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shape {
    key_type: String,
    prefixes: Vec<String>,
    /// `STOPWORDS 0`: `Some(empty)`; the default list: `None`.
    stopwords: Option<Vec<String>>,
    /// `(path, name, type, options sorted)`, in schema order.
    attributes: Vec<(String, String, String, Vec<String>)>,
}

impl Shape {
    /// The shape our `FT.CREATE` arguments (after the index name) make.
    fn of_args(args: &[String]) -> Shape {
        let mut shape = Shape {
            key_type: String::new(),
            prefixes: Vec::new(),
            stopwords: None,
            attributes: Vec::new(),
        };
        let mut words = args.iter().map(String::as_str).peekable();
        while let Some(word) = words.next() {
            match word {
                "ON" => shape.key_type = words.next().unwrap_or_default().to_string(),
                "PREFIX" | "STOPWORDS" => {
                    let n: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                    let list: Vec<String> = words.by_ref().take(n).map(str::to_string).collect();
                    if word == "PREFIX" {
                        shape.prefixes = list;
                    } else {
                        shape.stopwords = Some(list);
                    }
                }
                "SCHEMA" => break,
                _ => {}
            }
        }
        while let Some(path) = words.next() {
            let _as = words.next();
            let name = words.next().unwrap_or_default().to_string();
            let kind = words.next().unwrap_or_default().to_string();
            let mut options = Vec::new();
            while let Some(&option) = words.peek() {
                if option.starts_with('$') {
                    break;
                }
                options.push(option.to_string());
                words.next();
            }
            if kind == "TAG" {
                // A TAG field on JSON reports its (unused) separator as empty.
                options.extend(["SEPARATOR".to_string(), String::new()]);
            }
            options.sort();
            shape
                .attributes
                .push((path.to_string(), name, kind, options));
        }
        shape
    }

    /// The shape of a live index from its `FT.INFO` reply; `None` when the reply lacks a part.
    fn of_info(info: &[(String, Value)]) -> Option<Shape> {
        let get = |name: &str| info.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let definition = pairs(get("index_definition")?);
        let text = |v: &Value| redis::from_redis_value_ref::<String>(v).ok();
        let key_type = definition
            .iter()
            .find(|(k, _)| k == "key_type")
            .and_then(|(_, v)| text(v))?;
        let prefixes = definition
            .iter()
            .find(|(k, _)| k == "prefixes")
            .and_then(|(_, v)| redis::from_redis_value_ref::<Vec<String>>(v).ok())?;
        let stopwords = get("stopwords_list")
            .map(|v| redis::from_redis_value_ref::<Vec<String>>(v).unwrap_or_default());
        let mut attributes = Vec::new();
        for attribute in redis::from_redis_value_ref::<Vec<Value>>(get("attributes")?).ok()? {
            let words: Vec<String> = redis::from_redis_value_ref(&attribute).ok()?;
            let mut path = None;
            let mut name = None;
            let mut kind = None;
            let mut options = Vec::new();
            let mut words = words.into_iter();
            while let Some(word) = words.next() {
                match word.as_str() {
                    "identifier" => path = words.next(),
                    "attribute" => name = words.next(),
                    "type" => kind = words.next(),
                    "WEIGHT" => {
                        // The default weight is implied; any other is a difference.
                        let weight = words.next().unwrap_or_default();
                        if weight != "1" {
                            options.extend(["WEIGHT".to_string(), weight]);
                        }
                    }
                    "SEPARATOR" => {
                        options.push(word);
                        options.push(words.next().unwrap_or_default());
                    }
                    _ => options.push(word),
                }
            }
            // `FT.INFO` adds `UNF` to every sortable field of a JSON index.
            options.retain(|o| o != "UNF");
            options.sort();
            attributes.push((path?, name?, kind?, options));
        }
        Some(Shape {
            key_type,
            prefixes,
            stopwords,
            attributes,
        })
    }
}

/// A RESP2 list of name/value pairs (or a RESP3 map) as pairs.
fn pairs(value: &Value) -> Vec<(String, Value)> {
    match value {
        Value::Array(items) | Value::Set(items) => items
            .chunks(2)
            .filter_map(|pair| match pair {
                [name, value] => redis::from_redis_value_ref::<String>(name)
                    .ok()
                    .map(|name| (name, value.clone())),
                _ => None,
            })
            .collect(),
        Value::Map(map) => map
            .iter()
            .filter_map(|(k, v)| {
                redis::from_redis_value_ref::<String>(k)
                    .ok()
                    .map(|k| (k, v.clone()))
            })
            .collect(),
        _ => Vec::new(),
    }
}
