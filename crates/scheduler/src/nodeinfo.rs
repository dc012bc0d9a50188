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
/// before the binding was confirmed by the API.
#[derive(Default)]
pub struct Cache {
    nodes: HashMap<String, NodeInfo>,
    /// Names of nodes with a Node object, in a stable order for round-robin search.
    order: Vec<String>,
    /// Where each pod is accounted, and whether only assumed.
    pods: HashMap<String, (String, bool)>,
    /// Labels of each namespace (for namespaceSelector in affinity terms).
    pub namespace_labels: HashMap<String, BTreeMap<String, String>>,
    /// Bumped on every change; lets callers notice that nothing changed.
    pub generation: u64,
}

impl Cache {
    /// Adds or replaces a node.
    pub fn set_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let info = self.nodes.entry(name.clone()).or_default();
        if info.node.is_none() {
            self.order.push(name);
        }
        info.set_node(node);
        self.generation += 1;
    }

    /// Removes a node (its pods stay accounted under its name until they go).
    pub fn remove_node(&mut self, name: &str) {
        if let Some(info) = self.nodes.get_mut(name) {
            info.node = None;
            self.order.retain(|n| n != name);
            if info.pods.is_empty() {
                self.nodes.remove(name);
            }
        }
        self.generation += 1;
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
        let info = self.nodes.entry(pod.node_name.clone()).or_default();
        if info.name.is_empty() {
            info.name = pod.node_name.clone();
        }
        info.add_pod(pod);
        self.generation += 1;
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
        let info = self.nodes.get_mut(&node)?;
        let old = info.remove_pod(key);
        if info.node.is_none() && info.pods.is_empty() {
            self.nodes.remove(&node);
        }
        self.generation += 1;
        old
    }

    /// A node by name (only nodes with a Node object).
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name).filter(|n| n.node.is_some())
    }

    /// Number of nodes with a Node object.
    pub fn node_count(&self) -> usize {
        self.order.len()
    }

    /// The i-th node in round-robin order.
    pub fn node_at(&self, i: usize) -> Option<&NodeInfo> {
        self.order.get(i).and_then(|n| self.nodes.get(n))
    }

    /// Every node with a Node object.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.order.iter().filter_map(|n| self.nodes.get(n))
    }

    /// Names of every node with a Node object.
    pub fn node_names(&self) -> Vec<String> {
        self.order.clone()
    }

    /// Keys of every accounted pod.
    pub fn pod_keys(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }
}
