//! One sync of a Job: claim its pods, decide whether it failed or succeeded,
//! create or delete pods, account finished pods through
//! `status.uncountedTerminatedPods` and the tracking finalizer, and write status.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use serde_json::json;

use controllers::error::ControllerError;
use controllers::events::EventType;
use controllers::informer::{orphan_index_value, split_key, CONTROLLER_UID_INDEX};
use controllers::podcontrol::{
    pod_from_template, FAILED_CREATE_POD_REASON, NAMESPACE_TERMINATING_CAUSE,
    SUCCESSFUL_CREATE_POD_REASON,
};
use controllers::util::{controller_ref, is_pod_ready, new_controller_ref, pod_key, LabelMatcher};

use super::logic::*;
use super::{
    managed_by_external, Inner, MAX_POD_CREATE_DELETE_PER_SYNC, MAX_UNCOUNTED_PODS,
    SYNC_JOB_BATCH_PERIOD,
};
use crate::intervals::OrderedIntervals;

/// Longest generateName prefix the apiserver keeps (it appends 5 random characters).
const MAX_GENERATED_NAME_LENGTH: usize = 58;

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn non_zero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

fn uid_of(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

fn status_mut(job: &mut Job) -> &mut JobStatus {
    job.status.get_or_insert_with(Default::default)
}

fn uncounted_mut(job: &mut Job) -> &mut UncountedTerminatedPods {
    status_mut(job)
        .uncounted_terminated_pods
        .get_or_insert_with(Default::default)
}

fn uncounted_lists(job: &Job) -> (Vec<String>, Vec<String>) {
    let u = job
        .status
        .as_ref()
        .and_then(|s| s.uncounted_terminated_pods.clone())
        .unwrap_or_default();
    (
        u.succeeded.unwrap_or_default(),
        u.failed.unwrap_or_default(),
    )
}

/// The generateName of the pod for `index`: `<job>-<index>-`, the job name cut so
/// that the prefix fits.
pub fn generate_name_with_index(job_name: &str, index: i32) -> String {
    let suffix = format!("-{index}-");
    let prefix = format!("{job_name}{suffix}");
    if prefix.len() > MAX_GENERATED_NAME_LENGTH {
        let keep = MAX_GENERATED_NAME_LENGTH.saturating_sub(suffix.len());
        let cut: String = job_name.chars().take(keep).collect();
        format!("{cut}{suffix}")
    } else {
        prefix
    }
}

/// Adds `JOB_COMPLETION_INDEX` (from the completion index label) to every container
/// and init container that does not set it.
pub fn add_completion_index_env(template: &mut PodTemplateSpec) {
    let Some(spec) = template.spec.as_mut() else {
        return;
    };
    let containers = spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut());
    for c in containers {
        let env = c.env.get_or_insert_with(Vec::new);
        if env.iter().any(|e| e.name == COMPLETION_INDEX_ENV_NAME) {
            continue;
        }
        env.push(EnvVar {
            name: COMPLETION_INDEX_ENV_NAME.to_string(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: format!("metadata.labels['{JOB_COMPLETION_INDEX_ANNOTATION}']"),
                }),
                ..Default::default()
            }),
        });
    }
}

/// The state one sync works on.
pub(crate) struct SyncCtx {
    job: Job,
    pods: Vec<Arc<Pod>>,
    active_pods: Vec<Arc<Pod>>,
    finished: Option<JobCondition>,
    succeeded: i32,
    failed: i32,
    prev_succeeded_indexes: OrderedIntervals,
    succeeded_indexes: OrderedIntervals,
    failed_indexes: Option<OrderedIntervals>,
    new_backoff: BackoffRecord,
    expected_rm_finalizers: HashSet<String>,
    uncounted_succeeded: HashSet<String>,
    uncounted_failed: HashSet<String>,
    delayed_deletion: HashMap<i32, Arc<Pod>>,
    terminating: i32,
    ready: i32,
}

impl SyncCtx {
    /// Pods with the finalizer not yet counted (nor being uncounted), with a valid
    /// index for Indexed Jobs, that pass `filter`.
    fn valid_pods(&self, skip: &HashSet<String>, filter: impl Fn(&Pod) -> bool) -> Vec<Arc<Pod>> {
        let completions = completions(&self.job).unwrap_or(0);
        let indexed = is_indexed(&self.job);
        self.pods
            .iter()
            .filter(|p| {
                let uid = uid_of(p);
                if !has_tracking_finalizer(p)
                    || skip.contains(&uid)
                    || self.expected_rm_finalizers.contains(&uid)
                {
                    return false;
                }
                if indexed && completion_index(p).is_none_or(|ix| ix >= completions) {
                    return false;
                }
                filter(p)
            })
            .cloned()
            .collect()
    }

    fn is_success_criteria(c: &Option<JobCondition>) -> bool {
        c.as_ref()
            .is_some_and(|c| c.type_ == COND_SUCCESS_CRITERIA_MET)
    }
}

/// The indexes that succeeded before (from status) and including the pods that
/// succeeded since.
pub fn calculate_succeeded_indexes(
    job: &Job,
    pods: &[Arc<Pod>],
) -> (OrderedIntervals, OrderedIntervals) {
    let completions = completions(job).unwrap_or(0);
    let prev = OrderedIntervals::parse(
        job.status
            .as_ref()
            .and_then(|s| s.completed_indexes.as_deref())
            .unwrap_or(""),
        completions,
    );
    let mut new: Vec<i32> = pods
        .iter()
        .filter(|p| is_succeeded(p) && has_tracking_finalizer(p))
        .filter_map(|p| completion_index(p))
        .filter(|ix| *ix < completions)
        .collect();
    new.sort_unstable();
    new.dedup();
    let all = prev.with_ordered_indexes(&new);
    (prev, all)
}

/// The failed indexes (status plus newly failed ones).
pub fn calculate_failed_indexes(job: &Job, pods: &[Arc<Pod>]) -> OrderedIntervals {
    let completions = completions(job).unwrap_or(0);
    let prev = OrderedIntervals::parse(
        job.status
            .as_ref()
            .and_then(|s| s.failed_indexes.as_deref())
            .unwrap_or(""),
        completions,
    );
    let mut new: Vec<i32> = pods
        .iter()
        .filter(|p| has_tracking_finalizer(p) && is_index_failed(job, p))
        .filter_map(|p| completion_index(p))
        .filter(|ix| *ix < completions)
        .collect();
    new.sort_unstable();
    new.dedup();
    prev.with_ordered_indexes(&new)
}

impl Inner {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn failure_condition(&self, reason: &str, message: &str) -> JobCondition {
        new_condition(COND_FAILURE_TARGET, "True", reason, message, self.now())
    }

    async fn update_status(&self, job: &Job) -> Result<Job, ControllerError> {
        let ns = job.metadata.namespace.as_deref().unwrap_or("");
        let name = job.metadata.name.as_deref().unwrap_or("");
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        Ok(api
            .replace_status(name, &PostParams::default(), job)
            .await?)
    }

    /// Claims the pods of `job` (all of its namespace that it owns or that are
    /// orphans matching its selector), adopting with the tracking finalizer.
    async fn pods_for_job(&self, job: &Job) -> Result<Vec<Arc<Pod>>, ControllerError> {
        let selector = LabelMatcher::from_label_selector(spec_of(job).selector.as_ref())
            .map_err(|e| ControllerError::Other(format!("couldn't convert Job selector: {e}")))?;
        let ns = job.metadata.namespace.clone().unwrap_or_default();
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let mut candidates = self.pods.by_index(CONTROLLER_UID_INDEX, &uid);
        candidates.extend(
            self.pods
                .by_index(CONTROLLER_UID_INDEX, &orphan_index_value(&ns)),
        );
        candidates.retain(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()));
        controllers::claim::claim(
            &self.client,
            job,
            &selector,
            candidates,
            super::JOB_CONTROLLER_NAME,
            |pod, mut patch| async move {
                let adopting = patch["metadata"]["ownerReferences"][0]
                    .get("$patch")
                    .is_none();
                if adopting {
                    patch["metadata"]["finalizers"] = json!([JOB_TRACKING_FINALIZER]);
                }
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                let name = pod.metadata.name.clone().unwrap_or_default();
                let patched = self.pod_control.patch_pod(&ns, &name, &patch).await?;
                Ok(Arc::new(patched))
            },
        )
        .await
    }

    /// Removes the tracking finalizer from an orphaned pod (or one whose Job is
    /// finished or gone).
    pub(crate) async fn sync_orphan_pod(&self, key: &str) -> Result<(), ControllerError> {
        let Some(pod) = self.pods.get(key) else {
            return Ok(());
        };
        if let Some(r) = controller_ref(&pod.metadata) {
            if r.kind != "Job" || r.api_version != "batch/v1" {
                return Ok(());
            }
            let ns = pod.metadata.namespace.as_deref().unwrap_or("");
            let job = self
                .jobs
                .get_namespaced(ns, &r.name)
                .filter(|j| j.metadata.uid.as_deref() == Some(r.uid.as_str()));
            if let Some(job) = &job {
                if managed_by_external(job).is_some() || !is_job_finished(job) {
                    return Ok(());
                }
            }
        }
        if has_tracking_finalizer(&pod) {
            let (ns, name) = split_key(key);
            match self
                .pod_control
                .patch_pod(ns, name, &remove_finalizer_patch())
                .await
            {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    pub(crate) async fn sync_job(&self, key: &str) -> Result<(), ControllerError> {
        let (ns, name) = split_key(key);
        if ns.is_empty() || name.is_empty() {
            return Err(ControllerError::Other(format!(
                "invalid job key {key:?}: either namespace or name is missing"
            )));
        }
        let Some(shared) = self.jobs.get(key) else {
            self.expectations.delete(key);
            self.finalizers.delete(key);
            self.backoff.lock().remove(key);
            return Ok(());
        };
        if managed_by_external(&shared).is_some() {
            return Ok(());
        }
        let mut job = shared.as_ref().clone();
        if is_job_finished(&job) {
            self.backoff.lock().remove(key);
            return Ok(());
        }
        if let Some(mode) = spec_of(&job).completion_mode.as_deref() {
            if mode != "NonIndexed" && mode != "Indexed" {
                self.recorder.event(
                    &job,
                    EventType::Warning,
                    "UnknownCompletionMode",
                    "Skipped Job sync because completion mode is unknown",
                );
                return Ok(());
            }
        }
        uncounted_mut(&mut job);
        let satisfied = self.expectations.satisfied(key);
        let pods = self.pods_for_job(&job).await?;
        let active_pods = filter_active(&pods);
        let (unc_s, unc_f) = uncounted_lists(&job);
        let mut ctx = SyncCtx {
            ready: count(active_pods.iter().filter(|p| is_pod_ready(p)).count()),
            terminating: count(pods.iter().filter(|p| is_terminating(p)).count()),
            job,
            pods,
            active_pods,
            finished: None,
            succeeded: 0,
            failed: 0,
            prev_succeeded_indexes: OrderedIntervals::default(),
            succeeded_indexes: OrderedIntervals::default(),
            failed_indexes: None,
            new_backoff: BackoffRecord::default(),
            expected_rm_finalizers: self.finalizers.expected(key),
            uncounted_succeeded: unc_s.iter().cloned().collect(),
            uncounted_failed: unc_f.iter().cloned().collect(),
            delayed_deletion: HashMap::new(),
        };
        let mut active = count(ctx.active_pods.len());
        let new_succeeded = ctx.valid_pods(&ctx.uncounted_succeeded, is_succeeded);
        let new_failed = ctx.valid_pods(&ctx.uncounted_failed, |p| is_pod_failed(p, &ctx.job));
        let policy = spec_of(&ctx.job).pod_failure_policy.clone();
        let counted_new_failed = new_failed
            .iter()
            .filter(|p| match_pod_failure_policy(policy.as_ref(), p).count_failed)
            .count();
        let st = ctx.job.status.clone().unwrap_or_default();
        ctx.succeeded = st.succeeded.unwrap_or(0) + count(new_succeeded.len()) + count(unc_s.len());
        ctx.failed = st.failed.unwrap_or(0) + count(counted_new_failed) + count(unc_f.len());

        let now = self.now();
        if st.start_time.is_none() && !is_suspended(&ctx.job) {
            status_mut(&mut ctx.job).start_time = Some(Time(now));
        }
        let record = self.backoff.lock().get(key).cloned().unwrap_or_default();
        ctx.new_backoff = record.updated(&new_succeeded, &new_failed);

        let backoff_limit = spec_of(&ctx.job).backoff_limit.unwrap_or(6);
        let exceeds_backoff_limit = ctx.failed > backoff_limit;
        ctx.finished = find_condition(&ctx.job, COND_SUCCESS_CRITERIA_MET)
            .filter(|c| c.status == "True")
            .cloned();
        if ctx.finished.is_none() {
            if let Some(ft) =
                find_condition(&ctx.job, COND_FAILURE_TARGET).filter(|c| c.status == "True")
            {
                ctx.finished = Some(new_condition(
                    COND_FAILED,
                    "True",
                    ft.reason.as_deref().unwrap_or(""),
                    ft.message.as_deref().unwrap_or(""),
                    now,
                ));
            } else if let Some(msg) = fail_job_message(&ctx.job, &ctx.pods) {
                ctx.finished = Some(self.failure_condition(REASON_POD_FAILURE_POLICY, &msg));
            }
        }
        if ctx.finished.is_none() {
            let ads = spec_of(&ctx.job).active_deadline_seconds;
            let start = ctx
                .job
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0);
            if exceeds_backoff_limit || past_backoff_limit_on_failure(&ctx.job, &ctx.pods) {
                ctx.finished =
                    Some(self.failure_condition(REASON_BACKOFF_LIMIT_EXCEEDED, MSG_BACKOFF_LIMIT));
            } else if let (Some(ads), Some(start), false) = (ads, start, is_suspended(&ctx.job)) {
                let allowed = SignedDuration::from_secs(ads);
                let elapsed = now.duration_since(start);
                if elapsed >= allowed {
                    ctx.finished =
                        Some(self.failure_condition(REASON_DEADLINE_EXCEEDED, MSG_DEADLINE));
                } else {
                    let left = Duration::try_from(allowed - elapsed).unwrap_or(Duration::ZERO);
                    self.queue.add_after(key.to_string(), left);
                }
            }
        }

        if is_indexed(&ctx.job) {
            let completions = completions(&ctx.job).unwrap_or(0);
            let (prev, all) = calculate_succeeded_indexes(&ctx.job, &ctx.pods);
            ctx.prev_succeeded_indexes = prev;
            ctx.succeeded_indexes = all;
            ctx.succeeded = ctx.succeeded_indexes.total();
            if has_backoff_limit_per_index(&ctx.job) {
                let failed_ix = calculate_failed_indexes(&ctx.job, &ctx.pods);
                if ctx.finished.is_none() {
                    let max_failed = spec_of(&ctx.job).max_failed_indexes;
                    if max_failed.is_some_and(|m| failed_ix.total() > m) {
                        ctx.finished = Some(self.failure_condition(
                            REASON_MAX_FAILED_INDEXES_EXCEEDED,
                            MSG_MAX_FAILED_INDEXES,
                        ));
                    } else if failed_ix.total() > 0
                        && failed_ix.total() + ctx.succeeded_indexes.total() >= completions
                    {
                        ctx.finished =
                            Some(self.failure_condition(REASON_FAILED_INDEXES, MSG_FAILED_INDEXES));
                    }
                }
                ctx.failed_indexes = Some(failed_ix);
                ctx.delayed_deletion = pods_with_delayed_deletion(&ctx);
            }
            if ctx.finished.is_none() {
                if let Some(msg) = match_success_policy(
                    spec_of(&ctx.job).success_policy.as_ref(),
                    completions,
                    &ctx.succeeded_indexes,
                ) {
                    ctx.finished = Some(new_condition(
                        COND_SUCCESS_CRITERIA_MET,
                        "True",
                        REASON_SUCCESS_POLICY,
                        &msg,
                        now,
                    ));
                }
            }
        }

        let mut suspend_changed = false;
        let mut manage_err = None;
        if ctx.finished.is_some() {
            let (deleted_ready, deleted, err) =
                self.delete_active_pods(&ctx.job, &ctx.active_pods).await;
            if deleted != active || !satisfied {
                ctx.finished = None;
            }
            active -= deleted;
            ctx.terminating += deleted;
            ctx.ready -= deleted_ready;
            manage_err = err;
        } else {
            let mut manage_called = false;
            if satisfied && ctx.job.metadata.deletion_timestamp.is_none() {
                let (a, err) = self.manage_job(key, &mut ctx).await;
                active = a;
                manage_err = err;
                manage_called = true;
            }
            let complete = match completions(&ctx.job) {
                None => ctx.succeeded > 0 && active == 0,
                Some(c) => ctx.succeeded >= c && active == 0,
            };
            if complete {
                ctx.finished = Some(new_condition(
                    COND_SUCCESS_CRITERIA_MET,
                    "True",
                    REASON_COMPLETIONS_REACHED,
                    MSG_COMPLETIONS_REACHED,
                    now,
                ));
            } else if manage_called {
                let suspended = is_suspended(&ctx.job);
                let mut conds = status_mut(&mut ctx.job)
                    .conditions
                    .take()
                    .unwrap_or_default();
                let (changed, reason, message) = if suspended {
                    let c = ensure_condition(
                        &mut conds,
                        COND_SUSPENDED,
                        "True",
                        "JobSuspended",
                        "Job suspended",
                        now,
                    );
                    (c, "Suspended", "Job suspended")
                } else {
                    let c = ensure_condition(
                        &mut conds,
                        COND_SUSPENDED,
                        "False",
                        "JobResumed",
                        "Job resumed",
                        now,
                    );
                    (c, "Resumed", "Job resumed")
                };
                status_mut(&mut ctx.job).conditions = Some(conds);
                if changed {
                    suspend_changed = true;
                    self.recorder
                        .event(&ctx.job, EventType::Normal, reason, message);
                    if !suspended {
                        // The deadline counts from the resumption.
                        status_mut(&mut ctx.job).start_time = Some(Time(now));
                    }
                }
                if status_mut(&mut ctx.job)
                    .conditions
                    .as_ref()
                    .is_some_and(Vec::is_empty)
                {
                    status_mut(&mut ctx.job).conditions = None;
                }
            }
        }

        let st = status_mut(&mut ctx.job);
        let needs_update = suspend_changed
            || active != st.active.unwrap_or(0)
            || Some(ctx.ready) != st.ready
            || Some(ctx.terminating) != st.terminating;
        st.active = non_zero(active);
        st.ready = Some(ctx.ready);
        st.terminating = Some(ctx.terminating);
        self.track_status_and_remove_finalizers(key, &mut ctx, needs_update)
            .await
            .map_err(|e| ControllerError::Other(format!("tracking status: {e}")))?;
        match manage_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Deletes active pods keeping their finalizers (the status accounting removes
    /// them). Returns deleted ready pods, deleted pods and the first error.
    async fn delete_active_pods(
        &self,
        job: &Job,
        pods: &[Arc<Pod>],
    ) -> (i32, i32, Option<ControllerError>) {
        let ns = job.metadata.namespace.clone().unwrap_or_default();
        let results = join_all(pods.iter().map(|p| {
            let name = p.metadata.name.clone().unwrap_or_default();
            let ns = ns.clone();
            async move { self.pod_control.delete_pod(&ns, &name, job).await }
        }))
        .await;
        let mut deleted = 0;
        let mut ready = 0;
        let mut first_err = None;
        for (p, r) in pods.iter().zip(results) {
            match r {
                Err(e) if !e.is_not_found() => {
                    first_err.get_or_insert(e);
                }
                _ => deleted += 1,
            }
            if is_pod_ready(p) {
                ready += 1;
            }
        }
        (ready, deleted, first_err)
    }

    /// Removes the finalizer from, then deletes, each pod; failed deletions are
    /// dropped from the expectations.
    async fn delete_job_pods(
        &self,
        job: &Job,
        key: &str,
        pods: &[Arc<Pod>],
    ) -> (i32, i32, Option<ControllerError>) {
        let ns = job.metadata.namespace.clone().unwrap_or_default();
        let results = join_all(pods.iter().map(|p| {
            let name = p.metadata.name.clone().unwrap_or_default();
            let ns = ns.clone();
            let has_finalizer = has_tracking_finalizer(p);
            async move {
                if has_finalizer {
                    if let Err(e) = self
                        .pod_control
                        .patch_pod(&ns, &name, &remove_finalizer_patch())
                        .await
                    {
                        return Err(if e.is_not_found() {
                            e
                        } else {
                            ControllerError::Other(format!("removing completion finalizer: {e}"))
                        });
                    }
                }
                self.pod_control.delete_pod(&ns, &name, job).await
            }
        }))
        .await;
        let mut deleted = count(pods.len());
        let mut ready = 0;
        let mut first_err = None;
        for (p, r) in pods.iter().zip(results) {
            if let Err(e) = r {
                self.expectations.deletion_observed(key, &pod_key(p));
                if !e.is_not_found() {
                    deleted -= 1;
                    first_err.get_or_insert(e);
                }
            }
            if is_pod_ready(p) {
                ready += 1;
            }
        }
        (ready, deleted, first_err)
    }

    /// Creates or deletes pods to match parallelism and the remaining completions.
    /// Returns the new active count and the first error.
    async fn manage_job(&self, key: &str, ctx: &mut SyncCtx) -> (i32, Option<ControllerError>) {
        let job = ctx.job.clone();
        let mut active = count(ctx.active_pods.len());
        let parallelism = spec_of(&job).parallelism.unwrap_or(1);
        if is_suspended(&job) {
            let to_delete = active_pods_for_removal(&job, &ctx.active_pods, ctx.active_pods.len());
            self.expectations
                .expect_deletions(key, to_delete.iter().map(|p| pod_key(p)).collect());
            let (ready, removed, err) = self.delete_job_pods(&job, key, &to_delete).await;
            ctx.terminating += removed;
            ctx.ready -= ready;
            return (active - removed, err);
        }
        let want_active = match completions(&job) {
            None => {
                if ctx.succeeded > 0 {
                    active
                } else {
                    parallelism
                }
            }
            Some(c) => (c - ctx.succeeded).min(parallelism).max(0),
        };
        let rm_at_least = usize::try_from(active - want_active).unwrap_or(0);
        let mut to_delete = active_pods_for_removal(&job, &ctx.active_pods, rm_at_least);
        to_delete.truncate(MAX_POD_CREATE_DELETE_PER_SYNC);
        if !to_delete.is_empty() {
            self.expectations
                .expect_deletions(key, to_delete.iter().map(|p| pod_key(p)).collect());
            let (ready, removed, err) = self.delete_job_pods(&job, key, &to_delete).await;
            ctx.terminating += removed;
            ctx.ready -= ready;
            return (active - removed, err);
        }
        let terminating = if only_replace_failed_pods(&job) {
            ctx.terminating
        } else {
            0
        };
        let mut diff = want_active - terminating - active;
        if diff <= 0 {
            return (active, None);
        }
        let now = self.now();
        if !has_backoff_limit_per_index(&job) {
            let remaining = ctx.new_backoff.remaining(now);
            if remaining > SignedDuration::ZERO {
                self.enqueue_with_delay(key, remaining);
                return (active, None);
            }
        }
        diff = diff.min(count(MAX_POD_CREATE_DELETE_PER_SYNC));
        let mut indexes: Vec<i32> = Vec::new();
        if is_indexed(&job) {
            let completions = completions(&job).unwrap_or(0);
            let mut non_pending = ctx
                .succeeded_indexes
                .with_ordered_indexes(&indexes_of(&ctx.active_pods));
            if only_replace_failed_pods(&job) {
                let terminating: Vec<Arc<Pod>> = ctx
                    .pods
                    .iter()
                    .filter(|p| is_terminating(p))
                    .cloned()
                    .collect();
                non_pending = non_pending.with_ordered_indexes(&indexes_of(&terminating));
            }
            if let Some(f) = &ctx.failed_indexes {
                non_pending = non_pending.merge(f);
            }
            indexes = first_pending_indexes(
                &non_pending,
                usize::try_from(diff).unwrap_or(0),
                completions,
            );
            if has_backoff_limit_per_index(&job) {
                let mut ready_now = Vec::new();
                let mut min_wait: Option<SignedDuration> = None;
                for ix in indexes {
                    let wait = match ctx.delayed_deletion.get(&ix) {
                        Some(p) => remaining_for_failures(
                            now,
                            index_absolute_failure_count(p).saturating_add(1),
                            Some(finished_time(p)),
                        ),
                        None => SignedDuration::ZERO,
                    };
                    if wait <= SignedDuration::ZERO {
                        ready_now.push(ix);
                    } else if min_wait.is_none_or(|m| wait < m) {
                        min_wait = Some(wait);
                    }
                }
                if ready_now.is_empty() {
                    if let Some(w) = min_wait {
                        self.enqueue_with_delay(key, w);
                        return (active, None);
                    }
                }
                indexes = ready_now;
            }
            diff = count(indexes.len());
        }
        if diff <= 0 {
            return (active, None);
        }
        self.expectations
            .expect_creations(key, usize::try_from(diff).unwrap_or(0));
        active += diff;
        let mut template = spec_of(&job).template.clone();
        if is_indexed(&job) {
            add_completion_index_env(&mut template);
        }
        let meta = template.metadata.get_or_insert_with(Default::default);
        let finalizers = meta.finalizers.get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|f| f == JOB_TRACKING_FINALIZER) {
            finalizers.push(JOB_TRACKING_FINALIZER.to_string());
        }

        let mut remaining = diff;
        let mut batch = remaining.min(1);
        let mut next_index = indexes.into_iter();
        let mut first_err: Option<ControllerError> = None;
        while remaining > 0 {
            let batch_indexes: Vec<Option<i32>> = (0..batch).map(|_| next_index.next()).collect();
            let results = join_all(
                batch_indexes
                    .iter()
                    .map(|ix| self.create_pod(&job, &template, *ix, &ctx.delayed_deletion)),
            )
            .await;
            let mut batch_failed = false;
            for r in results {
                match r {
                    Ok(()) => {}
                    Err(e) if e.has_status_cause(NAMESPACE_TERMINATING_CAUSE) => {}
                    Err(e) => {
                        self.expectations.creation_observed(key);
                        active -= 1;
                        batch_failed = true;
                        first_err.get_or_insert(e);
                    }
                }
            }
            let skipped = remaining - batch;
            if batch_failed && skipped > 0 {
                active -= skipped;
                for _ in 0..skipped {
                    self.expectations.creation_observed(key);
                }
                break;
            }
            remaining -= batch;
            batch = (2 * batch).min(remaining);
        }
        (active, first_err)
    }

    fn enqueue_with_delay(&self, key: &str, delay: SignedDuration) {
        let d = Duration::try_from(delay)
            .unwrap_or(Duration::ZERO)
            .max(SYNC_JOB_BATCH_PERIOD);
        self.queue.add_after(key.to_string(), d);
    }

    /// Creates one pod (for completion index `index`, if Indexed), recording
    /// `SuccessfulCreate` or `FailedCreate`.
    async fn create_pod(
        &self,
        job: &Job,
        template: &PodTemplateSpec,
        index: Option<i32>,
        delayed: &HashMap<i32, Arc<Pod>>,
    ) -> Result<(), ControllerError> {
        let job_name = job.metadata.name.clone().unwrap_or_default();
        let ns = job.metadata.namespace.clone().unwrap_or_default();
        let mut template = template.clone();
        let mut generate_name = None;
        if let Some(ix) = index {
            let meta = template.metadata.get_or_insert_with(Default::default);
            meta.annotations
                .get_or_insert_with(Default::default)
                .insert(JOB_COMPLETION_INDEX_ANNOTATION.into(), ix.to_string());
            meta.labels
                .get_or_insert_with(Default::default)
                .insert(JOB_COMPLETION_INDEX_ANNOTATION.into(), ix.to_string());
            if let Some(spec) = template.spec.as_mut() {
                spec.hostname = Some(format!("{job_name}-{ix}"));
            }
            generate_name = Some(generate_name_with_index(&job_name, ix));
            if has_backoff_limit_per_index(job) {
                let (failures, ignored) =
                    new_index_failure_counts(job, delayed.get(&ix).map(|p| p.as_ref()));
                let ann = meta.annotations.get_or_insert_with(Default::default);
                ann.insert(
                    JOB_INDEX_FAILURE_COUNT_ANNOTATION.into(),
                    failures.to_string(),
                );
                if ignored > 0 {
                    ann.insert(
                        JOB_INDEX_IGNORED_FAILURE_COUNT_ANNOTATION.into(),
                        ignored.to_string(),
                    );
                }
            }
        }
        let mut pod = pod_from_template(&template, &job_name, Some(new_controller_ref(job)));
        if let Some(g) = generate_name {
            pod.metadata.generate_name = Some(g);
        }
        if pod.metadata.labels.is_none() {
            return Err(ControllerError::Other(
                "unable to create pods, no labels".into(),
            ));
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        match api.create(&PostParams::default(), &pod).await {
            Ok(created) => {
                self.recorder.event(
                    job,
                    EventType::Normal,
                    SUCCESSFUL_CREATE_POD_REASON,
                    format!(
                        "Created pod: {}",
                        created.metadata.name.as_deref().unwrap_or("")
                    ),
                );
                Ok(())
            }
            Err(e) => {
                let e = ControllerError::from(e);
                if !e.has_status_cause(NAMESPACE_TERMINATING_CAUSE) {
                    self.recorder.event(
                        job,
                        EventType::Warning,
                        FAILED_CREATE_POD_REASON,
                        format!("Error creating: {e}"),
                    );
                }
                Err(e)
            }
        }
    }

    fn can_remove_finalizer(ctx: &SyncCtx, pod: &Pod, consider_failed: bool) -> bool {
        if ctx.job.metadata.deletion_timestamp.is_some()
            || ctx.finished.is_some()
            || is_succeeded(pod)
        {
            return true;
        }
        if !consider_failed {
            return false;
        }
        if has_backoff_limit_per_index(&ctx.job) {
            if let Some(ix) = completion_index(pod) {
                if ctx
                    .delayed_deletion
                    .get(&ix)
                    .is_some_and(|p| p.metadata.uid == pod.metadata.uid)
                {
                    return false;
                }
            }
        }
        true
    }

    /// Records finished pods as uncounted, removes their finalizers, moves them to
    /// the counters, sets the interim and final conditions, and writes status.
    async fn track_status_and_remove_finalizers(
        &self,
        key: &str,
        ctx: &mut SyncCtx,
        mut needs_flush: bool,
    ) -> Result<(), ControllerError> {
        let indexed = is_indexed(&ctx.job);
        let completions = completions(&ctx.job).unwrap_or(0);
        if indexed {
            ctx.pods.sort_by_key(|p| completion_index(p).unwrap_or(-1));
        }
        let mut with_finalizer: HashSet<String> = ctx
            .pods
            .iter()
            .filter(|p| {
                has_tracking_finalizer(p) && !ctx.expected_rm_finalizers.contains(&uid_of(p))
            })
            .map(|p| uid_of(p))
            .collect();
        if clean_uncounted(&mut ctx.job, &with_finalizer) {
            needs_flush = true;
        }
        let policy = spec_of(&ctx.job).pod_failure_policy.clone();
        let mut to_remove: Vec<Arc<Pod>> = Vec::new();
        let mut new_succeeded_indexes: Vec<i32> = Vec::new();
        let mut reached_max = false;
        let pods = ctx.pods.clone();
        for pod in &pods {
            let uid = uid_of(pod);
            if !has_tracking_finalizer(pod) || ctx.expected_rm_finalizers.contains(&uid) {
                continue;
            }
            let consider_failed = is_pod_failed(pod, &ctx.job);
            if !Self::can_remove_finalizer(ctx, pod, consider_failed) {
                continue;
            }
            to_remove.push(pod.clone());
            if is_succeeded(pod) && !ctx.uncounted_failed.contains(&uid) {
                if indexed {
                    if let Some(ix) = completion_index(pod) {
                        if ix < completions && !ctx.prev_succeeded_indexes.has(ix) {
                            new_succeeded_indexes.push(ix);
                            needs_flush = true;
                        }
                    }
                } else if !ctx.uncounted_succeeded.contains(&uid) {
                    needs_flush = true;
                    uncounted_mut(&mut ctx.job)
                        .succeeded
                        .get_or_insert_with(Vec::new)
                        .push(uid.clone());
                }
            } else if consider_failed
                || (ctx.finished.is_some() && !SyncCtx::is_success_criteria(&ctx.finished))
            {
                let valid_index = completion_index(pod).is_some_and(|ix| ix < completions);
                if !ctx.uncounted_failed.contains(&uid)
                    && (!indexed || valid_index)
                    && match_pod_failure_policy(policy.as_ref(), pod).count_failed
                {
                    needs_flush = true;
                    uncounted_mut(&mut ctx.job)
                        .failed
                        .get_or_insert_with(Vec::new)
                        .push(uid.clone());
                }
            }
            let (us, uf) = uncounted_lists(&ctx.job);
            if new_succeeded_indexes.len() + us.len() + uf.len() >= MAX_UNCOUNTED_PODS {
                reached_max = true;
                break;
            }
        }
        if indexed {
            new_succeeded_indexes.sort_unstable();
            ctx.succeeded_indexes = ctx
                .succeeded_indexes
                .with_ordered_indexes(&new_succeeded_indexes);
            let s = ctx.succeeded_indexes.to_string();
            let st = status_mut(&mut ctx.job);
            if s != st.completed_indexes.clone().unwrap_or_default() {
                needs_flush = true;
            }
            st.succeeded = non_zero(ctx.succeeded_indexes.total());
            st.completed_indexes = (!s.is_empty()).then_some(s);
            let failed = ctx.failed_indexes.as_ref().map(ToString::to_string);
            if st.failed_indexes != failed {
                st.failed_indexes = failed;
                needs_flush = true;
            }
        }
        if let Some(fc) = ctx.finished.clone() {
            if fc.type_ == COND_FAILURE_TARGET {
                status_mut(&mut ctx.job)
                    .conditions
                    .get_or_insert_with(Vec::new)
                    .push(fc.clone());
                needs_flush = true;
                ctx.finished = Some(new_condition(
                    COND_FAILED,
                    "True",
                    fc.reason.as_deref().unwrap_or(""),
                    fc.message.as_deref().unwrap_or(""),
                    self.now(),
                ));
            } else if fc.type_ == COND_SUCCESS_CRITERIA_MET {
                if find_condition(&ctx.job, COND_SUCCESS_CRITERIA_MET)
                    .filter(|c| c.status == "True")
                    .is_none()
                {
                    status_mut(&mut ctx.job)
                        .conditions
                        .get_or_insert_with(Vec::new)
                        .push(fc.clone());
                    needs_flush = true;
                }
                ctx.finished = Some(new_condition(
                    COND_COMPLETE,
                    "True",
                    fc.reason.as_deref().unwrap_or(""),
                    fc.message.as_deref().unwrap_or(""),
                    self.now(),
                ));
            }
        }

        // Flush the uncounted pods (and interim conditions) before touching finalizers.
        if needs_flush {
            ctx.job = self.update_status(&ctx.job).await.map_err(|e| {
                ControllerError::Other(format!("adding uncounted pods to status: {e}"))
            })?;
            self.backoff
                .lock()
                .insert(key.to_string(), ctx.new_backoff.clone());
            needs_flush = false;
        }
        let mut rm_err = None;
        if !to_remove.is_empty() {
            let uids: Vec<String> = to_remove.iter().map(|p| uid_of(p)).collect();
            self.finalizers.expect_removed(key, &uids);
            let results = join_all(to_remove.iter().map(|p| async move {
                let ns = p.metadata.namespace.clone().unwrap_or_default();
                let name = p.metadata.name.clone().unwrap_or_default();
                self.pod_control
                    .patch_pod(&ns, &name, &remove_finalizer_patch())
                    .await
            }))
            .await;
            for (p, r) in to_remove.iter().zip(results) {
                match r {
                    Ok(_) => {
                        with_finalizer.remove(&uid_of(p));
                    }
                    Err(e) => {
                        self.finalizers.removal_observed(key, &uid_of(p));
                        if e.is_not_found() {
                            with_finalizer.remove(&uid_of(p));
                        } else {
                            rm_err.get_or_insert(ControllerError::Other(format!(
                                "removing tracking finalizer: {e}"
                            )));
                        }
                    }
                }
            }
        }
        if clean_uncounted(&mut ctx.job, &with_finalizer) {
            needs_flush = true;
        }
        if let Some(e) = rm_err {
            if needs_flush {
                self.update_status(&ctx.job).await.map_err(|e| {
                    ControllerError::Other(format!("removing uncounted pods from status: {e}"))
                })?;
            }
            return Err(e);
        }
        let finished = !reached_max && self.enact_job_finished(ctx);
        if finished {
            needs_flush = true;
        }
        if needs_flush {
            ctx.job = self.update_status(&ctx.job).await.map_err(|e| {
                ControllerError::Other(format!("removing uncounted pods from status: {e}"))
            })?;
            if finished {
                self.record_job_finished(ctx);
            }
        }
        Ok(())
    }

    /// Sets the final condition once nothing is left uncounted or terminating.
    fn enact_job_finished(&self, ctx: &mut SyncCtx) -> bool {
        let Some(fc) = ctx.finished.clone() else {
            return false;
        };
        let (us, uf) = uncounted_lists(&ctx.job);
        if !us.is_empty() || !uf.is_empty() {
            return false;
        }
        if ctx.terminating > 0 {
            return false;
        }
        let now = self.now();
        let st = status_mut(&mut ctx.job);
        ensure_condition(
            st.conditions.get_or_insert_with(Vec::new),
            &fc.type_,
            &fc.status,
            fc.reason.as_deref().unwrap_or(""),
            fc.message.as_deref().unwrap_or(""),
            now,
        );
        if fc.type_ == COND_COMPLETE {
            st.completion_time = fc.last_transition_time.clone();
        }
        true
    }

    fn record_job_finished(&self, ctx: &SyncCtx) {
        let Some(fc) = &ctx.finished else { return };
        let job = &ctx.job;
        if fc.type_ == COND_COMPLETE {
            let succeeded = job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
            if completions(job).is_some_and(|c| succeeded > c) {
                self.recorder.event(
                    job,
                    EventType::Warning,
                    "TooManySucceededPods",
                    "Too many succeeded pods running after completion count reached",
                );
            }
            self.recorder
                .event(job, EventType::Normal, "Completed", "Job completed");
        } else {
            self.recorder.event(
                job,
                EventType::Warning,
                fc.reason.as_deref().unwrap_or(""),
                fc.message.clone().unwrap_or_default(),
            );
        }
    }
}

/// Moves uncounted UIDs whose pods no longer carry the finalizer to the counters;
/// whether anything changed.
fn clean_uncounted(job: &mut Job, with_finalizer: &HashSet<String>) -> bool {
    let (us, uf) = uncounted_lists(job);
    let keep_s: Vec<String> = us
        .iter()
        .filter(|u| with_finalizer.contains(*u))
        .cloned()
        .collect();
    let keep_f: Vec<String> = uf
        .iter()
        .filter(|u| with_finalizer.contains(*u))
        .cloned()
        .collect();
    let mut changed = false;
    let st = status_mut(job);
    if keep_s.len() != us.len() {
        changed = true;
        st.succeeded = non_zero(st.succeeded.unwrap_or(0) + count(us.len() - keep_s.len()));
    }
    if keep_f.len() != uf.len() {
        changed = true;
        st.failed = non_zero(st.failed.unwrap_or(0) + count(uf.len() - keep_f.len()));
    }
    let u = uncounted_mut(job);
    u.succeeded = (!keep_s.is_empty()).then_some(keep_s);
    u.failed = (!keep_f.is_empty()).then_some(keep_f);
    changed
}

/// The strategic merge patch removing the tracking finalizer.
pub fn remove_finalizer_patch() -> serde_json::Value {
    json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [JOB_TRACKING_FINALIZER]}})
}

/// Per index, the failed pod whose deletion waits until its replacement exists
/// (so that the replacement inherits its failure count): the latest, most-failed
/// pod of each index that is neither succeeded, failed nor active.
fn pods_with_delayed_deletion(ctx: &SyncCtx) -> HashMap<i32, Arc<Pod>> {
    let active: HashSet<i32> = indexes_of(&ctx.active_pods).into_iter().collect();
    let empty = HashSet::new();
    let failed_pods = ctx.valid_pods(&empty, |p| is_pod_failed(p, &ctx.job));
    let mut out: HashMap<i32, Arc<Pod>> = HashMap::new();
    for p in failed_pods {
        let Some(ix) = completion_index(&p) else {
            continue;
        };
        if ctx.succeeded_indexes.has(ix)
            || ctx.failed_indexes.as_ref().is_some_and(|f| f.has(ix))
            || active.contains(&ix)
        {
            continue;
        }
        match out.get(&ix) {
            Some(prev)
                if !(index_absolute_failure_count(prev) <= index_absolute_failure_count(&p)
                    && finished_time(&p) >= finished_time(prev)) => {}
            _ => {
                out.insert(ix, p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    #[test]
    fn indexed_generate_names() {
        assert_eq!(generate_name_with_index("pi", 3), "pi-3-");
        let long = "a".repeat(60);
        let g = generate_name_with_index(&long, 12);
        assert_eq!(g.len(), MAX_GENERATED_NAME_LENGTH);
        assert!(g.ends_with("a-12-"));
    }

    #[test]
    fn completion_index_env_comes_from_the_label() {
        let mut t = PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![
                    Container {
                        name: "a".into(),
                        ..Default::default()
                    },
                    Container {
                        name: "b".into(),
                        env: Some(vec![EnvVar {
                            name: COMPLETION_INDEX_ENV_NAME.into(),
                            value: Some("custom".into()),
                            value_from: None,
                        }]),
                        ..Default::default()
                    },
                ],
                init_containers: Some(vec![Container {
                    name: "i".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        };
        add_completion_index_env(&mut t);
        let spec = t.spec.unwrap();
        let env_a = &spec.containers[0].env.as_ref().unwrap()[0];
        assert_eq!(
            env_a
                .value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.labels['batch.kubernetes.io/job-completion-index']"
        );
        assert_eq!(
            spec.containers[1].env.as_ref().unwrap().len(),
            1,
            "kept the user's value"
        );
        assert_eq!(
            spec.init_containers.unwrap()[0].env.as_ref().unwrap().len(),
            1
        );
    }

    #[test]
    fn uncounted_pods_move_to_counters() {
        let mut job = Job::default();
        {
            let st = status_mut(&mut job);
            st.succeeded = Some(2);
            st.uncounted_terminated_pods = Some(UncountedTerminatedPods {
                succeeded: Some(vec!["a".into(), "b".into()]),
                failed: Some(vec!["c".into()]),
            });
        }
        let with: HashSet<String> = ["b".to_string()].into();
        assert!(clean_uncounted(&mut job, &with));
        let st = job.status.as_ref().unwrap();
        assert_eq!((st.succeeded, st.failed), (Some(3), Some(1)));
        let u = st.uncounted_terminated_pods.as_ref().unwrap();
        assert_eq!(
            (u.succeeded.clone(), u.failed.clone()),
            (Some(vec!["b".to_string()]), None)
        );
        assert!(!clean_uncounted(&mut job, &with));
    }

    #[test]
    fn finalizer_patch() {
        assert_eq!(
            remove_finalizer_patch(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["batch.kubernetes.io/job-tracking"]}})
        );
    }
}
