//! The cluster's DNS data as a pure model, built from Services and EndpointSlices and
//! queried by name and type, with no I/O: [`Records::build`] turns the API objects into
//! resource records by the Kubernetes DNS specification, [`Records::answer`] says what a
//! query gets back (records, no data, no such name, or "not ours, forward it").
//!
//! What lives under the cluster domain (`cluster.local` by default):
//!
//! - `<svc>.<ns>.svc.<domain>`: A/AAAA of the cluster IPs of a Service that has them;
//!   of every ready endpoint for a headless one (`clusterIP: None`), not-ready ones too
//!   when it publishes not-ready addresses; a CNAME for an ExternalName one.
//! - `<host>.<svc>.<ns>.svc.<domain>`: A/AAAA of one endpoint of a headless Service,
//!   named by its `hostname`, else by its address with dashes (`10-1-2-3`).
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>`: SRV for each named port, pointing at
//!   the Service name, or at each endpoint's name for a headless Service.
//! - `<a-b-c-d>.<ns>.pod.<domain>`: A of the address spelled in the first label, for any
//!   namespace (what CoreDNS calls `pods insecure`).
//!
//! and, outside it, PTR records under `in-addr.arpa` / `ip6.arpa` for cluster IPs and
//! headless endpoints. Names under the domain that match nothing are NXDOMAIN; names
//! that exist without the asked type (including names that only have names below them,
//! such as `<ns>.svc.<domain>`) get an empty answer. Both carry the zone's SOA. Reverse
//! names without a record here are forwarded, like any other name outside the domain.

use std::borrow::Borrow;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The EndpointSlice label naming the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The time to live of every record and of negative answers, in seconds (CoreDNS's
/// default for its kubernetes plugin).
pub const TTL: u32 = 5;

/// How long a chain of CNAMEs inside the cluster domain is followed.
const MAX_CNAME_CHAIN: usize = 8;

/// The data of one record; the owner name is the key it is stored under.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Data {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(Name),
    Ptr(Name),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: Name,
    },
}

impl Data {
    fn address(ip: IpAddr) -> Data {
        match ip {
            IpAddr::V4(v4) => Data::A(v4),
            IpAddr::V6(v6) => Data::Aaaa(v6),
        }
    }

    fn record_type(&self) -> RecordType {
        match self {
            Data::A(_) => RecordType::A,
            Data::Aaaa(_) => RecordType::AAAA,
            Data::Cname(_) => RecordType::CNAME,
            Data::Ptr(_) => RecordType::PTR,
            Data::Srv { .. } => RecordType::SRV,
        }
    }

    fn rdata(&self) -> RData {
        match self {
            Data::A(ip) => RData::A(A(*ip)),
            Data::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
            Data::Cname(target) => RData::CNAME(CNAME(target.clone())),
            Data::Ptr(target) => RData::PTR(PTR(target.clone())),
            Data::Srv {
                priority,
                weight,
                port,
                target,
            } => RData::SRV(SRV::new(*priority, *weight, *port, target.clone())),
        }
    }
}

/// All records at one name.
#[derive(Clone, Debug)]
struct Owner {
    name: Name,
    data: BTreeSet<Data>,
}

/// What a query gets back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Records of the asked type (or a CNAME) are in the answer section.
    Answer,
    /// The name exists but has no record of the asked type (NOERROR, empty answer).
    NoData,
    /// The name is under the cluster domain and does not exist.
    NxDomain,
    /// The name is under the cluster domain but the records have not been loaded from
    /// the API yet: SERVFAIL, so that clients retry rather than cache a negative answer.
    NotReady,
    /// Not a name this server answers for: ask the upstream servers.
    Forward,
}

/// The answer to one query, section by section.
#[derive(Clone, Debug)]
pub struct Answer {
    /// What kind of answer this is.
    pub outcome: Outcome,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section (the zone's SOA for negative answers).
    pub authority: Vec<Record>,
    /// The additional section (addresses of SRV targets).
    pub additionals: Vec<Record>,
    /// The target of a CNAME that ends the answer and lies outside the cluster domain:
    /// the server resolves it upstream and appends what it finds, as a recursive
    /// server would.
    pub chase: Option<Name>,
}

impl Answer {
    fn new(outcome: Outcome) -> Answer {
        Answer {
            outcome,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
            chase: None,
        }
    }

    /// The response code to send.
    pub fn response_code(&self) -> ResponseCode {
        match self.outcome {
            Outcome::Answer | Outcome::NoData => ResponseCode::NoError,
            Outcome::NxDomain => ResponseCode::NXDomain,
            Outcome::NotReady | Outcome::Forward => ResponseCode::ServFail,
        }
    }

    /// Whether this server is the authority for the answer (the AA bit).
    pub fn authoritative(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Answer | Outcome::NoData | Outcome::NxDomain
        )
    }
}

/// The DNS records of a cluster at one point in time.
#[derive(Clone, Debug)]
pub struct Records {
    /// The cluster domain, lower case, without leading or trailing dots.
    domain: String,
    /// False until built from the API's objects.
    synced: bool,
    /// Every owner name (lower case, no trailing dot) with its records.
    names: BTreeMap<String, Owner>,
    /// Every name under the domain that exists: owners and the names between them and
    /// the domain (empty non-terminals).
    existing: HashSet<String>,
    soa: Record,
}

impl Records {
    /// Records for a cluster whose objects have not been read yet: names under the
    /// domain get SERVFAIL, everything else is forwarded.
    pub fn pending(cluster_domain: &str) -> Records {
        let domain = normalize(cluster_domain);
        let soa = soa_record(&domain, 0);
        Records {
            domain,
            synced: false,
            names: BTreeMap::new(),
            existing: HashSet::new(),
            soa,
        }
    }

    /// Builds the records of these Services and EndpointSlices under `cluster_domain`.
    pub fn build<S, E>(services: &[S], endpoint_slices: &[E], cluster_domain: &str) -> Records
    where
        S: Borrow<Service>,
        E: Borrow<EndpointSlice>,
    {
        let domain = normalize(cluster_domain);
        let mut builder = Builder::default();

        // The slices of each Service, by namespace and name.
        let mut slices_of: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for slice in endpoint_slices {
            let slice = slice.borrow();
            let Some(ns) = slice.metadata.namespace.as_deref() else {
                continue;
            };
            let Some(svc) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            else {
                continue;
            };
            slices_of.entry((ns, svc.as_str())).or_default().push(slice);
        }

        for svc in services {
            let svc = svc.borrow();
            let (Some(ns), Some(name)) = (
                svc.metadata.namespace.as_deref(),
                svc.metadata.name.as_deref(),
            ) else {
                continue;
            };
            let Some(spec) = svc.spec.as_ref() else {
                continue;
            };
            let base = format!("{}.{}.svc.{domain}", name.to_lowercase(), ns.to_lowercase());
            let Some(base_name) = fqdn(&base) else {
                continue;
            };
            builder.touch(&base);

            if spec.type_.as_deref() == Some("ExternalName") {
                if let Some(target) = spec.external_name.as_deref().and_then(fqdn) {
                    builder.add(&base, Data::Cname(target));
                }
                continue;
            }

            let mut cluster_ips: Vec<&str> = spec
                .cluster_ips
                .iter()
                .flatten()
                .map(String::as_str)
                .collect();
            if cluster_ips.is_empty() {
                cluster_ips.extend(spec.cluster_ip.as_deref());
            }
            if cluster_ips.first() == Some(&"None") {
                let slices = slices_of
                    .get(&(ns, name))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
                builder.headless(&base, slices, publish_not_ready);
                continue;
            }

            let ips: Vec<IpAddr> = cluster_ips.iter().filter_map(|s| s.parse().ok()).collect();
            if ips.is_empty() {
                continue;
            }
            for ip in ips {
                builder.add(&base, Data::address(ip));
                builder.add(&reverse_name(ip), Data::Ptr(base_name.clone()));
            }
            for port in spec.ports.iter().flatten() {
                let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) else {
                    continue;
                };
                let Ok(number) = u16::try_from(port.port) else {
                    continue;
                };
                let owner = srv_name(&base, port_name, port.protocol.as_deref());
                builder.add(
                    &owner,
                    Data::Srv {
                        priority: 0,
                        weight: 100,
                        port: number,
                        target: base_name.clone(),
                    },
                );
            }
        }

        builder.finish(domain)
    }

    /// The cluster domain, lower case, without a trailing dot.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// How many names have records.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name has a record.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The answer to a query for `qname` (any case, with or without the trailing dot)
    /// and `qtype`.
    pub fn answer(&self, qname: &str, qtype: RecordType) -> Answer {
        let name = normalize(qname);
        if is_reverse(&name) {
            return self.answer_reverse(&name, qtype);
        }
        if !self.in_domain(&name) {
            return Answer::new(Outcome::Forward);
        }
        if !self.synced {
            return Answer::new(Outcome::NotReady);
        }

        let mut answer = Answer::new(Outcome::Answer);
        if name == self.domain && matches!(qtype, RecordType::SOA | RecordType::ANY) {
            answer.answers.push(self.soa.clone());
        }

        let exists = if let Some(pod) = self.pod_name(&name) {
            match pod {
                PodName::Intermediate => true,
                PodName::Invalid => false,
                PodName::Address(owner, ip) => {
                    let data = Data::address(ip);
                    if qtype == data.record_type() || qtype == RecordType::ANY {
                        answer.answers.push(record(&owner, &data));
                    }
                    true
                }
            }
        } else {
            self.answer_owner(&name, qtype, &mut answer);
            self.existing.contains(&name)
        };

        if answer.answers.is_empty() {
            answer.outcome = if exists {
                Outcome::NoData
            } else {
                Outcome::NxDomain
            };
            answer.authority.push(self.soa.clone());
            answer.additionals.clear();
        }
        answer
    }

    /// Fills `answer` with the records of `name` (a key) of type `qtype`, following
    /// CNAMEs inside the domain and adding the addresses of SRV targets.
    fn answer_owner(&self, name: &str, qtype: RecordType, answer: &mut Answer) {
        let mut current = name.to_string();
        for _ in 0..MAX_CNAME_CHAIN {
            let Some(owner) = self.names.get(&current) else {
                return;
            };
            let cname = owner.data.iter().find_map(|d| match d {
                Data::Cname(target) => Some(target.clone()),
                _ => None,
            });
            match cname {
                Some(target) if !matches!(qtype, RecordType::CNAME | RecordType::ANY) => {
                    answer
                        .answers
                        .push(record(&owner.name, &Data::Cname(target.clone())));
                    let key = normalize(&target.to_ascii());
                    if self.in_domain(&key) {
                        current = key;
                        continue;
                    }
                    answer.chase = Some(target);
                    return;
                }
                _ => {}
            }
            for data in &owner.data {
                if data.record_type() == qtype || qtype == RecordType::ANY {
                    answer.answers.push(record(&owner.name, data));
                    if let Data::Srv { target, .. } = data {
                        self.add_addresses(target, &mut answer.additionals);
                    }
                }
            }
            return;
        }
    }

    /// Adds the A/AAAA records of `target`, when it is one of ours, to `out`.
    fn add_addresses(&self, target: &Name, out: &mut Vec<Record>) {
        let Some(owner) = self.names.get(&normalize(&target.to_ascii())) else {
            return;
        };
        for data in &owner.data {
            if matches!(data, Data::A(_) | Data::Aaaa(_)) {
                let rec = record(&owner.name, data);
                if !out.contains(&rec) {
                    out.push(rec);
                }
            }
        }
    }

    fn answer_reverse(&self, name: &str, qtype: RecordType) -> Answer {
        let mut answer = Answer::new(Outcome::Answer);
        if matches!(qtype, RecordType::PTR | RecordType::ANY) {
            if let Some(owner) = self.names.get(name) {
                for data in &owner.data {
                    answer.answers.push(record(&owner.name, data));
                }
            }
        }
        if answer.answers.is_empty() {
            answer.outcome = Outcome::Forward;
        }
        answer
    }

    fn in_domain(&self, name: &str) -> bool {
        name == self.domain
            || name
                .strip_suffix(self.domain.as_str())
                .is_some_and(|rest| rest.ends_with('.'))
    }

    /// Classifies a name under `pod.<domain>`; None for names elsewhere.
    fn pod_name(&self, name: &str) -> Option<PodName> {
        let zone = format!("pod.{}", self.domain);
        if name == zone {
            return Some(PodName::Intermediate);
        }
        let rest = name.strip_suffix(zone.as_str())?.strip_suffix('.')?;
        let labels: Vec<&str> = rest.split('.').collect();
        Some(match labels.as_slice() {
            [ns] if !ns.is_empty() => PodName::Intermediate,
            [host, ns] if !ns.is_empty() => match parse_dashed(host) {
                Some(ip) => match fqdn(name) {
                    Some(owner) => PodName::Address(owner, ip),
                    None => PodName::Invalid,
                },
                None => PodName::Invalid,
            },
            _ => PodName::Invalid,
        })
    }
}

/// What a name under `pod.<domain>` is.
enum PodName {
    /// `pod.<domain>` or `<ns>.pod.<domain>`: exists, holds no records.
    Intermediate,
    /// `<dashed address>.<ns>.pod.<domain>`.
    Address(Name, IpAddr),
    /// Anything else.
    Invalid,
}

/// Collects records while building.
#[derive(Default)]
struct Builder {
    names: BTreeMap<String, Owner>,
    /// Names that exist even without records of their own (Services without any).
    touched: BTreeSet<String>,
}

impl Builder {
    fn touch(&mut self, key: &str) {
        self.touched.insert(key.to_string());
    }

    fn add(&mut self, key: &str, data: Data) {
        if let Some(owner) = self.names.get_mut(key) {
            owner.data.insert(data);
            return;
        }
        let Some(name) = fqdn(key) else {
            return;
        };
        self.names.insert(
            key.to_string(),
            Owner {
                name,
                data: BTreeSet::from([data]),
            },
        );
    }

    /// The records of a headless Service named `base` from its slices.
    fn headless(&mut self, base: &str, slices: &[&EndpointSlice], publish_not_ready: bool) {
        // SRV owner -> (port, target) of every endpoint, weighted once all are known.
        let mut srv: BTreeMap<String, BTreeSet<(u16, Name)>> = BTreeMap::new();
        for slice in slices {
            if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
                continue;
            }
            for endpoint in &slice.endpoints {
                let ready = endpoint
                    .conditions
                    .as_ref()
                    .and_then(|c| c.ready)
                    .unwrap_or(true);
                if !ready && !publish_not_ready {
                    continue;
                }
                for ip in endpoint
                    .addresses
                    .iter()
                    .filter_map(|a| a.parse::<IpAddr>().ok())
                {
                    let label = match endpoint.hostname.as_deref() {
                        Some(h) if is_dns_label(h) => h.to_lowercase(),
                        _ => dashed(ip),
                    };
                    let host = format!("{label}.{base}");
                    let Some(host_name) = fqdn(&host) else {
                        continue;
                    };
                    self.add(base, Data::address(ip));
                    self.add(&host, Data::address(ip));
                    self.add(&reverse_name(ip), Data::Ptr(host_name.clone()));
                    for port in slice.ports.iter().flatten() {
                        let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) else {
                            continue;
                        };
                        let Some(number) = port.port.and_then(|p| u16::try_from(p).ok()) else {
                            continue;
                        };
                        srv.entry(srv_name(base, port_name, port.protocol.as_deref()))
                            .or_default()
                            .insert((number, host_name.clone()));
                    }
                }
            }
        }
        for (owner, targets) in srv {
            let weight = u16::try_from(100 / targets.len().max(1))
                .unwrap_or(1)
                .max(1);
            for (port, target) in targets {
                self.add(
                    &owner,
                    Data::Srv {
                        priority: 0,
                        weight,
                        port,
                        target,
                    },
                );
            }
        }
    }

    fn finish(self, domain: String) -> Records {
        let mut existing = HashSet::new();
        existing.insert(domain.clone());
        existing.insert(format!("svc.{domain}"));
        existing.insert(format!("pod.{domain}"));
        let suffix = format!(".{domain}");
        for key in self.names.keys().chain(self.touched.iter()) {
            // The name and every name between it and the domain.
            let mut rest = key.as_str();
            while rest.ends_with(suffix.as_str()) {
                existing.insert(rest.to_string());
                match rest.split_once('.') {
                    Some((_, parent)) => rest = parent,
                    None => break,
                }
            }
        }
        let mut hasher = DefaultHasher::new();
        for (key, owner) in &self.names {
            key.hash(&mut hasher);
            owner.data.hash(&mut hasher);
        }
        // A serial that changes when the records do (nothing transfers this zone, so
        // it need not grow).
        let serial = (hasher.finish() & u64::from(u32::MAX)) as u32;
        let soa = soa_record(&domain, serial);
        Records {
            domain,
            synced: true,
            names: self.names,
            existing,
            soa,
        }
    }
}

/// Lower case, without a trailing dot.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The fully qualified name of a key, if it is a valid DNS name.
fn fqdn(key: &str) -> Option<Name> {
    let key = normalize(key);
    if key.is_empty() {
        return None;
    }
    Name::from_ascii(format!("{key}.")).ok()
}

fn record(owner: &Name, data: &Data) -> Record {
    Record::from_rdata(owner.clone(), TTL, data.rdata())
}

fn soa_record(domain: &str, serial: u32) -> Record {
    let apex = fqdn(domain).unwrap_or_else(Name::root);
    let mname = fqdn(&format!("ns.dns.{domain}")).unwrap_or_else(Name::root);
    let rname = fqdn(&format!("hostmaster.{domain}")).unwrap_or_else(Name::root);
    let soa = SOA::new(mname, rname, serial, 7200, 1800, 86400, TTL);
    Record::from_rdata(apex, TTL, RData::SOA(soa))
}

/// `_<port>._<proto>.<base>`, the protocol lower case (TCP when unset).
fn srv_name(base: &str, port: &str, protocol: Option<&str>) -> String {
    format!(
        "_{}._{}.{base}",
        port.to_lowercase(),
        protocol.unwrap_or("TCP").to_lowercase()
    )
}

/// Whether `s` can be one label of a name: 1 to 63 letters, digits and dashes.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// An address spelled with dashes, as one label: `10-1-2-3`, `fd00--1`.
pub fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The address spelled by a dashed label, if it is one.
fn parse_dashed(label: &str) -> Option<IpAddr> {
    if let Ok(v4) = label.replace('-', ".").parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    label
        .replace('-', ":")
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

/// The reverse-lookup name of an address, without the trailing dot:
/// `4.3.2.1.in-addr.arpa`, or the nibbles under `ip6.arpa`.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            out.push_str("ip6.arpa");
            out
        }
    }
}

fn is_reverse(name: &str) -> bool {
    name.ends_with(".in-addr.arpa") || name.ends_with(".ip6.arpa")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DOMAIN: &str = "cluster.local";

    fn service(v: serde_json::Value) -> Service {
        serde_json::from_value(v).expect("service")
    }

    fn slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).expect("endpointslice")
    }

    fn cluster_ip_service() -> Service {
        service(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": "10.43.0.10",
                "clusterIPs": ["10.43.0.10", "fd00:43::10"],
                "ports": [
                    {"name": "http", "port": 80, "protocol": "TCP"},
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"port": 9000}
                ]
            }
        }))
    }

    fn headless_service(publish_not_ready: bool) -> Service {
        service(json!({
            "metadata": {"name": "db", "namespace": "data"},
            "spec": {
                "clusterIP": "None",
                "clusterIPs": ["None"],
                "publishNotReadyAddresses": publish_not_ready,
                "ports": [{"name": "pg", "port": 5432}]
            }
        }))
    }

    fn headless_slice() -> EndpointSlice {
        slice(json!({
            "metadata": {
                "name": "db-abc",
                "namespace": "data",
                "labels": {"kubernetes.io/service-name": "db"}
            },
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 15432, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.42.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.42.0.6"], "conditions": {"ready": true}},
                {"addresses": ["10.42.0.7"], "hostname": "db-2", "conditions": {"ready": false}}
            ]
        }))
    }

    fn external_service() -> Service {
        service(json!({
            "metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "example.com"}
        }))
    }

    fn all_records() -> Records {
        Records::build(
            &[
                cluster_ip_service(),
                headless_service(false),
                external_service(),
            ],
            &[headless_slice()],
            DOMAIN,
        )
    }

    fn rdata(answer: &Answer) -> Vec<RData> {
        answer.answers.iter().map(|r| r.data.clone()).collect()
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> RData {
        RData::SRV(SRV::new(priority, weight, port, name(target)))
    }

    fn a(s: &str) -> RData {
        RData::A(A(s.parse().expect("ipv4")))
    }

    fn ptr(s: &str) -> RData {
        RData::PTR(PTR(name(s)))
    }

    fn assert_soa(answer: &Answer) {
        assert_eq!(answer.authority.len(), 1, "{answer:?}");
        let RData::SOA(soa) = &answer.authority[0].data else {
            panic!("not an SOA: {answer:?}");
        };
        assert_eq!(soa.mname, name("ns.dns.cluster.local."));
        assert_eq!(soa.rname, name("hostmaster.cluster.local."));
        assert_eq!(answer.authority[0].name, name("cluster.local."));
    }

    #[test]
    fn cluster_ip_service_has_a_and_aaaa() {
        let r = all_records();
        let ans = r.answer("web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(ans.outcome, Outcome::Answer);
        assert!(ans.authoritative());
        assert_eq!(rdata(&ans), vec![a("10.43.0.10")]);
        assert_eq!(ans.answers[0].ttl, TTL);
        assert_eq!(ans.answers[0].name, name("web.default.svc.cluster.local."));

        let ans = r.answer("web.default.svc.cluster.local", RecordType::AAAA);
        assert_eq!(
            rdata(&ans),
            vec![RData::AAAA(AAAA("fd00:43::10".parse().unwrap()))]
        );
    }

    #[test]
    fn names_are_case_insensitive() {
        let r = all_records();
        let ans = r.answer("WEB.Default.SVC.Cluster.Local.", RecordType::A);
        assert_eq!(rdata(&ans), vec![a("10.43.0.10")]);
    }

    #[test]
    fn missing_names_under_the_domain_are_nxdomain_with_soa() {
        let r = all_records();
        for q in [
            "nope.default.svc.cluster.local.",
            "web.other.svc.cluster.local",
            "x.web.default.svc.cluster.local",
            "google.com.default.svc.cluster.local",
            "foo.cluster.local",
        ] {
            let ans = r.answer(q, RecordType::A);
            assert_eq!(ans.outcome, Outcome::NxDomain, "{q}");
            assert_eq!(ans.response_code(), ResponseCode::NXDomain);
            assert!(ans.authoritative());
            assert!(ans.answers.is_empty());
            assert_soa(&ans);
        }
    }

    #[test]
    fn existing_names_without_the_type_are_nodata_with_soa() {
        let r = all_records();
        for (q, t) in [
            ("web.default.svc.cluster.local", RecordType::MX),
            ("default.svc.cluster.local", RecordType::A),
            ("svc.cluster.local", RecordType::A),
            ("cluster.local", RecordType::A),
            ("_tcp.web.default.svc.cluster.local", RecordType::SRV),
            ("_http._tcp.web.default.svc.cluster.local", RecordType::A),
        ] {
            let ans = r.answer(q, t);
            assert_eq!(ans.outcome, Outcome::NoData, "{q} {t}");
            assert_eq!(ans.response_code(), ResponseCode::NoError);
            assert!(ans.answers.is_empty());
            assert_soa(&ans);
        }
    }

    #[test]
    fn apex_answers_soa() {
        let r = all_records();
        let ans = r.answer("cluster.local.", RecordType::SOA);
        assert_eq!(ans.outcome, Outcome::Answer);
        assert!(matches!(ans.answers[0].data, RData::SOA(_)));
    }

    #[test]
    fn serial_follows_the_records() {
        let one = all_records();
        let same = all_records();
        let other = Records::build(&[cluster_ip_service()], &[] as &[EndpointSlice], DOMAIN);
        let serial = |r: &Records| match &r.soa.data {
            RData::SOA(soa) => soa.serial,
            _ => unreachable!(),
        };
        assert_eq!(serial(&one), serial(&same));
        assert_ne!(serial(&one), serial(&other));
    }

    #[test]
    fn names_outside_the_domain_are_forwarded() {
        let r = all_records();
        for q in ["example.com.", "local", "cluster.local.example.com"] {
            let ans = r.answer(q, RecordType::A);
            assert_eq!(ans.outcome, Outcome::Forward, "{q}");
            assert!(!ans.authoritative());
        }
    }

    #[test]
    fn pending_records_fail_cluster_names_and_forward_others() {
        let r = Records::pending("cluster.local.");
        let ans = r.answer("web.default.svc.cluster.local", RecordType::A);
        assert_eq!(ans.outcome, Outcome::NotReady);
        assert_eq!(ans.response_code(), ResponseCode::ServFail);
        assert_eq!(
            r.answer("example.com", RecordType::A).outcome,
            Outcome::Forward
        );
    }

    #[test]
    fn srv_for_named_ports_of_a_cluster_ip_service() {
        let r = all_records();
        let ans = r.answer("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV);
        assert_eq!(ans.outcome, Outcome::Answer);
        assert_eq!(
            rdata(&ans),
            vec![srv(0, 100, 80, "web.default.svc.cluster.local.")]
        );
        // The target's addresses come along.
        let extra: Vec<RData> = ans.additionals.iter().map(|r| r.data.clone()).collect();
        assert!(extra.contains(&a("10.43.0.10")), "{extra:?}");

        let ans = r.answer("_dns._udp.web.default.svc.cluster.local", RecordType::SRV);
        assert_eq!(
            rdata(&ans),
            vec![srv(0, 100, 53, "web.default.svc.cluster.local.")]
        );
        // Wrong protocol: no such name.
        let ans = r.answer("_dns._tcp.web.default.svc.cluster.local", RecordType::SRV);
        assert_eq!(ans.outcome, Outcome::NxDomain);
    }

    #[test]
    fn headless_service_lists_ready_endpoints() {
        let r = all_records();
        let ans = r.answer("db.data.svc.cluster.local", RecordType::A);
        assert_eq!(ans.outcome, Outcome::Answer);
        assert_eq!(rdata(&ans), vec![a("10.42.0.5"), a("10.42.0.6")]);

        let ans = r.answer("db-0.db.data.svc.cluster.local", RecordType::A);
        assert_eq!(rdata(&ans), vec![a("10.42.0.5")]);
        let ans = r.answer("10-42-0-6.db.data.svc.cluster.local", RecordType::A);
        assert_eq!(rdata(&ans), vec![a("10.42.0.6")]);
        // Not ready, not published.
        let ans = r.answer("db-2.db.data.svc.cluster.local", RecordType::A);
        assert_eq!(ans.outcome, Outcome::NxDomain);
    }

    #[test]
    fn headless_service_publishing_not_ready_addresses() {
        let r = Records::build(&[headless_service(true)], &[headless_slice()], DOMAIN);
        let ans = r.answer("db.data.svc.cluster.local", RecordType::A);
        assert_eq!(
            rdata(&ans),
            vec![a("10.42.0.5"), a("10.42.0.6"), a("10.42.0.7")]
        );
        let ans = r.answer("db-2.db.data.svc.cluster.local", RecordType::A);
        assert_eq!(rdata(&ans), vec![a("10.42.0.7")]);
    }

    #[test]
    fn headless_service_without_endpoints_exists() {
        let r = Records::build(&[headless_service(false)], &[] as &[EndpointSlice], DOMAIN);
        let ans = r.answer("db.data.svc.cluster.local", RecordType::A);
        assert_eq!(ans.outcome, Outcome::NoData);
    }

    #[test]
    fn headless_srv_has_one_record_per_endpoint() {
        let r = all_records();
        let ans = r.answer("_pg._tcp.db.data.svc.cluster.local", RecordType::SRV);
        assert_eq!(ans.outcome, Outcome::Answer);
        let mut got = rdata(&ans);
        got.sort_by_key(|d| format!("{d:?}"));
        let mut want = vec![
            srv(0, 50, 15432, "db-0.db.data.svc.cluster.local."),
            srv(0, 50, 15432, "10-42-0-6.db.data.svc.cluster.local."),
        ];
        want.sort_by_key(|d| format!("{d:?}"));
        assert_eq!(got, want);
        let extra: Vec<(Name, RData)> = ans
            .additionals
            .iter()
            .map(|r| (r.name.clone(), r.data.clone()))
            .collect();
        assert!(extra.contains(&(name("db-0.db.data.svc.cluster.local."), a("10.42.0.5"))));
        assert!(extra.contains(&(name("10-42-0-6.db.data.svc.cluster.local."), a("10.42.0.6"))));
    }

    #[test]
    fn slices_of_other_services_are_ignored() {
        let mut other = headless_slice();
        other.metadata.labels = Some([(SERVICE_NAME_LABEL.to_string(), "db2".to_string())].into());
        let r = Records::build(&[headless_service(false)], &[other], DOMAIN);
        let ans = r.answer("db.data.svc.cluster.local", RecordType::A);
        assert_eq!(ans.outcome, Outcome::NoData);
    }

    #[test]
    fn external_name_is_a_cname() {
        let r = all_records();
        let ans = r.answer("ext.default.svc.cluster.local", RecordType::A);
        assert_eq!(ans.outcome, Outcome::Answer);
        assert_eq!(rdata(&ans), vec![RData::CNAME(CNAME(name("example.com.")))]);
        assert_eq!(ans.chase, Some(name("example.com.")));

        let ans = r.answer("ext.default.svc.cluster.local", RecordType::CNAME);
        assert_eq!(rdata(&ans), vec![RData::CNAME(CNAME(name("example.com.")))]);
        assert_eq!(ans.chase, None);
    }

    #[test]
    fn external_name_inside_the_domain_is_followed() {
        let alias = service(json!({
            "metadata": {"name": "alias", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "web.default.svc.cluster.local"}
        }));
        let r = Records::build(
            &[alias, cluster_ip_service()],
            &[] as &[EndpointSlice],
            DOMAIN,
        );
        let ans = r.answer("alias.default.svc.cluster.local", RecordType::A);
        assert_eq!(
            rdata(&ans),
            vec![
                RData::CNAME(CNAME(name("web.default.svc.cluster.local."))),
                a("10.43.0.10")
            ]
        );
        assert_eq!(ans.chase, None);
    }

    #[test]
    fn ptr_for_cluster_ips_and_headless_endpoints() {
        let r = all_records();
        let ans = r.answer("10.0.43.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(ans.outcome, Outcome::Answer);
        assert_eq!(rdata(&ans), vec![ptr("web.default.svc.cluster.local.")]);

        let v6 = reverse_name("fd00:43::10".parse().unwrap());
        let ans = r.answer(&v6, RecordType::PTR);
        assert_eq!(rdata(&ans), vec![ptr("web.default.svc.cluster.local.")]);

        let ans = r.answer("5.0.42.10.in-addr.arpa", RecordType::PTR);
        assert_eq!(rdata(&ans), vec![ptr("db-0.db.data.svc.cluster.local.")]);
        let ans = r.answer("6.0.42.10.in-addr.arpa", RecordType::PTR);
        assert_eq!(
            rdata(&ans),
            vec![ptr("10-42-0-6.db.data.svc.cluster.local.")]
        );
        // Unknown addresses are someone else's.
        let ans = r.answer("9.9.9.9.in-addr.arpa", RecordType::PTR);
        assert_eq!(ans.outcome, Outcome::Forward);
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("10.43.0.1".parse().unwrap()),
            "1.0.43.10.in-addr.arpa"
        );
        assert_eq!(
            reverse_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[test]
    fn pod_records_for_any_dashed_address() {
        let r = all_records();
        let ans = r.answer("10-42-1-7.anything.pod.cluster.local.", RecordType::A);
        assert_eq!(ans.outcome, Outcome::Answer);
        assert_eq!(rdata(&ans), vec![a("10.42.1.7")]);
        assert_eq!(
            ans.answers[0].name,
            name("10-42-1-7.anything.pod.cluster.local.")
        );

        let ans = r.answer("fd00--7.ns.pod.cluster.local", RecordType::AAAA);
        assert_eq!(
            rdata(&ans),
            vec![RData::AAAA(AAAA("fd00::7".parse().unwrap()))]
        );

        let ans = r.answer("10-42-1-7.ns.pod.cluster.local", RecordType::AAAA);
        assert_eq!(ans.outcome, Outcome::NoData);
        assert_eq!(
            r.answer("ns.pod.cluster.local", RecordType::A).outcome,
            Outcome::NoData
        );
        for bad in [
            "10-42-1.ns.pod.cluster.local",
            "10-42-1-300.ns.pod.cluster.local",
            "web.ns.pod.cluster.local",
            "x.10-42-1-7.ns.pod.cluster.local",
        ] {
            let ans = r.answer(bad, RecordType::A);
            assert_eq!(ans.outcome, Outcome::NxDomain, "{bad}");
            assert_soa(&ans);
        }
    }

    #[test]
    fn any_returns_everything_at_a_name() {
        let r = all_records();
        let ans = r.answer("web.default.svc.cluster.local", RecordType::ANY);
        assert_eq!(ans.answers.len(), 2);
    }

    #[test]
    fn other_cluster_domain() {
        let r = Records::build(
            &[cluster_ip_service()],
            &[] as &[EndpointSlice],
            "Corp.Example.",
        );
        assert_eq!(r.domain(), "corp.example");
        let ans = r.answer("web.default.svc.corp.example", RecordType::A);
        assert_eq!(rdata(&ans), vec![a("10.43.0.10")]);
        assert_eq!(
            r.answer("web.default.svc.cluster.local", RecordType::A)
                .outcome,
            Outcome::Forward
        );
    }

    #[test]
    fn services_without_addresses_or_spec_exist_without_records() {
        let pending = service(json!({
            "metadata": {"name": "new", "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80}]}
        }));
        let r = Records::build(&[pending], &[] as &[EndpointSlice], DOMAIN);
        assert_eq!(
            r.answer("new.default.svc.cluster.local", RecordType::A)
                .outcome,
            Outcome::NoData
        );
        assert_eq!(
            r.answer("_http._tcp.new.default.svc.cluster.local", RecordType::SRV)
                .outcome,
            Outcome::NxDomain
        );
    }
}
