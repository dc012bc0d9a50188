//! Controller expectations: how many creations and which deletions a controller has
//! issued but not yet seen in its informer. A controller skips creating or deleting
//! while expectations are pending, so that objects in flight are not counted twice
//! (a burst never overshoots). Expectations expire after five minutes, in case a
//! watch event was lost.
//!
//! Deletions are tracked by object key, so that a pod first seen with a deletion
//! timestamp and later seen deleted counts once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// How long expectations are trusted before a controller syncs anyway.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Entry {
    add: i64,
    del: i64,
    set_at: Instant,
    deleting: HashSet<String>,
}

/// Pending creations and deletions per controller key. Safe to share between the
/// informer handlers and the workers.
#[derive(Debug, Default)]
pub struct Expectations {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Expectations {
    /// No expectations.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the controller `key` may act: nothing pending, never set, or expired.
    pub fn satisfied(&self, key: &str) -> bool {
        match self.entries.lock().get(key) {
            None => true,
            Some(e) => (e.add <= 0 && e.del <= 0) || e.set_at.elapsed() > EXPECTATIONS_TIMEOUT,
        }
    }

    /// Records that `adds` creations were issued (replacing earlier expectations).
    pub fn expect_creations(&self, key: &str, adds: usize) {
        self.entries.lock().insert(
            key.to_string(),
            Entry {
                add: i64::try_from(adds).unwrap_or(i64::MAX),
                del: 0,
                set_at: Instant::now(),
                deleting: HashSet::new(),
            },
        );
    }

    /// Records that the objects `deleted_keys` are being deleted (replacing earlier
    /// expectations).
    pub fn expect_deletions(&self, key: &str, deleted_keys: Vec<String>) {
        let deleting: HashSet<String> = deleted_keys.into_iter().collect();
        self.entries.lock().insert(
            key.to_string(),
            Entry {
                add: 0,
                del: i64::try_from(deleting.len()).unwrap_or(i64::MAX),
                set_at: Instant::now(),
                deleting,
            },
        );
    }

    /// One expected creation was observed (or will never happen).
    pub fn creation_observed(&self, key: &str) {
        if let Some(e) = self.entries.lock().get_mut(key) {
            e.add -= 1;
        }
    }

    /// The deletion of `deleted_key` was observed (or will never happen); counts only
    /// if that object was expected to go, and only once.
    pub fn deletion_observed(&self, key: &str, deleted_key: &str) {
        if let Some(e) = self.entries.lock().get_mut(key) {
            if e.deleting.remove(deleted_key) {
                e.del -= 1;
            }
        }
    }

    /// Adjusts pending counts by `add` and `del` (positive raises, negative lowers).
    pub fn raise(&self, key: &str, add: i64, del: i64) {
        if let Some(e) = self.entries.lock().get_mut(key) {
            e.add += add;
            e.del += del;
        }
    }

    /// Forgets the controller `key` (it was deleted).
    pub fn delete(&self, key: &str) {
        self.entries.lock().remove(key);
    }

    /// Pending (creations, deletions) for `key`, if set.
    pub fn pending(&self, key: &str) -> Option<(i64, i64)> {
        self.entries.lock().get(key).map(|e| (e.add, e.del))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations() {
        let e = Expectations::new();
        assert!(e.satisfied("ns/rs"));
        e.expect_creations("ns/rs", 2);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));
        assert_eq!(e.pending("ns/rs"), Some((0, 0)));
        e.delete("ns/rs");
        assert_eq!(e.pending("ns/rs"), None);
    }

    #[test]
    fn deletions_count_each_object_once() {
        let e = Expectations::new();
        e.expect_deletions("ns/rs", vec!["ns/a".into(), "ns/b".into()]);
        e.deletion_observed("ns/rs", "ns/a");
        // Seen again (graceful deletion, then the final delete): no double count.
        e.deletion_observed("ns/rs", "ns/a");
        e.deletion_observed("ns/rs", "ns/unrelated");
        assert!(!e.satisfied("ns/rs"));
        assert_eq!(e.pending("ns/rs"), Some((0, 1)));
        e.deletion_observed("ns/rs", "ns/b");
        assert!(e.satisfied("ns/rs"));
    }

    #[tokio::test(start_paused = true)]
    async fn expire_after_five_minutes() {
        let e = Expectations::new();
        e.expect_creations("k", 3);
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(!e.satisfied("k"));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(e.satisfied("k"));
    }
}
