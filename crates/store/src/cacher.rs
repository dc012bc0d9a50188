//! The watch cache: an in-memory copy of one key prefix (one resource), kept current by
//! a list followed by a watch on the backing store, that serves lists, gets and watches
//! from memory, as the Kubernetes apiserver's cacher does.
//!
//! Each cached object carries a decoration `T` computed once per change by a caller
//! supplied transform (the apiserver keeps there the bytes it serves and the labels and
//! fields it filters on), so that fanning a change out to many watchers costs no
//! re-parsing. [`Cacher`] also implements [`Storage`] on the raw key-values, so the
//! storage conformance suite runs against it; writes go straight to the backing store.
//!
//! Reads that ask for the latest state first wait until the cache has caught up with
//! the store's current revision (a consistent read from cache); if that takes too long
//! they fall back to the store. Watches starting inside the cache's window of recent
//! events are served from memory, older ones are handed to the store.

use crate::types::prefix_end;
use crate::{
    Event, EventKind, KeyValue, ListOptions, ListResult, ReadAt, Result, Revision, Storage,
    StoreError, WatchItem, WatchStream,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use parking_lot::RwLock;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

/// A cached key-value with its decoration.
#[derive(Debug)]
pub struct CachedItem<T> {
    /// The key-value as stored.
    pub kv: KeyValue,
    /// What the transform made of it.
    pub extra: T,
}

/// A change as the cache hands it to watchers.
#[derive(Debug)]
pub struct CachedEvent<T> {
    /// Created, updated or deleted.
    pub kind: EventKind,
    /// The object after the change; for deletions its last state, at the deletion's
    /// revision.
    pub item: Arc<CachedItem<T>>,
    /// The object before the change (updates and deletions), when known.
    pub prev: Option<Arc<CachedItem<T>>>,
}

impl<T> CachedEvent<T> {
    /// The revision of the change.
    pub fn revision(&self) -> Revision {
        self.item.kv.mod_revision
    }
}

/// An item of a cached watch.
#[derive(Debug)]
pub enum CachedWatchItem<T> {
    /// A change.
    Event(Arc<CachedEvent<T>>),
    /// Everything up to this revision has been delivered.
    Progress(Revision),
}

impl<T> Clone for CachedWatchItem<T> {
    fn clone(&self) -> Self {
        match self {
            CachedWatchItem::Event(e) => CachedWatchItem::Event(e.clone()),
            CachedWatchItem::Progress(r) => CachedWatchItem::Progress(*r),
        }
    }
}

/// A list served by the cache.
#[derive(Debug)]
pub struct CachedList<T> {
    /// Items in key order.
    pub items: Vec<Arc<CachedItem<T>>>,
    /// The revision the list reflects.
    pub revision: Revision,
    /// Whether more items follow.
    pub more: bool,
    /// How many items follow (only counted when no filter was given).
    pub remaining: u64,
    /// When `more`: the last key examined, after which the next page starts.
    pub last_key: Option<String>,
}

/// A predicate on cached items (label and field selectors).
pub type Filter<'a, T> = &'a (dyn Fn(&CachedItem<T>) -> bool + Send + Sync);

/// A stream of cached watch items.
pub type CachedWatchStream<T> = BoxStream<'static, Result<CachedWatchItem<T>>>;

/// Computes an object's decoration.
pub type Transform<T> = Arc<dyn Fn(&KeyValue) -> T + Send + Sync>;

/// Tuning of a [`Cacher`].
#[derive(Clone, Debug)]
pub struct CacherOptions {
    /// How many recent changes are kept for watches that start in the past.
    pub window: usize,
    /// How long a consistent read waits for the cache before going to the store.
    pub fresh_timeout: Duration,
    /// Items per page when (re)filling the cache from the store.
    pub page_size: usize,
}

impl Default for CacherOptions {
    fn default() -> Self {
        CacherOptions {
            window: 4096,
            fresh_timeout: Duration::from_secs(3),
            page_size: 1000,
        }
    }
}

struct State<T> {
    ready: bool,
    revision: Revision,
    items: BTreeMap<String, Arc<CachedItem<T>>>,
    /// Recent changes, oldest first.
    window: VecDeque<Arc<CachedEvent<T>>>,
    /// Every change after this revision is in `window`.
    window_start: Revision,
    /// Live feed; replaced (closing every watcher) when the cache is refilled.
    live: broadcast::Sender<CachedWatchItem<T>>,
}

struct Inner<T> {
    store: Arc<dyn Storage>,
    prefix: String,
    transform: Transform<T>,
    options: CacherOptions,
    state: RwLock<State<T>>,
    /// The cache's revision once it is ready (0 before).
    revision: watch::Sender<Revision>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A watch cache over one prefix of a store.
pub struct Cacher<T: Send + Sync + 'static = ()> {
    inner: Arc<Inner<T>>,
    _reflector: Arc<AbortOnDrop>,
}

impl<T: Send + Sync + 'static> Clone for Cacher<T> {
    fn clone(&self) -> Self {
        Cacher {
            inner: self.inner.clone(),
            _reflector: self._reflector.clone(),
        }
    }
}

impl Cacher<()> {
    /// A cache without decoration.
    pub fn plain(store: Arc<dyn Storage>, prefix: &str, options: CacherOptions) -> Cacher<()> {
        Cacher::new(store, prefix, Arc::new(|_: &KeyValue| ()), options)
    }
}

impl<T: Send + Sync + 'static> Cacher<T> {
    /// Starts caching `prefix` of `store`. Must be called inside a tokio runtime.
    pub fn new(
        store: Arc<dyn Storage>,
        prefix: &str,
        transform: Transform<T>,
        options: CacherOptions,
    ) -> Cacher<T> {
        let (live, _) = broadcast::channel(options.window.max(16));
        let inner = Arc::new(Inner {
            store,
            prefix: prefix.to_string(),
            transform,
            state: RwLock::new(State {
                ready: false,
                revision: 0,
                items: BTreeMap::new(),
                window: VecDeque::new(),
                window_start: 0,
                live,
            }),
            revision: watch::channel(0).0,
            options,
        });
        let task = tokio::spawn(reflect(inner.clone()));
        Cacher {
            inner,
            _reflector: Arc::new(AbortOnDrop(task)),
        }
    }

    /// The cached prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The backing store.
    pub fn store(&self) -> &Arc<dyn Storage> {
        &self.inner.store
    }

    /// Decorates a key-value that did not come through the cache.
    pub fn decorate(&self, kv: KeyValue) -> Arc<CachedItem<T>> {
        let extra = (self.inner.transform)(&kv);
        Arc::new(CachedItem { kv, extra })
    }

    /// The cache's revision (0 until the first fill is done).
    pub fn revision(&self) -> Revision {
        *self.inner.revision.borrow()
    }

    /// Waits until the cache is ready and at `min` or newer; false on timeout.
    pub async fn wait_for(&self, min: Revision) -> bool {
        let mut rx = self.inner.revision.subscribe();
        let wait = rx.wait_for(|r| *r > 0 && *r >= min);
        tokio::time::timeout(self.inner.options.fresh_timeout, wait)
            .await
            .is_ok_and(|r| r.is_ok())
    }

    async fn wait_fresh(&self) -> Result<bool> {
        let target = self.inner.store.current_revision().await?;
        if !self.inner.store.progress_is_ordered() {
            // Only events move the cache forward reliably: serve from memory only if
            // the cache already saw the current revision, else read the store.
            return Ok(self.revision() >= target);
        }
        if self.revision() < target {
            // Nothing under our prefix may change for a while: ask for progress.
            self.inner.store.request_progress();
        }
        let fresh = self.wait_for(target).await;
        if !fresh {
            tracing::warn!(
                prefix = %self.inner.prefix,
                target,
                cached = self.revision(),
                "watch cache did not catch up in time; reading the store"
            );
        }
        Ok(fresh)
    }

    /// The cached item at `key` as the cache knows it now, without waiting for the
    /// cache to catch up (what an informer's lister gives upstream). `None` when the
    /// key is absent or the cache is not filled yet: callers that must be sure read
    /// consistently with [`Cacher::get_cached`].
    pub fn get_known(&self, key: &str) -> Option<Arc<CachedItem<T>>> {
        let state = self.inner.state.read();
        if !state.ready {
            return None;
        }
        state.items.get(key).cloned()
    }

    /// Every cached item under `prefix` as the cache knows it now, without waiting
    /// for it to catch up (an informer lister's view); `None` until the cache is filled.
    pub fn list_known(&self, prefix: &str) -> Option<Vec<Arc<CachedItem<T>>>> {
        let state = self.inner.state.read();
        if !state.ready {
            return None;
        }
        Some(
            state
                .items
                .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v.clone())
                .collect(),
        )
    }

    /// Reads one key, consistently.
    pub async fn get_cached(&self, key: &str) -> Result<Option<Arc<CachedItem<T>>>> {
        if key.starts_with(&self.inner.prefix) && self.wait_fresh().await? {
            return Ok(self.inner.state.read().items.get(key).cloned());
        }
        Ok(self.inner.store.get(key).await?.map(|kv| self.decorate(kv)))
    }

    /// Lists keys under `prefix` (which must lie inside the cached prefix to be served
    /// from memory).
    pub async fn list_cached(&self, prefix: &str, opts: ListOptions) -> Result<CachedList<T>> {
        self.list_filtered(prefix, opts, None).await
    }

    /// Lists keys under `prefix` that pass `filter`; `opts.limit` counts only items
    /// that pass.
    pub async fn list_filtered(
        &self,
        prefix: &str,
        opts: ListOptions,
        filter: Option<Filter<'_, T>>,
    ) -> Result<CachedList<T>> {
        if !prefix.starts_with(&self.inner.prefix) {
            return self.list_from_store(prefix, opts, filter).await;
        }
        let from_cache = match opts.at {
            ReadAt::Latest => self.wait_fresh().await?,
            ReadAt::Exact(rev) => {
                let state = self.inner.state.read();
                state.ready && state.revision == rev
            }
            ReadAt::NotOlderThan(min) => {
                if !self.wait_for(min).await {
                    return Err(StoreError::FutureRevision {
                        requested: min,
                        current: self.revision(),
                    });
                }
                true
            }
        };
        if !from_cache {
            return self.list_from_store(prefix, opts, filter).await;
        }
        let state = self.inner.state.read();
        let end = prefix_end(prefix);
        let from = match &opts.start {
            Some(s) if s.as_str() > prefix => s.as_str(),
            _ => prefix,
        };
        let mut items = Vec::new();
        let mut remaining = 0u64;
        let mut more = false;
        let mut last_key = None;
        for (key, item) in state
            .items
            .range::<str, _>((Bound::Included(from), Bound::Unbounded))
        {
            if key.as_bytes() >= end.as_slice() {
                break;
            }
            let full = opts.limit > 0 && items.len() >= opts.limit;
            if full && filter.is_some() {
                // With a filter, whether anything more matches is only known by looking.
                if filter.is_none_or(|f| f(item)) {
                    more = true;
                    break;
                }
                continue;
            }
            if full {
                more = true;
                remaining += 1;
                continue;
            }
            if filter.is_none_or(|f| f(item)) {
                items.push(item.clone());
                last_key = Some(key.clone());
            }
        }
        Ok(CachedList {
            items,
            revision: state.revision,
            more,
            remaining,
            last_key: if more { last_key } else { None },
        })
    }

    /// Pages through the store at one revision until `limit` items pass `filter`.
    async fn list_from_store(
        &self,
        prefix: &str,
        opts: ListOptions,
        filter: Option<Filter<'_, T>>,
    ) -> Result<CachedList<T>> {
        let mut at = opts.at;
        let mut start = opts.start.clone();
        let mut items = Vec::new();
        loop {
            let page_limit = match (opts.limit, filter.is_some()) {
                (0, _) => 0,
                (n, false) => n - items.len(),
                (n, true) => (n - items.len()).max(self.inner.options.page_size),
            };
            let page = self
                .inner
                .store
                .list(
                    prefix,
                    ListOptions {
                        at,
                        start: start.take(),
                        limit: page_limit,
                    },
                )
                .await?;
            at = ReadAt::Exact(page.revision);
            let mut last_key = None;
            let mut page_items = page.items.into_iter();
            for kv in page_items.by_ref() {
                let key = kv.key.clone();
                let item = self.decorate(kv);
                if filter.is_none_or(|f| f(&item)) {
                    items.push(item);
                }
                last_key = Some(key);
                if opts.limit > 0 && items.len() >= opts.limit {
                    break;
                }
            }
            let leftover = page_items.len() as u64;
            let more = page.more || leftover > 0;
            let full = opts.limit > 0 && items.len() >= opts.limit;
            if !more || (full && filter.is_none()) {
                return Ok(CachedList {
                    items,
                    revision: page.revision,
                    more,
                    remaining: if filter.is_none() {
                        page.remaining + leftover
                    } else {
                        0
                    },
                    last_key: if more { last_key } else { None },
                });
            }
            if full {
                return Ok(CachedList {
                    items,
                    revision: page.revision,
                    more: true,
                    remaining: 0,
                    last_key,
                });
            }
            start = last_key.map(|k| format!("{k}\0"));
        }
    }

    /// Watches `prefix` for changes after `after` (0 = from the cache's current state).
    pub async fn watch_cached(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<CachedWatchStream<T>> {
        if !prefix.starts_with(&self.inner.prefix) {
            return self.watch_from_store(prefix, after).await;
        }
        if !self.wait_for(0).await {
            return Err(StoreError::Timeout);
        }
        let resumed = {
            let state = self.inner.state.read();
            let start = if after == 0 { state.revision } else { after };
            (start >= state.window_start).then(|| {
                let replay: Vec<_> = state
                    .window
                    .iter()
                    .filter(|e| e.revision() > start && e.item.kv.key.starts_with(prefix))
                    .cloned()
                    .collect();
                (replay, state.live.subscribe(), start)
            })
        };
        let Some((replay, live, start)) = resumed else {
            return self.watch_from_store(prefix, after).await;
        };
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(serve_watch(
            self.inner.clone(),
            prefix.to_string(),
            start,
            replay,
            live,
            tx,
        ));
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .boxed())
    }

    async fn watch_from_store(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<CachedWatchStream<T>> {
        let stream = self.inner.store.watch(prefix, after).await?;
        let transform = self.inner.transform.clone();
        Ok(stream
            .map(move |item| {
                item.map(|item| match item {
                    WatchItem::Progress(r) => CachedWatchItem::Progress(r),
                    WatchItem::Event(ev) => {
                        CachedWatchItem::Event(Arc::new(to_cached(&transform, ev)))
                    }
                })
            })
            .boxed())
    }
}

fn to_cached<T>(transform: &Transform<T>, ev: Event) -> CachedEvent<T> {
    let kv = ev.key_value();
    let prev = ev.prev_value.map(|value| {
        let kv = KeyValue {
            key: ev.key.clone(),
            value,
            create_revision: ev.create_revision,
            mod_revision: 0,
        };
        Arc::new(CachedItem {
            extra: transform(&kv),
            kv,
        })
    });
    CachedEvent {
        kind: ev.kind,
        item: Arc::new(CachedItem {
            extra: transform(&kv),
            kv,
        }),
        prev,
    }
}

/// Feeds one cached watcher: replayed window events, then the live feed. If the
/// watcher falls behind the live feed it replays from the window again; if the window
/// has moved past it, the watch ends with `Compacted`.
async fn serve_watch<T: Send + Sync + 'static>(
    inner: Arc<Inner<T>>,
    prefix: String,
    mut delivered: Revision,
    mut replay: Vec<Arc<CachedEvent<T>>>,
    mut live: broadcast::Receiver<CachedWatchItem<T>>,
    tx: mpsc::Sender<Result<CachedWatchItem<T>>>,
) {
    loop {
        for ev in replay.drain(..) {
            if ev.revision() <= delivered {
                continue;
            }
            delivered = ev.revision();
            if tx.send(Ok(CachedWatchItem::Event(ev))).await.is_err() {
                return;
            }
        }
        let item = tokio::select! {
            item = live.recv() => item,
            _ = tx.closed() => return,
        };
        match item {
            Ok(CachedWatchItem::Event(ev)) => {
                if ev.revision() > delivered {
                    delivered = ev.revision();
                    if ev.item.kv.key.starts_with(&prefix) {
                        if tx.send(Ok(CachedWatchItem::Event(ev))).await.is_err() {
                            return;
                        }
                    } else if tx
                        .try_send(Ok(CachedWatchItem::Progress(delivered)))
                        .is_err()
                        && tx.is_closed()
                    {
                        // A change elsewhere in the resource: tell the watcher the
                        // revision moved on (advisory, for bookmarks).
                        return;
                    }
                }
            }
            Ok(CachedWatchItem::Progress(rev)) => {
                if rev > delivered {
                    delivered = rev;
                    // Progress is advisory: skip it rather than wait on a full channel.
                    if tx.try_send(Ok(CachedWatchItem::Progress(rev))).is_err() && tx.is_closed() {
                        return;
                    }
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let resumed = {
                    let state = inner.state.read();
                    if delivered < state.window_start {
                        Err(state.window_start)
                    } else {
                        replay = state
                            .window
                            .iter()
                            .filter(|e| {
                                e.revision() > delivered && e.item.kv.key.starts_with(&prefix)
                            })
                            .cloned()
                            .collect();
                        live = state.live.subscribe();
                        Ok(())
                    }
                };
                if resumed.is_err() {
                    // Fallen behind the cache's window: continue from the store's own
                    // history (it fails with Compacted only if that is gone too).
                    forward_from_store(&inner, &prefix, delivered, &tx).await;
                    return;
                }
            }
            // The cache was refilled: this watch ends, the client re-watches.
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Feeds a watcher from the backing store's watch, after `delivered`.
async fn forward_from_store<T: Send + Sync + 'static>(
    inner: &Inner<T>,
    prefix: &str,
    delivered: Revision,
    tx: &mpsc::Sender<Result<CachedWatchItem<T>>>,
) {
    let mut stream = match inner.store.watch(prefix, delivered).await {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            return;
        }
    };
    loop {
        let item = tokio::select! {
            item = stream.next() => item,
            _ = tx.closed() => return,
        };
        let Some(item) = item else { return };
        let item = item.map(|item| match item {
            WatchItem::Progress(r) => CachedWatchItem::Progress(r),
            WatchItem::Event(ev) => {
                CachedWatchItem::Event(Arc::new(to_cached(&inner.transform, ev)))
            }
        });
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            return;
        }
    }
}

/// Keeps the cache filled: list, then watch from the list's revision; relist on any
/// watch failure.
async fn reflect<T: Send + Sync + 'static>(inner: Arc<Inner<T>>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let revision = match fill(&inner).await {
            Ok(rev) => rev,
            Err(e) => {
                tracing::warn!(prefix = %inner.prefix, error = %e, "watch cache fill failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        let mut stream = match inner.store.watch(&inner.prefix, revision).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(prefix = %inner.prefix, error = %e, "watch cache watch failed");
                continue;
            }
        };
        while let Some(item) = stream.next().await {
            match item {
                Ok(WatchItem::Event(ev)) => {
                    if !apply(&inner, ev) {
                        // The backend broke its ordering promise (an event at or
                        // below a revision it already reported): the cache may have
                        // missed changes, so rebuild it from a fresh list.
                        tracing::warn!(prefix = %inner.prefix, "watch event out of order; relisting");
                        break;
                    }
                }
                Ok(WatchItem::Progress(rev)) => progress(&inner, rev),
                Err(e) => {
                    tracing::info!(prefix = %inner.prefix, error = %e, "watch cache relisting");
                    break;
                }
            }
        }
    }
}

/// Lists the whole prefix at one revision and swaps it in.
async fn fill<T: Send + Sync + 'static>(inner: &Inner<T>) -> Result<Revision> {
    let mut items = BTreeMap::new();
    let mut at = ReadAt::Latest;
    let mut start = None;
    let revision = loop {
        let page = inner
            .store
            .list(
                &inner.prefix,
                ListOptions {
                    at,
                    start: start.take(),
                    limit: inner.options.page_size,
                },
            )
            .await?;
        at = ReadAt::Exact(page.revision);
        let last = page.items.last().map(|kv| kv.key.clone());
        for kv in page.items {
            let extra = (inner.transform)(&kv);
            items.insert(kv.key.clone(), Arc::new(CachedItem { kv, extra }));
        }
        match (page.more, last) {
            (true, Some(last)) => start = Some(format!("{last}\0")),
            _ => break page.revision,
        }
    };
    let mut state = inner.state.write();
    state.items = items;
    state.revision = revision;
    state.window.clear();
    state.window_start = revision;
    state.live = broadcast::channel(inner.options.window.max(16)).0;
    state.ready = true;
    inner.revision.send_replace(revision);
    Ok(revision)
}

/// Applies one watch event; false if it is older than what the cache already holds.
fn apply<T: Send + Sync + 'static>(inner: &Inner<T>, ev: Event) -> bool {
    let kv = ev.key_value();
    let item = Arc::new(CachedItem {
        extra: (inner.transform)(&kv),
        kv,
    });
    let mut state = inner.state.write();
    if ev.revision <= state.revision {
        return false;
    }
    let prev = match ev.kind {
        EventKind::Deleted => state.items.remove(&ev.key),
        _ => state.items.insert(ev.key.clone(), item.clone()),
    };
    let event = Arc::new(CachedEvent {
        kind: ev.kind,
        item,
        prev,
    });
    state.window.push_back(event.clone());
    while state.window.len() > inner.options.window {
        if let Some(old) = state.window.pop_front() {
            state.window_start = old.revision();
        }
    }
    state.revision = ev.revision;
    let _ = state.live.send(CachedWatchItem::Event(event));
    inner.revision.send_replace(ev.revision);
    true
}

fn progress<T: Send + Sync + 'static>(inner: &Inner<T>, rev: Revision) {
    let mut state = inner.state.write();
    if rev <= state.revision {
        return;
    }
    state.revision = rev;
    let _ = state.live.send(CachedWatchItem::Progress(rev));
    inner.revision.send_replace(rev);
}

fn event_of<T>(ev: &CachedEvent<T>) -> Event {
    Event {
        kind: ev.kind,
        key: ev.item.kv.key.clone(),
        value: ev.item.kv.value.clone(),
        prev_value: ev.prev.as_ref().map(|p| p.kv.value.clone()),
        revision: ev.revision(),
        create_revision: ev.item.kv.create_revision,
    }
}

#[async_trait]
impl<T: Send + Sync + 'static> Storage for Cacher<T> {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.get_cached(key).await?.map(|i| i.kv.clone()))
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let list = self.list_cached(prefix, opts).await?;
        Ok(ListResult {
            items: list.items.iter().map(|i| i.kv.clone()).collect(),
            revision: list.revision,
            more: list.more,
            remaining: list.remaining,
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        self.inner.store.create(key, value).await
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_revision: Revision,
    ) -> Result<Revision> {
        self.inner.store.update(key, value, expected_revision).await
    }

    async fn delete(
        &self,
        key: &str,
        expected_revision: Option<Revision>,
    ) -> Result<(KeyValue, Revision)> {
        self.inner.store.delete(key, expected_revision).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let stream = self.watch_cached(prefix, after).await?;
        Ok(stream
            .map(|item| {
                item.map(|item| match item {
                    CachedWatchItem::Event(ev) => WatchItem::Event(event_of(&ev)),
                    CachedWatchItem::Progress(r) => WatchItem::Progress(r),
                })
            })
            .boxed())
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.store.current_revision().await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.store.compact(revision).await
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        self.inner.store.compacted_revision().await
    }

    fn request_progress(&self) {
        self.inner.store.request_progress();
    }
}
