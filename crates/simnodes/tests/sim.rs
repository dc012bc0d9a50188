//! End-to-end tests of the simulated nodes against an in-process apiserver: node
//! registration and Leases, pods run to Running/Ready with addresses from the
//! node's podCIDR, the exit/fail/not-ready knobs, deletion with address reuse, and
//! a stopped heartbeat.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Container, Node, NodeSpec, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use simnodes::SimNodesConfig;
use testapi::TestApi;
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};

mod support;

use support::{
    assert_kubelet_labels, kubelet_port, last_exit, node_addresses, node_condition,
    node_conditions, running_since, terminated, NODE_CONDITIONS,
};

const WAIT: Duration = Duration::from_secs(20);

/// A running simulation; stops when dropped.
struct Sim {
    _api: TestApi,
    client: Client,
    task: JoinHandle<Result<(), simnodes::SimError>>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sim {
    /// Runs the simulated nodes of `config` against the apiserver `api`.
    fn spawn(api: TestApi, client: Client, config: SimNodesConfig) -> Sim {
        let task = tokio::spawn(simnodes::run(client.clone(), config));
        Sim {
            _api: api,
            client,
            task,
        }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), "kube-node-lease")
    }
}

fn config(count: usize) -> SimNodesConfig {
    SimNodesConfig {
        count,
        lease_seconds: 1,
        status_seconds: 2,
        ..Default::default()
    }
}

/// Starts an apiserver, runs `before` against it, then starts the simulation and
/// waits for its nodes to be Ready.
async fn start_with<F, Fut>(config: SimNodesConfig, before: F) -> Sim
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    // RUST_LOG=simnodes=debug shows what the nodes do.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let api = TestApi::start().await;
    let client = api.client().await;
    before(client.clone()).await;
    let names: Vec<String> = (0..config.count)
        .map(|i| format!("{}{i}", config.name_prefix))
        .collect();
    let sim = Sim::spawn(api, client, config);
    let nodes = sim.nodes();
    for name in names {
        eventually(&format!("node {name} Ready"), || async {
            let n = nodes.get_opt(&name).await.ok().flatten()?;
            ready_condition(&n).filter(|s| s == "True").map(|_| ())
        })
        .await;
    }
    sim
}

async fn start(config: SimNodesConfig) -> Sim {
    start_with(config, |_| async {}).await
}

fn ready_condition(n: &Node) -> Option<String> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

/// Polls `f` until it gives a value; fails the test after [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(what, WAIT, Duration::from_millis(50), f).await
}

/// Polls `f` every `every` until it gives a value; fails the test after `limit`.
async fn poll<T, F, Fut>(what: &str, limit: Duration, every: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(every).await;
    }
}

fn pod(name: &str, node: &str, policy: &str, annotations: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            annotations: (!annotations.is_empty()).then(|| {
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.to_string()),
            restart_policy: Some(policy.to_string()),
            containers: vec![Container {
                name: "main".into(),
                image: Some("registry.example/app:v1".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn create(sim: &Sim, p: &Pod) -> Pod {
    sim.pods().create(&PostParams::default(), p).await.unwrap()
}

/// Waits until pod `name` satisfies `check`, and returns it.
async fn wait_pod(sim: &Sim, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
    let pods = sim.pods();
    eventually(&format!("pod {name}: {what}"), || async {
        let p = pods.get_opt(name).await.ok().flatten()?;
        check(&p).then_some(p)
    })
    .await
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref()?.phase.as_deref()
}

fn pod_condition<'a>(p: &'a Pod, ty: &str) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == ty)
}

fn is_ready(p: &Pod) -> bool {
    pod_condition(p, "Ready").is_some_and(|c| c.status == "True")
}

fn main_status(p: &Pod) -> &k8s_openapi::api::core::v1::ContainerStatus {
    &p.status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
}

/// The restart count of the pod's first container, once reported.
fn main_restarts(p: &Pod) -> Option<i32> {
    Some(p.status.as_ref()?.container_statuses.as_ref()?[0].restart_count)
}

fn pod_ip(p: &Pod) -> String {
    p.status.as_ref().unwrap().pod_ip.clone().unwrap()
}

async fn annotate_pod(sim: &Sim, name: &str, key: &str, value: Option<&str>) {
    let patch = json!({ "metadata": { "annotations": { key: value } } });
    sim.pods()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn renew_time(sim: &Sim, node: &str) -> Timestamp {
    let lease = sim.leases().get(node).await.unwrap();
    lease.spec.unwrap().renew_time.unwrap().0
}

async fn lease_renewed_after(sim: &Sim, node: &str, t: Timestamp) -> Timestamp {
    let leases = sim.leases();
    eventually(&format!("lease {node} renewed"), || async {
        let l = leases.get(node).await.ok()?;
        let r = l.spec?.renew_time?.0;
        (r > t).then_some(r)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_register_ready_with_leases() {
    let mut c = config(3);
    c.cpu = "8".into();
    c.memory = "32Gi".into();
    c.pods = 50;
    c.labels = vec![("sim.test/pool".into(), "a".into())];
    c.taints = vec!["dedicated=sim:NoSchedule".parse().unwrap()];
    let sim = start(c).await;

    let node = sim.nodes().get("sim-node-1").await.unwrap();
    let labels = node.metadata.labels.clone().unwrap();
    assert_kubelet_labels(&labels, "sim-node-1");
    assert_eq!(labels["sim.test/pool"], "a");
    let taints = node.spec.clone().unwrap().taints.unwrap();
    assert_eq!(taints.len(), 1);
    assert_eq!(taints[0].key, "dedicated");
    assert_eq!(taints[0].value.as_deref(), Some("sim"));
    assert_eq!(taints[0].effect, "NoSchedule");

    let status = node.status.clone().unwrap();
    let expect: BTreeMap<String, Quantity> = [
        ("cpu", "8"),
        ("memory", "32Gi"),
        ("pods", "50"),
        ("ephemeral-storage", "100Gi"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
    .collect();
    assert_eq!(status.capacity.as_ref(), Some(&expect));
    assert_eq!(status.allocatable.as_ref(), Some(&expect));
    let conds = node_conditions(&status);
    for w in NODE_CONDITIONS {
        assert!(conds.contains(&w), "{w:?} in {conds:?}");
    }
    let addresses = node_addresses(&status);
    assert!(addresses.contains(&("InternalIP", "172.30.0.2")));
    assert!(addresses.contains(&("Hostname", "sim-node-1")));
    let info = status.node_info.clone().unwrap();
    assert_eq!(info.kubelet_version, "v1.33.0");
    assert_eq!(info.container_runtime_version, "sim://1.0");
    assert_eq!(info.operating_system, "linux");
    assert_eq!(info.architecture, "amd64");
    assert!(!info.machine_id.is_empty() && !info.system_uuid.is_empty());
    assert_eq!(kubelet_port(&status), 10250);

    for i in 0..3 {
        let name = format!("sim-node-{i}");
        let node = sim.nodes().get(&name).await.unwrap();
        let lease = sim.leases().get(&name).await.unwrap();
        let spec = lease.spec.clone().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some(name.as_str()));
        assert_eq!(spec.lease_duration_seconds, Some(40));
        let owners = lease.metadata.owner_references.unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].api_version, "v1");
        assert_eq!(owners[0].kind, "Node");
        assert_eq!(owners[0].name, name);
        assert_eq!(Some(&owners[0].uid), node.metadata.uid.as_ref());
        let first = spec.renew_time.unwrap().0;
        let later = lease_renewed_after(&sim, &name, first).await;
        lease_renewed_after(&sim, &name, later).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_run_with_addresses_from_the_pod_cidr() {
    // sim-node-1 exists beforehand with a podCIDR: it is taken over.
    let sim = start_with(config(2), |client| async move {
        let nodes: Api<Node> = Api::all(client);
        let node = Node {
            metadata: ObjectMeta {
                name: Some("sim-node-1".into()),
                labels: Some([("keep".to_string(), "me".to_string())].into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: Some("10.99.7.0/24".into()),
                pod_cidrs: Some(vec!["10.99.7.0/24".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        nodes.create(&PostParams::default(), &node).await.unwrap();
    })
    .await;
    let node1 = sim.nodes().get("sim-node-1").await.unwrap();
    let labels = node1.metadata.labels.unwrap();
    assert_eq!(labels["keep"], "me");
    assert_eq!(labels["kubernetes.io/hostname"], "sim-node-1");

    let mut p = pod("web", "sim-node-1", "Always", &[]);
    let spec = p.spec.as_mut().unwrap();
    let resources: BTreeMap<String, Quantity> = [("cpu", "100m"), ("memory", "64Mi")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect();
    let resources = ResourceRequirements {
        limits: Some(resources.clone()),
        requests: Some(resources),
        ..Default::default()
    };
    spec.containers[0].resources = Some(resources.clone());
    // Guaranteed needs limits on the init containers too.
    spec.init_containers = Some(vec![Container {
        name: "setup".into(),
        image: Some("busybox".into()),
        resources: Some(resources),
        ..Default::default()
    }]);
    let created = create(&sim, &p).await;
    let p = wait_pod(&sim, "web", "Running and Ready", |p| {
        phase(p) == Some("Running") && is_ready(p)
    })
    .await;
    let status = p.status.clone().unwrap();
    assert_eq!(status.pod_ip.as_deref(), Some("10.99.7.2"));
    assert_eq!(status.pod_ips.as_ref().unwrap()[0].ip, "10.99.7.2");
    assert_eq!(status.host_ip.as_deref(), Some("172.30.0.2"));
    assert_eq!(status.host_ips.as_ref().unwrap()[0].ip, "172.30.0.2");
    assert!(status.start_time.is_some());
    assert_eq!(status.qos_class.as_deref(), Some("Guaranteed"));
    for ty in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
        "PodScheduled",
    ] {
        let c = pod_condition(&p, ty).unwrap_or_else(|| panic!("condition {ty}"));
        assert_eq!(c.status, "True", "{ty}");
        assert!(c.last_transition_time.is_some(), "{ty}");
    }
    let main = main_status(&p);
    assert_eq!(main.name, "main");
    assert_eq!(main.image, "registry.example/app:v1");
    assert!(main.image_id.starts_with("registry.example/app@sha256:"));
    assert!(main.container_id.as_deref().unwrap().starts_with("sim://"));
    assert!(main.ready);
    assert_eq!(main.started, Some(true));
    assert_eq!(main.restart_count, 0);
    assert!(running_since(main).is_some());
    let done = terminated(&status.init_container_statuses.as_ref().unwrap()[0]);
    assert_eq!(done.exit_code, 0);
    assert_eq!(done.reason.as_deref(), Some("Completed"));
    assert_eq!(p.metadata.uid, created.metadata.uid);

    // Without spec.podCIDR: node 0's /24 from the base.
    create(&sim, &pod("a", "sim-node-0", "Always", &[])).await;
    let a = wait_pod(&sim, "a", "Running", |p| phase(p) == Some("Running")).await;
    assert_eq!(pod_ip(&a), "10.244.0.2");
    assert_eq!(
        a.status.as_ref().unwrap().qos_class.as_deref(),
        Some("BestEffort")
    );

    // hostNetwork pods get the node's address.
    let mut h = pod("host", "sim-node-0", "Always", &[]);
    h.spec.as_mut().unwrap().host_network = Some(true);
    create(&sim, &h).await;
    let h = wait_pod(&sim, "host", "Running", |p| phase(p) == Some("Running")).await;
    assert_eq!(pod_ip(&h), "172.30.0.1");

    // A podCIDR set later on is used for the pods that follow.
    let patch = json!({ "spec": { "podCIDR": "10.88.0.0/24", "podCIDRs": ["10.88.0.0/24"] } });
    sim.nodes()
        .patch("sim-node-0", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    sleep(Duration::from_secs(1)).await;
    create(&sim, &pod("b", "sim-node-0", "Always", &[])).await;
    let b = wait_pod(&sim, "b", "Running", |p| phase(p) == Some("Running")).await;
    assert_eq!(pod_ip(&b), "10.88.0.2");

    // Pods on other nodes are not touched.
    create(&sim, &pod("elsewhere", "real-node", "Always", &[])).await;
    sleep(Duration::from_secs(1)).await;
    let other = sim.pods().get("elsewhere").await.unwrap();
    assert_ne!(phase(&other), Some("Running"));
    assert!(other
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_ref())
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_after_ends_pods() {
    let sim = start(config(1)).await;
    let after = ("sim.ferrokube.io/exit-after", "500ms");
    create(&sim, &pod("ok", "sim-node-0", "Never", &[after])).await;
    create(
        &sim,
        &pod(
            "bad",
            "sim-node-0",
            "Never",
            &[after, ("sim.ferrokube.io/exit-code", "1")],
        ),
    )
    .await;
    create(&sim, &pod("once", "sim-node-0", "OnFailure", &[after])).await;

    let ok = wait_pod(&sim, "ok", "Succeeded", |p| phase(p) == Some("Succeeded")).await;
    let t = terminated(main_status(&ok));
    assert_eq!(t.exit_code, 0);
    assert_eq!(t.reason.as_deref(), Some("Completed"));
    assert!(t.finished_at.is_some() && t.started_at.is_some());
    assert!(!main_status(&ok).ready);
    let ready = pod_condition(&ok, "Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason.as_deref(), Some("PodCompleted"));

    let bad = wait_pod(&sim, "bad", "Failed", |p| phase(p) == Some("Failed")).await;
    let t = terminated(main_status(&bad));
    assert_eq!(t.exit_code, 1);
    assert_eq!(t.reason.as_deref(), Some("Error"));
    assert_eq!(
        pod_condition(&bad, "Ready").unwrap().reason.as_deref(),
        Some("PodFailed")
    );

    let once = wait_pod(&sim, "once", "Succeeded", |p| phase(p) == Some("Succeeded")).await;
    assert_eq!(main_status(&once).restart_count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_always_counts_restarts() {
    let sim = start(config(1)).await;
    create(
        &sim,
        &pod(
            "loop",
            "sim-node-0",
            "Always",
            &[("sim.ferrokube.io/exit-after", "300ms")],
        ),
    )
    .await;
    let p = wait_pod(&sim, "loop", "two restarts", |p| {
        main_restarts(p).is_some_and(|n| n >= 2)
    })
    .await;
    assert_eq!(phase(&p), Some("Running"));
    let c = main_status(&p);
    assert!(c.state.as_ref().unwrap().running.is_some());
    let last = last_exit(c);
    assert_eq!(last.exit_code, 0);
    assert_eq!(last.reason.as_deref(), Some("Completed"));
    assert!(last.started_at.is_some() && last.finished_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_annotation_ends_running_containers() {
    let sim = start(config(1)).await;
    create(&sim, &pod("never", "sim-node-0", "Never", &[])).await;
    create(&sim, &pod("always", "sim-node-0", "Always", &[])).await;
    for name in ["never", "always"] {
        wait_pod(&sim, name, "Running", |p| phase(p) == Some("Running")).await;
    }
    annotate_pod(&sim, "never", "sim.ferrokube.io/fail", Some("3")).await;
    annotate_pod(&sim, "always", "sim.ferrokube.io/fail", Some("2")).await;

    let never = wait_pod(&sim, "never", "Failed", |p| phase(p) == Some("Failed")).await;
    let t = terminated(main_status(&never));
    assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));

    let always = wait_pod(&sim, "always", "restarted", |p| main_restarts(p) == Some(1)).await;
    assert_eq!(phase(&always), Some("Running"));
    let last = last_exit(main_status(&always));
    assert_eq!((last.exit_code, last.reason.as_deref()), (2, Some("Error")));
    // The annotation acts once: no further restarts.
    sleep(Duration::from_millis(500)).await;
    let again = sim.pods().get("always").await.unwrap();
    assert_eq!(main_status(&again).restart_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_annotation_toggles_readiness() {
    let sim = start(config(1)).await;
    create(&sim, &pod("p", "sim-node-0", "Always", &[])).await;
    wait_pod(&sim, "p", "Ready", is_ready).await;
    annotate_pod(&sim, "p", "sim.ferrokube.io/not-ready", Some("true")).await;
    let p = wait_pod(&sim, "p", "not Ready", |p| {
        pod_condition(p, "Ready").is_some_and(|c| c.status == "False")
    })
    .await;
    assert_eq!(phase(&p), Some("Running"));
    for ty in ["Ready", "ContainersReady"] {
        let c = pod_condition(&p, ty).unwrap();
        assert_eq!(c.status, "False");
        assert_eq!(c.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            c.message.as_deref(),
            Some("containers with unready status: [main]")
        );
    }
    let main = main_status(&p);
    assert!(!main.ready);
    assert_eq!(main.started, Some(true));
    assert!(main.state.as_ref().unwrap().running.is_some());

    annotate_pod(&sim, "p", "sim.ferrokube.io/not-ready", None).await;
    let p = wait_pod(&sim, "p", "Ready again", is_ready).await;
    assert!(main_status(&p).ready);
    assert_eq!(pod_condition(&p, "ContainersReady").unwrap().status, "True");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_pods_go_at_once_and_free_their_address() {
    let sim = start(config(1)).await;
    create(&sim, &pod("a", "sim-node-0", "Always", &[])).await;
    let a = wait_pod(&sim, "a", "Running", |p| phase(p) == Some("Running")).await;
    create(&sim, &pod("b", "sim-node-0", "Always", &[])).await;
    let b = wait_pod(&sim, "b", "Running", |p| phase(p) == Some("Running")).await;
    let (ip_a, ip_b) = (pod_ip(&a), pod_ip(&b));
    assert_ne!(ip_a, ip_b);

    // A plain delete (30 s grace by default) is finished by the node at once.
    let started = Instant::now();
    sim.pods()
        .delete("a", &DeleteParams::default())
        .await
        .unwrap();
    let pods = sim.pods();
    eventually("pod a deleted", || async {
        pods.get_opt("a").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));

    create(&sim, &pod("c", "sim-node-0", "Always", &[])).await;
    let c = wait_pod(&sim, "c", "Running", |p| phase(p) == Some("Running")).await;
    assert_eq!(pod_ip(&c), ip_a);
    let b = sim.pods().get("b").await.unwrap();
    assert_eq!(pod_ip(&b), ip_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_heartbeat_freezes_the_node() {
    let sim = start(config(2)).await;
    let first = renew_time(&sim, "sim-node-0").await;
    lease_renewed_after(&sim, "sim-node-0", first).await;

    let stop =
        json!({ "metadata": { "annotations": { "sim.ferrokube.io/heartbeat": "stopped" } } });
    sim.nodes()
        .patch("sim-node-0", &PatchParams::default(), &Patch::Merge(&stop))
        .await
        .unwrap();
    // Let a renewal already under way land.
    sleep(Duration::from_millis(1500)).await;
    let frozen = renew_time(&sim, "sim-node-0").await;
    let other = renew_time(&sim, "sim-node-1").await;
    create(&sim, &pod("waits", "sim-node-0", "Always", &[])).await;
    // What the node lifecycle controller would write: left alone now.
    set_ready_unknown(&sim, "sim-node-0").await;
    sleep(Duration::from_millis(2500)).await;
    assert_eq!(renew_time(&sim, "sim-node-0").await, frozen);
    assert!(renew_time(&sim, "sim-node-1").await > other);
    let waiting = sim.pods().get("waits").await.unwrap();
    assert_ne!(phase(&waiting), Some("Running"));
    let node = sim.nodes().get("sim-node-0").await.unwrap();
    assert_eq!(ready_condition(&node).as_deref(), Some("Unknown"));

    let resume = json!({ "metadata": { "annotations": { "sim.ferrokube.io/heartbeat": null } } });
    sim.nodes()
        .patch(
            "sim-node-0",
            &PatchParams::default(),
            &Patch::Merge(&resume),
        )
        .await
        .unwrap();
    lease_renewed_after(&sim, "sim-node-0", frozen).await;
    wait_pod(&sim, "waits", "Running", |p| phase(p) == Some("Running")).await;
    wait_node_ready(&sim, "sim-node-0").await;
}

async fn set_ready_unknown(sim: &Sim, node: &str) {
    let patch = json!({ "status": { "conditions": [{
        "type": "Ready",
        "status": "Unknown",
        "reason": "NodeStatusUnknown",
        "message": "Kubelet stopped posting node status.",
    }] } });
    sim.nodes()
        .patch_status(node, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
}

async fn wait_node_ready(sim: &Sim, name: &str) {
    let nodes = sim.nodes();
    eventually(&format!("node {name} Ready"), || async {
        let n = nodes.get(name).await.ok()?;
        (ready_condition(&n).as_deref() == Some("True")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_node_status_is_reported_again_at_once() {
    let mut c = config(1);
    c.status_seconds = 3600;
    let sim = start(c).await;
    let before = sim.nodes().get("sim-node-0").await.unwrap();
    set_ready_unknown(&sim, "sim-node-0").await;
    let started = Instant::now();
    wait_node_ready(&sim, "sim-node-0").await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let after = sim.nodes().get("sim-node-0").await.unwrap();
    let ready = |n: &Node| node_condition(n.status.as_ref().unwrap(), "Ready").clone();
    assert_eq!(ready(&after).reason.as_deref(), Some("KubeletReady"));
    assert!(ready(&after).last_transition_time >= ready(&before).last_transition_time);
}

/// Many nodes: all register, keep their Leases and run pods. Slow in debug
/// builds: `SIM_SCALE_NODES=5000 cargo test --release -p simnodes -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn many_nodes() {
    let count: usize = std::env::var("SIM_SCALE_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let api = TestApi::start().await;
    let client = api.client().await;
    let mut c = config(count);
    c.lease_seconds = 10;
    c.status_seconds = 60;
    let started = Instant::now();
    let sim = Sim::spawn(api, client, c);
    let leases = sim.leases();
    let limit = Duration::from_secs(600);
    let n = poll("every lease", limit, Duration::from_secs(1), || async {
        let list = leases.list(&Default::default()).await.ok()?;
        (list.items.len() == count).then_some(list.items.len())
    })
    .await;
    eprintln!(
        "{n} nodes registered with leases in {:?}",
        started.elapsed()
    );
    let nodes = sim.nodes().list(&Default::default()).await.unwrap();
    assert!(nodes
        .items
        .iter()
        .all(|n| ready_condition(n).as_deref() == Some("True")));
    let last = format!("sim-node-{}", count - 1);
    for i in 0..20 {
        create(&sim, &pod(&format!("p{i}"), &last, "Always", &[])).await;
    }
    for i in 0..20 {
        wait_pod(&sim, &format!("p{i}"), "Running", |p| {
            phase(p) == Some("Running")
        })
        .await;
    }
    eprintln!("20 pods running after {:?}", started.elapsed());
    let first = renew_time(&sim, &last).await;
    lease_renewed_after(&sim, &last, first).await;
    // Steady state: every Lease renewed within about one interval.
    sleep(Duration::from_secs(12)).await;
    let list = leases.list(&Default::default()).await.unwrap();
    let now = Timestamp::now();
    let oldest = list
        .items
        .iter()
        .map(|l| now.duration_since(l.spec.as_ref().unwrap().renew_time.as_ref().unwrap().0))
        .max()
        .unwrap();
    eprintln!(
        "oldest lease renewal {oldest:?} ago; done in {:?}",
        started.elapsed()
    );
    assert!(oldest < k8s_openapi::jiff::SignedDuration::from_secs(20));
}
