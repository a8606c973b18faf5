//! What gets indexed: the schema a model's `#[rapyer(index)]` fields make, chosen by each
//! field's type through [`Indexable`].

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::Serialize;

#[cfg(feature = "chrono")]
use super::expr::DateField;
use super::expr::{BoolField, Expr, FieldName, NumericField, TagArrayField, TagField};
#[cfg(feature = "chrono")]
use crate::codec::shadow_path;

/// How a field is indexed, from its `#[rapyer(index(...))]` options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexOptions {
    /// `index(text)`: full-text instead of exact TAG matching.
    pub text: bool,
    /// `index(sortable)`: the index keeps the value, so `sort_by` on it is faster (every
    /// indexed field can be sorted by).
    pub sortable: bool,
    /// `index(case_insensitive)`: TAG matching ignores case.
    pub case_insensitive: bool,
}

impl IndexOptions {
    /// Options as the derive writes them.
    pub const fn new(text: bool, sortable: bool, case_insensitive: bool) -> IndexOptions {
        IndexOptions {
            text,
            sortable,
            case_insensitive,
        }
    }
}

/// The RediSearch type of an indexed field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexKind {
    /// `NUMERIC`: integers and floats.
    Numeric,
    /// `TAG`: exact values (strings, booleans, lists of strings).
    Tag,
    /// `TEXT`: full-text.
    Text,
}

/// One field of an index schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaField {
    /// The JSONPath of the value(s) (`$.address.city`, `$.tags[*]`).
    pub path: String,
    /// The attribute name queries use (`address.city`).
    pub name: String,
    /// The RediSearch type.
    pub kind: IndexKind,
    /// The options it was declared with.
    pub options: IndexOptions,
}

/// A type that can be indexed, and the typed marker queries use for it.
///
/// Implemented for integers and floats (NUMERIC), `String` (TAG, or TEXT with
/// `index(text)`), `bool` (TAG), `Vec<String>` (a TAG array), `chrono` date-times (NUMERIC
/// on their instant, kept in a property beside the RFC 3339 text), every
/// `#[derive(AtomicModel)]` struct (its own indexed fields, under the field's name), and
/// unit-only enums passed to [`index_as_tag!`](crate::index_as_tag) (TAG).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be indexed",
    label = "#[rapyer(index)] on a field of this type",
    note = "indexable types: integers, floats, String, bool, Vec<String>, chrono DateTime<Utc> \
            and DateTime<FixedOffset>, models deriving AtomicModel (their own #[rapyer(index)] \
            fields), and unit-only enums passed to rapyer::index_as_tag!"
)]
pub trait Indexable {
    /// The marker `Model::fields()` holds for such a field.
    type Field;

    /// The marker for the field indexed as `name`.
    fn field(name: String) -> Self::Field;

    /// Adds the schema of a field at JSONPath `path`, named `name`.
    fn schema(path: &str, name: &str, options: IndexOptions, out: &mut Vec<SchemaField>);

    /// Adds the property paths (from this value's root, as property names, `prefix` first)
    /// of the date-times indexed by instant inside a value of this type.
    fn instants(prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        let _ = (prefix, out);
    }

    /// Adds this stored model's reference fields declared with `#[rapyer(on_delete = …)]`,
    /// which `Db::init` registers.
    #[doc(hidden)]
    fn referrers(out: &mut Vec<crate::referrers::Referrer>) {
        let _ = out;
    }
}

/// A member of `<Name>Fields` (`User::fields()`): the conditions of an indexed field of type
/// `T`, reached through `Deref` — `f.age.gt(17)` calls [`NumericField::gt`](super::NumericField),
/// `f.name.eq("ann")` a [`TagField`](super::TagField)'s, `f.address.city` a nested model's
/// fields. What `T` gives is `<T as Indexable>::Field`; `sort_by(&f.age, …)` takes it as is.
///
/// The marker is held without naming its type in the struct, so a field whose type cannot
/// be indexed is one compile error, at the field.
pub struct Indexed<T> {
    marker: Box<dyn Any + Send + Sync>,
    _type: PhantomData<fn() -> T>,
}

/// The conditions of the field of type `T` indexed as `name` (for generated code: a free
/// function, so a type that cannot be indexed is the same error as at the field's type).
pub fn indexed<T: Indexable>(name: String) -> Indexed<T>
where
    T::Field: Send + Sync + 'static,
{
    Indexed {
        marker: Box::new(T::field(name)),
        _type: PhantomData,
    }
}

impl<T: Indexable> Deref for Indexed<T>
where
    T::Field: 'static,
{
    type Target = T::Field;

    fn deref(&self) -> &T::Field {
        match self.marker.downcast_ref() {
            Some(marker) => marker,
            // `indexed` is the only constructor, and it stores a `T::Field`.
            None => unreachable!("an Indexed<T> holds the marker of T"),
        }
    }
}

impl<T: Indexable> FieldName for Indexed<T>
where
    T::Field: FieldName + 'static,
{
    fn field_name(&self) -> &str {
        (**self).field_name()
    }
}

impl<T: Indexable> fmt::Debug for Indexed<T>
where
    T::Field: fmt::Debug + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

/// `parent.child`, or `child` at the root: the name of a nested indexed field.
pub fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

fn push(
    out: &mut Vec<SchemaField>,
    path: &str,
    name: &str,
    kind: IndexKind,
    options: IndexOptions,
) {
    out.push(SchemaField {
        path: path.to_string(),
        name: name.to_string(),
        kind,
        options,
    });
}

macro_rules! numeric {
    ($($ty:ty),*) => {
        $(impl Indexable for $ty {
            type Field = NumericField<$ty>;
            fn field(name: String) -> NumericField<$ty> {
                NumericField::new(name)
            }
            fn schema(path: &str, name: &str, options: IndexOptions, out: &mut Vec<SchemaField>) {
                push(out, path, name, IndexKind::Numeric, options);
            }
        })*
    };
}

numeric!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f32, f64);

impl Indexable for String {
    type Field = TagField;
    fn field(name: String) -> TagField {
        TagField::new(name)
    }
    fn schema(path: &str, name: &str, options: IndexOptions, out: &mut Vec<SchemaField>) {
        let kind = if options.text {
            IndexKind::Text
        } else {
            IndexKind::Tag
        };
        push(out, path, name, kind, options);
    }
}

impl Indexable for bool {
    type Field = BoolField;
    fn field(name: String) -> BoolField {
        BoolField::new(name)
    }
    fn schema(path: &str, name: &str, options: IndexOptions, out: &mut Vec<SchemaField>) {
        push(out, path, name, IndexKind::Tag, options);
    }
}

impl Indexable for Vec<String> {
    type Field = TagArrayField;
    fn field(name: String) -> TagArrayField {
        TagArrayField::new(name)
    }
    fn schema(path: &str, name: &str, options: IndexOptions, out: &mut Vec<SchemaField>) {
        push(out, &format!("{path}[*]"), name, IndexKind::Tag, options);
    }
}

#[cfg(feature = "chrono")]
macro_rules! instants {
    ($($tz:ty),*) => {
        $(impl Indexable for chrono::DateTime<$tz> {
            type Field = DateField;
            fn field(name: String) -> DateField {
                DateField::new(name)
            }
            fn schema(path: &str, name: &str, options: IndexOptions, out: &mut Vec<SchemaField>) {
                push(out, &shadow_path(path), name, IndexKind::Numeric, options);
            }
            fn instants(prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
                out.push(prefix.clone());
            }
        })*
    };
}

#[cfg(feature = "chrono")]
instants!(chrono::Utc, chrono::FixedOffset);

/// An indexed field of a unit-only enum (stored as its variant's name): `plan.eq(Plan::Pro)`.
/// Make an enum indexable with [`index_as_tag!`](crate::index_as_tag).
#[derive(Debug, Clone)]
pub struct EnumField<T> {
    tag: TagField,
    _type: PhantomData<fn(T)>,
}

impl<T: Serialize> EnumField<T> {
    /// The field indexed as `name`.
    pub fn new(name: impl Into<String>) -> Self {
        EnumField {
            tag: TagField::new(name),
            _type: PhantomData,
        }
    }

    /// The variant's stored text; `None` for a value serde does not write as a string.
    fn text(value: &T) -> Option<String> {
        match serde_json::to_value(value) {
            Ok(serde_json::Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// Exactly `value` (a value not stored as text matches nothing).
    pub fn eq(&self, value: T) -> Expr {
        Self::text(&value).map_or(Expr::Nothing, |t| self.tag.eq(&t))
    }
    /// Anything but `value`.
    pub fn ne(&self, value: T) -> Expr {
        !self.eq(value)
    }
    /// One of `values`.
    pub fn one_of(&self, values: impl IntoIterator<Item = T>) -> Expr {
        let texts: Vec<String> = values.into_iter().filter_map(|v| Self::text(&v)).collect();
        self.tag.one_of(texts.iter().map(String::as_str))
    }
}

impl<T> FieldName for EnumField<T> {
    fn field_name(&self) -> &str {
        self.tag.field_name()
    }
}

/// Makes unit-only enums (serialized as their variant names) indexable as TAG fields:
/// `rapyer::index_as_tag!(Plan, Status);`, then `#[rapyer(index)] plan: Plan`.
#[macro_export]
macro_rules! index_as_tag {
    ($($ty:ty),+ $(,)?) => {
        $(
            const _: () = {
                impl $crate::__private::v1::Indexable for $ty {
                    type Field = $crate::__private::v1::EnumField<$ty>;
                    fn field(name: ::std::string::String) -> Self::Field {
                        $crate::__private::v1::EnumField::new(name)
                    }
                    fn schema(
                        path: &str,
                        name: &str,
                        options: $crate::__private::v1::IndexOptions,
                        out: &mut ::std::vec::Vec<$crate::__private::v1::SchemaField>,
                    ) {
                        <::std::string::String as $crate::__private::v1::Indexable>::schema(
                            path, name, options, out,
                        );
                    }
                }
            };
        )+
    };
}

/// A [`Safe`](crate::Safe) field is indexed as its inner type: a stored value of another
/// JSON type is left out of the index by RediSearch, as any such value is.
impl<T: Indexable> Indexable for crate::safe::Safe<T> {
    type Field = T::Field;
    fn field(name: String) -> T::Field {
        T::field(name)
    }
    fn schema(path: &str, name: &str, options: IndexOptions, out: &mut Vec<SchemaField>) {
        T::schema(path, name, options, out);
    }
    fn instants(prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        T::instants(prefix, out);
    }
}
