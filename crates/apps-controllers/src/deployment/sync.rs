//! The parts of a Deployment sync shared by every path: finding (or creating) the new
//! ReplicaSet and keeping revisions in order, scaling ReplicaSets (with the
//! `ScalingReplicaSet` event), proportional scaling when `spec.replicas` changes
//! mid-rollout, the paused/resumed conditions, `revisionHistoryLimit` cleanup, and the
//! status computed from the ReplicaSets.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use kube::api::{Api, DeleteParams, PostParams};

use super::util::{
    self, actual_replica_count, available_replica_count, compute_hash, desired, equal_ignore_hash,
    find_active_or_latest, find_new_replica_set, find_old_replica_sets, get_condition,
    has_progress_deadline, is_active, is_paused, is_rolling_update, is_saturated, max_revision,
    max_surge, max_unavailable, min_ready_seconds, new_condition, new_rs_new_replicas,
    ready_replica_count, replica_count, replica_set_proportion, replicas_annotations_need_update,
    rollback_to, rs_replicas, rs_status_replicas, set_condition, set_deployment_revision,
    set_new_replica_set_annotations, set_replicas_annotations, set_rs_replicas, sort_by_revision,
    sort_by_size_newer, sort_by_size_older, DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY,
    DEPLOYMENT_AVAILABLE, DEPLOYMENT_PROGRESSING, FAILED_RS_CREATE_REASON, FOUND_NEW_RS_REASON,
    MAX_REV_HISTORY_LENGTH_IN_CHARS, MINIMUM_REPLICAS_AVAILABLE, MINIMUM_REPLICAS_UNAVAILABLE,
    NEW_RS_NEW_REPLICAS_REASON, PAUSED_DEPLOY_REASON, RESUMED_DEPLOY_REASON, REVISION_ANNOTATION,
    TIMED_OUT_REASON,
};
use super::{name_of, Inner, SCALING_REPLICA_SET_REASON};
use controllers::error::ControllerError;
use controllers::events::EventType;
use controllers::podcontrol::NAMESPACE_TERMINATING_CAUSE;
use controllers::util::{controller_ref, new_controller_ref};

/// The old ReplicaSets followed by the new one (when there is one).
pub(super) fn all_of(old: &[ReplicaSet], new: Option<&ReplicaSet>) -> Vec<ReplicaSet> {
    old.iter().chain(new).cloned().collect()
}

/// Replaces the entry of `rs_list` with `rs`'s UID by `rs`, or adds it.
pub(super) fn upsert(rs_list: &mut Vec<ReplicaSet>, rs: &ReplicaSet) {
    match rs_list
        .iter_mut()
        .find(|r| r.metadata.uid.is_some() && r.metadata.uid == rs.metadata.uid)
    {
        Some(slot) => *slot = rs.clone(),
        None => rs_list.push(rs.clone()),
    }
}

fn non_zero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

/// A status with zero counts and empty lists as absent, as the API returns it.
pub(super) fn normalized(s: &DeploymentStatus) -> DeploymentStatus {
    let z = |v: Option<i32>| v.filter(|n| *n != 0);
    DeploymentStatus {
        available_replicas: z(s.available_replicas),
        collision_count: s.collision_count,
        conditions: s.conditions.clone().filter(|c| !c.is_empty()),
        observed_generation: s.observed_generation.filter(|g| *g != 0),
        ready_replicas: z(s.ready_replicas),
        replicas: z(s.replicas),
        unavailable_replicas: z(s.unavailable_replicas),
        updated_replicas: z(s.updated_replicas),
        ..s.clone()
    }
}

/// Whether two statuses are the same once normalized.
pub(super) fn same_status(a: Option<&DeploymentStatus>, b: &DeploymentStatus) -> bool {
    normalized(&a.cloned().unwrap_or_default()) == normalized(b)
}

/// The status of a Deployment from its ReplicaSets: counts summed over them (updated
/// replicas from the new one), and the Available condition (True when at least
/// `replicas - maxUnavailable` pods are available). Other conditions are kept.
pub fn calculate_status(
    all: &[ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    d: &Deployment,
    now: jiff::Timestamp,
) -> DeploymentStatus {
    let available = available_replica_count(all);
    let total = replica_count(all);
    let unavailable = total.saturating_sub(available).max(0);
    let current = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation.filter(|g| *g != 0),
        replicas: non_zero(actual_replica_count(all)),
        updated_replicas: non_zero(actual_replica_count(new_rs)),
        ready_replicas: non_zero(ready_replica_count(all)),
        available_replicas: non_zero(available),
        unavailable_replicas: non_zero(unavailable),
        collision_count: current.collision_count,
        conditions: current.conditions.clone().filter(|c| !c.is_empty()),
        ..Default::default()
    };
    if available >= desired(d).saturating_sub(max_unavailable(d)) {
        set_condition(
            &mut status,
            new_condition(
                DEPLOYMENT_AVAILABLE,
                "True",
                MINIMUM_REPLICAS_AVAILABLE,
                "Deployment has minimum availability.",
                now,
            ),
        );
    } else {
        set_condition(
            &mut status,
            new_condition(
                DEPLOYMENT_AVAILABLE,
                "False",
                MINIMUM_REPLICAS_UNAVAILABLE,
                "Deployment does not have minimum availability.",
                now,
            ),
        );
    }
    status
}

impl Inner {
    /// Only status: for a Deployment being deleted.
    pub(super) async fn sync_status_only(
        &self,
        d: &mut Deployment,
        rs_list: &mut Vec<ReplicaSet>,
    ) -> Result<(), ControllerError> {
        let (new_rs, old_rss) = self
            .get_all_replica_sets_and_sync_revision(d, rs_list, false)
            .await?;
        let all = all_of(&old_rss, new_rs.as_ref());
        self.sync_deployment_status(&all, new_rs.as_ref(), d).await
    }

    /// Scaling without rollout: for paused Deployments and changes of `spec.replicas`.
    pub(super) async fn sync(
        &self,
        d: &mut Deployment,
        rs_list: &mut Vec<ReplicaSet>,
    ) -> Result<(), ControllerError> {
        let (new_rs, old_rss) = self
            .get_all_replica_sets_and_sync_revision(d, rs_list, false)
            .await?;
        self.scale(d, new_rs.as_ref(), &old_rss).await?;
        // A paused Deployment with no rollback pending still honours its history limit.
        if is_paused(d) && rollback_to(d).is_none() {
            self.cleanup_deployment(&old_rss, d).await?;
        }
        let all = all_of(&old_rss, new_rs.as_ref());
        self.sync_deployment_status(&all, new_rs.as_ref(), d).await
    }

    /// Records a Progressing condition with reason DeploymentPaused or
    /// DeploymentResumed when the Deployment is paused or resumed (not over a timeout),
    /// so that a long pause does not count against the progress deadline.
    pub(super) async fn check_paused_conditions(
        &self,
        d: &mut Deployment,
    ) -> Result<(), ControllerError> {
        if !has_progress_deadline(d) {
            return Ok(());
        }
        let status = d.status.clone().unwrap_or_default();
        let cond = get_condition(&status, DEPLOYMENT_PROGRESSING);
        let reason = cond.and_then(|c| c.reason.as_deref());
        if reason == Some(TIMED_OUT_REASON) {
            return Ok(());
        }
        let paused_exists = reason == Some(PAUSED_DEPLOY_REASON);
        let paused = is_paused(d);
        let condition = if paused && !paused_exists {
            new_condition(
                DEPLOYMENT_PROGRESSING,
                "Unknown",
                PAUSED_DEPLOY_REASON,
                "Deployment is paused",
                util::now(),
            )
        } else if !paused && paused_exists {
            new_condition(
                DEPLOYMENT_PROGRESSING,
                "Unknown",
                RESUMED_DEPLOY_REASON,
                "Deployment is resumed",
                util::now(),
            )
        } else {
            return Ok(());
        };
        set_condition(d.status.get_or_insert_with(Default::default), condition);
        self.update_deployment_status(d).await
    }

    /// The new ReplicaSet (created when `create` and missing) and all old ones, with
    /// the new one's revision raised above the old ones' and copied to the Deployment.
    pub(super) async fn get_all_replica_sets_and_sync_revision(
        &self,
        d: &mut Deployment,
        rs_list: &mut Vec<ReplicaSet>,
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), ControllerError> {
        let old = find_old_replica_sets(d, rs_list);
        let new = self.get_new_replica_set(d, rs_list, &old, create).await?;
        Ok((new, old))
    }

    async fn get_new_replica_set(
        &self,
        d: &mut Deployment,
        rs_list: &mut Vec<ReplicaSet>,
        old_rss: &[ReplicaSet],
        create: bool,
    ) -> Result<Option<ReplicaSet>, ControllerError> {
        let existing = find_new_replica_set(d, rs_list);
        let new_revision = (max_revision(old_rss) + 1).to_string();
        let min_ready = min_ready_seconds(d);

        if let Some(existing) = existing {
            let mut copy = existing;
            let annotations_updated = set_new_replica_set_annotations(
                d,
                &mut copy,
                &new_revision,
                true,
                MAX_REV_HISTORY_LENGTH_IN_CHARS,
            );
            let spec = copy.spec.get_or_insert_with(Default::default);
            let min_ready_changed = spec.min_ready_seconds.unwrap_or(0) != min_ready;
            if annotations_updated || min_ready_changed {
                spec.min_ready_seconds = Some(min_ready);
                let updated = self.update_replica_set(&copy).await?;
                upsert(rs_list, &updated);
                return Ok(Some(updated));
            }
            let rev = copy
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION_ANNOTATION))
                .cloned()
                .unwrap_or_default();
            let mut needs_update = set_deployment_revision(d, &rev);
            let no_progressing = d
                .status
                .as_ref()
                .and_then(|s| get_condition(s, DEPLOYMENT_PROGRESSING))
                .is_none();
            if has_progress_deadline(d) && no_progressing {
                let name = copy.metadata.name.clone().unwrap_or_default();
                set_condition(
                    d.status.get_or_insert_with(Default::default),
                    new_condition(
                        DEPLOYMENT_PROGRESSING,
                        "True",
                        FOUND_NEW_RS_REASON,
                        format!("Found new replica set \"{name}\""),
                        util::now(),
                    ),
                );
                needs_update = true;
            }
            if needs_update {
                self.update_deployment_status(d).await?;
            }
            return Ok(Some(copy));
        }

        if !create {
            return Ok(None);
        }

        let (ns, d_name) = name_of(d);
        let template = util::deployment_template(d);
        let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&template, collision_count);
        let mut new_template = template;
        new_template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(
                DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY.to_string(),
                hash.clone(),
            );
        let mut selector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(
                DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY.to_string(),
                hash.clone(),
            );
        let rs_name = format!("{d_name}-{hash}");
        let mut new_rs = ReplicaSet {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(rs_name.clone()),
                namespace: Some(ns.clone()),
                owner_references: Some(vec![new_controller_ref(d)]),
                labels: new_template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.clone()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: (min_ready != 0).then_some(min_ready),
                selector,
                template: Some(new_template),
            }),
            status: None,
        };
        let count = {
            let all: Vec<&ReplicaSet> = old_rss.iter().chain([&new_rs]).collect();
            new_rs_new_replicas(d, &all, &new_rs).map_err(ControllerError::Other)?
        };
        set_rs_replicas(&mut new_rs, count);
        set_new_replica_set_annotations(
            d,
            &mut new_rs,
            &new_revision,
            false,
            MAX_REV_HISTORY_LENGTH_IN_CHARS,
        );

        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &ns);
        let mut already_exists = false;
        let created = match api.create(&PostParams::default(), &new_rs).await {
            Ok(rs) => rs,
            Err(e) => {
                let err = ControllerError::from(e);
                if err.is_already_exists() {
                    // A slow cache, or a hash collision with someone else's ReplicaSet.
                    let Some(found) = self.rss.get_namespaced(&ns, &rs_name) else {
                        return Err(ControllerError::Other(format!(
                            "replicaset.apps \"{rs_name}\" not found"
                        )));
                    };
                    let ours = controller_ref(&found.metadata)
                        .is_some_and(|r| Some(r.uid.as_str()) == d.metadata.uid.as_deref());
                    if ours
                        && equal_ignore_hash(
                            &util::deployment_template(d),
                            &util::rs_template(&found),
                        )
                    {
                        already_exists = true;
                        (*found).clone()
                    } else {
                        let status = d.status.get_or_insert_with(Default::default);
                        let before = status.collision_count.unwrap_or(0);
                        status.collision_count = Some(before.saturating_add(1));
                        if self.update_deployment_status(d).await.is_ok() {
                            tracing::info!(
                                deployment = %format!("{ns}/{d_name}"),
                                old_collision_count = before,
                                new_collision_count = before.saturating_add(1),
                                "found a hash collision for deployment - bumping collisionCount to resolve it"
                            );
                        }
                        return Err(err);
                    }
                } else if err.has_status_cause(NAMESPACE_TERMINATING_CAUSE) {
                    return Err(err);
                } else {
                    let msg = format!("Failed to create new replica set \"{rs_name}\": {err}");
                    if has_progress_deadline(d) {
                        set_condition(
                            d.status.get_or_insert_with(Default::default),
                            new_condition(
                                DEPLOYMENT_PROGRESSING,
                                "False",
                                FAILED_RS_CREATE_REASON,
                                msg.clone(),
                                util::now(),
                            ),
                        );
                        let _ = self.update_deployment_status(d).await;
                    }
                    self.recorder
                        .event(&*d, EventType::Warning, FAILED_RS_CREATE_REASON, msg);
                    return Err(err);
                }
            }
        };
        let created_name = created.metadata.name.clone().unwrap_or_default();
        if !already_exists && count > 0 {
            self.recorder.event(
                &*d,
                EventType::Normal,
                SCALING_REPLICA_SET_REASON,
                format!("Scaled up replica set {created_name} from 0 to {count}"),
            );
        }
        upsert(rs_list, &created);
        let mut needs_update = set_deployment_revision(d, &new_revision);
        if !already_exists && has_progress_deadline(d) {
            set_condition(
                d.status.get_or_insert_with(Default::default),
                new_condition(
                    DEPLOYMENT_PROGRESSING,
                    "True",
                    NEW_RS_NEW_REPLICAS_REASON,
                    format!("Created new replica set \"{created_name}\""),
                    util::now(),
                ),
            );
            needs_update = true;
        }
        if needs_update {
            self.update_deployment_status(d).await?;
        }
        Ok(Some(created))
    }

    /// Scales the ReplicaSets to the Deployment's size: all of it to the only active
    /// (or latest) ReplicaSet; old ones to zero once the new one is saturated;
    /// otherwise, for RollingUpdate, the difference to `replicas + maxSurge` shared in
    /// proportion to each ReplicaSet's size (largest first; leftovers to the first).
    pub(super) async fn scale(
        &self,
        d: &Deployment,
        new_rs: Option<&ReplicaSet>,
        old_rss: &[ReplicaSet],
    ) -> Result<(), ControllerError> {
        let replicas = desired(d);
        if let Some(target) = find_active_or_latest(new_rs, old_rss) {
            if rs_replicas(&target) == replicas {
                return Ok(());
            }
            self.scale_replica_set_and_record_event(&target, replicas, d)
                .await?;
            return Ok(());
        }

        if is_saturated(d, new_rs) {
            for old in old_rss.iter().filter(|rs| is_active(rs)) {
                self.scale_replica_set_and_record_event(old, 0, d).await?;
            }
            return Ok(());
        }

        if !is_rolling_update(d) {
            return Ok(());
        }
        let mut all: Vec<ReplicaSet> = old_rss
            .iter()
            .chain(new_rs)
            .filter(|rs| is_active(rs))
            .cloned()
            .collect();
        let all_replicas = replica_count(&all);
        let allowed = if replicas > 0 {
            replicas.saturating_add(max_surge(d))
        } else {
            0
        };
        let to_add = allowed.saturating_sub(all_replicas);
        match to_add.cmp(&0) {
            std::cmp::Ordering::Greater => sort_by_size_newer(&mut all),
            std::cmp::Ordering::Less => sort_by_size_older(&mut all),
            std::cmp::Ordering::Equal => {}
        }
        let mut added = 0;
        let mut sizes = Vec::with_capacity(all.len());
        for rs in &all {
            if to_add != 0 {
                let share = replica_set_proportion(rs, d, to_add, added);
                sizes.push(rs_replicas(rs).saturating_add(share));
                added += share;
            } else {
                sizes.push(rs_replicas(rs));
            }
        }
        for (i, rs) in all.iter().enumerate() {
            if i == 0 && to_add != 0 {
                let leftover = to_add - added;
                sizes[0] = sizes[0].saturating_add(leftover).max(0);
            }
            self.scale_replica_set(rs, sizes[i], d).await?;
        }
        Ok(())
    }

    /// Scales `rs` to `new_scale` if that changes its size. Returns whether it was
    /// scaled and the ReplicaSet as it is now.
    pub(super) async fn scale_replica_set_and_record_event(
        &self,
        rs: &ReplicaSet,
        new_scale: i32,
        d: &Deployment,
    ) -> Result<(bool, ReplicaSet), ControllerError> {
        if rs_replicas(rs) == new_scale {
            return Ok((false, rs.clone()));
        }
        self.scale_replica_set(rs, new_scale, d).await
    }

    /// Writes `new_scale` and the replicas annotations to `rs` when either changes,
    /// recording `Scaled up/down replica set <name> from <old> to <new>` when the size
    /// changed.
    pub(super) async fn scale_replica_set(
        &self,
        rs: &ReplicaSet,
        new_scale: i32,
        d: &Deployment,
    ) -> Result<(bool, ReplicaSet), ControllerError> {
        let replicas = desired(d);
        let max = replicas.saturating_add(max_surge(d));
        let size_changes = rs_replicas(rs) != new_scale;
        if !size_changes && !replicas_annotations_need_update(rs, replicas, max) {
            return Ok((false, rs.clone()));
        }
        let old_scale = rs_replicas(rs);
        let mut copy = rs.clone();
        set_rs_replicas(&mut copy, new_scale);
        set_replicas_annotations(&mut copy, replicas, max);
        let updated = self.update_replica_set(&copy).await?;
        if size_changes {
            let direction = if old_scale < new_scale { "up" } else { "down" };
            let name = updated.metadata.name.clone().unwrap_or_default();
            self.recorder.event(
                d,
                EventType::Normal,
                SCALING_REPLICA_SET_REASON,
                format!("Scaled {direction} replica set {name} from {old_scale} to {new_scale}"),
            );
        }
        Ok((size_changes, updated))
    }

    /// Deletes the oldest (by revision) old ReplicaSets beyond `revisionHistoryLimit`
    /// that have no replicas left and whose status is current.
    pub(super) async fn cleanup_deployment(
        &self,
        old_rss: &[ReplicaSet],
        d: &Deployment,
    ) -> Result<(), ControllerError> {
        let Some(limit) = util::revision_history_limit(d) else {
            return Ok(());
        };
        let mut cleanable: Vec<ReplicaSet> = old_rss
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .cloned()
            .collect();
        let diff = i64::try_from(cleanable.len()).unwrap_or(i64::MAX) - i64::from(limit);
        if diff <= 0 {
            return Ok(());
        }
        sort_by_revision(&mut cleanable);
        tracing::debug!(deployment = %super::object_key(d), "looking to clean up old replica sets");
        for rs in cleanable
            .iter()
            .take(usize::try_from(diff).unwrap_or(usize::MAX))
        {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if rs_status_replicas(rs) != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
                || rs.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            let ns = rs.metadata.namespace.clone().unwrap_or_default();
            let name = rs.metadata.name.clone().unwrap_or_default();
            tracing::debug!(replica_set = %format!("{ns}/{name}"), "cleaning up old replica set");
            let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &ns);
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) => {
                    let e = ControllerError::from(e);
                    if !e.is_not_found() {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes the status computed from the ReplicaSets when it changed.
    pub(super) async fn sync_deployment_status(
        &self,
        all: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
        d: &mut Deployment,
    ) -> Result<(), ControllerError> {
        let status = calculate_status(all, new_rs, d, util::now());
        if same_status(d.status.as_ref(), &status) {
            return Ok(());
        }
        d.status = Some(status);
        self.update_deployment_status(d).await
    }

    /// Whether `spec.replicas` differs from the size some active ReplicaSet was last
    /// sized for (its desired-replicas annotation): a scaling event, not a rollout.
    pub(super) async fn is_scaling_event(
        &self,
        d: &mut Deployment,
        rs_list: &mut Vec<ReplicaSet>,
    ) -> Result<bool, ControllerError> {
        let (new_rs, old_rss) = self
            .get_all_replica_sets_and_sync_revision(d, rs_list, false)
            .await?;
        let replicas = desired(d);
        Ok(old_rss
            .iter()
            .chain(new_rs.as_ref())
            .filter(|rs| is_active(rs))
            .filter_map(util::desired_replicas_annotation)
            .any(|annotated| annotated != replicas))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, ReplicaSetStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn rs(replicas: i32, status: (i32, i32, i32)) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta::default(),
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas: status.0,
                ready_replicas: Some(status.1),
                available_replicas: Some(status.2),
                ..Default::default()
            }),
        }
    }

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    /// Status, reason and message of the Available condition.
    fn available(st: &DeploymentStatus) -> (&str, &str, &str) {
        let c = get_condition(st, DEPLOYMENT_AVAILABLE).unwrap();
        (
            c.status.as_str(),
            c.reason.as_deref().unwrap(),
            c.message.as_deref().unwrap(),
        )
    }

    #[test]
    fn status_sums_replica_sets() {
        let d = Deployment {
            metadata: ObjectMeta {
                generation: Some(4),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(4),
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                collision_count: Some(2),
                ..Default::default()
            }),
        };
        let old = rs(2, (3, 3, 2));
        let new = rs(3, (2, 1, 1));
        let st = calculate_status(&[old, new.clone()], Some(&new), &d, ts(0));
        assert_eq!(st.observed_generation, Some(4));
        assert_eq!(st.replicas, Some(5));
        assert_eq!(st.updated_replicas, Some(2));
        assert_eq!(st.ready_replicas, Some(4));
        assert_eq!(st.available_replicas, Some(3));
        assert_eq!(st.unavailable_replicas, Some(2));
        assert_eq!(st.collision_count, Some(2));
        // 25% of 4 may be unavailable: 3 available is enough.
        assert_eq!(
            available(&st),
            (
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability."
            )
        );

        let none = calculate_status(&[rs(4, (4, 0, 0))], None, &d, ts(0));
        assert_eq!(none.updated_replicas, None, "zero counts are left out");
        assert_eq!(none.available_replicas, None);
        assert_eq!(none.unavailable_replicas, Some(4));
        assert_eq!(
            available(&none),
            (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability."
            )
        );
        // More available than desired: never negative unavailable.
        let over = calculate_status(&[rs(1, (3, 3, 3))], None, &d, ts(0));
        assert_eq!(over.unavailable_replicas, None);
    }

    #[test]
    fn normalized_statuses_compare_equal() {
        let a = DeploymentStatus {
            replicas: Some(0),
            conditions: Some(vec![]),
            ..Default::default()
        };
        assert!(same_status(Some(&a), &DeploymentStatus::default()));
        assert!(same_status(None, &DeploymentStatus::default()));
        let b = DeploymentStatus {
            replicas: Some(1),
            ..Default::default()
        };
        assert!(!same_status(Some(&a), &b));
    }

    #[test]
    fn upsert_replaces_by_uid() {
        let mut a = rs(1, (0, 0, 0));
        a.metadata.uid = Some("a".into());
        let mut list = vec![a.clone()];
        a.spec.as_mut().unwrap().replicas = Some(5);
        upsert(&mut list, &a);
        assert_eq!(list.len(), 1);
        assert_eq!(rs_replicas(&list[0]), 5);
        let mut b = rs(1, (0, 0, 0));
        b.metadata.uid = Some("b".into());
        upsert(&mut list, &b);
        assert_eq!(list.len(), 2);
    }
}
