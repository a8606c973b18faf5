//! Whole-document operations behind the `AtomicModel` methods: one command (or one library
//! script) each, with every failure mapped to an error that names the key.

use std::time::Duration;

use crate::codec::{
    Document, decode_model, encode_model, encode_model_value, mismatch, ttl_millis,
};
use crate::db::Db;
use crate::documents::{JSON_TYPE, Lossy, check_not_foreign, key_type, mget, slot_groups};
use crate::error::{Error, Result, is_wrong_type};
use crate::keys::{
    KeySettings, Structure, all_companions, companion_types, full_key, structures_of,
};
use crate::scan::scan_keys;
use crate::script::{failure, library};

/// Keys per `JSON.MGET` when loading many documents.
const MGET_CHUNK: usize = 500;

pub(crate) async fn save<M: KeySettings + Document>(db: &Db, model: &M) -> Result<()> {
    let structures = structures_of::<M>();
    if !structures.is_empty() {
        return save_structured(db, std::slice::from_ref(model), &structures).await;
    }
    let key = full_key::<M>(db.namespace(), model.model_id());
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

/// Writes every model, all or nothing; on a cluster, all or nothing per hash slot (one
/// command or script per slot, all sent at once).
pub(crate) async fn save_many<M: KeySettings + Document>(db: &Db, models: &[M]) -> Result<()> {
    if models.is_empty() {
        return Ok(());
    }
    let structures = structures_of::<M>();
    if !structures.is_empty() {
        return save_structured(db, models, &structures).await;
    }
    let mut keys = Vec::with_capacity(models.len());
    let mut docs = Vec::with_capacity(models.len());
    for model in models {
        let key = full_key::<M>(db.namespace(), model.model_id());
        docs.push(encode_model(&key, model)?);
        keys.push(key);
    }
    if !db.is_cluster() {
        return save_in_slot::<M>(db, keys, docs).await;
    }
    let mut docs: Vec<Option<String>> = docs.into_iter().map(Some).collect();
    let groups = slot_groups(db, &keys).into_iter().map(|positions| {
        let group_keys: Vec<String> = positions.iter().map(|&i| keys[i].clone()).collect();
        let group_docs: Vec<String> = positions.iter().filter_map(|&i| docs[i].take()).collect();
        save_in_slot::<M>(db, group_keys, group_docs)
    });
    let groups: Vec<_> = groups.collect();
    futures_util::future::join_all(groups)
        .await
        .into_iter()
        .collect()
}

/// [`save_many`] of keys that share one slot (or every key, on a single server).
async fn save_in_slot<M: KeySettings>(db: &Db, keys: Vec<String>, docs: Vec<String>) -> Result<()> {
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

/// Saves models that keep structures in companion keys: each document with its companions'
/// contents, replaced whole, in one script per hash slot (one in all on a single server), every
/// key checked before the first write.
async fn save_structured<M: KeySettings + Document>(
    db: &Db,
    models: &[M],
    structures: &[Structure],
) -> Result<()> {
    let types = companion_types(structures);
    let mut doc_keys = Vec::with_capacity(models.len());
    let mut rows = Vec::with_capacity(models.len());
    for model in models {
        let key = full_key::<M>(db.namespace(), model.model_id());
        let split = crate::structures::split(&key, encode_model_value(&key, model)?, structures)?;
        crate::depth::check(&key, "$", &split.doc)?;
        rows.push(Some(split));
        doc_keys.push(key);
    }
    let ttl = M::TTL.map_or(0, ttl_millis).to_string();
    let calls = slot_groups(db, &doc_keys).into_iter().map(|positions| {
        let mut keys = Vec::new();
        let mut args = vec![ttl.clone(), types.len().to_string()];
        args.extend(types.iter().map(|(t, _)| t.to_string()));
        args.extend(types.iter().map(|(_, path)| path.clone()));
        for i in positions {
            let key = &doc_keys[i];
            keys.push(key.clone());
            keys.extend(
                all_companions(db.namespace(), key, structures)
                    .into_iter()
                    .map(|(k, _)| k),
            );
            if let Some(split) = rows[i].take() {
                args.push(split.doc);
                for fill in split.fills {
                    args.push(fill.len().to_string());
                    args.extend(fill);
                }
            }
        }
        async move {
            match db
                .run_lua::<i64>(&library::SAVE_STRUCTURES, &keys, &args)
                .await
            {
                Ok(_) => Ok(()),
                Err(e) => Err(failure::keyed_error(e, &keys)),
            }
        }
    });
    let calls: Vec<_> = calls.collect();
    futures_util::future::join_all(calls)
        .await
        .into_iter()
        .collect()
}

/// Runs the library's save script; a key of the wrong type fails the whole call unwritten.
async fn run_save(db: &Db, keys: &[String], args: &[String]) -> Result<()> {
    match db.run_lua::<i64>(&library::SAVE, keys, args).await {
        Ok(_) => Ok(()),
        Err(e) => Err(failure::keyed_error(e, keys)),
    }
}

/// Reads one document; `rearm` re-arms its expiry in the same step (`refresh_on_read`).
pub(crate) async fn get<M: KeySettings + Document>(
    db: &Db,
    key: String,
    rearm: Option<Duration>,
) -> Result<M> {
    let structures = structures_of::<M>();
    if rearm.is_some() || !structures.is_empty() {
        let reply = mget(db, std::slice::from_ref(&key), rearm, &structures).await?;
        return match reply.into_iter().next().flatten() {
            Some(bytes) => decode_model(db.namespace(), &key, &bytes),
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
        Some(bytes) => decode_model(db.namespace(), &key, &bytes),
        None => Err(Error::NotFound { key }),
    }
}

pub(crate) async fn exists(db: &Db, key: String) -> Result<bool> {
    let found = key_type(db, &key).await?;
    match found.as_str() {
        "none" => Ok(false),
        JSON_TYPE => Ok(true),
        _ => Err(mismatch(key, found)),
    }
}

pub(crate) async fn all<M: KeySettings + Document>(
    db: &Db,
    rearm: Option<Duration>,
) -> Result<Vec<M>> {
    all_lossy(db, rearm).await?.into_strict()
}

/// Every stored document of `M`: the models that decode, and an error per document that
/// does not.
pub(crate) async fn all_lossy<M: KeySettings + Document>(
    db: &Db,
    rearm: Option<Duration>,
) -> Result<Lossy<M>> {
    // Every key of this model starts with its key for the empty id.
    let pattern = format!(
        "{}*",
        glob_escape(&crate::keys::model_space(db.namespace(), M::PREFIX))
    );
    let keys = scan_keys(db, &pattern).await?;
    let structures = structures_of::<M>();
    let mut out = Lossy::default();
    for chunk in keys.chunks(MGET_CHUNK) {
        let replies = mget(db, chunk, rearm, &structures).await?;
        for (key, reply) in chunk.iter().zip(replies) {
            // A key deleted (or replaced) between the scan and the read is simply gone.
            if let Some(bytes) = reply {
                out.push(decode_model(db.namespace(), key, &bytes).map(Some));
            }
        }
    }
    Ok(out)
}

/// Sets the expiry of the document at `key`, checking in the same script that it is one:
/// [`Error::NotFound`] when the key is missing, [`Error::TypeMismatch`] when it holds another
/// Redis type (whose expiry is left as it was).
///
/// The companion keys of the model's `structures` get the same expiry in the same step.
pub(crate) async fn set_ttl(
    db: &Db,
    key: String,
    ttl: Duration,
    structures: &[Structure],
) -> Result<()> {
    let mut keys = vec![key];
    keys.extend(
        all_companions(db.namespace(), &keys[0], structures)
            .into_iter()
            .map(|(k, _)| k),
    );
    let args = [ttl_millis(ttl).to_string()];
    match db.run_lua::<i64>(&library::EXPIRE, &keys, &args).await {
        Ok(_) => Ok(()),
        Err(e) => Err(failure::document_error(e, &keys[0])),
    }
}

/// The remaining time to live of the document at `key` (`None`: no expiry), with the same
/// errors as [`set_ttl`].
pub(crate) async fn ttl(db: &Db, key: String) -> Result<Option<Duration>> {
    let keys = [key];
    let ms = match db.run_lua::<i64>(&library::EXPIRE, &keys, &[""]).await {
        Ok(ms) => ms,
        Err(e) => return Err(failure::document_error(e, &keys[0])),
    };
    match ms {
        ms if ms < 0 => Ok(None),
        ms => Ok(Some(Duration::from_millis(ms.unsigned_abs()))),
    }
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
}
