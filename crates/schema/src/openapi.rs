//! The OpenAPI documents: paths of every served resource (with the operations,
//! parameters and `x-kubernetes-action`/`x-kubernetes-group-version-kind` extensions
//! kubectl looks for) plus the definitions they use. OpenAPI v3 is split per group
//! version and listed at `/openapi/v3`; v2 is one document.

use crate::defs::{self, Definitions, REF_PREFIX};
use resources::{catalog, Backing, ResourceInfo};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

/// The group-version path segment of a document (`api/v1`, `apis/apps/v1`).
pub fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn camel_group(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    group
        .trim_end_matches(".k8s.io")
        .split(['.', '-'])
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn tag(group: &str, version: &str) -> String {
    let g = if group.is_empty() {
        "core".to_string()
    } else {
        group.trim_end_matches(".k8s.io").replace('.', "_")
    };
    format!("{g}_{version}")
}

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": ty}, "uniqueItems": true})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string"}, "uniqueItems": true})
}

fn write_params() -> Vec<Value> {
    vec![
        query(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted. Valid value: All.",
        ),
        query(
            "fieldManager",
            "string",
            "The name of the actor making the change, recorded in managedFields.",
        ),
        query(
            "fieldValidation",
            "string",
            "How to treat unknown or duplicate fields in the request: Ignore, Warn or Strict.",
        ),
    ]
}

fn list_params() -> Vec<Value> {
    vec![
        query(
            "allowWatchBookmarks",
            "boolean",
            "Whether watch events of type BOOKMARK may be sent.",
        ),
        query(
            "continue",
            "string",
            "The continue token of the previous page.",
        ),
        query(
            "fieldSelector",
            "string",
            "Restricts the list by field values.",
        ),
        query("labelSelector", "string", "Restricts the list by labels."),
        query("limit", "integer", "The most items to return."),
        query(
            "resourceVersion",
            "string",
            "Which resource version the result must reflect.",
        ),
        query(
            "resourceVersionMatch",
            "string",
            "How resourceVersion is applied: Exact or NotOlderThan.",
        ),
        query(
            "sendInitialEvents",
            "boolean",
            "Whether a watch starts with the current state.",
        ),
        query(
            "timeoutSeconds",
            "integer",
            "How long a list or watch may take.",
        ),
        query("watch", "boolean", "Watch for changes instead of listing."),
    ]
}

fn delete_params() -> Vec<Value> {
    vec![
        query(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted. Valid value: All.",
        ),
        query(
            "gracePeriodSeconds",
            "integer",
            "Seconds before the object is deleted.",
        ),
        query(
            "orphanDependents",
            "boolean",
            "Deprecated: use propagationPolicy.",
        ),
        query(
            "propagationPolicy",
            "string",
            "Whether and how dependents are deleted: Orphan, Background or Foreground.",
        ),
    ]
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("{REF_PREFIX}{name}")})
}

struct OpSpec<'a> {
    verb: &'static str,
    action: &'static str,
    op_prefix: &'a str,
    scope: &'a str,
    body: Option<String>,
    response: String,
    params: Vec<Value>,
    codes: &'static [&'static str],
    gvk: (&'a str, &'a str, &'a str),
    suffix: &'a str,
    consumes: &'static [&'static str],
}

fn operation(o: &OpSpec<'_>, info: &ResourceInfo) -> Value {
    let (g, v, k) = o.gvk;
    let mut op = json!({
        "operationId": format!("{}{}{}{}{}{}", o.op_prefix, camel_group(info.group), capitalize(info.version), o.scope, k, o.suffix),
        "tags": [tag(info.group, info.version)],
        "description": format!("{} {}", o.action, info.kind),
        "parameters": o.params,
        "responses": {"401": {"description": "Unauthorized"}},
        "x-kubernetes-action": o.action,
        "x-kubernetes-group-version-kind": {"group": g, "version": v, "kind": k},
    });
    for code in o.codes {
        op["responses"][*code] = json!({
            "description": "OK",
            "content": {
                "application/json": {"schema": schema_ref(&o.response)},
                "application/yaml": {"schema": schema_ref(&o.response)},
            },
        });
    }
    if let Some(body) = &o.body {
        let content: Map<String, Value> = o
            .consumes
            .iter()
            .map(|ct| (ct.to_string(), json!({"schema": schema_ref(body)})))
            .collect();
        op["requestBody"] = json!({"content": content, "required": true});
    }
    let _ = o.verb;
    op
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

const JSON_BODY: &[&str] = &["*/*"];
const PATCH_BODY: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

/// Paths of one resource.
fn resource_paths(info: &ResourceInfo, defs: &Definitions, paths: &mut BTreeMap<String, Value>) {
    let Some(def) = defs.kinds.get(&(info.group, info.version, info.kind)) else {
        return;
    };
    let gv = group_version_path(info.group, info.version);
    let ns = info.namespaced();
    let scope = if ns { "Namespaced" } else { "" };
    let collection = if ns {
        format!("/{gv}/namespaces/{{namespace}}/{}", info.plural)
    } else {
        format!("/{gv}/{}", info.plural)
    };
    let gvk = (info.group, info.version, info.kind);
    let list_def = defs::list_name(def);
    let status = "io.k8s.apimachinery.pkg.apis.meta.v1.Status".to_string();
    let delete_opts = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions".to_string();
    let mut common = vec![query(
        "pretty",
        "string",
        "If 'true', the output is pretty printed.",
    )];
    if ns {
        common.push(path_param(
            "namespace",
            "object name and auth scope, such as for teams and projects",
        ));
    }
    let mut coll = Map::new();
    let create_prefix = "create".to_string();
    if matches!(info.backing, Backing::Virtual) {
        coll.insert(
            "post".into(),
            operation(
                &OpSpec {
                    verb: "post",
                    action: "post",
                    op_prefix: &create_prefix,
                    scope,
                    body: Some(def.clone()),
                    response: def.clone(),
                    params: write_params(),
                    codes: &["200", "201", "202"],
                    gvk,
                    suffix: "",
                    consumes: JSON_BODY,
                },
                info,
            ),
        );
        coll.insert("parameters".into(), Value::Array(common));
        paths.insert(collection, Value::Object(coll));
        return;
    }
    if info.allows("list") {
        let p = "list".to_string();
        coll.insert(
            "get".into(),
            operation(
                &OpSpec {
                    verb: "get",
                    action: "list",
                    op_prefix: &p,
                    scope,
                    body: None,
                    response: list_def.clone(),
                    params: list_params(),
                    codes: &["200"],
                    gvk,
                    suffix: "",
                    consumes: JSON_BODY,
                },
                info,
            ),
        );
    }
    if info.allows("create") {
        coll.insert(
            "post".into(),
            operation(
                &OpSpec {
                    verb: "post",
                    action: "post",
                    op_prefix: &create_prefix,
                    scope,
                    body: Some(def.clone()),
                    response: def.clone(),
                    params: write_params(),
                    codes: &["200", "201", "202"],
                    gvk,
                    suffix: "",
                    consumes: JSON_BODY,
                },
                info,
            ),
        );
    }
    if info.allows("deletecollection") {
        let p = "deleteCollection".to_string();
        let mut params = delete_params();
        params.extend(list_params());
        coll.insert(
            "delete".into(),
            operation(
                &OpSpec {
                    verb: "delete",
                    action: "deletecollection",
                    op_prefix: &p,
                    scope,
                    body: Some(delete_opts.clone()),
                    response: status.clone(),
                    params,
                    codes: &["200"],
                    gvk,
                    suffix: "",
                    consumes: JSON_BODY,
                },
                info,
            ),
        );
    }
    coll.insert("parameters".into(), Value::Array(common.clone()));
    paths.insert(collection.clone(), Value::Object(coll));

    if ns && info.allows("list") {
        let mut all = Map::new();
        all.insert(
            "get".into(),
            operation(
                &OpSpec {
                    verb: "get",
                    action: "list",
                    op_prefix: "list",
                    scope: "",
                    body: None,
                    response: list_def,
                    params: list_params(),
                    codes: &["200"],
                    gvk,
                    suffix: "ForAllNamespaces",
                    consumes: JSON_BODY,
                },
                info,
            ),
        );
        all.insert(
            "parameters".into(),
            json!([query(
                "pretty",
                "string",
                "If 'true', the output is pretty printed."
            )]),
        );
        paths.insert(format!("/{gv}/{}", info.plural), Value::Object(all));
    }

    let mut item_params = common.clone();
    item_params.push(path_param("name", &format!("name of the {}", info.kind)));
    let mut item = Map::new();
    let p = |verb: &str| verb.to_string();
    if info.allows("get") {
        item.insert(
            "get".into(),
            operation(
                &OpSpec {
                    verb: "get",
                    action: "get",
                    op_prefix: &p("read"),
                    scope,
                    body: None,
                    response: def.clone(),
                    params: vec![],
                    codes: &["200"],
                    gvk,
                    suffix: "",
                    consumes: JSON_BODY,
                },
                info,
            ),
        );
    }
    if info.allows("update") {
        item.insert(
            "put".into(),
            operation(
                &OpSpec {
                    verb: "put",
                    action: "put",
                    op_prefix: &p("replace"),
                    scope,
                    body: Some(def.clone()),
                    response: def.clone(),
                    params: write_params(),
                    codes: &["200", "201"],
                    gvk,
                    suffix: "",
                    consumes: JSON_BODY,
                },
                info,
            ),
        );
    }
    if info.allows("patch") {
        let mut params = write_params();
        params.push(query(
            "force",
            "boolean",
            "Force is going to force Apply requests.",
        ));
        item.insert(
            "patch".into(),
            operation(
                &OpSpec {
                    verb: "patch",
                    action: "patch",
                    op_prefix: &p("patch"),
                    scope,
                    body: Some("io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into()),
                    response: def.clone(),
                    params,
                    codes: &["200", "201"],
                    gvk,
                    suffix: "",
                    consumes: PATCH_BODY,
                },
                info,
            ),
        );
    }
    if info.allows("delete") {
        item.insert(
            "delete".into(),
            operation(
                &OpSpec {
                    verb: "delete",
                    action: "delete",
                    op_prefix: &p("delete"),
                    scope,
                    body: Some(delete_opts),
                    response: status,
                    params: delete_params(),
                    codes: &["200", "202"],
                    gvk,
                    suffix: "",
                    consumes: JSON_BODY,
                },
                info,
            ),
        );
    }
    item.insert("parameters".into(), Value::Array(item_params.clone()));
    paths.insert(format!("{collection}/{{name}}"), Value::Object(item));

    for sub in info.subresources {
        let (sub_def, sub_gvk) = match sub.name {
            "status" | "approval" => (def.clone(), gvk),
            "scale" => match defs.kinds.get(&("autoscaling", "v1", "Scale")) {
                Some(d) => (d.clone(), ("autoscaling", "v1", "Scale")),
                None => continue,
            },
            _ => continue,
        };
        let suffix = capitalize(sub.name);
        let mut m = Map::new();
        m.insert(
            "get".into(),
            operation(
                &OpSpec {
                    verb: "get",
                    action: "get",
                    op_prefix: &p("read"),
                    scope,
                    body: None,
                    response: sub_def.clone(),
                    params: vec![],
                    codes: &["200"],
                    gvk: sub_gvk,
                    suffix: &suffix,
                    consumes: JSON_BODY,
                },
                info,
            ),
        );
        m.insert(
            "put".into(),
            operation(
                &OpSpec {
                    verb: "put",
                    action: "put",
                    op_prefix: &p("replace"),
                    scope,
                    body: Some(sub_def.clone()),
                    response: sub_def.clone(),
                    params: write_params(),
                    codes: &["200", "201"],
                    gvk: sub_gvk,
                    suffix: &suffix,
                    consumes: JSON_BODY,
                },
                info,
            ),
        );
        let mut params = write_params();
        params.push(query(
            "force",
            "boolean",
            "Force is going to force Apply requests.",
        ));
        m.insert(
            "patch".into(),
            operation(
                &OpSpec {
                    verb: "patch",
                    action: "patch",
                    op_prefix: &p("patch"),
                    scope,
                    body: Some("io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into()),
                    response: sub_def,
                    params,
                    codes: &["200", "201"],
                    gvk: sub_gvk,
                    suffix: &suffix,
                    consumes: PATCH_BODY,
                },
                info,
            ),
        );
        m.insert("parameters".into(), Value::Array(item_params.clone()));
        paths.insert(
            format!("{collection}/{{name}}/{}", sub.name),
            Value::Object(m),
        );
    }
}

fn patch_definition() -> Value {
    json!({"description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.", "type": "object"})
}

/// Group versions with documents, in `/openapi/v3` order.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in catalog() {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// The OpenAPI v3 document of one group version.
pub fn v3_group_version(defs: &Definitions, group: &str, version: &str) -> Option<Value> {
    let mut paths = BTreeMap::new();
    let mut found = false;
    for info in catalog()
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        found = true;
        resource_paths(info, defs, &mut paths);
    }
    if !found {
        return None;
    }
    let mut refs = Vec::new();
    for p in paths.values() {
        collect(p, &mut refs);
    }
    let used = defs::closure(defs, refs.iter().map(String::as_str));
    let mut schemas = Map::new();
    for name in used {
        if let Some(s) = defs.schemas.get(&name) {
            let mut s = s.clone();
            defs::wrap_refs_in_all_of(&mut s);
            schemas.insert(name, s);
        }
    }
    schemas.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
        patch_definition(),
    );
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}},
        },
    }))
}

fn collect(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                if let Some(n) = r.strip_prefix(REF_PREFIX) {
                    out.push(n.to_string());
                }
            }
            m.values().for_each(|x| collect(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
        _ => {}
    }
}

/// A short content hash of a document, for `serverRelativeURL` cache busting.
pub fn hash(bytes: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("{:016X}{:016X}", h.finish(), bytes.len())
}

/// The `/openapi/v3` index, given each group version's document hash.
pub fn v3_index(hashes: &BTreeMap<String, String>) -> Value {
    let paths: Map<String, Value> = hashes
        .iter()
        .map(|(path, h)| {
            (
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={h}")}),
            )
        })
        .collect();
    json!({ "paths": paths })
}

/// Converts a v3 operation to v2 form (body parameter, consumes/produces).
fn v2_operation(op: &Value) -> Value {
    let mut op = op.clone();
    let Some(m) = op.as_object_mut() else {
        return op;
    };
    let mut params: Vec<Value> = m
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(v2_param)
        .collect();
    if let Some(body) = m.remove("requestBody") {
        let consumes: Vec<String> = body["content"]
            .as_object()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default();
        let schema = body["content"]
            .as_object()
            .and_then(|c| c.values().next())
            .map(|c| c["schema"].clone())
            .unwrap_or(Value::Null);
        params.insert(
            0,
            json!({"name": "body", "in": "body", "required": true, "schema": schema}),
        );
        m.insert("consumes".into(), json!(consumes));
    }
    m.insert("parameters".into(), Value::Array(params));
    m.insert(
        "produces".into(),
        json!([
            "application/json",
            "application/yaml",
            "application/vnd.kubernetes.protobuf"
        ]),
    );
    m.insert("schemes".into(), json!(["https"]));
    if let Some(Value::Object(responses)) = m.get_mut("responses") {
        for r in responses.values_mut() {
            let schema = r["content"]["application/json"]["schema"].clone();
            if let Some(rm) = r.as_object_mut() {
                rm.remove("content");
                if !schema.is_null() {
                    rm.insert("schema".into(), schema);
                }
            }
        }
    }
    op
}

fn v2_param(p: Value) -> Value {
    let mut p = p;
    if let Some(m) = p.as_object_mut() {
        if let Some(Value::Object(s)) = m.remove("schema") {
            for (k, v) in s {
                m.insert(k, v);
            }
        }
    }
    p
}

/// The OpenAPI v2 (swagger) document.
pub fn v2(defs: &Definitions) -> Value {
    let mut paths = BTreeMap::new();
    for info in catalog() {
        resource_paths(info, defs, &mut paths);
    }
    let mut v2paths = Map::new();
    for (path, item) in paths {
        let mut out = Map::new();
        if let Some(m) = item.as_object() {
            for (k, v) in m {
                if k == "parameters" {
                    out.insert(
                        k.clone(),
                        Value::Array(
                            v.as_array()
                                .cloned()
                                .unwrap_or_default()
                                .into_iter()
                                .map(v2_param)
                                .collect(),
                        ),
                    );
                } else {
                    out.insert(k.clone(), v2_operation(v));
                }
            }
        }
        v2paths.insert(path, Value::Object(out));
    }
    let mut definitions: Map<String, Value> = defs
        .schemas
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    definitions.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
        patch_definition(),
    );
    let mut doc = json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": v2paths,
        "definitions": definitions,
        "securityDefinitions": {"BearerToken": {"description": "Bearer Token authentication", "type": "apiKey", "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    });
    defs::rewrite_refs(&mut doc, "#/definitions/");
    doc
}

/// Whether `(group, version)` has a document.
pub fn has_group_version(group: &str, version: &str) -> bool {
    catalog()
        .iter()
        .any(|r| r.group == group && r.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kubectl's client-side validation looks every kind up in these documents; a
    /// served kind without a schema makes `kubectl apply` fail ("failed to check CRD").
    #[test]
    fn every_served_kind_has_paths_and_a_schema() {
        let defs = defs::definitions();
        for (g, v) in group_versions() {
            let doc = v3_group_version(&defs, g, v).unwrap();
            for r in catalog().iter().filter(|r| r.group == g && r.version == v) {
                let has = doc["paths"].as_object().unwrap().values().any(|ops| {
                    ops.as_object()
                        .into_iter()
                        .flatten()
                        .any(|(_, op)| op["x-kubernetes-group-version-kind"]["kind"] == r.kind)
                });
                assert!(has, "no paths for {g}/{v} {}", r.kind);
            }
        }
    }

    #[test]
    fn patch_operations_advertise_field_validation() {
        let doc = v3_group_version(&defs::definitions(), "", "v1").unwrap();
        let op = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "ConfigMap");
        assert_eq!(op["operationId"], "patchCoreV1NamespacedConfigMap");
        let names: Vec<&str> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"fieldValidation"));
        assert!(names.contains(&"dryRun"));
        assert!(doc["components"]["schemas"]["io.k8s.api.core.v1.ConfigMap"].is_object());
        assert!(doc["components"]["schemas"]
            .get("io.k8s.api.apps.v1.Deployment")
            .is_none());
        let apps = v3_group_version(&defs::definitions(), "apps", "v1").unwrap();
        assert_eq!(
            apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["put"]
                ["x-kubernetes-group-version-kind"]["kind"],
            "Scale"
        );
        assert_eq!(camel_group("networking.k8s.io"), "Networking");
        assert_eq!(
            camel_group("rbac.authorization.k8s.io"),
            "RbacAuthorization"
        );
    }

    #[test]
    fn v2_has_body_parameters_and_definitions() {
        let doc = v2(&defs::definitions());
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["post"];
        assert_eq!(op["parameters"][0]["in"], "body");
        assert_eq!(
            op["parameters"][0]["schema"]["$ref"],
            "#/definitions/io.k8s.api.apps.v1.Deployment"
        );
        assert!(doc["definitions"]["io.k8s.api.core.v1.PodSpec"].is_object());
    }
}
