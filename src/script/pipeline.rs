//! The public batch: [`Pipeline`] (plain or transaction) and the [`Reply`] handle of each
//! command.

use std::marker::PhantomData;

use redis::{Cmd, FromRedisValue, RedisError, ToRedisArgs, Value};

use super::batch::{Batch, Item};
use super::{Call, Script};
use crate::db::Db;
use crate::error::{Error, Result};

/// Script calls and plain commands sent in one round trip: [`Db::pipeline`] and
/// [`Db::transaction`].
///
/// What each guarantees:
///
/// * **Both** send everything in one write, run every command in the order added, never
///   report NOSCRIPT, and never run a script call twice. The scripts a batch calls are loaded
///   with `SCRIPT LOAD` inside the same `MULTI … EXEC` as the calls, so a `SCRIPT FLUSH` or
///   a restart between two batches costs a reload, not a failure.
/// * **A transaction** is one `MULTI … EXEC`: no other client's command runs in between. A
///   command refused while queueing (an unknown command, a wrong argument count) aborts
///   it whole: nothing runs. A command that fails while running (a Lua error, a WRONGTYPE)
///   fails alone and the others still apply, because Redis does not roll back: put steps
///   that must all happen or none into one script that checks before it writes.
/// * **A pipeline** is not isolated: other clients' commands may run between its commands.
///   Every command fails alone: plain commands are sent bare, so one Redis refuses (an
///   unknown command, a wrong argument count) touches nothing else; each run of consecutive
///   script calls (at most 1,000) is sent as `MULTI`, the `SCRIPT LOAD`s it needs, the
///   calls, `EXEC`, and rapyer builds those calls so that none is refused while queueing.
///   Only an ACL refusal of a call (`NOPERM`) would abort the other calls of its run.
///   Blocking commands such as `BLPOP` never sit inside a `MULTI`.
///
/// [`execute`](Pipeline::execute) returns one reply per command added, or the first failure;
/// [`execute_each`](Pipeline::execute_each) returns each command's own reply or error.
/// Keys given to script calls get the handle's namespace; commands added with
/// [`cmd`](Pipeline::cmd) are sent as they are (build their keys with [`Db::key`]).
///
/// ```no_run
/// use rapyer::{Db, Keys};
/// # async fn demo(db: &Db) -> rapyer::Result<()> {
/// db.scripts().define("bump", Keys::Fixed(1), "return redis.call('INCRBY', KEYS[1], ARGV[1])")?;
/// let mut tx = db.transaction();
/// let bumped = tx.run_script("bump", &["counter"], &[2]);
/// tx.cmd(redis::cmd("SET").arg(db.key("marker")).arg("done").to_owned());
/// let replies = tx.execute().await?;
/// let counter: i64 = bumped.typed().get(&replies)?;
/// # Ok(()) }
/// ```
#[must_use = "a pipeline does nothing until `execute` is awaited"]
pub struct Pipeline<'db> {
    db: &'db Db,
    batch: Batch,
    /// The script of the last `run_script`, so a batch of calls looks its name up once.
    last: Option<Script>,
    /// The first mistake made while building; `execute` returns it and sends nothing.
    error: Option<Error>,
}

impl std::fmt::Debug for Pipeline<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("transaction", &self.batch.is_atomic())
            .field("commands", &self.batch.len())
            .finish_non_exhaustive()
    }
}

impl Db {
    /// A batch of script calls and commands sent in one round trip, in order, never reporting
    /// NOSCRIPT. See [`Pipeline`].
    pub fn pipeline(&self) -> Pipeline<'_> {
        Pipeline::new(self, false)
    }

    /// A batch run as one `MULTI … EXEC`, with the scripts it calls loaded inside it.
    /// See [`Pipeline`].
    pub fn transaction(&self) -> Pipeline<'_> {
        Pipeline::new(self, true)
    }
}

impl<'db> Pipeline<'db> {
    fn new(db: &'db Db, atomic: bool) -> Pipeline<'db> {
        Pipeline {
            db,
            batch: Batch::new(atomic),
            last: None,
            error: None,
        }
    }

    /// Adds a call of the script defined as `name` (see [`Db::run_script`]). An unknown name
    /// or a wrong key count makes [`execute`](Pipeline::execute) fail before sending.
    pub fn run_script(
        &mut self,
        name: &str,
        keys: impl ToRedisArgs,
        args: impl ToRedisArgs,
    ) -> Reply {
        let script = match self.last.take() {
            Some(last) if last.name() == name => Ok(last),
            _ => self.db.registry().lookup(name),
        };
        let built = script.and_then(|script| {
            let (cmd, keys) = self.db.evalsha(&script, &keys, &args)?;
            self.last = Some(script.clone());
            Ok((cmd, keys, script))
        });
        self.push_script(built)
    }

    /// Adds a typed call (from a [`script!`](crate::script!) command or [`Call::new`]).
    pub fn add<R: FromRedisValue>(&mut self, call: Call<R>) -> Reply<R> {
        let built = call
            .command(self.db)
            .map(|(cmd, keys)| (cmd, keys, call.script().clone()));
        self.push_script(built).typed()
    }

    fn push_script(&mut self, built: Result<(Cmd, usize, Script)>) -> Reply {
        match built {
            Ok((cmd, keys, script)) => {
                let index = self.batch.push(Item::script(script.clone(), cmd, keys));
                Reply::new(index, Some(script))
            }
            Err(e) => self.fail(e),
        }
    }

    /// Adds a plain command, sent as it is. `MULTI`, `EXEC`, `DISCARD`, `WATCH` and
    /// `UNWATCH` are refused (use [`Db::transaction`]).
    pub fn cmd(&mut self, cmd: Cmd) -> Reply {
        let name = match cmd.args_iter().next() {
            Some(redis::Arg::Simple(name)) => String::from_utf8_lossy(name).to_ascii_uppercase(),
            _ => String::new(),
        };
        if matches!(
            name.as_str(),
            "" | "MULTI" | "EXEC" | "DISCARD" | "WATCH" | "UNWATCH"
        ) {
            return self.fail(Error::redis(
                "pipeline",
                RedisError::from((
                    redis::ErrorKind::Client,
                    "this command cannot be added to a pipeline",
                    format!("`{name}`; use db.transaction() for MULTI/EXEC"),
                )),
            ));
        }
        Reply::new(self.batch.push(Item::command(cmd)), None)
    }

    fn fail(&mut self, error: Error) -> Reply {
        if self.error.is_none() {
            self.error = Some(error);
        }
        // A reply handle that points past the replies: reading it is an error, but `execute`
        // already failed with the reason.
        Reply::new(usize::MAX, None)
    }

    /// How many commands were added.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.batch.len() == 0
    }

    /// Whether this is a transaction (one `MULTI … EXEC`).
    pub fn is_transaction(&self) -> bool {
        self.batch.is_atomic()
    }

    /// What this batch is called in traces and errors.
    fn op(&self) -> &'static str {
        if self.batch.is_atomic() {
            "transaction"
        } else {
            "pipeline"
        }
    }

    /// Sends everything in one round trip; returns one reply per command, in order.
    ///
    /// Fails without sending anything if a call was built wrong (unknown script, wrong key
    /// count, refused command). Otherwise returns the first command that failed, as
    /// [`Error::Script`] (a script's Lua error), [`Error::Busy`] or [`Error::Redis`]; see
    /// [`Pipeline`] for which other commands took effect.
    pub async fn execute(self) -> Result<Vec<Value>> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let op = self.op();
        self.batch.send(self.db, op).await
    }

    /// Sends everything in one round trip, like [`execute`](Pipeline::execute), and returns
    /// each command's own outcome, in order: its reply, or the typed error it failed with
    /// ([`Error::Script`] for a script call, [`Error::Busy`], or [`Error::Redis`] whose
    /// operation names the command's index). In a pipeline a failing command fails alone and
    /// every other reply is here; in a transaction aborted while queueing, every command
    /// reports the abort. The outer error is a batch built wrong (nothing sent) or a failure
    /// of the round trip itself (the outcome of each command is then unknown).
    pub async fn execute_each(self) -> Result<Vec<Result<Value>>> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let op = self.op();
        self.batch.send_each(self.db, op).await
    }
}

/// One command's reply in a [`Pipeline`]: where it sits in the replies of
/// [`Pipeline::execute`], and how to decode it (`reply.get(&replies)`).
#[derive(Debug, Clone)]
pub struct Reply<T = Value> {
    index: usize,
    script: Option<Script>,
    _reply: PhantomData<fn() -> T>,
}

impl<T: FromRedisValue> Reply<T> {
    fn new(index: usize, script: Option<Script>) -> Reply<T> {
        Reply {
            index,
            script,
            _reply: PhantomData,
        }
    }

    /// The same reply, decoded as `U`: `let n: i64 = reply.typed().get(&replies)?`.
    pub fn typed<U: FromRedisValue>(self) -> Reply<U> {
        Reply {
            index: self.index,
            script: self.script,
            _reply: PhantomData,
        }
    }

    /// The position of the command in the pipeline.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Decodes this command's reply from the replies `execute` returned.
    pub fn get(&self, replies: &[Value]) -> Result<T> {
        let op = match &self.script {
            Some(script) => format!("decoding the reply of script `{}`", script.name()),
            None => "decoding a pipeline reply".to_string(),
        };
        let reply = replies.get(self.index).ok_or_else(|| {
            Error::redis(
                &op,
                RedisError::from((
                    redis::ErrorKind::Client,
                    "no reply at this position",
                    format!("index {} of {}", self.index, replies.len()),
                )),
            )
        })?;
        T::from_redis_value_ref(reply).map_err(|e| Error::redis(&op, e.into()))
    }
}
