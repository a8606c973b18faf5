//! ServerOps: typed batches of operations over stored models, compiled into one Lua script
//! that runs on the server, all or nothing, with no data travelling to the client.
//!
//! ```no_run
//! use rapyer::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
//! #[rapyer(hash_tag = "bank")]
//! struct Account {
//!     #[rapyer(key)]
//!     id: String,
//!     balance: i64,
//! }
//!
//! # async fn demo(db: &Db) -> rapyer::Result<()> {
//! let (a, b) = (Account::server_ref_for("a"), Account::server_ref_for("b"));
//! // Move 30 from a to b if a can afford it: one script, checked before it writes.
//! let moved = ServerOps::scope(db, |ops| {
//!     ops.when(a.balance().ge(30))
//!         .then(|ops| {
//!             ops.incr(a.balance(), -30);
//!             ops.incr(b.balance(), 30);
//!         })
//!         .out()
//! })
//! .await?;
//! println!("moved: {moved:?}"); // Some(true) when a could afford it
//! # Ok(()) }
//! ```
//!
//! Every reference comes from `model.server_ref()` or `Model::server_ref_for(id)`, with one
//! accessor per field; lists add `.slice(range)` (Python's slicing) and `.at(i)`, dicts
//! `.entry(key)`. What an operation accepts is decided by the types: `incr_by_field`
//! between numbers, `concat` of strings, `assign` and `swap` between references to the
//! same type. A mistake of that kind does not compile:
//!
//! ```compile_fail
//! # use rapyer::prelude::*;
//! # #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
//! # #[rapyer(hash_tag = "bank")]
//! # struct Account { #[rapyer(key)] id: String, owner: String, balance: i64 }
//! # async fn demo(db: &Db) -> rapyer::Result<()> {
//! let a = Account::server_ref_for("a");
//! ServerOps::scope(db, |ops| {
//!     ops.incr(a.owner(), 1); // `owner` is a String: only numbers are increased
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! ```compile_fail
//! # use rapyer::prelude::*;
//! # #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
//! # #[rapyer(hash_tag = "bank")]
//! # struct Account { #[rapyer(key)] id: String, owner: String, balance: i64 }
//! # async fn demo(db: &Db) -> rapyer::Result<()> {
//! let (a, b) = (Account::server_ref_for("a"), Account::server_ref_for("b"));
//! ServerOps::scope(db, |ops| {
//!     ops.swap(a.balance(), b.owner()); // an i64 and a String: swap needs one type
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! ```compile_fail
//! # use rapyer::prelude::*;
//! # #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
//! # #[rapyer(hash_tag = "bank")]
//! # struct Account { #[rapyer(key)] id: String, owner: String, balance: i64 }
//! # async fn demo(db: &Db) -> rapyer::Result<()> {
//! let a = Account::server_ref_for("a");
//! ServerOps::scope(db, |ops| {
//!     ops.incr(a.balance(), 0.5); // an integer field is increased only by integers
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! Keys are checked when the block runs, not when it compiles: a block over models whose
//! keys hash to different cluster slots (no shared `#[rapyer(hash_tag = "…")]`) compiles,
//! and fails with [`Error::CrossSlot`] before anything is sent.
//!
//! A model's atomic block (`model.atomic(&db, |m| …)`) is the same machine with one
//! vocabulary: each operation is defined once, as an [`Ops`] method, and a reference bound to
//! such a block has it as a method of its own, `r.op(…)` adding `ops.op(r, …)` (the ones for any
//! reference, `assign`, `swap`, `move_item`, `copy_model` and `when`, through [`BoundRef`]).
//!
//! How a block runs:
//! - **A flat plan for separate places.** A block whose every operation (`set`, `incr`,
//!   `decr`, `toggle`, a string or list `append`, `extend`, a dict `insert`) acts on a field
//!   or dict entry of its own, none inside another's, without a condition, is checked with
//!   one command per operation and then written with one bare RedisJSON command per
//!   operation at its own path: no interpreter, and only the changed paths are written.
//! - **One script per shape.** Keys travel in `KEYS`; the block itself (its operations in
//!   order, their places, values and conditions) travels as a program in `ARGV`, which the
//!   script reads as it runs. The script holds the runtime's interpreter, the runtime
//!   operations the block calls and the parts of the interpreter its kinds of places need
//!   (places below a field, slices, whole documents, lists only appended to, a condition),
//!   so its text depends only on that shape (`incr` and `decr` are one operation, so are
//!   `assign` and `copy_model`): not on the number or order of operations, the places they
//!   act on, keys, values or how many documents the block names. A loop adding 400
//!   increments to a field runs the same script as one adding two, and blocks share a
//!   handful of scripts ([`ServerOps::explain`] shows one). It is kept in the `Db`'s bounded
//!   cache of block scripts ([`Scripts::set_block_capacity`](crate::script::Scripts)) and
//!   run by `EVALSHA`; if the server lost it, it is sent as one `EVAL` of its text, in the
//!   same atomic step, which the server may evict later.
//! - **All or nothing.** The script reads every part of a document the block touches once
//!   (one `JSON.GET` per touched field, down to its first list index or dict key, or per
//!   whole document), runs every operation on that copy, checking keys, JSON types, indices, slice sizes,
//!   integer ranges and condition operands, and writes the changed parts back only when the
//!   last operation has succeeded. A list the block only appends to (nothing else in it
//!   reads or writes that list but conditions on its length) is not read: one
//!   `JSON.ARRLEN` checks it and gives its length, and its elements are appended with
//!   `JSON.ARRAPPEND` after every check. A
//!   failure is [`Error::Block`] naming the operation's
//!   index, wrapping the error that names its key and path; every key is then unchanged.
//! - **One cluster slot.** All keys of a block must hash to one slot, else
//!   [`Error::CrossSlot`] before anything is sent: give related models a hash tag
//!   (`#[rapyer(hash_tag = "…")]`).
//!
//! [`Error::Block`]: crate::Error::Block
//! [`Error::CrossSlot`]: crate::Error::CrossSlot

mod atomic;
mod block_op;
mod buffer;
mod builder;
mod companions;
mod compile;
mod cond;
mod entry;
mod numeric;
mod program;
pub(crate) mod refs;
mod run;
mod structures;
mod vocabulary;

pub use atomic::BoundRef;
pub(crate) use atomic::atomic;
pub use buffer::BufferRef;
pub use builder::{Then, When};
pub(crate) use cond::CondNode;
#[doc(hidden)]
pub use cond::Operand;
pub use cond::{Comparable, Cond, IntoOperand, Ordered};
pub use entry::ServerOps;
pub use numeric::{Accepts, Float, Int, Numeric};
pub use program::Out;
pub(crate) use program::{Op, Param, Program};
pub use refs::{
    Bind, Bound, DictRef, Free, ListRef, Loc, Map, Ref, Referable, ServerRef, SliceRange, SliceRef,
};
pub use run::{Resolve, Results};
pub use structures::Size;
pub use vocabulary::{Append, Clear, Insert, Ops, Whole};
