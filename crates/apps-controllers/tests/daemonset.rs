//! The DaemonSet controller against an in-process apiserver. There is no scheduler
//! or kubelet: daemon pods stay unbound (they carry the node-name affinity), and tests
//! mark them Ready through pods/status themselves.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{Node, NodeSpec, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

mod support;
use support::{
    active_pods, cluster, events_about, eventually, labels, pod_template, ready_status_patch, NS,
};

const WAIT: Duration = Duration::from_secs(20);

async fn add_node(client: &Client, name: &str) {
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels(&[("kubernetes.io/hostname", name)])),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
}

fn daemon_set(name: &str, image: &str) -> DaemonSet {
    DaemonSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", name)])),
                ..Default::default()
            },
            template: pod_template(labels(&[("app", name)]), image),
            ..Default::default()
        }),
        status: None,
    }
}

fn target_node(p: &Pod) -> String {
    p.spec
        .as_ref()
        .unwrap()
        .affinity
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms[0]
        .match_fields
        .as_ref()
        .unwrap()[0]
        .values
        .as_ref()
        .unwrap()[0]
        .clone()
}

async fn pod_nodes(client: &Client, app: &str) -> Vec<String> {
    let mut nodes: Vec<String> = active_pods(client, &format!("app={app}"))
        .await
        .iter()
        .map(target_node)
        .collect();
    nodes.sort();
    nodes
}

async fn wait_for_nodes(client: &Client, app: &str, want: &[&str]) {
    eventually(&format!("daemon pods on {want:?}"), WAIT, || async {
        pod_nodes(client, app).await == want
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pod_per_node_following_nodes_and_taints() {
    let c = cluster(&["daemonset"]).await;
    let client = &c.client;
    add_node(client, "n1").await;
    add_node(client, "n2").await;
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), NS);
    dss.create(&PostParams::default(), &daemon_set("agent", "img:1"))
        .await
        .unwrap();
    wait_for_nodes(client, "agent", &["n1", "n2"]).await;

    // Pod shape: labels, tolerations, generateName.
    let pods = active_pods(client, "app=agent").await;
    let p = &pods[0];
    let l = p.metadata.labels.as_ref().unwrap();
    assert!(l.contains_key("controller-revision-hash"));
    assert_eq!(l["pod-template-generation"], "1");
    assert_eq!(p.metadata.generate_name.as_deref(), Some("agent-"));
    let tol: Vec<(String, String)> = p
        .spec
        .as_ref()
        .unwrap()
        .tolerations
        .as_ref()
        .unwrap()
        .iter()
        .map(|t| (t.key.clone().unwrap(), t.effect.clone().unwrap()))
        .collect();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        assert!(
            tol.contains(&(key.to_string(), "NoExecute".to_string())),
            "{key}"
        );
    }
    assert!(tol.contains(&(
        "node.kubernetes.io/unschedulable".to_string(),
        "NoSchedule".to_string()
    )));

    // One ControllerRevision, revision 1, named after the hash.
    let revs = Api::<ControllerRevision>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(revs.len(), 1);
    assert_eq!(revs[0].revision, 1);
    assert_eq!(
        revs[0].metadata.name.as_deref(),
        Some(format!("agent-{}", l["controller-revision-hash"]).as_str())
    );

    // Events.
    eventually("SuccessfulCreate events", WAIT, || async {
        events_about(client, "agent")
            .await
            .iter()
            .filter(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
            .count()
            >= 2
    })
    .await;

    // Status.
    eventually("status counts", WAIT, || async {
        let ds = dss.get("agent").await.unwrap();
        let s = ds.status.unwrap_or_default();
        s.desired_number_scheduled == 2
            && s.current_number_scheduled == 2
            && s.updated_number_scheduled == Some(2)
            && s.number_unavailable == Some(2)
            && s.observed_generation == Some(1)
    })
    .await;

    // A new node gets a pod; a removed node loses it.
    add_node(client, "n3").await;
    wait_for_nodes(client, "agent", &["n1", "n2", "n3"]).await;
    Api::<Node>::all(client.clone())
        .delete("n2", &DeleteParams::default())
        .await
        .unwrap();
    wait_for_nodes(client, "agent", &["n1", "n3"]).await;

    // NoExecute taint: the pod goes; NoSchedule alone would keep it.
    let nodes: Api<Node> = Api::all(client.clone());
    let mut n3 = nodes.get("n3").await.unwrap();
    n3.spec = Some(NodeSpec {
        taints: Some(vec![Taint {
            key: "dedicated".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    nodes
        .replace("n3", &PostParams::default(), &n3)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        pod_nodes(client, "agent").await,
        ["n1", "n3"],
        "NoSchedule keeps running pods"
    );
    let mut n1 = nodes.get("n1").await.unwrap();
    n1.spec = Some(NodeSpec {
        taints: Some(vec![Taint {
            key: "dedicated".into(),
            effect: "NoExecute".into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    nodes
        .replace("n1", &PostParams::default(), &n1)
        .await
        .unwrap();
    wait_for_nodes(client, "agent", &["n3"]).await;
    eventually("desired drops", WAIT, || async {
        dss.get("agent")
            .await
            .unwrap()
            .status
            .unwrap_or_default()
            .desired_number_scheduled
            == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_pod_is_replaced() {
    let c = cluster(&["daemonset"]).await;
    let client = &c.client;
    add_node(client, "n1").await;
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), NS);
    dss.create(&PostParams::default(), &daemon_set("fd", "img:1"))
        .await
        .unwrap();
    wait_for_nodes(client, "fd", &["n1"]).await;
    let first = active_pods(client, "app=fd").await[0]
        .metadata
        .name
        .clone()
        .unwrap();
    Api::<Pod>::namespaced(client.clone(), NS)
        .patch_status(
            &first,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Failed"}})),
        )
        .await
        .unwrap();
    eventually("a replacement pod", WAIT, || async {
        let pods = active_pods(client, "app=fd").await;
        pods.len() == 1 && pods[0].metadata.name.as_deref() != Some(first.as_str())
    })
    .await;
    eventually("FailedDaemonPod event", WAIT, || async {
        events_about(client, "fd").await.iter().any(|e| {
            e.reason.as_deref() == Some("FailedDaemonPod")
                && e.message.as_deref() == Some(format!("Found failed daemon pod default/{first} on node n1, will try to kill it").as_str())
        })
    }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_replaces_pods() {
    let c = cluster(&["daemonset"]).await;
    let client = &c.client;
    for n in ["n1", "n2", "n3"] {
        add_node(client, n).await;
    }
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), NS);
    dss.create(&PostParams::default(), &daemon_set("ru", "img:1"))
        .await
        .unwrap();
    wait_for_nodes(client, "ru", &["n1", "n2", "n3"]).await;
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let mark_ready = || async {
        for p in active_pods(client, "app=ru").await {
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if !ready {
                let _ = pods_api
                    .patch_status(
                        p.metadata.name.as_deref().unwrap(),
                        &PatchParams::default(),
                        &Patch::Merge(ready_status_patch()),
                    )
                    .await;
            }
        }
    };
    mark_ready().await;
    eventually("all available", WAIT, || async {
        dss.get("ru")
            .await
            .unwrap()
            .status
            .unwrap_or_default()
            .number_available
            == Some(3)
    })
    .await;

    let old_pods: Vec<String> = active_pods(client, "app=ru")
        .await
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    dss.patch("ru", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "img:2"}]}}}})))
        .await
        .unwrap();
    // maxUnavailable 1: never more than one node without an available pod.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let pods = active_pods(client, "app=ru").await;
        let new = pods
            .iter()
            .filter(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("img:2"))
            .count();
        let old_left = pods
            .iter()
            .filter(|p| old_pods.contains(p.metadata.name.as_ref().unwrap()))
            .count();
        assert!(old_left + new <= 3);
        if new == 3 && old_left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rolling update did not finish: {new} new, {old_left} old"
        );
        mark_ready().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eventually("status updated", WAIT, || async {
        mark_ready().await;
        let ds = dss.get("ru").await.unwrap();
        let s = ds.status.unwrap_or_default();
        s.updated_number_scheduled == Some(3)
            && s.number_available == Some(3)
            && s.observed_generation == ds.metadata.generation
    })
    .await;
    let mut revs: Vec<i64> = Api::<ControllerRevision>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r.revision)
        .collect();
    revs.sort();
    assert_eq!(revs, [1, 2]);
    let gens: Vec<String> = active_pods(client, "app=ru")
        .await
        .iter()
        .map(|p| p.metadata.labels.as_ref().unwrap()["pod-template-generation"].clone())
        .collect();
    assert_eq!(gens, ["2", "2", "2"]);
}
