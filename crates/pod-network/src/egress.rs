//! Masquerade for pods' traffic that leaves the cluster's pod range, as flannel's
//! `--ip-masq` does it: packets from pods to addresses outside the cluster CIDR
//! leave with the node's address (the outside world has no route to pod
//! addresses), while pod-to-pod traffic keeps its addresses, traffic kube-proxy
//! marked is left to kube-proxy's own masquerade, and the node's own packets to
//! pods of other nodes are masqueraded so replies come back through the overlay.
//! One nftables table, `ip ferrokube-egress`, replaced as a whole.

use std::fmt::Write as _;
use std::path::Path;

use ipnet::Ipv4Net;

use crate::NetError;

/// The table's name.
pub const TABLE: &str = "ferrokube-egress";

/// The mark kube-proxy sets on traffic it masquerades itself.
const KUBE_PROXY_MARK: u32 = 0x4000;

/// The transaction that replaces the table with the rules for a node whose pods
/// have `pod_cidr`, in a cluster whose pods have `cluster_cidr`.
pub fn render(cluster_cidr: Ipv4Net, pod_cidr: Ipv4Net) -> String {
    let t = format!("ip {TABLE}");
    let mut out = crate::nft::replace_table(TABLE, "postrouting", "postrouting priority srcnat");
    for rule in [
        format!("meta mark & {KUBE_PROXY_MARK:#x} == {KUBE_PROXY_MARK:#x} return"),
        format!("ip saddr {cluster_cidr} ip daddr {cluster_cidr} return"),
        format!("ip saddr != {cluster_cidr} ip daddr {pod_cidr} return"),
        format!("ip saddr {cluster_cidr} ip daddr != 224.0.0.0/4 masquerade fully-random"),
        format!("ip saddr != {cluster_cidr} ip daddr {cluster_cidr} masquerade fully-random"),
    ] {
        let _ = writeln!(out, "add rule {t} postrouting {rule}");
    }
    out
}

/// Writes the rules (blocking, with the `nft` command at `nft`).
pub fn apply(nft: &Path, cluster_cidr: Ipv4Net, pod_cidr: Ipv4Net) -> Result<(), NetError> {
    crate::nft::run(
        nft,
        &render(cluster_cidr, pod_cidr),
        "egress masquerade rules",
    )
}

/// Removes the table, if there is one.
pub fn remove(nft: &Path) -> Result<(), NetError> {
    crate::nft::run(
        nft,
        &format!("add table ip {TABLE}\ndelete table ip {TABLE}\n"),
        "egress masquerade rules",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_leaving_the_cluster_are_masqueraded() {
        let s = render(
            "10.42.0.0/16".parse().unwrap(),
            "10.42.1.0/24".parse().unwrap(),
        );
        let rules: Vec<&str> = s
            .lines()
            .filter_map(|l| l.strip_prefix("add rule ip ferrokube-egress postrouting "))
            .collect();
        assert_eq!(
            rules,
            [
                "meta mark & 0x4000 == 0x4000 return",
                "ip saddr 10.42.0.0/16 ip daddr 10.42.0.0/16 return",
                "ip saddr != 10.42.0.0/16 ip daddr 10.42.1.0/24 return",
                "ip saddr 10.42.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random",
                "ip saddr != 10.42.0.0/16 ip daddr 10.42.0.0/16 masquerade fully-random",
            ]
        );
    }
}
