//! The namespace controller against an in-process apiserver: a deleted namespace is
//! emptied (configmaps, secrets, pods, services, deployments), its conditions report
//! content held by finalizers, and it disappears once empty.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, NamespaceCondition, Pod, Secret, Service, ServicePort, ServiceSpec,
};
use kube::api::{Api, DeleteParams};
use support::{
    clear_finalizers, config_map, create, eventually, gone, meta, names, namespace, pod, secret,
    Cluster,
};

const NS: &str = "doomed";

fn condition(ns: &Namespace, type_: &str) -> Option<NamespaceCondition> {
    ns.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_namespace_is_emptied_then_removed() {
    let mut c = Cluster::bare().await;
    let controller = gc_controllers::namespace::NamespaceController::with_grace_period(
        &c.ctx,
        Duration::from_millis(200),
    );
    c.run(controller.run(2));

    let nss: Api<Namespace> = Api::all(c.client.clone());
    create(&nss, &namespace(NS)).await;
    let cms: Api<ConfigMap> = c.api(NS);
    let secrets: Api<Secret> = c.api(NS);
    let pods: Api<Pod> = c.api(NS);
    let services: Api<Service> = c.api(NS);
    for i in 0..3 {
        create(&cms, &config_map(meta(NS, &format!("cm-{i}"), vec![], &[]))).await;
    }
    create(
        &cms,
        &config_map(meta(NS, "held", vec![], &["example.com/hold"])),
    )
    .await;
    create(&secrets, &secret(meta(NS, "s", vec![], &[]))).await;
    create(&pods, &pod(meta(NS, "p", vec![], &[]))).await;
    create(
        &services,
        &Service {
            metadata: meta(NS, "svc", vec![], &[]),
            spec: Some(ServiceSpec {
                ports: Some(vec![ServicePort {
                    port: 80,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;

    // A live namespace is left alone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(names(&cms).await.len(), 4);

    nss.delete(NS, &DeleteParams::default()).await.unwrap();
    eventually("all content but the held ConfigMap is deleted", || async {
        names(&cms).await == ["held"]
            && names(&secrets).await.is_empty()
            && names(&pods).await.is_empty()
            && names(&services).await.is_empty()
    })
    .await;
    eventually("the conditions report the held content", || async {
        let ns = nss.get(NS).await.unwrap();
        let remaining = condition(&ns, "NamespaceContentRemaining");
        let finalizers = condition(&ns, "NamespaceFinalizersRemaining");
        let failure = condition(&ns, "NamespaceDeletionContentFailure");
        let discovery = condition(&ns, "NamespaceDeletionDiscoveryFailure");
        remaining.is_some_and(|c| {
            c.status == "True"
                && c.reason.as_deref() == Some("SomeResourcesRemain")
                && c.message.as_deref()
                    == Some("Some resources are remaining: configmaps. has 1 resource instances")
        }) && finalizers.is_some_and(|c| {
            c.status == "True"
                && c.reason.as_deref() == Some("SomeFinalizersRemain")
                && c.message.as_deref()
                    == Some("Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances")
        }) && failure.is_some_and(|c| {
            c.status == "False" && c.reason.as_deref() == Some("ContentDeleted")
        }) && discovery.is_some_and(|c| {
            c.status == "False" && c.reason.as_deref() == Some("ResourcesDiscovered")
        })
    })
    .await;
    let ns = nss.get(NS).await.unwrap();
    assert_eq!(
        ns.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Terminating")
    );
    assert_eq!(
        ns.spec.as_ref().and_then(|s| s.finalizers.clone()),
        Some(vec!["kubernetes".to_string()])
    );

    // Releasing the held object lets the namespace finish (the controller checks
    // again after half the 15 s finalizer estimate).
    clear_finalizers(&cms, "held").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while nss.get_opt(NS).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the namespace is removed once empty"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_namespace_goes_through_the_registered_controller() {
    let c = Cluster::with("namespace").await;
    let nss: Api<Namespace> = Api::all(c.client.clone());
    create(&nss, &namespace("short-lived")).await;
    create(
        &c.api::<ConfigMap>("short-lived"),
        &config_map(meta("short-lived", "cm", vec![], &[])),
    )
    .await;
    nss.delete("short-lived", &DeleteParams::default())
        .await
        .unwrap();
    // The registered controller waits upstream's 5 s before the first pass.
    eventually("the namespace disappears", || async {
        gone(&nss, "short-lived").await
    })
    .await;
}
