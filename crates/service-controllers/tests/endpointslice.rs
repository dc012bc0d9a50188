//! The EndpointSlice controller against an in-process apiserver. There is no
//! kubelet: tests set pod IPs and readiness through pods/status themselves, and
//! create the nodes pods run on (pods on unknown nodes are skipped).

use controllers::ControllerManagerConfig;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams};
use kube::Client;

mod support;
use support::{
    cluster, create_node, create_pod, create_service, delete_pod, eventually, set_pod_status, NS,
};

async fn slices(client: &Client, service: &str) -> Vec<EndpointSlice> {
    Api::<EndpointSlice>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await
        .unwrap()
        .items
}

/// (address, ready, serving, terminating) of every endpoint, sorted.
async fn endpoint_states(client: &Client, service: &str) -> Vec<(String, bool, bool, bool)> {
    let mut out: Vec<_> = slices(client, service)
        .await
        .iter()
        .flat_map(|s| s.endpoints.clone())
        .map(|e| {
            let c = e.conditions.unwrap_or_default();
            (
                e.addresses.join(","),
                c.ready.unwrap_or(false),
                c.serving.unwrap_or(false),
                c.terminating.unwrap_or(false),
            )
        })
        .collect();
    out.sort();
    out
}

fn states(v: &[(&str, bool, bool, bool)]) -> Vec<(String, bool, bool, bool)> {
    v.iter()
        .map(|(a, r, s, t)| (a.to_string(), *r, *s, *t))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_mirror_pods() {
    let c = cluster(&["endpointslice"], ControllerManagerConfig::default()).await;
    let client = &c.client;
    create_node(client, "node-a", "zone-1").await;
    for (i, name) in ["web-0", "web-1", "web-2"].iter().enumerate() {
        create_pod(client, name, "web", "node-a", &[("http", 8080)]).await;
        set_pod_status(client, name, &format!("10.244.0.{}", i + 10), true).await;
    }
    let svc = create_service(client, "web", "web", IntOrString::String("http".into())).await;

    let all_ready = states(&[
        ("10.244.0.10", true, true, false),
        ("10.244.0.11", true, true, false),
        ("10.244.0.12", true, true, false),
    ]);
    eventually("three ready endpoints", || async {
        endpoint_states(client, "web").await == all_ready
    })
    .await;
    let got = slices(client, "web").await;
    assert_eq!(got.len(), 1);
    let s = &got[0];
    assert!(s.metadata.name.as_deref().unwrap().starts_with("web-"));
    assert_eq!(s.address_type, "IPv4");
    let labels = s.metadata.labels.as_ref().unwrap();
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(labels["team"], "blue");
    let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.kind, "Service");
    assert_eq!(Some(owner.uid.as_str()), svc.metadata.uid.as_deref());
    assert_eq!(owner.controller, Some(true));
    let port = &s.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.protocol.as_deref()),
        (Some("http"), Some(8080), Some("TCP"))
    );
    let ep = &s.endpoints[0];
    assert_eq!(ep.node_name.as_deref(), Some("node-a"));
    assert_eq!(ep.zone.as_deref(), Some("zone-1"));
    assert_eq!(ep.target_ref.as_ref().unwrap().kind.as_deref(), Some("Pod"));
    let first_name = s.metadata.name.clone();

    // Unready: ready and serving false.
    set_pod_status(client, "web-1", "10.244.0.11", false).await;
    let want = states(&[
        ("10.244.0.10", true, true, false),
        ("10.244.0.11", false, false, false),
        ("10.244.0.12", true, true, false),
    ]);
    eventually("web-1 not ready", || async {
        endpoint_states(client, "web").await == want
    })
    .await;

    // Terminating: serving but not ready, terminating; then gone when force-deleted.
    delete_pod(client, "web-2", false).await;
    let want = states(&[
        ("10.244.0.10", true, true, false),
        ("10.244.0.11", false, false, false),
        ("10.244.0.12", false, true, true),
    ]);
    eventually("web-2 terminating", || async {
        endpoint_states(client, "web").await == want
    })
    .await;
    delete_pod(client, "web-2", true).await;
    let want = states(&[
        ("10.244.0.10", true, true, false),
        ("10.244.0.11", false, false, false),
    ]);
    eventually("web-2 gone", || async {
        endpoint_states(client, "web").await == want
    })
    .await;

    // Updated in place throughout.
    let got = slices(client, "web").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].metadata.name, first_name);

    // Without pods a placeholder slice remains.
    delete_pod(client, "web-0", true).await;
    delete_pod(client, "web-1", true).await;
    eventually("placeholder", || async {
        let s = slices(client, "web").await;
        s.len() == 1 && s[0].endpoints.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_split_at_max_endpoints() {
    let config = ControllerManagerConfig {
        max_endpoints_per_slice: 2,
        ..Default::default()
    };
    let c = cluster(&["endpointslice-controller"], config).await;
    let client = &c.client;
    create_node(client, "node-a", "zone-1").await;
    create_service(client, "api", "api", IntOrString::Int(8080)).await;
    for i in 0..5 {
        let name = format!("api-{i}");
        create_pod(client, &name, "api", "node-a", &[]).await;
        set_pod_status(client, &name, &format!("10.244.1.{}", i + 10), true).await;
    }
    eventually("five endpoints in three slices", || async {
        let s = slices(client, "api").await;
        let mut sizes: Vec<usize> = s.iter().map(|s| s.endpoints.len()).collect();
        sizes.sort();
        sizes == [1, 2, 2]
    })
    .await;

    // A pod on a node that does not exist is skipped.
    create_pod(client, "api-lost", "api", "node-missing", &[]).await;
    set_pod_status(client, "api-lost", "10.244.1.99", true).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let total: usize = slices(client, "api")
        .await
        .iter()
        .map(|s| s.endpoints.len())
        .sum();
    assert_eq!(total, 5);

    // The service goes: the controller leaves the slices to the garbage collector
    // (owner references), and does not recreate anything.
    Api::<Service>::namespaced(client.clone(), NS)
        .delete("api", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let left = slices(client, "api").await;
    assert!(left
        .iter()
        .all(|s| s.metadata.owner_references.as_ref().unwrap()[0].name == "api"));
}
