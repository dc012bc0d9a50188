//! The certificates.k8s.io controllers of upstream's kube-controller-manager, built
//! on the `controllers` framework:
//! - [`approver`] (`csrapproving`): approves kubelet client certificate requests made
//!   by bootstrapping nodes, or by a node renewing its own;
//! - [`signer`] (`csrsigning`): issues approved requests of the `kubernetes.io`
//!   signers with the CA of `--cluster-signing-cert-file`/`--cluster-signing-key-file`;
//! - [`cleaner`] (`csrcleaner`): deletes requests once they are done or stale.
//!
//! [`controller`] is the loop the approver and the signer share (upstream's
//! `CertificateController`: every request without a certificate goes to a handler);
//! [`request`] holds what they read from a request. [`descriptors`] lists the
//! controllers for the controller manager.

pub mod approver;
pub mod cleaner;
pub mod controller;
pub mod request;
pub mod signer;

use controllers::ControllerDescriptor;

/// The controllers of this crate, for the controller manager's registry.
pub fn descriptors() -> Vec<ControllerDescriptor> {
    vec![
        ControllerDescriptor {
            name: signer::CSR_SIGNING_CONTROLLER_NAME,
            aliases: &["csrsigning"],
            disabled_by_default: false,
            start: signer::start_csr_signing_controller,
        },
        ControllerDescriptor {
            name: approver::CSR_APPROVING_CONTROLLER_NAME,
            aliases: &["csrapproving"],
            disabled_by_default: false,
            start: approver::start_csr_approving_controller,
        },
        ControllerDescriptor {
            name: cleaner::CSR_CLEANER_CONTROLLER_NAME,
            aliases: &["csrcleaner"],
            disabled_by_default: false,
            start: cleaner::start_csr_cleaner_controller,
        },
    ]
}
