//! The iptables data path: Service ports rendered as the chains upstream's iptables
//! proxy makes in the `nat` and `filter` tables (same names and layout, so
//! `iptables-save` reads the same), applied with `iptables-restore --noflush` so that
//! rules of other programs stay untouched. Works with either backend of Debian's
//! iptables (`iptables-nft`, the default, or `iptables-legacy`).
//!
//! Shape:
//! - `nat` `PREROUTING` and `OUTPUT` jump to `KUBE-SERVICES`, which matches each
//!   cluster IP and external address with its port and jumps to the port's
//!   `KUBE-SVC-…` chain (or `KUBE-SVL-…` under an internal Local policy, or
//!   `KUBE-EXT-…` for external addresses); its last rule sends local destinations
//!   to `KUBE-NODEPORTS`, which matches node ports;
//! - `KUBE-SVC-…` (all endpoints) and `KUBE-SVL-…` (this node's) pick an endpoint
//!   with `statistic` (or the one a client is pinned to with `recent`), and each
//!   `KUBE-SEP-…` DNATs to its endpoint;
//! - `KUBE-EXT-…` applies the external traffic policy;
//! - packets marked 0x4000 by `KUBE-MARK-MASQ` are masqueraded in `KUBE-POSTROUTING`;
//! - `filter` `KUBE-SERVICES` and `KUBE-EXTERNAL-SERVICES` reject new connections to
//!   ports without endpoints (drop them when endpoints exist only elsewhere under
//!   a Local policy), and `KUBE-FORWARD` accepts forwarded Service traffic.
//!
//! The decisions (which endpoints, which verdict) are the ones the nftables mode
//! makes, from the same [`crate::model`]. A sync after the first writes only the
//! chains that changed and adds or deletes single rules of the shared chains.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::tool::ToolError;
use sha2::{Digest, Sha256};

use crate::model::{Endpoint, Networks, ServicePort, ServicePortName};
pub use crate::nftables::SyncKind;

/// The packet mark asking for masquerade (upstream's `--iptables-masquerade-bit` 14).
pub const MASQUERADE_MARK: u32 = 0x4000;

/// The chains every sync may change rule by rule, in the `nat` table.
pub const NAT_SERVICES: &str = "KUBE-SERVICES";
pub const NAT_NODEPORTS: &str = "KUBE-NODEPORTS";
/// In the `filter` table.
pub const FILTER_SERVICES: &str = "KUBE-SERVICES";
pub const FILTER_EXTERNAL: &str = "KUBE-EXTERNAL-SERVICES";
/// Drops what `KUBE-FW-` chains did not let through to a load-balancer address.
pub const FILTER_FIREWALL: &str = "KUBE-PROXY-FIREWALL";

const MARK_MASQ: &str = "KUBE-MARK-MASQ";
const POSTROUTING: &str = "KUBE-POSTROUTING";
const FORWARD: &str = "KUBE-FORWARD";

/// Prefixes of the chains that belong to one Service port or endpoint.
/// `KUBE-XLB-` and `KUBE-FW-` are older upstream versions' chains, removed when found.
const PORT_CHAIN_PREFIXES: [&str; 6] = [
    "KUBE-SVC-",
    "KUBE-SVL-",
    "KUBE-EXT-",
    "KUBE-SEP-",
    "KUBE-FW-",
    "KUBE-XLB-",
];

/// The chains of each table this proxy owns outright (flushed and rewritten on a
/// full sync, deleted by `--cleanup`).
const NAT_CHAINS: [&str; 4] = [NAT_SERVICES, NAT_NODEPORTS, POSTROUTING, MARK_MASQ];
const FILTER_CHAINS: [&str; 4] = [FILTER_SERVICES, FILTER_EXTERNAL, FILTER_FIREWALL, FORWARD];

/// The rules in built-in chains that lead to this proxy's chains:
/// (table, built-in chain, rule). Present once each.
const JUMPS: [(&str, &str, &str); 11] = [
    (
        "filter",
        "INPUT",
        "-m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
    ),
    (
        "filter",
        "FORWARD",
        "-m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
    ),
    (
        "filter",
        "OUTPUT",
        "-m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL",
    ),
    (
        "nat",
        "PREROUTING",
        "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    ),
    (
        "nat",
        "OUTPUT",
        "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    ),
    (
        "nat",
        "POSTROUTING",
        "-m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
    ),
    (
        "filter",
        "INPUT",
        "-m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
    ),
    (
        "filter",
        "FORWARD",
        "-m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD",
    ),
    (
        "filter",
        "FORWARD",
        "-m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    ),
    (
        "filter",
        "FORWARD",
        "-m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
    ),
    (
        "filter",
        "OUTPUT",
        "-m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    ),
];

/// What one table holds that depends on Services.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableRules {
    /// Chains of one Service port or endpoint: rewritten whole when they change.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Rules of the shared chains, whose order does not matter: added and deleted
    /// one by one.
    pub shared: BTreeMap<&'static str, BTreeSet<String>>,
}

impl TableRules {
    fn new(shared: &[&'static str]) -> TableRules {
        TableRules {
            chains: BTreeMap::new(),
            shared: shared.iter().map(|c| (*c, BTreeSet::new())).collect(),
        }
    }

    fn share(&mut self, chain: &'static str, rule: String) {
        self.shared.entry(chain).or_default().insert(rule);
    }
}

/// Everything that depends on Services, in both tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    pub nat: TableRules,
    pub filter: TableRules,
}

/// Upstream's name of a Service port: `namespace/name:port`, without the colon
/// when the port has no name.
pub fn port_name(id: &ServicePortName) -> String {
    if id.port.is_empty() {
        format!("{}/{}", id.namespace, id.name)
    } else {
        format!("{}/{}:{}", id.namespace, id.name, id.port)
    }
}

/// The 16 characters upstream appends to a chain prefix: the first 80 bits of the
/// SHA-256 of `s`, in base32 (RFC 4648 alphabet).
fn hash16(s: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let d = Sha256::digest(s.as_bytes());
    let mut out = String::with_capacity(16);
    // 10 bytes are exactly 16 characters of 5 bits.
    for group in d[..10].chunks(5) {
        let bits = group.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        for i in (0..8).rev() {
            out.push(ALPHABET[((bits >> (i * 5)) & 31) as usize] as char);
        }
    }
    out
}

/// Names of one Service port's chains, as upstream derives them.
struct Names {
    /// `namespace/name:port`, for comments.
    port: String,
    service: String,
    local: String,
    external: String,
    firewall: String,
}

impl Names {
    fn new(sp: &ServicePort) -> Names {
        let port = port_name(&sp.id);
        let h = hash16(&format!("{port}{}", sp.id.protocol.as_str()));
        Names {
            service: format!("KUBE-SVC-{h}"),
            local: format!("KUBE-SVL-{h}"),
            external: format!("KUBE-EXT-{h}"),
            firewall: format!("KUBE-FW-{h}"),
            port,
        }
    }

    fn endpoint(&self, sp: &ServicePort, ep: &Endpoint) -> String {
        let h = hash16(&format!(
            "{}{}{}:{}",
            self.port,
            sp.id.protocol.as_str(),
            ep.ip,
            ep.port
        ));
        format!("KUBE-SEP-{h}")
    }
}

impl Rules {
    /// The rules for these Service ports.
    pub fn build(ports: &[ServicePort], nets: &Networks) -> Rules {
        let mut rules = Rules {
            nat: TableRules::new(&[NAT_SERVICES, NAT_NODEPORTS]),
            filter: TableRules::new(&[FILTER_SERVICES, FILTER_EXTERNAL, FILTER_FIREWALL]),
        };
        for sp in ports {
            rules.add_port(sp, nets);
        }
        rules
    }

    /// A chain choosing among `eps`: the client's pinned endpoint first when
    /// affinity is on, then one at random, each with equal chance.
    fn balance_chain(
        &mut self,
        chain: &str,
        names: &Names,
        sp: &ServicePort,
        eps: &[&Endpoint],
        nets: &Networks,
    ) {
        let p = sp.id.protocol.as_str();
        let mut rules = Vec::new();
        for ip in &sp.cluster_ips {
            let dest = format!(
                "-d {ip}/32 -p {p} -m comment --comment \"{} cluster IP\" -m {p} --dport {} -j {MARK_MASQ}",
                names.port, sp.port
            );
            if nets.all {
                rules.push(dest);
            } else if let Some(cidr) = nets.cluster_cidr {
                rules.push(format!("! -s {cidr} {dest}"));
            }
        }
        let seps: Vec<String> = eps.iter().map(|e| names.endpoint(sp, e)).collect();
        if let Some(timeout) = sp.affinity_timeout {
            for (sep, ep) in seps.iter().zip(eps) {
                rules.push(format!(
                    "-m comment --comment \"{} -> {}:{}\" -m recent --name {sep} --rcheck --seconds {timeout} --reap -j {sep}",
                    names.port, ep.ip, ep.port
                ));
            }
        }
        let n = seps.len();
        for (i, (sep, ep)) in seps.iter().zip(eps).enumerate() {
            let comment = format!(
                "-m comment --comment \"{} -> {}:{}\"",
                names.port, ep.ip, ep.port
            );
            if i + 1 < n {
                rules.push(format!(
                    "{comment} -m statistic --mode random --probability {:.10} -j {sep}",
                    1.0 / (n - i) as f64
                ));
            } else {
                rules.push(format!("{comment} -j {sep}"));
            }
        }
        self.nat.chains.insert(chain.to_string(), rules);
    }

    fn endpoint_chain(&mut self, names: &Names, sp: &ServicePort, ep: &Endpoint) {
        let chain = names.endpoint(sp, ep);
        if self.nat.chains.contains_key(&chain) {
            return;
        }
        let p = sp.id.protocol.as_str();
        let comment = format!("-m comment --comment \"{}\"", names.port);
        let recent = match sp.affinity_timeout {
            Some(_) => format!(" -m recent --name {chain} --set --rsource"),
            None => String::new(),
        };
        let rules = vec![
            format!("-s {}/32 {comment} -j {MARK_MASQ}", ep.ip),
            format!(
                "-p {p} {comment}{recent} -m {p} -j DNAT --to-destination {}:{}",
                ep.ip, ep.port
            ),
        ];
        self.nat.chains.insert(chain, rules);
    }

    fn add_port(&mut self, sp: &ServicePort, nets: &Networks) {
        let names = Names::new(sp);
        let cat = sp.categorize();
        let p = sp.id.protocol.as_str();
        for ep in cat.cluster.iter().chain(&cat.local) {
            self.endpoint_chain(&names, sp, ep);
        }
        let service = (!cat.cluster.is_empty()).then(|| {
            self.balance_chain(&names.service, &names, sp, &cat.cluster, nets);
            names.service.clone()
        });
        let local = (!cat.local.is_empty()).then(|| {
            self.balance_chain(&names.local, &names, sp, &cat.local, nets);
            names.local.clone()
        });
        // With no usable endpoint: reject when the Service has none at all, drop
        // when it has some, only not for this traffic here.
        let (none, why) = if cat.any {
            ("DROP", "has no local endpoints")
        } else {
            ("REJECT", "has no endpoints")
        };

        let internal = if sp.internal_local { &local } else { &service };
        for ip in &sp.cluster_ips {
            match internal {
                Some(chain) => self.nat.share(
                    NAT_SERVICES,
                    format!(
                        "-d {ip}/32 -p {p} -m comment --comment \"{} cluster IP\" -m {p} --dport {} -j {chain}",
                        names.port, sp.port
                    ),
                ),
                None => self.filter.share(
                    FILTER_SERVICES,
                    format!(
                        "-d {ip}/32 -p {p} -m comment --comment \"{} {why}\" -m {p} --dport {} -j {none}",
                        names.port, sp.port
                    ),
                ),
            }
        }

        if !sp.externally_accessible() {
            return;
        }
        let target = if sp.external_local { &local } else { &service };
        let Some(target) = target else {
            for ip in &sp.external_ips {
                self.filter.share(
                    FILTER_EXTERNAL,
                    format!(
                        "-d {ip}/32 -p {p} -m comment --comment \"{} {why}\" -m {p} --dport {} -j {none}",
                        names.port, sp.port
                    ),
                );
            }
            if let Some(np) = sp.node_port {
                self.filter.share(
                    FILTER_EXTERNAL,
                    format!(
                        "! -d 127.0.0.0/8 -p {p} -m comment --comment \"{} {why}\" -m addrtype --dst-type LOCAL -m {p} --dport {np} -j {none}",
                        names.port
                    ),
                );
            }
            return;
        };
        let mut rules = Vec::new();
        let masq = format!(
            "-m comment --comment \"masquerade traffic for {} external destinations\"",
            names.port
        );
        if !sp.external_local {
            // Endpoints may be on other nodes: replies must come back here.
            rules.push(format!("{masq} -j {MARK_MASQ}"));
        } else {
            // Local endpoints keep the client's address. Pods and this host reaching
            // an external address are served like cluster traffic; the host's own
            // packets carry a node address and are masqueraded.
            if let (Some(cidr), Some(service)) = (nets.cluster_cidr, &service) {
                rules.push(format!(
                    "-s {cidr} -m comment --comment \"pod traffic for {} external destinations\" -j {service}",
                    names.port
                ));
            }
            rules.push(format!(
                "{masq} -m addrtype --src-type LOCAL -j {MARK_MASQ}"
            ));
            if let Some(service) = &service {
                rules.push(format!(
                    "-m comment --comment \"route LOCAL traffic for {} external destinations\" -m addrtype --src-type LOCAL -j {service}",
                    names.port
                ));
            }
        }
        rules.push(format!("-j {target}"));
        self.nat.chains.insert(names.external.clone(), rules);
        // Load-balancer addresses with source ranges go through KUBE-FW-, which
        // lets the allowed clients on; the others are not translated and the
        // filter table's KUBE-PROXY-FIREWALL drops them.
        let firewalled = !sp.source_ranges.is_empty();
        if firewalled {
            let rules = sp
                .source_ranges
                .iter()
                .map(|r| {
                    format!(
                        "-s {r} -m comment --comment \"{} loadbalancer IP\" -j {}",
                        names.port, names.external
                    )
                })
                .collect();
            self.nat.chains.insert(names.firewall.clone(), rules);
        }
        for ip in &sp.external_ips {
            let (kind, chain) = if firewalled && sp.load_balancer_ips.contains(ip) {
                self.filter.share(
                    FILTER_FIREWALL,
                    format!(
                        "-d {ip}/32 -p {p} -m comment --comment \"{} traffic not accepted by {}\" -m {p} --dport {} -j DROP",
                        names.port, names.firewall, sp.port
                    ),
                );
                ("loadbalancer IP", &names.firewall)
            } else {
                ("external IP", &names.external)
            };
            self.nat.share(
                NAT_SERVICES,
                format!(
                    "-d {ip}/32 -p {p} -m comment --comment \"{} {kind}\" -m {p} --dport {} -j {chain}",
                    names.port, sp.port
                ),
            );
        }
        if let Some(np) = sp.node_port {
            self.nat.share(
                NAT_NODEPORTS,
                format!(
                    "-p {p} -m comment --comment \"{}\" -m {p} --dport {np} -j {}",
                    names.port, names.external
                ),
            );
        }
    }
}

/// The fixed rules of the chains this proxy owns in `table`, besides the shared
/// rules (written after them, except in `nat` `KUBE-SERVICES`, whose node-port rule
/// must come last and shared rules are inserted before it).
fn fixed_rules(table: &str) -> Vec<(&'static str, String)> {
    match table {
        "nat" => vec![
            (MARK_MASQ, format!("-j MARK --or-mark {MASQUERADE_MARK:#x}")),
            (
                POSTROUTING,
                format!("-m mark ! --mark {MASQUERADE_MARK:#x}/{MASQUERADE_MARK:#x} -j RETURN"),
            ),
            (POSTROUTING, format!("-j MARK --xor-mark {MASQUERADE_MARK:#x}")),
            (
                POSTROUTING,
                "-m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully".to_string(),
            ),
            (
                NAT_SERVICES,
                "-m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS".to_string(),
            ),
        ],
        _ => vec![
            (
                FORWARD,
                format!(
                    "-m comment --comment \"kubernetes forwarding rules\" -m mark --mark {MASQUERADE_MARK:#x}/{MASQUERADE_MARK:#x} -j ACCEPT"
                ),
            ),
            (
                FORWARD,
                "-m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT".to_string(),
            ),
        ],
    }
}

/// What `iptables-save` shows of this proxy's state in one table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Existing {
    /// Chains whose names this proxy uses.
    pub chains: BTreeSet<String>,
    /// Rules of built-in chains that jump to this proxy's chains, as `iptables-save`
    /// prints them (`-A CHAIN …`).
    pub jumps: Vec<String>,
}

fn ours(chain: &str) -> bool {
    NAT_CHAINS.contains(&chain)
        || FILTER_CHAINS.contains(&chain)
        || PORT_CHAIN_PREFIXES.iter().any(|p| chain.starts_with(p))
}

/// Reads `iptables-save` output: per table, the chains and jumps of this proxy.
pub fn parse_save(save: &str) -> BTreeMap<String, Existing> {
    let mut out: BTreeMap<String, Existing> = BTreeMap::new();
    let mut table = String::new();
    for line in save.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.trim().to_string();
            out.entry(table.clone()).or_default();
        } else if let Some(decl) = line.strip_prefix(':') {
            let name = decl.split_whitespace().next().unwrap_or_default();
            if ours(name) {
                out.entry(table.clone())
                    .or_default()
                    .chains
                    .insert(name.to_string());
            }
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let chain = rule.split_whitespace().next().unwrap_or_default();
            let builtin = chain.chars().all(|c| c.is_ascii_uppercase());
            let target = rule.rsplit_once(" -j ").map(|(_, t)| t.trim());
            if builtin && !ours(chain) && target.is_some_and(ours) {
                out.entry(table.clone())
                    .or_default()
                    .jumps
                    .push(line.to_string());
            }
        }
    }
    out
}

/// The `iptables-restore --noflush` input that replaces this proxy's rules with
/// `rules`, given what is there now: every chain of ours is flushed and refilled,
/// chains no longer needed are deleted, and missing jumps from built-in chains
/// are added.
pub fn full_restore(rules: &Rules, existing: &BTreeMap<String, Existing>) -> String {
    let mut out = String::new();
    for (table, tr, owned) in [
        ("nat", &rules.nat, &NAT_CHAINS[..]),
        ("filter", &rules.filter, &FILTER_CHAINS[..]),
    ] {
        let none = Existing::default();
        let there = existing.get(table).unwrap_or(&none);
        let _ = writeln!(out, "*{table}");
        let mut declared: BTreeSet<&str> = owned.iter().copied().collect();
        declared.extend(tr.chains.keys().map(String::as_str));
        let stale: Vec<&String> = there
            .chains
            .iter()
            .filter(|c| !declared.contains(c.as_str()))
            .collect();
        for c in declared
            .iter()
            .copied()
            .chain(stale.iter().map(|s| s.as_str()))
        {
            let _ = writeln!(out, ":{c} - [0:0]");
        }
        // Jumps from built-in chains to chains that go (another proxy's, e.g.
        // upstream's filter KUBE-NODEPORTS) go first, or the chains could not be
        // deleted.
        for j in &there.jumps {
            let target = j.rsplit_once(" -j ").map(|(_, t)| t.trim());
            if target.is_some_and(|t| stale.iter().any(|c| c.as_str() == t)) {
                if let Some(rule) = j.strip_prefix("-A ") {
                    let _ = writeln!(out, "-D {rule}");
                }
            }
        }
        for (t, chain, rule) in JUMPS {
            let present = there.jumps.iter().any(|j| {
                j.starts_with(&format!("-A {chain} "))
                    && j.trim_end()
                        .ends_with(&rule[rule.rfind(" -j ").unwrap_or(0)..])
            });
            if t == table && !present {
                let _ = writeln!(out, "-I {chain} 1 {rule}");
            }
        }
        let fixed = fixed_rules(table);
        // Shared rules first: nat KUBE-SERVICES' node-port rule is last.
        for (chain, set) in &tr.shared {
            for r in set {
                let _ = writeln!(out, "-A {chain} {r}");
            }
        }
        for (chain, r) in &fixed {
            let _ = writeln!(out, "-A {chain} {r}");
        }
        for (chain, rs) in &tr.chains {
            for r in rs {
                let _ = writeln!(out, "-A {chain} {r}");
            }
        }
        for c in stale {
            let _ = writeln!(out, "-X {c}");
        }
        let _ = writeln!(out, "COMMIT");
    }
    out
}

/// The `iptables-restore --noflush` input that turns `old` (what the kernel holds)
/// into `new`, touching only what differs; `None` when nothing does. New and
/// changed chains are (re)written, shared rules deleted and inserted one by one,
/// and chains nothing refers to any more flushed and deleted.
pub fn diff_restore(old: &Rules, new: &Rules) -> Option<String> {
    let mut out = String::new();
    for (table, o, n) in [
        ("nat", &old.nat, &new.nat),
        ("filter", &old.filter, &new.filter),
    ] {
        let mut body = String::new();
        let changed: Vec<(&String, &Vec<String>)> = n
            .chains
            .iter()
            .filter(|(c, rs)| o.chains.get(*c) != Some(rs))
            .collect();
        let stale: Vec<&String> = o
            .chains
            .keys()
            .filter(|c| !n.chains.contains_key(*c))
            .collect();
        for c in changed.iter().map(|(c, _)| c).chain(&stale) {
            let _ = writeln!(body, ":{c} - [0:0]");
        }
        for (c, rs) in &changed {
            for r in *rs {
                let _ = writeln!(body, "-A {c} {r}");
            }
        }
        let empty = BTreeSet::new();
        let chains: BTreeSet<&'static str> =
            o.shared.keys().chain(n.shared.keys()).copied().collect();
        for chain in chains {
            let (before, after) = (
                o.shared.get(chain).unwrap_or(&empty),
                n.shared.get(chain).unwrap_or(&empty),
            );
            for r in before.difference(after) {
                let _ = writeln!(body, "-D {chain} {r}");
            }
            for r in after.difference(before) {
                let _ = writeln!(body, "-I {chain} 1 {r}");
            }
        }
        for c in &stale {
            let _ = writeln!(body, "-X {c}");
        }
        if !body.is_empty() {
            let _ = writeln!(out, "*{table}\n{body}COMMIT");
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The input of `iptables-restore --noflush` removing everything `existing` shows
/// of this proxy; `None` when there is nothing.
pub fn cleanup_restore(existing: &BTreeMap<String, Existing>) -> Option<String> {
    let mut out = String::new();
    for (table, there) in existing {
        if there.chains.is_empty() && there.jumps.is_empty() {
            continue;
        }
        let _ = writeln!(out, "*{table}");
        for j in &there.jumps {
            if let Some(rule) = j.strip_prefix("-A ") {
                let _ = writeln!(out, "-D {rule}");
            }
        }
        for c in &there.chains {
            let _ = writeln!(out, ":{c} - [0:0]");
        }
        for c in &there.chains {
            let _ = writeln!(out, "-X {c}");
        }
        let _ = writeln!(out, "COMMIT");
    }
    (!out.is_empty()).then_some(out)
}

/// Failure to read or apply rules.
#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    #[error("running {0}: {1}")]
    Spawn(String, std::io::Error),
    #[error("{0} failed: {1}")]
    Rejected(String, String),
}

/// Applies rules with `iptables-restore` and remembers what the kernel holds.
pub struct Iptables {
    /// The `iptables` command; `-save` and `-restore` are appended to it.
    iptables: PathBuf,
    applied: Option<Rules>,
}

impl Iptables {
    /// Uses the `iptables` command at `iptables` (`iptables-nft`, `iptables-legacy`,
    /// or the system's choice), with its `-save` and `-restore` siblings.
    pub fn new(iptables: impl Into<PathBuf>) -> Iptables {
        Iptables {
            iptables: iptables.into(),
            applied: None,
        }
    }

    fn tool(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.iptables.display())
    }

    async fn command(
        &self,
        suffix: &str,
        args: &[&str],
        input: Option<&str>,
    ) -> Result<String, IptablesError> {
        let tool = self.tool(suffix);
        crate::tool::run(Path::new(&tool), args, input)
            .await
            .map_err(|e| match e {
                ToolError::Spawn(e) => IptablesError::Spawn(tool.clone(), e),
                ToolError::Failed(msg) => IptablesError::Rejected(tool.clone(), msg),
            })
    }

    /// What `iptables-save` shows of this proxy now.
    pub async fn existing(&self) -> Result<BTreeMap<String, Existing>, IptablesError> {
        let save = self.command("-save", &[], None).await?;
        Ok(parse_save(&save))
    }

    /// Runs one `iptables-restore --noflush` transaction.
    pub async fn restore(&self, input: &str) -> Result<(), IptablesError> {
        // Waits at most 5 s for the xtables lock (the legacy backend's), as upstream.
        self.command(
            "-restore",
            &["-w", "5", "-W", "100000", "--noflush"],
            Some(input),
        )
        .await
        .map(drop)
    }

    /// Makes the next sync write everything, whatever the kernel was last given.
    pub fn force_full(&mut self) {
        self.applied = None;
    }

    /// Brings the kernel to `rules`: everything the first time and after a
    /// failure, only the differences otherwise.
    pub async fn sync(&mut self, rules: Rules) -> Result<SyncKind, IptablesError> {
        let (input, kind) = match &self.applied {
            Some(old) => match diff_restore(old, &rules) {
                Some(s) => (s, SyncKind::Partial),
                None => return Ok(SyncKind::Unchanged),
            },
            None => (
                full_restore(&rules, &self.existing().await?),
                SyncKind::Full,
            ),
        };
        // Until it succeeds, the kernel's state is unknown: the next sync is full.
        self.applied = None;
        self.restore(&input).await?;
        self.applied = Some(rules);
        Ok(kind)
    }

    /// Removes this proxy's chains and jumps (`--cleanup`). A missing `iptables`
    /// command means there is nothing to remove.
    pub async fn cleanup(&mut self) -> Result<(), IptablesError> {
        self.applied = None;
        let existing = match self.existing().await {
            Err(IptablesError::Spawn(_, e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(())
            }
            other => other?,
        };
        match cleanup_restore(&existing) {
            Some(input) => self.restore(&input).await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{ep, networks as nets, port};
    use std::net::Ipv4Addr;

    fn chain<'a>(r: &'a Rules, prefix: &str) -> (&'a String, &'a Vec<String>) {
        r.nat
            .chains
            .iter()
            .find(|(c, _)| c.starts_with(prefix))
            .unwrap()
    }

    #[test]
    fn chain_names_are_upstreams() {
        // Upstream's servicePortChainName("ns1/svc1:p80", "tcp") in its own tests.
        assert_eq!(hash16("ns1/svc1:p80tcp"), "XPGD46QRK7WJZT7O");
        // …and servicePortEndpointChainName for endpoint 10.180.0.1:80.
        assert_eq!(hash16("ns1/svc1:p80tcp10.180.0.1:80"), "SXIVWICOYRO3J4NJ");
        let p = port("web", vec![]);
        assert_eq!(port_name(&p.id), "default/web:http");
        let mut unnamed = p.id.clone();
        unnamed.port.clear();
        assert_eq!(port_name(&unnamed), "default/web");
    }

    #[test]
    fn cluster_ip_balances_over_endpoint_chains() {
        let r = Rules::build(
            &[port("web", vec![ep(5, true), ep(6, false), ep(7, false)])],
            &nets(),
        );
        let (svc, rules) = chain(&r, "KUBE-SVC-");
        assert_eq!(
            rules[0],
            "! -s 10.42.0.0/16 -d 10.43.0.10/32 -p tcp -m comment --comment \"default/web:http cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ"
        );
        assert!(
            rules[1].contains("--probability 0.3333333333 -j KUBE-SEP-"),
            "{}",
            rules[1]
        );
        assert!(
            rules[2].contains("--probability 0.5000000000 -j KUBE-SEP-"),
            "{}",
            rules[2]
        );
        assert!(!rules[3].contains("statistic"), "{}", rules[3]);
        let seps: Vec<_> = r
            .nat
            .chains
            .keys()
            .filter(|c| c.starts_with("KUBE-SEP-"))
            .collect();
        assert_eq!(seps.len(), 3);
        let sep5 = r
            .nat
            .chains
            .values()
            .find(|rs| rs[1].ends_with("--to-destination 10.42.0.5:8080"))
            .unwrap();
        assert_eq!(
            sep5[0],
            "-s 10.42.0.5/32 -m comment --comment \"default/web:http\" -j KUBE-MARK-MASQ"
        );
        assert!(r.nat.shared[NAT_SERVICES].contains(&format!(
            "-d 10.43.0.10/32 -p tcp -m comment --comment \"default/web:http cluster IP\" -m tcp --dport 80 -j {svc}"
        )));
        assert!(r.filter.shared[FILTER_SERVICES].is_empty());
    }

    #[test]
    fn no_endpoints_reject_and_elsewhere_only_drop() {
        let mut p = port("web", vec![]);
        p.node_port = Some(30080);
        let r = Rules::build(std::slice::from_ref(&p), &nets());
        assert!(r.nat.chains.is_empty());
        assert_eq!(
            r.filter.shared[FILTER_SERVICES].iter().next().unwrap(),
            "-d 10.43.0.10/32 -p tcp -m comment --comment \"default/web:http has no endpoints\" -m tcp --dport 80 -j REJECT"
        );
        assert!(r.filter.shared[FILTER_EXTERNAL]
            .iter()
            .next()
            .unwrap()
            .ends_with("--dst-type LOCAL -m tcp --dport 30080 -j REJECT"));

        // Local policies with endpoints only elsewhere: drop.
        p.endpoints = vec![ep(6, false)];
        p.external_local = true;
        p.internal_local = true;
        let r = Rules::build(&[p], &nets());
        assert!(r.filter.shared[FILTER_SERVICES]
            .iter()
            .next()
            .unwrap()
            .ends_with("has no local endpoints\" -m tcp --dport 80 -j DROP"));
        assert!(r.filter.shared[FILTER_EXTERNAL]
            .iter()
            .next()
            .unwrap()
            .ends_with("--dport 30080 -j DROP"));
        assert!(r.nat.shared[NAT_NODEPORTS].is_empty());
    }

    #[test]
    fn node_ports_and_external_policy() {
        let mut p = port("web", vec![ep(5, true), ep(6, false)]);
        p.node_port = Some(30080);
        p.external_ips = vec![Ipv4Addr::new(192, 0, 2, 1)];
        let r = Rules::build(std::slice::from_ref(&p), &nets());
        let (ext, rules) = chain(&r, "KUBE-EXT-");
        let (svc, _) = chain(&r, "KUBE-SVC-");
        assert!(rules[0].ends_with("-j KUBE-MARK-MASQ"));
        assert_eq!(rules[1], format!("-j {svc}"));
        assert!(r.nat.shared[NAT_NODEPORTS].contains(&format!(
            "-p tcp -m comment --comment \"default/web:http\" -m tcp --dport 30080 -j {ext}"
        )));
        assert!(r.nat.shared[NAT_SERVICES]
            .iter()
            .any(|x| x.starts_with("-d 192.0.2.1/32 ") && x.ends_with(&format!("-j {ext}"))));

        p.external_local = true;
        let r = Rules::build(&[p], &nets());
        let (_, rules) = chain(&r, "KUBE-EXT-");
        let (svl, local) = chain(&r, "KUBE-SVL-");
        let (svc, _) = chain(&r, "KUBE-SVC-");
        assert_eq!(local.len(), 2, "{local:?}"); // masquerade + the one local endpoint
        assert!(
            rules[0].starts_with("-s 10.42.0.0/16 ") && rules[0].ends_with(&format!("-j {svc}"))
        );
        assert_eq!(rules.last().unwrap(), &format!("-j {svl}"));
    }

    #[test]
    fn affinity_pins_clients_with_recent() {
        let mut p = port("web", vec![ep(5, true)]);
        p.affinity_timeout = Some(60);
        let r = Rules::build(&[p], &nets());
        let (_, rules) = chain(&r, "KUBE-SVC-");
        let (sep, sep_rules) = chain(&r, "KUBE-SEP-");
        assert!(rules[1].ends_with(&format!(
            "-m recent --name {sep} --rcheck --seconds 60 --reap -j {sep}"
        )));
        assert!(sep_rules[1].contains(&format!("-m recent --name {sep} --set --rsource")));
    }

    #[test]
    fn diff_touches_only_what_changed() {
        let a = port("a", vec![ep(5, true), ep(6, true)]);
        let mut b = port("b", vec![ep(7, true)]);
        b.cluster_ips = vec![Ipv4Addr::new(10, 43, 0, 11)];
        let old = Rules::build(&[a.clone(), b.clone()], &nets());
        assert_eq!(diff_restore(&old, &old), None);

        // One endpoint of `a` goes: a's service chain is rewritten and the endpoint
        // chain removed; nothing of b, and the filter table is not mentioned.
        let mut a2 = a.clone();
        a2.endpoints.pop();
        let new = Rules::build(&[a2, b.clone()], &nets());
        let tx = diff_restore(&old, &new).unwrap();
        let lines: Vec<&str> = tx.lines().collect();
        assert_eq!(lines[0], "*nat");
        assert!(lines[1].starts_with(":KUBE-SVC-"), "{tx}");
        assert!(lines[2].starts_with(":KUBE-SEP-"), "{tx}");
        assert!(lines[3].ends_with("-j KUBE-MARK-MASQ"), "{tx}");
        assert!(
            lines[4].contains("default/a:http -> 10.42.0.5:8080"),
            "{tx}"
        );
        assert!(lines[5].starts_with("-X KUBE-SEP-"), "{tx}");
        assert_eq!(lines[6], "COMMIT");
        assert_eq!(lines.len(), 7, "{tx}");

        // b loses its endpoints: its cluster IP rule moves from nat to filter.
        let mut b2 = b;
        b2.endpoints.clear();
        let newer = Rules::build(&[a, b2], &nets());
        let tx = diff_restore(&old, &newer).unwrap();
        assert!(tx.contains("-D KUBE-SERVICES -d 10.43.0.11/32"), "{tx}");
        assert!(
            tx.contains("*filter\n-I KUBE-SERVICES 1 -d 10.43.0.11/32"),
            "{tx}"
        );
        assert!(tx.contains("-X KUBE-SVC-"), "{tx}");
    }

    #[test]
    fn full_restore_adds_missing_jumps_and_removes_stale_chains() {
        let r = Rules::build(&[port("a", vec![ep(5, true)])], &nets());
        let save = "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-OLDOLDOLDOLDOLDO - [0:0]\n:KUBE-KUBELET-CANARY - [0:0]\n\
            -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n";
        let existing = parse_save(save);
        assert_eq!(existing["nat"].jumps.len(), 1);
        assert!(!existing["nat"].chains.contains("KUBE-KUBELET-CANARY"));
        let tx = full_restore(&r, &existing);
        assert!(!tx.contains("-I PREROUTING"), "{tx}");
        assert!(
            tx.contains(
                "-I OUTPUT 1 -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
            ),
            "{tx}"
        );
        assert!(tx.contains("-I POSTROUTING 1 "), "{tx}");
        assert!(tx.contains(":KUBE-SVC-OLDOLDOLDOLDOLDO - [0:0]\n"), "{tx}");
        assert!(tx.contains("-X KUBE-SVC-OLDOLDOLDOLDOLDO\n"), "{tx}");
        assert!(
            tx.contains(
                "-I FORWARD 1 -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD"
            ),
            "{tx}"
        );
        // The node-port rule comes after every service rule of nat KUBE-SERVICES.
        let nat = &tx[..tx.find("*filter").unwrap()];
        let last = nat
            .lines()
            .rfind(|l| l.starts_with("-A KUBE-SERVICES"))
            .unwrap();
        assert!(last.ends_with("-j KUBE-NODEPORTS"), "{nat}");

        // A node that ran upstream's proxy: its filter KUBE-NODEPORTS and the jump
        // to it go, and an old KUBE-XLB- chain is deleted with the rest.
        let upstream = parse_save(
            "*filter\n:INPUT ACCEPT [0:0]\n:KUBE-NODEPORTS - [0:0]\n\
             -A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS\nCOMMIT\n\
             *nat\n:KUBE-XLB-OLDOLDOLDOLDOLDO - [0:0]\nCOMMIT\n",
        );
        let tx = full_restore(&r, &upstream);
        let filter = &tx[tx.find("*filter").unwrap()..];
        assert!(filter.contains("-D INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS\n"), "{tx}");
        assert!(filter.contains("-X KUBE-NODEPORTS\n"), "{tx}");
        assert!(tx.contains("-X KUBE-XLB-OLDOLDOLDOLDOLDO\n"), "{tx}");

        let cleanup = cleanup_restore(&existing).unwrap();
        assert!(cleanup.contains("-D PREROUTING -m comment"), "{cleanup}");
        assert!(cleanup.contains("-X KUBE-SERVICES\n"), "{cleanup}");
        assert!(!cleanup.contains("CANARY"), "{cleanup}");
    }
}
