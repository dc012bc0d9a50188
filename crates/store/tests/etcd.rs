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
