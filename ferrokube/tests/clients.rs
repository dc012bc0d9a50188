//! End-to-end with client libraries: kube-rs (create, list with label and field
//! selectors, watch), and anonymous and bad-token access.

mod support;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use std::collections::BTreeMap;
use std::time::Duration;
use support::{admin_client, Cluster};

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.to_string());
    c.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    );
    c.data = Some([("k".to_string(), name.to_string())].into());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_create_list_watch() {
    let c = Cluster::start();
    let client = admin_client(&c).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    for (name, tier) in [("a", "web"), ("b", "web"), ("c", "db")] {
        let created = api
            .create(&pp, &cm(name, &[("tier", tier), ("app", "shop")]))
            .await
            .unwrap();
        assert!(created.metadata.uid.is_some());
        assert!(created.metadata.resource_version.is_some());
    }
    let web = api
        .list(&ListParams::default().labels("tier=web"))
        .await
        .unwrap();
    let names: Vec<_> = web
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, vec!["a", "b"]);
    let not_web = api
        .list(&ListParams::default().labels("app=shop,tier!=web"))
        .await
        .unwrap();
    assert_eq!(not_web.items.len(), 1);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=c"))
        .await
        .unwrap();
    assert_eq!(by_name.items[0].data.as_ref().unwrap()["k"], "c");
    let paged = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(paged.items.len(), 2);
    let token = paged.metadata.continue_.clone().expect("a continue token");
    let rest = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert!(!rest.items.is_empty());

    // Watch from the list's resourceVersion: only later changes arrive.
    let rv = web.metadata.resource_version.clone().unwrap();
    let mut stream = api
        .watch(&WatchParams::default().labels("tier=web").timeout(30), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&pp, &cm("d", &[("tier", "web")])).await.unwrap();
    api.create(&pp, &cm("e", &[("tier", "db")])).await.unwrap();
    let mut d = api.get("d").await.unwrap();
    d.data = Some([("k".to_string(), "changed".to_string())].into());
    api.replace("d", &pp, &d).await.unwrap();
    api.delete("d", &DeleteParams::default()).await.unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("watch event in time")
            .unwrap()
            .expect("watch still open");
        match ev {
            WatchEvent::Added(o) => kinds.push(format!("ADDED {}", o.metadata.name.unwrap())),
            WatchEvent::Modified(o) => kinds.push(format!("MODIFIED {}", o.metadata.name.unwrap())),
            WatchEvent::Deleted(o) => kinds.push(format!("DELETED {}", o.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(kinds, vec!["ADDED d", "MODIFIED d", "DELETED d"]);

    // Conflicting update: stale resourceVersion is refused with 409.
    let mut a = api.get("a").await.unwrap();
    let stale = a.clone();
    a.data = Some([("k".to_string(), "1".to_string())].into());
    api.replace("a", &pp, &a).await.unwrap();
    let err = api.replace("a", &pp, &stale).await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
        }
        other => panic!("expected a 409, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_and_bad_tokens_are_refused() {
    let c = Cluster::start();
    let admin = Kubeconfig::read_from(&c.kubeconfig).unwrap();
    let base = Config::from_custom_kubeconfig(admin, &KubeConfigOptions::default())
        .await
        .unwrap();
    let mut anon = Config::new(base.cluster_url.clone());
    anon.root_cert = base.root_cert.clone();
    let client = Client::try_from(anon.clone()).unwrap();
    let err = client.list_core_api_versions().await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 401),
        "{err:?}"
    );
    let req = http::Request::get("/readyz").body(Vec::new()).unwrap();
    let body = client.request_text(req).await.unwrap();
    assert_eq!(body, "ok");
    let mut bad = anon;
    bad.auth_info.token = Some("not-a-token".to_string().into());
    let client = Client::try_from(bad).unwrap();
    let err = client.list_core_api_versions().await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 401),
        "{err:?}"
    );
}
