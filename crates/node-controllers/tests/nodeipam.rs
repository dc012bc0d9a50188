//! The node IPAM controller against an in-process apiserver: CIDRs for new nodes,
//! existing CIDRs kept, the service range kept out, exhaustion and reuse.

use std::time::Duration;

use controllers::ControllerManagerConfig;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams};

mod support;
use support::*;

async fn pod_cidrs(client: &kube::Client, name: &str) -> (Option<String>, Vec<String>) {
    let n = get_node(client, name).await.unwrap();
    let spec = n.spec.unwrap_or_default();
    (spec.pod_cidr, spec.pod_cidrs.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_get_cidrs_and_deleted_ones_are_reused() {
    let config = ControllerManagerConfig {
        allocate_node_cidrs: true,
        cluster_cidr: "10.244.0.0/22".into(),
        service_cluster_ip_range: "10.244.3.0/24".into(),
        ..Default::default()
    };
    let mut cluster = Cluster::start(config).await;
    let client = cluster.client.clone();
    // A node that already has a CIDR before the controller starts.
    create_node(&client, "pre", Some("10.244.0.0/24")).await;
    cluster.run("nodeipam");

    create_node(&client, "n1", None).await;
    eventually("n1 has a CIDR", Duration::from_secs(10), || async {
        pod_cidrs(&client, "n1").await.0.is_some()
    })
    .await;
    assert_eq!(
        pod_cidrs(&client, "n1").await,
        (
            Some("10.244.1.0/24".into()),
            vec!["10.244.1.0/24".to_string()]
        )
    );
    create_node(&client, "n2", None).await;
    eventually("n2 has a CIDR", Duration::from_secs(10), || async {
        pod_cidrs(&client, "n2").await.0.is_some()
    })
    .await;
    assert_eq!(
        pod_cidrs(&client, "n2").await.0.as_deref(),
        Some("10.244.2.0/24")
    );

    // 10.244.3.0/24 is the service range: nothing left.
    create_node(&client, "n3", None).await;
    eventually("CIDRNotAvailable", Duration::from_secs(10), || async {
        has_event(
            &client,
            "n3",
            "CIDRNotAvailable",
            "Node n3 status is now: CIDRNotAvailable",
        )
        .await
    })
    .await;
    assert_eq!(pod_cidrs(&client, "n3").await.0, None);
    let ev = events_about(&client, "n3").await;
    assert_eq!(
        ev[0].source.as_ref().and_then(|s| s.component.as_deref()),
        Some("cidrAllocator")
    );

    // Deleting n1 frees its CIDR for n3.
    Api::<Node>::all(client.clone())
        .delete("n1", &DeleteParams::default())
        .await
        .unwrap();
    eventually("n3 gets n1's CIDR", Duration::from_secs(20), || async {
        pod_cidrs(&client, "n3").await.0.as_deref() == Some("10.244.1.0/24")
    })
    .await;
    assert_eq!(
        pod_cidrs(&client, "pre").await.0.as_deref(),
        Some("10.244.0.0/24")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cluster_cidr_fails_to_start() {
    let api = testapi::TestApi::start().await;
    let client = api.client().await;
    let config = ControllerManagerConfig {
        allocate_node_cidrs: true,
        cluster_cidr: "10.0.0.0/16,10.1.0.0/16".into(),
        ..Default::default()
    };
    let ctx = controllers::ControllerContext::new(client, config);
    let err = node_controllers::start(&ctx, "node-ipam-controller")
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("not configured as dual stack"),
        "{err}"
    );
}
