//! Lua scripts run by EVALSHA, with a reload that can never surface NOSCRIPT.

use std::sync::LazyLock;
use std::time::Instant;

use redis::{Cmd, FromRedisValue, ToRedisArgs, Value};

use crate::db::{Db, trace_command};
use crate::error::{Error, server_message};

/// A Lua script known by name, with its SHA1 computed once.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    name: String,
    body: String,
    sha: String,
}

impl Script {
    /// A script named `name` with the Lua source `body`.
    pub(crate) fn new(name: impl Into<String>, body: impl Into<String>) -> Script {
        let body = body.into();
        let sha = sha1_smol::Sha1::from(body.as_bytes()).digest().to_string();
        Script {
            name: name.into(),
            body,
            sha,
        }
    }

    /// The script's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

/// The library's own scripts, one file each in `lua/`.
pub(crate) mod library {
    use super::*;

    /// Whole-document saves with an optional expiry, all keys checked before any write.
    pub(crate) static SAVE: LazyLock<Script> =
        LazyLock::new(|| Script::new("rapyer.save", include_str!("../lua/save.lua")));
}

impl Db {
    /// Runs `script` with `EVALSHA`. When the server does not know the script (a restart, a
    /// `SCRIPT FLUSH`, a failover), the same round trip loads it with `SCRIPT LOAD` and runs
    /// it with `EVAL` and the full body, which cannot answer NOSCRIPT: the caller never sees
    /// the cache miss, and the script runs exactly once.
    pub(crate) async fn run_lua<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[impl ToRedisArgs + Sync],
    ) -> Result<T, ScriptFailure> {
        let started = Instant::now();
        let mut evalsha = Cmd::new();
        evalsha
            .arg("EVALSHA")
            .arg(&script.sha)
            .arg(keys.len())
            .arg(keys);
        for a in args {
            evalsha.arg(a);
        }
        let first: Result<Value, redis::RedisError> =
            self.query("EVALSHA", keys.len(), &evalsha).await;
        let value = match first {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                tracing::debug!(target: "rapyer::script", script = script.name(), "NOSCRIPT, reloading");
                let mut pipe = redis::pipe();
                pipe.cmd("SCRIPT").arg("LOAD").arg(&script.body).ignore();
                let eval = pipe.cmd("EVAL").arg(&script.body).arg(keys.len()).arg(keys);
                for a in args {
                    eval.arg(a);
                }
                let (value,): (Value,) = self
                    .query_pipeline("EVAL", keys.len(), &pipe)
                    .await
                    .map_err(|e| ScriptFailure::from_redis(script, e))?;
                value
            }
            other => other.map_err(|e| ScriptFailure::from_redis(script, e))?,
        };
        trace_command("script", keys.len(), started, true);
        T::from_redis_value(value).map_err(|e| ScriptFailure::Redis(e.into()))
    }
}

/// Why a script call failed: the script's own error reply, or the transport.
#[derive(Debug)]
pub(crate) enum ScriptFailure {
    /// The script ran and returned or raised an error; `message` is the server's text.
    Reply { name: String, message: String },
    /// The call never got a script reply (connection lost, BUSY, decoding the reply).
    Redis(redis::RedisError),
}

impl ScriptFailure {
    fn from_redis(script: &Script, e: redis::RedisError) -> ScriptFailure {
        if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
            return ScriptFailure::Redis(e);
        }
        match e.kind() {
            redis::ErrorKind::Server(_) | redis::ErrorKind::Extension => ScriptFailure::Reply {
                name: script.name().to_string(),
                message: server_message(&e),
            },
            _ => ScriptFailure::Redis(e),
        }
    }

    /// The error a caller sees when it has no more specific reading of the failure.
    pub(crate) fn into_error(self) -> Error {
        match self {
            ScriptFailure::Reply { name, message } => Error::Script { name, message },
            ScriptFailure::Redis(e) => Error::redis("script", e),
        }
    }
}
