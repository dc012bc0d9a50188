//! The Deployment controller (apps/v1): rolls a Deployment's pod template out through
//! ReplicaSets it owns, as upstream's kube-controller-manager does.
//!
//! Each ReplicaSet is named `<deployment>-<pod-template-hash>` and carries the
//! `pod-template-hash` label in its selector, labels and pod template, plus the
//! `deployment.kubernetes.io/revision`, `desired-replicas` and `max-replicas`
//! annotations ([`util`]). A sync of one Deployment:
//! 1. claims ReplicaSets: adopts orphans its selector matches, releases owned ones it
//!    no longer matches (as the ReplicaSet controller claims pods);
//! 2. groups the pods of those ReplicaSets (for Recreate);
//! 3. records the DeploymentPaused/DeploymentResumed Progressing condition;
//! 4. then, in this order: paused → only scale ([`sync`]); a requested rollback
//!    (the `deprecated.deployment.rollback.to` annotation, [`rollback`]); a change of
//!    `spec.replicas` → proportional scaling; otherwise the rollout of its strategy,
//!    [`rolling`] or [`recreate`];
//! 5. writes status and the Progressing/Available conditions ([`progress`]), and
//!    re-queues itself to check `progressDeadlineSeconds`.
//!
//! `kubectl rollout undo` (client-side since kubectl 1.18) patches the template back
//! to an old ReplicaSet's: the controller then finds that ReplicaSet as the new one and
//! raises its revision above all others.

pub mod progress;
pub mod recreate;
pub mod rollback;
pub mod rolling;
pub mod sync;
pub mod util;

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;

use controllers::controller::{ControllerContext, ControllerFuture};
use controllers::error::ControllerError;
use controllers::events::{EventRecorder, EventType};
use controllers::informer::{
    controller_uid_index_values, object_key, HandlerRegistration, Informer, InformerFactory,
    Notification, Store, CONTROLLER_UID_INDEX,
};
use controllers::podcontrol::NAMESPACE_TERMINATING_CAUSE;
use controllers::util::{controller_ref, LabelMatcher};
use controllers::workqueue::WorkQueue;

/// Canonical name of the Deployment controller.
pub const DEPLOYMENT_CONTROLLER_NAME: &str = "deployment-controller";
/// The `source.component` of its events.
pub const EVENT_COMPONENT: &str = "deployment-controller";
/// Name of its work queue.
pub const QUEUE_NAME: &str = "deployment";
/// Event reason of ReplicaSet scaling.
pub const SCALING_REPLICA_SET_REASON: &str = "ScalingReplicaSet";
/// Event reason of a Deployment with an empty selector.
pub const SELECTING_ALL_REASON: &str = "SelectingAll";

/// Starts the Deployment controller with `--concurrent-deployment-syncs` workers.
pub fn start_deployment_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    let workers = usize::try_from(ctx.config.concurrent_deployment_syncs).unwrap_or(1);
    let c = DeploymentController::new(ctx);
    Ok(Box::pin(c.run(workers)))
}

/// The state informer callbacks use.
struct Handlers {
    deployments: Store<Deployment>,
    rss: Store<ReplicaSet>,
    pods: Store<Pod>,
    queue: WorkQueue<String>,
}

impl Handlers {
    fn enqueue(&self, d: &Deployment) {
        self.queue.add(object_key(d));
    }

    /// The Deployment a controller reference points at, if it still exists with that
    /// UID.
    fn resolve(&self, namespace: &str, r: &OwnerReference) -> Option<Arc<Deployment>> {
        if r.kind != "Deployment" {
            return None;
        }
        let d = self.deployments.get_namespaced(namespace, &r.name)?;
        (d.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(d)
    }

    /// Deployments in the ReplicaSet's namespace whose (non-empty) selector matches its
    /// labels.
    fn deployments_for_rs(&self, rs: &ReplicaSet) -> Vec<Arc<Deployment>> {
        let labels = rs.metadata.labels.as_ref();
        if labels.is_none_or(|l| l.is_empty()) {
            return Vec::new();
        }
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        let found: Vec<Arc<Deployment>> = self
            .deployments
            .list_namespace(ns)
            .into_iter()
            .filter(|d| {
                let sel = d.spec.as_ref().map(|s| &s.selector);
                match LabelMatcher::from_label_selector(sel) {
                    Ok(m) => !m.is_empty() && m.matches(labels),
                    Err(_) => false,
                }
            })
            .collect();
        if found.len() > 1 {
            tracing::info!(
                replica_set = %object_key(rs),
                "user error: more than one deployment is selecting replica set"
            );
        }
        found
    }

    fn on_deployment(&self, n: &Notification<Deployment>) {
        match n {
            Notification::Added(d) | Notification::Deleted(d) => self.enqueue(d),
            Notification::Updated { new, .. } => self.enqueue(new),
        }
    }

    fn rs_deleted(&self, rs: &ReplicaSet) {
        let Some(r) = controller_ref(&rs.metadata) else {
            return;
        };
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        if let Some(d) = self.resolve(ns, r) {
            self.enqueue(&d);
        }
    }

    fn on_rs(&self, n: &Notification<ReplicaSet>) {
        match n {
            Notification::Added(rs) => {
                if rs.metadata.deletion_timestamp.is_some() {
                    self.rs_deleted(rs);
                    return;
                }
                let ns = rs.metadata.namespace.as_deref().unwrap_or("");
                if let Some(r) = controller_ref(&rs.metadata) {
                    if let Some(d) = self.resolve(ns, r) {
                        self.enqueue(&d);
                    }
                    return;
                }
                for d in self.deployments_for_rs(rs) {
                    self.enqueue(&d);
                }
            }
            Notification::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                let ns = new.metadata.namespace.as_deref().unwrap_or("");
                let cur_ref = controller_ref(&new.metadata);
                let old_ref = controller_ref(&old.metadata);
                let ref_changed = cur_ref != old_ref;
                if ref_changed {
                    if let Some(d) = old_ref.and_then(|r| self.resolve(ns, r)) {
                        self.enqueue(&d);
                    }
                }
                if let Some(r) = cur_ref {
                    if let Some(d) = self.resolve(ns, r) {
                        self.enqueue(&d);
                    }
                    return;
                }
                if ref_changed || old.metadata.labels != new.metadata.labels {
                    for d in self.deployments_for_rs(new) {
                        self.enqueue(&d);
                    }
                }
            }
            Notification::Deleted(rs) => self.rs_deleted(rs),
        }
    }

    /// A Recreate Deployment waits for its old pods to be gone: sync it when the last
    /// of its pods goes.
    fn on_pod(&self, n: &Notification<Pod>) {
        let Notification::Deleted(pod) = n else {
            return;
        };
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let Some(rs_ref) = controller_ref(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else {
            return;
        };
        let Some(rs) = self
            .rss
            .get_namespaced(ns, &rs_ref.name)
            .filter(|rs| rs.metadata.uid.as_deref() == Some(rs_ref.uid.as_str()))
        else {
            return;
        };
        let Some(d) = controller_ref(&rs.metadata).and_then(|r| self.resolve(ns, r)) else {
            return;
        };
        if util::strategy_type(&d) != "Recreate" {
            return;
        }
        let owned: Vec<ReplicaSet> = self
            .rss
            .by_index(
                CONTROLLER_UID_INDEX,
                d.metadata.uid.as_deref().unwrap_or(""),
            )
            .iter()
            .map(|rs| (**rs).clone())
            .collect();
        let pods = pod_map(&self.pods, &d, &owned);
        if pods.values().all(Vec::is_empty) {
            self.enqueue(&d);
        }
    }
}

/// The pods of each of the ReplicaSets (by UID) that also match the Deployment's
/// selector.
fn pod_map(
    pods: &Store<Pod>,
    d: &Deployment,
    rs_list: &[ReplicaSet],
) -> HashMap<String, Vec<Arc<Pod>>> {
    let ns = d.metadata.namespace.as_deref().unwrap_or("");
    let selector = LabelMatcher::from_label_selector(d.spec.as_ref().map(|s| &s.selector))
        .unwrap_or(LabelMatcher::Nothing);
    rs_list
        .iter()
        .map(|rs| {
            let uid = rs.metadata.uid.clone().unwrap_or_default();
            let owned: Vec<Arc<Pod>> = pods
                .by_index(CONTROLLER_UID_INDEX, &uid)
                .into_iter()
                .filter(|p| {
                    p.metadata.namespace.as_deref() == Some(ns)
                        && selector.matches(p.metadata.labels.as_ref())
                })
                .collect();
            (uid, owned)
        })
        .collect()
}

/// What the sync code works with: API client, caches, queue and event recorder.
pub(crate) struct Inner {
    client: Client,
    deployments: Store<Deployment>,
    rss: Store<ReplicaSet>,
    pods: Store<Pod>,
    queue: WorkQueue<String>,
    recorder: EventRecorder,
}

/// The Deployment controller.
pub struct DeploymentController {
    inner: Arc<Inner>,
    informers: InformerFactory,
    d_informer: Informer<Deployment>,
    rs_informer: Informer<ReplicaSet>,
    pod_informer: Informer<Pod>,
    registrations: Vec<HandlerRegistration>,
}

impl DeploymentController {
    /// Builds the controller on the context's shared informers and subscribes to them.
    pub fn new(ctx: &ControllerContext) -> Self {
        let d_informer = ctx.informers.informer::<Deployment>();
        let rs_informer = ctx.informers.informer::<ReplicaSet>();
        let pod_informer = ctx.informers.informer::<Pod>();
        rs_informer.add_index(
            CONTROLLER_UID_INDEX,
            controller_uid_index_values::<ReplicaSet>,
        );
        pod_informer.add_index(CONTROLLER_UID_INDEX, controller_uid_index_values::<Pod>);
        let queue = WorkQueue::new(QUEUE_NAME);
        let inner = Arc::new(Inner {
            client: ctx.client.clone(),
            deployments: d_informer.store(),
            rss: rs_informer.store(),
            pods: pod_informer.store(),
            queue: queue.clone(),
            recorder: ctx.events.recorder(EVENT_COMPONENT),
        });
        let handlers = Arc::new(Handlers {
            deployments: d_informer.store(),
            rss: rs_informer.store(),
            pods: pod_informer.store(),
            queue,
        });
        let h = handlers.clone();
        let d_reg = d_informer.add_handler(move |n| h.on_deployment(n));
        let h = handlers.clone();
        let rs_reg = rs_informer.add_handler(move |n| h.on_rs(n));
        let h = handlers;
        let pod_reg = pod_informer.add_handler(move |n| h.on_pod(n));
        DeploymentController {
            inner,
            informers: ctx.informers.clone(),
            d_informer,
            rs_informer,
            pod_informer,
            registrations: vec![d_reg, rs_reg, pod_reg],
        }
    }

    /// The controller's work queue (keys are `namespace/name`).
    pub fn queue(&self) -> WorkQueue<String> {
        self.inner.queue.clone()
    }

    /// Syncs one Deployment now (for tests and tools; workers do this on their own).
    pub async fn sync(&self, key: &str) -> Result<(), ControllerError> {
        self.inner.sync_key(key).await
    }

    /// Starts the informers, waits for their caches, and runs `workers` workers until
    /// the future is dropped.
    pub async fn run(self, workers: usize) {
        self.informers.start();
        tokio::join!(
            self.d_informer.wait_synced(),
            self.rs_informer.wait_synced(),
            self.pod_informer.wait_synced()
        );
        let queue = self.inner.queue.clone();
        crate::owner::run_synced(
            DEPLOYMENT_CONTROLLER_NAME,
            workers,
            self.registrations,
            self.inner,
            queue,
            |inner, key| async move { inner.sync_key(&key).await },
        )
        .await;
    }
}

fn name_of(d: &Deployment) -> (String, String) {
    (
        d.metadata.namespace.clone().unwrap_or_default(),
        d.metadata.name.clone().unwrap_or_default(),
    )
}

impl Inner {
    async fn sync_key(&self, key: &str) -> Result<(), ControllerError> {
        let started = std::time::Instant::now();
        let result = self.sync_deployment(key).await;
        tracing::debug!(controller = DEPLOYMENT_CONTROLLER_NAME, key, elapsed = ?started.elapsed(), "finished syncing deployment");
        match result {
            // Every write fails while the namespace goes away: nothing to retry.
            Err(e) if e.has_status_cause(NAMESPACE_TERMINATING_CAUSE) => Ok(()),
            other => other,
        }
    }

    async fn sync_deployment(&self, key: &str) -> Result<(), ControllerError> {
        let Some(cached) = self.deployments.get(key) else {
            tracing::debug!(
                controller = DEPLOYMENT_CONTROLLER_NAME,
                key,
                "deployment has been deleted"
            );
            return Ok(());
        };
        let mut d = (*cached).clone();
        let selector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        let selects_all = selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && selector
                .match_expressions
                .as_ref()
                .is_none_or(|e| e.is_empty());
        if selects_all {
            self.recorder.event(
                &d,
                EventType::Warning,
                SELECTING_ALL_REASON,
                "This deployment is selecting all pods. A non-empty selector is required.",
            );
            let status = d.status.get_or_insert_with(Default::default);
            if status.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
                status.observed_generation = d.metadata.generation;
                let _ = self.update_deployment_status(&mut d).await;
            }
            return Ok(());
        }

        let mut rs_list = self.get_replica_sets_for_deployment(&d).await?;
        let pods = pod_map(&self.pods, &d, &rs_list);

        if d.metadata.deletion_timestamp.is_some() {
            return self.sync_status_only(&mut d, &mut rs_list).await;
        }

        self.check_paused_conditions(&mut d).await?;

        if util::is_paused(&d) {
            return self.sync(&mut d, &mut rs_list).await;
        }

        if util::rollback_to(&d).is_some() {
            return self.rollback(&mut d, &mut rs_list).await;
        }

        if self.is_scaling_event(&mut d, &mut rs_list).await? {
            return self.sync(&mut d, &mut rs_list).await;
        }

        match util::strategy_type(&d) {
            "Recreate" => self.rollout_recreate(&mut d, &mut rs_list, &pods).await,
            "RollingUpdate" => self.rollout_rolling(&mut d, &mut rs_list).await,
            other => Err(ControllerError::Other(format!(
                "unexpected deployment strategy type: {other}"
            ))),
        }
    }

    /// The ReplicaSets the Deployment controls, after adopting matching orphans and
    /// releasing owned ones that no longer match its selector.
    async fn get_replica_sets_for_deployment(
        &self,
        d: &Deployment,
    ) -> Result<Vec<ReplicaSet>, ControllerError> {
        let (ns, name) = name_of(d);
        let selector = LabelMatcher::from_label_selector(d.spec.as_ref().map(|s| &s.selector))
            .map_err(|e| {
                ControllerError::Other(format!(
                    "deployment {ns}/{name} has invalid label selector: {e}"
                ))
            })?;
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &ns);
        let claimed = controllers::claim::claim(
            &self.client,
            d,
            &selector,
            self.rss.list_namespace(&ns),
            DEPLOYMENT_CONTROLLER_NAME,
            |rs, patch| {
                let api = api.clone();
                async move {
                    let rs_name = rs.metadata.name.clone().unwrap_or_default();
                    let patched = api
                        .patch(&rs_name, &PatchParams::default(), &Patch::Strategic(&patch))
                        .await?;
                    Ok(Arc::new(patched))
                }
            },
        )
        .await?;
        Ok(claimed.into_iter().map(Arc::unwrap_or_clone).collect())
    }

    /// Writes the Deployment's status (and annotations) through the status
    /// subresource; on success the working copy takes the new resourceVersion.
    async fn update_deployment_status(&self, d: &mut Deployment) -> Result<(), ControllerError> {
        let (ns, name) = name_of(d);
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
        let updated = api
            .replace_status(&name, &PostParams::default(), &*d)
            .await?;
        d.metadata.resource_version = updated.metadata.resource_version;
        Ok(())
    }

    /// Writes the whole Deployment (spec and metadata); on success the working copy
    /// takes the new resourceVersion.
    async fn update_deployment(&self, d: &mut Deployment) -> Result<(), ControllerError> {
        let (ns, name) = name_of(d);
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
        let updated = api.replace(&name, &PostParams::default(), &*d).await?;
        d.metadata.resource_version = updated.metadata.resource_version;
        d.metadata.generation = updated.metadata.generation;
        Ok(())
    }

    /// Replaces a ReplicaSet with `rs`.
    async fn update_replica_set(&self, rs: &ReplicaSet) -> Result<ReplicaSet, ControllerError> {
        let ns = rs.metadata.namespace.clone().unwrap_or_default();
        let name = rs.metadata.name.clone().unwrap_or_default();
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &ns);
        Ok(api.replace(&name, &PostParams::default(), rs).await?)
    }

    /// Re-queues the Deployment after `delay`.
    fn enqueue_after(&self, d: &Deployment, delay: std::time::Duration) {
        self.queue.add_after(object_key(d), delay);
    }

    /// Re-queues the Deployment with backoff.
    fn enqueue_rate_limited(&self, d: &Deployment) {
        self.queue.add_rate_limited(object_key(d));
    }
}
