//! The scheduler against an in-process apiserver: pods get bound to nodes that fit,
//! a pod that fits nowhere says why (PodScheduled=False and a FailedScheduling event)
//! and is placed once the cluster changes, and preemption makes room for a
//! higher-priority pod. Nodes here are plain Node objects; nothing runs the pods.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::Duration;
use testapi::TestApi;

async fn node(
    client: &kube::Client,
    name: &str,
    cpu: &str,
    labels: serde_json::Value,
    taints: serde_json::Value,
) {
    let nodes: Api<Node> = Api::all(client.clone());
    let n: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
    let status = json!({"status": {
        "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}]
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

fn pod(name: &str, cpu: &str, extra: serde_json::Value) -> Pod {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox",
        "resources": {"requests": {"cpu": cpu}}}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn node_of(pods: &Api<Pod>, name: &str) -> Option<String> {
    pods.get(name).await.ok()?.spec?.node_name
}

async fn condition(pods: &Api<Pod>, name: &str) -> Option<(String, String)> {
    let p = pods.get(name).await.ok()?;
    let c = p
        .status?
        .conditions?
        .into_iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    Some((c.reason.unwrap_or_default(), c.message.unwrap_or_default()))
}

fn start(client: kube::Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        scheduler::run(client, scheduler::SchedulerArgs::default())
            .await
            .unwrap();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_to_fitting_nodes_and_explains_failures() {
    let api = TestApi::start().await;
    let client = api.client().await;
    node(&client, "small", "1", json!({"zone": "a"}), json!([])).await;
    node(&client, "big", "4", json!({"zone": "b"}), json!([])).await;
    node(
        &client,
        "gpu",
        "8",
        json!({"zone": "b"}),
        json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
    )
    .await;
    let sched = start(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // Only "big" has 2 free cpus without a taint.
    pods.create(&PostParams::default(), &pod("two-cpu", "2", json!({})))
        .await
        .unwrap();
    let n = wait_for("two-cpu bound", async || node_of(&pods, "two-cpu").await).await;
    assert_eq!(n, "big");

    // A toleration and a node selector lead to the tainted node.
    let tolerating = pod(
        "on-gpu",
        "1",
        json!({
            "nodeSelector": {"zone": "b"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]}}}
        }),
    );
    pods.create(&PostParams::default(), &tolerating)
        .await
        .unwrap();
    // "big" has 2 cpus left and also fits; either is right, but not "small".
    let n = wait_for("on-gpu bound", async || node_of(&pods, "on-gpu").await).await;
    assert_ne!(n, "small");

    // Fits nowhere: the condition says why, with upstream's wording.
    pods.create(&PostParams::default(), &pod("huge", "16", json!({})))
        .await
        .unwrap();
    let (reason, message) = wait_for("huge unschedulable", async || {
        condition(&pods, "huge").await
    })
    .await;
    assert_eq!(reason, "Unschedulable");
    assert!(
        message.starts_with("0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."),
        "{message}"
    );
    assert!(
        message.contains("preemption: 0/3 nodes are available:"),
        "{message}"
    );
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let failed = wait_for("FailedScheduling event", async || {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("FailedScheduling")
                && e.involved_object.name.as_deref() == Some("huge")
        })
    })
    .await;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert!(events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .any(|e| e.reason.as_deref() == Some("Scheduled")
            && e.message.as_deref() == Some("Successfully assigned default/two-cpu to big")));

    // A new node large enough lets it schedule.
    node(&client, "huge-node", "32", json!({}), json!([])).await;
    let n = wait_for("huge bound after a node joined", async || {
        node_of(&pods, "huge").await
    })
    .await;
    assert_eq!(n, "huge-node");
    sched.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anti_affinity_and_host_ports_spread_pods() {
    let api = TestApi::start().await;
    let client = api.client().await;
    for i in 0..3 {
        node(
            &client,
            &format!("n{i}"),
            "4",
            json!({"kubernetes.io/hostname": format!("n{i}")}),
            json!([]),
        )
        .await;
    }
    let sched = start(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let anti = |name: &str| {
        let mut p = pod(
            name,
            "100m",
            json!({"affinity": {"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"app": "web"}},
                "topologyKey": "kubernetes.io/hostname"}]}}}),
        );
        p.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        p
    };
    for i in 0..4 {
        pods.create(&PostParams::default(), &anti(&format!("web-{i}")))
            .await
            .unwrap();
    }
    let mut placed = Vec::new();
    for i in 0..3 {
        let name = format!("web-{i}");
        placed.push(wait_for("web bound", async || node_of(&pods, &name).await).await);
    }
    // The fourth may be one of the first three popped; find the unbound one.
    let mut all = Vec::new();
    for i in 0..4 {
        all.push(node_of(&pods, &format!("web-{i}")).await);
    }
    let bound: Vec<String> = all.iter().flatten().cloned().collect();
    assert_eq!(bound.len(), 3, "{all:?}");
    let mut unique = bound.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "one per node: {bound:?}");
    let loser = (0..4).find(|i| all[*i].is_none()).unwrap();
    let (_, msg) = wait_for("anti-affinity message", async || {
        condition(&pods, &format!("web-{loser}")).await
    })
    .await;
    // Upstream checks the incoming pod's own anti-affinity before the placed pods'.
    assert_eq!(
        msg,
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. \
         preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    );

    // Host ports: two pods wanting the same port land on different nodes.
    let port = |name: &str| {
        pod(
            name,
            "100m",
            json!({"containers": [{"name": "c", "image": "x",
            "ports": [{"containerPort": 80, "hostPort": 8080}]}]}),
        )
    };
    pods.create(&PostParams::default(), &port("p1"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &port("p2"))
        .await
        .unwrap();
    let a = wait_for("p1", async || node_of(&pods, "p1").await).await;
    let b = wait_for("p2", async || node_of(&pods, "p2").await).await;
    assert_ne!(a, b);
    drop(placed);
    sched.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preemption_makes_room_for_higher_priority() {
    let api = TestApi::start().await;
    let client = api.client().await;
    node(&client, "only", "2", json!({}), json!([])).await;
    // Priorities come from PriorityClasses through Priority admission.
    let classes: Api<k8s_openapi::api::scheduling::v1::PriorityClass> = Api::all(client.clone());
    for (name, value, policy) in [
        ("low", 10, "PreemptLowerPriority"),
        ("high", 100, "PreemptLowerPriority"),
        ("never", 1000, "Never"),
    ] {
        let pc = serde_json::from_value(json!({
            "metadata": {"name": name}, "value": value, "preemptionPolicy": policy,
        }))
        .unwrap();
        classes.create(&PostParams::default(), &pc).await.unwrap();
    }
    let sched = start(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &pod("low", "2", json!({"priorityClassName": "low"})),
    )
    .await
    .unwrap();
    wait_for("low bound", async || node_of(&pods, "low").await).await;
    pods.create(
        &PostParams::default(),
        &pod("never", "2", json!({"priorityClassName": "never"})),
    )
    .await
    .unwrap();
    let (_, msg) = wait_for("never unschedulable", async || {
        condition(&pods, "never").await
    })
    .await;
    assert!(
        msg.ends_with("preemption: not eligible due to preemptionPolicy=Never."),
        "{msg}"
    );
    pods.delete("never", &Default::default()).await.unwrap();

    pods.create(
        &PostParams::default(),
        &pod("high", "2", json!({"priorityClassName": "high"})),
    )
    .await
    .unwrap();
    // The low-priority pod is evicted (it has no node agent, so deletion is
    // immediate once bound pods... are gracefully deleted: wait for it to go).
    wait_for("high nominated", async || {
        let p = pods.get("high").await.ok()?;
        p.status?.nominated_node_name.filter(|n| n == "only")
    })
    .await;
    // Finish the victim's graceful deletion as its kubelet would.
    let _ = pods
        .delete(
            "low",
            &kube::api::DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await;
    let n = wait_for("high bound", async || node_of(&pods, "high").await).await;
    assert_eq!(n, "only");
    sched.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preemption_spares_pods_a_disruption_budget_protects() {
    let api = TestApi::start().await;
    let client = api.client().await;
    node(&client, "n1", "1", json!({}), json!([])).await;
    node(&client, "n2", "1", json!({}), json!([])).await;
    let classes: Api<k8s_openapi::api::scheduling::v1::PriorityClass> = Api::all(client.clone());
    let pc = serde_json::from_value(json!({"metadata": {"name": "high"}, "value": 100})).unwrap();
    classes.create(&PostParams::default(), &pc).await.unwrap();
    // A budget with no disruptions left over the `db` pods (its status is what the
    // disruption controller would write).
    let pdbs: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
        Api::namespaced(client.clone(), "default");
    let pdb = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}
    }))
    .unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    let status = json!({"status": {"disruptionsAllowed": 0, "currentHealthy": 1,
        "desiredHealthy": 1, "expectedPods": 1, "observedGeneration": 1}});
    pdbs.patch_status("db", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let sched = start(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (name, app) in [("db", "db"), ("web", "web")] {
        let mut p = pod(name, "1", json!({}));
        p.metadata.labels = Some([("app".to_string(), app.to_string())].into());
        pods.create(&PostParams::default(), &p).await.unwrap();
        wait_for("bound", async || node_of(&pods, name).await).await;
    }
    let web_node = node_of(&pods, "web").await.unwrap();
    pods.create(
        &PostParams::default(),
        &pod("vip", "1", json!({"priorityClassName": "high"})),
    )
    .await
    .unwrap();
    let nominated = wait_for("vip nominated", async || {
        pods.get("vip").await.ok()?.status?.nominated_node_name
    })
    .await;
    assert_eq!(nominated, web_node, "the unprotected pod's node is chosen");
    let db = pods.get("db").await.unwrap();
    assert!(db.metadata.deletion_timestamp.is_none(), "db is spared");
    sched.abort();
}
