//! PodTopologySpread: DoNotSchedule constraints filter nodes whose domain would
//! exceed maxSkew over the emptiest domain; ScheduleAnyway constraints score nodes in
//! less crowded domains higher. Pods without constraints of their own may get the
//! profile's default ones (see `crate::defaultspread`).

use super::{nodeaffinity, tolerates, Code, Rejection, MAX_SCORE};
use crate::nodeinfo::{Cache, NodeInfo};
use crate::podinfo::{PodInfo, SpreadConstraint};
use std::collections::HashMap;

/// Matching pod counts per domain for each constraint of one incoming pod.
#[derive(Default)]
pub struct PreFilter {
    /// Per hard constraint: domain value to matching pods, and the global minimum.
    hard: Vec<(HashMap<String, i64>, i64)>,
    /// Per soft constraint: domain value to matching pods, and its weight.
    soft: Vec<(HashMap<String, i64>, f64)>,
}

/// Whether the pod tolerates the node's NoSchedule/NoExecute taints.
fn eligible_taints(pod: &PodInfo, node: &NodeInfo) -> bool {
    !node.taints.iter().any(|taint| {
        matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
            && !pod.tolerations.iter().any(|t| tolerates(t, taint))
    })
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
            let n = node
                .pods
                .values()
                .filter(|p| {
                    !p.terminating && p.namespace == pod.namespace && c.selector.matches(&p.labels)
                })
                .count() as i64;
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
        for m in counts(cache, pod, &soft) {
            let weight = ((m.len() + 2) as f64).ln();
            s.soft.push((m, weight));
        }
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

    /// Scores for ScheduleAnyway constraints: emptier domains score higher.
    pub fn scores(&self, pod: &PodInfo, nodes: &[&NodeInfo]) -> Option<Vec<i64>> {
        if self.soft.is_empty() {
            return Some(vec![0; nodes.len()]);
        }
        let soft: Vec<&SpreadConstraint> = pod.spread.iter().filter(|c| !c.hard).collect();
        let raw: Vec<Option<f64>> = nodes
            .iter()
            .map(|n| {
                let mut total = 0.0;
                let mut any = false;
                for (c, (m, w)) in soft.iter().zip(&self.soft) {
                    let value = match n.labels.get(&c.topology_key) {
                        Some(v) => v,
                        None if pod.spread_system_defaulted => continue,
                        None => return None,
                    };
                    any = true;
                    total +=
                        m.get(value).copied().unwrap_or(0) as f64 * w + (c.max_skew - 1) as f64;
                }
                any.then_some(total)
            })
            .collect();
        let known: Vec<f64> = raw.iter().flatten().copied().collect();
        let max = known.iter().copied().fold(0.0, f64::max);
        let min = known.iter().copied().fold(f64::MAX, f64::min);
        Some(
            raw.iter()
                .map(|s| match s {
                    None => 0,
                    Some(_) if max == 0.0 => MAX_SCORE,
                    Some(s) => (MAX_SCORE as f64 * (max + min - s) / max) as i64,
                })
                .collect(),
        )
    }
}
