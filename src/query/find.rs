//! Running a query: `Model::find(&db, expr)` and what it returns.

use std::marker::PhantomData;

use redis::Value;

use super::expr::{Expr, FieldName};
use super::index::{index_name, schema};
use super::schema::Indexable;
use crate::crud;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::model::AtomicModel;

/// Results fetched per `FT.SEARCH` page.
const PAGE: usize = 1000;
/// Keys per `DEL` when deleting matches.
const DELETE_CHUNK: usize = 500;

/// A matching key, with its document when the page asked for content.
type Hit = (String, Option<Vec<u8>>);

/// A sort order for [`Find::sort_by`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
/// [`Error::Deserialize`] naming its key, not skipped. A document whose indexed field has
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
            .field("query", &self.expr.to_query())
            .field("sort", &self.sort)
            .field("limit", &self.window)
            .finish()
    }
}

impl<'db, M: AtomicModel + Indexable> Find<'db, M> {
    pub(crate) fn new(db: &'db Db, expr: Expr) -> Find<'db, M> {
        Find {
            db,
            expr,
            sort: None,
            window: None,
            _model: PhantomData,
        }
    }

    /// Sorts by a field indexed `index(sortable)`; any other field is
    /// [`Error::InvalidQuery`] when the query runs.
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
        if self.expr == Expr::Nothing {
            return Ok(0);
        }
        let (total, _) = self.page(0, 0, false).await?;
        Ok(total)
    }

    /// The first match (after sorting), if any.
    pub async fn first(self) -> Result<Option<M>> {
        let offset = self.window.map_or(0, |(offset, _)| offset);
        let mut found = self.limit(offset, 1).all().await?;
        Ok(found.pop())
    }

    /// Every match (within the limit), in order.
    pub async fn all(self) -> Result<Vec<M>> {
        let hits = self.collect(true).await?;
        hits.into_iter()
            .map(|(key, json)| match json {
                Some(json) => crud::decode(&key, &json),
                None => Err(Error::NotFound { key }),
            })
            .collect()
    }

    /// The keys of every match (within the limit).
    pub async fn keys(self) -> Result<Vec<String>> {
        Ok(self
            .collect(false)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    /// Deletes every match (within the limit); returns how many were deleted.
    pub async fn delete(self) -> Result<usize> {
        let db = self.db;
        let keys = self.keys().await?;
        let mut deleted = 0;
        for chunk in keys.chunks(DELETE_CHUNK) {
            deleted += crud::delete_count(db, chunk.to_vec(), "delete").await?;
        }
        Ok(deleted)
    }

    /// The matches' keys and, with `content`, their documents, page by page.
    async fn collect(&self, content: bool) -> Result<Vec<Hit>> {
        if self.expr == Expr::Nothing {
            return Ok(Vec::new());
        }
        let (offset, wanted) = self.window.unwrap_or((0, usize::MAX));
        let mut out = Vec::new();
        let mut at = offset;
        while out.len() < wanted {
            let n = PAGE.min(wanted - out.len());
            let (total, hits) = self.page(at, n, content).await?;
            let got = hits.len();
            out.extend(hits);
            at += got;
            if got < n || at >= total {
                break;
            }
        }
        Ok(out)
    }

    /// One `FT.SEARCH` page: the total number of matches and the hits.
    async fn page(&self, offset: usize, n: usize, content: bool) -> Result<(usize, Vec<Hit>)> {
        let index = index_name::<M>(self.db);
        let mut cmd = redis::cmd("FT.SEARCH");
        cmd.arg(&index).arg(self.expr.to_query());
        if let Some((field, order)) = &self.sort {
            self.check_sortable(field)?;
            let order = match order {
                Order::Asc => "ASC",
                Order::Desc => "DESC",
            };
            cmd.arg("SORTBY").arg(field).arg(order);
        }
        if content {
            cmd.arg("RETURN").arg(1).arg("$");
        } else {
            cmd.arg("NOCONTENT");
        }
        cmd.arg("LIMIT").arg(offset).arg(n).arg("DIALECT").arg(2);
        let reply: Value = self
            .db
            .query("FT.SEARCH", 0, &cmd)
            .await
            .map_err(|e| search_error(&index, e))?;
        parse_page(reply, content)
    }

    fn check_sortable(&self, field: &str) -> Result<()> {
        let sortable = schema::<M>()
            .iter()
            .any(|f| f.name == field && f.options.sortable);
        if sortable {
            return Ok(());
        }
        Err(Error::InvalidQuery {
            message: format!("`{field}` is not sortable; index it with #[rapyer(index(sortable))]"),
        })
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

/// `[total, key, ["$", json], key, …]` (or keys only with NOCONTENT).
fn parse_page(reply: Value, content: bool) -> Result<(usize, Vec<Hit>)> {
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
        let key: String = redis::from_redis_value(key).map_err(|e| bad(&e.to_string()))?;
        let json = if content {
            match items.next() {
                Some(Value::Array(fields)) => fields.into_iter().nth(1).and_then(|v| match v {
                    Value::BulkString(bytes) => Some(bytes),
                    _ => None,
                }),
                _ => return Err(bad("no document")),
            }
        } else {
            None
        };
        hits.push((key, json));
    }
    Ok((total, hits))
}
