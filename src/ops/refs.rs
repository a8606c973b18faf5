//! Server references: typed places in stored documents, which ServerOps blocks and models'
//! atomic blocks operate on without loading them.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Ops;
use crate::keys::{KeySettings, key_of, read_ttl};
use crate::path::{push_entry_text, push_member_text};

/// How a reference is bound: [`Free`] references are arguments of [`Ops`] methods;
/// [`Bound`] ones (the `m` of `model.atomic(&db, |m| …)`) also have the field operations
/// (`m.age().incr(1)`) that add themselves to the block.
pub trait Bind: Clone + sealed::Sealed {
    /// The block this reference adds operations to, if bound.
    #[doc(hidden)]
    fn ops(&self) -> Option<&Ops>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Free {}
    impl Sealed for super::Bound<'_> {}
}

/// A reference not bound to a block: `user.server_ref().age()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Free;

impl Bind for Free {
    fn ops(&self) -> Option<&Ops> {
        None
    }
}

/// A reference bound to the atomic block it was handed to.
#[derive(Debug, Clone, Copy)]
pub struct Bound<'a>(pub(crate) &'a Ops);

impl Bind for Bound<'_> {
    fn ops(&self) -> Option<&Ops> {
        Some(self.0)
    }
}

/// One step from a JSON value to a part of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    /// A model's field, by its JSON name.
    Field(&'static str),
    /// A list element, with Python's negative indices.
    Index(i64),
    /// A dict entry.
    Key(String),
}

/// Python's `start:stop:step`, each bound optional.
pub(crate) type SliceBounds = [Option<i64>; 3];

/// The stored model a reference points into.
#[derive(Debug)]
pub(crate) struct Doc {
    /// The model's key without the namespace.
    pub(crate) key: String,
    /// The expiry every write re-arms.
    pub(crate) write_ttl: Option<Duration>,
    /// The expiry every read re-arms.
    pub(crate) read_ttl: Option<Duration>,
    /// The key field's JSON name and the id's JSON, written into a whole document copied
    /// in; the error when the id does not parse as the key field's type.
    pub(crate) id: Result<(&'static str, String), String>,
    /// The special structures the model keeps in companion keys.
    pub(crate) structures: Vec<crate::keys::Structure>,
}

/// A place in a stored document: the document, the steps from its root, and a slice.
///
/// Built by the code `#[derive(AtomicModel)]` generates and by the references' methods.
#[derive(Debug, Clone)]
pub struct Loc {
    pub(crate) doc: Arc<Doc>,
    pub(crate) steps: Vec<Step>,
    pub(crate) slice: Option<SliceBounds>,
    /// An indexed field: a date-time there keeps its search instant beside it.
    pub(crate) indexed: bool,
    /// A date-time (which keeps a search instant beside it when indexed).
    pub(crate) shadowed: bool,
}

impl Loc {
    /// The root of the stored model `M` with id `id`.
    pub(crate) fn root<M: KeySettings>(id: &str) -> Loc {
        Loc {
            doc: Arc::new(Doc {
                key: key_of::<M>(id),
                write_ttl: M::TTL,
                read_ttl: read_ttl::<M>(),
                id: M::id_member(id),
                structures: crate::keys::structures_of::<M>(),
            }),
            steps: Vec::new(),
            slice: None,
            indexed: false,
            shadowed: false,
        }
    }

    /// The field `name` (its JSON name) of the model here.
    pub(crate) fn field(&self, name: &'static str) -> Loc {
        self.then(Step::Field(name))
    }

    /// The same place, marked as a field of the search index.
    pub(crate) fn indexed(mut self) -> Loc {
        self.indexed = true;
        self
    }

    pub(crate) fn then(&self, step: Step) -> Loc {
        let mut steps = Vec::with_capacity(self.steps.len() + 1);
        steps.extend(self.steps.iter().cloned());
        steps.push(step);
        Loc {
            doc: Arc::clone(&self.doc),
            steps,
            slice: None,
            indexed: false,
            shadowed: false,
        }
    }

    /// The whole document of a stored model (no step).
    pub(crate) fn is_document(&self) -> bool {
        self.steps.is_empty() && self.slice.is_none()
    }

    /// The place's JSONPath, for messages: `$.prefs["k"]`.
    pub(crate) fn path(&self) -> String {
        let mut out = String::from("$");
        for step in &self.steps {
            match step {
                Step::Field(name) => push_member_text(&mut out, name),
                Step::Index(i) => out.push_str(&format!("[{i}]")),
                Step::Key(k) => push_entry_text(&mut out, k),
            }
        }
        out
    }
}

pub(crate) fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A reference to a place holding a `Self::Value`: the argument type of [`Ops`] methods.
pub trait Ref {
    /// The Rust type of the value at this place.
    type Value: Serialize;
    /// How the reference is bound.
    type Bind: Bind;
    /// Where it points.
    #[doc(hidden)]
    fn loc(&self) -> &Loc;
    /// Its binding.
    #[doc(hidden)]
    fn bind(&self) -> &Self::Bind;
    /// The JSON type the place must hold (`integer`, `string`, … or `*`).
    #[doc(hidden)]
    fn want(&self) -> &'static str;
    /// The JSON type of each element, for a list or a slice.
    #[doc(hidden)]
    fn element_want(&self) -> &'static str {
        "*"
    }
    /// The value as JSON to write at this place.
    #[doc(hidden)]
    fn encode(value: &Self::Value) -> serde_json::Result<String>;
}

/// A type whose values a server reference can point at. Implemented for integers (`i128`
/// and `u128` within `i64::MIN ..= u64::MAX`, with `set` only), floats,
/// `String`, `bool`, `Vec<T>`, `HashMap`/`BTreeMap<String, V>`, `Option<T>`, date-times,
/// [`Bytes`](crate::Bytes), [`Id`](crate::Id), `serde_json::Value` and every
/// `#[derive(AtomicModel)]` struct (which gets its own `<Name>Ref`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no rapyer server reference",
    label = "this field's type has no server reference",
    note = "mark the field #[rapyer(value)] to reference it as a whole value, or implement \
            rapyer::ops::Referable for the type"
)]
pub trait Referable: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The reference type.
    type Ref<B: Bind>: Ref<Value = Self, Bind = B>;
    /// The JSON type a value of this type is stored as (`*` when it varies).
    #[doc(hidden)]
    const WANT: &'static str;
    /// A search index keeps a shadow beside an indexed value of this type (date-times), so
    /// ServerOps cannot write it yet.
    #[doc(hidden)]
    const SHADOWED: bool = false;
    /// The reference to `loc`.
    #[doc(hidden)]
    fn reference<B: Bind>(loc: Loc, bind: B) -> Self::Ref<B>;
    /// The value as JSON (models add their search shadows).
    #[doc(hidden)]
    fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }
    /// Writes the stored value found at the field names `names` below this one (`value`, its
    /// JSON text) into the local value. Models write only that field (their own `patch`);
    /// others take the whole.
    #[doc(hidden)]
    fn patch(&mut self, names: &[&str], value: &str) -> serde_json::Result<()> {
        patch_value(self, names, value)
    }
    /// Moves the parts of `old` that are not in the document (fields serde skips, in this
    /// value and the models nested in it) into this value, just read from the document.
    #[doc(hidden)]
    fn keep_local(&mut self, old: &mut Self) {
        let _ = old;
    }
    /// Adds the special structures ([`Set`](crate::Set), [`PriorityQueue`](crate::PriorityQueue))
    /// at or below this value, which sits at the JSON names `names` from the document's root,
    /// to `out`. Models list their fields' (the derive walks them); a structure lists itself;
    /// anything else, lists, dicts and options included, has none that live in companion keys.
    #[doc(hidden)]
    fn structures(names: &mut Vec<&'static str>, out: &mut Vec<crate::keys::Structure>) {
        let _ = (names, out);
    }
}

/// `Referable::patch` for a value with no fields of its own: `names` must be empty.
pub fn patch_value<T: DeserializeOwned>(
    slot: &mut T,
    names: &[&str],
    value: &str,
) -> serde_json::Result<()> {
    match names.first() {
        None => {
            *slot = serde_json::from_str(value)?;
            Ok(())
        }
        Some(name) => Err(no_field(name)),
    }
}

/// The error of a part of a document that has no field in the local model.
pub fn no_field(name: &str) -> serde_json::Error {
    serde::de::Error::custom(format_args!(
        "no field `{name}` in the local model to write back"
    ))
}

/// A reference to a scalar (or any whole value): numbers, strings, booleans, options,
/// date-times and `#[rapyer(value)]` fields.
#[derive(Debug)]
pub struct ServerRef<T, B: Bind = Free> {
    pub(crate) loc: Loc,
    pub(crate) bind: B,
    pub(crate) want: &'static str,
    _value: PhantomData<fn() -> T>,
}

impl<T: Serialize, B: Bind> ServerRef<T, B> {
    /// A reference to `loc` holding JSON of type `want` (`*` for any).
    pub(crate) fn new(loc: Loc, bind: B, want: &'static str) -> ServerRef<T, B> {
        ServerRef {
            loc,
            bind,
            want,
            _value: PhantomData,
        }
    }
}

impl<T: Serialize, B: Bind> Ref for ServerRef<T, B> {
    type Value = T;
    type Bind = B;
    fn loc(&self) -> &Loc {
        &self.loc
    }
    fn bind(&self) -> &B {
        &self.bind
    }
    fn want(&self) -> &'static str {
        self.want
    }
    fn encode(value: &T) -> serde_json::Result<String> {
        serde_json::to_string(value)
    }
}

/// A reference to a list: `.slice(range)` and `.at(i)` reach into it.
#[derive(Debug)]
pub struct ListRef<T, B: Bind = Free> {
    pub(crate) loc: Loc,
    pub(crate) bind: B,
    _value: PhantomData<fn() -> T>,
}

impl<T: Referable, B: Bind> ListRef<T, B> {
    /// The element at `index` (negative counts from the end, as in Python).
    pub fn at(&self, index: i64) -> T::Ref<B> {
        T::reference(self.loc.then(Step::Index(index)), self.bind.clone())
    }

    /// A slice with Python's semantics: `0..2`, `2..`, `..`, `(1, -1)`, or with a step
    /// `(Some(0), None, Some(2))`. As the target of `assign` it is Python's slice assignment.
    pub fn slice(&self, range: impl SliceRange) -> SliceRef<T, B> {
        let mut loc = self.loc.clone();
        loc.indexed = false;
        loc.slice = Some(range.bounds());
        SliceRef {
            loc,
            bind: self.bind.clone(),
            _value: PhantomData,
        }
    }
}

/// `Ref` for the references whose value is a `Vec<T>`: lists and slices.
macro_rules! list_refs {
    ($($name:ident),*) => {
        $(
            impl<T: Referable, B: Bind> Ref for $name<T, B> {
                type Value = Vec<T>;
                type Bind = B;
                fn loc(&self) -> &Loc {
                    &self.loc
                }
                fn bind(&self) -> &B {
                    &self.bind
                }
                fn want(&self) -> &'static str {
                    "array"
                }
                fn element_want(&self) -> &'static str {
                    T::WANT
                }
                fn encode(value: &Vec<T>) -> serde_json::Result<String> {
                    encode_items(value)
                }
            }
        )*
    };
}

list_refs!(ListRef, SliceRef);

pub(crate) fn encode_items<T: Referable>(items: &[T]) -> serde_json::Result<String> {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&item.to_json()?);
    }
    out.push(']');
    Ok(out)
}

/// A slice of a list (`list.slice(1..3)`): a source of elements, or the target of Python's
/// slice assignment.
#[derive(Debug)]
pub struct SliceRef<T, B: Bind = Free> {
    pub(crate) loc: Loc,
    pub(crate) bind: B,
    _value: PhantomData<fn() -> T>,
}

/// Python slice bounds: `a..b`, `a..`, `..b`, `..`, `(a, b)` (any integers, negative ones
/// counting from the end), and `(start, stop, step)` with each an `Option<i64>`.
pub trait SliceRange {
    /// `[start, stop, step]`.
    #[doc(hidden)]
    fn bounds(self) -> [Option<i64>; 3];
}

impl SliceRange for std::ops::Range<i64> {
    fn bounds(self) -> [Option<i64>; 3] {
        [Some(self.start), Some(self.end), None]
    }
}
impl SliceRange for std::ops::RangeFrom<i64> {
    fn bounds(self) -> [Option<i64>; 3] {
        [Some(self.start), None, None]
    }
}
impl SliceRange for std::ops::RangeTo<i64> {
    fn bounds(self) -> [Option<i64>; 3] {
        [None, Some(self.end), None]
    }
}
impl SliceRange for std::ops::RangeFull {
    fn bounds(self) -> [Option<i64>; 3] {
        [None, None, None]
    }
}
impl SliceRange for (i64, i64) {
    fn bounds(self) -> [Option<i64>; 3] {
        [Some(self.0), Some(self.1), None]
    }
}
impl SliceRange for (Option<i64>, Option<i64>, Option<i64>) {
    fn bounds(self) -> [Option<i64>; 3] {
        [self.0, self.1, self.2]
    }
}

/// A reference to a dict: `.entry(key)` reaches one entry.
#[derive(Debug)]
pub struct DictRef<M, B: Bind = Free> {
    pub(crate) loc: Loc,
    pub(crate) bind: B,
    _value: PhantomData<fn() -> M>,
}

/// A map type a [`DictRef`] points at: `HashMap` or `BTreeMap` with `String` keys.
pub trait Map: Referable {
    /// The values' type.
    type Value: Referable;
    /// The entries, in the map's order.
    #[doc(hidden)]
    fn entries(&self) -> Vec<(&String, &Self::Value)>;
}

impl<V: Referable> Map for HashMap<String, V> {
    type Value = V;
    fn entries(&self) -> Vec<(&String, &V)> {
        self.iter().collect()
    }
}

impl<V: Referable> Map for BTreeMap<String, V> {
    type Value = V;
    fn entries(&self) -> Vec<(&String, &V)> {
        self.iter().collect()
    }
}

fn encode_map<M: Map>(map: &M) -> serde_json::Result<String> {
    encode_entries(map.entries())
}

/// A JSON object of `entries`, in their order, each value as [`Referable::to_json`] writes it.
pub(crate) fn encode_entries<'v, K: AsRef<str>, V: Referable>(
    entries: impl IntoIterator<Item = (K, &'v V)>,
) -> serde_json::Result<String> {
    let mut out = String::from("{");
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json_string(k.as_ref()));
        out.push(':');
        out.push_str(&v.to_json()?);
    }
    out.push('}');
    Ok(out)
}

impl<M: Map, B: Bind> DictRef<M, B> {
    /// The entry under `key` (any string: it travels as data, never as a path).
    pub fn entry(&self, key: impl Into<String>) -> <M::Value as Referable>::Ref<B> {
        <M::Value as Referable>::reference(self.loc.then(Step::Key(key.into())), self.bind.clone())
    }
}

impl<M: Map, B: Bind> Ref for DictRef<M, B> {
    type Value = M;
    type Bind = B;
    fn loc(&self) -> &Loc {
        &self.loc
    }
    fn bind(&self) -> &B {
        &self.bind
    }
    fn want(&self) -> &'static str {
        "object"
    }
    fn encode(value: &M) -> serde_json::Result<String> {
        encode_map(value)
    }
}

macro_rules! scalar_refs {
    ($want:literal, $shadowed:literal: $($ty:ty),*) => {
        $(
            impl Referable for $ty {
                type Ref<B: Bind> = ServerRef<$ty, B>;
                const WANT: &'static str = $want;
                const SHADOWED: bool = $shadowed;
                fn reference<B: Bind>(mut loc: Loc, bind: B) -> ServerRef<$ty, B> {
                    loc.shadowed = $shadowed;
                    ServerRef::new(loc, bind, $want)
                }
            }
        )*
    };
}

scalar_refs!("integer", false: i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, i128, u128);
scalar_refs!("number", false: f32, f64);
scalar_refs!("string", false: String, crate::Bytes, crate::Id);
scalar_refs!("boolean", false: bool);
scalar_refs!("*", false: serde_json::Value);
#[cfg(feature = "chrono")]
scalar_refs!("string", false: chrono::NaiveDate);
#[cfg(feature = "chrono")]
scalar_refs!("string", true: chrono::NaiveDateTime, chrono::DateTime<chrono::Utc>,
    chrono::DateTime<chrono::FixedOffset>);

impl<T: Referable> Referable for Option<T> {
    type Ref<B: Bind> = ServerRef<Option<T>, B>;
    const WANT: &'static str = "*";
    const SHADOWED: bool = T::SHADOWED;
    fn reference<B: Bind>(mut loc: Loc, bind: B) -> ServerRef<Option<T>, B> {
        loc.shadowed = T::SHADOWED;
        ServerRef::new(loc, bind, "*")
    }
}

impl<T: Referable> Referable for Vec<T> {
    type Ref<B: Bind> = ListRef<T, B>;
    const WANT: &'static str = "array";
    fn reference<B: Bind>(loc: Loc, bind: B) -> ListRef<T, B> {
        ListRef {
            loc,
            bind,
            _value: PhantomData,
        }
    }
    fn to_json(&self) -> serde_json::Result<String> {
        encode_items(self)
    }
}

macro_rules! map_refs {
    ($($map:ident),*) => {
        $(
            impl<V: Referable> Referable for $map<String, V> {
                type Ref<B: Bind> = DictRef<$map<String, V>, B>;
                const WANT: &'static str = "object";
                fn reference<B: Bind>(loc: Loc, bind: B) -> DictRef<$map<String, V>, B> {
                    DictRef {
                        loc,
                        bind,
                        _value: PhantomData,
                    }
                }
                fn to_json(&self) -> serde_json::Result<String> {
                    encode_map(self)
                }
                /// The whole dict, or one entry (added or replaced).
                fn patch(
                    &mut self,
                    names: &[&str],
                    value: &str,
                ) -> serde_json::Result<()> {
                    match names {
                        [] => patch_value(self, names, value),
                        [key] => {
                            self.insert((*key).to_string(), serde_json::from_str(value)?);
                            Ok(())
                        }
                        [_, name, ..] => Err(no_field(name)),
                    }
                }
            }
        )*
    };
}

map_refs!(HashMap, BTreeMap);

/// Special structures: references name them as whole values, and they list themselves as
/// kept in companion keys.
macro_rules! structure_refs {
    ($($ty:ident => $kind:ident),*) => {
        $(
            impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Referable
                for crate::structures::$ty<T>
            {
                type Ref<B: Bind> = ServerRef<crate::structures::$ty<T>, B>;
                const WANT: &'static str = "*";
                fn reference<B: Bind>(loc: Loc, bind: B) -> Self::Ref<B> {
                    ServerRef::new(loc, bind, "*")
                }
                fn structures(
                    names: &mut Vec<&'static str>,
                    out: &mut Vec<crate::keys::Structure>,
                ) {
                    out.push(crate::keys::Structure {
                        names: names.clone(),
                        kind: crate::keys::StructureKind::$kind,
                    });
                }
            }
        )*
    };
}

structure_refs!(Set => Set, PriorityQueue => Queue);

impl<T, B: Bind> Clone for ServerRef<T, B> {
    fn clone(&self) -> Self {
        ServerRef {
            loc: self.loc.clone(),
            bind: self.bind.clone(),
            want: self.want,
            _value: PhantomData,
        }
    }
}

impl<T, B: Bind> Clone for ListRef<T, B> {
    fn clone(&self) -> Self {
        ListRef {
            loc: self.loc.clone(),
            bind: self.bind.clone(),
            _value: PhantomData,
        }
    }
}

impl<T, B: Bind> Clone for SliceRef<T, B> {
    fn clone(&self) -> Self {
        SliceRef {
            loc: self.loc.clone(),
            bind: self.bind.clone(),
            _value: PhantomData,
        }
    }
}

impl<T, B: Bind> Clone for DictRef<T, B> {
    fn clone(&self) -> Self {
        DictRef {
            loc: self.loc.clone(),
            bind: self.bind.clone(),
            _value: PhantomData,
        }
    }
}

/// A [`Safe`](crate::Safe) field is referenced as a whole value, whatever it holds.
impl<T: Referable> Referable for crate::safe::Safe<T> {
    type Ref<B: Bind> = ServerRef<crate::safe::Safe<T>, B>;
    const WANT: &'static str = "*";
    const SHADOWED: bool = T::SHADOWED;
    fn reference<B: Bind>(mut loc: Loc, bind: B) -> ServerRef<crate::safe::Safe<T>, B> {
        loc.shadowed = T::SHADOWED;
        ServerRef::new(loc, bind, "*")
    }
}
