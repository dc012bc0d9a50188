//! The controller manager against an in-process apiserver: `--controllers` selects
//! what runs, a bad entry fails at once, and with `--leader-elect` the manager holds
//! the `kube-system/kube-controller-manager` Lease while it works.

use std::time::Duration;

use controller_manager::ControllerManagerConfig;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{Api, ListParams, PostParams};
use kube::Client;
use serde_json::json;
use testapi::TestApi;

async fn pod_count(client: &Client, selector: &str) -> usize {
    Api::<Pod>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .len()
}

async fn wait_for_pods(client: &Client, selector: &str, n: usize) {
    for _ in 0..300 {
        if pod_count(client, selector).await == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never saw {n} pods for {selector}");
}

fn template(app: &str) -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    })
}

async fn create_sets(client: &Client) {
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template("web")}
    }))
    .unwrap();
    Api::<ReplicaSet>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &rs)
        .await
        .unwrap();
    let rc: ReplicationController = serde_json::from_value(json!({
        "metadata": {"name": "legacy"},
        "spec": {"replicas": 2, "selector": {"app": "legacy"}, "template": template("legacy")}
    }))
    .unwrap();
    Api::<ReplicationController>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &rc)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_only_enabled_controllers() {
    let api = TestApi::start().await;
    let client = api.client().await;
    let mut config = ControllerManagerConfig {
        controllers: vec!["*".into(), "-replicationcontroller".into()],
        ..Default::default()
    };
    config.leader_election.leader_elect = false;
    let manager = tokio::spawn(controller_manager::run(client.clone(), config));
    create_sets(&client).await;
    wait_for_pods(&client, "app=web", 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        pod_count(&client, "app=legacy").await,
        0,
        "RC controller off"
    );
    assert!(!manager.is_finished());
    manager.abort();

    let bad = ControllerManagerConfig {
        controllers: vec!["nosuch".into()],
        ..Default::default()
    };
    let err = controller_manager::run(client.clone(), bad)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "\"nosuch\" is not in the list of known controllers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_elect_holds_the_lease_while_running() {
    let api = TestApi::start().await;
    let client = api.client().await;
    let manager = tokio::spawn(controller_manager::run(
        client.clone(),
        ControllerManagerConfig::default(),
    ));
    create_sets(&client).await;
    wait_for_pods(&client, "app=web", 2).await;
    wait_for_pods(&client, "app=legacy", 2).await;
    let lease = Api::<Lease>::namespaced(client.clone(), "kube-system")
        .get("kube-controller-manager")
        .await
        .unwrap();
    let spec = lease.spec.unwrap();
    assert!(spec.holder_identity.is_some_and(|h| !h.is_empty()));
    assert_eq!(spec.lease_duration_seconds, Some(15));
    manager.abort();
}
