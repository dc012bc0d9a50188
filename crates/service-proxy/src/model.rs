//! What the proxy programs, independent of how: each port of each proxied Service with
//! its virtual addresses (cluster IPs, external IPs, load-balancer IPs, node port),
//! its policies, and the endpoints its EndpointSlices list for that port. Endpoints
//! are then sorted into the ones cluster-wide and node-local traffic may use, by
//! upstream's rules (ready first; serving-but-terminating ones only when no ready
//! one is left).

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The EndpointSlice label naming the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A transport protocol a Service port may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The lower-case name (`tcp`), as nftables and chain names spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One port of one Service: `namespace/name:port-name` and its protocol.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    pub namespace: String,
    pub name: String,
    pub port: String,
    pub protocol: Protocol,
}

impl fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.namespace,
            self.name,
            self.protocol.as_str(),
            self.port
        )
    }
}

/// One endpoint of a Service port, with its EndpointSlice conditions.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// On this proxy's node.
    pub local: bool,
}

/// The cluster's address ranges, and how traffic to Services is masqueraded.
#[derive(Clone, Debug, Default)]
pub struct Networks {
    /// Traffic to a cluster IP from outside this range (not from a pod) is
    /// masqueraded; `None` leaves it alone.
    pub cluster_cidr: Option<Ipv4Net>,
    /// The Service range: traffic to an address of it that no Service holds is
    /// dropped here rather than routed on.
    pub service_cidr: Option<Ipv4Net>,
    /// Masquerade all traffic to cluster IPs.
    pub all: bool,
}

/// A Service port as the proxy programs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub id: ServicePortName,
    pub cluster_ips: Vec<Ipv4Addr>,
    pub port: u16,
    pub node_port: Option<u16>,
    /// `spec.externalIPs` and load-balancer ingress addresses: reached from outside,
    /// so they follow the external traffic policy, like the node port.
    pub external_ips: Vec<Ipv4Addr>,
    /// The load-balancer ingress addresses among `external_ips`: the ones
    /// `source_ranges` restricts.
    pub load_balancer_ips: Vec<Ipv4Addr>,
    /// `loadBalancerSourceRanges` (or the older annotation): only clients in these
    /// ranges may use the load-balancer addresses; empty allows everyone.
    pub source_ranges: Vec<Ipv4Net>,
    /// `sessionAffinity: ClientIP`, with its timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local` on a Service reachable from outside.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// Every endpoint the slices list for this port, sorted, without duplicates.
    pub endpoints: Vec<Endpoint>,
}

/// Which endpoints each kind of traffic goes to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Categorized<'a> {
    /// For traffic under the Cluster policy (empty when no traffic uses it).
    pub cluster: Vec<&'a Endpoint>,
    /// For traffic under the Local policy (empty when no traffic uses it).
    pub local: Vec<&'a Endpoint>,
    /// Whether any endpoint anywhere could serve the port: with none, traffic is
    /// rejected; with some but none usable here, dropped.
    pub any: bool,
}

impl ServicePort {
    /// Reachable from outside the cluster: a node port or an external address.
    pub fn externally_accessible(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty()
    }

    /// Some traffic (internal, or external under the Cluster policy) may go to
    /// endpoints anywhere.
    pub fn uses_cluster_endpoints(&self) -> bool {
        !self.internal_local || (self.externally_accessible() && !self.external_local)
    }

    /// Some traffic goes only to endpoints on this node.
    pub fn uses_local_endpoints(&self) -> bool {
        self.internal_local || self.external_local
    }

    /// Sorts the endpoints by the traffic that may use them: ready endpoints, or,
    /// when there is no ready one, the ones still serving while they terminate.
    pub fn categorize(&self) -> Categorized<'_> {
        let mut out = Categorized::default();
        if self.uses_cluster_endpoints() {
            out.cluster = self.endpoints.iter().filter(|e| e.ready).collect();
            if out.cluster.is_empty() {
                out.cluster = self
                    .endpoints
                    .iter()
                    .filter(|e| e.serving && e.terminating)
                    .collect();
            }
            out.any = !out.cluster.is_empty();
        }
        if !self.uses_local_endpoints() {
            return out;
        }
        let usable = |e: &&Endpoint| e.ready || (e.serving && e.terminating);
        out.any |= self.endpoints.iter().any(|e| usable(&e));
        out.local = self
            .endpoints
            .iter()
            .filter(|e| e.local && e.ready)
            .collect();
        if out.local.is_empty() {
            out.local = self
                .endpoints
                .iter()
                .filter(|e| e.local && e.serving && e.terminating)
                .collect();
        }
        out
    }
}

/// The annotation older clients set instead of `loadBalancerSourceRanges`.
pub const SOURCE_RANGES_ANNOTATION: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";

/// The IPv4 ranges allowed to reach a LoadBalancer's addresses, as upstream reads
/// them: the spec field, else the annotation (comma separated); empty (allow all)
/// when neither is set, for other types, or when a range allows everyone.
fn source_ranges(svc: &Service, spec: &ServiceSpec) -> Vec<Ipv4Net> {
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return Vec::new();
    }
    let given: Vec<String> = match spec.load_balancer_source_ranges.as_ref() {
        Some(r) if !r.is_empty() => r.clone(),
        _ => svc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SOURCE_RANGES_ANNOTATION))
            .map(|v| v.split(',').map(|r| r.trim().to_string()).collect())
            .unwrap_or_default(),
    };
    let ranges: BTreeSet<Ipv4Net> = given
        .iter()
        .filter_map(|r| r.parse::<Ipv4Net>().ok())
        .map(|n| n.trunc())
        .collect();
    if ranges.iter().any(|r| r.prefix_len() == 0) {
        return Vec::new();
    }
    ranges.into_iter().collect()
}

/// A Service's namespace, name and spec, when it has them all.
fn parts(svc: &Service) -> Option<(&str, &str, &ServiceSpec)> {
    Some((
        svc.metadata.namespace.as_deref()?,
        svc.metadata.name.as_deref()?,
        svc.spec.as_ref()?,
    ))
}

/// The Service ports to program from the Services and EndpointSlices the proxy
/// sees, for the node `node_name`. Headless and ExternalName Services have no
/// virtual address and are left out, as are IPv6 addresses (this proxy programs
/// IPv4).
pub fn service_ports(
    services: &[impl Borrow<Service>],
    slices: &[impl Borrow<EndpointSlice>],
    node_name: &str,
) -> Vec<ServicePort> {
    // Slices by the namespace/name of their Service.
    let mut by_service: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        let slice: &EndpointSlice = slice.borrow();
        if slice.address_type != "IPv4" {
            continue;
        }
        let (Some(ns), Some(svc)) = (
            slice.metadata.namespace.as_deref(),
            slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL)),
        ) else {
            continue;
        };
        by_service.entry((ns, svc)).or_default().push(slice);
    }
    let mut out = Vec::new();
    for svc in services {
        let svc: &Service = svc.borrow();
        let Some((ns, name, spec)) = parts(svc) else {
            continue;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let cluster_ips: Vec<Ipv4Addr> = spec
            .cluster_ips
            .iter()
            .flatten()
            .chain(spec.cluster_ip.iter())
            .filter_map(|ip| ip.parse().ok())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if cluster_ips.is_empty() {
            continue; // headless, or no IPv4 address
        }
        let mut external_ips: BTreeSet<Ipv4Addr> = spec
            .external_ips
            .iter()
            .flatten()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        let mut load_balancer_ips = BTreeSet::new();
        if spec.type_.as_deref() == Some("LoadBalancer") {
            // An ingress in "Proxy" mode is reached through its load balancer,
            // which sends to the node port: not programmed here.
            let ingress = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref());
            for i in ingress.into_iter().flatten() {
                if i.ip_mode.as_deref() == Some("Proxy") {
                    continue;
                }
                if let Some(ip) = i.ip.as_deref().and_then(|ip| ip.parse().ok()) {
                    external_ips.insert(ip);
                    load_balancer_ips.insert(ip);
                }
            }
        }
        let source_ranges = source_ranges(svc, spec);
        let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| *t > 0)
                .unwrap_or(10800)
        });
        let node_port_type = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
        let svc_slices = by_service.get(&(ns, name));
        for sp in spec.ports.iter().flatten() {
            let Some(protocol) = Protocol::parse(sp.protocol.as_deref()) else {
                continue;
            };
            let Ok(port) = u16::try_from(sp.port) else {
                continue;
            };
            let port_name = sp.name.clone().unwrap_or_default();
            let node_port = sp
                .node_port
                .filter(|_| node_port_type)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0);
            let mut endpoints = BTreeMap::new();
            for slice in svc_slices.into_iter().flatten() {
                let Some(slice_port) = slice.ports.iter().flatten().find(|p| {
                    p.name.as_deref().unwrap_or("") == port_name
                        && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
                }) else {
                    continue;
                };
                let Some(ep_port) = slice_port.port.and_then(|p| u16::try_from(p).ok()) else {
                    continue;
                };
                for ep in &slice.endpoints {
                    let Some(ip) = ep.addresses.first().and_then(|a| a.parse().ok()) else {
                        continue;
                    };
                    let c = ep.conditions.as_ref();
                    // Unset conditions mean ready and serving, as upstream reads them.
                    let ready = c.and_then(|c| c.ready).unwrap_or(true);
                    let serving = c.and_then(|c| c.serving).unwrap_or(ready);
                    let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
                    let local = ep.node_name.as_deref() == Some(node_name);
                    endpoints.entry((ip, ep_port)).or_insert(Endpoint {
                        ip,
                        port: ep_port,
                        ready,
                        serving,
                        terminating,
                        local,
                    });
                }
            }
            let mut sp = ServicePort {
                id: ServicePortName {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                    port: port_name,
                    protocol,
                },
                cluster_ips: cluster_ips.clone(),
                port,
                node_port,
                external_ips: external_ips.iter().copied().collect(),
                load_balancer_ips: load_balancer_ips.iter().copied().collect(),
                source_ranges: source_ranges.clone(),
                affinity_timeout,
                external_local: false,
                internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
                endpoints: endpoints.into_values().collect(),
            };
            sp.external_local = sp.externally_accessible()
                && spec.external_traffic_policy.as_deref() == Some("Local");
            out.push(sp);
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// A Service's health check node port, as this node answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub namespace: String,
    pub name: String,
    /// Ready endpoints (address and port) of the Service on this node, over all
    /// its ports.
    pub local_endpoints: usize,
}

/// The health check node ports this node serves: those of LoadBalancer Services
/// with the Local external traffic policy, with their local ready endpoints in
/// `ports` (from [`service_ports`]).
pub fn health_checks(
    services: &[impl Borrow<Service>],
    ports: &[ServicePort],
) -> BTreeMap<u16, HealthCheck> {
    let mut out = BTreeMap::new();
    for svc in services {
        let svc: &Service = svc.borrow();
        let Some((ns, name, spec)) = parts(svc) else {
            continue;
        };
        let Some(port) = spec
            .health_check_node_port
            .filter(|_| spec.type_.as_deref() == Some("LoadBalancer"))
            .filter(|_| spec.external_traffic_policy.as_deref() == Some("Local"))
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
        else {
            continue;
        };
        let local_endpoints = ports
            .iter()
            .filter(|p| p.id.namespace == ns && p.id.name == name)
            .flat_map(|p| p.endpoints.iter().filter(|e| e.local && e.ready))
            .map(|e| (e.ip, e.port))
            .collect::<BTreeSet<_>>()
            .len();
        out.insert(
            port,
            HealthCheck {
                namespace: ns.to_string(),
                name: name.to_string(),
                local_endpoints,
            },
        );
    }
    out
}

/// Connection-tracking entries to delete after a sync: UDP has no connection to
/// end, so a client's flow keeps going to the endpoint it was first sent to until
/// its conntrack entry expires, even after that endpoint left the Service.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StaleFlows {
    /// Flows to this Service address (cluster or external), DNATed to `endpoint`.
    ToAddress {
        address: Ipv4Addr,
        endpoint: Ipv4Addr,
    },
    /// Flows to this node port, DNATed to `endpoint`.
    ToNodePort { port: u16, endpoint: Ipv4Addr },
}

/// The UDP flows that the change from `old` to `new` leaves pointing at endpoints
/// no longer used by their Service port.
pub fn stale_udp_flows(old: &[ServicePort], new: &[ServicePort]) -> Vec<StaleFlows> {
    let used = |sp: &ServicePort| -> BTreeSet<Ipv4Addr> {
        let c = sp.categorize();
        c.cluster.iter().chain(&c.local).map(|e| e.ip).collect()
    };
    let new_by_id: BTreeMap<&ServicePortName, &ServicePort> =
        new.iter().map(|sp| (&sp.id, sp)).collect();
    let mut out = BTreeSet::new();
    for sp in old.iter().filter(|sp| sp.id.protocol == Protocol::Udp) {
        let now = new_by_id.get(&sp.id).map(|n| used(n)).unwrap_or_default();
        for endpoint in used(sp).difference(&now) {
            for address in sp.cluster_ips.iter().chain(&sp.external_ips) {
                out.insert(StaleFlows::ToAddress {
                    address: *address,
                    endpoint: *endpoint,
                });
            }
            if let Some(port) = sp.node_port {
                out.insert(StaleFlows::ToNodePort {
                    port,
                    endpoint: *endpoint,
                });
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).unwrap()
    }

    fn web() -> Service {
        svc(json!({
            "metadata": {"namespace": "default", "name": "web"},
            "spec": {"type": "NodePort", "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"],
                     "ports": [{"name": "http", "port": 80, "nodePort": 30080},
                               {"name": "dns", "port": 53, "protocol": "UDP"}]}
        }))
    }

    fn web_slice() -> EndpointSlice {
        slice(json!({
            "metadata": {"namespace": "default", "name": "web-abc",
                         "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.42.0.5"], "nodeName": "n1", "conditions": {"ready": true}},
                {"addresses": ["10.42.1.5"], "nodeName": "n2",
                 "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.42.0.6"], "nodeName": "n1",
                 "conditions": {"ready": false, "serving": false}}
            ]
        }))
    }

    #[test]
    fn source_ranges_come_from_the_spec_or_the_annotation() {
        let ranges = |v: serde_json::Value| -> Vec<String> {
            let s = svc(v);
            source_ranges(&s, s.spec.as_ref().unwrap())
                .iter()
                .map(|r| r.to_string())
                .collect()
        };
        let lb = |extra: serde_json::Value| {
            let mut v = json!({"metadata": {"namespace": "default", "name": "lb"},
                               "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
            if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                for (k, x) in e {
                    if k == "spec" {
                        for (sk, sx) in x.as_object().unwrap() {
                            m["spec"][sk] = sx.clone();
                        }
                    } else {
                        m.insert(k.clone(), x.clone());
                    }
                }
            }
            v
        };
        assert_eq!(
            ranges(lb(
                json!({"spec": {"loadBalancerSourceRanges": ["10.1.2.3/16", "192.0.2.4/32"]}})
            )),
            ["10.1.0.0/16", "192.0.2.4/32"]
        );
        assert_eq!(
            ranges(lb(
                json!({"metadata": {"namespace": "default", "name": "lb",
                "annotations": {SOURCE_RANGES_ANNOTATION: "198.51.100.0/24, 203.0.113.0/24"}}})
            )),
            ["198.51.100.0/24", "203.0.113.0/24"]
        );
        // Allowing everyone is no restriction; other types have none.
        assert!(ranges(lb(
            json!({"spec": {"loadBalancerSourceRanges": ["0.0.0.0/0"]}})
        ))
        .is_empty());
        assert!(
            ranges(json!({"metadata": {"namespace": "default", "name": "c"},
            "spec": {"type": "NodePort", "loadBalancerSourceRanges": ["10.0.0.0/8"]}}))
            .is_empty()
        );
    }

    #[test]
    fn health_checks_count_local_ready_endpoints() {
        let mut s = web();
        let spec = s.spec.as_mut().unwrap();
        spec.type_ = Some("LoadBalancer".into());
        spec.external_traffic_policy = Some("Local".into());
        spec.health_check_node_port = Some(31000);
        let on = |s: &Service, node: &str| {
            let ports = service_ports(std::slice::from_ref(s), &[web_slice()], node);
            health_checks(std::slice::from_ref(s), &ports)
        };
        let n1 = on(&s, "n1");
        assert_eq!(n1.len(), 1);
        assert_eq!(n1[&31000].name, "web");
        assert_eq!(n1[&31000].local_endpoints, 1);
        assert_eq!(on(&s, "elsewhere")[&31000].local_endpoints, 0);
        // Only LoadBalancers with the Local policy have one.
        s.spec.as_mut().unwrap().external_traffic_policy = Some("Cluster".into());
        assert!(on(&s, "n1").is_empty());
    }

    #[test]
    fn ports_take_endpoints_of_their_name_and_protocol() {
        let ports = service_ports(&[web()], &[web_slice()], "n1");
        assert_eq!(ports.len(), 2);
        let dns = ports.iter().find(|p| p.id.port == "dns").unwrap();
        assert_eq!(dns.id.protocol, Protocol::Udp);
        assert!(dns.endpoints.is_empty());
        assert_eq!(dns.node_port, None);
        let http = ports.iter().find(|p| p.id.port == "http").unwrap();
        assert_eq!(http.id.to_string(), "default/web/tcp/http");
        assert_eq!(http.cluster_ips, vec![Ipv4Addr::new(10, 43, 0, 10)]);
        assert_eq!(http.node_port, Some(30080));
        assert_eq!(http.endpoints.len(), 3);
        assert!(http.endpoints.iter().all(|e| e.port == 8080));
        let local: Vec<_> = http.endpoints.iter().filter(|e| e.local).collect();
        assert_eq!(local.len(), 2);
        let c = http.categorize();
        assert_eq!(c.cluster.len(), 1);
        assert_eq!(c.cluster[0].ip, Ipv4Addr::new(10, 42, 0, 5));
        assert!(c.local.is_empty(), "no traffic uses local endpoints");
        assert!(c.any);
    }

    #[test]
    fn headless_external_name_and_ipv6_are_left_out() {
        let headless = svc(json!({
            "metadata": {"namespace": "default", "name": "h"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]}
        }));
        let ext = svc(json!({
            "metadata": {"namespace": "default", "name": "e"},
            "spec": {"type": "ExternalName", "externalName": "example.org"}
        }));
        let v6 = svc(json!({
            "metadata": {"namespace": "default", "name": "v6"},
            "spec": {"clusterIP": "fd00::10", "ports": [{"port": 80}]}
        }));
        let none: &[EndpointSlice] = &[];
        assert!(service_ports(&[headless, ext, v6], none, "n1").is_empty());
    }

    #[test]
    fn terminating_endpoints_serve_only_when_none_is_ready() {
        let mut s = web_slice();
        s.endpoints.remove(0);
        let ports = service_ports(&[web()], &[s], "n1");
        let http = ports.iter().find(|p| p.id.port == "http").unwrap();
        let c = http.categorize();
        assert_eq!(c.cluster.len(), 1);
        assert_eq!(c.cluster[0].ip, Ipv4Addr::new(10, 42, 1, 5));
        assert!(c.any);
    }

    #[test]
    fn local_policies_pick_this_nodes_endpoints() {
        let mut s = web();
        let spec = s.spec.as_mut().unwrap();
        spec.external_traffic_policy = Some("Local".into());
        spec.session_affinity = Some("ClientIP".into());
        let ports = service_ports(&[s.clone()], &[web_slice()], "n1");
        let http = ports.iter().find(|p| p.id.port == "http").unwrap();
        assert!(http.external_local && !http.internal_local);
        assert_eq!(http.affinity_timeout, Some(10800));
        let c = http.categorize();
        assert_eq!(
            c.cluster.len(),
            1,
            "cluster IP traffic still uses all nodes"
        );
        assert_eq!(c.local.len(), 1);
        assert_eq!(c.local[0].ip, Ipv4Addr::new(10, 42, 0, 5));

        // On a node with no usable endpoint of its own: nothing local, but endpoints
        // exist elsewhere.
        let ports = service_ports(&[s.clone()], &[web_slice()], "n3");
        let http = ports.iter().find(|p| p.id.port == "http").unwrap();
        let c = http.categorize();
        assert!(c.local.is_empty() && c.any);

        // internalTrafficPolicy Local alone, on a ClusterIP service: no cluster-wide
        // traffic at all.
        let mut s = web();
        let spec = s.spec.as_mut().unwrap();
        spec.type_ = Some("ClusterIP".into());
        spec.internal_traffic_policy = Some("Local".into());
        let ports = service_ports(&[s], &[web_slice()], "n2");
        let http = ports.iter().find(|p| p.id.port == "http").unwrap();
        assert_eq!(http.node_port, None, "a ClusterIP service has no node port");
        let c = http.categorize();
        assert!(c.cluster.is_empty());
        assert_eq!(c.local.len(), 1, "the serving, terminating one on n2");
        assert!(c.any);
    }

    #[test]
    fn load_balancer_ingress_counts_as_external_unless_proxied() {
        let mut s = web();
        s.spec.as_mut().unwrap().type_ = Some("LoadBalancer".into());
        s.spec.as_mut().unwrap().external_ips = Some(vec!["192.0.2.9".into()]);
        s.status = Some(
            serde_json::from_value(json!({"loadBalancer": {"ingress": [
                {"ip": "192.0.2.1", "ipMode": "VIP"}, {"ip": "192.0.2.2", "ipMode": "Proxy"},
                {"hostname": "lb.example"}]}}))
            .unwrap(),
        );
        let ports = service_ports(&[s], &[web_slice()], "n1");
        let http = ports.iter().find(|p| p.id.port == "http").unwrap();
        let ips: Vec<String> = http.external_ips.iter().map(|i| i.to_string()).collect();
        assert_eq!(ips, ["192.0.2.1", "192.0.2.9"]);
        assert_eq!(http.node_port, Some(30080));
    }

    #[test]
    fn udp_flows_of_endpoints_that_left_are_stale() {
        let dns = |eps: &[u8]| -> ServicePort {
            ServicePort {
                id: ServicePortName {
                    namespace: "kube-system".into(),
                    name: "dns".into(),
                    port: "dns".into(),
                    protocol: Protocol::Udp,
                },
                port: 53,
                node_port: Some(30053),
                endpoints: eps
                    .iter()
                    .map(|l| Endpoint {
                        port: 53,
                        ..crate::fixtures::ep(*l, true)
                    })
                    .collect(),
                ..crate::fixtures::port("dns", vec![])
            }
        };
        assert!(stale_udp_flows(&[dns(&[5, 6])], &[dns(&[5, 6, 7])]).is_empty());
        let gone = Ipv4Addr::new(10, 42, 0, 6);
        assert_eq!(
            stale_udp_flows(&[dns(&[5, 6])], &[dns(&[5])]),
            [
                StaleFlows::ToAddress {
                    address: Ipv4Addr::new(10, 43, 0, 10),
                    endpoint: gone
                },
                StaleFlows::ToNodePort {
                    port: 30053,
                    endpoint: gone
                }
            ]
        );
        // The whole Service going counts; TCP never does.
        assert_eq!(stale_udp_flows(&[dns(&[5])], &[]).len(), 2);
        let mut tcp = dns(&[5]);
        tcp.id.protocol = Protocol::Tcp;
        assert!(stale_udp_flows(&[tcp], &[]).is_empty());
    }
}
