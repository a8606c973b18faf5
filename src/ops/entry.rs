//! The entry point of ServerOps blocks: run one, or show its script.

use super::compile;
use super::run::{self, Resolve};
use super::vocabulary::Ops;
use crate::db::Db;
use crate::error::{Error, Result};

/// The entry point of ServerOps blocks: [`ServerOps::scope`] runs one,
/// [`ServerOps::explain`] shows its script.
///
/// ```no_run
/// use rapyer::prelude::*;
///
/// #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
/// #[rapyer(hash_tag = "team")] // every key of a block shares one cluster slot
/// struct Board { #[rapyer(key)] id: String, tasks: Vec<String>, views: i64 }
///
/// # async fn demo(db: &Db) -> rapyer::Result<()> {
/// let (todo, done) = (Board::server_ref_for("todo"), Board::server_ref_for("done"));
/// // One script, all or nothing, nothing read into the client.
/// let (moved, views) = ServerOps::scope(db, |ops| {
///     let moved = ops.move_item(todo.tasks().at(0), done.tasks()); // pop todo[0], append it
///     let views = ops.incr_by_field(done.views(), todo.views());
///     (moved, views)
/// })
/// .await?; // (Option<Option<String>>, Option<i64>)
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ServerOps;

impl ServerOps {
    /// Builds a block with `build` and runs it on the server as one script, all or nothing.
    ///
    /// Returns what `build` returns, resolved: an [`Out`] becomes the operation's result
    /// (`None` when a condition skipped it), tuples and `Vec`s of them likewise, and `()`
    /// becomes [`Results`], every operation's result in order.
    ///
    /// [`Out`]: super::Out
    /// [`Results`]: super::Results
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

    /// The Lua script the block `build` would run: for a block whose operations each act on
    /// a field or dict entry of their own (no condition), the flat blocks' fast script (the
    /// same for all of them; none when the block has a float increment) followed by the
    /// script that runs when it declines, with the checks and writes of the kinds of
    /// operations the block uses; otherwise the block runtime's interpreter with the pieces
    /// the block needs, and the table of its operations. It depends only on the block's shape:
    /// the set of operations it uses, the kinds of places they reach (a place below a field
    /// such as a list element, a slice, a whole document, a list the block only appends to)
    /// and whether it has a condition. It holds no key, no value and not even the order or
    /// the number of the operations: the block itself travels in `ARGV`, its keys in `KEYS`,
    /// so blocks of one shape share one script.
    ///
    /// ```
    /// use rapyer::prelude::*;
    ///
    /// #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
    /// #[rapyer(hash_tag = "team")]
    /// struct User { #[rapyer(key)] id: String, age: i64, tags: Vec<String> }
    ///
    /// let (a, b) = (User::server_ref_for("a"), User::server_ref_for("b"));
    /// let one = ServerOps::explain(|ops| {
    ///     ops.set(a.age(), 1);
    ///     ops.set(b.tags(), vec![]);
    /// });
    /// // Other documents, other values, more operations of the same kinds on the same kinds
    /// // of places: the same script.
    /// let other = ServerOps::explain(|ops| {
    ///     ops.set(b.age(), 2);
    ///     ops.set(a.tags(), vec!["x".to_string()]);
    ///     ops.set(a.age(), 3);
    /// });
    /// assert_eq!(one, other);
    /// // A list element is a place below a field: the interpreter's part for those comes in.
    /// assert_ne!(one, ServerOps::explain(|ops| {
    ///     ops.set(b.tags().at(1), "x");
    ///     ops.set(a.age(), 1);
    /// }));
    /// // Another operation, another script.
    /// assert_ne!(one, ServerOps::explain(|ops| {
    ///     ops.incr(a.age(), 1);
    ///     ops.set(b.age(), 1);
    /// }));
    /// ```
    pub fn explain<F, R>(build: F) -> String
    where
        F: FnOnce(&Ops) -> R,
    {
        let ops = Ops::new();
        build(&ops);
        let program = ops.inner.into_inner();
        if let Some(plan) = compile::flat::plan(&program.frames[0], program.count) {
            let whole = compile::flat::script_text(&plan.kinds);
            if !compile::flat::has_quick(&plan.kinds) {
                return whole;
            }
            return format!("{}{whole}", crate::script::library::FLAT_FAST.body());
        }
        compile::script_text(&compile::compile(&program.frames[0], program.count, false).uses)
    }
}

/// A block refused while it was built names its keys as the server would: with the `Db`'s
/// namespace.
pub(super) fn namespaced(db: &Db, e: Error) -> Error {
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
