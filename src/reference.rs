//! References between stored models: the [`Ref<M>`] field type (the target's id, stored as
//! a plain JSON string), its loading one by one ([`Ref::get`]) or level by level
//! ([`Refs::load`], one round trip per level), its search-index form (a TAG by id, so
//! `Book::find(&db, f.author.eq(&ann))` is the reverse one-to-many), and its place in
//! ServerOps blocks (copied with `assign`, compared in `when`).

use std::any::Any;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::codec::{Document, decode_model};
use crate::db::Db;
use crate::documents::mget_documents;
use crate::error::{Error, Result};
use crate::field::{At, FieldType, RedisValue};
use crate::keys::{KeySettings, full_key, read_ttl};
use crate::ops::refs::json_string;
use crate::ops::{Bind, Comparable, IntoOperand, Loc, Operand, Referable, ServerRef};
use crate::query::{Expr, FieldName, IndexKind, IndexOptions, Indexable, SchemaField, TagField};

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

/// The id as a JSON string. While [`Refs::load`] looks for references in a value, each one
/// it serializes also reports itself.
impl<M: KeySettings + Document + Send + Sync> Serialize for Ref<M> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        FOUND.with(|found| {
            if let Some(found) = found.borrow_mut().as_mut() {
                found.push(Target {
                    id: self.id.clone(),
                    kind: &KindOf::<M>::KIND,
                });
            }
        });
        serializer.serialize_str(&self.id)
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

/// A `Ref` field's handle is a [`RedisValue`]: `book.author().set(&db, Ref::to(&bob))`.
impl<M: KeySettings + Document + Send + Sync> FieldType for Ref<M> {
    type Handle<'a> = RedisValue<'a, Self>;
    fn handle(value: &mut Self, at: At) -> RedisValue<'_, Self> {
        RedisValue::new(value, at)
    }
}

/// In blocks a `Ref` is a string place: copied with `assign`, set with `set`, compared with
/// `eq`/`ne` against a model, a `Ref` or another reference field.
impl<M: KeySettings + Document + Send + Sync> Referable for Ref<M> {
    type Ref<B: Bind> = ServerRef<Ref<M>, B>;
    const WANT: &'static str = "string";
    fn reference<B: Bind>(loc: Loc, bind: B) -> ServerRef<Ref<M>, B> {
        ServerRef::new(loc, bind, "string")
    }
}

impl<M: KeySettings + Document + Send + Sync> Comparable for Ref<M> {}

impl<M: KeySettings + Document + Send + Sync> IntoOperand<Ref<M>> for Ref<M> {
    fn operand(self) -> std::result::Result<Operand, String> {
        Ok(Operand::Value(json_string(&self.id)))
    }
}

impl<M: KeySettings + Document + Send + Sync> IntoOperand<Ref<M>> for &Ref<M> {
    fn operand(self) -> std::result::Result<Operand, String> {
        Ok(Operand::Value(json_string(&self.id)))
    }
}

impl<M: KeySettings + Document + Send + Sync> IntoOperand<Ref<M>> for &M {
    fn operand(self) -> std::result::Result<Operand, String> {
        Ok(Operand::Value(json_string(&self.model_id())))
    }
}

impl<M: KeySettings + Document + Send + Sync, B: Bind> IntoOperand<Ref<M>>
    for ServerRef<Ref<M>, B>
{
    fn operand(self) -> std::result::Result<Operand, String> {
        Ok(Operand::Loc(self.loc))
    }
}

impl<M: KeySettings + Document + Send + Sync, B: Bind> IntoOperand<Ref<M>>
    for &ServerRef<Ref<M>, B>
{
    fn operand(self) -> std::result::Result<Operand, String> {
        Ok(Operand::Loc(self.loc.clone()))
    }
}

/// Something that names a target of a `Ref<M>` in a query: the model, a `Ref<M>`, or an id.
pub trait RefId<M> {
    /// The target's id.
    fn ref_id(&self) -> String;
}

impl<M: KeySettings> RefId<M> for &M {
    fn ref_id(&self) -> String {
        self.model_id()
    }
}

impl<M> RefId<M> for &Ref<M> {
    fn ref_id(&self) -> String {
        self.id.clone()
    }
}

impl<M> RefId<M> for &str {
    fn ref_id(&self) -> String {
        (*self).to_string()
    }
}

impl<M> RefId<M> for String {
    fn ref_id(&self) -> String {
        self.clone()
    }
}

/// An indexed `Ref<M>` (or `Option<Ref<M>>`) field: `f.author.eq(&ann)`, by model, `Ref` or
/// id. Indexed as a case-sensitive TAG of the id.
#[derive(Debug, Clone)]
pub struct RefField<M> {
    tag: TagField,
    _target: PhantomData<fn() -> M>,
}

impl<M> RefField<M> {
    fn new(name: String) -> RefField<M> {
        RefField {
            tag: TagField::new(name),
            _target: PhantomData,
        }
    }

    /// Points at `target` (a model, a `&Ref<M>`, or an id).
    pub fn eq(&self, target: impl RefId<M>) -> Expr {
        self.tag.eq(&target.ref_id())
    }

    /// Points anywhere but at `target` (a null `Option<Ref<M>>` included).
    pub fn ne(&self, target: impl RefId<M>) -> Expr {
        !self.eq(target)
    }

    /// Points at one of `targets` (nothing matches when there are none).
    pub fn one_of<R: RefId<M>>(&self, targets: impl IntoIterator<Item = R>) -> Expr {
        let ids: Vec<String> = targets.into_iter().map(|t| t.ref_id()).collect();
        self.tag.one_of(ids.iter().map(String::as_str))
    }
}

impl<M> FieldName for RefField<M> {
    fn field_name(&self) -> &str {
        self.tag.field_name()
    }
}

/// The TAG schema of a reference at `path`: ids are matched exactly (case-sensitive, whatever
/// the options say: `ann` and `Ann` are different targets).
fn ref_schema(path: &str, name: &str, options: IndexOptions, out: &mut Vec<SchemaField>) {
    out.push(SchemaField {
        path: path.to_string(),
        name: name.to_string(),
        kind: IndexKind::Tag,
        options: IndexOptions::new(false, options.sortable, false),
    });
}

impl<M: KeySettings> Indexable for Ref<M> {
    type Field = RefField<M>;
    fn field(name: String) -> RefField<M> {
        RefField::new(name)
    }
    fn schema(path: &str, name: &str, options: IndexOptions, out: &mut Vec<SchemaField>) {
        ref_schema(path, name, options, out);
    }
}

/// A null reference is indexed as no value: `eq` never matches it, `ne` does.
impl<M: KeySettings> Indexable for Option<Ref<M>> {
    type Field = RefField<M>;
    fn field(name: String) -> RefField<M> {
        RefField::new(name)
    }
    fn schema(path: &str, name: &str, options: IndexOptions, out: &mut Vec<SchemaField>) {
        ref_schema(path, name, options, out);
    }
}

// ----- Eager loading -------------------------------------------------------------------

thread_local! {
    /// The references serialized while [`found_in`] looks for them on this thread.
    static FOUND: RefCell<Option<Vec<Target>>> = const { RefCell::new(None) };
}

/// A reference found in a value: the target's id and how to read its type.
struct Target {
    id: String,
    kind: &'static Kind,
}

/// One level's keys to read, each with its type's `Kind`.
type Level = Vec<(String, &'static Kind)>;

/// How to build, read and search a target type's documents.
struct Kind {
    key: fn(&str, &str) -> String,
    rearm: fn() -> Option<Duration>,
    decode: fn(&str, &str, &[u8]) -> Result<Loaded>,
}

/// A decoded target and the references in it.
struct Loaded {
    model: Box<dyn Any + Send + Sync>,
    refs: Vec<Target>,
}

/// The one `Kind` of each target type.
struct KindOf<M>(PhantomData<M>);

impl<M: KeySettings + Document + Send + Sync> KindOf<M> {
    const KIND: Kind = Kind {
        key: |namespace, id| full_key::<M>(namespace, id),
        rearm: read_ttl::<M>,
        decode: |namespace, key, bytes| {
            let model: M = decode_model(namespace, key, bytes)?;
            let refs = found_in(key, &model)?;
            Ok(Loaded {
                model: Box::new(model),
                refs,
            })
        },
    };
}

/// The references in `value`, found by serializing it (each `Ref` reports itself); `key`
/// names the document in an error.
fn found_in<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Vec<Target>> {
    /// Puts the previous collector back however the serialization ends.
    struct Restore(Option<Vec<Target>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            FOUND.with(|found| *found.borrow_mut() = previous);
        }
    }
    let previous = FOUND.with(|found| found.borrow_mut().replace(Vec::new()));
    let restore = Restore(previous);
    let written = serde_json::to_writer(std::io::sink(), value);
    let targets = FOUND
        .with(|found| found.borrow_mut().take())
        .unwrap_or_default();
    drop(restore);
    match written {
        Ok(()) => Ok(targets),
        Err(source) => Err(Error::Serialize {
            key: key.to_string(),
            source,
        }),
    }
}

/// The models reached from some values through their references, loaded level by level:
/// [`Refs::load`], then [`Refs::get`] / [`Refs::get_opt`] for each reference.
///
/// Level 1 is every target of the references in the values given, level 2 every target of
/// the references in those, and so on up to the depth asked. Each level is **one round
/// trip** (one `JSON.MGET` of every target of that level, of any types; on a cluster one per
/// hash slot, sent together; one more for the targets whose model re-arms its expiry on
/// read, and one more `TYPE` look only when a target is missing). A key is read once
/// however many references point at it (diamonds), and a key already read is not read again
/// (cycles: `A → B → A` stops), so the work is bounded by the documents reached.
///
/// ```no_run
/// # use rapyer::prelude::*;
/// # use rapyer::{Ref, Refs};
/// # #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
/// # struct Author { #[rapyer(key)] id: String, name: String }
/// # #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
/// # struct Book { #[rapyer(key)] id: String, author: Ref<Author> }
/// # async fn demo(db: &Db) -> rapyer::Result<()> {
/// let books = Book::all(db).await?;
/// let refs = Refs::load(db, &books, 1).await?; // one JSON.MGET for every author
/// for book in &books {
///     let author: &Author = refs.get(&book.author)?; // NotFound if dangling
///     println!("{} by {}", book.id, author.name);
/// }
/// # Ok(()) }
/// ```
pub struct Refs {
    namespace: String,
    /// Every key read, with its model (`None`: no document there, a dangling reference).
    loaded: HashMap<String, Option<Box<dyn Any + Send + Sync>>>,
    /// How many round trips the load made (one per level, more as said above).
    levels: usize,
}

impl fmt::Debug for Refs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&String> = self.loaded.keys().collect();
        keys.sort();
        f.debug_struct("Refs")
            .field("namespace", &self.namespace)
            .field("keys", &keys)
            .field("levels", &self.levels)
            .finish()
    }
}

impl Refs {
    /// Loads the targets of the references in `roots` (a model, a slice or `Vec` of models,
    /// a tuple, any serde value holding `Ref`s, `Option<Ref>`s or lists of them), and the
    /// targets of theirs, down to `depth` levels (0 loads nothing), from `db`'s namespace.
    ///
    /// A dangling reference is not an error here: the lookup decides ([`Refs::get`] or
    /// [`Refs::get_opt`]). A target key holding another Redis type is
    /// [`Error::TypeMismatch`], a target that does not decode [`Error::Deserialize`], both
    /// naming the target's key.
    pub async fn load<T: Serialize + ?Sized>(db: &Db, roots: &T, depth: usize) -> Result<Refs> {
        let mut refs = Refs {
            namespace: db.namespace().to_string(),
            loaded: HashMap::new(),
            levels: 0,
        };
        let mut next = found_in("", roots)?;
        for _ in 0..depth {
            // The keys of this level not read yet, once each.
            let mut level: Level = Vec::new();
            let mut seen = HashSet::new();
            for target in next.drain(..) {
                let key = (target.kind.key)(&refs.namespace, &target.id);
                if !refs.loaded.contains_key(&key) && seen.insert(key.clone()) {
                    level.push((key, target.kind));
                }
            }
            if level.is_empty() {
                break;
            }
            refs.levels += 1;
            next = refs.read_level(db, level).await?;
        }
        Ok(refs)
    }

    /// Reads one level's keys (grouped by the expiry their read re-arms), keeps the models,
    /// and returns the references found in them.
    async fn read_level(&mut self, db: &Db, level: Level) -> Result<Vec<Target>> {
        let mut groups: Vec<(Option<Duration>, Level)> = Vec::new();
        for (key, kind) in level {
            let rearm = (kind.rearm)();
            match groups.iter_mut().find(|(r, _)| *r == rearm) {
                Some((_, group)) => group.push((key, kind)),
                None => groups.push((rearm, vec![(key, kind)])),
            }
        }
        let mut found = Vec::new();
        for (rearm, group) in groups {
            let keys: Vec<String> = group.iter().map(|(key, _)| key.clone()).collect();
            let replies = mget_documents(db, &keys, rearm).await?;
            for ((key, kind), reply) in group.into_iter().zip(replies) {
                let model = match reply {
                    Some(bytes) => {
                        let loaded = (kind.decode)(&self.namespace, &key, &bytes)?;
                        found.extend(loaded.refs);
                        Some(loaded.model)
                    }
                    None => None,
                };
                self.loaded.insert(key, model);
            }
        }
        Ok(found)
    }

    /// The loaded target of `r`: [`Error::NotFound`] naming the target's key when the
    /// reference is dangling, [`Error::InvalidOp`] when `r` was not reached by the load
    /// (deeper than its depth, or not in its values).
    pub fn get<M: KeySettings + 'static>(&self, r: &Ref<M>) -> Result<&M> {
        match self.get_opt(r)? {
            Some(model) => Ok(model),
            None => Err(Error::NotFound {
                key: full_key::<M>(&self.namespace, &r.id),
            }),
        }
    }

    /// The loaded target of `r`, `None` when the reference is dangling; [`Error::InvalidOp`]
    /// when `r` was not reached by the load.
    pub fn get_opt<M: KeySettings + 'static>(&self, r: &Ref<M>) -> Result<Option<&M>> {
        let key = full_key::<M>(&self.namespace, &r.id);
        match self.loaded.get(&key) {
            Some(Some(model)) => match model.downcast_ref::<M>() {
                Some(model) => Ok(Some(model)),
                None => Err(not_loaded(key)),
            },
            Some(None) => Ok(None),
            None => Err(not_loaded(key)),
        }
    }

    /// The keys read that hold a document.
    pub(crate) fn stored_keys(&self) -> impl Iterator<Item = &String> {
        self.loaded
            .iter()
            .filter(|(_, model)| model.is_some())
            .map(|(key, _)| key)
    }

    /// How many keys were read (dangling ones included).
    pub fn len(&self) -> usize {
        self.loaded.len()
    }

    /// Whether nothing was read.
    pub fn is_empty(&self) -> bool {
        self.loaded.is_empty()
    }

    /// How many levels were read (at most the depth asked; fewer when the references ran
    /// out or only reached keys already read).
    pub fn levels(&self) -> usize {
        self.levels
    }
}

fn not_loaded(key: String) -> Error {
    Error::InvalidOp {
        key,
        path: "$".to_string(),
        message: "this reference was not loaded by Refs::load (deeper than the depth asked, \
                  or not in the values given): load it with Ref::get"
            .to_string(),
    }
}
