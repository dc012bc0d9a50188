//! The garbage collector: cascading deletion through `metadata.ownerReferences`.
//!
//! - Every 30 seconds discovery lists the resources supporting `delete`, `list` and
//!   `watch` (events excepted); each gets a metadata-only watch
//!   ([`MetadataInformer`]) feeding the single graph builder task.
//! - The graph builder applies changes to the [`graph::Graph`] and queues work:
//!   objects that may be garbage (`attempt to delete`) and owners being deleted with
//!   the `orphan` finalizer (`attempt to orphan`).
//! - Delete workers look the object up live, classify its owners (solid, dangling,
//!   waiting for dependents' deletion; absent owners are confirmed by a live GET and
//!   remembered), and delete it (UID and resourceVersion preconditions, policy from
//!   its own finalizers; foreground when a foreground-deleted owner waits for it and
//!   it has dependents), or patch away references to owners that are gone; for an
//!   owner deleted in the foreground, they delete its blocking dependents and drop
//!   `foregroundDeletion` once none is left.
//! - Orphan workers remove the owner's reference from all its dependents, then its
//!   `orphan` finalizer.

pub mod absent;
pub mod graph;
mod operations;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use controllers::events::{EventRecorder, EventType as RecordedEventType};
use controllers::workqueue::WorkQueue;
use controllers::{ControllerContext, ControllerError, ControllerFuture};
use futures::FutureExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::discovery::ApiResource;
use kube::Client;
use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::discovery::{self, Gvr, RestMapper};
use crate::metadata_informer::{MetaEvent, MetadataInformer};
use absent::{ReferenceCache, ABSENT_OWNER_CACHE_SIZE};
use graph::{Action, EventType, Graph, GraphEvent, ObjectRef};

/// Canonical name of the controller.
pub const GARBAGE_COLLECTOR_CONTROLLER_NAME: &str = "garbage-collector-controller";

/// How often discovery is re-run to watch new resources (and stop watching removed
/// ones), and how long the first sync of the watches is waited for.
pub const RESOURCE_SYNC_PERIOD: Duration = Duration::from_secs(30);

/// Group/resources never watched: events (core and events.k8s.io).
pub const IGNORED_RESOURCES: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

/// Why one piece of garbage collector work failed.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// The object is gone; a virtual delete event was queued for the graph builder.
    #[error("enqueued virtual delete event")]
    VirtualDeleteEnqueued,
    /// A cluster-scoped object names a namespaced owner (not retried).
    #[error("cluster-scoped objects cannot refer to namespaced owners")]
    NamespacedOwnerOfClusterScopedObject,
    /// apiVersion/kind unknown to discovery (retried: it may appear later).
    #[error("unable to get REST mapping for {api_version}/{kind}.")]
    RestMapping {
        /// apiVersion of the reference.
        api_version: String,
        /// Kind of the reference.
        kind: String,
    },
    /// An API request failed.
    #[error(transparent)]
    Api(#[from] ControllerError),
}

impl From<kube::Error> for GcError {
    fn from(err: kube::Error) -> Self {
        GcError::Api(err.into())
    }
}

impl GcError {
    /// 404 from the apiserver.
    pub fn is_not_found(&self) -> bool {
        matches!(self, GcError::Api(e) if e.is_not_found())
    }

    /// 409 Conflict from the apiserver.
    pub fn is_conflict(&self) -> bool {
        matches!(self, GcError::Api(e) if e.is_conflict())
    }

    /// 415 Unsupported Media Type (no strategic merge patch for this type).
    pub fn is_unsupported_media_type(&self) -> bool {
        matches!(self, GcError::Api(e) if e.code() == Some(415))
    }
}

/// What a worker does with an item after processing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WorkAction {
    Forget,
    Requeue,
}

struct Shared {
    client: Client,
    graph: RwLock<Graph>,
    mapper: RwLock<RestMapper>,
    absent: Mutex<ReferenceCache>,
    attempt_to_delete: WorkQueue<ObjectRef>,
    attempt_to_orphan: WorkQueue<ObjectRef>,
    changes: mpsc::UnboundedSender<GraphEvent>,
    recorder: EventRecorder,
    monitors: Mutex<HashMap<Gvr, MetadataInformer>>,
}

/// The garbage collector. Cheap to clone; [`GarbageCollector::run`] runs it.
#[derive(Clone)]
pub struct GarbageCollector {
    shared: Arc<Shared>,
    changes_rx: Arc<Mutex<Option<mpsc::UnboundedReceiver<GraphEvent>>>>,
}

impl GarbageCollector {
    /// A garbage collector working through `ctx`'s client and event broadcaster.
    pub fn new(ctx: &ControllerContext) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        GarbageCollector {
            shared: Arc::new(Shared {
                client: ctx.client.clone(),
                graph: RwLock::new(Graph::new()),
                mapper: RwLock::new(RestMapper::default()),
                absent: Mutex::new(ReferenceCache::new(ABSENT_OWNER_CACHE_SIZE)),
                attempt_to_delete: WorkQueue::new("garbage_collector_attempt_to_delete"),
                attempt_to_orphan: WorkQueue::new("garbage_collector_attempt_to_orphan"),
                changes: tx,
                recorder: ctx.events.recorder(GARBAGE_COLLECTOR_CONTROLLER_NAME),
                monitors: Mutex::new(HashMap::new()),
            }),
            changes_rx: Arc::new(Mutex::new(Some(rx))),
        }
    }

    /// Whether the graph holds a node for `uid` (for tests and debugging).
    pub fn graph_has_uid(&self, uid: &str) -> bool {
        self.shared.graph.read().get(uid).is_some()
    }

    /// Whether resources are watched and every watch has listed once.
    pub fn is_synced(&self) -> bool {
        let monitors = self.shared.monitors.lock();
        !monitors.is_empty() && monitors.values().all(|m| m.has_synced())
    }

    /// The resources watched now.
    pub fn monitored_resources(&self) -> Vec<Gvr> {
        let mut v: Vec<Gvr> = self.shared.monitors.lock().keys().cloned().collect();
        v.sort();
        v
    }

    /// Runs the collector with `workers` workers per queue until dropped: the graph
    /// builder, the discovery resync every [`RESOURCE_SYNC_PERIOD`], and the workers
    /// (started once the watches have synced or the sync period has passed).
    pub async fn run(self, workers: usize) {
        let Some(rx) = self.changes_rx.lock().take() else {
            tracing::error!("garbage collector is already running");
            return;
        };
        let shared = self.shared.clone();
        let _stop = StopQueues(shared.clone());
        let mut tasks = JoinSet::new();
        tasks.spawn(graph_builder(shared.clone(), rx));
        tasks.spawn(resync_loop(shared.clone(), RESOURCE_SYNC_PERIOD));
        let deadline = tokio::time::Instant::now() + RESOURCE_SYNC_PERIOD;
        loop {
            if self.is_synced() {
                tracing::info!("garbage collector: all resource monitors have synced");
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::info!(
                    "garbage collector: not all resource monitors could be synced, proceeding anyways"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for _ in 0..workers.max(1) {
            tasks.spawn(delete_worker(shared.clone()));
            tasks.spawn(orphan_worker(shared.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// Stops the queues (and the watches) when the running future is dropped.
struct StopQueues(Arc<Shared>);

impl Drop for StopQueues {
    fn drop(&mut self) {
        self.0.attempt_to_delete.shut_down();
        self.0.attempt_to_orphan.shut_down();
        self.0.monitors.lock().clear();
    }
}

/// Starts the garbage collector on `ctx` (a no-op future if
/// `--enable-garbage-collector=false`), with `--concurrent-gc-syncs` workers.
pub fn start_garbage_collector(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    if !ctx.config.enable_garbage_collector {
        tracing::info!("garbage collector disabled by --enable-garbage-collector=false");
        return Ok(futures::future::pending().boxed());
    }
    let gc = GarbageCollector::new(ctx);
    let workers = ctx.config.concurrent_gc_syncs.max(1) as usize;
    Ok(gc.run(workers).boxed())
}

/// `group/version`, or the version alone for the core group.
fn group_version(g: &Gvr) -> String {
    if g.group.is_empty() {
        g.version.clone()
    } else {
        format!("{}/{}", g.group, g.version)
    }
}

fn is_ignored(gvr: &Gvr) -> bool {
    IGNORED_RESOURCES
        .iter()
        .any(|(g, r)| gvr.group == *g && gvr.resource == *r)
}

/// Re-runs discovery every `period`, refreshing the REST mapper and the set of
/// watched resources when discovery reports a change.
async fn resync_loop(shared: Arc<Shared>, period: Duration) {
    let mut old: HashSet<Gvr> = HashSet::new();
    loop {
        match discovery::discover(&shared.client).await {
            Err(err) => {
                tracing::info!(error = %err, "failed to discover preferred resources");
            }
            Ok(found) => {
                if let Some(msg) = found.failure_message() {
                    tracing::info!(groups = %msg, "failed to discover some groups");
                }
                let mut new: HashMap<Gvr, ApiResource> = found
                    .preferred_supporting(&["delete", "list", "watch"])
                    .into_iter()
                    .map(|r| (r.gvr(), r.resource))
                    .collect();
                // Keep the synced watches of resources whose group/version failed to
                // answer this time.
                let kept: Vec<(Gvr, ApiResource)> = {
                    let monitors = shared.monitors.lock();
                    old.iter()
                        .filter(|g| found.failed.contains_key(&group_version(g)))
                        .filter_map(|g| {
                            monitors
                                .get(g)
                                .filter(|m| m.has_synced())
                                .map(|m| (g.clone(), m.resource().clone()))
                        })
                        .collect()
                };
                new.extend(kept);
                let keys: HashSet<Gvr> = new.keys().cloned().collect();
                if new.is_empty() {
                    tracing::debug!(
                        "no resources reported by discovery, skipping garbage collector sync"
                    );
                } else if keys != old {
                    tracing::debug!(
                        added = keys.difference(&old).count(),
                        removed = old.difference(&keys).count(),
                        "syncing garbage collector with updated resources from discovery"
                    );
                    *shared.mapper.write() = RestMapper::new(&found.all);
                    sync_monitors(&shared, &new);
                    old = keys;
                } else {
                    // Same watched set; still learn kinds of non-preferred versions.
                    let mapper = RestMapper::new(&found.all);
                    if mapper.len() != shared.mapper.read().len() {
                        *shared.mapper.write() = mapper;
                    }
                }
            }
        }
        tokio::time::sleep(period).await;
    }
}

/// Starts watches for new resources and stops those of resources gone.
fn sync_monitors(shared: &Arc<Shared>, resources: &HashMap<Gvr, ApiResource>) {
    let mut monitors = shared.monitors.lock();
    monitors.retain(|gvr, _| resources.contains_key(gvr));
    for (gvr, r) in resources {
        if is_ignored(gvr) || monitors.contains_key(gvr) {
            continue;
        }
        let tx = shared.changes.clone();
        let api_version = r.api_version.clone();
        let kind = r.kind.clone();
        let informer =
            MetadataInformer::spawn(shared.client.clone(), r.clone(), move |e: MetaEvent| {
                let (event_type, obj, old) = match e {
                    MetaEvent::Added(o) => (EventType::Add, o, None),
                    MetaEvent::Updated { old, new } => (EventType::Update, new, Some(old)),
                    MetaEvent::Deleted(o) => (EventType::Delete, o, None),
                };
                let _ = tx.send(GraphEvent {
                    virtual_: false,
                    event_type,
                    api_version: api_version.clone(),
                    kind: kind.clone(),
                    obj: (*obj).clone(),
                    old: old.map(|o| (*o).clone()),
                });
            });
        monitors.insert(gvr.clone(), informer);
    }
}

/// The single task that applies graph changes and queues the work they call for.
async fn graph_builder(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<GraphEvent>) {
    while let Some(event) = rx.recv().await {
        let actions = shared.graph.write().process(&event);
        for action in actions {
            match action {
                Action::AttemptToDelete(r) => shared.attempt_to_delete.add(r),
                Action::AttemptToDeleteRateLimited(r) => {
                    shared.attempt_to_delete.add_rate_limited(r)
                }
                Action::AttemptToOrphan(r) => shared.attempt_to_orphan.add(r),
                Action::AbsentOwner(r) => shared.absent.lock().add(r),
                Action::InvalidNamespaceOwnerRef { dependent, message } => {
                    shared.recorder.event_for(
                        ObjectReference {
                            api_version: Some(dependent.api_version.clone()),
                            kind: Some(dependent.kind.clone()),
                            namespace: Some(dependent.namespace.clone()),
                            name: Some(dependent.name.clone()),
                            uid: Some(dependent.uid.clone()),
                            ..Default::default()
                        },
                        RecordedEventType::Warning,
                        "OwnerRefInvalidNamespace",
                        message,
                    );
                }
            }
        }
    }
}

async fn delete_worker(shared: Arc<Shared>) {
    while let Some(item) = shared.attempt_to_delete.get().await {
        let action = operations::attempt_to_delete_worker(&shared, &item).await;
        match action {
            WorkAction::Forget => shared.attempt_to_delete.forget(&item),
            WorkAction::Requeue => shared.attempt_to_delete.add_rate_limited(item.clone()),
        }
        shared.attempt_to_delete.done(&item);
    }
}

async fn orphan_worker(shared: Arc<Shared>) {
    while let Some(item) = shared.attempt_to_orphan.get().await {
        let action = operations::attempt_to_orphan_worker(&shared, &item).await;
        match action {
            WorkAction::Forget => shared.attempt_to_orphan.forget(&item),
            WorkAction::Requeue => shared.attempt_to_orphan.add_rate_limited(item.clone()),
        }
        shared.attempt_to_orphan.done(&item);
    }
}
