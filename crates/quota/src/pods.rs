//! The pod evaluator: a pod's compute usage (effective requests and limits over its
//! containers, init containers and sidecars, plus overhead), when a pod stops being
//! charged (terminal, or deleted past its grace period), the quota scopes
//! (Terminating, NotTerminating, BestEffort, NotBestEffort, PriorityClass,
//! CrossNamespacePodAffinity), and the constraint that pods state requests or limits
//! for compute resources a quota tracks.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::resources::{add, count, parse_list, ResourceList};
use crate::scopes::ScopeSelectorRequirement;
use crate::QuotaError;

/// Compute resources a quota may track on pods, besides the prefixed ones.
pub const POD_RESOURCES: &[&str] = &[
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];

/// Resources for which a tracking quota demands that every container states them.
pub const VALIDATION_SET: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
];

const HUGEPAGES_PREFIX: &str = "hugepages-";
const REQUESTS_PREFIX: &str = "requests.";

/// A native resource: unqualified, or in the `kubernetes.io/` domain.
fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// An extended resource a container may request (`example.com/gpu`).
pub fn is_extended_resource(name: &str) -> bool {
    if is_native_resource(name) || name.starts_with(REQUESTS_PREFIX) {
        return false;
    }
    apimachinery::validation::is_qualified_name(&format!("{REQUESTS_PREFIX}{name}")).is_empty()
}

/// Whether a quota resource name is charged by pods.
pub fn is_pod_resource(name: &str) -> bool {
    POD_RESOURCES.contains(&name)
        || name.starts_with(HUGEPAGES_PREFIX)
        || name.starts_with("requests.hugepages-")
        || (!is_native_resource(name) && name.starts_with(REQUESTS_PREFIX))
}

/// The quota names one set of requests and limits charges (`pods` always; `cpu` and
/// `requests.cpu` for a cpu request; `limits.cpu` for a cpu limit; likewise memory and
/// ephemeral storage; hugepages under both names; extended resources as
/// `requests.<name>`).
pub fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("pods".into(), count(1));
    for r in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(r) {
            out.insert(r.to_string(), q.clone());
            out.insert(format!("{REQUESTS_PREFIX}{r}"), q.clone());
        }
        if let Some(q) = limits.get(r) {
            out.insert(format!("limits.{r}"), q.clone());
        }
    }
    for (name, q) in requests {
        if name.starts_with(HUGEPAGES_PREFIX) {
            out.insert(name.clone(), q.clone());
            out.insert(format!("{REQUESTS_PREFIX}{name}"), q.clone());
        }
        if is_extended_resource(name) {
            out.insert(format!("{REQUESTS_PREFIX}{name}"), q.clone());
        }
    }
    out
}

fn max_into(acc: &mut ResourceList, other: &ResourceList) {
    for (k, q) in other {
        match acc.get_mut(k) {
            Some(v) if *v >= *q => {}
            Some(v) => *v = q.clone(),
            None => {
                acc.insert(k.clone(), q.clone());
            }
        }
    }
}

fn containers<'a>(pod: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    pod["spec"][field].as_array().into_iter().flatten()
}

fn is_sidecar(c: &Value) -> bool {
    c["restartPolicy"] == "Always"
}

/// The pod's effective requests or limits (`which` is `requests` or `limits`): the
/// containers' sum, raised to what any init container needs while it runs (with the
/// sidecars started before it), sidecars added; overhead added (for limits only to
/// resources that have a limit).
pub fn pod_resources(pod: &Value, which: &str) -> ResourceList {
    let of = |c: &Value| parse_list(&c["resources"][which]);
    let mut total = ResourceList::new();
    for c in containers(pod, "containers") {
        total = add(&total, &of(c));
    }
    let mut sidecars = ResourceList::new();
    let mut init_max = ResourceList::new();
    for c in containers(pod, "initContainers") {
        let own = of(c);
        let needed = if is_sidecar(c) {
            total = add(&total, &own);
            sidecars = add(&sidecars, &own);
            sidecars.clone()
        } else {
            add(&own, &sidecars)
        };
        max_into(&mut init_max, &needed);
    }
    max_into(&mut total, &init_max);
    let overhead = parse_list(&pod["spec"]["overhead"]);
    if which == "requests" {
        total = add(&total, &overhead);
    } else {
        for (k, q) in &overhead {
            if let Some(v) = total.get_mut(k) {
                v.add(q);
            }
        }
    }
    total
}

/// Whether the pod is still charged for compute resources at `now`: not Succeeded or
/// Failed, and not deleted longer ago than its grace period.
pub fn is_charged(pod: &Value, now: jiff::Timestamp) -> bool {
    if matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) {
        return false;
    }
    let deleted = pod["metadata"]["deletionTimestamp"]
        .as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok());
    let grace = pod["metadata"]["deletionGracePeriodSeconds"].as_i64();
    if let (Some(deleted), Some(grace)) = (deleted, grace) {
        if now > deleted + jiff::SignedDuration::from_secs(grace) {
            return false;
        }
    }
    true
}

/// What a pod charges: `count/pods` always (it counts stored objects), and while it is
/// charged ([`is_charged`]) `pods` and its compute resources.
pub fn usage(pod: &Value, now: jiff::Timestamp) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("count/pods".into(), count(1));
    if !is_charged(pod, now) {
        return out;
    }
    let requests = pod_resources(pod, "requests");
    let limits = pod_resources(pod, "limits");
    add(&out, &compute_usage(&requests, &limits))
}

/// A pod with `activeDeadlineSeconds >= 0`.
pub fn is_terminating(pod: &Value) -> bool {
    pod["spec"]["activeDeadlineSeconds"]
        .as_i64()
        .is_some_and(|s| s >= 0)
}

/// A BestEffort pod: `status.qosClass` when set, else no container (init containers
/// included) requests or limits a non-zero cpu or memory.
pub fn is_best_effort(pod: &Value) -> bool {
    if let Some(q) = pod["status"]["qosClass"].as_str().filter(|s| !s.is_empty()) {
        return q == "BestEffort";
    }
    let nonzero = |c: &Value| {
        ["requests", "limits"].iter().any(|w| {
            parse_list(&c["resources"][*w])
                .iter()
                .any(|(k, q)| (k == "cpu" || k == "memory") && q.sign() > 0)
        })
    };
    !containers(pod, "containers")
        .chain(containers(pod, "initContainers"))
        .any(nonzero)
}

fn cross_namespace_term(term: &Value) -> bool {
    term["namespaces"].as_array().is_some_and(|a| !a.is_empty())
        || (term.get("namespaceSelector").is_some() && !term["namespaceSelector"].is_null())
}

/// Whether any pod (anti-)affinity term names namespaces or has a namespace selector.
pub fn uses_cross_namespace_affinity(pod: &Value) -> bool {
    let affinity = &pod["spec"]["affinity"];
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let a = &affinity[*kind];
        let required = a["requiredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten()
            .any(cross_namespace_term);
        let preferred = a["preferredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|w| cross_namespace_term(&w["podAffinityTerm"]));
        required || preferred
    })
}

/// Whether a pod is in a scope requirement.
pub fn matches_scope(req: &ScopeSelectorRequirement, pod: &Value) -> Result<bool, QuotaError> {
    Ok(match req.scope_name.as_str() {
        "Terminating" => is_terminating(pod),
        "NotTerminating" => !is_terminating(pod),
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "PriorityClass" => {
            let class = pod["spec"]["priorityClassName"].as_str().unwrap_or("");
            if req.operator == "Exists" {
                !class.is_empty()
            } else {
                let labels: BTreeMap<&str, &str> = if class.is_empty() {
                    BTreeMap::new()
                } else {
                    [("PriorityClass", class)].into()
                };
                req.matches_labels(&labels)?
            }
        }
        "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(pod),
        _ => false,
    })
}

/// The constraint a quota tracking `required` puts on a pod: each container (init
/// containers included) must state every tracked resource of [`VALIDATION_SET`].
/// The error lists, per missing resource, the containers lacking it:
/// `must specify limits.cpu for: a,b; limits.memory for: a`.
pub fn constraints<S: AsRef<str>>(required: &[S], pod: &Value) -> Result<(), String> {
    let required: BTreeSet<&str> = required
        .iter()
        .map(AsRef::as_ref)
        .filter(|r| VALIDATION_SET.contains(r))
        .collect();
    if required.is_empty() {
        return Ok(());
    }
    let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for c in containers(pod, "containers").chain(containers(pod, "initContainers")) {
        let usage = compute_usage(
            &parse_list(&c["resources"]["requests"]),
            &parse_list(&c["resources"]["limits"]),
        );
        for r in &required {
            if !usage.contains_key(*r) {
                missing
                    .entry(r)
                    .or_default()
                    .insert(c["name"].as_str().unwrap_or("").to_string());
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, names)| {
            format!(
                "{r} for: {}",
                names.iter().cloned().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    Err(format!("must specify {}", parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::pretty_print;
    use serde_json::json;

    fn now() -> jiff::Timestamp {
        "2025-01-01T00:00:00Z".parse().unwrap()
    }

    fn pod(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    #[test]
    fn usage_sums_containers_and_init_maximum() {
        let mut p = pod(json!([
            {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m"}}},
            {"name": "b", "resources": {"requests": {"cpu": "300m", "hugepages-2Mi": "4Mi", "example.com/gpu": "1"}}}
        ]));
        p["spec"]["initContainers"] = json!([
            {"name": "init", "resources": {"requests": {"cpu": "1", "memory": "32Mi"}}}
        ]);
        assert_eq!(
            pretty_print(&usage(&p, now())),
            "count/pods=1,cpu=1,hugepages-2Mi=4Mi,limits.cpu=200m,memory=64Mi,pods=1,requests.cpu=1,requests.example.com/gpu=1,requests.hugepages-2Mi=4Mi,requests.memory=64Mi"
        );
    }

    #[test]
    fn sidecars_and_overhead() {
        let mut p = pod(
            json!([{"name": "a", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "100m"}}}]),
        );
        p["spec"]["initContainers"] = json!([
            {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
            {"name": "init", "resources": {"requests": {"cpu": "100m"}}}
        ]);
        p["spec"]["overhead"] = json!({"cpu": "10m", "memory": "1Mi"});
        // containers 100m + sidecar 50m = 150m; init needs 100m + 50m = 150m; + 10m.
        let r = pod_resources(&p, "requests");
        assert_eq!(pretty_print(&r), "cpu=160m,memory=1Mi");
        // Overhead only where a limit exists.
        assert_eq!(pretty_print(&pod_resources(&p, "limits")), "cpu=110m");
    }

    #[test]
    fn terminal_and_expired_pods_only_count_objects() {
        let mut p = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "1"}}}]));
        p["status"] = json!({"phase": "Succeeded"});
        assert_eq!(pretty_print(&usage(&p, now())), "count/pods=1");
        let mut d = pod(json!([{"name": "a"}]));
        d["metadata"]["deletionTimestamp"] = json!("2024-12-31T23:59:00Z");
        d["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        assert_eq!(pretty_print(&usage(&d, now())), "count/pods=1");
        d["metadata"]["deletionGracePeriodSeconds"] = json!(120);
        assert_eq!(pretty_print(&usage(&d, now())), "count/pods=1,pods=1");
    }

    #[test]
    fn scopes() {
        let be = pod(json!([{"name": "a"}]));
        let mut burst = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "1"}}}]));
        assert!(is_best_effort(&be) && !is_best_effort(&burst));
        burst["spec"]["activeDeadlineSeconds"] = json!(10);
        assert!(is_terminating(&burst) && !is_terminating(&be));
        burst["spec"]["priorityClassName"] = json!("high");
        let req = |op: &str, vals: &[&str]| ScopeSelectorRequirement {
            scope_name: "PriorityClass".into(),
            operator: op.into(),
            values: vals.iter().map(|s| s.to_string()).collect(),
        };
        assert!(matches_scope(&req("In", &["high", "x"]), &burst).unwrap());
        assert!(!matches_scope(&req("NotIn", &["high"]), &burst).unwrap());
        assert!(matches_scope(&req("NotIn", &["high"]), &be).unwrap());
        assert!(matches_scope(&req("Exists", &[]), &burst).unwrap());
        assert!(matches_scope(&req("DoesNotExist", &[]), &be).unwrap());
        assert!(matches_scope(&req("Gt", &["1"]), &burst).is_err());
        let mut aff = pod(json!([{"name": "a"}]));
        aff["spec"]["affinity"] = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "podAffinityTerm": {"topologyKey": "k", "namespaceSelector": {}}}
        ]}});
        assert!(uses_cross_namespace_affinity(&aff));
        assert!(!uses_cross_namespace_affinity(&be));
    }

    #[test]
    fn constraints_name_missing_containers() {
        let mut p = pod(json!([
            {"name": "b", "resources": {"requests": {"cpu": "1"}}},
            {"name": "a", "resources": {"limits": {"cpu": "1"}}}
        ]));
        p["spec"]["initContainers"] = json!([{"name": "i"}]);
        assert_eq!(
            constraints(&["limits.cpu", "requests.memory", "pods"], &p).unwrap_err(),
            "must specify limits.cpu for: b,i; requests.memory for: a,b,i"
        );
        assert!(constraints(&["pods", "count/pods"], &p).is_ok());
        assert!(is_pod_resource("requests.example.com/gpu"));
        assert!(!is_pod_resource("requests.storage"));
        assert!(is_pod_resource("hugepages-1Gi"));
    }
}
