//! Semantic equality without building JSON trees: a value is serialized
//! into a compact token stream that already has [`crate::util::normalize`]
//! applied (object members that are null, empty arrays or objects that end
//! up empty are left out), so two values are semantically equal exactly
//! when their streams are equal.
//!
//! The stream follows serde_json's value model: integers compare by value
//! whatever their Rust type, floats apart from integers, non-finite floats
//! as null, bytes as arrays of numbers, enum variants as one-member objects.
//! Map keys must arrive in strictly increasing order (as `BTreeMap`s and
//! serde_json maps yield them); anything the stream cannot mirror exactly
//! (unordered maps, non-string keys of other kinds, raw JSON values) is
//! refused, and the caller falls back to comparing JSON trees.

use std::fmt;

use serde::ser::{self, Serialize};
use thiserror::Error;

/// Why a value has no token stream.
#[derive(Debug, Error)]
pub enum Unsupported {
    /// The value cannot be mirrored by the stream (see the module docs).
    #[error("value not supported by the semantic stream: {0}")]
    Shape(&'static str),
    /// The value's own `Serialize` implementation failed.
    #[error("{0}")]
    Custom(String),
}

impl ser::Error for Unsupported {
    fn custom<T: fmt::Display>(msg: T) -> Unsupported {
        Unsupported::Custom(msg.to_string())
    }
}

const NULL: u8 = b'n';
const TRUE: u8 = b't';
const FALSE: u8 = b'f';
const POS_INT: u8 = b'p';
const NEG_INT: u8 = b'm';
const FLOAT: u8 = b'd';
const STRING: u8 = b's';
const KEY: u8 = b'k';
const ARRAY_START: u8 = b'[';
const ARRAY_END: u8 = b']';
const OBJECT_START: u8 = b'{';
const OBJECT_END: u8 = b'}';

/// The name serde_json gives the struct wrapping a raw JSON value.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// Appends the normalized token stream of `value` to `out`.
pub fn write_stream<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), Unsupported> {
    let mut s = Stream {
        out,
        prev_keys: Vec::new(),
        depth: 0,
        last_key_len: 0,
    };
    value.serialize(&mut s)
}

struct Stream<'o> {
    out: &'o mut Vec<u8>,
    /// The last key of the map open at each nesting depth, to check order.
    prev_keys: Vec<Vec<u8>>,
    depth: usize,
    /// The length of the map key written last.
    last_key_len: usize,
}

impl Stream<'_> {
    /// Writes `tag`, the length of `s` (LEB128) and `s`.
    fn write_str_token(&mut self, tag: u8, s: &str) {
        self.out.push(tag);
        let mut len = s.len();
        while len >= 0x80 {
            self.out.push((len & 0x7f) as u8 | 0x80);
            len >>= 7;
        }
        self.out.push(len as u8);
        self.out.extend_from_slice(s.as_bytes());
    }

    fn write_u64(&mut self, v: u64) {
        self.out.push(POS_INT);
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    fn write_i64(&mut self, v: i64) {
        if v >= 0 {
            self.write_u64(v as u64);
        } else {
            self.out.push(NEG_INT);
            self.out.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn write_f64(&mut self, v: f64) {
        if v.is_finite() {
            // 0.0 and -0.0 compare equal as JSON numbers.
            let v = if v == 0.0 { 0.0 } else { v };
            self.out.push(FLOAT);
            self.out.extend_from_slice(&v.to_bits().to_le_bytes());
        } else {
            self.out.push(NULL);
        }
    }

    /// Drops the member written from `mark` on when its value (from
    /// `value_start` on) normalizes away: null, `[]` or `{}`.
    fn close_member(&mut self, mark: usize, value_start: usize) {
        let v = &self.out[value_start..];
        if v == [NULL] || v == [ARRAY_START, ARRAY_END] || v == [OBJECT_START, OBJECT_END] {
            self.out.truncate(mark);
        }
    }

    fn member<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        let mark = self.out.len();
        self.write_str_token(KEY, key);
        let value_start = self.out.len();
        value.serialize(&mut *self)?;
        self.close_member(mark, value_start);
        Ok(())
    }

    fn open_map(&mut self) {
        self.depth += 1;
        if self.prev_keys.len() < self.depth {
            self.prev_keys.push(Vec::new());
        }
        self.prev_keys[self.depth - 1].clear();
        self.out.push(OBJECT_START);
    }

    fn close_map(&mut self) {
        self.depth -= 1;
        self.out.push(OBJECT_END);
    }
}

/// An open array, object or enum variant wrapper.
struct Compound<'a, 'o> {
    s: &'a mut Stream<'o>,
    /// For variants: where the wrapping member starts and its value starts.
    variant: Option<(usize, usize)>,
    /// For maps: where the pending entry's key starts.
    entry_mark: usize,
}

impl<'a, 'o> Compound<'a, 'o> {
    fn new(s: &'a mut Stream<'o>, variant: Option<(usize, usize)>) -> Self {
        Compound {
            s,
            variant,
            entry_mark: 0,
        }
    }

    fn end_variant(self, close: u8) {
        self.s.out.push(close);
        if let Some((mark, value_start)) = self.variant {
            self.s.close_member(mark, value_start);
            self.s.out.push(OBJECT_END);
        }
    }
}

impl<'a, 'o> ser::Serializer for &'a mut Stream<'o> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Compound<'a, 'o>;
    type SerializeTuple = Compound<'a, 'o>;
    type SerializeTupleStruct = Compound<'a, 'o>;
    type SerializeTupleVariant = Compound<'a, 'o>;
    type SerializeMap = Compound<'a, 'o>;
    type SerializeStruct = Compound<'a, 'o>;
    type SerializeStructVariant = Compound<'a, 'o>;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        self.out.push(if v { TRUE } else { FALSE });
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), Unsupported> {
        self.write_i64(i64::from(v));
        Ok(())
    }

    fn serialize_i16(self, v: i16) -> Result<(), Unsupported> {
        self.write_i64(i64::from(v));
        Ok(())
    }

    fn serialize_i32(self, v: i32) -> Result<(), Unsupported> {
        self.write_i64(i64::from(v));
        Ok(())
    }

    fn serialize_i64(self, v: i64) -> Result<(), Unsupported> {
        self.write_i64(v);
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<(), Unsupported> {
        if let Ok(v) = i64::try_from(v) {
            self.write_i64(v);
        } else if let Ok(v) = u64::try_from(v) {
            self.write_u64(v);
        } else {
            return Err(Unsupported::Shape("i128 out of range"));
        }
        Ok(())
    }

    fn serialize_u8(self, v: u8) -> Result<(), Unsupported> {
        self.write_u64(u64::from(v));
        Ok(())
    }

    fn serialize_u16(self, v: u16) -> Result<(), Unsupported> {
        self.write_u64(u64::from(v));
        Ok(())
    }

    fn serialize_u32(self, v: u32) -> Result<(), Unsupported> {
        self.write_u64(u64::from(v));
        Ok(())
    }

    fn serialize_u64(self, v: u64) -> Result<(), Unsupported> {
        self.write_u64(v);
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<(), Unsupported> {
        let v = u64::try_from(v).map_err(|_| Unsupported::Shape("u128 out of range"))?;
        self.write_u64(v);
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<(), Unsupported> {
        self.write_f64(f64::from(v));
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), Unsupported> {
        self.write_f64(v);
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        let mut buf = [0u8; 4];
        self.write_str_token(STRING, v.encode_utf8(&mut buf));
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        self.write_str_token(STRING, v);
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Unsupported> {
        self.out.push(ARRAY_START);
        for b in v {
            self.write_u64(u64::from(*b));
        }
        self.out.push(ARRAY_END);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Unsupported> {
        self.out.push(NULL);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.out.push(NULL);
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Unsupported> {
        self.out.push(NULL);
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        self.write_str_token(STRING, variant);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.out.push(OBJECT_START);
        self.member(variant, value)?;
        self.out.push(OBJECT_END);
        Ok(())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a, 'o>, Unsupported> {
        self.out.push(ARRAY_START);
        Ok(Compound::new(self, None))
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'a, 'o>, Unsupported> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a, 'o>, Unsupported> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'o>, Unsupported> {
        self.out.push(OBJECT_START);
        let mark = self.out.len();
        self.write_str_token(KEY, variant);
        let value_start = self.out.len();
        self.out.push(ARRAY_START);
        Ok(Compound::new(self, Some((mark, value_start))))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a, 'o>, Unsupported> {
        self.open_map();
        Ok(Compound::new(self, None))
    }

    fn serialize_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'o>, Unsupported> {
        if name == RAW_VALUE_TOKEN {
            return Err(Unsupported::Shape("raw JSON value"));
        }
        self.out.push(OBJECT_START);
        Ok(Compound::new(self, None))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'o>, Unsupported> {
        self.out.push(OBJECT_START);
        let mark = self.out.len();
        self.write_str_token(KEY, variant);
        let value_start = self.out.len();
        self.out.push(OBJECT_START);
        Ok(Compound::new(self, Some((mark, value_start))))
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        value.serialize(&mut *self.s)
    }

    fn end(self) -> Result<(), Unsupported> {
        self.end_variant(ARRAY_END);
        Ok(())
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        value.serialize(&mut *self.s)
    }

    fn end(self) -> Result<(), Unsupported> {
        self.end_variant(ARRAY_END);
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        value.serialize(&mut *self.s)
    }

    fn end(self) -> Result<(), Unsupported> {
        self.end_variant(ARRAY_END);
        Ok(())
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        value.serialize(&mut *self.s)
    }

    fn end(self) -> Result<(), Unsupported> {
        self.end_variant(ARRAY_END);
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.s.member(key, value)
    }

    fn end(self) -> Result<(), Unsupported> {
        self.end_variant(OBJECT_END);
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.s.member(key, value)
    }

    fn end(self) -> Result<(), Unsupported> {
        self.end_variant(OBJECT_END);
        Ok(())
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unsupported> {
        self.entry_mark = self.s.out.len();
        key.serialize(KeyWriter { s: &mut *self.s })?;
        // Keys must come strictly sorted for the stream to be canonical.
        let depth = self.s.depth;
        let key_bytes = &self.s.out[self.s.out.len() - self.s.last_key_len..];
        let prev = &mut self.s.prev_keys[depth - 1];
        if !prev.is_empty() && key_bytes <= prev.as_slice() {
            return Err(Unsupported::Shape("map keys out of order"));
        }
        prev.clear();
        prev.extend_from_slice(key_bytes);
        // An empty key must still order before any later key.
        if prev.is_empty() {
            prev.push(0);
        }
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        let value_start = self.s.out.len();
        value.serialize(&mut *self.s)?;
        self.s.close_member(self.entry_mark, value_start);
        Ok(())
    }

    fn end(self) -> Result<(), Unsupported> {
        self.s.close_map();
        Ok(())
    }
}

/// Writes a map key as serde_json renders keys: strings as they are,
/// numbers and booleans as their decimal or literal text.
struct KeyWriter<'a, 'o> {
    s: &'a mut Stream<'o>,
}

impl KeyWriter<'_, '_> {
    fn text(self, v: &str) -> Result<(), Unsupported> {
        self.s.write_str_token(KEY, v);
        self.s.last_key_len = v.len();
        Ok(())
    }
}

fn key_unsupported<T>() -> Result<T, Unsupported> {
    Err(Unsupported::Shape("map key of an unsupported kind"))
}

impl ser::Serializer for KeyWriter<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = ser::Impossible<(), Unsupported>;
    type SerializeTuple = ser::Impossible<(), Unsupported>;
    type SerializeTupleStruct = ser::Impossible<(), Unsupported>;
    type SerializeTupleVariant = ser::Impossible<(), Unsupported>;
    type SerializeMap = ser::Impossible<(), Unsupported>;
    type SerializeStruct = ser::Impossible<(), Unsupported>;
    type SerializeStructVariant = ser::Impossible<(), Unsupported>;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        self.text(if v { "true" } else { "false" })
    }

    fn serialize_i8(self, v: i8) -> Result<(), Unsupported> {
        self.text(&v.to_string())
    }

    fn serialize_i16(self, v: i16) -> Result<(), Unsupported> {
        self.text(&v.to_string())
    }

    fn serialize_i32(self, v: i32) -> Result<(), Unsupported> {
        self.text(&v.to_string())
    }

    fn serialize_i64(self, v: i64) -> Result<(), Unsupported> {
        self.text(&v.to_string())
    }

    fn serialize_u8(self, v: u8) -> Result<(), Unsupported> {
        self.text(&v.to_string())
    }

    fn serialize_u16(self, v: u16) -> Result<(), Unsupported> {
        self.text(&v.to_string())
    }

    fn serialize_u32(self, v: u32) -> Result<(), Unsupported> {
        self.text(&v.to_string())
    }

    fn serialize_u64(self, v: u64) -> Result<(), Unsupported> {
        self.text(&v.to_string())
    }

    fn serialize_f32(self, _v: f32) -> Result<(), Unsupported> {
        key_unsupported()
    }

    fn serialize_f64(self, _v: f64) -> Result<(), Unsupported> {
        key_unsupported()
    }

    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        let mut buf = [0u8; 4];
        self.text(v.encode_utf8(&mut buf))
    }

    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        self.text(v)
    }

    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Unsupported> {
        key_unsupported()
    }

    fn serialize_none(self) -> Result<(), Unsupported> {
        key_unsupported()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<(), Unsupported> {
        key_unsupported()
    }

    fn serialize_unit(self) -> Result<(), Unsupported> {
        key_unsupported()
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Unsupported> {
        key_unsupported()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        self.text(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Unsupported> {
        key_unsupported()
    }

    fn serialize_seq(
        self,
        _len: Option<usize>,
    ) -> Result<ser::Impossible<(), Unsupported>, Unsupported> {
        key_unsupported()
    }

    fn serialize_tuple(self, _len: usize) -> Result<ser::Impossible<(), Unsupported>, Unsupported> {
        key_unsupported()
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<ser::Impossible<(), Unsupported>, Unsupported> {
        key_unsupported()
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<ser::Impossible<(), Unsupported>, Unsupported> {
        key_unsupported()
    }

    fn serialize_map(
        self,
        _len: Option<usize>,
    ) -> Result<ser::Impossible<(), Unsupported>, Unsupported> {
        key_unsupported()
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<ser::Impossible<(), Unsupported>, Unsupported> {
        key_unsupported()
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<ser::Impossible<(), Unsupported>, Unsupported> {
        key_unsupported()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde_json::json;

    use super::*;
    use crate::util::{normalize, to_json};

    fn stream<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, Unsupported> {
        let mut out = Vec::new();
        write_stream(v, &mut out).map(|()| out)
    }

    /// The stream agrees with comparing normalized JSON trees.
    fn agree(a: &serde_json::Value, b: &serde_json::Value) {
        let by_json = normalize(a.clone()) == normalize(b.clone());
        let by_stream = stream(a).unwrap() == stream(b).unwrap();
        assert_eq!(by_stream, by_json, "{a} vs {b}");
    }

    #[test]
    fn matches_json_normalization() {
        let cases = [
            (json!({"a": null}), json!({})),
            (json!({"a": []}), json!({})),
            (json!({"a": {"b": null, "c": []}}), json!({})),
            (
                json!({"a": {"b": null, "c": [null]}}),
                json!({"a": {"c": [null]}}),
            ),
            (json!({"a": [{}]}), json!({"a": [{"x": null}]})),
            (json!({"a": [{}]}), json!({})),
            (json!({"a": ""}), json!({})),
            (json!({"a": 0}), json!({})),
            (json!({"a": false}), json!({})),
            (json!({"a": 1}), json!({"a": 1.0})),
            (json!({"a": 1}), json!({"a": 1})),
            (json!({"a": -1}), json!({"a": -1})),
            (json!({"a": "x", "b": "y"}), json!({"a": "x", "b": "y"})),
            (json!({"a": "x", "b": "y"}), json!({"a": "x", "b": "z"})),
            (json!({"ab": "c"}), json!({"a": "bc"})),
            (json!([1, 2]), json!([2, 1])),
            (json!(null), json!({})),
            (json!(null), json!([])),
            (json!({"": 1}), json!({"": 1})),
            (
                json!({"k".repeat(200): "v".repeat(300)}),
                json!({"k".repeat(200): "v".repeat(300)}),
            ),
            (
                json!({"k".repeat(200): "v".repeat(300)}),
                json!({"k".repeat(200): "v".repeat(301)}),
            ),
            (
                json!({"k".repeat(200): "v".repeat(300)}),
                json!({"k".repeat(201): "v".repeat(300)}),
            ),
        ];
        for (a, b) in &cases {
            agree(a, b);
            agree(b, a);
            agree(a, a);
        }
    }

    #[test]
    fn integers_compare_by_value() {
        assert_eq!(stream(&5u8).unwrap(), stream(&5i64).unwrap());
        assert_eq!(stream(&-5i32).unwrap(), stream(&-5i64).unwrap());
        assert_ne!(stream(&5i64).unwrap(), stream(&5.0f64).unwrap());
        assert_eq!(stream(&f64::NAN).unwrap(), stream(&()).unwrap());
        assert_eq!(stream(&0.0f64).unwrap(), stream(&-0.0f64).unwrap());
    }

    #[test]
    fn typed_values() {
        let a: BTreeMap<String, Option<Vec<i32>>> =
            [("x".to_string(), Some(vec![])), ("y".to_string(), None)].into();
        let b: BTreeMap<String, Option<Vec<i32>>> = BTreeMap::new();
        assert_eq!(stream(&a).unwrap(), stream(&b).unwrap());
        assert_eq!(
            normalize(to_json(&a)) == normalize(to_json(&b)),
            stream(&a).unwrap() == stream(&b).unwrap()
        );
    }

    #[test]
    fn unordered_maps_are_refused() {
        let m: HashMap<String, i32> = (0..64).map(|i| (format!("k{i}"), i)).collect();
        assert!(stream(&m).is_err());
    }
}
