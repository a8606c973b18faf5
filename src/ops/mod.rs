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
//! same type.
//!
//! How a block runs:
//! - **One script per set of operations.** Keys travel in `KEYS`; the block itself (its
//!   operations in order, their places, values and conditions) travels as a program in
//!   `ARGV`, which the script reads before it runs anything. The script holds the runtime's
//!   interpreter and the operations the block uses, so it depends only on that set: a loop
//!   adding 400 increments runs the same script as one increment, and blocks share a
//!   handful of scripts ([`ServerOps::explain`] shows one). It is kept in the `Db`'s bounded
//!   cache of block scripts ([`Scripts::set_block_capacity`](crate::script::Scripts)) and
//!   run by `EVALSHA`; if the server lost it, it is sent as one `EVAL` of its text, in the
//!   same atomic step, which the server may evict later.
//! - **All or nothing.** The script reads every part of a document the block touches once,
//!   runs every operation on that copy, checking keys, JSON types, indices, slice sizes,
//!   integer ranges and condition operands, and writes the changed parts back only when the
//!   last operation has succeeded. A failure is [`Error::Block`] naming the operation's
//!   index, wrapping the error that names its key and path; every key is then unchanged.
//! - **One cluster slot.** All keys of a block must hash to one slot, else
//!   [`Error::CrossSlot`] before anything is sent: give related models a hash tag
//!   (`#[rapyer(hash_tag = "…")]`).

mod compile;
pub(crate) mod refs;
mod run;

use std::cell::RefCell;
use std::fmt::Display;
use std::marker::PhantomData;

pub use refs::{
    Bind, Bound, DictRef, Free, ListRef, Loc, Map, Ref, Referable, ServerRef, SliceRange, SliceRef,
};
pub use run::{Resolve, Results};

use crate::db::Db;
use crate::error::{Error, Result};
use crate::model::AtomicModel;
use refs::Step;

/// The entry point of ServerOps blocks: [`ServerOps::scope`] runs one,
/// [`ServerOps::explain`] shows its script.
#[derive(Debug)]
pub struct ServerOps;

impl ServerOps {
    /// Builds a block with `build` and runs it on the server as one script, all or nothing.
    ///
    /// Returns what `build` returns, resolved: an [`Out`] becomes the operation's result
    /// (`None` when a condition skipped it), tuples and `Vec`s of them likewise, and `()`
    /// becomes [`Results`], every operation's result in order.
    pub async fn scope<F, R>(db: &Db, build: F) -> Result<R::Output>
    where
        F: FnOnce(&Ops) -> R,
        R: Resolve,
    {
        let ops = Ops::new();
        let ret = build(&ops);
        let program = ops.finish().map_err(|e| namespaced(db, e))?;
        let results = run::run(db, &program, false).await?.0;
        ret.resolve(&results)
    }

    /// The Lua script the block `build` would run: the block runtime's interpreter with the
    /// pieces the block's operations need, and the table of those operations. It holds no
    /// key, no value and not even the order of the operations: the block itself travels as
    /// a program in `ARGV`, its keys in `KEYS`, so every block using the same operations
    /// runs the same script.
    pub fn explain<F, R>(build: F) -> String
    where
        F: FnOnce(&Ops) -> R,
    {
        let ops = Ops::new();
        build(&ops);
        let program = ops.inner.into_inner();
        compile::script_text(&compile::compile(&program.frames[0], program.count, false).uses)
    }
}

/// The result of one operation of a block, read back from what the block returns.
#[derive(Debug)]
pub struct Out<T> {
    pub(crate) index: usize,
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for Out<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Out<T> {}

impl<T> Out<T> {
    fn new(index: usize) -> Out<T> {
        Out {
            index,
            _value: PhantomData,
        }
    }

    /// The operation's position in the block (and in [`Results`]), counting from 0.
    pub fn index(&self) -> usize {
        self.index
    }
}

/// One argument of a runtime call in the compiled script.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    /// A place, compiled to `L(root, steps…)`.
    Loc(Loc),
    /// Several places, as trailing arguments.
    Locs(Vec<Loc>),
    /// A literal of the script's shape (a JSON type name).
    Lit(&'static str),
    /// A value, sent in `ARGV`.
    Arg(String),
}

/// A condition's operand: a place or a JSON value.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub enum Operand {
    /// A place.
    Loc(Loc),
    /// A JSON value.
    Value(String),
}

#[derive(Debug, Clone)]
pub(crate) enum CondNode {
    Cmp {
        op: &'static str,
        want: &'static str,
        left: Operand,
        right: Operand,
    },
    And(Box<CondNode>, Box<CondNode>),
    Or(Box<CondNode>, Box<CondNode>),
    Not(Box<CondNode>),
}

/// A condition for [`Ops::when`]: a comparison of a reference with a value or another
/// reference (`r.age().gt(17)`, `a.balance().ge(b.balance())`), combined with `&`, `|`, `!`.
#[derive(Debug, Clone)]
pub struct Cond {
    pub(crate) node: CondNode,
    pub(crate) error: Option<String>,
}

impl std::ops::BitAnd for Cond {
    type Output = Cond;
    fn bitand(self, rhs: Cond) -> Cond {
        Cond {
            node: CondNode::And(Box::new(self.node), Box::new(rhs.node)),
            error: self.error.or(rhs.error),
        }
    }
}

impl std::ops::BitOr for Cond {
    type Output = Cond;
    fn bitor(self, rhs: Cond) -> Cond {
        Cond {
            node: CondNode::Or(Box::new(self.node), Box::new(rhs.node)),
            error: self.error.or(rhs.error),
        }
    }
}

impl std::ops::Not for Cond {
    type Output = Cond;
    fn not(self) -> Cond {
        Cond {
            node: CondNode::Not(Box::new(self.node)),
            error: self.error,
        }
    }
}

/// One operation of a block.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// `RES[out] = func(params…)`.
    Call {
        func: &'static str,
        params: Vec<Param>,
        out: usize,
    },
    /// `if cond then … else … end`, its result the branch taken.
    When {
        cond: Box<CondNode>,
        then: Vec<Op>,
        otherwise: Vec<Op>,
        out: usize,
    },
}

/// The operations of a block, numbered in the order they were added.
#[derive(Debug)]
pub(crate) struct Program {
    /// The frames being filled: the block, then any open branch.
    pub(crate) frames: Vec<Vec<Op>>,
    /// How many operations (results) there are.
    pub(crate) count: usize,
    /// The first operation that could not be built, and why.
    pub(crate) error: Option<(usize, Error)>,
}

/// The operations of one block, handed to the closure of [`ServerOps::scope`]. Each method
/// adds one operation and returns its [`Out`].
#[derive(Debug)]
pub struct Ops {
    inner: RefCell<Program>,
}

/// A number a reference can point at: every integer width (exact decimal arithmetic on
/// the server) and the floats.
pub trait Numeric: Referable + Copy + Display {
    /// [`Int`] or [`Float`].
    type Kind;
    /// The JSON type (`integer` or `number`).
    #[doc(hidden)]
    const WANT_NUMBER: &'static str;
    /// The lowest and highest value as decimal text (empty for `f64`, which only needs to
    /// stay finite).
    #[doc(hidden)]
    fn range() -> (String, String);
    /// The value as the decimal text the script reads, and its negation; `None` for a float
    /// that is not finite.
    #[doc(hidden)]
    fn text(self, negate: bool) -> Option<String>;
}

/// The kind of the integer types, for [`Ops::incr_by_field`].
#[derive(Debug)]
pub struct Int;
/// The kind of the float types, for [`Ops::incr_by_field`].
#[derive(Debug)]
pub struct Float;

/// Which kinds of number a number of this kind may be increased by: integers by integers,
/// floats by any number.
pub trait Accepts<K> {}
impl Accepts<Int> for Int {}
impl Accepts<Int> for Float {}
impl Accepts<Float> for Float {}

macro_rules! integer_numeric {
    ($($ty:ty),*) => {
        $(
            impl Numeric for $ty {
                type Kind = Int;
                const WANT_NUMBER: &'static str = "integer";
                fn range() -> (String, String) {
                    (<$ty>::MIN.to_string(), <$ty>::MAX.to_string())
                }
                fn text(self, negate: bool) -> Option<String> {
                    let wide = self as i128;
                    Some(if negate { (-wide).to_string() } else { wide.to_string() })
                }
            }
        )*
    };
}

integer_numeric!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

macro_rules! float_numeric {
    ($($ty:ty),*) => {
        $(
            impl Numeric for $ty {
                type Kind = Float;
                const WANT_NUMBER: &'static str = "number";
                // f64: any finite result; f32: within its range, which the script checks.
                fn range() -> (String, String) {
                    if <$ty>::MAX as f64 == f64::MAX {
                        (String::new(), String::new())
                    } else {
                        (format!("{:?}", <$ty>::MIN as f64), format!("{:?}", <$ty>::MAX as f64))
                    }
                }
                fn text(self, negate: bool) -> Option<String> {
                    let x = if negate { -(self as f64) } else { self as f64 };
                    x.is_finite().then(|| format!("{x:?}"))
                }
            }
        )*
    };
}

float_numeric!(f32, f64);

/// A value a condition compares: one of this type, or a reference to one.
pub trait IntoOperand<T> {
    #[doc(hidden)]
    fn operand(self) -> std::result::Result<Operand, String>;
}

/// The types conditions compare for equality: numbers, strings, booleans.
pub trait Comparable: Referable {}
/// The types conditions also order: numbers (numerically) and strings (byte-wise).
pub trait Ordered: Comparable {}

fn value_operand<T: serde::Serialize + ?Sized>(value: &T) -> std::result::Result<Operand, String> {
    match serde_json::to_string(value) {
        Ok(text) if text != "null" => Ok(Operand::Value(text)),
        Ok(_) => Err("a condition cannot compare with a value that is not finite".into()),
        Err(e) => Err(e.to_string()),
    }
}

macro_rules! comparable {
    ($ordered:tt: $($ty:ty),*) => {
        $(
            impl Comparable for $ty {}
            comparable!(@ordered $ordered $ty);
            impl IntoOperand<$ty> for $ty {
                fn operand(self) -> std::result::Result<Operand, String> {
                    value_operand(&self)
                }
            }
            impl<B: Bind> IntoOperand<$ty> for ServerRef<$ty, B> {
                fn operand(self) -> std::result::Result<Operand, String> {
                    Ok(Operand::Loc(self.loc))
                }
            }
            impl<B: Bind> IntoOperand<$ty> for &ServerRef<$ty, B> {
                fn operand(self) -> std::result::Result<Operand, String> {
                    Ok(Operand::Loc(self.loc.clone()))
                }
            }
        )*
    };
    (@ordered yes $ty:ty) => { impl Ordered for $ty {} };
    (@ordered no $ty:ty) => {};
}

comparable!(yes: i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f32, f64, String);
comparable!(no: bool);

impl IntoOperand<String> for &str {
    fn operand(self) -> std::result::Result<Operand, String> {
        value_operand(self)
    }
}

impl<T: Comparable, B: Bind> ServerRef<T, B> {
    fn compare(&self, op: &'static str, other: impl IntoOperand<T>) -> Cond {
        let (right, error) = match other.operand() {
            Ok(o) => (o, None),
            Err(e) => (Operand::Value("null".into()), Some(e)),
        };
        Cond {
            node: CondNode::Cmp {
                op,
                want: T::WANT,
                left: Operand::Loc(self.loc.clone()),
                right,
            },
            error,
        }
    }

    /// The value here equals `other` (a value or a reference).
    pub fn eq(&self, other: impl IntoOperand<T>) -> Cond {
        self.compare("eq", other)
    }

    /// The value here differs from `other`.
    pub fn ne(&self, other: impl IntoOperand<T>) -> Cond {
        self.compare("ne", other)
    }
}

impl<T: Ordered, B: Bind> ServerRef<T, B> {
    /// The value here is greater than `other` (a value or a reference).
    pub fn gt(&self, other: impl IntoOperand<T>) -> Cond {
        self.compare("gt", other)
    }

    /// The value here is greater than or equal to `other`.
    pub fn ge(&self, other: impl IntoOperand<T>) -> Cond {
        self.compare("ge", other)
    }

    /// The value here is less than `other`.
    pub fn lt(&self, other: impl IntoOperand<T>) -> Cond {
        self.compare("lt", other)
    }

    /// The value here is less than or equal to `other`.
    pub fn le(&self, other: impl IntoOperand<T>) -> Cond {
        self.compare("le", other)
    }
}

/// References that name a whole value (not a slice): what [`Ops::swap`] exchanges.
pub trait Whole: Ref {}
impl<T: serde::Serialize, B: Bind> Whole for ServerRef<T, B> {}
impl<T: Referable, B: Bind> Whole for ListRef<T, B> {}
impl<M: Map, B: Bind> Whole for DictRef<M, B> {}

impl Ops {
    fn new() -> Ops {
        Ops {
            inner: RefCell::new(Program {
                frames: vec![Vec::new()],
                count: 0,
                error: None,
            }),
        }
    }

    fn finish(self) -> Result<Program> {
        let mut program = self.inner.into_inner();
        if let Some((op, source)) = program.error.take() {
            return Err(Error::Block {
                op,
                source: Box::new(source),
            });
        }
        Ok(program)
    }

    /// Adds `func(params…)`; an `Err` param list records the first build error instead.
    pub(crate) fn push<T>(
        &self,
        func: &'static str,
        params: std::result::Result<Vec<Param>, Error>,
    ) -> Out<T> {
        let mut p = self.inner.borrow_mut();
        let out = p.count;
        p.count += 1;
        match params {
            Ok(params) => {
                let frame = p.frames.last_mut().expect("a block always has a frame");
                frame.push(Op::Call { func, params, out });
            }
            Err(e) => {
                if p.error.is_none() {
                    p.error = Some((out, e));
                }
            }
        }
        Out::new(out)
    }

    /// Replaces the value at `target` with `value`. On a slice it is Python's slice
    /// assignment from the given elements; on a dict entry it adds the entry if absent.
    pub fn set<R: Ref>(&self, target: R, value: impl Into<R::Value>) -> Out<()> {
        let params = writable(target.loc()).and_then(|()| {
            let value = value.into();
            let json = R::encode(&value).map_err(|source| Error::Serialize {
                key: target.loc().doc.key.clone(),
                source,
            })?;
            crate::crud::check_finite(&target.loc().doc.key, &target.loc().path(), &value, &json)?;
            let (name, id) = id_fix(target.loc())?;
            Ok(vec![
                Param::Loc(target.loc().clone()),
                Param::Lit(target.want()),
                Param::Arg(json),
                Param::Arg(name),
                Param::Arg(id),
            ])
        });
        self.push("op_set", params)
    }

    /// Adds `by` (negative to subtract) to the number at `target`; returns the new value.
    /// Integers are exact over their type's whole range: a result outside it is
    /// [`Error::Overflow`].
    pub fn incr<R: Ref>(&self, target: R, by: R::Value) -> Out<R::Value>
    where
        R::Value: Numeric,
    {
        self.push("op_incr", incr_params(target.loc(), by, false))
    }

    /// Adds the number at `by` to the number at `target`; returns the new value. Integers
    /// take integers; floats take any number.
    pub fn incr_by_field<A: Ref, B: Ref>(&self, target: A, by: B) -> Out<A::Value>
    where
        A::Value: Numeric,
        B::Value: Numeric,
        <A::Value as Numeric>::Kind: Accepts<<B::Value as Numeric>::Kind>,
    {
        let (lo, hi) = <A::Value as Numeric>::range();
        self.push(
            "op_incr_by",
            Ok(vec![
                Param::Loc(target.loc().clone()),
                Param::Lit(<A::Value as Numeric>::WANT_NUMBER),
                Param::Loc(by.loc().clone()),
                Param::Lit(<B::Value as Numeric>::WANT_NUMBER),
                Param::Arg(lo),
                Param::Arg(hi),
            ]),
        )
    }

    /// Copies the value at `from` to `to`. Between slices (or a list and a slice) this is
    /// Python's `to_list[slice] = from_slice`: a slice without a step is resized, one with a
    /// step needs as many elements as it has. A whole model copied over another keeps the
    /// target's id.
    pub fn assign<A: Ref, B: Ref<Value = A::Value>>(&self, from: A, to: B) -> Out<()> {
        self.push(
            "op_assign",
            assign_params(from.loc(), &to, from.element_want()),
        )
    }

    /// Exchanges the values at `a` and `b`. Whole models keep their ids.
    pub fn swap<A: Whole, B: Whole<Value = A::Value>>(&self, a: A, b: B) -> Out<()> {
        let params = writable(a.loc())
            .and_then(|()| writable(b.loc()))
            .and_then(|()| {
                let (an, ai) = id_fix(a.loc())?;
                let (bn, bi) = id_fix(b.loc())?;
                Ok(vec![
                    Param::Loc(a.loc().clone()),
                    Param::Loc(b.loc().clone()),
                    Param::Lit(a.want()),
                    Param::Arg(an),
                    Param::Arg(ai),
                    Param::Arg(bn),
                    Param::Arg(bi),
                ])
            });
        self.push("op_swap", params)
    }

    /// Joins the strings at `sources` with `separator` into the string at `into`; returns
    /// the new string.
    pub fn concat<S, I, T>(&self, sources: I, into: T, separator: &str) -> Out<String>
    where
        S: Ref<Value = String>,
        I: IntoIterator<Item = S>,
        T: Ref<Value = String>,
    {
        let locs: Vec<Loc> = sources.into_iter().map(|s| s.loc().clone()).collect();
        self.push(
            "op_concat",
            Ok(vec![
                Param::Loc(into.loc().clone()),
                Param::Arg(separator.to_string()),
                Param::Locs(locs),
            ]),
        )
    }

    /// Appends the elements at `from` (a list or a slice) to `list`; returns its new length.
    pub fn append_from<T: Referable, L: Bind, A: Ref<Value = Vec<T>>>(
        &self,
        list: ListRef<T, L>,
        from: A,
    ) -> Out<usize> {
        self.push(
            "op_append_from",
            Ok(vec![
                Param::Loc(list.loc.clone()),
                Param::Lit(T::WANT),
                Param::Loc(from.loc().clone()),
            ]),
        )
    }

    /// Removes the list element `from` (`list.at(i)`) and appends it to `to`: an atomic
    /// queue transfer. Returns the element, or `None` (and changes nothing) when the source
    /// list has no element at that index, e.g. because it is empty.
    pub fn move_item<T: Referable, A: Ref<Value = T>, L: Bind>(
        &self,
        from: A,
        to: ListRef<T, L>,
    ) -> Out<Option<T>> {
        let params = match from.loc().steps.last() {
            Some(Step::Index(_)) if from.loc().slice.is_none() => Ok(vec![
                Param::Loc(from.loc().clone()),
                Param::Lit(T::WANT),
                Param::Loc(to.loc.clone()),
            ]),
            _ => Err(invalid(
                from.loc(),
                "move_item takes a list element: `list.at(i)`",
            )),
        };
        self.push("op_move", params)
    }

    /// Copies the model at `from` to the model of the same type with id `to_id`, creating
    /// or replacing it; the copy carries `to_id` in its key field.
    pub fn copy_model<M: AtomicModel, R: Ref<Value = M>>(
        &self,
        from: R,
        to_id: impl Display,
    ) -> Out<()> {
        let to = M::server_ref_for(to_id);
        self.push("op_assign", assign_params(from.loc(), &to, "*"))
    }

    /// A conditional: `ops.when(cond).then(|ops| …).otherwise(|ops| …)`. The condition is
    /// evaluated on the server when the block runs, seeing the block's earlier operations.
    pub fn when(&self, cond: Cond) -> When<'_> {
        let mut p = self.inner.borrow_mut();
        let out = p.count;
        p.count += 1;
        if let Some(message) = &cond.error
            && p.error.is_none()
        {
            p.error = Some((
                out,
                Error::InvalidOp {
                    key: String::new(),
                    path: String::new(),
                    message: message.clone(),
                },
            ));
        }
        let frame = p.frames.last_mut().expect("a block always has a frame");
        frame.push(Op::When {
            cond: Box::new(cond.node),
            then: Vec::new(),
            otherwise: Vec::new(),
            out,
        });
        When { ops: self, out }
    }

    /// Runs `build` into a new frame and returns the operations it added.
    fn branch(&self, build: impl FnOnce(&Ops)) -> Vec<Op> {
        self.inner.borrow_mut().frames.push(Vec::new());
        build(self);
        self.inner
            .borrow_mut()
            .frames
            .pop()
            .expect("the branch's frame")
    }

    /// Puts `ops` into the `then` (or `otherwise`) branch of the conditional numbered `out`.
    fn fill(&self, out: usize, otherwise: bool, ops: Vec<Op>) {
        let mut p = self.inner.borrow_mut();
        for frame in p.frames.iter_mut().rev() {
            if let Some(mut slot) = find_when(frame, out) {
                let target = if otherwise { &mut slot.1 } else { &mut slot.0 };
                target.extend(ops);
                return;
            }
        }
    }
}

fn find_when(ops: &mut [Op], out: usize) -> Option<(&mut Vec<Op>, &mut Vec<Op>)> {
    for op in ops.iter_mut() {
        if let Op::When {
            then,
            otherwise,
            out: o,
            ..
        } = op
        {
            if *o == out {
                return Some((then, otherwise));
            }
            if let Some(found) = find_when(then, out) {
                return Some(found);
            }
            if let Some(found) = find_when(otherwise, out) {
                return Some(found);
            }
        }
    }
    None
}

/// A conditional being built: [`When::then`] gives its first branch.
#[must_use = "a condition does nothing without `.then(|ops| …)`"]
#[derive(Debug)]
pub struct When<'a> {
    ops: &'a Ops,
    out: usize,
}

impl<'a> When<'a> {
    /// The operations to run when the condition holds.
    pub fn then(self, build: impl FnOnce(&Ops)) -> Then<'a> {
        let ops = self.ops.branch(build);
        self.ops.fill(self.out, false, ops);
        Then {
            ops: self.ops,
            out: self.out,
        }
    }
}

/// A conditional with its `then` branch: add [`Then::otherwise`], or use it as the
/// [`Out`] of whether the condition held.
#[derive(Debug)]
pub struct Then<'a> {
    ops: &'a Ops,
    out: usize,
}

impl Then<'_> {
    /// The operations to run when the condition does not hold. Returns whether it held.
    pub fn otherwise(self, build: impl FnOnce(&Ops)) -> Out<bool> {
        let ops = self.ops.branch(build);
        self.ops.fill(self.out, true, ops);
        Out::new(self.out)
    }

    /// Whether the condition held, as the block's result.
    pub fn out(self) -> Out<bool> {
        Out::new(self.out)
    }
}

/// A block refused while it was built names its keys as the server would: with the `Db`'s
/// namespace.
fn namespaced(db: &Db, e: Error) -> Error {
    match e {
        Error::Block { op, source } => {
            let source = match *source {
                Error::InvalidOp { key, path, message } if !key.is_empty() => Error::InvalidOp {
                    key: db.key(&key),
                    path,
                    message,
                },
                Error::Serialize { key, source } => Error::Serialize {
                    key: db.key(&key),
                    source,
                },
                Error::NonFinite { key, path } => Error::NonFinite {
                    key: db.key(&key),
                    path,
                },
                Error::Overflow { key, path, kind } => Error::Overflow {
                    key: db.key(&key),
                    path,
                    kind,
                },
                other => other,
            };
            Error::Block {
                op,
                source: Box::new(source),
            }
        }
        other => other,
    }
}

fn invalid(loc: &Loc, message: &str) -> Error {
    Error::InvalidOp {
        key: loc.doc.key.clone(),
        path: loc.path(),
        message: message.to_string(),
    }
}

/// Refuses writes to an indexed date-time (its search instant would go stale).
fn writable(loc: &Loc) -> Result<()> {
    if loc.indexed && loc.shadowed {
        return Err(invalid(
            loc,
            "an indexed date-time cannot be written by a block (its search instant lives \
             beside it); use the field handle's set",
        ));
    }
    Ok(())
}

/// The key field's name and the id's JSON, for a whole document; empty otherwise.
fn id_fix(loc: &Loc) -> Result<(String, String)> {
    if !loc.is_document() {
        return Ok((String::new(), String::new()));
    }
    match &loc.doc.id {
        Ok((name, id)) => Ok((name.to_string(), id.clone())),
        Err(message) => Err(invalid(loc, message)),
    }
}

fn incr_params<T: Numeric>(
    loc: &Loc,
    by: T,
    negate: bool,
) -> std::result::Result<Vec<Param>, Error> {
    let text = by.text(negate).ok_or_else(|| Error::NonFinite {
        key: loc.doc.key.clone(),
        path: loc.path(),
    })?;
    let (lo, hi) = T::range();
    Ok(vec![
        Param::Loc(loc.clone()),
        Param::Lit(T::WANT_NUMBER),
        Param::Arg(text),
        Param::Arg(lo),
        Param::Arg(hi),
    ])
}

fn assign_params<B: Ref>(
    from: &Loc,
    to: &B,
    element_want: &'static str,
) -> std::result::Result<Vec<Param>, Error> {
    writable(to.loc())?;
    let (name, id) = id_fix(to.loc())?;
    Ok(vec![
        Param::Loc(from.clone()),
        Param::Loc(to.loc().clone()),
        Param::Lit(to.want()),
        Param::Lit(element_want),
        Param::Arg(name),
        Param::Arg(id),
    ])
}

/// The model pipeline behind `model.pipeline(&db, |p| …)`.
pub(crate) async fn pipeline<M, F, R>(model: &mut M, db: &Db, build: F) -> Result<R::Output>
where
    M: AtomicModel,
    F: for<'o> FnOnce(M::Ref<Bound<'o>>) -> R,
    R: Resolve,
{
    let ops = Ops::new();
    let root = M::reference(Loc::root::<M>(&model.model_id()), Bound(&ops));
    let ret = build(root);
    let program = ops.finish().map_err(|e| namespaced(db, e))?;
    let (results, echo) = run::run(db, &program, true).await?;
    run::apply_echo(model, db, &echo)?;
    ret.resolve(&results)
}

// Operations of a model pipeline's bound references.

fn bound<B: Bind>(bind: &B) -> &Ops {
    bind.ops()
        .expect("bound references always hold their block")
}

impl<'a, T: serde::Serialize> ServerRef<T, Bound<'a>> {
    /// Replaces the value.
    pub fn set(&self, value: impl Into<T>) -> Out<()> {
        bound(&self.bind).set(self.clone(), value)
    }
}

impl<'a, T: Numeric> ServerRef<T, Bound<'a>> {
    /// Adds `by`; returns the new value (exact for integers, [`Error::Overflow`] outside the
    /// type's range).
    pub fn incr(&self, by: T) -> Out<T> {
        bound(&self.bind).push("op_incr", incr_params(&self.loc, by, false))
    }

    /// Subtracts `by`; returns the new value.
    pub fn decr(&self, by: T) -> Out<T> {
        bound(&self.bind).push("op_incr", incr_params(&self.loc, by, true))
    }
}

impl ServerRef<String, Bound<'_>> {
    /// Appends `suffix`; returns the new string.
    pub fn append(&self, suffix: &str) -> Out<String> {
        bound(&self.bind).push(
            "op_str_append",
            Ok(vec![
                Param::Loc(self.loc.clone()),
                Param::Arg(suffix.to_string()),
            ]),
        )
    }
}

impl ServerRef<bool, Bound<'_>> {
    /// Flips the boolean; returns the new value.
    pub fn toggle(&self) -> Out<bool> {
        bound(&self.bind).push("op_toggle", Ok(vec![Param::Loc(self.loc.clone())]))
    }
}

impl<T: Referable> ListRef<T, Bound<'_>> {
    fn items(&self, items: &[T]) -> std::result::Result<String, Error> {
        let json = refs::encode_items(items).map_err(|source| Error::Serialize {
            key: self.loc.doc.key.clone(),
            source,
        })?;
        crate::crud::check_finite(&self.loc.doc.key, &self.loc.path(), items, &json)?;
        Ok(json)
    }

    /// Appends one element; returns the new length.
    pub fn append(&self, value: impl Into<T>) -> Out<usize> {
        self.extend([value.into()])
    }

    /// Appends every element; returns the new length.
    pub fn extend(&self, values: impl IntoIterator<Item = T>) -> Out<usize> {
        let values: Vec<T> = values.into_iter().collect();
        let params = self
            .items(&values)
            .map(|json| vec![Param::Loc(self.loc.clone()), Param::Arg(json)]);
        bound(&self.bind).push("op_list_push", params)
    }

    /// Inserts before `index` (Python's `insert`: clamped, negative from the end); returns
    /// the new length.
    pub fn insert(&self, index: i64, value: impl Into<T>) -> Out<usize> {
        let value = value.into();
        let params = value
            .to_json()
            .map_err(|source| Error::Serialize {
                key: self.loc.doc.key.clone(),
                source,
            })
            .and_then(|json| {
                crate::crud::check_finite(&self.loc.doc.key, &self.loc.path(), &value, &json)?;
                Ok(json)
            })
            .map(|json| {
                vec![
                    Param::Loc(self.loc.clone()),
                    Param::Arg(index.to_string()),
                    Param::Arg(json),
                ]
            });
        bound(&self.bind).push("op_list_insert", params)
    }

    /// Removes and returns the last element; [`Error::IndexOutOfRange`] when empty.
    pub fn pop(&self) -> Out<T> {
        self.pop_at(-1)
    }

    /// Removes and returns the element at `index`; [`Error::IndexOutOfRange`] outside.
    pub fn pop_at(&self, index: i64) -> Out<T> {
        let loc = self.loc.then(Step::Index(index));
        bound(&self.bind).push("op_list_pop", Ok(vec![Param::Loc(loc)]))
    }

    /// Replaces the element at `index`; [`Error::IndexOutOfRange`] outside.
    pub fn set(&self, index: i64, value: impl Into<T>) -> Out<()> {
        bound(&self.bind).set(self.at(index), value)
    }

    /// Replaces the whole list.
    pub fn replace(&self, values: Vec<T>) -> Out<()> {
        bound(&self.bind).set(self.clone(), values)
    }

    /// Empties the list.
    pub fn clear(&self) -> Out<()> {
        bound(&self.bind).push(
            "op_clear",
            Ok(vec![Param::Loc(self.loc.clone()), Param::Lit("array")]),
        )
    }
}

impl<M: Map> DictRef<M, Bound<'_>> {
    /// Sets the entry `key` to `value`, adding it if absent.
    pub fn insert(&self, key: impl Into<String>, value: impl Into<M::Value>) -> Out<()> {
        bound(&self.bind).set(self.entry(key), value)
    }

    /// Removes the entry `key`; returns its value, `None` if it was absent.
    pub fn remove(&self, key: impl Into<String>) -> Out<Option<M::Value>> {
        let loc = self.loc.then(Step::Key(key.into()));
        bound(&self.bind).push("op_dict_remove", Ok(vec![Param::Loc(loc)]))
    }

    /// Sets every entry of `entries`, in order; returns the dict's new size.
    pub fn update<K: Into<String>>(
        &self,
        entries: impl IntoIterator<Item = (K, M::Value)>,
    ) -> Out<usize> {
        let entries: Vec<(String, M::Value)> =
            entries.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let params = refs::encode_entries(entries.iter().map(|(k, v)| (k, v)))
            .map_err(|source| Error::Serialize {
                key: self.loc.doc.key.clone(),
                source,
            })
            .and_then(|json| {
                crate::depth::check(&self.loc.doc.key, &self.loc.path(), &json)?;
                // Without a `null` or a long number in the text, no value hides one.
                if crate::finite::may_hide(&json) {
                    for (k, v) in &entries {
                        let mut path = self.loc.path();
                        crate::finite::push_member(&mut path, k);
                        crate::crud::non_finite(&self.loc.doc.key, &path, crate::finite::find(v))?;
                    }
                }
                Ok(json)
            })
            .map(|json| vec![Param::Loc(self.loc.clone()), Param::Arg(json)]);
        bound(&self.bind).push("op_dict_update", params)
    }

    /// Replaces the whole dict.
    pub fn replace(&self, map: M) -> Out<()> {
        bound(&self.bind).set(self.clone(), map)
    }

    /// Empties the dict.
    pub fn clear(&self) -> Out<()> {
        bound(&self.bind).push(
            "op_clear",
            Ok(vec![Param::Loc(self.loc.clone()), Param::Lit("object")]),
        )
    }
}
