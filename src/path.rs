//! JSONPath steps to object members: the one writer of a member name as a path step.
//!
//! Names reach JSONPath in two ways. An **address** is sent to the server (`JSON.SET`,
//! `JSON.GET`, a script's ARGV) and must reach exactly the member named: [`push_member`] and
//! [`push_entry`] write one, or refuse, and the caller then sends the member inside a JSON
//! value instead (`JSON.MERGE`, or a script that decodes the parent). A **message** path only
//! names a place in an error: [`push_member_text`] and [`push_entry_text`] always write one,
//! quoting an unaddressable name as a JSON string.
//!
//! What RedisJSON 2.8 reads inside `[…]` (verified on the server, reading and writing every
//! name in the tests below next to decoys): a name between `"` or `'` is taken as it is,
//! dots, brackets, `$`, `*`, emoji, newlines and other control characters included; but a
//! backslash escape is unescaped by reads and not by writes (so `["a\"b"]` reads `a"b` and
//! writes a member named `a\"b`), and a leading space is dropped. So a name with a
//! backslash, with both quote kinds, or starting with a space has no address.

/// Appends the step that addresses the member `name` of an object: `.name` for an ASCII
/// identifier, `["name"]` otherwise (`['name']` when it holds a `"`). Returns `false`,
/// appending nothing, when no step addresses exactly that member.
pub(crate) fn push_member(path: &mut String, name: &str) -> bool {
    if is_identifier(name) {
        path.push('.');
        path.push_str(name);
        return true;
    }
    push_entry(path, name)
}

/// Appends the bracketed step that addresses the member `key` of an object (a dict entry):
/// `["key"]`, or `['key']` when it holds a `"`. Returns `false`, appending nothing, when no
/// step addresses exactly that member.
pub(crate) fn push_entry(path: &mut String, key: &str) -> bool {
    let quote = match quote_for(key) {
        Some(quote) => quote,
        None => return false,
    };
    path.reserve(key.len() + 4);
    path.push('[');
    path.push(quote);
    path.push_str(key);
    path.push(quote);
    path.push(']');
    true
}

/// Appends a step that *reads* the member `key` of an object exactly, for a key
/// [`push_entry`] refuses: `["key"]` with each `\` and `"` escaped by a backslash, which
/// RedisJSON's reads unescape (a write through it would create a member named with the
/// escapes, so it is never an address to write to). Returns `false`, appending nothing, for
/// a key starting with a space, which no step reaches.
pub(crate) fn push_entry_read(path: &mut String, key: &str) -> bool {
    if key.starts_with(' ') {
        return false;
    }
    path.reserve(key.len() + 4);
    path.push_str("[\"");
    for c in key.chars() {
        if matches!(c, '\\' | '"') {
            path.push('\\');
        }
        path.push(c);
    }
    path.push_str("\"]");
    true
}

/// Appends the member `name` to a path shown in a message: `.name` for an ASCII identifier,
/// else `["name"]` with `name` written as a JSON string (readable, but not an address).
pub(crate) fn push_member_text(path: &mut String, name: &str) {
    if is_identifier(name) {
        path.push('.');
        path.push_str(name);
    } else {
        push_entry_text(path, name);
    }
}

/// Appends the dict entry `key` to a path shown in a message: `["key"]`, with `key` written
/// as a JSON string (readable, but not an address).
pub(crate) fn push_entry_text(path: &mut String, key: &str) {
    path.push('[');
    path.push_str(&serde_json::Value::String(key.to_string()).to_string());
    path.push(']');
}

/// Whether `name` can follow a `.`: an ASCII letter or `_`, then ASCII letters, digits, `_`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// The quote that makes `[<quote>name<quote>]` address exactly `name`, if one does.
fn quote_for(name: &str) -> Option<char> {
    if name.contains('\\') || name.starts_with(' ') {
        return None;
    }
    match (name.contains('"'), name.contains('\'')) {
        (false, _) => Some('"'),
        (true, false) => Some('\''),
        (true, true) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Member names a program may meet as dict keys or serde names.
    const HOSTILE: &[&str] = &[
        "plain",
        "_x1",
        "1a",
        "a-b",
        "",
        "a\"b",
        "\"",
        "\"]",
        "a'b",
        "'",
        "']",
        "a'] or 1==1 --",
        "both \" and '",
        "a\\b",
        "\\",
        "a\\\"b",
        "\\u0041",
        "a[0]",
        "a]b",
        "[\"x\"]",
        "a.b",
        "..",
        "$",
        "$.a",
        "*",
        "@",
        "a,b",
        "🎉é",
        "a\nb",
        "\n",
        "a\r\nb",
        "\tx",
        "x\t",
        "\u{1}",
        "\u{7f}",
        "\u{2028}",
        "\u{3000}x",
        " lead",
        " ",
        "trail ",
        "in side",
        "{",
        "|",
    ];

    #[test]
    fn steps_are_dotted_identifiers_else_quoted_else_none() {
        let step = |name: &str| {
            let mut out = String::new();
            push_member(&mut out, name).then_some(out)
        };
        assert_eq!(step("plain").as_deref(), Some(".plain"));
        assert_eq!(step("1a").as_deref(), Some("[\"1a\"]"));
        assert_eq!(step("a.b").as_deref(), Some("[\"a.b\"]"));
        assert_eq!(step("['inj']").as_deref(), Some("[\"['inj']\"]"));
        assert_eq!(step("q\"uote").as_deref(), Some("['q\"uote']"));
        assert_eq!(step("🎉").as_deref(), Some("[\"🎉\"]"));
        assert_eq!(step("new\nline").as_deref(), Some("[\"new\nline\"]"));
        assert_eq!(step("").as_deref(), Some("[\"\"]"));
        for none in ["both \" and '", "back\\slash", " ", " lead"] {
            assert_eq!(step(none), None, "{none:?}");
        }
        let mut entry = String::from("$");
        assert!(push_entry(&mut entry, "plain"));
        assert_eq!(entry, "$[\"plain\"]");
    }

    #[test]
    fn message_paths_quote_names_as_json_strings() {
        let mut out = String::from("$");
        push_member_text(&mut out, "a");
        push_member_text(&mut out, "b c");
        push_member_text(&mut out, "q\"\\");
        push_entry_text(&mut out, "k");
        assert_eq!(out, "$.a[\"b c\"][\"q\\\"\\\\\"][\"k\"]");
    }

    /// Every step the writer gives reads and writes exactly its member on the real server,
    /// among decoys that a wrong reading of the step would reach instead.
    #[test]
    fn every_step_addresses_exactly_its_member_on_the_server() -> redis::RedisResult<()> {
        let server = rapyer_testkit::server();
        let mut conn = redis::Client::open(server.url())?.get_connection()?;
        let key = format!("{}path-steps", rapyer_testkit::test_namespace());
        let mut refused = Vec::new();
        for &name in HOSTILE {
            for (how, push) in [
                ("member", push_member as fn(&mut String, &str) -> bool),
                ("entry", push_entry),
            ] {
                let mut path = String::from("$.o");
                if !push(&mut path, name) {
                    refused.push(name);
                    continue;
                }
                // Decoys: the names a step could be misread as.
                let mut doc = serde_json::Map::new();
                for (i, decoy) in [
                    name.trim(),
                    name.trim_start(),
                    &name.replace('\\', ""),
                    "a\"b",
                    "a\\\"b",
                    "a",
                    "b",
                    "A",
                    "\\",
                    "\"",
                    "'",
                ]
                .into_iter()
                .enumerate()
                {
                    doc.insert(decoy.to_string(), (i + 10).into());
                }
                doc.insert(name.to_string(), 1.into());
                let before = serde_json::json!({ "o": doc });
                redis::cmd("JSON.SET")
                    .arg(&key)
                    .arg("$")
                    .arg(before.to_string())
                    .query::<()>(&mut conn)?;
                let read: String = redis::cmd("JSON.GET")
                    .arg(&key)
                    .arg(&path)
                    .query(&mut conn)?;
                assert_eq!(read, "[1]", "{how} {name:?}: {path} read another member");
                redis::cmd("JSON.SET")
                    .arg(&key)
                    .arg(&path)
                    .arg("7")
                    .query::<()>(&mut conn)?;
                let after: String = redis::cmd("JSON.GET").arg(&key).arg("$").query(&mut conn)?;
                let mut expected = before.clone();
                expected["o"][name] = 7.into();
                assert_eq!(
                    serde_json::from_str::<serde_json::Value>(&after).ok(),
                    Some(serde_json::json!([expected])),
                    "{how} {name:?}: {path} wrote another member"
                );
            }
        }
        // The read step reads every name but those starting with a space, escapes included.
        for &name in HOSTILE {
            let mut path = String::from("$.o");
            if !push_entry_read(&mut path, name) {
                assert!(name.starts_with(' '), "{name:?} has no read step");
                continue;
            }
            let mut doc = serde_json::Map::new();
            for (i, decoy) in ["a\\\"b", "a\"b", "\\", "a", name.trim_start()]
                .into_iter()
                .enumerate()
            {
                doc.insert(decoy.to_string(), (i + 10).into());
            }
            doc.insert(name.to_string(), 1.into());
            redis::cmd("JSON.SET")
                .arg(&key)
                .arg("$")
                .arg(serde_json::json!({ "o": doc }).to_string())
                .query::<()>(&mut conn)?;
            let read: String = redis::cmd("JSON.GET")
                .arg(&key)
                .arg(&path)
                .query(&mut conn)?;
            assert_eq!(
                read, "[1]",
                "read step of {name:?}: {path} read another member"
            );
        }
        redis::cmd("DEL").arg(&key).query::<()>(&mut conn)?;
        // Only the names JSONPath cannot address are refused.
        refused.sort_unstable();
        refused.dedup();
        let mut unaddressable = vec![
            "both \" and '",
            "a\\b",
            "\\",
            "a\\\"b",
            "\\u0041",
            " lead",
            " ",
        ];
        unaddressable.sort_unstable();
        assert_eq!(refused, unaddressable);
        Ok(())
    }
}
