//! The CronJob controller against an in-process apiserver, driven by a fake clock:
//! each test moves the clock to a scheduled minute and asks for a sync.

use std::sync::Arc;
use std::time::Duration;

use batch_controllers::clock::FakeClock;
use batch_controllers::cronjob::CronJobController;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use testapi::TestApi;

mod support;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

struct Env {
    _api: TestApi,
    client: Client,
    clock: Arc<FakeClock>,
    queue: controllers::workqueue::WorkQueue<String>,
    task: tokio::task::JoinHandle<()>,
    /// The start of the minute the CronJob was created in.
    base: Timestamp,
    name: String,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Env {
    async fn start(name: &str, f: impl FnOnce(&mut CronJobSpec)) -> Env {
        let api = TestApi::start().await;
        let client = api.client().await;
        let mut spec = CronJobSpec {
            schedule: "*/1 * * * *".into(),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some([("app".to_string(), "cron".to_string())].into()),
                    annotations: Some([("note".to_string(), "from-template".to_string())].into()),
                    ..Default::default()
                }),
                spec: Some(JobSpec {
                    template: template(),
                    ..Default::default()
                }),
            },
            ..Default::default()
        };
        f(&mut spec);
        let cj = CronJob {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(NS.into()),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        };
        let created = Api::<CronJob>::namespaced(client.clone(), NS)
            .create(&PostParams::default(), &cj)
            .await
            .unwrap();
        let c = created.metadata.creation_timestamp.unwrap().0;
        let base = Timestamp::from_second(c.as_second().div_euclid(60) * 60).unwrap();
        // Before the first scheduled minute.
        let clock = Arc::new(FakeClock::new(c));
        let ctx = controllers::ControllerContext::new(
            client.clone(),
            controllers::ControllerManagerConfig::default(),
        );
        let controller = CronJobController::new(&ctx, clock.clone());
        let queue = controller.queue();
        let task = tokio::spawn(controller.run(1));
        Env {
            _api: api,
            client,
            clock,
            queue,
            task,
            base,
            name: name.into(),
        }
    }

    fn minute(&self, k: i64) -> Timestamp {
        self.base + SignedDuration::from_mins(k)
    }

    /// Moves the clock 5 s past scheduled minute `k` and syncs.
    fn tick(&self, k: i64) {
        self.clock
            .set(self.minute(k) + SignedDuration::from_secs(5));
        self.queue.add(format!("{NS}/{}", self.name));
    }

    fn job_name(&self, k: i64) -> String {
        format!("{}-{}", self.name, self.minute(k).as_second() / 60)
    }

    async fn jobs(&self) -> Vec<String> {
        let mut names: Vec<String> = Api::<Job>::namespaced(self.client.clone(), NS)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|j| j.metadata.name.unwrap())
            .collect();
        names.sort();
        names
    }

    async fn cronjob(&self) -> CronJob {
        Api::<CronJob>::namespaced(self.client.clone(), NS)
            .get(&self.name)
            .await
            .unwrap()
    }

    async fn active_names(&self) -> Vec<String> {
        self.cronjob()
            .await
            .status
            .and_then(|s| s.active)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.name)
            .collect()
    }

    async fn wait_jobs(&self, want: &[String]) {
        eventually(&format!("jobs {want:?}"), WAIT, || async {
            self.jobs().await == want
        })
        .await;
    }

    /// Marks the Job finished (`Complete` or `Failed`), started at minute `k`.
    async fn finish(&self, job: &str, t: &str, k: i64) {
        let at = (self.minute(k) + SignedDuration::from_secs(10)).to_string();
        let status = json!({"status": {"startTime": at, "completionTime": if t == "Complete" { Some(at.clone()) } else { None },
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": at, "lastProbeTime": at}]}});
        Api::<Job>::namespaced(self.client.clone(), NS)
            .patch_status(job, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_a_job_at_the_scheduled_minute() {
    let env = Env::start("every", |_| {}).await;
    // Nothing is due before the first minute.
    env.queue.add(format!("{NS}/every"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(env.jobs().await.is_empty());

    env.tick(1);
    let name = env.job_name(1);
    env.wait_jobs(std::slice::from_ref(&name)).await;
    let job = Api::<Job>::namespaced(env.client.clone(), NS)
        .get(&name)
        .await
        .unwrap();
    assert_eq!(job.metadata.labels.unwrap()["app"], "cron");
    let ann = job.metadata.annotations.unwrap();
    assert_eq!(ann["note"], "from-template");
    let minute = env.minute(1);
    assert_eq!(
        ann["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        minute.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    let owner = &job.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("CronJob", "every", Some(true))
    );
    eventually("status updated", WAIT, || async {
        env.active_names().await == [name.clone()]
    })
    .await;
    let st = env.cronjob().await.status.unwrap();
    assert_eq!(st.last_schedule_time.unwrap().0, minute);
    // Syncing again in the same minute does not create another Job.
    env.queue.add(format!("{NS}/every"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.jobs().await, std::slice::from_ref(&name));
    eventually("event", WAIT, || async {
        events_about(&env.client, "every").await.iter().any(|e| {
            e.reason.as_deref() == Some("SuccessfulCreate")
                && e.message.as_deref() == Some(format!("Created job {name}").as_str())
        })
    })
    .await;
    // Allow: the next minute starts another Job while the first runs.
    env.tick(2);
    env.wait_jobs(&[env.job_name(1), env.job_name(2)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_skips_while_a_job_runs() {
    let env = Env::start("forbid", |s| s.concurrency_policy = Some("Forbid".into())).await;
    env.tick(1);
    let first = env.job_name(1);
    env.wait_jobs(std::slice::from_ref(&first)).await;
    eventually("active", WAIT, || async {
        env.active_names().await == [first.clone()]
    })
    .await;
    env.tick(2);
    eventually("JobAlreadyActive", WAIT, || async {
        event_reasons(&env.client, "forbid")
            .await
            .contains(&"JobAlreadyActive".to_string())
    })
    .await;
    assert_eq!(env.jobs().await, std::slice::from_ref(&first));
    env.finish(&first, "Complete", 1).await;
    // Once the first Job is done, the skipped minute starts late (no starting
    // deadline), in the same sync that drops the finished Job from the list.
    let second = env.job_name(2);
    env.wait_jobs(&[first.clone(), second.clone()]).await;
    eventually("only the new Job is active", WAIT, || async {
        env.active_names().await == [second.clone()]
    })
    .await;
    // As upstream, the sync that drops a finished Job from the active list records
    // its success only in a later sync (the Job is then no longer active).
    eventually("the success recorded", WAIT, || async {
        env.cronjob()
            .await
            .status
            .is_some_and(|s| s.last_successful_time.is_some())
    })
    .await;
    let st = env.cronjob().await.status.unwrap();
    assert_eq!(
        st.last_successful_time.unwrap().0,
        env.minute(1) + SignedDuration::from_secs(10)
    );
    assert_eq!(st.last_schedule_time.unwrap().0, env.minute(2));
    assert!(event_reasons(&env.client, "forbid")
        .await
        .contains(&"SawCompletedJob".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_deletes_the_running_job() {
    let env = Env::start("replace", |s| s.concurrency_policy = Some("Replace".into())).await;
    env.tick(1);
    let first = env.job_name(1);
    env.wait_jobs(std::slice::from_ref(&first)).await;
    eventually("active", WAIT, || async {
        env.active_names().await == [first.clone()]
    })
    .await;
    env.tick(2);
    let second = env.job_name(2);
    env.wait_jobs(std::slice::from_ref(&second)).await;
    eventually("active is the new one", WAIT, || async {
        env.active_names().await == [second.clone()]
    })
    .await;
    eventually("SuccessfulDelete", WAIT, || async {
        events_about(&env.client, "replace").await.iter().any(|e| {
            e.reason.as_deref() == Some("SuccessfulDelete")
                && e.message.as_deref() == Some(format!("Deleted job {first}").as_str())
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_limits_remove_old_finished_jobs() {
    let env = Env::start("history", |s| {
        s.successful_jobs_history_limit = Some(1);
        s.failed_jobs_history_limit = Some(0);
    })
    .await;
    env.tick(1);
    env.wait_jobs(&[env.job_name(1)]).await;
    env.finish(&env.job_name(1), "Complete", 1).await;
    eventually("first counted", WAIT, || async {
        env.active_names().await.is_empty()
    })
    .await;
    env.tick(2);
    env.wait_jobs(&[env.job_name(1), env.job_name(2)]).await;
    env.finish(&env.job_name(2), "Complete", 2).await;
    // Two successful Jobs, limit one: the older goes.
    env.wait_jobs(&[env.job_name(2)]).await;
    env.tick(3);
    env.wait_jobs(&[env.job_name(2), env.job_name(3)]).await;
    env.finish(&env.job_name(3), "Failed", 3).await;
    // Failed limit zero: the failed Job goes, the successful one stays.
    env.wait_jobs(&[env.job_name(2)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_cronjob_starts_nothing() {
    let env = Env::start("paused", |s| s.suspend = Some(true)).await;
    env.tick(1);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(env.jobs().await.is_empty());
    Api::<CronJob>::namespaced(env.client.clone(), NS)
        .patch(
            "paused",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"suspend": false}})),
        )
        .await
        .unwrap();
    env.wait_jobs(&[env.job_name(1)]).await;
}
