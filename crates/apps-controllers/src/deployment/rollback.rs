//! Server-side rollback, requested through the `deprecated.deployment.rollback.to`
//! annotation (what the removed `spec.rollbackTo` of extensions/v1beta1 and
//! apps/v1beta1 round-trips to): copy the template of the ReplicaSet with that
//! revision (0: the previous one) into the Deployment, take that ReplicaSet's
//! annotations, and clear the request. The next sync then rolls out as for any
//! template change, reusing that ReplicaSet under a new revision.
//!
//! `kubectl rollout undo` does the template copy itself and never sets the annotation;
//! both paths end in the same reuse of the old ReplicaSet.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::util::{
    equal_ignore_hash, last_revision, revision, rollback_to, rs_template,
    set_deployment_annotations_to, DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY, DEPRECATED_ROLLBACK_TO,
    ROLLBACK_DONE, ROLLBACK_REVISION_NOT_FOUND, ROLLBACK_TEMPLATE_UNCHANGED,
};
use super::Inner;
use controllers::error::ControllerError;
use controllers::events::EventType;

/// Puts `rs`'s pod template into the Deployment, without the hash label.
pub fn set_from_replica_set_template(d: &mut Deployment, rs: &ReplicaSet) {
    let mut template = rs_template(rs);
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY);
    }
    d.spec.get_or_insert_with(Default::default).template = template;
}

impl Inner {
    /// Rolls the Deployment back to the requested revision, or gives up with a warning
    /// event; either way the request is cleared.
    pub(super) async fn rollback(
        &self,
        d: &mut Deployment,
        rs_list: &mut Vec<ReplicaSet>,
    ) -> Result<(), ControllerError> {
        let (new_rs, old_rss) = self
            .get_all_replica_sets_and_sync_revision(d, rs_list, true)
            .await?;
        let all: Vec<ReplicaSet> = old_rss.into_iter().chain(new_rs).collect();
        let mut to = rollback_to(d).unwrap_or(0);
        if to == 0 {
            to = last_revision(&all);
            if to == 0 {
                self.rollback_warning(
                    d,
                    ROLLBACK_REVISION_NOT_FOUND,
                    "Unable to find last revision.",
                );
                return self.update_deployment_and_clear_rollback_to(d).await;
            }
        }
        for rs in &all {
            let Ok(v) = revision(rs) else {
                continue;
            };
            if v != to {
                continue;
            }
            let performed = self.rollback_to_template(d, rs).await?;
            if performed {
                let name = d.metadata.name.clone().unwrap_or_default();
                self.recorder.event(
                    &*d,
                    EventType::Normal,
                    ROLLBACK_DONE,
                    format!("Rolled back deployment \"{name}\" to revision {to}"),
                );
            }
            return Ok(());
        }
        self.rollback_warning(
            d,
            ROLLBACK_REVISION_NOT_FOUND,
            "Unable to find the revision to rollback to.",
        );
        self.update_deployment_and_clear_rollback_to(d).await
    }

    /// Copies `rs`'s template and annotations into the Deployment unless the template
    /// is already the same; clears the request. Whether a rollback happened.
    async fn rollback_to_template(
        &self,
        d: &mut Deployment,
        rs: &ReplicaSet,
    ) -> Result<bool, ControllerError> {
        let current = super::util::deployment_template(d);
        let performed = if equal_ignore_hash(&current, &rs_template(rs)) {
            let name = d.metadata.name.clone().unwrap_or_default();
            self.rollback_warning(
                d,
                ROLLBACK_TEMPLATE_UNCHANGED,
                &format!("The rollback revision contains the same template as current deployment \"{name}\""),
            );
            false
        } else {
            set_from_replica_set_template(d, rs);
            // The Deployment takes the annotations of the revision it goes back to, so
            // that they are not copied onto that ReplicaSet over its own.
            set_deployment_annotations_to(d, rs);
            true
        };
        self.update_deployment_and_clear_rollback_to(d).await?;
        Ok(performed)
    }

    fn rollback_warning(&self, d: &Deployment, reason: &str, message: &str) {
        self.recorder
            .event(d, EventType::Warning, reason, message.to_string());
    }

    async fn update_deployment_and_clear_rollback_to(
        &self,
        d: &mut Deployment,
    ) -> Result<(), ControllerError> {
        if let Some(a) = d.metadata.annotations.as_mut() {
            a.remove(DEPRECATED_ROLLBACK_TO);
        }
        self.update_deployment(d).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn template_copied_without_hash_label() {
        let rs = ReplicaSet {
            spec: Some(ReplicaSetSpec {
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(
                            [("app", "web"), ("pod-template-hash", "abc")]
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_string()))
                                .collect(),
                        ),
                        ..Default::default()
                    }),
                    spec: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut d = Deployment::default();
        set_from_replica_set_template(&mut d, &rs);
        let labels = d.spec.unwrap().template.metadata.unwrap().labels.unwrap();
        assert_eq!(labels.len(), 1);
        assert_eq!(labels["app"], "web");
    }
}
