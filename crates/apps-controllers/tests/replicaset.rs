//! The ReplicaSet and ReplicationController controllers against an in-process
//! apiserver. There is no scheduler or kubelet: tests bind pods and set their status
//! themselves.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use controllers::informer::Notification;
use controllers::{ControllerContext, ControllerManagerConfig};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{
    Event, Pod, PodTemplateSpec, ReplicationController, ReplicationControllerSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use parking_lot::Mutex;
use serde_json::json;
use testapi::TestApi;

mod support;
use support::{
    active_pods, cluster, events_about, eventually, labels, mark_ready, pod_template, pods_with, NS,
};

fn template(app: &str) -> PodTemplateSpec {
    pod_template(
        labels(&[("app", app), ("tier", "frontend")]),
        "registry.k8s.io/pause:3.10",
    )
}

fn replica_set(name: &str, app: &str, replicas: i32, min_ready: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: Some(min_ready),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", app)])),
                ..Default::default()
            },
            template: Some(template(app)),
        }),
        status: None,
    }
}

fn replication_controller(name: &str, app: &str, replicas: i32) -> ReplicationController {
    ReplicationController {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        spec: Some(ReplicationControllerSpec {
            replicas: Some(replicas),
            selector: Some(labels(&[("app", app)])),
            template: Some(template(app)),
            min_ready_seconds: None,
        }),
        status: None,
    }
}

fn name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap()
}

/// Names of the active pods matching `selector`.
async fn active_names(client: &Client, selector: &str) -> Vec<String> {
    active_pods(client, selector)
        .await
        .iter()
        .map(name)
        .collect()
}

/// Waits (up to [`WAIT`]) until exactly `n` active pods match `selector`.
async fn wait_for_active(client: &Client, selector: &str, n: usize, what: &str) {
    eventually(what, WAIT, || async {
        active_pods(client, selector).await.len() == n
    })
    .await;
}

/// Lets the controller run on for a second, then checks it still keeps exactly `n`
/// active pods matching `selector` (it did not overshoot), and returns them.
async fn settled_active_pods(client: &Client, selector: &str, n: usize) -> Vec<Pod> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pods = active_pods(client, selector).await;
    assert_eq!(pods.len(), n);
    pods
}

async fn bind(client: &Client, pod: &str, node: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": pod},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}
    });
    let _: serde_json::Value = api
        .create_subresource("binding", pod, &PostParams::default(), &binding)
        .await
        .unwrap();
}

async fn create_rs(client: &Client, rs: &ReplicaSet) -> ReplicaSet {
    Api::<ReplicaSet>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), rs)
        .await
        .unwrap()
}

async fn get_rs(client: &Client, name: &str) -> ReplicaSet {
    Api::<ReplicaSet>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .unwrap()
}

/// The ReplicaSet's status (the default while it has none).
async fn rs_status(client: &Client, name: &str) -> ReplicaSetStatus {
    get_rs(client, name).await.status.unwrap_or_default()
}

async fn scale_rs(client: &Client, name: &str, replicas: i32) {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), NS);
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await
    .unwrap();
}

fn with_reason<'a>(events: &'a [Event], reason: &'a str) -> impl Iterator<Item = &'a Event> {
    events
        .iter()
        .filter(move |e| e.reason.as_deref() == Some(reason))
}

fn count_reason(events: &[Event], reason: &str) -> usize {
    with_reason(events, reason).count()
}

/// The messages of the events with `reason`.
fn messages_with_reason(events: &[Event], reason: &str) -> Vec<String> {
    with_reason(events, reason)
        .map(|e| e.message.clone().unwrap())
        .collect()
}

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicaset_creates_exactly_n_owned_pods_with_events() {
    let c = cluster(&["replicaset-controller"]).await;
    let rs = create_rs(&c.client, &replica_set("web", "web", 3, 0)).await;
    let uid = rs.metadata.uid.clone().unwrap();

    wait_for_active(&c.client, "app=web", 3, "3 pods").await;
    let pods = settled_active_pods(&c.client, "app=web", 3).await;
    for p in &pods {
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
        assert!(name(p).starts_with("web-"));
        assert_eq!(p.metadata.labels.as_ref().unwrap()["tier"], "frontend");
        let refs = p.metadata.owner_references.clone().unwrap();
        assert_eq!(refs.len(), 1);
        let r = &refs[0];
        assert_eq!(r.api_version, "apps/v1");
        assert_eq!(r.kind, "ReplicaSet");
        assert_eq!(r.name, "web");
        assert_eq!(r.uid, uid);
        assert_eq!(r.controller, Some(true));
        assert_eq!(r.block_owner_deletion, Some(true));
    }

    eventually("status replicas 3, observedGeneration 1", WAIT, || async {
        let rs = get_rs(&c.client, "web").await;
        let st = rs.status.unwrap_or_default();
        st.replicas == 3
            && st.fully_labeled_replicas == Some(3)
            && st.ready_replicas.unwrap_or(0) == 0
            && st.observed_generation == rs.metadata.generation
    })
    .await;

    eventually("3 SuccessfulCreate events", WAIT, || async {
        count_reason(&events_about(&c.client, "web").await, "SuccessfulCreate") == 3
    })
    .await;
    let events = events_about(&c.client, "web").await;
    let mut messages = messages_with_reason(&events, "SuccessfulCreate");
    messages.sort();
    let mut expected: Vec<String> = pods
        .iter()
        .map(|p| format!("Created pod: {}", name(p)))
        .collect();
    expected.sort();
    assert_eq!(messages, expected);
    for e in with_reason(&events, "SuccessfulCreate") {
        assert_eq!(e.type_.as_deref(), Some("Normal"));
        assert_eq!(e.count, Some(1));
        assert_eq!(
            e.source.as_ref().unwrap().component.as_deref(),
            Some("replicaset-controller")
        );
        assert_eq!(
            e.reporting_component.as_deref(),
            Some("replicaset-controller")
        );
        assert_eq!(e.involved_object.kind.as_deref(), Some("ReplicaSet"));
        assert_eq!(e.involved_object.api_version.as_deref(), Some("apps/v1"));
        assert_eq!(e.involved_object.uid.as_deref(), Some(uid.as_str()));
        assert!(e.involved_object.resource_version.is_some());
        assert!(e.first_timestamp.is_some() && e.last_timestamp.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_pods_are_replaced() {
    let c = cluster(&["replicaset"]).await;
    create_rs(&c.client, &replica_set("web", "web", 3, 0)).await;
    wait_for_active(&c.client, "app=web", 3, "3 pods").await;
    let before: HashSet<String> = active_names(&c.client, "app=web")
        .await
        .into_iter()
        .collect();
    let pod_api: Api<Pod> = Api::namespaced(c.client.clone(), NS);
    for n in before.iter().take(2) {
        pod_api.delete(n, &DeleteParams::default()).await.unwrap();
    }
    eventually("replacements", WAIT, || async {
        let now: HashSet<String> = active_names(&c.client, "app=web")
            .await
            .into_iter()
            .collect();
        now.len() == 3 && now.intersection(&before).count() == 1
    })
    .await;
    settled_active_pods(&c.client, "app=web", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_deletes_unscheduled_and_unready_first_then_scale_up() {
    let c = cluster(&["replicaset-controller"]).await;
    create_rs(&c.client, &replica_set("web", "web", 4, 0)).await;
    wait_for_active(&c.client, "app=web", 4, "4 pods").await;
    let mut names = active_names(&c.client, "app=web").await;
    names.sort();
    // names[0]: unscheduled; names[1]: scheduled, not ready; names[2..]: ready.
    for n in &names[1..] {
        bind(&c.client, n, "node-1").await;
    }
    for n in &names[2..] {
        mark_ready(&c.client, n).await;
    }
    eventually("2 ready in status", WAIT, || async {
        rs_status(&c.client, "web").await.ready_replicas == Some(2)
    })
    .await;

    scale_rs(&c.client, "web", 2).await;
    wait_for_active(&c.client, "app=web", 2, "scaled down to 2").await;
    let left: HashSet<String> = active_names(&c.client, "app=web")
        .await
        .into_iter()
        .collect();
    let ready: HashSet<String> = names[2..].iter().cloned().collect();
    assert_eq!(left, ready, "the unscheduled and the unready pod go first");
    // The unscheduled pod is gone at once; the bound one waits for its grace period.
    let all: Vec<Pod> = pods_with(&c.client, "app=web").await;
    assert!(!all.iter().any(|p| name(p) == names[0]));
    assert!(all
        .iter()
        .any(|p| name(p) == names[1] && p.metadata.deletion_timestamp.is_some()));
    eventually("2 SuccessfulDelete events", WAIT, || async {
        let events = events_about(&c.client, "web").await;
        let msgs: HashSet<String> = messages_with_reason(&events, "SuccessfulDelete")
            .into_iter()
            .collect();
        msgs == [
            format!("Deleted pod: {}", names[0]),
            format!("Deleted pod: {}", names[1]),
        ]
        .into()
    })
    .await;
    eventually("status replicas 2", WAIT, || async {
        rs_status(&c.client, "web").await.replicas == 2
    })
    .await;

    scale_rs(&c.client, "web", 5).await;
    wait_for_active(&c.client, "app=web", 5, "scaled up to 5").await;
    settled_active_pods(&c.client, "app=web", 5).await;
    eventually("status replicas 5 at generation 3", WAIT, || async {
        let rs = get_rs(&c.client, "web").await;
        let st = rs.status.unwrap_or_default();
        st.replicas == 5 && rs.metadata.generation == Some(3) && st.observed_generation == Some(3)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_adopted_and_mismatching_pods_released() {
    let c = cluster(&["replicaset-controller"]).await;
    let pod_api: Api<Pod> = Api::namespaced(c.client.clone(), NS);
    let orphan = Pod {
        metadata: ObjectMeta {
            name: Some("orphan".into()),
            labels: Some(labels(&[("app", "web")])),
            ..Default::default()
        },
        spec: template("web").spec,
        status: None,
    };
    pod_api
        .create(&PostParams::default(), &orphan)
        .await
        .unwrap();
    // The controller must have the orphan in its pod cache before the set appears,
    // or its first sync rightly creates two pods (a race upstream has too). Under a
    // loaded machine the watch can lag: give it time.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rs = create_rs(&c.client, &replica_set("web", "web", 2, 0)).await;
    let uid = rs.metadata.uid.clone().unwrap();

    eventually("orphan adopted", WAIT, || async {
        let p = pod_api.get("orphan").await.unwrap();
        p.metadata
            .owner_references
            .unwrap_or_default()
            .iter()
            .any(|r| r.uid == uid && r.controller == Some(true) && r.kind == "ReplicaSet")
    })
    .await;
    wait_for_active(&c.client, "app=web", 2, "2 pods").await;
    // The adopted orphan counts: only one pod created.
    let pods = settled_active_pods(&c.client, "app=web", 2).await;
    assert_eq!(
        count_reason(&events_about(&c.client, "web").await, "SuccessfulCreate"),
        1
    );
    // A fully-labelled count of 1: the orphan lacks the template's tier label.
    eventually("fullyLabeledReplicas 1", WAIT, || async {
        let st = rs_status(&c.client, "web").await;
        st.replicas == 2 && st.fully_labeled_replicas == Some(1)
    })
    .await;

    // Relabel the created pod out of the selector: it is released and replaced.
    let created = pods.iter().map(name).find(|n| n != "orphan").unwrap();
    pod_api
        .patch(
            &created,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": "elsewhere"}}})),
        )
        .await
        .unwrap();
    eventually("released", WAIT, || async {
        let p = pod_api.get(&created).await.unwrap();
        !p.metadata
            .owner_references
            .unwrap_or_default()
            .iter()
            .any(|r| r.uid == uid)
    })
    .await;
    wait_for_active(&c.client, "app=web", 2, "replaced").await;
    let now = active_names(&c.client, "app=web").await;
    assert!(now.contains(&"orphan".to_string()));
    assert!(!now.contains(&created));
    // The released pod still exists, on its own.
    assert!(pod_api
        .get(&created)
        .await
        .unwrap()
        .metadata
        .deletion_timestamp
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_ready_and_available_after_min_ready_seconds() {
    let c = cluster(&["replicaset-controller"]).await;
    create_rs(&c.client, &replica_set("web", "web", 2, 6)).await;
    wait_for_active(&c.client, "app=web", 2, "2 pods").await;
    for n in active_names(&c.client, "app=web").await {
        bind(&c.client, &n, "node-1").await;
        mark_ready(&c.client, &n).await;
    }
    eventually("ready 2, available 0", Duration::from_secs(5), || async {
        let st = rs_status(&c.client, "web").await;
        st.ready_replicas == Some(2) && st.available_replicas.unwrap_or(0) == 0
    })
    .await;
    eventually(
        "available 2 after minReadySeconds",
        Duration::from_secs(20),
        || async {
            let st = rs_status(&c.client, "web").await;
            st.ready_replicas == Some(2) && st.available_replicas == Some(2)
        },
    )
    .await;

    // A spec change bumps generation; status follows.
    Api::<ReplicaSet>::namespaced(c.client.clone(), NS)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"minReadySeconds": 1}})),
        )
        .await
        .unwrap();
    eventually("observedGeneration 2", WAIT, || async {
        let rs = get_rs(&c.client, "web").await;
        rs.metadata.generation == Some(2)
            && rs.status.unwrap_or_default().observed_generation == Some(2)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_from_0_to_300_never_overshoots() {
    let api = TestApi::start().await;
    let client = api.client().await;
    let ctx = ControllerContext::new(client.clone(), ControllerManagerConfig::default());
    // Count every pod ever created, on the controller's own pod informer, and make that
    // informer lag behind the API server (each notification takes 5 ms), so that the
    // controller must rely on its expectations rather than on a fresh cache.
    let pods = ctx.informers.informer::<Pod>();
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let s = seen.clone();
    let _reg = pods.add_handler(move |n| {
        if let Notification::Added(p) = n {
            s.lock().insert(p.metadata.uid.clone().unwrap_or_default());
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let controller = tokio::spawn(apps_controllers::start(&ctx, "replicaset-controller").unwrap());

    create_rs(&client, &replica_set("big", "big", 0, 0)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    scale_rs(&client, "big", 300).await;
    eventually("300 pods", Duration::from_secs(120), || async {
        seen.lock().len() >= 300
    })
    .await;
    eventually("status replicas 300", Duration::from_secs(60), || async {
        rs_status(&client, "big").await.replicas == 300
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(seen.lock().len(), 300, "never more than 300 pods created");
    assert_eq!(active_pods(&client, "app=big").await.len(), 300);
    // Events are rate limited per object, as upstream: at most 25 writes.
    let events = events_about(&client, "big").await;
    let creates: Vec<&Event> = with_reason(&events, "SuccessfulCreate").collect();
    assert!(!creates.is_empty());
    assert!(creates.iter().any(|e| e
        .message
        .as_deref()
        .unwrap_or("")
        .starts_with("(combined from similar events): Created pod: big-")));
    let writes: i32 = creates.iter().map(|e| e.count.unwrap_or(1)).sum();
    assert!(writes <= 25, "{writes} event writes");
    controller.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_controller_works_the_same() {
    let c = cluster(&["replicationcontroller-controller"]).await;
    let rc_api: Api<ReplicationController> = Api::namespaced(c.client.clone(), NS);
    let rc = rc_api
        .create(
            &PostParams::default(),
            &replication_controller("legacy", "legacy", 3),
        )
        .await
        .unwrap();
    let uid = rc.metadata.uid.clone().unwrap();
    wait_for_active(&c.client, "app=legacy", 3, "3 pods").await;
    let pods = settled_active_pods(&c.client, "app=legacy", 3).await;
    for p in &pods {
        let r = &p.metadata.owner_references.clone().unwrap()[0];
        assert_eq!(
            (r.api_version.as_str(), r.kind.as_str(), r.name.as_str()),
            ("v1", "ReplicationController", "legacy")
        );
        assert_eq!(r.uid, uid);
        assert_eq!(
            (r.controller, r.block_owner_deletion),
            (Some(true), Some(true))
        );
        assert_eq!(p.metadata.generate_name.as_deref(), Some("legacy-"));
    }
    mark_ready(&c.client, &name(&pods[0])).await;
    eventually("status", WAIT, || async {
        let rc = rc_api.get("legacy").await.unwrap();
        let st = rc.status.unwrap_or_default();
        st.replicas == 3
            && st.ready_replicas == Some(1)
            && st.available_replicas == Some(1)
            && st.fully_labeled_replicas == Some(3)
            && st.observed_generation == Some(1)
    })
    .await;
    eventually("events from replication-controller", WAIT, || async {
        let events = events_about(&c.client, "legacy").await;
        count_reason(&events, "SuccessfulCreate") == 3
            && events.iter().all(|e| {
                e.source.as_ref().and_then(|s| s.component.as_deref())
                    == Some("replication-controller")
                    && e.involved_object.kind.as_deref() == Some("ReplicationController")
                    && e.involved_object.api_version.as_deref() == Some("v1")
            })
    })
    .await;

    rc_api
        .patch(
            "legacy",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    eventually("scaled down to the ready pod", WAIT, || async {
        active_names(&c.client, "app=legacy").await == [name(&pods[0])]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_prefers_pods_doubled_up_with_sibling_sets() {
    let c = cluster(&["replicaset-controller"]).await;
    // Two ReplicaSets controlled by the same (pretend) Deployment.
    let owner = json!([{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "dep",
        "uid": "00000000-0000-0000-0000-00000000d001", "controller": true
    }]);
    for (name, app) in [("rs-a", "a"), ("rs-b", "b")] {
        let mut rs = replica_set(name, app, 2, 0);
        rs.metadata.owner_references = Some(serde_json::from_value(owner.clone()).unwrap());
        create_rs(&c.client, &rs).await;
    }
    wait_for_active(&c.client, "app in (a,b)", 4, "4 pods").await;
    let mut a = active_names(&c.client, "app=a").await;
    a.sort();
    let b = active_names(&c.client, "app=b").await;
    // a[0] shares node-1 with both pods of rs-b; a[1] is alone on node-2.
    bind(&c.client, &a[0], "node-1").await;
    bind(&c.client, &a[1], "node-2").await;
    for n in &b {
        bind(&c.client, n, "node-1").await;
    }
    for n in a.iter().chain(b.iter()) {
        mark_ready(&c.client, n).await;
    }
    eventually("rs-a ready", WAIT, || async {
        rs_status(&c.client, "rs-a").await.ready_replicas == Some(2)
    })
    .await;
    scale_rs(&c.client, "rs-a", 1).await;
    wait_for_active(&c.client, "app=a", 1, "rs-a scaled down").await;
    let left = active_names(&c.client, "app=a").await;
    assert_eq!(left, [a[1].clone()], "the doubled-up pod goes first");
}

/// A larger run for measuring throughput (`cargo test -p controllers -- --ignored`):
/// 20 ReplicaSets of 150 pods each (3000 pods), then all scaled down to 50.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale measurement; slow"]
async fn scale_3000_pods_across_20_sets() {
    let c = cluster(&["replicaset-controller"]).await;
    let start = std::time::Instant::now();
    for i in 0..20 {
        let name = format!("s{i}");
        create_rs(&c.client, &replica_set(&name, &name, 150, 0)).await;
    }
    eventually("3000 pods", Duration::from_secs(600), || async {
        get_rs_total(&c.client).await == 3000
    })
    .await;
    let up = start.elapsed();
    let start = std::time::Instant::now();
    for i in 0..20 {
        scale_rs(&c.client, &format!("s{i}"), 50).await;
    }
    eventually("1000 pods", Duration::from_secs(600), || async {
        get_rs_total(&c.client).await == 1000
    })
    .await;
    let down = start.elapsed();
    eprintln!("3000 pods created and reported in {up:?}; 2000 deleted in {down:?}");
    let active = active_pods(&c.client, "tier=frontend").await.len();
    assert_eq!(active, 1000);
}

async fn get_rs_total(client: &Client) -> i32 {
    Api::<ReplicaSet>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|rs| rs.status.as_ref().map(|s| s.replicas).unwrap_or(0))
        .sum()
}
