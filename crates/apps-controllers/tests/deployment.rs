//! The Deployment controller, together with the ReplicaSet controller, against an
//! in-process apiserver. There is no kubelet: a stand-in marks pods Ready after a
//! delay (except pods whose image contains `broken`), and tests bind and finish pods
//! themselves where they need to.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use controllers::informer::{InformerFactory, Notification};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStrategy, ReplicaSet,
    ReplicaSetSpec, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use parking_lot::Mutex;
use serde_json::json;

mod support;
use support::{events_about, eventually, labels, pod_template, ready_status_patch, NS};

const WAIT: Duration = Duration::from_secs(60);
const HASH: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";

fn template(app: &str, image: &str) -> PodTemplateSpec {
    pod_template(labels(&[("app", app)]), image)
}

/// An orphan ReplicaSet selecting (and labelled) `app=<app>`.
fn replica_set(name: &str, app: &str, replicas: i32, image: &str) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            labels: Some(labels(&[("app", app)])),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", app)])),
                ..Default::default()
            },
            template: Some(template(app, image)),
            ..Default::default()
        }),
        status: None,
    }
}

fn rolling(surge: IntOrString, unavailable: IntOrString) -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(surge),
            max_unavailable: Some(unavailable),
        }),
    }
}

fn recreate() -> DeploymentStrategy {
    DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    }
}

fn deployment(name: &str, replicas: i32, image: &str, strategy: DeploymentStrategy) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", name)])),
                ..Default::default()
            },
            strategy: Some(strategy),
            template: template(name, image),
            ..Default::default()
        }),
        status: None,
    }
}

/// Marks pods Ready `delay` after first seeing them, except pods whose image contains
/// `broken`; stops when dropped.
struct Kubelet {
    task: tokio::task::JoinHandle<()>,
}

impl Kubelet {
    fn start(client: Client, delay: Duration) -> Kubelet {
        let task = tokio::spawn(async move {
            let api: Api<Pod> = Api::namespaced(client.clone(), NS);
            let mut first_seen: std::collections::HashMap<String, tokio::time::Instant> =
                Default::default();
            loop {
                if let Ok(list) = api.list(&ListParams::default()).await {
                    for p in list.items {
                        let name = p.metadata.name.clone().unwrap_or_default();
                        let uid = p.metadata.uid.clone().unwrap_or_default();
                        let broken = p.spec.as_ref().is_some_and(|s| {
                            s.containers
                                .iter()
                                .any(|c| c.image.as_deref().unwrap_or("").contains("broken"))
                        });
                        if broken || p.metadata.deletion_timestamp.is_some() || is_ready(&p) {
                            continue;
                        }
                        let seen = *first_seen
                            .entry(uid)
                            .or_insert_with(tokio::time::Instant::now);
                        if seen.elapsed() >= delay {
                            let patch = ready_status_patch();
                            let _ = api
                                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                                .await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Kubelet { task }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An apiserver with the Deployment and ReplicaSet controllers and a stand-in kubelet.
struct Cluster {
    base: support::Cluster,
    _kubelet: Kubelet,
}

impl std::ops::Deref for Cluster {
    type Target = support::Cluster;

    fn deref(&self) -> &support::Cluster {
        &self.base
    }
}

async fn cluster(ready_delay: Duration) -> Cluster {
    let base = support::cluster(&["deployment", "replicaset"]).await;
    Cluster {
        _kubelet: Kubelet::start(base.client.clone(), ready_delay),
        base,
    }
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn deployments(c: &Client) -> Api<Deployment> {
    Api::namespaced(c.clone(), NS)
}

fn replica_sets(c: &Client) -> Api<ReplicaSet> {
    Api::namespaced(c.clone(), NS)
}

async fn create(c: &Client, d: &Deployment) -> Deployment {
    deployments(c)
        .create(&PostParams::default(), d)
        .await
        .unwrap()
}

async fn create_rs(c: &Client, rs: &ReplicaSet) -> ReplicaSet {
    replica_sets(c)
        .create(&PostParams::default(), rs)
        .await
        .unwrap()
}

async fn get(c: &Client, name: &str) -> Deployment {
    deployments(c).get(name).await.unwrap()
}

/// Patches the Deployment `name`. The in-process apiserver can answer a patch that
/// races with another write with 409 Conflict (upstream re-applies the patch), so
/// conflicts are retried here.
async fn patch(c: &Client, name: &str, p: serde_json::Value) {
    patch_with(&deployments(c), name, Patch::Strategic(&p)).await;
}

async fn patch_with<K>(api: &Api<K>, name: &str, p: Patch<&serde_json::Value>)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for _ in 0..20 {
        match api.patch(name, &PatchParams::default(), &p).await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("patch {name}: {e}"),
        }
    }
    panic!("patch {name}: still conflicting");
}

async fn set_image(c: &Client, name: &str, image: &str) {
    patch(
        c,
        name,
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}),
    )
    .await;
}

/// The ReplicaSets controlled by the Deployment `name`, oldest first (creation times
/// have whole seconds: ties go by revision).
async fn owned_rs(c: &Client, name: &str) -> Vec<ReplicaSet> {
    let mut v: Vec<ReplicaSet> = replica_sets(c)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.controller == Some(true) && r.kind == "Deployment" && r.name == name)
        })
        .collect();
    v.sort_by_key(|rs| {
        let revision: i64 = annotation(rs, REVISION)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        (
            rs.metadata.creation_timestamp.clone().map(|t| t.0),
            revision,
        )
    });
    v
}

fn annotation(rs: &ReplicaSet, key: &str) -> Option<String> {
    rs.metadata.annotations.as_ref()?.get(key).cloned()
}

fn image_of(rs: &ReplicaSet) -> String {
    rs.spec
        .as_ref()
        .unwrap()
        .template
        .as_ref()
        .unwrap()
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap()
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().unwrap().replicas.unwrap()
}

fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

fn hash_of(rs: &ReplicaSet) -> String {
    rs.metadata.labels.as_ref().unwrap()[HASH].clone()
}

fn condition(d: &Deployment, type_: &str) -> Option<DeploymentCondition> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

fn reason(d: &Deployment, type_: &str) -> Option<String> {
    condition(d, type_).and_then(|c| c.reason)
}

/// Whether the rollout of `image` is complete, as `kubectl rollout status` judges it.
fn rolled_out(d: &Deployment) -> bool {
    let st = d.status.clone().unwrap_or_default();
    let want = d.spec.as_ref().unwrap().replicas.unwrap();
    d.metadata.generation <= st.observed_generation
        && st.updated_replicas.unwrap_or(0) == want
        && st.replicas.unwrap_or(0) == want
        && st.available_replicas.unwrap_or(0) == want
}

async fn wait_rolled_out(c: &Client, name: &str, image: &str) {
    eventually(&format!("{name} rolled out with {image}"), WAIT, || async {
        let d = get(c, name).await;
        let rss = owned_rs(c, name).await;
        rolled_out(&d)
            && reason(&d, "Progressing").as_deref() == Some("NewReplicaSetAvailable")
            && rss
                .iter()
                .all(|rs| (image_of(rs) == image) == (spec_replicas(rs) > 0))
    })
    .await;
}

async fn messages(c: &Client, object: &str, reason: &str) -> Vec<String> {
    events_about(c, object)
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.message)
        .collect()
}

async fn wait_event(c: &Client, object: &str, reason: &str, message: &str) {
    eventually(&format!("event {reason}: {message}"), WAIT, || async {
        messages(c, object, reason)
            .await
            .iter()
            .any(|m| m == message)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_owned_hashed_replica_set_and_becomes_available() {
    let c = cluster(Duration::ZERO).await;
    let d = create(
        &c.client,
        &deployment(
            "web",
            3,
            "nginx:1",
            rolling(
                IntOrString::String("25%".into()),
                IntOrString::String("25%".into()),
            ),
        ),
    )
    .await;
    let uid = d.metadata.uid.clone().unwrap();
    wait_rolled_out(&c.client, "web", "nginx:1").await;

    let rss = owned_rs(&c.client, "web").await;
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let hash = hash_of(rs);
    assert!(
        !hash.is_empty()
            && hash
                .chars()
                .all(|ch| "bcdfghjklmnpqrstvwxz2456789".contains(ch))
    );
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    let spec = rs.spec.as_ref().unwrap();
    assert_eq!(
        spec.selector.match_labels.clone().unwrap(),
        labels(&[("app", "web"), (HASH, &hash)])
    );
    assert_eq!(
        spec.template
            .as_ref()
            .unwrap()
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .clone()
            .unwrap(),
        labels(&[("app", "web"), (HASH, &hash)])
    );
    assert_eq!(
        rs.metadata.labels.clone().unwrap(),
        labels(&[("app", "web"), (HASH, &hash)])
    );
    let r = &rs.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (
            r.api_version.as_str(),
            r.kind.as_str(),
            r.name.as_str(),
            r.uid.as_str()
        ),
        ("apps/v1", "Deployment", "web", uid.as_str())
    );
    assert_eq!(
        (r.controller, r.block_owner_deletion),
        (Some(true), Some(true))
    );
    assert_eq!(annotation(rs, REVISION).as_deref(), Some("1"));
    assert_eq!(
        annotation(rs, "deployment.kubernetes.io/desired-replicas").as_deref(),
        Some("3")
    );
    // 25% of 3 rounds up to a surge of 1.
    assert_eq!(
        annotation(rs, "deployment.kubernetes.io/max-replicas").as_deref(),
        Some("4")
    );

    let pods: Vec<Pod> = Api::<Pod>::namespaced(c.client.clone(), NS)
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(pods.len(), 3);
    assert!(pods
        .iter()
        .all(|p| p.metadata.labels.as_ref().unwrap()[HASH] == hash));

    let d = get(&c.client, "web").await;
    assert_eq!(d.metadata.annotations.as_ref().unwrap()[REVISION], "1");
    let st = d.status.clone().unwrap();
    assert_eq!(st.observed_generation, d.metadata.generation);
    assert_eq!(
        (
            st.replicas,
            st.updated_replicas,
            st.ready_replicas,
            st.available_replicas,
            st.unavailable_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3), None)
    );
    let avail = condition(&d, "Available").unwrap();
    assert_eq!(
        (
            avail.status.as_str(),
            avail.reason.as_deref(),
            avail.message.as_deref()
        ),
        (
            "True",
            Some("MinimumReplicasAvailable"),
            Some("Deployment has minimum availability.")
        )
    );
    let prog = condition(&d, "Progressing").unwrap();
    let msg = format!("ReplicaSet \"web-{hash}\" has successfully progressed.");
    assert_eq!(
        (prog.status.as_str(), prog.message.as_deref()),
        ("True", Some(msg.as_str()))
    );

    wait_event(
        &c.client,
        "web",
        "ScalingReplicaSet",
        &format!("Scaled up replica set web-{hash} from 0 to 3"),
    )
    .await;
    let e = events_about(&c.client, "web")
        .await
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("ScalingReplicaSet"))
        .unwrap();
    assert_eq!(e.type_.as_deref(), Some("Normal"));
    assert_eq!(
        e.source.unwrap().component.as_deref(),
        Some("deployment-controller")
    );
    assert_eq!(e.involved_object.kind.as_deref(), Some("Deployment"));
}

/// Watches ReplicaSets and pods of `app` and records every observed state that breaks
/// the rolling-update bounds: more than `max_total` replicas in the ReplicaSets' specs,
/// or fewer than `min_ready` ready pods (once `armed`).
struct Observer {
    violations: Arc<Mutex<Vec<String>>>,
    max_total_seen: Arc<Mutex<i32>>,
    armed: Arc<std::sync::atomic::AtomicBool>,
    _informers: InformerFactory,
    _regs: Vec<controllers::informer::HandlerRegistration>,
}

impl Observer {
    async fn start(client: &Client, app: &str, max_total: i32, min_ready: usize) -> Observer {
        let informers = InformerFactory::new(client.clone());
        let rs_inf = informers.informer::<ReplicaSet>();
        let pod_inf = informers.informer::<Pod>();
        let violations: Arc<Mutex<Vec<String>>> = Arc::default();
        let max_total_seen: Arc<Mutex<i32>> = Arc::default();
        let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (v, m, store, app_s) = (
            violations.clone(),
            max_total_seen.clone(),
            rs_inf.store(),
            app.to_string(),
        );
        let rs_reg = rs_inf.add_handler(move |_| {
            let total: i32 = store
                .list()
                .iter()
                .filter(|rs| {
                    rs.metadata
                        .labels
                        .as_ref()
                        .is_some_and(|l| l.get("app") == Some(&app_s))
                })
                .map(|rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0))
                .sum();
            let mut seen = m.lock();
            *seen = (*seen).max(total);
            if total > max_total {
                v.lock()
                    .push(format!("{total} replicas in ReplicaSet specs"));
            }
        });
        let (v, a, store, app_s) = (
            violations.clone(),
            armed.clone(),
            pod_inf.store(),
            app.to_string(),
        );
        let pod_reg = pod_inf.add_handler(move |_| {
            if !a.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let ready = store
                .list()
                .iter()
                .filter(|p| {
                    p.metadata
                        .labels
                        .as_ref()
                        .is_some_and(|l| l.get("app") == Some(&app_s))
                })
                .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
                .count();
            if ready < min_ready {
                v.lock().push(format!("only {ready} ready pods"));
            }
        });
        informers.start();
        rs_inf.wait_synced().await;
        pod_inf.wait_synced().await;
        Observer {
            violations,
            max_total_seen,
            armed,
            _informers: informers,
            _regs: vec![rs_reg, pod_reg],
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_stays_within_surge_and_unavailability() {
    let c = cluster(Duration::from_millis(400)).await;
    create(
        &c.client,
        &deployment(
            "web",
            4,
            "nginx:1",
            rolling(IntOrString::Int(1), IntOrString::Int(1)),
        ),
    )
    .await;
    wait_rolled_out(&c.client, "web", "nginx:1").await;
    let obs = Observer::start(&c.client, "web", 5, 3).await;
    obs.armed.store(true, std::sync::atomic::Ordering::SeqCst);

    set_image(&c.client, "web", "nginx:2").await;
    wait_rolled_out(&c.client, "web", "nginx:2").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(*obs.violations.lock(), Vec::<String>::new());
    assert_eq!(*obs.max_total_seen.lock(), 5, "the surge was used");

    let rss = owned_rs(&c.client, "web").await;
    assert_eq!(rss.len(), 2);
    let (old, new) = (&rss[0], &rss[1]);
    assert_eq!(
        (image_of(old), spec_replicas(old)),
        ("nginx:1".to_string(), 0)
    );
    assert_eq!(
        (image_of(new), spec_replicas(new), available(new)),
        ("nginx:2".to_string(), 4, 4)
    );
    assert_eq!(annotation(old, REVISION).as_deref(), Some("1"));
    assert_eq!(annotation(new, REVISION).as_deref(), Some("2"));
    assert_ne!(hash_of(old), hash_of(new));
    let d = get(&c.client, "web").await;
    assert_eq!(d.metadata.annotations.as_ref().unwrap()[REVISION], "2");
    eventually("old ReplicaSet status 0", WAIT, || async {
        owned_rs(&c.client, "web").await[0]
            .status
            .as_ref()
            .is_some_and(|s| s.replicas == 0)
    })
    .await;

    let (o, n) = (
        old.metadata.name.clone().unwrap(),
        new.metadata.name.clone().unwrap(),
    );
    for m in [
        format!("Scaled up replica set {n} from 0 to 1"),
        format!("Scaled down replica set {o} from 4 to 3"),
        format!("Scaled down replica set {o} from 1 to 0"),
    ] {
        wait_event(&c.client, "web", "ScalingReplicaSet", &m).await;
    }
    let prog = condition(&d, "Progressing").unwrap();
    assert_eq!(
        prog.message,
        Some(format!("ReplicaSet \"{n}\" has successfully progressed."))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_reuses_the_old_replica_set_under_a_new_revision() {
    let c = cluster(Duration::ZERO).await;
    let mut d = deployment(
        "web",
        3,
        "nginx:1",
        rolling(IntOrString::Int(1), IntOrString::Int(0)),
    );
    d.metadata.annotations = Some(labels(&[("kubernetes.io/change-cause", "create")]));
    create(&c.client, &d).await;
    wait_rolled_out(&c.client, "web", "nginx:1").await;
    patch(
        &c.client,
        "web",
        json!({"metadata": {"annotations": {"kubernetes.io/change-cause": "update"}},
               "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}}),
    )
    .await;
    wait_rolled_out(&c.client, "web", "nginx:2").await;
    let before = owned_rs(&c.client, "web").await;
    assert_eq!(before.len(), 2);
    let first = before
        .iter()
        .find(|rs| annotation(rs, REVISION).as_deref() == Some("1"))
        .unwrap()
        .clone();
    assert_eq!(
        annotation(&first, "kubernetes.io/change-cause").as_deref(),
        Some("create")
    );

    // What `kubectl rollout undo --to-revision=1` changes: the template becomes the
    // old one without the hash label, and the annotations become the old ReplicaSet's
    // over the Deployment's own `deployment.kubernetes.io/` ones (kubectl sends a JSON
    // patch; a merge patch with the same effect here).
    let mut t = first.spec.clone().unwrap().template.unwrap();
    t.metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .remove(HASH);
    let current = get(&c.client, "web").await;
    let mut annotations = serde_json::Map::new();
    for k in current.metadata.annotations.clone().unwrap().keys() {
        annotations.insert(k.clone(), serde_json::Value::Null);
    }
    for (k, v) in current.metadata.annotations.clone().unwrap() {
        if k.starts_with("deployment.kubernetes.io/") {
            annotations.insert(k, json!(v));
        }
    }
    for (k, v) in first.metadata.annotations.clone().unwrap() {
        if !k.starts_with("deployment.kubernetes.io/") {
            annotations.insert(k, json!(v));
        }
    }
    let undo = json!({"metadata": {"annotations": annotations}, "spec": {"template": t}});
    patch_with(&deployments(&c.client), "web", Patch::Merge(&undo)).await;

    wait_rolled_out(&c.client, "web", "nginx:1").await;
    let after = owned_rs(&c.client, "web").await;
    assert_eq!(after.len(), 2, "no third ReplicaSet");
    let reused = after
        .iter()
        .find(|rs| rs.metadata.uid == first.metadata.uid)
        .unwrap();
    assert_eq!(annotation(reused, REVISION).as_deref(), Some("3"));
    assert_eq!(
        annotation(reused, "deployment.kubernetes.io/revision-history").as_deref(),
        Some("1")
    );
    assert_eq!(
        annotation(reused, "kubernetes.io/change-cause").as_deref(),
        Some("create")
    );
    assert_eq!((spec_replicas(reused), available(reused)), (3, 3));
    let d = get(&c.client, "web").await;
    assert_eq!(d.metadata.annotations.as_ref().unwrap()[REVISION], "3");
    assert_eq!(
        d.metadata.annotations.as_ref().unwrap()["kubernetes.io/change-cause"],
        "create"
    );

    // The server-side form (the annotation the removed spec.rollbackTo maps to):
    // revision 0 means the previous one, here 2.
    patch(
        &c.client,
        "web",
        json!({"metadata": {"annotations": {"deprecated.deployment.rollback.to": "0"}}}),
    )
    .await;
    wait_event(
        &c.client,
        "web",
        "DeploymentRollback",
        "Rolled back deployment \"web\" to revision 2",
    )
    .await;
    wait_rolled_out(&c.client, "web", "nginx:2").await;
    let d = get(&c.client, "web").await;
    assert!(!d
        .metadata
        .annotations
        .as_ref()
        .unwrap()
        .contains_key("deprecated.deployment.rollback.to"));
    assert_eq!(d.metadata.annotations.as_ref().unwrap()[REVISION], "4");
    assert_eq!(
        d.metadata.annotations.as_ref().unwrap()["kubernetes.io/change-cause"],
        "update"
    );
    let rss = owned_rs(&c.client, "web").await;
    assert_eq!(rss.len(), 2);
    let second = rss.iter().find(|rs| image_of(rs) == "nginx:2").unwrap();
    assert_eq!(annotation(second, REVISION).as_deref(), Some("4"));
    assert_eq!(
        annotation(second, "deployment.kubernetes.io/revision-history").as_deref(),
        Some("2")
    );

    // A revision that does not exist: a warning, and the request is dropped.
    patch(
        &c.client,
        "web",
        json!({"metadata": {"annotations": {"deprecated.deployment.rollback.to": "9"}}}),
    )
    .await;
    wait_event(
        &c.client,
        "web",
        "DeploymentRollbackRevisionNotFound",
        "Unable to find the revision to rollback to.",
    )
    .await;
    eventually("rollback request cleared", WAIT, || async {
        !get(&c.client, "web")
            .await
            .metadata
            .annotations
            .unwrap()
            .contains_key("deprecated.deployment.rollback.to")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_deployment_scales_but_does_not_roll_out_until_resumed() {
    let c = cluster(Duration::ZERO).await;
    create(
        &c.client,
        &deployment(
            "web",
            2,
            "nginx:1",
            rolling(IntOrString::Int(1), IntOrString::Int(0)),
        ),
    )
    .await;
    wait_rolled_out(&c.client, "web", "nginx:1").await;

    patch(&c.client, "web", json!({"spec": {"paused": true}})).await;
    eventually("Progressing DeploymentPaused", WAIT, || async {
        let d = get(&c.client, "web").await;
        condition(&d, "Progressing").is_some_and(|p| {
            p.status == "Unknown"
                && p.reason.as_deref() == Some("DeploymentPaused")
                && p.message.as_deref() == Some("Deployment is paused")
        })
    })
    .await;
    set_image(&c.client, "web", "nginx:2").await;
    eventually("template change observed", WAIT, || async {
        let d = get(&c.client, "web").await;
        d.metadata.generation == d.status.unwrap().observed_generation
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = owned_rs(&c.client, "web").await;
    assert_eq!(rss.len(), 1, "no rollout while paused");
    let old_name = rss[0].metadata.name.clone().unwrap();

    // Scaling still works while paused.
    patch(&c.client, "web", json!({"spec": {"replicas": 3}})).await;
    wait_event(
        &c.client,
        "web",
        "ScalingReplicaSet",
        &format!("Scaled up replica set {old_name} from 2 to 3"),
    )
    .await;
    eventually("3 available while paused", WAIT, || async {
        let d = get(&c.client, "web").await;
        d.status.unwrap().available_replicas == Some(3)
    })
    .await;
    assert_eq!(owned_rs(&c.client, "web").await.len(), 1);

    patch(&c.client, "web", json!({"spec": {"paused": false}})).await;
    wait_rolled_out(&c.client, "web", "nginx:2").await;
    let rss = owned_rs(&c.client, "web").await;
    assert_eq!(rss.len(), 2);
    assert_eq!(spec_replicas(&rss[1]), 3);
    assert_eq!(annotation(&rss[1], REVISION).as_deref(), Some("2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_never_runs_old_and_new_pods_together() {
    let c = cluster(Duration::ZERO).await;
    create(&c.client, &deployment("web", 3, "nginx:1", recreate())).await;
    wait_rolled_out(&c.client, "web", "nginx:1").await;
    let old_rs = owned_rs(&c.client, "web").await.remove(0);
    let old_hash = hash_of(&old_rs);

    // Watch every pod state: old and new pods (terminating ones too) never coexist.
    let informers = InformerFactory::new(c.client.clone());
    let pods_inf = informers.informer::<Pod>();
    let store = pods_inf.store();
    let mixed: Arc<Mutex<Vec<String>>> = Arc::default();
    let m = mixed.clone();
    let _reg = pods_inf.add_handler(move |n| {
        if matches!(n, Notification::Deleted(_)) {
            return;
        }
        let hashes: HashSet<String> = store
            .list()
            .iter()
            .filter_map(|p| p.metadata.labels.as_ref()?.get(HASH).cloned())
            .collect();
        if hashes.len() > 1 {
            m.lock().push(format!("{hashes:?}"));
        }
    });
    informers.start();
    pods_inf.wait_synced().await;

    // Bound pods are deleted gracefully: they stay until their "kubelet" finishes them.
    let pod_api: Api<Pod> = Api::namespaced(c.client.clone(), NS);
    let old_pods: Vec<String> = pod_api
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    for p in &old_pods {
        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": p},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}});
        let _: serde_json::Value = pod_api
            .create_subresource("binding", p, &PostParams::default(), &binding)
            .await
            .unwrap();
    }

    set_image(&c.client, "web", "nginx:2").await;
    eventually("old pods terminating", WAIT, || async {
        let pods = pod_api
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items;
        pods.len() == 3 && pods.iter().all(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        owned_rs(&c.client, "web").await.len(),
        1,
        "no new ReplicaSet while old pods run"
    );

    for p in &old_pods {
        pod_api
            .delete(p, &DeleteParams::default().grace_period(0))
            .await
            .unwrap();
    }
    wait_rolled_out(&c.client, "web", "nginx:2").await;
    let rss = owned_rs(&c.client, "web").await;
    assert_eq!(rss.len(), 2);
    let new_rs = &rss[1];
    assert_ne!(hash_of(new_rs), old_hash);
    assert_eq!(mixed.lock().clone(), Vec::<String>::new());
    let (o, n) = (
        old_rs.metadata.name.unwrap(),
        new_rs.metadata.name.clone().unwrap(),
    );
    wait_event(
        &c.client,
        "web",
        "ScalingReplicaSet",
        &format!("Scaled down replica set {o} from 3 to 0"),
    )
    .await;
    wait_event(
        &c.client,
        "web",
        "ScalingReplicaSet",
        &format!("Scaled up replica set {n} from 0 to 3"),
    )
    .await;
    // The new ReplicaSet is sized for Recreate: no surge.
    assert_eq!(
        annotation(new_rs, "deployment.kubernetes.io/max-replicas").as_deref(),
        Some("3")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_mid_rollout_is_proportional() {
    let c = cluster(Duration::ZERO).await;
    create(
        &c.client,
        &deployment(
            "web",
            10,
            "nginx:1",
            rolling(IntOrString::Int(3), IntOrString::Int(2)),
        ),
    )
    .await;
    wait_rolled_out(&c.client, "web", "nginx:1").await;

    // The new image never becomes ready: the rollout stops at 8 old + 5 new.
    set_image(&c.client, "web", "nginx:broken").await;
    let sizes = || async {
        owned_rs(&c.client, "web")
            .await
            .iter()
            .map(|rs| (image_of(rs), spec_replicas(rs)))
            .collect::<Vec<_>>()
    };
    eventually("stuck at 8 + 5", WAIT, || async {
        sizes().await == [("nginx:1".to_string(), 8), ("nginx:broken".to_string(), 5)]
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sizes().await,
        [("nginx:1".to_string(), 8), ("nginx:broken".to_string(), 5)]
    );

    // 15 replicas: 5 more pods (18 allowed with the surge), shared 3 + 2.
    patch(&c.client, "web", json!({"spec": {"replicas": 15}})).await;
    eventually("11 + 7", WAIT, || async {
        sizes().await == [("nginx:1".to_string(), 11), ("nginx:broken".to_string(), 7)]
    })
    .await;
    let rss = owned_rs(&c.client, "web").await;
    for rs in &rss {
        assert_eq!(
            annotation(rs, "deployment.kubernetes.io/desired-replicas").as_deref(),
            Some("15")
        );
        assert_eq!(
            annotation(rs, "deployment.kubernetes.io/max-replicas").as_deref(),
            Some("18")
        );
    }
    let (o, n) = (
        rss[0].metadata.name.clone().unwrap(),
        rss[1].metadata.name.clone().unwrap(),
    );
    wait_event(
        &c.client,
        "web",
        "ScalingReplicaSet",
        &format!("Scaled up replica set {o} from 8 to 11"),
    )
    .await;
    wait_event(
        &c.client,
        "web",
        "ScalingReplicaSet",
        &format!("Scaled up replica set {n} from 5 to 7"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sizes().await,
        [("nginx:1".to_string(), 11), ("nginx:broken".to_string(), 7)]
    );

    // Scaling down mid-rollout: 18 → 6 allowed (3 replicas + 3 surge), taken in
    // proportion: 11 * 6 / 18 = 3.67 → 4 and 7 * 6 / 18 = 2.33 → 2.
    patch(&c.client, "web", json!({"spec": {"replicas": 3}})).await;
    wait_event(
        &c.client,
        "web",
        "ScalingReplicaSet",
        &format!("Scaled down replica set {o} from 11 to 4"),
    )
    .await;
    wait_event(
        &c.client,
        "web",
        "ScalingReplicaSet",
        &format!("Scaled down replica set {n} from 7 to 2"),
    )
    .await;
    // Then the rollout goes on: 3 old pods may go (only 1 must stay available), and
    // the new ReplicaSet grows to 3 within the surge.
    eventually("old 1, new 3", WAIT, || async {
        sizes().await == [("nginx:1".to_string(), 1), ("nginx:broken".to_string(), 3)]
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sizes().await,
        [("nginx:1".to_string(), 1), ("nginx:broken".to_string(), 3)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_history_limit_deletes_oldest_idle_replica_sets() {
    let c = cluster(Duration::ZERO).await;
    let mut d = deployment(
        "web",
        1,
        "nginx:1",
        rolling(IntOrString::Int(1), IntOrString::Int(0)),
    );
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    create(&c.client, &d).await;
    wait_rolled_out(&c.client, "web", "nginx:1").await;
    for v in 2..=4 {
        let image = format!("nginx:{v}");
        set_image(&c.client, "web", &image).await;
        wait_rolled_out(&c.client, "web", &image).await;
    }
    eventually("one old ReplicaSet kept", WAIT, || async {
        owned_rs(&c.client, "web").await.len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = owned_rs(&c.client, "web").await;
    let kept: Vec<(String, Option<String>)> = rss
        .iter()
        .map(|rs| (image_of(rs), annotation(rs, REVISION)))
        .collect();
    assert_eq!(
        kept,
        [
            ("nginx:3".to_string(), Some("3".to_string())),
            ("nginx:4".to_string(), Some("4".to_string()))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_deadline_exceeded_when_pods_never_become_ready() {
    let c = cluster(Duration::ZERO).await;
    let mut d = deployment(
        "web",
        2,
        "nginx:broken",
        rolling(
            IntOrString::String("25%".into()),
            IntOrString::String("25%".into()),
        ),
    );
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(3);
    create(&c.client, &d).await;
    eventually(
        "ProgressDeadlineExceeded",
        Duration::from_secs(30),
        || async {
            let d = get(&c.client, "web").await;
            condition(&d, "Progressing").is_some_and(|p| p.status == "False")
        },
    )
    .await;
    let d = get(&c.client, "web").await;
    let rs = owned_rs(&c.client, "web").await.remove(0);
    let prog = condition(&d, "Progressing").unwrap();
    assert_eq!(prog.reason.as_deref(), Some("ProgressDeadlineExceeded"));
    assert_eq!(
        prog.message,
        Some(format!(
            "ReplicaSet \"{}\" has timed out progressing.",
            rs.metadata.name.unwrap()
        ))
    );
    let avail = condition(&d, "Available").unwrap();
    assert_eq!(
        (
            avail.status.as_str(),
            avail.reason.as_deref(),
            avail.message.as_deref()
        ),
        (
            "False",
            Some("MinimumReplicasUnavailable"),
            Some("Deployment does not have minimum availability.")
        )
    );
    let st = d.status.unwrap();
    assert_eq!(
        (
            st.replicas,
            st.updated_replicas,
            st.unavailable_replicas,
            st.available_replicas
        ),
        (Some(2), Some(2), Some(2), None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_replica_sets_are_adopted_and_mismatching_ones_released() {
    let c = cluster(Duration::ZERO).await;
    // An orphan with the Deployment's template: adopted and used as its new ReplicaSet.
    let orphan = replica_set("orphan", "web", 1, "nginx:1");
    create_rs(&c.client, &orphan).await;
    let d = create(
        &c.client,
        &deployment(
            "web",
            2,
            "nginx:1",
            rolling(IntOrString::Int(1), IntOrString::Int(0)),
        ),
    )
    .await;
    wait_rolled_out(&c.client, "web", "nginx:1").await;
    let rss = owned_rs(&c.client, "web").await;
    assert_eq!(rss.len(), 1, "the orphan is the new ReplicaSet");
    assert_eq!(rss[0].metadata.name.as_deref(), Some("orphan"));
    assert_eq!(
        rss[0].metadata.owner_references.as_ref().unwrap()[0].uid,
        d.metadata.uid.clone().unwrap()
    );
    assert_eq!(annotation(&rss[0], REVISION).as_deref(), Some("1"));
    assert_eq!(spec_replicas(&rss[0]), 2);

    // Relabelled out of the selector: released.
    let relabel = json!({"metadata": {"labels": {"app": "elsewhere"}}});
    patch_with(&replica_sets(&c.client), "orphan", Patch::Merge(&relabel)).await;
    eventually("released", WAIT, || async {
        replica_sets(&c.client)
            .get("orphan")
            .await
            .unwrap()
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_collision_bumps_collision_count() {
    let c = cluster(Duration::ZERO).await;
    let mut d = deployment(
        "web",
        1,
        "nginx:1",
        rolling(IntOrString::Int(1), IntOrString::Int(0)),
    );
    d.spec.as_mut().unwrap().paused = Some(true);
    create(&c.client, &d).await;
    // The template as the API server defaulted it is what the controller hashes.
    let defaulted = get(&c.client, "web").await.spec.unwrap().template;
    let taken = apps_controllers::deployment::util::compute_hash(&defaulted, None);
    let mut squatter = replica_set(&format!("web-{taken}"), "other", 0, "nginx:1");
    squatter.metadata.annotations = None;
    create_rs(&c.client, &squatter).await;

    patch(&c.client, "web", json!({"spec": {"paused": false}})).await;
    wait_rolled_out(&c.client, "web", "nginx:1").await;
    let d = get(&c.client, "web").await;
    assert_eq!(d.status.unwrap().collision_count, Some(1));
    let rss = owned_rs(&c.client, "web").await;
    assert_eq!(rss.len(), 1);
    let expected = apps_controllers::deployment::util::compute_hash(&defaulted, Some(1));
    assert_ne!(expected, taken);
    assert_eq!(rss[0].metadata.name, Some(format!("web-{expected}")));
    assert_eq!(hash_of(&rss[0]), expected);
}

/// Runs kubectl (`$KUBECTL`, else `kubectl` from PATH) with the test kubeconfig.
async fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_string());
    let mut all: Vec<String> = vec!["--kubeconfig".into(), kubeconfig.display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(bin).args(&all).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs the real kubectl ($KUBECTL or from PATH)"]
async fn kubectl_rollout_commands() {
    let c = cluster(Duration::ZERO).await;
    let kc = c.api.kubeconfig.clone();
    let ok = |r: (bool, String, String)| {
        assert!(r.0, "kubectl failed: {}", r.2);
        r.1
    };
    let mut d = deployment(
        "web",
        2,
        "nginx:1",
        rolling(
            IntOrString::String("25%".into()),
            IntOrString::String("25%".into()),
        ),
    );
    d.metadata.annotations = Some(labels(&[("kubernetes.io/change-cause", "create")]));
    create(&c.client, &d).await;
    let status = ok(kubectl(
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    )
    .await);
    assert!(
        status.ends_with("deployment \"web\" successfully rolled out\n"),
        "{status}"
    );

    ok(kubectl(&kc, &["set", "image", "deployment/web", "c=nginx:2"]).await);
    ok(kubectl(
        &kc,
        &[
            "annotate",
            "deployment/web",
            "kubernetes.io/change-cause=update",
            "--overwrite",
        ],
    )
    .await);
    let status = ok(kubectl(
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    )
    .await);
    assert!(
        status.ends_with("deployment \"web\" successfully rolled out\n"),
        "{status}"
    );
    eventually(
        "change-cause copied to the new ReplicaSet",
        WAIT,
        || async {
            owned_rs(&c.client, "web")
                .await
                .iter()
                .any(|rs| annotation(rs, "kubernetes.io/change-cause").as_deref() == Some("update"))
        },
    )
    .await;
    let history = ok(kubectl(&kc, &["rollout", "history", "deployment/web"]).await);
    assert_eq!(
        history,
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         create\n2         update\n\n"
    );

    let undo = ok(kubectl(&kc, &["rollout", "undo", "deployment/web"]).await);
    assert_eq!(undo, "deployment.apps/web rolled back\n");
    let status = ok(kubectl(
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    )
    .await);
    assert!(
        status.ends_with("deployment \"web\" successfully rolled out\n"),
        "{status}"
    );
    wait_rolled_out(&c.client, "web", "nginx:1").await;
    let history = ok(kubectl(&kc, &["rollout", "history", "deployment/web"]).await);
    assert_eq!(
        history,
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n2         update\n3         create\n\n"
    );

    assert_eq!(
        ok(kubectl(&kc, &["rollout", "pause", "deployment/web"]).await),
        "deployment.apps/web paused\n"
    );
    ok(kubectl(&kc, &["set", "image", "deployment/web", "c=nginx:3"]).await);
    let refused = kubectl(&kc, &["rollout", "undo", "deployment/web"]).await;
    assert!(!refused.0);
    assert!(refused.2.contains("you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again"), "{}", refused.2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        owned_rs(&c.client, "web").await.len(),
        2,
        "paused: no new ReplicaSet"
    );
    assert_eq!(
        ok(kubectl(&kc, &["rollout", "resume", "deployment/web"]).await),
        "deployment.apps/web resumed\n"
    );
    let status = ok(kubectl(
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    )
    .await);
    assert!(
        status.ends_with("deployment \"web\" successfully rolled out\n"),
        "{status}"
    );

    assert_eq!(
        ok(kubectl(&kc, &["rollout", "restart", "deployment/web"]).await),
        "deployment.apps/web restarted\n"
    );
    let status = ok(kubectl(
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    )
    .await);
    assert!(
        status.ends_with("deployment \"web\" successfully rolled out\n"),
        "{status}"
    );
    let rss = owned_rs(&c.client, "web").await;
    assert_eq!(rss.len(), 4);
    let mut revisions: Vec<(i64, String)> = rss
        .iter()
        .map(|rs| {
            (
                annotation(rs, REVISION).unwrap().parse().unwrap(),
                image_of(rs),
            )
        })
        .collect();
    revisions.sort();
    assert_eq!(
        revisions,
        [
            (2, "nginx:2".to_string()),
            (3, "nginx:1".to_string()),
            (4, "nginx:3".to_string()),
            (5, "nginx:3".to_string())
        ]
    );
}
