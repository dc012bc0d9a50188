//! Controllers that look after nodes, built on the `controllers` framework:
//! - [`nodelifecycle`]: watches node heartbeats (NodeStatus and Lease renewals), marks
//!   silent nodes Unknown, keeps the condition taints in step, taints unhealthy nodes
//!   `NoExecute` at a per-zone rate, and marks pods of unready nodes not ready;
//! - [`tainteviction`]: deletes pods that do not tolerate the `NoExecute` taints of
//!   their node (at once, or after their `tolerationSeconds`);
//! - [`nodeipam`]: hands out pod CIDRs to nodes from the cluster CIDRs;
//! - [`podgc`]: force-deletes excess terminated pods, orphaned pods, and terminating
//!   pods nobody will finish.
//!
//! Shared pieces: [`clock`] (wall-clock injection), [`taints`] (taint and toleration
//! helpers, node taint patches), [`ratelimit`] (the rate-limited timed queue of nodes
//! to taint), [`pods`] (pod condition helpers). [`descriptors`] lists the controllers
//! for the controller manager.

pub mod clock;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
pub mod pods;
pub mod ratelimit;
pub mod tainteviction;
pub mod taints;

use controllers::{ControllerContext, ControllerDescriptor, ControllerError, ControllerFuture};

/// The controllers of this crate, for the controller manager's registry.
pub fn descriptors() -> Vec<ControllerDescriptor> {
    vec![
        ControllerDescriptor {
            name: nodelifecycle::NODE_LIFECYCLE_CONTROLLER_NAME,
            aliases: &["nodelifecycle"],
            disabled_by_default: false,
            start: nodelifecycle::start_node_lifecycle_controller,
        },
        ControllerDescriptor {
            name: tainteviction::TAINT_EVICTION_CONTROLLER_NAME,
            aliases: &[],
            disabled_by_default: false,
            start: tainteviction::start_taint_eviction_controller,
        },
        ControllerDescriptor {
            name: nodeipam::NODE_IPAM_CONTROLLER_NAME,
            aliases: &["nodeipam"],
            disabled_by_default: false,
            start: nodeipam::start_node_ipam_controller,
        },
        ControllerDescriptor {
            name: podgc::POD_GC_CONTROLLER_NAME,
            aliases: &["podgc"],
            disabled_by_default: false,
            start: podgc::start_pod_gc_controller,
        },
    ]
}

/// Starts the controller of this crate named `name` (canonical name or alias) on
/// `ctx`, for tests and embedders that run one controller alone.
pub fn start(ctx: &ControllerContext, name: &str) -> Result<ControllerFuture, ControllerError> {
    let d = descriptors()
        .into_iter()
        .find(|d| d.name == name || d.aliases.contains(&name))
        .ok_or_else(|| {
            ControllerError::Config(format!("{name:?} is not in the list of known controllers"))
        })?;
    (d.start)(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_upstream() {
        let names: Vec<(&str, &[&str])> =
            descriptors().iter().map(|d| (d.name, d.aliases)).collect();
        assert_eq!(
            names,
            vec![
                ("node-lifecycle-controller", &["nodelifecycle"][..]),
                ("taint-eviction-controller", &[][..]),
                ("node-ipam-controller", &["nodeipam"][..]),
                ("pod-garbage-collector-controller", &["podgc"][..]),
            ]
        );
        assert!(descriptors().iter().all(|d| !d.disabled_by_default));
    }
}
