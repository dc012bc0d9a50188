//! The StatefulSet controller: pods with stable names `<set>-<ordinal>`, stable
//! storage, and ordered creation, deletion and update.
//!
//! A sync of one StatefulSet:
//! 1. claims its ControllerRevisions (adopting orphans matching the selector) and its
//!    pods (members by name, matching the selector);
//! 2. finds the update revision (the one whose payload equals the current template:
//!    the newest, an older one renumbered to be newest — a rollback — or a new one
//!    named `<set>-<hash>`) and the current revision (`status.currentRevision`);
//! 3. sorts pods into replicas (ordinals in `[start, start+replicas)`) and condemned
//!    ones; per replica in ordinal order: deletes a failed or succeeded pod (to
//!    recreate it), creates a missing pod at its revision after creating its
//!    PersistentVolumeClaims, and — under `OrderedReady` — stops at the first pod that
//!    is not Running, Ready and available; fixes identity and claim ownership;
//! 4. deletes condemned pods from the highest ordinal down (one at a time, after all
//!    replicas are healthy, under `OrderedReady`);
//! 5. under RollingUpdate, deletes the highest-ordinal pod at or above the partition
//!    not at the update revision, once all pods above it are healthy;
//! 6. writes status (replicas, ready, available, current and updated counts, the
//!    revisions, collisionCount, observedGeneration), completing a rolling update
//!    when every pod is updated and ready; deletes unused revisions beyond
//!    revisionHistoryLimit.

pub mod util;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use kube::api::{Api, DeleteParams, PostParams};
use kube::Client;

use controllers::controller::{ControllerContext, ControllerFuture};
use controllers::error::ControllerError;
use controllers::events::{EventRecorder, EventType};
use controllers::informer::{
    controller_uid_index_values, HandlerRegistration, Informer, InformerFactory, Store,
    CONTROLLER_UID_INDEX,
};
use controllers::podcontrol::PodControl;
use controllers::util::LabelMatcher;
use controllers::workqueue::WorkQueue;

use crate::history::{
    find_equal_revisions, new_revision, next_revision, sort_revisions, template_from_revision,
    template_patch_value, RevisionClient,
};
use crate::owner::{
    claim_candidates, run_synced, watch_sets_and_pods, PodOwnerHandlers, TerminatingPods,
};
use util::{
    allows_burst, claim_is_stale, claim_owner_up_to_date, count_status, identity_matches,
    is_failed, is_healthy, is_member_of, is_pending, is_running_and_available,
    is_running_and_ready, is_succeeded, is_terminating, min_ready_seconds, new_stateful_set_pod,
    ordinal, partition, persistent_volume_claims, pod_in_ordinal_range, pod_revision, replicas,
    set_pod_revision, start_ordinal, storage_matches, strategy_type, update_claim_owner_refs,
    update_identity, update_storage, uses_current_revision, Replica,
};

/// Canonical name of the StatefulSet controller.
pub const STATEFULSET_CONTROLLER_NAME: &str = "statefulset-controller";
/// The `source.component` of its events.
pub const EVENT_COMPONENT: &str = "statefulset-controller";
/// Name of its work queue.
pub const QUEUE_NAME: &str = "statefulset";
/// Attempts of a status write (re-reading the set from the cache in between).
const STATUS_UPDATE_ATTEMPTS: usize = 5;

/// Starts the StatefulSet controller with `--concurrent-statefulset-syncs` workers.
pub fn start_statefulset_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    let workers = usize::try_from(ctx.config.concurrent_statefulset_syncs).unwrap_or(1);
    let c = StatefulSetController::new(ctx);
    Ok(Box::pin(c.run(workers)))
}

fn set_selector(set: &StatefulSet) -> Result<LabelMatcher, String> {
    LabelMatcher::from_label_selector(set.spec.as_ref().map(|s| &s.selector))
}

/// Upstream's `strings.Title` of a one-word verb.
fn title(verb: &str) -> String {
    let mut c = verb.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

struct Inner {
    client: Client,
    sets: Store<StatefulSet>,
    pods: Store<Pod>,
    claims: Store<PersistentVolumeClaim>,
    revisions: Store<ControllerRevision>,
    queue: WorkQueue<String>,
    pod_control: PodControl,
    recorder: EventRecorder,
    history: RevisionClient,
}

/// The StatefulSet controller.
pub struct StatefulSetController {
    inner: Arc<Inner>,
    informers: InformerFactory,
    set_informer: Informer<StatefulSet>,
    pod_informer: Informer<Pod>,
    claim_informer: Informer<PersistentVolumeClaim>,
    revision_informer: Informer<ControllerRevision>,
    registrations: Vec<HandlerRegistration>,
}

impl StatefulSetController {
    /// Builds the controller on the context's shared informers and subscribes to them.
    pub fn new(ctx: &ControllerContext) -> Self {
        let set_informer = ctx.informers.informer::<StatefulSet>();
        let pod_informer = ctx.informers.informer::<Pod>();
        let claim_informer = ctx.informers.informer::<PersistentVolumeClaim>();
        let revision_informer = ctx.informers.informer::<ControllerRevision>();
        pod_informer.add_index(CONTROLLER_UID_INDEX, controller_uid_index_values::<Pod>);
        revision_informer.add_index(
            CONTROLLER_UID_INDEX,
            controller_uid_index_values::<ControllerRevision>,
        );
        let queue = WorkQueue::new(QUEUE_NAME);
        let recorder = ctx.events.recorder(EVENT_COMPONENT);
        let inner = Arc::new(Inner {
            client: ctx.client.clone(),
            sets: set_informer.store(),
            pods: pod_informer.store(),
            claims: claim_informer.store(),
            revisions: revision_informer.store(),
            queue: queue.clone(),
            pod_control: PodControl::new(ctx.client.clone(), recorder.clone()),
            recorder,
            history: RevisionClient::new(ctx.client.clone()),
        });
        let handlers = Arc::new(PodOwnerHandlers {
            sets: set_informer.store(),
            queue,
            expectations: None,
            selector: set_selector,
            min_ready_seconds,
            terminating: TerminatingPods::Update,
        });
        let registrations = watch_sets_and_pods(&handlers, &set_informer, &pod_informer);
        StatefulSetController {
            inner,
            informers: ctx.informers.clone(),
            set_informer,
            pod_informer,
            claim_informer,
            revision_informer,
            registrations,
        }
    }

    /// The controller's work queue (keys are `namespace/name`).
    pub fn queue(&self) -> WorkQueue<String> {
        self.inner.queue.clone()
    }

    /// Syncs one StatefulSet now (for tests and tools).
    pub async fn sync(&self, key: &str) -> Result<(), ControllerError> {
        self.inner.sync(key).await
    }

    /// Starts the informers, waits for their caches, and runs `workers` workers until
    /// the future is dropped.
    pub async fn run(self, workers: usize) {
        self.informers.start();
        tokio::join!(
            self.set_informer.wait_synced(),
            self.pod_informer.wait_synced(),
            self.claim_informer.wait_synced(),
            self.revision_informer.wait_synced(),
        );
        let queue = self.inner.queue.clone();
        run_synced(
            STATEFULSET_CONTROLLER_NAME,
            workers,
            self.registrations,
            self.inner,
            queue,
            |inner, key| async move { inner.sync(&key).await },
        )
        .await;
    }
}

fn ns_name(set: &StatefulSet) -> (String, String) {
    (
        set.metadata.namespace.clone().unwrap_or_default(),
        set.metadata.name.clone().unwrap_or_default(),
    )
}

fn name_of(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

/// The set's template with a revision's template in its place.
fn set_at_revision(
    set: &StatefulSet,
    rev: &ControllerRevision,
) -> Result<StatefulSet, ControllerError> {
    let template = template_from_revision(rev).map_err(ControllerError::Other)?;
    let mut out = set.clone();
    if let Some(spec) = out.spec.as_mut() {
        spec.template = template;
    }
    Ok(out)
}

fn template_of(set: &StatefulSet) -> PodTemplateSpec {
    set.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// The state of one update pass, shared by its steps.
struct Pass<'a> {
    set: &'a Arc<StatefulSet>,
    current_set: StatefulSet,
    update_set: StatefulSet,
    current_revision: String,
    update_revision: String,
    monotonic: bool,
}

impl Pass<'_> {
    /// A new pod for `ordinal`, at the current or the update revision.
    fn versioned_pod(&self, ordinal: i64) -> Replica {
        let (set, rev) = if uses_current_revision(&self.current_set, ordinal) {
            (&self.current_set, &self.current_revision)
        } else {
            (&self.update_set, &self.update_revision)
        };
        let mut pod = new_stateful_set_pod(set, &template_of(set), ordinal);
        set_pod_revision(&mut pod, rev);
        Replica {
            pod: Arc::new(pod),
            created: false,
        }
    }
}

impl Inner {
    async fn sync(&self, key: &str) -> Result<(), ControllerError> {
        let started = std::time::Instant::now();
        let result = self.sync_inner(key).await;
        tracing::debug!(controller = STATEFULSET_CONTROLLER_NAME, key, elapsed = ?started.elapsed(), "finished syncing");
        result
    }

    async fn sync_inner(&self, key: &str) -> Result<(), ControllerError> {
        let Some(set) = self.sets.get(key) else {
            tracing::debug!(controller = STATEFULSET_CONTROLLER_NAME, key, "deleted");
            return Ok(());
        };
        let selector = match set_selector(&set) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(controller = STATEFULSET_CONTROLLER_NAME, key, error = %e, "error converting StatefulSet selector");
                return Ok(());
            }
        };
        let revisions = self.claim_revisions(&set, &selector).await?;
        let pods = self.claim_pods(&set, &selector).await?;
        let status = self.update_stateful_set(&set, pods, revisions).await?;
        let min_ready = min_ready_seconds(&set);
        if min_ready > 0 && status.available_replicas.unwrap_or(0) != replicas(&set) {
            self.queue.add_after(
                key.to_string(),
                Duration::from_secs(u64::try_from(min_ready).unwrap_or(0)),
            );
        }
        Ok(())
    }

    async fn claim_revisions(
        &self,
        set: &Arc<StatefulSet>,
        selector: &LabelMatcher,
    ) -> Result<Vec<Arc<ControllerRevision>>, ControllerError> {
        controllers::claim::claim(
            &self.client,
            set.as_ref(),
            selector,
            claim_candidates(&self.revisions, set.as_ref()),
            STATEFULSET_CONTROLLER_NAME,
            |rev, patch| async move { self.history.patch(&rev, &patch).await.map(Arc::new) },
        )
        .await
        .map_err(|e| match e {
            ControllerError::Other(m) => {
                ControllerError::Other(format!("can't adopt ControllerRevisions: {m}"))
            }
            e => e,
        })
    }

    async fn claim_pods(
        &self,
        set: &Arc<StatefulSet>,
        selector: &LabelMatcher,
    ) -> Result<Vec<Arc<Pod>>, ControllerError> {
        let mut candidates = claim_candidates(&self.pods, set.as_ref());
        candidates.retain(|p| is_member_of(set, p));
        controllers::claim::claim(
            &self.client,
            set.as_ref(),
            selector,
            candidates,
            STATEFULSET_CONTROLLER_NAME,
            |pod, patch| async move {
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                let name = pod.metadata.name.clone().unwrap_or_default();
                Ok(Arc::new(
                    self.pod_control.patch_pod(&ns, &name, &patch).await?,
                ))
            },
        )
        .await
    }

    /// The current and update revisions (creating or renumbering the update revision
    /// as needed) and the collision count.
    async fn revisions(
        &self,
        set: &Arc<StatefulSet>,
        revisions: &[Arc<ControllerRevision>],
    ) -> Result<(ControllerRevision, ControllerRevision, i32), ControllerError> {
        let mut collision = set
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let template = template_of(set);
        let candidate = new_revision(
            set.as_ref(),
            template.metadata.as_ref().and_then(|m| m.labels.as_ref()),
            template_patch_value(&template),
            next_revision(revisions),
            Some(collision),
        );
        let equal = find_equal_revisions(revisions, &candidate);
        let update = match (equal.last(), revisions.last()) {
            (Some(eq), Some(last)) if crate::history::equal_revision(last, eq) => (**last).clone(),
            (Some(eq), _) => {
                self.history
                    .update_revision_number(eq, candidate.revision)
                    .await?
            }
            (None, _) => {
                self.history
                    .create(set.as_ref(), &candidate, &mut collision)
                    .await?
            }
        };
        let current_name = set
            .status
            .as_ref()
            .and_then(|s| s.current_revision.clone())
            .unwrap_or_default();
        let current = revisions
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(current_name.as_str()))
            .map(|r| (**r).clone())
            .unwrap_or_else(|| update.clone());
        Ok((current, update, collision))
    }

    async fn update_stateful_set(
        &self,
        set: &Arc<StatefulSet>,
        pods: Vec<Arc<Pod>>,
        mut revisions: Vec<Arc<ControllerRevision>>,
    ) -> Result<StatefulSetStatus, ControllerError> {
        sort_revisions(&mut revisions);
        let (current, update, collision) = self.revisions(set, &revisions).await?;
        let current_name = current.metadata.name.clone().unwrap_or_default();
        let update_name = update.metadata.name.clone().unwrap_or_default();
        let result = self
            .perform_update(set, pods.clone(), &current, &update, collision)
            .await;
        let truncated = self
            .truncate_history(set, &pods, &revisions, &current_name, &update_name)
            .await;
        let status = result?;
        truncated?;
        Ok(status)
    }

    async fn perform_update(
        &self,
        set: &Arc<StatefulSet>,
        pods: Vec<Arc<Pod>>,
        current: &ControllerRevision,
        update: &ControllerRevision,
        collision: i32,
    ) -> Result<StatefulSetStatus, ControllerError> {
        let pass = Pass {
            set,
            current_set: set_at_revision(set, current)?,
            update_set: set_at_revision(set, update)?,
            current_revision: current.metadata.name.clone().unwrap_or_default(),
            update_revision: update.metadata.name.clone().unwrap_or_default(),
            monotonic: !allows_burst(set),
        };
        let mut status = StatefulSetStatus {
            observed_generation: set.metadata.generation,
            current_revision: Some(pass.current_revision.clone()),
            update_revision: Some(pass.update_revision.clone()),
            collision_count: Some(collision),
            ..Default::default()
        };
        let (result, replicas, condemned) = self.update_pods(&pass, pods).await;
        let all: Vec<&Replica> = replicas.iter().chain(condemned.iter()).collect();
        count_status(
            &mut status,
            min_ready_seconds(set),
            &pass.current_revision,
            &pass.update_revision,
            &all,
            jiff::Timestamp::now(),
        );
        if let Some(deleted_for_update) = result.as_ref().ok().and_then(|d| *d) {
            if deleted_for_update {
                status.current_replicas = Some(status.current_replicas.unwrap_or(0) - 1);
            }
        }
        let status_result = self.update_status(set, status.clone()).await;
        match (result, status_result) {
            (Err(e), Err(se)) => {
                tracing::warn!(controller = STATEFULSET_CONTROLLER_NAME, error = %se, "could not update status");
                Err(e)
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
            _ => Ok(status),
        }
    }

    /// The pod work of one pass. Returns whether a pod was deleted for the rolling
    /// update, and the replicas and condemned pods as they stand at the end.
    async fn update_pods(
        &self,
        pass: &Pass<'_>,
        pods: Vec<Arc<Pod>>,
    ) -> (
        Result<Option<bool>, ControllerError>,
        Vec<Replica>,
        Vec<Replica>,
    ) {
        let set = pass.set;
        let start = start_ordinal(set);
        let (slots, condemned) = partition_pods(set, pods);
        let mut replicas: Vec<Replica> = slots
            .into_iter()
            .enumerate()
            .map(|(i, p)| match p {
                Some(pod) => Replica { pod, created: true },
                None => pass.versioned_pod(start + i64::try_from(i).unwrap_or(0)),
            })
            .collect();
        let condemned: Vec<Replica> = condemned
            .into_iter()
            .map(|pod| Replica { pod, created: true })
            .collect();

        let first_unhealthy: Option<String> = replicas
            .iter()
            .find(|r| !is_healthy(&r.pod))
            .or_else(|| condemned.iter().rev().find(|r| !is_healthy(&r.pod)))
            .map(|r| name_of(&r.pod).to_string());

        if set.metadata.deletion_timestamp.is_some() {
            return (Ok(None), replicas, condemned);
        }

        // Replicas, in ordinal order.
        let mut errors = Vec::new();
        for i in 0..replicas.len() {
            match self.process_replica(pass, &mut replicas, i).await {
                Ok(false) => {}
                Ok(true) => {
                    if pass.monotonic {
                        return (Ok(None), replicas, condemned);
                    }
                }
                Err(e) => {
                    if pass.monotonic {
                        return (Err(e), replicas, condemned);
                    }
                    errors.push(e);
                }
            }
        }
        if let Some(e) = ControllerError::aggregate(errors) {
            return (Err(e), replicas, condemned);
        }

        // Claim ownership of condemned pods, for the retention policy.
        for r in &condemned {
            if let Err(e) = self.fix_claims(&pass.update_set, &r.pod).await {
                return (Err(e), replicas, condemned);
            }
        }

        // Condemned pods, highest ordinal first.
        let mut errors = Vec::new();
        for i in 0..condemned.len() {
            let pod = condemned[i].pod.clone();
            if is_terminating(&pod) {
                if pass.monotonic {
                    tracing::debug!(
                        pod = name_of(&pod),
                        "waiting for pod to terminate prior to scale down"
                    );
                    return (Ok(None), replicas, condemned);
                }
                continue;
            }
            let first = first_unhealthy.as_deref() == Some(name_of(&pod));
            let min_ready = min_ready_seconds(set);
            if pass.monotonic
                && !first
                && (!is_running_and_ready(&pod)
                    || !is_running_and_available(&pod, min_ready, jiff::Timestamp::now()))
            {
                tracing::debug!(
                    pod = name_of(&pod),
                    "waiting for pod to be running, ready and available prior to scale down"
                );
                return (Ok(None), replicas, condemned);
            }
            tracing::info!(
                pod = name_of(&pod),
                "pod of StatefulSet is terminating for scale down"
            );
            let result = self.delete_stateful_pod(set, &pod).await;
            if pass.monotonic {
                return (result.map(|()| None), replicas, condemned);
            }
            if let Err(e) = result {
                errors.push(e);
            }
        }
        if let Some(e) = ControllerError::aggregate(errors) {
            return (Err(e), replicas, condemned);
        }

        if strategy_type(set) == "OnDelete" {
            return (Ok(None), replicas, condemned);
        }

        // Rolling update: the highest ordinal at or above the partition first.
        let update_min = usize::try_from(partition(set).max(0)).unwrap_or(0);
        for target in (update_min..replicas.len()).rev() {
            let pod = replicas[target].pod.clone();
            if pod_revision(&pod) != pass.update_revision && !is_terminating(&pod) {
                tracing::info!(
                    pod = name_of(&pod),
                    "pod of StatefulSet is terminating for update"
                );
                return match self.delete_stateful_pod(set, &pod).await {
                    Ok(()) => (Ok(Some(true)), replicas, condemned),
                    Err(e) if e.is_not_found() => (Ok(Some(true)), replicas, condemned),
                    Err(e) => (Err(e), replicas, condemned),
                };
            }
            if !is_healthy(&pod) {
                tracing::debug!(pod = name_of(&pod), "waiting for pod to update");
                return (Ok(None), replicas, condemned);
            }
        }
        (Ok(None), replicas, condemned)
    }

    /// One replica: recreate if finished, create if missing (claims first), wait in
    /// ordered mode, fix identity, storage and claim ownership. `Ok(true)` stops the
    /// pass in ordered mode.
    async fn process_replica(
        &self,
        pass: &Pass<'_>,
        replicas: &mut [Replica],
        i: usize,
    ) -> Result<bool, ControllerError> {
        let set = pass.set;
        let (namespace, set_name) = ns_name(set);
        if replicas[i].created && (is_failed(&replicas[i].pod) || is_succeeded(&replicas[i].pod)) {
            let pod_name = name_of(&replicas[i].pod).to_string();
            if is_failed(&replicas[i].pod) {
                self.recorder.event(
                    set.as_ref(),
                    EventType::Warning,
                    "RecreatingFailedPod",
                    format!(
                        "StatefulSet {namespace}/{set_name} is recreating failed Pod {pod_name}"
                    ),
                );
            } else {
                self.recorder.event(
                    set.as_ref(),
                    EventType::Normal,
                    "RecreatingTerminatedPod",
                    format!("StatefulSet {namespace}/{set_name} is recreating terminated Pod {pod_name}"),
                );
            }
            let pod = replicas[i].pod.clone();
            self.delete_stateful_pod(set, &pod).await?;
            let ord = start_ordinal(set) + i64::try_from(i).unwrap_or(0);
            replicas[i] = pass.versioned_pod(ord);
        }
        if !replicas[i].created {
            if self.pod_claim_is_stale(set, &replicas[i].pod) {
                return Ok(true);
            }
            let created = self.create_stateful_pod(set, &replicas[i].pod).await?;
            replicas[i] = Replica {
                pod: Arc::new(created),
                created: true,
            };
            if pass.monotonic {
                return Ok(true);
            }
        }
        let pod = replicas[i].pod.clone();
        if is_pending(&pod) {
            self.create_persistent_volume_claims(set, &pod).await?;
        }
        if is_terminating(&pod) && pass.monotonic {
            tracing::debug!(pod = name_of(&pod), "waiting for pod to terminate");
            return Ok(true);
        }
        if !is_running_and_ready(&pod) && pass.monotonic {
            tracing::debug!(
                pod = name_of(&pod),
                "waiting for pod to be running and ready"
            );
            return Ok(true);
        }
        if !is_running_and_available(&pod, min_ready_seconds(set), jiff::Timestamp::now())
            && pass.monotonic
        {
            tracing::debug!(pod = name_of(&pod), "waiting for pod to be available");
            return Ok(true);
        }
        let retention_match = self.claims_match_retention(&pass.update_set, &pod);
        if identity_matches(set, &pod) && storage_matches(set, &pod) && retention_match {
            return Ok(false);
        }
        self.update_stateful_pod(&pass.update_set, &pod).await?;
        Ok(false)
    }

    fn record_pod_event(
        &self,
        verb: &str,
        set: &StatefulSet,
        pod: &Pod,
        err: Option<&ControllerError>,
    ) {
        let set_name = set.metadata.name.as_deref().unwrap_or("");
        let pod_name = name_of(pod);
        let subject = format!("{verb} Pod {pod_name} in StatefulSet {set_name}");
        self.record_outcome(verb, set, err, format!("{subject} successful"), &subject);
    }

    fn record_claim_event(
        &self,
        verb: &str,
        set: &StatefulSet,
        pod: &Pod,
        claim: &str,
        err: Option<&ControllerError>,
    ) {
        let set_name = set.metadata.name.as_deref().unwrap_or("");
        let pod_name = name_of(pod);
        self.record_outcome(
            verb,
            set,
            err,
            format!("{verb} Claim {claim} Pod {pod_name} in StatefulSet {set_name} success"),
            &format!("{verb} Claim {claim} for Pod {pod_name} in StatefulSet {set_name}"),
        );
    }

    /// Records `Successful<Verb>` with `success`, or, given an error,
    /// `Failed<Verb>` with `<failed> failed error: <err>`.
    fn record_outcome(
        &self,
        verb: &str,
        set: &StatefulSet,
        err: Option<&ControllerError>,
        success: String,
        failed: &str,
    ) {
        match err {
            None => self.recorder.event(
                set,
                EventType::Normal,
                &format!("Successful{}", title(verb)),
                success,
            ),
            Some(e) => self.recorder.event(
                set,
                EventType::Warning,
                &format!("Failed{}", title(verb)),
                format!("{failed} failed error: {e}"),
            ),
        }
    }

    /// Creates the pod's missing claims; a claim being deleted is an error.
    async fn create_persistent_volume_claims(
        &self,
        set: &StatefulSet,
        pod: &Pod,
    ) -> Result<(), ControllerError> {
        let (namespace, _) = ns_name(set);
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &namespace);
        let mut errors = Vec::new();
        for (_, claim) in persistent_volume_claims(set, pod) {
            let name = claim.metadata.name.clone().unwrap_or_default();
            match self.claims.get_namespaced(&namespace, &name) {
                None => match api.create(&PostParams::default(), &claim).await {
                    Ok(_) => self.record_claim_event("create", set, pod, &name, None),
                    Err(e) => {
                        let e = ControllerError::from(e);
                        if !e.is_already_exists() {
                            self.record_claim_event("create", set, pod, &name, Some(&e));
                        }
                        errors.push(ControllerError::Other(format!(
                            "failed to create PVC {name}: {e}"
                        )));
                    }
                },
                Some(existing) => {
                    if existing.metadata.deletion_timestamp.is_some() {
                        errors.push(ControllerError::Other(format!(
                            "pvc {name} is being deleted"
                        )));
                    }
                }
            }
        }
        match ControllerError::aggregate(errors) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Creates the pod's claims, then the pod, then sets claim ownership.
    async fn create_stateful_pod(
        &self,
        set: &StatefulSet,
        pod: &Pod,
    ) -> Result<Pod, ControllerError> {
        if let Err(e) = self.create_persistent_volume_claims(set, pod).await {
            self.record_pod_event("create", set, pod, Some(&e));
            return Err(e);
        }
        let (namespace, _) = ns_name(set);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let created = match api.create(&PostParams::default(), pod).await {
            Ok(p) => p,
            Err(e) => {
                let e = ControllerError::from(e);
                if !e.is_already_exists() {
                    self.record_pod_event("create", set, pod, Some(&e));
                }
                return Err(e);
            }
        };
        if let Err(e) = self.fix_claims(set, &created).await {
            self.record_pod_event("update", set, pod, Some(&e));
            return Err(e);
        }
        self.record_pod_event("create", set, pod, None);
        Ok(created)
    }

    async fn delete_stateful_pod(
        &self,
        set: &StatefulSet,
        pod: &Pod,
    ) -> Result<(), ControllerError> {
        let (namespace, _) = ns_name(set);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        match api.delete(name_of(pod), &DeleteParams::default()).await {
            Ok(_) => {
                self.record_pod_event("delete", set, pod, None);
                Ok(())
            }
            Err(e) => {
                let e = ControllerError::from(e);
                self.record_pod_event("delete", set, pod, Some(&e));
                Err(e)
            }
        }
    }

    /// Fixes the pod's identity and storage (creating missing claims) and claim
    /// ownership, writing the pod when it changed.
    async fn update_stateful_pod(
        &self,
        set: &StatefulSet,
        pod: &Pod,
    ) -> Result<(), ControllerError> {
        let mut pod = pod.clone();
        let mut consistent = true;
        if !identity_matches(set, &pod) {
            update_identity(set, &mut pod);
            consistent = false;
        }
        if !storage_matches(set, &pod) {
            update_storage(set, &mut pod);
            consistent = false;
            if let Err(e) = self.create_persistent_volume_claims(set, &pod).await {
                self.record_pod_event("update", set, &pod, Some(&e));
                return Err(e);
            }
        }
        if !self.claims_match_retention(set, &pod) {
            if let Err(e) = self.fix_claims(set, &pod).await {
                self.record_pod_event("update", set, &pod, Some(&e));
                return Err(e);
            }
        }
        if consistent {
            return Ok(());
        }
        let (namespace, _) = ns_name(set);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let result = api
            .replace(name_of(&pod), &PostParams::default(), &pod)
            .await
            .map(|_| ())
            .map_err(ControllerError::from);
        self.record_pod_event("update", set, &pod, result.as_ref().err());
        result
    }

    fn claims_match_retention(&self, set: &StatefulSet, pod: &Pod) -> bool {
        let (namespace, _) = ns_name(set);
        persistent_volume_claims(set, pod).iter().all(|(_, c)| {
            let name = c.metadata.name.as_deref().unwrap_or("");
            self.claims
                .get_namespaced(&namespace, name)
                .is_none_or(|claim| claim_owner_up_to_date(&claim, set, pod))
        })
    }

    fn pod_claim_is_stale(&self, set: &StatefulSet, pod: &Pod) -> bool {
        let (namespace, _) = ns_name(set);
        persistent_volume_claims(set, pod).iter().any(|(_, c)| {
            let name = c.metadata.name.as_deref().unwrap_or("");
            self.claims
                .get_namespaced(&namespace, name)
                .is_some_and(|claim| claim_is_stale(&claim, set, pod))
        })
    }

    /// Rewrites the owner references of the pod's existing claims that do not follow
    /// the retention policy.
    async fn fix_claims(&self, set: &StatefulSet, pod: &Pod) -> Result<(), ControllerError> {
        let (namespace, _) = ns_name(set);
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &namespace);
        for (_, c) in persistent_volume_claims(set, pod) {
            let name = c.metadata.name.clone().unwrap_or_default();
            let claim = match self.claims.get_namespaced(&namespace, &name) {
                Some(claim) => (*claim).clone(),
                None => match api.get_opt(&name).await.map_err(ControllerError::from)? {
                    Some(claim) => claim,
                    None => continue,
                },
            };
            if claim_owner_up_to_date(&claim, set, pod) {
                continue;
            }
            let mut claim = claim;
            update_claim_owner_refs(&mut claim, set, pod);
            api.replace(&name, &PostParams::default(), &claim)
                .await
                .map_err(ControllerError::from)?;
        }
        Ok(())
    }

    async fn update_status(
        &self,
        set: &Arc<StatefulSet>,
        mut status: StatefulSetStatus,
    ) -> Result<(), ControllerError> {
        if strategy_type(set) == "RollingUpdate"
            && status.updated_replicas.unwrap_or(0) == status.replicas
            && status.ready_replicas.unwrap_or(0) == status.replicas
        {
            status.current_replicas = status.updated_replicas;
            status.current_revision = status.update_revision.clone();
        }
        let cur = set.status.clone().unwrap_or_default();
        let inconsistent = status.observed_generation.unwrap_or(0)
            > cur.observed_generation.unwrap_or(0)
            || status.replicas != cur.replicas
            || status.current_replicas.unwrap_or(0) != cur.current_replicas.unwrap_or(0)
            || status.ready_replicas.unwrap_or(0) != cur.ready_replicas.unwrap_or(0)
            || status.updated_replicas.unwrap_or(0) != cur.updated_replicas.unwrap_or(0)
            || status.current_revision != cur.current_revision
            || status.available_replicas.unwrap_or(0) != cur.available_replicas.unwrap_or(0)
            || status.update_revision != cur.update_revision;
        if !inconsistent {
            return Ok(());
        }
        let (namespace, name) = ns_name(set);
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &namespace);
        let mut obj = set.as_ref().clone();
        let mut last = None;
        for _ in 0..STATUS_UPDATE_ATTEMPTS {
            obj.status = Some(status.clone());
            match api
                .replace_status(&name, &PostParams::default(), &obj)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => {
                    let e = ControllerError::from(e);
                    if !e.is_conflict() {
                        return Err(e);
                    }
                    last = Some(e);
                    obj = api.get(&name).await.map_err(ControllerError::from)?;
                }
            }
        }
        Err(last.unwrap_or_else(|| ControllerError::Other("status update failed".into())))
    }

    /// Deletes the oldest revisions beyond revisionHistoryLimit that are neither the
    /// current nor the update revision nor used by a pod.
    async fn truncate_history(
        &self,
        set: &Arc<StatefulSet>,
        pods: &[Arc<Pod>],
        revisions: &[Arc<ControllerRevision>],
        current: &str,
        update: &str,
    ) -> Result<(), ControllerError> {
        let mut live: HashSet<&str> = HashSet::from([current, update]);
        live.extend(pods.iter().map(|p| pod_revision(p)));
        let history: Vec<&Arc<ControllerRevision>> = revisions
            .iter()
            .filter(|r| !live.contains(r.metadata.name.as_deref().unwrap_or("")))
            .collect();
        let limit = set
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        let limit = usize::try_from(limit.max(0)).unwrap_or(0);
        if history.len() <= limit {
            return Ok(());
        }
        for rev in &history[..history.len() - limit] {
            match self.history.delete(rev).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Sorts claimed pods into the set's slots (index = ordinal - start; `None` where
/// a pod is missing) and the condemned pods outside the range, highest ordinal first.
/// Pods whose ordinal does not parse are ignored.
pub fn partition_pods(
    set: &StatefulSet,
    pods: Vec<Arc<Pod>>,
) -> (Vec<Option<Arc<Pod>>>, Vec<Arc<Pod>>) {
    let start = start_ordinal(set);
    let count = usize::try_from(replicas(set).max(0)).unwrap_or(0);
    let mut slots: Vec<Option<Arc<Pod>>> = vec![None; count];
    let mut condemned = Vec::new();
    for pod in pods {
        let ord = ordinal(&pod);
        if pod_in_ordinal_range(&pod, set) {
            if let Some(slot) = usize::try_from(ord - start)
                .ok()
                .and_then(|i| slots.get_mut(i))
            {
                *slot = Some(pod);
            }
        } else if ord >= 0 {
            condemned.push(pod);
        }
    }
    condemned.sort_by_key(|p| std::cmp::Reverse(ordinal(p)));
    (slots, condemned)
}

#[cfg(test)]
mod tests {
    use super::*;

    use k8s_openapi::api::apps::v1::{StatefulSetOrdinals, StatefulSetSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn set(replicas: i32, start: i32) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            },
            spec: Some(StatefulSetSpec {
                replicas: Some(replicas),
                ordinals: Some(StatefulSetOrdinals { start: Some(start) }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pods(names: &[&str]) -> Vec<Arc<Pod>> {
        names
            .iter()
            .map(|n| {
                Arc::new(Pod {
                    metadata: ObjectMeta {
                        name: Some(n.to_string()),
                        ..Default::default()
                    },
                    ..Default::default()
                })
            })
            .collect()
    }

    fn names(p: &[Arc<Pod>]) -> Vec<&str> {
        p.iter().map(|p| name_of(p)).collect()
    }

    #[test]
    fn partitions_into_slots_and_condemned() {
        let (slots, condemned) = partition_pods(
            &set(3, 0),
            pods(&["web-4", "web-0", "web-2", "web-3", "web-x"]),
        );
        let present: Vec<Option<&str>> = slots.iter().map(|s| s.as_deref().map(name_of)).collect();
        assert_eq!(present, [Some("web-0"), None, Some("web-2")]);
        assert_eq!(
            names(&condemned),
            ["web-4", "web-3"],
            "scale down removes the highest ordinal first"
        );
        // With ordinals starting at 5, web-0 is out of range.
        let (slots, condemned) = partition_pods(&set(2, 5), pods(&["web-0", "web-5", "web-7"]));
        let present: Vec<Option<&str>> = slots.iter().map(|s| s.as_deref().map(name_of)).collect();
        assert_eq!(present, [Some("web-5"), None]);
        assert_eq!(names(&condemned), ["web-7", "web-0"]);
        assert_eq!(title("create"), "Create");
    }
}
