//! The namespace controller: namespaces with a deletionTimestamp are queued (5
//! seconds after the change is seen, letting last-moment creations land, and again
//! at every `--namespace-sync-period`), and each is emptied by the
//! [`deleter::NamespacedResourcesDeleter`]. A namespace with content still going
//! away is retried after half the estimated wait; other failures back off (5 ms
//! doubling up to a minute).

pub mod conditions;
pub mod deleter;

use std::sync::Arc;
use std::time::Duration;

use controllers::informer::{HandlerRegistration, Informer, InformerFactory, Notification};
use controllers::workqueue::{
    BucketRateLimiter, ExponentialFailureRateLimiter, MaxOfRateLimiter, WorkQueue,
};
use controllers::{ControllerContext, ControllerError, ControllerFuture};
use futures::FutureExt;
use k8s_openapi::api::core::v1::Namespace;
use tokio::task::JoinSet;

use deleter::{NamespaceDeletionError, NamespacedResourcesDeleter, FINALIZER_KUBERNETES};

/// Canonical name of the controller.
pub const NAMESPACE_CONTROLLER_NAME: &str = "namespace-controller";

/// How long after seeing a namespace's deletion it is first processed.
pub const NAMESPACE_DELETION_GRACE_PERIOD: Duration = Duration::from_secs(5);

/// The namespace controller.
pub struct NamespaceController {
    queue: WorkQueue<String>,
    informers: InformerFactory,
    informer: Informer<Namespace>,
    deleter: Arc<NamespacedResourcesDeleter>,
    resync_period: Duration,
    grace_period: Duration,
    _registration: HandlerRegistration,
}

fn rate_limiter() -> MaxOfRateLimiter<String> {
    MaxOfRateLimiter::new(vec![
        Box::new(ExponentialFailureRateLimiter::new(
            Duration::from_millis(5),
            Duration::from_secs(60),
        )),
        Box::new(BucketRateLimiter::new(10.0, 100)),
    ])
}

fn terminating(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
}

impl NamespaceController {
    /// A controller over `ctx`'s namespace informer, resyncing every
    /// `--namespace-sync-period`.
    pub fn new(ctx: &ControllerContext) -> Self {
        Self::with_grace_period(ctx, NAMESPACE_DELETION_GRACE_PERIOD)
    }

    /// The same with another delay before a deleted namespace is first processed
    /// (tests use a short one).
    pub fn with_grace_period(ctx: &ControllerContext, grace_period: Duration) -> Self {
        let queue = WorkQueue::with_rate_limiter("namespace", Box::new(rate_limiter()));
        let informer = ctx.informers.informer::<Namespace>();
        let q = queue.clone();
        let registration = informer.add_handler(move |n: &Notification<Namespace>| {
            if let Notification::Added(ns) | Notification::Updated { new: ns, .. } = n {
                if terminating(ns) {
                    if let Some(name) = &ns.metadata.name {
                        q.add_after(name.clone(), grace_period);
                    }
                }
            }
        });
        NamespaceController {
            queue,
            informers: ctx.informers.clone(),
            informer,
            deleter: Arc::new(NamespacedResourcesDeleter::new(
                ctx.client.clone(),
                FINALIZER_KUBERNETES,
            )),
            resync_period: ctx.config.namespace_sync_period,
            grace_period,
            _registration: registration,
        }
    }

    /// Starts the shared informers, then runs `workers` workers until dropped.
    pub async fn run(self, workers: usize) {
        let _stop = StopQueue(self.queue.clone());
        self.informers.start();
        self.informer.wait_synced().await;
        tracing::info!(controller = NAMESPACE_CONTROLLER_NAME, "starting workers");
        let mut tasks = JoinSet::new();
        for _ in 0..workers.max(1) {
            tasks.spawn(worker(
                self.queue.clone(),
                self.informer.clone(),
                self.deleter.clone(),
            ));
        }
        if !self.resync_period.is_zero() {
            let (queue, informer, period, grace) = (
                self.queue.clone(),
                self.informer.clone(),
                self.resync_period,
                self.grace_period,
            );
            tasks.spawn(async move {
                loop {
                    tokio::time::sleep(period).await;
                    for ns in informer.store().list() {
                        if terminating(&ns) {
                            if let Some(name) = &ns.metadata.name {
                                queue.add_after(name.clone(), grace);
                            }
                        }
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}

struct StopQueue(WorkQueue<String>);

impl Drop for StopQueue {
    fn drop(&mut self) {
        self.0.shut_down();
    }
}

async fn worker(
    queue: WorkQueue<String>,
    informer: Informer<Namespace>,
    deleter: Arc<NamespacedResourcesDeleter>,
) {
    while let Some(key) = queue.get().await {
        let result = match informer.store().get(&key) {
            None => {
                tracing::info!(namespace = %key, "Namespace has been deleted");
                Ok(())
            }
            Some(_) => deleter.delete(&key).await,
        };
        match result {
            Ok(()) => queue.forget(&key),
            Err(NamespaceDeletionError::ResourcesRemaining(estimate)) => {
                let wait = estimate / 2 + 1;
                tracing::debug!(namespace = %key, wait_seconds = wait, "content remaining in namespace");
                queue.add_after(key.clone(), Duration::from_secs(wait.max(1) as u64));
            }
            Err(err) => {
                tracing::warn!(namespace = %key, error = %err, "deletion of namespace failed");
                queue.add_rate_limited(key.clone());
            }
        }
        queue.done(&key);
    }
}

/// Starts the namespace controller on `ctx` with `--concurrent-namespace-syncs`
/// workers.
pub fn start_namespace_controller(
    ctx: &ControllerContext,
) -> Result<ControllerFuture, ControllerError> {
    let controller = NamespaceController::new(ctx);
    let workers = ctx.config.concurrent_namespace_syncs.max(1) as usize;
    Ok(controller.run(workers).boxed())
}
