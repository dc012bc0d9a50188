//! The taint eviction controller (`taint-eviction-controller`), as upstream's: pods
//! bound to a node with `NoExecute` taints are deleted at once when some taint is not
//! tolerated, after the smallest `tolerationSeconds` of the tolerations in use
//! (counted from when the controller saw the pod on the tainted node), or never when
//! the tolerations set no `tolerationSeconds`. Removing the taints (or tolerating
//! them forever) cancels a scheduled deletion.
//!
//! Before deleting, the pod gets the `DisruptionTarget` condition (reason
//! `DeletionByTaintManager`). Events (component `taint-eviction-controller`):
//! `TaintManagerEviction` "Marking for deletion Pod ns/name" and "Cancelling deletion
//! of Pod ns/name".
//!
//! Note: ferrokube's apiserver has no DefaultTolerationSeconds admission plugin, so
//! pods do not get the 300 s `not-ready`/`unreachable` tolerations upstream adds by
//! default; pods without tolerations are deleted as soon as such a taint appears.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Node, ObjectReference, Pod, PodCondition, PodStatus, Taint, Toleration,
};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::Client;
use parking_lot::Mutex;
use serde_json::json;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use controllers::events::{EventRecorder, EventType};
use controllers::informer::{split_key, HandlerRegistration, Informer, Notification};
use controllers::workqueue::WorkQueue;
use controllers::{run_workers, ControllerContext, ControllerError, ControllerFuture};

use crate::pods::{add_node_name_index, pod_node_name, pods_on_node, update_pod_condition};
use crate::taints::{matching_tolerations, min_toleration_time, no_execute_taints, node_taints};

/// Canonical name of the controller (also its event component).
pub const TAINT_EVICTION_CONTROLLER_NAME: &str = "taint-eviction-controller";
/// Reason of the DisruptionTarget condition it sets.
pub const DELETION_BY_TAINT_MANAGER: &str = "DeletionByTaintManager";
/// Message of the DisruptionTarget condition it sets.
pub const DELETION_BY_TAINT_MANAGER_MESSAGE: &str =
    "Taint manager: deleting due to NoExecute taint";
/// Reason of its events.
pub const TAINT_MANAGER_EVICTION: &str = "TaintManagerEviction";

const DELETE_ATTEMPTS: usize = 5;

/// Starts the controller (the manager's [`controllers::StartFn`]).
pub fn start_taint_eviction_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    Ok(TaintEvictionController::new(ctx).run())
}

/// A scheduled deletion.
struct Scheduled {
    id: u64,
    created_at: Instant,
    fired: Arc<AtomicBool>,
    abort: AbortHandle,
}

struct Inner {
    client: Client,
    recorder: EventRecorder,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    /// The `NoExecute` taints of each tainted node.
    tainted: Mutex<HashMap<String, Vec<Taint>>>,
    /// Deletions by pod key: `Some` while waiting (or running), `None` once run (so
    /// that the same pod is not deleted twice) or when run at once.
    evictions: Mutex<HashMap<String, Option<Scheduled>>>,
    next_id: AtomicU64,
    queue: WorkQueue<String>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for s in self.evictions.get_mut().values().flatten() {
            s.abort.abort();
        }
    }
}

/// The taint eviction controller.
pub struct TaintEvictionController {
    inner: Arc<Inner>,
    registrations: Vec<HandlerRegistration>,
}

fn node_item(name: &str) -> String {
    format!("n:{name}")
}

fn pod_item(key: &str, node: &str) -> String {
    format!("p:{key}@{node}")
}

impl TaintEvictionController {
    /// Builds the controller on `ctx` (informers for Pods and Nodes).
    pub fn new(ctx: &ControllerContext) -> Self {
        let pods = ctx.informers.informer::<Pod>();
        let nodes = ctx.informers.informer::<Node>();
        add_node_name_index(&pods);
        let inner = Arc::new(Inner {
            client: ctx.client.clone(),
            recorder: ctx.events.recorder(TAINT_EVICTION_CONTROLLER_NAME),
            pods: pods.clone(),
            nodes: nodes.clone(),
            tainted: Mutex::new(HashMap::new()),
            evictions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            queue: WorkQueue::new("noexec_taint"),
        });
        let mut registrations = Vec::new();
        let queue = inner.queue.clone();
        registrations.push(pods.add_handler(move |n: &Notification<Pod>| {
            let (old, new) = match n {
                Notification::Added(p) => (None, Some(p)),
                Notification::Updated { old, new } => (Some(old), Some(new)),
                Notification::Deleted(p) => (Some(p), None),
            };
            if let (Some(o), Some(nw)) = (old, new) {
                let tol = |p: &Pod| -> Vec<Toleration> {
                    p.spec
                        .as_ref()
                        .and_then(|s| s.tolerations.clone())
                        .unwrap_or_default()
                };
                if tol(o) == tol(nw) && pod_node_name(o) == pod_node_name(nw) {
                    return;
                }
            }
            let Some(pod) = new.or(old) else { return };
            queue.add(pod_item(
                &controllers::util::pod_key(pod),
                pod_node_name(pod),
            ));
        }));
        let queue = inner.queue.clone();
        registrations.push(nodes.add_handler(move |n: &Notification<Node>| {
            if let Notification::Updated { old, new } = n {
                if no_execute_taints(node_taints(old)) == no_execute_taints(node_taints(new)) {
                    return;
                }
            }
            queue.add(node_item(n.object().metadata.name.as_deref().unwrap_or("")));
        }));
        TaintEvictionController {
            inner,
            registrations,
        }
    }

    /// The future that runs the controller until dropped.
    pub fn run(self) -> ControllerFuture {
        let TaintEvictionController {
            inner,
            registrations,
        } = self;
        Box::pin(async move {
            let _registrations = registrations;
            tracing::info!(
                controller = TAINT_EVICTION_CONTROLLER_NAME,
                "starting controller"
            );
            inner.pods.wait_synced().await;
            inner.nodes.wait_synced().await;
            let i = inner.clone();
            // One worker keeps node and pod updates in order.
            run_workers(
                TAINT_EVICTION_CONTROLLER_NAME,
                inner.queue.clone(),
                1,
                move |item| {
                    let i = i.clone();
                    async move {
                        i.handle(&item);
                        Ok(())
                    }
                },
            )
            .await;
        })
    }
}

fn pod_ref(key: &str) -> ObjectReference {
    let (ns, name) = split_key(key);
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(ns.to_string()),
        name: Some(name.to_string()),
        ..Default::default()
    }
}

impl Inner {
    fn handle(self: &Arc<Self>, item: &str) {
        if let Some(name) = item.strip_prefix("n:") {
            self.handle_node_update(name);
        } else if let Some(rest) = item.strip_prefix("p:") {
            if let Some((key, node)) = rest.rsplit_once('@') {
                self.handle_pod_update(key, node);
            }
        }
    }

    fn handle_node_update(self: &Arc<Self>, name: &str) {
        let Some(node) = self.nodes.store().get(name) else {
            self.tainted.lock().remove(name);
            return;
        };
        let taints = no_execute_taints(node_taints(&node));
        {
            let mut tainted = self.tainted.lock();
            if taints.is_empty() {
                tainted.remove(name);
            } else {
                tainted.insert(name.to_string(), taints.clone());
            }
        }
        let pods = pods_on_node(&self.pods.store(), name);
        if pods.is_empty() {
            return;
        }
        if taints.is_empty() {
            for p in &pods {
                self.cancel_with_event(&controllers::util::pod_key(p));
            }
            return;
        }
        let now = Instant::now();
        for p in &pods {
            let tolerations = p
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.clone())
                .unwrap_or_default();
            self.process_pod_on_node(&controllers::util::pod_key(p), &tolerations, &taints, now);
        }
    }

    fn handle_pod_update(self: &Arc<Self>, key: &str, node: &str) {
        let Some(pod) = self.pods.store().get(key) else {
            self.cancel_with_event(key);
            return;
        };
        if pod_node_name(&pod) != node || node.is_empty() {
            return;
        }
        let Some(taints) = self.tainted.lock().get(node).cloned() else {
            return;
        };
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        self.process_pod_on_node(key, &tolerations, &taints, Instant::now());
    }

    fn process_pod_on_node(
        self: &Arc<Self>,
        key: &str,
        tolerations: &[Toleration],
        taints: &[Taint],
        now: Instant,
    ) {
        if taints.is_empty() {
            self.cancel_with_event(key);
        }
        let (all, used) = matching_tolerations(taints, tolerations);
        if !all {
            tracing::debug!(pod = %key, "not all taints are tolerated after update for pod on node");
            self.cancel_with_event(key);
            self.add_work(key, now, now);
            return;
        }
        let Some(min) = min_toleration_time(&used) else {
            tracing::debug!(pod = %key, "current tolerations for pod tolerate forever, cancelling any scheduled deletion");
            self.cancel_with_event(key);
            return;
        };
        let trigger = now + min;
        let mut start = now;
        let scheduled = self
            .evictions
            .lock()
            .get(key)
            .and_then(|s| s.as_ref().map(|s| s.created_at));
        if let Some(created) = scheduled {
            start = created;
            if start + min < trigger {
                return;
            }
            self.cancel_with_event(key);
        }
        self.add_work(key, start, trigger);
    }

    fn cancel_with_event(&self, key: &str) {
        let cancelled = {
            let mut ev = self.evictions.lock();
            match ev.remove(key) {
                Some(Some(s)) => {
                    if !s.fired.load(Ordering::SeqCst) {
                        s.abort.abort();
                    }
                    true
                }
                _ => false,
            }
        };
        if cancelled {
            self.recorder.event_for(
                pod_ref(key),
                EventType::Normal,
                TAINT_MANAGER_EVICTION,
                format!("Cancelling deletion of Pod {key}"),
            );
        }
    }

    fn add_work(self: &Arc<Self>, key: &str, created_at: Instant, fire_at: Instant) {
        let mut ev = self.evictions.lock();
        if ev.contains_key(key) {
            tracing::debug!(pod = %key, "trying to add already existing work, skipping");
            return;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let fired = Arc::new(AtomicBool::new(false));
        let weak = Arc::downgrade(self);
        let k = key.to_string();
        let f = fired.clone();
        let immediate = fire_at <= Instant::now();
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(fire_at).await;
            f.store(true, Ordering::SeqCst);
            let Some(inner) = weak.upgrade() else { return };
            let result = inner.delete_pod(&k).await;
            let mut ev = inner.evictions.lock();
            let ours = match ev.get(&k) {
                Some(Some(s)) => s.id == id,
                Some(None) => immediate,
                None => false,
            };
            if ours {
                if result.is_ok() {
                    ev.insert(k.clone(), None);
                } else {
                    ev.remove(&k);
                }
            }
        });
        let entry = if immediate {
            None
        } else {
            Some(Scheduled {
                id,
                created_at,
                fired,
                abort: task.abort_handle(),
            })
        };
        ev.insert(key.to_string(), entry);
    }

    /// Records the eviction and deletes the pod (with retries).
    async fn delete_pod(&self, key: &str) -> Result<(), ControllerError> {
        tracing::info!(controller = TAINT_EVICTION_CONTROLLER_NAME, pod = %key, "deleting pod");
        self.recorder.event_for(
            pod_ref(key),
            EventType::Normal,
            TAINT_MANAGER_EVICTION,
            format!("Marking for deletion Pod {key}"),
        );
        let (ns, name) = split_key(key);
        let mut last = Ok(());
        for _ in 0..DELETE_ATTEMPTS {
            last = add_condition_and_delete_pod(&self.client, ns, name).await;
            if last.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Err(err) = &last {
            tracing::warn!(pod = %key, error = %err, "failed to delete pod");
        }
        last
    }
}

/// Adds the DisruptionTarget condition (unless already there) and deletes the pod.
async fn add_condition_and_delete_pod(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<(), ControllerError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod = api.get(name).await?;
    let mut status = pod.status.clone().unwrap_or_else(PodStatus::default);
    let condition = PodCondition {
        type_: "DisruptionTarget".into(),
        status: "True".into(),
        reason: Some(DELETION_BY_TAINT_MANAGER.into()),
        message: Some(DELETION_BY_TAINT_MANAGER_MESSAGE.into()),
        ..Default::default()
    };
    if update_pod_condition(&mut status, condition, jiff::Timestamp::now()) {
        let cond = status
            .conditions
            .as_ref()
            .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionTarget"))
            .cloned();
        let patch = json!({
            "metadata": {"uid": pod.metadata.uid},
            "status": {"conditions": [cond]},
        });
        api.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await?;
    }
    api.delete(name, &DeleteParams::default()).await?;
    Ok(())
}
