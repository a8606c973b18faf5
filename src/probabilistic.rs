//! Probabilistic structures on RedisBloom: [`BloomFilter`] (is this item maybe in the set,
//! or certainly not?) and [`CountMinSketch`] (about how many times was this item counted?),
//! each a key of its own under a name in the handle's namespace.
//!
//! Both live in rapyer's reserved key space, `{namespace}_rapyer:bloom:{name}` and
//! `{namespace}_rapyer:cms:{name}`: no model id, prefix or namespace reaches them, and any
//! name (quotes, braces, `:`, a newline, emoji, empty) names exactly one structure. An item
//! is stored as its canonical JSON text (object members in sorted order), so the same value
//! is the same item whatever its Rust type (`"a"` as a `String` or a `&str`, a map whatever
//! its order). Each call is one library script that checks the key's type first: a key of
//! another type is [`Error::TypeMismatch`] and is never touched.
//!
//! They need the RedisBloom module (built into Redis 8, shipped by redis-stack, cached by
//! `cargo xtask redis`); on a server without it every call is [`Error::Script`] saying so.

use std::borrow::Borrow;
use std::marker::PhantomData;

use serde::Serialize;

use crate::codec::{self, Document};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::keys::{KeySettings, full_key, structure_key};
use crate::script::failure::document_error;
use crate::script::library;

/// The error rate of a filter that [`BloomFilter::add`] creates (RedisBloom's default).
pub const DEFAULT_ERROR_RATE: f64 = 0.01;
/// The capacity of a filter that [`BloomFilter::add`] creates (RedisBloom's default); it
/// grows by stacking sub-filters when more items are added.
pub const DEFAULT_CAPACITY: u64 = 100;
/// The error of a sketch that [`CountMinSketch::incr_by`] creates: estimates overshoot by
/// at most 0.1% of the sketch's total count…
pub const DEFAULT_SKETCH_ERROR: f64 = 0.001;
/// …except with this probability (a sketch of 2,000 × 10 counters, 80 kB).
pub const DEFAULT_SKETCH_PROBABILITY: f64 = 0.001;

/// A Bloom filter of items of type `T`: [`add`](BloomFilter::add) puts an item in;
/// [`contains`](BloomFilter::contains) answers `false` only for an item never added, and
/// `true` for every item added and, at about the filter's error rate, for others.
///
/// A filter never forgets: there is no removal. A filter is created by
/// [`reserve`](BloomFilter::reserve) with its error rate and expected number of items, or,
/// when the first `add` finds none, with RedisBloom's defaults ([`DEFAULT_ERROR_RATE`],
/// [`DEFAULT_CAPACITY`], growing as needed: each added layer is larger and stricter, so the
/// rate holds, at some cost in speed). [`contains`](BloomFilter::contains) on a filter that
/// does not exist answers `false` and creates nothing.
///
/// ```no_run
/// # async fn demo(db: &rapyer::Db) -> rapyer::Result<()> {
/// use rapyer::BloomFilter;
///
/// let signups = BloomFilter::<String>::named(db, "signups");
/// signups.reserve(0.001, 1_000_000).await?; // false when it already exists
/// signups.add("ann@example.com").await?;
/// assert!(signups.contains("ann@example.com").await?);
/// let seen = signups.contains_many(["bob@example.com", "ann@example.com"]).await?;
/// # Ok(()) }
/// ```
pub struct BloomFilter<T: ?Sized>(Structure<T>);

impl<T: ?Sized> Clone for BloomFilter<T> {
    fn clone(&self) -> Self {
        BloomFilter(self.0.clone())
    }
}

impl<T: ?Sized> std::fmt::Debug for BloomFilter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.debug("BloomFilter", f)
    }
}

impl<T: Serialize + ?Sized> BloomFilter<T> {
    /// The filter named `name` in `db`'s namespace, at `{namespace}_rapyer:bloom:{name}`.
    /// Nothing is sent.
    pub fn named(db: &Db, name: &str) -> BloomFilter<T> {
        BloomFilter::at(db, structure_key(db.namespace(), "bloom", name))
    }

    /// The Bloom index of the field `field` (its JSON name) of the model `M`, at
    /// `{namespace}_rapyer:bloom-field:{Prefix}:{field}`: the filter that
    /// `#[rapyer(bloom)]` on that field keeps and `maybe_exists_by_<field>` asks. Reserve it
    /// before the first save to choose its error rate and capacity; otherwise the first
    /// save creates it with the defaults.
    ///
    /// Every `save`, `insert_many` and [`LockGuard::save`](crate::LockGuard::save) adds
    /// the field's value (its canonical JSON text) to the filter *before* writing the
    /// document, in a step of its own: a save that then fails leaves one more false
    /// positive, never a stored value the filter denies, and on a cluster the filter's key
    /// lives in a slot of its own, which no script of the document's slot may touch.
    /// Writes that bypass a whole save (field handles, atomic blocks, `ServerOps`, writes
    /// by other clients) do not reach the filter, and `delete` removes nothing from it: a
    /// Bloom filter never forgets.
    pub fn of_field<M: crate::AtomicModel>(db: &Db, field: &str) -> BloomFilter<T> {
        BloomFilter::at(db, field_filter_key(db.namespace(), M::PREFIX, field))
    }

    /// The filter at the full key `key`.
    fn at(db: &Db, key: String) -> BloomFilter<T> {
        BloomFilter(Structure::at(db, key))
    }

    /// The filter's full key.
    pub fn key(&self) -> &str {
        &self.0.key
    }

    /// Creates the filter for `capacity` items at a false-positive rate of `error_rate`;
    /// `Ok(false)` when a filter is already there (its settings are kept).
    ///
    /// RedisBloom allocates the whole filter at once, about `capacity × 1.44 × log2(1 /
    /// error_rate)` bits (1.2 MB for a million items at 1%). `error_rate` must lie strictly
    /// between 0 and 1 and `capacity` be at least 1, as RedisBloom requires; anything else is
    /// [`Error::InvalidOp`] before anything is sent.
    pub async fn reserve(&self, error_rate: f64, capacity: u64) -> Result<bool> {
        if !(error_rate > 0.0 && error_rate < 1.0) {
            return Err(self.invalid(format!(
                "a Bloom filter's error rate lies strictly between 0 and 1, not {error_rate}"
            )));
        }
        if capacity == 0 || capacity > i64::MAX as u64 {
            return Err(self.invalid(format!(
                "a Bloom filter's capacity is 1 to {}, not {capacity}",
                i64::MAX
            )));
        }
        let args = [
            "bf.reserve".to_string(),
            format!("{error_rate:?}"),
            capacity.to_string(),
        ];
        self.0.run::<i64>(&args).await.map(|created| created == 1)
    }

    /// Adds `item`; `true` when it was certainly not in the filter before, `false` when it
    /// maybe was. Creates the filter with the defaults when there is none.
    pub async fn add<Q>(&self, item: &Q) -> Result<bool>
    where
        T: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        Ok(self
            .add_many([item])
            .await?
            .first()
            .copied()
            .unwrap_or(false))
    }

    /// Adds every item in one step; for each, whether it was certainly new. No items sends
    /// nothing.
    pub async fn add_many<'a, Q>(&self, items: impl IntoIterator<Item = &'a Q>) -> Result<Vec<bool>>
    where
        T: Borrow<Q>,
        Q: Serialize + ?Sized + 'a,
    {
        self.each("bf.add", items).await
    }

    /// Whether `item` is maybe in the filter (`false`: certainly never added).
    pub async fn contains<Q>(&self, item: &Q) -> Result<bool>
    where
        T: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        Ok(self
            .contains_many([item])
            .await?
            .first()
            .copied()
            .unwrap_or(false))
    }

    /// For each item, whether it is maybe in the filter, in one step. No items sends
    /// nothing.
    pub async fn contains_many<'a, Q>(
        &self,
        items: impl IntoIterator<Item = &'a Q>,
    ) -> Result<Vec<bool>>
    where
        T: Borrow<Q>,
        Q: Serialize + ?Sized + 'a,
    {
        self.each("bf.exists", items).await
    }

    /// Runs `op` over the items' texts; one answer per item.
    async fn each<'a, Q: Serialize + ?Sized + 'a>(
        &self,
        op: &str,
        items: impl IntoIterator<Item = &'a Q>,
    ) -> Result<Vec<bool>> {
        self.each_text(self.0.texts(op, items)?).await
    }

    /// Runs `args` (the operation, then the items' texts); one answer per item.
    async fn each_text(&self, args: Vec<String>) -> Result<Vec<bool>> {
        if args.len() == 1 {
            return Ok(Vec::new());
        }
        let answers: Vec<i64> = self.0.run(&args).await?;
        Ok(answers.into_iter().map(|a| a == 1).collect())
    }

    fn invalid(&self, message: String) -> Error {
        invalid(&self.0.key, message)
    }
}

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
/// estimate to 4,294,967,295 or more is [`Error::Overflow`] (kind `u32`) and changes nothing
/// (RedisBloom itself writes first and reports after; the library script checks first).
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
    /// RedisBloom requires; anything else is [`Error::InvalidOp`] before anything is sent.
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

/// The key of a RedisBloom structure, and the one way its operations run.
struct Structure<T: ?Sized> {
    db: Db,
    key: String,
    item: PhantomData<fn(&T)>,
}

impl<T: ?Sized> Clone for Structure<T> {
    fn clone(&self) -> Self {
        Structure::at(&self.db, self.key.clone())
    }
}

impl<T: ?Sized> Structure<T> {
    fn at(db: &Db, key: String) -> Structure<T> {
        Structure {
            db: db.clone(),
            key,
            item: PhantomData,
        }
    }

    fn debug(&self, name: &str, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(name)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }

    /// The arguments of `op` over `items`: the operation, then each item's JSON text.
    fn texts<'a, Q: Serialize + ?Sized + 'a>(
        &self,
        op: &str,
        items: impl IntoIterator<Item = &'a Q>,
    ) -> Result<Vec<String>> {
        let mut args = vec![op.to_string()];
        for item in items {
            args.push(item_text(&self.key, item)?);
        }
        Ok(args)
    }

    /// Runs the library's script with `args` on this structure's key.
    async fn run<R: redis::FromRedisValue>(&self, args: &[String]) -> Result<R> {
        let keys = [self.key.clone()];
        self.db
            .run_lua(&library::PROBABILISTIC, &keys, args)
            .await
            .map_err(|e| structure_error(e, &self.key))
    }
}

/// [`Error::InvalidOp`] about the structure at `key`, refused before anything was sent.
fn invalid(key: &str, message: String) -> Error {
    Error::InvalidOp {
        key: key.to_string(),
        path: String::new(),
        message,
    }
}

/// The key of the Bloom index of the field `field` of the model `prefix`:
/// `{namespace}_rapyer:bloom-field:{Prefix}:{field}` (a prefix holds no `:`, so the pair
/// reads one way).
fn field_filter_key(namespace: &str, prefix: &str, field: &str) -> String {
    structure_key(namespace, "bloom-field", &format!("{prefix}:{field}"))
}

/// Adds the values of `M`'s `#[rapyer(bloom)]` fields in `models` to their filters, one
/// step per field, before the models are written (see [`BloomFilter::of_field`]). A model
/// that cannot be encoded is the error its save would give, before anything is sent.
pub(crate) async fn index_fields<M: KeySettings + Document>(db: &Db, models: &[M]) -> Result<()> {
    if M::BLOOM_FIELDS.is_empty() || models.is_empty() {
        return Ok(());
    }
    let mut documents = Vec::with_capacity(models.len());
    for model in models {
        let key = full_key::<M>(db.namespace(), model.model_id());
        documents.push(codec::encode_model_value(&key, model)?);
    }
    for field in M::BLOOM_FIELDS {
        let filter = BloomFilter::<serde_json::Value>::at(
            db,
            field_filter_key(db.namespace(), M::PREFIX, field),
        );
        let mut args = vec!["bf.add".to_string()];
        // serde_json's map (without `preserve_order`) writes its members sorted: the
        // canonical text `item_text` gives the same value.
        args.extend(
            documents
                .iter()
                .filter_map(|d| d.get(*field))
                .map(|v| v.to_string()),
        );
        filter.each_text(args).await?;
    }
    Ok(())
}

/// Whether `value` is maybe the `field` of a stored `M` (`maybe_exists_by_<field>`).
pub(crate) async fn field_contains<M, Q>(db: &Db, field: &str, value: &Q) -> Result<bool>
where
    M: KeySettings,
    Q: Serialize + ?Sized,
{
    BloomFilter::<Q>::at(db, field_filter_key(db.namespace(), M::PREFIX, field))
        .contains(value)
        .await
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

/// The canonical JSON text of an item bound for the structure at `key`: one text per value
/// (object members sorted), a NaN or infinite float refused as for a document.
pub(crate) fn item_text<Q: Serialize + ?Sized>(key: &str, item: &Q) -> Result<String> {
    let text = codec::encode(key, "$", item)?;
    if !text.contains('{') {
        return Ok(text);
    }
    // serde_json's map (without `preserve_order`) sorts its members.
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| Error::Serialize {
            key: key.to_string(),
            source,
        })?;
    Ok(value.to_string())
}

/// The error of a structure's script on `key`: its typed failure naming the key, and a
/// server without RedisBloom said in words that name the fix.
pub(crate) fn structure_error(e: Error, key: &str) -> Error {
    match e {
        Error::Script { name, message }
            if message
                .to_ascii_lowercase()
                .contains("unknown redis command")
                || message.to_ascii_lowercase().contains("unknown command") =>
        {
            Error::Script {
                name,
                message: format!(
                    "the server has no RedisBloom module (Bloom filters and count-min sketches \
                     need it: Redis 8, redis-stack, or `--loadmodule redisbloom.so`): {message}"
                ),
            }
        }
        other => document_error(other, key),
    }
}
