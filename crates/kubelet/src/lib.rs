//! ferrokube's kubelet: the node agent that makes pods run as real containers.
//!
//! [`run`] registers the Node (capacity from the machine, nodeInfo, conditions),
//! keeps its Lease and status fresh, imports the image archives of the import
//! directory, adopts the containers a previous kubelet left running, and watches
//! the pods bound to this node, giving each its own worker ([`podworker`]).
//!
//! - [`config`]: flags and directory layout.
//! - [`machine`]: capacity, allocatable, nodeInfo.
//! - `node`: registration, Lease, NodeStatus.
//! - [`env`], [`ocispec`]: a container's environment, command line and OCI spec.
//! - [`volumes`]: emptyDir, hostPath, configMap, secret, downwardAPI, projected.
//! - [`probes`]: startup, liveness and readiness probes; lifecycle hook actions.
//! - [`staticpods`]: static pods from `--pod-manifest-path` and their mirror pods.
//! - [`status`]: the pod status from what runs.
//! - [`cgroup`]: pod-level cgroup limits.

pub mod cgroup;
pub mod config;
pub mod env;
pub mod machine;
mod node;
pub mod ocispec;
mod podworker;
pub mod probes;
pub mod staticpods;
pub mod status;
pub mod volumes;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use container_runtime::{ContainerRuntime, OciRuntime, RuntimeConfig};
use controllers::events::{EventBroadcaster, EventRecorder};
use futures::StreamExt;
use images::ImageStore;
use k8s_openapi::api::core::v1::{EventSource, Pod};
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use tokio::sync::mpsc;
use tracing::{info, warn};

pub use config::KubeletConfig;
use machine::Machine;
use podworker::{PodUpdate, PodWorker};
use status::{labels, Instance};

/// Why the kubelet could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// A flag value is wrong.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An API call failed for good.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The error.
        source: kube::Error,
    },
    /// The image store could not be opened.
    #[error("image store: {0}")]
    Images(#[from] images::Error),
    /// The container runtime could not be set up.
    #[error("container runtime: {0}")]
    Runtime(#[from] container_runtime::Error),
    /// A directory could not be made.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

/// How the runtime starts a container's shim: the ferrokube binary and the
/// arguments that select its hidden `container-shim` subcommand.
#[derive(Clone, Debug)]
pub struct ShimCommand {
    /// Program to run.
    pub program: PathBuf,
    /// Arguments before the shim's own.
    pub args: Vec<OsString>,
}

/// What every pod worker shares.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) config: KubeletConfig,
    pub(crate) node_name: String,
    pub(crate) node_ip: IpAddr,
    pub(crate) machine: Machine,
    pub(crate) reserved: BTreeMap<String, apimachinery::Quantity>,
    pub(crate) images: Arc<ImageStore>,
    pub(crate) runtime: ContainerRuntime,
    pub(crate) recorder: EventRecorder,
}

impl Shared {
    /// Allocatable as quantities (for resourceFieldRef limits that are unset).
    pub(crate) fn allocatable_quantities(&self) -> BTreeMap<String, apimachinery::Quantity> {
        self.machine
            .allocatable(self.config.max_pods, &self.reserved)
            .into_iter()
            .filter_map(|(k, v)| v.0.parse().ok().map(|q| (k, q)))
            .collect()
    }
}

/// The host's primary address: the source address of the default route (a UDP
/// connect selects a route; nothing is sent); loopback when there is no route.
pub fn default_address() -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        s.connect("10.255.255.255:9")?;
        Ok(s.local_addr()?.ip())
    };
    probe().unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// Runs the kubelet until the task is dropped.
pub async fn run(
    client: Client,
    config: KubeletConfig,
    shim: ShimCommand,
) -> Result<(), KubeletError> {
    let node_name = config
        .hostname_override
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(machine::hostname);
    for dir in [
        &config.root_dir,
        &config.runtime_state_dir,
        &config.pod_logs_dir,
    ] {
        std::fs::create_dir_all(dir).map_err(|source| KubeletError::Io {
            what: format!("creating {}", dir.display()),
            source,
        })?;
    }
    let reserved = {
        let mut r = machine::parse_reservations(&config.system_reserved)?;
        for (k, v) in machine::parse_reservations(&config.kube_reserved)? {
            match r.get_mut(&k) {
                Some(sum) => *sum += &v,
                None => {
                    r.insert(k, v);
                }
            }
        }
        r
    };
    let images = Arc::new(ImageStore::open(config.image_store_dir())?);
    let import_dir = config.import_dir();
    if import_dir.is_dir() {
        let store = images.clone();
        let dir = import_dir.clone();
        match tokio::task::spawn_blocking(move || store.import_dir(&dir)).await {
            Ok(Ok(imported)) if !imported.is_empty() => {
                info!(count = imported.len(), dir = %import_dir.display(), "imported image archives")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "importing image archives failed"),
            Err(e) => warn!(error = %e, "importing image archives failed"),
        }
    }
    let oci: OciRuntime = config
        .oci_runtime
        .parse()
        .map_err(|e: container_runtime::Error| {
            KubeletError::Config(format!("--oci-runtime: {e}"))
        })?;
    let runtime = ContainerRuntime::new(RuntimeConfig {
        state_dir: config.runtime_state_dir.clone(),
        oci,
        shim_program: shim.program,
        shim_args: shim.args,
    })?;
    let broadcaster = EventBroadcaster::new(client.clone());
    let recorder = broadcaster.recorder_with_source(EventSource {
        component: Some("kubelet".into()),
        host: Some(node_name.clone()),
    });
    let shared = Arc::new(Shared {
        client: client.clone(),
        node_ip: config.node_ip.unwrap_or_else(default_address),
        machine: Machine::probe(&config.root_dir),
        config,
        node_name,
        reserved,
        images,
        runtime,
        recorder,
    });
    node::register(&shared).await?;
    info!(node = %shared.node_name, "node registered");
    let lease = tokio::spawn(node::lease_loop(shared.clone()));
    let status = tokio::spawn(node::status_loop(shared.clone()));
    let result = watch_pods(shared).await;
    lease.abort();
    status.abort();
    drop(broadcaster);
    result
}

/// Containers the runtime runs, grouped by pod UID.
fn adoptable(shared: &Shared) -> HashMap<String, Vec<Instance>> {
    let mut out: HashMap<String, Vec<Instance>> = HashMap::new();
    match shared.runtime.list() {
        Ok(list) => {
            for info in list {
                let Some(uid) = info.labels.get(labels::POD_UID).cloned() else {
                    continue;
                };
                if let Some(i) = Instance::from_info(info) {
                    out.entry(uid).or_default().push(i);
                }
            }
        }
        Err(e) => warn!(error = %e, "listing containers failed"),
    }
    out
}

/// Reads the static pod manifests now and then every `--file-check-frequency`,
/// sending each complete set.
fn static_source(shared: &Arc<Shared>) -> (Vec<Pod>, mpsc::UnboundedReceiver<Vec<Pod>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let Some(dir) = shared.config.pod_manifest_path.clone() else {
        return (Vec::new(), rx);
    };
    let first = staticpods::read_dir(&dir, &shared.node_name);
    let node = shared.node_name.clone();
    let every = shared
        .config
        .file_check_frequency
        .max(std::time::Duration::from_secs(1));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let (dir, node) = (dir.clone(), node.clone());
            let Ok(pods) =
                tokio::task::spawn_blocking(move || staticpods::read_dir(&dir, &node)).await
            else {
                return;
            };
            if tx.send(pods).is_err() {
                return;
            }
        }
    });
    (first, rx)
}

/// Watches this node's pods and feeds their workers.
async fn watch_pods(shared: Arc<Shared>) -> Result<(), KubeletError> {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", shared.node_name));
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    let mut workers: HashMap<String, mpsc::UnboundedSender<PodUpdate>> = HashMap::new();
    let mut adopt = adoptable(&shared);
    let mut listed: HashSet<String> = HashSet::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    // Static pods start first, whatever the API holds.
    let (first, mut static_rx) = static_source(&shared);
    let mut statics: HashSet<String> = HashSet::new();
    apply_static_set(
        &shared,
        &mut workers,
        &mut adopt,
        &done_tx,
        &mut statics,
        first,
    );
    loop {
        let event = tokio::select! {
            e = stream.next() => e,
            Some(uid) = done_rx.recv() => {
                workers.remove(&uid);
                continue;
            }
            Some(set) = static_rx.recv() => {
                apply_static_set(&shared, &mut workers, &mut adopt, &done_tx, &mut statics, set);
                continue;
            }
        };
        let Some(event) = event else { return Ok(()) };
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                warn!(error = %e, "pod watch failed; retrying");
                continue;
            }
        };
        match event {
            Event::Init => listed.clear(),
            Event::InitApply(pod) | Event::Apply(pod) if staticpods::is_mirror(&pod) => {
                route_mirror(&shared, &workers, pod, true);
            }
            Event::Delete(pod) if staticpods::is_mirror(&pod) => {
                route_mirror(&shared, &workers, pod, false);
            }
            Event::InitApply(pod) => {
                listed.insert(pod.metadata.uid.clone().unwrap_or_default());
                dispatch(&shared, &mut workers, &mut adopt, &done_tx, pod);
            }
            Event::Apply(pod) => dispatch(&shared, &mut workers, &mut adopt, &done_tx, pod),
            Event::Delete(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(tx) = workers.get(&uid) {
                    let _ = tx.send(PodUpdate::Deleted);
                }
            }
            Event::InitDone => {
                // Containers of pods neither the API nor a manifest has are stopped
                // and removed.
                let orphans: Vec<String> = adopt
                    .keys()
                    .filter(|u| !listed.contains(*u) && !statics.contains(*u))
                    .cloned()
                    .collect();
                for uid in orphans {
                    if let Some(instances) = adopt.remove(&uid) {
                        let Some(first) = instances.first() else {
                            continue;
                        };
                        let pod = orphan_pod(&uid, first);
                        let (tx, rx) = mpsc::unbounded_channel();
                        let _ = tx.send(PodUpdate::Deleted);
                        let worker = PodWorker::new(shared.clone(), pod, instances);
                        tokio::spawn(worker.run(rx));
                    }
                }
            }
        }
    }
}

/// Starts workers for new static pods and stops those whose manifest went away
/// (or changed: a changed manifest is a new pod).
fn apply_static_set(
    shared: &Arc<Shared>,
    workers: &mut HashMap<String, mpsc::UnboundedSender<PodUpdate>>,
    adopt: &mut HashMap<String, Vec<Instance>>,
    done: &mpsc::UnboundedSender<String>,
    statics: &mut HashSet<String>,
    set: Vec<Pod>,
) {
    let now: HashSet<String> = set.iter().filter_map(|p| p.metadata.uid.clone()).collect();
    for gone in statics.difference(&now) {
        if let Some(tx) = workers.get(gone) {
            let _ = tx.send(PodUpdate::StaticRemoved);
        }
    }
    for pod in set {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if !workers.contains_key(&uid) {
            dispatch(shared, workers, adopt, done, pod);
        }
    }
    *statics = now;
}

/// Hands a mirror pod's change to its static pod's worker; a mirror whose static
/// pod is gone is deleted.
fn route_mirror(
    shared: &Arc<Shared>,
    workers: &HashMap<String, mpsc::UnboundedSender<PodUpdate>>,
    pod: Pod,
    exists: bool,
) {
    let hash = staticpods::mirror_hash(&pod)
        .unwrap_or_default()
        .to_string();
    match workers.get(&hash) {
        Some(tx) => {
            let _ = tx.send(PodUpdate::Mirror(exists.then(|| Box::new(pod))));
        }
        None if exists => {
            let api: Api<Pod> = Api::namespaced(
                shared.client.clone(),
                pod.metadata.namespace.as_deref().unwrap_or("default"),
            );
            let name = pod.metadata.name.clone().unwrap_or_default();
            tokio::spawn(async move {
                let _ = api
                    .delete(&name, &kube::api::DeleteParams::default().grace_period(0))
                    .await;
            });
        }
        None => {}
    }
}

/// A stand-in pod object for containers whose pod is gone, enough to remove them.
fn orphan_pod(uid: &str, i: &Instance) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.uid = Some(uid.to_string());
    pod.metadata.name = i.info.labels.get(labels::POD_NAME).cloned();
    pod.metadata.namespace = i.info.labels.get(labels::POD_NAMESPACE).cloned();
    pod
}

fn dispatch(
    shared: &Arc<Shared>,
    workers: &mut HashMap<String, mpsc::UnboundedSender<PodUpdate>>,
    adopt: &mut HashMap<String, Vec<Instance>>,
    done: &mpsc::UnboundedSender<String>,
    pod: Pod,
) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if let Some(tx) = workers.get(&uid) {
        if tx.send(PodUpdate::Updated(Box::new(pod.clone()))).is_ok() {
            return;
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let worker = PodWorker::new(shared.clone(), pod, adopt.remove(&uid).unwrap_or_default());
    workers.insert(uid.clone(), tx);
    let done = done.clone();
    tokio::spawn(async move {
        worker.run(rx).await;
        let _ = done.send(uid);
    });
}
