//! The ConfigMaps and Secrets the node's pods refer to, each kept current by a watch
//! of that one object while some pod uses it: upstream's kubelet's watch-based
//! ConfigMap and Secret managers (`configMapAndSecretChangeDetectionStrategy:
//! Watch`). A pod's volumes and environment then read them from memory, so a pod
//! start costs no request for them (every pod's `kube-root-ca.crt` comes from one
//! watch per namespace) and the periodic volume refresh costs none either.
//! [`reflect`] runs such a watch into a store (also the kubelet's watch of Services),
//! and [`Listed`] tells any number of waiting pods when its first list is in.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};
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
    listed: Listed,
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
        let (store, listed) = {
            let mut entries = self.entries.lock();
            let entry = entries
                .entry((ns.to_string(), name.to_string()))
                .or_insert_with(|| self.watch(ns, name));
            entry.users.insert(user.to_string());
            (entry.store.clone(), entry.listed.clone())
        };
        if listed.within(FIRST_LIST_WAIT).await {
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
            listed: Listed::of(&store),
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

/// A store's first full list, which any number of tasks may wait for at once.
/// kube-runtime's own `Store::wait_until_ready` wakes only one of several concurrent
/// waiters (its one-shot channel keeps a single waker), so in a burst every pod but
/// one waited out its whole timeout; here the one wait is shared, and its end wakes
/// them all.
#[derive(Clone)]
pub(crate) struct Listed(Shared<BoxFuture<'static, bool>>);

impl Listed {
    /// The first list of `store`.
    pub(crate) fn of<K>(store: &Store<K>) -> Listed
    where
        K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    {
        let store = store.clone();
        Listed(
            async move { store.wait_until_ready().await.is_ok() }
                .boxed()
                .shared(),
        )
    }

    /// Whether the first list is in, waiting for it at most `limit`.
    pub(crate) async fn within(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.0.clone())
            .await
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use std::time::Instant;

    /// Eight pods wait for one watch's first list; all of them go on as soon as it
    /// is in (with kube's own wait, seven slept until their timeouts).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_waiter_sees_the_first_list() {
        let (store, mut writer) = reflector::store::<ConfigMap>();
        let listed = Listed::of(&store);
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let listed = listed.clone();
                tokio::spawn(async move {
                    let ok = listed.within(Duration::from_secs(20)).await;
                    (ok, Instant::now())
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let done = Instant::now();
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        for w in waiters {
            let (ok, at) = w.await.expect("waiter");
            assert!(ok);
            assert!(at - done < Duration::from_secs(10), "{:?}", at - done);
        }
        // Later waiters see it at once; a store never listed times out.
        assert!(listed.within(Duration::ZERO).await);
        let (never, _writer) = reflector::store::<ConfigMap>();
        assert!(!Listed::of(&never).within(Duration::from_millis(10)).await);
    }
}
