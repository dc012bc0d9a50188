//! The ConfigMaps and Secrets the node's pods refer to, each kept current by a watch
//! of that one object while some pod uses it: upstream's kubelet's watch-based
//! ConfigMap and Secret managers (`configMapAndSecretChangeDetectionStrategy:
//! Watch`). A pod's volumes and environment then read them from memory, so a pod
//! start costs no request for them (every pod's `kube-root-ca.crt` comes from one
//! watch per namespace) and the periodic volume refresh costs none either.
//! [`reflect`] runs such a watch into a store (also the kubelet's watch of Services).

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tracing::warn;

/// How long a read waits for a watch's first list before asking the API directly
/// (upstream's managers wait a second, then fail the read).
const FIRST_LIST_WAIT: Duration = Duration::from_secs(1);

/// Objects of one kind, by namespace and name, each with the pods that use it.
pub(crate) struct ObjectCache<K: Resource<DynamicType = ()> + 'static> {
    client: Client,
    entries: parking_lot::Mutex<HashMap<(String, String), Entry<K>>>,
}

struct Entry<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    watch: JoinHandle<()>,
    users: HashSet<String>,
}

impl<K: Resource<DynamicType = ()> + 'static> Drop for Entry<K> {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

impl<K> ObjectCache<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    pub(crate) fn new(client: Client) -> ObjectCache<K> {
        ObjectCache {
            client,
            entries: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// The object `ns/name` as the API has it now (None when it does not exist),
    /// watched from now on for the pod `user` until [`release`](Self::release).
    pub(crate) async fn get(&self, user: &str, ns: &str, name: &str) -> Option<K> {
        let store = {
            let mut entries = self.entries.lock();
            let entry = entries
                .entry((ns.to_string(), name.to_string()))
                .or_insert_with(|| self.watch(ns, name));
            entry.users.insert(user.to_string());
            entry.store.clone()
        };
        let listed = tokio::time::timeout(FIRST_LIST_WAIT, store.wait_until_ready()).await;
        if matches!(listed, Ok(Ok(()))) {
            return store.state().first().map(|o| (**o).clone());
        }
        // The watch cannot list now (the API is unreachable or refuses it): ask
        // once directly, as the reads did before the cache.
        Api::<K>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .ok()
            .flatten()
    }

    /// Stops watching what only the pod `user` used.
    pub(crate) fn release(&self, user: &str) {
        self.entries.lock().retain(|_, e| {
            e.users.remove(user);
            !e.users.is_empty()
        });
    }

    fn watch(&self, ns: &str, name: &str) -> Entry<K> {
        let (store, writer) = reflector::store();
        let api = Api::<K>::namespaced(self.client.clone(), ns);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let what = format!("{}/{ns}/{name}", K::kind(&()));
        let watch = tokio::spawn(reflect(api, config, writer, what));
        Entry {
            store,
            watch,
            users: HashSet::new(),
        }
    }
}

/// Keeps `writer`'s store of what `api` and `config` select, with back-off after
/// failures (logged as about `what`) and without managed fields, until aborted.
pub(crate) async fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
    what: String,
) where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let stream = watcher::watcher(api, config)
        .default_backoff()
        .modify(|o| o.meta_mut().managed_fields = None);
    let what = Arc::new(what);
    reflector::reflector(writer, stream)
        .for_each(|event| {
            let what = what.clone();
            async move {
                if let Err(e) = event {
                    warn!(object = %what, error = %e, "watching failed; retrying");
                }
            }
        })
        .await;
}
