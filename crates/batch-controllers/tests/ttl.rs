//! The TTL-after-finished controller against an in-process apiserver.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

mod support;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_job_is_deleted_after_its_ttl() {
    let c = cluster_with(&["ttl-after-finished"]).await;
    let api: Api<Job> = Api::namespaced(c.client.clone(), NS);
    let created = api
        .create(
            &PostParams::default(),
            &job("done", |s| s.ttl_seconds_after_finished = Some(3)),
        )
        .await
        .unwrap();
    let keep = api
        .create(
            &PostParams::default(),
            &job("keep", |s| s.ttl_seconds_after_finished = None),
        )
        .await
        .unwrap();
    let now = jiff::Timestamp::now().to_string();
    let status = json!({"status": {"conditions": [
        {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now, "lastProbeTime": now},
        {"type": "Complete", "status": "True", "lastTransitionTime": now, "lastProbeTime": now}
    ], "succeeded": 1, "startTime": now, "completionTime": now}});
    for name in ["done", "keep"] {
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }
    // The API keeps whole seconds: the TTL ends 2 to 3 s from now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let still = api.get("done").await.unwrap();
    assert_eq!(still.metadata.uid, created.metadata.uid);
    assert!(
        still.metadata.deletion_timestamp.is_none(),
        "not before the TTL"
    );
    eventually("job deleted", Duration::from_secs(15), || async {
        match api.get_opt("done").await.unwrap() {
            None => true,
            // Foreground deletion waits for the garbage collector.
            Some(j) => j.metadata.deletion_timestamp.is_some(),
        }
    })
    .await;
    let k = api.get("keep").await.unwrap();
    assert_eq!(k.metadata.uid, keep.metadata.uid);
    assert!(
        k.metadata.deletion_timestamp.is_none(),
        "no TTL, no deletion"
    );
}
