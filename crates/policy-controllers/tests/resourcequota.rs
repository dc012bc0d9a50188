//! The ResourceQuota controller and the apiserver's quota admission, against an
//! in-process apiserver.

use std::collections::BTreeMap;
use std::time::Duration;

use controllers::ControllerManagerConfig;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ResourceQuota, ResourceQuotaSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};

mod support;
use support::{eventually, pod, Fixture, NS};

fn quota(name: &str, hard: &[(&str, &str)]) -> ResourceQuota {
    ResourceQuota {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        spec: Some(ResourceQuotaSpec {
            hard: Some(
                hard.iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect(),
            ),
            ..Default::default()
        }),
        status: None,
    }
}

fn used(q: &ResourceQuota) -> BTreeMap<String, String> {
    q.status
        .as_ref()
        .and_then(|s| s.used.as_ref())
        .map(|u| u.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_status_fills_in_and_pods_beyond_the_limit_are_refused() {
    let f = Fixture::start("resourcequota", ControllerManagerConfig::default()).await;
    let quotas: Api<ResourceQuota> = Api::namespaced(f.client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(f.client.clone(), NS);
    let cms: Api<ConfigMap> = Api::namespaced(f.client.clone(), NS);
    // One pod exists before the quota.
    pods.create(&PostParams::default(), &pod("before", &[("app", "q")]))
        .await
        .unwrap();
    quotas
        .create(
            &PostParams::default(),
            &quota(
                "pods-quota",
                &[
                    ("pods", "2"),
                    ("configmaps", "10"),
                    ("count/deployments.apps", "1"),
                ],
            ),
        )
        .await
        .unwrap();
    eventually("quota status", Duration::from_secs(20), || async {
        let q = quotas.get("pods-quota").await.unwrap();
        let hard = q
            .status
            .as_ref()
            .and_then(|s| s.hard.as_ref())
            .map(|h| h.len());
        hard == Some(3)
            && used(&q).get("pods").map(String::as_str) == Some("1")
            && used(&q).get("count/deployments.apps").map(String::as_str) == Some("0")
            && used(&q).contains_key("configmaps")
    })
    .await;
    let cm_used = used(&quotas.get("pods-quota").await.unwrap())["configmaps"].clone();
    // Admission charges the configmap right away.
    cms.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: ObjectMeta {
                name: Some("cm".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let after: i64 = used(&quotas.get("pods-quota").await.unwrap())["configmaps"]
        .parse()
        .unwrap();
    assert_eq!(after, cm_used.parse::<i64>().unwrap() + 1);

    pods.create(&PostParams::default(), &pod("second", &[("app", "q")]))
        .await
        .unwrap();
    let err = pods
        .create(&PostParams::default(), &pod("third", &[("app", "q")]))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert_eq!(s.reason, "Forbidden");
            assert_eq!(
                s.message,
                "pods \"third\" is forbidden: exceeded quota: pods-quota, requested: pods=1, used: pods=2, limited: pods=2"
            );
        }
        other => panic!("unexpected error {other:?}"),
    }
    // Deleting a pod gives its share back (the controller replenishes).
    pods.delete("before", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    eventually("pod usage released", Duration::from_secs(20), || async {
        used(&quotas.get("pods-quota").await.unwrap())
            .get("pods")
            .map(String::as_str)
            == Some("1")
    })
    .await;
    pods.create(&PostParams::default(), &pod("third", &[("app", "q")]))
        .await
        .unwrap();
    assert_eq!(used(&quotas.get("pods-quota").await.unwrap())["pods"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compute_quota_requires_limits() {
    let f = Fixture::start("resourcequota", ControllerManagerConfig::default()).await;
    let quotas: Api<ResourceQuota> = Api::namespaced(f.client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(f.client.clone(), NS);
    quotas
        .create(
            &PostParams::default(),
            &quota("compute", &[("limits.cpu", "1"), ("limits.memory", "1Gi")]),
        )
        .await
        .unwrap();
    eventually("quota status", Duration::from_secs(20), || async {
        used(&quotas.get("compute").await.unwrap()).len() == 2
    })
    .await;
    let err = pods
        .create(&PostParams::default(), &pod("bare", &[]))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert_eq!(
                s.message,
                "pods \"bare\" is forbidden: failed quota: compute: must specify limits.cpu for: c; limits.memory for: c"
            );
        }
        other => panic!("unexpected error {other:?}"),
    }
}
