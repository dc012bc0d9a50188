//! The disruption controller against an in-process apiserver (no kubelet: the test
//! marks pods Ready itself).

use std::time::Duration;

use controllers::ControllerManagerConfig;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, Patch, PatchParams, PostParams};

mod support;
use support::{eventually, labels, pod, ready_status_patch, Fixture, NS};

/// Creates the pod `name` labelled `app=<app>` and marks it Ready.
async fn create_ready_pod(pods: &Api<Pod>, name: &str, app: &str) {
    pods.create(&PostParams::default(), &pod(name, &[("app", app)]))
        .await
        .unwrap();
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(ready_status_patch()),
    )
    .await
    .unwrap();
}

/// Creates the PodDisruptionBudget `name` over the pods labelled `app=<name>`, with
/// the budget (minAvailable or maxUnavailable) of `budget`.
async fn create_pdb(pdbs: &Api<PodDisruptionBudget>, name: &str, budget: PodDisruptionBudgetSpec) {
    let pdb = PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(LabelSelector {
                match_labels: Some(labels(&[("app", name)])),
                ..Default::default()
            }),
            ..budget
        }),
        status: None,
    };
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_available_over_ready_pods() {
    let f = Fixture::start("disruption", ControllerManagerConfig::default()).await;
    let pods: Api<Pod> = Api::namespaced(f.client.clone(), NS);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(f.client.clone(), NS);
    for i in 0..3 {
        create_ready_pod(&pods, &format!("web-{i}"), "web").await;
    }
    create_pdb(
        &pdbs,
        "web",
        PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(2)),
            ..Default::default()
        },
    )
    .await;
    eventually("pdb status", Duration::from_secs(20), || async {
        let p = pdbs.get("web").await.unwrap();
        p.status
            .as_ref()
            .is_some_and(|s| s.disruptions_allowed == 1)
    })
    .await;
    let s = pdbs.get("web").await.unwrap().status.unwrap();
    assert_eq!(s.current_healthy, 3);
    assert_eq!(s.desired_healthy, 2);
    assert_eq!(s.expected_pods, 3);
    assert_eq!(s.observed_generation, Some(1));
    let c = &s.conditions.unwrap()[0];
    assert_eq!(
        (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
        ("DisruptionAllowed", "True", "SufficientPods")
    );
    // One pod stops being ready: no disruption allowed any more.
    let not_ready = serde_json::json!({"status": {"conditions": [
        {"type": "Ready", "status": "False", "lastTransitionTime": jiff::Timestamp::now().to_string()}
    ]}});
    pods.patch_status("web-0", &PatchParams::default(), &Patch::Merge(not_ready))
        .await
        .unwrap();
    eventually("insufficient pods", Duration::from_secs(20), || async {
        let s = pdbs.get("web").await.unwrap().status.unwrap();
        s.disruptions_allowed == 0
            && s.current_healthy == 2
            && s.conditions.unwrap()[0].reason == "InsufficientPods"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percentage_with_unmanaged_pods_counts_nothing() {
    let f = Fixture::start("disruption", ControllerManagerConfig::default()).await;
    let pods: Api<Pod> = Api::namespaced(f.client.clone(), NS);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(f.client.clone(), NS);
    create_ready_pod(&pods, "lone", "lone").await;
    create_pdb(
        &pdbs,
        "lone",
        PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::String("50%".into())),
            ..Default::default()
        },
    )
    .await;
    // Unmanaged pods count for nothing: expected 0, so nothing may be disrupted.
    eventually("pdb status", Duration::from_secs(20), || async {
        let p = pdbs.get("lone").await.unwrap();
        p.status
            .as_ref()
            .is_some_and(|s| s.observed_generation == Some(1) && s.current_healthy == 1)
    })
    .await;
    let s = pdbs.get("lone").await.unwrap().status.unwrap();
    assert_eq!(
        (s.expected_pods, s.desired_healthy, s.disruptions_allowed),
        (0, 0, 0)
    );
    eventually("UnmanagedPods event", Duration::from_secs(10), || async {
        support::events_about(&f.client, "lone")
            .await
            .iter()
            .any(|e| e.reason.as_deref() == Some("UnmanagedPods"))
    })
    .await;
}
