//! The rate-limited work queue controllers pull keys from, with the semantics of
//! client-go's workqueue:
//!
//! - a key queued several times before a worker takes it is handed out once (dirty set);
//! - a key is never handed to two workers at once: if it is added while a worker holds
//!   it, it is queued again only when that worker calls [`WorkQueue::done`];
//! - [`WorkQueue::add_after`] delays an add (the earliest pending time wins);
//! - [`WorkQueue::add_rate_limited`] delays by the queue's [`RateLimiter`], by default
//!   the maximum of a per-key exponential backoff (5 ms doubling up to 1000 s) and an
//!   overall token bucket (10 per second, burst 100); [`WorkQueue::forget`] resets a
//!   key's backoff after a successful sync.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Decides how long a key waits before it is retried.
pub trait RateLimiter<T>: Send + Sync {
    /// The delay before `item` may be processed again; records one more failure.
    fn when(&self, item: &T) -> Duration;
    /// Clears what the limiter remembers about `item`.
    fn forget(&self, item: &T);
    /// How many failures of `item` are remembered.
    fn num_requeues(&self, item: &T) -> u32;
}

/// Per-key exponential backoff: `base * 2^failures`, capped at `max`.
pub struct ExponentialFailureRateLimiter<T> {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<T, u32>>,
}

impl<T> ExponentialFailureRateLimiter<T> {
    /// A limiter starting at `base` and never exceeding `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        ExponentialFailureRateLimiter {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Eq + Hash + Clone + Send + Sync> RateLimiter<T> for ExponentialFailureRateLimiter<T> {
    fn when(&self, item: &T) -> Duration {
        let mut failures = self.failures.lock();
        let entry = failures.entry(item.clone()).or_insert(0);
        let exp = *entry;
        *entry = entry.saturating_add(1);
        let factor = 2f64.powi(exp.min(1024) as i32);
        let backoff = self.base.as_secs_f64() * factor;
        if !backoff.is_finite() || backoff > self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(backoff)
        }
    }

    fn forget(&self, item: &T) {
        self.failures.lock().remove(item);
    }

    fn num_requeues(&self, item: &T) -> u32 {
        self.failures.lock().get(item).copied().unwrap_or(0)
    }
}

/// An overall token bucket shared by all keys: `qps` tokens a second, at most `burst`
/// saved up. Each call takes a token, waiting in line when none is left.
pub struct BucketRateLimiter {
    qps: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl BucketRateLimiter {
    /// A full bucket.
    pub fn new(qps: f64, burst: u32) -> Self {
        BucketRateLimiter {
            qps,
            burst: f64::from(burst),
            state: Mutex::new((f64::from(burst), Instant::now())),
        }
    }
}

impl<T> RateLimiter<T> for BucketRateLimiter {
    fn when(&self, _item: &T) -> Duration {
        let mut state = self.state.lock();
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(state.1).as_secs_f64();
        state.0 = (state.0 + elapsed * self.qps).min(self.burst);
        state.1 = now;
        state.0 -= 1.0;
        if state.0 >= 0.0 || self.qps <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-state.0 / self.qps)
        }
    }

    fn forget(&self, _item: &T) {}

    fn num_requeues(&self, _item: &T) -> u32 {
        0
    }
}

/// The longest delay of several limiters.
pub struct MaxOfRateLimiter<T> {
    limiters: Vec<Box<dyn RateLimiter<T>>>,
}

impl<T> MaxOfRateLimiter<T> {
    /// Combines `limiters`.
    pub fn new(limiters: Vec<Box<dyn RateLimiter<T>>>) -> Self {
        MaxOfRateLimiter { limiters }
    }
}

impl<T> RateLimiter<T> for MaxOfRateLimiter<T> {
    fn when(&self, item: &T) -> Duration {
        self.limiters
            .iter()
            .map(|l| l.when(item))
            .max()
            .unwrap_or(Duration::ZERO)
    }

    fn forget(&self, item: &T) {
        for l in &self.limiters {
            l.forget(item);
        }
    }

    fn num_requeues(&self, item: &T) -> u32 {
        self.limiters
            .iter()
            .map(|l| l.num_requeues(item))
            .max()
            .unwrap_or(0)
    }
}

/// The limiter controllers use unless told otherwise (client-go's
/// DefaultControllerRateLimiter): per-key 5 ms doubling up to 1000 s, and overall 10
/// per second with a burst of 100.
pub fn default_controller_rate_limiter<T>() -> MaxOfRateLimiter<T>
where
    T: Eq + Hash + Clone + Send + Sync + 'static,
{
    MaxOfRateLimiter::new(vec![
        Box::new(ExponentialFailureRateLimiter::new(
            Duration::from_millis(5),
            Duration::from_secs(1000),
        )),
        Box::new(BucketRateLimiter::new(10.0, 100)),
    ])
}

/// A deduplicating, rate-limited queue of keys. Cloning gives another handle to the
/// same queue.
pub struct WorkQueue<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        WorkQueue {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<T> {
    name: String,
    state: Mutex<State<T>>,
    notify: Notify,
    limiter: Box<dyn RateLimiter<T>>,
}

struct State<T> {
    queue: VecDeque<T>,
    dirty: HashSet<T>,
    processing: HashSet<T>,
    /// Delayed adds: the time each waiting key is due.
    waiting: HashMap<T, Instant>,
    /// The same, ordered by time; entries whose time no longer matches `waiting` are stale.
    timers: BinaryHeap<Timer<T>>,
    seq: u64,
    shutting_down: bool,
}

struct Timer<T> {
    at: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Timer<T> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl<T> Eq for Timer<T> {}
impl<T> PartialOrd for Timer<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Timer<T> {
    // Reversed so that the heap pops the earliest time first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at).then(other.seq.cmp(&self.seq))
    }
}

impl<T> State<T>
where
    T: Clone + Eq + Hash,
{
    fn insert(&mut self, item: T) -> bool {
        if self.shutting_down || self.dirty.contains(&item) {
            return false;
        }
        self.dirty.insert(item.clone());
        if self.processing.contains(&item) {
            return false;
        }
        self.queue.push_back(item);
        true
    }

    /// Moves due delayed keys into the queue; returns how many were queued and the
    /// next time a key is due.
    fn promote(&mut self, now: Instant) -> (usize, Option<Instant>) {
        let mut queued = 0;
        while let Some(top) = self.timers.peek() {
            if top.at > now {
                return (queued, Some(top.at));
            }
            let Some(timer) = self.timers.pop() else {
                break;
            };
            if self.waiting.get(&timer.item) == Some(&timer.at) {
                self.waiting.remove(&timer.item);
                if self.insert(timer.item) {
                    queued += 1;
                }
            }
        }
        (queued, None)
    }
}

impl<T> WorkQueue<T>
where
    T: Clone + Eq + Hash + Send + Sync + 'static,
{
    /// A queue with the default controller rate limiter.
    pub fn new(name: &str) -> Self {
        Self::with_rate_limiter(name, Box::new(default_controller_rate_limiter()))
    }

    /// A queue with a custom rate limiter.
    pub fn with_rate_limiter(name: &str, limiter: Box<dyn RateLimiter<T>>) -> Self {
        WorkQueue {
            shared: Arc::new(Shared {
                name: name.to_string(),
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    dirty: HashSet::new(),
                    processing: HashSet::new(),
                    waiting: HashMap::new(),
                    timers: BinaryHeap::new(),
                    seq: 0,
                    shutting_down: false,
                }),
                notify: Notify::new(),
                limiter,
            }),
        }
    }

    /// The queue's name (for logs).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Queues `item` unless it is already waiting to be processed.
    pub fn add(&self, item: T) {
        let queued = self.shared.state.lock().insert(item);
        if queued {
            self.shared.notify.notify_one();
        }
    }

    /// Queues `item` once `delay` has passed. If the key is already waiting for a later
    /// time, the earlier time wins.
    pub fn add_after(&self, item: T, delay: Duration) {
        if delay.is_zero() {
            self.add(item);
            return;
        }
        let at = Instant::now() + delay;
        {
            let mut state = self.shared.state.lock();
            if state.shutting_down {
                return;
            }
            if let Some(existing) = state.waiting.get(&item) {
                if *existing <= at {
                    return;
                }
            }
            state.waiting.insert(item.clone(), at);
            state.seq += 1;
            let seq = state.seq;
            state.timers.push(Timer { at, seq, item });
        }
        // Wake a worker so that it recomputes how long to sleep.
        self.shared.notify.notify_one();
    }

    /// Queues `item` after the delay its rate limiter gives.
    pub fn add_rate_limited(&self, item: T) {
        let delay = self.shared.limiter.when(&item);
        self.add_after(item, delay);
    }

    /// Clears `item`'s backoff (call after a successful sync).
    pub fn forget(&self, item: &T) {
        self.shared.limiter.forget(item);
    }

    /// How many times `item` has been re-queued by the rate limiter since it was last
    /// forgotten.
    pub fn num_requeues(&self, item: &T) -> u32 {
        self.shared.limiter.num_requeues(item)
    }

    /// Waits for the next key and marks it as being processed. `None` once the queue
    /// is shut down (keys still queued are not handed out).
    pub async fn get(&self) -> Option<T> {
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next_due = {
                let mut state = self.shared.state.lock();
                if state.shutting_down {
                    return None;
                }
                let (_, next_due) = state.promote(Instant::now());
                if let Some(item) = state.queue.pop_front() {
                    state.dirty.remove(&item);
                    state.processing.insert(item.clone());
                    let more = !state.queue.is_empty();
                    drop(state);
                    if more {
                        // Others may be waiting while keys are left: pass the wake-up on.
                        self.shared.notify.notify_one();
                    }
                    return Some(item);
                }
                next_due
            };
            match next_due {
                Some(at) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Marks `item` as processed; if it was added meanwhile, it is queued again.
    pub fn done(&self, item: &T) {
        let requeued = {
            let mut state = self.shared.state.lock();
            state.processing.remove(item);
            if state.dirty.contains(item) && !state.shutting_down {
                state.queue.push_back(item.clone());
                true
            } else {
                false
            }
        };
        if requeued {
            self.shared.notify.notify_one();
        }
    }

    /// Stops the queue: waiting and future [`WorkQueue::get`] calls return `None`,
    /// adds are ignored.
    pub fn shut_down(&self) {
        self.shared.state.lock().shutting_down = true;
        self.shared.notify.notify_waiters();
    }

    /// Whether [`WorkQueue::shut_down`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.state.lock().shutting_down
    }

    /// Keys queued and ready (not counting delayed keys and keys being processed).
    pub fn len(&self) -> usize {
        self.shared.state.lock().queue.len()
    }

    /// Whether no key is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys waiting for a delayed add.
    pub fn delayed_len(&self) -> usize {
        self.shared.state.lock().waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test]
    async fn dedups_queued_keys() {
        let q: WorkQueue<String> = WorkQueue::new("test");
        q.add("a".into());
        q.add("b".into());
        q.add("a".into());
        q.add("a".into());
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await.as_deref(), Some("a"));
        assert_eq!(q.get().await.as_deref(), Some("b"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn key_added_while_processing_waits_for_done() {
        let q: WorkQueue<String> = WorkQueue::new("test");
        q.add("a".into());
        let a = q.get().await.unwrap();
        q.add("a".into());
        q.add("a".into());
        // Being processed: not handed out again.
        assert!(q.is_empty());
        let second = tokio::time::timeout(ms(50), q.get()).await;
        assert!(
            second.is_err(),
            "a key must not be handed out twice at once"
        );
        q.done(&a);
        assert_eq!(q.len(), 1);
        assert_eq!(q.get().await.as_deref(), Some("a"));
        q.done(&a);
        assert!(q.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_never_process_one_key_concurrently() {
        let q: WorkQueue<u32> = WorkQueue::new("test");
        let busy: Arc<Mutex<HashSet<u32>>> = Arc::default();
        let overlaps = Arc::new(AtomicUsize::new(0));
        let processed = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..4 {
            let q = q.clone();
            let busy = busy.clone();
            let overlaps = overlaps.clone();
            let processed = processed.clone();
            workers.push(tokio::spawn(async move {
                while let Some(k) = q.get().await {
                    if !busy.lock().insert(k) {
                        overlaps.fetch_add(1, AtomicOrdering::SeqCst);
                    }
                    tokio::time::sleep(ms(1)).await;
                    busy.lock().remove(&k);
                    processed.fetch_add(1, AtomicOrdering::SeqCst);
                    q.done(&k);
                }
            }));
        }
        for round in 0..200u32 {
            q.add(round % 3);
            if round % 10 == 0 {
                tokio::time::sleep(ms(1)).await;
            }
        }
        // Let the queue drain.
        for _ in 0..200 {
            if q.is_empty() && busy.lock().is_empty() {
                break;
            }
            tokio::time::sleep(ms(5)).await;
        }
        q.shut_down();
        for w in workers {
            w.await.unwrap();
        }
        assert_eq!(overlaps.load(AtomicOrdering::SeqCst), 0);
        let n = processed.load(AtomicOrdering::SeqCst);
        assert!(n >= 3, "every key processed at least once, got {n}");
        assert!(n < 200, "adds while queued are merged, got {n}");
    }

    #[tokio::test]
    async fn add_after_delays_and_earliest_wins() {
        let q: WorkQueue<&'static str> = WorkQueue::new("test");
        let start = Instant::now();
        q.add_after("x", ms(200));
        q.add_after("x", ms(40));
        q.add_after("x", ms(300));
        assert_eq!(q.delayed_len(), 1);
        assert!(q.is_empty());
        assert_eq!(q.get().await, Some("x"));
        let waited = start.elapsed();
        assert!(waited >= ms(40), "waited {waited:?}");
        assert!(waited < ms(190), "earliest time wins, waited {waited:?}");
        q.done(&"x");
        // The stale 200 ms timer does not queue the key again.
        let again = tokio::time::timeout(ms(300), q.get()).await;
        assert!(again.is_err());
    }

    #[test]
    fn exponential_backoff_doubles_from_5ms_to_1000s() {
        let l = ExponentialFailureRateLimiter::new(ms(5), Duration::from_secs(1000));
        let got: Vec<Duration> = (0..5).map(|_| l.when(&"k")).collect();
        assert_eq!(got, vec![ms(5), ms(10), ms(20), ms(40), ms(80)]);
        assert_eq!(l.num_requeues(&"k"), 5);
        assert_eq!(l.when(&"other"), ms(5));
        for _ in 0..30 {
            l.when(&"k");
        }
        assert_eq!(l.when(&"k"), Duration::from_secs(1000));
        l.forget(&"k");
        assert_eq!(l.num_requeues(&"k"), 0);
        assert_eq!(l.when(&"k"), ms(5));
    }

    #[test]
    fn bucket_allows_burst_then_spaces_out() {
        let l = BucketRateLimiter::new(10.0, 3);
        for _ in 0..3 {
            assert_eq!(RateLimiter::<u8>::when(&l, &0), Duration::ZERO);
        }
        let d1 = RateLimiter::<u8>::when(&l, &0);
        let d2 = RateLimiter::<u8>::when(&l, &0);
        assert!(d1 > ms(90) && d1 <= ms(100), "{d1:?}");
        assert!(d2 > ms(190) && d2 <= ms(200), "{d2:?}");
    }

    #[test]
    fn default_limiter_is_max_of_both() {
        let l = default_controller_rate_limiter::<&str>();
        assert_eq!(l.when(&"a"), ms(5));
        assert_eq!(l.when(&"a"), ms(10));
        assert_eq!(l.num_requeues(&"a"), 2);
        l.forget(&"a");
        assert_eq!(l.num_requeues(&"a"), 0);
    }

    #[tokio::test]
    async fn rate_limited_requeue_backs_off_per_key() {
        let q: WorkQueue<&'static str> = WorkQueue::new("test");
        q.add("k");
        let k = q.get().await.unwrap();
        // Failures: 5 ms, then 10 ms, then 20 ms.
        for expected in [5u64, 10, 20] {
            let start = Instant::now();
            q.add_rate_limited(k);
            q.done(&k);
            assert_eq!(q.get().await, Some("k"));
            let waited = start.elapsed();
            assert!(waited >= ms(expected), "waited {waited:?} < {expected} ms");
        }
        assert_eq!(q.num_requeues(&"k"), 3);
        q.forget(&"k");
        assert_eq!(q.num_requeues(&"k"), 0);
        q.done(&k);
    }

    #[tokio::test]
    async fn shut_down_releases_waiters() {
        let q: WorkQueue<u8> = WorkQueue::new("test");
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.get().await })
        };
        tokio::time::sleep(ms(10)).await;
        q.shut_down();
        assert_eq!(waiter.await.unwrap(), None);
        q.add(1);
        assert!(q.is_empty());
        assert!(q.is_shutting_down());
    }
}
