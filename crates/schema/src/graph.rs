//! The type graph the `merge` crate works on (strategic merge patch, server-side
//! apply, managed fields), built from the same definitions as the OpenAPI documents.

use crate::defs::{Definitions, Gvk, REF_PREFIX};
use merge::{Field, ListType, TypeDef, TypeGraph, TypeId};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The graph and the root type of every served kind.
pub struct ApiGraph {
    /// The types.
    pub graph: TypeGraph,
    roots: BTreeMap<Gvk, TypeId>,
}

impl ApiGraph {
    /// The root type of a group/version/kind.
    pub fn root(&self, group: &str, version: &str, kind: &str) -> Option<TypeId> {
        self.roots
            .iter()
            .find(|((g, v, k), _)| *g == group && *v == version && *k == kind)
            .map(|(_, t)| *t)
    }
}

/// The graph, built on first use (with the shape tables, from one set of definitions).
pub fn api_graph() -> &'static ApiGraph {
    &crate::tables().graph
}

/// Struct fields Go declares as values (not pointers) and that therefore exist in an
/// empty object of their parent: (parent definition suffix or "*", field).
const VALUE_FIELDS: &[(&str, &str)] = &[
    ("*", "metadata"),
    ("*", "spec"),
    ("*", "status"),
    ("apps.v1.DeploymentSpec", "template"),
    ("apps.v1.DeploymentSpec", "strategy"),
    ("apps.v1.ReplicaSetSpec", "template"),
    ("apps.v1.StatefulSetSpec", "template"),
    ("apps.v1.StatefulSetSpec", "updateStrategy"),
    ("apps.v1.DaemonSetSpec", "template"),
    ("apps.v1.DaemonSetSpec", "updateStrategy"),
    ("batch.v1.JobSpec", "template"),
    ("batch.v1.CronJobSpec", "jobTemplate"),
    ("core.v1.PodTemplate", "template"),
    ("core.v1.Event", "involvedObject"),
    ("core.v1.Event", "source"),
    ("core.v1.NodeStatus", "daemonEndpoints"),
    ("core.v1.NodeStatus", "nodeInfo"),
    (
        "autoscaling.v2.HorizontalPodAutoscalerSpec",
        "scaleTargetRef",
    ),
    (
        "autoscaling.v1.HorizontalPodAutoscalerSpec",
        "scaleTargetRef",
    ),
];

fn is_value_field(parent: &str, field: &str) -> bool {
    VALUE_FIELDS
        .iter()
        .any(|(p, f)| *f == field && (*p == "*" || parent.ends_with(p)))
}

/// Defaults of list-map key fields (upstream's `default` markers on them).
fn key_default(parent: &str, field: &str) -> Option<Value> {
    let with_protocol = ["core.v1.ContainerPort", "core.v1.ServicePort"];
    (field == "protocol" && with_protocol.iter().any(|p| parent.ends_with(p)))
        .then(|| Value::from("TCP"))
}

struct Builder<'a> {
    g: TypeGraph,
    schemas: &'a BTreeMap<String, Value>,
}

impl Builder<'_> {
    fn named(&mut self, name: &str) -> TypeId {
        if let Some(id) = self.g.lookup(name) {
            return id;
        }
        let id = self.g.declare(name);
        let def = match self.schemas.get(name) {
            Some(schema) => self.definition(name, schema),
            None => TypeDef::Untyped { atomic: false },
        };
        self.g.define(id, def);
        id
    }

    fn definition(&mut self, name: &str, schema: &Value) -> TypeDef {
        let atomic = schema["x-kubernetes-map-type"] == "atomic";
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            let mut fields = BTreeMap::new();
            for (fname, prop) in props {
                let ty = self.resolve(prop);
                let mut f = Field::new(ty);
                if let Some(s) = prop["x-kubernetes-patch-strategy"].as_str() {
                    f = f.strategy(s);
                }
                if let Some(k) = prop["x-kubernetes-patch-merge-key"].as_str() {
                    f = f.merge_key(k);
                }
                if let Some(d) = key_default(name, fname) {
                    f = f.default_value(d);
                }
                if is_value_field(name, fname) {
                    f = f.in_zero();
                }
                fields.insert(fname.clone(), f);
            }
            return TypeDef::Struct { fields, atomic };
        }
        if schema.get("x-kubernetes-int-or-string").is_some() {
            return TypeDef::Scalar;
        }
        match schema["type"].as_str() {
            Some("string" | "integer" | "number" | "boolean") => TypeDef::Scalar,
            Some("object") => match schema.get("additionalProperties") {
                Some(ap @ Value::Object(_)) => TypeDef::Map {
                    values: self.resolve(ap),
                    atomic,
                },
                _ => TypeDef::Untyped { atomic },
            },
            _ => TypeDef::Untyped { atomic },
        }
    }

    fn reference(schema: &Value) -> Option<&str> {
        if let Some(r) = schema["$ref"].as_str() {
            return r.strip_prefix(REF_PREFIX);
        }
        schema["allOf"]
            .as_array()
            .filter(|a| a.len() == 1)
            .and_then(|a| a[0]["$ref"].as_str())
            .and_then(|r| r.strip_prefix(REF_PREFIX))
    }

    fn resolve(&mut self, schema: &Value) -> TypeId {
        if let Some(name) = Self::reference(schema) {
            return self.named(name);
        }
        if schema.get("x-kubernetes-int-or-string").is_some() {
            return TypeId::SCALAR;
        }
        match schema["type"].as_str() {
            Some("array") => {
                let items = self.resolve(&schema["items"]);
                let lt = match schema["x-kubernetes-list-type"].as_str() {
                    Some("set") => ListType::Set,
                    Some("map") => ListType::map(
                        schema["x-kubernetes-list-map-keys"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect::<Vec<_>>(),
                    ),
                    _ => ListType::Atomic,
                };
                self.g.list(items, lt)
            }
            Some("object") => match schema.get("additionalProperties") {
                Some(ap @ Value::Object(_)) => {
                    let values = self.resolve(ap);
                    if schema["x-kubernetes-map-type"] == "atomic" {
                        self.g.atomic_map(values)
                    } else {
                        self.g.map(values)
                    }
                }
                _ => TypeId::UNTYPED,
            },
            Some(_) => TypeId::SCALAR,
            None => TypeId::UNTYPED,
        }
    }
}

/// Builds the graph from the definitions.
pub(crate) fn build(defs: &Definitions) -> ApiGraph {
    let mut b = Builder {
        g: TypeGraph::new(),
        schemas: &defs.schemas,
    };
    let mut roots = BTreeMap::new();
    for (gvk, name) in &defs.kinds {
        roots.insert(*gvk, b.named(name));
    }
    ApiGraph { graph: b.g, roots }
}

/// An empty map, for callers building objects.
pub fn empty() -> Map<String, Value> {
    Map::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_patch_merges_containers_by_name() {
        let g = api_graph();
        let root = g.root("apps", "v1", "Deployment").unwrap();
        let live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}});
        let out = merge::apply_strategic_patch(&live, &patch, &g.graph, root).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([
            {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}])
        );
    }

    #[test]
    fn creation_field_set_has_no_dot_for_value_structs() {
        let g = api_graph();
        let root = g.root("", "v1", "ConfigMap").unwrap();
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "b"}}, "data": {"k": "v"}});
        let m = merge::apply::update(
            &json!({}),
            &obj,
            "kubectl-create",
            "",
            &merge::ManagedFields::default(),
            &g.graph,
            root,
            "2024-01-01T00:00:00Z",
        );
        let v = m.to_value();
        assert_eq!(
            v[0]["fieldsV1"],
            json!({"f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:labels": {".": {}, "f:a": {}}}})
        );
    }
}
