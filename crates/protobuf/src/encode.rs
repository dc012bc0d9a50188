//! JSON to protobuf: writes a JSON object in the wire layout of its schema
//! message, in field-number order like Go's generated marshallers, with
//! map entries sorted by key and repeated scalars unpacked (proto2).
//! JSON fields the schema does not know are dropped.

use base64::Engine;
use serde_json::Value;

use crate::decode::{is_string_list_wrapper, APIEXT, MAX_DEPTH};
use crate::schema::{Kind, Scalar, Schema, META};
use crate::wire::{put_bytes, put_key, put_varint_field, FIXED64};
use crate::{time, ProtoError};

fn invalid(path: &str, message: impl Into<String>) -> ProtoError {
    ProtoError::InvalidValue {
        path: path.to_string(),
        message: message.into(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn expect<'v, T>(
    v: &'v Value,
    path: &str,
    what: &str,
    get: impl Fn(&'v Value) -> Option<T>,
) -> Result<T, ProtoError> {
    get(v).ok_or_else(|| invalid(path, format!("expected {what}, got {}", type_name(v))))
}

fn integer(v: &Value, path: &str) -> Result<i64, ProtoError> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(f as i64),
        _ => Err(invalid(
            path,
            format!("expected an integer, got {}", type_name(v)),
        )),
    }
}

fn put_scalar(
    buf: &mut Vec<u8>,
    number: u32,
    s: Scalar,
    v: &Value,
    path: &str,
) -> Result<(), ProtoError> {
    match s {
        Scalar::String => put_bytes(
            buf,
            number,
            expect(v, path, "a string", Value::as_str)?.as_bytes(),
        ),
        Scalar::Bytes => {
            let text = expect(v, path, "a base64 string", Value::as_str)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| invalid(path, format!("illegal base64 data: {e}")))?;
            put_bytes(buf, number, &bytes)
        }
        Scalar::Int32 => {
            let i = integer(v, path)?;
            let i = i32::try_from(i)
                .map_err(|_| invalid(path, format!("{i} does not fit in int32")))?;
            put_varint_field(buf, number, i64::from(i) as u64)
        }
        Scalar::Int64 => put_varint_field(buf, number, integer(v, path)? as u64),
        Scalar::Bool => put_varint_field(
            buf,
            number,
            u64::from(expect(v, path, "a boolean", Value::as_bool)?),
        ),
        Scalar::Double => {
            put_key(buf, number, FIXED64);
            buf.extend_from_slice(&expect(v, path, "a number", Value::as_f64)?.to_le_bytes());
        }
    }
    Ok(())
}

fn is_time(name: &str) -> bool {
    name.strip_prefix(META)
        .is_some_and(|n| n == ".Time" || n == ".MicroTime")
}

fn raw_json(v: &Value) -> Vec<u8> {
    // Serializing a Value cannot fail (keys are strings, numbers are finite).
    serde_json::to_vec(v).unwrap_or_default()
}

/// Message types whose JSON form is not an object of their fields.
fn special(
    schema: &Schema,
    name: &str,
    v: &Value,
    path: &str,
    depth: usize,
) -> Result<Option<Vec<u8>>, ProtoError> {
    let Some((pkg, short)) = name.rsplit_once('.') else {
        return Ok(None);
    };
    let is = |p: &str, n: &str| pkg == p && short == n;
    let mut buf = Vec::new();
    if is(META, "Time") || is(META, "MicroTime") {
        if !v.is_null() {
            let text = expect(v, path, "an RFC 3339 time string", Value::as_str)?;
            let (secs, nanos) = time::parse_rfc3339(text)
                .ok_or_else(|| invalid(path, format!("invalid RFC 3339 time {text:?}")))?;
            put_varint_field(&mut buf, 1, secs as u64);
            let nanos = if short == "MicroTime" {
                nanos / 1000 * 1000
            } else {
                0
            };
            put_varint_field(&mut buf, 2, u64::from(nanos));
        }
    } else if is(META, "Duration") {
        let text = expect(v, path, "a duration string", Value::as_str)?;
        let ns = time::parse_duration(text)
            .ok_or_else(|| invalid(path, format!("invalid duration {text:?}")))?;
        put_varint_field(&mut buf, 1, ns as u64);
    } else if is(META, "FieldsV1")
        || is("k8s.io.apimachinery.pkg.runtime", "RawExtension")
        || is(APIEXT, "JSON")
    {
        if !v.is_null() {
            put_bytes(&mut buf, 1, &raw_json(v));
        }
    } else if is("k8s.io.apimachinery.pkg.util.intstr", "IntOrString") {
        match v {
            Value::String(s) => {
                put_varint_field(&mut buf, 1, 1);
                put_varint_field(&mut buf, 2, 0);
                put_bytes(&mut buf, 3, s.as_bytes());
            }
            other => {
                let i = integer(other, path)?;
                let i = i32::try_from(i)
                    .map_err(|_| invalid(path, format!("{i} does not fit in int32")))?;
                put_varint_field(&mut buf, 1, 0);
                put_varint_field(&mut buf, 2, i64::from(i) as u64);
                put_bytes(&mut buf, 3, b"");
            }
        }
    } else if pkg == "k8s.io.apimachinery.pkg.api.resource" {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => {
                return Err(invalid(
                    path,
                    format!("expected a quantity, got {}", type_name(other)),
                ))
            }
        };
        put_bytes(&mut buf, 1, text.as_bytes());
    } else if is(APIEXT, "JSONSchemaPropsOrArray") || is(APIEXT, "JSONSchemaPropsOrStringArray") {
        let props = format!("{APIEXT}.JSONSchemaProps");
        match v {
            Value::Array(items) => {
                for item in items {
                    if short == "JSONSchemaPropsOrArray" {
                        put_bytes(
                            &mut buf,
                            2,
                            &encode_message(schema, &props, item, path, depth + 1)?,
                        );
                    } else {
                        put_bytes(
                            &mut buf,
                            2,
                            expect(item, path, "a string", Value::as_str)?.as_bytes(),
                        );
                    }
                }
            }
            Value::Null => {}
            other => put_bytes(
                &mut buf,
                1,
                &encode_message(schema, &props, other, path, depth + 1)?,
            ),
        }
    } else if is(APIEXT, "JSONSchemaPropsOrBool") {
        match v {
            Value::Bool(b) => put_varint_field(&mut buf, 1, u64::from(*b)),
            other => {
                put_varint_field(&mut buf, 1, 1);
                let props = format!("{APIEXT}.JSONSchemaProps");
                put_bytes(
                    &mut buf,
                    2,
                    &encode_message(schema, &props, other, path, depth + 1)?,
                );
            }
        }
    } else if is_string_list_wrapper(schema, name) {
        if let Some(items) = v.as_array() {
            for item in items {
                put_bytes(
                    &mut buf,
                    1,
                    expect(item, path, "a string", Value::as_str)?.as_bytes(),
                );
            }
        } else if !v.is_null() {
            return Err(invalid(
                path,
                format!("expected a list, got {}", type_name(v)),
            ));
        }
    } else {
        return Ok(None);
    }
    Ok(Some(buf))
}

fn put_value(
    schema: &Schema,
    buf: &mut Vec<u8>,
    number: u32,
    kind: &Kind,
    v: &Value,
    path: &str,
    depth: usize,
) -> Result<(), ProtoError> {
    match kind {
        Kind::Scalar(s) => put_scalar(buf, number, *s, v, path),
        Kind::Message(m) => {
            let inner = encode_message(schema, m, v, path, depth + 1)?;
            put_bytes(buf, number, &inner);
            Ok(())
        }
    }
}

/// Encodes a JSON value as a message of the named type (without envelope).
pub(crate) fn encode_message(
    schema: &Schema,
    name: &str,
    v: &Value,
    path: &str,
    depth: usize,
) -> Result<Vec<u8>, ProtoError> {
    if depth > MAX_DEPTH {
        return Err(ProtoError::TooDeep(path.to_string()));
    }
    if let Some(buf) = special(schema, name, v, path, depth)? {
        return Ok(buf);
    }
    let msg = schema.message(name)?;
    let obj = match v {
        Value::Object(o) => o,
        Value::Null => return Ok(Vec::new()),
        other => {
            return Err(invalid(
                path,
                format!("expected an object, got {}", type_name(other)),
            ))
        }
    };
    let mut buf = Vec::new();
    for field in &msg.fields {
        let fpath = format!("{path}.{}", field.json);
        if field.inline {
            if let Kind::Message(m) = &field.kind {
                let inner = encode_message(schema, m, v, path, depth + 1)?;
                put_bytes(&mut buf, field.number, &inner);
            }
            continue;
        }
        let Some(fv) = obj.get(&field.json) else {
            continue;
        };
        if fv.is_null() {
            // A null time is Go's zero Time, which is written as an empty message.
            if matches!(&field.kind, Kind::Message(m) if is_time(m)) && !field.repeated {
                put_bytes(&mut buf, field.number, &[]);
            }
            continue;
        }
        if let Some(vkind) = &field.map_value {
            let entries = expect(fv, &fpath, "an object", Value::as_object)?;
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            for key in keys {
                let mut entry = Vec::new();
                put_bytes(&mut entry, 1, key.as_bytes());
                let ev = &entries[key];
                if !ev.is_null() {
                    put_value(
                        schema,
                        &mut entry,
                        2,
                        vkind,
                        ev,
                        &format!("{fpath}[{key}]"),
                        depth,
                    )?;
                }
                put_bytes(&mut buf, field.number, &entry);
            }
        } else if field.repeated {
            for item in expect(fv, &fpath, "a list", Value::as_array)? {
                put_value(
                    schema,
                    &mut buf,
                    field.number,
                    &field.kind,
                    item,
                    &fpath,
                    depth,
                )?;
            }
        } else {
            put_value(
                schema,
                &mut buf,
                field.number,
                &field.kind,
                fv,
                &fpath,
                depth,
            )?;
        }
    }
    Ok(buf)
}
