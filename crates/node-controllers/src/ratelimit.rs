//! The rate-limited timed queue the node lifecycle controller keeps per zone: nodes
//! waiting to be tainted `NoExecute`, taken in order of their due time, at most as
//! fast as a token bucket allows (upstream's RateLimitedTimedQueue with a
//! burst-of-one token bucket; a rate of zero never lets anything through).
//!
//! A value taken and processed leaves the queue but stays remembered, so adding it
//! again does nothing until it is [`RateLimitedTimedQueue::remove`]d. Times are
//! passed in explicitly, which keeps the type deterministic under test.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// The burst of the eviction token buckets.
pub const EVICTION_RATE_LIMITER_BURST: u32 = 1;

/// A token bucket: `qps` tokens a second, at most `burst` saved, full at creation.
/// With `qps <= 0` no token is ever given.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(qps: f64, burst: u32, now: Instant) -> Self {
        TokenBucket {
            qps,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: now,
        }
    }

    /// The refill rate.
    pub fn qps(&self) -> f64 {
        if self.qps > 0.0 {
            self.qps
        } else {
            0.0
        }
    }

    /// Takes a token if one is available at `now`.
    pub fn try_accept(&mut self, now: Instant) -> bool {
        if self.qps <= 0.0 {
            return false;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        if now > self.last {
            self.last = now;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A queued value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedValue {
    /// The node name.
    pub value: String,
    /// The node UID.
    pub uid: String,
    /// When it was added.
    pub added_at: Instant,
    /// When it is due.
    pub process_at: Instant,
}

/// Values ordered by due time (then insertion), each at most once, with a memory of
/// values taken out.
#[derive(Debug, Default)]
struct UniqueQueue {
    queue: BTreeMap<(Instant, u64), TimedValue>,
    positions: HashMap<String, (Instant, u64)>,
    set: HashSet<String>,
    seq: u64,
}

impl UniqueQueue {
    fn push(&mut self, v: TimedValue) {
        self.seq += 1;
        let pos = (v.process_at, self.seq);
        self.positions.insert(v.value.clone(), pos);
        self.queue.insert(pos, v);
    }

    fn add(&mut self, v: TimedValue) -> bool {
        if self.set.contains(&v.value) {
            return false;
        }
        self.set.insert(v.value.clone());
        self.push(v);
        true
    }

    fn take_from_queue(&mut self, value: &str) -> Option<TimedValue> {
        let pos = self.positions.remove(value)?;
        self.queue.remove(&pos)
    }

    fn replace(&mut self, v: TimedValue) -> bool {
        if self.take_from_queue(&v.value).is_none() {
            return false;
        }
        self.push(v);
        true
    }

    fn remove_from_queue(&mut self, value: &str) -> bool {
        if !self.set.contains(value) {
            return false;
        }
        self.take_from_queue(value).is_some()
    }

    fn remove(&mut self, value: &str) -> bool {
        if !self.set.remove(value) {
            return false;
        }
        self.take_from_queue(value);
        true
    }

    fn head(&self) -> Option<&TimedValue> {
        self.queue.values().next()
    }
}

/// Nodes waiting for a `NoExecute` taint in one zone, let through at a limited rate.
#[derive(Debug)]
pub struct RateLimitedTimedQueue {
    queue: UniqueQueue,
    limiter: TokenBucket,
}

impl RateLimitedTimedQueue {
    /// An empty queue letting `qps` values through a second (burst one).
    pub fn new(qps: f64, now: Instant) -> Self {
        RateLimitedTimedQueue {
            queue: UniqueQueue::default(),
            limiter: TokenBucket::new(qps, EVICTION_RATE_LIMITER_BURST, now),
        }
    }

    /// Queues `value`, due at once. False if it is queued or remembered already.
    pub fn add(&mut self, value: &str, uid: &str, now: Instant) -> bool {
        self.queue.add(TimedValue {
            value: value.to_string(),
            uid: uid.to_string(),
            added_at: now,
            process_at: now,
        })
    }

    /// Forgets `value` (queued or remembered), so it can be added again. Returns
    /// whether it was known.
    pub fn remove(&mut self, value: &str) -> bool {
        self.queue.remove(value)
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.queue = UniqueQueue::default();
    }

    /// How many values wait in the queue.
    pub fn len(&self) -> usize {
        self.queue.queue.len()
    }

    /// Whether no value waits.
    pub fn is_empty(&self) -> bool {
        self.queue.queue.is_empty()
    }

    /// Whether `value` is queued or remembered.
    pub fn contains(&self, value: &str) -> bool {
        self.queue.set.contains(value)
    }

    /// The current rate.
    pub fn qps(&self) -> f64 {
        self.limiter.qps()
    }

    /// Changes the rate. A new bucket starts full, unless the old one was empty (then
    /// the new one gives up its token too); the same rate keeps the bucket.
    pub fn swap_limiter(&mut self, qps: f64, now: Instant) {
        let qps = if qps > 0.0 { qps } else { 0.0 };
        if self.limiter.qps() == qps {
            return;
        }
        let mut limiter = TokenBucket::new(qps, EVICTION_RATE_LIMITER_BURST, now);
        if qps > 0.0 && !self.limiter.try_accept(now) {
            limiter.try_accept(now);
        }
        self.limiter = limiter;
    }

    /// The next value to process at `now`: takes a token (none left: `None`), then
    /// returns the head if it is due. The value stays queued until
    /// [`RateLimitedTimedQueue::done`] or [`RateLimitedTimedQueue::retry_after`].
    pub fn next_due(&mut self, now: Instant) -> Option<TimedValue> {
        let head = self.queue.head()?.clone();
        if !self.limiter.try_accept(now) {
            return None;
        }
        if now < head.process_at {
            return None;
        }
        Some(head)
    }

    /// `value` was processed: it leaves the queue but stays remembered.
    pub fn done(&mut self, value: &str) {
        self.queue.remove_from_queue(value);
    }

    /// `value` failed: it is due again `wait` after `now`.
    pub fn retry_after(&mut self, mut value: TimedValue, now: Instant, wait: Duration) {
        value.process_at = now + wait + Duration::from_nanos(1);
        self.queue.replace(value);
    }

    /// Processes due values in order while tokens last: `f` returns `Ok(())` when done
    /// with a value, `Err(wait)` to retry it after `wait`.
    pub fn try_process(
        &mut self,
        now: Instant,
        mut f: impl FnMut(&TimedValue) -> Result<(), Duration>,
    ) {
        while let Some(v) = self.next_due(now) {
            match f(&v) {
                Ok(()) => self.done(&v.value),
                Err(wait) => self.retry_after(v, now, wait),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn token_bucket_refills_at_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 1, t0);
        assert!(b.try_accept(t0));
        assert!(!b.try_accept(t0));
        assert!(!b.try_accept(t0 + ms(50)));
        assert!(b.try_accept(t0 + ms(100)));
        // Never more than the burst saved up.
        assert!(b.try_accept(t0 + ms(10_000)));
        assert!(!b.try_accept(t0 + ms(10_000)));
        let mut never = TokenBucket::new(0.0, 1, t0);
        assert!(!never.try_accept(t0 + ms(10_000)));
    }

    #[test]
    fn values_come_out_once_in_order_at_the_rate() {
        let t0 = Instant::now();
        let mut q = RateLimitedTimedQueue::new(1.0, t0);
        assert!(q.add("a", "ua", t0));
        assert!(q.add("b", "ub", t0 + ms(1)));
        assert!(!q.add("a", "ua", t0 + ms(2)), "already queued");
        let mut seen = Vec::new();
        q.try_process(t0 + ms(2), |v| {
            seen.push(v.value.clone());
            Ok(())
        });
        assert_eq!(seen, ["a"], "one token");
        q.try_process(t0 + ms(500), |v| {
            seen.push(v.value.clone());
            Ok(())
        });
        assert_eq!(seen, ["a"], "no token yet");
        q.try_process(t0 + ms(1500), |v| {
            seen.push(v.value.clone());
            Ok(())
        });
        assert_eq!(seen, ["a", "b"]);
        assert!(q.is_empty());
        // Processed values are remembered until removed.
        assert!(!q.add("a", "ua", t0 + ms(1600)));
        assert!(q.remove("a"));
        assert!(!q.remove("a"));
        assert!(q.add("a", "ua", t0 + ms(1600)));
    }

    #[test]
    fn failures_wait_and_go_behind() {
        let t0 = Instant::now();
        let mut q = RateLimitedTimedQueue::new(1000.0, t0);
        q.add("a", "", t0);
        q.add("b", "", t0);
        let mut seen = Vec::new();
        let mut failed_once = false;
        q.try_process(t0 + ms(10), |v| {
            seen.push(v.value.clone());
            if v.value == "a" && !failed_once {
                failed_once = true;
                return Err(ms(50));
            }
            Ok(())
        });
        assert_eq!(seen, ["a"], "burst of one: one value per token");
        q.try_process(t0 + ms(20), |v| {
            seen.push(v.value.clone());
            Ok(())
        });
        assert_eq!(seen, ["a", "b"], "a waits behind");
        assert_eq!(q.len(), 1);
        q.try_process(t0 + ms(30), |v| {
            seen.push(v.value.clone());
            Ok(())
        });
        assert_eq!(seen, ["a", "b"], "a not due yet");
        q.try_process(t0 + ms(61), |v| {
            seen.push(v.value.clone());
            Ok(())
        });
        assert_eq!(seen, ["a", "b", "a"]);
        assert!(q.is_empty());
    }

    #[test]
    fn swapping_the_limiter() {
        let t0 = Instant::now();
        let mut q = RateLimitedTimedQueue::new(1.0, t0);
        q.add("a", "", t0);
        q.add("b", "", t0);
        q.swap_limiter(0.0, t0);
        assert_eq!(q.qps(), 0.0);
        assert!(
            q.next_due(t0 + ms(100_000)).is_none(),
            "rate zero stops all"
        );
        q.swap_limiter(2.0, t0);
        assert_eq!(q.qps(), 2.0);
        // The never-limiter had no token: the new bucket starts empty.
        assert!(q.next_due(t0).is_none());
        let v = q.next_due(t0 + ms(500)).unwrap();
        assert_eq!(v.value, "a");
        q.done("a");
        assert!(q.next_due(t0 + ms(500)).is_none());
        // The old bucket is empty: the new one starts empty too.
        q.swap_limiter(4.0, t0 + ms(500));
        assert!(q.next_due(t0 + ms(500)).is_none());
        assert_eq!(q.next_due(t0 + ms(750)).unwrap().value, "b");
        // Same rate: the bucket is kept.
        q.swap_limiter(4.0, t0 + ms(750));
        assert!(q.next_due(t0 + ms(750)).is_none());
        q.clear();
        assert!(!q.contains("a"));
    }
}
