//! Crash safety: the server is killed with SIGKILL in the middle of a burst of writes
//! from concurrent clients; after a restart on the same data directory every write that
//! was acknowledged is there with the acknowledged content, and revisions keep growing.

mod support;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{admin_client, Cluster};

fn cm(name: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.to_string());
    c.data = Some([("payload".to_string(), format!("value-of-{name}"))].into());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_writes_loses_no_acknowledged_write() {
    let c = Cluster::start();
    let client = admin_client(&c).await;
    let acked: Arc<Mutex<BTreeMap<String, i64>>> = Arc::default();
    let mut writers = Vec::new();
    for t in 0..8 {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("w-{t}-{i}");
                match api.create(&PostParams::default(), &cm(&name)).await {
                    Ok(created) => {
                        let rv: i64 = created.metadata.resource_version.unwrap().parse().unwrap();
                        acked.lock().unwrap().insert(name, rv);
                    }
                    // The server is gone.
                    Err(_) => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let dir = c.kill9();
    for w in writers {
        let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "too few writes before the kill: {}",
        acked.len()
    );

    let c = Cluster::start_in(dir, &[]);
    let api: Api<ConfigMap> = Api::namespaced(admin_client(&c).await, "default");
    let stored: BTreeMap<String, ConfigMap> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| (c.metadata.name.clone().unwrap(), c))
        .collect();
    let mut missing = Vec::new();
    for (name, rv) in &acked {
        match stored.get(name) {
            None => missing.push(name.clone()),
            Some(obj) => {
                assert_eq!(
                    obj.data.as_ref().unwrap()["payload"],
                    format!("value-of-{name}")
                );
                assert_eq!(
                    obj.metadata.resource_version.as_deref(),
                    Some(rv.to_string().as_str())
                );
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let max = acked.values().max().copied().unwrap();
    let after = api
        .create(&PostParams::default(), &cm("after-restart"))
        .await
        .unwrap();
    let rv: i64 = after.metadata.resource_version.unwrap().parse().unwrap();
    assert!(rv > max, "revision went backwards: {rv} <= {max}");
}
