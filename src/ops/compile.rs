//! The compiler: a block's operations become Lua text that depends only on their shape,
//! with keys in `KEYS` and every value, index, dict key and field name in `ARGV`.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use super::refs::{Doc, Loc, Step, push_name};
use super::{CondNode, Op, Operand, Param};
use crate::script::{Keys, Script};

/// The runtime every block's script starts with: the shared helpers of `lua/field.lua`
/// (exact decimal arithmetic, Python indexing), then `runtime.lua`.
static RUNTIME: LazyLock<String> = LazyLock::new(|| {
    let field = include_str!("../../lua/field.lua");
    let begin = field.find("-- shared:begin").unwrap_or(0);
    let end = field
        .find("-- shared:end")
        .map_or(field.len(), |i| i + "-- shared:end\n".len());
    let mut out = String::from("-- rapyer ServerOps block\n");
    out.push_str(&field[begin..end]);
    out.push_str(include_str!("runtime.lua"));
    out
});

/// A compiled block: the shape-only body, and the data that goes with it.
#[derive(Debug)]
pub(crate) struct Compiled {
    /// The Lua after the runtime.
    pub(crate) body: String,
    /// The documents named, in `KEYS` order.
    pub(crate) docs: Vec<Arc<Doc>>,
    /// `ARGV`.
    pub(crate) args: Vec<String>,
    /// Each root: its key's position in `docs` and its field names from the document.
    pub(crate) roots: Vec<(usize, Vec<&'static str>)>,
    /// For each operation, the position in `docs` of the first document it names.
    pub(crate) op_docs: Vec<Option<usize>>,
}

/// The whole script text of a body.
pub(crate) fn script_text(body: &str) -> String {
    let mut out = String::with_capacity(RUNTIME.len() + body.len());
    out.push_str(&RUNTIME);
    out.push_str(body);
    out
}

/// The registered script for a body, built (and hashed) once per shape.
pub(crate) fn script(body: &str) -> Script {
    static CACHE: LazyLock<Mutex<HashMap<String, Script>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(script) = cache.get(body) {
        return script.clone();
    }
    if cache.len() >= 4096 {
        cache.clear();
    }
    let text = script_text(body);
    let sha = sha1_smol::Sha1::from(text.as_bytes()).digest().to_string();
    let script = Script::owned(format!("rapyer.block.{}", &sha[..16]), Keys::Dynamic, text);
    cache.insert(body.to_string(), script.clone());
    script
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
    body: String,
    op_docs: Vec<Option<usize>>,
}

fn visit_locs<'a>(ops: &'a [Op], out: &mut Vec<&'a Loc>) {
    for op in ops {
        match op {
            Op::Call { params, .. } => {
                for p in params {
                    match p {
                        Param::Loc(l) => out.push(l),
                        Param::Locs(ls) => out.extend(ls.iter()),
                        Param::Lit(_) | Param::Arg(_) => {}
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
                if let Operand::Loc(l) = o {
                    out.push(l);
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

/// Compiles `ops` (numbered 0..count); with `echo`, the script also returns the changed
/// roots of the first key.
pub(crate) fn compile(ops: &[Op], count: usize, echo: bool) -> Compiled {
    let mut locs = Vec::new();
    visit_locs(ops, &mut locs);
    let mut c = Compiler {
        docs: Vec::new(),
        doc_index: HashMap::new(),
        roots: Vec::new(),
        args: Vec::new(),
        body: String::new(),
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
    for doc in &c.docs {
        c.args.push(millis(doc.write_ttl));
        c.args.push(millis(doc.read_ttl));
    }
    let root_paths: Vec<String> = c
        .roots
        .iter()
        .map(|(_, names)| {
            let mut path = String::from("$");
            for name in names {
                push_name(&mut path, name);
            }
            path
        })
        .collect();
    for (i, path) in root_paths.into_iter().enumerate() {
        let arg = c.arg(path);
        let key = c.roots[i].0 + 1;
        let _ = writeln!(c.body, "ROOT({}, {key}, {arg})", i + 1);
    }
    let _ = writeln!(c.body, "return RUN({count}, {echo}, function()",);
    c.ops(ops, 1);
    c.body.push_str("end)\n");
    Compiled {
        body: c.body,
        docs: c.docs,
        args: c.args,
        roots: c.roots,
        op_docs: c.op_docs,
    }
}

/// A document's expiry in milliseconds as the runtime reads it, `0` for none.
fn millis(ttl: Option<std::time::Duration>) -> String {
    ttl.map_or(0, crate::crud::ttl_millis).to_string()
}

impl Compiler {
    /// Adds `value` to ARGV; returns `ARGV[n]`.
    fn arg(&mut self, value: String) -> String {
        self.args.push(value);
        format!("ARGV[{}]", self.args.len())
    }

    fn indent(&mut self, depth: usize) {
        for _ in 0..depth {
            self.body.push_str("  ");
        }
    }

    fn ops(&mut self, ops: &[Op], depth: usize) {
        for op in ops {
            match op {
                Op::Call { func, params, out } => {
                    let first = params.iter().find_map(|p| match p {
                        Param::Loc(l) => Some(l),
                        Param::Locs(ls) => ls.first(),
                        Param::Lit(_) | Param::Arg(_) => None,
                    });
                    if let (Some(loc), Some(slot)) = (first, self.op_docs.get_mut(*out)) {
                        *slot = self.doc_index.get(&loc.doc.key).copied();
                    }
                    let mut args = Vec::with_capacity(params.len());
                    for p in params {
                        args.push(self.param(p));
                    }
                    self.indent(depth);
                    let n = out + 1;
                    let _ = writeln!(
                        self.body,
                        "OP = {n}; RES[{n}] = {func}({})",
                        args.join(", ")
                    );
                }
                Op::When {
                    cond,
                    then,
                    otherwise,
                    out,
                } => {
                    let n = out + 1;
                    let test = self.cond(cond);
                    self.indent(depth);
                    let _ = writeln!(self.body, "OP = {n}; RES[{n}] = tostring({test})");
                    self.indent(depth);
                    let _ = writeln!(self.body, "if RES[{n}] == 'true' then");
                    self.ops(then, depth + 1);
                    if !otherwise.is_empty() {
                        self.indent(depth);
                        self.body.push_str("else\n");
                        self.ops(otherwise, depth + 1);
                    }
                    self.indent(depth);
                    self.body.push_str("end\n");
                }
            }
        }
    }

    fn param(&mut self, p: &Param) -> String {
        match p {
            Param::Loc(loc) => self.loc(loc),
            Param::Locs(locs) => locs
                .iter()
                .map(|l| self.loc(l))
                .collect::<Vec<_>>()
                .join(", "),
            Param::Lit(lit) => {
                debug_assert!(lit.bytes().all(|b| b.is_ascii_lowercase() || b == b'*'));
                format!("'{lit}'")
            }
            Param::Arg(value) => self.arg(value.clone()),
        }
    }

    fn cond(&mut self, cond: &CondNode) -> String {
        match cond {
            CondNode::Cmp {
                op,
                want,
                left,
                right,
            } => {
                let l = self.operand(left);
                let r = self.operand(right);
                format!("compare('{op}', '{want}', {l}, {r})")
            }
            CondNode::And(a, b) => {
                let (a, b) = (self.cond(a), self.cond(b));
                format!("({a} and {b})")
            }
            CondNode::Or(a, b) => {
                let (a, b) = (self.cond(a), self.cond(b));
                format!("({a} or {b})")
            }
            CondNode::Not(a) => {
                let a = self.cond(a);
                format!("(not {a})")
            }
        }
    }

    fn operand(&mut self, o: &Operand) -> String {
        match o {
            Operand::Loc(l) => self.loc(l),
            Operand::Value(v) => {
                let a = self.arg(v.clone());
                format!("V({a})")
            }
        }
    }

    /// `L(root, kind, ARGV[n], …)`, wrapped in `S(…)` for a slice.
    fn loc(&mut self, loc: &Loc) -> String {
        let k = self.doc_index[&loc.doc.key];
        let prefix = static_prefix(loc);
        let root = self
            .roots
            .iter()
            .position(|(rk, r)| *rk == k && prefix.starts_with(r))
            .expect("every place has a root");
        let skip = self.roots[root].1.len();
        let mut out = format!("L({}", root + 1);
        for step in &loc.steps[skip..] {
            let (kind, value) = match step {
                Step::Field(name) => ("f", name.to_string()),
                Step::Index(i) => ("i", i.to_string()),
                Step::Key(key) => ("k", key.clone()),
            };
            let a = self.arg(value);
            let _ = write!(out, ", '{kind}', {a}");
        }
        out.push(')');
        if let Some(bounds) = loc.slice {
            let mut parts = Vec::with_capacity(3);
            for b in bounds {
                parts.push(self.arg(b.map(|v| v.to_string()).unwrap_or_default()));
            }
            out = format!("S({out}, {})", parts.join(", "));
        }
        out
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
        format!("{}KEYS {keys:?}\nARGV {:?}\n", c.body, c.args)
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

    #[test]
    fn the_text_depends_only_on_the_shape() {
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
        assert_eq!(one.body, two.body);
        assert_ne!(one.args, two.args);
        // Blocks of another shape get another text.
        let three = block("a", "a", "x", 1);
        assert_ne!(
            one.body, three.body,
            "one key instead of two is another shape"
        );
    }
}
