//! The HorizontalPodAutoscaler controller (autoscaling/v2).
//!
//! Every `--horizontal-pod-autoscaler-sync-period` each HPA is reconciled: the
//! target's Scale is read through its `/scale` subresource (AbleToScale
//! `SucceededGetScale`, or `FailedGetScale`), each metric turns into a replica
//! proposal from the metrics API ([`metrics`]; resource and container resource
//! metrics), the largest proposal is normalized ([`replicas`]: tolerance,
//! stabilization windows, behavior policies, min/max; the ScalingLimited condition),
//! the target is rescaled if needed (`SuccessfulRescale` / `FailedRescale` events),
//! and the status is written when it changed. When no metric can be computed the
//! HPA reports ScalingActive False with the first metric's failure
//! (`FailedGetResourceMetric`) and emits `FailedComputeMetricsReplicas`, as upstream.

pub mod metrics;
pub mod replicas;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition,
    HorizontalPodAutoscalerStatus, MetricSpec, MetricStatus, MetricTarget, MetricValueStatus,
    ResourceMetricSource, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::Client;
use parking_lot::Mutex;
use serde_json::json;

use controllers::controller::{run_workers, ControllerContext, ControllerFuture};
use controllers::error::ControllerError;
use controllers::events::{EventRecorder, EventType};
use controllers::informer::{
    object_key, HandlerRegistration, Informer, InformerFactory, Notification, Store,
};
use controllers::workqueue::WorkQueue;

use metrics::{MetricsClient, RestMetricsClient};
use replicas::{default_rules, plain_replicas, resource_replicas, Normalized, Recommender};

/// Canonical name of the controller.
pub const HPA_CONTROLLER_NAME: &str = "horizontal-pod-autoscaler-controller";
/// The target utilization of the default metric (cpu).
pub const DEFAULT_CPU_UTILIZATION: i32 = 80;

/// Starts the HPA controller with `--concurrent-horizontal-pod-autoscaler-syncs`
/// workers, reading metrics from the resource metrics API.
pub fn start_hpa_controller(ctx: &ControllerContext) -> Result<ControllerFuture, ControllerError> {
    let workers =
        usize::try_from(ctx.config.concurrent_horizontal_pod_autoscaler_syncs).unwrap_or(1);
    let metrics = Arc::new(RestMetricsClient::new(ctx.client.clone()));
    let c = HpaController::new(ctx, metrics);
    Ok(Box::pin(c.run(workers)))
}

/// Settings of the controller (from the manager's flags).
#[derive(Clone, Debug)]
pub struct HpaSettings {
    /// Reconcile interval.
    pub sync_period: Duration,
    /// Ratio tolerance.
    pub tolerance: f64,
    /// Downscale stabilization window (without behavior, and the default with it).
    pub downscale_stabilization: Duration,
    /// Readiness changes within this period after start count as initial readiness.
    pub initial_readiness_delay: Duration,
    /// CPU samples may be skipped within this period after start.
    pub cpu_initialization_period: Duration,
}

/// Sets a condition as upstream does: the transition time moves only with the status.
pub fn set_condition(
    conds: &mut Vec<HorizontalPodAutoscalerCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) {
    let idx = match conds.iter().position(|c| c.type_ == type_) {
        Some(i) => i,
        None => {
            conds.push(HorizontalPodAutoscalerCondition {
                type_: type_.into(),
                status: String::new(),
                ..Default::default()
            });
            conds.len() - 1
        }
    };
    let c = &mut conds[idx];
    if c.status != status {
        c.last_transition_time = Some(Time(jiff::Timestamp::now()));
    }
    c.status = status.into();
    c.reason = Some(reason.into());
    c.message = Some(message);
}

/// The metrics an HPA uses (the default cpu 80% when none are given).
pub fn metric_specs(hpa: &HorizontalPodAutoscaler) -> Vec<MetricSpec> {
    let specs = hpa
        .spec
        .as_ref()
        .and_then(|s| s.metrics.clone())
        .unwrap_or_default();
    if !specs.is_empty() {
        return specs;
    }
    vec![MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: "cpu".into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(DEFAULT_CPU_UTILIZATION),
                ..Default::default()
            },
        }),
        ..Default::default()
    }]
}

struct Failure {
    reason: String,
    message: String,
}

struct Inner {
    client: Client,
    hpas: Store<HorizontalPodAutoscaler>,
    pods: Store<Pod>,
    queue: WorkQueue<String>,
    recorder: EventRecorder,
    metrics: Arc<dyn MetricsClient>,
    settings: HpaSettings,
    history: Mutex<HashMap<String, Recommender>>,
}

struct Scale {
    replicas: i32,
    selector: String,
    api: Api<DynamicObject>,
}

fn milli_quantity(v: i64) -> Quantity {
    Quantity(apimachinery::Quantity::new_milli(v, apimachinery::Format::DecimalSI).to_string())
}

impl Inner {
    async fn get_scale(&self, hpa: &HorizontalPodAutoscaler) -> Result<Scale, String> {
        let spec = hpa.spec.as_ref().ok_or("missing spec")?;
        let target = &spec.scale_target_ref;
        let api_version = target.api_version.clone().unwrap_or_default();
        let (group, version) = match api_version.rsplit_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.clone()),
        };
        let gvk = GroupVersionKind::gvk(&group, &version, &target.kind);
        let (ar, _) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|_| {
                format!(
                    "no matches for kind \"{}\" in group \"{group}\"",
                    target.kind
                )
            })?;
        let ns = hpa.metadata.namespace.as_deref().unwrap_or("");
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &ar);
        let scale = api.get_scale(&target.name).await.map_err(|e| match e {
            kube::Error::Api(s) => s.message.clone(),
            e => e.to_string(),
        })?;
        Ok(Scale {
            replicas: scale.spec.and_then(|s| s.replicas).unwrap_or(0),
            selector: scale.status.and_then(|s| s.selector).unwrap_or_default(),
            api,
        })
    }

    fn selected_pods(&self, ns: &str, selector: &apimachinery::labels::Selector) -> Vec<Arc<Pod>> {
        self.pods
            .list_namespace(ns)
            .into_iter()
            .filter(|p| {
                let labels = p.metadata.labels.clone().unwrap_or_default();
                selector.matches(&labels)
            })
            .collect()
    }

    /// One resource (or container resource) metric: proposal, metric name, status.
    #[allow(clippy::too_many_arguments)]
    async fn resource_metric(
        &self,
        hpa: &HorizontalPodAutoscaler,
        current: i32,
        name: &str,
        container: &str,
        target: &MetricTarget,
        selector_str: &str,
        selector: &apimachinery::labels::Selector,
    ) -> Result<(i32, String, MetricValueStatus), String> {
        let ns = hpa.metadata.namespace.as_deref().unwrap_or("");
        let now = jiff::Timestamp::now();
        let s = &self.settings;
        if let Some(avg) = target.average_value.as_ref() {
            let want = replicas::apimachinery_milli(&avg.0).unwrap_or(0);
            let (m, _) = self
                .metrics
                .resource_metric(name, ns, selector_str, container)
                .await
                .map_err(|e| format!("failed to get {name} usage: unable to get metrics for resource {name}: {e}"))?;
            let pods = self.selected_pods(ns, selector);
            let refs: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
            let (replicas, usage) = plain_replicas(
                current,
                want,
                m,
                &refs,
                name,
                s.tolerance,
                s.cpu_initialization_period,
                s.initial_readiness_delay,
                now,
            )
            .map_err(|e| format!("failed to get {name} usage: {e}"))?;
            return Ok((
                replicas,
                format!("{name} resource"),
                MetricValueStatus {
                    average_value: Some(milli_quantity(usage)),
                    ..Default::default()
                },
            ));
        }
        let Some(util) = target.average_utilization else {
            return Err("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set".into());
        };
        let (m, _) = self
            .metrics
            .resource_metric(name, ns, selector_str, container)
            .await
            .map_err(|e| format!("failed to get {name} utilization: unable to get metrics for resource {name}: {e}"))?;
        let pods = self.selected_pods(ns, selector);
        let refs: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
        let p = resource_replicas(
            current,
            util,
            m,
            &refs,
            name,
            container,
            s.tolerance,
            s.cpu_initialization_period,
            s.initial_readiness_delay,
            now,
        )
        .map_err(|e| format!("failed to get {name} utilization: {e}"))?;
        let metric_name = if container.is_empty() {
            format!("{name} resource utilization (percentage of request)")
        } else {
            format!("{name} container resource utilization (percentage of request)")
        };
        Ok((
            p.replicas,
            metric_name,
            MetricValueStatus {
                average_utilization: Some(p.utilization),
                average_value: Some(milli_quantity(p.raw)),
                ..Default::default()
            },
        ))
    }

    fn unable(&self, hpa: &HorizontalPodAutoscaler, reason: &str, err: &str) -> Failure {
        self.recorder.event(hpa, EventType::Warning, reason, err);
        Failure {
            reason: reason.into(),
            message: format!("the HPA was unable to compute the replica count: {err}"),
        }
    }

    /// Proposal for one metric, or the failure (condition) and error.
    async fn metric_replicas(
        &self,
        hpa: &HorizontalPodAutoscaler,
        spec: &MetricSpec,
        current: i32,
        selector_str: &str,
        selector: &apimachinery::labels::Selector,
        status: &mut MetricStatus,
    ) -> Result<(i32, String), (Failure, String)> {
        match (
            spec.type_.as_str(),
            spec.resource.as_ref(),
            spec.container_resource.as_ref(),
        ) {
            ("Resource", Some(r), _) => {
                match self
                    .resource_metric(hpa, current, &r.name, "", &r.target, selector_str, selector)
                    .await
                {
                    Ok((replicas, name, value)) => {
                        *status = MetricStatus {
                            type_: "Resource".into(),
                            resource: Some(ResourceMetricStatus {
                                name: r.name.clone(),
                                current: value,
                            }),
                            ..Default::default()
                        };
                        Ok((replicas, name))
                    }
                    Err(e) => Err((
                        self.unable(hpa, "FailedGetResourceMetric", &e),
                        format!("failed to get {} resource metric value: {e}", r.name),
                    )),
                }
            }
            ("ContainerResource", _, Some(r)) => {
                match self
                    .resource_metric(
                        hpa,
                        current,
                        &r.name,
                        &r.container,
                        &r.target,
                        selector_str,
                        selector,
                    )
                    .await
                {
                    Ok((replicas, name, value)) => {
                        *status = MetricStatus {
                            type_: "ContainerResource".into(),
                            container_resource: Some(ContainerResourceMetricStatus {
                                name: r.name.clone(),
                                container: r.container.clone(),
                                current: value,
                            }),
                            ..Default::default()
                        };
                        Ok((replicas, name))
                    }
                    Err(e) => Err((
                        self.unable(hpa, "FailedGetContainerResourceMetric", &e),
                        format!("failed to get {} container metric value: {e}", r.container),
                    )),
                }
            }
            (t @ ("Pods" | "Object" | "External"), _, _) => {
                let (reason, api) = match t {
                    "Pods" => (
                        "FailedGetPodsMetric",
                        "custom metrics API (custom.metrics.k8s.io)",
                    ),
                    "Object" => (
                        "FailedGetObjectMetric",
                        "custom metrics API (custom.metrics.k8s.io)",
                    ),
                    _ => (
                        "FailedGetExternalMetric",
                        "external metrics API (external.metrics.k8s.io)",
                    ),
                };
                let e = format!("unable to get metric: no {api} registered");
                Err((
                    self.unable(hpa, reason, &e),
                    format!("failed to get {} metric value: {e}", t.to_lowercase()),
                ))
            }
            (t, _, _) => {
                let e = format!("unknown metric source type \"{t}\"");
                Err((self.unable(hpa, "InvalidMetricSourceType", &e), e))
            }
        }
    }

    async fn update_status_if_needed(
        &self,
        original: &Option<HorizontalPodAutoscalerStatus>,
        hpa: &HorizontalPodAutoscaler,
    ) -> Result<(), String> {
        if &hpa.status == original {
            return Ok(());
        }
        let ns = hpa.metadata.namespace.as_deref().unwrap_or("");
        let name = hpa.metadata.name.as_deref().unwrap_or("");
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(self.client.clone(), ns);
        if let Err(e) = api.replace_status(name, &PostParams::default(), hpa).await {
            let msg = match &e {
                kube::Error::Api(s) => s.message.clone(),
                e => e.to_string(),
            };
            self.recorder
                .event(hpa, EventType::Warning, "FailedUpdateStatus", msg.clone());
            return Err(format!("failed to update status for {name}: {msg}"));
        }
        Ok(())
    }

    async fn reconcile(&self, shared: &HorizontalPodAutoscaler, key: &str) -> Result<(), String> {
        let mut hpa = shared.clone();
        let original = hpa.status.clone();
        let mut status = hpa.status.clone().unwrap_or_default();
        let mut conds = status.conditions.take().unwrap_or_default();
        let spec = hpa.spec.clone().unwrap_or_default();
        let ns = hpa.metadata.namespace.clone().unwrap_or_default();
        let reference = format!(
            "{}/{}/{}",
            spec.scale_target_ref.kind, ns, spec.scale_target_ref.name
        );
        let finish = |hpa: &mut HorizontalPodAutoscaler,
                      mut status: HorizontalPodAutoscalerStatus,
                      conds: Vec<HorizontalPodAutoscalerCondition>| {
            status.conditions = Some(conds);
            hpa.status = Some(status);
        };
        let scale = match self.get_scale(&hpa).await {
            Ok(s) => s,
            Err(e) => {
                self.recorder
                    .event(&hpa, EventType::Warning, "FailedGetScale", e.clone());
                set_condition(
                    &mut conds,
                    "AbleToScale",
                    "False",
                    "FailedGetScale",
                    format!("the HPA controller was unable to get the target's current scale: {e}"),
                );
                finish(&mut hpa, status, conds);
                self.update_status_if_needed(&original, &hpa).await?;
                return Err(format!(
                    "failed to query scale subresource for {reference}: {e}"
                ));
            }
        };
        set_condition(
            &mut conds,
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale".into(),
        );
        let current = scale.replicas;
        let now = jiff::Timestamp::now();
        self.history
            .lock()
            .entry(key.to_string())
            .or_default()
            .record_initial(current, now);
        let min = spec.min_replicas.unwrap_or(1);
        let max = spec.max_replicas;
        let mut desired = 0;
        let mut rescale_reason = String::new();
        let mut rescale = true;
        let mut statuses: Vec<MetricStatus> = Vec::new();
        let mut ret_err = None;
        if current == 0 && min != 0 {
            desired = 0;
            rescale = false;
            set_condition(
                &mut conds,
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".into(),
            );
        } else if current > max {
            rescale_reason = "Current number of replicas above Spec.MaxReplicas".into();
            desired = max;
        } else if current < min {
            rescale_reason = "Current number of replicas below Spec.MinReplicas".into();
            desired = min;
        } else {
            // Metrics.
            let specs = metric_specs(&hpa);
            let selector = if scale.selector.is_empty() {
                self.recorder.event(
                    &hpa,
                    EventType::Warning,
                    "SelectorRequired",
                    "selector is required",
                );
                set_condition(
                    &mut conds,
                    "ScalingActive",
                    "False",
                    "InvalidSelector",
                    "the HPA target's scale is missing a selector".into(),
                );
                Err("selector is required".to_string())
            } else {
                apimachinery::labels::Selector::parse(&scale.selector).map_err(|e| {
                    let msg = format!("couldn't convert selector into a corresponding internal selector object: {e}");
                    self.recorder.event(&hpa, EventType::Warning, "InvalidSelector", msg.clone());
                    set_condition(&mut conds, "ScalingActive", "False", "InvalidSelector", msg.clone());
                    msg
                })
            };
            let outcome = match selector {
                Err(e) => Err(e),
                Ok(selector) => {
                    statuses = vec![MetricStatus::default(); specs.len()];
                    let mut proposal = 0;
                    let mut metric = String::new();
                    let mut invalid = 0;
                    let mut first: Option<(Failure, String)> = None;
                    for (i, m) in specs.iter().enumerate() {
                        match self
                            .metric_replicas(
                                &hpa,
                                m,
                                current,
                                &scale.selector,
                                &selector,
                                &mut statuses[i],
                            )
                            .await
                        {
                            Ok((r, name)) => {
                                if proposal == 0 || r > proposal {
                                    proposal = r;
                                    metric = name;
                                }
                            }
                            Err(f) => {
                                if first.is_none() {
                                    first = Some(f);
                                }
                                invalid += 1;
                            }
                        }
                    }
                    let err = first.map(|(f, e)| {
                        (f, format!("invalid metrics ({invalid} invalid out of {}), first error is: {e}", specs.len()))
                    });
                    match err {
                        Some((f, e)) if invalid >= specs.len() || proposal < current => {
                            set_condition(
                                &mut conds,
                                "ScalingActive",
                                "False",
                                &f.reason,
                                f.message,
                            );
                            Err(e)
                        }
                        other => {
                            set_condition(&mut conds, "ScalingActive", "True", "ValidMetricFound", format!("the HPA was able to successfully calculate a replica count from {metric}"));
                            ret_err = other.map(|(_, e)| e);
                            Ok((proposal, metric))
                        }
                    }
                }
            };
            let (proposal, metric) = match outcome {
                Ok(v) => v,
                Err(e) => {
                    status.current_replicas = Some(current);
                    status.current_metrics = Some(statuses);
                    finish(&mut hpa, status, conds);
                    if let Err(u) = self.update_status_if_needed(&original, &hpa).await {
                        tracing::warn!(hpa = %key, error = %u, "status update failed");
                    }
                    self.recorder.event(
                        &hpa,
                        EventType::Warning,
                        "FailedComputeMetricsReplicas",
                        e.clone(),
                    );
                    return Err(format!("failed to compute desired number of replicas based on listed metrics for {reference}: {e}"));
                }
            };
            let mut rescale_metric = String::new();
            if proposal > desired {
                desired = proposal;
                rescale_metric = metric;
            }
            if desired > current {
                rescale_reason = format!("{rescale_metric} above target");
            }
            if desired < current {
                rescale_reason = "All metrics below target".into();
            }
            let normalized: Normalized = {
                let mut history = self.history.lock();
                let rec = history.entry(key.to_string()).or_default();
                match spec.behavior.as_ref() {
                    None => rec.normalize(
                        current,
                        desired,
                        min,
                        max,
                        self.settings.downscale_stabilization,
                        now,
                    ),
                    Some(b) => {
                        let up = default_rules(
                            true,
                            b.scale_up.as_ref(),
                            self.settings.downscale_stabilization,
                        );
                        let down = default_rules(
                            false,
                            b.scale_down.as_ref(),
                            self.settings.downscale_stabilization,
                        );
                        rec.normalize_with_behavior(current, desired, min, max, &up, &down, now)
                    }
                }
            };
            set_condition(
                &mut conds,
                "AbleToScale",
                "True",
                normalized.able_to_scale.reason,
                normalized.able_to_scale.message.into(),
            );
            set_condition(
                &mut conds,
                "ScalingLimited",
                if normalized.limited { "True" } else { "False" },
                normalized.scaling_limited.reason,
                normalized.scaling_limited.message.into(),
            );
            desired = normalized.replicas;
            rescale = desired != current;
        }
        if rescale {
            let name = spec.scale_target_ref.name.clone();
            let patch = json!({"spec": {"replicas": desired}});
            if let Err(e) = scale
                .api
                .patch_scale(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                let msg = match &e {
                    kube::Error::Api(s) => s.message.clone(),
                    e => e.to_string(),
                };
                self.recorder.event(
                    &hpa,
                    EventType::Warning,
                    "FailedRescale",
                    format!("New size: {desired}; reason: {rescale_reason}; error: {msg}"),
                );
                set_condition(
                    &mut conds,
                    "AbleToScale",
                    "False",
                    "FailedUpdateScale",
                    format!("the HPA controller was unable to update the target scale: {msg}"),
                );
                status.current_replicas = Some(current);
                status.current_metrics = (!statuses.is_empty()).then_some(statuses);
                finish(&mut hpa, status, conds);
                let _ = self.update_status_if_needed(&original, &hpa).await;
                return Err(format!("failed to rescale {reference}: {msg}"));
            }
            set_condition(
                &mut conds,
                "AbleToScale",
                "True",
                "SucceededRescale",
                format!("the HPA controller was able to update the target scale to {desired}"),
            );
            self.recorder.event(
                &hpa,
                EventType::Normal,
                "SuccessfulRescale",
                format!("New size: {desired}; reason: {rescale_reason}"),
            );
            if let Some(b) = spec.behavior.as_ref() {
                let up = desired > current;
                let rules = default_rules(
                    up,
                    if up {
                        b.scale_up.as_ref()
                    } else {
                        b.scale_down.as_ref()
                    },
                    self.settings.downscale_stabilization,
                );
                self.history
                    .lock()
                    .entry(key.to_string())
                    .or_default()
                    .store_scale_event(&rules, current, desired, now);
            }
            status.last_scale_time = Some(Time(now));
        } else {
            desired = current;
        }
        status.current_replicas = Some(current);
        status.desired_replicas = desired;
        status.current_metrics = (!statuses.is_empty()).then_some(statuses);
        finish(&mut hpa, status, conds);
        self.update_status_if_needed(&original, &hpa).await?;
        match ret_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn sync(&self, key: &str) -> Result<(), ControllerError> {
        let Some(hpa) = self.hpas.get(key) else {
            self.history.lock().remove(key);
            return Ok(());
        };
        if let Err(e) = self.reconcile(&hpa, key).await {
            tracing::warn!(hpa = %key, error = %e, "reconcile failed");
        }
        // Every HPA comes back after the sync period, failed or not.
        self.queue
            .add_after(key.to_string(), self.settings.sync_period);
        Ok(())
    }
}

/// The HPA controller.
pub struct HpaController {
    inner: Arc<Inner>,
    informers: InformerFactory,
    hpa_informer: Informer<HorizontalPodAutoscaler>,
    _registrations: Vec<HandlerRegistration>,
}

impl HpaController {
    /// Builds the controller on the context's shared informers, reading metrics from
    /// `metrics`.
    pub fn new(ctx: &ControllerContext, metrics: Arc<dyn MetricsClient>) -> Self {
        let hpa_informer = ctx.informers.informer::<HorizontalPodAutoscaler>();
        let pod_informer = ctx.informers.informer::<Pod>();
        let c = &ctx.config;
        let settings = HpaSettings {
            sync_period: c.hpa_sync_period.max(Duration::from_millis(100)),
            tolerance: c.hpa_tolerance,
            downscale_stabilization: c.hpa_downscale_stabilization,
            initial_readiness_delay: c.hpa_initial_readiness_delay,
            cpu_initialization_period: c.hpa_cpu_initialization_period,
        };
        let inner = Arc::new(Inner {
            client: ctx.client.clone(),
            hpas: hpa_informer.store(),
            pods: pod_informer.store(),
            queue: WorkQueue::new("horizontalpodautoscaler"),
            recorder: ctx.events.recorder("horizontal-pod-autoscaler"),
            metrics,
            settings,
            history: Mutex::new(HashMap::new()),
        });
        let i = inner.clone();
        let reg = hpa_informer.add_handler(move |n| {
            let key = object_key(n.object().as_ref());
            match n {
                // As upstream, a new or changed HPA is reconciled after the sync period.
                Notification::Added(_) | Notification::Updated { .. } => {
                    i.queue.add_after(key, i.settings.sync_period)
                }
                Notification::Deleted(_) => {
                    i.queue.forget(&key);
                    i.history.lock().remove(&key);
                }
            }
        });
        HpaController {
            inner,
            informers: ctx.informers.clone(),
            hpa_informer,
            _registrations: vec![reg],
        }
    }

    /// Reconciles one HPA now (for tests and tools).
    pub async fn sync(&self, key: &str) -> Result<(), ControllerError> {
        self.inner.sync(key).await
    }

    /// Starts the informers, waits for their caches, and runs `workers` workers until
    /// the future is dropped.
    pub async fn run(self, workers: usize) {
        self.informers.start();
        self.hpa_informer.wait_synced().await;
        self.informers.wait_for_cache_sync().await;
        tracing::info!(
            controller = HPA_CONTROLLER_NAME,
            "caches synced; starting workers"
        );
        let inner = self.inner.clone();
        let i = inner.clone();
        run_workers(
            HPA_CONTROLLER_NAME,
            inner.queue.clone(),
            workers,
            move |key| {
                let i = i.clone();
                async move { i.sync(&key).await }
            },
        )
        .await;
    }
}
