//! ferrokube's kubelet: the node agent that makes pods run as real containers.
//!
//! [`run`] registers the Node (capacity from the machine, nodeInfo, conditions),
//! keeps its Lease and status fresh, imports the image archives of the import
//! directory, adopts the containers a previous kubelet left running, and watches
//! the pods bound to this node, giving each its own worker ([`podworker`]).
//!
//! - [`config`]: flags and directory layout.
//! - `cni`: pod networking through CNI plugins (`--cni-conf-dir`).
//! - [`dns`]: a pod's resolv.conf by its dnsPolicy and dnsConfig.
//! - [`machine`]: capacity, allocatable, nodeInfo.
//! - `node`: registration, Lease, NodeStatus.
//! - [`env`], [`ocispec`]: a container's environment, command line and OCI spec.
//! - [`eviction`]: pressure signals, thresholds and which pod goes first.
//! - [`volumes`]: emptyDir, hostPath, configMap, secret, downwardAPI, projected.
//! - [`probes`]: startup, liveness and readiness probes; lifecycle hook actions.
//! - [`staticpods`]: static pods from `--pod-manifest-path` and their mirror pods.
//! - [`status`]: the pod status from what runs.
//! - [`cgroup`]: pod-level cgroup limits.

pub mod admission;
mod api;
pub mod cgroup;
mod cni;
pub mod config;
pub mod dns;
pub mod env;
pub mod eviction;
pub mod machine;
mod network;
mod node;
mod objcache;
pub mod ocispec;
mod podworker;
pub mod probes;
pub mod staticpods;
pub mod status;
mod topdirs;
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
use k8s_openapi::api::core::v1::{ConfigMap, EventSource, Pod, Secret, Service};
use kube::api::Api;
use kube::runtime::reflector;
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
    /// Every Service of the cluster, from one watch.
    pub(crate) services: reflector::Store<Service>,
    /// That watch's first list, which pods from the API wait for.
    pub(crate) services_listed: objcache::Listed,
    /// The ConfigMaps and Secrets pods refer to, each from a watch of its own.
    pub(crate) config_maps: objcache::ObjectCache<ConfigMap>,
    pub(crate) secrets: objcache::ObjectCache<Secret>,
    /// The pods this kubelet runs, by UID, with the status it last computed (what
    /// the kubelet API's `/pods` serves).
    pub(crate) pods: parking_lot::RwLock<HashMap<String, Pod>>,
    /// Node conditions under pressure now (`MemoryPressure`, `DiskPressure`).
    pub(crate) pressure: parking_lot::RwLock<std::collections::BTreeSet<&'static str>>,
    /// Eviction thresholds.
    pub(crate) thresholds: Vec<eviction::Threshold>,
    /// The node is shutting down (Ready turns False).
    pub(crate) shutting_down: std::sync::atomic::AtomicBool,
    /// Pods whose worker has finished them for good: containers, sandbox, volumes
    /// and cgroup gone (what node shutdown waits for before it moves on).
    pub(crate) finished: parking_lot::Mutex<HashSet<String>>,
    /// The pod network, set up when the first pod needs it (`--pod-network=bridge`).
    pub(crate) network: tokio::sync::OnceCell<Arc<network::PodNetwork>>,
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

/// Runs the kubelet until `shutdown` completes (or the task is dropped). With a
/// `--shutdown-grace-period`, shutting down stops the pods first: others, then
/// critical ones.
pub async fn run(
    client: Client,
    mut config: KubeletConfig,
    shim: ShimCommand,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), KubeletError> {
    if let Some(f) = &config.client_ca_file {
        let pem = std::fs::read_to_string(f).map_err(|source| KubeletError::Io {
            what: format!("reading {}", f.display()),
            source,
        })?;
        config.client_ca = Some(pem);
    }
    // Paths given relative to the working directory are taken from it once: an OCI
    // spec's root and mount sources must be absolute.
    for dir in [
        &mut config.root_dir,
        &mut config.runtime_state_dir,
        &mut config.pod_logs_dir,
    ] {
        *dir = std::path::absolute(&*dir).map_err(|source| KubeletError::Io {
            what: format!("resolving {}", dir.display()),
            source,
        })?;
    }
    let node_name = config
        .hostname_override
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(machine::hostname);
    std::fs::create_dir_all(&config.root_dir).map_err(|source| KubeletError::Io {
        what: format!("creating {}", config.root_dir.display()),
        source,
    })?;
    for dir in [
        &config.pods_dir(),
        &config.root_dir.join("containers"),
        &config.runtime_state_dir,
        &config.pod_logs_dir,
    ] {
        topdirs::create(dir).map_err(|source| KubeletError::Io {
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
    let mut thresholds = eviction::parse_thresholds(&config.eviction_hard)
        .map_err(|e| KubeletError::Config(format!("--eviction-hard: {e}")))?;
    thresholds.extend(
        eviction::parse_soft_thresholds(&config.eviction_soft, &config.eviction_soft_grace_period)
            .map_err(|e| KubeletError::Config(format!("--eviction-soft: {e}")))?,
    );
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
    // Upstream gives the event recorder its own client limited by --event-qps and
    // --event-burst, so a burst of pod starts is not also a burst of event writes.
    let broadcaster = EventBroadcaster::with_write_limit(
        client.clone(),
        Default::default(),
        controllers::events::WriteLimit::from_flags(
            f64::from(config.event_qps),
            config.event_burst,
        ),
    );
    let recorder = broadcaster.recorder_with_source(EventSource {
        component: Some("kubelet".into()),
        host: Some(node_name.clone()),
    });
    let (services, services_writer) = reflector::store();
    // Every Service of the cluster, for the Service variables of the containers
    // started: upstream's kubelet lists them from an informer too, so a container
    // start costs no API request for them.
    let services_watch = tokio::spawn(objcache::reflect(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        services_writer,
        "Services".to_string(),
    ));
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
        services_listed: objcache::Listed::of(&services),
        services,
        config_maps: objcache::ObjectCache::new(client.clone()),
        secrets: objcache::ObjectCache::new(client.clone()),
        pods: parking_lot::RwLock::new(HashMap::new()),
        pressure: Default::default(),
        thresholds,
        shutting_down: Default::default(),
        finished: Default::default(),
        network: Default::default(),
    });
    api::start(&shared).await?;
    node::register(&shared).await?;
    info!(node = %shared.node_name, "node registered");
    let lease = tokio::spawn(node::lease_loop(shared.clone()));
    let status = tokio::spawn(node::status_loop(shared.clone()));
    let gc = tokio::spawn(image_gc_loop(shared.clone()));
    let (evict_tx, evict_rx) = mpsc::unbounded_channel();
    let evictions = tokio::spawn(eviction_loop(shared.clone(), evict_tx));
    let result = watch_pods(shared, evict_rx, shutdown).await;
    evictions.abort();
    services_watch.abort();
    lease.abort();
    status.abort();
    gc.abort();
    drop(broadcaster);
    result
}

/// A pod the eviction manager asks its worker to stop.
struct Eviction {
    uid: String,
    message: String,
    grace: std::time::Duration,
}

/// The eviction manager: measures, raises or clears pressure, and asks one pod
/// at a time to be evicted while a threshold stays crossed.
async fn eviction_loop(shared: Arc<Shared>, evict: mpsc::UnboundedSender<Eviction>) {
    use eviction::{Candidate, Signal};
    let mut asked: HashSet<String> = HashSet::new();
    let mut tracker = eviction::Tracker::default();
    loop {
        tokio::time::sleep(shared.config.eviction_monitoring_interval).await;
        let (root, images_dir, memory) = (
            shared.config.root_dir.clone(),
            shared.config.image_store_dir(),
            shared.machine.memory,
        );
        let Ok(observed) =
            tokio::task::spawn_blocking(move || eviction::observe(&root, &images_dir, memory))
                .await
        else {
            continue;
        };
        let crossed = eviction::crossed(&shared.thresholds, &observed);
        let (now, crossed) = tracker.step(
            std::time::Instant::now(),
            &crossed,
            shared.config.eviction_pressure_transition_period,
        );
        let changed = *shared.pressure.read() != now;
        if changed {
            *shared.pressure.write() = now;
            if let Err(e) = node::post_status(&shared).await {
                warn!(error = %e, "posting node pressure failed");
            }
        }
        let Some((threshold, observation)) = crossed.first().cloned() else {
            asked.clear();
            continue;
        };
        let resource = match threshold.signal {
            Signal::MemoryAvailable => "memory",
            Signal::PidAvailable => "pids",
            _ => "ephemeral-storage",
        };
        let pods: Vec<Pod> = shared.pods.read().values().cloned().collect();
        let mut candidates: Vec<Candidate> = pods
            .into_iter()
            .filter(|p| {
                let uid = p.metadata.uid.clone().unwrap_or_default();
                !asked.contains(&uid)
                    && !staticpods::is_static(p)
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            })
            .map(|pod| {
                let usage = pod_usage(&shared, &pod, threshold.signal);
                Candidate { pod, usage }
            })
            .collect();
        eviction::rank(&mut candidates, resource);
        if let Some(victim) = candidates.first() {
            let uid = victim.pod.metadata.uid.clone().unwrap_or_default();
            let msg = eviction::message(&threshold, &observation, victim, resource);
            info!(pod = ?victim.pod.metadata.name, %msg, "evicting");
            asked.insert(uid.clone());
            // Hard thresholds evict at once; soft ones give the pod up to
            // --eviction-max-pod-grace-period (less if its own grace is shorter).
            let grace = match threshold.grace_period {
                None => std::time::Duration::ZERO,
                Some(_) => {
                    let own = victim
                        .pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds)
                        .unwrap_or(30);
                    let secs = shared.config.eviction_max_pod_grace_period.min(own).max(0);
                    std::time::Duration::from_secs(secs as u64)
                }
            };
            let _ = evict.send(Eviction {
                uid,
                message: msg,
                grace,
            });
        }
    }
}

/// A pod's use of what is short: memory working set or process count of its cgroup,
/// or the bytes its directory and logs take.
fn pod_usage(shared: &Shared, pod: &Pod, signal: eviction::Signal) -> u64 {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if matches!(
        signal,
        eviction::Signal::MemoryAvailable | eviction::Signal::PidAvailable
    ) {
        let qos = pod
            .spec
            .as_ref()
            .map_or("BestEffort", podspec::pod_qos_class);
        let q = match qos {
            "Guaranteed" => container_runtime::cgroups::QosClass::Guaranteed,
            "Burstable" => container_runtime::cgroups::QosClass::Burstable,
            _ => container_runtime::cgroups::QosClass::BestEffort,
        };
        let path =
            container_runtime::cgroups::pod_cgroup_path_under(&shared.config.cgroup_root, q, &uid);
        return container_runtime::cgroups::PodCgroup::from_path(path)
            .stats()
            .map(|s| {
                if signal == eviction::Signal::PidAvailable {
                    s.pids
                } else {
                    s.memory_working_set_bytes
                }
            })
            .unwrap_or(0);
    }
    fn du(p: &std::path::Path) -> u64 {
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            return 0;
        };
        if meta.is_dir() {
            std::fs::read_dir(p)
                .map(|es| es.flatten().map(|e| du(&e.path())).sum())
                .unwrap_or(0)
        } else {
            meta.len()
        }
    }
    du(&shared.config.pods_dir().join(&uid))
}

/// How often unused images are collected when the disk fills (upstream: 5 min).
const IMAGE_GC_PERIOD: std::time::Duration = std::time::Duration::from_secs(300);

/// Image garbage collection: every 5 minutes, the images no container uses are
/// removed, least recently used first, while the image filesystem is above
/// `--image-gc-high-threshold`, down to `--image-gc-low-threshold`.
async fn image_gc_loop(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(IMAGE_GC_PERIOD).await;
        let store = shared.images.clone();
        let containers = shared.runtime.list().unwrap_or_default();
        let (high, low) = (
            shared.config.image_gc_high_threshold,
            shared.config.image_gc_low_threshold,
        );
        let result = tokio::task::spawn_blocking(move || {
            let mut in_use = HashSet::new();
            for c in &containers {
                if let Some(r) = c.labels.get(labels::IMAGE) {
                    if let Ok(Some(img)) = store.resolve(r) {
                        in_use.insert(img.id);
                    }
                }
            }
            store.set_in_use(&in_use);
            store.gc(high, low)
        })
        .await;
        match result {
            Ok(Ok(removed)) if !removed.is_empty() => {
                info!(
                    count = removed.len(),
                    "image garbage collection removed unused images"
                )
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "image garbage collection failed"),
            Err(e) => warn!(error = %e, "image garbage collection failed"),
        }
    }
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
/// and fetches `--manifest-url` every `--http-check-frequency`, sending each
/// complete set (a failed fetch keeps the URL's previous pods, as upstream). A set
/// is marked seen once every source has been read at least once (the URL fetched and
/// parsed), as upstream's sources become ready: until then the kubelet cannot tell a
/// static pod from what is left of a deleted one. The first set is the manifest
/// files', and whether it is already seen.
fn static_source(shared: &Arc<Shared>) -> (StaticSet, mpsc::UnboundedReceiver<StaticSet>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let dir = shared.config.pod_manifest_path.clone();
    let url = shared.config.manifest_url.clone();
    if dir.is_none() && url.is_none() {
        return ((Vec::new(), true), rx);
    }
    let node = shared.node_name.clone();
    let first = dir
        .as_ref()
        .map(|d| staticpods::read_dir(d, &node))
        .unwrap_or_default();
    let every = match (&dir, &url) {
        (Some(_), Some(_)) => shared
            .config
            .file_check_frequency
            .min(shared.config.http_check_frequency),
        (Some(_), None) => shared.config.file_check_frequency,
        _ => shared.config.http_check_frequency,
    }
    .max(std::time::Duration::from_secs(1));
    let mut from_url: Vec<Pod> = Vec::new();
    let mut from_files = first.clone();
    let mut url_seen = url.is_none();
    let first = (first, url_seen);
    tokio::spawn(async move {
        let mut first_round = true;
        loop {
            if !first_round || url.is_none() {
                tokio::time::sleep(every).await;
            }
            first_round = false;
            if let Some(d) = dir.clone() {
                let node = node.clone();
                match tokio::task::spawn_blocking(move || staticpods::read_dir(&d, &node)).await {
                    Ok(pods) => from_files = pods,
                    Err(_) => return,
                }
            }
            if let Some(u) = &url {
                match fetch_manifest(u).await {
                    Ok(body) => match staticpods::parse_url_manifest(&body, u, &node) {
                        Ok(pods) => {
                            from_url = pods;
                            url_seen = true;
                        }
                        Err(e) => warn!(url = %u, error = %e, "bad static pod manifest"),
                    },
                    Err(e) => warn!(url = %u, error = %e, "fetching static pods failed"),
                }
            }
            let mut all = from_files.clone();
            all.extend(from_url.iter().cloned());
            if tx.send((all, url_seen)).is_err() {
                return;
            }
        }
    });
    (first, rx)
}

/// GETs a plain-HTTP manifest URL.
async fn fetch_manifest(url: &str) -> Result<bytes::Bytes, String> {
    use http_body_util::BodyExt;
    let uri: http::Uri = url.parse().map_err(|e| format!("{e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// manifest URLs are supported".into());
    }
    let host = uri.host().ok_or("no host")?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let req = http::Request::get(path)
        .header(http::header::HOST, format!("{host}:{port}"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), sender.send_request(req))
        .await
        .map_err(|_| "request timed out".to_string())?
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()));
    }
    resp.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| e.to_string())
}

/// Watches this node's pods and feeds their workers.
async fn watch_pods(
    shared: Arc<Shared>,
    mut evict_rx: mpsc::UnboundedReceiver<Eviction>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), KubeletError> {
    tokio::pin!(shutdown);
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
    let mut sources_seen = first.1;
    apply_static_set(
        &shared,
        &mut workers,
        &mut adopt,
        &done_tx,
        &mut statics,
        first.0,
    );
    // Between a list's InitDone and the next Init, `listed` holds every pod the API
    // had for this node; a sweep waits for that and for every static source.
    let mut list_complete = false;
    let mut sweep_pending = false;
    loop {
        let event = tokio::select! {
            e = stream.next() => e,
            Some(uid) = done_rx.recv() => {
                workers.remove(&uid);
                continue;
            }
            Some((set, seen)) = static_rx.recv() => {
                apply_static_set(&shared, &mut workers, &mut adopt, &done_tx, &mut statics, set);
                sources_seen |= seen;
                if sources_seen && list_complete && sweep_pending {
                    sweep_pending = false;
                    let known = |u: &str| listed.contains(u) || statics.contains(u);
                    sweep_orphans(&shared, &mut workers, &mut adopt, &done_tx, known);
                }
                continue;
            }
            _ = &mut shutdown => {
                shut_down(&shared, &workers).await;
                return Ok(());
            }
            Some(ev) = evict_rx.recv() => {
                if let Some(tx) = workers.get(&ev.uid) {
                    let _ = tx.send(PodUpdate::Terminate(podworker::KubeletTermination {
                        reason: "Evicted".into(),
                        message: ev.message,
                        grace: ev.grace,
                    }));
                }
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
            Event::Init => {
                listed.clear();
                list_complete = false;
            }
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
                list_complete = true;
                let known = |u: &str| listed.contains(u) || statics.contains(u);
                // A (re)list without a pod we run means it was deleted while the
                // watch was down: its deletion event never came. (kube's watcher
                // lists at the most recent revision, in pages of one snapshot.)
                for (uid, tx) in &workers {
                    if !known(uid) {
                        let _ = tx.send(PodUpdate::Deleted);
                    }
                }
                if sources_seen {
                    sweep_orphans(&shared, &mut workers, &mut adopt, &done_tx, known);
                } else {
                    sweep_pending = true;
                }
            }
        }
    }
}

/// A set of static pods, and whether every static source has been read by now.
type StaticSet = (Vec<Pod>, bool);

/// Removes what is left of pods `known` does not name and no worker runs, from
/// before this kubelet started: their containers, and the pod directories (sandbox,
/// volumes) and cgroups of those that had none. Their workers are tracked like any
/// other, so a later sweep leaves them be.
fn sweep_orphans(
    shared: &Arc<Shared>,
    workers: &mut HashMap<String, mpsc::UnboundedSender<PodUpdate>>,
    adopt: &mut HashMap<String, Vec<Instance>>,
    done: &mpsc::UnboundedSender<String>,
    known: impl Fn(&str) -> bool,
) {
    let mut orphans: Vec<String> = adopt
        .keys()
        .filter(|u| !known(u) && !workers.contains_key(*u))
        .cloned()
        .collect();
    for uid in pod_dirs(shared) {
        if !known(&uid) && !workers.contains_key(&uid) && !orphans.contains(&uid) {
            orphans.push(uid);
        }
    }
    for uid in orphans {
        let instances = adopt.remove(&uid).unwrap_or_default();
        let pod = orphan_pod(&uid, instances.first());
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(PodUpdate::Deleted);
        let worker = PodWorker::new(shared.clone(), pod, instances);
        spawn_worker(workers, done, uid, worker, tx, rx);
    }
}

/// Runs `worker` for `uid` with its channel, tracked in `workers` until it ends.
fn spawn_worker(
    workers: &mut HashMap<String, mpsc::UnboundedSender<PodUpdate>>,
    done: &mpsc::UnboundedSender<String>,
    uid: String,
    worker: PodWorker,
    tx: mpsc::UnboundedSender<PodUpdate>,
    rx: mpsc::UnboundedReceiver<PodUpdate>,
) {
    workers.insert(uid.clone(), tx);
    let done = done.clone();
    tokio::spawn(async move {
        worker.run(rx).await;
        let _ = done.send(uid);
    });
}

/// The UIDs of the pods that have a directory on this node (names that are not a
/// UID, such as `lost+found`, are left alone).
fn pod_dirs(shared: &Shared) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(shared.config.pods_dir()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| looks_like_uid(name))
        .collect()
}

/// An API UID (`8-4-4-4-12` hex digits) or a static pod's (32 hex digits).
fn looks_like_uid(name: &str) -> bool {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    let parts: Vec<&str> = name.split('-').collect();
    match parts.as_slice() {
        [one] => one.len() == 32 && hex(one),
        [a, b, c, d, e] => {
            [a.len(), b.len(), c.len(), d.len(), e.len()] == [8, 4, 4, 4, 12]
                && parts.iter().all(|p| hex(p))
        }
        _ => false,
    }
}

/// Upstream's message for pods ended by a node shutdown.
const SHUTDOWN_MESSAGE: &str = "Pod was terminated in response to imminent node shutdown.";

/// Graceful node shutdown: the node turns NotReady, ordinary pods stop within
/// the grace period less the critical pods' share, then critical pods (system
/// priority classes, static pods) within theirs.
async fn shut_down(
    shared: &Arc<Shared>,
    workers: &HashMap<String, mpsc::UnboundedSender<PodUpdate>>,
) {
    let total = shared.config.shutdown_grace_period;
    if total.is_zero() {
        return;
    }
    let critical_grace = shared.config.shutdown_grace_period_critical_pods.min(total);
    let others_grace = total - critical_grace;
    info!(?total, "node is shutting down: stopping pods");
    shared
        .shutting_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    if let Err(e) = node::post_status(shared).await {
        warn!(error = %e, "posting the node's shutdown failed");
    }
    let pods: Vec<Pod> = shared.pods.read().values().cloned().collect();
    let is_critical = |p: &Pod| {
        staticpods::is_static(p)
            || p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0) >= 2_000_000_000
    };
    for (critical, grace) in [(false, others_grace), (true, critical_grace)] {
        let group: Vec<String> = pods
            .iter()
            .filter(|p| is_critical(p) == critical)
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        for uid in &group {
            if let Some(tx) = workers.get(uid) {
                let _ = tx.send(PodUpdate::Terminate(podworker::KubeletTermination {
                    reason: "Terminated".into(),
                    message: SHUTDOWN_MESSAGE.into(),
                    grace,
                }));
            }
        }
        // Wait for the group's workers to finish: status reported and everything
        // the pods held released (a terminal phase alone comes before the cleanup,
        // which the process exiting would cut short).
        let until = tokio::time::Instant::now() + grace + std::time::Duration::from_secs(2);
        loop {
            let done = {
                let finished = shared.finished.lock();
                group
                    .iter()
                    .all(|u| finished.contains(u) || !workers.contains_key(u))
            };
            if done || tokio::time::Instant::now() > until {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
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

/// A stand-in pod object for what is left of a pod that is gone (its containers'
/// labels name it, if it had any), enough to remove it.
fn orphan_pod(uid: &str, i: Option<&Instance>) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.uid = Some(uid.to_string());
    if let Some(i) = i {
        pod.metadata.name = i.info.labels.get(labels::POD_NAME).cloned();
        pod.metadata.namespace = i.info.labels.get(labels::POD_NAMESPACE).cloned();
    }
    pod
}

/// Admission of a pod new to this kubelet (see [`admission`]); pods already
/// finished, being deleted or with adopted containers are not re-judged. An admitted
/// pod counts against the node at once, before its worker reports anything.
fn admit(
    shared: &Arc<Shared>,
    pod: &Pod,
    uid: &str,
    has_containers: bool,
) -> Result<(), admission::Rejection> {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let terminal = matches!(phase, Some("Succeeded" | "Failed"));
    if !terminal && pod.metadata.deletion_timestamp.is_none() && !has_containers {
        let known = shared.pods.read();
        let others: Vec<&Pod> = known
            .iter()
            .filter(|(u, _)| u.as_str() != uid)
            .map(|(_, p)| p)
            .filter(|p| {
                !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
            })
            .collect();
        let allocatable = podspec::resources::Resources::from_list(Some(
            &shared
                .machine
                .allocatable(shared.config.max_pods, &shared.reserved),
        ));
        let pressure = shared.pressure.read().clone();
        admission::admit(pod, &others, &allocatable, &pressure)?;
    }
    shared
        .pods
        .write()
        .entry(uid.to_string())
        .or_insert_with(|| pod.clone());
    Ok(())
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
    let adopted = adopt.remove(&uid).unwrap_or_default();
    let (tx, rx) = mpsc::unbounded_channel();
    let worker = match admit(shared, &pod, &uid, !adopted.is_empty()) {
        Ok(()) => PodWorker::new(shared.clone(), pod, adopted),
        Err(rejection) => {
            info!(
                pod = %podworker::pod_key(&pod),
                reason = %rejection.reason,
                message = %rejection.message,
                "pod admission denied"
            );
            PodWorker::rejected(shared.clone(), pod, rejection)
        }
    };
    spawn_worker(workers, done, uid, worker, tx, rx);
}

#[cfg(test)]
mod tests {
    use super::looks_like_uid;

    #[test]
    fn pod_directories_are_told_by_their_uid_shape() {
        assert!(looks_like_uid("7f680204-561d-4b24-b84a-c9c4ba26c9a1"));
        assert!(looks_like_uid("0123456789abcdef0123456789abcdef"));
        for not in [
            "lost+found",
            "",
            "7f680204-561d-4b24-b84a",
            "7f680204561d4b24b84ac9c4ba26c9a1x",
            "zf680204-561d-4b24-b84a-c9c4ba26c9a1",
            "7f680204-561d-4b24-b84a-c9c4ba26c9a1-",
        ] {
            assert!(!looks_like_uid(not), "{not}");
        }
    }
}
