//! The TTL-after-finished controller: deletes a finished Job (condition `Complete`
//! or `Failed` True) once `spec.ttlSecondsAfterFinished` seconds have passed since
//! the condition's `lastTransitionTime`. Jobs are queued for their expiry time
//! rather than polled. Before deleting, the Job is read fresh from the API server
//! and checked again; the delete cascades in the foreground and carries a UID
//! precondition, so a Job recreated under the same name is never deleted by mistake.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use kube::Client;

use controllers::controller::{run_workers, ControllerContext, ControllerFuture};
use controllers::error::ControllerError;
use controllers::informer::{
    object_key, split_key, HandlerRegistration, Informer, InformerFactory, Notification, Store,
};
use controllers::workqueue::WorkQueue;

use crate::clock::{SharedClock, SystemClock};

/// Canonical name of the TTL-after-finished controller.
pub const TTL_AFTER_FINISHED_CONTROLLER_NAME: &str = "ttl-after-finished-controller";

/// Starts the controller with `--concurrent-ttl-after-finished-syncs` workers.
pub fn start_ttl_after_finished_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    let workers = usize::try_from(ctx.config.concurrent_ttl_after_finished_syncs).unwrap_or(1);
    let c = TtlAfterFinishedController::new(ctx, Arc::new(SystemClock));
    Ok(Box::pin(c.run(workers)))
}

/// Whether the Job has a TTL and has finished.
pub fn needs_cleanup(job: &Job) -> bool {
    job.spec
        .as_ref()
        .is_some_and(|s| s.ttl_seconds_after_finished.is_some())
        && crate::cronjob::utils::is_job_finished(job)
}

/// When the Job finished: the last transition of its `Complete`/`Failed` condition.
pub fn job_finish_time(job: &Job) -> Result<Timestamp, String> {
    let ns = job.metadata.namespace.as_deref().unwrap_or("");
    let name = job.metadata.name.as_deref().unwrap_or("");
    let cond = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
        .ok_or_else(|| format!("unable to find the status of the finished Job {ns}/{name}"))?;
    cond.last_transition_time
        .as_ref()
        .map(|t| t.0)
        .ok_or_else(|| format!("unable to find the time when the Job {ns}/{name} finished"))
}

/// The time left before the Job expires (negative once expired) and the expiry time.
pub fn time_left(job: &Job, now: Timestamp) -> Result<(SignedDuration, Timestamp), String> {
    if !needs_cleanup(job) {
        return Err(format!(
            "job {}/{} should not be cleaned up",
            job.metadata.namespace.as_deref().unwrap_or(""),
            job.metadata.name.as_deref().unwrap_or("")
        ));
    }
    let finished = job_finish_time(job)?;
    let ttl = job
        .spec
        .as_ref()
        .and_then(|s| s.ttl_seconds_after_finished)
        .unwrap_or(0);
    let expire = finished
        .checked_add(SignedDuration::from_secs(i64::from(ttl)))
        .map_err(|e| e.to_string())?;
    if finished > now {
        tracing::info!(job = %object_key(job), "found Job finished in the future; this is likely due to time skew in the cluster, Job cleanup will be deferred");
    }
    Ok((expire.duration_since(now), expire))
}

fn enqueue_if_needed(queue: &WorkQueue<String>, job: &Job) {
    if job.metadata.deletion_timestamp.is_none() && needs_cleanup(job) {
        queue.add(object_key(job));
    }
}

struct Inner {
    client: Client,
    jobs: Store<Job>,
    queue: WorkQueue<String>,
    clock: SharedClock,
}

/// The TTL-after-finished controller.
pub struct TtlAfterFinishedController {
    inner: Arc<Inner>,
    informers: InformerFactory,
    job_informer: Informer<Job>,
    registration: HandlerRegistration,
}

impl TtlAfterFinishedController {
    /// Builds the controller on the context's shared Job informer.
    pub fn new(ctx: &ControllerContext, clock: SharedClock) -> Self {
        let job_informer = ctx.informers.informer::<Job>();
        let queue = WorkQueue::new("ttl_jobs_to_delete");
        let q = queue.clone();
        let registration = job_informer.add_handler(move |n| match n {
            Notification::Added(j) => enqueue_if_needed(&q, j),
            Notification::Updated { new, .. } => enqueue_if_needed(&q, new),
            Notification::Deleted(_) => {}
        });
        TtlAfterFinishedController {
            inner: Arc::new(Inner {
                client: ctx.client.clone(),
                jobs: job_informer.store(),
                queue,
                clock,
            }),
            informers: ctx.informers.clone(),
            job_informer,
            registration,
        }
    }

    /// The controller's work queue.
    pub fn queue(&self) -> WorkQueue<String> {
        self.inner.queue.clone()
    }

    /// Starts the informer, waits for its cache, and runs `workers` workers until
    /// the future is dropped.
    pub async fn run(self, workers: usize) {
        self.informers.start();
        self.job_informer.wait_synced().await;
        let inner = self.inner.clone();
        let _registration = self.registration;
        run_workers(
            TTL_AFTER_FINISHED_CONTROLLER_NAME,
            inner.queue.clone(),
            workers,
            move |key| {
                let inner = inner.clone();
                async move { inner.process_job(&key).await }
            },
        )
        .await;
    }
}

impl Inner {
    /// `Some(expiry)` if the Job's TTL has passed; otherwise requeues it for its
    /// expiry (when it has one) and gives `None`.
    fn process_ttl(&self, key: &str, job: &Job) -> Result<Option<Timestamp>, ControllerError> {
        if job.metadata.deletion_timestamp.is_some() || !needs_cleanup(job) {
            return Ok(None);
        }
        let (left, expire) = time_left(job, self.clock.now()).map_err(ControllerError::Other)?;
        if left <= SignedDuration::ZERO {
            return Ok(Some(expire));
        }
        self.queue.add_after(
            key.to_string(),
            Duration::try_from(left).unwrap_or(Duration::ZERO),
        );
        Ok(None)
    }

    async fn process_job(&self, key: &str) -> Result<(), ControllerError> {
        let Some(job) = self.jobs.get(key) else {
            return Ok(());
        };
        if self.process_ttl(key, &job)?.is_none() {
            return Ok(());
        }
        let (ns, name) = split_key(key);
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let fresh = match api.get(name).await {
            Ok(j) => j,
            Err(e) => {
                let e = ControllerError::from(e);
                return if e.is_not_found() { Ok(()) } else { Err(e) };
            }
        };
        if self.process_ttl(key, &fresh)?.is_none() {
            return Ok(());
        }
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            preconditions: Some(Preconditions {
                uid: fresh.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        tracing::debug!(job = %key, "cleaning up Job");
        api.delete(name, &dp).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn job(ttl: Option<i32>, cond: Option<(&str, &str, Option<&str>)>) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("j".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                ttl_seconds_after_finished: ttl,
                ..Default::default()
            }),
            status: Some(JobStatus {
                conditions: cond.map(|(t, s, at)| {
                    vec![JobCondition {
                        type_: t.into(),
                        status: s.into(),
                        last_transition_time: at.map(|a| Time(ts(a))),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn cleanup_needs_ttl_and_finish() {
        assert!(!needs_cleanup(&job(None, Some(("Complete", "True", None)))));
        assert!(!needs_cleanup(&job(Some(10), None)));
        assert!(!needs_cleanup(&job(
            Some(10),
            Some(("Complete", "False", None))
        )));
        assert!(!needs_cleanup(&job(
            Some(10),
            Some(("SuccessCriteriaMet", "True", None))
        )));
        assert!(needs_cleanup(&job(
            Some(10),
            Some(("Failed", "True", None))
        )));
    }

    #[test]
    fn time_left_counts_from_the_finish() {
        let j = job(
            Some(100),
            Some(("Complete", "True", Some("2024-01-01T00:00:00Z"))),
        );
        let (left, expire) = time_left(&j, ts("2024-01-01T00:01:00Z")).unwrap();
        assert_eq!(left, SignedDuration::from_secs(40));
        assert_eq!(expire, ts("2024-01-01T00:01:40Z"));
        let (left, _) = time_left(&j, ts("2024-01-01T00:02:00Z")).unwrap();
        assert_eq!(left, SignedDuration::from_secs(-20));
        let no_time = job(Some(1), Some(("Failed", "True", None)));
        assert_eq!(
            time_left(&no_time, ts("2024-01-01T00:00:00Z")).unwrap_err(),
            "unable to find the time when the Job ns/j finished"
        );
        assert_eq!(
            time_left(&job(None, None), ts("2024-01-01T00:00:00Z")).unwrap_err(),
            "job ns/j should not be cleaned up"
        );
    }
}
