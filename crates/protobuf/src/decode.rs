//! Protobuf to JSON: walks a message with the schema table and produces the
//! JSON upstream's Go encoder would write for the same Go object.
//!
//! Go's protobuf marshaller always writes non-pointer scalars, so a zero
//! there carries no information; such fields are dropped unless the Go
//! field lacks `omitempty`. Pointer scalars are only written when set, so
//! they are kept even when zero. Message fields are emitted whenever
//! present (Go does not omit structs), empty lists and maps never.

use base64::Engine;
use serde_json::{Map, Number, Value};

use crate::schema::{Kind, Scalar, Schema, META};
use crate::wire::{parse_fields, read_varint, Raw};
use crate::{time, ProtoError, MAGIC};

/// Deepest message nesting accepted (JSONSchemaProps is recursive).
pub(crate) const MAX_DEPTH: usize = 100;

pub(crate) const APIEXT: &str = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1";

fn wire_error(path: &str, expected: &str, raw: &Raw) -> ProtoError {
    ProtoError::WireType {
        path: path.to_string(),
        expected: expected.to_string(),
        got: raw.wire_type(),
    }
}

fn last<'a>(fields: &[(u32, Raw<'a>)], number: u32) -> Option<Raw<'a>> {
    fields
        .iter()
        .rev()
        .find(|(n, _)| *n == number)
        .map(|(_, r)| *r)
}

fn bytes_of<'a>(raw: Option<Raw<'a>>, path: &str) -> Result<Option<&'a [u8]>, ProtoError> {
    match raw {
        None => Ok(None),
        Some(Raw::Bytes(b)) => Ok(Some(b)),
        Some(other) => Err(wire_error(path, "length-delimited", &other)),
    }
}

fn varint_of(raw: Option<Raw>, path: &str) -> Result<u64, ProtoError> {
    match raw {
        None => Ok(0),
        Some(Raw::Varint(v)) => Ok(v),
        Some(other) => Err(wire_error(path, "varint", &other)),
    }
}

/// Decodes an embedded serialized object: a nested protobuf envelope or JSON.
fn embedded(
    schema: &Schema,
    raw: Option<&[u8]>,
    path: &str,
    depth: usize,
) -> Result<Value, ProtoError> {
    match raw {
        None | Some([]) => Ok(Value::Null),
        Some(b) if b.starts_with(&MAGIC) => crate::decode_envelope(schema, b, depth + 1),
        Some(b) => serde_json::from_slice(b).map_err(|source| ProtoError::EmbeddedJson {
            path: path.to_string(),
            source,
        }),
    }
}

fn timestamp(fields: &[(u32, Raw)], path: &str, micro: bool) -> Result<Value, ProtoError> {
    let seconds = varint_of(last(fields, 1), path)? as i64;
    let nanos = varint_of(last(fields, 2), path)? as i64 as i32;
    let micros = micro.then(|| (nanos.clamp(0, 999_999_999) / 1000) as u32);
    time::format_rfc3339(seconds, micros)
        .map(Value::String)
        .ok_or_else(|| ProtoError::InvalidValue {
            path: path.to_string(),
            message: format!("timestamp {seconds} is outside years 0-9999"),
        })
}

/// Message types whose JSON form is not an object of their fields.
fn special(
    schema: &Schema,
    name: &str,
    data: &[u8],
    path: &str,
    depth: usize,
) -> Result<Option<Value>, ProtoError> {
    let Some((pkg, short)) = name.rsplit_once('.') else {
        return Ok(None);
    };
    let is = |p: &str, n: &str| pkg == p && short == n;
    let fields = || parse_fields(data);
    let value = if is(META, "Time") || is(META, "MicroTime") {
        if data.is_empty() {
            Value::Null
        } else {
            timestamp(&fields()?, path, short == "MicroTime")?
        }
    } else if is(META, "Duration") {
        Value::String(time::format_duration(
            varint_of(last(&fields()?, 1), path)? as i64
        ))
    } else if is(META, "FieldsV1")
        || is("k8s.io.apimachinery.pkg.runtime", "RawExtension")
        || is(APIEXT, "JSON")
    {
        embedded(schema, bytes_of(last(&fields()?, 1), path)?, path, depth)?
    } else if is("k8s.io.apimachinery.pkg.util.intstr", "IntOrString") {
        let f = fields()?;
        if varint_of(last(&f, 1), path)? == 1 {
            let s = bytes_of(last(&f, 3), path)?.unwrap_or_default();
            Value::String(String::from_utf8_lossy(s).into_owned())
        } else {
            Value::from(varint_of(last(&f, 2), path)? as i64 as i32)
        }
    } else if pkg == "k8s.io.apimachinery.pkg.api.resource" {
        let s = bytes_of(last(&fields()?, 1), path)?.unwrap_or(b"0");
        Value::String(String::from_utf8_lossy(s).into_owned())
    } else if is(APIEXT, "JSONSchemaPropsOrArray") || is(APIEXT, "JSONSchemaPropsOrStringArray") {
        let f = fields()?;
        let props = format!("{APIEXT}.JSONSchemaProps");
        let items: Vec<&[u8]> = f
            .iter()
            .filter(|(n, _)| *n == 2)
            .filter_map(|(_, r)| match r {
                Raw::Bytes(b) => Some(*b),
                _ => None,
            })
            .collect();
        if !items.is_empty() {
            let list = items.into_iter().map(|b| {
                if short == "JSONSchemaPropsOrArray" {
                    decode_message(schema, &props, b, path, depth + 1)
                } else {
                    Ok(Value::String(String::from_utf8_lossy(b).into_owned()))
                }
            });
            Value::Array(list.collect::<Result<_, _>>()?)
        } else if let Some(b) = bytes_of(last(&f, 1), path)? {
            decode_message(schema, &props, b, path, depth + 1)?
        } else {
            Value::Null
        }
    } else if is(APIEXT, "JSONSchemaPropsOrBool") {
        let f = fields()?;
        match bytes_of(last(&f, 2), path)? {
            Some(b) => decode_message(
                schema,
                &format!("{APIEXT}.JSONSchemaProps"),
                b,
                path,
                depth + 1,
            )?,
            None => Value::Bool(varint_of(last(&f, 1), path)? != 0),
        }
    } else if is_string_list_wrapper(schema, name) {
        let f = fields()?;
        let mut out = Vec::new();
        for (n, r) in f {
            if n == 1 {
                let b = bytes_of(Some(r), path)?.unwrap_or_default();
                out.push(Value::String(String::from_utf8_lossy(b).into_owned()));
            }
        }
        Value::Array(out)
    } else {
        return Ok(None);
    };
    Ok(Some(value))
}

/// Messages that only wrap a list of strings (`meta.v1.Verbs`, `ExtraValue`):
/// Go marshals them as the bare list.
pub(crate) fn is_string_list_wrapper(schema: &Schema, name: &str) -> bool {
    if name.ends_with("List") {
        return false;
    }
    match schema.messages.get(name) {
        Some(m) => {
            m.fields.len() == 1
                && m.fields[0].number == 1
                && m.fields[0].json == "items"
                && m.fields[0].repeated
                && m.fields[0].kind == Kind::Scalar(Scalar::String)
        }
        None => false,
    }
}

fn scalar(s: Scalar, raw: Raw, path: &str) -> Result<Value, ProtoError> {
    Ok(match (s, raw) {
        (Scalar::String, Raw::Bytes(b)) => Value::String(String::from_utf8_lossy(b).into_owned()),
        (Scalar::Bytes, Raw::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Scalar::Int32, Raw::Varint(v)) => Value::from(v as i64 as i32),
        (Scalar::Int64, Raw::Varint(v)) => Value::from(v as i64),
        (Scalar::Bool, Raw::Varint(v)) => Value::Bool(v != 0),
        (Scalar::Double, Raw::Fixed64(v)) => {
            let f = f64::from_bits(v);
            Value::Number(Number::from_f64(f).ok_or_else(|| ProtoError::InvalidValue {
                path: path.to_string(),
                message: format!("{f} is not representable in JSON"),
            })?)
        }
        (s, raw) => {
            let expected = match s {
                Scalar::String | Scalar::Bytes => "length-delimited",
                Scalar::Double => "fixed64",
                _ => "varint",
            };
            return Err(wire_error(path, expected, &raw));
        }
    })
}

/// Elements of a packed repeated scalar field.
fn packed(s: Scalar, data: &[u8], path: &str) -> Result<Vec<Value>, ProtoError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let raw = if s == Scalar::Double {
            let chunk = data.get(pos..pos + 8).ok_or(ProtoError::Truncated)?;
            pos += 8;
            let mut a = [0u8; 8];
            a.copy_from_slice(chunk);
            Raw::Fixed64(u64::from_le_bytes(a))
        } else {
            Raw::Varint(read_varint(data, &mut pos)?)
        };
        out.push(scalar(s, raw, path)?);
    }
    Ok(out)
}

fn value(
    schema: &Schema,
    kind: &Kind,
    raw: Raw,
    path: &str,
    depth: usize,
) -> Result<Value, ProtoError> {
    match kind {
        Kind::Scalar(s) => scalar(*s, raw, path),
        Kind::Message(m) => match raw {
            Raw::Bytes(b) => decode_message(schema, m, b, path, depth + 1),
            other => Err(wire_error(path, "length-delimited", &other)),
        },
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
        Value::Null => true,
        _ => false,
    }
}

/// Decodes one message of the named type into its JSON form.
pub(crate) fn decode_message(
    schema: &Schema,
    name: &str,
    data: &[u8],
    path: &str,
    depth: usize,
) -> Result<Value, ProtoError> {
    if depth > MAX_DEPTH {
        return Err(ProtoError::TooDeep(path.to_string()));
    }
    if let Some(v) = special(schema, name, data, path, depth)? {
        return Ok(v);
    }
    let msg = schema.message(name)?;
    let n = msg.fields.len();
    let mut singles: Vec<Option<Value>> = vec![None; n];
    let mut lists: Vec<Vec<Value>> = vec![Vec::new(); n];
    let mut maps: Vec<Map<String, Value>> = vec![Map::new(); n];
    for (number, raw) in parse_fields(data)? {
        let Some(i) = msg.index(number) else { continue };
        let field = &msg.fields[i];
        let fpath = format!("{path}.{}", field.json);
        if let Some(vkind) = &field.map_value {
            let Raw::Bytes(entry) = raw else {
                return Err(wire_error(&fpath, "length-delimited", &raw));
            };
            let entry = parse_fields(entry)?;
            let key = match last(&entry, 1) {
                Some(r) => match scalar(Scalar::String, r, &fpath)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                },
                None => String::new(),
            };
            let v = match (last(&entry, 2), vkind) {
                (Some(r), k) => value(schema, k, r, &format!("{fpath}[{key}]"), depth)?,
                (None, Kind::Message(m)) => decode_message(schema, m, &[], &fpath, depth + 1)?,
                (None, Kind::Scalar(Scalar::Bytes | Scalar::String)) => {
                    Value::String(String::new())
                }
                (None, Kind::Scalar(Scalar::Bool)) => Value::Bool(false),
                (None, Kind::Scalar(_)) => Value::from(0),
            };
            maps[i].insert(key, v);
        } else if field.repeated {
            match (&field.kind, raw) {
                (Kind::Scalar(s), Raw::Bytes(b))
                    if !matches!(s, Scalar::String | Scalar::Bytes) =>
                {
                    lists[i].extend(packed(*s, b, &fpath)?)
                }
                (k, r) => lists[i].push(value(schema, k, r, &fpath, depth)?),
            }
        } else {
            singles[i] = Some(value(schema, &field.kind, raw, &fpath, depth)?);
        }
    }
    let mut out = Map::new();
    for (i, field) in msg.fields.iter().enumerate() {
        if field.map_value.is_some() {
            if !maps[i].is_empty() {
                out.insert(
                    field.json.clone(),
                    Value::Object(std::mem::take(&mut maps[i])),
                );
            }
        } else if field.repeated {
            if !lists[i].is_empty() {
                out.insert(
                    field.json.clone(),
                    Value::Array(std::mem::take(&mut lists[i])),
                );
            }
        } else if let Some(v) = singles[i].take() {
            if field.inline {
                if let Value::Object(inner) = v {
                    out.extend(inner);
                }
                continue;
            }
            let scalar_field = matches!(field.kind, Kind::Scalar(_));
            if scalar_field && !field.pointer && !field.keep_zero && is_zero(&v) {
                continue;
            }
            out.insert(field.json.clone(), v);
        }
    }
    Ok(Value::Object(out))
}
