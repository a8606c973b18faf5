//! Query expressions: typed field markers, the expression tree, and its compilation to
//! RediSearch query syntax with every value escaped.

use std::marker::PhantomData;
use std::ops::{BitAnd, BitOr, Not};

/// A query: a tree of conditions on indexed fields, combined with `&`, `|` and `!`.
///
/// ```
/// # use rapyer::query::{NumericField, TagField};
/// let age = NumericField::<i64>::new("age");
/// let name = TagField::new("name");
/// let q = age.ge(18) & !name.eq("bob smith");
/// assert_eq!(q.to_query(), r"(@age:[18 +inf] -@name:{bob\ smith})");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Every document.
    All,
    /// No document (e.g. `one_of` an empty list); never sent to the server.
    Nothing,
    /// One condition, already in query syntax.
    Leaf(String),
    /// Every condition holds.
    And(Vec<Expr>),
    /// Any condition holds.
    Or(Vec<Expr>),
    /// The condition does not hold.
    Not(Box<Expr>),
}

impl Expr {
    /// The RediSearch query text (dialect 2).
    pub fn to_query(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Expr::All => out.push('*'),
            // Simplified away by the operators; alone, the query is not sent at all.
            Expr::Nothing => out.push_str("-*"),
            Expr::Leaf(text) => out.push_str(text),
            Expr::And(parts) | Expr::Or(parts) => {
                let separator = if matches!(self, Expr::And(_)) {
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
            Expr::Not(inner) => {
                out.push('-');
                match **inner {
                    Expr::Leaf(_) | Expr::And(_) | Expr::Or(_) => inner.write(out),
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
        match (self, rhs) {
            (Expr::Nothing, _) | (_, Expr::Nothing) => Expr::Nothing,
            (Expr::All, other) | (other, Expr::All) => other,
            (Expr::And(mut a), Expr::And(b)) => {
                a.extend(b);
                Expr::And(a)
            }
            (Expr::And(mut a), b) => {
                a.push(b);
                Expr::And(a)
            }
            (a, b) => Expr::And(vec![a, b]),
        }
    }
}

impl BitOr for Expr {
    type Output = Expr;
    fn bitor(self, rhs: Expr) -> Expr {
        match (self, rhs) {
            (Expr::All, _) | (_, Expr::All) => Expr::All,
            (Expr::Nothing, other) | (other, Expr::Nothing) => other,
            (Expr::Or(mut a), Expr::Or(b)) => {
                a.extend(b);
                Expr::Or(a)
            }
            (Expr::Or(mut a), b) => {
                a.push(b);
                Expr::Or(a)
            }
            (a, b) => Expr::Or(vec![a, b]),
        }
    }
}

impl Not for Expr {
    type Output = Expr;
    fn not(self) -> Expr {
        match self {
            Expr::All => Expr::Nothing,
            Expr::Nothing => Expr::All,
            Expr::Not(inner) => *inner,
            other => Expr::Not(Box::new(other)),
        }
    }
}

/// Escapes a TAG value: a backslash before every ASCII punctuation character and space,
/// and nothing else (verified against RediSearch: this matches hostile values exactly).
pub fn escape_tag(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if c.is_ascii_punctuation() || c == ' ' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escapes a TEXT term the same way: punctuation and spaces lose their query meaning.
pub fn escape_text(term: &str) -> String {
    escape_tag(term)
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

/// The name of an indexed field as the query writes it (`address.city` → `address\.city`).
fn attribute(name: &str) -> String {
    escape_tag(name)
}

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
        Expr::Leaf(format!("@{}:[{low} {high}]", attribute(&self.name)))
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
        let values: Vec<String> = values
            .into_iter()
            .map(|v| {
                if v.is_empty() {
                    // The empty tag (indexed with INDEXEMPTY) is written as a quoted nothing.
                    "\"\"".to_string()
                } else {
                    escape_tag(v)
                }
            })
            .collect();
        if values.is_empty() {
            return Expr::Nothing;
        }
        Expr::Leaf(format!(
            "@{}:{{{}}}",
            attribute(&self.name),
            values.join(" | ")
        ))
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
    /// Starting with `prefix`.
    pub fn starts_with(&self, prefix: &str) -> Expr {
        Expr::Leaf(format!(
            "@{}:{{{}*}}",
            attribute(&self.name),
            escape_tag(prefix)
        ))
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
        Expr::Leaf(format!("@{}:{{{value}}}", attribute(&self.name)))
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

    /// Every word of `words` appears (stemmed, as full-text search does).
    pub fn matches(&self, words: &str) -> Expr {
        let terms: Vec<String> = words.split_whitespace().map(escape_text).collect();
        if terms.is_empty() {
            return Expr::All;
        }
        Expr::Leaf(format!("@{}:({})", attribute(&self.name), terms.join(" ")))
    }
    /// The word `word` appears.
    pub fn contains(&self, word: &str) -> Expr {
        Expr::Leaf(format!(
            "@{}:({})",
            attribute(&self.name),
            escape_text(word)
        ))
    }
    /// A word starting with `prefix` appears.
    pub fn prefix(&self, prefix: &str) -> Expr {
        Expr::Leaf(format!(
            "@{}:({}*)",
            attribute(&self.name),
            escape_text(prefix)
        ))
    }
}

/// An indexed date-time (compared by instant, at microsecond precision):
/// `starts.after(Utc::now())`.
#[derive(Debug, Clone)]
pub struct DateField {
    name: String,
}

impl DateField {
    /// The field indexed as `name`.
    pub fn new(name: impl Into<String>) -> Self {
        DateField { name: name.into() }
    }

    fn range(&self, low: String, high: String) -> Expr {
        Expr::Leaf(format!("@{}:[{low} {high}]", attribute(&self.name)))
    }

    /// Strictly before `t`.
    pub fn before<Tz: chrono::TimeZone>(&self, t: chrono::DateTime<Tz>) -> Expr {
        let micros = super::schema::instant_micros(&t);
        self.range("-inf".into(), format!("({micros}"))
    }
    /// Strictly after `t`.
    pub fn after<Tz: chrono::TimeZone>(&self, t: chrono::DateTime<Tz>) -> Expr {
        let micros = super::schema::instant_micros(&t);
        self.range(format!("({micros}"), "+inf".into())
    }
    /// Between `from` and `to`, both included.
    pub fn between<Tz: chrono::TimeZone, Tz2: chrono::TimeZone>(
        &self,
        from: chrono::DateTime<Tz>,
        to: chrono::DateTime<Tz2>,
    ) -> Expr {
        let (from, to) = (
            super::schema::instant_micros(&from),
            super::schema::instant_micros(&to),
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

field_names!(TagField, BoolField, TagArrayField, TextField, DateField);

impl<T> FieldName for NumericField<T> {
    fn field_name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_escaping_touches_punctuation_and_spaces_only() {
        assert_eq!(escape_tag("bob smith"), r"bob\ smith");
        assert_eq!(escape_tag(r#"a-b"c/d@e|f{g}"#), r#"a\-b\"c\/d\@e\|f\{g\}"#);
        assert_eq!(escape_tag("émoji🎉中"), "émoji🎉中");
        assert_eq!(escape_tag(r"\"), r"\\");
    }

    #[test]
    fn expressions_compile_to_query_text() {
        let age = NumericField::<i64>::new("age");
        let score = NumericField::<f64>::new("score");
        let city = TagField::new("address.city");
        let tags = TagArrayField::new("tags");
        assert_eq!(age.gt(17).to_query(), "@age:[(17 +inf]");
        assert_eq!(age.lt(-3).to_query(), "@age:[-inf (-3]");
        assert_eq!(score.le(0.1).to_query(), "@score:[-inf 0.1]");
        assert_eq!(score.ge(f64::INFINITY).to_query(), "@score:[+inf +inf]");
        assert_eq!(
            city.eq("New York").to_query(),
            r"@address\.city:{New\ York}"
        );
        assert_eq!(
            (age.between(1, 2) | tags.any_of(["a", "b c"])).to_query(),
            r"(@age:[1 2] | @tags:{a | b\ c})"
        );
        assert_eq!(
            (!(age.eq(1) & city.ne("x"))).to_query(),
            r"-(@age:[1 1] -@address\.city:{x})"
        );
        assert_eq!(age.one_of([]), Expr::Nothing);
        assert_eq!(age.one_of([]) | age.eq(1), age.eq(1));
        assert_eq!(!age.one_of([]), Expr::All);
        assert_eq!(
            TagField::new("n").starts_with("ab-").to_query(),
            r"@n:{ab\-*}"
        );
        assert_eq!(
            TextField::new("bio").matches("rust  dev").to_query(),
            "@bio:(rust dev)"
        );
    }
}
