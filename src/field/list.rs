//! The handle on a list field (`Vec<T>`), with Python's list semantics.

use std::ops::{Range, RangeFrom, RangeFull, RangeInclusive, RangeTo, RangeToInclusive};

use redis::Value;

use super::{At, FieldOp, FieldType, Want, json, reply_usize};
use crate::db::Db;
use crate::error::Result;

impl<T: FieldType> FieldType for Vec<T> {
    type Handle<'a> = RedisList<'a, T>;
    fn handle(value: &mut Self, at: At) -> RedisList<'_, T> {
        RedisList { value, at }
    }
}

/// A range of list positions with Python's meaning: negative bounds count from the end,
/// bounds past either end are clamped, and an empty or reversed range selects nothing.
///
/// Implemented for `a..b`, `a..`, `..b`, `..`, `a..=b` and `..=b` over `i64`, and for the
/// pairs `(start, stop)` and `(Option<i64>, Option<i64>)`. Python's `list[1:-1]` is
/// `(1, -1)`: clippy rejects the literal range `1..-1` as reversed.
pub trait ListRange {
    /// The start and the stop (exclusive), `None` when omitted.
    fn bounds(&self) -> (Option<i64>, Option<i64>);
}

impl ListRange for Range<i64> {
    fn bounds(&self) -> (Option<i64>, Option<i64>) {
        (Some(self.start), Some(self.end))
    }
}

impl ListRange for RangeFrom<i64> {
    fn bounds(&self) -> (Option<i64>, Option<i64>) {
        (Some(self.start), None)
    }
}

impl ListRange for RangeTo<i64> {
    fn bounds(&self) -> (Option<i64>, Option<i64>) {
        (None, Some(self.end))
    }
}

impl ListRange for RangeFull {
    fn bounds(&self) -> (Option<i64>, Option<i64>) {
        (None, None)
    }
}

impl ListRange for RangeInclusive<i64> {
    fn bounds(&self) -> (Option<i64>, Option<i64>) {
        (Some(*self.start()), inclusive_stop(*self.end()))
    }
}

impl ListRange for RangeToInclusive<i64> {
    fn bounds(&self) -> (Option<i64>, Option<i64>) {
        (None, inclusive_stop(self.end))
    }
}

impl ListRange for (i64, i64) {
    fn bounds(&self) -> (Option<i64>, Option<i64>) {
        (Some(self.0), Some(self.1))
    }
}

impl ListRange for (Option<i64>, Option<i64>) {
    fn bounds(&self) -> (Option<i64>, Option<i64>) {
        *self
    }
}

/// `..=-1` means "to the end", which as an exclusive stop is "omitted".
fn inclusive_stop(end: i64) -> Option<i64> {
    if end == -1 { None } else { Some(end + 1) }
}

/// Python's clamped slice of a list of `len` elements.
fn python_bounds(range: &impl ListRange, len: usize) -> (usize, usize) {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let clamp = |v: i64| {
        let v = if v < 0 { (v + len).max(0) } else { v };
        v.min(len)
    };
    let (start, stop) = range.bounds();
    let start = start.map_or(0, clamp);
    let stop = stop.map_or(len, clamp).max(start);
    (start as usize, stop as usize)
}

/// A handle on a list field: `user.tags().append(&db, "x")`.
///
/// Every operation is one script call (`append` and `extend` on a model without an expiry:
/// one `JSON.ARRAPPEND`). The server returns the list's new length (and the element
/// involved); the handle applies the same change to the local list, and when the local list
/// was out of step with the server (its length disagrees) it reloads the list.
#[derive(Debug)]
pub struct RedisList<'a, T> {
    value: &'a mut Vec<T>,
    at: At,
}

impl<T: FieldType> RedisList<'_, T> {
    /// Appends one element; returns the new length.
    pub async fn append(&mut self, db: &Db, item: impl Into<T>) -> Result<usize> {
        let item: T = item.into();
        let text = json(db, &self.at, &item)?;
        check_nesting(db, &self.at.field("[-1]"), &text)?;
        let (len,): (usize,) = self
            .at
            .call(db, FieldOp::ListAppend, Want::ARRAY, &[&text])
            .await?;
        self.value.push(item);
        self.sync(db, len).await?;
        Ok(len)
    }

    /// Appends every element, in one step; returns the new length.
    pub async fn extend(&mut self, db: &Db, items: impl IntoIterator<Item = T>) -> Result<usize> {
        let items: Vec<T> = items.into_iter().collect();
        if items.is_empty() {
            return self.len(db).await;
        }
        let texts = items
            .iter()
            .map(|item| json(db, &self.at, item))
            .collect::<Result<Vec<String>>>()?;
        // Appended in several commands: a value RedisJSON would refuse is refused here,
        // before the first.
        for (i, text) in texts.iter().enumerate() {
            // Only an array or object can nest (checked before naming the place: a scalar
            // costs no allocation).
            if text.starts_with(['[', '{']) {
                let at = self.at.field(&format!("[{}]", self.value.len() + i));
                check_nesting(db, &at, text)?;
            }
        }
        let operands: Vec<&str> = texts.iter().map(String::as_str).collect();
        let (len,): (usize,) = self
            .at
            .call(db, FieldOp::ListAppend, Want::ARRAY, &operands)
            .await?;
        self.value.extend(items);
        self.sync(db, len).await?;
        Ok(len)
    }

    /// Inserts `item` before position `index`, as Python's `list.insert`: a negative index
    /// counts from the end and an index past either end inserts there. Returns the new length.
    pub async fn insert(&mut self, db: &Db, index: i64, item: impl Into<T>) -> Result<usize> {
        let item: T = item.into();
        let text = json(db, &self.at, &item)?;
        check_nesting(db, &self.at.field(&format!("[{index}]")), &text)?;
        let (len, at): (usize, usize) = self
            .at
            .call(
                db,
                FieldOp::ListInsert,
                Want::ARRAY,
                &[&index.to_string(), &text],
            )
            .await?;
        if at <= self.value.len() {
            self.value.insert(at, item);
        }
        self.sync(db, len).await?;
        Ok(len)
    }

    /// Removes and returns the last element; [`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange) on an empty list.
    pub async fn pop(&mut self, db: &Db) -> Result<T> {
        self.pop_where(db, String::new()).await
    }

    /// Removes and returns the element at `index` (negative counts from the end);
    /// [`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange) where Python raises `IndexError`.
    pub async fn pop_at(&mut self, db: &Db, index: i64) -> Result<T> {
        self.pop_where(db, index.to_string()).await
    }

    async fn pop_where(&mut self, db: &Db, index: String) -> Result<T> {
        let (len, item, at): (usize, Vec<u8>, usize) = self
            .at
            .call(db, FieldOp::ListPop, Want::ARRAY, &[&index])
            .await?;
        let item: T = self.decode_element(db, &item)?;
        if self.value.len() == len + 1 && at < self.value.len() {
            self.value.remove(at);
        }
        self.sync(db, len).await?;
        Ok(item)
    }

    /// The element at `index` (negative counts from the end), read from the server and
    /// stored in the local list; [`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange) where Python raises.
    pub async fn get(&mut self, db: &Db, index: i64) -> Result<T>
    where
        T: Clone,
    {
        let (len, item, at): (usize, Vec<u8>, usize) = self
            .at
            .call(db, FieldOp::ListGet, Want::ARRAY, &[&index.to_string()])
            .await?;
        let item: T = self.at.decode_one(db, Want::ARRAY, &item)?;
        if self.value.len() == len
            && let Some(slot) = self.value.get_mut(at)
        {
            *slot = item.clone();
        }
        Ok(item)
    }

    /// Replaces the element at `index` (negative counts from the end);
    /// [`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange) where Python raises.
    pub async fn set(&mut self, db: &Db, index: i64, item: impl Into<T>) -> Result<()> {
        let item: T = item.into();
        let text = json(db, &self.at, &item)?;
        check_nesting(db, &self.at.field(&format!("[{index}]")), &text)?;
        let (len, at): (usize, usize) = self
            .at
            .call(
                db,
                FieldOp::ListSet,
                Want::ARRAY,
                &[&index.to_string(), &text],
            )
            .await?;
        if self.value.len() == len
            && let Some(slot) = self.value.get_mut(at)
        {
            *slot = item;
        }
        self.sync(db, len).await
    }

    /// Removes the first element equal to `item`; `false` when there is none (where Python
    /// raises `ValueError`).
    pub async fn remove(&mut self, db: &Db, item: &T) -> Result<bool>
    where
        T: PartialEq,
    {
        let text = json(db, &self.at, item)?;
        let reply: Vec<Value> = self
            .at
            .call(db, FieldOp::ListRemove, Want::ARRAY, &[&text])
            .await?;
        let len = reply_usize(reply.first());
        let at = reply.get(1).map(|v| reply_usize(Some(v)));
        if let Some(at) = at
            && self.value.get(at) == Some(item)
        {
            self.value.remove(at);
        }
        self.sync(db, len).await?;
        Ok(at.is_some())
    }

    /// Empties the list.
    pub async fn clear(&mut self, db: &Db) -> Result<()> {
        let (len,): (usize,) = self
            .at
            .call(db, FieldOp::ListClear, Want::ARRAY, &[])
            .await?;
        self.value.clear();
        self.sync(db, len).await
    }

    /// Keeps only the elements in `range` (Python slice semantics); returns the new length.
    pub async fn trim(&mut self, db: &Db, range: impl ListRange) -> Result<usize> {
        let (start, stop) = range_operands(&range);
        let (len, _start): (usize, usize) = self
            .at
            .call(db, FieldOp::ListTrim, Want::ARRAY, &[&start, &stop])
            .await?;
        let (from, to) = python_bounds(&range, self.value.len());
        self.value.truncate(to);
        self.value.drain(..from);
        self.sync(db, len).await?;
        Ok(len)
    }

    /// The elements in `range` (Python slice semantics), read from the server; the local
    /// list is not changed.
    pub async fn slice(&mut self, db: &Db, range: impl ListRange) -> Result<Vec<T>> {
        let (start, stop) = range_operands(&range);
        let (_len, part): (usize, Vec<u8>) = self
            .at
            .call(db, FieldOp::ListSlice, Want::ARRAY, &[&start, &stop])
            .await?;
        crate::codec::decode_at(&db.key(self.at.key()), self.at.path(), &part)
    }

    /// The list's length on the server.
    pub async fn len(&mut self, db: &Db) -> Result<usize> {
        let (len,): (usize,) = self.at.call(db, FieldOp::ListLen, Want::ARRAY, &[]).await?;
        Ok(len)
    }

    /// Replaces the whole list.
    pub async fn replace(&mut self, db: &Db, items: Vec<T>) -> Result<()> {
        let text = json(db, &self.at, &items)?;
        *self.value = self.at.run(db, FieldOp::Set, Want::ARRAY, &[&text]).await?;
        Ok(())
    }

    /// Reads the whole list from the server into the local field, and returns it.
    pub async fn load(&mut self, db: &Db) -> Result<&Vec<T>> {
        *self.value = self.at.run(db, FieldOp::Get, Want::ARRAY, &[]).await?;
        Ok(&*self.value)
    }

    /// Where the field lives.
    pub fn at(&self) -> &At {
        &self.at
    }

    /// Reloads the list when the local copy's length disagrees with the server's after an
    /// operation (the local copy was stale before it).
    async fn sync(&mut self, db: &Db, server_len: usize) -> Result<()> {
        if self.value.len() != server_len {
            self.load(db).await?;
        }
        Ok(())
    }

    fn decode_element(&self, db: &Db, bytes: &[u8]) -> Result<T> {
        crate::codec::decode_at(&db.key(self.at.key()), self.at.path(), bytes)
    }
}

/// Refuses the JSON `text` bound for `at` when, placed there, the document would nest too
/// deep to parse or load ([`crate::depth`]): `InvalidOp` naming the place.
pub(super) fn check_nesting(db: &Db, at: &At, text: &str) -> Result<()> {
    if !text.contains(['[', '{']) {
        return Ok(());
    }
    crate::depth::check(&db.key(at.key()), at.path(), text)
}

fn range_operands(range: &impl ListRange) -> (String, String) {
    let text = |b: Option<i64>| b.map(|v| v.to_string()).unwrap_or_default();
    let (start, stop) = range.bounds();
    (text(start), text(stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_slice_bounds() {
        // (range, len) -> (start, stop) as Python's list[a:b] selects.
        assert_eq!(python_bounds(&(1..3), 5), (1, 3));
        assert_eq!(python_bounds(&(-2..), 5), (3, 5));
        assert_eq!(python_bounds(&(..-1), 5), (0, 4));
        assert_eq!(python_bounds(&(-10..10), 5), (0, 5));
        assert_eq!(python_bounds(&(4, 2), 5), (4, 4));
        assert_eq!(python_bounds(&(1, -1), 5), (1, 4));
        assert_eq!(python_bounds(&(None, Some(-2)), 5), (0, 3));
        assert_eq!(python_bounds(&(..), 0), (0, 0));
        assert_eq!(python_bounds(&(-4..=-1), 5), (1, 5));
        assert_eq!(python_bounds(&(..=1), 5), (0, 2));
        assert_eq!(python_bounds(&(7..), 5), (5, 5));
    }
}
