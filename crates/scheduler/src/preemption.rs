//! DefaultPreemption: when a pod fits nowhere, find a node where removing pods of
//! lower priority makes it fit, keep as many of those pods as still allows it
//! (pods whose eviction would violate a PodDisruptionBudget are reprieved first, then
//! the others, most important first), and choose the node with the fewest budget
//! violations, then whose victims matter least. The caller nominates the node and
//! deletes the victims.

use crate::algorithm::{reasons_message, run_filters};
use crate::config::Profile;
use crate::nodeinfo::{Cache, NodeInfo};
use crate::plugins::{Code, CycleState, Rejection};
use crate::podinfo::PodInfo;
use apimachinery::labels::Selector;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What preemption reads of a PodDisruptionBudget.
#[derive(Clone, Debug)]
pub struct DisruptionBudget {
    /// Its namespace.
    pub namespace: String,
    /// spec.selector compiled; an empty or invalid selector matches no pod here.
    pub selector: Selector,
    /// status.disruptionsAllowed.
    pub disruptions_allowed: i32,
    /// Names in status.disruptedPods: evictions the API already counted.
    pub disrupted: HashSet<String>,
}

impl DisruptionBudget {
    /// Reads a PodDisruptionBudget.
    pub fn new(pdb: &PodDisruptionBudget) -> DisruptionBudget {
        let selector = pdb
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| Selector::from_label_selector(&v).ok())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(Selector::nothing);
        let status = pdb.status.as_ref();
        DisruptionBudget {
            namespace: pdb.metadata.namespace.clone().unwrap_or_default(),
            selector,
            disruptions_allowed: status.map(|s| s.disruptions_allowed).unwrap_or(0),
            disrupted: status
                .and_then(|s| s.disrupted_pods.as_ref())
                .map(|d| d.keys().cloned().collect())
                .unwrap_or_default(),
        }
    }
}

/// Splits `pods` (in the order given) into those whose eviction would violate a
/// budget and those whose would not, spending each budget's allowed disruptions
/// in that order.
fn split_by_budget_violation(
    pods: &[Arc<PodInfo>],
    budgets: &[Arc<DisruptionBudget>],
) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<i32> = budgets.iter().map(|b| b.disruptions_allowed).collect();
    let (mut violating, mut fine) = (Vec::new(), Vec::new());
    for pod in pods {
        let mut violated = false;
        if !pod.labels.is_empty() {
            for (i, b) in budgets.iter().enumerate() {
                if b.namespace != pod.namespace
                    || !b.selector.matches(&pod.labels)
                    || b.disrupted.contains(&pod.name)
                {
                    continue;
                }
                allowed[i] -= 1;
                if allowed[i] < 0 {
                    violated = true;
                }
            }
        }
        if violated {
            violating.push(pod.clone());
        } else {
            fine.push(pod.clone());
        }
    }
    (violating, fine)
}

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

/// Whether `pod` passes the filters on `node` once `victims` are gone (the pod
/// affinity and topology spread counts lowered for them, as upstream's RemovePod);
/// the first filter's rejection if not.
fn fits_without(
    profile: &Profile,
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
    victims: &[Arc<PodInfo>],
) -> Result<(), Rejection> {
    let trial = node_without(node, victims);
    let refs: Vec<&PodInfo> = victims.iter().map(|v| v.as_ref()).collect();
    let trial_state = CycleState {
        interpod: state.interpod.without(pod, &refs, node),
        spread: state.spread.without(pod, &refs, node),
        nominated: state.nominated.clone(),
    };
    run_filters(profile, &trial_state, pod, &trial)
}

/// Looks for a preemption that lets `pod` run; `Err` carries the post-filter message.
pub fn preempt(
    cache: &Cache,
    profile: &Profile,
    state: &CycleState,
    pod: &PodInfo,
    statuses: &HashMap<String, Rejection>,
    budgets: &[Arc<DisruptionBudget>],
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
        if lower.is_empty() {
            outcome.insert(
                node.name.clone(),
                Rejection {
                    code: Code::Unresolvable,
                    reasons: vec!["No preemption victims found for incoming pod".into()],
                },
            );
            continue;
        }
        // Not fitting even without every lower-priority pod: the filter says why.
        if let Err(rejection) = fits_without(profile, state, pod, node, &lower) {
            outcome.insert(node.name.clone(), rejection);
            continue;
        }
        // Reprieve pods while the pod still fits: first those a budget protects,
        // then the rest, most important first within each group.
        lower.sort_by_key(|p| std::cmp::Reverse(p.priority));
        let (violating, fine) = split_by_budget_violation(&lower, budgets);
        let mut victims = lower.clone();
        let mut violations = 0i64;
        for (p, protected) in violating
            .iter()
            .map(|p| (p, true))
            .chain(fine.iter().map(|p| (p, false)))
        {
            let without_p: Vec<Arc<PodInfo>> =
                victims.iter().filter(|v| v.key != p.key).cloned().collect();
            if fits_without(profile, state, pod, node, &without_p).is_ok() {
                victims = without_p;
            } else if protected {
                violations += 1;
            }
        }
        victims.sort_by_key(|p| std::cmp::Reverse(p.priority));
        // Rank: fewest budget violations, lowest highest-priority victim, then
        // smallest priority sum, then fewest victims.
        let highest = victims
            .iter()
            .map(|v| v.priority as i64)
            .max()
            .unwrap_or(i64::MIN);
        let sum: i64 = victims.iter().map(|v| v.priority as i64 + (1 << 31)).sum();
        let rank = vec![violations, highest, sum, victims.len() as i64];
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

#[cfg(test)]
mod tests {
    //! DefaultPreemption against upstream's expectations
    //! (`defaultpreemption/default_preemption.go`, `framework/preemption`):
    //! victims, reprieve order, node choice and the post-filter messages.

    use super::*;
    use crate::algorithm::{schedule, FitError, Search};
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{json, Value};

    fn merge(mut base: Value, patch: Value) -> Value {
        fn go(b: &mut Value, p: Value) {
            match (b, p) {
                (Value::Object(b), Value::Object(p)) => {
                    for (k, v) in p {
                        go(b.entry(k).or_insert(Value::Null), v);
                    }
                }
                (b, p) => *b = p,
            }
        }
        go(&mut base, patch);
        base
    }

    fn node(name: &str, cpu: &str, labels: Value) -> Value {
        json!({
            "metadata": {"name": name, "labels": labels},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}}
        })
    }

    /// A pod in `default` with `priority` whose container requests `cpu`.
    fn pod(name: &str, priority: i32, cpu: &str) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {
                "priority": priority,
                "containers": [{"name": "c", "image": "busybox",
                    "resources": {"requests": {"cpu": cpu}}}]
            }
        })
    }

    fn labeled(p: Value, labels: Value) -> Value {
        merge(p, json!({"metadata": {"labels": labels}}))
    }

    fn on(p: Value, node: &str) -> Value {
        merge(p, json!({"spec": {"nodeName": node}}))
    }

    fn info(p: &Value) -> PodInfo {
        let pod: Pod = serde_json::from_value(p.clone()).unwrap();
        PodInfo::new(Arc::new(pod))
    }

    fn cache(nodes: &[Value], pods: &[Value]) -> Cache {
        let mut c = Cache::default();
        for n in nodes {
            let n: Node = serde_json::from_value(n.clone()).unwrap();
            c.set_node(Arc::new(n));
        }
        for p in pods {
            c.add_pod(Arc::new(info(p)), false);
        }
        c
    }

    /// Schedules `p` (which must fit nowhere), then tries to preempt for it.
    fn attempt(c: &Cache, p: &Value) -> (FitError, Result<Preemption, String>) {
        let profile = Profile::default_named("default-scheduler");
        let pi = info(p);
        let state = CycleState::new(c, &pi, &|name| profile.enabled(name));
        let fit = schedule(c, &profile, None, &state, &pi, &mut Search::default())
            .expect_err("the pod should fit nowhere");
        let outcome = preempt(c, &profile, &state, &pi, &fit.statuses, &[]);
        (fit, outcome)
    }

    /// The chosen node and the names of the victims, sorted.
    fn chosen(outcome: Result<Preemption, String>) -> (String, Vec<String>) {
        let p = outcome.unwrap();
        let mut names: Vec<String> = p.victims.iter().map(|v| v.name.clone()).collect();
        names.sort();
        (p.node, names)
    }

    fn anti(app: &str, key: &str) -> Value {
        json!({"spec": {"affinity": {"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]}}}})
    }

    #[test]
    fn only_lower_priority_pods_are_victims_and_the_important_ones_are_reprieved() {
        // 5 cpu, all used. Removing every lower-priority pod leaves 4 free; then
        // reprieve in priority order: p3 stays (3 free), p2 cannot (1 free), p1
        // stays (2 free once p2 is gone). The priority-100 pod is never a victim.
        let c = cache(
            &[node("n1", "5", json!({}))],
            &[
                on(pod("high", 100, "1"), "n1"),
                on(pod("p3", 3, "1"), "n1"),
                on(pod("p2", 2, "2"), "n1"),
                on(pod("p1", 1, "1"), "n1"),
            ],
        );
        let (_, outcome) = attempt(&c, &pod("incoming", 10, "2"));
        assert_eq!(chosen(outcome), ("n1".to_string(), vec!["p2".to_string()]));
    }

    fn budget(ns: &str, app: &str, allowed: i32) -> Arc<DisruptionBudget> {
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": {"name": app, "namespace": ns},
            "spec": {"selector": {"matchLabels": {"app": app}}, "minAvailable": 1},
            "status": {"disruptionsAllowed": allowed, "currentHealthy": 0,
                       "desiredHealthy": 0, "expectedPods": 0}
        }))
        .unwrap();
        Arc::new(DisruptionBudget::new(&pdb))
    }

    #[test]
    fn nodes_whose_victims_a_budget_protects_are_avoided() {
        // Both nodes can make room by evicting one pod of the same priority; the
        // pod on n1 is protected by a budget with no disruptions left.
        let c = cache(
            &[node("n1", "1", json!({})), node("n2", "1", json!({}))],
            &[
                on(labeled(pod("guarded", 0, "1"), json!({"app": "db"})), "n1"),
                on(labeled(pod("free", 0, "1"), json!({"app": "web"})), "n2"),
            ],
        );
        let p = pod("vip", 100, "1");
        let pi = info(&p);
        let profile = Profile::default_named("default-scheduler");
        let state = CycleState::new(&c, &pi, &|name| profile.enabled(name));
        let fit = schedule(&c, &profile, None, &state, &pi, &mut Search::default()).unwrap_err();
        let budgets = [budget("default", "db", 0)];
        let out = preempt(&c, &profile, &state, &pi, &fit.statuses, &budgets);
        assert_eq!(chosen(out), ("n2".to_string(), vec!["free".to_string()]));
        // With the budget allowing a disruption, the tie goes back to the first node.
        let budgets = [budget("default", "db", 1)];
        let out = preempt(&c, &profile, &state, &pi, &fit.statuses, &budgets);
        assert_eq!(chosen(out).1.len(), 1);
        // A budget in another namespace protects nothing here.
        let (violating, fine) = split_by_budget_violation(
            &[Arc::new(info(&on(
                labeled(pod("x", 0, "1"), json!({"app": "db"})),
                "n1",
            )))],
            &[budget("other", "db", 0)],
        );
        assert!(violating.is_empty());
        assert_eq!(fine.len(), 1);
    }

    #[test]
    fn a_budget_is_violated_only_past_its_allowed_disruptions() {
        let pods: Vec<Arc<PodInfo>> = ["a", "b", "c"]
            .iter()
            .map(|n| {
                Arc::new(info(&on(
                    labeled(pod(n, 0, "1"), json!({"app": "db"})),
                    "n1",
                )))
            })
            .collect();
        let (violating, fine) = split_by_budget_violation(&pods, &[budget("default", "db", 1)]);
        let names = |v: &[Arc<PodInfo>]| v.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&fine), ["a"]);
        assert_eq!(names(&violating), ["b", "c"]);
        // Pods the API already counted as disrupted do not spend the budget.
        let mut b = (*budget("default", "db", 1)).clone();
        b.disrupted.insert("a".into());
        let (violating, fine) = split_by_budget_violation(&pods, &[Arc::new(b)]);
        assert_eq!(names(&fine), ["a", "b"]);
        assert_eq!(names(&violating), ["c"]);
    }

    #[test]
    fn pods_of_equal_priority_are_not_victims() {
        let c = cache(
            &[node("n1", "2", json!({}))],
            &[on(pod("peer", 10, "2"), "n1")],
        );
        let (fit, outcome) = attempt(&c, &pod("incoming", 10, "1"));
        assert_eq!(
            outcome.unwrap_err(),
            "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        );
        assert_eq!(
            fit.message(),
            "0/1 nodes are available: 1 Insufficient cpu."
        );
    }

    #[test]
    fn node_whose_most_important_victim_is_least_important_wins() {
        // n1 would lose one priority-5 pod, n2 two pods of priority 3 and 1.
        let c = cache(
            &[node("n1", "2", json!({})), node("n2", "2", json!({}))],
            &[
                on(pod("a", 5, "2"), "n1"),
                on(pod("b", 3, "1"), "n2"),
                on(pod("c", 1, "1"), "n2"),
            ],
        );
        let (_, outcome) = attempt(&c, &pod("incoming", 10, "2"));
        assert_eq!(
            chosen(outcome),
            ("n2".to_string(), vec!["b".to_string(), "c".to_string()])
        );
    }

    #[test]
    fn then_the_smaller_priority_sum_then_fewer_victims() {
        // Same highest victim priority (3): n2's victims sum to less.
        let c = cache(
            &[node("n1", "2", json!({})), node("n2", "2", json!({}))],
            &[
                on(pod("a", 3, "1"), "n1"),
                on(pod("b", 2, "1"), "n1"),
                on(pod("c", 3, "1"), "n2"),
                on(pod("d", 1, "1"), "n2"),
            ],
        );
        let (_, outcome) = attempt(&c, &pod("incoming", 10, "2"));
        assert_eq!(
            chosen(outcome),
            ("n2".to_string(), vec!["c".to_string(), "d".to_string()])
        );
        // One priority-3 victim beats two of them.
        let c = cache(
            &[node("n1", "2", json!({})), node("n2", "2", json!({}))],
            &[
                on(pod("a", 3, "1"), "n1"),
                on(pod("b", 3, "1"), "n1"),
                on(pod("c", 3, "2"), "n2"),
            ],
        );
        let (_, outcome) = attempt(&c, &pod("incoming", 10, "2"));
        assert_eq!(chosen(outcome), ("n2".to_string(), vec!["c".to_string()]));
    }

    #[test]
    fn message_counts_unhelpful_nodes_and_nodes_without_victims() {
        // n1: an untolerated taint (unresolvable, preemption cannot help); n2: full
        // of a more important pod.
        let c = cache(
            &[
                merge(
                    node("n1", "2", json!({})),
                    json!({"spec": {"taints": [
                        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}),
                ),
                node("n2", "2", json!({})),
            ],
            &[on(pod("vip", 100, "2"), "n2")],
        );
        let (mut fit, outcome) = attempt(&c, &pod("incoming", 10, "1"));
        let msg = outcome.unwrap_err();
        assert_eq!(
            msg,
            "preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."
        );
        fit.post_filter = Some(msg);
        assert_eq!(
            fit.message(),
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}. preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn node_still_too_small_after_evictions_reports_the_filter_reason() {
        // Upstream SelectVictimsOnNode returns the filter status when the pod does
        // not fit even without all lower-priority pods.
        let c = cache(
            &[node("n1", "4", json!({}))],
            &[on(pod("vip", 100, "3"), "n1"), on(pod("low", 1, "1"), "n1")],
        );
        let (_, outcome) = attempt(&c, &pod("incoming", 10, "2"));
        assert_eq!(
            outcome.unwrap_err(),
            "preemption: 0/1 nodes are available: 1 Insufficient cpu."
        );
    }

    #[test]
    fn preemption_policy_never() {
        let c = cache(
            &[node("n1", "1", json!({}))],
            &[on(pod("low", 1, "1"), "n1")],
        );
        let p = merge(
            pod("incoming", 10, "1"),
            json!({"spec": {"preemptionPolicy": "Never"}}),
        );
        let (_, outcome) = attempt(&c, &p);
        assert_eq!(
            outcome.unwrap_err(),
            "preemption: not eligible due to preemptionPolicy=Never."
        );
    }

    #[test]
    fn evicting_a_pod_whose_anti_affinity_rejects_the_newcomer() {
        let guard = merge(
            labeled(pod("guard", 1, "100m"), json!({"app": "db"})),
            anti("web", "zone"),
        );
        let c = cache(
            &[node("n1", "4", json!({"zone": "a"}))],
            &[on(guard, "n1"), on(pod("other", 1, "100m"), "n1")],
        );
        let p = labeled(pod("incoming", 10, "1"), json!({"app": "web"}));
        let (fit, outcome) = attempt(&c, &p);
        assert_eq!(
            fit.message(),
            "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules."
        );
        assert_eq!(
            chosen(outcome),
            ("n1".to_string(), vec!["guard".to_string()])
        );
    }

    #[test]
    fn evicting_a_pod_the_newcomer_is_anti_affine_to() {
        let c = cache(
            &[node("n1", "4", json!({"kubernetes.io/hostname": "n1"}))],
            &[
                on(labeled(pod("db", 1, "100m"), json!({"app": "db"})), "n1"),
                on(pod("other", 1, "100m"), "n1"),
            ],
        );
        let p = merge(
            labeled(pod("incoming", 10, "1"), json!({"app": "web"})),
            anti("db", "kubernetes.io/hostname"),
        );
        let (_, outcome) = attempt(&c, &p);
        assert_eq!(chosen(outcome), ("n1".to_string(), vec!["db".to_string()]));
    }

    #[test]
    fn evicting_pods_to_satisfy_topology_spread() {
        // n1 holds two low-priority web pods (skew 2+1-0 > 1); n2 is full of a
        // more important pod. Upstream removes the victims from the spread counts
        // (RemovePod) and finds that evicting both web pods lets the pod fit.
        let web = |name: &str| labeled(pod(name, 1, "0"), json!({"app": "web"}));
        let c = cache(
            &[
                node("n1", "2", json!({"kubernetes.io/hostname": "n1"})),
                node("n2", "2", json!({"kubernetes.io/hostname": "n2"})),
            ],
            &[
                on(web("w1"), "n1"),
                on(web("w2"), "n1"),
                on(pod("vip", 100, "2"), "n2"),
            ],
        );
        let p = merge(
            labeled(pod("incoming", 10, "1"), json!({"app": "web"})),
            json!({"spec": {"topologySpreadConstraints": [{"maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "web"}}}]}}),
        );
        let (_, outcome) = attempt(&c, &p);
        assert_eq!(
            chosen(outcome),
            ("n1".to_string(), vec!["w1".to_string(), "w2".to_string()])
        );
    }
}
