//! Controllers of the apps workloads, built on the `controllers` framework:
//! [`replicaset`] (ReplicaSet and ReplicationController, one implementation) and
//! [`deployment`] (Deployment, rolling out through ReplicaSets), [`daemonset`]
//! (DaemonSet) and [`statefulset`] (StatefulSet); [`history`] holds the
//! ControllerRevision machinery the last two share, and a private `owner` module the
//! informer handlers, claiming and worker start-up all of them share.
//!
//! [`descriptors`] lists them for the controller manager.

pub mod daemonset;
pub mod deployment;
pub mod history;
mod owner;
pub mod replicaset;
pub mod statefulset;

use controllers::ControllerDescriptor;

/// The controllers of this crate, for the controller manager's registry.
pub fn descriptors() -> Vec<ControllerDescriptor> {
    vec![
        ControllerDescriptor {
            name: replicaset::REPLICASET_CONTROLLER_NAME,
            aliases: &["replicaset"],
            disabled_by_default: false,
            start: replicaset::start_replicaset_controller,
        },
        ControllerDescriptor {
            name: replicaset::REPLICATION_CONTROLLER_NAME,
            aliases: &["replicationcontroller"],
            disabled_by_default: false,
            start: replicaset::start_replication_controller,
        },
        ControllerDescriptor {
            name: deployment::DEPLOYMENT_CONTROLLER_NAME,
            aliases: &["deployment"],
            disabled_by_default: false,
            start: deployment::start_deployment_controller,
        },
        ControllerDescriptor {
            name: daemonset::DAEMONSET_CONTROLLER_NAME,
            aliases: &["daemonset"],
            disabled_by_default: false,
            start: daemonset::start_daemonset_controller,
        },
        ControllerDescriptor {
            name: statefulset::STATEFULSET_CONTROLLER_NAME,
            aliases: &["statefulset"],
            disabled_by_default: false,
            start: statefulset::start_statefulset_controller,
        },
    ]
}

/// Starts the controller of this crate named `name` (canonical name or alias) on
/// `ctx`, for tests and embedders that run one controller alone.
pub fn start(
    ctx: &controllers::ControllerContext,
    name: &str,
) -> Result<controllers::ControllerFuture, controllers::ControllerError> {
    let d = descriptors()
        .into_iter()
        .find(|d| d.name == name || d.aliases.contains(&name))
        .ok_or_else(|| {
            controllers::ControllerError::Config(format!(
                "{name:?} is not in the list of known controllers"
            ))
        })?;
    (d.start)(ctx)
}
