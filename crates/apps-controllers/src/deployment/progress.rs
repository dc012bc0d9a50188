//! Rollout status: the Progressing condition (NewReplicaSetAvailable when the rollout
//! is complete, ReplicaSetUpdated while it makes progress, ProgressDeadlineExceeded
//! after `progressDeadlineSeconds` without progress), ReplicaSet failures mirrored as
//! the ReplicaFailure condition, and the re-queue that checks the deadline in time.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};

use super::sync::{calculate_status, same_status};
use super::util::{
    self, deployment_complete, deployment_progressing, deployment_timed_out, get_condition,
    has_progress_deadline, new_condition, progress_deadline_seconds, remove_condition,
    rs_condition_to_deployment_condition, set_condition, DEPLOYMENT_PROGRESSING,
    DEPLOYMENT_REPLICA_FAILURE, NEW_RS_AVAILABLE_REASON, REPLICA_SET_REPLICA_FAILURE,
    REPLICA_SET_UPDATED_REASON, TIMED_OUT_REASON,
};
use super::Inner;
use controllers::error::ControllerError;

/// The ReplicaFailure conditions of the new ReplicaSet, or else of any ReplicaSet.
pub(super) fn replica_failures(
    all: &[ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> Vec<DeploymentCondition> {
    let failures = |rs: &ReplicaSet| -> Vec<DeploymentCondition> {
        rs.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.type_ == REPLICA_SET_REPLICA_FAILURE)
            .map(rs_condition_to_deployment_condition)
            .collect()
    };
    let from_new: Vec<DeploymentCondition> = new_rs.map(failures).unwrap_or_default();
    if !from_new.is_empty() {
        return from_new;
    }
    all.iter().flat_map(failures).collect()
}

/// The status of a rolling-out Deployment: [`calculate_status`] plus the Progressing
/// condition (when a deadline is set) and ReplicaFailure.
pub fn rollout_status(
    all: &[ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    d: &Deployment,
    now: jiff::Timestamp,
) -> DeploymentStatus {
    let mut status = calculate_status(all, new_rs, d, now);
    if !has_progress_deadline(d) {
        remove_condition(&mut status, DEPLOYMENT_PROGRESSING);
    }
    let current = d.status.clone().unwrap_or_default();
    let current_cond = get_condition(&current, DEPLOYMENT_PROGRESSING);
    let is_complete = status.replicas == status.updated_replicas
        && current_cond.and_then(|c| c.reason.as_deref()) == Some(NEW_RS_AVAILABLE_REASON);
    let name = d.metadata.name.clone().unwrap_or_default();
    let subject = match new_rs.and_then(|rs| rs.metadata.name.as_deref()) {
        Some(rs_name) => format!("ReplicaSet \"{rs_name}\""),
        None => format!("Deployment \"{name}\""),
    };
    if has_progress_deadline(d) && !is_complete {
        if deployment_complete(d, &status) {
            set_condition(
                &mut status,
                new_condition(
                    DEPLOYMENT_PROGRESSING,
                    "True",
                    NEW_RS_AVAILABLE_REASON,
                    format!("{subject} has successfully progressed."),
                    now,
                ),
            );
        } else if deployment_progressing(d, &status) {
            let mut cond = new_condition(
                DEPLOYMENT_PROGRESSING,
                "True",
                REPLICA_SET_UPDATED_REASON,
                format!("{subject} is progressing."),
                now,
            );
            // Progress refreshes the update time even when the reason stays the same.
            if let Some(c) = current_cond {
                if c.status == "True" {
                    cond.last_transition_time = c.last_transition_time.clone();
                }
                remove_condition(&mut status, DEPLOYMENT_PROGRESSING);
            }
            set_condition(&mut status, cond);
        } else if deployment_timed_out(d, &status, now) {
            set_condition(
                &mut status,
                new_condition(
                    DEPLOYMENT_PROGRESSING,
                    "False",
                    TIMED_OUT_REASON,
                    format!("{subject} has timed out progressing."),
                    now,
                ),
            );
        }
    }
    match replica_failures(all, new_rs).into_iter().next() {
        Some(failure) => set_condition(&mut status, failure),
        None => remove_condition(&mut status, DEPLOYMENT_REPLICA_FAILURE),
    }
    status
}

/// When the Deployment must be looked at again for its deadline: `None` when not
/// needed (no deadline, no Progressing condition, complete, or already timed out),
/// else the time left until the deadline passes.
pub fn stuck_requeue_after(
    d: &Deployment,
    new_status: &DeploymentStatus,
    now: jiff::Timestamp,
) -> Option<jiff::SignedDuration> {
    let deadline = progress_deadline_seconds(d)?;
    let current = d.status.clone().unwrap_or_default();
    let cond = get_condition(&current, DEPLOYMENT_PROGRESSING)?;
    if deployment_complete(d, new_status) || cond.reason.as_deref() == Some(TIMED_OUT_REASON) {
        return None;
    }
    let last = cond.last_update_time.as_ref()?.0;
    Some((last + jiff::SignedDuration::from_secs(i64::from(deadline))).duration_since(now))
}

impl Inner {
    /// Writes the rollout status when it changed; otherwise re-queues the Deployment
    /// for its progress check if it may get stuck.
    pub(super) async fn sync_rollout_status(
        &self,
        all: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
        d: &mut Deployment,
    ) -> Result<(), ControllerError> {
        let status = rollout_status(all, new_rs, d, util::now());
        if same_status(d.status.as_ref(), &status) {
            self.requeue_stuck_deployment(d, &status);
            return Ok(());
        }
        d.status = Some(status);
        self.update_deployment_status(d).await
    }

    fn requeue_stuck_deployment(&self, d: &Deployment, status: &DeploymentStatus) {
        let Some(after) = stuck_requeue_after(d, status, jiff::Timestamp::now()) else {
            return;
        };
        if after < jiff::SignedDuration::from_secs(1) {
            tracing::debug!(deployment = %super::object_key(d), "queueing up deployment for a progress check now");
            self.enqueue_rate_limited(d);
            return;
        }
        let delay = Duration::try_from(after).unwrap_or(Duration::ZERO) + Duration::from_secs(1);
        tracing::debug!(deployment = %super::object_key(d), after = ?delay, "queueing up deployment for a progress check");
        self.enqueue_after(d, delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, ReplicaSetCondition, ReplicaSetSpec, ReplicaSetStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn deployment(replicas: i32, status: DeploymentStatus) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                generation: Some(2),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                progress_deadline_seconds: Some(60),
                ..Default::default()
            }),
            status: Some(status),
        }
    }

    fn rs(name: &str, replicas: i32, actual: i32, available: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas: actual,
                ready_replicas: Some(available),
                available_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    fn progressing(st: &DeploymentStatus) -> DeploymentCondition {
        get_condition(st, DEPLOYMENT_PROGRESSING).unwrap().clone()
    }

    /// A status whose Progressing condition says ReplicaSetUpdated since `ts(0)`.
    fn updating_since_0(replicas: Option<i32>, updated: Option<i32>) -> DeploymentStatus {
        let mut st = DeploymentStatus {
            replicas,
            updated_replicas: updated,
            ..Default::default()
        };
        set_condition(
            &mut st,
            new_condition(
                DEPLOYMENT_PROGRESSING,
                "True",
                REPLICA_SET_UPDATED_REASON,
                "x",
                ts(0),
            ),
        );
        st
    }

    #[test]
    fn complete_rollout_reports_new_replica_set_available() {
        let before = updating_since_0(None, None);
        let d = deployment(2, before);
        let new = rs("web-abc", 2, 2, 2);
        let st = rollout_status(std::slice::from_ref(&new), Some(&new), &d, ts(5));
        let c = progressing(&st);
        assert_eq!(c.status, "True");
        assert_eq!(c.reason.as_deref(), Some("NewReplicaSetAvailable"));
        assert_eq!(
            c.message.as_deref(),
            Some("ReplicaSet \"web-abc\" has successfully progressed.")
        );
        assert_eq!(
            c.last_transition_time,
            Some(Time(ts(0))),
            "status unchanged"
        );
        assert_eq!(stuck_requeue_after(&d, &st, ts(5)), None);
    }

    #[test]
    fn progress_refreshes_update_time_and_keeps_transition_time() {
        let before = updating_since_0(Some(3), Some(1));
        let d = deployment(3, before);
        let old = rs("web-old", 1, 1, 1);
        let new = rs("web-new", 2, 2, 0);
        let st = rollout_status(&[old, new.clone()], Some(&new), &d, ts(30));
        let c = progressing(&st);
        assert_eq!(c.reason.as_deref(), Some("ReplicaSetUpdated"));
        assert_eq!(
            c.message.as_deref(),
            Some("ReplicaSet \"web-new\" is progressing.")
        );
        assert_eq!(c.last_update_time, Some(Time(ts(30))));
        assert_eq!(c.last_transition_time, Some(Time(ts(0))));
    }

    #[test]
    fn no_progress_past_the_deadline_times_out() {
        let before = updating_since_0(Some(3), Some(3));
        let d = deployment(3, before);
        let new = rs("web-new", 3, 3, 0);
        let early = rollout_status(std::slice::from_ref(&new), Some(&new), &d, ts(60));
        assert_eq!(
            progressing(&early).reason.as_deref(),
            Some("ReplicaSetUpdated")
        );
        assert_eq!(
            stuck_requeue_after(&d, &early, ts(20)),
            Some(jiff::SignedDuration::from_secs(40))
        );
        let late = rollout_status(std::slice::from_ref(&new), Some(&new), &d, ts(61));
        let c = progressing(&late);
        assert_eq!(c.status, "False");
        assert_eq!(c.reason.as_deref(), Some("ProgressDeadlineExceeded"));
        assert_eq!(
            c.message.as_deref(),
            Some("ReplicaSet \"web-new\" has timed out progressing.")
        );
        // Without a new ReplicaSet the Deployment is named.
        let none = rollout_status(&[new], None, &d, ts(61));
        assert_eq!(
            progressing(&none).message.as_deref(),
            Some("Deployment \"web\" has timed out progressing.")
        );
    }

    #[test]
    fn replica_failures_prefer_the_new_replica_set() {
        let failing = |name: &str, msg: &str| {
            let mut r = rs(name, 1, 0, 0);
            r.status.as_mut().unwrap().conditions = Some(vec![ReplicaSetCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some("FailedCreate".into()),
                message: Some(msg.into()),
                last_transition_time: Some(Time(ts(3))),
            }]);
            r
        };
        let old = failing("old", "old failure");
        let new = failing("new", "new failure");
        let f = replica_failures(&[old.clone(), new.clone()], Some(&new));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].message.as_deref(), Some("new failure"));
        assert_eq!(f[0].last_update_time, Some(Time(ts(3))));
        let f = replica_failures(std::slice::from_ref(&old), Some(&rs("ok", 1, 1, 1)));
        assert_eq!(f[0].message.as_deref(), Some("old failure"));
        let d = deployment(1, DeploymentStatus::default());
        let st = rollout_status(&[old], None, &d, ts(5));
        assert_eq!(
            get_condition(&st, DEPLOYMENT_REPLICA_FAILURE)
                .unwrap()
                .reason
                .as_deref(),
            Some("FailedCreate")
        );
    }

    #[test]
    fn no_deadline_no_progressing_condition() {
        let before = updating_since_0(None, None);
        let mut d = deployment(1, before);
        d.spec.as_mut().unwrap().progress_deadline_seconds = None;
        let new = rs("n", 1, 1, 0);
        let st = rollout_status(std::slice::from_ref(&new), Some(&new), &d, ts(5));
        assert!(get_condition(&st, DEPLOYMENT_PROGRESSING).is_none());
        assert_eq!(stuck_requeue_after(&d, &st, ts(5)), None);
    }
}
