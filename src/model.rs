//! The traits `#[derive(AtomicModel)]` implements, and the model's CRUD operations.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crud;
use crate::db::Db;
use crate::error::Result;
use crate::keys::{self, HashTag};

/// A struct that derives `AtomicModel`: a serde type that rapyer can store and address.
///
/// Every derived struct implements it, with or without a key field; one without a key can
/// only be stored nested inside another model. Implemented by the derive, not by hand.
pub trait Model:
    Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
    + crate::query::Indexable
    + crate::ops::Referable
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
///
/// A struct without a `#[rapyer(key)]` field is a [`Model`] that can only be stored nested
/// inside another one; storing it on its own does not compile:
///
/// ```compile_fail
/// use rapyer::prelude::*;
///
/// #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
/// struct Address { city: String }
///
/// # async fn demo(db: &Db) -> rapyer::Result<()> {
/// Address { city: "Paris".into() }.save(db).await?; // no key: not an AtomicModel
/// # Ok(()) }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored on its own: it has no `#[rapyer(key)]` field",
    label = "not a stored model: add `#[rapyer(key)]` to the field that identifies it",
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
    /// The hash tag in this model's keys, which decides their Redis Cluster slot:
    /// `#[rapyer(hash_tag = "…")]` or `#[rapyer(key, hash_tag)]`. See [`HashTag`].
    const HASH_TAG: HashTag = HashTag::None;
    /// The JSON names of the fields with a Bloom filter index, `#[rapyer(bloom)]`: every
    /// save adds their values to the filters first (see
    /// [`BloomFilter::of_field`](crate::BloomFilter::of_field)).
    #[doc(hidden)]
    const BLOOM_FIELDS: &'static [&'static str] = &[];

    /// This model's id, as it appears in its key.
    fn model_id(&self) -> String;

    /// The key field's JSON name and the JSON of the id `id` in it (an error when `id` does
    /// not parse as the key's type): what a whole document copied in as this id carries.
    #[doc(hidden)]
    fn id_member(id: &str) -> std::result::Result<(&'static str, String), String>;

    /// A server reference to this stored model, with one accessor per field, for
    /// [`ServerOps`](crate::ServerOps) blocks: `user.server_ref().age()`.
    fn server_ref(&self) -> <Self as crate::ops::Referable>::Ref<crate::ops::Free> {
        Self::server_ref_for(self.model_id())
    }

    /// A server reference to the stored model with this id, without loading it.
    fn server_ref_for(id: impl Display) -> <Self as crate::ops::Referable>::Ref<crate::ops::Free> {
        <Self as crate::ops::Referable>::reference(
            crate::ops::Loc::root::<Self>(&id.to_string()),
            crate::ops::Free,
        )
    }

    /// Runs field operations on this stored model as one atomic block (one script, all or
    /// nothing), then writes the changed fields' server values into the local model:
    ///
    /// ```no_run
    /// # use rapyer::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
    /// # struct User { #[rapyer(key)] id: String, age: i64, tags: Vec<String> }
    /// # async fn demo(db: &Db, user: &mut User) -> rapyer::Result<()> {
    /// let (age, len) = user
    ///     .atomic(db, |m| (m.age().incr(1), m.tags().append("y")))
    ///     .await?;
    /// assert_eq!(age, Some(user.age));
    /// # Ok(()) }
    /// ```
    ///
    /// Returns what the closure returns, resolved as in
    /// [`ServerOps::scope`](crate::ServerOps::scope). A failure is
    /// [`Error::Block`](crate::Error::Block) and leaves the model, local and stored, as it was.
    /// A block that wrote the model's sets or priority queues reads them back into the local
    /// model after it (one more round trip).
    fn atomic<F, R>(&mut self, db: &Db, build: F) -> impl Future<Output = Result<R::Output>> + Send
    where
        F: for<'o> FnOnce(<Self as crate::ops::Referable>::Ref<crate::ops::Bound<'o>>) -> R + Send,
        R: crate::ops::Resolve + Send,
        R::Output: Send,
    {
        crate::ops::atomic(self, db, build)
    }

    /// The key of the model with this id, without the `Db`'s namespace: `User:u1`.
    fn key_of(id: impl Display) -> String {
        keys::key_of::<Self>(id)
    }

    /// This model's key, without the `Db`'s namespace: `User:u1`.
    fn key(&self) -> String {
        Self::key_of(self.model_id())
    }

    /// Writes the whole document (and, with a `ttl`, its expiry in the same atomic step).
    /// A model with `#[rapyer(bloom)]` fields first adds their values to the fields' Bloom
    /// filters, one step per field (see [`BloomFilter::of_field`](crate::BloomFilter::of_field)).
    fn save(&self, db: &Db) -> impl Future<Output = Result<()>> + Send {
        async move {
            crate::probabilistic::field_index::index_fields(db, std::slice::from_ref(self)).await?;
            crud::save(db, self).await
        }
    }

    /// Loads the model with this id; `Error::NotFound` when there is none.
    fn get(db: &Db, id: impl Display) -> impl Future<Output = Result<Self>> + Send {
        let key = full_key::<Self>(db, id);
        crud::get(db, key, read_ttl::<Self>())
    }

    /// Loads several models in one `JSON.MGET`, in the order asked, `None` for missing ones.
    fn get_many<I: Display>(
        db: &Db,
        ids: impl IntoIterator<Item = I>,
    ) -> impl Future<Output = Result<Vec<Option<Self>>>> + Send {
        let keys: Vec<String> = ids.into_iter().map(|id| full_key::<Self>(db, id)).collect();
        crate::documents::get_many(db, keys, read_ttl::<Self>())
    }

    /// Whether a model with this id is stored.
    fn exists(db: &Db, id: impl Display) -> impl Future<Output = Result<bool>> + Send {
        let key = full_key::<Self>(db, id);
        crud::exists(db, key)
    }

    /// Deletes this model; `true` if it was stored. A key holding another Redis type is
    /// [`Error::TypeMismatch`](crate::Error::TypeMismatch) and is left as it is.
    fn delete(&self, db: &Db) -> impl Future<Output = Result<bool>> + Send {
        let ids = vec![self.model_id()];
        async move { Ok(crate::unlink::delete::<Self>(db, ids).await? > 0) }
    }

    /// Deletes the model with this id; `true` if it was stored. A key holding another Redis
    /// type is [`Error::TypeMismatch`](crate::Error::TypeMismatch) and is left as it is.
    ///
    /// `delete`, `delete_by_id` and `delete_many` apply the `on_delete` policy of every
    /// reference field registered for this model (see [`OnDelete`](crate::OnDelete)):
    /// referrers are refused, deleted or cleared as declared.
    fn delete_by_id(db: &Db, id: impl Display) -> impl Future<Output = Result<bool>> + Send {
        let ids = vec![id.to_string()];
        async move { Ok(crate::unlink::delete::<Self>(db, ids).await? > 0) }
    }

    /// Saves every model in one round trip, all or nothing: if any key holds something other
    /// than a document of this kind, nothing is written. `#[rapyer(bloom)]` fields are
    /// added to their filters first, as for [`save`](AtomicModel::save).
    fn insert_many(db: &Db, models: &[Self]) -> impl Future<Output = Result<()>> + Send {
        async move {
            crate::probabilistic::field_index::index_fields(db, models).await?;
            crud::save_many(db, models).await
        }
    }

    /// Deletes the models with these ids in one script; returns how many were stored
    /// (missing ids count nothing). All or nothing: when a key holds another Redis type, the
    /// call is [`Error::TypeMismatch`](crate::Error::TypeMismatch) naming the first such key
    /// and nothing is deleted.
    fn delete_many<I: Display>(
        db: &Db,
        ids: impl IntoIterator<Item = I>,
    ) -> impl Future<Output = Result<usize>> + Send {
        let ids: Vec<String> = ids.into_iter().map(|id| id.to_string()).collect();
        crate::unlink::delete::<Self>(db, ids)
    }

    /// The models matching `expr` (built from `Model::fields()`): see
    /// [`Find`](crate::query::Find). Needs the index `db.init::<Self>()` creates.
    fn find(db: &Db, expr: crate::query::Expr) -> crate::query::Find<'_, Self> {
        crate::query::Find::new(db, expr)
    }

    /// Locks the model with this id and reads it under the lock, in one step.
    ///
    /// The lock is a key in rapyer's reserved part of the namespace
    /// (`{ns}_rapyer:lock:…`, in the model's cluster slot, out of every id's reach) holding a
    /// random token, with an expiry (`options.ttl`). Waits up to `options.timeout` while
    /// another holder has it, then fails with [`Error::LockTimeout`](crate::Error::LockTimeout).
    /// A missing model is [`Error::NotFound`](crate::Error::NotFound) and takes no lock. A
    /// model with sets or priority queues is read with them (from their companion keys, in
    /// a second step under the lock), and the guard's `save` writes what was changed in them. See [`LockGuard`](crate::LockGuard).
    ///
    /// ```no_run
    /// # use rapyer::prelude::*;
    /// # #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
    /// # struct Account { #[rapyer(key)] id: String, balance: i64 }
    /// # async fn demo(db: &Db) -> rapyer::Result<()> {
    /// let mut guard = Account::lock(db, "acc-1", LockOptions::default()).await?;
    /// guard.balance += 10;
    /// guard.save().await?;      // the changed members, only while the lock is still ours
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    fn lock(
        db: &Db,
        id: impl Display,
        options: crate::LockOptions,
    ) -> impl Future<Output = Result<crate::LockGuard<Self>>> + Send {
        let key = full_key::<Self>(db, id);
        crate::lock::lock(db, key, options)
    }

    /// Reloads this model from the server, replacing every field.
    fn refresh(&mut self, db: &Db) -> impl Future<Output = Result<()>> + Send {
        let key = full_key::<Self>(db, self.model_id());
        async move {
            *self = crud::get(db, key, read_ttl::<Self>()).await?;
            Ok(())
        }
    }

    /// Every stored model of this type (found with `SCAN`, never `KEYS`), in no set order.
    fn all(db: &Db) -> impl Future<Output = Result<Vec<Self>>> + Send {
        crud::all(db, read_ttl::<Self>())
    }

    /// Every stored model of this type that decodes, and, separately, one typed error per
    /// stored document that does not (key and path: [`Error::Deserialize`](crate::Error::Deserialize),
    /// [`Error::IdMismatch`](crate::Error::IdMismatch)), so one bad document never hides the
    /// others. [`all`](AtomicModel::all) fails on the first instead.
    fn all_lossy(db: &Db) -> impl Future<Output = Result<crate::Lossy<Self>>> + Send {
        crud::all_lossy(db, read_ttl::<Self>())
    }

    /// [`get_many`](AtomicModel::get_many) with one outcome per id, in the order asked: the
    /// model, `None` when it is not stored, or the error of that id alone (a document that
    /// does not decode, a key holding another Redis type). Only a failed read fails the call.
    fn get_many_lossy<I: Display>(
        db: &Db,
        ids: impl IntoIterator<Item = I>,
    ) -> impl Future<Output = Result<Vec<Result<Option<Self>>>>> + Send {
        let keys: Vec<String> = ids.into_iter().map(|id| full_key::<Self>(db, id)).collect();
        async move { crate::documents::get_many_lossy(db, &keys, read_ttl::<Self>()).await }
    }

    /// Reads chosen fields of the stored model with this id, without its whole document, in
    /// one round trip (`JSON.GET key path…`); the result's type follows the fields chosen:
    ///
    /// ```no_run
    /// # use rapyer::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(AtomicModel, Serialize, Deserialize)]
    /// # struct Address { city: String }
    /// # #[derive(AtomicModel, Serialize, Deserialize)]
    /// # struct User { #[rapyer(key)] id: String, name: String, age: i64, address: Address }
    /// # async fn demo(db: &Db) -> rapyer::Result<()> {
    /// let (name, age): (String, i64) = User::get_fields(db, "u1", |f| (f.name, f.age)).await?;
    /// let city: String = User::get_fields(db, "u1", |f| f.address.fields().city).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// [`Error::NotFound`](crate::Error::NotFound) without a document,
    /// [`Error::TypeMismatch`](crate::Error::TypeMismatch) for a key of another Redis type or
    /// a field absent from the document (an absent `Option` field reads as `None`),
    /// [`Error::Deserialize`](crate::Error::Deserialize) naming the field that does not decode.
    fn get_fields<P: crate::partial::Pick>(
        db: &Db,
        id: impl Display,
        pick: impl FnOnce(<Self as crate::partial::Pickable>::Paths) -> P,
    ) -> impl Future<Output = Result<P::Output>> + Send
    where
        Self: crate::partial::Pickable,
    {
        let key = full_key::<Self>(db, id);
        let pick = pick(<Self as crate::partial::Pickable>::paths(
            &crate::partial::Field::root(),
        ));
        crate::partial::get(db, key, read_ttl::<Self>(), pick)
    }

    /// Sets this model's expiry; `Error::NotFound` when it is not stored,
    /// `Error::TypeMismatch` (expiry untouched) when its key holds another Redis type.
    fn set_ttl(&self, db: &Db, ttl: Duration) -> impl Future<Output = Result<()>> + Send {
        let key = full_key::<Self>(db, self.model_id());
        async move { crud::set_ttl(db, key, ttl, &keys::structures_of::<Self>()).await }
    }

    /// This model's remaining time to live: `None` when it does not expire,
    /// `Error::NotFound` when it is not stored, `Error::TypeMismatch` when its key holds
    /// another Redis type.
    fn ttl(&self, db: &Db) -> impl Future<Output = Result<Option<Duration>>> + Send {
        let key = full_key::<Self>(db, self.model_id());
        crud::ttl(db, key)
    }
}

/// Every stored model gives the layers below the facade its key settings.
impl<M: AtomicModel> keys::KeySettings for M {
    const PREFIX: &'static str = <M as AtomicModel>::PREFIX;
    const TTL: Option<Duration> = <M as AtomicModel>::TTL;
    const REFRESH_TTL_ON_READ: bool = <M as AtomicModel>::REFRESH_TTL_ON_READ;
    const HASH_TAG: HashTag = <M as AtomicModel>::HASH_TAG;
    const BLOOM_FIELDS: &'static [&'static str] = <M as AtomicModel>::BLOOM_FIELDS;

    fn model_id(&self) -> String {
        <M as AtomicModel>::model_id(self)
    }

    fn id_member(id: &str) -> std::result::Result<(&'static str, String), String> {
        <M as AtomicModel>::id_member(id)
    }

    fn structures(out: &mut Vec<keys::Structure>) {
        <M as crate::ops::Referable>::structures(&mut Vec::new(), out);
    }
}

/// Every model gives the codec the search instants its documents carry.
impl<M: Model> crate::codec::Document for M {
    fn instant_paths(out: &mut Vec<Vec<String>>) {
        <M as crate::query::Indexable>::instants(&mut Vec::new(), out);
    }

    fn keep_local(&mut self, old: &mut Self) {
        <M as crate::ops::Referable>::keep_local(self, old);
    }
}

/// The full key (namespace included) of the `M` with this id.
fn full_key<M: AtomicModel>(db: &Db, id: impl Display) -> String {
    keys::full_key::<M>(db.namespace(), id)
}

/// The expiry a read of `M` re-arms, if it opted in with `refresh_on_read`.
fn read_ttl<M: AtomicModel>() -> Option<Duration> {
    keys::read_ttl::<M>()
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

/// What the accessor of a field with `#[serde(with = …)]` (or `serialize_with`,
/// `deserialize_with`, `getter`) returns; the accessor cannot be called (see
/// [`SerdeWithField`]).
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct NoHandle;

/// Never implemented: the bound that makes a call to the accessor of a field serde
/// (de)serializes with functions of its own a compile error that says why. Handles, blocks
/// and the search index write and read a field as its type's own serde form, which such a
/// field is not stored as.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "this field is (de)serialized by functions of its own (#[serde(with = …)], \
               serialize_with, deserialize_with), so it has no rapyer handle or server reference",
    label = "no handle: handles would write the type's own serde form, not the field's",
    note = "wrap the field's type in a newtype whose Serialize/Deserialize do the conversion, \
            drop the serde `with`, and mark the field #[rapyer(value)]; the whole model's save \
            and get honour `with` as they are"
)]
pub trait SerdeWithField {}
