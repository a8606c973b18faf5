//! Loading along references level by level: [`Refs::load`], one round trip per level.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::Ref;
use crate::codec::{Document, decode_model};
use crate::db::Db;
use crate::documents::mget_documents;
use crate::error::{Error, Result};
use crate::keys::{KeySettings, full_key, read_ttl};

thread_local! {
    /// The references serialized while [`found_in`] looks for them on this thread.
    static FOUND: RefCell<Option<Vec<Target>>> = const { RefCell::new(None) };
}

/// The id as a JSON string. While [`Refs::load`] looks for references in a value, each one
/// it serializes also reports itself.
impl<M: KeySettings + Document + Send + Sync> Serialize for Ref<M> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        report::<M>(&self.id);
        serializer.serialize_str(&self.id)
    }
}

/// Notes a reference to the `M` with this id when [`found_in`] is looking on this thread.
fn report<M: KeySettings + Document + Send + Sync>(id: &str) {
    FOUND.with(|found| {
        if let Some(found) = found.borrow_mut().as_mut() {
            found.push(Target {
                id: id.to_string(),
                kind: &KindOf::<M>::KIND,
            });
        }
    });
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
