//! One scheduling decision: run the profile's filters over the nodes (stopping once
//! enough feasible nodes were found, starting where the previous pod stopped), score
//! the feasible ones, and pick the best (ties broken at random). When nothing fits,
//! the per-node reasons become upstream's "0/N nodes are available: …" message.

use crate::config::Profile;
use crate::nodeinfo::{Cache, NodeInfo};
use crate::plugins::{self, CycleState, Rejection};
use crate::podinfo::PodInfo;
use std::collections::{BTreeMap, HashMap};

/// At least this many feasible nodes are looked for before scoring.
const MIN_FEASIBLE_NODES: usize = 100;

/// Why a pod fits nowhere.
#[derive(Debug, Clone)]
pub struct FitError {
    /// Nodes considered.
    pub num_all_nodes: usize,
    /// Per node, why it was filtered out.
    pub statuses: HashMap<String, Rejection>,
    /// What preemption said, if it ran and failed.
    pub post_filter: Option<String>,
}

/// "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint
/// {…}." as upstream formats it (reason counts sorted as strings).
pub fn reasons_message(num_all_nodes: usize, statuses: &HashMap<String, Rejection>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in statuses.values() {
        for reason in &r.reasons {
            *counts.entry(reason.as_str()).or_default() += 1;
        }
    }
    let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    format!(
        "0/{num_all_nodes} nodes are available: {}.",
        parts.join(", ")
    )
}

impl FitError {
    /// The message for the PodScheduled condition and the FailedScheduling event.
    pub fn message(&self) -> String {
        if self.num_all_nodes == 0 {
            return "no nodes available to schedule pods".into();
        }
        let mut msg = reasons_message(self.num_all_nodes, &self.statuses);
        if let Some(p) = &self.post_filter {
            msg.push(' ');
            msg.push_str(p);
        }
        msg
    }
}

/// How many feasible nodes to find before scoring (upstream's adaptive rule: 50% of
/// the nodes minus one percent per 125 nodes, at least 5%, at least 100 nodes).
pub fn num_feasible_nodes_to_find(percentage: Option<i32>, all: usize) -> usize {
    if all < MIN_FEASIBLE_NODES {
        return all;
    }
    let pct = match percentage {
        Some(p) if p >= 100 => return all,
        Some(p) if p > 0 => p as i64,
        _ => (50 - all as i64 / 125).max(5),
    };
    ((all as i64 * pct / 100) as usize).max(MIN_FEASIBLE_NODES)
}

/// A small fast random source for tie-breaking (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock.
    pub fn new() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Rng(seed | 1)
    }

    /// A number in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

impl Default for Rng {
    fn default() -> Self {
        Rng::new()
    }
}

/// Runs the filters of `profile` on one node; the first rejection wins.
pub fn run_filters(
    profile: &Profile,
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
) -> Result<(), Rejection> {
    for f in &profile.filter_kinds {
        plugins::filter(*f, state, pod, node)?;
    }
    Ok(())
}

/// The scheduler's search position and randomness, kept across decisions.
#[derive(Default)]
pub struct Search {
    next_start: usize,
    rng: Rng,
}

/// Chooses a node for `pod`.
pub fn schedule(
    cache: &Cache,
    profile: &Profile,
    global_percentage: Option<i32>,
    state: &CycleState,
    pod: &PodInfo,
    search: &mut Search,
) -> Result<String, FitError> {
    let all = cache.node_count();
    if all == 0 {
        return Err(FitError {
            num_all_nodes: 0,
            statuses: HashMap::new(),
            post_filter: None,
        });
    }
    let want = num_feasible_nodes_to_find(
        profile.percentage_of_nodes_to_score.or(global_percentage),
        all,
    );
    let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want.min(all));
    let mut statuses = HashMap::new();
    let slots = cache.slots();
    let start = search.next_start % slots;
    let mut processed = 0;
    for i in 0..slots {
        processed += 1;
        let Some(node) = cache.node_at((start + i) % slots) else {
            continue;
        };
        match run_filters(profile, state, pod, node) {
            Ok(()) => {
                feasible.push(node);
                if feasible.len() >= want {
                    break;
                }
            }
            Err(r) => {
                statuses.insert(node.name.clone(), r);
            }
        }
    }
    search.next_start = (start + processed) % slots;
    if feasible.is_empty() {
        return Err(FitError {
            num_all_nodes: all,
            statuses,
            post_filter: None,
        });
    }
    if feasible.len() == 1 {
        return Ok(feasible[0].name.clone());
    }
    let mut totals = vec![0i64; feasible.len()];
    for (name, weight) in &profile.scores {
        if *weight == 0 {
            continue;
        }
        if let Some(scores) = plugins::score(name, state, pod, &feasible) {
            for (t, s) in totals.iter_mut().zip(scores) {
                *t += s * weight;
            }
        }
    }
    tracing::debug!(
        pod = %pod.key,
        scores = ?feasible.iter().map(|n| n.name.as_str()).zip(totals.iter()).collect::<Vec<_>>(),
        "node scores"
    );
    // Highest total; among equals, each is equally likely (reservoir sampling).
    let mut best = 0;
    let mut ties = 0u64;
    for (i, t) in totals.iter().enumerate() {
        if *t > totals[best] {
            best = i;
            ties = 1;
        } else if *t == totals[best] {
            ties += 1;
            if search.rng.below(ties) == 0 {
                best = i;
            }
        }
    }
    Ok(feasible[best].name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::Code;

    #[test]
    fn adaptive_percentage_of_nodes() {
        assert_eq!(num_feasible_nodes_to_find(None, 50), 50);
        assert_eq!(num_feasible_nodes_to_find(None, 1000), 420);
        assert_eq!(num_feasible_nodes_to_find(None, 5000), 500);
        assert_eq!(num_feasible_nodes_to_find(None, 200), 100);
        assert_eq!(num_feasible_nodes_to_find(Some(100), 5000), 5000);
        assert_eq!(num_feasible_nodes_to_find(Some(10), 5000), 500);
    }

    #[test]
    fn message_counts_and_sorts_reasons() {
        let mut s = HashMap::new();
        let r = |reasons: &[&str]| Rejection {
            code: Code::Unschedulable,
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
        };
        s.insert("a".into(), r(&["Insufficient cpu"]));
        s.insert("b".into(), r(&["Insufficient cpu", "Insufficient memory"]));
        s.insert(
            "c".into(),
            r(&["node(s) had untolerated taint {dedicated: gpu}"]),
        );
        let e = FitError {
            num_all_nodes: 3,
            statuses: s,
            post_filter: Some(
                "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
                    .into(),
            ),
        };
        assert_eq!(
            e.message(),
            "0/3 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
    }
}

#[cfg(test)]
mod spread_tests {
    use super::*;
    use crate::config::Profile;
    use crate::nodeinfo::Cache;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use std::sync::Arc;

    fn node(name: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "status": {"allocatable": {"cpu": "2", "memory": "16Gi", "pods": "110"}}
            }))
            .unwrap(),
        )
    }

    fn pod(name: &str) -> Arc<PodInfo> {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "64Mi"}}}]}
        }))
        .unwrap();
        Arc::new(PodInfo::new(Arc::new(p)))
    }

    #[test]
    fn least_allocated_spreads_equal_pods() {
        let mut cache = Cache::default();
        for n in ["a", "b", "c"] {
            cache.set_node(node(n));
        }
        let profile = Profile::default_named("default-scheduler");
        let mut search = Search::default();
        let mut placed = Vec::new();
        for i in 0..3 {
            let p = pod(&format!("p{i}"));
            let state = CycleState::new(&cache, &p, &|_| true);
            let n = schedule(&cache, &profile, None, &state, &p, &mut search).unwrap();
            let mut assumed = (*p).clone();
            assumed.node_name = n.clone();
            cache.add_pod(Arc::new(assumed), true);
            placed.push(n);
        }
        placed.sort();
        assert_eq!(placed, ["a", "b", "c"]);
    }
}
