//! Helpers shared by the integration tests: an in-process apiserver running some of
//! this crate's controllers, polling until a condition holds, and the objects the
//! tests create (nodes, pods with IPs and readiness set through pods/status,
//! services).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
pub use testapi::wait::labels;

use controllers::{ControllerContext, ControllerManagerConfig};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Node, Pod, PodSpec, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use testapi::TestApi;

/// The namespace test objects live in.
pub const NS: &str = "default";
/// How long a test waits for a controller.
pub const WAIT: Duration = Duration::from_secs(20);

/// An apiserver plus some controllers of this crate running on it.
pub struct Cluster {
    pub api: TestApi,
    pub client: Client,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for h in &self.handles {
            h.abort();
        }
    }
}

/// Starts an apiserver and the named controllers with `config`.
pub async fn cluster(names: &[&str], config: ControllerManagerConfig) -> Cluster {
    let api = TestApi::start().await;
    let client = api.client().await;
    let ctx = ControllerContext::new(client.clone(), config);
    let mut handles = Vec::new();
    for name in names {
        let fut = service_controllers::start(&ctx, name).unwrap();
        handles.push(tokio::spawn(fut));
    }
    ctx.informers.start();
    Cluster {
        api,
        client,
        handles,
    }
}

/// Polls `check` every 100ms until it holds; panics naming `what` after [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
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

/// Creates a node with a zone label.
pub async fn create_node(client: &Client, name: &str, zone: &str) {
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels(&[("topology.kubernetes.io/zone", zone)])),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
}

/// Creates a pod labelled `app=<app>` on `node`, its container exposing the named
/// ports given.
pub async fn create_pod(
    client: &Client,
    name: &str,
    app: &str,
    node: &str,
    ports: &[(&str, i32)],
) -> Pod {
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            labels: Some(labels(&[("app", app)])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            containers: vec![Container {
                name: "c".into(),
                image: Some("registry.k8s.io/pause:3.10".into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p)| ContainerPort {
                            name: Some(n.to_string()),
                            container_port: *p,
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    Api::<Pod>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap()
}

/// Sets a pod Running with `ip`, Ready or not.
pub async fn set_pod_status(client: &Client, name: &str, ip: &str, ready: bool) {
    let now = jiff::Timestamp::now().to_string();
    let patch = json!({"status": {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": now}]
    }});
    Api::<Pod>::namespaced(client.clone(), NS)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Deletes a pod (gracefully unless `force`).
pub async fn delete_pod(client: &Client, name: &str, force: bool) {
    let dp = if force {
        DeleteParams::default().grace_period(0)
    } else {
        DeleteParams::default()
    };
    Api::<Pod>::namespaced(client.clone(), NS)
        .delete(name, &dp)
        .await
        .unwrap();
}

/// Creates a service selecting `app=<app>` with one port `http` (80 → `target`).
pub async fn create_service(
    client: &Client,
    name: &str,
    app: &str,
    target: IntOrString,
) -> Service {
    let spec = ServiceSpec {
        selector: Some(labels(&[("app", app)])),
        ports: Some(vec![ServicePort {
            name: Some("http".into()),
            port: 80,
            target_port: Some(target),
            ..Default::default()
        }]),
        ..Default::default()
    };
    create_service_with(client, name, Some(labels(&[("team", "blue")])), spec).await
}

/// Creates the service `name` in [`NS`] with `labels` and `spec`.
pub async fn create_service_with(
    client: &Client,
    name: &str,
    labels: Option<BTreeMap<String, String>>,
    spec: ServiceSpec,
) -> Service {
    let svc = Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            labels,
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    };
    Api::<Service>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap()
}
