//! One worker task per pod bound to this node, level-triggered: every pod update,
//! container exit or timer runs `sync`, which compares the pod's spec with what
//! the runtime runs and acts — pod directory, cgroup, sandbox and volumes first,
//! then init containers in order, then the app containers, restarting by the
//! restart policy with upstream's back-off (10 s doubling to 5 min) — and reports
//! the status. A pod marked for deletion is stopped within its grace period,
//! everything it had on the node is removed, and the kubelet finishes the delete.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use container_runtime::cgroups::{pod_cgroup_path_under, PodCgroup, QosClass};
use container_runtime::sandbox::{Sandbox, SandboxNamespaces};
use container_runtime::{ContainerIo, ContainerState};
use controllers::events::{object_reference, EventType};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodSpec, PodStatus, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::env::{self, EnvSources};
use crate::ocispec::{self, BindMount, PodNamespaces, SpecInput};
use crate::probes::{self, ProbeState, Target};
use crate::status::{self, labels, Instance, Observed, Waiting};
use crate::volumes::{self, VolumeSources};
use crate::Shared;

/// First restart back-off, and its ceiling.
const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How often a pod is synced with nothing happening (volume contents follow their
/// ConfigMaps and Secrets at this pace).
const RESYNC: Duration = Duration::from_secs(10);
/// How often mounted configMap, secret, downward API and projected volumes are
/// rewritten from the API.
const VOLUME_RESYNC: Duration = RESYNC;
/// How long a container start waits for the kubelet's first list of Services.
const SERVICES_SYNC_WAIT: Duration = Duration::from_secs(5);
/// Grace period used when a pod vanished from the API without one.
const MINIMUM_GRACE: Duration = Duration::from_secs(2);

/// What the watch tells a worker.
#[derive(Debug)]
pub(crate) enum PodUpdate {
    /// The pod as it now is.
    Updated(Box<Pod>),
    /// The pod is gone from the API (force deletion).
    Deleted,
    /// A static pod's mirror in the API, or None when it was deleted.
    Mirror(Option<Box<Pod>>),
    /// A static pod's manifest went away.
    StaticRemoved,
    /// The kubelet ends the pod itself (eviction, node shutdown).
    Terminate(KubeletTermination),
}

/// Whether a new version of a pod from the API asks its worker for a sync. As in
/// upstream's kubelet, a change of the status alone (most often the kubelet's own
/// status write coming back through the watch) is not an update of what runs: only
/// the spec, labels, annotations (the downward API shows them) and the deletion
/// count. The exception is a pod with readiness gates, whose Ready condition follows
/// conditions other writers set in its status.
fn needs_sync(old: &Pod, new: &Pod) -> bool {
    let (o, n) = (&old.metadata, &new.metadata);
    let gated = new
        .spec
        .as_ref()
        .is_some_and(|s| s.readiness_gates.as_ref().is_some_and(|g| !g.is_empty()));
    old.spec != new.spec
        || o.labels != n.labels
        || o.annotations != n.annotations
        || o.deletion_timestamp != n.deletion_timestamp
        || o.deletion_grace_period_seconds != n.deletion_grace_period_seconds
        || gated
            && old.status.as_ref().map(|s| &s.conditions)
                != new.status.as_ref().map(|s| &s.conditions)
}

/// Why and how the kubelet ends a pod on its own.
#[derive(Clone, Debug)]
pub(crate) struct KubeletTermination {
    /// Pod status reason (`Evicted`, `Terminated`).
    pub(crate) reason: String,
    /// Pod status message.
    pub(crate) message: String,
    /// Grace period for the containers.
    pub(crate) grace: Duration,
}

/// Back-off of one container.
#[derive(Clone, Copy, Debug)]
struct Backoff {
    delay: Duration,
    last_start: Instant,
}

/// A running instance's probe state and its prober tasks.
type Probers = (Arc<parking_lot::Mutex<ProbeState>>, Vec<JoinHandle<()>>);

/// Whether the worker goes on.
enum Next {
    Continue,
    Done,
}

pub(crate) struct PodWorker {
    shared: Arc<Shared>,
    pod: Pod,
    uid: String,
    gone_from_api: bool,
    instances: BTreeMap<String, Vec<Instance>>,
    waiting: BTreeMap<String, Waiting>,
    backoff: HashMap<String, Backoff>,
    sandbox: Option<Sandbox>,
    /// The sandbox holder a task watches for exit.
    watched_holder: Option<i32>,
    /// The pod's address on the pod network.
    pod_ip: Option<std::net::IpAddr>,
    first_seen: Timestamp,
    last_status: Option<PodStatus>,
    /// The status as the API held it right after the kubelet's last write, and the
    /// pod's resourceVersion then: a newer copy that differs from it in what the
    /// kubelet reports was rewritten by someone else.
    after_post: Option<(u64, PodStatus)>,
    /// Containers watched for exit; the watchers add the ones that exited to `exited`.
    watched: HashSet<String>,
    exited: Arc<parking_lot::Mutex<HashSet<String>>>,
    /// When every instance's state was last read from the runtime.
    states_read: Option<Instant>,
    wake: Arc<Notify>,
    volume_paths: BTreeMap<String, PathBuf>,
    /// When the volumes were last set up or refreshed.
    volumes_synced: Option<Instant>,
    /// The limits last written to the pod cgroup.
    cgroup_limits: Option<container_runtime::cgroups::PodResources>,
    pod_failure: Option<(String, String)>,
    /// The pod reached Succeeded or Failed and what it had on the node is gone;
    /// its last status stands.
    finished: bool,
    /// Projected service account tokens: (audience, expiration) → token, issue time.
    tokens: BTreeMap<(String, i64), (String, Instant)>,
    /// A static pod (from a manifest); its API object is the mirror.
    static_pod: bool,
    /// Set by the eviction manager or a node shutdown: the pod is to be stopped
    /// and failed.
    evicted: Option<KubeletTermination>,
    /// Image pull back-off by image reference.
    pull_backoff: HashMap<String, Backoff>,
    /// The mirror pod as last seen (static pods only).
    mirror: Option<Pod>,
    /// Probe state and prober tasks by container instance id.
    probes: HashMap<String, Probers>,
    /// Why admission turned the pod away (it then never runs anything).
    rejection: Option<crate::admission::Rejection>,
}

pub(crate) fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

fn new_container_id() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{a}{b}")
}

impl Drop for PodWorker {
    fn drop(&mut self) {
        self.release_objects();
    }
}

impl PodWorker {
    /// A worker for `pod`, adopting the containers the runtime already runs for it.
    pub(crate) fn new(shared: Arc<Shared>, pod: Pod, adopted: Vec<Instance>) -> PodWorker {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let static_pod = crate::staticpods::is_static(&pod);
        let mut instances: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
        for i in adopted {
            instances.entry(i.name.clone()).or_default().push(i);
        }
        for list in instances.values_mut() {
            list.sort_by_key(|i| std::cmp::Reverse(i.attempt));
        }
        let sandbox_dir = shared.config.pods_dir().join(&uid).join("sandbox");
        let sandbox = Sandbox::open(&sandbox_dir).ok().flatten();
        PodWorker {
            shared,
            pod,
            uid,
            gone_from_api: false,
            instances,
            waiting: BTreeMap::new(),
            backoff: HashMap::new(),
            sandbox,
            watched_holder: None,
            pod_ip: None,
            first_seen: Timestamp::now(),
            last_status: None,
            after_post: None,
            watched: HashSet::new(),
            exited: Arc::default(),
            states_read: None,
            wake: Arc::new(Notify::new()),
            volume_paths: BTreeMap::new(),
            volumes_synced: None,
            cgroup_limits: None,
            pod_failure: None,
            finished: false,
            probes: HashMap::new(),
            rejection: None,
            tokens: BTreeMap::new(),
            static_pod,
            mirror: None,
            pull_backoff: HashMap::new(),
            evicted: None,
        }
    }

    /// Runs until the pod is gone from the node.
    /// A worker for a pod admission turned away: it posts the pod as Failed with the
    /// rejection and otherwise only handles the pod's deletion.
    pub(crate) fn rejected(
        shared: Arc<Shared>,
        pod: Pod,
        rejection: crate::admission::Rejection,
    ) -> PodWorker {
        let mut w = PodWorker::new(shared, pod, Vec::new());
        w.rejection = Some(rejection);
        w
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<PodUpdate>) {
        // What is already queued counts from the first sync on: a worker for what is
        // left of a deleted pod must not set the pod up again first.
        while let Ok(m) = rx.try_recv() {
            self.apply(m);
        }
        let mut due = true;
        let mut deadline = Instant::now();
        loop {
            if due {
                match self.sync().await {
                    Next::Done => {
                        self.shared.pods.write().remove(&self.uid);
                        self.shared.finished.lock().remove(&self.uid);
                        return;
                    }
                    Next::Continue => {}
                }
                deadline = self.next_deadline();
            }
            due = tokio::select! {
                msg = rx.recv() => match msg {
                    Some(m) => self.apply(m),
                    None => return,
                },
                _ = self.wake.notified() => true,
                _ = tokio::time::sleep_until(deadline.into()) => true,
            };
            while let Ok(m) = rx.try_recv() {
                due |= self.apply(m);
            }
        }
    }

    /// Takes in what the watch said; true when the pod needs a sync for it.
    fn apply(&mut self, m: PodUpdate) -> bool {
        match m {
            PodUpdate::Updated(p) => {
                let due = needs_sync(&self.pod, &p);
                self.pod = *p;
                due
            }
            PodUpdate::Deleted => {
                self.gone_from_api = true;
                true
            }
            PodUpdate::Mirror(m) => {
                self.mirror = m.map(|m| *m);
                true
            }
            PodUpdate::StaticRemoved => {
                self.gone_from_api = true;
                true
            }
            PodUpdate::Terminate(t) => {
                if !self.finished {
                    self.evicted = Some(t);
                }
                true
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        let mut next = Instant::now() + RESYNC;
        for (name, b) in &self.backoff {
            if self
                .waiting
                .get(name)
                .is_some_and(|w| w.reason == "CrashLoopBackOff")
            {
                next = next.min(b.last_start + b.delay);
            }
        }
        next
    }

    fn pod_dir(&self) -> PathBuf {
        self.shared.config.pods_dir().join(&self.uid)
    }

    fn event(&self, field: Option<String>, ty: EventType, reason: &str, message: String) {
        let mut r = object_reference(&self.pod);
        r.field_path = field;
        self.shared.recorder.event_for(r, ty, reason, message);
    }

    /// Re-reads the state of every known instance and watches running ones for exit.
    fn refresh(&mut self) {
        self.refresh_states(true);
    }

    /// [`refresh`](Self::refresh), reading from the runtime only what may have
    /// changed unless `all`: instances whose exit a watcher reported, instances not
    /// watched yet or still being created, and everything once per resync period. A
    /// running container's state changes only when it exits, so a pod's many syncs
    /// during a burst need not read every container's records from disk.
    fn refresh_states(&mut self, all: bool) {
        let exited = std::mem::take(&mut *self.exited.lock());
        let all = all || self.states_read.is_none_or(|t| t.elapsed() >= RESYNC);
        if all {
            self.states_read = Some(Instant::now());
        }
        for list in self.instances.values_mut() {
            for i in list.iter_mut() {
                let stale = all
                    || matches!(i.info.state, ContainerState::Created)
                    || exited.contains(&i.info.id)
                    || !self.watched.contains(&i.info.id);
                if i.is_running() && stale {
                    if let Ok(Some(info)) = self.shared.runtime.get(&i.info.id) {
                        i.info = info;
                    }
                }
            }
        }
        self.follow_running();
    }

    /// Starts probers and exit watchers for running instances that have none, and
    /// stops the probers of instances no longer running.
    fn follow_running(&mut self) {
        let running: Vec<(String, String)> = self
            .instances
            .values()
            .flatten()
            .filter(|i| i.is_running())
            .map(|i| (i.name.clone(), i.info.id.clone()))
            .collect();
        let live: HashSet<&String> = running.iter().map(|(_, id)| id).collect();
        let gone: Vec<String> = self
            .probes
            .keys()
            .filter(|id| !live.contains(id))
            .cloned()
            .collect();
        for id in gone {
            if let Some((_, tasks)) = self.probes.remove(&id) {
                tasks.iter().for_each(JoinHandle::abort);
            }
        }
        for (name, id) in &running {
            if !self.probes.contains_key(id) {
                self.start_probers(name, id);
            }
        }
        for list in self.instances.values() {
            for i in list.iter().filter(|i| i.is_running()) {
                if self.watched.insert(i.info.id.clone()) {
                    let rt = self.shared.runtime.clone();
                    let id = i.info.id.clone();
                    let wake = self.wake.clone();
                    let exited = self.exited.clone();
                    tokio::spawn(async move {
                        let _ = rt.wait(&id).await;
                        exited.lock().insert(id);
                        wake.notify_one();
                    });
                }
            }
        }
    }

    async fn sync(&mut self) -> Next {
        self.refresh_states(false);
        if self.gone_from_api || self.pod.metadata.deletion_timestamp.is_some() {
            return self.terminate().await;
        }
        if self.finished {
            return Next::Continue;
        }
        if self.rejection.is_some() {
            self.report_rejection().await;
            // Turned away at admission: it holds nothing on the node.
            self.shared.finished.lock().insert(self.uid.clone());
            return Next::Continue;
        }
        if let Some(t) = self.evicted.take() {
            // The pod fails and keeps its status; hard evictions have no grace.
            if t.reason == "Evicted" {
                self.event(None, EventType::Warning, "Evicted", t.message.clone());
            }
            let grace = t.grace.min(Duration::from_secs(
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
                    .unwrap_or(30)
                    .max(0) as u64,
            ));
            self.stop_all(grace).await;
            self.refresh();
            self.pod_failure = Some((t.reason, t.message));
            self.report().await;
            self.cleanup(false);
            self.finish();
            return Next::Continue;
        }
        self.restart_unhealthy().await;
        if let Err(message) = self.prepare_pod().await {
            warn!(pod = %pod_key(&self.pod), %message, "pod setup failed");
        } else {
            self.run_containers().await;
            // Containers started just now get their probers before the status is
            // computed, so one without a startup or readiness probe is reported
            // started and ready in the same update that reports it running.
            self.follow_running();
        }
        self.report().await;
        let terminal = self
            .last_status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed");
        if terminal {
            // A finished pod keeps its status and logs; its containers, sandbox,
            // volumes and cgroup go now, as upstream's kubelet does.
            self.stop_all(MINIMUM_GRACE).await;
            self.cleanup(false);
            self.finish();
        }
        Next::Continue
    }

    /// Pod directory with its etc files, cgroup, sandbox, volumes.
    async fn prepare_pod(&mut self) -> Result<(), String> {
        let dir = self.pod_dir();
        let spec = self.pod.spec.clone().unwrap_or_default();
        let mut laps = Laps::new();
        std::fs::create_dir_all(dir.join("etc")).map_err(|e| e.to_string())?;
        let hostname = spec
            .hostname
            .clone()
            .unwrap_or_else(|| self.pod.metadata.name.clone().unwrap_or_default());
        let hostname: String = hostname.chars().take(63).collect();
        let host_network = spec.host_network == Some(true);
        // Written once; /etc/hosts waits for the pod's address (below).
        if !dir.join("etc/hostname").exists() {
            std::fs::write(dir.join("etc/hostname"), format!("{hostname}\n"))
                .map_err(|e| e.to_string())?;
            let config = &self.shared.config;
            let host = std::fs::read_to_string(&config.resolv_conf).unwrap_or_default();
            let host = crate::dns::ResolvConf::parse(&host);
            let dns = crate::dns::ClusterDns {
                servers: &config.cluster_dns,
                domain: &config.cluster_domain,
                host: &host,
            };
            let ns = self.pod.metadata.namespace.as_deref().unwrap_or("default");
            let (resolv, warnings) = crate::dns::pod_resolv_conf(&spec, ns, &dns);
            for (reason, message) in warnings {
                self.event(None, EventType::Warning, reason, message);
            }
            std::fs::write(dir.join("etc/resolv.conf"), resolv.render())
                .map_err(|e| e.to_string())?;
        }
        // Cgroup for the pod, by QoS, written when its limits change.
        let qos = podspec::pod_qos_class(&spec);
        let resources = crate::cgroup::pod_resources(&spec, self.shared.config.pod_max_pids);
        if self.cgroup_limits.as_ref() != Some(&resources) {
            PodCgroup::ensure_under(
                &self.shared.config.cgroup_root,
                qos_class(qos),
                &self.uid,
                &resources,
            )
            .map_err(|e| format!("creating the pod cgroup: {e}"))?;
            self.cgroup_limits = Some(resources);
        }
        laps.lap("files_cgroup");
        // Sandbox namespaces (again if the holder of the old ones died).
        self.replace_lost_sandbox(&spec).await;
        if self.sandbox.is_none() {
            // Upstream's rule: a `Never` pod whose containers ran gets no new sandbox
            // (its stopped containers make it fail).
            let ran = self.instances.values().any(|l| !l.is_empty());
            if ran && spec.restart_policy.as_deref() == Some("Never") {
                return Err("the pod sandbox is gone and restartPolicy is Never".into());
            }
            let share = SandboxNamespaces {
                net: !host_network,
                ipc: spec.host_ipc != Some(true),
                uts: !host_network,
            };
            let sb = self
                .shared
                .runtime
                .create_sandbox(&dir.join("sandbox"), &self.uid, &hostname, share)
                .await
                .map_err(|e| format!("Failed to create pod sandbox: {e}"))?;
            self.sandbox = Some(sb);
        }
        // A holder that dies wakes the worker, which then replaces the sandbox.
        if let Some(sb) = &self.sandbox {
            if sb.holder_pid().is_some() && self.watched_holder != sb.holder_pid() {
                self.watched_holder = sb.holder_pid();
                let (sb, wake) = (sb.clone(), self.wake.clone());
                tokio::spawn(async move {
                    sb.holder_exited().await;
                    wake.notify_one();
                });
            }
        }
        // The pod network (again after a kubelet restart: the same address, and an
        // existing veth pair is left as it is).
        if self.pod_ip.is_none() && self.shared.config.cni_conf_dir.is_some() {
            if let Some(netns) = self.sandbox.as_ref().and_then(|sb| sb.net.clone()) {
                let (shared, pod, uid, dir) = (
                    self.shared.clone(),
                    self.pod.clone(),
                    self.uid.clone(),
                    dir.clone(),
                );
                let ip = tokio::task::spawn_blocking(move || {
                    crate::cni::connect(&shared, &pod, &uid, &netns, &dir)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("Failed to create pod sandbox: {e}"))?;
                self.pod_ip = Some(ip);
            }
        } else if self.pod_ip.is_none() && self.shared.config.pod_network == "bridge" {
            if let Some(netns) = self.sandbox.as_ref().and_then(|sb| sb.net.clone()) {
                let ip = crate::network::connect(&self.shared, &self.uid, &netns, &spec)
                    .await
                    .map_err(|e| format!("Failed to create pod sandbox: {e}"))?;
                self.pod_ip = Some(ip);
            }
        }
        if !dir.join("etc/hosts").exists() {
            let hosts = if host_network {
                std::fs::read_to_string("/etc/hosts").unwrap_or_default()
            } else {
                let ns = self.pod.metadata.namespace.as_deref().unwrap_or("default");
                let domain = &self.shared.config.cluster_domain;
                crate::dns::hosts_file(&spec, &hostname, self.pod_ip, ns, domain)
            };
            std::fs::write(dir.join("etc/hosts"), hosts).map_err(|e| e.to_string())?;
        }
        laps.lap("sandbox_network");
        // Volumes: set up once, then refreshed every resync period (so configMap,
        // secret, downward API and token updates reach running pods), not at every
        // sync a status echo or a container exit causes.
        if self
            .volumes_synced
            .is_some_and(|at| at.elapsed() < VOLUME_RESYNC)
        {
            return Ok(());
        }
        let (cms, secrets) = volumes::referenced_objects(&self.pod);
        let (config_maps, secrets) = self.fetch(&cms, &secrets).await;
        laps.lap("volume_objects");
        let tokens = self.refresh_tokens().await?;
        laps.lap("tokens");
        let sources = VolumeSources {
            config_maps,
            secrets,
            tokens,
        };
        let allocatable = self.shared.allocatable_quantities();
        for v in spec.volumes.iter().flatten() {
            let made = volumes::payload(
                &self.pod,
                v,
                &sources,
                &self.shared.node_name,
                &self.shared.node_ip.to_string(),
                &allocatable,
            )
            .and_then(|files| volumes::set_up(&dir, v, files.as_ref()));
            match made {
                Ok(path) => {
                    self.volume_paths.insert(v.name.clone(), path);
                }
                Err(e) => {
                    let msg = format!("MountVolume.SetUp failed for volume \"{}\" : {e}", v.name);
                    self.event(None, EventType::Warning, "FailedMount", msg.clone());
                    return Err(msg);
                }
            }
        }
        self.volumes_synced = Some(Instant::now());
        laps.lap("volumes");
        debug!(pod = %pod_key(&self.pod), %laps, "pod set up");
        Ok(())
    }

    /// A sandbox whose holder died (killed, out of memory) has lost its namespaces for
    /// good: as upstream's kubelet does when a pod's pause container dies, the pod's
    /// containers are stopped and its network and sandbox torn down, so the next steps
    /// make a new sandbox (with a new address) and start the containers again by their
    /// restart policy, init containers first again (their work, such as network
    /// setup, went with the old namespaces).
    async fn replace_lost_sandbox(&mut self, spec: &PodSpec) {
        if self.sandbox.as_ref().is_none_or(Sandbox::intact) {
            return;
        }
        warn!(pod = %pod_key(&self.pod), "the pod sandbox's namespace holder is gone");
        self.event(
            None,
            EventType::Normal,
            "SandboxChanged",
            "Pod sandbox changed, it will be killed and re-created.".into(),
        );
        let grace = spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64;
        self.stop_all(Duration::from_secs(grace)).await;
        self.tear_down_sandbox();
        // Rewritten with the new address.
        let _ = std::fs::remove_file(self.pod_dir().join("etc/hosts"));
        // Init containers run again, as upstream purges them with a new sandbox.
        for c in spec.init_containers.iter().flatten() {
            for i in self.instances.remove(&c.name).unwrap_or_default() {
                self.remove_instance(&i.info.id);
            }
        }
    }

    /// Disconnects the pod from its network and removes its sandbox.
    fn tear_down_sandbox(&mut self) {
        if self.shared.config.cni_conf_dir.is_some() {
            // Before the namespace goes, so plugins can undo what they made in it; a
            // lost one's path may name another process's namespace by now.
            let netns = self
                .sandbox
                .as_ref()
                .filter(|sb| sb.intact())
                .and_then(|sb| sb.net.clone());
            let netns = netns.unwrap_or_default();
            crate::cni::disconnect(&self.shared, &self.pod, &self.uid, &netns, &self.pod_dir());
        }
        if let Some(sb) = self.sandbox.take() {
            if let Err(e) = sb.remove() {
                warn!(error = %e, "removing the sandbox failed");
            }
        }
        self.pod_ip = None;
        crate::network::disconnect(&self.shared, &self.uid);
    }

    /// Deletes a stopped container from the runtime and its root file system.
    fn remove_instance(&self, id: &str) {
        if let Err(e) = self.shared.runtime.remove(id) {
            warn!(error = %e, %id, "removing a container failed");
        }
        let dir = self.shared.config.root_dir.join("containers").join(id);
        if let Err(e) = images::ImageStore::unmount_rootfs(&dir) {
            warn!(error = %e, "removing a root filesystem failed");
        }
    }

    /// Tokens for the pod's projected token sources, asked for through the
    /// TokenRequest API (bound to the pod) and renewed after 80% of their life, as
    /// upstream's token manager does.
    async fn refresh_tokens(&mut self) -> Result<BTreeMap<(String, i64), String>, String> {
        let wanted = volumes::token_requests(&self.pod);
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let sa = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let mut out = BTreeMap::new();
        for key in wanted {
            let fresh = self.tokens.get(&key).is_some_and(|(_, at)| {
                at.elapsed() < Duration::from_secs((key.1.max(600) as u64) * 8 / 10)
            });
            if !fresh {
                let mut spec = json!({
                    "expirationSeconds": key.1,
                    "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                        "name": self.pod.metadata.name, "uid": self.uid},
                });
                if !key.0.is_empty() {
                    spec["audiences"] = json!([key.0]);
                }
                let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
                let req = http::Request::post(format!(
                    "/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token"
                ))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap_or_default())
                .map_err(|e| e.to_string())?;
                let resp: serde_json::Value =
                    self.shared.client.request(req).await.map_err(|e| {
                        let msg = format!("MountVolume.SetUp failed: failed to fetch token: {e}");
                        self.event(None, EventType::Warning, "FailedMount", msg.clone());
                        msg
                    })?;
                let token = resp["status"]["token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                self.tokens.insert(key.clone(), (token, Instant::now()));
            }
            if let Some((t, _)) = self.tokens.get(&key) {
                out.insert(key, t.clone());
            }
        }
        Ok(out)
    }

    /// The ConfigMaps and Secrets of the pod's namespace named, those that exist,
    /// from the kubelet's watches of them.
    async fn fetch(
        &self,
        cms: &[String],
        secrets: &[String],
    ) -> (BTreeMap<String, ConfigMap>, BTreeMap<String, Secret>) {
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let mut out_cm = BTreeMap::new();
        let mut out_s = BTreeMap::new();
        for n in cms {
            if let Some(cm) = self.shared.config_maps.get(&self.uid, &ns, n).await {
                out_cm.insert(n.clone(), cm);
            }
        }
        for n in secrets {
            if let Some(s) = self.shared.secrets.get(&self.uid, &ns, n).await {
                out_s.insert(n.clone(), s);
            }
        }
        (out_cm, out_s)
    }

    /// The Services whose variables a container of this pod gets: those of its
    /// namespace and the master Service, from the kubelet's watch of Services. As
    /// upstream, a pod from the API waits for that watch's first list (a little
    /// while, then the start fails and is tried again), so that no container misses
    /// `KUBERNETES_SERVICE_HOST` because the kubelet has just started; a static pod
    /// does not wait.
    async fn services(&self, ns: &str) -> Result<Vec<Service>, String> {
        let store = &self.shared.services;
        if !self.static_pod && !self.shared.services_listed.within(SERVICES_SYNC_WAIT).await {
            return Err(
                "services have not yet been read at least once, cannot construct envvars".into(),
            );
        }
        Ok(store
            .state_filter(|s| env::feeds_env(s, ns))
            .into_iter()
            .map(|s| (*s).clone())
            .collect())
    }

    fn latest(&self, name: &str) -> Option<&Instance> {
        self.instances.get(name).and_then(|l| l.first())
    }

    /// Init containers in order, then app containers.
    async fn run_containers(&mut self) {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        for c in spec.init_containers.iter().flatten() {
            let sidecar = c.restart_policy.as_deref() == Some("Always");
            match self
                .latest(&c.name)
                .map(|i| (i.is_running(), i.exit_code()))
            {
                Some((true, _)) if sidecar => continue,
                Some((true, _)) => return,
                Some((false, Some(0))) if !sidecar => continue,
                Some((false, code)) => {
                    if !sidecar && policy == "Never" {
                        // The pod fails; nothing else starts.
                        let _ = code;
                        return;
                    }
                    if !self.restart(c, true).await || !sidecar {
                        return;
                    }
                }
                None => {
                    if !self.start(c, true).await || !sidecar {
                        return;
                    }
                }
            }
        }
        for c in &spec.containers {
            match self
                .latest(&c.name)
                .map(|i| (i.is_running(), i.exit_code()))
            {
                Some((true, _)) => {}
                Some((false, code)) => {
                    let again = match policy.as_str() {
                        "Never" => false,
                        "OnFailure" => code != Some(0),
                        _ => true,
                    };
                    if again {
                        self.restart(c, false).await;
                    }
                }
                None => {
                    self.start(c, false).await;
                }
            }
        }
    }

    /// Restarts a container that exited, within its back-off. True when started.
    async fn restart(&mut self, c: &Container, init: bool) -> bool {
        let now = Instant::now();
        if let Some(b) = self.backoff.get(&c.name) {
            if now < b.last_start + b.delay {
                let pod = &self.pod;
                let message = format!(
                    "back-off {} restarting failed container={} pod={}_{}({})",
                    format_delay(b.delay),
                    c.name,
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    pod.metadata.namespace.as_deref().unwrap_or_default(),
                    self.uid
                );
                if self.waiting.get(&c.name).map(|w| w.reason.as_str()) != Some("CrashLoopBackOff")
                {
                    self.event(
                        Some(field_path(&self.pod, &c.name)),
                        EventType::Warning,
                        "BackOff",
                        format!(
                            "Back-off restarting failed container {} in pod {}_{}({})",
                            c.name,
                            pod.metadata.name.as_deref().unwrap_or_default(),
                            pod.metadata.namespace.as_deref().unwrap_or_default(),
                            self.uid
                        ),
                    );
                }
                self.waiting.insert(
                    c.name.clone(),
                    Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message: Some(message),
                    },
                );
                return false;
            }
        }
        // A container that ran long enough starts over from the first delay.
        let ran_long = self.latest(&c.name).is_some_and(|i| match &i.info.state {
            ContainerState::Exited {
                started_at: Some(s),
                finished_at,
                ..
            } => finished_at.duration_since(*s).unwrap_or_default() > BACKOFF_MAX * 2,
            _ => false,
        });
        let delay = match self.backoff.get(&c.name) {
            Some(b) if !ran_long => (b.delay * 2).min(BACKOFF_MAX),
            _ => BACKOFF_INITIAL,
        };
        self.backoff.insert(
            c.name.clone(),
            Backoff {
                delay,
                last_start: now,
            },
        );
        self.start(c, init).await
    }

    /// Starts a new instance of `c`. True when it runs.
    async fn start(&mut self, c: &Container, init: bool) -> bool {
        match self.try_start(c, init).await {
            Ok(()) => {
                self.waiting.remove(&c.name);
                true
            }
            Err(w) => {
                self.waiting.insert(c.name.clone(), w);
                false
            }
        }
    }

    async fn try_start(&mut self, c: &Container, init: bool) -> Result<(), Waiting> {
        let field = field_path(&self.pod, &c.name);
        let image_ref = c.image.clone().unwrap_or_default();
        let policy = c.image_pull_policy.clone().unwrap_or_else(|| {
            if image_ref.ends_with(":latest")
                || !image_ref.rsplit('/').next().unwrap_or("").contains(':')
                    && !image_ref.contains('@')
            {
                "Always".into()
            } else {
                "IfNotPresent".into()
            }
        });
        let mut laps = Laps::new();
        let store = self.shared.images.clone();
        let lookup = image_ref.clone();
        let found = tokio::task::spawn_blocking(move || store.resolve(&lookup))
            .await
            .map_err(|e| waiting("ErrImagePull", e.to_string()))?
            .map_err(|e| {
                waiting(
                    "InvalidImageName",
                    format!("Failed to apply default image tag {image_ref:?}: {e}"),
                )
            })?;
        let image = match found {
            Some(i) if policy != "Always" => {
                self.event(
                    Some(field.clone()),
                    EventType::Normal,
                    "Pulled",
                    format!("Container image \"{image_ref}\" already present on machine"),
                );
                i
            }
            None if policy == "Never" => {
                let msg = format!(
                    "Container image \"{image_ref}\" is not present with pull policy of Never"
                );
                self.event(
                    Some(field.clone()),
                    EventType::Warning,
                    "ErrImageNeverPull",
                    msg.clone(),
                );
                return Err(waiting("ErrImageNeverPull", msg));
            }
            _ => self.pull(c, &image_ref, &field).await?,
        };
        laps.lap("image");
        // Environment.
        let (cms, secrets) = env::referenced_objects(c);
        let (config_maps, secrets) = self.fetch(&cms, &secrets).await;
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let services = self.services(&ns).await.map_err(|msg| {
            self.event(
                Some(field.clone()),
                EventType::Warning,
                "Failed",
                format!("Error: {msg}"),
            );
            waiting("CreateContainerConfigError", msg)
        })?;
        laps.lap("env_objects");
        let sources = EnvSources {
            services,
            config_maps,
            secrets,
        };
        let allocatable = self.shared.allocatable_quantities();
        let env = env::container_env(
            &self.pod,
            c,
            &sources,
            &self.shared.node_name,
            &self.shared.node_ip.to_string(),
            &allocatable,
        )
        .map_err(|e| {
            self.event(
                Some(field.clone()),
                EventType::Warning,
                "Failed",
                format!("Error: {e}"),
            );
            waiting("CreateContainerConfigError", e.0)
        })?;
        let spec = self.pod.spec.clone().unwrap_or_default();
        let hostname = spec
            .hostname
            .clone()
            .unwrap_or_else(|| self.pod.metadata.name.clone().unwrap_or_default());
        let env = ocispec::merge_env(&image.config.env, &env, &hostname);
        let args = env::command_line(c, &image.config.entrypoint, &image.config.cmd, &env);
        if args.is_empty() {
            let msg = "no command specified".to_string();
            self.event(
                Some(field.clone()),
                EventType::Warning,
                "Failed",
                format!("Error: {msg}"),
            );
            return Err(waiting("CreateContainerError", msg));
        }
        // Root filesystem.
        let attempt = self.latest(&c.name).map_or(0, |i| i.attempt + 1);
        let id = new_container_id();
        let container_dir = self.shared.config.root_dir.join("containers").join(&id);
        let store = self.shared.images.clone();
        let (img, dir) = (image.clone(), container_dir.clone());
        let points = init_mount_points(c);
        let in_container = self.shared.config.oci_runtime == "builtin";
        let root = tokio::task::spawn_blocking(move || {
            prepare_root(&store, &img, &dir, &points, in_container)
        })
        .await
        .map_err(|e| waiting("CreateContainerError", e.to_string()))?
        .map_err(|e| {
            let msg = format!("failed to create containerd container: {e}");
            waiting("CreateContainerError", msg)
        })?;
        let rootfs = root.layers.rootfs.clone();
        laps.lap("rootfs");
        let fail = |this: &Self, reason: &str, msg: String| {
            let _ = images::ImageStore::unmount_rootfs(&container_dir);
            this.event(
                Some(field.clone()),
                EventType::Warning,
                "Failed",
                format!("Error: {msg}"),
            );
            waiting(reason, msg)
        };
        let files = |rel: &str| root.file(rel);
        let user = match ocispec::resolve_user(&self.pod, c, &image.config.user, &files) {
            Ok(u) => u,
            Err(e) => return Err(fail(self, "CreateContainerConfigError", e.to_string())),
        };
        // Mounts: the pod's etc files, the termination log, volumes.
        let pod_dir = self.pod_dir();
        let term_dir = pod_dir.join("containers").join(&c.name);
        let _ = std::fs::create_dir_all(&term_dir);
        let term_log = term_dir.join(&id[..8]);
        let _ = std::fs::write(&term_log, b"");
        let mut mounts = vec![
            BindMount {
                source: pod_dir.join("etc/hosts"),
                destination: "/etc/hosts".into(),
                read_only: false,
            },
            BindMount {
                source: pod_dir.join("etc/hostname"),
                destination: "/etc/hostname".into(),
                read_only: false,
            },
            BindMount {
                source: pod_dir.join("etc/resolv.conf"),
                destination: "/etc/resolv.conf".into(),
                read_only: false,
            },
            BindMount {
                source: term_log.clone(),
                destination: c
                    .termination_message_path
                    .clone()
                    .unwrap_or_else(|| "/dev/termination-log".into()),
                read_only: false,
            },
        ];
        for vm in c.volume_mounts.iter().flatten() {
            let Some(base) = self.volume_paths.get(&vm.name) else {
                return Err(fail(
                    self,
                    "CreateContainerConfigError",
                    format!(
                        "cannot find volume \"{}\" to mount into container \"{}\"",
                        vm.name, c.name
                    ),
                ));
            };
            let mut source = base.clone();
            if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
                if sub.split('/').any(|p| p == "..") || sub.starts_with('/') {
                    return Err(fail(
                        self,
                        "CreateContainerConfigError",
                        format!("subPath {sub:?} must not escape the volume"),
                    ));
                }
                source = source.join(sub);
                if !source.exists() {
                    let _ = std::fs::create_dir_all(&source);
                }
            }
            mounts.push(BindMount {
                source,
                destination: vm.mount_path.clone(),
                read_only: vm.read_only == Some(true),
            });
        }
        let qos = podspec::pod_qos_class(&spec);
        let sb = self.sandbox.as_ref();
        let namespaces = PodNamespaces {
            net: sb.and_then(|s| s.net.clone()),
            ipc: sb.and_then(|s| s.ipc.clone()),
            uts: sb.and_then(|s| s.uts.clone()),
            host_pid: spec.host_pid == Some(true),
        };
        let cwd = c
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| image.config.working_dir.clone());
        let input = SpecInput {
            pod: &self.pod,
            container: c,
            rootfs: &rootfs,
            root_mount: root.root_mount,
            args,
            env,
            cwd,
            user,
            namespaces,
            cgroups_path: format!(
                "{}/{id}",
                pod_cgroup_path_under(&self.shared.config.cgroup_root, qos_class(qos), &self.uid)
            ),
            limits: ocispec::limits_of(c, qos, self.shared.machine.memory),
            mounts,
        };
        let oci = match ocispec::build(&input) {
            Ok(s) => s,
            Err(e) => return Err(fail(self, "CreateContainerConfigError", e.to_string())),
        };
        let log_path = self.log_path(&c.name, attempt);
        if let Some(parent) = log_path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let pod = &self.pod;
        let labels = BTreeMap::from([
            (labels::POD_UID.to_string(), self.uid.clone()),
            (
                labels::POD_NAME.to_string(),
                pod.metadata.name.clone().unwrap_or_default(),
            ),
            (
                labels::POD_NAMESPACE.to_string(),
                pod.metadata.namespace.clone().unwrap_or_default(),
            ),
            (labels::CONTAINER_NAME.to_string(), c.name.clone()),
            (labels::ATTEMPT.to_string(), attempt.to_string()),
            (
                labels::KIND.to_string(),
                if init { "init" } else { "app" }.to_string(),
            ),
            (labels::IMAGE.to_string(), image_ref.clone()),
            (
                labels::IMAGE_ID.to_string(),
                image
                    .repo_digests
                    .first()
                    .cloned()
                    .unwrap_or_else(|| image.id.clone()),
            ),
        ]);
        self.event(
            Some(field.clone()),
            EventType::Normal,
            "Created",
            format!("Created container: {}", c.name),
        );
        laps.lap("spec");
        let started = self
            .shared
            .runtime
            .start_with_io(
                &id,
                &oci,
                &log_path,
                labels,
                ContainerIo {
                    stdin: c.stdin.unwrap_or(false),
                    stdin_once: c.stdin_once.unwrap_or(false),
                    tty: c.tty.unwrap_or(false),
                },
            )
            .await;
        laps.lap("runtime");
        debug!(pod = %pod_key(&self.pod), container = %c.name, %laps, "container start");
        match started {
            Ok(info) => {
                info!(pod = %pod_key(&self.pod), container = %c.name, id = %id, "started container");
                self.event(
                    Some(field),
                    EventType::Normal,
                    "Started",
                    format!("Started container {}", c.name),
                );
                let started_id = info.id.clone();
                self.record(Instance {
                    info,
                    name: c.name.clone(),
                    attempt,
                    init,
                });
                if let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.clone()) {
                    let target = self.target(c, &started_id);
                    let budget = Duration::from_secs(
                        spec.termination_grace_period_seconds.unwrap_or(30).max(1) as u64,
                    );
                    if let Err(m) = probes::run_hook(&target, &hook, budget).await {
                        let field = field_path(&self.pod, &c.name);
                        self.event(
                            Some(field),
                            EventType::Warning,
                            "FailedPostStartHook",
                            format!("PostStartHook failed: {m}"),
                        );
                        let _ = self
                            .shared
                            .runtime
                            .stop(&started_id, Duration::from_secs(2), None)
                            .await;
                        self.refresh();
                        return Err(waiting("PostStartHookError", m));
                    }
                }
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                // A failed start is kept as an exited instance when the runtime has one.
                if let Ok(Some(info)) = self.shared.runtime.get(&id) {
                    self.record(Instance {
                        info,
                        name: c.name.clone(),
                        attempt,
                        init,
                    });
                } else {
                    let _ = images::ImageStore::unmount_rootfs(&container_dir);
                }
                self.event(
                    Some(field),
                    EventType::Warning,
                    "Failed",
                    format!("Error: {msg}"),
                );
                Err(waiting("RunContainerError", msg))
            }
        }
    }

    /// Pulls an image with the pod's (and its service account's) pull secrets,
    /// within the per-image back-off (10 s doubling to 5 min), as upstream.
    async fn pull(
        &mut self,
        c: &Container,
        image_ref: &str,
        field: &str,
    ) -> Result<images::Image, Waiting> {
        let now = Instant::now();
        if let Some(b) = self.pull_backoff.get(image_ref) {
            if now < b.last_start + b.delay {
                let msg = self
                    .waiting
                    .get(&c.name)
                    .and_then(|w| w.message.clone())
                    .unwrap_or_default();
                self.event(
                    Some(field.to_string()),
                    EventType::Normal,
                    "BackOff",
                    format!("Back-off pulling image \"{image_ref}\""),
                );
                let msg = msg
                    .strip_prefix(&format!("Back-off pulling image \"{image_ref}\": "))
                    .unwrap_or(&msg)
                    .to_string();
                return Err(waiting(
                    "ImagePullBackOff",
                    format!("Back-off pulling image \"{image_ref}\": {msg}"),
                ));
            }
        }
        self.event(
            Some(field.to_string()),
            EventType::Normal,
            "Pulling",
            format!("Pulling image \"{image_ref}\""),
        );
        let opts = images::PullOptions {
            auth: self.pull_auths().await,
            insecure_registries: self.shared.config.insecure_registries.clone(),
            ..Default::default()
        };
        let began = Instant::now();
        match self.shared.images.pull(image_ref, &opts).await {
            Ok(img) => {
                self.pull_backoff.remove(image_ref);
                let took = began.elapsed().as_secs_f64();
                self.event(
                    Some(field.to_string()),
                    EventType::Normal,
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image_ref}\" in {took:.3}s ({took:.3}s including waiting). Image size: {} bytes.",
                        img.size
                    ),
                );
                Ok(img)
            }
            Err(e) => {
                let delay = match self.pull_backoff.get(image_ref) {
                    Some(b) => (b.delay * 2).min(BACKOFF_MAX),
                    None => BACKOFF_INITIAL,
                };
                self.pull_backoff.insert(
                    image_ref.to_string(),
                    Backoff {
                        delay,
                        last_start: now,
                    },
                );
                let msg = e.to_string();
                self.event(
                    Some(field.to_string()),
                    EventType::Warning,
                    "Failed",
                    format!("Failed to pull image \"{image_ref}\": {msg}"),
                );
                self.event(
                    Some(field.to_string()),
                    EventType::Warning,
                    "Failed",
                    "Error: ErrImagePull".to_string(),
                );
                Err(waiting("ErrImagePull", msg))
            }
        }
    }

    /// Registry credentials from the pod's imagePullSecrets, then its service
    /// account's.
    async fn pull_auths(&self) -> Vec<images::RegistryAuth> {
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let spec = self.pod.spec.as_ref();
        let mut names: Vec<String> = spec
            .and_then(|s| s.image_pull_secrets.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.name)
            .collect();
        let sa = spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(self.shared.client.clone(), &ns);
        if let Ok(Some(sa)) = sas.get_opt(&sa).await {
            names.extend(
                sa.image_pull_secrets
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| r.name),
            );
        }
        let (_, secrets) = self.fetch(&[], &names).await;
        let mut out = Vec::new();
        for n in &names {
            let Some(s) = secrets.get(n) else { continue };
            let data = s.data.as_ref();
            let raw = data
                .and_then(|d| d.get(".dockerconfigjson").or_else(|| d.get(".dockercfg")))
                .map(|b| b.0.clone());
            if let Some(raw) = raw {
                match images::auths_from_docker_config(&raw) {
                    Ok(a) => out.extend(a),
                    Err(e) => warn!(secret = %n, error = %e, "unreadable image pull secret"),
                }
            }
        }
        out
    }

    /// Keeps the new instance and the one before it; older ones are removed.
    fn record(&mut self, i: Instance) {
        let list = self.instances.entry(i.name.clone()).or_default();
        list.insert(0, i);
        while list.len() > 2 {
            if let Some(old) = list.pop() {
                let _ = self.shared.runtime.remove(&old.info.id);
                let dir = self
                    .shared
                    .config
                    .root_dir
                    .join("containers")
                    .join(&old.info.id);
                let _ = images::ImageStore::unmount_rootfs(&dir);
            }
        }
        self.wake.notify_one();
    }

    fn log_path(&self, container: &str, attempt: u32) -> PathBuf {
        let m = &self.pod.metadata;
        self.shared
            .config
            .pod_logs_dir
            .join(format!(
                "{}_{}_{}",
                m.namespace.as_deref().unwrap_or_default(),
                m.name.as_deref().unwrap_or_default(),
                self.uid
            ))
            .join(container)
            .join(format!("{attempt}.log"))
    }

    /// Posts a rejected pod's status once (upstream's rejectPod: phase Failed, the
    /// reason, `Pod was rejected: <message>`, the QoS class) with a Warning event.
    async fn report_rejection(&mut self) {
        let Some(rejection) = self.rejection.clone() else {
            return;
        };
        if self.last_status.is_some() {
            return;
        }
        let spec = self.pod.spec.clone().unwrap_or_default();
        let status = PodStatus {
            phase: Some("Failed".into()),
            reason: Some(rejection.reason.clone()),
            message: Some(format!("Pod was rejected: {}", rejection.message)),
            qos_class: Some(podspec::pod_qos_class(&spec).to_string()),
            ..Default::default()
        };
        {
            let mut seen = self.pod.clone();
            seen.status = Some(status.clone());
            self.shared.pods.write().insert(self.uid.clone(), seen);
        }
        if self.static_pod {
            // No mirror pod is made for a static pod that never runs.
            self.last_status = Some(status);
            self.event(
                None,
                EventType::Warning,
                &rejection.reason,
                rejection.message,
            );
            return;
        }
        let uid = self.uid.clone();
        if self.post_status(&uid, status).await {
            self.event(
                None,
                EventType::Warning,
                &rejection.reason,
                rejection.message,
            );
        }
    }

    /// Merge-patches the pod's status (with the pod's `uid` as precondition) and
    /// remembers it as the last posted; false when the update failed (the next sync
    /// tries again).
    async fn post_status(&mut self, uid: &str, status: PodStatus) -> bool {
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &ns);
        let patch = json!({"metadata": {"uid": uid}, "status": status});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(p) => {
                let rv = p
                    .metadata
                    .resource_version
                    .as_deref()
                    .and_then(|v| v.parse().ok());
                self.after_post = rv.zip(p.status.clone());
                self.pod.status = p.status;
                self.last_status = Some(status);
                true
            }
            Err(e) => {
                debug!(pod = %pod_key(&self.pod), error = %e, "status update failed; will retry");
                false
            }
        }
    }

    /// Posts the status when it changed.
    async fn report(&mut self) {
        let (ready, started) = self.probe_views();
        let observed = Observed {
            pod: &self.pod,
            instances: &self.instances,
            waiting: &self.waiting,
            ready: &ready,
            started: &started,
            sandbox_ready: self.sandbox.is_some()
                || self.pod.spec.as_ref().and_then(|s| s.host_network) == Some(true),
            host_ip: self.shared.node_ip.to_string(),
            pod_ip: self.pod_ip.map(|ip| ip.to_string()),
            start_time: self.first_seen,
            pod_reason: self.pod_failure.clone(),
            last_reported: self.last_status.as_ref(),
        };
        let status = status::pod_status(&observed);
        {
            let mut seen = self.pod.clone();
            seen.status = Some(status.clone());
            self.shared.pods.write().insert(self.uid.clone(), seen);
        }
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &ns);
        // A static pod's mirror is made again whenever it went away.
        if self.static_pod && !self.ensure_mirror(&api).await {
            return;
        }
        if self.last_status.as_ref() == Some(&status) && !self.rewritten_by_others() {
            return;
        }
        let uid = if self.static_pod {
            self.mirror
                .as_ref()
                .and_then(|m| m.metadata.uid.clone())
                .unwrap_or_default()
        } else {
            self.uid.clone()
        };
        self.post_status(&uid, status).await;
    }

    /// Whether the API's copy of the status, newer than the kubelet's last write,
    /// differs from what that write left in what the kubelet reports (someone else
    /// rewrote it): the kubelet then writes its own again, as upstream's status
    /// manager does at its periodic sync. Older copies (a watch lagging behind the
    /// write) do not count.
    fn rewritten_by_others(&self) -> bool {
        let Some((posted_rv, after)) = &self.after_post else {
            return false;
        };
        let rv: Option<u64> = self
            .pod
            .metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok());
        match (rv, &self.pod.status) {
            (Some(rv), Some(now)) if rv > *posted_rv => !status::same_by_kubelet(after, now),
            _ => false,
        }
    }

    /// Makes sure a static pod's mirror exists in the API (creating it, owned by
    /// the Node); false when it cannot be made now.
    async fn ensure_mirror(&mut self, api: &Api<Pod>) -> bool {
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        match &self.mirror {
            // Someone deletes the mirror: it goes at once and a new one is made.
            Some(m) if m.metadata.deletion_timestamp.is_some() => {
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: m.metadata.uid.clone(),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                let _ = api.delete(&name, &dp).await;
                self.mirror = None;
            }
            Some(_) => return true,
            None => {}
        }
        if let Ok(Some(existing)) = api.get_opt(&name).await {
            if crate::staticpods::mirror_hash(&existing) == Some(self.uid.as_str()) {
                self.mirror = Some(existing);
                return true;
            }
            // A stale mirror (an older manifest) or a pod in the way: replace it.
            let _ = api
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
        }
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.shared.client.clone());
        let node_uid = match nodes.get(&self.shared.node_name).await {
            Ok(n) => n.metadata.uid.unwrap_or_default(),
            Err(_) => return false,
        };
        let mirror = crate::staticpods::mirror_of(&self.pod, &node_uid);
        match api.create(&kube::api::PostParams::default(), &mirror).await {
            Ok(m) => {
                self.mirror = Some(m);
                self.last_status = None;
                true
            }
            Err(e) => {
                debug!(pod = %pod_key(&self.pod), error = %e, "creating the mirror pod failed");
                false
            }
        }
    }

    /// Stops everything within the grace period, removes what the pod had on the
    /// node, and completes the deletion.
    async fn terminate(&mut self) -> Next {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let grace = if self.gone_from_api && !self.static_pod {
            MINIMUM_GRACE
        } else {
            let secs = self
                .pod
                .metadata
                .deletion_grace_period_seconds
                .or(spec.termination_grace_period_seconds)
                .unwrap_or(30)
                .max(0) as u64;
            Duration::from_secs(secs)
        };
        self.stop_all(grace).await;
        self.cleanup(true);
        if self.static_pod {
            // The manifest went away: so does the mirror.
            let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
            let name = self.pod.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &ns);
            let _ = api
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
            return Next::Done;
        }
        if self.gone_from_api {
            return Next::Done;
        }
        // Everything is gone from the node: the object can go.
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &ns);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        loop {
            match api.delete(&name, &dp).await {
                Ok(_) => return Next::Done,
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return Next::Done,
                Err(e) => {
                    debug!(pod = %pod_key(&self.pod), error = %e, "final delete failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// The container spec of `name` (app or init).
    fn spec_of(&self, name: &str) -> Option<Container> {
        let spec = self.pod.spec.as_ref()?;
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .cloned()
    }

    fn target(&self, c: &Container, id: &str) -> Target {
        let host_network = self.pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
        Target {
            runtime: self.shared.runtime.clone(),
            container_id: id.to_string(),
            netns: if host_network {
                None
            } else {
                self.sandbox.as_ref().and_then(|s| s.net.clone())
            },
            container: c.clone(),
        }
    }

    /// Starts the startup, liveness and readiness probers of a running instance.
    fn start_probers(&mut self, name: &str, id: &str) {
        let Some(c) = self.spec_of(name) else { return };
        let state = Arc::new(parking_lot::Mutex::new(ProbeState {
            started: c.startup_probe.is_none(),
            ready: false,
            restart: None,
        }));
        let mut tasks = Vec::new();
        for (kind, probe) in [
            (probes::Kind::Startup, c.startup_probe.clone()),
            (probes::Kind::Liveness, c.liveness_probe.clone()),
            (probes::Kind::Readiness, c.readiness_probe.clone()),
        ] {
            let Some(probe) = probe else { continue };
            let recorder = self.shared.recorder.clone();
            let mut reference = object_reference(&self.pod);
            reference.field_path = Some(field_path(&self.pod, name));
            let on_failure = move |kind: probes::Kind, msg: String| {
                recorder.event_for(
                    reference.clone(),
                    EventType::Warning,
                    "Unhealthy",
                    format!("{} probe failed: {msg}", kind.title()),
                );
            };
            tasks.push(tokio::spawn(probes::run_prober(
                kind,
                probe,
                self.target(&c, id),
                state.clone(),
                self.wake.clone(),
                on_failure,
            )));
        }
        self.probes.insert(id.to_string(), (state, tasks));
    }

    /// Readiness and started-ness by container name, from the probes.
    fn probe_views(&self) -> (BTreeMap<String, bool>, BTreeMap<String, bool>) {
        let mut ready = BTreeMap::new();
        let mut started = BTreeMap::new();
        for (name, list) in &self.instances {
            let Some(latest) = list.first() else { continue };
            let c = self.spec_of(name);
            let state = self
                .probes
                .get(&latest.info.id)
                .map(|(s, _)| s.lock().clone());
            let is_started = state.as_ref().is_some_and(|s| s.started);
            let has_readiness = c.as_ref().is_some_and(|c| c.readiness_probe.is_some());
            let is_ready =
                is_started && (!has_readiness || state.as_ref().is_some_and(|s| s.ready));
            ready.insert(name.clone(), is_ready);
            started.insert(name.clone(), is_started);
        }
        (ready, started)
    }

    /// Kills containers whose liveness or startup probe failed past its threshold;
    /// the restart policy then decides what follows.
    async fn restart_unhealthy(&mut self) {
        let mut doomed = Vec::new();
        for (id, (state, _)) in &self.probes {
            if let Some(msg) = state.lock().restart.take() {
                doomed.push((id.clone(), msg));
            }
        }
        for (id, msg) in doomed {
            let Some(inst) = self
                .instances
                .values()
                .flatten()
                .find(|i| i.info.id == id)
                .cloned()
            else {
                continue;
            };
            self.event(
                Some(field_path(&self.pod, &inst.name)),
                EventType::Normal,
                "Killing",
                msg,
            );
            let grace = self
                .spec_of(&inst.name)
                .and_then(|c| {
                    c.liveness_probe
                        .and_then(|p| p.termination_grace_period_seconds)
                })
                .or_else(|| {
                    self.pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds)
                })
                .unwrap_or(30)
                .max(0) as u64;
            if let Err(e) = self
                .shared
                .runtime
                .stop(&id, Duration::from_secs(grace), None)
                .await
            {
                warn!(error = %e, "stopping an unhealthy container failed");
            }
        }
        self.refresh();
    }

    /// Stops every running container within `grace`, running preStop hooks first.
    async fn stop_all(&self, grace: Duration) {
        let mut stops = Vec::new();
        for list in self.instances.values() {
            for i in list.iter().filter(|i| i.is_running()) {
                self.event(
                    Some(field_path(&self.pod, &i.name)),
                    EventType::Normal,
                    "Killing",
                    format!("Stopping container {}", i.name),
                );
                let rt = self.shared.runtime.clone();
                let id = i.info.id.clone();
                let hook = self.spec_of(&i.name).and_then(|c| {
                    c.lifecycle
                        .as_ref()
                        .and_then(|l| l.pre_stop.clone())
                        .map(|h| (h, c))
                });
                let target = hook.as_ref().map(|(_, c)| self.target(c, &id));
                let recorder = self.shared.recorder.clone();
                let mut reference = object_reference(&self.pod);
                reference.field_path = Some(field_path(&self.pod, &i.name));
                let name = i.name.clone();
                stops.push(async move {
                    let began = Instant::now();
                    if let (Some((hook, _)), Some(target)) = (hook, target) {
                        let run = probes::run_hook(&target, &hook, grace);
                        match tokio::time::timeout(grace, run).await {
                            Ok(Ok(())) => {}
                            Ok(Err(m)) => recorder.event_for(
                                reference,
                                EventType::Warning,
                                "FailedPreStopHook",
                                format!("PreStopHook failed: {m}"),
                            ),
                            Err(_) => recorder.event_for(
                                reference,
                                EventType::Warning,
                                "FailedPreStopHook",
                                format!(
                                    "PreStop hook for container {name} did not complete in {}s",
                                    grace.as_secs()
                                ),
                            ),
                        }
                    }
                    rt.stop(&id, grace.saturating_sub(began.elapsed()), None)
                        .await
                });
            }
        }
        for r in futures::future::join_all(stops).await {
            if let Err(e) = r {
                warn!(pod = %pod_key(&self.pod), error = %e, "stopping a container failed");
            }
        }
    }

    /// Stops the watches of ConfigMaps and Secrets only this pod used.
    fn release_objects(&self) {
        self.shared.config_maps.release(&self.uid);
        self.shared.secrets.release(&self.uid);
    }

    /// Marks the pod finished for good, for this worker and for node shutdown.
    fn finish(&mut self) {
        self.finished = true;
        self.shared.finished.lock().insert(self.uid.clone());
    }

    /// Removes containers, sandbox, volumes, pod directory and cgroup; with
    /// `logs`, the container logs too.
    fn cleanup(&mut self, logs: bool) {
        self.release_objects();
        for (_, (_, tasks)) in self.probes.drain() {
            tasks.iter().for_each(JoinHandle::abort);
        }
        for list in self.instances.values() {
            for i in list {
                self.remove_instance(&i.info.id);
            }
        }
        self.instances.clear();
        self.tear_down_sandbox();
        if let Err(e) = volumes::tear_down(&self.pod_dir()) {
            warn!(error = %e, "removing the pod directory failed");
        }
        // What is left of a pod that is gone has no spec to say its QoS class.
        let classes = match &self.pod.spec {
            Some(spec) => vec![qos_class(podspec::pod_qos_class(spec))],
            None => vec![
                QosClass::Guaranteed,
                QosClass::Burstable,
                QosClass::BestEffort,
            ],
        };
        for qos in classes {
            let path = pod_cgroup_path_under(&self.shared.config.cgroup_root, qos, &self.uid);
            if let Err(e) = PodCgroup::from_path(path).remove() {
                warn!(error = %e, "removing the pod cgroup failed");
            }
        }
        if !logs {
            return;
        }
        let m = &self.pod.metadata;
        let dir = &self.shared.config.pod_logs_dir;
        match (&m.namespace, &m.name) {
            (Some(ns), Some(name)) => {
                let _ = std::fs::remove_dir_all(dir.join(format!("{ns}_{name}_{}", self.uid)));
            }
            // Unnamed: whichever log directory ends in the UID.
            _ => {
                let suffix = format!("_{}", self.uid);
                for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                    if e.file_name().to_string_lossy().ends_with(&suffix) {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
    }
}

/// The runtime's QoS class for an API QoS class name.
/// How long each step of a pod's setup or a container's start took, for the debug
/// log: `name=ms` pairs in order.
struct Laps {
    at: Instant,
    done: Vec<(&'static str, u128)>,
}

impl Laps {
    fn new() -> Laps {
        Laps {
            at: Instant::now(),
            done: Vec::new(),
        }
    }

    /// Ends the step called `name`, which began at the previous lap.
    fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        self.done.push((name, (now - self.at).as_millis()));
        self.at = now;
    }
}

impl std::fmt::Display for Laps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, ms)) in self.done.iter().enumerate() {
            write!(f, "{}{name}={ms}ms", if i == 0 { "" } else { " " })?;
        }
        Ok(())
    }
}

fn qos_class(qos: &str) -> QosClass {
    match qos {
        "Guaranteed" => QosClass::Guaranteed,
        "Burstable" => QosClass::Burstable,
        _ => QosClass::BestEffort,
    }
}

fn waiting(reason: &str, message: impl Into<String>) -> Waiting {
    Waiting {
        reason: reason.into(),
        message: Some(message.into()),
    }
}

/// `spec.containers{name}` or `spec.initContainers{name}`, as events carry it.
fn field_path(pod: &Pod, name: &str) -> String {
    let init = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .any(|c| c.name == name);
    if init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    }
}

/// A back-off delay as Go prints durations (`10s`, `1m20s`, `5m0s`).
fn format_delay(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

/// Where the service account admission mounts a pod's API token.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A container's root filesystem as the kubelet hands it to the runtime.
struct PreparedRoot {
    layers: images::RootfsLayers,
    /// Options of the overlayfs the runtime mounts in the container's own mount
    /// namespace; `None` when it is mounted on the host.
    root_mount: Option<Vec<String>>,
    /// The image's `etc/passwd` and `etc/group`, read from the layers when the root
    /// is not mounted on the host.
    user_files: Option<(Option<String>, Option<String>)>,
}

impl PreparedRoot {
    /// A file of the image's root filesystem for [`ocispec::resolve_user`]: the user
    /// files read from the layers, or whatever the root mounted here holds.
    fn file(&self, rel: &str) -> Option<String> {
        match (&self.user_files, rel) {
            (Some((passwd, _)), "etc/passwd") => passwd.clone(),
            (Some((_, group)), "etc/group") => group.clone(),
            (Some(_), _) => None,
            (None, _) => ocispec::files_under(&self.layers.rootfs)(rel),
        }
    }
}

/// Prepares a container's root filesystem. With `in_container` (the built-in runtime)
/// it is mounted in the container's own mount namespace, so the host's mount table
/// (which every new container's namespace copies) does not grow with containers;
/// the image's user files are then read from its layers. Otherwise, or when the
/// layers cannot tell those files or the options do not fit one mount call, it is
/// mounted here.
fn prepare_root(
    store: &images::ImageStore,
    image: &images::Image,
    dir: &std::path::Path,
    points: &[images::MountPoint],
    in_container: bool,
) -> Result<PreparedRoot, images::Error> {
    let layers = store.prepare_rootfs_with(image, dir, points)?;
    if in_container {
        if let Some(options) = layers.overlay_options() {
            let read = |rel: &str| {
                layers
                    .read_file(std::path::Path::new(rel))
                    .map(|f| f.map(|b| String::from_utf8_lossy(&b).into_owned()))
            };
            if let (Ok(passwd), Ok(group)) = (read("etc/passwd"), read("etc/group")) {
                return Ok(PreparedRoot {
                    layers,
                    root_mount: Some(options),
                    user_files: Some((passwd, group)),
                });
            }
        }
    }
    layers.mount()?;
    Ok(PreparedRoot {
        layers,
        root_mount: None,
        user_files: None,
    })
}

/// The mount points every container of an image gets (the runtime's `/proc`, `/sys`
/// and `/dev`, the pod's etc files) plus the service account directory when `c`
/// mounts the token: made once per image in its init layer rather than in each
/// container's writable layer.
fn init_mount_points(c: &Container) -> Vec<images::MountPoint> {
    use images::MountPoint::{Dir, File};
    let mut points = vec![
        Dir("/proc".into()),
        Dir("/sys".into()),
        Dir("/dev".into()),
        File("/etc/hosts".into()),
        File("/etc/hostname".into()),
        File("/etc/resolv.conf".into()),
    ];
    let token = c
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| m.mount_path.trim_end_matches('/') == SERVICE_ACCOUNT_DIR);
    if token {
        points.push(Dir(SERVICE_ACCOUNT_DIR.into()));
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_print_as_go() {
        assert_eq!(format_delay(Duration::from_secs(10)), "10s");
        assert_eq!(format_delay(Duration::from_secs(80)), "1m20s");
        assert_eq!(format_delay(Duration::from_secs(300)), "5m0s");
    }

    #[test]
    fn field_paths_name_the_list() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "i"}], "containers": [{"name": "c"}]}}))
        .unwrap();
        assert_eq!(field_path(&pod, "i"), "spec.initContainers{i}");
        assert_eq!(field_path(&pod, "c"), "spec.containers{c}");
    }

    #[test]
    fn only_changes_to_what_runs_ask_for_a_sync() {
        let pod = |v: serde_json::Value| -> Pod { serde_json::from_value(v).unwrap() };
        let base = json!({
            "metadata": {"name": "p", "resourceVersion": "1", "labels": {"a": "1"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Pending"}
        });
        let old = pod(base.clone());
        let mut status_only = base.clone();
        status_only["metadata"]["resourceVersion"] = json!("2");
        status_only["status"] = json!({"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]});
        assert!(!needs_sync(&old, &pod(status_only.clone())));
        let mut relabelled = base.clone();
        relabelled["metadata"]["labels"]["a"] = json!("2");
        assert!(needs_sync(&old, &pod(relabelled)));
        let mut deleted = base.clone();
        deleted["metadata"]["deletionTimestamp"] = json!("2026-11-24T00:00:00Z");
        assert!(needs_sync(&old, &pod(deleted)));
        let mut resized = base.clone();
        resized["spec"]["containers"][0]["image"] = json!("j");
        assert!(needs_sync(&old, &pod(resized)));
        // With a readiness gate, conditions others write decide Ready.
        let mut gated = base.clone();
        gated["spec"]["readinessGates"] = json!([{"conditionType": "example.com/gate"}]);
        let mut gated_done = gated.clone();
        gated_done["status"]["conditions"] =
            json!([{"type": "example.com/gate", "status": "True"}]);
        assert!(needs_sync(&pod(gated.clone()), &pod(gated_done.clone())));
        let mut gated_phase = gated_done.clone();
        gated_phase["status"]["phase"] = json!("Running");
        assert!(!needs_sync(&pod(gated_done), &pod(gated_phase)));
    }
}
