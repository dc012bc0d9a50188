//! PodTopologySpread's default constraints: a pod that declares no spread
//! constraints is spread like the other pods of its Services, ReplicationControllers,
//! ReplicaSets and StatefulSets. This module keeps those objects' selectors (fed by
//! the scheduler's watches) and builds the selector and constraints for a pod.

use crate::config::Profile;
use crate::podinfo::{PodInfo, SpreadConstraint};
use apimachinery::labels::Selector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A selector kept for defaulting.
#[derive(Clone, Debug)]
enum Kept {
    /// A Service's or ReplicationController's map selector.
    Set(BTreeMap<String, String>),
    /// A ReplicaSet's or StatefulSet's label selector, compiled.
    Selector(Selector),
}

/// The selectors of the pod-grouping objects, by namespace.
#[derive(Default, Debug)]
pub struct GroupSelectors {
    /// namespace → (`kind/name` → selector).
    by_namespace: HashMap<String, HashMap<String, Kept>>,
}

fn compile(selector: Option<&LabelSelector>) -> Option<Selector> {
    let v = serde_json::to_value(selector?).ok()?;
    Selector::from_label_selector(&v)
        .ok()
        .filter(|s| !s.is_empty())
}

impl GroupSelectors {
    /// Records a Service's or ReplicationController's map selector (`kind` names the
    /// kind); an empty one is forgotten (it groups nothing).
    pub fn set_map(
        &mut self,
        kind: &str,
        ns: &str,
        name: &str,
        selector: Option<&BTreeMap<String, String>>,
    ) {
        match selector.filter(|s| !s.is_empty()) {
            Some(s) => self.put(ns, format!("{kind}/{name}"), Kept::Set(s.clone())),
            None => self.remove(kind, ns, name),
        }
    }

    /// Records a ReplicaSet's or StatefulSet's label selector.
    pub fn set_label_selector(
        &mut self,
        kind: &str,
        ns: &str,
        name: &str,
        selector: Option<&LabelSelector>,
    ) {
        match compile(selector) {
            Some(s) => self.put(ns, format!("{kind}/{name}"), Kept::Selector(s)),
            None => self.remove(kind, ns, name),
        }
    }

    fn put(&mut self, ns: &str, key: String, kept: Kept) {
        self.by_namespace
            .entry(ns.to_string())
            .or_default()
            .insert(key, kept);
    }

    /// Forgets an object.
    pub fn remove(&mut self, kind: &str, ns: &str, name: &str) {
        if let Some(m) = self.by_namespace.get_mut(ns) {
            m.remove(&format!("{kind}/{name}"));
            if m.is_empty() {
                self.by_namespace.remove(ns);
            }
        }
    }

    /// Forgets every object of `kind` (before a relist).
    pub fn clear_kind(&mut self, kind: &str) {
        let prefix = format!("{kind}/");
        for m in self.by_namespace.values_mut() {
            m.retain(|k, _| !k.starts_with(&prefix));
        }
        self.by_namespace.retain(|_, m| !m.is_empty());
    }

    /// The selector grouping `pod` with its siblings: the union of the map
    /// selectors of the Services and ReplicationControllers selecting it, and the
    /// requirements of the ReplicaSets and StatefulSets selecting it. `None` when
    /// nothing selects it.
    pub fn default_selector(&self, pod: &PodInfo) -> Option<Selector> {
        let kept = self.by_namespace.get(&pod.namespace)?;
        let mut set: BTreeMap<String, String> = BTreeMap::new();
        let mut extra = Vec::new();
        // Sorted for a deterministic result when map selectors disagree on a key.
        let mut keys: Vec<&String> = kept.keys().collect();
        keys.sort();
        for key in keys {
            match &kept[key] {
                Kept::Set(s) => {
                    if s.iter().all(|(k, v)| pod.labels.get(k) == Some(v)) {
                        set.extend(s.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
                Kept::Selector(sel) => {
                    if sel.matches(&pod.labels) {
                        extra.extend(sel.requirements().iter().cloned());
                    }
                }
            }
        }
        let mut selector = Selector::from_set(&set);
        for r in extra {
            selector = selector.add_requirement(r);
        }
        (!selector.is_empty()).then_some(selector)
    }

    /// `pod` with the profile's default constraints when it has none of its own and
    /// something groups it; `None` to schedule it as it is.
    pub fn with_defaults(&self, pod: &PodInfo, profile: &Profile) -> Option<Arc<PodInfo>> {
        if !pod.spread.is_empty()
            || profile.default_spread.is_empty()
            || !profile.enabled("PodTopologySpread")
        {
            return None;
        }
        let selector = self.default_selector(pod)?;
        let mut out = pod.clone();
        out.spread = profile
            .default_spread
            .iter()
            .map(|d| SpreadConstraint {
                max_skew: d.max_skew,
                topology_key: d.topology_key.clone(),
                hard: d.hard,
                selector: selector.clone(),
                min_domains: None,
                honor_node_affinity: true,
                honor_taints: false,
            })
            .collect();
        out.spread_system_defaulted = profile.spread_system_defaulted;
        Some(Arc::new(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodeinfo::Cache;
    use crate::plugins::spread::PreFilter;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;

    fn pod(name: &str, labels: serde_json::Value, node: Option<&str>) -> PodInfo {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "default", "uid": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "i"}]}
        });
        if let Some(n) = node {
            v["spec"]["nodeName"] = json!(n);
        }
        let p: Pod = serde_json::from_value(v).unwrap();
        PodInfo::new(Arc::new(p))
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selector_joins_services_and_controllers_that_select_the_pod() {
        let mut g = GroupSelectors::default();
        g.set_map("Service", "default", "web", Some(&map(&[("app", "web")])));
        g.set_map("Service", "default", "other", Some(&map(&[("app", "db")])));
        g.set_map("Service", "elsewhere", "web", Some(&map(&[("tier", "x")])));
        let rs: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "web", "pod-template-hash": "abc"}
        }))
        .unwrap();
        g.set_label_selector("ReplicaSet", "default", "web-abc", Some(&rs));
        let p = pod(
            "p",
            json!({"app": "web", "pod-template-hash": "abc", "x": "1"}),
            None,
        );
        let sel = g.default_selector(&p).unwrap();
        assert!(sel.matches(&map(&[("app", "web"), ("pod-template-hash", "abc")])));
        assert!(!sel.matches(&map(&[("app", "web"), ("pod-template-hash", "zzz")])));
        assert!(!sel.matches(&map(&[("app", "db"), ("pod-template-hash", "abc")])));

        let lonely = pod("q", json!({"app": "none"}), None);
        assert!(g.default_selector(&lonely).is_none());
        g.remove("ReplicaSet", "default", "web-abc");
        g.clear_kind("Service");
        assert!(g.default_selector(&p).is_none());
    }

    #[test]
    fn defaulted_constraints_spread_replicas_even_without_zone_labels() {
        let mut g = GroupSelectors::default();
        g.set_map("Service", "default", "web", Some(&map(&[("app", "web")])));
        let profile = Profile::default_named("default-scheduler");
        let incoming = pod("new", json!({"app": "web"}), None);
        let defaulted = g.with_defaults(&incoming, &profile).unwrap();
        assert_eq!(defaulted.spread.len(), 2);
        assert!(defaulted.spread_system_defaulted);
        assert!(defaulted.spread.iter().all(|c| !c.hard));

        // Two nodes without zone labels; n1 already runs two replicas.
        let mut cache = Cache::default();
        for n in ["n1", "n2"] {
            let node: Node = serde_json::from_value(json!({
                "metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}},
                "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}
            }))
            .unwrap();
            cache.set_node(Arc::new(node));
        }
        for (i, n) in ["n1", "n1"].iter().enumerate() {
            cache.add_pod(
                Arc::new(pod(&format!("r{i}"), json!({"app": "web"}), Some(n))),
                false,
            );
        }
        let pre = PreFilter::new(&cache, &defaulted);
        let nodes: Vec<_> = ["n1", "n2"]
            .iter()
            .map(|n| cache.node(n).unwrap())
            .collect();
        let scores = pre.scores(&defaulted, &nodes).unwrap();
        assert!(
            scores[1] > scores[0],
            "emptier node scores higher: {scores:?}"
        );

        // A pod with its own constraints keeps them.
        let own = pod("own", json!({"app": "web"}), None);
        let mut own = own.clone();
        own.spread = defaulted.spread[..1].to_vec();
        assert!(g.with_defaults(&own, &profile).is_none());
    }
}
