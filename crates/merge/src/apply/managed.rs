//! `metadata.managedFields`: parsing, rendering in upstream's order and
//! format, and the per-manager view the field manager works on.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};
use thiserror::Error;

use crate::fieldpath::FieldSet;
use crate::goval::{go_quote, write_go_json_string};

/// The operation a managed fields entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// Fields set through server-side apply.
    Apply,
    /// Fields set through create, update or a non-apply patch.
    Update,
}

impl Operation {
    /// `Apply` or `Update`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `metadata.managedFields` document that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ManagedFieldsError {
    /// The entry list or one of its entries is malformed; upstream's text.
    #[error("{0}")]
    Invalid(String),
}

/// One entry of `metadata.managedFields`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedFieldsEntry {
    /// The field manager name.
    pub manager: String,
    /// What kind of write set the fields.
    pub operation: Operation,
    /// The API version the field set is expressed in.
    pub api_version: String,
    /// When the manager last changed the object (RFC 3339, seconds, UTC).
    pub time: Option<String>,
    /// Always `FieldsV1`.
    pub fields_type: String,
    /// The fields owned by this manager.
    pub fields_v1: FieldSet,
    /// The subresource written through (empty for the main resource).
    pub subresource: String,
}

/// Upstream's manager identifier: the entry without time, fields and (for
/// appliers) API version, as Go's JSON encoder writes it.
pub(crate) fn manager_identifier(
    manager: &str,
    operation: Operation,
    api_version: &str,
    subresource: &str,
) -> String {
    let mut out = String::with_capacity(48 + manager.len() + api_version.len() + subresource.len());
    out.push('{');
    let mut first = true;
    let mut field = |out: &mut String, name: &str, value: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
        write_go_json_string(value, out);
    };
    if !manager.is_empty() {
        field(&mut out, "manager", manager);
    }
    field(&mut out, "operation", operation.as_str());
    if operation == Operation::Update && !api_version.is_empty() {
        field(&mut out, "apiVersion", api_version);
    }
    if !subresource.is_empty() {
        field(&mut out, "subresource", subresource);
    }
    out.push('}');
    out
}

impl ManagedFieldsEntry {
    /// Upstream's identifier of the manager behind this entry (entries with
    /// the same identifier are the same manager).
    pub fn identifier(&self) -> String {
        manager_identifier(
            &self.manager,
            self.operation,
            &self.api_version,
            &self.subresource,
        )
    }

    /// The entry as JSON text, fields in upstream's order.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        let mut first = true;
        let mut field = |out: &mut String, name: &str| {
            if !first {
                out.push(',');
            }
            first = false;
            out.push('"');
            out.push_str(name);
            out.push_str("\":");
        };
        if !self.manager.is_empty() {
            field(&mut out, "manager");
            write_go_json_string(&self.manager, &mut out);
        }
        field(&mut out, "operation");
        write_go_json_string(self.operation.as_str(), &mut out);
        if !self.api_version.is_empty() {
            field(&mut out, "apiVersion");
            write_go_json_string(&self.api_version, &mut out);
        }
        if let Some(t) = &self.time {
            field(&mut out, "time");
            write_go_json_string(t, &mut out);
        }
        if !self.fields_type.is_empty() {
            field(&mut out, "fieldsType");
            write_go_json_string(&self.fields_type, &mut out);
        }
        field(&mut out, "fieldsV1");
        out.push_str(&self.fields_v1.to_fields_v1());
        if !self.subresource.is_empty() {
            field(&mut out, "subresource");
            write_go_json_string(&self.subresource, &mut out);
        }
        out.push('}');
        out
    }

    /// The entry as a JSON value.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        if !self.manager.is_empty() {
            m.insert("manager".into(), Value::String(self.manager.clone()));
        }
        m.insert(
            "operation".into(),
            Value::String(self.operation.as_str().into()),
        );
        if !self.api_version.is_empty() {
            m.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        }
        if let Some(t) = &self.time {
            m.insert("time".into(), Value::String(t.clone()));
        }
        if !self.fields_type.is_empty() {
            m.insert("fieldsType".into(), Value::String(self.fields_type.clone()));
        }
        m.insert("fieldsV1".into(), self.fields_v1.to_value());
        if !self.subresource.is_empty() {
            m.insert(
                "subresource".into(),
                Value::String(self.subresource.clone()),
            );
        }
        Value::Object(m)
    }

    /// Turns `v` into [`ManagedFieldsEntry::to_value`], keeping what
    /// already matches (`v` is usually this manager's previous entry).
    fn write_value(&self, v: &mut Value) {
        let Value::Object(m) = v else {
            *v = self.to_value();
            return;
        };
        let mut count = 0;
        let mut text = |m: &mut Map<String, Value>, key: &str, value: &str| {
            count += 1;
            match m.get_mut(key) {
                Some(Value::String(s)) if s == value => {}
                Some(old) => *old = Value::String(value.to_string()),
                None => {
                    m.insert(key.to_string(), Value::String(value.to_string()));
                }
            }
        };
        if !self.manager.is_empty() {
            text(m, "manager", &self.manager);
        }
        text(m, "operation", self.operation.as_str());
        if !self.api_version.is_empty() {
            text(m, "apiVersion", &self.api_version);
        }
        if let Some(t) = &self.time {
            text(m, "time", t);
        }
        if !self.fields_type.is_empty() {
            text(m, "fieldsType", &self.fields_type);
        }
        if !self.subresource.is_empty() {
            text(m, "subresource", &self.subresource);
        }
        match m.get_mut("fieldsV1") {
            Some(doc) => self.fields_v1.write_value(doc),
            None => {
                m.insert("fieldsV1".into(), self.fields_v1.to_value());
            }
        }
        count += 1;
        if m.len() != count {
            *v = self.to_value();
        }
    }

    /// Whether `v` looks like an entry of the same manager.
    fn same_manager(&self, v: &Value) -> bool {
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
        text("manager") == self.manager
            && text("operation") == self.operation.as_str()
            && text("subresource") == self.subresource
    }

    fn parse(i: usize, v: &Value) -> Result<ManagedFieldsEntry, ManagedFieldsError> {
        let Value::Object(m) = v else {
            return Err(ManagedFieldsError::Invalid(format!(
                "managed fields entry {} is not an object",
                i
            )));
        };
        let text = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let operation = match m.get("operation").and_then(Value::as_str) {
            Some("Apply") => Operation::Apply,
            Some("Update") => Operation::Update,
            _ => {
                return Err(ManagedFieldsError::Invalid(
                    "operation must be `Apply` or `Update`".into(),
                ))
            }
        };
        let api_version = text("apiVersion");
        if api_version.is_empty() {
            return Err(ManagedFieldsError::Invalid(
                "apiVersion must not be empty".into(),
            ));
        }
        let fields_type = text("fieldsType");
        match fields_type.as_str() {
            "FieldsV1" => {}
            "" => {
                return Err(ManagedFieldsError::Invalid(format!(
                    "missing fieldsType in managed fields entry {}",
                    i
                )))
            }
            other => {
                return Err(ManagedFieldsError::Invalid(format!(
                    "invalid fieldsType {} in managed fields entry {}",
                    go_quote(other),
                    i
                )))
            }
        }
        let fields_v1 = match m.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(doc) => FieldSet::from_fields_v1(doc).map_err(|e| {
                ManagedFieldsError::Invalid(format!(
                    "error decoding versioned set: error decoding set: {}",
                    e
                ))
            })?,
        };
        let time = m
            .get("time")
            .and_then(Value::as_str)
            .map(|t| normalize_time(t).unwrap_or_else(|| t.to_string()));
        Ok(ManagedFieldsEntry {
            manager: text("manager"),
            operation,
            api_version,
            time,
            fields_type,
            fields_v1,
            subresource: text("subresource"),
        })
    }
}

/// The managed fields of an object: `metadata.managedFields`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManagedFields {
    /// The entries, in the order given (upstream's order once produced by
    /// the field manager).
    pub entries: Vec<ManagedFieldsEntry>,
}

impl ManagedFields {
    /// No entries.
    pub fn new() -> ManagedFields {
        ManagedFields::default()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Reads a `metadata.managedFields` array (`null` is empty).
    pub fn parse(list: &Value) -> Result<ManagedFields, ManagedFieldsError> {
        match list {
            Value::Null => Ok(ManagedFields::new()),
            Value::Array(items) => Ok(ManagedFields {
                entries: items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| ManagedFieldsEntry::parse(i, v))
                    .collect::<Result<_, _>>()?,
            }),
            _ => Err(ManagedFieldsError::Invalid(
                "managedFields must be a list".into(),
            )),
        }
    }

    /// Reads `metadata.managedFields` of an object (absent is empty).
    pub fn from_object(obj: &Value) -> Result<ManagedFields, ManagedFieldsError> {
        match at(obj, "/metadata/managedFields") {
            None => Ok(ManagedFields::new()),
            Some(v) => ManagedFields::parse(v),
        }
    }

    /// The managed fields an ordinary write starts from, as upstream picks
    /// them: the live object's for a subresource write; none when the new
    /// object resets them (`managedFields: []` or `[{}]`); the new object's
    /// when it carries readable, non-empty ones; the live object's
    /// otherwise (unreadable ones count as empty).
    pub fn for_update(live: &Value, new: &Value, is_subresource: bool) -> ManagedFields {
        let from_live = || ManagedFields::from_object(live).unwrap_or_default();
        if is_subresource {
            return from_live();
        }
        if is_reset(at(new, "/metadata/managedFields")) {
            return ManagedFields::new();
        }
        match ManagedFields::from_object(new) {
            Ok(m) if !m.is_empty() => m,
            _ => from_live(),
        }
    }

    /// The entries as a JSON array.
    pub fn to_value(&self) -> Value {
        Value::Array(
            self.entries
                .iter()
                .map(ManagedFieldsEntry::to_value)
                .collect(),
        )
    }

    /// The entries as JSON text, each in upstream's field order.
    pub fn to_json(&self) -> String {
        let parts: Vec<String> = self
            .entries
            .iter()
            .map(ManagedFieldsEntry::to_json)
            .collect();
        format!("[{}]", parts.join(","))
    }

    /// Stores the entries in `obj.metadata.managedFields`, or removes that
    /// field when there are none.
    pub fn write_to(&self, obj: &mut Value) {
        let Value::Object(root) = obj else {
            return;
        };
        if self.entries.is_empty() {
            if let Some(Value::Object(meta)) = root.get_mut("metadata") {
                meta.remove("managedFields");
            }
            return;
        }
        let meta = root
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        if let Value::Object(meta) = meta {
            // The entries the object had are rewritten in place: most of a
            // manager's fields are usually unchanged by a write.
            let mut previous: Vec<Option<Value>> = match meta.get_mut("managedFields") {
                Some(Value::Array(items)) => std::mem::take(items).into_iter().map(Some).collect(),
                _ => Vec::new(),
            };
            let mut entries = Vec::with_capacity(self.entries.len());
            for e in &self.entries {
                let reusable = previous
                    .iter_mut()
                    .find(|p| p.as_ref().map(|v| e.same_manager(v)).unwrap_or(false))
                    .and_then(Option::take);
                entries.push(match reusable {
                    Some(mut v) => {
                        e.write_value(&mut v);
                        v
                    }
                    None => e.to_value(),
                });
            }
            meta.insert("managedFields".into(), Value::Array(entries));
        }
    }

    /// The entry of a manager, if any.
    pub fn get(
        &self,
        manager: &str,
        operation: Operation,
        subresource: &str,
    ) -> Option<&ManagedFieldsEntry> {
        self.entries.iter().find(|e| {
            e.manager == manager && e.operation == operation && e.subresource == subresource
        })
    }
}

/// The value at a JSON pointer made of plain object keys (no `~` escapes,
/// no list indices), like `Value::pointer` gives it for such pointers.
pub(crate) fn at<'v>(obj: &'v Value, pointer: &str) -> Option<&'v Value> {
    let mut v = obj;
    for key in pointer.split('/').skip(1) {
        v = v.as_object()?.get(key)?;
    }
    Some(v)
}

fn is_reset(list: Option<&Value>) -> bool {
    match list {
        Some(Value::Array(items)) => match items.as_slice() {
            [] => true,
            [Value::Object(m)] => m.values().all(|v| v.is_null() || v.as_str() == Some("")),
            _ => false,
        },
        _ => false,
    }
}

/// One manager as the field manager tracks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ManagerEntry {
    pub manager: String,
    pub operation: Operation,
    pub subresource: String,
    pub set: FieldSet,
    pub api_version: String,
    pub applied: bool,
    pub time: Option<String>,
}

/// Managers keyed by upstream's manager identifier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Managers {
    pub map: BTreeMap<String, ManagerEntry>,
}

impl Managers {
    pub fn from_managed(mf: &ManagedFields) -> Managers {
        let mut map = BTreeMap::new();
        for e in &mf.entries {
            map.insert(
                e.identifier(),
                ManagerEntry {
                    manager: e.manager.clone(),
                    operation: e.operation,
                    subresource: e.subresource.clone(),
                    set: e.fields_v1.clone(),
                    api_version: e.api_version.clone(),
                    applied: e.operation == Operation::Apply,
                    time: e.time.clone(),
                },
            );
        }
        Managers { map }
    }

    /// Upstream's encoding: one entry per manager, sorted by operation,
    /// time (seconds), manager, API version and subresource.
    pub fn encode(&self) -> ManagedFields {
        self.clone().into_encoded()
    }

    /// [`Managers::encode`], moving the field sets instead of copying them.
    pub fn into_encoded(self) -> ManagedFields {
        let mut keyed: Vec<(i64, ManagedFieldsEntry)> = self
            .map
            .into_values()
            .map(|m| ManagedFieldsEntry {
                manager: m.manager,
                operation: if m.applied {
                    Operation::Apply
                } else {
                    m.operation
                },
                api_version: m.api_version,
                time: m.time,
                fields_type: "FieldsV1".into(),
                fields_v1: m.set,
                subresource: m.subresource,
            })
            .map(|e| (time_seconds(&e.time), e))
            .collect();
        keyed.sort_by(|(tp, p), (tq, q)| {
            p.operation
                .cmp(&q.operation)
                .then_with(|| tp.cmp(tq))
                .then_with(|| p.manager.cmp(&q.manager))
                .then_with(|| p.api_version.cmp(&q.api_version))
                .then_with(|| p.subresource.cmp(&q.subresource))
        });
        ManagedFields {
            entries: keyed.into_iter().map(|(_, e)| e).collect(),
        }
    }
}

/// Seconds since the epoch of an RFC 3339 time; 0 when absent or unreadable.
pub(crate) fn time_seconds(t: &Option<String>) -> i64 {
    t.as_deref().and_then(parse_rfc3339).unwrap_or(0)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Seconds since the epoch of an RFC 3339 timestamp
/// (`2006-01-02T15:04:05[.frac](Z|±hh:mm)`).
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let v = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *c == b'+' {
                v
            } else {
                -v
            }
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset)
}

/// Formats seconds since the epoch as upstream writes `metav1.Time`.
pub(crate) fn format_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        y,
        m,
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// An RFC 3339 time in upstream's serialized form (UTC, whole seconds).
pub(crate) fn normalize_time(s: &str) -> Option<String> {
    parse_rfc3339(s).map(format_rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_upstream_document() {
        let doc = json!([
            {"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
             "time": "2024-05-01T10:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}},
                          "f:spec": {"f:replicas": {}}}},
            {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1",
             "time": "2024-05-01T10:00:01Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:status": {"f:replicas": {}}}, "subresource": "status"}
        ]);
        let mf = ManagedFields::parse(&doc).unwrap();
        assert_eq!(mf.to_value(), doc);
        assert_eq!(
            mf.to_json(),
            concat!(
                r#"[{"manager":"kubectl","operation":"Apply","apiVersion":"apps/v1","time":"2024-05-01T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{}}}},"#,
                r#"{"manager":"kube-controller-manager","operation":"Update","apiVersion":"apps/v1","time":"2024-05-01T10:00:01Z","fieldsType":"FieldsV1","fieldsV1":{"f:status":{"f:replicas":{}}},"subresource":"status"}]"#
            )
        );
        assert_eq!(
            mf.entries[0].identifier(),
            r#"{"manager":"kubectl","operation":"Apply"}"#
        );
        assert_eq!(
            mf.entries[1].identifier(),
            r#"{"manager":"kube-controller-manager","operation":"Update","apiVersion":"apps/v1","subresource":"status"}"#
        );
        let mut obj = json!({"metadata": {"name": "x"}});
        mf.write_to(&mut obj);
        assert_eq!(ManagedFields::from_object(&obj).unwrap(), mf);
        ManagedFields::new().write_to(&mut obj);
        assert_eq!(obj, json!({"metadata": {"name": "x"}}));
    }

    #[test]
    fn decode_errors() {
        let bad = |e: Value| ManagedFields::parse(&json!([e])).unwrap_err().to_string();
        assert_eq!(
            bad(json!({"operation": "Patch", "apiVersion": "v1", "fieldsType": "FieldsV1"})),
            "operation must be `Apply` or `Update`"
        );
        assert_eq!(
            bad(json!({"operation": "Apply", "fieldsType": "FieldsV1"})),
            "apiVersion must not be empty"
        );
        assert_eq!(
            bad(json!({"operation": "Apply", "apiVersion": "v1"})),
            "missing fieldsType in managed fields entry 0"
        );
        assert_eq!(
            bad(json!({"operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV2"})),
            "invalid fieldsType \"FieldsV2\" in managed fields entry 0"
        );
    }

    #[test]
    fn encode_order() {
        let entry = |m: &str, op: Operation, t: &str| ManagedFieldsEntry {
            manager: m.into(),
            operation: op,
            api_version: "v1".into(),
            time: Some(t.into()),
            fields_type: "FieldsV1".into(),
            fields_v1: FieldSet::from_fields_v1(&json!({"f:a": {}})).unwrap(),
            subresource: String::new(),
        };
        let mf = ManagedFields {
            entries: vec![
                entry("z", Operation::Update, "2024-01-01T00:00:00Z"),
                entry("b", Operation::Update, "2023-01-01T00:00:00Z"),
                entry("y", Operation::Apply, "2025-01-01T00:00:00Z"),
                entry("a", Operation::Update, "2024-01-01T00:00:00Z"),
            ],
        };
        let names: Vec<String> = Managers::from_managed(&mf)
            .encode()
            .entries
            .into_iter()
            .map(|e| e.manager)
            .collect();
        assert_eq!(names, vec!["y", "b", "a", "z"]);
    }

    #[test]
    fn times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-05-01T10:00:00Z"), Some(1714557600));
        assert_eq!(
            parse_rfc3339("2024-05-01T12:00:00.5+02:00"),
            Some(1714557600)
        );
        assert_eq!(format_rfc3339(1714557600), "2024-05-01T10:00:00Z");
        assert_eq!(parse_rfc3339("nope"), None);
    }

    #[test]
    fn for_update_choice() {
        let entry = json!({"manager": "m", "operation": "Update", "apiVersion": "v1",
                           "fieldsType": "FieldsV1", "fieldsV1": {"f:a": {}}});
        let live = json!({"metadata": {"managedFields": [entry.clone()]}});
        let other = json!({"manager": "n", "operation": "Update", "apiVersion": "v1",
                           "fieldsType": "FieldsV1", "fieldsV1": {"f:b": {}}});
        let new_with = json!({"metadata": {"managedFields": [other]}});
        let new_without = json!({"metadata": {}});
        let reset = json!({"metadata": {"managedFields": []}});
        assert_eq!(
            ManagedFields::for_update(&live, &new_with, false).entries[0].manager,
            "n"
        );
        assert_eq!(
            ManagedFields::for_update(&live, &new_with, true).entries[0].manager,
            "m"
        );
        assert_eq!(
            ManagedFields::for_update(&live, &new_without, false).entries[0].manager,
            "m"
        );
        assert!(ManagedFields::for_update(&live, &reset, false).is_empty());
        assert!(ManagedFields::for_update(
            &live,
            &json!({"metadata": {"managedFields": [{}]}}),
            false
        )
        .is_empty());
    }

    #[test]
    fn write_to_over_previous_entries() {
        let doc = json!([
            {"manager": "a", "operation": "Update", "apiVersion": "v1",
             "time": "2024-05-01T10:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}},
            {"manager": "b", "operation": "Apply", "apiVersion": "v1",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}},
             "subresource": "status"}
        ]);
        let mf = ManagedFields::parse(&doc).unwrap();
        let fresh = |mf: &ManagedFields| {
            let mut obj = json!({"metadata": {"name": "x"}});
            mf.write_to(&mut obj);
            obj
        };
        let previous = [
            doc.clone(),
            json!([]),
            json!("garbage"),
            json!([{"manager": "b", "operation": "Apply", "subresource": "status", "extra": 1}]),
            json!([{"manager": "a", "operation": "Update", "fieldsV1": {"f:spec": {}}, "time": 5}]),
        ];
        for p in previous {
            let mut obj = json!({"metadata": {"name": "x", "managedFields": p.clone()}});
            mf.write_to(&mut obj);
            assert_eq!(obj, fresh(&mf), "over {}", p);
        }
    }
}
