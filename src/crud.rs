//! Whole-document operations behind the `AtomicModel` methods: one command (or one library
//! script) each, with every failure mapped to an error that names the key.

use std::collections::HashSet;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::db::Db;
use crate::error::{Error, Result, is_wrong_type};
use crate::model::AtomicModel;
use crate::script::library;

/// RedisJSON's name for its data type, as `TYPE` reports it.
const JSON_TYPE: &str = "ReJSON-RL";
/// What a model key must hold.
const EXPECTED_DOCUMENT: &str = "a JSON document";
/// Keys per `JSON.MGET` when loading many documents.
const MGET_CHUNK: usize = 500;
/// Keys per `SCAN` step.
const SCAN_COUNT: usize = 1000;

pub(crate) async fn save<M: AtomicModel>(db: &Db, model: &M) -> Result<()> {
    let key = crate::model::full_key::<M>(db, model.model_id());
    let json = encode_model(&key, model)?;
    match M::TTL {
        None => {
            let mut cmd = redis::cmd("JSON.SET");
            cmd.arg(&key).arg("$").arg(json);
            match db.query::<()>("JSON.SET", 1, &cmd).await {
                Ok(()) => Ok(()),
                Err(e) => Err(document_error(db, "JSON.SET", &key, e).await),
            }
        }
        Some(ttl) => {
            let keys = [key];
            let args = [ttl_millis(ttl).to_string(), json];
            run_save(db, &keys, &args).await
        }
    }
}

pub(crate) async fn save_many<M: AtomicModel>(db: &Db, models: &[M]) -> Result<()> {
    if models.is_empty() {
        return Ok(());
    }
    let mut keys = Vec::with_capacity(models.len());
    let mut docs = Vec::with_capacity(models.len());
    for model in models {
        let key = crate::model::full_key::<M>(db, model.model_id());
        docs.push(encode_model(&key, model)?);
        keys.push(key);
    }
    match M::TTL {
        // JSON.MSET checks every key's type before it writes any (verified on RedisJSON
        // 2.8): one command, all or nothing.
        None => {
            let mut cmd = redis::cmd("JSON.MSET");
            for (key, doc) in keys.iter().zip(&docs) {
                cmd.arg(key).arg("$").arg(doc);
            }
            match db.query::<()>("JSON.MSET", keys.len(), &cmd).await {
                Ok(()) => Ok(()),
                Err(e) if is_wrong_type(&e) => {
                    let all: Vec<&String> = keys.iter().collect();
                    check_not_foreign(db, &all).await?;
                    Err(Error::redis("insert_many", e))
                }
                // Refused whole before it runs, like any write at the memory limit.
                Err(e) => Err(Error::redis("insert_many", e).naming(&keys[0])),
            }
        }
        // An expiry per key needs a script: MULTI would still expire the other keys when
        // the write fails.
        Some(ttl) => {
            let mut args = Vec::with_capacity(docs.len() + 1);
            args.push(ttl_millis(ttl).to_string());
            args.extend(docs);
            run_save(db, &keys, &args).await
        }
    }
}

/// Runs the library's save script; a key of the wrong type fails the whole call unwritten.
async fn run_save(db: &Db, keys: &[String], args: &[String]) -> Result<()> {
    match db.run_lua::<i64>(&library::SAVE, keys, args).await {
        Ok(_) => Ok(()),
        Err(e) => Err(indexed_mismatch(e, keys)),
    }
}

/// Reads the refusal of a script over many documents (a key of another Redis type, found
/// before any write; a typed failure, see `src/script/failure.rs`) as a
/// [`Error::TypeMismatch`] naming that key; any other error is returned as it is.
fn indexed_mismatch(e: Error, keys: &[String]) -> Error {
    crate::script::failure::keyed_error(e, keys)
}

/// Reads one document; `rearm` re-arms its expiry in the same step (`refresh_on_read`).
pub(crate) async fn get<M: AtomicModel>(
    db: &Db,
    key: String,
    rearm: Option<Duration>,
) -> Result<M> {
    if rearm.is_some() {
        let reply = mget(db, std::slice::from_ref(&key), rearm).await?;
        return match reply.into_iter().next().flatten() {
            Some(bytes) => decode_model(db, &key, &bytes),
            None => match exists(db, key.clone()).await? {
                // Written between the two looks: read it again the same way.
                true => Box::pin(get(db, key, rearm)).await,
                false => Err(Error::NotFound { key }),
            },
        };
    }
    let mut cmd = redis::cmd("JSON.GET");
    cmd.arg(&key);
    let reply: Option<Vec<u8>> = match db.query("JSON.GET", 1, &cmd).await {
        Ok(reply) => reply,
        Err(e) => return Err(document_error(db, "JSON.GET", &key, e).await),
    };
    match reply {
        Some(bytes) => decode_model(db, &key, &bytes),
        None => Err(Error::NotFound { key }),
    }
}

pub(crate) async fn get_many<M: AtomicModel>(
    db: &Db,
    keys: Vec<String>,
    rearm: Option<Duration>,
) -> Result<Vec<Option<M>>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let replies = mget(db, &keys, rearm).await?;
    // JSON.MGET answers nil both for a missing key and for a key of another type; only a
    // nil needs the second look, so the common case stays one round trip.
    let missing: Vec<&String> = keys
        .iter()
        .zip(&replies)
        .filter(|(_, reply)| reply.is_none())
        .map(|(key, _)| key)
        .collect();
    if !missing.is_empty() {
        check_not_foreign(db, &missing).await?;
    }
    keys.iter()
        .zip(replies)
        .map(|(key, reply)| reply.map(|bytes| decode_model(db, key, &bytes)).transpose())
        .collect()
}

pub(crate) async fn exists(db: &Db, key: String) -> Result<bool> {
    let found = key_type(db, &key).await?;
    match found.as_str() {
        "none" => Ok(false),
        JSON_TYPE => Ok(true),
        _ => Err(mismatch(key, found)),
    }
}

/// Deletes the document at `key` (see [`delete_count`]); `true` if there was one.
pub(crate) async fn delete_one(db: &Db, key: String) -> Result<bool> {
    Ok(delete_count(db, vec![key]).await? > 0)
}

/// Deletes the documents at `keys` in one script, all or nothing: a key holding another
/// Redis type refuses the whole call with [`Error::TypeMismatch`] naming the first such key
/// (in the order given), and nothing is deleted. Returns how many documents were deleted.
pub(crate) async fn delete_count(db: &Db, keys: Vec<String>) -> Result<usize> {
    if keys.is_empty() {
        return Ok(0);
    }
    match db
        .run_lua::<u64>(&library::DELETE, &keys, &[] as &[&str])
        .await
    {
        Ok(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        Err(e) => Err(indexed_mismatch(e, &keys)),
    }
}

pub(crate) async fn all<M: AtomicModel>(db: &Db, rearm: Option<Duration>) -> Result<Vec<M>> {
    // Every key of this model starts with its key for the empty id.
    let pattern = format!(
        "{}*",
        glob_escape(&crate::keys::model_space(db.namespace(), M::PREFIX))
    );
    let mut seen = HashSet::new();
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .arg("TYPE")
            .arg(JSON_TYPE);
        let (next, page): (u64, Vec<String>) = db
            .query("SCAN", 0, &cmd)
            .await
            .map_err(|e| Error::redis("all", e))?;
        // SCAN may return a key more than once; keep the first.
        keys.extend(page.into_iter().filter(|k| seen.insert(k.clone())));
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let mut models = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(MGET_CHUNK) {
        let replies = mget(db, chunk, rearm).await?;
        for (key, reply) in chunk.iter().zip(replies) {
            // A key deleted between the scan and the read is simply gone.
            if let Some(bytes) = reply {
                models.push(decode_model(db, key, &bytes)?);
            }
        }
    }
    Ok(models)
}

/// Sets the expiry of the document at `key`, checking in the same script that it is one:
/// [`Error::NotFound`] when the key is missing, [`Error::TypeMismatch`] when it holds another
/// Redis type (whose expiry is left as it was).
pub(crate) async fn set_ttl(db: &Db, key: String, ttl: Duration) -> Result<()> {
    let keys = [key];
    let args = [ttl_millis(ttl).to_string()];
    match db.run_lua::<i64>(&library::EXPIRE, &keys, &args).await {
        Ok(_) => Ok(()),
        Err(e) => Err(script_document_error(e, &keys[0])),
    }
}

/// The remaining time to live of the document at `key` (`None`: no expiry), with the same
/// errors as [`set_ttl`].
pub(crate) async fn ttl(db: &Db, key: String) -> Result<Option<Duration>> {
    let keys = [key];
    let ms = match db.run_lua::<i64>(&library::EXPIRE, &keys, &[""]).await {
        Ok(ms) => ms,
        Err(e) => return Err(script_document_error(e, &keys[0])),
    };
    match ms {
        ms if ms < 0 => Ok(None),
        ms => Ok(Some(Duration::from_millis(ms.unsigned_abs()))),
    }
}

/// The documents' roots, one entry per key, `None` for a missing key or one of another type:
/// one `JSON.MGET`, or with `rearm` one script that also re-arms each document's expiry.
async fn mget(db: &Db, keys: &[String], rearm: Option<Duration>) -> Result<Vec<Option<Vec<u8>>>> {
    let replies: Vec<Option<Vec<u8>>> = match rearm {
        Some(ttl) => {
            db.run_lua(&library::TOUCH_GET, keys, &[ttl_millis(ttl)])
                .await?
        }
        None => {
            let mut cmd = redis::cmd("JSON.MGET");
            cmd.arg(keys).arg(".");
            db.query("JSON.MGET", keys.len(), &cmd)
                .await
                .map_err(|e| Error::redis("JSON.MGET", e))?
        }
    };
    if replies.len() != keys.len() {
        return Err(Error::redis(
            "JSON.MGET",
            redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "JSON.MGET answered a different number of values than keys asked",
            )),
        ));
    }
    Ok(replies)
}

/// Fails with `TypeMismatch` for the first key that holds something other than a document.
async fn check_not_foreign(db: &Db, keys: &[&String]) -> Result<()> {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("TYPE").arg(*key);
    }
    let types: Vec<String> = db
        .query_pipeline("TYPE", keys.len(), &pipe)
        .await
        .map_err(|e| Error::redis("TYPE", e))?;
    for (key, found) in keys.iter().zip(types) {
        if found != "none" && found != JSON_TYPE {
            return Err(mismatch((*key).clone(), found));
        }
    }
    Ok(())
}

async fn key_type(db: &Db, key: &str) -> Result<String> {
    let mut cmd = redis::cmd("TYPE");
    cmd.arg(key);
    db.query("TYPE", 1, &cmd)
        .await
        .map_err(|e| Error::redis("TYPE", e))
}

/// The error for a failed document command: `TypeMismatch` naming the key's actual type
/// when it holds another Redis type, `OutOfMemory` naming the key, else the server's error.
async fn document_error(db: &Db, op: &str, key: &str, e: redis::RedisError) -> Error {
    if is_wrong_type(&e) {
        match key_type(db, key).await {
            Ok(found) => mismatch(key.to_string(), found),
            Err(_) => mismatch(key.to_string(), "another Redis type".into()),
        }
    } else {
        Error::redis(op, e).naming(key)
    }
}

/// Reads the document errors the library's scripts raise about `key` (typed failures, see
/// `src/script/failure.rs`): a missing document is [`Error::NotFound`], a key of another
/// type a [`Error::TypeMismatch`], and an out-of-memory refusal names `key` (a lock script's
/// first key is the lock's, not the model's); anything else is returned as it is.
pub(crate) fn script_document_error(e: Error, key: &str) -> Error {
    crate::script::failure::document_error(e, key)
}

pub(crate) fn mismatch(key: String, found: String) -> Error {
    Error::TypeMismatch {
        key,
        path: "$".into(),
        expected: EXPECTED_DOCUMENT.into(),
        found,
    }
}

/// Serializes a value bound for `key` at the JSONPath `path`; a NaN or infinite float in it
/// is [`Error::NonFinite`] naming its path (`$.scores[2]`).
pub(crate) fn encode<T: serde::Serialize + ?Sized>(
    key: &str,
    path: &str,
    value: &T,
) -> Result<String> {
    let text = serde_json::to_string(value).map_err(|source| Error::Serialize {
        key: key.to_string(),
        source,
    })?;
    check_finite(key, path, value, &text)?;
    Ok(text)
}

/// Refuses `text`, the JSON of `value` bound for `key` at `path`, when `value` holds a NaN or
/// infinite float (serde_json writes those as `null`, which would be stored and then fail
/// every load), an integer beyond `i64::MIN ..= u64::MAX`, or nests too deep for a document
/// there ([`crate::depth`]).
pub(crate) fn check_finite<T: serde::Serialize + ?Sized>(
    key: &str,
    path: &str,
    value: &T,
    text: &str,
) -> Result<()> {
    non_finite(key, path, crate::finite::non_finite_path(value, text))?;
    crate::depth::check(key, path, text)
}

/// The error for a value a document cannot hold, found at `path` plus its place inside the
/// value: [`Error::NonFinite`] for a NaN or infinite float, [`Error::Overflow`] (of kind
/// `i128`/`u128`) for an integer beyond `i64::MIN ..= u64::MAX`.
pub(crate) fn non_finite(key: &str, path: &str, found: Option<crate::finite::Found>) -> Result<()> {
    use crate::finite::Unholdable;
    match found {
        None => Ok(()),
        Some(found) => {
            let key = key.to_string();
            let path = format!("{path}{}", found.path);
            Err(match found.what {
                Unholdable::NonFinite => Error::NonFinite { key, path },
                Unholdable::TooWide(kind) => Error::Overflow { key, path, kind },
            })
        }
    }
}

/// The error for a value bound for `key` at `path` that serde_json refused to encode: the
/// value a document cannot hold, when that is why (`to_value` refuses an integer beyond
/// `i64`/`u64`), else [`Error::Serialize`].
fn serialize_error<T: serde::Serialize + ?Sized>(
    key: &str,
    path: &str,
    value: &T,
    source: serde_json::Error,
) -> Error {
    match non_finite(key, path, crate::finite::find(value)) {
        Err(e) => e,
        Ok(()) => Error::Serialize {
            key: key.to_string(),
            source,
        },
    }
}

/// Encodes a whole model as its document: its serde form, plus the instant property next to
/// each date-time it indexes (what the search index reads, see [`crate::query::INSTANT_SUFFIX`]).
/// A NaN or infinite float anywhere in it is [`Error::NonFinite`].
pub(crate) fn encode_model<M: crate::model::Model>(key: &str, model: &M) -> Result<String> {
    let text = model_text(model).map_err(|source| serialize_error(key, "$", model, source))?;
    check_finite(key, "$", model, &text)?;
    Ok(text)
}

/// [`encode_model`] without a key to name in the error: serde's form straight to text when
/// the model indexes no date-time, else through a value that gets the instants.
pub(crate) fn model_text<M: crate::model::Model>(model: &M) -> serde_json::Result<String> {
    let mut instants = Vec::new();
    M::instants(&mut Vec::new(), &mut instants);
    if instants.is_empty() {
        return serde_json::to_string(model);
    }
    let mut doc = serde_json::to_value(model)?;
    crate::query::add_instants(&mut doc, &instants);
    serde_json::to_string(&doc)
}

/// [`encode_model`] as a JSON value rather than text: the same members, instants included
/// (what a lock's save compares to find what its holder changed). A NaN or infinite float
/// anywhere in it is [`Error::NonFinite`], as `to_value` would turn it into `null`.
pub(crate) fn encode_model_value<M: crate::model::Model>(
    key: &str,
    model: &M,
) -> Result<serde_json::Value> {
    let mut doc =
        serde_json::to_value(model).map_err(|source| serialize_error(key, "$", model, source))?;
    // There is no text to search for a `null` here: walk the model itself.
    non_finite(key, "$", crate::finite::find(model))?;
    let mut instants = Vec::new();
    M::instants(&mut Vec::new(), &mut instants);
    if !instants.is_empty() {
        crate::query::add_instants(&mut doc, &instants);
    }
    Ok(doc)
}

/// Encodes `value`, bound for `key` at `path`, with the instant property next to each
/// date-time at `instants`; a NaN or infinite float in it is [`Error::NonFinite`].
pub(crate) fn encode_with_instants<T: serde::Serialize + ?Sized>(
    key: &str,
    path: &str,
    value: &T,
    instants: &[Vec<String>],
) -> Result<String> {
    let mut doc =
        serde_json::to_value(value).map_err(|source| serialize_error(key, path, value, source))?;
    crate::query::add_instants(&mut doc, instants);
    let text = serde_json::to_string(&doc).map_err(|source| Error::Serialize {
        key: key.to_string(),
        source,
    })?;
    // `to_value` turned a non-finite float into `null`: look in the value itself (the
    // document, a `serde_json::Value`, cannot hold one).
    check_finite(key, path, value, &text)?;
    Ok(text)
}

/// Decodes the reply of a JSONPath read (`[value]`), naming the failing place by its
/// JSONPath from the document's root (`$.address.zip`).
pub(crate) fn decode_at<T: DeserializeOwned>(key: &str, at: &str, bytes: &[u8]) -> Result<T> {
    decode(key, bytes).map_err(|e| match e {
        Error::Deserialize { key, path, source } => {
            let inner = path.strip_prefix("[0]").unwrap_or(&path);
            let inner = inner.trim_start_matches('.');
            let path = if inner.is_empty() || inner == "." {
                at.to_string()
            } else {
                format!("{at}.{inner}")
            };
            Error::Deserialize { key, path, source }
        }
        other => other,
    })
}

/// Decodes the model stored at `key`, and checks that the id in its key field is its key's:
/// a document written there by another client with another id would otherwise load as a
/// model whose next save goes to another key ([`Error::IdMismatch`]).
pub(crate) fn decode_model<M: AtomicModel>(db: &Db, key: &str, bytes: &[u8]) -> Result<M> {
    let model: M = decode(key, bytes)?;
    let id = model.model_id();
    if crate::model::full_key::<M>(db, &id) == key {
        Ok(model)
    } else {
        Err(Error::IdMismatch {
            key: key.to_string(),
            id,
        })
    }
}

/// Decodes a document read from `key`. On failure it decodes once more, tracking the path,
/// so the error says where in the document the data is wrong.
pub(crate) fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|first| {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Err(tracked) => Error::Deserialize {
                key: key.to_string(),
                path: tracked.path().to_string(),
                source: tracked.into_inner(),
            },
            Ok(_) => Error::Deserialize {
                key: key.to_string(),
                path: ".".into(),
                source: first,
            },
        }
    })
}

/// The longest expiry rapyer sets, in milliseconds (about 3,168 years). Redis refuses a
/// `PEXPIRE` whose deadline passes `i64::MAX` ms (`invalid expire time`) or whose argument
/// is not an integer (a Lua number beyond ~1e17 is passed on as `1e+19`), and a Lua number
/// is exact only below 2^53 (verified on Redis 8.2): a longer expiry failed inside the
/// save, field and block scripts after their write, so it is capped to this round value,
/// well inside every limit.
pub(crate) const MAX_TTL_MILLIS: u64 = 99_999_999_999_999;

/// Milliseconds for PEXPIRE, at least 1 so a sub-millisecond TTL still expires rather than
/// meaning "delete now", and at most [`MAX_TTL_MILLIS`].
pub(crate) fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_TTL_MILLIS)
}

/// Escapes the glob characters of a literal key part for `SCAN MATCH`.
fn glob_escape(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len());
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_escape_keeps_literals_literal() {
        assert_eq!(glob_escape("t:a*b?[c]\\"), "t:a\\*b\\?\\[c\\]\\\\");
        assert_eq!(glob_escape("User:"), "User:");
    }

    #[test]
    fn ttl_never_rounds_to_delete() {
        assert_eq!(ttl_millis(Duration::from_micros(10)), 1);
        assert_eq!(ttl_millis(Duration::from_secs(2)), 2000);
        assert_eq!(ttl_millis(Duration::MAX), MAX_TTL_MILLIS);
        assert_eq!(
            ttl_millis(Duration::from_millis(MAX_TTL_MILLIS)),
            MAX_TTL_MILLIS
        );
    }
}
