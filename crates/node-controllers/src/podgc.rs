//! The pod garbage collector (`pod-garbage-collector-controller`), as upstream's
//! podgc. Every 20 s it force-deletes (grace period 0):
//! - terminated pods (phase neither Pending, Running nor Unknown) beyond
//!   `--terminated-pod-gc-threshold` (when positive), evicted ones first, then oldest
//!   first;
//! - terminating pods on a node that is not ready and carries the
//!   `node.kubernetes.io/out-of-service` taint;
//! - pods bound to a node that no longer exists: a missing node is quarantined for
//!   40 s, then confirmed gone with a live read; these pods get the `DisruptionTarget`
//!   condition (reason `DeletionByPodGC`);
//! - terminating pods that were never scheduled.
//!
//! A pod not yet terminal is first moved to phase Failed with a server-side apply of
//! its status (field manager `PodGC`).

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::Client;
use serde_json::json;

use controllers::informer::Informer;
use controllers::{ControllerContext, ControllerError, ControllerFuture};

use crate::pods::{pod_node_name, pod_phase};
use crate::taints::{is_node_ready, node_taints, TAINT_NODE_OUT_OF_SERVICE};

/// Canonical name of the controller.
pub const POD_GC_CONTROLLER_NAME: &str = "pod-garbage-collector-controller";
/// How often the collector runs.
pub const GC_CHECK_PERIOD: Duration = Duration::from_secs(20);
/// How long a missing node must stay missing before its pods go.
pub const QUARANTINE_TIME: Duration = Duration::from_secs(40);
/// The field manager of the status writes.
pub const FIELD_MANAGER: &str = "PodGC";

/// Starts the collector with upstream's periods (the manager's
/// [`controllers::StartFn`]).
pub fn start_pod_gc_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    Ok(PodGcController::with_periods(ctx, GC_CHECK_PERIOD, QUARANTINE_TIME).run())
}

/// Whether a pod is terminated (not Pending, Running or Unknown).
pub fn is_pod_terminated(pod: &Pod) -> bool {
    !matches!(pod_phase(pod), "Pending" | "Running" | "Unknown")
}

fn is_evicted(pod: &Pod) -> bool {
    pod_phase(pod) == "Failed"
        && pod.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted")
}

/// The deletion order of terminated pods: evicted first, then by creation time, then
/// by name.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    is_evicted(b)
        .cmp(&is_evicted(a))
        .then_with(|| {
            let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            t(a).cmp(&t(b))
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// The terminated pods to delete with `threshold` allowed, in deletion order.
pub fn excess_terminated(pods: &[Arc<Pod>], threshold: i32) -> Vec<&Arc<Pod>> {
    let mut terminated: Vec<&Arc<Pod>> = pods.iter().filter(|p| is_pod_terminated(p)).collect();
    let excess = terminated.len() as i64 - i64::from(threshold);
    if threshold <= 0 || excess <= 0 {
        return Vec::new();
    }
    terminated.sort_by(|a, b| deletion_order(a, b));
    terminated.truncate(excess as usize);
    terminated
}

struct Inner {
    client: Client,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    threshold: i32,
    quarantine: Duration,
    /// Missing nodes waiting out their quarantine, with the time it ends.
    quarantined: Mutex<HashMap<String, Instant>>,
}

/// The pod garbage collector.
pub struct PodGcController {
    inner: Arc<Inner>,
    period: Duration,
}

impl PodGcController {
    /// Builds the collector on `ctx`, running every `period` with `quarantine` for
    /// missing nodes (upstream: 20 s and 40 s; shorter ones are for tests).
    pub fn with_periods(ctx: &ControllerContext, period: Duration, quarantine: Duration) -> Self {
        PodGcController {
            inner: Arc::new(Inner {
                client: ctx.client.clone(),
                pods: ctx.informers.informer::<Pod>(),
                nodes: ctx.informers.informer::<Node>(),
                threshold: ctx.config.terminated_pod_gc_threshold,
                quarantine,
                quarantined: Mutex::new(HashMap::new()),
            }),
            period,
        }
    }

    /// The future that runs the collector until dropped.
    pub fn run(self) -> ControllerFuture {
        let PodGcController { inner, period } = self;
        Box::pin(async move {
            tracing::info!(
                controller = POD_GC_CONTROLLER_NAME,
                "starting GC controller"
            );
            inner.pods.wait_synced().await;
            inner.nodes.wait_synced().await;
            loop {
                inner.gc().await;
                tokio::time::sleep(period).await;
            }
        })
    }
}

fn key(pod: &Pod) -> String {
    controllers::util::pod_key(pod)
}

impl Inner {
    async fn gc(&self) {
        let pods = self.pods.store().list();
        let nodes = self.nodes.store().list();
        if self.threshold > 0 {
            self.gc_terminated(&pods).await;
        }
        self.gc_terminating(&pods).await;
        self.gc_orphaned(&pods, &nodes).await;
        self.gc_unscheduled_terminating(&pods).await;
    }

    async fn delete_all(&self, pods: &[&Arc<Pod>], condition: Option<(&str, &str)>) {
        let futs = pods.iter().map(|p| async move {
            if let Err(err) = self.mark_failed_and_delete(p, condition).await {
                if !err.is_not_found() {
                    tracing::warn!(pod = %key(p), error = %err, "failed to garbage collect pod");
                }
            }
        });
        futures::future::join_all(futs).await;
    }

    async fn gc_terminated(&self, pods: &[Arc<Pod>]) {
        let doomed = excess_terminated(pods, self.threshold);
        if doomed.is_empty() {
            return;
        }
        tracing::info!(num_pods = doomed.len(), "garbage collecting pods");
        self.delete_all(&doomed, None).await;
    }

    async fn gc_terminating(&self, pods: &[Arc<Pod>]) {
        let store = self.nodes.store();
        let mut doomed: Vec<&Arc<Pod>> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
            .filter(|p| {
                store.get(pod_node_name(p)).is_some_and(|n| {
                    !is_node_ready(&n)
                        && node_taints(&n)
                            .iter()
                            .any(|t| t.key == TAINT_NODE_OUT_OF_SERVICE)
                })
            })
            .collect();
        if doomed.is_empty() {
            return;
        }
        doomed.sort_by(|a, b| deletion_order(a, b));
        tracing::info!(num_pods = doomed.len(), "garbage collecting pods that are terminating on node tainted with node.kubernetes.io/out-of-service");
        self.delete_all(&doomed, None).await;
    }

    async fn gc_orphaned(&self, pods: &[Arc<Pod>], nodes: &[Arc<Node>]) {
        let existing: HashSet<&str> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.as_deref())
            .collect();
        let now = Instant::now();
        let due: Vec<String> = {
            let mut q = self.quarantined.lock();
            for p in pods {
                let node = pod_node_name(p);
                if !node.is_empty() && !existing.contains(node) {
                    q.entry(node.to_string()).or_insert(now + self.quarantine);
                }
            }
            let due: Vec<String> = q
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(n, _)| n.clone())
                .collect();
            for n in &due {
                q.remove(n);
            }
            due
        };
        let mut deleted = HashSet::new();
        for name in due {
            if !existing.contains(name.as_str()) {
                match self.node_exists(&name).await {
                    Ok(false) => {
                        deleted.insert(name.clone());
                    }
                    Ok(true) => {}
                    Err(err) => {
                        tracing::error!(node = %name, error = %err, "error while getting node");
                    }
                }
            }
        }
        let orphans: Vec<&Arc<Pod>> = pods
            .iter()
            .filter(|p| deleted.contains(pod_node_name(p)))
            .collect();
        for p in orphans {
            tracing::info!(pod = %key(p), node = %pod_node_name(p), "found orphaned Pod assigned to the Node, deleting");
            match self
                .mark_failed_and_delete(
                    p,
                    Some(("DeletionByPodGC", "PodGC: node no longer exists")),
                )
                .await
            {
                Ok(()) => {
                    tracing::info!(pod = %key(p), "forced deletion of orphaned Pod succeeded")
                }
                Err(err) if err.is_not_found() => {}
                Err(err) => {
                    tracing::warn!(pod = %key(p), error = %err, "failed to delete orphaned pod")
                }
            }
        }
    }

    async fn gc_unscheduled_terminating(&self, pods: &[Arc<Pod>]) {
        for p in pods {
            if p.metadata.deletion_timestamp.is_none() || !pod_node_name(p).is_empty() {
                continue;
            }
            tracing::info!(pod = %key(p), "found unscheduled terminating Pod not assigned to any Node, deleting");
            match self.mark_failed_and_delete(p, None).await {
                Ok(()) => {
                    tracing::info!(pod = %key(p), "forced deletion of unscheduled terminating Pod succeeded")
                }
                Err(err) if err.is_not_found() => {}
                Err(err) => tracing::warn!(pod = %key(p), error = %err, "failed to delete pod"),
            }
        }
    }

    async fn node_exists(&self, name: &str) -> Result<bool, ControllerError> {
        let api: Api<Node> = Api::all(self.client.clone());
        Ok(api.get_opt(name).await?.is_some())
    }

    /// Moves a pod that is not terminal to Failed (with the DisruptionTarget condition
    /// `(reason, message)` if given), then deletes it with grace period 0.
    async fn mark_failed_and_delete(
        &self,
        pod: &Pod,
        condition: Option<(&str, &str)>,
    ) -> Result<(), ControllerError> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let name = pod.metadata.name.as_deref().unwrap_or("");
        tracing::info!(pod = %format!("{ns}/{name}"), "PodGC is force deleting Pod");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        if !matches!(pod_phase(pod), "Succeeded" | "Failed") {
            let mut status = json!({"phase": "Failed"});
            if let Some((reason, message)) = condition {
                status["conditions"] = json!([{
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": Time(jiff::Timestamp::now()),
                }]);
            }
            let apply = json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": ns},
                "status": status,
            });
            api.patch_status(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&apply),
            )
            .await?;
        }
        api.delete(name, &DeleteParams::default().grace_period(0))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, phase: &str, created: &str, reason: Option<&str>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                creation_timestamp: Some(Time(created.parse().unwrap())),
                ..Default::default()
            },
            status: Some(PodStatus {
                phase: Some(phase.into()),
                reason: reason.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn names(v: &[&Arc<Pod>]) -> Vec<String> {
        v.iter().map(|p| p.metadata.name.clone().unwrap()).collect()
    }

    #[test]
    fn terminated_phases() {
        assert!(is_pod_terminated(&pod(
            "a",
            "Succeeded",
            "2025-01-01T00:00:00Z",
            None
        )));
        assert!(is_pod_terminated(&pod(
            "a",
            "Failed",
            "2025-01-01T00:00:00Z",
            None
        )));
        assert!(!is_pod_terminated(&pod(
            "a",
            "Running",
            "2025-01-01T00:00:00Z",
            None
        )));
        assert!(!is_pod_terminated(&pod(
            "a",
            "Pending",
            "2025-01-01T00:00:00Z",
            None
        )));
        assert!(!is_pod_terminated(&pod(
            "a",
            "Unknown",
            "2025-01-01T00:00:00Z",
            None
        )));
    }

    #[test]
    fn excess_terminated_pods_go_evicted_then_oldest_first() {
        let pods = vec![
            pod("new", "Succeeded", "2025-01-01T00:03:00Z", None),
            pod("old", "Failed", "2025-01-01T00:01:00Z", None),
            pod("running", "Running", "2025-01-01T00:00:00Z", None),
            pod("evicted", "Failed", "2025-01-01T00:05:00Z", Some("Evicted")),
            pod("b-tie", "Succeeded", "2025-01-01T00:02:00Z", None),
            pod("a-tie", "Succeeded", "2025-01-01T00:02:00Z", None),
        ];
        assert_eq!(
            names(&excess_terminated(&pods, 2)),
            ["evicted", "old", "a-tie"]
        );
        assert_eq!(names(&excess_terminated(&pods, 4)), ["evicted"]);
        assert!(excess_terminated(&pods, 5).is_empty());
        assert!(excess_terminated(&pods, 0).is_empty(), "disabled");
    }
}
