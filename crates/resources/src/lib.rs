//! The API resources ferrokube serves.
//!
//! [`catalog`] lists every resource with what discovery reports about it (group,
//! version, kind, plural and singular names, scope, verbs, short names, categories,
//! subresources) and how it is stored. Each stored resource has a [`Strategy`]: the
//! per-kind rules the generic REST handler applies on create and update, in the shape
//! of Kubernetes' registry strategies.

pub mod catalog;
pub mod strategy;
pub mod typed;

pub use catalog::{catalog, find, find_by_kind, Backing, ResourceInfo, Scope, SubresourceInfo};
pub use strategy::{GenericStrategy, Strategy};
pub use typed::TypedStrategy;
pub use validation::UserInfo;
