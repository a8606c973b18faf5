//! Typed queries over RediSearch: an index schema from the model's `#[rapyer(index)]`
//! fields, typed field markers (`User::fields()`), expressions combined with `&`, `|`, `!`,
//! every value escaped, and `find` that returns every match.

mod escape;
mod expr;
mod find;
mod index;
mod schema;

pub use crate::codec::INSTANT_SUFFIX;
pub use escape::{escape_tag, escape_text};
pub use expr::{
    BoolField, DateField, Expr, FieldName, Numeric, NumericField, TagArrayField, TagField,
    TextField,
};
pub use find::{Find, Order};
pub use index::schema;
pub use schema::{EnumField, IndexKind, IndexOptions, Indexable, SchemaField};
#[doc(hidden)]
pub use schema::{join, text_field};
