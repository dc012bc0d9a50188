//! Strategic merge patch and server-side apply for ferrokube, over
//! `serde_json::Value` objects, with Kubernetes' semantics, output formats
//! and error messages.
//!
//! - [`schema`]: the type graph describing object shapes (structs, maps,
//!   lists and their merge metadata), built by callers from OpenAPI.
//! - [`strategic`]: applying and computing strategic merge patches,
//!   directives included.
//! - [`fieldpath`]: field paths and field sets, and the `fieldsV1` encoding
//!   of `metadata.managedFields`.
//! - [`apply`]: managed fields bookkeeping for ordinary writes and
//!   server-side apply with conflict detection.

pub mod apply;
pub mod fieldpath;
pub mod schema;
pub mod strategic;

mod goval;
mod typed;

pub use apply::{
    conflict_causes, conflict_message, conflict_status, ApplyError, Conflict, FieldManager,
    ManagedFields, ManagedFieldsEntry, ManagedFieldsError, Operation,
};
pub use fieldpath::{field_set_of, FieldPathError, FieldSet, Path, PathElement};
pub use schema::{Field, ListType, StructDef, TypeDef, TypeGraph, TypeId, TypeRef};
pub use strategic::{apply_strategic_patch, create_two_way_patch, PatchError};
