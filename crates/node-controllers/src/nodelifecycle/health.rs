//! The health evaluation of one node, as upstream's tryUpdateNodeHealth: from what
//! was remembered about the node ([`NodeHealth`]), its current object and its Lease,
//! decide when it was last heard from (a new Ready heartbeat or a renewed Lease moves
//! the probe timestamp to now), and once that is longer ago than the grace period set
//! the Ready, MemoryPressure, DiskPressure and PIDPressure conditions to Unknown.
//!
//! Pure: the time comes in as an argument and the caller writes the status.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::clock::add;
use crate::taints::node_condition;

/// Reason of a condition set Unknown by the controller.
pub const NODE_STATUS_UNKNOWN_REASON: &str = "NodeStatusUnknown";
/// Message of a condition set Unknown by the controller.
pub const NODE_STATUS_UNKNOWN_MESSAGE: &str = "Kubelet stopped posting node status.";
/// Reason of a condition the kubelet never posted.
pub const NODE_STATUS_NEVER_UPDATED_REASON: &str = "NodeStatusNeverUpdated";
/// Message of a condition the kubelet never posted.
pub const NODE_STATUS_NEVER_UPDATED_MESSAGE: &str = "Kubelet never posted node status.";

/// The conditions the controller sets Unknown (NetworkUnavailable is left alone).
pub const CONDITIONS_SET_UNKNOWN: &[&str] =
    &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// What the controller remembers about a node between passes.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeHealth {
    /// The Ready condition last seen (as the controller left it).
    pub ready: Option<NodeCondition>,
    /// When the node was last heard from.
    pub probe_timestamp: Timestamp,
    /// When the Ready condition was last seen changing.
    pub ready_transition_timestamp: Timestamp,
    /// The Lease last seen: `Some(renewTime)` once one was observed.
    pub lease_renew_time: Option<Option<Timestamp>>,
}

/// The grace periods of node health.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GracePeriods {
    /// For a node that posted a Ready condition (`--node-monitor-grace-period`).
    pub monitor: Duration,
    /// For a node that never did (`--node-startup-grace-period`).
    pub startup: Duration,
}

/// The outcome of [`evaluate_node_health`].
#[derive(Clone, Debug, PartialEq)]
pub struct HealthEvaluation {
    /// The grace period that applied.
    pub grace_period: Duration,
    /// The Ready condition as the node had it (a made-up Unknown one, timed at
    /// creation, when it had none).
    pub observed_ready: NodeCondition,
    /// The Ready condition after the evaluation.
    pub current_ready: Option<NodeCondition>,
    /// Whether the node's status was changed and must be written.
    pub needs_status_update: bool,
    /// What to remember if the status is not written (or the write fails).
    pub health: NodeHealth,
    /// What to remember once the status write succeeded.
    pub health_after_update: NodeHealth,
}

fn lease_renew_time(lease: &Lease) -> Option<Timestamp> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0)
}

fn ready_of(node: &Node) -> Option<NodeCondition> {
    node_condition(node, "Ready").cloned()
}

/// Evaluates `node` (changing its conditions in place when it is overdue) at `now`,
/// given what was remembered (`prev`) and its Lease in `kube-node-lease`.
pub fn evaluate_node_health(
    prev: Option<&NodeHealth>,
    node: &mut Node,
    lease: Option<&Lease>,
    now: Timestamp,
    grace: GracePeriods,
) -> HealthEvaluation {
    let created = node
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let current_ready = ready_of(node);
    let mut health = prev.cloned();
    // Whether the remembered Ready condition is the node's own (as it ends up after
    // this evaluation), rather than an older one.
    let mut saved_is_node = false;

    let (observed_ready, grace_period) = match &current_ready {
        None => {
            match &mut health {
                Some(_) => saved_is_node = true,
                None => {
                    health = Some(NodeHealth {
                        ready: None,
                        probe_timestamp: created,
                        ready_transition_timestamp: created,
                        lease_renew_time: None,
                    });
                    saved_is_node = true;
                }
            }
            let fake = NodeCondition {
                type_: "Ready".into(),
                status: "Unknown".into(),
                last_heartbeat_time: Some(Time(created)),
                last_transition_time: Some(Time(created)),
                ..Default::default()
            };
            (fake, grace.startup)
        }
        Some(c) => (c.clone(), grace.monitor),
    };

    let saved_ready = match &health {
        Some(_) if saved_is_node => current_ready.clone(),
        Some(h) => h.ready.clone(),
        None => None,
    };
    let saved_lease = health.as_ref().and_then(|h| h.lease_renew_time);
    let fresh = |transition: Timestamp| NodeHealth {
        ready: None,
        probe_timestamp: now,
        ready_transition_timestamp: transition,
        lease_renew_time: None,
    };
    let mut h = match (health, &saved_ready, &current_ready) {
        (None, _, _) | (Some(_), None, Some(_)) | (Some(_), Some(_), None) => {
            saved_is_node = true;
            fresh(now)
        }
        (Some(old), Some(saved), Some(cur))
            if saved.last_heartbeat_time != cur.last_heartbeat_time =>
        {
            let transition = if saved.last_transition_time != cur.last_transition_time {
                now
            } else {
                old.ready_transition_timestamp
            };
            saved_is_node = true;
            fresh(transition)
        }
        (Some(old), _, _) => old,
    };

    // A renewed Lease counts as a heartbeat.
    let mut observed_lease = None;
    if let Some(lease) = lease {
        let renew = lease_renew_time(lease);
        observed_lease = Some(renew);
        let renewed = match saved_lease {
            None => true,
            Some(saved) => matches!((saved, renew), (Some(s), Some(r)) if s < r),
        };
        if renewed {
            h.lease_renew_time = Some(renew);
            h.probe_timestamp = now;
        }
    }

    let mut needs_status_update = false;
    let mut after = None;
    if now > add(h.probe_timestamp, grace_period) {
        let status = node.status.get_or_insert_with(NodeStatus::default);
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        for type_ in CONDITIONS_SET_UNKNOWN {
            match conditions.iter_mut().find(|c| c.type_ == *type_) {
                None => conditions.push(NodeCondition {
                    type_: (*type_).to_string(),
                    status: "Unknown".into(),
                    reason: Some(NODE_STATUS_NEVER_UPDATED_REASON.into()),
                    message: Some(NODE_STATUS_NEVER_UPDATED_MESSAGE.into()),
                    last_heartbeat_time: Some(Time(created)),
                    last_transition_time: Some(Time(now)),
                }),
                Some(c) => {
                    if c.status != "Unknown" {
                        c.status = "Unknown".into();
                        c.reason = Some(NODE_STATUS_UNKNOWN_REASON.into());
                        c.message = Some(NODE_STATUS_UNKNOWN_MESSAGE.into());
                        c.last_transition_time = Some(Time(now));
                    }
                }
            }
        }
        let new_ready = ready_of(node);
        if new_ready.as_ref() != Some(&observed_ready) {
            needs_status_update = true;
            after = Some(NodeHealth {
                ready: new_ready,
                probe_timestamp: h.probe_timestamp,
                ready_transition_timestamp: now,
                lease_renew_time: observed_lease,
            });
        }
    }

    let final_ready = ready_of(node);
    if saved_is_node {
        h.ready = final_ready.clone();
    }
    HealthEvaluation {
        grace_period,
        observed_ready,
        current_ready: final_ready,
        needs_status_update,
        health_after_update: after.unwrap_or_else(|| h.clone()),
        health: h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FakeClock};
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

    const GRACE: GracePeriods = GracePeriods {
        monitor: Duration::from_secs(40),
        startup: Duration::from_secs(60),
    };

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cond(type_: &str, status: &str, heartbeat: &str, transition: &str) -> NodeCondition {
        NodeCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some("KubeletReady".into()),
            message: Some("kubelet is posting ready status".into()),
            last_heartbeat_time: Some(Time(ts(heartbeat))),
            last_transition_time: Some(Time(ts(transition))),
        }
    }

    fn node(conditions: Vec<NodeCondition>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                creation_timestamp: Some(Time(ts("2025-01-01T00:00:00Z"))),
                ..Default::default()
            },
            status: Some(NodeStatus {
                conditions: (!conditions.is_empty()).then_some(conditions),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn lease(renew: &str) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(ts(renew))),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn statuses(n: &Node) -> Vec<(String, String, Option<String>)> {
        n.status
            .as_ref()
            .unwrap()
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect()
    }

    #[test]
    fn silent_node_goes_unknown_after_grace() {
        let clock = FakeClock::new(ts("2025-01-01T00:01:00Z"));
        let ready = cond(
            "Ready",
            "True",
            "2025-01-01T00:00:50Z",
            "2025-01-01T00:00:10Z",
        );
        let pressure = NodeCondition {
            reason: Some("KubeletHasSufficientMemory".into()),
            ..cond(
                "MemoryPressure",
                "False",
                "2025-01-01T00:00:50Z",
                "2025-01-01T00:00:10Z",
            )
        };
        let base = node(vec![ready.clone(), pressure]);

        // First sight: heard from now.
        let mut n = base.clone();
        let e = evaluate_node_health(None, &mut n, None, clock.now(), GRACE);
        assert!(!e.needs_status_update);
        assert_eq!(e.grace_period, GRACE.monitor);
        assert_eq!(e.health.probe_timestamp, clock.now());
        assert_eq!(e.observed_ready, ready);
        let mut health = e.health;

        // Within the grace period nothing happens.
        clock.advance(Duration::from_secs(40));
        let mut n = base.clone();
        let e = evaluate_node_health(Some(&health), &mut n, None, clock.now(), GRACE);
        assert!(!e.needs_status_update);
        assert_eq!(e.current_ready.as_ref().unwrap().status, "True");
        health = e.health;

        // Past it: Unknown, with upstream's reason and message.
        clock.advance(Duration::from_secs(1));
        let mut n = base.clone();
        let e = evaluate_node_health(Some(&health), &mut n, None, clock.now(), GRACE);
        assert!(e.needs_status_update);
        assert_eq!(e.observed_ready.status, "True");
        let cur = e.current_ready.clone().unwrap();
        assert_eq!(cur.status, "Unknown");
        assert_eq!(cur.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            cur.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        assert_eq!(cur.last_transition_time.unwrap().0, clock.now());
        assert_eq!(
            cur.last_heartbeat_time, ready.last_heartbeat_time,
            "heartbeat kept"
        );
        assert_eq!(
            statuses(&n),
            vec![
                (
                    "Ready".into(),
                    "Unknown".into(),
                    Some("NodeStatusUnknown".into())
                ),
                (
                    "MemoryPressure".into(),
                    "Unknown".into(),
                    Some("NodeStatusUnknown".into())
                ),
                (
                    "DiskPressure".into(),
                    "Unknown".into(),
                    Some("NodeStatusNeverUpdated".into())
                ),
                (
                    "PIDPressure".into(),
                    "Unknown".into(),
                    Some("NodeStatusNeverUpdated".into())
                ),
            ]
        );
        let never = &n.status.as_ref().unwrap().conditions.as_ref().unwrap()[2];
        assert_eq!(
            never.message.as_deref(),
            Some("Kubelet never posted node status.")
        );
        assert_eq!(
            never.last_heartbeat_time.as_ref().unwrap().0,
            ts("2025-01-01T00:00:00Z")
        );
        assert_eq!(
            e.health_after_update.ready_transition_timestamp,
            clock.now()
        );
        let health = e.health_after_update;

        // The written status comes back: no further update.
        clock.advance(Duration::from_secs(5));
        let mut again = n.clone();
        let e = evaluate_node_health(Some(&health), &mut again, None, clock.now(), GRACE);
        assert!(!e.needs_status_update);
        assert_eq!(again, n);
    }

    #[test]
    fn lease_renewals_keep_a_node_healthy() {
        let clock = FakeClock::new(ts("2025-01-01T00:01:00Z"));
        let base = node(vec![cond(
            "Ready",
            "True",
            "2025-01-01T00:00:50Z",
            "2025-01-01T00:00:10Z",
        )]);
        let mut n = base.clone();
        let e = evaluate_node_health(
            None,
            &mut n,
            Some(&lease("2025-01-01T00:01:00Z")),
            clock.now(),
            GRACE,
        );
        let mut health = e.health;
        assert_eq!(
            health.lease_renew_time,
            Some(Some(ts("2025-01-01T00:01:00Z")))
        );
        // The status is never posted again, but the Lease is renewed every 10s.
        for i in 1..=10 {
            clock.advance(Duration::from_secs(10));
            let renew = add(ts("2025-01-01T00:01:00Z"), Duration::from_secs(10 * i));
            let l = lease(&renew.to_string());
            let mut n = base.clone();
            let e = evaluate_node_health(Some(&health), &mut n, Some(&l), clock.now(), GRACE);
            assert!(!e.needs_status_update, "renewal {i}");
            assert_eq!(e.health.probe_timestamp, clock.now());
            health = e.health;
        }
        // The Lease stops: Unknown after the grace period.
        let stale = lease(&add(ts("2025-01-01T00:01:00Z"), Duration::from_secs(100)).to_string());
        clock.advance(Duration::from_secs(40));
        let mut n = base.clone();
        let e = evaluate_node_health(Some(&health), &mut n, Some(&stale), clock.now(), GRACE);
        assert!(!e.needs_status_update);
        clock.advance(Duration::from_secs(1));
        let mut n = base.clone();
        let e = evaluate_node_health(Some(&e.health), &mut n, Some(&stale), clock.now(), GRACE);
        assert!(e.needs_status_update);
        assert_eq!(e.current_ready.unwrap().status, "Unknown");
    }

    #[test]
    fn new_heartbeat_refreshes_and_tracks_transitions() {
        let clock = FakeClock::new(ts("2025-01-01T00:01:00Z"));
        let mut n = node(vec![cond(
            "Ready",
            "True",
            "2025-01-01T00:00:50Z",
            "2025-01-01T00:00:10Z",
        )]);
        let first = evaluate_node_health(None, &mut n, None, clock.now(), GRACE).health;
        clock.advance(Duration::from_secs(30));
        // Same transition time: transition timestamp kept.
        let mut n = node(vec![cond(
            "Ready",
            "True",
            "2025-01-01T00:01:20Z",
            "2025-01-01T00:00:10Z",
        )]);
        let e = evaluate_node_health(Some(&first), &mut n, None, clock.now(), GRACE);
        assert_eq!(e.health.probe_timestamp, clock.now());
        assert_eq!(
            e.health.ready_transition_timestamp,
            first.ready_transition_timestamp
        );
        // The kubelet reports NotReady: a transition.
        clock.advance(Duration::from_secs(10));
        let mut n = node(vec![cond(
            "Ready",
            "False",
            "2025-01-01T00:01:30Z",
            "2025-01-01T00:01:30Z",
        )]);
        let e2 = evaluate_node_health(Some(&e.health), &mut n, None, clock.now(), GRACE);
        assert_eq!(e2.health.ready_transition_timestamp, clock.now());
        assert_eq!(e2.current_ready.unwrap().status, "False");
        assert!(!e2.needs_status_update);
    }

    #[test]
    fn node_that_never_posted_gets_startup_grace_from_creation() {
        // Created at 00:00:00, startup grace 60s.
        let clock = FakeClock::new(ts("2025-01-01T00:00:30Z"));
        let mut n = node(vec![]);
        let e = evaluate_node_health(None, &mut n, None, clock.now(), GRACE);
        assert_eq!(e.grace_period, GRACE.startup);
        assert_eq!(e.observed_ready.status, "Unknown");
        assert_eq!(
            e.observed_ready.last_heartbeat_time.as_ref().unwrap().0,
            ts("2025-01-01T00:00:00Z")
        );
        assert!(e.current_ready.is_none());
        assert_eq!(e.health.probe_timestamp, ts("2025-01-01T00:00:00Z"));
        assert!(!e.needs_status_update);
        clock.set(ts("2025-01-01T00:01:01Z"));
        let mut n = node(vec![]);
        let e = evaluate_node_health(Some(&e.health), &mut n, None, clock.now(), GRACE);
        assert!(e.needs_status_update);
        let ready = e.current_ready.unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet never posted node status.")
        );
        assert_eq!(statuses(&n).len(), 4);
    }

    #[test]
    fn node_with_a_lease_but_no_status_is_healthy() {
        let clock = FakeClock::new(ts("2025-01-01T00:05:00Z"));
        let mut n = node(vec![]);
        let e = evaluate_node_health(
            None,
            &mut n,
            Some(&lease("2025-01-01T00:04:59Z")),
            clock.now(),
            GRACE,
        );
        assert!(!e.needs_status_update);
        assert_eq!(e.health.probe_timestamp, clock.now());
    }
}
