//! The library's Lua, assembled from `lua/`: the shared library (`lua/lib/*.lua`), the field
//! operations (`lua/field.lua`), the block runtime (`lua/block.lua`) and the flat block
//! runtime (`lua/flat.lua`, with its fast path `lua/flat_fast.lua`), each cut into
//! [`Pieces`] so that a script holds only the pieces it runs. Each source is an
//! `include_str!`, so a missing file does not compile.

mod pieces;

use std::collections::BTreeSet;
use std::sync::LazyLock;

pub(crate) use pieces::Pieces;

/// The shared library, in order (a piece uses only those before it): exact decimal
/// arithmetic, compact JSON scanning, Python's list indices and slices, the one shape of a
/// typed failure (decoded by [`super::failure`]), and the blocks' re-arming of expiries.
pub(crate) const LIB: [(&str, &str); 5] = [
    ("decimal", include_str!("../../lua/lib/decimal.lua")),
    ("json", include_str!("../../lua/lib/json.lua")),
    ("list", include_str!("../../lua/lib/list.lua")),
    ("failure", FAILURE),
    ("expiry", include_str!("../../lua/lib/expiry.lua")),
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

/// A priority queue's entries in its companion keys (`lua/lib/queue.lua`).
const QUEUE: &str = include_str!("../../lua/lib/queue.lua");

/// A library script that reports typed failures and writes priority queues' entries: the
/// failure helper, the queue helper, then `body`.
pub(crate) fn reporting_with_queues(body: &str) -> String {
    reporting(&format!("{QUEUE}\n{body}"))
}

/// The source of the field script's own part (`lua/field.lua`).
pub(crate) const FIELD_MAIN: &str = include_str!("../../lua/field.lua");

/// The source of the block runtime (`lua/block.lua`), cut into pieces by the block compiler.
pub(crate) const BLOCK: &str = include_str!("../../lua/block.lua");

/// The source of the flat block runtime (`lua/flat.lua`), for blocks whose operations each
/// act on a place of their own, cut into pieces by the block compiler.
pub(crate) const FLAT: &str = include_str!("../../lua/flat.lua");

/// The source of the field operations' fast paths (`lua/field_fast.lua`).
pub(crate) const FIELD_FAST: &str = include_str!("../../lua/field_fast.lua");

/// The fast paths of the field operations, in pieces (they use nothing of the library).
static FAST_PIECES: LazyLock<Pieces> = LazyLock::new(|| Pieces::new(&[FIELD_FAST]));

/// The shared library, then the field operations, in pieces.
static FIELD_PIECES: LazyLock<Pieces> = LazyLock::new(|| Pieces::new(&with_library(FIELD_MAIN)));

/// The block runtime's operations on special structures (`lua/block_structures.lua`), put
/// after the runtime.
pub(crate) const BLOCK_STRUCTURES: &str = include_str!("../../lua/block_structures.lua");

/// The shared library, then the block runtime, in pieces.
pub(crate) static BLOCK_PIECES: LazyLock<Pieces> = LazyLock::new(|| {
    let mut sources = with_library(BLOCK);
    sources.push(BLOCK_STRUCTURES);
    Pieces::new(&sources)
});

/// The source of the flat blocks' fast path (`lua/flat_fast.lua`).
pub(crate) const FLAT_FAST: &str = include_str!("../../lua/flat_fast.lua");

/// The flat blocks' fast path, one script for every flat block it does (it uses nothing of
/// the library): `lua/flat_fast.lua` without its comments, then the call.
pub(crate) fn flat_fast_script() -> String {
    let mut text = String::from("-- rapyer ServerOps flat block, fast path\n");
    text.push_str(&Pieces::new(&[FLAT_FAST]).needed(["QUICK"]));
    text.push_str("return QUICK()\n");
    text
}

/// The shared library, then the flat block runtime, in pieces.
pub(crate) static FLAT_PIECES: LazyLock<Pieces> =
    LazyLock::new(|| Pieces::new(&with_library(FLAT)));

fn with_library(source: &'static str) -> Vec<&'static str> {
    LIB.iter()
        .map(|(_, piece)| *piece)
        .chain([source])
        .collect()
}

/// The field operations, by name: each top-level `op_<name>` function of `lua/field.lua`.
pub(crate) fn field_ops() -> impl Iterator<Item = &'static str> {
    FIELD_MAIN
        .lines()
        .filter_map(|l| l.strip_prefix("local function op_"))
        .filter_map(|l| l.split('(').next())
}

/// The field operations whose scripts a server over its `maxmemory` limit refuses before
/// they run (`#!lua` with no `allow-oom` flag): every one that may make the document larger.
/// Not the reads, nor those that only remove (pop, remove, clear, trim, dict delete), which
/// run at the limit as `DEL` does. So the refusal does not depend on which RedisJSON
/// commands an operation happens to use: `JSON.NUMINCRBY` and `JSON.TOGGLE` are not flagged
/// `denyoom`, `JSON.SET` is.
pub(crate) const REFUSED_OVER_MAXMEMORY: [&str; 14] = [
    "set", "incr", "mul", "fincr", "fmul", "append", "toggle", "tadd", "tset", "lappend",
    "linsert", "lset", "dset", "bpush",
];

/// The parts of the field operation `op`'s scripts (a name from [`field_ops`]).
struct FieldParts {
    /// Whether the scripts start with `#!lua` ([`REFUSED_OVER_MAXMEMORY`]).
    refused_over_maxmemory: bool,
    /// The fast path: the pieces of `lua/field_fast.lua` that `fast_<op>` needs, and the
    /// early return of its reply; `None` when the operation has none.
    fast: Option<(String, String)>,
    /// The whole operation: the pieces it, its checks (`check_<op>` when `lua/field.lua`
    /// defines it, else `checked`) and the entry point `FIELD` (the expiry, the reply) need,
    /// then the call.
    whole: String,
}

impl FieldParts {
    fn of(op: &str) -> FieldParts {
        let run = format!("op_{op}");
        let own = format!("check_{op}");
        let check = if FIELD_PIECES.defines(&own) {
            own.as_str()
        } else {
            "checked"
        };
        let fast_name = format!("fast_{op}");
        let fast = FAST_PIECES.defines(&fast_name).then(|| {
            (
                FAST_PIECES.needed([fast_name.as_str()]),
                format!("local reply = {fast_name}()\nif reply then\nreturn reply\nend\n"),
            )
        });
        let mut whole = FIELD_PIECES.needed(["FIELD", run.as_str(), check]);
        whole.push_str(&format!("return FIELD({run}, {check})\n"));
        FieldParts {
            refused_over_maxmemory: REFUSED_OVER_MAXMEMORY.contains(&op),
            fast,
            whole,
        }
    }

    /// The first line of a script the server must refuse as a whole over its memory limit
    /// (a shebang must be a script's first line), else nothing.
    fn shebang(&self) -> &'static str {
        if self.refused_over_maxmemory {
            "#!lua\n"
        } else {
            ""
        }
    }
}

/// The script of the field operation `op` (a name from [`field_ops`]): the pieces it, its
/// checks and the entry point `FIELD` need, then the call. When `lua/field_fast.lua` has a
/// `fast_<op>`, that runs first, and the whole operation's functions are created only when
/// it declines (each function a script defines is created again on every call).
pub(crate) fn field_script(op: &str) -> String {
    let parts = FieldParts::of(op);
    let mut text = String::from(parts.shebang());
    text.push_str(&format!("-- rapyer field operation {op}\n"));
    if let Some((pieces, early_return)) = &parts.fast {
        // The fast path reads the call's keys and arguments through these (see
        // `lua/field_fast.lua`): here KEYS and ARGV themselves.
        text.push_str("local K, A, KO, AO, NK, NA = KEYS, ARGV, 0, 0, #KEYS, #ARGV\n");
        text.push_str(pieces);
        text.push_str(early_return);
    }
    text.push_str(&parts.whole);
    text
}

/// The loop that runs several calls of one field operation in one script call
/// (`lua/field_gather.lua`).
const FIELD_GATHER: &str = include_str!("../../lua/field_gather.lua");

/// The script that runs several calls of the field operation `op` in one script call (see
/// [`crate::script::gather`]): [`field_script`]'s parts, laid out so that no function is
/// created once per call that could be created once per script call, and no table is built
/// for a call its fast path does. The fast path (`FAST`, created once) reads each call's
/// keys and arguments in place, at the offsets the loop of `lua/field_gather.lua` sets;
/// `KEYS` and `ARGV` become locals, which the loop sets to tables of a call's own keys and
/// arguments only when the fast path declined it, before it runs `whole` (the whole
/// operation, whose functions are created only then). The `#!lua` line stays, so a server
/// over its memory limit refuses the whole call before anything runs.
pub(crate) fn field_gather_script(op: &str) -> String {
    let parts = FieldParts::of(op);
    let mut text = String::from(parts.shebang());
    text.push_str(&format!(
        "-- rapyer field operation {op}, several calls in one\n\
         local CALLS_KEYS, CALLS_ARGV = KEYS, ARGV\n\
         local KEYS, ARGV\n\
         local K, A, KO, AO, NK, NA = CALLS_KEYS, CALLS_ARGV, 0, 0, 0, 0\n"
    ));
    if let Some((pieces, _)) = &parts.fast {
        text.push_str(pieces);
    }
    text.push_str("local function whole()\n");
    text.push_str(&parts.whole);
    text.push_str("end\n");
    match &parts.fast {
        Some(_) => text.push_str(&format!("local FAST = fast_{op}\n")),
        None => text.push_str("local FAST = nil\n"),
    }
    text.push_str(FIELD_GATHER);
    text
}

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
    use super::{
        BLOCK, BLOCK_PIECES, FAST_PIECES, FIELD_FAST, FIELD_GATHER, FIELD_MAIN, FIELD_PIECES, FLAT,
        FLAT_FAST, FLAT_PIECES, LIB, REFUSED_OVER_MAXMEMORY, field_gather_script, field_ops,
        field_script, names, top_level_functions,
    };

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
        for (script, source) in [
            ("field.lua", FIELD_MAIN),
            ("field_fast.lua", FIELD_FAST),
            ("block.lua", BLOCK),
            ("flat.lua", FLAT),
            ("flat_fast.lua", FLAT_FAST),
        ] {
            for f in top_level_functions(source) {
                assert!(!seen.contains(&f), "{script} redefines the library's {f}");
            }
        }
    }

    #[test]
    fn no_source_holds_a_multi_line_string() {
        // Pieces drop each line's indentation, which inside a long string would be its text.
        for source in LIB
            .iter()
            .map(|(_, p)| *p)
            .chain([FIELD_MAIN, FIELD_FAST, BLOCK, FLAT, FLAT_FAST])
        {
            for (n, line) in source.lines().enumerate() {
                let code = line.split("--").next().unwrap_or_default();
                assert!(
                    !code.contains("[[") && !code.contains("[=") && !code.ends_with('\\'),
                    "line {} holds a multi-line string: {line}",
                    n + 1
                );
            }
        }
    }

    #[test]
    fn every_function_the_scripts_call_is_defined() {
        let block = format!("{}{BLOCK}", LIB.map(|(_, p)| p).concat());
        let flat = format!("{}{FLAT}", LIB.map(|(_, p)| p).concat());
        let mut scripts = vec![
            ("the block runtime", block.as_str()),
            ("the flat block runtime", flat.as_str()),
        ];
        for script in crate::script::library::all() {
            scripts.push((script.name(), script.body()));
        }
        for (script, source) in scripts {
            // Local functions and local variables (a function held in one is called too),
            // and parameters (a function passed in).
            let mut defined: Vec<&str> = source
                .split("local ")
                .skip(1)
                .flat_map(|rest| {
                    let rest = rest.strip_prefix("function ").unwrap_or(rest);
                    let head = rest.split(['(', '=', '\n']).next().unwrap_or_default();
                    head.split(',').map(str::trim)
                })
                .collect();
            defined.extend(source.split("function ").skip(1).flat_map(|rest| {
                let params = rest.split(['(', ')']).nth(1).unwrap_or_default();
                params.split(',').map(str::trim)
            }));
            for name in names(source, true) {
                assert!(
                    defined.contains(&name) || GLOBALS.contains(&name),
                    "{script} calls {name}, which nothing defines"
                );
            }
        }
    }

    #[test]
    fn no_local_or_parameter_takes_the_name_of_a_piece() {
        // A piece comes with every script that mentions its name: a local variable or a
        // parameter of that name would bring it along where it is not used.
        for (source, pieces) in [
            (FIELD_MAIN, &*FIELD_PIECES),
            (FIELD_FAST, &*FAST_PIECES),
            (BLOCK, &*BLOCK_PIECES),
            (FLAT, &*FLAT_PIECES),
        ] {
            let mut sources: Vec<&str> = LIB.iter().map(|(_, p)| *p).collect();
            sources.push(source);
            for text in sources {
                for line in text.lines().filter(|l| l.starts_with(' ')) {
                    let code = line.trim_start();
                    let mut taken: Vec<&str> = Vec::new();
                    if let Some(rest) = code.strip_prefix("local ") {
                        let rest = rest.strip_prefix("function ").unwrap_or(rest);
                        let head = rest.split(['=', '(']).next().unwrap_or_default();
                        taken.extend(head.split(',').map(str::trim));
                    }
                    for part in code.split("function").skip(1) {
                        let params = part.split(['(', ')']).nth(1).unwrap_or_default();
                        taken.extend(params.split(',').map(str::trim));
                    }
                    for name in taken {
                        assert!(
                            !pieces.names().any(|n| n == name),
                            "`{name}` in `{code}` is also a piece's name"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_field_script_holds_its_operation_and_only_the_library_it_calls() {
        let ops: Vec<&str> = field_ops().collect();
        assert!(ops.len() > 20 && ops.contains(&"incr") && ops.contains(&"dset"));
        let incr = field_script("incr");
        assert!(incr.contains("local function op_incr("));
        assert!(incr.contains("local function add(") && incr.contains("local function cmp("));
        assert!(incr.ends_with("return FIELD(op_incr, check_incr)\n"));
        assert!(!incr.contains("local function checked("));
        assert!(field_script("get").contains("return FIELD(op_get, check_get)\n"));
        assert!(field_script("set").contains("return FIELD(op_set, checked)\n"));
        // An operation with a fast path runs it first, and creates the whole operation's
        // functions only after it declined; one without has no fast path.
        assert!(incr.starts_with(
            "#!lua\n-- rapyer field operation incr\n\
             local K, A, KO, AO, NK, NA = KEYS, ARGV, 0, 0, #KEYS, #ARGV\nlocal function "
        ));
        assert!(
            incr.contains("local function fast_incr(") && incr.contains("local function renew(")
        );
        assert!(!incr.contains("fast_fincr") && !incr.contains("fast_set"));
        let early = "local reply = fast_incr()\nif reply then\nreturn reply\nend\n";
        let (fast, whole) = incr
            .split_once(early)
            .expect("the fast path's early return");
        assert!(fast.contains("local function fast_incr(") && !fast.contains("op_incr"));
        assert!(whole.contains("local function op_incr(") && !whole.contains("fast_"));
        let mul = field_script("mul");
        assert!(!mul.contains("fast_") && !mul.contains("renew"));
        assert!(mul.ends_with("return FIELD(op_mul, check_mul)\n"));
        // The writes that may grow a document are refused over the memory limit as a whole;
        // reads and removals are not flagged.
        for op in field_ops() {
            let flagged = field_script(op).starts_with("#!lua\n");
            assert_eq!(flagged, REFUSED_OVER_MAXMEMORY.contains(&op), "{op}");
        }
        for op in REFUSED_OVER_MAXMEMORY {
            assert!(field_ops().any(|o| o == op), "{op} is no field operation");
        }
        assert!(!field_script("get").starts_with("#!") && !field_script("lpop").starts_with("#!"));
        for op in FAST_PIECES.names().filter_map(|n| n.strip_prefix("fast_")) {
            assert!(field_ops().any(|o| o == op), "fast_{op} has no operation");
        }
        for absent in [
            "op_mul(",
            "umul(",
            "skip(",
            "slice(",
            "parse_time(",
            "member(",
        ] {
            assert!(!incr.contains(absent), "the incr script holds {absent}");
        }
        // The gathered script: the same parts, each function created once per script call
        // (the fast path's) or only when the fast path declines (the whole operation's,
        // inside `whole`), KEYS and ARGV as the locals the loop sets; the same first line.
        for op in field_ops() {
            let single = field_script(op);
            let gathered = field_gather_script(op);
            assert_eq!(
                gathered.starts_with("#!lua\n"),
                single.starts_with("#!lua\n"),
                "{op}"
            );
            let (head, rest) = gathered
                .split_once("local function whole()\n")
                .expect("the whole operation in a function");
            assert!(
                head.contains("local KEYS, ARGV\n") && !head.contains("op_"),
                "{op}"
            );
            let (whole, tail) = rest
                .split_once("end\nlocal FAST = ")
                .expect("FAST after whole()");
            assert!(whole.contains(&format!("local function op_{op}(")), "{op}");
            assert!(!whole.contains("fast_"), "{op}");
            assert!(tail.ends_with(FIELD_GATHER), "{op}");
            let fast = format!("local function fast_{op}(");
            assert_eq!(head.contains(&fast), single.contains(&fast), "{op}");
            let named = if single.contains(&fast) {
                format!("fast_{op}\n")
            } else {
                "nil\n".to_string()
            };
            assert!(tail.starts_with(&named), "{op}");
        }
        let append = field_script("append");
        assert!(!append.contains("local function add("));
        assert!(append.contains("local function failure("));
        // Every operation's script is smaller than the whole library.
        let whole: usize = LIB.iter().map(|(_, p)| p.len()).sum::<usize>() + FIELD_MAIN.len();
        for op in ops {
            assert!(field_script(op).len() < whole / 2, "{op}");
        }
    }
}
