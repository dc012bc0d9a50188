//! Helpers on objects as JSON: metadata access, timestamps and UIDs, the stored form
//! (without `resourceVersion`) and the served form (with it).
//!
//! Stored values never carry `metadata.resourceVersion`: the store's revision is the
//! resource version. [`with_resource_version`] splices it into stored bytes with a small
//! scanner that finds the top-level `metadata` object, so serving a cached object costs
//! a copy rather than a parse and re-serialization.

use bytes::Bytes;
use serde_json::{json, Map, Value};

/// Now, as Kubernetes writes timestamps (`2024-05-01T10:00:00Z`).
pub fn now_rfc3339() -> String {
    format_time(jiff::Timestamp::now())
}

/// A timestamp as Kubernetes writes it (second precision, UTC).
pub fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses a Kubernetes timestamp.
pub fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

/// A new random UID.
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Five random characters from upstream's alphabet for `generateName`.
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// `metadata` of an object (created if missing).
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.name`.
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name")
}

/// `metadata.namespace`.
pub fn namespace(obj: &Value) -> &str {
    meta_str(obj, "namespace")
}

/// `metadata.resourceVersion` parsed, if present and numeric.
pub fn resource_version(obj: &Value) -> Option<i64> {
    let rv = meta_str(obj, "resourceVersion");
    (!rv.is_empty()).then(|| rv.parse().ok()).flatten()
}

/// The bytes to store: the object without `resourceVersion` and `selfLink`.
pub fn to_stored(obj: &Value) -> Bytes {
    let mut copy;
    let obj = if obj
        .get("metadata")
        .is_some_and(|m| m.get("resourceVersion").is_some() || m.get("selfLink").is_some())
    {
        copy = obj.clone();
        let m = meta_mut(&mut copy);
        m.remove("resourceVersion");
        m.remove("selfLink");
        &copy
    } else {
        obj
    };
    Bytes::from(serde_json::to_vec(obj).unwrap_or_default())
}

/// Sets `metadata.resourceVersion` on a parsed object.
pub fn set_resource_version(obj: &mut Value, rv: i64) {
    meta_mut(obj).insert("resourceVersion".into(), json!(rv.to_string()));
}

/// Stored bytes with `metadata.resourceVersion` set to `rv`.
pub fn with_resource_version(stored: &[u8], rv: i64) -> Bytes {
    if let Some(b) = splice_resource_version(stored, rv) {
        return Bytes::from(b);
    }
    match serde_json::from_slice::<Value>(stored) {
        Ok(mut v) => {
            set_resource_version(&mut v, rv);
            Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
        }
        Err(_) => Bytes::copy_from_slice(stored),
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\n' | b'\r' | b'\t') {
        i += 1;
    }
    i
}

/// Index just past the JSON string starting at `i` (which must be a quote).
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Index just past the JSON value starting at `i`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
            {
                j += 1;
            }
            Some(j)
        }
    }
}

/// Inserts `"resourceVersion":"<rv>"` at the start of the top-level `metadata` object.
fn splice_resource_version(b: &[u8], rv: i64) -> Option<Vec<u8>> {
    let field = format!("\"resourceVersion\":\"{rv}\"");
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        match b.get(i)? {
            b'}' => {
                // No metadata at all: add one before the closing brace.
                let mut out = Vec::with_capacity(b.len() + field.len() + 16);
                out.extend_from_slice(&b[..i]);
                if b[..i].iter().rev().find(|c| !c.is_ascii_whitespace()) != Some(&b'{') {
                    out.push(b',');
                }
                out.extend_from_slice(b"\"metadata\":{");
                out.extend_from_slice(field.as_bytes());
                out.push(b'}');
                out.extend_from_slice(&b[i..]);
                return Some(out);
            }
            b'"' => {}
            _ => return None,
        }
        let key_start = i;
        let key_end = skip_string(b, i)?;
        let key = &b[key_start + 1..key_end - 1];
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        if key == b"metadata" {
            if b.get(i) != Some(&b'{') {
                return None;
            }
            let body = skip_ws(b, i + 1);
            let empty = b.get(body) == Some(&b'}');
            let mut out = Vec::with_capacity(b.len() + field.len() + 1);
            out.extend_from_slice(&b[..=i]);
            out.extend_from_slice(field.as_bytes());
            if !empty {
                out.push(b',');
            }
            out.extend_from_slice(&b[i + 1..]);
            return Some(out);
        }
        i = skip_ws(b, skip_value(b, i)?);
        match b.get(i)? {
            b',' => i += 1,
            b'}' => continue,
            _ => return None,
        }
    }
}

/// An object's JSON with its lists left out: everything label and field selectors look
/// at (labels, and field paths, which never cross a list), parsed without building
/// the lists (containers, conditions, managed fields) that make up most of an object.
pub fn without_lists(json: &[u8]) -> Value {
    let mut de = serde_json::Deserializer::from_slice(json);
    match serde::de::DeserializeSeed::deserialize(NoLists, &mut de) {
        Ok(Some(v)) => v,
        _ => Value::Null,
    }
}

/// Parses one JSON value, skipping lists (`None` for a list).
#[derive(Clone, Copy)]
struct NoLists;

impl<'de> serde::de::DeserializeSeed<'de> for NoLists {
    type Value = Option<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for NoLists {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Some(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Some(Value::Null))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if let Some(v) = map.next_value_seed(NoLists)? {
                out.insert(key, v);
            }
        }
        Ok(Some(Value::Object(out)))
    }
}

/// Labels of an object.
pub fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata")?.get("labels")?.as_object()
}

/// The GVK-qualified `kind` and `apiVersion` fields of an object.
pub fn type_meta(obj: &Value) -> (&str, &str) {
    (
        obj.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
        obj.get("kind").and_then(Value::as_str).unwrap_or(""),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rv_of(b: &[u8]) -> String {
        let v: Value = serde_json::from_slice(b).unwrap();
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn splices_into_top_level_metadata_only() {
        let cases = [
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{}}"#,
            r#"{"aaa":{"metadata":{"x":1}},"metadata":{"name":"a"}}"#,
            r#"{"a":"\"metadata\":{","metadata":{}}"#,
            r#"{"kind":"X"}"#,
            r#"{}"#,
            r#" { "metadata" : { "name" : "a" } } "#,
            r#"{"a":[1,{"b":"]}"}],"metadata":{"name":"x"}}"#,
        ];
        for c in cases {
            let out = with_resource_version(c.as_bytes(), 42);
            assert_eq!(rv_of(&out), "42", "{c}");
            let v: Value = serde_json::from_slice(&out).unwrap();
            let orig: Value = serde_json::from_str(c).unwrap();
            if let Some(n) = orig["metadata"].get("name") {
                assert_eq!(&v["metadata"]["name"], n);
            }
            if let Some(aaa) = orig.get("aaa") {
                assert_eq!(&v["aaa"], aaa);
            }
        }
    }

    #[test]
    fn without_lists_keeps_maps_and_scalars() {
        let obj = json!({
            "metadata": {"name": "a", "labels": {"app": "x"}, "managedFields": [{"manager": "m"}]},
            "spec": {"nodeName": "n", "containers": [{"name": "c"}], "hostNetwork": true,
                     "priority": -3, "weight": 1.5, "x": null},
            "status": {"phase": "Running", "conditions": [{"type": "Ready"}]},
        });
        let got = without_lists(&serde_json::to_vec(&obj).unwrap());
        assert_eq!(
            got,
            json!({
                "metadata": {"name": "a", "labels": {"app": "x"}},
                "spec": {"nodeName": "n", "hostNetwork": true, "priority": -3, "weight": 1.5,
                         "x": null},
                "status": {"phase": "Running"},
            })
        );
        assert_eq!(without_lists(b"[1,2]"), Value::Null);
        assert_eq!(without_lists(b"{bad"), Value::Null);
    }

    #[test]
    fn stored_form_drops_resource_version() {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": "5", "selfLink": "/x"}});
        let stored: Value = serde_json::from_slice(&to_stored(&obj)).unwrap();
        assert_eq!(stored, json!({"metadata": {"name": "a"}}));
    }

    #[test]
    fn suffixes_use_upstream_alphabet() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }
}
