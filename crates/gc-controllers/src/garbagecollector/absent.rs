//! The cache of owners known not to exist (by coordinates and namespace), shared by
//! the graph builder and the workers so that dependents of one absent owner do not
//! each ask the apiserver. Least recently used entries go first once it is full.

use std::collections::HashMap;

use super::graph::ObjectRef;

/// How many absent owners are remembered (upstream's size).
pub const ABSENT_OWNER_CACHE_SIZE: usize = 500;

/// A bounded set of absent owner references.
#[derive(Debug)]
pub struct ReferenceCache {
    cap: usize,
    tick: u64,
    entries: HashMap<ObjectRef, u64>,
}

impl ReferenceCache {
    /// A cache of at most `cap` entries (at least one).
    pub fn new(cap: usize) -> Self {
        ReferenceCache {
            cap: cap.max(1),
            tick: 0,
            entries: HashMap::new(),
        }
    }

    /// Remembers `r`, evicting the least recently used entry if full.
    pub fn add(&mut self, r: ObjectRef) {
        self.tick += 1;
        let tick = self.tick;
        if !self.entries.contains_key(&r) && self.entries.len() >= self.cap {
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(r, tick);
    }

    /// Whether `r` is remembered (and marks it used).
    pub fn has(&mut self, r: &ObjectRef) -> bool {
        self.tick += 1;
        let tick = self.tick;
        match self.entries.get_mut(r) {
            Some(t) => {
                *t = tick;
                true
            }
            None => false,
        }
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(uid: &str) -> ObjectRef {
        ObjectRef {
            uid: uid.into(),
            ..Default::default()
        }
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut c = ReferenceCache::new(2);
        c.add(r("a"));
        c.add(r("b"));
        assert!(c.has(&r("a")));
        c.add(r("c"));
        assert!(c.has(&r("a")));
        assert!(!c.has(&r("b")));
        assert!(c.has(&r("c")));
        assert_eq!(c.len(), 2);
    }
}
