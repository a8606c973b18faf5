//! The compiler: a block's operations become a program in `ARGV` (keys in `KEYS`), run by a
//! script that holds the block runtime's interpreter, only the operations it uses and only
//! the optional parts of the interpreter its places need (places below a root, slices, whole
//! documents set, conditions, floats, lists it only appends to).
//!
//! Why a program in `ARGV` rather than Lua text per block shape: every script a server has
//! cached costs it its text and its compiled Lua (about 90 KB for the whole runtime, 60 KB
//! for the pieces two operations need, measured on Redis 8.2), and `SCRIPT LOAD`ed scripts
//! are never evicted. With the program as data, the script depends only on the *set* of
//! operations a block uses: a block of 400 increments, built in a loop, runs the same script
//! as a block of one, and a program that builds hundreds of block shapes from a dozen
//! operations needs at most a few scripts.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::block_op::BlockOp;
use super::refs::{Doc, Loc, Step};
use super::{CondNode, Op, Operand, Param};
use crate::path::{push_member, push_member_text};
use crate::script::{Keys, Script};

pub(crate) mod flat;
mod runtime;

/// A compiled block: the operations its script needs, and the data that goes with it.
#[derive(Debug)]
pub(crate) struct Compiled {
    /// The runtime's operations the block calls (`op_incr`, …) and the optional parts of
    /// the interpreter it needs (`WHEN` for a condition, `get_at` for places below a root,
    /// …), sorted: all the script depends on.
    pub(crate) uses: BTreeSet<&'static str>,
    /// The documents named, in `KEYS` order.
    pub(crate) docs: Vec<Arc<Doc>>,
    /// `ARGV`: the expiries, then the program.
    pub(crate) args: Vec<String>,
    /// Each root: its key's position in `docs` and its field names from the document.
    pub(crate) roots: Vec<(usize, Vec<&'static str>)>,
    /// For each operation, the position in `docs` of the first document it names.
    pub(crate) op_docs: Vec<Option<usize>>,
    /// The special structures of the documents, each with its document's position in
    /// `docs`: their companion keys follow the documents' in `KEYS`.
    pub(crate) structures: Vec<(usize, crate::keys::Structure)>,
}

impl Compiled {
    /// What tells this block's script apart from others: the operations and parts it uses.
    pub(crate) fn shape(&self) -> String {
        self.uses.iter().copied().collect::<Vec<_>>().join(",")
    }
}

/// The whole script text for blocks using the operations `uses`: the runtime pieces they
/// need, in the runtime's order, then the table of those operations and the entry point.
pub(crate) fn script_text(uses: &BTreeSet<&'static str>) -> String {
    runtime::assemble(uses)
}

/// The script of a compiled block, built (and hashed) once per shape and kept in the
/// `Db`'s bounded cache of block scripts.
pub(crate) fn script(registry: &crate::script::Registry, compiled: &Compiled) -> Script {
    block_script(registry, &compiled.shape(), || script_text(&compiled.uses))
}

/// The script of a flat block (see [`flat`]), cached as [`script`]'s.
pub(crate) fn flat_script(registry: &crate::script::Registry, plan: &flat::Flat) -> Script {
    block_script(registry, &plan.shape(), || flat::script_text(&plan.kinds))
}

fn block_script(
    registry: &crate::script::Registry,
    shape: &str,
    text: impl FnOnce() -> String,
) -> Script {
    registry.block(shape, || {
        let text = text();
        let sha = sha1_smol::Sha1::from(text.as_bytes()).digest().to_string();
        Script::block(format!("rapyer.block.{}", &sha[..16]), Keys::Dynamic, text)
    })
}

/// The leading field names of a place: the part of the document its root must cover.
fn static_prefix(loc: &Loc) -> Vec<&'static str> {
    loc.steps
        .iter()
        .map_while(|s| match s {
            Step::Field(name) => Some(*name),
            _ => None,
        })
        .collect()
}

struct Compiler {
    docs: Vec<Arc<Doc>>,
    doc_index: HashMap<String, usize>,
    /// Per document, its roots' prefixes (none a prefix of another) and their numbers.
    roots: Vec<(usize, Vec<&'static str>)>,
    args: Vec<String>,
    uses: BTreeSet<&'static str>,
    /// The operations the block calls, in the order of their names: an operation's number
    /// in the program is its position here, from 1 (the script's `OPS` is numbered alike).
    ops: Vec<&'static str>,
    op_docs: Vec<Option<usize>>,
}

/// Every operation call of `ops`, conditions' branches included.
fn visit_calls<'a>(ops: &'a [Op], f: &mut impl FnMut(BlockOp, &'a [Param])) {
    for op in ops {
        match op {
            Op::Call { func, params, .. } => f(*func, params),
            Op::When {
                then, otherwise, ..
            } => {
                visit_calls(then, f);
                visit_calls(otherwise, f);
            }
        }
    }
}

fn visit_locs<'a>(ops: &'a [Op], out: &mut Vec<&'a Loc>) {
    for op in ops {
        match op {
            Op::Call { params, .. } => {
                for p in params {
                    match p {
                        Param::Loc(l) => out.push(l),
                        Param::Locs(ls) => out.extend(ls.iter()),
                        Param::Lit(_) | Param::Arg(_) | Param::Args(_) => {}
                    }
                }
            }
            Op::When {
                cond,
                then,
                otherwise,
                ..
            } => {
                visit_cond(cond, out);
                visit_locs(then, out);
                visit_locs(otherwise, out);
            }
        }
    }
}

fn visit_cond<'a>(cond: &'a CondNode, out: &mut Vec<&'a Loc>) {
    match cond {
        CondNode::Cmp { left, right, .. } => {
            for o in [left, right] {
                match o {
                    Operand::Loc(l) => out.push(l),
                    Operand::Structure(q) => out.push(&q.loc),
                    Operand::Len(l) => out.push(l),
                    Operand::Value(_) => {}
                }
            }
        }
        CondNode::And(a, b) | CondNode::Or(a, b) => {
            visit_cond(a, out);
            visit_cond(b, out);
        }
        CondNode::Not(a) => visit_cond(a, out),
    }
}

/// The lists whose length the conditions of `ops` compare (`list.len()`): measuring a list
/// does not read it, so a list the block only appends to and measures stays unread.
fn visit_measured<'a>(ops: &'a [Op], out: &mut Vec<&'a Loc>) {
    fn in_cond<'a>(cond: &'a CondNode, out: &mut Vec<&'a Loc>) {
        match cond {
            CondNode::Cmp { left, right, .. } => {
                out.extend([left, right].into_iter().filter_map(|o| match o {
                    Operand::Len(l) => Some(&**l),
                    _ => None,
                }));
            }
            CondNode::And(a, b) | CondNode::Or(a, b) => {
                in_cond(a, out);
                in_cond(b, out);
            }
            CondNode::Not(a) => in_cond(a, out),
        }
    }
    for op in ops {
        if let Op::When {
            cond,
            then,
            otherwise,
            ..
        } = op
        {
            in_cond(cond, out);
            visit_measured(then, out);
            visit_measured(otherwise, out);
        }
    }
}

/// Compiles `ops` (numbered 0..count); with `echo`, the script also returns the changed
/// roots of the first key.
pub(crate) fn compile(ops: &[Op], count: usize, echo: bool) -> Compiled {
    let mut locs = Vec::new();
    visit_locs(ops, &mut locs);
    let mut funcs = BTreeSet::new();
    // The places lists are pushed to (`append`, `extend`).
    let mut pushes: Vec<&Loc> = Vec::new();
    visit_calls(ops, &mut |func, params| {
        funcs.insert(func.lua_name());
        if func == BlockOp::ListPush {
            pushes.extend(params.iter().find_map(|p| match p {
                Param::Loc(l) => Some(l),
                _ => None,
            }));
        }
    });
    let mut c = Compiler {
        docs: Vec::new(),
        doc_index: HashMap::new(),
        roots: Vec::new(),
        args: Vec::new(),
        ops: funcs.iter().copied().collect(),
        uses: funcs,
        op_docs: vec![None; count],
    };
    // Keys in order of first use; per key, the shortest prefixes that cover every place.
    let mut prefixes: Vec<Vec<Vec<&'static str>>> = Vec::new();
    for loc in &locs {
        let k = *c.doc_index.entry(loc.doc.key.clone()).or_insert_with(|| {
            c.docs.push(Arc::clone(&loc.doc));
            prefixes.push(Vec::new());
            c.docs.len() - 1
        });
        prefixes[k].push(static_prefix(loc));
    }
    for (k, mut ps) in prefixes.into_iter().enumerate() {
        let mut order: Vec<Vec<&'static str>> = Vec::new();
        for p in &ps {
            if !order.contains(p) {
                order.push(p.clone());
            }
        }
        ps.sort_by_key(Vec::len);
        let mut kept: Vec<Vec<&'static str>> = Vec::new();
        for p in ps {
            if !kept.iter().any(|r| p.starts_with(r)) {
                kept.push(p);
            }
        }
        // Number the roots in the order places first use them.
        for p in order {
            if let Some(r) = kept.iter().position(|r| p.starts_with(r)) {
                let root = kept.remove(r);
                c.roots.push((k, root));
            }
        }
    }
    // Lists the block only appends to: every place on their root is the list itself, the
    // target of a push (or of a length condition). They are checked and measured, never
    // read nor written back whole (`push_only` in lua/block.lua).
    let mut measured = Vec::new();
    visit_measured(ops, &mut measured);
    let mut push_only = vec![None; c.roots.len()];
    for loc in &locs {
        let root = c.root_of(loc);
        let pushed = pushes
            .iter()
            .chain(&measured)
            .any(|p| std::ptr::eq(*p, *loc))
            && loc.steps.len() == c.roots[root].1.len()
            && loc.slice.is_none();
        push_only[root] = Some(pushed && push_only[root] != Some(false));
    }
    if push_only.contains(&Some(true)) {
        c.uses.extend(["push_only", "pushed"]);
    }
    if pushes.iter().any(|p| push_only[c.root_of(p)] != Some(true)) {
        c.uses.insert("push_read");
    }
    // The layout `MAIN` in lua/block.lua reads.
    for doc in &c.docs {
        c.args.push(millis(doc.write_ttl));
        c.args.push(millis(doc.read_ttl));
    }
    let structures = structure_keys(&mut c);
    c.args.push(if echo { "1" } else { "0" }.to_string());
    c.args.push(count.to_string());
    c.args.push(c.roots.len().to_string());
    for ((k, names), only) in c.roots.iter().zip(&push_only) {
        let mut path = String::from("$");
        for name in names {
            // The derive refuses field names no step can address; a message path is what
            // such a name always got.
            if !push_member(&mut path, name) {
                push_member_text(&mut path, name);
            }
        }
        let mark = if *only == Some(true) { "a" } else { "" };
        c.args.push(format!("{}{mark}", k + 1));
        c.args.push(path);
    }
    if structures.is_empty() {
        c.block(ops);
    } else {
        // The flush statement is an operation too: number it with the others.
        c.uses.insert(BlockOp::StructuresFlush.lua_name());
        c.ops = c
            .uses
            .iter()
            .copied()
            .filter(|n| runtime::is_op(n))
            .collect();
        c.block(&with_flush(ops, count));
    }
    Compiled {
        uses: c.uses,
        docs: c.docs,
        args: c.args,
        roots: c.roots,
        op_docs: c.op_docs,
        structures,
    }
}

/// The documents' special structures, each with its document's position, after pushing the
/// expiry slots of their companion keys (see `lua/block_structures.lua`): `#d#type#path`,
/// which only the structures' operations read, and `0`, which the runtime's expiry loop
/// skips.
fn structure_keys(c: &mut Compiler) -> Vec<(usize, crate::keys::Structure)> {
    let mut out = Vec::new();
    for (k, doc) in c.docs.iter().enumerate() {
        for s in &doc.structures {
            for (t, path) in crate::keys::companion_types(std::slice::from_ref(s)) {
                c.args.push(format!("#{}#{t}#{path}", k + 1));
                c.args.push("0".to_string());
            }
            out.push((k, s.clone()));
        }
    }
    out
}

/// `ops` and, last, the statement that runs the structure writes they queued.
fn with_flush(ops: &[Op], count: usize) -> Vec<Op> {
    let mut all = ops.to_vec();
    all.push(Op::Call {
        func: super::block_op::BlockOp::StructuresFlush,
        params: Vec::new(),
        out: count,
    });
    all
}

/// A document's expiry in milliseconds as the runtime reads it, `0` for none.
fn millis(ttl: Option<std::time::Duration>) -> String {
    ttl.map_or(0, crate::codec::ttl_millis).to_string()
}

impl Compiler {
    /// The number (from 0) of the root that covers `loc`.
    fn root_of(&self, loc: &Loc) -> usize {
        let k = self.doc_index[&loc.doc.key];
        let prefix = static_prefix(loc);
        self.roots
            .iter()
            .position(|(rk, r)| *rk == k && prefix.starts_with(r))
            .expect("every place has a root")
    }

    fn push(&mut self, value: impl Into<String>) {
        self.args.push(value.into());
    }

    /// A list of statements, as `run_block` in lua/block.lua reads it.
    fn block(&mut self, ops: &[Op]) {
        self.push(ops.len().to_string());
        for op in ops {
            match op {
                Op::Call { func, params, out } => {
                    let first = params.iter().find_map(|p| match p {
                        Param::Loc(l) => Some(l),
                        Param::Locs(ls) => ls.first(),
                        Param::Lit(_) | Param::Arg(_) | Param::Args(_) => None,
                    });
                    if let (Some(loc), Some(slot)) = (first, self.op_docs.get_mut(*out)) {
                        *slot = self.doc_index.get(&loc.doc.key).copied();
                    }
                    let number = self.ops.iter().position(|f| *f == func.lua_name());
                    self.push(number.map_or(0, |n| n + 1).to_string());
                    self.push((out + 1).to_string());
                    // Setting a whole document keeps its id: a part of the runtime only
                    // blocks that do it carry.
                    if *func == BlockOp::Set && first.is_some_and(|l| l.is_document()) {
                        self.uses.insert("set_doc");
                    }
                    // So does adding to a float (the target's JSON type follows its place).
                    if matches!(func, BlockOp::Incr | BlockOp::IncrBy)
                        && matches!(params.get(1), Some(Param::Lit("number")))
                    {
                        self.uses.insert("fplus");
                    }
                    let mut kinds = String::new();
                    for p in params {
                        match p {
                            Param::Loc(_) => kinds.push('l'),
                            Param::Locs(ls) => kinds.extend(ls.iter().map(|_| 'l')),
                            Param::Lit(_) | Param::Arg(_) => kinds.push('v'),
                            Param::Args(vs) => kinds.extend(vs.iter().map(|_| 'v')),
                        }
                    }
                    self.push(kinds);
                    for p in params {
                        match p {
                            Param::Loc(loc) => self.loc(loc),
                            Param::Locs(locs) => locs.iter().for_each(|l| self.loc(l)),
                            Param::Lit(lit) => self.push(*lit),
                            Param::Arg(value) => self.push(value.clone()),
                            Param::Args(values) => self.args.extend(values.iter().cloned()),
                        }
                    }
                }
                Op::When {
                    cond,
                    then,
                    otherwise,
                    out,
                } => {
                    // The runtime's condition reader and tests (`WHEN` in lua/block.lua, a
                    // part) are in the script only of blocks with a condition.
                    self.uses.insert("WHEN");
                    self.push("w");
                    self.push((out + 1).to_string());
                    self.cond(cond);
                    // Each branch with its length, so the one not taken is skipped.
                    for branch in [then, otherwise] {
                        let outer = std::mem::take(&mut self.args);
                        self.block(branch);
                        let inner = std::mem::replace(&mut self.args, outer);
                        self.push(inner.len().to_string());
                        self.args.extend(inner);
                    }
                }
            }
        }
    }

    fn cond(&mut self, cond: &CondNode) {
        match cond {
            CondNode::Cmp {
                op,
                want,
                left,
                right,
            } => {
                // Comparing strings byte by byte is a part of its own.
                if *want == "string" {
                    self.uses.insert("bytes_cmp");
                }
                self.push("cmp");
                self.push(*op);
                self.push(*want);
                self.operand(left);
                self.operand(right);
            }
            CondNode::And(a, b) => {
                self.push("and");
                self.cond(a);
                self.cond(b);
            }
            CondNode::Or(a, b) => {
                self.push("or");
                self.cond(a);
                self.cond(b);
            }
            CondNode::Not(a) => {
                self.push("not");
                self.cond(a);
            }
        }
    }

    fn operand(&mut self, o: &Operand) {
        match o {
            Operand::Loc(l) => self.loc(l),
            Operand::Structure(q) => {
                self.uses.insert("SQUERY");
                self.push("SQUERY");
                self.loc(&q.loc);
                self.push(q.query);
                self.push(q.path.clone());
                self.push(q.member.clone());
            }
            Operand::Len(l) => {
                self.uses.insert("list_len");
                self.push("list_len");
                self.loc(l);
            }
            Operand::Value(v) => {
                self.push("v");
                self.push(v.clone());
            }
        }
    }

    /// The root's number alone for the root itself; else the number and `+`, the number
    /// of steps after the root (each its kind and value), then the slice (`s` and its three
    /// bounds) or `''`.
    fn loc(&mut self, loc: &Loc) {
        let root = self.root_of(loc);
        let skip = self.roots[root].1.len();
        // The interpreter's parts for places below their root and for slices are in the
        // script only of blocks with such places.
        if loc.steps.len() > skip {
            self.uses
                .extend(["get_at", "put_at", "parent", "read_at", "prefix"]);
        }
        if loc.slice.is_some() {
            self.uses.extend(["assign_slice", "read_at", "prefix"]);
        }
        if loc.steps.len() == skip && loc.slice.is_none() {
            self.push((root + 1).to_string());
            return;
        }
        self.push(format!("{}+", root + 1));
        self.push((loc.steps.len() - skip).to_string());
        for step in &loc.steps[skip..] {
            let (kind, value) = match step {
                Step::Field(name) => ("f", name.to_string()),
                Step::Index(i) => ("i", i.to_string()),
                Step::Key(key) => ("k", key.clone()),
            };
            self.push(kind);
            self.push(value);
        }
        match loc.slice {
            Some(bounds) => {
                self.push("s");
                for b in bounds {
                    self.push(b.map(|v| v.to_string()).unwrap_or_default());
                }
            }
            None => self.push(""),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::{Deserialize, Serialize};

    use super::compile;
    use crate::AtomicModel;
    use crate::ops::Ops;

    #[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[rapyer(hash_tag = "t")]
    struct Acct {
        #[rapyer(key)]
        id: String,
        balance: i64,
        rate: f64,
        note: String,
        tags: Vec<String>,
        prefs: HashMap<String, String>,
        owner: Owner,
        on: bool,
    }

    #[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
    struct Owner {
        #[serde(rename = "full name")]
        name: String,
        age: u8,
    }

    /// The block's script part, its keys and its ARGV, as one text.
    fn compiled(build: impl FnOnce(&Ops)) -> String {
        let ops = Ops::new();
        build(&ops);
        let program = ops.finish().expect("the block builds");
        let c = compile(&program.frames[0], program.count, false);
        let keys: Vec<&str> = c.docs.iter().map(|d| d.key.as_str()).collect();
        format!("USES {}\nKEYS {keys:?}\nARGV {:?}\n", c.shape(), c.args)
    }

    #[test]
    fn a_transfer_block() {
        let (a, b) = (Acct::server_ref_for("a"), Acct::server_ref_for("b"));
        insta::assert_snapshot!(compiled(|ops| {
            ops.when(a.balance().ge(30) & !b.note().eq("frozen"))
                .then(|ops| {
                    ops.incr(a.balance(), -30);
                    ops.incr(b.balance(), 30);
                })
                .otherwise(|ops| {
                    ops.concat([a.note(), b.owner().name()], b.note(), ", ");
                });
        }));
    }

    #[test]
    fn places_share_the_roots_that_cover_them() {
        let (a, b) = (Acct::server_ref_for("a"), Acct::server_ref_for("b"));
        insta::assert_snapshot!(compiled(|ops| {
            ops.set(a.owner().age(), 7);
            ops.assign(b.owner(), a.owner());
            ops.set(a.prefs().entry("k'\"]"), "v");
            ops.assign(
                a.tags().slice((Some(1), None, Some(-2))),
                b.tags().slice(..0),
            );
            ops.incr_by_field(a.rate(), a.owner().age());
            ops.copy_model(b.clone(), "c");
            ops.move_item(b.tags().at(0), a.tags());
        }));
    }

    /// The script `build`'s block runs (what `ServerOps::explain` shows).
    fn script_of(build: impl FnOnce(&Ops)) -> String {
        let ops = Ops::new();
        build(&ops);
        let program = ops.finish().expect("the block builds");
        match super::flat::plan(&program.frames[0], program.count) {
            Some(plan) => super::flat::script_text(&plan.kinds),
            None => super::script_text(&compile(&program.frames[0], program.count, false).uses),
        }
    }

    #[test]
    fn scripts_of_common_shapes_fit_in_8_kb() {
        let (a, b) = (Acct::server_ref_for("a"), Acct::server_ref_for("b"));
        let ops: [&dyn Fn(&Ops); 5] = [
            &|ops| {
                ops.incr(a.balance(), 1);
            },
            &|ops| {
                ops.append(a.tags(), "x".to_string());
            },
            &|ops| {
                ops.insert(a.prefs(), "k", "v".to_string());
            },
            &|ops| {
                ops.set(a.note(), "renamed".to_string());
            },
            &|ops| {
                ops.toggle(a.on());
            },
        ];
        // The bench's 5-op row and each of its first 1 to 5 operations, and each one alone:
        // the flat plan.
        for n in 1..=ops.len() {
            for shape in [&ops[..n], &ops[n - 1..n]] {
                let text = script_of(|o| shape.iter().for_each(|op| op(o)));
                assert!(text.starts_with("-- rapyer ServerOps flat block"), "{n}");
                assert!(text.len() <= 8 * 1024, "{n} ops: {} bytes", text.len());
            }
        }
        // The interpreter's, for typical blocks it runs: the same field twice, a field and its
        // model, a condition, a float.
        let typical: [&dyn Fn(&Ops); 4] = [
            &|ops| {
                ops.incr(a.balance(), 1);
                ops.incr(a.balance(), 1);
            },
            &|ops| {
                ops.incr(a.balance(), 1);
                ops.extend(a.tags(), ["x".to_string()]);
                ops.append(a.tags(), "y".to_string());
            },
            &|ops| {
                ops.when(a.balance().ge(30)).then(|ops| {
                    ops.incr(a.balance(), -30);
                    ops.incr(b.balance(), 30);
                });
            },
            &|ops| {
                ops.incr(a.rate(), 0.5);
                ops.incr(a.rate(), 0.5);
                ops.append(a.note(), "!");
            },
        ];
        for (i, build) in typical.iter().enumerate() {
            let text = script_of(build);
            assert!(text.starts_with("-- rapyer ServerOps block runtime"), "{i}");
            assert!(
                text.len() <= 8 * 1024,
                "typical block {i}: {} bytes",
                text.len()
            );
        }
    }

    #[test]
    fn places_inside_one_another_or_conditions_take_the_interpreter() {
        let a = Acct::server_ref_for("a");
        let interpreted = |build: &dyn Fn(&Ops)| {
            let ops = Ops::new();
            build(&ops);
            let program = ops.finish().expect("builds");
            super::flat::plan(&program.frames[0], program.count).is_none()
        };
        assert!(interpreted(&|ops| {
            ops.incr(a.balance(), 1);
            ops.incr(a.balance(), 2);
        }));
        assert!(interpreted(&|ops| {
            ops.set(a.owner().age(), 1);
            ops.set(
                a.owner(),
                Owner {
                    name: "n".into(),
                    age: 2,
                },
            );
        }));
        assert!(interpreted(&|ops| {
            ops.set(a.prefs().entry("k"), "v");
            ops.clear(a.prefs());
        }));
        assert!(interpreted(&|ops| {
            ops.set(a.prefs().entry("k"), "v");
            ops.set(a.prefs().entry("k"), "w");
        }));
        // A dict key no JSONPath step addresses (both quotes) travels in a value instead.
        assert!(interpreted(&|ops| {
            ops.set(a.prefs().entry("k'\""), "v");
        }));
        assert!(interpreted(&|ops| {
            ops.when(a.on().eq(true)).then(|ops| {
                ops.toggle(a.on());
            });
        }));
        assert!(!interpreted(&|ops| {
            ops.set(a.prefs().entry("k"), "v");
            ops.set(a.prefs().entry("j"), "w");
            ops.set(a.owner().age(), 1);
            ops.set(a.owner().name(), "n");
        }));
    }

    #[test]
    fn a_list_only_appended_to_and_measured_is_never_read() {
        let a = Acct::server_ref_for("a");
        let uses = |build: &dyn Fn(&Ops)| {
            let ops = Ops::new();
            build(&ops);
            let program = ops.finish().expect("builds");
            let c = compile(&program.frames[0], program.count, false);
            let marked = c.args.iter().any(|a| a == "1a");
            (c.uses, marked)
        };
        // Measured, then appended to: measured with JSON.ARRLEN, appended at the commit.
        let (used, marked) = uses(&|ops| {
            ops.when(a.tags().len().lt(3)).then(|ops| {
                ops.append(a.tags(), "x".to_string());
            });
        });
        assert!(marked && used.contains("push_only") && used.contains("list_len"));
        assert!(!used.contains("push_read"));
        // Only measured: not read either.
        let (_, marked) = uses(&|ops| {
            ops.when(a.tags().len().eq(0)).then(|ops| {
                ops.incr(a.balance(), 1);
            });
        });
        assert!(marked);
        // Measured and popped from: read into the block, measured there.
        let (used, marked) = uses(&|ops| {
            ops.pop(a.tags());
            ops.when(a.tags().len().gt(1)).then(|ops| {
                ops.append(a.tags(), "x".to_string());
            });
        });
        assert!(!marked && used.contains("push_read") && !used.contains("push_only"));
    }

    #[test]
    fn the_script_depends_only_on_the_operations_used() {
        let block = |x: &str, y: &str, v: &str, n: i64| {
            let (a, b) = (Acct::server_ref_for(x), Acct::server_ref_for(y));
            let ops = Ops::new();
            ops.set(a.prefs().entry(v), v);
            ops.incr(b.balance(), n);
            ops.assign(a.tags().slice(n..), b.tags().slice(..n));
            let program = ops.finish().expect("builds");
            compile(&program.frames[0], program.count, false)
        };
        let one = block("a", "b", "x", 1);
        let two = block("zz", "yy", "a value with ' and \" and ]", -5);
        assert_eq!(super::script_text(&one.uses), super::script_text(&two.uses));
        assert_ne!(one.args, two.args);
        for text in ["zz", "yy", "value with"] {
            assert!(!super::script_text(&two.uses).contains(text));
        }
        // The same operations in another order, or repeated, use the same script.
        let (a, b) = (Acct::server_ref_for("a"), Acct::server_ref_for("b"));
        let ops = Ops::new();
        for i in 0..50 {
            ops.assign(a.tags().slice(i..), b.tags().slice(..i));
            ops.incr(a.balance(), i);
            ops.set(b.prefs().entry("k"), "v");
        }
        let program = ops.finish().expect("builds");
        let many = compile(&program.frames[0], program.count, false);
        assert_eq!(many.shape(), one.shape());
        // Another operation is another script.
        let ops = Ops::new();
        ops.incr(a.balance(), 1);
        let program = ops.finish().expect("builds");
        let incr = compile(&program.frames[0], program.count, false);
        assert_ne!(incr.shape(), one.shape());
        assert_eq!(incr.shape(), "op_incr");
    }
}
