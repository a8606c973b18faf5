//! The circular buffer value: the newest `N` items, stored in the model's document as a plain
//! JSON array, oldest first.

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The newest `N` items pushed into it, oldest first: a recent-activity list, the last
/// readings of a sensor, an audit tail.
///
/// As a model field it is stored inside the model's document as a plain JSON array (oldest
/// first), so it is indexable by position, read by any client, and copied, deleted and
/// expired with the document. Its handle (`model.field()`) pushes on the server and keeps the
/// newest `N` in the same atomic step; see [`RedisBuffer`](crate::field::RedisBuffer). The
/// capacity is part of the type: `CircularBuffer<String, 50>`; `N` must be at least 1 (a
/// `CircularBuffer<T, 0>` fails to compile where it is created or pushed to).
///
/// Locally it is a read-only slice of its items (`buffer[0]`, `buffer.iter()`, `buffer.len()`)
/// with [`push`](CircularBuffer::push), for building a value before it is saved:
///
/// ```
/// use rapyer::CircularBuffer;
///
/// let mut recent: CircularBuffer<&str, 3> = CircularBuffer::new();
/// for page in ["home", "pricing", "docs", "blog"] {
///     recent.push(page);
/// }
/// assert_eq!(&recent[..], ["pricing", "docs", "blog"]); // the newest 3, oldest first
/// assert_eq!(serde_json::to_string(&recent).unwrap(), r#"["pricing","docs","blog"]"#);
/// ```
///
/// A buffer of no items is refused when it is built:
///
/// ```compile_fail
/// let empty: rapyer::CircularBuffer<String, 0> = rapyer::CircularBuffer::new();
/// ```
///
/// **Reading keeps everything stored.** A stored array longer than `N` (written by another
/// client, or saved before `N` was lowered in the code) loads whole: reading never drops data,
/// and the local copy holds what the server holds. The next `push` or `push_many` through
/// the handle (or in a block) trims the stored array to the newest `N`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CircularBuffer<T, const N: usize> {
    items: Vec<T>,
}

impl<T, const N: usize> CircularBuffer<T, N> {
    /// Refuses `N = 0` at compile time where a buffer is created or pushed to.
    pub(crate) const CAPACITY: usize = {
        assert!(
            N > 0,
            "a CircularBuffer holds at least one item: N must be 1 or more"
        );
        N
    };

    /// An empty buffer.
    pub fn new() -> Self {
        let _ = Self::CAPACITY;
        CircularBuffer { items: Vec::new() }
    }

    /// How many items it keeps: `N`.
    pub const fn capacity(&self) -> usize {
        Self::CAPACITY
    }

    /// Appends `item` to the local value, dropping the oldest items beyond `N`. This changes
    /// only the local value (before a save, say): the field handle's `push` changes the
    /// stored one.
    pub fn push(&mut self, item: T) {
        self.items.push(item);
        let over = self.items.len().saturating_sub(Self::CAPACITY);
        if over > 0 {
            self.items.drain(..over);
        }
    }

    /// The items, oldest first, as a `Vec`.
    pub fn into_vec(self) -> Vec<T> {
        self.items
    }

    /// The buffer holding exactly `items` (as read from the server: possibly more than `N`).
    pub(crate) fn from_stored(items: Vec<T>) -> Self {
        CircularBuffer { items }
    }
}

impl<T, const N: usize> Default for CircularBuffer<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> Deref for CircularBuffer<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items
    }
}

impl<T: fmt::Debug, const N: usize> fmt::Debug for CircularBuffer<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.items).finish()
    }
}

/// The newest `N` of `iter`, oldest first.
impl<T, const N: usize> FromIterator<T> for CircularBuffer<T, N> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut buffer = Self::new();
        buffer.extend(iter);
        buffer
    }
}

/// Pushes each item in turn: the newest `N` stay.
impl<T, const N: usize> Extend<T> for CircularBuffer<T, N> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for item in iter {
            self.push(item);
        }
    }
}

impl<'a, T, const N: usize> IntoIterator for &'a CircularBuffer<T, N> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl<T, const N: usize> IntoIterator for CircularBuffer<T, N> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// A plain JSON array, oldest first.
impl<T: Serialize, const N: usize> Serialize for CircularBuffer<T, N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.items.serialize(serializer)
    }
}

/// Any JSON array, kept whole (see the type's documentation).
impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for CircularBuffer<T, N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let _ = Self::CAPACITY;
        Vec::deserialize(deserializer).map(Self::from_stored)
    }
}

#[cfg(test)]
mod tests {
    use super::CircularBuffer;

    #[test]
    fn a_local_push_keeps_the_newest_n_oldest_first() {
        let mut b: CircularBuffer<i32, 2> = CircularBuffer::new();
        assert!(b.is_empty());
        b.push(1);
        assert_eq!(&b[..], [1]);
        b.extend([2, 3, 4]);
        assert_eq!(&b[..], [3, 4]);
        assert_eq!(b.capacity(), 2);
        let one: CircularBuffer<i32, 1> = (0..10).collect();
        assert_eq!(one.into_vec(), vec![9]);
    }

    #[test]
    fn a_longer_stored_array_loads_whole() {
        let b: CircularBuffer<i32, 2> = serde_json::from_str("[1,2,3,4]").unwrap();
        assert_eq!(&b[..], [1, 2, 3, 4]);
        assert_eq!(serde_json::to_string(&b).unwrap(), "[1,2,3,4]");
        assert!(serde_json::from_str::<CircularBuffer<i32, 2>>("{}").is_err());
    }
}
