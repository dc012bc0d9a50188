//! The kubelet side for pods: one watch over all pods, keeping those bound to a
//! managed node; each is started (address from its node's pool), stepped on the
//! knobs' timers, reported through `pods/status`, and on deletion stopped and
//! removed with a zero grace period and a UID precondition. Writes go out one at a
//! time per pod, the latest status winning.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::cidr::IpPool;
use crate::knobs::PodKnobs;
use crate::node::{api_code, is_transient, NodeEvent, Sim};
use crate::podsim::PodRun;
use crate::SimError;

/// How long a failed write waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Where a pod's deletion stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deletion {
    None,
    /// Marked for deletion: the final delete is still to be sent.
    Wanted,
    /// The final delete was sent (or the pod turned out to be gone).
    Sent,
}

/// A pod bound to a managed node.
struct Tracked {
    namespace: String,
    name: String,
    node: usize,
    pod: Pod,
    run: Option<PodRun>,
    /// Found Succeeded or Failed when first seen: left alone but for deletion.
    frozen: bool,
    deletion: Deletion,
    desired: Option<PodStatus>,
    posted: Option<PodStatus>,
    writing: bool,
    /// The next time the pod needs a look.
    wake: Option<Timestamp>,
    knob_errors: Vec<String>,
}

/// The result of one write job.
struct Written {
    uid: String,
    status: Option<PodStatus>,
    deleted: bool,
    result: Result<(), kube::Error>,
}

/// The pod controller's state.
struct Pods {
    sim: Arc<Sim>,
    pods: HashMap<String, Tracked>,
    pools: Vec<IpPool>,
    /// Pods per node that found no free address.
    waiting: Vec<Vec<String>>,
    timers: BinaryHeap<Reverse<(Timestamp, String)>>,
    writes: JoinSet<Written>,
    /// UIDs seen since the watch last (re)started listing.
    relisted: Option<HashSet<String>>,
}

fn duration_until(t: Timestamp) -> Duration {
    Duration::try_from(t.duration_since(Timestamp::now())).unwrap_or(Duration::ZERO)
}

fn is_host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// One write job: the status (with the pod's UID in the patch, so that a new pod
/// of the same name is not touched), then the final delete.
async fn write(
    sim: Arc<Sim>,
    uid: String,
    namespace: String,
    name: String,
    status: Option<PodStatus>,
    delete: bool,
) -> Written {
    let result = async {
        let _permit = sim.writes.acquire().await;
        let api: Api<Pod> = Api::namespaced(sim.client.clone(), &namespace);
        if let Some(status) = &status {
            let patch = serde_json::json!({ "metadata": { "uid": uid }, "status": status });
            api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
                .await?;
        }
        if delete {
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            api.delete(&name, &params).await?;
        }
        Ok(())
    }
    .await;
    Written {
        uid,
        status,
        deleted: delete,
        result,
    }
}

impl Pods {
    fn new(sim: Arc<Sim>) -> Pods {
        let n = sim.nodes.len();
        Pods {
            sim,
            pods: HashMap::new(),
            pools: (0..n).map(|_| IpPool::default()).collect(),
            waiting: vec![Vec::new(); n],
            timers: BinaryHeap::new(),
            writes: JoinSet::new(),
            relisted: None,
        }
    }

    /// Asks for a look at `uid` at time `at`.
    fn wake_at(&mut self, uid: &str, at: Timestamp) {
        let Some(t) = self.pods.get_mut(uid) else {
            return;
        };
        if t.wake.is_some_and(|w| w <= at) {
            return;
        }
        t.wake = Some(at);
        self.timers.push(Reverse((at, uid.to_string())));
    }

    /// Gives an address back to node `node` and lets a waiting pod have a try.
    fn release(&mut self, node: usize, ip: std::net::Ipv4Addr) {
        self.pools[node].release(ip);
        if let Some(uid) = self.waiting[node].pop() {
            self.reconcile(&uid);
        }
    }

    /// Starts sending what `uid` still needs written, unless a write is under way.
    fn kick(&mut self, uid: &str) {
        let Some(t) = self.pods.get_mut(uid) else {
            return;
        };
        if t.writing {
            return;
        }
        let status = t.desired.clone().filter(|d| t.posted.as_ref() != Some(d));
        let delete = t.deletion == Deletion::Wanted;
        if status.is_none() && !delete {
            return;
        }
        t.writing = true;
        self.writes.spawn(write(
            self.sim.clone(),
            uid.to_string(),
            t.namespace.clone(),
            t.name.clone(),
            status,
            delete,
        ));
    }

    /// Brings one pod up to date: start it, step it, stop it for deletion, and
    /// send what changed.
    fn reconcile(&mut self, uid: &str) {
        let now = Timestamp::now();
        let sim = self.sim.clone();
        let Some(t) = self.pods.get_mut(uid) else {
            return;
        };
        let node = &sim.nodes[t.node];
        if node.stopped.load(Ordering::Acquire) {
            return;
        }
        let knobs = PodKnobs::from_annotations(t.pod.metadata.annotations.as_ref());
        if !knobs.errors.is_empty() && knobs.errors != t.knob_errors {
            for e in &knobs.errors {
                warn!(pod = %format!("{}/{}", t.namespace, t.name), "ignoring {e}");
            }
        }
        t.knob_errors = knobs.errors.clone();

        if t.pod.metadata.deletion_timestamp.is_some() {
            if t.deletion == Deletion::None {
                t.deletion = Deletion::Wanted;
                let mut freed = None;
                if let Some(run) = t.run.as_mut() {
                    if !run.is_terminal() {
                        run.stop_for_deletion(now);
                    }
                    freed = run.allocated.take();
                    t.desired = Some(run.status(&t.pod, &knobs, now));
                }
                let node = t.node;
                if let Some(ip) = freed {
                    self.release(node, ip);
                }
            }
            self.kick(uid);
            return;
        }
        if t.frozen {
            return;
        }
        if t.run.is_none() {
            let phase = t.pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if matches!(phase, Some("Succeeded" | "Failed")) {
                t.frozen = true;
                return;
            }
            let host_network = is_host_network(&t.pod);
            if let Some(mut run) = PodRun::adopt(&t.pod, uid, now) {
                if !host_network {
                    if let Ok(ip) = run.pod_ip().parse() {
                        if self.pools[t.node].reserve(ip) {
                            run.allocated = Some(ip);
                        }
                    }
                }
                t.posted = t.pod.status.clone();
                t.run = Some(run);
                debug!(pod = %format!("{}/{}", t.namespace, t.name), "adopted");
            } else {
                let host_ip = node.internal_ip.to_string();
                let (pod_ip, allocated) = if host_network {
                    (host_ip.clone(), None)
                } else {
                    let ip = node
                        .pod_cidr()
                        .and_then(|cidr| self.pools[t.node].allocate(&cidr));
                    match ip {
                        Some(ip) => (ip.to_string(), Some(ip)),
                        None => {
                            warn!(
                                pod = %format!("{}/{}", t.namespace, t.name),
                                node = %node.name,
                                "no free pod address on the node; the pod waits"
                            );
                            if !self.waiting[t.node].iter().any(|u| u == uid) {
                                self.waiting[t.node].push(uid.to_string());
                            }
                            return;
                        }
                    }
                };
                t.run = Some(PodRun::start(&t.pod, uid, now, host_ip, pod_ip, allocated));
            }
        }
        let Some(run) = t.run.as_mut() else {
            return;
        };
        let next = run.step(&knobs, now);
        let freed = if run.is_terminal() {
            run.allocated.take()
        } else {
            None
        };
        t.desired = Some(run.status(&t.pod, &knobs, now));
        let node = t.node;
        if let Some(ip) = freed {
            self.release(node, ip);
        }
        if let Some(at) = next {
            self.wake_at(uid, at);
        }
        self.kick(uid);
    }

    /// Drops a pod that no longer exists, freeing its address.
    fn forget(&mut self, uid: &str) {
        let Some(t) = self.pods.remove(uid) else {
            return;
        };
        self.waiting[t.node].retain(|u| u != uid);
        if let Some(ip) = t.run.and_then(|r| r.allocated) {
            self.release(t.node, ip);
        }
    }

    fn on_pod(&mut self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .and_then(|n| self.sim.by_name.get(n))
            .copied();
        let Some(node) = node else {
            return;
        };
        if let Some(seen) = self.relisted.as_mut() {
            seen.insert(uid.clone());
        }
        match self.pods.get_mut(&uid) {
            Some(t) => t.pod = pod,
            None => {
                let t = Tracked {
                    namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                    name: pod.metadata.name.clone().unwrap_or_default(),
                    node,
                    pod,
                    run: None,
                    frozen: false,
                    deletion: Deletion::None,
                    desired: None,
                    posted: None,
                    writing: false,
                    wake: None,
                    knob_errors: Vec::new(),
                };
                self.pods.insert(uid.clone(), t);
            }
        }
        self.reconcile(&uid);
    }

    fn on_event(&mut self, event: Event<Pod>) {
        match event {
            Event::Init => self.relisted = Some(HashSet::new()),
            Event::InitApply(pod) | Event::Apply(pod) => self.on_pod(pod),
            Event::Delete(pod) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    self.forget(uid);
                }
            }
            Event::InitDone => {
                if let Some(seen) = self.relisted.take() {
                    let gone: Vec<String> = self
                        .pods
                        .keys()
                        .filter(|u| !seen.contains(*u))
                        .cloned()
                        .collect();
                    for uid in gone {
                        self.forget(&uid);
                    }
                }
            }
        }
    }

    fn on_written(&mut self, w: Written) {
        let Some(t) = self.pods.get_mut(&w.uid) else {
            return;
        };
        t.writing = false;
        match w.result {
            Ok(()) => {
                if w.status.is_some() {
                    t.posted = w.status;
                }
                if w.deleted {
                    t.deletion = Deletion::Sent;
                }
            }
            // The pod is gone or was replaced under the same name: the watch
            // will tell.
            Err(e) if matches!(api_code(&e), Some(404 | 409)) => {
                debug!(pod = %format!("{}/{}", t.namespace, t.name), error = %e, "pod gone");
                if t.deletion == Deletion::Wanted {
                    t.deletion = Deletion::Sent;
                }
                t.posted = t.desired.clone();
            }
            Err(e) if is_transient(&e) => {
                warn!(pod = %format!("{}/{}", t.namespace, t.name), error = %e, "pod write failed; retrying");
                let at = Timestamp::now()
                    .checked_add(RETRY_AFTER)
                    .unwrap_or(Timestamp::MAX);
                self.wake_at(&w.uid, at);
                return;
            }
            Err(e) => {
                // Not going to work by sending it again.
                warn!(pod = %format!("{}/{}", t.namespace, t.name), error = %e, "pod write rejected");
                if w.status.is_some() {
                    t.posted = w.status;
                }
                if w.deleted {
                    t.deletion = Deletion::Sent;
                }
            }
        }
        self.kick(&w.uid);
    }

    fn on_node_event(&mut self, event: NodeEvent) {
        match event {
            NodeEvent::Resumed(node) => {
                let uids: Vec<String> = self
                    .pods
                    .iter()
                    .filter(|(_, t)| t.node == node)
                    .map(|(u, _)| u.clone())
                    .collect();
                for uid in uids {
                    self.reconcile(&uid);
                }
            }
            NodeEvent::CidrChanged(node) => {
                for uid in std::mem::take(&mut self.waiting[node]) {
                    self.reconcile(&uid);
                }
            }
        }
    }

    fn on_timers(&mut self) {
        let now = Timestamp::now();
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, uid))) = self.timers.pop() else {
                break;
            };
            let Some(t) = self.pods.get_mut(&uid) else {
                continue;
            };
            if t.wake != Some(at) {
                continue;
            }
            t.wake = None;
            self.reconcile(&uid);
            // A retry after a failed write sends again even when nothing changed.
            self.kick(&uid);
        }
    }
}

/// Runs the pod side until the watch ends (it retries failures itself).
pub(crate) async fn run_pods(
    sim: Arc<Sim>,
    mut node_events: mpsc::UnboundedReceiver<NodeEvent>,
) -> Result<(), SimError> {
    let api: Api<Pod> = Api::all(sim.client.clone());
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut pods = Pods::new(sim);
    let mut node_events_open = true;
    loop {
        let next_timer = pods.timers.peek().map(|Reverse((at, _))| *at);
        let sleep =
            tokio::time::sleep(next_timer.map_or(Duration::from_secs(3600), duration_until));
        tokio::select! {
            event = stream.next() => match event {
                Some(Ok(event)) => pods.on_event(event),
                Some(Err(e)) => warn!(error = %e, "pod watch failed; retrying"),
                None => return Ok(()),
            },
            Some(done) = pods.writes.join_next() => match done {
                Ok(w) => pods.on_written(w),
                Err(e) => return Err(SimError::Task(e.to_string())),
            },
            event = node_events.recv(), if node_events_open => match event {
                Some(e) => pods.on_node_event(e),
                None => node_events_open = false,
            },
            _ = sleep, if next_timer.is_some() => pods.on_timers(),
        }
    }
}
