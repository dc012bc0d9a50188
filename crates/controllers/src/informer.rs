//! Shared informers: one list+watch and one in-memory store per resource type, shared by
//! every controller that needs that type.
//!
//! - [`InformerFactory::informer`] hands out the informer of a type, creating it on
//!   first use; [`InformerFactory::start`] starts the watches (informers created after
//!   `start` start at once).
//! - The watch is `kube::runtime::watcher` (paged lists, resume from the last
//!   resourceVersion, relist on 410 Gone, backoff on errors). A relist replaces the
//!   store atomically when complete and reports the differences as notifications.
//! - [`Store`] is the cache: lookups by `namespace/name` key, by namespace, and by named
//!   indexes ([`Informer::add_index`]).
//! - [`Informer::add_handler`] subscribes a callback to [`Notification`]s (added,
//!   updated with old and new object, deleted with the last known state), delivered in
//!   order, after the store has been updated. Handlers run on the watch task and must
//!   be quick (typically: compute a key and add it to a work queue).
//!   [`Informer::subscribe`] gives the same notifications on a channel.
//! - [`Informer::wait_synced`] / [`InformerFactory::wait_for_cache_sync`] wait for the
//!   first complete list.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use futures::{StreamExt, TryStreamExt};
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, Resource};
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

/// What an informer can hold: a Kubernetes object type with static type information.
pub trait Object:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

impl<K> Object for K where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

/// Name of the built-in index of objects by namespace.
pub const NAMESPACE_INDEX: &str = "namespace";

/// Name of the index of objects by the UID of their controller owner reference; objects
/// without one are indexed under [`orphan_index_value`] of their namespace. Add it with
/// `informer.add_index(CONTROLLER_UID_INDEX, controller_uid_index_values)`.
pub const CONTROLLER_UID_INDEX: &str = "controller-uid";

/// The [`CONTROLLER_UID_INDEX`] value under which objects without a controller in
/// `namespace` are indexed.
pub fn orphan_index_value(namespace: &str) -> String {
    format!("orphan:{namespace}")
}

/// Index function of [`CONTROLLER_UID_INDEX`].
pub fn controller_uid_index_values<K: Resource>(obj: &K) -> Vec<String> {
    match crate::util::controller_ref(obj.meta()) {
        Some(r) => vec![r.uid.clone()],
        None => vec![orphan_index_value(
            obj.meta().namespace.as_deref().unwrap_or(""),
        )],
    }
}

/// The cache key of an object: `namespace/name`, or `name` for cluster-scoped objects.
pub fn object_key<K: Resource>(obj: &K) -> String {
    let meta = obj.meta();
    let name = meta.name.as_deref().unwrap_or("");
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// Splits a cache key into namespace (empty for cluster-scoped) and name.
pub fn split_key(key: &str) -> (&str, &str) {
    match key.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => ("", key),
    }
}

/// A change seen by an informer.
#[derive(Debug)]
pub enum Notification<K> {
    /// A new object (also sent for every cached object to a handler added late).
    Added(Arc<K>),
    /// A changed object.
    Updated {
        /// The state the store held before.
        old: Arc<K>,
        /// The new state.
        new: Arc<K>,
    },
    /// A deleted object, in its last known state (after a relist that found the object
    /// gone, that state may be older than the deletion).
    Deleted(Arc<K>),
}

impl<K> Clone for Notification<K> {
    fn clone(&self) -> Self {
        match self {
            Notification::Added(o) => Notification::Added(o.clone()),
            Notification::Updated { old, new } => Notification::Updated {
                old: old.clone(),
                new: new.clone(),
            },
            Notification::Deleted(o) => Notification::Deleted(o.clone()),
        }
    }
}

impl<K> Notification<K> {
    /// The most recent state of the object.
    pub fn object(&self) -> &Arc<K> {
        match self {
            Notification::Added(o) | Notification::Deleted(o) => o,
            Notification::Updated { new, .. } => new,
        }
    }
}

/// An index function: the index values an object is filed under.
pub type IndexFn<K> = Arc<dyn Fn(&K) -> Vec<String> + Send + Sync>;

struct Index<K> {
    func: IndexFn<K>,
    entries: HashMap<String, HashSet<String>>,
}

impl<K> Index<K> {
    fn add(&mut self, key: &str, obj: &K) {
        for value in (self.func)(obj) {
            self.entries
                .entry(value)
                .or_default()
                .insert(key.to_string());
        }
    }

    fn remove(&mut self, key: &str, obj: &K) {
        for value in (self.func)(obj) {
            if let Some(set) = self.entries.get_mut(&value) {
                set.remove(key);
                if set.is_empty() {
                    self.entries.remove(&value);
                }
            }
        }
    }
}

struct StoreData<K> {
    objects: HashMap<String, Arc<K>>,
    indexes: HashMap<String, Index<K>>,
}

impl<K> StoreData<K> {
    fn upsert(&mut self, key: String, obj: Arc<K>) -> Option<Arc<K>> {
        let old = self.objects.insert(key.clone(), obj.clone());
        for index in self.indexes.values_mut() {
            if let Some(old) = &old {
                index.remove(&key, old);
            }
            index.add(&key, &obj);
        }
        old
    }

    fn remove(&mut self, key: &str) -> Option<Arc<K>> {
        let old = self.objects.remove(key)?;
        for index in self.indexes.values_mut() {
            index.remove(key, &old);
        }
        Some(old)
    }
}

/// A read handle on an informer's cache. Cheap to clone.
pub struct Store<K> {
    data: Arc<RwLock<StoreData<K>>>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Store {
            data: self.data.clone(),
        }
    }
}

impl<K: Resource + 'static> Store<K> {
    fn new() -> Self {
        let mut indexes = HashMap::new();
        let by_namespace: IndexFn<K> =
            Arc::new(|o: &K| vec![o.meta().namespace.clone().unwrap_or_default()]);
        indexes.insert(
            NAMESPACE_INDEX.to_string(),
            Index {
                func: by_namespace,
                entries: HashMap::new(),
            },
        );
        Store {
            data: Arc::new(RwLock::new(StoreData {
                objects: HashMap::new(),
                indexes,
            })),
        }
    }

    /// The object with cache key `key` (`namespace/name` or `name`).
    pub fn get(&self, key: &str) -> Option<Arc<K>> {
        self.data.read().objects.get(key).cloned()
    }

    /// The object `name` in `namespace`.
    pub fn get_namespaced(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.get(&format!("{namespace}/{name}"))
    }

    /// Every cached object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.data.read().objects.values().cloned().collect()
    }

    /// The cached objects of one namespace.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.by_index(NAMESPACE_INDEX, namespace)
    }

    /// The objects filed under `value` in the index `index` (empty if the index does
    /// not exist).
    pub fn by_index(&self, index: &str, value: &str) -> Vec<Arc<K>> {
        let data = self.data.read();
        let Some(keys) = data.indexes.get(index).and_then(|i| i.entries.get(value)) else {
            return Vec::new();
        };
        keys.iter()
            .filter_map(|k| data.objects.get(k).cloned())
            .collect()
    }

    /// The cache keys of every object.
    pub fn keys(&self) -> Vec<String> {
        self.data.read().objects.keys().cloned().collect()
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.data.read().objects.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds an index (no-op if one of that name exists), filing the current contents.
    fn add_index(&self, name: &str, func: IndexFn<K>) {
        let mut data = self.data.write();
        if data.indexes.contains_key(name) {
            return;
        }
        let mut index = Index {
            func,
            entries: HashMap::new(),
        };
        for (key, obj) in &data.objects {
            index.add(key, obj);
        }
        data.indexes.insert(name.to_string(), index);
    }
}

type Handler<K> = Arc<dyn Fn(&Notification<K>) + Send + Sync>;

struct InformerShared<K> {
    resource: String,
    store: Store<K>,
    handlers: Mutex<Vec<(u64, Handler<K>)>>,
    /// Held while the store changes and handlers run, and while a handler is added, so
    /// that every handler sees every change exactly once and in order.
    dispatch: Mutex<()>,
    next_id: AtomicU64,
    synced: watch::Sender<bool>,
}

impl<K: Object> InformerShared<K> {
    fn notify(&self, notes: &[Notification<K>]) {
        if notes.is_empty() {
            return;
        }
        let handlers: Vec<Handler<K>> = self
            .handlers
            .lock()
            .iter()
            .map(|(_, h)| h.clone())
            .collect();
        for note in notes {
            for h in &handlers {
                h(note);
            }
        }
    }

    fn apply(&self, obj: K) {
        let _dispatch = self.dispatch.lock();
        let key = object_key(&obj);
        let new = Arc::new(obj);
        let old = self.store.data.write().upsert(key, new.clone());
        let note = match old {
            Some(old) => Notification::Updated { old, new },
            None => Notification::Added(new),
        };
        self.notify(&[note]);
    }

    fn delete(&self, obj: K) {
        let _dispatch = self.dispatch.lock();
        let key = object_key(&obj);
        let removed = self.store.data.write().remove(&key);
        // The watch's final state is newer than the cached one.
        let last = Arc::new(obj);
        if removed.is_some() {
            self.notify(&[Notification::Deleted(last)]);
        }
    }

    fn replace(&self, listed: HashMap<String, Arc<K>>) {
        let _dispatch = self.dispatch.lock();
        let mut notes = Vec::new();
        {
            let mut data = self.store.data.write();
            let gone: Vec<String> = data
                .objects
                .keys()
                .filter(|k| !listed.contains_key(*k))
                .cloned()
                .collect();
            for key in gone {
                if let Some(old) = data.remove(&key) {
                    notes.push(Notification::Deleted(old));
                }
            }
            for (key, obj) in listed {
                match data.upsert(key, obj.clone()) {
                    None => notes.push(Notification::Added(obj)),
                    Some(old) => {
                        if old.meta().resource_version != obj.meta().resource_version {
                            notes.push(Notification::Updated { old, new: obj });
                        }
                    }
                }
            }
        }
        self.notify(&notes);
    }
}

/// The shared informer of one resource type. Cheap to clone.
pub struct Informer<K> {
    shared: Arc<InformerShared<K>>,
}

impl<K> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            shared: self.shared.clone(),
        }
    }
}

/// Keeps a handler subscribed; dropping it unsubscribes.
pub struct HandlerRegistration {
    remove: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Drop for HandlerRegistration {
    fn drop(&mut self) {
        if let Some(remove) = self.remove.take() {
            remove();
        }
    }
}

impl std::fmt::Debug for HandlerRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandlerRegistration")
    }
}

/// Notifications delivered on a channel (see [`Informer::subscribe`]).
pub struct Subscription<K> {
    rx: mpsc::UnboundedReceiver<Notification<K>>,
    _registration: HandlerRegistration,
}

impl<K> Subscription<K> {
    /// The next notification (`None` if the informer is gone).
    pub async fn recv(&mut self) -> Option<Notification<K>> {
        self.rx.recv().await
    }

    /// A notification if one is ready.
    pub fn try_recv(&mut self) -> Option<Notification<K>> {
        self.rx.try_recv().ok()
    }
}

impl<K: Object> Informer<K> {
    fn new() -> Self {
        let (synced, _) = watch::channel(false);
        Informer {
            shared: Arc::new(InformerShared {
                resource: K::plural(&()).to_string(),
                store: Store::new(),
                handlers: Mutex::new(Vec::new()),
                dispatch: Mutex::new(()),
                next_id: AtomicU64::new(1),
                synced,
            }),
        }
    }

    /// The cache.
    pub fn store(&self) -> Store<K> {
        self.shared.store.clone()
    }

    /// Adds a named index to the cache (no-op if the name exists). All users of the
    /// informer share indexes, so a name must always mean the same function.
    pub fn add_index(&self, name: &str, func: impl Fn(&K) -> Vec<String> + Send + Sync + 'static) {
        let _dispatch = self.shared.dispatch.lock();
        self.shared.store.add_index(name, Arc::new(func));
    }

    /// Subscribes `handler` to changes. Objects already cached are delivered first as
    /// [`Notification::Added`]. The handler runs on the watch task while the informer
    /// is locked: it must be quick and must not add handlers or indexes itself.
    pub fn add_handler(
        &self,
        handler: impl Fn(&Notification<K>) + Send + Sync + 'static,
    ) -> HandlerRegistration {
        let handler: Handler<K> = Arc::new(handler);
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let _dispatch = self.shared.dispatch.lock();
            self.shared.handlers.lock().push((id, handler.clone()));
            for obj in self.shared.store.list() {
                handler(&Notification::Added(obj));
            }
        }
        let weak: Weak<InformerShared<K>> = Arc::downgrade(&self.shared);
        HandlerRegistration {
            remove: Some(Box::new(move || {
                if let Some(shared) = weak.upgrade() {
                    shared.handlers.lock().retain(|(i, _)| *i != id);
                }
            })),
        }
    }

    /// Notifications on a channel instead of a callback.
    pub fn subscribe(&self) -> Subscription<K> {
        let (tx, rx) = mpsc::unbounded_channel();
        let registration = self.add_handler(move |n| {
            let _ = tx.send(n.clone());
        });
        Subscription {
            rx,
            _registration: registration,
        }
    }

    /// Whether the first complete list has been stored.
    pub fn has_synced(&self) -> bool {
        *self.shared.synced.borrow()
    }

    /// Waits until the first complete list has been stored.
    pub async fn wait_synced(&self) {
        let mut rx = self.shared.synced.subscribe();
        // The sender lives as long as `self`, so this only ends when synced.
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Runs the list+watch loop forever.
    async fn run(shared: Arc<InformerShared<K>>, api: Api<K>, config: watcher::Config) {
        // Controllers never read managed fields; they are often half of an object's
        // size, so they are dropped before caching (as informers' transform functions
        // do upstream).
        let stream = watcher::watcher(api, config)
            .default_backoff()
            .map_ok(|ev| {
                ev.modify(|obj| {
                    obj.meta_mut().managed_fields = None;
                })
            });
        futures::pin_mut!(stream);
        let mut listing: Option<HashMap<String, Arc<K>>> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Init) => listing = Some(HashMap::new()),
                Ok(Event::InitApply(obj)) => {
                    listing
                        .get_or_insert_with(HashMap::new)
                        .insert(object_key(&obj), Arc::new(obj));
                }
                Ok(Event::InitDone) => {
                    let listed = listing.take().unwrap_or_default();
                    tracing::debug!(resource = %shared.resource, objects = listed.len(), "informer listed");
                    shared.replace(listed);
                    shared.synced.send_replace(true);
                }
                Ok(Event::Apply(obj)) => shared.apply(obj),
                Ok(Event::Delete(obj)) => shared.delete(obj),
                Err(err) => {
                    tracing::warn!(resource = %shared.resource, error = %err, "informer watch failed; retrying");
                }
            }
        }
    }
}

struct FactoryEntry {
    informer: Box<dyn Any + Send + Sync>,
    start: Option<Box<dyn FnOnce() -> AbortHandle + Send + Sync>>,
    synced: Box<dyn Fn() -> futures::future::BoxFuture<'static, ()> + Send + Sync>,
    task: Option<AbortHandle>,
}

struct FactoryInner {
    client: Client,
    entries: Mutex<HashMap<TypeId, FactoryEntry>>,
    started: Mutex<bool>,
}

impl Drop for FactoryInner {
    fn drop(&mut self) {
        for entry in self.entries.get_mut().values() {
            if let Some(task) = &entry.task {
                task.abort();
            }
        }
    }
}

/// Creates and owns the shared informers of one client. Cheap to clone; the watches
/// stop when the last clone is dropped.
#[derive(Clone)]
pub struct InformerFactory {
    inner: Arc<FactoryInner>,
}

impl InformerFactory {
    /// A factory whose informers watch through `client`, across all namespaces.
    pub fn new(client: Client) -> Self {
        InformerFactory {
            inner: Arc::new(FactoryInner {
                client,
                entries: Mutex::new(HashMap::new()),
                started: Mutex::new(false),
            }),
        }
    }

    /// The shared informer of `K`, created on first use (and started at once if the
    /// factory has been started).
    pub fn informer<K: Object>(&self) -> Informer<K> {
        let started = *self.inner.started.lock();
        let mut entries = self.inner.entries.lock();
        let entry = entries.entry(TypeId::of::<K>()).or_insert_with(|| {
            let informer = Informer::<K>::new();
            let shared = informer.shared.clone();
            let client = self.inner.client.clone();
            let start = Box::new(move || {
                let api: Api<K> = Api::all(client);
                tokio::spawn(Informer::run(shared, api, watcher::Config::default())).abort_handle()
            });
            let for_sync = informer.clone();
            FactoryEntry {
                informer: Box::new(informer),
                start: Some(start),
                synced: Box::new(move || {
                    let i = for_sync.clone();
                    Box::pin(async move { i.wait_synced().await })
                }),
                task: None,
            }
        });
        if started {
            if let Some(start) = entry.start.take() {
                entry.task = Some(start());
            }
        }
        match entry.informer.downcast_ref::<Informer<K>>() {
            Some(i) => i.clone(),
            // The map is keyed by the type, so the downcast cannot fail.
            None => unreachable!("informer map holds another type under {}", K::kind(&())),
        }
    }

    /// Starts the watches of all informers created so far, and of any created later.
    /// Idempotent. Must run inside a tokio runtime.
    pub fn start(&self) {
        *self.inner.started.lock() = true;
        let mut entries = self.inner.entries.lock();
        for entry in entries.values_mut() {
            if let Some(start) = entry.start.take() {
                entry.task = Some(start());
            }
        }
    }

    /// Waits until every informer created so far has completed its first list (call
    /// after [`InformerFactory::start`]).
    pub async fn wait_for_cache_sync(&self) {
        let waits: Vec<_> = self
            .inner
            .entries
            .lock()
            .values()
            .map(|e| (e.synced)())
            .collect();
        futures::future::join_all(waits).await;
    }

    /// The client the informers use.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }
}

impl<K: Object> Informer<K> {
    /// The resource's plural name, for logs.
    pub fn resource(&self) -> &str {
        &self.shared.resource
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn pod(ns: &str, name: &str, rv: &str, owner: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                resource_version: Some(rv.into()),
                owner_references: owner.map(|uid| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: "rs".into(),
                        uid: uid.into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn names(mut v: Vec<Arc<Pod>>) -> Vec<String> {
        let mut out: Vec<String> = v.drain(..).map(|p| object_key(p.as_ref())).collect();
        out.sort();
        out
    }

    #[test]
    fn keys() {
        assert_eq!(object_key(&pod("ns", "a", "1", None)), "ns/a");
        assert_eq!(split_key("ns/a"), ("ns", "a"));
        assert_eq!(split_key("node-1"), ("", "node-1"));
    }

    #[test]
    fn store_indexes_follow_changes() {
        let informer = Informer::<Pod>::new();
        informer.add_index(CONTROLLER_UID_INDEX, controller_uid_index_values);
        let shared = &informer.shared;
        shared.apply(pod("a", "p1", "1", Some("u1")));
        shared.apply(pod("a", "p2", "2", None));
        shared.apply(pod("b", "p3", "3", Some("u1")));
        let store = informer.store();
        assert_eq!(store.len(), 3);
        assert_eq!(names(store.list_namespace("a")), ["a/p1", "a/p2"]);
        assert_eq!(
            names(store.by_index(CONTROLLER_UID_INDEX, "u1")),
            ["a/p1", "b/p3"]
        );
        assert_eq!(
            names(store.by_index(CONTROLLER_UID_INDEX, &orphan_index_value("a"))),
            ["a/p2"]
        );
        // p2 adopted, p1 released.
        shared.apply(pod("a", "p2", "4", Some("u1")));
        shared.apply(pod("a", "p1", "5", None));
        assert_eq!(
            names(store.by_index(CONTROLLER_UID_INDEX, "u1")),
            ["a/p2", "b/p3"]
        );
        assert_eq!(
            names(store.by_index(CONTROLLER_UID_INDEX, &orphan_index_value("a"))),
            ["a/p1"]
        );
        shared.delete(pod("b", "p3", "6", Some("u1")));
        assert_eq!(names(store.by_index(CONTROLLER_UID_INDEX, "u1")), ["a/p2"]);
        assert!(store.list_namespace("b").is_empty());
        assert!(store.by_index("no-such-index", "x").is_empty());
    }

    #[test]
    fn handlers_see_old_and_new_and_replay() {
        let informer = Informer::<Pod>::new();
        informer.shared.apply(pod("a", "p1", "1", None));
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let s = seen.clone();
        let reg = informer.add_handler(move |n| {
            let line = match n {
                Notification::Added(o) => format!(
                    "add {}",
                    o.metadata.resource_version.clone().unwrap_or_default()
                ),
                Notification::Updated { old, new } => format!(
                    "update {}->{}",
                    old.metadata.resource_version.clone().unwrap_or_default(),
                    new.metadata.resource_version.clone().unwrap_or_default()
                ),
                Notification::Deleted(o) => format!(
                    "delete {}",
                    o.metadata.resource_version.clone().unwrap_or_default()
                ),
            };
            s.lock().push(line);
        });
        informer.shared.apply(pod("a", "p1", "2", None));
        informer.shared.delete(pod("a", "p1", "3", None));
        // Deleting an unknown object tells nobody.
        informer.shared.delete(pod("a", "zz", "4", None));
        assert_eq!(*seen.lock(), ["add 1", "update 1->2", "delete 3"]);
        drop(reg);
        informer.shared.apply(pod("a", "p9", "5", None));
        assert_eq!(seen.lock().len(), 3, "unsubscribed on drop");
    }

    #[test]
    fn relist_reports_differences() {
        let informer = Informer::<Pod>::new();
        informer.shared.apply(pod("a", "keep", "1", None));
        informer.shared.apply(pod("a", "change", "2", None));
        informer.shared.apply(pod("a", "gone", "3", None));
        let mut sub = informer.subscribe();
        // Replayed adds.
        for _ in 0..3 {
            assert!(matches!(sub.try_recv(), Some(Notification::Added(_))));
        }
        let mut listed = HashMap::new();
        for p in [
            pod("a", "keep", "1", None),
            pod("a", "change", "7", None),
            pod("a", "new", "8", None),
        ] {
            listed.insert(object_key(&p), Arc::new(p));
        }
        informer.shared.replace(listed);
        let mut got = Vec::new();
        while let Some(n) = sub.try_recv() {
            got.push(match n {
                Notification::Added(o) => {
                    format!("add {}", o.metadata.name.clone().unwrap_or_default())
                }
                Notification::Updated { new, .. } => {
                    format!("update {}", new.metadata.name.clone().unwrap_or_default())
                }
                Notification::Deleted(o) => {
                    format!("delete {}", o.metadata.name.clone().unwrap_or_default())
                }
            });
        }
        got.sort();
        assert_eq!(got, ["add new", "delete gone", "update change"]);
        assert_eq!(informer.store().len(), 3);
    }
}
