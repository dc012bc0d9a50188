//! Discovery documents, built from the resource catalog: `/version`, `/api`, `/apis`,
//! `/apis/<group>`, the per-group-version resource lists, and aggregated discovery
//! (`apidiscovery.k8s.io` v2 and v2beta1) which lets kubectl learn everything in two
//! requests.

use resources::{catalog, ResourceInfo, Scope};
use serde_json::{json, Value};

/// The Kubernetes version ferrokube implements.
pub const KUBE_MAJOR: &str = "1";
/// Minor version.
pub const KUBE_MINOR: &str = "33";
/// `gitVersion` reported by `/version`.
pub const GIT_VERSION: &str = "v1.33.0+ferrokube";

/// The `/version` document.
pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": env!("CARGO_PKG_VERSION"),
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, goarch()),
    })
}

fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Group names in discovery order (core first is separate).
fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in catalog() {
        if !r.group.is_empty() && !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

/// Versions of a group, preferred first.
fn versions(group: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in catalog().iter().filter(|r| r.group == group) {
        if !out.contains(&r.version) {
            out.push(r.version);
        }
    }
    // Prefer the highest stable version (autoscaling/v2 over v1).
    out.sort_by_key(|v| std::cmp::Reverse(version_rank(v)));
    out
}

fn version_rank(v: &str) -> (u32, u32, u32) {
    // Stable > beta > alpha, then by number.
    let (num, rest) = v
        .trim_start_matches('v')
        .split_once(|c: char| !c.is_ascii_digit())
        .unwrap_or((v.trim_start_matches('v'), ""));
    let major = num.parse().unwrap_or(0);
    let (stability, minor) = if let Some(b) = rest.strip_prefix("eta") {
        (1, b.parse().unwrap_or(0))
    } else if let Some(a) = rest.strip_prefix("lpha") {
        (0, a.parse().unwrap_or(0))
    } else {
        (2, 0)
    };
    (stability, major, minor)
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn api_group(group: &str) -> Value {
    let vs = versions(group);
    let entries: Vec<Value> = vs
        .iter()
        .map(|v| json!({"groupVersion": group_version(group, v), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": entries,
        "preferredVersion": entries.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis`.
pub fn group_list() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups().into_iter().map(api_group).collect::<Vec<_>>(),
    })
}

/// `/apis/<group>`, if the group exists.
pub fn group(name: &str) -> Option<Value> {
    groups().contains(&name).then(|| {
        let mut g = api_group(name);
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        g
    })
}

fn resources_of<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
    catalog()
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// `/api/v1` or `/apis/<group>/<version>`, if it exists.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut list = Vec::new();
    for r in resources_of(group, version) {
        let mut e = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced(),
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            e["categories"] = json!(r.categories);
        }
        list.push(e);
        for s in r.subresources {
            let mut e = json!({
                "name": format!("{}/{}", r.plural, s.name),
                "singularName": "",
                "namespaced": r.namespaced(),
                "kind": if s.kind.is_empty() { r.kind } else { s.kind },
                "verbs": s.verbs,
            });
            if let Some(g) = s.group {
                e["group"] = json!(g);
            }
            if let Some(v) = s.version {
                e["version"] = json!(v);
            }
            list.push(e);
        }
    }
    (!list.is_empty()).then(|| {
        json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version(group, version),
            "resources": list,
        })
    })
}

fn discovery_resource(r: &ResourceInfo) -> Value {
    let mut e = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.scope == Scope::Namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        e["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        e["categories"] = json!(r.categories);
    }
    if !r.subresources.is_empty() {
        e["subresources"] = json!(r
            .subresources
            .iter()
            .map(|s| json!({
                "subresource": s.name,
                "responseKind": {
                    "group": s.group.unwrap_or(r.group),
                    "version": s.version.unwrap_or(r.version),
                    "kind": if s.kind.is_empty() { r.kind } else { s.kind },
                },
                "verbs": s.verbs,
            }))
            .collect::<Vec<_>>());
    }
    e
}

fn discovery_group(group: &str) -> Value {
    json!({
        "metadata": {"name": group, "creationTimestamp": null},
        "versions": versions(group).into_iter().map(|v| json!({
            "version": v,
            "resources": resources_of(group, v).map(discovery_resource).collect::<Vec<_>>(),
            "freshness": "Current",
        })).collect::<Vec<_>>(),
    })
}

/// Aggregated discovery for `/api` (core) or `/apis` (all groups).
pub fn aggregated(core: bool, version: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![discovery_group("")]
    } else {
        groups().into_iter().map(discovery_group).collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferred_versions() {
        assert_eq!(versions("autoscaling"), vec!["v2", "v1"]);
        assert_eq!(
            group("apps").unwrap()["preferredVersion"]["groupVersion"],
            "apps/v1"
        );
        assert!(group("nope").is_none());
    }

    #[test]
    fn core_resource_list_has_subresources() {
        let l = resource_list("", "v1").unwrap();
        let names: Vec<&str> = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"pods"));
        assert!(names.contains(&"pods/status"));
        assert!(names.contains(&"namespaces/finalize"));
        let scale = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "replicationcontrollers/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["kind"], "Scale");
    }

    #[test]
    fn aggregated_lists_every_group() {
        let a = aggregated(false, "v2");
        let names: Vec<&str> = a["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["metadata"]["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"apps"));
        assert!(!names.contains(&""));
        assert_eq!(
            aggregated(true, "v2beta1")["items"][0]["metadata"]["name"],
            ""
        );
    }
}
