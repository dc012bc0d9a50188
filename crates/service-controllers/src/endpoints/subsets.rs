//! The pure part of the Endpoints controller: a service's subsets computed from its
//! pods, repacked into the canonical N-to-M form (upstream's RepackSubsets), the
//! 1000-address truncation, and the comparison that decides whether a write is due.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Pod, Service, ServicePort,
};

use crate::podutil::{
    cluster_ip, find_port, is_ipv6, pod_ips, pod_reference, should_pod_be_in_endpoints,
    should_set_hostname, CLUSTER_IP_NONE,
};
use controllers::util::is_pod_ready;

/// The most addresses (ready and not ready) an Endpoints object holds.
pub const MAX_CAPACITY: usize = 1000;
/// The annotation marking truncated Endpoints.
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";
/// Its value.
pub const TRUNCATED: &str = "truncated";

/// The address of a pod for a service: the pod IP of the service's (first) IP
/// family, with node name and a reference to the pod. `None` when the pod has no IP
/// of that family.
pub fn pod_address_for_service(svc: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let spec = svc.spec.as_ref();
    let families = spec.and_then(|s| s.ip_families.as_ref());
    let want_v6 = match families.and_then(|f| f.first()) {
        Some(family) => family == "IPv6",
        None => {
            let cip = cluster_ip(svc);
            if !cip.is_empty() && cip != CLUSTER_IP_NONE {
                is_ipv6(cip)
            } else {
                let first = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.as_deref())
                    .unwrap_or("");
                is_ipv6(first)
            }
        }
    };
    let ip = pod_ips(pod).into_iter().find(|ip| is_ipv6(ip) == want_v6)?;
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    Some(EndpointAddress {
        ip,
        node_name,
        hostname: None,
        target_ref: Some(pod_reference(pod)),
    })
}

fn endpoint_port(port: &ServicePort, number: i32) -> EndpointPort {
    EndpointPort {
        name: port.name.clone().filter(|n| !n.is_empty()),
        port: number,
        protocol: port.protocol.clone(),
        app_protocol: port.app_protocol.clone(),
    }
}

fn single_subset(addr: EndpointAddress, port: Option<EndpointPort>, ready: bool) -> EndpointSubset {
    let ports = port.map(|p| vec![p]);
    if ready {
        EndpointSubset {
            addresses: Some(vec![addr]),
            not_ready_addresses: None,
            ports,
        }
    } else {
        EndpointSubset {
            addresses: None,
            not_ready_addresses: Some(vec![addr]),
            ports,
        }
    }
}

/// The subsets of a service's Endpoints given the pods its selector matches, already
/// repacked: one (address, port) pair per pod and resolvable service port, ready when
/// the pod is Ready (or the service publishes not-ready addresses). Pods without a
/// usable IP, finished pods and (unless publishing not-ready addresses) terminating
/// pods are left out; a pod lacking a named target port is left out of that port. A
/// headless service without ports lists bare addresses.
pub fn compute_subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let ports = spec.ports.unwrap_or_default();
    let mut subsets = Vec::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let Some(mut addr) = pod_address_for_service(svc, pod) else {
            tracing::debug!(pod = ?pod.metadata.name, "no pod IP of the service's IP family");
            continue;
        };
        if should_set_hostname(pod, svc) {
            addr.hostname = pod.spec.as_ref().and_then(|s| s.hostname.clone());
        }
        let ready = publish_not_ready || is_pod_ready(pod);
        if ports.is_empty() {
            if spec.cluster_ip.as_deref() == Some(CLUSTER_IP_NONE) {
                subsets.push(single_subset(addr, None, ready));
            }
            continue;
        }
        for port in &ports {
            match find_port(pod, port) {
                Ok(number) => {
                    subsets.push(single_subset(
                        addr.clone(),
                        Some(endpoint_port(port, number)),
                        ready,
                    ));
                }
                Err(e) => tracing::debug!(error = %e, "failed to find port for service"),
            }
        }
    }
    repack_subsets(subsets)
}

/// A port as a sortable, comparable key (`None` is the sentinel for subsets without
/// ports).
type PortKey = Option<(String, i32, String, String)>;

fn port_key(p: &EndpointPort) -> PortKey {
    Some((
        p.name.clone().unwrap_or_default(),
        p.port,
        p.protocol.clone().unwrap_or_default(),
        p.app_protocol.clone().unwrap_or_default(),
    ))
}

fn address_uid(a: &EndpointAddress) -> Option<&str> {
    a.target_ref
        .as_ref()
        .map(|r| r.uid.as_deref().unwrap_or(""))
}

/// Upstream's address order: by IP (bytewise), then addresses without a target
/// reference first, then by target UID.
fn address_order(a: &EndpointAddress, b: &EndpointAddress) -> std::cmp::Ordering {
    a.ip.as_bytes()
        .cmp(b.ip.as_bytes())
        .then_with(|| address_uid(a).cmp(&address_uid(b)))
}

/// Repacks subsets into the canonical form: addresses (deduplicated by IP and target
/// UID) are grouped by the exact set of ports they serve, each group one subset with
/// its ready and not-ready addresses; an address not ready on some subset for a port
/// is not ready for that port. Addresses, ports and subsets come out sorted.
pub fn repack_subsets(subsets: Vec<EndpointSubset>) -> Vec<EndpointSubset> {
    let mut addresses: Vec<EndpointAddress> = Vec::new();
    let mut index: HashMap<(String, Option<String>), usize> = HashMap::new();
    let mut ports_by_key: BTreeMap<PortKey, Option<EndpointPort>> = BTreeMap::new();
    let mut readiness: BTreeMap<PortKey, BTreeMap<usize, bool>> = BTreeMap::new();

    let mut record = |addr: &EndpointAddress, port: &Option<EndpointPort>, ready: bool| {
        let key = (addr.ip.clone(), address_uid(addr).map(str::to_string));
        let idx = *index.entry(key).or_insert_with(|| {
            addresses.push(addr.clone());
            addresses.len() - 1
        });
        let pk = port.as_ref().and_then(port_key);
        ports_by_key
            .entry(pk.clone())
            .or_insert_with(|| port.clone());
        let set = readiness.entry(pk).or_default();
        // Not ready wins over ready.
        let slot = set.entry(idx).or_insert(ready);
        *slot = *slot && ready;
    };

    for subset in &subsets {
        let ports: Vec<Option<EndpointPort>> = match subset.ports.as_deref() {
            None | Some([]) => vec![None],
            Some(ps) => ps.iter().cloned().map(Some).collect(),
        };
        for port in &ports {
            for addr in subset.addresses.iter().flatten() {
                record(addr, port, true);
            }
            for addr in subset.not_ready_addresses.iter().flatten() {
                record(addr, port, false);
            }
        }
    }

    // Group ports by the exact set of (address, readiness) they are offered on.
    let mut groups: BTreeMap<Vec<(usize, bool)>, Vec<EndpointPort>> = BTreeMap::new();
    for (pk, set) in &readiness {
        let key: Vec<(usize, bool)> = set.iter().map(|(i, r)| (*i, *r)).collect();
        let ports = groups.entry(key).or_default();
        if let Some(Some(port)) = ports_by_key.get(pk) {
            ports.push(port.clone());
        }
    }

    let mut out: Vec<EndpointSubset> = groups
        .into_iter()
        .map(|(set, mut ports)| {
            let mut ready = Vec::new();
            let mut not_ready = Vec::new();
            for (idx, is_ready) in set {
                let addr = addresses[idx].clone();
                if is_ready {
                    ready.push(addr);
                } else {
                    not_ready.push(addr);
                }
            }
            ready.sort_by(address_order);
            not_ready.sort_by(address_order);
            ports.sort_by_key(port_key);
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect();
    out.sort_by(subset_order);
    out
}

fn subset_order(a: &EndpointSubset, b: &EndpointSubset) -> std::cmp::Ordering {
    let ports =
        |s: &EndpointSubset| -> Vec<PortKey> { s.ports.iter().flatten().map(port_key).collect() };
    let first = |s: &EndpointSubset| -> Option<(Vec<u8>, Option<String>)> {
        s.addresses
            .iter()
            .flatten()
            .chain(s.not_ready_addresses.iter().flatten())
            .next()
            .map(|a| (a.ip.as_bytes().to_vec(), address_uid(a).map(str::to_string)))
    };
    ports(a)
        .cmp(&ports(b))
        .then_with(|| first(a).cmp(&first(b)))
}

/// Cuts subsets holding more than [`MAX_CAPACITY`] addresses down to it, keeping
/// ready addresses first: each subset keeps a share proportional to its size
/// (rounded up, the last ones getting what is left). Returns whether it cut.
pub fn truncate_subsets(subsets: &mut [EndpointSubset]) -> bool {
    let count = |v: &Option<Vec<EndpointAddress>>| v.as_ref().map_or(0, Vec::len);
    let total_ready: usize = subsets.iter().map(|s| count(&s.addresses)).sum();
    let total_not_ready: usize = subsets.iter().map(|s| count(&s.not_ready_addresses)).sum();
    if total_ready + total_not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = total_ready > MAX_CAPACITY;
    let (max, num_total) = if truncate_ready {
        (MAX_CAPACITY, total_ready)
    } else {
        (MAX_CAPACITY - total_ready, total_not_ready)
    };
    let mut can_be_added = max;
    for subset in subsets.iter_mut() {
        let in_subset = if truncate_ready {
            count(&subset.addresses)
        } else {
            count(&subset.not_ready_addresses)
        };
        let share = (in_subset as f64 / num_total as f64) * max as f64;
        let to_be_added = (share.ceil() as usize).min(can_be_added);
        if truncate_ready {
            if let Some(a) = subset.addresses.as_mut() {
                a.truncate(to_be_added);
                can_be_added -= a.len();
            }
            subset.not_ready_addresses = None;
        } else if let Some(a) = subset.not_ready_addresses.as_mut() {
            a.truncate(to_be_added);
            can_be_added -= a.len();
        }
    }
    true
}

/// Whether the annotation matches the subsets: never when they exceed the capacity
/// (they still need truncating), else when the over-capacity annotation is absent.
pub fn capacity_annotation_set_correctly(
    annotations: Option<&BTreeMap<String, String>>,
    subsets: &[EndpointSubset],
) -> bool {
    let n: usize = subsets
        .iter()
        .map(|s| {
            s.addresses.as_ref().map_or(0, Vec::len)
                + s.not_ready_addresses.as_ref().map_or(0, Vec::len)
        })
        .sum();
    if n > MAX_CAPACITY {
        return false;
    }
    !annotations.is_some_and(|a| a.contains_key(OVER_CAPACITY_ANNOTATION))
}

fn normalize_address(a: &EndpointAddress) -> EndpointAddress {
    let mut a = a.clone();
    a.hostname = a.hostname.filter(|h| !h.is_empty());
    a.node_name = a.node_name.filter(|n| !n.is_empty());
    if let Some(r) = a.target_ref.as_mut() {
        r.resource_version = None;
    }
    a
}

fn normalize(subsets: &[EndpointSubset]) -> Vec<EndpointSubset> {
    let addrs = |v: &Option<Vec<EndpointAddress>>| -> Option<Vec<EndpointAddress>> {
        v.as_ref()
            .filter(|v| !v.is_empty())
            .map(|v| v.iter().map(normalize_address).collect())
    };
    subsets
        .iter()
        .map(|s| EndpointSubset {
            addresses: addrs(&s.addresses),
            not_ready_addresses: addrs(&s.not_ready_addresses),
            ports: s.ports.as_ref().filter(|p| !p.is_empty()).map(|ps| {
                ps.iter()
                    .map(|p| EndpointPort {
                        name: p.name.clone().filter(|n| !n.is_empty()),
                        ..p.clone()
                    })
                    .collect()
            }),
        })
        .collect()
}

/// Whether two subset lists are equal, ignoring target resourceVersions and the
/// difference between empty and absent lists.
pub fn subsets_equal(a: &[EndpointSubset], b: &[EndpointSubset]) -> bool {
    normalize(a) == normalize(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, ObjectReference, PodCondition, PodIP, PodSpec, PodStatus,
        ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn addr(ip: &str, uid: &str) -> EndpointAddress {
        EndpointAddress {
            ip: ip.into(),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                uid: Some(uid.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn port(name: &str, n: i32) -> EndpointPort {
        EndpointPort {
            name: Some(name.into()),
            port: n,
            protocol: Some("TCP".into()),
            app_protocol: None,
        }
    }

    fn ss(
        ready: Vec<EndpointAddress>,
        not_ready: Vec<EndpointAddress>,
        ports: Vec<EndpointPort>,
    ) -> EndpointSubset {
        EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then_some(ports),
        }
    }

    fn ips(v: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        v.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn repack_merges_addresses_sharing_ports() {
        let (a, b, c) = (
            addr("10.0.0.3", "a"),
            addr("10.0.0.1", "b"),
            addr("10.0.0.2", "c"),
        );
        let p = port("http", 80);
        let out = repack_subsets(vec![
            ss(vec![a.clone()], vec![], vec![p.clone()]),
            ss(vec![b.clone()], vec![], vec![p.clone()]),
            ss(vec![], vec![c.clone()], vec![p.clone()]),
            // A duplicate of a: deduplicated.
            ss(vec![a.clone()], vec![], vec![p.clone()]),
        ]);
        assert_eq!(out.len(), 1);
        assert_eq!(ips(&out[0].addresses), ["10.0.0.1", "10.0.0.3"]);
        assert_eq!(ips(&out[0].not_ready_addresses), ["10.0.0.2"]);
        assert_eq!(out[0].ports.as_ref().unwrap(), &vec![p]);
    }

    #[test]
    fn repack_splits_by_port_sets_and_not_ready_wins() {
        let (a, b) = (addr("10.0.0.1", "a"), addr("10.0.0.2", "b"));
        let (http, https) = (port("http", 80), port("https", 443));
        let out = repack_subsets(vec![
            ss(vec![a.clone()], vec![], vec![http.clone()]),
            ss(vec![a.clone()], vec![], vec![https.clone()]),
            ss(vec![b.clone()], vec![], vec![http.clone()]),
            // b is not ready on http here: not ready wins.
            ss(vec![], vec![b.clone()], vec![http.clone()]),
        ]);
        assert_eq!(out.len(), 2, "{out:?}");
        // http: a ready, b not ready; https: a ready.
        let http_subset = out
            .iter()
            .find(|s| s.ports.as_ref().unwrap()[0].port == 80)
            .unwrap();
        assert_eq!(ips(&http_subset.addresses), ["10.0.0.1"]);
        assert_eq!(ips(&http_subset.not_ready_addresses), ["10.0.0.2"]);
        let https_subset = out
            .iter()
            .find(|s| s.ports.as_ref().unwrap()[0].port == 443)
            .unwrap();
        assert_eq!(ips(&https_subset.addresses), ["10.0.0.1"]);
        assert!(https_subset.not_ready_addresses.is_none());

        // Same address set on both ports: one subset with both ports, sorted.
        let out = repack_subsets(vec![
            ss(vec![a.clone()], vec![], vec![https.clone()]),
            ss(vec![a.clone()], vec![], vec![http.clone()]),
        ]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].ports.as_ref().unwrap(), &vec![http, https]);
    }

    #[test]
    fn repack_keeps_portless_addresses() {
        let out = repack_subsets(vec![ss(vec![addr("10.0.0.9", "z")], vec![], vec![])]);
        assert_eq!(out.len(), 1);
        assert!(out[0].ports.is_none());
        assert_eq!(ips(&out[0].addresses), ["10.0.0.9"]);
        assert!(repack_subsets(vec![]).is_empty());
    }

    fn pod(name: &str, ip: &str, ready: bool, ports: Vec<ContainerPort>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-1".into()),
                hostname: Some(name.into()),
                subdomain: Some("web".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(ports),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some(ip.into()),
                pod_ips: Some(vec![PodIP { ip: ip.into() }]),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    fn named(name: &str, n: i32) -> ContainerPort {
        ContainerPort {
            name: Some(name.into()),
            container_port: n,
            protocol: Some("TCP".into()),
            ..Default::default()
        }
    }

    fn service(name: &str, cluster_ip: &str, target: IntOrString) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(cluster_ip.into()),
                ip_families: Some(vec!["IPv4".into()]),
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(target),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn subsets_from_pods() {
        let svc = service("web", "None", IntOrString::String("web".into()));
        let pods = vec![
            pod("a", "10.0.0.2", true, vec![named("web", 8080)]),
            pod("b", "10.0.0.1", false, vec![named("web", 8080)]),
            // No port named "web": left out.
            pod("c", "10.0.0.3", true, vec![named("other", 9090)]),
        ];
        let out = compute_subsets(&svc, &pods);
        assert_eq!(out.len(), 1);
        let s = &out[0];
        assert_eq!(ips(&s.addresses), ["10.0.0.2"]);
        assert_eq!(ips(&s.not_ready_addresses), ["10.0.0.1"]);
        assert_eq!(s.ports.as_ref().unwrap()[0].port, 8080);
        let a = &s.addresses.as_ref().unwrap()[0];
        assert_eq!(
            a.hostname.as_deref(),
            Some("a"),
            "subdomain names the service"
        );
        assert_eq!(a.node_name.as_deref(), Some("node-1"));
        let r = a.target_ref.as_ref().unwrap();
        assert_eq!(
            (
                r.kind.as_deref(),
                r.namespace.as_deref(),
                r.name.as_deref(),
                r.uid.as_deref()
            ),
            (Some("Pod"), Some("ns"), Some("a"), Some("uid-a"))
        );

        // Another service name: no hostname; numeric target port used as is.
        let other = service("other", "10.96.0.10", IntOrString::Int(7000));
        let out = compute_subsets(&other, &pods);
        assert_eq!(out.len(), 1);
        assert_eq!(ips(&out[0].addresses), ["10.0.0.2", "10.0.0.3"]);
        assert!(out[0].addresses.as_ref().unwrap()[0].hostname.is_none());
        assert_eq!(out[0].ports.as_ref().unwrap()[0].port, 7000);

        // Publishing not-ready addresses puts everything in addresses, terminating too.
        let mut publish = other.clone();
        publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let mut terminating = (*pod("d", "10.0.0.4", true, vec![])).clone();
        terminating.metadata.deletion_timestamp =
            Some(Time(jiff::Timestamp::from_second(1_700_000_000).unwrap()));
        let mut with_term = pods.clone();
        with_term.push(Arc::new(terminating));
        let out = compute_subsets(&publish, &with_term);
        assert_eq!(
            ips(&out[0].addresses),
            ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
        );
        // Without it the terminating pod is left out.
        let out = compute_subsets(&other, &with_term);
        assert_eq!(ips(&out[0].addresses), ["10.0.0.2", "10.0.0.3"]);

        // An IPv6 service finds no IPv6 pod IPs.
        let mut v6 = other.clone();
        v6.spec.as_mut().unwrap().ip_families = Some(vec!["IPv6".into()]);
        assert!(compute_subsets(&v6, &pods).is_empty());
    }

    #[test]
    fn headless_without_ports_lists_addresses() {
        let mut svc = service("web", "None", IntOrString::Int(1));
        svc.spec.as_mut().unwrap().ports = None;
        let pods = vec![pod("a", "10.0.0.2", true, vec![])];
        let out = compute_subsets(&svc, &pods);
        assert_eq!(out.len(), 1);
        assert!(out[0].ports.is_none());
        // Not headless: nothing.
        let mut svc = service("web", "10.96.0.1", IntOrString::Int(1));
        svc.spec.as_mut().unwrap().ports = None;
        assert!(compute_subsets(&svc, &pods).is_empty());
    }

    fn many(prefix: u8, n: usize) -> Vec<EndpointAddress> {
        (0..n)
            .map(|i| {
                addr(
                    &format!("10.{prefix}.{}.{}", i / 256, i % 256),
                    &format!("{prefix}-{i}"),
                )
            })
            .collect()
    }

    #[test]
    fn truncation() {
        let p = port("http", 80);
        // 600 ready + 600 not ready: all ready kept, 400 not ready.
        let mut subsets = vec![ss(many(1, 600), many(2, 600), vec![p.clone()])];
        assert!(truncate_subsets(&mut subsets));
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 600);
        assert_eq!(subsets[0].not_ready_addresses.as_ref().unwrap().len(), 400);

        // Ready over capacity, split 3:1 across two subsets; not ready dropped.
        let mut subsets = vec![
            ss(many(1, 900), many(2, 10), vec![p.clone()]),
            ss(many(3, 300), vec![], vec![port("x", 1)]),
        ];
        assert!(truncate_subsets(&mut subsets));
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 750);
        assert!(subsets[0].not_ready_addresses.is_none());
        assert_eq!(subsets[1].addresses.as_ref().unwrap().len(), 250);

        let mut small = vec![ss(many(1, 1000), vec![], vec![p])];
        assert!(!truncate_subsets(&mut small));
        assert!(capacity_annotation_set_correctly(None, &small));
        let ann: BTreeMap<String, String> =
            [(OVER_CAPACITY_ANNOTATION.to_string(), TRUNCATED.to_string())].into();
        assert!(!capacity_annotation_set_correctly(Some(&ann), &small));
    }

    #[test]
    fn equality_ignores_resource_versions_and_empty_lists() {
        let mut a = addr("10.0.0.1", "a");
        let x = vec![ss(vec![a.clone()], vec![], vec![port("http", 80)])];
        a.target_ref.as_mut().unwrap().resource_version = Some("7".into());
        let mut y = vec![ss(vec![a], vec![], vec![port("http", 80)])];
        y[0].not_ready_addresses = Some(vec![]);
        assert!(subsets_equal(&x, &y));
        y[0].ports.as_mut().unwrap()[0].port = 81;
        assert!(!subsets_equal(&x, &y));
    }
}
