//! The type definitions: JSON schemas of every served kind and everything they
//! reference, generated from k8s-openapi's schemars implementations and completed with
//! the facts OpenAPI carries beyond plain JSON Schema: `x-kubernetes-group-version-kind`
//! on kinds, list and map types (`x-kubernetes-list-type`, `-list-map-keys`,
//! `-map-type`) and strategic-merge-patch metadata (`x-kubernetes-patch-strategy`,
//! `-patch-merge-key`), from the tables in `data/`.

use k8s_openapi::api;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Where definitions are referenced from (the prefix of every `$ref`).
pub const REF_PREFIX: &str = "#/components/schemas/";

/// A group, version and kind.
pub type Gvk = (&'static str, &'static str, &'static str);

/// All definitions by name (`io.k8s.api.core.v1.Pod`), with `$ref`s pointing at
/// [`REF_PREFIX`], and the kinds each definition serves as.
pub struct Definitions {
    /// Definition name → schema.
    pub schemas: BTreeMap<String, Value>,
    /// Definition name of each served group/version/kind.
    pub kinds: BTreeMap<Gvk, String>,
}

struct Root {
    gvk: Gvk,
    add: fn(&mut SchemaGenerator) -> String,
    list: bool,
}

fn name_of<T: JsonSchema>(g: &mut SchemaGenerator) -> String {
    g.subschema_for::<T>();
    T::schema_name().into_owned()
}

macro_rules! roots {
    ($( ($g:literal, $v:literal, $k:literal, $t:ty, $list:literal) ),* $(,)?) => {
        vec![$( Root { gvk: ($g, $v, $k), add: name_of::<$t>, list: $list } ),*]
    };
}

fn roots() -> Vec<Root> {
    roots![
        ("", "v1", "Binding", api::core::v1::Binding, false),
        ("", "v1", "ComponentStatus", api::core::v1::ComponentStatus, true),
        ("", "v1", "ConfigMap", api::core::v1::ConfigMap, true),
        ("", "v1", "Endpoints", api::core::v1::Endpoints, true),
        ("", "v1", "Event", api::core::v1::Event, true),
        ("", "v1", "LimitRange", api::core::v1::LimitRange, true),
        ("", "v1", "Namespace", api::core::v1::Namespace, true),
        ("", "v1", "Node", api::core::v1::Node, true),
        ("", "v1", "PersistentVolumeClaim", api::core::v1::PersistentVolumeClaim, true),
        ("", "v1", "PersistentVolume", api::core::v1::PersistentVolume, true),
        ("", "v1", "Pod", api::core::v1::Pod, true),
        ("", "v1", "PodTemplate", api::core::v1::PodTemplate, true),
        ("", "v1", "ReplicationController", api::core::v1::ReplicationController, true),
        ("", "v1", "ResourceQuota", api::core::v1::ResourceQuota, true),
        ("", "v1", "Secret", api::core::v1::Secret, true),
        ("", "v1", "ServiceAccount", api::core::v1::ServiceAccount, true),
        ("", "v1", "Service", api::core::v1::Service, true),
        ("apps", "v1", "ControllerRevision", api::apps::v1::ControllerRevision, true),
        ("apps", "v1", "DaemonSet", api::apps::v1::DaemonSet, true),
        ("apps", "v1", "Deployment", api::apps::v1::Deployment, true),
        ("apps", "v1", "ReplicaSet", api::apps::v1::ReplicaSet, true),
        ("apps", "v1", "StatefulSet", api::apps::v1::StatefulSet, true),
        ("batch", "v1", "CronJob", api::batch::v1::CronJob, true),
        ("batch", "v1", "Job", api::batch::v1::Job, true),
        ("autoscaling", "v1", "HorizontalPodAutoscaler", api::autoscaling::v1::HorizontalPodAutoscaler, true),
        ("autoscaling", "v1", "Scale", api::autoscaling::v1::Scale, false),
        ("autoscaling", "v2", "HorizontalPodAutoscaler", api::autoscaling::v2::HorizontalPodAutoscaler, true),
        ("certificates.k8s.io", "v1", "CertificateSigningRequest", api::certificates::v1::CertificateSigningRequest, true),
        ("coordination.k8s.io", "v1", "Lease", api::coordination::v1::Lease, true),
        ("discovery.k8s.io", "v1", "EndpointSlice", api::discovery::v1::EndpointSlice, true),
        ("events.k8s.io", "v1", "Event", api::events::v1::Event, true),
        ("policy", "v1", "PodDisruptionBudget", api::policy::v1::PodDisruptionBudget, true),
        ("policy", "v1", "Eviction", api::policy::v1::Eviction, false),
        ("networking.k8s.io", "v1", "IngressClass", api::networking::v1::IngressClass, true),
        ("networking.k8s.io", "v1", "Ingress", api::networking::v1::Ingress, true),
        ("networking.k8s.io", "v1", "NetworkPolicy", api::networking::v1::NetworkPolicy, true),
        ("storage.k8s.io", "v1", "StorageClass", api::storage::v1::StorageClass, true),
        ("scheduling.k8s.io", "v1", "PriorityClass", api::scheduling::v1::PriorityClass, true),
        ("authorization.k8s.io", "v1", "LocalSubjectAccessReview", api::authorization::v1::LocalSubjectAccessReview, false),
        ("authorization.k8s.io", "v1", "SelfSubjectAccessReview", api::authorization::v1::SelfSubjectAccessReview, false),
        ("authorization.k8s.io", "v1", "SelfSubjectRulesReview", api::authorization::v1::SelfSubjectRulesReview, false),
        ("authorization.k8s.io", "v1", "SubjectAccessReview", api::authorization::v1::SubjectAccessReview, false),
        ("authentication.k8s.io", "v1", "SelfSubjectReview", api::authentication::v1::SelfSubjectReview, false),
        ("authentication.k8s.io", "v1", "TokenReview", api::authentication::v1::TokenReview, false),
        ("authentication.k8s.io", "v1", "TokenRequest", api::authentication::v1::TokenRequest, false),
        ("", "v1", "Status", meta::Status, false),
        ("", "v1", "DeleteOptions", meta::DeleteOptions, false),
        ("", "v1", "WatchEvent", meta::WatchEvent<()>, false),
    ]
}

fn load(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or(Value::Null)
}

fn list_types() -> &'static Value {
    static T: OnceLock<Value> = OnceLock::new();
    T.get_or_init(|| load(include_str!("../data/list_types.json")))
}

fn patch_strategies() -> &'static Value {
    static T: OnceLock<Value> = OnceLock::new();
    T.get_or_init(|| load(include_str!("../data/patch_strategies.json")))
}

/// The definition name of a kind's list (`io.k8s.api.core.v1.PodList`).
pub fn list_name(def: &str) -> String {
    format!("{def}List")
}

fn list_schema(item_def: &str, kind: &str, gvk: Gvk) -> Value {
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this representation of the list."},
            "items": {"type": "array", "description": format!("The {kind} objects."), "items": {"$ref": format!("{REF_PREFIX}{item_def}")}},
            "kind": {"type": "string", "description": "Kind of this representation of the list."},
            "metadata": {"$ref": format!("{REF_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"), "description": "Standard list metadata."},
        },
        "x-kubernetes-group-version-kind": [{"group": gvk.0, "version": gvk.1, "kind": format!("{kind}List")}],
    })
}

/// Adds the extension facts to one definition.
fn annotate(name: &str, schema: &mut Value) {
    let lists = list_types().get(name);
    let patches = patch_strategies().get(name);
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        for (field, prop) in props.iter_mut() {
            let Some(p) = prop.as_object_mut() else {
                continue;
            };
            if let Some(l) = lists.and_then(|l| l.get(field)) {
                let is_array = p.get("type") == Some(&json!("array"));
                if let (Some(t), true) = (l.get("listType"), is_array) {
                    p.insert("x-kubernetes-list-type".into(), t.clone());
                }
                if let (Some(k), true) = (l.get("listMapKeys"), is_array) {
                    p.insert("x-kubernetes-list-map-keys".into(), k.clone());
                }
                if let Some(m) = l.get("mapType") {
                    p.insert("x-kubernetes-map-type".into(), m.clone());
                }
            }
            if let Some(ps) = patches.and_then(|l| l.get(field)) {
                if let Some(s) = ps.get("strategy") {
                    p.insert("x-kubernetes-patch-strategy".into(), s.clone());
                }
                if let Some(k) = ps.get("key") {
                    p.insert("x-kubernetes-patch-merge-key".into(), k.clone());
                }
            }
        }
    }
    if let Some(m) = lists
        .and_then(|l| l.get("."))
        .and_then(|d| d.get("mapType"))
    {
        if let Some(obj) = schema.as_object_mut() {
            obj.insert("x-kubernetes-map-type".into(), m.clone());
        }
    }
}

/// Builds the definitions. They are large (every type with its description): callers
/// build what they need from them and drop them, rather than keeping them resident.
pub fn definitions() -> Definitions {
    build()
}

fn build() -> Definitions {
    let mut g = SchemaGenerator::new(SchemaSettings::openapi3());
    let mut kinds = BTreeMap::new();
    let mut lists = Vec::new();
    for root in roots() {
        let name = (root.add)(&mut g);
        kinds.insert(root.gvk, name.clone());
        if root.list {
            lists.push((root.gvk, name));
        }
    }
    let mut schemas: BTreeMap<String, Value> = g
        .definitions()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (gvk, name) in &lists {
        let list = list_name(name);
        schemas.insert(list.clone(), list_schema(name, gvk.2, *gvk));
        kinds.insert(
            (
                gvk.0,
                gvk.1,
                Box::leak(format!("{}List", gvk.2).into_boxed_str()),
            ),
            list,
        );
    }
    for (name, schema) in schemas.iter_mut() {
        annotate(name, schema);
    }
    // Which group/version/kinds each definition is.
    let mut gvks: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for ((g, v, k), name) in &kinds {
        gvks.entry(name.clone())
            .or_default()
            .push(json!({"group": g, "version": v, "kind": k}));
    }
    for (name, list) in gvks {
        if let Some(Value::Object(s)) = schemas.get_mut(&name) {
            s.insert("x-kubernetes-group-version-kind".into(), Value::Array(list));
        }
    }
    Definitions { schemas, kinds }
}

/// Names of the definitions `roots` reference, transitively (including themselves).
pub fn closure<'a>(defs: &'a Definitions, roots: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut seen: BTreeMap<String, ()> = BTreeMap::new();
    let mut stack: Vec<String> = roots.into_iter().map(str::to_string).collect();
    while let Some(n) = stack.pop() {
        if seen.contains_key(&n) {
            continue;
        }
        let Some(schema) = defs.schemas.get(&n) else {
            continue;
        };
        seen.insert(n, ());
        collect_refs(schema, &mut stack);
    }
    seen.into_keys().collect()
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                if let Some(n) = r.strip_prefix(REF_PREFIX) {
                    out.push(n.to_string());
                }
            }
            m.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// Rewrites `$ref` prefixes (for OpenAPI v2's `#/definitions/`).
pub fn rewrite_refs(v: &mut Value, to: &str) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                if let Some(n) = r.strip_prefix(REF_PREFIX) {
                    *r = format!("{to}{n}");
                }
            }
            m.values_mut().for_each(|x| rewrite_refs(x, to));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_refs(x, to)),
        _ => {}
    }
}

/// OpenAPI v3 puts a `$ref` with siblings (description, extensions) inside `allOf`,
/// as upstream's documents do; plain JSON Schema readers ignore siblings of `$ref`.
pub fn wrap_refs_in_all_of(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for x in m.values_mut() {
                wrap_refs_in_all_of(x);
            }
            if m.len() > 1 {
                if let Some(r) = m.remove("$ref") {
                    m.insert("allOf".into(), json!([{"$ref": r}]));
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(wrap_refs_in_all_of),
        _ => {}
    }
}

/// An empty object map (for building documents).
pub fn object() -> Map<String, Value> {
    Map::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_carry_extensions() {
        let d = &definitions();
        let pod = &d.schemas["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["x-kubernetes-group-version-kind"],
            json!([{"group": "", "version": "v1", "kind": "Pod"}])
        );
        let spec = &d.schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(spec["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(spec["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(spec["x-kubernetes-list-type"], "map");
        assert_eq!(spec["x-kubernetes-list-map-keys"], json!(["name"]));
        let list = &d.schemas["io.k8s.api.apps.v1.DeploymentList"];
        assert_eq!(
            list["x-kubernetes-group-version-kind"][0]["kind"],
            "DeploymentList"
        );
        assert!(d
            .kinds
            .contains_key(&("autoscaling", "v2", "HorizontalPodAutoscaler")));
        // HPA v1 and v2 are different definitions.
        assert_ne!(
            d.kinds[&("autoscaling", "v1", "HorizontalPodAutoscaler")],
            d.kinds[&("autoscaling", "v2", "HorizontalPodAutoscaler")]
        );
    }

    #[test]
    fn closure_follows_references() {
        let d = &definitions();
        let c = closure(d, ["io.k8s.api.apps.v1.Deployment"]);
        assert!(c.contains(&"io.k8s.api.core.v1.PodSpec".to_string()));
        assert!(c.contains(&"io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".to_string()));
        assert!(!c.contains(&"io.k8s.api.core.v1.ServiceSpec".to_string()));
    }
}
