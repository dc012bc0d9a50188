//! PodTopologySpread: DoNotSchedule constraints filter nodes whose domain would
//! exceed maxSkew over the emptiest domain; ScheduleAnyway constraints score nodes in
//! less crowded domains higher. Pods without constraints of their own may get the
//! profile's default ones (see `crate::defaultspread`).

use super::{nodeaffinity, tolerates, Code, Rejection, MAX_SCORE};
use crate::nodeinfo::{Cache, NodeInfo};
use crate::podinfo::{PodInfo, SpreadConstraint};
use std::collections::{HashMap, HashSet};

/// The well-known hostname label: its domains are single nodes.
const HOSTNAME: &str = "kubernetes.io/hostname";

/// Matching pod counts per domain for each constraint of one incoming pod.
#[derive(Default)]
pub struct PreFilter {
    /// Per hard constraint: domain value to matching pods, and the global minimum.
    hard: Vec<(HashMap<String, i64>, i64)>,
    /// Per soft constraint: domain value to matching pods (over all nodes; the
    /// weights depend on the feasible nodes and are computed when scoring).
    soft: Vec<HashMap<String, i64>>,
}

/// Whether the pod tolerates the node's NoSchedule/NoExecute taints.
fn eligible_taints(pod: &PodInfo, node: &NodeInfo) -> bool {
    !node.taints.iter().any(|taint| {
        matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
            && !pod.tolerations.iter().any(|t| tolerates(t, taint))
    })
}

/// Whether `node`'s pods count for constraint `c` of `pod` (the node inclusion
/// policies: nodeAffinityPolicy and nodeTaintsPolicy).
fn counts_on(pod: &PodInfo, node: &NodeInfo, c: &SpreadConstraint) -> bool {
    (!c.honor_node_affinity || nodeaffinity::pod_matches_node(&pod.pod, node))
        && (!c.honor_taints || eligible_taints(pod, node))
}

/// Whether `existing` counts toward constraint `c` of `pod`.
fn matching(pod: &PodInfo, c: &SpreadConstraint, existing: &PodInfo) -> bool {
    !existing.terminating
        && existing.namespace == pod.namespace
        && c.selector.matches(&existing.labels)
}

/// Counts matching pods per domain for each of `constraints` in one pass over the
/// nodes (a node's eligibility and pods are looked at once for all of them).
fn counts(
    cache: &Cache,
    pod: &PodInfo,
    constraints: &[SpreadConstraint],
) -> Vec<HashMap<String, i64>> {
    let mut out: Vec<HashMap<String, i64>> = vec![HashMap::new(); constraints.len()];
    for node in cache.nodes() {
        if !pod.spread_system_defaulted
            && !constraints
                .iter()
                .all(|c| node.labels.contains_key(&c.topology_key))
        {
            continue;
        }
        // Eligibility depends only on the two policies; compute each at most once.
        let mut affinity_ok = None;
        let mut taints_ok = None;
        for (c, m) in constraints.iter().zip(out.iter_mut()) {
            if c.honor_node_affinity
                && !*affinity_ok
                    .get_or_insert_with(|| nodeaffinity::pod_matches_node(&pod.pod, node))
            {
                continue;
            }
            if c.honor_taints && !*taints_ok.get_or_insert_with(|| eligible_taints(pod, node)) {
                continue;
            }
            let Some(value) = node.labels.get(&c.topology_key) else {
                continue;
            };
            let n = node.pods.values().filter(|p| matching(pod, c, p)).count() as i64;
            match m.get_mut(value) {
                Some(count) => *count += n,
                None => {
                    m.insert(value.clone(), n);
                }
            }
        }
    }
    out
}

impl PreFilter {
    /// Counts for `pod`'s constraints over the cache.
    pub fn new(cache: &Cache, pod: &PodInfo) -> PreFilter {
        let mut s = PreFilter::default();
        if pod.spread.is_empty() {
            return s;
        }
        let hard: Vec<SpreadConstraint> = pod.spread.iter().filter(|c| c.hard).cloned().collect();
        let soft: Vec<SpreadConstraint> = pod.spread.iter().filter(|c| !c.hard).cloned().collect();
        for (c, m) in hard.iter().zip(counts(cache, pod, &hard)) {
            let mut min = m.values().copied().min().unwrap_or(0);
            if c.min_domains.is_some_and(|d| (m.len() as i64) < d) {
                min = 0;
            }
            s.hard.push((m, min));
        }
        s.soft = counts(cache, pod, &soft);
        s
    }

    /// The filter.
    pub fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection> {
        let hard = pod.spread.iter().filter(|c| c.hard);
        for (c, (m, min)) in hard.zip(&self.hard) {
            let Some(value) = node.labels.get(&c.topology_key) else {
                return Err(Rejection {
                    code: Code::Unresolvable,
                    reasons: vec![
                        "node(s) didn't match pod topology spread constraints (missing required label)"
                            .into(),
                    ],
                });
            };
            let self_match = c.selector.matches(&pod.labels) as i64;
            let count = m.get(value).copied().unwrap_or(0);
            if count + self_match - min > c.max_skew {
                return Err(Rejection {
                    code: Code::Unschedulable,
                    reasons: vec!["node(s) didn't match pod topology spread constraints".into()],
                });
            }
        }
        Ok(())
    }

    /// The counts as if `victims` (pods on `node`) were gone: what preemption asks
    /// when it considers removing them. Only the hard constraints matter there.
    pub fn without(&self, pod: &PodInfo, victims: &[&PodInfo], node: &NodeInfo) -> PreFilter {
        let mut s = PreFilter {
            hard: self.hard.clone(),
            soft: Vec::new(),
        };
        let hard: Vec<&SpreadConstraint> = pod.spread.iter().filter(|c| c.hard).collect();
        if hard.is_empty() || victims.is_empty() {
            return s;
        }
        if !pod.spread_system_defaulted
            && !hard
                .iter()
                .all(|c| node.labels.contains_key(&c.topology_key))
        {
            return s;
        }
        for (c, (m, min)) in hard.iter().zip(s.hard.iter_mut()) {
            if !counts_on(pod, node, c) {
                continue;
            }
            let Some(value) = node.labels.get(&c.topology_key) else {
                continue;
            };
            let gone = victims.iter().filter(|p| matching(pod, c, p)).count() as i64;
            if gone == 0 {
                continue;
            }
            if let Some(count) = m.get_mut(value) {
                *count = (*count - gone).max(0);
            }
            *min = m.values().copied().min().unwrap_or(0);
            if c.min_domains.is_some_and(|d| (m.len() as i64) < d) {
                *min = 0;
            }
        }
        s
    }

    /// Scores for ScheduleAnyway constraints: emptier domains score higher. As
    /// upstream, each constraint's weight is ln(domains among `nodes` + 2), a node's
    /// raw score (matching pods in its domain times the weight, plus maxSkew - 1,
    /// summed) is rounded, and nodes lacking a topology key score 0 unless the
    /// constraints are the system defaults.
    pub fn scores(&self, pod: &PodInfo, nodes: &[&NodeInfo]) -> Option<Vec<i64>> {
        if self.soft.is_empty() {
            return Some(vec![0; nodes.len()]);
        }
        let soft: Vec<&SpreadConstraint> = pod.spread.iter().filter(|c| !c.hard).collect();
        let require_all = !pod.spread_system_defaulted;
        let ignored: Vec<bool> = nodes
            .iter()
            .map(|n| require_all && !soft.iter().all(|c| n.labels.contains_key(&c.topology_key)))
            .collect();
        let candidates = ignored.iter().filter(|i| !**i).count();
        let weights: Vec<f64> = soft
            .iter()
            .map(|c| {
                let size = if c.topology_key == HOSTNAME {
                    candidates
                } else {
                    nodes
                        .iter()
                        .zip(&ignored)
                        .filter(|(_, ignored)| !**ignored)
                        .map(|(n, _)| n.labels.get(&c.topology_key).map_or("", String::as_str))
                        .collect::<HashSet<&str>>()
                        .len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        let raw: Vec<Option<i64>> = nodes
            .iter()
            .zip(&ignored)
            .map(|(n, ignored)| {
                if *ignored {
                    return None;
                }
                let mut total = 0.0;
                for ((c, m), w) in soft.iter().zip(&self.soft).zip(&weights) {
                    let Some(value) = n.labels.get(&c.topology_key) else {
                        continue;
                    };
                    let count = if c.topology_key == HOSTNAME {
                        n.pods.values().filter(|p| matching(pod, c, p)).count() as i64
                    } else {
                        m.get(value).copied().unwrap_or(0)
                    };
                    total += count as f64 * w + (c.max_skew - 1) as f64;
                }
                Some(total.round() as i64)
            })
            .collect();
        let max = raw.iter().flatten().copied().fold(0, i64::max);
        let min = raw.iter().flatten().copied().fold(i64::MAX, i64::min);
        Some(
            raw.iter()
                .map(|s| match s {
                    None => 0,
                    Some(_) if max == 0 => MAX_SCORE,
                    Some(s) => MAX_SCORE * (max + min - s) / max,
                })
                .collect(),
        )
    }
}
