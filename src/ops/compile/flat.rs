//! The flat plan: a block whose every operation acts on a place of its own (a field, or a
//! dict entry JSONPath can address), none inside another's, with no condition, runs without
//! the interpreter (`lua/flat.lua`). Each operation is checked with one command before
//! anything is written, then written with one bare RedisJSON command at its own path: only
//! changed paths are written, and a list is appended to without being read.
//!
//! The script depends only on the set of operation kinds the block uses (one letter each,
//! see `lua/flat.lua`); the block travels in `ARGV` as the interpreter's program does.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::ops::block_op::BlockOp;
use crate::ops::refs::{Doc, Loc, Step, json_string};
use crate::ops::{Op, Param};
use crate::path::{push_entry, push_member};
use crate::script::lua::FLAT_PIECES;

/// A block compiled to the flat plan.
#[derive(Debug)]
pub(crate) struct Flat {
    /// The kinds of operations it uses (`i`, `s`, `p`, …): all its script depends on.
    pub(crate) kinds: BTreeSet<char>,
    /// The documents named, in `KEYS` order.
    pub(crate) docs: Vec<Arc<Doc>>,
    /// `ARGV`: the expiries, then the operations.
    pub(crate) args: Vec<String>,
    /// Per operation on the first document, what the script echoes of it; `None` for
    /// another document's.
    pub(crate) echoes: Vec<Option<Echoes>>,
    /// Per operation, the position in `docs` of its document.
    pub(crate) op_docs: Vec<Option<usize>>,
}

/// What an operation on the first document changed: the field names of the field, or of
/// the dict holding the entry, whose value the script echoes (a dict's only on its first
/// entry in the block); and for an entry, its key and where its JSON value is in `ARGV`,
/// which the client puts into the dict itself.
#[derive(Debug)]
pub(crate) struct Echoes {
    pub(crate) names: Vec<&'static str>,
    pub(crate) entry: Option<(String, usize)>,
}

impl Flat {
    /// What tells this block's script apart from others (and from the interpreter's).
    pub(crate) fn shape(&self) -> String {
        format!("flat:{}", self.kinds.iter().collect::<String>())
    }

    /// Whether the script echoes the changed values of the first document.
    pub(crate) fn echoes_back(&self) -> bool {
        self.args[2 * self.docs.len()] == "1"
    }
}

/// One operation of the plan: its kind, its place (the field names, and the dict key of an
/// entry), its JSONPath and its operands.
struct Step1<'a> {
    kind: char,
    doc: &'a Arc<Doc>,
    names: Vec<&'static str>,
    entry: Option<&'a str>,
    path: String,
    operands: Vec<String>,
}

/// The flat plan of `ops`, or `None` when the block needs the interpreter.
pub(crate) fn plan(ops: &[Op], count: usize) -> Option<Flat> {
    let mut steps = Vec::with_capacity(ops.len());
    for op in ops {
        let Op::Call { func, params, .. } = op else {
            return None;
        };
        steps.push(step(*func, params)?);
    }
    // No place inside another's (nor the same twice): each check must see the value as the
    // block found it, and each write must leave the others' places alone.
    for (i, a) in steps.iter().enumerate() {
        for b in &steps[i + 1..] {
            if a.doc.key == b.doc.key && overlaps(a, b) {
                return None;
            }
        }
    }
    // A document keeping special structures in companion keys takes the interpreter, whose
    // last statement re-arms their expiry with the document's.
    if steps.iter().any(|s| !s.doc.structures.is_empty()) {
        return None;
    }
    let mut docs: Vec<Arc<Doc>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for s in &steps {
        if !index.contains_key(s.doc.key.as_str()) {
            index.insert(&s.doc.key, docs.len());
            docs.push(Arc::clone(s.doc));
        }
    }
    let mut args = Vec::new();
    for doc in &docs {
        for ttl in [doc.write_ttl, doc.read_ttl] {
            args.push(ttl.map_or(0, crate::codec::ttl_millis).to_string());
        }
    }
    args.push(String::new()); // the echo flag, set by `echo`
    args.push(count.to_string());
    let mut kinds = BTreeSet::new();
    let mut echoes = Vec::with_capacity(steps.len());
    let mut op_docs = Vec::with_capacity(steps.len());
    for s in steps {
        let k = index[s.doc.key.as_str()];
        kinds.insert(s.kind);
        op_docs.push(Some(k));
        args.push(s.kind.to_string());
        args.push((k + 1).to_string());
        args.push(s.path);
        args.push(s.operands.len().to_string());
        // An entry's operands: the dict's JSONPath, the JSON value.
        let value = args.len() + 1;
        echoes.push((k == 0).then(|| Echoes {
            entry: s.entry.map(|key| (key.to_string(), value)),
            names: s.names,
        }));
        args.extend(s.operands);
    }
    Some(Flat {
        kinds,
        docs,
        args,
        echoes,
        op_docs,
    })
}

impl Flat {
    /// Sets whether the script echoes the changed values of the first document.
    pub(crate) fn echo(&mut self, echo: bool) {
        let at = 2 * self.docs.len();
        self.args[at] = if echo { "1" } else { "0" }.to_string();
    }
}

/// Whether one place is the other or inside it.
fn overlaps(a: &Step1<'_>, b: &Step1<'_>) -> bool {
    let n = a.names.len().min(b.names.len());
    if a.names[..n] != b.names[..n] {
        return false;
    }
    if a.names.len() != b.names.len() {
        return true;
    }
    match (a.entry, b.entry) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

/// The field names of a place that is a field (`Some(names, None)`) or a dict entry
/// (`Some(names, Some(key))`) below at least one field, with no slice.
fn place(loc: &Loc) -> Option<(Vec<&'static str>, Option<&str>)> {
    if loc.slice.is_some() {
        return None;
    }
    let mut names = Vec::with_capacity(loc.steps.len());
    let mut entry = None;
    for (i, step) in loc.steps.iter().enumerate() {
        match step {
            Step::Field(name) if entry.is_none() => names.push(*name),
            Step::Key(key) if i + 1 == loc.steps.len() && !names.is_empty() => entry = Some(key),
            _ => return None,
        }
    }
    (!names.is_empty()).then_some((names, entry.map(String::as_str)))
}

/// The JSONPath of field names, when each one has an address that is also how messages
/// write it.
fn address(names: &[&'static str]) -> Option<String> {
    let mut path = String::from("$");
    for name in names {
        let before = path.len();
        if !push_member(&mut path, name) {
            return None;
        }
        let mut text = String::new();
        crate::path::push_member_text(&mut text, name);
        if path[before..] != text {
            return None;
        }
    }
    Some(path)
}

/// One operation as a step of the plan, or `None` when it needs the interpreter.
fn step(func: BlockOp, params: &[Param]) -> Option<Step1<'_>> {
    let Some(Param::Loc(loc)) = params.first() else {
        return None;
    };
    let (names, entry) = place(loc)?;
    let path = address(&names)?;
    let arg = |i: usize| match params.get(i) {
        Some(Param::Arg(v)) => Some(v.clone()),
        Some(Param::Lit(v)) => Some((*v).to_string()),
        _ => None,
    };
    let (kind, path, operands) = match (func, entry) {
        (BlockOp::Incr, None) => {
            let kind = match params.get(1) {
                Some(Param::Lit("integer")) => 'i',
                Some(Param::Lit("number")) => 'f',
                _ => return None,
            };
            (kind, path, vec![arg(2)?, arg(3)?, arg(4)?])
        }
        (BlockOp::Set, None) => ('s', path, vec![arg(1)?, arg(2)?]),
        (BlockOp::Set, Some(key)) => {
            let mut at = path.clone();
            if !push_entry(&mut at, key) {
                return None;
            }
            ('d', at, vec![path, arg(2)?])
        }
        (BlockOp::Toggle, None) => ('t', path, Vec::new()),
        (BlockOp::StrAppend, None) => ('a', path, vec![json_string(&arg(1)?)]),
        (BlockOp::ListPush, None) => match params.get(1) {
            Some(Param::Args(items)) => ('p', path, items.clone()),
            _ => return None,
        },
        _ => return None,
    };
    Some(Step1 {
        kind,
        doc: &loc.doc,
        names,
        entry,
        path,
        operands,
    })
}

/// The script of flat blocks using the operation kinds `kinds`: the pieces of the shared
/// library and of `lua/flat.lua` they need, their table, and the entry point.
pub(crate) fn script_text(kinds: &BTreeSet<char>) -> String {
    let kinds: Vec<String> = kinds.iter().map(char::to_string).collect();
    let mut out = format!(
        "-- rapyer ServerOps flat block, with the kinds: {}\n",
        kinds.join(", ")
    );
    // A kind's `first_` (when it has one) is its command tried before its checks.
    let mut roots = vec!["FLAT".to_string()];
    for k in &kinds {
        roots.extend([
            format!("check_{k}"),
            format!("write_{k}"),
            format!("first_{k}"),
        ]);
    }
    out.push_str(&FLAT_PIECES.needed(roots.iter().map(String::as_str)));
    out.push_str("\n-- The block.\n");
    for k in &kinds {
        out.push_str(&format!("CHECK.{k}, WRITE.{k} = check_{k}, write_{k}\n"));
        if FLAT_PIECES.defines(&format!("first_{k}")) {
            out.push_str(&format!("FIRST.{k} = first_{k}\n"));
        }
    }
    out.push_str("return FLAT()\n");
    out
}

/// Whether flat blocks using the operation kinds `kinds` have a fast path
/// (`lua/flat_fast.lua`, the script [`library::FLAT_FAST`](crate::script::library::FLAT_FAST)):
/// every kind but a float increment has one. It reads the same `KEYS` and `ARGV` as
/// [`script_text`]'s script and answers as it does, or `{'declined'}` having written nothing,
/// and then the client runs that script.
pub(crate) fn has_quick(kinds: &BTreeSet<char>) -> bool {
    kinds.iter().all(|k| "adipst".contains(*k))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::has_quick;
    use crate::script::lua::{FLAT_FAST, flat_fast_script};

    #[test]
    fn the_fast_path_does_the_kinds_it_claims_and_fits_in_8_kb() {
        let text = flat_fast_script();
        assert!(text.len() <= 8 * 1024, "{} bytes", text.len());
        for kind in ['a', 'd', 'f', 'i', 'p', 's', 't'] {
            // Each kind it claims is named by its checks (a float increment by none).
            assert_eq!(
                FLAT_FAST.contains(&format!("kd == '{kind}'"))
                    || FLAT_FAST.contains(&format!("kd ~= '{kind}'")),
                has_quick(&BTreeSet::from([kind])),
                "{kind}"
            );
        }
    }
}
