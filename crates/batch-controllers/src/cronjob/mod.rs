//! The CronJob controller (batch/v1): creates a Job for each scheduled time of a
//! CronJob, keeps `status.active`, `status.lastScheduleTime` and
//! `status.lastSuccessfulTime`, applies the concurrency policy (Allow, Forbid,
//! Replace), the starting deadline and suspension, removes finished Jobs beyond the
//! history limits, and requeues each CronJob for its next scheduled time rather than
//! polling. "Now" comes from an injectable [`Clock`](crate::clock::Clock).
//!
//! Events (reasons as upstream): `SuccessfulCreate`, `FailedCreate`,
//! `SawCompletedJob`, `SuccessfulDelete`, `FailedDelete`, `MissSchedule`,
//! `JobAlreadyActive`, `UnexpectedJob`, `MissingJob`, `TooManyMissedTimes`,
//! `UnparseableSchedule`, `InvalidSchedule`, `UnsupportedSchedule`,
//! `UnknownTimeZone`, `FailedGet`.

pub mod utils;

use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, PostParams, PropagationPolicy};
use kube::Client;

use controllers::controller::{run_workers, ControllerContext, ControllerFuture};
use controllers::error::ControllerError;
use controllers::events::{object_reference, EventRecorder, EventType};
use controllers::informer::{
    object_key, split_key, HandlerRegistration, Informer, InformerFactory, Notification, Store,
};
use controllers::podcontrol::NAMESPACE_TERMINATING_CAUSE;
use controllers::util::controller_ref;
use controllers::workqueue::WorkQueue;

use crate::clock::{SharedClock, SystemClock};
use crate::cron::{load_location, ParseError, Schedule};
use utils::*;

/// Canonical name of the CronJob controller.
pub const CRONJOB_CONTROLLER_NAME: &str = "cronjob-controller";

/// Starts the CronJob controller with `--concurrent-cron-job-syncs` workers.
pub fn start_cronjob_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    let workers = usize::try_from(ctx.config.concurrent_cron_job_syncs).unwrap_or(1);
    let c = CronJobController::new(ctx, Arc::new(SystemClock));
    Ok(Box::pin(c.run(workers)))
}

fn to_std(d: SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

/// The schedule `cj` runs on, as upstream builds it: a `TZ`/`CRON_TZ` prefix in the
/// schedule wins (with an `UnsupportedSchedule` warning when a recorder is given),
/// else `spec.timeZone` when it loads.
fn parse_schedule(cj: &CronJob, recorder: Option<&EventRecorder>) -> Result<Schedule, ParseError> {
    let spec = cj.spec.clone().unwrap_or_default();
    if spec.schedule.contains("TZ") {
        if let Some(r) = recorder {
            r.event(
                cj,
                EventType::Warning,
                "UnsupportedSchedule",
                format!(
                    "CRON_TZ or TZ used in schedule {:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
                    spec.schedule
                ),
            );
        }
        return Schedule::parse(&spec.schedule);
    }
    let schedule = Schedule::parse(&spec.schedule)?;
    match spec.time_zone.as_deref().map(load_location) {
        Some(Ok(tz)) => Ok(schedule.in_time_zone(tz)),
        _ => Ok(schedule),
    }
}

struct Handlers {
    cronjobs: Store<CronJob>,
    queue: WorkQueue<String>,
    clock: SharedClock,
    recorder: EventRecorder,
}

impl Handlers {
    fn resolve(&self, job: &Job) -> Option<Arc<CronJob>> {
        let r = controller_ref(&job.metadata)?;
        if r.kind != "CronJob" {
            return None;
        }
        let ns = job.metadata.namespace.as_deref().unwrap_or("");
        let cj = self.cronjobs.get_namespaced(ns, &r.name)?;
        (cj.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(cj)
    }

    fn enqueue_owner(&self, job: &Job) {
        if let Some(cj) = self.resolve(job) {
            self.queue.add(object_key(cj.as_ref()));
        }
    }

    fn on_job(&self, n: &Notification<Job>) {
        match n {
            Notification::Added(j) | Notification::Deleted(j) => self.enqueue_owner(j),
            Notification::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                if controller_ref(&old.metadata) != controller_ref(&new.metadata) {
                    self.enqueue_owner(old);
                }
                self.enqueue_owner(new);
            }
        }
    }

    fn on_cronjob(&self, n: &Notification<CronJob>) {
        match n {
            Notification::Added(cj) | Notification::Deleted(cj) => {
                self.queue.add(object_key(cj.as_ref()))
            }
            Notification::Updated { old, new } => {
                let (os, ns) = (
                    old.spec.clone().unwrap_or_default(),
                    new.spec.clone().unwrap_or_default(),
                );
                if os.schedule == ns.schedule && os.time_zone == ns.time_zone {
                    self.queue.add(object_key(new.as_ref()));
                    return;
                }
                match parse_schedule(new, None) {
                    Ok(s) => {
                        let d = next_schedule_time_duration(new, self.clock.now(), &s);
                        self.queue.add_after(object_key(new.as_ref()), to_std(d));
                    }
                    Err(_) => self.recorder.event(
                        new.as_ref(),
                        EventType::Warning,
                        "UnParseableCronJobSchedule",
                        format!("unparseable schedule for cronjob: {}", ns.schedule),
                    ),
                }
            }
        }
    }
}

struct Inner {
    client: Client,
    cronjobs: Store<CronJob>,
    jobs: Store<Job>,
    queue: WorkQueue<String>,
    recorder: EventRecorder,
    clock: SharedClock,
}

/// The CronJob controller.
pub struct CronJobController {
    inner: Arc<Inner>,
    informers: InformerFactory,
    cronjob_informer: Informer<CronJob>,
    job_informer: Informer<Job>,
    registrations: Vec<HandlerRegistration>,
}

impl CronJobController {
    /// Builds the controller on the context's shared informers, reading the time
    /// from `clock`.
    pub fn new(ctx: &ControllerContext, clock: SharedClock) -> Self {
        let cronjob_informer = ctx.informers.informer::<CronJob>();
        let job_informer = ctx.informers.informer::<Job>();
        let queue = WorkQueue::new("cronjob");
        let recorder = ctx.events.recorder(CRONJOB_CONTROLLER_NAME);
        let inner = Arc::new(Inner {
            client: ctx.client.clone(),
            cronjobs: cronjob_informer.store(),
            jobs: job_informer.store(),
            queue: queue.clone(),
            recorder: recorder.clone(),
            clock: clock.clone(),
        });
        let handlers = Arc::new(Handlers {
            cronjobs: cronjob_informer.store(),
            queue,
            clock,
            recorder,
        });
        let h = handlers.clone();
        let cj_reg = cronjob_informer.add_handler(move |n| h.on_cronjob(n));
        let h = handlers;
        let job_reg = job_informer.add_handler(move |n| h.on_job(n));
        CronJobController {
            inner,
            informers: ctx.informers.clone(),
            cronjob_informer,
            job_informer,
            registrations: vec![cj_reg, job_reg],
        }
    }

    /// The controller's work queue (keys are `namespace/name`).
    pub fn queue(&self) -> WorkQueue<String> {
        self.inner.queue.clone()
    }

    /// Syncs one CronJob now; returns when it wants to look again.
    pub async fn sync(&self, key: &str) -> Result<Option<SignedDuration>, ControllerError> {
        self.inner.sync(key).await
    }

    /// Starts the informers, waits for their caches, and runs `workers` workers until
    /// the future is dropped.
    pub async fn run(self, workers: usize) {
        self.informers.start();
        tokio::join!(
            self.cronjob_informer.wait_synced(),
            self.job_informer.wait_synced()
        );
        tracing::info!(
            controller = CRONJOB_CONTROLLER_NAME,
            workers,
            "caches synced; starting workers"
        );
        let inner = self.inner.clone();
        let _registrations = self.registrations;
        run_workers(
            CRONJOB_CONTROLLER_NAME,
            inner.queue.clone(),
            workers,
            move |key| {
                let inner = inner.clone();
                async move {
                    if let Some(after) = inner.sync(&key).await? {
                        inner.queue.add_after(key, to_std(after));
                    }
                    Ok(())
                }
            },
        )
        .await;
    }
}

impl Inner {
    fn jobs_api(&self, ns: &str) -> Api<Job> {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn get_job(&self, ns: &str, name: &str) -> Result<Job, ControllerError> {
        Ok(self.jobs_api(ns).get(name).await?)
    }

    /// Deletes a Job (background propagation) and drops it from the active list;
    /// false if the delete failed.
    async fn delete_job(&self, cj: &mut CronJob, job: &Job) -> bool {
        let ns = job.metadata.namespace.as_deref().unwrap_or("");
        let name = job.metadata.name.as_deref().unwrap_or("");
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        if let Err(e) = self.jobs_api(ns).delete(name, &dp).await {
            let e = ControllerError::from(e);
            self.recorder.event(
                cj,
                EventType::Warning,
                "FailedDelete",
                format!("Deleted job: {e}"),
            );
            tracing::error!(job = %format!("{ns}/{name}"), error = %e, "error deleting job from cronjob");
            return false;
        }
        delete_from_active_list(cj, job.metadata.uid.as_deref().unwrap_or(""));
        self.recorder.event(
            cj,
            EventType::Normal,
            "SuccessfulDelete",
            format!("Deleted job {name}"),
        );
        true
    }

    async fn sync(&self, key: &str) -> Result<Option<SignedDuration>, ControllerError> {
        let (ns, name) = split_key(key);
        let Some(cj) = self.cronjobs.get_namespaced(ns, name) else {
            return Ok(None);
        };
        let jobs: Vec<Arc<Job>> = self
            .jobs
            .list_namespace(ns)
            .into_iter()
            // As upstream: every Job whose controller is named like the CronJob.
            .filter(|j| controller_ref(&j.metadata).is_some_and(|r| r.name == name))
            .collect();
        let mut copy = cj.as_ref().clone();
        let cleaned = self.cleanup_finished_jobs(&mut copy, &jobs).await;
        let (requeue, changed, sync_err) = match self.sync_cronjob(&mut copy, &jobs).await {
            Ok((r, c)) => (r, c, None),
            Err((c, e)) => (None, c, Some(e)),
        };
        if cleaned || changed {
            let api: Api<CronJob> = Api::namespaced(self.client.clone(), ns);
            api.replace_status(name, &PostParams::default(), &copy)
                .await?;
        }
        if requeue.is_some() {
            return Ok(requeue);
        }
        match sync_err {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    /// Reconciles the CronJob with its Jobs and starts the due one. Returns the
    /// requeue delay and whether the status changed (also on error).
    async fn sync_cronjob(
        &self,
        cj: &mut CronJob,
        jobs: &[Arc<Job>],
    ) -> Result<(Option<SignedDuration>, bool), (bool, ControllerError)> {
        let now = self.clock.now();
        let mut changed = false;
        let ns = cj.metadata.namespace.clone().unwrap_or_default();
        let cj_name = cj.metadata.name.clone().unwrap_or_default();
        for j in jobs {
            let juid = j.metadata.uid.clone().unwrap_or_default();
            let jname = j.metadata.name.clone().unwrap_or_default();
            let found = in_active_list(cj, &juid);
            if !found && !is_job_finished(j) {
                let api: Api<CronJob> = Api::namespaced(self.client.clone(), &ns);
                let fresh = api
                    .get(&cj_name)
                    .await
                    .map_err(|e| (changed, ControllerError::from(e)))?;
                if in_active_list(&fresh, &juid) {
                    *cj = fresh;
                    continue;
                }
                self.recorder.event(
                    cj,
                    EventType::Warning,
                    "UnexpectedJob",
                    format!("Saw a job that the controller did not create or forgot: {jname}"),
                );
            } else if found && is_job_finished(j) {
                let status = finished_status(j).unwrap_or_default().to_string();
                delete_from_active_list(cj, &juid);
                self.recorder.event(
                    cj,
                    EventType::Normal,
                    "SawCompletedJob",
                    format!("Saw completed job: {jname}, status: {status}"),
                );
                changed = true;
            } else if is_job_succeeded(j) {
                let completion = j.status.as_ref().and_then(|s| s.completion_time.clone());
                let st = cj.status.get_or_insert_with(Default::default);
                match (&st.last_successful_time, &completion) {
                    (None, _) => {
                        st.last_successful_time = completion;
                        changed = true;
                    }
                    (Some(last), Some(c)) if c.0 > last.0 => {
                        st.last_successful_time = completion;
                        changed = true;
                    }
                    _ => {}
                }
            }
        }

        // Active entries whose Job is gone.
        let active = cj
            .status
            .as_ref()
            .and_then(|s| s.active.clone())
            .unwrap_or_default();
        for r in active {
            let ruid = r.uid.clone().unwrap_or_default();
            if jobs
                .iter()
                .any(|j| j.metadata.uid.as_deref() == Some(ruid.as_str()))
            {
                continue;
            }
            let rns = r.namespace.clone().unwrap_or_default();
            let rname = r.name.clone().unwrap_or_default();
            match self.get_job(&rns, &rname).await {
                Err(e) if e.is_not_found() => {
                    self.recorder.event(
                        cj,
                        EventType::Normal,
                        "MissingJob",
                        format!("Active job went missing: {rname}"),
                    );
                    delete_from_active_list(cj, &ruid);
                    changed = true;
                }
                Err(e) => return Err((changed, e)),
                Ok(_) => {}
            }
        }

        if cj.metadata.deletion_timestamp.is_some() {
            return Ok((None, changed));
        }
        let spec = cj.spec.clone().unwrap_or_default();
        if let Some(tz) = &spec.time_zone {
            if let Err(e) = load_location(tz) {
                self.recorder.event(
                    cj,
                    EventType::Warning,
                    "UnknownTimeZone",
                    format!("invalid timeZone: {tz:?}: {e}"),
                );
                return Ok((None, changed));
            }
        }
        if spec.suspend == Some(true) {
            return Ok((None, changed));
        }
        let schedule = match parse_schedule(cj, Some(&self.recorder)) {
            Ok(s) => s,
            Err(e) => {
                self.recorder.event(
                    cj,
                    EventType::Warning,
                    "UnparseableSchedule",
                    format!("unparseable schedule: {:?} : {e}", spec.schedule),
                );
                return Ok((None, changed));
            }
        };
        let (scheduled, too_many) = match next_schedule_time(cj, now, &schedule) {
            Ok(x) => x,
            Err(e) => {
                self.recorder.event(
                    cj,
                    EventType::Warning,
                    "InvalidSchedule",
                    format!("invalid schedule: {} : {e}", spec.schedule),
                );
                return Ok((None, changed));
            }
        };
        if too_many {
            self.recorder.event(
                cj,
                EventType::Warning,
                "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
            );
        }
        let requeue = |cj: &CronJob| Some(next_schedule_time_duration(cj, now, &schedule));
        let Some(scheduled) = scheduled else {
            return Ok((requeue(cj), changed));
        };
        if let Some(d) = spec.starting_deadline_seconds {
            let too_late = scheduled
                .checked_add(SignedDuration::from_secs(d))
                .is_ok_and(|limit| limit < now);
            if too_late {
                self.recorder.event(
                    cj,
                    EventType::Warning,
                    "MissSchedule",
                    format!(
                        "Missed scheduled time to start a job: {}",
                        scheduled.strftime("%a, %d %b %Y %H:%M:%S %z")
                    ),
                );
                return Ok((requeue(cj), changed));
            }
        }
        let already = in_active_list_by_name(cj, &ns, &job_name(cj, scheduled))
            || cj
                .status
                .as_ref()
                .and_then(|s| s.last_schedule_time.as_ref())
                .is_some_and(|t| t.0 == scheduled);
        if already {
            return Ok((requeue(cj), changed));
        }
        let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
        let active_count = cj
            .status
            .as_ref()
            .and_then(|s| s.active.as_ref())
            .map_or(0, Vec::len);
        if policy == "Forbid" && active_count > 0 {
            self.recorder.event(
                cj,
                EventType::Normal,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            );
            return Ok((requeue(cj), changed));
        }
        if policy == "Replace" {
            let active = cj
                .status
                .as_ref()
                .and_then(|s| s.active.clone())
                .unwrap_or_default();
            for r in active {
                let rns = r.namespace.clone().unwrap_or_default();
                let rname = r.name.clone().unwrap_or_default();
                let job = match self.get_job(&rns, &rname).await {
                    Ok(j) => j,
                    Err(e) => {
                        self.recorder.event(
                            cj,
                            EventType::Warning,
                            "FailedGet",
                            format!("Get job: {e}"),
                        );
                        return Err((changed, e));
                    }
                };
                if !self.delete_job(cj, &job).await {
                    return Err((
                        changed,
                        ControllerError::Other(format!("could not replace job {rns}/{rname}")),
                    ));
                }
                changed = true;
            }
        }

        let tz = schedule.time_zone().clone();
        let request = job_from_template(cj, scheduled, &tz);
        let req_name = request.metadata.name.clone().unwrap_or_default();
        let created = match self
            .jobs_api(&ns)
            .create(&PostParams::default(), &request)
            .await
        {
            Ok(job) => {
                self.recorder.event(
                    cj,
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("Created job {}", job.metadata.name.as_deref().unwrap_or("")),
                );
                job
            }
            Err(e) => {
                let e = ControllerError::from(e);
                if e.has_status_cause(NAMESPACE_TERMINATING_CAUSE) {
                    return Err((changed, e));
                }
                if !e.is_already_exists() {
                    self.recorder.event(
                        cj,
                        EventType::Warning,
                        "FailedCreate",
                        format!("Error creating job: {e}"),
                    );
                    return Err((changed, e));
                }
                let job = self
                    .get_job(&ns, &req_name)
                    .await
                    .map_err(|e| (changed, e))?;
                let ours = controller_ref(&job.metadata)
                    .is_some_and(|r| Some(r.uid.as_str()) == cj.metadata.uid.as_deref());
                if !ours || in_active_list(cj, job.metadata.uid.as_deref().unwrap_or("")) {
                    return Ok((None, changed));
                }
                tracing::info!(cronjob = %cj_name, job = %req_name, "job already exists");
                job
            }
        };
        let st = cj.status.get_or_insert_with(Default::default);
        st.active
            .get_or_insert_with(Vec::new)
            .push(object_reference(&created));
        st.last_schedule_time = Some(Time(scheduled));
        Ok((requeue(cj), true))
    }

    /// Deletes the oldest finished Jobs beyond the history limits; whether the status
    /// changed.
    async fn cleanup_finished_jobs(&self, cj: &mut CronJob, jobs: &[Arc<Job>]) -> bool {
        let spec = cj.spec.clone().unwrap_or_default();
        if spec.successful_jobs_history_limit.is_none() && spec.failed_jobs_history_limit.is_none()
        {
            return false;
        }
        let mut succeeded: Vec<Job> = Vec::new();
        let mut failed: Vec<Job> = Vec::new();
        for j in jobs {
            match finished_status(j) {
                Some("Complete") => succeeded.push(j.as_ref().clone()),
                Some("Failed") => failed.push(j.as_ref().clone()),
                _ => {}
            }
        }
        let mut changed = false;
        for (mut list, limit) in [
            (succeeded, spec.successful_jobs_history_limit),
            (failed, spec.failed_jobs_history_limit),
        ] {
            let Some(limit) = limit else { continue };
            let excess = list
                .len()
                .saturating_sub(usize::try_from(limit).unwrap_or(0));
            if excess == 0 {
                continue;
            }
            list.sort_by(by_start_time);
            for job in list.iter().take(excess) {
                if self.delete_job(cj, job).await {
                    changed = true;
                }
            }
        }
        changed
    }
}
