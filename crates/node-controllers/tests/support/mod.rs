//! Helpers shared by the integration tests: an apiserver with controllers of this
//! crate, polling, events, and a stand-in kubelet (Node objects with a Ready status,
//! Lease renewals that can be stopped).

#![allow(dead_code)]

use std::time::Duration;
pub use testapi::wait::eventually;

use controllers::{ControllerContext, ControllerManagerConfig};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Container, Event, Node, Pod, PodSpec, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use testapi::TestApi;

/// The namespace of test pods.
pub const NS: &str = "default";

/// An apiserver plus controllers running on it.
pub struct Cluster {
    pub api: TestApi,
    pub client: Client,
    pub ctx: ControllerContext,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Cluster {
    /// Starts an apiserver and a controller context with `config`.
    pub async fn start(config: ControllerManagerConfig) -> Cluster {
        let api = TestApi::start().await;
        let client = api.client().await;
        let ctx = ControllerContext::new(client.clone(), config);
        Cluster {
            api,
            client,
            ctx,
            tasks: Vec::new(),
        }
    }

    /// Runs the controller named `name`.
    pub fn run(&mut self, name: &str) {
        let fut = node_controllers::start(&self.ctx, name).unwrap();
        self.ctx.informers.start();
        self.tasks.push(tokio::spawn(fut));
    }

    /// Runs a controller future.
    pub fn run_future(&mut self, fut: controllers::ControllerFuture) {
        self.ctx.informers.start();
        self.tasks.push(tokio::spawn(fut));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The events in [`NS`] whose involved object is named `object`.
pub async fn events_about(client: &Client, object: &str) -> Vec<Event> {
    testapi::wait::events_about(client, NS, object).await
}

/// Whether some event about `object` has `reason` and `message`.
pub async fn has_event(client: &Client, object: &str, reason: &str, message: &str) -> bool {
    events_about(client, object)
        .await
        .iter()
        .any(|e| e.reason.as_deref() == Some(reason) && e.message.as_deref() == Some(message))
}

/// Creates a node (optionally with `spec.podCIDR`).
pub async fn create_node(client: &Client, name: &str, pod_cidr: Option<&str>) -> Node {
    let api: Api<Node> = Api::all(client.clone());
    let mut spec = json!({});
    if let Some(c) = pod_cidr {
        spec = json!({"podCIDR": c, "podCIDRs": [c]});
    }
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap();
    api.create(&PostParams::default(), &node).await.unwrap()
}

/// Posts a Ready=True status with a fresh heartbeat, as a kubelet does.
pub async fn post_ready(client: &Client, name: &str) {
    let api: Api<Node> = Api::all(client.clone());
    let now = jiff::Timestamp::now().to_string();
    let patch = json!({"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady",
         "message": "kubelet is posting ready status",
         "lastHeartbeatTime": now, "lastTransitionTime": now},
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
         "message": "kubelet has sufficient memory available",
         "lastHeartbeatTime": now, "lastTransitionTime": now},
    ]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Renews the node's Lease every 300ms until the returned task is aborted.
pub fn spawn_lease_renewer(client: &Client, name: &str) -> tokio::task::JoinHandle<()> {
    let client = client.clone();
    let name = name.to_string();
    tokio::spawn(async move {
        let api: Api<Lease> = Api::namespaced(client, "kube-node-lease");
        loop {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some("kube-node-lease".into()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(name.clone()),
                    lease_duration_seconds: Some(40),
                    renew_time: Some(MicroTime(jiff::Timestamp::now())),
                    ..Default::default()
                }),
            };
            let pp = PatchParams::apply("test-kubelet").force();
            let _ = api.patch(&name, &pp, &Patch::Apply(&lease)).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

/// A pod bound to `node` with `tolerations`.
pub async fn create_pod(
    client: &Client,
    name: &str,
    node: &str,
    tolerations: Vec<Toleration>,
) -> Pod {
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: (!node.is_empty()).then(|| node.to_string()),
            tolerations: (!tolerations.is_empty()).then_some(tolerations),
            containers: vec![Container {
                name: "c".into(),
                image: Some("registry.k8s.io/pause:3.10".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    api.create(&PostParams::default(), &pod).await.unwrap()
}

/// Sets a pod's phase (and Ready=True when Running).
pub async fn set_pod_phase(client: &Client, name: &str, phase: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let now = jiff::Timestamp::now().to_string();
    let ready = if phase == "Running" { "True" } else { "False" };
    let patch = json!({"status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": ready, "lastTransitionTime": now}
    ]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// The pod, if it still exists.
pub async fn get_pod(client: &Client, name: &str) -> Option<Pod> {
    Api::<Pod>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()
}

/// The node, if it exists.
pub async fn get_node(client: &Client, name: &str) -> Option<Node> {
    Api::<Node>::all(client.clone())
        .get_opt(name)
        .await
        .unwrap()
}

/// Whether the pod is gone or being deleted.
pub async fn pod_deleted(client: &Client, name: &str) -> bool {
    get_pod(client, name)
        .await
        .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
}

/// The `key:effect` of each taint of a node.
pub fn taint_keys(node: &Node) -> Vec<String> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|ts| {
            ts.iter()
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect()
        })
        .unwrap_or_default()
}

/// The status of a node condition.
pub fn condition_status(node: &Node, type_: &str) -> Option<String> {
    node_controllers::taints::node_condition(node, type_).map(|c| c.status.clone())
}
