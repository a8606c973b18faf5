//! The traits `#[derive(AtomicModel)]` implements, and the model's CRUD operations.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crud;
use crate::db::Db;
use crate::error::Result;

/// A struct that derives `AtomicModel`: a serde type that rapyer can store and address.
///
/// Every derived struct implements it, with or without a key field; one without a key can
/// only be stored nested inside another model. Implemented by the derive, not by hand.
pub trait Model:
    Serialize + DeserializeOwned + Send + Sync + 'static + crate::query::Indexable
{
}

/// A model stored as one RedisJSON document at `{namespace}{PREFIX}:{id}`.
///
/// Implemented by `#[derive(AtomicModel)]` on a struct with a `#[rapyer(key)]` field.
/// Every async method returns a `Send` future, so calls can be spawned onto any runtime task.
///
/// ```no_run
/// use rapyer::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct User {
///     #[rapyer(key)]
///     id: String,
///     name: String,
/// }
///
/// # async fn demo(db: &Db) -> rapyer::Result<()> {
/// let user = User { id: "u1".into(), name: "Ann".into() };
/// user.save(db).await?;
/// assert_eq!(User::get(db, "u1").await?, user);
/// # Ok(()) }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored on its own: it has no `#[rapyer(key)]` field",
    label = "not a stored model",
    note = "mark the field that identifies a `{Self}` with `#[rapyer(key)]` (use `rapyer::Id` for generated ids); a model without a key can only be nested inside another model"
)]
pub trait AtomicModel: Model {
    /// The key prefix: `#[rapyer(prefix = "…")]`, or the struct's name.
    const PREFIX: &'static str;
    /// The expiry every save sets: `#[rapyer(ttl = SECS)]`.
    const TTL: Option<Duration>;
    /// Whether reads re-arm the expiry too, in the same step as the read:
    /// `#[rapyer(ttl = SECS, refresh_on_read)]`.
    const REFRESH_TTL_ON_READ: bool = false;

    /// This model's id, as it appears in its key.
    fn model_id(&self) -> String;

    /// The key of the model with this id, without the `Db`'s namespace: `User:u1`.
    fn key_of(id: impl Display) -> String {
        let mut key = String::new();
        push_key(&mut key, Self::PREFIX, id);
        key
    }

    /// This model's key, without the `Db`'s namespace: `User:u1`.
    fn key(&self) -> String {
        Self::key_of(self.model_id())
    }

    /// Writes the whole document (and, with a `ttl`, its expiry in the same atomic step).
    fn save(&self, db: &Db) -> impl Future<Output = Result<()>> + Send {
        crud::save(db, self)
    }

    /// Loads the model with this id; `Error::NotFound` when there is none.
    fn get(db: &Db, id: impl Display) -> impl Future<Output = Result<Self>> + Send {
        let key = db.model_key(Self::PREFIX, id);
        crud::get(db, key, read_ttl::<Self>())
    }

    /// Loads several models in one `JSON.MGET`, in the order asked, `None` for missing ones.
    fn get_many<I: Display>(
        db: &Db,
        ids: impl IntoIterator<Item = I>,
    ) -> impl Future<Output = Result<Vec<Option<Self>>>> + Send {
        let keys: Vec<String> = ids
            .into_iter()
            .map(|id| db.model_key(Self::PREFIX, id))
            .collect();
        crud::get_many(db, keys, read_ttl::<Self>())
    }

    /// Whether a model with this id is stored.
    fn exists(db: &Db, id: impl Display) -> impl Future<Output = Result<bool>> + Send {
        let key = db.model_key(Self::PREFIX, id);
        crud::exists(db, key)
    }

    /// Deletes this model; `true` if it was stored.
    fn delete(&self, db: &Db) -> impl Future<Output = Result<bool>> + Send {
        let key = db.model_key(Self::PREFIX, self.model_id());
        crud::delete_one(db, key, "delete")
    }

    /// Deletes the model with this id; `true` if it was stored.
    fn delete_by_id(db: &Db, id: impl Display) -> impl Future<Output = Result<bool>> + Send {
        let key = db.model_key(Self::PREFIX, id);
        crud::delete_one(db, key, "delete_by_id")
    }

    /// Saves every model in one round trip, all or nothing: if any key holds something other
    /// than a document of this kind, nothing is written.
    fn insert_many(db: &Db, models: &[Self]) -> impl Future<Output = Result<()>> + Send {
        crud::save_many(db, models)
    }

    /// Deletes the models with these ids in one command; returns how many were stored.
    fn delete_many<I: Display>(
        db: &Db,
        ids: impl IntoIterator<Item = I>,
    ) -> impl Future<Output = Result<usize>> + Send {
        let keys: Vec<String> = ids
            .into_iter()
            .map(|id| db.model_key(Self::PREFIX, id))
            .collect();
        crud::delete_count(db, keys, "delete_many")
    }

    /// The models matching `expr` (built from `Model::fields()`): see
    /// [`Find`](crate::query::Find). Needs the index `db.init::<Self>()` creates.
    fn find(db: &Db, expr: crate::query::Expr) -> crate::query::Find<'_, Self> {
        crate::query::Find::new(db, expr)
    }

    /// Locks the model with this id and reads it under the lock, in one step.
    ///
    /// The lock is a key next to the model's (same namespace, same cluster slot) holding a
    /// random token, with an expiry (`options.ttl`). Waits up to `options.timeout` while
    /// another holder has it, then fails with [`Error::LockTimeout`]. A missing model is
    /// [`Error::NotFound`] and takes no lock. See [`LockGuard`](crate::LockGuard).
    ///
    /// ```no_run
    /// # use rapyer::prelude::*;
    /// # #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
    /// # struct Account { #[rapyer(key)] id: String, balance: i64 }
    /// # async fn demo(db: &Db) -> rapyer::Result<()> {
    /// let mut guard = Account::lock(db, "acc-1", LockOptions::default()).await?;
    /// guard.balance += 10;
    /// guard.save().await?;      // only while the lock is still ours
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    fn lock(
        db: &Db,
        id: impl Display,
        options: crate::LockOptions,
    ) -> impl Future<Output = Result<crate::LockGuard<Self>>> + Send {
        let key = db.model_key(Self::PREFIX, id);
        crate::lock::lock(db, key, options)
    }

    /// Reloads this model from the server, replacing every field.
    fn refresh(&mut self, db: &Db) -> impl Future<Output = Result<()>> + Send {
        let key = db.model_key(Self::PREFIX, self.model_id());
        async move {
            *self = crud::get(db, key, read_ttl::<Self>()).await?;
            Ok(())
        }
    }

    /// Every stored model of this type (found with `SCAN`, never `KEYS`), in no set order.
    fn all(db: &Db) -> impl Future<Output = Result<Vec<Self>>> + Send {
        crud::all(db, read_ttl::<Self>())
    }

    /// Sets this model's expiry; `Error::NotFound` when it is not stored.
    fn set_ttl(&self, db: &Db, ttl: Duration) -> impl Future<Output = Result<()>> + Send {
        let key = db.model_key(Self::PREFIX, self.model_id());
        crud::set_ttl(db, key, ttl)
    }

    /// This model's remaining time to live: `None` when it does not expire,
    /// `Error::NotFound` when it is not stored.
    fn ttl(&self, db: &Db) -> impl Future<Output = Result<Option<Duration>>> + Send {
        let key = db.model_key(Self::PREFIX, self.model_id());
        crud::ttl(db, key)
    }
}

/// Appends `{prefix}:{id}` to `key`: the one place the key layout is written down.
/// The expiry a read of `M` re-arms, if it opted in with `refresh_on_read`.
pub(crate) fn read_ttl<M: AtomicModel>() -> Option<Duration> {
    if M::REFRESH_TTL_ON_READ { M::TTL } else { None }
}

pub(crate) fn push_key(key: &mut String, prefix: &str, id: impl Display) {
    use std::fmt::Write as _;
    key.push_str(prefix);
    key.push(':');
    // Writing into a String cannot fail.
    let _ = write!(key, "{id}");
}

/// A type that can be a model's `#[rapyer(key)]`: anything with a `Display` text that parses
/// back with `FromStr` (strings, integers, `rapyer::Id`, your own id types).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a model key",
    label = "not usable as `#[rapyer(key)]`",
    note = "a key field must be a String, an integer, `rapyer::Id`, or a type that implements both `Display` and `FromStr`"
)]
pub trait ModelKey {
    /// The id's text inside the key.
    fn to_key(&self) -> String;
}

impl<T: Display + std::str::FromStr> ModelKey for T {
    fn to_key(&self) -> String {
        self.to_string()
    }
}
