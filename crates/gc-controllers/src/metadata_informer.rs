//! A metadata-only informer over a resource known only at run time (the framework's
//! `InformerFactory` serves typed objects): it lists and watches
//! `PartialObjectMetadata` of one discovered resource across all namespaces (paged
//! lists, resumed watches, relists on 410 Gone, backoff: `kube::runtime::watcher`),
//! keeps the metadata in a store keyed like cache keys (`namespace/name` or `name`),
//! and reports every change to a handler, in order, after the store has changed.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, PartialObjectMeta};
use kube::discovery::ApiResource;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use parking_lot::RwLock;
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// A change seen by a [`MetadataInformer`].
#[derive(Clone, Debug)]
pub enum MetaEvent {
    /// A new object.
    Added(Arc<ObjectMeta>),
    /// A changed object.
    Updated {
        /// What the store held before.
        old: Arc<ObjectMeta>,
        /// The new state.
        new: Arc<ObjectMeta>,
    },
    /// A deleted object, in its last known state.
    Deleted(Arc<ObjectMeta>),
}

/// The cache key of an object's metadata: `namespace/name`, or `name`.
pub fn meta_key(meta: &ObjectMeta) -> String {
    let name = meta.name.as_deref().unwrap_or("");
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

type Store = Arc<RwLock<HashMap<String, Arc<ObjectMeta>>>>;

/// A running metadata watch of one resource. Dropping it stops the watch.
pub struct MetadataInformer {
    resource: ApiResource,
    store: Store,
    synced: watch::Receiver<bool>,
    task: AbortHandle,
}

impl Drop for MetadataInformer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for MetadataInformer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataInformer")
            .field("resource", &self.resource.plural)
            .field("api_version", &self.resource.api_version)
            .finish()
    }
}

impl MetadataInformer {
    /// Starts watching `resource` through `client`; `handler` gets every change (it
    /// runs on the watch task and must be quick). Must run inside a tokio runtime.
    pub fn spawn(
        client: Client,
        resource: ApiResource,
        handler: impl Fn(MetaEvent) + Send + Sync + 'static,
    ) -> Self {
        let store: Store = Arc::default();
        let (tx, synced) = watch::channel(false);
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &resource);
        let task = tokio::spawn(run(
            api,
            resource.plural.clone(),
            store.clone(),
            tx,
            handler,
        ))
        .abort_handle();
        MetadataInformer {
            resource,
            store,
            synced,
            task,
        }
    }

    /// The watched resource.
    pub fn resource(&self) -> &ApiResource {
        &self.resource
    }

    /// Whether the first complete list has been stored.
    pub fn has_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits for the first complete list.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.clone();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// The cached metadata under `key` (`namespace/name` or `name`).
    pub fn get(&self, key: &str) -> Option<Arc<ObjectMeta>> {
        self.store.read().get(key).cloned()
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.store.read().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn strip(mut meta: ObjectMeta) -> Arc<ObjectMeta> {
    meta.managed_fields = None;
    Arc::new(meta)
}

async fn run(
    api: Api<PartialObjectMeta<DynamicObject>>,
    resource: String,
    store: Store,
    synced: watch::Sender<bool>,
    handler: impl Fn(MetaEvent) + Send + Sync + 'static,
) {
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut listing: Option<HashMap<String, Arc<ObjectMeta>>> = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => listing = Some(HashMap::new()),
            Ok(Event::InitApply(obj)) => {
                let meta = strip(obj.metadata);
                listing
                    .get_or_insert_with(HashMap::new)
                    .insert(meta_key(&meta), meta);
            }
            Ok(Event::InitDone) => {
                let listed = listing.take().unwrap_or_default();
                let mut events = Vec::new();
                {
                    let mut data = store.write();
                    let gone: Vec<String> = data
                        .keys()
                        .filter(|k| !listed.contains_key(*k))
                        .cloned()
                        .collect();
                    for key in gone {
                        if let Some(old) = data.remove(&key) {
                            events.push(MetaEvent::Deleted(old));
                        }
                    }
                    for (key, new) in listed {
                        match data.insert(key, new.clone()) {
                            None => events.push(MetaEvent::Added(new)),
                            Some(old) if old.resource_version != new.resource_version => {
                                events.push(MetaEvent::Updated { old, new })
                            }
                            Some(_) => {}
                        }
                    }
                }
                for e in events {
                    handler(e);
                }
                synced.send_replace(true);
                tracing::debug!(%resource, "metadata informer listed");
            }
            Ok(Event::Apply(obj)) => {
                let new = strip(obj.metadata);
                let old = store.write().insert(meta_key(&new), new.clone());
                handler(match old {
                    Some(old) => MetaEvent::Updated { old, new },
                    None => MetaEvent::Added(new),
                });
            }
            Ok(Event::Delete(obj)) => {
                let last = strip(obj.metadata);
                if store.write().remove(&meta_key(&last)).is_some() {
                    handler(MetaEvent::Deleted(last));
                }
            }
            Err(err) => {
                tracing::warn!(%resource, error = %err, "metadata watch failed; retrying");
            }
        }
    }
}
