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
/// [`Error::Script`] (or [`Error::Busy`], [`Error::OutOfMemory`]); transport failures and
/// replies saying the key is not served there or then (a cluster redirect redis-rs gave up
/// on, `CLUSTERDOWN`, `LOADING`, …: the script did not run) stay [`Error::Redis`].
pub(crate) fn failure(script: &Script, e: RedisError) -> Error {
    if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
        return Error::redis("EVALSHA", e);
    }
    // No server reply, or one about where the key lives or whether the cluster can serve
    // it (a failover or a slot migration under way): the script did not run, and the
    // failure is the connection's, not the script's.
    if e.code().is_none_or(is_not_served) {
        return Error::redis("EVALSHA", e);
    }
    from_server_text(script, server_message(&e))
}

/// Whether a server error `code` says the key is not served here or now (the command did
/// not run): a cluster redirect, a cluster or primary down, a replica that is read-only, or
/// a server still loading its data.
fn is_not_served(code: &str) -> bool {
    matches!(
        code,
        "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "READONLY" | "LOADING"
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's reply `wire` (RESP) as the error redis-rs hands over.
    fn server_error(wire: &str) -> RedisError {
        let value = redis::parse_redis_value(wire.as_bytes()).expect("a RESP error");
        value.extract_error().expect_err("an error reply")
    }

    #[test]
    fn a_redirect_or_an_unavailable_cluster_is_the_connections_failure_not_the_scripts() {
        let script = Script::from_static("rapyer.test", super::super::Keys::Fixed(1), "return 1");
        for wire in [
            "-MOVED 3999 127.0.0.1:6381\r\n",
            "-ASK 3999 127.0.0.1:6381\r\n",
            "-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
            "-CLUSTERDOWN The cluster is down\r\n",
            "-MASTERDOWN Link with MASTER is down\r\n",
            "-READONLY You can't write against a read only replica.\r\n",
            "-LOADING Redis is loading the dataset in memory\r\n",
        ] {
            let e = failure(&script, server_error(wire));
            assert!(matches!(e, Error::Redis { .. }), "{wire}: {e:?}");
        }
        // The script's own error, and a busy server, stay what they are.
        let e = failure(&script, server_error("-ERR user_script:1: boom\r\n"));
        assert!(matches!(e, Error::Script { .. }), "{e:?}");
        let e = failure(
            &script,
            server_error("-BUSY Redis is busy running a script\r\n"),
        );
        assert!(matches!(e, Error::Busy { .. }), "{e:?}");
    }
}
