//! The Recreate strategy: scale every old ReplicaSet to zero, wait until none of their
//! pods is left running (terminating pods included), and only then create and scale
//! up the new ReplicaSet, so old and new pods never run together.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;

use super::sync::all_of;
use super::util::{actual_replica_count, deployment_complete, desired, is_active, rs_replicas};
use super::Inner;
use controllers::error::ControllerError;

/// Whether old pods may still run: an old ReplicaSet reports replicas, or a pod of a
/// ReplicaSet other than the new one is not finished (Succeeded or Failed).
pub fn old_pods_running(
    new_rs: Option<&ReplicaSet>,
    old_rss: &[ReplicaSet],
    pods: &HashMap<String, Vec<Arc<Pod>>>,
) -> bool {
    if actual_replica_count(old_rss) > 0 {
        return true;
    }
    let new_uid = new_rs.and_then(|rs| rs.metadata.uid.as_deref());
    pods.iter()
        .filter(|(uid, _)| Some(uid.as_str()) != new_uid)
        .flat_map(|(_, list)| list)
        .any(|pod| {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded") | Some("Failed"))
        })
}

impl Inner {
    /// One step of a Recreate rollout.
    pub(super) async fn rollout_recreate(
        &self,
        d: &mut Deployment,
        rs_list: &mut Vec<ReplicaSet>,
        pods: &HashMap<String, Vec<Arc<Pod>>>,
    ) -> Result<(), ControllerError> {
        // The new ReplicaSet is not created yet: nothing scales up before old pods go.
        let (mut new_rs, mut old_rss) = self
            .get_all_replica_sets_and_sync_revision(d, rs_list, false)
            .await?;
        let mut all = all_of(&old_rss, new_rs.as_ref());

        let mut scaled_down = false;
        for rs in old_rss.iter().filter(|rs| is_active(rs)) {
            if rs_replicas(rs) == 0 {
                continue;
            }
            let (scaled, _) = self.scale_replica_set_and_record_event(rs, 0, d).await?;
            scaled_down |= scaled;
        }
        if scaled_down {
            return self.sync_rollout_status(&all, new_rs.as_ref(), d).await;
        }

        if old_pods_running(new_rs.as_ref(), &old_rss, pods) {
            return self.sync_rollout_status(&all, new_rs.as_ref(), d).await;
        }

        if new_rs.is_none() {
            (new_rs, old_rss) = self
                .get_all_replica_sets_and_sync_revision(d, rs_list, true)
                .await?;
            all = all_of(&old_rss, new_rs.as_ref());
        }

        if let Some(rs) = &new_rs {
            self.scale_replica_set_and_record_event(rs, desired(d), d)
                .await?;
        }

        let status = d.status.clone().unwrap_or_default();
        if deployment_complete(d, &status) {
            self.cleanup_deployment(&old_rss, d).await?;
        }
        self.sync_rollout_status(&all, new_rs.as_ref(), d).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{ReplicaSetSpec, ReplicaSetStatus};
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn rs(uid: &str, actual: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                uid: Some(uid.into()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas: actual,
                ..Default::default()
            }),
        }
    }

    fn pod(phase: &str) -> Arc<Pod> {
        Arc::new(Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[test]
    fn old_pods() {
        let new = rs("new", 0);
        let old = rs("old", 0);
        let mut pods: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        pods.insert("new".into(), vec![pod("Running")]);
        pods.insert("old".into(), vec![pod("Succeeded"), pod("Failed")]);
        assert!(!old_pods_running(
            Some(&new),
            std::slice::from_ref(&old),
            &pods
        ));
        assert!(
            old_pods_running(Some(&new), &[rs("old", 1)], &pods),
            "status says so"
        );
        pods.get_mut("old").unwrap().push(pod("Pending"));
        assert!(old_pods_running(
            Some(&new),
            std::slice::from_ref(&old),
            &pods
        ));
        pods.insert("old".into(), vec![pod("Unknown")]);
        assert!(old_pods_running(
            Some(&new),
            std::slice::from_ref(&old),
            &pods
        ));
        // Without a new ReplicaSet every listed pod counts.
        let mut only_new = HashMap::new();
        only_new.insert("new".to_string(), vec![pod("Running")]);
        assert!(old_pods_running(None, &[old], &only_new));
    }
}
