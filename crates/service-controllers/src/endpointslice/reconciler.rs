//! The pure part of the EndpointSlice controller (upstream's reconciler in
//! k8s.io/endpointslice): the endpoints and ports a service's pods should have, and
//! the plan of slice creations, updates and deletions that gets there with minimal
//! churn:
//!
//! 1. slices not owned by the service, or of an address type the service no longer
//!    has, are deleted;
//! 2. per address type and per distinct port set, existing slices keep the desired
//!    endpoints they hold (updated in place when an endpoint changed), drop the
//!    others, and are deleted when left empty;
//! 3. remaining endpoints first fill the slices already being updated (fullest
//!    first), then the unchanged slice that ends up closest to full, then new slices
//!    of at most `max_endpoints_per_slice` endpoints;
//! 4. a service without endpoints keeps one empty placeholder slice;
//! 5. `trafficDistribution: PreferClose` puts zone hints on ready endpoints; otherwise
//!    hints are removed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointHints, EndpointPort, EndpointSlice, ForZone,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use controllers::util::{is_pod_ready, new_controller_ref};

use crate::podutil::{
    cluster_ip, find_port, is_ipv6, is_service_ip_set, pod_ips, pod_reference,
    service_port_protocol, should_pod_be_in_endpoints, should_set_hostname, CLUSTER_IP_NONE,
    IS_HEADLESS_SERVICE_LABEL,
};

/// The label naming the service of a slice.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// The label naming the controller managing a slice.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's `managed-by` value.
pub const CONTROLLER_MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// The node label holding its zone.
pub const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";
/// Address type of IPv4 slices.
pub const ADDRESS_TYPE_IPV4: &str = "IPv4";
/// Address type of IPv6 slices.
pub const ADDRESS_TYPE_IPV6: &str = "IPv6";
/// The annotation enabling topology-aware hints (takes precedence).
pub const DEPRECATED_TOPOLOGY_AWARE_HINTS_ANNOTATION: &str =
    "service.kubernetes.io/topology-aware-hints";
/// The annotation enabling topology-aware routing.
pub const TOPOLOGY_MODE_ANNOTATION: &str = "service.kubernetes.io/topology-mode";

/// The address types a service's slices have: by its `ipFamilies`; without them by
/// the family of its cluster IP, and both for headless services.
pub fn address_types_for_service(svc: &Service) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    for family in svc
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
    {
        match family.as_str() {
            "IPv4" => {
                out.insert(ADDRESS_TYPE_IPV4);
            }
            "IPv6" => {
                out.insert(ADDRESS_TYPE_IPV6);
            }
            _ => {}
        }
    }
    if !out.is_empty() {
        return out;
    }
    let cip = cluster_ip(svc);
    if !cip.is_empty() && cip != CLUSTER_IP_NONE {
        out.insert(if is_ipv6(cip) {
            ADDRESS_TYPE_IPV6
        } else {
            ADDRESS_TYPE_IPV4
        });
        return out;
    }
    out.insert(ADDRESS_TYPE_IPV4);
    out.insert(ADDRESS_TYPE_IPV6);
    out
}

/// The pod's IPs of the address type, in canonical form.
pub fn endpoint_addresses(pod: &Pod, address_type: &str) -> Vec<String> {
    pod_ips(pod)
        .iter()
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .filter(|ip| match ip {
            IpAddr::V6(_) => address_type == ADDRESS_TYPE_IPV6,
            IpAddr::V4(_) => address_type == ADDRESS_TYPE_IPV4,
        })
        .map(|ip| ip.to_string())
        .collect()
}

/// The endpoint of a pod: its addresses of the type; conditions serving (Ready),
/// terminating (being deleted) and ready (serving and not terminating, or always when
/// the service publishes not-ready addresses); node name, the node's zone, the
/// hostname (when the pod's subdomain names the service) and a reference to the pod.
pub fn pod_to_endpoint(
    pod: &Pod,
    node: Option<&Node>,
    svc: &Service,
    address_type: &str,
) -> Endpoint {
    let serving = is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let ready = publish || (serving && !terminating);
    let spec = pod.spec.as_ref();
    let zone = node
        .and_then(|n| n.metadata.labels.as_ref())
        .and_then(|l| l.get(LABEL_TOPOLOGY_ZONE))
        .filter(|z| !z.is_empty())
        .cloned();
    Endpoint {
        addresses: endpoint_addresses(pod, address_type),
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        target_ref: Some(pod_reference(pod)),
        node_name: spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        zone,
        hostname: if should_set_hostname(pod, svc) {
            spec.and_then(|s| s.hostname.clone())
        } else {
            None
        },
        hints: None,
        deprecated_topology: None,
    }
}

/// The slice ports of a pod: one per service port whose target port the pod has
/// (none for a headless service without ports).
pub fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let spec = svc.spec.as_ref();
    let ports = spec.and_then(|s| s.ports.as_ref());
    let mut out = Vec::new();
    for port in ports.into_iter().flatten() {
        match find_port(pod, port) {
            Ok(number) => out.push(EndpointPort {
                name: Some(port.name.clone().unwrap_or_default()),
                port: Some(number),
                protocol: Some(service_port_protocol(port).to_string()),
                app_protocol: port.app_protocol.clone(),
            }),
            Err(e) => tracing::debug!(error = %e, "failed to find port for service"),
        }
    }
    out
}

/// A port set as a comparable key (order-insensitive).
pub type PortMapKey = Vec<(String, i32, String, String)>;

/// The key of a port set.
pub fn port_map_key(ports: &[EndpointPort]) -> PortMapKey {
    let mut key: PortMapKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or(0),
                p.protocol.clone().unwrap_or_default(),
                p.app_protocol.clone().unwrap_or_default(),
            )
        })
        .collect();
    key.sort();
    key
}

/// What identifies an endpoint across syncs: sorted addresses, hostname, and the
/// namespace and name of its target.
pub type EndpointKey = (Vec<String>, String, String, String);

/// The identity key of an endpoint.
pub fn endpoint_key(ep: &Endpoint) -> EndpointKey {
    let mut addresses = ep.addresses.clone();
    addresses.sort();
    let (ns, name) = ep
        .target_ref
        .as_ref()
        .map(|r| {
            (
                r.namespace.clone().unwrap_or_default(),
                r.name.clone().unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    (addresses, ep.hostname.clone().unwrap_or_default(), ns, name)
}

fn target_equal(a: Option<&ObjectReference>, b: Option<&ObjectReference>) -> bool {
    let strip = |r: Option<&ObjectReference>| {
        r.map(|r| ObjectReference {
            resource_version: None,
            ..r.clone()
        })
    };
    strip(a) == strip(b)
}

/// Whether two endpoints with the same key are equal in everything else that
/// matters (node, zone, conditions, target); hints are not compared.
pub fn endpoints_equal_beyond_key(a: &Endpoint, b: &Endpoint) -> bool {
    let cond = |e: &Endpoint| e.conditions.clone().unwrap_or_default();
    a.node_name == b.node_name
        && a.zone == b.zone
        && cond(a) == cond(b)
        && target_equal(a.target_ref.as_ref(), b.target_ref.as_ref())
}

fn is_reserved_label(key: &str) -> bool {
    key == LABEL_SERVICE_NAME || key == LABEL_MANAGED_BY || key == IS_HEADLESS_SERVICE_LABEL
}

/// The labels of `labels` that are not reserved by the controller.
fn unreserved_labels(labels: &Option<BTreeMap<String, String>>) -> BTreeMap<String, String> {
    labels
        .iter()
        .flatten()
        .filter(|(k, _)| !is_reserved_label(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The labels a slice of `svc` should have (the service's labels except reserved
/// ones, the headless label for headless services, service name and managed-by),
/// and whether its current non-reserved labels differ from the service's.
pub fn slice_labels(slice: &EndpointSlice, svc: &Service) -> (BTreeMap<String, String>, bool) {
    let current = unreserved_labels(&slice.metadata.labels);
    let mut labels = unreserved_labels(&svc.metadata.labels);
    let changed = current != labels;
    if !is_service_ip_set(svc) {
        labels.insert(IS_HEADLESS_SERVICE_LABEL.to_string(), String::new());
    }
    labels.insert(
        LABEL_SERVICE_NAME.to_string(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(
        LABEL_MANAGED_BY.to_string(),
        CONTROLLER_MANAGED_BY.to_string(),
    );
    (labels, changed)
}

/// A new, empty slice of the service (generateName `<service>-`, owned by it).
pub fn new_endpoint_slice(
    svc: &Service,
    ports: Vec<EndpointPort>,
    address_type: &str,
) -> EndpointSlice {
    let mut slice = EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", svc.metadata.name.as_deref().unwrap_or(""))),
            namespace: svc.metadata.namespace.clone(),
            owner_references: Some(vec![new_controller_ref(svc)]),
            ..Default::default()
        },
        address_type: address_type.to_string(),
        endpoints: Vec::new(),
        ports: Some(ports),
    };
    slice.metadata.labels = Some(slice_labels(&slice, svc).0);
    slice
}

/// Whether the slice is owned by the service (a `v1` `Service` owner with its UID).
pub fn owned_by(slice: &EndpointSlice, svc: &Service) -> bool {
    let uid = svc.metadata.uid.as_deref().unwrap_or("");
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.kind == "Service" && o.api_version == "v1")
}

fn slice_name(slice: &EndpointSlice) -> &str {
    slice.metadata.name.as_deref().unwrap_or("")
}

/// The slice that will be closest to full (without overflowing) once `n` endpoints
/// are added.
fn slice_to_fill<'a>(
    candidates: &[&'a EndpointSlice],
    n: usize,
    max: usize,
) -> Option<&'a EndpointSlice> {
    let mut closest_diff = max;
    let mut closest = None;
    for slice in candidates {
        let total = n + slice.endpoints.len();
        if total <= max {
            let diff = max - total;
            if diff < closest_diff {
                closest_diff = diff;
                closest = Some(*slice);
                if diff == 0 {
                    break;
                }
            }
        }
    }
    closest
}

/// Slices to create, update and delete.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    /// New slices (no name yet, generateName set).
    pub to_create: Vec<EndpointSlice>,
    /// Existing slices with their new contents.
    pub to_update: Vec<EndpointSlice>,
    /// Existing slices to delete.
    pub to_delete: Vec<EndpointSlice>,
}

/// Places the desired endpoints of one port set into the existing slices of that
/// port set (steps 2 and 3 of the module docs).
pub fn reconcile_by_port_mapping(
    svc: &Service,
    existing: &[EndpointSlice],
    mut desired: BTreeMap<EndpointKey, Endpoint>,
    ports: &[EndpointPort],
    address_type: &str,
    max_endpoints: usize,
) -> Plan {
    let max = max_endpoints.max(1);
    let mut by_name: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let mut unchanged: BTreeSet<String> = BTreeSet::new();
    let mut to_update: BTreeSet<String> = BTreeSet::new();
    let mut to_delete: BTreeSet<String> = BTreeSet::new();

    for slice in existing {
        let name = slice_name(slice).to_string();
        by_name.insert(name.clone(), slice.clone());
        let mut kept = Vec::new();
        let mut endpoint_updated = false;
        for ep in &slice.endpoints {
            if let Some(want) = desired.remove(&endpoint_key(ep)) {
                if !endpoints_equal_beyond_key(&want, ep) {
                    endpoint_updated = true;
                }
                kept.push(want);
            }
        }
        let (labels, labels_changed) = slice_labels(slice, svc);
        if endpoint_updated || kept.len() != slice.endpoints.len() {
            if kept.is_empty() {
                to_delete.insert(name);
            } else {
                let mut s = slice.clone();
                s.endpoints = kept;
                s.metadata.labels = Some(labels);
                by_name.insert(name.clone(), s);
                to_update.insert(name);
            }
        } else if labels_changed {
            let mut s = slice.clone();
            s.metadata.labels = Some(labels);
            by_name.insert(name.clone(), s);
            to_update.insert(name);
        } else {
            unchanged.insert(name);
        }
    }

    let pop = |desired: &mut BTreeMap<EndpointKey, Endpoint>| desired.pop_first().map(|(_, e)| e);

    // Fill the slices already being updated, fullest first.
    if !desired.is_empty() && !to_update.is_empty() {
        let mut names: Vec<String> = to_update.iter().cloned().collect();
        names.sort_by_key(|n| std::cmp::Reverse(by_name.get(n).map_or(0, |s| s.endpoints.len())));
        for name in names {
            if let Some(slice) = by_name.get_mut(&name) {
                while !desired.is_empty() && slice.endpoints.len() < max {
                    if let Some(ep) = pop(&mut desired) {
                        slice.endpoints.push(ep);
                    }
                }
            }
        }
    }

    // Then an unchanged slice that fits the rest, or new slices.
    let mut to_create = Vec::new();
    while !desired.is_empty() {
        let mut fill: Option<EndpointSlice> = None;
        if desired.len() < max && !unchanged.is_empty() {
            let candidates: Vec<&EndpointSlice> =
                unchanged.iter().filter_map(|n| by_name.get(n)).collect();
            fill = slice_to_fill(&candidates, desired.len(), max).cloned();
        }
        let mut slice =
            fill.unwrap_or_else(|| new_endpoint_slice(svc, ports.to_vec(), address_type));
        while !desired.is_empty() && slice.endpoints.len() < max {
            if let Some(ep) = pop(&mut desired) {
                slice.endpoints.push(ep);
            }
        }
        match slice.metadata.name.clone() {
            Some(name) if !name.is_empty() => {
                unchanged.remove(&name);
                to_update.insert(name.clone());
                by_name.insert(name, slice);
            }
            _ => to_create.push(slice),
        }
    }

    Plan {
        to_create,
        to_update: to_update
            .iter()
            .filter_map(|n| by_name.get(n).cloned())
            .collect(),
        to_delete: to_delete
            .iter()
            .filter_map(|n| by_name.get(n).cloned())
            .collect(),
    }
}

fn placeholder_equal(a: &EndpointSlice, b: &EndpointSlice) -> bool {
    let labels = |s: &EndpointSlice| s.metadata.labels.clone().unwrap_or_default();
    let owners = |s: &EndpointSlice| s.metadata.owner_references.clone().unwrap_or_default();
    a.metadata.namespace == b.metadata.namespace
        && labels(a) == labels(b)
        && owners(a) == owners(b)
        && a.address_type == b.address_type
        && a.endpoints.is_empty()
        && b.endpoints.is_empty()
        && a.ports.as_ref().is_none_or(Vec::is_empty)
        && b.ports.as_ref().is_none_or(Vec::is_empty)
}

fn hints_enabled(svc: &Service) -> bool {
    let Some(a) = svc.metadata.annotations.as_ref() else {
        return false;
    };
    let value = a
        .get(DEPRECATED_TOPOLOGY_AWARE_HINTS_ANNOTATION)
        .or_else(|| a.get(TOPOLOGY_MODE_ANNOTATION));
    matches!(value.map(String::as_str), Some("Auto" | "auto"))
}

fn endpoint_ready(ep: &Endpoint) -> bool {
    ep.conditions.as_ref().and_then(|c| c.ready) == Some(true)
}

fn zone_hints(zone: &str) -> EndpointHints {
    EndpointHints {
        for_zones: Some(vec![ForZone {
            name: zone.to_string(),
        }]),
        for_nodes: None,
    }
}

/// Whether a slice's hints disagree with the heuristic (`prefer_close`: ready
/// endpoints carry a hint for their zone; otherwise no endpoint has hints).
fn hints_need_update(slice: &EndpointSlice, prefer_close: bool) -> bool {
    if !prefer_close {
        return slice.endpoints.iter().any(|e| e.hints.is_some());
    }
    slice
        .endpoints
        .iter()
        .filter(|e| endpoint_ready(e))
        .any(|e| {
            let zones = e.hints.as_ref().and_then(|h| h.for_zones.as_ref());
            let nodes = e.hints.as_ref().and_then(|h| h.for_nodes.as_ref());
            let zone_wrong = match e.zone.as_deref() {
                Some(z) => zones.is_none_or(|zs| zs.len() != 1 || zs[0].name != z),
                None => zones.is_some_and(|zs| !zs.is_empty()),
            };
            zone_wrong || nodes.is_some_and(|ns| !ns.is_empty())
        })
}

fn apply_hints(slice: &mut EndpointSlice, prefer_close: bool) {
    for ep in &mut slice.endpoints {
        if !prefer_close {
            ep.hints = None;
        } else if endpoint_ready(ep) {
            ep.hints = ep.zone.as_deref().map(zone_hints);
        }
    }
}

/// The plan for one address type (steps 2 to 5 of the module docs). `node` looks a
/// node up by name; pods on unknown nodes are skipped (unless the service publishes
/// not-ready addresses) and reported in the returned errors.
pub fn reconcile_by_address_type(
    svc: &Service,
    pods: &[Arc<Pod>],
    existing: &[EndpointSlice],
    address_type: &str,
    max_endpoints: usize,
    node: &dyn Fn(&str) -> Option<Arc<Node>>,
) -> (Plan, Vec<String>) {
    let mut errors = Vec::new();
    let mut plan = Plan::default();
    let mut existing_by_ports: BTreeMap<PortMapKey, Vec<EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        if owned_by(slice, svc) {
            let key = port_map_key(slice.ports.as_deref().unwrap_or(&[]));
            existing_by_ports
                .entry(key)
                .or_default()
                .push(slice.clone());
        } else {
            plan.to_delete.push(slice.clone());
        }
    }

    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let ns = svc.metadata.namespace.as_deref().unwrap_or("");
    let svc_name = svc.metadata.name.as_deref().unwrap_or("");
    let mut desired: BTreeMap<PortMapKey, (Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>)> =
        BTreeMap::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let ports = endpoint_ports(svc, pod);
        let key = port_map_key(&ports);
        let entry = desired
            .entry(key)
            .or_insert_with(|| (ports, BTreeMap::new()));
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or("");
        let found = node(node_name);
        if found.is_none() && !publish {
            let pod_name = pod.metadata.name.as_deref().unwrap_or("");
            tracing::info!(
                pod = pod_name,
                service = svc_name,
                node = node_name,
                "skipping Pod for Service, Node not found"
            );
            errors.push(format!(
                "skipping Pod {pod_name} for Service {ns}/{svc_name}: Node {node_name} Not Found"
            ));
            continue;
        }
        let ep = pod_to_endpoint(pod, found.as_deref(), svc, address_type);
        if !ep.addresses.is_empty() {
            entry.1.insert(endpoint_key(&ep), ep);
        }
    }

    for (key, (ports, endpoints)) in &desired {
        let existing_here = existing_by_ports.get(key).map(Vec::as_slice).unwrap_or(&[]);
        let p = reconcile_by_port_mapping(
            svc,
            existing_here,
            endpoints.clone(),
            ports,
            address_type,
            max_endpoints,
        );
        plan.to_create.extend(p.to_create);
        plan.to_update.extend(p.to_update);
        plan.to_delete.extend(p.to_delete);
    }
    for (key, slices) in &existing_by_ports {
        if !desired.contains_key(key) {
            plan.to_delete.extend(slices.iter().cloned());
        }
    }

    if existing.len() == plan.to_delete.len() && plan.to_create.is_empty() {
        let placeholder = new_endpoint_slice(svc, Vec::new(), address_type);
        if plan.to_delete.len() == 1 && placeholder_equal(&plan.to_delete[0], &placeholder) {
            plan.to_delete.clear();
        } else {
            plan.to_create.push(placeholder);
        }
    }

    let prefer_close = svc
        .spec
        .as_ref()
        .and_then(|s| s.traffic_distribution.as_deref())
        == Some("PreferClose")
        && !hints_enabled(svc);
    let changed: BTreeSet<String> = plan
        .to_update
        .iter()
        .chain(plan.to_delete.iter())
        .map(|s| slice_name(s).to_string())
        .collect();
    for slice in existing {
        if !changed.contains(slice_name(slice)) && hints_need_update(slice, prefer_close) {
            plan.to_update.push(slice.clone());
        }
    }
    for slice in plan.to_create.iter_mut().chain(plan.to_update.iter_mut()) {
        apply_hints(slice, prefer_close);
    }

    (plan, errors)
}

/// Turns creations into updates of slices that would otherwise be deleted (same
/// address type, owned by the service), as upstream's finalize does.
pub fn recycle_deletions(svc: &Service, plan: &mut Plan) {
    let mut i = 0;
    while i < plan.to_delete.len() {
        let Some(last) = plan.to_create.last() else {
            break;
        };
        let candidate = &plan.to_delete[i];
        if candidate.address_type == last.address_type && owned_by(candidate, svc) {
            let old = plan.to_delete.remove(i);
            if let Some(mut slice) = plan.to_create.pop() {
                slice.metadata.name = old.metadata.name.clone();
                plan.to_update.push(slice);
            }
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodIP, PodSpec, PodStatus, ServicePort, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn svc() -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("svc-uid".into()),
                labels: Some([("team".to_string(), "a".to_string())].into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some("10.96.0.10".into()),
                ip_families: Some(vec!["IPv4".into()]),
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(IntOrString::String("web".into())),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(i: usize, ready: bool) -> Arc<Pod> {
        let ip = format!("10.1.{}.{}", i / 250, i % 250 + 1);
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(format!("p{i:03}")),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{i}")),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-1".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("web".into()),
                        container_port: 8080,
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some(ip.clone()),
                pod_ips: Some(vec![PodIP { ip }]),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    fn node() -> Arc<Node> {
        Arc::new(Node {
            metadata: ObjectMeta {
                name: Some("node-1".into()),
                labels: Some([(LABEL_TOPOLOGY_ZONE.to_string(), "zone-a".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    fn lookup(name: &str) -> Option<Arc<Node>> {
        (name == "node-1").then(node)
    }

    fn plan(pods: &[Arc<Pod>], existing: &[EndpointSlice], max: usize) -> (Plan, Vec<String>) {
        reconcile_by_address_type(&svc(), pods, existing, ADDRESS_TYPE_IPV4, max, &lookup)
    }

    /// Gives planned creations names, as the apiserver would, to feed a next round.
    fn applied(p: Plan, existing: &[EndpointSlice], next_name: &mut usize) -> Vec<EndpointSlice> {
        let mut out: BTreeMap<String, EndpointSlice> = existing
            .iter()
            .map(|s| (slice_name(s).to_string(), s.clone()))
            .collect();
        for s in &p.to_delete {
            out.remove(slice_name(s));
        }
        for s in p.to_update {
            out.insert(slice_name(&s).to_string(), s);
        }
        for mut s in p.to_create {
            *next_name += 1;
            let name = format!("web-{next_name}");
            s.metadata.name = Some(name.clone());
            out.insert(name, s);
        }
        out.into_values().collect()
    }

    #[test]
    fn endpoints_and_slices_from_pods() {
        let pods: Vec<_> = (0..3).map(|i| pod(i, i != 1)).collect();
        let (p, errors) = plan(&pods, &[], 100);
        assert!(errors.is_empty());
        assert_eq!(p.to_create.len(), 1);
        assert!(p.to_update.is_empty() && p.to_delete.is_empty());
        let s = &p.to_create[0];
        assert_eq!(s.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(s.address_type, "IPv4");
        let labels = s.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_SERVICE_NAME], "web");
        assert_eq!(labels[LABEL_MANAGED_BY], CONTROLLER_MANAGED_BY);
        assert_eq!(labels["team"], "a");
        assert!(!labels.contains_key(IS_HEADLESS_SERVICE_LABEL));
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.api_version.as_str(),
                owner.kind.as_str(),
                owner.uid.as_str(),
                owner.controller
            ),
            ("v1", "Service", "svc-uid", Some(true))
        );
        let ports = s.ports.as_ref().unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].name.as_deref(), Some("http"));
        assert_eq!(ports[0].port, Some(8080));
        assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
        assert_eq!(s.endpoints.len(), 3);
        let e1 = s
            .endpoints
            .iter()
            .find(|e| e.addresses == ["10.1.0.2"])
            .unwrap();
        let c = e1.conditions.as_ref().unwrap();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(false), Some(false), Some(false))
        );
        assert_eq!(e1.node_name.as_deref(), Some("node-1"));
        assert_eq!(e1.zone.as_deref(), Some("zone-a"));
        assert_eq!(
            e1.target_ref.as_ref().unwrap().name.as_deref(),
            Some("p001")
        );
    }

    #[test]
    fn terminating_and_missing_nodes() {
        let mut t = (*pod(0, true)).clone();
        t.metadata.deletion_timestamp =
            Some(Time(jiff::Timestamp::from_second(1_700_000_000).unwrap()));
        let mut lost = (*pod(1, true)).clone();
        lost.spec.as_mut().unwrap().node_name = Some("gone".into());
        let (p, errors) = plan(&[Arc::new(t), Arc::new(lost)], &[], 100);
        assert_eq!(
            errors,
            ["skipping Pod p001 for Service ns/web: Node gone Not Found"]
        );
        let eps = &p.to_create[0].endpoints;
        assert_eq!(eps.len(), 1);
        let c = eps[0].conditions.as_ref().unwrap();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(false), Some(true), Some(true))
        );
    }

    #[test]
    fn splits_and_fills_with_minimal_churn() {
        let mut n = 0;
        let pods: Vec<_> = (0..250).map(|i| pod(i, true)).collect();
        let (p, _) = plan(&pods, &[], 100);
        let sizes: Vec<usize> = p.to_create.iter().map(|s| s.endpoints.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        let slices = applied(p, &[], &mut n);

        // Nothing changed: nothing to do.
        let (p, _) = plan(&pods, &slices, 100);
        assert!(p.to_create.is_empty() && p.to_update.is_empty() && p.to_delete.is_empty());

        // Ten more pods fit into the half-full slice (closest to full), updated in place.
        let more: Vec<_> = (0..260).map(|i| pod(i, true)).collect();
        let (p, _) = plan(&more, &slices, 100);
        assert!(p.to_create.is_empty() && p.to_delete.is_empty());
        assert_eq!(p.to_update.len(), 1);
        assert_eq!(p.to_update[0].endpoints.len(), 60);
        let slices = applied(p, &slices, &mut n);

        // One pod leaves a full slice and one new pod arrives: the new one fills the
        // slice being updated anyway; no other slice is touched.
        let mut changed: Vec<_> = more
            .iter()
            .filter(|p| p.metadata.name.as_deref() != Some("p000"))
            .cloned()
            .collect();
        changed.push(pod(300, true));
        let (p, _) = plan(&changed, &slices, 100);
        assert!(p.to_create.is_empty() && p.to_delete.is_empty());
        assert_eq!(p.to_update.len(), 1);
        assert_eq!(p.to_update[0].endpoints.len(), 100);
        let slices = applied(p, &slices, &mut n);

        // A readiness change updates only the slice holding that endpoint.
        let mut flipped = changed.clone();
        let idx = flipped
            .iter()
            .position(|p| p.metadata.name.as_deref() == Some("p259"))
            .unwrap();
        flipped[idx] = pod(259, false);
        let (p, _) = plan(&flipped, &slices, 100);
        assert_eq!(p.to_update.len(), 1);
        assert!(p.to_update[0]
            .endpoints
            .iter()
            .any(|e| e.addresses == ["10.1.1.10"]
                && e.conditions.as_ref().unwrap().ready == Some(false)));

        // Every pod gone: slices deleted, one placeholder created.
        let (mut p, _) = plan(&[], &slices, 100);
        assert_eq!(p.to_delete.len(), 3);
        assert_eq!(p.to_create.len(), 1);
        assert!(p.to_create[0].endpoints.is_empty());
        recycle_deletions(&svc(), &mut p);
        assert!(p.to_create.is_empty(), "the placeholder reuses a slice");
        assert_eq!(p.to_update.len(), 1);
        assert_eq!(p.to_delete.len(), 2);
        let slices = applied(p, &slices, &mut n);
        assert_eq!(slices.len(), 1);
        // The placeholder stays put.
        let (p, _) = plan(&[], &slices, 100);
        assert!(p.to_create.is_empty() && p.to_update.is_empty() && p.to_delete.is_empty());
    }

    #[test]
    fn foreign_slices_and_labels() {
        let pods = vec![pod(0, true)];
        let mut foreign = new_endpoint_slice(&svc(), vec![], ADDRESS_TYPE_IPV4);
        foreign.metadata.name = Some("old".into());
        foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "other".into();
        let (mut p, _) = plan(&pods, &[foreign], 100);
        assert_eq!(p.to_delete.len(), 1);
        assert_eq!(p.to_create.len(), 1);
        recycle_deletions(&svc(), &mut p);
        assert_eq!(p.to_create.len(), 1, "not owned: not reused");

        let mut n = 0;
        let (p, _) = plan(&pods, &[], 100);
        let slices = applied(p, &[], &mut n);
        let mut relabeled = svc();
        relabeled.metadata.labels = Some([("team".to_string(), "b".to_string())].into());
        let (p, _) =
            reconcile_by_address_type(&relabeled, &pods, &slices, ADDRESS_TYPE_IPV4, 100, &lookup);
        assert_eq!(p.to_update.len(), 1);
        assert_eq!(
            p.to_update[0].metadata.labels.as_ref().unwrap()["team"],
            "b"
        );
    }

    #[test]
    fn prefer_close_hints() {
        let mut s = svc();
        s.spec.as_mut().unwrap().traffic_distribution = Some("PreferClose".into());
        let pods = vec![pod(0, true), pod(1, false)];
        let (p, _) = reconcile_by_address_type(&s, &pods, &[], ADDRESS_TYPE_IPV4, 100, &lookup);
        let eps = &p.to_create[0].endpoints;
        let ready = eps.iter().find(|e| endpoint_ready(e)).unwrap();
        assert_eq!(
            ready.hints.as_ref().unwrap().for_zones.as_ref().unwrap()[0].name,
            "zone-a"
        );
        let unready = eps.iter().find(|e| !endpoint_ready(e)).unwrap();
        assert!(unready.hints.is_none());
        // Dropping trafficDistribution removes the hints from an otherwise unchanged slice.
        let mut n = 0;
        let slices = applied(p, &[], &mut n);
        let (p, _) = plan(&pods, &slices, 100);
        assert_eq!(p.to_update.len(), 1);
        assert!(p.to_update[0].endpoints.iter().all(|e| e.hints.is_none()));
    }

    #[test]
    fn address_types() {
        let mut s = svc();
        assert_eq!(
            address_types_for_service(&s)
                .into_iter()
                .collect::<Vec<_>>(),
            ["IPv4"]
        );
        s.spec.as_mut().unwrap().ip_families = Some(vec!["IPv6".into(), "IPv4".into()]);
        assert_eq!(address_types_for_service(&s).len(), 2);
        s.spec.as_mut().unwrap().ip_families = None;
        s.spec.as_mut().unwrap().cluster_ip = Some("fd00::10".into());
        assert_eq!(
            address_types_for_service(&s)
                .into_iter()
                .collect::<Vec<_>>(),
            ["IPv6"]
        );
        s.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        assert_eq!(address_types_for_service(&s).len(), 2);
        assert!(endpoint_addresses(&pod(0, true), ADDRESS_TYPE_IPV6).is_empty());
    }
}
