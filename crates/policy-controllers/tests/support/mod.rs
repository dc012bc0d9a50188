//! Helpers shared by the integration tests: the namespace they work in, label maps,
//! polling until a condition holds, reading events, starting one controller against
//! an in-process apiserver, and the status patch that marks a pod Ready.

#![allow(dead_code)]

pub use testapi::wait::{eventually, labels};

use controllers::{ControllerContext, ControllerManagerConfig};
use k8s_openapi::api::core::v1::{Container, Event, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
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
    json!({"status": {"phase": "Running", "startTime": now, "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now}
    ]}})
}

/// A one-container pod with labels.
pub fn pod(name: &str, pod_labels: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            labels: Some(labels(pod_labels)),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some("registry.k8s.io/pause:3.10".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    }
}

/// An apiserver plus one controller of this crate running on it.
pub struct Fixture {
    /// The apiserver.
    pub api: TestApi,
    /// A client for the test.
    pub client: Client,
    runner: Option<tokio::task::JoinHandle<()>>,
}

impl Fixture {
    /// Starts an apiserver and the controller `name` with `config`.
    pub async fn start(name: &str, config: ControllerManagerConfig) -> Fixture {
        let api = TestApi::start().await;
        let client = api.client().await;
        let ctx = ControllerContext::new(api.client().await, config);
        let fut = policy_controllers::start(&ctx, name).unwrap();
        let runner = tokio::spawn(async move {
            let _ctx = ctx;
            fut.await
        });
        Fixture {
            api,
            client,
            runner: Some(runner),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(r) = self.runner.take() {
            r.abort();
        }
    }
}
