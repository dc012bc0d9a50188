//! The garbage collection controllers, built on the `controllers` framework:
//! - [`garbagecollector`]: cascading deletion through ownerReferences (background,
//!   foreground and orphan propagation), over every discovered resource;
//! - [`namespace`]: emptying namespaces that are being deleted, then releasing them.
//!
//! Both work on resources known only at run time, so the crate brings its own
//! [`discovery`] (preferred resources, REST mapping) and a metadata-only informer
//! ([`metadata_informer`]) for such resources.
//!
//! [`descriptors`] lists the controllers for the controller manager.

pub mod discovery;
pub mod garbagecollector;
pub mod metadata_informer;
pub mod namespace;

use controllers::ControllerDescriptor;

/// The controllers of this crate, for the controller manager's registry.
pub fn descriptors() -> Vec<ControllerDescriptor> {
    vec![
        ControllerDescriptor {
            name: garbagecollector::GARBAGE_COLLECTOR_CONTROLLER_NAME,
            aliases: &["garbagecollector"],
            disabled_by_default: false,
            start: garbagecollector::start_garbage_collector,
        },
        ControllerDescriptor {
            name: namespace::NAMESPACE_CONTROLLER_NAME,
            aliases: &["namespace"],
            disabled_by_default: false,
            start: namespace::start_namespace_controller,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases() {
        let d = descriptors();
        let names: Vec<(&str, &[&str])> = d.iter().map(|d| (d.name, d.aliases)).collect();
        assert_eq!(
            names,
            vec![
                ("garbage-collector-controller", &["garbagecollector"][..]),
                ("namespace-controller", &["namespace"][..]),
            ]
        );
        assert!(d.iter().all(|d| !d.disabled_by_default));
    }
}
