//! The handle on string fields.

use super::{At, FieldOp, FieldType, Want, json};
use crate::db::Db;
use crate::error::Result;

impl FieldType for String {
    type Handle<'a> = RedisStr<'a>;
    fn handle(value: &mut Self, at: At) -> RedisStr<'_> {
        RedisStr { value, at }
    }
}

/// A handle on a `String` field: `user.name().append(&db, "!")`.
#[derive(Debug)]
pub struct RedisStr<'a> {
    value: &'a mut String,
    at: At,
}

impl RedisStr<'_> {
    /// Replaces the string on the server.
    pub async fn set(&mut self, db: &Db, value: &str) -> Result<()> {
        let text = json(db, &self.at, value)?;
        *self.value = self
            .at
            .run(db, FieldOp::Set, Want::STRING, &[&text])
            .await?;
        Ok(())
    }

    /// Appends `suffix` on the server (`JSON.STRAPPEND`); the local field becomes the
    /// server's whole new string, read in the same atomic step, and its length in bytes is
    /// returned.
    pub async fn append(&mut self, db: &Db, suffix: &str) -> Result<usize> {
        let text = json(db, &self.at, suffix)?;
        *self.value = self
            .at
            .run(db, FieldOp::Append, Want::STRING, &[&text])
            .await?;
        Ok(self.value.len())
    }

    /// The string's length in bytes on the server (it is read, and stored locally too).
    pub async fn len(&mut self, db: &Db) -> Result<usize> {
        Ok(self.load(db).await?.len())
    }

    /// Reads the string from the server into the local field and returns it.
    pub async fn load(&mut self, db: &Db) -> Result<String> {
        let value: String = self.at.run(db, FieldOp::Get, Want::STRING, &[]).await?;
        self.value.clone_from(&value);
        Ok(value)
    }

    /// Where the field lives.
    pub fn at(&self) -> &At {
        &self.at
    }
}
