//! Helpers that look at JSON values the way upstream's Go code does: the
//! dynamic Go type of a decoded value, `%v`/`%s`/`%q` formatting for error
//! messages, `encoding/json` output (sorted keys, HTML escaping, Go float
//! format), and structured-merge-diff's total order and equality on values.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::{Number, Value};

/// The Go type a JSON value decodes to through apimachinery's JSON package
/// (integers become `int64`, other numbers `float64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GoKind {
    Map,
    Slice,
    String,
    Int64,
    Float64,
    Bool,
    Nil,
}

pub(crate) fn go_kind(v: &Value) -> GoKind {
    match v {
        Value::Object(_) => GoKind::Map,
        Value::Array(_) => GoKind::Slice,
        Value::String(_) => GoKind::String,
        Value::Bool(_) => GoKind::Bool,
        Value::Null => GoKind::Nil,
        Value::Number(n) => {
            if n.as_i64().is_some() {
                GoKind::Int64
            } else {
                GoKind::Float64
            }
        }
    }
}

/// `reflect.TypeOf(v).String()` for a decoded JSON value (`%s` of a nil
/// type prints as `%!s(<nil>)`).
pub(crate) fn go_type_name(v: &Value) -> &'static str {
    match go_kind(v) {
        GoKind::Map => "map[string]interface {}",
        GoKind::Slice => "[]interface {}",
        GoKind::String => "string",
        GoKind::Int64 => "int64",
        GoKind::Float64 => "float64",
        GoKind::Bool => "bool",
        GoKind::Nil => "%!s(<nil>)",
    }
}

/// Go's `==` on two `interface{}` values holding decoded JSON (dynamic types
/// must match; maps and slices, which Go cannot compare, are compared
/// structurally).
pub(crate) fn go_eq(a: &Value, b: &Value) -> bool {
    if go_kind(a) != go_kind(b) {
        return false;
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| go_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).map(|w| go_eq(v, w)).unwrap_or(false))
        }
        _ => a == b,
    }
}

fn sorted_keys(m: &serde_json::Map<String, Value>) -> Vec<&String> {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    keys
}

/// Go's `%v` of a decoded JSON value.
pub(crate) fn go_v(v: &Value) -> String {
    let mut out = String::new();
    write_go_v(v, &mut out);
    out
}

fn write_go_v(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::String(s) => out.push_str(s),
        Value::Number(n) => out.push_str(&go_number_v(n)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go_v(item, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push_str("map[");
            for (i, k) in sorted_keys(m).into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                if let Some(val) = m.get(k) {
                    write_go_v(val, out);
                }
            }
            out.push(']');
        }
    }
}

/// Go's `%s` of a decoded JSON value (non-strings print as `%!s(T=v)`).
pub(crate) fn go_s(v: &Value) -> String {
    let mut out = String::new();
    write_go_s(v, &mut out);
    out
}

fn write_go_s(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Null => out.push_str("%!s(<nil>)"),
        Value::Bool(_) | Value::Number(_) => {
            let _ = write!(out, "%!s({}={})", go_type_name(v), go_v(v));
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go_s(item, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push_str("map[");
            for (i, k) in sorted_keys(m).into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                if let Some(val) = m.get(k) {
                    write_go_s(val, out);
                }
            }
            out.push(']');
        }
    }
}

fn go_number_v(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    match n.as_f64() {
        Some(f) => go_float_g(f),
        None => n.to_string(),
    }
}

/// Splits the shortest round-trip representation of `f` into its decimal
/// digits and the exponent of the first digit (`1.5e-7` gives ("15", -7)).
fn shortest_digits(f: f64) -> (String, i32) {
    let s = format!("{:e}", f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    (digits, exp.parse().unwrap_or(0))
}

fn format_exponent(f: f64, min_exp_digits: usize) -> String {
    let (digits, exp) = shortest_digits(f);
    let mut out = String::new();
    if f.is_sign_negative() {
        out.push('-');
    }
    let (head, tail) = digits.split_at(digits.len().min(1));
    out.push_str(if head.is_empty() { "0" } else { head });
    if !tail.is_empty() {
        out.push('.');
        out.push_str(tail);
    }
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs().to_string();
    for _ in e.len()..min_exp_digits {
        out.push('0');
    }
    out.push_str(&e);
    out
}

/// Go's `%v` (`%g`, shortest) of a float64.
pub(crate) fn go_float_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let (_, exp) = shortest_digits(f);
    // Shortest %g switches to exponent form outside [1e-4, 1e6).
    if !(-4..6).contains(&exp) {
        return format_exponent(f, 2);
    }
    format!("{}", f)
}

/// `encoding/json`'s rendering of a float64.
pub(crate) fn go_json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Go writes at least two exponent digits, then trims `e-0X` to
        // `e-X`; positive exponents keep theirs.
        let s = format_exponent(f, 2);
        if let Some(pos) = s.find("e-0") {
            let mut t = s.clone();
            t.remove(pos + 2);
            return t;
        }
        return s;
    }
    format!("{}", f)
}

fn go_json_number(n: &Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    match n.as_f64() {
        Some(f) => go_json_float(f),
        None => n.to_string(),
    }
}

/// Appends a JSON string literal escaped like Go's `encoding/json` (with
/// HTML escaping).
pub(crate) fn write_go_json_string(s: &str, out: &mut String) {
    out.push('"');
    let plain = s
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && !matches!(b, b'"' | b'\\' | b'<' | b'>' | b'&'));
    if plain {
        // Nothing to escape (printable ASCII without quotes, backslashes
        // or HTML characters).
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A value rendered the way Go's `json.Marshal` renders decoded JSON:
/// compact, object keys sorted.
pub(crate) fn go_json(v: &Value) -> String {
    let mut out = String::new();
    write_go_json(v, &mut out);
    out
}

pub(crate) fn write_go_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_json_number(n)),
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
        Value::Object(m) => {
            out.push('{');
            for (i, k) in sorted_keys(m).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json_string(k, out);
                out.push(':');
                if let Some(val) = m.get(k) {
                    write_go_json(val, out);
                }
            }
            out.push('}');
        }
    }
}

/// Go's `%q` (`strconv.Quote`) of a string.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                if (c as u32) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// structured-merge-diff's `value.ToString`, used when printing list keys
/// and set values in paths.
pub(crate) fn smd_to_string(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Number(n) => go_number_v(n),
        Value::String(s) => go_quote(s),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(smd_to_string).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(m) => {
            let mut out = String::new();
            for k in sorted_keys(m) {
                if let Some(val) = m.get(k) {
                    let _ = write!(out, "{}={}", k, smd_to_string(val));
                }
            }
            out
        }
    }
}

fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) => 3,
        Value::Object(_) => 4,
        Value::Null => 5,
    }
}

fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => {
            let x = a.as_f64().unwrap_or(0.0);
            let y = b.as_f64().unwrap_or(0.0);
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
    }
}

/// structured-merge-diff's total order on values: numbers (compared
/// numerically) < strings < booleans < lists < maps < null.
pub(crate) fn smd_compare(a: &Value, b: &Value) -> Ordering {
    let (ra, rb) = (type_rank(a), type_rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let c = smd_compare(p, q);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                match (x.get(k), y.get(k)) {
                    (None, Some(_)) => return Ordering::Greater,
                    (Some(_), None) => return Ordering::Less,
                    (Some(p), Some(q)) => {
                        let c = smd_compare(p, q);
                        if c != Ordering::Equal {
                            return c;
                        }
                    }
                    (None, None) => {}
                }
            }
            Ordering::Equal
        }
        _ => Ordering::Equal,
    }
}

/// structured-merge-diff's value equality (ints and floats compare
/// numerically).
pub(crate) fn smd_equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| smd_equals(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).map(|w| smd_equals(v, w)).unwrap_or(false))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn percent_v() {
        assert_eq!(go_v(&json!({"image": "nginx"})), "map[image:nginx]");
        assert_eq!(
            go_v(&json!({"b": [1, 2.5], "a": null, "c": {"d": true}})),
            "map[a:<nil> b:[1 2.5] c:map[d:true]]"
        );
        assert_eq!(go_v(&json!(1000000.5)), "1.0000005e+06");
        assert_eq!(go_v(&json!(0.00001)), "1e-05");
        assert_eq!(go_v(&json!(123456.5)), "123456.5");
    }

    #[test]
    fn percent_s() {
        assert_eq!(go_s(&json!("x")), "x");
        assert_eq!(go_s(&json!(1)), "%!s(int64=1)");
        assert_eq!(go_s(&json!(true)), "%!s(bool=true)");
        assert_eq!(go_s(&Value::Null), "%!s(<nil>)");
    }

    #[test]
    fn json_encoding() {
        assert_eq!(
            go_json(&json!({"b": 1, "a": "<x>&", "c": [1.5, 1e21, 1e-7]})),
            r#"{"a":"\u003cx\u003e\u0026","b":1,"c":[1.5,1e+21,1e-7]}"#
        );
        assert_eq!(go_json_float(1.0), "1");
        assert_eq!(go_json_float(0.000001), "0.000001");
    }

    #[test]
    fn quoting() {
        assert_eq!(go_quote("nginx"), "\"nginx\"");
        assert_eq!(go_quote("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(go_quote("é"), "\"é\"");
    }

    #[test]
    fn smd_ordering() {
        assert_eq!(smd_compare(&json!(2), &json!(10)), Ordering::Less);
        assert_eq!(smd_compare(&json!(3), &json!("aa")), Ordering::Less);
        assert_eq!(smd_compare(&json!("ab"), &json!(true)), Ordering::Less);
        assert_eq!(smd_compare(&json!(1.0), &json!(1)), Ordering::Equal);
        assert!(smd_equals(&json!(1.0), &json!(1)));
        assert!(!go_eq(&json!(1.0), &json!(1)));
        assert_eq!(smd_to_string(&json!("x")), "\"x\"");
        assert_eq!(smd_to_string(&json!(80)), "80");
    }
}
