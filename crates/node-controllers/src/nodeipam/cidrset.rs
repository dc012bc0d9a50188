//! CIDR arithmetic for pod CIDR allocation: [`IpNet`] (an address range, parsed and
//! printed as Go's `net.ParseCIDR`/`IPNet.String` do) and [`CidrSet`], the bitmap of
//! the node-sized subnets of one cluster CIDR, handed out round-robin as upstream's
//! cidrset.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why a CIDR operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Every subnet is in use.
    #[error("CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range")]
    NoCidrsRemaining,
    /// The node mask leaves too many IPv6 subnets (more than 2^16).
    #[error("New CIDR set failed; the node CIDR size is too big")]
    SubnetTooBig,
    /// The node mask is shorter than the cluster's, or longer than the address.
    #[error("invalid node CIDR mask size {node} for cluster CIDR {cluster}")]
    BadMaskSize {
        /// The cluster CIDR.
        cluster: String,
        /// The node mask size.
        node: u8,
    },
    /// A CIDR outside the cluster CIDR.
    #[error("cidr {cidr} is out the range of cluster cidr {cluster}")]
    OutOfRange {
        /// The CIDR.
        cidr: String,
        /// The cluster CIDR.
        cluster: String,
    },
    /// Text that is not a CIDR.
    #[error("invalid CIDR address: {0}")]
    Parse(String),
}

/// An address range: a base address (masked) and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    bits: u128,
    prefix: u8,
    v6: bool,
}

impl IpNet {
    /// The range of `addr/prefix` (host bits cleared). `None` if the prefix is longer
    /// than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        let (bits, v6) = match addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)), false),
            IpAddr::V6(a) => (u128::from(a), true),
        };
        let width = if v6 { 128 } else { 32 };
        if prefix > width {
            return None;
        }
        Some(IpNet {
            bits: bits & mask(width, prefix),
            prefix,
            v6,
        })
    }

    /// Whether it is an IPv6 range.
    pub fn is_ipv6(&self) -> bool {
        self.v6
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// The address width (32 or 128).
    pub fn width(&self) -> u8 {
        if self.v6 {
            128
        } else {
            32
        }
    }

    /// The first address.
    pub fn network(&self) -> IpAddr {
        to_addr(self.bits, self.v6)
    }

    /// Whether `addr` (of the same family) lies in the range.
    pub fn contains_bits(&self, v6: bool, bits: u128) -> bool {
        v6 == self.v6 && bits & mask(self.width(), self.prefix) == self.bits
    }

    /// Whether the two ranges share addresses.
    pub fn overlaps(&self, other: &IpNet) -> bool {
        self.contains_bits(other.v6, other.bits) || other.contains_bits(self.v6, self.bits)
    }
}

fn mask(width: u8, prefix: u8) -> u128 {
    let full: u128 = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    if prefix == 0 {
        0
    } else {
        full & !((1u128 << (width - prefix)) - 1) & full
    }
}

fn to_addr(bits: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(bits))
    } else {
        IpAddr::V4(Ipv4Addr::from(bits as u32))
    }
}

impl FromStr for IpNet {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CidrError::Parse(s.to_string());
        let (addr, prefix) = s.split_once('/').ok_or_else(err)?;
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 3 {
            return Err(err());
        }
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        IpNet::new(addr, prefix).ok_or_else(err)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

/// The node-sized subnets of one cluster CIDR and which of them are in use.
#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: IpNet,
    node_prefix: u8,
    max_cidrs: usize,
    used: Vec<bool>,
    allocated: usize,
    next_candidate: usize,
}

/// Upstream's limit on how many more bits an IPv6 node mask may have than the cluster
/// mask.
const CLUSTER_SUBNET_MAX_DIFF: u8 = 16;

impl CidrSet {
    /// The subnets of size `/node_prefix` of `cluster`.
    pub fn new(cluster: IpNet, node_prefix: u8) -> Result<CidrSet, CidrError> {
        if cluster.v6 && node_prefix.saturating_sub(cluster.prefix) > CLUSTER_SUBNET_MAX_DIFF {
            return Err(CidrError::SubnetTooBig);
        }
        if node_prefix < cluster.prefix || node_prefix > cluster.width() {
            return Err(CidrError::BadMaskSize {
                cluster: cluster.to_string(),
                node: node_prefix,
            });
        }
        let diff = node_prefix - cluster.prefix;
        // IPv4 is bounded by 32 bits; keep the bitmap to a sane size either way.
        if diff > 24 {
            return Err(CidrError::SubnetTooBig);
        }
        let max_cidrs = 1usize << diff;
        Ok(CidrSet {
            cluster,
            node_prefix,
            max_cidrs,
            used: vec![false; max_cidrs],
            allocated: 0,
            next_candidate: 0,
        })
    }

    /// The cluster CIDR.
    pub fn cluster(&self) -> IpNet {
        self.cluster
    }

    /// How many subnets there are.
    pub fn max_cidrs(&self) -> usize {
        self.max_cidrs
    }

    /// How many are in use.
    pub fn allocated(&self) -> usize {
        self.allocated
    }

    /// Whether the subnet at `index` is in use.
    pub fn is_used(&self, index: usize) -> bool {
        self.used.get(index).copied().unwrap_or(false)
    }

    fn shift(&self) -> u8 {
        self.cluster.width() - self.node_prefix
    }

    fn block(&self, index: usize) -> IpNet {
        let bits = self.cluster.bits | ((index as u128) << self.shift());
        IpNet {
            bits,
            prefix: self.node_prefix,
            v6: self.cluster.v6,
        }
    }

    /// Hands out the next free subnet after the last one handed out.
    pub fn allocate_next(&mut self) -> Result<IpNet, CidrError> {
        if self.allocated == self.max_cidrs {
            return Err(CidrError::NoCidrsRemaining);
        }
        let mut candidate = self.next_candidate;
        for _ in 0..self.max_cidrs {
            if !self.used[candidate] {
                self.used[candidate] = true;
                self.allocated += 1;
                self.next_candidate = (candidate + 1) % self.max_cidrs;
                return Ok(self.block(candidate));
            }
            candidate = (candidate + 1) % self.max_cidrs;
        }
        Err(CidrError::NoCidrsRemaining)
    }

    fn index_of(&self, bits: u128) -> Result<usize, CidrError> {
        let index = (self.cluster.bits ^ bits) >> self.shift();
        if index >= self.max_cidrs as u128 {
            return Err(CidrError::OutOfRange {
                cidr: format!("{}/{}", to_addr(bits, self.cluster.v6), self.node_prefix),
                cluster: self.cluster.to_string(),
            });
        }
        Ok(index as usize)
    }

    /// The first and last subnet index `cidr` covers.
    fn indices(&self, cidr: &IpNet) -> Result<(usize, usize), CidrError> {
        if !self.cluster.overlaps(cidr) {
            return Err(CidrError::OutOfRange {
                cidr: cidr.to_string(),
                cluster: self.cluster.to_string(),
            });
        }
        if self.cluster.prefix >= cidr.prefix {
            return Ok((0, self.max_cidrs - 1));
        }
        let width = self.cluster.width();
        let node_mask = mask(width, self.node_prefix);
        let first = cidr.bits & node_mask;
        let last = (cidr.bits | !mask(width, cidr.prefix)) & mask(width, width) & node_mask;
        Ok((self.index_of(first)?, self.index_of(last)?))
    }

    /// Marks every subnet overlapping `cidr` as used.
    pub fn occupy(&mut self, cidr: &IpNet) -> Result<(), CidrError> {
        let (begin, end) = self.indices(cidr)?;
        for i in begin..=end {
            if !self.used[i] {
                self.used[i] = true;
                self.allocated += 1;
            }
        }
        Ok(())
    }

    /// Marks every subnet overlapping `cidr` as free.
    pub fn release(&mut self, cidr: &IpNet) -> Result<(), CidrError> {
        let (begin, end) = self.indices(cidr)?;
        for i in begin..=end {
            if self.used[i] {
                self.used[i] = false;
                self.allocated -= 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_print_like_go() {
        assert_eq!(net("10.244.1.7/16").to_string(), "10.244.0.0/16");
        assert_eq!(net("fd00:10:244::1/56").to_string(), "fd00:10:244::/56");
        assert_eq!(net("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("10.0.0.0".parse::<IpNet>().is_err());
        assert!("10.0.0.0/-1".parse::<IpNet>().is_err());
        assert!("".parse::<IpNet>().is_err());
        assert!(net("10.0.0.0/8").overlaps(&net("10.96.0.0/12")));
        assert!(net("10.96.0.0/12").overlaps(&net("10.0.0.0/8")));
        assert!(!net("10.0.0.0/16").overlaps(&net("10.1.0.0/16")));
        assert!(!net("10.0.0.0/8").overlaps(&net("fd00::/8")));
    }

    #[test]
    fn allocates_round_robin_and_reuses_released() {
        let mut s = CidrSet::new(net("10.244.0.0/22"), 24).unwrap();
        assert_eq!(s.max_cidrs(), 4);
        let got: Vec<String> = (0..4)
            .map(|_| s.allocate_next().unwrap().to_string())
            .collect();
        assert_eq!(
            got,
            [
                "10.244.0.0/24",
                "10.244.1.0/24",
                "10.244.2.0/24",
                "10.244.3.0/24"
            ]
        );
        assert_eq!(s.allocate_next(), Err(CidrError::NoCidrsRemaining));
        assert_eq!(
            CidrError::NoCidrsRemaining.to_string(),
            "CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range"
        );
        s.release(&net("10.244.1.0/24")).unwrap();
        assert_eq!(s.allocated(), 3);
        s.release(&net("10.244.1.0/24")).unwrap();
        assert_eq!(s.allocated(), 3, "double release counted once");
        assert_eq!(s.allocate_next().unwrap().to_string(), "10.244.1.0/24");
    }

    #[test]
    fn occupy_marks_covered_subnets() {
        let mut s = CidrSet::new(net("10.0.0.0/16"), 24).unwrap();
        s.occupy(&net("10.0.0.0/24")).unwrap();
        s.occupy(&net("10.0.2.0/23")).unwrap();
        assert_eq!(s.allocated(), 3);
        assert!(s.is_used(0) && !s.is_used(1) && s.is_used(2) && s.is_used(3));
        assert_eq!(s.allocate_next().unwrap().to_string(), "10.0.1.0/24");
        assert_eq!(s.allocate_next().unwrap().to_string(), "10.0.4.0/24");
        // A range larger than the cluster's covers it all.
        s.occupy(&net("10.0.0.0/8")).unwrap();
        assert_eq!(s.allocated(), 256);
        assert!(matches!(
            s.occupy(&net("192.168.0.0/24")),
            Err(CidrError::OutOfRange { .. })
        ));
        assert_eq!(
            s.release(&net("192.168.0.0/24")).unwrap_err().to_string(),
            "cidr 192.168.0.0/24 is out the range of cluster cidr 10.0.0.0/16"
        );
    }

    #[test]
    fn ipv6_sets() {
        let mut s = CidrSet::new(net("fd00:10:244::/56"), 64).unwrap();
        assert_eq!(s.max_cidrs(), 256);
        assert_eq!(s.allocate_next().unwrap().to_string(), "fd00:10:244::/64");
        assert_eq!(s.allocate_next().unwrap().to_string(), "fd00:10:244:1::/64");
        s.occupy(&net("fd00:10:244:2::/64")).unwrap();
        assert_eq!(s.allocate_next().unwrap().to_string(), "fd00:10:244:3::/64");
        assert_eq!(
            CidrSet::new(net("fd00::/8"), 64).unwrap_err(),
            CidrError::SubnetTooBig
        );
        assert!(CidrSet::new(net("10.0.0.0/24"), 16).is_err());
    }
}
