//! End-to-end API semantics through kube-rs: subresources, deletion (grace periods,
//! finalizers, propagation), size limits, watch bookmarks and initial events, 410 after
//! compaction, metadata-only lists, generateName, namespace lifecycle.

mod support;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, PodTemplate};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy, WatchEvent,
    WatchParams,
};
use kube::core::ObjectMeta;
use serde_json::json;
use std::time::Duration;
use support::{admin_client, Cluster};

fn err_code(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason, s.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A pod no scheduler serves, so the tests bind it by hand without racing the
/// in-process scheduler's PodScheduled=False status.
fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "t"}},
        "spec": {"schedulerName": "bound-by-hand", "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap()
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_subresource_separates_spec_and_status() {
    let c = Cluster::start();
    let api: Api<Deployment> = Api::namespaced(admin_client(&c).await, "default");
    let created = api
        .create(&PostParams::default(), &deployment("d"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    // Status sent to the main resource is dropped.
    let mut d = created.clone();
    d.status = Some(serde_json::from_value(json!({"replicas": 5})).unwrap());
    let after = api.replace("d", &PostParams::default(), &d).await.unwrap();
    assert!(after.status.as_ref().and_then(|s| s.replicas).is_none());
    assert_eq!(
        after.metadata.generation,
        Some(1),
        "no spec change, no new generation"
    );
    // Status written through /status sticks; spec changes there are ignored.
    let patched = api
        .patch_status(
            "d",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 3}, "spec": {"replicas": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().replicas, Some(3));
    assert_eq!(patched.spec.unwrap().replicas, Some(1));
    // A spec change bumps the generation.
    let scaled = api
        .patch(
            "d",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.metadata.generation, Some(2));
    let scale = api.get_scale("d").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=d"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_delete_gracefully_once_bound() {
    let c = Cluster::start();
    let client = admin_client(&c).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // An unscheduled pod goes at once.
    pods.create(&PostParams::default(), &pod("loose"))
        .await
        .unwrap();
    pods.delete("loose", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(err_code(pods.get("loose").await.unwrap_err()).0, 404);
    // A bound pod gets its grace period.
    pods.create(&PostParams::default(), &pod("bound"))
        .await
        .unwrap();
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bound"}, "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}});
    let req = http::Request::post("/api/v1/namespaces/default/pods/bound/binding")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&binding).unwrap())
        .unwrap();
    client.request_text(req).await.unwrap();
    let bound = pods.get("bound").await.unwrap();
    assert_eq!(
        bound.spec.as_ref().unwrap().node_name.as_deref(),
        Some("node-1")
    );
    let conds = bound.status.unwrap().conditions.unwrap();
    assert!(conds
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.status == "True"));
    // Binding again is a conflict.
    let req = http::Request::post("/api/v1/namespaces/default/pods/bound/binding")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&binding).unwrap())
        .unwrap();
    assert!(client.request_text(req).await.is_err());
    pods.delete("bound", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = pods.get("bound").await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(30));
    // A second delete with a shorter grace period shortens it; zero removes the pod.
    pods.delete("bound", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert_eq!(err_code(pods.get("bound").await.unwrap_err()).0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_and_propagation_policies() {
    let c = Cluster::start();
    let api: Api<ConfigMap> = Api::namespaced(admin_client(&c).await, "default");
    let mut cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("fg".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    api.create(&PostParams::default(), &cm).await.unwrap();
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..Default::default()
    };
    api.delete("fg", &dp).await.unwrap();
    let fg = api.get("fg").await.unwrap();
    assert_eq!(
        fg.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    assert!(fg.metadata.deletion_timestamp.is_some());
    // Finalizers can be removed but not added to an object being deleted; removing
    // the last one deletes it.
    api.patch(
        "fg",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(err_code(api.get("fg").await.unwrap_err()).0, 404);

    cm.metadata.name = Some("orphan".into());
    api.create(&PostParams::default(), &cm).await.unwrap();
    api.delete("orphan", &DeleteParams::orphan()).await.unwrap();
    assert_eq!(
        api.get("orphan").await.unwrap().metadata.finalizers,
        Some(vec!["orphan".to_string()])
    );

    // Preconditions.
    cm.metadata.name = Some("pre".into());
    api.create(&PostParams::default(), &cm).await.unwrap();
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let (code, reason, msg) = err_code(api.delete("pre", &dp).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(
        msg.contains("Precondition failed: UID in precondition: not-the-uid"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_objects_are_refused_and_change_nothing() {
    let c = Cluster::start();
    let api: Api<PodTemplate> = Api::namespaced(admin_client(&c).await, "default");
    let big = "x".repeat(1600 * 1024);
    let tpl: PodTemplate = serde_json::from_value(json!({
        "metadata": {"name": "big"},
        "template": {"spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "BIG", "value": big}]}]}},
    }))
    .unwrap();
    let (code, reason, msg) = err_code(api.create(&PostParams::default(), &tpl).await.unwrap_err());
    assert_eq!(
        (code, reason.as_str()),
        (413, "RequestEntityTooLarge"),
        "{msg}"
    );
    assert_eq!(err_code(api.get("big").await.unwrap_err()).0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_bookmarks_and_initial_events() {
    // Without controllers: the root CA publisher would add its ConfigMap to the
    // watched namespace.
    let c = Cluster::start_with(&["--disable-controller-manager"]);
    let api: Api<ConfigMap> = Api::namespaced(admin_client(&c).await, "default");
    for n in ["a", "b"] {
        api.create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some(n.into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    // sendInitialEvents: the current objects, then a bookmark marking their end.
    let wp = WatchParams::default().initial_events().timeout(20);
    let mut s = api.watch(&wp, "0").await.unwrap().boxed();
    let mut names = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), s.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            WatchEvent::Added(o) => names.push(o.metadata.name.unwrap()),
            WatchEvent::Bookmark(b) => {
                assert_eq!(
                    b.metadata
                        .annotations
                        .get("k8s.io/initial-events-end")
                        .map(String::as_str),
                    Some("true")
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    names.sort();
    assert_eq!(names, vec!["a", "b"]);
    // Plain bookmarks arrive while nothing changes under the watch but the store moves on.
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut s = api
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .unwrap()
        .boxed();
    let other: Api<ConfigMap> = Api::namespaced(admin_client(&c).await, "kube-public");
    let ticker = tokio::spawn(async move {
        for i in 0..200 {
            let _ = other
                .create(
                    &PostParams::default(),
                    &ConfigMap {
                        metadata: ObjectMeta {
                            name: Some(format!("tick-{i}")),
                            ..Default::default()
                        },
                        ..Default::default()
                    },
                )
                .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let ev = tokio::time::timeout(Duration::from_secs(15), s.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let WatchEvent::Bookmark(b) = ev else {
        panic!("expected a bookmark, got {ev:?}")
    };
    assert!(b.metadata.resource_version.parse::<i64>().unwrap() > rv.parse::<i64>().unwrap());
    ticker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_a_compacted_revision_gets_410() {
    let c = Cluster::start_with(&["--compaction-interval", "1"]);
    let api: Api<ConfigMap> = Api::namespaced(admin_client(&c).await, "default");
    let first = api
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("old".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let old_rv = first.metadata.resource_version.unwrap();
    // Churn past the cache window (4096 changes) and let two compactions pass.
    let churn = (0..8).map(|t| {
        let api = api.clone();
        async move {
            for i in 0..280 {
                let name = format!("c{t}-{}", i % 3);
                let _ = api.delete(&name, &DeleteParams::default()).await;
                let mut cm = ConfigMap::default();
                cm.metadata.name = Some(name);
                api.create(&PostParams::default(), &cm).await.unwrap();
            }
        }
    });
    futures::future::join_all(churn).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut s = api
        .watch(&WatchParams::default().timeout(10), &old_rv)
        .await
        .unwrap()
        .boxed();
    let ev = tokio::time::timeout(Duration::from_secs(10), s.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match ev {
        WatchEvent::Error(e) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
        }
        other => panic!("expected a 410 error event, got {other:?}"),
    }
    // A list at that old revision is gone too.
    let lp = ListParams::default()
        .at(&old_rv)
        .matching(kube::api::VersionMatch::Exact);
    assert_eq!(err_code(api.list(&lp).await.unwrap_err()).0, 410);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_metadata_and_generate_name() {
    let c = Cluster::start();
    let api: Api<ConfigMap> = Api::namespaced(admin_client(&c).await, "default");
    for i in 0..5 {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                generate_name: Some("gen-".into()),
                labels: Some(
                    [(
                        "batch".to_string(),
                        if i < 3 { "one" } else { "two" }.to_string(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            ..Default::default()
        };
        let made = api.create(&PostParams::default(), &cm).await.unwrap();
        let name = made.metadata.name.unwrap();
        assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    }
    let meta = api
        .list_metadata(&ListParams::default().labels("batch=one"))
        .await
        .unwrap();
    assert_eq!(meta.items.len(), 3);
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("batch=one"),
    )
    .await
    .unwrap();
    let left = api
        .list(&ListParams::default().labels("batch"))
        .await
        .unwrap();
    assert_eq!(left.items.len(), 2);
    assert!(left
        .items
        .iter()
        .all(|c| c.metadata.labels.as_ref().unwrap()["batch"] == "two"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_namespaces_refuse_new_objects() {
    let c = Cluster::start();
    let client = admin_client(&c).await;
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &Namespace {
            metadata: ObjectMeta {
                name: Some("doomed".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let made = ns.get("doomed").await.unwrap();
    assert_eq!(
        made.spec.unwrap().finalizers,
        Some(vec!["kubernetes".to_string()])
    );
    ns.delete("doomed", &DeleteParams::default()).await.unwrap();
    let gone = ns.get("doomed").await.unwrap();
    assert_eq!(gone.status.unwrap().phase.as_deref(), Some("Terminating"));
    let cms: Api<ConfigMap> = Api::namespaced(client, "doomed");
    let (code, reason, msg) = err_code(
        cms.create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("late".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"), "{msg}");
    assert!(msg.contains("because it is being terminated"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_classes_set_pod_priority() {
    use k8s_openapi::api::scheduling::v1::PriorityClass;
    let c = Cluster::start_with(&["--disable-scheduler"]);
    let client = admin_client(&c).await;
    let classes: Api<PriorityClass> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let critical = classes.get("system-cluster-critical").await.unwrap();
    assert_eq!(critical.value, 2_000_000_000);
    assert!(classes.get("system-node-critical").await.is_ok());

    let class = |name: &str, value: i32, default: bool| -> PriorityClass {
        serde_json::from_value(json!({
            "metadata": {"name": name}, "value": value, "globalDefault": default,
        }))
        .unwrap()
    };
    let made = classes
        .create(&PostParams::default(), &class("high", 1000, false))
        .await
        .unwrap();
    assert_eq!(
        made.preemption_policy.as_deref(),
        Some("PreemptLowerPriority")
    );

    // A pod naming the class gets its value.
    let mut p = pod("important");
    p.spec.as_mut().unwrap().priority_class_name = Some("high".into());
    let made = pods.create(&PostParams::default(), &p).await.unwrap();
    let spec = made.spec.unwrap();
    assert_eq!(spec.priority, Some(1000));
    assert_eq!(
        spec.preemption_policy.as_deref(),
        Some("PreemptLowerPriority")
    );
    // Without a class and without a default: priority 0.
    let made = pods
        .create(&PostParams::default(), &pod("plain"))
        .await
        .unwrap();
    assert_eq!(made.spec.unwrap().priority, Some(0));

    // Unknown classes and hand-set priorities are refused, changing nothing.
    let mut p = pod("unknown");
    p.spec.as_mut().unwrap().priority_class_name = Some("nope".into());
    let (code, reason, msg) = err_code(pods.create(&PostParams::default(), &p).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        msg,
        "pods \"unknown\" is forbidden: no PriorityClass with name nope was found"
    );
    let mut p = pod("sneaky");
    p.spec.as_mut().unwrap().priority = Some(5);
    let (code, _, msg) = err_code(pods.create(&PostParams::default(), &p).await.unwrap_err());
    assert_eq!(code, 403);
    assert!(msg.contains("the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 0"), "{msg}");
    assert!(pods.get_opt("sneaky").await.unwrap().is_none());

    // One global default; it applies to pods without a class.
    classes
        .create(&PostParams::default(), &class("everyone", 7, true))
        .await
        .unwrap();
    let (code, _, msg) = err_code(
        classes
            .create(&PostParams::default(), &class("another", 8, true))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403);
    assert!(
        msg.contains(
            "PriorityClass everyone is already marked as default. Only one default can exist"
        ),
        "{msg}"
    );
    let made = pods
        .create(&PostParams::default(), &pod("defaulted"))
        .await
        .unwrap();
    let spec = made.spec.unwrap();
    assert_eq!(spec.priority, Some(7));
    assert_eq!(spec.priority_class_name.as_deref(), Some("everyone"));

    // Reserved names and limits; value is immutable.
    let (code, _, msg) = err_code(
        classes
            .create(&PostParams::default(), &class("system-mine", 5, false))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(
        msg.contains("priority class names with 'system-' prefix are reserved for system use only"),
        "{msg}"
    );
    let (code, _, _) = err_code(
        classes
            .create(
                &PostParams::default(),
                &class("too-high", 1_000_000_001, false),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);
    let (code, _, msg) = err_code(
        classes
            .patch(
                "high",
                &PatchParams::default(),
                &Patch::Merge(json!({"value": 1})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(
        msg.contains("value: Invalid value: 1: field is immutable"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_patches_without_resource_version_all_apply() {
    let c = Cluster::start_with(&["--disable-scheduler", "--disable-controller-manager"]);
    let client = admin_client(&c).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "shared"}})).unwrap();
    let made = cms.create(&PostParams::default(), &cm).await.unwrap();
    // Patches race on one object; without a resourceVersion none may fail.
    let patches = (0..24).map(|i| {
        let cms = cms.clone();
        async move {
            let p = json!({"metadata": {"labels": {format!("k{i}"): "v"}}});
            cms.patch("shared", &PatchParams::default(), &Patch::Merge(&p))
                .await
        }
    });
    for r in futures::future::join_all(patches).await {
        r.unwrap();
    }
    let labels = cms.get("shared").await.unwrap().metadata.labels.unwrap();
    assert_eq!(labels.len(), 24);
    // A patch that names a stale resourceVersion is refused.
    let stale = made.metadata.resource_version.unwrap();
    let p = json!({"metadata": {"resourceVersion": stale, "labels": {"late": "x"}}});
    let (code, reason, _) = err_code(
        cms.patch("shared", &PatchParams::default(), &Patch::Merge(&p))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
}

/// Updates that race on one Service and are retried after a conflict give back
/// the node ports their failed attempts allocated, and release a port only once
/// the update that drops it is written: after 24 concurrent patches flipping a
/// two-port Service between ClusterIP and NodePort, every port of a 60-port range
/// can be allocated again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_service_updates_leak_no_node_ports() {
    use k8s_openapi::api::core::v1::Service;
    let c = Cluster::start_with(&[
        "--disable-scheduler",
        "--disable-controller-manager",
        "--service-node-port-range",
        "30000-30059",
    ]);
    let client = admin_client(&c).await;
    let svcs: Api<Service> = Api::namespaced(client, "default");
    let svc = |name: &str, ty: &str| -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"type": ty, "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]},
        }))
        .unwrap()
    };
    svcs.create(&PostParams::default(), &svc("flip", "ClusterIP"))
        .await
        .unwrap();
    let patches = (0..24).map(|i| {
        let svcs = svcs.clone();
        async move {
            let ty = if i % 2 == 0 { "NodePort" } else { "ClusterIP" };
            let p = json!({"metadata": {"labels": {format!("k{i}"): "v"}}, "spec": {"type": ty}});
            svcs.patch("flip", &PatchParams::default(), &Patch::Merge(&p))
                .await
        }
    });
    for r in futures::future::join_all(patches).await {
        r.unwrap();
    }
    let flip = svcs.get("flip").await.unwrap();
    assert_eq!(flip.metadata.labels.unwrap().len(), 24);
    svcs.delete("flip", &DeleteParams::default()).await.unwrap();
    // All 60 ports are free again: 30 Services of two node ports each fit.
    for i in 0..30 {
        let made = svcs
            .create(&PostParams::default(), &svc(&format!("np-{i}"), "NodePort"))
            .await
            .unwrap_or_else(|e| panic!("service {i}: {e}"));
        let ports = made.spec.unwrap().ports.unwrap();
        assert!(ports.iter().all(|p| p.node_port.is_some()));
    }
}

/// A client of the cluster `c` that trusts nothing and sends no credentials, or,
/// with `token`, trusts the cluster CA and sends that bearer token.
async fn client_as(c: &Cluster, token: Option<&str>) -> kube::Client {
    let url: http::Uri = format!("https://127.0.0.1:{}", c.port).parse().unwrap();
    let Some(token) = token else {
        let mut config = kube::Config::new(url);
        config.accept_invalid_certs = true;
        return kube::Client::try_from(config).unwrap();
    };
    let admin = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let admin = kube::config::Kubeconfig::from_yaml(&admin).unwrap();
    let ca = admin.clusters[0]
        .cluster
        .as_ref()
        .unwrap()
        .certificate_authority_data
        .clone()
        .unwrap();
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n"
    );
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Who the server says a client is (SelfSubjectReview).
async fn whoami(client: &kube::Client) -> Result<serde_json::Value, kube::Error> {
    let req = http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(&json!({
                "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"
            }))
            .unwrap(),
        )
        .unwrap();
    client.request::<serde_json::Value>(req).await
}

/// What a joining node relies on: the server makes a join token on first start
/// (`<data-dir>/token`, `K10<CA hash>::<id>.<secret>`) and keeps it on restart;
/// `kube-public/cluster-info` is readable without credentials and carries the CA
/// the token's hash names, while nothing else is; the token's bootstrap part
/// authenticates as `system:bootstrap:<id>` in the bootstrappers' groups, and
/// bootstrap token Secrets follow upstream's rules (wrong secret, expired).
#[tokio::test]
async fn join_token_and_cluster_info() {
    use base64::Engine;
    let c = Cluster::start_with(&["--disable-scheduler", "--disable-controller-manager"]);
    let text = std::fs::read_to_string(c.dir.path().join("token")).unwrap();
    let (hash, bootstrap) = text
        .trim()
        .strip_prefix("K10")
        .and_then(|t| t.split_once("::"))
        .expect("K10<hash>::<token>");
    let (id, secret) = bootstrap.split_once('.').unwrap();
    assert_eq!((id.len(), secret.len()), (6, 16));

    let anonymous = client_as(&c, None).await;
    let public: Api<ConfigMap> = Api::namespaced(anonymous.clone(), "kube-public");
    let info = public.get("cluster-info").await.unwrap();
    let kc = kube::config::Kubeconfig::from_yaml(&info.data.unwrap()["kubeconfig"]).unwrap();
    let cluster = kc.clusters[0].cluster.clone().unwrap();
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster.certificate_authority_data.unwrap())
        .unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &ca);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, hash);
    assert!(cluster.server.unwrap().starts_with("https://"));
    // Nothing else is public.
    let (code, ..) = err_code(public.list(&Default::default()).await.unwrap_err());
    assert_eq!(code, 401);
    let (code, ..) = err_code(
        Api::<ConfigMap>::namespaced(anonymous, "kube-system")
            .get("cluster-info")
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 401);

    let who = whoami(&client_as(&c, Some(bootstrap)).await).await.unwrap();
    let info = &who["status"]["userInfo"];
    assert_eq!(info["username"], format!("system:bootstrap:{id}"));
    assert_eq!(
        info["groups"],
        json!([
            "system:bootstrappers",
            "system:bootstrappers:ferrokube:default-node-token",
            "system:authenticated"
        ])
    );
    let wrong = format!("{id}.{}", "0".repeat(16));
    let (code, ..) = err_code(
        whoami(&client_as(&c, Some(&wrong)).await)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 401);

    // A token of the admin's: valid until it expires.
    let admin = admin_client(&c).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(admin, "kube-system");
    for (tid, expiration) in [
        ("aaaaaa", "2099-01-01T00:00:00Z"),
        ("bbbbbb", "2001-01-01T00:00:00Z"),
    ] {
        let s = serde_json::from_value(json!({
            "metadata": {"name": format!("bootstrap-token-{tid}")},
            "type": "bootstrap.kubernetes.io/token",
            "stringData": {"token-id": tid, "token-secret": "0123456789abcdef",
                "usage-bootstrap-authentication": "true", "expiration": expiration},
        }))
        .unwrap();
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    let who = whoami(&client_as(&c, Some("aaaaaa.0123456789abcdef")).await)
        .await
        .unwrap();
    assert_eq!(
        who["status"]["userInfo"]["username"],
        "system:bootstrap:aaaaaa"
    );
    let (code, ..) = err_code(
        whoami(&client_as(&c, Some("bbbbbb.0123456789abcdef")).await)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 401);

    // The token stays across restarts.
    let dir = c.kill9();
    let c = Cluster::start_in(
        dir,
        &["--disable-scheduler", "--disable-controller-manager"],
    );
    assert_eq!(
        std::fs::read_to_string(c.dir.path().join("token")).unwrap(),
        text
    );
}

/// A data directory laid out by kubeadm with `encryptionAlgorithm: ECDSA-P384` keeps
/// its service account key: tokens are signed ES384, the server takes them back, and
/// the JWKS publishes the P-384 key.
#[tokio::test]
async fn a_p384_service_account_key_signs_tokens_the_server_takes() {
    use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("pki")).unwrap();
    let key = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
    std::fs::write(
        dir.path().join("pki").join(pki::sa::SA_KEY),
        pki::sa::to_pem("PRIVATE KEY", key.to_pkcs8v1().unwrap().as_ref()),
    )
    .unwrap();
    let c = Cluster::start_in(dir, &[]);
    let k = c.kubectl("1.33");
    // The default ServiceAccount comes from the controller manager.
    assert!(support::eventually(Duration::from_secs(30), || k
        .run(&["get", "serviceaccount", "default"])
        .status
        .success()));
    let token = k.ok(&["create", "token", "default"]).trim().to_string();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header: serde_json::Value =
        serde_json::from_slice(&b64.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES384");
    let who = whoami(&client_as(&c, Some(&token)).await).await.unwrap();
    assert_eq!(
        who["status"]["userInfo"]["username"],
        "system:serviceaccount:default:default"
    );
    let jwks: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "--raw", "/openid/v1/jwks"])).unwrap();
    let published = &jwks["keys"][0];
    assert_eq!(
        (&published["crv"], &published["alg"]),
        (&json!("P-384"), &json!("ES384"))
    );
}
