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
