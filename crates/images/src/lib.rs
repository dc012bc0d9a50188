//! The kubelet's image store (what containerd's content store and overlay snapshotter
//! do for a CRI runtime): imports OCI layout and `docker save` archives, keeps blobs
//! content-addressed and verified, resolves references as Docker normalises them,
//! unpacks layers once and mounts overlayfs root filesystems for containers, and
//! garbage-collects images by disk usage as the kubelet does, and pulls images from
//! OCI / Docker registries with pull-secret credentials.
//!
//! [`testimage`] builds small image archives (e.g. busybox from the host's static
//! busybox) for other crates' tests.

#![warn(missing_docs)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod archive;
mod auth;
pub mod compress;
pub mod digest;
mod error;
pub mod mount;
pub mod oci;
pub mod reference;
mod store;
pub mod testimage;
mod unpack;

pub use auth::{auths_from_docker_config, RegistryAuth};
pub use error::{Error, PullError, PullErrorKind};
pub use reference::{normalize_reference, Reference};
pub use store::{
    DiskUsage, GcReport, ImageStore, MountPoint, PullOptions, RootfsLayers, Unresolved,
    ARCHIVE_SUFFIXES, DEFAULT_GC_MIN_AGE,
};
pub use testimage::{busybox_image, TestImage};

/// An image in the store, as the kubelet reports it in node status and uses it to
/// build containers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Image {
    /// `sha256:<hex>` digest of the image config.
    pub id: String,
    /// Normalised tags, e.g. `docker.io/library/busybox:latest`.
    pub repo_tags: Vec<String>,
    /// `docker.io/library/busybox@sha256:<manifest or index digest>`.
    pub repo_digests: Vec<String>,
    /// Compressed layer sizes plus the config size, in bytes.
    pub size: u64,
    /// Runtime defaults from the image config.
    pub config: ImageConfig,
}

/// The runtime defaults of an image (the `config` object of the OCI image config).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageConfig {
    /// Entrypoint.
    pub entrypoint: Vec<String>,
    /// Default arguments (or command when there is no entrypoint).
    pub cmd: Vec<String>,
    /// `NAME=value` environment entries.
    pub env: Vec<String>,
    /// Working directory; empty means `/`.
    pub working_dir: String,
    /// User (`name`, `uid`, `uid:gid`, ...); empty means root.
    pub user: String,
    /// Exposed ports such as `80/tcp`, sorted.
    pub exposed_ports: Vec<String>,
    /// Image labels.
    pub labels: BTreeMap<String, String>,
    /// Signal to stop the container with, e.g. `SIGQUIT`.
    pub stop_signal: Option<String>,
}
