//! The node's pod network: [`ipam::HostLocal`] hands out pod addresses from the
//! node's podCIDR and keeps them on disk; [`bridge::Bridge`] connects each pod's
//! network namespace to the node's bridge through a veth pair; [`hostport::HostPorts`]
//! forwards pods' host ports; [`vxlan::Vtep`] is the node's end of the VXLAN overlay
//! that carries pod traffic between nodes; [`egress`] masquerades pods' traffic
//! leaving the cluster.

pub mod bridge;
pub mod egress;
pub mod hostport;
pub mod ipam;
mod nft;
pub mod vxlan;

pub use bridge::{host_ifname, Bridge, NetError, POD_IFNAME};
pub use hostport::{HostPort, HostPorts};
pub use ipam::{gateway_of, HostLocal, IpamError};
pub use vxlan::{Peer, Vtep, VtepInfo};
