//! The EndpointSlice controller: keeps the discovery.k8s.io/v1 EndpointSlices of
//! every service with a selector, one set per address type of the service, managed
//! by `endpointslice-controller.k8s.io` (see [`reconciler`] for the placement).
//!
//! A sync of one service key:
//! - service gone: forget it (its slices carry an owner reference and are removed by
//!   the garbage collector);
//! - `ExternalName` services and services without a selector are left alone;
//! - otherwise the service's managed slices (not being deleted) are taken from the
//!   cache; if the cache still lags behind this controller's own writes
//!   ([`tracker`]), the sync is retried later; else the reconciler's plan is carried
//!   out: deletions turned into updates where possible, creations (not while the
//!   service is being deleted), updates, deletions, each written slice's generation
//!   recorded. Failures are reported as a `FailedToUpdateEndpointSlices` event.

pub mod reconciler;
pub mod tracker;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use kube::Client;

use controllers::controller::{ControllerContext, ControllerFuture};
use controllers::error::ControllerError;
use controllers::events::{EventRecorder, EventType};
use controllers::informer::{
    split_key, HandlerRegistration, Informer, InformerFactory, Notification, Store,
};
use controllers::workqueue::WorkQueue;

use crate::podutil::{
    format_rfc3339_nano, pods_for_service, queue_services_on_changes, TriggerTimeTracker,
    LAST_CHANGE_TRIGGER_TIME_ANNOTATION, NAMESPACE_TERMINATING_CAUSE,
};
use crate::workers::{run_when_synced, KeySync};
use reconciler::{
    address_types_for_service, reconcile_by_address_type, recycle_deletions, Plan,
    CONTROLLER_MANAGED_BY, LABEL_MANAGED_BY, LABEL_SERVICE_NAME,
};
use tracker::{service_key_of_slice, EndpointSliceTracker};

/// Canonical name of the EndpointSlice controller.
pub const ENDPOINTSLICE_CONTROLLER_NAME: &str = "endpointslice-controller";
/// The `source.component` of its events.
pub const EVENT_COMPONENT: &str = "endpoint-slice-controller";
/// Name of the slice index by service (`namespace/service-name` label).
pub const SERVICE_NAME_INDEX: &str = "endpointslice-service-name";

/// Starts the EndpointSlice controller with `--concurrent-service-endpoint-syncs`
/// workers and `--max-endpoints-per-slice`.
pub fn start_endpointslice_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    let workers = usize::try_from(ctx.config.concurrent_service_endpoint_syncs).unwrap_or(1);
    let max = ctx.config.max_endpoints_per_slice;
    if max < 1 {
        return Err(ControllerError::Config(format!(
            "max-endpoints-per-slice must not be less than 1, but got {max}"
        )));
    }
    if max > 1000 {
        return Err(ControllerError::Config(format!(
            "max-endpoints-per-slice must not be more than 1000, but got {max}"
        )));
    }
    let c = EndpointSliceController::new(ctx, usize::try_from(max).unwrap_or(100));
    Ok(Box::pin(c.run(workers)))
}

fn managed_by_us(slice: &EndpointSlice) -> bool {
    slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_MANAGED_BY))
        .is_some_and(|v| v == CONTROLLER_MANAGED_BY)
}

fn label<'a>(slice: &'a EndpointSlice, key: &str) -> Option<&'a str> {
    slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

struct Inner {
    client: Client,
    services: Store<Service>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    queue: WorkQueue<String>,
    tracker: EndpointSliceTracker,
    trigger_times: TriggerTimeTracker,
    recorder: EventRecorder,
    max_endpoints_per_slice: usize,
}

/// The EndpointSlice controller.
pub struct EndpointSliceController {
    inner: Arc<Inner>,
    informers: InformerFactory,
    service_informer: Informer<Service>,
    pod_informer: Informer<Pod>,
    node_informer: Informer<Node>,
    slice_informer: Informer<EndpointSlice>,
    registrations: Vec<HandlerRegistration>,
}

impl EndpointSliceController {
    /// Builds the controller on the context's shared informers and subscribes to them.
    pub fn new(ctx: &ControllerContext, max_endpoints_per_slice: usize) -> Self {
        let service_informer = ctx.informers.informer::<Service>();
        let pod_informer = ctx.informers.informer::<Pod>();
        let node_informer = ctx.informers.informer::<Node>();
        let slice_informer = ctx.informers.informer::<EndpointSlice>();
        slice_informer.add_index(SERVICE_NAME_INDEX, |s: &EndpointSlice| {
            match label(s, LABEL_SERVICE_NAME) {
                Some(_) => vec![service_key_of_slice(s)],
                None => Vec::new(),
            }
        });
        let queue = WorkQueue::new("endpoint_slice");
        let inner = Arc::new(Inner {
            client: ctx.client.clone(),
            services: service_informer.store(),
            pods: pod_informer.store(),
            nodes: node_informer.store(),
            slices: slice_informer.store(),
            queue: queue.clone(),
            tracker: EndpointSliceTracker::new(),
            trigger_times: TriggerTimeTracker::new(),
            recorder: ctx.events.recorder(EVENT_COMPONENT),
            max_endpoints_per_slice: max_endpoints_per_slice.max(1),
        });
        let [svc_reg, pod_reg] =
            queue_services_on_changes(&service_informer, &pod_informer, &queue);
        let h = inner.clone();
        let slice_reg = slice_informer.add_handler(move |n: &Notification<EndpointSlice>| {
            h.on_slice(n);
        });
        EndpointSliceController {
            inner,
            informers: ctx.informers.clone(),
            service_informer,
            pod_informer,
            node_informer,
            slice_informer,
            registrations: vec![svc_reg, pod_reg, slice_reg],
        }
    }

    /// The controller's work queue (keys are service `namespace/name`).
    pub fn queue(&self) -> WorkQueue<String> {
        self.inner.queue.clone()
    }

    /// Syncs one service now (for tests and tools; workers do this on their own).
    pub async fn sync(&self, key: &str) -> Result<(), ControllerError> {
        self.inner.sync(key).await
    }

    /// Starts the informers, waits for their caches, and runs `workers` workers until
    /// the future is dropped.
    pub async fn run(self, workers: usize) {
        let synced = async {
            tokio::join!(
                self.service_informer.wait_synced(),
                self.pod_informer.wait_synced(),
                self.node_informer.wait_synced(),
                self.slice_informer.wait_synced()
            );
        };
        run_when_synced(
            ENDPOINTSLICE_CONTROLLER_NAME,
            &self.informers,
            synced,
            self.registrations,
            workers,
            self.inner,
        )
        .await;
    }
}

impl Inner {
    fn queue_service_of(&self, slice: &EndpointSlice) {
        if label(slice, LABEL_SERVICE_NAME).is_some_and(|n| !n.is_empty()) {
            self.queue.add(service_key_of_slice(slice));
        }
    }

    fn on_slice(&self, n: &Notification<EndpointSlice>) {
        match n {
            Notification::Added(s) => {
                if managed_by_us(s) && self.tracker.should_sync(s) {
                    self.queue_service_of(s);
                }
            }
            Notification::Updated { old, new } => {
                if label(old, LABEL_SERVICE_NAME) != label(new, LABEL_SERVICE_NAME) {
                    self.queue_service_of(new);
                    self.queue_service_of(old);
                    return;
                }
                if managed_by_us(old) != managed_by_us(new)
                    || (managed_by_us(new) && self.tracker.should_sync(new))
                {
                    self.queue_service_of(new);
                }
            }
            Notification::Deleted(s) => {
                if managed_by_us(s) && self.tracker.has(s) && !self.tracker.handle_deletion(s) {
                    self.queue_service_of(s);
                }
            }
        }
    }

    async fn sync(&self, key: &str) -> Result<(), ControllerError> {
        let (namespace, name) = split_key(key);
        let Some(service) = self.services.get(key) else {
            self.trigger_times.delete_service(namespace, name);
            self.tracker.delete_service(namespace, name);
            return Ok(());
        };
        let spec = service.spec.clone().unwrap_or_default();
        if spec.type_.as_deref() == Some("ExternalName") || spec.selector.is_none() {
            return Ok(());
        }
        let pods = pods_for_service(&self.pods, &service);
        let mut slices: Vec<EndpointSlice> = self
            .slices
            .by_index(SERVICE_NAME_INDEX, key)
            .into_iter()
            .filter(|s| managed_by_us(s) && s.metadata.deletion_timestamp.is_none())
            .map(|s| (*s).clone())
            .collect();
        slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        if self.tracker.stale_slices(&service, &slices) {
            return Err(ControllerError::Other(
                "EndpointSlice informer cache is out of date".into(),
            ));
        }
        let trigger_time = self.trigger_times.compute(&service, &pods);
        if let Err(e) = self.reconcile(&service, &pods, slices, trigger_time).await {
            self.recorder.event(
                service.as_ref(),
                EventType::Warning,
                "FailedToUpdateEndpointSlices",
                format!("Error updating Endpoint Slices for Service {namespace}/{name}: {e}"),
            );
            return Err(e);
        }
        Ok(())
    }

    async fn reconcile(
        &self,
        service: &Service,
        pods: &[Arc<Pod>],
        existing: Vec<EndpointSlice>,
        trigger_time: Option<jiff::Timestamp>,
    ) -> Result<(), ControllerError> {
        let types = address_types_for_service(service);
        let mut errors: Vec<ControllerError> = Vec::new();
        let mut unsupported = Vec::new();
        let mut by_type: std::collections::BTreeMap<&str, Vec<EndpointSlice>> = Default::default();
        for slice in existing {
            match types.get(slice.address_type.as_str()) {
                Some(t) => by_type.entry(t).or_default().push(slice),
                None => unsupported.push(slice),
            }
        }
        let nodes = self.nodes.clone();
        let lookup = move |name: &str| {
            if name.is_empty() {
                None
            } else {
                nodes.get(name)
            }
        };
        for address_type in &types {
            let existing = by_type.remove(address_type).unwrap_or_default();
            let (plan, node_errors) = reconcile_by_address_type(
                service,
                pods,
                &existing,
                address_type,
                self.max_endpoints_per_slice,
                &lookup,
            );
            errors.extend(node_errors.into_iter().map(ControllerError::Other));
            if let Err(e) = self.finalize(service, plan, trigger_time).await {
                errors.push(e);
            }
        }
        let ns = service.metadata.namespace.as_deref().unwrap_or("");
        let svc_name = service.metadata.name.as_deref().unwrap_or("");
        for slice in unsupported {
            if let Err(e) = self.delete_slice(ns, &slice).await {
                errors.push(ControllerError::Other(format!(
                    "error deleting {} EndpointSlice for Service {ns}/{svc_name}: {e}",
                    slice.metadata.name.as_deref().unwrap_or("")
                )));
            }
        }
        match ControllerError::aggregate(errors) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn delete_slice(&self, ns: &str, slice: &EndpointSlice) -> Result<(), ControllerError> {
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), ns);
        let name = slice.metadata.name.as_deref().unwrap_or("");
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                self.tracker.expect_deletion(slice);
                Ok(())
            }
            Err(e) => {
                let e = ControllerError::from(e);
                if e.is_not_found() {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn finalize(
        &self,
        service: &Service,
        mut plan: Plan,
        trigger_time: Option<jiff::Timestamp>,
    ) -> Result<(), ControllerError> {
        recycle_deletions(service, &mut plan);
        let ns = service.metadata.namespace.as_deref().unwrap_or("");
        let svc_name = service.metadata.name.as_deref().unwrap_or("");
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), ns);
        let set_trigger = |slice: &mut EndpointSlice| {
            let annotations = slice
                .metadata
                .annotations
                .get_or_insert_with(Default::default);
            match trigger_time {
                Some(t) => {
                    annotations.insert(
                        LAST_CHANGE_TRIGGER_TIME_ANNOTATION.to_string(),
                        format_rfc3339_nano(t),
                    );
                }
                None => {
                    annotations.remove(LAST_CHANGE_TRIGGER_TIME_ANNOTATION);
                }
            }
        };
        if service.metadata.deletion_timestamp.is_none() {
            for mut slice in plan.to_create {
                set_trigger(&mut slice);
                match api.create(&PostParams::default(), &slice).await {
                    Ok(created) => self.tracker.update(&created),
                    Err(e) => {
                        let e = ControllerError::from(e);
                        if e.has_status_cause(NAMESPACE_TERMINATING_CAUSE) {
                            return Ok(());
                        }
                        return Err(ControllerError::Other(format!(
                            "failed to create EndpointSlice for Service {ns}/{svc_name}: {e}"
                        )));
                    }
                }
            }
        }
        for mut slice in plan.to_update {
            set_trigger(&mut slice);
            let name = slice.metadata.name.clone().unwrap_or_default();
            match api.replace(&name, &PostParams::default(), &slice).await {
                Ok(updated) => self.tracker.update(&updated),
                Err(e) => {
                    return Err(ControllerError::Other(format!(
                        "failed to update {name} EndpointSlice for Service {ns}/{svc_name}: {}",
                        ControllerError::from(e)
                    )));
                }
            }
        }
        for slice in plan.to_delete {
            if let Err(e) = self.delete_slice(ns, &slice).await {
                return Err(ControllerError::Other(format!(
                    "failed to delete {} EndpointSlice for Service {ns}/{svc_name}: {e}",
                    slice.metadata.name.as_deref().unwrap_or("")
                )));
            }
        }
        Ok(())
    }
}

impl KeySync for Inner {
    fn queue(&self) -> &WorkQueue<String> {
        &self.queue
    }

    async fn sync(&self, key: &str) -> Result<(), ControllerError> {
        Inner::sync(self, key).await
    }
}
