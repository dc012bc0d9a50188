//! ferrokube's storage layer.
//!
//! The [`Storage`] trait is the shape of Kubernetes' `storage.Interface`: point reads,
//! lists at a revision with pagination, create-if-absent, compare-and-swap updates on
//! the modification revision, deletes with preconditions, watches from a revision and
//! compaction. Keys look like `/registry/<resource>/<namespace>/<name>` and values are
//! the object's JSON; revisions are global and monotonic and become the objects'
//! `resourceVersion`.
//!
//! Backends:
//! - [`EmbeddedStore`]: the default, a single data directory, nothing to install.
//! - [`EtcdStore`]: a real etcd v3 cluster.
//! - [`Cacher`]: a watch cache in front of either, serving reads and watches from memory.
//!
//! [`conformance`] is the test suite every backend must pass.

pub mod cacher;
pub mod conformance;
pub mod embedded;
pub mod error;
pub mod etcd;
pub mod types;
pub mod update;

pub use cacher::Cacher;
pub use embedded::{EmbeddedOptions, EmbeddedStore};
pub use error::StoreError;
pub use etcd::EtcdStore;
pub use types::{
    Event, EventKind, KeyValue, ListOptions, ListResult, ReadAt, Revision, WatchItem, WatchStream,
    MAX_VALUE_BYTES,
};
pub use update::{guaranteed_update, UpdateAction};

use async_trait::async_trait;
use bytes::Bytes;

/// Result of storage operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A revisioned key-value store with watch: the contract every backend implements.
///
/// All revisions are global to the store. A successful write returns the revision it
/// was committed at, and that write is durable when the call returns.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Reads one key at the latest revision.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Lists the keys starting with `prefix` (in key order) as described by `opts`.
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult>;

    /// Creates `key`; fails with [`StoreError::AlreadyExists`] when it exists.
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision>;

    /// Replaces `key` if its modification revision is still `expected_revision`.
    ///
    /// Fails with [`StoreError::NotFound`] when the key does not exist and with
    /// [`StoreError::Conflict`] (carrying the current value) when it was changed.
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_revision: Revision,
    ) -> Result<Revision>;

    /// Deletes `key`, if `expected_revision` is given only when it still matches.
    /// Returns the deleted value and the revision of the deletion.
    async fn delete(
        &self,
        key: &str,
        expected_revision: Option<Revision>,
    ) -> Result<(KeyValue, Revision)>;

    /// Watches keys starting with `prefix` for changes after revision `after`
    /// (0 means from now). Fails with [`StoreError::Compacted`] when the history after
    /// `after` is no longer kept.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// The latest committed revision of the whole store.
    async fn current_revision(&self) -> Result<Revision>;

    /// Discards history older than `revision`; reads and watches at or after it still work.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The revision at or below which history has been discarded.
    async fn compacted_revision(&self) -> Result<Revision>;

    /// Asks active watches to report the store's current revision soon (as a
    /// [`WatchItem::Progress`]) even if nothing changed under their prefix; used by
    /// readers waiting for a cache to catch up. Backends whose watches report progress
    /// on every commit need not do anything.
    fn request_progress(&self) {}

    /// Whether every progress revision a watch reports comes after the events up to
    /// it were delivered on that watch, so that a cache may serve consistent reads
    /// once its watch has reported the store's current revision. Backends that cannot
    /// promise this make caches fall back to reading the store.
    fn progress_is_ordered(&self) -> bool {
        true
    }
}
