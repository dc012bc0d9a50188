//! The nftables data path: Service ports rendered as one `ip kube-proxy` table (the
//! layout upstream's nftables proxy uses, so `nft list table ip kube-proxy` reads
//! the same), and the transactions that bring the kernel from the last applied
//! [`Ruleset`] to the next one, touching only the chains, sets and map elements that
//! changed. Each transaction goes to `nft -f -` and is applied atomically.
//!
//! Shape of the table:
//! - base chains hooked at nat prerouting/output send packets to `services`, which
//!   looks up `daddr . proto . dport` in the `service-ips` verdict map and, for local
//!   destinations, `proto . dport` in `service-nodeports`;
//! - a `service-…` chain per port picks an endpoint at random (or the one a client
//!   is pinned to by session affinity), a `local-…` chain does the same among this
//!   node's endpoints, an `external-…` chain handles node-port and external-address
//!   traffic per the external traffic policy;
//! - an `endpoint-…` chain per endpoint DNATs to it;
//! - packets marked with 0x4000 are masqueraded on the way out;
//! - filter chains reject new connections to ports with no endpoints (or drop them
//!   when endpoints exist only on other nodes under a Local policy) and to ports a
//!   cluster IP does not serve.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::tool::ToolError;
use sha2::{Digest, Sha256};

pub use crate::model::Networks;
use crate::model::{Endpoint, ServicePort};

/// The table's name, as upstream's proxy names it.
pub const TABLE: &str = "kube-proxy";
/// The packet mark asking for masquerade.
pub const MASQUERADE_MARK: u32 = 0x4000;

/// Verdict maps and sets whose elements change with Services.
pub const SERVICE_IPS: &str = "service-ips";
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
pub const CLUSTER_IPS: &str = "cluster-ips";

/// Everything of the table that depends on Services: non-base chains with their
/// rules, affinity sets, and the elements of the verdict maps and sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub chains: BTreeMap<String, Vec<String>>,
    /// Affinity sets: name → declaration (`{ type …; }`).
    pub sets: BTreeMap<String, String>,
    /// Map or set name → key → value (empty for a set's element).
    pub elements: BTreeMap<&'static str, BTreeMap<String, String>>,
}

/// Eight characters naming a thing uniquely, so chain names stay unique however
/// names are cut.
fn hash8(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    d[..4].iter().map(|b| format!("{b:02X}")).collect()
}

/// Names of one Service port's objects.
struct Names {
    service: String,
    local: String,
    external: String,
    firewall: String,
}

impl Names {
    fn new(sp: &ServicePort) -> Names {
        let id = sp.id.to_string();
        let h = hash8(&id);
        Names {
            service: format!("service-{h}-{id}"),
            local: format!("local-{h}-{id}"),
            external: format!("external-{h}-{id}"),
            firewall: format!("firewall-{h}-{id}"),
        }
    }

    /// The endpoint chain and the affinity set of `ep`.
    fn endpoint(sp: &ServicePort, ep: &Endpoint) -> (String, String) {
        let id = format!("{}__{}/{}", sp.id, ep.ip, ep.port);
        let h = hash8(&id);
        (format!("endpoint-{h}-{id}"), format!("affinity-{h}-{id}"))
    }
}

impl Ruleset {
    /// The ruleset for these Service ports.
    pub fn build(ports: &[ServicePort], masq: &Networks) -> Ruleset {
        let mut rs = Ruleset::default();
        for m in [
            SERVICE_IPS,
            SERVICE_NODEPORTS,
            NO_ENDPOINT_SERVICES,
            NO_ENDPOINT_NODEPORTS,
            CLUSTER_IPS,
        ] {
            rs.elements.insert(m, BTreeMap::new());
        }
        for sp in ports {
            rs.add_port(sp, masq);
        }
        rs
    }

    fn element(&mut self, map: &'static str, key: String, value: impl Into<String>) {
        self.elements
            .entry(map)
            .or_default()
            .insert(key, value.into());
    }

    /// A chain choosing among `eps`: the client's pinned endpoint first when
    /// affinity is on, then one at random.
    fn balance_chain(&mut self, name: &str, sp: &ServicePort, eps: &[&Endpoint], masq: &Networks) {
        let proto = sp.id.protocol.as_str();
        let mut rules = Vec::new();
        for ip in &sp.cluster_ips {
            if masq.all {
                rules.push(format!(
                    "ip daddr {ip} {proto} dport {} jump mark-for-masquerade",
                    sp.port
                ));
            } else if let Some(cidr) = masq.cluster_cidr {
                rules.push(format!(
                    "ip daddr {ip} {proto} dport {} ip saddr != {cidr} jump mark-for-masquerade",
                    sp.port
                ));
            }
        }
        let chains: Vec<(String, String)> = eps.iter().map(|e| Names::endpoint(sp, e)).collect();
        if sp.affinity_timeout.is_some() {
            for (chain, set) in &chains {
                rules.push(format!("ip saddr @{set} goto {chain}"));
            }
        }
        let mut vmap = String::new();
        for (i, (chain, _)) in chains.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(vmap, "{sep}{i} : goto {chain}");
        }
        rules.push(format!(
            "numgen random mod {} vmap {{ {vmap} }}",
            chains.len()
        ));
        self.chains.insert(name.to_string(), rules);
    }

    fn endpoint_chain(&mut self, sp: &ServicePort, ep: &Endpoint) {
        let (chain, set) = Names::endpoint(sp, ep);
        if self.chains.contains_key(&chain) {
            return;
        }
        let mut rules = vec![format!("ip saddr {} jump mark-for-masquerade", ep.ip)];
        if let Some(timeout) = sp.affinity_timeout {
            self.sets.insert(
                set.clone(),
                format!("{{ type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ; }}"),
            );
            rules.push(format!("update @{set} {{ ip saddr }}"));
        }
        rules.push(format!(
            "meta l4proto {} dnat to {}:{}",
            sp.id.protocol.as_str(),
            ep.ip,
            ep.port
        ));
        self.chains.insert(chain, rules);
    }

    fn add_port(&mut self, sp: &ServicePort, masq: &Networks) {
        let names = Names::new(sp);
        let cat = sp.categorize();
        let proto = sp.id.protocol.as_str();
        for ep in cat.cluster.iter().chain(&cat.local) {
            self.endpoint_chain(sp, ep);
        }
        let service = (!cat.cluster.is_empty()).then(|| {
            self.balance_chain(&names.service, sp, &cat.cluster, masq);
            names.service.clone()
        });
        let local = (!cat.local.is_empty()).then(|| {
            self.balance_chain(&names.local, sp, &cat.local, masq);
            names.local.clone()
        });
        // With no usable endpoint: reject when the Service has none at all, drop
        // when it has some, only not for this traffic here.
        let none = if cat.any { "drop" } else { "goto reject-chain" };

        let internal = if sp.internal_local { &local } else { &service };
        for ip in &sp.cluster_ips {
            self.element(CLUSTER_IPS, ip.to_string(), "");
            let key = format!("{ip} . {proto} . {}", sp.port);
            match internal {
                Some(chain) => self.element(SERVICE_IPS, key, format!("goto {chain}")),
                None => self.element(NO_ENDPOINT_SERVICES, key, none),
            }
        }

        if !sp.externally_accessible() {
            return;
        }
        let target = if sp.external_local { &local } else { &service };
        let verdict = match target {
            Some(target) => {
                let mut rules = Vec::new();
                if !sp.external_local {
                    // Endpoints may be on other nodes: replies must come back here.
                    rules.push("jump mark-for-masquerade".to_string());
                } else {
                    // Local endpoints keep the client's address. Pods and this host
                    // reaching an external address are served like cluster traffic
                    // (as if they went out and came back through a load balancer);
                    // the host's own packets carry a node address and are
                    // masqueraded.
                    if let (Some(cidr), Some(service)) = (masq.cluster_cidr, &service) {
                        rules.push(format!("ip saddr {cidr} goto {service}"));
                    }
                    rules.push("fib saddr type local jump mark-for-masquerade".to_string());
                    if let Some(service) = &service {
                        rules.push(format!("fib saddr type local goto {service}"));
                    }
                }
                rules.push(format!("goto {target}"));
                self.chains.insert(names.external.clone(), rules);
                format!("goto {}", names.external)
            }
            None => none.to_string(),
        };
        let (ips_map, ports_map) = if target.is_some() {
            (SERVICE_IPS, SERVICE_NODEPORTS)
        } else {
            (NO_ENDPOINT_SERVICES, NO_ENDPOINT_NODEPORTS)
        };
        // Load-balancer addresses with source ranges: other clients are dropped.
        let firewalled = target.is_some() && !sp.source_ranges.is_empty();
        if firewalled {
            let ranges: Vec<String> = sp.source_ranges.iter().map(|r| r.to_string()).collect();
            self.chains.insert(
                names.firewall.clone(),
                vec![
                    format!("ip saddr {{ {} }} {verdict}", ranges.join(", ")),
                    "drop".to_string(),
                ],
            );
        }
        for ip in &sp.external_ips {
            let verdict = if firewalled && sp.load_balancer_ips.contains(ip) {
                format!("goto {}", names.firewall)
            } else {
                verdict.clone()
            };
            self.element(ips_map, format!("{ip} . {proto} . {}", sp.port), verdict);
        }
        if let Some(np) = sp.node_port {
            self.element(ports_map, format!("{proto} . {np}"), &verdict);
        }
    }
}

/// The fixed part of the table: base chains, maps and the chains they jump to.
fn base(out: &mut String, nets: &Networks) {
    let t = format!("ip {TABLE}");
    let mut lines = vec![
        format!("add chain {t} nat-prerouting {{ type nat hook prerouting priority dstnat ; }}"),
        format!("add rule {t} nat-prerouting jump services"),
        format!("add chain {t} nat-output {{ type nat hook output priority -100 ; }}"),
        format!("add rule {t} nat-output jump services"),
        format!("add chain {t} nat-postrouting {{ type nat hook postrouting priority srcnat ; }}"),
        format!("add rule {t} nat-postrouting jump masquerading"),
        format!("add chain {t} masquerading"),
        format!("add rule {t} masquerading meta mark & {MASQUERADE_MARK:#x} == 0 return"),
        format!("add rule {t} masquerading meta mark set meta mark ^ {MASQUERADE_MARK:#x}"),
        format!("add rule {t} masquerading masquerade fully-random"),
        format!("add chain {t} mark-for-masquerade"),
        format!("add rule {t} mark-for-masquerade meta mark set meta mark | {MASQUERADE_MARK:#x}"),
        format!("add map {t} {SERVICE_IPS} {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}"),
        format!("add map {t} {SERVICE_NODEPORTS} {{ type inet_proto . inet_service : verdict ; }}"),
        format!("add map {t} {NO_ENDPOINT_SERVICES} {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}"),
        format!("add map {t} {NO_ENDPOINT_NODEPORTS} {{ type inet_proto . inet_service : verdict ; }}"),
        format!("add set {t} {CLUSTER_IPS} {{ type ipv4_addr ; }}"),
        format!("add chain {t} services"),
        format!("add rule {t} services ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
        format!("add rule {t} services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"),
        format!("add chain {t} reject-chain"),
        format!("add rule {t} reject-chain reject"),
        format!("add chain {t} service-endpoints-check"),
        format!("add rule {t} service-endpoints-check ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}"),
        format!("add chain {t} nodeport-endpoints-check"),
        format!("add rule {t} nodeport-endpoints-check fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"),
        format!("add chain {t} cluster-ips-check"),
        format!("add rule {t} cluster-ips-check ip daddr @{CLUSTER_IPS} reject"),
        format!("add chain {t} filter-input {{ type filter hook input priority -110 ; }}"),
        format!("add rule {t} filter-input ct state new jump nodeport-endpoints-check"),
        format!("add rule {t} filter-input ct state new jump service-endpoints-check"),
        format!("add chain {t} filter-forward {{ type filter hook forward priority -110 ; }}"),
        format!("add rule {t} filter-forward ct state new jump service-endpoints-check"),
        format!("add rule {t} filter-forward ct state new jump cluster-ips-check"),
        format!("add chain {t} filter-output {{ type filter hook output priority -110 ; }}"),
        format!("add rule {t} filter-output ct state new jump service-endpoints-check"),
        // After DNAT: what still goes to a cluster IP went to a port it does not serve.
        format!("add chain {t} filter-output-post-dnat {{ type filter hook output priority -90 ; }}"),
        format!("add rule {t} filter-output-post-dnat ct state new jump cluster-ips-check"),
    ];
    if let Some(range) = nets.service_cidr {
        lines.push(format!(
            "add rule {t} cluster-ips-check ip daddr {range} drop"
        ));
    }
    // Every object is declared before any rule refers to it.
    let (rules, decls): (Vec<String>, Vec<String>) =
        lines.into_iter().partition(|l| l.starts_with("add rule"));
    for l in decls.iter().chain(&rules) {
        out.push_str(l);
        out.push('\n');
    }
}

fn element_text(key: &str, value: &str) -> String {
    if value.is_empty() {
        key.to_string()
    } else {
        format!("{key} : {value}")
    }
}

/// The transaction that replaces whatever table is there with `rs`.
pub fn full_transaction(rs: &Ruleset, nets: &Networks) -> String {
    let t = format!("ip {TABLE}");
    let mut out = String::new();
    // Adding first makes the delete succeed when no table exists yet.
    let _ = writeln!(out, "add table {t}");
    let _ = writeln!(out, "delete table {t}");
    let _ = writeln!(
        out,
        "add table {t} {{ comment \"rules for kube-proxy\" ; }}"
    );
    base(&mut out, nets);
    for (name, decl) in &rs.sets {
        let _ = writeln!(out, "add set {t} {name} {decl}");
    }
    for name in rs.chains.keys() {
        let _ = writeln!(out, "add chain {t} {name}");
    }
    for (name, rules) in &rs.chains {
        for r in rules {
            let _ = writeln!(out, "add rule {t} {name} {r}");
        }
    }
    for (map, elems) in &rs.elements {
        for (k, v) in elems {
            let _ = writeln!(out, "add element {t} {map} {{ {} }}", element_text(k, v));
        }
    }
    out
}

/// The transaction that turns `old` (what the kernel holds) into `new`, touching only
/// what differs; `None` when nothing does. Order matters within it: new objects
/// are declared before anything refers to them, changed chains are rewritten and
/// map elements updated before the chains and sets nothing refers to any more are
/// removed.
pub fn diff_transaction(old: &Ruleset, new: &Ruleset) -> Option<String> {
    let t = format!("ip {TABLE}");
    let mut out = String::new();
    for (name, decl) in &new.sets {
        if !old.sets.contains_key(name) {
            let _ = writeln!(out, "add set {t} {name} {decl}");
        }
    }
    for name in new.chains.keys() {
        if !old.chains.contains_key(name) {
            let _ = writeln!(out, "add chain {t} {name}");
        }
    }
    for (name, rules) in &new.chains {
        match old.chains.get(name) {
            Some(old_rules) if old_rules == rules => {}
            Some(_) => {
                let _ = writeln!(out, "flush chain {t} {name}");
                for r in rules {
                    let _ = writeln!(out, "add rule {t} {name} {r}");
                }
            }
            None => {
                for r in rules {
                    let _ = writeln!(out, "add rule {t} {name} {r}");
                }
            }
        }
    }
    let empty = BTreeMap::new();
    let maps: BTreeSet<&'static str> = old
        .elements
        .keys()
        .chain(new.elements.keys())
        .copied()
        .collect();
    for map in maps {
        let (o, n) = (
            old.elements.get(map).unwrap_or(&empty),
            new.elements.get(map).unwrap_or(&empty),
        );
        for (k, v) in o {
            if n.get(k) != Some(v) {
                let _ = writeln!(out, "delete element {t} {map} {{ {k} }}");
            }
        }
        for (k, v) in n {
            if o.get(k) != Some(v) {
                let _ = writeln!(out, "add element {t} {map} {{ {} }}", element_text(k, v));
            }
        }
    }
    let stale: Vec<&String> = old
        .chains
        .keys()
        .filter(|c| !new.chains.contains_key(*c))
        .collect();
    for name in &stale {
        let _ = writeln!(out, "flush chain {t} {name}");
    }
    for name in &stale {
        let _ = writeln!(out, "delete chain {t} {name}");
    }
    for name in old.sets.keys() {
        if !new.sets.contains_key(name) {
            let _ = writeln!(out, "delete set {t} {name}");
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Failure to apply a transaction.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("running {0}: {1}")]
    Spawn(String, std::io::Error),
    #[error("nft rejected the transaction: {0}")]
    Rejected(String),
}

/// Applies transactions with the `nft` command and remembers what the kernel holds.
pub struct Nftables {
    nft: PathBuf,
    networks: Networks,
    applied: Option<Ruleset>,
}

/// What one sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    /// Nothing differed.
    Unchanged,
    /// Only what changed was written.
    Partial,
    /// The whole table was written.
    Full,
}

impl Nftables {
    /// Applies rules with the `nft` command at `nft`, for a cluster of `networks`.
    pub fn new(nft: impl Into<PathBuf>, networks: Networks) -> Nftables {
        Nftables {
            nft: nft.into(),
            networks,
            applied: None,
        }
    }

    /// Runs one transaction.
    pub async fn run(&self, script: &str) -> Result<(), NftError> {
        self.nft_tool(&["-f", "-"], Some(script)).await
    }

    /// Whether nftables works here: the `nft` command runs and the kernel answers
    /// it (a kernel without nf_tables refuses the request).
    pub async fn available(&self) -> Result<(), NftError> {
        self.nft_tool(&["list", "tables"], None).await
    }

    async fn nft_tool(&self, args: &[&str], input: Option<&str>) -> Result<(), NftError> {
        match crate::tool::run(&self.nft, args, input).await {
            Ok(_) => Ok(()),
            Err(ToolError::Spawn(e)) => Err(NftError::Spawn(self.nft.display().to_string(), e)),
            Err(ToolError::Failed(msg)) => Err(NftError::Rejected(msg)),
        }
    }

    /// Makes the next sync write everything, whatever the kernel was last given.
    pub fn force_full(&mut self) {
        self.applied = None;
    }

    /// Brings the kernel to `rs`: the whole table the first time and after a failure,
    /// only the differences otherwise.
    pub async fn sync(&mut self, rs: Ruleset) -> Result<SyncKind, NftError> {
        let (script, kind) = match &self.applied {
            Some(old) => match diff_transaction(old, &rs) {
                Some(s) => (s, SyncKind::Partial),
                None => return Ok(SyncKind::Unchanged),
            },
            None => (full_transaction(&rs, &self.networks), SyncKind::Full),
        };
        // Until it succeeds, the kernel's state is unknown: the next sync is full.
        self.applied = None;
        self.run(&script).await?;
        self.applied = Some(rs);
        Ok(kind)
    }

    /// Removes the table (`--cleanup`).
    pub async fn cleanup(&mut self) -> Result<(), NftError> {
        self.applied = None;
        self.run(&format!("add table ip {TABLE}\ndelete table ip {TABLE}\n"))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{ep, networks as masq, port};
    use std::net::Ipv4Addr;

    #[test]
    fn cluster_ip_balances_over_endpoint_chains() {
        let rs = Ruleset::build(&[port("web", vec![ep(5, true), ep(6, false)])], &masq());
        let svc = rs
            .chains
            .keys()
            .find(|c| c.starts_with("service-"))
            .unwrap();
        assert!(svc.ends_with("-default/web/tcp/http"), "{svc}");
        let rules = &rs.chains[svc];
        assert_eq!(
            rules[0],
            "ip daddr 10.43.0.10 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade"
        );
        assert!(rules[1].starts_with("numgen random mod 2 vmap { 0 : goto endpoint-"));
        let eps: Vec<_> = rs
            .chains
            .keys()
            .filter(|c| c.starts_with("endpoint-"))
            .collect();
        assert_eq!(eps.len(), 2);
        assert_eq!(
            rs.chains[eps[0]],
            [
                "ip saddr 10.42.0.5 jump mark-for-masquerade",
                "meta l4proto tcp dnat to 10.42.0.5:8080"
            ]
        );
        assert_eq!(
            rs.elements[SERVICE_IPS]["10.43.0.10 . tcp . 80"],
            format!("goto {svc}")
        );
        assert!(rs.elements[CLUSTER_IPS].contains_key("10.43.0.10"));
        assert!(rs.elements[NO_ENDPOINT_SERVICES].is_empty());
    }

    #[test]
    fn no_endpoints_rejects_and_elsewhere_only_drops() {
        let rs = Ruleset::build(&[port("web", vec![])], &masq());
        assert!(rs.chains.is_empty());
        assert_eq!(
            rs.elements[NO_ENDPOINT_SERVICES]["10.43.0.10 . tcp . 80"],
            "goto reject-chain"
        );
        let mut p = port("web", vec![ep(5, false)]);
        p.internal_local = true;
        let rs = Ruleset::build(&[p], &masq());
        assert_eq!(
            rs.elements[NO_ENDPOINT_SERVICES]["10.43.0.10 . tcp . 80"],
            "drop"
        );
        assert!(rs.elements[SERVICE_IPS].is_empty());
    }

    #[test]
    fn node_ports_and_external_policy() {
        let mut p = port("web", vec![ep(5, true), ep(6, false)]);
        p.node_port = Some(30080);
        p.external_ips = vec![Ipv4Addr::new(192, 0, 2, 1)];
        let rs = Ruleset::build(std::slice::from_ref(&p), &masq());
        let ext = rs
            .chains
            .keys()
            .find(|c| c.starts_with("external-"))
            .unwrap();
        let svc = rs
            .chains
            .keys()
            .find(|c| c.starts_with("service-"))
            .unwrap();
        assert_eq!(
            rs.chains[ext],
            [
                "jump mark-for-masquerade".to_string(),
                format!("goto {svc}")
            ]
        );
        assert_eq!(
            rs.elements[SERVICE_NODEPORTS]["tcp . 30080"],
            format!("goto {ext}")
        );
        assert_eq!(
            rs.elements[SERVICE_IPS]["192.0.2.1 . tcp . 80"],
            format!("goto {ext}")
        );

        p.external_local = true;
        let rs = Ruleset::build(std::slice::from_ref(&p), &masq());
        let local = rs.chains.keys().find(|c| c.starts_with("local-")).unwrap();
        assert!(rs.chains[local].last().unwrap().contains("mod 1 vmap"));
        assert_eq!(rs.chains[ext].last().unwrap(), &format!("goto {local}"));
        assert_eq!(
            rs.chains[ext][0],
            format!("ip saddr 10.42.0.0/16 goto {svc}")
        );

        // Local policy on a node without local endpoints: external traffic dropped,
        // cluster IP still served.
        p.endpoints = vec![ep(6, false)];
        let rs = Ruleset::build(&[p], &masq());
        assert_eq!(rs.elements[NO_ENDPOINT_NODEPORTS]["tcp . 30080"], "drop");
        assert_eq!(
            rs.elements[NO_ENDPOINT_SERVICES]["192.0.2.1 . tcp . 80"],
            "drop"
        );
        assert!(rs.elements[SERVICE_IPS].contains_key("10.43.0.10 . tcp . 80"));
    }

    #[test]
    fn affinity_pins_clients_through_sets() {
        let mut p = port("web", vec![ep(5, true)]);
        p.affinity_timeout = Some(60);
        let rs = Ruleset::build(&[p], &masq());
        let (set, decl) = rs.sets.iter().next().unwrap();
        assert!(decl.contains("timeout 60s"));
        let svc = rs
            .chains
            .keys()
            .find(|c| c.starts_with("service-"))
            .unwrap();
        assert!(rs.chains[svc][1].starts_with(&format!("ip saddr @{set} goto endpoint-")));
        let epc = rs
            .chains
            .keys()
            .find(|c| c.starts_with("endpoint-"))
            .unwrap();
        assert_eq!(rs.chains[epc][1], format!("update @{set} {{ ip saddr }}"));
    }

    #[test]
    fn diff_touches_only_what_changed() {
        let a = port("a", vec![ep(5, true), ep(6, true)]);
        let b = port("b", vec![ep(7, true)]);
        let mut b2 = b.clone();
        b2.cluster_ips = vec![Ipv4Addr::new(10, 43, 0, 11)];
        let old = Ruleset::build(&[a.clone(), b2.clone()], &masq());
        assert_eq!(diff_transaction(&old, &old), None);

        // One endpoint of `a` goes: a's service chain is rewritten, its endpoint chain
        // removed after; b is not mentioned.
        let mut a2 = a.clone();
        a2.endpoints.pop();
        let new = Ruleset::build(&[a2, b2], &masq());
        let tx = diff_transaction(&old, &new).unwrap();
        assert!(!tx.contains("/b/"), "{tx}");
        let lines: Vec<&str> = tx.lines().collect();
        assert!(
            lines[0].starts_with("flush chain ip kube-proxy service-"),
            "{tx}"
        );
        assert!(lines[1].contains("jump mark-for-masquerade"), "{tx}");
        assert!(lines[2].contains("mod 1 vmap { 0 : goto endpoint-"), "{tx}");
        assert!(
            lines[3].starts_with("flush chain ip kube-proxy endpoint-"),
            "{tx}"
        );
        assert!(
            lines[4].starts_with("delete chain ip kube-proxy endpoint-"),
            "{tx}"
        );
        assert_eq!(lines.len(), 5, "{tx}");
    }

    #[test]
    fn full_transaction_replaces_the_table() {
        let rs = Ruleset::build(&[port("a", vec![ep(5, true)])], &masq());
        let tx = full_transaction(&rs, &masq());
        assert!(tx.starts_with("add table ip kube-proxy\ndelete table ip kube-proxy\n"));
        assert!(tx.contains(
            "add element ip kube-proxy service-ips { 10.43.0.10 . tcp . 80 : goto service-"
        ));
        assert!(tx.contains("add element ip kube-proxy cluster-ips { 10.43.0.10 }"));
        assert!(tx.contains("add rule ip kube-proxy cluster-ips-check ip daddr 10.43.0.0/16 drop"));
    }
}
