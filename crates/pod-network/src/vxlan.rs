//! The VXLAN tunnel endpoint (VTEP) that joins the pod networks of the nodes, made
//! as flannel's `vxlan` backend makes it, so the two can share a cluster:
//!
//! - one device (`flannel.1`, VNI 1, UDP port 8472, no learning) on the node's
//!   address, whose MTU is the underlying interface's less the 50 bytes of
//!   encapsulation, holding the network address of the node's podCIDR as a /32;
//! - for each other node: a route to its podCIDR via that podCIDR's network address
//!   on the device (onlink), a permanent neighbour entry giving that address the
//!   peer VTEP's MAC, and a forwarding database entry sending that MAC to the peer
//!   node's address.
//!
//! The kernel does the rest: a packet for a pod on another node is routed to the
//! device, gets the peer's VTEP MAC from the neighbour table and is sent in UDP to the
//! peer's address from the forwarding database. Nothing here is learned from the wire.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use nix::errno::Errno;
use rtnetlink::packet_route::link::{InfoData, InfoVxlan, LinkAttribute, LinkInfo};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkUnspec, LinkVxlan, RouteMessageBuilder};

use crate::bridge::{add_address, connect_here, link_by_name, nl, unless_errno, NetError};

/// flannel's device name for VNI 1.
pub const DEFAULT_DEVICE: &str = "flannel.1";
/// flannel's VNI.
pub const DEFAULT_VNI: u32 = 1;
/// The UDP port flannel uses (the Linux default, not IANA's 4789).
pub const DEFAULT_PORT: u16 = 8472;
/// Bytes VXLAN adds to each packet (outer IPv4, UDP, VXLAN and Ethernet headers).
pub const OVERHEAD: u32 = 50;

/// This node's tunnel endpoint.
#[derive(Clone, Debug)]
pub struct Vtep {
    /// The device's name.
    pub device: String,
    /// The VXLAN network identifier.
    pub vni: u32,
    /// The UDP port.
    pub port: u16,
    /// The node's address: the tunnel's outer source and what peers send to.
    pub local: Ipv4Addr,
}

/// What the device turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VtepInfo {
    /// Its MAC address, which peers put in their neighbour tables.
    pub mac: [u8; 6],
    /// Its MTU, which pods on this node should use.
    pub mtu: u32,
}

/// Another node, as this one reaches its pods.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Peer {
    /// The peer's podCIDR.
    pub subnet: Ipv4Net,
    /// The peer's node address.
    pub public_ip: Ipv4Addr,
    /// The peer's VTEP MAC.
    pub mac: [u8; 6],
}

/// A MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn vxlan_attrs(link: &rtnetlink::packet_route::link::LinkMessage) -> Vec<InfoVxlan> {
    link.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                LinkInfo::Data(InfoData::Vxlan(v)) => Some(v.clone()),
                _ => None,
            }),
            _ => None,
        })
        .unwrap_or_default()
}

fn link_mac(link: &rtnetlink::packet_route::link::LinkMessage) -> Option<[u8; 6]> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(a) => a.as_slice().try_into().ok(),
        _ => None,
    })
}

fn link_mtu(link: &rtnetlink::packet_route::link::LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

impl Vtep {
    /// flannel's device on `local`.
    pub fn new(local: Ipv4Addr) -> Vtep {
        Vtep {
            device: DEFAULT_DEVICE.into(),
            vni: DEFAULT_VNI,
            port: DEFAULT_PORT,
            local,
        }
    }

    /// The interface holding the node's address: its index and MTU.
    async fn underlay(&self, handle: &Handle) -> Result<(u32, u32), NetError> {
        let mut addrs = handle
            .address()
            .get()
            .set_address_filter(IpAddr::V4(self.local))
            .execute();
        let index = addrs
            .try_next()
            .await
            .map_err(nl(format!("looking up {}", self.local)))?
            .map(|a| a.header.index)
            .ok_or_else(|| NetError::NoSuchLink(format!("interface with {}", self.local)))?;
        let mut links = handle.link().get().match_index(index).execute();
        let link = links
            .try_next()
            .await
            .map_err(nl(format!("looking up link {index}")))?
            .ok_or_else(|| NetError::NoSuchLink(format!("link {index}")))?;
        Ok((index, link_mtu(&link).unwrap_or(1500)))
    }

    /// The MTU pods get with this overlay: the node interface's less [`OVERHEAD`].
    pub async fn pod_mtu(&self) -> Result<u32, NetError> {
        let handle = connect_here()?;
        Ok(self.underlay(&handle).await?.1.saturating_sub(OVERHEAD))
    }

    /// Makes the device (or keeps it, when it exists with the same VNI, port and
    /// address), gives it `subnet`'s network address and brings it up. `subnet` is
    /// this node's podCIDR.
    pub async fn ensure(&self, subnet: Ipv4Net) -> Result<VtepInfo, NetError> {
        let handle = connect_here()?;
        let (underlay, underlay_mtu) = self.underlay(&handle).await?;
        let mtu = underlay_mtu.saturating_sub(OVERHEAD);
        if let Some(link) = link_by_name(&handle, &self.device).await? {
            let attrs = vxlan_attrs(&link);
            let same = attrs.contains(&InfoVxlan::Id(self.vni))
                && attrs.contains(&InfoVxlan::Port(self.port))
                && attrs.contains(&InfoVxlan::Local(self.local));
            if !same {
                tracing::info!(device = %self.device, "replacing a VXLAN device made for another address");
                let deleted = handle.link().del(link.header.index).execute().await;
                unless_errno(deleted, Errno::ENODEV)
                    .map_err(nl(format!("deleting {}", self.device)))?;
            }
        }
        let link = match link_by_name(&handle, &self.device).await? {
            Some(l) => l,
            None => {
                let added = handle
                    .link()
                    .add(
                        LinkVxlan::new(&self.device, self.vni)
                            .dev(underlay)
                            .local(self.local)
                            .port(self.port)
                            .learning(false)
                            .build(),
                    )
                    .execute()
                    .await;
                unless_errno(added, Errno::EEXIST)
                    .map_err(nl(format!("creating {}", self.device)))?;
                link_by_name(&handle, &self.device)
                    .await?
                    .ok_or_else(|| NetError::NoSuchLink(self.device.clone()))?
            }
        };
        let index = link.header.index;
        let mac = link_mac(&link).ok_or_else(|| NetError::NoSuchLink(self.device.clone()))?;
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).mtu(mtu).up().build())
            .execute()
            .await
            .map_err(nl(format!("bringing {} up", self.device)))?;
        // The device's address is the podCIDR's network address, as flannel's: the
        // node's own traffic to other nodes' pods leaves from it.
        let ours = subnet.trunc().network();
        let mut addrs = handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut stale = Vec::new();
        while let Some(a) = addrs
            .try_next()
            .await
            .map_err(nl(format!("listing addresses of {}", self.device)))?
        {
            let is_ours = a.attributes.iter().any(|attr| {
                matches!(attr, rtnetlink::packet_route::address::AddressAttribute::Address(IpAddr::V4(ip)) if *ip == ours)
            });
            if !is_ours {
                stale.push(a);
            }
        }
        for a in stale {
            let _ = handle.address().del(a).execute().await;
        }
        add_address(&handle, index, IpAddr::V4(ours), 32).await?;
        Ok(VtepInfo { mac, mtu })
    }

    /// Makes the device's routes, neighbour entries and forwarding entries those of
    /// `peers`, adding and replacing what differs and removing entries of nodes that
    /// are gone.
    pub async fn sync_peers(&self, peers: &[Peer]) -> Result<(), NetError> {
        let handle = connect_here()?;
        let index = link_by_name(&handle, &self.device)
            .await?
            .map(|l| l.header.index)
            .ok_or_else(|| NetError::NoSuchLink(self.device.clone()))?;
        for p in peers {
            self.add_peer(&handle, index, p).await?;
        }
        let subnets: BTreeSet<Ipv4Net> = peers.iter().map(|p| p.subnet.trunc()).collect();
        let gateways: BTreeSet<Ipv4Addr> = subnets.iter().map(|s| s.network()).collect();
        let macs: BTreeMap<[u8; 6], Ipv4Addr> =
            peers.iter().map(|p| (p.mac, p.public_ip)).collect();
        self.remove_stale_routes(&handle, index, &subnets).await?;
        self.remove_stale_neighbours(&handle, index, &gateways, &macs)
            .await
    }

    async fn add_peer(&self, handle: &Handle, index: u32, p: &Peer) -> Result<(), NetError> {
        let gateway = p.subnet.trunc().network();
        handle
            .neighbours()
            .add(index, IpAddr::V4(gateway))
            .link_layer_address(&p.mac)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(nl(format!("neighbour {gateway} of {}", p.subnet)))?;
        handle
            .neighbours()
            .add_bridge(index, &p.mac)
            .destination(IpAddr::V4(p.public_ip))
            .flags(NeighbourFlags::Own)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(nl(format!("forwarding entry to {}", p.public_ip)))?;
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(p.subnet.network(), p.subnet.prefix_len())
            .gateway(gateway)
            .output_interface(index)
            .onlink()
            .build();
        handle
            .route()
            .add(route)
            .replace()
            .execute()
            .await
            .map_err(nl(format!("route to {}", p.subnet)))
    }

    async fn remove_stale_routes(
        &self,
        handle: &Handle,
        index: u32,
        keep: &BTreeSet<Ipv4Net>,
    ) -> Result<(), NetError> {
        let mut routes = handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute();
        let mut stale: Vec<RouteMessage> = Vec::new();
        while let Some(r) = routes.try_next().await.map_err(nl("listing routes"))? {
            let on_device = r
                .attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Oif(i) if *i == index));
            // Only routes through a peer (with a gateway): the device's own local
            // routes stay.
            let via_peer = r
                .attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Gateway(_)));
            if !on_device || !via_peer {
                continue;
            }
            let dst = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(*ip),
                _ => None,
            });
            let wanted = dst
                .and_then(|ip| Ipv4Net::new(ip, r.header.destination_prefix_length).ok())
                .is_some_and(|net| keep.contains(&net));
            if !wanted {
                stale.push(r);
            }
        }
        for r in stale {
            let deleted = handle.route().del(r).execute().await;
            unless_errno(deleted, Errno::ESRCH).map_err(nl("deleting a stale route"))?;
        }
        Ok(())
    }

    async fn remove_stale_neighbours(
        &self,
        handle: &Handle,
        index: u32,
        gateways: &BTreeSet<Ipv4Addr>,
        macs: &BTreeMap<[u8; 6], Ipv4Addr>,
    ) -> Result<(), NetError> {
        let mut stale: Vec<NeighbourMessage> = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Bridge] {
            let mut entries = handle
                .neighbours()
                .get()
                .set_address_family(family)
                .execute();
            while let Some(n) = entries.try_next().await.map_err(nl("listing neighbours"))? {
                if n.header.ifindex != index {
                    continue;
                }
                let dst = n.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
                    _ => None,
                });
                let mac: Option<[u8; 6]> = n.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::LinkLayerAddress(m) => m.as_slice().try_into().ok(),
                    _ => None,
                });
                let wanted = match family {
                    AddressFamily::Inet => dst.is_some_and(|d| gateways.contains(&d)),
                    // The device's own entries (its MAC, no destination) stay.
                    _ => match (mac, dst) {
                        (Some(m), Some(d)) => macs.get(&m) == Some(&d),
                        _ => true,
                    },
                };
                if !wanted {
                    stale.push(n);
                }
            }
        }
        for n in stale {
            let deleted = handle.neighbours().del(n).execute().await;
            unless_errno(deleted, Errno::ENOENT).map_err(nl("deleting a stale neighbour"))?;
        }
        Ok(())
    }

    /// Deletes the device (its routes and entries go with it).
    pub async fn remove(&self) -> Result<(), NetError> {
        let handle = connect_here()?;
        let Some(link) = link_by_name(&handle, &self.device).await? else {
            return Ok(());
        };
        let deleted = handle.link().del(link.header.index).execute().await;
        unless_errno(deleted, Errno::ENODEV)
            .map(drop)
            .map_err(nl(format!("deleting {}", self.device)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_round_trip() {
        let mac = [0x0a, 0x1b, 0xff, 0x00, 0x42, 0x99];
        assert_eq!(format_mac(&mac), "0a:1b:ff:00:42:99");
        assert_eq!(parse_mac("0a:1b:ff:00:42:99"), Some(mac));
        assert_eq!(parse_mac("0a:1b:ff:00:42"), None);
        assert_eq!(parse_mac("0a:1b:ff:00:42:99:00"), None);
        assert_eq!(parse_mac("0a:1b:ff:00:42:zz"), None);
        assert_eq!(parse_mac("a:1b:ff:00:42:99"), None);
    }
}
