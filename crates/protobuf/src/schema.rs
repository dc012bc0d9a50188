//! The committed message table (`data/schema.json`): field numbers, JSON
//! names, wire types and Go pointer-ness of every Kubernetes protobuf
//! message ferrokube transcodes, parsed once on first use.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::ProtoError;

const TABLE: &str = include_str!("../data/schema.json");

/// Proto package of apimachinery's meta/v1 types.
pub(crate) const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

/// Meta kinds every API group version serves (options, status, watch events).
const SHARED_META_KINDS: &[&str] = &[
    "Status",
    "DeleteOptions",
    "CreateOptions",
    "UpdateOptions",
    "PatchOptions",
    "GetOptions",
    "ListOptions",
    "WatchEvent",
    "APIResourceList",
    "APIGroup",
    "APIGroupList",
    "APIVersions",
];

/// Scalar protobuf types used by the Kubernetes messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    String,
    Int32,
    Int64,
    Bool,
    Bytes,
    Double,
}

impl Scalar {
    fn parse(s: &str) -> Option<Scalar> {
        Some(match s {
            "string" => Scalar::String,
            "int32" => Scalar::Int32,
            "int64" => Scalar::Int64,
            "bool" => Scalar::Bool,
            "bytes" => Scalar::Bytes,
            "double" => Scalar::Double,
            _ => return None,
        })
    }
}

/// Type of a field value (or of a map value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Scalar(Scalar),
    /// Full proto name of a message type.
    Message(String),
}

impl Kind {
    fn parse(s: &str) -> Kind {
        Scalar::parse(s).map_or_else(|| Kind::Message(s.to_string()), Kind::Scalar)
    }
}

/// One field of a message.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub number: u32,
    /// JSON name (the proto field name for all but a few apiextensions fields).
    pub json: String,
    pub kind: Kind,
    /// For `map<string, V>` fields: the value type; `kind` is then unused.
    pub map_value: Option<Kind>,
    pub repeated: bool,
    /// Go pointer scalar: a present zero value is kept.
    pub pointer: bool,
    /// Go scalar without `omitempty`: a present zero value is kept.
    pub keep_zero: bool,
    /// Go embedded struct (`json:",inline"`): its fields appear in the parent.
    pub inline: bool,
}

/// One message type.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub fields: Vec<Field>,
    by_number: HashMap<u32, usize>,
}

impl Message {
    /// Index into `fields` of the field with this number, if the schema knows it.
    pub(crate) fn index(&self, number: u32) -> Option<usize> {
        self.by_number.get(&number).copied()
    }
}

/// The whole table.
#[derive(Debug)]
pub(crate) struct Schema {
    pub messages: HashMap<String, Message>,
    kinds: HashMap<String, HashMap<String, String>>,
}

impl Schema {
    /// Full message name for an apiVersion and kind.
    pub(crate) fn kind(&self, api_version: &str, kind: &str) -> Option<&str> {
        if let Some(name) = self.kinds.get(api_version).and_then(|k| k.get(kind)) {
            return Some(name);
        }
        if SHARED_META_KINDS.contains(&kind) && self.kinds.contains_key(api_version) {
            return self
                .kinds
                .get("meta.k8s.io/v1")
                .and_then(|k| k.get(kind))
                .map(String::as_str);
        }
        None
    }

    /// The message with this full name.
    pub(crate) fn message(&self, name: &str) -> Result<&Message, ProtoError> {
        self.messages
            .get(name)
            .ok_or_else(|| ProtoError::Schema(format!("unknown message {name}")))
    }
}

fn parse_table(text: &str) -> Result<Schema, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut messages = HashMap::new();
    let table = root
        .get("messages")
        .and_then(Value::as_object)
        .ok_or("no messages")?;
    for (name, rows) in table {
        let rows = rows
            .as_array()
            .ok_or_else(|| format!("{name}: fields are not a list"))?;
        let mut fields = Vec::with_capacity(rows.len());
        for row in rows {
            let bad = || format!("{name}: malformed field {row}");
            let number = row.get(0).and_then(Value::as_u64).ok_or_else(bad)?;
            let json = row.get(1).and_then(Value::as_str).ok_or_else(bad)?;
            let ty = row.get(2).and_then(Value::as_str).ok_or_else(bad)?;
            let flags = row.get(3).and_then(Value::as_str).unwrap_or("");
            let (kind, map_value) = match ty.strip_prefix("map<").and_then(|t| t.strip_suffix('>'))
            {
                Some(inner) => {
                    let (k, v) = inner.split_once(',').ok_or_else(bad)?;
                    (Kind::parse(k), Some(Kind::parse(v)))
                }
                None => (Kind::parse(ty), None),
            };
            fields.push(Field {
                number: u32::try_from(number).map_err(|_| bad())?,
                json: json.to_string(),
                kind,
                map_value,
                repeated: flags.contains('r'),
                pointer: flags.contains('p'),
                keep_zero: flags.contains('k'),
                inline: flags.contains('i'),
            });
        }
        let by_number = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.number, i))
            .collect();
        messages.insert(name.clone(), Message { fields, by_number });
    }
    let mut kinds = HashMap::new();
    for (gv, entries) in root
        .get("kinds")
        .and_then(Value::as_object)
        .ok_or("no kinds")?
    {
        let entries = entries.as_object().ok_or("malformed kinds")?;
        let map = entries
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.as_str().ok_or("malformed kind")?.to_string())))
            .collect::<Result<HashMap<_, _>, String>>()?;
        kinds.insert(gv.clone(), map);
    }
    Ok(Schema { messages, kinds })
}

/// The parsed table, loaded on first use.
pub(crate) fn schema() -> Result<&'static Schema, ProtoError> {
    static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| parse_table(TABLE))
        .as_ref()
        .map_err(|e| ProtoError::Schema(e.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_loads_and_references_resolve() {
        let s = schema().unwrap();
        assert!(s.messages.len() > 500, "{} messages", s.messages.len());
        for (name, msg) in &s.messages {
            for f in &msg.fields {
                for kind in [Some(&f.kind), f.map_value.as_ref()].into_iter().flatten() {
                    if let Kind::Message(m) = kind {
                        assert!(
                            s.messages.contains_key(m),
                            "{name}.{} refers to missing {m}",
                            f.json
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn kinds_resolve() {
        let s = schema().unwrap();
        assert_eq!(
            s.kind("v1", "ConfigMap"),
            Some("k8s.io.api.core.v1.ConfigMap")
        );
        assert_eq!(
            s.kind("v1", "ConfigMapList"),
            Some("k8s.io.api.core.v1.ConfigMapList")
        );
        assert_eq!(
            s.kind("apps/v1", "Deployment"),
            Some("k8s.io.api.apps.v1.Deployment")
        );
        assert_eq!(
            s.kind("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
            Some("k8s.io.api.authorization.v1.SelfSubjectAccessReview")
        );
        assert_eq!(
            s.kind("policy/v1", "Eviction"),
            Some("k8s.io.api.policy.v1.Eviction")
        );
        assert_eq!(
            s.kind("v1", "Status"),
            Some("k8s.io.apimachinery.pkg.apis.meta.v1.Status")
        );
        assert_eq!(
            s.kind("apps/v1", "DeleteOptions"),
            Some("k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions")
        );
        assert_eq!(s.kind("v1", "Deployment"), None);
        assert_eq!(s.kind("example.com/v1", "Status"), None);
    }

    #[test]
    fn pointer_flags_follow_go_types() {
        let s = schema().unwrap();
        let f = |m: &str, j: &str| {
            s.messages[m]
                .fields
                .iter()
                .find(|f| f.json == j)
                .cloned()
                .unwrap()
        };
        assert!(f("k8s.io.api.apps.v1.DeploymentSpec", "replicas").pointer);
        assert!(!f("k8s.io.api.apps.v1.DeploymentSpec", "minReadySeconds").pointer);
        assert!(
            f(
                "k8s.io.api.core.v1.PodSpec",
                "terminationGracePeriodSeconds"
            )
            .pointer
        );
        assert!(f("k8s.io.api.core.v1.PodSecurityContext", "runAsUser").pointer);
        assert!(f(&format!("{META}.OwnerReference"), "controller").pointer);
        assert!(f("k8s.io.api.core.v1.ContainerPort", "containerPort").keep_zero);
        assert!(f("k8s.io.api.core.v1.Volume", "volumeSource").inline);
    }
}
