//! serde's `rename_all` rules, so the derive knows each field's name in the stored document.

/// serde's `rename_all` rules for struct fields, exactly as serde_derive applies them
/// (`internals/case.rs`, `apply_to_field`) to the field's name without `r#`: `lowercase` and
/// `snake_case` keep the name as it is, the others change ASCII letters only, and
/// `PascalCase`/`camelCase` drop every `_` and capitalise the letter after it. A rule serde
/// does not know is serde's error to report; here it changes nothing.
pub(crate) fn apply_rename_rule(rule: &str, field: &str) -> String {
    let pascal = || {
        let mut out = String::with_capacity(field.len());
        let mut capitalize = true;
        for c in field.chars() {
            if c == '_' {
                capitalize = true;
            } else if capitalize {
                out.push(c.to_ascii_uppercase());
                capitalize = false;
            } else {
                out.push(c);
            }
        }
        out
    };
    match rule {
        "UPPERCASE" | "SCREAMING_SNAKE_CASE" => field.to_ascii_uppercase(),
        "PascalCase" => pascal(),
        "camelCase" => {
            let p = pascal();
            let mut chars = p.chars();
            match chars.next() {
                Some(first) => std::iter::once(first.to_ascii_lowercase())
                    .chain(chars)
                    .collect(),
                None => p,
            }
        }
        "kebab-case" => field.replace('_', "-"),
        "SCREAMING-KEBAB-CASE" => field.to_ascii_uppercase().replace('_', "-"),
        // lowercase, snake_case, and rules serde itself rejects.
        _ => field.to_string(),
    }
}
