//! The handle on a circular buffer field (`CircularBuffer<T, N>`): pushes that keep the
//! newest `N` on the server in the same step.

use super::list::check_nesting;
use super::{At, FieldOp, FieldType, Want, json};
use crate::buffer::CircularBuffer;
use crate::db::Db;
use crate::error::Result;

impl<T: FieldType, const N: usize> FieldType for CircularBuffer<T, N> {
    type Handle<'a> = RedisBuffer<'a, T, N>;
    fn handle(value: &mut Self, at: At) -> RedisBuffer<'_, T, N> {
        RedisBuffer { value, at }
    }
}

/// A handle on a [`CircularBuffer`] field: `user.recent().push(&db, "login")`.
///
/// Every operation is one script call that checks the document and the field's JSON type
/// (an array) first, as a list's do. `push` and `push_many` append and then cut the stored
/// array to its newest `N` in the same script, so no reader ever sees more than `N` items
/// after a push (however long the array was before: a capacity lowered in the code takes
/// effect at the next push); they return the buffer as the server now holds it, which the
/// handle stores in the local field (so a local copy that fell behind other writers is
/// current again after each push). A failed operation leaves the document byte-identical
/// and the local field as it was.
#[derive(Debug)]
pub struct RedisBuffer<'a, T, const N: usize> {
    value: &'a mut CircularBuffer<T, N>,
    at: At,
}

impl<T: FieldType, const N: usize> RedisBuffer<'_, T, N> {
    /// Appends `item` and keeps the newest `N`, in one atomic step; returns the buffer's
    /// length afterwards (at most `N`).
    pub async fn push(&mut self, db: &Db, item: impl Into<T>) -> Result<usize> {
        self.push_many(db, [item.into()]).await
    }

    /// Appends every item of `items`, in order, and keeps the newest `N` of the buffer and
    /// the batch together, in one atomic step; returns the length afterwards. Every item is
    /// checked (a NaN or infinite float anywhere is [`Error::NonFinite`](crate::Error::NonFinite),
    /// a value nesting the document too deep [`Error::InvalidOp`](crate::Error::InvalidOp),
    /// both before anything is sent), but only the newest `N` of a larger batch travel. With
    /// no items it pushes nothing and still cuts an over-long stored array to `N`.
    pub async fn push_many(
        &mut self,
        db: &Db,
        items: impl IntoIterator<Item = T>,
    ) -> Result<usize> {
        let capacity = CircularBuffer::<T, N>::CAPACITY;
        let texts = items
            .into_iter()
            .map(|item| json(db, &self.at, &item))
            .collect::<Result<Vec<String>>>()?;
        let element = self.at.field("[-1]");
        for text in &texts {
            check_nesting(db, &element, text)?;
        }
        let newest = &texts[texts.len().saturating_sub(capacity)..];
        let capacity = capacity.to_string();
        let mut operands: Vec<&str> = Vec::with_capacity(1 + newest.len());
        operands.push(&capacity);
        operands.extend(newest.iter().map(String::as_str));
        let (len, stored): (usize, Vec<u8>) = self
            .at
            .call(db, FieldOp::BufferPush, Want::ARRAY, &operands)
            .await?;
        *self.value = self.at.decode_one(db, Want::ARRAY, &stored)?;
        Ok(len)
    }

    /// The newest `n` items, **newest first** (the last pushed is `[0]`), read from the
    /// server; fewer when the buffer holds fewer. The local field is not changed.
    pub async fn latest(&mut self, db: &Db, n: usize) -> Result<Vec<T>> {
        // Python's slice [-n:] of the stored array (oldest first); [0:0] reads nothing but
        // still checks the document and the field.
        let (start, stop) = match (n, i64::try_from(n)) {
            (0, _) => ("0".to_string(), "0".to_string()),
            (_, Ok(n)) => ((-n).to_string(), String::new()),
            (_, Err(_)) => (String::new(), String::new()),
        };
        let (_len, part): (usize, Vec<u8>) = self
            .at
            .call(db, FieldOp::ListSlice, Want::ARRAY, &[&start, &stop])
            .await?;
        let mut items: Vec<T> =
            crate::codec::decode_at(&db.key(self.at.key()), self.at.path(), &part)?;
        items.reverse();
        Ok(items)
    }

    /// How many items the buffer holds on the server.
    pub async fn len(&mut self, db: &Db) -> Result<usize> {
        let (len,): (usize,) = self.at.call(db, FieldOp::ListLen, Want::ARRAY, &[]).await?;
        Ok(len)
    }

    /// Empties the buffer.
    pub async fn clear(&mut self, db: &Db) -> Result<()> {
        let (_len,): (usize,) = self
            .at
            .call(db, FieldOp::ListClear, Want::ARRAY, &[])
            .await?;
        *self.value = CircularBuffer::new();
        Ok(())
    }

    /// Reads the whole buffer from the server into the local field (as stored: see
    /// [`CircularBuffer`] for an array longer than `N`), and returns it.
    pub async fn load(&mut self, db: &Db) -> Result<&CircularBuffer<T, N>> {
        *self.value = self.at.run(db, FieldOp::Get, Want::ARRAY, &[]).await?;
        Ok(&*self.value)
    }

    /// Where the field lives.
    pub fn at(&self) -> &At {
        &self.at
    }
}
