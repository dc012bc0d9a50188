//! The scheduling plugins, named and behaving as upstream's defaults: each filter
//! says why a node does not fit (with upstream's reason strings, which end up in the
//! pod's PodScheduled condition), each scorer rates a feasible node from 0 to 100.
//!
//! Filters: NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, NodePorts,
//! NodeResourcesFit, InterPodAffinity, PodTopologySpread.
//! Scores: NodeResourcesFit (least allocated), NodeResourcesBalancedAllocation,
//! TaintToleration, NodeAffinity, InterPodAffinity, PodTopologySpread.

pub mod interpod;
pub mod nodeaffinity;
pub mod spread;

use crate::nodeinfo::{Cache, NodeInfo};
use crate::podinfo::PodInfo;
use k8s_openapi::api::core::v1::{Taint, Toleration};

/// Highest score a plugin gives a node.
pub const MAX_SCORE: i64 = 100;

/// How final a filter's rejection is: whether preempting pods on the node could help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Removing pods from the node might make room.
    Unschedulable,
    /// Nothing done to pods on the node helps (labels, taints, name…).
    Unresolvable,
}

/// Why a node was filtered out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Whether preemption could help.
    pub code: Code,
    /// Upstream's reason strings.
    pub reasons: Vec<String>,
}

impl Rejection {
    fn unschedulable(reason: impl Into<String>) -> Rejection {
        Rejection {
            code: Code::Unschedulable,
            reasons: vec![reason.into()],
        }
    }

    fn unresolvable(reason: impl Into<String>) -> Rejection {
        Rejection {
            code: Code::Unresolvable,
            reasons: vec![reason.into()],
        }
    }
}

/// The filter plugins, in upstream's order.
pub const FILTERS: &[&str] = &[
    "NodeUnschedulable",
    "NodeName",
    "TaintToleration",
    "NodeAffinity",
    "NodePorts",
    "NodeResourcesFit",
    "PodTopologySpread",
    "InterPodAffinity",
];

/// The score plugins with upstream's default weights.
pub const SCORES: &[(&str, i64)] = &[
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("NodeResourcesFit", 1),
    ("NodeResourcesBalancedAllocation", 1),
];

/// A filter plugin, resolved from its name once per profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// NodeUnschedulable.
    NodeUnschedulable,
    /// NodeName.
    NodeName,
    /// TaintToleration.
    TaintToleration,
    /// NodeAffinity.
    NodeAffinity,
    /// NodePorts.
    NodePorts,
    /// NodeResourcesFit.
    NodeResourcesFit,
    /// PodTopologySpread.
    PodTopologySpread,
    /// InterPodAffinity.
    InterPodAffinity,
}

impl Filter {
    /// The filter called `name`, if it is one.
    pub fn from_name(name: &str) -> Option<Filter> {
        Some(match name {
            "NodeUnschedulable" => Filter::NodeUnschedulable,
            "NodeName" => Filter::NodeName,
            "TaintToleration" => Filter::TaintToleration,
            "NodeAffinity" => Filter::NodeAffinity,
            "NodePorts" => Filter::NodePorts,
            "NodeResourcesFit" => Filter::NodeResourcesFit,
            "PodTopologySpread" => Filter::PodTopologySpread,
            "InterPodAffinity" => Filter::InterPodAffinity,
            _ => return None,
        })
    }
}

/// Per-pod state computed once before filtering (upstream's PreFilter).
pub struct CycleState {
    /// Pod affinity and anti-affinity facts about the cluster.
    pub interpod: interpod::PreFilter,
    /// Topology spread counts.
    pub spread: spread::PreFilter,
    /// Pods nominated to run on nodes (after preemption) that must be counted as if
    /// they were there: node name to pods.
    pub nominated: std::collections::HashMap<String, Vec<std::sync::Arc<PodInfo>>>,
}

impl CycleState {
    /// Computes the state for scheduling `pod`.
    pub fn new(cache: &Cache, pod: &PodInfo, enabled: &dyn Fn(&str) -> bool) -> CycleState {
        CycleState {
            interpod: if enabled("InterPodAffinity") {
                interpod::PreFilter::new(cache, pod)
            } else {
                interpod::PreFilter::default()
            },
            spread: if enabled("PodTopologySpread") {
                spread::PreFilter::new(cache, pod)
            } else {
                spread::PreFilter::default()
            },
            nominated: Default::default(),
        }
    }
}

/// Runs one filter plugin.
pub fn filter(
    which: Filter,
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
) -> Result<(), Rejection> {
    match which {
        Filter::NodeUnschedulable => node_unschedulable(pod, node),
        Filter::NodeName => node_name(pod, node),
        Filter::TaintToleration => taint_toleration(pod, node),
        Filter::NodeAffinity => {
            if nodeaffinity::pod_matches_node(&pod.pod, node) {
                Ok(())
            } else {
                Err(Rejection::unresolvable(
                    "node(s) didn't match Pod's node affinity/selector",
                ))
            }
        }
        Filter::NodePorts => node_ports(pod, node, state),
        Filter::NodeResourcesFit => resources_fit(pod, node, state),
        Filter::PodTopologySpread => state.spread.filter(pod, node),
        Filter::InterPodAffinity => state.interpod.filter(pod, node),
    }
}

fn node_unschedulable(pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection> {
    if !node.unschedulable {
        return Ok(());
    }
    let taint = Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    if pod.tolerations.iter().any(|t| tolerates(t, &taint)) {
        return Ok(());
    }
    Err(Rejection::unresolvable("node(s) were unschedulable"))
}

fn node_name(pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection> {
    let wanted = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("");
    if wanted.is_empty() || wanted == node.name {
        Ok(())
    } else {
        Err(Rejection::unresolvable(
            "node(s) didn't match the requested node name",
        ))
    }
}

/// Whether a toleration tolerates a taint (upstream `ToleratesTaint`).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

fn taint_toleration(pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection> {
    let untolerated = node.taints.iter().find(|taint| {
        matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
            && !pod.tolerations.iter().any(|t| tolerates(t, taint))
    });
    match untolerated {
        None => Ok(()),
        Some(t) => Err(Rejection::unresolvable(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t.key,
            t.value.as_deref().unwrap_or("")
        ))),
    }
}

fn node_ports(pod: &PodInfo, node: &NodeInfo, state: &CycleState) -> Result<(), Rejection> {
    let nominated = state.nominated.get(&node.name);
    let conflict = pod.host_ports.iter().any(|want| {
        node.used_ports.iter().any(|used| used.conflicts(want))
            || nominated.is_some_and(|ps| {
                ps.iter().any(|p| {
                    p.key != pod.key && p.host_ports.iter().any(|used| used.conflicts(want))
                })
            })
    });
    if conflict {
        Err(Rejection::unschedulable(
            "node(s) didn't have free ports for the requested pod ports",
        ))
    } else {
        Ok(())
    }
}

fn resources_fit(pod: &PodInfo, node: &NodeInfo, state: &CycleState) -> Result<(), Rejection> {
    let mut used = node.requested.clone();
    if let Some(ps) = state.nominated.get(&node.name) {
        for p in ps {
            if p.key != pod.key && p.priority >= pod.priority {
                let mut one = p.requests.clone();
                one.pods = 1;
                used.add(&one);
            }
        }
    }
    let mut reasons = Vec::new();
    if used.pods + 1 > node.allocatable.pods {
        reasons.push("Too many pods".to_string());
    }
    let r = &pod.requests;
    let a = &node.allocatable;
    if r.milli_cpu > 0 && r.milli_cpu > a.milli_cpu - used.milli_cpu {
        reasons.push("Insufficient cpu".into());
    }
    if r.memory > 0 && r.memory > a.memory - used.memory {
        reasons.push("Insufficient memory".into());
    }
    if r.ephemeral_storage > 0 && r.ephemeral_storage > a.ephemeral_storage - used.ephemeral_storage
    {
        reasons.push("Insufficient ephemeral-storage".into());
    }
    for (name, want) in &r.scalar {
        if *want > 0 && *want > a.get(name) - used.get(name) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Rejection {
            code: Code::Unschedulable,
            reasons,
        })
    }
}

/// Raw scores of one plugin for the feasible nodes (same order), before
/// normalization.
pub fn score(
    name: &str,
    state: &CycleState,
    pod: &PodInfo,
    nodes: &[&NodeInfo],
) -> Option<Vec<i64>> {
    let scores: Vec<i64> = match name {
        "NodeResourcesFit" => nodes.iter().map(|n| least_allocated(pod, n)).collect(),
        "NodeResourcesBalancedAllocation" => {
            if requests_nothing(pod) {
                return Some(vec![0; nodes.len()]);
            }
            nodes.iter().map(|n| balanced_allocation(pod, n)).collect()
        }
        "TaintToleration" => {
            let counts: Vec<i64> = nodes
                .iter()
                .map(|n| intolerable_prefer_no_schedule(pod, n))
                .collect();
            reverse_normalize(&counts)
        }
        "NodeAffinity" => {
            let raw: Vec<i64> = nodes
                .iter()
                .map(|n| nodeaffinity::preferred_score(&pod.pod, n))
                .collect();
            normalize(&raw)
        }
        "InterPodAffinity" => state.interpod.scores(pod, nodes)?,
        "PodTopologySpread" => state.spread.scores(pod, nodes)?,
        _ => return None,
    };
    Some(scores)
}

/// LeastAllocated over cpu and memory (weight 1 each); a resource the node reports
/// no allocatable for is left out, as upstream does.
fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let a = &node.allocatable;
    let parts = [
        (
            node.non_zero_requested.milli_cpu + pod.non_zero.milli_cpu,
            a.milli_cpu,
        ),
        (
            node.non_zero_requested.memory + pod.non_zero.memory,
            a.memory,
        ),
    ];
    let (mut sum, mut weights) = (0, 0);
    for (req, cap) in parts {
        if cap == 0 {
            continue;
        }
        weights += 1;
        if req <= cap {
            sum += (cap - req) * MAX_SCORE / cap;
        }
    }
    if weights == 0 {
        0
    } else {
        sum / weights
    }
}

/// BalancedAllocation: 100 × (1 − standard deviation of the requested fractions of
/// cpu and memory); resources without allocatable are left out. Pods requesting
/// nothing are not scored by it (upstream 1.33 skips them).
fn balanced_allocation(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let a = &node.allocatable;
    let fractions: Vec<f64> = [
        (
            node.requested.milli_cpu + pod.requests.milli_cpu,
            a.milli_cpu,
        ),
        (node.requested.memory + pod.requests.memory, a.memory),
    ]
    .into_iter()
    .filter(|(_, cap)| *cap > 0)
    .map(|(req, cap)| (req as f64 / cap as f64).min(1.0))
    .collect();
    let std = match fractions.as_slice() {
        [a, b] => (a - b).abs() / 2.0,
        _ => 0.0,
    };
    ((1.0 - std) * MAX_SCORE as f64) as i64
}

fn requests_nothing(pod: &PodInfo) -> bool {
    pod.requests.milli_cpu == 0 && pod.requests.memory == 0
}

fn intolerable_prefer_no_schedule(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let tolerations: Vec<&Toleration> = pod
        .tolerations
        .iter()
        .filter(|t| {
            matches!(
                t.effect.as_deref(),
                None | Some("") | Some("PreferNoSchedule")
            )
        })
        .collect();
    node.taints
        .iter()
        .filter(|taint| taint.effect == "PreferNoSchedule")
        .filter(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
        .count() as i64
}

/// Scales scores so the highest becomes 100 (all zero stays zero).
pub fn normalize(raw: &[i64]) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    if max <= 0 {
        return vec![0; raw.len()];
    }
    raw.iter().map(|s| s * MAX_SCORE / max).collect()
}

/// Scales and reverses: the lowest raw value gets 100.
pub fn reverse_normalize(raw: &[i64]) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    if max <= 0 {
        return vec![MAX_SCORE; raw.len()];
    }
    raw.iter()
        .map(|s| MAX_SCORE - s * MAX_SCORE / max)
        .collect()
}

#[cfg(test)]
mod tests;
