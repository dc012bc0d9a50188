//! Recording core/v1 Events the way client-go's `record` package does.
//!
//! An [`EventRecorder`] never blocks: it queues the event (up to 1000 pending, then
//! drops) for the [`EventBroadcaster`]'s writer task. Before writing, events go through
//! the same correlation as upstream:
//!
//! - aggregation: once 10 events with the same source, object, type and reason but
//!   different messages were seen within 10 minutes, further ones are folded into one
//!   event whose message is `(combined from similar events): <latest message>`;
//! - deduplication: an event identical to an earlier one (same source, object, type,
//!   reason and message) patches the earlier Event's `count`, `lastTimestamp` and
//!   `message` instead of creating a new one;
//! - spam filtering: per source and object, a token bucket of 25 events refilled at one
//!   every 5 minutes; events beyond it are dropped.
//!
//! A broadcaster may also limit how fast it writes, as the client that upstream's
//! kubelet gives its event recorder does (`--event-qps`, `--event-burst`): a token
//! bucket in front of every create or patch request, which delays events (never drops them), so
//! a burst of pod starts does not also become a burst of event writes.
//!
//! New events are named `<object name>.<hex unix nanoseconds>` in the object's
//! namespace (`default` for cluster-scoped objects), with `source.component` and
//! `reportingComponent` set to the recorder's component.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::ControllerError;
use crate::workqueue::{BucketRateLimiter, RateLimiter};

/// How many events may wait for the writer before new ones are dropped.
pub const MAX_QUEUED_EVENTS: usize = 1000;

/// The type of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something went wrong.
    Warning,
}

impl EventType {
    /// The `type` field value.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Tuning of the event correlation (upstream defaults via [`Default`]).
#[derive(Clone, Debug)]
pub struct CorrelatorOptions {
    /// Entries kept in each correlation cache.
    pub lru_cache_size: usize,
    /// Distinct messages per source/object/type/reason before aggregation starts.
    pub max_events: usize,
    /// Window in which similar events are aggregated.
    pub max_interval: Duration,
    /// Events a source may write about one object in a burst.
    pub burst: u32,
    /// Rate at which that allowance refills, per second.
    pub qps: f64,
}

impl Default for CorrelatorOptions {
    fn default() -> Self {
        CorrelatorOptions {
            lru_cache_size: 4096,
            max_events: 10,
            max_interval: Duration::from_secs(600),
            burst: 25,
            qps: 1.0 / 300.0,
        }
    }
}

/// A rate limit on event writes: `qps` per second on average, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WriteLimit {
    pub qps: f64,
    pub burst: u32,
}

/// client-go's rate of a client whose config leaves QPS at 0.
const CLIENT_DEFAULT_QPS: f64 = 5.0;
/// client-go's burst of a client whose config leaves Burst at 0.
const CLIENT_DEFAULT_BURST: u32 = 10;

impl WriteLimit {
    /// The limit upstream's kubelet gets from `eventRecordQPS` and `eventBurst`, which
    /// it copies into its event client's config: there 0 means client-go's defaults
    /// (5 per second, bursts of 10) and a negative rate means no limit.
    pub fn from_flags(qps: f64, burst: u32) -> Option<WriteLimit> {
        let qps = if qps == 0.0 { CLIENT_DEFAULT_QPS } else { qps };
        let burst = if burst == 0 {
            CLIENT_DEFAULT_BURST
        } else {
            burst
        };
        (qps > 0.0).then_some(WriteLimit { qps, burst })
    }
}

/// Takes a token from `bucket` (client-go's token bucket: starts full, refills at its
/// rate), waiting until one is there.
async fn take(bucket: &BucketRateLimiter) {
    let wait = RateLimiter::<()>::when(bucket, &());
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
}

struct Pending {
    source: Arc<EventSource>,
    involved: ObjectReference,
    type_: EventType,
    reason: String,
    message: String,
}

/// Starts and feeds the task that writes events. Cheap to clone; the task ends when
/// the broadcaster and all its recorders are dropped.
#[derive(Clone)]
pub struct EventBroadcaster {
    tx: mpsc::Sender<Pending>,
}

impl EventBroadcaster {
    /// Starts the writer with upstream's correlation defaults. Must run inside a tokio
    /// runtime.
    pub fn new(client: Client) -> Self {
        Self::with_options(client, CorrelatorOptions::default())
    }

    /// Starts the writer with custom correlation settings.
    pub fn with_options(client: Client, options: CorrelatorOptions) -> Self {
        Self::with_write_limit(client, options, None)
    }

    /// Starts the writer with custom correlation settings and, if given, a limit on
    /// the rate of writes to the API.
    pub fn with_write_limit(
        client: Client,
        options: CorrelatorOptions,
        limit: Option<WriteLimit>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(MAX_QUEUED_EVENTS);
        let bucket = limit.map(|l| BucketRateLimiter::new(l.qps, l.burst));
        tokio::spawn(write_events(client, rx, Correlator::new(options), bucket));
        EventBroadcaster { tx }
    }

    /// A recorder for `component` (e.g. `replicaset-controller`).
    pub fn recorder(&self, component: &str) -> EventRecorder {
        self.recorder_with_source(EventSource {
            component: Some(component.to_string()),
            host: None,
        })
    }

    /// A recorder with a full event source (component and host).
    pub fn recorder_with_source(&self, source: EventSource) -> EventRecorder {
        EventRecorder {
            tx: self.tx.clone(),
            source: Arc::new(source),
        }
    }
}

/// Records events about objects; cheap to clone, never blocks.
#[derive(Clone)]
pub struct EventRecorder {
    tx: mpsc::Sender<Pending>,
    source: Arc<EventSource>,
}

impl EventRecorder {
    /// Records an event about `obj`.
    pub fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        self.event_for(object_reference(obj), type_, reason, message);
    }

    /// Records an event about the object `involved` refers to.
    pub fn event_for(
        &self,
        involved: ObjectReference,
        type_: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        let pending = Pending {
            source: self.source.clone(),
            involved,
            type_,
            reason: reason.to_string(),
            message: message.into(),
        };
        match self.tx.try_send(pending) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(p)) => {
                tracing::error!(reason = %p.reason, object = ?p.involved.name, "unable to record event: too many queued events, dropped event");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// The component events are attributed to.
    pub fn component(&self) -> &str {
        self.source.component.as_deref().unwrap_or("")
    }
}

/// A reference to `obj` as events carry it (kind, apiVersion, namespace, name, uid,
/// resourceVersion).
pub fn object_reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    let meta = obj.meta();
    ObjectReference {
        api_version: Some(K::api_version(&()).to_string()),
        kind: Some(K::kind(&()).to_string()),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        field_path: None,
    }
}

/// A small least-recently-used map.
struct Lru<V> {
    cap: usize,
    tick: u64,
    map: HashMap<String, (V, u64)>,
}

impl<V> Lru<V> {
    fn new(cap: usize) -> Self {
        Lru {
            cap: cap.max(1),
            tick: 0,
            map: HashMap::new(),
        }
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(key).map(|(v, t)| {
            *t = tick;
            v
        })
    }

    fn insert(&mut self, key: String, value: V) {
        self.tick += 1;
        self.map.insert(key, (value, self.tick));
        let slack = (self.cap / 8).max(1);
        if self.map.len() > self.cap + slack {
            let mut ticks: Vec<u64> = self.map.values().map(|(_, t)| *t).collect();
            ticks.sort_unstable();
            let cutoff = ticks[self.map.len() - self.cap];
            self.map.retain(|_, (_, t)| *t >= cutoff);
        }
    }
}

struct AggregateRecord {
    local_keys: HashSet<String>,
    last: Instant,
}

struct EventLog {
    count: i32,
    first_timestamp: Option<Time>,
    name: String,
    resource_version: Option<String>,
}

struct SpamRecord {
    tokens: f64,
    last: Instant,
}

/// What correlation decided for one event.
struct Correlated {
    event: Event,
    /// Strategic merge patch for an event seen before.
    patch: Option<serde_json::Value>,
    /// Cache key of the observation, to store the written event's name under.
    key: String,
}

struct Correlator {
    options: CorrelatorOptions,
    aggregates: Lru<AggregateRecord>,
    logs: Lru<EventLog>,
    spam: Lru<SpamRecord>,
}

fn source_and_object(event: &Event) -> Vec<String> {
    let source = event.source.clone().unwrap_or_default();
    let o = &event.involved_object;
    vec![
        source.component.unwrap_or_default(),
        source.host.unwrap_or_default(),
        o.kind.clone().unwrap_or_default(),
        o.namespace.clone().unwrap_or_default(),
        o.name.clone().unwrap_or_default(),
        o.uid.clone().unwrap_or_default(),
        o.api_version.clone().unwrap_or_default(),
    ]
}

fn aggregate_key(event: &Event) -> String {
    let mut parts = source_and_object(event);
    parts.push(event.type_.clone().unwrap_or_default());
    parts.push(event.reason.clone().unwrap_or_default());
    parts.push(event.reporting_component.clone().unwrap_or_default());
    parts.push(event.reporting_instance.clone().unwrap_or_default());
    parts.concat()
}

fn event_key(event: &Event) -> String {
    let o = &event.involved_object;
    let source = event.source.clone().unwrap_or_default();
    [
        source.component.unwrap_or_default(),
        source.host.unwrap_or_default(),
        o.kind.clone().unwrap_or_default(),
        o.namespace.clone().unwrap_or_default(),
        o.name.clone().unwrap_or_default(),
        o.field_path.clone().unwrap_or_default(),
        o.uid.clone().unwrap_or_default(),
        o.api_version.clone().unwrap_or_default(),
        event.type_.clone().unwrap_or_default(),
        event.reason.clone().unwrap_or_default(),
        event.message.clone().unwrap_or_default(),
    ]
    .concat()
}

fn spam_key(event: &Event) -> String {
    source_and_object(event).concat()
}

fn event_name(object_name: &str, at: jiff::Timestamp) -> String {
    format!("{object_name}.{:x}", at.as_nanosecond())
}

fn make_event(p: &Pending, now: jiff::Timestamp) -> Event {
    let namespace = match p.involved.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => ns.to_string(),
        _ => "default".to_string(),
    };
    let name = p.involved.name.clone().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            name: Some(event_name(&name, now)),
            namespace: Some(namespace),
            ..Default::default()
        },
        involved_object: p.involved.clone(),
        reason: Some(p.reason.clone()),
        message: Some(p.message.clone()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        type_: Some(p.type_.as_str().to_string()),
        source: Some((*p.source).clone()),
        reporting_component: Some(p.source.component.clone().unwrap_or_default()),
        reporting_instance: Some(p.source.host.clone().unwrap_or_default()),
        ..Default::default()
    }
}

impl Correlator {
    fn new(options: CorrelatorOptions) -> Self {
        let cap = options.lru_cache_size;
        Correlator {
            options,
            aggregates: Lru::new(cap),
            logs: Lru::new(cap),
            spam: Lru::new(cap),
        }
    }

    /// Aggregates, deduplicates and rate-limits one event; `None` means drop it.
    fn correlate(
        &mut self,
        p: &Pending,
        now: Instant,
        wall: jiff::Timestamp,
    ) -> Option<Correlated> {
        let mut event = make_event(p, wall);

        // Aggregation of similar events.
        let agg_key = aggregate_key(&event);
        let message = event.message.clone().unwrap_or_default();
        let mut record = match self.aggregates.get_mut(&agg_key) {
            Some(r) if now.saturating_duration_since(r.last) <= self.options.max_interval => {
                AggregateRecord {
                    local_keys: std::mem::take(&mut r.local_keys),
                    last: r.last,
                }
            }
            _ => AggregateRecord {
                local_keys: HashSet::new(),
                last: now,
            },
        };
        record.local_keys.insert(message.clone());
        record.last = now;
        let key = if record.local_keys.len() < self.options.max_events {
            self.aggregates.insert(agg_key, record);
            event_key(&event)
        } else {
            if let Some(any) = record.local_keys.iter().next().cloned() {
                record.local_keys.remove(&any);
            }
            self.aggregates.insert(agg_key.clone(), record);
            event.message = Some(format!("(combined from similar events): {message}"));
            event.reporting_component = None;
            event.reporting_instance = None;
            agg_key
        };

        // Deduplication against what was written before.
        let mut patch = None;
        if let Some(last) = self.logs.get_mut(&key) {
            if last.count > 0 {
                event.metadata.name = Some(last.name.clone());
                event.metadata.resource_version = last.resource_version.clone();
                event.first_timestamp = last.first_timestamp.clone();
                event.count = Some(last.count.saturating_add(1));
                patch = Some(serde_json::json!({
                    "count": event.count,
                    "lastTimestamp": event.last_timestamp,
                    "message": event.message,
                }));
            }
        }
        self.logs.insert(
            key.clone(),
            EventLog {
                count: event.count.unwrap_or(1),
                first_timestamp: event.first_timestamp.clone(),
                name: event.metadata.name.clone().unwrap_or_default(),
                resource_version: event.metadata.resource_version.clone(),
            },
        );

        // Spam filter: a token bucket per source and object.
        let skey = spam_key(&event);
        let burst = f64::from(self.options.burst);
        let qps = self.options.qps;
        let allowed = {
            if self.spam.get_mut(&skey).is_none() {
                self.spam.insert(
                    skey.clone(),
                    SpamRecord {
                        tokens: burst,
                        last: now,
                    },
                );
            }
            let rec = self.spam.get_mut(&skey)?;
            let elapsed = now.saturating_duration_since(rec.last).as_secs_f64();
            rec.tokens = (rec.tokens + elapsed * qps).min(burst);
            rec.last = now;
            if rec.tokens >= 1.0 {
                rec.tokens -= 1.0;
                true
            } else {
                false
            }
        };
        if !allowed {
            return None;
        }
        Some(Correlated { event, patch, key })
    }

    /// Remembers the name and resourceVersion the API server gave an event.
    fn written(&mut self, key: &str, written: &Event) {
        if let Some(log) = self.logs.get_mut(key) {
            log.name = written.metadata.name.clone().unwrap_or_default();
            log.resource_version = written.metadata.resource_version.clone();
            log.count = written.count.unwrap_or(log.count);
        }
    }
}

const MAX_TRIES_PER_EVENT: u32 = 12;
const RETRY_SLEEP: Duration = Duration::from_secs(10);

async fn write_events(
    client: Client,
    mut rx: mpsc::Receiver<Pending>,
    mut correlator: Correlator,
    bucket: Option<BucketRateLimiter>,
) {
    while let Some(p) = rx.recv().await {
        let Some(c) = correlator.correlate(&p, Instant::now(), jiff::Timestamp::now()) else {
            continue;
        };
        let namespace = c.event.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
        for attempt in 1..=MAX_TRIES_PER_EVENT {
            match write_one(&api, &c, bucket.as_ref()).await {
                Ok(written) => {
                    correlator.written(&c.key, &written);
                    break;
                }
                Err(err @ ControllerError::Api(_)) => {
                    if !err.is_already_exists() && !err.has_status_cause("NamespaceTerminating") {
                        tracing::error!(error = %err, reason = ?c.event.reason, "server rejected event (will not retry)");
                    }
                    break;
                }
                Err(err) => {
                    if attempt == MAX_TRIES_PER_EVENT {
                        tracing::error!(error = %err, "unable to write event; giving up");
                        break;
                    }
                    tracing::warn!(error = %err, "unable to write event; will retry");
                    tokio::time::sleep(RETRY_SLEEP).await;
                }
            }
        }
    }
}

/// Writes one event: a patch of the earlier one, or a create (also when the earlier one
/// is gone). Each request first takes a token from `bucket`, as client-go's limiter
/// counts requests.
async fn write_one(
    api: &Api<Event>,
    c: &Correlated,
    bucket: Option<&BucketRateLimiter>,
) -> Result<Event, ControllerError> {
    if let Some(patch) = &c.patch {
        if let Some(b) = bucket {
            take(b).await;
        }
        let name = c.event.metadata.name.clone().unwrap_or_default();
        match api
            .patch(&name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Ok(e) => return Ok(e),
            Err(err) => {
                let err = ControllerError::from(err);
                if !err.is_not_found() {
                    return Err(err);
                }
            }
        }
    }
    if let Some(b) = bucket {
        take(b).await;
    }
    let mut event = c.event.clone();
    event.metadata.resource_version = None;
    Ok(api.create(&PostParams::default(), &event).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn token_bucket_lets_a_burst_through_then_paces() {
        let start = Instant::now();
        let b = BucketRateLimiter::new(2.0, 3);
        for _ in 0..3 {
            take(&b).await;
        }
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "the burst waits for nothing"
        );
        take(&b).await;
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        take(&b).await;
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
        // Idle time refills, up to the burst and no further.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let idle_end = Instant::now();
        for _ in 0..3 {
            take(&b).await;
        }
        assert_eq!(idle_end.elapsed(), Duration::ZERO);
        take(&b).await;
        assert_eq!(idle_end.elapsed(), Duration::from_millis(500));
    }

    #[test]
    fn write_limit_from_upstream_flags() {
        assert_eq!(
            WriteLimit::from_flags(0.0, 0),
            Some(WriteLimit {
                qps: 5.0,
                burst: 10
            }),
            "0 means client-go's defaults"
        );
        assert_eq!(
            WriteLimit::from_flags(-1.0, 100),
            None,
            "negative: no limit"
        );
        assert_eq!(
            WriteLimit::from_flags(50.0, 100),
            Some(WriteLimit {
                qps: 50.0,
                burst: 100
            })
        );
        assert_eq!(WriteLimit::from_flags(7.0, 0).map(|l| l.burst), Some(10));
    }

    fn pending(reason: &str, message: &str) -> Pending {
        Pending {
            source: Arc::new(EventSource {
                component: Some("replicaset-controller".into()),
                host: None,
            }),
            involved: ObjectReference {
                api_version: Some("apps/v1".into()),
                kind: Some("ReplicaSet".into()),
                namespace: Some("ns".into()),
                name: Some("web".into()),
                uid: Some("uid-1".into()),
                resource_version: Some("7".into()),
                field_path: None,
            },
            type_: EventType::Normal,
            reason: reason.into(),
            message: message.into(),
        }
    }

    fn wall(n: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + n).unwrap()
    }

    #[test]
    fn new_event_fields() {
        let mut c = Correlator::new(CorrelatorOptions::default());
        let got = c
            .correlate(
                &pending("SuccessfulCreate", "Created pod: web-abcde"),
                Instant::now(),
                wall(0),
            )
            .unwrap();
        let e = got.event;
        assert!(got.patch.is_none());
        assert_eq!(e.metadata.namespace.as_deref(), Some("ns"));
        let name = e.metadata.name.unwrap();
        assert_eq!(name, format!("web.{:x}", wall(0).as_nanosecond()));
        assert_eq!(e.reason.as_deref(), Some("SuccessfulCreate"));
        assert_eq!(e.message.as_deref(), Some("Created pod: web-abcde"));
        assert_eq!(e.type_.as_deref(), Some("Normal"));
        assert_eq!(e.count, Some(1));
        assert_eq!(
            e.reporting_component.as_deref(),
            Some("replicaset-controller")
        );
        assert_eq!(
            e.source.unwrap().component.as_deref(),
            Some("replicaset-controller")
        );
        assert_eq!(e.involved_object.uid.as_deref(), Some("uid-1"));
        assert_eq!(e.first_timestamp, Some(Time(wall(0))));
    }

    #[test]
    fn identical_events_patch_the_count() {
        let mut c = Correlator::new(CorrelatorOptions::default());
        let now = Instant::now();
        let first = c
            .correlate(
                &pending("FailedCreate", "Error creating: quota"),
                now,
                wall(0),
            )
            .unwrap();
        let mut written = first.event.clone();
        written.metadata.resource_version = Some("42".into());
        c.written(&first.key, &written);
        let second = c
            .correlate(
                &pending("FailedCreate", "Error creating: quota"),
                now,
                wall(5),
            )
            .unwrap();
        assert_eq!(second.event.metadata.name, first.event.metadata.name);
        assert_eq!(second.event.count, Some(2));
        assert_eq!(second.event.first_timestamp, Some(Time(wall(0))));
        let patch = second.patch.unwrap();
        assert_eq!(patch["count"], 2);
        assert_eq!(patch["message"], "Error creating: quota");
        assert_eq!(
            patch["lastTimestamp"],
            serde_json::to_value(Time(wall(5))).unwrap()
        );
    }

    #[test]
    fn similar_events_are_combined_after_ten() {
        let mut c = Correlator::new(CorrelatorOptions::default());
        let now = Instant::now();
        let mut messages = Vec::new();
        for i in 0..12 {
            let got = c
                .correlate(
                    &pending("SuccessfulCreate", &format!("Created pod: web-{i}")),
                    now,
                    wall(i),
                )
                .unwrap();
            messages.push((got.event.message.unwrap(), got.event.count.unwrap()));
        }
        for (i, (m, count)) in messages.iter().take(9).enumerate() {
            assert_eq!(m, &format!("Created pod: web-{i}"));
            assert_eq!(*count, 1);
        }
        assert_eq!(
            messages[9].0,
            "(combined from similar events): Created pod: web-9"
        );
        assert_eq!(messages[9].1, 1);
        assert_eq!(
            messages[10].0,
            "(combined from similar events): Created pod: web-10"
        );
        assert_eq!(messages[10].1, 2);
        assert_eq!(messages[11].1, 3);
    }

    #[test]
    fn spam_filter_allows_a_burst_of_25_per_object() {
        let mut c = Correlator::new(CorrelatorOptions::default());
        let now = Instant::now();
        let mut sent = 0;
        for i in 0..40 {
            // Distinct reasons so that nothing is aggregated.
            if c.correlate(&pending(&format!("R{i}"), "m"), now, wall(0))
                .is_some()
            {
                sent += 1;
            }
        }
        assert_eq!(sent, 25);
        // Five minutes later one more token is available.
        let later = now + Duration::from_secs(300);
        assert!(c
            .correlate(&pending("R100", "m"), later, wall(300))
            .is_some());
        assert!(c
            .correlate(&pending("R101", "m"), later, wall(300))
            .is_none());
    }

    #[test]
    fn cluster_scoped_objects_record_in_default() {
        let mut p = pending("X", "y");
        p.involved.namespace = None;
        let e = make_event(&p, wall(0));
        assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
    }

    #[test]
    fn lru_evicts_least_recent() {
        let mut l: Lru<u32> = Lru::new(8);
        for i in 0..8 {
            l.insert(format!("k{i}"), i);
        }
        assert!(l.get_mut("k0").is_some());
        for i in 8..20 {
            l.insert(format!("k{i}"), i);
        }
        assert!(l.map.len() <= 9);
        assert!(l.get_mut("k1").is_none());
        assert!(l.get_mut("k19").is_some());
    }
}
