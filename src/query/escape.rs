//! How a user's value becomes query text: the one place that decides, for TAG values and
//! TEXT words, what is escaped and what is refused because RediSearch could not match it
//! exactly.
//!
//! What the server does (RediSearch 2.10, verified by the tests in `tests/queries.rs`):
//!
//! - A TAG value is stored whole, control characters and Unicode whitespace included, but
//!   cut at a NUL. Backslash-escaping reaches only ASCII punctuation and the ASCII spaces
//!   (` `, `\t`, `\n`, `\v`, `\f`, `\r`): the query parser splits a value at any other
//!   control character, even escaped. Inside a quoted tag (`@f:{"…"}`, dialect 2) every
//!   character stands for itself except `"` and `\`, which take a backslash; so every value
//!   without a NUL is written quoted.
//! - TEXT is split into words at ` `, `\t` and every ASCII punctuation character but `\` and
//!   `_`; the other control characters and `\` are dropped from the indexed word (`a\nb` is
//!   indexed as `ab`), so a query word holding one could match a document that does not hold
//!   it: refused. Unicode whitespace other than ASCII does not split words.
//! - A prefix shorter than `MINPREFIX` (2 bytes) matches nothing, silently: refused.

use crate::error::{Error, Result};

/// A TAG value as query text (inside `@field:{…}`), quoted so that every character but NUL
/// stands for itself; a value with a NUL is [`Error::InvalidQuery`], as it cannot be matched
/// exactly.
///
/// ```
/// use rapyer::query::escape_tag;
/// assert_eq!(escape_tag("bob smith").unwrap(), r#""bob smith""#);
/// assert_eq!(escape_tag("a\tb").unwrap(), "\"a\tb\"");
/// assert_eq!(escape_tag(r#"say "hi" \o/"#).unwrap(), r#""say \"hi\" \\o/""#);
/// assert_eq!(escape_tag("").unwrap(), r#""""#);
/// assert!(escape_tag("a\0b").is_err());
/// ```
pub fn escape_tag(value: &str) -> Result<String> {
    tag_value(value).map_err(refused)
}

/// One TEXT word as query text; [`Error::InvalidQuery`] says why it cannot be matched
/// exactly: it is empty or whitespace, it holds a character RediSearch splits words at (use
/// [`TextField::matches`](crate::query::TextField::matches) for several words), or one it
/// drops from indexed words (a control character or `\`).
///
/// ```
/// use rapyer::query::escape_text;
/// assert_eq!(escape_text("snake_case").unwrap(), r"snake\_case");
/// assert_eq!(escape_text("中文").unwrap(), "中文");
/// assert!(escape_text("a-b").is_err());
/// assert!(escape_text("a\nb").is_err());
/// assert!(escape_text(" ").is_err());
/// ```
pub fn escape_text(word: &str) -> Result<String> {
    text_word_checked(word).map_err(refused)
}

fn refused(message: String) -> Error {
    Error::InvalidQuery { message }
}

/// [`escape_tag`], with the refusal as a message.
pub(crate) fn tag_value(value: &str) -> Result<String, String> {
    refuse_nul(value)?;
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

/// [`escape_text`], with the refusal as a message.
pub(crate) fn text_word_checked(word: &str) -> Result<String, String> {
    check_text(word)?;
    if let Some(c) = word.chars().find(|c| splits_text(*c)) {
        return Err(format!(
            "{word:?} is not one word: RediSearch splits full text at {c:?}; \
             use `matches` to look for several words"
        ));
    }
    Ok(text_word(word))
}

/// The words of `words` as RediSearch's full-text tokenizer splits them, each as query text.
pub(crate) fn text_words(words: &str) -> Result<Vec<String>, String> {
    check_text(words)?;
    let terms: Vec<String> = words
        .split(splits_text)
        .filter(|w| !w.is_empty())
        .map(text_word)
        .collect();
    if terms.is_empty() {
        return Err(format!(
            "{words:?} holds no word: RediSearch indexes no text made only of separators"
        ));
    }
    Ok(terms)
}

/// Refuses a prefix the server would expand to nothing: shorter than `MINPREFIX` (2 bytes,
/// counted in UTF-8 by the server: `é` and `中` are long enough, `a` is not).
pub(crate) fn check_prefix(prefix: &str) -> Result<(), String> {
    refuse_nul(prefix)?;
    refuse_blank(prefix)?;
    if prefix.len() < MIN_PREFIX_BYTES {
        return Err(format!(
            "prefix {prefix:?} is shorter than RediSearch's MINPREFIX ({MIN_PREFIX_BYTES} bytes) \
             and would match nothing"
        ));
    }
    Ok(())
}

/// The server's `MINPREFIX` default: a shorter prefix is not expanded at all.
const MIN_PREFIX_BYTES: usize = 2;

/// Empty and whitespace-only input is refused: `matches("")` must never mean "everything".
pub(crate) fn refuse_blank(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!(
            "{value:?} is empty or whitespace only; a search needs at least one word"
        ));
    }
    Ok(())
}

fn refuse_nul(value: &str) -> Result<(), String> {
    if value.contains('\0') {
        return Err(format!(
            "{value:?} holds a NUL character; RediSearch indexes a value cut at its first NUL, \
             so it cannot be matched exactly"
        ));
    }
    Ok(())
}

fn check_text(value: &str) -> Result<(), String> {
    refuse_nul(value)?;
    refuse_blank(value)?;
    if let Some(c) = value.chars().find(|c| dropped_from_text(*c)) {
        return Err(format!(
            "{value:?} holds {c:?}; RediSearch drops it from indexed words, so the word could \
             match documents that do not hold it"
        ));
    }
    Ok(())
}

/// A character the full-text tokenizer splits words at: ASCII space, tab, and every ASCII
/// punctuation character but `\` (an escape, dropped) and `_` (part of a word).
fn splits_text(c: char) -> bool {
    c == ' ' || c == '\t' || (c.is_ascii_punctuation() && c != '\\' && c != '_')
}

/// A character the full-text tokenizer removes from the word that holds it.
fn dropped_from_text(c: char) -> bool {
    (c.is_ascii_control() && c != '\t') || c == '\\'
}

/// A word with no separator in it, as query text: the only ASCII punctuation left is `_`,
/// which is escaped; non-ASCII characters stand for themselves in the query syntax.
fn text_word(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    for c in word.chars() {
        if c.is_ascii_punctuation() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An attribute name (`address.city`, `second best`) as query text: a backslash before ASCII
/// punctuation and whitespace (a bare space would end the name: a syntax error).
pub(crate) fn attribute(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    for c in name.chars() {
        if c.is_ascii_punctuation() || c.is_ascii_whitespace() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_value_is_quoted_with_only_quote_and_backslash_escaped() {
        assert_eq!(tag_value("bob").as_deref(), Ok(r#""bob""#));
        assert_eq!(
            tag_value(r#"a-b"c/d@e|f{g}\"#).as_deref(),
            Ok(r#""a-b\"c/d@e|f{g}\\""#)
        );
        for c in (1u8..0x20).chain([0x7f]).map(char::from) {
            assert_eq!(tag_value(&format!("{c}x{c}")), Ok(format!("\"{c}x{c}\"")));
        }
        assert_eq!(
            tag_value("é\u{a0}中\u{3000}🎉").as_deref(),
            Ok("\"é\u{a0}中\u{3000}🎉\"")
        );
    }

    #[test]
    fn a_nul_anywhere_is_refused_with_the_reason() {
        for value in ["\0", "a\0", "\0a", "a\0b"] {
            let err = tag_value(value).expect_err(value);
            assert!(err.contains("NUL"), "{err}");
            assert!(text_word_checked(value).is_err());
            assert!(text_words(value).is_err());
            assert!(check_prefix(value).is_err());
        }
    }

    #[test]
    fn text_words_split_where_the_server_splits_and_refuse_what_it_drops() {
        assert_eq!(
            text_words("rust, dev\tand-more snake_case").as_deref(),
            Ok(&["rust", "dev", "and", "more", r"snake\_case"].map(String::from)[..])
        );
        assert_eq!(
            text_words("a\u{a0}b").as_deref(),
            Ok(&["a\u{a0}b".to_string()][..])
        );
        for blank in ["", " ", "\t", "\u{3000}", " \u{a0} "] {
            assert!(text_words(blank).is_err(), "{blank:?}");
            assert!(text_word_checked(blank).is_err(), "{blank:?}");
            assert!(check_prefix(blank).is_err(), "{blank:?}");
        }
        assert!(text_words("--").is_err());
        assert!(text_words("a\nb").is_err());
        assert!(text_words(r"a\b").is_err());
        assert!(text_words("a\u{7f}").is_err());
        assert!(text_word_checked("a b").is_err());
        assert!(text_word_checked("a\tb").is_err());
    }

    #[test]
    fn an_attribute_escapes_punctuation_and_spaces() {
        assert_eq!(attribute("address.city"), r"address\.city");
        assert_eq!(attribute("second best"), r"second\ best");
        assert_eq!(attribute("top speed!"), r"top\ speed\!");
        assert_eq!(attribute("é中"), "é中");
    }

    #[test]
    fn a_prefix_needs_two_bytes() {
        assert!(check_prefix("a").is_err());
        assert!(check_prefix("ab").is_ok());
        assert!(check_prefix("é").is_ok());
        assert!(check_prefix("中").is_ok());
    }
}
