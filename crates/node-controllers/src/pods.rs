//! Pod helpers of the node controllers: the pod index by node name, upstream's
//! `UpdatePodCondition` rule ([`update_pod_condition`]), and [`mark_pods_not_ready`]
//! (the Ready condition of the pods of an unready node set to False).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use kube::Client;

use controllers::events::{EventRecorder, EventType};
use controllers::informer::{Informer, Store};
use controllers::ControllerError;

/// Name of the pod index by `spec.nodeName` (unscheduled pods are not indexed).
pub const NODE_NAME_INDEX: &str = "spec.nodeName";

/// Index function of [`NODE_NAME_INDEX`].
pub fn node_name_index_values(pod: &Pod) -> Vec<String> {
    match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
        Some(n) if !n.is_empty() => vec![n.to_string()],
        _ => Vec::new(),
    }
}

/// Adds [`NODE_NAME_INDEX`] to the pod informer.
pub fn add_node_name_index(pods: &Informer<Pod>) {
    pods.add_index(NODE_NAME_INDEX, node_name_index_values);
}

/// The cached pods bound to `node`.
pub fn pods_on_node(pods: &Store<Pod>, node: &str) -> Vec<Arc<Pod>> {
    pods.by_index(NODE_NAME_INDEX, node)
}

/// The node a pod is bound to (empty if none).
pub fn pod_node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

/// The pod's phase (empty if unset).
pub fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Sets `condition` in `status` the way upstream's UpdatePodCondition does: the
/// transition time is `now` unless the status is unchanged (then the old one is kept).
/// Returns whether anything changed.
pub fn update_pod_condition(
    status: &mut PodStatus,
    mut condition: PodCondition,
    now: jiff::Timestamp,
) -> bool {
    condition.last_transition_time = Some(Time(now));
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let Some(old) = conditions.iter_mut().find(|c| c.type_ == condition.type_) else {
        conditions.push(condition);
        return true;
    };
    if condition.status == old.status {
        condition.last_transition_time = old.last_transition_time.clone();
    }
    let same = condition.status == old.status
        && condition.reason == old.reason
        && condition.message == old.message
        && condition.last_probe_time == old.last_probe_time
        && condition.last_transition_time == old.last_transition_time;
    *old = condition;
    !same
}

/// Sets the Ready condition of every pod bound to `node` to False (writing the
/// status of those that change) and records a `NodeNotReady` warning on each.
pub async fn mark_pods_not_ready(
    client: &Client,
    recorder: &EventRecorder,
    pods: &[Arc<Pod>],
    node: &str,
) -> Result<(), ControllerError> {
    let mut errs = Vec::new();
    for pod in pods {
        if pod_node_name(pod) != node {
            continue;
        }
        let Some(ready) = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        else {
            continue;
        };
        let mut updated = (**pod).clone();
        let cond = PodCondition {
            status: "False".into(),
            ..ready.clone()
        };
        let status = updated.status.get_or_insert_with(PodStatus::default);
        if !update_pod_condition(status, cond, jiff::Timestamp::now()) {
            continue;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let name = pod.metadata.name.as_deref().unwrap_or("");
        tracing::debug!(pod = %format!("{ns}/{name}"), "updating ready status of pod to false");
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        match api
            .replace_status(name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            Err(err) => {
                let err = ControllerError::from(err);
                if err.is_not_found() {
                    continue;
                }
                tracing::info!(pod = %format!("{ns}/{name}"), error = %err, "failed to update status for pod");
                errs.push(err);
            }
        }
        recorder.event(
            pod.as_ref(),
            EventType::Warning,
            "NodeNotReady",
            "Node is not ready",
        );
    }
    match ControllerError::aggregate(errs) {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(type_: &str, status: &str, at: &str) -> PodCondition {
        PodCondition {
            type_: type_.into(),
            status: status.into(),
            last_transition_time: Some(Time(at.parse().unwrap())),
            ..Default::default()
        }
    }

    #[test]
    fn condition_updates_follow_upstream() {
        let now: jiff::Timestamp = "2025-01-01T00:10:00Z".parse().unwrap();
        let mut status = PodStatus {
            conditions: Some(vec![cond("Ready", "True", "2025-01-01T00:00:00Z")]),
            ..Default::default()
        };
        // Status change: new transition time.
        assert!(update_pod_condition(
            &mut status,
            cond("Ready", "False", "2000-01-01T00:00:00Z"),
            now
        ));
        let c = &status.conditions.as_ref().unwrap()[0];
        assert_eq!(c.status, "False");
        assert_eq!(c.last_transition_time.as_ref().unwrap().0, now);
        // Same status: no change, transition time kept.
        let later: jiff::Timestamp = "2025-01-01T00:20:00Z".parse().unwrap();
        assert!(!update_pod_condition(
            &mut status,
            cond("Ready", "False", "2000-01-01T00:00:00Z"),
            later
        ));
        assert_eq!(
            status.conditions.as_ref().unwrap()[0]
                .last_transition_time
                .as_ref()
                .unwrap()
                .0,
            now
        );
        // New condition type: appended.
        let dt = PodCondition {
            reason: Some("DeletionByTaintManager".into()),
            ..cond("DisruptionTarget", "True", "2000-01-01T00:00:00Z")
        };
        assert!(update_pod_condition(&mut status, dt.clone(), later));
        assert_eq!(status.conditions.as_ref().unwrap().len(), 2);
        assert!(!update_pod_condition(&mut status, dt, later));
    }

    #[test]
    fn index_skips_unscheduled_pods() {
        let mut pod = Pod::default();
        assert!(node_name_index_values(&pod).is_empty());
        pod.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            node_name: Some("n1".into()),
            ..Default::default()
        });
        assert_eq!(node_name_index_values(&pod), ["n1"]);
    }
}
