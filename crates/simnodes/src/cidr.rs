//! IPv4 networks in CIDR notation and the per-node pod address pool: the fallback
//! /24 of node N, and first-free allocation that skips the network address, the
//! `.1` gateway and the broadcast address.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network, `a.b.c.d/len`, kept with its host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    network: u32,
    prefix: u8,
}

impl Ipv4Cidr {
    /// The network containing `addr` with the given prefix length (clamped to 32).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Ipv4Cidr {
        let prefix = prefix.min(32);
        Ipv4Cidr {
            network: u32::from(addr) & mask(prefix),
            prefix,
        }
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network)
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Number of addresses in the network.
    fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// Whether `addr` lies in this network.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.prefix) == self.network
    }

    /// The `index`-th /24 counted from this network's address; `None` past the end
    /// of the IPv4 space. The prefix of `self` only marks where counting starts.
    pub fn nth_slash24(&self, index: usize) -> Option<Ipv4Cidr> {
        let start = u64::from(self.network & mask(24));
        let net = start.checked_add((index as u64).checked_mul(256)?)?;
        let net = u32::try_from(net).ok()?;
        Some(Ipv4Cidr {
            network: net,
            prefix: 24,
        })
    }

    /// The addresses handed out to pods: everything but the network address, the
    /// gateway (`network + 1`) and, where there is one, the broadcast address.
    fn usable(&self) -> std::ops::Range<u64> {
        let first = u64::from(self.network);
        let size = self.size();
        if size < 4 {
            return first..first;
        }
        first + 2..first + size - 1
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid IPv4 CIDR {s:?}: expected a.b.c.d/len");
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        if len > 32 {
            return Err(bad());
        }
        Ok(Ipv4Cidr::new(addr, len))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

/// The pod addresses in use on one node. Addresses are tracked on their own, so
/// a change of the node's podCIDR keeps the addresses handed out before it.
#[derive(Debug, Default)]
pub(crate) struct IpPool {
    used: BTreeSet<u32>,
}

impl IpPool {
    /// Hands out the lowest free address of `cidr`, or `None` when it is full.
    pub fn allocate(&mut self, cidr: &Ipv4Cidr) -> Option<Ipv4Addr> {
        let range = cidr.usable();
        let mut candidate = range.start;
        // `used` is ordered: walk the taken addresses of this range to the first gap.
        let lo = u32::try_from(range.start).ok()?;
        for &taken in self.used.range(lo..) {
            if u64::from(taken) != candidate {
                break;
            }
            candidate += 1;
        }
        if candidate >= range.end {
            return None;
        }
        let ip = u32::try_from(candidate).ok()?;
        self.used.insert(ip);
        Some(Ipv4Addr::from(ip))
    }

    /// Marks an address as taken (an adopted pod). Returns false when it already was.
    pub fn reserve(&mut self, ip: Ipv4Addr) -> bool {
        self.used.insert(u32::from(ip))
    }

    /// Gives an address back.
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&u32::from(ip));
    }

    /// Number of addresses in use.
    #[cfg(test)]
    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(cidr("10.244.3.7/16").to_string(), "10.244.0.0/16");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert!("10.0.0.0".parse::<Ipv4Cidr>().is_err());
        assert!("10.0.0.0/40".parse::<Ipv4Cidr>().is_err());
        assert!("fd00::/64".parse::<Ipv4Cidr>().is_err());
        assert!(cidr("10.1.0.0/16").contains(Ipv4Addr::new(10, 1, 200, 3)));
        assert!(!cidr("10.1.0.0/16").contains(Ipv4Addr::new(10, 2, 0, 3)));
    }

    #[test]
    fn per_node_slash24() {
        let base = cidr("10.244.0.0/16");
        assert_eq!(base.nth_slash24(0).unwrap().to_string(), "10.244.0.0/24");
        assert_eq!(base.nth_slash24(7).unwrap().to_string(), "10.244.7.0/24");
        // Past the /16 the numbering goes on into the next addresses.
        assert_eq!(base.nth_slash24(256).unwrap().to_string(), "10.245.0.0/24");
        assert_eq!(cidr("255.255.255.0/24").nth_slash24(1), None);
    }

    #[test]
    fn allocation_skips_network_gateway_broadcast_and_reuses() {
        let net = cidr("10.0.0.0/29");
        let mut pool = IpPool::default();
        let got: Vec<String> = std::iter::from_fn(|| pool.allocate(&net))
            .map(|ip| ip.to_string())
            .collect();
        assert_eq!(
            got,
            ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
        );
        assert_eq!(pool.in_use(), 5);
        pool.release(Ipv4Addr::new(10, 0, 0, 4));
        assert_eq!(pool.allocate(&net), Some(Ipv4Addr::new(10, 0, 0, 4)));
        assert_eq!(pool.allocate(&net), None);
        // A reserved address is never handed out.
        let mut pool = IpPool::default();
        assert!(pool.reserve(Ipv4Addr::new(10, 0, 0, 2)));
        assert!(!pool.reserve(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(pool.allocate(&net), Some(Ipv4Addr::new(10, 0, 0, 3)));
        // Addresses of another network do not get in the way.
        let mut pool = IpPool::default();
        pool.reserve(Ipv4Addr::new(10, 9, 0, 2));
        assert_eq!(pool.allocate(&net), Some(Ipv4Addr::new(10, 0, 0, 2)));
    }

    #[test]
    fn tiny_networks_have_no_pod_addresses() {
        let mut pool = IpPool::default();
        assert_eq!(pool.allocate(&cidr("10.0.0.0/31")), None);
        assert_eq!(
            pool.allocate(&cidr("10.0.0.0/30")),
            Some(Ipv4Addr::new(10, 0, 0, 2))
        );
    }
}
