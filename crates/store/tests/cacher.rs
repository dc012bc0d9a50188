//! The conformance suite against the watch cache (over the embedded store), plus
//! cache-specific behaviour: decorations computed once and shared, slow watchers.

use futures::StreamExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use store::cacher::{CachedWatchItem, CacherOptions};
use store::{Cacher, EmbeddedOptions, EmbeddedStore, KeyValue, ListOptions, Storage};

/// A plain cacher over a fresh embedded store, with the given watch window.
fn plain_cacher(window: usize) -> (Cacher<()>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Storage> =
        Arc::new(EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap());
    let options = CacherOptions {
        window,
        ..Default::default()
    };
    (Cacher::plain(store, "/registry/", options), dir)
}

async fn cached() -> (Arc<dyn Storage>, tempfile::TempDir) {
    let (cacher, dir) = plain_cacher(64);
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
    let (cacher, _dir) = plain_cacher(2000);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_behind_the_window_continues_from_the_store() {
    // A tiny window: the watcher below falls far behind it.
    let (cacher, _dir) = plain_cacher(16);
    let mut w = cacher.watch("/registry/", 0).await.unwrap();
    let writes = (0..600).map(|i| {
        let c = cacher.clone();
        async move {
            c.create(&format!("/registry/k/{i:05}"), "v".into())
                .await
                .unwrap()
        }
    });
    let mut revs = futures::future::join_all(writes).await;
    revs.sort();
    let mut seen = Vec::new();
    while seen.len() < revs.len() {
        match tokio::time::timeout(std::time::Duration::from_secs(10), w.next()).await {
            Ok(Some(Ok(store::WatchItem::Event(e)))) => seen.push(e.revision),
            Ok(Some(Ok(store::WatchItem::Progress(_)))) => {}
            other => panic!("watch ended after {} events: {other:?}", seen.len()),
        }
    }
    assert_eq!(seen, revs, "every change exactly once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_reads_do_not_wait_and_stay_inside_the_prefix() {
    let (cacher, _dir) = plain_cacher(64);
    let rev = cacher.create("/registry/a/1", "v".into()).await.unwrap();
    cacher.create("/registry/ab/2", "v".into()).await.unwrap();
    cacher.create("/registry/b/3", "v".into()).await.unwrap();
    assert!(cacher.wait_for(rev + 2).await);
    let keys: Vec<String> = cacher
        .list_known("/registry/a/")
        .unwrap()
        .iter()
        .map(|i| i.kv.key.clone())
        .collect();
    assert_eq!(keys, ["/registry/a/1"]);
    assert!(cacher.get_known("/registry/b/3").is_some());
    assert!(cacher.get_known("/registry/b/4").is_none());
}
