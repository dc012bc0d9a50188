//! Helpers shared by the integration tests (`tests/deployment.rs`, `tests/daemonset.rs`, `tests/statefulset.rs`,
//! `tests/replicaset.rs`): the namespace they work in, label maps, polling until a
//! condition holds, reading events, and the status patch that marks a pod Ready.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use kube::Client;
use serde_json::json;

/// The namespace every test object lives in.
pub const NS: &str = "default";

/// A label map from key/value pairs.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Polls `check` every 100ms until it holds; panics naming `what` after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The events in [`NS`] whose involved object is named `object`.
pub async fn events_about(client: &Client, object: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(object))
        .collect()
}

/// A merge patch for the status subresource marking a pod Running and Ready now.
pub fn ready_status_patch() -> serde_json::Value {
    let now = jiff::Timestamp::now().to_string();
    json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now}
    ]}})
}
