//! Helpers shared by the integration tests: the apiserver fixture with one
//! controller running, polling until a condition holds, events, and status patches
//! that finish pods (there is no kubelet: tests set pod status themselves).

#![allow(dead_code)]

pub use testapi::wait::eventually;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, Event, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::Client;
use serde_json::json;
use testapi::TestApi;

/// The namespace every test object lives in.
pub const NS: &str = "default";

/// An apiserver with a controller running on it.
pub struct Cluster {
    pub api: TestApi,
    pub client: Client,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts an apiserver and the named controllers of this crate.
pub async fn cluster_with(names: &[&str]) -> Cluster {
    let api = TestApi::start().await;
    let client = api.client().await;
    let ctx = controllers::ControllerContext::new(
        client.clone(),
        controllers::ControllerManagerConfig::default(),
    );
    let tasks = names
        .iter()
        .map(|n| tokio::spawn(batch_controllers::start(&ctx, n).unwrap()))
        .collect();
    Cluster { api, client, tasks }
}

/// The events in [`NS`] whose involved object is named `object`.
pub async fn events_about(client: &Client, object: &str) -> Vec<Event> {
    testapi::wait::events_about(client, NS, object).await
}

/// The reasons of the events about `object`.
pub async fn event_reasons(client: &Client, object: &str) -> Vec<String> {
    events_about(client, object)
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

/// A pod template running one container, restartPolicy Never.
pub fn template() -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: None,
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "main".into(),
                image: Some("busybox".into()),
                ..Default::default()
            }],
            restart_policy: Some("Never".into()),
            ..Default::default()
        }),
    }
}

/// A Job named `name` with the given spec tweaks.
pub fn job(name: &str, f: impl FnOnce(&mut JobSpec)) -> Job {
    let mut spec = JobSpec {
        template: template(),
        ..Default::default()
    };
    f(&mut spec);
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The pods of the Job named `job` (by the job-name label).
pub async fn job_pods(client: &Client, job: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .unwrap()
        .items
}

/// Pods neither finished nor being deleted.
pub fn active(pods: &[Pod]) -> Vec<Pod> {
    pods.iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded") | Some("Failed")
                )
        })
        .cloned()
        .collect()
}

/// Marks a pod finished through the status subresource, its container terminated
/// with `exit_code` a minute ago (so that pod-replacement backoff has passed).
pub async fn finish_pod(client: &Client, name: &str, phase: &str, exit_code: i32) {
    let finished = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60)).to_string();
    let patch = json!({"status": {"phase": phase, "containerStatuses": [{
        "name": "main", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": exit_code, "finishedAt": finished, "startedAt": finished}}
    }]}});
    Api::<Pod>::namespaced(client.clone(), NS)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// The Job's condition of type `t` with status True, as (reason, message).
pub fn condition(job: &Job, t: &str) -> Option<(String, String)> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t && c.status == "True")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}
