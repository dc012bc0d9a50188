//! Per-kind rules of upstream Kubernetes 1.33 on k8s-openapi typed objects:
//! defaulting (`SetDefaults_*` and the generated defaulters), the registry
//! strategies' create/update preparation, and validation with upstream's
//! exact field paths and messages.
//!
//! Every supported kind implements [`KindRules`]. Generic `ObjectMeta`
//! checks (name format, labels, annotations, owner references, ...) are the
//! caller's job (see `apimachinery::validation::validate_object_meta`);
//! kind-specific metadata rules are included here.
//!
//! Bad values in messages render like upstream 1.33: strings quoted,
//! numbers bare, and Go composite values (label maps, string slices, label
//! selectors, service ports) in Go's `%#v` syntax. Composite values that
//! upstream prints with pointer addresses are rendered as JSON instead.

pub mod apps;
pub mod batch;
pub mod certificates;
pub mod core;
pub mod cron;
pub mod other;
mod semantic;
pub mod util;

#[cfg(test)]
mod tests;

pub use apimachinery::{FieldError, Path};

use std::collections::BTreeMap;

/// Who makes a request, as upstream's `user.Info` reaches registry strategies: name,
/// UID, groups and extra attributes. Kinds that record their requester
/// (CertificateSigningRequest) read it on create.
#[derive(Clone, Copy, Debug)]
pub struct UserInfo<'a> {
    /// User name.
    pub name: &'a str,
    /// UID ("" when the authenticator has none).
    pub uid: &'a str,
    /// Groups.
    pub groups: &'a [String],
    /// Extra attributes.
    pub extra: &'a BTreeMap<String, Vec<String>>,
}

/// The upstream rules of one kind.
pub trait KindRules: Sized {
    /// Upstream defaulting (`SetDefaults_*` and generated defaulters),
    /// applied on create and update.
    fn default(&mut self) {}

    /// What the registry strategy's `PrepareForCreate` does (reset status,
    /// set generation, generate selectors, ...).
    fn prepare_for_create(&mut self) {}

    /// The part of `PrepareForCreate` that reads the requesting user; runs after
    /// [`KindRules::prepare_for_create`]. Most kinds ignore who asks.
    fn prepare_for_create_by(&mut self, _user: &UserInfo<'_>) {}

    /// `PrepareForUpdate` of the main resource (keep the old status where
    /// the kind has a status subresource, bump generation on spec change).
    fn prepare_for_update(&mut self, _old: &Self) {}

    /// `PrepareForUpdate` of the status subresource (keep everything but
    /// the status).
    fn prepare_for_status_update(&mut self, _old: &Self) {}

    /// Validation of a new object, excluding the generic ObjectMeta checks
    /// the caller runs, but including kind-specific metadata rules.
    fn validate(&self) -> Vec<FieldError>;

    /// Validation of an update, including immutable fields (generic
    /// ObjectMeta update checks excluded).
    fn validate_update(&self, old: &Self) -> Vec<FieldError>;

    /// Validation of a status update (generic ObjectMeta update checks
    /// excluded).
    fn validate_status_update(&self, old: &Self) -> Vec<FieldError>;

    /// `PrepareForUpdate` and validation of an update through another writable
    /// subresource with rules of its own (`approval` of CertificateSigningRequests);
    /// `None` when the kind has no such subresource.
    fn update_subresource(&mut self, _subresource: &str, _old: &Self) -> Option<Vec<FieldError>> {
        None
    }
}
