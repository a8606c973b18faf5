//! Running one script: `EVALSHA`, and on NOSCRIPT one atomic reload-and-run.

use std::io::Write;

use redis::{Cmd, FromRedisValue, RedisError, RedisWrite, ToRedisArgs, Value};

use super::Script;
use super::batch::{Batch, Item};
use super::reply::{decode, failure};
use crate::db::Db;
use crate::error::{Error, Result};

impl Db {
    /// Runs the script defined as `name` with `keys` (each given this handle's namespace) and
    /// `args`, and decodes its reply.
    ///
    /// `keys` and `args` are anything redis-rs can send: `&["a", "b"]`, a `Vec<String>`, a
    /// tuple like `("a", 5)`, or [`NONE`](crate::script::NONE). Keys a script builds itself are
    /// not namespaced.
    ///
    /// Errors, all before anything is sent unless noted: an unknown name is
    /// [`Error::UnknownScript`] listing the defined ones; a key count the script does not
    /// take is [`Error::InvalidScript`]; a Lua error is [`Error::Script`] with Redis's
    /// message (sent); a server busy with another script is [`Error::Busy`] (sent).
    ///
    /// Replies follow Redis's Lua→RESP rules: a Lua number is truncated to an integer,
    /// `false` and `nil` become null, and a table stops at its first `nil`. Return floats
    /// and large numbers as strings (`string.format('%.17g', x)`), or JSON via
    /// [`Json`](crate::script::Json).
    pub async fn run_script<T: FromRedisValue>(
        &self,
        name: &str,
        keys: impl ToRedisArgs,
        args: impl ToRedisArgs,
    ) -> Result<T> {
        let script = self.registry().lookup(name)?;
        let (cmd, keys) = self.evalsha(&script, &keys, &args)?;
        let value = self.eval(&script, cmd, keys).await?;
        decode(&script, value)
    }

    /// Runs one of the library's scripts on full keys (namespace already applied).
    pub(crate) async fn run_lua<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[impl ToRedisArgs + Sync],
    ) -> Result<T> {
        let mut cmd = evalsha_head(script, keys.len());
        for key in keys {
            cmd.arg(key);
        }
        for a in args {
            cmd.arg(a);
        }
        let value = self.eval(script, cmd, keys.len()).await?;
        decode(script, value)
    }

    /// The `EVALSHA` command for `script` with this handle's namespace on every key, and its
    /// key count; an error if the key count does not fit the script. Keys are written
    /// straight into the command, namespace first, without intermediate copies.
    pub(crate) fn evalsha(
        &self,
        script: &Script,
        keys: &impl ToRedisArgs,
        args: &impl ToRedisArgs,
    ) -> Result<(Cmd, usize)> {
        let claimed = keys.num_of_args();
        let mut cmd = evalsha_head(script, claimed);
        let written = Namespaced::write(&mut cmd, self.namespace(), keys);
        let (mut cmd, count) = if written == claimed {
            (cmd, written)
        } else {
            // A type whose `num_of_args` is wrong: count its arguments exactly instead.
            let keys = keys.to_redis_args();
            let mut cmd = evalsha_head(script, keys.len());
            Namespaced::write(&mut cmd, self.namespace(), &keys);
            (cmd, keys.len())
        };
        script.check_key_count(count)?;
        cmd.arg(args);
        Ok((cmd, count))
    }

    /// Sends an `EVALSHA` built for `script`. On NOSCRIPT (nothing ran) the same call is sent
    /// again as `MULTI, SCRIPT LOAD, EVALSHA, EXEC`: no command of another client can run
    /// between the load and the call, so it cannot miss, and the script runs exactly once. A
    /// block's script is sent again as one `EVAL` of its text instead, which caches it where
    /// the server may evict it (see the [module](super)).
    /// An out-of-memory refusal names the call's first key.
    pub(crate) async fn eval(&self, script: &Script, cmd: Cmd, keys: usize) -> Result<Value> {
        self.eval_with(script, cmd, keys, Value::extract_error)
            .await
    }

    /// [`eval`](Db::eval) whose reply may hold server errors as entries (a gathered field
    /// call's, one per failed call): only an error reply of the whole call is an error.
    pub(crate) async fn eval_entries(
        &self,
        script: &Script,
        cmd: Cmd,
        keys: usize,
    ) -> Result<Value> {
        self.eval_with(script, cmd, keys, crate::db::top_error)
            .await
    }

    async fn eval_with(
        &self,
        script: &Script,
        cmd: Cmd,
        keys: usize,
        extract: fn(Value) -> redis::RedisResult<Value>,
    ) -> Result<Value> {
        self.eval_once(script, &cmd, keys, extract)
            .await
            .map_err(|e| match first_key(&cmd, keys) {
                Some(key) => e.naming(&key),
                None => e,
            })
    }

    async fn eval_once(
        &self,
        script: &Script,
        cmd: &Cmd,
        keys: usize,
        extract: fn(Value) -> redis::RedisResult<Value>,
    ) -> Result<Value> {
        let first = self.query_reply("EVALSHA", keys, cmd, extract).await;
        match first {
            Ok(value) => Ok(value),
            Err(e)
                if script.is_block()
                    && e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                tracing::debug!(target: "rapyer::script", script = script.name(), "NOSCRIPT, sending the block's text");
                let mut again = Cmd::new();
                again.arg("EVAL").arg(script.body());
                // Everything after `EVALSHA <sha>`: the key count, the keys, the arguments.
                for arg in cmd.args_iter().skip(2) {
                    if let redis::Arg::Simple(bytes) = arg {
                        again.arg(bytes);
                    }
                }
                self.query_reply("EVAL", keys, &again, extract)
                    .await
                    .map_err(|e| failure(script, e))
            }
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                tracing::debug!(target: "rapyer::script", script = script.name(), "NOSCRIPT, reloading");
                let mut batch = Batch::new(true);
                batch.push(Item::script(script.clone(), cmd.clone(), keys));
                let mut values = batch.send(self, "EVALSHA").await?;
                values.pop().ok_or_else(|| {
                    Error::redis(
                        "EVALSHA",
                        RedisError::from((redis::ErrorKind::Client, "no reply to the script call")),
                    )
                })
            }
            Err(e) => Err(failure(script, e)),
        }
    }
}

/// The first key of an `EVALSHA` command (its fourth argument), when it has keys.
fn first_key(cmd: &Cmd, keys: usize) -> Option<String> {
    if keys == 0 {
        return None;
    }
    match cmd.args_iter().nth(3) {
        Some(redis::Arg::Simple(key)) => Some(String::from_utf8_lossy(key).into_owned()),
        _ => None,
    }
}

/// `EVALSHA <sha> <keys>`, ready for the keys and arguments.
pub(crate) fn evalsha_head(script: &Script, keys: usize) -> Cmd {
    let mut cmd = Cmd::new();
    cmd.arg("EVALSHA").arg(script.sha()).arg(keys);
    cmd
}

/// Writes each argument it receives as one command argument prefixed with a namespace.
struct Namespaced<'a> {
    cmd: &'a mut Cmd,
    namespace: &'a [u8],
    written: usize,
}

impl Namespaced<'_> {
    /// Appends `keys` to `cmd`, each prefixed with `namespace`; returns how many.
    fn write(cmd: &mut Cmd, namespace: &str, keys: &impl ToRedisArgs) -> usize {
        let mut out = Namespaced {
            cmd,
            namespace: namespace.as_bytes(),
            written: 0,
        };
        keys.write_redis_args(&mut out);
        out.written
    }
}

impl RedisWrite for Namespaced<'_> {
    fn write_arg(&mut self, arg: &[u8]) {
        let mut next = self.writer_for_next_arg();
        // Writing into the command's Vec cannot fail.
        let _ = next.write_all(arg);
    }

    fn writer_for_next_arg(&mut self) -> impl std::io::Write + '_ {
        self.written += 1;
        let mut next = self.cmd.writer_for_next_arg();
        let _ = next.write_all(self.namespace);
        next
    }
}
