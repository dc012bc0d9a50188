//! The HPA controller against an in-process apiserver, which serves no metrics API
//! (metrics-server is not there): the HPA must report upstream's conditions.

use std::time::Duration;

use controllers::ControllerManagerConfig;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, PostParams};

mod support;
use support::{events_about, eventually, labels, pod, Fixture, NS};

const METRICS_ERROR: &str = "failed to get cpu utilization: unable to get metrics for resource cpu: unable to fetch metrics from resource metrics API: the server could not find the requested resource (get pods.metrics.k8s.io)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpa_without_metrics_reports_upstream_conditions() {
    let config = ControllerManagerConfig {
        hpa_sync_period: Duration::from_secs(1),
        ..Default::default()
    };
    let f = Fixture::start("horizontalpodautoscaling", config).await;
    let deployments: Api<Deployment> = Api::namespaced(f.client.clone(), NS);
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(f.client.clone(), NS);
    let template = pod("unused", &[("app", "web")]);
    deployments
        .create(
            &PostParams::default(),
            &Deployment {
                metadata: ObjectMeta {
                    name: Some("web".into()),
                    ..Default::default()
                },
                spec: Some(DeploymentSpec {
                    replicas: Some(2),
                    selector: LabelSelector {
                        match_labels: Some(labels(&[("app", "web")])),
                        ..Default::default()
                    },
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels(&[("app", "web")])),
                            ..Default::default()
                        }),
                        spec: template.spec,
                    },
                    ..Default::default()
                }),
                status: None,
            },
        )
        .await
        .unwrap();
    hpas.create(
        &PostParams::default(),
        &HorizontalPodAutoscaler {
            metadata: ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            },
            spec: Some(HorizontalPodAutoscalerSpec {
                scale_target_ref: CrossVersionObjectReference {
                    api_version: Some("apps/v1".into()),
                    kind: "Deployment".into(),
                    name: "web".into(),
                },
                min_replicas: Some(1),
                max_replicas: 5,
                metrics: Some(vec![MetricSpec {
                    type_: "Resource".into(),
                    resource: Some(ResourceMetricSource {
                        name: "cpu".into(),
                        target: MetricTarget {
                            type_: "Utilization".into(),
                            average_utilization: Some(50),
                            ..Default::default()
                        },
                    }),
                    ..Default::default()
                }]),
                behavior: None,
            }),
            status: None,
        },
    )
    .await
    .unwrap();
    eventually("hpa conditions", Duration::from_secs(20), || async {
        let h = hpas.get("web").await.unwrap();
        h.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.len() == 2)
    })
    .await;
    let status = hpas.get("web").await.unwrap().status.unwrap();
    assert_eq!(status.current_replicas, Some(2));
    assert_eq!(status.desired_replicas, 0);
    let conds = status.conditions.unwrap();
    let view: Vec<(&str, &str, &str, &str)> = conds
        .iter()
        .map(|c| {
            (
                c.type_.as_str(),
                c.status.as_str(),
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or(""),
            )
        })
        .collect();
    let scaling_active =
        format!("the HPA was unable to compute the replica count: {METRICS_ERROR}");
    assert_eq!(
        view,
        [
            (
                "AbleToScale",
                "True",
                "SucceededGetScale",
                "the HPA controller was able to get the target's current scale"
            ),
            (
                "ScalingActive",
                "False",
                "FailedGetResourceMetric",
                scaling_active.as_str()
            ),
        ]
    );
    eventually("events", Duration::from_secs(10), || async {
        let events = events_about(&f.client, "web").await;
        let has = |reason: &str, msg: &str| {
            events.iter().any(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.message.as_deref() == Some(msg)
                    && e.type_.as_deref() == Some("Warning")
                    && e.source.as_ref().and_then(|s| s.component.as_deref())
                        == Some("horizontal-pod-autoscaler")
            })
        };
        has("FailedGetResourceMetric", METRICS_ERROR)
            && has(
                "FailedComputeMetricsReplicas",
                &format!("invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: {METRICS_ERROR}"),
            )
    })
    .await;
}
