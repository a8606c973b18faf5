//! The key layout and a stored model's key settings ([`KeySettings`]), and why the layout is
//! sealed.
//!
//! A model's key is `{namespace}{Prefix}:{id}`:
//!
//! * a **prefix** is one segment: it starts with a letter or digit and holds only letters,
//!   digits, `_`, `-` and `.` (checked by the derive);
//! * a **namespace** is empty (the root) or one or more segments each ending in `/`
//!   (`tenant-a/`, `app/eu/`); a segment holds no `:`, `/`, glob or brace character,
//!   backslash, whitespace or control character (checked by [`check_namespace`]);
//! * an **id** is any text.
//!
//! The first `:` of a key therefore ends `{namespace}{Prefix}`, and the last `/` before it
//! ends the namespace: every key has exactly one reading, so different (namespace, model, id)
//! triples give different keys, and the keys starting with `{namespace}{Prefix}:` are exactly
//! that model's in that namespace — no id, prefix or namespace reaches into another key space
//! (a root key's first segment holds no `/`, a tenant's always does).
//!
//! rapyer's own keys (locks, index fingerprints, companion keys) live under
//! `{namespace}_rapyer:`, which no prefix can take (a prefix never starts with `_`), so no id
//! can name them; and they start with the namespace, so a Redis ACL key pattern
//! `~{namespace}*` covers everything rapyer touches for that namespace.

use std::fmt::Display;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::slot;

/// A stored model's key settings: what every layer below the model facade needs to build its
/// keys, expiries and ids. Implemented for every [`AtomicModel`](crate::AtomicModel) (which
/// declares the same items, set by the derive); never implemented by hand.
///
/// Not public API: anything here may change in any release.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored on its own: it has no `#[rapyer(key)]` field",
    label = "not a stored model",
    note = "mark the field that identifies a `{Self}` with `#[rapyer(key)]` (use `rapyer::Id` for generated ids); a model without a key can only be nested inside another model"
)]
pub trait KeySettings: Send + Sync + 'static {
    /// The key prefix (see [`AtomicModel::PREFIX`](crate::AtomicModel::PREFIX)).
    const PREFIX: &'static str;
    /// The expiry every save sets.
    const TTL: Option<Duration>;
    /// Whether reads re-arm the expiry too.
    const REFRESH_TTL_ON_READ: bool;
    /// The hash tag in this model's keys.
    const HASH_TAG: HashTag;
    /// The JSON names of the fields with a Bloom filter index.
    const BLOOM_FIELDS: &'static [&'static str];

    /// This model's id, as it appears in its key.
    fn model_id(&self) -> String;

    /// The key field's JSON name and the JSON of the id `id` in it.
    fn id_member(id: &str) -> std::result::Result<(&'static str, String), String>;

    /// The special structures ([`Structure`]) this model keeps in companion keys.
    fn structures(out: &mut Vec<Structure>);
}

/// Which part of a model's keys Redis Cluster hashes, so that related keys share a slot (and
/// one script or transaction may touch them all).
///
/// * `None` (the default): `{ns}{Prefix}:{id}`, the whole key decides the slot.
/// * `Static("bank")` (`#[rapyer(hash_tag = "bank")]`): `{ns}{Prefix}:{bank}:{id}`; every
///   model with that tag, of any type, shares one slot.
/// * `Id` (`#[rapyer(key, hash_tag)]` on the key field): `{ns}{Prefix}:{{id}}`; models of
///   different types with the same id (a user and their cart) share a slot.
///
/// Namespaces hold no braces ([`Db::with_namespace`](crate::Db::with_namespace)), so the tag a
/// model declares is the first in its keys and decides their slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashTag {
    /// No tag.
    None,
    /// This literal tag.
    Static(&'static str),
    /// The id is the tag.
    Id,
}

/// The one writer of the key layout: `{Prefix}:{id}`, with the model's hash tag (see the
/// module's docs for why the layout is sealed).
pub(crate) fn push_key(key: &mut String, prefix: &str, tag: HashTag, id: impl Display) {
    use std::fmt::Write as _;
    key.push_str(prefix);
    key.push(':');
    // Writing into a String cannot fail.
    let _ = match tag {
        HashTag::None => write!(key, "{id}"),
        HashTag::Static(tag) => write!(key, "{{{tag}}}:{id}"),
        HashTag::Id => write!(key, "{{{id}}}"),
    };
}

/// The key of the `M` with this id, without a namespace: `User:u1`.
pub(crate) fn key_of<M: KeySettings>(id: impl Display) -> String {
    let mut key = String::new();
    push_key(&mut key, M::PREFIX, M::HASH_TAG, id);
    key
}

/// The full key of the `M` with this id in `namespace`: `{namespace}{Prefix}:{id}`.
pub(crate) fn full_key<M: KeySettings>(namespace: &str, id: impl Display) -> String {
    let mut key = String::with_capacity(namespace.len() + M::PREFIX.len() + 24);
    key.push_str(namespace);
    push_key(&mut key, M::PREFIX, M::HASH_TAG, id);
    key
}

/// The expiry a read of `M` re-arms, if it opted in with `refresh_on_read`.
pub(crate) fn read_ttl<M: KeySettings>() -> Option<Duration> {
    if M::REFRESH_TTL_ON_READ { M::TTL } else { None }
}

/// The segment that begins every key rapyer keeps for itself in a namespace.
pub(crate) const RESERVED: &str = "_rapyer:";

/// Checks a namespace and gives it its canonical form: `""` stays the root, and a namespace
/// without its final `/` gets one (`"tenant-a"` → `"tenant-a/"`).
pub(crate) fn check_namespace(namespace: &str) -> Result<String> {
    if namespace.is_empty() {
        return Ok(String::new());
    }
    let refuse = |why: String| Error::InvalidNamespace {
        namespace: namespace.to_string(),
        message: why,
    };
    let body = namespace.strip_suffix('/').unwrap_or(namespace);
    for segment in body.split('/') {
        if segment.is_empty() {
            return Err(refuse(
                "a namespace is segments ending in `/`, e.g. `tenant-a/` or `app/eu/`; \
                 this one has an empty segment"
                    .into(),
            ));
        }
        if let Some(c) = segment.chars().find(|&c| {
            matches!(c, ':' | '{' | '}' | '*' | '?' | '[' | ']' | '\\')
                || c.is_whitespace()
                || c.is_control()
        }) {
            let why = if c == ':' {
                "a namespace holds no `:` (it would make its keys readable as another \
                 namespace's or the root's); separate segments with `/`, e.g. `tenant-a/`"
                    .to_string()
            } else {
                format!(
                    "a namespace holds no {c:?}: no `:`, braces (they would decide the cluster \
                     slot), glob characters, backslash, whitespace or control characters"
                )
            };
            return Err(refuse(why));
        }
    }
    Ok(format!("{body}/"))
}

/// The key of the lock on the model stored at `model_key` in `namespace`:
/// `{namespace}_rapyer:lock:{T}:{model key without the namespace}`, where `T` is a short hash
/// tag chosen so that the lock key lands in the model key's cluster slot.
pub(crate) fn lock_key(namespace: &str, model_key: &str) -> String {
    let rest = model_key.strip_prefix(namespace).unwrap_or(model_key);
    let tag = slot::tag_for(slot::hash_slot(model_key.as_bytes()));
    let mut key = String::with_capacity(namespace.len() + RESERVED.len() + 12 + rest.len());
    key.push_str(namespace);
    key.push_str(RESERVED);
    key.push_str("lock:{");
    key.push_str(&tag);
    key.push_str("}:");
    key.push_str(rest);
    key
}

/// A special structure a model keeps beside its document, in companion keys of its own:
/// what [`KeySettings::structures`] lists, found by the derive through every field's type.
///
/// Not public API: anything here may change in any release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Structure {
    /// The JSON names from the document's root to the field.
    pub names: Vec<&'static str>,
    /// What the field is.
    pub kind: StructureKind,
}

/// What kind of structure a companion key holds.
///
/// Not public API: anything here may change in any release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StructureKind {
    /// A [`Set`](crate::Set): one native SET.
    Set,
    /// A [`PriorityQueue`](crate::PriorityQueue): a ZSET of entries and a HASH from each item
    /// to its entry.
    Queue,
}

impl Structure {
    /// The field's JSONPath (`$.tags`, `$.address["a b"]`): the same text the derive writes
    /// for the field's handle.
    pub(crate) fn path(&self) -> String {
        let mut path = String::from("$");
        for name in &self.names {
            crate::path::push_member_text(&mut path, name);
        }
        path
    }

    /// The companion keys of this structure of the model stored at `model_key` in
    /// `namespace`, with the Redis type each holds (see [`companion_keys`]).
    pub(crate) fn keys(&self, namespace: &str, model_key: &str) -> Vec<(String, &'static str)> {
        companion_keys(namespace, model_key, self.kind, &self.path())
    }
}

/// The companion keys of the structure at the JSONPath `path` of the model stored at
/// `model_key` in `namespace`, each with the Redis type it holds:
/// `{namespace}_rapyer:set:{T}:{path}:{model key without the namespace}` for a set, and
/// `…_rapyer:pq:…` (ZSET) and `…_rapyer:pqi:…` (HASH) for a priority queue, where `T` is the
/// tag that puts the key in the model key's cluster slot (as for [`lock_key`]).
///
/// The path is read up to its first `:` outside a bracketed name (a name's `.step` holds no
/// `:`, and a `["…"]` step ends at its first `"]`, the derive refusing a name with a `"`), and
/// every model key starts with a letter or digit, so two (model key, path) pairs never share a
/// companion key; and every key starts with `{namespace}_rapyer:`, which no id can reach.
pub(crate) fn companion_keys(
    namespace: &str,
    model_key: &str,
    kind: StructureKind,
    path: &str,
) -> Vec<(String, &'static str)> {
    let rest = model_key.strip_prefix(namespace).unwrap_or(model_key);
    let tag = slot::tag_for(slot::hash_slot(model_key.as_bytes()));
    let key = |what: &str| {
        let mut key = String::with_capacity(namespace.len() + 24 + path.len() + rest.len());
        key.push_str(namespace);
        key.push_str(RESERVED);
        key.push_str(what);
        key.push_str(":{");
        key.push_str(&tag);
        key.push_str("}:");
        key.push_str(path);
        key.push(':');
        key.push_str(rest);
        key
    };
    match kind {
        StructureKind::Set => vec![(key("set"), "set")],
        StructureKind::Queue => vec![(key("pq"), "zset"), (key("pqi"), "hash")],
    }
}

/// The Redis type of each companion key of the structures `structures`, in
/// [`all_companions`] order, with its structure's JSONPath.
pub(crate) fn companion_types(structures: &[Structure]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for s in structures {
        let types: &[&'static str] = match s.kind {
            StructureKind::Set => &["set"],
            StructureKind::Queue => &["zset", "hash"],
        };
        out.extend(types.iter().map(|t| (*t, s.path())));
    }
    out
}

/// The special structures `M` keeps in companion keys.
pub(crate) fn structures_of<M: KeySettings>() -> Vec<Structure> {
    let mut out = Vec::new();
    M::structures(&mut out);
    out
}

/// Every companion key of the structures `structures` of the model stored at `model_key`, in
/// order, with the Redis type each holds.
pub(crate) fn all_companions(
    namespace: &str,
    model_key: &str,
    structures: &[Structure],
) -> Vec<(String, &'static str)> {
    structures
        .iter()
        .flat_map(|s| s.keys(namespace, model_key))
        .collect()
}

/// The name of the search index of the model `prefix` in `namespace`:
/// `{namespace}_rapyer:index:{Prefix}`.
pub(crate) fn index_name(namespace: &str, prefix: &str) -> String {
    format!("{namespace}{RESERVED}index:{prefix}")
}

/// The key holding the fingerprint of that index's schema:
/// `{namespace}_rapyer:index-schema:{Prefix}`.
pub(crate) fn index_marker(namespace: &str, prefix: &str) -> String {
    format!("{namespace}{RESERVED}index-schema:{prefix}")
}

/// The key of a structure rapyer keeps under a name of the user's in `namespace`:
/// `{namespace}_rapyer:{kind}:{name}`. `kind` is a fixed word of the library without `:`
/// (`bloom`, `cms`, `limit`, …), so the kind ends at the first `:` after the reserved
/// segment and different (kind, name) pairs give different keys; the name is any text.
pub(crate) fn structure_key(namespace: &str, kind: &str, name: &str) -> String {
    let mut key =
        String::with_capacity(namespace.len() + RESERVED.len() + kind.len() + 1 + name.len());
    key.push_str(namespace);
    key.push_str(RESERVED);
    key.push_str(kind);
    key.push(':');
    key.push_str(name);
    key
}

/// The start shared by every key of the model `prefix` in `namespace`: `{namespace}{Prefix}:`.
pub(crate) fn model_space(namespace: &str, prefix: &str) -> String {
    format!("{namespace}{prefix}:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_segments_ending_in_a_slash() {
        assert_eq!(check_namespace("").ok().as_deref(), Some(""));
        assert_eq!(check_namespace("a").ok().as_deref(), Some("a/"));
        assert_eq!(check_namespace("a/").ok().as_deref(), Some("a/"));
        assert_eq!(check_namespace("app/eu").ok().as_deref(), Some("app/eu/"));
        assert_eq!(
            check_namespace("t-1.x@y/").ok().as_deref(),
            Some("t-1.x@y/")
        );
        for bad in [
            "a:",
            "a:b/",
            "/",
            "a//",
            "//",
            "/a",
            "a{b}/",
            "a}/",
            "*/",
            "a?/",
            "[a]/",
            "a\\/",
            "a b/",
            "a\n/",
            "a\t",
            "\u{0}/",
            "\u{3000}/",
        ] {
            assert!(
                matches!(check_namespace(bad), Err(Error::InvalidNamespace { .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn lock_keys_are_reserved_and_share_the_model_keys_slot() {
        for (ns, key) in [
            ("ns/", "ns/User:u1"),
            ("ns/", "ns/User:{tag}:x"),
            ("", "User:{u1}"),
            ("ns/", "ns/User:a}b"),
            ("ns/", "ns/User:{}x"),
            ("ns/", "ns/User:x{"),
            ("ns/", "ns/User:{"),
            ("", "User:"),
            ("a/b/", "a/b/User:é🎉"),
            ("ns/", "ns/User:victim:lock{ns/User:victim}"),
        ] {
            let lock = lock_key(ns, key);
            assert!(lock.starts_with(&format!("{ns}_rapyer:lock:{{")), "{lock}");
            assert!(lock.ends_with(&key[ns.len()..]), "{lock}");
            assert_eq!(
                slot::hash_slot(lock.as_bytes()),
                slot::hash_slot(key.as_bytes()),
                "{key} -> {lock}"
            );
        }
    }
}
