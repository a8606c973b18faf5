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

pub(crate) mod field_index;
mod sketch;
mod structure;

use std::borrow::Borrow;

use serde::Serialize;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::keys::structure_key;
pub use sketch::CountMinSketch;
use structure::{Structure, invalid};

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

/// The key of the Bloom index of the field `field` of the model `prefix`:
/// `{namespace}_rapyer:bloom-field:{Prefix}:{field}` (a prefix holds no `:`, so the pair
/// reads one way).
fn field_filter_key(namespace: &str, prefix: &str, field: &str) -> String {
    structure_key(namespace, "bloom-field", &format!("{prefix}:{field}"))
}
