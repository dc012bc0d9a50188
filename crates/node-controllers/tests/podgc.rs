//! The pod garbage collector against an in-process apiserver, with short periods:
//! pods of deleted nodes, excess terminated pods, unscheduled terminating pods.

use std::time::Duration;

use controllers::ControllerManagerConfig;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use node_controllers::podgc::PodGcController;
use serde_json::json;

mod support;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collects_orphans_excess_terminated_and_unscheduled_terminating() {
    let config = ControllerManagerConfig {
        terminated_pod_gc_threshold: 2,
        ..Default::default()
    };
    let mut cluster = Cluster::start(config).await;
    let client = cluster.client.clone();
    create_node(&client, "live", None).await;
    create_node(&client, "doomed", None).await;
    create_pod(&client, "orphan", "doomed", vec![]).await;
    set_pod_phase(&client, "orphan", "Running").await;
    create_pod(&client, "survivor", "live", vec![]).await;
    set_pod_phase(&client, "survivor", "Running").await;
    for name in ["done-1", "done-2", "done-3", "done-4"] {
        create_pod(&client, name, "live", vec![]).await;
        set_pod_phase(&client, name, "Succeeded").await;
    }
    // An unscheduled pod held by a finalizer, being deleted.
    create_pod(&client, "held", "", vec![]).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    pods.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"finalizers": ["example.com/hold"]}})),
    )
    .await
    .unwrap();
    pods.delete("held", &DeleteParams::default()).await.unwrap();

    let gc = PodGcController::with_periods(
        &cluster.ctx,
        Duration::from_millis(200),
        Duration::from_secs(1),
    );
    cluster.run_future(gc.run());

    // The two oldest terminated pods go (creation then name order).
    eventually(
        "excess terminated pods deleted",
        Duration::from_secs(10),
        || async {
            get_pod(&client, "done-1").await.is_none() && get_pod(&client, "done-2").await.is_none()
        },
    )
    .await;
    assert!(get_pod(&client, "done-3").await.is_some());
    assert!(get_pod(&client, "done-4").await.is_some());

    // The unscheduled terminating pod is failed and force-deleted.
    eventually(
        "unscheduled terminating pod failed",
        Duration::from_secs(10),
        || async {
            get_pod(&client, "held")
                .await
                .is_some_and(|p| p.status.and_then(|s| s.phase).as_deref() == Some("Failed"))
        },
    )
    .await;

    // Pods of a deleted node go after the quarantine.
    assert!(get_pod(&client, "orphan").await.is_some());
    Api::<Node>::all(client.clone())
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let deleted_at = tokio::time::Instant::now();
    eventually("orphaned pod deleted", Duration::from_secs(10), || async {
        get_pod(&client, "orphan").await.is_none()
    })
    .await;
    assert!(
        deleted_at.elapsed() >= Duration::from_millis(900),
        "quarantine respected"
    );
    assert!(get_pod(&client, "survivor").await.is_some());

    // Clean up the finalizer so the apiserver can drop the pod.
    pods.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
}
