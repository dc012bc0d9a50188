//! What the scheduler knows of each node: the Node, the pods on it (bound or
//! assumed), the resources they request and the host ports they hold; and the cache
//! of all nodes and pods that the scheduling loop owns.

use crate::podinfo::{HostPort, PodInfo};
use crate::resources::{node_allocatable, Resources};
use k8s_openapi::api::core::v1::{Node, Taint};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A node and the pods on it.
#[derive(Debug, Default)]
pub struct NodeInfo {
    /// The Node object (None while only pods refer to it).
    pub node: Option<Arc<Node>>,
    /// metadata.name.
    pub name: String,
    /// metadata.labels.
    pub labels: BTreeMap<String, String>,
    /// spec.taints.
    pub taints: Vec<Taint>,
    /// spec.unschedulable.
    pub unschedulable: bool,
    /// status.allocatable.
    pub allocatable: Resources,
    /// Sum of the requests of its pods (pods counted in `pods`).
    pub requested: Resources,
    /// Same with the scoring defaults for missing cpu/memory.
    pub non_zero_requested: Resources,
    /// Its pods, by key.
    pub pods: BTreeMap<String, Arc<PodInfo>>,
    /// Host ports held by its pods.
    pub used_ports: Vec<HostPort>,
    /// How many of its pods have pod affinity or anti-affinity of any kind.
    pub pods_with_affinity: usize,
    /// How many of its pods have required anti-affinity.
    pub pods_with_required_anti_affinity: usize,
}

impl NodeInfo {
    fn set_node(&mut self, node: Arc<Node>) {
        self.name = node.metadata.name.clone().unwrap_or_default();
        self.labels = node.metadata.labels.clone().unwrap_or_default();
        let spec = node.spec.as_ref();
        self.taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        self.unschedulable = spec.and_then(|s| s.unschedulable).unwrap_or(false);
        self.allocatable = node_allocatable(&node);
        self.node = Some(node);
    }

    /// Accounts a pod to this node.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        if let Some(old) = self.pods.remove(&pod.key) {
            self.account(&old, false);
        }
        self.account(&pod, true);
        self.pods.insert(pod.key.clone(), pod);
    }

    /// Removes a pod from this node's accounting.
    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let old = self.pods.remove(key)?;
        self.account(&old, false);
        Some(old)
    }

    fn account(&mut self, pod: &PodInfo, add: bool) {
        let mut one = pod.requests.clone();
        one.pods = 1;
        let mut nz = pod.non_zero.clone();
        nz.pods = 1;
        let aff = pod.has_pod_affinity() as usize;
        let anti = (!pod.anti_affinity.is_empty()) as usize;
        if add {
            self.requested.add(&one);
            self.non_zero_requested.add(&nz);
            self.used_ports.extend(pod.host_ports.iter().cloned());
            self.pods_with_affinity += aff;
            self.pods_with_required_anti_affinity += anti;
        } else {
            self.requested.sub(&one);
            self.non_zero_requested.sub(&nz);
            for p in &pod.host_ports {
                if let Some(i) = self.used_ports.iter().position(|u| u == p) {
                    self.used_ports.swap_remove(i);
                }
            }
            self.pods_with_affinity -= aff;
            self.pods_with_required_anti_affinity -= anti;
        }
    }
}

/// All nodes and pods the scheduler knows, including pods it assumed onto a node
/// before the binding was confirmed by the API. Nodes live in a vector (fast to walk
/// in the round-robin search) with an index by name.
#[derive(Default)]
pub struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// How many entries of `nodes` have a Node object.
    with_node: usize,
    /// Where each pod is accounted, and whether only assumed.
    pods: HashMap<String, (String, bool)>,
    /// Labels of each namespace (for namespaceSelector in affinity terms).
    pub namespace_labels: Arc<HashMap<String, BTreeMap<String, String>>>,
    /// Pods with any pod affinity or anti-affinity, cluster-wide.
    pub pods_with_affinity: usize,
}

impl Cache {
    fn slot(&mut self, name: &str) -> &mut NodeInfo {
        let i = match self.index.get(name) {
            Some(i) => *i,
            None => {
                self.nodes.push(NodeInfo {
                    name: name.to_string(),
                    ..Default::default()
                });
                self.index.insert(name.to_string(), self.nodes.len() - 1);
                self.nodes.len() - 1
            }
        };
        &mut self.nodes[i]
    }

    /// Drops the entry of `name` if it has neither a Node nor pods.
    fn prune(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else {
            return;
        };
        if self.nodes[i].node.is_some() || !self.nodes[i].pods.is_empty() {
            return;
        }
        self.index.remove(name);
        self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
    }

    /// Adds or replaces a node.
    pub fn set_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let info = self.slot(&name);
        let new = info.node.is_none();
        info.set_node(node);
        if new {
            self.with_node += 1;
        }
    }

    /// Removes a node (its pods stay accounted under its name until they go).
    pub fn remove_node(&mut self, name: &str) {
        if let Some(&i) = self.index.get(name) {
            if self.nodes[i].node.take().is_some() {
                self.with_node -= 1;
            }
            self.prune(name);
        }
    }

    /// Accounts a bound pod (or updates it); `assumed` marks a binding the scheduler
    /// made that the API has not confirmed yet.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>, assumed: bool) {
        self.remove_pod(&pod.key);
        if pod.node_name.is_empty() {
            return;
        }
        self.pods
            .insert(pod.key.clone(), (pod.node_name.clone(), assumed));
        self.pods_with_affinity += pod.has_pod_affinity() as usize;
        let node = pod.node_name.clone();
        self.slot(&node).add_pod(pod);
    }

    /// Whether a pod is accounted only as assumed.
    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods.get(key).is_some_and(|(_, a)| *a)
    }

    /// Where a pod is accounted.
    pub fn node_of(&self, key: &str) -> Option<&str> {
        self.pods.get(key).map(|(n, _)| n.as_str())
    }

    /// Stops accounting a pod.
    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let (node, _) = self.pods.remove(key)?;
        let i = *self.index.get(&node)?;
        let old = self.nodes[i].remove_pod(key);
        if let Some(p) = &old {
            self.pods_with_affinity -= p.has_pod_affinity() as usize;
        }
        self.prune(&node);
        old
    }

    /// A node by name (only nodes with a Node object).
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index
            .get(name)
            .map(|i| &self.nodes[*i])
            .filter(|n| n.node.is_some())
    }

    /// Number of nodes with a Node object.
    pub fn node_count(&self) -> usize {
        self.with_node
    }

    /// Number of slots to walk in the round-robin search (nodes plus entries that
    /// only hold pods of a node not seen yet).
    pub fn slots(&self) -> usize {
        self.nodes.len()
    }

    /// The i-th slot, if it holds a Node.
    pub fn node_at(&self, i: usize) -> Option<&NodeInfo> {
        self.nodes.get(i).filter(|n| n.node.is_some())
    }

    /// Every node with a Node object.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.iter().filter(|n| n.node.is_some())
    }

    /// Names of every node with a Node object.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes().map(|n| n.name.clone()).collect()
    }

    /// Keys of every accounted pod.
    pub fn pod_keys(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }
}
