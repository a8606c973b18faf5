//! [`Safe<T>`]: a field that loads whatever the document holds, keeping a value that does
//! not decode as its raw JSON text instead of failing the whole model.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A field that never fails its model's load: [`Safe::Valid`] when the stored value decodes
/// as a `T`, else [`Safe::Invalid`] holding the stored value's JSON text as it was read.
///
/// Saving the model writes an invalid value back as exactly that text, so a document written
/// by another client (a number stored as text, a pickled value, a field of another shape)
/// survives a load and a save of the fields rapyer understands.
///
/// ```
/// use rapyer::Safe;
///
/// let age: Safe<i64> = serde_json::from_str("\"forty\"")?;
/// assert!(!age.is_valid());
/// assert_eq!(age.raw(), Some("\"forty\""));
/// assert_eq!(serde_json::to_string(&age)?, "\"forty\""); // written back unchanged
///
/// let age: Safe<i64> = serde_json::from_str("40")?;
/// assert_eq!(age.valid(), Some(&40));
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// A `Safe` field must be present in the document, as any field: give it
/// `#[serde(default)]` to load a document without it as `Safe::Valid(T::default())`.
/// `null` is a value like any other: `Safe<i64>` loads it as invalid, `Safe<Option<i64>>` as
/// `Valid(None)`. Decoding needs the document's JSON (it always is, for a model): a `Safe`
/// read from another serde format fails there.
#[derive(Clone)]
pub enum Safe<T> {
    /// The stored value decoded as a `T`.
    Valid(T),
    /// The stored value did not decode as a `T`: its JSON text, as read.
    Invalid(Box<RawValue>),
}

impl<T> Safe<T> {
    /// Whether the value decoded.
    pub fn is_valid(&self) -> bool {
        matches!(self, Safe::Valid(_))
    }

    /// The decoded value, if it decoded.
    pub fn valid(&self) -> Option<&T> {
        match self {
            Safe::Valid(value) => Some(value),
            Safe::Invalid(_) => None,
        }
    }

    /// The decoded value, mutably, if it decoded.
    pub fn valid_mut(&mut self) -> Option<&mut T> {
        match self {
            Safe::Valid(value) => Some(value),
            Safe::Invalid(_) => None,
        }
    }

    /// The decoded value, if it decoded.
    pub fn into_valid(self) -> Option<T> {
        match self {
            Safe::Valid(value) => Some(value),
            Safe::Invalid(_) => None,
        }
    }

    /// The stored JSON text of a value that did not decode.
    pub fn raw(&self) -> Option<&str> {
        match self {
            Safe::Valid(_) => None,
            Safe::Invalid(raw) => Some(raw.get()),
        }
    }
}

impl<T: DeserializeOwned> Safe<T> {
    /// Why the value did not decode as a `T` (serde's error, found again from the raw
    /// text); `None` when it decoded.
    pub fn error(&self) -> Option<serde_json::Error> {
        match self {
            Safe::Valid(_) => None,
            Safe::Invalid(raw) => serde_json::from_str::<T>(raw.get()).err(),
        }
    }
}

impl<T> From<T> for Safe<T> {
    fn from(value: T) -> Safe<T> {
        Safe::Valid(value)
    }
}

impl<T: Default> Default for Safe<T> {
    fn default() -> Safe<T> {
        Safe::Valid(T::default())
    }
}

impl<T: fmt::Debug> fmt::Debug for Safe<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Safe::Valid(value) => f.debug_tuple("Valid").field(value).finish(),
            Safe::Invalid(raw) => f.debug_tuple("Invalid").field(&raw.get()).finish(),
        }
    }
}

/// Two invalid values are equal when their JSON texts are.
impl<T: PartialEq> PartialEq for Safe<T> {
    fn eq(&self, other: &Safe<T>) -> bool {
        match (self, other) {
            (Safe::Valid(a), Safe::Valid(b)) => a == b,
            (Safe::Invalid(a), Safe::Invalid(b)) => a.get() == b.get(),
            _ => false,
        }
    }
}

impl<T: Serialize> Serialize for Safe<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Safe::Valid(value) => value.serialize(serializer),
            // serde_json writes a raw value's text as it is.
            Safe::Invalid(raw) => raw.serialize(serializer),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Safe<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Safe<T>, D::Error> {
        // The text first, then the type: a value that is not a `T` keeps its text.
        let raw: Box<RawValue> = Deserialize::deserialize(deserializer)?;
        Ok(match serde_json::from_str::<T>(raw.get()) {
            Ok(value) => Safe::Valid(value),
            Err(_) => Safe::Invalid(raw),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Inner {
        a: i64,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Outer {
        n: Safe<i64>,
        inner: Safe<Inner>,
        s: String,
    }

    #[test]
    fn an_invalid_value_is_written_back_as_its_text() -> serde_json::Result<()> {
        let text = r#"{"n":"1e3 \"x\" 🎉","inner":{"b":1,"a":"z","c":[1e29,-0.0,{"z":1,"a":2}]},"s":"ok"}"#;
        let outer: Outer = serde_json::from_str(text)?;
        assert!(!outer.n.is_valid());
        assert!(!outer.inner.is_valid());
        assert!(outer.inner.error().is_some());
        assert_eq!(serde_json::to_string(&outer)?, text);
        let valid: Outer = serde_json::from_str(r#"{"n":5,"inner":{"a":1},"s":""}"#)?;
        assert_eq!(valid.n, Safe::Valid(5));
        assert_eq!(valid.inner, Safe::Valid(Inner { a: 1 }));
        Ok(())
    }

    #[test]
    fn a_json_value_and_path_tracking_decode_it_too() -> serde_json::Result<()> {
        let value = serde_json::json!({"n": [1], "inner": {"a": 2}, "s": "x"});
        let outer: Outer = serde_json::from_value(value)?;
        assert_eq!(outer.n.raw(), Some("[1]"));
        assert_eq!(outer.inner, Safe::Valid(Inner { a: 2 }));
        let text = br#"{"n":null,"inner":null,"s":7}"#;
        let mut de = serde_json::Deserializer::from_slice(text);
        let err = serde_path_to_error::deserialize::<_, Outer>(&mut de).err();
        assert_eq!(err.map(|e| e.path().to_string()), Some("s".to_string()));
        Ok(())
    }
}
