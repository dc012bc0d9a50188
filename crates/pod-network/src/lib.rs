//! The node's pod network: [`ipam::HostLocal`] hands out pod addresses from the
//! node's podCIDR and keeps them on disk; [`bridge::Bridge`] connects each pod's
//! network namespace to the node's bridge through a veth pair; [`hostport::HostPorts`]
//! forwards pods' host ports. The overlay between nodes builds on them.

pub mod bridge;
pub mod hostport;
pub mod ipam;

pub use bridge::{host_ifname, Bridge, NetError, POD_IFNAME};
pub use hostport::{HostPort, HostPorts};
pub use ipam::{gateway_of, HostLocal, IpamError};
