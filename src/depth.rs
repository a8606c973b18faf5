//! How deep a value about to be written nests, against the deepest document the server and
//! the loader both accept.
//!
//! RedisJSON refuses to parse a text nested deeper than 127 levels of objects and arrays
//! (`recursion limit exceeded`), and serde_json refuses to load one nested deeper than 127
//! (verified on RedisJSON 2.8 and serde_json 1.0). A write of a part at a path can still
//! make the document deeper than that (the part parses, the whole no longer loads), and a
//! script that writes several documents or members one by one would keep the writes before
//! the refused one. So every encoder refuses a value whose place in the document plus its
//! own depth passes the limit, before anything is sent. A value with fewer opening brackets
//! than the room left costs one byte count (~0.4 ns a byte); one with more is scanned
//! once more (~1.5 ns a byte of structure, strings skipped at memchr speed).

use crate::error::{Error, Result};

/// The most levels of objects and arrays a document may nest, its root included.
pub(crate) const MAX_DEPTH: usize = 127;

/// Refuses `text`, the JSON bound for `key` at the JSONPath `path`, when the document
/// would nest deeper than [`MAX_DEPTH`] there: [`Error::InvalidOp`] naming key and path.
pub(crate) fn check(key: &str, path: &str, text: &str) -> Result<()> {
    let bytes = text.as_bytes();
    let at = path_depth(path);
    let room = MAX_DEPTH.saturating_sub(at);
    let opens = bytes.iter().filter(|&&b| b == b'[' || b == b'{').count();
    if opens <= room {
        return Ok(());
    }
    let depth = text_depth(text);
    if depth <= room {
        return Ok(());
    }
    Err(Error::InvalidOp {
        key: key.to_string(),
        path: path.to_string(),
        message: format!(
            "the value nests {depth} levels deep at a place {at} levels down, and a document \
             holds at most {MAX_DEPTH} levels of objects and arrays (RedisJSON parses no \
             deeper, serde_json loads no deeper); nothing was written"
        ),
    })
}

/// The most objects and arrays open at once in the JSON `text` (0 for a scalar). A string
/// is skipped with one `find` of its closing quote (a memchr), so long strings cost little.
fn text_depth(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // The closing quote is the first one not escaped by an odd run of `\`.
                let mut from = i + 1;
                loop {
                    let Some(offset) = text[from..].find('"') else {
                        return deepest;
                    };
                    let quote = from + offset;
                    let escapes = bytes[from..quote]
                        .iter()
                        .rev()
                        .take_while(|&&b| b == b'\\')
                        .count();
                    from = quote + 1;
                    if escapes % 2 == 0 {
                        break;
                    }
                }
                i = from;
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// How many steps below the root the JSONPath `path` is: `$` 0, `$.a.b` 2, `$.tags[2]` 2,
/// `$["a.b"]` 1 (quoted names may hold `.`, `[` and `]`).
fn path_depth(path: &str) -> usize {
    let bytes = path.as_bytes();
    let mut steps = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'.' => {
                steps += 1;
                i += 1;
            }
            b'[' => {
                steps += 1;
                i += 1;
                // Up to the `]` that closes this step, outside any quoted name.
                let mut quote = None;
                while i < bytes.len() {
                    let b = bytes[i];
                    match quote {
                        Some(_) if b == b'\\' => i += 1,
                        Some(q) if b == q => quote = None,
                        Some(_) => {}
                        None if b == b'"' || b == b'\'' => quote = Some(b),
                        None if b == b']' => break,
                        None => {}
                    }
                    i += 1;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_count_their_steps() {
        assert_eq!(path_depth("$"), 0);
        assert_eq!(path_depth("$.a.b"), 2);
        assert_eq!(path_depth("$.tags[2]"), 2);
        assert_eq!(path_depth(r#"$["a.b[c]"].x"#), 2);
        assert_eq!(path_depth(r#"$["q\"].[x"]['y']"#), 2);
    }

    #[test]
    fn text_depth_ignores_brackets_inside_strings() {
        assert_eq!(text_depth("1"), 0);
        assert_eq!(text_depth(r#"{"a":[1,{"b":[]}]}"#), 4);
        assert_eq!(text_depth(r#"["[[[[\"]]]", {}]"#), 2);
        assert_eq!(text_depth(r#"["a\\", ["[", ["x\\\"]"]]]"#), 3);
        assert_eq!(text_depth(r#"{"ä€😀[": [[]]}"#), 3);
    }

    #[test]
    fn the_limit_counts_the_place_and_the_value() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(check("k", "$", &nested(127)).is_ok());
        assert!(check("k", "$", &nested(128)).is_err());
        assert!(check("k", "$.a", &nested(126)).is_ok());
        assert!(check("k", "$.a", &nested(127)).is_err());
        // Many brackets side by side are not depth.
        assert!(check("k", "$.a.b.c", &"[1],".repeat(500)).is_ok());
        match check("k", "$.a", &nested(200)) {
            Err(Error::InvalidOp { key, path, .. }) => {
                assert_eq!((key, path), ("k".into(), "$.a".into()))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn serde_json_loads_exactly_max_depth_levels() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(serde_json::from_str::<serde_json::Value>(&nested(MAX_DEPTH)).is_ok());
        assert!(serde_json::from_str::<serde_json::Value>(&nested(MAX_DEPTH + 1)).is_err());
    }

    /// Random values, with strings full of brackets, quotes and backslashes: the depth read
    /// from serde_json's text is the value's own.
    #[test]
    fn text_depth_matches_the_value_for_random_documents() {
        fn depth(v: &serde_json::Value) -> usize {
            match v {
                serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
                serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
                _ => 0,
            }
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        const PIECES: [&str; 8] = ["[", "]", "{", "}", "\\", "\"", "a", "é"];
        for _ in 0..2_000 {
            fn build(next: &mut dyn FnMut(u64) -> u64, level: usize) -> serde_json::Value {
                let text = |next: &mut dyn FnMut(u64) -> u64| {
                    (0..next(6))
                        .map(|_| PIECES[next(8) as usize])
                        .collect::<String>()
                };
                match if level > 12 { 3 } else { next(5) } {
                    0 => (0..next(4)).map(|_| build(next, level + 1)).collect(),
                    1 => serde_json::Value::Object(
                        (0..next(4))
                            .map(|_| (text(next), build(next, level + 1)))
                            .collect(),
                    ),
                    2 => serde_json::Value::from(next(1000)),
                    _ => serde_json::Value::String(text(next)),
                }
            }
            let value = build(&mut next, 0);
            let text = serde_json::to_string(&value).expect("serializes");
            assert_eq!(text_depth(&text), depth(&value), "{text}");
        }
    }
}
