//! Facts derived from a pod spec that the kubelet and the simulated nodes both need.
//!
//! - [`qos`]: the pod's QoS class (`Guaranteed`, `Burstable`, `BestEffort`).

pub mod qos;

pub use qos::pod_qos_class;
