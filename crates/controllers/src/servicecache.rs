//! Services and EndpointSlices cached for the node components that rebuild a whole
//! model from them after every change (kube-proxy's rules, cluster DNS's records):
//! two reflector stores, handing out snapshots once both have listed and then
//! after changes, at most once per period, and again after a backoff when a rebuild
//! failed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};

/// A watch of Services and EndpointSlices in every namespace.
pub struct ServiceCache {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    events: BoxStream<'static, (&'static str, bool)>,
    /// Something changed since the last snapshot.
    dirty: bool,
    /// When the last snapshot was handed out.
    last: Option<Instant>,
    /// The backoff after the last failure, and the one to wait before the next
    /// snapshot.
    retry: Option<Duration>,
    backoff: Option<Duration>,
}

/// Everything cached: Services and EndpointSlices.
pub type Snapshot = (Vec<Arc<Service>>, Vec<Arc<EndpointSlice>>);

impl ServiceCache {
    /// Watches both kinds, limited to objects matching `labels` (a label selector)
    /// when given. The watches run while [`ServiceCache::changed`] is awaited.
    pub fn watch(client: Client, labels: Option<&str>) -> ServiceCache {
        let mut cfg = watcher::Config::default();
        if let Some(l) = labels {
            cfg = cfg.labels(l);
        }
        let (services, svc_writer) = reflector::store::<Service>();
        let (slices, slice_writer) = reflector::store::<EndpointSlice>();
        let svc_stream = reflector::reflector(
            svc_writer,
            watcher::watcher(Api::<Service>::all(client.clone()), cfg.clone()),
        )
        .default_backoff()
        .map(|e| ("services", e.is_ok()));
        let slice_stream = reflector::reflector(
            slice_writer,
            watcher::watcher(Api::<EndpointSlice>::all(client), cfg),
        )
        .default_backoff()
        .map(|e| ("endpointslices", e.is_ok()));
        ServiceCache {
            services,
            slices,
            events: futures::stream::select(svc_stream, slice_stream).boxed(),
            dirty: true,
            last: None,
            retry: None,
            backoff: None,
        }
    }

    /// Waits until a rebuild is due and returns everything cached: once both
    /// kinds have listed, then after changes, at most once per `period` (counted
    /// from the previous return), and after a [`ServiceCache::failed`] rebuild
    /// once its backoff (1 s doubling to 30 s) has passed. `None` when the watches
    /// end.
    pub async fn changed(&mut self, period: Duration) -> Option<Snapshot> {
        if let Some(backoff) = self.backoff.take() {
            tokio::time::sleep(backoff).await;
        }
        loop {
            let ready = ready_now(&self.services) && ready_now(&self.slices);
            let wait = match (self.dirty && ready, self.last) {
                (false, _) => None,
                (true, None) => Some(Duration::ZERO),
                (true, Some(t)) => Some(period.saturating_sub(t.elapsed())),
            };
            tokio::select! {
                ev = self.events.next() => match ev {
                    Some((_, true)) => self.dirty = true,
                    Some((what, false)) => tracing::warn!(what, "watch failed; retrying"),
                    None => return None,
                },
                _ = sleep_opt(wait) => {
                    self.last = Some(Instant::now());
                    self.dirty = false;
                    return Some((self.services.state(), self.slices.state()));
                }
            }
        }
    }

    /// The rebuild of the last snapshot failed: the next [`ServiceCache::changed`]
    /// returns after a backoff, even without a change.
    pub fn failed(&mut self) {
        self.dirty = true;
        let next = self.retry.map_or(Duration::from_secs(1), |r| {
            (r * 2).min(Duration::from_secs(30))
        });
        self.retry = Some(next);
        self.backoff = Some(next);
    }

    /// The rebuild of the last snapshot succeeded: backoff starts over.
    pub fn succeeded(&mut self) {
        self.retry = None;
    }
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Whether a store has had its first full list.
fn ready_now<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default,
{
    store
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|r| r.is_ok())
}
