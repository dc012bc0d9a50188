//! Policy controllers, built on the `controllers` framework:
//! [`resourcequota`] (keeps ResourceQuota status in step with the namespace's
//! objects), [`disruption`] (PodDisruptionBudget status) and [`hpa`] (the
//! HorizontalPodAutoscaler, autoscaling/v2).
//!
//! [`descriptors`] lists them for the controller manager.

pub mod disruption;
pub mod hpa;
pub mod resourcequota;

use controllers::ControllerDescriptor;

/// The controllers of this crate, for the controller manager's registry.
pub fn descriptors() -> Vec<ControllerDescriptor> {
    vec![
        ControllerDescriptor {
            name: resourcequota::RESOURCE_QUOTA_CONTROLLER_NAME,
            aliases: &["resourcequota"],
            disabled_by_default: false,
            start: resourcequota::start_resource_quota_controller,
        },
        ControllerDescriptor {
            name: disruption::DISRUPTION_CONTROLLER_NAME,
            aliases: &["disruption"],
            disabled_by_default: false,
            start: disruption::start_disruption_controller,
        },
        ControllerDescriptor {
            name: hpa::HPA_CONTROLLER_NAME,
            aliases: &["horizontalpodautoscaling"],
            disabled_by_default: false,
            start: hpa::start_hpa_controller,
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
