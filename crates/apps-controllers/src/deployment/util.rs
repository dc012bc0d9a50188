//! Pure helpers of the Deployment controller: the annotations it keeps on ReplicaSets
//! (revision, revision history, desired and max replicas), rolling-update arithmetic
//! (maxSurge/maxUnavailable resolution, the size of the new ReplicaSet, proportional
//! shares), status conditions, the pod-template hash, template comparison and the
//! orderings of ReplicaSets.
//!
//! Nothing here talks to the API server; the sync code in the sibling modules does.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetCondition,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The label added to a ReplicaSet's selector, labels and pod template to keep the
/// ReplicaSets of one Deployment apart.
pub const DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY: &str = "pod-template-hash";
/// Annotation on a Deployment's ReplicaSets (and the Deployment) with the rollout
/// sequence number.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Annotation keeping the earlier revisions a reused ReplicaSet has served.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// Annotation with the Deployment's `spec.replicas` when the ReplicaSet was last sized.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// Annotation with `spec.replicas + maxSurge` when the ReplicaSet was last sized.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// Annotation carrying the revision of a requested rollback (the round-tripped
/// `spec.rollbackTo` of the removed extensions/v1beta1 and apps/v1beta1 APIs).
pub const DEPRECATED_ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// kubectl's client-side apply annotation; never copied to ReplicaSets.
pub const LAST_APPLIED_CONFIG_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Most characters kept in the revision-history annotation.
pub const MAX_REV_HISTORY_LENGTH_IN_CHARS: usize = 2000;

/// Condition type: enough pods are available.
pub const DEPLOYMENT_AVAILABLE: &str = "Available";
/// Condition type: the rollout is progressing (or has finished, or is stuck).
pub const DEPLOYMENT_PROGRESSING: &str = "Progressing";
/// Condition type: pods of a ReplicaSet could not be created or deleted.
pub const DEPLOYMENT_REPLICA_FAILURE: &str = "ReplicaFailure";
/// The ReplicaSet condition type mirrored into [`DEPLOYMENT_REPLICA_FAILURE`].
pub const REPLICA_SET_REPLICA_FAILURE: &str = "ReplicaFailure";

/// Progressing reason: a ReplicaSet was scaled as part of the rollout.
pub const REPLICA_SET_UPDATED_REASON: &str = "ReplicaSetUpdated";
/// Progressing reason: the new ReplicaSet could not be created.
pub const FAILED_RS_CREATE_REASON: &str = "ReplicaSetCreateError";
/// Progressing reason: the new ReplicaSet was created.
pub const NEW_RS_NEW_REPLICAS_REASON: &str = "NewReplicaSetCreated";
/// Progressing reason: the new ReplicaSet already existed.
pub const FOUND_NEW_RS_REASON: &str = "FoundNewReplicaSet";
/// Progressing reason: the rollout finished.
pub const NEW_RS_AVAILABLE_REASON: &str = "NewReplicaSetAvailable";
/// Progressing reason: no progress within `progressDeadlineSeconds`.
pub const TIMED_OUT_REASON: &str = "ProgressDeadlineExceeded";
/// Progressing reason: the Deployment is paused.
pub const PAUSED_DEPLOY_REASON: &str = "DeploymentPaused";
/// Progressing reason: the Deployment was resumed.
pub const RESUMED_DEPLOY_REASON: &str = "DeploymentResumed";
/// Available reason: at least `replicas - maxUnavailable` pods are available.
pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
/// Available reason: fewer than `replicas - maxUnavailable` pods are available.
pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// Event reason: the revision to roll back to does not exist.
pub const ROLLBACK_REVISION_NOT_FOUND: &str = "DeploymentRollbackRevisionNotFound";
/// Event reason: the revision to roll back to has the current template.
pub const ROLLBACK_TEMPLATE_UNCHANGED: &str = "DeploymentRollbackTemplateUnchanged";
/// Event reason: the Deployment was rolled back.
pub const ROLLBACK_DONE: &str = "DeploymentRollback";

/// The characters a hash is rendered with (no vowels, no easily confused digits).
const SAFE_ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Annotations of a Deployment that are never copied to its ReplicaSets (and never
/// copied back on rollback).
pub fn skip_copy_annotation(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED_CONFIG_ANNOTATION
            | REVISION_ANNOTATION
            | REVISION_HISTORY_ANNOTATION
            | DESIRED_REPLICAS_ANNOTATION
            | MAX_REPLICAS_ANNOTATION
            | DEPRECATED_ROLLBACK_TO
    )
}

/// The current time at the precision the API keeps (whole seconds), so that a
/// condition built now compares equal to itself once written and read back.
pub fn now() -> jiff::Timestamp {
    let t = jiff::Timestamp::now();
    jiff::Timestamp::from_second(t.as_second()).unwrap_or(t)
}

// ------------------------------------------------------------------ spec access

/// `spec.replicas` of a Deployment (1 when unset, as defaulted).
pub fn desired(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `spec.replicas` of a ReplicaSet (1 when unset, as defaulted).
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Sets `spec.replicas` of a ReplicaSet.
pub fn set_rs_replicas(rs: &mut ReplicaSet, n: i32) {
    rs.spec.get_or_insert_with(Default::default).replicas = Some(n);
}

/// `status.replicas` of a ReplicaSet.
pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

/// `status.availableReplicas` of a ReplicaSet.
pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// `status.readyReplicas` of a ReplicaSet.
pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

/// `spec.minReadySeconds` of a Deployment.
pub fn min_ready_seconds(d: &Deployment) -> i32 {
    d.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// `spec.paused`.
pub fn is_paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

/// The strategy type (`RollingUpdate` when unset, as defaulted).
pub fn strategy_type(d: &Deployment) -> &str {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

/// Whether the strategy is RollingUpdate.
pub fn is_rolling_update(d: &Deployment) -> bool {
    strategy_type(d) == "RollingUpdate"
}

fn rolling_params(d: &Deployment) -> (Option<&IntOrString>, Option<&IntOrString>) {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    (
        ru.and_then(|r| r.max_surge.as_ref()),
        ru.and_then(|r| r.max_unavailable.as_ref()),
    )
}

/// Whether `progressDeadlineSeconds` is set (and not the "no deadline" maximum).
pub fn has_progress_deadline(d: &Deployment) -> bool {
    progress_deadline_seconds(d).is_some()
}

/// `progressDeadlineSeconds` when it sets a deadline.
pub fn progress_deadline_seconds(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|p| *p != i32::MAX)
}

/// `revisionHistoryLimit` when it limits anything.
pub fn revision_history_limit(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .filter(|l| *l != i32::MAX)
}

// ------------------------------------------------------------- int-or-percent

/// Resolves an int-or-percent against `total`: an integer as is, `N%` as N percent
/// of `total`, rounded up or down.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let Some(num) = s.strip_suffix('%') else {
                return Err(
                    "invalid value for IntOrString: invalid type: string is not a percentage"
                        .to_string(),
                );
            };
            let pct: i64 = num
                .parse()
                .map_err(|e| format!("invalid value for IntOrString: invalid value {s:?}: {e}"))?;
            let product = pct * i64::from(total);
            let scaled = if round_up {
                product.div_euclid(100) + i64::from(product.rem_euclid(100) != 0)
            } else {
                product.div_euclid(100)
            };
            Ok(i32::try_from(scaled).unwrap_or(if scaled < 0 { i32::MIN } else { i32::MAX }))
        }
    }
}

/// Resolves maxSurge (rounded up) and maxUnavailable (rounded down) against
/// `desired`; when both come out zero, maxUnavailable becomes 1.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), String> {
    let zero = IntOrString::Int(0);
    let surge = scaled_value(max_surge.unwrap_or(&zero), desired, true)?;
    let mut unavailable = scaled_value(max_unavailable.unwrap_or(&zero), desired, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

/// How many pods may be unavailable during a rolling update (0 for Recreate or zero
/// replicas), never more than `replicas`.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let replicas = desired(d);
    if !is_rolling_update(d) || replicas == 0 {
        return 0;
    }
    let (s, u) = rolling_params(d);
    let (_, unavailable) = resolve_fenceposts(s, u, replicas).unwrap_or((0, 0));
    unavailable.min(replicas)
}

/// How many pods may exist above `replicas` during a rolling update (0 for Recreate).
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    let (s, u) = rolling_params(d);
    resolve_fenceposts(s, u, desired(d))
        .map(|(surge, _)| surge)
        .unwrap_or(0)
}

/// The size the new ReplicaSet may grow to now: for RollingUpdate, as far as the surge
/// allows without passing `replicas`; for Recreate, `replicas`.
pub fn new_rs_new_replicas(
    d: &Deployment,
    all_rss: &[&ReplicaSet],
    new_rs: &ReplicaSet,
) -> Result<i32, String> {
    let replicas = desired(d);
    match strategy_type(d) {
        "RollingUpdate" => {
            let (s, _) = rolling_params(d);
            let surge = scaled_value(s.unwrap_or(&IntOrString::Int(0)), replicas, true)?;
            let current = replica_count(all_rss.iter().copied());
            let max_total = replicas.saturating_add(surge);
            if current >= max_total {
                return Ok(rs_replicas(new_rs));
            }
            let up = (max_total - current).min(replicas - rs_replicas(new_rs));
            Ok(rs_replicas(new_rs) + up)
        }
        "Recreate" => Ok(replicas),
        other => Err(format!("deployment type {other} isn't supported")),
    }
}

// ---------------------------------------------------------------- annotations

fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The revision of a ReplicaSet (0 when it has none).
pub fn revision(rs: &ReplicaSet) -> Result<i64, String> {
    match annotation(rs, REVISION_ANNOTATION) {
        None => Ok(0),
        Some(v) => v
            .parse::<i64>()
            .map_err(|e| format!("strconv.ParseInt: parsing {v:?}: {e}")),
    }
}

/// The highest revision among `rss` (unparsable ones skipped).
pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rss.into_iter()
        .filter_map(|rs| revision(rs).ok())
        .fold(0, i64::max)
}

/// The second highest revision among `rss`: the one before the latest.
pub fn last_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    let (mut max, mut second) = (0, 0);
    for v in rss.into_iter().filter_map(|rs| revision(rs).ok()) {
        if v >= max {
            second = max;
            max = v;
        } else if v > second {
            second = v;
        }
    }
    second
}

fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    annotation(rs, key)?.parse().ok()
}

/// The desired-replicas annotation.
pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
}

/// The max-replicas annotation.
pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, MAX_REPLICAS_ANNOTATION)
}

/// Sets the desired-replicas and max-replicas annotations; whether anything changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut updated = false;
    for (key, value) in [
        (DESIRED_REPLICAS_ANNOTATION, desired.to_string()),
        (MAX_REPLICAS_ANNOTATION, max.to_string()),
    ] {
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.to_string(), value);
            updated = true;
        }
    }
    updated
}

/// Whether the desired-replicas or max-replicas annotation differs from the values.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(rs, DESIRED_REPLICAS_ANNOTATION) != Some(desired.to_string().as_str())
        || annotation(rs, MAX_REPLICAS_ANNOTATION) != Some(max.to_string().as_str())
}

/// Copies the Deployment's annotations (except the skipped ones) onto the ReplicaSet;
/// whether anything changed.
pub fn copy_deployment_annotations_to_replica_set(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let target = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy_annotation(k) || target.get(k) == Some(v) {
            continue;
        }
        target.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Brings the annotations of the Deployment's new ReplicaSet up to date: the copied
/// Deployment annotations, the revision (raised to `new_revision` when lower, keeping
/// the old one in the revision history, bounded to `history_limit` characters), and,
/// for a ReplicaSet about to be created (`!exists`), the replicas annotations.
/// Returns whether anything changed.
pub fn set_new_replica_set_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: &str,
    exists: bool,
    history_limit: usize,
) -> bool {
    let mut changed = copy_deployment_annotations_to_replica_set(d, rs);
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old_revision = annotations.get(REVISION_ANNOTATION).cloned();
    let old_int = match old_revision.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            Err(e) => {
                tracing::info!(error = %e, "updating replica set revision: old revision is not an integer");
                return false;
            }
        },
    };
    let new_int = match new_revision.parse::<i64>() {
        Ok(n) => n,
        Err(e) => {
            tracing::info!(error = %e, "updating replica set revision: new revision is not an integer");
            return false;
        }
    };
    if old_int < new_int {
        annotations.insert(REVISION_ANNOTATION.to_string(), new_revision.to_string());
        changed = true;
    }
    if let Some(old) = old_revision.filter(|_| old_int < new_int) {
        let history = annotations
            .get(REVISION_HISTORY_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        if history.is_empty() {
            annotations.insert(REVISION_HISTORY_ANNOTATION.to_string(), old);
        } else {
            let parts: Vec<&str> = history.split(',').collect();
            let mut total = history.len() + old.len() + 1;
            let mut start = 0;
            while total > history_limit && start < parts.len() {
                total -= parts[start].len() + 1;
                start += 1;
            }
            if total <= history_limit {
                let mut kept: Vec<&str> = parts[start..].to_vec();
                kept.push(&old);
                annotations.insert(REVISION_HISTORY_ANNOTATION.to_string(), kept.join(","));
            } else {
                tracing::info!(
                    limit = history_limit,
                    "not appending revision: revision history length limit reached"
                );
            }
        }
    }
    if !exists {
        let replicas = desired(d);
        if set_replicas_annotations(rs, replicas, replicas.saturating_add(max_surge(d))) {
            changed = true;
        }
    }
    changed
}

/// Sets the Deployment's revision annotation; whether it changed.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let annotations = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if annotations.get(REVISION_ANNOTATION).map(String::as_str) == Some(revision) {
        return false;
    }
    annotations.insert(REVISION_ANNOTATION.to_string(), revision.to_string());
    true
}

/// On rollback: the Deployment keeps only its skipped annotations and takes the
/// others from the ReplicaSet rolled back to.
pub fn set_deployment_annotations_to(d: &mut Deployment, rs: &ReplicaSet) {
    let mut kept: BTreeMap<String, String> = d
        .metadata
        .annotations
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| skip_copy_annotation(k))
        .collect();
    for (k, v) in rs.metadata.annotations.iter().flatten() {
        if !skip_copy_annotation(k) {
            kept.insert(k.clone(), v.clone());
        }
    }
    d.metadata.annotations = Some(kept);
}

/// The requested rollback revision, from [`DEPRECATED_ROLLBACK_TO`] (`None` when
/// absent, empty or not a number).
pub fn rollback_to(d: &Deployment) -> Option<i64> {
    d.metadata
        .annotations
        .as_ref()?
        .get(DEPRECATED_ROLLBACK_TO)
        .filter(|v| !v.is_empty())?
        .parse()
        .ok()
}

// ------------------------------------------------------------------ conditions

/// A Deployment condition stamped `now` (both update and transition time).
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: impl Into<String>,
    now: jiff::Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.into()),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The condition of type `type_`.
pub fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Sets a condition: nothing happens when one with the same status and reason exists;
/// the transition time is kept when only the reason changes. The new condition goes
/// last.
pub fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    if let Some(current) = get_condition(status, &cond.type_) {
        if current.status == cond.status && current.reason == cond.reason {
            return;
        }
        if current.status == cond.status {
            cond.last_transition_time = current.last_transition_time.clone();
        }
    }
    let mut conditions: Vec<DeploymentCondition> = status
        .conditions
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != cond.type_)
        .collect();
    conditions.push(cond);
    status.conditions = Some(conditions);
}

/// Removes the condition of type `type_`.
pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.take() {
        let rest: Vec<DeploymentCondition> = conditions
            .into_iter()
            .filter(|c| c.type_ != type_)
            .collect();
        status.conditions = (!rest.is_empty()).then_some(rest);
    }
}

/// A ReplicaSet condition as a Deployment condition (update time = transition time).
pub fn rs_condition_to_deployment_condition(c: &ReplicaSetCondition) -> DeploymentCondition {
    DeploymentCondition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_update_time: c.last_transition_time.clone(),
        last_transition_time: c.last_transition_time.clone(),
    }
}

fn status_i32(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// Whether the rollout is done: every replica updated and available, and the latest
/// generation observed.
pub fn deployment_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let replicas = desired(d);
    status_i32(status.updated_replicas) == replicas
        && status_i32(status.replicas) == replicas
        && status_i32(status.available_replicas) == replicas
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Whether `new` shows progress over the Deployment's current status: more updated,
/// ready or available replicas, or fewer old ones.
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = status_i32(old.replicas) - status_i32(old.updated_replicas);
    let new_old = status_i32(new.replicas) - status_i32(new.updated_replicas);
    status_i32(new.updated_replicas) > status_i32(old.updated_replicas)
        || new_old < old_old
        || status_i32(new.ready_replicas) > status_i32(old.ready_replicas)
        || status_i32(new.available_replicas) > status_i32(old.available_replicas)
}

/// Whether the rollout has made no progress for `progressDeadlineSeconds` (judged by
/// the Progressing condition's last update).
pub fn deployment_timed_out(
    d: &Deployment,
    status: &DeploymentStatus,
    now: jiff::Timestamp,
) -> bool {
    let Some(deadline) = progress_deadline_seconds(d) else {
        return false;
    };
    let Some(cond) = get_condition(status, DEPLOYMENT_PROGRESSING) else {
        return false;
    };
    match cond.reason.as_deref() {
        Some(NEW_RS_AVAILABLE_REASON) => return false,
        Some(TIMED_OUT_REASON) => return true,
        _ => {}
    }
    let Some(from) = cond.last_update_time.as_ref() else {
        return false;
    };
    from.0 + jiff::SignedDuration::from_secs(i64::from(deadline)) < now
}

// --------------------------------------------------------------- counting

/// Saturating sum of `count` over the ReplicaSets.
fn sum_of<'a>(
    rss: impl IntoIterator<Item = &'a ReplicaSet>,
    count: impl Fn(&ReplicaSet) -> i32,
) -> i32 {
    rss.into_iter().fold(0, |n, rs| n.saturating_add(count(rs)))
}

/// Sum of `spec.replicas`.
pub fn replica_count<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    sum_of(rss, rs_replicas)
}

/// Sum of `status.replicas`.
pub fn actual_replica_count<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    sum_of(rss, rs_status_replicas)
}

/// Sum of `status.readyReplicas`.
pub fn ready_replica_count<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    sum_of(rss, rs_ready)
}

/// Sum of `status.availableReplicas`.
pub fn available_replica_count<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    sum_of(rss, rs_available)
}

/// Whether the ReplicaSet has (desired) replicas.
pub fn is_active(rs: &ReplicaSet) -> bool {
    rs_replicas(rs) > 0
}

/// Whether the new ReplicaSet runs the whole Deployment: sized, annotated and
/// available at `replicas`.
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else {
        return false;
    };
    let Some(annotated) =
        annotation(rs, DESIRED_REPLICAS_ANNOTATION).and_then(|v| v.parse::<i32>().ok())
    else {
        return false;
    };
    let replicas = desired(d);
    rs_replicas(rs) == replicas && annotated == replicas && rs_available(rs) == replicas
}

/// This ReplicaSet's share of `to_add` replicas (negative when removing), given that
/// `added` were handed out already: its size scaled by the Deployment's new maximum
/// over the maximum it was sized for, never beyond what is left.
pub fn replica_set_proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// `num / den` rounded half away from zero (as Go's math.Round of the quotient);
/// `den` must not be zero.
fn round_div(num: i64, den: i64) -> i64 {
    let (q, r) = (num / den, num % den);
    if 2 * r.abs() >= den.abs() {
        if (num < 0) == (den < 0) {
            q + 1
        } else {
            q - 1
        }
    } else {
        q
    }
}

fn replica_set_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    let size = rs_replicas(rs);
    let replicas = desired(d);
    if replicas == 0 {
        return -size;
    }
    let max_now = i64::from(replicas.saturating_add(max_surge(d)));
    let before = max_replicas_annotation(rs)
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if before == 0 {
        // Nothing to scale from: leave the share to the leftover step.
        return 0;
    }
    let scaled = round_div(i64::from(size) * max_now, i64::from(before));
    i32::try_from(scaled).unwrap_or(i32::MAX) - size
}

// ------------------------------------------------------------ templates, hash

/// Renders a decimal hash with the safe alphabet `bcdfghjklmnpqrstvwxz2456789`, one
/// character per digit.
pub fn safe_encode_string(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(SAFE_ALPHANUMS[usize::from(b) % SAFE_ALPHANUMS.len()]))
        .collect()
}

/// FNV-1a, 32 bits.
pub fn fnv32a(data: &[u8], mut hash: u32) -> u32 {
    for b in data {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The FNV-1a offset basis.
pub const FNV32_OFFSET: u32 = 0x811c_9dc5;

/// The `pod-template-hash` of a template: FNV-1a (32 bits) over a canonical
/// rendering of the template followed, when set, by the collision count as 8 bytes
/// (little-endian uint32 and four zero bytes); the decimal value rendered with the
/// safe alphabet.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let value = serde_json::to_value(template).unwrap_or(serde_json::Value::Null);
    let mut canonical = String::new();
    write_canonical(&normalize(value), &mut canonical);
    let mut hash = fnv32a(canonical.as_bytes(), FNV32_OFFSET);
    if let Some(c) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&c.to_le_bytes());
        hash = fnv32a(&bytes, hash);
    }
    safe_encode_string(&hash.to_string())
}

/// Drops nulls, empty objects and empty arrays (absent and empty are the same to the
/// API).
fn normalize(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, normalize(v)))
                .filter(|(_, v)| !is_empty_value(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
        other => other,
    }
}

fn is_empty_value(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Object(m) => m.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// JSON with object keys sorted, whatever the map type's order.
fn write_canonical(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(v) = m.get(k) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn template_value_without_hash(t: &PodTemplateSpec) -> serde_json::Value {
    let mut t = t.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY);
    }
    normalize(serde_json::to_value(&t).unwrap_or(serde_json::Value::Null))
}

/// Whether two pod templates are the same apart from the `pod-template-hash` label
/// (absent and empty fields count as equal).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    template_value_without_hash(a) == template_value_without_hash(b)
}

/// The pod template of a ReplicaSet (empty when unset).
pub fn rs_template(rs: &ReplicaSet) -> PodTemplateSpec {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default()
}

/// The Deployment's pod template.
pub fn deployment_template(d: &Deployment) -> PodTemplateSpec {
    d.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

// ---------------------------------------------------------- finding, ordering

fn creation_order(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
    ta.cmp(&tb)
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Oldest first (ties by name).
pub fn sort_by_creation(rss: &mut [ReplicaSet]) {
    rss.sort_by(creation_order);
}

/// Lowest revision first (ties, or unparsable revisions, by age).
pub fn sort_by_revision(rss: &mut [ReplicaSet]) {
    rss.sort_by(|a, b| match (revision(a), revision(b)) {
        (Ok(x), Ok(y)) if x != y => x.cmp(&y),
        _ => creation_order(a, b),
    });
}

/// Largest first; among equal sizes the newest first (for scaling up).
pub fn sort_by_size_newer(rss: &mut [ReplicaSet]) {
    rss.sort_by(|a, b| {
        rs_replicas(b)
            .cmp(&rs_replicas(a))
            .then_with(|| creation_order(b, a))
    });
}

/// Largest first; among equal sizes the oldest first (for scaling down).
pub fn sort_by_size_older(rss: &mut [ReplicaSet]) {
    rss.sort_by(|a, b| {
        rs_replicas(b)
            .cmp(&rs_replicas(a))
            .then_with(|| creation_order(a, b))
    });
}

/// The Deployment's new ReplicaSet: the oldest whose template equals the Deployment's
/// (ignoring the hash label).
pub fn find_new_replica_set(d: &Deployment, rss: &[ReplicaSet]) -> Option<ReplicaSet> {
    let template = deployment_template(d);
    let mut sorted: Vec<ReplicaSet> = rss.to_vec();
    sort_by_creation(&mut sorted);
    sorted
        .into_iter()
        .find(|rs| equal_ignore_hash(&rs_template(rs), &template))
}

/// The old ReplicaSets: all but the new one.
pub fn find_old_replica_sets(d: &Deployment, rss: &[ReplicaSet]) -> Vec<ReplicaSet> {
    let new_uid = find_new_replica_set(d, rss).and_then(|rs| rs.metadata.uid);
    rss.iter()
        .filter(|rs| new_uid.is_none() || rs.metadata.uid != new_uid)
        .cloned()
        .collect()
}

/// When at most one ReplicaSet has replicas: that one, or, when none has, the new one
/// (else the newest old one). `None` when several are active.
pub fn find_active_or_latest(
    new_rs: Option<&ReplicaSet>,
    old_rss: &[ReplicaSet],
) -> Option<ReplicaSet> {
    if new_rs.is_none() && old_rss.is_empty() {
        return None;
    }
    let mut olds = old_rss.to_vec();
    olds.sort_by(|a, b| creation_order(b, a));
    let active: Vec<&ReplicaSet> = olds
        .iter()
        .chain(new_rs)
        .filter(|rs| is_active(rs))
        .collect();
    match active.len() {
        0 => new_rs.cloned().or_else(|| olds.first().cloned()),
        1 => active.first().map(|rs| (*rs).clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, RollingUpdateDeployment,
    };
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    fn deployment(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                template: template("nginx:1"),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    fn rs(name: &str, replicas: i32, created: i64, annotations: &[(&str, &str)]) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(Time(
                    jiff::Timestamp::from_second(1_700_000_000 + created).unwrap(),
                )),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                template: Some(template("nginx:1")),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn int_or_percent_rounding() {
        assert_eq!(scaled_value(&pct("25%"), 10, true), Ok(3));
        assert_eq!(scaled_value(&pct("25%"), 10, false), Ok(2));
        assert_eq!(scaled_value(&pct("25%"), 4, true), Ok(1));
        assert_eq!(scaled_value(&pct("0%"), 4, true), Ok(0));
        assert_eq!(scaled_value(&IntOrString::Int(7), 4, true), Ok(7));
        assert_eq!(
            scaled_value(&pct("3"), 4, true).unwrap_err(),
            "invalid value for IntOrString: invalid type: string is not a percentage"
        );
        assert!(scaled_value(&pct("x%"), 4, true)
            .unwrap_err()
            .starts_with("invalid value for IntOrString: invalid value \"x%\""));
    }

    #[test]
    fn fenceposts() {
        // Surge rounds up, unavailable down.
        assert_eq!(
            resolve_fenceposts(Some(&pct("25%")), Some(&pct("25%")), 10),
            Ok((3, 2))
        );
        // Both resolving to zero: one may be unavailable.
        assert_eq!(
            resolve_fenceposts(Some(&pct("0%")), Some(&pct("10%")), 5),
            Ok((0, 1))
        );
        assert_eq!(resolve_fenceposts(None, None, 5), Ok((0, 1)));
        let d = deployment(10, IntOrString::Int(3), IntOrString::Int(2));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (3, 2));
        let big = deployment(2, IntOrString::Int(0), IntOrString::Int(5));
        assert_eq!(max_unavailable(&big), 2, "capped at replicas");
        let zero = deployment(0, pct("25%"), pct("25%"));
        assert_eq!(max_unavailable(&zero), 0);
        let mut recreate = deployment(3, pct("25%"), pct("25%"));
        recreate.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
        assert_eq!((max_surge(&recreate), max_unavailable(&recreate)), (0, 0));
    }

    #[test]
    fn new_replica_set_size() {
        let d = deployment(10, IntOrString::Int(3), IntOrString::Int(2));
        let old = rs("old", 10, 0, &[]);
        let new = rs("new", 0, 1, &[]);
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), Ok(3));
        let new5 = rs("new", 5, 1, &[]);
        let old8 = rs("old", 8, 0, &[]);
        assert_eq!(new_rs_new_replicas(&d, &[&old8, &new5], &new5), Ok(5));
        let old2 = rs("old", 2, 0, &[]);
        assert_eq!(
            new_rs_new_replicas(&d, &[&old2, &new5], &new5),
            Ok(10),
            "never beyond replicas"
        );
    }

    #[test]
    fn revisions() {
        let a = rs("a", 0, 0, &[(REVISION_ANNOTATION, "3")]);
        let b = rs("b", 0, 1, &[(REVISION_ANNOTATION, "7")]);
        let c = rs("c", 0, 2, &[(REVISION_ANNOTATION, "x")]);
        let none = rs("d", 0, 3, &[]);
        assert_eq!(revision(&none), Ok(0));
        assert!(revision(&c).is_err());
        assert_eq!(max_revision([&a, &b, &c, &none]), 7);
        assert_eq!(last_revision([&a, &b, &c, &none]), 3);
        assert_eq!(last_revision([&b]), 0);
    }

    #[test]
    fn new_replica_set_annotations() {
        let mut d = deployment(4, pct("25%"), pct("25%"));
        d.metadata.annotations = Some(
            [
                ("kubernetes.io/change-cause", "edit"),
                (REVISION_ANNOTATION, "9"),
                (LAST_APPLIED_CONFIG_ANNOTATION, "{}"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        let mut fresh = rs("n", 0, 0, &[]);
        assert!(set_new_replica_set_annotations(
            &d, &mut fresh, "1", false, 2000
        ));
        let a = fresh.metadata.annotations.clone().unwrap();
        assert_eq!(a[REVISION_ANNOTATION], "1");
        assert_eq!(a[DESIRED_REPLICAS_ANNOTATION], "4");
        assert_eq!(a[MAX_REPLICAS_ANNOTATION], "5");
        assert_eq!(a["kubernetes.io/change-cause"], "edit");
        assert!(!a.contains_key(LAST_APPLIED_CONFIG_ANNOTATION));
        assert!(!a.contains_key(REVISION_HISTORY_ANNOTATION));
        // Unchanged on a second pass.
        assert!(!set_new_replica_set_annotations(
            &d, &mut fresh, "1", true, 2000
        ));

        // Reused for a rollback: revision raised, old one kept in the history.
        let mut reused = rs("r", 0, 0, &[(REVISION_ANNOTATION, "1")]);
        assert!(set_new_replica_set_annotations(
            &d,
            &mut reused,
            "3",
            true,
            2000
        ));
        let a = reused.metadata.annotations.clone().unwrap();
        assert_eq!(a[REVISION_ANNOTATION], "3");
        assert_eq!(a[REVISION_HISTORY_ANNOTATION], "1");
        assert!(
            !a.contains_key(DESIRED_REPLICAS_ANNOTATION),
            "only set on creation"
        );
        assert!(set_new_replica_set_annotations(
            &d,
            &mut reused,
            "5",
            true,
            2000
        ));
        assert_eq!(
            reused.metadata.annotations.as_ref().unwrap()[REVISION_HISTORY_ANNOTATION],
            "1,3"
        );
        // A lower revision is never written over a higher one.
        assert!(!set_new_replica_set_annotations(
            &d,
            &mut reused,
            "4",
            true,
            2000
        ));
        // The history is trimmed from the front to the character limit.
        assert!(set_new_replica_set_annotations(
            &d,
            &mut reused,
            "6",
            true,
            4
        ));
        assert_eq!(
            reused.metadata.annotations.as_ref().unwrap()[REVISION_HISTORY_ANNOTATION],
            "3,5"
        );
    }

    #[test]
    fn rollback_annotations() {
        let mut d = deployment(1, pct("25%"), pct("25%"));
        d.metadata.annotations = Some(
            [
                (REVISION_ANNOTATION, "2"),
                ("kubernetes.io/change-cause", "edit"),
                (DEPRECATED_ROLLBACK_TO, "1"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        assert_eq!(rollback_to(&d), Some(1));
        let old = rs(
            "o",
            0,
            0,
            &[
                (REVISION_ANNOTATION, "1"),
                ("kubernetes.io/change-cause", "create"),
                ("x", "y"),
            ],
        );
        set_deployment_annotations_to(&mut d, &old);
        let a = d.metadata.annotations.clone().unwrap();
        assert_eq!(a[REVISION_ANNOTATION], "2", "skipped annotations stay");
        assert_eq!(a["kubernetes.io/change-cause"], "create");
        assert_eq!(a["x"], "y");
    }

    #[test]
    fn conditions() {
        let t = |s: i64| jiff::Timestamp::from_second(1_700_000_000 + s).unwrap();
        let mut st = DeploymentStatus::default();
        set_condition(
            &mut st,
            new_condition(
                DEPLOYMENT_AVAILABLE,
                "True",
                MINIMUM_REPLICAS_AVAILABLE,
                "a",
                t(0),
            ),
        );
        set_condition(
            &mut st,
            new_condition(
                DEPLOYMENT_PROGRESSING,
                "True",
                NEW_RS_NEW_REPLICAS_REASON,
                "p",
                t(1),
            ),
        );
        // Same status and reason: ignored.
        set_condition(
            &mut st,
            new_condition(
                DEPLOYMENT_AVAILABLE,
                "True",
                MINIMUM_REPLICAS_AVAILABLE,
                "b",
                t(5),
            ),
        );
        assert_eq!(
            get_condition(&st, DEPLOYMENT_AVAILABLE)
                .unwrap()
                .message
                .as_deref(),
            Some("a")
        );
        // Same status, new reason: transition time kept, moved last.
        set_condition(
            &mut st,
            new_condition(DEPLOYMENT_AVAILABLE, "True", "Other", "c", t(6)),
        );
        let c = st.conditions.as_ref().unwrap();
        assert_eq!(c[1].type_, DEPLOYMENT_AVAILABLE);
        assert_eq!(c[1].last_transition_time, Some(Time(t(0))));
        assert_eq!(c[1].last_update_time, Some(Time(t(6))));
        set_condition(
            &mut st,
            new_condition(
                DEPLOYMENT_AVAILABLE,
                "False",
                MINIMUM_REPLICAS_UNAVAILABLE,
                "d",
                t(7),
            ),
        );
        assert_eq!(
            get_condition(&st, DEPLOYMENT_AVAILABLE)
                .unwrap()
                .last_transition_time,
            Some(Time(t(7)))
        );
        remove_condition(&mut st, DEPLOYMENT_PROGRESSING);
        remove_condition(&mut st, DEPLOYMENT_AVAILABLE);
        assert!(st.conditions.is_none());
    }

    #[test]
    fn progress_and_deadline() {
        let t = |s: i64| jiff::Timestamp::from_second(1_700_000_000 + s).unwrap();
        let mut d = deployment(3, pct("25%"), pct("25%"));
        d.spec.as_mut().unwrap().progress_deadline_seconds = Some(10);
        d.status = Some(DeploymentStatus {
            replicas: Some(4),
            updated_replicas: Some(1),
            ..Default::default()
        });
        let more_updated = DeploymentStatus {
            replicas: Some(4),
            updated_replicas: Some(2),
            ..Default::default()
        };
        assert!(deployment_progressing(&d, &more_updated));
        assert!(!deployment_progressing(&d, d.status.as_ref().unwrap()));
        let fewer_old = DeploymentStatus {
            replicas: Some(3),
            updated_replicas: Some(1),
            ..Default::default()
        };
        assert!(deployment_progressing(&d, &fewer_old));

        let mut st = DeploymentStatus::default();
        set_condition(
            &mut st,
            new_condition(
                DEPLOYMENT_PROGRESSING,
                "True",
                REPLICA_SET_UPDATED_REASON,
                "m",
                t(0),
            ),
        );
        assert!(
            !deployment_timed_out(&d, &st, t(10)),
            "deadline not passed yet"
        );
        assert!(deployment_timed_out(&d, &st, t(11)));
        let mut done = DeploymentStatus::default();
        set_condition(
            &mut done,
            new_condition(
                DEPLOYMENT_PROGRESSING,
                "True",
                NEW_RS_AVAILABLE_REASON,
                "m",
                t(0),
            ),
        );
        assert!(!deployment_timed_out(&d, &done, t(100)));
        d.spec.as_mut().unwrap().progress_deadline_seconds = Some(i32::MAX);
        assert!(!has_progress_deadline(&d));
        assert!(!deployment_timed_out(&d, &st, t(100)));
    }

    #[test]
    fn hash_is_stable_safe_and_sensitive() {
        assert_eq!(safe_encode_string("0123456789"), "456789bcdf");
        // FNV-1a reference values.
        assert_eq!(fnv32a(b"", FNV32_OFFSET), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a", FNV32_OFFSET), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar", FNV32_OFFSET), 0xbf9c_f968);
        let t = template("nginx:1");
        let h = compute_hash(&t, None);
        assert_eq!(h, compute_hash(&t.clone(), None));
        assert!(!h.is_empty() && h.len() <= 10);
        assert!(h.chars().all(|c| "456789bcdf".contains(c)), "{h}");
        assert_ne!(h, compute_hash(&template("nginx:2"), None));
        assert_ne!(h, compute_hash(&t, Some(0)));
        assert_ne!(compute_hash(&t, Some(0)), compute_hash(&t, Some(1)));
        // Key order and absent-vs-empty fields do not matter.
        let mut with_empty = t.clone();
        with_empty.metadata.as_mut().unwrap().annotations = Some(BTreeMap::new());
        assert_eq!(h, compute_hash(&with_empty, None));
    }

    #[test]
    fn templates_compare_without_hash_label() {
        let a = template("nginx:1");
        let mut b = a.clone();
        b.metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY.into(), "abc".into());
        assert!(equal_ignore_hash(&a, &b));
        assert!(!equal_ignore_hash(&a, &template("nginx:2")));
    }

    #[test]
    fn orderings_and_finding() {
        let mut v = vec![
            rs("b", 2, 5, &[(REVISION_ANNOTATION, "2")]),
            rs("a", 2, 5, &[(REVISION_ANNOTATION, "1")]),
            rs("c", 5, 1, &[(REVISION_ANNOTATION, "3")]),
            rs("d", 1, 0, &[]),
        ];
        sort_by_creation(&mut v);
        let names = |v: &[ReplicaSet]| {
            v.iter()
                .map(|r| r.metadata.name.clone().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&v), ["d", "c", "a", "b"]);
        sort_by_revision(&mut v);
        assert_eq!(names(&v), ["d", "a", "b", "c"]);
        sort_by_size_newer(&mut v);
        assert_eq!(names(&v), ["c", "b", "a", "d"]);
        sort_by_size_older(&mut v);
        assert_eq!(names(&v), ["c", "a", "b", "d"]);

        let d = deployment(3, pct("25%"), pct("25%"));
        let mut newer = rs("newer", 0, 9, &[]);
        newer.metadata.uid = Some("n2".into());
        let mut other = rs("other", 3, 1, &[]);
        other.spec.as_mut().unwrap().template = Some(template("nginx:0"));
        let older = rs("older", 0, 2, &[]);
        let all = vec![newer.clone(), other.clone(), older.clone()];
        assert_eq!(
            find_new_replica_set(&d, &all)
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("older")
        );
        let olds = find_old_replica_sets(&d, &all);
        assert_eq!(names(&olds), ["newer", "other"]);

        // One active: it. None active: the new one, else the newest old one.
        assert_eq!(
            find_active_or_latest(Some(&older), &olds)
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("other")
        );
        let idle = vec![rs("x", 0, 1, &[]), rs("y", 0, 2, &[])];
        assert_eq!(
            find_active_or_latest(None, &idle)
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("y")
        );
        assert_eq!(
            find_active_or_latest(Some(&older), &idle)
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("older")
        );
        let two = vec![rs("x", 1, 1, &[]), rs("y", 1, 2, &[])];
        assert!(find_active_or_latest(None, &two).is_none());
        assert!(find_active_or_latest(None, &[]).is_none());
    }

    #[test]
    fn saturation_and_proportions() {
        let mut d = deployment(15, IntOrString::Int(3), IntOrString::Int(2));
        let mut new = rs("n", 15, 1, &[(DESIRED_REPLICAS_ANNOTATION, "15")]);
        assert!(!is_saturated(&d, Some(&new)), "nothing available yet");
        new.status = Some(k8s_openapi::api::apps::v1::ReplicaSetStatus {
            replicas: 15,
            available_replicas: Some(15),
            ..Default::default()
        });
        assert!(is_saturated(&d, Some(&new)));
        assert!(!is_saturated(&d, None));

        // The documented example: 10 → 15 replicas with maxSurge 3 mid-rollout, old RS
        // at 8 and new at 5, both sized for 13: +3 to the old, +2 to the new.
        let old = rs("o", 8, 0, &[(MAX_REPLICAS_ANNOTATION, "13")]);
        let new = rs("n", 5, 1, &[(MAX_REPLICAS_ANNOTATION, "13")]);
        let p_old = replica_set_proportion(&old, &d, 5, 0);
        assert_eq!(p_old, 3);
        assert_eq!(replica_set_proportion(&new, &d, 5, p_old), 2);
        // Scaling down to zero: each takes all of its size off.
        d.spec.as_mut().unwrap().replicas = Some(0);
        assert_eq!(replica_set_proportion(&old, &d, -13, 0), -8);
        assert_eq!(replica_set_proportion(&new, &d, -13, -8), -5);
        // Nothing to distribute, or an empty set: no share.
        assert_eq!(replica_set_proportion(&old, &d, 0, 0), 0);
        assert_eq!(replica_set_proportion(&rs("z", 0, 0, &[]), &d, 5, 0), 0);
        // Rounding half away from zero: 1 * 3 / 2 = 1.5 → 2.
        let mut d3 = deployment(3, IntOrString::Int(0), IntOrString::Int(1));
        d3.status = Some(DeploymentStatus {
            replicas: Some(2),
            ..Default::default()
        });
        let one = rs("one", 1, 0, &[]);
        assert_eq!(replica_set_proportion(&one, &d3, 1, 0), 1);
        assert_eq!(replica_set_fraction(&one, &d3), 1);
        assert_eq!(
            (
                round_div(3, 2),
                round_div(-3, 2),
                round_div(7, 3),
                round_div(8, 3)
            ),
            (2, -2, 2, 3)
        );
    }
}
