//! The node's pod network. Today: [`ipam::HostLocal`], which hands out pod addresses
//! from the node's podCIDR and keeps them on disk; the bridge, the veth pair per pod
//! and the overlay between nodes build on it.

pub mod ipam;

pub use ipam::{HostLocal, IpamError};
