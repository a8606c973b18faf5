//! The handle on boolean fields.

use super::{At, FieldOp, FieldType, Want, json};
use crate::db::Db;
use crate::error::Result;

impl FieldType for bool {
    type Handle<'a> = RedisBool<'a>;
    fn handle(value: &mut Self, at: At) -> RedisBool<'_> {
        RedisBool { value, at }
    }
}

/// A handle on a `bool` field: `user.active().toggle(&db)`.
#[derive(Debug)]
pub struct RedisBool<'a> {
    value: &'a mut bool,
    at: At,
}

impl RedisBool<'_> {
    /// Replaces the value on the server.
    pub async fn set(&mut self, db: &Db, value: bool) -> Result<()> {
        let text = json(db, &self.at, &value)?;
        *self.value = self
            .at
            .run(db, FieldOp::Set, Want::BOOLEAN, &[&text])
            .await?;
        Ok(())
    }

    /// Flips the value on the server (`JSON.TOGGLE`); returns the new value, also stored
    /// locally.
    pub async fn toggle(&mut self, db: &Db) -> Result<bool> {
        *self.value = self.at.run(db, FieldOp::Toggle, Want::BOOLEAN, &[]).await?;
        Ok(*self.value)
    }

    /// Reads the value from the server into the local field and returns it.
    pub async fn load(&mut self, db: &Db) -> Result<bool> {
        *self.value = self.at.run(db, FieldOp::Get, Want::BOOLEAN, &[]).await?;
        Ok(*self.value)
    }

    /// Where the field lives.
    pub fn at(&self) -> &At {
        &self.at
    }
}
