//! A block's script: the pieces of the shared library and of the block runtime
//! (`lua/block.lua`) that its operations and the interpreter need, then the table of those
//! operations (`OPS`, by number), the optional parts of the interpreter it carries (`PART`,
//! by name) and the entry point.

use std::collections::BTreeSet;

use crate::script::lua::BLOCK_PIECES;

/// The script for blocks that call the operations `uses`: the pieces they and the
/// interpreter (`MAIN`) need, in the runtime's order, then the operations' table and the
/// entry point.
pub(super) fn assemble(uses: &BTreeSet<&'static str>) -> String {
    let runtime = &*BLOCK_PIECES;
    let mut out = String::from("-- rapyer ServerOps block runtime, with: ");
    out.push_str(&uses.iter().copied().collect::<Vec<_>>().join(", "));
    out.push('\n');
    out.push_str(&runtime.needed(std::iter::once("MAIN").chain(uses.iter().copied())));
    out.push_str("\n-- The block.\n");
    // Only names the runtime defines: an unknown one would be a global (an error).
    let defined = uses.iter().filter(|name| runtime.defines(name));
    for (number, name) in defined.clone().filter(|n| is_op(n)).enumerate() {
        out.push_str(&format!("OPS[{}] = {name}\n", number + 1));
    }
    for name in defined.filter(|n| !is_op(n)) {
        out.push_str(&format!("PART.{name} = {name}\n"));
    }
    out.push_str("return MAIN()\n");
    out
}

/// Whether a name the compiler uses is an operation (called by number from the program)
/// rather than an optional part of the interpreter.
pub(super) fn is_op(name: &str) -> bool {
    name.starts_with("op_")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{BLOCK_PIECES, assemble};

    #[test]
    fn every_top_level_name_of_the_runtime_has_a_piece() {
        for name in [
            "MAIN", "RUN", "op_incr", "op_set", "add", "cmp", "skip", "OPS",
        ] {
            assert!(BLOCK_PIECES.defines(name), "{name} has no piece");
        }
    }

    #[test]
    fn a_script_carries_only_the_operations_it_uses() {
        let incr = assemble(&BTreeSet::from(["op_incr"]));
        assert!(incr.contains("local function op_incr("));
        assert!(incr.contains("OPS[1] = op_incr"));
        assert!(!incr.contains("local function op_concat("));
        assert!(!incr.contains("local function assign_slice("));
        let full = assemble(&BTreeSet::from(["op_incr", "op_assign"]));
        assert!(full.contains("local function assign_slice("));
        assert!(incr.len() < full.len());
        // Every piece kept is defined before the entry point runs.
        assert!(incr.ends_with("return MAIN()\n"));
    }
}
