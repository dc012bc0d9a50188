//! DaemonSet helpers without I/O: which nodes should run a daemon pod (node name,
//! node selector, required node affinity, taints against tolerations), the
//! tolerations every daemon pod gets, the node-name affinity a daemon pod is
//! created with, template generations and hashes, the per-node decision of the
//! manage loop, and the rolling-update plan.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, PodTemplateSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::time::Instant;

use controllers::util::{is_pod_available, is_pod_ready};

use crate::deployment::util::scaled_value;
use crate::history::CONTROLLER_REVISION_HASH_LABEL;

/// The deprecated pod label carrying the DaemonSet's template generation.
pub const POD_TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// The DaemonSet annotation carrying its template generation.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// The field a node-name affinity selects on.
pub const OBJECT_NAME_FIELD: &str = "metadata.name";

/// Taint keys of the tolerations daemon pods get.
pub const TAINT_NODE_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// See [`TAINT_NODE_NOT_READY`].
pub const TAINT_NODE_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// See [`TAINT_NODE_NOT_READY`].
pub const TAINT_NODE_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
/// See [`TAINT_NODE_NOT_READY`].
pub const TAINT_NODE_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// See [`TAINT_NODE_NOT_READY`].
pub const TAINT_NODE_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
/// See [`TAINT_NODE_NOT_READY`].
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// See [`TAINT_NODE_NOT_READY`].
pub const TAINT_NODE_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

fn exists_toleration(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    }
}

/// Adds `t` to the tolerations, replacing one with the same key, operator, value and
/// effect.
fn add_or_update_toleration(spec: &mut PodSpec, t: Toleration) {
    let list = spec.tolerations.get_or_insert_with(Vec::new);
    let same = |o: &Toleration| {
        o.key == t.key
            && o.operator.as_deref().unwrap_or("Equal") == t.operator.as_deref().unwrap_or("Equal")
            && o.value.as_deref().unwrap_or("") == t.value.as_deref().unwrap_or("")
            && o.effect.as_deref().unwrap_or("") == t.effect.as_deref().unwrap_or("")
    };
    match list.iter_mut().find(|o| same(o)) {
        Some(o) => *o = t,
        None => list.push(t),
    }
}

/// Gives a daemon pod the tolerations of node conditions it must survive: not-ready
/// and unreachable (NoExecute, forever), disk/memory/pid pressure and unschedulable
/// (NoSchedule), and network-unavailable (NoSchedule) for host-network pods.
pub fn add_daemon_pod_tolerations(spec: &mut PodSpec) {
    add_or_update_toleration(spec, exists_toleration(TAINT_NODE_NOT_READY, "NoExecute"));
    add_or_update_toleration(spec, exists_toleration(TAINT_NODE_UNREACHABLE, "NoExecute"));
    for key in [
        TAINT_NODE_DISK_PRESSURE,
        TAINT_NODE_MEMORY_PRESSURE,
        TAINT_NODE_PID_PRESSURE,
        TAINT_NODE_UNSCHEDULABLE,
    ] {
        add_or_update_toleration(spec, exists_toleration(key, "NoSchedule"));
    }
    if spec.host_network == Some(true) {
        add_or_update_toleration(
            spec,
            exists_toleration(TAINT_NODE_NETWORK_UNAVAILABLE, "NoSchedule"),
        );
    }
}

/// Whether a toleration tolerates a taint.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if e != taint.effect {
            return false;
        }
    }
    if let Some(k) = t.key.as_deref().filter(|k| !k.is_empty()) {
        if k != taint.key {
            return false;
        }
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// The first taint passing `filter` that no toleration tolerates.
pub fn untolerated_taint<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    filter: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| filter(t))
        .find(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value, values) else {
                return false;
            };
            match (v.parse::<i64>(), bound.parse::<i64>()) {
                (Ok(v), Ok(b)) => {
                    if r.operator == "Gt" {
                        v > b
                    } else {
                        v < b
                    }
                }
                _ => false,
            }
        }
        _ => false,
    }
}

/// Whether a node selector term matches the node: all its label expressions and
/// field expressions (only `metadata.name`); an empty term matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    let name = node.metadata.name.as_deref();
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.and_then(|l| l.get(&r.key)).map(String::as_str)))
        && fields
            .iter()
            .all(|r| r.key == OBJECT_NAME_FIELD && requirement_matches(r, name))
}

/// Whether the pod's nodeSelector and required node affinity admit the node.
pub fn node_affinity_matches(spec: &PodSpec, node: &Node) -> bool {
    if let Some(sel) = &spec.node_selector {
        let labels = node.metadata.labels.as_ref();
        if !sel
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, node)),
    }
}

/// The template of a DaemonSet (empty when unset).
pub fn ds_template(ds: &DaemonSet) -> PodTemplateSpec {
    ds.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// `(should_run, should_continue_running)` of a daemon pod on `node`: a node that
/// the pod's node name, node selector or affinity exclude gets neither; a node with
/// an untolerated NoSchedule/NoExecute taint gets no new pod, but a running pod
/// stays unless a NoExecute taint is untolerated.
pub fn node_should_run_daemon_pod(node: &Node, ds: &DaemonSet) -> (bool, bool) {
    let mut spec = ds_template(ds).spec.unwrap_or_default();
    let node_name = node.metadata.name.as_deref().unwrap_or("");
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        if n != node_name {
            return (false, false);
        }
    }
    add_daemon_pod_tolerations(&mut spec);
    if !node_affinity_matches(&spec, node) {
        return (false, false);
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    let blocking = untolerated_taint(taints, tolerations, |t| {
        t.effect == "NoSchedule" || t.effect == "NoExecute"
    });
    if blocking.is_some() {
        let evicting = untolerated_taint(taints, tolerations, |t| t.effect == "NoExecute");
        return (false, evicting.is_none());
    }
    (true, true)
}

/// Replaces the required node affinity with one term selecting `metadata.name In
/// [node]`, so that the scheduler places the pod on that node.
pub fn replace_node_name_affinity(affinity: Option<Affinity>, node: &str) -> Affinity {
    let selector = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: OBJECT_NAME_FIELD.into(),
                operator: "In".into(),
                values: Some(vec![node.to_string()]),
            }]),
            match_expressions: None,
        }],
    };
    let mut affinity = affinity.unwrap_or_default();
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(selector);
    affinity
}

/// The node a daemon pod is for: its `spec.nodeName`, or else the single node named
/// by its node-name affinity.
pub fn target_node_name(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    let [term] = terms.as_slice() else {
        return None;
    };
    let [field] = term.match_fields.as_deref()? else {
        return None;
    };
    if field.key != OBJECT_NAME_FIELD || field.operator != "In" {
        return None;
    }
    match field.values.as_deref()? {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// The DaemonSet's template generation (from its annotation), if set and valid.
pub fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.metadata
        .annotations
        .as_ref()?
        .get(TEMPLATE_GENERATION_ANNOTATION)?
        .parse()
        .ok()
}

/// The template daemon pods are created from: the DaemonSet's, with the daemon
/// tolerations, the `pod-template-generation` label (when known) and the
/// `controller-revision-hash` label (when `hash` is not empty).
pub fn create_pod_template(ds: &DaemonSet, generation: Option<i64>, hash: &str) -> PodTemplateSpec {
    let mut t = ds_template(ds);
    add_daemon_pod_tolerations(t.spec.get_or_insert_with(PodSpec::default));
    let labels = t
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new);
    if let Some(g) = generation {
        labels.insert(POD_TEMPLATE_GENERATION_LABEL.into(), g.to_string());
    }
    if !hash.is_empty() {
        labels.insert(CONTROLLER_REVISION_HASH_LABEL.into(), hash.to_string());
    }
    t
}

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// Whether a daemon pod runs the current template: its hash label equals `hash`, or
/// its generation label equals the DaemonSet's template generation.
pub fn is_pod_updated(pod: &Pod, hash: &str, generation: Option<i64>) -> bool {
    let template_matches = generation
        .is_some_and(|g| label(pod, POD_TEMPLATE_GENERATION_LABEL) == Some(g.to_string().as_str()));
    let hash_matches = !hash.is_empty() && label(pod, CONTROLLER_REVISION_HASH_LABEL) == Some(hash);
    hash_matches || template_matches
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Oldest first; among pods created at the same time, the one further along in its
/// lifecycle (Running before Pending before unknown) first.
pub fn sort_by_creation_and_phase(pods: &mut [Arc<Pod>]) {
    fn rank(p: &Pod) -> u8 {
        match phase(p) {
            "Running" => 0,
            "Pending" => 1,
            _ => 2,
        }
    }
    pods.sort_by(|a, b| {
        let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
        ta.cmp(&tb).then_with(|| rank(a).cmp(&rank(b)))
    });
}

/// maxSurge of a rolling update against `desired` nodes (0 for OnDelete).
pub fn surge_count(ds: &DaemonSet, desired: i32) -> Result<i32, String> {
    rolling_param(ds, desired, |r| r.max_surge.as_ref())
}

/// maxUnavailable of a rolling update against `desired` nodes (0 for OnDelete).
pub fn unavailable_count(ds: &DaemonSet, desired: i32) -> Result<i32, String> {
    rolling_param(ds, desired, |r| r.max_unavailable.as_ref())
}

fn rolling_param(
    ds: &DaemonSet,
    desired: i32,
    get: impl Fn(&k8s_openapi::api::apps::v1::RollingUpdateDaemonSet) -> Option<&IntOrString>,
) -> Result<i32, String> {
    let Some(us) = ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref()) else {
        return Ok(0);
    };
    if us.type_.as_deref() != Some("RollingUpdate") {
        return Ok(0);
    }
    match us.rolling_update.as_ref().and_then(get) {
        Some(v) => scaled_value(v, desired, true),
        None => Ok(0),
    }
}

/// Whether the rolling update may create a new pod before the old one goes.
pub fn allows_surge(ds: &DaemonSet) -> bool {
    surge_count(ds, 1).is_ok_and(|n| n != 0)
}

/// `spec.minReadySeconds`.
pub fn min_ready_seconds(ds: &DaemonSet) -> i32 {
    ds.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// What the manage loop does about one node.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NodePlan {
    /// A daemon pod must be created on the node.
    pub create: bool,
    /// Names of daemon pods to delete.
    pub delete: Vec<String>,
    /// Failed pods found (names), to report with a FailedDaemonPod event.
    pub failed: Vec<String>,
    /// Succeeded pods found (names), to report with a SucceededDaemonPod event.
    pub succeeded: Vec<String>,
    /// Failed pods left alone while the node's backoff runs; retry after this.
    pub backoff: Option<Duration>,
}

/// The manage loop's decision for one node, given its daemon pods (those bound to it
/// or targeting it). `failed_backoff` is asked, per failed pod, whether deleting it
/// must wait (`Some(delay)`) and otherwise records the deletion.
pub fn plan_node(
    node: &Node,
    ds: &DaemonSet,
    pods: &[Arc<Pod>],
    hash: &str,
    now: jiff::Timestamp,
    mut failed_backoff: impl FnMut() -> Option<Duration>,
) -> NodePlan {
    let (should_run, should_continue) = node_should_run_daemon_pod(node, ds);
    let mut plan = NodePlan::default();
    if should_run && pods.is_empty() {
        plan.create = true;
        return plan;
    }
    if should_continue {
        let mut running: Vec<Arc<Pod>> = Vec::new();
        for pod in pods {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let name = pod.metadata.name.clone().unwrap_or_default();
            match phase(pod) {
                "Failed" => {
                    if let Some(delay) = failed_backoff() {
                        plan.backoff = Some(delay);
                        continue;
                    }
                    plan.failed.push(name.clone());
                    plan.delete.push(name);
                }
                "Succeeded" => {
                    plan.succeeded.push(name.clone());
                    plan.delete.push(name);
                }
                _ => running.push(pod.clone()),
            }
        }
        sort_by_creation_and_phase(&mut running);
        if !allows_surge(ds) {
            for p in running.iter().skip(1) {
                plan.delete
                    .push(p.metadata.name.clone().unwrap_or_default());
            }
            return plan;
        }
        if running.len() <= 1 {
            if running.is_empty() && should_run {
                plan.create = true;
            }
            return plan;
        }
        // Surging: keep the oldest new pod and the oldest old pod at most.
        let mut oldest_new: Option<&Arc<Pod>> = None;
        let mut oldest_old: Option<&Arc<Pod>> = None;
        for pod in &running {
            let slot = if label(pod, CONTROLLER_REVISION_HASH_LABEL) == Some(hash) {
                &mut oldest_new
            } else {
                &mut oldest_old
            };
            if slot.is_none() {
                *slot = Some(pod);
                continue;
            }
            plan.delete
                .push(pod.metadata.name.clone().unwrap_or_default());
        }
        if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
            if !is_pod_ready(old) || is_pod_available(new, min_ready_seconds(ds), now) {
                plan.delete
                    .push(old.metadata.name.clone().unwrap_or_default());
            }
        }
        return plan;
    }
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_none() {
            plan.delete
                .push(pod.metadata.name.clone().unwrap_or_default());
        }
    }
    plan
}

/// The updated and the old pod on a node (ignoring pods being deleted); `None` when
/// there is more than one of either (the manage loop cleans up first).
#[allow(clippy::type_complexity)]
pub fn find_updated_pods_on_node(
    pods: &[Arc<Pod>],
    hash: &str,
    generation: Option<i64>,
) -> Option<(Option<Arc<Pod>>, Option<Arc<Pod>>)> {
    let (mut new, mut old) = (None, None);
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let slot = if is_pod_updated(pod, hash, generation) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(pod.clone());
    }
    Some((new, old))
}

/// What one rolling-update step does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RollingPlan {
    /// Old pods to delete.
    pub delete: Vec<String>,
    /// Nodes to create new pods on (surge).
    pub create: Vec<String>,
}

/// Plans one rolling-update step. `node_pods` holds every node with daemon pods and
/// every node that should run one (possibly with no pods); `nodes` looks nodes up.
pub fn plan_rolling_update(
    ds: &DaemonSet,
    nodes: &HashMap<String, Arc<Node>>,
    node_pods: &BTreeMap<String, Vec<Arc<Pod>>>,
    desired: i32,
    hash: &str,
    now: jiff::Timestamp,
) -> Result<RollingPlan, String> {
    let mut max_unavailable = unavailable_count(ds, desired)?;
    let max_surge = surge_count(ds, desired)?;
    if desired > 0 && max_unavailable == 0 && max_surge == 0 {
        max_unavailable = 1;
    }
    let generation = template_generation(ds);
    let min_ready = min_ready_seconds(ds);
    let available = |p: &Pod| is_pod_available(p, min_ready, now);
    let mut plan = RollingPlan::default();

    if max_surge == 0 {
        let mut unavailable = 0;
        let mut candidates = Vec::new();
        for pods in node_pods.values() {
            let Some((new, old)) = find_updated_pods_on_node(pods, hash, generation) else {
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(new), None) => {
                    if !available(&new) {
                        unavailable += 1;
                    }
                }
                (None, Some(old)) => {
                    if !available(&old) {
                        plan.delete
                            .push(old.metadata.name.clone().unwrap_or_default());
                        unavailable += 1;
                    } else if unavailable < max_unavailable {
                        candidates.push(old.metadata.name.clone().unwrap_or_default());
                    }
                }
            }
        }
        let room = usize::try_from((max_unavailable - unavailable).max(0)).unwrap_or(0);
        plan.delete.extend(candidates.into_iter().take(room));
        return Ok(plan);
    }

    let mut surge = 0;
    let mut available_count = 0;
    let mut candidates = Vec::new();
    let mut should_not_run = Vec::new();
    for (node_name, pods) in node_pods {
        let Some((new, old)) = find_updated_pods_on_node(pods, hash, generation) else {
            surge += 1;
            continue;
        };
        if let Some(old) = &old {
            if available(old) {
                available_count += 1;
            }
        } else if let Some(new) = &new {
            if available(new) {
                available_count += 1;
            }
        }
        let Some(old) = old else {
            continue;
        };
        let node_should_run = || {
            nodes
                .get(node_name)
                .map(|n| node_should_run_daemon_pod(n, ds).0)
                .ok_or_else(|| format!("couldn't get node for nodeName {node_name:?}"))
        };
        match new {
            None => {
                if !available(&old) {
                    if !node_should_run()? {
                        plan.delete
                            .push(old.metadata.name.clone().unwrap_or_default());
                        continue;
                    }
                    plan.create.push(node_name.clone());
                } else {
                    if !node_should_run()? {
                        should_not_run.push(old.metadata.name.clone().unwrap_or_default());
                        continue;
                    }
                    if surge >= max_surge {
                        continue;
                    }
                    candidates.push(node_name.clone());
                }
            }
            Some(new) => {
                if !available(&new) {
                    surge += 1;
                    continue;
                }
                plan.delete
                    .push(old.metadata.name.clone().unwrap_or_default());
            }
        }
    }
    let deletable = usize::try_from((available_count - desired).max(0)).unwrap_or(0);
    plan.delete
        .extend(should_not_run.into_iter().take(deletable));
    let room = usize::try_from((max_surge - surge).max(0)).unwrap_or(0);
    plan.create.extend(candidates.into_iter().take(room));
    Ok(plan)
}

/// The failed-pod backoff of upstream's flowcontrol.Backoff: per key, a delay that
/// starts at 1s and doubles up to 15 minutes; an entry idle for twice the maximum
/// starts over.
#[derive(Debug, Default)]
pub struct FailedPodsBackoff {
    entries: parking_lot::Mutex<HashMap<String, (Duration, Instant)>>,
}

impl FailedPodsBackoff {
    /// The initial delay.
    pub const INITIAL: Duration = Duration::from_secs(1);
    /// The largest delay.
    pub const MAX: Duration = Duration::from_secs(15 * 60);

    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// `Some(current delay)` if `key` is still backing off at `now`; otherwise
    /// records a new attempt (doubling the delay) and returns `None`.
    pub fn check_and_advance(&self, key: &str, now: Instant) -> Option<Duration> {
        let mut entries = self.entries.lock();
        if let Some((delay, last)) = entries.get(key) {
            if now.saturating_duration_since(*last) < *delay {
                return Some(*delay);
            }
        }
        let next = match entries.get(key) {
            Some((delay, last)) if now.saturating_duration_since(*last) <= 2 * Self::MAX => {
                (*delay * 2).min(Self::MAX)
            }
            _ => Self::INITIAL,
        };
        entries.insert(key.to_string(), (next, now));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet,
    };
    use k8s_openapi::api::core::v1::{NodeSpec, PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn node(name: &str, labels: &[(&str, &str)], taints: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(
                    taints
                        .iter()
                        .map(|(k, e)| Taint {
                            key: k.to_string(),
                            effect: e.to_string(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn ds(spec: PodSpec, surge: i32, unavailable: i32) -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta {
                name: Some("ds".into()),
                annotations: Some(
                    [(TEMPLATE_GENERATION_ANNOTATION.to_string(), "2".to_string())].into(),
                ),
                ..Default::default()
            },
            spec: Some(DaemonSetSpec {
                template: PodTemplateSpec {
                    metadata: None,
                    spec: Some(spec),
                },
                update_strategy: Some(DaemonSetUpdateStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDaemonSet {
                        max_surge: Some(IntOrString::Int(surge)),
                        max_unavailable: Some(IntOrString::Int(unavailable)),
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(name: &str, hash: &str, created: i64, ready: bool) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    [(CONTROLLER_REVISION_HASH_LABEL.to_string(), hash.to_string())].into(),
                ),
                creation_timestamp: Some(Time(
                    jiff::Timestamp::from_second(1000 + created).unwrap(),
                )),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::from_second(5000).unwrap()
    }

    #[test]
    fn eligibility_selector_affinity_taints() {
        let plain = ds(PodSpec::default(), 0, 1);
        assert_eq!(
            node_should_run_daemon_pod(&node("a", &[], &[]), &plain),
            (true, true)
        );

        let mut spec = PodSpec {
            node_selector: Some([("disk".to_string(), "ssd".to_string())].into()),
            ..Default::default()
        };
        let sel = ds(spec.clone(), 0, 1);
        assert_eq!(
            node_should_run_daemon_pod(&node("a", &[], &[]), &sel),
            (false, false)
        );
        assert_eq!(
            node_should_run_daemon_pod(&node("a", &[("disk", "ssd")], &[]), &sel),
            (true, true)
        );

        spec.node_selector = None;
        spec.affinity = Some(replace_node_name_affinity(None, "b"));
        let aff = ds(spec, 0, 1);
        assert_eq!(
            node_should_run_daemon_pod(&node("a", &[], &[]), &aff),
            (false, false)
        );
        assert_eq!(
            node_should_run_daemon_pod(&node("b", &[], &[]), &aff),
            (true, true)
        );

        let named = ds(
            PodSpec {
                node_name: Some("b".into()),
                ..Default::default()
            },
            0,
            1,
        );
        assert_eq!(
            node_should_run_daemon_pod(&node("a", &[], &[]), &named),
            (false, false)
        );

        // NoSchedule: no new pod, running ones stay; NoExecute: both off.
        let ns = node("a", &[], &[("dedicated", "NoSchedule")]);
        assert_eq!(node_should_run_daemon_pod(&ns, &plain), (false, true));
        let ne = node("a", &[], &[("dedicated", "NoExecute")]);
        assert_eq!(node_should_run_daemon_pod(&ne, &plain), (false, false));
        assert_eq!(
            node_should_run_daemon_pod(&node("a", &[], &[("x", "PreferNoSchedule")]), &plain),
            (true, true)
        );
        // Automatic tolerations.
        for (k, e) in [
            (TAINT_NODE_NOT_READY, "NoExecute"),
            (TAINT_NODE_UNREACHABLE, "NoExecute"),
            (TAINT_NODE_DISK_PRESSURE, "NoSchedule"),
            (TAINT_NODE_MEMORY_PRESSURE, "NoSchedule"),
            (TAINT_NODE_PID_PRESSURE, "NoSchedule"),
            (TAINT_NODE_UNSCHEDULABLE, "NoSchedule"),
        ] {
            assert_eq!(
                node_should_run_daemon_pod(&node("a", &[], &[(k, e)]), &plain),
                (true, true),
                "{k}"
            );
        }
        let net = node("a", &[], &[(TAINT_NODE_NETWORK_UNAVAILABLE, "NoSchedule")]);
        assert_eq!(node_should_run_daemon_pod(&net, &plain), (false, true));
        let host = ds(
            PodSpec {
                host_network: Some(true),
                ..Default::default()
            },
            0,
            1,
        );
        assert_eq!(node_should_run_daemon_pod(&net, &host), (true, true));
        // A user toleration.
        let tol = ds(
            PodSpec {
                tolerations: Some(vec![Toleration {
                    key: Some("dedicated".into()),
                    operator: Some("Exists".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            0,
            1,
        );
        assert_eq!(node_should_run_daemon_pod(&ne, &tol), (true, true));
    }

    #[test]
    fn tolerations_added_once() {
        let mut spec = PodSpec::default();
        add_daemon_pod_tolerations(&mut spec);
        add_daemon_pod_tolerations(&mut spec);
        let t = spec.tolerations.unwrap();
        assert_eq!(t.len(), 6);
        assert_eq!(t[0].key.as_deref(), Some("node.kubernetes.io/not-ready"));
        assert_eq!(t[0].effect.as_deref(), Some("NoExecute"));
        assert_eq!(t[0].toleration_seconds, None);
    }

    #[test]
    fn affinity_and_target_node() {
        let a = replace_node_name_affinity(None, "n1");
        let p = Pod {
            spec: Some(PodSpec {
                affinity: Some(a),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(target_node_name(&p).as_deref(), Some("n1"));
        let bound = Pod {
            spec: Some(PodSpec {
                node_name: Some("n2".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(target_node_name(&bound).as_deref(), Some("n2"));
        assert_eq!(
            target_node_name(&Pod {
                spec: Some(PodSpec::default()),
                ..Default::default()
            }),
            None
        );
    }

    #[test]
    fn node_plan() {
        let d = ds(PodSpec::default(), 0, 1);
        let n = node("a", &[], &[]);
        let none = || None;
        assert!(plan_node(&n, &d, &[], "h", now(), none).create);
        let plan = plan_node(
            &n,
            &d,
            &[pod("x", "h", 2, true), pod("y", "h", 1, true)],
            "h",
            now(),
            none,
        );
        assert_eq!(plan.delete, ["x"], "keeps the oldest");
        let tainted = node("a", &[], &[("k", "NoExecute")]);
        let plan = plan_node(&tainted, &d, &[pod("x", "h", 2, true)], "h", now(), none);
        assert_eq!(plan.delete, ["x"]);
        let mut failed = (*pod("f", "h", 1, false)).clone();
        failed.status.as_mut().unwrap().phase = Some("Failed".into());
        let plan = plan_node(&n, &d, &[Arc::new(failed.clone())], "h", now(), none);
        assert_eq!(
            (plan.delete.clone(), plan.failed.clone(), plan.create),
            (vec!["f".to_string()], vec!["f".to_string()], false)
        );
        let plan = plan_node(&n, &d, &[Arc::new(failed)], "h", now(), || {
            Some(Duration::from_secs(2))
        });
        assert!(plan.delete.is_empty());
        assert_eq!(plan.backoff, Some(Duration::from_secs(2)));
        // Surge: old ready, new not available yet -> keep both.
        let s = ds(PodSpec::default(), 1, 0);
        let plan = plan_node(
            &n,
            &s,
            &[pod("old", "o", 1, true), pod("new", "h", 2, false)],
            "h",
            now(),
            none,
        );
        assert!(plan.delete.is_empty());
        let plan = plan_node(
            &n,
            &s,
            &[pod("old", "o", 1, true), pod("new", "h", 2, true)],
            "h",
            now(),
            none,
        );
        assert_eq!(plan.delete, ["old"]);
    }

    #[test]
    fn rolling_plan_respects_max_unavailable() {
        let d = ds(PodSpec::default(), 0, 1);
        let mut node_pods = BTreeMap::new();
        node_pods.insert("a".to_string(), vec![pod("pa", "old", 1, true)]);
        node_pods.insert("b".to_string(), vec![pod("pb", "old", 1, true)]);
        node_pods.insert("c".to_string(), vec![pod("pc", "new", 1, true)]);
        let nodes = HashMap::new();
        let plan = plan_rolling_update(&d, &nodes, &node_pods, 3, "new", now()).unwrap();
        assert_eq!(plan.delete, ["pa"]);
        // A new pod not yet ready uses up the budget.
        node_pods.insert("c".to_string(), vec![pod("pc", "new", 1, false)]);
        let plan = plan_rolling_update(&d, &nodes, &node_pods, 3, "new", now()).unwrap();
        assert!(plan.delete.is_empty());
        // Unavailable old pods are always replaced.
        node_pods.insert("b".to_string(), vec![pod("pb", "old", 1, false)]);
        let plan = plan_rolling_update(&d, &nodes, &node_pods, 3, "new", now()).unwrap();
        assert_eq!(plan.delete, ["pb"]);
        // The pod-template-generation label also counts as updated.
        let mut gen = (*pod("pa", "x", 1, true)).clone();
        gen.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(POD_TEMPLATE_GENERATION_LABEL.into(), "2".into());
        assert!(is_pod_updated(&gen, "new", Some(2)));
    }

    #[test]
    fn rolling_plan_surge() {
        let d = ds(PodSpec::default(), 1, 0);
        let mut nodes = HashMap::new();
        nodes.insert("a".to_string(), Arc::new(node("a", &[], &[])));
        nodes.insert("b".to_string(), Arc::new(node("b", &[], &[])));
        let mut node_pods = BTreeMap::new();
        node_pods.insert("a".to_string(), vec![pod("pa", "old", 1, true)]);
        node_pods.insert("b".to_string(), vec![pod("pb", "old", 1, true)]);
        let plan = plan_rolling_update(&d, &nodes, &node_pods, 2, "new", now()).unwrap();
        assert_eq!(
            plan,
            RollingPlan {
                delete: vec![],
                create: vec!["a".into()]
            }
        );
        node_pods.insert(
            "a".to_string(),
            vec![pod("pa", "old", 1, true), pod("na", "new", 2, true)],
        );
        let plan = plan_rolling_update(&d, &nodes, &node_pods, 2, "new", now()).unwrap();
        assert_eq!(
            plan,
            RollingPlan {
                delete: vec!["pa".into()],
                create: vec!["b".into()]
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles() {
        let b = FailedPodsBackoff::new();
        let t0 = Instant::now();
        assert_eq!(b.check_and_advance("k", t0), None);
        assert_eq!(b.check_and_advance("k", t0), Some(Duration::from_secs(1)));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(b.check_and_advance("k", t1), None);
        assert_eq!(
            b.check_and_advance("k", t1 + Duration::from_millis(1500)),
            Some(Duration::from_secs(2))
        );
    }
}
