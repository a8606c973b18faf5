//! Handles on numeric fields: exact integer arithmetic over the field type's whole range,
//! and IEEE floats that never become infinite or leave their type.

use std::borrow::Cow;

use super::{At, FieldOp, FieldType, Want, json};
use crate::db::Db;
use crate::error::{Error, Result};

/// An integer type a [`RedisInt`] can hold: every width, signed and unsigned.
///
/// Arithmetic is done on decimal text inside the field script, so it is exact over the
/// type's whole range; a result outside it is [`Error::Overflow`](crate::Error::Overflow)
/// and changes nothing.
pub trait Integer: FieldType + Copy + std::fmt::Display {
    /// The type's lowest value.
    const LOWEST: i128;
    /// The type's highest value.
    const HIGHEST: i128;
    /// The value widened without loss.
    fn to_i128(self) -> i128;
}

/// A float type a [`RedisFloat`] can hold.
///
/// A result that is not finite, or beyond the type's range (`f32::MAX` for an `f32`), is
/// [`Error::Overflow`](crate::Error::Overflow) and changes nothing.
pub trait Float: FieldType + Copy + std::fmt::Display {
    /// The type's largest finite value, widened to `f64`.
    const HIGHEST: f64;
}

macro_rules! integers {
    ($($ty:ty),*) => {
        $(
            impl Integer for $ty {
                const LOWEST: i128 = <$ty>::MIN as i128;
                const HIGHEST: i128 = <$ty>::MAX as i128;
                fn to_i128(self) -> i128 {
                    self as i128
                }
            }

            impl FieldType for $ty {
                type Handle<'a> = RedisInt<'a, $ty>;
                fn handle(value: &mut Self, at: At) -> RedisInt<'_, $ty> {
                    RedisInt { value, at }
                }
            }
        )*
    };
}

integers!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

macro_rules! floats {
    ($($ty:ty),*) => {
        $(
            impl Float for $ty {
                const HIGHEST: f64 = <$ty>::MAX as f64;
            }

            impl FieldType for $ty {
                type Handle<'a> = RedisFloat<'a, $ty>;
                fn handle(value: &mut Self, at: At) -> RedisFloat<'_, $ty> {
                    RedisFloat { value, at }
                }
            }
        )*
    };
}

floats!(f32, f64);

/// The decimal text of an integer type's bound (`Integer::LOWEST`, `Integer::HIGHEST`): the
/// bounds of Rust's integer types are written out here, so a call formats none of them.
fn bound_text(bound: i128) -> Cow<'static, str> {
    const BOUNDS: [(i128, &str); 9] = [
        (0, "0"),
        (i8::MIN as i128, "-128"),
        (i8::MAX as i128, "127"),
        (i16::MIN as i128, "-32768"),
        (i16::MAX as i128, "32767"),
        (i32::MIN as i128, "-2147483648"),
        (i32::MAX as i128, "2147483647"),
        (i64::MIN as i128, "-9223372036854775808"),
        (i64::MAX as i128, "9223372036854775807"),
    ];
    const UNSIGNED: [(i128, &str); 4] = [
        (u8::MAX as i128, "255"),
        (u16::MAX as i128, "65535"),
        (u32::MAX as i128, "4294967295"),
        (u64::MAX as i128, "18446744073709551615"),
    ];
    match BOUNDS.iter().chain(&UNSIGNED).find(|(b, _)| *b == bound) {
        Some((_, text)) => Cow::Borrowed(text),
        None => Cow::Owned(bound.to_string()),
    }
}

/// Names the Rust number type `T` in an [`Error::Overflow`](crate::Error::Overflow).
fn overflow_of<T>(e: Error) -> Error {
    match e {
        Error::Overflow { key, path, .. } => Error::Overflow {
            key,
            path,
            kind: std::any::type_name::<T>(),
        },
        other => other,
    }
}

/// A handle on an integer field: `user.age().incr(&db, 1)`.
#[derive(Debug)]
pub struct RedisInt<'a, T> {
    value: &'a mut T,
    at: At,
}

impl<T: Integer> RedisInt<'_, T> {
    /// Adds `by` on the server; returns the new value, also stored in the local field.
    pub async fn incr(&mut self, db: &Db, by: T) -> Result<T> {
        self.arith(db, FieldOp::Incr, by.to_i128()).await
    }

    /// Subtracts `by` on the server; returns the new value, also stored in the local field.
    pub async fn decr(&mut self, db: &Db, by: T) -> Result<T> {
        self.arith(db, FieldOp::Incr, -by.to_i128()).await
    }

    /// Multiplies by `by` on the server; returns the new value, also stored in the local field.
    pub async fn mul(&mut self, db: &Db, by: T) -> Result<T> {
        self.arith(db, FieldOp::Mul, by.to_i128()).await
    }

    async fn arith(&mut self, db: &Db, op: FieldOp, operand: i128) -> Result<T> {
        let operand = operand.to_string();
        let (lowest, highest) = (bound_text(T::LOWEST), bound_text(T::HIGHEST));
        let operands = [operand.as_str(), &lowest, &highest];
        let new: T = self
            .at
            .run(db, op, Want::INTEGER, &operands)
            .await
            .map_err(overflow_of::<T>)?;
        *self.value = new;
        Ok(new)
    }

    /// Replaces the value on the server.
    pub async fn set(&mut self, db: &Db, value: T) -> Result<()> {
        let text = json(db, &self.at, &value)?;
        *self.value = self
            .at
            .run(db, FieldOp::Set, Want::INTEGER, &[&text])
            .await?;
        Ok(())
    }

    /// Reads the value from the server into the local field and returns it.
    pub async fn load(&mut self, db: &Db) -> Result<T> {
        let value: T = self.at.run(db, FieldOp::Get, Want::INTEGER, &[]).await?;
        *self.value = value;
        Ok(value)
    }

    /// Where the field lives.
    pub fn at(&self) -> &At {
        &self.at
    }
}

/// A handle on a float field: `user.score().incr(&db, 0.5)`.
#[derive(Debug)]
pub struct RedisFloat<'a, T> {
    value: &'a mut T,
    at: At,
}

impl<T: Float> RedisFloat<'_, T> {
    /// Adds `by` on the server (IEEE arithmetic); returns the new value, also stored locally.
    pub async fn incr(&mut self, db: &Db, by: T) -> Result<T> {
        let operand = json(db, &self.at, &by)?;
        self.arith(db, FieldOp::FloatIncr, &operand).await
    }

    /// Subtracts `by` on the server; returns the new value, also stored locally.
    pub async fn decr(&mut self, db: &Db, by: T) -> Result<T> {
        let operand = json(db, &self.at, &by)?;
        let negated = match operand.strip_prefix('-') {
            Some(positive) => positive.to_string(),
            None => format!("-{operand}"),
        };
        self.arith(db, FieldOp::FloatIncr, &negated).await
    }

    /// Multiplies by `by` on the server; returns the new value, also stored locally.
    pub async fn mul(&mut self, db: &Db, by: T) -> Result<T> {
        let operand = json(db, &self.at, &by)?;
        self.arith(db, FieldOp::FloatMul, &operand).await
    }

    async fn arith(&mut self, db: &Db, op: FieldOp, operand: &str) -> Result<T> {
        let highest = format!("{:?}", T::HIGHEST);
        let new: T = self
            .at
            .run(db, op, Want::NUMBER, &[operand, &highest])
            .await
            .map_err(overflow_of::<T>)?;
        *self.value = new;
        Ok(new)
    }

    /// Replaces the value on the server.
    pub async fn set(&mut self, db: &Db, value: T) -> Result<()> {
        let text = json(db, &self.at, &value)?;
        *self.value = self
            .at
            .run(db, FieldOp::Set, Want::NUMBER, &[&text])
            .await?;
        Ok(())
    }

    /// Reads the value from the server into the local field and returns it.
    pub async fn load(&mut self, db: &Db) -> Result<T> {
        let value: T = self.at.run(db, FieldOp::Get, Want::NUMBER, &[]).await?;
        *self.value = value;
        Ok(value)
    }

    /// Where the field lives.
    pub fn at(&self) -> &At {
        &self.at
    }
}

#[cfg(test)]
mod tests {
    use super::{Integer, bound_text};

    fn bounds<T: Integer>() -> [(i128, String); 2] {
        [T::LOWEST, T::HIGHEST].map(|b| (b, bound_text(b).into_owned()))
    }

    #[test]
    fn every_integer_types_bounds_are_written_out_exactly() {
        let all = [
            bounds::<i8>(),
            bounds::<i16>(),
            bounds::<i32>(),
            bounds::<i64>(),
            bounds::<isize>(),
            bounds::<u8>(),
            bounds::<u16>(),
            bounds::<u32>(),
            bounds::<u64>(),
            bounds::<usize>(),
        ];
        for (bound, text) in all.into_iter().flatten() {
            assert_eq!(text, bound.to_string());
            assert!(
                matches!(bound_text(bound), std::borrow::Cow::Borrowed(_)),
                "{bound}"
            );
        }
        assert_eq!(bound_text(12345), "12345");
    }
}
