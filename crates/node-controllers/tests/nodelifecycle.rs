//! The node lifecycle and taint eviction controllers against an in-process apiserver,
//! with a stand-in kubelet (status posts and Lease renewals driven by the test) and
//! shortened periods.

use std::time::Duration;

use controllers::ControllerManagerConfig;
use k8s_openapi::api::core::v1::Toleration;

mod support;
use support::*;

fn config() -> ControllerManagerConfig {
    ControllerManagerConfig {
        node_monitor_period: Duration::from_millis(200),
        node_monitor_grace_period: Duration::from_secs(2),
        node_startup_grace_period: Duration::from_secs(2),
        node_eviction_rate: 100.0,
        ..Default::default()
    }
}

fn unreachable_toleration(seconds: Option<i64>) -> Toleration {
    Toleration {
        key: Some("node.kubernetes.io/unreachable".into()),
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        toleration_seconds: seconds,
        ..Default::default()
    }
}

fn has_disruption_target(pod: &k8s_openapi::api::core::v1::Pod, reason: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "DisruptionTarget"
                    && c.status == "True"
                    && c.reason.as_deref() == Some(reason)
            })
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn silent_node_is_tainted_its_pods_evicted_and_recovers() {
    let mut cluster = Cluster::start(config()).await;
    let client = cluster.client.clone();
    for name in ["healthy", "failing"] {
        create_node(&client, name, None).await;
        post_ready(&client, name).await;
    }
    let _healthy_lease = spawn_lease_renewer(&client, "healthy");
    let failing_lease = spawn_lease_renewer(&client, "failing");
    // Admission gives pods without their own toleration 300 s (DefaultTolerationSeconds);
    // "plain" says 0 s, so it goes as soon as the taint lands.
    create_pod(
        &client,
        "plain",
        "failing",
        vec![unreachable_toleration(Some(0))],
    )
    .await;
    create_pod(
        &client,
        "tolerating",
        "failing",
        vec![unreachable_toleration(Some(4))],
    )
    .await;
    create_pod(
        &client,
        "forever",
        "failing",
        vec![unreachable_toleration(None)],
    )
    .await;
    create_pod(&client, "elsewhere", "healthy", vec![]).await;
    set_pod_phase(&client, "forever", "Running").await;

    cluster.run("nodelifecycle");
    cluster.run("taint-eviction-controller");

    eventually("nodes registered", Duration::from_secs(10), || async {
        has_event(
            &client,
            "failing",
            "RegisteredNode",
            "Node failing event: Registered Node failing in Controller",
        )
        .await
    })
    .await;
    // Healthy nodes are left alone.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let n = get_node(&client, "failing").await.unwrap();
    assert!(taint_keys(&n).is_empty(), "{:?}", taint_keys(&n));
    assert_eq!(condition_status(&n, "Ready").as_deref(), Some("True"));

    // The kubelet of "failing" goes silent.
    failing_lease.abort();
    eventually("Ready=Unknown", Duration::from_secs(10), || async {
        let n = get_node(&client, "failing").await.unwrap();
        condition_status(&n, "Ready").as_deref() == Some("Unknown")
    })
    .await;
    let n = get_node(&client, "failing").await.unwrap();
    let ready = node_controllers::taints::node_condition(&n, "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        ready.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    assert_eq!(
        condition_status(&n, "MemoryPressure").as_deref(),
        Some("Unknown")
    );
    assert_eq!(
        condition_status(&n, "DiskPressure").as_deref(),
        Some("Unknown")
    );
    assert_eq!(
        condition_status(&n, "PIDPressure").as_deref(),
        Some("Unknown")
    );

    eventually("unreachable taints", Duration::from_secs(10), || async {
        let n = get_node(&client, "failing").await.unwrap();
        let keys = taint_keys(&n);
        keys.contains(&"node.kubernetes.io/unreachable:NoExecute".to_string())
            && keys.contains(&"node.kubernetes.io/unreachable:NoSchedule".to_string())
    })
    .await;
    let tainted_at = tokio::time::Instant::now();
    let n = get_node(&client, "failing").await.unwrap();
    let no_execute = n
        .spec
        .as_ref()
        .unwrap()
        .taints
        .as_ref()
        .unwrap()
        .iter()
        .find(|t| t.effect == "NoExecute")
        .unwrap();
    assert!(
        no_execute.time_added.is_some(),
        "NoExecute taints carry timeAdded"
    );
    assert!(
        has_event(
            &client,
            "failing",
            "NodeNotReady",
            "Node failing status is now: NodeNotReady"
        )
        .await
    );

    // The pod tolerating 0 s goes at once, with the DisruptionTarget condition.
    eventually(
        "pod tolerating 0 s deleted",
        Duration::from_secs(5),
        || async { pod_deleted(&client, "plain").await },
    )
    .await;
    // No kubelet finishes the graceful deletion, so the pod is still there.
    let p = get_pod(&client, "plain").await.unwrap();
    assert!(
        has_disruption_target(&p, "DeletionByTaintManager"),
        "{:?}",
        p.status
    );
    assert!(
        has_event(
            &client,
            "plain",
            "TaintManagerEviction",
            "Marking for deletion Pod default/plain"
        )
        .await
    );
    // The ready pod on the unready node was marked not ready.
    eventually("pod marked not ready", Duration::from_secs(5), || async {
        let p = get_pod(&client, "forever").await.unwrap();
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "False"))
    })
    .await;
    assert!(has_event(&client, "forever", "NodeNotReady", "Node is not ready").await);

    // The pod tolerating for 4s stays about that long.
    assert!(!pod_deleted(&client, "tolerating").await);
    eventually(
        "tolerating pod deleted",
        Duration::from_secs(10),
        || async { pod_deleted(&client, "tolerating").await },
    )
    .await;
    let waited = tainted_at.elapsed();
    assert!(
        waited >= Duration::from_millis(3000),
        "deleted after {waited:?}"
    );
    assert!(!pod_deleted(&client, "forever").await, "tolerated forever");
    assert!(!pod_deleted(&client, "elsewhere").await, "healthy node");

    // The kubelet comes back: the taints go.
    let _back = spawn_lease_renewer(&client, "failing");
    post_ready(&client, "failing").await;
    eventually("taints removed", Duration::from_secs(10), || async {
        let n = get_node(&client, "failing").await.unwrap();
        condition_status(&n, "Ready").as_deref() == Some("True") && taint_keys(&n).is_empty()
    })
    .await;
    let healthy = get_node(&client, "healthy").await.unwrap();
    assert!(taint_keys(&healthy).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubelet_reported_conditions_become_no_schedule_taints() {
    let mut cluster = Cluster::start(config()).await;
    let client = cluster.client.clone();
    create_node(&client, "n1", None).await;
    post_ready(&client, "n1").await;
    let _lease = spawn_lease_renewer(&client, "n1");
    cluster.run("node-lifecycle-controller");

    let api: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let now = jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({"status": {"conditions": [
        {"type": "Ready", "status": "True", "lastHeartbeatTime": now, "lastTransitionTime": now},
        {"type": "MemoryPressure", "status": "True", "lastHeartbeatTime": now, "lastTransitionTime": now},
    ]}});
    api.patch_status("n1", &Default::default(), &kube::api::Patch::Merge(&patch))
        .await
        .unwrap();
    let cordon = serde_json::json!({"spec": {"unschedulable": true}});
    api.patch("n1", &Default::default(), &kube::api::Patch::Merge(&cordon))
        .await
        .unwrap();
    eventually("NoSchedule taints", Duration::from_secs(10), || async {
        let mut keys = taint_keys(&get_node(&client, "n1").await.unwrap());
        keys.sort();
        keys == [
            "node.kubernetes.io/memory-pressure:NoSchedule",
            "node.kubernetes.io/unschedulable:NoSchedule",
        ]
    })
    .await;
    let uncordon = serde_json::json!({"spec": {"unschedulable": false}});
    api.patch(
        "n1",
        &Default::default(),
        &kube::api::Patch::Merge(&uncordon),
    )
    .await
    .unwrap();
    eventually(
        "unschedulable taint removed",
        Duration::from_secs(10),
        || async {
            taint_keys(&get_node(&client, "n1").await.unwrap())
                == ["node.kubernetes.io/memory-pressure:NoSchedule"]
        },
    )
    .await;
}
