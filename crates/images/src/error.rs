//! The error type of the image store: one variant per cause, each message naming the
//! object involved so an operator can act on it.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the image store.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// A reference does not follow the Docker reference grammar.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No image matches the reference.
    #[error("image {0:?} not found in the node's image store")]
    NotFound(String),

    /// A short id prefix matches more than one image.
    #[error("image id prefix {prefix:?} matches {count} images; give more characters of the id")]
    AmbiguousId {
        /// The prefix as given.
        prefix: String,
        /// How many image ids start with it.
        count: usize,
    },

    /// The image is used by a running container and cannot be deleted.
    #[error("image {id} is in use by a container; stop the container before removing the image")]
    InUse {
        /// Id of the image.
        id: String,
    },

    /// The archive is neither an OCI image layout nor a `docker save` archive.
    #[error(
        "{path}: not an image archive (no index.json of an OCI image layout and no manifest.json of docker save)"
    )]
    UnrecognizedArchive {
        /// The archive.
        path: PathBuf,
    },

    /// The archive file cannot be read as a (possibly compressed) tar archive.
    #[error("{path}: not a readable tar archive: {reason}")]
    InvalidArchive {
        /// The archive.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// Content does not hash to the digest it is stored or referenced under.
    #[error("{what}: content has digest {actual} but {expected} was expected; the data is corrupt or was modified")]
    DigestMismatch {
        /// What was checked (blob, layer diff id, ...).
        what: String,
        /// The digest the content should have.
        expected: String,
        /// The digest it has.
        actual: String,
    },

    /// Content has a different size than its descriptor says.
    #[error("{what}: content is {actual} bytes but its descriptor says {expected}")]
    SizeMismatch {
        /// What was checked.
        what: String,
        /// Size from the descriptor.
        expected: u64,
        /// Size of the content.
        actual: u64,
    },

    /// A blob needed by a manifest is not present.
    #[error("blob {digest} (needed by {needed_by}) is missing")]
    MissingBlob {
        /// Digest of the missing blob.
        digest: String,
        /// What references it.
        needed_by: String,
    },

    /// A digest string is malformed or uses an algorithm other than sha256.
    #[error("invalid or unsupported digest {0:?}: expected sha256:<64 lowercase hex digits>")]
    InvalidDigest(String),

    /// An index, manifest or config document cannot be understood.
    #[error("invalid {what}: {reason}")]
    InvalidDocument {
        /// Which document.
        what: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A manifest or layer uses a media type this store cannot handle.
    #[error("{what} has unsupported media type {media_type:?}")]
    UnsupportedMediaType {
        /// Which object.
        what: String,
        /// Its media type.
        media_type: String,
    },

    /// A layer entry would be written outside the layer directory.
    #[error(
        "layer {layer}: entry {entry:?} escapes the layer root ({reason}); refusing to unpack"
    )]
    PathTraversal {
        /// Digest of the layer.
        layer: String,
        /// Path of the offending tar entry.
        entry: String,
        /// Why it is rejected.
        reason: String,
    },

    /// A layer archive is malformed in a way other than path traversal.
    #[error("layer {layer}: {reason}")]
    InvalidLayer {
        /// Digest of the layer.
        layer: String,
        /// What is wrong.
        reason: String,
    },

    /// An archive holds images, but none for this node's platform.
    #[error("{path}: no image in the archive is built for this node's platform ({platform})")]
    NoMatchingPlatform {
        /// The archive.
        path: PathBuf,
        /// The node's platform, e.g. linux/amd64.
        platform: String,
    },

    /// Mounting the overlay root filesystem failed.
    #[error("mounting overlay root filesystem at {path}: {source}")]
    Mount {
        /// Mount point.
        path: PathBuf,
        /// The system error.
        source: io::Error,
    },

    /// Something is still mounted under a container directory after unmounting it.
    #[error(
        "{path} is still mounted after unmounting; refusing to delete the container directory"
    )]
    StillMounted {
        /// The mount point still present.
        path: PathBuf,
    },

    /// A path cannot be passed in overlayfs mount options.
    #[error("path {path} contains ',' or ':' and cannot be used in an overlay mount")]
    UnsupportedPath {
        /// The path.
        path: PathBuf,
    },

    /// The image garbage collection thresholds are out of range.
    #[error(
        "invalid image GC thresholds: high {high}% and low {low}% must satisfy low < high <= 100"
    )]
    InvalidGcThresholds {
        /// imageGCHighThresholdPercent.
        high: u8,
        /// imageGCLowThresholdPercent.
        low: u8,
    },

    /// The image filesystem reports zero capacity.
    #[error("invalid capacity 0 on image filesystem")]
    InvalidCapacity,

    /// The store's metadata file cannot be parsed.
    #[error("image store metadata {path} is corrupt ({reason}); move it away to start with an empty store")]
    CorruptMetadata {
        /// The metadata file.
        path: PathBuf,
        /// Parse error.
        reason: String,
    },

    /// Pulling an image from a registry failed; the message has containerd's shape
    /// (`failed to pull and unpack image "<ref>": ...`).
    #[error(transparent)]
    Pull(#[from] PullError),

    /// A `.dockerconfigjson` or `.dockercfg` document cannot be read.
    #[error("invalid docker config: {reason}")]
    InvalidDockerConfig {
        /// What is wrong with it.
        reason: String,
    },

    /// An operating system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path involved.
        context: String,
        /// The system error.
        source: io::Error,
    },
}

/// The cause of a failed pull, as far as the kubelet needs to tell causes apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullErrorKind {
    /// The registry has no such repository, tag or digest (HTTP 404, `MANIFEST_UNKNOWN`,
    /// `NAME_UNKNOWN`), or nothing in a multi-platform image fits this node.
    NotFound,
    /// The registry refused the credentials, or anonymous access (HTTP 401 or 403).
    Unauthorized,
    /// The registry could not be reached or the transfer broke off.
    Network,
    /// Anything else: corrupt or tampered content, unsupported documents, server errors,
    /// local storage failures.
    Other,
}

/// A failed registry pull. Cheap to clone, so that concurrent pulls of one reference
/// can all receive the single download's outcome.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PullError {
    /// What kind of failure this is.
    pub kind: PullErrorKind,
    /// The full message, e.g. `failed to pull and unpack image "docker.io/library/x:1":
    /// failed to resolve reference "docker.io/library/x:1": docker.io/library/x:1: not found`.
    pub message: String,
}

impl Error {
    /// True when the image does not exist: a registry answered "not found" for the
    /// reference (or has no manifest for this platform), or a store lookup found nothing.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Pull(p) => p.kind == PullErrorKind::NotFound,
            Error::NotFound(_) => true,
            _ => false,
        }
    }

    /// True when a registry refused access (HTTP 401/403), with or without credentials.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Error::Pull(p) if p.kind == PullErrorKind::Unauthorized)
    }

    /// The kind of a pull failure; `None` for errors that are not pull failures.
    pub fn pull_error_kind(&self) -> Option<PullErrorKind> {
        match self {
            Error::Pull(p) => Some(p.kind),
            _ => None,
        }
    }

    /// Wraps an I/O error with a description of what was being done.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Adds context to `io::Result`s.
pub(crate) trait IoContext<T> {
    /// Converts the error into [`Error::Io`] with the context computed by `f`.
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T, Error>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T, Error> {
        self.map_err(|e| Error::io(f(), e))
    }
}

impl<T> IoContext<T> for Result<T, nix::Error> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T, Error> {
        self.map_err(|e| Error::io(f(), io::Error::from(e)))
    }
}
