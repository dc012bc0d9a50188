//! Helpers shared by the integration tests (`tests/deployment.rs`, `tests/daemonset.rs`, `tests/statefulset.rs`,
//! `tests/replicaset.rs`): an apiserver with controllers running on it, the namespace
//! they work in, label maps and pod templates, polling until a condition holds,
//! listing active pods, reading events, and marking a pod Ready.

// Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
pub use testapi::wait::{eventually, labels};

use controllers::{ControllerContext, ControllerManagerConfig};
use k8s_openapi::api::core::v1::{Container, Event, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::Client;
use serde_json::json;
use testapi::TestApi;

/// The namespace every test object lives in.
pub const NS: &str = "default";

/// The events in [`NS`] whose involved object is named `object`.
pub async fn events_about(client: &Client, object: &str) -> Vec<Event> {
    testapi::wait::events_about(client, NS, object).await
}

/// A merge patch for the status subresource marking a pod Running and Ready now.
pub fn ready_status_patch() -> serde_json::Value {
    let now = jiff::Timestamp::now().to_string();
    json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now}
    ]}})
}

/// An in-process apiserver with controllers of this crate running on it; the
/// controllers stop when it is dropped.
pub struct Cluster {
    /// The apiserver.
    pub api: TestApi,
    /// A client of the apiserver.
    pub client: Client,
    controllers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &self.controllers {
            c.abort();
        }
    }
}

/// Starts an apiserver and the named controllers (names or aliases) on it.
pub async fn cluster(names: &[&str]) -> Cluster {
    let api = TestApi::start().await;
    let client = api.client().await;
    let ctx = ControllerContext::new(client.clone(), ControllerManagerConfig::default());
    let controllers = names
        .iter()
        .map(|name| tokio::spawn(apps_controllers::start(&ctx, name).unwrap()))
        .collect();
    Cluster {
        api,
        client,
        controllers,
    }
}

/// A pod template labelled `labels` with one container `c` running `image`.
pub fn pod_template(labels: BTreeMap<String, String>, image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
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

/// The pods in [`NS`] matching the label `selector`, being deleted or not.
pub async fn pods_with(client: &Client, selector: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
}

/// The pods in [`NS`] matching the label `selector` that are not being deleted.
pub async fn active_pods(client: &Client, selector: &str) -> Vec<Pod> {
    pods_with(client, selector)
        .await
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// Marks the pod `name` in [`NS`] Running and Ready through its status.
pub async fn mark_ready(client: &Client, name: &str) {
    Api::<Pod>::namespaced(client.clone(), NS)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(ready_status_patch()),
        )
        .await
        .unwrap();
}
