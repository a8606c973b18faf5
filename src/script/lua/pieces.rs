//! Lua cut into pieces, one per top-level `local`, each knowing the pieces it uses: a
//! script carries only what it runs. Both engines are assembled this way: a block's script
//! from the shared library and the block runtime (`lua/block.lua`), a field operation's
//! script from the shared library and `lua/field.lua`.
//!
//! The dependencies are read from the Lua itself (the names of other pieces a piece
//! mentions outside strings and comments), so they cannot drift from the code; a new helper
//! needs no declaration.

use std::collections::HashMap;

use super::names;

/// One top-level definition, without its comments (they are for readers of `lua/`).
#[derive(Debug)]
struct Piece {
    text: String,
    /// The pieces it uses, by position.
    needs: Vec<usize>,
}

/// Lua sources cut into pieces, in their order.
#[derive(Debug)]
pub(crate) struct Pieces {
    pieces: Vec<Piece>,
    /// Which piece defines each name.
    defined_by: HashMap<String, usize>,
}

impl Pieces {
    /// `sources` cut into pieces (a piece uses only those before it or inside functions).
    pub(crate) fn new(sources: &[&'static str]) -> Pieces {
        split(sources)
    }

    /// The names the pieces define.
    #[cfg(test)]
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.defined_by.keys().map(String::as_str)
    }

    /// Whether a piece defines `name`.
    pub(crate) fn defines(&self, name: &str) -> bool {
        self.defined_by.contains_key(name)
    }

    /// The text of the pieces that define `roots` and of every piece they need, in the
    /// sources' order (a name no piece defines adds nothing).
    pub(crate) fn needed<'a>(&self, roots: impl IntoIterator<Item = &'a str>) -> String {
        let mut keep = vec![false; self.pieces.len()];
        let mut todo: Vec<usize> = roots
            .into_iter()
            .filter_map(|name| self.defined_by.get(name).copied())
            .collect();
        while let Some(i) = todo.pop() {
            if !keep[i] {
                keep[i] = true;
                todo.extend(&self.pieces[i].needs);
            }
        }
        let mut out = String::new();
        for (piece, _) in self.pieces.iter().zip(&keep).filter(|(_, k)| **k) {
            out.push_str(&piece.text);
        }
        out
    }
}

/// Cuts each of `sources` before each top-level `local`, dropping comment lines and blank
/// lines.
fn split(sources: &[&'static str]) -> Pieces {
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
            // Comment lines, blank lines and indentation are for readers of `lua/`: a server
            // caches the text of every script it runs, so a script carries only code (no
            // source holds a multi-line string, whose indentation would be its text).
            let mut text = String::new();
            for line in lines {
                let code = line.trim_start();
                if !code.is_empty() && !code.starts_with("--") {
                    text.push_str(code);
                    text.push('\n');
                }
            }
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
    Pieces { pieces, defined_by }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::Pieces;
    use crate::script::lua::names;

    const SOURCE: &str = "-- the file's comment\n\n\
        local function a()\n  return 1\nend\n\
        -- b's comment\nlocal function b()\n  return a()\nend\n\
        local c, d = 1, b()\n\
        local function e()\n  return 'a' -- a\nend\n";

    #[test]
    fn a_piece_brings_what_it_names_without_comments() {
        let pieces = Pieces::new(&[SOURCE]);
        assert!(pieces.defines("c") && pieces.defines("d") && !pieces.defines("x"));
        assert_eq!(
            pieces.needed(["b"]),
            "local function a()\nreturn 1\nend\nlocal function b()\nreturn a()\nend\n"
        );
        assert_eq!(
            pieces.needed(["e"]),
            "local function e()\nreturn 'a' -- a\nend\n"
        );
        assert_eq!(pieces.needed(["x"]), "");
        assert!(pieces.needed(["d"]).starts_with("local function a()"));
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
}
