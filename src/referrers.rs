//! Who references whom: the `#[rapyer(on_delete = …)]` reference fields each referring model
//! declares, registered by `db.init::<Referrer>()` so that deleting a target through rapyer
//! can find its referrers (through the referrer's search index) and apply the policy.
//!
//! A low layer on purpose (the index layer registers, the reference layer enforces): it
//! holds declarations and function pointers, nothing that runs a command.

use std::any::TypeId;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{LazyLock, RwLock};

use crate::db::Db;
use crate::error::Result;

/// What deleting a referenced model does to the models referencing it through this field:
/// `#[rapyer(index, on_delete = "restrict" | "cascade" | "set_null")]` on a `Ref<M>` field
/// (`set_null` on an `Option<Ref<M>>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OnDelete {
    /// The delete is refused while a referrer exists:
    /// [`Error::Referenced`](crate::Error::Referenced) names one; nothing is deleted.
    Restrict,
    /// The referrers are deleted too (and theirs, following their own policies).
    Cascade,
    /// The reference is set to `null` in every referrer.
    SetNull,
}

/// The keys of the referrers whose field points at an id.
pub(crate) type FindFn =
    for<'a> fn(
        &'a Db,
        &'a str,
        String,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<String>>> + Send + 'a>>;

/// One reference field declared with `on_delete`, as registered.
///
/// Built by the code `#[derive(AtomicModel)]` generates; not constructed by users.
#[derive(Clone)]
pub struct Referrer {
    /// The referenced model's type.
    pub(crate) target: TypeId,
    /// The referring model's type.
    pub(crate) model: TypeId,
    /// The referring model's name, for messages.
    pub(crate) model_name: &'static str,
    /// The field's JSONPath in the referring document (`$.author`).
    pub(crate) path: String,
    /// The field's index attribute name.
    pub(crate) attr: String,
    /// What a delete of the target does.
    pub(crate) policy: OnDelete,
    /// The referrers' keys pointing at an id (a search on the referring model's index).
    pub(crate) find: FindFn,
    /// The id in a referring model's full key (`None` when the key is not one of its).
    pub(crate) id_of: fn(&str, &str) -> Option<String>,
    /// The special structures the referring model keeps in companion keys.
    pub(crate) structures: fn() -> Vec<crate::keys::Structure>,
}

impl std::fmt::Debug for Referrer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Referrer")
            .field("model", &self.model_name)
            .field("path", &self.path)
            .field("policy", &self.policy)
            .finish()
    }
}

/// The referrers of each target type, as registered.
static REGISTRY: LazyLock<RwLock<HashMap<TypeId, Vec<Referrer>>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

/// Registers `declared` (once each: by referring model and path).
pub(crate) fn register(declared: Vec<Referrer>) {
    if declared.is_empty() {
        return;
    }
    let mut registry = match REGISTRY.write() {
        Ok(registry) => registry,
        Err(poisoned) => poisoned.into_inner(),
    };
    for referrer in declared {
        let list = registry.entry(referrer.target).or_default();
        list.retain(|r| !(r.model == referrer.model && r.path == referrer.path));
        list.push(referrer);
    }
}

/// The registered referrers of the model type `target`.
pub(crate) fn of(target: TypeId) -> Vec<Referrer> {
    let registry = match REGISTRY.read() {
        Ok(registry) => registry,
        Err(poisoned) => poisoned.into_inner(),
    };
    registry.get(&target).cloned().unwrap_or_default()
}
