//! Field operations sent as the bare RedisJSON command, where that command alone does
//! exactly what the operation's script does.
//!
//! On a field whose model re-arms no expiry for the operation (no `ttl` for a write, no
//! `refresh_on_read` for a read): a list `append`/`extend` (`JSON.ARRAPPEND`), a `toggle`
//! (`JSON.TOGGLE`), a string `append` (`JSON.STRAPPEND` and `JSON.GET` in one `MULTI`),
//! a read of the field (`JSON.GET`, its JSON type checked here from the reply's first
//! byte, as the script's fast path does), a list's or a dict's length (`JSON.ARRLEN`,
//! `JSON.OBJLEN`), and a `set` that wants no JSON type (a value or optional field's:
//! `JSON.SET … XX`, which needs the field there, as the script does). Each command writes
//! nothing where the script would fail (a missing key or field, another JSON type, a key of
//! another Redis type, memory at `maxmemory`: the writes are flagged `denyoom`) and answers
//! what the script answers. So the call goes out as the command, and only when the server
//! answers that it did nothing (or a read finds another JSON type) does the operation's
//! script run, to say why with its typed error (or to do it, when the document changed in
//! between: either way the operation happens at most once). A call that got no answer (a
//! lost connection, a timeout) may have run, so it is never sent again: its error is the
//! caller's, as a script call's would be.
//!
//! Measured (BENCHMARKS.md): the script around each of these commands cost the server
//! 2.7–4.6 µs against 0.8–1.7 µs for the bare command, and with 64 calls in flight a list
//! `append` or a `toggle` went from 0.5× to 0.75–0.8× the bare command's rate. A model with
//! an expiry keeps the script, which re-arms it in the same step.

use redis::{Cmd, FromRedisValue, Pipeline, Value};

use super::op::{FieldOp, Want};
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
    want: Want,
    key: &str,
    path: &str,
    operands: &[&str],
) -> Result<Option<R>> {
    let Some((name, bare)) = command(op, want, key, path, operands) else {
        return Ok(None);
    };
    let reply = match &bare {
        Bare::Command(cmd) => db.query_reply(name, 1, cmd, Ok).await,
        Bare::Transaction(pipe) => db
            .send_raw(name, 1, pipe)
            .await
            // The replies of MULTI and the queued commands, then EXEC's.
            .map(|mut replies| replies.pop().unwrap_or(Value::Nil)),
    };
    match reply {
        Ok(reply) => match done(op, want, operands, reply) {
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

/// The command of `op` when it has one, and its name (for traces and errors).
fn command(
    op: FieldOp,
    want: Want,
    key: &str,
    path: &str,
    operands: &[&str],
) -> Option<(&'static str, Bare)> {
    let name = match op {
        FieldOp::ListAppend if !operands.is_empty() => "JSON.ARRAPPEND",
        FieldOp::Toggle if operands.is_empty() => "JSON.TOGGLE",
        FieldOp::Get if operands.is_empty() => "JSON.GET",
        FieldOp::ListLen if operands.is_empty() => "JSON.ARRLEN",
        FieldOp::DictLen if operands.is_empty() => "JSON.OBJLEN",
        // A set wanting no JSON type only needs the field to be there: `XX` sets nothing
        // (answers nil) where it is not, or where the document is not.
        FieldOp::Set if want.types == Want::ANY.types && operands.len() == 1 => "JSON.SET",
        FieldOp::Append if operands.len() == 1 => {
            let mut pipe = redis::pipe();
            pipe.cmd("MULTI")
                .cmd("JSON.STRAPPEND")
                .arg(key)
                .arg(path)
                .arg(operands)
                .cmd("JSON.GET")
                .arg(key)
                .arg(path)
                .cmd("EXEC");
            return Some(("JSON.STRAPPEND", Bare::Transaction(pipe)));
        }
        _ => return None,
    };
    let mut cmd = redis::cmd(name);
    // The operands: the elements appended, or the value set (then `XX`); none for the others.
    cmd.arg(key).arg(path).arg(operands);
    if op == FieldOp::Set {
        cmd.arg("XX");
    }
    Some((name, Bare::Command(cmd)))
}

/// The script's reply for the bare command's `reply` when the command did the operation, as
/// the script's fast path reads it (`lua/field_fast.lua`: the first entry of the reply); or
/// `None` when it did nothing.
fn done(op: FieldOp, want: Want, operands: &[&str], reply: Value) -> Option<Value> {
    match op {
        // The value sent, as reading it back gives it.
        FieldOp::Set => {
            let value = operands.first()?;
            match reply {
                Value::Okay => {}
                Value::SimpleString(ok) if ok == "OK" => {}
                _ => return None,
            }
            Some(Value::BulkString(format!("[{value}]").into_bytes()))
        }
        // `[length]`, as the script replies.
        FieldOp::ListAppend | FieldOp::ListLen | FieldOp::DictLen => match reply {
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
        // `[value]`, when of a wanted type.
        FieldOp::Get => match reply {
            Value::BulkString(ref text) if wanted(want.types, text) => Some(reply),
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

/// Whether `text`, a JSONPath reply of one value (`[value]`), holds a value of one of the
/// JSON types `types` lists (as [`Want`] spells them), told from its first byte as
/// `lua/lib/json.lua`'s `json_type` does: a number with a `.`, `e` or `E` is `number`, any
/// other `integer`. An empty reply (no such field) holds none.
fn wanted(types: &str, text: &[u8]) -> bool {
    let found = match text.get(1) {
        Some(b'"') => "string",
        Some(b'[') => "array",
        Some(b'{') => "object",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        Some(b'-' | b'0'..=b'9') if text.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) => {
            "number"
        }
        Some(b'-' | b'0'..=b'9') => "integer",
        _ => return false,
    };
    types == "*" || types.split(',').any(|t| t == found)
}

#[cfg(test)]
mod tests {
    use super::wanted;

    #[test]
    fn a_read_is_taken_only_when_it_holds_a_wanted_json_type() {
        for (types, text, expected) in [
            ("integer", "[-12]", true),
            ("integer", "[1.5]", false),
            ("integer", "[1e5]", false),
            ("number,integer", "[1E5]", true),
            ("number,integer", "[7]", true),
            ("string", "[\"1.5\"]", true),
            ("string", "[15]", false),
            ("array", "[[1]]", true),
            ("object", "[{}]", true),
            ("object", "[[]]", false),
            ("boolean", "[false]", true),
            ("boolean", "[null]", false),
            ("*", "[null]", true),
            ("*", "[]", false),
            ("*", "", false),
        ] {
            assert_eq!(wanted(types, text.as_bytes()), expected, "{types} {text}");
        }
    }
}
