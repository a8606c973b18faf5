//! The library's Lua, assembled at build time from `lua/`: the shared library
//! (`lua/lib/*.lua`), which the field script and the block runtime both start with, and the
//! sources of those two. Each piece is an `include_str!`, so a missing file does not compile.

use std::collections::BTreeSet;
use std::sync::LazyLock;

/// The shared library, in order (a piece uses only those before it): exact decimal
/// arithmetic, compact JSON scanning, Python's list indices and slices, and the one shape of
/// a typed failure (decoded by [`super::failure`]).
pub(crate) const LIB: [(&str, &str); 4] = [
    ("decimal", include_str!("../../lua/lib/decimal.lua")),
    ("json", include_str!("../../lua/lib/json.lua")),
    ("list", include_str!("../../lua/lib/list.lua")),
    ("failure", FAILURE),
];

/// The library's typed-failure helper (`lua/lib/failure.lua`), which every library script
/// that reports a failure starts with.
const FAILURE: &str = include_str!("../../lua/lib/failure.lua");

/// A library script that reports typed failures: the failure helper, then `body`.
pub(crate) fn reporting(body: &str) -> String {
    let mut text = String::with_capacity(FAILURE.len() + 1 + body.len());
    text.push_str(FAILURE);
    text.push('\n');
    text.push_str(body);
    text
}

/// The source of the field script's own part (`lua/field.lua`).
pub(crate) const FIELD_MAIN: &str = include_str!("../../lua/field.lua");

/// The source of the block runtime (`lua/block.lua`), cut into pieces by the block compiler.
pub(crate) const BLOCK: &str = include_str!("../../lua/block.lua");

/// The whole field script: the shared library, then `lua/field.lua`.
pub(crate) static FIELD: LazyLock<String> = LazyLock::new(|| {
    let mut text = String::new();
    for (_, piece) in LIB {
        text.push_str(piece);
        text.push('\n');
    }
    text.push_str(FIELD_MAIN);
    text
});

/// The names of the `local` functions a Lua `source` defines at its top level.
#[cfg(test)]
pub(crate) fn top_level_functions(source: &str) -> Vec<&str> {
    source
        .lines()
        .filter_map(|l| l.strip_prefix("local function "))
        .filter_map(|l| l.split('(').next())
        .collect()
}

/// The identifiers of Lua `source` outside comments and string literals, except field
/// names (after `.` or `:`); with `calls_only`, only those called (`name(`).
pub(crate) fn names(source: &str, calls_only: bool) -> BTreeSet<&str> {
    let bytes = source.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'-' && bytes.get(i + 1) == Some(&b'-') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if b == b'\'' || b == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if b.is_ascii_alphabetic() || b == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let field = start > 0 && matches!(bytes[start - 1], b'.' | b':');
            if !field && (!calls_only || bytes.get(i) == Some(&b'(')) {
                out.insert(&source[start..i]);
            }
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{BLOCK, FIELD, FIELD_MAIN, LIB, names, top_level_functions};

    /// The globals a script may call, and the keywords a call scan also sees.
    const GLOBALS: [&str; 16] = [
        "tonumber", "tostring", "type", "pcall", "error", "ipairs", "pairs", "unpack", "function",
        "if", "elseif", "and", "or", "not", "return", "until",
    ];

    #[test]
    fn the_library_is_defined_once_and_in_order() {
        let mut seen: Vec<&str> = Vec::new();
        for (name, piece) in LIB {
            for f in top_level_functions(piece) {
                assert!(!seen.contains(&f), "{f} of lib/{name}.lua is defined twice");
                seen.push(f);
            }
        }
        for f in [
            "add",
            "mul",
            "cmp",
            "skip",
            "index",
            "insert_at",
            "slice",
            "failure",
        ] {
            assert!(seen.contains(&f), "the library has no {f}");
        }
        // Neither script redefines a library function (it would shadow the shared one).
        for (script, source) in [("field.lua", FIELD_MAIN), ("block.lua", BLOCK)] {
            for f in top_level_functions(source) {
                assert!(!seen.contains(&f), "{script} redefines the library's {f}");
            }
        }
    }

    #[test]
    fn every_function_the_scripts_call_is_defined() {
        let block = format!("{}{BLOCK}", LIB.map(|(_, p)| p).concat());
        let mut scripts = vec![("the block runtime", block.as_str())];
        for script in crate::script::library::all() {
            scripts.push((script.name(), script.body()));
        }
        for (script, source) in scripts {
            // Local functions and local variables (a function held in one is called too).
            let defined: Vec<&str> = source
                .split("local ")
                .skip(1)
                .flat_map(|rest| {
                    let rest = rest.strip_prefix("function ").unwrap_or(rest);
                    let head = rest.split(['(', '=', '\n']).next().unwrap_or_default();
                    head.split(',').map(str::trim)
                })
                .collect();
            for name in names(source, true) {
                assert!(
                    defined.contains(&name) || GLOBALS.contains(&name),
                    "{script} calls {name}, which nothing defines"
                );
            }
        }
    }

    #[test]
    fn the_field_script_starts_with_the_library() {
        let mut at = 0;
        for (name, piece) in LIB {
            let found = FIELD[at..].find(piece);
            assert!(found.is_some(), "lib/{name}.lua is missing or out of order");
            at += found.unwrap_or_default() + piece.len();
        }
        assert!(FIELD.ends_with(FIELD_MAIN));
    }
}
