//! The conformance suite against a real etcd (Debian's `etcd-server`), one etcd per
//! test, started on loopback ports by the test and stopped by its guard.

use std::sync::Arc;
use store::{EtcdStore, Storage};
use testenv::Etcd;

async fn etcd() -> (Arc<dyn Storage>, Etcd) {
    let server = Etcd::start();
    let store = EtcdStore::connect(std::slice::from_ref(&server.endpoint))
        .await
        .unwrap();
    (Arc::new(store), server)
}

store::conformance_suite!(etcd().await);

/// Every acknowledged write is in a consistent list served through the watch cache,
/// however far its watch lags behind etcd (etcd before 3.4.31/3.5.13 may report
/// progress ahead of undelivered events; the cache must not trust it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_list_after_a_burst_sees_every_acknowledged_write() {
    use store::cacher::CacherOptions;
    use store::{Cacher, ListOptions};
    let (store, _server) = etcd().await;
    // A reflector slower than the writers, so that its watch falls behind etcd.
    let slow =
        Arc::new(|_: &store::KeyValue| std::thread::sleep(std::time::Duration::from_micros(500)));
    let cacher = Cacher::new(store, "/registry/", slow, CacherOptions::default());
    let value = "v".repeat(4096);
    for round in 0..3 {
        let writes = (0..3000).map(|i| {
            let c = cacher.clone();
            let value = value.clone();
            async move {
                c.create(&format!("/registry/k/{round}-{i:04}"), value.into())
                    .await
                    .unwrap()
            }
        });
        futures::future::join_all(writes).await;
        let list = cacher
            .list_cached("/registry/k/", ListOptions::default())
            .await
            .unwrap();
        assert_eq!(list.items.len(), 3000 * (round + 1), "round {round}");
    }
}
