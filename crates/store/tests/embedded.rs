//! The conformance suite against the embedded store, plus its durability across
//! reopen.

use std::sync::Arc;
use store::{EmbeddedOptions, EmbeddedStore, ListOptions, Storage};

async fn embedded() -> (Arc<dyn Storage>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    (Arc::new(store), dir)
}

store::conformance_suite!(embedded().await);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_data_and_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let (last, compacted) = {
        let s = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
        let r1 = s.create("/registry/x/a", "1".into()).await.unwrap();
        let r2 = s.update("/registry/x/a", "2".into(), r1).await.unwrap();
        s.create("/registry/x/b", "b".into()).await.unwrap();
        let (_, r4) = s.delete("/registry/x/b", None).await.unwrap();
        s.compact(r4).await.unwrap();
        assert!(r2 < r4);
        (r4, r4)
    };
    // The writer thread of the first instance must have released the file.
    let mut reopened = None;
    for _ in 0..50 {
        match EmbeddedStore::open(dir.path(), EmbeddedOptions::default()) {
            Ok(s) => {
                reopened = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    let s = reopened.expect("store could not be reopened");
    assert_eq!(s.current_revision().await.unwrap(), last);
    assert_eq!(s.compacted_revision().await.unwrap(), compacted);
    assert_eq!(s.get("/registry/x/a").await.unwrap().unwrap().value, "2");
    assert!(s.get("/registry/x/b").await.unwrap().is_none());
    let next = s.create("/registry/x/c", "c".into()).await.unwrap();
    assert!(next > last, "revisions went backwards after reopen");
    let list = s
        .list("/registry/x/", ListOptions::default())
        .await
        .unwrap();
    assert_eq!(list.items.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_use_stays_bounded_under_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(dir.path(), EmbeddedOptions::default()).unwrap();
    let value = bytes::Bytes::from(vec![b'v'; 8 * 1024]);
    let keys: Vec<String> = (0..20).map(|i| format!("/registry/x/k{i}")).collect();
    for k in &keys {
        s.create(k, value.clone()).await.unwrap();
    }
    let mut sizes = Vec::new();
    for _round in 0..4 {
        // Rewrite every key many times (~16 MB of history per round), all keys at
        // once so that group commit batches them.
        for _ in 0..100 {
            let writes = keys.iter().map(|k| {
                let s = s.clone();
                let value = value.clone();
                async move {
                    let cur = s.get(k).await.unwrap().unwrap();
                    s.update(k, value, cur.mod_revision).await.unwrap();
                }
            });
            futures::future::join_all(writes).await;
        }
        let rev = s.current_revision().await.unwrap();
        s.compact(rev).await.unwrap();
        sizes.push(std::fs::metadata(s.path()).unwrap().len());
    }
    // Freed pages are reused: later rounds do not grow the file past the first.
    let first = sizes[1];
    assert!(
        sizes[3] <= first + first / 2,
        "data file keeps growing across compactions: {sizes:?}"
    );
}
