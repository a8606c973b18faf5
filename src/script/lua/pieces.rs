//! The block runtime cut into pieces, one per top-level `local` of the Lua, each knowing
//! the pieces it uses; a script carries only what its operations need.
//!
//! The dependencies are read from the Lua itself (the names of other pieces a piece
//! mentions outside strings and comments), so they cannot drift from the code; a new helper
//! needs no declaration.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use crate::script::lua::{self, names};

/// One top-level definition of the runtime, with the comment above it.
#[derive(Debug)]
struct Piece {
    text: String,
    /// The pieces it uses, by position.
    needs: Vec<usize>,
}

#[derive(Debug)]
struct Runtime {
    pieces: Vec<Piece>,
    /// Which piece defines each name.
    defined_by: HashMap<String, usize>,
}

/// The shared Lua library (`lua/lib/*.lua`), then the block runtime (`lua/block.lua`), in
/// pieces.
static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    let sources: Vec<&str> = lua::LIB
        .iter()
        .map(|(_, source)| *source)
        .chain([lua::BLOCK])
        .collect();
    split(&sources)
});

/// Cuts each of `sources` before each top-level `local`, giving each piece the comment
/// lines right above it; text before a source's first `local` (the file's own comment) is
/// dropped.
fn split(sources: &[&'static str]) -> Runtime {
    let mut texts: Vec<Vec<&str>> = Vec::new();
    let mut pending: Vec<&str> = Vec::new();
    for source in sources {
        // Until the file's first definition, text is the file's own comment.
        let mut header = true;
        for line in source.lines() {
            if line.starts_with("local ") {
                header = false;
                let mut piece = std::mem::take(&mut pending);
                piece.push(line);
                texts.push(piece);
            } else if line.starts_with("--") {
                pending.push(line);
            } else if header {
                pending.clear();
            } else if let Some(last) = texts.last_mut() {
                // A blank or indented line: the comment gathered so far belonged to the code
                // above, not to the next definition.
                last.append(&mut pending);
                last.push(line);
            }
        }
        if let Some(last) = texts.last_mut() {
            last.append(&mut pending);
        }
    }
    let mut defined_by = HashMap::new();
    for (i, lines) in texts.iter().enumerate() {
        let head = lines
            .iter()
            .find(|l| l.starts_with("local "))
            .copied()
            .unwrap_or_default();
        for name in defines(head) {
            defined_by.insert(name, i);
        }
    }
    let pieces = texts
        .iter()
        .enumerate()
        .map(|(i, lines)| {
            let text = lines.join("\n") + "\n";
            let mut needs: Vec<usize> = names(&text, false)
                .into_iter()
                .filter_map(|n| defined_by.get(n).copied())
                .filter(|&j| j != i)
                .collect();
            needs.sort_unstable();
            needs.dedup();
            Piece { text, needs }
        })
        .collect();
    Runtime { pieces, defined_by }
}

/// The names a top-level `local` line defines: `local function f(` or `local a, b = …`.
fn defines(head: &str) -> Vec<String> {
    let rest = head.trim_start_matches("local ").trim_start();
    if let Some(f) = rest.strip_prefix("function ") {
        return f
            .split('(')
            .next()
            .map(|n| vec![n.trim().to_string()])
            .unwrap_or_default();
    }
    let names = rest.split('=').next().unwrap_or_default();
    names
        .split(',')
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

/// The script for blocks that call the operations `uses`: the pieces they and the
/// interpreter (`MAIN`) need, in the runtime's order, then the operations' table and the
/// entry point.
pub(super) fn assemble(uses: &BTreeSet<&'static str>) -> String {
    let rt = &*RUNTIME;
    let mut keep = vec![false; rt.pieces.len()];
    let mut todo: Vec<usize> = std::iter::once("MAIN")
        .chain(uses.iter().copied())
        .filter_map(|name| rt.defined_by.get(name).copied())
        .collect();
    while let Some(i) = todo.pop() {
        if !keep[i] {
            keep[i] = true;
            todo.extend(&rt.pieces[i].needs);
        }
    }
    let mut out = String::from("-- rapyer ServerOps block runtime, with the operations: ");
    out.push_str(&uses.iter().copied().collect::<Vec<_>>().join(", "));
    out.push('\n');
    for (piece, _) in rt.pieces.iter().zip(&keep).filter(|(_, k)| **k) {
        out.push_str(&piece.text);
    }
    out.push_str("\n-- The block.\n");
    for name in uses {
        // Only names the runtime defines: an unknown one would be a global (an error).
        if rt.defined_by.contains_key(*name) {
            out.push_str(&format!("OPS.{name} = {name}\n"));
        }
    }
    out.push_str("return MAIN()\n");
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{RUNTIME, assemble, names};

    #[test]
    fn every_top_level_name_of_the_runtime_is_defined_once() {
        let rt = &*RUNTIME;
        for name in [
            "MAIN", "RUN", "op_incr", "op_set", "add", "cmp", "skip", "OPS",
        ] {
            assert!(rt.defined_by.contains_key(name), "{name} has no piece");
        }
        let defined: usize = rt.pieces.len();
        assert!(defined > 50, "only {defined} pieces");
    }

    #[test]
    fn strings_comments_and_fields_are_not_dependencies() {
        let used = names(
            "-- get\nlocal x = fail('index', n.arr, \"put\") + t:enc()\n",
            false,
        );
        assert_eq!(
            used,
            BTreeSet::from(["fail", "local", "n", "t", "x"]),
            "{used:?}"
        );
    }

    #[test]
    fn a_script_carries_only_the_operations_it_uses() {
        let incr = assemble(&BTreeSet::from(["op_incr"]));
        assert!(incr.contains("local function op_incr("));
        assert!(incr.contains("OPS.op_incr = op_incr"));
        assert!(!incr.contains("local function op_concat("));
        assert!(!incr.contains("local function assign_slice("));
        let full = assemble(&BTreeSet::from(["op_incr", "op_assign"]));
        assert!(full.contains("local function assign_slice("));
        assert!(incr.len() < full.len());
        // Every piece kept is defined before the entry point runs.
        assert!(incr.ends_with("return MAIN()\n"));
    }
}
