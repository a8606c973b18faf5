//! The handle on byte fields ([`Bytes`], stored as base64 text).

use super::{At, FieldOp, FieldType, Want, json};
use crate::db::Db;
use crate::error::Result;
use crate::types::Bytes;

impl FieldType for Bytes {
    type Handle<'a> = RedisBytes<'a>;
    fn handle(value: &mut Self, at: At) -> RedisBytes<'_> {
        RedisBytes { value, at }
    }
}

/// A handle on a [`Bytes`] field (stored as base64 text).
#[derive(Debug)]
pub struct RedisBytes<'a> {
    value: &'a mut Bytes,
    at: At,
}

impl RedisBytes<'_> {
    /// Replaces the bytes on the server.
    pub async fn set(&mut self, db: &Db, value: impl Into<Bytes>) -> Result<()> {
        let text = json(db, &self.at, &value.into())?;
        *self.value = self
            .at
            .run(db, FieldOp::Set, Want::STRING, &[&text])
            .await?;
        Ok(())
    }

    /// Reads the bytes from the server into the local field, and returns them.
    pub async fn load(&mut self, db: &Db) -> Result<&Bytes> {
        *self.value = self.at.run(db, FieldOp::Get, Want::STRING, &[]).await?;
        Ok(&*self.value)
    }

    /// Where the field lives.
    pub fn at(&self) -> &At {
        &self.at
    }
}
