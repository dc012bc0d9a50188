//! Host ports (a container port's `hostPort`), the way the CNI portmap plugin
//! gives them: connections to a node address on the host port are DNATed to the
//! pod's address and container port, from outside (prerouting) and from the node
//! itself (output); a pod reaching its own host port is masqueraded so the reply
//! comes back through the node. All of it lives in one nftables table,
//! `ip ferrokube-hostports`, rewritten in one transaction whenever a pod's ports
//! come or go (there are few).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use parking_lot::Mutex;

use crate::NetError;

/// The table's name.
pub const TABLE: &str = "ferrokube-hostports";

/// One host port of a pod.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostPort {
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// Only this node address (`hostIP`), or all of them.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub pod_ip: Ipv4Addr,
    pub container_port: u16,
}

/// The node's host ports, by the pod that holds them.
pub struct HostPorts {
    nft: PathBuf,
    by_pod: Mutex<BTreeMap<String, Vec<HostPort>>>,
}

impl HostPorts {
    /// Host ports applied with the `nft` command at `nft`. Nothing is written until
    /// the first change.
    pub fn new(nft: impl Into<PathBuf>) -> HostPorts {
        HostPorts {
            nft: nft.into(),
            by_pod: Mutex::new(BTreeMap::new()),
        }
    }

    /// Gives the pod `owner` these host ports (replacing what it had) and writes
    /// the table. Blocks while `nft` runs.
    pub fn set(&self, owner: &str, ports: Vec<HostPort>) -> Result<(), NetError> {
        let mut by_pod = self.by_pod.lock();
        let before = by_pod.get(owner).cloned().unwrap_or_default();
        if before == ports {
            return Ok(());
        }
        if ports.is_empty() {
            by_pod.remove(owner);
        } else {
            by_pod.insert(owner.to_string(), ports);
        }
        self.apply(&by_pod)
    }

    /// Writes the table with the host ports known so far: at start, this clears
    /// rules left by an earlier process for pods that are gone (pods still
    /// running get theirs back as they are connected again).
    pub fn reset(&self) -> Result<(), NetError> {
        let by_pod = self.by_pod.lock();
        self.apply(&by_pod)
    }

    /// Removes the pod's host ports (if it had any) and writes the table.
    pub fn remove(&self, owner: &str) -> Result<(), NetError> {
        let mut by_pod = self.by_pod.lock();
        if by_pod.remove(owner).is_none() {
            return Ok(());
        }
        self.apply(&by_pod)
    }

    fn apply(&self, by_pod: &BTreeMap<String, Vec<HostPort>>) -> Result<(), NetError> {
        let script = render(by_pod.values().flatten());
        crate::nft::run(&self.nft, &script, "host port rules")
    }
}

/// The transaction that replaces the table with rules for `ports`.
pub fn render<'a>(ports: impl Iterator<Item = &'a HostPort>) -> String {
    let t = format!("ip {TABLE}");
    let mut out = crate::nft::replace_table(TABLE, "prerouting", "prerouting priority dstnat");
    let _ = writeln!(
        out,
        "add chain {t} output {{ type nat hook output priority -100 ; }}"
    );
    let _ = writeln!(
        out,
        "add chain {t} postrouting {{ type nat hook postrouting priority srcnat ; }}"
    );
    for p in ports {
        let dest = match p.host_ip {
            Some(ip) => format!("ip daddr {ip}"),
            // Any address of the node but loopback (which would need route_localnet).
            None => "fib daddr type local ip daddr != 127.0.0.0/8".to_string(),
        };
        let rule = format!(
            "{dest} {proto} dport {} dnat to {}:{}",
            p.host_port,
            p.pod_ip,
            p.container_port,
            proto = p.protocol
        );
        let _ = writeln!(out, "add rule {t} prerouting {rule}");
        let _ = writeln!(out, "add rule {t} output {rule}");
        let _ = writeln!(
            out,
            "add rule {t} postrouting ip saddr {ip} ip daddr {ip} {proto} dport {} masquerade",
            p.container_port,
            ip = p.pod_ip,
            proto = p.protocol
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_dnat_to_the_pod_and_masquerade_hairpin() {
        let p = HostPort {
            protocol: "tcp".into(),
            host_ip: None,
            host_port: 8081,
            pod_ip: Ipv4Addr::new(10, 42, 0, 5),
            container_port: 8080,
        };
        let q = HostPort {
            protocol: "udp".into(),
            host_ip: Some(Ipv4Addr::new(192, 0, 2, 1)),
            host_port: 5353,
            pod_ip: Ipv4Addr::new(10, 42, 0, 6),
            container_port: 53,
        };
        let s = render([p, q].iter());
        assert!(s.starts_with(
            "add table ip ferrokube-hostports\ndelete table ip ferrokube-hostports\n"
        ));
        assert!(s.contains("add rule ip ferrokube-hostports prerouting fib daddr type local ip daddr != 127.0.0.0/8 tcp dport 8081 dnat to 10.42.0.5:8080\n"));
        assert!(s.contains("add rule ip ferrokube-hostports output ip daddr 192.0.2.1 udp dport 5353 dnat to 10.42.0.6:53\n"));
        assert!(s.contains(
            "postrouting ip saddr 10.42.0.5 ip daddr 10.42.0.5 tcp dport 8080 masquerade\n"
        ));
    }
}
