//! A pod as the scheduler needs it, parsed once when it enters the cache: requests,
//! host ports, affinity terms with compiled selectors, tolerations, spread
//! constraints and priority.

use crate::resources::{pod_requests, Resources};
use apimachinery::labels::Selector;
use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, Toleration};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A host port a pod claims on its node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    /// Host IP ("0.0.0.0" when unset, meaning every address).
    pub ip: String,
    /// TCP, UDP or SCTP.
    pub protocol: String,
    /// The port number.
    pub port: i32,
}

impl HostPort {
    /// Whether two claims collide: same protocol and port, and the same address or
    /// either of them on every address.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// Adds `key op [value]` to `selector` for each of `keys` the pod has a label for
/// (matchLabelKeys / mismatchLabelKeys).
fn with_label_keys(
    mut selector: Selector,
    keys: Option<&Vec<String>>,
    labels: &BTreeMap<String, String>,
    op: apimachinery::labels::Operator,
) -> Selector {
    for key in keys.into_iter().flatten() {
        if let Some(v) = labels.get(key) {
            if let Ok(r) = apimachinery::labels::Requirement::new(key, op, vec![v.clone()]) {
                selector = selector.add_requirement(r);
            }
        }
    }
    selector
}

/// Compiles an optional metav1.LabelSelector; a missing or invalid one selects nothing.
fn compile(
    selector: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> Selector {
    selector
        .and_then(|s| serde_json::to_value(s).ok())
        .and_then(|v| Selector::from_label_selector(&v).ok())
        .unwrap_or_else(Selector::nothing)
}

/// A pod (anti-)affinity term with its selectors compiled.
#[derive(Clone, Debug)]
pub struct AffinityTerm {
    /// Which pods the term is about.
    pub selector: Selector,
    /// Namespaces named by the term (the pod's own when neither this nor a selector
    /// is given).
    pub namespaces: BTreeSet<String>,
    /// Namespaces selected by labels, if a namespaceSelector was given (an empty
    /// selector selects every namespace).
    pub namespace_selector: Option<Selector>,
    /// The node label that defines a topology domain.
    pub topology_key: String,
    /// Weight for preferred terms (1 for required ones).
    pub weight: i64,
}

impl AffinityTerm {
    fn parse(
        ns: &str,
        t: &PodAffinityTerm,
        weight: i64,
        pod_labels: &BTreeMap<String, String>,
    ) -> AffinityTerm {
        use apimachinery::labels::Operator;
        let selector = compile(t.label_selector.as_ref());
        let selector = with_label_keys(
            selector,
            t.match_label_keys.as_ref(),
            pod_labels,
            Operator::In,
        );
        let selector = with_label_keys(
            selector,
            t.mismatch_label_keys.as_ref(),
            pod_labels,
            Operator::NotIn,
        );
        let namespace_selector = t
            .namespace_selector
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .map(|v| Selector::from_label_selector(&v).unwrap_or_else(|_| Selector::nothing()));
        let mut namespaces: BTreeSet<String> = t.namespaces.iter().flatten().cloned().collect();
        if namespaces.is_empty() && namespace_selector.is_none() {
            namespaces.insert(ns.to_string());
        }
        AffinityTerm {
            selector,
            namespaces,
            namespace_selector,
            topology_key: t.topology_key.clone(),
            weight,
        }
    }

    /// Whether `pod` (in a namespace with `ns_labels`) is one the term is about.
    pub fn matches(&self, pod: &PodInfo, ns_labels: Option<&BTreeMap<String, String>>) -> bool {
        let ns_ok = self.namespaces.contains(&pod.namespace)
            || self
                .namespace_selector
                .as_ref()
                .is_some_and(|s| ns_labels.is_some_and(|l| s.matches(l)));
        ns_ok && self.selector.matches(&pod.labels)
    }
}

/// A topology spread constraint with its selector compiled.
#[derive(Clone, Debug)]
pub struct SpreadConstraint {
    /// Largest allowed difference between domains.
    pub max_skew: i64,
    /// The node label that defines a domain.
    pub topology_key: String,
    /// DoNotSchedule (a filter) or ScheduleAnyway (a score).
    pub hard: bool,
    /// Which pods are counted.
    pub selector: Selector,
    /// Fewest domains assumed to exist.
    pub min_domains: Option<i64>,
    /// Whether nodes the pod's node affinity/selector excludes are left out (Honor,
    /// the default) or counted.
    pub honor_node_affinity: bool,
    /// Whether nodes with taints the pod does not tolerate are left out (Honor) or
    /// counted (Ignore, the default).
    pub honor_taints: bool,
}

/// A pod as the scheduler sees it.
#[derive(Clone, Debug)]
pub struct PodInfo {
    /// The object.
    pub pod: Arc<Pod>,
    /// `namespace/name`.
    pub key: String,
    /// metadata.uid.
    pub uid: String,
    /// metadata.namespace.
    pub namespace: String,
    /// metadata.name.
    pub name: String,
    /// metadata.labels.
    pub labels: BTreeMap<String, String>,
    /// spec.nodeName ("" while unscheduled).
    pub node_name: String,
    /// spec.priority (0 when unset).
    pub priority: i32,
    /// Whether it may preempt others (preemptionPolicy is not Never).
    pub may_preempt: bool,
    /// Resource requests.
    pub requests: Resources,
    /// Requests with the scoring defaults for missing cpu/memory.
    pub non_zero: Resources,
    /// Host ports it claims.
    pub host_ports: Vec<HostPort>,
    /// Required pod affinity terms.
    pub affinity: Vec<AffinityTerm>,
    /// Required pod anti-affinity terms.
    pub anti_affinity: Vec<AffinityTerm>,
    /// Preferred pod affinity terms (weighted).
    pub preferred_affinity: Vec<AffinityTerm>,
    /// Preferred pod anti-affinity terms (weighted).
    pub preferred_anti_affinity: Vec<AffinityTerm>,
    /// spec.tolerations.
    pub tolerations: Vec<Toleration>,
    /// Topology spread constraints.
    pub spread: Vec<SpreadConstraint>,
    /// Whether `spread` came from the System default constraints (the pod has none
    /// of its own): nodes lacking one of the topology labels are then still counted
    /// and scored on the others.
    pub spread_system_defaulted: bool,
    /// spec.schedulerName (default-scheduler when unset).
    pub scheduler_name: String,
    /// Whether it has a deletionTimestamp.
    pub terminating: bool,
    /// Whether it has finished (Succeeded or Failed).
    pub finished: bool,
}

impl PodInfo {
    /// Parses a pod.
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let meta = &pod.metadata;
        let namespace = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let labels = meta.labels.clone().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let mut host_ports = Vec::new();
        let containers = spec
            .map(|s| {
                s.containers
                    .iter()
                    .chain(
                        s.init_containers
                            .iter()
                            .flatten()
                            .filter(|c| c.restart_policy.as_deref() == Some("Always")),
                    )
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for c in containers {
            for p in c.ports.iter().flatten() {
                if let Some(hp) = p.host_port.filter(|p| *p > 0) {
                    host_ports.push(HostPort {
                        ip: p
                            .host_ip
                            .clone()
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| "0.0.0.0".into()),
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        port: hp,
                    });
                }
            }
        }
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let required = |terms: Option<&Vec<PodAffinityTerm>>| {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::parse(&namespace, t, 1, &labels))
                .collect::<Vec<_>>()
        };
        let preferred = |terms: Option<
            &Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>,
        >| {
            terms
                .into_iter()
                .flatten()
                .map(|w| {
                    AffinityTerm::parse(&namespace, &w.pod_affinity_term, w.weight as i64, &labels)
                })
                .collect::<Vec<_>>()
        };
        let spread = spec
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .into_iter()
            .flatten()
            .map(|c| {
                let selector = with_label_keys(
                    compile(c.label_selector.as_ref()),
                    c.match_label_keys.as_ref(),
                    &labels,
                    apimachinery::labels::Operator::In,
                );
                SpreadConstraint {
                    max_skew: c.max_skew.max(1) as i64,
                    topology_key: c.topology_key.clone(),
                    hard: c.when_unsatisfiable != "ScheduleAnyway",
                    selector,
                    min_domains: c.min_domains.map(i64::from),
                    honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                    honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
                }
            })
            .collect();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        PodInfo {
            key: format!("{namespace}/{name}"),
            uid: meta.uid.clone().unwrap_or_default(),
            node_name: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            may_preempt: spec.and_then(|s| s.preemption_policy.as_deref()) != Some("Never"),
            requests: pod_requests(&pod, false),
            non_zero: pod_requests(&pod, true),
            host_ports,
            affinity: required(pa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            anti_affinity: required(paa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity: preferred(pa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti_affinity: preferred(paa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            tolerations: spec.and_then(|s| s.tolerations.clone()).unwrap_or_default(),
            spread,
            spread_system_defaulted: false,
            scheduler_name: spec
                .and_then(|s| s.scheduler_name.clone())
                .unwrap_or_else(|| "default-scheduler".into()),
            terminating: meta.deletion_timestamp.is_some(),
            finished: matches!(phase, Some("Succeeded" | "Failed")),
            namespace,
            name,
            labels,
            pod,
        }
    }

    /// Whether it has any pod affinity or anti-affinity (required or preferred).
    pub fn has_pod_affinity(&self) -> bool {
        !(self.affinity.is_empty()
            && self.anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }
}
