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

    /// Appends `suffix` on the server (`JSON.STRAPPEND`) and to the local field, and returns
    /// the string's new length in bytes on the server. Only the suffix is sent and nothing
    /// is read back, so appending to a long string costs what the suffix does; when the
    /// server's new length is not the local field's (another writer changed the string
    /// since it was read), the field is read again, as a list's `append` does.
    pub async fn append(&mut self, db: &Db, suffix: &str) -> Result<usize> {
        let text = json(db, &self.at, suffix)?;
        let (len,): (usize,) = self
            .at
            .call(db, FieldOp::Append, Want::STRING, &[&text])
            .await?;
        self.value.push_str(suffix);
        if self.value.len() != len {
            self.load(db).await?;
        }
        Ok(len)
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
