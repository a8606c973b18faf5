//! The program of a block: its operations, their arguments and their results.

use std::marker::PhantomData;

use super::block_op::BlockOp;
use super::cond::CondNode;
use super::refs::Loc;
use crate::error::Error;

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
    pub(super) fn new(index: usize) -> Out<T> {
        Out {
            index,
            _value: PhantomData,
        }
    }

    /// The operation's position in the block (and in [`Results`](super::Results)), counting from 0.
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
    /// Values, each its own `ARGV` entry, as trailing arguments.
    Args(Vec<String>),
}

/// One operation of a block.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// `RES[out] = func(params…)`.
    Call {
        func: BlockOp,
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
