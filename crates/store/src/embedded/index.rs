//! The embedded store's in-memory key index: for every key, the revisions at which it
//! was written or deleted, oldest first (etcd's `keyIndex`, without generations
//! objects: a tombstone ends a generation). Values live in the on-disk log, keyed by
//! revision; the index says which revision of a key is visible at a given revision.

use crate::Revision;
use std::collections::BTreeMap;
use std::ops::Bound;

/// One change of a key as the index remembers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    pub revision: Revision,
    pub tombstone: bool,
}

/// Key → history of versions.
#[derive(Default, Debug)]
pub(crate) struct Index {
    keys: BTreeMap<String, Vec<Version>>,
}

impl Index {
    /// Records a new version of `key`; revisions must be pushed in increasing order.
    pub fn push(&mut self, key: &str, revision: Revision, tombstone: bool) {
        let v = Version {
            revision,
            tombstone,
        };
        match self.keys.get_mut(key) {
            Some(history) => history.push(v),
            None => {
                self.keys.insert(key.to_string(), vec![v]);
            }
        }
    }

    /// The latest version of `key`, tombstone or not.
    pub fn latest(&self, key: &str) -> Option<Version> {
        self.keys.get(key).and_then(|h| h.last().copied())
    }

    /// The revision whose value `key` had at `at`, if it existed then.
    pub fn visible_at(history: &[Version], at: Revision) -> Option<Revision> {
        let idx = history.partition_point(|v| v.revision <= at);
        if idx == 0 {
            return None;
        }
        let v = history[idx - 1];
        (!v.tombstone).then_some(v.revision)
    }

    /// Keys in `[from, end)` that exist at revision `at`, with the revision holding
    /// their value: up to `limit` of them (0 = all), plus how many more exist.
    pub fn range(
        &self,
        from: &str,
        end: &[u8],
        at: Revision,
        limit: usize,
    ) -> (Vec<(String, Revision)>, u64) {
        let mut out = Vec::new();
        let mut more = 0u64;
        for (key, history) in self
            .keys
            .range::<str, _>((Bound::Included(from), Bound::Unbounded))
        {
            if key.as_bytes() >= end {
                break;
            }
            if let Some(rev) = Self::visible_at(history, at) {
                if limit == 0 || out.len() < limit {
                    out.push((key.clone(), rev));
                } else {
                    more += 1;
                }
            }
        }
        (out, more)
    }

    /// Drops history that no read at or after `at` can see. Returns the revisions
    /// whose records may be deleted from the log.
    pub fn compact(&mut self, at: Revision) -> Vec<Revision> {
        let mut dead = Vec::new();
        self.keys.retain(|_, history| {
            // Index of the version visible at `at` (the last one <= at).
            let idx = history.partition_point(|v| v.revision <= at);
            if idx == 0 {
                return true;
            }
            let visible = history[idx - 1];
            // Everything older than the visible version is unreachable.
            let mut cut = idx - 1;
            // A tombstone at or before `at` is itself unreachable too.
            if visible.tombstone {
                cut = idx;
            }
            dead.extend(history.drain(..cut).map(|v| v.revision));
            !history.is_empty()
        });
        dead
    }

    /// Number of live keys (not deleted at the latest revision).
    #[cfg(test)]
    pub fn live_keys(&self) -> usize {
        self.keys
            .values()
            .filter(|h| h.last().is_some_and(|v| !v.tombstone))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_and_compaction() {
        let mut ix = Index::default();
        ix.push("/a", 2, false);
        ix.push("/b", 3, false);
        ix.push("/a", 4, false);
        ix.push("/a", 5, true);
        ix.push("/a", 6, false);
        let (items, more) = ix.range("/", b"0", 3, 0);
        assert_eq!(items, vec![("/a".into(), 2), ("/b".into(), 3)]);
        assert_eq!(more, 0);
        let (items, _) = ix.range("/", b"0", 5, 0);
        assert_eq!(items, vec![("/b".into(), 3)]);
        let (items, more) = ix.range("/", b"0", 6, 1);
        assert_eq!(items, vec![("/a".into(), 6)]);
        assert_eq!(more, 1);

        let mut dead = ix.compact(5);
        dead.sort();
        assert_eq!(dead, vec![2, 4, 5]);
        assert_eq!(ix.latest("/a").unwrap().revision, 6);
        assert_eq!(ix.live_keys(), 2);

        ix.push("/b", 7, true);
        assert_eq!(ix.compact(7), vec![3, 7]);
        assert!(ix.latest("/b").is_none());
    }
}
