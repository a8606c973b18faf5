//! The one error type of rapyer.

use std::time::Duration;

/// `Result<T, rapyer::Error>`, returned by every fallible call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, each variant naming the key (and JSON path) involved.
///
/// Match on the variant; new variants may be added, so keep a `_` arm.
///
/// ```no_run
/// use rapyer::prelude::*;
///
/// #[derive(AtomicModel, serde::Serialize, serde::Deserialize)]
/// struct User { #[rapyer(key)] id: String, age: i64 }
///
/// # async fn demo(db: &Db) -> rapyer::Result<()> {
/// match User::get(db, "ann").await {
///     Ok(user) => println!("ann is {}", user.age),
///     Err(Error::NotFound { key }) => println!("nothing stored at {key}"),
///     Err(e) => return Err(e), // the others name their key too: `e.key()`
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No document is stored at `key`.
    #[error("no document at key `{key}`")]
    NotFound {
        /// The full key, namespace included.
        key: String,
    },

    /// A delete refused by an `on_delete = "restrict"` reference: the document at `referrer`
    /// references the one at `key` through the field at `path`. Nothing was deleted.
    #[error("`{key}` is still referenced by `{referrer}` at `{path}` (on_delete = restrict)")]
    Referenced {
        /// The full key of the model that was to be deleted.
        key: String,
        /// The full key of a model referencing it.
        referrer: String,
        /// The JSONPath of the reference in the referrer.
        path: String,
    },

    /// The value at `key`/`path` is not of the type the operation needs, e.g. a plain string
    /// key where a JSON document is expected, or a JSON string where a number is expected.
    #[error("type mismatch at key `{key}` path `{path}`: expected {expected}, found {found}")]
    TypeMismatch {
        /// The full key.
        key: String,
        /// The JSON path (`$` for the whole document).
        path: String,
        /// What the operation needs.
        expected: String,
        /// What the server holds.
        found: String,
    },

    /// A list index outside the list, where Python would raise `IndexError`.
    #[error("index {index} out of range for the list of length {len} at key `{key}` path `{path}`")]
    IndexOutOfRange {
        /// The full key.
        key: String,
        /// The JSON path of the list.
        path: String,
        /// The index asked for.
        index: i64,
        /// The list's length on the server.
        len: u64,
    },

    /// A number operation's result would leave the range of the field's type (an integer
    /// outside `i8` … `u64`, a float beyond `f32::MAX` for an `f32`, an infinite `f64`), or
    /// an `i128`/`u128` being written is beyond `i64::MIN ..= u64::MAX`, which a document
    /// holds only as a float (`kind` names the type); nothing was changed.
    #[error(
        "number overflow ({kind}) at key `{key}` path `{path}`: the result does not fit the type"
    )]
    Overflow {
        /// The full key.
        key: String,
        /// The JSON path of the number.
        path: String,
        /// What overflowed: the Rust type of the number (`i64`, `u8`, `f32`, `f64`, …), or
        /// `number` when it is not known.
        kind: &'static str,
    },

    /// A stored document (or part of one) does not decode into the Rust type.
    #[error("cannot decode the document at key `{key}` (at `{path}`): {source}")]
    Deserialize {
        /// The full key.
        key: String,
        /// Where in the document decoding failed (`.` for the document itself).
        path: String,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },

    /// A value could not be encoded as JSON.
    #[error("cannot encode the value for key `{key}`: {source}")]
    Serialize {
        /// The full key the value was meant for.
        key: String,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },

    /// A lock was not acquired within the allowed wait.
    #[error("lock on `{key}` not acquired within {waited:?}")]
    LockTimeout {
        /// The key of the locked model.
        key: String,
        /// How long the caller waited.
        waited: Duration,
    },

    /// A lock expired or was taken over before the holder used it.
    #[error("lock on `{key}` was lost (expired or taken by another holder)")]
    LockLost {
        /// The key of the locked model.
        key: String,
    },

    /// The keys of one atomic unit do not hash to one Redis Cluster slot.
    #[error("keys of one atomic unit span several cluster slots: {keys:?}")]
    CrossSlot {
        /// The keys involved.
        keys: Vec<String>,
    },

    /// A Lua script failed on the server.
    #[error("script `{name}` failed: {message}")]
    Script {
        /// The script's registered name.
        name: String,
        /// Redis's error message.
        message: String,
    },

    /// No script is defined under this name.
    #[error("no script named `{name}` is defined; defined scripts: {known:?}")]
    UnknownScript {
        /// The name asked for.
        name: String,
        /// Every defined name, sorted.
        known: Vec<String>,
    },

    /// A script definition or call was refused before anything was sent: an invalid name, a
    /// blank body, a different script already under the name, or a key count the script
    /// does not take.
    #[error("script `{name}`: {message}")]
    InvalidScript {
        /// The script's name.
        name: String,
        /// What is wrong.
        message: String,
    },

    /// The server is running another script (or function) past its time limit and refuses
    /// commands until it ends or is killed (`SCRIPT KILL`). Nothing was run.
    #[error("the server is busy running a script that exceeded its time limit: {message}")]
    Busy {
        /// Redis's message.
        message: String,
    },

    /// A query could not be built or was rejected by RediSearch.
    #[error("invalid query: {message}")]
    InvalidQuery {
        /// What is wrong.
        message: String,
    },

    /// An operation of a ServerOps block or a model's atomic block failed; nothing the block
    /// named was changed. `op` is the operation's index in the block (as in
    /// [`Results`](crate::ops::Results)), and `source` the error that names its key and path.
    #[error("operation {op} of the block failed, nothing was written: {source}")]
    Block {
        /// The failed operation's index, counting from 0 in the order they were added.
        op: usize,
        /// What went wrong, naming the key and path.
        #[source]
        source: Box<Error>,
    },

    /// An operation that cannot be done as asked: a slice assignment of the wrong size, a
    /// slice step of 0, an id that is not one of the model's, … Nothing was changed.
    #[error("invalid operation at key `{key}` path `{path}`: {message}")]
    InvalidOp {
        /// The full key.
        key: String,
        /// The JSON path involved.
        path: String,
        /// What is wrong.
        message: String,
    },

    /// A namespace that could make key spaces overlap, refused by
    /// [`Db::with_namespace`](crate::Db::with_namespace): see the crate's key layout.
    #[error("invalid namespace `{namespace}`: {message}")]
    InvalidNamespace {
        /// The namespace as given.
        namespace: String,
        /// Why it is refused.
        message: String,
    },

    /// The document at `key` carries another id in its key field than the key's (another
    /// client wrote it there): loading it would give a model that saves to another key.
    #[error(
        "the document at key `{key}` holds the id `{id}` in its key field, which is not its key's"
    )]
    IdMismatch {
        /// The full key the document was read from.
        key: String,
        /// The id in the document's key field.
        id: String,
    },

    /// A transport or server error from Redis.
    #[error("redis error during {op}: {source}")]
    Redis {
        /// The command or operation that failed.
        op: String,
        /// redis-rs's error.
        #[source]
        source: redis::RedisError,
    },

    /// A float to be written is NaN or infinite, which JSON cannot hold (serde_json would
    /// write `null`, and the document would no longer load). Refused before anything was
    /// sent: nothing was written.
    #[error(
        "the float at key `{key}` path `{path}` is NaN or infinite, which JSON cannot hold; nothing was written"
    )]
    NonFinite {
        /// The full key the value was meant for.
        key: String,
        /// The JSONPath of the float: the place written, then the float's place inside the
        /// value (`$.scores[2]`, `$.prefs.a`).
        path: String,
    },

    /// The server is at its `maxmemory` limit and refused the write (policy `noeviction`,
    /// or nothing left to evict): `OOM command not allowed when used memory > 'maxmemory'`.
    /// Every write path reports it this way, and nothing was written: Redis refuses the
    /// first write of a command or script, and every rapyer script writes nothing before
    /// that first write. A ServerOps block or a model's atomic block returns it directly,
    /// not inside [`Error::Block`]: no operation failed, the commit was refused.
    #[error(
        "the server is out of memory (used memory > maxmemory) and refused the write to `{key}`; nothing was written"
    )]
    OutOfMemory {
        /// The key written: the document's key, or the first key of a bulk call, a block or
        /// a named script; empty when the call named no key.
        key: String,
    },
}

impl Error {
    /// Wraps a redis-rs error with the name of the operation that failed.
    /// A `BUSY` reply becomes [`Error::Busy`], an `OOM` one [`Error::OutOfMemory`] without a
    /// key (the caller names it with [`Error::naming`]).
    pub(crate) fn redis(op: &str, source: redis::RedisError) -> Error {
        if source.code() == Some("BUSY") {
            return Error::Busy {
                message: server_message(&source),
            };
        }
        if source.code().is_some() && is_out_of_memory(&server_message(&source)) {
            return Error::OutOfMemory { key: String::new() };
        }
        Error::Redis {
            op: op.to_string(),
            source,
        }
    }

    /// The full key named by the error, if it names one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Error::NotFound { key }
            | Error::TypeMismatch { key, .. }
            | Error::IndexOutOfRange { key, .. }
            | Error::Overflow { key, .. }
            | Error::Deserialize { key, .. }
            | Error::Serialize { key, .. }
            | Error::LockTimeout { key, .. }
            | Error::LockLost { key }
            | Error::InvalidOp { key, .. }
            | Error::IdMismatch { key, .. }
            | Error::NonFinite { key, .. }
            | Error::Referenced { key, .. } => Some(key),
            Error::OutOfMemory { key } => (!key.is_empty()).then_some(key.as_str()),
            Error::Block { source, .. } => source.key(),
            _ => None,
        }
    }
}

impl Error {
    /// Names `key` in an [`Error::OutOfMemory`] that names none yet (the decoders of server
    /// replies do not know which key a command wrote); any other error is returned as it is.
    pub(crate) fn naming(self, key: &str) -> Error {
        match self {
            Error::OutOfMemory { key: named } if named.is_empty() => Error::OutOfMemory {
                key: key.to_string(),
            },
            other => other,
        }
    }
}

/// Whether a server error's text is Redis's refusal of a write at its `maxmemory` limit: the
/// reply itself (`OOM command not allowed when used memory > 'maxmemory'.`), or the same
/// text inside a script's error.
pub(crate) fn is_out_of_memory(message: &str) -> bool {
    message.starts_with("OOM ") || message.contains("OOM command not allowed")
}

/// The full text of a server error reply (`code detail`), for matching on well-known replies.
pub(crate) fn server_message(err: &redis::RedisError) -> String {
    // A failed command inside a pipeline carries its server error one level down.
    if let Some(errors) = err.clone().into_server_errors()
        && let Some((_, first)) = errors.first()
    {
        return server_error_text(first);
    }
    match (err.code(), err.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        (None, Some(detail)) => detail.to_string(),
        (None, None) => err.to_string(),
    }
}

/// The text of one server error (`code detail`), as Redis sent it.
pub(crate) fn server_error_text(e: &redis::ServerError) -> String {
    match e.details() {
        Some(detail) => format!("{} {detail}", e.code()),
        None => e.code().to_string(),
    }
}

/// Whether the server refused because the key holds another Redis type than the command needs.
pub(crate) fn is_wrong_type(err: &redis::RedisError) -> bool {
    let message = server_message(err);
    message.starts_with("WRONGTYPE") || message.contains("wrong Redis type")
}
