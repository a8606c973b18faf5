//! Typed queries over RediSearch: an index schema from the model's `#[rapyer(index)]`
//! fields, typed field markers (`User::fields()`), expressions combined with `&`, `|`, `!`,
//! every value escaped, and `find` that returns every match.
//!
//! ```no_run
//! use rapyer::prelude::*;
//!
//! #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
//! struct User {
//!     #[rapyer(key)] id: String,
//!     #[rapyer(index)] name: String,           // TAG: exact, case-sensitive
//!     #[rapyer(index(sortable))] age: i64,     // NUMERIC
//!     #[rapyer(index(text))] bio: String,      // full text
//!     nickname: String,                        // stored, not indexed
//! }
//!
//! # async fn demo(db: &Db) -> rapyer::Result<()> {
//! db.init::<User>().await?; // creates the index, or re-creates it when the schema changed
//! let f = User::fields();
//! let adults: Vec<User> = User::find(db, f.age.ge(18) & f.name.one_of(["ann", "bob"]))
//!     .sort_by(&f.age, Order::Desc)
//!     .limit(0, 20)
//!     .all()
//!     .await?;
//! let rustaceans = User::find(db, f.bio.contains("rust")).count().await?;
//! # Ok(()) }
//! ```
//!
//! An expression is plain data until it runs: [`Expr::to_query`] shows the query text,
//! every value escaped (TAG values are quoted, so `a b` never matches `a` or `b`):
//!
//! ```
//! # use rapyer::prelude::*;
//! # #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
//! # struct User { #[rapyer(key)] id: String, #[rapyer(index)] name: String,
//! #              #[rapyer(index)] age: i64 }
//! let f = User::fields();
//! let q = f.age.ge(18) & !f.name.eq("a b");
//! assert_eq!(q.to_query()?, r#"(@age:[18 +inf] -@name:{"a b"})"#);
//! # Ok::<(), rapyer::Error>(())
//! ```
//!
//! What a field's kind cannot answer does not compile. A field without
//! `#[rapyer(index)]` has no marker, so it cannot be queried:
//!
//! ```compile_fail
//! # use rapyer::prelude::*;
//! # #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
//! # struct User { #[rapyer(key)] id: String, #[rapyer(index)] name: String, nickname: String }
//! let f = User::fields();
//! let q = f.nickname.eq("annie"); // `nickname` is not indexed
//! ```
//!
//! A TAG field (a `String` indexed as a tag) matches exact values, so it has no order to
//! compare by: `eq`, `ne`, `one_of` and `starts_with`, no `gt`:
//!
//! ```compile_fail
//! # use rapyer::prelude::*;
//! # #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
//! # struct User { #[rapyer(key)] id: String, #[rapyer(index)] name: String }
//! let f = User::fields();
//! let q = f.name.gt("m"); // TAG fields have no range conditions
//! ```
//!
//! A value of the wrong type for the field does not compile either:
//!
//! ```compile_fail
//! # use rapyer::prelude::*;
//! # #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
//! # struct User { #[rapyer(key)] id: String, #[rapyer(index)] age: i64 }
//! let f = User::fields();
//! let q = f.age.eq("18"); // `age` is NUMERIC over i64: compare it with an i64
//! ```

mod escape;
mod expr;
mod find;
mod index;
mod merge;
pub(crate) mod refused;
pub(crate) mod schema;
mod shard;

pub use crate::codec::INSTANT_SUFFIX;
pub use escape::{escape_tag, escape_text};
#[cfg(feature = "chrono")]
pub use expr::DateField;
pub use expr::{
    BoolField, Expr, FieldName, Numeric, NumericField, TagArrayField, TagField, TextField,
};
pub use find::{Find, Order};
pub use index::schema;
pub use refused::NotIndexed;
pub use schema::{EnumField, IndexKind, IndexOptions, Indexable, Indexed, SchemaField};
