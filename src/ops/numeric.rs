//! The numbers a reference can point at, and which may be added to which.

use std::fmt::Display;

use super::refs::Referable;

/// A number a reference can point at: every integer width (exact decimal arithmetic on
/// the server) and the floats.
pub trait Numeric: Referable + Copy + Display {
    /// [`Int`] or [`Float`].
    type Kind;
    /// The JSON type (`integer` or `number`).
    #[doc(hidden)]
    const WANT_NUMBER: &'static str;
    /// The lowest and highest value as decimal text (empty for `f64`, which only needs to
    /// stay finite).
    #[doc(hidden)]
    fn range() -> (String, String);
    /// The value as the decimal text the script reads, and its negation; `None` for a float
    /// that is not finite.
    #[doc(hidden)]
    fn text(self, negate: bool) -> Option<String>;
}

/// The kind of the integer types, for [`Ops::incr_by_field`](super::Ops::incr_by_field).
#[derive(Debug)]
pub struct Int;
/// The kind of the float types, for [`Ops::incr_by_field`](super::Ops::incr_by_field).
#[derive(Debug)]
pub struct Float;

/// Which kinds of number a number of this kind may be increased by: integers by integers,
/// floats by any number.
pub trait Accepts<K> {}
impl Accepts<Int> for Int {}
impl Accepts<Int> for Float {}
impl Accepts<Float> for Float {}

macro_rules! integer_numeric {
    ($($ty:ty),*) => {
        $(
            impl Numeric for $ty {
                type Kind = Int;
                const WANT_NUMBER: &'static str = "integer";
                fn range() -> (String, String) {
                    (<$ty>::MIN.to_string(), <$ty>::MAX.to_string())
                }
                fn text(self, negate: bool) -> Option<String> {
                    let wide = self as i128;
                    Some(if negate { (-wide).to_string() } else { wide.to_string() })
                }
            }
        )*
    };
}

integer_numeric!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

macro_rules! float_numeric {
    ($($ty:ty),*) => {
        $(
            impl Numeric for $ty {
                type Kind = Float;
                const WANT_NUMBER: &'static str = "number";
                // f64: any finite result; f32: within its range, which the script checks.
                fn range() -> (String, String) {
                    if <$ty>::MAX as f64 == f64::MAX {
                        (String::new(), String::new())
                    } else {
                        (format!("{:?}", <$ty>::MIN as f64), format!("{:?}", <$ty>::MAX as f64))
                    }
                }
                fn text(self, negate: bool) -> Option<String> {
                    let x = if negate { -(self as f64) } else { self as f64 };
                    x.is_finite().then(|| format!("{x:?}"))
                }
            }
        )*
    };
}

float_numeric!(f32, f64);
