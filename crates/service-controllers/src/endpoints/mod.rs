//! The Endpoints controller: keeps one core/v1 Endpoints object per service that has
//! a selector, named as the service, listing the addresses of the pods it selects
//! (see [`subsets`] for how they are computed).
//!
//! A sync of one service key:
//! - service gone: delete its Endpoints (404 is fine);
//! - `ExternalName` services and services without a selector are left alone (their
//!   Endpoints, if any, are written by someone else);
//! - otherwise compute the subsets, and write the Endpoints (labels of the service
//!   plus `service.kubernetes.io/headless` for headless services, the
//!   last-change-trigger-time and over-capacity annotations) unless subsets, labels
//!   and the capacity annotation already match.
//!
//! On start every existing Endpoints is queued once, so that Endpoints left behind by
//! services deleted while the controller was down are removed (leader-election
//! records are spared).

pub mod subsets;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kube::Client;
use parking_lot::Mutex;

use controllers::controller::{ControllerContext, ControllerFuture};
use controllers::error::ControllerError;
use controllers::events::{EventRecorder, EventType};
use controllers::informer::{
    object_key, split_key, HandlerRegistration, Informer, InformerFactory, Notification, Store,
};
use controllers::workqueue::WorkQueue;

use crate::podutil::{
    format_rfc3339_nano, is_service_ip_set, pods_for_service, queue_services_on_changes,
    without_label, TriggerTimeTracker, IS_HEADLESS_SERVICE_LABEL,
    LAST_CHANGE_TRIGGER_TIME_ANNOTATION, NAMESPACE_TERMINATING_CAUSE,
};
use crate::workers::{run_when_synced, KeySync};
use subsets::{
    capacity_annotation_set_correctly, compute_subsets, subsets_equal, truncate_subsets,
    OVER_CAPACITY_ANNOTATION, TRUNCATED,
};

/// Canonical name of the Endpoints controller.
pub const ENDPOINTS_CONTROLLER_NAME: &str = "endpoints-controller";
/// The `source.component` of its events.
pub const EVENT_COMPONENT: &str = "endpoint-controller";
/// The annotation of leader-election records, whose Endpoints are never cleaned up.
pub const LEADER_ELECTION_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

/// Starts the Endpoints controller with `--concurrent-endpoint-syncs` workers.
pub fn start_endpoints_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    let workers = usize::try_from(ctx.config.concurrent_endpoint_syncs).unwrap_or(1);
    let c = EndpointsController::new(ctx);
    Ok(Box::pin(c.run(workers)))
}

struct Inner {
    client: Client,
    services: Store<Service>,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
    queue: WorkQueue<String>,
    trigger_times: TriggerTimeTracker,
    /// resourceVersions of Endpoints this controller has replaced: seeing one of
    /// them in the cache means the cache is behind.
    stale_versions: Mutex<HashMap<String, String>>,
    recorder: EventRecorder,
}

/// The Endpoints controller.
pub struct EndpointsController {
    inner: Arc<Inner>,
    informers: InformerFactory,
    service_informer: Informer<Service>,
    pod_informer: Informer<Pod>,
    endpoints_informer: Informer<Endpoints>,
    registrations: Vec<HandlerRegistration>,
}

impl EndpointsController {
    /// Builds the controller on the context's shared informers and subscribes to them.
    pub fn new(ctx: &ControllerContext) -> Self {
        let service_informer = ctx.informers.informer::<Service>();
        let pod_informer = ctx.informers.informer::<Pod>();
        let endpoints_informer = ctx.informers.informer::<Endpoints>();
        let queue = WorkQueue::new("endpoint");
        let inner = Arc::new(Inner {
            client: ctx.client.clone(),
            services: service_informer.store(),
            pods: pod_informer.store(),
            endpoints: endpoints_informer.store(),
            queue: queue.clone(),
            trigger_times: TriggerTimeTracker::new(),
            stale_versions: Mutex::new(HashMap::new()),
            recorder: ctx.events.recorder(EVENT_COMPONENT),
        });
        let [svc_reg, pod_reg] =
            queue_services_on_changes(&service_informer, &pod_informer, &queue);
        let q = queue;
        let ep_reg = endpoints_informer.add_handler(move |n: &Notification<Endpoints>| {
            if let Notification::Deleted(ep) = n {
                q.add(object_key(ep.as_ref()));
            }
        });
        EndpointsController {
            inner,
            informers: ctx.informers.clone(),
            service_informer,
            pod_informer,
            endpoints_informer,
            registrations: vec![svc_reg, pod_reg, ep_reg],
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

    /// Starts the informers, waits for their caches, queues every existing Endpoints
    /// once, and runs `workers` workers until the future is dropped.
    pub async fn run(self, workers: usize) {
        let inner = self.inner.clone();
        let synced = async move {
            tokio::join!(
                self.service_informer.wait_synced(),
                self.pod_informer.wait_synced(),
                self.endpoints_informer.wait_synced()
            );
            inner.check_leftover_endpoints();
        };
        run_when_synced(
            ENDPOINTS_CONTROLLER_NAME,
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
    fn check_leftover_endpoints(&self) {
        for ep in self.endpoints.list() {
            let leader = ep
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(LEADER_ELECTION_ANNOTATION));
            if !leader {
                self.queue.add(object_key(ep.as_ref()));
            }
        }
    }

    async fn sync(&self, key: &str) -> Result<(), ControllerError> {
        let (namespace, name) = split_key(key);
        let Some(service) = self.services.get(key) else {
            let api: Api<Endpoints> = Api::namespaced(self.client.clone(), namespace);
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) => {
                    let e = ControllerError::from(e);
                    if !e.is_not_found() {
                        return Err(e);
                    }
                }
            }
            self.trigger_times.delete_service(namespace, name);
            self.stale_versions.lock().remove(key);
            return Ok(());
        };
        let spec = service.spec.clone().unwrap_or_default();
        if spec.type_.as_deref() == Some("ExternalName") || spec.selector.is_none() {
            return Ok(());
        }

        let pods = pods_for_service(&self.pods, &service);
        let trigger_time = self.trigger_times.compute(&service, &pods);
        let subsets = compute_subsets(&service, &pods);

        let current = self.endpoints.get(key);
        if let Some(cur) = &current {
            let stale = self.stale_versions.lock().get(key).cloned();
            if stale.is_some() && stale == cur.metadata.resource_version {
                return Err(ControllerError::Other(format!(
                    "endpoints informer cache is out of date, resource version {} already processed for endpoints {key}",
                    stale.unwrap_or_default()
                )));
            }
        }
        let current: Endpoints = match current {
            Some(c) => (*c).clone(),
            None => Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    namespace: Some(namespace.to_string()),
                    labels: service.metadata.labels.clone(),
                    ..Default::default()
                },
                subsets: None,
            },
        };
        let create = current
            .metadata
            .resource_version
            .as_deref()
            .unwrap_or("")
            .is_empty();

        let empty = BTreeMap::new();
        let compare_labels =
            without_label(current.metadata.labels.as_ref(), IS_HEADLESS_SERVICE_LABEL);
        let current_subsets = current.subsets.clone().unwrap_or_default();
        if !create
            && subsets_equal(&current_subsets, &subsets)
            && compare_labels.as_ref().unwrap_or(&empty)
                == service.metadata.labels.as_ref().unwrap_or(&empty)
            && capacity_annotation_set_correctly(
                current.metadata.annotations.as_ref(),
                &current_subsets,
            )
        {
            return Ok(());
        }

        let mut new = current.clone();
        let mut subsets = subsets;
        let truncated = truncate_subsets(&mut subsets);
        new.subsets = Some(subsets);
        let annotations = new.metadata.annotations.get_or_insert_with(BTreeMap::new);
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
        if truncated {
            annotations.insert(OVER_CAPACITY_ANNOTATION.to_string(), TRUNCATED.to_string());
        } else {
            annotations.remove(OVER_CAPACITY_ANNOTATION);
        }
        let mut labels = service.metadata.labels.clone().unwrap_or_default();
        if is_service_ip_set(&service) {
            labels.remove(IS_HEADLESS_SERVICE_LABEL);
        } else {
            labels.insert(IS_HEADLESS_SERVICE_LABEL.to_string(), String::new());
        }
        new.metadata.labels = Some(labels);

        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), namespace);
        let result = if create {
            api.create(&PostParams::default(), &new).await.map(|_| None)
        } else {
            api.replace(name, &PostParams::default(), &new)
                .await
                .map(Some)
        };
        match result {
            Ok(updated) => {
                if let Some(updated) = updated {
                    if updated.metadata.resource_version != current.metadata.resource_version {
                        if let Some(rv) = current.metadata.resource_version.clone() {
                            self.stale_versions.lock().insert(key.to_string(), rv);
                        }
                    }
                }
                Ok(())
            }
            Err(e) => {
                let e = ControllerError::from(e);
                if create
                    && e.code() == Some(403)
                    && e.has_status_cause(NAMESPACE_TERMINATING_CAUSE)
                {
                    return Ok(());
                }
                if create {
                    self.recorder.event(
                        &new,
                        EventType::Warning,
                        "FailedToCreateEndpoint",
                        format!("Failed to create endpoint for service {namespace}/{name}: {e}"),
                    );
                } else {
                    self.recorder.event(
                        &new,
                        EventType::Warning,
                        "FailedToUpdateEndpoint",
                        format!("Failed to update endpoint {namespace}/{name}: {e}"),
                    );
                }
                Err(e)
            }
        }
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
