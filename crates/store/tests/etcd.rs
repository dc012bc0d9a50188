//! The conformance suite against a real etcd (Debian's `etcd-server`), one etcd per
//! test, started on loopback ports by the test and stopped by its guard.

mod support;

use std::sync::Arc;
use store::{EtcdStore, Storage};
use support::EtcdServer;

async fn etcd() -> (Arc<dyn Storage>, EtcdServer) {
    let server = EtcdServer::start().await;
    let store = EtcdStore::connect(&[server.endpoint()]).await.unwrap();
    (Arc::new(store), server)
}

store::conformance_suite!(etcd().await);
