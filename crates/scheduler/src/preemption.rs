//! DefaultPreemption: when a pod fits nowhere, find a node where removing pods of
//! lower priority makes it fit, keep as many of those pods as still allows it
//! (highest priority reprieved first), and choose the node whose victims matter
//! least. The caller nominates the node and deletes the victims.

use crate::algorithm::{reasons_message, run_filters};
use crate::config::Profile;
use crate::nodeinfo::{Cache, NodeInfo};
use crate::plugins::{Code, CycleState, Rejection};
use crate::podinfo::PodInfo;
use std::collections::HashMap;
use std::sync::Arc;

/// Where to make room, and whom to evict.
#[derive(Debug)]
pub struct Preemption {
    /// The node the pod is nominated to.
    pub node: String,
    /// Pods to delete.
    pub victims: Vec<Arc<PodInfo>>,
}

/// A copy of `node` without `victims`.
fn node_without(node: &NodeInfo, victims: &[Arc<PodInfo>]) -> NodeInfo {
    let mut n = NodeInfo {
        node: node.node.clone(),
        name: node.name.clone(),
        labels: node.labels.clone(),
        taints: node.taints.clone(),
        unschedulable: node.unschedulable,
        allocatable: node.allocatable.clone(),
        ..Default::default()
    };
    for p in node.pods.values() {
        if !victims.iter().any(|v| v.key == p.key) {
            n.add_pod(p.clone());
        }
    }
    n
}

fn fits_without(
    profile: &Profile,
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
    victims: &[Arc<PodInfo>],
) -> bool {
    let trial = node_without(node, victims);
    let refs: Vec<&PodInfo> = victims.iter().map(|v| v.as_ref()).collect();
    let trial_state = CycleState {
        interpod: state.interpod.without(pod, &refs, node),
        spread: crate::plugins::spread::PreFilter::default(),
        nominated: state.nominated.clone(),
    };
    // Spread counts are not recomputed per trial: check the rest, then spread with
    // the cycle's counts (removing pods can only lower a domain's count).
    run_filters(profile, &trial_state, pod, &trial).is_ok()
        && state.spread.filter(pod, &trial).is_ok()
}

/// Looks for a preemption that lets `pod` run; `Err` carries the post-filter message.
pub fn preempt(
    cache: &Cache,
    profile: &Profile,
    state: &CycleState,
    pod: &PodInfo,
    statuses: &HashMap<String, Rejection>,
) -> Result<Preemption, String> {
    if !pod.may_preempt {
        return Err("preemption: not eligible due to preemptionPolicy=Never.".into());
    }
    let nominated = pod
        .pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .unwrap_or("");
    if let Some(node) = cache.node(nominated) {
        if node
            .pods
            .values()
            .any(|p| p.terminating && p.priority < pod.priority)
        {
            return Err(
                "preemption: not eligible due to a terminating pod on the nominated node.".into(),
            );
        }
    }
    let mut outcome: HashMap<String, Rejection> = HashMap::new();
    let mut best: Option<(Vec<i64>, String, Vec<Arc<PodInfo>>)> = None;
    for node in cache.nodes() {
        let helpful = statuses
            .get(&node.name)
            .is_some_and(|r| r.code == Code::Unschedulable);
        if !helpful {
            outcome.insert(
                node.name.clone(),
                Rejection {
                    code: Code::Unresolvable,
                    reasons: vec!["Preemption is not helpful for scheduling".into()],
                },
            );
            continue;
        }
        let mut lower: Vec<Arc<PodInfo>> = node
            .pods
            .values()
            .filter(|p| p.priority < pod.priority && !p.terminating)
            .cloned()
            .collect();
        if lower.is_empty() || !fits_without(profile, state, pod, node, &lower) {
            outcome.insert(
                node.name.clone(),
                Rejection {
                    code: Code::Unschedulable,
                    reasons: vec!["No preemption victims found for incoming pod".into()],
                },
            );
            continue;
        }
        // Reprieve the most important pods first while the pod still fits.
        lower.sort_by_key(|p| std::cmp::Reverse(p.priority));
        let mut victims = lower.clone();
        for p in &lower {
            let without_p: Vec<Arc<PodInfo>> =
                victims.iter().filter(|v| v.key != p.key).cloned().collect();
            if fits_without(profile, state, pod, node, &without_p) {
                victims = without_p;
            }
        }
        // Rank: lowest highest-priority victim, then smallest priority sum, then
        // fewest victims.
        let highest = victims
            .iter()
            .map(|v| v.priority as i64)
            .max()
            .unwrap_or(i64::MIN);
        let sum: i64 = victims.iter().map(|v| v.priority as i64 + (1 << 31)).sum();
        let rank = vec![highest, sum, victims.len() as i64];
        if best.as_ref().is_none_or(|(r, _, _)| rank < *r) {
            best = Some((rank, node.name.clone(), victims));
        }
    }
    match best {
        Some((_, node, victims)) => Ok(Preemption { node, victims }),
        None => Err(format!(
            "preemption: {}",
            reasons_message(cache.node_count(), &outcome)
        )),
    }
}
