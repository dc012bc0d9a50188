//! The OpenAPI v2 document in protobuf form (gnostic's `openapi.v2.Document`), which
//! is how kubectl 1.27 and older client-go read `/openapi/v2`. The encoder walks the
//! JSON document; vendor extensions and defaults travel as `Any.yaml` text, for which
//! compact JSON (valid YAML) is used.

use serde_json::{Map, Value};

/// A minimal protobuf writer.
#[derive(Default)]
struct Buf(Vec<u8>);

impl Buf {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }
    fn boolean(&mut self, field: u32, b: bool) {
        if b {
            self.key(field, 0);
            self.varint(1);
        }
    }
    fn double(&mut self, field: u32, v: f64) {
        if v != 0.0 {
            self.key(field, 1);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }
    fn message(&mut self, field: u32, m: Buf) {
        self.bytes(field, &m.0);
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn strings(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `Any { yaml }` holding a JSON value.
fn any(v: &Value) -> Buf {
    let mut b = Buf::default();
    b.string(2, &serde_json::to_string(v).unwrap_or_default());
    b
}

/// Vendor extensions (`x-…` keys) as repeated NamedAny at `field`.
fn extensions(out: &mut Buf, field: u32, m: &Map<String, Value>) {
    for (k, v) in m.iter().filter(|(k, _)| k.starts_with("x-")) {
        let mut named = Buf::default();
        named.string(1, k);
        named.message(2, any(v));
        out.message(field, named);
    }
}

fn schema(v: &Value) -> Buf {
    let mut b = Buf::default();
    let Some(m) = v.as_object() else { return b };
    b.string(1, s(v, "$ref"));
    b.string(2, s(v, "format"));
    b.string(3, s(v, "title"));
    b.string(4, s(v, "description"));
    if let Some(d) = m.get("default") {
        b.message(5, any(d));
    }
    if let Some(n) = m.get("maximum").and_then(Value::as_f64) {
        b.double(7, n);
    }
    if let Some(n) = m.get("minimum").and_then(Value::as_f64) {
        b.double(9, n);
    }
    b.string(13, s(v, "pattern"));
    for r in strings(v, "required") {
        b.string(19, &r);
    }
    if let Some(e) = m.get("enum").and_then(Value::as_array) {
        for x in e {
            b.message(20, any(x));
        }
    }
    match m.get("additionalProperties") {
        Some(Value::Bool(flag)) => {
            let mut ap = Buf::default();
            ap.key(2, 0);
            ap.varint(u64::from(*flag));
            b.message(21, ap);
        }
        Some(ap @ Value::Object(_)) => {
            let mut item = Buf::default();
            item.message(1, schema(ap));
            b.message(21, item);
        }
        _ => {}
    }
    match m.get("type") {
        Some(Value::String(t)) => {
            let mut ti = Buf::default();
            ti.string(1, t);
            b.message(22, ti);
        }
        Some(Value::Array(ts)) => {
            let mut ti = Buf::default();
            for t in ts.iter().filter_map(Value::as_str) {
                ti.string(1, t);
            }
            b.message(22, ti);
        }
        _ => {}
    }
    if let Some(items) = m.get("items") {
        let mut ii = Buf::default();
        match items {
            Value::Array(a) => a.iter().for_each(|x| ii.message(1, schema(x))),
            x => ii.message(1, schema(x)),
        }
        b.message(23, ii);
    }
    if let Some(all) = m.get("allOf").and_then(Value::as_array) {
        for x in all {
            b.message(24, schema(x));
        }
    }
    if let Some(props) = m.get("properties").and_then(Value::as_object) {
        let mut p = Buf::default();
        for (k, x) in props {
            let mut named = Buf::default();
            named.string(1, k);
            named.message(2, schema(x));
            p.message(1, named);
        }
        b.message(25, p);
    }
    if let Some(ro) = m.get("readOnly").and_then(Value::as_bool) {
        b.boolean(27, ro);
    }
    extensions(&mut b, 31, m);
    b
}

fn parameter(p: &Value) -> Buf {
    let mut param = Buf::default();
    if s(p, "in") == "body" {
        let mut body = Buf::default();
        body.string(1, s(p, "description"));
        body.string(2, s(p, "name"));
        body.string(3, "body");
        body.boolean(4, p["required"].as_bool().unwrap_or(false));
        body.message(5, schema(&p["schema"]));
        param.message(1, body);
    } else {
        let path = s(p, "in") == "path";
        let mut sub = Buf::default();
        sub.boolean(1, p["required"].as_bool().unwrap_or(false));
        sub.string(2, s(p, "in"));
        sub.string(3, s(p, "description"));
        sub.string(4, s(p, "name"));
        if path {
            sub.string(5, s(p, "type"));
            sub.boolean(19, p["uniqueItems"].as_bool().unwrap_or(false));
        } else {
            sub.string(6, s(p, "type"));
            sub.boolean(20, p["uniqueItems"].as_bool().unwrap_or(false));
        }
        let mut non_body = Buf::default();
        non_body.message(
            match s(p, "in") {
                "header" => 1,
                "formData" => 2,
                "path" => 4,
                _ => 3,
            },
            sub,
        );
        param.message(2, non_body);
    }
    let mut item = Buf::default();
    item.message(1, param);
    item
}

fn operation(op: &Value) -> Buf {
    let mut b = Buf::default();
    for t in strings(op, "tags") {
        b.string(1, &t);
    }
    b.string(3, s(op, "description"));
    b.string(5, s(op, "operationId"));
    for p in strings(op, "produces") {
        b.string(6, &p);
    }
    for c in strings(op, "consumes") {
        b.string(7, &c);
    }
    for p in op["parameters"].as_array().into_iter().flatten() {
        b.message(8, parameter(p));
    }
    if let Some(rs) = op["responses"].as_object() {
        let mut responses = Buf::default();
        for (code, r) in rs {
            let mut resp = Buf::default();
            resp.string(1, s(r, "description"));
            if let Some(sch) = r.get("schema") {
                let mut item = Buf::default();
                item.message(1, schema(sch));
                resp.message(2, item);
            }
            let mut value = Buf::default();
            value.message(1, resp);
            let mut named = Buf::default();
            named.string(1, code);
            named.message(2, value);
            responses.message(1, named);
        }
        b.message(9, responses);
    }
    for sch in strings(op, "schemes") {
        b.string(10, &sch);
    }
    if let Some(m) = op.as_object() {
        extensions(&mut b, 13, m);
    }
    b
}

/// Encodes an OpenAPI v2 JSON document as gnostic's protobuf `Document`.
pub fn encode(doc: &Value) -> Vec<u8> {
    let mut b = Buf::default();
    b.string(1, s(doc, "swagger"));
    let mut info = Buf::default();
    info.string(1, s(&doc["info"], "title"));
    info.string(2, s(&doc["info"], "version"));
    b.message(2, info);
    if let Some(paths) = doc["paths"].as_object() {
        let mut p = Buf::default();
        for (path, item) in paths {
            let mut pi = Buf::default();
            for (verb, field) in [
                ("get", 2),
                ("put", 3),
                ("post", 4),
                ("delete", 5),
                ("options", 6),
                ("head", 7),
                ("patch", 8),
            ] {
                if let Some(op) = item.get(verb) {
                    pi.message(field, operation(op));
                }
            }
            for param in item["parameters"].as_array().into_iter().flatten() {
                pi.message(9, parameter(param));
            }
            let mut named = Buf::default();
            named.string(1, path);
            named.message(2, pi);
            p.message(2, named);
        }
        b.message(8, p);
    }
    if let Some(defs) = doc["definitions"].as_object() {
        let mut d = Buf::default();
        for (name, sch) in defs {
            let mut named = Buf::default();
            named.string(1, name);
            named.message(2, schema(sch));
            d.message(1, named);
        }
        b.message(9, d);
    }
    for req in doc["security"].as_array().into_iter().flatten() {
        let mut sr = Buf::default();
        for (name, scopes) in req.as_object().into_iter().flatten() {
            let mut arr = Buf::default();
            for sc in scopes
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                arr.string(1, sc);
            }
            let mut named = Buf::default();
            named.string(1, name);
            named.message(2, arr);
            sr.message(1, named);
        }
        b.message(12, sr);
    }
    if let Some(sd) = doc["securityDefinitions"].as_object() {
        let mut defs = Buf::default();
        for (name, d) in sd {
            let mut key = Buf::default();
            key.string(1, s(d, "type"));
            key.string(2, s(d, "name"));
            key.string(3, s(d, "in"));
            key.string(4, s(d, "description"));
            let mut item = Buf::default();
            item.message(2, key);
            let mut named = Buf::default();
            named.string(1, name);
            named.message(2, item);
            defs.message(1, named);
        }
        b.message(13, defs);
    }
    b.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_known_wire_bytes() {
        // swagger = "2.0" is field 1, length-delimited: 0x0a 0x03 '2' '.' '0'.
        let out = encode(&json!({"swagger": "2.0"}));
        assert_eq!(&out[..5], &[0x0a, 0x03, b'2', b'.', b'0']);
        // A definition with a vendor extension carries it as Any.yaml text.
        let out = encode(
            &json!({"definitions": {"a.B": {"type": "object", "x-kubernetes-map-type": "atomic"}}}),
        );
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("a.B"));
        assert!(text.contains("x-kubernetes-map-type"));
        assert!(text.contains("\"atomic\""));
    }

    #[test]
    fn whole_document_encodes() {
        let doc = crate::openapi::v2(&crate::defs::definitions());
        let out = encode(&doc);
        assert!(out.len() > 100_000, "{} bytes", out.len());
    }
}
