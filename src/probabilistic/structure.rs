//! The key of a RedisBloom structure and the one way its operations run: items as their
//! canonical JSON text, one library script per call, its failures read into typed errors.

use std::marker::PhantomData;

use serde::Serialize;

use crate::codec;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::script::failure::document_error;
use crate::script::library;

/// The key of a RedisBloom structure, and the one way its operations run.
pub(super) struct Structure<T: ?Sized> {
    pub(super) db: Db,
    pub(super) key: String,
    item: PhantomData<fn(&T)>,
}

impl<T: ?Sized> Clone for Structure<T> {
    fn clone(&self) -> Self {
        Structure::at(&self.db, self.key.clone())
    }
}

impl<T: ?Sized> Structure<T> {
    pub(super) fn at(db: &Db, key: String) -> Structure<T> {
        Structure {
            db: db.clone(),
            key,
            item: PhantomData,
        }
    }

    pub(super) fn debug(&self, name: &str, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(name)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }

    /// The arguments of `op` over `items`: the operation, then each item's JSON text.
    pub(super) fn texts<'a, Q: Serialize + ?Sized + 'a>(
        &self,
        op: &str,
        items: impl IntoIterator<Item = &'a Q>,
    ) -> Result<Vec<String>> {
        let mut args = vec![op.to_string()];
        for item in items {
            args.push(item_text(&self.key, item)?);
        }
        Ok(args)
    }

    /// Runs the library's script with `args` on this structure's key.
    pub(super) async fn run<R: redis::FromRedisValue>(&self, args: &[String]) -> Result<R> {
        let keys = [self.key.clone()];
        self.db
            .run_lua(&library::PROBABILISTIC, &keys, args)
            .await
            .map_err(|e| structure_error(e, &self.key))
    }
}

/// [`Error::InvalidOp`] about the structure at `key`, refused before anything was sent.
pub(super) fn invalid(key: &str, message: String) -> Error {
    Error::InvalidOp {
        key: key.to_string(),
        path: String::new(),
        message,
    }
}

/// The canonical JSON text of an item bound for the structure at `key`: one text per value
/// (object members sorted), a NaN or infinite float refused as for a document.
pub(super) fn item_text<Q: Serialize + ?Sized>(key: &str, item: &Q) -> Result<String> {
    let text = codec::encode(key, "$", item)?;
    if !text.contains('{') {
        return Ok(text);
    }
    // serde_json's map (without `preserve_order`) sorts its members.
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| Error::Serialize {
            key: key.to_string(),
            source,
        })?;
    Ok(value.to_string())
}

/// The error of a structure's script on `key`: its typed failure naming the key, and a
/// server without RedisBloom said in words that name the fix.
pub(super) fn structure_error(e: Error, key: &str) -> Error {
    match e {
        Error::Script { name, message }
            if message
                .to_ascii_lowercase()
                .contains("unknown redis command")
                || message.to_ascii_lowercase().contains("unknown command") =>
        {
            Error::Script {
                name,
                message: format!(
                    "the server has no RedisBloom module (Bloom filters and count-min sketches \
                     need it: Redis 8, redis-stack, or `--loadmodule redisbloom.so`): {message}"
                ),
            }
        }
        other => document_error(other, key),
    }
}
