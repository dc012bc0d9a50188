//! InterPodAffinity: required pod affinity and anti-affinity (of the incoming pod,
//! and of the pods already running, which must not be violated by the newcomer), and
//! the preferred terms' score. Counts per topology domain (a node label key and
//! value) are computed once per scheduling cycle.

use super::{Code, Rejection, MAX_SCORE};
use crate::nodeinfo::{Cache, NodeInfo};
use crate::podinfo::{AffinityTerm, PodInfo};
use std::collections::{BTreeMap, HashMap};

type Pair = (String, String);

/// Pod affinity facts for one incoming pod.
#[derive(Default)]
pub struct PreFilter {
    /// Domains holding pods that match all the incoming pod's affinity terms.
    affinity: HashMap<Pair, i64>,
    /// Domains holding pods that match one of the incoming pod's anti-affinity terms.
    anti_affinity: HashMap<Pair, i64>,
    /// Domains whose running pods' anti-affinity forbids the incoming pod.
    existing_anti: HashMap<Pair, i64>,
    /// Score per domain from preferred terms (both directions).
    preferred: HashMap<Pair, i64>,
    /// Whether the incoming pod matches its own affinity terms.
    self_match: bool,
    ns_labels: std::sync::Arc<HashMap<String, BTreeMap<String, String>>>,
}

fn pair(term: &AffinityTerm, node: &NodeInfo) -> Option<Pair> {
    node.labels
        .get(&term.topology_key)
        .map(|v| (term.topology_key.clone(), v.clone()))
}

impl PreFilter {
    /// Computes the counts for `pod` against everything in the cache.
    pub fn new(cache: &Cache, pod: &PodInfo) -> PreFilter {
        let mut s = PreFilter {
            ns_labels: cache.namespace_labels.clone(),
            ..Default::default()
        };
        if !pod.has_pod_affinity() && cache.pods_with_affinity == 0 {
            return s;
        }
        let own_ns = s.ns_labels.get(&pod.namespace).cloned();
        s.self_match = !pod.affinity.is_empty()
            && pod.affinity.iter().all(|t| t.matches(pod, own_ns.as_ref()));
        let needs_all_pods = !pod.affinity.is_empty()
            || !pod.anti_affinity.is_empty()
            || !pod.preferred_affinity.is_empty()
            || !pod.preferred_anti_affinity.is_empty();
        for node in cache.nodes() {
            if !needs_all_pods && node.pods_with_affinity == 0 {
                continue;
            }
            for existing in node.pods.values() {
                s.count_existing(pod, existing, node);
            }
        }
        s
    }

    fn count_existing(&mut self, pod: &PodInfo, existing: &PodInfo, node: &NodeInfo) {
        let ns_labels = self.ns_labels.clone();
        let ex_ns = ns_labels.get(&existing.namespace);
        let in_ns = ns_labels.get(&pod.namespace);
        // Adds `sign * weight` in the node's domain for each term that matches `target`.
        let add = |map: &mut HashMap<Pair, i64>,
                   terms: &[AffinityTerm],
                   target: &PodInfo,
                   ns: Option<&BTreeMap<String, String>>,
                   sign: i64| {
            for t in terms {
                if t.matches(target, ns) {
                    if let Some(p) = pair(t, node) {
                        *map.entry(p).or_default() += sign * t.weight;
                    }
                }
            }
        };
        // The incoming pod's terms about the existing pod: affinity needs a pod that
        // matches all of them.
        if !pod.affinity.is_empty() && pod.affinity.iter().all(|t| t.matches(existing, ex_ns)) {
            for t in &pod.affinity {
                if let Some(p) = pair(t, node) {
                    *self.affinity.entry(p).or_default() += 1;
                }
            }
        }
        add(
            &mut self.anti_affinity,
            &pod.anti_affinity,
            existing,
            ex_ns,
            1,
        );
        add(
            &mut self.preferred,
            &pod.preferred_affinity,
            existing,
            ex_ns,
            1,
        );
        add(
            &mut self.preferred,
            &pod.preferred_anti_affinity,
            existing,
            ex_ns,
            -1,
        );
        // The existing pod's terms about the incoming pod. Its required affinity
        // attracts matching newcomers with upstream's hardPodAffinityWeight (1).
        add(
            &mut self.existing_anti,
            &existing.anti_affinity,
            pod,
            in_ns,
            1,
        );
        add(&mut self.preferred, &existing.affinity, pod, in_ns, 1);
        add(
            &mut self.preferred,
            &existing.preferred_affinity,
            pod,
            in_ns,
            1,
        );
        add(
            &mut self.preferred,
            &existing.preferred_anti_affinity,
            pod,
            in_ns,
            -1,
        );
    }

    /// The state as if `victims` (pods on `node`) were gone: what preemption asks
    /// when it considers removing them.
    pub fn without(&self, pod: &PodInfo, victims: &[&PodInfo], node: &NodeInfo) -> PreFilter {
        let mut s = PreFilter {
            affinity: self.affinity.clone(),
            anti_affinity: self.anti_affinity.clone(),
            existing_anti: self.existing_anti.clone(),
            preferred: HashMap::new(),
            self_match: self.self_match,
            ns_labels: self.ns_labels.clone(),
        };
        for v in victims {
            let mut removed = PreFilter {
                ns_labels: self.ns_labels.clone(),
                ..Default::default()
            };
            removed.count_existing(pod, v, node);
            for (k, n) in removed.affinity {
                *s.affinity.entry(k).or_default() -= n;
            }
            for (k, n) in removed.anti_affinity {
                *s.anti_affinity.entry(k).or_default() -= n;
            }
            for (k, n) in removed.existing_anti {
                *s.existing_anti.entry(k).or_default() -= n;
            }
        }
        s.affinity.retain(|_, n| *n > 0);
        s
    }

    /// The filter: the pod's affinity, then its anti-affinity, then running pods'
    /// anti-affinity, as upstream checks them (the first failure is reported).
    pub fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection> {
        if !pod.affinity.is_empty() {
            let all_present = pod
                .affinity
                .iter()
                .all(|t| node.labels.contains_key(&t.topology_key));
            let satisfied = all_present
                && pod.affinity.iter().all(|t| {
                    pair(t, node).is_some_and(|p| self.affinity.get(&p).is_some_and(|n| *n > 0))
                });
            // The first pod of a group that matches its own terms may go anywhere
            // the topology keys exist. As upstream, matching pods on nodes without
            // a term's key add no domain, so they do not make a group.
            let first_of_group = all_present && self.affinity.is_empty() && self.self_match;
            if !satisfied && !first_of_group {
                return Err(Rejection {
                    code: Code::Unresolvable,
                    reasons: vec!["node(s) didn't match pod affinity rules".into()],
                });
            }
        }
        for t in &pod.anti_affinity {
            if pair(t, node).is_some_and(|p| self.anti_affinity.get(&p).is_some_and(|n| *n > 0)) {
                return Err(Rejection {
                    code: Code::Unschedulable,
                    reasons: vec!["node(s) didn't match pod anti-affinity rules".into()],
                });
            }
        }
        if !self.existing_anti.is_empty()
            && node.labels.iter().any(|(k, v)| {
                self.existing_anti
                    .get(&(k.clone(), v.clone()))
                    .is_some_and(|n| *n > 0)
            })
        {
            return Err(Rejection {
                code: Code::Unschedulable,
                reasons: vec!["node(s) didn't satisfy existing pods anti-affinity rules".into()],
            });
        }
        Ok(())
    }

    /// Preferred-term scores for the feasible nodes, normalized; None if no term
    /// applies anywhere.
    pub fn scores(&self, _pod: &PodInfo, nodes: &[&NodeInfo]) -> Option<Vec<i64>> {
        if self.preferred.is_empty() {
            return Some(vec![0; nodes.len()]);
        }
        let raw: Vec<i64> = nodes
            .iter()
            .map(|n| {
                n.labels
                    .iter()
                    .filter_map(|(k, v)| self.preferred.get(&(k.clone(), v.clone())))
                    .sum()
            })
            .collect();
        let min = raw.iter().copied().min().unwrap_or(0);
        let max = raw.iter().copied().max().unwrap_or(0);
        let diff = max - min;
        Some(
            raw.iter()
                .map(|s| {
                    if diff > 0 {
                        // Float as upstream (100 * 0.57 truncates to 56).
                        (MAX_SCORE as f64 * ((s - min) as f64 / diff as f64)) as i64
                    } else {
                        0
                    }
                })
                .collect(),
        )
    }
}
