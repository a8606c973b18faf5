//! Running a query: `Model::find(&db, expr)` and what it returns.

use std::marker::PhantomData;

use redis::Value;

use super::expr::{Expr, FieldName};
use super::index::{index_name, schema};
use super::merge::{self, Hit};
use super::schema::Indexable;
use super::shard::{Shard, is_not_served};
use crate::codec::Document;
use crate::db::Db;
use crate::documents::{self, Lossy};
use crate::error::{Error, Result};
use crate::keys::{KeySettings, read_ttl};
use crate::partial::{Pick, Pickable};

/// Results fetched per `FT.SEARCH` page.
const PAGE: usize = 1000;
/// Keys per `DEL` when deleting matches.
const DELETE_CHUNK: usize = 500;

/// A sort order for [`Find::sort_by`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Order {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// A query on the models of type `M`, built by `M::find(&db, expr)`.
///
/// [`all`](Find::all) returns every match, paging through the server's results: there is
/// no silent cap. A matching document that does not decode into `M` is an
/// [`Error::Deserialize`] naming its key, not skipped; [`all_lossy`](Find::all_lossy)
/// returns the matches that decode and one error per match that does not. A document whose indexed field has
/// the wrong JSON type is left out of the index by RediSearch itself, so no query finds it.
#[must_use = "a query does nothing until all, first, count or delete is awaited"]
pub struct Find<'db, M> {
    db: &'db Db,
    expr: Expr,
    sort: Option<(String, Order)>,
    window: Option<(usize, usize)>,
    _model: PhantomData<fn() -> M>,
}

impl<M> std::fmt::Debug for Find<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Find")
            .field("query", &self.expr)
            .field("sort", &self.sort)
            .field("limit", &self.window)
            .finish()
    }
}

impl<'db, M: KeySettings + Document + Indexable> Find<'db, M> {
    pub(crate) fn new(db: &'db Db, expr: Expr) -> Find<'db, M> {
        Find {
            db,
            expr,
            sort: None,
            window: None,
            _model: PhantomData,
        }
    }

    /// Sorts by any indexed field, NUMERIC, TAG or TEXT: RediSearch sorts by fields not
    /// declared `index(sortable)` too, which only makes sorting by them faster (the index
    /// keeps their values). A name that is not an indexed field of `M` is
    /// [`Error::InvalidQuery`] when the query runs, and so, on a Redis Cluster, is a field
    /// not declared `index(sortable)` (there each shard sorts only by values its index keeps).
    ///
    /// Matches with equal values come in an unspecified order: one server orders them by
    /// its internal document id (indexing order; reversed for [`Order::Desc`]), a cluster by
    /// key. A document without the field comes last in both orders.
    pub fn sort_by(mut self, field: &impl FieldName, order: Order) -> Self {
        self.sort = Some((field.field_name().to_string(), order));
        self
    }

    /// Skips `offset` matches and returns at most `n`, exactly.
    pub fn limit(mut self, offset: usize, n: usize) -> Self {
        self.window = Some((offset, n));
        self
    }

    /// The number of matches (the limit is not applied).
    pub async fn count(self) -> Result<usize> {
        // A refused condition is reported before anything is sent.
        let query = self.expr.to_query()?;
        if self.expr == Expr::Nothing {
            return Ok(0);
        }
        let shards = Shard::all(self.db, &index_name::<M>(self.db)).await?;
        let totals = futures_util::future::try_join_all(
            shards
                .iter()
                .map(|shard| self.page(shard, &query, 0, 0, false)),
        )
        .await?;
        Ok(totals.into_iter().map(|(total, _)| total).sum())
    }

    /// The first match (after sorting), if any.
    pub async fn first(self) -> Result<Option<M>> {
        let offset = self.window.map_or(0, |(offset, _)| offset);
        let mut found = self.limit(offset, 1).all().await?;
        Ok(found.pop())
    }

    /// Every match (within the limit), in order.
    ///
    /// The search returns keys; the documents are then read with `JSON.MGET` in chunks
    /// (measured faster than having the search return them), re-arming their expiry for a
    /// `refresh_on_read` model. A match deleted in between is simply gone. The first match
    /// that does not decode fails the call: [`all_lossy`](Find::all_lossy) returns the others.
    pub async fn all(self) -> Result<Vec<M>> {
        self.all_lossy().await?.into_strict()
    }

    /// Every match (within the limit), in order, as [`all`](Find::all) reads them, but a
    /// match that does not decode (or whose key holds another Redis type by then) is one
    /// typed error in [`Lossy::failures`] instead of failing the call.
    pub async fn all_lossy(self) -> Result<Lossy<M>> {
        let db = self.db;
        let keys = self.keys().await?;
        let mut out = Lossy::default();
        for chunk in keys.chunks(PAGE) {
            for read in documents::get_many_lossy::<M>(db, chunk, read_ttl::<M>()).await? {
                out.push(read);
            }
        }
        Ok(out)
    }

    /// Chosen fields of every match (within the limit), in order, without the whole
    /// documents: `User::find(&db, expr).all_fields(|f| (f.name, f.age))` gives
    /// `Vec<(String, i64)>`. See [`get_fields`](crate::AtomicModel::get_fields).
    ///
    /// The search returns keys; the fields are then read with one `JSON.MGET` per field, all
    /// in one pipeline per chunk of 1,000 matches (per cluster slot, all at once), which
    /// measured as fast as having the search return them (`RETURN`), keeps their JSON types,
    /// and works on a cluster, where the search returns no document content. A match deleted
    /// in between is simply gone; the first field that does not decode fails the call.
    pub async fn all_fields<P: Pick>(
        self,
        pick: impl FnOnce(M::Paths) -> P,
    ) -> Result<Vec<P::Output>>
    where
        M: Pickable,
    {
        let pick = pick(M::paths(&crate::partial::Field::root()));
        let db = self.db;
        let keys = self.keys().await?;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(PAGE) {
            out.extend(crate::partial::get_many(db, chunk, read_ttl::<M>(), &pick).await?);
        }
        Ok(out)
    }

    /// The keys of every match (within the limit), paging through the search results.
    pub async fn keys(self) -> Result<Vec<String>> {
        // A refused condition is reported before anything is sent (a refused `delete`
        // deletes nothing).
        let query = self.expr.to_query()?;
        if self.expr == Expr::Nothing {
            return Ok(Vec::new());
        }
        let (offset, wanted) = self.window.unwrap_or((0, usize::MAX));
        let shards = Shard::all(self.db, &index_name::<M>(self.db)).await?;
        if let [one] = shards.as_slice() {
            let (_, hits) = self.node_matches(one, &query, offset, wanted).await?;
            return Ok(hits.into_iter().map(|hit| hit.key).collect());
        }
        if self.sort.is_some() {
            // Each shard's first `offset + n` in the sort order hold the merged window.
            let top = offset.saturating_add(wanted);
            let found = futures_util::future::try_join_all(
                shards
                    .iter()
                    .map(|shard| self.node_matches(shard, &query, 0, top)),
            )
            .await?;
            let descending = matches!(self.sort, Some((_, Order::Desc)));
            return Ok(merge::sorted(found, descending, offset, wanted));
        }
        if offset == 0 && wanted == usize::MAX {
            let found = futures_util::future::try_join_all(
                shards
                    .iter()
                    .map(|shard| self.node_matches(shard, &query, 0, usize::MAX)),
            )
            .await?;
            return Ok(merge::unsorted(found));
        }
        // Unsorted with a window: shard after shard in the primaries' order, skipping whole
        // shards by their totals, so only the window's keys travel.
        let (mut skip, mut wanted) = (offset, wanted);
        let mut out = Vec::new();
        for shard in &shards {
            if wanted == 0 {
                break;
            }
            let (total, hits) = self.node_matches(shard, &query, skip, wanted).await?;
            skip = skip.saturating_sub(total);
            wanted -= hits.len();
            out.extend(hits.into_iter().map(|hit| hit.key));
        }
        Ok(out)
    }

    /// The matches on one shard from `offset`, at most `wanted`, paging through
    /// `FT.SEARCH`, with the shard's total number of matches.
    async fn node_matches(
        &self,
        shard: &Shard,
        query: &str,
        offset: usize,
        wanted: usize,
    ) -> Result<(usize, Vec<Hit>)> {
        let sort_keys = shard.is_cluster_node() && self.sort.is_some();
        let mut out = Vec::new();
        let mut at = offset;
        let mut total = 0;
        while out.len() < wanted {
            let n = PAGE.min(wanted - out.len());
            let (all, hits) = self.page(shard, query, at, n, sort_keys).await?;
            total = all;
            let got = hits.len();
            out.extend(hits);
            at += got;
            if at >= total {
                break;
            }
            if got < n {
                // Matches remain but the server stopped returning them: never a silent cap.
                return Err(Error::InvalidQuery {
                    message: format!(
                        "the search returned {at} of {total} matches; RediSearch stops paging \
                         at MAXSEARCHRESULTS (raise it with FT.CONFIG SET MAXSEARCHRESULTS)"
                    ),
                });
            }
        }
        Ok((total, out))
    }

    /// Deletes every match (within the limit); returns how many were deleted. Matches are
    /// deleted in chunks of 500, each all or nothing: a match whose key holds another Redis
    /// type by then is `Error::TypeMismatch`, and its chunk is not deleted.
    pub async fn delete(self) -> Result<usize> {
        let db = self.db;
        let keys = self.keys().await?;
        let mut deleted = 0;
        for chunk in keys.chunks(DELETE_CHUNK) {
            let structures = crate::keys::structures_of::<M>();
            deleted += documents::delete_count(db, chunk.to_vec(), &structures).await?;
        }
        Ok(deleted)
    }

    /// One `FT.SEARCH` page on `shard`: the shard's total number of matches and the matching
    /// keys, each with its sort key when `sort_keys`.
    ///
    /// On a cluster, a primary that refuses its copy's name (the name's slot is being
    /// migrated away, or has moved since the slot map was read) is asked under the name it
    /// answers for ([`Shard::settled`]): its own documents, those of the migrating slot it
    /// still holds included, are in that copy, and the target's copy has those already
    /// moved. A primary that answers `Unknown index name` while `init` has run gets the index
    /// (see [`Db::init`]) and is asked once more.
    async fn page(
        &self,
        shard: &Shard,
        query: &str,
        offset: usize,
        n: usize,
        sort_keys: bool,
    ) -> Result<(usize, Vec<Hit>)> {
        let reply = match self.search(shard, query, (offset, n), sort_keys).await {
            Err(Error::Redis { source, .. })
                if shard.is_cluster_node() && is_not_served(&source) =>
            {
                match shard.settled(self.db).await? {
                    Some(settled) if settled != *shard => {
                        self.search(&settled, query, (offset, n), sort_keys).await
                    }
                    _ => Err(Error::redis("FT.SEARCH", source)),
                }
            }
            reply => reply,
        };
        parse_page(reply?, sort_keys)
    }

    /// One `FT.SEARCH` on `shard` under its name for the matches `offset..offset + n`,
    /// re-creating a missing cluster copy once.
    async fn search(
        &self,
        shard: &Shard,
        query: &str,
        (offset, n): (usize, usize),
        sort_keys: bool,
    ) -> Result<Value> {
        let index = shard.index();
        let mut cmd = redis::cmd("FT.SEARCH");
        cmd.arg(index).arg(query);
        if let Some((field, order)) = &self.sort {
            self.check_indexed(field)?;
            let order = match order {
                Order::Asc => "ASC",
                Order::Desc => "DESC",
            };
            cmd.arg("SORTBY").arg(field).arg(order);
        }
        cmd.arg("NOCONTENT");
        if sort_keys {
            cmd.arg("WITHSORTKEYS");
        }
        cmd.arg("LIMIT").arg(offset).arg(n).arg("DIALECT").arg(2);
        let reply = match shard.query::<Value>(self.db, "FT.SEARCH", &cmd).await {
            Err(e)
                if shard.is_cluster_node()
                    && super::index::is_missing_index(&e)
                    && self.db.recheck_index_on::<M>(shard).await? =>
            {
                shard.query::<Value>(self.db, "FT.SEARCH", &cmd).await
            }
            reply => reply,
        };
        reply.map_err(|e| search_error(index, e))
    }

    fn check_indexed(&self, field: &str) -> Result<()> {
        let Some(declared) = schema::<M>().into_iter().find(|f| f.name == field) else {
            return Err(Error::InvalidQuery {
                message: format!(
                    "`{field}` is not an indexed field; index it with #[rapyer(index)]"
                ),
            });
        };
        // Verified on the pinned RediSearch: on a cluster node it reads no document content
        // (`RETURN` comes back empty), so sorting by a field that is not kept in the index
        // would leave each shard's matches unsorted, silently.
        if self.db.is_cluster() && !declared.options.sortable {
            return Err(Error::InvalidQuery {
                message: format!(
                    "on a Redis Cluster, sort_by needs a field declared index(sortable); \
                     `{field}` is not"
                ),
            });
        }
        Ok(())
    }
}

fn search_error(index: &str, e: redis::RedisError) -> Error {
    if super::index::is_missing_index(&e) {
        return Error::InvalidQuery {
            message: format!("there is no index {index}: call db.init::<Model>() first"),
        };
    }
    Error::redis("FT.SEARCH", e)
}

/// `[total, key, key, …]` (a NOCONTENT reply), or with `sort_keys` `[total, key, sort key,
/// key, sort key, …]` (WITHSORTKEYS).
fn parse_page(reply: Value, sort_keys: bool) -> Result<(usize, Vec<Hit>)> {
    let bad = |what: &str| {
        Error::redis(
            "FT.SEARCH",
            redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "unexpected FT.SEARCH reply",
                what.to_string(),
            )),
        )
    };
    let Value::Array(items) = reply else {
        return Err(bad("not an array"));
    };
    let mut items = items.into_iter();
    let total = match items.next() {
        Some(Value::Int(n)) => usize::try_from(n).unwrap_or(0),
        _ => return Err(bad("no total")),
    };
    let mut hits = Vec::new();
    while let Some(key) = items.next() {
        let key = redis::from_redis_value::<String>(key).map_err(|e| bad(&e.to_string()))?;
        let sort_key = if sort_keys {
            match items.next() {
                Some(value) => merge::SortKey::parse(value),
                None => return Err(bad("a key without its sort key")),
            }
        } else {
            merge::SortKey::Missing
        };
        hits.push(Hit { key, sort_key });
    }
    Ok((total, hits))
}
