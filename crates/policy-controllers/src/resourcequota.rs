//! The ResourceQuota controller: keeps each quota's `status.hard` equal to
//! `spec.hard` and `status.used` equal to what the objects of its namespace (in its
//! scopes) charge, computed with the `quota` crate.
//!
//! A quota is synced when it is created or its `spec.hard` changes (status changes,
//! including the admission's charges, are ignored), when an object it counts is
//! deleted or stops being charged (a pod finishing, a service changing type, a claim
//! changing size): upstream's "replenishment", and every
//! `--resource-quota-sync-period` for all quotas. Pods, services, claims, configmaps,
//! secrets, replication controllers and quotas are read from shared informers; other
//! `count/<resource>.<group>` resources are listed from the API at sync time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ReplicationController, ResourceQuota, Secret, Service,
};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use kube::Client;
use parking_lot::Mutex;
use quota::usage::{calculate_usage, evaluators_for, sync_status};
use quota::{Evaluator, GroupResource, QuotaError, QuotaView};
use serde::Serialize;
use serde_json::{json, Value};

use controllers::controller::{run_workers, ControllerContext, ControllerFuture};
use controllers::error::ControllerError;
use controllers::informer::{
    object_key, split_key, HandlerRegistration, Informer, Notification, Object, Store,
};
use controllers::workqueue::WorkQueue;

/// Canonical name of the controller.
pub const RESOURCE_QUOTA_CONTROLLER_NAME: &str = "resourcequota-controller";

/// Starts the controller with `--concurrent-resource-quota-syncs` workers.
pub fn start_resource_quota_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    let workers = usize::try_from(ctx.config.concurrent_resource_quota_syncs).unwrap_or(1);
    let c = ResourceQuotaController::new(ctx);
    Ok(Box::pin(c.run(workers)))
}

type Lister = Box<dyn Fn(&str) -> Vec<Value> + Send + Sync>;

/// Enqueues the quotas of a namespace that track what an evaluator charges.
struct Replenisher {
    quotas: Store<ResourceQuota>,
    queue: WorkQueue<String>,
}

impl Replenisher {
    fn replenish(&self, namespace: &str, evaluator: &Evaluator) {
        for q in self.quotas.list_namespace(namespace) {
            let hard: Vec<&String> = q
                .spec
                .as_ref()
                .and_then(|s| s.hard.as_ref())
                .map(|h| h.keys().collect())
                .unwrap_or_default();
            if !evaluator.matching_resources(&hard).is_empty() {
                self.queue.add(object_key(q.as_ref()));
            }
        }
    }
}

fn pod_charged(p: &Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && p.metadata.deletion_timestamp.is_none()
}

fn service_shape(s: &Service) -> (Option<String>, usize, Option<bool>) {
    let spec = s.spec.as_ref();
    (
        spec.and_then(|s| s.type_.clone()),
        spec.and_then(|s| s.ports.as_ref()).map_or(0, Vec::len),
        spec.and_then(|s| s.allocate_load_balancer_node_ports),
    )
}

fn claim_size(c: &PersistentVolumeClaim) -> Option<String> {
    c.spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone())
}

/// Whether an update may have lowered the object's usage.
trait Replenishes: Object + Serialize {
    fn usage_may_drop(_old: &Self, _new: &Self) -> bool {
        false
    }
}

impl Replenishes for Pod {
    fn usage_may_drop(old: &Self, new: &Self) -> bool {
        pod_charged(old) && !pod_charged(new)
    }
}
impl Replenishes for Service {
    fn usage_may_drop(old: &Self, new: &Self) -> bool {
        service_shape(old) != service_shape(new)
    }
}
impl Replenishes for PersistentVolumeClaim {
    fn usage_may_drop(old: &Self, new: &Self) -> bool {
        claim_size(old) != claim_size(new)
    }
}
impl Replenishes for ConfigMap {}
impl Replenishes for Secret {}
impl Replenishes for ReplicationController {}
impl Replenishes for ResourceQuota {}

fn to_values<K: Serialize>(objs: Vec<Arc<K>>) -> Vec<Value> {
    objs.iter()
        .filter_map(|o| serde_json::to_value(o.as_ref()).ok())
        .collect()
}

/// The ResourceQuota controller.
pub struct ResourceQuotaController {
    client: Client,
    informers: controllers::informer::InformerFactory,
    quota_informer: Informer<ResourceQuota>,
    quotas: Store<ResourceQuota>,
    queue: WorkQueue<String>,
    listers: Arc<HashMap<GroupResource, Lister>>,
    resync: Duration,
    api_resources: Arc<Mutex<HashMap<GroupResource, ApiResource>>>,
    _registrations: Vec<HandlerRegistration>,
}

impl ResourceQuotaController {
    /// Builds the controller on the context's shared informers and subscribes to them.
    pub fn new(ctx: &ControllerContext) -> Self {
        let quota_informer = ctx.informers.informer::<ResourceQuota>();
        let quotas = quota_informer.store();
        let queue = WorkQueue::new("resourcequota_primary");
        let replenisher = Arc::new(Replenisher {
            quotas: quotas.clone(),
            queue: queue.clone(),
        });
        let mut registrations = Vec::new();
        let q = queue.clone();
        registrations.push(quota_informer.add_handler(move |n| match n {
            Notification::Added(rq) => q.add(object_key(rq.as_ref())),
            Notification::Updated { old, new } => {
                let hard = |r: &ResourceQuota| r.spec.as_ref().and_then(|s| s.hard.clone());
                if hard(old) != hard(new) {
                    q.add(object_key(new.as_ref()));
                }
            }
            Notification::Deleted(_) => {}
        }));
        let mut listers: HashMap<GroupResource, Lister> = HashMap::new();
        fn watch<K: Replenishes>(
            ctx: &ControllerContext,
            resource: &str,
            replenisher: &Arc<Replenisher>,
            listers: &mut HashMap<GroupResource, Lister>,
            registrations: &mut Vec<HandlerRegistration>,
        ) {
            let informer = ctx.informers.informer::<K>();
            let store = informer.store();
            listers.insert(
                GroupResource::new("", resource),
                Box::new(move |ns: &str| to_values(store.list_namespace(ns))),
            );
            let evaluator = Evaluator::for_resource("", resource);
            let r = replenisher.clone();
            registrations.push(informer.add_handler(move |n| {
                let obj = match n {
                    Notification::Deleted(o) => o,
                    Notification::Updated { old, new } if K::usage_may_drop(old, new) => new,
                    _ => return,
                };
                let ns = obj.meta().namespace.as_deref().unwrap_or("");
                r.replenish(ns, &evaluator);
            }));
        }
        let (r, l, g) = (&replenisher, &mut listers, &mut registrations);
        watch::<Pod>(ctx, "pods", r, l, g);
        watch::<Service>(ctx, "services", r, l, g);
        watch::<PersistentVolumeClaim>(ctx, "persistentvolumeclaims", r, l, g);
        watch::<ConfigMap>(ctx, "configmaps", r, l, g);
        watch::<Secret>(ctx, "secrets", r, l, g);
        watch::<ReplicationController>(ctx, "replicationcontrollers", r, l, g);
        watch::<ResourceQuota>(ctx, "resourcequotas", r, l, g);
        ResourceQuotaController {
            client: ctx.client.clone(),
            informers: ctx.informers.clone(),
            quota_informer,
            quotas,
            queue,
            listers: Arc::new(listers),
            resync: ctx.config.resource_quota_sync_period,
            api_resources: Arc::default(),
            _registrations: registrations,
        }
    }

    /// The work queue (keys are `namespace/name`).
    pub fn queue(&self) -> WorkQueue<String> {
        self.queue.clone()
    }

    /// Starts the informers, waits for their caches, and runs `workers` workers (and
    /// the periodic full resync) until the future is dropped.
    pub async fn run(self, workers: usize) {
        self.informers.start();
        self.quota_informer.wait_synced().await;
        self.informers.wait_for_cache_sync().await;
        tracing::info!(
            controller = RESOURCE_QUOTA_CONTROLLER_NAME,
            "caches synced; starting workers"
        );
        let this = Arc::new(self);
        let periodic = {
            let this = this.clone();
            async move {
                loop {
                    tokio::time::sleep(this.resync.max(Duration::from_secs(1))).await;
                    for key in this.quotas.keys() {
                        this.queue.add(key);
                    }
                }
            }
        };
        let queue = this.queue.clone();
        let workers_fut = run_workers(RESOURCE_QUOTA_CONTROLLER_NAME, queue, workers, move |key| {
            let this = this.clone();
            async move { this.sync(&key).await }
        });
        tokio::select! {
            _ = workers_fut => {}
            _ = periodic => {}
        }
    }

    /// Recomputes one quota's status and writes it if it changed.
    pub async fn sync(&self, key: &str) -> Result<(), ControllerError> {
        let Some(rq) = self.quotas.get(key) else {
            return Ok(());
        };
        let (namespace, name) = split_key(key);
        let mut obj =
            serde_json::to_value(rq.as_ref()).map_err(|e| ControllerError::Other(e.to_string()))?;
        let view = QuotaView::from_json(&obj);
        let hard: Vec<String> = view.spec_hard.keys().cloned().collect();
        // Resources without an informer are listed from the API first.
        let mut remote: HashMap<GroupResource, Result<Vec<Value>, QuotaError>> = HashMap::new();
        for e in evaluators_for(&hard) {
            let gr = e.group_resource();
            if self.listers.contains_key(&gr) || e.matching_resources(&hard).is_empty() {
                continue;
            }
            let listed = self.list_remote(&gr, namespace).await;
            remote.insert(gr, listed);
        }
        let listers = self.listers.clone();
        let mut list = |gr: &GroupResource| -> Result<Vec<Value>, QuotaError> {
            if let Some(l) = listers.get(gr) {
                return Ok(l(namespace));
            }
            remote
                .remove(gr)
                .unwrap_or_else(|| Err(QuotaError::List(format!("no lister for {gr}"))))
        };
        let (used, errors) = calculate_usage(&view, &mut list, jiff::Timestamp::now());
        let mut errs: Vec<ControllerError> = errors
            .into_iter()
            .map(|e| ControllerError::Other(e.to_string()))
            .collect();
        if let Some((hard, used)) = sync_status(&view, &used) {
            obj["status"] = json!({
                "hard": quota::resources::list_to_json(&hard),
                "used": quota::resources::list_to_json(&used),
            });
            let updated: ResourceQuota =
                serde_json::from_value(obj).map_err(|e| ControllerError::Other(e.to_string()))?;
            let api: Api<ResourceQuota> = Api::namespaced(self.client.clone(), namespace);
            if let Err(e) = api
                .replace_status(name, &PostParams::default(), &updated)
                .await
            {
                errs.push(e.into());
            }
        }
        match ControllerError::aggregate(errs) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn list_remote(
        &self,
        gr: &GroupResource,
        namespace: &str,
    ) -> Result<Vec<Value>, QuotaError> {
        let known = self.api_resources.lock().get(gr).cloned();
        let ar = match known {
            Some(ar) => ar,
            None => {
                let ar = if gr.group.is_empty() {
                    ApiResource {
                        group: String::new(),
                        version: "v1".into(),
                        api_version: "v1".into(),
                        kind: String::new(),
                        plural: gr.resource.clone(),
                    }
                } else {
                    let group = kube::discovery::oneshot::group(&self.client, &gr.group)
                        .await
                        .map_err(|e| QuotaError::List(e.to_string()))?;
                    group
                        .recommended_resources()
                        .into_iter()
                        .map(|(ar, _)| ar)
                        .find(|ar| ar.plural == gr.resource)
                        .ok_or_else(|| {
                            QuotaError::List(format!(
                                "the server doesn't have a resource type {gr}"
                            ))
                        })?
                };
                self.api_resources.lock().insert(gr.clone(), ar.clone());
                ar
            }
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &ar);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| QuotaError::List(e.to_string()))?;
        Ok(list
            .items
            .iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .collect())
    }
}
