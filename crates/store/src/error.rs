//! The storage error type shared by all backends.

use crate::{KeyValue, Revision};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key does not exist.
    #[error("key {key} not found")]
    NotFound {
        /// The missing key.
        key: String,
    },
    /// Create of a key that exists.
    #[error("key {key} already exists")]
    AlreadyExists {
        /// The existing key.
        key: String,
    },
    /// A compare-and-swap precondition failed; `current` is the value now stored.
    #[error("key {key} was modified: expected revision {expected}, found {actual}")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// The revision found.
        actual: Revision,
        /// The current value, when the backend returned it.
        current: Option<Box<KeyValue>>,
    },
    /// The requested revision has been compacted away.
    #[error("revision {requested} has been compacted (compacted at {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The store's compaction revision.
        compacted: Revision,
    },
    /// The requested revision is ahead of the store.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The store's latest revision.
        current: Revision,
    },
    /// The value is larger than the store accepts.
    #[error("request is too large: {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the value.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The backend failed (I/O, corruption, network).
    #[error("storage backend error: {0}")]
    Backend(String),
    /// The store has been shut down.
    #[error("the store is closed")]
    Closed,
    /// The operation did not finish in time.
    #[error("storage operation timed out")]
    Timeout,
}

impl StoreError {
    /// Wraps any backend error.
    pub fn backend(err: impl std::fmt::Display) -> Self {
        StoreError::Backend(err.to_string())
    }
}
