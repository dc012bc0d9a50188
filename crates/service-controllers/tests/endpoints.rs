//! The Endpoints controller against an in-process apiserver. There is no kubelet:
//! tests set pod IPs and readiness through pods/status themselves.

use controllers::ControllerManagerConfig;
use k8s_openapi::api::core::v1::{Endpoints, Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, PostParams};
use kube::Client;

mod support;
use support::{
    cluster, create_pod, create_service, create_service_with, delete_pod, eventually, labels,
    set_pod_status, NS,
};

async fn endpoints(client: &Client, name: &str) -> Option<Endpoints> {
    Api::<Endpoints>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()
}

/// (ready IPs, not-ready IPs, ports) of an Endpoints object, sorted.
fn summary(ep: &Endpoints) -> (Vec<String>, Vec<String>, Vec<i32>) {
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    let mut ports = Vec::new();
    for s in ep.subsets.iter().flatten() {
        ready.extend(s.addresses.iter().flatten().map(|a| a.ip.clone()));
        not_ready.extend(s.not_ready_addresses.iter().flatten().map(|a| a.ip.clone()));
        ports.extend(s.ports.iter().flatten().map(|p| p.port));
    }
    ready.sort();
    not_ready.sort();
    ports.sort();
    ports.dedup();
    (ready, not_ready, ports)
}

async fn wait_summary(
    client: &Client,
    name: &str,
    ready: &[&str],
    not_ready: &[&str],
    ports: &[i32],
) -> Endpoints {
    let want = (
        ready.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        not_ready.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        ports.to_vec(),
    );
    let what = format!("endpoints {name} = {want:?}");
    eventually(&what, || async {
        endpoints(client, name)
            .await
            .is_some_and(|ep| summary(&ep) == want)
    })
    .await;
    endpoints(client, name).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_pods() {
    let c = cluster(&["endpoint"], ControllerManagerConfig::default()).await;
    let client = &c.client;
    for (i, name) in ["web-0", "web-1", "web-2"].iter().enumerate() {
        create_pod(client, name, "web", "node-a", &[("http", 8080)]).await;
        set_pod_status(client, name, &format!("10.244.0.{}", i + 10), true).await;
    }
    let svc = create_service(client, "web", "web", IntOrString::Int(8080)).await;

    let ep = wait_summary(
        client,
        "web",
        &["10.244.0.10", "10.244.0.11", "10.244.0.12"],
        &[],
        &[8080],
    )
    .await;
    assert_eq!(
        ep.metadata.labels.as_ref().unwrap(),
        &labels(&[("team", "blue")])
    );
    let annotations = ep.metadata.annotations.clone().unwrap_or_default();
    let trigger = &annotations["endpoints.kubernetes.io/last-change-trigger-time"];
    assert!(trigger.parse::<jiff::Timestamp>().is_ok(), "{trigger}");
    let subset = &ep.subsets.as_ref().unwrap()[0];
    let port = &subset.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.protocol.as_deref()),
        (Some("http"), 8080, Some("TCP"))
    );
    let addr = &subset.addresses.as_ref().unwrap()[0];
    assert_eq!(addr.node_name.as_deref(), Some("node-a"));
    let target = addr.target_ref.as_ref().unwrap();
    assert_eq!(
        (
            target.kind.as_deref(),
            target.namespace.as_deref(),
            target.name.as_deref()
        ),
        (Some("Pod"), Some(NS), Some("web-0"))
    );

    // Unready: moved to notReadyAddresses.
    set_pod_status(client, "web-1", "10.244.0.11", false).await;
    wait_summary(
        client,
        "web",
        &["10.244.0.10", "10.244.0.12"],
        &["10.244.0.11"],
        &[8080],
    )
    .await;

    // Deleted (gracefully: terminating pods are left out already).
    delete_pod(client, "web-2", false).await;
    wait_summary(client, "web", &["10.244.0.10"], &["10.244.0.11"], &[8080]).await;

    // Publishing not-ready addresses puts the unready pod among the ready ones, and
    // the terminating one (no kubelet finishes its deletion) too.
    let api: Api<Service> = Api::namespaced(client.clone(), NS);
    let mut s = api.get("web").await.unwrap();
    s.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
    api.replace("web", &PostParams::default(), &s)
        .await
        .unwrap();
    wait_summary(
        client,
        "web",
        &["10.244.0.10", "10.244.0.11", "10.244.0.12"],
        &[],
        &[8080],
    )
    .await;

    // The service goes: so do its Endpoints.
    api.delete("web", &DeleteParams::default()).await.unwrap();
    eventually("endpoints deleted with the service", || async {
        endpoints(client, "web").await.is_none()
    })
    .await;
    drop(svc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_target_ports_and_headless_services() {
    let c = cluster(
        &["endpoints-controller"],
        ControllerManagerConfig::default(),
    )
    .await;
    let client = &c.client;
    create_pod(client, "api-0", "api", "node-a", &[("web", 8080)]).await;
    set_pod_status(client, "api-0", "10.244.1.10", true).await;
    create_pod(client, "api-1", "api", "node-a", &[("web", 9090)]).await;
    set_pod_status(client, "api-1", "10.244.1.11", true).await;
    // No port named "web": left out of that port.
    create_pod(client, "api-2", "api", "node-a", &[("other", 7070)]).await;
    set_pod_status(client, "api-2", "10.244.1.12", true).await;
    // No IP yet: left out.
    create_pod(client, "api-3", "api", "node-a", &[("web", 8080)]).await;
    create_service(client, "api", "api", IntOrString::String("web".into())).await;

    let ep = wait_summary(
        client,
        "api",
        &["10.244.1.10", "10.244.1.11"],
        &[],
        &[8080, 9090],
    )
    .await;
    assert_eq!(ep.subsets.as_ref().unwrap().len(), 2, "one subset per port");

    // A headless service without ports: bare addresses and the headless label.
    create_service_with(
        client,
        "api-headless",
        None,
        ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(labels(&[("app", "api")])),
            ..Default::default()
        },
    )
    .await;
    let ep = wait_summary(
        client,
        "api-headless",
        &["10.244.1.10", "10.244.1.11", "10.244.1.12"],
        &[],
        &[],
    )
    .await;
    assert_eq!(
        ep.metadata.labels.as_ref().unwrap(),
        &labels(&[("service.kubernetes.io/headless", "")])
    );

    // A service without selector is left alone.
    create_service_with(
        client,
        "manual",
        None,
        ServiceSpec {
            ports: Some(vec![k8s_openapi::api::core::v1::ServicePort {
                port: 80,
                ..Default::default()
            }]),
            ..Default::default()
        },
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(endpoints(client, "manual").await.is_none());

    // Nothing changes: the Endpoints are not rewritten.
    let before = endpoints(client, "api")
        .await
        .unwrap()
        .metadata
        .resource_version;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        endpoints(client, "api")
            .await
            .unwrap()
            .metadata
            .resource_version,
        before
    );
}
