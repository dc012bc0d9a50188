//! The conformance suite against the watch cache (over the embedded store), plus
//! cache-specific behaviour: decorations computed once and shared, slow watchers.

use futures::StreamExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use store::cacher::{CachedWatchItem, CacherOptions};
use store::{Cacher, EmbeddedOptions, EmbeddedStore, KeyValue, ListOptions, Storage};

async fn cached() -> (Arc<dyn Storage>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    let options = CacherOptions {
        window: 64,
        ..Default::default()
    };
    let cacher = Cacher::plain(Arc::new(store), "/registry/", options);
    (Arc::new(cacher), dir)
}

store::conformance_suite!(cached().await);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decoration_is_computed_once_per_change() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Storage> =
        Arc::new(EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let cacher = Cacher::new(
        store,
        "/registry/pods/",
        Arc::new(move |kv: &KeyValue| {
            counter.fetch_add(1, Ordering::SeqCst);
            format!("{}@{}", String::from_utf8_lossy(&kv.value), kv.mod_revision)
        }),
        CacherOptions::default(),
    );
    let mut watchers = Vec::new();
    for _ in 0..10 {
        watchers.push(cacher.watch_cached("/registry/pods/", 0).await.unwrap());
    }
    let rev = cacher
        .create("/registry/pods/ns/a", "pod".into())
        .await
        .unwrap();
    for w in &mut watchers {
        loop {
            match w.next().await.unwrap().unwrap() {
                CachedWatchItem::Event(e) => {
                    assert_eq!(e.item.extra, format!("pod@{rev}"));
                    break;
                }
                CachedWatchItem::Progress(_) => continue,
            }
        }
    }
    let list = cacher
        .list_cached("/registry/pods/", ListOptions::default())
        .await
        .unwrap();
    assert_eq!(list.items[0].extra, format!("pod@{rev}"));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "decoration recomputed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_catches_up_from_window() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Storage> =
        Arc::new(EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap());
    let cacher = Cacher::plain(
        store,
        "/registry/",
        CacherOptions {
            window: 2000,
            ..Default::default()
        },
    );
    let mut w = cacher.watch("/registry/", 0).await.unwrap();
    // Write far more than the channels buffer while the watcher reads nothing.
    for i in 0..1500 {
        cacher
            .create(&format!("/registry/k/{i:05}"), "v".into())
            .await
            .unwrap();
    }
    let mut seen = 0;
    while seen < 1500 {
        if let store::WatchItem::Event(e) = w.next().await.unwrap().unwrap() {
            assert_eq!(e.key, format!("/registry/k/{seen:05}"));
            seen += 1;
        }
    }
}
