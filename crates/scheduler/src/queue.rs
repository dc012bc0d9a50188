//! The scheduling queue: pods waiting to be scheduled, highest priority first
//! (then oldest); pods that failed wait out a backoff (1 s doubling to 10 s); pods
//! that fit nowhere park as unschedulable until something in the cluster changes
//! (or five minutes pass), as upstream's active, backoff and unschedulable queues.

use crate::podinfo::PodInfo;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Unschedulable pods are retried at least this often.
const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Active,
    Backoff,
    Unschedulable,
    InFlight,
}

struct Queued {
    info: Arc<PodInfo>,
    state: State,
    attempts: u32,
    /// Which entry in the active heap is current (older ones are stale).
    seq: u64,
    /// When it last failed.
    failed_at: Instant,
    /// The move counter when it was popped.
    popped_at_move: u64,
}

#[derive(PartialEq, Eq)]
struct Entry {
    priority: i32,
    seq: u64,
    key: String,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The queue of pods to schedule.
#[derive(Default)]
pub struct Queue {
    pods: HashMap<String, Queued>,
    active: BinaryHeap<Entry>,
    backoff: BTreeMap<(Instant, u64), String>,
    seq: u64,
    moves: u64,
}

/// How a scheduling attempt ended, for [`Queue::done`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Bound (or handed to the binder): the pod leaves the queue.
    Scheduled,
    /// Fits nowhere: wait for a cluster change.
    Unschedulable,
    /// Failed for another reason (API error): retry after backoff.
    Error,
}

impl Queue {
    /// Pods in the queue in any state.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Whether the queue holds nothing.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// Number of pods ready to be popped (an upper bound: may count stale entries).
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    fn push_active(&mut self, key: &str) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(q) = self.pods.get_mut(key) {
            q.state = State::Active;
            q.seq = seq;
            self.active.push(Entry {
                priority: q.info.priority,
                seq,
                key: key.to_string(),
            });
        }
    }

    fn backoff_of(attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(8);
        (INITIAL_BACKOFF * (1u32 << shift)).min(MAX_BACKOFF)
    }

    /// Adds a new pending pod, or updates one already queued. An update to a parked
    /// pod whose spec or labels changed makes it eligible again.
    pub fn add_or_update(&mut self, info: Arc<PodInfo>) {
        let key = info.key.clone();
        match self.pods.get_mut(&key) {
            None => {
                self.pods.insert(
                    key.clone(),
                    Queued {
                        info,
                        state: State::Active,
                        attempts: 0,
                        seq: 0,
                        failed_at: Instant::now(),
                        popped_at_move: 0,
                    },
                );
                self.push_active(&key);
            }
            Some(q) => {
                let changed = q.info.pod.spec != info.pod.spec
                    || q.info.pod.metadata.labels != info.pod.metadata.labels
                    || q.info.pod.metadata.annotations != info.pod.metadata.annotations;
                q.info = info;
                if changed && q.state == State::Unschedulable {
                    self.requeue(&key);
                }
            }
        }
    }

    /// Removes a pod (deleted, or bound by someone else).
    pub fn remove(&mut self, key: &str) {
        self.pods.remove(key);
    }

    /// Whether a pod is queued.
    pub fn contains(&self, key: &str) -> bool {
        self.pods.contains_key(key)
    }

    /// Moves backoff pods whose time came to active.
    pub fn flush(&mut self, now: Instant) {
        while let Some(((at, seq), key)) = self.backoff.first_key_value() {
            if *at > now {
                break;
            }
            let (at, seq, key) = (*at, *seq, key.clone());
            self.backoff.remove(&(at, seq));
            if self
                .pods
                .get(&key)
                .is_some_and(|q| q.state == State::Backoff)
            {
                self.push_active(&key);
            }
        }
        let stale: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, q)| {
                q.state == State::Unschedulable
                    && now.duration_since(q.failed_at) >= MAX_UNSCHEDULABLE
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.requeue(&k);
        }
    }

    /// When the next backoff ends.
    pub fn next_backoff(&self) -> Option<Instant> {
        self.backoff.keys().next().map(|(at, _)| *at)
    }

    fn requeue(&mut self, key: &str) {
        let Some(q) = self.pods.get(key) else { return };
        let until = q.failed_at + Self::backoff_of(q.attempts);
        if until <= Instant::now() {
            self.push_active(key);
        } else {
            self.seq += 1;
            let seq = self.seq;
            if let Some(q) = self.pods.get_mut(key) {
                q.state = State::Backoff;
            }
            self.backoff.insert((until, seq), key.to_string());
        }
    }

    /// Something changed in the cluster that may let parked pods fit: retry them.
    pub fn move_all(&mut self) {
        self.moves += 1;
        let parked: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, q)| q.state == State::Unschedulable)
            .map(|(k, _)| k.clone())
            .collect();
        for k in parked {
            self.requeue(&k);
        }
    }

    /// The next pod to schedule.
    pub fn pop(&mut self) -> Option<Arc<PodInfo>> {
        while let Some(e) = self.active.pop() {
            let moves = self.moves;
            if let Some(q) = self.pods.get_mut(&e.key) {
                if q.state == State::Active && q.seq == e.seq {
                    q.state = State::InFlight;
                    q.attempts += 1;
                    q.popped_at_move = moves;
                    return Some(q.info.clone());
                }
            }
        }
        None
    }

    /// Records how the attempt for `key` ended.
    pub fn done(&mut self, key: &str, outcome: Outcome) {
        let moves = self.moves;
        match outcome {
            Outcome::Scheduled => {
                self.pods.remove(key);
            }
            Outcome::Unschedulable | Outcome::Error => {
                let Some(q) = self.pods.get_mut(key) else {
                    return;
                };
                q.failed_at = Instant::now();
                // A cluster change during the attempt may already have made room.
                if outcome == Outcome::Error || q.popped_at_move != moves {
                    self.requeue(key);
                } else {
                    q.state = State::Unschedulable;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn info(name: &str, priority: i32) -> Arc<PodInfo> {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"containers": [], "priority": priority}
        }))
        .unwrap();
        Arc::new(PodInfo::new(Arc::new(pod)))
    }

    #[test]
    fn priority_then_age() {
        let mut q = Queue::default();
        q.add_or_update(info("a", 0));
        q.add_or_update(info("b", 10));
        q.add_or_update(info("c", 0));
        let order: Vec<String> = std::iter::from_fn(|| q.pop())
            .map(|p| p.name.clone())
            .collect();
        assert_eq!(order, ["b", "a", "c"]);
    }

    #[test]
    fn unschedulable_pods_wait_for_a_cluster_change() {
        let mut q = Queue::default();
        q.add_or_update(info("a", 0));
        let p = q.pop().unwrap();
        q.done(&p.key, Outcome::Unschedulable);
        assert!(q.pop().is_none());
        q.move_all();
        // Still in backoff (1 s after the failure).
        assert!(q.pop().is_none());
        q.flush(Instant::now() + Duration::from_secs(2));
        assert_eq!(q.pop().unwrap().name, "a");
        q.done("ns/a", Outcome::Scheduled);
        assert!(q.is_empty());
    }

    #[test]
    fn a_change_during_the_attempt_sends_the_pod_to_backoff() {
        let mut q = Queue::default();
        q.add_or_update(info("a", 0));
        let p = q.pop().unwrap();
        q.move_all();
        q.done(&p.key, Outcome::Unschedulable);
        assert!(q.next_backoff().is_some());
    }
}
