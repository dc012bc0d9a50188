//! The running scheduler: watches nodes, pods and namespaces through the API, keeps
//! the cache and queue, makes one decision at a time, and binds, reports failures
//! (PodScheduled condition and FailedScheduling events) and preempts through the API,
//! without blocking the decisions on those requests.

use crate::algorithm::{self, Search};
use crate::config::SchedulerConfiguration;
use crate::nodeinfo::Cache;
use crate::plugins::CycleState;
use crate::podinfo::PodInfo;
use crate::preemption;
use crate::queue::{Outcome, Queue};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Binding, Namespace, Node, ObjectReference, Pod, ReplicationController, Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event as KEvent, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, watcher};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};

/// Requests to the API in flight at once (bindings, status updates, events).
const API_CONCURRENCY: usize = 64;

enum Msg {
    Node(Box<watcher::Event<Node>>),
    Pod(Box<watcher::Event<Pod>>),
    Namespace(Box<watcher::Event<Namespace>>),
    Budget(Box<watcher::Event<PodDisruptionBudget>>),
    Service(Box<watcher::Event<Service>>),
    ReplicaSet(Box<watcher::Event<ReplicaSet>>),
    Rc(Box<watcher::Event<ReplicationController>>),
    StatefulSet(Box<watcher::Event<StatefulSet>>),
    Bound {
        key: String,
        result: Result<(), kube::Error>,
    },
}

fn forward<K>(
    api: Api<K>,
    cfg: watcher::Config,
    tx: mpsc::Sender<Msg>,
    wrap: fn(Box<watcher::Event<K>>) -> Msg,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = watcher(api, cfg).boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(ev) => {
                    if tx.send(wrap(Box::new(ev))).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler watch failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    })
}

/// Best-effort event sink: a bounded queue drained by a few concurrent writers. When
/// the API falls behind, new events are dropped rather than delaying decisions or
/// bindings (upstream's event broadcaster drops them the same way).
#[derive(Clone)]
struct Events {
    tx: mpsc::Sender<(KEvent, ObjectReference)>,
}

/// Events queued at most before new ones are dropped.
const EVENT_QUEUE: usize = 1000;
/// Event writes in flight.
const EVENT_WRITERS: usize = 4;

impl Events {
    fn start(recorder: Recorder) -> (Events, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<(KEvent, ObjectReference)>(EVENT_QUEUE);
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let task = tokio::spawn(stream.for_each_concurrent(
            EVENT_WRITERS,
            move |(ev, reference)| {
                let recorder = recorder.clone();
                async move {
                    if let Err(e) = recorder.publish(&ev, &reference).await {
                        tracing::debug!(error = %e, "recording an event failed");
                    }
                }
            },
        ));
        (Events { tx }, task)
    }

    fn emit(
        &self,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
        reference: ObjectReference,
    ) {
        let ev = KEvent {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        let _ = self.tx.try_send((ev, reference));
    }
}

/// Aborts the watch tasks when the scheduler stops.
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Decides for whether a node change can make parked pods fit.
fn node_changed_for_scheduling(old: Option<&crate::nodeinfo::NodeInfo>, new: &Node) -> bool {
    let Some(old) = old.and_then(|o| o.node.as_ref()) else {
        return true;
    };
    old.metadata.labels != new.metadata.labels
        || old.spec.as_ref().map(|s| (&s.taints, s.unschedulable))
            != new.spec.as_ref().map(|s| (&s.taints, s.unschedulable))
        || old.status.as_ref().map(|s| &s.allocatable)
            != new.status.as_ref().map(|s| &s.allocatable)
}

struct State {
    client: kube::Client,
    config: SchedulerConfiguration,
    /// The configuration's profiles by schedulerName, shared with each decision.
    profiles: HashMap<String, Arc<crate::config::Profile>>,
    cache: Cache,
    queue: Queue,
    search: Search,
    /// Pods nominated to nodes by preemption, by node.
    nominated: HashMap<String, Vec<Arc<PodInfo>>>,
    /// Selectors of Services and controllers, for default spread constraints.
    groups: crate::defaultspread::GroupSelectors,
    /// PodDisruptionBudgets by `namespace/name`, for preemption.
    budgets: HashMap<String, Arc<preemption::DisruptionBudget>>,
    events: Events,
    api_slots: Arc<Semaphore>,
    tx: mpsc::Sender<Msg>,
    nodes_synced: bool,
    pods_synced: bool,
    relist_pods: Option<HashSet<String>>,
    relist_nodes: Option<HashSet<String>>,
}

impl State {
    fn ours(&self, info: &PodInfo) -> bool {
        self.profiles.contains_key(&info.scheduler_name)
    }

    fn forget_nominated(&mut self, key: &str) {
        for pods in self.nominated.values_mut() {
            pods.retain(|p| p.key != key);
        }
        self.nominated.retain(|_, v| !v.is_empty());
    }

    fn apply_pod(&mut self, mut pod: Pod) {
        // What the scheduler never reads is not kept: managed fields always, and the
        // status and annotations of bound pods (their phase is read first).
        pod.metadata.managed_fields = None;
        let mut info = PodInfo::new(Arc::new(pod));
        if !info.node_name.is_empty() {
            if let Some(mut p) = Arc::get_mut(&mut info.pod).map(std::mem::take) {
                p.status = None;
                p.metadata.annotations = None;
                info.pod = Arc::new(p);
            }
        }
        let info = Arc::new(info);
        if let Some(seen) = &mut self.relist_pods {
            seen.insert(info.key.clone());
        }
        if info.finished {
            let was_on_node = self.cache.remove_pod(&info.key).is_some();
            self.queue.remove(&info.key);
            self.forget_nominated(&info.key);
            if was_on_node {
                self.queue.move_all();
            }
            return;
        }
        if !info.node_name.is_empty() {
            self.queue.remove(&info.key);
            self.forget_nominated(&info.key);
            let became_terminating = info.terminating
                && self
                    .cache
                    .node_of(&info.key)
                    .is_some_and(|_| !self.cache.is_assumed(&info.key));
            self.cache.add_pod(info, false);
            if became_terminating {
                self.queue.move_all();
            }
            return;
        }
        if self.cache.is_assumed(&info.key) || info.terminating || !self.ours(&info) {
            if info.terminating {
                self.queue.remove(&info.key);
            }
            return;
        }
        self.queue.add_or_update(info);
    }

    fn delete_pod(&mut self, pod: &Pod) {
        let key = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or(""),
            pod.metadata.name.as_deref().unwrap_or("")
        );
        let was_on_node = self.cache.remove_pod(&key).is_some();
        self.queue.remove(&key);
        self.forget_nominated(&key);
        if was_on_node {
            self.queue.move_all();
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Node(ev) => match *ev {
                watcher::Event::Apply(n) | watcher::Event::InitApply(n) => {
                    let name = n.metadata.name.clone().unwrap_or_default();
                    if let Some(seen) = &mut self.relist_nodes {
                        seen.insert(name.clone());
                    }
                    let changed = node_changed_for_scheduling(self.cache.node(&name), &n);
                    self.cache.set_node(Arc::new(n));
                    if changed {
                        self.queue.move_all();
                    }
                }
                watcher::Event::Delete(n) => {
                    self.cache
                        .remove_node(n.metadata.name.as_deref().unwrap_or(""));
                }
                watcher::Event::Init => self.relist_nodes = Some(HashSet::new()),
                watcher::Event::InitDone => {
                    if let Some(seen) = self.relist_nodes.take() {
                        for name in self.cache.node_names() {
                            if !seen.contains(&name) {
                                self.cache.remove_node(&name);
                            }
                        }
                    }
                    self.nodes_synced = true;
                    self.queue.move_all();
                }
            },
            Msg::Pod(ev) => match *ev {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => self.apply_pod(p),
                watcher::Event::Delete(p) => self.delete_pod(&p),
                watcher::Event::Init => self.relist_pods = Some(HashSet::new()),
                watcher::Event::InitDone => {
                    if let Some(seen) = self.relist_pods.take() {
                        for key in self.cache.pod_keys() {
                            if !seen.contains(&key) && !self.cache.is_assumed(&key) {
                                self.cache.remove_pod(&key);
                            }
                        }
                    }
                    self.pods_synced = true;
                }
            },
            Msg::Namespace(ev) => match *ev {
                watcher::Event::Apply(n) | watcher::Event::InitApply(n) => {
                    let name = n.metadata.name.clone().unwrap_or_default();
                    let labels = n.metadata.labels.clone().unwrap_or_default();
                    Arc::make_mut(&mut self.cache.namespace_labels).insert(name, labels);
                }
                watcher::Event::Delete(n) => {
                    Arc::make_mut(&mut self.cache.namespace_labels)
                        .remove(n.metadata.name.as_deref().unwrap_or(""));
                }
                _ => {}
            },
            Msg::Budget(ev) => match *ev {
                watcher::Event::Apply(b) | watcher::Event::InitApply(b) => {
                    let key = format!(
                        "{}/{}",
                        b.metadata.namespace.as_deref().unwrap_or(""),
                        b.metadata.name.as_deref().unwrap_or("")
                    );
                    self.budgets
                        .insert(key, Arc::new(preemption::DisruptionBudget::new(&b)));
                }
                watcher::Event::Delete(b) => {
                    let key = format!(
                        "{}/{}",
                        b.metadata.namespace.as_deref().unwrap_or(""),
                        b.metadata.name.as_deref().unwrap_or("")
                    );
                    self.budgets.remove(&key);
                }
                watcher::Event::Init => self.budgets.clear(),
                watcher::Event::InitDone => {}
            },
            Msg::Service(ev) => group_event(&mut self.groups, "Service", *ev, |s| {
                (
                    &s.metadata,
                    Group::Map(s.spec.as_ref().and_then(|s| s.selector.as_ref())),
                )
            }),
            Msg::Rc(ev) => group_event(&mut self.groups, "ReplicationController", *ev, |r| {
                (
                    &r.metadata,
                    Group::Map(r.spec.as_ref().and_then(|s| s.selector.as_ref())),
                )
            }),
            Msg::ReplicaSet(ev) => group_event(&mut self.groups, "ReplicaSet", *ev, |r| {
                (
                    &r.metadata,
                    Group::Labels(r.spec.as_ref().map(|s| &s.selector)),
                )
            }),
            Msg::StatefulSet(ev) => group_event(&mut self.groups, "StatefulSet", *ev, |r| {
                (
                    &r.metadata,
                    Group::Labels(r.spec.as_ref().map(|s| &s.selector)),
                )
            }),
            Msg::Bound { key, result } => match result {
                Ok(()) => self.queue.remove(&key),
                Err(e) => {
                    tracing::info!(pod = %key, error = %e, "binding failed");
                    if self.cache.is_assumed(&key) {
                        self.cache.remove_pod(&key);
                    }
                    let gone = matches!(&e, kube::Error::Api(s) if s.code == 404);
                    if gone {
                        self.queue.remove(&key);
                    } else {
                        self.queue.done(&key, Outcome::Error);
                    }
                }
            },
        }
    }

    /// Runs an API request in the background, bounded by the shared slots.
    fn background<F>(&self, f: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let slots = self.api_slots.clone();
        tokio::spawn(async move {
            let _permit = slots.acquire_owned().await;
            f.await;
        });
    }

    fn schedule_one(&mut self, pod: Arc<PodInfo>) {
        let Some(profile) = self.profiles.get(&pod.scheduler_name).cloned() else {
            self.queue.remove(&pod.key);
            return;
        };
        let pod = self.groups.with_defaults(&pod, &profile).unwrap_or(pod);
        let enabled = |p: &str| profile.enabled(p);
        let mut state = CycleState::new(&self.cache, &pod, &enabled);
        state.nominated = self.nominated.clone();
        let result = algorithm::schedule(
            &self.cache,
            &profile,
            self.config.percentage_of_nodes_to_score,
            &state,
            &pod,
            &mut self.search,
        );
        tracing::debug!(pod = %pod.key, result = ?result.as_ref().map_err(|e| e.message()), "scheduling decision");
        match result {
            Ok(node) => self.assume_and_bind(&pod, &node),
            Err(mut fit) => {
                let mut nominate = None;
                if fit.num_all_nodes > 0 {
                    let budgets: Vec<_> = self.budgets.values().cloned().collect();
                    match preemption::preempt(
                        &self.cache,
                        &profile,
                        &state,
                        &pod,
                        &fit.statuses,
                        &budgets,
                    ) {
                        Ok(p) => {
                            self.forget_nominated(&pod.key);
                            self.nominated
                                .entry(p.node.clone())
                                .or_default()
                                .push(pod.clone());
                            self.evict(&pod, &p);
                            nominate = Some(p.node);
                        }
                        Err(msg) => fit.post_filter = Some(msg),
                    }
                }
                self.queue.done(&pod.key, Outcome::Unschedulable);
                self.report_unschedulable(&pod, fit.message(), nominate);
            }
        }
    }

    fn assume_and_bind(&mut self, pod: &Arc<PodInfo>, node: &str) {
        let mut assumed = (**pod).clone();
        assumed.node_name = node.to_string();
        self.cache.add_pod(Arc::new(assumed), true);
        self.forget_nominated(&pod.key);
        let client = self.client.clone();
        let tx = self.tx.clone();
        let events = self.events.clone();
        let (ns, name, uid, key) = (
            pod.namespace.clone(),
            pod.name.clone(),
            pod.uid.clone(),
            pod.key.clone(),
        );
        let node = node.to_string();
        let reference = pod_ref(pod);
        self.background(async move {
            let binding = Binding {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    uid: Some(uid),
                    ..Default::default()
                },
                target: ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Node".into()),
                    name: Some(node.clone()),
                    ..Default::default()
                },
            };
            let api: Api<Pod> = Api::namespaced(client, &ns);
            let result = api
                .create_subresource::<_, serde_json::Value>(
                    "binding",
                    &name,
                    &PostParams::default(),
                    &binding,
                )
                .await
                .map(|_| ());
            let ok = result.is_ok();
            let _ = tx.send(Msg::Bound { key, result }).await;
            if ok {
                let note = format!("Successfully assigned {ns}/{name} to {node}");
                events.emit(EventType::Normal, "Scheduled", "Binding", note, reference);
            }
        });
    }

    fn report_unschedulable(&self, pod: &Arc<PodInfo>, message: String, nominate: Option<String>) {
        let current = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        let same = current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message.as_str())
        }) && nominate.is_none();
        let client = self.client.clone();
        let reference = pod_ref(pod);
        let note = message.clone();
        let (ns, name) = (pod.namespace.clone(), pod.name.clone());
        let transition = current
            .filter(|c| c.status == "False")
            .and_then(|c| c.last_transition_time.clone())
            .map(|t| json!(t))
            .unwrap_or_else(|| json!(k8s_openapi::jiff::Timestamp::now().to_string()));
        self.background(async move {
            if !same {
                let mut status = json!({"conditions": [{
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastProbeTime": null,
                    "lastTransitionTime": transition,
                }]});
                if let Some(n) = &nominate {
                    status["nominatedNodeName"] = json!(n);
                }
                let api: Api<Pod> = Api::namespaced(client, &ns);
                let patch = json!({"status": status});
                if let Err(e) = api
                    .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                    .await
                {
                    tracing::debug!(pod = %name, error = %e, "updating PodScheduled failed");
                }
            }
        });
        self.events.emit(
            EventType::Warning,
            "FailedScheduling",
            "Scheduling",
            note,
            reference,
        );
    }

    fn evict(&self, preemptor: &Arc<PodInfo>, p: &preemption::Preemption) {
        for victim in &p.victims {
            let client = self.client.clone();
            let events = self.events.clone();
            let victim = victim.clone();
            let note = format!("Preempted by pod {} on node {}", preemptor.uid, p.node);
            let scheduler = preemptor.scheduler_name.clone();
            self.background(async move {
                let api: Api<Pod> = Api::namespaced(client, &victim.namespace);
                let condition = json!({"status": {"conditions": [{
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "PreemptionByScheduler",
                    "message": format!("{scheduler}: preempting to accommodate a higher priority pod"),
                    "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(),
                }]}});
                let _ = api
                    .patch_status(&victim.name, &PatchParams::default(), &Patch::Strategic(&condition))
                    .await;
                let dp = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(victim.uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match api.delete(&victim.name, &dp).await {
                    Ok(_) => events.emit(
                        EventType::Normal,
                        "Preempted",
                        "Preempting",
                        note,
                        pod_ref(&victim),
                    ),
                    Err(e) => tracing::info!(pod = %victim.key, error = %e, "deleting a victim failed"),
                }
            });
        }
    }
}

/// The selector of a pod-grouping object, as its kind spells it.
enum Group<'a> {
    Map(Option<&'a std::collections::BTreeMap<String, String>>),
    Labels(Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>),
}

/// Applies a watch event of a Service or controller to the default-spread selectors.
fn group_event<K>(
    groups: &mut crate::defaultspread::GroupSelectors,
    kind: &str,
    ev: watcher::Event<K>,
    parts: impl Fn(&K) -> (&ObjectMeta, Group<'_>),
) {
    match ev {
        watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
            let (meta, group) = parts(&o);
            let ns = meta.namespace.as_deref().unwrap_or("");
            let name = meta.name.as_deref().unwrap_or("");
            match group {
                Group::Map(m) => groups.set_map(kind, ns, name, m),
                Group::Labels(s) => groups.set_label_selector(kind, ns, name, s),
            }
        }
        watcher::Event::Delete(o) => {
            let (meta, _) = parts(&o);
            groups.remove(
                kind,
                meta.namespace.as_deref().unwrap_or(""),
                meta.name.as_deref().unwrap_or(""),
            );
        }
        watcher::Event::Init => groups.clear_kind(kind),
        watcher::Event::InitDone => {}
    }
}

fn pod_ref(pod: &PodInfo) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(pod.name.clone()),
        namespace: Some(pod.namespace.clone()),
        uid: Some(pod.uid.clone()),
        resource_version: pod.pod.metadata.resource_version.clone(),
        ..Default::default()
    }
}

/// Runs the scheduling loop until the future is dropped or the watches end.
pub async fn run_loop(client: kube::Client, config: SchedulerConfiguration) {
    let (tx, mut rx) = mpsc::channel::<Msg>(8192);
    let pods_cfg = watcher::Config::default()
        .fields("status.phase!=Succeeded,status.phase!=Failed")
        .page_size(5000);
    let _watches = Tasks(vec![
        forward(
            Api::<Node>::all(client.clone()),
            watcher::Config::default(),
            tx.clone(),
            Msg::Node,
        ),
        forward(
            Api::<Pod>::all(client.clone()),
            pods_cfg,
            tx.clone(),
            Msg::Pod,
        ),
        forward(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default(),
            tx.clone(),
            Msg::Namespace,
        ),
        forward(
            Api::<PodDisruptionBudget>::all(client.clone()),
            watcher::Config::default(),
            tx.clone(),
            Msg::Budget,
        ),
        forward(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
            tx.clone(),
            Msg::Service,
        ),
        forward(
            Api::<ReplicationController>::all(client.clone()),
            watcher::Config::default(),
            tx.clone(),
            Msg::Rc,
        ),
        forward(
            Api::<ReplicaSet>::all(client.clone()),
            watcher::Config::default(),
            tx.clone(),
            Msg::ReplicaSet,
        ),
        forward(
            Api::<StatefulSet>::all(client.clone()),
            watcher::Config::default(),
            tx.clone(),
            Msg::StatefulSet,
        ),
    ]);
    let reporter = Reporter {
        controller: config
            .profiles
            .first()
            .map(|p| p.scheduler_name.clone())
            .unwrap_or_else(|| "default-scheduler".into()),
        instance: None,
    };
    let (events, events_task) = Events::start(Recorder::new(client.clone(), reporter));
    let _tasks = Tasks(vec![events_task]);
    let mut state = State {
        events,
        client,
        profiles: config
            .profiles
            .iter()
            .map(|p| (p.scheduler_name.clone(), Arc::new(p.clone())))
            .collect(),
        config,
        cache: Cache::default(),
        queue: Queue::default(),
        search: Search::default(),
        nominated: HashMap::new(),
        budgets: HashMap::new(),
        groups: Default::default(),
        api_slots: Arc::new(Semaphore::new(API_CONCURRENCY)),
        tx,
        nodes_synced: false,
        pods_synced: false,
        relist_pods: None,
        relist_nodes: None,
    };
    let mut decisions = 0u64;
    loop {
        while let Ok(msg) = rx.try_recv() {
            state.handle(msg);
        }
        let ready = state.nodes_synced && state.pods_synced;
        if ready {
            state.queue.flush(Instant::now());
            if let Some(pod) = state.queue.pop() {
                state.schedule_one(pod);
                // Let the binding tasks, watches and signal handlers run between
                // decisions: a long queue must not monopolize the worker thread.
                decisions += 1;
                if decisions.is_multiple_of(16) {
                    tokio::task::yield_now().await;
                }
                continue;
            }
        }
        let wake = state
            .queue
            .next_backoff()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(30));
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(m) => state.handle(m),
                None => return,
            },
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}
