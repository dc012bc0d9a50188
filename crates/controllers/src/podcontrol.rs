//! Creating, deleting and patching pods on behalf of a controller, with the events
//! upstream records: `SuccessfulCreate` (`Created pod: <name>`), `FailedCreate`
//! (`Error creating: <error>`), `SuccessfulDelete` (`Deleted pod: <name>`),
//! `FailedDelete` (`Error deleting: <error>`).

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};

use crate::error::ControllerError;
use crate::events::{EventRecorder, EventType};

/// Event reason: a pod could not be created.
pub const FAILED_CREATE_POD_REASON: &str = "FailedCreate";
/// Event reason: a pod was created.
pub const SUCCESSFUL_CREATE_POD_REASON: &str = "SuccessfulCreate";
/// Event reason: a pod could not be deleted.
pub const FAILED_DELETE_POD_REASON: &str = "FailedDelete";
/// Event reason: a pod was deleted.
pub const SUCCESSFUL_DELETE_POD_REASON: &str = "SuccessfulDelete";
/// Status cause of writes refused because the namespace is being deleted.
pub const NAMESPACE_TERMINATING_CAUSE: &str = "NamespaceTerminating";

/// Longest valid object name (a DNS subdomain).
const MAX_NAME_LENGTH: usize = 253;

/// The generateName prefix of pods created for `controller_name`: `<name>-`, or the
/// bare name when the dash would make it too long.
pub fn pods_prefix(controller_name: &str) -> String {
    if controller_name.len() < MAX_NAME_LENGTH {
        format!("{controller_name}-")
    } else {
        controller_name.to_string()
    }
}

/// The pod a controller creates from its template: labels, annotations and finalizers
/// of the template, its spec, generateName `<owner>-`, and the controller reference.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    owner_name: &str,
    controller_ref: Option<OwnerReference>,
) -> Pod {
    let tmeta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(pods_prefix(owner_name)),
            // Empty maps and lists are left out, as upstream's JSON does.
            labels: tmeta.labels.filter(|m| !m.is_empty()),
            annotations: tmeta.annotations.filter(|m| !m.is_empty()),
            finalizers: tmeta.finalizers.filter(|f| !f.is_empty()),
            owner_references: controller_ref.map(|r| vec![r]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Pod operations of one controller.
#[derive(Clone)]
pub struct PodControl {
    client: Client,
    recorder: EventRecorder,
}

impl PodControl {
    /// Pod operations through `client`, recording events with `recorder`.
    pub fn new(client: Client, recorder: EventRecorder) -> Self {
        PodControl { client, recorder }
    }

    /// Creates one pod from `template` in `namespace`, owned by `owner`.
    pub async fn create_pod<O: Resource<DynamicType = ()>>(
        &self,
        namespace: &str,
        template: &PodTemplateSpec,
        owner: &O,
        controller_ref: OwnerReference,
    ) -> Result<Pod, ControllerError> {
        let owner_name = owner.meta().name.as_deref().unwrap_or("");
        let pod = pod_from_template(template, owner_name, Some(controller_ref));
        if pod.metadata.labels.is_none() {
            return Err(ControllerError::Other(
                "unable to create pods, no labels".to_string(),
            ));
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match api.create(&PostParams::default(), &pod).await {
            Ok(created) => {
                let name = created.metadata.name.clone().unwrap_or_default();
                tracing::debug!(controller = owner_name, pod = %name, "created pod");
                self.recorder.event(
                    owner,
                    EventType::Normal,
                    SUCCESSFUL_CREATE_POD_REASON,
                    format!("Created pod: {name}"),
                );
                Ok(created)
            }
            Err(err) => {
                let err = ControllerError::from(err);
                if !err.has_status_cause(NAMESPACE_TERMINATING_CAUSE) {
                    self.recorder.event(
                        owner,
                        EventType::Warning,
                        FAILED_CREATE_POD_REASON,
                        format!("Error creating: {err}"),
                    );
                }
                Err(err)
            }
        }
    }

    /// Deletes the pod `name`. A pod already gone gives the NotFound error without an
    /// event.
    pub async fn delete_pod<O: Resource<DynamicType = ()>>(
        &self,
        namespace: &str,
        name: &str,
        owner: &O,
    ) -> Result<(), ControllerError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                self.recorder.event(
                    owner,
                    EventType::Normal,
                    SUCCESSFUL_DELETE_POD_REASON,
                    format!("Deleted pod: {name}"),
                );
                Ok(())
            }
            Err(err) => {
                let err = ControllerError::from(err);
                if err.is_not_found() {
                    return Err(err);
                }
                self.recorder.event(
                    owner,
                    EventType::Warning,
                    FAILED_DELETE_POD_REASON,
                    format!("Error deleting: {err}"),
                );
                Err(ControllerError::Other(format!(
                    "unable to delete pods: {err}"
                )))
            }
        }
    }

    /// Applies a strategic merge patch to the pod `name`.
    pub async fn patch_pod(
        &self,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<Pod, ControllerError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        Ok(api
            .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await?)
    }

    /// The event recorder.
    pub fn recorder(&self) -> &EventRecorder {
        &self.recorder
    }
}

/// Strategic merge patch making `owner` the controller of the object with UID
/// `dependent_uid` (the UID guards against a recreated object of the same name).
pub fn adopt_patch(controller_ref: &OwnerReference, dependent_uid: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": {
            "ownerReferences": [controller_ref],
            "uid": dependent_uid,
        }
    })
}

/// Strategic merge patch removing the owner reference to `owner_uid` from the object
/// with UID `dependent_uid`.
pub fn release_patch(owner_uid: &str, dependent_uid: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": {
            "ownerReferences": [{"$patch": "delete", "uid": owner_uid}],
            "uid": dependent_uid,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    #[test]
    fn pod_from_template_copies_metadata_and_spec() {
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                annotations: Some([("a".to_string(), "b".to_string())].into()),
                finalizers: Some(vec!["example.com/f".into()]),
                name: Some("ignored".into()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: Some("nginx".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        };
        let r = OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web".into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let pod = pod_from_template(&template, "web", Some(r.clone()));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(pod.metadata.name, None);
        assert_eq!(pod.metadata.labels.unwrap()["app"], "web");
        assert_eq!(pod.metadata.annotations.unwrap()["a"], "b");
        assert_eq!(pod.metadata.finalizers.unwrap(), ["example.com/f"]);
        assert_eq!(pod.metadata.owner_references.unwrap(), [r]);
        assert_eq!(pod.spec.unwrap().containers[0].name, "c");
    }

    #[test]
    fn prefix_drops_dash_when_too_long() {
        assert_eq!(pods_prefix("web"), "web-");
        let long = "a".repeat(253);
        assert_eq!(pods_prefix(&long), long);
    }

    #[test]
    fn patches() {
        let r = OwnerReference {
            api_version: "v1".into(),
            kind: "ReplicationController".into(),
            name: "rc".into(),
            uid: "owner".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        assert_eq!(
            adopt_patch(&r, "pod-uid"),
            serde_json::json!({"metadata": {"ownerReferences": [{
                "apiVersion": "v1", "kind": "ReplicationController", "name": "rc",
                "uid": "owner", "controller": true, "blockOwnerDeletion": true
            }], "uid": "pod-uid"}})
        );
        assert_eq!(
            release_patch("owner", "pod-uid"),
            serde_json::json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": "owner"}], "uid": "pod-uid"}})
        );
    }
}
