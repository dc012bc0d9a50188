//! The values that cross the [`Storage`](crate::Storage) trait: key-values, list options
//! and results, watch events.

use crate::StoreError;
use bytes::Bytes;
use futures::stream::BoxStream;

/// A store revision. Revisions start at 1 and only grow.
pub type Revision = i64;

/// Largest value a store accepts, as etcd's default request limit (1.5 MiB).
pub const MAX_VALUE_BYTES: usize = 1536 * 1024;

/// One stored key with its value and revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key, e.g. `/registry/pods/default/web-0`.
    pub key: String,
    /// The stored bytes (an object's JSON).
    pub value: Bytes,
    /// Revision at which this key was created (this generation of it).
    pub create_revision: Revision,
    /// Revision of the last change to this key.
    pub mod_revision: Revision,
}

/// Which revision a read must reflect (Kubernetes' resourceVersion semantics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadAt {
    /// The latest committed state (a consistent read).
    #[default]
    Latest,
    /// Exactly this revision (from history if need be).
    Exact(Revision),
    /// Any state at least this new; `NotOlderThan(0)` accepts whatever a cache holds.
    NotOlderThan(Revision),
}

/// How to list a key range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// The revision to read at.
    pub at: ReadAt,
    /// Start at this key (inclusive) instead of at the prefix itself.
    pub start: Option<String>,
    /// Return at most this many items (0 = no limit).
    pub limit: usize,
}

/// The result of a list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListResult {
    /// Items in key order.
    pub items: Vec<KeyValue>,
    /// The revision the list was read at.
    pub revision: Revision,
    /// Whether more items follow the last one returned.
    pub more: bool,
    /// How many items follow the last one returned (known when `more`).
    pub remaining: u64,
}

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created.
    Created,
    /// The key's value was replaced.
    Updated,
    /// The key was deleted.
    Deleted,
}

/// One change to one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Created, updated or deleted.
    pub kind: EventKind,
    /// The key that changed.
    pub key: String,
    /// The new value; for deletions the last value the key had.
    pub value: Bytes,
    /// The previous value, for updates and deletions.
    pub prev_value: Option<Bytes>,
    /// The revision of this change.
    pub revision: Revision,
    /// Create revision of the key's generation (for deletions: of the deleted one).
    pub create_revision: Revision,
}

impl Event {
    /// The key-value this event leaves behind (for deletions: the last value, at the
    /// deletion's revision, as Kubernetes reports deleted objects).
    pub fn key_value(&self) -> KeyValue {
        KeyValue {
            key: self.key.clone(),
            value: self.value.clone(),
            create_revision: self.create_revision,
            mod_revision: self.revision,
        }
    }
}

/// An item of a watch: a change, or word that the store has reached a revision without
/// any change under the watched prefix (used for bookmarks and consistent reads).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchItem {
    /// A change under the prefix.
    Event(Event),
    /// Everything up to this revision has been delivered.
    Progress(Revision),
}

/// A stream of watch items in revision order. It ends with an error if the watch can
/// not go on (for example [`StoreError::Compacted`] after falling too far behind).
pub type WatchStream = BoxStream<'static, Result<WatchItem, StoreError>>;

/// The first key after every key starting with `prefix` (etcd's range end for a prefix).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
