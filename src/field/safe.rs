//! The handle on [`Safe`] fields: the value as a whole, and the inner type's own handle
//! while the local value is valid.

use super::{At, FieldOp, FieldType, Want, json};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::safe::Safe;

impl<T: FieldType> FieldType for Safe<T> {
    type Handle<'a> = RedisSafe<'a, T>;
    fn handle(value: &mut Self, at: At) -> RedisSafe<'_, T> {
        RedisSafe { value, at }
    }
}

/// A handle on a [`Safe<T>`](Safe) field: `load` and `set` of the whole value, and, while
/// the local value is valid, `T`'s own handle through [`valid`](RedisSafe::valid):
/// `user.score().valid()?.incr(&db, 1)`.
#[derive(Debug)]
pub struct RedisSafe<'a, T> {
    value: &'a mut Safe<T>,
    at: At,
}

impl<T: FieldType> RedisSafe<'_, T> {
    /// `T`'s handle on the field while the local value is valid. A local value that did not
    /// decode is [`Error::Deserialize`] naming the field (with the model's key without the
    /// `Db`'s namespace, as the handle has no `Db`) and serde's reason: the stored value is not
    /// a `T`, so `T`'s operations would refuse it anyway ([`load`](RedisSafe::load) it
    /// again after another client fixed it).
    pub fn valid(&mut self) -> Result<T::Handle<'_>> {
        match &mut *self.value {
            Safe::Valid(value) => Ok(T::handle(value, self.at.clone())),
            Safe::Invalid(raw) => {
                let source = match serde_json::from_str::<T>(raw.get()) {
                    Err(e) => e,
                    // Decodes now (a `T` whose decoding depends on more than the text):
                    // still not a value this handle holds.
                    Ok(_) => serde::de::Error::custom("the local value did not decode"),
                };
                Err(Error::Deserialize {
                    key: self.at.key().to_string(),
                    path: self.at.path().to_string(),
                    source,
                })
            }
        }
    }

    /// Reads the field from the server into the local field, valid or not, and returns it.
    pub async fn load(&mut self, db: &Db) -> Result<&Safe<T>> {
        *self.value = self.at.run(db, FieldOp::Get, Want::ANY, &[]).await?;
        Ok(&*self.value)
    }

    /// Replaces the field on the server with a valid `value` (re-arming the model's expiry);
    /// the local field takes the server's result.
    pub async fn set(&mut self, db: &Db, value: T) -> Result<()> {
        let text = json(db, &self.at, &value)?;
        *self.value = self.at.run(db, FieldOp::Set, Want::ANY, &[&text]).await?;
        Ok(())
    }

    /// Where the field lives.
    pub fn at(&self) -> &At {
        &self.at
    }
}
