//! The Job controller (batch/v1): runs pods until the requested number complete.
//!
//! - Pods are created from the template with the `batch.kubernetes.io/job-tracking`
//!   finalizer, named `<job>-` (Indexed: `<job>-<index>-`, with hostname
//!   `<job>-<index>`, the completion index annotation and label, and the
//!   `JOB_COMPLETION_INDEX` environment variable taken from that label), in
//!   slow-start batches, never more than parallelism allows; expectations keep bursts
//!   from overshooting.
//! - Finished pods are first recorded in `status.uncountedTerminatedPods`, then their
//!   finalizer is removed and they move to `succeeded`/`failed`
//!   (`completedIndexes`/`failedIndexes` for Indexed Jobs).
//! - Failure: `backoffLimit` (restarts count for restartPolicy OnFailure),
//!   `activeDeadlineSeconds`, the pod failure policy, `backoffLimitPerIndex` and
//!   `maxFailedIndexes`; the `FailureTarget` condition comes first, `Failed` once no
//!   pod is left terminating. Success: completions (or the success policy) give
//!   `SuccessCriteriaMet`, then `Complete`.
//! - Failed pods are replaced after an exponential backoff (10 s doubling, at most
//!   10 minutes, reset by a success). Suspension deletes the active pods and sets the
//!   `Suspended` condition.
//! - Pods are adopted and released like the ReplicaSet controller's; orphaned pods
//!   still carrying the finalizer get it removed.

pub mod logic;
mod sync;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use parking_lot::Mutex;

use controllers::controller::{run_workers, ControllerContext, ControllerFuture};
use controllers::error::ControllerError;
use controllers::events::EventRecorder;
use controllers::expectations::Expectations;
use controllers::informer::{
    controller_uid_index_values, object_key, HandlerRegistration, Informer, InformerFactory,
    Notification, Store, CONTROLLER_UID_INDEX,
};
use controllers::podcontrol::PodControl;
use controllers::util::{controller_ref, pod_key, LabelMatcher};
use controllers::workqueue::{ExponentialFailureRateLimiter, WorkQueue};

use crate::clock::{SharedClock, SystemClock};
use logic::*;

/// Canonical name of the Job controller.
pub const JOB_CONTROLLER_NAME: &str = "job-controller";
/// Pod events are batched: the Job is synced this long after the first one.
pub const SYNC_JOB_BATCH_PERIOD: Duration = Duration::from_secs(1);
/// At most this many pods are created or deleted in one sync.
pub const MAX_POD_CREATE_DELETE_PER_SYNC: usize = 500;
/// At most this many UIDs are kept in `status.uncountedTerminatedPods`.
pub const MAX_UNCOUNTED_PODS: usize = 500;

/// Starts the Job controller with `--concurrent-job-syncs` workers.
pub fn start_job_controller(ctx: &ControllerContext) -> Result<ControllerFuture, ControllerError> {
    let workers = usize::try_from(ctx.config.concurrent_job_syncs).unwrap_or(1);
    let c = JobController::new(ctx, Arc::new(SystemClock));
    Ok(Box::pin(c.run(workers)))
}

/// Pod UIDs whose finalizer removal each Job waits to observe.
#[derive(Debug, Default)]
pub struct FinalizerExpectations {
    uids: Mutex<HashMap<String, HashSet<String>>>,
}

impl FinalizerExpectations {
    /// Records that the finalizers of `uids` are being removed for `key`.
    pub fn expect_removed(&self, key: &str, uids: &[String]) {
        self.uids
            .lock()
            .entry(key.to_string())
            .or_default()
            .extend(uids.iter().cloned());
    }

    /// The removal for `uid` was seen (or will not happen).
    pub fn removal_observed(&self, key: &str, uid: &str) {
        let mut map = self.uids.lock();
        if let Some(set) = map.get_mut(key) {
            set.remove(uid);
        }
    }

    /// The UIDs still expected for `key`.
    pub fn expected(&self, key: &str) -> HashSet<String> {
        self.uids.lock().get(key).cloned().unwrap_or_default()
    }

    /// Forgets `key`.
    pub fn delete(&self, key: &str) {
        self.uids.lock().remove(key);
    }
}

/// Whether the Job is managed by another controller (`spec.managedBy`).
pub fn managed_by_external(job: &Job) -> Option<&str> {
    spec_of(job)
        .managed_by
        .as_deref()
        .filter(|m| *m != JOB_CONTROLLER_MANAGED_BY)
}

struct Handlers {
    jobs: Store<Job>,
    pods: Store<Pod>,
    queue: WorkQueue<String>,
    orphan_queue: WorkQueue<String>,
    expectations: Arc<Expectations>,
    finalizers: Arc<FinalizerExpectations>,
    clock: SharedClock,
}

impl Handlers {
    fn resolve(&self, ns: &str, r: &OwnerReference) -> Option<Arc<Job>> {
        if r.kind != "Job" {
            return None;
        }
        let job = self.jobs.get_namespaced(ns, &r.name)?;
        (job.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(job)
    }

    fn batched(&self, job: &Job) {
        self.queue.add_after(object_key(job), SYNC_JOB_BATCH_PERIOD);
    }

    fn jobs_for_pod(&self, pod: &Pod) -> Vec<Arc<Job>> {
        let labels = pod.metadata.labels.as_ref();
        if labels.is_none_or(|l| l.is_empty()) {
            return Vec::new();
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let jobs: Vec<Arc<Job>> = self
            .jobs
            .list_namespace(ns)
            .into_iter()
            .filter(
                |j| match LabelMatcher::from_label_selector(spec_of(j).selector.as_ref()) {
                    Ok(sel) => !sel.is_empty() && sel.matches(labels),
                    Err(_) => false,
                },
            )
            .collect();
        if jobs.len() > 1 {
            tracing::warn!(pod = %pod_key(pod), "user error: more than one job is selecting pods with these labels");
        }
        jobs
    }

    fn orphan(&self, pod: &Pod) {
        if has_tracking_finalizer(pod) {
            self.orphan_queue.add(pod_key(pod));
        }
    }

    fn pod_deleted(&self, pod: &Pod, is_final: bool) {
        let has_finalizer = has_tracking_finalizer(pod);
        let Some(r) = controller_ref(&pod.metadata) else {
            self.orphan(pod);
            return;
        };
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let job = match self.resolve(ns, r) {
            Some(j) if !is_job_finished(&j) => j,
            _ => {
                self.orphan(pod);
                return;
            }
        };
        let key = object_key(job.as_ref());
        self.expectations.deletion_observed(&key, &pod_key(pod));
        if is_final || !has_finalizer {
            self.finalizers
                .removal_observed(&key, pod.metadata.uid.as_deref().unwrap_or(""));
        }
        self.batched(&job);
    }

    fn on_pod(&self, n: &Notification<Pod>) {
        match n {
            Notification::Added(pod) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    self.pod_deleted(pod, false);
                    return;
                }
                let ns = pod.metadata.namespace.as_deref().unwrap_or("");
                if let Some(r) = controller_ref(&pod.metadata) {
                    if let Some(job) = self.resolve(ns, r) {
                        self.expectations
                            .creation_observed(&object_key(job.as_ref()));
                        self.batched(&job);
                    }
                    return;
                }
                self.orphan(pod);
                for job in self.jobs_for_pod(pod) {
                    self.batched(&job);
                }
            }
            Notification::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                if new.metadata.deletion_timestamp.is_some() {
                    self.pod_deleted(new, false);
                    return;
                }
                let ns = new.metadata.namespace.as_deref().unwrap_or("");
                let uid = new.metadata.uid.clone().unwrap_or_default();
                let finalizer_removed = !has_tracking_finalizer(new);
                let cur_ref = controller_ref(&new.metadata);
                let old_ref = controller_ref(&old.metadata);
                let ref_changed = cur_ref != old_ref;
                if ref_changed {
                    if let Some(job) = old_ref.and_then(|r| self.resolve(ns, r)) {
                        if finalizer_removed {
                            self.finalizers
                                .removal_observed(&object_key(job.as_ref()), &uid);
                        }
                        self.batched(&job);
                    }
                }
                if let Some(r) = cur_ref {
                    if let Some(job) = self.resolve(ns, r) {
                        if finalizer_removed {
                            self.finalizers
                                .removal_observed(&object_key(job.as_ref()), &uid);
                        }
                        self.batched(&job);
                    }
                    return;
                }
                self.orphan(new);
                if ref_changed || old.metadata.labels != new.metadata.labels {
                    for job in self.jobs_for_pod(new) {
                        self.batched(&job);
                    }
                }
            }
            Notification::Deleted(pod) => self.pod_deleted(pod, true),
        }
    }

    /// Queues the pods of `job` that still carry the finalizer for cleanup.
    fn cleanup_pod_finalizers(&self, job: &Job) {
        let uid = job.metadata.uid.clone().unwrap_or_default();
        for pod in self.pods.by_index(CONTROLLER_UID_INDEX, &uid) {
            if has_tracking_finalizer(&pod) {
                self.orphan_queue.add(pod_key(&pod));
            }
        }
    }

    fn on_job(&self, n: &Notification<Job>) {
        match n {
            Notification::Added(job) => self.queue.add(object_key(job.as_ref())),
            Notification::Updated { old, new } => {
                let key = object_key(new.as_ref());
                if old.metadata.generation == new.metadata.generation {
                    self.batched(new);
                } else {
                    self.queue.add(key.clone());
                }
                if is_job_finished(new) {
                    self.cleanup_pod_finalizers(new);
                }
                let start = new.status.as_ref().and_then(|s| s.start_time.as_ref());
                let cur = spec_of(new).active_deadline_seconds;
                let prev = spec_of(old).active_deadline_seconds;
                if let (Some(start), Some(ads)) = (start, cur) {
                    if prev != Some(ads) {
                        let passed = self.clock.now().duration_since(start.0);
                        let left = jiff::SignedDuration::from_secs(ads) - passed;
                        self.queue
                            .add_after(key, Duration::try_from(left).unwrap_or(Duration::ZERO));
                    }
                }
            }
            Notification::Deleted(job) => {
                self.queue.add(object_key(job.as_ref()));
                self.cleanup_pod_finalizers(job);
            }
        }
    }
}

pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) jobs: Store<Job>,
    pub(crate) pods: Store<Pod>,
    pub(crate) queue: WorkQueue<String>,
    pub(crate) orphan_queue: WorkQueue<String>,
    pub(crate) expectations: Arc<Expectations>,
    pub(crate) finalizers: Arc<FinalizerExpectations>,
    pub(crate) pod_control: PodControl,
    pub(crate) recorder: EventRecorder,
    pub(crate) clock: SharedClock,
    pub(crate) backoff: Mutex<HashMap<String, BackoffRecord>>,
}

/// The Job controller.
pub struct JobController {
    inner: Arc<Inner>,
    informers: InformerFactory,
    job_informer: Informer<Job>,
    pod_informer: Informer<Pod>,
    registrations: Vec<HandlerRegistration>,
}

fn job_queue(name: &str) -> WorkQueue<String> {
    // Upstream: per-item backoff from 1 s to 1 minute.
    WorkQueue::with_rate_limiter(
        name,
        Box::new(ExponentialFailureRateLimiter::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
        )),
    )
}

impl JobController {
    /// Builds the controller on the context's shared informers, reading the time
    /// from `clock`.
    pub fn new(ctx: &ControllerContext, clock: SharedClock) -> Self {
        let job_informer = ctx.informers.informer::<Job>();
        let pod_informer = ctx.informers.informer::<Pod>();
        pod_informer.add_index(CONTROLLER_UID_INDEX, controller_uid_index_values::<Pod>);
        let queue = job_queue("job");
        let orphan_queue = job_queue("job_orphan_pod");
        let expectations = Arc::new(Expectations::new());
        let finalizers = Arc::new(FinalizerExpectations::default());
        let recorder = ctx.events.recorder(JOB_CONTROLLER_NAME);
        let inner = Arc::new(Inner {
            client: ctx.client.clone(),
            jobs: job_informer.store(),
            pods: pod_informer.store(),
            queue: queue.clone(),
            orphan_queue: orphan_queue.clone(),
            expectations: expectations.clone(),
            finalizers: finalizers.clone(),
            pod_control: PodControl::new(ctx.client.clone(), recorder.clone()),
            recorder,
            clock: clock.clone(),
            backoff: Mutex::new(HashMap::new()),
        });
        let handlers = Arc::new(Handlers {
            jobs: job_informer.store(),
            pods: pod_informer.store(),
            queue,
            orphan_queue,
            expectations,
            finalizers,
            clock,
        });
        let h = handlers.clone();
        let job_reg = job_informer.add_handler(move |n| h.on_job(n));
        let h = handlers;
        let pod_reg = pod_informer.add_handler(move |n| h.on_pod(n));
        JobController {
            inner,
            informers: ctx.informers.clone(),
            job_informer,
            pod_informer,
            registrations: vec![job_reg, pod_reg],
        }
    }

    /// The controller's work queue (keys are `namespace/name`).
    pub fn queue(&self) -> WorkQueue<String> {
        self.inner.queue.clone()
    }

    /// Syncs one Job now (for tests and tools; workers do this on their own).
    pub async fn sync(&self, key: &str) -> Result<(), ControllerError> {
        self.inner.sync_job(key).await
    }

    /// Starts the informers, waits for their caches, and runs `workers` workers (and
    /// one worker for orphaned pods) until the future is dropped.
    pub async fn run(self, workers: usize) {
        self.informers.start();
        tokio::join!(
            self.job_informer.wait_synced(),
            self.pod_informer.wait_synced()
        );
        tracing::info!(
            controller = JOB_CONTROLLER_NAME,
            workers,
            "caches synced; starting workers"
        );
        let _registrations = self.registrations;
        let inner = self.inner.clone();
        let jobs = run_workers(JOB_CONTROLLER_NAME, inner.queue.clone(), workers, {
            let inner = inner.clone();
            move |key| {
                let inner = inner.clone();
                async move { inner.sync_job(&key).await }
            }
        });
        let orphans = run_workers("job-orphan-pods", inner.orphan_queue.clone(), 1, {
            let inner = inner.clone();
            move |key| {
                let inner = inner.clone();
                async move { inner.sync_orphan_pod(&key).await }
            }
        });
        tokio::join!(jobs, orphans);
    }
}
