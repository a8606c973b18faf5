//! Finding a NaN or infinite float in a value about to be written.
//!
//! JSON has no form for NaN or the infinities, and serde_json writes them as `null`
//! without an error, so a model holding one would be stored and then fail every later
//! load. The encoders serialize as usual and, only when the text holds `null` at all, walk
//! the value once more with [`Finder`], a serializer that writes nothing and stops at the
//! first float that is not finite, tracking its JSONPath. A document without `null` costs
//! one substring search.

use std::fmt;

use serde::Serialize;
use serde::ser;

/// The JSONPath of the first NaN or infinite float in `value`, relative to the value
/// (`""` for the value itself, `.scores[2]`, `["a b"].x`), when `text`, the value's
/// serde_json form, could hide one. `None` when every float is finite.
pub(crate) fn non_finite_path<T: Serialize + ?Sized>(value: &T, text: &str) -> Option<String> {
    // serde_json writes a non-finite float as `null`: without one, there is none.
    if !text.contains("null") {
        return None;
    }
    find(value)
}

/// The JSONPath of the first NaN or infinite float in `value`, relative to the value, found
/// by walking it (for a value that has no serde_json text to search first).
pub(crate) fn find<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    // A first walk only looks (most nulls are `None`s); a second one tracks the path.
    let mut path = String::new();
    let found = value.serialize(Finder {
        path: &mut path,
        track: false,
    });
    if !matches!(found, Err(Stop::NonFinite(_))) {
        return None;
    }
    match value.serialize(Finder {
        path: &mut path,
        track: true,
    }) {
        Err(Stop::NonFinite(at)) => Some(at),
        _ => None,
    }
}

/// Why the walk stopped: a non-finite float at this path, or the value's own serializer
/// failed (serde_json would then have failed first, so it does not happen).
#[derive(Debug)]
enum Stop {
    NonFinite(String),
    Other,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::NonFinite(path) => write!(f, "non-finite float at {path}"),
            Stop::Other => f.write_str("serialization failed"),
        }
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<T: fmt::Display>(_msg: T) -> Stop {
        Stop::Other
    }
}

/// A serializer that writes nothing and fails at the first float that is not finite.
struct Finder<'p> {
    /// The path of the value being serialized; children append to it and cut it back.
    path: &'p mut String,
    /// Whether to keep `path` (and read map keys) at all.
    track: bool,
}

/// Appends a member name the way JSONPath writes it: `.name`, or `["name"]` when the name
/// is not a plain identifier.
pub(crate) fn push_member(path: &mut String, name: &str) {
    let plain = !name.is_empty()
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    if plain {
        path.push('.');
        path.push_str(name);
    } else {
        path.push('[');
        path.push_str(&serde_json::Value::String(name.to_string()).to_string());
        path.push(']');
    }
}

impl Finder<'_> {
    fn float(&self, finite: bool) -> Result<(), Stop> {
        if finite {
            Ok(())
        } else {
            Err(Stop::NonFinite(self.path.clone()))
        }
    }

    /// The finder of a child value, sharing the path.
    fn child(&mut self) -> Finder<'_> {
        Finder {
            path: self.path,
            track: self.track,
        }
    }

    /// Serializes `value` as the member `name` of the current value.
    fn member<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<(), Stop> {
        if !self.track {
            return value.serialize(self.child());
        }
        let len = self.path.len();
        push_member(self.path, name);
        value.serialize(self.child())?;
        self.path.truncate(len);
        Ok(())
    }

    /// Serializes `value` as element `index` of the current value.
    fn element<T: Serialize + ?Sized>(&mut self, index: usize, value: &T) -> Result<(), Stop> {
        if !self.track {
            return value.serialize(self.child());
        }
        let len = self.path.len();
        self.path.push('[');
        self.path.push_str(&index.to_string());
        self.path.push(']');
        value.serialize(self.child())?;
        self.path.truncate(len);
        Ok(())
    }
}

/// The walk inside a sequence, map or struct: the elements seen so far and the next map
/// key, as text.
struct Compound<'p> {
    finder: Finder<'p>,
    /// The length of the path before a variant's name was added (cut back at the end).
    outer: usize,
    index: usize,
    key: String,
}

impl<'p> Compound<'p> {
    fn new(finder: Finder<'p>, variant: Option<&str>) -> Compound<'p> {
        let outer = finder.path.len();
        if let Some(variant) = variant
            && finder.track
        {
            push_member(finder.path, variant);
        }
        Compound {
            finder,
            outer,
            index: 0,
            key: String::new(),
        }
    }

    fn next<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        let index = self.index;
        self.index += 1;
        self.finder.element(index, value)
    }

    fn end(self) -> Result<(), Stop> {
        self.finder.path.truncate(self.outer);
        Ok(())
    }
}

impl<'p> ser::Serializer for Finder<'p> {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Compound<'p>;
    type SerializeTuple = Compound<'p>;
    type SerializeTupleStruct = Compound<'p>;
    type SerializeTupleVariant = Compound<'p>;
    type SerializeMap = Compound<'p>;
    type SerializeStruct = Compound<'p>;
    type SerializeStructVariant = Compound<'p>;

    fn serialize_f32(self, v: f32) -> Result<(), Stop> {
        self.float(v.is_finite())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Stop> {
        self.float(v.is_finite())
    }
    fn serialize_bool(self, _: bool) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_i8(self, _: i8) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_i16(self, _: i16) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_i32(self, _: i32) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_i64(self, _: i64) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_i128(self, _: i128) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_u8(self, _: u8) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_u16(self, _: u16) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_u32(self, _: u32) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_u64(self, _: u64) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_u128(self, _: u128) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_char(self, _: char) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_str(self, _: &str) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Stop> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        value.serialize(self)
    }
    // serde_json writes `{"Variant": value}`.
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        self.member(variant, value)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'p>, Stop> {
        Ok(Compound::new(self, None))
    }
    fn serialize_tuple(self, _: usize) -> Result<Compound<'p>, Stop> {
        Ok(Compound::new(self, None))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Compound<'p>, Stop> {
        Ok(Compound::new(self, None))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'p>, Stop> {
        Ok(Compound::new(self, Some(variant)))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'p>, Stop> {
        Ok(Compound::new(self, None))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound<'p>, Stop> {
        Ok(Compound::new(self, None))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'p>, Stop> {
        Ok(Compound::new(self, Some(variant)))
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        self.next(value)
    }
    fn end(self) -> Result<(), Stop> {
        Compound::end(self)
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        self.next(value)
    }
    fn end(self) -> Result<(), Stop> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        self.next(value)
    }
    fn end(self) -> Result<(), Stop> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        self.next(value)
    }
    fn end(self) -> Result<(), Stop> {
        Compound::end(self)
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Stop;
    // serde_json writes a map key as a string: a string as it is, a number or a bool as its
    // text.
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Stop> {
        if !self.finder.track {
            return Ok(());
        }
        self.key = match serde_json::to_value(key) {
            Ok(serde_json::Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(_) => return Err(Stop::Other),
        };
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        let key = std::mem::take(&mut self.key);
        self.finder.member(&key, value)
    }
    fn end(self) -> Result<(), Stop> {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        self.finder.member(name, value)
    }
    fn end(self) -> Result<(), Stop> {
        Compound::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        self.finder.member(name, value)
    }
    fn end(self) -> Result<(), Stop> {
        Compound::end(self)
    }
}

#[cfg(test)]
mod tests {
    use super::non_finite_path;
    use std::collections::BTreeMap;

    fn find<T: serde::Serialize>(value: &T) -> Option<String> {
        let text = serde_json::to_string(value).expect("serializes");
        non_finite_path(value, &text)
    }

    #[derive(serde::Serialize)]
    struct Inner {
        x: f32,
    }

    #[derive(serde::Serialize)]
    struct Outer {
        name: String,
        none: Option<f64>,
        scores: Vec<f64>,
        #[serde(rename = "a b")]
        spaced: Inner,
        map: BTreeMap<String, f64>,
    }

    fn outer() -> Outer {
        Outer {
            name: "null".into(),
            none: None,
            scores: vec![1.0, 2.0, 3.0],
            spaced: Inner { x: 1.0 },
            map: BTreeMap::from([("k".to_string(), 1.0)]),
        }
    }

    #[test]
    fn finite_values_have_no_path_even_with_nulls_in_the_text() {
        assert_eq!(find(&outer()), None);
        assert_eq!(find(&1.5f64), None);
    }

    #[test]
    fn the_path_names_the_first_non_finite_float() {
        assert_eq!(find(&f64::NAN), Some(String::new()));
        let mut o = outer();
        o.scores[2] = f64::INFINITY;
        assert_eq!(find(&o).as_deref(), Some(".scores[2]"));
        let mut o = outer();
        o.spaced.x = f32::NEG_INFINITY;
        assert_eq!(find(&o).as_deref(), Some("[\"a b\"].x"));
        let mut o = outer();
        o.map.insert("z".into(), f64::NAN);
        assert_eq!(find(&o).as_deref(), Some(".map.z"));
        let mut o = outer();
        o.none = Some(f64::NAN);
        assert_eq!(find(&o).as_deref(), Some(".none"));
    }
}
