//! The order in which a workload controller deletes pods when scaling down (upstream's
//! ActivePodsWithRanks). Pods earlier in the order are deleted first:
//!
//! 1. unassigned (no node) before assigned;
//! 2. phase Pending before Unknown before Running;
//! 3. not ready before ready;
//! 4. lower `controller.kubernetes.io/pod-deletion-cost` before higher;
//! 5. higher rank (more related active pods on the same node) before lower;
//! 6. when both are ready: ready for a shorter time before longer (logarithmic
//!    buckets; same bucket: by UID);
//! 7. more container restarts before fewer;
//! 8. newer before older (logarithmic buckets; same bucket: by UID).
//!
//! Unset timestamps count as most recent.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::util::{is_pod_active, is_pod_ready, max_container_restarts, pod_ready_time};

/// The annotation that biases deletion order.
pub const POD_DELETION_COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";

/// A pod with its rank, for sorting.
#[derive(Clone, Debug)]
pub struct RankedPod {
    /// The pod.
    pub pod: Arc<Pod>,
    /// Related active pods on the same node.
    pub rank: usize,
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

/// The deletion cost annotation's value; 0 when absent or invalid.
pub fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST_ANNOTATION))
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0)
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

/// `t1` after `t2`, where an unset time counts as after any set one.
fn after_or_zero(t1: Option<jiff::Timestamp>, t2: Option<jiff::Timestamp>) -> bool {
    match (t1, t2) {
        (Some(a), Some(b)) => a > b,
        (a, _) => a.is_none(),
    }
}

fn log_rank(t: jiff::Timestamp, now: jiff::Timestamp) -> i64 {
    let d = now.as_nanosecond() - t.as_nanosecond();
    if d > 0 {
        (d as f64).log2().floor() as i64
    } else {
        -1
    }
}

/// Compares two timestamps for rules 6 and 8; `Some(true)` if `a` goes first, `None`
/// if they are equal.
fn compare_times(
    a: Option<jiff::Timestamp>,
    b: Option<jiff::Timestamp>,
    pa: &Pod,
    pb: &Pod,
    now: Option<jiff::Timestamp>,
) -> Option<bool> {
    if a == b {
        return None;
    }
    match (a, b, now) {
        (Some(ta), Some(tb), Some(now)) => {
            let diff = log_rank(ta, now) - log_rank(tb, now);
            if diff == 0 {
                Some(uid(pa) < uid(pb))
            } else {
                Some(diff < 0)
            }
        }
        _ => Some(after_or_zero(a, b)),
    }
}

/// Whether `a` should be deleted before `b`. `now` anchors the logarithmic time
/// comparison; without it times are compared exactly.
pub fn delete_before(a: &RankedPod, b: &RankedPod, now: Option<jiff::Timestamp>) -> bool {
    let (pa, pb) = (a.pod.as_ref(), b.pod.as_ref());
    // 1. Unassigned < assigned.
    let (na, nb) = (node_name(pa), node_name(pb));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return na.is_empty();
    }
    // 2. Pending < Unknown < Running.
    let (oa, ob) = (phase_ordinal(pa), phase_ordinal(pb));
    if oa != ob {
        return oa < ob;
    }
    // 3. Not ready < ready.
    let (ra, rb) = (is_pod_ready(pa), is_pod_ready(pb));
    if ra != rb {
        return !ra;
    }
    // 4. Lower deletion cost first.
    let (ca, cb) = (deletion_cost(pa), deletion_cost(pb));
    if ca != cb {
        return ca < cb;
    }
    // 5. Doubled up (higher rank) first.
    if a.rank != b.rank {
        return a.rank > b.rank;
    }
    // 6. Ready for a shorter time first.
    if ra && rb {
        if let Some(first) = compare_times(pod_ready_time(pa), pod_ready_time(pb), pa, pb, now) {
            return first;
        }
    }
    // 7. More restarts first.
    let (xa, xb) = (max_container_restarts(pa), max_container_restarts(pb));
    if xa != xb {
        return xa > xb;
    }
    // 8. Newer first.
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    if let Some(first) = compare_times(created(pa), created(pb), pa, pb, now) {
        return first;
    }
    false
}

/// Sorts pods into deletion order. A merge sort driven by [`delete_before`] alone, so
/// that it cannot fail even where the rules are not perfectly transitive.
pub fn sort_for_deletion(pods: &mut Vec<RankedPod>, now: Option<jiff::Timestamp>) {
    let items = std::mem::take(pods);
    *pods = merge_sort(items, &|a, b| delete_before(a, b, now));
}

fn merge_sort<T>(mut items: Vec<T>, less: &dyn Fn(&T, &T) -> bool) -> Vec<T> {
    if items.len() <= 1 {
        return items;
    }
    let right = items.split_off(items.len() / 2);
    let left = merge_sort(items, less);
    let right = merge_sort(right, less);
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut l = left.into_iter().peekable();
    let mut r = right.into_iter().peekable();
    loop {
        let take_right = match (l.peek(), r.peek()) {
            (Some(a), Some(b)) => less(b, a),
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (None, None) => break,
        };
        let next = if take_right { r.next() } else { l.next() };
        if let Some(x) = next {
            out.push(x);
        }
    }
    out
}

/// Ranks `pods` by how many active pods of `related` share their node.
pub fn rank_by_colocation(pods: &[Arc<Pod>], related: &[Arc<Pod>]) -> Vec<RankedPod> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in related {
        if is_pod_active(p) {
            *on_node.entry(node_name(p)).or_default() += 1;
        }
    }
    pods.iter()
        .map(|p| RankedPod {
            pod: p.clone(),
            rank: on_node.get(node_name(p)).copied().unwrap_or(0),
        })
        .collect()
}

/// The `count` pods to delete first (all of them, unsorted, when `count` covers all).
pub fn pods_to_delete(
    pods: &[Arc<Pod>],
    related: &[Arc<Pod>],
    count: usize,
    now: jiff::Timestamp,
) -> Vec<Arc<Pod>> {
    if count >= pods.len() {
        return pods.to_vec();
    }
    let mut ranked = rank_by_colocation(pods, related);
    sort_for_deletion(&mut ranked, Some(now));
    ranked.into_iter().take(count).map(|r| r.pod).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    struct P {
        name: &'static str,
        node: &'static str,
        phase: &'static str,
        ready_since: Option<i64>,
        restarts: i32,
        created: Option<i64>,
        cost: Option<&'static str>,
    }

    impl Default for P {
        fn default() -> Self {
            P {
                name: "p",
                node: "n1",
                phase: "Running",
                ready_since: None,
                restarts: 0,
                created: Some(0),
                cost: None,
            }
        }
    }

    fn pod(p: P) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(p.name.into()),
                uid: Some(format!("uid-{}", p.name)),
                creation_timestamp: p.created.map(|s| Time(ts(s))),
                annotations: p
                    .cost
                    .map(|c| [(POD_DELETION_COST_ANNOTATION.to_string(), c.to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: (!p.node.is_empty()).then(|| p.node.to_string()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(p.phase.into()),
                conditions: p.ready_since.map(|s| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(ts(s))),
                        ..Default::default()
                    }]
                }),
                container_statuses: Some(vec![ContainerStatus {
                    restart_count: p.restarts,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    fn order(pods: Vec<Arc<Pod>>, now: Option<jiff::Timestamp>) -> Vec<String> {
        let mut ranked: Vec<RankedPod> = pods
            .into_iter()
            .map(|pod| RankedPod { pod, rank: 0 })
            .collect();
        sort_for_deletion(&mut ranked, now);
        ranked
            .iter()
            .map(|r| r.pod.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn upstream_rule_order() {
        let pods = vec![
            pod(P {
                name: "ready-old",
                ready_since: Some(0),
                created: Some(0),
                ..Default::default()
            }),
            pod(P {
                name: "running-unready",
                ..Default::default()
            }),
            pod(P {
                name: "unknown",
                phase: "Unknown",
                ..Default::default()
            }),
            pod(P {
                name: "pending",
                phase: "Pending",
                ..Default::default()
            }),
            pod(P {
                name: "unassigned",
                node: "",
                phase: "Running",
                ready_since: Some(0),
                ..Default::default()
            }),
        ];
        assert_eq!(
            order(pods, None),
            [
                "unassigned",
                "pending",
                "unknown",
                "running-unready",
                "ready-old"
            ]
        );
    }

    #[test]
    fn deletion_cost_then_rank() {
        let cheap = pod(P {
            name: "cheap",
            ready_since: Some(0),
            cost: Some("-5"),
            ..Default::default()
        });
        let pricey = pod(P {
            name: "pricey",
            ready_since: Some(0),
            cost: Some("100"),
            ..Default::default()
        });
        let invalid = pod(P {
            name: "invalid",
            ready_since: Some(0),
            cost: Some("x"),
            ..Default::default()
        });
        assert_eq!(deletion_cost(&invalid), 0);
        assert_eq!(
            order(vec![pricey.clone(), invalid.clone(), cheap.clone()], None),
            ["cheap", "invalid", "pricey"]
        );

        // Same cost: the pod sharing its node with more related pods goes first.
        let a = pod(P {
            name: "alone",
            node: "n1",
            ready_since: Some(0),
            ..Default::default()
        });
        let b = pod(P {
            name: "crowded",
            node: "n2",
            ready_since: Some(0),
            ..Default::default()
        });
        let related = vec![
            a.clone(),
            b.clone(),
            pod(P {
                name: "x",
                node: "n2",
                ..Default::default()
            }),
        ];
        let mut ranked = rank_by_colocation(&[a, b], &related);
        assert_eq!(ranked[0].rank, 1);
        assert_eq!(ranked[1].rank, 2);
        sort_for_deletion(&mut ranked, None);
        assert_eq!(ranked[0].pod.metadata.name.as_deref(), Some("crowded"));
    }

    #[test]
    fn ready_time_restarts_then_age() {
        // Exact comparison (no reference time).
        let pods = vec![
            pod(P {
                name: "ready-long",
                ready_since: Some(0),
                ..Default::default()
            }),
            pod(P {
                name: "ready-recent",
                ready_since: Some(100),
                ..Default::default()
            }),
        ];
        assert_eq!(order(pods, None), ["ready-recent", "ready-long"]);

        let pods = vec![
            pod(P {
                name: "few",
                restarts: 1,
                ..Default::default()
            }),
            pod(P {
                name: "many",
                restarts: 7,
                ..Default::default()
            }),
        ];
        assert_eq!(order(pods, None), ["many", "few"]);

        let pods = vec![
            pod(P {
                name: "old",
                created: Some(0),
                ..Default::default()
            }),
            pod(P {
                name: "no-time",
                created: None,
                ..Default::default()
            }),
            pod(P {
                name: "new",
                created: Some(50),
                ..Default::default()
            }),
        ];
        assert_eq!(order(pods, None), ["no-time", "new", "old"]);
    }

    #[test]
    fn logarithmic_buckets_fall_back_to_uid() {
        let now = ts(10_000);
        // 100 s and 110 s old share the 2^36 ns bucket: ordered by UID ("uid-a" < "uid-b").
        let a = pod(P {
            name: "a",
            created: Some(10_000 - 100),
            ..Default::default()
        });
        let b = pod(P {
            name: "b",
            created: Some(10_000 - 110),
            ..Default::default()
        });
        assert_eq!(
            log_rank(ts(10_000 - 100), now),
            log_rank(ts(10_000 - 110), now)
        );
        assert_eq!(order(vec![b.clone(), a.clone()], Some(now)), ["a", "b"]);
        // Without a reference time the newer goes first.
        assert_eq!(order(vec![b.clone(), a.clone()], None), ["a", "b"]);
        let c = pod(P {
            name: "c",
            created: Some(10_000 - 1000),
            ..Default::default()
        });
        assert_eq!(order(vec![c, b, a], Some(now)), ["a", "b", "c"]);
    }

    #[test]
    fn pods_to_delete_picks_first_in_order() {
        let pods = vec![
            pod(P {
                name: "ready",
                ready_since: Some(0),
                ..Default::default()
            }),
            pod(P {
                name: "unready",
                ..Default::default()
            }),
            pod(P {
                name: "unscheduled",
                node: "",
                phase: "Pending",
                ..Default::default()
            }),
        ];
        let chosen = pods_to_delete(&pods, &[], 2, ts(1000));
        let names: Vec<_> = chosen
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["unscheduled", "unready"]);
        assert_eq!(pods_to_delete(&pods, &[], 3, ts(1000)).len(), 3);
    }
}
