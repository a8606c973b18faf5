//! Finding a value about to be written that a document cannot hold exactly: a NaN or
//! infinite float, or an integer beyond `i64::MIN ..= u64::MAX`.
//!
//! JSON has no form for NaN or the infinities, and serde_json writes them as `null`
//! without an error, so a model holding one would be stored and then fail every later
//! load. serde_json writes an `i128` or `u128` with all its digits, but RedisJSON holds
//! integers only within `i64::MIN ..= u64::MAX` (verified on RedisJSON 2.8) and stores a
//! wider one as a float (`1.8446744073709552e19`), which then fails every load as that
//! integer type. The encoders serialize as usual and, only when the text holds `null` or a
//! run of 19 digits at all, walk the value once more with [`Finder`], a serializer that
//! writes nothing and stops at the first such value, tracking its JSONPath. A document
//! without either costs one substring search and one skipping scan for digits.

use std::fmt;

use serde::Serialize;
use serde::ser;

use crate::path::push_member_text;

/// What a document cannot hold, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// The JSONPath of the value, relative to the value walked (`""` for the value itself,
    /// `.scores[2]`, `["a b"].x`).
    pub(crate) path: String,
    /// Why it cannot be held.
    pub(crate) what: Unholdable,
}

/// Why a value cannot be written into a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unholdable {
    /// A NaN or infinite float.
    NonFinite,
    /// An integer of this Rust type (`i128`, `u128`) outside `i64::MIN ..= u64::MAX`.
    TooWide(&'static str),
}

/// The first value in `value` that a document cannot hold exactly, when `text`, the value's
/// serde_json form, could hide one ([`may_hide`]). `None` when there is none.
pub(crate) fn non_finite_path<T: Serialize + ?Sized>(value: &T, text: &str) -> Option<Found> {
    if !may_hide(text) {
        return None;
    }
    find(value)
}

/// Whether `text`, serde_json's form of a value, could hold something a document cannot:
/// a non-finite float is written as `null`, and an integer beyond `i64`/`u64` has at least
/// 19 digits in a row. Without either, there is none.
pub(crate) fn may_hide(text: &str) -> bool {
    text.contains("null") || has_digit_run(text.as_bytes(), WIDE_DIGITS)
}

/// The fewest digits of an integer outside `i64::MIN ..= u64::MAX` (`-9223372036854775809`).
const WIDE_DIGITS: usize = 19;

/// Whether `bytes` holds `n` ASCII digits in a row. Looks at the last byte of each window
/// of `n` first, so text without long numbers is skipped `n` bytes at a time.
fn has_digit_run(bytes: &[u8], n: usize) -> bool {
    let mut end = n - 1;
    while end < bytes.len() {
        if !bytes[end].is_ascii_digit() {
            end += n;
            continue;
        }
        let run = bytes[..=end]
            .iter()
            .rev()
            .take(n)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if run == n {
            return true;
        }
        // The run ending here starts at `end + 1 - run`; a window of `n` digits that holds
        // any of it starts there too, so it ends at `end + 1 - run + n - 1`.
        end = end - run + n;
    }
    false
}

/// The first value in `value` that a document cannot hold exactly, found by walking it
/// (for a value that has no serde_json text to search first).
pub(crate) fn find<T: Serialize + ?Sized>(value: &T) -> Option<Found> {
    // A first walk only looks (most nulls are `None`s); a second one tracks the path.
    let mut path = String::new();
    let found = value.serialize(Finder {
        path: &mut path,
        track: false,
    });
    if !matches!(found, Err(Stop::Found(..))) {
        return None;
    }
    match value.serialize(Finder {
        path: &mut path,
        track: true,
    }) {
        Err(Stop::Found(path, what)) => Some(Found { path, what }),
        _ => None,
    }
}

/// Why the walk stopped: a value a document cannot hold at this path, or the value's own
/// serializer failed (serde_json would then have failed first, so it does not happen).
#[derive(Debug)]
enum Stop {
    Found(String, Unholdable),
    Other,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Found(path, _) => write!(f, "a value a document cannot hold at {path}"),
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

/// A serializer that writes nothing and fails at the first float that is not finite or
/// integer too wide for a document.
struct Finder<'p> {
    /// The path of the value being serialized; children append to it and cut it back.
    path: &'p mut String,
    /// Whether to keep `path` (and read map keys) at all.
    track: bool,
}

impl Finder<'_> {
    fn float(&self, finite: bool) -> Result<(), Stop> {
        if finite {
            Ok(())
        } else {
            Err(Stop::Found(self.path.clone(), Unholdable::NonFinite))
        }
    }

    fn integer(&self, fits: bool, kind: &'static str) -> Result<(), Stop> {
        if fits {
            Ok(())
        } else {
            Err(Stop::Found(self.path.clone(), Unholdable::TooWide(kind)))
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
        push_member_text(self.path, name);
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
            push_member_text(finder.path, variant);
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
    fn serialize_i128(self, v: i128) -> Result<(), Stop> {
        self.integer(
            (i128::from(i64::MIN)..=i128::from(u64::MAX)).contains(&v),
            "i128",
        )
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
    fn serialize_u128(self, v: u128) -> Result<(), Stop> {
        self.integer(v <= u128::from(u64::MAX), "u128")
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
    use super::{Unholdable, has_digit_run, non_finite_path};
    use std::collections::BTreeMap;

    fn find<T: serde::Serialize>(value: &T) -> Option<String> {
        let text = serde_json::to_string(value).expect("serializes");
        non_finite_path(value, &text).map(|found| found.path)
    }

    fn too_wide<T: serde::Serialize>(value: &T) -> Option<(String, Unholdable)> {
        let text = serde_json::to_string(value).expect("serializes");
        non_finite_path(value, &text).map(|found| (found.path, found.what))
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

    #[test]
    fn integers_beyond_what_a_document_holds_are_found_with_their_path() {
        let edges: [i128; 4] = [i64::MIN.into(), u64::MAX.into(), 0, -1];
        for v in edges {
            assert_eq!(too_wide(&v), None, "{v}");
            assert_eq!(too_wide(&vec![v, v]), None, "{v}");
        }
        assert_eq!(too_wide(&u128::from(u64::MAX)), None);
        let low = i128::from(i64::MIN) - 1;
        let high = i128::from(u64::MAX) + 1;
        assert_eq!(
            too_wide(&vec![0, low]),
            Some(("[1]".into(), Unholdable::TooWide("i128")))
        );
        assert_eq!(
            too_wide(&BTreeMap::from([("a b".to_string(), high)])),
            Some(("[\"a b\"]".into(), Unholdable::TooWide("i128")))
        );
        assert_eq!(
            too_wide(&Some(u128::MAX)),
            Some((String::new(), Unholdable::TooWide("u128")))
        );
        // A long digit run in a string only costs a walk, never an error.
        assert_eq!(too_wide(&"12345678901234567890123"), None);
    }

    #[test]
    fn digit_runs_are_found_wherever_they_are() {
        for n in [1, 2, 5, 19] {
            for len in 0..60 {
                for start in 0..len {
                    for run in 0..=(len - start) {
                        let mut text = vec![b'x'; len];
                        for b in &mut text[start..start + run] {
                            *b = b'7';
                        }
                        assert_eq!(
                            has_digit_run(&text, n),
                            run >= n,
                            "n {n} len {len} start {start} run {run}"
                        );
                    }
                }
            }
        }
    }
}
