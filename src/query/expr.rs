//! Query expressions: typed field markers, the expression tree, and its compilation to
//! RediSearch query syntax with every value escaped (or refused, see [`super::escape`]).

use std::marker::PhantomData;
use std::ops::{BitAnd, BitOr, Not};

use super::escape::{attribute, check_prefix, tag_value, text_word_checked, text_words};
use crate::error::{Error, Result};

/// A query: a tree of conditions on indexed fields, combined with `&`, `|` and `!`.
///
/// ```
/// # use rapyer::query::{NumericField, TagField};
/// let age = NumericField::<i64>::new("age");
/// let name = TagField::new("name");
/// let q = age.ge(18) & !name.eq("bob smith");
/// assert_eq!(q.to_query().unwrap(), r#"(@age:[18 +inf] -@name:{"bob smith"})"#);
/// ```
///
/// A condition that cannot be matched exactly (a NUL in a value, an empty search, a
/// one-byte prefix) is kept in the tree as a refusal; it makes the whole query
/// [`Error::InvalidQuery`] when it runs, before anything is sent:
///
/// ```
/// # use rapyer::query::{TagField, TextField};
/// let q = TextField::new("bio").matches("") | TagField::new("name").eq("bob");
/// assert!(matches!(q.to_query(), Err(rapyer::Error::InvalidQuery { .. })));
/// ```
///
/// The tree is opaque: every condition comes from a typed field marker, which escapes its
/// values. Query text written by hand goes in only through [`Expr::raw_unescaped`].
#[derive(Debug, Clone, PartialEq)]
pub struct Expr(Node);

/// The expression tree behind [`Expr`].
#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// Every document.
    All,
    /// No document (e.g. `one_of` an empty list); never sent to the server.
    Nothing,
    /// One condition, already in query syntax.
    Leaf(String),
    /// Every condition holds.
    And(Vec<Node>),
    /// Any condition holds.
    Or(Vec<Node>),
    /// The condition does not hold.
    Not(Box<Node>),
    /// A condition that cannot be matched exactly, and why: a query holding one fails with
    /// [`Error::InvalidQuery`] carrying this message, and sends nothing.
    Refused(String),
}

impl Expr {
    /// Every document (`*`).
    // Named as the enum variant it was, so code that wrote `Expr::All` keeps compiling.
    #[allow(non_upper_case_globals)]
    pub const All: Expr = Expr(Node::All);

    /// No document (e.g. `one_of` an empty list); a query of only this is never sent to the
    /// server.
    // Named as the enum variant it was, so code that wrote `Expr::Nothing` keeps compiling.
    #[allow(non_upper_case_globals)]
    pub const Nothing: Expr = Expr(Node::Nothing);

    /// A condition written by hand in RediSearch query syntax (dialect 2), sent exactly as
    /// given: **nothing in `text` is escaped or checked**. A user value spliced into it can
    /// change what the query means (`@name:{x} | *`); build conditions from the typed field
    /// markers instead, which escape every value, and use this only for syntax they do not
    /// cover.
    ///
    /// ```
    /// # use rapyer::query::{Expr, NumericField};
    /// let q = NumericField::<i64>::new("age").ge(18) & Expr::raw_unescaped("@bio:%%rust%%");
    /// assert_eq!(q.to_query().unwrap(), "(@age:[18 +inf] @bio:%%rust%%)");
    /// ```
    pub fn raw_unescaped(text: impl Into<String>) -> Expr {
        Expr(Node::Leaf(text.into()))
    }

    /// The RediSearch query text (dialect 2), or [`Error::InvalidQuery`] when a condition
    /// was refused.
    pub fn to_query(&self) -> Result<String> {
        if let Some(message) = self.0.refusal() {
            return Err(Error::InvalidQuery {
                message: message.to_string(),
            });
        }
        let mut out = String::new();
        self.0.write(&mut out);
        Ok(out)
    }

    /// A condition already in query syntax, its values escaped by the caller.
    fn leaf_text(text: String) -> Expr {
        Expr(Node::Leaf(text))
    }

    /// A leaf, or the refusal of its value.
    fn leaf(text: std::result::Result<String, String>) -> Expr {
        Expr(text.map_or_else(Node::Refused, Node::Leaf))
    }

    /// A condition refused, and why.
    fn refused(message: String) -> Expr {
        Expr(Node::Refused(message))
    }
}

impl Node {
    /// The first refusal in the tree, if any.
    fn refusal(&self) -> Option<&str> {
        match self {
            Node::Refused(message) => Some(message),
            Node::And(parts) | Node::Or(parts) => parts.iter().find_map(Node::refusal),
            Node::Not(inner) => inner.refusal(),
            Node::All | Node::Nothing | Node::Leaf(_) => None,
        }
    }

    fn write(&self, out: &mut String) {
        match self {
            Node::All => out.push('*'),
            // Simplified away by the operators; alone, the query is not sent at all.
            Node::Nothing => out.push_str("-*"),
            Node::Leaf(text) => out.push_str(text),
            // `to_query` returns the refusal before writing anything.
            Node::Refused(_) => {}
            Node::And(parts) | Node::Or(parts) => {
                let separator = if matches!(self, Node::And(_)) {
                    " "
                } else {
                    " | "
                };
                out.push('(');
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        out.push_str(separator);
                    }
                    part.write(out);
                }
                out.push(')');
            }
            Node::Not(inner) => {
                out.push('-');
                match **inner {
                    Node::Leaf(_) | Node::And(_) | Node::Or(_) => inner.write(out),
                    _ => {
                        out.push('(');
                        inner.write(out);
                        out.push(')');
                    }
                }
            }
        }
    }
}

impl BitAnd for Expr {
    type Output = Expr;
    fn bitand(self, rhs: Expr) -> Expr {
        Expr(self.0.bitand(rhs.0))
    }
}

impl BitAnd for Node {
    type Output = Node;
    fn bitand(self, rhs: Node) -> Node {
        match (self, rhs) {
            // A refusal must surface, whatever it is combined with.
            (refused @ Node::Refused(_), _) | (_, refused @ Node::Refused(_)) => refused,
            (Node::Nothing, _) | (_, Node::Nothing) => Node::Nothing,
            (Node::All, other) | (other, Node::All) => other,
            (Node::And(mut a), Node::And(b)) => {
                a.extend(b);
                Node::And(a)
            }
            (Node::And(mut a), b) => {
                a.push(b);
                Node::And(a)
            }
            (a, b) => Node::And(vec![a, b]),
        }
    }
}

impl BitOr for Expr {
    type Output = Expr;
    fn bitor(self, rhs: Expr) -> Expr {
        Expr(self.0.bitor(rhs.0))
    }
}

impl BitOr for Node {
    type Output = Node;
    fn bitor(self, rhs: Node) -> Node {
        match (self, rhs) {
            (refused @ Node::Refused(_), _) | (_, refused @ Node::Refused(_)) => refused,
            (Node::All, _) | (_, Node::All) => Node::All,
            (Node::Nothing, other) | (other, Node::Nothing) => other,
            (Node::Or(mut a), Node::Or(b)) => {
                a.extend(b);
                Node::Or(a)
            }
            (Node::Or(mut a), b) => {
                a.push(b);
                Node::Or(a)
            }
            (a, b) => Node::Or(vec![a, b]),
        }
    }
}

impl Not for Expr {
    type Output = Expr;
    fn not(self) -> Expr {
        Expr(!self.0)
    }
}

impl Not for Node {
    type Output = Node;
    fn not(self) -> Node {
        match self {
            Node::All => Node::Nothing,
            Node::Nothing => Node::All,
            Node::Not(inner) => *inner,
            refused @ Node::Refused(_) => refused,
            other => Node::Not(Box::new(other)),
        }
    }
}

/// A number as query syntax: integers exactly, floats in their shortest exact form,
/// infinities as `+inf`/`-inf`.
fn number<N: Numeric>(value: N) -> String {
    value.query_text()
}

/// A number type a [`NumericField`] compares with.
pub trait Numeric: Copy {
    /// The number in query syntax.
    fn query_text(self) -> String;
}

macro_rules! numerics {
    (int: $($i:ty),*; float: $($f:ty),*) => {
        $(impl Numeric for $i {
            fn query_text(self) -> String {
                self.to_string()
            }
        })*
        $(impl Numeric for $f {
            fn query_text(self) -> String {
                if self == <$f>::INFINITY {
                    "+inf".into()
                } else if self == <$f>::NEG_INFINITY {
                    "-inf".into()
                } else {
                    format!("{self:?}")
                }
            }
        })*
    };
}

numerics!(int: i8, i16, i32, i64, isize, u8, u16, u32, u64, usize; float: f32, f64);

/// An indexed numeric field: `age.gt(17)`.
#[derive(Debug, Clone)]
pub struct NumericField<T> {
    name: String,
    _type: PhantomData<fn(T)>,
}

impl<T: Numeric> NumericField<T> {
    /// The field indexed as `name`.
    pub fn new(name: impl Into<String>) -> Self {
        NumericField {
            name: name.into(),
            _type: PhantomData,
        }
    }

    fn range(&self, low: String, high: String) -> Expr {
        Expr::leaf_text(format!("@{}:[{low} {high}]", attribute(&self.name)))
    }

    /// Equal to `v`.
    pub fn eq(&self, v: T) -> Expr {
        self.range(number(v), number(v))
    }
    /// Not equal to `v`.
    pub fn ne(&self, v: T) -> Expr {
        !self.eq(v)
    }
    /// Greater than `v`.
    pub fn gt(&self, v: T) -> Expr {
        self.range(format!("({}", number(v)), "+inf".into())
    }
    /// Greater than or equal to `v`.
    pub fn ge(&self, v: T) -> Expr {
        self.range(number(v), "+inf".into())
    }
    /// Less than `v`.
    pub fn lt(&self, v: T) -> Expr {
        self.range("-inf".into(), format!("({}", number(v)))
    }
    /// Less than or equal to `v`.
    pub fn le(&self, v: T) -> Expr {
        self.range("-inf".into(), number(v))
    }
    /// Between `low` and `high`, both included.
    pub fn between(&self, low: T, high: T) -> Expr {
        self.range(number(low), number(high))
    }
    /// Equal to any of `values` (nothing matches when empty).
    pub fn one_of(&self, values: impl IntoIterator<Item = T>) -> Expr {
        any(values.into_iter().map(|v| self.eq(v)).collect())
    }
}

/// `Or` of `parts`; an empty list matches nothing.
fn any(parts: Vec<Expr>) -> Expr {
    parts
        .into_iter()
        .fold(Expr::Nothing, |acc, part| acc | part)
}

/// An indexed TAG field (exact, case-sensitive unless indexed `case_insensitive`):
/// `name.eq("bob")`.
#[derive(Debug, Clone)]
pub struct TagField {
    name: String,
}

impl TagField {
    /// The field indexed as `name`.
    pub fn new(name: impl Into<String>) -> Self {
        TagField { name: name.into() }
    }

    fn tags<'v>(&self, values: impl IntoIterator<Item = &'v str>) -> Expr {
        // Quoted, so the empty tag (indexed with INDEXEMPTY) is `""` like any other value.
        let values: std::result::Result<Vec<String>, String> =
            values.into_iter().map(tag_value).collect();
        match values {
            Err(message) => Expr::refused(message),
            Ok(values) if values.is_empty() => Expr::Nothing,
            Ok(values) => Expr::leaf_text(format!(
                "@{}:{{{}}}",
                attribute(&self.name),
                values.join(" | ")
            )),
        }
    }

    /// Exactly `value`.
    pub fn eq(&self, value: &str) -> Expr {
        self.tags([value])
    }
    /// Anything but `value`.
    pub fn ne(&self, value: &str) -> Expr {
        !self.eq(value)
    }
    /// Exactly one of `values` (nothing matches when empty).
    pub fn one_of<'v>(&self, values: impl IntoIterator<Item = &'v str>) -> Expr {
        self.tags(values)
    }
    /// Starting with `prefix` (at least 2 bytes, not only whitespace; a shorter prefix
    /// would silently match nothing, so it is refused).
    ///
    /// RediSearch expands a prefix to at most `MAXEXPANSIONS` (200) distinct values.
    pub fn starts_with(&self, prefix: &str) -> Expr {
        Expr::leaf(check_prefix(prefix).and_then(|()| {
            Ok(format!(
                "@{}:{{{}*}}",
                attribute(&self.name),
                tag_value(prefix)?
            ))
        }))
    }
}

/// An indexed `bool` field: `active.eq(true)`.
#[derive(Debug, Clone)]
pub struct BoolField {
    name: String,
}

impl BoolField {
    /// The field indexed as `name`.
    pub fn new(name: impl Into<String>) -> Self {
        BoolField { name: name.into() }
    }

    /// Equal to `value`.
    pub fn eq(&self, value: bool) -> Expr {
        Expr::leaf_text(format!("@{}:{{{value}}}", attribute(&self.name)))
    }
}

/// An indexed list of tags (`Vec<String>`): `tags.contains("rust")`.
#[derive(Debug, Clone)]
pub struct TagArrayField {
    name: String,
}

impl TagArrayField {
    /// The field indexed as `name`.
    pub fn new(name: impl Into<String>) -> Self {
        TagArrayField { name: name.into() }
    }

    /// The list holds `value`.
    pub fn contains(&self, value: &str) -> Expr {
        TagField::new(self.name.clone()).eq(value)
    }
    /// The list holds any of `values`.
    pub fn any_of<'v>(&self, values: impl IntoIterator<Item = &'v str>) -> Expr {
        TagField::new(self.name.clone()).one_of(values)
    }
}

/// An indexed full-text field (`index(text)`): `bio.contains("rust")`.
#[derive(Debug, Clone)]
pub struct TextField {
    name: String,
}

impl TextField {
    /// The field indexed as `name`.
    pub fn new(name: impl Into<String>) -> Self {
        TextField { name: name.into() }
    }

    /// Every word of `words` appears (stemmed, as full-text search does). `words` is split
    /// where RediSearch splits indexed text (space, tab, ASCII punctuation but `_`); input
    /// with no word in it is refused, never "everything".
    pub fn matches(&self, words: &str) -> Expr {
        Expr::leaf(
            text_words(words)
                .map(|terms| format!("@{}:({})", attribute(&self.name), terms.join(" "))),
        )
    }
    /// The word `word` appears (one word: a separator in it is refused).
    pub fn contains(&self, word: &str) -> Expr {
        Expr::leaf(
            text_word_checked(word).map(|term| format!("@{}:({term})", attribute(&self.name))),
        )
    }
    /// A word starting with `prefix` appears (one word of at least 2 bytes).
    ///
    /// RediSearch expands a prefix to at most `MAXEXPANSIONS` (200) distinct words.
    pub fn prefix(&self, prefix: &str) -> Expr {
        Expr::leaf(check_prefix(prefix).and_then(|()| {
            let term = text_word_checked(prefix)?;
            Ok(format!("@{}:({term}*)", attribute(&self.name)))
        }))
    }
}

/// An indexed date-time (compared by instant, at microsecond precision):
/// `starts.after(Utc::now())`. Only with the `chrono` feature.
#[cfg(feature = "chrono")]
#[derive(Debug, Clone)]
pub struct DateField {
    name: String,
}

#[cfg(feature = "chrono")]
impl DateField {
    /// The field indexed as `name`.
    pub fn new(name: impl Into<String>) -> Self {
        DateField { name: name.into() }
    }

    fn range(&self, low: String, high: String) -> Expr {
        Expr::leaf_text(format!("@{}:[{low} {high}]", attribute(&self.name)))
    }

    /// Strictly before `t`.
    pub fn before<Tz: chrono::TimeZone>(&self, t: chrono::DateTime<Tz>) -> Expr {
        let micros = crate::codec::instant_micros(&t);
        self.range("-inf".into(), format!("({micros}"))
    }
    /// Strictly after `t`.
    pub fn after<Tz: chrono::TimeZone>(&self, t: chrono::DateTime<Tz>) -> Expr {
        let micros = crate::codec::instant_micros(&t);
        self.range(format!("({micros}"), "+inf".into())
    }
    /// Between `from` and `to`, both included.
    pub fn between<Tz: chrono::TimeZone, Tz2: chrono::TimeZone>(
        &self,
        from: chrono::DateTime<Tz>,
        to: chrono::DateTime<Tz2>,
    ) -> Expr {
        let (from, to) = (
            crate::codec::instant_micros(&from),
            crate::codec::instant_micros(&to),
        );
        self.range(from.to_string(), to.to_string())
    }
}

/// A typed field marker, by its index attribute name (what [`sort_by`](crate::query::Find::sort_by) takes).
pub trait FieldName {
    /// The index attribute name (`address.city`).
    fn field_name(&self) -> &str;
}

macro_rules! field_names {
    ($($ty:ty),*) => {
        $(impl FieldName for $ty {
            fn field_name(&self) -> &str {
                &self.name
            }
        })*
    };
}

field_names!(TagField, BoolField, TagArrayField, TextField);
#[cfg(feature = "chrono")]
field_names!(DateField);

impl<T> FieldName for NumericField<T> {
    fn field_name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(expr: Expr) -> String {
        expr.to_query().expect("a query that is not refused")
    }

    fn refusal(expr: Expr) -> String {
        match expr.to_query() {
            Err(Error::InvalidQuery { message }) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn expressions_compile_to_query_text() {
        let age = NumericField::<i64>::new("age");
        let score = NumericField::<f64>::new("score");
        let city = TagField::new("address.city");
        let tags = TagArrayField::new("tags");
        assert_eq!(text(age.gt(17)), "@age:[(17 +inf]");
        assert_eq!(text(age.lt(-3)), "@age:[-inf (-3]");
        assert_eq!(text(score.le(0.1)), "@score:[-inf 0.1]");
        assert_eq!(text(score.ge(f64::INFINITY)), "@score:[+inf +inf]");
        assert_eq!(text(city.eq("New York")), r#"@address\.city:{"New York"}"#);
        assert_eq!(
            text(age.between(1, 2) | tags.any_of(["a", "b c"])),
            r#"(@age:[1 2] | @tags:{"a" | "b c"})"#
        );
        assert_eq!(
            text(!(age.eq(1) & city.ne("x"))),
            r#"-(@age:[1 1] -@address\.city:{"x"})"#
        );
        assert_eq!(age.one_of([]), Expr::Nothing);
        assert_eq!(age.one_of([]) | age.eq(1), age.eq(1));
        assert_eq!(!age.one_of([]), Expr::All);
        assert_eq!(
            text(TagField::new("n").starts_with("ab-")),
            r#"@n:{"ab-"*}"#
        );
        assert_eq!(
            text(TextField::new("bio").matches("rust  dev")),
            "@bio:(rust dev)"
        );
    }

    #[test]
    fn control_characters_and_quotes_are_written_inside_a_quoted_tag() {
        let name = TagField::new("name");
        assert_eq!(text(name.eq("a\tb")), "@name:{\"a\tb\"}");
        assert_eq!(text(name.eq("\u{1}")), "@name:{\"\u{1}\"}");
        assert_eq!(text(name.eq(r#"say "\""#)), r#"@name:{"say \"\\\""}"#);
        assert_eq!(text(name.eq("")), r#"@name:{""}"#);
        assert_eq!(
            text(name.one_of(["a\nb", "\u{3000}"])),
            "@name:{\"a\nb\" | \"\u{3000}\"}"
        );
    }

    #[test]
    fn text_words_are_split_like_the_server_splits_them() {
        let bio = TextField::new("bio");
        assert_eq!(
            text(bio.matches("Rust-lang, tokio\tsnake_case")),
            r"@bio:(Rust lang tokio snake\_case)"
        );
        assert_eq!(text(bio.contains("the")), "@bio:(the)");
        assert_eq!(text(bio.prefix("中")), "@bio:(中*)");
    }

    #[test]
    fn a_refusal_wins_over_every_combination_and_says_why() {
        let name = TagField::new("name");
        let bio = TextField::new("bio");
        let age = NumericField::<i64>::new("age");
        assert!(refusal(name.eq("a\0b")).contains("NUL"));
        assert!(refusal(name.one_of(["ok", "a\0"])).contains("NUL"));
        assert!(refusal(bio.matches("")).contains("empty"));
        assert!(refusal(bio.matches(" \t ")).contains("empty"));
        assert!(refusal(bio.matches("--")).contains("no word"));
        assert!(refusal(bio.contains("")).contains("empty"));
        assert!(refusal(bio.contains("two words")).contains("one word"));
        assert!(refusal(bio.contains("a\nb")).contains("drops"));
        assert!(refusal(bio.prefix("")).contains("empty"));
        assert!(refusal(bio.prefix("a")).contains("MINPREFIX"));
        assert!(refusal(name.starts_with("a")).contains("MINPREFIX"));
        assert!(refusal(name.starts_with("  ")).contains("empty"));
        let bad = || bio.matches("");
        for combined in [
            bad() | Expr::All,
            Expr::All | bad(),
            bad() & Expr::Nothing,
            Expr::Nothing & bad(),
            !bad(),
            age.one_of([]) | !(age.eq(1) & bad()),
            Expr(Node::And(vec![age.eq(1).0, Node::Not(Box::new(bad().0))])),
        ] {
            assert!(refusal(combined).contains("empty"));
        }
    }
}
