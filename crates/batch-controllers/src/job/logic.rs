//! The pure logic of the Job controller: pod classification, completion indexes,
//! the pod failure policy, the success policy, pod-recreation backoff, conditions,
//! and choosing which pods to remove or which indexes to create.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{Job, JobCondition, PodFailurePolicy, SuccessPolicy};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use controllers::ranking::{sort_for_deletion, RankedPod};
use controllers::util::is_pod_active;

use crate::intervals::OrderedIntervals;

/// The finalizer with which the controller tracks a pod until it has counted it.
pub const JOB_TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The annotation (and label) holding an Indexed Job pod's completion index.
pub const JOB_COMPLETION_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// The annotation counting the failures of an index (backoffLimitPerIndex).
pub const JOB_INDEX_FAILURE_COUNT_ANNOTATION: &str = "batch.kubernetes.io/job-index-failure-count";
/// The annotation counting the ignored failures of an index.
pub const JOB_INDEX_IGNORED_FAILURE_COUNT_ANNOTATION: &str =
    "batch.kubernetes.io/job-index-ignored-failure-count";
/// The environment variable that tells containers of Indexed Jobs their index.
pub const COMPLETION_INDEX_ENV_NAME: &str = "JOB_COMPLETION_INDEX";
/// The value of `spec.managedBy` meaning this controller.
pub const JOB_CONTROLLER_MANAGED_BY: &str = "kubernetes.io/job-controller";

/// Condition types.
pub const COND_COMPLETE: &str = "Complete";
/// The terminal failure condition.
pub const COND_FAILED: &str = "Failed";
/// The interim failure condition, set before pods are cleaned up.
pub const COND_FAILURE_TARGET: &str = "FailureTarget";
/// The interim success condition, set before pods are cleaned up.
pub const COND_SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
/// The suspension condition.
pub const COND_SUSPENDED: &str = "Suspended";

/// Condition reasons.
pub const REASON_BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
/// The deadline passed.
pub const REASON_DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
/// A FailJob rule of the pod failure policy matched.
pub const REASON_POD_FAILURE_POLICY: &str = "PodFailurePolicy";
/// More indexes failed than maxFailedIndexes.
pub const REASON_MAX_FAILED_INDEXES_EXCEEDED: &str = "MaxFailedIndexesExceeded";
/// Some indexes failed and the rest are done.
pub const REASON_FAILED_INDEXES: &str = "FailedIndexes";
/// A success policy rule matched.
pub const REASON_SUCCESS_POLICY: &str = "SuccessPolicy";
/// The expected number of pods succeeded.
pub const REASON_COMPLETIONS_REACHED: &str = "CompletionsReached";

/// Messages of the conditions (and events) above, as upstream.
pub const MSG_BACKOFF_LIMIT: &str = "Job has reached the specified backoff limit";
/// See [`REASON_DEADLINE_EXCEEDED`].
pub const MSG_DEADLINE: &str = "Job was active longer than specified deadline";
/// See [`REASON_MAX_FAILED_INDEXES_EXCEEDED`].
pub const MSG_MAX_FAILED_INDEXES: &str =
    "Job has exceeded the specified maximal number of failed indexes";
/// See [`REASON_FAILED_INDEXES`].
pub const MSG_FAILED_INDEXES: &str = "Job has failed indexes";
/// See [`REASON_COMPLETIONS_REACHED`].
pub const MSG_COMPLETIONS_REACHED: &str = "Reached expected number of succeeded pods";

/// Pod recreation backoff: the first delay, doubled per consecutive failure.
pub const DEFAULT_POD_FAILURE_BACKOFF: SignedDuration = SignedDuration::from_secs(10);
/// Pod recreation backoff: the cap.
pub const MAX_POD_FAILURE_BACKOFF: SignedDuration = SignedDuration::from_secs(600);

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Whether the pod succeeded.
pub fn is_succeeded(pod: &Pod) -> bool {
    phase(pod) == "Succeeded"
}

/// Whether the pod still carries the tracking finalizer.
pub fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == JOB_TRACKING_FINALIZER))
}

/// Being deleted but not finished.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some() && !matches!(phase(pod), "Succeeded" | "Failed")
}

/// The pod's completion index, from the annotation; `None` if absent or invalid.
pub fn completion_index(pod: &Pod) -> Option<i32> {
    let v = pod
        .metadata
        .annotations
        .as_ref()?
        .get(JOB_COMPLETION_INDEX_ANNOTATION)?;
    v.parse::<i32>().ok().filter(|i| *i >= 0)
}

/// Whether the Job runs in Indexed completion mode.
pub fn is_indexed(job: &Job) -> bool {
    spec_of(job).completion_mode.as_deref() == Some("Indexed")
}

/// The Job's spec (default if absent).
pub fn spec_of(job: &Job) -> &k8s_openapi::api::batch::v1::JobSpec {
    static EMPTY: std::sync::OnceLock<k8s_openapi::api::batch::v1::JobSpec> =
        std::sync::OnceLock::new();
    job.spec
        .as_ref()
        .unwrap_or_else(|| EMPTY.get_or_init(Default::default))
}

/// `spec.completions`, if set.
pub fn completions(job: &Job) -> Option<i32> {
    spec_of(job).completions
}

/// Whether the Job uses a per-index backoff limit.
pub fn has_backoff_limit_per_index(job: &Job) -> bool {
    spec_of(job).backoff_limit_per_index.is_some()
}

/// Whether the Job is suspended.
pub fn is_suspended(job: &Job) -> bool {
    spec_of(job).suspend == Some(true)
}

/// Whether only failed pods (not merely terminating ones) are replaced: the
/// replacement policy is `Failed`, or a pod failure policy is set.
pub fn only_replace_failed_pods(job: &Job) -> bool {
    spec_of(job).pod_replacement_policy.as_deref() == Some("Failed")
        || spec_of(job).pod_failure_policy.is_some()
}

/// Whether the pod counts as failed: phase Failed, or (unless only failed pods are
/// replaced) being deleted without having succeeded.
pub fn is_pod_failed(pod: &Pod, job: &Job) -> bool {
    if phase(pod) == "Failed" {
        return true;
    }
    if only_replace_failed_pods(job) {
        return false;
    }
    pod.metadata.deletion_timestamp.is_some() && phase(pod) != "Succeeded"
}

/// The Job's condition of type `t`.
pub fn find_condition<'a>(job: &'a Job, t: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
}

/// Whether the Job has finished (`Complete` or `Failed` True).
pub fn is_job_finished(job: &Job) -> bool {
    [COND_COMPLETE, COND_FAILED]
        .iter()
        .any(|t| find_condition(job, t).is_some_and(|c| c.status == "True"))
}

/// A new condition at `now`.
pub fn new_condition(
    t: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> JobCondition {
    JobCondition {
        type_: t.to_string(),
        status: status.to_string(),
        reason: (!reason.is_empty()).then(|| reason.to_string()),
        message: (!message.is_empty()).then(|| message.to_string()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Sets a condition's status, reason and message (appending it unless it would be
/// a new False one); whether the list changed.
pub fn ensure_condition(
    list: &mut Vec<JobCondition>,
    t: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    if let Some(c) = list.iter_mut().find(|c| c.type_ == t) {
        if c.status != status
            || c.reason.as_deref().unwrap_or("") != reason
            || c.message.as_deref().unwrap_or("") != message
        {
            *c = new_condition(t, status, reason, message, now);
            return true;
        }
        return false;
    }
    if status != "False" {
        list.push(new_condition(t, status, reason, message, now));
        return true;
    }
    false
}

/// The action of a pod failure policy rule that matched a failed pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyMatch {
    /// The Job failure message, for a FailJob rule.
    pub fail_job_message: Option<String>,
    /// Whether the failure counts toward the backoff limits (false for Ignore).
    pub count_failed: bool,
    /// The matched rule's action, if any rule matched.
    pub action: Option<String>,
}

fn terminated_exit_code(cs: &ContainerStatus) -> Option<i32> {
    cs.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code)
}

/// Matches a failed pod against the pod failure policy's rules, in order.
pub fn match_pod_failure_policy(policy: Option<&PodFailurePolicy>, pod: &Pod) -> PolicyMatch {
    let no_match = PolicyMatch {
        fail_job_message: None,
        count_failed: true,
        action: None,
    };
    let Some(policy) = policy else {
        return no_match;
    };
    let status = pod.status.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    for (index, rule) in policy.rules.iter().enumerate() {
        let matched: Option<String> = if let Some(req) = &rule.on_exit_codes {
            let lists = [&status.container_statuses, &status.init_container_statuses];
            lists
                .iter()
                .flat_map(|l| l.iter().flatten())
                .find(|cs| {
                    let Some(code) = terminated_exit_code(cs) else {
                        return false;
                    };
                    if code == 0 || req.container_name.as_ref().is_some_and(|n| *n != cs.name) {
                        return false;
                    }
                    match req.operator.as_str() {
                        "In" => req.values.contains(&code),
                        "NotIn" => !req.values.contains(&code),
                        _ => false,
                    }
                })
                .map(|cs| {
                    format!(
                        "Container {} for pod {ns}/{name} failed with exit code {} matching {} rule at index {index}",
                        cs.name,
                        terminated_exit_code(cs).unwrap_or(0),
                        rule.action
                    )
                })
        } else if let Some(patterns) = &rule.on_pod_conditions {
            status
                .conditions
                .iter()
                .flatten()
                .find(|c: &&PodCondition| {
                    patterns
                        .iter()
                        .any(|p| p.type_ == c.type_ && p.status == c.status)
                })
                .map(|c| {
                    format!(
                        "Pod {ns}/{name} has condition {} matching {} rule at index {index}",
                        c.type_, rule.action
                    )
                })
        } else {
            None
        };
        let Some(message) = matched else { continue };
        match rule.action.as_str() {
            "Ignore" => {
                return PolicyMatch {
                    fail_job_message: None,
                    count_failed: false,
                    action: Some("Ignore".into()),
                }
            }
            "FailIndex" | "Count" => {
                return PolicyMatch {
                    fail_job_message: None,
                    count_failed: true,
                    action: Some(rule.action.clone()),
                }
            }
            "FailJob" => {
                return PolicyMatch {
                    fail_job_message: Some(message),
                    count_failed: true,
                    action: Some("FailJob".into()),
                }
            }
            _ => {}
        }
    }
    no_match
}

/// The message of a FailJob rule matched by one of the failed pods, if any.
pub fn fail_job_message(job: &Job, pods: &[Arc<Pod>]) -> Option<String> {
    let policy = spec_of(job).pod_failure_policy.as_ref()?;
    pods.iter()
        .filter(|p| is_pod_failed(p, job))
        .find_map(|p| match_pod_failure_policy(Some(policy), p).fail_job_message)
}

/// Whether an Indexed Job's success policy is met by `succeeded`; with the
/// condition message.
pub fn match_success_policy(
    policy: Option<&SuccessPolicy>,
    completions: i32,
    succeeded: &OrderedIntervals,
) -> Option<String> {
    let policy = policy?;
    if succeeded.is_empty() {
        return None;
    }
    for (index, rule) in policy.rules.iter().enumerate() {
        let met = if let Some(ix) = &rule.succeeded_indexes {
            let required = OrderedIntervals::parse(ix, completions);
            if required.is_empty() {
                continue;
            }
            let mut contains = 0;
            let (mut r, mut s) = (0, 0);
            while r < required.0.len() && s < succeeded.0.len() {
                let (ri, si) = (required.0[r], succeeded.0[s]);
                let overlap = ri.last.min(si.last) - ri.first.max(si.first) + 1;
                if overlap > 0 {
                    contains += overlap;
                }
                match si.last.cmp(&ri.last) {
                    std::cmp::Ordering::Less => s += 1,
                    std::cmp::Ordering::Greater => r += 1,
                    std::cmp::Ordering::Equal => {
                        s += 1;
                        r += 1;
                    }
                }
            }
            contains == required.total() || rule.succeeded_count.is_some_and(|c| contains >= c)
        } else {
            rule.succeeded_count.is_some_and(|c| succeeded.total() >= c)
        };
        if met {
            return Some(format!("Matched rules at index {index}"));
        }
    }
    None
}

/// Whether the summed container restarts of running/pending pods reach the
/// backoff limit (restartPolicy OnFailure only).
pub fn past_backoff_limit_on_failure(job: &Job, pods: &[Arc<Pod>]) -> bool {
    let spec = spec_of(job);
    let restart = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref());
    if restart != Some("OnFailure") {
        return false;
    }
    let mut restarts: i64 = 0;
    for p in pods {
        if matches!(phase(p), "Running" | "Pending") {
            let st = p.status.clone().unwrap_or_default();
            for cs in st
                .init_container_statuses
                .iter()
                .flatten()
                .chain(st.container_statuses.iter().flatten())
            {
                restarts += i64::from(cs.restart_count);
            }
        }
    }
    let limit = i64::from(spec.backoff_limit.unwrap_or(6));
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

/// When the pod finished: the latest container termination, else the last
/// transition of Ready=False, else its deletion time less the grace period, else
/// its creation.
pub fn finished_time(pod: &Pod) -> Timestamp {
    let st = pod.status.clone().unwrap_or_default();
    let containers = st.container_statuses.unwrap_or_default();
    if !containers.is_empty() {
        let mut latest: Option<Timestamp> = None;
        let mut all = true;
        for cs in &containers {
            match cs
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .and_then(|t| t.finished_at.as_ref())
            {
                Some(t) => latest = Some(latest.map_or(t.0, |l| l.max(t.0))),
                None => {
                    all = false;
                    break;
                }
            }
        }
        if let (true, Some(t)) = (all, latest) {
            return t;
        }
    }
    if let Some(c) = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready" && c.status == "False")
    {
        if let Some(t) = &c.last_transition_time {
            return t.0;
        }
    }
    if let Some(d) = &pod.metadata.deletion_timestamp {
        let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
        return d.0 - SignedDuration::from_secs(grace);
    }
    pod.metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
}

/// What the controller remembers of a Job's recent pod failures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackoffRecord {
    /// Consecutive failures since the last success.
    pub failures_after_last_success: i32,
    /// When the last of them happened.
    pub last_failure_time: Option<Timestamp>,
}

impl BackoffRecord {
    /// The record after seeing newly finished pods: a success resets it, keeping
    /// only failures that happened after the last success.
    pub fn updated(&self, succeeded: &[Arc<Pod>], failed: &[Arc<Pod>]) -> BackoffRecord {
        let mut succ: Vec<Timestamp> = succeeded.iter().map(|p| finished_time(p)).collect();
        let mut fail: Vec<Timestamp> = failed.iter().map(|p| finished_time(p)).collect();
        succ.sort();
        fail.sort();
        let Some(last_success) = succ.last() else {
            let Some(last_fail) = fail.last() else {
                return self.clone();
            };
            return BackoffRecord {
                failures_after_last_success: self.failures_after_last_success
                    + i32::try_from(fail.len()).unwrap_or(i32::MAX),
                last_failure_time: Some(*last_fail),
            };
        };
        let mut out = BackoffRecord::default();
        for t in fail.iter().rev() {
            if t <= last_success {
                break;
            }
            if out.last_failure_time.is_none() {
                out.last_failure_time = Some(*t);
            }
            out.failures_after_last_success += 1;
        }
        out
    }

    /// How long pod creation must still wait at `now`.
    pub fn remaining(&self, now: Timestamp) -> SignedDuration {
        remaining_for_failures(
            now,
            self.failures_after_last_success,
            self.last_failure_time,
        )
    }
}

/// The backoff left after `failures` consecutive failures, the last at `last`:
/// 10 s doubling per failure, capped at 10 minutes.
pub fn remaining_for_failures(
    now: Timestamp,
    failures: i32,
    last: Option<Timestamp>,
) -> SignedDuration {
    let Some(last) = last else {
        return SignedDuration::ZERO;
    };
    if failures <= 0 {
        return SignedDuration::ZERO;
    }
    let mut backoff = DEFAULT_POD_FAILURE_BACKOFF;
    for _ in 1..failures {
        backoff *= 2;
        if backoff >= MAX_POD_FAILURE_BACKOFF {
            backoff = MAX_POD_FAILURE_BACKOFF;
            break;
        }
    }
    let elapsed = now.duration_since(last);
    if backoff < elapsed {
        SignedDuration::ZERO
    } else {
        backoff - elapsed
    }
}

fn annotation_i32(pod: &Pod, key: &str) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| (0..=i64::from(i32::MAX)).contains(v))
        .and_then(|v| i32::try_from(v).ok())
        .unwrap_or(0)
}

/// The failure count of the pod's index (its annotation; 0 if absent or invalid).
pub fn index_failure_count(pod: &Pod) -> i32 {
    annotation_i32(pod, JOB_INDEX_FAILURE_COUNT_ANNOTATION)
}

/// Counted plus ignored failures of the pod's index.
pub fn index_absolute_failure_count(pod: &Pod) -> i32 {
    index_failure_count(pod).saturating_add(annotation_i32(
        pod,
        JOB_INDEX_IGNORED_FAILURE_COUNT_ANNOTATION,
    ))
}

/// The failure counts the replacement of `replaced` starts with.
pub fn new_index_failure_counts(job: &Job, replaced: Option<&Pod>) -> (i32, i32) {
    let Some(p) = replaced else {
        return (0, 0);
    };
    let mut failures = index_failure_count(p);
    let mut ignored = annotation_i32(p, JOB_INDEX_IGNORED_FAILURE_COUNT_ANNOTATION);
    if match_pod_failure_policy(spec_of(job).pod_failure_policy.as_ref(), p).count_failed {
        failures += 1;
    } else {
        ignored += 1;
    }
    (failures, ignored)
}

/// Whether the failed pod makes its index failed (backoffLimitPerIndex): a FailIndex
/// rule matched, or a counted failure reached the per-index limit.
pub fn is_index_failed(job: &Job, pod: &Pod) -> bool {
    if !is_pod_failed(pod, job) {
        return false;
    }
    let m = match_pod_failure_policy(spec_of(job).pod_failure_policy.as_ref(), pod);
    if m.action.as_deref() == Some("FailIndex") {
        return true;
    }
    m.count_failed
        && index_failure_count(pod) >= spec_of(job).backoff_limit_per_index.unwrap_or(i32::MAX)
}

/// The indexes of `pods`, ascending and deduplicated.
pub fn indexes_of<'a>(pods: impl IntoIterator<Item = &'a Arc<Pod>>) -> Vec<i32> {
    let set: BTreeSet<i32> = pods
        .into_iter()
        .filter_map(|p| completion_index(p))
        .collect();
    set.into_iter().collect()
}

/// Up to `count` indexes below `completions` not held by `non_pending`, lowest first.
pub fn first_pending_indexes(
    non_pending: &OrderedIntervals,
    count: usize,
    completions: i32,
) -> Vec<i32> {
    let mut out = Vec::new();
    let mut candidate = 0;
    for iv in &non_pending.0 {
        while candidate < completions && out.len() < count && candidate < iv.first {
            out.push(candidate);
            candidate += 1;
        }
        if candidate < iv.last + 1 {
            candidate = iv.last + 1;
        }
    }
    while candidate < completions && out.len() < count {
        out.push(candidate);
        candidate += 1;
    }
    out
}

/// Sorts pods in deletion order: not-ready before ready, unscheduled before
/// scheduled, pending before running, and so on.
pub fn sort_active_for_removal(pods: Vec<Arc<Pod>>) -> Vec<Arc<Pod>> {
    let mut ranked: Vec<RankedPod> = pods
        .into_iter()
        .map(|pod| RankedPod { pod, rank: 0 })
        .collect();
    sort_for_deletion(&mut ranked, None);
    ranked.into_iter().map(|r| r.pod).collect()
}

/// The active pods to remove: for Indexed Jobs first duplicates of an index (all
/// but the one to keep), pods without a valid index and pods of out-of-range
/// indexes; then, to reach `rm_at_least`, others in deletion order.
pub fn active_pods_for_removal(job: &Job, pods: &[Arc<Pod>], rm_at_least: usize) -> Vec<Arc<Pod>> {
    let mut rm: Vec<Arc<Pod>> = Vec::new();
    let mut left: Vec<Arc<Pod>> = Vec::new();
    if is_indexed(job) {
        let completions = completions(job).unwrap_or(0);
        let mut by_index: HashMap<i32, Vec<Arc<Pod>>> = HashMap::new();
        for p in pods {
            match completion_index(p) {
                Some(ix) if ix < completions => by_index.entry(ix).or_default().push(p.clone()),
                _ => rm.push(p.clone()),
            }
        }
        let mut keys: Vec<i32> = by_index.keys().copied().collect();
        keys.sort_unstable();
        for k in keys {
            let group = by_index.remove(&k).unwrap_or_default();
            let mut sorted = sort_active_for_removal(group);
            if let Some(keep) = sorted.pop() {
                left.push(keep);
            }
            rm.extend(sorted);
        }
    } else {
        left = pods.to_vec();
    }
    if rm.len() < rm_at_least {
        let sorted = sort_active_for_removal(left);
        let need = rm_at_least - rm.len();
        rm.extend(sorted.into_iter().take(need));
    }
    rm
}

/// Active pods: not finished and not being deleted.
pub fn filter_active(pods: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
    pods.iter().filter(|p| is_pod_active(p)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{
        JobSpec, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyOnPodConditionsPattern,
        PodFailurePolicyRule, SuccessPolicyRule,
    };
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn pod(name: &str, phase: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                creation_timestamp: Some(Time(ts("2024-01-01T00:00:00Z"))),
                ..Default::default()
            },
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn with_exit(mut p: Pod, container: &str, code: i32, at: &str) -> Pod {
        p.status
            .get_or_insert_with(Default::default)
            .container_statuses = Some(vec![ContainerStatus {
            name: container.into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    finished_at: Some(Time(ts(at))),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        p
    }

    fn with_index(mut p: Pod, ix: &str) -> Pod {
        p.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(JOB_COMPLETION_INDEX_ANNOTATION.into(), ix.into());
        p
    }

    fn job(spec: JobSpec) -> Job {
        Job {
            spec: Some(spec),
            ..Default::default()
        }
    }

    #[test]
    fn completion_index_parsing() {
        assert_eq!(
            completion_index(&with_index(pod("a", "Running"), "3")),
            Some(3)
        );
        assert_eq!(
            completion_index(&with_index(pod("a", "Running"), "-1")),
            None
        );
        assert_eq!(
            completion_index(&with_index(pod("a", "Running"), "x")),
            None
        );
        assert_eq!(completion_index(&pod("a", "Running")), None);
    }

    #[test]
    fn failed_pods() {
        let j = job(JobSpec::default());
        assert!(is_pod_failed(&pod("a", "Failed"), &j));
        assert!(!is_pod_failed(&pod("a", "Running"), &j));
        let mut deleting = pod("a", "Running");
        deleting.metadata.deletion_timestamp = Some(Time(ts("2024-01-01T00:00:00Z")));
        assert!(is_pod_failed(&deleting, &j));
        assert!(is_terminating(&deleting));
        let only_failed = job(JobSpec {
            pod_replacement_policy: Some("Failed".into()),
            ..Default::default()
        });
        assert!(!is_pod_failed(&deleting, &only_failed));
    }

    fn exit_rule(action: &str, op: &str, values: Vec<i32>) -> PodFailurePolicyRule {
        PodFailurePolicyRule {
            action: action.into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: None,
                operator: op.into(),
                values,
            }),
            on_pod_conditions: None,
        }
    }

    #[test]
    fn pod_failure_policy_rules() {
        let policy = PodFailurePolicy {
            rules: vec![
                exit_rule("Ignore", "In", vec![3]),
                exit_rule("FailJob", "In", vec![42]),
                PodFailurePolicyRule {
                    action: "Ignore".into(),
                    on_exit_codes: None,
                    on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                        type_: "DisruptionTarget".into(),
                        status: "True".into(),
                    }]),
                },
                exit_rule("Count", "NotIn", vec![0, 1]),
            ],
        };
        let p = with_exit(pod("p", "Failed"), "main", 42, "2024-01-01T00:00:00Z");
        let m = match_pod_failure_policy(Some(&policy), &p);
        assert_eq!(
            m.fail_job_message.as_deref(),
            Some("Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1")
        );
        assert_eq!(m.action.as_deref(), Some("FailJob"));
        let m = match_pod_failure_policy(
            Some(&policy),
            &with_exit(pod("p", "Failed"), "main", 3, "2024-01-01T00:00:00Z"),
        );
        assert!(!m.count_failed);
        let m = match_pod_failure_policy(
            Some(&policy),
            &with_exit(pod("p", "Failed"), "main", 7, "2024-01-01T00:00:00Z"),
        );
        assert_eq!((m.count_failed, m.action.as_deref()), (true, Some("Count")));
        // Exit code 1: no rule matches; default counting.
        let m = match_pod_failure_policy(
            Some(&policy),
            &with_exit(pod("p", "Failed"), "main", 1, "2024-01-01T00:00:00Z"),
        );
        assert_eq!(
            m,
            PolicyMatch {
                fail_job_message: None,
                count_failed: true,
                action: None
            }
        );
        let mut disrupted = pod("p", "Failed");
        disrupted.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            ..Default::default()
        }]);
        assert!(!match_pod_failure_policy(Some(&policy), &disrupted).count_failed);
        let fail_on_cond = PodFailurePolicy {
            rules: vec![PodFailurePolicyRule {
                action: "FailJob".into(),
                on_exit_codes: None,
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".into(),
                    status: "True".into(),
                }]),
            }],
        };
        assert_eq!(
            match_pod_failure_policy(Some(&fail_on_cond), &disrupted)
                .fail_job_message
                .as_deref(),
            Some("Pod ns/p has condition DisruptionTarget matching FailJob rule at index 0")
        );
    }

    #[test]
    fn success_policy() {
        let succeeded = OrderedIntervals::parse("0-2,5", 10);
        let rule = |ix: Option<&str>, count: Option<i32>| SuccessPolicy {
            rules: vec![SuccessPolicyRule {
                succeeded_indexes: ix.map(String::from),
                succeeded_count: count,
            }],
        };
        assert_eq!(
            match_success_policy(Some(&rule(Some("0,1"), None)), 10, &succeeded).as_deref(),
            Some("Matched rules at index 0")
        );
        assert_eq!(
            match_success_policy(Some(&rule(Some("0-3"), None)), 10, &succeeded),
            None
        );
        assert!(match_success_policy(Some(&rule(Some("0-3"), Some(3))), 10, &succeeded).is_some());
        assert!(match_success_policy(Some(&rule(None, Some(4))), 10, &succeeded).is_some());
        assert!(match_success_policy(Some(&rule(None, Some(5))), 10, &succeeded).is_none());
        assert!(match_success_policy(None, 10, &succeeded).is_none());
    }

    #[test]
    fn backoff_grows_and_resets() {
        let now = ts("2024-01-01T00:10:00Z");
        let f = |n: i32, ago: i64| {
            remaining_for_failures(now, n, Some(now - SignedDuration::from_secs(ago)))
        };
        assert_eq!(f(1, 0), SignedDuration::from_secs(10));
        assert_eq!(f(1, 4), SignedDuration::from_secs(6));
        assert_eq!(f(2, 0), SignedDuration::from_secs(20));
        assert_eq!(f(3, 0), SignedDuration::from_secs(40));
        assert_eq!(
            f(7, 0),
            SignedDuration::from_secs(600),
            "capped at 10 minutes"
        );
        assert_eq!(f(20, 0), SignedDuration::from_secs(600));
        assert_eq!(f(1, 11), SignedDuration::ZERO);
        assert_eq!(f(0, 0), SignedDuration::ZERO);

        let failed = |at: &str| Arc::new(with_exit(pod("f", "Failed"), "c", 1, at));
        let ok = |at: &str| Arc::new(with_exit(pod("s", "Succeeded"), "c", 0, at));
        let r = BackoffRecord::default().updated(
            &[],
            &[
                failed("2024-01-01T00:01:00Z"),
                failed("2024-01-01T00:00:30Z"),
            ],
        );
        assert_eq!(r.failures_after_last_success, 2);
        assert_eq!(r.last_failure_time, Some(ts("2024-01-01T00:01:00Z")));
        let r2 = r.updated(
            &[failed("2024-01-01T00:02:00Z")][..0],
            &[failed("2024-01-01T00:02:00Z")],
        );
        assert_eq!(r2.failures_after_last_success, 3);
        // A success resets; only later failures count.
        let r3 = r2.updated(
            &[ok("2024-01-01T00:03:00Z")],
            &[
                failed("2024-01-01T00:02:30Z"),
                failed("2024-01-01T00:04:00Z"),
            ],
        );
        assert_eq!(
            r3,
            BackoffRecord {
                failures_after_last_success: 1,
                last_failure_time: Some(ts("2024-01-01T00:04:00Z"))
            }
        );
        assert_eq!(
            r3.updated(&[ok("2024-01-01T00:05:00Z")], &[]),
            BackoffRecord::default()
        );
    }

    #[test]
    fn finish_time_sources() {
        let p = with_exit(pod("p", "Failed"), "c", 1, "2024-01-01T00:05:00Z");
        assert_eq!(finished_time(&p), ts("2024-01-01T00:05:00Z"));
        let mut q = pod("q", "Failed");
        q.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "False".into(),
            last_transition_time: Some(Time(ts("2024-01-01T00:06:00Z"))),
            ..Default::default()
        }]);
        assert_eq!(finished_time(&q), ts("2024-01-01T00:06:00Z"));
        let mut d = pod("d", "Running");
        d.metadata.deletion_timestamp = Some(Time(ts("2024-01-01T00:07:30Z")));
        d.metadata.deletion_grace_period_seconds = Some(30);
        assert_eq!(finished_time(&d), ts("2024-01-01T00:07:00Z"));
        assert_eq!(
            finished_time(&pod("c", "Failed")),
            ts("2024-01-01T00:00:00Z")
        );
    }

    #[test]
    fn restarts_count_for_on_failure() {
        let mut spec = JobSpec {
            backoff_limit: Some(2),
            ..Default::default()
        };
        spec.template.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            restart_policy: Some("OnFailure".into()),
            ..Default::default()
        });
        let j = job(spec);
        let mut p = pod("p", "Running");
        p.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
            restart_count: 1,
            ..Default::default()
        }]);
        assert!(!past_backoff_limit_on_failure(&j, &[Arc::new(p.clone())]));
        p.status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()[0]
            .restart_count = 2;
        assert!(past_backoff_limit_on_failure(&j, &[Arc::new(p.clone())]));
        let never = job(JobSpec {
            backoff_limit: Some(0),
            ..Default::default()
        });
        assert!(!past_backoff_limit_on_failure(&never, &[Arc::new(p)]));
    }

    #[test]
    fn pending_indexes() {
        let non_pending = OrderedIntervals::parse("0,2-3,6", 10);
        assert_eq!(first_pending_indexes(&non_pending, 3, 10), [1, 4, 5]);
        assert_eq!(first_pending_indexes(&non_pending, 10, 8), [1, 4, 5, 7]);
        assert_eq!(
            first_pending_indexes(&OrderedIntervals::default(), 2, 5),
            [0, 1]
        );
        assert!(first_pending_indexes(&non_pending, 0, 10).is_empty());
    }

    #[test]
    fn removal_of_duplicate_and_invalid_indexes() {
        let j = job(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(3),
            ..Default::default()
        });
        let pods: Vec<Arc<Pod>> = vec![
            Arc::new(with_index(pod("a", "Running"), "0")),
            Arc::new(with_index(pod("b", "Pending"), "0")),
            Arc::new(with_index(pod("c", "Running"), "5")),
            Arc::new(pod("d", "Running")),
            Arc::new(with_index(pod("e", "Running"), "1")),
        ];
        let mut names: Vec<String> = active_pods_for_removal(&j, &pods, 0)
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        // The pending duplicate of index 0 goes, the running one stays.
        assert_eq!(names, ["b", "c", "d"]);
        assert_eq!(active_pods_for_removal(&j, &pods, 4).len(), 4);
    }

    #[test]
    fn conditions() {
        let now = ts("2024-01-01T00:00:00Z");
        let mut list = Vec::new();
        assert!(!ensure_condition(
            &mut list,
            COND_SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            now
        ));
        assert!(list.is_empty(), "no new False condition");
        assert!(ensure_condition(
            &mut list,
            COND_SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(!ensure_condition(
            &mut list,
            COND_SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(ensure_condition(
            &mut list,
            COND_SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            now
        ));
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].reason.as_deref(), Some("JobResumed"));
        let c = new_condition(COND_COMPLETE, "True", "", "", now);
        assert_eq!((c.reason, c.message), (None, None));
    }
}
