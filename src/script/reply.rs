//! A script's reply and its failures: decoding the reply, and reading a server's refusal
//! as the error that names the script (shared by single calls, pipelines and batches).

use redis::{FromRedisValue, RedisError, ServerError, Value};

use super::Script;
use crate::error::{Error, Result, is_out_of_memory, server_error_text, server_message};

/// Decodes a script's reply into `T`; a reply of another shape names the script.
pub(crate) fn decode<T: FromRedisValue>(script: &Script, value: Value) -> Result<T> {
    T::from_redis_value(value).map_err(|e| {
        Error::redis(
            &format!("decoding the reply of script `{}`", script.name()),
            e.into(),
        )
    })
}

/// The error for a failed call of `script`: Lua and server replies become
/// [`Error::Script`] (or [`Error::Busy`], [`Error::OutOfMemory`]); transport failures stay
/// [`Error::Redis`].
pub(crate) fn failure(script: &Script, e: RedisError) -> Error {
    if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
        return Error::redis("EVALSHA", e);
    }
    if e.code().is_none() {
        return Error::redis("EVALSHA", e);
    }
    from_server_text(script, server_message(&e))
}

/// The error for a script whose call (or load) got the server error `e`.
pub(crate) fn script_error(script: &Script, e: &ServerError) -> Error {
    from_server_text(script, server_error_text(e))
}

/// The error for a script the server refused with `message` (`code detail`): a busy server,
/// out of memory, or the script's own error.
fn from_server_text(script: &Script, message: String) -> Error {
    // The code is the first word: `BUSY`, not `BUSYGROUP` (a stream error of the script's).
    if message.split(' ').next() == Some("BUSY") {
        return Error::Busy { message };
    }
    if is_out_of_memory(&message) {
        return Error::OutOfMemory { key: String::new() };
    }
    Error::Script {
        name: script.name().to_string(),
        message,
    }
}
