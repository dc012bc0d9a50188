//! Field paths and field-level validation errors, mirroring upstream's
//! `k8s.io/apimachinery/pkg/util/validation/field`, plus the aggregate and
//! `StatusReasonInvalid` messages built from them (`errors.NewInvalid`).
//!
//! Bad values are `serde_json::Value`s. They render as upstream renders them:
//! strings Go-quoted (`"Foo_"`), numbers and booleans bare, and `null`,
//! arrays and objects as compact JSON (upstream's rendering of composite
//! values since it switched from Go syntax to JSON). A `None` bad value is
//! upstream's "omitted" value: only the error type is printed.

use std::collections::HashSet;
use std::fmt;

use serde_json::{json, Value};

use crate::gofmt;

/// Bytes of rendered path kept inline before a path spills to the heap.
/// Nearly every real field path (`spec.containers[0].readinessProbe.httpGet.port`)
/// fits, so extending a path costs a small copy and no allocation.
const INLINE_CAP: usize = 94;

/// The storage of a rendered, non-nil path.
#[derive(Clone)]
enum Repr {
    /// Short paths: `len` bytes of `buf` hold the rendering; `len == 0` is
    /// the nil path (a non-nil path never renders empty).
    Inline { len: u8, buf: [u8; INLINE_CAP] },
    /// Longer paths.
    Heap(String),
}

/// A path to a field inside an object, rendered like upstream's
/// `*field.Path`: `spec.containers[0].image`, `metadata.labels[app]`.
///
/// `Path::default()` is upstream's nil path, which renders as `<nil>`;
/// `child`, `index` and `key` on it start a fresh path.
///
/// A path is kept in its rendered form, inline for paths up to 94 bytes,
/// so building paths for fields that turn out valid allocates nothing.
/// Equality and hashing compare the rendering.
#[derive(Clone)]
pub struct Path {
    repr: Repr,
}

impl Default for Path {
    fn default() -> Path {
        Path {
            repr: Repr::Inline {
                len: 0,
                buf: [0; INLINE_CAP],
            },
        }
    }
}

/// The decimal digits of `n`, written right-aligned into `buf`.
fn usize_digits(mut n: usize, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

impl Path {
    /// A root path for the named field (upstream `field.NewPath`).
    pub fn new(name: &str) -> Path {
        Path::default().child(name)
    }

    /// The path of a named sub-field.
    pub fn child(&self, name: &str) -> Path {
        if name.is_empty() {
            // Upstream renders an empty name like an empty subscript.
            self.extended(&["[]"])
        } else if self.is_empty() {
            self.extended(&[name])
        } else {
            self.extended(&[".", name])
        }
    }

    /// The path of a list element.
    pub fn index(&self, index: usize) -> Path {
        let mut buf = [0u8; 20];
        self.extended(&["[", usize_digits(index, &mut buf), "]"])
    }

    /// The path of a map entry.
    pub fn key(&self, key: &str) -> Path {
        self.extended(&["[", key, "]"])
    }

    /// Whether this is the nil path (no segments).
    pub fn is_empty(&self) -> bool {
        matches!(self.repr, Repr::Inline { len: 0, .. })
    }

    /// The rendered path; `<nil>` for the nil path (the same text as
    /// `Display`, without allocating).
    pub fn as_str(&self) -> &str {
        match &self.repr {
            Repr::Inline { len: 0, .. } => "<nil>",
            Repr::Inline { len, buf } => {
                // Only whole `&str`s are ever copied in, so this is UTF-8.
                std::str::from_utf8(&buf[..usize::from(*len)]).unwrap_or("")
            }
            Repr::Heap(s) => s,
        }
    }

    /// The rendered bytes of a non-nil path (empty for the nil path).
    fn bytes(&self) -> &[u8] {
        match &self.repr {
            Repr::Inline { len, buf } => &buf[..usize::from(*len)],
            Repr::Heap(s) => s.as_bytes(),
        }
    }

    /// This path with `parts` appended to its rendering.
    fn extended(&self, parts: &[&str]) -> Path {
        if let Repr::Inline { len, buf } = &self.repr {
            let mut at = usize::from(*len);
            let total = at + parts.iter().map(|p| p.len()).sum::<usize>();
            if total <= INLINE_CAP {
                // Copying the whole buffer is cheaper than clearing a new one.
                let mut buf = *buf;
                for p in parts {
                    buf[at..at + p.len()].copy_from_slice(p.as_bytes());
                    at += p.len();
                }
                return Path {
                    repr: Repr::Inline {
                        len: total as u8,
                        buf,
                    },
                };
            }
        }
        let cur = match &self.repr {
            Repr::Inline { len: 0, .. } => "",
            _ => self.as_str(),
        };
        let mut s = String::with_capacity(cur.len() + parts.iter().map(|p| p.len()).sum::<usize>());
        s.push_str(cur);
        for p in parts {
            s.push_str(p);
        }
        Path {
            repr: Repr::Heap(s),
        }
    }
}

impl PartialEq for Path {
    fn eq(&self, other: &Path) -> bool {
        self.is_empty() == other.is_empty() && self.bytes() == other.bytes()
    }
}

impl Eq for Path {}

impl std::hash::Hash for Path {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.is_empty().hash(state);
        self.bytes().hash(state);
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Path").field(&self.as_str()).finish()
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a field error; each maps to a metav1 `StatusCause` type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A referenced value was not found.
    NotFound,
    /// A required value is missing.
    Required,
    /// A value that must be unique is repeated.
    Duplicate,
    /// A malformed value.
    Invalid,
    /// A value outside an enumerated set.
    NotSupported,
    /// A well-formed value not allowed under the current conditions.
    Forbidden,
    /// A value that is too long (the value itself is not shown).
    TooLong,
    /// A list with too many items.
    TooMany,
    /// A server-side failure unrelated to the input.
    Internal,
    /// A value of the wrong type.
    TypeInvalid,
}

impl ErrorKind {
    /// The metav1 `StatusCause` type (`CauseType`) string, e.g.
    /// `FieldValueRequired`.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "FieldValueNotFound",
            ErrorKind::Required => "FieldValueRequired",
            ErrorKind::Duplicate => "FieldValueDuplicate",
            ErrorKind::Invalid => "FieldValueInvalid",
            ErrorKind::NotSupported => "FieldValueNotSupported",
            ErrorKind::Forbidden => "FieldValueForbidden",
            ErrorKind::TooLong => "FieldValueTooLong",
            ErrorKind::TooMany => "FieldValueTooMany",
            ErrorKind::Internal => "InternalError",
            ErrorKind::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The human-readable form used in messages, e.g. `Required value`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "Not found",
            ErrorKind::Required => "Required value",
            ErrorKind::Duplicate => "Duplicate value",
            ErrorKind::Invalid => "Invalid value",
            ErrorKind::NotSupported => "Unsupported value",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::TooLong => "Too long",
            ErrorKind::TooMany => "Too many",
            ErrorKind::Internal => "Internal error",
            ErrorKind::TypeInvalid => "Invalid value",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field-level validation error (upstream `*field.Error`).
///
/// `Display` renders `<field>: <body>` exactly like upstream's `Error()`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The rendered path of the offending field.
    pub field: String,
    /// The offending value; `None` when it is omitted from messages.
    pub bad_value: Option<Value>,
    /// Extra human-readable detail, appended after the value.
    pub detail: String,
}

impl FieldError {
    /// Builds an error of any kind.
    pub fn new(
        kind: ErrorKind,
        path: &Path,
        bad_value: Option<Value>,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError {
            kind,
            field: path.as_str().to_string(),
            bad_value,
            detail: detail.into(),
        }
    }

    /// A required value is missing (upstream `field.Required`).
    pub fn required(path: &Path, detail: impl Into<String>) -> FieldError {
        FieldError::new(ErrorKind::Required, path, None, detail)
    }

    /// A malformed value (upstream `field.Invalid`).
    pub fn invalid(path: &Path, value: impl Into<Value>, detail: impl Into<String>) -> FieldError {
        FieldError::new(ErrorKind::Invalid, path, Some(value.into()), detail)
    }

    /// A value outside an enumerated set (upstream `field.NotSupported`):
    /// the detail lists the quoted supported values.
    pub fn not_supported<S: AsRef<str>>(
        path: &Path,
        value: impl Into<Value>,
        valid_values: &[S],
    ) -> FieldError {
        let detail = if valid_values.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = valid_values
                .iter()
                .map(|v| gofmt::quote(v.as_ref()))
                .collect();
            format!("supported values: {}", quoted.join(", "))
        };
        FieldError::new(ErrorKind::NotSupported, path, Some(value.into()), detail)
    }

    /// A value not permitted under current conditions (upstream
    /// `field.Forbidden`).
    pub fn forbidden(path: &Path, detail: impl Into<String>) -> FieldError {
        FieldError::new(ErrorKind::Forbidden, path, None, detail)
    }

    /// A repeated value that must be unique (upstream `field.Duplicate`).
    pub fn duplicate(path: &Path, value: impl Into<Value>) -> FieldError {
        FieldError::new(ErrorKind::Duplicate, path, Some(value.into()), "")
    }

    /// A value that is too long (upstream `field.TooLong`). The value is never
    /// shown; a negative `max_length` gives the generic "value is too long".
    pub fn too_long(path: &Path, _value: impl Into<Value>, max_length: i64) -> FieldError {
        let detail = if max_length >= 0 {
            let unit = if max_length == 1 { "byte" } else { "bytes" };
            format!("may not be more than {max_length} {unit}")
        } else {
            "value is too long".to_string()
        };
        FieldError::new(ErrorKind::TooLong, path, None, detail)
    }

    /// A list with too many items (upstream `field.TooMany`). A negative
    /// `actual` omits the count; a negative `max` gives the generic message.
    pub fn too_many(path: &Path, actual: i64, max: i64) -> FieldError {
        let detail = if max >= 0 {
            let unit = if max == 1 { "item" } else { "items" };
            format!("must have at most {max} {unit}")
        } else {
            "has too many items".to_string()
        };
        let value = (actual >= 0).then(|| Value::from(actual));
        FieldError::new(ErrorKind::TooMany, path, value, detail)
    }

    /// A referenced value was not found (upstream `field.NotFound`).
    pub fn not_found(path: &Path, value: impl Into<Value>) -> FieldError {
        FieldError::new(ErrorKind::NotFound, path, Some(value.into()), "")
    }

    /// A server-side failure (upstream `field.InternalError`); the error's
    /// message becomes the detail.
    pub fn internal(path: &Path, err: impl fmt::Display) -> FieldError {
        FieldError::new(ErrorKind::Internal, path, None, err.to_string())
    }

    /// A value of the wrong type (upstream `field.TypeInvalid`).
    pub fn type_invalid(
        path: &Path,
        value: impl Into<Value>,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError::new(ErrorKind::TypeInvalid, path, Some(value.into()), detail)
    }

    /// The message without the field name (upstream `ErrorBody()`), as used
    /// for a `StatusCause` message.
    pub fn error_body(&self) -> String {
        let mut s = match self.kind {
            ErrorKind::Required
            | ErrorKind::Forbidden
            | ErrorKind::TooLong
            | ErrorKind::Internal => self.kind.as_str().to_string(),
            _ => match &self.bad_value {
                None => self.kind.as_str().to_string(),
                Some(v) => format!("{}: {}", self.kind, render_value(v)),
            },
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// The metav1 `StatusCause` for this error:
    /// `{"reason": ..., "message": ..., "field": ...}` (empty parts omitted).
    pub fn to_status_cause(&self) -> Value {
        let mut cause = serde_json::Map::new();
        cause.insert("reason".into(), Value::from(self.kind.reason()));
        let message = self.error_body();
        if !message.is_empty() {
            cause.insert("message".into(), Value::from(message));
        }
        if !self.field.is_empty() {
            cause.insert("field".into(), Value::from(self.field.clone()));
        }
        Value::Object(cause)
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.error_body())
    }
}

impl std::error::Error for FieldError {}

/// Renders a bad value as upstream does inside a field error message.
pub fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => gofmt::quote(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                gofmt::format_float(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::Null => "null".to_string(),
        Value::Array(_) | Value::Object(_) => {
            let mut out = String::new();
            write_go_json(v, &mut out);
            out
        }
    }
}

/// Compact JSON with sorted object keys and Go's HTML-safe escaping of
/// `<`, `>`, `&`, U+2028 and U+2029 (as `encoding/json` produces).
fn write_go_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_go_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json_string(k, out);
                out.push(':');
                if let Some(item) = map.get(*k) {
                    write_go_json(item, out);
                }
            }
            out.push('}');
        }
    }
}

fn write_go_json_string(s: &str, out: &mut String) {
    let encoded = Value::String(s.to_string()).to_string();
    for c in encoded.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
}

/// The message of upstream's `ErrorList.ToAggregate().Error()`: duplicate
/// messages are dropped, a single error renders bare, several render as
/// `[a, b]`, none render as the empty string.
pub fn aggregate_message(errs: &[FieldError]) -> String {
    let mut seen = HashSet::new();
    let mut msgs = Vec::new();
    for e in errs {
        let m = e.to_string();
        if seen.insert(m.clone()) {
            msgs.push(m);
        }
    }
    match msgs.len() {
        0 => String::new(),
        1 => msgs.swap_remove(0),
        _ => format!("[{}]", msgs.join(", ")),
    }
}

/// The message of upstream's `errors.NewInvalid`:
/// `<Kind> "<name>" is invalid: <aggregate>`, or `<Kind> "<name>" is invalid`
/// with no errors. `qualified_kind` is the `schema.GroupKind` string:
/// `Pod` for the core group, `Deployment.apps` otherwise.
pub fn invalid_message(qualified_kind: &str, name: &str, errs: &[FieldError]) -> String {
    if errs.is_empty() {
        format!("{} {} is invalid", qualified_kind, gofmt::quote(name))
    } else {
        format!(
            "{} {} is invalid: {}",
            qualified_kind,
            gofmt::quote(name),
            aggregate_message(errs)
        )
    }
}

/// The full `metav1.Status` (HTTP 422, reason `Invalid`) that upstream's
/// `errors.NewInvalid` produces for an object of the given group and kind.
pub fn invalid_status(group: &str, kind: &str, name: &str, errs: &[FieldError]) -> Value {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let mut details = serde_json::Map::new();
    if !name.is_empty() {
        details.insert("name".into(), Value::from(name));
    }
    if !group.is_empty() {
        details.insert("group".into(), Value::from(group));
    }
    if !kind.is_empty() {
        details.insert("kind".into(), Value::from(kind));
    }
    if !errs.is_empty() {
        let causes: Vec<Value> = errs.iter().map(FieldError::to_status_cause).collect();
        details.insert("causes".into(), Value::Array(causes));
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": invalid_message(&qualified, name, errs),
        "reason": "Invalid",
        "details": Value::Object(details),
        "code": 422,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rendering() {
        let p = Path::new("spec")
            .child("containers")
            .index(0)
            .child("image");
        assert_eq!(p.to_string(), "spec.containers[0].image");
        assert_eq!(
            Path::new("metadata").child("labels").key("app").to_string(),
            "metadata.labels[app]"
        );
        assert_eq!(
            Path::new("metadata").child("name").to_string(),
            "metadata.name"
        );
        assert_eq!(Path::default().to_string(), "<nil>");
        assert_eq!(Path::default().child("key").to_string(), "key");
        assert_eq!(
            Path::default()
                .child("values")
                .index(0)
                .key("a")
                .to_string(),
            "values[0][a]"
        );
        assert_eq!(Path::default().index(3).to_string(), "[3]");
        assert_eq!(
            Path::new("a").key("x.y").index(2).child("b").to_string(),
            "a[x.y][2].b"
        );
    }

    #[test]
    fn long_paths_spill_to_the_heap() {
        let mut p = Path::new("spec");
        let mut want = String::from("spec");
        for i in 0..40 {
            p = p.child("template").index(i).key("a.b");
            want.push_str(&format!(".template[{i}][a.b]"));
            assert_eq!(p.to_string(), want);
            assert_eq!(p.as_str(), want);
        }
        let long = "x".repeat(200);
        assert_eq!(Path::default().child(&long).to_string(), long);
        assert_eq!(Path::new(&long).index(7).to_string(), format!("{long}[7]"));
        assert_eq!(Path::new("a").child("").to_string(), "a[]");
        assert_eq!(Path::new("").child("a").to_string(), "[].a");
        assert_eq!(
            Path::new("a").index(usize::MAX).to_string(),
            format!("a[{}]", usize::MAX)
        );
    }

    #[test]
    fn path_equality() {
        assert_eq!(Path::new("a").child("b"), Path::new("a").child("b"));
        assert_ne!(Path::new("a").child("b"), Path::new("a").child("c"));
        assert_eq!(Path::default(), Path::default());
        assert!(Path::default().is_empty());
        assert!(!Path::new("").is_empty());
        assert_ne!(Path::default(), Path::new(""));
        assert_eq!(Path::default().as_str(), "<nil>");
        let long = "y".repeat(120);
        assert_eq!(Path::new(&long), Path::new(&long));
        assert_eq!(format!("{:?}", Path::new("a").index(1)), r#"Path("a[1]")"#);
    }

    #[test]
    fn display_matches_upstream() {
        let p = Path::new("spec")
            .child("containers")
            .index(0)
            .child("image");
        assert_eq!(
            FieldError::required(&p, "").to_string(),
            "spec.containers[0].image: Required value"
        );
        assert_eq!(
            FieldError::required(
                &Path::new("metadata").child("name"),
                "name or generateName is required"
            )
            .to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
        assert_eq!(
            FieldError::invalid(&Path::new("metadata").child("name"), "Foo_", "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')").to_string(),
            "metadata.name: Invalid value: \"Foo_\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        assert_eq!(
            FieldError::not_supported(
                &Path::new("spec").child("restartPolicy"),
                "Sometimes",
                &["Always", "Never", "OnFailure"]
            )
            .to_string(),
            r#"spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "Never", "OnFailure""#
        );
        assert_eq!(
            FieldError::forbidden(
                &Path::new("metadata").child("namespace"),
                "not allowed on this type"
            )
            .to_string(),
            "metadata.namespace: Forbidden: not allowed on this type"
        );
        assert_eq!(
            FieldError::duplicate(&Path::new("spec").child("ports").index(1), "http").to_string(),
            r#"spec.ports[1]: Duplicate value: "http""#
        );
        assert_eq!(
            FieldError::too_long(&Path::new("metadata").child("annotations"), "", 262144)
                .to_string(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
        assert_eq!(
            FieldError::too_long(&Path::new("x"), "", 1).to_string(),
            "x: Too long: may not be more than 1 byte"
        );
        assert_eq!(
            FieldError::too_long(&Path::new("x"), "", -1).to_string(),
            "x: Too long: value is too long"
        );
        assert_eq!(
            FieldError::too_many(&Path::new("spec").child("items"), 5, 3).to_string(),
            "spec.items: Too many: 5: must have at most 3 items"
        );
        assert_eq!(
            FieldError::too_many(&Path::new("spec").child("items"), -1, 1).to_string(),
            "spec.items: Too many: must have at most 1 item"
        );
        assert_eq!(
            FieldError::not_found(&Path::new("spec").child("volume"), "vol").to_string(),
            r#"spec.volume: Not found: "vol""#
        );
        assert_eq!(
            FieldError::internal(&Path::new("spec"), "boom").to_string(),
            "spec: Internal error: boom"
        );
        assert_eq!(
            FieldError::type_invalid(
                &Path::new("spec").child("replicas"),
                "three",
                "must be an integer"
            )
            .to_string(),
            r#"spec.replicas: Invalid value: "three": must be an integer"#
        );
    }

    #[test]
    fn bad_value_rendering() {
        let p = Path::new("f");
        assert_eq!(
            FieldError::invalid(&p, -1, "neg").to_string(),
            "f: Invalid value: -1: neg"
        );
        assert_eq!(
            FieldError::invalid(&p, 1.5, "x").to_string(),
            "f: Invalid value: 1.5: x"
        );
        assert_eq!(
            FieldError::invalid(&p, true, "x").to_string(),
            "f: Invalid value: true: x"
        );
        assert_eq!(
            FieldError::invalid(&p, Value::Null, "x").to_string(),
            "f: Invalid value: null: x"
        );
        assert_eq!(
            FieldError::invalid(&p, json!(["a", "b"]), "x").to_string(),
            r#"f: Invalid value: ["a","b"]: x"#
        );
        assert_eq!(
            FieldError::invalid(&p, json!({"b": 1, "a": "<x>"}), "x").to_string(),
            r#"f: Invalid value: {"a":"\u003cx\u003e","b":1}: x"#
        );
        assert_eq!(
            FieldError::invalid(&p, "line\nbreak", "").to_string(),
            r#"f: Invalid value: "line\nbreak""#
        );
        assert_eq!(
            FieldError::new(ErrorKind::Invalid, &p, None, "omitted").to_string(),
            "f: Invalid value: omitted"
        );
    }

    #[test]
    fn reasons() {
        assert_eq!(ErrorKind::Required.reason(), "FieldValueRequired");
        assert_eq!(ErrorKind::Invalid.reason(), "FieldValueInvalid");
        assert_eq!(ErrorKind::NotSupported.reason(), "FieldValueNotSupported");
        assert_eq!(ErrorKind::Duplicate.reason(), "FieldValueDuplicate");
        assert_eq!(ErrorKind::Forbidden.reason(), "FieldValueForbidden");
        assert_eq!(ErrorKind::TooLong.reason(), "FieldValueTooLong");
        assert_eq!(ErrorKind::TooMany.reason(), "FieldValueTooMany");
        assert_eq!(ErrorKind::NotFound.reason(), "FieldValueNotFound");
        assert_eq!(ErrorKind::Internal.reason(), "InternalError");
        assert_eq!(ErrorKind::TypeInvalid.reason(), "FieldValueTypeInvalid");
    }

    #[test]
    fn invalid_messages() {
        let image = FieldError::required(
            &Path::new("spec")
                .child("containers")
                .index(0)
                .child("image"),
            "",
        );
        assert_eq!(
            invalid_message("Pod", "x", std::slice::from_ref(&image)),
            r#"Pod "x" is invalid: spec.containers[0].image: Required value"#
        );
        let name = FieldError::required(
            &Path::new("spec").child("containers").index(0).child("name"),
            "",
        );
        assert_eq!(
            invalid_message("Pod", "x", &[image.clone(), name.clone(), image.clone()]),
            r#"Pod "x" is invalid: [spec.containers[0].image: Required value, spec.containers[0].name: Required value]"#
        );
        // Duplicates collapse, leaving a single bare message.
        assert_eq!(
            invalid_message("Deployment.apps", "d", &[image.clone(), image.clone()]),
            r#"Deployment.apps "d" is invalid: spec.containers[0].image: Required value"#
        );
        assert_eq!(invalid_message("Pod", "x", &[]), r#"Pod "x" is invalid"#);
        assert_eq!(aggregate_message(&[]), "");
    }

    #[test]
    fn status_object() {
        let err = FieldError::required(&Path::new("spec").child("containers"), "");
        let st = invalid_status("apps", "Deployment", "web", &[err]);
        assert_eq!(st["code"], 422);
        assert_eq!(st["reason"], "Invalid");
        assert_eq!(st["status"], "Failure");
        assert_eq!(
            st["message"],
            r#"Deployment.apps "web" is invalid: spec.containers: Required value"#
        );
        assert_eq!(st["details"]["group"], "apps");
        assert_eq!(st["details"]["kind"], "Deployment");
        assert_eq!(st["details"]["name"], "web");
        assert_eq!(
            st["details"]["causes"],
            json!([{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers"}])
        );
        let core = invalid_status("", "Pod", "p", &[]);
        assert_eq!(core["message"], r#"Pod "p" is invalid"#);
        assert!(core["details"].get("group").is_none());
        assert!(core["details"].get("causes").is_none());
    }
}
