//! Field operations sent as the bare RedisJSON command, where that command alone does
//! exactly what the operation's script does.
//!
//! A list `append`/`extend` (`JSON.ARRAPPEND`), a `toggle` (`JSON.TOGGLE`) and a string
//! `append` (`JSON.STRAPPEND` and `JSON.GET` in one `MULTI`) on a field whose model re-arms
//! no expiry on writes: each command writes nothing where the script would fail (a missing
//! key or field, another JSON type, a key of another Redis type, memory at `maxmemory`:
//! all three are flagged `denyoom`), and answers what the script answers. So the call goes
//! out as the command, and only when the server answers that it did nothing does the
//! operation's script run, to say why with its typed error (or to do it, when the document
//! changed in between: either way the operation happens at most once). A call that got no
//! answer (a lost connection, a timeout) may have run, so it is never sent again: its
//! error is the caller's, as a script call's would be.
//!
//! Measured (`cargo xtask bench table`, BENCHMARKS.md): the script around each of these
//! commands cost the server 4–7 µs against 1.5 µs for the bare command; a model with an
//! expiry keeps the script, which re-arms it in the same step.

use redis::{Cmd, FromRedisValue, Pipeline, Value};

use super::FieldOp;
use crate::db::Db;
use crate::error::{Error, Result};

/// How an operation is sent bare.
enum Bare {
    /// One command, whose reply is `[value]`.
    Command(Cmd),
    /// `MULTI`, the write, the read of the new value, `EXEC`.
    Transaction(Pipeline),
}

/// Runs `op` on the field at `path` of the document `key` (a full key) as the bare command,
/// when it has one: `Ok(Some(reply))`, the reply the operation's script would have given,
/// decoded; `Ok(None)` when it has none, or when the server answered that the command did
/// nothing (the script is then to run); an error when no answer came.
pub(super) async fn run<R: FromRedisValue>(
    db: &Db,
    op: FieldOp,
    key: &str,
    path: &str,
    operands: &[&str],
) -> Result<Option<R>> {
    let Some(bare) = command(op, key, path, operands) else {
        return Ok(None);
    };
    let name = bare_name(op);
    let reply = match &bare {
        Bare::Command(cmd) => db.query_reply(name, 1, cmd, Ok).await,
        Bare::Transaction(pipe) => db
            .send_raw(name, 1, pipe)
            .await
            // The replies of MULTI and the queued commands, then EXEC's.
            .map(|mut replies| replies.pop().unwrap_or(Value::Nil)),
    };
    match reply {
        Ok(reply) => match done(op, reply) {
            Some(reply) => R::from_redis_value(reply).map(Some).map_err(|e| {
                Error::redis(&format!("decoding the reply of {name}"), e.into()).naming(key)
            }),
            None => Ok(None),
        },
        // The server refused the command (it did not run): the script says why.
        Err(e) if e.code().is_some() => Ok(None),
        Err(e) => Err(Error::redis(name, e).naming(key)),
    }
}

/// The command of `op` when it has one.
fn command(op: FieldOp, key: &str, path: &str, operands: &[&str]) -> Option<Bare> {
    match op {
        FieldOp::ListAppend if !operands.is_empty() => {
            let mut cmd = redis::cmd("JSON.ARRAPPEND");
            cmd.arg(key).arg(path).arg(operands);
            Some(Bare::Command(cmd))
        }
        FieldOp::Toggle => {
            let mut cmd = redis::cmd("JSON.TOGGLE");
            cmd.arg(key).arg(path);
            Some(Bare::Command(cmd))
        }
        FieldOp::Append if operands.len() == 1 => {
            let mut pipe = redis::pipe();
            pipe.cmd("MULTI")
                .cmd("JSON.STRAPPEND")
                .arg(key)
                .arg(path)
                .arg(operands[0])
                .cmd("JSON.GET")
                .arg(key)
                .arg(path)
                .cmd("EXEC");
            Some(Bare::Transaction(pipe))
        }
        _ => None,
    }
}

/// The command's name, for traces and errors.
fn bare_name(op: FieldOp) -> &'static str {
    match op {
        FieldOp::ListAppend => "JSON.ARRAPPEND",
        FieldOp::Toggle => "JSON.TOGGLE",
        _ => "JSON.STRAPPEND",
    }
}

/// The script's reply for the bare command's `reply` when the command did the operation, as
/// the script's fast path reads it (`lua/field_fast.lua`: the first entry of the reply); or
/// `None` when it did nothing.
fn done(op: FieldOp, reply: Value) -> Option<Value> {
    match op {
        // `[length]`, as the script replies.
        FieldOp::ListAppend => match reply {
            Value::Array(ref entries) if matches!(entries.first(), Some(Value::Int(_))) => {
                Some(reply)
            }
            _ => None,
        },
        // The new value, as the JSON text reading it gives.
        FieldOp::Toggle => match first(&reply)? {
            Value::Int(1) => Some(Value::BulkString(b"[true]".to_vec())),
            Value::Int(0) => Some(Value::BulkString(b"[false]".to_vec())),
            _ => None,
        },
        // EXEC's replies: JSON.STRAPPEND's `[length]`, then the string read after it.
        _ => match reply {
            Value::Array(mut replies) if replies.len() == 2 => {
                let read = replies.pop()?;
                match (first(&replies[0])?, read) {
                    (Value::Int(_), read @ Value::BulkString(_)) => Some(read),
                    _ => None,
                }
            }
            _ => None,
        },
    }
}

/// The first entry of an array reply.
fn first(reply: &Value) -> Option<&Value> {
    match reply {
        Value::Array(entries) => entries.first(),
        _ => None,
    }
}
