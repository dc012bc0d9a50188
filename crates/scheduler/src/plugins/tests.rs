//! Unit tests of the filter and score plugins against upstream's expected verdicts,
//! reason strings and scores (Kubernetes 1.33, `pkg/scheduler/framework/plugins`).
//! Each test builds a cache of nodes and pods from JSON.

use super::*;
use crate::nodeinfo::Cache;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

const SPREAD_REASON: &str = "node(s) didn't match pod topology spread constraints";
const SPREAD_LABEL_REASON: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
const AFFINITY_REASON: &str = "node(s) didn't match pod affinity rules";
const ANTI_AFFINITY_REASON: &str = "node(s) didn't match pod anti-affinity rules";
const EXISTING_ANTI_REASON: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
const PORTS_REASON: &str = "node(s) didn't have free ports for the requested pod ports";
const HOSTNAME: &str = "kubernetes.io/hostname";

// ---------------------------------------------------------------------------
// Building blocks.

/// Deep-merges `patch` into `base`: objects key by key, anything else replaced.
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

/// A Node with `labels`, 4 cpu, 8Gi and 110 pods allocatable.
fn node(name: &str, labels: Value) -> Value {
    json!({
        "metadata": {"name": name, "labels": labels},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}
    })
}

/// A node whose allocatable is exactly `alloc`.
fn sized_node(name: &str, alloc: Value) -> Value {
    json!({"metadata": {"name": name}, "status": {"allocatable": alloc}})
}

/// A pod in `default` with one container without requests.
fn pod(name: &str, labels: Value) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "default", "uid": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    })
}

/// A pod in `default` whose one container requests `requests`.
fn req_pod(name: &str, requests: Value) -> Value {
    merge(
        pod(name, json!({})),
        json!({"spec": {"containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": requests}}]}}),
    )
}

/// The pod bound to `node`.
fn on(p: Value, node: &str) -> Value {
    merge(p, json!({"spec": {"nodeName": node}}))
}

/// The pod moved to another namespace.
fn in_ns(p: Value, ns: &str) -> Value {
    merge(p, json!({"metadata": {"namespace": ns}}))
}

/// The pod with `spec` fields merged in.
fn spec(p: Value, s: Value) -> Value {
    merge(p, json!({ "spec": s }))
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

fn with_namespaces(mut c: Cache, ns: &[(&str, Value)]) -> Cache {
    let mut m = HashMap::new();
    for (name, labels) in ns {
        m.insert(
            name.to_string(),
            serde_json::from_value::<BTreeMap<String, String>>(labels.clone()).unwrap(),
        );
    }
    c.namespace_labels = Arc::new(m);
    c
}

type Verdict = Result<(), Rejection>;

/// One filter's verdict on every node, by node name.
fn verdicts(c: &Cache, which: Filter, p: &Value) -> BTreeMap<String, Verdict> {
    let pi = info(p);
    let state = CycleState::new(c, &pi, &|_| true);
    c.nodes()
        .map(|n| (n.name.clone(), filter(which, &state, &pi, n)))
        .collect()
}

/// One filter's verdict on one node.
fn verdict(c: &Cache, which: Filter, p: &Value, node: &str) -> Verdict {
    verdicts(c, which, p).remove(node).unwrap()
}

/// Expected verdicts, by node name.
fn expect(v: &[(&str, Verdict)]) -> BTreeMap<String, Verdict> {
    v.iter().map(|(n, r)| (n.to_string(), r.clone())).collect()
}

fn fits() -> Verdict {
    Ok(())
}

fn unschedulable(reasons: &[&str]) -> Verdict {
    Err(Rejection {
        code: Code::Unschedulable,
        reasons: reasons.iter().map(|r| r.to_string()).collect(),
    })
}

fn unresolvable(reason: &str) -> Verdict {
    Err(Rejection {
        code: Code::Unresolvable,
        reasons: vec![reason.to_string()],
    })
}

/// One score plugin's normalized scores for `nodes` (the feasible ones, in order).
fn scores(c: &Cache, plugin: &str, p: &Value, nodes: &[&str]) -> Vec<i64> {
    let pi = info(p);
    let state = CycleState::new(c, &pi, &|_| true);
    let feasible: Vec<&NodeInfo> = nodes.iter().map(|n| c.node(n).unwrap()).collect();
    score(plugin, &state, &pi, &feasible).unwrap()
}

// ---------------------------------------------------------------------------
// Toleration matching and normalization (upstream ToleratesTaint,
// DefaultNormalizeScore).

fn taint(key: &str, value: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        value: Some(value.into()),
        effect: effect.into(),
        ..Default::default()
    }
}

#[test]
fn toleration_matching_follows_upstream() {
    let t = |key: Option<&str>, op: &str, value: Option<&str>, effect: Option<&str>| Toleration {
        key: key.map(Into::into),
        operator: Some(op.into()),
        value: value.map(Into::into),
        effect: effect.map(Into::into),
        ..Default::default()
    };
    let gpu = taint("gpu", "true", "NoSchedule");
    assert!(tolerates(
        &t(Some("gpu"), "Equal", Some("true"), None),
        &gpu
    ));
    assert!(!tolerates(
        &t(Some("gpu"), "Equal", Some("false"), None),
        &gpu
    ));
    assert!(tolerates(
        &t(Some("gpu"), "Exists", None, Some("NoSchedule")),
        &gpu
    ));
    assert!(!tolerates(
        &t(Some("gpu"), "Exists", None, Some("NoExecute")),
        &gpu
    ));
    assert!(tolerates(&t(None, "Exists", None, None), &gpu));
    assert!(!tolerates(&t(Some("other"), "Exists", None, None), &gpu));
}

#[test]
fn normalization() {
    assert_eq!(normalize(&[0, 5, 10]), vec![0, 50, 100]);
    assert_eq!(reverse_normalize(&[0, 1, 2]), vec![100, 50, 0]);
    assert_eq!(reverse_normalize(&[0, 0]), vec![100, 100]);
}

// ---------------------------------------------------------------------------
// PodTopologySpread (podtopologyspread/filtering.go, scoring.go).

fn spread(max_skew: i64, key: &str, when: &str, selector: Value) -> Value {
    json!({"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
        "labelSelector": selector})
}

fn spread_pod(labels: Value, constraints: Vec<Value>) -> Value {
    spec(
        pod("incoming", labels),
        json!({ "topologySpreadConstraints": constraints }),
    )
}

fn web() -> Value {
    json!({"matchLabels": {"app": "web"}})
}

fn web_pod(name: &str, node: &str) -> Value {
    on(pod(name, json!({"app": "web"})), node)
}

/// Zones a (two nodes), b and c; matching pods spread as a=2, b=1, c=0.
fn three_zones() -> Cache {
    cache(
        &[
            node("a1", json!({"zone": "a"})),
            node("a2", json!({"zone": "a"})),
            node("b1", json!({"zone": "b"})),
            node("c1", json!({"zone": "c"})),
        ],
        &[
            web_pod("w1", "a1"),
            web_pod("w2", "a2"),
            web_pod("w3", "b1"),
        ],
    )
}

#[test]
fn spread_max_skew_one_keeps_zones_within_one() {
    let c = three_zones();
    let p = spread_pod(
        json!({"app": "web"}),
        vec![spread(1, "zone", "DoNotSchedule", web())],
    );
    // Skew = matching pods in the domain + 1 (the pod matches itself) - global min (0).
    assert_eq!(
        verdicts(&c, Filter::PodTopologySpread, &p),
        expect(&[
            ("a1", unschedulable(&[SPREAD_REASON])),
            ("a2", unschedulable(&[SPREAD_REASON])),
            ("b1", unschedulable(&[SPREAD_REASON])),
            ("c1", fits()),
        ])
    );
}

#[test]
fn spread_max_skew_two_allows_a_difference_of_two() {
    let c = three_zones();
    let p = spread_pod(
        json!({"app": "web"}),
        vec![spread(2, "zone", "DoNotSchedule", web())],
    );
    assert_eq!(
        verdicts(&c, Filter::PodTopologySpread, &p),
        expect(&[
            ("a1", unschedulable(&[SPREAD_REASON])),
            ("a2", unschedulable(&[SPREAD_REASON])),
            ("b1", fits()),
            ("c1", fits()),
        ])
    );
}

#[test]
fn spread_pod_not_matching_its_own_selector_adds_nothing() {
    let c = three_zones();
    let p = spread_pod(
        json!({"app": "other"}),
        vec![spread(1, "zone", "DoNotSchedule", web())],
    );
    assert_eq!(
        verdicts(&c, Filter::PodTopologySpread, &p),
        expect(&[
            ("a1", unschedulable(&[SPREAD_REASON])),
            ("a2", unschedulable(&[SPREAD_REASON])),
            ("b1", fits()),
            ("c1", fits()),
        ])
    );
}

#[test]
fn spread_node_without_topology_key_is_unresolvable_and_not_counted() {
    let c = cache(
        &[
            node("a1", json!({"zone": "a"})),
            node("b1", json!({"zone": "b"})),
            node("x", json!({"other": "label"})),
        ],
        &[
            web_pod("w1", "a1"),
            web_pod("w2", "b1"),
            // Pods on a node without the key count in no domain.
            web_pod("w3", "x"),
            web_pod("w4", "x"),
            web_pod("w5", "x"),
        ],
    );
    let p = spread_pod(
        json!({"app": "web"}),
        vec![spread(1, "zone", "DoNotSchedule", web())],
    );
    assert_eq!(
        verdicts(&c, Filter::PodTopologySpread, &p),
        expect(&[
            ("a1", fits()),
            ("b1", fits()),
            ("x", unresolvable(SPREAD_LABEL_REASON)),
        ])
    );
}

#[test]
fn spread_min_domains_makes_the_global_minimum_zero() {
    let c = cache(
        &[
            node("a1", json!({"zone": "a"})),
            node("b1", json!({"zone": "b"})),
        ],
        &[
            web_pod("w1", "a1"),
            web_pod("w2", "a1"),
            web_pod("w3", "b1"),
            web_pod("w4", "b1"),
        ],
    );
    let constraint = |min_domains: Option<i64>| {
        let mut s = spread(2, "zone", "DoNotSchedule", web());
        if let Some(m) = min_domains {
            s = merge(s, json!({ "minDomains": m }));
        }
        spread_pod(json!({"app": "web"}), vec![s])
    };
    // Two domains of 2: the global minimum is 2, skew 2+1-2 = 1.
    let p = constraint(None);
    assert_eq!(verdict(&c, Filter::PodTopologySpread, &p, "a1"), fits());
    assert_eq!(verdict(&c, Filter::PodTopologySpread, &p, "b1"), fits());
    // minDomains 2 is met by the two domains.
    let p = constraint(Some(2));
    assert_eq!(verdict(&c, Filter::PodTopologySpread, &p, "a1"), fits());
    // Fewer domains than minDomains 3: the minimum counts as 0, skew 3 > 2.
    let p = constraint(Some(3));
    assert_eq!(
        verdicts(&c, Filter::PodTopologySpread, &p),
        expect(&[
            ("a1", unschedulable(&[SPREAD_REASON])),
            ("b1", unschedulable(&[SPREAD_REASON])),
        ])
    );
}

fn zones_a1_b2_c0(c_taints: Value) -> Cache {
    cache(
        &[
            node("a1", json!({"zone": "a"})),
            node("b1", json!({"zone": "b"})),
            merge(
                node("c1", json!({"zone": "c"})),
                json!({"spec": {"taints": c_taints}}),
            ),
        ],
        &[
            web_pod("w1", "a1"),
            web_pod("w2", "b1"),
            web_pod("w3", "b1"),
        ],
    )
}

#[test]
fn spread_node_affinity_policy_honor_and_ignore() {
    let c = zones_a1_b2_c0(json!([]));
    let p = |policy: Option<&str>| {
        let mut s = spread(1, "zone", "DoNotSchedule", web());
        if let Some(policy) = policy {
            s = merge(s, json!({ "nodeAffinityPolicy": policy }));
        }
        spec(
            spread_pod(json!({"app": "web"}), vec![s]),
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "zone", "operator": "In", "values": ["a", "b"]}]}]}}}}),
        )
    };
    // Honor (the default): zone c is not eligible, the minimum is zone a's 1.
    for policy in [None, Some("Honor")] {
        let p = p(policy);
        assert_eq!(verdict(&c, Filter::PodTopologySpread, &p, "a1"), fits());
        assert_eq!(
            verdict(&c, Filter::PodTopologySpread, &p, "b1"),
            unschedulable(&[SPREAD_REASON])
        );
    }
    // Ignore: the empty zone c counts, the minimum is 0.
    let p = p(Some("Ignore"));
    assert_eq!(
        verdict(&c, Filter::PodTopologySpread, &p, "a1"),
        unschedulable(&[SPREAD_REASON])
    );
    assert_eq!(
        verdict(&c, Filter::PodTopologySpread, &p, "b1"),
        unschedulable(&[SPREAD_REASON])
    );
}

#[test]
fn spread_node_taints_policy_honor_and_ignore() {
    let c = zones_a1_b2_c0(json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]));
    let p = |policy: Option<&str>, tolerate: bool| {
        let mut s = spread(1, "zone", "DoNotSchedule", web());
        if let Some(policy) = policy {
            s = merge(s, json!({ "nodeTaintsPolicy": policy }));
        }
        let mut p = spread_pod(json!({"app": "web"}), vec![s]);
        if tolerate {
            p = spec(
                p,
                json!({"tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
            );
        }
        p
    };
    // Ignore (the default): the tainted empty zone c counts, the minimum is 0.
    for policy in [None, Some("Ignore")] {
        let p = p(policy, false);
        assert_eq!(
            verdict(&c, Filter::PodTopologySpread, &p, "a1"),
            unschedulable(&[SPREAD_REASON])
        );
    }
    // Honor: the untolerated taint leaves zone c out, the minimum is 1.
    let honor = p(Some("Honor"), false);
    assert_eq!(verdict(&c, Filter::PodTopologySpread, &honor, "a1"), fits());
    assert_eq!(
        verdict(&c, Filter::PodTopologySpread, &honor, "b1"),
        unschedulable(&[SPREAD_REASON])
    );
    // Honor with a toleration: zone c is eligible again.
    let tolerated = p(Some("Honor"), true);
    assert_eq!(
        verdict(&c, Filter::PodTopologySpread, &tolerated, "a1"),
        unschedulable(&[SPREAD_REASON])
    );
}

#[test]
fn spread_match_label_keys_count_only_the_same_revision() {
    let rev = |name: &str, node: &str, hash: &str| {
        on(
            pod(name, json!({"app": "web", "pod-template-hash": hash})),
            node,
        )
    };
    let c = cache(
        &[
            node("a1", json!({"zone": "a"})),
            node("b1", json!({"zone": "b"})),
        ],
        &[
            rev("old1", "a1", "v1"),
            rev("old2", "a1", "v1"),
            rev("new1", "b1", "v2"),
        ],
    );
    let incoming = json!({"app": "web", "pod-template-hash": "v2"});
    // With matchLabelKeys only v2 pods count: a=0, b=1.
    let keyed = spread_pod(
        incoming.clone(),
        vec![merge(
            spread(1, "zone", "DoNotSchedule", web()),
            json!({"matchLabelKeys": ["pod-template-hash"]}),
        )],
    );
    assert_eq!(
        verdicts(&c, Filter::PodTopologySpread, &keyed),
        expect(&[("a1", fits()), ("b1", unschedulable(&[SPREAD_REASON]))])
    );
    // Without it every web pod counts: a=2, b=1.
    let plain = spread_pod(incoming, vec![spread(1, "zone", "DoNotSchedule", web())]);
    assert_eq!(
        verdicts(&c, Filter::PodTopologySpread, &plain),
        expect(&[("a1", unschedulable(&[SPREAD_REASON])), ("b1", fits())])
    );
}

#[test]
fn spread_ignores_other_namespaces_and_terminating_pods() {
    let c = cache(
        &[
            node("a1", json!({"zone": "a"})),
            node("b1", json!({"zone": "b"})),
        ],
        &[
            in_ns(web_pod("o1", "a1"), "other"),
            in_ns(web_pod("o2", "a1"), "other"),
            merge(
                web_pod("t1", "a1"),
                json!({"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}}),
            ),
        ],
    );
    let p = spread_pod(
        json!({"app": "web"}),
        vec![spread(1, "zone", "DoNotSchedule", web())],
    );
    assert_eq!(
        verdicts(&c, Filter::PodTopologySpread, &p),
        expect(&[("a1", fits()), ("b1", fits())])
    );
}

#[test]
fn spread_schedule_anyway_never_filters_and_prefers_emptier_domains() {
    let c = cache(
        &[
            node("a1", json!({"zone": "a"})),
            node("b1", json!({"zone": "b"})),
            node("c1", json!({"zone": "c"})),
        ],
        &[
            web_pod("w1", "a1"),
            web_pod("w2", "a1"),
            web_pod("w3", "b1"),
        ],
    );
    let p = spread_pod(
        json!({"app": "web"}),
        vec![spread(1, "zone", "ScheduleAnyway", web())],
    );
    assert_eq!(
        verdicts(&c, Filter::PodTopologySpread, &p),
        expect(&[("a1", fits()), ("b1", fits()), ("c1", fits())])
    );
    let s = scores(&c, "PodTopologySpread", &p, &["a1", "b1", "c1"]);
    assert_eq!(s[2], 100, "the empty zone scores highest: {s:?}");
    assert_eq!(s[0], 0, "the fullest zone scores lowest: {s:?}");
    assert!(s[2] > s[1] && s[1] > s[0], "{s:?}");
}

#[test]
fn spread_schedule_anyway_scores_three_zones() {
    // Weight ln(3+2); raw scores round(2w)=3, round(w)=2, 0; normalized
    // 100*(max+min-s)/max with max 3, min 0.
    let c = cache(
        &[
            node("a1", json!({"zone": "a"})),
            node("b1", json!({"zone": "b"})),
            node("c1", json!({"zone": "c"})),
        ],
        &[
            web_pod("w1", "a1"),
            web_pod("w2", "a1"),
            web_pod("w3", "b1"),
        ],
    );
    let p = spread_pod(
        json!({"app": "web"}),
        vec![spread(1, "zone", "ScheduleAnyway", web())],
    );
    assert_eq!(
        scores(&c, "PodTopologySpread", &p, &["a1", "b1", "c1"]),
        vec![0, 33, 100]
    );
}

#[test]
fn spread_schedule_anyway_two_zones() {
    // Weight ln(2+2); raw round(2w)=3 and 0: 0 and 100 either way.
    let c = cache(
        &[
            node("a1", json!({"zone": "a"})),
            node("b1", json!({"zone": "b"})),
        ],
        &[web_pod("w1", "a1"), web_pod("w2", "a1")],
    );
    let p = spread_pod(
        json!({"app": "web"}),
        vec![spread(1, "zone", "ScheduleAnyway", web())],
    );
    assert_eq!(
        scores(&c, "PodTopologySpread", &p, &["a1", "b1"]),
        vec![0, 100]
    );
}

fn foo_pod(name: &str, node: &str) -> Value {
    on(pod(name, json!({"foo": ""})), node)
}

fn foo_spread(max_skew: i64, key: &str) -> Value {
    spread(
        max_skew,
        key,
        "ScheduleAnyway",
        json!({"matchExpressions": [{"key": "foo", "operator": "Exists"}]}),
    )
}

fn host_node(name: &str) -> Value {
    node(name, json!({ HOSTNAME: name }))
}

/// `counts[i]` matching pods on `node-<letter>`.
fn foo_pods(spread_as: &[(&str, usize)]) -> Vec<Value> {
    spread_as
        .iter()
        .flat_map(|(n, k)| {
            (0..*k).map(move |i| foo_pod(&format!("p-{n}{i}"), &format!("node-{n}")))
        })
        .collect()
}

#[test]
fn spread_scores_hostname_constraint_same_counts() {
    // Upstream scoring_test "one constraint on node, all nodes have the same number
    // of matching pods".
    let c = cache(
        &[host_node("node-a"), host_node("node-b")],
        &foo_pods(&[("a", 1), ("b", 1)]),
    );
    let p = spread_pod(json!({"foo": ""}), vec![foo_spread(1, HOSTNAME)]);
    assert_eq!(
        scores(&c, "PodTopologySpread", &p, &["node-a", "node-b"]),
        vec![100, 100]
    );
}

#[test]
fn spread_scores_hostname_constraint_upstream_cases() {
    // Upstream scoring_test "one constraint on node, all 4 nodes are candidates"
    // (2/1/0/3), with maxSkew 1, 2, and 3 (4/3/2/1).
    let nodes = [
        host_node("node-a"),
        host_node("node-b"),
        host_node("node-c"),
        host_node("node-d"),
    ];
    let all = ["node-a", "node-b", "node-c", "node-d"];
    let c = cache(&nodes, &foo_pods(&[("a", 2), ("b", 1), ("d", 3)]));
    let p = spread_pod(json!({"foo": ""}), vec![foo_spread(1, HOSTNAME)]);
    assert_eq!(
        scores(&c, "PodTopologySpread", &p, &all),
        vec![20, 60, 100, 0]
    );
    let p = spread_pod(json!({"foo": ""}), vec![foo_spread(2, HOSTNAME)]);
    assert_eq!(
        scores(&c, "PodTopologySpread", &p, &all),
        vec![33, 66, 100, 16]
    );
    let c = cache(&nodes, &foo_pods(&[("a", 4), ("b", 3), ("c", 2), ("d", 1)]));
    let p = spread_pod(json!({"foo": ""}), vec![foo_spread(3, HOSTNAME)]);
    assert_eq!(
        scores(&c, "PodTopologySpread", &p, &all),
        vec![44, 66, 77, 100]
    );
}

#[test]
fn spread_scores_only_feasible_nodes_set_the_weight() {
    // Upstream scoring_test "one constraint on node, 3 out of 4 nodes are
    // candidates": 4/2/1 on the candidates, node-y (3 pods) filtered out.
    let c = cache(
        &[
            host_node("node-a"),
            host_node("node-b"),
            host_node("node-x"),
            host_node("node-y"),
        ],
        &foo_pods(&[("a", 4), ("b", 2), ("x", 1), ("y", 3)]),
    );
    let p = spread_pod(json!({"foo": ""}), vec![foo_spread(1, HOSTNAME)]);
    assert_eq!(
        scores(&c, "PodTopologySpread", &p, &["node-a", "node-b", "node-x"]),
        vec![33, 83, 100]
    );
}

#[test]
fn spread_scores_node_missing_the_key_gets_zero() {
    // Upstream scoring_test "one constraint on node, 3 out of 4 nodes are
    // candidates, one node doesn't match topology key".
    let c = cache(
        &[
            host_node("node-a"),
            node("node-b", json!({"n": "node-b"})),
            host_node("node-x"),
            host_node("node-y"),
        ],
        &foo_pods(&[("a", 4), ("b", 2), ("x", 1), ("y", 3)]),
    );
    let p = spread_pod(json!({"foo": ""}), vec![foo_spread(1, HOSTNAME)]);
    assert_eq!(
        scores(&c, "PodTopologySpread", &p, &["node-a", "node-b", "node-x"]),
        vec![16, 0, 100]
    );
}

#[test]
fn spread_scores_node_missing_the_key_is_left_out() {
    // Whatever the exact values, a node without the key scores 0 and the others
    // are normalized among themselves.
    let c = cache(
        &[
            host_node("node-a"),
            node("node-b", json!({"n": "node-b"})),
            host_node("node-x"),
        ],
        &foo_pods(&[("a", 4), ("b", 2), ("x", 1)]),
    );
    let p = spread_pod(json!({"foo": ""}), vec![foo_spread(1, HOSTNAME)]);
    let s = scores(&c, "PodTopologySpread", &p, &["node-a", "node-b", "node-x"]);
    assert_eq!(s[1], 0, "{s:?}");
    assert_eq!(s[2], 100, "{s:?}");
    assert!(s[0] < s[2], "{s:?}");
}

#[test]
fn spread_scores_zone_constraint_counts_pods_of_filtered_nodes() {
    // Upstream scoring_test "one constraint on zone, 3 out of 4 nodes are
    // candidates": zone1 = 4+2, zone2 = 1 + 3 (node-y is filtered out but its pods
    // count for its zone).
    let zn = |name: &str, zone: &str| node(name, json!({"zone": zone, HOSTNAME: name}));
    let c = cache(
        &[
            zn("node-a", "zone1"),
            zn("node-b", "zone1"),
            zn("node-x", "zone2"),
            zn("node-y", "zone2"),
        ],
        &foo_pods(&[("a", 4), ("b", 2), ("x", 1), ("y", 3)]),
    );
    let p = spread_pod(json!({"foo": ""}), vec![foo_spread(1, "zone")]);
    assert_eq!(
        scores(&c, "PodTopologySpread", &p, &["node-a", "node-b", "node-x"]),
        vec![75, 75, 100]
    );
}

#[test]
fn spread_scores_zone_and_hostname_constraints() {
    // Upstream scoring_test "two Constraints on zone and node, 2 out of 4 nodes are
    // candidates".
    let zn = |name: &str, zone: &str| node(name, json!({"zone": zone, HOSTNAME: name}));
    let c = cache(
        &[
            zn("node-a", "zone1"),
            zn("node-b", "zone1"),
            zn("node-x", "zone2"),
            zn("node-y", "zone2"),
        ],
        &foo_pods(&[("a", 2), ("b", 1), ("x", 2), ("y", 4)]),
    );
    let p = spread_pod(
        json!({"foo": ""}),
        vec![foo_spread(1, "zone"), foo_spread(1, HOSTNAME)],
    );
    assert_eq!(
        scores(&c, "PodTopologySpread", &p, &["node-a", "node-x"]),
        vec![100, 63]
    );
}

// ---------------------------------------------------------------------------
// InterPodAffinity (interpodaffinity/filtering.go, scoring.go).

/// n1 and n2 in zone a, n3 in zone b, n4 without a zone; all with a hostname.
fn affinity_nodes() -> Vec<Value> {
    vec![
        node("n1", json!({"zone": "a", HOSTNAME: "n1"})),
        node("n2", json!({"zone": "a", HOSTNAME: "n2"})),
        node("n3", json!({"zone": "b", HOSTNAME: "n3"})),
        node("n4", json!({ HOSTNAME: "n4" })),
    ]
}

fn term(app: &str, key: &str) -> Value {
    json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key})
}

fn required(kind: &str, terms: Vec<Value>) -> Value {
    json!({"affinity": { kind: {"requiredDuringSchedulingIgnoredDuringExecution": terms}}})
}

fn preferred(kind: &str, weighted: Vec<(i64, Value)>) -> Value {
    let terms: Vec<Value> = weighted
        .into_iter()
        .map(|(w, t)| json!({"weight": w, "podAffinityTerm": t}))
        .collect();
    json!({"affinity": { kind: {"preferredDuringSchedulingIgnoredDuringExecution": terms}}})
}

fn app_pod(name: &str, app: &str) -> Value {
    pod(name, json!({ "app": app }))
}

#[test]
fn affinity_required_needs_a_matching_pod_in_the_domain() {
    let c = cache(&affinity_nodes(), &[on(app_pod("db", "db"), "n1")]);
    let p = spec(
        app_pod("incoming", "web"),
        required("podAffinity", vec![term("db", "zone")]),
    );
    assert_eq!(
        verdicts(&c, Filter::InterPodAffinity, &p),
        expect(&[
            ("n1", fits()),
            ("n2", fits()),
            ("n3", unresolvable(AFFINITY_REASON)),
            ("n4", unresolvable(AFFINITY_REASON)),
        ])
    );
}

#[test]
fn affinity_first_pod_of_a_group_goes_where_the_key_exists() {
    let c = cache(&affinity_nodes(), &[on(app_pod("web", "web"), "n1")]);
    // No db pod anywhere, and the incoming pod matches its own term.
    let p = spec(
        app_pod("incoming", "db"),
        required("podAffinity", vec![term("db", "zone")]),
    );
    assert_eq!(
        verdicts(&c, Filter::InterPodAffinity, &p),
        expect(&[
            ("n1", fits()),
            ("n2", fits()),
            ("n3", fits()),
            ("n4", unresolvable(AFFINITY_REASON)),
        ])
    );
    // A pod that does not match its own term gets nowhere.
    let p = spec(
        app_pod("incoming", "web"),
        required("podAffinity", vec![term("db", "zone")]),
    );
    assert_eq!(
        verdicts(&c, Filter::InterPodAffinity, &p),
        expect(&[
            ("n1", unresolvable(AFFINITY_REASON)),
            ("n2", unresolvable(AFFINITY_REASON)),
            ("n3", unresolvable(AFFINITY_REASON)),
            ("n4", unresolvable(AFFINITY_REASON)),
        ])
    );
}

#[test]
fn affinity_first_of_group_when_matches_lack_the_topology_key() {
    // Upstream counts matches per topology pair; a matching pod on a node without
    // the key adds no pair, so affinityCounts stays empty and the self-matching pod
    // is treated as the first of its group.
    let c = cache(&affinity_nodes(), &[on(app_pod("db", "db"), "n4")]);
    let p = spec(
        app_pod("incoming", "db"),
        required("podAffinity", vec![term("db", "zone")]),
    );
    assert_eq!(
        verdicts(&c, Filter::InterPodAffinity, &p),
        expect(&[
            ("n1", fits()),
            ("n2", fits()),
            ("n3", fits()),
            ("n4", unresolvable(AFFINITY_REASON)),
        ])
    );
}

#[test]
fn anti_affinity_of_the_incoming_pod() {
    let c = cache(&affinity_nodes(), &[on(app_pod("web", "web"), "n1")]);
    let by_host = spec(
        app_pod("incoming", "web"),
        required("podAntiAffinity", vec![term("web", HOSTNAME)]),
    );
    assert_eq!(
        verdicts(&c, Filter::InterPodAffinity, &by_host),
        expect(&[
            ("n1", unschedulable(&[ANTI_AFFINITY_REASON])),
            ("n2", fits()),
            ("n3", fits()),
            ("n4", fits()),
        ])
    );
    // By zone: all of zone a is excluded; a node without the key is not.
    let by_zone = spec(
        app_pod("incoming", "web"),
        required("podAntiAffinity", vec![term("web", "zone")]),
    );
    assert_eq!(
        verdicts(&c, Filter::InterPodAffinity, &by_zone),
        expect(&[
            ("n1", unschedulable(&[ANTI_AFFINITY_REASON])),
            ("n2", unschedulable(&[ANTI_AFFINITY_REASON])),
            ("n3", fits()),
            ("n4", fits()),
        ])
    );
}

#[test]
fn anti_affinity_of_existing_pods() {
    let guard = spec(
        app_pod("guard", "db"),
        required("podAntiAffinity", vec![term("web", "zone")]),
    );
    let c = cache(&affinity_nodes(), &[on(guard, "n1")]);
    assert_eq!(
        verdicts(&c, Filter::InterPodAffinity, &app_pod("incoming", "web")),
        expect(&[
            ("n1", unschedulable(&[EXISTING_ANTI_REASON])),
            ("n2", unschedulable(&[EXISTING_ANTI_REASON])),
            ("n3", fits()),
            ("n4", fits()),
        ])
    );
    // A pod the term is not about goes anywhere.
    assert_eq!(
        verdicts(&c, Filter::InterPodAffinity, &app_pod("incoming", "api")),
        expect(&[
            ("n1", fits()),
            ("n2", fits()),
            ("n3", fits()),
            ("n4", fits())
        ])
    );
}

#[test]
fn affinity_reasons_follow_upstream_check_order() {
    // Upstream's Filter checks the pod's affinity, then its anti-affinity, then the
    // existing pods' anti-affinity, and reports the first failure.
    let guard = spec(
        app_pod("guard", "guard"),
        required("podAntiAffinity", vec![term("web", "zone")]),
    );
    let c = cache(
        &affinity_nodes(),
        &[
            on(guard, "n3"),
            on(app_pod("db", "db"), "n1"),
            on(app_pod("cache", "cache"), "n3"),
        ],
    );
    // n3: no db pod in zone b (affinity) and the guard's anti-affinity.
    let p = spec(
        app_pod("incoming", "web"),
        required("podAffinity", vec![term("db", "zone")]),
    );
    assert_eq!(
        verdict(&c, Filter::InterPodAffinity, &p, "n3"),
        unresolvable(AFFINITY_REASON)
    );
    // n3: a cache pod (the incoming pod's anti-affinity) and the guard.
    let p = spec(
        app_pod("incoming", "web"),
        required("podAntiAffinity", vec![term("cache", HOSTNAME)]),
    );
    assert_eq!(
        verdict(&c, Filter::InterPodAffinity, &p, "n3"),
        unschedulable(&[ANTI_AFFINITY_REASON])
    );
}

#[test]
fn affinity_counts_terminating_pods() {
    // Upstream's InterPodAffinity looks at every pod in the node's info, including
    // ones with a deletionTimestamp (only PodTopologySpread skips those).
    let guard = merge(
        spec(
            app_pod("guard", "db"),
            required("podAntiAffinity", vec![term("web", HOSTNAME)]),
        ),
        json!({"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}}),
    );
    let c = cache(&affinity_nodes(), &[on(guard, "n1")]);
    assert_eq!(
        verdict(
            &c,
            Filter::InterPodAffinity,
            &app_pod("incoming", "web"),
            "n1"
        ),
        unschedulable(&[EXISTING_ANTI_REASON])
    );
}

fn namespaced_cluster() -> Cache {
    let c = cache(
        &affinity_nodes(),
        &[
            on(in_ns(app_pod("db-a", "db"), "team-a"), "n1"),
            on(in_ns(app_pod("db-b", "db"), "team-b"), "n3"),
        ],
    );
    with_namespaces(
        c,
        &[
            ("default", json!({})),
            ("team-a", json!({"team": "a"})),
            ("team-b", json!({"team": "b"})),
        ],
    )
}

#[test]
fn affinity_namespace_selector_and_namespaces() {
    let c = namespaced_cluster();
    let with_term = |extra: Value| {
        spec(
            app_pod("incoming", "web"),
            required("podAffinity", vec![merge(term("db", "zone"), extra)]),
        )
    };
    let zone_a = expect(&[
        ("n1", fits()),
        ("n2", fits()),
        ("n3", unresolvable(AFFINITY_REASON)),
        ("n4", unresolvable(AFFINITY_REASON)),
    ]);
    let both = expect(&[
        ("n1", fits()),
        ("n2", fits()),
        ("n3", fits()),
        ("n4", unresolvable(AFFINITY_REASON)),
    ]);
    let none = expect(&[
        ("n1", unresolvable(AFFINITY_REASON)),
        ("n2", unresolvable(AFFINITY_REASON)),
        ("n3", unresolvable(AFFINITY_REASON)),
        ("n4", unresolvable(AFFINITY_REASON)),
    ]);
    // Neither namespaces nor a selector: only the pod's own namespace (default).
    assert_eq!(
        verdicts(&c, Filter::InterPodAffinity, &with_term(json!({}))),
        none
    );
    // A selector picks namespaces by label.
    assert_eq!(
        verdicts(
            &c,
            Filter::InterPodAffinity,
            &with_term(json!({"namespaceSelector": {"matchLabels": {"team": "a"}}}))
        ),
        zone_a
    );
    // An empty selector selects every namespace.
    assert_eq!(
        verdicts(
            &c,
            Filter::InterPodAffinity,
            &with_term(json!({"namespaceSelector": {}}))
        ),
        both
    );
    // Named namespaces and a selector add up.
    assert_eq!(
        verdicts(
            &c,
            Filter::InterPodAffinity,
            &with_term(json!({"namespaces": ["team-b"],
                "namespaceSelector": {"matchLabels": {"team": "a"}}}))
        ),
        both
    );
}

#[test]
fn existing_anti_affinity_with_namespace_selector() {
    let guard = spec(
        in_ns(app_pod("guard", "db"), "team-a"),
        required(
            "podAntiAffinity",
            vec![merge(
                term("web", "zone"),
                json!({"namespaceSelector": {"matchLabels": {"team": "b"}}}),
            )],
        ),
    );
    let c = with_namespaces(
        cache(&affinity_nodes(), &[on(guard, "n1")]),
        &[
            ("default", json!({})),
            ("team-a", json!({"team": "a"})),
            ("team-b", json!({"team": "b"})),
        ],
    );
    let from_b = in_ns(app_pod("incoming", "web"), "team-b");
    assert_eq!(
        verdict(&c, Filter::InterPodAffinity, &from_b, "n2"),
        unschedulable(&[EXISTING_ANTI_REASON])
    );
    assert_eq!(verdict(&c, Filter::InterPodAffinity, &from_b, "n3"), fits());
    // Same labels in a namespace the selector does not pick.
    let from_a = in_ns(app_pod("incoming", "web"), "team-a");
    assert_eq!(verdict(&c, Filter::InterPodAffinity, &from_a, "n2"), fits());
}

fn three_affinity_nodes() -> Vec<Value> {
    affinity_nodes().into_iter().take(3).collect()
}

#[test]
fn affinity_preferred_terms_score_by_weight() {
    // zone a +5 (db in zone a), hostname n2 -3 (web on n2): raw 5, 2, 0.
    let c = cache(
        &three_affinity_nodes(),
        &[
            on(app_pod("db", "db"), "n1"),
            on(app_pod("web", "web"), "n2"),
        ],
    );
    let p = merge(
        spec(
            app_pod("incoming", "api"),
            preferred("podAffinity", vec![(5, term("db", "zone"))]),
        ),
        json!({"spec": preferred("podAntiAffinity", vec![(3, term("web", HOSTNAME))])}),
    );
    assert_eq!(
        scores(&c, "InterPodAffinity", &p, &["n1", "n2", "n3"]),
        vec![100, 40, 0]
    );
}

#[test]
fn affinity_existing_pods_terms_score_the_incoming_pod() {
    // An existing pod's required affinity to the incoming pod attracts it with
    // hardPodAffinityWeight 1 (zone b); another's preferred anti-affinity of weight
    // 10 repels it (hostname n1). Raw -10, 0, 1; normalized by (s-min)/(max-min).
    let c = cache(
        &three_affinity_nodes(),
        &[
            on(
                spec(
                    app_pod("follower", "db"),
                    required("podAffinity", vec![term("web", "zone")]),
                ),
                "n3",
            ),
            on(
                spec(
                    app_pod("loner", "db"),
                    preferred("podAntiAffinity", vec![(10, term("web", HOSTNAME))]),
                ),
                "n1",
            ),
        ],
    );
    assert_eq!(
        scores(
            &c,
            "InterPodAffinity",
            &app_pod("incoming", "web"),
            &["n1", "n2", "n3"]
        ),
        vec![0, 90, 100]
    );
}

#[test]
fn affinity_no_terms_score_zero() {
    let c = cache(&three_affinity_nodes(), &[on(app_pod("db", "db"), "n1")]);
    assert_eq!(
        scores(
            &c,
            "InterPodAffinity",
            &app_pod("incoming", "web"),
            &["n1", "n2", "n3"]
        ),
        vec![0, 0, 0]
    );
}

#[test]
fn affinity_score_normalization_is_float() {
    let c = cache(
        &three_affinity_nodes(),
        &[
            on(app_pod("x1", "x"), "n1"),
            on(app_pod("x2", "x"), "n2"),
            on(app_pod("y2", "y"), "n2"),
        ],
    );
    let p = spec(
        app_pod("incoming", "api"),
        preferred(
            "podAffinity",
            vec![(57, term("x", HOSTNAME)), (43, term("y", HOSTNAME))],
        ),
    );
    assert_eq!(
        scores(&c, "InterPodAffinity", &p, &["n1", "n2", "n3"]),
        vec![56, 100, 0]
    );
}

// ---------------------------------------------------------------------------
// NodeResourcesFit filter (noderesources/fit.go).

fn busy_node(name: &str, alloc: Value, used: Value) -> (Value, Value) {
    (
        sized_node(name, alloc),
        on(req_pod(&format!("{name}-used"), used), name),
    )
}

#[test]
fn fit_counts_init_and_sidecar_containers() {
    let (n1, u1) = busy_node(
        "n1",
        json!({"cpu": "2", "pods": "110"}),
        json!({"cpu": "300m"}),
    );
    let (n2, u2) = busy_node(
        "n2",
        json!({"cpu": "2", "pods": "110"}),
        json!({"cpu": "400m"}),
    );
    let c = cache(&[n1, n2], &[u1, u2]);
    // Containers 1 + sidecar 0.5 = 1.5; while the init container runs, 1.2 + the
    // sidecar started before it = 1.7: the pod needs 1.7 cpu.
    let p = spec(
        pod("incoming", json!({})),
        json!({
            "initContainers": [
                {"name": "side", "image": "x", "restartPolicy": "Always",
                    "resources": {"requests": {"cpu": "500m"}}},
                {"name": "init", "image": "x", "resources": {"requests": {"cpu": "1200m"}}}
            ],
            "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "1"}}}]
        }),
    );
    assert_eq!(
        verdicts(&c, Filter::NodeResourcesFit, &p),
        expect(&[("n1", fits()), ("n2", unschedulable(&["Insufficient cpu"]))])
    );
}

#[test]
fn fit_counts_overhead() {
    let (n1, u1) = busy_node(
        "n1",
        json!({"cpu": "2", "memory": "1Gi", "pods": "110"}),
        json!({"cpu": "800m", "memory": "512Mi"}),
    );
    let c = cache(&[n1], &[u1]);
    let base = req_pod("incoming", json!({"cpu": "1", "memory": "512Mi"}));
    assert_eq!(verdict(&c, Filter::NodeResourcesFit, &base, "n1"), fits());
    let with_overhead = spec(base, json!({"overhead": {"cpu": "250m", "memory": "1Mi"}}));
    assert_eq!(
        verdict(&c, Filter::NodeResourcesFit, &with_overhead, "n1"),
        unschedulable(&["Insufficient cpu", "Insufficient memory"])
    );
}

#[test]
fn fit_extended_resources() {
    let (n1, u1) = busy_node(
        "n1",
        json!({"cpu": "4", "example.com/foo": "2", "pods": "110"}),
        json!({"example.com/foo": "1"}),
    );
    let n2 = sized_node("n2", json!({"cpu": "4", "pods": "110"}));
    let c = cache(&[n1, n2], &[u1]);
    let one = req_pod("one", json!({"example.com/foo": "1"}));
    assert_eq!(
        verdicts(&c, Filter::NodeResourcesFit, &one),
        expect(&[
            ("n1", fits()),
            ("n2", unschedulable(&["Insufficient example.com/foo"])),
        ])
    );
    let two = req_pod("two", json!({"example.com/foo": "2"}));
    assert_eq!(
        verdict(&c, Filter::NodeResourcesFit, &two, "n1"),
        unschedulable(&["Insufficient example.com/foo"])
    );
}

#[test]
fn fit_too_many_pods_and_reason_order() {
    let n = sized_node(
        "n1",
        json!({"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi", "pods": "2"}),
    );
    let c = cache(
        &[n],
        &[on(pod("a", json!({})), "n1"), on(pod("b", json!({})), "n1")],
    );
    // A pod without requests only hits the pod count.
    assert_eq!(
        verdict(
            &c,
            Filter::NodeResourcesFit,
            &pod("incoming", json!({})),
            "n1"
        ),
        unschedulable(&["Too many pods"])
    );
    let big = req_pod(
        "big",
        json!({"cpu": "2", "memory": "2Gi", "ephemeral-storage": "2Gi", "example.com/foo": "1"}),
    );
    assert_eq!(
        verdict(&c, Filter::NodeResourcesFit, &big, "n1"),
        unschedulable(&[
            "Too many pods",
            "Insufficient cpu",
            "Insufficient memory",
            "Insufficient ephemeral-storage",
            "Insufficient example.com/foo",
        ])
    );
}

#[test]
fn fit_pod_without_requests_fits_a_full_node() {
    let (n1, u1) = busy_node(
        "n1",
        json!({"cpu": "1", "memory": "1Gi", "pods": "110"}),
        json!({"cpu": "1", "memory": "1Gi"}),
    );
    let c = cache(&[n1], &[u1]);
    assert_eq!(
        verdict(
            &c,
            Filter::NodeResourcesFit,
            &pod("incoming", json!({})),
            "n1"
        ),
        fits()
    );
}

// ---------------------------------------------------------------------------
// NodePorts (nodeports/node_ports.go, HostPortInfo.CheckConflict).

fn port_pod(name: &str, ports: Value) -> Value {
    spec(
        pod(name, json!({})),
        json!({"containers": [{"name": "c", "image": "x", "ports": ports}]}),
    )
}

fn ports_verdict(existing: Value, incoming: Value) -> Verdict {
    let c = cache(
        &[node("n1", json!({}))],
        &[on(port_pod("existing", existing), "n1")],
    );
    verdict(&c, Filter::NodePorts, &port_pod("incoming", incoming), "n1")
}

#[test]
fn ports_wildcard_address_conflicts_with_any() {
    let all = json!([{"containerPort": 80, "hostPort": 8080}]);
    let conflict = unschedulable(&[PORTS_REASON]);
    assert_eq!(
        ports_verdict(
            all.clone(),
            json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"}])
        ),
        conflict
    );
    assert_eq!(
        ports_verdict(
            all.clone(),
            json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "0.0.0.0"}])
        ),
        conflict
    );
    assert_eq!(
        ports_verdict(all, json!([{"containerPort": 80, "hostPort": 8081}])),
        fits()
    );
}

#[test]
fn ports_specific_addresses() {
    let local = json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"}]);
    let conflict = unschedulable(&[PORTS_REASON]);
    assert_eq!(
        ports_verdict(
            local.clone(),
            json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.2"}])
        ),
        fits()
    );
    assert_eq!(
        ports_verdict(
            local.clone(),
            json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"}])
        ),
        conflict
    );
    // No hostIP means every address.
    assert_eq!(
        ports_verdict(local, json!([{"containerPort": 80, "hostPort": 8080}])),
        conflict
    );
}

#[test]
fn ports_protocols() {
    let existing = json!([
        {"containerPort": 53, "hostPort": 53, "protocol": "UDP"},
        {"containerPort": 9000, "hostPort": 9000, "protocol": "SCTP"}
    ]);
    let conflict = unschedulable(&[PORTS_REASON]);
    // TCP is the default protocol.
    assert_eq!(
        ports_verdict(
            existing.clone(),
            json!([{"containerPort": 53, "hostPort": 53}])
        ),
        fits()
    );
    assert_eq!(
        ports_verdict(
            existing.clone(),
            json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP"}])
        ),
        conflict
    );
    assert_eq!(
        ports_verdict(
            existing.clone(),
            json!([{"containerPort": 9000, "hostPort": 9000, "protocol": "SCTP"}])
        ),
        conflict
    );
    assert_eq!(
        ports_verdict(
            existing,
            json!([{"containerPort": 9000, "hostPort": 9000, "protocol": "TCP"}])
        ),
        fits()
    );
}

#[test]
fn ports_of_sidecars_count_but_not_of_plain_init_containers() {
    // Sidecar (restartable init container) host ports count since the 1.33.x
    // cherry-pick of kubernetes#132040; plain init containers' never do.
    let init = |restart: Option<&str>| {
        let mut c = json!({"name": "i", "image": "x",
            "ports": [{"containerPort": 9100, "hostPort": 9100}]});
        if let Some(r) = restart {
            c = merge(c, json!({ "restartPolicy": r }));
        }
        spec(pod("existing", json!({})), json!({ "initContainers": [c] }))
    };
    let incoming = port_pod(
        "incoming",
        json!([{"containerPort": 9100, "hostPort": 9100}]),
    );
    let c = cache(&[node("n1", json!({}))], &[on(init(Some("Always")), "n1")]);
    assert_eq!(
        verdict(&c, Filter::NodePorts, &incoming, "n1"),
        unschedulable(&[PORTS_REASON])
    );
    let c = cache(&[node("n1", json!({}))], &[on(init(None), "n1")]);
    assert_eq!(verdict(&c, Filter::NodePorts, &incoming, "n1"), fits());
}

// ---------------------------------------------------------------------------
// TaintToleration and NodeUnschedulable.

fn tainted(name: &str, taints: Value) -> Value {
    merge(node(name, json!({})), json!({"spec": {"taints": taints}}))
}

fn tolerating(tolerations: Value) -> Value {
    spec(
        pod("incoming", json!({})),
        json!({ "tolerations": tolerations }),
    )
}

#[test]
fn taints_no_execute_and_no_schedule_filter_prefer_no_schedule_does_not() {
    let c = cache(
        &[
            tainted(
                "exec",
                json!([{"key": "a", "value": "x", "effect": "NoExecute"}]),
            ),
            tainted("sched", json!([{"key": "gpu", "effect": "NoSchedule"}])),
            tainted(
                "prefer",
                json!([{"key": "a", "value": "x", "effect": "PreferNoSchedule"}]),
            ),
            tainted(
                "two",
                json!([
                    {"key": "ok", "value": "1", "effect": "NoSchedule"},
                    {"key": "b", "value": "y", "effect": "NoExecute"}
                ]),
            ),
        ],
        &[],
    );
    let p = tolerating(json!([{"key": "ok", "operator": "Equal", "value": "1"}]));
    assert_eq!(
        verdicts(&c, Filter::TaintToleration, &p),
        expect(&[
            ("exec", unresolvable("node(s) had untolerated taint {a: x}")),
            ("prefer", fits()),
            (
                "sched",
                unresolvable("node(s) had untolerated taint {gpu: }")
            ),
            ("two", unresolvable("node(s) had untolerated taint {b: y}")),
        ])
    );
    // A NoSchedule toleration does not cover a NoExecute taint.
    let p = tolerating(json!([{"key": "a", "operator": "Exists", "effect": "NoSchedule"}]));
    assert_eq!(
        verdict(&c, Filter::TaintToleration, &p, "exec"),
        unresolvable("node(s) had untolerated taint {a: x}")
    );
    let p = tolerating(json!([{"key": "a", "operator": "Exists", "effect": "NoExecute"}]));
    assert_eq!(verdict(&c, Filter::TaintToleration, &p, "exec"), fits());
    // An empty key with Exists tolerates everything.
    let p = tolerating(json!([{"operator": "Exists"}]));
    assert!(verdicts(&c, Filter::TaintToleration, &p)
        .values()
        .all(|v| v.is_ok()));
}

#[test]
fn taints_prefer_no_schedule_score() {
    let pns = |key: &str| json!({"key": key, "value": "v", "effect": "PreferNoSchedule"});
    let c = cache(
        &[
            tainted("n0", json!([])),
            tainted("n1", json!([pns("a")])),
            tainted("n2", json!([pns("a"), pns("c")])),
            tainted("n3", json!([pns("a"), pns("b")])),
        ],
        &[],
    );
    // Only tolerations without an effect or with PreferNoSchedule count: b is
    // tolerated, c's NoSchedule toleration does not apply. Intolerable counts 0, 1,
    // 2, 1, reversed and normalized.
    let p = tolerating(json!([
        {"key": "b", "operator": "Exists"},
        {"key": "c", "operator": "Exists", "effect": "NoSchedule"}
    ]));
    assert_eq!(
        scores(&c, "TaintToleration", &p, &["n0", "n1", "n2", "n3"]),
        vec![100, 50, 0, 50]
    );
    // No intolerable taints anywhere: every node gets the maximum.
    assert_eq!(scores(&c, "TaintToleration", &p, &["n0"]), vec![100]);
}

#[test]
fn unschedulable_node_and_its_toleration() {
    let c = cache(
        &[
            merge(
                node("cordoned", json!({})),
                json!({"spec": {"unschedulable": true}}),
            ),
            node("open", json!({})),
        ],
        &[],
    );
    assert_eq!(
        verdicts(&c, Filter::NodeUnschedulable, &pod("incoming", json!({}))),
        expect(&[
            ("cordoned", unresolvable("node(s) were unschedulable")),
            ("open", fits()),
        ])
    );
    for tolerations in [
        json!([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
            "effect": "NoSchedule"}]),
        json!([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}]),
        json!([{"operator": "Exists"}]),
    ] {
        assert_eq!(
            verdict(
                &c,
                Filter::NodeUnschedulable,
                &tolerating(tolerations.clone()),
                "cordoned"
            ),
            fits(),
            "{tolerations}"
        );
    }
    let wrong_effect = tolerating(json!([{"key": "node.kubernetes.io/unschedulable",
        "operator": "Exists", "effect": "NoExecute"}]));
    assert_eq!(
        verdict(&c, Filter::NodeUnschedulable, &wrong_effect, "cordoned"),
        unresolvable("node(s) were unschedulable")
    );
}

// ---------------------------------------------------------------------------
// NodeResourcesFit (least allocated) and NodeResourcesBalancedAllocation scores.

/// Upstream's "nothing scheduled, resources requested, differently sized nodes": a
/// 4-cpu and a 6-cpu node with 10000 bytes of memory, and a pod asking 3 cpu, 5000.
fn differently_sized_nodes() -> (Cache, Value) {
    let c = cache(
        &[
            sized_node("n1", json!({"cpu": "4", "memory": "10000", "pods": "110"})),
            sized_node("n2", json!({"cpu": "6", "memory": "10000", "pods": "110"})),
        ],
        &[],
    );
    (
        c,
        req_pod("incoming", json!({"cpu": "3", "memory": "5000"})),
    )
}

/// A node "busy" (4 cpu, 8Gi) running a pod that requests 1 cpu and 2Gi, and an idle
/// node of the same size named `idle`.
fn busy_and_idle(idle: &str) -> Cache {
    let (busy, used) = busy_node(
        "busy",
        json!({"cpu": "4", "memory": "8Gi", "pods": "110"}),
        json!({"cpu": "1", "memory": "2Gi"}),
    );
    cache(
        &[
            busy,
            sized_node(idle, json!({"cpu": "4", "memory": "8Gi", "pods": "110"})),
        ],
        &[used],
    )
}

#[test]
fn least_allocated_upstream_differently_sized_nodes() {
    // Upstream least_allocated_test "nothing scheduled, resources requested,
    // differently sized nodes": cpu (4000-3000)*100/4000 = 25, memory 50 -> 37;
    // cpu 50, memory 50 -> 50.
    let (c, p) = differently_sized_nodes();
    assert_eq!(
        scores(&c, "NodeResourcesFit", &p, &["n1", "n2"]),
        vec![37, 50]
    );
}

#[test]
fn least_allocated_counts_existing_pods_and_scoring_defaults() {
    let c = busy_and_idle("empty");
    // busy: cpu (4-2)/4 -> 50, memory (8-3)/8 -> 62; empty: 75 and 87.
    let p = req_pod("incoming", json!({"cpu": "1", "memory": "1Gi"}));
    assert_eq!(
        scores(&c, "NodeResourcesFit", &p, &["busy", "empty"]),
        vec![56, 81]
    );
    // A pod without requests counts as 100m and 200Mi: (4000-100)*100/4000 = 97,
    // (8192-200)*100/8192 = 97.
    assert_eq!(
        scores(&c, "NodeResourcesFit", &pod("be", json!({})), &["empty"]),
        vec![97]
    );
    // Best-effort pods already there count with the same defaults: 3 of them and the
    // incoming one are 400m and 800Mi, 90 and 90.
    let c = cache(
        &[sized_node(
            "n",
            json!({"cpu": "4", "memory": "8Gi", "pods": "110"}),
        )],
        &[
            on(pod("x1", json!({})), "n"),
            on(pod("x2", json!({})), "n"),
            on(pod("x3", json!({})), "n"),
        ],
    );
    assert_eq!(
        scores(&c, "NodeResourcesFit", &pod("be", json!({})), &["n"]),
        vec![90]
    );
}

#[test]
fn least_allocated_request_over_capacity_scores_zero_for_that_resource() {
    let c = cache(
        &[sized_node(
            "n",
            json!({"cpu": "1", "memory": "8Gi", "pods": "110"}),
        )],
        &[],
    );
    // cpu 0 (2 > 1), memory (8-4)/8 = 50: 25.
    let p = req_pod("incoming", json!({"cpu": "2", "memory": "4Gi"}));
    assert_eq!(scores(&c, "NodeResourcesFit", &p, &["n"]), vec![25]);
}

#[test]
fn least_allocated_skips_resources_without_allocatable() {
    let c = cache(&[sized_node("n", json!({"cpu": "4", "pods": "110"}))], &[]);
    // Only cpu is scored: (4-1)/4 -> 75.
    let p = req_pod("incoming", json!({"cpu": "1", "memory": "1Gi"}));
    assert_eq!(scores(&c, "NodeResourcesFit", &p, &["n"]), vec![75]);
}

#[test]
fn balanced_allocation_upstream_differently_sized_nodes() {
    // Upstream balanced_allocation_test "nothing scheduled, resources requested,
    // differently sized nodes": fractions 0.75/0.5 -> (1 - 0.125) * 100 = 87;
    // 0.5/0.5 -> 100.
    let (c, p) = differently_sized_nodes();
    assert_eq!(
        scores(&c, "NodeResourcesBalancedAllocation", &p, &["n1", "n2"]),
        vec![87, 100]
    );
}

#[test]
fn balanced_allocation_counts_existing_requests_and_caps_fractions() {
    let c = busy_and_idle("small");
    // busy: cpu 2/4 = 0.5, memory 3/8 = 0.375 -> (1 - 0.0625) * 100 = 93.
    let p = req_pod("incoming", json!({"cpu": "1", "memory": "1Gi"}));
    assert_eq!(
        scores(&c, "NodeResourcesBalancedAllocation", &p, &["busy"]),
        vec![93]
    );
    // small: cpu 6/4 capped at 1, memory 4/8 = 0.5 -> 75.
    let p = req_pod("incoming", json!({"cpu": "6", "memory": "4Gi"}));
    assert_eq!(
        scores(&c, "NodeResourcesBalancedAllocation", &p, &["small"]),
        vec![75]
    );
}

#[test]
fn balanced_allocation_skips_best_effort_pods() {
    let (busy, used) = busy_node(
        "busy",
        json!({"cpu": "4", "memory": "8Gi", "pods": "110"}),
        json!({"cpu": "3"}),
    );
    let c = cache(
        &[
            busy,
            sized_node("empty", json!({"cpu": "4", "memory": "8Gi", "pods": "110"})),
        ],
        &[used],
    );
    // The plugin returns Skip at PreScore: it gives no node an advantage.
    let s = scores(
        &c,
        "NodeResourcesBalancedAllocation",
        &pod("be", json!({})),
        &["busy", "empty"],
    );
    assert_eq!(s[0], s[1], "{s:?}");
}

#[test]
fn balanced_allocation_skips_resources_without_allocatable() {
    let c = cache(&[sized_node("n", json!({"cpu": "4", "pods": "110"}))], &[]);
    // Only the cpu fraction remains: no deviation, 100.
    let p = req_pod("incoming", json!({"cpu": "1", "memory": "1Gi"}));
    assert_eq!(
        scores(&c, "NodeResourcesBalancedAllocation", &p, &["n"]),
        vec![100]
    );
}
