//! [`CountMinSketch`]: how often was an item counted, on RedisBloom's `CMS.*`.

use std::borrow::Borrow;

use serde::Serialize;

use super::structure::{Structure, invalid, item_text};
use super::{DEFAULT_SKETCH_ERROR, DEFAULT_SKETCH_PROBABILITY};
use crate::db::Db;
use crate::error::Result;
use crate::keys::structure_key;

/// A count-min sketch of items of type `T`: [`incr_by`](CountMinSketch::incr_by) counts an
/// item, [`query`](CountMinSketch::query) estimates its count. An estimate is never below
/// the true count, and overshoots by at most `error × total count` except with probability
/// `probability` (the two numbers of [`reserve`](CountMinSketch::reserve), which uses
/// `CMS.INITBYPROB`: a sketch of `ceil(2 / error)` counters by `ceil(log2(1 /
/// probability))` rows).
///
/// The first `incr_by` on a name with no sketch creates one with [`DEFAULT_SKETCH_ERROR`] and
/// [`DEFAULT_SKETCH_PROBABILITY`]; a `query` of a missing sketch answers 0 and creates
/// nothing. RedisBloom's counters are 32-bit: an increment that would bring an item's
/// estimate to 4,294,967,295 or more is [`Error::Overflow`](crate::Error::Overflow) (kind
/// `u32`) and changes nothing (RedisBloom itself writes first and reports after; the
/// library script checks first).
///
/// ```no_run
/// # async fn demo(db: &rapyer::Db) -> rapyer::Result<()> {
/// use rapyer::CountMinSketch;
///
/// let views = CountMinSketch::<str>::named(db, "page-views");
/// views.reserve(0.0001, 0.001).await?;
/// views.incr_by("/home", 1).await?;
/// let about_home: u64 = views.query("/home").await?;
/// # Ok(()) }
/// ```
pub struct CountMinSketch<T: ?Sized>(Structure<T>);

impl<T: ?Sized> Clone for CountMinSketch<T> {
    fn clone(&self) -> Self {
        CountMinSketch(self.0.clone())
    }
}

impl<T: ?Sized> std::fmt::Debug for CountMinSketch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.debug("CountMinSketch", f)
    }
}

impl<T: Serialize + ?Sized> CountMinSketch<T> {
    /// The sketch named `name` in `db`'s namespace, at `{namespace}_rapyer:cms:{name}`.
    /// Nothing is sent.
    pub fn named(db: &Db, name: &str) -> CountMinSketch<T> {
        CountMinSketch(Structure::at(
            db,
            structure_key(db.namespace(), "cms", name),
        ))
    }

    /// The sketch's full key.
    pub fn key(&self) -> &str {
        &self.0.key
    }

    /// Creates the sketch (`CMS.INITBYPROB`): estimates overshoot by at most `error` × the
    /// total count, except with probability `probability`. `Ok(false)` when a sketch is
    /// already there (its settings are kept). Both numbers lie strictly between 0 and 1, as
    /// RedisBloom requires; anything else is [`Error::InvalidOp`](crate::Error::InvalidOp)
    /// before anything is sent.
    /// The sketch is allocated at once: 4 bytes × `ceil(2 / error)` × `ceil(log2(1 /
    /// probability))` (80 kB for 0.001 and 0.001, 1.9 GB for 1e-7 and 1e-7).
    pub async fn reserve(&self, error: f64, probability: f64) -> Result<bool> {
        check_sketch(&self.0.key, error, probability)?;
        let args = [
            "cms.reserve".to_string(),
            format!("{error:?}"),
            format!("{probability:?}"),
        ];
        self.0.run::<i64>(&args).await.map(|created| created == 1)
    }

    /// Counts `item` `by` more times (at least 1); the item's new estimate.
    pub async fn incr_by<Q>(&self, item: &Q, by: u32) -> Result<u64>
    where
        T: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        Ok(self
            .incr_many([(item, by)])
            .await?
            .first()
            .copied()
            .unwrap_or(0))
    }

    /// Counts every item by its number in one all-or-nothing step; each item's new
    /// estimate, in order (an item named twice counts twice). No items sends nothing.
    pub async fn incr_many<'a, Q>(
        &self,
        items: impl IntoIterator<Item = (&'a Q, u32)>,
    ) -> Result<Vec<u64>>
    where
        T: Borrow<Q>,
        Q: Serialize + ?Sized + 'a,
    {
        let mut args = vec![
            "cms.incr".to_string(),
            format!("{DEFAULT_SKETCH_ERROR:?}"),
            format!("{DEFAULT_SKETCH_PROBABILITY:?}"),
        ];
        for (item, by) in items {
            if by == 0 || by == u32::MAX {
                return Err(invalid(
                    &self.0.key,
                    format!(
                        "a count-min sketch counts an item by 1 to {}, not {by}",
                        u32::MAX - 1
                    ),
                ));
            }
            args.push(item_text(&self.0.key, item)?);
            args.push(by.to_string());
        }
        if args.len() == 3 {
            return Ok(Vec::new());
        }
        self.0.run(&args).await
    }

    /// The estimated count of `item` (0 for a sketch that does not exist).
    pub async fn query<Q>(&self, item: &Q) -> Result<u64>
    where
        T: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        Ok(self.query_many([item]).await?.first().copied().unwrap_or(0))
    }

    /// The estimated count of each item, in one step. No items sends nothing.
    pub async fn query_many<'a, Q>(
        &self,
        items: impl IntoIterator<Item = &'a Q>,
    ) -> Result<Vec<u64>>
    where
        T: Borrow<Q>,
        Q: Serialize + ?Sized + 'a,
    {
        let args = self.0.texts("cms.query", items)?;
        if args.len() == 1 {
            return Ok(Vec::new());
        }
        self.0.run(&args).await
    }
}

/// Refuses a sketch's error and probability outside what RedisBloom accepts.
fn check_sketch(key: &str, error: f64, probability: f64) -> Result<()> {
    if error > 0.0 && error < 1.0 && probability > 0.0 && probability < 1.0 {
        return Ok(());
    }
    Err(invalid(
        key,
        format!(
            "a count-min sketch's error and probability lie strictly between 0 and 1, not \
             {error} and {probability}"
        ),
    ))
}
