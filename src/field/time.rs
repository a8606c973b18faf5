//! The handle on date-time fields (only with the `chrono` feature, on by default).

use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

use super::{At, FieldOp, FieldType, Want, json};
use crate::db::Db;
use crate::error::Result;

/// A time zone whose date-times a [`RedisDatetime`] can hold: `Utc` and `FixedOffset`.
pub trait Zone: chrono::TimeZone + Send + Sync + 'static
where
    DateTime<Self>: FieldType + Copy,
{
}

impl Zone for Utc {}
impl Zone for FixedOffset {}

macro_rules! datetimes {
    ($($tz:ty),*) => {
        $(
            impl FieldType for DateTime<$tz> {
                type Handle<'a> = RedisDatetime<'a, $tz>;
                fn handle(value: &mut Self, at: At) -> RedisDatetime<'_, $tz> {
                    RedisDatetime { value, at }
                }
            }
        )*
    };
}

datetimes!(Utc, FixedOffset);

/// A handle on a date-time field (stored as RFC 3339 text with its offset):
/// `event.starts().add(&db, Duration::from_secs(3600))`. Only with the `chrono` feature.
#[derive(Debug)]
pub struct RedisDatetime<'a, Tz: chrono::TimeZone> {
    value: &'a mut DateTime<Tz>,
    at: At,
}

impl<Tz: Zone> RedisDatetime<'_, Tz>
where
    DateTime<Tz>: FieldType + Copy,
{
    /// Moves the stored date-time later by `by`, on the server: nanosecond precision, the
    /// offset kept. Returns the new value, also stored locally.
    pub async fn add(&mut self, db: &Db, by: Duration) -> Result<DateTime<Tz>> {
        let secs = by.as_secs().to_string();
        let nanos = by.subsec_nanos().to_string();
        self.shift(db, &secs, &nanos).await
    }

    /// Moves the stored date-time earlier by `by`, on the server.
    pub async fn sub(&mut self, db: &Db, by: Duration) -> Result<DateTime<Tz>> {
        // -(s + n/1e9) as whole seconds plus non-negative nanoseconds.
        let (secs, nanos) = match by.subsec_nanos() {
            0 => (-i128::from(by.as_secs()), 0),
            n => (-i128::from(by.as_secs()) - 1, 1_000_000_000 - n),
        };
        self.shift(db, &secs.to_string(), &nanos.to_string()).await
    }

    async fn shift(&mut self, db: &Db, secs: &str, nanos: &str) -> Result<DateTime<Tz>> {
        let instant = self.at.instant_path();
        let new: DateTime<Tz> = self
            .at
            .run(db, FieldOp::TimeAdd, Want::STRING, &[secs, nanos, &instant])
            .await?;
        *self.value = new;
        Ok(new)
    }

    /// Replaces the value on the server (and, for an indexed field, the instant the search
    /// index reads beside it, in the same step).
    pub async fn set(&mut self, db: &Db, value: DateTime<Tz>) -> Result<()> {
        let text = json(db, &self.at, &value)?;
        let instant = self.at.instant_path();
        *self.value = self
            .at
            .run(db, FieldOp::TimeSet, Want::STRING, &[&text, &instant])
            .await?;
        Ok(())
    }

    /// Reads the value from the server into the local field and returns it.
    pub async fn load(&mut self, db: &Db) -> Result<DateTime<Tz>> {
        let value: DateTime<Tz> = self.at.run(db, FieldOp::Get, Want::STRING, &[]).await?;
        *self.value = value;
        Ok(value)
    }

    /// Where the field lives.
    pub fn at(&self) -> &At {
        &self.at
    }
}
