//! Running a compiled block: the cluster-slot check, `EVALSHA` through the registry, and
//! reading its results or its error.

use serde::de::DeserializeOwned;

use super::compile;
use super::compile::flat::Echoes;
use super::{Out, Program};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::keys::{KeySettings, key_of};
use crate::script::Script;
use crate::script::failure::Failure;

/// Every operation's result, in the order the operations were added: JSON text, or `None`
/// for an operation a condition skipped.
#[derive(Debug, Clone, Default)]
pub struct Results {
    values: Vec<Option<String>>,
    /// The block's keys, and for each operation the one it names first (for messages).
    keys: Vec<String>,
    op_keys: Vec<Option<usize>>,
}

impl Results {
    /// How many operations the block had.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the block had no operation.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The result of `out`; `None` when a condition skipped its operation.
    pub fn get<T: DeserializeOwned>(&self, out: Out<T>) -> Result<Option<T>> {
        self.value(out.index)
    }

    /// The result of operation `index` decoded as `T`; `None` when it was skipped or there
    /// is no such operation.
    pub fn value<T: DeserializeOwned>(&self, index: usize) -> Result<Option<T>> {
        let Some(text) = self.raw(index) else {
            return Ok(None);
        };
        serde_json::from_str(text)
            .map(Some)
            .map_err(|source| Error::Deserialize {
                key: self
                    .op_keys
                    .get(index)
                    .copied()
                    .flatten()
                    .and_then(|k| self.keys.get(k))
                    .cloned()
                    .unwrap_or_default(),
                path: format!("(result of operation {index})"),
                source,
            })
    }

    /// The JSON text of operation `index`'s result; `None` when it was skipped.
    pub fn raw(&self, index: usize) -> Option<&str> {
        self.values.get(index).and_then(|v| v.as_deref())
    }
}

/// What the closure of a block returns, read from its [`Results`]: an [`Out<T>`] gives
/// `Option<T>` (`None` when skipped), tuples and `Vec`s give theirs, and `()` gives the
/// [`Results`] themselves.
pub trait Resolve {
    /// What the block returns.
    type Output;
    /// Reads it from the results.
    fn resolve(self, results: &Results) -> Result<Self::Output>;
}

impl Resolve for () {
    type Output = Results;
    fn resolve(self, results: &Results) -> Result<Results> {
        Ok(results.clone())
    }
}

impl<T: DeserializeOwned> Resolve for Out<T> {
    type Output = Option<T>;
    fn resolve(self, results: &Results) -> Result<Option<T>> {
        results.get(self)
    }
}

impl<T: DeserializeOwned> Resolve for Vec<Out<T>> {
    type Output = Vec<Option<T>>;
    fn resolve(self, results: &Results) -> Result<Vec<Option<T>>> {
        self.into_iter().map(|o| results.get(o)).collect()
    }
}

macro_rules! tuples {
    ($(($($name:ident),+)),*) => {
        $(
            impl<$($name: Resolve),+> Resolve for ($($name,)+) {
                type Output = ($($name::Output,)+);
                #[allow(non_snake_case)]
                fn resolve(self, results: &Results) -> Result<Self::Output> {
                    let ($($name,)+) = self;
                    Ok(($($name.resolve(results)?,)+))
                }
            }
        )*
    };
}

tuples!(
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F),
    (A, B, C, D, E, F, G),
    (A, B, C, D, E, F, G, H),
    (A, B, C, D, E, F, G, H, I),
    (A, B, C, D, E, F, G, H, I, J),
    (A, B, C, D, E, F, G, H, I, J, K),
    (A, B, C, D, E, F, G, H, I, J, K, L)
);

/// A changed part of the first document: its field names from the root, then the key of a
/// dict entry (which the client puts into the dict it holds), and its JSON.
#[derive(Debug)]
pub(crate) struct Echoed {
    names: Vec<&'static str>,
    entry: Option<String>,
    text: String,
}

/// The changed parts of the first document, written into the local model in order.
pub(crate) type Echo = Vec<Echoed>;

/// Runs `program` as one script; with `echo`, also returns the changed parts of the first
/// document.
pub(crate) async fn run(db: &Db, program: &Program, echo: bool) -> Result<(Results, Echo)> {
    let ops = &program.frames[0];
    if program.count == 0 {
        return Ok((Results::default(), Vec::new()));
    }
    if let Some(mut plan) = compile::flat::plan(ops, program.count) {
        plan.echo(echo);
        return run_flat(db, program, plan).await;
    }
    let compiled = compile::compile(ops, program.count, echo);
    let mut keys: Vec<String> = compiled.docs.iter().map(|d| db.key(&d.key)).collect();
    // The companion keys of the documents' structures follow them.
    for (k, s) in &compiled.structures {
        let companions = crate::keys::companion_keys(db.namespace(), &keys[*k], s.kind, &s.path());
        keys.extend(companions.into_iter().map(|(key, _)| key));
    }
    if let Some(first) = keys.first() {
        let slot = crate::slot::hash_slot(first.as_bytes());
        if keys
            .iter()
            .any(|k| crate::slot::hash_slot(k.as_bytes()) != slot)
        {
            return Err(Error::CrossSlot { keys });
        }
    }
    let script = compile::script(db.registry(), &compiled);
    let reply = call(db, &script, &keys, &compiled.args).await?;
    let malformed = || malformed(&script, &reply);
    match reply.first().map(String::as_str) {
        Some("ok") if reply.len() > program.count => {
            let values = reply[1..=program.count]
                .iter()
                .map(|v| (!v.is_empty()).then(|| v.clone()))
                .collect();
            let mut echoed = Vec::new();
            for pair in reply[program.count + 1..].chunks(2) {
                let [root, text] = pair else {
                    return Err(malformed());
                };
                let root: usize = root.parse().map_err(|_| malformed())?;
                let (_, names) = compiled
                    .roots
                    .get(root.wrapping_sub(1))
                    .ok_or_else(malformed)?;
                echoed.push(Echoed {
                    names: names.clone(),
                    entry: None,
                    text: text.clone(),
                });
            }
            if echo && touches_structures(&compiled.uses) {
                echoed.extend(structures_of_first(db, &keys[0], &compiled.structures).await?);
            }
            Ok((
                Results {
                    values,
                    keys,
                    op_keys: compiled.op_docs,
                },
                echoed,
            ))
        }
        _ => Err(malformed()),
    }
}

/// Whether a block whose runtime uses `uses` writes a set or a priority queue.
fn touches_structures(uses: &std::collections::BTreeSet<&'static str>) -> bool {
    use super::block_op::BlockOp;
    [
        BlockOp::SetAdd,
        BlockOp::SetRemove,
        BlockOp::QueuePush,
        BlockOp::QueuePop,
        BlockOp::QueuePopInto,
        BlockOp::QueueRemove,
        BlockOp::StructuresCopy,
    ]
    .iter()
    .any(|op| uses.contains(op.lua_name()))
}

/// The sets and queues of the block's first document (at `key`), read from their companion
/// keys after the block, each as an echo of its field: what an `atomic` block writes back
/// into the local model (one more round trip, only after a block that wrote structures).
async fn structures_of_first(
    db: &Db,
    key: &str,
    structures: &[(usize, crate::keys::Structure)],
) -> Result<Echo> {
    let first: Vec<crate::keys::Structure> = structures
        .iter()
        .filter(|(k, _)| *k == 0)
        .map(|(_, s)| s.clone())
        .collect();
    if first.is_empty() {
        return Ok(Vec::new());
    }
    let Some(json) = crate::documents::read_with_structures(db, key, None, &first).await? else {
        return Ok(Vec::new());
    };
    let doc: serde_json::Value =
        serde_json::from_slice(&json).map_err(|source| Error::Deserialize {
            key: key.to_string(),
            path: "$".to_string(),
            source,
        })?;
    Ok(first
        .iter()
        .zip(crate::structures::values(&doc, &first))
        .map(|(s, value)| Echoed {
            names: s.names.clone(),
            entry: None,
            text: value.to_string(),
        })
        .collect())
}

/// Runs a block compiled to the flat plan: its fast path first when its kinds have one, and
/// the whole flat script when there is none or it declined (having written nothing: the
/// whole script then checks again, names the failure, or does the block if the documents
/// changed in between). The reply is `ok`, each operation's result, then, when echoing,
/// each one's echo (`''` for none). A call with no answer is never sent again (it may have
/// run).
async fn run_flat(
    db: &Db,
    program: &Program,
    plan: compile::flat::Flat,
) -> Result<(Results, Echo)> {
    let keys: Vec<String> = plan.docs.iter().map(|d| db.key(&d.key)).collect();
    let mut done = None;
    if compile::flat::has_quick(&plan.kinds) {
        let quick = &*crate::script::library::FLAT_FAST;
        let reply = call(db, quick, &keys, &plan.args).await?;
        if reply != ["declined"] {
            done = Some((quick.clone(), reply));
        }
    }
    let (script, reply) = match done {
        Some(done) => done,
        None => {
            let script = compile::flat_script(db.registry(), &plan);
            let reply = call(db, &script, &keys, &plan.args).await?;
            (script, reply)
        }
    };
    let n = program.count;
    let echoes = if plan.echoes_back() { n } else { 0 };
    if reply.first().map(String::as_str) != Some("ok") || reply.len() != 1 + n + echoes {
        return Err(malformed(&script, &reply));
    }
    let mut reply = reply.into_iter();
    let values = reply.by_ref().skip(1).take(n).map(Some).collect();
    // Each changed field's value; a dict's (sent on its first entry) then each entry put in,
    // its value the text sent (each entry's own argument, taken: the call is done).
    let mut args = plan.args;
    let mut echoed = Vec::new();
    for (text, at) in reply.zip(plan.echoes) {
        let Some(Echoes { names, entry }) = at else {
            continue;
        };
        if !text.is_empty() {
            echoed.push(Echoed {
                names: names.clone(),
                entry: None,
                text,
            });
        }
        if let Some((key, value)) = entry {
            echoed.push(Echoed {
                names,
                entry: Some(key),
                text: std::mem::take(&mut args[value]),
            });
        }
    }
    Ok((
        Results {
            values,
            keys,
            op_keys: plan.op_docs,
        },
        echoed,
    ))
}

/// Runs a block's script on `keys` (refused before sending when they span cluster slots);
/// a typed failure is [`Error::Block`] naming the operation.
async fn call(db: &Db, script: &Script, keys: &[String], args: &[String]) -> Result<Vec<String>> {
    if let Some(first) = keys.first() {
        let slot = crate::slot::hash_slot(first.as_bytes());
        if keys
            .iter()
            .any(|k| crate::slot::hash_slot(k.as_bytes()) != slot)
        {
            return Err(Error::CrossSlot {
                keys: keys.to_vec(),
            });
        }
    }
    db.run_lua(script, keys, args)
        .await
        .map_err(|e| match Failure::read(&e) {
            Some(failure) => Error::Block {
                op: failure.op().saturating_sub(1),
                source: Box::new(failure.into_error(keys)),
            },
            None => e,
        })
}

fn malformed(script: &Script, reply: &[String]) -> Error {
    Error::Script {
        name: script.name().to_string(),
        message: format!("unexpected reply shape from a block script: {reply:?}"),
    }
}

/// Writes the changed parts of the document into the local model, field by field: fields
/// the block did not change, and fields serde leaves out of the document, keep their local
/// value (a round trip of the whole model through serde would reset the skipped ones).
pub(crate) fn apply_echo<M: KeySettings + super::refs::Referable>(
    model: &mut M,
    db: &Db,
    echo: &Echo,
) -> Result<()> {
    for Echoed { names, entry, text } in echo {
        let path = || {
            let mut path = String::from("$");
            for name in names {
                crate::path::push_member_text(&mut path, name);
            }
            if let Some(key) = entry {
                crate::path::push_entry_text(&mut path, key);
            }
            path
        };
        let mut names: Vec<&str> = names.clone();
        names.extend(entry.as_deref());
        model
            .patch(&names, text)
            .map_err(|source| Error::Deserialize {
                key: db.key(&key_of::<M>(model.model_id())),
                path: path(),
                source,
            })?;
    }
    Ok(())
}
