//! The simulated nodes themselves: the shared state of a run (`Sim`, one `SimNode`
//! per node), the Node object and NodeStatus a kubelet would report, registration
//! (create or take over), Lease renewals and status reports spread evenly over
//! their intervals, and the Node watch that follows podCIDRs, the heartbeat knob
//! and status drift.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Namespace, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec,
    NodeStatus, NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::cidr::Ipv4Cidr;
use crate::config::Settings;
use crate::knobs::heartbeat_stopped;
use crate::podsim::digest;
use crate::SimError;

/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// `leaseDurationSeconds` of every node Lease (the kubelet's default).
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// The kubelet version the nodes report.
pub const KUBELET_VERSION: &str = "v1.33.0";
/// The container runtime version the nodes report.
pub const RUNTIME_VERSION: &str = "sim://1.0";
/// The kubelet port the nodes report.
pub const KUBELET_PORT: i32 = 10250;

/// What the Node watch tells the pod side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeEvent {
    /// The node's heartbeat was restarted: its pods need a look.
    Resumed(usize),
    /// The node's podCIDR changed: pods waiting for an address may get one now.
    CidrChanged(usize),
}

/// What is known of a node's object.
#[derive(Debug, Default)]
pub(crate) struct NodeState {
    pub uid: Option<String>,
    pub pod_cidr: Option<Ipv4Cidr>,
    /// The Node object was deleted: no more status reports or Lease renewals.
    pub gone: bool,
    /// The last Lease written, to update in place.
    pub lease: Option<Lease>,
    /// The last NodeStatus seen, for condition transition times.
    pub status: Option<NodeStatus>,
}

/// One simulated node.
#[derive(Debug)]
pub(crate) struct SimNode {
    pub index: usize,
    pub name: String,
    pub internal_ip: Ipv4Addr,
    fallback_cidr: Option<Ipv4Cidr>,
    boot_id: String,
    /// Heartbeat stopped by the knob: the node acts as if its kubelet died.
    pub stopped: AtomicBool,
    lease_busy: AtomicBool,
    status_busy: AtomicBool,
    state: Mutex<NodeState>,
}

/// Clears a busy flag when dropped.
struct Busy<'a>(&'a AtomicBool);

impl<'a> Busy<'a> {
    fn take(flag: &'a AtomicBool) -> Option<Busy<'a>> {
        flag.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Busy(flag))
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn uuid_form(hex: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The podCIDR a Node's spec gives: the first IPv4 entry of `podCIDRs`, else
/// `podCIDR`.
pub(crate) fn spec_pod_cidr(spec: Option<&NodeSpec>) -> Option<Ipv4Cidr> {
    let spec = spec?;
    spec.pod_cidrs
        .iter()
        .flatten()
        .chain(spec.pod_cidr.iter())
        .find_map(|s| s.parse().ok())
}

fn cond(
    ty: &str,
    status: &str,
    reason: &str,
    message: &str,
    observed: Option<&NodeStatus>,
    now: Timestamp,
) -> NodeCondition {
    let since = observed
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == ty && c.status == status))
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    NodeCondition {
        type_: ty.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(since),
    }
}

impl SimNode {
    fn new(settings: &Settings, index: usize, started: Timestamp) -> SimNode {
        let name = settings.node_name(index);
        let host = u32::try_from(index + 1).unwrap_or(u32::MAX) & 0xffff;
        let boot = digest(&["boot", &name, &started.as_nanosecond().to_string()]);
        SimNode {
            index,
            internal_ip: Ipv4Addr::from((172u32 << 24) | (30 << 16) | host),
            fallback_cidr: settings.pod_cidr_base.nth_slash24(index),
            boot_id: uuid_form(&boot),
            stopped: AtomicBool::new(false),
            lease_busy: AtomicBool::new(false),
            status_busy: AtomicBool::new(false),
            state: Mutex::new(NodeState::default()),
            name,
        }
    }

    /// The node's state; a poisoned lock is still usable (the state stays consistent).
    pub fn state(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The network pod addresses come from: spec.podCIDR, else the fallback /24.
    pub fn pod_cidr(&self) -> Option<Ipv4Cidr> {
        self.state().pod_cidr.or(self.fallback_cidr)
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// The labels a node registers with.
    pub fn labels(&self, settings: &Settings) -> BTreeMap<String, String> {
        let mut l = BTreeMap::new();
        l.insert("beta.kubernetes.io/arch".into(), "amd64".into());
        l.insert("beta.kubernetes.io/os".into(), "linux".into());
        l.insert("kubernetes.io/arch".into(), "amd64".into());
        l.insert("kubernetes.io/hostname".into(), self.name.clone());
        l.insert("kubernetes.io/os".into(), "linux".into());
        for (k, v) in &settings.labels {
            l.insert(k.clone(), v.clone());
        }
        l
    }

    /// The taints a node registers with.
    pub fn taints(settings: &Settings) -> Vec<Taint> {
        settings
            .taints
            .iter()
            .map(|t| Taint {
                key: t.key.clone(),
                value: (!t.value.is_empty()).then(|| t.value.clone()),
                effect: t.effect.as_str().to_string(),
                time_added: None,
            })
            .collect()
    }

    /// The NodeStatus the kubelet reports now; condition transition times carry
    /// over from `observed` where the status is unchanged.
    pub fn status(
        &self,
        settings: &Settings,
        observed: Option<&NodeStatus>,
        now: Timestamp,
    ) -> NodeStatus {
        let resources: BTreeMap<String, Quantity> = settings
            .capacity
            .iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect();
        let machine = digest(&["machine", &self.name]);
        let system = digest(&["system", &self.name]);
        NodeStatus {
            capacity: Some(resources.clone()),
            allocatable: Some(resources),
            conditions: Some(vec![
                cond(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                    observed,
                    now,
                ),
                cond(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                    observed,
                    now,
                ),
                cond(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                    observed,
                    now,
                ),
                cond(
                    "Ready",
                    "True",
                    "KubeletReady",
                    "kubelet is posting ready status",
                    observed,
                    now,
                ),
            ]),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: self.internal_ip.to_string(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: self.name.clone(),
                },
            ]),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint { port: KUBELET_PORT }),
            }),
            node_info: Some(NodeSystemInfo {
                machine_id: machine[..32].to_string(),
                system_uuid: uuid_form(&system),
                boot_id: self.boot_id.clone(),
                kernel_version: "6.1.0-sim".into(),
                os_image: "ferrokube simulated node".into(),
                container_runtime_version: RUNTIME_VERSION.into(),
                kubelet_version: KUBELET_VERSION.into(),
                kube_proxy_version: KUBELET_VERSION.into(),
                operating_system: "linux".into(),
                architecture: "amd64".into(),
                swap: None,
            }),
            ..Default::default()
        }
    }

    /// A new Node object for this node.
    fn object(&self, settings: &Settings) -> Node {
        let mut annotations = BTreeMap::new();
        annotations.insert(
            "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
            "true".to_string(),
        );
        let taints = SimNode::taints(settings);
        Node {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(self.labels(settings)),
                annotations: Some(annotations),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: (!taints.is_empty()).then_some(taints),
                ..Default::default()
            }),
            status: Some(self.status(settings, None, Timestamp::now())),
        }
    }

    /// Takes over an existing Node: adds the node's labels and taints (a taint
    /// with the same key and effect is replaced). Returns whether anything changed.
    fn take_over(&self, settings: &Settings, node: &mut Node) -> bool {
        let mut changed = false;
        let labels = node.metadata.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in self.labels(settings) {
            if labels.get(&k) != Some(&v) {
                labels.insert(k, v);
                changed = true;
            }
        }
        let spec = node.spec.get_or_insert_with(NodeSpec::default);
        let mut taints = spec.taints.clone().unwrap_or_default();
        for t in SimNode::taints(settings) {
            match taints
                .iter_mut()
                .find(|x| x.key == t.key && x.effect == t.effect)
            {
                Some(x) if x.value == t.value => {}
                Some(x) => {
                    x.value = t.value;
                    changed = true;
                }
                None => {
                    taints.push(t);
                    changed = true;
                }
            }
        }
        if !taints.is_empty() {
            spec.taints = Some(taints);
        }
        changed
    }

    /// Takes in what a Node object says. Returns whether the heartbeat was just
    /// restarted and whether the podCIDR changed.
    fn observe(&self, node: &Node) -> (bool, bool) {
        let stopped = heartbeat_stopped(node.metadata.annotations.as_ref());
        let was_stopped = self.stopped.swap(stopped, Ordering::AcqRel);
        let mut st = self.state();
        if st.uid != node.metadata.uid {
            // A new object under the same name: its Lease owner must follow.
            st.lease = None;
            st.uid = node.metadata.uid.clone();
        }
        st.gone = false;
        let cidr = spec_pod_cidr(node.spec.as_ref());
        let cidr_changed = cidr.is_some() && cidr != st.pod_cidr;
        if cidr.is_some() {
            st.pod_cidr = cidr;
        }
        st.status = node.status.clone();
        (was_stopped && !stopped, cidr_changed)
    }

    /// Whether the reported status differs from what the node would report
    /// (heartbeat and transition times aside).
    fn drifted(&self, settings: &Settings, observed: Option<&NodeStatus>) -> bool {
        let Some(observed) = observed else {
            return true;
        };
        let want = self.status(settings, Some(observed), Timestamp::now());
        let conds = |s: &NodeStatus| -> Vec<(String, String, Option<String>, Option<String>)> {
            s.conditions
                .iter()
                .flatten()
                .filter(|c| {
                    ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
                        .contains(&c.type_.as_str())
                })
                .map(|c| {
                    (
                        c.type_.clone(),
                        c.status.clone(),
                        c.reason.clone(),
                        c.message.clone(),
                    )
                })
                .collect()
        };
        let resources_differ =
            |want: &Option<BTreeMap<String, Quantity>>,
             have: &Option<BTreeMap<String, Quantity>>| {
                want.iter().flatten().any(|(k, v)| {
                    let have = have.as_ref().and_then(|h| h.get(k));
                    let parse = |q: &Quantity| apimachinery::Quantity::parse(&q.0).ok();
                    have.and_then(parse) != parse(v)
                })
            };
        conds(&want) != conds(observed)
            || resources_differ(&want.capacity, &observed.capacity)
            || resources_differ(&want.allocatable, &observed.allocatable)
            || want.addresses != observed.addresses
            || want.node_info != observed.node_info
            || want.daemon_endpoints != observed.daemon_endpoints
    }
}

/// Everything a run shares.
pub(crate) struct Sim {
    pub client: Client,
    pub settings: Settings,
    pub nodes: Vec<SimNode>,
    pub by_name: HashMap<String, usize>,
    /// Bounds the API writes in flight.
    pub writes: Semaphore,
}

impl Sim {
    pub fn new(client: Client, settings: Settings) -> Sim {
        let started = Timestamp::now();
        let nodes: Vec<SimNode> = (0..settings.count)
            .map(|i| SimNode::new(&settings, i, started))
            .collect();
        let by_name = nodes.iter().map(|n| (n.name.clone(), n.index)).collect();
        Sim {
            client,
            writes: Semaphore::new(settings.concurrency),
            settings,
            nodes,
            by_name,
        }
    }
}

/// Whether an API error may go away by trying again.
pub(crate) fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 409 | 429 | 500 | 502 | 503 | 504),
        _ => true,
    }
}

/// The HTTP status code of an API error.
pub(crate) fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Backoff between retries of a transient failure.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(Duration::from_millis(100))
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
    }
}

/// Makes sure the Lease namespace exists.
async fn ensure_lease_namespace(client: &Client) -> Result<(), SimError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut backoff = Backoff::new();
    loop {
        let result = match api.get_opt(LEASE_NAMESPACE).await {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {
                let ns = Namespace {
                    metadata: ObjectMeta {
                        name: Some(LEASE_NAMESPACE.to_string()),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                api.create(&PostParams::default(), &ns).await.map(|_| ())
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e) if api_code(&e) == Some(409) => return Ok(()),
            Err(e) if is_transient(&e) => {
                debug!(error = %e, "namespace {LEASE_NAMESPACE}: retrying");
                backoff.wait().await;
            }
            Err(e) => {
                return Err(SimError::Api {
                    what: format!("creating namespace {LEASE_NAMESPACE}"),
                    source: e,
                })
            }
        }
    }
}

/// Creates the Node object of node `i`, or takes it over when it exists.
async fn register_node(sim: &Sim, i: usize) -> Result<(), SimError> {
    let node = &sim.nodes[i];
    let api: Api<Node> = Api::all(sim.client.clone());
    let mut backoff = Backoff::new();
    loop {
        let result = {
            let _permit = sim.writes.acquire().await;
            match api
                .create(&PostParams::default(), &node.object(&sim.settings))
                .await
            {
                Ok(created) => Ok(Some(created)),
                Err(e) if api_code(&e) == Some(409) => match api.get_opt(&node.name).await {
                    Ok(Some(mut existing)) => {
                        if node.take_over(&sim.settings, &mut existing) {
                            api.replace(&node.name, &PostParams::default(), &existing)
                                .await
                                .map(Some)
                        } else {
                            Ok(Some(existing))
                        }
                    }
                    // Deleted in between: create it again.
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(Some(obj)) => {
                node.observe(&obj);
                return Ok(());
            }
            Ok(None) => {}
            Err(e) if is_transient(&e) => {
                debug!(node = %node.name, error = %e, "registration: retrying");
                backoff.wait().await;
            }
            Err(e) => {
                return Err(SimError::Api {
                    what: format!("registering node {}", node.name),
                    source: e,
                })
            }
        }
    }
}

/// Registers every node, reports its status where the registered object does not
/// already carry it, and takes its Lease.
pub(crate) async fn register_all(sim: &Arc<Sim>) -> Result<(), SimError> {
    ensure_lease_namespace(&sim.client).await?;
    futures::stream::iter(0..sim.nodes.len())
        .map(|i| async move {
            register_node(sim, i).await?;
            let node = &sim.nodes[i];
            let observed = node.state().status.clone();
            let mut backoff = Backoff::new();
            while !node.is_stopped() && node.drifted(&sim.settings, observed.as_ref()) {
                match report_status(sim, i).await {
                    Ok(()) => break,
                    Err(e) if is_transient(&e) => backoff.wait().await,
                    Err(e) => {
                        return Err(SimError::Api {
                            what: format!("reporting the status of node {}", node.name),
                            source: e,
                        })
                    }
                }
            }
            if let Err(e) = renew_lease(sim, i).await {
                warn!(node = %node.name, error = %e, "lease renewal failed");
            }
            Ok(())
        })
        .buffer_unordered(sim.settings.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    info!(count = sim.nodes.len(), "simulated nodes registered");
    Ok(())
}

/// Writes the node's status through `nodes/status` (a strategic merge patch, as
/// the kubelet does). Does nothing while the heartbeat is stopped or the Node is
/// gone.
pub(crate) async fn report_status(sim: &Sim, i: usize) -> Result<(), kube::Error> {
    let node = &sim.nodes[i];
    let Some(_busy) = Busy::take(&node.status_busy) else {
        return Ok(());
    };
    let observed = {
        let st = node.state();
        if st.gone {
            return Ok(());
        }
        st.status.clone()
    };
    if node.is_stopped() {
        return Ok(());
    }
    let _permit = sim.writes.acquire().await;
    let status = node.status(&sim.settings, observed.as_ref(), Timestamp::now());
    let patch = serde_json::json!({ "status": status });
    let api: Api<Node> = Api::all(sim.client.clone());
    let updated = api
        .patch_status(
            &node.name,
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await?;
    let mut st = node.state();
    if st.status.is_none() {
        st.status = updated.status;
    }
    Ok(())
}

/// Renews the node's Lease (creating it when missing), owned by the Node as the
/// kubelet sets it. Does nothing while the heartbeat is stopped or the Node is
/// gone.
pub(crate) async fn renew_lease(sim: &Sim, i: usize) -> Result<(), kube::Error> {
    let node = &sim.nodes[i];
    let Some(_busy) = Busy::take(&node.lease_busy) else {
        return Ok(());
    };
    let (uid, cached) = {
        let st = node.state();
        if st.gone {
            return Ok(());
        }
        (st.uid.clone(), st.lease.clone())
    };
    if node.is_stopped() {
        return Ok(());
    }
    let _permit = sim.writes.acquire().await;
    let api: Api<Lease> = Api::namespaced(sim.client.clone(), LEASE_NAMESPACE);
    let fill = |lease: &mut Lease| {
        lease.metadata.name = Some(node.name.clone());
        lease.metadata.namespace = Some(LEASE_NAMESPACE.to_string());
        if let Some(uid) = &uid {
            let owned = lease
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| &o.uid == uid);
            if !owned {
                lease.metadata.owner_references = Some(vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: node.name.clone(),
                    uid: uid.clone(),
                    ..Default::default()
                }]);
            }
        }
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = Some(node.name.clone());
        spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
    };
    // The cached copy first; without one, or when it is stale, start from the
    // server's (a first renewal tries to create the Lease straight away).
    match cached {
        Some(mut lease) => {
            fill(&mut lease);
            match api
                .replace(&node.name, &PostParams::default(), &lease)
                .await
            {
                Ok(l) => {
                    node.state().lease = Some(l);
                    return Ok(());
                }
                Err(e) if matches!(api_code(&e), Some(404 | 409)) => {}
                Err(e) => return Err(e),
            }
        }
        None => {
            let mut lease = Lease::default();
            fill(&mut lease);
            match api.create(&PostParams::default(), &lease).await {
                Ok(l) => {
                    node.state().lease = Some(l);
                    return Ok(());
                }
                Err(e) if api_code(&e) == Some(409) => {}
                Err(e) => return Err(e),
            }
        }
    }
    node.state().lease = None;
    let written = match api.get_opt(&node.name).await? {
        Some(mut lease) => {
            fill(&mut lease);
            api.replace(&node.name, &PostParams::default(), &lease)
                .await?
        }
        None => {
            let mut lease = Lease::default();
            fill(&mut lease);
            api.create(&PostParams::default(), &lease).await?
        }
    };
    node.state().lease = Some(written);
    Ok(())
}

/// Which periodic job a spread loop runs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Job {
    Lease,
    Status,
}

/// Runs `job` for every node once per interval, node `i` of `n` at offset
/// `i/n` of the interval, so that the writes are spread evenly.
pub(crate) async fn spread_loop(sim: Arc<Sim>, job: Job) -> Result<(), SimError> {
    let n = sim.nodes.len();
    if n == 0 {
        return Ok(());
    }
    let period = match job {
        Job::Lease => sim.settings.lease_every,
        Job::Status => sim.settings.status_every,
    };
    let start = Instant::now();
    let mut tasks: JoinSet<()> = JoinSet::new();
    // Registration has just written every Lease and status. Leases are renewed
    // within one interval from here; status reports (whose age nothing checks
    // closely) wait for the next interval.
    let mut round: u32 = match job {
        Job::Lease => 0,
        Job::Status => 1,
    };
    loop {
        let base = start + period * round;
        round = round.saturating_add(1);
        for i in 0..n {
            let at = base + period.mul_f64(i as f64 / n as f64);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => break,
                    Some(_) = tasks.join_next() => {}
                }
            }
            let node = &sim.nodes[i];
            if node.is_stopped() {
                continue;
            }
            let sim = sim.clone();
            tasks.spawn(async move {
                let (what, result) = match job {
                    Job::Lease => ("lease renewal", renew_lease(&sim, i).await),
                    Job::Status => ("status report", report_status(&sim, i).await),
                };
                if let Err(e) = result {
                    warn!(node = %sim.nodes[i].name, error = %e, "{what} failed");
                }
            });
        }
    }
}

/// Follows the managed Node objects: uid and podCIDR, the heartbeat knob (a
/// restarted heartbeat renews the Lease and reports status at once), deletion,
/// and reported status that drifted from the node's (reported again at once).
pub(crate) async fn watch_nodes(
    sim: Arc<Sim>,
    events: mpsc::UnboundedSender<NodeEvent>,
) -> Result<(), SimError> {
    let api: Api<Node> = Api::all(sim.client.clone());
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut relisted: Option<HashSet<usize>> = None;
    loop {
        let event = tokio::select! {
            e = stream.next() => e,
            Some(_) = tasks.join_next() => continue,
        };
        let Some(event) = event else {
            return Ok(());
        };
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                warn!(error = %e, "node watch failed; retrying");
                continue;
            }
        };
        match event {
            Event::Init => relisted = Some(HashSet::new()),
            Event::InitDone => {
                if let Some(seen) = relisted.take() {
                    for node in sim.nodes.iter().filter(|n| !seen.contains(&n.index)) {
                        node.state().gone = true;
                    }
                }
            }
            Event::Apply(obj) | Event::InitApply(obj) => {
                let Some(&i) = obj.metadata.name.as_ref().and_then(|n| sim.by_name.get(n)) else {
                    continue;
                };
                if let Some(seen) = relisted.as_mut() {
                    seen.insert(i);
                }
                let node = &sim.nodes[i];
                let (resumed, cidr_changed) = node.observe(&obj);
                if cidr_changed {
                    let _ = events.send(NodeEvent::CidrChanged(i));
                }
                if resumed {
                    info!(node = %node.name, "heartbeat resumed");
                    let _ = events.send(NodeEvent::Resumed(i));
                    let s = sim.clone();
                    tasks.spawn(async move {
                        if let Err(e) = renew_lease(&s, i).await {
                            warn!(node = %s.nodes[i].name, error = %e, "lease renewal failed");
                        }
                    });
                }
                let drifted =
                    !node.is_stopped() && node.drifted(&sim.settings, obj.status.as_ref());
                if resumed || drifted {
                    let s = sim.clone();
                    tasks.spawn(async move {
                        if let Err(e) = report_status(&s, i).await {
                            warn!(node = %s.nodes[i].name, error = %e, "status report failed");
                        }
                    });
                }
            }
            Event::Delete(obj) => {
                if let Some(&i) = obj.metadata.name.as_ref().and_then(|n| sim.by_name.get(n)) {
                    let mut st = sim.nodes[i].state();
                    st.gone = true;
                    st.lease = None;
                    st.status = None;
                    debug!(node = %sim.nodes[i].name, "node object deleted");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimNodesConfig;
    use crate::test_support::{
        assert_kubelet_labels, kubelet_port, node_addresses, node_condition, node_conditions,
        NODE_CONDITIONS,
    };

    fn settings() -> Settings {
        let c = SimNodesConfig {
            count: 300,
            labels: vec![("zone".into(), "a".into())],
            taints: vec!["dedicated=sim:NoSchedule".parse().unwrap()],
            ..Default::default()
        };
        Settings::new(&c).unwrap()
    }

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    #[test]
    fn identity() {
        let s = settings();
        let n = SimNode::new(&s, 0, ts(0));
        assert_eq!(n.name, "sim-node-0");
        assert_eq!(n.internal_ip, Ipv4Addr::new(172, 30, 0, 1));
        assert_eq!(n.pod_cidr().unwrap().to_string(), "10.244.0.0/24");
        let n = SimNode::new(&s, 299, ts(0));
        assert_eq!(n.internal_ip, Ipv4Addr::new(172, 30, 1, 44));
        assert_eq!(n.pod_cidr().unwrap().to_string(), "10.245.43.0/24");
        assert_eq!(n.boot_id.len(), 36);
    }

    #[test]
    fn object_and_status() {
        let s = settings();
        let n = SimNode::new(&s, 2, ts(0));
        let obj = n.object(&s);
        let labels = obj.metadata.labels.unwrap();
        assert_kubelet_labels(&labels, "sim-node-2");
        assert_eq!(labels["zone"], "a");
        let taints = obj.spec.unwrap().taints.unwrap();
        assert_eq!(taints.len(), 1);
        assert_eq!(
            (
                taints[0].key.as_str(),
                taints[0].value.as_deref(),
                taints[0].effect.as_str()
            ),
            ("dedicated", Some("sim"), "NoSchedule")
        );

        let st = n.status(&s, None, ts(10));
        assert_eq!(node_conditions(&st), NODE_CONDITIONS);
        let cap = st.capacity.clone().unwrap();
        assert_eq!(cap["cpu"].0, "4");
        assert_eq!(cap["memory"].0, "16Gi");
        assert_eq!(cap["pods"].0, "110");
        assert_eq!(cap["ephemeral-storage"].0, "100Gi");
        assert_eq!(st.allocatable, st.capacity);
        let info = st.node_info.clone().unwrap();
        assert_eq!(info.kubelet_version, "v1.33.0");
        assert_eq!(info.container_runtime_version, "sim://1.0");
        assert_eq!(info.machine_id.len(), 32);
        assert_eq!(kubelet_port(&st), 10250);
        assert_eq!(
            node_addresses(&st),
            [("InternalIP", "172.30.0.3"), ("Hostname", "sim-node-2")]
        );

        // Later reports keep the transition times; a changed status gets a new one.
        let mut seen = st.clone();
        let later = n.status(&s, Some(&seen), ts(20));
        for c in later.conditions.as_ref().unwrap() {
            assert_eq!(c.last_transition_time, Some(Time(ts(10))));
            assert_eq!(c.last_heartbeat_time, Some(Time(ts(20))));
        }
        assert!(!n.drifted(&s, Some(&seen)));
        if let Some(c) = seen
            .conditions
            .as_mut()
            .unwrap()
            .iter_mut()
            .find(|c| c.type_ == "Ready")
        {
            c.status = "Unknown".into();
            c.reason = Some("NodeStatusUnknown".into());
        }
        assert!(n.drifted(&s, Some(&seen)));
        let again = n.status(&s, Some(&seen), ts(30));
        assert_eq!(
            node_condition(&again, "Ready").last_transition_time,
            Some(Time(ts(30)))
        );
        assert!(n.drifted(&s, None));
    }

    #[test]
    fn take_over_merges() {
        let s = settings();
        let n = SimNode::new(&s, 0, ts(0));
        let mut existing = Node {
            metadata: ObjectMeta {
                name: Some("sim-node-0".into()),
                labels: Some([("keep".to_string(), "me".to_string())].into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(vec![
                    Taint {
                        key: "dedicated".into(),
                        value: Some("old".into()),
                        effect: "NoSchedule".into(),
                        time_added: None,
                    },
                    Taint {
                        key: "other".into(),
                        value: None,
                        effect: "NoExecute".into(),
                        time_added: None,
                    },
                ]),
                ..Default::default()
            }),
            status: None,
        };
        assert!(n.take_over(&s, &mut existing));
        let labels = existing.metadata.labels.clone().unwrap();
        assert_eq!(labels["keep"], "me");
        assert_eq!(labels["zone"], "a");
        assert_eq!(labels["kubernetes.io/hostname"], "sim-node-0");
        let taints = existing.spec.clone().unwrap().taints.unwrap();
        assert_eq!(taints.len(), 2);
        assert_eq!(taints[0].value.as_deref(), Some("sim"));
        assert!(!n.take_over(&s, &mut existing));
    }

    #[test]
    fn pod_cidr_from_spec() {
        let spec = NodeSpec {
            pod_cidr: Some("10.9.0.0/24".into()),
            pod_cidrs: Some(vec!["fd00::/64".into(), "10.9.0.0/24".into()]),
            ..Default::default()
        };
        assert_eq!(
            spec_pod_cidr(Some(&spec)).unwrap().to_string(),
            "10.9.0.0/24"
        );
        assert_eq!(spec_pod_cidr(Some(&NodeSpec::default())), None);
        let s = settings();
        let n = SimNode::new(&s, 1, ts(0));
        let obj = Node {
            metadata: ObjectMeta {
                uid: Some("u1".into()),
                annotations: Some(
                    [(crate::knobs::HEARTBEAT.to_string(), "stopped".to_string())].into(),
                ),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        };
        assert_eq!(n.observe(&obj), (false, true));
        assert!(n.is_stopped());
        assert_eq!(n.pod_cidr().unwrap().to_string(), "10.9.0.0/24");
        let mut obj = obj;
        obj.metadata.annotations = None;
        assert_eq!(n.observe(&obj), (true, false));
        assert!(!n.is_stopped());
    }
}
