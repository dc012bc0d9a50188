//! Test helpers shared by the unit tests (included from `lib.rs` under
//! `cfg(test)`) and the end-to-end tests in `sim.rs`: readers of the container
//! and node status a simulated kubelet reports, and what a healthy node reports.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ContainerStateTerminated, ContainerStatus, NodeCondition, NodeStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The NodeConditions of a healthy node, as (type, status, reason, message) in
/// the order the kubelet lists them.
pub const NODE_CONDITIONS: [(&str, &str, &str, &str); 4] = [
    (
        "MemoryPressure",
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    (
        "DiskPressure",
        "False",
        "KubeletHasNoDiskPressure",
        "kubelet has no disk pressure",
    ),
    (
        "PIDPressure",
        "False",
        "KubeletHasSufficientPID",
        "kubelet has sufficient PID available",
    ),
    (
        "Ready",
        "True",
        "KubeletReady",
        "kubelet is posting ready status",
    ),
];

/// The node's conditions as (type, status, reason, message); panics on a
/// condition without reason or message.
pub fn node_conditions(s: &NodeStatus) -> Vec<(&str, &str, &str, &str)> {
    s.conditions
        .iter()
        .flatten()
        .map(|c| {
            (
                c.type_.as_str(),
                c.status.as_str(),
                c.reason.as_deref().unwrap(),
                c.message.as_deref().unwrap(),
            )
        })
        .collect()
}

/// The node's condition of type `ty`; panics when there is none.
pub fn node_condition<'a>(s: &'a NodeStatus, ty: &str) -> &'a NodeCondition {
    s.conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == ty)
        .unwrap()
}

/// The node's addresses as (type, address); panics when there are none.
pub fn node_addresses(s: &NodeStatus) -> Vec<(&str, &str)> {
    s.addresses
        .as_ref()
        .unwrap()
        .iter()
        .map(|a| (a.type_.as_str(), a.address.as_str()))
        .collect()
}

/// The kubelet port the node reports; panics when it reports none.
pub fn kubelet_port(s: &NodeStatus) -> i32 {
    s.daemon_endpoints
        .as_ref()
        .unwrap()
        .kubelet_endpoint
        .as_ref()
        .unwrap()
        .port
}

/// Asserts the well-known labels a kubelet registers its node with.
pub fn assert_kubelet_labels(labels: &BTreeMap<String, String>, hostname: &str) {
    assert_eq!(labels["kubernetes.io/hostname"], hostname);
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["kubernetes.io/arch"], "amd64");
}

/// The container's current state, which must be terminated.
pub fn terminated(c: &ContainerStatus) -> &ContainerStateTerminated {
    c.state.as_ref().unwrap().terminated.as_ref().unwrap()
}

/// The container's last state, which must be terminated.
pub fn last_exit(c: &ContainerStatus) -> &ContainerStateTerminated {
    c.last_state.as_ref().unwrap().terminated.as_ref().unwrap()
}

/// When the container's current run started; its state must be running.
pub fn running_since(c: &ContainerStatus) -> Option<&Time> {
    c.state
        .as_ref()
        .unwrap()
        .running
        .as_ref()
        .unwrap()
        .started_at
        .as_ref()
}
