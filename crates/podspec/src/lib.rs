//! Facts derived from a pod spec that the kubelet, the scheduler and the simulated
//! nodes need alike.
//!
//! - [`qos`]: the pod's QoS class (`Guaranteed`, `Burstable`, `BestEffort`).
//! - [`resources`]: what a pod requests and what a node can allocate, counted as the
//!   scheduler and the kubelet's admission count them.

pub mod qos;
pub mod resources;

pub use qos::pod_qos_class;
