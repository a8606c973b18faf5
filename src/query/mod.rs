//! Typed queries over RediSearch: an index schema from the model's `#[rapyer(index)]`
//! fields, typed field markers (`User::fields()`), expressions combined with `&`, `|`, `!`,
//! every value escaped, and `find` that returns every match.

mod escape;
mod expr;
mod find;
mod index;
pub(crate) mod refused;
pub(crate) mod schema;

pub use escape::{escape_tag, escape_text};
pub use expr::{
    BoolField, DateField, Expr, FieldName, Numeric, NumericField, TagArrayField, TagField,
    TextField,
};
pub use find::{Find, Order};
pub use index::schema;
pub use refused::NotIndexed;
pub use schema::{EnumField, INSTANT_SUFFIX, IndexKind, IndexOptions, Indexable, SchemaField};
pub(crate) use schema::{add_instants, shadow_path};
