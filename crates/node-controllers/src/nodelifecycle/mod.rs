//! The node lifecycle controller (`node-lifecycle-controller`), as upstream's:
//!
//! - every `--node-monitor-period` it evaluates every node's health ([`health`]):
//!   a node whose status heartbeat and Lease were both silent for the grace period has
//!   its Ready (and pressure) conditions set Unknown; a node whose Ready condition is
//!   False or Unknown is queued in its zone's rate-limited queue for the
//!   `not-ready`/`unreachable` `NoExecute` taint (swapped at once when it carries the
//!   opposite one), and loses those taints when Ready again; the pods of a node that
//!   just stopped being ready are marked not ready;
//! - zone states and eviction rates follow upstream's disruption rules ([`zones`]);
//! - every 100 ms the zone queues are drained at their rates, tainting nodes;
//! - on every node change the `NoSchedule` condition taints (and the unschedulable
//!   taint) are brought in line with the node's conditions, and the beta OS/arch
//!   labels with the stable ones;
//! - a pod newly bound to an unready node is marked not ready.
//!
//! Events (component `node-controller`): `RegisteredNode`, `RemovingNode`,
//! `NodeNotReady` on nodes, `NodeNotReady` warnings on pods.

pub mod health;
pub mod zones;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Taint};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use parking_lot::Mutex;
use serde_json::json;

use controllers::events::{EventRecorder, EventType};
use controllers::informer::{HandlerRegistration, Informer, Notification, Store};
use controllers::workqueue::WorkQueue;
use controllers::{
    run_workers, ControllerContext, ControllerError, ControllerFuture, ControllerManagerConfig,
};

use crate::clock::{Clock, SystemClock};
use crate::pods::{add_node_name_index, mark_pods_not_ready, pod_node_name, pods_on_node};
use crate::taints::{
    node_condition, node_taints, not_ready_taint, remove_taints, swap_node_controller_taint, taint,
    taint_exists, taint_set_diff, unreachable_taint, CONDITION_TAINTS, NO_SCHEDULE,
    TAINT_NODE_UNSCHEDULABLE,
};
use health::{evaluate_node_health, GracePeriods, NodeHealth};
use zones::{excluded_from_disruption, zone_key, DisruptionAction, EvictionSettings, Zones};

/// Canonical name of the controller.
pub const NODE_LIFECYCLE_CONTROLLER_NAME: &str = "node-lifecycle-controller";
/// The event source component.
pub const EVENT_COMPONENT: &str = "node-controller";
/// The namespace of node Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// How often the zone taint queues are drained.
pub const NODE_EVICTION_PERIOD: Duration = Duration::from_millis(100);

const RETRY_SLEEP: Duration = Duration::from_millis(20);
const NODE_HEALTH_UPDATE_RETRY: usize = 5;
const NODE_UPDATE_WORKERS: usize = 8;
const POD_UPDATE_WORKERS: usize = 4;

/// The stable OS/arch labels and the beta ones kept in line with them.
const LABEL_RECONCILE: &[(&str, &str)] = &[
    ("kubernetes.io/os", "beta.kubernetes.io/os"),
    ("kubernetes.io/arch", "beta.kubernetes.io/arch"),
];

/// The settings of the controller.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LifecycleSettings {
    /// `--node-monitor-period`.
    pub monitor_period: Duration,
    /// `--node-monitor-grace-period` and `--node-startup-grace-period`.
    pub grace: GracePeriods,
    /// Eviction rates and thresholds.
    pub eviction: EvictionSettings,
}

impl LifecycleSettings {
    /// The settings from the controller manager's flags.
    pub fn from_config(c: &ControllerManagerConfig) -> Self {
        LifecycleSettings {
            monitor_period: c.node_monitor_period,
            grace: GracePeriods {
                monitor: c.node_monitor_grace_period,
                startup: c.node_startup_grace_period,
            },
            eviction: EvictionSettings {
                eviction_qps: c.node_eviction_rate,
                secondary_eviction_qps: c.secondary_node_eviction_rate,
                large_cluster_threshold: c.large_cluster_size_threshold,
                unhealthy_zone_threshold: c.unhealthy_zone_threshold,
            },
        }
    }
}

/// Starts the controller with the system clock (the manager's [`controllers::StartFn`]).
pub fn start_node_lifecycle_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    Ok(NodeLifecycleController::new(ctx, Arc::new(SystemClock))?.run())
}

struct Inner {
    client: Client,
    recorder: EventRecorder,
    clock: Arc<dyn Clock>,
    settings: LifecycleSettings,
    nodes: Informer<Node>,
    pods: Informer<Pod>,
    leases: Informer<Lease>,
    health: Mutex<HashMap<String, NodeHealth>>,
    known: Mutex<HashMap<String, Arc<Node>>>,
    zones: Mutex<Zones>,
    nodes_to_retry: Mutex<HashSet<String>>,
    node_queue: WorkQueue<String>,
    pod_queue: WorkQueue<String>,
}

/// The node lifecycle controller.
pub struct NodeLifecycleController {
    inner: Arc<Inner>,
    registrations: Vec<HandlerRegistration>,
}

impl NodeLifecycleController {
    /// Builds the controller on `ctx` (informers for Nodes, Pods and Leases), reading
    /// wall-clock time from `clock`.
    pub fn new(ctx: &ControllerContext, clock: Arc<dyn Clock>) -> Result<Self, ControllerError> {
        let settings = LifecycleSettings::from_config(&ctx.config);
        if settings.monitor_period.is_zero() {
            return Err(ControllerError::Config(
                "--node-monitor-period must be positive".into(),
            ));
        }
        let nodes = ctx.informers.informer::<Node>();
        let pods = ctx.informers.informer::<Pod>();
        let leases = ctx.informers.informer::<Lease>();
        add_node_name_index(&pods);
        let inner = Arc::new(Inner {
            client: ctx.client.clone(),
            recorder: ctx.events.recorder(EVENT_COMPONENT),
            clock,
            settings,
            nodes: nodes.clone(),
            pods: pods.clone(),
            leases,
            health: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
            zones: Mutex::new(Zones::new(settings.eviction)),
            nodes_to_retry: Mutex::new(HashSet::new()),
            node_queue: WorkQueue::new("node_lifecycle_controller"),
            pod_queue: WorkQueue::new("node_lifecycle_controller_pods"),
        });
        let mut registrations = Vec::new();
        let weak = Arc::downgrade(&inner);
        registrations.push(nodes.add_handler(move |n: &Notification<Node>| {
            let Some(inner) = weak.upgrade() else { return };
            let name = n.object().metadata.name.clone().unwrap_or_default();
            match n {
                Notification::Added(_) | Notification::Updated { .. } => inner.node_queue.add(name),
                Notification::Deleted(_) => {
                    inner.nodes_to_retry.lock().remove(&name);
                }
            }
        }));
        let weak = Arc::downgrade(&inner);
        registrations.push(pods.add_handler(move |n: &Notification<Pod>| {
            let Some(inner) = weak.upgrade() else { return };
            let (old, new) = match n {
                Notification::Added(p) => (None, p),
                Notification::Updated { old, new } => (Some(old), new),
                Notification::Deleted(_) => return,
            };
            let node = pod_node_name(new);
            if !node.is_empty() && old.is_none_or(|o| pod_node_name(o) != node) {
                inner.pod_queue.add(controllers::util::pod_key(new));
            }
        }));
        Ok(NodeLifecycleController {
            inner,
            registrations,
        })
    }

    /// The future that runs the controller until dropped.
    pub fn run(self) -> ControllerFuture {
        let NodeLifecycleController {
            inner,
            registrations,
        } = self;
        Box::pin(async move {
            let _registrations = registrations;
            tracing::info!(
                controller = NODE_LIFECYCLE_CONTROLLER_NAME,
                "starting controller"
            );
            inner.nodes.wait_synced().await;
            inner.pods.wait_synced().await;
            inner.leases.wait_synced().await;
            let i = inner.clone();
            let node_workers = run_workers(
                NODE_LIFECYCLE_CONTROLLER_NAME,
                inner.node_queue.clone(),
                NODE_UPDATE_WORKERS,
                move |name| {
                    let i = i.clone();
                    async move { i.process_node(&name).await }
                },
            );
            let i = inner.clone();
            let pod_workers = run_workers(
                NODE_LIFECYCLE_CONTROLLER_NAME,
                inner.pod_queue.clone(),
                POD_UPDATE_WORKERS,
                move |key| {
                    let i = i.clone();
                    async move { i.process_pod(&key).await }
                },
            );
            let i = inner.clone();
            let tainting = async move {
                let mut tick = tokio::time::interval(NODE_EVICTION_PERIOD);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    i.do_no_execute_tainting_pass().await;
                }
            };
            let i = inner.clone();
            let monitor = async move {
                loop {
                    i.monitor_node_health().await;
                    tokio::time::sleep(i.settings.monitor_period).await;
                }
            };
            tokio::join!(node_workers, pod_workers, tainting, monitor);
        })
    }
}

fn node_name(node: &Node) -> &str {
    node.metadata.name.as_deref().unwrap_or("")
}

/// A reference to a node as node events carry it.
fn node_ref(name: &str, uid: Option<&str>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(name.to_string()),
        uid: uid.map(str::to_string),
        ..Default::default()
    }
}

/// Records `Node <name> event: <message>` on a node.
pub fn record_node_event(
    recorder: &EventRecorder,
    node: &Node,
    type_: EventType,
    reason: &str,
    message: &str,
) {
    let name = node_name(node);
    recorder.event_for(
        node_ref(name, node.metadata.uid.as_deref()),
        type_,
        reason,
        format!("Node {name} event: {message}"),
    );
}

/// Records `Node <name> status is now: <status>` on a node.
pub fn record_node_status_change(recorder: &EventRecorder, node: &Node, status: &str) {
    let name = node_name(node);
    recorder.event_for(
        node_ref(name, node.metadata.uid.as_deref()),
        EventType::Normal,
        status,
        format!("Node {name} status is now: {status}"),
    );
}

/// The `NoSchedule` taints a node should carry for its conditions and
/// `spec.unschedulable`.
pub fn no_schedule_taints_for(node: &Node) -> Vec<Taint> {
    let mut out = Vec::new();
    for c in node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or(&[])
    {
        for (type_, status, key) in CONDITION_TAINTS {
            if c.type_ == *type_ && c.status == *status {
                out.push(taint(key, NO_SCHEDULE));
            }
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        out.push(taint(TAINT_NODE_UNSCHEDULABLE, NO_SCHEDULE));
    }
    out
}

/// The `NoSchedule` taints of a node that the controller manages.
fn managed_no_schedule_taints(node: &Node) -> Vec<Taint> {
    node_taints(node)
        .iter()
        .filter(|t| {
            t.effect == NO_SCHEDULE
                && (t.key == TAINT_NODE_UNSCHEDULABLE
                    || CONDITION_TAINTS.iter().any(|(_, _, k)| *k == t.key))
        })
        .cloned()
        .collect()
}

/// The beta labels to set so that they agree with the stable ones.
pub fn labels_to_reconcile(node: &Node) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(labels) = node.metadata.labels.as_ref() else {
        return out;
    };
    for (primary, secondary) in LABEL_RECONCILE {
        let Some(value) = labels.get(*primary) else {
            continue;
        };
        if labels.get(*secondary) != Some(value) {
            out.insert((*secondary).to_string(), value.clone());
        }
    }
    out
}

impl Inner {
    fn node_store(&self) -> Store<Node> {
        self.nodes.store()
    }

    /// Node change: condition taints and labels.
    async fn process_node(&self, name: &str) -> Result<(), ControllerError> {
        let Some(node) = self.node_store().get(name) else {
            return Ok(());
        };
        let wanted = no_schedule_taints_for(&node);
        let (add, remove) = taint_set_diff(&wanted, &managed_no_schedule_taints(&node));
        if (!add.is_empty() || !remove.is_empty())
            && !swap_node_controller_taint(&self.client, &node, &add, &remove).await
        {
            return Err(ControllerError::Other(format!(
                "failed to swap taints of node {name}"
            )));
        }
        let labels = labels_to_reconcile(&node);
        if !labels.is_empty() {
            let api: Api<Node> = Api::all(self.client.clone());
            let patch = json!({"metadata": {"labels": labels}});
            api.patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
                .map_err(|e| {
                    ControllerError::Other(format!("failed update labels for node {name}: {e}"))
                })?;
        }
        Ok(())
    }

    /// A pod newly bound to a node: marked not ready if the node is not ready.
    async fn process_pod(&self, key: &str) -> Result<(), ControllerError> {
        let Some(pod) = self.pods.store().get(key) else {
            return Ok(());
        };
        let node = pod_node_name(&pod).to_string();
        let Some(health) = self.health.lock().get(&node).cloned() else {
            return Ok(());
        };
        if self.node_store().get(&node).is_none() {
            return Err(ControllerError::Other(format!("node {node} not found")));
        }
        let Some(ready) = health.ready else {
            return Ok(());
        };
        if ready.status != "True" {
            mark_pods_not_ready(&self.client, &self.recorder, &[pod], &node).await?;
        }
        Ok(())
    }

    /// One health pass over every node.
    async fn monitor_node_health(self: &Arc<Self>) {
        let mut nodes = self.node_store().list();
        nodes.sort_by(|a, b| node_name(a).cmp(node_name(b)));
        let now = Instant::now();

        // New and removed nodes, and nodes of zones not tracked yet.
        let (added, deleted) = {
            let known = self.known.lock();
            let mut zones = self.zones.lock();
            let mut added = Vec::new();
            for n in &nodes {
                if !known.contains_key(node_name(n)) {
                    added.push(n.clone());
                } else {
                    let zone = zone_key(n);
                    if zones.state(&zone).is_none() {
                        zones.add_zone(&zone, now);
                    }
                }
            }
            let present: HashSet<&str> = nodes.iter().map(|n| node_name(n)).collect();
            let deleted: Vec<Arc<Node>> = known
                .iter()
                .filter(|(k, _)| !present.contains(k.as_str()))
                .map(|(_, v)| v.clone())
                .collect();
            (added, deleted)
        };
        for n in &added {
            let name = node_name(n).to_string();
            tracing::info!(node = %name, "controller observed a new Node");
            record_node_event(
                &self.recorder,
                n,
                EventType::Normal,
                "RegisteredNode",
                &format!("Registered Node {name} in Controller"),
            );
            self.known.lock().insert(name, n.clone());
            self.zones.lock().add_zone(&zone_key(n), now);
            if let Err(err) = self.mark_node_as_reachable(n).await {
                tracing::error!(node = %node_name(n), error = %err, "failed to remove taints from node");
            }
        }
        for n in &deleted {
            let name = node_name(n).to_string();
            tracing::info!(node = %name, "controller observed a Node deletion");
            record_node_event(
                &self.recorder,
                n,
                EventType::Normal,
                "RemovingNode",
                &format!("Removing Node {name} from Controller"),
            );
            self.known.lock().remove(&name);
            self.health.lock().remove(&name);
        }

        let zone_ready: Mutex<HashMap<String, Vec<Option<String>>>> = Mutex::new(HashMap::new());
        futures::stream::iter(nodes.iter())
            .for_each_concurrent(NODE_UPDATE_WORKERS, |n| {
                let zone_ready = &zone_ready;
                async move { self.update_node(n, zone_ready).await }
            })
            .await;
        let zone_ready = zone_ready.into_inner();

        let action = self
            .zones
            .lock()
            .handle_disruption(&zone_ready, Instant::now());
        match action {
            DisruptionAction::None => {}
            DisruptionAction::EnteredFullDisruption => {
                for n in &nodes {
                    if let Err(err) = self.mark_node_as_reachable(n).await {
                        tracing::error!(node = %node_name(n), error = %err, "failed to remove taints from node");
                    }
                }
            }
            DisruptionAction::ExitedFullDisruption => {
                let now = self.clock.now();
                let mut health = self.health.lock();
                for n in &nodes {
                    if let Some(h) = health.get_mut(node_name(n)) {
                        h.probe_timestamp = now;
                        h.ready_transition_timestamp = now;
                    }
                }
            }
        }
    }

    /// Evaluates one node's health, writing its status when it changed, and acts on
    /// its Ready condition.
    async fn update_node(
        &self,
        cached: &Arc<Node>,
        zone_ready: &Mutex<HashMap<String, Vec<Option<String>>>>,
    ) {
        let name = node_name(cached).to_string();
        let mut node = (**cached).clone();
        let mut outcome = None;
        for attempt in 0..=NODE_HEALTH_UPDATE_RETRY {
            let mut candidate = node.clone();
            match self.try_update_node_health(&mut candidate).await {
                Ok(r) => {
                    node = candidate;
                    outcome = Some(r);
                    break;
                }
                Err(err) => {
                    tracing::warn!(node = %name, error = %err, "failed to update node health");
                    if attempt == NODE_HEALTH_UPDATE_RETRY {
                        break;
                    }
                    tokio::time::sleep(RETRY_SLEEP).await;
                    let api: Api<Node> = Api::all(self.client.clone());
                    match api.get(&name).await {
                        Ok(n) => node = n,
                        Err(err) => {
                            tracing::error!(node = %name, error = %err, "failed while getting a Node to retry updating node health; probably Node was deleted");
                            return;
                        }
                    }
                }
            }
        }
        let Some((observed, current)) = outcome else {
            tracing::error!(node = %name, "update health of Node from Controller error, skipping - no pods will be evicted");
            return;
        };

        if !excluded_from_disruption(&node) {
            zone_ready
                .lock()
                .entry(zone_key(&node))
                .or_default()
                .push(current.as_ref().map(|c| c.status.clone()));
        }

        if let Some(current) = current {
            let pods = pods_on_node(&self.pods.store(), &name);
            self.process_taint_based_eviction(&node, &observed.status)
                .await;
            let needs_retry = self.nodes_to_retry.lock().contains(&name);
            let became_unready = current.status != "True" && observed.status == "True";
            if became_unready {
                record_node_status_change(&self.recorder, &node, "NodeNotReady");
            }
            if became_unready || (needs_retry && observed.status != "True") {
                if let Err(err) =
                    mark_pods_not_ready(&self.client, &self.recorder, &pods, &name).await
                {
                    tracing::warn!(node = %name, error = %err, "unable to mark all pods NotReady on node; queuing for retry");
                    self.nodes_to_retry.lock().insert(name);
                    return;
                }
            }
        }
        self.nodes_to_retry.lock().remove(&name);
    }

    /// Upstream's tryUpdateNodeHealth: evaluates and, when the node went Unknown,
    /// writes its status. Returns the observed and the current Ready condition.
    async fn try_update_node_health(
        &self,
        node: &mut Node,
    ) -> Result<
        (
            k8s_openapi::api::core::v1::NodeCondition,
            Option<k8s_openapi::api::core::v1::NodeCondition>,
        ),
        ControllerError,
    > {
        let name = node_name(node).to_string();
        let prev = self.health.lock().get(&name).cloned();
        let lease = self
            .leases
            .store()
            .get_namespaced(NODE_LEASE_NAMESPACE, &name);
        let eval = evaluate_node_health(
            prev.as_ref(),
            node,
            lease.as_deref(),
            self.clock.now(),
            self.settings.grace,
        );
        if eval.needs_status_update {
            let api: Api<Node> = Api::all(self.client.clone());
            match api
                .replace_status(&name, &PostParams::default(), node)
                .await
            {
                Ok(_) => {
                    self.health.lock().insert(name, eval.health_after_update);
                }
                Err(err) => {
                    self.health.lock().insert(name, eval.health);
                    return Err(err.into());
                }
            }
        } else {
            self.health.lock().insert(name, eval.health);
        }
        Ok((eval.observed_ready, eval.current_ready))
    }

    async fn process_taint_based_eviction(&self, node: &Node, observed_status: &str) {
        let name = node_name(node);
        let taints = node_taints(node);
        match observed_status {
            "False" => {
                if taint_exists(taints, &unreachable_taint()) {
                    if !swap_node_controller_taint(
                        &self.client,
                        node,
                        &[not_ready_taint()],
                        &[unreachable_taint()],
                    )
                    .await
                    {
                        tracing::error!(node = %name, "failed to instantly swap UnreachableTaint to NotReadyTaint; will try again in the next cycle");
                    }
                } else if self.mark_node_for_tainting(node, "False") {
                    tracing::debug!(node = %name, "node is NotReady; adding it to the taint queue");
                }
            }
            "Unknown" => {
                if taint_exists(taints, &not_ready_taint()) {
                    if !swap_node_controller_taint(
                        &self.client,
                        node,
                        &[unreachable_taint()],
                        &[not_ready_taint()],
                    )
                    .await
                    {
                        tracing::error!(node = %name, "failed to instantly swap NotReadyTaint to UnreachableTaint; will try again in the next cycle");
                    }
                } else if self.mark_node_for_tainting(node, "Unknown") {
                    tracing::debug!(node = %name, "node is unresponsive; adding it to the taint queue");
                }
            }
            "True" => match self.mark_node_as_reachable(node).await {
                Ok(true) => {
                    tracing::debug!(node = %name, "node is healthy again, removed all taints")
                }
                Ok(false) => {}
                Err(err) => {
                    tracing::error!(node = %name, error = %err, "failed to remove taints from node; will retry in next iteration")
                }
            },
            _ => {}
        }
    }

    fn mark_node_for_tainting(&self, node: &Node, status: &str) -> bool {
        let name = node_name(node);
        let taints = node_taints(node);
        let mut zones = self.zones.lock();
        let zone = zone_key(node);
        let Some(tainter) = zones.tainter(&zone) else {
            return false;
        };
        let wanted = if status == "False" {
            not_ready_taint()
        } else {
            unreachable_taint()
        };
        if !taint_exists(taints, &wanted) {
            tainter.remove(name);
        }
        tainter.add(
            name,
            node.metadata.uid.as_deref().unwrap_or(""),
            Instant::now(),
        )
    }

    /// Removes the `NoExecute` not-ready/unreachable taints and takes the node off its
    /// zone's queue. Returns whether it was queued or remembered there.
    async fn mark_node_as_reachable(&self, node: &Node) -> Result<bool, ControllerError> {
        let name = node_name(node);
        remove_taints(&self.client, name, Some(node), &[unreachable_taint()]).await?;
        remove_taints(&self.client, name, Some(node), &[not_ready_taint()]).await?;
        let zone = zone_key(node);
        Ok(self
            .zones
            .lock()
            .tainter(&zone)
            .is_some_and(|t| t.remove(name)))
    }

    /// Drains the zone queues as fast as their rates allow, tainting each node with
    /// the `NoExecute` taint of its Ready condition.
    async fn do_no_execute_tainting_pass(&self) {
        let zones = self.zones.lock().tainter_zones();
        for zone in zones {
            loop {
                let next = self
                    .zones
                    .lock()
                    .tainter(&zone)
                    .and_then(|t| t.next_due(Instant::now()));
                let Some(value) = next else { break };
                let outcome = self.taint_node(&value.value).await;
                let mut z = self.zones.lock();
                if let Some(t) = z.tainter(&zone) {
                    match outcome {
                        Ok(()) => t.done(&value.value),
                        Err(wait) => t.retry_after(value, Instant::now(), wait),
                    }
                }
            }
        }
    }

    async fn taint_node(&self, name: &str) -> Result<(), Duration> {
        let Some(node) = self.node_store().get(name) else {
            tracing::info!(node = %name, "node no longer present in nodeLister");
            return Ok(());
        };
        let Some(cond) = node_condition(&node, "Ready") else {
            tracing::info!(node = %name, "failed to get NodeCondition from the node status");
            return Err(Duration::from_millis(50));
        };
        let (add, opposite) = match cond.status.as_str() {
            "False" => (not_ready_taint(), unreachable_taint()),
            "Unknown" => (unreachable_taint(), not_ready_taint()),
            _ => return Ok(()),
        };
        if swap_node_controller_taint(&self.client, &node, &[add], &[opposite]).await {
            Ok(())
        } else {
            Err(Duration::ZERO)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(conds: &[(&str, &str)], unschedulable: bool, taints: Vec<Taint>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n".into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                unschedulable: Some(unschedulable),
                taints: Some(taints),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(
                    conds
                        .iter()
                        .map(|(t, s)| NodeCondition {
                            type_: t.to_string(),
                            status: s.to_string(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
        }
    }

    fn keys(ts: &[Taint]) -> Vec<String> {
        ts.iter()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect()
    }

    #[test]
    fn condition_taints() {
        let n = node(
            &[
                ("Ready", "Unknown"),
                ("MemoryPressure", "True"),
                ("DiskPressure", "False"),
                ("PIDPressure", "True"),
                ("NetworkUnavailable", "True"),
            ],
            true,
            vec![],
        );
        assert_eq!(
            keys(&no_schedule_taints_for(&n)),
            [
                "node.kubernetes.io/unreachable:NoSchedule",
                "node.kubernetes.io/memory-pressure:NoSchedule",
                "node.kubernetes.io/pid-pressure:NoSchedule",
                "node.kubernetes.io/network-unavailable:NoSchedule",
                "node.kubernetes.io/unschedulable:NoSchedule",
            ]
        );
        let n = node(&[("Ready", "False")], false, vec![]);
        assert_eq!(
            keys(&no_schedule_taints_for(&n)),
            ["node.kubernetes.io/not-ready:NoSchedule"]
        );
        assert!(no_schedule_taints_for(&node(&[("Ready", "True")], false, vec![])).is_empty());

        // Only the controller's own NoSchedule taints are compared.
        let n = node(
            &[("Ready", "True")],
            false,
            vec![
                taint("node.kubernetes.io/unreachable", "NoSchedule"),
                taint("node.kubernetes.io/unreachable", "NoExecute"),
                taint("example.com/mine", "NoSchedule"),
            ],
        );
        let (add, remove) =
            taint_set_diff(&no_schedule_taints_for(&n), &managed_no_schedule_taints(&n));
        assert!(add.is_empty());
        assert_eq!(keys(&remove), ["node.kubernetes.io/unreachable:NoSchedule"]);
    }

    #[test]
    fn beta_labels_follow_stable_ones() {
        let mut n = node(&[], false, vec![]);
        assert!(labels_to_reconcile(&n).is_empty());
        n.metadata.labels = Some(
            [
                ("kubernetes.io/os".to_string(), "linux".to_string()),
                ("kubernetes.io/arch".to_string(), "amd64".to_string()),
                ("beta.kubernetes.io/arch".to_string(), "arm64".to_string()),
            ]
            .into(),
        );
        let want: BTreeMap<String, String> = [
            ("beta.kubernetes.io/arch".to_string(), "amd64".to_string()),
            ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ]
        .into();
        assert_eq!(labels_to_reconcile(&n), want);
    }
}
