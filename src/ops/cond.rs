//! Conditions of `Ops::when`: comparisons of references with values or references,
//! combined with `&`, `|`, `!`.

use super::refs::{Bind, Loc, Referable, ServerRef};

/// A condition's operand: a place or a JSON value.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub enum Operand {
    /// A place.
    Loc(Loc),
    /// A JSON value.
    Value(String),
    /// A set's or a queue's size or membership.
    Structure(Box<StructureQuery>),
    /// The length of the list (or circular buffer) at a place.
    Len(Box<Loc>),
}

/// A set's or a queue's size or membership, as a condition's operand.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct StructureQuery {
    /// The structure's field.
    pub(crate) loc: Loc,
    /// The query: `scard`, `sismember` or `zcard`.
    pub(crate) query: &'static str,
    /// The structure's JSONPath.
    pub(crate) path: String,
    /// The member asked about (`sismember`), or empty.
    pub(crate) member: String,
}

#[derive(Debug, Clone)]
pub(crate) enum CondNode {
    Cmp {
        op: &'static str,
        want: &'static str,
        left: Operand,
        right: Operand,
    },
    And(Box<CondNode>, Box<CondNode>),
    Or(Box<CondNode>, Box<CondNode>),
    Not(Box<CondNode>),
}

/// A condition for [`Ops::when`]: a comparison of a reference with a value or another
/// reference (`r.age().gt(17)`, `a.balance().ge(b.balance())`), combined with `&`, `|`, `!`.
///
/// [`Ops::when`]: super::Ops::when
#[derive(Debug, Clone)]
pub struct Cond {
    pub(crate) node: CondNode,
    pub(crate) error: Option<String>,
}

impl std::ops::BitAnd for Cond {
    type Output = Cond;
    fn bitand(self, rhs: Cond) -> Cond {
        Cond {
            node: CondNode::And(Box::new(self.node), Box::new(rhs.node)),
            error: self.error.or(rhs.error),
        }
    }
}

impl std::ops::BitOr for Cond {
    type Output = Cond;
    fn bitor(self, rhs: Cond) -> Cond {
        Cond {
            node: CondNode::Or(Box::new(self.node), Box::new(rhs.node)),
            error: self.error.or(rhs.error),
        }
    }
}

impl std::ops::Not for Cond {
    type Output = Cond;
    fn not(self) -> Cond {
        Cond {
            node: CondNode::Not(Box::new(self.node)),
            error: self.error,
        }
    }
}

/// A value a condition compares: one of this type, or a reference to one.
pub trait IntoOperand<T> {
    #[doc(hidden)]
    fn operand(self) -> std::result::Result<Operand, String>;
}

/// The types conditions compare for equality: numbers, strings, booleans.
pub trait Comparable: Referable {}
/// The types conditions also order: numbers (numerically) and strings (byte-wise).
pub trait Ordered: Comparable {}

fn value_operand<T: serde::Serialize + ?Sized>(value: &T) -> std::result::Result<Operand, String> {
    match serde_json::to_string(value) {
        Ok(text) if text != "null" => Ok(Operand::Value(text)),
        Ok(_) => Err("a condition cannot compare with a value that is not finite".into()),
        Err(e) => Err(e.to_string()),
    }
}

macro_rules! comparable {
    ($ordered:tt: $($ty:ty),*) => {
        $(
            impl Comparable for $ty {}
            comparable!(@ordered $ordered $ty);
            impl IntoOperand<$ty> for $ty {
                fn operand(self) -> std::result::Result<Operand, String> {
                    value_operand(&self)
                }
            }
            impl<B: Bind> IntoOperand<$ty> for ServerRef<$ty, B> {
                fn operand(self) -> std::result::Result<Operand, String> {
                    Ok(Operand::Loc(self.loc))
                }
            }
            impl<B: Bind> IntoOperand<$ty> for &ServerRef<$ty, B> {
                fn operand(self) -> std::result::Result<Operand, String> {
                    Ok(Operand::Loc(self.loc.clone()))
                }
            }
        )*
    };
    (@ordered yes $ty:ty) => { impl Ordered for $ty {} };
    (@ordered no $ty:ty) => {};
}

comparable!(yes: i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f32, f64, String);
comparable!(no: bool);

impl IntoOperand<String> for &str {
    fn operand(self) -> std::result::Result<Operand, String> {
        value_operand(self)
    }
}

impl<T: Comparable, B: Bind> ServerRef<T, B> {
    fn compare(&self, op: &'static str, other: impl IntoOperand<T>) -> Cond {
        let (right, error) = match other.operand() {
            Ok(o) => (o, None),
            Err(e) => (Operand::Value("null".into()), Some(e)),
        };
        Cond {
            node: CondNode::Cmp {
                op,
                want: T::WANT,
                left: Operand::Loc(self.loc.clone()),
                right,
            },
            error,
        }
    }

    /// The value here equals `other` (a value or a reference).
    pub fn eq(&self, other: impl IntoOperand<T>) -> Cond {
        self.compare("eq", other)
    }

    /// The value here differs from `other`.
    pub fn ne(&self, other: impl IntoOperand<T>) -> Cond {
        self.compare("ne", other)
    }
}

impl<T: Ordered, B: Bind> ServerRef<T, B> {
    /// The value here is greater than `other` (a value or a reference).
    pub fn gt(&self, other: impl IntoOperand<T>) -> Cond {
        self.compare("gt", other)
    }

    /// The value here is greater than or equal to `other`.
    pub fn ge(&self, other: impl IntoOperand<T>) -> Cond {
        self.compare("ge", other)
    }

    /// The value here is less than `other`.
    pub fn lt(&self, other: impl IntoOperand<T>) -> Cond {
        self.compare("lt", other)
    }

    /// The value here is less than or equal to `other`.
    pub fn le(&self, other: impl IntoOperand<T>) -> Cond {
        self.compare("le", other)
    }
}
