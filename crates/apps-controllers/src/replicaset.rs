//! The ReplicaSet (apps/v1) and ReplicationController (core/v1) controllers: one
//! implementation, generic over [`ReplicaSetLike`], as upstream runs the same code for
//! both.
//!
//! A sync of one set:
//! 1. takes its active pods (not finished, not being deleted) from the pod cache:
//!    those it controls plus orphans in its namespace;
//! 2. claims them: adopts orphans matching the selector (patching in a controller
//!    reference, only while the set is not being deleted, after a fresh read of the
//!    set), releases owned pods that no longer match;
//! 3. if no creations or deletions are still in flight (expectations), creates the
//!    missing pods in slow-start batches of 1, 2, 4, … (stopping at the first error)
//!    or deletes the surplus in [`ranking`](controllers::ranking) order, at most 500 per
//!    sync;
//! 4. writes status (replicas, fullyLabeledReplicas, readyReplicas,
//!    availableReplicas, observedGeneration, the ReplicaFailure condition) through the
//!    status subresource when it changed, and re-queues after minReadySeconds while
//!    ready pods are not yet available.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{
    Pod, PodTemplateSpec, ReplicationController, ReplicationControllerCondition,
    ReplicationControllerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use kube::core::NamespaceResourceScope;
use kube::{Client, Resource};
use serde::Serialize;

use controllers::controller::{ControllerContext, ControllerFuture};
use controllers::error::ControllerError;
use controllers::expectations::Expectations;
use controllers::informer::{
    controller_uid_index_values, orphan_index_value, HandlerRegistration, Informer,
    InformerFactory, Object, Store, CONTROLLER_UID_INDEX,
};
use controllers::podcontrol::{PodControl, NAMESPACE_TERMINATING_CAUSE};
use controllers::ranking::pods_to_delete;
use controllers::util::{
    controller_ref, is_pod_active, is_pod_available, is_pod_ready, new_controller_ref, pod_key,
    LabelMatcher,
};
use controllers::workqueue::WorkQueue;

use crate::owner::{
    claim_candidates, claim_pods, run_synced, watch_sets_and_pods, PodOwnerHandlers,
    TerminatingPods,
};

/// Canonical name of the ReplicaSet controller.
pub const REPLICASET_CONTROLLER_NAME: &str = "replicaset-controller";
/// Canonical name of the ReplicationController controller.
pub const REPLICATION_CONTROLLER_NAME: &str = "replicationcontroller-controller";
/// At most this many pods are created or deleted in one sync.
pub const BURST_REPLICAS: usize = 500;
/// The first slow-start batch size.
pub const SLOW_START_INITIAL_BATCH_SIZE: usize = 1;
/// The status condition type set when pods cannot be created or deleted.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
/// Extra status write attempts (after a fresh read) when the first one fails.
const STATUS_UPDATE_RETRIES: usize = 1;

/// What the controller needs from a ReplicaSet-like kind. Status is handled in the
/// apps/v1 ReplicaSetStatus form (ReplicationController converts).
pub trait ReplicaSetLike: Object + Serialize + Resource<Scope = NamespaceResourceScope> {
    /// Canonical controller name (logs, `--controllers`).
    const CONTROLLER_NAME: &'static str;
    /// The `source.component` of its events.
    const EVENT_COMPONENT: &'static str;
    /// Name of its work queue.
    const QUEUE_NAME: &'static str;

    /// `spec.replicas` (defaults to 1).
    fn desired_replicas(&self) -> i32;
    /// `spec.minReadySeconds`.
    fn min_ready_seconds(&self) -> i32;
    /// The pod selector.
    fn pod_selector(&self) -> Result<LabelMatcher, String>;
    /// The pod template.
    fn pod_template(&self) -> Option<&PodTemplateSpec>;
    /// The status, in ReplicaSet form.
    fn replica_status(&self) -> ReplicaSetStatus;
    /// Replaces the status, given in ReplicaSet form.
    fn set_replica_status(&mut self, status: ReplicaSetStatus);
}

/// The accessors written the same for both kinds: `ReplicaSetSpec` and
/// `ReplicationControllerSpec` name these fields alike.
macro_rules! shared_spec_accessors {
    () => {
        fn desired_replicas(&self) -> i32 {
            self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
        }

        fn min_ready_seconds(&self) -> i32 {
            self.spec
                .as_ref()
                .and_then(|s| s.min_ready_seconds)
                .unwrap_or(0)
        }

        fn pod_template(&self) -> Option<&PodTemplateSpec> {
            self.spec.as_ref()?.template.as_ref()
        }
    };
}

/// Converts a status between the ReplicaSet and ReplicationController forms: the two
/// status types, and their condition types, share these fields name for name. The
/// optional `..rest` fills the fields only the target type has.
macro_rules! convert_status {
    ($from:expr, $status:ident, $condition:ident $(, ..$rest:expr)?) => {{
        let s = $from;
        $status {
            available_replicas: s.available_replicas,
            conditions: s.conditions.map(|cs| {
                cs.into_iter()
                    .map(|c| $condition {
                        last_transition_time: c.last_transition_time,
                        message: c.message,
                        reason: c.reason,
                        status: c.status,
                        type_: c.type_,
                    })
                    .collect()
            }),
            fully_labeled_replicas: s.fully_labeled_replicas,
            observed_generation: s.observed_generation,
            ready_replicas: s.ready_replicas,
            replicas: s.replicas,
            $(..$rest)?
        }
    }};
}

impl ReplicaSetLike for ReplicaSet {
    const CONTROLLER_NAME: &'static str = REPLICASET_CONTROLLER_NAME;
    const EVENT_COMPONENT: &'static str = "replicaset-controller";
    const QUEUE_NAME: &'static str = "replicaset";

    shared_spec_accessors!();

    fn pod_selector(&self) -> Result<LabelMatcher, String> {
        LabelMatcher::from_label_selector(self.spec.as_ref().map(|s| &s.selector))
    }

    fn replica_status(&self) -> ReplicaSetStatus {
        self.status.clone().unwrap_or_default()
    }

    fn set_replica_status(&mut self, status: ReplicaSetStatus) {
        self.status = Some(status);
    }
}

impl ReplicaSetLike for ReplicationController {
    const CONTROLLER_NAME: &'static str = REPLICATION_CONTROLLER_NAME;
    const EVENT_COMPONENT: &'static str = "replication-controller";
    const QUEUE_NAME: &'static str = "replicationmanager";

    shared_spec_accessors!();

    fn pod_selector(&self) -> Result<LabelMatcher, String> {
        Ok(LabelMatcher::from_map(
            self.spec.as_ref().and_then(|s| s.selector.as_ref()),
        ))
    }

    fn replica_status(&self) -> ReplicaSetStatus {
        convert_status!(
            self.status.clone().unwrap_or_default(),
            ReplicaSetStatus,
            ReplicaSetCondition,
            ..Default::default()
        )
    }

    fn set_replica_status(&mut self, s: ReplicaSetStatus) {
        self.status = Some(convert_status!(
            s,
            ReplicationControllerStatus,
            ReplicationControllerCondition
        ));
    }
}

/// Starts the ReplicaSet controller with `--concurrent-replicaset-syncs` workers.
pub fn start_replicaset_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    let workers = usize::try_from(ctx.config.concurrent_replicaset_syncs).unwrap_or(1);
    let c = ReplicaSetController::<ReplicaSet>::new(ctx);
    Ok(Box::pin(c.run(workers)))
}

/// Starts the ReplicationController controller with `--concurrent-rc-syncs` workers.
pub fn start_replication_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    let workers = usize::try_from(ctx.config.concurrent_rc_syncs).unwrap_or(1);
    let c = ReplicaSetController::<ReplicationController>::new(ctx);
    Ok(Box::pin(c.run(workers)))
}

struct Inner<K> {
    client: Client,
    sets: Store<K>,
    pods: Store<Pod>,
    queue: WorkQueue<String>,
    expectations: Arc<Expectations>,
    pod_control: PodControl,
    burst_replicas: usize,
}

/// The ReplicaSet controller over the kind `K` (ReplicaSet or ReplicationController).
pub struct ReplicaSetController<K> {
    inner: Arc<Inner<K>>,
    informers: InformerFactory,
    set_informer: Informer<K>,
    pod_informer: Informer<Pod>,
    registrations: Vec<HandlerRegistration>,
}

impl<K: ReplicaSetLike> ReplicaSetController<K> {
    /// Builds the controller on the context's shared informers and subscribes to them.
    pub fn new(ctx: &ControllerContext) -> Self {
        let set_informer = ctx.informers.informer::<K>();
        let pod_informer = ctx.informers.informer::<Pod>();
        set_informer.add_index(CONTROLLER_UID_INDEX, controller_uid_index_values::<K>);
        pod_informer.add_index(CONTROLLER_UID_INDEX, controller_uid_index_values::<Pod>);
        let queue = WorkQueue::new(K::QUEUE_NAME);
        let expectations = Arc::new(Expectations::new());
        let recorder = ctx.events.recorder(K::EVENT_COMPONENT);
        let inner = Arc::new(Inner {
            client: ctx.client.clone(),
            sets: set_informer.store(),
            pods: pod_informer.store(),
            queue: queue.clone(),
            expectations: expectations.clone(),
            pod_control: PodControl::new(ctx.client.clone(), recorder),
            burst_replicas: BURST_REPLICAS,
        });
        let handlers = Arc::new(PodOwnerHandlers {
            sets: set_informer.store(),
            queue,
            expectations: Some(expectations),
            selector: K::pod_selector,
            min_ready_seconds: K::min_ready_seconds,
            terminating: TerminatingPods::DeletionWithOldLabels,
        });
        let registrations = watch_sets_and_pods(&handlers, &set_informer, &pod_informer);
        ReplicaSetController {
            inner,
            informers: ctx.informers.clone(),
            set_informer,
            pod_informer,
            registrations,
        }
    }

    /// The controller's work queue (keys are `namespace/name`).
    pub fn queue(&self) -> WorkQueue<String> {
        self.inner.queue.clone()
    }

    /// Syncs one set now (for tests and tools; workers do this on their own).
    pub async fn sync(&self, key: &str) -> Result<(), ControllerError> {
        self.inner.sync(key).await
    }

    /// Starts the informers, waits for their caches, and runs `workers` workers until
    /// the future is dropped.
    pub async fn run(self, workers: usize) {
        self.informers.start();
        tokio::join!(
            self.set_informer.wait_synced(),
            self.pod_informer.wait_synced()
        );
        let queue = self.inner.queue.clone();
        run_synced(
            K::CONTROLLER_NAME,
            workers,
            self.registrations,
            self.inner,
            queue,
            |inner, key| async move { inner.sync(&key).await },
        )
        .await;
    }
}

/// Runs `f` `count` times in batches of `initial`, 2×, 4×, …, each batch concurrently,
/// stopping after a batch with a failure. Returns the successes and the first error.
pub async fn slow_start_batch<F, Fut>(
    count: usize,
    initial: usize,
    f: F,
) -> (usize, Option<ControllerError>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), ControllerError>>,
{
    let mut remaining = count;
    let mut successes = 0;
    let mut batch = remaining.min(initial.max(1));
    while batch > 0 {
        let results = futures::future::join_all((0..batch).map(|_| f())).await;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(()) => successes += 1,
                Err(e) => {
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
        }
        if first_err.is_some() {
            return (successes, first_err);
        }
        remaining -= batch;
        batch = (2 * batch).min(remaining);
    }
    (successes, None)
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn non_zero(n: usize) -> Option<i32> {
    (n > 0).then(|| count(n))
}

/// The status a set should have given its claimed active pods.
pub fn calculate_status<K: ReplicaSetLike>(
    set: &K,
    active: &[Arc<Pod>],
    manage_error: Option<&ControllerError>,
    now: jiff::Timestamp,
) -> ReplicaSetStatus {
    let mut status = set.replica_status();
    let template_labels = set
        .pod_template()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let template_matcher = LabelMatcher::from_map(Some(&template_labels));
    let min_ready = set.min_ready_seconds();
    let (mut fully_labeled, mut ready, mut available) = (0, 0, 0);
    for pod in active {
        if template_matcher.matches(pod.metadata.labels.as_ref()) {
            fully_labeled += 1;
        }
        if is_pod_ready(pod) {
            ready += 1;
            if is_pod_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }

    let has_failure = status
        .conditions
        .as_ref()
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == REPLICA_FAILURE));
    match manage_error {
        Some(err) if !has_failure => {
            let diff =
                i64::try_from(active.len()).unwrap_or(i64::MAX) - i64::from(set.desired_replicas());
            let reason = match diff.cmp(&0) {
                std::cmp::Ordering::Less => "FailedCreate",
                std::cmp::Ordering::Greater => "FailedDelete",
                std::cmp::Ordering::Equal => "",
            };
            let mut conditions: Vec<ReplicaSetCondition> =
                status.conditions.take().unwrap_or_default();
            conditions.push(ReplicaSetCondition {
                type_: REPLICA_FAILURE.to_string(),
                status: "True".to_string(),
                last_transition_time: Some(Time(now)),
                reason: Some(reason.to_string()),
                message: Some(err.to_string()),
            });
            status.conditions = Some(conditions);
        }
        None if has_failure => {
            let rest: Vec<ReplicaSetCondition> = status
                .conditions
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.type_ != REPLICA_FAILURE)
                .collect();
            status.conditions = (!rest.is_empty()).then_some(rest);
        }
        _ => {}
    }

    status.replicas = count(active.len());
    status.fully_labeled_replicas = non_zero(fully_labeled);
    status.ready_replicas = non_zero(ready);
    status.available_replicas = non_zero(available);
    status
}

fn same_status(a: &ReplicaSetStatus, b: &ReplicaSetStatus) -> bool {
    let conds = |s: &ReplicaSetStatus| s.conditions.clone().unwrap_or_default();
    a.replicas == b.replicas
        && a.fully_labeled_replicas.unwrap_or(0) == b.fully_labeled_replicas.unwrap_or(0)
        && a.ready_replicas.unwrap_or(0) == b.ready_replicas.unwrap_or(0)
        && a.available_replicas.unwrap_or(0) == b.available_replicas.unwrap_or(0)
        && conds(a) == conds(b)
}

fn name_of<K: Resource>(set: &K) -> (String, String) {
    (
        set.meta().namespace.clone().unwrap_or_default(),
        set.meta().name.clone().unwrap_or_default(),
    )
}

impl<K: ReplicaSetLike> Inner<K> {
    async fn sync(&self, key: &str) -> Result<(), ControllerError> {
        let started = std::time::Instant::now();
        let result = self.sync_inner(key).await;
        tracing::debug!(controller = K::CONTROLLER_NAME, key, elapsed = ?started.elapsed(), "finished syncing");
        result
    }

    async fn sync_inner(&self, key: &str) -> Result<(), ControllerError> {
        let Some(set) = self.sets.get(key) else {
            tracing::debug!(controller = K::CONTROLLER_NAME, key, "deleted");
            self.expectations.delete(key);
            return Ok(());
        };
        let needs_sync = self.expectations.satisfied(key);
        let selector = match set.pod_selector() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(controller = K::CONTROLLER_NAME, key, error = %e, "error converting pod selector to selector");
                return Ok(());
            }
        };
        let mut candidates = claim_candidates(&self.pods, set.as_ref());
        candidates.retain(|p| is_pod_active(p));

        let active = claim_pods(
            &self.client,
            &self.pod_control,
            set.as_ref(),
            &selector,
            candidates,
            K::CONTROLLER_NAME,
        )
        .await?;

        let manage_error = if needs_sync && set.meta().deletion_timestamp.is_none() {
            self.manage_replicas(&active, &set, key).await.err()
        } else {
            None
        };

        let status = calculate_status(
            set.as_ref(),
            &active,
            manage_error.as_ref(),
            jiff::Timestamp::now(),
        );
        let updated = self.update_status(&set, status).await?;

        let min_ready = updated.min_ready_seconds();
        let st = updated.replica_status();
        let desired = updated.desired_replicas();
        if manage_error.is_none()
            && min_ready > 0
            && st.ready_replicas.unwrap_or(0) == desired
            && st.available_replicas.unwrap_or(0) != desired
        {
            self.queue.add_after(
                key.to_string(),
                Duration::from_secs(u64::try_from(min_ready).unwrap_or(0)),
            );
        }
        match manage_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Pods of the sets that share this set's controller (e.g. the ReplicaSets of one
    /// Deployment), for ranking colocated pods: each sibling's pods matching its
    /// selector, looked up through the controller index (pods it controls, and
    /// orphans) rather than by scanning the namespace.
    fn related_pods(&self, set: &K) -> Vec<Arc<Pod>> {
        let Some(owner) = controller_ref(set.meta()) else {
            return Vec::new();
        };
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for sibling in self.sets.by_index(CONTROLLER_UID_INDEX, &owner.uid) {
            let Ok(sel) = sibling.pod_selector() else {
                continue;
            };
            let ns = sibling.meta().namespace.clone().unwrap_or_default();
            let sibling_uid = sibling.meta().uid.clone().unwrap_or_default();
            let owned = self.pods.by_index(CONTROLLER_UID_INDEX, &sibling_uid);
            let orphans = self
                .pods
                .by_index(CONTROLLER_UID_INDEX, &orphan_index_value(&ns));
            for pod in owned.into_iter().chain(orphans) {
                if pod.metadata.namespace.as_deref() == Some(ns.as_str())
                    && sel.matches(pod.metadata.labels.as_ref())
                    && seen.insert(pod.metadata.uid.clone())
                {
                    out.push(pod);
                }
            }
        }
        out
    }

    async fn manage_replicas(
        &self,
        active: &[Arc<Pod>],
        set: &Arc<K>,
        key: &str,
    ) -> Result<(), ControllerError> {
        let desired = i64::from(set.desired_replicas());
        let diff = i64::try_from(active.len()).unwrap_or(i64::MAX) - desired;
        let (namespace, _) = name_of(set.as_ref());
        if diff < 0 {
            let wanted = usize::try_from(-diff)
                .unwrap_or(usize::MAX)
                .min(self.burst_replicas);
            self.expectations.expect_creations(key, wanted);
            tracing::debug!(
                controller = K::CONTROLLER_NAME,
                key,
                need = desired,
                creating = wanted,
                "too few replicas"
            );
            let template = set.pod_template().cloned().unwrap_or_default();
            let cref = new_controller_ref(set.as_ref());
            let (successes, err) = slow_start_batch(wanted, SLOW_START_INITIAL_BATCH_SIZE, || {
                let template = &template;
                let cref = cref.clone();
                let namespace = namespace.as_str();
                async move {
                    match self
                        .pod_control
                        .create_pod(namespace, template, set.as_ref(), cref)
                        .await
                    {
                        Ok(_) => Ok(()),
                        // Every create fails while the namespace is being deleted.
                        Err(e) if e.has_status_cause(NAMESPACE_TERMINATING_CAUSE) => Ok(()),
                        Err(e) => Err(e),
                    }
                }
            })
            .await;
            let skipped = wanted - successes;
            if skipped > 0 {
                tracing::debug!(
                    controller = K::CONTROLLER_NAME,
                    key,
                    skipped,
                    "slow-start failure; skipping creation of pods"
                );
                for _ in 0..skipped {
                    self.expectations.creation_observed(key);
                }
            }
            return err.map_or(Ok(()), Err);
        }
        if diff > 0 {
            let surplus = usize::try_from(diff)
                .unwrap_or(usize::MAX)
                .min(self.burst_replicas);
            tracing::debug!(
                controller = K::CONTROLLER_NAME,
                key,
                need = desired,
                deleting = surplus,
                "too many replicas"
            );
            let related = self.related_pods(set.as_ref());
            let victims = pods_to_delete(active, &related, surplus, jiff::Timestamp::now());
            self.expectations
                .expect_deletions(key, victims.iter().map(|p| pod_key(p)).collect());
            let deletions = victims.iter().map(|pod| {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let namespace = namespace.clone();
                async move {
                    match self
                        .pod_control
                        .delete_pod(&namespace, &name, set.as_ref())
                        .await
                    {
                        Ok(()) => None,
                        Err(e) => {
                            self.expectations.deletion_observed(key, &pod_key(pod));
                            (!e.is_not_found()).then_some(e)
                        }
                    }
                }
            });
            let errors = futures::future::join_all(deletions).await;
            if let Some(e) = errors.into_iter().flatten().next() {
                return Err(e);
            }
        }
        Ok(())
    }

    async fn update_status(
        &self,
        set: &Arc<K>,
        mut status: ReplicaSetStatus,
    ) -> Result<K, ControllerError> {
        let current = set.replica_status();
        let generation = set.meta().generation.unwrap_or(0);
        if same_status(&current, &status) && generation == current.observed_generation.unwrap_or(0)
        {
            return Ok(set.as_ref().clone());
        }
        status.observed_generation = set.meta().generation;
        let (namespace, name) = name_of(set.as_ref());
        let api: Api<K> = Api::namespaced(self.client.clone(), &namespace);
        let mut obj = set.as_ref().clone();
        let mut attempt = 0;
        loop {
            obj.set_replica_status(status.clone());
            match api
                .replace_status(&name, &PostParams::default(), &obj)
                .await
            {
                Ok(updated) => return Ok(updated),
                Err(e) => {
                    if attempt >= STATUS_UPDATE_RETRIES {
                        return Err(e.into());
                    }
                    attempt += 1;
                    obj = api.get(&name).await?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("rs-uid".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: Some(min_ready),
                selector: LabelSelector {
                    match_labels: Some(labels(&[("app", "web")])),
                    ..Default::default()
                },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels(&[("app", "web"), ("tier", "fe")])),
                        ..Default::default()
                    }),
                    spec: None,
                }),
            }),
            status: None,
        }
    }

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn pod(l: &[(&str, &str)], ready_since: Option<i64>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                labels: Some(labels(l)),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                conditions: ready_since.map(|s| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(ts(s))),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn status_counts() {
        let set = rs(4, 10);
        let pods = vec![
            pod(&[("app", "web"), ("tier", "fe")], Some(0)),
            pod(&[("app", "web"), ("tier", "fe")], Some(95)),
            pod(&[("app", "web")], None),
        ];
        let st = calculate_status(&set, &pods, None, ts(100));
        assert_eq!(st.replicas, 3);
        assert_eq!(st.fully_labeled_replicas, Some(2));
        assert_eq!(st.ready_replicas, Some(2));
        assert_eq!(st.available_replicas, Some(1));
        assert!(st.conditions.is_none());
    }

    #[test]
    fn replica_failure_condition_set_and_cleared() {
        let mut set = rs(3, 0);
        let err = ControllerError::Other("pods \"web-x\" is forbidden: exceeded quota".into());
        let st = calculate_status(&set, &[], Some(&err), ts(5));
        let conds = st.conditions.clone().unwrap();
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].type_, "ReplicaFailure");
        assert_eq!(conds[0].status, "True");
        assert_eq!(conds[0].reason.as_deref(), Some("FailedCreate"));
        assert_eq!(
            conds[0].message.as_deref(),
            Some("pods \"web-x\" is forbidden: exceeded quota")
        );
        assert_eq!(conds[0].last_transition_time, Some(Time(ts(5))));
        set.status = Some(st);
        // Still failing: the condition is kept as it was.
        let again = calculate_status(
            &set,
            &[],
            Some(&ControllerError::Other("other".into())),
            ts(9),
        );
        assert_eq!(
            again.conditions.unwrap()[0].last_transition_time,
            Some(Time(ts(5)))
        );
        // Success removes it.
        let ok = calculate_status(&set, &[], None, ts(10));
        assert!(ok.conditions.is_none());
    }

    #[test]
    fn rc_status_round_trips() {
        let mut rc = ReplicationController::default();
        let st = ReplicaSetStatus {
            replicas: 2,
            ready_replicas: Some(1),
            observed_generation: Some(4),
            conditions: Some(vec![ReplicaSetCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some("FailedDelete".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        rc.set_replica_status(st.clone());
        assert_eq!(
            rc.status.as_ref().unwrap().conditions.as_ref().unwrap()[0]
                .reason
                .as_deref(),
            Some("FailedDelete")
        );
        assert_eq!(rc.replica_status(), st);
        assert_eq!(rc.desired_replicas(), 1, "replicas default to 1");
    }

    #[tokio::test]
    async fn slow_start_batches_double_and_stop_on_error() {
        let calls = AtomicUsize::new(0);
        let (ok, err) = slow_start_batch(300, 1, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        })
        .await;
        assert_eq!((ok, err.is_none()), (300, true));
        assert_eq!(calls.load(Ordering::SeqCst), 300);

        // Fail from the 4th call on: batches 1, 2 succeed; the batch of 4 has 1 success.
        let calls = AtomicUsize::new(0);
        let (ok, err) = slow_start_batch(100, 1, || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n >= 4 {
                    Err(ControllerError::Other("quota".into()))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert_eq!(ok, 4);
        assert_eq!(err.unwrap().to_string(), "quota");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            7,
            "stops after the failing batch"
        );
    }
}
