//! The RollingUpdate strategy: grow the new ReplicaSet while the total stays within
//! `replicas + maxSurge`, and shrink the old ones while at least
//! `replicas - maxUnavailable` pods stay available (unavailable old pods go first).
//! One step per sync; ReplicaSet and pod changes bring the next one.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::sync::all_of;
use super::util::{
    available_replica_count, deployment_complete, desired, is_active, max_unavailable,
    new_rs_new_replicas, replica_count, rs_available, rs_replicas, sort_by_creation,
};
use super::Inner;
use controllers::error::ControllerError;

/// How far the old ReplicaSets may shrink this step, given the availability floor
/// `replicas - maxUnavailable` and the new ReplicaSet's unavailable pods.
pub fn max_scaled_down(all: &[ReplicaSet], new_rs: &ReplicaSet, d: &Deployment) -> i32 {
    let min_available = desired(d) - max_unavailable(d);
    let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
    replica_count(all) - min_available - new_unavailable
}

impl Inner {
    /// One step of a rolling update.
    pub(super) async fn rollout_rolling(
        &self,
        d: &mut Deployment,
        rs_list: &mut Vec<ReplicaSet>,
    ) -> Result<(), ControllerError> {
        let (new_rs, old_rss) = self
            .get_all_replica_sets_and_sync_revision(d, rs_list, true)
            .await?;
        let Some(new_rs) = new_rs else {
            return Err(ControllerError::Other(
                "no new replica set for a rolling update".to_string(),
            ));
        };
        let all = all_of(&old_rss, Some(&new_rs));

        if self.reconcile_new_replica_set(&all, &new_rs, d).await? {
            return self.sync_rollout_status(&all, Some(&new_rs), d).await;
        }

        let active_old: Vec<ReplicaSet> =
            old_rss.iter().filter(|rs| is_active(rs)).cloned().collect();
        if self
            .reconcile_old_replica_sets(&all, active_old, &new_rs, d)
            .await?
        {
            return self.sync_rollout_status(&all, Some(&new_rs), d).await;
        }

        let status = d.status.clone().unwrap_or_default();
        if deployment_complete(d, &status) {
            self.cleanup_deployment(&old_rss, d).await?;
        }
        self.sync_rollout_status(&all, Some(&new_rs), d).await
    }

    /// Sizes the new ReplicaSet: down to `replicas` if above, else up as far as the
    /// surge allows. Whether it was scaled.
    async fn reconcile_new_replica_set(
        &self,
        all: &[ReplicaSet],
        new_rs: &ReplicaSet,
        d: &Deployment,
    ) -> Result<bool, ControllerError> {
        let replicas = desired(d);
        let current = rs_replicas(new_rs);
        if current == replicas {
            return Ok(false);
        }
        if current > replicas {
            let (scaled, _) = self
                .scale_replica_set_and_record_event(new_rs, replicas, d)
                .await?;
            return Ok(scaled);
        }
        let refs: Vec<&ReplicaSet> = all.iter().collect();
        let count = new_rs_new_replicas(d, &refs, new_rs).map_err(ControllerError::Other)?;
        let (scaled, _) = self
            .scale_replica_set_and_record_event(new_rs, count, d)
            .await?;
        Ok(scaled)
    }

    /// Shrinks the old ReplicaSets as far as availability allows: their unavailable
    /// pods first, then available ones down to the floor. Whether anything shrank.
    async fn reconcile_old_replica_sets(
        &self,
        all: &[ReplicaSet],
        old_rss: Vec<ReplicaSet>,
        new_rs: &ReplicaSet,
        d: &Deployment,
    ) -> Result<bool, ControllerError> {
        if replica_count(&old_rss) == 0 {
            return Ok(false);
        }
        let max_down = max_scaled_down(all, new_rs, d);
        if max_down <= 0 {
            return Ok(false);
        }
        // Failures here end the step without an error, as upstream: the next sync
        // retries with fresh caches.
        let Ok((old_rss, cleaned)) = self.cleanup_unhealthy_replicas(old_rss, d, max_down).await
        else {
            return Ok(false);
        };
        tracing::debug!(deployment = %super::object_key(d), count = cleaned, "cleaned up unhealthy replicas from old replica sets");
        let all: Vec<ReplicaSet> = old_rss.iter().chain([new_rs]).cloned().collect();
        let Ok(scaled) = self
            .scale_down_old_replica_sets_for_rolling_update(&all, old_rss, d)
            .await
        else {
            return Ok(false);
        };
        tracing::debug!(deployment = %super::object_key(d), count = scaled, "scaled down old replica sets");
        Ok(cleaned + scaled > 0)
    }

    /// Takes unavailable replicas off the old ReplicaSets (oldest first), at most
    /// `max_cleanup` in all. Returns the ReplicaSets as they are now and the count.
    async fn cleanup_unhealthy_replicas(
        &self,
        mut old_rss: Vec<ReplicaSet>,
        d: &Deployment,
        max_cleanup: i32,
    ) -> Result<(Vec<ReplicaSet>, i32), ControllerError> {
        sort_by_creation(&mut old_rss);
        let mut total = 0;
        for rs in old_rss.iter_mut() {
            if total >= max_cleanup {
                break;
            }
            let size = rs_replicas(rs);
            if size == 0 || size == rs_available(rs) {
                continue;
            }
            let down = (max_cleanup - total).min(size - rs_available(rs));
            let target = size - down;
            if target > size {
                return Err(ControllerError::Other(format!(
                    "when cleaning up unhealthy replicas, got invalid request to scale down {}/{} {size} -> {target}",
                    rs.metadata.namespace.as_deref().unwrap_or(""),
                    rs.metadata.name.as_deref().unwrap_or("")
                )));
            }
            let (_, updated) = self
                .scale_replica_set_and_record_event(rs, target, d)
                .await?;
            total += down;
            *rs = updated;
        }
        Ok((old_rss, total))
    }

    /// Shrinks the old ReplicaSets (oldest first) by as many available pods as exceed
    /// `replicas - maxUnavailable`. Returns how many replicas were taken off.
    async fn scale_down_old_replica_sets_for_rolling_update(
        &self,
        all: &[ReplicaSet],
        mut old_rss: Vec<ReplicaSet>,
        d: &Deployment,
    ) -> Result<i32, ControllerError> {
        let min_available = desired(d) - max_unavailable(d);
        let available = available_replica_count(all);
        if available <= min_available {
            return Ok(0);
        }
        sort_by_creation(&mut old_rss);
        let wanted = available - min_available;
        let mut total = 0;
        for rs in &old_rss {
            if total >= wanted {
                break;
            }
            let size = rs_replicas(rs);
            if size == 0 {
                continue;
            }
            let down = size.min(wanted - total);
            let target = size - down;
            if target > size {
                return Err(ControllerError::Other(format!(
                    "when scaling down old RS, got invalid request to scale down {}/{} {size} -> {target}",
                    rs.metadata.namespace.as_deref().unwrap_or(""),
                    rs.metadata.name.as_deref().unwrap_or("")
                )));
            }
            self.scale_replica_set_and_record_event(rs, target, d)
                .await?;
            total += down;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus,
        RollingUpdateDeployment,
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn rs(replicas: i32, available: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: Default::default(),
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas,
                available_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn scale_down_room_respects_availability() {
        let d = Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(10),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(IntOrString::Int(3)),
                        max_unavailable: Some(IntOrString::Int(2)),
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        // 10 old + 3 new (none available): 2 old may go.
        let (old, new) = (rs(10, 10), rs(3, 0));
        assert_eq!(max_scaled_down(&[old, new.clone()], &new, &d), 2);
        // 8 old + 5 new (none available): stuck.
        let (old, new) = (rs(8, 8), rs(5, 0));
        assert_eq!(max_scaled_down(&[old, new.clone()], &new, &d), 0);
        // New pods available: room again.
        let (old, new) = (rs(8, 8), rs(5, 5));
        assert_eq!(max_scaled_down(&[old, new.clone()], &new, &d), 5);
    }
}
