//! Controllers of services and namespaces, built on the `controllers` framework:
//! - [`endpoints`]: the core/v1 Endpoints of every service with a selector;
//! - [`endpointslice`]: the discovery.k8s.io/v1 EndpointSlices of those services;
//! - [`serviceaccount`]: the `default` ServiceAccount of every namespace;
//! - [`rootca`]: the `kube-root-ca.crt` ConfigMap of every namespace;
//! - [`servicelb`]: node addresses as the ingress of LoadBalancer Services.
//!
//! [`podutil`] holds what the two endpoint controllers share; `workers` the worker
//! loop all of them share. [`descriptors`] lists
//! the controllers for the controller manager.

pub mod endpoints;
pub mod endpointslice;
pub mod podutil;
pub mod rootca;
pub mod serviceaccount;
pub mod servicelb;
mod workers;

use controllers::{ControllerContext, ControllerDescriptor, ControllerError, ControllerFuture};

/// The controllers of this crate, for the controller manager's registry.
pub fn descriptors() -> Vec<ControllerDescriptor> {
    vec![
        ControllerDescriptor {
            name: endpoints::ENDPOINTS_CONTROLLER_NAME,
            aliases: &["endpoint"],
            disabled_by_default: false,
            start: endpoints::start_endpoints_controller,
        },
        ControllerDescriptor {
            name: endpointslice::ENDPOINTSLICE_CONTROLLER_NAME,
            aliases: &["endpointslice"],
            disabled_by_default: false,
            start: endpointslice::start_endpointslice_controller,
        },
        ControllerDescriptor {
            name: serviceaccount::SERVICEACCOUNT_CONTROLLER_NAME,
            aliases: &["serviceaccount"],
            disabled_by_default: false,
            start: serviceaccount::start_serviceaccount_controller,
        },
        ControllerDescriptor {
            name: rootca::ROOT_CA_PUBLISHER_CONTROLLER_NAME,
            aliases: &["root-ca-cert-publisher"],
            disabled_by_default: false,
            start: rootca::start_root_ca_publisher,
        },
        ControllerDescriptor {
            name: servicelb::SERVICE_LB_CONTROLLER_NAME,
            aliases: &["service", "servicelb"],
            disabled_by_default: false,
            start: servicelb::start_service_lb_controller,
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
            [
                ("endpoints-controller", &["endpoint"][..]),
                ("endpointslice-controller", &["endpointslice"][..]),
                ("serviceaccount-controller", &["serviceaccount"][..]),
                (
                    "root-ca-certificate-publisher-controller",
                    &["root-ca-cert-publisher"][..]
                ),
                ("service-lb-controller", &["service", "servicelb"][..]),
            ]
        );
    }
}
