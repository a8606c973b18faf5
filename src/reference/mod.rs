//! References between stored models: the [`Ref<M>`] field type (the target's id, stored as
//! a plain JSON string), its loading one by one ([`Ref::get`]) or level by level
//! ([`Refs::load`], one round trip per level), its search-index form (a TAG by id, so
//! `Book::find(&db, f.author.eq(&ann))` is the reverse one-to-many), and its place in
//! ServerOps blocks (copied with `assign`, compared in `when`).

mod blocks;
mod load;
mod query;

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::codec::Document;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::keys::{KeySettings, full_key, read_ttl};

pub use load::Refs;
pub use query::{RefField, RefId};

/// A reference to the stored model `M` with a given id: a field type.
///
/// Stored as the target's **id** (a plain JSON string, `"ann"`), never as its key: the key is
/// built when the reference is read, with the reading [`Db`]'s namespace and `M`'s key
/// layout (prefix, hash tag), so a document copied into another namespace points at the
/// models of that namespace. Any client can read and write it; a JSON number stored there by
/// another client reads as its digits.
///
/// ```no_run
/// use rapyer::prelude::*;
/// use rapyer::Ref;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Author { #[rapyer(key)] id: String, name: String }
///
/// #[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Book {
///     #[rapyer(key)] id: String,
///     #[rapyer(index)] author: Ref<Author>,
/// }
///
/// # async fn demo(db: &Db) -> rapyer::Result<()> {
/// let ann = Author { id: "ann".into(), name: "Ann".into() };
/// ann.save(db).await?;
/// let book = Book { id: "b1".into(), author: Ref::to(&ann) };
/// book.save(db).await?;
/// assert_eq!(book.author.get(db).await?, ann);                  // NotFound when dangling
/// assert_eq!(book.author.get_opt(db).await?, Some(ann.clone())); // or None, your choice
/// db.init::<Book>().await?;
/// let books = Book::find(db, Book::fields().author.eq(&ann)).all().await?; // reverse lookup
/// # Ok(()) }
/// ```
///
/// Loading along references level by level, one round trip per level, is [`Refs::load`].
pub struct Ref<M> {
    id: String,
    _target: PhantomData<fn() -> M>,
}

impl<M: KeySettings> Ref<M> {
    /// A reference to `model`.
    pub fn to(model: &M) -> Ref<M> {
        Ref::new(model.model_id())
    }

    /// A reference to the `M` with this id (as its key shows it).
    pub fn new(id: impl fmt::Display) -> Ref<M> {
        Ref {
            id: id.to_string(),
            _target: PhantomData,
        }
    }

    /// The target's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The target's key without the `Db`'s namespace: `Author:ann`.
    pub fn key(&self) -> String {
        crate::keys::key_of::<M>(&self.id)
    }

    /// Whether this points at `model`.
    pub fn is(&self, model: &M) -> bool {
        model.model_id() == self.id
    }

    /// Loads the target from `db` (its namespace): a dangling reference (no such target) is
    /// [`Error::NotFound`] naming the target's key.
    pub async fn get(&self, db: &Db) -> Result<M>
    where
        M: Document,
    {
        crate::crud::get(db, full_key::<M>(db.namespace(), &self.id), read_ttl::<M>()).await
    }

    /// Loads the target from `db`: `None` when the reference is dangling. Every other
    /// failure (a key of another Redis type, a document that does not decode) is an error.
    pub async fn get_opt(&self, db: &Db) -> Result<Option<M>>
    where
        M: Document,
    {
        let key = full_key::<M>(db.namespace(), &self.id);
        match crate::crud::get(db, key.clone(), read_ttl::<M>()).await {
            Ok(model) => Ok(Some(model)),
            Err(Error::NotFound { key: missing }) if missing == key => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl<M> Clone for Ref<M> {
    fn clone(&self) -> Self {
        Ref {
            id: self.id.clone(),
            _target: PhantomData,
        }
    }
}

impl<M> PartialEq for Ref<M> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl<M> Eq for Ref<M> {}

impl<M> Hash for Ref<M> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl<M> fmt::Debug for Ref<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = std::any::type_name::<M>();
        let name = name.rsplit("::").next().unwrap_or(name);
        write!(f, "Ref<{name}>({:?})", self.id)
    }
}

/// A JSON string, or a JSON integer written by another client (read as its digits).
impl<'de, M> Deserialize<'de> for Ref<M> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = String;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the id of the referenced model (a string)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<String, E> {
                Ok(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<String, E> {
                Ok(v.to_string())
            }
        }
        let id = deserializer.deserialize_any(IdVisitor)?;
        Ok(Ref {
            id,
            _target: PhantomData,
        })
    }
}
