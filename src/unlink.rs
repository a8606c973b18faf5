//! Deleting a referenced model with its referrers' `on_delete` policies, and setting an
//! expiry along references.
//!
//! **Deleting.** A delete of `M` through rapyer (`delete`, `delete_by_id`, `delete_many`)
//! first plans: for each model to delete, each registered referrer field of its type (see
//! [`OnDelete`]) is searched on the referring model's index for the ids being deleted —
//! `restrict` refuses the whole delete ([`Error::Referenced`]) when a referrer is found that
//! is not itself being deleted, `cascade` adds the referrers to the delete (and plans theirs,
//! each key once, so cycles end), `set_null` notes the reference to clear. Nothing has been
//! written yet. Then it runs:
//!
//! * **one script**, all or nothing, when every key involved shares a hash slot (always on
//!   one server): every key is checked first, then the references are set to null (each
//!   only if it still holds the id it was found with), then the documents are deleted;
//! * otherwise (a cluster, keys in several slots) **step by step, in a fixed order**: every
//!   null write first, then the deletes with every referrer before the model it references
//!   and the models asked for last. A failure stops there with its error, so what is left
//!   has no reference to a deleted model: the referrers already handled are handled, the
//!   targets are still there. (Models in a cycle of cascades reference each other both
//!   ways; one of them is deleted first.)
//!
//! The search is not part of the script: a referrer saved between the search and the
//! delete is not seen.
//!
//! **Expiry along references.** [`set_ttl_cascade`] gives a model and everything it
//! references, down to a depth, one expiry: the models reached are found as
//! [`Refs::load`](crate::Refs::load) finds them (each key once), then expired per slot in one
//! script each.

use std::any::TypeId;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;

use crate::codec::{Document, ttl_millis};
use crate::db::Db;
use crate::documents::{delete_count, per_slot, slot_groups};
use crate::error::{Error, Result};
use crate::keys::{
    HashTag, KeySettings, Structure, all_companions, full_key, model_space, structures_of,
};
use crate::query::{Find, Indexable, TagField};
use crate::reference::{Ref, Refs};
use crate::referrers::{self, OnDelete, Referrer};
use crate::script::failure;
use crate::script::library::{EXPIRE_MANY, UNLINK};

/// A field type that can carry `on_delete`: `Ref<M>` and `Option<Ref<M>>`.
#[diagnostic::on_unimplemented(
    message = "`on_delete` goes on a reference field: `{Self}` is not a `Ref<M>` or `Option<Ref<M>>`",
    label = "not a reference"
)]
pub trait RefTarget {
    /// The referenced model's type.
    #[doc(hidden)]
    fn target() -> TypeId;
}

impl<M: 'static> RefTarget for Ref<M> {
    fn target() -> TypeId {
        TypeId::of::<M>()
    }
}

impl<M: 'static> RefTarget for Option<Ref<M>> {
    fn target() -> TypeId {
        TypeId::of::<M>()
    }
}

/// A reference field that can be set to null: `Option<Ref<M>>`.
#[diagnostic::on_unimplemented(
    message = "`on_delete = \"set_null\"` needs an `Option<Ref<M>>` field, not `{Self}`",
    label = "cannot hold null",
    note = "make the field `Option<Ref<M>>`, or use on_delete = \"restrict\" or \"cascade\""
)]
pub trait Nullable {}

impl<M> Nullable for Option<Ref<M>> {}

/// Adds the field at `segment` (`.author`) of the stored model `R`, indexed as `attr`, with
/// `policy` (for generated code).
pub fn declare<R, F>(out: &mut Vec<Referrer>, segment: &str, attr: &str, policy: OnDelete)
where
    R: KeySettings + Document + Indexable,
    F: RefTarget,
{
    let name = std::any::type_name::<R>();
    out.push(Referrer {
        target: F::target(),
        model: TypeId::of::<R>(),
        model_name: name.rsplit("::").next().unwrap_or(name),
        path: format!("${segment}"),
        attr: attr.to_string(),
        policy,
        find: find_referrers::<R>,
        id_of: id_of::<R>,
        structures: structures_of::<R>,
    })
}

/// The keys of the `R`s whose indexed reference `attr` holds `id`.
fn find_referrers<'a, R: KeySettings + Document + Indexable>(
    db: &'a Db,
    attr: &'a str,
    id: String,
) -> Pin<Box<dyn Future<Output = Result<Vec<String>>> + Send + 'a>> {
    Box::pin(async move { Find::<R>::new(db, TagField::new(attr).eq(&id)).keys().await })
}

/// The id in the full key of an `M` in `namespace`: the key layout read backwards.
fn id_of<M: KeySettings>(namespace: &str, key: &str) -> Option<String> {
    let rest = key.strip_prefix(&model_space(namespace, M::PREFIX))?;
    let id = match M::HASH_TAG {
        HashTag::None => rest,
        HashTag::Static(tag) => rest.strip_prefix(&format!("{{{tag}}}:"))?,
        HashTag::Id => rest.strip_prefix('{')?.strip_suffix('}')?,
    };
    (full_key::<M>(namespace, id) == key).then(|| id.to_string())
}

/// One model the delete removes.
struct Node {
    key: String,
    id: String,
    model: TypeId,
    /// The special structures its model keeps in companion keys, deleted after it.
    structures: Vec<Structure>,
    /// The nodes referencing this one through a cascade.
    referrers: Vec<usize>,
}

/// A reference to clear: the referrer's key, the reference's path, the id it holds.
struct Null {
    key: String,
    path: String,
    id: String,
}

/// Deletes the `M`s with these ids with their referrers' policies (see the module's docs);
/// returns how many of them were stored.
pub(crate) async fn delete<M: KeySettings>(db: &Db, ids: Vec<String>) -> Result<usize> {
    let keys: Vec<String> = ids
        .iter()
        .map(|id| full_key::<M>(db.namespace(), id))
        .collect();
    if referrers::of(TypeId::of::<M>()).is_empty() {
        return delete_count(db, keys, &structures_of::<M>()).await;
    }
    let mut nodes: Vec<Node> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut queue = VecDeque::new();
    for (key, id) in keys.into_iter().zip(ids) {
        if !index.contains_key(&key) {
            index.insert(key.clone(), nodes.len());
            queue.push_back(nodes.len());
            nodes.push(Node {
                key,
                id,
                model: TypeId::of::<M>(),
                structures: structures_of::<M>(),
                referrers: Vec::new(),
            });
        }
    }
    let roots = nodes.len();
    let mut restricted: Vec<(String, String, String)> = Vec::new();
    let mut nulls: Vec<Null> = Vec::new();
    while let Some(i) = queue.pop_front() {
        for r in referrers::of(nodes[i].model) {
            let found = (r.find)(db, &r.attr, nodes[i].id.clone()).await?;
            for key in found {
                match r.policy {
                    OnDelete::Restrict => {
                        restricted.push((nodes[i].key.clone(), key, r.path.clone()))
                    }
                    OnDelete::SetNull => nulls.push(Null {
                        key,
                        path: r.path.clone(),
                        id: nodes[i].id.clone(),
                    }),
                    OnDelete::Cascade => {
                        let j = match index.get(&key) {
                            Some(&j) => j,
                            None => {
                                let Some(id) = (r.id_of)(db.namespace(), &key) else {
                                    return Err(Error::InvalidOp {
                                        key,
                                        path: "$".into(),
                                        message: format!(
                                            "the index of {} found a key that is not one of its",
                                            r.model_name
                                        ),
                                    });
                                };
                                index.insert(key.clone(), nodes.len());
                                queue.push_back(nodes.len());
                                nodes.push(Node {
                                    key,
                                    id,
                                    model: r.model,
                                    structures: (r.structures)(),
                                    referrers: Vec::new(),
                                });
                                nodes.len() - 1
                            }
                        };
                        if j != i {
                            nodes[i].referrers.push(j);
                        }
                    }
                }
            }
        }
    }
    if let Some((key, referrer, path)) = restricted
        .into_iter()
        .find(|(_, referrer, _)| !index.contains_key(referrer))
    {
        return Err(Error::Referenced {
            key,
            referrer,
            path,
        });
    }
    nulls.retain(|n| !index.contains_key(&n.key));
    let order = referrers_first(&nodes, roots);
    let deletes: Vec<&str> = order.iter().map(|&i| nodes[i].key.as_str()).collect();
    let mut all: Vec<String> = nulls.iter().map(|n| n.key.clone()).collect();
    all.extend(deletes.iter().map(|k| k.to_string()));
    let deleted = if slot_groups(db, &all).len() <= 1 {
        unlink(db, &nulls, &deletes).await?
    } else {
        let mut deleted = Vec::with_capacity(deletes.len());
        for null in &nulls {
            unlink(db, std::slice::from_ref(null), &[]).await?;
        }
        for key in &deletes {
            deleted.extend(unlink(db, &[], &[key]).await?);
        }
        deleted
    };
    // Their structures' companion keys go after them (a delete script checks that every key
    // it deletes holds a document): one DEL per slot, each companion in its document's slot.
    let companions: Vec<String> = order
        .iter()
        .zip(&deleted)
        .filter(|(_, n)| **n > 0)
        .flat_map(|(&i, _)| all_companions(db.namespace(), &nodes[i].key, &nodes[i].structures))
        .map(|(key, _)| key)
        .collect();
    if !companions.is_empty() {
        per_slot(db, &companions, |group| async move {
            let mut del = redis::cmd("DEL");
            del.arg(&group);
            db.query::<i64>("DEL", group.len(), &del)
                .await
                .map_err(|e| Error::redis("delete", e))
        })
        .await?;
    }
    // The models asked for are the last `roots` deletes... in their own order.
    Ok(order
        .iter()
        .zip(&deleted)
        .filter(|(i, _)| **i < roots)
        .map(|(_, n)| *n as usize)
        .sum())
}

/// The nodes in an order where every node comes after the nodes referencing it (a cycle is
/// cut where it is first met), the ones asked for last.
fn referrers_first(nodes: &[Node], roots: usize) -> Vec<usize> {
    let mut order = Vec::with_capacity(nodes.len());
    let mut state = vec![0u8; nodes.len()]; // 0 new, 1 on the path, 2 placed
    for root in 0..roots {
        let mut stack = vec![(root, 0usize)];
        state[root] = 1;
        while let Some((i, next)) = stack.pop() {
            match nodes[i].referrers.get(next) {
                Some(&j) => {
                    stack.push((i, next + 1));
                    if state[j] == 0 && j >= roots {
                        state[j] = 1;
                        stack.push((j, 0));
                    }
                }
                None => {
                    state[i] = 2;
                    if i >= roots {
                        order.push(i);
                    }
                }
            }
        }
    }
    order.extend(0..roots);
    order
}

/// One run of the unlink script: `nulls` cleared, then `deletes` deleted, in order; returns
/// 1 or 0 per delete.
async fn unlink(db: &Db, nulls: &[Null], deletes: &[&str]) -> Result<Vec<u64>> {
    let mut keys: Vec<String> = nulls.iter().map(|n| n.key.clone()).collect();
    keys.extend(deletes.iter().map(|k| k.to_string()));
    let mut args = vec![nulls.len().to_string()];
    for n in nulls {
        args.push(n.path.clone());
        args.push(n.id.clone());
    }
    match db.run_lua::<Vec<u64>>(&UNLINK, &keys, &args).await {
        Ok(deleted) => Ok(deleted),
        Err(e) => Err(failure::keyed_error(e, &keys)),
    }
}

/// Sets `ttl` on `model` and on every model it references, down to `depth` levels (0: the
/// model only), each key once (cycles end): the models reached are read level by level as
/// [`Refs::load`] reads them, then expired in one script per hash slot, all keys checked
/// first. A dangling reference is skipped; the model itself missing is [`Error::NotFound`]
/// (and nothing is expired); a key of another Redis type among the targets is
/// [`Error::TypeMismatch`] (its slot's keys unchanged).
/// Returns how many documents got the expiry.
pub async fn set_ttl_cascade<M: KeySettings + Serialize + Sync>(
    db: &Db,
    model: &M,
    ttl: Duration,
    depth: usize,
) -> Result<usize> {
    let root = full_key::<M>(db.namespace(), model.model_id());
    // The model itself first: missing, or of another type, is an error before anything else.
    crate::crud::set_ttl(db, root.clone(), ttl, &structures_of::<M>()).await?;
    let refs = Refs::load(db, model, depth).await?;
    let keys: Vec<String> = refs
        .stored_keys()
        .filter(|k| **k != root)
        .cloned()
        .collect();
    let ms = ttl_millis(ttl).to_string();
    let counts = per_slot(db, &keys, |group| {
        let ms = ms.clone();
        async move {
            match db
                .run_lua::<u64>(&EXPIRE_MANY, &group, std::slice::from_ref(&ms))
                .await
            {
                Ok(n) => Ok(n),
                Err(e) => Err(failure::keyed_error(e, &group)),
            }
        }
    })
    .await?;
    let set: u64 = counts.iter().map(|(_, n)| n).sum();
    Ok(usize::try_from(set).unwrap_or(usize::MAX).saturating_add(1))
}
