//! Small, forgiving accessors over `serde_json::Value` objects.
//!
//! Printers read served objects whose fields may be absent; every accessor here
//! falls back to the zero value Go would see for a missing field ("" for
//! strings, 0 for integers, empty for lists and maps) instead of failing.

use jiff::Timestamp;
use serde_json::{Map, Value};

/// Follows `path` through nested objects; `None` when a step is missing or null.
pub(crate) fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.as_object()?.get(*key)?;
    }
    if cur.is_null() {
        None
    } else {
        Some(cur)
    }
}

/// The string at `path`, or "" when absent or not a string.
pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The string at `path` if present (even when empty), like a Go `*string`.
pub(crate) fn opt_str<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path).and_then(Value::as_str)
}

/// The integer at `path`, if present.
pub(crate) fn opt_int(v: &Value, path: &[&str]) -> Option<i64> {
    let x = get(v, path)?;
    x.as_i64().or_else(|| x.as_f64().map(|f| f as i64))
}

/// The integer at `path`, or 0.
pub(crate) fn int_at(v: &Value, path: &[&str]) -> i64 {
    opt_int(v, path).unwrap_or(0)
}

/// The boolean at `path`, if present.
pub(crate) fn opt_bool(v: &Value, path: &[&str]) -> Option<bool> {
    get(v, path).and_then(Value::as_bool)
}

/// The boolean at `path`, or false.
pub(crate) fn bool_at(v: &Value, path: &[&str]) -> bool {
    opt_bool(v, path).unwrap_or(false)
}

/// The list at `path`, or an empty slice.
pub(crate) fn arr_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The object at `path`, if present.
pub(crate) fn obj_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Map<String, Value>> {
    get(v, path).and_then(Value::as_object)
}

/// Number of entries of the map (or list) at `path`; 0 when absent.
pub(crate) fn len_at(v: &Value, path: &[&str]) -> usize {
    match get(v, path) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

/// `metadata.name`.
pub(crate) fn name(v: &Value) -> &str {
    str_at(v, &["metadata", "name"])
}

/// A string annotation of the object, if present.
pub(crate) fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    obj_at(v, &["metadata", "annotations"])
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
}

/// The timestamp at `path` (RFC 3339). `None` when absent, unparsable, or
/// Go's zero time (`0001-01-01T00:00:00Z`), which upstream treats as unset.
pub(crate) fn time_at(v: &Value, path: &[&str]) -> Option<Timestamp> {
    parse_time(get(v, path)?.as_str()?)
}

/// Parses an RFC 3339 timestamp; `None` for junk and for Go's zero time.
pub(crate) fn parse_time(s: &str) -> Option<Timestamp> {
    let t: Timestamp = s.parse().ok()?;
    if t.as_second() == GO_ZERO_TIME_SECONDS && t.subsec_nanosecond() == 0 {
        None
    } else {
        Some(t)
    }
}

/// Whether the object carries a deletion timestamp.
pub(crate) fn is_deleting(v: &Value) -> bool {
    get(v, &["metadata", "deletionTimestamp"]).is_some()
}

/// Unix seconds of Go's zero `time.Time` (January 1, year 1, UTC).
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// Renders an IntOrString JSON value the way Go's `IntOrString.String` does.
pub(crate) fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n
            .as_i64()
            .map(|i| i.to_string())
            .unwrap_or_else(|| n.to_string()),
        other => other.to_string(),
    }
}

/// String cell.
pub(crate) fn s(x: impl Into<String>) -> Value {
    Value::String(x.into())
}

/// Integer cell.
pub(crate) fn n(x: i64) -> Value {
    Value::from(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accessors_default_to_go_zero_values() {
        let v = json!({"a": {"b": "x", "n": 3, "z": null, "l": [1, 2]}});
        assert_eq!(str_at(&v, &["a", "b"]), "x");
        assert_eq!(str_at(&v, &["a", "missing"]), "");
        assert_eq!(int_at(&v, &["a", "n"]), 3);
        assert_eq!(int_at(&v, &["a", "z"]), 0);
        assert!(get(&v, &["a", "z"]).is_none());
        assert_eq!(arr_at(&v, &["a", "l"]).len(), 2);
        assert_eq!(len_at(&v, &["a"]), 4);
    }

    #[test]
    fn go_zero_time_is_unset() {
        let v = json!({"t": "0001-01-01T00:00:00Z", "u": "2024-01-01T00:00:00Z"});
        assert!(time_at(&v, &["t"]).is_none());
        assert!(time_at(&v, &["u"]).is_some());
    }

    #[test]
    fn int_or_string_forms() {
        assert_eq!(int_or_string(&json!(3)), "3");
        assert_eq!(int_or_string(&json!("25%")), "25%");
    }
}
