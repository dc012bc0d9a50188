//! The StatefulSet controller against an in-process apiserver. There is no scheduler
//! or kubelet: pods stay unbound and tests mark them Running and Ready through
//! pods/status themselves.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, Pod, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

mod support;
use support::{
    active_pods, cluster, events_about, eventually, labels, mark_ready, pod_template,
    ready_status_patch, NS,
};

const WAIT: Duration = Duration::from_secs(20);

fn stateful_set(name: &str, replicas: i32, policy: &str, partition: Option<i32>) -> StatefulSet {
    StatefulSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some("nginx".into()),
            pod_management_policy: Some(policy.into()),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", name)])),
                ..Default::default()
            },
            template: pod_template(labels(&[("app", name)]), "img:1"),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: partition.map(|p| RollingUpdateStatefulSetStrategy {
                    partition: Some(p),
                    max_unavailable: None,
                }),
            }),
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("www".into()),
                    ..Default::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some([("storage".to_string(), Quantity("1Gi".into()))].into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

async fn pod_names(client: &Client, app: &str) -> Vec<String> {
    let mut names: Vec<String> = active_pods(client, &format!("app={app}"))
        .await
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    names.sort();
    names
}

async fn wait_for_pods(client: &Client, app: &str, want: &[&str]) {
    eventually(&format!("pods {want:?}"), WAIT, || async {
        pod_names(client, app).await == want
    })
    .await;
}

/// Marks every pod of `app` Running and Ready that is not yet.
async fn mark_all_ready(client: &Client, app: &str) {
    let pods = Api::<Pod>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items;
    for p in pods {
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if !ready && p.metadata.deletion_timestamp.is_none() {
            let _ = Api::<Pod>::namespaced(client.clone(), NS)
                .patch_status(
                    p.metadata.name.as_deref().unwrap(),
                    &PatchParams::default(),
                    &Patch::Merge(ready_status_patch()),
                )
                .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_ready_creates_one_at_a_time_with_claims() {
    let c = cluster(&["statefulset"]).await;
    let client = &c.client;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    sets.create(
        &PostParams::default(),
        &stateful_set("web", 2, "OrderedReady", None),
    )
    .await
    .unwrap();
    wait_for_pods(client, "web", &["web-0"]).await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    let pvc = claims.get("www-web-0").await.unwrap();
    assert_eq!(pvc.metadata.labels.unwrap()["app"], "web");

    let pod = Api::<Pod>::namespaced(client.clone(), NS)
        .get("web-0")
        .await
        .unwrap();
    let l = pod.metadata.labels.as_ref().unwrap();
    assert_eq!(l["statefulset.kubernetes.io/pod-name"], "web-0");
    assert_eq!(l["apps.kubernetes.io/pod-index"], "0");
    assert!(l["controller-revision-hash"].starts_with("web-"));
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let vol = spec
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "www")
        .unwrap();
    assert_eq!(
        vol.persistent_volume_claim.as_ref().unwrap().claim_name,
        "www-web-0"
    );

    // web-1 waits for web-0 to be Running and Ready.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(pod_names(client, "web").await, ["web-0"]);
    mark_ready(client, "web-0").await;
    wait_for_pods(client, "web", &["web-0", "web-1"]).await;
    claims.get("www-web-1").await.unwrap();
    mark_ready(client, "web-1").await;

    eventually("status", WAIT, || async {
        let s = sets.get("web").await.unwrap().status.unwrap_or_default();
        s.replicas == 2
            && s.ready_replicas == Some(2)
            && s.current_replicas == Some(2)
            && s.updated_replicas == Some(2)
            && s.available_replicas == Some(2)
            && s.observed_generation == Some(1)
            && s.current_revision.is_some()
            && s.current_revision == s.update_revision
    })
    .await;
    eventually("events", WAIT, || async {
        let ev = events_about(client, "web").await;
        let msgs: Vec<String> = ev.iter().filter_map(|e| e.message.clone()).collect();
        msgs.contains(&"create Pod web-0 in StatefulSet web successful".to_string())
            && msgs.contains(
                &"create Claim www-web-0 Pod web-0 in StatefulSet web success".to_string(),
            )
            && ev
                .iter()
                .any(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
    })
    .await;

    // Scale down to 0 removes web-1 before web-0.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 0}})),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let names = pod_names(client, "web").await;
        assert!(
            !names.contains(&"web-1".to_string()) || names.contains(&"web-0".to_string()),
            "web-0 went before web-1: {names:?}"
        );
        if names.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "scale down stuck at {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Retain policy: the claims stay.
    claims.get("www-web-0").await.unwrap();
    claims.get("www-web-1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_creates_all_and_scale_down_takes_highest() {
    let c = cluster(&["statefulset"]).await;
    let client = &c.client;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    sets.create(
        &PostParams::default(),
        &stateful_set("par", 3, "Parallel", None),
    )
    .await
    .unwrap();
    wait_for_pods(client, "par", &["par-0", "par-1", "par-2"]).await;
    sets.patch(
        "par",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 2}})),
    )
    .await
    .unwrap();
    wait_for_pods(client, "par", &["par-0", "par-1"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pod_names(client, "par").await, ["par-0", "par-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_scale_down_removes_highest_ordinal_first() {
    let c = cluster(&["statefulset"]).await;
    let client = &c.client;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    sets.create(
        &PostParams::default(),
        &stateful_set("sd", 3, "OrderedReady", None),
    )
    .await
    .unwrap();
    eventually("three ready pods", WAIT, || async {
        mark_all_ready(client, "sd").await;
        sets.get("sd")
            .await
            .unwrap()
            .status
            .unwrap_or_default()
            .ready_replicas
            == Some(3)
    })
    .await;
    sets.patch(
        "sd",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    wait_for_pods(client, "sd", &["sd-0"]).await;
    let ev = events_about(client, "sd").await;
    let deletes: Vec<String> = ev
        .iter()
        .filter(|e| e.reason.as_deref() == Some("SuccessfulDelete"))
        .filter_map(|e| e.message.clone())
        .collect();
    assert!(
        deletes.contains(&"delete Pod sd-2 in StatefulSet sd successful".to_string()),
        "{deletes:?}"
    );
    assert!(
        deletes.contains(&"delete Pod sd-1 in StatefulSet sd successful".to_string()),
        "{deletes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_rolling_update_only_updates_high_ordinals() {
    let c = cluster(&["statefulset"]).await;
    let client = &c.client;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    sets.create(
        &PostParams::default(),
        &stateful_set("ru", 3, "OrderedReady", Some(2)),
    )
    .await
    .unwrap();
    eventually("three ready pods", WAIT, || async {
        mark_all_ready(client, "ru").await;
        let s = sets.get("ru").await.unwrap().status.unwrap_or_default();
        s.ready_replicas == Some(3) && s.current_replicas == Some(3)
    })
    .await;
    let before = sets.get("ru").await.unwrap().status.unwrap();
    let old_rev = before.current_revision.clone().unwrap();

    sets.patch("ru", &PatchParams::default(), &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "img:2"}]}}}})))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let rev_of = |p: &Pod| p.metadata.labels.as_ref().unwrap()["controller-revision-hash"].clone();
    eventually("ru-2 updated", WAIT, || async {
        mark_all_ready(client, "ru").await;
        match pods.get_opt("ru-2").await.unwrap() {
            Some(p) => {
                p.metadata.deletion_timestamp.is_none()
                    && rev_of(&p) != old_rev
                    && p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("img:2")
            }
            None => false,
        }
    })
    .await;
    eventually("status shows the partial update", WAIT, || async {
        mark_all_ready(client, "ru").await;
        let s = sets.get("ru").await.unwrap().status.unwrap_or_default();
        s.updated_replicas == Some(1)
            && s.current_replicas == Some(2)
            && s.ready_replicas == Some(3)
            && s.current_revision.as_deref() == Some(old_rev.as_str())
            && s.update_revision.as_deref() != Some(old_rev.as_str())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for name in ["ru-0", "ru-1"] {
        let p = pods.get(name).await.unwrap();
        assert_eq!(rev_of(&p), old_rev, "{name} is below the partition");
        assert_eq!(
            p.spec.as_ref().unwrap().containers[0].image.as_deref(),
            Some("img:1")
        );
    }
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

    // Lowering the partition to 0 finishes the rollout: currentRevision catches up.
    sets.patch(
        "ru",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})),
    )
    .await
    .unwrap();
    eventually("rollout complete", Duration::from_secs(40), || async {
        mark_all_ready(client, "ru").await;
        let s = sets.get("ru").await.unwrap().status.unwrap_or_default();
        s.updated_replicas == Some(3)
            && s.current_revision == s.update_revision
            && s.ready_replicas == Some(3)
    })
    .await;
}
