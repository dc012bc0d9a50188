//! The disruption controller: keeps PodDisruptionBudget (policy/v1) status current.
//!
//! For each budget it takes the pods its selector picks in its namespace and computes:
//! - `expectedPods`: the number of pods for an integer `minAvailable`; otherwise the
//!   sum of the scales of the pods' controllers (ReplicationController, Deployment
//!   through its ReplicaSet, ReplicaSet, StatefulSet from the caches, any other kind
//!   through its `/scale` subresource). Pods without a controller count for nothing
//!   there and are reported with an `UnmanagedPods` event;
//! - `desiredHealthy`: `minAvailable` (percentages of `expectedPods` rounded up), or
//!   `expectedPods - maxUnavailable`;
//! - `currentHealthy`: Ready pods not being deleted and not recently evicted;
//! - `disruptedPods`: evictions not yet followed by a deletion, dropped (with a
//!   `NotDeleted` event on the pod) after two minutes;
//! - `disruptionsAllowed` and the `DisruptionAllowed` condition (`SufficientPods`,
//!   `InsufficientPods`, or `SyncFailed` with the error when the status could not be
//!   computed).
//!
//! A second queue clears stale `DisruptionTarget` pod conditions: set True more than
//! two minutes ago on a pod that is neither being deleted nor finished.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    Condition, LabelSelector, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::Client;
use serde_json::json;

use controllers::controller::{run_workers, ControllerContext, ControllerFuture};
use controllers::error::ControllerError;
use controllers::events::{EventRecorder, EventType};
use controllers::informer::{
    object_key, split_key, HandlerRegistration, Informer, InformerFactory, Notification, Store,
};
use controllers::util::{controller_ref, is_pod_ready, pod_key, LabelMatcher};
use controllers::workqueue::WorkQueue;

/// Canonical name of the controller.
pub const DISRUPTION_CONTROLLER_NAME: &str = "disruption-controller";
/// How long an eviction recorded in `disruptedPods` waits for the pod's deletion.
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a `DisruptionTarget` condition may stay on a pod that is not deleted.
pub const STALE_POD_DISRUPTION_TIMEOUT: Duration = Duration::from_secs(120);
/// The PDB condition type.
pub const DISRUPTION_ALLOWED_CONDITION: &str = "DisruptionAllowed";
/// Reason: enough healthy pods for a disruption.
pub const SUFFICIENT_PODS_REASON: &str = "SufficientPods";
/// Reason: not enough healthy pods.
pub const INSUFFICIENT_PODS_REASON: &str = "InsufficientPods";
/// Reason: the status could not be computed.
pub const SYNC_FAILED_REASON: &str = "SyncFailed";
/// The field manager of the stale-condition cleanup.
pub const FIELD_MANAGER: &str = "DisruptionController";

/// Starts the disruption controller.
pub fn start_disruption_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    let c = DisruptionController::new(ctx);
    Ok(Box::pin(c.run()))
}

fn ts_now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

fn to_std(d: jiff::SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

/// Scales `value` (an int, or a percentage of `total` rounded up).
pub fn scaled_value(value: &IntOrString, total: i32) -> Result<i32, String> {
    match value {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct = s
                .strip_suffix('%')
                .and_then(|p| p.parse::<i64>().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let v = (pct * i64::from(total) + 99).div_euclid(100);
            Ok(i32::try_from(v).unwrap_or(i32::MAX))
        }
    }
}

/// The Go rendering of a `*metav1.LabelSelector` (`%v`), as events print it.
pub fn go_selector_string(sel: Option<&LabelSelector>) -> String {
    let Some(sel) = sel else {
        return "nil".into();
    };
    let labels: String = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}: {v},"))
        .collect();
    let exprs: String = sel
        .match_expressions
        .iter()
        .flatten()
        .map(|e| {
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
                e.key,
                e.operator,
                e.values.clone().unwrap_or_default().join(" ")
            )
        })
        .collect();
    format!("&LabelSelector{{MatchLabels:map[string]string{{{labels}}},MatchExpressions:[]LabelSelectorRequirement{{{exprs}}},}}")
}

/// Whether a pod has a `DisruptionTarget` condition that should be cleared, and after
/// how long (zero: now).
pub fn stale_disruption_condition(pod: &Pod, now: jiff::Timestamp) -> Option<Duration> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let cond = status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "DisruptionTarget")?;
    if cond.status != "True" || cond.reason.as_deref() == Some("TerminationByKubelet") {
        return None;
    }
    let since = cond.last_transition_time.as_ref().map_or(now, |t| t.0);
    let age = to_std(now.duration_since(since));
    Some(STALE_POD_DISRUPTION_TIMEOUT.saturating_sub(age))
}

/// Sets a condition as upstream's `meta.SetStatusCondition` does: the transition time
/// changes only with the status.
pub fn set_condition(conds: &mut Vec<Condition>, new: Condition) {
    match conds.iter_mut().find(|c| c.type_ == new.type_) {
        Some(c) => {
            if c.status != new.status {
                c.status = new.status;
                c.last_transition_time = new.last_transition_time;
            }
            c.reason = new.reason;
            c.message = new.message;
            c.observed_generation = new.observed_generation;
        }
        None => conds.push(new),
    }
}

fn condition(status: &str, reason: &str, message: String, generation: Option<i64>) -> Condition {
    Condition {
        type_: DISRUPTION_ALLOWED_CONDITION.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: Time(ts_now()),
    }
}

/// Whether the DisruptionAllowed condition agrees with the status.
fn conditions_up_to_date(pdb: &PodDisruptionBudget) -> bool {
    let Some(status) = pdb.status.as_ref() else {
        return false;
    };
    let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == DISRUPTION_ALLOWED_CONDITION)
    else {
        return false;
    };
    if status.observed_generation != pdb.metadata.generation {
        return false;
    }
    if status.disruptions_allowed > 0 {
        c.status == "True" && c.reason == SUFFICIENT_PODS_REASON
    } else {
        c.status == "False" && c.reason == INSUFFICIENT_PODS_REASON
    }
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

fn verify_group_kind(r: &OwnerReference, kind: &str, groups: &[&str]) -> bool {
    r.kind == kind && groups.contains(&group_of(&r.api_version))
}

struct Inner {
    client: Client,
    pdbs: Store<PodDisruptionBudget>,
    pods: Store<Pod>,
    rcs: Store<ReplicationController>,
    rss: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    statefulsets: Store<StatefulSet>,
    queue: WorkQueue<String>,
    recheck_queue: WorkQueue<String>,
    stale_queue: WorkQueue<String>,
    recorder: EventRecorder,
}

/// The controller's error for a sync that failed.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("{0}")]
    Api(#[from] ControllerError),
    #[error("{0}")]
    Other(String),
}

impl Inner {
    fn pdbs_for_pod(&self, pod: &Pod) -> Vec<Arc<PodDisruptionBudget>> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let labels = pod.metadata.labels.as_ref();
        if labels.is_none_or(|l| l.is_empty()) {
            return Vec::new();
        }
        self.pdbs
            .list_namespace(ns)
            .into_iter()
            .filter(|p| {
                LabelMatcher::from_label_selector(p.spec.as_ref().and_then(|s| s.selector.as_ref()))
                    .is_ok_and(|m| m.matches(labels))
            })
            .collect()
    }

    fn on_pod(&self, n: &Notification<Pod>) {
        let pod = n.object();
        for pdb in self.pdbs_for_pod(pod) {
            self.queue.add(object_key(pdb.as_ref()));
        }
        if let Notification::Updated { old, .. } = n {
            if old.metadata.labels != pod.metadata.labels {
                for pdb in self.pdbs_for_pod(old) {
                    self.queue.add(object_key(pdb.as_ref()));
                }
            }
        }
        if !matches!(n, Notification::Deleted(_)) {
            if let Some(wait) = stale_disruption_condition(pod, ts_now()) {
                self.stale_queue.add_after(pod_key(pod), wait);
            }
        }
    }

    fn selected_pods(&self, pdb: &PodDisruptionBudget) -> Result<Vec<Arc<Pod>>, String> {
        let matcher =
            LabelMatcher::from_label_selector(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()))?;
        let ns = pdb.metadata.namespace.as_deref().unwrap_or("");
        let mut pods: Vec<Arc<Pod>> = self
            .pods
            .list_namespace(ns)
            .into_iter()
            .filter(|p| matcher.matches(p.metadata.labels.as_ref()))
            .collect();
        pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Ok(pods)
    }

    /// The controller's uid and scale of the pod's controller (`None`: not found).
    async fn find_controller(
        &self,
        r: &OwnerReference,
        ns: &str,
    ) -> Result<Option<(String, i32)>, String> {
        let uid_ok = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
                      uid: &str| { meta.uid.as_deref() == Some(uid) };
        // ReplicationController.
        if verify_group_kind(r, "ReplicationController", &[""]) {
            if let Some(rc) = self
                .rcs
                .get_namespaced(ns, &r.name)
                .filter(|rc| uid_ok(&rc.metadata, &r.uid))
            {
                let scale = rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                return Ok(Some((r.uid.clone(), scale)));
            }
        }
        if verify_group_kind(r, "ReplicaSet", &["apps", "extensions"]) {
            if let Some(rs) = self
                .rss
                .get_namespaced(ns, &r.name)
                .filter(|rs| uid_ok(&rs.metadata, &r.uid))
            {
                match controller_ref(&rs.metadata) {
                    // Deployment.
                    Some(d) if d.kind == "Deployment" => {
                        if verify_group_kind(d, "Deployment", &["apps", "extensions"]) {
                            if let Some(dep) = self
                                .deployments
                                .get_namespaced(ns, &d.name)
                                .filter(|dep| uid_ok(&dep.metadata, &d.uid))
                            {
                                let scale = dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                                return Ok(Some((d.uid.clone(), scale)));
                            }
                        }
                    }
                    // ReplicaSet.
                    _ => {
                        let scale = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                        return Ok(Some((r.uid.clone(), scale)));
                    }
                }
            }
        }
        if verify_group_kind(r, "StatefulSet", &["apps"]) {
            if let Some(ss) = self
                .statefulsets
                .get_namespaced(ns, &r.name)
                .filter(|s| uid_ok(&s.metadata, &r.uid))
            {
                let scale = ss.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                return Ok(Some((r.uid.clone(), scale)));
            }
        }
        if matches!(
            (group_of(&r.api_version), r.kind.as_str()),
            ("", "ReplicationController")
                | ("apps" | "extensions", "ReplicaSet" | "Deployment")
                | ("apps", "StatefulSet")
        ) {
            return Ok(None);
        }
        self.scale_controller(r, ns).await
    }

    /// Any other kind: its scale subresource.
    async fn scale_controller(
        &self,
        r: &OwnerReference,
        ns: &str,
    ) -> Result<Option<(String, i32)>, String> {
        let (group, version) = match r.api_version.rsplit_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), r.api_version.clone()),
        };
        let gvk = GroupVersionKind::gvk(&group, &version, &r.kind);
        let (ar, _) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|_| format!("no matches for kind \"{}\" in group \"{group}\"", r.kind))?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &ar);
        match api.get_scale(&r.name).await {
            Ok(scale) => {
                if scale.metadata.uid.as_deref() != Some(r.uid.as_str()) {
                    return Ok(None);
                }
                Ok(Some((
                    r.uid.clone(),
                    scale.spec.and_then(|s| s.replicas).unwrap_or(0),
                )))
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn expected_scale(&self, pods: &[Arc<Pod>]) -> Result<(i32, Vec<String>), String> {
        let mut scales: BTreeMap<String, i32> = BTreeMap::new();
        let mut unmanaged = Vec::new();
        for pod in pods {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let Some(r) = controller_ref(&pod.metadata) else {
                unmanaged.push(name);
                continue;
            };
            if scales.contains_key(&r.uid) {
                continue;
            }
            let ns = pod.metadata.namespace.as_deref().unwrap_or("");
            match self.find_controller(r, ns).await? {
                Some((uid, scale)) => {
                    scales.insert(uid, scale);
                }
                None => return Err(format!("found no controllers for pod \"{name}\"")),
            }
        }
        Ok((scales.values().sum(), unmanaged))
    }

    /// Expected pods, desired healthy, unmanaged pod names.
    async fn expected_pod_count(
        &self,
        pdb: &PodDisruptionBudget,
        pods: &[Arc<Pod>],
    ) -> Result<(i32, i32, Vec<String>), String> {
        let spec = pdb.spec.as_ref();
        if let Some(max) = spec.and_then(|s| s.max_unavailable.as_ref()) {
            let (expected, unmanaged) = self.expected_scale(pods).await?;
            let max = scaled_value(max, expected)?;
            return Ok((expected, (expected - max).max(0), unmanaged));
        }
        match spec.and_then(|s| s.min_available.as_ref()) {
            Some(IntOrString::Int(i)) => Ok((pods.len() as i32, *i, Vec::new())),
            Some(min) => {
                let (expected, unmanaged) = self.expected_scale(pods).await?;
                Ok((expected, scaled_value(min, expected)?, unmanaged))
            }
            None => Ok((0, 0, Vec::new())),
        }
    }

    async fn sync(&self, key: &str) -> Result<(), ControllerError> {
        let Some(pdb) = self.pdbs.get(key) else {
            return Ok(());
        };
        match self.try_sync(&pdb).await {
            Ok(()) => Ok(()),
            Err(SyncError::Api(e)) if e.is_conflict() => Err(e),
            Err(e) => {
                tracing::error!(pdb = %key, error = %e, "failed to sync PDB");
                self.fail_safe(&pdb, &e.to_string()).await
            }
        }
    }

    async fn try_sync(&self, pdb: &PodDisruptionBudget) -> Result<(), SyncError> {
        let pods = match self.selected_pods(pdb) {
            Ok(p) => p,
            Err(e) => {
                self.recorder.event(
                    pdb,
                    EventType::Warning,
                    "NoPods",
                    format!("Failed to get pods: {e}"),
                );
                return Err(SyncError::Other(e));
            }
        };
        if pods.is_empty() {
            self.recorder
                .event(pdb, EventType::Normal, "NoPods", "No matching pods found");
        }
        let (expected, desired, unmanaged) = match self.expected_pod_count(pdb, &pods).await {
            Ok(v) => v,
            Err(e) => {
                self.recorder.event(
                    pdb,
                    EventType::Warning,
                    "CalculateExpectedPodCountFailed",
                    format!("Failed to calculate the number of expected pods: {e}"),
                );
                return Err(SyncError::Other(e));
            }
        };
        if !unmanaged.is_empty() {
            self.recorder.event(
                pdb,
                EventType::Warning,
                "UnmanagedPods",
                format!(
                    "Pods selected by this PodDisruptionBudget (selector: {}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.",
                    go_selector_string(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()))
                ),
            );
        }
        let now = ts_now();
        let (disrupted, recheck) = self.disrupted_pods(pdb, &pods, now);
        let healthy = count_healthy(&pods, &disrupted, now);
        self.update_status(pdb, healthy, desired, expected, disrupted)
            .await?;
        if let Some(at) = recheck {
            self.recheck_queue
                .add_after(object_key(pdb), to_std(at.duration_since(now)));
        }
        Ok(())
    }

    fn disrupted_pods(
        &self,
        pdb: &PodDisruptionBudget,
        pods: &[Arc<Pod>],
        now: jiff::Timestamp,
    ) -> (BTreeMap<String, Time>, Option<jiff::Timestamp>) {
        let mut out = BTreeMap::new();
        let mut recheck: Option<jiff::Timestamp> = None;
        let Some(recorded) = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref()) else {
            return (out, None);
        };
        let timeout = jiff::SignedDuration::try_from(DELETION_TIMEOUT).unwrap_or_default();
        for pod in pods {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let name = pod.metadata.name.clone().unwrap_or_default();
            let Some(at) = recorded.get(&name) else {
                continue;
            };
            let expected_deletion = at.0 + timeout;
            if expected_deletion < now {
                self.recorder.event(
                    pod.as_ref(),
                    EventType::Warning,
                    "NotDeleted",
                    format!(
                        "Pod was expected by PDB {}/{} to be deleted but it wasn't",
                        pdb.metadata.namespace.as_deref().unwrap_or(""),
                        pdb.metadata.name.as_deref().unwrap_or("")
                    ),
                );
            } else {
                if recheck.is_none_or(|r| expected_deletion < r) {
                    recheck = Some(expected_deletion);
                }
                out.insert(name, at.clone());
            }
        }
        (out, recheck)
    }

    async fn update_status(
        &self,
        pdb: &PodDisruptionBudget,
        healthy: i32,
        desired: i32,
        expected: i32,
        disrupted: BTreeMap<String, Time>,
    ) -> Result<(), ControllerError> {
        let mut allowed = healthy - desired;
        if expected <= 0 || allowed <= 0 {
            allowed = 0;
        }
        let old = pdb.status.clone().unwrap_or_default();
        let old_disrupted = old.disrupted_pods.clone().unwrap_or_default();
        if old.current_healthy == healthy
            && old.desired_healthy == desired
            && old.expected_pods == expected
            && old.disruptions_allowed == allowed
            && old_disrupted == disrupted
            && old.observed_generation == pdb.metadata.generation
            && conditions_up_to_date(pdb)
        {
            return Ok(());
        }
        let mut conditions = old.conditions.unwrap_or_default();
        let generation = pdb.metadata.generation;
        let c = if allowed > 0 {
            condition("True", SUFFICIENT_PODS_REASON, String::new(), generation)
        } else {
            condition("False", INSUFFICIENT_PODS_REASON, String::new(), generation)
        };
        set_condition(&mut conditions, c);
        let mut new = pdb.clone();
        new.status = Some(PodDisruptionBudgetStatus {
            current_healthy: healthy,
            desired_healthy: desired,
            expected_pods: expected,
            disruptions_allowed: allowed,
            disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
            observed_generation: generation,
            conditions: Some(conditions),
        });
        self.write_status(&new).await
    }

    async fn fail_safe(&self, pdb: &PodDisruptionBudget, err: &str) -> Result<(), ControllerError> {
        let mut new = pdb.clone();
        let mut status = new.status.take().unwrap_or_default();
        status.disruptions_allowed = 0;
        let mut conditions = status.conditions.take().unwrap_or_default();
        set_condition(
            &mut conditions,
            condition(
                "False",
                SYNC_FAILED_REASON,
                err.to_string(),
                status.observed_generation,
            ),
        );
        status.conditions = Some(conditions);
        new.status = Some(status);
        self.write_status(&new).await
    }

    async fn write_status(&self, pdb: &PodDisruptionBudget) -> Result<(), ControllerError> {
        let ns = pdb.metadata.namespace.as_deref().unwrap_or("");
        let name = pdb.metadata.name.as_deref().unwrap_or("");
        let api: Api<PodDisruptionBudget> = Api::namespaced(self.client.clone(), ns);
        api.replace_status(name, &PostParams::default(), pdb)
            .await?;
        Ok(())
    }

    async fn sync_stale_pod(&self, key: &str) -> Result<(), ControllerError> {
        let Some(pod) = self.pods.get(key) else {
            return Ok(());
        };
        let Some(wait) = stale_disruption_condition(&pod, ts_now()) else {
            return Ok(());
        };
        if !wait.is_zero() {
            self.stale_queue.add_after(key.to_string(), wait);
            return Ok(());
        }
        let (ns, name) = split_key(key);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let apply = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": pod.metadata.resource_version},
            "status": {"conditions": [{
                "type": "DisruptionTarget",
                "status": "False",
                "lastTransitionTime": ts_now().to_string(),
            }]},
        });
        api.patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(apply),
        )
        .await?;
        Ok(())
    }
}

fn count_healthy(
    pods: &[Arc<Pod>],
    disrupted: &BTreeMap<String, Time>,
    now: jiff::Timestamp,
) -> i32 {
    let timeout = jiff::SignedDuration::try_from(DELETION_TIMEOUT).unwrap_or_default();
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let name = p.metadata.name.as_deref().unwrap_or("");
            disrupted.get(name).is_none_or(|t| t.0 + timeout <= now)
        })
        .filter(|p| is_pod_ready(p))
        .count() as i32
}

/// The disruption controller.
pub struct DisruptionController {
    inner: Arc<Inner>,
    informers: InformerFactory,
    pdb_informer: Informer<PodDisruptionBudget>,
    _registrations: Vec<HandlerRegistration>,
}

impl DisruptionController {
    /// Builds the controller on the context's shared informers and subscribes to them.
    pub fn new(ctx: &ControllerContext) -> Self {
        let pdb_informer = ctx.informers.informer::<PodDisruptionBudget>();
        let pod_informer = ctx.informers.informer::<Pod>();
        let inner = Arc::new(Inner {
            client: ctx.client.clone(),
            pdbs: pdb_informer.store(),
            pods: pod_informer.store(),
            rcs: ctx.informers.informer::<ReplicationController>().store(),
            rss: ctx.informers.informer::<ReplicaSet>().store(),
            deployments: ctx.informers.informer::<Deployment>().store(),
            statefulsets: ctx.informers.informer::<StatefulSet>().store(),
            queue: WorkQueue::new("disruption"),
            recheck_queue: WorkQueue::new("disruption_recheck"),
            stale_queue: WorkQueue::new("stale_pod_disruption"),
            recorder: ctx.events.recorder("controllermanager"),
        });
        let q = inner.queue.clone();
        let pdb_reg = pdb_informer.add_handler(move |n| q.add(object_key(n.object().as_ref())));
        let i = inner.clone();
        let pod_reg = pod_informer.add_handler(move |n| i.on_pod(n));
        DisruptionController {
            inner,
            informers: ctx.informers.clone(),
            pdb_informer,
            _registrations: vec![pdb_reg, pod_reg],
        }
    }

    /// Syncs one budget now (for tests and tools).
    pub async fn sync(&self, key: &str) -> Result<(), ControllerError> {
        self.inner.sync(key).await
    }

    /// Starts the informers, waits for their caches, and runs the workers until the
    /// future is dropped.
    pub async fn run(self) {
        self.informers.start();
        self.pdb_informer.wait_synced().await;
        self.informers.wait_for_cache_sync().await;
        tracing::info!(
            controller = DISRUPTION_CONTROLLER_NAME,
            "caches synced; starting workers"
        );
        let inner = self.inner.clone();
        // Rechecks feed the main queue.
        let recheck = {
            let inner = inner.clone();
            async move {
                while let Some(key) = inner.recheck_queue.get().await {
                    inner.queue.add(key.clone());
                    inner.recheck_queue.done(&key);
                }
            }
        };
        let i = inner.clone();
        let main = run_workers(
            DISRUPTION_CONTROLLER_NAME,
            inner.queue.clone(),
            1,
            move |key| {
                let i = i.clone();
                async move { i.sync(&key).await }
            },
        );
        let i = inner.clone();
        let stale = run_workers(
            "stale-pod-disruption",
            inner.stale_queue.clone(),
            1,
            move |key| {
                let i = i.clone();
                async move { i.sync_stale_pod(&key).await }
            },
        );
        tokio::join!(main, stale, recheck);
        let _keep = self;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled_value(&IntOrString::String("50%".into()), 3), Ok(2));
        assert_eq!(scaled_value(&IntOrString::String("34%".into()), 3), Ok(2));
        assert_eq!(scaled_value(&IntOrString::String("0%".into()), 3), Ok(0));
        assert_eq!(scaled_value(&IntOrString::Int(2), 10), Ok(2));
        assert!(scaled_value(&IntOrString::String("x".into()), 3).is_err());
    }

    #[test]
    fn selector_prints_like_go() {
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["a".into(), "b".into()]),
            }]),
        };
        assert_eq!(
            go_selector_string(Some(&sel)),
            "&LabelSelector{MatchLabels:map[string]string{app: web,},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:tier,Operator:In,Values:[a b],},},}"
        );
    }

    #[test]
    fn stale_conditions() {
        let now: jiff::Timestamp = "2025-01-01T00:10:00Z".parse().unwrap();
        let pod = |status: &str, at: &str, reason: Option<&str>| Pod {
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "DisruptionTarget".into(),
                    status: status.into(),
                    reason: reason.map(str::to_string),
                    last_transition_time: Some(Time(at.parse().unwrap())),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            stale_disruption_condition(&pod("True", "2025-01-01T00:00:00Z", None), now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            stale_disruption_condition(&pod("True", "2025-01-01T00:09:30Z", None), now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            stale_disruption_condition(&pod("False", "2025-01-01T00:00:00Z", None), now),
            None
        );
        assert_eq!(
            stale_disruption_condition(
                &pod("True", "2025-01-01T00:00:00Z", Some("TerminationByKubelet")),
                now
            ),
            None
        );
    }

    #[test]
    fn condition_transition_time_moves_with_status() {
        let t0 = Time("2025-01-01T00:00:00Z".parse().unwrap());
        let mut conds = vec![Condition {
            type_: DISRUPTION_ALLOWED_CONDITION.into(),
            status: "True".into(),
            reason: SUFFICIENT_PODS_REASON.into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: t0.clone(),
        }];
        let mut c = condition("True", SUFFICIENT_PODS_REASON, String::new(), Some(2));
        set_condition(&mut conds, c.clone());
        assert_eq!(conds[0].last_transition_time, t0);
        assert_eq!(conds[0].observed_generation, Some(2));
        c.status = "False".into();
        c.reason = INSUFFICIENT_PODS_REASON.into();
        set_condition(&mut conds, c);
        assert_ne!(conds[0].last_transition_time, t0);
        assert_eq!(conds[0].reason, INSUFFICIENT_PODS_REASON);
    }
}
