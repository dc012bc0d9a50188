//! The DaemonSet controller: one daemon pod on every node that should run it.
//!
//! A sync of one DaemonSet:
//! 1. records its template as a ControllerRevision (claiming its revisions, finding
//!    the one matching the current template or creating it named
//!    `<ds>-<hash>`, and renumbering it to be the newest); the revision's hash labels
//!    new pods (`controller-revision-hash`, plus the deprecated
//!    `pod-template-generation`);
//! 2. claims its pods and groups them by target node (bound node, or the node-name
//!    affinity they were created with);
//! 3. if no creations or deletions are in flight: per node (see
//!    [`util::plan_node`]) creates the missing pod — with required node affinity
//!    `metadata.name In [node]` so that the scheduler binds it there — deletes pods on
//!    nodes that no longer qualify, extra pods, and failed pods (with a per-node
//!    backoff, reported as `FailedDaemonPod`); deletes unscheduled pods whose node is
//!    gone; then, for the RollingUpdate strategy, replaces old pods within
//!    maxUnavailable / maxSurge ([`util::plan_rolling_update`]); and deletes old
//!    revisions beyond revisionHistoryLimit that no pod uses;
//! 4. writes status (desired/current/misscheduled/ready/updated/available/unavailable
//!    counts and observedGeneration).

pub mod util;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::json;

use controllers::controller::{ControllerContext, ControllerFuture};
use controllers::error::ControllerError;
use controllers::events::{EventRecorder, EventType};
use controllers::expectations::Expectations;
use controllers::informer::{
    controller_uid_index_values, object_key, HandlerRegistration, Informer, InformerFactory,
    Notification, Store, CONTROLLER_UID_INDEX,
};
use controllers::podcontrol::{PodControl, NAMESPACE_TERMINATING_CAUSE};
use controllers::util::{
    controller_ref, is_pod_available, is_pod_ready, is_pod_terminal, new_controller_ref, pod_key,
    LabelMatcher,
};
use controllers::workqueue::WorkQueue;

use crate::deployment::util::compute_hash;
use crate::history::{
    max_revision, revision_data, template_patch, template_patch_value, RevisionClient,
    CONTROLLER_REVISION_HASH_LABEL,
};
use crate::owner::{
    claim_candidates, claim_pods, run_synced, watch_sets_and_pods, PodOwnerHandlers,
    TerminatingPods,
};
use util::{
    create_pod_template, ds_template, is_pod_updated, node_should_run_daemon_pod, plan_node,
    plan_rolling_update, replace_node_name_affinity, sort_by_creation_and_phase, target_node_name,
    template_generation, FailedPodsBackoff,
};

/// Canonical name of the DaemonSet controller.
pub const DAEMONSET_CONTROLLER_NAME: &str = "daemonset-controller";
/// The `source.component` of its events.
pub const EVENT_COMPONENT: &str = "daemonset-controller";
/// Name of its work queue.
pub const QUEUE_NAME: &str = "daemonset";
/// At most this many pods are created or deleted in one sync.
pub const BURST_REPLICAS: usize = 250;
/// Event reason: a failed daemon pod is being deleted.
pub const FAILED_DAEMON_POD_REASON: &str = "FailedDaemonPod";
/// Event reason: a succeeded daemon pod is being deleted.
pub const SUCCEEDED_DAEMON_POD_REASON: &str = "SucceededDaemonPod";
/// Event reason: the DaemonSet selects every pod.
pub const SELECTING_ALL_REASON: &str = "SelectingAll";
/// Extra status write attempts (after a fresh read).
const STATUS_UPDATE_RETRIES: usize = 1;

/// Starts the DaemonSet controller with `--concurrent-daemonset-syncs` workers.
pub fn start_daemonset_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    let workers = usize::try_from(ctx.config.concurrent_daemonset_syncs).unwrap_or(1);
    let c = DaemonSetController::new(ctx);
    Ok(Box::pin(c.run(workers)))
}

fn ds_selector(ds: &DaemonSet) -> Result<LabelMatcher, String> {
    LabelMatcher::from_label_selector(ds.spec.as_ref().map(|s| &s.selector))
}

/// Queues the DaemonSets whose placement a node change may alter.
fn on_node(h: &PodOwnerHandlers<DaemonSet>, n: &Notification<Node>) {
    match n {
        Notification::Added(node) => {
            for ds in h.sets.list() {
                if node_should_run_daemon_pod(node, &ds).0 {
                    h.enqueue(&ds);
                }
            }
        }
        Notification::Updated { old, new } => {
            let relevant = old.metadata.labels != new.metadata.labels
                || old.spec != new.spec
                || old.status.as_ref().map(|s| &s.conditions)
                    != new.status.as_ref().map(|s| &s.conditions);
            if !relevant {
                return;
            }
            for ds in h.sets.list() {
                if node_should_run_daemon_pod(old, &ds) != node_should_run_daemon_pod(new, &ds) {
                    h.enqueue(&ds);
                }
            }
        }
        // Unscheduled pods aimed at a node that is gone are deleted by the sync.
        Notification::Deleted(_) => {
            for ds in h.sets.list() {
                h.enqueue(&ds);
            }
        }
    }
}

/// Queues the DaemonSet owning (or, for an orphan, matching) a changed revision.
fn on_revision(h: &PodOwnerHandlers<DaemonSet>, n: &Notification<ControllerRevision>) {
    let rev = n.object();
    let ns = rev.metadata.namespace.as_deref().unwrap_or("");
    if let Notification::Updated { old, .. } = n {
        if let Some(ds) = controller_ref(&old.metadata).and_then(|r| h.resolve(ns, r)) {
            h.enqueue(&ds);
        }
    }
    match controller_ref(&rev.metadata) {
        Some(r) => {
            if let Some(ds) = h.resolve(ns, r) {
                h.enqueue(&ds);
            }
        }
        None => {
            if matches!(n, Notification::Deleted(_)) {
                return;
            }
            for ds in h.matching(ns, rev.metadata.labels.as_ref()) {
                h.enqueue(&ds);
            }
        }
    }
}

struct Inner {
    client: Client,
    sets: Store<DaemonSet>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    queue: WorkQueue<String>,
    expectations: Arc<Expectations>,
    pod_control: PodControl,
    recorder: EventRecorder,
    history: RevisionClient,
    backoff: FailedPodsBackoff,
    burst_replicas: usize,
}

/// The DaemonSet controller.
pub struct DaemonSetController {
    inner: Arc<Inner>,
    informers: InformerFactory,
    set_informer: Informer<DaemonSet>,
    pod_informer: Informer<Pod>,
    node_informer: Informer<Node>,
    revision_informer: Informer<ControllerRevision>,
    registrations: Vec<HandlerRegistration>,
}

impl DaemonSetController {
    /// Builds the controller on the context's shared informers and subscribes to them.
    pub fn new(ctx: &ControllerContext) -> Self {
        let set_informer = ctx.informers.informer::<DaemonSet>();
        let pod_informer = ctx.informers.informer::<Pod>();
        let node_informer = ctx.informers.informer::<Node>();
        let revision_informer = ctx.informers.informer::<ControllerRevision>();
        pod_informer.add_index(CONTROLLER_UID_INDEX, controller_uid_index_values::<Pod>);
        revision_informer.add_index(
            CONTROLLER_UID_INDEX,
            controller_uid_index_values::<ControllerRevision>,
        );
        let queue = WorkQueue::new(QUEUE_NAME);
        let expectations = Arc::new(Expectations::new());
        let recorder = ctx.events.recorder(EVENT_COMPONENT);
        let inner = Arc::new(Inner {
            client: ctx.client.clone(),
            sets: set_informer.store(),
            pods: pod_informer.store(),
            nodes: node_informer.store(),
            revisions: revision_informer.store(),
            queue: queue.clone(),
            expectations: expectations.clone(),
            pod_control: PodControl::new(ctx.client.clone(), recorder.clone()),
            recorder,
            history: RevisionClient::new(ctx.client.clone()),
            backoff: FailedPodsBackoff::new(),
            burst_replicas: BURST_REPLICAS,
        });
        let handlers = Arc::new(PodOwnerHandlers {
            sets: set_informer.store(),
            queue,
            expectations: Some(expectations),
            selector: ds_selector,
            min_ready_seconds: util::min_ready_seconds,
            terminating: TerminatingPods::Deletion,
        });
        let mut registrations = watch_sets_and_pods(&handlers, &set_informer, &pod_informer);
        let h = handlers.clone();
        registrations.push(node_informer.add_handler(move |n| on_node(&h, n)));
        let h = handlers;
        registrations.push(revision_informer.add_handler(move |n| on_revision(&h, n)));
        DaemonSetController {
            inner,
            informers: ctx.informers.clone(),
            set_informer,
            pod_informer,
            node_informer,
            revision_informer,
            registrations,
        }
    }

    /// The controller's work queue (keys are `namespace/name`).
    pub fn queue(&self) -> WorkQueue<String> {
        self.inner.queue.clone()
    }

    /// Syncs one DaemonSet now (for tests and tools).
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
            self.node_informer.wait_synced(),
            self.revision_informer.wait_synced(),
        );
        let queue = self.inner.queue.clone();
        run_synced(
            DAEMONSET_CONTROLLER_NAME,
            workers,
            self.registrations,
            self.inner,
            queue,
            |inner, key| async move { inner.sync(&key).await },
        )
        .await;
    }
}

fn ns_name(ds: &DaemonSet) -> (String, String) {
    (
        ds.metadata.namespace.clone().unwrap_or_default(),
        ds.metadata.name.clone().unwrap_or_default(),
    )
}

fn hash_label(rev: &ControllerRevision) -> Option<&str> {
    rev.metadata
        .labels
        .as_ref()?
        .get(CONTROLLER_REVISION_HASH_LABEL)
        .map(String::as_str)
}

/// The status a DaemonSet should report given its nodes and claimed pods.
pub fn calculate_status(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    node_pods: &BTreeMap<String, Vec<Arc<Pod>>>,
    hash: &str,
    now: jiff::Timestamp,
) -> DaemonSetStatus {
    let (mut desired, mut current, mut misscheduled, mut ready, mut updated, mut available) =
        (0, 0, 0, 0, 0, 0);
    let generation = template_generation(ds);
    let min_ready = util::min_ready_seconds(ds);
    for node in nodes {
        let (should_run, _) = node_should_run_daemon_pod(node, ds);
        let name = node.metadata.name.as_deref().unwrap_or("");
        let pods = node_pods.get(name).filter(|p| !p.is_empty());
        if !should_run {
            if pods.is_some() {
                misscheduled += 1;
            }
            continue;
        }
        desired += 1;
        let Some(pods) = pods else {
            continue;
        };
        current += 1;
        let mut pods = pods.clone();
        sort_by_creation_and_phase(&mut pods);
        let pod = &pods[0];
        if is_pod_ready(pod) {
            ready += 1;
            if is_pod_available(pod, min_ready, now) {
                available += 1;
            }
        }
        if is_pod_updated(pod, hash, generation) {
            updated += 1;
        }
    }
    let mut status = ds.status.clone().unwrap_or_default();
    status.desired_number_scheduled = desired;
    status.current_number_scheduled = current;
    status.number_misscheduled = misscheduled;
    status.number_ready = ready;
    status.updated_number_scheduled = Some(updated);
    status.number_available = Some(available);
    status.number_unavailable = Some(desired - available);
    status
}

impl Inner {
    async fn sync(&self, key: &str) -> Result<(), ControllerError> {
        let started = std::time::Instant::now();
        let result = self.sync_inner(key).await;
        tracing::debug!(controller = DAEMONSET_CONTROLLER_NAME, key, elapsed = ?started.elapsed(), "finished syncing");
        result
    }

    async fn sync_inner(&self, key: &str) -> Result<(), ControllerError> {
        let Some(ds) = self.sets.get(key) else {
            tracing::debug!(controller = DAEMONSET_CONTROLLER_NAME, key, "deleted");
            self.expectations.delete(key);
            return Ok(());
        };
        let nodes = self.nodes.list();
        if ds.spec.as_ref().map(|s| &s.selector) == Some(&LabelSelector::default()) {
            self.recorder.event(
                ds.as_ref(),
                EventType::Warning,
                SELECTING_ALL_REASON,
                "This daemon set is selecting all pods. A non-empty selector is required.",
            );
            return Ok(());
        }
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let (cur, old) = self.construct_history(&ds).await?;
        let hash = hash_label(&cur).unwrap_or_default().to_string();
        if !self.expectations.satisfied(key) {
            return self.update_status(&ds, &nodes, &hash, false).await;
        }
        let result = self.update_daemonset(&ds, &nodes, &hash, key, &old).await;
        let status_result = self.update_status(&ds, &nodes, &hash, true).await;
        match (result, status_result) {
            (Err(e), Err(se)) => {
                tracing::warn!(controller = DAEMONSET_CONTROLLER_NAME, key, error = %se, "failed to update status");
                Err(e)
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
            _ => Ok(()),
        }
    }

    async fn update_daemonset(
        &self,
        ds: &Arc<DaemonSet>,
        nodes: &[Arc<Node>],
        hash: &str,
        key: &str,
        old: &[Arc<ControllerRevision>],
    ) -> Result<(), ControllerError> {
        self.manage(ds, nodes, hash, key).await?;
        if self.expectations.satisfied(key) {
            let strategy = ds
                .spec
                .as_ref()
                .and_then(|s| s.update_strategy.as_ref())
                .and_then(|u| u.type_.as_deref());
            if strategy == Some("RollingUpdate") {
                self.rolling_update(ds, nodes, hash, key).await?;
            }
        }
        self.cleanup_history(ds, old).await.map_err(|e| {
            ControllerError::Other(format!("failed to clean up revisions of DaemonSet: {e}"))
        })
    }

    /// The pods the DaemonSet controls after claiming (adopting matching orphans,
    /// releasing owned pods that stopped matching).
    async fn daemon_pods(&self, ds: &Arc<DaemonSet>) -> Result<Vec<Arc<Pod>>, ControllerError> {
        let selector = ds_selector(ds).map_err(ControllerError::Other)?;
        claim_pods(
            &self.client,
            &self.pod_control,
            ds.as_ref(),
            &selector,
            claim_candidates(&self.pods, ds.as_ref()),
            DAEMONSET_CONTROLLER_NAME,
        )
        .await
    }

    /// Claimed pods by target node. Terminal pods already being deleted are left out
    /// unless `include_deleted_terminal`.
    async fn node_to_daemon_pods(
        &self,
        ds: &Arc<DaemonSet>,
        include_deleted_terminal: bool,
    ) -> Result<BTreeMap<String, Vec<Arc<Pod>>>, ControllerError> {
        let mut out: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
        for pod in self.daemon_pods(ds).await? {
            if !include_deleted_terminal
                && is_pod_terminal(&pod)
                && pod.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            let Some(node) = target_node_name(&pod) else {
                tracing::debug!(pod = %pod_key(&pod), "failed to get target node name of pod in DaemonSet");
                continue;
            };
            out.entry(node).or_default().push(pod);
        }
        Ok(out)
    }

    async fn manage(
        &self,
        ds: &Arc<DaemonSet>,
        nodes: &[Arc<Node>],
        hash: &str,
        key: &str,
    ) -> Result<(), ControllerError> {
        let node_pods = self.node_to_daemon_pods(ds, false).await?;
        let now = jiff::Timestamp::now();
        let (namespace, name) = ns_name(ds);
        let mut needing = Vec::new();
        let mut to_delete = Vec::new();
        let empty = Vec::new();
        for node in nodes {
            let node_name = node.metadata.name.clone().unwrap_or_default();
            let pods = node_pods.get(&node_name).unwrap_or(&empty);
            let backoff_key = format!(
                "{}/{namespace}/{name}/{node_name}",
                ds.metadata.uid.as_deref().unwrap_or("")
            );
            let plan = plan_node(node, ds, pods, hash, now, || {
                self.backoff
                    .check_and_advance(&backoff_key, tokio::time::Instant::now())
            });
            if let Some(delay) = plan.backoff {
                self.queue.add_after(key.to_string(), delay);
            }
            for pod in &plan.failed {
                self.recorder.event(
                    ds.as_ref(),
                    EventType::Warning,
                    FAILED_DAEMON_POD_REASON,
                    format!("Found failed daemon pod {namespace}/{pod} on node {node_name}, will try to kill it"),
                );
            }
            for pod in &plan.succeeded {
                self.recorder.event(
                    ds.as_ref(),
                    EventType::Normal,
                    SUCCEEDED_DAEMON_POD_REASON,
                    format!("Found succeeded daemon pod {namespace}/{pod} on node {node_name}, will try to delete it"),
                );
            }
            if plan.create {
                needing.push(node_name);
            }
            to_delete.extend(plan.delete);
        }
        // Pods never scheduled, aimed at nodes that no longer exist.
        let known: HashSet<&str> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.as_deref())
            .collect();
        for (node_name, pods) in &node_pods {
            if known.contains(node_name.as_str()) {
                continue;
            }
            for pod in pods {
                let unscheduled = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_none_or(str::is_empty);
                if unscheduled && pod.metadata.deletion_timestamp.is_none() {
                    to_delete.push(pod.metadata.name.clone().unwrap_or_default());
                }
            }
        }
        self.sync_nodes(ds, to_delete, needing, hash, key).await
    }

    /// Creates daemon pods on `nodes_needing` and deletes `to_delete`, at most
    /// [`BURST_REPLICAS`] each, recording expectations first.
    async fn sync_nodes(
        &self,
        ds: &Arc<DaemonSet>,
        mut to_delete: Vec<String>,
        mut nodes_needing: Vec<String>,
        hash: &str,
        key: &str,
    ) -> Result<(), ControllerError> {
        let (namespace, _) = ns_name(ds);
        nodes_needing.truncate(self.burst_replicas);
        to_delete.truncate(self.burst_replicas);
        let create_diff = nodes_needing.len();
        self.expectations.expect_deletions(
            key,
            to_delete
                .iter()
                .map(|n| format!("{namespace}/{n}"))
                .collect(),
        );
        self.expectations
            .raise(key, i64::try_from(create_diff).unwrap_or(i64::MAX), 0);
        let mut errors = Vec::new();

        let template = create_pod_template(ds, template_generation(ds), hash);
        let cref = new_controller_ref(ds.as_ref());
        let mut pos = 0;
        let mut batch = create_diff.min(1);
        while pos < create_diff {
            let results =
                futures::future::join_all(nodes_needing[pos..pos + batch].iter().map(|node| {
                    let mut t = template.clone();
                    let spec = t.spec.get_or_insert_with(PodSpec::default);
                    spec.affinity = Some(replace_node_name_affinity(spec.affinity.take(), node));
                    let cref = cref.clone();
                    let namespace = namespace.clone();
                    async move {
                        self.pod_control
                            .create_pod(&namespace, &t, ds.as_ref(), cref)
                            .await
                    }
                }))
                .await;
            let before = errors.len();
            for r in results {
                match r {
                    Ok(_) => {}
                    Err(e) if e.has_status_cause(NAMESPACE_TERMINATING_CAUSE) => {}
                    Err(e) => {
                        self.expectations.creation_observed(key);
                        errors.push(e);
                    }
                }
            }
            pos += batch;
            let skipped = create_diff - pos;
            if errors.len() > before && skipped > 0 {
                tracing::debug!(
                    key,
                    skipped,
                    "slow-start failure; skipping creation of pods"
                );
                self.expectations
                    .raise(key, -i64::try_from(skipped).unwrap_or(0), 0);
                break;
            }
            batch = (2 * batch).min(skipped);
        }

        let deletions = to_delete.iter().map(|name| {
            let namespace = namespace.clone();
            async move {
                match self
                    .pod_control
                    .delete_pod(&namespace, name, ds.as_ref())
                    .await
                {
                    Ok(()) => None,
                    Err(e) => {
                        self.expectations
                            .deletion_observed(key, &format!("{namespace}/{name}"));
                        (!e.is_not_found()).then_some(e)
                    }
                }
            }
        });
        errors.extend(
            futures::future::join_all(deletions)
                .await
                .into_iter()
                .flatten(),
        );
        match ControllerError::aggregate(errors) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn rolling_update(
        &self,
        ds: &Arc<DaemonSet>,
        nodes: &[Arc<Node>],
        hash: &str,
        key: &str,
    ) -> Result<(), ControllerError> {
        let mut node_pods = self.node_to_daemon_pods(ds, false).await?;
        let mut desired = 0;
        for node in nodes {
            if node_should_run_daemon_pod(node, ds).0 {
                desired += 1;
                node_pods
                    .entry(node.metadata.name.clone().unwrap_or_default())
                    .or_default();
            }
        }
        let by_name: HashMap<String, Arc<Node>> = nodes
            .iter()
            .map(|n| (n.metadata.name.clone().unwrap_or_default(), n.clone()))
            .collect();
        let plan = plan_rolling_update(
            ds,
            &by_name,
            &node_pods,
            desired,
            hash,
            jiff::Timestamp::now(),
        )
        .map_err(ControllerError::Other)?;
        self.sync_nodes(ds, plan.delete, plan.create, hash, key)
            .await
    }

    /// The DaemonSet's revisions after claiming: those it controls plus adopted
    /// orphans matching its selector.
    async fn controlled_histories(
        &self,
        ds: &Arc<DaemonSet>,
    ) -> Result<Vec<Arc<ControllerRevision>>, ControllerError> {
        let selector = ds_selector(ds).map_err(ControllerError::Other)?;
        controllers::claim::claim(
            &self.client,
            ds.as_ref(),
            &selector,
            claim_candidates(&self.revisions, ds.as_ref()),
            DAEMONSET_CONTROLLER_NAME,
            |rev, patch| async move { self.history.patch(&rev, &patch).await.map(Arc::new) },
        )
        .await
    }

    /// The current revision (created or renumbered as needed) and the old ones.
    async fn construct_history(
        &self,
        ds: &Arc<DaemonSet>,
    ) -> Result<(ControllerRevision, Vec<Arc<ControllerRevision>>), ControllerError> {
        let patch = template_patch(&ds_template(ds));
        let mut current = Vec::new();
        let mut old = Vec::new();
        for mut rev in self.controlled_histories(ds).await? {
            if hash_label(&rev).is_none() {
                let mut update = (*rev).clone();
                let name = update.metadata.name.clone().unwrap_or_default();
                update
                    .metadata
                    .labels
                    .get_or_insert_with(BTreeMap::new)
                    .insert(CONTROLLER_REVISION_HASH_LABEL.into(), name);
                rev = Arc::new(self.history.replace(&update).await?);
            }
            if revision_data(&rev) == patch {
                current.push(rev);
            } else {
                old.push(rev);
            }
        }
        let next = max_revision(&old) + 1;
        let cur = if current.is_empty() {
            self.snapshot(ds, next).await?
        } else {
            let cur = self.dedup_current(ds, current).await?;
            if cur.revision < next {
                self.history.update_revision_number(&cur, next).await?
            } else {
                cur
            }
        };
        Ok((cur, old))
    }

    /// Keeps the newest of several revisions matching the current template: pods
    /// labelled with the others get its hash, and the others are deleted.
    async fn dedup_current(
        &self,
        ds: &Arc<DaemonSet>,
        mut current: Vec<Arc<ControllerRevision>>,
    ) -> Result<ControllerRevision, ControllerError> {
        current.sort_by_key(|r| r.revision);
        let Some(keep) = current.pop() else {
            return Err(ControllerError::Other("no current revision".into()));
        };
        if current.is_empty() {
            return Ok((*keep).clone());
        }
        let keep_hash = hash_label(&keep).unwrap_or_default().to_string();
        let dup_hashes: HashSet<String> = current
            .iter()
            .filter_map(|r| hash_label(r).map(str::to_string))
            .collect();
        for pod in self.daemon_pods(ds).await? {
            let h = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(CONTROLLER_REVISION_HASH_LABEL));
            if h.is_some_and(|h| dup_hashes.contains(h)) {
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                let name = pod.metadata.name.clone().unwrap_or_default();
                let patch =
                    json!({"metadata": {"labels": {CONTROLLER_REVISION_HASH_LABEL: keep_hash}}});
                self.pod_control.patch_pod(&ns, &name, &patch).await?;
            }
        }
        for dup in current {
            match self.history.delete(&dup).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok((*keep).clone())
    }

    /// Creates the revision of the current template, `<ds>-<hash>`. On a name taken
    /// by another template, bumps `status.collisionCount` and fails (to retry).
    async fn snapshot(
        &self,
        ds: &Arc<DaemonSet>,
        revision: i64,
    ) -> Result<ControllerRevision, ControllerError> {
        let template = ds_template(ds);
        let collision = ds.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&template, collision);
        let (namespace, name) = ns_name(ds);
        let mut labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash.clone());
        let rev = ControllerRevision {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(format!("{name}-{hash}")),
                namespace: Some(namespace.clone()),
                labels: Some(labels),
                annotations: ds.metadata.annotations.clone().filter(|a| !a.is_empty()),
                owner_references: Some(vec![new_controller_ref(ds.as_ref())]),
                ..Default::default()
            },
            data: Some(k8s_openapi::apimachinery::pkg::runtime::RawExtension(
                template_patch_value(&template),
            )),
            revision,
        };
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &namespace);
        match api.create(&PostParams::default(), &rev).await {
            Ok(created) => Ok(created),
            Err(e) => {
                let err = ControllerError::from(e);
                if !err.is_already_exists() {
                    return Err(err);
                }
                let rev_name = rev.metadata.name.clone().unwrap_or_default();
                let existing = api.get(&rev_name).await.map_err(ControllerError::from)?;
                if revision_data(&existing) == template_patch(&template) {
                    return Ok(existing);
                }
                let sets: Api<DaemonSet> = Api::namespaced(self.client.clone(), &namespace);
                let mut fresh = sets.get(&name).await.map_err(ControllerError::from)?;
                let fresh_count = fresh.status.as_ref().and_then(|s| s.collision_count);
                if fresh_count != collision {
                    return Err(ControllerError::Other(format!(
                        "found a stale collision count ({}, expected {}) of DaemonSet {name:?} while processing; will retry until it is updated",
                        collision.unwrap_or(0),
                        fresh_count.unwrap_or(0)
                    )));
                }
                let status = fresh.status.get_or_insert_with(Default::default);
                status.collision_count = Some(collision.unwrap_or(0) + 1);
                sets.replace_status(&name, &PostParams::default(), &fresh)
                    .await
                    .map_err(ControllerError::from)?;
                tracing::info!(daemonset = %format!("{namespace}/{name}"), "found a hash collision for DaemonSet - bumping collisionCount to resolve it");
                Err(err)
            }
        }
    }

    /// Deletes the oldest revisions beyond revisionHistoryLimit that no pod uses.
    async fn cleanup_history(
        &self,
        ds: &Arc<DaemonSet>,
        old: &[Arc<ControllerRevision>],
    ) -> Result<(), ControllerError> {
        let limit = ds
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        let mut to_kill = i64::try_from(old.len()).unwrap_or(i64::MAX) - i64::from(limit);
        if to_kill <= 0 {
            return Ok(());
        }
        let live: HashSet<String> = self
            .node_to_daemon_pods(ds, true)
            .await?
            .values()
            .flatten()
            .filter_map(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(CONTROLLER_REVISION_HASH_LABEL))
                    .filter(|h| !h.is_empty())
                    .cloned()
            })
            .collect();
        let mut old = old.to_vec();
        old.sort_by_key(|r| r.revision);
        for rev in old {
            if to_kill <= 0 {
                break;
            }
            if hash_label(&rev).is_some_and(|h| live.contains(h)) {
                continue;
            }
            match self.history.delete(&rev).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
            to_kill -= 1;
        }
        Ok(())
    }

    async fn update_status(
        &self,
        ds: &Arc<DaemonSet>,
        nodes: &[Arc<Node>],
        hash: &str,
        update_observed_generation: bool,
    ) -> Result<(), ControllerError> {
        let node_pods = self.node_to_daemon_pods(ds, false).await?;
        let status = calculate_status(ds, nodes, &node_pods, hash, jiff::Timestamp::now());
        let current = ds.status.clone().unwrap_or_default();
        let generation = ds.metadata.generation.unwrap_or(0);
        let same = current.desired_number_scheduled == status.desired_number_scheduled
            && current.current_number_scheduled == status.current_number_scheduled
            && current.number_misscheduled == status.number_misscheduled
            && current.number_ready == status.number_ready
            && current.updated_number_scheduled.unwrap_or(0)
                == status.updated_number_scheduled.unwrap_or(0)
            && current.number_available.unwrap_or(0) == status.number_available.unwrap_or(0)
            && current.number_unavailable.unwrap_or(0) == status.number_unavailable.unwrap_or(0);
        if !(same && current.observed_generation.unwrap_or(0) >= generation) {
            self.write_status(ds, &status, update_observed_generation)
                .await?;
        }
        let min_ready = util::min_ready_seconds(ds);
        if min_ready > 0 && status.number_ready != status.number_available.unwrap_or(0) {
            self.queue.add_after(
                object_key(ds.as_ref()),
                Duration::from_secs(u64::try_from(min_ready).unwrap_or(0)),
            );
        }
        Ok(())
    }

    async fn write_status(
        &self,
        ds: &Arc<DaemonSet>,
        status: &DaemonSetStatus,
        update_observed_generation: bool,
    ) -> Result<(), ControllerError> {
        let (namespace, name) = ns_name(ds);
        let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), &namespace);
        let mut obj = ds.as_ref().clone();
        let mut attempt = 0;
        loop {
            let st = obj.status.get_or_insert_with(Default::default);
            st.desired_number_scheduled = status.desired_number_scheduled;
            st.current_number_scheduled = status.current_number_scheduled;
            st.number_misscheduled = status.number_misscheduled;
            st.number_ready = status.number_ready;
            st.updated_number_scheduled = status.updated_number_scheduled;
            st.number_available = status.number_available;
            st.number_unavailable = status.number_unavailable;
            if update_observed_generation {
                st.observed_generation = obj.metadata.generation;
            }
            match api
                .replace_status(&name, &PostParams::default(), &obj)
                .await
            {
                Ok(_) => return Ok(()),
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
    use k8s_openapi::api::apps::v1::DaemonSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str) -> Arc<Node> {
        Arc::new(Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    fn pod(name: &str, node: &str, hash: &str, ready: bool) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    [(CONTROLLER_REVISION_HASH_LABEL.to_string(), hash.to_string())].into(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn status_counts() {
        let ds = DaemonSet {
            spec: Some(DaemonSetSpec {
                template: PodTemplateSpec {
                    metadata: None,
                    spec: Some(PodSpec {
                        node_selector: None,
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        let nodes = vec![node("a"), node("b"), node("c")];
        let mut node_pods = BTreeMap::new();
        node_pods.insert("a".to_string(), vec![pod("pa", "a", "h", true)]);
        node_pods.insert("b".to_string(), vec![pod("pb", "b", "old", false)]);
        node_pods.insert("gone".to_string(), vec![pod("pg", "gone", "h", true)]);
        let st = calculate_status(&ds, &nodes, &node_pods, "h", jiff::Timestamp::now());
        assert_eq!(st.desired_number_scheduled, 3);
        assert_eq!(st.current_number_scheduled, 2);
        assert_eq!(st.number_misscheduled, 0);
        assert_eq!(st.number_ready, 1);
        assert_eq!(st.updated_number_scheduled, Some(1));
        assert_eq!(st.number_available, Some(1));
        assert_eq!(st.number_unavailable, Some(2));
    }
}
