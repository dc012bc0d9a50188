//! Node selection by labels and fields: `spec.nodeSelector` and node affinity
//! (required terms ORed, expressions within a term ANDed; operators In, NotIn,
//! Exists, DoesNotExist, Gt, Lt; matchFields on metadata.name), and the preferred
//! node affinity score.

use crate::nodeinfo::NodeInfo;
use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Pod};
use std::collections::BTreeMap;

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => !value.is_some_and(|v| values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether one node selector term matches a node; a term with no requirements
/// matches nothing.
pub fn term_matches(
    term: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    name: &str,
) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let value = (r.key == "metadata.name").then_some(name);
            r.key == "metadata.name" && requirement_matches(r, value)
        })
}

/// Whether a pod's nodeSelector and required node affinity accept a node.
pub fn pod_matches_node(pod: &Pod, node: &NodeInfo) -> bool {
    let Some(spec) = &pod.spec else {
        return true;
    };
    if let Some(sel) = &spec.node_selector {
        if !sel.iter().all(|(k, v)| node.labels.get(k) == Some(v)) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, &node.labels, &node.name)),
    }
}

/// Sum of the weights of the pod's preferred node affinity terms the node matches.
pub fn preferred_score(pod: &Pod, node: &NodeInfo) -> i64 {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .into_iter()
        .flatten()
        .filter(|p| p.weight != 0 && term_matches(&p.preference, &node.labels, &node.name))
        .map(|p| p.weight as i64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(labels: serde_json::Value) -> NodeInfo {
        NodeInfo {
            name: "n1".into(),
            labels: serde_json::from_value(labels).unwrap(),
            ..Default::default()
        }
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"spec": spec})).unwrap()
    }

    #[test]
    fn selector_and_required_affinity() {
        let n = node(json!({"zone": "a", "cores": "8"}));
        assert!(pod_matches_node(
            &pod(json!({"containers": [], "nodeSelector": {"zone": "a"}})),
            &n
        ));
        assert!(!pod_matches_node(
            &pod(json!({"containers": [], "nodeSelector": {"zone": "b"}})),
            &n
        ));
        let aff = |exprs: serde_json::Value| {
            pod(json!({"containers": [], "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [exprs]}}}}))
        };
        assert!(pod_matches_node(
            &aff(
                json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]})
            ),
            &n
        ));
        assert!(!pod_matches_node(
            &aff(
                json!({"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]})
            ),
            &n
        ));
        assert!(pod_matches_node(
            &aff(json!({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]})),
            &n
        ));
        assert!(pod_matches_node(
            &aff(
                json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]})
            ),
            &n
        ));
        assert!(!pod_matches_node(
            &aff(
                json!({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]})
            ),
            &n
        ));
        assert!(
            !pod_matches_node(&aff(json!({})), &n),
            "an empty term matches nothing"
        );
    }

    #[test]
    fn preferred_weights_add_up() {
        let n = node(json!({"zone": "a", "disk": "ssd"}));
        let p = pod(json!({"containers": [], "affinity": {"nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
            {"weight": 5, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]}},
            {"weight": 3, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}}
        ]}}}));
        assert_eq!(preferred_score(&p, &n), 13);
    }
}
