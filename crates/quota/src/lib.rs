//! Quota evaluation, shared by the apiserver's ResourceQuota admission and the
//! resourcequota controller:
//! - [`resources`]: resource lists and their arithmetic and printing;
//! - [`evaluator`]: what each kind of object charges, and which scopes it falls in
//!   ([`pods`] for the pod specifics);
//! - [`scopes`]: a ResourceQuota as evaluation reads it;
//! - [`admission`]: checking one request against a namespace's quotas;
//! - [`usage`]: recomputing a quota's usage from the objects of its namespace.
//!
//! Objects are handled as JSON (`serde_json::Value`) in their v1 form, so both the
//! apiserver (storage JSON) and controllers (typed objects serialized) can use it.

pub mod admission;
pub mod evaluator;
pub mod pods;
pub mod resources;
pub mod scopes;
pub mod usage;

pub use admission::{check_request, CheckError, UsageChange};
pub use evaluator::{Evaluator, GroupResource, Operation};
pub use resources::ResourceList;
pub use scopes::{QuotaView, ScopeSelectorRequirement};

/// A quota evaluation failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// A scope selector with an operator other than In, NotIn, Exists, DoesNotExist.
    #[error("{} is not a valid scope selector operator", apimachinery::gofmt::quote(.0))]
    InvalidScopeOperator(String),
    /// Listing the objects of a resource failed.
    #[error("{0}")]
    List(String),
}
