//! The Job controller against an in-process apiserver (no scheduler or kubelet:
//! tests finish pods through the status subresource).

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

mod support;
use support::*;

const WAIT: Duration = Duration::from_secs(20);

async fn create(client: &kube::Client, j: &Job) -> Job {
    Api::<Job>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), j)
        .await
        .unwrap()
}

async fn get(client: &kube::Client, name: &str) -> Job {
    Api::<Job>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_with_parallelism_run_to_complete() {
    let c = cluster_with(&["job"]).await;
    let client = &c.client;
    create(
        client,
        &job("work", |s| {
            s.completions = Some(3);
            s.parallelism = Some(2);
        }),
    )
    .await;

    let mut finished = 0;
    while finished < 3 {
        eventually("an active pod", WAIT, || async {
            !active(&job_pods(client, "work").await).is_empty()
        })
        .await;
        let pods = job_pods(client, "work").await;
        let act = active(&pods);
        assert!(act.len() <= 2, "never more than parallelism: {}", act.len());
        for p in &act {
            assert_eq!(p.metadata.generate_name.as_deref(), Some("work-"));
            assert!(p
                .metadata
                .finalizers
                .as_ref()
                .unwrap()
                .contains(&"batch.kubernetes.io/job-tracking".to_string()));
        }
        let name = act[0].metadata.name.clone().unwrap();
        finish_pod(client, &name, "Succeeded", 0).await;
        finished += 1;
        // The finalizer is removed once the pod is counted.
        eventually("succeeded pod counted", WAIT, || async {
            let p: Pod = Api::namespaced(client.clone(), NS)
                .get(&name)
                .await
                .unwrap();
            p.metadata.finalizers.unwrap_or_default().is_empty()
        })
        .await;
    }
    eventually("job complete", WAIT, || async {
        condition(&get(client, "work").await, "Complete").is_some()
    })
    .await;
    let j = get(client, "work").await;
    let st = j.status.clone().unwrap();
    assert_eq!(st.succeeded, Some(3));
    assert_eq!(st.active, None);
    assert_eq!(st.failed, None);
    assert_eq!(st.ready, Some(0));
    assert_eq!(st.terminating, Some(0));
    assert!(st.start_time.is_some() && st.completion_time.is_some());
    assert_eq!(
        condition(&j, "SuccessCriteriaMet"),
        Some((
            "CompletionsReached".into(),
            "Reached expected number of succeeded pods".into()
        ))
    );
    assert_eq!(
        condition(&j, "Complete"),
        Some((
            "CompletionsReached".into(),
            "Reached expected number of succeeded pods".into()
        ))
    );
    let conds: Vec<String> = st
        .conditions
        .unwrap()
        .iter()
        .map(|c| c.type_.clone())
        .collect();
    assert_eq!(conds, ["SuccessCriteriaMet", "Complete"]);
    assert_eq!(
        job_pods(client, "work").await.len(),
        3,
        "exactly three pods ever made"
    );
    eventually("events", WAIT, || async {
        let r = event_reasons(client, "work").await;
        r.contains(&"Completed".to_string()) && r.contains(&"SuccessfulCreate".to_string())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_pods_are_retried_then_backoff_limit_exceeded() {
    let c = cluster_with(&["job"]).await;
    let client = &c.client;
    create(client, &job("flaky", |s| s.backoff_limit = Some(1))).await;
    for round in 0..2 {
        eventually("an active pod", WAIT, || async {
            active(&job_pods(client, "flaky").await).len() == 1
        })
        .await;
        let p = active(&job_pods(client, "flaky").await).remove(0);
        finish_pod(client, p.metadata.name.as_deref().unwrap(), "Failed", 1).await;
        if round == 0 {
            eventually("failure counted", WAIT, || async {
                get(client, "flaky").await.status.unwrap().failed == Some(1)
            })
            .await;
        }
    }
    eventually("job failed", WAIT, || async {
        condition(&get(client, "flaky").await, "Failed").is_some()
    })
    .await;
    let j = get(client, "flaky").await;
    let expected = Some((
        "BackoffLimitExceeded".to_string(),
        "Job has reached the specified backoff limit".to_string(),
    ));
    assert_eq!(condition(&j, "FailureTarget"), expected);
    assert_eq!(condition(&j, "Failed"), expected);
    assert_eq!(j.status.as_ref().unwrap().failed, Some(2));
    assert_eq!(j.status.as_ref().unwrap().completion_time, None);
    assert_eq!(job_pods(client, "flaky").await.len(), 2);
    eventually("BackoffLimitExceeded event", WAIT, || async {
        event_reasons(client, "flaky")
            .await
            .contains(&"BackoffLimitExceeded".to_string())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_deadline_fails_the_job_and_removes_pods() {
    let c = cluster_with(&["job"]).await;
    let client = &c.client;
    create(
        client,
        &job("slow", |s| {
            s.parallelism = Some(2);
            s.completions = Some(4);
            s.active_deadline_seconds = Some(2);
        }),
    )
    .await;
    eventually("two pods", WAIT, || async {
        active(&job_pods(client, "slow").await).len() == 2
    })
    .await;
    eventually("job failed", WAIT, || async {
        condition(&get(client, "slow").await, "Failed").is_some()
    })
    .await;
    let j = get(client, "slow").await;
    assert_eq!(
        condition(&j, "Failed"),
        Some((
            "DeadlineExceeded".into(),
            "Job was active longer than specified deadline".into()
        ))
    );
    assert_eq!(j.status.as_ref().unwrap().failed, Some(2));
    eventually("pods gone", WAIT, || async {
        job_pods(client, "slow").await.is_empty()
    })
    .await;
    eventually("DeadlineExceeded event", WAIT, || async {
        let r = event_reasons(client, "slow").await;
        r.contains(&"DeadlineExceeded".to_string()) && r.contains(&"SuccessfulDelete".to_string())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_job_creates_one_pod_per_index() {
    let c = cluster_with(&["job"]).await;
    let client = &c.client;
    create(
        client,
        &job("idx", |s| {
            s.completions = Some(3);
            s.parallelism = Some(3);
            s.completion_mode = Some("Indexed".into());
        }),
    )
    .await;
    eventually("three pods", WAIT, || async {
        active(&job_pods(client, "idx").await).len() == 3
    })
    .await;
    let mut pods = job_pods(client, "idx").await;
    pods.sort_by_key(|p| {
        p.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"].clone()
    });
    for (i, p) in pods.iter().enumerate() {
        let ix = i.to_string();
        assert_eq!(
            p.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"],
            ix
        );
        assert_eq!(
            p.metadata.labels.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"],
            ix
        );
        assert_eq!(
            p.metadata.generate_name.as_deref(),
            Some(format!("idx-{i}-").as_str())
        );
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(format!("idx-{i}").as_str()));
        let env = &spec.containers[0].env.as_ref().unwrap()[0];
        assert_eq!(env.name, "JOB_COMPLETION_INDEX");
    }
    // Finish indexes 0 and 2.
    finish_pod(
        client,
        pods[0].metadata.name.as_deref().unwrap(),
        "Succeeded",
        0,
    )
    .await;
    finish_pod(
        client,
        pods[2].metadata.name.as_deref().unwrap(),
        "Succeeded",
        0,
    )
    .await;
    eventually("completedIndexes 0,2", WAIT, || async {
        get(client, "idx")
            .await
            .status
            .unwrap()
            .completed_indexes
            .as_deref()
            == Some("0,2")
    })
    .await;
    finish_pod(
        client,
        pods[1].metadata.name.as_deref().unwrap(),
        "Succeeded",
        0,
    )
    .await;
    eventually("complete", WAIT, || async {
        condition(&get(client, "idx").await, "Complete").is_some()
    })
    .await;
    let st = get(client, "idx").await.status.unwrap();
    assert_eq!(st.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!(st.succeeded, Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_deletes_pods_and_resume_recreates() {
    let c = cluster_with(&["job"]).await;
    let client = &c.client;
    create(client, &job("pause", |s| s.parallelism = Some(2))).await;
    eventually("two pods", WAIT, || async {
        active(&job_pods(client, "pause").await).len() == 2
    })
    .await;
    Api::<Job>::namespaced(client.clone(), NS)
        .patch(
            "pause",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"suspend": true}})),
        )
        .await
        .unwrap();
    eventually("suspended", WAIT, || async {
        condition(&get(client, "pause").await, "Suspended").is_some()
    })
    .await;
    eventually("pods removed", WAIT, || async {
        job_pods(client, "pause").await.is_empty()
    })
    .await;
    assert_eq!(
        condition(&get(client, "pause").await, "Suspended"),
        Some(("JobSuspended".into(), "Job suspended".into()))
    );
    Api::<Job>::namespaced(client.clone(), NS)
        .patch(
            "pause",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"suspend": false}})),
        )
        .await
        .unwrap();
    eventually("pods back", WAIT, || async {
        active(&job_pods(client, "pause").await).len() == 2
    })
    .await;
    let j = get(client, "pause").await;
    let c = j.status.unwrap().conditions.unwrap();
    let s = c.iter().find(|c| c.type_ == "Suspended").unwrap();
    assert_eq!(
        (s.status.as_str(), s.reason.as_deref()),
        ("False", Some("JobResumed"))
    );
    eventually("events", WAIT, || async {
        let r = event_reasons(client, "pause").await;
        r.contains(&"Suspended".to_string()) && r.contains(&"Resumed".to_string())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_failure_policy_fail_job() {
    use k8s_openapi::api::batch::v1::{
        PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
    };
    let c = cluster_with(&["job"]).await;
    let client = &c.client;
    create(
        client,
        &job("pfp", |s| {
            s.pod_failure_policy = Some(PodFailurePolicy {
                rules: vec![PodFailurePolicyRule {
                    action: "FailJob".into(),
                    on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                        container_name: None,
                        operator: "In".into(),
                        values: vec![42],
                    }),
                    on_pod_conditions: None,
                }],
            });
        }),
    )
    .await;
    eventually("a pod", WAIT, || async {
        active(&job_pods(client, "pfp").await).len() == 1
    })
    .await;
    let p = active(&job_pods(client, "pfp").await).remove(0);
    let name = p.metadata.name.clone().unwrap();
    finish_pod(client, &name, "Failed", 42).await;
    eventually("failed", WAIT, || async {
        condition(&get(client, "pfp").await, "Failed").is_some()
    })
    .await;
    assert_eq!(
        condition(&get(client, "pfp").await, "Failed"),
        Some((
            "PodFailurePolicy".into(),
            format!("Container main for pod {NS}/{name} failed with exit code 42 matching FailJob rule at index 0")
        ))
    );
}
