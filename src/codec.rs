//! The codec: a model's serde form as rapyer stores it (encode, decode, the search instants
//! beside indexed date-times, expiries in milliseconds), and the reading of the document
//! errors the server and the library's scripts reply with.
//!
//! Below `db`: nothing here talks to the server.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::keys::KeySettings;

/// What a model key must hold.
const EXPECTED_DOCUMENT: &str = "a JSON document";

/// A model's serde form, as rapyer stores it. Implemented for every
/// [`Model`](crate::Model); never implemented by hand.
///
/// Not public API: anything here may change in any release.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a rapyer model",
    label = "not a model",
    note = "derive `AtomicModel` (with `Serialize` and `Deserialize`) on `{Self}`"
)]
pub trait Document: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The property paths (from the document's root) of the date-times indexed by instant
    /// inside this model (see [`Indexable::instants`](crate::query::Indexable::instants)).
    fn instant_paths(out: &mut Vec<Vec<String>>);

    /// Moves the parts of `old` that are not in the document (fields serde skips, in this
    /// model and the models nested in it) into this model, just read from the document.
    fn keep_local(&mut self, old: &mut Self);
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
/// each date-time it indexes (what the search index reads, see [`INSTANT_SUFFIX`]).
/// A NaN or infinite float anywhere in it is [`Error::NonFinite`].
pub(crate) fn encode_model<M: Document>(key: &str, model: &M) -> Result<String> {
    let text = model_text(model).map_err(|source| serialize_error(key, "$", model, source))?;
    check_finite(key, "$", model, &text)?;
    Ok(text)
}

/// [`encode_model`] without a key to name in the error: serde's form straight to text when
/// the model indexes no date-time, else through a value that gets the instants.
pub(crate) fn model_text<M: Document>(model: &M) -> serde_json::Result<String> {
    let mut instants = Vec::new();
    M::instant_paths(&mut instants);
    if instants.is_empty() {
        return serde_json::to_string(model);
    }
    let mut doc = serde_json::to_value(model)?;
    add_instants(&mut doc, &instants);
    serde_json::to_string(&doc)
}

/// [`encode_model`] as a JSON value rather than text: the same members, instants included
/// (what a lock's save compares to find what its holder changed). A NaN or infinite float
/// anywhere in it is [`Error::NonFinite`], as `to_value` would turn it into `null`.
pub(crate) fn encode_model_value<M: Document>(key: &str, model: &M) -> Result<serde_json::Value> {
    let mut doc =
        serde_json::to_value(model).map_err(|source| serialize_error(key, "$", model, source))?;
    // There is no text to search for a `null` here: walk the model itself.
    non_finite(key, "$", crate::finite::find(model))?;
    let mut instants = Vec::new();
    M::instant_paths(&mut instants);
    if !instants.is_empty() {
        add_instants(&mut doc, &instants);
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
    add_instants(&mut doc, instants);
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
pub(crate) fn decode_model<M: KeySettings + DeserializeOwned>(
    namespace: &str,
    key: &str,
    bytes: &[u8],
) -> Result<M> {
    let model: M = decode(key, bytes)?;
    let id = model.model_id();
    if crate::keys::full_key::<M>(namespace, &id) == key {
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

/// The suffix of the property next to an indexed date-time that holds its instant in
/// microseconds since the epoch (RediSearch cannot index RFC 3339 text as a number).
pub const INSTANT_SUFFIX: &str = "__ts";

/// The JSONPath of the instant property next to the date-time at `path`.
#[cfg(feature = "chrono")]
pub(crate) fn shadow_path(path: &str) -> String {
    match path.strip_suffix("\"]") {
        Some(open) => format!("{open}{INSTANT_SUFFIX}\"]"),
        None => format!("{path}{INSTANT_SUFFIX}"),
    }
}

/// The instant of `t` in whole microseconds since the epoch, as the index stores it.
#[cfg(feature = "chrono")]
pub(crate) fn instant_micros<Tz: chrono::TimeZone>(t: &chrono::DateTime<Tz>) -> i64 {
    t.timestamp_micros()
}

/// Adds (or refreshes) the instant property next to every indexed date-time in `doc`;
/// `paths` come from [`Indexable::instants`](crate::query::Indexable::instants). A value that is not RFC 3339 text loses it.
pub(crate) fn add_instants(doc: &mut serde_json::Value, paths: &[Vec<String>]) {
    for path in paths {
        let Some((last, parents)) = path.split_last() else {
            continue;
        };
        let pointer: String = parents
            .iter()
            .map(|step| format!("/{}", step.replace('~', "~0").replace('/', "~1")))
            .collect();
        let Some(object) = doc.pointer_mut(&pointer).and_then(|n| n.as_object_mut()) else {
            continue;
        };
        let instant = object
            .get(last)
            .and_then(serde_json::Value::as_str)
            .and_then(instant_of_text);
        let shadow = format!("{last}{INSTANT_SUFFIX}");
        match instant {
            Some(micros) => {
                object.insert(shadow, micros.into());
            }
            None => {
                object.remove(&shadow);
            }
        }
    }
}

/// The instant of RFC 3339 `text`, as [`instant_micros`] gives it; `None` for other text.
#[cfg(feature = "chrono")]
fn instant_of_text(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| instant_micros(&t))
}

/// Without the `chrono` feature no type is an indexed date-time, so no instant path leads
/// here.
#[cfg(not(feature = "chrono"))]
fn instant_of_text(_text: &str) -> Option<i64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

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
