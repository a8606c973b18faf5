//! The `Ops` builder: a block's operations in order, conditionals with `When` and `Then`.
//! (`Ops` and its operations are in `vocabulary.rs`: an inherent method's errors name it
//! `Ops::op` only when it is defined beside the type.)

use std::cell::RefCell;

use super::Out;
use super::block_op::BlockOp;
use super::cond::Cond;
use super::program::{Op, Param, Program};
use super::vocabulary::Ops;
use crate::error::{Error, Result};

impl Ops {
    pub(super) fn new() -> Ops {
        Ops {
            inner: RefCell::new(Program {
                frames: vec![Vec::new()],
                count: 0,
                error: None,
            }),
        }
    }

    pub(super) fn finish(self) -> Result<Program> {
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
        func: BlockOp,
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
