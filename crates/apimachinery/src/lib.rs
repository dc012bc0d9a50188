//! Small, pure building blocks of Kubernetes' apimachinery, shared by the
//! apiserver and the per-resource validation code.
//!
//! - [`field`]: field paths and field-level validation errors, rendered exactly
//!   like upstream (`spec.containers[0].image: Required value`).
//! - [`validation`]: name/label/annotation/port/IP primitives and object
//!   metadata validation on `serde_json::Value`.
//! - [`labels`]: label selectors (string syntax and `metav1.LabelSelector`).
//! - [`fields`]: field selectors (`metadata.name=foo,status.phase!=Running`).
//! - [`quantity`]: `resource.Quantity` parsing, arithmetic and canonical form.
//! - [`gofmt`]: helpers reproducing Go's `%q` and `%v` formatting, which
//!   upstream messages embed.

pub mod field;
pub mod fields;
pub mod gofmt;
pub mod labels;
pub mod quantity;
pub mod validation;

pub use field::{ErrorKind, FieldError, Path};
pub use quantity::{Format, Quantity, QuantityError};
